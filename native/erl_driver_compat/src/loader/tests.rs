//! Unit tests of the loader: binding a compiled driver-like object
//! (direct calls and function pointers in data), refusing imports we
//! cannot provide, the symbol classification and `readable`.

use super::patch::page_size;
use super::symbols::{loaded_objects, provided_by_library, refused_as_vm_only};
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
        void *table_entry(void) { return (void *)table[0]; }
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
    let dir = std::env::temp_dir().join(format!("edc-loader-test-{}-{tag}", std::process::id()));
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

/// Binding is chosen by the declared version: the same object's
/// `driver_output` is bound to the `int` shim for a pre-2.0 driver and to
/// the `ErlDrvSizeT` function for a 2.0+ one.
#[test]
fn binds_by_abi_variant() {
    let dir = temp_dir("variant");
    let so = build(&dir, "variant_drv", &[]);
    for variant in [AbiVariant::Int, AbiVariant::SizeT] {
        let mut lib = open(&so, "variant_drv").unwrap();
        lib.bind(variant).unwrap();
        assert!(lib.patched_slots >= 1);
        let f = lib.symbol("table_entry").unwrap();
        // SAFETY: the test object defines it as `void *table_entry(void)`.
        let entry =
            unsafe { std::mem::transmute::<*mut c_void, extern "C" fn() -> *const ()>(f)() };
        assert_eq!(Some(entry), binding::lookup("driver_output", variant));
        assert_eq!(call(&lib, "call_direct"), -1);
    }
    assert_ne!(
        binding::lookup("driver_output", AbiVariant::Int),
        binding::lookup("driver_output", AbiVariant::SizeT)
    );
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

/// A constructor that calls the API reaches our function: `open` hides
/// the object's constructors from the dynamic linker, binds, then runs
/// them. Without that, the weak `driver_output` import is NULL in the
/// test binary and the constructor crashes the test process.
#[test]
fn constructors_run_after_binding() {
    let dir = temp_dir("ctor");
    let src = dir.join("ctor_drv.c");
    std::fs::write(
        &src,
        r#"
        typedef void *ErlDrvPort;
        extern int driver_output(ErlDrvPort, char *, unsigned long);
        static int seen = 12345, order = 0, first = 0, second = 0;
        __attribute__((constructor(101))) static void one(void) {
            first = ++order;
            seen = driver_output((ErlDrvPort)0x1, "x", 1);
        }
        __attribute__((constructor(102))) static void two(void) { second = ++order; }
        int ctor_seen(void) { return seen; }
        int ctor_order(void) { return first * 10 + second; }
        void *driver_init(void) { return 0; }
    "#,
    )
    .unwrap();
    let so = dir.join("ctor_drv.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let data = std::fs::read(&so).unwrap();
    let (_, array) = check::constructors(&data);
    assert!(array >= 2, "{array} .init_array entries");
    let lib = open(&so, "ctor_drv").unwrap();
    assert_eq!(call(&lib, "ctor_seen"), -1);
    assert_eq!(call(&lib, "ctor_order"), 12);
    let _ = std::fs::remove_dir_all(dir);
}

/// The report finds the entry of a driver statically (version, flags,
/// name) and decides the verdict `open` applies.
#[test]
fn check_finds_the_entry_and_decides() {
    let dir = temp_dir("check");
    let src = dir.join("chk_drv.c");
    std::fs::write(
        &src,
        r#"
        #include <stddef.h>
        typedef struct { void *slots[16]; int marker, major, minor, flags;
                         void *h2, *pe, *ss, *ec; } Entry;
        static void stop(void *d) { (void)d; }
        static Entry entry = { { NULL, NULL, (void *)stop, NULL, NULL, NULL,
                                 (void *)"chk_drv" },
                               (int)0xfeeeeeed, MAJOR, 3, 1 };
        void *driver_init(void) { return &entry; }
    "#,
    )
    .unwrap();
    let compile = |major: &str, out: &str| {
        let so = dir.join(out);
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", &format!("-DMAJOR={major}"), "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success());
        so
    };
    let ok = check::check_file(&compile("3", "chk_drv.so")).unwrap();
    assert_eq!(
        ok.entry,
        check::EntryFinding::Found(check::StaticEntry {
            vaddr: match &ok.entry {
                check::EntryFinding::Found(e) => e.vaddr,
                _ => 0,
            },
            major: 3,
            minor: 3,
            flags: 1,
            name: Some("chk_drv".into()),
        })
    );
    assert_eq!(ok.verdict, check::Verdict::WillRun);
    let newer = compile("4", "chk4_drv.so");
    let report = check::check_file(&newer).unwrap();
    assert!(matches!(
        &report.verdict,
        check::Verdict::WillNotRun(p) if matches!(&p[..], [check::Problem::Version(t)] if t.contains("4.3"))
    ));
    assert!(matches!(
        open(&newer, "chk4_drv"),
        Err(LoadError::Version(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}
