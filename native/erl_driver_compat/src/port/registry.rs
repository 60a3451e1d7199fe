//! Open ports by pid (the port's identity, for calls from Erlang) and by
//! `ErlDrvPort` handle (for API calls made outside the port's own
//! callback).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use rustler::LocalPid;

use super::lock::PortLock;
use super::{terminate, ExitReason, Port};
use crate::abi::DrvPort;
use crate::context::Delivery;
use crate::context::ThreadHot;
use crate::driver::Driver;
use crate::ffi::RawEnv;
use crate::terms::pid_term;

const SHARDS: usize = 16;

/// Hashes one machine word (a pid term or a handle) with a multiply: the
/// keys are already unique words, SipHash would only add cost to the hot
/// path.
#[derive(Default)]
pub struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, word: usize) {
        self.0 = (word as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

type WordMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<WordHasher>>;

struct Registry {
    by_pid: [RwLock<WordMap<Arc<Port>>>; SHARDS],
    handles: RwLock<WordMap<Arc<Port>>>,
    /// Handles of ports that closed but whose memory is still ours: a
    /// driver using such a stale handle gets the error return of the
    /// function, as natively for a dead port, instead of a misuse report.
    closed: RwLock<WordMap<()>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        by_pid: std::array::from_fn(|_| RwLock::new(WordMap::default())),
        handles: RwLock::new(WordMap::default()),
        closed: RwLock::new(WordMap::default()),
    })
}

fn shard(key: usize) -> usize {
    // Local pid terms differ in their upper bits; mix before picking.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) % SHARDS
}

/// Bumped whenever a port leaves the registry (in [`unregister`], which
/// runs under the port's lock): a [`PortCache`] entry made before is
/// stale.
static UNREGISTERED: AtomicU64 = AtomicU64::new(0);

const CACHE_SLOTS: usize = 64;

/// One thread's recent pid lookup: the pid term, the port, its lock,
/// and [`UNREGISTERED`] when the entry was made (before the lookup). All
/// cells: read without a borrow flag.
struct CacheEntry {
    key: Cell<usize>,
    generation: Cell<u64>,
    port: Cell<*const Port>,
    /// A reference (from `Arc::into_raw`) to the port's lock, or NULL:
    /// keeps its memory valid however long the port lives, since the lock
    /// is taken through it before the port is known to be alive. Released
    /// when the entry is replaced.
    lock: Cell<*const PortLock>,
}

impl CacheEntry {
    const fn empty() -> CacheEntry {
        CacheEntry {
            key: Cell::new(0),
            generation: Cell::new(u64::MAX),
            port: Cell::new(std::ptr::null()),
            lock: Cell::new(std::ptr::null()),
        }
    }
}

/// One thread's recent pid lookups (reached through the thread's
/// [`crate::context::ThreadHot`]). The hot path of every port BIF is a
/// pid -> port lookup: a hit here costs no lock besides the port's own, no
/// hashing and no reference count (see [`lock_by_pid`]). An entry is used
/// only while no port has left the registry since it was made, so it never
/// outlives its port's registration (and a pid reused by a later port
/// cannot hit it).
pub(crate) struct PortCache([CacheEntry; CACHE_SLOTS]);

impl PortCache {
    pub(crate) const fn new() -> PortCache {
        PortCache([const { CacheEntry::empty() }; CACHE_SLOTS])
    }
}

impl Drop for PortCache {
    fn drop(&mut self) {
        for e in &self.0 {
            let lock = e.lock.replace(std::ptr::null());
            if !lock.is_null() {
                // SAFETY: a non-null entry lock is a reference made by
                // `Arc::into_raw` in `lock_by_pid`, released once, here
                // (the cache is being freed as its thread ends: no port is
                // locked through it).
                drop(unsafe { Arc::from_raw(lock) });
            }
        }
    }
}

fn cache_slot(key: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) % CACHE_SLOTS
}

/// Finds the open port whose process is `pid`.
pub fn lookup(pid: &LocalPid) -> Option<Arc<Port>> {
    find(pid_term(pid))
}

/// The registered port whose process's pid term is `key`.
fn find(key: usize) -> Option<Arc<Port>> {
    registry().by_pid[shard(key)].read().get(&key).cloned()
}

/// A registered port whose lock this thread holds, found by
/// [`lock_by_pid`]. Unlocks when dropped.
pub struct LockedPort {
    port: *const Port,
    /// Set when the port came from the registry rather than the cache
    /// (dropped after the unlock in `drop`).
    _owned: Option<Arc<Port>>,
    /// This thread's [`crate::context::hot`].
    hot: *const ThreadHot,
}

impl LockedPort {
    /// The port.
    pub fn port(&self) -> &Port {
        // SAFETY: the port was registered when its lock was taken and
        // stays alive while this thread holds the lock: only a holder of
        // the lock unregisters it, and a callback run that does keeps it
        // alive until the run has ended (`CallbackCtx::keep_alive`), so
        // for as long as this value (which releases the lock last) lives.
        // `owned`, when set, holds it too.
        unsafe { &*self.port }
    }

    /// This thread's [`crate::context::hot`].
    pub(crate) fn hot(&self) -> *const ThreadHot {
        self.hot
    }
}

#[cfg(test)]
impl LockedPort {
    /// True when the port came from this thread's cache.
    pub(super) fn cached(&self) -> bool {
        self._owned.is_none()
    }
}

impl Drop for LockedPort {
    fn drop(&mut self) {
        // SAFETY: the lock was taken by `lock_by_pid` on this thread, and
        // this value is its one unlock; the port is alive (see `port`), so
        // its lock is too.
        unsafe { self.port().lock.unlock() };
    }
}

/// Finds the open port whose process is `pid` and takes its lock. A hit
/// in this thread's cache makes no atomic operation besides the lock
/// itself: the lock is taken through the cached address (whose memory the
/// cache keeps), and the port counts as found only if no port left the
/// registry since the entry was made, checked again once the lock is held
/// (ports leave the registry under their lock, so a port registered then
/// stays registered, hence alive, until this thread releases the lock).
// Inlined: the result is returned in registers rather than through
// memory read back at once (a stalled store forwarding).
#[inline(always)]
pub fn lock_by_pid(key: usize) -> Option<LockedPort> {
    let hot = crate::context::hot();
    // SAFETY: `hot` is this thread's ThreadHot (see `hot()`).
    let cache = unsafe { &*hot }.ports().map(|c| &c.0);
    let slot = cache_slot(key);
    // Acquire: pairs with the Release bump in `unregister`.
    let generation = UNREGISTERED.load(Ordering::Acquire);
    if let Some(e) = cache.map(|c| &c[slot]) {
        if e.key.get() == key && e.generation.get() == generation {
            // SAFETY: the entry holds a reference to this lock for as long
            // as it holds its address; this thread does not replace the
            // entry before the lock is released or handed over.
            let lock = unsafe { &*e.lock.get() };
            lock.lock();
            // Relaxed suffices: the unlock of a port unregistering itself
            // happens after its bump, and our lock after that unlock.
            if UNREGISTERED.load(Ordering::Relaxed) == generation {
                return Some(LockedPort {
                    port: e.port.get(),
                    _owned: None,
                    hot,
                });
            }
            // SAFETY: locked just above on this thread.
            unsafe { lock.unlock() };
        }
    }
    let port = find(key)?;
    if let Some(e) = cache.map(|c| &c[slot]) {
        e.key.set(key);
        e.generation.set(generation);
        e.port.set(Arc::as_ptr(&port));
        let old = e.lock.replace(Arc::into_raw(port.lock.clone()));
        if !old.is_null() {
            // SAFETY: a non-null entry lock is a reference made by
            // `Arc::into_raw` above, released once, here; nothing uses the
            // entry's old lock through it any more (a port locked through
            // it is reached through its own reference now).
            drop(unsafe { Arc::from_raw(old) });
        }
    }
    port.lock.lock();
    Some(LockedPort {
        port: Arc::as_ptr(&port),
        _owned: Some(port),
        hot,
    })
}

/// Finds an open port by the handle a driver passed.
pub fn lookup_handle(handle: DrvPort) -> Option<Arc<Port>> {
    registry().handles.read().get(&(handle as usize)).cloned()
}

/// All open ports, in opening order.
pub fn all() -> Vec<Arc<Port>> {
    let mut ports: Vec<Arc<Port>> = registry()
        .by_pid
        .iter()
        .flat_map(|s| s.read().values().cloned().collect::<Vec<_>>())
        .collect();
    ports.sort_by_key(|p| p.number);
    ports
}

/// Terminates every open port of `driver` with the atom `reason` (their
/// `stop` runs now; their processes exit with `reason`).
pub fn kill_ports_of(driver: &Arc<Driver>, reason: &str, caller_env: RawEnv) {
    for port in all().into_iter().filter(|p| Arc::ptr_eq(&p.driver, driver)) {
        let _ = port.run_with(Delivery::Detached { caller_env }, |ctx| {
            terminate(ctx, ctx.port(), ExitReason::Atom(reason.to_owned()), None);
            Ok(())
        });
    }
}

pub(super) fn register(port: &Arc<Port>) {
    registry().by_pid[shard(port.pid_term)]
        .write()
        .insert(port.pid_term, port.clone());
    registry()
        .handles
        .write()
        .insert(port.handle() as usize, port.clone());
}

/// True when `handle` is a port that has closed (and not yet been freed).
pub fn is_closed_handle(handle: DrvPort) -> bool {
    registry().closed.read().contains_key(&(handle as usize))
}

/// The port's memory is being freed: its handle means nothing any more.
pub(super) fn forget(port: &Port) {
    registry().closed.write().remove(&(port.handle() as usize));
}

/// Takes `port` out of the registry; returns the registry's reference
/// to it. Called only under the port's lock (see [`lock_by_pid`]).
pub(super) fn unregister(port: &Port) -> Option<Arc<Port>> {
    registry().closed.write().insert(port.handle() as usize, ());
    let by_handle = registry().handles.write().remove(&(port.handle() as usize));
    let mut by_pid = registry().by_pid[shard(port.pid_term)].write();
    let removed = by_pid.remove(&port.pid_term);
    UNREGISTERED.fetch_add(1, Ordering::Release);
    drop(by_pid);
    drop(by_handle);
    removed
}

/// Idle port processes for `driver_create_port` (DESIGN.md "Pseudo-ports":
/// a port must be returned synchronously from inside a callback, and a
/// NIF cannot spawn a process). The Erlang side keeps the pool filled
/// (`erl_driver_compat_port`); a callback takes one process per created
/// port.
struct IdlePool {
    idle: Vec<LocalPid>,
    /// `driver_create_port` calls that found the pool empty since the
    /// Erlang side last asked ([`idle_status`]).
    missed: u64,
}

fn idle_pool() -> &'static parking_lot::Mutex<IdlePool> {
    static POOL: OnceLock<parking_lot::Mutex<IdlePool>> = OnceLock::new();
    POOL.get_or_init(|| {
        parking_lot::Mutex::new(IdlePool {
            idle: Vec::new(),
            missed: 0,
        })
    })
}

/// Adds idle port processes to the pool.
pub fn add_idle(pids: impl IntoIterator<Item = LocalPid>) {
    idle_pool().lock().idle.extend(pids);
}

/// Takes an idle port process for which `usable` holds (processes for
/// which it does not, ended ones, are dropped), or counts a miss: then
/// `Err(first)`, `first` when it is the first miss since the Erlang side
/// last asked (to report a burst once).
pub fn take_idle(usable: impl Fn(&LocalPid) -> bool) -> Result<LocalPid, bool> {
    let mut pool = idle_pool().lock();
    while let Some(pid) = pool.idle.pop() {
        if usable(&pid) {
            return Ok(pid);
        }
    }
    pool.missed += 1;
    Err(pool.missed == 1)
}

/// `(idle processes, misses since the last call)`; resets the misses.
pub fn idle_status() -> (usize, u64) {
    let mut pool = idle_pool().lock();
    (pool.idle.len(), std::mem::take(&mut pool.missed))
}

/// Ports made by `driver_create_port` whose process has not taken them
/// over yet (see [`adopt_created`]), by pid term.
fn unadopted() -> &'static parking_lot::Mutex<WordMap<Arc<Port>>> {
    static UNADOPTED: OnceLock<parking_lot::Mutex<WordMap<Arc<Port>>>> = OnceLock::new();
    UNADOPTED.get_or_init(|| parking_lot::Mutex::new(WordMap::default()))
}

/// Registers a port made by `driver_create_port`, also for its process to
/// take over: that process may start after the port has already closed
/// (failed in the creating callback), and must still find it.
pub(super) fn register_created(port: &Arc<Port>) {
    register(port);
    unadopted().lock().insert(port.pid_term, port.clone());
}

/// The created port whose process is `pid`, once (open or not).
pub fn adopt_created(pid: &LocalPid) -> Option<Arc<Port>> {
    unadopted().lock().remove(&pid_term(pid))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustler::LocalPid;

    use super::{lookup, register, unregister};
    use crate::abi::DrvEntry;
    use crate::driver::Driver;
    use crate::port::state::PortState;
    use crate::port::Port;
    use crate::terms::pid_term;

    fn fake_pid(n: usize) -> LocalPid {
        // SAFETY: only compared and used as a key: never given to the VM.
        LocalPid::from_c_arg(unsafe {
            crate::ffi::pid_from_term(crate::ffi::from_raw((n << 4) | 0x3))
        })
    }

    fn port_for(driver: &Arc<Driver>, pid: LocalPid, number: u64) -> Arc<Port> {
        Arc::new(Port {
            driver: driver.clone(),
            pid,
            pid_term: pid_term(&pid),
            command: b"fake".to_vec(),
            number,
            lock: driver.lock.clone(),
            state: PortState::new(pid),
            select: Default::default(),
            queue: Default::default(),
        })
    }

    /// The lookup cache never answers with a port that has left the
    /// registry, even while something still holds that port and a later
    /// port has the same pid.
    #[test]
    fn the_lookup_cache_follows_the_registry() {
        // SAFETY: DrvEntry is plain data: all-zero is every callback None.
        let entry: DrvEntry = unsafe { std::mem::zeroed() };
        let driver = Driver::for_test("cache", entry);
        let pid = fake_pid(424_242);
        let first = port_for(&driver, pid, 1);
        register(&first);
        assert_eq!(lookup(&pid).map(|p| p.number), Some(1));
        // A hit this time (same thread, nothing unregistered).
        assert_eq!(lookup(&pid).map(|p| p.number), Some(1));
        unregister(&first);
        assert!(lookup(&pid).is_none());
        let second = port_for(&driver, pid, 2);
        register(&second);
        assert_eq!(lookup(&pid).map(|p| p.number), Some(2));
        unregister(&second);
        assert!(lookup(&pid).is_none());
    }
}
