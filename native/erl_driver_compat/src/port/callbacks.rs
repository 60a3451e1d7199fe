//! Running driver callbacks on a port: each runs under the port's lock,
//! with a [`CallbackCtx`] published for the API functions the driver calls.
//! No Rust borrow that the driver could invalidate is held across a call
//! into driver code: the state is reached through `&PortState` (cells).

use std::ffi::CString;
use std::os::raw::{c_char, c_uint};
use std::sync::Arc;

use rustler::{Env, LocalPid, Term};

use super::closing::{finish_flush, settle, Gate};
use super::registry::{register, unregister, LockedPort};
use super::state::{Held, PortOptions, PortState, Status};
use super::{ExitReason, Port, PortError, Ran};
use crate::abi;
use crate::api::legacy::callbacks as legacy;
use crate::binding::AbiVariant;
use crate::context::{CallbackCtx, Delivery};
use crate::driver::Driver;
use crate::effects::Action;

/// The reply of `control` or `call`.
pub enum Reply<'a> {
    /// Made already.
    Term(Term<'a>),
    /// The first `len` bytes of the default buffer the caller lent, made a
    /// term (a binary when `binary`, else a list; for `call`, decoded) by
    /// the caller once the port's lock is released: the stores that build
    /// it then do not delay the unlock, and the lock is held shorter.
    InBuffer {
        /// Bytes of the reply.
        len: usize,
        /// `PORT_CONTROL_FLAG_BINARY` was set (`control` only).
        binary: bool,
    },
}

impl<'a> Reply<'a> {
    /// `port_control`'s result, `buf` the buffer lent to `control`.
    pub fn control_term(self, env: Env<'a>, buf: &[u8]) -> Term<'a> {
        match self {
            Reply::Term(term) => term,
            Reply::InBuffer { len, binary: true } => crate::terms::binary_copy(env, &buf[..len]),
            Reply::InBuffer { len, .. } => crate::terms::byte_list(env, &buf[..len], None),
        }
    }

    /// `port_call`'s result, `buf` the buffer lent to `call`: the reply
    /// decoded (`badarg` when it is not in external term format).
    pub fn call_term(self, env: Env<'a>, buf: &[u8]) -> Result<Term<'a>, PortError> {
        match self {
            Reply::Term(term) => Ok(term),
            Reply::InBuffer { len, .. } => match env.binary_to_term(&buf[..len]) {
                Some((term, _)) => Ok(term),
                None => Err(PortError::Badarg),
            },
        }
    }
}

/// Size of the reply buffer the emulator hands to `control`.
pub const CONTROL_BUF: usize = 64;

/// Size of the reply buffer the emulator hands to `call`.
pub const CALL_BUF: usize = 255;

impl Port {
    /// `open_port`: creates the port for `driver`, runs `start` (if the
    /// driver has one) in the calling process (`env`) and registers the
    /// port.
    pub fn open(
        env: Env,
        driver: Arc<Driver>,
        pid: LocalPid,
        owner: LocalPid,
        command: &[u8],
        options: PortOptions,
    ) -> Ran<Arc<Port>> {
        let failed = |e| Ran {
            value: Err(e),
            effects: Default::default(),
        };
        let Ok(command_c) = CString::new(command) else {
            return failed(PortError::Badarg);
        };
        if !driver.port_opened() {
            return failed(PortError::Badarg);
        }
        let port = Port::new(driver.clone(), pid, owner, command);
        // Registered before start so that the driver can use the handle in
        // calls from `start` made through the registry.
        register(&port);
        let mut ran = port.locked(Delivery::to_caller(env), |ctx| {
            let Some(start) = driver.entry().start else {
                // Natively a driver without `start` opens, and its
                // callbacks get NULL as their ErlDrvData.
                ctx.state().started(std::ptr::null_mut(), options);
                return Ok(());
            };
            let mut command_buf = command_c.into_bytes_with_nul();
            // Cleared so that an ERL_DRV_ERROR_ERRNO reports the driver's.
            crate::ffi::set_errno(0);
            let data = ctx.enter(|| {
                // SAFETY: start is the driver's callback; the command
                // buffer is NUL-terminated and writable, as drivers may
                // modify it; no borrow of port data is held across it.
                unsafe {
                    start(
                        ctx.port().handle(),
                        command_buf.as_mut_ptr().cast::<c_char>(),
                    )
                }
            });
            // Read right after the callback, on the same thread.
            let errno = crate::ffi::errno();
            let error = match data as isize {
                abi::ERROR_ERRNO => PortError::Posix(crate::api::errno_atom(errno)),
                abi::ERROR_GENERAL => PortError::Posix("einval".into()),
                abi::ERROR_BADARG => PortError::Badarg,
                _ => {
                    // The mode flags take effect once start has returned
                    // (native: a driver_output from start on a `binary`
                    // port arrives as a list).
                    ctx.state().started(data, options);
                    return Ok(());
                }
            };
            mark_closed(ctx, ctx.port(), ctx.state());
            Err(error)
        });
        Ran {
            value: std::mem::replace(&mut ran.value, Ok(())).map(|()| port),
            effects: ran.effects,
        }
    }

    /// Runs `f` (a driver callback) under the port's lock with a callback
    /// context for the calling process in `env`. A port that is not open
    /// is `badarg`: natively the port BIFs (`port_command`, `port_close`,
    /// `port_connect`) then fail, yet count as a task of a closing port,
    /// which ends if its queue has emptied meanwhile.
    pub fn run<T>(&self, env: Env, f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>) -> Ran<T> {
        self.run_with(Delivery::to_caller(env), f)
    }

    /// As [`Port::run`], with an explicit delivery mode.
    pub fn run_with<T>(
        &self,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::Open, true, f)
    }

    /// As [`Port::run`] for what reaches the port as a message or a
    /// signal: natively a closing port ignores those entirely.
    pub fn run_message<T>(
        &self,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(Delivery::to_caller(env), Gate::Open, false, f)
    }

    /// As [`Port::run`], also on a port whose close waits for its queue to
    /// empty: natively `port_control`, `port_call` and `port_info` still
    /// reach such a port (and the port ends after the first of them that
    /// finds its queue empty).
    pub fn run_closing<T>(
        &self,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_closing_with(Delivery::to_caller(env), f)
    }

    /// As [`Port::run_closing`], with an explicit delivery mode.
    pub fn run_closing_with<T>(
        &self,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::OpenOrFlushing, true, f)
    }

    /// Runs `f` on a port that is open or waiting for its queue to empty,
    /// without ending a closing port afterwards (ending the port from a
    /// resource `down` callback).
    pub fn inspect<T>(
        &self,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::OpenOrFlushing, false, f)
    }

    /// Runs `f` when the port passes `gate`; then, with `task`, ends the
    /// port if it is closing and its queue is empty (natively checked
    /// after each task of the port: a callback, a port BIF).
    fn run_gated<T>(
        &self,
        delivery: Delivery,
        gate: Gate,
        task: bool,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.locked(delivery, |ctx| gated(ctx, gate, task, f))
    }

    /// Takes the port's lock, runs `f` with a context, releases the lock,
    /// then does the close bookkeeping of every port `f` closed (in one
    /// place, whichever port's callback closed it).
    fn locked<T>(
        &self,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        let guard = self.lock.guard();
        // SAFETY: the lock is held until `guard` drops, after the context
        // (which owns `held`) has ended in `CallbackCtx::run`.
        let held = unsafe { Held::new(&self.lock) };
        let hot = crate::context::hot();
        let (value, effects, rare) = CallbackCtx::run(self, held, delivery, hot, f);
        drop(guard);
        if let Some(rare) = rare {
            rare.after_unlock();
        }
        Ran { value, effects }
    }

    /// As [`Port::run`] for a port found (and locked) by
    /// [`super::registry::lock_by_pid`]: the hot path of the port BIFs.
    pub fn run_found<T>(
        found: LockedPort,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        Port::locked_found(found, Delivery::to_caller(env), Gate::Open, f)
    }

    /// As [`Port::run_closing`] for a port found (and locked) by
    /// [`super::registry::lock_by_pid`].
    pub fn run_closing_found<T>(
        found: LockedPort,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        Port::locked_found(found, Delivery::to_caller(env), Gate::OpenOrFlushing, f)
    }

    /// As [`Port::locked`] with [`gated`] (a task), for a port whose lock
    /// `found` holds; releases it.
    #[inline(always)]
    pub(super) fn locked_found<T>(
        found: LockedPort,
        delivery: Delivery,
        gate: Gate,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        let port = found.port();
        // SAFETY: `found` holds the port's lock until it drops, after the
        // context (which owns `held`) has ended in `CallbackCtx::run`.
        let held = unsafe { Held::new(&port.lock) };
        let (value, effects, rare) = CallbackCtx::run(port, held, delivery, found.hot(), |ctx| {
            gated(ctx, gate, true, f)
        });
        // Unlocks; the ports the run unregistered are still kept alive.
        drop(found);
        if let Some(rare) = rare {
            rare.after_unlock();
        }
        Ran { value, effects }
    }

    /// Calls `output` or `outputv` with `data` (already validated iodata).
    pub fn command(ctx: &CallbackCtx, data: Term) -> Result<(), PortError> {
        let port = ctx.port();
        let st = ctx.state();
        let entry = port.driver.entry();
        if let Some(outputv) = entry.outputv {
            let mut vec = crate::iodata::IoVecBuf::from_iodata(data).ok_or(PortError::BadValue)?;
            st.add_bytes_in(vec.total());
            if port.driver.abi == AbiVariant::Int {
                // SAFETY: a seed-era driver's outputv; the vector and its
                // binaries live until `vec` drops, after it returns.
                unsafe { legacy::outputv(outputv, st.data(), vec.as_mut_ptr()) };
            } else {
                // SAFETY: the vector and its binaries live until `vec`
                // drops, after the callback returns.
                unsafe { outputv(st.data(), vec.as_mut_ptr()) };
            }
        } else if let Some(output) = entry.output {
            let flat = crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
            let flat = flat.as_slice();
            st.add_bytes_in(flat.len());
            let buf = flat.as_ptr() as *mut c_char;
            if port.driver.abi == AbiVariant::Int {
                // SAFETY: a seed-era driver's output; the buffer lives
                // until after the callback returns.
                unsafe { legacy::output(output, st.data(), buf, flat.len()) };
            } else {
                // SAFETY: the buffer lives until after the callback returns.
                unsafe { output(st.data(), buf, flat.len()) };
            }
        } else {
            crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
        }
        Ok(())
    }

    /// Calls `control` with `default` as the reply buffer it gets; returns
    /// the reply as a list, or as a binary when the driver set
    /// `PORT_CONTROL_FLAG_BINARY` (read after the callback: the driver may
    /// set it inside). A reply left in `default` is returned as
    /// [`Reply::InBuffer`], made a term once the port's lock is released.
    pub fn control<'a>(
        ctx: &CallbackCtx,
        env: Env<'a>,
        op: c_uint,
        data: &[u8],
        default: &mut [u8; CONTROL_BUF],
    ) -> Result<Reply<'a>, PortError> {
        let control = ctx.port().driver.entry().control.ok_or(PortError::Badarg)?;
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        let drv_data = ctx.state().data();
        let buf = data.as_ptr() as *mut c_char;
        let n = if ctx.port().driver.abi == AbiVariant::Int {
            // SAFETY: a seed-era driver's control; the input buffer lives
            // until it returns; rbuf points at CONTROL_BUF writable bytes.
            unsafe {
                legacy::control(
                    control,
                    drv_data,
                    op,
                    buf,
                    data.len(),
                    &mut rbuf,
                    CONTROL_BUF,
                )
            }
        } else {
            // SAFETY: control is the driver's callback; the input buffer lives
            // until it returns; rbuf points at CONTROL_BUF writable bytes.
            unsafe {
                control(
                    drv_data,
                    op,
                    data.as_ptr() as *mut c_char,
                    data.len(),
                    &mut rbuf,
                    CONTROL_BUF,
                )
            }
        };
        let binary = ctx.state().control_flags() & abi::PORT_CONTROL_FLAG_BINARY != 0;
        if n >= 0 && rbuf == default_ptr {
            // A reply in the default buffer (its size bounds the length;
            // nothing to free); `control_reply` takes the others.
            return Ok(Reply::InBuffer {
                len: (n as usize).min(CONTROL_BUF),
                binary,
            });
        }
        crate::reply::control_reply(ctx, env, binary, n, rbuf, default_ptr).map(Reply::Term)
    }

    /// Calls `call` with `arg` in external term format and `default` as
    /// the reply buffer it gets; decodes the reply. A reply left in
    /// `default` is returned as [`Reply::InBuffer`], decoded once the
    /// port's lock is released.
    pub fn call<'a>(
        ctx: &CallbackCtx,
        env: Env<'a>,
        op: c_uint,
        arg: &[u8],
        default: &mut [u8; CALL_BUF],
    ) -> Result<Reply<'a>, PortError> {
        let call = ctx.port().driver.entry().call.ok_or(PortError::Badarg)?;
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        let mut flags: c_uint = 0;
        let drv_data = ctx.state().data();
        let n = if ctx.port().driver.abi == AbiVariant::Int {
            let buf = arg.as_ptr() as *mut c_char;
            // SAFETY: a seed-era driver's call, with the same buffers as
            // below (arg lives until it returns, rbuf: CALL_BUF writable
            // bytes, flags: a writable local).
            unsafe {
                legacy::call(
                    call,
                    drv_data,
                    op,
                    buf,
                    arg.len(),
                    &mut rbuf,
                    CALL_BUF,
                    &mut flags,
                )
            }
        } else {
            // SAFETY: call is the driver's `call` callback from its entry
            // (its library stays loaded while a port uses it), called with
            // its own drv_data under the port's lock; `arg` lives until it
            // returns, rbuf points at CALL_BUF writable bytes and flags at
            // a writable local.
            unsafe {
                call(
                    drv_data,
                    op,
                    arg.as_ptr() as *mut c_char,
                    arg.len(),
                    &mut rbuf,
                    CALL_BUF,
                    &mut flags,
                )
            }
        };
        if n >= 0 && rbuf == default_ptr {
            // A reply in the default buffer (its size bounds the length;
            // nothing to free); `call_reply` takes the others.
            return Ok(Reply::InBuffer {
                len: (n as usize).min(CALL_BUF),
                binary: false,
            });
        }
        crate::reply::call_reply(env, n, rbuf, default_ptr).map(Reply::Term)
    }
}

/// Runs `f` in `ctx` when its port passes `gate`; then, with `task`,
/// ends the port if it is closing and its queue is empty (natively
/// checked after each task of the port: a callback, a port BIF).
#[inline(always)]
fn gated<T>(
    ctx: &CallbackCtx,
    gate: Gate,
    task: bool,
    f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
) -> Result<T, PortError> {
    let st = ctx.state();
    let flushing = st.status() == Status::Closing && ctx.port().queue.is_flushing();
    let value = if st.is_open() || (gate == Gate::OpenOrFlushing && flushing) {
        ctx.enter(|| f(ctx))
    } else {
        Err(PortError::Badarg)
    };
    // `settle` does nothing unless the port is closing: the common case
    // skips publishing the context again.
    if task && st.status() == Status::Closing {
        ctx.enter(|| settle(ctx));
    }
    value
}

/// Closes `port` (whose state `ctx` can reach) synchronously: runs `stop`,
/// unregisters the port and tells its process to exit with `reason`
/// (after unlinking `unlink`, for `driver_exit`). A no-op unless the port
/// is open, or closing with its close waiting for the queue (a driver
/// failure then ends it now, as natively). While `stop` runs the port is
/// `Closing`: output it emits still reaches the connected process, after
/// the port's exit signals, as natively. The port's queue is not flushed:
/// natively a driver failure forgets the queue's size before `stop` (the
/// segments go with the port).
pub fn terminate(ctx: &CallbackCtx, port: &Port, reason: ExitReason, unlink: Option<LocalPid>) {
    let Some(st) = ctx.state_of(port) else {
        return;
    };
    match st.status() {
        Status::Open => {}
        Status::Closing => {
            if let Some(pending) = port.queue.pending() {
                finish_flush(ctx, port, st, !pending.in_close);
            }
            return;
        }
        Status::Closed => return,
    }
    if reason != ExitReason::External {
        port.queue.with(|q| q.forget_size());
    }
    st.set_status(Status::Closing);
    if let Some(stop) = port.driver.entry().stop {
        let data = st.data();
        // SAFETY: stop is the driver's callback, called once with the data
        // start returned; no borrow of port data is held across it.
        ctx.enter(|| unsafe { stop(data) });
    }
    // What the driver left selected leaves the poll set (no stop_select).
    crate::select::port_closed(ctx, port, st);
    mark_closed(ctx, port, st);
    let late = ctx.take_late();
    if reason != ExitReason::External {
        ctx.act(Action::ExitPort {
            port: port.pid,
            reason,
            unlink,
            late,
        });
    } else if !late.is_empty() {
        ctx.act(Action::Deliver(late));
    }
}

/// The one place a port becomes closed: status, registry, its queue (and
/// the port's reference to its data lock), and (after the lock is
/// released) the driver's count of open ports.
pub(super) fn mark_closed(ctx: &CallbackCtx, port: &Port, st: &PortState) {
    st.set_status(Status::Closed);
    port.queue.close();
    if let Some(registered) = unregister(port) {
        ctx.keep_alive(registered);
    }
    crate::api::async_job::port_closed(port);
    crate::monitor::port_closed(ctx, port);
    ctx.port_closed(&port.driver);
}
