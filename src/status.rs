//! `NTSTATUS`: what kernel routines return.

use core::fmt;

/// An `NTSTATUS` value returned by a kernel routine.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtStatus(pub i32);

impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: Self = Self(0);
    /// `STATUS_TIMEOUT`.
    pub const TIMEOUT: Self = Self(0x102);
    /// `STATUS_UNSUCCESSFUL`.
    pub const UNSUCCESSFUL: Self = Self(0xC000_0001_u32.cast_signed());
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub const INSUFFICIENT_RESOURCES: Self = Self(0xC000_009A_u32.cast_signed());
    /// `STATUS_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: Self = Self(0xC000_00BB_u32.cast_signed());
    /// `STATUS_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: Self = Self(0xC000_000D_u32.cast_signed());
    /// `STATUS_INVALID_HANDLE`.
    pub const INVALID_HANDLE: Self = Self(0xC000_0008_u32.cast_signed());
    /// `STATUS_ACCESS_DENIED`.
    pub const ACCESS_DENIED: Self = Self(0xC000_0022_u32.cast_signed());
    /// `STATUS_INVALID_INFO_CLASS`.
    pub const INVALID_INFO_CLASS: Self = Self(0xC000_0003_u32.cast_signed());

    /// The status as the unsigned 32-bit code it is usually written as (`0xC000009A`).
    #[must_use]
    pub const fn code(self) -> u32 {
        self.0.cast_unsigned()
    }

    /// `NT_SUCCESS`: success and informational codes (severity bits 00 and 01).
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// The symbolic name of well-known codes.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SUCCESS => "STATUS_SUCCESS",
            Self::TIMEOUT => "STATUS_TIMEOUT",
            Self::UNSUCCESSFUL => "STATUS_UNSUCCESSFUL",
            Self::INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
            Self::NOT_SUPPORTED => "STATUS_NOT_SUPPORTED",
            Self::INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
            Self::INVALID_HANDLE => "STATUS_INVALID_HANDLE",
            Self::ACCESS_DENIED => "STATUS_ACCESS_DENIED",
            Self::INVALID_INFO_CLASS => "STATUS_INVALID_INFO_CLASS",
            _ => return None,
        })
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010X}", self.code())?;
        if let Some(name) = self.name() {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}
