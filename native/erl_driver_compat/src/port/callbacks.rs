//! Running driver callbacks on a port: each runs under the port's lock,
//! with a [`CallbackCtx`] published for the API functions the driver calls.
//! No Rust borrow that the driver could invalidate is held across a call
//! into driver code: the state is reached through `&PortState` (cells).

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_char, c_uint};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rustler::{Env, LocalPid, Term};

use super::registry::{register, unregister};
use super::state::{Held, PortOptions, PortState, Status};
use super::{ExitReason, Port, PortError, Ran};
use crate::abi;
use crate::context::{CallbackCtx, Delivery};
use crate::driver::Driver;
use crate::effects::Action;
use crate::queue::{PendingClose, PortQueue};
use crate::terms::pid_term;

/// Size of the reply buffer the emulator hands to `control`.
pub const CONTROL_BUF: usize = 64;

/// Size of the reply buffer the emulator hands to `call`.
pub const CALL_BUF: usize = 255;

static PORT_NUMBERS: AtomicU64 = AtomicU64::new(1);

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

    /// A port of `driver` (counted by the caller) whose process is `pid`,
    /// connected to `owner`, named `command`: under the driver's lock, or
    /// its own with port-level locking.
    fn new(driver: Arc<Driver>, pid: LocalPid, owner: LocalPid, command: &[u8]) -> Arc<Port> {
        let lock = if driver.port_locking {
            Arc::new(Mutex::new(()))
        } else {
            driver.lock.clone()
        };
        Arc::new(Port {
            driver,
            pid,
            pid_term: pid_term(&pid),
            command: command.to_vec(),
            number: PORT_NUMBERS.fetch_add(1, Ordering::Relaxed),
            queue: PortQueue::new(),
            lock,
            state: PortState::new(owner),
            select: Default::default(),
        })
    }

    /// `driver_create_port` for `creator` (a port whose lock the callback
    /// `ctx` runs under holds): a new open port of the same driver whose
    /// process is `pid` (an idle one, see
    /// [`super::registry::take_idle`]), connected to `owner`, named `name`,
    /// with `data` as its `ErlDrvData`. As natively, `start` is not
    /// called, the port is in list mode and inherits the creating port's
    /// parallelism. `None` when the driver is being unloaded.
    ///
    /// Under port-level locking the new port's lock is taken now and held
    /// until the creating callback's run ends: natively the creating
    /// callback may use the new port until it returns, and nothing else
    /// reaches it before.
    pub fn create(
        ctx: &CallbackCtx,
        creator: &Port,
        pid: LocalPid,
        owner: LocalPid,
        name: &[u8],
        data: crate::abi::DrvData,
    ) -> Option<Arc<Port>> {
        let creator_st = ctx.state_of(creator)?;
        if !creator.driver.port_opened() {
            return None;
        }
        let port = Port::new(creator.driver.clone(), pid, owner, name);
        if !port.shares_lock_with(creator) {
            ctx.created_locks().hold(port.clone());
        }
        let st = ctx
            .state_of(&port)
            .unwrap_or_else(|| unreachable!("the new port's lock is held by this callback"));
        let options = PortOptions {
            parallelism: creator_st.options().parallelism,
            ..PortOptions::default()
        };
        st.started(data, options);
        super::registry::register_created(&port);
        Some(port)
    }

    /// Runs `f` (a driver callback) under the port's lock with a callback
    /// context for the calling process in `env`. A port that is not open
    /// is `badarg`: natively the port BIFs (`port_command`, `port_close`,
    /// `port_connect`) then fail, yet count as a task of a closing port,
    /// which ends if its queue has emptied meanwhile.
    pub fn run<T>(
        self: &Arc<Self>,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_with(Delivery::to_caller(env), f)
    }

    /// As [`Port::run`], with an explicit delivery mode.
    pub fn run_with<T>(
        self: &Arc<Self>,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::Open, true, f)
    }

    /// As [`Port::run`] for what reaches the port as a message or a
    /// signal: natively a closing port ignores those entirely.
    pub fn run_message<T>(
        self: &Arc<Self>,
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
        self: &Arc<Self>,
        env: Env,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_closing_with(Delivery::to_caller(env), f)
    }

    /// As [`Port::run_closing`], with an explicit delivery mode.
    pub fn run_closing_with<T>(
        self: &Arc<Self>,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::OpenOrFlushing, true, f)
    }

    /// Runs `f` on a port that is open or waiting for its queue to empty,
    /// without ending a closing port afterwards (ending the port from a
    /// resource `down` callback).
    pub fn inspect<T>(
        self: &Arc<Self>,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_gated(delivery, Gate::OpenOrFlushing, false, f)
    }

    /// Runs `f` when the port passes `gate`; then, with `task`, ends the
    /// port if it is closing and its queue is empty (natively checked
    /// after each task of the port: a callback, a port BIF).
    fn run_gated<T>(
        self: &Arc<Self>,
        delivery: Delivery,
        gate: Gate,
        task: bool,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.locked(delivery, |ctx| {
            let st = ctx.state();
            let flushing = st.status() == Status::Closing && ctx.port().queue.is_flushing();
            let value = if st.is_open() || (gate == Gate::OpenOrFlushing && flushing) {
                ctx.enter(|| f(ctx))
            } else {
                Err(PortError::Badarg)
            };
            if task {
                ctx.enter(|| settle(ctx));
            }
            value
        })
    }

    /// Takes the port's lock, runs `f` with a context, releases the lock,
    /// then does the close bookkeeping of every port `f` closed (in one
    /// place, whichever port's callback closed it).
    fn locked<T>(
        &self,
        delivery: Delivery,
        f: impl FnOnce(&CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        let guard = self.lock.lock();
        // SAFETY: the lock is held until `guard` drops, after `ctx` (which
        // owns `held`) has been consumed below.
        let held = unsafe { Held::new(&self.lock) };
        let ctx = CallbackCtx::new(self, held, delivery);
        let value = f(&ctx);
        // What a closing port emitted and no close took along: natively
        // output to a port that is closing (its queue flushing) is dropped.
        drop(ctx.take_late());
        let (effects, closed) = ctx.finish();
        drop(guard);
        for driver in closed {
            driver.port_closed();
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
            // SAFETY: the vector and its binaries live until `vec` drops,
            // after the callback returns.
            unsafe { outputv(st.data(), vec.as_mut_ptr()) };
        } else if let Some(output) = entry.output {
            let flat = crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
            st.add_bytes_in(flat.len());
            // SAFETY: the buffer lives until after the callback returns.
            unsafe { output(st.data(), flat.as_ptr() as *mut c_char, flat.len()) };
        } else {
            crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
        }
        Ok(())
    }

    /// Calls `control`; returns the reply as a list, or as a binary when
    /// the driver set `PORT_CONTROL_FLAG_BINARY` (read after the callback:
    /// the driver may set it inside).
    pub fn control<'a>(
        ctx: &CallbackCtx,
        env: Env<'a>,
        op: c_uint,
        data: &[u8],
    ) -> Result<Term<'a>, PortError> {
        let control = ctx.port().driver.entry().control.ok_or(PortError::Badarg)?;
        let mut default = [0u8; CONTROL_BUF];
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        let drv_data = ctx.state().data();
        // SAFETY: control is the driver's callback; the input buffer lives
        // until it returns; rbuf points at CONTROL_BUF writable bytes.
        let n = unsafe {
            control(
                drv_data,
                op,
                data.as_ptr() as *mut c_char,
                data.len(),
                &mut rbuf,
                CONTROL_BUF,
            )
        };
        let binary = ctx.state().control_flags() & abi::PORT_CONTROL_FLAG_BINARY != 0;
        crate::reply::control_reply(ctx, env, binary, n, rbuf, default_ptr, CONTROL_BUF)
    }

    /// Calls `call` with `arg` in external term format; decodes the reply.
    pub fn call<'a>(
        ctx: &CallbackCtx,
        env: Env<'a>,
        op: c_uint,
        arg: &[u8],
    ) -> Result<Term<'a>, PortError> {
        let call = ctx.port().driver.entry().call.ok_or(PortError::Badarg)?;
        let mut default = [0u8; CALL_BUF];
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        let mut flags: c_uint = 0;
        let drv_data = ctx.state().data();
        // SAFETY: call is the driver's `call` callback from its entry (its
        // library stays loaded while a port uses it), called with its own
        // drv_data under the port's lock; `arg` lives until it returns,
        // rbuf points at CALL_BUF writable bytes and flags at a writable
        // local.
        let n = unsafe {
            call(
                drv_data,
                op,
                arg.as_ptr() as *mut c_char,
                arg.len(),
                &mut rbuf,
                CALL_BUF,
                &mut flags,
            )
        };
        crate::reply::call_reply(env, n, rbuf, default_ptr, CALL_BUF)
    }
}

/// Which ports a run reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Open ports only.
    Open,
    /// Open ports, and ports whose close waits for their queue.
    OpenOrFlushing,
}

/// How a close asked for from Erlang went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The port is gone (or was not open).
    Now,
    /// The port's queue was not empty: its `flush` callback ran and the
    /// port closes once the queue is empty. Meanwhile it is unreachable
    /// except for `port_control`, `port_call` and `port_info`, its links
    /// must be signalled now, and it ignores messages and exit signals.
    Flushing,
}

/// Closes `port` on request from Erlang (`port_close`, `{Owner, close}`,
/// an exit signal): as [`terminate`], except that a port whose queue is
/// not empty first calls the driver's `flush` and stays, closing, until
/// the queue is empty (native flush-before-close). `send_closed`: the
/// connected process gets `{Port, closed}` when a delayed close ends.
pub fn close(ctx: &CallbackCtx, port: &Port, reason: ExitReason, send_closed: bool) -> Closed {
    let Some(st) = ctx.state_of(port) else {
        return Closed::Now;
    };
    if st.status() != Status::Open {
        return Closed::Now;
    }
    if port.queue.is_empty() {
        terminate(ctx, port, reason, None);
        return Closed::Now;
    }
    st.set_status(Status::Closing);
    port.queue.start_flush(PendingClose {
        reason,
        send_closed,
        in_close: true,
    });
    if let Some(flush) = port.driver.entry().flush {
        let data = st.data();
        // SAFETY: flush is the driver's callback, called with the data
        // start returned; no borrow of port data is held across it.
        ctx.enter(|| unsafe { flush(data) });
    }
    // Output from flush is dropped: natively the port is closing.
    drop(ctx.take_late());
    port.queue.close_returned();
    if st.status() == Status::Closed {
        // The driver failed its port in flush.
        return Closed::Now;
    }
    if port.queue.is_empty() {
        finish_flush(ctx, port, st, false);
        return Closed::Now;
    }
    Closed::Flushing
}

/// Ends a closing port whose queue is empty, as natively after each of
/// the port's tasks.
fn settle(ctx: &CallbackCtx) {
    let port = ctx.port();
    let st = ctx.state();
    if st.status() == Status::Closing
        && port.queue.pending().is_some_and(|p| !p.in_close)
        && port.queue.is_empty()
    {
        finish_flush(ctx, port, st, true);
    }
}

/// Ends a port whose close waited for its queue: `stop` runs (what it
/// emits is dropped, the port being closing), the port is closed. `later`:
/// the close that started the wait has returned, so the port process must
/// now be told to exit, and `{Port, closed}` goes to the connected process
/// if the close asked for it; otherwise that close does both, as for a
/// port closed at once.
fn finish_flush(ctx: &CallbackCtx, port: &Port, st: &PortState, later: bool) {
    let Some(pending) = port.queue.end_flush() else {
        return;
    };
    if let Some(stop) = port.driver.entry().stop {
        let data = st.data();
        // SAFETY: stop is the driver's callback, called once with the data
        // start returned; no borrow of port data is held across it.
        ctx.enter(|| unsafe { stop(data) });
    }
    drop(ctx.take_late());
    let connected = st.connected();
    mark_closed(ctx, port, st);
    let reason = match pending.reason {
        ExitReason::External if later => ExitReason::Normal,
        ExitReason::External => return,
        reason => reason,
    };
    if later && pending.send_closed {
        let port_pid = port.pid;
        ctx.emit(&connected, |env| {
            use rustler::Encoder;
            (port_pid, crate::atoms::closed()).encode(env)
        });
    }
    ctx.act(Action::ExitPort {
        port: port.pid,
        reason,
        unlink: None,
        late: Vec::new(),
    });
}

/// The locks of the ports a callback created under port-level locking
/// ([`Port::create`]): taken at creation, released when the callback's
/// run ends (its context drops), after the creating port's own lock was
/// taken and before it is released.
#[derive(Default)]
pub struct CreatedLocks(RefCell<Vec<Arc<Port>>>);

impl CreatedLocks {
    /// Takes the lock of `port`, a port nothing else can reach yet (so
    /// the lock is free), until this value drops.
    fn hold(&self, port: Arc<Port>) {
        std::mem::forget(port.lock.lock());
        self.0.borrow_mut().push(port);
    }

    /// The state of `port` when its lock is one held here.
    pub fn state_of<'a>(&self, port: &'a Port) -> Option<&'a PortState> {
        let held = self
            .0
            .borrow()
            .iter()
            .any(|p| Arc::ptr_eq(&p.lock, &port.lock));
        // The lock is held by this thread (taken in `hold`, released only
        // when `self` drops, and `self` belongs to a context, which is not
        // Send): the cells may be reached from here, as through `Held`.
        held.then_some(&port.state)
    }
}

impl Drop for CreatedLocks {
    fn drop(&mut self) {
        for port in self.0.get_mut().drain(..) {
            // SAFETY: `hold` locked this mutex on this thread and forgot
            // the guard; this is the one matching unlock.
            unsafe { port.lock.force_unlock() };
        }
    }
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
fn mark_closed(ctx: &CallbackCtx, port: &Port, st: &PortState) {
    st.set_status(Status::Closed);
    port.queue.close();
    unregister(port);
    crate::api::async_job::port_closed(port);
    crate::monitor::port_closed(ctx, port);
    ctx.port_closed(&port.driver);
}

#[cfg(test)]
mod tests {
    //! Fake drivers (Rust `extern "C"` functions in the test binary) whose
    //! callbacks re-enter the API while the code around the callback holds
    //! the port's state: the aliasing the lock-token design exists for.
    //! They need no VM; run them under Miri too:
    //! `cargo +nightly miri test -p erl_driver_compat --lib port::callbacks`.

    use std::os::raw::c_char;

    use super::*;
    use crate::abi::{DrvData, DrvEntry, SSizeT, SizeT};
    use crate::api;
    use crate::port::lookup_handle;

    fn fake_pid(n: usize) -> LocalPid {
        // SAFETY: only compared and used as a key: never given to the VM in
        // these tests.
        LocalPid::from_c_arg(unsafe {
            crate::ffi::pid_from_term(crate::ffi::from_raw((n << 4) | 0x3))
        })
    }

    fn fake_driver(name: &str, edit: impl FnOnce(&mut DrvEntry)) -> Arc<Driver> {
        // SAFETY: DrvEntry is plain data: all-zero is every callback None,
        // every pointer NULL and every number 0.
        let mut entry: DrvEntry = unsafe { std::mem::zeroed() };
        edit(&mut entry);
        Driver::for_test(name, entry)
    }

    /// A port of `driver` whose ErlDrvData is its own handle (as drivers
    /// that keep the ErlDrvPort as their data do).
    fn fake_port(driver: &Arc<Driver>, n: usize) -> Arc<Port> {
        assert!(driver.port_opened());
        let port = Arc::new(Port {
            driver: driver.clone(),
            pid: fake_pid(n),
            pid_term: n,
            command: b"fake".to_vec(),
            number: n as u64,
            lock: driver.lock.clone(),
            state: PortState::new(fake_pid(1000 + n)),
            select: Default::default(),
            queue: Default::default(),
        });
        register(&port);
        let handle = port.handle();
        let _ = port.run_with(detached(), |ctx| {
            ctx.state().started(handle, PortOptions::default());
            Ok(())
        });
        port
    }

    fn detached() -> Delivery {
        Delivery::Process {
            env: std::ptr::null_mut(),
            caller: fake_pid(1),
        }
    }

    /// `control` that sets the binary control flag and reads the port
    /// flags back, through the API, while its caller holds the state.
    unsafe extern "C" fn control_reentering(
        data: DrvData,
        _op: c_uint,
        _buf: *mut c_char,
        _len: SizeT,
        _rbuf: *mut *mut c_char,
        _rlen: SizeT,
    ) -> SSizeT {
        api::port::set_port_control_flags(data, abi::PORT_CONTROL_FLAG_BINARY);
        api::port::get_port_flags(data) as SSizeT
    }

    #[test]
    fn a_callback_may_change_the_state_its_caller_holds() {
        let driver = fake_driver("reenter", |e| e.control = Some(control_reentering));
        let port = fake_port(&driver, 1);
        let ran = port.run_with(detached(), |ctx| {
            let st = ctx.state();
            let before = st.control_flags();
            let control = ctx.port().driver.entry().control.expect("control");
            let mut rbuf: *mut c_char = std::ptr::null_mut();
            // SAFETY: a fake callback of this test; it ignores its buffers.
            let flags = ctx
                .enter(|| unsafe { control(st.data(), 1, std::ptr::null_mut(), 0, &mut rbuf, 0) });
            Ok((before, flags, st.control_flags()))
        });
        assert_eq!(ran.value, Ok((0, 0, abi::PORT_CONTROL_FLAG_BINARY)));
        assert!(ran.effects.is_empty());
    }

    static STOPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    unsafe extern "C" fn stop_counting(_data: DrvData) {
        STOPS.fetch_add(1, Ordering::SeqCst);
    }

    /// `output` that fails the sibling port whose handle is in the data it
    /// gets (driver-level locking: one lock for both), then finds the
    /// sibling closed.
    unsafe extern "C" fn output_failing_sibling(data: DrvData, buf: *mut c_char, len: SizeT) {
        assert_eq!(len, std::mem::size_of::<usize>());
        // SAFETY: the test passes a pointer-sized buffer holding a handle.
        let sibling = unsafe { buf.cast::<usize>().read_unaligned() } as DrvData;
        assert_eq!(
            api::failure::driver_failure_atom(sibling, c"gone".as_ptr().cast_mut()),
            0
        );
        // The sibling is closed now: nothing more reaches it.
        assert_eq!(api::port::get_port_flags(sibling), 0);
        // The calling port is untouched.
        let _ = data;
    }

    #[test]
    fn a_port_closed_from_a_siblings_callback_is_counted_once() {
        let driver = fake_driver("sibling", |e| {
            e.output = Some(output_failing_sibling);
            e.stop = Some(stop_counting);
        });
        let a = fake_port(&driver, 11);
        let b = fake_port(&driver, 12);
        assert_eq!(driver.open_ports(), 2);
        let stops = STOPS.load(Ordering::SeqCst);
        let handle = b.handle() as usize;
        let ran = a.run_with(detached(), |ctx| {
            let output = ctx.port().driver.entry().output.expect("output");
            let mut buf = handle.to_ne_bytes();
            let data = ctx.state().data();
            // SAFETY: a fake callback of this test, given a readable buffer.
            ctx.enter(|| unsafe { output(data, buf.as_mut_ptr().cast(), buf.len()) });
            Ok(())
        });
        assert_eq!(ran.value, Ok(()));
        assert_eq!(STOPS.load(Ordering::SeqCst), stops + 1);
        // Counted once, after the lock was released; `a` is still open.
        assert_eq!(driver.open_ports(), 1);
        assert!(lookup_handle(b.handle()).is_none());
        assert!(lookup_handle(a.handle()).is_some());
        assert!(matches!(
            ran.effects.actions(),
            [Action::ExitPort { reason: ExitReason::Atom(r), unlink: None, .. }] if r == "gone"
        ));
        // Closing `a` too brings the count to zero.
        let ran = a.run_with(detached(), |ctx| {
            terminate(ctx, ctx.port(), ExitReason::Normal, None);
            Ok(())
        });
        assert_eq!(ran.value, Ok(()));
        assert_eq!(driver.open_ports(), 0);
        assert_eq!(STOPS.load(Ordering::SeqCst), stops + 2);
        // A closed port runs nothing more.
        let ran = a.run_with(detached(), |_ctx| Ok(()));
        assert_eq!(ran.value, Err(PortError::Badarg));
    }

    unsafe extern "C" fn stop_reentering(data: DrvData) {
        // From stop the port is closing: still usable for output-like
        // calls (get_port_flags), and a failure now is a no-op.
        assert_eq!(api::failure::driver_failure(data, 7), 0);
        let _ = api::port::get_port_flags(data);
    }

    #[test]
    fn stop_may_reenter_without_closing_twice() {
        let driver = fake_driver("stopper", |e| e.stop = Some(stop_reentering));
        let port = fake_port(&driver, 21);
        let ran = port.run_with(detached(), |ctx| {
            terminate(ctx, ctx.port(), ExitReason::Normal, None);
            Ok(())
        });
        assert_eq!(ran.value, Ok(()));
        assert_eq!(ran.effects.actions().len(), 1, "one exit, not two");
        assert_eq!(driver.open_ports(), 0);
    }

    #[test]
    fn a_created_ports_lock_is_held_until_the_creating_run_ends() {
        let driver = fake_driver("creator", |e| e.driver_flags = abi::FLAG_USE_PORT_LOCKING);
        let creator = fake_port(&driver, 41);
        assert!(driver.port_opened());
        let created = Port::new(driver.clone(), fake_pid(42), fake_pid(1042), b"made");
        let ran = creator.run_with(detached(), |ctx| {
            assert!(ctx.state_of(&created).is_none(), "not this callback's lock");
            ctx.created_locks().hold(created.clone());
            let st = ctx.state_of(&created).expect("held by the creating run");
            st.started(std::ptr::null_mut(), PortOptions::default());
            Ok(created.lock.try_lock().is_none())
        });
        assert_eq!(ran.value, Ok(true), "locked during the run");
        assert!(created.lock.try_lock().is_some(), "released after it");
        let _ = creator.run_with(detached(), |ctx| {
            terminate(ctx, ctx.port(), ExitReason::Normal, None);
            Ok(())
        });
        driver.port_closed();
    }

    #[test]
    fn api_calls_outside_any_callback_are_refused() {
        let driver = fake_driver("outside", |_| {});
        let port = fake_port(&driver, 31);
        // No callback runs on this thread: the call is logged and ignored.
        assert_eq!(api::port::get_port_flags(port.handle()), 0);
        assert_eq!(api::failure::driver_failure(port.handle(), 1), -1);
        assert!(lookup_handle(port.handle()).is_some());
        let _ = port.run_with(detached(), |ctx| {
            terminate(ctx, ctx.port(), ExitReason::Normal, None);
            Ok(())
        });
    }
}
