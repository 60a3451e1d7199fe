//! Driver binaries (`ErlDrvBinary`) with the reference-count contract of
//! `spec/driver_binary_refc.mail.txt`, as the native runtime makes them:
//! every driver binary is a VM `Binary` (erts 13, 64-bit: `flags`, `refc`,
//! `orig_size`, `orig_bytes`), and the `ErlDrvBinary *` a driver sees is
//! the address of its `orig_size` (`Binary2ErlDrvBinary`, 16 bytes in).
//!
//! So the reference count is the VM's own: a term made from a driver binary
//! holds one reference until garbage collected (the VM frees the binary
//! when the last reference goes, whoever drops it), a binary-mode control
//! reply becomes the reply term as it is, and a caller's refc binary can be
//! lent to a driver's `outputv` as its `ErlDrvBinary` without a copy
//! ([`DriverBinary::lent`]). The layout is checked once against
//! `enif_alloc_binary` ([`layout_ok`]); when it does not hold, no driver
//! binary is ever made (`driver_alloc_binary` returns NULL, after an error
//! naming the reason).
//!
//! Misuse detection is what the header words allow, without a table (the
//! VM frees binaries without telling us, so no table could stay exact): a
//! pointer whose `flags` word is not a plain binary's, or whose `refc` is
//! not positive (a freed binary's count is 0 until its memory is reused),
//! is rejected. A freed binary whose memory was reused, and a foreign
//! pointer whose 16 preceding bytes happen to look like a header, are not
//! detected.

use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

use rustler::{Env, Term};

use crate::abi::DrvBinary;
use crate::ffi;

/// `offsetof(Binary, orig_size)`: from the `Binary` to the `ErlDrvBinary`.
const DRV_OFFSET: usize = 2 * std::mem::size_of::<usize>();
/// `offsetof(Binary, refc)`.
const REFC_OFFSET: usize = std::mem::size_of::<usize>();
/// `BIN_FLAG_MAGIC`: a magic binary (resources, match specs), whose
/// `orig_bytes` are not data.
const BIN_FLAG_MAGIC: usize = 1;
/// `BIN_FLAG_DRV`: allocated as a driver binary.
const BIN_FLAG_DRV: usize = 8;
/// `BIN_FLAG_USR2` (reserved by erts for its modules' own marks, unused in
/// OTP 25): a binary that goes back to [`spare`] instead of to the VM when
/// its last reference is released.
/// Set only while no term refers to the binary (cleared before one is
/// made), so the VM never sees it on a binary it reads.
const BIN_FLAG_POOLED: usize = 4;
/// Every flag a `Binary` of erts 13 can have (`BIN_FLAG_MAGIC`, `_USR1`,
/// `_USR2`, `_DRV`): anything else in the first word is not a `Binary`.
const BIN_FLAGS: usize = 0xf;
/// A reference count above this is not one.
const MAX_REFC: isize = 1 << 40;

mod held;
pub mod spare;

/// `(references drivers hold to driver binaries, their bytes)` right now
/// (see [`held`]).
pub fn stats() -> (usize, usize) {
    held::totals()
}

fn bytes_of(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

const UNKNOWN: u8 = 0;
const USABLE: u8 = 1;
const UNUSABLE: u8 = 2;
static LAYOUT: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether `enif_alloc_binary` makes `Binary`s laid out as erts 13's
/// (checked once: flags without the magic bit, refc 1 at +8, `orig_size`
/// at +16 equal to the size asked for, data at +24); when it does not,
/// an error is logged once and no driver binary is made.
pub fn layout_ok() -> bool {
    match LAYOUT.load(Ordering::Acquire) {
        USABLE => true,
        UNUSABLE => false,
        _ => {
            let ok = probe_layout();
            if LAYOUT
                .compare_exchange(
                    UNKNOWN,
                    if ok { USABLE } else { UNUSABLE },
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
                && !ok
            {
                crate::effects::log_detached(
                    "the VM's Binary layout is not erts 13's (flags, refc, orig_size, \
                     orig_bytes): driver binaries are disabled, driver_alloc_binary returns NULL",
                );
            }
            ok
        }
    }
}

fn probe_layout() -> bool {
    const N: usize = 40;
    let Some(nb) = ffi::alloc_binary(N) else {
        return false;
    };
    let base = nb.ref_bin.cast::<usize>();
    let word = |i: usize| {
        // SAFETY: ref_bin is a fresh VM Binary of N data bytes that only
        // this function references: its first three words (i < 3) are
        // readable and only read here.
        unsafe { base.wrapping_add(i).read() }
    };
    let words = [word(0), word(1), word(2)];
    let ok = erts13_layout(words, N, nb.size, nb.ref_bin as usize, nb.data as usize);
    // SAFETY: the one reference alloc_binary gave us.
    unsafe { ffi::release_binary(nb.ref_bin) };
    ok
}

/// Whether a fresh `Binary` at `vm` of `n` data bytes, whose first
/// words are `words` and which `enif_alloc_binary` described as `size`
/// bytes at `data`, is laid out as erts 13's: flags without the magic bit,
/// refc 1, `orig_size` `n`, data 24 bytes in.
fn erts13_layout(words: [usize; 3], n: usize, size: usize, vm: usize, data: usize) -> bool {
    words[0] & !BIN_FLAGS == 0
        && words[0] & BIN_FLAG_MAGIC == 0
        && words[1] == 1
        && words[2] == n
        && size == n
        && data == vm + DRV_OFFSET + std::mem::offset_of!(DrvBinary, orig_bytes)
}

/// A pointer to a driver binary: a VM `Binary` seen as its `ErlDrvBinary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverBinary(*mut DrvBinary);

// SAFETY: a DriverBinary is a pointer to a VM Binary, a heap block not tied
// to any thread; other threads touch its reference count only with atomic
// operations, and its data is only read concurrently once exposed to
// Erlang, when the contract forbids the driver to write it.
unsafe impl Send for DriverBinary {}
// SAFETY: every method takes `self` by value and touches shared state only
// through the atomic reference count or the driver-owned data, read-only
// once exposed (same reasons as for Send).
unsafe impl Sync for DriverBinary {}

/// Why a pointer a driver passed is not a live driver binary.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// NULL pointer.
    Null,
    /// Its reference count is not positive: freed already.
    AlreadyFreed,
    /// Its header is not a `Binary`'s.
    Foreign,
}

impl DriverBinary {
    /// `driver_alloc_binary`: a new binary of `size` bytes, refc 1.
    pub fn alloc(size: usize) -> Option<DriverBinary> {
        if size > isize::MAX as usize / 2 || !layout_ok() {
            return None;
        }
        let nb = ffi::alloc_binary(size)?;
        // SAFETY: ref_bin is a live Binary (layout checked by layout_ok),
        // so ref_bin + 16 is its orig_size, inside the block.
        Some(DriverBinary(unsafe { vm_to_drv(nb.ref_bin) }))
    }

    /// [`alloc`](Self::alloc), up to [`spare::CAP`] bytes from the
    /// thread's spare binaries (see [`spare`]).
    pub fn alloc_pooled(size: usize) -> Option<DriverBinary> {
        if size <= spare::CAP {
            spare::take(size)
        } else {
            DriverBinary::alloc(size)
        }
    }

    /// A binary for a copy of `size` bytes made by `driver_enq` or
    /// `driver_pushq`: up to [`spare::BIG_MAX`] bytes from the thread's
    /// spare binaries (see [`spare::take_copy`]).
    pub fn alloc_copy(size: usize) -> Option<DriverBinary> {
        if size > isize::MAX as usize / 2 || !layout_ok() {
            return None;
        }
        spare::take_copy(size)
    }

    /// `driver_alloc_binary`: [`alloc_pooled`](Self::alloc_pooled), counted in
    /// [`stats`] until the driver gives its reference up.
    pub fn alloc_for_driver(size: usize) -> Option<DriverBinary> {
        let bin = DriverBinary::alloc_pooled(size)?;
        held::add(1, bytes_of(size));
        Some(bin)
    }

    /// The `ErlDrvBinary` of the VM `Binary` at `vm` (a caller's refc
    /// binary lent to a driver's `outputv`), without taking a reference:
    /// the term that holds it keeps it alive for the call.
    ///
    /// # Safety
    /// `vm` is a live, non-magic VM `Binary` kept alive for as long as the
    /// result is used without a reference of its own.
    pub unsafe fn lent(vm: usize) -> DriverBinary {
        // SAFETY: vm is a live Binary (caller's contract).
        DriverBinary(unsafe { vm_to_drv(vm as *mut c_void) })
    }

    /// Checks that `ptr` looks like a live driver binary (see the module
    /// documentation for what is detected).
    ///
    /// # Safety
    /// `ptr` must be NULL or readable for the 16 bytes that precede it; a
    /// pointer to a binary a driver got (live or freed, while the memory
    /// stays mapped) is.
    pub unsafe fn from_raw(ptr: *mut DrvBinary) -> Result<DriverBinary, BinaryError> {
        if ptr.is_null() {
            return Err(BinaryError::Null);
        }
        if !(ptr as usize).is_multiple_of(8) || (ptr as usize) < DRV_OFFSET + 4096 {
            return Err(BinaryError::Foreign);
        }
        let bin = DriverBinary(ptr);
        // SAFETY: the caller guarantees the 16 bytes before ptr readable
        // (ptr >= 4096 + 16, so the subtraction does not wrap); the flags
        // word is only read.
        let flags = unsafe { bin.vm().cast::<usize>().read() };
        if flags & !BIN_FLAGS != 0 || flags & BIN_FLAG_MAGIC != 0 {
            return Err(BinaryError::Foreign);
        }
        match bin.refc() {
            r if r <= 0 => Err(BinaryError::AlreadyFreed),
            r if r > MAX_REFC => Err(BinaryError::Foreign),
            _ => Ok(bin),
        }
    }

    /// The pointer the driver sees.
    pub fn as_ptr(self) -> *mut DrvBinary {
        self.0
    }

    /// The address of the VM `Binary` (what `binary_kind` calls a
    /// parent's key).
    pub fn vm_addr(self) -> usize {
        self.vm() as usize
    }

    fn flags_cell(&self) -> &AtomicUsize {
        // SAFETY: self is a live Binary (see refc_cell), whose flags word
        // is its first, aligned word; we only write it (POOLED) while no
        // term refers to the binary, with atomic stores.
        unsafe { &*self.vm().cast::<AtomicUsize>() }
    }

    /// Whether the binary goes back to [`spare`] when released last.
    fn is_pooled(&self) -> bool {
        self.flags_cell().load(Ordering::Relaxed) & BIN_FLAG_POOLED != 0
    }

    /// Marks the binary as pooled or not (see [`BIN_FLAG_POOLED`]).
    fn set_pooled(&self, pooled: bool) {
        let flags = self.flags_cell();
        let old = flags.load(Ordering::Relaxed);
        let new = if pooled {
            old | BIN_FLAG_POOLED
        } else {
            old & !BIN_FLAG_POOLED
        };
        if new != old {
            flags.store(new, Ordering::Relaxed);
        }
    }

    /// The VM `Binary`.
    fn vm(self) -> *mut c_void {
        self.0.cast::<u8>().wrapping_sub(DRV_OFFSET).cast()
    }

    fn refc_cell(&self) -> &AtomicIsize {
        let at = self.0.cast::<u8>().wrapping_sub(DRV_OFFSET - REFC_OFFSET);
        // SAFETY: self is a live Binary (made by alloc/lent/from_raw and
        // used while a reference is held), whose erts_refc_t (an aligned
        // word the VM only changes atomically) is 8 bytes before the
        // ErlDrvBinary.
        unsafe { &*at.cast::<AtomicIsize>() }
    }

    /// Whether the driver API allocated it (`BIN_FLAG_DRV`), as opposed to
    /// a caller's binary lent to `outputv`.
    pub fn is_driver_allocated(self) -> bool {
        // SAFETY: self is live; its flags word is only read (the VM does
        // not change it while references are held).
        let flags = unsafe { self.vm().cast::<usize>().read() };
        flags & BIN_FLAG_DRV != 0
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
        // SAFETY: offset <= end <= size(): data + offset stays inside the
        // data of the live binary.
        let start = unsafe { self.data().add(offset) };
        // SAFETY: start..start+len lies inside the data of a live binary,
        // which the caller keeps alive and unwritten for 'b; u8 has no
        // invalid values.
        Some(unsafe { std::slice::from_raw_parts(start, len) })
    }

    /// Size in bytes: `orig_size` (0 if negative). As natively, the VM
    /// trusts `orig_size`; a driver that enlarges it breaks its binary.
    pub fn size(self) -> usize {
        // SAFETY: self is live (see refc_cell); orig_size is an aligned
        // c_long field of its DrvBinary.
        let orig = unsafe { (*self.0).orig_size };
        usize::try_from(orig).unwrap_or(0)
    }

    /// Sets `orig_size` (a binary only the caller references, of at
    /// least `size` bytes).
    pub fn set_size(self, size: usize) {
        // SAFETY: self is live and referenced only by the caller, who
        // writes its own binary's orig_size field.
        unsafe { (*self.0).orig_size = size as libc::c_long };
    }

    /// Start of the data.
    pub fn data(self) -> *mut u8 {
        // SAFETY: self.0 points at the DrvBinary of a live Binary;
        // addr_of_mut! only computes the address of its orig_bytes field.
        unsafe { std::ptr::addr_of_mut!((*self.0).orig_bytes).cast() }
    }

    /// Current reference count.
    pub fn refc(self) -> isize {
        self.refc_cell().load(Ordering::Acquire)
    }

    /// Adds one reference; returns the new count.
    pub fn inc(self) -> isize {
        self.refc_cell().fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Drops one reference without freeing; returns the new count
    /// (`driver_binary_dec_refc`; natively `erts_refc_dectest`).
    pub fn dec(self) -> isize {
        self.refc_cell().fetch_sub(1, Ordering::AcqRel) - 1
    }

    /// Releases one reference; the VM frees the binary at zero.
    ///
    /// A pooled binary whose last reference this is goes back to
    /// [`spare`].
    pub fn release(self) {
        if self.refc() == 1 && self.is_pooled() {
            spare::recycle(self);
        } else {
            self.release_to_vm();
        }
    }

    /// Releases one reference to the VM (which frees at zero).
    fn release_to_vm(self) {
        // SAFETY: the caller gives up a reference it holds to this live,
        // non-magic Binary.
        unsafe { ffi::release_binary(self.vm()) };
    }

    /// `driver_free_binary`: [`release`](Self::release) of the driver's
    /// reference, counted out of [`stats`].
    pub fn free_by_driver(self) {
        self.uncount();
        self.release();
    }

    /// The driver gives up a reference (counted out of [`stats`])
    /// without releasing it: it goes to a term.
    fn uncount(self) {
        held::add(-1, -bytes_of(self.size()));
    }

    /// `driver_binary_inc_refc`: [`inc`](Self::inc), counted in
    /// [`stats`].
    pub fn inc_by_driver(self) -> isize {
        held::add(1, bytes_of(self.size()));
        self.inc()
    }

    /// `driver_binary_dec_refc`: [`dec`](Self::dec), counted out of
    /// [`stats`].
    pub fn dec_by_driver(self) -> isize {
        self.uncount();
        self.dec()
    }

    /// `driver_realloc_binary`: a binary of `size` bytes with the same data
    /// (truncated or extended), holding the caller's reference; `None` when
    /// out of memory (then `self` is unchanged).
    ///
    /// Resized in place (`enif_realloc_binary`) when the caller holds the
    /// only reference. Natively the runtime always resizes in place, which
    /// frees memory that a term or another reference may still use; here
    /// a shared binary is left as it is for the others and a new one takes
    /// the caller's reference.
    pub fn resize(self, size: usize) -> Option<DriverBinary> {
        let old_size = self.size();
        if size > isize::MAX as usize / 2 {
            return None;
        }
        if self.refc() == 1 {
            // SAFETY: refc 1: the caller holds the only reference to this
            // live, non-magic Binary, so nothing else points into the block
            // the VM may move.
            let nb = unsafe { ffi::realloc_binary(self.vm(), size) }?;
            // SAFETY: ref_bin is the resized live Binary.
            let resized = DriverBinary(unsafe { vm_to_drv(nb.ref_bin) });
            // Its capacity is now `size`: no longer one for the spares.
            resized.set_pooled(false);
            held::add(0, bytes_of(size) - bytes_of(old_size));
            return Some(resized);
        }
        let fresh = DriverBinary::alloc_for_driver(size)?;
        // SAFETY: self's data holds old_size bytes and fresh's `size`
        // bytes, both live (self is released only after the copy), and
        // they are different allocations, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.data(), fresh.data(), old_size.min(size)) };
        self.free_by_driver();
        Some(fresh)
    }

    /// Makes an Erlang binary term of `len` bytes at `offset` without
    /// copying (up to 64 bytes in all the VM makes a heap binary): the term
    /// takes one more reference, held until garbage collected.
    pub fn to_term<'a>(self, env: Env<'a>, offset: usize, len: usize) -> Term<'a> {
        self.inc();
        self.into_term(env, offset, len)
    }

    /// [`to_term`](Self::to_term) taking over the caller's reference (a
    /// binary-mode control reply: natively the reply term takes the
    /// driver's reference).
    pub fn into_term_from_driver<'a>(self, env: Env<'a>) -> Term<'a> {
        self.uncount();
        let len = self.size();
        self.into_term(env, 0, len)
    }

    fn into_term<'a>(self, env: Env<'a>, offset: usize, len: usize) -> Term<'a> {
        // The VM is to see no flag of ours (and frees the binary itself
        // once the term holds the last reference).
        self.set_pooled(false);
        let size = self.size();
        // SAFETY: env is the live env of the term being built; the caller
        // gives one reference to this live, non-magic Binary, whose size
        // bytes at data() are its data.
        let whole = unsafe { ffi::make_binary(env.as_c_arg(), self.vm(), self.data(), size) };
        let (offset, len) = match offset.checked_add(len) {
            Some(end) if end <= size => (offset, len),
            _ => (0, 0),
        };
        let raw = if offset == 0 && len == size {
            whole
        } else {
            // SAFETY: whole is a binary term of env of `size` bytes and
            // offset + len <= size (checked above).
            unsafe { ffi::make_sub_binary(env.as_c_arg(), whole, offset, len) }
        };
        // SAFETY: raw was made in env just above.
        unsafe { Term::new(env, raw) }
    }
}

/// The `ErlDrvBinary` of the VM `Binary` at `vm`.
///
/// # Safety
/// `vm` is a live `Binary` (at least 16 bytes long).
unsafe fn vm_to_drv(vm: *mut c_void) -> *mut DrvBinary {
    // SAFETY: a Binary's orig_size is 16 bytes in, inside the block.
    unsafe { vm.cast::<u8>().add(DRV_OFFSET) }.cast()
}

/// The reference count of the VM `Binary` at `vm` (for tests).
///
/// # Safety
/// `vm` is a live VM `Binary`.
pub unsafe fn vm_refc(vm: usize) -> isize {
    // SAFETY: vm is a live Binary (caller's contract).
    unsafe { DriverBinary::lent(vm) }.refc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_probe_accepts_erts_13_binaries() {
        assert!(layout_ok());
    }

    /// Other layouts are refused: a debug build's extra header word, a
    /// magic binary, a count or size elsewhere.
    #[test]
    fn layout_check_refuses_other_layouts() {
        let vm = 0x1000;
        assert!(erts13_layout([8, 1, 40], 40, 40, vm, vm + 24));
        assert!(!erts13_layout([8, 1, 40], 40, 40, vm, vm + 32));
        assert!(!erts13_layout([9, 1, 40], 40, 40, vm, vm + 24));
        assert!(!erts13_layout([0xdead_0000, 1, 40], 40, 40, vm, vm + 24));
        assert!(!erts13_layout([8, 40, 1], 40, 40, vm, vm + 24));
        assert!(!erts13_layout([8, 1, 40], 40, 39, vm, vm + 24));
    }

    #[test]
    fn alloc_sets_refc_one_and_size() {
        let b = DriverBinary::alloc(10).unwrap();
        assert_eq!(b.refc(), 1);
        assert_eq!(b.size(), 10);
        assert!((b.data() as usize).is_multiple_of(8));
        assert!(b.is_driver_allocated());
        assert_eq!(b.inc(), 2);
        assert_eq!(b.dec(), 1);
        b.release();
    }

    /// A count of 0 (what a freed binary keeps until its memory is
    /// reused) and a header that is not a `Binary`'s are rejected.
    #[test]
    fn freed_and_foreign_headers_are_detected() {
        let keep = DriverBinary::alloc(64).unwrap();
        // SAFETY: keep is a live binary: its header is readable.
        assert_eq!(unsafe { DriverBinary::from_raw(keep.as_ptr()) }, Ok(keep));
        assert_eq!(
            // SAFETY: from_raw returns before reading anything for NULL.
            unsafe { DriverBinary::from_raw(std::ptr::null_mut()) },
            Err(BinaryError::Null)
        );
        assert_eq!(keep.dec(), 0);
        // SAFETY: keep's memory is still allocated (its count was only
        // decremented), so its header is readable.
        let freed = unsafe { DriverBinary::from_raw(keep.as_ptr()) };
        assert_eq!(freed, Err(BinaryError::AlreadyFreed));
        keep.inc();
        let vm = keep.vm().cast::<usize>();
        // SAFETY: vm is keep's flags word, live and used by this test only.
        let flags = unsafe { vm.read() };
        for forged in [0x6564_635f_6269_6e31, flags | BIN_FLAG_MAGIC] {
            // SAFETY: as above.
            unsafe { vm.write(forged) };
            // SAFETY: keep's header is readable (live binary).
            let forged = unsafe { DriverBinary::from_raw(keep.as_ptr()) };
            assert_eq!(forged, Err(BinaryError::Foreign));
        }
        // SAFETY: as above: the original flags go back before the release.
        unsafe { vm.write(flags) };
        let mut words = [0usize; 8];
        // A pointer 16 bytes into a zeroed buffer: refc 0.
        let inside = words.as_mut_ptr().wrapping_add(2).cast::<DrvBinary>();
        // SAFETY: the 16 bytes before `inside` are words[0..2], readable.
        let r = unsafe { DriverBinary::from_raw(inside) };
        assert!(r.is_err() && r != Err(BinaryError::Null));
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

    /// A negative `orig_size` (a driver bug) reads as an empty binary.
    #[test]
    fn negative_orig_size_is_empty() {
        let b = DriverBinary::alloc(16).unwrap();
        // SAFETY: b is live and only this test uses it; orig_size is its
        // driver-writable DrvBinary field.
        unsafe { (*b.as_ptr()).orig_size = -5 };
        assert_eq!(b.size(), 0);
        // SAFETY: as above (the real size goes back before the release).
        unsafe { (*b.as_ptr()).orig_size = 16 };
        b.release();
    }

    #[test]
    fn huge_sizes_fail_cleanly() {
        assert!(DriverBinary::alloc(usize::MAX).is_none());
    }
}
