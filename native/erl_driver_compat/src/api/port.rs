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
