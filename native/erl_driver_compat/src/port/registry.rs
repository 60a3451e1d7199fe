//! Open ports by pid (the port's identity, for calls from Erlang) and by
//! `ErlDrvPort` handle (for API calls made outside the port's own
//! callback).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use rustler::LocalPid;

use super::{terminate, ExitReason, Port};
use crate::abi::DrvPort;
use crate::context::Delivery;
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

/// Finds the open port whose process is `pid`.
pub fn lookup(pid: &LocalPid) -> Option<Arc<Port>> {
    let key = pid_term(pid);
    registry().by_pid[shard(key)].read().get(&key).cloned()
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

pub(super) fn unregister(port: &Port) {
    registry().closed.write().insert(port.handle() as usize, ());
    registry().handles.write().remove(&(port.handle() as usize));
    registry().by_pid[shard(port.pid_term)]
        .write()
        .remove(&port.pid_term);
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
