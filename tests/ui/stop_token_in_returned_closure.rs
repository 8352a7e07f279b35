// The stop token cannot leave the closure inside its value.
use system_thread::SystemThread;

fn main() {
    let _ = SystemThread::spawn_stoppable(|stop| move || stop.is_stop_requested());
}
