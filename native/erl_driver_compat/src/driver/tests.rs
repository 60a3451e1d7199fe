//! Unit tests of reading a driver's entry (fixtures built from
//! test/fixtures/fx_short_entry.c).

use super::*;

/// Builds test/fixtures/fx_short_entry.c with `flags`, opens it as the
/// loader does and calls its `driver_init`.
fn short_entry(name: &str, flags: &[&str]) -> (BoundLibrary, *const u8) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("edc-driver-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let so = dir.join(format!("{name}.so"));
    let status = std::process::Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(root.join("priv/include"))
        .arg(format!("-DFX_NAME={name}"))
        .args(flags)
        .arg("-o")
        .arg(&so)
        .arg(root.join("test/fixtures/fx_short_entry.c"))
        .status()
        .expect("a C compiler (cc) is needed for the driver tests");
    assert!(status.success());
    let lib = loader::open_unchecked(&so, name).unwrap();
    let _ = std::fs::remove_file(&so);
    let init = lib.symbol("driver_init").unwrap();
    // SAFETY: init is the address of the fixture's
    // `ErlDrvEntry *driver_init(void)`; function and data pointers have
    // the same representation here.
    let driver_init = unsafe {
        std::mem::transmute::<*mut std::ffi::c_void, unsafe extern "C" fn() -> *const u8>(init)
    };
    // SAFETY: the call matches the fixture's C signature; `lib` keeps
    // its code mapped, and it returns its static entry calling no API
    // function.
    let entry = unsafe { driver_init() };
    assert!(!entry.is_null());
    (lib, entry)
}

/// A 3.1 entry is 168 bytes. The word after it is garbage: reading the
/// entry as a 176-byte struct (what `Driver::entry` did) sees a bogus
/// `emergency_close`; our copy has none, and its 3.1 fields are right.
#[test]
fn a_3_1_entry_is_copied_without_the_garbage_after_it() {
    let (_lib, ptr) = short_entry("short31", &[]);
    let past_end = std::mem::offset_of!(DrvEntry, emergency_close);
    // SAFETY: the fixture's static data object (entry then a guard
    // word) continues past the 3.1 entry, so ptr + past_end is inside it.
    let at = unsafe { ptr.add(past_end) };
    // SAFETY: at is the fixture's guard word, readable while `_lib`
    // keeps the library mapped; read_unaligned needs no alignment.
    let garbage = unsafe { std::ptr::read_unaligned(at.cast::<usize>()) };
    assert_eq!(garbage, 0x5a5a_5a5a_5a5a_5a5a);
    let entry = read_entry(ptr).unwrap();
    assert!(entry.emergency_close.is_none());
    assert!(entry.stop_select.is_none());
    assert!(entry.start.is_some() && entry.output.is_some());
    assert_eq!((entry.major_version, entry.minor_version), (3, 1));
    // SAFETY: driver_name points at a NUL-terminated literal in the
    // fixture's read-only data, mapped while `_lib` lives.
    let name = unsafe { CStr::from_ptr(entry.driver_name) };
    assert_eq!(name.to_str(), Ok("short31"));
}

/// Entries that end exactly where their mapping ends: 168 bytes (3.1)
/// and 160 bytes (1.2) are copied without touching the unmapped page
/// after them (reading 176 bytes would fault); a marker-less 128-byte
/// entry (no readable marker) is read as the 128 bytes it has, and runs.
#[test]
fn entries_at_the_end_of_a_mapping_are_read_within_bounds() {
    let (_lib, ptr) = short_entry("short31_mapend", &["-DFX_MAP_END"]);
    assert!(loader::readable(ptr as usize, 168));
    assert!(!loader::readable(ptr as usize, 176));
    let entry = read_entry(ptr).unwrap();
    assert_eq!((entry.major_version, entry.minor_version), (3, 1));
    assert!(entry.emergency_close.is_none() && entry.start.is_some());

    let (_lib, ptr) = short_entry("short12", &["-DFX_MAJOR=1", "-DFX_MINOR=2", "-DFX_MAP_END"]);
    assert!(!loader::readable(ptr as usize, 168));
    let entry = read_entry(ptr).unwrap();
    assert_eq!((entry.major_version, entry.minor_version), (1, 2));
    assert!(entry.stop_select.is_none() && entry.process_exit.is_none());

    let (_lib, ptr) = short_entry(
        "short_nomarker",
        &["-DFX_MARKER=0", "-DFX_MAP_END", "-DFX_COPY=128"],
    );
    assert!(!loader::readable(ptr as usize, 132));
    let entry = read_entry(ptr).unwrap();
    assert_eq!(entry.extended_marker, 0);
    assert!(entry.start.is_some());
    assert!(supported_version(&entry));
}

/// The version table (spec/ABI_VERSIONS.md §6, plus the legacy ones we
/// run): 1.0–1.5, 2.x, 3.0–3.3 with the marker; marker-less only with the
/// 1.x fields zero.
#[test]
fn supported_versions() {
    // SAFETY: DrvEntry is plain data: all-zero is every callback None,
    // every pointer NULL and every number 0.
    let zero: DrvEntry = unsafe { std::mem::zeroed() };
    let ext = |major, minor| DrvEntry {
        extended_marker: abi::EXTENDED_MARKER,
        major_version: major,
        minor_version: minor,
        ..zero
    };
    for (major, minor) in [(1, 0), (1, 5), (2, 0), (2, 9), (3, 0), (3, 3)] {
        assert!(supported_version(&ext(major, minor)), "{major}.{minor}");
    }
    for (major, minor) in [(0, 0), (1, 6), (1, -1), (3, 4), (4, 0), (-1, 0)] {
        assert!(!supported_version(&ext(major, minor)), "{major}.{minor}");
    }
    assert!(supported_version(&zero));
    assert!(!supported_version(&DrvEntry {
        driver_flags: 1,
        ..zero
    }));
    assert!(!supported_version(&DrvEntry {
        major_version: 3,
        ..zero
    }));
    assert!(!supported_version(&DrvEntry {
        extended_marker: 0x1234,
        ..zero
    }));
}

/// A marker-less entry whose following words (where 1.x has the version,
/// flags, handle2 and process_exit) are readable and not 0 is refused, as
/// R11B-4…R14B04 refused it: here a 3.3 entry that left the marker 0.
#[test]
fn marker_less_entry_with_version_words_is_refused() {
    let (_lib, ptr) = short_entry("short_nomarker33", &["-DFX_MARKER=0"]);
    assert!(loader::readable(ptr as usize, 160));
    assert_eq!(
        read_entry(ptr).err(),
        Some(DriverError::IncorrectVersion {
            extended: false,
            major: 0,
            minor: 0
        })
    );
}
