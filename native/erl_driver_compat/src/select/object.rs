//! Select objects: what the VM's select messages point at, one per
//! selected descriptor, of our resource type `edc_select` (opened by
//! [`on_load`]), whose `stop` callback calls the driver's `stop_select`
//! when asked to (see the parent module's documentation).

use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use rustler::{Env, Term};

use crate::abi::DrvEvent;
use crate::driver::Driver;
use crate::ffi::{self, RawEnv};

/// The resource type of select objects.
static SELECT_TYPE: AtomicPtr<rustler::sys::ErlNifResourceType> =
    AtomicPtr::new(std::ptr::null_mut());

/// What the VM's select messages point at: one per selected descriptor.
pub(super) struct SelectObject {
    pub(super) fd: c_int,
    /// Keeps the driver (and its code) until `stop_select` ran.
    driver: Arc<Driver>,
    /// Whether our `stop` callback calls the driver's `stop_select`.
    pub(super) call_stop: AtomicBool,
}

/// One reference to a select object, released on drop.
pub(super) struct ObjectRef(*const SelectObject);

impl ObjectRef {
    pub(super) fn get(&self) -> &SelectObject {
        // SAFETY: we hold a reference, so the object lives.
        unsafe { &*self.0 }
    }

    pub(super) fn raw(&self) -> *const c_void {
        self.0.cast()
    }
}

impl Drop for ObjectRef {
    fn drop(&mut self) {
        // SAFETY: this value owns one reference to the object.
        unsafe { ffi::release_resource(self.0.cast()) };
    }
}

/// The NIF library's `load` callback: opens the select objects' resource
/// type.
pub fn on_load(env: Env, _info: Term) -> bool {
    // SAFETY: `env` is the load callback's env; the callbacks have the
    // types the VM calls them with.
    let rtype =
        unsafe { ffi::init_resource_type(env.as_c_arg(), c"edc_select", object_dtor, object_stop) };
    SELECT_TYPE.store(rtype.cast_mut(), Ordering::Release);
    !rtype.is_null()
}

pub(super) fn select_type() -> *const rustler::sys::ErlNifResourceType {
    SELECT_TYPE.load(Ordering::Acquire)
}

unsafe extern "C" fn object_dtor(_env: RawEnv, obj: *mut c_void) {
    // SAFETY: the VM calls the destructor once, when the last reference to
    // an object made by `new_object` is gone.
    let _ =
        std::panic::catch_unwind(|| unsafe { std::ptr::drop_in_place(obj.cast::<SelectObject>()) });
}

unsafe extern "C" fn object_stop(_env: RawEnv, obj: *mut c_void, event: c_int, _direct: c_int) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: the VM passes a live object of our type.
        let object = unsafe { &*obj.cast::<SelectObject>() };
        if !object.call_stop.load(Ordering::Acquire) {
            return;
        }
        if let Some(stop_select) = object.driver.entry().stop_select {
            // SAFETY: the driver's callback, with the descriptor it
            // selected; the driver is kept loaded by `object.driver`.
            unsafe { stop_select(event as isize as DrvEvent, std::ptr::null_mut()) };
        }
    });
}

pub(super) fn new_object(fd: c_int, driver: &Arc<Driver>) -> Option<ObjectRef> {
    let rtype = select_type();
    if rtype.is_null() {
        return None;
    }
    const _: () = assert!(std::mem::align_of::<SelectObject>() <= 8);
    // SAFETY: our resource type, opened at load.
    let mem = unsafe { ffi::alloc_resource(rtype, std::mem::size_of::<SelectObject>()) };
    if mem.is_null() {
        return None;
    }
    let object = SelectObject {
        fd,
        driver: driver.clone(),
        call_stop: AtomicBool::new(false),
    };
    // SAFETY: fresh memory of the object's size, aligned for 8 (resource
    // data is), written once before anyone reads it.
    unsafe { mem.cast::<SelectObject>().write(object) };
    Some(ObjectRef(mem.cast()))
}
