//! "Failure": the driver ends its port with a reason. As natively, the port
//! terminates inside the call (`stop` runs before it returns; later output
//! in the same callback returns -1), and the port process exits with the
//! reason a native port would give.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use super::{guard, with_port};
use crate::abi::DrvPort;
use crate::atoms;
use crate::port::{terminate, ExitReason};

/// Terminates the port now (`stop` runs before this returns, as natively);
/// with `unlink_owner` the connected process is unlinked first and gets no
/// exit signal (`driver_exit`).
fn fail(port: DrvPort, func: &'static str, reason: ExitReason, unlink_owner: bool) -> c_int {
    with_port(port, func, |ctx, p, st| {
        let unlink = unlink_owner.then_some(st.connected());
        terminate(ctx, p, reason, unlink);
        0
    })
    .unwrap_or(-1)
}

/// `int driver_failure(ErlDrvPort port, int error)`: exit reason `error`
/// (an integer).
pub(crate) extern "C" fn driver_failure(port: DrvPort, error: c_int) -> c_int {
    guard(-1, || {
        let reason = if error == 0 {
            ExitReason::Normal
        } else {
            ExitReason::Int(error as i64)
        };
        fail(port, "driver_failure", reason, false)
    })
}

/// `int driver_failure_atom(ErlDrvPort port, char *string)`
pub(crate) extern "C" fn driver_failure_atom(port: DrvPort, string: *mut c_char) -> c_int {
    guard(-1, || {
        let name = if string.is_null() {
            String::new()
        } else {
            // SAFETY: the driver passes a NUL-terminated string.
            unsafe { CStr::from_ptr(string) }
                .to_string_lossy()
                .into_owned()
        };
        fail(port, "driver_failure_atom", ExitReason::Atom(name), false)
    })
}

/// `int driver_failure_posix(ErlDrvPort port, int error)`: exit reason is
/// the errno's atom (`eio`, ...).
pub(crate) extern "C" fn driver_failure_posix(port: DrvPort, error: c_int) -> c_int {
    guard(-1, || {
        let reason = ExitReason::Atom(super::errno_atom(error));
        fail(port, "driver_failure_posix", reason, false)
    })
}

/// `int driver_exit(ErlDrvPort port, int err)`: `normal` for 0, else the
/// errno's atom.
pub(crate) extern "C" fn driver_exit(port: DrvPort, err: c_int) -> c_int {
    guard(-1, || {
        let reason = if err == 0 {
            ExitReason::Normal
        } else {
            ExitReason::Atom(super::errno_atom(err))
        };
        fail(port, "driver_exit", reason, true)
    })
}

/// `int driver_failure_eof(ErlDrvPort port)`: with the `eof` option the
/// connected process gets `{Port, eof}` and the port stays open; otherwise
/// (or when the port's close waits for its queue) the port closes
/// normally.
pub(crate) extern "C" fn driver_failure_eof(port: DrvPort) -> c_int {
    guard(-1, || {
        with_port(port, "driver_failure_eof", |ctx, p, st| {
            super::output::flush_line_buffer(ctx, p, st);
            // A port whose close waits for its queue ends now, also with
            // the `eof' option (natively no {Port, eof} then).
            let flushing = p.queue.pending().is_some();
            if st.options().eof && !flushing {
                let port_pid = p.pid;
                ctx.emit_to_connected(st, |env| {
                    use rustler::Encoder;
                    (port_pid, atoms::eof()).encode(env)
                });
            } else {
                terminate(ctx, p, ExitReason::Normal, None);
            }
            0
        })
        .unwrap_or(-1)
    })
}
