// Scoped threads may borrow only what outlives the whole scope.
use system_thread::scope;

fn main() {
    scope(|s| {
        let inner = vec![1, 2, 3];
        let _ = s.spawn(|| inner.len());
    });
}
