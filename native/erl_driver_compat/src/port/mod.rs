//! Pseudo-ports (DESIGN.md "Pseudo-ports").
//!
//! A pseudo-port is an Erlang process; its pid is the port's identity.
//! [`Port`] is the native side: which driver, the lock its callbacks run
//! under (the driver's lock with driver-level locking, its own with
//! `ERL_DRV_FLAG_USE_PORT_LOCKING`) and its [`state::PortState`].
//!
//! * [`state`]: the mutable state and the lock token that gates it;
//! * [`registry`]: open ports by pid and by `ErlDrvPort` handle;
//! * [`callbacks`]: running driver callbacks (open, command, control,
//!   call, terminate) under the lock with a callback context;
//! * [`create`]: making ports (`driver_create_port` and the locks of the
//!   ports a callback created);
//! * [`closing`]: close with flush-before-close.

pub mod callbacks;
pub mod closing;
pub mod create;
pub mod lock;
pub mod registry;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustler::{Encoder, Env, LocalPid, Term};

use crate::abi::DrvPort;
use crate::atoms;
use crate::driver::Driver;
use crate::effects::Effects;
use state::{Held, PortState};

pub use callbacks::{terminate, Reply, CALL_BUF, CONTROL_BUF};
pub use closing::{close, Closed};
pub use registry::{all, is_closed_handle, kill_ports_of, lookup, lookup_handle};

/// The reason a port terminates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// `normal`.
    Normal,
    /// An atom (`driver_failure_atom`, `driver_failure_posix`, ...).
    Atom(String),
    /// An integer (`driver_failure`).
    Int(i64),
    /// The driver misused the API function named here:
    /// `{driver_api_misuse, Function}`.
    Misuse(&'static str),
    /// The port process itself exits with a reason it already has (an exit
    /// signal it received); nothing needs to be sent to it.
    External,
}

impl ExitReason {
    /// The reason as a term in `env`.
    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            ExitReason::Normal | ExitReason::External => atoms::normal().encode(env),
            ExitReason::Atom(name) => rustler::Atom::from_str(env, name)
                .map(|a| a.encode(env))
                .unwrap_or_else(|_| atoms::normal().encode(env)),
            ExitReason::Int(n) => n.encode(env),
            ExitReason::Misuse(func) => {
                let func = rustler::Atom::from_str(env, func)
                    .map(|a| a.encode(env))
                    .unwrap_or_else(|_| atoms::undefined().encode(env));
                (atoms::driver_api_misuse(), func).encode(env)
            }
        }
    }
}

/// Failure of a port operation, as the Erlang caller sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum PortError {
    /// `badarg` (closed port, bad data, driver refused, ...).
    Badarg,
    /// `notsup` (`force` on a driver without soft busy).
    Notsup,
    /// `open_port` failed with this posix error atom.
    Posix(String),
    /// `port_command` data is not iodata (`badarg` plus the native log line
    /// "Bad value on output port").
    BadValue,
}

/// One pseudo-port.
pub struct Port {
    /// The driver it is an instance of.
    pub driver: Arc<Driver>,
    /// The port process; the port's identity.
    pub pid: LocalPid,
    /// `pid` as a raw term (the registry key, and `driver_mk_port`).
    pub pid_term: usize,
    /// The command given to `open_port`, as the bytes `start` got (no
    /// NUL; the VM's file-name encoding of the name the caller gave).
    pub command: Vec<u8>,
    /// A sequence number (`port_info(P, id)`).
    pub number: u64,
    /// The port queue, its data lock and a close waiting for it to empty
    /// (its own synchronisation: driver threads use it too).
    pub queue: crate::queue::PortQueue,
    lock: Arc<lock::PortLock>,
    state: PortState,
    /// The descriptors it selected (`driver_select`), reached like the
    /// state: see [`Port::select`].
    select: crate::select::PortSelect,
}

// SAFETY: the only non-thread-safe parts are the cells of `state`, which
// are reachable only through `Port::state` with a `Held` proof that the
// current thread holds `lock`, and `select`, reachable only through
// `Port::select` with that `&PortState`; so at most one thread touches
// them at a time. `DrvData` inside is an opaque pointer the driver owns.
unsafe impl Send for Port {}
// SAFETY: shared access to a Port reaches the non-thread-safe cells of
// `state` only through `Port::state` with a `Held` proof that the current
// thread holds `lock`, so no two threads use them at once; the other fields
// are immutable after creation or thread-safe (Arc<PortLock>).
unsafe impl Sync for Port {}

/// The result of a callback run: the value and the effects to hand back.
pub struct Ran<T> {
    /// What the operation produced.
    pub value: Result<T, PortError>,
    /// Messages for the caller, misuse reports, actions.
    pub effects: Effects,
}

impl Drop for Port {
    fn drop(&mut self) {
        registry::forget(self);
    }
}

impl Port {
    /// The `ErlDrvPort` handle given to the driver.
    pub fn handle(&self) -> DrvPort {
        self as *const Port as DrvPort
    }

    /// The state, when `held` proves this port's lock is held.
    pub fn state<'a>(&'a self, held: &'a Held) -> Option<&'a PortState> {
        held.covers(&self.lock).then_some(&self.state)
    }

    /// The port's selected descriptors, when `st` is this port's state
    /// (which only a holder of the port's lock can have, see
    /// [`Port::state`]).
    pub fn select<'a>(&'a self, st: &'a PortState) -> Option<&'a crate::select::PortSelect> {
        std::ptr::eq(st, &self.state).then_some(&self.select)
    }

    /// True when both ports are guarded by the same lock (driver-level
    /// locking).
    pub fn shares_lock_with(&self, other: &Port) -> bool {
        Arc::ptr_eq(&self.lock, &other.lock)
    }
}
