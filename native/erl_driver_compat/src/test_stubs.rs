//! Unit-test stand-ins for the `enif_*` functions the BEAM exports.
//!
//! Rust calls external functions through the GOT, so a test executable
//! must resolve every `enif_*` symbol the crate references when it starts,
//! although the unit tests never call them (they need a running VM). These
//! definitions abort if reached. When the crate starts using another
//! `enif_*` function, `cargo test` fails at start-up naming it: add it here.

macro_rules! stand_ins {
    ($($name:ident,)*) => {
        $(
            #[no_mangle]
            extern "C" fn $name() {
                panic!(concat!(stringify!($name), " needs a running BEAM"));
            }
        )*
    };
}

stand_ins! {
    enif_alloc,
    enif_alloc_env,
    enif_alloc_resource,
    enif_binary_to_term,
    enif_compare,
    enif_cond_broadcast,
    enif_cond_create,
    enif_cond_destroy,
    enif_cond_signal,
    enif_cond_wait,
    enif_consume_timeslice,
    enif_demonitor_process,
    enif_free,
    enif_free_env,
    enif_get_atom,
    enif_get_atom_length,
    enif_get_int,
    enif_get_list_cell,
    enif_get_local_pid,
    enif_get_resource,
    enif_get_tuple,
    enif_get_uint,
    enif_get_ulong,
    enif_init_resource_type,
    enif_inspect_binary,
    enif_inspect_iolist_as_binary,
    enif_is_atom,
    enif_is_binary,
    enif_is_empty_list,
    enif_is_exception,
    enif_is_list,
    enif_is_process_alive,
    enif_keep_resource,
    enif_make_atom_len,
    enif_make_badarg,
    enif_make_binary,
    enif_make_copy,
    enif_make_double,
    enif_make_int,
    enif_make_list_cell,
    enif_make_list_from_array,
    enif_make_long,
    enif_make_map_from_arrays,
    enif_make_new_binary,
    enif_make_resource,
    enif_make_resource_binary,
    enif_make_string_len,
    enif_make_tuple_from_array,
    enif_make_ulong,
    enif_monitor_process,
    enif_mutex_create,
    enif_mutex_destroy,
    enif_mutex_lock,
    enif_mutex_trylock,
    enif_mutex_unlock,
    enif_raise_exception,
    enif_realloc,
    enif_release_binary,
    enif_release_resource,
    enif_rwlock_create,
    enif_rwlock_destroy,
    enif_rwlock_rlock,
    enif_rwlock_runlock,
    enif_rwlock_rwlock,
    enif_rwlock_rwunlock,
    enif_rwlock_tryrlock,
    enif_rwlock_tryrwlock,
    enif_schedule_nif,
    enif_select,
    enif_self,
    enif_send,
    enif_term_to_binary,
    enif_thread_create,
    enif_thread_exit,
    enif_thread_join,
    enif_thread_name,
    enif_thread_self,
    enif_thread_type,
    enif_tsd_get,
    enif_tsd_key_create,
    enif_tsd_key_destroy,
    enif_tsd_set,
}
