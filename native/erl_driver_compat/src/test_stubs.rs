//! Unit-test stand-ins for the `enif_*` functions the BEAM exports.
//!
//! Rust calls external functions through the GOT, so a test executable
//! must resolve every `enif_*` symbol the crate references when it starts,
//! although the unit tests never call them (they need a running VM). These
//! definitions abort if reached. When the crate starts using another
//! `enif_*` function, `cargo test` fails at start-up naming it: add it here.
//!
//! The VM binary functions (`enif_alloc_binary`, `enif_realloc_binary`,
//! `enif_release_binary`) are emulated with the global allocator in erts
//! 13's `Binary` layout, so that driver binaries, the queue and the term
//! builder can be unit-tested (and run under Miri).

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicIsize, Ordering};

use crate::ffi::NifBinary;

/// A stand-in `Binary`: a hidden capacity word, then erts 13's fields
/// (`flags`, `refc`, `orig_size`) and the data.
#[repr(C)]
struct StubBinary {
    capacity: usize,
    flags: usize,
    refc: AtomicIsize,
    orig_size: usize,
}

/// `BIN_FLAG_DRV`.
const FLAG_DRV: usize = 8;
/// From the block to the `Binary` (past the capacity word).
const HIDDEN: usize = 8;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(std::mem::size_of::<StubBinary>() + size.max(1), 8).ok()
}

/// Writes the header of a block of `size` data bytes at `base` and fills
/// `bin` in.
///
/// # Safety
/// `base` is a block of `layout(size)`; `bin` is writable.
unsafe fn init(base: *mut u8, size: usize, bin: *mut NifBinary) {
    let header = StubBinary {
        capacity: size,
        flags: FLAG_DRV,
        refc: AtomicIsize::new(1),
        orig_size: size,
    };
    // SAFETY: the block holds a StubBinary and is aligned to 8 (caller's
    // contract).
    unsafe { base.cast::<StubBinary>().write(header) };
    let vm = base.wrapping_add(HIDDEN);
    let filled = NifBinary::of(vm.cast(), size, vm.wrapping_add(3 * HIDDEN));
    // SAFETY: bin is writable (caller's contract).
    unsafe { bin.write(filled) };
}

/// The block of the stand-in `Binary` at `vm`.
fn block(vm: *mut std::ffi::c_void) -> *mut StubBinary {
    vm.cast::<u8>().wrapping_sub(HIDDEN).cast()
}

#[no_mangle]
extern "C" fn enif_alloc_binary(size: usize, bin: *mut NifBinary) -> c_int {
    let Some(l) = layout(size).filter(|_| size <= isize::MAX as usize / 2) else {
        return 0;
    };
    // SAFETY: l has a non-zero size.
    let base = unsafe { alloc(l) };
    if base.is_null() {
        return 0;
    }
    // SAFETY: base is a fresh block of layout(size); bin is the caller's
    // out-parameter.
    unsafe { init(base, size, bin) };
    1
}

#[no_mangle]
extern "C" fn enif_realloc_binary(bin: *mut NifBinary, size: usize) -> c_int {
    // SAFETY: bin is the caller's live ErlNifBinary.
    let old_block = block(unsafe { (*bin).ref_bin });
    // SAFETY: ref_bin is a live stand-in Binary: its block starts with
    // the capacity word.
    let old = unsafe { (*old_block).capacity };
    let (Some(old_l), Some(new_l)) = (layout(old), layout(size)) else {
        return 0;
    };
    // SAFETY: the block was allocated with layout(old); the caller holds
    // its only reference.
    let base = unsafe { realloc(old_block.cast(), old_l, new_l.size()) };
    if base.is_null() {
        return 0;
    }
    // SAFETY: base is the resized block of layout(size); bin is writable.
    unsafe { init(base, size, bin) };
    1
}

#[no_mangle]
extern "C" fn enif_release_binary(bin: *mut NifBinary) {
    // SAFETY: bin is the caller's ErlNifBinary.
    let vm = unsafe { (*bin).ref_bin };
    if vm.is_null() {
        return;
    }
    let b = block(vm);
    // SAFETY: ref_bin is a live stand-in Binary the caller holds a
    // reference to; its count is only changed atomically.
    let refc = unsafe { &(*b).refc };
    if refc.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: the last reference: nothing else uses the block.
    let cap = unsafe { (*b).capacity };
    if let Some(l) = layout(cap) {
        // SAFETY: the block was allocated (or last resized) with
        // layout(capacity).
        unsafe { dealloc(b.cast(), l) };
    }
}

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
    enif_make_sub_binary,
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
