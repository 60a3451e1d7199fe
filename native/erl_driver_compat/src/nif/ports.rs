//! NIFs behind the port BIFs (`open_port`, `port_command`, ...), called by
//! any process.

use std::mem::MaybeUninit;
use std::sync::Arc;

use rustler::{Binary, Encoder, Env, Error, LocalPid, NifResult, Resource, ResourceArc, Term};

use super::drivers::locking_atom;
use super::{error_atom, finish};
use crate::atoms;
use crate::context::Delivery;
use crate::driver;
use crate::port::registry::LockedPort;
use crate::port::state::PortOptions;
use crate::port::{self, close as close_port, terminate, Closed, ExitReason, Port, PortError, Ran};
use crate::terms;

/// The resource the port process holds: it keeps the port alive and
/// monitors the process so that a killed port process still runs `stop`.
pub struct PortResource {
    pub(super) port: Arc<Port>,
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
        // A port waiting for its queue to empty ends too (natively it would
        // ignore the kill; a process cannot).
        let _ = self.port.inspect(delivery, |ctx| {
            terminate(ctx, ctx.port(), ExitReason::External, None);
            Ok(())
        });
    }
}

fn lookup(pid: Term) -> NifResult<Arc<Port>> {
    let pid: LocalPid = pid.decode().map_err(|_| Error::BadArg)?;
    port::lookup(&pid).ok_or(Error::BadArg)
}

/// The open port whose process is `pid`, locked (the hot path of the port
/// BIFs, see [`port::registry::lock_by_pid`]).
fn lock_by_pid(pid: Term) -> NifResult<LockedPort> {
    // SAFETY: the env of a term passed to a NIF is that call's, live.
    let key = unsafe { crate::ffi::local_pid_key(pid.get_env().as_c_arg(), pid.as_c_arg()) };
    let Some(key) = key else {
        return Err(Error::BadArg);
    };
    port::registry::lock_by_pid(key).ok_or_else(|| Error::BadArg)
}

/// `open(PortPid, Owner, DriverName, Command, {Binary, Eof, Line,
/// Parallelism, MsgqLimits})`, `MsgqLimits` `default`, `disabled` or
/// `{Low, High}` (badarg with an `ERL_DRV_FLAG_NO_BUSY_MSGQ` driver), `Command` a binary of the bytes `start` gets: `{'$edc', {ok, Resource} | {error, Reason}, ...}`
/// (always with effects: the wrapper must start or clean up the port
/// process either way).
#[rustler::nif]
fn open<'a>(
    env: Env<'a>,
    pid: LocalPid,
    owner: LocalPid,
    driver_name: Term<'a>,
    command: Binary<'a>,
    opts: (bool, bool, usize, bool, Term<'a>),
) -> NifResult<Term<'a>> {
    let driver_name = super::name_of(driver_name)?;
    let Some(driver) = driver::find(&driver_name) else {
        return Ok((atoms::error(), atoms::enoent()).encode(env));
    };
    let msgq_atom = opts.4.decode::<rustler::Atom>().ok();
    let msgq_limits = if msgq_atom == Some(atoms::default()) {
        Some(crate::port::state::DEFAULT_MSGQ_LIMITS)
    } else if msgq_atom == Some(atoms::disabled()) {
        None
    } else if driver.flags & crate::abi::FLAG_NO_BUSY_MSGQ != 0 {
        // Natively limits are refused for such a driver; `disabled` is not.
        return Err(Error::BadArg);
    } else {
        let (low, high): (usize, usize) = opts.4.decode()?;
        crate::api::port::msgq_request(Some(crate::port::state::DEFAULT_MSGQ_LIMITS), low, high).0
    };
    let options = PortOptions {
        binary: opts.0,
        eof: opts.1,
        line: opts.2,
        parallelism: opts.3,
        msgq_limits,
    };
    let Ran { value, effects } = Port::open(env, driver, pid, owner, command.as_slice(), options);
    let value = match value {
        Ok(port) => {
            let resource = ResourceArc::new(PortResource { port });
            let _ = resource.monitor(Some(env), &pid);
            (atoms::ok(), resource).encode(env)
        }
        Err(e) => (atoms::error(), error_atom(env, &e)).encode(env),
    };
    Ok(effects.encode(env, value))
}

/// Runs `output`/`outputv` unless the port is busy (and not `force`d):
/// then nothing runs and the result is `'$edc_busy'` (the wrapper waits
/// for its turn, see erl_driver_compat:port_command/2). Busy is checked
/// before the data, as natively (`nosuspend` with bad data on a busy port
/// gives `false`).
fn do_command<'a>(
    env: Env<'a>,
    port: &Arc<Port>,
    data: Term<'a>,
    force: bool,
) -> NifResult<Term<'a>> {
    let ran = port.run(env, |ctx| {
        if !force && ctx.state().busy() {
            return Ok(false);
        }
        Port::command(ctx, data).map(|()| true)
    });
    finish(env, ran, |ran| command_result(env, ran))
}

/// `true` when the command ran, `'$edc_busy'` when the port was busy.
fn command_result(env: Env, ran: bool) -> Term {
    if ran {
        true.encode(env)
    } else {
        atoms::edc_busy().encode(env)
    }
}

/// Registers `$fun(env, term, ...)` as the NIF `$name/$arity` the way
/// `#[rustler::nif]` does (a panic raises `nif_panicked`, an `Err` raises
/// as usual), without the argument vector rustler's wrapper allocates on
/// every call: a malloc and a free on the hot path of `port_command`,
/// `port_control` and `port_call`.
macro_rules! hot_nif {
    ($name:literal, $fun:ident, $arity:literal, $($i:literal),+) => {
        rustler::codegen_runtime::inventory::submit!(rustler::Nif {
            name: concat!($name, "\0").as_ptr() as *const rustler::codegen_runtime::c_char,
            arity: $arity,
            flags: rustler::SchedulerFlags::Normal as rustler::codegen_runtime::c_uint,
            raw_func: {
                unsafe extern "C" fn raw(
                    nif_env: *mut rustler::sys::ErlNifEnv,
                    argc: rustler::codegen_runtime::c_int,
                    argv: *const rustler::sys::ErlNifTerm,
                ) -> rustler::sys::ErlNifTerm {
                    let lifetime = ();
                    // SAFETY: nif_env is the env of this NIF call, live
                    // until it returns, which `env` (tied to `lifetime`)
                    // does not outlive.
                    let env = unsafe { Env::new(&lifetime, nif_env) };
                    // SAFETY: the VM calls a NIF registered with arity
                    // $arity with argv pointing at argc ($arity) terms.
                    let args = unsafe { std::slice::from_raw_parts(argv, argc as usize) };
                    let result = std::panic::catch_unwind(|| {
                        // SAFETY: each argument is a term of this call's env.
                        $fun(env, $(unsafe { Term::new(env, args[$i]) }),+)
                    });
                    if let Ok(Ok(term)) = result {
                        // The common case, without rustler's conversion.
                        return term.as_c_arg();
                    }
                    let returned = rustler::codegen_runtime::handle_nif_result(result, env);
                    // SAFETY: env is this NIF call's env, where `returned`
                    // was made; its term goes back to the VM as the result.
                    unsafe { returned.apply(env) }
                }
                raw
            },
        });
    };
}

hot_nif!("command", command, 2, 0, 1);
hot_nif!("control", control, 3, 0, 1, 2);
hot_nif!("call", call, 3, 0, 1, 2);

fn command<'a>(env: Env<'a>, port: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let found = lock_by_pid(port)?;
    let ran = Port::run_found(found, env, |ctx| {
        if ctx.state().busy() {
            return Ok(false);
        }
        Port::command(ctx, data).map(|()| true)
    });
    finish(env, ran, |ran| command_result(env, ran))
}

/// `port_command/3`: `force` needs `ERL_DRV_FLAG_SOFT_BUSY` (`notsup`).
#[rustler::nif]
fn command3<'a>(env: Env<'a>, port: Term<'a>, data: Term<'a>, force: bool) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    if force && port.driver.flags & crate::abi::FLAG_SOFT_BUSY == 0 {
        return Err(Error::RaiseTerm(Box::new(atoms::notsup())));
    }
    do_command(env, &port, data, force)
}

/// Operation numbers are unsigned 32-bit integers.
fn decode_op(op: Term) -> NifResult<u32> {
    match op.decode::<u32>() {
        Ok(op) => Ok(op),
        Err(_) => Err(Error::BadArg),
    }
}

fn control<'a>(env: Env<'a>, port: Term<'a>, op: Term<'a>, data: Term<'a>) -> NifResult<Term<'a>> {
    let op = decode_op(op)?;
    let flat = crate::iodata::flatten(data).ok_or_else(|| Error::BadArg)?;
    let bytes = flat.as_slice();
    let found = lock_by_pid(port)?;
    let mut default = [0u8; port::CONTROL_BUF];
    let ran = Port::run_closing_found(found, env, |ctx| {
        Port::control(ctx, env, op, bytes, &mut default)
    });
    // The port's lock is released: the reply becomes a term now.
    finish(env, ran, |reply| reply.control_term(env, &default))
}

/// The largest binary argument of `port_call` encoded by [`small_ext`].
const SMALL_EXT_MAX: usize = 4090;

/// `term_to_binary(Arg)` for a binary `Arg` of up to [`SMALL_EXT_MAX`]
/// bytes, written into `buf` (the version byte, `BINARY_EXT`, the length
/// big-endian, the bytes, as the VM encodes it): the common `port_call`
/// argument without the allocation `enif_term_to_binary` makes. `None`
/// for anything else. Only the bytes written are initialised (`buf` is
/// not cleared: that would cost more than the copy for small arguments).
fn small_ext<'b>(
    arg: Term,
    buf: &'b mut [MaybeUninit<u8>; SMALL_EXT_MAX + 6],
) -> Option<&'b mut [u8]> {
    // A bitstring that is not whole bytes is not a binary here.
    // SAFETY: `arg` is an argument of the calling NIF, a term of its env.
    let bin = unsafe { crate::ffi::binary_bytes(arg.get_env().as_c_arg(), arg.as_c_arg()) }?;
    let len = bin.len();
    if len > SMALL_EXT_MAX {
        return None;
    }
    let mut header = [131u8, 109, 0, 0, 0, 0];
    header[2..6].copy_from_slice(&(len as u32).to_be_bytes());
    for (dst, &src) in buf.iter_mut().zip(header.iter()) {
        dst.write(src);
    }
    let (_, rest) = buf.split_at_mut(6);
    // SAFETY: `rest` has SMALL_EXT_MAX >= len writable bytes, the
    // binary's len bytes are readable, and the two do not overlap (one is
    // this function's stack buffer, the other a term's bytes).
    unsafe { std::ptr::copy_nonoverlapping(bin.as_ptr(), rest.as_mut_ptr().cast::<u8>(), len) };
    let init = &mut buf[..6 + len];
    // SAFETY: the first 6 bytes were written by the loop and the next len
    // by the copy above, so the slice is initialised; MaybeUninit<u8> has
    // the layout of u8.
    Some(unsafe { &mut *(init as *mut [MaybeUninit<u8>] as *mut [u8]) })
}

fn call<'a>(env: Env<'a>, port: Term<'a>, op: Term<'a>, arg: Term<'a>) -> NifResult<Term<'a>> {
    let op = decode_op(op)?;
    let mut small = [MaybeUninit::<u8>::uninit(); SMALL_EXT_MAX + 6];
    let owned;
    let ext: &[u8] = match small_ext(arg, &mut small) {
        Some(ext) => ext,
        None => {
            owned = arg.to_binary();
            owned.as_slice()
        }
    };
    let found = lock_by_pid(port)?;
    let mut default = [0u8; port::CALL_BUF];
    let Ran { value, effects } = Port::run_closing_found(found, env, |ctx| {
        Port::call(ctx, env, op, ext, &mut default)
    });
    // The port's lock is released: the reply is decoded now.
    let value = value.and_then(|reply| reply.call_term(env, &default));
    finish(env, Ran { value, effects }, |t| t)
}

/// `port_close/1`: `true`, or `flushing` for a port whose queue is not
/// empty: it stays, closing, until the queue empties (its process is told
/// to signal its links now with `{'$edc_flushing', normal}`), so the
/// caller must not wait for its process to end.
#[rustler::nif]
fn close<'a>(env: Env<'a>, port: Term<'a>) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    let ran = port.run(env, |ctx| {
        let flushing = close_port(ctx, ctx.port(), ExitReason::Normal, false) == Closed::Flushing;
        if flushing {
            ctx.emit(&ctx.port().pid, |env| {
                (atoms::edc_flushing(), atoms::normal()).encode(env)
            });
        }
        Ok(flushing)
    });
    finish(env, ran, |flushing| {
        if flushing {
            atoms::flushing().encode(env)
        } else {
            true.encode(env)
        }
    })
}

#[rustler::nif]
fn connect<'a>(env: Env<'a>, port: Term<'a>, new_owner: LocalPid) -> NifResult<Term<'a>> {
    let port = lookup(port)?;
    if !env.is_process_alive(new_owner) {
        return Err(Error::BadArg);
    }
    let ran = port.run(env, |ctx| {
        ctx.state().set_connected(new_owner);
        Ok(())
    });
    finish(env, ran, |()| true.encode(env))
}

/// `#{name, id, connected, input, output, locking, parallelism,
/// queue_size}` (`name` the command as a binary) or `undefined`.
#[rustler::nif]
fn info<'a>(env: Env<'a>, port: Term<'a>) -> NifResult<Term<'a>> {
    let pid: LocalPid = port.decode().map_err(|_| Error::BadArg)?;
    let Some(port) = port::lookup(&pid) else {
        return Ok(atoms::undefined().encode(env));
    };
    // A closing port (its queue flushing) still answers, and ends if its
    // queue has emptied meanwhile, as natively. The caller takes only the
    // tuple: what the port's end produces goes out directly.
    let delivery = Delivery::Detached {
        caller_env: env.as_c_arg(),
    };
    let ran = port.run_closing_with(delivery, |ctx| {
        let st = ctx.state();
        let (bytes_in, bytes_out) = st.byte_counts();
        let port = ctx.port();
        let pairs = [
            (
                atoms::name().encode(env),
                terms::binary_copy(env, &port.command),
            ),
            (atoms::id().encode(env), port.number.encode(env)),
            (atoms::connected().encode(env), st.connected().encode(env)),
            // port_info's `input` counts what the port delivered to
            // Erlang, `output` what Erlang wrote to the port.
            (atoms::input().encode(env), bytes_out.encode(env)),
            (atoms::output().encode(env), bytes_in.encode(env)),
            (
                atoms::locking().encode(env),
                locking_atom(&port.driver).encode(env),
            ),
            (
                atoms::parallelism().encode(env),
                st.options().parallelism.encode(env),
            ),
            (
                atoms::queue_size().encode(env),
                port.queue.size().encode(env),
            ),
        ];
        Term::map_from_pairs(env, &pairs).map_err(|_| PortError::Badarg)
    });
    match ran.value {
        Ok(info) => Ok(info.encode(env)),
        Err(_) => Ok(atoms::undefined().encode(env)),
    }
}

/// Whether the port is busy (`set_busy_port`); `false` for a closed port
/// or a pid that is not a port. A caller that waited for the port tells
/// its process this right after its command ran.
#[rustler::nif]
fn is_busy(env: Env, port: Term) -> bool {
    let Ok(port) = lookup(port) else {
        return false;
    };
    port.run(env, |ctx| Ok(ctx.state().busy()))
        .value
        .unwrap_or(false)
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
        // SAFETY: pid terms are immediates, valid in every env.
        .map(|p| unsafe { terms::raw(env, p.pid_term) })
        .collect()
}

/// `pool_put(Pids)`: idle port processes for `driver_create_port` (see
/// `erl_driver_compat_port`). Returns `ok`.
#[rustler::nif]
fn pool_put(pids: Vec<LocalPid>) -> rustler::Atom {
    port::registry::add_idle(pids);
    atoms::ok()
}

/// `pool_status()`: `{Idle, Missed}`, the idle processes left and the
/// `driver_create_port` calls that found none since the last call.
#[rustler::nif]
fn pool_status() -> (usize, u64) {
    port::registry::idle_status()
}

/// `adopt_created()`, called by an idle process a callback made a port of
/// with `driver_create_port`: the port's resource (the process then
/// monitors as for `open`), or `undefined` when there is no such port.
#[rustler::nif]
fn adopt_created<'a>(env: Env<'a>) -> Term<'a> {
    let pid = env.pid();
    match port::registry::adopt_created(&pid) {
        Some(port) => {
            let resource = ResourceArc::new(PortResource { port });
            let _ = resource.monitor(Some(env), &pid);
            resource.encode(env)
        }
        None => atoms::undefined().encode(env),
    }
}
