//! "Multi-threading": mutexes, condition variables, rwlocks and
//! thread-specific data, on the VM's own primitives (`enif_mutex_*`,
//! `enif_cond_*`, `enif_rwlock_*`, `enif_tsd_*`, which in the VM *are*
//! the driver functions, so locking behaves exactly as natively).
//!
//! A driver gets our own handle ([`Slot`]), holding the VM's object and
//! the name, not the VM's pointer: so a NULL or destroyed handle is
//! reported (a log line) and answered with the documented value, where
//! the runtime would abort the VM. Slots are never returned to the
//! allocator: a destroyed one stays readable, marked free, until a later
//! create reuses it, so detecting a destroyed handle never reads freed
//! memory. (A pointer that never was a handle cannot be detected.)
//!
//! Natively `erl_drv_mutex_destroy` of a locked mutex (and of a held
//! rwlock) aborts the VM; here the lock is left alive (leaked) and the
//! misuse reported.
//!
//! Thread-specific data, which needs no handle slots, is in [`tsd`].

mod tsd;

use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use parking_lot::Mutex;

use super::guard;
use super::thread::report;
use crate::ffi::{self, NifMutex, NifRwLock};

pub(crate) use tsd::{
    erl_drv_tsd_get, erl_drv_tsd_key_create, erl_drv_tsd_key_destroy, erl_drv_tsd_set,
};

/// What a [`Slot`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// Nothing: never used, or destroyed.
    Free = 0,
    /// An `ErlDrvMutex`.
    Mutex = 0x6564_636d,
    /// An `ErlDrvCond`.
    Cond = 0x6564_6363,
    /// An `ErlDrvRWLock`.
    RwLock = 0x6564_6372,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Free => "destroyed handle",
            Kind::Mutex => "mutex",
            Kind::Cond => "condition variable",
            Kind::RwLock => "rwlock",
        }
    }
}

/// One mutex, condition variable or rwlock handed to a driver (what its
/// `ErlDrvMutex *`, `ErlDrvCond *` or `ErlDrvRWLock *` points at).
pub struct Slot {
    kind: AtomicU32,
    raw: AtomicPtr<c_void>,
    name: AtomicPtr<c_char>,
}

/// `ErlDrvMutex`.
pub type DrvMutex = Slot;
/// `ErlDrvCond`.
pub type DrvCond = Slot;
/// `ErlDrvRWLock`.
pub type DrvRwLock = Slot;

/// Destroyed slots, for reuse.
static FREE_SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());

/// Why a handle cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum BadHandle {
    /// NULL.
    Null,
    /// A handle that was destroyed (or never created).
    Destroyed,
    /// A live handle of another kind.
    Other(Kind),
}

impl BadHandle {
    fn describe(&self, wanted: Kind) -> String {
        match self {
            BadHandle::Null => format!("a NULL {}", wanted.noun()),
            BadHandle::Destroyed => format!("a destroyed {}", wanted.noun()),
            BadHandle::Other(k) => format!("a {} where a {} was expected", k.noun(), wanted.noun()),
        }
    }
}

impl Slot {
    /// A slot holding `raw` of `kind`, named `name`.
    pub fn claim(kind: Kind, raw: *mut c_void, name: CString) -> &'static Slot {
        let reused = FREE_SLOTS.lock().pop();
        let slot = reused.unwrap_or_else(|| {
            Box::leak(Box::new(Slot {
                kind: AtomicU32::new(Kind::Free as u32),
                raw: AtomicPtr::new(ptr::null_mut()),
                name: AtomicPtr::new(ptr::null_mut()),
            }))
        });
        slot.raw.store(raw, Ordering::Relaxed);
        slot.name.store(name.into_raw(), Ordering::Relaxed);
        slot.kind.store(kind as u32, Ordering::Release);
        slot
    }

    /// The slot `handle` points at when it is a live `kind`.
    ///
    /// # Safety
    /// `handle` is NULL or was returned by [`Slot::claim`] (slots are
    /// never freed).
    pub unsafe fn live<'a>(handle: *const Slot, kind: Kind) -> Result<&'a Slot, BadHandle> {
        // SAFETY: per the contract, a non-NULL handle is a slot, and slots
        // live for the rest of the program.
        let slot = unsafe { handle.as_ref() }.ok_or(BadHandle::Null)?;
        match slot.kind.load(Ordering::Acquire) {
            k if k == kind as u32 => Ok(slot),
            k if k == Kind::Mutex as u32 => Err(BadHandle::Other(Kind::Mutex)),
            k if k == Kind::Cond as u32 => Err(BadHandle::Other(Kind::Cond)),
            k if k == Kind::RwLock as u32 => Err(BadHandle::Other(Kind::RwLock)),
            _ => Err(BadHandle::Destroyed),
        }
    }

    /// Marks the live `kind` slot `handle` destroyed and returns what it
    /// held (the VM's object and the name); the slot goes back to the
    /// free list. Only one of concurrent releases succeeds.
    ///
    /// # Safety
    /// As for [`Slot::live`].
    pub unsafe fn release(
        handle: *const Slot,
        kind: Kind,
    ) -> Result<(*mut c_void, CString), BadHandle> {
        // SAFETY: per the contract.
        let slot: &'static Slot = unsafe { Slot::live(handle, kind) }?;
        if slot
            .kind
            .compare_exchange(
                kind as u32,
                Kind::Free as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(BadHandle::Destroyed);
        }
        let raw = slot.raw.swap(ptr::null_mut(), Ordering::Relaxed);
        let name = slot.name.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: `name` came from CString::into_raw in `claim`, and only
        // the one successful release takes it back.
        let name = unsafe { CString::from_raw(name) };
        FREE_SLOTS.lock().push(slot);
        Ok((raw, name))
    }

    fn raw<T>(&self) -> *mut T {
        self.raw.load(Ordering::Relaxed).cast()
    }

    fn name_ptr(&self) -> *mut c_char {
        self.name.load(Ordering::Relaxed)
    }
}

/// The name a driver gave, copied (natively a NULL name reads back as
/// `"unknown"`).
pub(super) fn copy_name(name: *const c_char) -> CString {
    if name.is_null() {
        return c"unknown".to_owned();
    }
    // SAFETY: a non-NULL name is a NUL-terminated string (the API's
    // contract).
    unsafe { CStr::from_ptr(name) }.to_owned()
}

/// Runs `f` on the live `kind` handle, or reports the misuse by `func`
/// and returns `default`.
fn with_live<R>(
    func: &str,
    handle: *const Slot,
    kind: Kind,
    default: R,
    f: impl FnOnce(&Slot) -> R,
) -> R {
    // SAFETY: the driver passes NULL or a handle we gave it.
    match unsafe { Slot::live(handle, kind) } {
        Ok(slot) => f(slot),
        Err(bad) => {
            report(func, &bad.describe(kind));
            default
        }
    }
}

fn create(
    func: &str,
    kind: Kind,
    name: *mut c_char,
    make: impl FnOnce(*mut c_char) -> *mut c_void,
) -> *mut Slot {
    let copy = copy_name(name);
    let raw = make(copy.as_ptr() as *mut c_char);
    if raw.is_null() {
        report(func, "no memory for the VM's object; NULL returned");
        return ptr::null_mut();
    }
    Slot::claim(kind, raw, copy) as *const Slot as *mut Slot
}

fn name_of(func: &str, handle: *mut Slot, kind: Kind) -> *mut c_char {
    if handle.is_null() {
        // Natively NULL, without complaint.
        return ptr::null_mut();
    }
    with_live(func, handle, kind, ptr::null_mut(), Slot::name_ptr)
}

// ---------------------------------------------------------------------
// Mutexes
// ---------------------------------------------------------------------

/// `ErlDrvMutex *erl_drv_mutex_create(char *name)`: NULL on failure.
pub(crate) extern "C" fn erl_drv_mutex_create(name: *mut c_char) -> *mut DrvMutex {
    guard(ptr::null_mut(), || {
        create("erl_drv_mutex_create", Kind::Mutex, name, |n| {
            // SAFETY: n is our NUL-terminated copy of the name.
            unsafe { ffi::mutex_create(n) }.cast()
        })
    })
}

/// `void erl_drv_mutex_destroy(ErlDrvMutex *mtx)`. A mutex still locked
/// is reported and left alive (natively the VM aborts).
pub(crate) extern "C" fn erl_drv_mutex_destroy(mtx: *mut DrvMutex) {
    const FUNC: &str = "erl_drv_mutex_destroy";
    guard((), || {
        // Test that nobody holds it before the handle becomes unusable.
        let busy = with_live(FUNC, mtx, Kind::Mutex, None, |slot| {
            let raw = slot.raw::<NifMutex>();
            // SAFETY: a live slot holds a live VM mutex.
            let got = unsafe { ffi::mutex_trylock(raw) } == 0;
            if got {
                // SAFETY: locked by this thread just above.
                unsafe { ffi::mutex_unlock(raw) };
            }
            Some(!got)
        });
        let Some(busy) = busy else { return };
        // SAFETY: the driver passes a handle we gave it.
        match unsafe { Slot::release(mtx, Kind::Mutex) } {
            Ok(_) if busy => report(FUNC, "a locked mutex; it is left alive (leaked)"),
            // SAFETY: released once (the slot's state changed), unlocked.
            Ok((raw, _name)) => unsafe { ffi::mutex_destroy(raw.cast()) },
            Err(bad) => report(FUNC, &bad.describe(Kind::Mutex)),
        }
    })
}

/// `int erl_drv_mutex_trylock(ErlDrvMutex *mtx)`: 0 when locked, `EBUSY`
/// when another holds it; `EINVAL` for a bad handle (natively an abort).
pub(crate) extern "C" fn erl_drv_mutex_trylock(mtx: *mut DrvMutex) -> c_int {
    guard(libc::EINVAL, || {
        with_live(
            "erl_drv_mutex_trylock",
            mtx,
            Kind::Mutex,
            libc::EINVAL,
            |slot| {
                // SAFETY: a live slot holds a live VM mutex.
                unsafe { ffi::mutex_trylock(slot.raw()) }
            },
        )
    })
}

/// `void erl_drv_mutex_lock(ErlDrvMutex *mtx)`
pub(crate) extern "C" fn erl_drv_mutex_lock(mtx: *mut DrvMutex) {
    guard((), || {
        with_live("erl_drv_mutex_lock", mtx, Kind::Mutex, (), |slot| {
            // SAFETY: a live slot holds a live VM mutex.
            unsafe { ffi::mutex_lock(slot.raw()) }
        })
    })
}

/// `void erl_drv_mutex_unlock(ErlDrvMutex *mtx)`
pub(crate) extern "C" fn erl_drv_mutex_unlock(mtx: *mut DrvMutex) {
    guard((), || {
        with_live("erl_drv_mutex_unlock", mtx, Kind::Mutex, (), |slot| {
            // SAFETY: a live slot holds a live VM mutex; that this thread
            // holds it is the driver's contract, as natively.
            unsafe { ffi::mutex_unlock(slot.raw()) }
        })
    })
}

/// `char *erl_drv_mutex_name(ErlDrvMutex *mtx)`: NULL for NULL.
pub(crate) extern "C" fn erl_drv_mutex_name(mtx: *mut DrvMutex) -> *mut c_char {
    guard(ptr::null_mut(), || {
        name_of("erl_drv_mutex_name", mtx, Kind::Mutex)
    })
}

// ---------------------------------------------------------------------
// Condition variables
// ---------------------------------------------------------------------

/// `ErlDrvCond *erl_drv_cond_create(char *name)`: NULL on failure.
pub(crate) extern "C" fn erl_drv_cond_create(name: *mut c_char) -> *mut DrvCond {
    guard(ptr::null_mut(), || {
        create("erl_drv_cond_create", Kind::Cond, name, |n| {
            // SAFETY: n is our NUL-terminated copy of the name.
            unsafe { ffi::cond_create(n) }.cast()
        })
    })
}

/// `void erl_drv_cond_destroy(ErlDrvCond *cnd)`
pub(crate) extern "C" fn erl_drv_cond_destroy(cnd: *mut DrvCond) {
    guard((), || {
        // SAFETY: the driver passes NULL or a handle we gave it.
        match unsafe { Slot::release(cnd, Kind::Cond) } {
            // SAFETY: released once; nobody waiting is the driver's
            // contract, as natively.
            Ok((raw, _name)) => unsafe { ffi::cond_destroy(raw.cast()) },
            Err(bad) => report("erl_drv_cond_destroy", &bad.describe(Kind::Cond)),
        }
    })
}

/// `void erl_drv_cond_signal(ErlDrvCond *cnd)`
pub(crate) extern "C" fn erl_drv_cond_signal(cnd: *mut DrvCond) {
    guard((), || {
        with_live("erl_drv_cond_signal", cnd, Kind::Cond, (), |slot| {
            // SAFETY: a live slot holds a live VM condition variable.
            unsafe { ffi::cond_signal(slot.raw()) }
        })
    })
}

/// `void erl_drv_cond_broadcast(ErlDrvCond *cnd)`
pub(crate) extern "C" fn erl_drv_cond_broadcast(cnd: *mut DrvCond) {
    guard((), || {
        with_live("erl_drv_cond_broadcast", cnd, Kind::Cond, (), |slot| {
            // SAFETY: a live slot holds a live VM condition variable.
            unsafe { ffi::cond_broadcast(slot.raw()) }
        })
    })
}

/// `void erl_drv_cond_wait(ErlDrvCond *cnd, ErlDrvMutex *mtx)`: may wake
/// up spuriously (as natively); with a bad handle it returns at once.
/// OTP 25's `erl_driver.h` declares no timed wait.
pub(crate) extern "C" fn erl_drv_cond_wait(cnd: *mut DrvCond, mtx: *mut DrvMutex) {
    const FUNC: &str = "erl_drv_cond_wait";
    guard((), || {
        with_live(FUNC, cnd, Kind::Cond, (), |c| {
            with_live(FUNC, mtx, Kind::Mutex, (), |m| {
                // SAFETY: both slots are live; that this thread holds the
                // mutex is the driver's contract, as natively.
                unsafe { ffi::cond_wait(c.raw(), m.raw()) }
            })
        })
    })
}

/// `char *erl_drv_cond_name(ErlDrvCond *cnd)`: NULL for NULL.
pub(crate) extern "C" fn erl_drv_cond_name(cnd: *mut DrvCond) -> *mut c_char {
    guard(ptr::null_mut(), || {
        name_of("erl_drv_cond_name", cnd, Kind::Cond)
    })
}

// ---------------------------------------------------------------------
// Rwlocks
// ---------------------------------------------------------------------

/// `ErlDrvRWLock *erl_drv_rwlock_create(char *name)`: NULL on failure.
pub(crate) extern "C" fn erl_drv_rwlock_create(name: *mut c_char) -> *mut DrvRwLock {
    guard(ptr::null_mut(), || {
        create("erl_drv_rwlock_create", Kind::RwLock, name, |n| {
            // SAFETY: n is our NUL-terminated copy of the name.
            unsafe { ffi::rwlock_create(n) }.cast()
        })
    })
}

/// `void erl_drv_rwlock_destroy(ErlDrvRWLock *rwlck)`. A lock still held
/// is reported and left alive (natively the VM aborts).
pub(crate) extern "C" fn erl_drv_rwlock_destroy(rwlck: *mut DrvRwLock) {
    const FUNC: &str = "erl_drv_rwlock_destroy";
    guard((), || {
        let busy = with_live(FUNC, rwlck, Kind::RwLock, None, |slot| {
            let raw = slot.raw::<NifRwLock>();
            // SAFETY: a live slot holds a live VM rwlock.
            let got = unsafe { ffi::rwlock_tryrwlock(raw) } == 0;
            if got {
                // SAFETY: write-locked by this thread just above.
                unsafe { ffi::rwlock_rwunlock(raw) };
            }
            Some(!got)
        });
        let Some(busy) = busy else { return };
        // SAFETY: the driver passes a handle we gave it.
        match unsafe { Slot::release(rwlck, Kind::RwLock) } {
            Ok(_) if busy => report(FUNC, "a locked rwlock; it is left alive (leaked)"),
            // SAFETY: released once (the slot's state changed), unlocked.
            Ok((raw, _name)) => unsafe { ffi::rwlock_destroy(raw.cast()) },
            Err(bad) => report(FUNC, &bad.describe(Kind::RwLock)),
        }
    })
}

/// `int erl_drv_rwlock_tryrlock(ErlDrvRWLock *rwlck)`: 0 or `EBUSY`;
/// `EINVAL` for a bad handle (natively an abort).
pub(crate) extern "C" fn erl_drv_rwlock_tryrlock(rwlck: *mut DrvRwLock) -> c_int {
    guard(libc::EINVAL, || {
        with_live(
            "erl_drv_rwlock_tryrlock",
            rwlck,
            Kind::RwLock,
            libc::EINVAL,
            |slot| {
                // SAFETY: a live slot holds a live VM rwlock.
                unsafe { ffi::rwlock_tryrlock(slot.raw()) }
            },
        )
    })
}

/// `void erl_drv_rwlock_rlock(ErlDrvRWLock *rwlck)`
pub(crate) extern "C" fn erl_drv_rwlock_rlock(rwlck: *mut DrvRwLock) {
    guard((), || {
        with_live("erl_drv_rwlock_rlock", rwlck, Kind::RwLock, (), |slot| {
            // SAFETY: a live slot holds a live VM rwlock.
            unsafe { ffi::rwlock_rlock(slot.raw()) }
        })
    })
}

/// `void erl_drv_rwlock_runlock(ErlDrvRWLock *rwlck)`
pub(crate) extern "C" fn erl_drv_rwlock_runlock(rwlck: *mut DrvRwLock) {
    guard((), || {
        with_live("erl_drv_rwlock_runlock", rwlck, Kind::RwLock, (), |slot| {
            // SAFETY: a live slot holds a live VM rwlock; that this thread
            // read-holds it is the driver's contract, as natively.
            unsafe { ffi::rwlock_runlock(slot.raw()) }
        })
    })
}

/// `int erl_drv_rwlock_tryrwlock(ErlDrvRWLock *rwlck)`: 0 or `EBUSY`;
/// `EINVAL` for a bad handle (natively an abort).
pub(crate) extern "C" fn erl_drv_rwlock_tryrwlock(rwlck: *mut DrvRwLock) -> c_int {
    guard(libc::EINVAL, || {
        with_live(
            "erl_drv_rwlock_tryrwlock",
            rwlck,
            Kind::RwLock,
            libc::EINVAL,
            |slot| {
                // SAFETY: a live slot holds a live VM rwlock.
                unsafe { ffi::rwlock_tryrwlock(slot.raw()) }
            },
        )
    })
}

/// `void erl_drv_rwlock_rwlock(ErlDrvRWLock *rwlck)`
pub(crate) extern "C" fn erl_drv_rwlock_rwlock(rwlck: *mut DrvRwLock) {
    guard((), || {
        with_live("erl_drv_rwlock_rwlock", rwlck, Kind::RwLock, (), |slot| {
            // SAFETY: a live slot holds a live VM rwlock.
            unsafe { ffi::rwlock_rwlock(slot.raw()) }
        })
    })
}

/// `void erl_drv_rwlock_rwunlock(ErlDrvRWLock *rwlck)`
pub(crate) extern "C" fn erl_drv_rwlock_rwunlock(rwlck: *mut DrvRwLock) {
    guard((), || {
        with_live("erl_drv_rwlock_rwunlock", rwlck, Kind::RwLock, (), |slot| {
            // SAFETY: a live slot holds a live VM rwlock; that this thread
            // write-holds it is the driver's contract, as natively.
            unsafe { ffi::rwlock_rwunlock(slot.raw()) }
        })
    })
}

/// `char *erl_drv_rwlock_name(ErlDrvRWLock *rwlck)`: NULL for NULL.
pub(crate) extern "C" fn erl_drv_rwlock_name(rwlck: *mut DrvRwLock) -> *mut c_char {
    guard(ptr::null_mut(), || {
        name_of("erl_drv_rwlock_name", rwlck, Kind::RwLock)
    })
}

#[cfg(test)]
mod tests;
