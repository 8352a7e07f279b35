// An event cannot be dropped while a scoped thread may wait on it.
use system_thread::{Event, EventKind, scope};

fn main() {
    let event = Event::new(EventKind::Notification).unwrap();
    scope(|s| {
        let _ = s.spawn(|| event.wait());
        drop(event);
    });
}
