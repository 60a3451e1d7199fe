//! What a driver callback produces besides its return value, defined once.
//!
//! A callback run inside a NIF call (the common case) cannot do everything
//! itself: messages for the calling process are cheaper sent by the Erlang
//! wrapper with `!` than with `enif_send` (DESIGN.md, "What the hot path
//! costs"), and some work needs a BIF (ending the port process, starting
//! a timer, and in the coming issues linking, ...). So a callback records
//! [`Effects`]; the NIF hands them to Erlang with its result, and
//! `erl_driver_compat_effects` (src/) carries them out, in this order:
//! messages, log reports, actions.
//!
//! The term is built only here ([`Effects::encode`]) and decoded only there:
//!
//! ```text
//! {'$edc', Value, Messages, Reports, Actions}
//! Report = {Driver :: binary(), PortPid, Function :: atom() | undefined,
//!           Detail :: binary()}
//! Action = {exit_port, PortPid, Reason, Unlink :: pid() | false, Late}
//!        | {deliver, Late}
//!        | {start_timer, PortPid, Ms, Gen}
//!        | {unbusy, PortPid}
//!        | {start_created, PortPid, Owner}
//! Late   = [{To :: pid(), Message}]
//! ```
//!
//! A `Report` is one [`LogEntry`]: a driver's misuse of the API
//! (`Function` is the API function misused) or another problem of a
//! driver's port (`undefined`); the Erlang side logs it through `logger`
//! as a structured report naming the driver and the port.
//!
//! `Late` are the messages a port's `stop` emitted: natively they reach
//! their receivers after the port's exit signals, so the port process
//! sends them once it has signalled its links. `start_timer` starts the
//! VM timer of the port's timer (see [`crate::timer`]):
//! `erlang:start_timer(Ms, PortPid, {'$edc_timeout', Gen})`. `unbusy`
//! tells the port process that the driver cleared the port's busy state
//! (`set_busy_port(port, 0)`): it lets the commands waiting for that run,
//! in the native order (`PortPid ! '$edc_unbusy'`).
//! `erlang:start_timer(Ms, PortPid, {'$edc_timeout', Gen})`.
//! `start_created` starts the idle process a callback took for
//! `driver_create_port` as the new port, linked to `Owner`, and has the
//! pool of idle processes refilled.
//!
//! When no Erlang wrapper runs after the callback (a resource `down`
//! callback, a driver thread), the same actions are sent to the port
//! process they concern as `{'$edc_actions', Actions}` and carried out by
//! it, through the same Erlang decoder ([`Effects::dispatch_detached`]).

use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};

use crate::atoms;
use crate::ffi::{self, RawEnv, RawTerm};
use crate::port::ExitReason;

/// Work for the Erlang side.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// The port terminated: its process must exit with `reason`, after
    /// unlinking `unlink` (`driver_exit`: the owner gets no exit signal).
    ExitPort {
        /// The port process.
        port: LocalPid,
        /// Its exit reason.
        reason: ExitReason,
        /// A process to unlink first.
        unlink: Option<LocalPid>,
        /// Messages `stop` emitted, sent after the exit signals.
        late: Vec<(LocalPid, RawTerm)>,
    },
    /// The calling port process terminates by itself: these messages from
    /// `stop` go out after it has signalled its links.
    Deliver(Vec<(LocalPid, RawTerm)>),
    /// Start the VM timer that wakes the port process up for its timer:
    /// `erlang:start_timer(ms, port, {'$edc_timeout', generation})`.
    StartTimer {
        /// The port process.
        port: LocalPid,
        /// Milliseconds until it fires.
        ms: u64,
        /// The generation the port process hands back to `msg_timeout`.
        generation: u64,
    },
    /// The driver cleared the busy state of the port: wake its waiting
    /// commands (`PortPid ! '$edc_unbusy'`).
    Unbusy {
        /// The port process.
        port: LocalPid,
    },
    /// `driver_create_port` made a port whose process is the idle process
    /// `port`: start it as that port, linked to `owner`.
    StartCreated {
        /// The new port's process.
        port: LocalPid,
        /// Its owner (connected process).
        owner: LocalPid,
    },
}

impl Action {
    /// The process that carries the action out when no wrapper does
    /// (`Deliver` never happens in detached runs).
    fn port(&self) -> Option<&LocalPid> {
        match self {
            Action::ExitPort { port, .. }
            | Action::StartTimer { port, .. }
            | Action::Unbusy { port } => Some(port),
            Action::StartCreated { port, .. } => Some(port),
            Action::Deliver(_) => None,
        }
    }

    /// The action as a term of `env`; the late messages must belong to
    /// `env` (they are built in the caller's env of a Process delivery,
    /// and detached runs have none).
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let late = |msgs: &[(LocalPid, RawTerm)]| -> Vec<Term<'a>> {
            msgs.iter()
                // SAFETY: the late messages were built in the caller's env
                // of the Process delivery this action belongs to, which is
                // `env` (detached runs have none), so each term is valid in
                // env for 'a.
                .map(|(to, m)| (to, unsafe { Term::new(env, *m) }).encode(env))
                .collect()
        };
        match self {
            Action::ExitPort {
                port,
                reason,
                unlink,
                late: msgs,
            } => {
                let unlink = match unlink {
                    Some(pid) => pid.encode(env),
                    None => false.encode(env),
                };
                (
                    atoms::exit_port(),
                    port,
                    reason.to_term(env),
                    unlink,
                    late(msgs),
                )
                    .encode(env)
            }
            Action::Deliver(msgs) => (atoms::deliver(), late(msgs)).encode(env),
            Action::StartTimer {
                port,
                ms,
                generation,
            } => (atoms::start_timer(), port, ms, generation).encode(env),
            Action::Unbusy { port } => (atoms::unbusy(), port).encode(env),
            Action::StartCreated { port, owner } => {
                (atoms::start_created(), port, owner).encode(env)
            }
        }
    }
}

/// One problem of a driver's port for the log (see the module
/// documentation): which driver and port, which API function was misused
/// (if that is the problem), and what happened.
#[derive(Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The driver's name.
    pub driver: String,
    /// The port process.
    pub port: LocalPid,
    /// The port's number (named in the text for standard error, where
    /// the pid cannot be printed).
    pub number: u64,
    /// The API function the driver misused, if the entry is a misuse.
    pub function: Option<&'static str>,
    /// What happened (and what was done about it).
    pub detail: String,
}

impl LogEntry {
    /// The entry as one line of text (for standard error; the detail of a
    /// misuse names the function).
    pub fn line(&self) -> String {
        format!(
            "driver {} (port {}): {}",
            self.driver, self.number, self.detail
        )
    }

    /// `{Driver, PortPid, Function | undefined, Detail}` in `env`.
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let function = match self.function {
            Some(func) => rustler::Atom::from_str(env, func)
                .map(|a| a.encode(env))
                .unwrap_or_else(|_| func.encode(env)),
            None => atoms::undefined().encode(env),
        };
        (
            self.driver.as_str(),
            self.port,
            function,
            self.detail.as_str(),
        )
            .encode(env)
    }
}

/// The effects of one callback run. Small on purpose: it is built for
/// every callback and returned by value, and most runs record nothing or
/// one message for the caller. The first two such messages are kept
/// inline; anything else lives in a box allocated on first use.
#[derive(Default)]
pub struct Effects {
    /// The first messages for the calling process, built in the caller's
    /// env, in emission order.
    inline: [RawTerm; 2],
    /// Messages for the caller recorded so far (inline and in `rest`).
    len: usize,
    rest: Option<Box<Rest>>,
}

/// What [`Effects`] keeps out of line.
#[derive(Default)]
struct Rest {
    /// Messages for the caller after the first two.
    more: Vec<RawTerm>,
    /// Messages emitted by `stop`, not yet attached to the port's exit.
    late: Vec<(LocalPid, RawTerm)>,
    /// Reports of API misuse and other problems of the driver's port.
    logs: Vec<LogEntry>,
    /// Work for the Erlang side.
    actions: Vec<Action>,
}

impl Effects {
    fn rest(&mut self) -> &mut Rest {
        self.rest.get_or_insert_with(Box::default)
    }

    /// True when there is nothing to hand back (the hot path).
    pub fn is_empty(&self) -> bool {
        self.len == 0
            && self
                .rest
                .as_ref()
                .is_none_or(|r| r.logs.is_empty() && r.actions.is_empty())
    }

    /// Adds a message for the caller (a term of the caller's env).
    pub fn message(&mut self, msg: RawTerm) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = msg;
        } else {
            self.rest().more.push(msg);
        }
        self.len += 1;
    }

    /// The messages for the caller, in emission order.
    fn messages(&self) -> impl DoubleEndedIterator<Item = &RawTerm> {
        let more: &[RawTerm] = match &self.rest {
            Some(r) => &r.more,
            None => &[],
        };
        self.inline[..self.len.min(self.inline.len())]
            .iter()
            .chain(more.iter())
    }

    /// Adds a message emitted by `stop` (a term of the caller's env).
    pub fn late_message(&mut self, to: LocalPid, msg: RawTerm) {
        self.rest().late.push((to, msg));
    }

    /// Takes the messages emitted by `stop` so far.
    pub fn take_late(&mut self) -> Vec<(LocalPid, RawTerm)> {
        match &mut self.rest {
            Some(r) => std::mem::take(&mut r.late),
            None => Vec::new(),
        }
    }

    /// Drops the messages emitted by `stop` so far (no allocation when
    /// there are none, the usual case).
    pub fn drop_late(&mut self) {
        if let Some(r) = &mut self.rest {
            r.late.clear();
        }
    }

    /// Adds a report for the log.
    pub fn log(&mut self, entry: LogEntry) {
        self.rest().logs.push(entry);
    }

    /// Adds an action.
    pub fn act(&mut self, action: Action) {
        self.rest().actions.push(action);
    }

    /// The reports recorded so far.
    pub fn logs(&self) -> &[LogEntry] {
        self.rest.as_ref().map_or(&[], |r| &r.logs)
    }

    /// The actions recorded so far.
    pub fn actions(&self) -> &[Action] {
        self.rest.as_ref().map_or(&[], |r| &r.actions)
    }

    /// `{'$edc', Value, Messages, Reports, Actions}` in `env`, the env
    /// the messages were built in.
    pub fn encode<'a>(&self, env: Env<'a>, value: Term<'a>) -> Term<'a> {
        let raw_env = env.as_c_arg();
        // The lists built cell by cell from the end and the tuple from an
        // array: no vector on the way (the usual effect, one message, then
        // allocates nothing but the terms).
        let list = |items: &mut dyn DoubleEndedIterator<Item = RawTerm>| {
            // SAFETY: env is the live env of this NIF call.
            let nil = unsafe { ffi::empty_list(raw_env) };
            items.rev().fold(nil, |tail, head| {
                // SAFETY: env is live; head and tail are terms of env.
                unsafe { ffi::list_cell(raw_env, head, tail) }
            })
        };
        // The messages were built in `env` during this NIF call (Effects
        // of a Process delivery never leave the call).
        let messages = list(&mut self.messages().copied());
        let logs = list(&mut self.logs().iter().map(|l| l.encode(env).as_c_arg()));
        let actions = list(&mut self.actions().iter().map(|a| a.encode(env).as_c_arg()));
        let elements = [
            atoms::edc().encode(env).as_c_arg(),
            value.as_c_arg(),
            messages,
            logs,
            actions,
        ];
        // SAFETY: env is live and every element is a term of env.
        let tuple = unsafe { ffi::tuple(raw_env, &elements) };
        // SAFETY: the tuple was made in env.
        unsafe { Term::new(env, tuple) }
    }

    /// Carries the effects out without an Erlang wrapper: reports to
    /// standard error (as [`LogEntry::line`]), each action sent to its port process as
    /// `{'$edc_actions', [Action]}`. `caller_env` is the env of the running
    /// callback, or NULL on an unmanaged thread. (Messages were sent as
    /// they were emitted: a detached context never records any.)
    ///
    /// # Safety
    /// `caller_env` is the env of the running NIF call or callback on this
    /// thread, or NULL on a thread the VM does not manage.
    pub unsafe fn dispatch_detached(self, caller_env: RawEnv) {
        let Some(rest) = self.rest else {
            return;
        };
        for entry in &rest.logs {
            log_detached(&entry.line());
        }
        for action in rest.actions {
            let Some(&to) = action.port() else {
                continue;
            };
            let owned = OwnedEnv::new();
            owned.run(|env| {
                let msg = (atoms::edc_actions(), vec![action.encode(env)]).encode(env);
                // SAFETY: the message belongs to `owned`, handed over with
                // it; caller_env is the running callback's env or NULL (the
                // function's contract).
                unsafe { ffi::send(caller_env, to.as_c_arg(), env.as_c_arg(), msg.as_c_arg()) };
            });
        }
    }
}

/// Reports API misuse where no port can be failed and no Erlang process
/// logs for us: to the VM's standard error.
pub fn log_detached(line: &str) {
    eprintln!("erl_driver_compat: {line}");
}
