//! Driver binaries (`ErlDrvBinary`) with the reference-count contract of
//! `spec/driver_binary_refc.mail.txt`.
//!
//! Each binary is one allocation: a hidden [`Header`] (reference count, a
//! magic word that lets us detect double frees and foreign pointers, the
//! allocation size) followed by the `ErlDrvBinary` the driver sees. When the
//! data is handed to Erlang (`driver_output_binary`, `driver_outputv`) a
//! [`BinaryHolder`] resource wraps it with `enif_make_resource_binary`; the
//! holder is one reference until the last term that uses it is garbage
//! collected, so `driver_binary_get_refc() == 1` keeps meaning "only the
//! driver can see this binary".

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustler::{Env, Resource, ResourceArc, Term};

use crate::abi::DrvBinary;

const MAGIC_LIVE: usize = 0x6564_635f_6269_6e31; // "edc_bin1"
const MAGIC_DEAD: usize = 0x6564_635f_6465_6164; // "edc_dead"
const ALIGN: usize = 16;

#[repr(C)]
struct Header {
    refc: AtomicIsize,
    magic: AtomicUsize,
    /// Number of live [`BinaryHolder`]s: non-zero means Erlang terms may
    /// point into the data and the binary is in [`EXPOSED`].
    holders: AtomicUsize,
    /// Data size the block was allocated for: the layout of every
    /// `dealloc`/`realloc`. Never `orig_size`, which the driver can write.
    capacity: usize,
}

const HEADER: usize = std::mem::size_of::<Header>();
const DATA_OFFSET: usize = HEADER + std::mem::offset_of!(DrvBinary, orig_bytes);

fn layout(size: usize) -> Option<Layout> {
    let total = DATA_OFFSET.checked_add(size.max(1))?;
    Layout::from_size_align(total, ALIGN).ok()
}

/// A pointer to one of our driver binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverBinary(*mut DrvBinary);

// SAFETY: the reference count is atomic; the data is only read concurrently
// once exposed, as the contract requires.
unsafe impl Send for DriverBinary {}
// SAFETY: as above.
unsafe impl Sync for DriverBinary {}

/// Why a pointer a driver passed is not a live driver binary.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// NULL pointer.
    Null,
    /// Freed already (reference count reached zero earlier).
    AlreadyFreed,
    /// Not allocated by `driver_alloc_binary`.
    Foreign,
}

impl DriverBinary {
    /// `driver_alloc_binary`: a new binary of `size` bytes, refc 1.
    pub fn alloc(size: usize) -> Option<DriverBinary> {
        if size > isize::MAX as usize / 2 {
            return None;
        }
        let layout = layout(size)?;
        // SAFETY: layout has non-zero size.
        let base = unsafe { alloc(layout) };
        if base.is_null() {
            return None;
        }
        // SAFETY: base is a fresh allocation large enough for the header and
        // the DrvBinary prefix.
        unsafe {
            base.cast::<Header>().write(Header {
                refc: AtomicIsize::new(1),
                magic: AtomicUsize::new(MAGIC_LIVE),
                holders: AtomicUsize::new(0),
                capacity: size,
            });
            let bin = base.add(HEADER).cast::<DrvBinary>();
            (*bin).orig_size = size as libc::c_long;
            Some(DriverBinary(bin))
        }
    }

    /// Checks that `ptr` is a live binary of ours.
    ///
    /// # Safety
    /// `ptr` must be NULL or readable for the header that precedes it; a
    /// pointer to a binary we allocated (live or freed, not yet reused) is.
    pub unsafe fn from_raw(ptr: *mut DrvBinary) -> Result<DriverBinary, BinaryError> {
        if ptr.is_null() {
            return Err(BinaryError::Null);
        }
        if !(ptr as usize).is_multiple_of(8) || (ptr as usize) < HEADER + 4096 {
            return Err(BinaryError::Foreign);
        }
        let bin = DriverBinary(ptr);
        // SAFETY: per the caller's contract the header is readable.
        match unsafe { bin.header() }.magic.load(Ordering::Acquire) {
            MAGIC_LIVE => Ok(bin),
            MAGIC_DEAD => Err(BinaryError::AlreadyFreed),
            _ => Err(BinaryError::Foreign),
        }
    }

    /// The pointer the driver sees.
    pub fn as_ptr(self) -> *mut DrvBinary {
        self.0
    }

    /// # Safety
    /// The binary must not have been deallocated.
    unsafe fn header(&self) -> &Header {
        // SAFETY: the header sits right before the DrvBinary.
        unsafe { &*(self.0.cast::<u8>().sub(HEADER).cast::<Header>()) }
    }

    /// Size in bytes: `orig_size`, bounded by the allocation (a driver
    /// that writes a larger or negative `orig_size` cannot make us read or
    /// write outside the block).
    pub fn size(self) -> usize {
        // SAFETY: self is live (constructed by alloc/from_raw).
        let orig = unsafe { (*self.0).orig_size };
        usize::try_from(orig).unwrap_or(0).min(self.capacity())
    }

    /// Data size of the allocation (hidden header, not driver-writable).
    fn capacity(self) -> usize {
        // SAFETY: self is live.
        unsafe { self.header() }.capacity
    }

    /// Start of the data.
    pub fn data(self) -> *mut u8 {
        // SAFETY: orig_bytes is inside the allocation.
        unsafe { std::ptr::addr_of_mut!((*self.0).orig_bytes).cast() }
    }

    /// Current reference count.
    pub fn refc(self) -> isize {
        // SAFETY: self is live.
        unsafe { self.header() }.refc.load(Ordering::Acquire)
    }

    /// Adds one reference; returns the new count.
    pub fn inc(self) -> isize {
        // SAFETY: self is live.
        unsafe { self.header() }.refc.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Drops one reference without freeing; returns the new count
    /// (`driver_binary_dec_refc`).
    pub fn dec(self) -> isize {
        // SAFETY: self is live.
        unsafe { self.header() }.refc.fetch_sub(1, Ordering::AcqRel) - 1
    }

    /// `driver_free_binary`: drops one reference, deallocates at zero.
    pub fn release(self) {
        if self.dec() <= 0 {
            // SAFETY: the count reached zero: nobody else holds the binary.
            unsafe { self.deallocate() };
        }
    }

    /// # Safety
    /// No reference may remain.
    unsafe fn deallocate(self) {
        let size = self.capacity();
        // SAFETY: the binary is live until here.
        unsafe { self.header() }
            .magic
            .store(MAGIC_DEAD, Ordering::Release);
        let base = self.0.cast::<u8>().wrapping_sub(HEADER);
        if let Some(layout) = layout(size) {
            // SAFETY: base/layout are those of the allocation.
            unsafe { dealloc(base, layout) };
        }
    }

    /// `driver_realloc_binary`. With refc 1 the block is resized in place;
    /// otherwise others still see the old data, so a new binary takes the
    /// driver's reference and the old one keeps the others'.
    pub fn resize(self, size: usize) -> Option<DriverBinary> {
        let old_size = self.size();
        let old_capacity = self.capacity();
        // SAFETY: self is live.
        let exposed = unsafe { self.header() }.holders.load(Ordering::Acquire) != 0;
        if self.refc() == 1 && !exposed {
            let new_layout = layout(size)?;
            let old_layout = layout(old_capacity)?;
            let base = self.0.cast::<u8>().wrapping_sub(HEADER);
            // SAFETY: base was allocated with old_layout; sole owner.
            let new_base = unsafe { realloc(base, old_layout, new_layout.size()) };
            if new_base.is_null() {
                return None;
            }
            // SAFETY: new_base is the resized allocation.
            unsafe {
                (*new_base.cast::<Header>()).capacity = size;
                let bin = new_base.add(HEADER).cast::<DrvBinary>();
                (*bin).orig_size = size as libc::c_long;
                return Some(DriverBinary(bin));
            }
        }
        let fresh = DriverBinary::alloc(size)?;
        // SAFETY: both data areas hold at least min(old, new) bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.data(), fresh.data(), old_size.min(size)) };
        self.release();
        Some(fresh)
    }

    /// Makes an Erlang binary term viewing `len` bytes at `offset`, without
    /// copying; the term holds one reference until garbage collected.
    pub fn to_term<'a>(self, env: Env<'a>, offset: usize, len: usize) -> Term<'a> {
        let holder = BinaryHolder::new(self);
        holder
            .make_binary(env, |h| {
                // SAFETY: the holder keeps the binary alive; offset/len were
                // checked against size by the caller.
                unsafe { std::slice::from_raw_parts(h.bin.data().add(offset), len) }
            })
            .to_term(env)
    }
}

/// Registry of exposed binaries by data address, so that data coming back
/// from Erlang that lies inside one of our binaries can be passed to a
/// driver's `outputv` without copying.
static EXPOSED: Mutex<BTreeMap<usize, (usize, DriverBinary)>> = Mutex::new(BTreeMap::new());

/// Finds the exposed driver binary containing `[ptr, ptr+len)` and adds a
/// reference to it for the caller.
pub fn find_exposed(ptr: *const u8, len: usize) -> Option<(DriverBinary, usize)> {
    let addr = ptr as usize;
    let map = EXPOSED.lock();
    let (&start, &(end, bin)) = map.range(..=addr).next_back()?;
    if addr + len > end {
        return None;
    }
    bin.inc();
    Some((bin, addr - start))
}

/// One reference held by Erlang terms that view a driver binary.
pub struct BinaryHolder {
    bin: DriverBinary,
}

impl BinaryHolder {
    fn new(bin: DriverBinary) -> ResourceArc<BinaryHolder> {
        bin.inc();
        // SAFETY: bin is live (we hold a reference).
        let header = unsafe { bin.header() };
        if header.holders.fetch_add(1, Ordering::AcqRel) == 0 {
            let start = bin.data() as usize;
            EXPOSED.lock().insert(start, (start + bin.size(), bin));
        }
        ResourceArc::new(BinaryHolder { bin })
    }
}

impl Drop for BinaryHolder {
    fn drop(&mut self) {
        // SAFETY: the holder's reference keeps the binary alive here.
        let header = unsafe { self.bin.header() };
        if header.holders.fetch_sub(1, Ordering::AcqRel) == 1 {
            EXPOSED.lock().remove(&(self.bin.data() as usize));
        }
        self.bin.release();
    }
}

#[rustler::resource_impl]
impl Resource for BinaryHolder {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_sets_refc_one_and_size() {
        let b = DriverBinary::alloc(10).unwrap();
        assert_eq!(b.refc(), 1);
        assert_eq!(b.size(), 10);
        assert!((b.data() as usize).is_multiple_of(8));
        assert_eq!(b.inc(), 2);
        assert_eq!(b.dec(), 1);
        b.release();
    }

    #[test]
    fn double_free_is_detected_while_memory_is_still_ours() {
        let keep = DriverBinary::alloc(64).unwrap();
        // SAFETY: keep is live.
        assert_eq!(unsafe { DriverBinary::from_raw(keep.as_ptr()) }, Ok(keep));
        assert_eq!(
            // SAFETY: NULL is allowed.
            unsafe { DriverBinary::from_raw(std::ptr::null_mut()) },
            Err(BinaryError::Null)
        );
        keep.release();
    }

    #[test]
    fn resize_keeps_data_and_shared_binaries_intact() {
        let b = DriverBinary::alloc(4).unwrap();
        // SAFETY: 4 bytes are allocated.
        unsafe { std::ptr::copy_nonoverlapping(b"abcd".as_ptr(), b.data(), 4) };
        let b = b.resize(8).unwrap();
        assert_eq!(b.size(), 8);
        // SAFETY: 8 bytes are allocated.
        assert_eq!(unsafe { std::slice::from_raw_parts(b.data(), 4) }, b"abcd");
        b.inc(); // someone else holds it
        let c = b.resize(2).unwrap();
        assert_ne!(b, c);
        assert_eq!(b.refc(), 1);
        assert_eq!(c.refc(), 1);
        // SAFETY: 2 bytes are allocated.
        assert_eq!(unsafe { std::slice::from_raw_parts(c.data(), 2) }, b"ab");
        b.release();
        c.release();
    }

    /// A driver may overwrite `orig_size` (bug or not): freeing and
    /// resizing must still use the allocation's own size (under Miri, a
    /// layout taken from `orig_size` is reported as a wrong deallocation),
    /// and [`DriverBinary::size`] never exceeds the allocation.
    #[test]
    fn overwritten_orig_size_does_not_change_the_allocation_layout() {
        for forged in [1 << 20, -5, 3] {
            let b = DriverBinary::alloc(16).unwrap();
            // SAFETY: the driver-visible header field of a live binary.
            unsafe { (*b.as_ptr()).orig_size = forged };
            assert_eq!(b.size(), usize::try_from(forged).unwrap_or(0).min(16));
            assert_eq!(b.capacity(), 16);
            b.release();
        }
        let b = DriverBinary::alloc(8).unwrap();
        // SAFETY: as above.
        unsafe { (*b.as_ptr()).orig_size = 1 << 20 };
        let b = b.resize(32).unwrap();
        assert_eq!((b.size(), b.capacity()), (32, 32));
        // SAFETY: as above.
        unsafe { (*b.as_ptr()).orig_size = 1 << 20 };
        b.inc();
        let c = b.resize(4).unwrap();
        assert_eq!((c.size(), c.capacity()), (4, 4));
        b.release();
        c.release();
    }

    #[test]
    fn huge_sizes_fail_cleanly() {
        assert!(DriverBinary::alloc(usize::MAX).is_none());
    }
}
