//! The table that binds a driver's imports: API name → ABI variant → our
//! function.
//!
//! The loader looks every `erl_driver` import of a driver up here, with the
//! [`AbiVariant`] the driver's declared interface version calls for, once
//! `driver_init` has returned the entry that declares that version (see
//! `loader` and `driver`). Interface 2.0 changed many `int` lengths to
//! `ErlDrvSizeT` (spec/ABI_VERSIONS.md §3), so a pre-2.0 driver (interface
//! 1.x, or no extended marker) gets the `int`-typed entry points of
//! [`api::legacy`] for those functions (the `int` part of the table) and
//! the shared ones for every other function.

use crate::api;

/// Which calling convention of the API a driver was compiled against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiVariant {
    /// Interface 2.0 and later: `ErlDrvSizeT` lengths (R15B+).
    SizeT,
    /// Interface 1.5 and earlier: `int` lengths (seed-era drivers).
    Int,
}

impl AbiVariant {
    /// The variant for a driver declaring interface `major`.`minor`.
    pub fn for_version(major: i32, _minor: i32) -> AbiVariant {
        if major >= 2 {
            AbiVariant::SizeT
        } else {
            AbiVariant::Int
        }
    }
}

/// Every function name any version of `erl_driver.h` declared. An import
/// of one of these must be bound to us (or the driver refused); an unknown
/// import is left to the dynamic linker (libc and other libraries).
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
    (
        size_t { $($name:literal => $f:path),* $(,)? }
        int { $($iname:literal => $if:path),* $(,)? }
    ) => {
        /// Our implementation of the API function `name` for drivers of
        /// `variant`, if we have one.
        pub fn lookup(name: &str, variant: AbiVariant) -> Option<*const ()> {
            match variant {
                AbiVariant::SizeT => match name {
                    $($name => Some($f as *const ()),)*
                    _ => None,
                },
                // The functions whose C signature changed in 2.0 have
                // their own entry points; every other one is shared.
                AbiVariant::Int => match name {
                    $($iname => Some($if as *const ()),)*
                    _ => lookup(name, AbiVariant::SizeT),
                },
            }
        }

        /// Names of the API functions we implement for 2.0+ drivers.
        pub const IMPLEMENTED: &[&str] = &[$($name),*];

        /// Names of the functions with an `int`-ABI entry point of their own.
        #[cfg(test)]
        const INT_SPECIFIC: &[&str] = &[$($iname),*];
    };
}

api_table! {
    size_t {
        "driver_output" => api::output::driver_output,
        "driver_output2" => api::output::driver_output2,
        "driver_output_binary" => api::output::driver_output_binary,
        "driver_outputv" => api::output::driver_outputv,
        "driver_vec_to_buf" => api::output::driver_vec_to_buf,
        "driver_alloc_binary" => api::binary::driver_alloc_binary,
        "driver_realloc_binary" => api::binary::driver_realloc_binary,
        "driver_free_binary" => api::binary::driver_free_binary,
        "driver_binary_get_refc" => api::binary::driver_binary_get_refc,
        "driver_binary_inc_refc" => api::binary::driver_binary_inc_refc,
        "driver_binary_dec_refc" => api::binary::driver_binary_dec_refc,
        "driver_alloc" => api::memory::driver_alloc,
        "driver_realloc" => api::memory::driver_realloc,
        "driver_free" => api::memory::driver_free,
        "driver_failure" => api::failure::driver_failure,
        "driver_failure_atom" => api::failure::driver_failure_atom,
        "driver_failure_posix" => api::failure::driver_failure_posix,
        "driver_failure_eof" => api::failure::driver_failure_eof,
        "driver_exit" => api::failure::driver_exit,
        "set_port_control_flags" => api::port::set_port_control_flags,
        "get_port_flags" => api::port::get_port_flags,
        "driver_mk_atom" => api::port::driver_mk_atom,
        "driver_mk_port" => api::port::driver_mk_port,
        "driver_connected" => api::port::driver_connected,
        "driver_caller" => api::port::driver_caller,
        "driver_mk_term_nil" => api::port::driver_mk_term_nil,
        "driver_lock_driver" => api::port::driver_lock_driver,
        "set_busy_port" => api::port::set_busy_port,
        "erl_drv_busy_msgq_limits" => api::port::erl_drv_busy_msgq_limits,
        "driver_create_port" => api::port::driver_create_port,
        "driver_system_info" => api::system::driver_system_info,
        "erl_errno_id" => api::system::erl_errno_id,
        "erl_drv_getenv" => api::system::erl_drv_getenv,
        "erl_drv_putenv" => api::system::erl_drv_putenv,
        "erl_drv_consume_timeslice" => api::system::erl_drv_consume_timeslice,
        "null_func" => api::system::null_func,
        "driver_set_timer" => api::timer::driver_set_timer,
        "driver_cancel_timer" => api::timer::driver_cancel_timer,
        "driver_read_timer" => api::timer::driver_read_timer,
        "driver_get_now" => api::timer::driver_get_now,
        "erl_drv_monotonic_time" => api::timer::erl_drv_monotonic_time,
        "erl_drv_time_offset" => api::timer::erl_drv_time_offset,
        "erl_drv_convert_time_unit" => api::timer::erl_drv_convert_time_unit,
        "driver_output_term" => api::term::driver_output_term,
        "driver_send_term" => api::term::driver_send_term,
        "erl_drv_output_term" => api::term::erl_drv_output_term,
        "erl_drv_send_term" => api::term::erl_drv_send_term,
        "erl_drv_thread_create" => api::thread::erl_drv_thread_create,
        "erl_drv_thread_self" => api::thread::erl_drv_thread_self,
        "erl_drv_equal_tids" => api::thread::erl_drv_equal_tids,
        "erl_drv_thread_name" => api::thread::erl_drv_thread_name,
        "erl_drv_thread_join" => api::thread::erl_drv_thread_join,
        "erl_drv_thread_exit" => api::thread::erl_drv_thread_exit,
        "erl_drv_thread_opts_create" => api::thread::erl_drv_thread_opts_create,
        "erl_drv_thread_opts_destroy" => api::thread::erl_drv_thread_opts_destroy,
        "erl_drv_mutex_create" => api::sync::erl_drv_mutex_create,
        "erl_drv_mutex_destroy" => api::sync::erl_drv_mutex_destroy,
        "erl_drv_mutex_lock" => api::sync::erl_drv_mutex_lock,
        "erl_drv_mutex_trylock" => api::sync::erl_drv_mutex_trylock,
        "erl_drv_mutex_unlock" => api::sync::erl_drv_mutex_unlock,
        "erl_drv_mutex_name" => api::sync::erl_drv_mutex_name,
        "erl_drv_cond_create" => api::sync::erl_drv_cond_create,
        "erl_drv_cond_destroy" => api::sync::erl_drv_cond_destroy,
        "erl_drv_cond_signal" => api::sync::erl_drv_cond_signal,
        "erl_drv_cond_broadcast" => api::sync::erl_drv_cond_broadcast,
        "erl_drv_cond_wait" => api::sync::erl_drv_cond_wait,
        "erl_drv_cond_name" => api::sync::erl_drv_cond_name,
        "erl_drv_rwlock_create" => api::sync::erl_drv_rwlock_create,
        "erl_drv_rwlock_destroy" => api::sync::erl_drv_rwlock_destroy,
        "erl_drv_rwlock_rlock" => api::sync::erl_drv_rwlock_rlock,
        "erl_drv_rwlock_runlock" => api::sync::erl_drv_rwlock_runlock,
        "erl_drv_rwlock_rwlock" => api::sync::erl_drv_rwlock_rwlock,
        "erl_drv_rwlock_rwunlock" => api::sync::erl_drv_rwlock_rwunlock,
        "erl_drv_rwlock_tryrlock" => api::sync::erl_drv_rwlock_tryrlock,
        "erl_drv_rwlock_tryrwlock" => api::sync::erl_drv_rwlock_tryrwlock,
        "erl_drv_rwlock_name" => api::sync::erl_drv_rwlock_name,
        "erl_drv_tsd_key_create" => api::sync::erl_drv_tsd_key_create,
        "erl_drv_tsd_key_destroy" => api::sync::erl_drv_tsd_key_destroy,
        "erl_drv_tsd_set" => api::sync::erl_drv_tsd_set,
        "erl_drv_tsd_get" => api::sync::erl_drv_tsd_get,
        "driver_async" => api::async_job::driver_async,
        "driver_async_port_key" => api::async_job::driver_async_port_key,
        "driver_async_cancel" => api::async_job::driver_async_cancel,
        "driver_select" => api::select::driver_select,
        "driver_enq" => api::queue::driver_enq,
        "driver_pushq" => api::queue::driver_pushq,
        "driver_deq" => api::queue::driver_deq,
        "driver_sizeq" => api::queue::driver_sizeq,
        "driver_enq_bin" => api::queue::driver_enq_bin,
        "driver_pushq_bin" => api::queue::driver_pushq_bin,
        "driver_enqv" => api::queue::driver_enqv,
        "driver_pushqv" => api::queue::driver_pushqv,
        "driver_peekq" => api::queue::driver_peekq,
        "driver_peekqv" => api::queue::driver_peekqv,
        "driver_pdl_create" => api::queue::driver_pdl_create,
        "driver_pdl_lock" => api::queue::driver_pdl_lock,
        "driver_pdl_unlock" => api::queue::driver_pdl_unlock,
        "driver_pdl_get_refc" => api::queue::driver_pdl_get_refc,
        "driver_pdl_inc_refc" => api::queue::driver_pdl_inc_refc,
        "driver_pdl_dec_refc" => api::queue::driver_pdl_dec_refc,
        "driver_monitor_process" => api::monitor::driver_monitor_process,
        "driver_demonitor_process" => api::monitor::driver_demonitor_process,
        "driver_get_monitored_process" => api::monitor::driver_get_monitored_process,
        "driver_compare_monitors" => api::monitor::driver_compare_monitors,
    }
    int {
        "driver_output" => api::legacy::driver_output,
        "driver_output2" => api::legacy::driver_output2,
        "driver_output_binary" => api::legacy::driver_output_binary,
        "driver_outputv" => api::legacy::driver_outputv,
        "driver_vec_to_buf" => api::legacy::driver_vec_to_buf,
        "driver_alloc_binary" => api::legacy::driver_alloc_binary,
        "driver_realloc_binary" => api::legacy::driver_realloc_binary,
        "driver_enq" => api::legacy::driver_enq,
        "driver_pushq" => api::legacy::driver_pushq,
        "driver_enq_bin" => api::legacy::driver_enq_bin,
        "driver_pushq_bin" => api::legacy::driver_pushq_bin,
        "driver_enqv" => api::legacy::driver_enqv,
        "driver_pushqv" => api::legacy::driver_pushqv,
        "driver_deq" => api::legacy::driver_deq,
        "driver_sizeq" => api::legacy::driver_sizeq,
        "driver_peekqv" => api::legacy::driver_peekqv,
    }
}

/// The API functions whose C signature differs between interface 1.5 and
/// 2.0 (spec/ABI_VERSIONS.md §3: `int` → `ErlDrvSizeT` lengths and results,
/// the `ErlIOVec` layout). `driver_alloc`/`driver_realloc` went from
/// `size_t` to `ErlDrvSizeT`, the same type, and are shared.
#[cfg(test)]
const CHANGED_IN_2_0: &[&str] = &[
    "driver_alloc_binary",
    "driver_deq",
    "driver_enq",
    "driver_enq_bin",
    "driver_enqv",
    "driver_output",
    "driver_output2",
    "driver_output_binary",
    "driver_outputv",
    "driver_peekqv",
    "driver_pushq",
    "driver_pushq_bin",
    "driver_pushqv",
    "driver_realloc_binary",
    "driver_sizeq",
    "driver_vec_to_buf",
];

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
            assert!(lookup(name, AbiVariant::SizeT).is_some());
        }
        assert!(lookup("driver_attach", AbiVariant::SizeT).is_none());
        assert!(!is_api_name("malloc"));
    }

    #[test]
    fn int_variant_binds_the_changed_functions_to_int_shims() {
        assert_eq!(AbiVariant::for_version(0, 0), AbiVariant::Int);
        assert_eq!(AbiVariant::for_version(1, 5), AbiVariant::Int);
        assert_eq!(AbiVariant::for_version(2, 0), AbiVariant::SizeT);
        assert_eq!(AbiVariant::for_version(3, 3), AbiVariant::SizeT);
        let mut specific = INT_SPECIFIC.to_vec();
        specific.sort();
        assert_eq!(specific, CHANGED_IN_2_0);
        for name in IMPLEMENTED {
            let int = lookup(name, AbiVariant::Int).expect(name);
            let size_t = lookup(name, AbiVariant::SizeT).expect(name);
            assert_eq!(int == size_t, !CHANGED_IN_2_0.contains(name), "{name}");
        }
        assert!(lookup("driver_attach", AbiVariant::Int).is_none());
    }
}
