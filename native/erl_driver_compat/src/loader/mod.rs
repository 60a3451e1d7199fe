//! Loads a driver `.so` privately and binds its `erl_driver` imports to our
//! implementation (DESIGN.md "Binding a driver's calls").
//!
//! Steps: parse the ELF file, classify every undefined symbol, copy the file
//! to a private path (so `erl_ddll` and we never share one object), `dlopen`
//! it lazily and locally, then rewrite each slot that holds an API symbol's
//! address to point at our function, lifting RELRO protection while writing.

pub mod elf;

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api;
use elf::{DriverImage, ElfError, SlotKind};

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
}

/// A driver object opened and bound to our API.
#[derive(Debug)]
pub struct BoundLibrary {
    handle: *mut c_void,
    /// Private copy the object was opened from (already unlinked).
    pub private_path: PathBuf,
    /// Number of slots redirected to our functions.
    pub patched_slots: usize,
}

// SAFETY: the handle is only an opaque token for dlsym/dlclose, which are
// thread-safe.
unsafe impl Send for BoundLibrary {}
// SAFETY: as above; no interior state is touched through a shared reference.
unsafe impl Sync for BoundLibrary {}

impl BoundLibrary {
    /// Looks up a symbol defined by the driver.
    pub fn symbol(&self, name: &str) -> Option<*mut c_void> {
        let cname = CString::new(name).ok()?;
        // SAFETY: handle is a live dlopen handle (closed only in Drop).
        let ptr = unsafe { libc::dlsym(self.handle, cname.as_ptr()) };
        (!ptr.is_null()).then_some(ptr)
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

/// Symbols every shared object may import that play no part in binding.
const IGNORED_IMPORTS: &[&str] = &[
    "__gmon_start__",
    "_ITM_registerTMCloneTable",
    "_ITM_deregisterTMCloneTable",
    "__cxa_finalize",
    "_Jv_RegisterClasses",
];

/// Finds the API functions (and BEAM internals) `image` needs that we lack.
pub fn unsupported_imports(image: &DriverImage) -> Vec<String> {
    let mut missing: Vec<String> = image
        .undefined
        .iter()
        .filter(|(name, weak)| {
            if IGNORED_IMPORTS.contains(&name.as_str()) {
                return false;
            }
            if api::is_api_name(name) {
                return api::lookup(name).is_none();
            }
            !weak && provided_by_beam_only(name)
        })
        .map(|(name, _)| name.clone())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// True when `name` resolves in the global scope to the main program (the
/// BEAM) rather than to a shared library: such a symbol is a VM internal
/// that a private driver object must not call.
fn provided_by_beam_only(name: &str) -> bool {
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    // SAFETY: dlsym/dladdr read global linker state; cname is NUL-terminated.
    unsafe {
        let addr = libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr());
        if addr.is_null() {
            return false;
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return false;
        }
        main_program_base() == Some(info.dli_fbase as usize)
    }
}

/// Load address of the main program (beam.smp inside the VM).
fn main_program_base() -> Option<usize> {
    // SAFETY: dlopen(NULL) returns the main program's handle; dlinfo writes
    // a link_map pointer into `map`.
    unsafe {
        let main = libc::dlopen(std::ptr::null(), libc::RTLD_LAZY);
        if main.is_null() {
            return None;
        }
        let base = link_map_base(main);
        libc::dlclose(main);
        let mut info: libc::Dl_info = std::mem::zeroed();
        // The main program's link_map l_addr is 0 for non-PIE executables, so
        // ask dladdr about a symbol of it instead when possible.
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"enif_alloc".as_ptr());
        if !sym.is_null() && libc::dladdr(sym, &mut info) != 0 {
            return Some(info.dli_fbase as usize);
        }
        base
    }
}

/// `l_addr` of a dlopen handle's link map: the image's load bias.
///
/// # Safety
/// `handle` must be a live handle returned by `dlopen`.
unsafe fn link_map_base(handle: *mut c_void) -> Option<usize> {
    #[repr(C)]
    struct LinkMap {
        l_addr: usize,
    }
    let mut map: *mut LinkMap = std::ptr::null_mut();
    // SAFETY: RTLD_DI_LINKMAP writes a `struct link_map *` into `map`.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&mut map as *mut *mut LinkMap).cast(),
        )
    };
    // SAFETY: on success `map` points at the loader's link_map, whose first
    // field is l_addr.
    (rc == 0 && !map.is_null()).then(|| unsafe { (*map).l_addr })
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
    for (symbol, offset) in &image.undefined_info_offsets {
        if api::is_api_name(symbol) {
            if let Some(info) = copy.get_mut(*offset) {
                *info = (object::elf::STB_WEAK << 4) | (*info & 0xf);
            }
        }
    }
    std::fs::write(&target, copy).map_err(|e| LoadError::Copy(e.to_string()))?;
    Ok(target)
}

/// What [`inspect`] finds in a driver file.
#[derive(Debug)]
pub struct Inspection {
    /// The erl_driver API functions the driver imports, sorted.
    pub api_imports: Vec<String>,
    /// The imports we cannot provide (see [`unsupported_imports`]).
    pub unsupported: Vec<String>,
    /// The file defines `driver_init`.
    pub has_driver_init: bool,
}

/// Reads a driver file without loading it: its API imports and which of
/// them we lack (the compatibility report).
pub fn inspect(path: &Path) -> Result<Inspection, LoadError> {
    let data = std::fs::read(path).map_err(|e| LoadError::NotFound(e.to_string()))?;
    let image = elf::parse(&data).map_err(|e| match e {
        ElfError::NotElf => LoadError::NotElf("not an ELF file".into()),
        ElfError::WrongKind(s) | ElfError::Malformed(s) => LoadError::NotElf(s),
    })?;
    let mut api_imports: Vec<String> = image
        .undefined
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| api::is_api_name(name))
        .collect();
    api_imports.sort();
    api_imports.dedup();
    Ok(Inspection {
        unsupported: unsupported_imports(&image),
        has_driver_init: image.defined.iter().any(|s| s == "driver_init"),
        api_imports,
    })
}

/// Opens the driver file at `path` and binds its API imports to us.
pub fn load(path: &Path, name: &str) -> Result<BoundLibrary, LoadError> {
    let data = std::fs::read(path).map_err(|e| LoadError::NotFound(e.to_string()))?;
    let image = elf::parse(&data).map_err(|e| match e {
        ElfError::NotElf => LoadError::NotElf("not an ELF file".into()),
        ElfError::WrongKind(s) | ElfError::Malformed(s) => LoadError::NotElf(s),
    })?;
    if !image.defined.iter().any(|s| s == "driver_init") {
        return Err(LoadError::NoDriverInit);
    }
    let missing = unsupported_imports(&image);
    if !missing.is_empty() {
        return Err(LoadError::Unsupported(missing));
    }
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
    };
    // SAFETY: `handle` is live (owned by `lib`).
    let base = unsafe { link_map_base(lib.handle) }
        .ok_or_else(|| LoadError::Bind("no link map for the driver".into()))?;
    // SAFETY: the slots come from the object's own relocation tables and lie
    // inside its mapped image at `base`.
    lib.patched_slots = unsafe { bind_slots(&image, base)? };
    Ok(lib)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated thread-local string.
    unsafe {
        let msg = libc::dlerror();
        if msg.is_null() {
            "unknown dlopen error".into()
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        }
    }
}

/// Rewrites every slot of `image` (loaded at `base`) that refers to an API
/// symbol. Returns how many slots were written.
///
/// # Safety
/// `image` must describe the object mapped at `base`.
unsafe fn bind_slots(image: &DriverImage, base: usize) -> Result<usize, LoadError> {
    let page = page_size();
    let mut written = 0;
    for slot in &image.slots {
        let Some(target) = api::lookup(&slot.symbol) else {
            continue;
        };
        let value = match slot.kind {
            SlotKind::Address => target as usize,
            SlotKind::AddressPlusAddend(addend) => (target as usize).wrapping_add(addend as usize),
        };
        let addr = base + slot.offset as usize;
        let in_relro = image
            .relro
            .iter()
            .any(|r| slot.offset >= r.offset && slot.offset < r.offset + r.len);
        let page_start = addr & !(page - 1);
        let span = addr + std::mem::size_of::<usize>() - page_start;
        if in_relro {
            // SAFETY: the page belongs to the driver's image; we restore the
            // read-only protection right after writing.
            let rc = unsafe {
                libc::mprotect(
                    page_start as *mut c_void,
                    span,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return Err(LoadError::Bind(format!(
                    "mprotect: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        // SAFETY: `addr` is a pointer-sized, pointer-aligned relocation slot
        // of the mapped image and is now writable.
        unsafe { std::ptr::write_volatile(addr as *mut usize, value) };
        if in_relro {
            // SAFETY: as above, restores the loader's protection.
            unsafe { libc::mprotect(page_start as *mut c_void, span, libc::PROT_READ) };
        }
        written += 1;
    }
    Ok(written)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver-like object that calls `driver_output` directly, through a
    /// function pointer stored in data (an `R_X86_64_64` relocation), and
    /// imports an API function we do not implement when asked to.
    const SOURCE: &str = r#"
        typedef void *ErlDrvPort;
        extern int driver_output(ErlDrvPort, char *, unsigned long);
        static int (*table[1])(ErlDrvPort, char *, unsigned long) = { driver_output };
        int call_direct(void) { return driver_output((ErlDrvPort)0x1, "x", 1); }
        int call_table(void) { return table[0]((ErlDrvPort)0x1, "x", 1); }
        void *driver_init(void) { return 0; }
        #ifdef UNSUPPORTED
        extern long driver_async(void);
        long use_async(void) { return driver_async(); }
        #endif
    "#;

    fn build(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, SOURCE).unwrap();
        let so = dir.join(format!("{name}.so"));
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&src)
            .args(flags)
            .status()
            .expect("a C compiler (cc) is needed for the loader tests");
        assert!(status.success());
        so
    }

    fn call(lib: &BoundLibrary, name: &str) -> i32 {
        let f = lib.symbol(name).unwrap();
        // SAFETY: the test object defines these as `int f(void)`.
        unsafe { std::mem::transmute::<*mut c_void, extern "C" fn() -> i32>(f)() }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("edc-loader-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Unpatched, `driver_output` would not resolve at all in the test
    /// binary (calling it would abort); patched, it reaches our function,
    /// which rejects the made-up port handle with -1.
    fn assert_bound(flags: &[&str], tag: &str) {
        let dir = temp_dir(tag);
        let so = build(&dir, "bind_drv", flags);
        let lib = load(&so, "bind_drv").unwrap();
        assert!(lib.patched_slots >= 1, "{tag}: {} slots", lib.patched_slots);
        assert_eq!(call(&lib, "call_direct"), -1);
        assert_eq!(call(&lib, "call_table"), -1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn binds_lazy_plt_slots_and_data_pointers() {
        assert_bound(&[], "lazy");
    }

    #[test]
    fn binds_relro_slots_of_now_bound_objects() {
        assert_bound(&["-Wl,-z,now", "-Wl,-z,relro"], "now");
    }

    #[test]
    fn binds_got_slots_without_plt() {
        assert_bound(&["-fno-plt", "-Wl,-z,now"], "noplt");
    }

    #[test]
    fn refuses_unsupported_imports_by_name() {
        let dir = temp_dir("unsupported");
        let so = build(&dir, "async_drv", &["-DUNSUPPORTED"]);
        assert_eq!(
            load(&so, "async_drv").unwrap_err(),
            LoadError::Unsupported(vec!["driver_async".into()])
        );
        let report = inspect(&so).unwrap();
        assert_eq!(report.api_imports, vec!["driver_async", "driver_output"]);
        assert!(report.has_driver_init);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reports_missing_and_non_elf_files() {
        let dir = temp_dir("bad");
        assert!(matches!(
            load(&dir.join("nope.so"), "nope"),
            Err(LoadError::NotFound(_))
        ));
        let text = dir.join("text.so");
        std::fs::write(&text, "not a shared object").unwrap();
        assert!(matches!(load(&text, "text"), Err(LoadError::NotElf(_))));
        let _ = std::fs::remove_dir_all(dir);
    }
}
