//! `driver_select` on the BEAM's own poll set (`enif_select`), with the
//! port process as the receiver of the readiness messages.
//!
//! # How an event reaches the driver
//!
//! Each descriptor a port selects gets a *select object*: an object of our
//! resource type `edc_select`, the one resource type with a `stop`
//! callback ([`on_load`] opens it; rustler's resource types cannot have
//! one). Selecting a mode arms it with `enif_select(fd, mode, Obj,
//! PortPid, Seq)`, `Seq` a number unique to this arming. The VM sends the
//! port process `{select, Obj, Seq, ready_input | ready_output}`; the port
//! process hands it to [`on_ready`] (NIF `msg_select`), which under the
//! port's lock:
//!
//! * ignores it unless `Obj` is still the port's object for that
//!   descriptor and `Seq` the armed number of that mode: a message sent
//!   before the mode was deselected (or deselected and selected again)
//!   cannot be taken back, natively the scheduled task would have been
//!   aborted;
//! * calls `ready_input`/`ready_output`;
//! * arms the mode again if the driver still wants it (and did not
//!   already re-arm it from the callback). `enif_select` is one-shot and
//!   `driver_select` level-triggered: a driver that did not read is called
//!   again, because the poll reports the descriptor readable at once.
//!
//! # Native rules kept (OTP 25, erl_check_io.c, and measured)
//!
//! * `driver_select(fd, mode, 1)` adds `ERL_DRV_READ`/`ERL_DRV_WRITE`;
//!   `ERL_DRV_USE` marks the descriptor used only together with a mode
//!   that was not selected yet; `ERL_DRV_USE` alone does nothing.
//! * `on == 0` removes the modes given; with `ERL_DRV_USE` (and not
//!   `ERL_DRV_USE_NO_CALLBACK`) it removes every mode and calls
//!   `stop_select(fd, NULL)` once the descriptor left the poll set: on
//!   Linux (epoll) always directly, inside `driver_select` (measured:
//!   also when the driver's `stop` deselects, and for a descriptor never
//!   selected). Here `enif_select(STOP)` calls our `stop` callback, which
//!   calls `stop_select`; the VM calls it exactly once, directly when it
//!   can (as natively), else from its poll thread — so `stop_select` may
//!   run on a thread other than the port's, as natively.
//! * A descriptor whose modes are all removed leaves the poll set (no
//!   `stop_select`), unless it was marked used and `ERL_DRV_USE` was not
//!   given: then it stays known, and a later `driver_select(fd,
//!   ERL_DRV_USE, 0)` still calls `stop_select`.
//! * A port that closes (close, failure, exit, unload, killed process)
//!   with descriptors still selected: natively nothing is deselected and
//!   `stop_select` is never called (a later event logs "driver gone away
//!   without deselecting!"); measured: no `stop_select`. Here the
//!   descriptors leave the poll set when the port closes ([`port_closed`],
//!   after the driver's `stop`), without `stop_select`, so no stale
//!   registration is left behind in the VM.
//!
//! # Where the state lives
//!
//! [`PortSelect`] (descriptor → [`Selected`]) is a field of the port,
//! reached only with the port's lock held (the lock-token pattern of
//! [`crate::port::state`]: [`crate::port::Port::select`] needs the port's
//! `&PortState`, which only a lock holder has). It is never borrowed
//! across a call into the VM's `enif_select` (which may call our `stop`
//! callback, which calls the driver). The select object itself is shared
//! with the VM's poll thread (the `stop` callback may run there): its
//! fields are immutable except `call_stop`, an atomic. The select object
//! and its resource type are in [`object`].

mod object;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rustler::{Encoder, OwnedEnv, Term};

use crate::abi::DrvEvent;
use crate::atoms;
use crate::context::{CallbackCtx, Delivery};
use crate::ffi::{self, RawEnv, RawTerm, SELECT_CANCEL, SELECT_READ, SELECT_STOP, SELECT_WRITE};
use crate::port::state::PortState;
use crate::port::Port;

pub use object::on_load;
use object::{new_object, select_type, ObjectRef, SelectObject};

/// `ERL_DRV_READ`.
pub const DRV_READ: c_int = SELECT_READ;
/// `ERL_DRV_WRITE`.
pub const DRV_WRITE: c_int = SELECT_WRITE;
/// `ERL_DRV_USE`.
pub const DRV_USE: c_int = SELECT_STOP;
/// `ERL_DRV_USE_NO_CALLBACK`.
pub const DRV_USE_NO_CALLBACK: c_int = SELECT_STOP | SELECT_CANCEL;

const MODES: [c_int; 2] = [DRV_READ, DRV_WRITE];

/// The sequence numbers of armings (the `Ref` of the VM's messages; an
/// immediate integer, far below 2^59).
static SEQ: AtomicU64 = AtomicU64::new(1);

/// What a port has selected on one descriptor.
struct Selected {
    object: ObjectRef,
    /// `ERL_DRV_READ`/`ERL_DRV_WRITE` as the driver last set them.
    wanted: c_int,
    /// `ERL_DRV_USE` was set with a new mode.
    used: bool,
    /// The armed `enif_select` of each mode (`[read, write]`), by `Seq`.
    armed: [Option<u64>; 2],
}

/// Descriptors selected by any port (live [`Selected`] entries), for
/// `erl_driver_compat:info/0`. Relaxed: statistics only.
static SELECTED: AtomicUsize = AtomicUsize::new(0);

/// The number of descriptors ports have selected right now.
pub fn stats() -> usize {
    SELECTED.load(Ordering::Relaxed)
}

impl Selected {
    /// A new entry (nothing wanted or armed yet), counted in [`SELECTED`].
    fn new(object: ObjectRef) -> Selected {
        SELECTED.fetch_add(1, Ordering::Relaxed);
        Selected {
            object,
            wanted: 0,
            used: false,
            armed: [None, None],
        }
    }
}

impl Drop for Selected {
    fn drop(&mut self) {
        SELECTED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The descriptors a port has selected (see the module documentation for
/// who may touch it).
#[derive(Default)]
pub struct PortSelect {
    fds: RefCell<HashMap<c_int, Selected>>,
}

// --- the decisions, without the VM ---------------------------------------------

/// What `driver_select` must do, decided from the descriptor's state.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Create the descriptor's entry first.
    create: bool,
    /// Modes to arm.
    arm: c_int,
    /// Modes to cancel.
    cancel: c_int,
    /// Remove the descriptor from the poll set: `Some(call_stop_select)`.
    stop: Option<bool>,
    /// Call `stop_select` at once (a descriptor not known).
    stop_now: bool,
}

/// The new `(wanted, used)` of a descriptor and the [`Plan`]; `known` is
/// `None` for a descriptor this port has no entry for.
fn plan(known: Option<(c_int, bool)>, mode: c_int, on: bool) -> (Option<(c_int, bool)>, Plan) {
    let modes = mode & (DRV_READ | DRV_WRITE);
    let use_with_callback = mode & DRV_USE_NO_CALLBACK == DRV_USE;
    let mut plan = Plan::default();
    if on {
        if modes == 0 {
            return (known, plan);
        }
        let (wanted, used) = known.unwrap_or_else(|| {
            plan.create = true;
            (0, false)
        });
        let new = modes & !wanted;
        plan.arm = new;
        let used = used || (new != 0 && mode & DRV_USE != 0);
        return (Some((wanted | new, used)), plan);
    }
    let Some((wanted, used)) = known else {
        plan.stop_now = use_with_callback;
        return (None, plan);
    };
    let off = if use_with_callback {
        DRV_READ | DRV_WRITE
    } else {
        modes
    };
    plan.cancel = off & wanted;
    let wanted = wanted & !off;
    if wanted == 0 && (mode & DRV_USE != 0 || !used) {
        plan.stop = Some(use_with_callback);
        return (None, plan);
    }
    (Some((wanted, used)), plan)
}

// --- driver_select -----------------------------------------------------------

/// The descriptors the VM can poll: below its limit of open files, read
/// once (the VM reads it at start: `sysconf(_SC_OPEN_MAX)`).
fn max_fds() -> c_int {
    static MAX: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        c_int::try_from(max)
            .ok()
            .filter(|&m| m > 0)
            .unwrap_or(c_int::MAX)
    })
}

/// Runs `f` with a raw env to call `enif_select` with: the callback's, or
/// a scratch env on a thread without one (the VM reads no term of it: the
/// receiver is given and the reference is an immediate).
fn with_env<R>(ctx: &CallbackCtx, f: impl FnOnce(RawEnv) -> R) -> R {
    let raw = match ctx.delivery() {
        Delivery::Process { env, .. } => env,
        Delivery::Detached { caller_env } => caller_env,
    };
    if raw.is_null() {
        OwnedEnv::new().run(|env| f(env.as_c_arg()))
    } else {
        f(raw)
    }
}

fn mode_index(mode: c_int) -> usize {
    usize::from(mode == DRV_WRITE)
}

/// `driver_select(port, event, mode, on)` for `port` (open or closing),
/// whose state `st` the calling callback holds; `event` is the
/// `ErlDrvEvent` as an integer (a descriptor).
pub fn driver_select(
    ctx: &CallbackCtx,
    port: &Port,
    st: &PortState,
    event: isize,
    mode: c_int,
    on: bool,
) -> c_int {
    let Some(sel) = port.select(st) else {
        return -1;
    };
    let Ok(fd) = c_int::try_from(event) else {
        return -1;
    };
    if fd < 0 {
        return -1;
    }
    if fd >= max_fds() {
        // As natively, for selecting and deselecting alike.
        ctx.log(format!(
            "driver_select({:p}, {fd}, {mode}, {}) by driver {} failed: fd={fd} is larger than \
             the largest allowed fd={}",
            port.handle(),
            u8::from(on),
            port.driver.name,
            max_fds() - 1
        ));
        return -1;
    }
    let known = sel.fds.borrow().get(&fd).map(|s| (s.wanted, s.used));
    let (next, plan) = plan(known, mode, on);
    if plan.stop_now {
        if let Some(stop_select) = port.driver.entry().stop_select {
            // SAFETY: the driver's callback for a descriptor the VM does
            // not poll (natively also called at once, from driver_select).
            unsafe { stop_select(event as DrvEvent, std::ptr::null_mut()) };
        }
        return 0;
    }
    if plan.create {
        let Some(object) = new_object(fd, &port.driver) else {
            return -1;
        };
        sel.fds.borrow_mut().insert(fd, Selected::new(object));
    }
    with_env(ctx, |env| -> c_int {
        for m in MODES {
            if plan.cancel & m != 0 {
                cancel(env, sel, fd, m);
            }
        }
        if let Some(call_stop) = plan.stop {
            let removed = sel.fds.borrow_mut().remove(&fd);
            if let Some(selected) = removed {
                stop(env, &selected.object, call_stop);
            }
            return 0;
        }
        if let Some((wanted, used)) = next {
            if let Some(s) = sel.fds.borrow_mut().get_mut(&fd) {
                s.wanted = wanted;
                s.used = used;
            }
        }
        for m in MODES {
            if plan.arm & m != 0 && !arm(env, port, sel, fd, m) {
                // Not a descriptor the VM can poll (beyond its limit):
                // natively -1 and nothing selected.
                let removed = sel.fds.borrow_mut().remove(&fd);
                if let Some(selected) = removed {
                    stop(env, &selected.object, false);
                }
                ctx.log(format!(
                    "driver_select({:p}, {fd}, {mode}, 1) by driver {} failed: the VM cannot \
                     poll fd={fd}",
                    port.handle(),
                    port.driver.name
                ));
                return -1;
            }
        }
        0
    })
}

/// Arms `mode` of `fd` with a new sequence number; false when the VM
/// cannot poll such a descriptor at all (larger than its limit). When the
/// poll set refuses it (closed, not pollable), the port is told it is
/// ready, as natively (the driver's read then reports the error).
fn arm(env: RawEnv, port: &Port, sel: &PortSelect, fd: c_int, mode: c_int) -> bool {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let object = {
        let mut fds = sel.fds.borrow_mut();
        let Some(s) = fds.get_mut(&fd) else {
            return true;
        };
        s.armed[mode_index(mode)] = Some(seq);
        s.object.raw()
    };
    // SAFETY: env is live (see env_of) for this call.
    let reference = unsafe { ffi::small_uint(env, seq) };
    // SAFETY: env is live (see env_of); the object is ours and alive (the
    // entry holds a reference); the ref is an immediate; the pid is the
    // port process.
    let rc = unsafe { ffi::select(env, fd, mode, object, port.pid.as_c_arg(), reference) };
    if rc < 0 && rc & ffi::SELECT_INVALID_EVENT != 0 {
        return false;
    }
    if rc < 0 {
        send_ready(port, object, seq, mode == DRV_READ);
    }
    true
}

/// Sends the port process the message the VM would have sent.
fn send_ready(port: &Port, object: *const c_void, seq: u64, input: bool) {
    let owned = OwnedEnv::new();
    owned.run(|env| {
        let raw = env.as_c_arg();
        // SAFETY: the object is alive (the caller's entry holds a
        // reference) and `raw` is the live env of `owned`.
        let obj = unsafe { ffi::make_resource(raw, object) };
        // SAFETY: `raw` is the live env of `owned`.
        let seq = unsafe { ffi::small_uint(raw, seq) };
        let event = if input {
            atoms::ready_input()
        } else {
            atoms::ready_output()
        };
        // SAFETY: `obj` was made in `env` just above.
        let obj = unsafe { Term::new(env, obj) };
        // SAFETY: `seq` was made in `env` just above.
        let seq = unsafe { Term::new(env, seq) };
        let msg = (atoms::select(), obj, seq, event).encode(env);
        // SAFETY: the message is built in `owned` and handed over with it;
        // a NULL caller env is allowed from any thread.
        unsafe {
            ffi::send(
                std::ptr::null_mut(),
                port.pid.as_c_arg(),
                raw,
                msg.as_c_arg(),
            )
        };
    });
}

/// Cancels the armed `mode` of `fd`; a message already sent is then
/// ignored (its `Seq` is no longer armed).
fn cancel(env: RawEnv, sel: &PortSelect, fd: c_int, mode: c_int) {
    let object = {
        let mut fds = sel.fds.borrow_mut();
        let Some(s) = fds.get_mut(&fd) else {
            return;
        };
        s.wanted &= !mode;
        if s.armed[mode_index(mode)].take().is_none() {
            return;
        }
        s.object.raw()
    };
    // SAFETY: env is the live env of the running call (see `arm`).
    let reference = unsafe { ffi::small_uint(env, 0) };
    // SAFETY: env is live; the object is ours and alive (the entry holds a
    // reference); a cancel ignores the pid and the reference.
    unsafe {
        ffi::select(
            env,
            fd,
            SELECT_CANCEL | mode,
            object,
            std::ptr::null(),
            reference,
        )
    };
}

/// Takes `object`'s descriptor out of the poll set; `stop_select` is
/// called (by our `stop` callback, directly or later) when `call_stop`.
fn stop(env: RawEnv, object: &ObjectRef, call_stop: bool) {
    object.get().call_stop.store(call_stop, Ordering::Release);
    // SAFETY: env is the live env of the running call (see `arm`).
    let reference = unsafe { ffi::small_uint(env, 0) };
    // SAFETY: env is live; `object` holds a reference to the resource, so
    // it is alive; a stop ignores the pid and the reference.
    unsafe {
        ffi::select(
            env,
            object.get().fd,
            SELECT_STOP,
            object.raw(),
            std::ptr::null(),
            reference,
        )
    };
}

// --- events and closing ----------------------------------------------------------

/// The descriptor of a select object term, if `obj` is one.
///
/// # Safety
/// `env` is a live env and `obj` belongs to it.
pub unsafe fn object_of(env: RawEnv, obj: RawTerm) -> Option<*const c_void> {
    let rtype = select_type();
    if rtype.is_null() {
        return None;
    }
    // SAFETY: per the contract; our resource type.
    unsafe { ffi::get_resource(env, obj, rtype) }
}

/// `{select, Obj, Seq, ready_input | ready_output}` reached the port
/// process of the context's (open) port: runs the callback if `Seq` is
/// the armed one, then arms again what the driver still wants.
///
/// Natively a descriptor found ready both ways in one poll gets
/// `ready_output` first, then `ready_input`; the VM sends an `enif_select`
/// user the input message first. So before `ready_input`, a descriptor
/// whose output is armed too is polled (without waiting): if it is
/// writable, `ready_output` runs first (and the VM's output message, if
/// any, becomes stale).
pub fn on_ready(ctx: &CallbackCtx, object: *const c_void, seq: u64, input: bool) {
    let st = ctx.state();
    let Some(sel) = ctx.port().select(st) else {
        return;
    };
    let mode = if input { DRV_READ } else { DRV_WRITE };
    // SAFETY: the caller got the pointer from the message's term, which
    // keeps the object alive during this call.
    let fd = unsafe { (*object.cast::<SelectObject>()).fd };
    let armed = |m: c_int| -> Option<u64> {
        let fds = sel.fds.borrow();
        let s = fds.get(&fd)?;
        (s.object.raw() == object).then_some(s.armed[mode_index(m)])?
    };
    if armed(mode) != Some(seq) {
        return;
    }
    if input {
        if let Some(out_seq) = armed(DRV_WRITE) {
            if ready_now(fd, libc::POLLOUT) {
                dispatch(ctx, sel, object, fd, DRV_WRITE, out_seq);
                if !st.is_open() || armed(DRV_READ) != Some(seq) {
                    return;
                }
            }
        }
    }
    dispatch(ctx, sel, object, fd, mode, seq);
}

/// True when `fd` is ready for `events` now (`poll` without waiting).
fn ready_now(fd: c_int, events: libc::c_short) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & events != 0
}

/// Runs the callback of `mode` for `fd`, armed with `seq` (checked by the
/// caller), then arms `mode` again if the driver still wants it.
fn dispatch(
    ctx: &CallbackCtx,
    sel: &PortSelect,
    object: *const c_void,
    fd: c_int,
    mode: c_int,
    seq: u64,
) {
    let port = ctx.port();
    let st = ctx.state();
    if let Some(s) = sel.fds.borrow_mut().get_mut(&fd) {
        if s.armed[mode_index(mode)] == Some(seq) {
            s.armed[mode_index(mode)] = None;
        }
    }
    let input = mode == DRV_READ;
    let entry = port.driver.entry();
    let callback = if input {
        entry.ready_input
    } else {
        entry.ready_output
    };
    let event = fd as isize as DrvEvent;
    match callback {
        Some(callback) => {
            let data = st.data();
            // SAFETY: the driver's callback, under the port's lock, with
            // the data start returned and the descriptor it selected; no
            // borrow of port data is held across it.
            unsafe { callback(data, event) };
        }
        None => {
            ctx.log(format!(
                "driver {} (port {}) selected an event but does not implement the {} callback; \
                 deselected",
                port.driver.name,
                port.number,
                if input { "ready_input" } else { "ready_output" }
            ));
            driver_select(ctx, port, st, fd as isize, mode, false);
            return;
        }
    }
    if !st.is_open() {
        return;
    }
    let rearm = sel.fds.borrow().get(&fd).is_some_and(|s| {
        s.object.raw() == object && s.wanted & mode != 0 && s.armed[mode_index(mode)].is_none()
    });
    if rearm {
        with_env(ctx, |env| arm(env, port, sel, fd, mode));
    }
}

/// The port is closing (its `stop` has run): every descriptor it still
/// has selected leaves the poll set, without `stop_select` (natively a
/// closed port's descriptors are never stopped; see the module
/// documentation).
pub fn port_closed(ctx: &CallbackCtx, port: &Port, st: &PortState) {
    let Some(sel) = port.select(st) else {
        return;
    };
    let left: Vec<Selected> = sel.fds.borrow_mut().drain().map(|(_, s)| s).collect();
    if left.is_empty() {
        return;
    }
    with_env(ctx, |env| {
        for selected in left {
            stop(env, &selected.object, false);
        }
    });
}

#[cfg(test)]
mod tests;
