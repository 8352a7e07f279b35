//! Kernel routines that not every kernel exports, looked up with `MmGetSystemRoutineAddress`.

use crate::SpawnError;
use crate::sys;

/// `name` in UTF-16 followed by a NUL, for a routine name known at compile time (ASCII). The
/// `UNICODE_STRING` length excludes the NUL; it is there for tools that read up to one.
const fn utf16<const N: usize>(name: &str) -> [u16; N] {
    let bytes = name.as_bytes();
    let mut out = [0u16; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

macro_rules! routine_name {
    ($name:literal) => {{
        const NAME: [u16; $name.len() + 1] = utf16($name);
        NAME.split_last().map_or(&[], |(_nul, name)| name)
    }};
}

/// Looks up an exported routine; `None` where this kernel does not export it.
fn lookup(name: &'static [u16]) -> Option<core::ptr::NonNull<core::ffi::c_void>> {
    let bytes = u16::try_from(name.len() * 2).ok()?;
    let mut string = sys::UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: name.as_ptr().cast_mut(),
    };
    // SAFETY: the string is valid for the call; the routine only reads it (PASSIVE_LEVEL,
    // checked by every caller).
    core::ptr::NonNull::new(unsafe { sys::MmGetSystemRoutineAddress(&raw mut string) })
}

/// Declares a resolver returning the routine as its function pointer type.
macro_rules! resolver {
    ($(#[$doc:meta])* $fn_name:ident, $name:literal, $ty:ty) => {
        $(#[$doc])*
        pub(crate) fn $fn_name() -> Result<$ty, SpawnError> {
            let address = lookup(routine_name!($name)).ok_or(SpawnError::NotSupported($name))?;
            // SAFETY: the kernel exports this routine under this name with this signature
            // (asserted against the bindings in `sys`); a code address converts to a function
            // pointer of the same size.
            Ok(unsafe { core::mem::transmute::<*mut core::ffi::c_void, $ty>(address.as_ptr()) })
        }
    };
}

resolver!(
    /// `IoCreateSystemThread` (Windows 8+).
    io_create_system_thread,
    "IoCreateSystemThread",
    sys::IoCreateSystemThreadFn
);
resolver!(
    /// `KeSetSystemGroupAffinityThread` (Windows 7+).
    set_group_affinity,
    "KeSetSystemGroupAffinityThread",
    sys::KeSetSystemGroupAffinityThreadFn
);
resolver!(
    /// `KeRevertToUserGroupAffinityThread` (Windows 7+).
    revert_group_affinity,
    "KeRevertToUserGroupAffinityThread",
    sys::KeRevertToUserGroupAffinityThreadFn
);
