// The stop token is lent for the closure call only: no other (unscoped) thread may keep it.
use system_thread::SystemThread;

fn main() {
    let _ = SystemThread::spawn_stoppable(|stop| {
        SystemThread::spawn(move || stop.is_stop_requested()).unwrap().join().ok()
    });
}
