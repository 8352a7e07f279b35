// A scoped join handle cannot outlive its scope.
use system_thread::scope;

fn main() {
    let escaped = scope(|s| s.spawn(|| 1).unwrap());
    let _ = escaped.join();
}
