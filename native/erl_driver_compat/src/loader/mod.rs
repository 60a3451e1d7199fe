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
//! Because binding follows `driver_init`, an API function called from
//! `driver_init` itself is not ours yet: it reaches the BEAM's own export of
//! that name (or crashes on a NULL weak import when the BEAM exports none).
//! Drivers normally only return their entry from `driver_init`; `init` and
//! every later callback run bound.
//!
//! An import that is not an `erl_driver` API name is left to the dynamic
//! linker when any loaded shared library provides it (libc's `stderr`,
//! `environ`, libm, ...), even when the BEAM exports it too; only symbols
//! that nothing but the VM defines are refused.

pub mod elf;

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::binding::{self, AbiVariant};
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

/// Symbols every shared object may import that play no part in binding.
const IGNORED_IMPORTS: &[&str] = &[
    "__gmon_start__",
    "_ITM_registerTMCloneTable",
    "_ITM_deregisterTMCloneTable",
    "__cxa_finalize",
    "_Jv_RegisterClasses",
];

/// The erl_driver API functions `image` imports that we lack for `variant`.
pub fn unsupported_api(image: &DriverImage, variant: AbiVariant) -> Vec<String> {
    let mut missing: Vec<String> = image
        .undefined
        .iter()
        .filter(|(name, _)| binding::is_api_name(name) && binding::lookup(name, variant).is_none())
        .map(|(name, _)| name.clone())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// The imports of `image` that are not API functions and that only the VM
/// (the main program) defines: BEAM internals a private driver object must
/// not call. See [`refused_as_vm_only`] for the rule.
pub fn vm_only_imports(image: &DriverImage) -> Vec<String> {
    let mut refused: Vec<String> = image
        .undefined
        .iter()
        .filter(|(name, weak)| {
            refused_as_vm_only(name, *weak, provided_by_main, provided_by_library)
        })
        .map(|(name, _)| name.clone())
        .collect();
    refused.sort();
    refused.dedup();
    refused
}

/// Whether a non-API import is refused: a strong import that the main
/// program provides and no loaded shared library does. A symbol a library
/// provides too (libc's `stderr`, `stdout`, `environ`, which beam.smp also
/// exports through copy relocations) is the library's, whoever wins the
/// lookup; an API name is never refused here (see [`unsupported_api`]).
fn refused_as_vm_only(
    name: &str,
    weak: bool,
    by_main: impl Fn(&str) -> bool,
    by_library: impl Fn(&str) -> bool,
) -> bool {
    !weak
        && !IGNORED_IMPORTS.contains(&name)
        && !binding::is_api_name(name)
        && by_main(name)
        && !by_library(name)
}

/// True when `name` resolves in the global scope to the main program (the
/// BEAM) rather than to a shared library.
fn provided_by_main(name: &str) -> bool {
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loader's global
    // symbol tables; cname is NUL-terminated and lives across the call.
    let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) };
    if addr.is_null() {
        return false;
    }
    match object_of(addr) {
        Some(info) if !info.dli_fname.is_null() => {
            main_program_base() == Some(info.dli_fbase as usize)
        }
        _ => false,
    }
}

/// What `dladdr` knows of the loaded object containing `addr`; `None`
/// when no loaded object contains it.
fn object_of(addr: *const c_void) -> Option<libc::Dl_info> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only looks `addr` up in the loader's tables (any
    // address is allowed, it is never dereferenced) and writes into `info`,
    // a live, writable Dl_info.
    let found = unsafe { libc::dladdr(addr, &mut info) } != 0;
    found.then_some(info)
}

/// True when a loaded shared object other than the main program defines
/// `name` (each object is asked with `dlopen(RTLD_NOLOAD)` + `dlsym`, and
/// the definition found must not lie in the main program).
fn provided_by_library(name: &str) -> bool {
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    let main = main_program_base();
    loaded_objects().iter().any(|object| {
        // SAFETY: object is a NUL-terminated name; with RTLD_NOLOAD dlopen
        // never loads anything (no constructor runs): it only returns a
        // handle to an object already loaded, adding a reference that the
        // dlclose below drops.
        let handle = unsafe { libc::dlopen(object.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if handle.is_null() {
            return false;
        }
        // SAFETY: handle is live (closed below); dlsym only reads the
        // object's symbol table; cname is NUL-terminated.
        let addr = unsafe { libc::dlsym(handle, cname.as_ptr()) };
        let found = !addr.is_null()
            && object_of(addr).is_some_and(|info| Some(info.dli_fbase as usize) != main);
        // SAFETY: handle came from the dlopen above and is closed exactly
        // once; it drops only the reference that dlopen added, so the
        // object (loaded before) stays loaded.
        unsafe { libc::dlclose(handle) };
        found
    })
}

/// File names of the loaded shared objects, main program excluded (it is
/// the first object and has an empty name).
fn loaded_objects() -> Vec<CString> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut names` passed to dl_iterate_phdr
        // below: a live Vec<CString> borrowed by nothing else while the
        // iteration runs.
        let names = unsafe { &mut *data.cast::<Vec<CString>>() };
        // SAFETY: dl_iterate_phdr passes an `info` valid (readable, aligned)
        // for the duration of the callback.
        let name = unsafe { (*info).dlpi_name };
        if !name.is_null() {
            // SAFETY: a non-NULL dlpi_name is a NUL-terminated string owned
            // by the loader, valid during the callback; it is copied below.
            let name = unsafe { CStr::from_ptr(name) };
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
        0
    }
    let mut names: Vec<CString> = Vec::new();
    // SAFETY: the callback only appends to `names`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), (&mut names as *mut Vec<CString>).cast());
    }
    names
}

/// Load address of the main program (beam.smp inside the VM).
fn main_program_base() -> Option<usize> {
    // SAFETY: dlopen(NULL) loads nothing: it returns a new reference to
    // the main program's handle.
    let main = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) };
    if main.is_null() {
        return None;
    }
    // SAFETY: main is a live dlopen handle (closed just below).
    let base = unsafe { link_map_base(main) };
    // SAFETY: main came from the dlopen above and is closed exactly once;
    // the main program itself is never unloaded.
    unsafe { libc::dlclose(main) };
    // The main program's link_map l_addr is 0 for non-PIE executables, so
    // ask dladdr about a symbol of it instead when possible.
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loader's global
    // symbol tables; the name is a NUL-terminated literal.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"enif_alloc".as_ptr()) };
    if !sym.is_null() {
        if let Some(info) = object_of(sym) {
            return Some(info.dli_fbase as usize);
        }
    }
    base
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
    // SAFETY: handle is a live dlopen handle (caller's contract);
    // RTLD_DI_LINKMAP writes one `struct link_map *` into `map`, a live,
    // writable pointer-sized local.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&mut map as *mut *mut LinkMap).cast(),
        )
    };
    // SAFETY: on success `map` points at the loader's link_map of the
    // object, which lives as long as the handle (live for this call); its
    // first field is l_addr, an aligned ElfW(Addr) (usize).
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
        if binding::is_api_name(symbol) {
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
    let data = std::fs::read(path).map_err(|e| LoadError::NotFound(e.to_string()))?;
    let image = elf::parse(&data).map_err(|e| match e {
        ElfError::NotElf => LoadError::NotElf("not an ELF file".into()),
        ElfError::WrongKind(s) | ElfError::Malformed(s) => LoadError::NotElf(s),
    })?;
    let mut api_imports: Vec<String> = image
        .undefined
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| binding::is_api_name(name))
        .collect();
    api_imports.sort();
    api_imports.dedup();
    // Without loading, the declared version is unknown: report for 2.0+.
    let mut unsupported = unsupported_api(&image, AbiVariant::SizeT);
    unsupported.extend(vm_only_imports(&image));
    unsupported.sort();
    Ok(Inspection {
        unsupported,
        has_driver_init: image.defined.iter().any(|s| s == "driver_init"),
        api_imports,
    })
}

/// Opens a private copy of the driver file at `path`, unbound: the caller
/// calls `driver_init`, then [`BoundLibrary::bind`] with the variant of the
/// version the entry declares.
pub fn open(path: &Path, name: &str) -> Result<BoundLibrary, LoadError> {
    let data = std::fs::read(path).map_err(|e| LoadError::NotFound(e.to_string()))?;
    let image = elf::parse(&data).map_err(|e| match e {
        ElfError::NotElf => LoadError::NotElf("not an ELF file".into()),
        ElfError::WrongKind(s) | ElfError::Malformed(s) => LoadError::NotElf(s),
    })?;
    if !image.defined.iter().any(|s| s == "driver_init") {
        return Err(LoadError::NoDriverInit);
    }
    let refused = vm_only_imports(&image);
    if !refused.is_empty() {
        return Err(LoadError::Unsupported(refused));
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
        image,
        base: 0,
    };
    // SAFETY: `handle` is live (owned by `lib`).
    lib.base = unsafe { link_map_base(lib.handle) }
        .ok_or_else(|| LoadError::Bind("no link map for the driver".into()))?;
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

/// Rewrites every slot of `image` (loaded at `base`) that refers to an API
/// symbol with our function for `variant`. Returns how many slots were
/// written.
///
/// # Safety
/// `image` must describe the object mapped at `base`.
unsafe fn bind_slots(
    image: &DriverImage,
    base: usize,
    variant: AbiVariant,
) -> Result<usize, LoadError> {
    let page = page_size();
    let mut written = 0;
    for slot in &image.slots {
        let Some(target) = binding::lookup(&slot.symbol, variant) else {
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
            // SAFETY: page_start..page_start+span is the same range of the
            // driver's image made writable above; this restores the
            // read-only protection the loader gave its RELRO segment.
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
        extern long driver_attach(void);
        long use_attach(void) { return driver_attach(); }
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

    /// `open` + `bind` for a 2.0+ driver, as `driver::load` does after
    /// `driver_init`.
    fn load(path: &Path, name: &str) -> Result<BoundLibrary, LoadError> {
        let mut lib = open(path, name)?;
        lib.bind(AbiVariant::SizeT)?;
        Ok(lib)
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
        let so = build(&dir, "attach_drv", &["-DUNSUPPORTED"]);
        assert_eq!(
            load(&so, "attach_drv").unwrap_err(),
            LoadError::Unsupported(vec!["driver_attach".into()])
        );
        let report = inspect(&so).unwrap();
        assert_eq!(report.api_imports, vec!["driver_attach", "driver_output"]);
        assert!(report.has_driver_init);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Binding is chosen by the declared version: no `int`-variant (pre-2.0)
    /// functions exist yet, so such a driver's API imports are all
    /// unsupported and nothing is patched; the same object binds as 2.0+.
    #[test]
    fn binds_by_abi_variant() {
        let dir = temp_dir("variant");
        let so = build(&dir, "variant_drv", &[]);
        let mut lib = open(&so, "variant_drv").unwrap();
        assert_eq!(
            lib.bind(AbiVariant::Int).unwrap_err(),
            LoadError::Unsupported(vec!["driver_output".into()])
        );
        assert_eq!(lib.patched_slots, 0);
        lib.bind(AbiVariant::SizeT).unwrap();
        assert!(lib.patched_slots >= 1);
        assert_eq!(call(&lib, "call_direct"), -1);
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

    /// The A1 rule: a non-API import that the main program exports is
    /// refused only when no shared library provides it too; weak imports,
    /// API names and the ignored start-up symbols never are.
    #[test]
    fn only_symbols_nothing_but_the_vm_provides_are_refused() {
        let main = |n: &str| matches!(n, "stderr" | "environ" | "erts_internal" | "driver_output");
        let lib = |n: &str| matches!(n, "stderr" | "environ" | "malloc");
        assert!(!refused_as_vm_only("stderr", false, main, lib));
        assert!(!refused_as_vm_only("environ", false, main, lib));
        assert!(!refused_as_vm_only("malloc", false, main, lib));
        assert!(!refused_as_vm_only("nobody_has_it", false, main, lib));
        assert!(refused_as_vm_only("erts_internal", false, main, lib));
        assert!(!refused_as_vm_only("erts_internal", true, main, lib));
        assert!(!refused_as_vm_only("driver_output", false, main, lib));
        assert!(!refused_as_vm_only(
            "__gmon_start__",
            false,
            |_| true,
            |_| false
        ));
    }

    /// libc's data symbols are found in a loaded library (libc), whatever
    /// the main program exports; a made-up name is not.
    #[test]
    fn libc_data_symbols_are_provided_by_a_library() {
        for name in [
            "stderr",
            "stdout",
            "stdin",
            "environ",
            "__errno_location",
            "cos",
        ] {
            if name == "cos"
                && !loaded_objects()
                    .iter()
                    .any(|o| o.to_string_lossy().contains("libm"))
            {
                continue;
            }
            assert!(provided_by_library(name), "{name}");
        }
        assert!(!provided_by_library("edc_no_such_symbol_anywhere"));
    }

    /// A driver using `stderr`, `stdout` and `environ` opens and binds.
    #[test]
    fn drivers_using_libc_data_symbols_load() {
        let dir = temp_dir("libc");
        let src = dir.join("libc_drv.c");
        std::fs::write(
            &src,
            r#"
            #include <stdio.h>
            #include <errno.h>
            extern char **environ;
            typedef void *ErlDrvPort;
            extern int driver_output(ErlDrvPort, char *, unsigned long);
            int call_direct(void) {
                fprintf(stderr, "%d", errno); fflush(stdout);
                return environ ? driver_output((ErlDrvPort)0x1, "x", 1) : 0;
            }
            void *driver_init(void) { return 0; }
            "#,
        )
        .unwrap();
        let so = dir.join("libc_drv.so");
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success());
        let data = std::fs::read(&so).unwrap();
        let image = elf::parse(&data).unwrap();
        assert!(image.undefined.iter().any(|(n, _)| n == "stderr"));
        assert_eq!(vm_only_imports(&image), Vec::<String>::new());
        let lib = load(&so, "libc_drv").unwrap();
        assert_eq!(call(&lib, "call_direct"), -1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `readable` accepts a live buffer and refuses a range running into an
    /// unmapped page.
    #[test]
    fn readable_stops_at_the_end_of_a_mapping() {
        let page = page_size();
        // SAFETY: a NULL hint lets the kernel choose a fresh anonymous
        // mapping of two pages, which overlaps nothing of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // The second page is unmapped again, so the first ends right
        // before a hole (page arithmetic on the address: no pointer use).
        let second = (p as usize + page) as *mut c_void;
        // SAFETY: second..second+page is the second page of the mapping
        // made above, which nothing refers to.
        assert_eq!(unsafe { libc::munmap(second, page) }, 0);
        let end = p as usize + page;
        assert!(readable(end - 168, 168));
        assert!(!readable(end - 168, 176));
        assert!(!readable(end, 1));
        // SAFETY: p..p+page is the first page of the mapping made above,
        // still mapped and no longer used.
        unsafe { libc::munmap(p, page) };
        let buf = [0u8; 64];
        assert!(readable(buf.as_ptr() as usize, buf.len()));
        assert!(!readable(usize::MAX - 4, 8));
    }
}
