//! Port attributes and the term values that name things
//! (`driver_mk_atom`, `driver_mk_port`, `driver_connected`, ...).

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

use parking_lot::Mutex;
use rustler::OwnedEnv;

use super::{guard, with_port};
use crate::abi::{self, DrvPort, TermData};
use crate::context;
use crate::terms::pid_term;

/// `void set_port_control_flags(ErlDrvPort port, int flags)`
pub(crate) extern "C" fn set_port_control_flags(port: DrvPort, flags: c_int) {
    guard((), || {
        with_port(port, "set_port_control_flags", |_ctx, _p, st| {
            st.set_control_flags(flags);
        });
    })
}

/// `int get_port_flags(ErlDrvPort port)`: `PORT_FLAG_BINARY` in binary mode.
pub(crate) extern "C" fn get_port_flags(port: DrvPort) -> c_int {
    guard(0, || {
        with_port(port, "get_port_flags", |_ctx, _p, st| {
            let mut flags = 0;
            let options = st.options();
            if options.binary {
                flags |= abi::PORT_FLAG_BINARY;
            }
            if options.line > 0 {
                flags |= abi::PORT_FLAG_LINE;
            }
            flags
        })
        .unwrap_or(0)
    })
}

/// An env for making atoms outside a callback (atoms are global, the env
/// only serves the call).
fn atom_env() -> &'static Mutex<OwnedEnv> {
    static ENV: OnceLock<Mutex<OwnedEnv>> = OnceLock::new();
    ENV.get_or_init(|| Mutex::new(OwnedEnv::new()))
}

/// Makes the atom `name`; atoms are valid in every env.
pub fn make_atom(name: &[u8]) -> TermData {
    let in_ctx = context::with_current(|ctx| {
        ctx.env()
            .and_then(|env| rustler::Atom::from_bytes(env, name).ok())
            .map(|a| crate::terms::to_raw(a.as_c_arg()))
    })
    .flatten();
    in_ctx.unwrap_or_else(|| {
        let env = atom_env().lock();
        env.run(|env| {
            rustler::Atom::from_bytes(env, name)
                .map(|a| crate::terms::to_raw(a.as_c_arg()))
                .unwrap_or(0)
        })
    })
}

/// `ErlDrvTermData driver_mk_atom(char *string)`
pub(crate) extern "C" fn driver_mk_atom(string: *mut c_char) -> TermData {
    guard(0, || {
        if string.is_null() {
            return 0;
        }
        // SAFETY: the driver passes a NUL-terminated string.
        make_atom(unsafe { CStr::from_ptr(string) }.to_bytes())
    })
}

/// `ErlDrvTermData driver_mk_port(ErlDrvPort port)`: the port's identity
/// (its process).
pub(crate) extern "C" fn driver_mk_port(port: DrvPort) -> TermData {
    guard(0, || {
        with_port(port, "driver_mk_port", |_ctx, p, _st| p.pid_term).unwrap_or(0)
    })
}

/// `ErlDrvTermData driver_connected(ErlDrvPort port)`
pub(crate) extern "C" fn driver_connected(port: DrvPort) -> TermData {
    guard(0, || {
        with_port(port, "driver_connected", |_ctx, _p, st| {
            pid_term(&st.connected())
        })
        .unwrap_or(0)
    })
}

/// `ErlDrvTermData driver_caller(ErlDrvPort port)`: the process that made
/// the current call into the driver.
pub(crate) extern "C" fn driver_caller(port: DrvPort) -> TermData {
    guard(0, || {
        with_port(port, "driver_caller", |ctx, _p, st| {
            pid_term(&ctx.caller().unwrap_or_else(|| st.connected()))
        })
        .unwrap_or(0)
    })
}

/// `ErlDrvTermData driver_mk_term_nil(void)`: `[]`.
pub(crate) extern "C" fn driver_mk_term_nil() -> TermData {
    guard(0, || {
        let env = atom_env().lock();
        env.run(|env| {
            use rustler::Encoder;
            let nil: Vec<i32> = Vec::new();
            crate::terms::to_raw(nil.encode(env).as_c_arg())
        })
    })
}

/// `int driver_lock_driver(ErlDrvPort port)`: the driver stays loaded for
/// the life of the VM.
pub(crate) extern "C" fn driver_lock_driver(port: DrvPort) -> c_int {
    guard(-1, || {
        with_port(port, "driver_lock_driver", |_ctx, p, _st| {
            p.driver.make_permanent();
            0
        })
        .unwrap_or(-1)
    })
}

/// What `driver_create_port` returns when it cannot create a port: OTP's
/// `ERTS_INVALID_ERL_DRV_PORT`, `(ErlDrvPort) -1`.
const INVALID_PORT: DrvPort = usize::MAX as DrvPort;

/// `ErlDrvPort driver_create_port(ErlDrvPort port, ErlDrvTermData
/// owner_pid, char *name, ErlDrvData drv_data)`: a new port of the
/// driver, connected and linked to `owner_pid`, named `name`, whose
/// callbacks get `drv_data` (`start` is not called). Returns the invalid
/// handle `-1`, as natively, when `owner_pid` is not a live process (a
/// port is not one), the driver is being unloaded, or outside a callback
/// of the creating port; and, unlike natively, when no idle port process
/// is left (see [`crate::port::registry::take_idle`]; logged once per
/// burst, and the pool grows).
pub(crate) extern "C" fn driver_create_port(
    port: DrvPort,
    owner_pid: TermData,
    name: *mut c_char,
    drv_data: abi::DrvData,
) -> DrvPort {
    guard(INVALID_PORT, || {
        with_port(port, "driver_create_port", |ctx, p, _st| {
            if name.is_null() {
                return INVALID_PORT;
            }
            let Some(owner) = live_process(ctx, owner_pid) else {
                return INVALID_PORT;
            };
            let taken = crate::port::registry::take_idle(|pid| match ctx.env() {
                Some(env) => env.is_process_alive(*pid),
                None => true,
            });
            let pid = match taken {
                Ok(pid) => pid,
                Err(first) => {
                    if first {
                        ctx.log(format!(
                            "driver {} (port {}): driver_create_port found no idle port \
                             process (more ports created at once than the pool holds; it \
                             grows); returned -1",
                            p.driver.name, p.number
                        ));
                    }
                    return INVALID_PORT;
                }
            };
            // SAFETY: the driver passes a NUL-terminated name.
            let name = unsafe { CStr::from_ptr(name) }.to_bytes();
            match crate::port::Port::create(ctx, p, pid, owner, name, drv_data) {
                Some(new) => {
                    ctx.act(crate::effects::Action::StartCreated { port: pid, owner });
                    new.handle()
                }
                None => {
                    crate::port::registry::add_idle([pid]);
                    INVALID_PORT
                }
            }
        })
        .unwrap_or(INVALID_PORT)
    })
}

/// The live local process `word` names, not a pseudo-port's (natively a
/// port cannot own a port). Liveness is checked when the callback runs in
/// a NIF call (a detached run has no process env to ask with).
fn live_process(ctx: &context::CallbackCtx, word: TermData) -> Option<rustler::LocalPid> {
    let env_raw = match ctx.delivery() {
        context::Delivery::Process { env, .. } => env,
        context::Delivery::Detached { caller_env } => caller_env,
    };
    if env_raw.is_null() {
        return None;
    }
    // SAFETY: env_raw is the env of the NIF call or callback running this
    // context; any word may be tested.
    let pid = unsafe { crate::ffi::local_pid(env_raw, crate::ffi::from_raw(word)) }?;
    let pid = rustler::LocalPid::from_c_arg(pid);
    if crate::port::lookup(&pid).is_some() {
        return None;
    }
    match ctx.env() {
        Some(env) if !env.is_process_alive(pid) => None,
        _ => Some(pid),
    }
}
