// Outside `scope`, a thread may not borrow the spawner's stack: the frame can end first.
use system_thread::SystemThread;

fn main() {
    let local = [1u8; 4];
    let _ = SystemThread::spawn(|| local.len());
}
