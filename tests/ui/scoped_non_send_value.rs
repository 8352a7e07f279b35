// A scoped thread's value crosses threads: it must be `Send`.
use std::rc::Rc;
use system_thread::scope;

fn main() {
    scope(|s| {
        let _ = s.spawn(|| Rc::new(1));
    });
}
