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
