//! The port queue (`driver_enq` & co), its port data lock (`ErlDrvPDL`)
//! and the pending close a non-empty queue delays.
//!
//! # Why the queue has its own lock
//!
//! A driver may use its port's queue from its own threads, under the port
//! data lock (PDL) it created, while callbacks of the port run under the
//! port's lock. So the queue cannot live in the port's lock-token cells
//! ([`crate::port::state`]): it is guarded by its own mutex, taken for the
//! duration of one queue call. The PDL is a separate, real mutex with a
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

use std::any::Any;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};

use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Mutex, RawMutex};

use crate::abi::{DrvBinary, SysIOVec};
use crate::binary::DriverBinary;
use crate::port::ExitReason;

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

    /// Takes a reference for each segment (copying those without a
    /// binary), dropping zero-length ones. On failure nothing is queued.
    fn hold(segments: &[Segment]) -> Result<Vec<(SysIOVec, DriverBinary)>, NoMemory> {
        let mut held: Vec<(SysIOVec, DriverBinary)> = Vec::with_capacity(segments.len());
        for seg in segments.iter().filter(|s| s.len > 0) {
            let (base, bin) = match seg.bin {
                Some(bin) => {
                    bin.inc();
                    (seg.base, bin)
                }
                None => {
                    let Some(bin) = DriverBinary::alloc(seg.len) else {
                        for (_, b) in held {
                            b.release();
                        }
                        return Err(NoMemory);
                    };
                    // SAFETY: the caller's segment is readable for len
                    // bytes; the new binary holds len bytes.
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
            held.push((iov, bin));
        }
        Ok(held)
    }

    /// Appends `segments` (`driver_enqv`); `size` is added to the queue's
    /// size as given (natively the vector's `size`, not the sum of its
    /// segments).
    pub fn enqueue(&mut self, segments: &[Segment], size: usize) -> Result<(), NoMemory> {
        let held = IoQueue::hold(segments)?;
        if self.head > 0 && self.head >= self.iov.len() / 2 {
            self.iov.drain(..self.head);
            self.binv.drain(..self.head);
            self.head = 0;
        }
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

/// One port's queue service: the queue, its PDL and the pending close.
pub struct PortQueue {
    queue: Mutex<IoQueue>,
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
            queue: Mutex::new(IoQueue::new()),
            pdl: AtomicUsize::new(0),
            pending: Mutex::new(None),
        }
    }

    /// Runs `f` on the queue (one queue operation; `f` must not call
    /// driver code).
    pub fn with<R>(&self, f: impl FnOnce(&mut IoQueue) -> R) -> R {
        f(&mut self.queue.lock())
    }

    /// Bytes queued.
    pub fn size(&self) -> usize {
        self.queue.lock().size()
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
        self.queue.lock().clear();
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

/// An `ErlDrvPDL` as the driver passes it: an address that is used only
/// once found among the live PDLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdlHandle(pub usize);

impl PdlHandle {
    /// The handle of `ptr`.
    pub fn from_ptr<T>(ptr: *mut T) -> PdlHandle {
        PdlHandle(ptr as usize)
    }

    /// The pointer given to the driver.
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// True for the NULL handle.
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

/// A port data lock (`ErlDrvPDL`): a mutex the driver locks and unlocks
/// from any thread, and a reference count; it lives until the count
/// reaches zero (the port holds one reference while it is open).
pub struct Pdl {
    raw: RawMutex,
    refc: AtomicIsize,
    /// The thread holding the mutex (0: none).
    owner: AtomicU64,
    /// Keeps the port's memory (and so its `ErlDrvPort` handle) from
    /// being reused while the PDL lives, as natively.
    _owner_port: Box<dyn Any + Send + Sync>,
}

/// Live PDLs: a pointer a driver passes is used only when it is in here.
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

/// Whether [`Pdl::lock`] took the mutex.
#[derive(Debug, PartialEq, Eq)]
pub enum Locked {
    /// Locked now.
    Now,
    /// This thread holds it already.
    AlreadyHeld,
    /// Not a live PDL.
    Invalid,
}

fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

impl Pdl {
    fn create(owner: Box<dyn Any + Send + Sync>) -> PdlHandle {
        let pdl = Box::into_raw(Box::new(Pdl {
            raw: RawMutex::INIT,
            refc: AtomicIsize::new(1),
            owner: AtomicU64::new(0),
            _owner_port: owner,
        }));
        LIVE.lock()
            .get_or_insert_with(HashSet::new)
            .insert(pdl as usize);
        PdlHandle::from_ptr(pdl)
    }

    /// Runs `f` on `pdl` if it is live, with the registry locked (so that
    /// it cannot be destroyed meanwhile).
    fn live<R>(pdl: PdlHandle, f: impl FnOnce(&Pdl) -> R) -> Option<R> {
        let live = LIVE.lock();
        if !live.as_ref().is_some_and(|s| s.contains(&pdl.0)) {
            return None;
        }
        // SAFETY: registered PDLs are live allocations; deregistration
        // (under this lock) precedes their destruction.
        Some(f(unsafe { &*pdl.as_ptr::<Pdl>() }))
    }

    /// True when `pdl` is a live PDL.
    pub fn is_live(pdl: PdlHandle) -> bool {
        Pdl::live(pdl, |_| ()).is_some()
    }

    /// The reference count (`driver_pdl_get_refc`); `None` when not live.
    pub fn refc(pdl: PdlHandle) -> Option<isize> {
        Pdl::live(pdl, |p| p.refc.load(Ordering::Acquire))
    }

    /// `driver_pdl_inc_refc`: the new count.
    pub fn inc_refc(pdl: PdlHandle) -> Option<isize> {
        Pdl::live(pdl, |p| p.refc.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// `driver_pdl_dec_refc`: the new count; the PDL is destroyed at zero.
    /// An unknown pointer gives `None`. (A driver that gives up more
    /// references than it took frees a PDL others may still use, as
    /// natively.)
    pub fn dec_refc(pdl: PdlHandle) -> Option<isize> {
        let mut live = LIVE.lock();
        let set = live.as_mut()?;
        if !set.contains(&pdl.0) {
            return None;
        }
        let ptr = pdl.as_ptr::<Pdl>();
        // SAFETY: registered, so live (see `live`).
        let n = unsafe { &*ptr }.refc.fetch_sub(1, Ordering::AcqRel) - 1;
        if n <= 0 {
            set.remove(&pdl.0);
            drop(live);
            // SAFETY: no reference remains and the pointer is no longer
            // registered; it came from Box::into_raw in `create`.
            drop(unsafe { Box::from_raw(ptr) });
        }
        Some(n)
    }

    /// `driver_pdl_lock`: takes a reference and the mutex.
    pub fn lock(pdl: PdlHandle) -> Locked {
        let me = thread_id();
        let Some(held) = Pdl::live(pdl, |p| {
            if p.owner.load(Ordering::Acquire) == me {
                return true;
            }
            p.refc.fetch_add(1, Ordering::AcqRel);
            false
        }) else {
            return Locked::Invalid;
        };
        if held {
            return Locked::AlreadyHeld;
        }
        // SAFETY: our reference keeps the PDL alive until `unlock`.
        let p = unsafe { &*pdl.as_ptr::<Pdl>() };
        p.raw.lock();
        p.owner.store(me, Ordering::Release);
        Locked::Now
    }

    /// `driver_pdl_unlock`: releases the mutex and the reference `lock`
    /// took. False when this thread does not hold it.
    pub fn unlock(pdl: PdlHandle) -> bool {
        let me = thread_id();
        let held = Pdl::live(pdl, |p| {
            p.owner
                .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if held != Some(true) {
            return false;
        }
        let raw = pdl.as_ptr::<Pdl>();
        // SAFETY: the reference taken by `lock` keeps the PDL alive, so
        // `raw` points at a live Pdl.
        let this = unsafe { &*raw };
        // SAFETY: this thread holds the mutex: it was the owner.
        unsafe { this.raw.unlock() };
        // Gives back the reference `lock` took.
        Pdl::dec_refc(pdl);
        true
    }

    /// True when the calling thread holds `pdl`.
    pub fn held_by_me(pdl: PdlHandle) -> bool {
        let me = thread_id();
        Pdl::live(pdl, |p| p.owner.load(Ordering::Acquire) == me).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
