//! The callback context: which port a driver callback runs for, in which
//! environment, and where the messages it emits go.
//!
//! Driver API functions receive only an `ErlDrvPort`. While we run a driver
//! callback we hold the port's lock and publish a [`CallbackCtx`] in a
//! thread-local; API functions called from inside the callback find their
//! port and environment there without any lookup or lock (the hot path).

use std::cell::Cell;
use std::ptr;

use rustler::sys::ErlNifTerm as ERL_NIF_TERM;
use rustler::{Env, LocalPid, OwnedEnv, Term};

use crate::port::Port;

/// Where messages built during a callback are created and delivered.
pub enum Delivery {
    /// Inside a NIF call: terms are built in the calling process's env;
    /// messages to the caller are handed back to the Erlang wrapper, which
    /// sends them with `!` (cheaper than `enif_send`).
    Process {
        /// The caller's env.
        env: *mut rustler::sys::ErlNifEnv,
        /// The calling process.
        caller: LocalPid,
    },
    /// Messages for anyone, each built in its own env and sent with
    /// `enif_send` (resource `down` callbacks, ports killed by an unload,
    /// driver threads). `caller_env` is the env of the calling NIF or
    /// callback, or NULL on a thread the VM does not manage.
    Detached {
        /// The caller's env (process-bound or callback env), or NULL.
        caller_env: *mut rustler::sys::ErlNifEnv,
    },
}

impl Delivery {
    /// Delivery for a NIF call of the process owning `env`.
    pub fn to_caller(env: Env) -> Delivery {
        Delivery::Process {
            env: env.as_c_arg(),
            caller: env.pid(),
        }
    }
}

/// State of one running callback.
pub struct CallbackCtx {
    /// The port whose lock is held.
    pub port: *const Port,
    /// How messages are built and sent.
    pub delivery: Delivery,
    /// Messages for the caller, in emission order.
    pub to_caller: Vec<ERL_NIF_TERM>,
    /// Log lines for the Erlang wrapper (API misuse by the driver).
    pub logs: Vec<String>,
    /// What `driver_caller` reports when it is not the calling process
    /// (a command message is attributed to the connected process it names).
    pub caller_override: Option<LocalPid>,
}

thread_local! {
    static CURRENT: Cell<*mut CallbackCtx> = const { Cell::new(ptr::null_mut()) };
}

impl CallbackCtx {
    /// A context for `port` delivering as `delivery`.
    pub fn new(port: &Port, delivery: Delivery) -> CallbackCtx {
        CallbackCtx {
            port,
            delivery,
            to_caller: Vec::new(),
            logs: Vec::new(),
            caller_override: None,
        }
    }

    /// Runs `f` with `self` published as the current context.
    pub fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Restore(*mut CallbackCtx);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let previous = CURRENT.with(|c| c.replace(self as *mut CallbackCtx));
        let _restore = Restore(previous);
        f()
    }

    /// Sends the message `build` makes to `to`, preserving emission order.
    pub fn emit(&mut self, to: &LocalPid, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        match self.delivery {
            Delivery::Process { env, caller } => {
                // SAFETY: env is the live env of the NIF call that created
                // this context; the context does not outlive that call.
                let env = unsafe { Env::new(&(), env) };
                let msg = build(env);
                if caller == *to {
                    self.to_caller.push(msg.as_c_arg());
                } else {
                    // SAFETY: env is process-bound; msg_env NULL copies msg.
                    unsafe {
                        rustler::sys::enif_send(
                            env.as_c_arg(),
                            to.as_c_arg(),
                            ptr::null_mut(),
                            msg.as_c_arg(),
                        );
                    }
                }
            }
            Delivery::Detached { caller_env } => {
                let owned = OwnedEnv::new();
                // SAFETY: the message is built in `owned` and handed over
                // with it; caller_env is the current NIF/callback env or
                // NULL on an unmanaged thread, as enif_send requires.
                owned.run(|env| unsafe {
                    let msg = build(env);
                    rustler::sys::enif_send(
                        caller_env,
                        to.as_c_arg(),
                        env.as_c_arg(),
                        msg.as_c_arg(),
                    );
                });
            }
        }
    }

    /// Builds a term in the context's env (only for `Delivery::Process`).
    pub fn env(&self) -> Option<Env<'_>> {
        match self.delivery {
            // SAFETY: see `emit`.
            Delivery::Process { env, .. } => Some(unsafe { Env::new(&(), env) }),
            Delivery::Detached { .. } => None,
        }
    }

    /// Records an API misuse for the log.
    pub fn log(&mut self, line: String) {
        self.logs.push(line);
    }
}

/// Runs `f` with the current callback context, if a callback is running on
/// this thread.
pub fn with_current<R>(f: impl FnOnce(&mut CallbackCtx) -> R) -> Option<R> {
    let ctx = CURRENT.with(|c| c.get());
    if ctx.is_null() {
        None
    } else {
        // SAFETY: a non-null CURRENT points at the CallbackCtx of the
        // callback running on this thread (published by `enter`, which
        // outlives the callback); no other reference to it is active while
        // the driver's code runs.
        Some(f(unsafe { &mut *ctx }))
    }
}

/// Reports API misuse outside any port: to the VM's standard error, since
/// there is no port to fail and no Erlang process to log through.
pub fn log_detached(line: &str) {
    eprintln!("erl_driver_compat: {line}");
}
