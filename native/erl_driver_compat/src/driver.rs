//! The registry of drivers loaded through the compat layer: load (bind,
//! `driver_init`, version check, `init`), user references as `erl_ddll`
//! keeps them, and unload (`finish`) once no user and no port remains.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};

use crate::abi::{self, DrvEntry};
use crate::loader::{self, BoundLibrary, LoadError};

/// Why `load_driver` failed, beyond what the loader reports.
#[derive(Debug, PartialEq, Eq)]
pub enum DriverError {
    /// From the loader.
    Load(LoadError),
    /// `driver_init` returned NULL.
    NoEntry,
    /// The driver was built for an interface version we do not run.
    IncorrectVersion {
        /// `extended_marker == ERL_DRV_EXTENDED_MARKER`.
        extended: bool,
        /// The driver's major version.
        major: c_int,
        /// The driver's minor version.
        minor: c_int,
    },
    /// `driver_name` in the entry differs from the name asked for.
    BadDriverName(String),
    /// `init` returned non-zero.
    InitFailed(c_int),
    /// The name is loaded from another file.
    Inconsistent,
    /// The name is not loaded (unload).
    NotLoaded,
    /// The caller holds no reference to the driver (unload).
    NotLoadedByThisProcess,
    /// The driver is being unloaded; it cannot be loaded again yet.
    Unloading,
}

impl From<LoadError> for DriverError {
    fn from(e: LoadError) -> Self {
        DriverError::Load(e)
    }
}

/// One loaded driver.
pub struct Driver {
    /// Name used with `open_port`.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    entry: *mut DrvEntry,
    /// Keeps the object mapped while the driver lives.
    _lib: BoundLibrary,
    /// The driver-level lock (used by every port unless the driver asked
    /// for port-level locking).
    pub lock: Arc<Mutex<()>>,
    /// `ERL_DRV_FLAG_USE_PORT_LOCKING` was set.
    pub port_locking: bool,
    /// `driver_flags` of the entry.
    pub flags: c_int,
    state: Mutex<Usage>,
}

// SAFETY: the entry is immutable after init and the driver's callbacks are
// only called under the locks the driver asked for.
unsafe impl Send for Driver {}
// SAFETY: as above.
unsafe impl Sync for Driver {}

#[derive(Default)]
struct Usage {
    /// References held by user processes (pid term → count), with the
    /// resource that watches each user's death.
    users: HashMap<usize, (usize, ResourceArc<UserWatch>)>,
    open_ports: usize,
    /// `driver_lock_driver`: never unloaded.
    permanent: bool,
    /// No users remain; finish runs when the last port closes.
    unloading: bool,
    /// `finish` has run.
    finished: bool,
}

impl Driver {
    /// The driver's entry structure.
    pub fn entry(&self) -> &DrvEntry {
        // SAFETY: driver_init returned a non-NULL entry that lives as long as
        // the object, which `_lib` keeps mapped.
        unsafe { &*self.entry }
    }

    /// Counts a new port; fails while the driver is being unloaded.
    pub fn port_opened(&self) -> bool {
        let mut usage = self.state.lock();
        if usage.unloading {
            return false;
        }
        usage.open_ports += 1;
        true
    }

    /// Counts a closed port, finishing a pending unload.
    pub fn port_closed(self: &Arc<Self>) {
        let finish = {
            let mut usage = self.state.lock();
            usage.open_ports = usage.open_ports.saturating_sub(1);
            usage.unloading && usage.open_ports == 0
        };
        if finish {
            self.finish();
        }
    }

    /// `driver_lock_driver`.
    pub fn make_permanent(&self) {
        self.state.lock().permanent = true;
    }

    /// Number of ports open on the driver.
    pub fn open_ports(&self) -> usize {
        self.state.lock().open_ports
    }

    fn finish(self: &Arc<Self>) {
        {
            let mut usage = self.state.lock();
            if usage.finished {
                return;
            }
            usage.finished = true;
        }
        {
            let mut registry = registry().lock();
            if registry
                .get(&self.name)
                .is_some_and(|d| Arc::ptr_eq(d, self))
            {
                registry.remove(&self.name);
            }
        }
        if let Some(finish) = self.entry().finish {
            let _guard = self.lock.lock();
            // SAFETY: finish is the driver's own callback, called once, after
            // its last port closed.
            unsafe { finish() };
        }
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Driver>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Driver>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Looks up a loaded driver by name.
pub fn find(name: &str) -> Option<Arc<Driver>> {
    registry()
        .lock()
        .get(name)
        .filter(|d| !d.state.lock().unloading)
        .cloned()
}

/// Names of the loaded drivers, sorted.
pub fn loaded() -> Vec<String> {
    let mut names: Vec<String> = registry().lock().keys().cloned().collect();
    names.sort();
    names
}

/// Watches a process holding references to drivers, to drop them when it
/// dies, as `erl_ddll` does.
pub struct UserWatch;

#[rustler::resource_impl]
impl Resource for UserWatch {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        let key = crate::terms::pid_term(&pid);
        let drivers: Vec<Arc<Driver>> = registry().lock().values().cloned().collect();
        for driver in drivers {
            let had = driver.state.lock().users.remove(&key).is_some();
            if had {
                release_if_unused(&driver, env.as_c_arg());
            }
        }
    }
}

/// Unloads `driver` once no process references it, as `erl_ddll` does:
/// its open ports are killed with reason `driver_unloaded` (their `stop`
/// runs), then `finish` runs.
fn release_if_unused(driver: &Arc<Driver>, caller_env: crate::ffi::RawEnv) {
    {
        let mut usage = driver.state.lock();
        if !usage.users.is_empty() || usage.permanent || usage.unloading {
            return;
        }
        usage.unloading = true;
    }
    crate::port::kill_ports_of(driver, "driver_unloaded", caller_env);
    let finish_now = driver.state.lock().open_ports == 0;
    if finish_now {
        driver.finish();
    }
}

/// `load_driver(Dir, Name)` for process `user`.
pub fn load(env: Env, dir: &Path, name: &str, user: &LocalPid) -> Result<(), DriverError> {
    let path = dir.join(format!("{name}.so"));
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mut registry = registry().lock();
    if let Some(existing) = registry.get(name) {
        if existing.path != canonical {
            return Err(DriverError::Inconsistent);
        }
        if existing.state.lock().unloading {
            return Err(DriverError::Unloading);
        }
        add_user(env, existing, user);
        return Ok(());
    }
    let lib = loader::load(&path, name)?;
    let init_sym = lib
        .symbol("driver_init")
        .ok_or(DriverError::Load(LoadError::NoDriverInit))?;
    // SAFETY: driver_init has the signature `ErlDrvEntry *(void)` by the
    // dynamic-driver convention; the object's imports are bound to us.
    let entry = unsafe {
        let driver_init: unsafe extern "C" fn() -> *mut DrvEntry = std::mem::transmute(init_sym);
        driver_init()
    };
    if entry.is_null() {
        return Err(DriverError::NoEntry);
    }
    // SAFETY: non-NULL entry returned by the driver; the fields up to
    // `driver_flags` exist in every extended entry. Non-extended entries
    // are rejected before reading past `extended_marker`'s offset... which
    // a marker-less entry of 128 bytes does not contain, so the marker is
    // read first and everything else only when it is valid.
    let (extended, major, minor, flags) = unsafe {
        let e = &*entry;
        let extended = e.extended_marker == abi::EXTENDED_MARKER;
        if extended {
            (true, e.major_version, e.minor_version, e.driver_flags)
        } else {
            (false, 0, 0, 0)
        }
    };
    let supported = extended
        && (major == 2
            || (major == abi::EXTENDED_MAJOR_VERSION && minor <= abi::EXTENDED_MINOR_VERSION));
    if !supported {
        return Err(DriverError::IncorrectVersion {
            extended,
            major,
            minor,
        });
    }
    // SAFETY: driver_name is a NUL-terminated string per the ABI (checked
    // for NULL first).
    let entry_name = unsafe {
        let p = (*entry).driver_name;
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    if entry_name != name {
        return Err(DriverError::BadDriverName(entry_name));
    }
    // SAFETY: init is the driver's own callback, called once before use.
    if let Some(init) = unsafe { (*entry).init } {
        // SAFETY: see above.
        let rc = unsafe { init() };
        if rc != 0 {
            return Err(DriverError::InitFailed(rc));
        }
    }
    let driver = Arc::new(Driver {
        name: name.to_owned(),
        path: canonical,
        entry,
        _lib: lib,
        lock: Arc::new(Mutex::new(())),
        port_locking: flags & abi::FLAG_USE_PORT_LOCKING != 0,
        flags,
        state: Mutex::new(Usage::default()),
    });
    add_user(env, &driver, user);
    registry.insert(name.to_owned(), driver);
    Ok(())
}

fn add_user(env: Env, driver: &Arc<Driver>, user: &LocalPid) {
    let key = crate::terms::pid_term(user);
    let mut usage = driver.state.lock();
    if let Some((count, _)) = usage.users.get_mut(&key) {
        *count += 1;
        return;
    }
    let watch = ResourceArc::new(UserWatch);
    let _ = watch.monitor(Some(env), user);
    usage.users.insert(key, (1, watch));
}

/// `unload_driver(Name)` for process `user`: drops one reference; the
/// driver is finished when no reference and no port remains.
pub fn unload(env: Env, name: &str, user: &LocalPid) -> Result<(), DriverError> {
    let driver = registry()
        .lock()
        .get(name)
        .cloned()
        .ok_or(DriverError::NotLoaded)?;
    let key = crate::terms::pid_term(user);
    {
        let mut usage = driver.state.lock();
        match usage.users.get_mut(&key) {
            None => return Err(DriverError::NotLoadedByThisProcess),
            Some((count, _)) if *count > 1 => {
                *count -= 1;
                return Ok(());
            }
            Some(_) => {
                usage.users.remove(&key);
            }
        }
    }
    release_if_unused(&driver, env.as_c_arg());
    Ok(())
}
