//! The port queue (`driver_enq` & co), its port data lock (`ErlDrvPDL`)
//! and the pending close a non-empty queue delays.
//!
//! # Why the queue has its own lock
//!
//! A driver may use its port's queue from its own threads, under the port
//! data lock (PDL) it created, while callbacks of the port run under the
//! port's lock. So the queue cannot live in the port's lock-token cells
//! ([`crate::port::state`]): it is guarded by its own lock (`QueueLock`),
//! taken for the duration of one queue call. The PDL is a separate, real mutex with a
//! reference count, which the driver locks around sequences of queue calls
//! made from its threads (`driver_peekq` then `driver_deq`); we never need
//! it for memory safety, only when the port ends (the queue is cleared
//! under it, as natively, so that a thread holding it never sees its
//! segments freed underneath).
//!
//! # Layout and reference counts (as natively, `erl_io_queue.c`)
//!
//! The queue is two parallel arrays, `SysIOVec` segments and the driver
//! binary holding each segment's data, from `head` to the end; the arrays
//! are what `driver_peekq`/`driver_peekqv` hand out, valid until the next
//! queue operation. Each queued segment holds one reference to its binary
//! (`spec/driver_binary_refc.mail.txt`): `driver_enq_bin` & co take one,
//! `driver_enq`/`driver_pushq` copy into a new binary whose only
//! reference is the queue's, and `driver_deq` releases a segment's
//! reference once the segment is consumed completely. Zero-length segments
//! are never queued.
//!
//! The PDL itself is in [`pdl`].

mod pdl;

use std::any::Any;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::abi::{DrvBinary, SysIOVec};
use crate::binary::DriverBinary;
use crate::port::ExitReason;

pub use pdl::{Locked, Pdl, PdlHandle};

/// One segment to queue: `len` bytes at `base`, held by `bin` (or copied
/// into a new binary when `bin` is `None`).
#[derive(Clone, Copy)]
pub struct Segment {
    /// Start of the data.
    pub base: *mut c_char,
    /// Its length.
    pub len: usize,
    /// The driver binary the data lies in, if any.
    pub bin: Option<DriverBinary>,
}

/// The segments and their binaries (see the module documentation).
pub struct IoQueue {
    iov: Vec<SysIOVec>,
    binv: Vec<*mut DrvBinary>,
    head: usize,
    size: usize,
}

// SAFETY: the raw pointers are segments of driver binaries the queue holds
// a reference to (atomic reference counts); the queue is only reached
// through its mutex.
unsafe impl Send for IoQueue {}

/// A binary could not be allocated for a copied segment.
#[derive(Debug, PartialEq, Eq)]
pub struct NoMemory;

/// Segments with a reference each, ready to be queued ([`IoQueue::hold`]);
/// the first without an allocation.
struct Held {
    first: Option<(SysIOVec, DriverBinary)>,
    rest: Vec<(SysIOVec, DriverBinary)>,
}

impl Held {
    /// Number of segments.
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Gives the references back (nothing was queued).
    fn release(self) {
        for (_, bin) in self.into_iter() {
            bin.release();
        }
    }
}

impl IntoIterator for Held {
    type Item = (SysIOVec, DriverBinary);
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<Self::Item>, std::vec::IntoIter<Self::Item>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl Default for IoQueue {
    fn default() -> Self {
        IoQueue::new()
    }
}

impl IoQueue {
    /// An empty queue.
    pub const fn new() -> IoQueue {
        IoQueue {
            iov: Vec::new(),
            binv: Vec::new(),
            head: 0,
            size: 0,
        }
    }

    /// Bytes queued (`driver_sizeq`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.iov.len() - self.head
    }

    /// Takes a reference for `seg` (copying it into a new binary when it
    /// has none).
    #[inline(always)]
    fn hold_one(seg: &Segment) -> Result<(SysIOVec, DriverBinary), NoMemory> {
        let (base, bin) = match seg.bin {
            Some(bin) => {
                bin.inc();
                (seg.base, bin)
            }
            None => {
                let bin = DriverBinary::alloc_copy(seg.len).ok_or(NoMemory)?;
                // SAFETY: the caller's segment is readable for len bytes;
                // the new binary holds len bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(seg.base.cast::<u8>(), bin.data(), seg.len)
                };
                (bin.data().cast::<c_char>(), bin)
            }
        };
        let iov = SysIOVec {
            iov_base: base,
            iov_len: seg.len,
        };
        Ok((iov, bin))
    }

    /// Takes a reference for each segment (copying those without a
    /// binary), dropping zero-length ones. On failure nothing is queued.
    fn hold(segments: &[Segment]) -> Result<Held, NoMemory> {
        let mut held = Held {
            first: None,
            rest: Vec::new(),
        };
        for seg in segments.iter().filter(|s| s.len > 0) {
            let Ok(one) = IoQueue::hold_one(seg) else {
                held.release();
                return Err(NoMemory);
            };
            if held.first.is_none() {
                held.first = Some(one);
            } else {
                held.rest.push(one);
            }
        }
        Ok(held)
    }

    /// Drops the consumed segments before the head once they are half of
    /// the arrays.
    fn compact(&mut self) {
        if self.head > 0 && self.head >= self.iov.len() / 2 {
            self.iov.drain(..self.head);
            self.binv.drain(..self.head);
            self.head = 0;
        }
    }

    /// Appends `segments` (`driver_enqv`); `size` is added to the queue's
    /// size as given (natively the vector's `size`, not the sum of its
    /// segments). One segment (`driver_enq`, `driver_enq_bin`) is queued
    /// without gathering the segments first.
    pub fn enqueue(&mut self, segments: &[Segment], size: usize) -> Result<(), NoMemory> {
        if let [seg] = segments {
            if seg.len > 0 {
                let (iov, bin) = IoQueue::hold_one(seg)?;
                self.compact();
                self.iov.push(iov);
                self.binv.push(bin.as_ptr());
            }
            self.size += size;
            return Ok(());
        }
        let held = IoQueue::hold(segments)?;
        self.compact();
        for (iov, bin) in held {
            self.iov.push(iov);
            self.binv.push(bin.as_ptr());
        }
        self.size += size;
        Ok(())
    }

    /// Prepends `segments`, keeping their order (`driver_pushqv`).
    pub fn push_front(&mut self, segments: &[Segment], size: usize) -> Result<(), NoMemory> {
        let held = IoQueue::hold(segments)?;
        let n = held.len();
        if self.head < n {
            // Make room before the head: as much again as is queued.
            let room = n + self.segments();
            let empty = SysIOVec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            let mut iov = vec![empty; room];
            iov.extend_from_slice(&self.iov[self.head..]);
            let mut binv = vec![std::ptr::null_mut(); room];
            binv.extend_from_slice(&self.binv[self.head..]);
            self.iov = iov;
            self.binv = binv;
            self.head = room;
        }
        self.head -= n;
        for (i, (iov, bin)) in held.into_iter().enumerate() {
            self.iov[self.head + i] = iov;
            self.binv[self.head + i] = bin.as_ptr();
        }
        self.size += size;
        Ok(())
    }

    /// Drops `n` bytes from the head (`driver_deq`); `None` when fewer are
    /// queued. Returns the bytes that remain.
    pub fn dequeue(&mut self, n: usize) -> Option<usize> {
        if n > self.size {
            return None;
        }
        self.size -= n;
        let mut left = n;
        while left > 0 && self.head < self.iov.len() {
            let seg = &mut self.iov[self.head];
            if seg.iov_len <= left {
                left -= seg.iov_len;
                let bin = std::mem::replace(&mut self.binv[self.head], std::ptr::null_mut());
                release(bin);
                self.head += 1;
            } else {
                seg.iov_base = seg.iov_base.wrapping_add(left);
                seg.iov_len -= left;
                left = 0;
            }
        }
        if self.head == self.iov.len() {
            self.iov.clear();
            self.binv.clear();
            self.head = 0;
        }
        Some(self.size)
    }

    /// The segments and their binaries from the head (`driver_peekq`,
    /// `driver_peekqv`): NULL pointers when the queue is empty.
    pub fn peek(&mut self) -> (*mut SysIOVec, *mut *mut DrvBinary, usize) {
        let n = self.segments();
        if n == 0 {
            return (std::ptr::null_mut(), std::ptr::null_mut(), 0);
        }
        let head = self.head;
        (
            self.iov[head..].as_mut_ptr(),
            self.binv[head..].as_mut_ptr(),
            n,
        )
    }

    /// Forgets the size but keeps the segments, as a native driver failure
    /// does before `stop` (the segments go when the port is gone).
    pub fn forget_size(&mut self) {
        self.size = 0;
    }

    /// Releases every segment.
    pub fn clear(&mut self) {
        for bin in self.binv.drain(self.head..) {
            release(bin);
        }
        self.iov.clear();
        self.binv.clear();
        self.head = 0;
        self.size = 0;
    }
}

impl Drop for IoQueue {
    fn drop(&mut self) {
        self.clear();
    }
}

fn release(bin: *mut DrvBinary) {
    // SAFETY: a queued binary is one of ours and holds our reference.
    if let Ok(b) = unsafe { DriverBinary::from_raw(bin) } {
        b.release();
    }
}

/// A close that waits for the queue to empty (flush-before-close).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingClose {
    /// The reason the port was closed with.
    pub reason: ExitReason,
    /// `{Port, closed}` goes to the connected process once the port is
    /// gone (the close came as `{Owner, close}`).
    pub send_closed: bool,
    /// The close that started the flush is still running (a driver
    /// failure in `flush` ends the port within that close).
    pub in_close: bool,
}

/// The queue behind a lock held for one queue operation (never driver
/// code): a flag taken with one atomic
/// exchange and given back with a plain release store. The queue is
/// reached by one thread at a time in a correct driver (the port's
/// callbacks, or a thread holding the PDL), so the lock only guards
/// against drivers that race; it costs one locked instruction per queue
/// call where a mutex (`parking_lot`'s unlock is a compare-exchange)
/// costs two, each waiting for the stores before it (`driver_enq` +
/// `driver_deq` of 1 KiB: the two mutexes' locked instructions were ~80 %
/// of those functions' own samples). A waiter spins a little, then
/// yields its time slice.
struct QueueLock {
    locked: std::sync::atomic::AtomicBool,
    queue: std::cell::UnsafeCell<IoQueue>,
}

// SAFETY: the IoQueue inside is Send and reached only by the thread that
// holds the flag (see `with`).
unsafe impl Sync for QueueLock {}

impl QueueLock {
    const fn new() -> QueueLock {
        QueueLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            queue: std::cell::UnsafeCell::new(IoQueue::new()),
        }
    }

    /// Runs `f` on the queue with the flag held.
    fn with<R>(&self, f: impl FnOnce(&mut IoQueue) -> R) -> R {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        /// Gives the flag back, also when `f` unwinds.
        struct Unlock<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: this thread holds the flag (acquired above, released by
        // _unlock after f returns), so no other reference to the queue
        // exists while f runs; f calls no queue operation (no reentry).
        f(unsafe { &mut *self.queue.get() })
    }
}

/// One port's queue service: the queue, its PDL and the pending close.
pub struct PortQueue {
    queue: QueueLock,
    pdl: AtomicUsize,
    pending: Mutex<Option<PendingClose>>,
}

impl Default for PortQueue {
    fn default() -> Self {
        PortQueue::new()
    }
}

impl PortQueue {
    /// An empty queue without PDL.
    pub fn new() -> PortQueue {
        PortQueue {
            queue: QueueLock::new(),
            pdl: AtomicUsize::new(0),
            pending: Mutex::new(None),
        }
    }

    /// Runs `f` on the queue (one queue operation; `f` must not call
    /// driver code).
    pub fn with<R>(&self, f: impl FnOnce(&mut IoQueue) -> R) -> R {
        self.queue.with(f)
    }

    /// Bytes queued.
    pub fn size(&self) -> usize {
        self.queue.with(|q| q.size())
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// The port's PDL (NULL when the driver created none).
    pub fn pdl(&self) -> PdlHandle {
        PdlHandle(self.pdl.load(Ordering::Acquire))
    }

    /// `driver_pdl_create`: a new PDL for the port, whose memory `owner`
    /// (the port) keeps alive as long as the PDL lives; NULL when the port
    /// has one already.
    pub fn create_pdl(&self, owner: Box<dyn Any + Send + Sync>) -> PdlHandle {
        let pdl = Pdl::create(owner);
        match self
            .pdl
            .compare_exchange(0, pdl.0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => pdl,
            Err(_) => {
                // Never published: this frees it.
                Pdl::dec_refc(pdl);
                PdlHandle(0)
            }
        }
    }

    /// The port is gone: the queue is cleared under the PDL (unless this
    /// thread holds it already) and the port's reference to the PDL is
    /// dropped.
    pub fn close(&self) {
        let pdl = PdlHandle(self.pdl.swap(0, Ordering::AcqRel));
        let locked = !pdl.is_null() && Pdl::lock(pdl) == Locked::Now;
        self.queue.with(IoQueue::clear);
        if locked {
            Pdl::unlock(pdl);
        }
        if !pdl.is_null() {
            // The port's own reference.
            Pdl::dec_refc(pdl);
        }
    }

    /// Starts waiting for the queue to empty before the port closes.
    pub fn start_flush(&self, pending: PendingClose) {
        *self.pending.lock() = Some(pending);
    }

    /// True while a close waits for the queue to empty.
    pub fn is_flushing(&self) -> bool {
        self.pending.lock().is_some()
    }

    /// The pending close, if any.
    pub fn pending(&self) -> Option<PendingClose> {
        self.pending.lock().clone()
    }

    /// Marks the close that started the flush as returned.
    pub fn close_returned(&self) {
        if let Some(p) = self.pending.lock().as_mut() {
            p.in_close = false;
        }
    }

    /// Ends the wait; returns what was pending.
    pub fn end_flush(&self) -> Option<PendingClose> {
        self.pending.lock().take()
    }
}

impl Drop for PortQueue {
    fn drop(&mut self) {
        let pdl = PdlHandle(*self.pdl.get_mut());
        if !pdl.is_null() {
            // The port's own reference (the port never closed).
            Pdl::dec_refc(pdl);
        }
    }
}

#[cfg(test)]
mod tests;
