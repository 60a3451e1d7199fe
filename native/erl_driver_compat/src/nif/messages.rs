//! NIFs the port process calls for what reaches a port as a message or a
//! signal: `{From, {command, Data}}`, `{From, close}`, `{From, {connect,
//! New}}`, anything else (`badsig`), exit signals, the VM timers of
//! the port's timer, finished async jobs, the poll set's readiness
//! messages (`driver_select`) and monitored processes that died.

use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use super::finish;
use super::ports::PortResource;
use crate::atoms;
use crate::port::{close, terminate, Closed, ExitReason, Port, Ran};

/// The outcome of a message to a closed port: ignored, as natively.
fn finish_msg<'a>(env: Env<'a>, ran: Ran<Term<'a>>) -> NifResult<Term<'a>> {
    let ran = Ran {
        value: ran.value.or_else(|_| Ok(atoms::ok().encode(env))),
        effects: ran.effects,
    };
    finish(env, ran, |t| t)
}

/// `{From, {command, Data}}` received by the port process. Returns `ok`,
/// `{badsig, Connected}` when `From` is not the connected process, or
/// `{bad_value, Connected}` when `Data` is not iodata: a native port then
/// sends the exit signal `badsig` to its connected process (and stays
/// open).
/// `busy` when the port is busy: nothing ran, the port process keeps the
/// message until the driver clears busy (natively the sender is suspended).
#[rustler::nif]
fn msg_command<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    data: Term<'a>,
) -> NifResult<Term<'a>> {
    let ran = res.port.run_message(env, |ctx| {
        // Natively busy comes first: a command message from a process other
        // than the owner waits as well, and is a bad signal once it runs.
        if ctx.state().busy() {
            return Ok(atoms::busy().encode(env));
        }
        let connected = ctx.state().connected();
        if connected != from {
            return Ok((atoms::badsig(), connected).encode(env));
        }
        // The sender of the message is not known; natively `driver_caller`
        // reports the connected process the message names.
        ctx.set_caller(from);
        match Port::command(ctx, data) {
            Ok(()) => Ok(atoms::ok().encode(env)),
            Err(_) => Ok((atoms::bad_value(), connected).encode(env)),
        }
    });
    finish_msg(env, ran)
}

/// `{From, close}`: closes the port and returns `{closed, Connected}` (the
/// port process then signals and replies), `flushing` when the close waits
/// for the port's queue to empty (the port process signals its links now;
/// `{Port, closed}` goes out when the port ends), or `{badsig, Connected}`.
#[rustler::nif]
fn msg_close<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
) -> NifResult<Term<'a>> {
    let ran = res.port.run_message(env, |ctx| {
        let connected = ctx.state().connected();
        if connected != from {
            return Ok((atoms::badsig(), connected).encode(env));
        }
        match close(ctx, ctx.port(), ExitReason::External, true) {
            Closed::Now => Ok((atoms::closed(), connected).encode(env)),
            Closed::Flushing => Ok(atoms::flushing().encode(env)),
        }
    });
    finish_msg(env, ran)
}

/// `{From, {connect, New}}`: returns `{connected, Old}` (the port process
/// replies `{Port, connected}` to the old owner), or `{badsig, Connected}`.
#[rustler::nif]
fn msg_connect<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    new_owner: LocalPid,
) -> NifResult<Term<'a>> {
    let ran = res.port.run_message(env, |ctx| {
        let st = ctx.state();
        let connected = st.connected();
        if connected != from {
            return Ok((atoms::badsig(), connected).encode(env));
        }
        st.set_connected(new_owner);
        Ok((atoms::connected(), connected).encode(env))
    });
    finish_msg(env, ran)
}

/// A message the port does not understand: `{badsig, Connected}`.
#[rustler::nif]
fn msg_bad<'a>(env: Env<'a>, res: ResourceArc<PortResource>) -> NifResult<Term<'a>> {
    let ran = res.port.run_message(env, |ctx| {
        Ok((atoms::badsig(), ctx.state().connected()).encode(env))
    });
    finish_msg(env, ran)
}

/// The port process received an exit signal (it traps exits). `kind` is
/// `true` for the reason `normal`, `kill` for `kill`, `false` otherwise.
/// `normal` closes the port only when it comes from the connected process
/// or was sent explicitly (`exit(Port, normal)` by a live process); any
/// other reason closes it (`kill` at once, others after the port's queue
/// has emptied). Returns `true` when the port terminated: the process must
/// then exit with the signal's reason; `flushing` when it waits for its
/// queue (the process signals its links now and stays); `false` when the
/// signal is ignored (also by a port that is already closing).
#[rustler::nif]
fn msg_exit<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    kind: Term<'a>,
) -> NifResult<Term<'a>> {
    let kill = kind
        .decode::<rustler::Atom>()
        .is_ok_and(|a| a == atoms::kill());
    let normal = !kill && kind.decode::<bool>().unwrap_or(false);
    let explicit = env.is_process_alive(from);
    let ran = res.port.run_message(env, |ctx| {
        if normal && ctx.state().connected() != from && !explicit {
            return Ok(false.encode(env));
        }
        if kill {
            terminate(ctx, ctx.port(), ExitReason::External, None);
            return Ok(true.encode(env));
        }
        match close(ctx, ctx.port(), ExitReason::External, false) {
            Closed::Now => Ok(true.encode(env)),
            Closed::Flushing => Ok(atoms::flushing().encode(env)),
        }
    });
    let flushing = res.port.queue.is_flushing();
    let ran = Ran {
        value: ran.value.or(Ok((!flushing).encode(env))),
        effects: ran.effects,
    };
    finish(env, ran, |t| t)
}

/// `{timeout, _, {'$edc_timeout', Gen}}`: a VM timer of the port's timer
/// fired. Runs the driver's `timeout` when `Gen` is the port's armed
/// generation and the timer has expired (see [`crate::timer`]); ignored
/// for a closed port. Returns `ok`.
#[rustler::nif]
fn msg_timeout<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    generation: u64,
) -> NifResult<Term<'a>> {
    run_timeout(env, &res.port, generation)
}

/// `timeout_now(PortPid, Gen)`: a driver timer of 0 ms, of generation
/// `Gen`, expires in the calling process, which ran the callback that set
/// it (erl_driver_compat_effects calls this right after that callback's
/// effects). Natively such a timeout is the port's next task, run before
/// the caller's next operation on the port; running it here spares two
/// process switches (to the port process and back). `driver_caller` in
/// `timeout` reports the port's process, as when the port process runs
/// it. Returns `ok`, also for a closed port or a stale generation.
#[rustler::nif]
fn timeout_now<'a>(env: Env<'a>, port: LocalPid, generation: u64) -> NifResult<Term<'a>> {
    let Some(port) = crate::port::lookup(&port) else {
        return Ok(atoms::ok().encode(env));
    };
    run_timeout(env, &port, generation)
}

/// The expiry of `port`'s timer of `generation`, run in the process of
/// `env` (the port's own or, for a 0 ms timer, the caller that set it):
/// `driver_caller` in `timeout` reports the port's process either way.
fn run_timeout<'a>(env: Env<'a>, port: &Port, generation: u64) -> NifResult<Term<'a>> {
    let ran = port.run(env, |ctx| {
        ctx.set_caller(ctx.port().pid);
        crate::timer::on_timeout(ctx, generation);
        Ok(atoms::ok().encode(env))
    });
    finish_msg(env, ran)
}

/// `{'$edc_async', Id}`: the async job `Id` of the port finished. Runs the
/// driver's `ready_async` (or `async_free`) under the port's lock (see
/// [`crate::api::async_job`]); ignored for a closed port, whose close
/// freed the job. Returns `ok`.
#[rustler::nif]
fn msg_async<'a>(env: Env<'a>, res: ResourceArc<PortResource>, id: u32) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |ctx| {
        crate::api::async_job::on_ready(ctx, id);
        Ok(atoms::ok().encode(env))
    });
    finish_msg(env, ran)
}

/// `{select, Obj, Seq, ready_input | ready_output}`: the VM's poll set
/// found a descriptor the driver selected ready (see [`crate::select`]).
/// Runs `ready_input` (`input`) or `ready_output` when `Seq` is still the
/// armed selection, and arms it again while the driver wants it. Returns
/// `ok` (also for a stale selection or a closed port), or `{badsig,
/// Connected}` when `Obj` is not a select object or `Seq` not a 64-bit
/// number (a message that only looks like one).
#[rustler::nif]
fn msg_select<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    obj: Term<'a>,
    seq: Term<'a>,
    input: bool,
) -> NifResult<Term<'a>> {
    // SAFETY: `obj` is an argument of this call, so it belongs to `env`.
    let object = unsafe { crate::select::object_of(env.as_c_arg(), obj.as_c_arg()) };
    let seq = seq.decode::<u64>().ok();
    let ran = res.port.run(env, |ctx| {
        let (Some(object), Some(seq)) = (object, seq) else {
            return Ok((atoms::badsig(), ctx.state().connected()).encode(env));
        };
        crate::select::on_ready(ctx, object, seq, input);
        Ok(atoms::ok().encode(env))
    });
    finish_msg(env, ran)
}

/// `{'$edc_down', Id}`: a process the port monitors (monitor `Id`) died.
/// Runs the driver's `process_exit` under the port's lock unless the
/// monitor was removed meanwhile (see [`crate::monitor`]); ignored for a
/// closed port, whose monitors went with it. Returns `ok`.
#[rustler::nif]
fn msg_down<'a>(env: Env<'a>, res: ResourceArc<PortResource>, id: u64) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |ctx| {
        crate::monitor::on_down(ctx, id);
        Ok(atoms::ok().encode(env))
    });
    finish_msg(env, ran)
}

/// Whether the port is busy (`set_busy_port`): the port process asks
/// before letting a waiting command run. `false` for a closed port (the
/// command then fails as on any closed port).
#[rustler::nif]
fn msg_is_busy(env: Env, res: ResourceArc<PortResource>) -> bool {
    let ran = res.port.run(env, |ctx| Ok(ctx.state().busy()));
    ran.value.unwrap_or(false)
}
