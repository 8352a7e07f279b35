// A scoped handle cannot leave its scope inside the error of a timed join either.
use core::time::Duration;
use system_thread::scope;

fn main() {
    let err = scope(|s| s.spawn(|| 1).unwrap().join_timeout(Duration::ZERO).err());
    drop(err);
}
