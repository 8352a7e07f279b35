//! The twin's runtime: the shared one of the example drivers (`examples/common/kernel_rt.rs`:
//! CRT symbols, `DbgPrint` logging, the panic handler). The twin allocates nothing through
//! `alloc` (neither does the sample's worker: the crate makes its one pool allocation per
//! thread itself), so it has no global allocator.

#[path = "../../common/kernel_rt.rs"]
mod kernel_rt;

pub use kernel_rt::{UnicodeString, log};
