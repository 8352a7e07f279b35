// `on_each_processor` calls `f` on several threads at once: `f` must be `Sync`.
use std::cell::Cell;

fn main() {
    let count = Cell::new(0);
    let _ = system_thread::on_each_processor(|_| count.set(count.get() + 1));
}
