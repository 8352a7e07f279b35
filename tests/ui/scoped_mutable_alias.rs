// A scoped thread that mutates a borrow excludes every other use of it during the scope.
use system_thread::scope;

fn main() {
    let mut v = vec![1];
    scope(|s| {
        let _ = s.spawn(|| v.push(2));
        v.push(3);
    });
}
