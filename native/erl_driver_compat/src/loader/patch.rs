//! Slot patching: rewriting the relocation slots of a loaded driver that
//! refer to API symbols so that they point at our functions, lifting
//! RELRO protection while writing.

use std::ffi::c_void;

use super::elf::{DriverImage, SlotKind};
use super::LoadError;
use crate::binding::{self, AbiVariant};

/// Rewrites every slot of `image` (loaded at `base`) that refers to an API
/// symbol with our function for `variant`. Returns how many slots were
/// written.
///
/// # Safety
/// `image` must describe the object mapped at `base`.
pub(super) unsafe fn bind_slots(
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

pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}
