// The stop token is only lent to the closure; it cannot be kept after it returns.
use system_thread::{StopToken, SystemThread};

fn main() {
    let _ = SystemThread::spawn_stoppable(|token: &StopToken| token);
}
