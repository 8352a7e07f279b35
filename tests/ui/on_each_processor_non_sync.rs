// `on_each_processor` calls `f` on several threads at once: `f` must be `Sync`. (A boxed
// closure without `Sync` stands for any non-`Sync` one; the message then names no closure
// type, whose printed form depends on the path of the build.)
use system_thread::Processor;

fn main() {
    let f: Box<dyn Fn(Processor)> = Box::new(|_| {});
    let _ = system_thread::on_each_processor(f);
}
