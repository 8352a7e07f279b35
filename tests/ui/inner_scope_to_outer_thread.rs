// A thread of the outer scope may not use the inner scope: the inner scope can end first.
use system_thread::scope;

fn main() {
    scope(|outer| {
        scope(|inner| {
            let _ = outer.spawn(|| {
                let _ = inner.spawn(|| ());
            });
        });
    });
}
