//! The compatibility report of a driver file, and THE decision whether a
//! driver can run: [`assess`] is what `erl_driver_compat:check/1` prints
//! and what [`super::open`] refuses a driver with, so both always agree.
//! The declared interface version is decided by [`version_problem`], used
//! by the report (on the entry found statically) and by `driver::load`
//! (on the entry `driver_init` returned).
//!
//! Nothing here runs driver code. The declared version and locking mode
//! live in the `ErlDrvEntry` that `driver_init` returns; we find it
//! statically: a static entry is initialised data, so its
//! `extended_marker` (`0xfeeeeeed`) is in the file at offset 128 of the
//! structure, followed by the major and minor version and the flags.
//! Exactly one such marker in the loadable data gives the version; none
//! (a driver without the extended marker, or an entry built at run time)
//! or several make the version `unknown` until the driver is loaded,
//! which the verdict reports as a warning.
//!
//! Constructors (`DT_INIT`, `.init_array`): every object gcc links has
//! some (`frame_dummy`, C++ static constructors, `__attribute__
//! ((constructor))`). The loader runs them itself, after binding (see
//! [`super::open`]): the private copy's dynamic section hides them from
//! the dynamic linker, so an API call made by a constructor reaches our
//! function, never the VM's. The report lists them and says so.

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, Rela, SectionHeader};
use object::Endianness;

use super::elf::{DriverImage, ElfError};
use super::symbols::{provided_by_library, vm_only_imports};
use crate::abi;
use crate::binding::{self, AbiVariant};

type Hdr = elf::FileHeader64<Endianness>;

/// `ERL_DRV_EXTENDED_MARKER` as it is stored in the file (little endian).
const MARKER_BYTES: [u8; 4] = (abi::EXTENDED_MARKER as u32).to_le_bytes();

/// The entry found in the file's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticEntry {
    /// Address of the entry relative to the load base.
    pub vaddr: u64,
    /// `major_version`.
    pub major: i32,
    /// `minor_version`.
    pub minor: i32,
    /// `driver_flags`.
    pub flags: i32,
    /// `driver_name`, when its relocation and string are in the file.
    pub name: Option<String>,
}

/// What the static search for the entry found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryFinding {
    /// Exactly one extended marker: the entry.
    Found(StaticEntry),
    /// No extended marker in the loadable data.
    NotFound,
    /// Several markers: which one `driver_init` returns is known only
    /// once it runs.
    Ambiguous(usize),
}

/// Who provides an import that is not an erl_driver function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// A shared library loaded in this VM (libc, libm, ...).
    Library,
    /// Only the VM (beam.smp): refused.
    VmOnly,
    /// Nothing loaded: the driver's own `DT_NEEDED` libraries must
    /// provide it.
    NotLoaded,
    /// A weak import nothing loaded defines: it may stay undefined
    /// (`__gmon_start__`, `_ITM_*`).
    Weak,
}

/// A reason a driver will not run, each mapped to a load error by
/// [`super::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No `driver_init` symbol.
    NoDriverInit,
    /// erl_driver functions we do not implement for the declared version.
    UnsupportedApi(Vec<String>),
    /// Non-API imports only the VM defines.
    VmOnly(Vec<String>),
    /// The statically found entry declares a version we do not run.
    Version(String),
}

impl Problem {
    /// The text the report prints.
    pub fn text(&self) -> String {
        match self {
            Problem::NoDriverInit => "the file defines no driver_init".into(),
            Problem::UnsupportedApi(names) => format!(
                "imports erl_driver functions erl_driver_compat does not implement: {}",
                names.join(", ")
            ),
            Problem::VmOnly(names) => format!(
                "imports symbols only the Erlang VM defines (not part of erl_driver): {}",
                names.join(", ")
            ),
            Problem::Version(text) => text.clone(),
        }
    }
}

/// The verdict of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Loads and runs.
    WillRun,
    /// Loads; the texts say what could still go wrong.
    WillRunWithWarnings(Vec<String>),
    /// Refused by `load_driver` for these reasons.
    WillNotRun(Vec<Problem>),
}

/// The compatibility report of one driver file.
#[derive(Debug)]
pub struct Report {
    /// The declared interface version, found statically.
    pub entry: EntryFinding,
    /// The ABI variant the imports were judged for.
    pub variant: AbiVariant,
    /// Every erl_driver function imported, with whether we implement it
    /// for `variant`, sorted.
    pub api_imports: Vec<(String, bool)>,
    /// Every other undefined symbol, with who provides it, sorted.
    pub other_imports: Vec<(String, Provider)>,
    /// The file has `DT_INIT`.
    pub init_function: bool,
    /// Number of `.init_array` entries.
    pub init_array: usize,
    /// The file defines `driver_init`.
    pub has_driver_init: bool,
    /// The verdict.
    pub verdict: Verdict,
}

/// Why a declared version is not one we run, or `None` when it is:
/// extended drivers of the seed-era 1.0-1.5 interface (bound to the int
/// variants), of major 2, and 3.0 up to our 3.3 (as OTP 25).
pub fn version_problem(extended: bool, major: i32, minor: i32) -> Option<String> {
    if !extended {
        // Marker-less (R6B-R11B-2) entries are judged on their fields once
        // loaded (driver::supported_version): nothing to say from the
        // version numbers alone.
        return None;
    }
    let ours = (abi::EXTENDED_MAJOR_VERSION, abi::EXTENDED_MINOR_VERSION);
    // 1.0-1.5: the seed-era int interface (bound to the int variants); 2.x;
    // 3.0 up to ours.
    if (major == 1 && (0..=5).contains(&minor))
        || major == 2
        || (major == ours.0 && (0..=ours.1).contains(&minor))
    {
        None
    } else if (major, minor) > ours {
        Some(format!(
            "built for interface {major}.{minor}, newer than erl_driver_compat's {}.{}",
            ours.0, ours.1
        ))
    } else {
        Some(format!(
            "built for interface {major}.{minor}, which erl_driver_compat does not run"
        ))
    }
}

/// The report for the file bytes `data`, parsed into `image`.
pub fn assess(data: &[u8], image: &DriverImage) -> Report {
    let entry = find_entry(data);
    let variant = match &entry {
        EntryFinding::Found(e) => AbiVariant::for_version(e.major, e.minor),
        _ => AbiVariant::SizeT,
    };
    let mut api_imports: Vec<(String, bool)> = image
        .undefined
        .iter()
        .filter(|(name, _)| binding::is_api_name(name))
        .map(|(name, _)| (name.clone(), binding::lookup(name, variant).is_some()))
        .collect();
    api_imports.sort();
    api_imports.dedup();
    let vm_only = vm_only_imports(image);
    let mut other_imports: Vec<(String, Provider)> = image
        .undefined
        .iter()
        .filter(|(name, _)| !binding::is_api_name(name))
        .map(|(name, _)| {
            let weak = image.undefined.iter().any(|(n, w)| n == name && *w);
            let provider = if vm_only.contains(name) {
                Provider::VmOnly
            } else if provided_by_library(name) {
                Provider::Library
            } else if weak {
                Provider::Weak
            } else {
                Provider::NotLoaded
            };
            (name.clone(), provider)
        })
        .collect();
    other_imports.sort_by(|a, b| a.0.cmp(&b.0));
    other_imports.dedup();
    let (init_function, init_array) = constructors(data);
    let has_driver_init = image.defined.iter().any(|s| s == "driver_init");

    let mut problems = Vec::new();
    if !has_driver_init {
        problems.push(Problem::NoDriverInit);
    }
    let mut warnings = Vec::new();
    let version = match &entry {
        EntryFinding::Found(e) => version_problem(true, e.major, e.minor),
        _ => None,
    };
    let version_refused = version.is_some();
    if let Some(text) = version {
        problems.push(Problem::Version(text));
    }
    let unsupported: Vec<String> = api_imports
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.clone())
        .collect();
    // For a version we do not run, which imports we lack means nothing.
    if !unsupported.is_empty() && !version_refused {
        problems.push(Problem::UnsupportedApi(unsupported));
    }
    if !vm_only.is_empty() {
        problems.push(Problem::VmOnly(vm_only));
    }
    match &entry {
        EntryFinding::Found(_) => {}
        EntryFinding::NotFound => warnings.push(
            "no ERL_DRV_EXTENDED_MARKER entry in the file's data: the interface \
             version is checked when driver_init runs"
                .to_string(),
        ),
        EntryFinding::Ambiguous(n) => warnings.push(format!(
            "{n} driver entries in the file's data: the interface version is checked \
             when driver_init runs"
        )),
    }
    let missing: Vec<&str> = other_imports
        .iter()
        .filter(|(_, p)| *p == Provider::NotLoaded)
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "provided by no library loaded in this VM (the driver's own libraries \
             must define them): {}",
            missing.join(", ")
        ));
    }
    let verdict = if !problems.is_empty() {
        Verdict::WillNotRun(problems)
    } else if !warnings.is_empty() {
        Verdict::WillRunWithWarnings(warnings)
    } else {
        Verdict::WillRun
    };
    Report {
        entry,
        variant,
        api_imports,
        other_imports,
        init_function,
        init_array,
        has_driver_init,
        verdict,
    }
}

/// Reads and assesses the driver file at `path`.
pub fn check_file(path: &std::path::Path) -> Result<Report, super::LoadError> {
    let data = std::fs::read(path).map_err(|e| super::LoadError::NotFound(e.to_string()))?;
    let image = super::elf::parse(&data).map_err(super::not_elf)?;
    Ok(assess(&data, &image))
}

/// The loadable segments `(vaddr, file offset, file size)`.
fn segments(data: &[u8]) -> Vec<(u64, u64, u64)> {
    let Ok(header) = Hdr::parse(data) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let Ok(phdrs) = header.program_headers(endian, data) else {
        return Vec::new();
    };
    phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .map(|p| (p.p_vaddr(endian), p.p_offset(endian), p.p_filesz(endian)))
        .collect()
}

/// File offset of the address `vaddr`, when the file holds its bytes.
fn file_offset(segments: &[(u64, u64, u64)], vaddr: u64) -> Option<usize> {
    segments.iter().find_map(|&(va, off, size)| {
        (vaddr >= va && vaddr < va.checked_add(size)?)
            .then(|| usize::try_from(off + (vaddr - va)).ok())
            .flatten()
    })
}

/// `R_X86_64_RELATIVE` relocations: slot address → addend.
fn relative_relocations(data: &[u8]) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    let Ok(header) = Hdr::parse(data) else {
        return out;
    };
    let Ok(endian) = header.endian() else {
        return out;
    };
    let Ok(sections) = header.sections(endian, data) else {
        return out;
    };
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA {
            continue;
        }
        let Ok(relas) = section.data_as_array::<elf::Rela64<Endianness>, _>(endian, data) else {
            continue;
        };
        for rela in relas {
            if rela.r_type(endian, false) == elf::R_X86_64_RELATIVE {
                out.push((rela.r_offset(endian), rela.r_addend(endian)));
            }
        }
    }
    out
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes(bytes.try_into().ok()?))
}

/// Looks for the driver entry in the loadable data (see the module
/// documentation).
pub fn find_entry(data: &[u8]) -> EntryFinding {
    let segs = segments(data);
    let relocs = relative_relocations(data);
    let mut found = Vec::new();
    for &(va, off, size) in &segs {
        let (Ok(start), Ok(len)) = (usize::try_from(off), usize::try_from(size)) else {
            continue;
        };
        let Some(bytes) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
            continue;
        };
        let mut at = 0;
        while at + 16 <= bytes.len() {
            if bytes[at..at + 4] == MARKER_BYTES {
                let marker_va = va + at as u64;
                if let Some(entry_va) = marker_va.checked_sub(abi::ENTRY_MARKER_OFFSET as u64) {
                    if entry_va % 8 == 0 {
                        let major = read_i32(bytes, at + 4).unwrap_or(0);
                        let minor = read_i32(bytes, at + 8).unwrap_or(0);
                        let flags = read_i32(bytes, at + 12).unwrap_or(0);
                        let name_slot =
                            entry_va + std::mem::offset_of!(abi::DrvEntry, driver_name) as u64;
                        let name = relocs
                            .iter()
                            .find(|(slot, _)| *slot == name_slot)
                            .and_then(|&(_, addend)| file_offset(&segs, addend as u64))
                            .and_then(|o| c_string(data, o));
                        found.push(StaticEntry {
                            vaddr: entry_va,
                            major,
                            minor,
                            flags,
                            name,
                        });
                    }
                }
            }
            at += 4;
        }
    }
    match found.len() {
        0 => EntryFinding::NotFound,
        1 => EntryFinding::Found(found.remove(0)),
        n => EntryFinding::Ambiguous(n),
    }
}

fn c_string(data: &[u8], at: usize) -> Option<String> {
    let rest = data.get(at..)?;
    let end = rest.iter().take(256).position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The dynamic section's entries `(tag, value, file offset of the entry)`.
pub(super) fn dynamic_entries(data: &[u8]) -> Vec<(u64, u64, usize)> {
    let mut out = Vec::new();
    let Ok(header) = Hdr::parse(data) else {
        return out;
    };
    let Ok(endian) = header.endian() else {
        return out;
    };
    let Ok(phdrs) = header.program_headers(endian, data) else {
        return out;
    };
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type(endian) == elf::PT_DYNAMIC) else {
        return out;
    };
    let Ok(entries) = dynamic.dynamic(endian, data) else {
        return out;
    };
    let Some(entries) = entries else {
        return out;
    };
    let base = dynamic.p_offset(endian) as usize;
    let size = std::mem::size_of::<elf::Dyn64<Endianness>>();
    for (i, d) in entries.iter().enumerate() {
        let tag = d.d_tag(endian);
        if tag == u64::from(elf::DT_NULL) {
            break;
        }
        out.push((tag, d.d_val(endian), base + i * size));
    }
    out
}

/// `(DT_INIT present, number of .init_array entries)`.
pub fn constructors(data: &[u8]) -> (bool, usize) {
    let dynamic = dynamic_entries(data);
    let init = dynamic
        .iter()
        .any(|(t, _, _)| *t == u64::from(elf::DT_INIT));
    let array = dynamic
        .iter()
        .find(|(t, _, _)| *t == u64::from(elf::DT_INIT_ARRAYSZ))
        .map_or(0, |(_, v, _)| *v as usize / std::mem::size_of::<usize>());
    (init, array)
}

/// Checks `data` is a 64-bit little-endian x86-64 ELF before parsing it,
/// with a text that names what the file is instead.
pub(super) fn elf_kind(data: &[u8]) -> Result<(), ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if data.len() < 20 {
        return Err(ElfError::Malformed(format!(
            "truncated ELF header ({} bytes)",
            data.len()
        )));
    }
    match data[4] {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => {
            return Err(ElfError::WrongKind(
                "32-bit ELF (ELFCLASS32); this VM loads 64-bit x86-64 objects".into(),
            ))
        }
        c => return Err(ElfError::WrongKind(format!("unknown ELF class {c}"))),
    }
    let header_len = std::mem::size_of::<Hdr>();
    if data.len() < header_len {
        return Err(ElfError::Malformed(format!(
            "truncated ELF header ({} of {header_len} bytes)",
            data.len()
        )));
    }
    if data[5] != elf::ELFDATA2LSB {
        return Err(ElfError::WrongKind(
            "big-endian ELF; this VM loads little-endian x86-64 objects".into(),
        ));
    }
    let machine = u16::from_le_bytes([data[18], data[19]]);
    if machine != elf::EM_X86_64 {
        return Err(ElfError::WrongKind(format!(
            "ELF for machine {} ({}), not x86-64",
            machine,
            machine_name(machine)
        )));
    }
    Ok(())
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        elf::EM_386 => "i386",
        elf::EM_ARM => "ARM",
        elf::EM_AARCH64 => "AArch64",
        elf::EM_PPC => "PowerPC",
        elf::EM_PPC64 => "PowerPC64",
        elf::EM_RISCV => "RISC-V",
        elf::EM_S390 => "s390",
        elf::EM_MIPS => "MIPS",
        elf::EM_SPARCV9 => "SPARC V9",
        _ => "unknown machine",
    }
}

/// The callbacks of an entry copy with their addresses (0 for NULL).
pub fn entry_callbacks(e: &abi::DrvEntry) -> Vec<(&'static str, usize)> {
    macro_rules! addrs {
        ($($field:ident),*) => {
            vec![$((stringify!($field), e.$field.map_or(0, |f| f as usize))),*]
        };
    }
    addrs!(
        init,
        start,
        stop,
        output,
        ready_input,
        ready_output,
        finish,
        control,
        timeout,
        outputv,
        ready_async,
        flush,
        call,
        process_exit,
        stop_select,
        emergency_close
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() {
        assert_eq!(version_problem(true, 3, 3), None);
        assert_eq!(version_problem(true, 3, 0), None);
        assert_eq!(version_problem(true, 2, 7), None);
        assert!(version_problem(true, 4, 0).unwrap().contains("newer"));
        assert!(version_problem(true, 3, 9).unwrap().contains("newer"));
        assert_eq!(version_problem(true, 1, 5), None);
        assert_eq!(version_problem(true, 1, 0), None);
        assert!(version_problem(true, 1, 6).is_some());
        assert!(version_problem(true, 0, 9).is_some());
        assert_eq!(version_problem(true, 1, 1), None);
    }

    #[test]
    fn elf_kind_names_what_the_file_is() {
        let mut hdr = vec![0u8; 64];
        hdr[..4].copy_from_slice(b"\x7fELF");
        hdr[4] = elf::ELFCLASS32;
        hdr[5] = elf::ELFDATA2LSB;
        assert!(matches!(elf_kind(&hdr), Err(ElfError::WrongKind(t)) if t.contains("32-bit")));
        hdr[4] = elf::ELFCLASS64;
        hdr[18..20].copy_from_slice(&elf::EM_AARCH64.to_le_bytes());
        assert!(matches!(elf_kind(&hdr), Err(ElfError::WrongKind(t)) if t.contains("AArch64")));
        hdr[18..20].copy_from_slice(&elf::EM_X86_64.to_le_bytes());
        assert_eq!(elf_kind(&hdr), Ok(()));
        assert!(matches!(elf_kind(&hdr[..10]), Err(ElfError::Malformed(_))));
        assert!(
            matches!(elf_kind(&hdr[..40]), Err(ElfError::Malformed(t)) if t.contains("truncated"))
        );
    }
}
