// `Waitable::observed` records that a thread has exited, which lets its join and its scope
// skip the wait: only this crate's waits may call it (after the kernel reported the thread
// object signalled). Outside the crate it cannot be called, neither directly nor through a
// generic bound, because no code outside the crate can make its token.
use system_thread::{SystemThread, Waitable, scope};

fn mark<W: Waitable>(w: &W) {
    w.observed();
}

fn main() {
    let handle = SystemThread::spawn(|| 1).unwrap();
    handle.observed();
    mark(&handle);
    let data = 5;
    scope(|s| {
        let scoped = s.spawn(|| data).unwrap();
        scoped.observed(system_thread::wait::sealed::Token::new());
    });
}
