//! The running callback: its port, the proof that the port's lock is held,
//! where the messages it emits go, and the [`Effects`] it records.
//!
//! Driver API functions receive only an `ErlDrvPort`. While a driver
//! callback runs, its [`CallbackCtx`] is published in a thread-local; API
//! functions called from inside the callback find their port, its state
//! and the environment there, without any lookup or lock (the hot path).
//!
//! Everything is reached through shared references: the context's own
//! mutable parts are cells borrowed only for the duration of a push, so a
//! driver re-entering the API while the code around the callback holds the
//! context is sound (see [`crate::port::state`] for the port state).

use std::cell::{Cell, OnceCell, RefCell};
use std::ptr;
use std::sync::Arc;

use rustler::{Env, LocalPid, OwnedEnv, Term};

use crate::driver::Driver;
use crate::effects::{Action, Effects};
use crate::ffi::{self, RawEnv};
use crate::port::create::CreatedLocks;
use crate::port::registry::PortCache;
use crate::port::state::{Held, PortState, Status};
use crate::port::Port;

/// Where messages built during a callback are created and delivered.
#[derive(Clone, Copy)]
pub enum Delivery {
    /// Inside a NIF call: terms are built in the calling process's env;
    /// messages to the caller are handed back to the Erlang wrapper, which
    /// sends them with `!` (cheaper than `enif_send`).
    Process {
        /// The caller's env.
        env: RawEnv,
        /// The calling process; `None`: the process of `env`, asked for
        /// only when needed (most callbacks never do).
        caller: Option<LocalPid>,
    },
    /// Messages for anyone, each built in its own env and sent with
    /// `enif_send` (resource `down` callbacks, driver threads).
    /// `caller_env` is the env of the calling NIF or callback, or NULL on a
    /// thread the VM does not manage.
    Detached {
        /// The caller's env (process-bound or callback env), or NULL.
        caller_env: RawEnv,
    },
}

impl Delivery {
    /// Delivery for a NIF call of the process owning `env`.
    pub fn to_caller(env: Env) -> Delivery {
        Delivery::Process {
            env: env.as_c_arg(),
            caller: None,
        }
    }
}

/// The calling process of a Process delivery.
fn process_caller(env: RawEnv, caller: Option<LocalPid>) -> LocalPid {
    caller.unwrap_or_else(|| {
        // SAFETY: a Process delivery without a caller is made from the
        // live, process-bound env of the running NIF call (`to_caller`).
        unsafe { Env::new(&(), env) }.pid()
    })
}

/// Sends the message `build` makes in a process-independent env of its
/// own, moved (not copied) into `to`'s mailbox. `caller_env` is the env of
/// the running NIF call or callback, or NULL on a thread the VM does not
/// manage.
fn send_owned(caller_env: RawEnv, to: &LocalPid, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
    let owned = OwnedEnv::new();
    owned.run(|env| {
        let msg = build(env);
        // SAFETY: the message is built in `owned` and handed over with it;
        // caller_env is the current NIF/callback env or NULL on an
        // unmanaged thread, as enif_send requires.
        unsafe { ffi::send(caller_env, to.as_c_arg(), env.as_c_arg(), msg.as_c_arg()) };
    });
}

/// State of one running callback. Exists only while the lock of `port` is
/// held by this thread (it carries the [`Held`] proof).
pub struct CallbackCtx<'p> {
    port: &'p Port,
    held: Held,
    /// This thread's [`ThreadHot`] (see [`hot`]): `enter` publishes the
    /// context there without a thread-local access of its own.
    hot: *const ThreadHot,
    delivery: Delivery,
    effects: RefCell<Effects>,
    /// What `driver_caller` reports when it is not the calling process
    /// (a command message is attributed to the connected process it names).
    caller_override: Cell<Option<LocalPid>>,
    /// What only a few runs need, allocated on first use: the context is
    /// built and taken apart for every callback, so it stays small.
    rare: OnceCell<Box<Rare>>,
}

/// The parts of a [`CallbackCtx`] that only runs that close or create
/// ports need.
#[derive(Default)]
pub(crate) struct Rare {
    /// Drivers whose ports this run closed: counted once the lock is
    /// released (`Driver::port_closed` may run `finish`, which takes the
    /// driver's lock).
    closed: RefCell<Vec<Arc<Driver>>>,
    /// Ports this run unregistered, kept alive until the run has ended
    /// and the lock is released: the run may have reached its port
    /// without holding a reference to it (see [`crate::port::registry`]).
    kept: RefCell<Vec<Arc<Port>>>,
    /// Locks of ports this callback created (`driver_create_port` under
    /// port-level locking), held until the run ends.
    created: CreatedLocks,
}

impl Rare {
    /// Ends what the run left for after its lock is released: counts the
    /// closed ports of their drivers, drops the ports kept alive.
    pub(crate) fn after_unlock(&self) {
        for driver in self.closed.take() {
            driver.port_closed();
        }
        drop(self.kept.take());
    }
}

impl Drop for Rare {
    fn drop(&mut self) {
        // Reached with ports still kept only when a run unwinds: the lock
        // may still be held through one of them, so they are leaked rather
        // than freed under it.
        for port in self.kept.get_mut().drain(..) {
            std::mem::forget(port);
        }
    }
}

/// This thread's hot state, in one thread-local: each access to a
/// thread-local of a dynamically loaded library is a call
/// (`__tls_get_addr`), so a port operation makes one, in the lookup of its
/// port, and hands the address on ([`crate::port::registry::LockedPort`],
/// [`CallbackCtx::run`]). It has no destructor: it is reachable for as long
/// as the thread runs, also from other thread-locals' destructors (a
/// driver's thread-specific data destructor may call the API), and its
/// access checks no state.
pub(crate) struct ThreadHot {
    /// The context of the callback running on this thread, or NULL.
    current: Cell<*const CallbackCtx<'static>>,
    /// This thread's cache of pid lookups, made on first use and freed
    /// when the thread ends (see [`PortsOwner`]); NULL before and after.
    ports: Cell<*const PortCache>,
}

impl ThreadHot {
    /// This thread's cache of pid lookups; `None` once the thread's
    /// thread-locals are being destroyed.
    pub(crate) fn ports(&self) -> Option<&PortCache> {
        let ports = self.ports.get();
        if ports.is_null() {
            return self.make_ports();
        }
        // SAFETY: a non-null `ports` is this thread's cache, made by
        // `make_ports` and freed only by `PortsOwner`'s destructor, which
        // clears `ports` first.
        Some(unsafe { &*ports })
    }

    #[cold]
    fn make_ports(&self) -> Option<&PortCache> {
        let ports = Box::into_raw(Box::new(PortCache::new()));
        if PORTS_OWNER.try_with(|o| o.0.set(ports)).is_err() {
            // SAFETY: made just above and handed to no one.
            drop(unsafe { Box::from_raw(ports) });
            return None;
        }
        self.ports.set(ports);
        // SAFETY: made just above; freed only by `PortsOwner`'s destructor.
        Some(unsafe { &*ports })
    }
}

/// Frees this thread's [`PortCache`] when the thread ends (the destructor
/// [`ThreadHot`] does not have).
struct PortsOwner(Cell<*mut PortCache>);

impl Drop for PortsOwner {
    fn drop(&mut self) {
        let ports = self.0.replace(ptr::null_mut());
        if ports.is_null() {
            return;
        }
        HOT.with(|h| h.ports.set(ptr::null()));
        // SAFETY: made by `make_ports` with `Box::into_raw`, freed once,
        // here; `ThreadHot::ports` no longer hands it out.
        drop(unsafe { Box::from_raw(ports) });
    }
}

thread_local! {
    static HOT: ThreadHot = const {
        ThreadHot {
            current: Cell::new(ptr::null()),
            ports: Cell::new(ptr::null()),
        }
    };
    static PORTS_OWNER: PortsOwner = const { PortsOwner(Cell::new(ptr::null_mut())) };
}

/// The address of this thread's [`ThreadHot`]. It stays valid for as long
/// as the thread runs, and, `ThreadHot` being neither `Send` nor `Sync`,
/// is only ever used on this thread.
pub(crate) fn hot() -> *const ThreadHot {
    HOT.with(|h| h as *const ThreadHot)
}

impl<'p> CallbackCtx<'p> {
    /// A context for `port`, whose lock `held` proves held.
    // Inlined: the context is large, returning it would copy it.
    #[inline(always)]
    fn new(
        port: &'p Port,
        held: Held,
        delivery: Delivery,
        hot: *const ThreadHot,
    ) -> CallbackCtx<'p> {
        CallbackCtx {
            port,
            held,
            hot,
            delivery,
            effects: RefCell::new(Effects::default()),
            caller_override: Cell::new(None),
            rare: OnceCell::new(),
        }
    }

    /// The port the callback runs for.
    pub fn port(&self) -> &'p Port {
        self.port
    }

    /// The state of the callback's own port.
    pub fn state(&self) -> &PortState {
        self.port
            .state(&self.held)
            .unwrap_or_else(|| unreachable!("a context always holds its own port's lock"))
    }

    /// The state of `other`, when the lock this callback holds covers it
    /// (driver-level locking: every port of the driver), or when this
    /// callback created `other` (see [`CreatedLocks`]).
    pub fn state_of<'a>(&'a self, other: &'a Port) -> Option<&'a PortState> {
        other
            .state(&self.held)
            .or_else(|| self.rare.get()?.created.state_of(other))
    }

    fn rare(&self) -> &Rare {
        self.rare.get_or_init(Box::default)
    }

    /// The locks of the ports this callback created.
    pub fn created_locks(&self) -> &CreatedLocks {
        &self.rare().created
    }

    /// How messages are delivered.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Attributes the current call to `pid` for `driver_caller`.
    pub fn set_caller(&self, pid: LocalPid) {
        self.caller_override.set(Some(pid));
    }

    /// The process `driver_caller` reports, or `None` when the call has no
    /// calling process (detached).
    pub fn caller(&self) -> Option<LocalPid> {
        self.caller_override.get().or(match self.delivery {
            Delivery::Process { env, caller } => Some(process_caller(env, caller)),
            Delivery::Detached { .. } => None,
        })
    }

    /// Runs `f` with `self` published as the current context.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Puts the previous context back, also when `f` unwinds.
        struct Restore<'c>(
            &'c Cell<*const CallbackCtx<'static>>,
            *const CallbackCtx<'static>,
        );
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let me = (self as *const CallbackCtx<'p>).cast::<CallbackCtx<'static>>();
        // SAFETY: `hot` is this thread's ThreadHot (from `hot()` on this
        // thread: the context is not Send), valid while the thread runs.
        let current = unsafe { &(*self.hot).current };
        let _restore = Restore(current, current.replace(me));
        f()
    }

    /// Sends the message `build` makes to `to`, preserving emission order.
    /// `build` may be given any env (the caller's, or one of the
    /// message's own): it must not capture terms of another env (see
    /// [`emit_built`](Self::emit_built)).
    pub fn emit(&self, to: &LocalPid, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        match self.delivery {
            Delivery::Process { env, .. } => {
                if self.is_caller(to) {
                    // SAFETY: env is the live env of the NIF call that
                    // created this context; the context does not outlive
                    // that call.
                    let env = unsafe { Env::new(&(), env) };
                    let msg = build(env);
                    self.effects.borrow_mut().message(msg.as_c_arg());
                } else {
                    // Built in an env of its own and moved into the
                    // receiver's mailbox: a copy from the caller's heap
                    // would leave the caller a reference to each binary in
                    // it until its next collection (natively the message
                    // holds the only one; bin_refc_SUITE).
                    send_owned(env, to, build);
                }
            }
            Delivery::Detached { caller_env } => send_owned(caller_env, to, build),
        }
    }

    /// Sends the message `build` makes to the connected process of the
    /// port whose state is `st`. While that port's `stop` runs (it is
    /// `Closing`) the message is held back and goes out after the port's
    /// exit signals, as natively (see [`crate::effects`]); detached runs
    /// send it at once.
    pub fn emit_to_connected(
        &self,
        st: &PortState,
        build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>,
    ) {
        let to = st.connected();
        match self.delivery {
            Delivery::Process { env, .. } if st.status() == Status::Closing => {
                // SAFETY: env is the live env of the NIF call that created
                // this context; the Env made here does not outlive this
                // call, which runs inside that NIF call.
                let env = unsafe { Env::new(&(), env) };
                let msg = build(env);
                self.effects.borrow_mut().late_message(to, msg.as_c_arg());
            }
            _ => self.emit(&to, build),
        }
    }

    /// Whether `to` is the process of the NIF call running this callback
    /// (never for a detached delivery).
    pub fn is_caller(&self, to: &LocalPid) -> bool {
        match self.delivery {
            Delivery::Process { env, caller } => {
                let caller = process_caller(env, caller);
                ffi::pid_word(caller.as_c_arg()) == ffi::pid_word(to.as_c_arg())
            }
            Delivery::Detached { .. } => false,
        }
    }

    /// Hands back `msg`, a term already built in the caller's env of this
    /// `Process` delivery: a message for the caller, or, with `held_back`,
    /// one for `to` (the connected process) that goes out after the port's
    /// exit signals, as [`emit_to_connected`](Self::emit_to_connected)
    /// does while the port's `stop` runs. Messages for anyone else are
    /// built in their own env (see [`emit`](Self::emit)).
    ///
    /// # Safety
    /// `msg` must have been made in the env of this context's `Process`
    /// delivery.
    pub unsafe fn emit_built(&self, to: &LocalPid, msg: crate::ffi::RawTerm, held_back: bool) {
        debug_assert!(held_back || self.is_caller(to));
        if held_back {
            self.effects.borrow_mut().late_message(*to, msg);
        } else {
            self.effects.borrow_mut().message(msg);
        }
    }

    /// Takes the messages held back while `stop` ran.
    pub fn take_late(&self) -> Vec<(LocalPid, crate::ffi::RawTerm)> {
        self.effects.borrow_mut().take_late()
    }

    /// Builds a term in the caller's env (only for `Delivery::Process`).
    pub fn env(&self) -> Option<Env<'_>> {
        match self.delivery {
            // SAFETY: env is the live env of the NIF call that created
            // this context; the returned Env borrows self, and the context
            // does not outlive that call.
            Delivery::Process { env, .. } => Some(unsafe { Env::new(&(), env) }),
            Delivery::Detached { .. } => None,
        }
    }

    /// Records a problem of the running port for the log (the entry names
    /// the port and its driver).
    pub fn log(&self, line: String) {
        self.log_entry(None, line);
    }

    /// Records the driver's misuse of the API function `func` for the log.
    pub fn log_misuse(&self, func: &'static str, detail: String) {
        self.log_entry(Some(func), detail);
    }

    fn log_entry(&self, function: Option<&'static str>, detail: String) {
        let port = self.port();
        self.effects.borrow_mut().log(crate::effects::LogEntry {
            driver: port.driver.name.clone(),
            port: port.pid,
            number: port.number,
            function,
            detail,
        });
    }

    /// Records work for the Erlang side.
    pub fn act(&self, action: Action) {
        self.effects.borrow_mut().act(action);
    }

    /// Notes that a port of `driver` closed during this run.
    pub fn port_closed(&self, driver: &Arc<Driver>) {
        self.rare().closed.borrow_mut().push(driver.clone());
    }

    /// Keeps `port` (which this run unregistered) alive until the run has
    /// ended and its lock is released.
    pub(crate) fn keep_alive(&self, port: Arc<Port>) {
        self.rare().kept.borrow_mut().push(port);
    }

    /// Runs `f` with a context for `port`, whose lock `held` proves held
    /// (`hot`: this thread's [`hot`]);
    /// then ends the run: returns what `f` returned, the effects (already
    /// carried out for a detached delivery) and, when the run closed or
    /// created ports, what must be done once the lock is released
    /// ([`Rare::after_unlock`]). What a closing port emitted and no close
    /// took along is dropped (natively output to a port that is closing,
    /// its queue flushing, is). The locks of the ports the run created
    /// are released here.
    #[inline(always)]
    pub(crate) fn run<T>(
        port: &'p Port,
        held: Held,
        delivery: Delivery,
        hot: *const ThreadHot,
        f: impl FnOnce(&CallbackCtx<'p>) -> T,
    ) -> (T, Effects, Option<Box<Rare>>) {
        let ctx = CallbackCtx::new(port, held, delivery, hot);
        let value = f(&ctx);
        let CallbackCtx {
            effects,
            rare,
            delivery,
            ..
        } = ctx;
        let mut effects = effects.into_inner();
        effects.drop_late();
        let rare = rare.into_inner().map(|mut rare| {
            rare.created.release();
            rare
        });
        match delivery {
            Delivery::Process { .. } => (value, effects, rare),
            Delivery::Detached { caller_env } => {
                // SAFETY: a Detached delivery is made with the env of the
                // NIF call or callback running on this thread, or NULL.
                unsafe { effects.dispatch_detached(caller_env) };
                (value, Effects::default(), rare)
            }
        }
    }
}

/// Runs `f` with the current callback context, if a callback is running on
/// this thread.
pub fn with_current<R>(f: impl for<'c> FnOnce(&'c CallbackCtx<'c>) -> R) -> Option<R> {
    let ctx = HOT.with(|h| h.current.get());
    if ctx.is_null() {
        None
    } else {
        // SAFETY: a non-null `current` points at the CallbackCtx of the
        // callback running on this thread, published by `enter` for no
        // longer than the context lives; only shared references to it
        // exist (its mutable parts are cells).
        Some(f(unsafe { &*ctx }))
    }
}
