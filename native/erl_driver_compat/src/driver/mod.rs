//! The registry of drivers loaded through the compat layer: load, user
//! references as `erl_ddll` keeps them, and unload (`finish`) once no user
//! and no port remains.
//!
//! Loading: open a private copy ([`loader::open`]), call `driver_init`, read
//! the entry through an [`EntryView`] of the size its declared version has
//! (never past it) into an owned copy, check the version (majors 2 and
//! 3.0–3.3, as OTP 25; also 1.0–1.5 and marker-less, see
//! `supported_version`) and the name, bind the imports for that version's
//! ABI variant ([`crate::binding`]), then call `init`. Binding after
//! `driver_init` means an API call made from `driver_init` itself reaches
//! the BEAM's export of that name, not us (drivers normally only return
//! their entry there).
//!
//! The registry lock is not held while loading: the name is reserved as
//! loading, so a slow `init` does not stall `find`/`open_port` on other
//! drivers. A second `load` of a name being loaded waits (it runs on a
//! dirty I/O scheduler) and then does what `erl_ddll` does once the first
//! is done: adds a reference, or tries the load itself when the first failed.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};

use crate::abi::{self, DrvEntry, EntryView};
use crate::binding::AbiVariant;
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
    /// The driver called `driver_lock_driver`: it stays loaded for the
    /// life of the VM, and every load or unload of its name is refused
    /// (`{error, permanent}`, as natively).
    Permanent,
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
    /// Our copy of the driver's entry (fields its version lacks are None).
    entry: DrvEntry,
    /// Keeps the object mapped while the driver lives (`None` only for the
    /// in-process stand-in drivers of the unit tests).
    _lib: Option<BoundLibrary>,
    /// The driver-level lock (used by every port unless the driver asked
    /// for port-level locking).
    pub lock: Arc<crate::port::lock::PortLock>,
    /// `ERL_DRV_FLAG_USE_PORT_LOCKING` was set.
    pub port_locking: bool,
    /// `driver_flags` of the entry.
    pub flags: c_int,
    /// The calling convention of its callbacks and imports (`Int` for
    /// interface 1.x and marker-less drivers, see [`supported_version`]).
    pub abi: AbiVariant,
    state: Mutex<Usage>,
}

// SAFETY: Driver is not Send only because of raw pointers: the entry copy
// (C function pointers, a name pointer into the library) is never written
// after loading and the library stays mapped while the Driver lives, so it
// may move between threads; the driver's callbacks are only called under
// the lock (driver or port level) the driver asked for.
unsafe impl Send for Driver {}
// SAFETY: shared access only reads the immutable entry copy and takes
// `lock`/`state` (mutexes) for everything else; callbacks reached through
// `&Driver` run under the driver's chosen lock, as for Send.
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
    /// Our copy of the driver's entry structure, made at load time from
    /// the fields the driver's declared version has.
    pub fn entry(&self) -> &DrvEntry {
        &self.entry
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
                .drivers
                .get(&self.name)
                .is_some_and(|d| Arc::ptr_eq(d, self))
            {
                registry.drivers.remove(&self.name);
            }
        }
        if let Some(finish) = self.entry().finish {
            let _guard = self.lock.guard();
            // SAFETY: finish is the driver's `void -> void` callback from
            // its entry; the library is still loaded (unloaded after this),
            // and it is called once, under the driver lock, after its last
            // port closed.
            unsafe { finish() };
        }
    }
}

#[derive(Default)]
struct Registry {
    drivers: HashMap<String, Arc<Driver>>,
    /// Names being loaded (outside the lock); see [`load`].
    loading: HashSet<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Signalled whenever a load finishes (its name leaves `loading`).
static LOAD_DONE: Condvar = Condvar::new();

/// Looks up a loaded driver by name.
pub fn find(name: &str) -> Option<Arc<Driver>> {
    registry()
        .lock()
        .drivers
        .get(name)
        .filter(|d| !d.state.lock().unloading)
        .cloned()
}

/// Names of the loaded drivers, sorted.
pub fn loaded() -> Vec<String> {
    let mut names: Vec<String> = registry().lock().drivers.keys().cloned().collect();
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
        let drivers: Vec<Arc<Driver>> = registry().lock().drivers.values().cloned().collect();
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
    let mut reg = registry().lock();
    while reg.loading.contains(name) {
        LOAD_DONE.wait(&mut reg);
    }
    if let Some(existing) = reg.drivers.get(name) {
        if existing.state.lock().permanent {
            return Err(DriverError::Permanent);
        }
        if existing.path != canonical {
            return Err(DriverError::Inconsistent);
        }
        if existing.state.lock().unloading {
            return Err(DriverError::Unloading);
        }
        add_user(env, existing, user);
        return Ok(());
    }
    reg.loading.insert(name.to_owned());
    drop(reg);
    let reservation = Reservation(name);
    let loaded = load_new(&path, name, canonical);
    let mut reg = registry().lock();
    std::mem::forget(reservation);
    reg.loading.remove(name);
    LOAD_DONE.notify_all();
    let driver = loaded?;
    add_user(env, &driver, user);
    reg.drivers.insert(name.to_owned(), driver);
    Ok(())
}

/// Releases a name reserved as loading if loading unwinds.
struct Reservation<'a>(&'a str);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        registry().lock().loading.remove(self.0);
        LOAD_DONE.notify_all();
    }
}

/// Loads the driver file `path` as `name`, without the registry lock.
fn load_new(path: &Path, name: &str, canonical: PathBuf) -> Result<Arc<Driver>, DriverError> {
    let mut lib = loader::open(path, name)?;
    let init_sym = lib
        .symbol("driver_init")
        .ok_or(DriverError::Load(LoadError::NoDriverInit))?;
    // SAFETY: init_sym is the non-NULL address of the library's
    // `driver_init`, which the dynamic-driver convention (DRIVER_INIT)
    // defines as a C function `ErlDrvEntry *driver_init(void)`; a data
    // pointer and a function pointer have the same size and representation
    // on the platforms we load ELF drivers on.
    let driver_init: unsafe extern "C" fn() -> *const u8 = unsafe { std::mem::transmute(init_sym) };
    // SAFETY: the call matches driver_init's C signature (no arguments,
    // returns a pointer), and `lib` keeps its code mapped. Its API imports
    // are not bound yet (see the module documentation): a call it makes to
    // the API reaches the BEAM's export of that name, not us; drivers
    // normally only return their entry there.
    let entry_ptr = unsafe { driver_init() };
    if entry_ptr.is_null() {
        return Err(DriverError::NoEntry);
    }
    let entry = read_entry(entry_ptr)?;
    let (major, minor) = (entry.major_version, entry.minor_version);
    let extended = entry.extended_marker == abi::EXTENDED_MARKER;
    if !supported_version(&entry) {
        return Err(DriverError::IncorrectVersion {
            extended,
            major: if extended { major } else { 0 },
            minor: if extended { minor } else { 0 },
        });
    }
    let outside = lib.outside_object(&entry);
    if !outside.is_empty() {
        return Err(LoadError::BadEntry(format!(
            "the entry's {} point outside the driver object",
            outside.join(", ")
        ))
        .into());
    }
    let entry_name = if entry.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: a non-NULL driver_name is a NUL-terminated string by the
        // ABI, in the driver's data, which `lib` keeps mapped and nobody
        // writes during this read.
        unsafe { CStr::from_ptr(entry.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    if entry_name != name {
        return Err(DriverError::BadDriverName(entry_name));
    }
    let variant = AbiVariant::for_version(major, minor);
    lib.bind(variant)?;
    if let Some(init) = entry.init {
        // SAFETY: init is the driver's `void -> int` callback from its
        // entry, in code `lib` keeps mapped; it is called once, before any
        // port, after `bind` resolved every API import it may call.
        let rc = unsafe { init() };
        if rc != 0 {
            return Err(DriverError::InitFailed(rc));
        }
    }
    let flags = entry.driver_flags;
    Ok(Arc::new(Driver {
        name: name.to_owned(),
        path: canonical,
        entry,
        _lib: Some(lib),
        lock: Arc::new(crate::port::lock::PortLock::new()),
        port_locking: flags & abi::FLAG_USE_PORT_LOCKING != 0,
        flags,
        abi: variant,
        state: Mutex::new(Usage::default()),
    }))
}

/// Whether we run a driver declaring this entry's version: the extended
/// majors 2 (any minor) and 3.0–3.3, as OTP 25; the seed-era 1.0–1.5 (as
/// R13B04–R14B04 ran them: `int` ABI, bound to [`crate::api::legacy`]);
/// and marker-less entries (R6B–R11B-2 layouts), which R11B-4…R14B04
/// accepted when `major_version`, `minor_version`, `driver_flags`,
/// `handle2` and `process_exit` were 0 (spec/ABI_VERSIONS.md §6).
///
/// Those five fields lie past the end of a true marker-less entry (at most
/// 128 bytes, §2): [`read_entry`] applies this check to them only when the
/// 160 bytes are mapped readable, as those runtimes did (they read them
/// unconditionally), and never copies them into the entry (which ends at
/// the marker). So a driver built against a 1.x–3.x header that left the
/// marker 0 is refused, as it was then, instead of being run with the
/// wrong ABI; a real R6B–R11B-2 entry followed by non-zero data is refused
/// too, exactly as R11B-4…R14B04 refused it. Anything else (1.6+, 3.4+,
/// 4+, 0.x or a negative major with the marker, another marker value) is
/// `driver_incorrect_version`.
fn supported_version(entry: &DrvEntry) -> bool {
    let (major, minor) = (entry.major_version, entry.minor_version);
    match entry.extended_marker {
        // The one rule for extended entries, shared with the report.
        abi::EXTENDED_MARKER => loader::check::version_problem(true, major, minor).is_none(),
        0 => {
            major == 0
                && minor == 0
                && entry.driver_flags == 0
                && entry.handle2.is_null()
                && entry.process_exit.is_none()
        }
        _ => false,
    }
}

/// Copies the entry `driver_init` returned, reading no byte past what its
/// declared version has: slots 0–120 and the marker (as native runtimes
/// always do), then the version, then the rest of that version's entry,
/// each only once the bytes are known to be mapped readable. An entry
/// whose declared size is not readable is refused as a wrong version. An
/// entry whose mapping ends before the marker is a marker-less one (R6B–
/// R11B-2 layouts, 96–128 bytes): it is read up to the last slot boundary
/// that is readable (`event` 128, `call` 120, `flush`/`ready_async` 104,
/// `outputv` 96), the slots after it being absent.
fn read_entry(ptr: *const u8) -> Result<DrvEntry, DriverError> {
    let unreadable = || DriverError::IncorrectVersion {
        extended: false,
        major: 0,
        minor: 0,
    };
    let marker_end = abi::ENTRY_MARKER_OFFSET + std::mem::size_of::<std::os::raw::c_int>();
    if !loader::readable(ptr as usize, marker_end) {
        let Some(len) = [128, 120, 104, 96]
            .into_iter()
            .find(|&len| loader::readable(ptr as usize, len))
        else {
            return Err(unreadable());
        };
        // SAFETY: `len` bytes at ptr are mapped readable (just checked), in
        // the library loaded for this call; to_entry copies them at once.
        return Ok(unsafe { EntryView::new(ptr, len) }.to_entry());
    }
    // SAFETY: the marker_end bytes at ptr are mapped readable (checked
    // above) and stay so while the view is used, within this function: the
    // library holding them is not unloaded meanwhile.
    let marker = unsafe { EntryView::new(ptr, marker_end) }.marker();
    if marker != 0 && marker != abi::EXTENDED_MARKER {
        // Neither extended nor marker-less: every runtime refused it.
        return Err(unreadable());
    }
    let mut len = abi::declared_entry_size(marker, 0, 0);
    if marker == abi::EXTENDED_MARKER {
        if !loader::readable(ptr as usize, abi::ENTRY_VERSION_END) {
            return Err(unreadable());
        }
        // SAFETY: ENTRY_VERSION_END bytes at ptr are mapped readable
        // (checked just above), in the library loaded for this call.
        let (major, minor) = unsafe { EntryView::new(ptr, abi::ENTRY_VERSION_END) }.version();
        len = abi::declared_entry_size(marker, major, minor);
        if !loader::readable(ptr as usize, len) {
            return Err(DriverError::IncorrectVersion {
                extended: true,
                major,
                minor,
            });
        }
    }
    if marker == 0 {
        let v1_end = abi::declared_entry_size(abi::EXTENDED_MARKER, 1, 0);
        if loader::readable(ptr as usize, v1_end) {
            // SAFETY: v1_end bytes at ptr are mapped readable (just
            // checked), in the library loaded for this call. Only read for
            // the check below, never copied into the entry.
            let tail = unsafe { EntryView::new(ptr, v1_end) }.to_entry();
            if !supported_version(&tail) {
                return Err(unreadable());
            }
        }
    }
    // SAFETY: `len` bytes at ptr are mapped readable (checked above), in
    // the library loaded for this call; to_entry copies them at once.
    Ok(unsafe { EntryView::new(ptr, len) }.to_entry())
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
        .drivers
        .get(name)
        .cloned()
        .ok_or(DriverError::NotLoaded)?;
    let key = crate::terms::pid_term(user);
    {
        let mut usage = driver.state.lock();
        if usage.permanent {
            return Err(DriverError::Permanent);
        }
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

#[cfg(test)]
impl Driver {
    /// A driver whose callbacks are functions of the test binary itself
    /// (no object is loaded): for unit tests of the port machinery.
    pub(crate) fn for_test(name: &str, entry: DrvEntry) -> Arc<Driver> {
        Arc::new(Driver {
            name: name.to_owned(),
            path: PathBuf::from(name),
            entry,
            _lib: None,
            lock: Arc::new(crate::port::lock::PortLock::new()),
            port_locking: entry.driver_flags & abi::FLAG_USE_PORT_LOCKING != 0,
            flags: entry.driver_flags,
            abi: AbiVariant::SizeT,
            state: Mutex::new(Usage::default()),
        })
    }
}

#[cfg(test)]
mod tests;
