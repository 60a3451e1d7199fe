//! The `int` shims and the seed-era callback calls, without a VM.
//!
//! A seed-era driver passes `int` arguments whose register's upper half is
//! undefined (x86-64 SysV): the shims are called here through function
//! pointer types taking `i64`, with junk in the upper 32 bits, as such a
//! caller may leave them.

use std::os::raw::{c_char, c_int, c_uint};
use std::sync::atomic::{AtomicI64, Ordering};

use super::callbacks;
use super::*;
use crate::abi::{CallFn, ControlFn, DrvData, OutputFn, SysIOVec};

const JUNK: i64 = 0x5a5a_5a5a << 32;

#[test]
fn lengths_and_results_convert_at_the_int_boundary() {
    assert_eq!(len(0), Some(0));
    assert_eq!(len(c_int::MAX), Some(c_int::MAX as usize));
    assert_eq!(len(-1), None);
    assert_eq!(narrow(SizeT::MAX), -1);
    assert_eq!(narrow(7), 7);
    assert_eq!(narrow(1 << 32), c_int::MAX);
    assert_eq!(callbacks::clamp(1 << 40), c_int::MAX);
    assert_eq!(callbacks::clamp(12), 12);
}

#[test]
fn alloc_binary_reads_only_the_low_32_bits_of_its_size() {
    // SAFETY: the shim is `extern "C" fn(c_int) -> *mut DrvBinary`; on
    // x86-64 an i64 argument travels in the same register, of which the
    // shim reads the low half, as a seed-era caller expects.
    let f: extern "C" fn(i64) -> *mut DrvBinary = unsafe {
        std::mem::transmute::<extern "C" fn(c_int) -> *mut DrvBinary, _>(driver_alloc_binary)
    };
    let bin = f(JUNK | 5);
    assert!(!bin.is_null());
    // SAFETY: a live driver binary just allocated.
    assert_eq!(unsafe { (*bin).orig_size }, 5);
    let bigger = driver_realloc_binary(bin, 9);
    assert!(!bigger.is_null());
    // SAFETY: the binary realloc returned, live.
    assert_eq!(unsafe { (*bigger).orig_size }, 9);
    assert!(driver_realloc_binary(bigger, -1).is_null());
    binary::driver_free_binary(bigger);
    // -5 in the low half: refused, whatever the upper half holds.
    assert!(f(JUNK | 0xffff_fffb).is_null());
    assert!(driver_alloc_binary(-1).is_null());
}

#[test]
fn vec_to_buf_takes_the_24_byte_iovec_and_an_int_length() {
    let mut a = *b"abc";
    let mut b = *b"defg";
    let mut iov = [
        SysIOVec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: 3,
        },
        SysIOVec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 4,
        },
    ];
    let mut ev = LegacyIOVec {
        vsize: 2,
        size: 7,
        iov: iov.as_mut_ptr(),
        binv: std::ptr::null_mut(),
    };
    type Wide = extern "C" fn(*mut LegacyIOVec, *mut c_char, i64) -> i64;
    // SAFETY: same register use as the shim's C signature (the i64 result
    // is read below only through its low half, the shim's int).
    let f: Wide = unsafe {
        std::mem::transmute::<extern "C" fn(*mut LegacyIOVec, *mut c_char, c_int) -> c_int, Wide>(
            driver_vec_to_buf,
        )
    };
    let mut out = [0u8; 8];
    assert_eq!(f(&mut ev, out.as_mut_ptr().cast(), JUNK | 5) as c_int, 5);
    assert_eq!(&out[..5], b"abcde");
    assert_eq!(driver_vec_to_buf(&mut ev, out.as_mut_ptr().cast(), -1), 0);
    ev.size = -1;
    assert_eq!(driver_vec_to_buf(&mut ev, out.as_mut_ptr().cast(), 4), 0);
}

/// A seed-era `control` whose `rax` has junk above the `int` it returns
/// (-1): declared here as returning i64 to put the junk there.
unsafe extern "C" fn control_junk_minus_one(
    _: DrvData,
    _: c_uint,
    _: *mut c_char,
    len: i64,
    _: *mut *mut c_char,
    rlen: i64,
) -> i64 {
    LAST_LEN.store(len as c_int as i64, Ordering::SeqCst);
    LAST_RLEN.store(rlen as c_int as i64, Ordering::SeqCst);
    0x1234_5678_ffff_ffff
}

static LAST_LEN: AtomicI64 = AtomicI64::new(0);
static LAST_RLEN: AtomicI64 = AtomicI64::new(0);

#[test]
fn control_result_is_sign_extended_and_lengths_clamped() {
    type Junk =
        unsafe extern "C" fn(DrvData, c_uint, *mut c_char, i64, *mut *mut c_char, i64) -> i64;
    // SAFETY: stored as the entry stores it (the 2.0+ type); same
    // registers for every argument and the result.
    let f = unsafe { std::mem::transmute::<Junk, ControlFn>(control_junk_minus_one) };
    let mut rbuf: *mut c_char = std::ptr::null_mut();
    // SAFETY: the fake ignores its buffers.
    let n = unsafe {
        callbacks::control(
            f,
            std::ptr::null_mut(),
            1,
            std::ptr::null_mut(),
            1 << 40,
            &mut rbuf,
            64,
        )
    };
    assert_eq!(n, -1);
    assert_eq!(LAST_LEN.load(Ordering::SeqCst), c_int::MAX as i64);
    assert_eq!(LAST_RLEN.load(Ordering::SeqCst), 64);
    // Read as the 2.0+ type, the same return is not -1: the reason for
    // the int-typed call.
    // SAFETY: as above.
    let wide = unsafe {
        f(
            std::ptr::null_mut(),
            1,
            std::ptr::null_mut(),
            0,
            &mut rbuf,
            0,
        )
    };
    assert_ne!(wide, -1);
}

unsafe extern "C" fn call_junk_three(
    _: DrvData,
    _: c_uint,
    _: *mut c_char,
    _: i64,
    _: *mut *mut c_char,
    _: i64,
    _: *mut c_uint,
) -> i64 {
    0x7777_0000_0000_0003
}

#[test]
fn call_result_is_the_low_32_bits() {
    type Junk = unsafe extern "C" fn(
        DrvData,
        c_uint,
        *mut c_char,
        i64,
        *mut *mut c_char,
        i64,
        *mut c_uint,
    ) -> i64;
    // SAFETY: as for control.
    let f = unsafe { std::mem::transmute::<Junk, CallFn>(call_junk_three) };
    let mut rbuf: *mut c_char = std::ptr::null_mut();
    let mut flags = 0;
    // SAFETY: the fake ignores its buffers.
    let n = unsafe {
        callbacks::call(
            f,
            std::ptr::null_mut(),
            1,
            std::ptr::null_mut(),
            0,
            &mut rbuf,
            255,
            &mut flags,
        )
    };
    assert_eq!(n, 3);
}

static SEEN: AtomicI64 = AtomicI64::new(0);

unsafe extern "C" fn legacy_outputv(_: DrvData, ev: *mut LegacyIOVec) {
    // SAFETY: the caller passes a valid 24-byte vector; read as bytes to
    // check the layout the driver sees.
    let raw = unsafe { std::slice::from_raw_parts(ev.cast::<u8>(), 24) };
    let size = i32::from_ne_bytes(raw[4..8].try_into().unwrap());
    let vsize = i32::from_ne_bytes(raw[0..4].try_into().unwrap());
    SEEN.store(((vsize as i64) << 32) | size as i64, Ordering::SeqCst);
}

unsafe extern "C" fn legacy_output(_: DrvData, _: *mut c_char, len: c_int) {
    SEEN.store(len as i64, Ordering::SeqCst);
}

#[test]
fn outputv_gets_the_24_byte_vector_and_output_an_int() {
    let mut data = *b"hello";
    let mut iov = [SysIOVec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 5,
    }];
    let mut wide = IOVec {
        vsize: 1,
        size: 5,
        iov: iov.as_mut_ptr(),
        binv: std::ptr::null_mut(),
    };
    type Old = unsafe extern "C" fn(DrvData, *mut LegacyIOVec);
    type New = unsafe extern "C" fn(DrvData, *mut IOVec);
    // SAFETY: stored as the entry stores it; pointer arguments only.
    let f = unsafe { std::mem::transmute::<Old, New>(legacy_outputv) };
    // SAFETY: `wide` and its array live across the call.
    unsafe { callbacks::outputv(f, std::ptr::null_mut(), &mut wide) };
    assert_eq!(SEEN.load(Ordering::SeqCst), (1 << 32) | 5);
    // SAFETY: as above; the fake reads no buffer.
    let g = unsafe {
        std::mem::transmute::<unsafe extern "C" fn(DrvData, *mut c_char, c_int), OutputFn>(
            legacy_output,
        )
    };
    // SAFETY: the fake ignores the buffer.
    unsafe { callbacks::output(g, std::ptr::null_mut(), std::ptr::null_mut(), 1 << 33) };
    assert_eq!(SEEN.load(Ordering::SeqCst), c_int::MAX as i64);
}
