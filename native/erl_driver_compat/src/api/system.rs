//! System information, errno names, the emulator's environment and the
//! remaining port-independent functions.
//!
//! Where the running BEAM exports a port-independent function
//! (`driver_system_info`, `erl_errno_id`, `erl_drv_getenv/putenv`), we call
//! it: the result is then exactly the native one (the VM keeps its own copy
//! of the environment, which libc's `getenv` would not see).

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

use super::guard;
use crate::abi::{self, SysInfo};
use crate::context;
use crate::ffi::vm_fn;

vm_fn!(
    vm_system_info,
    c"driver_system_info",
    unsafe extern "C" fn(*mut SysInfo, usize)
);
vm_fn!(
    vm_errno_id,
    c"erl_errno_id",
    unsafe extern "C" fn(c_int) -> *mut c_char
);
vm_fn!(
    vm_getenv,
    c"erl_drv_getenv",
    unsafe extern "C" fn(*const c_char, *mut c_char, *mut usize) -> c_int
);
vm_fn!(
    vm_putenv,
    c"erl_drv_putenv",
    unsafe extern "C" fn(*const c_char, *mut c_char) -> c_int
);

/// Size of the 1.0 `ErlDrvSysInfo`; the runtime refuses smaller ones.
const SYS_INFO_MIN: usize = 32;

/// `void driver_system_info(ErlDrvSysInfo *sip, size_t si_size)`: the
/// VM's own answer, except `async_threads`, which is the size of our pool
/// (the one `driver_async` uses; by default the VM's `+A`, see
/// [`super::async_job`]).
pub(crate) extern "C" fn driver_system_info(sip: *mut SysInfo, size: usize) {
    guard((), || {
        if sip.is_null() || size < SYS_INFO_MIN {
            let what = format!("a NULL or too small ErlDrvSysInfo (size {size})");
            if context::with_current(|ctx| super::misuse(ctx, "driver_system_info", &what))
                .is_none()
            {
                crate::effects::log_detached(&format!(
                    "driver_system_info called with {what}; ignored"
                ));
            }
            return;
        }
        match vm_system_info() {
            // SAFETY: f is the VM's driver_system_info; sip is non-NULL and
            // points at `size` writable bytes (the manual's contract), and
            // the size passed is at most `size`, at least the 1.0 size.
            Some(f) => unsafe { f(sip, size.min(std::mem::size_of::<SysInfo>())) },
            // SAFETY: sip is non-NULL and points at `size` writable bytes
            // (the manual's contract), size >= the 1.0 size; only the
            // prefix of min(size, size_of::<SysInfo>()) bytes is written.
            None => unsafe { fill_system_info(sip, size) },
        }
        // The VM writes async_threads together with scheduler_threads
        // (the fields 1.1 added), only when the size covers both.
        let field = std::mem::offset_of!(SysInfo, async_threads);
        let group_end =
            std::mem::offset_of!(SysInfo, scheduler_threads) + std::mem::size_of::<c_int>();
        if size >= group_end {
            let threads = c_int::try_from(super::async_job::pool_size()).unwrap_or(c_int::MAX);
            let at = sip.cast::<u8>().wrapping_add(field).cast::<c_int>();
            // SAFETY: sip points at `size` writable bytes, which cover the
            // field; written unaligned, as the driver's buffer may be.
            unsafe { std::ptr::write_unaligned(at, threads) };
        }
    })
}

/// The VM's async thread pool size (`+A`, `erlang:system_info(
/// thread_pool_size)`), from its `driver_system_info`; 1 outside a BEAM.
pub fn vm_async_threads() -> usize {
    let Some(f) = vm_system_info() else {
        return 1;
    };
    let mut info = std::mem::MaybeUninit::<SysInfo>::zeroed();
    // SAFETY: info is a writable, zeroed ErlDrvSysInfo of the full size.
    unsafe { f(info.as_mut_ptr(), std::mem::size_of::<SysInfo>()) };
    // SAFETY: zeroed, then filled by the VM: every field is initialised
    // (integers and pointers, for which zero is valid).
    let info = unsafe { info.assume_init() };
    usize::try_from(info.async_threads).unwrap_or(1)
}

/// Fills `sip` outside a BEAM (unit tests).
///
/// # Safety
/// `sip` must point at `size` writable bytes.
unsafe fn fill_system_info(sip: *mut SysInfo, size: usize) {
    let info = SysInfo {
        driver_major_version: abi::EXTENDED_MAJOR_VERSION,
        driver_minor_version: abi::EXTENDED_MINOR_VERSION,
        erts_version: c"unknown".as_ptr() as *mut c_char,
        otp_release: c"unknown".as_ptr() as *mut c_char,
        thread_support: 1,
        smp_support: 1,
        async_threads: 0,
        scheduler_threads: 1,
        nif_major_version: 2,
        nif_minor_version: 16,
        dirty_scheduler_support: 1,
    };
    let n = size.min(std::mem::size_of::<SysInfo>());
    // SAFETY: n <= size_of::<SysInfo>(), the size of the local `info`,
    // and n <= size, the writable bytes at sip (caller's contract); a
    // local and the driver's struct do not overlap.
    unsafe { std::ptr::copy_nonoverlapping((&info as *const SysInfo).cast::<u8>(), sip.cast(), n) };
}

/// The atom name of `errno` (`"eio"`, ...; `"unknown"` for others).
pub fn errno_name(errno: c_int) -> &'static str {
    if let Some(f) = vm_errno_id() {
        // SAFETY: erl_errno_id returns a static NUL-terminated string.
        let p = unsafe { f(errno) };
        if !p.is_null() {
            // SAFETY: p is non-NULL, so it is erl_errno_id's static,
            // NUL-terminated string, valid for 'static.
            if let Ok(s) = unsafe { CStr::from_ptr(p) }.to_str() {
                return s;
            }
        }
    }
    fallback_errno_name(errno)
}

fn fallback_errno_name(errno: c_int) -> &'static str {
    match errno {
        libc::EPERM => "eperm",
        libc::ENOENT => "enoent",
        libc::EIO => "eio",
        libc::EBADF => "ebadf",
        libc::EAGAIN => "eagain",
        libc::ENOMEM => "enomem",
        libc::EACCES => "eacces",
        libc::EEXIST => "eexist",
        libc::EINVAL => "einval",
        libc::EPIPE => "epipe",
        libc::ENOSPC => "enospc",
        _ => "unknown",
    }
}

/// `char *erl_errno_id(int error)`
pub(crate) extern "C" fn erl_errno_id(error: c_int) -> *mut c_char {
    guard(c"unknown".as_ptr() as *mut c_char, || {
        if let Some(f) = vm_errno_id() {
            // SAFETY: f is the VM's erl_errno_id, which takes any int and
            // returns a static string.
            return unsafe { f(error) };
        }
        static NAMES: OnceLock<parking_lot::Mutex<Vec<CString>>> = OnceLock::new();
        let name = CString::new(fallback_errno_name(error)).unwrap_or_default();
        let mut names = NAMES.get_or_init(Default::default).lock();
        if let Some(existing) = names.iter().find(|n| **n == name) {
            return existing.as_ptr() as *mut c_char;
        }
        names.push(name);
        names
            .last()
            .map_or(std::ptr::null_mut(), |n| n.as_ptr() as *mut c_char)
    })
}

/// `int erl_drv_getenv(const char *key, char *value, size_t *value_size)`:
/// 0 found (size set to the length), -1 not set, >0 buffer too small
/// (size set to the length needed).
pub(crate) extern "C" fn erl_drv_getenv(
    key: *const c_char,
    value: *mut c_char,
    size: *mut usize,
) -> c_int {
    guard(-1, || {
        if key.is_null() || size.is_null() {
            return -1;
        }
        if let Some(f) = vm_getenv() {
            // SAFETY: f is the VM's erl_drv_getenv, given the driver's own
            // arguments, which the manual requires to be valid for it (key
            // NUL-terminated, size writable, value holding *size bytes).
            return unsafe { f(key, value, size) };
        }
        // SAFETY: key is non-NULL and the manual makes it a NUL-terminated
        // string, unchanged while the driver waits for this call.
        let found = unsafe { libc::getenv(key) };
        if found.is_null() {
            return -1;
        }
        // SAFETY: a non-NULL getenv result is a NUL-terminated string of
        // the environment; it is copied below before any setenv.
        let bytes = unsafe { CStr::from_ptr(found) }.to_bytes_with_nul();
        // SAFETY: size is non-NULL and the manual makes it a readable and
        // writable size_t of the driver's, which nothing else uses while
        // the driver waits for this call.
        let room = unsafe { &mut *size };
        if bytes.len() > *room {
            *room = bytes.len();
            return 1;
        }
        // SAFETY: the manual makes value a buffer of *size (= *room) bytes,
        // and bytes.len() <= *room was checked; the environment string and
        // the driver's buffer are distinct.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast(), bytes.len()) };
        *room = bytes.len() - 1;
        0
    })
}

/// `int erl_drv_putenv(const char *key, char *value)`
pub(crate) extern "C" fn erl_drv_putenv(key: *const c_char, value: *mut c_char) -> c_int {
    guard(-1, || {
        if key.is_null() || value.is_null() {
            return -1;
        }
        if let Some(f) = vm_putenv() {
            // SAFETY: f is the VM's erl_drv_putenv, given the driver's own
            // non-NULL, NUL-terminated strings (the manual's contract).
            return unsafe { f(key, value) };
        }
        // SAFETY: key and value are non-NULL and the manual makes them
        // NUL-terminated strings; setenv copies them.
        unsafe { libc::setenv(key, value, 1) }
    })
}

/// `int erl_drv_consume_timeslice(ErlDrvPort port, int percent)`: tells the
/// scheduler through `enif_consume_timeslice` when called from a NIF.
pub(crate) extern "C" fn erl_drv_consume_timeslice(
    _port: crate::abi::DrvPort,
    percent: c_int,
) -> c_int {
    guard(0, || {
        context::with_current(|ctx| {
            ctx.env().map(|env| {
                // SAFETY: env is the process-bound env of the running NIF
                // call (a context only has an env in a NIF call).
                unsafe { crate::ffi::consume_timeslice(env.as_c_arg(), percent.clamp(1, 100)) }
            })
        })
        .flatten()
        .unwrap_or(0)
    })
}

/// `int null_func(void)`
pub(crate) extern "C" fn null_func() -> c_int {
    0
}
