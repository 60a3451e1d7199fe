//! Classifying a driver's imports: the erl_driver API functions we lack
//! for an ABI variant ([`unsupported_api`]) and the non-API imports only
//! the VM defines ([`vm_only_imports`]), found by asking the dynamic
//! linker (`dlsym`, `dladdr`, `dl_iterate_phdr`) which loaded object
//! provides a name. Also the load bias of a `dlopen` handle.

use std::ffi::{c_void, CStr, CString};

use super::elf::DriverImage;
use crate::binding::{self, AbiVariant};

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
pub(super) fn refused_as_vm_only(
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
pub(super) fn provided_by_library(name: &str) -> bool {
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
pub(super) fn loaded_objects() -> Vec<CString> {
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
pub(super) unsafe fn link_map_base(handle: *mut c_void) -> Option<usize> {
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
