//! Thread-specific data (`erl_drv_tsd_*`) on the VM's keys, each checked
//! against the table of keys created through us and not yet destroyed
//! before it reaches the VM (which aborts on a key that is not live).

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::api::guard;
use crate::api::thread::report;
use crate::ffi;

/// The VM's keys created through us and not yet destroyed (the VM's key
/// table is shared with native drivers and NIFs; it aborts on a key that
/// is not live, so every key is checked here first). Keys are small
/// (the VM hands out the lowest free one): a bitmap, and a set beyond it.
pub(super) struct LiveKeys {
    pub(super) low: [AtomicU64; 64],
    pub(super) high: Mutex<Vec<c_int>>,
}

pub(super) const LOW_KEYS: c_int = 64 * 64;

static LIVE_KEYS: LiveKeys = LiveKeys {
    low: [const { AtomicU64::new(0) }; 64],
    high: Mutex::new(Vec::new()),
};

impl LiveKeys {
    fn bit(key: c_int) -> (usize, u64) {
        ((key / 64) as usize, 1u64 << (key % 64))
    }

    pub(super) fn insert(&self, key: c_int) {
        if (0..LOW_KEYS).contains(&key) {
            let (word, bit) = Self::bit(key);
            self.low[word].fetch_or(bit, Ordering::AcqRel);
        } else {
            self.high.lock().push(key);
        }
    }

    /// Removes `key`; false when it was not live.
    pub(super) fn remove(&self, key: c_int) -> bool {
        if (0..LOW_KEYS).contains(&key) {
            let (word, bit) = Self::bit(key);
            return self.low[word].fetch_and(!bit, Ordering::AcqRel) & bit != 0;
        }
        let mut high = self.high.lock();
        match high.iter().position(|&k| k == key) {
            Some(i) => {
                high.swap_remove(i);
                true
            }
            None => false,
        }
    }

    pub(super) fn contains(&self, key: c_int) -> bool {
        if (0..LOW_KEYS).contains(&key) {
            let (word, bit) = Self::bit(key);
            return self.low[word].load(Ordering::Acquire) & bit != 0;
        }
        self.high.lock().contains(&key)
    }
}

/// `int erl_drv_tsd_key_create(char *name, ErlDrvTSDKey *key)`: 0 and the
/// key, or an errno value (`EINVAL` for a NULL `key`; natively an abort).
pub(crate) extern "C" fn erl_drv_tsd_key_create(name: *mut c_char, key: *mut c_int) -> c_int {
    guard(libc::ENOMEM, || {
        if key.is_null() {
            report("erl_drv_tsd_key_create", "a NULL key pointer");
            return libc::EINVAL;
        }
        // SAFETY: name is NULL or a NUL-terminated string (the contract).
        let (res, value) = match unsafe { ffi::tsd_key_create(name) } {
            Ok(k) => {
                LIVE_KEYS.insert(k);
                (0, k)
            }
            Err(e) => (e, -1),
        };
        // SAFETY: key is non-NULL and points at an ErlDrvTSDKey the driver
        // passed for us to write.
        unsafe { *key = value };
        res
    })
}

/// `void erl_drv_tsd_key_destroy(ErlDrvTSDKey key)`
pub(crate) extern "C" fn erl_drv_tsd_key_destroy(key: c_int) {
    guard((), || {
        if LIVE_KEYS.remove(key) {
            // SAFETY: a live key of ours, destroyed once (removed above).
            unsafe { ffi::tsd_key_destroy(key) }
        } else {
            report(
                "erl_drv_tsd_key_destroy",
                &format!("key {key}, which is not live"),
            );
        }
    })
}

/// `void erl_drv_tsd_set(ErlDrvTSDKey key, void *data)`: for the calling
/// thread.
pub(crate) extern "C" fn erl_drv_tsd_set(key: c_int, data: *mut c_void) {
    guard((), || {
        if LIVE_KEYS.contains(key) {
            // SAFETY: a live key of ours.
            unsafe { ffi::tsd_set(key, data) }
        } else {
            report("erl_drv_tsd_set", &format!("key {key}, which is not live"));
        }
    })
}

/// `void *erl_drv_tsd_get(ErlDrvTSDKey key)`: the calling thread's value,
/// NULL when none was set (or for a key that is not live).
pub(crate) extern "C" fn erl_drv_tsd_get(key: c_int) -> *mut c_void {
    guard(ptr::null_mut(), || {
        if LIVE_KEYS.contains(key) {
            // SAFETY: a live key of ours.
            unsafe { ffi::tsd_get(key) }
        } else {
            report("erl_drv_tsd_get", &format!("key {key}, which is not live"));
            ptr::null_mut()
        }
    })
}
