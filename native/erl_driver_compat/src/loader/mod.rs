//! Loads a driver `.so` privately and binds its `erl_driver` imports to our
//! implementation (DESIGN.md "Binding a driver's calls").
//!
//! Steps: [`open`] parses the ELF file, refuses imports only the VM provides,
//! copies the file to a private path (so `erl_ddll` and we never share one
//! object) and `dlopen`s it lazily and locally. The caller (`driver`) then
//! calls `driver_init`, reads the interface version the entry declares, and
//! [`BoundLibrary::bind`] rewrites each slot that holds an API symbol's
//! address to point at our function for that version's
//! [`AbiVariant`], lifting RELRO protection while writing.
//!
//! [`check::assess`] decides, without running driver code, whether the
//! file can run at all; [`open`] refuses what it refuses, so the report of
//! `erl_driver_compat:check/1` and `load_driver` always agree.
//!
//! The object's constructors (`DT_INIT`, `.init_array`) are hidden from
//! the dynamic linker in the private copy: [`open`] binds the imports for
//! the version found in the file ([`check::find_entry`]; 2.0+ when none
//! is found) and then runs the constructors itself, in the dynamic
//! linker's order, so an API call made by a constructor or by
//! `driver_init` reaches our function. The caller binds again once
//! `driver_init` has returned the entry (its version decides).
//!
//! An import that is not an `erl_driver` API name is left to the dynamic
//! linker when any loaded shared library provides it (libc's `stderr`,
//! `environ`, libm, ...), even when the BEAM exports it too; only symbols
//! that nothing but the VM defines are refused.
//!
//! * [`elf`]: reading the driver file (imports, relocation slots);
//! * [`symbols`]: which imports we lack or only the VM provides;
//! * [`patch`]: rewriting the slots of a loaded driver.

pub mod check;
pub mod elf;
pub mod patch;
pub mod symbols;

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::binding::{self, AbiVariant};
use elf::{DriverImage, ElfError};
use patch::bind_slots;
use symbols::link_map_base;
pub use symbols::{unsupported_api, vm_only_imports};

/// Why a driver could not be loaded. Each maps to an Erlang error term.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not exist or cannot be read.
    NotFound(String),
    /// The file is not an ELF shared object we can use.
    NotElf(String),
    /// The file has no `driver_init` entry point.
    NoDriverInit,
    /// The driver imports API functions (or BEAM internals) we do not provide.
    Unsupported(Vec<String>),
    /// `dlopen` failed (missing library dependency, bad object, ...).
    OpenError(String),
    /// The private copy could not be made.
    Copy(String),
    /// Rewriting a slot failed.
    Bind(String),
    /// The entry found in the file declares an interface version we do
    /// not run ([`check::version_problem`]).
    Version(String),
    /// The entry `driver_init` returned is unusable (callbacks or name
    /// outside the object).
    BadEntry(String),
}

/// The load error for an ELF problem.
pub(crate) fn not_elf(e: ElfError) -> LoadError {
    match e {
        ElfError::NotElf => LoadError::NotElf("not an ELF file".into()),
        ElfError::WrongKind(s) | ElfError::Malformed(s) => LoadError::NotElf(s),
    }
}

/// The load error for a report whose verdict is `will_not_run`: the
/// first kind of problem in erl_ddll's order of checks (no
/// `driver_init`, then the version, then the imports).
fn refusal(problems: &[check::Problem]) -> LoadError {
    use check::Problem;
    if problems.contains(&Problem::NoDriverInit) {
        return LoadError::NoDriverInit;
    }
    if let Some(text) = problems.iter().find_map(|p| match p {
        Problem::Version(t) => Some(t.clone()),
        _ => None,
    }) {
        return LoadError::Version(text);
    }
    let mut names: Vec<String> = problems
        .iter()
        .flat_map(|p| match p {
            Problem::UnsupportedApi(n) | Problem::VmOnly(n) => n.clone(),
            _ => Vec::new(),
        })
        .collect();
    names.sort();
    names.dedup();
    LoadError::Unsupported(names)
}

/// A driver object opened privately; its API imports are ours once
/// [`BoundLibrary::bind`] has run.
#[derive(Debug)]
pub struct BoundLibrary {
    handle: *mut c_void,
    /// Private copy the object was opened from (already unlinked).
    pub private_path: PathBuf,
    /// Number of slots redirected to our functions.
    pub patched_slots: usize,
    image: DriverImage,
    /// Load bias of the object.
    base: usize,
}

// SAFETY: BoundLibrary is not Send only because of the raw `handle`, an
// opaque dlopen token that glibc's dlsym/dlclose accept from any thread
// (they lock the loader's state themselves); the other fields are owned
// plain data.
unsafe impl Send for BoundLibrary {}
// SAFETY: through `&BoundLibrary` only `symbol` uses the handle (dlsym,
// thread-safe in glibc); binding and closing need `&mut` or ownership.
unsafe impl Sync for BoundLibrary {}

impl BoundLibrary {
    /// Looks up a symbol defined by the driver.
    pub fn symbol(&self, name: &str) -> Option<*mut c_void> {
        let cname = CString::new(name).ok()?;
        // SAFETY: handle is a live dlopen handle (closed only in Drop).
        let ptr = unsafe { libc::dlsym(self.handle, cname.as_ptr()) };
        (!ptr.is_null()).then_some(ptr)
    }

    /// The callbacks of `entry` (and its `driver_name`) that do not point
    /// into this object: code pointers must lie in an executable segment,
    /// the name in a loadable one. Their names, empty when all are inside.
    pub fn outside_object(&self, entry: &crate::abi::DrvEntry) -> Vec<&'static str> {
        let inside = |addr: usize, code: bool| {
            self.image.segments.iter().any(|&(vaddr, len, exec)| {
                let start = self.base.wrapping_add(vaddr as usize);
                (exec || !code) && addr >= start && addr < start.wrapping_add(len as usize)
            })
        };
        let mut bad: Vec<&'static str> = check::entry_callbacks(entry)
            .into_iter()
            .filter(|&(_, addr)| addr != 0 && !inside(addr, true))
            .map(|(name, _)| name)
            .collect();
        let name = entry.driver_name as usize;
        if name != 0 && !inside(name, false) {
            bad.push("driver_name");
        }
        bad
    }

    /// Binds every API import to our functions for drivers of `variant`.
    /// Fails, binding nothing, when any API import has no implementation
    /// for that variant.
    pub fn bind(&mut self, variant: AbiVariant) -> Result<(), LoadError> {
        let missing = unsupported_api(&self.image, variant);
        if !missing.is_empty() {
            return Err(LoadError::Unsupported(missing));
        }
        // SAFETY: the slots come from the object's own relocation tables
        // and lie inside its image mapped at `base` (kept by `handle`).
        self.patched_slots = unsafe { bind_slots(&self.image, self.base, variant)? };
        Ok(())
    }
}

impl Drop for BoundLibrary {
    fn drop(&mut self) {
        // SAFETY: handle came from dlopen and is closed exactly once here.
        unsafe {
            libc::dlclose(self.handle);
        }
    }
}

static COPY_SEQ: AtomicU64 = AtomicU64::new(0);

/// Directory of this VM's private driver copies.
fn private_dir() -> PathBuf {
    std::env::temp_dir().join(format!("erl_driver_compat-{}", std::process::id()))
}

/// Writes the private copy of the driver, with every erl_driver API import
/// made weak: the dynamic linker then leaves the ones nobody defines at 0
/// instead of refusing the object (drivers bound with `-z now` importing
/// functions the BEAM no longer exports), and we overwrite every slot of
/// them right after `dlopen` anyway.
fn private_copy(data: &[u8], image: &DriverImage, name: &str) -> Result<PathBuf, LoadError> {
    let dir = private_dir();
    std::fs::create_dir_all(&dir).map_err(|e| LoadError::Copy(e.to_string()))?;
    let seq = COPY_SEQ.fetch_add(1, Ordering::Relaxed);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let target = dir.join(format!("{safe}-{seq}.so"));
    let _ = std::fs::remove_file(&target);
    let mut copy = data.to_vec();
    hide_constructors(&mut copy);
    for (symbol, offset) in &image.undefined_info_offsets {
        if binding::is_api_name(symbol) {
            if let Some(info) = copy.get_mut(*offset) {
                *info = (object::elf::STB_WEAK << 4) | (*info & 0xf);
            }
        }
    }
    std::fs::write(&target, copy).map_err(|e| LoadError::Copy(e.to_string()))?;
    Ok(target)
}

/// A `d_tag` the dynamic linker ignores (in the OS-specific range, used
/// by no ABI): `DT_INIT` becomes it in the private copy.
const DT_HIDDEN: u64 = 0x6000_0f00;

/// The constructors of an object: `DT_INIT` and `.init_array` (addresses
/// relative to the load base, `.init_array` with its entry count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Constructors {
    init: Option<u64>,
    array: Option<(u64, usize)>,
}

fn constructors_of(data: &[u8]) -> Constructors {
    let dynamic = check::dynamic_entries(data);
    let value = |tag: u32| {
        dynamic
            .iter()
            .find(|(t, _, _)| *t == u64::from(tag))
            .map(|(_, v, _)| *v)
    };
    Constructors {
        init: value(object::elf::DT_INIT),
        array: value(object::elf::DT_INIT_ARRAY).map(|a| {
            let size = value(object::elf::DT_INIT_ARRAYSZ).unwrap_or(0) as usize;
            (a, size / std::mem::size_of::<usize>())
        }),
    }
}

/// Hides the constructors from the dynamic linker: `DT_INIT` gets a tag
/// it ignores and `DT_INIT_ARRAYSZ` becomes 0 (the array itself is still
/// relocated). [`run_constructors`] runs them after binding.
fn hide_constructors(copy: &mut [u8]) {
    for (tag, _, offset) in check::dynamic_entries(copy) {
        let field = if tag == u64::from(object::elf::DT_INIT) {
            Some((offset, DT_HIDDEN))
        } else if tag == u64::from(object::elf::DT_INIT_ARRAYSZ) {
            Some((offset + 8, 0))
        } else {
            None
        };
        if let Some((at, value)) = field {
            if let Some(bytes) = copy.get_mut(at..at + 8) {
                bytes.copy_from_slice(&value.to_le_bytes());
            }
        }
    }
}

/// Runs the constructors the private copy hid, in the dynamic linker's
/// order (`DT_INIT`, then `.init_array` in order), with the arguments it
/// passes (`argc`, `argv`, `envp`; no arguments are known here: 0, NULL,
/// the environment).
///
/// # Safety
/// `ctors` must describe the object mapped at `base`, relocated and bound,
/// whose constructors have not run.
unsafe fn run_constructors(ctors: Constructors, base: usize) {
    type Ctor = unsafe extern "C" fn(libc::c_int, *mut *mut libc::c_char, *mut *mut libc::c_char);
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: environ is libc's environment pointer, read once here.
    let env = unsafe { environ };
    let run = |addr: usize| {
        if addr == 0 || addr == usize::MAX {
            return;
        }
        // SAFETY: addr is a constructor of the object (from its dynamic
        // section or its relocated .init_array), a C function taking the
        // dynamic linker's (argc, argv, envp).
        let ctor: Ctor = unsafe { std::mem::transmute::<usize, Ctor>(addr) };
        // SAFETY: called once, as the dynamic linker would have, after the
        // object was relocated and its API imports bound.
        unsafe { ctor(0, std::ptr::null_mut(), env) };
    };
    if let Some(init) = ctors.init {
        run(base.wrapping_add(init as usize));
    }
    if let Some((array, count)) = ctors.array {
        for i in 0..count {
            let slot = base.wrapping_add(array as usize) + i * std::mem::size_of::<usize>();
            // SAFETY: the slot is an entry of the object's relocated
            // .init_array, mapped readable while the object is loaded.
            let addr = unsafe { std::ptr::read(slot as *const usize) };
            run(addr);
        }
    }
}

/// What [`inspect`] finds in a driver file.
#[derive(Debug)]
pub struct Inspection {
    /// The erl_driver API functions the driver imports, sorted.
    pub api_imports: Vec<String>,
    /// The imports we cannot provide: API functions we lack for 2.0+
    /// drivers ([`unsupported_api`]) and VM-only symbols
    /// ([`vm_only_imports`]).
    pub unsupported: Vec<String>,
    /// The file defines `driver_init`.
    pub has_driver_init: bool,
}

/// Reads a driver file without loading it: its API imports and which of
/// them we lack (the compatibility report).
pub fn inspect(path: &Path) -> Result<Inspection, LoadError> {
    let report = check::check_file(path)?;
    let mut unsupported: Vec<String> = report
        .api_imports
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.clone())
        .collect();
    unsupported.extend(
        report
            .other_imports
            .iter()
            .filter(|(_, p)| *p == check::Provider::VmOnly)
            .map(|(n, _)| n.clone()),
    );
    unsupported.sort();
    Ok(Inspection {
        unsupported,
        has_driver_init: report.has_driver_init,
        api_imports: report.api_imports.into_iter().map(|(n, _)| n).collect(),
    })
}

/// Opens a private copy of the driver file at `path`, unbound: the caller
/// calls `driver_init`, then [`BoundLibrary::bind`] with the variant of the
/// version the entry declares.
pub fn open(path: &Path, name: &str) -> Result<BoundLibrary, LoadError> {
    open_checked(path, name, true)
}

/// [`open`] without refusing what the report refuses (an entry's version
/// or imports): for unit tests of reading entries of any version.
#[cfg(test)]
pub(crate) fn open_unchecked(path: &Path, name: &str) -> Result<BoundLibrary, LoadError> {
    open_checked(path, name, false)
}

fn open_checked(path: &Path, name: &str, enforce: bool) -> Result<BoundLibrary, LoadError> {
    let data = std::fs::read(path).map_err(|e| LoadError::NotFound(e.to_string()))?;
    let image = elf::parse(&data).map_err(not_elf)?;
    let report = check::assess(&data, &image);
    if let check::Verdict::WillNotRun(problems) = &report.verdict {
        if enforce {
            return Err(refusal(problems));
        }
    }
    let ctors = constructors_of(&data);
    let copy = private_copy(&data, &image, name)?;
    let cpath = CString::new(copy.as_os_str().as_encoded_bytes())
        .map_err(|e| LoadError::Copy(e.to_string()))?;
    // SAFETY: dlopen of a regular file; RTLD_LAZY leaves PLT slots unbound so
    // that we can redirect them before any driver code calls through them.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    // The mapping stays valid after unlinking; the copy is not needed any more.
    let _ = std::fs::remove_file(&copy);
    if handle.is_null() {
        return Err(LoadError::OpenError(dl_error()));
    }
    let mut lib = BoundLibrary {
        handle,
        private_path: copy,
        patched_slots: 0,
        image,
        base: 0,
    };
    // SAFETY: `handle` is live (owned by `lib`).
    lib.base = unsafe { link_map_base(lib.handle) }
        .ok_or_else(|| LoadError::Bind("no link map for the driver".into()))?;
    if enforce || unsupported_api(&lib.image, report.variant).is_empty() {
        lib.bind(report.variant)?;
    }
    // SAFETY: ctors were read from the file this object was loaded from,
    // it is mapped at lib.base, relocated by dlopen and bound just above,
    // and the private copy hid these constructors from the dynamic linker.
    unsafe { run_constructors(ctors, lib.base) };
    Ok(lib)
}

/// True when every byte of `start..start+len` lies in a readable mapping of
/// this process (`/proc/self/maps`, adjacent mappings joined). Used before
/// reading a driver's entry, which may end right at the end of a mapping.
pub fn readable(start: usize, len: usize) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let mut covered = start;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        // Lines are sorted by address.
        if lo <= covered && covered < hi {
            if !perms.starts_with('r') {
                return false;
            }
            covered = hi;
            if covered >= end {
                return true;
            }
        }
    }
    covered >= end
}

fn dl_error() -> String {
    // SAFETY: dlerror takes no arguments and only reads this thread's
    // last dl* error.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: a non-NULL dlerror result is a NUL-terminated string,
        // valid until the next dl* call on this thread; it is copied here,
        // before any.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}
#[cfg(test)]
mod tests;
