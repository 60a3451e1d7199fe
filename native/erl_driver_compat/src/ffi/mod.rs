//! The lowest layer: every raw `enif_*` call the crate makes, each wrapped
//! in a small `unsafe fn` whose `# Safety` section states what the caller
//! must guarantee. Nothing above this module calls `rustler::sys` directly
//! (rustler's own safe API is used where it has one).
//!
//! rustler 0.39 declares most `enif_*` functions this crate needs; those
//! it lacks are declared here, in `extern` blocks, and wrapped the same
//! way: the thread primitives in [`thread`]. (rustler's resource types have
//! no `stop` callback: the select resource type is opened here, with
//! [`init_resource_type`].)

mod thread;
pub use thread::*;
mod vm_binary;
pub use vm_binary::*;

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
    // SAFETY: caller_env is the running call's env or NULL off the VM's
    // threads, and msg belongs to msg_env (or to caller_env when msg_env
    // is NULL), as enif_send requires (caller's contract); `to` is a live
    // reference for the call.
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
    // SAFETY: env is the process-bound env of the running NIF call
    // (caller's contract), the only env enif_consume_timeslice accepts.
    unsafe { sys::enif_consume_timeslice(env, percent) }
}

/// `[head | tail]`.
///
/// # Safety
/// Both terms belong to `env`, a live env.
pub unsafe fn list_cell(env: RawEnv, head: RawTerm, tail: RawTerm) -> RawTerm {
    // SAFETY: env is live and head and tail are terms of it (caller's
    // contract), so the new cell may refer to them.
    unsafe { sys::enif_make_list_cell(env, head, tail) }
}

/// `[]`.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn empty_list(env: RawEnv) -> RawTerm {
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// `[]` is an immediate, the same word in every env: asked for once
    /// (0 until then: no term is the word 0).
    static NIL: AtomicUsize = AtomicUsize::new(0);
    let word = NIL.load(Ordering::Relaxed);
    if word != 0 {
        return from_raw(word);
    }
    // SAFETY: env is live (caller's contract); an empty array needs no
    // elements.
    let nil = unsafe { sys::enif_make_list_from_array(env, std::ptr::null(), 0) };
    NIL.store(to_raw(nil), Ordering::Relaxed);
    nil
}

/// The tuple of `elements` (no allocation on the way, unlike rustler's
/// tuple encoder).
///
/// # Safety
/// `env` is a live env and the elements belong to it.
pub unsafe fn tuple(env: RawEnv, elements: &[RawTerm]) -> RawTerm {
    // SAFETY: env is live and the elements belong to it (caller's
    // contract); the array holds `len` terms.
    unsafe { sys::enif_make_tuple_from_array(env, elements.as_ptr(), elements.len() as u32) }
}

/// The word of a local pid's term: equal words, equal pids (a local pid
/// is an immediate), without the VM call `enif_compare_pids` makes.
pub fn pid_word(pid: &ErlNifPid) -> usize {
    // SAFETY: ErlNifPid is a repr(C) struct of one ERL_NIF_TERM.
    to_raw(unsafe { std::mem::transmute::<ErlNifPid, RawTerm>(*pid) })
}

/// A small integer.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn int(env: RawEnv, value: c_int) -> RawTerm {
    // SAFETY: env is a live env (caller's contract); an int needs nothing
    // else.
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

/// The bytes of `term` when it is a binary (whole bytes), else `None`.
/// The bytes are valid while the term is (the calling NIF's env).
///
/// # Safety
/// `term` belongs to `env`, a live env.
#[inline]
pub unsafe fn binary_bytes<'a>(env: RawEnv, term: RawTerm) -> Option<&'a [u8]> {
    let mut bin = std::mem::MaybeUninit::<ErlNifBinary>::uninit();
    // SAFETY: term belongs to env, a live env (caller's contract); `bin`
    // is a writable local out-parameter, written on success.
    if unsafe { sys::enif_inspect_binary(env, term, bin.as_mut_ptr()) } == 0 {
        return None;
    }
    // The two fields are read one by one, as the VM wrote them: a copy of
    // the whole struct became one 16-byte load, which waited for the
    // VM's two 8-byte stores (a store-forwarding stall on every call).
    let bin = bin.as_ptr();
    // SAFETY: `bin` points at the local out-parameter; only the field's
    // address is computed.
    let size_at = unsafe { &raw const (*bin).size };
    // SAFETY: enif_inspect_binary returned true, so it wrote `size`.
    let size = unsafe { size_at.read() };
    if size == 0 {
        return Some(&[]);
    }
    // SAFETY: as for `size_at`.
    let data_at = unsafe { &raw const (*bin).data };
    // SAFETY: enif_inspect_binary returned true, so it wrote `data`.
    let data = unsafe { data_at.read() };
    // SAFETY: an inspected binary has `size` readable bytes at `data`,
    // valid while the term is (the caller's env, the lifetime 'a stands
    // for it).
    Some(unsafe { std::slice::from_raw_parts(data, size) })
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
    // SAFETY: `term` belongs to `env`, a live env (caller's contract).
    if unsafe { sys::enif_is_binary(env, term) } != 0 {
        // SAFETY: an all-zero ErlNifBinary is a valid out-parameter.
        let mut bin: ErlNifBinary = unsafe { std::mem::zeroed() };
        // SAFETY: term is a binary of env, a live env (caller's contract);
        // `bin` is a writable local out-parameter.
        if unsafe { sys::enif_inspect_binary(env, term, &mut bin) } == 0 {
            return IoTerm::Other;
        }
        return IoTerm::Binary(bin.data, bin.size);
    }
    let mut head = ErlNifTerm::default();
    let mut tail = ErlNifTerm::default();
    // SAFETY: term belongs to env, a live env (caller's contract); head
    // and tail are writable local out-parameters.
    if unsafe { sys::enif_get_list_cell(env, term, &mut head, &mut tail) } != 0 {
        return IoTerm::Cons(head, tail);
    }
    // SAFETY: term belongs to env, a live env (caller's contract).
    if unsafe { sys::enif_is_empty_list(env, term) } != 0 {
        return IoTerm::Nil;
    }
    let mut value: c_int = 0;
    // SAFETY: term belongs to env, a live env (caller's contract); value
    // is a writable local out-parameter.
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
    // SAFETY: env is a live env (caller's contract); enif_is_atom only
    // tests the word's tag bits, so any word is accepted.
    unsafe { sys::enif_is_atom(env, term) != 0 }
}

/// The local pid `term` is, if it is one. Only the term's tag is looked
/// at, so any word may be passed.
///
/// # Safety
/// `env` is a live env.
pub unsafe fn local_pid(env: RawEnv, term: RawTerm) -> Option<ErlNifPid> {
    let mut pid = std::mem::MaybeUninit::<ErlNifPid>::uninit();
    // SAFETY: env is a live env (caller's contract); enif_get_local_pid
    // only tests the word's tag bits and writes the out-parameter, a
    // local, on success only.
    if unsafe { sys::enif_get_local_pid(env, term, pid.as_mut_ptr()) } != 0 {
        // SAFETY: enif_get_local_pid returned true, so it wrote the pid.
        Some(unsafe { pid.assume_init() })
    } else {
        None
    }
}

/// The word of `term` when it is a local pid (the key its port is
/// registered under, see `terms::pid_term`), else `None`: one VM call,
/// where decoding a `LocalPid` and making its term again takes two.
///
/// # Safety
/// `env` is a live env.
#[inline]
pub unsafe fn local_pid_key(env: RawEnv, term: RawTerm) -> Option<usize> {
    // SAFETY: env is a live env (caller's contract).
    let pid = unsafe { local_pid(env, term) }?;
    // SAFETY: ErlNifPid is a repr(C) struct of one ERL_NIF_TERM: the term
    // `enif_make_pid` makes of it (its word is the pid's term).
    Some(to_raw(unsafe {
        std::mem::transmute::<ErlNifPid, RawTerm>(pid)
    }))
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
// --- enif_select and the resource type it needs ----------------------------

/// `ERL_NIF_SELECT_READ` (mode bit; also `ERL_DRV_READ`).
pub const SELECT_READ: c_int = 1;
/// `ERL_NIF_SELECT_WRITE` (mode bit; also `ERL_DRV_WRITE`).
pub const SELECT_WRITE: c_int = 2;
/// `ERL_NIF_SELECT_STOP` (mode bit; also `ERL_DRV_USE`).
pub const SELECT_STOP: c_int = 4;
/// `ERL_NIF_SELECT_CANCEL` (mode bit; the extra bit of
/// `ERL_DRV_USE_NO_CALLBACK`).
pub const SELECT_CANCEL: c_int = 8;

/// `ERL_NIF_SELECT_INVALID_EVENT` (result bit): not a descriptor the VM
/// can poll.
pub const SELECT_INVALID_EVENT: c_int = 4;

/// The `stop` callback of a resource type: `(env, obj, event,
/// is_direct_call)`.
pub type ResourceStop = unsafe extern "C" fn(RawEnv, *mut c_void, c_int, c_int);
/// The destructor of a resource type: `(env, obj)`.
pub type ResourceDtor = unsafe extern "C" fn(RawEnv, *mut c_void);

/// Opens (creates) the resource type `name` with a destructor and a
/// `stop` callback; NULL on failure.
///
/// # Safety
/// `env` is the env of the library's `load` callback (the only place a
/// resource type may be created).
pub unsafe fn init_resource_type(
    env: RawEnv,
    name: &std::ffi::CStr,
    dtor: ResourceDtor,
    stop: ResourceStop,
) -> *const sys::ErlNifResourceType {
    let init = sys::ErlNifResourceTypeInit {
        dtor: dtor as *const sys::ErlNifResourceDtor,
        stop: stop as *const sys::ErlNifResourceStop,
        down: std::ptr::null(),
        // dtor and stop: the VM reads this many leading members.
        members: 2,
        dyncall: std::ptr::null(),
    };
    let mut tried = sys::ErlNifResourceFlags::ERL_NIF_RT_CREATE;
    // SAFETY: per the contract; the name is NUL-terminated, `init` and
    // `tried` are locals the VM reads/writes during the call only.
    unsafe {
        sys::enif_init_resource_type(
            env,
            name.as_ptr(),
            &init,
            sys::ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            &mut tried,
        )
    }
}

/// `enif_alloc_resource`: a new object of `size` bytes (aligned for 8),
/// holding one reference for the caller.
///
/// # Safety
/// `rtype` is a resource type opened by this library.
pub unsafe fn alloc_resource(rtype: *const sys::ErlNifResourceType, size: usize) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe { sys::enif_alloc_resource(rtype, size) }
}

/// `enif_release_resource`: drops one reference.
///
/// # Safety
/// `obj` is a resource object the caller holds a reference to.
pub unsafe fn release_resource(obj: *const c_void) {
    // SAFETY: per the contract.
    unsafe { sys::enif_release_resource(obj) }
}

/// `enif_make_resource`: the term of `obj` in `env`.
///
/// # Safety
/// `obj` is a live resource object; `env` a live env.
pub unsafe fn make_resource(env: RawEnv, obj: *const c_void) -> RawTerm {
    // SAFETY: per the contract.
    unsafe { sys::enif_make_resource(env, obj) }
}

/// The object of resource type `rtype` that `term` is, if it is one.
///
/// # Safety
/// `env` is a live env and `term` belongs to it; `rtype` is a resource
/// type of this library.
pub unsafe fn get_resource(
    env: RawEnv,
    term: RawTerm,
    rtype: *const sys::ErlNifResourceType,
) -> Option<*const c_void> {
    let mut obj: *const c_void = std::ptr::null();
    // SAFETY: per the contract; `obj` is a local out-parameter.
    let ok = unsafe { sys::enif_get_resource(env, term, rtype, &mut obj) } != 0;
    ok.then_some(obj)
}

/// A non-negative integer below 2^59: an immediate term, valid in every
/// env (used as the `Ref` of `enif_select` messages).
///
/// # Safety
/// `env` is a live env.
pub unsafe fn small_uint(env: RawEnv, value: u64) -> RawTerm {
    debug_assert!(value < 1 << 59);
    // SAFETY: per the contract; a small value needs no heap.
    unsafe { sys::enif_make_ulong(env, value as std::os::raw::c_ulong) }
}

/// `enif_select(env, fd, mode, obj, pid, reference)`: the VM's result
/// bits (negative on failure).
///
/// # Safety
/// `env` is a live env; `obj` a live object of a resource type with a
/// `stop` callback; `reference` an immediate term; `pid` NULL or a local
/// pid.
pub unsafe fn select(
    env: RawEnv,
    fd: c_int,
    mode: c_int,
    obj: *const c_void,
    pid: *const ErlNifPid,
    reference: RawTerm,
) -> c_int {
    // SAFETY: per the contract (the VM does not write through `obj`'s
    // pointer: it only takes references).
    unsafe { sys::enif_select(env, fd, mode, obj as *mut c_void, pid, reference) }
}
