//! `driver_alloc` family, on the NIF allocator (`enif_alloc`).

use std::ffi::c_void;

use super::guard;
use crate::abi::SizeT;

/// `void *driver_alloc(ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_alloc(size: SizeT) -> *mut c_void {
    // SAFETY: enif_alloc has no preconditions; NULL on failure.
    guard(std::ptr::null_mut(), || unsafe { crate::ffi::alloc(size) })
}

/// `void *driver_realloc(void *ptr, ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_realloc(ptr: *mut c_void, size: SizeT) -> *mut c_void {
    // SAFETY: by the driver_realloc contract ptr is NULL or a live block
    // from driver_alloc/driver_realloc (= enif_alloc/enif_realloc).
    guard(std::ptr::null_mut(), || unsafe {
        crate::ffi::realloc(ptr, size)
    })
}

/// `void driver_free(void *ptr)`
pub(crate) extern "C" fn driver_free(ptr: *mut c_void) {
    guard((), || free(ptr))
}

/// Frees memory from `driver_alloc` (NULL is ignored).
pub(crate) fn free(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: by the driver_free contract ptr is a live block from
        // driver_alloc/driver_realloc (= enif_alloc), freed once.
        unsafe { crate::ffi::free(ptr) }
    }
}
