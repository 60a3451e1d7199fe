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
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
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

/// The hidden header of a new (or just resized, so unshared) binary of
/// `capacity` data bytes: refc 1, live, not exposed.
fn header(capacity: usize) -> Header {
    Header {
        refc: AtomicIsize::new(1),
        magic: AtomicUsize::new(MAGIC_LIVE),
        holders: AtomicUsize::new(0),
        capacity,
    }
}
const DATA_OFFSET: usize = HEADER + std::mem::offset_of!(DrvBinary, orig_bytes);

/// Live driver binaries and the data bytes they were allocated for (their
/// capacities), for `erl_driver_compat:info/0`. Relaxed: statistics only.
static LIVE_BINARIES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `(live driver binaries, their data bytes)` right now.
pub fn stats() -> (usize, usize) {
    (
        LIVE_BINARIES.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    )
}

fn layout(size: usize) -> Option<Layout> {
    let total = DATA_OFFSET.checked_add(size.max(1))?;
    Layout::from_size_align(total, ALIGN).ok()
}

/// A pointer to one of our driver binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverBinary(*mut DrvBinary);

// SAFETY: a DriverBinary is a pointer to a heap block not tied to any
// thread; the fields other threads touch through it (refc, magic, holders)
// are atomics, and the data is only read concurrently once exposed to
// Erlang, when the contract forbids the driver to write it.
unsafe impl Send for DriverBinary {}
// SAFETY: every method takes `self` by value and touches shared state only
// through the header's atomics (refc, magic, holders) or the driver-owned
// data, which is read-only once exposed (same reasons as for Send).
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
        // SAFETY: base is a fresh, unshared allocation of
        // DATA_OFFSET + max(size, 1) > HEADER bytes aligned to ALIGN (16),
        // which is at least Header's alignment: the header fits at its
        // start and writing it needs no previous value.
        unsafe { base.cast::<Header>().write(header(size)) };
        // SAFETY: HEADER < DATA_OFFSET <= the allocation's size, so
        // base + HEADER stays inside the allocation.
        let bin = unsafe { base.add(HEADER) }.cast::<DrvBinary>();
        // SAFETY: bin is the DrvBinary prefix of the fresh allocation
        // (HEADER + offset_of(orig_bytes) = DATA_OFFSET bytes fit), aligned
        // since HEADER is a multiple of 8; nothing else refers to it yet.
        unsafe { (*bin).orig_size = size as libc::c_long };
        LIVE_BINARIES.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
        Some(DriverBinary(bin))
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
        // SAFETY: the caller guarantees the HEADER bytes before a non-NULL
        // ptr are readable (ptr >= HEADER + 4096 was checked above, so the
        // subtraction does not wrap); the header is only read here, and the
        // magic word is atomic.
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
        // SAFETY: self.0 points HEADER bytes into its allocation (alloc and
        // resize place the DrvBinary right after the header), so going back
        // HEADER bytes stays in the same allocation.
        let base = unsafe { self.0.cast::<u8>().sub(HEADER) };
        // SAFETY: base is the start of a live allocation (caller's
        // contract), aligned to ALIGN >= align_of::<Header>(), holding the
        // Header written by alloc/resize; all its fields mutated after
        // creation are atomics, so a shared reference is sound while the
        // binary lives.
        unsafe { &*base.cast::<Header>() }
    }

    /// The `len` bytes at `offset` of the data, or `None` when they do not
    /// lie inside [`size`](Self::size).
    ///
    /// # Safety
    /// The binary must stay live (a reference is held) and its data must
    /// not be written for `'b`.
    pub unsafe fn bytes<'b>(self, offset: usize, len: usize) -> Option<&'b [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.size() {
            return None;
        }
        // SAFETY: offset <= end <= size() <= capacity: data + offset stays
        // inside the allocation's data area.
        let start = unsafe { self.data().add(offset) };
        // SAFETY: start..start+len = offset..end lies inside the data area
        // of a live allocation, which the caller keeps alive and unwritten
        // for 'b; u8 has no invalid values.
        Some(unsafe { std::slice::from_raw_parts(start, len) })
    }

    /// Size in bytes: `orig_size`, bounded by the allocation (a driver
    /// that writes a larger or negative `orig_size` cannot make us read or
    /// write outside the block).
    pub fn size(self) -> usize {
        // SAFETY: a DriverBinary is only made by alloc/resize/from_raw, which
        // yield a live binary, and callers stop using it once its last
        // reference is released; orig_size is an aligned c_long field of
        // its DrvBinary.
        let orig = unsafe { (*self.0).orig_size };
        usize::try_from(orig).unwrap_or(0).min(self.capacity())
    }

    /// Data size of the allocation (hidden header, not driver-writable).
    fn capacity(self) -> usize {
        // SAFETY: self is live (made by alloc/resize/from_raw, not yet
        // released by its holder).
        unsafe { self.header() }.capacity
    }

    /// Start of the data.
    pub fn data(self) -> *mut u8 {
        // SAFETY: self.0 points at the DrvBinary of a live allocation;
        // addr_of_mut! only computes the address of its orig_bytes field
        // (DATA_OFFSET into the block), without reading or referencing it.
        unsafe { std::ptr::addr_of_mut!((*self.0).orig_bytes).cast() }
    }

    /// Current reference count.
    pub fn refc(self) -> isize {
        // SAFETY: self is live: the caller holds one of its references.
        unsafe { self.header() }.refc.load(Ordering::Acquire)
    }

    /// Adds one reference; returns the new count.
    pub fn inc(self) -> isize {
        // SAFETY: self is live: the caller holds one of its references.
        unsafe { self.header() }.refc.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Drops one reference without freeing; returns the new count
    /// (`driver_binary_dec_refc`).
    pub fn dec(self) -> isize {
        // SAFETY: self is live: the caller holds one of its references.
        unsafe { self.header() }.refc.fetch_sub(1, Ordering::AcqRel) - 1
    }

    /// `driver_free_binary`: drops one reference, deallocates at zero.
    pub fn release(self) {
        if self.dec() <= 0 {
            // SAFETY: this call dropped the last reference (count <= 0), so
            // no holder, term or driver may use the binary any more.
            unsafe { self.deallocate() };
        }
    }

    /// # Safety
    /// No reference may remain.
    unsafe fn deallocate(self) {
        let size = self.capacity();
        // SAFETY: the binary is still allocated until the dealloc below,
        // and the caller's reference was its last.
        unsafe { self.header() }
            .magic
            .store(MAGIC_DEAD, Ordering::Release);
        let base = self.0.cast::<u8>().wrapping_sub(HEADER);
        if let Some(layout) = layout(size) {
            // SAFETY: base is the start of the block (HEADER before the
            // DrvBinary) and layout(capacity) is the layout it was
            // allocated or last reallocated with; no reference remains.
            unsafe { dealloc(base, layout) };
            LIVE_BINARIES.fetch_sub(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
        }
    }

    /// `driver_realloc_binary`. With refc 1 the block is resized in place;
    /// otherwise others still see the old data, so a new binary takes the
    /// driver's reference and the old one keeps the others'.
    pub fn resize(self, size: usize) -> Option<DriverBinary> {
        let old_size = self.size();
        let old_capacity = self.capacity();
        // SAFETY: self is live: the caller holds the reference it resizes.
        let exposed = unsafe { self.header() }.holders.load(Ordering::Acquire) != 0;
        if self.refc() == 1 && !exposed {
            let new_layout = layout(size)?;
            let old_layout = layout(old_capacity)?;
            let base = self.0.cast::<u8>().wrapping_sub(HEADER);
            // SAFETY: base is the start of the block, allocated (or last
            // reallocated) with old_layout = layout(capacity); refc 1 and
            // no holder: the caller holds the only reference, so nothing
            // else points into the block that realloc may move.
            let new_base = unsafe { realloc(base, old_layout, new_layout.size()) };
            if new_base.is_null() {
                return None;
            }
            // SAFETY: new_base is the resized, unshared block of
            // new_layout's size (> HEADER), aligned to ALIGN; realloc kept
            // the old header bytes, which are overwritten as a whole.
            unsafe { new_base.cast::<Header>().write(header(size)) };
            // SAFETY: HEADER < DATA_OFFSET <= the new block's size.
            let bin = unsafe { new_base.add(HEADER) }.cast::<DrvBinary>();
            // SAFETY: bin is the DrvBinary prefix of the resized block,
            // aligned, referenced only by the caller.
            unsafe { (*bin).orig_size = size as libc::c_long };
            LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(old_capacity, Ordering::Relaxed);
            return Some(DriverBinary(bin));
        }
        let fresh = DriverBinary::alloc(size)?;
        // SAFETY: self's data holds old_size bytes and fresh's `size`
        // bytes, both live (self is released only after the copy), and
        // they are different allocations, so they cannot overlap.
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
                // SAFETY: the holder's reference keeps the binary live for
                // as long as the term (the slice's lifetime, tied to `h`),
                // and once exposed the driver must not write the data.
                // Callers check offset/len; outside the data it is empty.
                unsafe { h.bin.bytes(offset, len) }.unwrap_or_default()
            })
            .to_term(env)
    }
}

/// Registry of exposed binaries by data address, so that data coming back
/// from Erlang that lies inside one of our binaries can be passed to a
/// driver's `outputv` without copying.
static EXPOSED: Mutex<Option<Exposed>> = Mutex::new(None);

/// Binaries smaller than this are indexed by the [`REGION`]-sized address
/// regions they overlap (one or two), larger ones in a range map.
const REGION_SHIFT: u32 = 12;
const REGION: usize = 1 << REGION_SHIFT;

/// Up to this many regions stay in the index when they empty.
const KEPT_REGIONS: usize = 1024;

/// One exposed binary: its data `start..end` (as registered).
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    bin: DriverBinary,
}

/// The exposed binaries. Registering and unregistering happen on every
/// exposure (`driver_output_binary`, `driver_outputv`), lookups only for
/// data that may be ours, so small binaries (most exposures) go into a
/// hash map of address regions: two hash operations instead of a tree
/// insert and remove (measured: ~80 ns less per 1 KiB exposure).
struct Exposed {
    /// Region number (`address >> REGION_SHIFT`) → the small binaries
    /// overlapping it.
    small: HashMap<usize, Vec<Entry>, BuildHasherDefault<AddrHasher>>,
    /// Binaries of [`REGION`] bytes or more by start address.
    large: BTreeMap<usize, Entry>,
}

/// The regions `start..end` overlaps (at least the one of `start`).
fn regions(start: usize, end: usize) -> std::ops::RangeInclusive<usize> {
    (start >> REGION_SHIFT)..=(end.max(start + 1) - 1) >> REGION_SHIFT
}

impl Exposed {
    fn insert(&mut self, e: Entry) {
        if e.end - e.start >= REGION {
            self.large.insert(e.start, e);
            return;
        }
        for r in regions(e.start, e.end) {
            self.small.entry(r).or_default().push(e);
        }
    }

    fn remove(&mut self, start: usize) {
        if self.large.remove(&start).is_some() {
            return;
        }
        let first = start >> REGION_SHIFT;
        let Some(end) = self
            .small
            .get(&first)
            .and_then(|v| v.iter().find(|e| e.start == start))
            .map(|e| e.end)
        else {
            return;
        };
        for r in regions(start, end) {
            if let Some(v) = self.small.get_mut(&r) {
                v.retain(|e| e.start != start);
                // Empty regions are kept (no allocation when a binary is
                // exposed there again) while they are few.
                if v.is_empty() && self.small.len() > KEPT_REGIONS {
                    self.small.remove(&r);
                }
            }
        }
    }

    /// The binary whose registered data contains `addr..addr+len`.
    fn find(&self, addr: usize, len: usize) -> Option<Entry> {
        let end = addr.checked_add(len)?;
        let inside = |e: &Entry| e.start <= addr && end <= e.end;
        // An empty piece may sit at the very end of a binary, in the
        // region after its last byte.
        let before = if len == 0 {
            addr.saturating_sub(1)
        } else {
            addr
        };
        for r in [addr >> REGION_SHIFT, before >> REGION_SHIFT] {
            if let Some(e) = self
                .small
                .get(&r)
                .and_then(|v| v.iter().find(|e| inside(e)))
            {
                return Some(*e);
            }
        }
        let (_, e) = self.large.range(..=addr).next_back()?;
        inside(e).then_some(*e)
    }
}

/// Hashes region numbers (one `usize` each) with a multiplication: they
/// are not chosen by an adversary, and SipHash would cost more than the
/// rest of the lookup.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Runs `f` on the registry (created on first use).
fn with_exposed<R>(f: impl FnOnce(&mut Exposed) -> R) -> R {
    let mut guard = EXPOSED.lock();
    let exposed = guard.get_or_insert_with(|| Exposed {
        small: HashMap::default(),
        large: BTreeMap::new(),
    });
    f(exposed)
}

/// Finds the exposed driver binary containing `[ptr, ptr+len)` and adds a
/// reference to it for the caller.
pub fn find_exposed(ptr: *const u8, len: usize) -> Option<(DriverBinary, usize)> {
    let addr = ptr as usize;
    with_exposed(|exposed| {
        let e = exposed.find(addr, len)?;
        // Under the registry's lock: the holder that registered the
        // binary cannot unregister and release it meanwhile.
        e.bin.inc();
        Some((e.bin, addr - e.start))
    })
}

/// One reference held by Erlang terms that view a driver binary.
pub struct BinaryHolder {
    bin: DriverBinary,
}

impl BinaryHolder {
    fn new(bin: DriverBinary) -> ResourceArc<BinaryHolder> {
        bin.inc();
        // SAFETY: bin is live: the inc above took the reference this
        // holder keeps until it is dropped.
        let header = unsafe { bin.header() };
        if header.holders.fetch_add(1, Ordering::AcqRel) == 0 {
            let start = bin.data() as usize;
            let end = start + bin.size();
            with_exposed(|exposed| exposed.insert(Entry { start, end, bin }));
        }
        ResourceArc::new(BinaryHolder { bin })
    }
}

impl Drop for BinaryHolder {
    fn drop(&mut self) {
        // SAFETY: the holder's reference keeps the binary alive here.
        let header = unsafe { self.bin.header() };
        if header.holders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let start = self.bin.data() as usize;
            with_exposed(|exposed| exposed.remove(start));
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
        // SAFETY: keep is a live binary of ours: its header is readable.
        assert_eq!(unsafe { DriverBinary::from_raw(keep.as_ptr()) }, Ok(keep));
        assert_eq!(
            // SAFETY: from_raw returns before reading anything for NULL.
            unsafe { DriverBinary::from_raw(std::ptr::null_mut()) },
            Err(BinaryError::Null)
        );
        keep.release();
    }

    #[test]
    fn resize_keeps_data_and_shared_binaries_intact() {
        let b = DriverBinary::alloc(4).unwrap();
        // SAFETY: b is live with 4 data bytes, used by this test only; the
        // source is a 4-byte literal in another allocation.
        unsafe { std::ptr::copy_nonoverlapping(b"abcd".as_ptr(), b.data(), 4) };
        let b = b.resize(8).unwrap();
        assert_eq!(b.size(), 8);
        // SAFETY: b is live (released at the end) and not written while
        // the slice is compared.
        assert_eq!(unsafe { b.bytes(0, 4) }, Some(&b"abcd"[..]));
        // SAFETY: b is live and not written while the result is compared.
        assert_eq!(unsafe { b.bytes(5, 4) }, None);
        b.inc(); // someone else holds it
        let c = b.resize(2).unwrap();
        assert_ne!(b, c);
        assert_eq!(b.refc(), 1);
        assert_eq!(c.refc(), 1);
        // SAFETY: c is live (released at the end) and not written while
        // the slice is compared.
        assert_eq!(unsafe { c.bytes(0, 2) }, Some(&b"ab"[..]));
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
            // SAFETY: b is live and only this test uses it; orig_size is
            // its driver-writable DrvBinary field.
            unsafe { (*b.as_ptr()).orig_size = forged };
            assert_eq!(b.size(), usize::try_from(forged).unwrap_or(0).min(16));
            assert_eq!(b.capacity(), 16);
            b.release();
        }
        let b = DriverBinary::alloc(8).unwrap();
        // SAFETY: b is live and only this test uses it; orig_size is its
        // driver-writable DrvBinary field.
        unsafe { (*b.as_ptr()).orig_size = 1 << 20 };
        let b = b.resize(32).unwrap();
        assert_eq!((b.size(), b.capacity()), (32, 32));
        // SAFETY: b is live and only this test uses it; orig_size is its
        // driver-writable DrvBinary field.
        unsafe { (*b.as_ptr()).orig_size = 1 << 20 };
        b.inc();
        let c = b.resize(4).unwrap();
        assert_eq!((c.size(), c.capacity()), (4, 4));
        b.release();
        c.release();
    }

    /// The registry finds a piece in the binary that contains it, small
    /// (region index, across a region boundary, an empty piece at the
    /// end) or large (range map), and nothing once it is removed.
    #[test]
    fn exposed_registry_finds_containing_binaries() {
        let small = DriverBinary::alloc(100).unwrap();
        let large = DriverBinary::alloc(3 * REGION).unwrap();
        let mut reg = Exposed {
            small: HashMap::default(),
            large: BTreeMap::new(),
        };
        // A small binary straddling a region boundary (addresses only:
        // the registry never reads through them).
        let boundary = 7 * REGION;
        let entries = [
            Entry {
                start: boundary - 40,
                end: boundary + 60,
                bin: small,
            },
            Entry {
                start: 9 * REGION + 16,
                end: 9 * REGION + 16 + 3 * REGION,
                bin: large,
            },
        ];
        for e in entries {
            reg.insert(e);
        }
        let found = |reg: &Exposed, addr: usize, len: usize| reg.find(addr, len).map(|e| e.start);
        assert_eq!(found(&reg, boundary - 40, 100), Some(boundary - 40));
        assert_eq!(found(&reg, boundary + 10, 50), Some(boundary - 40));
        assert_eq!(found(&reg, boundary + 60, 0), Some(boundary - 40));
        // Ending exactly at a region boundary: an empty piece at its end.
        let ending = Entry {
            start: 5 * REGION - 100,
            end: 5 * REGION,
            bin: small,
        };
        reg.insert(ending);
        assert_eq!(found(&reg, 5 * REGION, 0), Some(5 * REGION - 100));
        assert_eq!(found(&reg, 5 * REGION, 1), None);
        reg.remove(ending.start);
        assert_eq!(found(&reg, boundary - 40, 101), None);
        assert_eq!(found(&reg, boundary - 41, 1), None);
        assert_eq!(found(&reg, 10 * REGION + 5, REGION), Some(9 * REGION + 16));
        assert_eq!(found(&reg, 12 * REGION + 17, 0), None);
        reg.remove(boundary - 40);
        reg.remove(9 * REGION + 16);
        assert_eq!(found(&reg, boundary + 10, 50), None);
        assert_eq!(found(&reg, 10 * REGION, 1), None);
        assert!(reg.small.values().all(Vec::is_empty) && reg.large.is_empty());
        small.release();
        large.release();
    }

    #[test]
    fn huge_sizes_fail_cleanly() {
        assert!(DriverBinary::alloc(usize::MAX).is_none());
    }
}
