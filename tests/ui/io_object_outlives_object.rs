// An `IoObject` borrows its object: the builder cannot use it once the object is gone.
use system_thread::{Builder, IoObject};

fn main() {
    let builder;
    {
        let device = 0u64;
        // SAFETY: not run; only the borrow is under test.
        builder = Builder::new().io_object(unsafe { IoObject::new(&device) });
    }
    let _ = builder.spawn(|| ());
}
