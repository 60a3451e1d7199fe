//! The mutable state of one pseudo-port, and how it may be reached.
//!
//! # Why cells, and who may touch them
//!
//! A driver callback runs under the port's lock (the driver's lock with
//! driver-level locking) and may re-enter our API: `control` calls
//! `set_port_control_flags`, whose effect the reply code then reads;
//! `output` calls `driver_output`, which updates the byte counters the
//! caller also updates. If the code around the callback held a `&mut`
//! to the state while the driver re-entered, the API function would create
//! a second `&mut` to the same data: undefined behaviour in Rust even on
//! one thread.
//!
//! So nothing here is ever borrowed mutably across a call into driver code:
//! every field is a [`Cell`] (copied in and out), a struct of cells (the
//! timer, [`crate::timer::PortTimer`]) or, for the line buffer, a
//! [`RefCell`] borrowed only inside functions that never call the driver.
//! Many `&PortState` may exist at once.
//!
//! Cells are not `Sync`; the port is shared between threads, so access is
//! gated by a *lock token*: [`Port::state`](super::Port::state) needs a
//! [`Held`], which only [`super::callbacks`] creates, right after taking
//! the port's lock and for as long as it holds it. A `Held` is neither
//! `Send` nor `Sync` and is published to the API functions of the running
//! callback through [`crate::context::CallbackCtx`].

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustler::LocalPid;

use super::lock::PortLock;
use crate::abi::DrvData;
use crate::timer::PortTimer;

/// Options of `open_port` that change how the port behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortOptions {
    /// `binary`: data arrives as binaries instead of lists.
    pub binary: bool,
    /// `eof`: `driver_failure_eof` sends `{Port, eof}` instead of closing.
    pub eof: bool,
    /// `{line, L}`: `driver_output` data is cut into lines of at most L
    /// bytes (0: no line mode).
    pub line: usize,
    /// `{parallelism, true}` (shown by `port_info/2`).
    pub parallelism: bool,
    /// The limits of the port's message queue (`{busy_limits_msgq, _}`,
    /// `erl_drv_busy_msgq_limits`): `(low, high)`, `None` when disabled.
    pub msgq_limits: Option<(usize, usize)>,
}

/// The message-queue limits of a port opened without the option (OTP 25's
/// defaults).
pub const DEFAULT_MSGQ_LIMITS: (usize, usize) = (4096, 8192);

impl Default for PortOptions {
    fn default() -> PortOptions {
        PortOptions {
            binary: false,
            eof: false,
            line: 0,
            parallelism: false,
            msgq_limits: Some(DEFAULT_MSGQ_LIMITS),
        }
    }
}

/// Where a port is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Callbacks may run.
    Open,
    /// `stop` is running: the driver may still emit output (natively it
    /// reaches the connected process), nothing else reaches the driver.
    Closing,
    /// `stop` has run; every operation is `badarg`.
    Closed,
}

/// Proof that the current thread holds one port lock. Created only by
/// [`super::callbacks`] after locking, dropped before unlocking.
pub struct Held {
    lock: *const PortLock,
    /// Not `Send`/`Sync`: the proof is about this thread.
    _thread_bound: PhantomData<*const ()>,
}

impl Held {
    /// # Safety
    /// The calling thread must hold `lock` for the whole life of the value.
    pub(super) unsafe fn new(lock: &PortLock) -> Held {
        Held {
            lock,
            _thread_bound: PhantomData,
        }
    }

    /// True when this proof is for `lock`.
    pub(super) fn covers(&self, lock: &PortLock) -> bool {
        std::ptr::eq(self.lock, lock)
    }
}

/// The mutable state of a port (see the module documentation).
pub struct PortState {
    status: Cell<Status>,
    data: Cell<DrvData>,
    connected: Cell<LocalPid>,
    /// `connected` as a pid term, readable without the port's lock (see
    /// [`super::Port::connected_any_thread`]); written only by `set_connected`.
    connected_word: AtomicUsize,
    options: Cell<PortOptions>,
    control_flags: Cell<c_int>,
    line_buf: RefCell<Vec<u8>>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    timer: PortTimer,
    /// `set_busy_port`: commands wait (or fail with `nosuspend`).
    busy: Cell<bool>,
    /// See [`PortOptions::msgq_limits`].
    msgq_limits: Cell<Option<(usize, usize)>>,
}

impl PortState {
    /// A port being started for `owner`. The mode options take effect once
    /// `start` has returned (native: output from `start` on a `binary` port
    /// arrives as a list), see [`PortState::started`].
    pub fn new(owner: LocalPid) -> PortState {
        PortState {
            status: Cell::new(Status::Open),
            data: Cell::new(std::ptr::null_mut()),
            connected: Cell::new(owner),
            connected_word: AtomicUsize::new(crate::terms::pid_term(&owner)),
            options: Cell::new(PortOptions::default()),
            control_flags: Cell::new(0),
            line_buf: RefCell::new(Vec::new()),
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            timer: PortTimer::default(),
            busy: Cell::new(false),
            msgq_limits: Cell::new(Some(DEFAULT_MSGQ_LIMITS)),
        }
    }

    /// `start` returned `data`; the port's options apply from now on.
    pub fn started(&self, data: DrvData, options: PortOptions) {
        self.data.set(data);
        self.options.set(options);
        self.msgq_limits.set(options.msgq_limits);
    }

    /// Open, closing or closed.
    pub fn status(&self) -> Status {
        self.status.get()
    }

    /// Moves to `status`.
    pub fn set_status(&self, status: Status) {
        self.status.set(status);
    }

    /// True while callbacks may run.
    pub fn is_open(&self) -> bool {
        self.status.get() == Status::Open
    }

    /// What `start` returned (the driver's `ErlDrvData`).
    pub fn data(&self) -> DrvData {
        self.data.get()
    }

    /// The connected process (owner).
    pub fn connected(&self) -> LocalPid {
        self.connected.get()
    }

    /// Makes `pid` the connected process.
    pub fn set_connected(&self, pid: LocalPid) {
        self.connected.set(pid);
        self.connected_word
            .store(crate::terms::pid_term(&pid), Ordering::Release);
    }

    /// Options given to `open_port`.
    pub fn options(&self) -> PortOptions {
        self.options.get()
    }

    /// `set_port_control_flags`.
    pub fn control_flags(&self) -> c_int {
        self.control_flags.get()
    }

    /// Sets what `set_port_control_flags` sets.
    pub fn set_control_flags(&self, flags: c_int) {
        self.control_flags.set(flags);
    }

    /// Counts bytes given to the driver by `port_command`.
    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.set(self.bytes_in.get() + n as u64);
    }

    /// Counts bytes the driver sent to Erlang.
    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.set(self.bytes_out.get() + n as u64);
    }

    /// `(bytes_in, bytes_out)`.
    pub fn byte_counts(&self) -> (u64, u64) {
        (self.bytes_in.get(), self.bytes_out.get())
    }

    /// The port's timer (`driver_set_timer` & co, see [`crate::timer`]).
    pub fn timer(&self) -> &PortTimer {
        &self.timer
    }

    /// True while the driver has marked the port busy (`set_busy_port`).
    pub fn busy(&self) -> bool {
        self.busy.get()
    }

    /// Sets the busy state; returns the previous one.
    pub fn set_busy(&self, on: bool) -> bool {
        self.busy.replace(on)
    }

    /// The message-queue limits, `None` when disabled.
    pub fn msgq_limits(&self) -> Option<(usize, usize)> {
        self.msgq_limits.get()
    }

    /// Sets the message-queue limits (`None`: disabled).
    pub fn set_msgq_limits(&self, limits: Option<(usize, usize)>) {
        self.msgq_limits.set(limits);
    }

    /// Runs `f` on the partial-line buffer (line mode). `f` must not call
    /// driver code (it cannot: it gets only the buffer).
    pub fn with_line_buf<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        f(&mut self.line_buf.borrow_mut())
    }
}

impl super::Port {
    /// The connected process, from any thread and without the port's lock
    /// (`erl_drv_output_term` from a driver thread). Only the atomic copy
    /// is read: the cells of the state stay reserved to the lock holder.
    pub fn connected_any_thread(&self) -> LocalPid {
        let word = self.state.connected_word.load(Ordering::Acquire);
        // SAFETY: the word was made from a LocalPid by set_connected/new.
        LocalPid::from_c_arg(unsafe { crate::ffi::pid_from_term(crate::ffi::from_raw(word)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_covers_only_its_own_lock() {
        let a = PortLock::new();
        let b = PortLock::new();
        let _guard = a.guard();
        // SAFETY: `a` is held for the life of `held`.
        let held = unsafe { Held::new(&a) };
        assert!(held.covers(&a));
        assert!(!held.covers(&b));
    }
}
