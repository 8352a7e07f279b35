// `Waitable` is sealed: no other crate can pass its own object to a wait.
use system_thread::{Waitable, wait_any};

struct Fake;
impl Waitable for Fake {}

fn main() {
    let _ = wait_any(&[&Fake], None);
}
