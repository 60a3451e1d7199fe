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
        let name = unsafe { CStr::from_ptr(string) }.to_bytes();
        crate::atoms::DRIVER_ATOMS.get(name, make_atom)
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

/// `void set_busy_port(ErlDrvPort port, int on)`: while the port is busy,
/// `port_command` waits (returns `false` with `nosuspend`; `force` passes
/// with `ERL_DRV_FLAG_SOFT_BUSY`) and command messages wait in the port
/// process. Clearing it lets the waiting commands run, in the native
/// order (the port process does that on the `unbusy` action).
pub(crate) extern "C" fn set_busy_port(port: DrvPort, on: c_int) {
    guard((), || {
        with_port(port, "set_busy_port", |ctx, p, st| {
            let was = st.set_busy(on != 0);
            if was && on == 0 {
                ctx.act(crate::effects::Action::Unbusy { port: p.pid });
            }
        });
    })
}

/// `ERL_DRV_BUSY_MSGQ_DISABLED`.
const MSGQ_DISABLED: usize = usize::MAX;
/// `ERL_DRV_BUSY_MSGQ_READ_ONLY`.
const MSGQ_READ_ONLY: usize = 0;

/// The limits after a request of `erl_drv_busy_msgq_limits` (`low`,
/// `high`: a value, `READ_ONLY` or `DISABLED`) on a port whose limits are
/// `current`: `(new limits, what the driver reads back)`. As OTP 25: a
/// disabled queue stays disabled and reads `DISABLED` for both; a request
/// with `DISABLED` disables it and reads back the request; a low limit
/// above the high one raises the high one, a high one below the low one
/// lowers the low one.
pub fn msgq_request(
    current: Option<(usize, usize)>,
    low: usize,
    high: usize,
) -> (Option<(usize, usize)>, (usize, usize)) {
    let Some((mut cur_low, mut cur_high)) = current else {
        return (None, (MSGQ_DISABLED, MSGQ_DISABLED));
    };
    if low == MSGQ_DISABLED || high == MSGQ_DISABLED {
        return (None, (low, high));
    }
    let mut low = low;
    if low == MSGQ_READ_ONLY {
        low = cur_low;
    } else {
        if cur_high < low {
            cur_high = low;
        }
        cur_low = low;
    }
    let high = if high == MSGQ_READ_ONLY {
        cur_high
    } else {
        if low > high {
            low = high;
            cur_low = low;
        }
        cur_high = high;
        high
    };
    (Some((cur_low, cur_high)), (low, high))
}

/// `void erl_drv_busy_msgq_limits(ErlDrvPort port, ErlDrvSizeT *low,
/// ErlDrvSizeT *high)`: reads and sets the limits of the port's message
/// queue (see [`msgq_request`]). Commands run synchronously here, so the
/// queue never holds command data and the limits never make the port
/// busy; they are kept and reported as natively. `ERL_DRV_FLAG_NO_BUSY_MSGQ`
/// drivers read `DISABLED`.
pub(crate) extern "C" fn erl_drv_busy_msgq_limits(
    port: DrvPort,
    low: *mut usize,
    high: *mut usize,
) {
    guard((), || {
        // SAFETY: the driver passes NULL or pointers to ErlDrvSizeT.
        let want_low = if low.is_null() { 0 } else { unsafe { *low } };
        // SAFETY: as above.
        let want_high = if high.is_null() { 0 } else { unsafe { *high } };
        let read = with_port(port, "erl_drv_busy_msgq_limits", |_ctx, p, st| {
            if p.driver.flags & abi::FLAG_NO_BUSY_MSGQ != 0 {
                return (MSGQ_DISABLED, MSGQ_DISABLED);
            }
            let (limits, read) = msgq_request(st.msgq_limits(), want_low, want_high);
            st.set_msgq_limits(limits);
            read
        })
        .unwrap_or((MSGQ_DISABLED, MSGQ_DISABLED));
        if !low.is_null() {
            // SAFETY: checked non-NULL; the driver's ErlDrvSizeT.
            unsafe { *low = read.0 };
        }
        if !high.is_null() {
            // SAFETY: as above.
            unsafe { *high = read.1 };
        }
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

#[cfg(test)]
mod busy_tests {
    use super::*;

    #[test]
    fn msgq_requests_as_otp() {
        let d = MSGQ_DISABLED;
        let start = Some((4096, 8192));
        assert_eq!(msgq_request(start, 0, 0), (start, (4096, 8192)));
        assert_eq!(msgq_request(start, 10, 20), (Some((10, 20)), (10, 20)));
        assert_eq!(
            msgq_request(Some((10, 20)), 30, 0),
            (Some((30, 30)), (30, 30))
        );
        assert_eq!(msgq_request(Some((30, 30)), 0, 5), (Some((5, 5)), (5, 5)));
        assert_eq!(msgq_request(start, 50, 40), (Some((40, 40)), (40, 40)));
        assert_eq!(msgq_request(start, d, 10), (None, (d, 10)));
        assert_eq!(msgq_request(start, 7, d), (None, (7, d)));
        assert_eq!(msgq_request(None, 7, 9), (None, (d, d)));
    }
}
