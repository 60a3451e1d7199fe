//! The lowest layer: every raw `enif_*` call the crate makes, each wrapped
//! in a small `unsafe fn` whose `# Safety` section states what the caller
//! must guarantee. Nothing above this module calls `rustler::sys` directly
//! (rustler's own safe API is used where it has one).
//!
//! rustler 0.39 declares every `enif_*` function this crate needs, so
//! nothing is declared here by hand; a function rustler lacks (e.g. for
//! `enif_select_x` or the thread primitives of the coming issues) is
//! declared in this module, in an `extern "C"` block, and wrapped the same
//! way.

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

// ---------------------------------------------------------------------
// Thread primitives. rustler 0.39 declares none of them. In the VM they
// are the driver thread functions themselves (`enif_mutex_create` is
// `erl_drv_mutex_create`, `ErlNifMutex` is `ErlDrvMutex`, ...), so going
// through them gives a driver exactly the native locks, threads and
// thread-specific data.
// ---------------------------------------------------------------------

/// A `char *` name passed to the VM (NULL or NUL-terminated; the VM
/// copies it).
pub type NamePtr = *mut std::ffi::c_char;

/// The VM's `ErlNifMutex` (opaque).
#[repr(C)]
pub struct NifMutex {
    _opaque: [u8; 0],
}

/// The VM's `ErlNifCond` (opaque).
#[repr(C)]
pub struct NifCond {
    _opaque: [u8; 0],
}

/// The VM's `ErlNifRWLock` (opaque).
#[repr(C)]
pub struct NifRwLock {
    _opaque: [u8; 0],
}

/// What the VM's `ErlNifTid` points at (opaque).
#[repr(C)]
pub struct NifTidData {
    _opaque: [u8; 0],
}

/// The VM's `ErlNifTid`.
pub type NifTid = *mut NifTidData;

/// `ErlNifThreadOpts` (= `ErlDrvThreadOpts`).
#[repr(C)]
pub struct NifThreadOpts {
    /// Suggested stack size in kilo-words; -1 for the VM's default.
    pub suggested_stack_size: c_int,
}

/// A thread's start function, `void *(*)(void *)`.
pub type ThreadFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

extern "C" {
    fn enif_mutex_create(name: NamePtr) -> *mut NifMutex;
    fn enif_mutex_destroy(mtx: *mut NifMutex);
    fn enif_mutex_trylock(mtx: *mut NifMutex) -> c_int;
    fn enif_mutex_lock(mtx: *mut NifMutex);
    fn enif_mutex_unlock(mtx: *mut NifMutex);
    fn enif_cond_create(name: NamePtr) -> *mut NifCond;
    fn enif_cond_destroy(cnd: *mut NifCond);
    fn enif_cond_signal(cnd: *mut NifCond);
    fn enif_cond_broadcast(cnd: *mut NifCond);
    fn enif_cond_wait(cnd: *mut NifCond, mtx: *mut NifMutex);
    fn enif_rwlock_create(name: NamePtr) -> *mut NifRwLock;
    fn enif_rwlock_destroy(rwlck: *mut NifRwLock);
    fn enif_rwlock_tryrlock(rwlck: *mut NifRwLock) -> c_int;
    fn enif_rwlock_rlock(rwlck: *mut NifRwLock);
    fn enif_rwlock_runlock(rwlck: *mut NifRwLock);
    fn enif_rwlock_tryrwlock(rwlck: *mut NifRwLock) -> c_int;
    fn enif_rwlock_rwlock(rwlck: *mut NifRwLock);
    fn enif_rwlock_rwunlock(rwlck: *mut NifRwLock);
    fn enif_tsd_key_create(name: NamePtr, key: *mut c_int) -> c_int;
    fn enif_tsd_key_destroy(key: c_int);
    fn enif_tsd_set(key: c_int, data: *mut c_void);
    fn enif_tsd_get(key: c_int) -> *mut c_void;
    fn enif_thread_create(
        name: NamePtr,
        tid: *mut NifTid,
        func: ThreadFn,
        args: *mut c_void,
        opts: *mut NifThreadOpts,
    ) -> c_int;
    fn enif_thread_self() -> NifTid;
    fn enif_thread_join(tid: NifTid, respp: *mut *mut c_void) -> c_int;
    fn enif_thread_name(tid: NifTid) -> NamePtr;
}

extern "C-unwind" {
    // Ends the thread with pthread_exit: a forced unwind through the
    // caller's frames (hence "C-unwind").
    fn enif_thread_exit(resp: *mut c_void) -> !;
}

/// `enif_mutex_create`: NULL when out of memory.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub unsafe fn mutex_create(name: NamePtr) -> *mut NifMutex {
    // SAFETY: per the contract.
    unsafe { enif_mutex_create(name) }
}

/// `enif_mutex_destroy`. The VM aborts if the mutex is locked.
///
/// # Safety
/// `mtx` is a live, unlocked mutex from [`mutex_create`], destroyed once.
pub unsafe fn mutex_destroy(mtx: *mut NifMutex) {
    // SAFETY: per the contract.
    unsafe { enif_mutex_destroy(mtx) }
}

/// `enif_mutex_trylock`: 0 when locked, `EBUSY` otherwise.
///
/// # Safety
/// `mtx` is a live mutex from [`mutex_create`].
pub unsafe fn mutex_trylock(mtx: *mut NifMutex) -> c_int {
    // SAFETY: per the contract.
    unsafe { enif_mutex_trylock(mtx) }
}

/// `enif_mutex_lock`.
///
/// # Safety
/// `mtx` is a live mutex from [`mutex_create`].
pub unsafe fn mutex_lock(mtx: *mut NifMutex) {
    // SAFETY: per the contract.
    unsafe { enif_mutex_lock(mtx) }
}

/// `enif_mutex_unlock`.
///
/// # Safety
/// `mtx` is a live mutex from [`mutex_create`] locked by this thread.
pub unsafe fn mutex_unlock(mtx: *mut NifMutex) {
    // SAFETY: per the contract.
    unsafe { enif_mutex_unlock(mtx) }
}

/// `enif_cond_create`: NULL when out of memory.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub unsafe fn cond_create(name: NamePtr) -> *mut NifCond {
    // SAFETY: per the contract.
    unsafe { enif_cond_create(name) }
}

/// `enif_cond_destroy`.
///
/// # Safety
/// `cnd` is a live condition variable from [`cond_create`] nobody waits
/// on, destroyed once.
pub unsafe fn cond_destroy(cnd: *mut NifCond) {
    // SAFETY: per the contract.
    unsafe { enif_cond_destroy(cnd) }
}

/// `enif_cond_signal`.
///
/// # Safety
/// `cnd` is a live condition variable from [`cond_create`].
pub unsafe fn cond_signal(cnd: *mut NifCond) {
    // SAFETY: per the contract.
    unsafe { enif_cond_signal(cnd) }
}

/// `enif_cond_broadcast`.
///
/// # Safety
/// `cnd` is a live condition variable from [`cond_create`].
pub unsafe fn cond_broadcast(cnd: *mut NifCond) {
    // SAFETY: per the contract.
    unsafe { enif_cond_broadcast(cnd) }
}

/// `enif_cond_wait` (may wake up spuriously).
///
/// # Safety
/// `cnd` and `mtx` are live, from [`cond_create`] and [`mutex_create`];
/// this thread holds `mtx`.
pub unsafe fn cond_wait(cnd: *mut NifCond, mtx: *mut NifMutex) {
    // SAFETY: per the contract.
    unsafe { enif_cond_wait(cnd, mtx) }
}

/// `enif_rwlock_create`: NULL when out of memory.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub unsafe fn rwlock_create(name: NamePtr) -> *mut NifRwLock {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_create(name) }
}

/// `enif_rwlock_destroy`. The VM aborts if the lock is held.
///
/// # Safety
/// `rw` is a live, unlocked rwlock from [`rwlock_create`], destroyed once.
pub unsafe fn rwlock_destroy(rw: *mut NifRwLock) {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_destroy(rw) }
}

/// `enif_rwlock_tryrlock`: 0 when read-locked, `EBUSY` otherwise.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`].
pub unsafe fn rwlock_tryrlock(rw: *mut NifRwLock) -> c_int {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_tryrlock(rw) }
}

/// `enif_rwlock_rlock`.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`].
pub unsafe fn rwlock_rlock(rw: *mut NifRwLock) {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_rlock(rw) }
}

/// `enif_rwlock_runlock`.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`] read-locked by this
/// thread.
pub unsafe fn rwlock_runlock(rw: *mut NifRwLock) {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_runlock(rw) }
}

/// `enif_rwlock_tryrwlock`: 0 when write-locked, `EBUSY` otherwise.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`].
pub unsafe fn rwlock_tryrwlock(rw: *mut NifRwLock) -> c_int {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_tryrwlock(rw) }
}

/// `enif_rwlock_rwlock`.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`].
pub unsafe fn rwlock_rwlock(rw: *mut NifRwLock) {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_rwlock(rw) }
}

/// `enif_rwlock_rwunlock`.
///
/// # Safety
/// `rw` is a live rwlock from [`rwlock_create`] write-locked by this
/// thread.
pub unsafe fn rwlock_rwunlock(rw: *mut NifRwLock) {
    // SAFETY: per the contract.
    unsafe { enif_rwlock_rwunlock(rw) }
}

/// `enif_tsd_key_create`: the key, or an errno value.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub unsafe fn tsd_key_create(name: NamePtr) -> Result<c_int, c_int> {
    let mut key: c_int = -1;
    // SAFETY: per the contract; `key` is a local.
    let res = unsafe { enif_tsd_key_create(name, &mut key) };
    if res == 0 {
        Ok(key)
    } else {
        Err(res)
    }
}

/// `enif_tsd_key_destroy`. The VM aborts for a key that is not live.
///
/// # Safety
/// `key` is a live key from [`tsd_key_create`], destroyed once.
pub unsafe fn tsd_key_destroy(key: c_int) {
    // SAFETY: per the contract.
    unsafe { enif_tsd_key_destroy(key) }
}

/// `enif_tsd_set` for the calling thread. The VM aborts for a key that
/// is not live.
///
/// # Safety
/// `key` is a live key from [`tsd_key_create`].
pub unsafe fn tsd_set(key: c_int, data: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { enif_tsd_set(key, data) }
}

/// `enif_tsd_get` for the calling thread (NULL when never set). The VM
/// aborts for a key that is not live.
///
/// # Safety
/// `key` is a live key from [`tsd_key_create`].
pub unsafe fn tsd_get(key: c_int) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe { enif_tsd_get(key) }
}

/// `enif_thread_create`: the new thread's id, or an errno value. The VM
/// honours `opts.suggested_stack_size` and names the thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `func` may be called with
/// `args` on the new thread; `opts` is NULL or points at a readable
/// `NifThreadOpts`.
pub unsafe fn thread_create(
    name: NamePtr,
    func: ThreadFn,
    args: *mut c_void,
    opts: *mut NifThreadOpts,
) -> Result<NifTid, c_int> {
    let mut tid: NifTid = std::ptr::null_mut();
    // SAFETY: per the contract; `tid` is a local.
    let res = unsafe { enif_thread_create(name, &mut tid, func, args, opts) };
    if res == 0 {
        Ok(tid)
    } else {
        Err(res)
    }
}

/// `enif_thread_self`: the VM's id of the calling thread (made by the VM
/// on first use for a thread it did not create, freed when that thread
/// ends).
pub fn thread_self() -> NifTid {
    // SAFETY: enif_thread_self has no preconditions.
    unsafe { enif_thread_self() }
}

/// `enif_thread_name`: the VM's name of a thread (a placeholder for a
/// thread it did not create).
///
/// # Safety
/// `tid` is the id of a live thread (from [`thread_self`] on it).
pub unsafe fn thread_name(tid: NifTid) -> NamePtr {
    // SAFETY: per the contract.
    unsafe { enif_thread_name(tid) }
}

/// `enif_thread_join`: 0 (the thread's result stored in `*respp` unless
/// NULL) or an errno value. On 0 the VM has freed `tid`.
///
/// # Safety
/// `tid` is from [`thread_create`], joined once; `respp` is NULL or
/// writable.
pub unsafe fn thread_join(tid: NifTid, respp: *mut *mut c_void) -> c_int {
    // SAFETY: per the contract.
    unsafe { enif_thread_join(tid, respp) }
}

/// `enif_thread_exit`: ends the calling thread with result `resp`, by a
/// forced unwind (pthread_exit) of its stack.
///
/// # Safety
/// The calling thread was made by [`thread_create`] (the VM aborts
/// otherwise), and every frame between here and the thread's start
/// function may be unwound without running destructors (no value with a
/// `Drop` live, no `catch_unwind`).
#[inline(always)]
pub unsafe fn thread_exit(resp: *mut c_void) -> ! {
    // SAFETY: per the contract.
    unsafe { enif_thread_exit(resp) }
}
