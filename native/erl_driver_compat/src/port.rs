//! Pseudo-ports: the state of one driver instance and the driver callbacks
//! run on it (DESIGN.md "Pseudo-ports").
//!
//! A pseudo-port is an Erlang process; its pid is the port's identity. The
//! state lives here, behind the driver's lock (driver-level locking) or the
//! port's own lock (`ERL_DRV_FLAG_USE_PORT_LOCKING`). `port_command`,
//! `port_control` and `port_call` run the driver callback inline in the
//! calling process; the port process handles only what arrives as messages.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_uint};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use rustler::{Encoder, Env, LocalPid, Term};

use crate::abi::{self, DrvData, DrvPort};
use crate::atoms;
use crate::context::{CallbackCtx, Delivery};
use crate::driver::Driver;
use crate::terms::pid_term;

/// Options of `open_port` that change how the port behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortOptions {
    /// `binary`: data arrives as binaries instead of lists.
    pub binary: bool,
    /// `eof`: `driver_failure_eof` sends `{Port, eof}` instead of closing.
    pub eof: bool,
    /// `{line, L}`: `driver_output` data is cut into lines of at most L
    /// bytes (0: no line mode).
    pub line: usize,
}

/// Open or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Callbacks may run.
    Open,
    /// `stop` has run; every operation is `badarg`.
    Closed,
}

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
            ExitReason::Normal => atoms::normal().encode(env),
            ExitReason::Atom(name) => rustler::Atom::from_str(env, name)
                .map(|a| a.encode(env))
                .unwrap_or_else(|_| atoms::normal().encode(env)),
            ExitReason::Int(n) => n.encode(env),
            ExitReason::External => atoms::normal().encode(env),
            ExitReason::Misuse(func) => {
                let func = rustler::Atom::from_str(env, func)
                    .map(|a| a.encode(env))
                    .unwrap_or_else(|_| atoms::undefined().encode(env));
                (atoms::driver_api_misuse(), func).encode(env)
            }
        }
    }
}

/// Mutable port state; only touched with the port's lock held.
pub struct PortState {
    /// Open or closed.
    pub status: Status,
    /// What `start` returned.
    pub data: DrvData,
    /// The connected process (owner).
    pub connected: LocalPid,
    /// Options given to `open_port`.
    pub options: PortOptions,
    /// `set_port_control_flags`.
    pub control_flags: c_int,
    /// Partial line kept for the next output (line mode).
    pub line_buf: Vec<u8>,
    /// Bytes given to the driver by `port_command`.
    pub bytes_in: u64,
    /// Bytes the driver sent to Erlang.
    pub bytes_out: u64,
}

/// One pseudo-port.
pub struct Port {
    /// The driver it is an instance of.
    pub driver: Arc<Driver>,
    /// The port process; the port's identity.
    pub pid: LocalPid,
    /// `pid` as a raw term (the registry key, and `driver_mk_port`).
    pub pid_term: usize,
    /// The command string given to `open_port`.
    pub command: String,
    /// A sequence number (`port_info(P, id)`).
    pub number: u64,
    lock: Arc<Mutex<()>>,
    state: UnsafeCell<PortState>,
}

// SAFETY: `state` is only accessed with `lock` held (see `Port::state`).
unsafe impl Send for Port {}
// SAFETY: as above.
unsafe impl Sync for Port {}

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
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        by_pid: std::array::from_fn(|_| RwLock::new(WordMap::default())),
        handles: RwLock::new(WordMap::default()),
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

/// Finds an open port by the handle a driver passed, for calls made
/// outside the port's own callback.
pub fn lookup_handle(handle: DrvPort) -> Option<Arc<Port>> {
    registry().handles.read().get(&(handle as usize)).cloned()
}

/// All open ports.
pub fn all() -> Vec<Arc<Port>> {
    let mut ports: Vec<Arc<Port>> = registry()
        .by_pid
        .iter()
        .flat_map(|s| s.read().values().cloned().collect::<Vec<_>>())
        .collect();
    ports.sort_by_key(|p| p.number);
    ports
}

/// Terminates every open port of `driver` with the atom `reason`.
pub fn kill_ports_of(driver: &Arc<Driver>, reason: &str, caller_env: *mut rustler::sys::ErlNifEnv) {
    for port in all().into_iter().filter(|p| Arc::ptr_eq(&p.driver, driver)) {
        let ran = port.run_with(Delivery::Detached { caller_env }, |p, _st, ctx| {
            p.terminate(ctx, ExitReason::Atom(reason.to_owned()), None);
            Ok(())
        });
        for line in &ran.ctx.logs {
            crate::context::log_detached(line);
        }
    }
}

fn register(port: &Arc<Port>) {
    registry().by_pid[shard(port.pid_term)]
        .write()
        .insert(port.pid_term, port.clone());
    registry()
        .handles
        .write()
        .insert(port.handle() as usize, port.clone());
}

fn unregister(port: &Port) {
    registry().handles.write().remove(&(port.handle() as usize));
    registry().by_pid[shard(port.pid_term)]
        .write()
        .remove(&port.pid_term);
}

static PORT_NUMBERS: AtomicU64 = AtomicU64::new(1);

/// The result of a callback run: the value and the context (messages for
/// the caller, log lines).
pub struct Ran<T> {
    /// What the operation produced.
    pub value: Result<T, PortError>,
    /// The context, with messages still to deliver.
    pub ctx: CallbackCtx,
}

impl Port {
    /// The `ErlDrvPort` handle given to the driver.
    pub fn handle(&self) -> DrvPort {
        self as *const Port as DrvPort
    }

    /// Gives access to the state. Caller must hold the port's lock.
    ///
    /// # Safety
    /// The lock must be held by this thread and no other reference to the
    /// state may be live.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state(&self) -> &mut PortState {
        // SAFETY: per the contract, the lock serializes access.
        unsafe { &mut *self.state.get() }
    }

    /// `open_port`: creates the port for `driver`, runs `start` in the
    /// calling process (`env`) and registers the port.
    pub fn open(
        env: Env,
        driver: Arc<Driver>,
        pid: LocalPid,
        owner: LocalPid,
        command: &str,
        options: PortOptions,
    ) -> Ran<Arc<Port>> {
        let lock = if driver.port_locking {
            Arc::new(Mutex::new(()))
        } else {
            driver.lock.clone()
        };
        let port = Arc::new(Port {
            driver: driver.clone(),
            pid,
            pid_term: pid_term(&pid),
            command: command.to_owned(),
            number: PORT_NUMBERS.fetch_add(1, Ordering::Relaxed),
            lock,
            state: UnsafeCell::new(PortState {
                status: Status::Open,
                data: std::ptr::null_mut(),
                connected: owner,
                options: PortOptions {
                    binary: false,
                    line: 0,
                    ..options
                },
                control_flags: 0,
                line_buf: Vec::new(),
                bytes_in: 0,
                bytes_out: 0,
            }),
        });
        let mut ctx = CallbackCtx::new(&port, Delivery::to_caller(env));
        let start = driver.entry().start;
        let ccommand = CString::new(command).ok();
        let (Some(start), Some(ccommand)) = (start, ccommand) else {
            return Ran {
                value: Err(PortError::Badarg),
                ctx,
            };
        };
        if !driver.port_opened() {
            return Ran {
                value: Err(PortError::Badarg),
                ctx,
            };
        }
        // Registered before start so that the driver can use the handle in
        // calls from `start` (the registry is only consulted off the fast
        // path).
        register(&port);
        let _guard = port.lock.lock();
        let mut command_buf = ccommand.into_bytes_with_nul();
        // SAFETY: errno is thread-local; cleared so ERRNO errors are ours.
        unsafe { *libc::__errno_location() = 0 };
        let data = ctx.enter(|| {
            // SAFETY: start is the driver's callback; the command buffer is
            // NUL-terminated and writable, as drivers may modify it.
            unsafe { start(port.handle(), command_buf.as_mut_ptr().cast::<c_char>()) }
        });
        // SAFETY: errno read right after the callback, on the same thread.
        let errno = unsafe { *libc::__errno_location() };
        let code = data as isize;
        if code == abi::ERROR_GENERAL || code == abi::ERROR_ERRNO || code == abi::ERROR_BADARG {
            // SAFETY: lock held.
            unsafe { port.state() }.status = Status::Closed;
            unregister(&port);
            drop(_guard);
            driver.port_closed();
            let err = match code {
                abi::ERROR_ERRNO => PortError::Posix(crate::api::errno_atom(errno)),
                abi::ERROR_GENERAL => PortError::Posix("einval".into()),
                _ => PortError::Badarg,
            };
            return Ran {
                value: Err(err),
                ctx,
            };
        }
        // SAFETY: lock held.
        let st = unsafe { port.state() };
        // The mode flags take effect once start has returned (native: a
        // driver_output from start on a `binary` port arrives as a list).
        st.options = options;
        st.data = data;
        let closed = st.status == Status::Closed;
        drop(_guard);
        if closed {
            port.driver.port_closed();
        }
        Ran {
            value: Ok(port.clone()),
            ctx,
        }
    }

    /// Runs `f` (a driver callback) under the port's lock with a callback
    /// context for the calling process in `env`.
    pub fn run<T>(
        self: &Arc<Self>,
        env: Env,
        f: impl FnOnce(&Port, &mut PortState, &mut CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        self.run_with(Delivery::to_caller(env), f)
    }

    /// As [`Port::run`], with an explicit delivery mode.
    pub fn run_with<T>(
        self: &Arc<Self>,
        delivery: Delivery,
        f: impl FnOnce(&Port, &mut PortState, &mut CallbackCtx) -> Result<T, PortError>,
    ) -> Ran<T> {
        let mut ctx = CallbackCtx::new(self, delivery);
        let guard = self.lock.lock();
        // SAFETY: lock held; the reference ends before the lock is released
        // and driver code reaches the state only through this same thread.
        let st = unsafe { self.state() };
        if st.status != Status::Open {
            drop(guard);
            return Ran {
                value: Err(PortError::Badarg),
                ctx,
            };
        }
        let ctx_ptr: *mut CallbackCtx = &mut ctx;
        // SAFETY: the closure gets the context it runs in; driver code that
        // reaches it through the thread-local does so only while `f` is
        // inside a driver call, never concurrently with `f` using it.
        let value = ctx.enter(|| f(self, st, unsafe { &mut *ctx_ptr }));
        let closed = st.status == Status::Closed;
        drop(guard);
        if closed {
            self.driver.port_closed();
        }
        Ran { value, ctx }
    }

    /// Closes the port synchronously: runs `stop`, unregisters the port and
    /// tells the port process to exit with `reason` (after unlinking
    /// `unlink`, for `driver_exit`). Lock held; a no-op when already closed.
    pub fn terminate(&self, ctx: &mut CallbackCtx, reason: ExitReason, unlink: Option<LocalPid>) {
        // SAFETY: lock held by the caller.
        let st = unsafe { self.state() };
        if st.status == Status::Closed {
            return;
        }
        st.status = Status::Closed;
        unregister(self);
        if let Some(stop) = self.driver.entry().stop {
            let data = st.data;
            // SAFETY: stop is the driver's callback, called once with the
            // data start returned.
            ctx.enter(|| unsafe { stop(data) });
        }
        if reason == ExitReason::External {
            return;
        }
        let pid = self.pid;
        ctx.emit(&pid, |env| match unlink {
            None => (atoms::edc_exit(), reason.to_term(env)).encode(env),
            Some(u) => (atoms::edc_exit(), reason.to_term(env), u).encode(env),
        });
    }

    /// True when both ports are guarded by the same lock (driver-level
    /// locking), so holding one's lock gives access to the other.
    pub fn shares_lock_with(&self, other: &Port) -> bool {
        Arc::ptr_eq(&self.lock, &other.lock)
    }

    /// Whether the port is still open. Lock held.
    pub fn is_open(st: &PortState) -> bool {
        st.status == Status::Open
    }

    /// Calls `output` or `outputv` with `data` (already validated iodata).
    pub fn command(&self, st: &mut PortState, data: Term) -> Result<(), PortError> {
        let entry = self.driver.entry();
        if let Some(outputv) = entry.outputv {
            let mut vec = crate::iodata::IoVecBuf::from_iodata(data).ok_or(PortError::BadValue)?;
            st.bytes_in += vec.total() as u64;
            // SAFETY: the vector and its binaries live until `vec` drops,
            // after the callback returns.
            unsafe { outputv(st.data, vec.as_mut_ptr()) };
        } else if let Some(output) = entry.output {
            let flat = crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
            st.bytes_in += flat.len() as u64;
            // SAFETY: the buffer lives until after the callback returns.
            unsafe { output(st.data, flat.as_ptr() as *mut c_char, flat.len()) };
        } else {
            crate::iodata::flatten(data).ok_or(PortError::BadValue)?;
        }
        Ok(())
    }

    /// Calls `control`; returns the reply as a list, or as a binary when the
    /// driver set `PORT_CONTROL_FLAG_BINARY`.
    pub fn control<'a>(
        &self,
        env: Env<'a>,
        st: &mut PortState,
        op: c_uint,
        data: &[u8],
    ) -> Result<Term<'a>, PortError> {
        let control = self.driver.entry().control.ok_or(PortError::Badarg)?;
        let mut default = [0u8; CONTROL_BUF];
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        // SAFETY: control is the driver's callback; the input buffer lives
        // until it returns; rbuf points at CONTROL_BUF writable bytes.
        let n = unsafe {
            control(
                st.data,
                op,
                data.as_ptr() as *mut c_char,
                data.len(),
                &mut rbuf,
                CONTROL_BUF,
            )
        };
        crate::reply::control_reply(env, st, n, rbuf, default_ptr, CONTROL_BUF)
    }

    /// Calls `call` with `arg` in external term format; decodes the reply.
    pub fn call<'a>(
        &self,
        env: Env<'a>,
        st: &mut PortState,
        op: c_uint,
        arg: &[u8],
    ) -> Result<Term<'a>, PortError> {
        let call = self.driver.entry().call.ok_or(PortError::Badarg)?;
        let mut default = [0u8; CALL_BUF];
        let default_ptr = default.as_mut_ptr() as *mut c_char;
        let mut rbuf = default_ptr;
        let mut flags: c_uint = 0;
        // SAFETY: as for control.
        let n = unsafe {
            call(
                st.data,
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

/// Size of the reply buffer the emulator hands to `control`.
pub const CONTROL_BUF: usize = 64;

/// Size of the reply buffer the emulator hands to `call`.
pub const CALL_BUF: usize = 255;
