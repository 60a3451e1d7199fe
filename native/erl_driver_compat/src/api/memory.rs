//! `driver_alloc` family, on the NIF allocator (`enif_alloc`).

use std::ffi::c_void;

use super::guard;
use crate::abi::SizeT;

/// `void *driver_alloc(ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_alloc(size: SizeT) -> *mut c_void {
    // SAFETY: enif_alloc has no preconditions; NULL on failure.
    guard(std::ptr::null_mut(), || unsafe {
        rustler::sys::enif_alloc(size)
    })
}

/// `void *driver_realloc(void *ptr, ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_realloc(ptr: *mut c_void, size: SizeT) -> *mut c_void {
    // SAFETY: ptr is NULL or came from driver_alloc (= enif_alloc).
    guard(std::ptr::null_mut(), || unsafe {
        rustler::sys::enif_realloc(ptr, size)
    })
}

/// `void driver_free(void *ptr)`
pub(crate) extern "C" fn driver_free(ptr: *mut c_void) {
    guard((), || free(ptr))
}

/// Frees memory from `driver_alloc` (NULL is ignored).
pub(crate) fn free(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: ptr came from driver_alloc (= enif_alloc).
        unsafe { rustler::sys::enif_free(ptr) }
    }
}
