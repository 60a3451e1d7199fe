//! "Sending terms": `driver_output_term`, `driver_send_term`,
//! `erl_drv_output_term` and `erl_drv_send_term` (the specification
//! interpreter is [`crate::term_spec`]).
//!
//! Return codes, as the runtime gives them (checked natively by
//! `test/term_SUITE.erl`): 1 delivered; 0 receiver not alive (or not a
//! pid), checked after the specification and before building it; -1 a
//! malformed specification, or a port that is not open (also after
//! `driver_failure*` in the same callback; natively `driver_output_term`
//! and `driver_send_term` then give -1 or, in some runs, 0 and 1).
//!
//! Inside a callback of the port (or of a port under the same lock) the
//! message goes through the callback's delivery, so it keeps its place
//! among the port's other output. Elsewhere (a driver thread, or a port
//! under another lock) the port is found in the registry by its pid and
//! its connected process read from the thread-safe copy, without the
//! port's lock; the term is built in its own env and sent with
//! `enif_send`.

use std::os::raw::c_int;
use std::ptr;

use rustler::{Env, LocalPid, OwnedEnv};

use super::{guard, with_port};
use crate::abi::{DrvPort, TermData};
use crate::context::{self, CallbackCtx, Delivery};
use crate::ffi::{self, RawEnv};
use crate::port::state::{PortState, Status};
use crate::port::Port;
use crate::term_spec::{self, Ops, Words};
use crate::terms::pid_term;

/// Classifies the words of a specification with the VM's own tests.
struct EnvWords {
    env: RawEnv,
    /// The pid term of the port the call is made for, if known (saves a
    /// registry lookup for `ERL_DRV_PORT` of the own port).
    port: Option<TermData>,
}

impl Words for EnvWords {
    fn is_atom(&self, word: TermData) -> bool {
        // SAFETY: env is live for the call; any word may be tested.
        unsafe { ffi::is_atom(self.env, ffi::from_raw(word)) }
    }

    fn is_pid(&self, word: TermData) -> bool {
        // SAFETY: env is the live env this parse runs for;
        // enif_get_local_pid only tests the word's tag, so any word may be
        // tested.
        unsafe { ffi::local_pid(self.env, ffi::from_raw(word)) }.is_some()
    }

    fn is_port(&self, word: TermData) -> bool {
        // A pseudo-port is its process: the word must be the pid of an
        // open port (natively, a port identifier).
        self.port == Some(word) || (self.is_pid(word) && port_by_term(word).is_some())
    }
}

/// The open port whose pid term is `word`.
fn port_by_term(word: TermData) -> Option<std::sync::Arc<Port>> {
    // SAFETY: the pid is only used as a registry key; a word that is not
    // a port's pid term finds nothing.
    let pid = LocalPid::from_c_arg(unsafe { ffi::pid_from_term(ffi::from_raw(word)) });
    crate::port::lookup(&pid)
}

/// Who receives the term.
#[derive(Clone, Copy)]
enum To {
    /// The connected process of the port.
    Connected,
    /// The process `driver_send_term` names (any word: not a pid is 0).
    Word(TermData),
}

/// The process `word` names, in `env`: a local pid that is not a
/// pseudo-port's (natively a port is not a receiver: 0).
fn receiver(env: Env, word: TermData) -> Option<LocalPid> {
    // SAFETY: env is live; any word may be tested.
    let pid = unsafe { ffi::local_pid(env.as_c_arg(), ffi::from_raw(word)) }?;
    port_by_term(word)
        .is_none()
        .then(|| LocalPid::from_c_arg(pid))
}

/// The env of the NIF call or callback running `ctx` (for `enif_send`).
fn caller_env(ctx: &CallbackCtx) -> RawEnv {
    match ctx.delivery() {
        Delivery::Process { env, .. } => env,
        Delivery::Detached { caller_env } => caller_env,
    }
}

/// Sends the term of `data`/`len` from a callback holding the lock of
/// `port` (whose state is `st`), through the callback's delivery.
fn deliver_in(
    ctx: &CallbackCtx,
    port: &Port,
    st: &PortState,
    to: To,
    data: *const TermData,
    len: c_int,
) -> c_int {
    let Some(env) = ctx.env() else {
        // A detached run sends each message at once anyway.
        let to = match to {
            To::Connected => pid_term(&st.connected()),
            To::Word(word) => word,
        };
        return send_own(caller_env(ctx), Some(port.pid_term), to, data, len);
    };
    let words = EnvWords {
        env: env.as_c_arg(),
        port: Some(port.pid_term),
    };
    let mut ops = Ops::new();
    // SAFETY: the driver passes len words and the pointers the manual asks.
    if unsafe { term_spec::parse(data, len, &words, &mut ops) }.is_err() {
        return -1;
    }
    let connected = st.connected();
    let (to, to_word) = match to {
        To::Connected => (connected, pid_term(&connected)),
        To::Word(word) => match receiver(env, word) {
            Some(pid) => (pid, word),
            None => {
                // SAFETY: the ops were just parsed from the driver's data;
                // a bad external term is an error before a bad receiver.
                return match unsafe { term_spec::decode_ext(env, &ops) } {
                    Ok(_) => 0,
                    Err(_) => -1,
                };
            }
        },
    };
    let held_back = ffi::pid_word(to.as_c_arg()) == ffi::pid_word(connected.as_c_arg())
        && st.status() == Status::Closing;
    let to_caller = ctx.is_caller(&to);
    if !to_caller && !held_back {
        // Built in an env of its own and moved into the receiver's
        // mailbox: a copy from the caller's heap would leave the caller a
        // reference to each binary in it until its next collection
        // (natively the message holds the only one; bin_refc_SUITE).
        return send_own(caller_env(ctx), Some(port.pid_term), to_word, data, len);
    }
    // SAFETY: the ops were just parsed from the driver's data.
    let Ok(ext) = (unsafe { term_spec::decode_ext(env, &ops) }) else {
        return -1;
    };
    // The calling process is running this NIF call: alive (most terms go
    // to it, and `enif_is_process_alive` looks the pid up in the process
    // table).
    if !to_caller && !env.is_process_alive(to) {
        return 0;
    }
    // SAFETY: ops were parsed just above from the driver's data, which it
    // does not change while it waits for this call, and parse checked
    // with `words` that the words naming terms are atoms or pids
    // (immediates, valid in env).
    let Ok(term) = (unsafe { term_spec::build(env, &ops, ext) }) else {
        return -1;
    };
    // SAFETY: term was built in env, the caller's env of this Process
    // delivery (ctx.env() is Some). To the connected process it is held
    // back while `stop` runs (after the port's exit signals, as natively).
    unsafe { ctx.emit_built(&to, term.as_c_arg(), held_back) };
    1
}

/// Builds the term in its own env and sends it to `to` with `enif_send`
/// (`caller_env`: the running NIF's or callback's env, NULL on a driver
/// thread).
fn send_own(
    caller_env: RawEnv,
    port: Option<TermData>,
    to: TermData,
    data: *const TermData,
    len: c_int,
) -> c_int {
    let owned = OwnedEnv::new();
    owned.run(|env| {
        let words = EnvWords {
            env: env.as_c_arg(),
            port,
        };
        let mut ops = Ops::new();
        // SAFETY: the driver passes len words and the pointers the manual
        // asks.
        if unsafe { term_spec::parse(data, len, &words, &mut ops) }.is_err() {
            return -1;
        }
        // SAFETY: the ops were just parsed from the driver's data.
        let Ok(ext) = (unsafe { term_spec::decode_ext(env, &ops) }) else {
            return -1;
        };
        let Some(to) = receiver(env, to) else {
            return 0;
        };
        if !env.is_process_alive(to) {
            return 0;
        }
        // SAFETY: ops were parsed just above from the driver's data, which
        // it does not change while it waits for this call, and parse
        // checked with `words` that the words naming terms are atoms or
        // pids (immediates, valid in env).
        let Ok(term) = (unsafe { term_spec::build(env, &ops, ext) }) else {
            return -1;
        };
        // SAFETY: the message belongs to `owned`, handed over with it;
        // caller_env is the running NIF's or callback's env, or NULL on a
        // thread the VM does not manage.
        let sent = unsafe { ffi::send(caller_env, to.as_c_arg(), env.as_c_arg(), term.as_c_arg()) };
        c_int::from(sent)
    })
}

/// The `erl_drv_*` forms: the port is named by its pid term and may be
/// used from any thread.
fn deliver_to_port_term(port_term: TermData, to: To, data: *const TermData, len: c_int) -> c_int {
    let in_callback = context::with_current(|ctx| {
        let current = ctx.port();
        if current.pid_term == port_term {
            let st = ctx.state();
            if st.status() == Status::Closed {
                return -1;
            }
            return deliver_in(ctx, current, st, to, data, len);
        }
        let Some(other) = port_by_term(port_term) else {
            return -1;
        };
        match ctx.state_of(&other) {
            Some(st) if st.status() == Status::Closed => -1,
            Some(st) => deliver_in(ctx, &other, st, to, data, len),
            None => send_unlocked(caller_env(ctx), &other, to, data, len),
        }
    });
    in_callback.unwrap_or_else(|| match port_by_term(port_term) {
        Some(port) => send_unlocked(ptr::null_mut(), &port, to, data, len),
        None => -1,
    })
}

/// Sends for `port` without its lock (its connected process from the
/// thread-safe copy).
fn send_unlocked(
    caller_env: RawEnv,
    port: &Port,
    to: To,
    data: *const TermData,
    len: c_int,
) -> c_int {
    let to = match to {
        To::Connected => pid_term(&port.connected_any_thread()),
        To::Word(word) => word,
    };
    send_own(caller_env, Some(port.pid_term), to, data, len)
}

/// `int driver_output_term(ErlDrvPort port, ErlDrvTermData *term, int n)`
pub(crate) extern "C" fn driver_output_term(
    port: DrvPort,
    data: *const TermData,
    len: c_int,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output_term", |ctx, p, st| {
            deliver_in(ctx, p, st, To::Connected, data, len)
        })
        .unwrap_or(-1)
    })
}

/// `int driver_send_term(ErlDrvPort port, ErlDrvTermData receiver,
/// ErlDrvTermData *term, int n)`
pub(crate) extern "C" fn driver_send_term(
    port: DrvPort,
    to: TermData,
    data: *const TermData,
    len: c_int,
) -> c_int {
    guard(-1, || {
        if context::with_current(|_| ()).is_none() {
            // A driver thread: natively the port is not looked at.
            return send_own(ptr::null_mut(), None, to, data, len);
        }
        with_port(port, "driver_send_term", |ctx, p, st| {
            deliver_in(ctx, p, st, To::Word(to), data, len)
        })
        .unwrap_or(-1)
    })
}

/// `int erl_drv_output_term(ErlDrvTermData port, ErlDrvTermData *term,
/// int n)`: thread-safe.
pub(crate) extern "C" fn erl_drv_output_term(
    port: TermData,
    data: *const TermData,
    len: c_int,
) -> c_int {
    guard(-1, || deliver_to_port_term(port, To::Connected, data, len))
}

/// `int erl_drv_send_term(ErlDrvTermData port, ErlDrvTermData receiver,
/// ErlDrvTermData *term, int n)`: thread-safe.
pub(crate) extern "C" fn erl_drv_send_term(
    port: TermData,
    to: TermData,
    data: *const TermData,
    len: c_int,
) -> c_int {
    guard(-1, || deliver_to_port_term(port, To::Word(to), data, len))
}
