//! NIF entry points: decode arguments, call into `driver`/`port`, encode
//! the result. Nothing else lives here.
//!
//! Results of port operations reach Erlang as the plain value, or, when the
//! driver emitted messages for the caller or misused the API, as
//! `{'$edc', Value, Messages, LogLines}`: the wrapper sends `Messages` to
//! itself with `!` (cheaper than `enif_send`), logs `LogLines`, and then
//! returns `Value` (or raises it when it is `{'$edc_error', Reason}`).

use std::path::PathBuf;

use rustler::{Atom, Binary, Encoder, Env, Error, LocalPid, NifResult, Resource, ResourceArc, Term};

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

    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: rustler::Monitor) {
        // The port process died without closing the port (killed): run
        // `stop` now; its messages go out with enif_send.
        let ran = self.port.run_with(Delivery::Detached, |p, _st| {
            // SAFETY: inside run_with: lock held.
            unsafe { p.state() }.requests.exit = Some(ExitReason::External);
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

fn error_term<'a>(env: Env<'a>, e: &PortError) -> Term<'a> {
    match e {
        PortError::Badarg => atoms::badarg().encode(env),
        PortError::Notsup => atoms::notsup().encode(env),
        PortError::Posix(name) => Atom::from_str(env, name)
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| atoms::badarg().encode(env)),
    }
}

/// Packs an operation's outcome for the Erlang wrapper.
fn finish<'a, T>(
    env: Env<'a>,
    ran: Ran<T>,
    ok: impl FnOnce(T) -> Term<'a>,
) -> NifResult<Term<'a>> {
    let Ran { value, ctx, .. } = ran;
    if ctx.to_caller.is_empty() && ctx.logs.is_empty() {
        return match value {
            Ok(v) => Ok(ok(v)),
            Err(PortError::Badarg) => Err(Error::BadArg),
            Err(e) => Err(Error::Term(Box::new(RaiseTerm(error_term(env, &e).as_c_arg())))),
        };
    }
    let value = match value {
        Ok(v) => ok(v),
        Err(e) => (atoms::edc_error(), error_term(env, &e)).encode(env),
    };
    // SAFETY: the messages were built in this env during this call.
    let msgs: Vec<Term<'a>> = ctx
        .to_caller
        .iter()
        .map(|&m| unsafe { Term::new(env, m) })
        .collect();
    Ok((atoms::edc(), value, msgs, ctx.logs.clone()).encode(env))
}

/// Raises an already-built term.
struct RaiseTerm(rustler::sys::ErlNifTerm);

impl Encoder for RaiseTerm {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        // SAFETY: the term was built in the env of the same NIF call.
        unsafe { Term::new(env, self.0) }
    }
}

// SAFETY: only used within one NIF call on one thread.
unsafe impl Send for RaiseTerm {}
// SAFETY: as above.
unsafe impl Sync for RaiseTerm {}

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
        DriverError::Load(LoadError::NotFound(msg)) => (atoms::enoent(), msg).encode(env),
        DriverError::Load(LoadError::NotElf(msg)) => (atoms::not_elf(), msg).encode(env),
        DriverError::Load(LoadError::NoDriverInit) => atoms::no_driver_init().encode(env),
        DriverError::Load(LoadError::Unsupported(names)) => {
            (atoms::unsupported_functions(), names).encode(env)
        }
        DriverError::Load(LoadError::OpenError(msg)) => (atoms::open_error(), msg).encode(env),
        DriverError::Load(LoadError::Copy(msg)) => (atoms::copy_error(), msg).encode(env),
        DriverError::Load(LoadError::Bind(msg)) => (atoms::bind_error(), msg).encode(env),
        DriverError::NoEntry => atoms::driver_init_returned_null().encode(env),
        DriverError::IncorrectVersion { .. } => atoms::driver_incorrect_version().encode(env),
        DriverError::BadDriverName(found) => (atoms::bad_driver_name(), found).encode(env),
        DriverError::InitFailed(rc) => (atoms::init_failed(), rc).encode(env),
        DriverError::Inconsistent => atoms::inconsistent().encode(env),
        DriverError::NotLoaded => atoms::not_loaded().encode(env),
        DriverError::NotLoadedByThisProcess => atoms::not_loaded_by_this_process().encode(env),
        DriverError::Unloading => atoms::unloading().encode(env),
    };
    (atoms::error(), reason).encode(env)
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
    Ok(match driver::unload(&name, &env.pid()) {
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
            let locking = if d.port_locking {
                atoms::port_level()
            } else {
                atoms::driver()
            };
            let entry = d.entry();
            (
                d.path.to_string_lossy().into_owned(),
                (entry.major_version, entry.minor_version),
                locking,
                d.open_ports(),
            )
                .encode(env)
        }
    })
}

/// `open(PortPid, Owner, DriverName, Command, {Binary, Eof, In, Out})`.
#[rustler::nif]
fn open<'a>(
    env: Env<'a>,
    pid: LocalPid,
    owner: LocalPid,
    driver_name: Term<'a>,
    command: Term<'a>,
    opts: (bool, bool, bool, bool),
) -> NifResult<Term<'a>> {
    let driver_name = name_of(driver_name)?;
    let command = name_of(command)?;
    let Some(driver) = driver::find(&driver_name) else {
        return Ok((atoms::error(), atoms::enoent()).encode(env));
    };
    let options = PortOptions {
        binary: opts.0,
        eof: opts.1,
        input: opts.2,
        output: opts.3,
    };
    let ran = Port::open(env, driver, pid, owner, &command, options);
    let ran = match ran.value {
        Ok(port) => {
            let resource = ResourceArc::new(PortResource { port });
            let _ = resource.monitor(Some(env), &pid);
            Ran {
                value: Ok(resource),
                ctx: ran.ctx,
                terminated: ran.terminated,
            }
        }
        Err(e) => Ran {
            value: Err(e),
            ctx: ran.ctx,
            terminated: ran.terminated,
        },
    };
    // Errors of open_port are returned, not raised: the wrapper must clean
    // up the port process first.
    let Ran { value, ctx, .. } = ran;
    let value = match value {
        Ok(res) => (atoms::ok(), res).encode(env),
        Err(e) => (atoms::error(), error_term(env, &e)).encode(env),
    };
    let msgs: Vec<Term<'a>> = ctx
        .to_caller
        .iter()
        // SAFETY: built in this env during this call.
        .map(|&m| unsafe { Term::new(env, m) })
        .collect();
    Ok((atoms::edc(), value, msgs, ctx.logs.clone()).encode(env))
}

fn do_command<'a>(env: Env<'a>, port: &std::sync::Arc<Port>, data: Term<'a>) -> NifResult<Term<'a>> {
    let ran = port.run(env, |p, st| p.command(st, data));
    finish(env, ran, |()| true.encode(env))
}

#[rustler::nif]
fn command<'a>(env: Env<'a>, port: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    do_command(env, &port, data)
}

#[rustler::nif]
fn control<'a>(env: Env<'a>, port: Term<'a>, op: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let op = decode_op(op)?;
    let bytes = crate::iodata::flatten(data).ok_or(Error::BadArg)?;
    let ran = port.run(env, |p, st| p.control(env, st, op, bytes.as_slice()));
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
    let ran = port.run(env, |p, st| p.call(env, st, op, ext.as_slice()));
    finish(env, ran, |t| t)
}

#[rustler::nif]
fn close<'a>(env: Env<'a>, port: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let ran = port.close(Delivery::Process {
        env: env.as_c_arg(),
        caller: env.pid(),
    });
    finish(env, ran, |()| true.encode(env))
}

#[rustler::nif]
fn connect<'a>(env: Env<'a>, port: Term<'a>, new_owner: LocalPid) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let ran = port.run(env, |p, _st| {
        // SAFETY: inside run: lock held.
        unsafe { p.state() }.connected = new_owner;
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
    let ran = port.run(env, |p, st| {
        Ok((
            p.command.clone(),
            p.number,
            st.connected,
            st.bytes_in,
            st.bytes_out,
            if p.driver.port_locking {
                atoms::port_level()
            } else {
                atoms::driver()
            },
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

/// `{From, {command, Data}}` received by the port process; `From` must be
/// the connected process (otherwise the port exits with `badsig`).
#[rustler::nif]
fn msg_command<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    data: Term<'a>,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |p, st| {
        if st.connected != from {
            st.requests.exit = Some(ExitReason::Atom("badsig".into()));
            return Ok(());
        }
        if p.command(st, data).is_err() {
            st.requests.exit = Some(ExitReason::Atom("badsig".into()));
        }
        Ok(())
    });
    finish(env, ran, |()| atoms::ok().encode(env))
}

/// `{From, close}`: returns `ok` (the port process replies
/// `{Port, closed}`) or exits the port with `badsig`.
#[rustler::nif]
fn msg_close<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |_p, st| {
        if st.connected != from {
            st.requests.exit = Some(ExitReason::Atom("badsig".into()));
            return Ok(false);
        }
        st.requests.exit = Some(ExitReason::External);
        Ok(true)
    });
    finish(env, ran, |closed| closed.encode(env))
}

/// `{From, {connect, New}}`: returns `true` when connected (the port
/// process replies `{Port, connected}` to `From`).
#[rustler::nif]
fn msg_connect<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    new_owner: LocalPid,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |_p, st| {
        if st.connected != from {
            st.requests.exit = Some(ExitReason::Atom("badsig".into()));
            return Ok(false);
        }
        st.connected = new_owner;
        Ok(true)
    });
    finish(env, ran, |connected| connected.encode(env))
}

/// The port process received an exit signal (it traps exits). Returns
/// `exit` when the port terminated (the process must exit with the
/// signal's reason), `ignore` otherwise.
#[rustler::nif]
fn msg_exit<'a>(
    env: Env<'a>,
    res: ResourceArc<PortResource>,
    from: LocalPid,
    normal: bool,
) -> NifResult<Term<'a>> {
    let ran = res.port.run(env, |_p, st| {
        if normal && st.connected != from {
            return Ok(false);
        }
        st.requests.exit = Some(ExitReason::External);
        Ok(true)
    });
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
