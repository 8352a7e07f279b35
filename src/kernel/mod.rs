//! The kernel-object layer: one small safe wrapper per kernel object this crate uses (event,
//! thread handle, referenced thread object, pool block, optional routine), and the IRQL
//! proofs that their routines require. It is the only code that calls `sys`; everything above
//! it is written against these wrappers.
//!
//! Every routine that has an IRQL limit takes a proof ([`irql::Passive`],
//! [`irql::AtMostApc`], [`irql::AtMostDispatch`]) that one IRQL read made: no kernel call can
//! be reached without its IRQL check, and each entry point reads the IRQL once.

pub(crate) mod event;
pub(crate) mod irql;
pub(crate) mod live;
pub(crate) mod pool;
pub(crate) mod routine;
pub(crate) mod thread;
pub(crate) mod wait;
