//! NIF entry points: decode arguments, call into `driver`/`port`, encode
//! the result. Nothing else lives here.
//!
//! Results of port operations reach Erlang as the plain value, or, when the
//! driver emitted messages for the caller or misused the API, as
//! `{'$edc', Value, Messages, LogLines}`: the wrapper sends `Messages` to
//! itself with `!` (cheaper than `enif_send`), logs `LogLines`, and then
//! returns `Value` (or raises it when it is `{'$edc_error', Reason}`).

use std::path::PathBuf;

use rustler::{
    Atom, Binary, Encoder, Env, Error, LocalPid, NifResult, Resource, ResourceArc, Term,
};

use crate::atoms;
use crate::context::Delivery;
use crate::driver::{self, DriverError};
use crate::loader::LoadError;
use crate::port::{self, ExitReason, Port, PortError, PortOptions, Ran};
use crate::terms;

/// The resource the port process holds: it keeps the port alive and
/// monitors the process so that a killed port process still runs `stop`.
pub struct PortResource {
    port: std::sync::Arc<Port>,
}

#[rustler::resource_impl]
impl Resource for PortResource {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, env: Env<'a>, _pid: LocalPid, _monitor: rustler::Monitor) {
        // The port process died without closing the port (killed): run
        // `stop` now; its messages go out with enif_send.
        let delivery = Delivery::Detached {
            caller_env: env.as_c_arg(),
        };
        let ran = self.port.run_with(delivery, |p, _st, ctx| {
            p.terminate(ctx, ExitReason::External, None);
            Ok(())
        });
        log_lines(&ran.ctx.logs);
    }
}

fn log_lines(lines: &[String]) {
    for line in lines {
        crate::context::log_detached(line);
    }
}

fn error_atom(env: Env, e: &PortError) -> Atom {
    match e {
        PortError::Badarg => atoms::badarg(),
        PortError::Notsup => atoms::notsup(),
        PortError::BadValue => atoms::bad_value(),
        PortError::Posix(name) => Atom::from_str(env, name).unwrap_or_else(|_| atoms::badarg()),
    }
}

/// Packs an operation's outcome for the Erlang wrapper.
fn finish<'a, T>(env: Env<'a>, ran: Ran<T>, ok: impl FnOnce(T) -> Term<'a>) -> NifResult<Term<'a>> {
    let Ran { value, ctx } = ran;
    if ctx.to_caller.is_empty() && ctx.logs.is_empty() {
        return match value {
            Ok(v) => Ok(ok(v)),
            Err(PortError::Badarg) => Err(Error::BadArg),
            Err(e) => Err(Error::RaiseTerm(Box::new(error_atom(env, &e)))),
        };
    }
    let value = match value {
        Ok(v) => ok(v),
        Err(e) => (atoms::edc_error(), error_atom(env, &e)).encode(env),
    };
    Ok(pack(env, value, &ctx))
}

/// `{'$edc', Value, Messages, LogLines}`.
fn pack<'a>(env: Env<'a>, value: Term<'a>, ctx: &crate::context::CallbackCtx) -> Term<'a> {
    // SAFETY: the messages were built in this env during this call.
    let msgs: Vec<Term<'a>> = ctx
        .to_caller
        .iter()
        .map(|&m| unsafe { Term::new(env, m) })
        .collect();
    (atoms::edc(), value, msgs, &ctx.logs).encode(env)
}

fn lookup(pid: Term) -> NifResult<std::sync::Arc<Port>> {
    let pid: LocalPid = pid.decode().map_err(|_| Error::BadArg)?;
    port::lookup(&pid).ok_or(Error::BadArg)
}

fn name_of(term: Term) -> NifResult<String> {
    if let Ok(s) = term.decode::<String>() {
        return Ok(s);
    }
    if let Ok(a) = term.atom_to_string() {
        return Ok(a);
    }
    let chars: Vec<u32> = term.decode().map_err(|_| Error::BadArg)?;
    chars
        .into_iter()
        .map(|c| char::from_u32(c).ok_or(Error::BadArg))
        .collect()
}

fn driver_error<'a>(env: Env<'a>, e: DriverError) -> Term<'a> {
    let reason = match e {
        DriverError::Load(LoadError::NotFound(msg)) => (atoms::open_error(), msg).encode(env),
        DriverError::Load(LoadError::NotElf(msg)) => (atoms::not_elf(), msg).encode(env),
        DriverError::Load(LoadError::NoDriverInit) => atoms::no_driver_init().encode(env),
        DriverError::Load(LoadError::Unsupported(names)) => {
            (atoms::unsupported_functions(), names).encode(env)
        }
        DriverError::Load(LoadError::OpenError(msg)) => (atoms::open_error(), msg).encode(env),
        DriverError::Load(LoadError::Copy(msg)) => (atoms::copy_error(), msg).encode(env),
        DriverError::Load(LoadError::Bind(msg)) => (atoms::bind_error(), msg).encode(env),
        DriverError::NoEntry | DriverError::InitFailed(_) => {
            atoms::driver_init_failed().encode(env)
        }
        DriverError::IncorrectVersion { .. } => atoms::driver_incorrect_version().encode(env),
        DriverError::BadDriverName(_) | DriverError::Inconsistent => {
            atoms::bad_driver_name().encode(env)
        }
        DriverError::NotLoaded => atoms::not_loaded().encode(env),
        DriverError::NotLoadedByThisProcess => atoms::not_loaded_by_this_process().encode(env),
        DriverError::Unloading => atoms::unloading().encode(env),
    };
    (atoms::error(), reason).encode(env)
}

/// `driver` (driver-level locking) or `port_level`.
fn locking_atom(driver: &driver::Driver) -> Atom {
    if driver.port_locking {
        atoms::port_level()
    } else {
        atoms::driver()
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn load_driver<'a>(env: Env<'a>, dir: Term<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let dir = PathBuf::from(name_of(dir)?);
    let name = name_of(name)?;
    if name.is_empty() || name.contains('/') {
        return Err(Error::BadArg);
    }
    Ok(match driver::load(env, &dir, &name, &env.pid()) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => driver_error(env, e),
    })
}

#[rustler::nif]
fn unload_driver<'a>(env: Env<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let name = name_of(name)?;
    Ok(match driver::unload(env, &name, &env.pid()) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => driver_error(env, e),
    })
}

#[rustler::nif]
fn loaded_drivers() -> Vec<String> {
    driver::loaded()
}

#[rustler::nif]
fn driver_info<'a>(env: Env<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let name = name_of(name)?;
    Ok(match driver::find(&name) {
        None => atoms::undefined().encode(env),
        Some(d) => {
            let entry = d.entry();
            (
                d.path.to_string_lossy().into_owned(),
                (entry.major_version, entry.minor_version),
                locking_atom(&d),
                d.open_ports(),
            )
                .encode(env)
        }
    })
}

/// `open(PortPid, Owner, DriverName, Command, {Binary, Eof, Line})`.
#[rustler::nif]
fn open<'a>(
    env: Env<'a>,
    pid: LocalPid,
    owner: LocalPid,
    driver_name: Term<'a>,
    command: Term<'a>,
    opts: (bool, bool, usize),
) -> NifResult<Term<'a>> {
    let driver_name = name_of(driver_name)?;
    let command = name_of(command)?;
    let Some(driver) = driver::find(&driver_name) else {
        return Ok((atoms::error(), atoms::enoent()).encode(env));
    };
    let options = PortOptions {
        binary: opts.0,
        eof: opts.1,
        line: opts.2,
    };
    let ran = Port::open(env, driver, pid, owner, &command, options);
    // Errors of open_port are returned, not raised: the wrapper must clean
    // up the port process first.
    let Ran { value, ctx } = ran;
    let value = match value {
        Ok(port) => {
            let resource = ResourceArc::new(PortResource { port });
            let _ = resource.monitor(Some(env), &pid);
            (atoms::ok(), resource).encode(env)
        }
        Err(e) => (atoms::error(), error_atom(env, &e)).encode(env),
    };
    Ok(pack(env, value, &ctx))
}

fn do_command<'a>(
    env: Env<'a>,
    port: &std::sync::Arc<Port>,
    data: Term<'a>,
) -> NifResult<Term<'a>> {
    let ran = port.run(env, |p, st, _ctx| p.command(st, data));
    finish(env, ran, |()| true.encode(env))
}

#[rustler::nif]
fn command<'a>(env: Env<'a>, port: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    do_command(env, &port, data)
}

/// `port_command/3`: `force` needs `ERL_DRV_FLAG_SOFT_BUSY` (`notsup`).
#[rustler::nif]
fn command3<'a>(env: Env<'a>, port: Term<'a>, data: Term<'a>, force: bool) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    if force && port.driver.flags & crate::abi::FLAG_SOFT_BUSY == 0 {
        return Err(Error::RaiseTerm(Box::new(atoms::notsup())));
    }
    do_command(env, &port, data)
}

#[rustler::nif]
fn control<'a>(env: Env<'a>, port: Term<'a>, op: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let op = decode_op(op)?;
    let bytes = crate::iodata::flatten(data).ok_or(Error::BadArg)?;
    let ran = port.run(env, |p, st, _ctx| p.control(env, st, op, bytes.as_slice()));
    finish(env, ran, |t| t)
}

/// Operation numbers are unsigned 32-bit integers.
fn decode_op(op: Term) -> NifResult<u32> {
    op.decode::<u32>().map_err(|_| Error::BadArg)
}

#[rustler::nif]
fn call<'a>(env: Env<'a>, port: Term<'a>, op: Term<'a>, arg: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let op = decode_op(op)?;
    let ext = arg.to_binary();
    let ran = port.run(env, |p, st, _ctx| p.call(env, st, op, ext.as_slice()));
    finish(env, ran, |t| t)
}

#[rustler::nif]
fn close<'a>(env: Env<'a>, port: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let ran = port.run(env, |p, _st, ctx| {
        p.terminate(ctx, ExitReason::Normal, None);
        Ok(())
    });
    finish(env, ran, |()| true.encode(env))
}

#[rustler::nif]
fn connect<'a>(env: Env<'a>, port: Term<'a>, new_owner: LocalPid) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    if !env.is_process_alive(new_owner) {
        return Err(Error::BadArg);
    }
    let ran = port.run(env, |_p, st, _ctx| {
        st.connected = new_owner;
        Ok(())
    });
    finish(env, ran, |()| true.encode(env))
}

/// `{Command, Number, Connected, BytesIn, BytesOut, Locking}` or
/// `undefined`.
#[rustler::nif]
fn info<'a>(env: Env<'a>, port: Term<'a>) -> NifResult<Term<'a>> {
    let pid: LocalPid = port.decode().map_err(|_| Error::BadArg)?;
    let Some(port) = port::lookup(&pid) else {
        return Ok(atoms::undefined().encode(env));
    };
    let ran = port.run(env, |p, st, _ctx| {
        Ok((
            p.command.clone(),
            p.number,
            st.connected,
            st.bytes_in,
            st.bytes_out,
            locking_atom(&p.driver),
        ))
    });
    match ran.value {
        Ok(info) => Ok(info.encode(env)),
        Err(_) => Ok(atoms::undefined().encode(env)),
    }
}

#[rustler::nif]
fn is_port(port: Term) -> bool {
    port.decode::<LocalPid>()
        .ok()
        .and_then(|pid| port::lookup(&pid))
        .is_some()
}

#[rustler::nif]
fn ports<'a>(env: Env<'a>) -> Vec<Term<'a>> {
    port::all()
        .iter()
        // SAFETY: pid terms are immediates.
        .map(|p| unsafe { terms::raw(env, p.pid_term) })
        .collect()
}

// ---- called by the port process -------------------------------------

/// The connected process of an open port, or `undefined`.
fn connected_term<'a>(env: Env<'a>, st: &crate::port::PortState) -> Term<'a> {
    st.connected.encode(env)
}

/// `{From, {command, Data}}` received by the port process. Returns `ok`,
/// or `{badsig, Connected}` when `From` is not the connected process or
/// `Data` is not iodata: a native port then sends the exit signal `badsig`
/// to its connected process (and stays open).
#[rustler::nif]
fn msg_command<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    data: Term<'a>,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |p, st, ctx| {
        if st.connected != from {
            return Ok((atoms::badsig(), connected_term(env, st)).encode(env));
        }
        // The sender of the message is not known; it is usually the
        // connected process it names.
        ctx.caller_override = Some(from);
        match p.command(st, data) {
            Ok(()) => Ok(atoms::ok().encode(env)),
            Err(_) => Ok((atoms::bad_value(), connected_term(env, st)).encode(env)),
        }
    });
    finish_msg(env, ran)
}

/// The outcome of a message to a closed port: ignored, as natively.
fn finish_msg<'a>(env: Env<'a>, ran: Ran<Term<'a>>) -> NifResult<Term<'a>> {
    let ran = Ran {
        value: ran.value.or_else(|_| Ok(atoms::ok().encode(env))),
        ctx: ran.ctx,
    };
    finish(env, ran, |t| t)
}

/// `{From, close}`: closes the port and returns `{closed, Connected}` (the
/// port process then signals and replies), or `{badsig, Connected}`.
#[rustler::nif]
fn msg_close<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |p, st, ctx| {
        let connected = connected_term(env, st);
        if st.connected != from {
            return Ok((atoms::badsig(), connected).encode(env));
        }
        p.terminate(ctx, ExitReason::External, None);
        Ok((atoms::closed(), connected).encode(env))
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
    let ran = res.port.run(env, |_p, st, _ctx| {
        let connected = connected_term(env, st);
        if st.connected != from {
            return Ok((atoms::badsig(), connected).encode(env));
        }
        st.connected = new_owner;
        Ok((atoms::connected(), connected).encode(env))
    });
    finish_msg(env, ran)
}

/// A message the port does not understand: `{badsig, Connected}`.
#[rustler::nif]
fn msg_bad<'a>(env: Env<'a>, res: ResourceArc<PortResource>) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |_p, st, _ctx| {
        Ok((atoms::badsig(), connected_term(env, st)).encode(env))
    });
    finish_msg(env, ran)
}

/// The port process received an exit signal (it traps exits). `normal`
/// closes the port only when it comes from the connected process or was
/// sent explicitly (`exit(Port, normal)` by a live process); any other
/// reason closes it. Returns `true` when the port terminated: the process
/// must then exit with the signal's reason.
#[rustler::nif]
fn msg_exit<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    normal: bool,
) -> NifResult<Term<'a>> {
    let explicit = env.is_process_alive(from);
    let ran = res.port.run(env, |p, st, ctx| {
        if normal && st.connected != from && !explicit {
            return Ok(false);
        }
        p.terminate(ctx, ExitReason::External, None);
        Ok(true)
    });
    let ran = Ran {
        value: ran.value.or(Ok(true)),
        ctx: ran.ctx,
    };
    finish(env, ran, |exit| exit.encode(env))
}

/// For tests: the reference count of the driver binary whose data
/// starts at the given binary's data (0 if it is not a driver binary).
#[rustler::nif]
fn binary_refc(bin: Binary) -> isize {
    crate::binary::find_exposed(bin.as_slice().as_ptr(), bin.len())
        .map(|(b, _)| {
            let refc = b.refc() - 1;
            b.release();
            refc
        })
        .unwrap_or(0)
}

/// `check_driver(Path)`: what a driver file imports from the erl_driver
/// API and which of those we lack, without loading it.
#[rustler::nif(schedule = "DirtyIo")]
fn check_driver<'a>(env: Env<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    let path = PathBuf::from(name_of(path)?);
    Ok(match crate::loader::inspect(&path) {
        Ok(report) => (
            atoms::ok(),
            report.api_imports,
            report.unsupported,
            report.has_driver_init,
        )
            .encode(env),
        Err(e) => driver_error(env, DriverError::Load(e)),
    })
}
