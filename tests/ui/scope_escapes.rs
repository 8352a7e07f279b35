// The scope itself cannot be kept after `scope` returns.
use system_thread::scope;

fn main() {
    let s = scope(|s| s);
    let _ = s.spawn(|| ());
}
