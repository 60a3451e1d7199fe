//! Reads what the loader needs from a driver's ELF file: its undefined
//! dynamic symbols and the relocations that fill slots with their addresses.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::Endianness;

/// How a relocation slot must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// `R_X86_64_JUMP_SLOT` or `R_X86_64_GLOB_DAT`: the symbol's address.
    Address,
    /// `R_X86_64_64`: the symbol's address plus the addend.
    AddressPlusAddend(i64),
}

/// One slot in the driver's image that holds the address of a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Offset of the slot from the image's load base.
    pub offset: u64,
    /// Name of the symbol whose address the slot holds.
    pub symbol: String,
    /// How the value is computed.
    pub kind: SlotKind,
}

/// A range of the image that the dynamic linker makes read-only after
/// relocation (`PT_GNU_RELRO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relro {
    /// Offset of the range from the load base.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
}

/// What the loader learns from a driver file before `dlopen`.
#[derive(Debug, Default)]
pub struct DriverImage {
    /// Undefined dynamic symbols, with whether each is weak.
    pub undefined: Vec<(String, bool)>,
    /// File offset of each undefined symbol's `st_info` byte in `.dynsym`.
    pub undefined_info_offsets: Vec<(String, usize)>,
    /// Defined dynamic symbols that are functions or objects.
    pub defined: Vec<String>,
    /// Slots that must be redirected for each imported symbol.
    pub slots: Vec<Slot>,
    /// Read-only-after-relocation ranges.
    pub relro: Vec<Relro>,
    /// Loadable segments `(vaddr, memsz, executable)`.
    pub segments: Vec<(u64, u64, bool)>,
}

/// Why a file is not a driver we can bind.
#[derive(Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all.
    NotElf,
    /// ELF, but not a 64-bit little-endian x86-64 shared object.
    WrongKind(String),
    /// The ELF structures could not be read.
    Malformed(String),
}

type Hdr = elf::FileHeader64<Endianness>;

/// Parses `data` (the bytes of a driver file).
pub fn parse(data: &[u8]) -> Result<DriverImage, ElfError> {
    super::check::elf_kind(data)?;
    let header = Hdr::parse(data).map_err(|e| ElfError::WrongKind(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(ElfError::WrongKind(format!(
            "machine {} is not x86-64",
            header.e_machine(endian)
        )));
    }
    if header.e_type(endian) != elf::ET_DYN {
        return Err(ElfError::WrongKind("not a shared object".into()));
    }
    let malformed = |e: object::read::Error| ElfError::Malformed(e.to_string());
    let mut image = DriverImage::default();

    for ph in header.program_headers(endian, data).map_err(malformed)? {
        if ph.p_type(endian) == elf::PT_LOAD {
            // A segment past the end of the file would be mapped anyway,
            // and touching it raises SIGBUS: refuse it here.
            let end = ph.p_offset(endian).checked_add(ph.p_filesz(endian));
            if end.is_none_or(|end| end > data.len() as u64) {
                return Err(ElfError::Malformed(format!(
                    "a loadable segment (file offset {:#x}, {} bytes) extends past the end \
                     of the file ({} bytes): truncated or corrupt",
                    ph.p_offset(endian),
                    ph.p_filesz(endian),
                    data.len()
                )));
            }
            image.segments.push((
                ph.p_vaddr(endian),
                ph.p_memsz(endian),
                ph.p_flags(endian) & elf::PF_X != 0,
            ));
        }
        if ph.p_type(endian) == elf::PT_GNU_RELRO {
            image.relro.push(Relro {
                offset: ph.p_vaddr(endian),
                len: ph.p_memsz(endian),
            });
        }
    }

    let sections = header.sections(endian, data).map_err(malformed)?;
    let dynsyms = sections
        .symbols(endian, data, elf::SHT_DYNSYM)
        .map_err(malformed)?;
    let strings = dynsyms.strings();
    let dynsym_offset = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_DYNSYM)
        .map(|s| s.sh_offset(endian) as usize);
    let name_of = |index: usize| -> Result<String, ElfError> {
        let sym = dynsyms
            .symbol(object::SymbolIndex(index))
            .map_err(malformed)?;
        let name = sym.name(endian, strings).map_err(malformed)?;
        Ok(String::from_utf8_lossy(name).into_owned())
    };
    for (index, sym) in dynsyms.iter().enumerate().skip(1) {
        let name = name_of(index)?;
        if name.is_empty() {
            continue;
        }
        if sym.st_shndx(endian) == elf::SHN_UNDEF {
            if let Some(base) = dynsym_offset {
                // Elf64_Sym: st_name (4 bytes), then st_info.
                let info = base + index * std::mem::size_of::<elf::Sym64<Endianness>>() + 4;
                image.undefined_info_offsets.push((name.clone(), info));
            }
            image.undefined.push((name, sym.st_bind() == elf::STB_WEAK));
        } else {
            image.defined.push(name);
        }
    }

    let dynsym_index = dynsym_section_index(&sections, endian);
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA {
            continue;
        }
        if dynsym_index.is_some_and(|i| section.sh_link(endian) as usize != i) {
            continue;
        }
        let relas = section
            .data_as_array::<elf::Rela64<Endianness>, _>(endian, data)
            .map_err(malformed)?;
        for rela in relas {
            let sym = rela.r_sym(endian, false) as usize;
            if sym == 0 {
                continue;
            }
            let kind = match rela.r_type(endian, false) {
                elf::R_X86_64_JUMP_SLOT | elf::R_X86_64_GLOB_DAT => SlotKind::Address,
                elf::R_X86_64_64 => SlotKind::AddressPlusAddend(rela.r_addend(endian)),
                _ => continue,
            };
            image.slots.push(Slot {
                offset: rela.r_offset(endian),
                symbol: name_of(sym)?,
                kind,
            });
        }
    }
    // Make sure the file is usable by the dynamic linker at all.
    if sections
        .iter()
        .all(|s| s.sh_type(endian) != elf::SHT_DYNAMIC)
        && header
            .program_headers(endian, data)
            .map_err(malformed)?
            .iter()
            .all(|p| p.p_type(endian) != elf::PT_DYNAMIC)
    {
        return Err(ElfError::WrongKind("no dynamic section".into()));
    }
    Ok(image)
}

fn dynsym_section_index(
    sections: &object::read::elf::SectionTable<'_, Hdr>,
    endian: Endianness,
) -> Option<usize> {
    sections
        .iter()
        .position(|s| s.sh_type(endian) == elf::SHT_DYNSYM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        assert_eq!(parse(b"hello world").unwrap_err(), ElfError::NotElf);
        assert_eq!(parse(b"").unwrap_err(), ElfError::NotElf);
    }

    #[test]
    fn rejects_truncated_elf() {
        assert!(matches!(
            parse(b"\x7fELF\x02\x01\x01"),
            Err(ElfError::WrongKind(_)) | Err(ElfError::Malformed(_))
        ));
    }
}
