//! Driver binaries: allocation and the reference count (see
//! `crate::binary` for the representation).

use super::guard;
use crate::abi::{DrvBinary, SizeT};
use crate::binary::DriverBinary;
use crate::context;

fn resolve(bin: *mut DrvBinary, func: &'static str) -> Option<DriverBinary> {
    // SAFETY: pointers the driver passes here came from driver_alloc_binary
    // or an outputv ErlIOVec (VM binaries: the 16 bytes before them are
    // readable); from_raw checks their header.
    match unsafe { DriverBinary::from_raw(bin) } {
        Ok(b) => Some(b),
        Err(e) => {
            reject(func, &format!("an invalid driver binary {bin:p} ({e:?})"));
            None
        }
    }
}

/// [`resolve`] for the functions that give a reference up
/// (`driver_free_binary`, `driver_realloc_binary`,
/// `driver_binary_dec_refc`): also refuses a binary of the running
/// `outputv`'s vector the driver took no reference to (count 1: only the
/// sender's term, or the vector's copy, holds it), which would free it
/// under its holder (natively: heap corruption).
fn resolve_own(bin: *mut DrvBinary, func: &'static str) -> Option<DriverBinary> {
    let b = resolve(bin, func)?;
    if b.refc() <= 1 && crate::iodata::in_running_vector(b) {
        reject(
            func,
            &format!(
                "{bin:p}, a binary of its outputv vector it took no reference to \
                 (driver_binary_inc_refc)"
            ),
        );
        return None;
    }
    Some(b)
}

fn reject(func: &'static str, what: &str) {
    if context::with_current(|ctx| super::misuse(ctx, func, what)).is_none() {
        crate::effects::log_detached(&format!("{func} called with {what}; ignored"));
    }
}

/// `ErlDrvBinary *driver_alloc_binary(ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_alloc_binary(size: SizeT) -> *mut DrvBinary {
    guard(std::ptr::null_mut(), || {
        DriverBinary::alloc_for_driver(size).map_or(std::ptr::null_mut(), DriverBinary::as_ptr)
    })
}

/// `ErlDrvBinary *driver_realloc_binary(ErlDrvBinary *bin, ErlDrvSizeT size)`
pub(crate) extern "C" fn driver_realloc_binary(bin: *mut DrvBinary, size: SizeT) -> *mut DrvBinary {
    guard(std::ptr::null_mut(), || {
        resolve_own(bin, "driver_realloc_binary")
            .and_then(|b| b.resize(size))
            .map_or(std::ptr::null_mut(), DriverBinary::as_ptr)
    })
}

/// `void driver_free_binary(ErlDrvBinary *bin)`
pub(crate) extern "C" fn driver_free_binary(bin: *mut DrvBinary) {
    guard((), || {
        if let Some(b) = resolve_own(bin, "driver_free_binary") {
            b.free_by_driver();
        }
    })
}

/// `ErlDrvSInt driver_binary_get_refc(ErlDrvBinary *dbp)`
pub(crate) extern "C" fn driver_binary_get_refc(bin: *mut DrvBinary) -> isize {
    guard(-1, || {
        resolve(bin, "driver_binary_get_refc").map_or(-1, DriverBinary::refc)
    })
}

/// `ErlDrvSInt driver_binary_inc_refc(ErlDrvBinary *dbp)`
pub(crate) extern "C" fn driver_binary_inc_refc(bin: *mut DrvBinary) -> isize {
    guard(-1, || {
        resolve(bin, "driver_binary_inc_refc").map_or(-1, DriverBinary::inc_by_driver)
    })
}

/// `ErlDrvSInt driver_binary_dec_refc(ErlDrvBinary *dbp)`: never frees
/// (the manual: use `driver_free_binary` for that).
pub(crate) extern "C" fn driver_binary_dec_refc(bin: *mut DrvBinary) -> isize {
    guard(-1, || {
        resolve_own(bin, "driver_binary_dec_refc").map_or(-1, DriverBinary::dec_by_driver)
    })
}
