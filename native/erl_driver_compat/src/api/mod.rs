//! The `extern "C"` functions a driver calls, one module per group of the
//! manual (the loader binds a driver's imports to them through
//! [`crate::binding`]).
//!
//! Every function here catches panics ([`guard`]) and returns its
//! documented error value instead of unwinding into C. Functions that take
//! an `ErlDrvPort` resolve it with [`with_port`]: inside the port's own
//! callback this is a thread-local read; a handle that is not a live port is
//! reported and fails the calling port instead of crashing the VM.

pub mod async_job;
pub mod binary;
pub mod failure;
pub mod legacy;
pub mod memory;
pub mod monitor;
pub mod output;
pub mod port;
pub mod queue;
pub mod select;
pub mod sync;
pub mod system;
pub mod term;
pub mod thread;
pub mod timer;

use crate::abi::DrvPort;
use crate::context::{self, CallbackCtx};
use crate::effects::log_detached;
use crate::port::state::{PortState, Status};
use crate::port::{terminate, ExitReason, Port};

/// Runs `f`, turning a panic into `default`.
pub fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(default)
}

/// Resolves `handle` for the API function `func` and runs `f` with the
/// callback context, the port and its state. Returns `None` (after
/// logging, and failing the calling port when the handle is wrong) when
/// the handle is not usable here. A port that is closing (its `stop` is
/// running) is usable; a closed one is not, silently, as natively output
/// after `driver_failure` in the same callback is dropped (also for the
/// stale handle of another port that has closed).
pub fn with_port<R>(
    handle: DrvPort,
    func: &'static str,
    f: impl FnOnce(&CallbackCtx, &Port, &PortState) -> R,
) -> Option<R> {
    let outcome = context::with_current(|ctx| -> Option<R> {
        let usable = |st: &PortState| st.status() != Status::Closed;
        let current = ctx.port();
        if std::ptr::eq(current, handle as *const Port) {
            let st = ctx.state();
            return usable(st).then(|| f(ctx, current, st));
        }
        // Another port of the same driver under a shared driver lock.
        if let Some(other) = crate::port::lookup_handle(handle) {
            if let Some(st) = ctx.state_of(&other) {
                return usable(st).then(|| f(ctx, &other, st));
            }
        }
        // A port that has closed: the function's error return, as natively.
        if crate::port::is_closed_handle(handle) {
            return None;
        }
        misuse(
            ctx,
            func,
            "a port handle that is not open or not locked by this callback",
        );
        None
    });
    match outcome {
        Some(result) => result,
        None => {
            if crate::port::lookup_handle(handle).is_some() {
                log_detached(&format!(
                    "{func} called outside the port's driver callbacks (from another thread?); \
                     this function is not thread-safe in the erl_driver API; ignored"
                ));
            } else {
                log_detached(&format!(
                    "{func} called with an unknown port handle {handle:p} outside any driver callback; ignored"
                ));
            }
            None
        }
    }
}

/// Reports a driver's misuse of the API (a structured log report naming
/// the driver, the port and `func`) and fails the calling port with
/// `{driver_api_misuse, Func}`.
pub fn misuse(ctx: &CallbackCtx, func: &'static str, what: &str) {
    ctx.log_misuse(
        func,
        format!("{func} called with {what}; the port is terminated"),
    );
    terminate(ctx, ctx.port(), ExitReason::Misuse(func), None);
}

/// The atom name for an errno value, as `erl_errno_id` gives it.
pub fn errno_atom(errno: i32) -> String {
    system::errno_name(errno).to_owned()
}
