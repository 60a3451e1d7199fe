//! The `int` variant of the API functions whose C signature changed in
//! interface 2.0 (spec/ABI_VERSIONS.md §3), bound for drivers that declare
//! interface 1.x or no extended marker at all ([`crate::binding`]).
//!
//! Each shim takes the seed-era prototype: `int` lengths, offsets and skips
//! (declared `c_int`, so only the low 32 bits of the register are read: on
//! x86-64 the upper half of an `int` argument is undefined, §7), the 24-byte
//! [`LegacyIOVec`], and `int` returns. A negative length is refused with the
//! function's error return (-1, NULL, 0); otherwise the shim widens its
//! arguments and calls the modern implementation, so both variants behave
//! identically for every value an `int` can carry. `size_t` results are
//! narrowed for the driver, which reads `eax`: `(size_t)-1` is -1, sizes
//! above `INT_MAX` are clamped to `INT_MAX` (never truncated to a small or
//! negative number).
//!
//! Every other API function is the same for both variants. [`callbacks`]
//! holds the other direction: calling a seed-era driver's `output`,
//! `outputv`, `control` and `call`.

pub mod callbacks;

#[cfg(test)]
mod tests;

use std::os::raw::{c_char, c_int};

use super::{binary, output, queue};
use crate::abi::{DrvBinary, DrvPort, IOVec, LegacyIOVec, SizeT};

/// A seed-era `int` length as a size; `None` when negative.
fn len(n: c_int) -> Option<SizeT> {
    SizeT::try_from(n).ok()
}

/// A `size_t` result as the `int` a seed-era driver reads: `(size_t)-1`
/// (the error return) stays -1, anything above `INT_MAX` is `INT_MAX`.
fn narrow(n: SizeT) -> c_int {
    if n == SizeT::MAX {
        -1
    } else {
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }
}

/// The 2.0+ `ErlIOVec` describing the same segments as a seed-era one
/// (the `iov`/`binv` arrays are shared, not copied); `None` for NULL or a
/// negative size.
///
/// # Safety
/// `ev` must be NULL or point at a readable, aligned `LegacyIOVec`.
unsafe fn widen(ev: *const LegacyIOVec) -> Option<IOVec> {
    if ev.is_null() {
        return None;
    }
    // SAFETY: ev is non-NULL, so readable and aligned (caller's contract);
    // LegacyIOVec is Copy and read once.
    let old = unsafe { ev.read() };
    Some(IOVec {
        vsize: old.vsize,
        size: len(old.size)?,
        iov: old.iov,
        binv: old.binv,
    })
}

/// Runs `f` with a pointer to the 2.0+ view of `ev` (NULL for a NULL
/// `ev`, which the modern function reports as the misuse it is); `bad` is
/// returned for a vector with a negative size.
///
/// # Safety
/// As [`widen`].
unsafe fn with_wide<R>(ev: *const LegacyIOVec, bad: R, f: impl FnOnce(*mut IOVec) -> R) -> R {
    if ev.is_null() {
        return f(std::ptr::null_mut());
    }
    // SAFETY: forwarded contract.
    match unsafe { widen(ev) } {
        Some(mut wide) => f(&mut wide),
        None => bad,
    }
}

/// `int driver_output(ErlDrvPort port, char *buf, int len)`
pub(crate) extern "C" fn driver_output(port: DrvPort, buf: *mut c_char, n: c_int) -> c_int {
    len(n).map_or(-1, |n| output::driver_output(port, buf, n))
}

/// `int driver_output2(ErlDrvPort port, char *hbuf, int hlen, char *buf,
/// int len)`
pub(crate) extern "C" fn driver_output2(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: c_int,
    buf: *mut c_char,
    n: c_int,
) -> c_int {
    match (len(hlen), len(n)) {
        (Some(hlen), Some(n)) => output::driver_output2(port, hbuf, hlen, buf, n),
        _ => -1,
    }
}

/// `int driver_output_binary(ErlDrvPort port, char *hbuf, int hlen,
/// ErlDrvBinary *bin, int offset, int len)`
pub(crate) extern "C" fn driver_output_binary(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: c_int,
    bin: *mut DrvBinary,
    offset: c_int,
    n: c_int,
) -> c_int {
    match (len(hlen), len(offset), len(n)) {
        (Some(hlen), Some(offset), Some(n)) => {
            output::driver_output_binary(port, hbuf, hlen, bin, offset, n)
        }
        _ => -1,
    }
}

/// `int driver_outputv(ErlDrvPort port, char *hbuf, int hlen, ErlIOVec *ev,
/// int skip)` with the 24-byte `ErlIOVec`.
pub(crate) extern "C" fn driver_outputv(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: c_int,
    ev: *mut LegacyIOVec,
    skip: c_int,
) -> c_int {
    let (Some(hlen), Some(skip)) = (len(hlen), len(skip)) else {
        return -1;
    };
    // SAFETY: the driver passes NULL or a valid seed-era ErlIOVec; its
    // segment arrays, shared with the wide view, may be advanced in place
    // as the modern function does natively.
    unsafe {
        with_wide(ev, -1, |wide| {
            output::driver_outputv(port, hbuf, hlen, wide, skip)
        })
    }
}

/// `int driver_vec_to_buf(ErlIOVec *ev, char *buf, int len)`: the number of
/// bytes copied, 0 for a negative `len`.
pub(crate) extern "C" fn driver_vec_to_buf(
    ev: *mut LegacyIOVec,
    buf: *mut c_char,
    n: c_int,
) -> c_int {
    let Some(n) = len(n) else {
        return 0;
    };
    // SAFETY: the driver passes NULL or a valid seed-era ErlIOVec.
    unsafe {
        with_wide(ev, 0, |wide| {
            narrow(output::driver_vec_to_buf(wide, buf, n))
        })
    }
}

/// `ErlDrvBinary *driver_alloc_binary(int size)`: NULL for a negative size.
pub(crate) extern "C" fn driver_alloc_binary(size: c_int) -> *mut DrvBinary {
    len(size).map_or(std::ptr::null_mut(), |size| {
        binary::driver_alloc_binary(size)
    })
}

/// `ErlDrvBinary *driver_realloc_binary(ErlDrvBinary *bin, int size)`:
/// NULL for a negative size (`bin` is left as it was).
pub(crate) extern "C" fn driver_realloc_binary(bin: *mut DrvBinary, size: c_int) -> *mut DrvBinary {
    len(size).map_or(std::ptr::null_mut(), |size| {
        binary::driver_realloc_binary(bin, size)
    })
}

/// `int driver_enq(ErlDrvPort port, char *buf, int len)`
pub(crate) extern "C" fn driver_enq(port: DrvPort, buf: *mut c_char, n: c_int) -> c_int {
    len(n).map_or(-1, |n| queue::driver_enq(port, buf, n))
}

/// `int driver_pushq(ErlDrvPort port, char *buf, int len)`
pub(crate) extern "C" fn driver_pushq(port: DrvPort, buf: *mut c_char, n: c_int) -> c_int {
    len(n).map_or(-1, |n| queue::driver_pushq(port, buf, n))
}

/// `int driver_enq_bin(ErlDrvPort port, ErlDrvBinary *bin, int offset,
/// int len)`
pub(crate) extern "C" fn driver_enq_bin(
    port: DrvPort,
    bin: *mut DrvBinary,
    offset: c_int,
    n: c_int,
) -> c_int {
    match (len(offset), len(n)) {
        (Some(offset), Some(n)) => queue::driver_enq_bin(port, bin, offset, n),
        _ => -1,
    }
}

/// `int driver_pushq_bin(ErlDrvPort port, ErlDrvBinary *bin, int offset,
/// int len)`
pub(crate) extern "C" fn driver_pushq_bin(
    port: DrvPort,
    bin: *mut DrvBinary,
    offset: c_int,
    n: c_int,
) -> c_int {
    match (len(offset), len(n)) {
        (Some(offset), Some(n)) => queue::driver_pushq_bin(port, bin, offset, n),
        _ => -1,
    }
}

/// `int driver_enqv(ErlDrvPort port, ErlIOVec *ev, int skip)` with the
/// 24-byte `ErlIOVec`.
pub(crate) extern "C" fn driver_enqv(port: DrvPort, ev: *mut LegacyIOVec, skip: c_int) -> c_int {
    let Some(skip) = len(skip) else {
        return -1;
    };
    // SAFETY: the driver passes NULL or a valid seed-era ErlIOVec.
    unsafe { with_wide(ev, -1, |wide| queue::driver_enqv(port, wide, skip)) }
}

/// `int driver_pushqv(ErlDrvPort port, ErlIOVec *ev, int skip)` with the
/// 24-byte `ErlIOVec`.
pub(crate) extern "C" fn driver_pushqv(port: DrvPort, ev: *mut LegacyIOVec, skip: c_int) -> c_int {
    let Some(skip) = len(skip) else {
        return -1;
    };
    // SAFETY: the driver passes NULL or a valid seed-era ErlIOVec.
    unsafe { with_wide(ev, -1, |wide| queue::driver_pushqv(port, wide, skip)) }
}

/// `int driver_deq(ErlDrvPort port, int size)`: the bytes left, -1 when
/// fewer than `size` are queued or `size` is negative.
pub(crate) extern "C" fn driver_deq(port: DrvPort, size: c_int) -> c_int {
    len(size).map_or(-1, |size| narrow(queue::driver_deq(port, size)))
}

/// `int driver_sizeq(ErlDrvPort port)`
pub(crate) extern "C" fn driver_sizeq(port: DrvPort) -> c_int {
    narrow(queue::driver_sizeq(port))
}

/// `int driver_peekqv(ErlDrvPort port, ErlIOVec *ev)`: fills the 24-byte
/// `ErlIOVec` with the queue's segments; returns the queue's size.
pub(crate) extern "C" fn driver_peekqv(port: DrvPort, ev: *mut LegacyIOVec) -> c_int {
    if ev.is_null() {
        return narrow(queue::driver_peekqv(port, std::ptr::null_mut()));
    }
    let mut wide = IOVec {
        vsize: 0,
        size: 0,
        iov: std::ptr::null_mut(),
        binv: std::ptr::null_mut(),
    };
    let size = queue::driver_peekqv(port, &mut wide);
    if size != SizeT::MAX {
        let old = LegacyIOVec {
            vsize: wide.vsize,
            size: narrow(wide.size),
            iov: wide.iov,
            binv: wide.binv,
        };
        // SAFETY: ev is non-NULL and the driver passes a writable, aligned
        // seed-era ErlIOVec that no reference aliases.
        unsafe { ev.write(old) };
    }
    narrow(size)
}
