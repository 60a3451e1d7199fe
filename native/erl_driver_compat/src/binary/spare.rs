//! A few small driver binaries per thread kept for reuse: binaries of up
//! to [`CAP`] bytes (`driver_alloc_binary`, the copy of a heap binary for
//! an `outputv` vector, `driver_enq` of bytes) come from here, marked
//! pooled in their flags word, and go back here when their last reference
//! is released by our code (`driver_free_binary`, the end of the vector,
//! `driver_deq`) instead of to the VM's binary allocator, whose lock and
//! thread lookup cost ~45 ns per allocation and release, more than the
//! rest of a small copy. A binary that becomes a term, or is resized,
//! loses the mark (the VM frees it).

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use super::DriverBinary;

/// Data capacity of a spare binary: the largest heap binary.
pub const CAP: usize = crate::binary_kind::ONHEAP_BIN_LIMIT;

/// Spare binaries kept per thread at most.
const KEPT: usize = 8;

/// This thread's spare binaries (`ErlDrvBinary` addresses), each of
/// [`CAP`] bytes, pooled, and referenced only from here. Their count is 0
/// while they wait here, so that a driver freeing one again is caught
/// (`DriverBinary::from_raw`: already freed); released when the thread
/// ends.
struct Spares(RefCell<Vec<usize>>);

impl Drop for Spares {
    fn drop(&mut self) {
        for addr in self.0.get_mut().drain(..) {
            let bin = spare_bin(addr);
            bin.refc_cell().store(1, Ordering::Relaxed);
            bin.release_to_vm();
        }
    }
}

thread_local! {
    static SPARES: Spares = const { Spares(RefCell::new(Vec::new())) };
}

fn spare_bin(addr: usize) -> DriverBinary {
    // SAFETY: an address in SPARES is the ErlDrvBinary of a live binary
    // (its Binary 16 bytes before) that only the list references.
    unsafe { DriverBinary::lent(addr - 16) }
}

/// A binary of `len` bytes (at most [`CAP`]) with one reference, the
/// caller's: one of this thread's spare ones, or a new one of [`CAP`]
/// bytes. `None` when `len` is larger or no memory is left.
pub fn take(len: usize) -> Option<DriverBinary> {
    if len > CAP {
        return None;
    }
    let spare = SPARES.try_with(|s| s.0.borrow_mut().pop()).ok().flatten();
    let bin = match spare {
        Some(addr) => {
            let bin = spare_bin(addr);
            // One reference, the caller's.
            bin.refc_cell().store(1, Ordering::Release);
            bin
        }
        None => {
            let bin = DriverBinary::alloc(CAP)?;
            bin.set_pooled(true);
            bin
        }
    };
    bin.set_size(len);
    Some(bin)
}

/// Keeps `bin`, a pooled binary whose last reference the caller gives
/// up, for reuse (or releases it to the VM when this thread keeps
/// [`KEPT`] already).
pub(super) fn recycle(bin: DriverBinary) {
    let kept = SPARES.try_with(|s| {
        let mut spares = s.0.borrow_mut();
        let room = spares.len() < KEPT;
        if room {
            bin.set_size(CAP);
            // Free while it waits here (see SPARES).
            bin.refc_cell().store(0, Ordering::Release);
            spares.push(bin.as_ptr() as usize);
        }
        room
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
}
