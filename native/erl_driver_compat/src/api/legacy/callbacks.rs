//! Calling the callbacks of a seed-era (`int` ABI) driver.
//!
//! The entry copy ([`crate::abi::DrvEntry`]) types `output`, `outputv`,
//! `control` and `call` with their 2.0+ signatures; for a driver that
//! declared interface 1.x (or no marker) the pointers really have the
//! seed-era ones, and are called here through those types: lengths are
//! clamped to `INT_MAX` and passed as `int`, the `int` result of `control`
//! and `call` is sign-extended (only `eax` is defined, spec/ABI_VERSIONS.md
//! §7), and `outputv` gets the 24-byte `ErlIOVec`.

use std::os::raw::{c_char, c_int, c_uint};

use crate::abi::{
    CallFn, ControlFn, DrvData, IOVec, LegacyCallFn, LegacyControlFn, LegacyIOVec, LegacyOutputFn,
    LegacyOutputvFn, OutputFn, SSizeT, SizeT,
};

/// A length as the `int` a seed-era callback takes: at most `INT_MAX`.
pub fn clamp(n: SizeT) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// `void output(ErlDrvData, char *buf, int len)`.
///
/// # Safety
/// `f` must be a seed-era driver's `output` (stored with the 2.0+ type),
/// its library loaded; `buf` readable for `len` bytes while it runs.
pub unsafe fn output(f: OutputFn, data: DrvData, buf: *mut c_char, len: SizeT) {
    // SAFETY: the driver declared an int-ABI interface, so the function
    // behind the pointer has the seed-era signature; both are C function
    // pointers of the same size.
    let f: LegacyOutputFn = unsafe { std::mem::transmute::<OutputFn, LegacyOutputFn>(f) };
    // SAFETY: the caller's contract; the length passed is at most len.
    unsafe { f(data, buf, clamp(len)) }
}

/// `void outputv(ErlDrvData, ErlIOVec *ev)` with the 24-byte `ErlIOVec`
/// built from `ev` (same segment arrays).
///
/// # Safety
/// `f` must be a seed-era driver's `outputv` (stored with the 2.0+ type);
/// `ev` a valid 2.0+ vector whose arrays live while it runs.
pub unsafe fn outputv(f: unsafe extern "C" fn(DrvData, *mut IOVec), data: DrvData, ev: *mut IOVec) {
    // SAFETY: as in `output`: the pointer really has the seed-era type.
    let f: LegacyOutputvFn = unsafe {
        std::mem::transmute::<unsafe extern "C" fn(DrvData, *mut IOVec), LegacyOutputvFn>(f)
    };
    // SAFETY: ev is a valid, aligned ErlIOVec (caller's contract).
    let wide = unsafe { ev.read() };
    let mut old = LegacyIOVec {
        vsize: wide.vsize,
        size: clamp(wide.size),
        iov: wide.iov,
        binv: wide.binv,
    };
    // SAFETY: `old` describes the caller's arrays, alive while f runs.
    unsafe { f(data, &mut old) }
}

/// `int control(ErlDrvData, unsigned int, char *buf, int len, char **rbuf,
/// int rlen)`; its result sign-extended.
///
/// # Safety
/// `f` must be a seed-era driver's `control`; buffers as for the 2.0+ call.
pub unsafe fn control(
    f: ControlFn,
    data: DrvData,
    op: c_uint,
    buf: *mut c_char,
    len: SizeT,
    rbuf: *mut *mut c_char,
    rlen: SizeT,
) -> SSizeT {
    // SAFETY: as in `output`: the pointer really has the seed-era type.
    let f: LegacyControlFn = unsafe { std::mem::transmute::<ControlFn, LegacyControlFn>(f) };
    // SAFETY: the caller's contract; the lengths passed are at most theirs.
    let n = unsafe { f(data, op, buf, clamp(len), rbuf, clamp(rlen)) };
    n as SSizeT
}

/// `int call(ErlDrvData, unsigned int, char *buf, int len, char **rbuf,
/// int rlen, unsigned int *flags)`; its result sign-extended.
///
/// # Safety
/// `f` must be a seed-era driver's `call`; buffers as for the 2.0+ call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn call(
    f: CallFn,
    data: DrvData,
    op: c_uint,
    buf: *mut c_char,
    len: SizeT,
    rbuf: *mut *mut c_char,
    rlen: SizeT,
    flags: *mut c_uint,
) -> SSizeT {
    // SAFETY: as in `output`: the pointer really has the seed-era type.
    let f: LegacyCallFn = unsafe { std::mem::transmute::<CallFn, LegacyCallFn>(f) };
    // SAFETY: the caller's contract; the lengths passed are at most theirs.
    let n = unsafe { f(data, op, buf, clamp(len), rbuf, clamp(rlen), flags) };
    n as SSizeT
}
