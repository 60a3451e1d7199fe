//! The lowest layer: every raw `enif_*` call the crate makes, each wrapped
//! in a small `unsafe fn` whose `# Safety` section states what the caller
//! must guarantee. Nothing above this module calls `rustler::sys` directly
//! (rustler's own safe API is used where it has one).
//!
//! rustler 0.39 declares most `enif_*` functions this crate needs; those
//! it lacks are declared here, in `extern` blocks, and wrapped the same
//! way: the thread primitives in [`thread`].

mod thread;
pub use thread::*;

use std::ffi::c_void;
use std::os::raw::c_int;

use rustler::sys::{self, ErlNifBinary, ErlNifEnv, ErlNifPid, ErlNifTerm};

/// A raw term.
pub type RawTerm = ErlNifTerm;
/// A raw environment pointer.
pub type RawEnv = *mut ErlNifEnv;

/// `enif_alloc`.
///
/// # Safety
/// None beyond what `enif_alloc` requires: a running VM.
pub unsafe fn alloc(size: usize) -> *mut c_void {
    // SAFETY: enif_alloc has no preconditions beyond a loaded NIF library.
    unsafe { sys::enif_alloc(size) }
}

/// `enif_realloc`.
///
/// # Safety
/// `ptr` is NULL or a live block from [`alloc`]/[`realloc`].
pub unsafe fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller passes NULL or a block of ours.
    unsafe { sys::enif_realloc(ptr, size) }
}

/// `enif_free`.
///
/// # Safety
/// `ptr` is a live block from [`alloc`]/[`realloc`], freed once.
pub unsafe fn free(ptr: *mut c_void) {
    // SAFETY: the caller passes a live block of ours.
    unsafe { sys::enif_free(ptr) }
}

/// `enif_send(caller_env, to, msg_env, msg)`; returns false when the
/// receiver is not alive.
///
/// # Safety
/// `caller_env` is the env of the running NIF call or callback, or NULL on
/// a thread the VM does not manage; `msg` belongs to `msg_env`, or to
/// `caller_env` when `msg_env` is NULL (the message is then copied).
pub unsafe fn send(caller_env: RawEnv, to: &ErlNifPid, msg_env: RawEnv, msg: RawTerm) -> bool {
    // SAFETY: per the contract.
    unsafe { sys::enif_send(caller_env, to, msg_env, msg) != 0 }
}

/// The term of a local pid (an immediate: it needs no env).
pub fn pid_term(pid: &ErlNifPid) -> RawTerm {
    // SAFETY: enif_make_pid only reads `pid.pid`; the env is not used.
    unsafe { sys::enif_make_pid(std::ptr::null_mut(), *pid) }
}

/// `enif_consume_timeslice`: non-zero when the timeslice is used up.
///
/// # Safety
/// `env` is the process-bound env of the running NIF call.
pub unsafe fn consume_timeslice(env: RawEnv, percent: c_int) -> c_int {
    // SAFETY: per the contract.
    unsafe { sys::enif_consume_timeslice(env, percent) }
}

/// `[head | tail]`.
///
/// # Safety
/// Both terms belong to `env`, a live env.
pub unsafe fn list_cell(env: RawEnv, head: RawTerm, tail: RawTerm) -> RawTerm {
    // SAFETY: per the contract.
    unsafe { sys::enif_make_list_cell(env, head, tail) }
}

/// `[]`.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn empty_list(env: RawEnv) -> RawTerm {
    // SAFETY: an empty array needs no elements.
    unsafe { sys::enif_make_list_from_array(env, std::ptr::null(), 0) }
}

/// A small integer.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn int(env: RawEnv, value: c_int) -> RawTerm {
    // SAFETY: per the contract.
    unsafe { sys::enif_make_int(env, value) }
}

/// The latin-1 string (list of bytes) `bytes`.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn latin1_string(env: RawEnv, bytes: &[u8]) -> RawTerm {
    // SAFETY: the slice is readable for its length.
    unsafe {
        sys::enif_make_string_len(
            env,
            bytes.as_ptr().cast(),
            bytes.len(),
            sys::ErlNifCharEncoding::ERL_NIF_LATIN1,
        )
    }
}

/// A new binary holding a copy of `bytes`.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn binary_copy(env: RawEnv, bytes: &[u8]) -> RawTerm {
    let mut term = ErlNifTerm::default();
    // SAFETY: enif_make_new_binary returns a writable buffer of the size
    // asked for, owned by the new term.
    let buf = unsafe { sys::enif_make_new_binary(env, bytes.len(), &mut term) };
    if !bytes.is_empty() {
        // SAFETY: `buf` holds bytes.len() writable bytes; the regions are
        // distinct (one is freshly allocated).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    }
    term
}

/// What a term of an iolist is.
pub enum IoTerm {
    /// A binary: its bytes (valid while the term is).
    Binary(*const u8, usize),
    /// `[Head | Tail]`.
    Cons(RawTerm, RawTerm),
    /// `[]`.
    Nil,
    /// A small integer.
    Int(c_int),
    /// Anything else.
    Other,
}

/// Classifies `term` for iolist walking.
///
/// # Safety
/// `term` belongs to `env`, a live env.
pub unsafe fn io_term(env: RawEnv, term: RawTerm) -> IoTerm {
    // SAFETY: `term` belongs to `env`, a live env (the function's
    // contract); so for every call below, whose out-parameters are locals.
    if unsafe { sys::enif_is_binary(env, term) } != 0 {
        // SAFETY: an all-zero ErlNifBinary is a valid out-parameter.
        let mut bin: ErlNifBinary = unsafe { std::mem::zeroed() };
        // SAFETY: see above.
        if unsafe { sys::enif_inspect_binary(env, term, &mut bin) } == 0 {
            return IoTerm::Other;
        }
        return IoTerm::Binary(bin.data, bin.size);
    }
    let mut head = ErlNifTerm::default();
    let mut tail = ErlNifTerm::default();
    // SAFETY: see above.
    if unsafe { sys::enif_get_list_cell(env, term, &mut head, &mut tail) } != 0 {
        return IoTerm::Cons(head, tail);
    }
    // SAFETY: see above.
    if unsafe { sys::enif_is_empty_list(env, term) } != 0 {
        return IoTerm::Nil;
    }
    let mut value: c_int = 0;
    // SAFETY: see above.
    if unsafe { sys::enif_get_int(env, term, &mut value) } != 0 {
        return IoTerm::Int(value);
    }
    IoTerm::Other
}

/// This thread's `errno`.
pub fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets this thread's `errno` (cleared before a driver callback whose
/// `ERL_DRV_ERROR_ERRNO` result must report the driver's own errno).
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location has no preconditions.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: it returns this thread's errno slot: valid and writable.
    unsafe { *slot = value };
}

/// The bits of a term (terms are machine words).
pub fn to_raw(term: RawTerm) -> usize {
    // SAFETY: ErlNifTerm is a repr(transparent) wrapper of a machine word.
    unsafe { std::mem::transmute::<RawTerm, usize>(term) }
}

/// A term from its bits.
pub fn from_raw(bits: usize) -> RawTerm {
    // SAFETY: ErlNifTerm is a repr(transparent) wrapper of a machine word.
    unsafe { std::mem::transmute::<usize, RawTerm>(bits) }
}

/// `enif_binary_to_term` without options (new atoms may be created, as
/// the runtime's `ERL_DRV_EXT2TERM` does): the term and the number of
/// bytes read, or `None` when `data` does not start with a valid term.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn binary_to_term(env: RawEnv, data: &[u8]) -> Option<(RawTerm, usize)> {
    let mut term = ErlNifTerm::default();
    // SAFETY: data is readable for its length; term is a local.
    let read = unsafe { sys::enif_binary_to_term(env, data.as_ptr(), data.len(), &mut term, 0) };
    (read > 0).then_some((term, read))
}

/// True when `term` is an atom. Only the term's tag is looked at, so any
/// word may be passed.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn is_atom(env: RawEnv, term: RawTerm) -> bool {
    // SAFETY: per the contract; enif_is_atom only tests the tag bits.
    unsafe { sys::enif_is_atom(env, term) != 0 }
}

/// The local pid `term` is, if it is one. Only the term's tag is looked
/// at, so any word may be passed.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn local_pid(env: RawEnv, term: RawTerm) -> Option<ErlNifPid> {
    let mut pid = std::mem::MaybeUninit::<ErlNifPid>::uninit();
    // SAFETY: per the contract; the out-parameter is written on success.
    if unsafe { sys::enif_get_local_pid(env, term, pid.as_mut_ptr()) } != 0 {
        // SAFETY: written by enif_get_local_pid.
        Some(unsafe { pid.assume_init() })
    } else {
        None
    }
}

/// The `ErlNifPid` holding `term`, without checking that it is a pid.
///
/// # Safety
/// `term` is a local pid term, or the result is only compared or used as
/// a key (never passed to the VM).
pub unsafe fn pid_from_term(term: RawTerm) -> ErlNifPid {
    // SAFETY: ErlNifPid is a repr(C) struct of one ERL_NIF_TERM.
    unsafe { std::mem::transmute::<RawTerm, ErlNifPid>(term) }
}

/// `enif_monitor_process(caller_env, obj, pid, mon)`: 0 when the resource
/// `obj` now monitors `pid` (`mon` written), > 0 when the process is not
/// alive, < 0 when the resource type has no `down` callback. (rustler's
/// `ResourceArc::monitor` refuses callback envs, which the VM accepts.)
///
/// # Safety
/// `caller_env` is the env of the running NIF call or callback (process
/// bound or not), or NULL on a thread the VM does not manage; `obj` is a
/// live resource object.
pub unsafe fn monitor_process(
    caller_env: RawEnv,
    obj: *const c_void,
    pid: &ErlNifPid,
    mon: &mut sys::ErlNifMonitor,
) -> c_int {
    // SAFETY: per the contract; `pid` and `mon` are valid for the call.
    unsafe { sys::enif_monitor_process(caller_env, obj, pid, mon) }
}

/// `enif_demonitor_process(caller_env, obj, mon)`: 0 when the monitor was
/// active and is removed, non-zero when it had fired or was removed.
///
/// # Safety
/// As [`monitor_process`]; `mon` was written by it for `obj`.
pub unsafe fn demonitor_process(
    caller_env: RawEnv,
    obj: *const c_void,
    mon: &sys::ErlNifMonitor,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { sys::enif_demonitor_process(caller_env, obj, mon) }
}

/// Looks up a function the BEAM exports (by its C name).
pub fn vm_symbol(name: &std::ffi::CStr) -> Option<usize> {
    // SAFETY: dlsym only reads the global symbol tables; `name` is a
    // NUL-terminated string that outlives the call.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr as usize)
}

/// `vm_fn!(getter, c"name", fn type)` defines `getter() -> Option<fn type>`:
/// the running BEAM's own export of that function, looked up once. Used
/// where our result must be exactly the VM's (system info, errno names,
/// the environment, clocks).
macro_rules! vm_fn {
    ($getter:ident, $name:literal, $ty:ty) => {
        fn $getter() -> Option<$ty> {
            static SLOT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
            SLOT.get_or_init(|| $crate::ffi::vm_symbol($name))
                // SAFETY: the BEAM exports this name with exactly this C
                // type (it is declared so in erl_driver.h), and exported
                // functions stay mapped for the life of the VM.
                .map(|p| unsafe { std::mem::transmute::<usize, $ty>(p) })
        }
    };
}
pub(crate) use vm_fn;
