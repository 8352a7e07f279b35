// A closure capturing a non-`Send` value cannot run on another thread.
use std::rc::Rc;
use system_thread::SystemThread;

fn main() {
    let shared = Rc::new(1);
    let _ = SystemThread::spawn(move || *shared + 1);
}
