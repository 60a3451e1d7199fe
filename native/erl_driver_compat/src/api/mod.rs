//! The `extern "C"` functions a driver calls, one module per group of the
//! manual (the loader binds a driver's imports to them through
//! [`crate::binding`]).
//!
//! Every function here catches panics ([`guard`]) and returns its
//! documented error value instead of unwinding into C. Functions that take
//! an `ErlDrvPort` resolve it with [`with_port`]: inside the port's own
//! callback this is a thread-local read; a handle that is not a live port is
//! reported and fails the calling port instead of crashing the VM.

pub mod binary;
pub mod failure;
pub mod memory;
pub mod output;
pub mod port;
pub mod system;

use crate::abi::DrvPort;
use crate::context::{self, CallbackCtx};
use crate::port::{ExitReason, Port, PortState};

/// Runs `f`, turning a panic into `default`.
pub fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(default)
}

/// Resolves `handle` for the API function `func` and runs `f` with the
/// port, its state and the callback context. Returns `None` (after logging
/// and failing the calling port) when the handle is not usable here.
pub fn with_port<R>(
    handle: DrvPort,
    func: &'static str,
    f: impl FnOnce(&Port, &mut PortState, &mut CallbackCtx) -> R,
) -> Option<R> {
    let outcome = context::with_current(|ctx| -> Option<R> {
        if std::ptr::eq(ctx.port, handle as *const Port) {
            // SAFETY: ctx.port is the port whose lock the running callback
            // holds; the pointer is valid for the callback's duration.
            let port = unsafe { &*ctx.port };
            // SAFETY: its lock is held by this thread (see above).
            let st = unsafe { port.state() };
            // A port the driver terminated earlier in this callback
            // (driver_failure, ...) accepts nothing more, as natively.
            return Port::is_open(st).then(|| f(port, st, ctx));
        }
        // Another port of the same driver under a shared driver lock.
        // SAFETY: ctx.port is valid during the callback.
        let current = unsafe { &*ctx.port };
        if let Some(other) = crate::port::lookup_handle(handle) {
            if other.shares_lock_with(current) {
                // SAFETY: the shared lock is held by this thread.
                let st = unsafe { other.state() };
                return Port::is_open(st).then(|| f(&other, st, ctx));
            }
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
                outside_callback(func);
            } else {
                context::log_detached(&format!(
                    "{func} called with an unknown port handle {handle:p} outside any driver callback; ignored"
                ));
            }
            None
        }
    }
}

fn outside_callback(func: &'static str) {
    context::log_detached(&format!(
        "{func} called outside the port's driver callbacks (from another thread?); \
         this function is not thread-safe in the erl_driver API; ignored"
    ));
}

/// Reports a driver's misuse of the API and fails the calling port with
/// `{driver_api_misuse, Func}`.
pub fn misuse(ctx: &mut CallbackCtx, func: &'static str, what: &str) {
    // SAFETY: ctx.port is valid during the callback.
    let port = unsafe { &*ctx.port };
    ctx.log(format!(
        "driver {} (port {}): {func} called with {what}; the port is terminated",
        port.driver.name, port.number
    ));
    port.terminate(ctx, ExitReason::Misuse(func), None);
}

/// The atom name for an errno value, as `erl_errno_id` gives it.
pub fn errno_atom(errno: i32) -> String {
    system::errno_name(errno).to_owned()
}
