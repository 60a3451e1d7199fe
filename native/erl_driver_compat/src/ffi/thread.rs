//! The VM's thread primitives. rustler 0.39 declares none of them. In the
//! VM they are the driver thread functions themselves
//! (`enif_mutex_create` is `erl_drv_mutex_create`, `ErlNifMutex` is
//! `ErlDrvMutex`, ...), so going through them gives a driver exactly the
//! native locks, threads and thread-specific data.

use std::ffi::c_void;
use std::os::raw::c_int;

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
