//! The `extern "C"` functions a driver calls, one module per group of the
//! manual, and the table the loader binds a driver's imports with.
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
pub mod queue;
pub mod system;

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
/// after `driver_failure` in the same callback is dropped.
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

/// Reports a driver's misuse of the API and fails the calling port with
/// `{driver_api_misuse, Func}`.
pub fn misuse(ctx: &CallbackCtx, func: &'static str, what: &str) {
    let port = ctx.port();
    ctx.log(format!(
        "driver {} (port {}): {func} called with {what}; the port is terminated",
        port.driver.name, port.number
    ));
    terminate(ctx, port, ExitReason::Misuse(func), None);
}

/// Every function name any version of `erl_driver.h` declared. An import
/// of one of these must be bound to us; an unknown import is left to the
/// dynamic linker (libc and other libraries).
const ALL_API_NAMES: &[&str] = &[
    "add_driver_entry",
    "driver_alloc",
    "driver_alloc_binary",
    "driver_async",
    "driver_async_cancel",
    "driver_async_port_key",
    "driver_attach",
    "driver_binary_dec_refc",
    "driver_binary_get_refc",
    "driver_binary_inc_refc",
    "driver_caller",
    "driver_cancel_timer",
    "driver_compare_monitors",
    "driver_connected",
    "driver_create_port",
    "driver_demonitor_process",
    "driver_deq",
    "driver_detach",
    "driver_dl_close",
    "driver_dl_error",
    "driver_dl_open",
    "driver_dl_sym",
    "driver_enq",
    "driver_enq_bin",
    "driver_enqv",
    "driver_event",
    "driver_exit",
    "driver_failure",
    "driver_failure_atom",
    "driver_failure_eof",
    "driver_failure_posix",
    "driver_failure_term",
    "driver_free",
    "driver_free_binary",
    "driver_get_monitored_process",
    "driver_get_now",
    "driver_lock_driver",
    "driver_mk_atom",
    "driver_mk_port",
    "driver_mk_term_nil",
    "driver_monitor_process",
    "driver_output",
    "driver_output2",
    "driver_output_binary",
    "driver_output_term",
    "driver_outputv",
    "driver_pdl_create",
    "driver_pdl_dec_refc",
    "driver_pdl_get_refc",
    "driver_pdl_inc_refc",
    "driver_pdl_lock",
    "driver_pdl_unlock",
    "driver_peekq",
    "driver_peekqv",
    "driver_pushq",
    "driver_pushq_bin",
    "driver_pushqv",
    "driver_read_timer",
    "driver_realloc",
    "driver_realloc_binary",
    "driver_select",
    "driver_send_term",
    "driver_set_timer",
    "driver_sizeq",
    "driver_system_info",
    "driver_term_nil",
    "driver_vec_to_buf",
    "erl_drv_busy_msgq_limits",
    "erl_drv_cond_broadcast",
    "erl_drv_cond_create",
    "erl_drv_cond_destroy",
    "erl_drv_cond_name",
    "erl_drv_cond_signal",
    "erl_drv_cond_wait",
    "erl_drv_consume_timeslice",
    "erl_drv_convert_time_unit",
    "erl_drv_equal_tids",
    "erl_drv_getenv",
    "erl_drv_init_ack",
    "erl_drv_monotonic_time",
    "erl_drv_mutex_create",
    "erl_drv_mutex_destroy",
    "erl_drv_mutex_lock",
    "erl_drv_mutex_name",
    "erl_drv_mutex_trylock",
    "erl_drv_mutex_unlock",
    "erl_drv_output_term",
    "erl_drv_putenv",
    "erl_drv_rwlock_create",
    "erl_drv_rwlock_destroy",
    "erl_drv_rwlock_name",
    "erl_drv_rwlock_rlock",
    "erl_drv_rwlock_runlock",
    "erl_drv_rwlock_rwlock",
    "erl_drv_rwlock_rwunlock",
    "erl_drv_rwlock_tryrlock",
    "erl_drv_rwlock_tryrwlock",
    "erl_drv_send_term",
    "erl_drv_set_os_pid",
    "erl_drv_thread_create",
    "erl_drv_thread_exit",
    "erl_drv_thread_join",
    "erl_drv_thread_name",
    "erl_drv_thread_opts_create",
    "erl_drv_thread_opts_destroy",
    "erl_drv_thread_self",
    "erl_drv_time_offset",
    "erl_drv_tsd_get",
    "erl_drv_tsd_key_create",
    "erl_drv_tsd_key_destroy",
    "erl_drv_tsd_set",
    "erl_errno_id",
    "get_port_flags",
    "null_func",
    "remove_driver_entry",
    "set_busy_port",
    "set_port_control_flags",
];

/// True when `name` is a function of some version of the erl_driver API.
pub fn is_api_name(name: &str) -> bool {
    ALL_API_NAMES.binary_search(&name).is_ok()
}

macro_rules! api_table {
    ($($name:literal => $f:path),* $(,)?) => {
        /// Our implementation of the API function `name`, if we have one.
        pub fn lookup(name: &str) -> Option<*const ()> {
            match name {
                $($name => Some($f as *const ()),)*
                _ => None,
            }
        }

        /// Names of the API functions we implement.
        pub const IMPLEMENTED: &[&str] = &[$($name),*];
    };
}

api_table! {
    "driver_output" => output::driver_output,
    "driver_output2" => output::driver_output2,
    "driver_output_binary" => output::driver_output_binary,
    "driver_outputv" => output::driver_outputv,
    "driver_vec_to_buf" => output::driver_vec_to_buf,
    "driver_alloc_binary" => binary::driver_alloc_binary,
    "driver_realloc_binary" => binary::driver_realloc_binary,
    "driver_free_binary" => binary::driver_free_binary,
    "driver_binary_get_refc" => binary::driver_binary_get_refc,
    "driver_binary_inc_refc" => binary::driver_binary_inc_refc,
    "driver_binary_dec_refc" => binary::driver_binary_dec_refc,
    "driver_alloc" => memory::driver_alloc,
    "driver_realloc" => memory::driver_realloc,
    "driver_free" => memory::driver_free,
    "driver_failure" => failure::driver_failure,
    "driver_failure_atom" => failure::driver_failure_atom,
    "driver_failure_posix" => failure::driver_failure_posix,
    "driver_failure_eof" => failure::driver_failure_eof,
    "driver_exit" => failure::driver_exit,
    "set_port_control_flags" => port::set_port_control_flags,
    "get_port_flags" => port::get_port_flags,
    "driver_mk_atom" => port::driver_mk_atom,
    "driver_mk_port" => port::driver_mk_port,
    "driver_connected" => port::driver_connected,
    "driver_caller" => port::driver_caller,
    "driver_mk_term_nil" => port::driver_mk_term_nil,
    "driver_lock_driver" => port::driver_lock_driver,
    "driver_system_info" => system::driver_system_info,
    "erl_errno_id" => system::erl_errno_id,
    "erl_drv_getenv" => system::erl_drv_getenv,
    "erl_drv_putenv" => system::erl_drv_putenv,
    "erl_drv_consume_timeslice" => system::erl_drv_consume_timeslice,
    "null_func" => system::null_func,
    "driver_enq" => queue::driver_enq,
    "driver_pushq" => queue::driver_pushq,
    "driver_deq" => queue::driver_deq,
    "driver_sizeq" => queue::driver_sizeq,
    "driver_enq_bin" => queue::driver_enq_bin,
    "driver_pushq_bin" => queue::driver_pushq_bin,
    "driver_enqv" => queue::driver_enqv,
    "driver_pushqv" => queue::driver_pushqv,
    "driver_peekq" => queue::driver_peekq,
    "driver_peekqv" => queue::driver_peekqv,
    "driver_pdl_create" => queue::driver_pdl_create,
    "driver_pdl_lock" => queue::driver_pdl_lock,
    "driver_pdl_unlock" => queue::driver_pdl_unlock,
    "driver_pdl_get_refc" => queue::driver_pdl_get_refc,
    "driver_pdl_inc_refc" => queue::driver_pdl_inc_refc,
    "driver_pdl_dec_refc" => queue::driver_pdl_dec_refc,
}

/// The atom name for an errno value, as `erl_errno_id` gives it.
pub fn errno_atom(errno: i32) -> String {
    system::errno_name(errno).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_sorted_for_binary_search() {
        let mut sorted = ALL_API_NAMES.to_vec();
        sorted.sort();
        assert_eq!(sorted, ALL_API_NAMES);
    }

    #[test]
    fn every_implemented_function_is_an_api_name() {
        for name in IMPLEMENTED {
            assert!(is_api_name(name), "{name}");
            assert!(lookup(name).is_some());
        }
        assert!(lookup("driver_async_cancel").is_none());
        assert!(!is_api_name("malloc"));
    }
}
