//! Port data locks (`ErlDrvPDL`): a real mutex a driver locks from any
//! thread, with a reference count, and the table of live PDLs that every
//! handle a driver passes is checked against (see the parent module for
//! why the queue's PDL is separate from the port's lock).

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Mutex, RawMutex};

/// An `ErlDrvPDL` as the driver passes it: an address that is used only
/// once found among the live PDLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdlHandle(pub usize);

impl PdlHandle {
    /// The handle of `ptr`.
    pub fn from_ptr<T>(ptr: *mut T) -> PdlHandle {
        PdlHandle(ptr as usize)
    }

    /// The pointer given to the driver.
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// True for the NULL handle.
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

/// A port data lock (`ErlDrvPDL`): a mutex the driver locks and unlocks
/// from any thread, and a reference count; it lives until the count
/// reaches zero (the port holds one reference while it is open).
pub struct Pdl {
    raw: RawMutex,
    refc: AtomicIsize,
    /// The thread holding the mutex (0: none).
    owner: AtomicU64,
    /// Keeps the port's memory (and so its `ErlDrvPort` handle) from
    /// being reused while the PDL lives, as natively.
    _owner_port: Box<dyn Any + Send + Sync>,
}

/// Live PDLs: a pointer a driver passes is used only when it is in here.
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

/// Whether [`Pdl::lock`] took the mutex.
#[derive(Debug, PartialEq, Eq)]
pub enum Locked {
    /// Locked now.
    Now,
    /// This thread holds it already.
    AlreadyHeld,
    /// Not a live PDL.
    Invalid,
}

fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

impl Pdl {
    pub(super) fn create(owner: Box<dyn Any + Send + Sync>) -> PdlHandle {
        let pdl = Box::into_raw(Box::new(Pdl {
            raw: RawMutex::INIT,
            refc: AtomicIsize::new(1),
            owner: AtomicU64::new(0),
            _owner_port: owner,
        }));
        LIVE.lock()
            .get_or_insert_with(HashSet::new)
            .insert(pdl as usize);
        PdlHandle::from_ptr(pdl)
    }

    /// Runs `f` on `pdl` if it is live, with the registry locked (so that
    /// it cannot be destroyed meanwhile).
    fn live<R>(pdl: PdlHandle, f: impl FnOnce(&Pdl) -> R) -> Option<R> {
        let live = LIVE.lock();
        if !live.as_ref().is_some_and(|s| s.contains(&pdl.0)) {
            return None;
        }
        // SAFETY: registered PDLs are live allocations; deregistration
        // (under this lock) precedes their destruction.
        Some(f(unsafe { &*pdl.as_ptr::<Pdl>() }))
    }

    /// True when `pdl` is a live PDL.
    pub fn is_live(pdl: PdlHandle) -> bool {
        Pdl::live(pdl, |_| ()).is_some()
    }

    /// The reference count (`driver_pdl_get_refc`); `None` when not live.
    pub fn refc(pdl: PdlHandle) -> Option<isize> {
        Pdl::live(pdl, |p| p.refc.load(Ordering::Acquire))
    }

    /// `driver_pdl_inc_refc`: the new count.
    pub fn inc_refc(pdl: PdlHandle) -> Option<isize> {
        Pdl::live(pdl, |p| p.refc.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// `driver_pdl_dec_refc`: the new count; the PDL is destroyed at zero.
    /// An unknown pointer gives `None`. (A driver that gives up more
    /// references than it took frees a PDL others may still use, as
    /// natively.)
    pub fn dec_refc(pdl: PdlHandle) -> Option<isize> {
        let mut live = LIVE.lock();
        let set = live.as_mut()?;
        if !set.contains(&pdl.0) {
            return None;
        }
        let ptr = pdl.as_ptr::<Pdl>();
        // SAFETY: registered, so live (see `live`).
        let n = unsafe { &*ptr }.refc.fetch_sub(1, Ordering::AcqRel) - 1;
        if n <= 0 {
            set.remove(&pdl.0);
            drop(live);
            // SAFETY: no reference remains and the pointer is no longer
            // registered; it came from Box::into_raw in `create`.
            drop(unsafe { Box::from_raw(ptr) });
        }
        Some(n)
    }

    /// `driver_pdl_lock`: takes a reference and the mutex.
    pub fn lock(pdl: PdlHandle) -> Locked {
        let me = thread_id();
        let Some(held) = Pdl::live(pdl, |p| {
            if p.owner.load(Ordering::Acquire) == me {
                return true;
            }
            p.refc.fetch_add(1, Ordering::AcqRel);
            false
        }) else {
            return Locked::Invalid;
        };
        if held {
            return Locked::AlreadyHeld;
        }
        // SAFETY: our reference keeps the PDL alive until `unlock`.
        let p = unsafe { &*pdl.as_ptr::<Pdl>() };
        p.raw.lock();
        p.owner.store(me, Ordering::Release);
        Locked::Now
    }

    /// `driver_pdl_unlock`: releases the mutex and the reference `lock`
    /// took. False when this thread does not hold it.
    pub fn unlock(pdl: PdlHandle) -> bool {
        let me = thread_id();
        let held = Pdl::live(pdl, |p| {
            p.owner
                .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if held != Some(true) {
            return false;
        }
        let raw = pdl.as_ptr::<Pdl>();
        // SAFETY: the reference taken by `lock` keeps the PDL alive, so
        // `raw` points at a live Pdl.
        let this = unsafe { &*raw };
        // SAFETY: this thread holds the mutex: it was the owner.
        unsafe { this.raw.unlock() };
        // Gives back the reference `lock` took.
        Pdl::dec_refc(pdl);
        true
    }

    /// True when the calling thread holds `pdl`.
    pub fn held_by_me(pdl: PdlHandle) -> bool {
        let me = thread_id();
        Pdl::live(pdl, |p| p.owner.load(Ordering::Acquire) == me).unwrap_or(false)
    }
}
