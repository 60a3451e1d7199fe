//! Unit tests of the handle slots (live, destroyed, wrong kind), of NULL
//! handles and names, and of the table of live TSD keys, none needing
//! the VM.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

use super::tsd::{LiveKeys, LOW_KEYS};
use super::*;

fn fake_raw(n: usize) -> *mut c_void {
    n as *mut c_void
}

#[test]
fn a_live_handle_is_found_by_its_kind_only() {
    let slot = Slot::claim(Kind::Cond, fake_raw(8), c"c".to_owned());
    let p = slot as *const Slot;
    // SAFETY: p is a slot claimed above (slots are never freed).
    assert!(unsafe { Slot::live(p, Kind::Cond) }.is_ok());
    assert_eq!(
        // SAFETY: as above.
        unsafe { Slot::live(p, Kind::Mutex) }.err(),
        Some(BadHandle::Other(Kind::Cond))
    );
    assert_eq!(
        // SAFETY: NULL is checked before anything is read.
        unsafe { Slot::live(ptr::null(), Kind::Cond) }.err(),
        Some(BadHandle::Null)
    );
    // SAFETY: p is a slot.
    let (raw, name) = unsafe { Slot::release(p, Kind::Cond) }.unwrap();
    assert_eq!(raw, fake_raw(8));
    assert_eq!(name.as_c_str(), c"c");
}

#[test]
fn a_destroyed_handle_is_reported_not_released_twice() {
    let slot = Slot::claim(Kind::RwLock, fake_raw(16), c"r".to_owned());
    let p = slot as *const Slot;
    // SAFETY: p is a slot claimed above (slots are never freed).
    assert!(unsafe { Slot::release(p, Kind::RwLock) }.is_ok());
    // Until reused, the slot reads as destroyed.
    if slot.kind.load(Ordering::Acquire) == Kind::Free as u32 {
        assert_eq!(
            // SAFETY: slots are never freed: p stays readable.
            unsafe { Slot::release(p, Kind::RwLock) }.err(),
            Some(BadHandle::Destroyed)
        );
        assert_eq!(
            // SAFETY: as above.
            unsafe { Slot::live(p, Kind::RwLock) }.err(),
            Some(BadHandle::Destroyed)
        );
    }
}

#[test]
fn null_handles_give_the_documented_values_without_the_vm() {
    assert_eq!(erl_drv_mutex_trylock(ptr::null_mut()), libc::EINVAL);
    assert_eq!(erl_drv_rwlock_tryrlock(ptr::null_mut()), libc::EINVAL);
    assert_eq!(erl_drv_rwlock_tryrwlock(ptr::null_mut()), libc::EINVAL);
    assert!(erl_drv_mutex_name(ptr::null_mut()).is_null());
    assert!(erl_drv_cond_name(ptr::null_mut()).is_null());
    assert!(erl_drv_rwlock_name(ptr::null_mut()).is_null());
    erl_drv_mutex_lock(ptr::null_mut());
    erl_drv_mutex_unlock(ptr::null_mut());
    erl_drv_mutex_destroy(ptr::null_mut());
    erl_drv_cond_wait(ptr::null_mut(), ptr::null_mut());
    erl_drv_cond_destroy(ptr::null_mut());
    erl_drv_rwlock_destroy(ptr::null_mut());
}

#[test]
fn keys_that_are_not_live_are_refused_without_the_vm() {
    assert_eq!(
        erl_drv_tsd_key_create(ptr::null_mut(), ptr::null_mut()),
        libc::EINVAL
    );
    assert!(erl_drv_tsd_get(-1).is_null());
    assert!(erl_drv_tsd_get(5000).is_null());
    erl_drv_tsd_set(7, ptr::null_mut());
    erl_drv_tsd_key_destroy(7);
}

#[test]
fn live_keys_low_and_high() {
    let keys = LiveKeys {
        low: [const { AtomicU64::new(0) }; 64],
        high: Mutex::new(Vec::new()),
    };
    for k in [0, 63, 64, LOW_KEYS - 1, LOW_KEYS, 100_000] {
        assert!(!keys.contains(k));
        keys.insert(k);
        assert!(keys.contains(k));
        assert!(keys.remove(k));
        assert!(!keys.remove(k));
        assert!(!keys.contains(k));
    }
    assert!(!keys.contains(-1));
}

#[test]
fn a_null_name_reads_back_as_unknown() {
    assert_eq!(copy_name(ptr::null()).as_c_str(), c"unknown");
    assert_eq!(copy_name(c"m".as_ptr()).as_c_str(), c"m");
}
