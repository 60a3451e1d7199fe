//! A few driver binaries per thread kept for reuse: binaries of up to
//! [`CAP`] bytes (`driver_alloc_binary`, the copy of a heap binary for an
//! `outputv` vector, `driver_enq` of bytes) and the copies `driver_enq`
//! and `driver_pushq` make of up to [`BIG_MAX`] bytes come from here,
//! marked pooled in their flags word, and go back here when their last
//! reference is released by our code (`driver_free_binary`, the end of the
//! vector, `driver_deq`) instead of to the VM's binary allocator, whose
//! lock and thread lookup cost ~45 ns per allocation and release, more
//! than the rest of a small copy (or of a 1 KiB `driver_enq` +
//! `driver_deq`). A binary that becomes a term, or is resized, loses the
//! mark (the VM frees it).
//!
//! Memory: at most [`KEPT`] binaries of [`CAP`] bytes and [`BIG_KEPT`] of
//! at most [`BIG_MAX`] bytes wait per thread (~33 KiB), allocated by the
//! VM's binary allocator, so `erlang:memory(binary)` counts them; they
//! are not references drivers hold, so `info/0` does not.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use super::DriverBinary;

/// Data capacity of a small spare binary: the largest heap binary.
pub const CAP: usize = crate::binary_kind::ONHEAP_BIN_LIMIT;

/// The largest copy served from the big spares ([`take_copy`]).
pub const BIG_MAX: usize = 4096;

/// Small spare binaries kept per thread at most.
const KEPT: usize = 8;

/// Big spare binaries kept per thread at most.
const BIG_KEPT: usize = 4;

/// The capacity of a big spare binary for `len` bytes (`CAP < len <=
/// BIG_MAX`): the next power of two, or three quarters of it when that
/// is enough (less than half more than asked for).
fn class_of(len: usize) -> usize {
    let p = len.next_power_of_two();
    if len <= p / 4 * 3 {
        p / 4 * 3
    } else {
        p
    }
}

/// This thread's spare binaries (`ErlDrvBinary` addresses), each pooled
/// and referenced only from here: `small` of [`CAP`] bytes, `big` of the
/// capacity paired with it (a [`class_of`] value). Their count is 0 while
/// they wait here, so that a driver freeing one again is caught
/// (`DriverBinary::from_raw`: already freed); released when the thread
/// ends.
struct Spares {
    small: Vec<usize>,
    big: Vec<(usize, usize)>,
}

struct SparesCell(RefCell<Spares>);

impl Drop for SparesCell {
    fn drop(&mut self) {
        let spares = self.0.get_mut();
        let big = spares.big.drain(..).map(|(addr, _)| addr);
        for addr in spares.small.drain(..).chain(big) {
            release_spare(addr);
        }
    }
}

thread_local! {
    static SPARES: SparesCell = const {
        SparesCell(RefCell::new(Spares { small: Vec::new(), big: Vec::new() }))
    };
}

fn spare_bin(addr: usize) -> DriverBinary {
    // SAFETY: an address in SPARES is the ErlDrvBinary of a live binary
    // (its Binary 16 bytes before) that only the list references.
    unsafe { DriverBinary::lent(addr - 16) }
}

/// Gives the waiting spare binary at `addr` back to the VM.
fn release_spare(addr: usize) {
    let bin = spare_bin(addr);
    bin.refc_cell().store(1, Ordering::Relaxed);
    bin.release_to_vm();
}

/// A binary of `len` bytes with one reference, the caller's: the spare one
/// at `spare`, or a new pooled one of `cap` bytes.
fn hand_out(spare: Option<usize>, cap: usize, len: usize) -> Option<DriverBinary> {
    let bin = match spare {
        Some(addr) => {
            let bin = spare_bin(addr);
            bin.refc_cell().store(1, Ordering::Release);
            bin
        }
        None => {
            let bin = DriverBinary::alloc(cap)?;
            bin.set_pooled(true);
            bin
        }
    };
    bin.set_size(len);
    Some(bin)
}

/// A binary of `len` bytes (at most [`CAP`]) with one reference, the
/// caller's: one of this thread's spare ones, or a new one of [`CAP`]
/// bytes. `None` when `len` is larger or no memory is left.
pub fn take(len: usize) -> Option<DriverBinary> {
    if len > CAP {
        return None;
    }
    let spare = SPARES
        .try_with(|s| s.0.borrow_mut().small.pop())
        .ok()
        .flatten();
    hand_out(spare, CAP, len)
}

/// A binary for a copy of `len` bytes (`driver_enq`, `driver_pushq`) with
/// one reference, the caller's: [`take`] up to [`CAP`] bytes, then up to
/// [`BIG_MAX`] a spare one of `len`'s class or a new one of that class,
/// above that a new one of `len` bytes, not pooled. `None` when no memory
/// is left.
pub fn take_copy(len: usize) -> Option<DriverBinary> {
    if len <= CAP {
        return take(len);
    }
    if len > BIG_MAX {
        return DriverBinary::alloc(len);
    }
    let cap = class_of(len);
    let spare = SPARES
        .try_with(|s| {
            let big = &mut s.0.borrow_mut().big;
            let at = big.iter().rposition(|&(_, c)| c == cap)?;
            Some(big.swap_remove(at).0)
        })
        .ok()
        .flatten();
    hand_out(spare, cap, len)
}

/// Keeps `bin`, a pooled binary whose last reference the caller gives
/// up, for reuse (or releases it to the VM when this thread keeps enough
/// already). Its capacity is taken from its size: the size it was handed
/// out with, whose class is its capacity (a size a driver lowered gives a
/// smaller class, never a larger capacity than the binary has).
pub(super) fn recycle(bin: DriverBinary) {
    let size = bin.size();
    let kept = SPARES.try_with(|s| {
        let mut spares = s.0.borrow_mut();
        if size <= CAP || size > BIG_MAX {
            // A small one, or one a driver enlarged (its capacity unknown:
            // the small class is the safe one when it was small).
            if size > BIG_MAX || spares.small.len() >= KEPT {
                return false;
            }
            bin.set_size(CAP);
            bin.refc_cell().store(0, Ordering::Release);
            spares.small.push(bin.as_ptr() as usize);
            return true;
        }
        let cap = class_of(size);
        if spares.big.len() >= BIG_KEPT {
            // Make room: the oldest goes back to the VM.
            let (old, _) = spares.big.remove(0);
            release_spare(old);
        }
        bin.set_size(cap);
        // Free while it waits here (see Spares).
        bin.refc_cell().store(0, Ordering::Release);
        spares.big.push((bin.as_ptr() as usize, cap));
        true
    });
    if kept != Ok(true) {
        bin.release_to_vm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled binary released last is reused; one the driver keeps a
    /// reference to, or that became a term or was resized, is not; sizes
    /// above [`CAP`] are not served.
    #[test]
    fn spares_are_reused_unless_still_referenced_or_unmarked() {
        let a = take(8).unwrap();
        assert_eq!((a.size(), a.refc()), (8, 1));
        assert!(a.is_pooled());
        a.release();
        // Waiting in the spares, it reads as freed.
        // SAFETY: a's memory is kept by the spares: its header is readable.
        let again = unsafe { DriverBinary::from_raw(a.as_ptr()) };
        assert_eq!(again, Err(crate::binary::BinaryError::AlreadyFreed));
        let b = take(3).unwrap();
        assert_eq!((b, b.size(), b.refc()), (a, 3, 1));
        b.inc(); // the driver keeps it
        b.release();
        assert_eq!(b.refc(), 1);
        let c = take(CAP).unwrap();
        assert_ne!(c, b);
        assert!(take(CAP + 1).is_none());
        b.release();
        let d = take(5).unwrap();
        assert_eq!(d, b);
        let d = d.resize(6).unwrap();
        assert!(!d.is_pooled());
        d.release();
        c.release();
    }

    #[test]
    fn classes_round_up_by_less_than_half() {
        assert_eq!(class_of(65), 96);
        assert_eq!(class_of(96), 96);
        assert_eq!(class_of(97), 128);
        assert_eq!(class_of(600), 768);
        assert_eq!(class_of(1024), 1024);
        assert_eq!(class_of(1025), 1536);
        assert_eq!(class_of(BIG_MAX), BIG_MAX);
        for len in CAP + 1..=BIG_MAX {
            let c = class_of(len);
            assert!(c >= len && c * 2 < len * 3, "{len} -> {c}");
            // The class of a size handed out is the capacity.
            assert_eq!(class_of(c), c);
        }
    }

    /// A copy of 1 KiB (`driver_enq`) released last (`driver_deq`) is
    /// reused for the next copy of its class, with the size asked for;
    /// a copy above [`BIG_MAX`] is not pooled; at most [`BIG_KEPT`] wait.
    #[test]
    fn big_copies_are_reused_by_class() {
        let a = take_copy(1024).unwrap();
        assert_eq!((a.size(), a.refc()), (1024, 1));
        assert!(a.is_pooled());
        a.release();
        // SAFETY: a's memory is kept by the spares: its header is readable.
        let again = unsafe { DriverBinary::from_raw(a.as_ptr()) };
        assert_eq!(again, Err(crate::binary::BinaryError::AlreadyFreed));
        // Another class does not take it.
        let other = take_copy(200).unwrap();
        assert_ne!(other, a);
        let b = take_copy(1000).unwrap();
        assert_eq!((b, b.size(), b.refc()), (a, 1000, 1));
        b.release();
        other.release();
        let huge = take_copy(BIG_MAX + 1).unwrap();
        assert!(!huge.is_pooled());
        huge.release();
        // Five of one class released: four wait, the first went to the VM.
        let five: Vec<DriverBinary> = (0..5).map(|_| take_copy(3000).unwrap()).collect();
        for &bin in &five {
            bin.release();
        }
        let waiting = SPARES.with(|s| {
            let spares = s.0.borrow();
            assert!(spares.big.len() <= BIG_KEPT);
            spares.big.iter().filter(|&&(_, c)| c == 3072).count()
        });
        assert_eq!(waiting, BIG_KEPT);
        let c = take_copy(3072).unwrap();
        assert!(five[1..].contains(&c));
        c.release();
    }
}
