//! A few small driver binaries per thread kept for reuse by the copies
//! erl_driver_compat makes itself (the copy of a heap binary for an
//! `outputv` vector, `driver_enq` of bytes): a copy the driver did not keep
//! goes back here instead of to the VM's binary allocator, whose lock and
//! thread lookup cost ~45 ns per allocation and release, more than the
//! rest of a small copy. Only binaries from [`take`] (or others of at least
//! [`CAP`] bytes) may be given back: the caller tracks where each came
//! from.

use std::cell::RefCell;

use super::DriverBinary;

/// Data capacity of a spare binary: the largest heap binary.
pub const CAP: usize = crate::binary_kind::ONHEAP_BIN_LIMIT;

/// Spare binaries kept per thread at most.
const KEPT: usize = 8;

/// This thread's spare binaries (`ErlDrvBinary` addresses), each of
/// [`CAP`] bytes or more and referenced only from here; released when
/// the thread ends.
struct Spares(RefCell<Vec<usize>>);

impl Drop for Spares {
    fn drop(&mut self) {
        for addr in self.0.get_mut().drain(..) {
            spare_bin(addr).release();
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
        Some(addr) => spare_bin(addr),
        None => DriverBinary::alloc(CAP)?,
    };
    bin.set_size(len);
    Some(bin)
}

/// Gives back one reference to a binary of at least [`CAP`] bytes (one
/// from [`take`]): kept for reuse when it was the last reference and this
/// thread keeps fewer than [`KEPT`], else released.
pub fn give_back(bin: DriverBinary) {
    if bin.refc() == 1 {
        bin.set_size(CAP);
        let kept = SPARES.try_with(|s| {
            let mut spares = s.0.borrow_mut();
            let room = spares.len() < KEPT;
            if room {
                spares.push(bin.as_ptr() as usize);
            }
            room
        });
        if kept == Ok(true) {
            return;
        }
    }
    bin.release();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary given back is reused unless the driver kept a reference
    /// to it; sizes above [`CAP`] are not served.
    #[test]
    fn spares_are_reused_unless_the_driver_keeps_them() {
        let a = take(8).unwrap();
        assert_eq!((a.size(), a.refc()), (8, 1));
        give_back(a);
        let b = take(3).unwrap();
        assert_eq!((b, b.size()), (a, 3));
        b.inc(); // the driver keeps it
        give_back(b);
        assert_eq!(b.refc(), 1);
        let c = take(CAP).unwrap();
        assert_ne!(c, b);
        assert!(take(CAP + 1).is_none());
        b.release();
        give_back(c);
    }
}
