//! "Queue handling": the port queue (`driver_enq` & co) and the port data
//! lock (`driver_pdl_*`), on [`crate::queue`].
//!
//! Unlike most of the API these functions may be called from the driver's
//! own threads (under the port's PDL), so they do not need the running
//! callback: a port handle is the running callback's port or any port that
//! is still open or closing; a port that is gone gives the native error
//! values (`-1`, `(size_t)-1`, NULL with `*vlen == -1`).

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

use super::guard;
use crate::abi::{DrvBinary, DrvPort, IOVec, SizeT, SysIOVec};
use crate::binary::DriverBinary;
use crate::context;
use crate::effects::log_detached;
use crate::port::state::Status;
use crate::port::Port;
use crate::queue::{Locked, Pdl, PdlHandle, Segment};

/// `(size_t)-1`, the error value of the functions returning a size.
const SIZE_ERROR: SizeT = SizeT::MAX;

/// Reports a bad argument: fails the calling port from inside a callback
/// (as the rest of the API does), logs it from a driver thread.
fn bad(func: &'static str, what: &str) {
    if context::with_current(|ctx| super::misuse(ctx, func, what)).is_none() {
        log_detached(&format!("{func} called with {what}; ignored"));
    }
}

/// Runs `f` on the port `handle` names while it is open or closing: the
/// running callback's own port, else any registered port (another port of
/// the driver, or the port of a driver thread). `None` once it is gone.
fn with_queue_port<R>(
    handle: DrvPort,
    func: &'static str,
    f: impl FnOnce(&Port) -> R,
) -> Option<R> {
    enum Own<R> {
        NotCurrent,
        Gone,
        Done(R),
    }
    let mut f = Some(f);
    let own = context::with_current(|ctx| {
        if !std::ptr::eq(ctx.port(), handle as *const Port) {
            return Own::NotCurrent;
        }
        if ctx.state().status() == Status::Closed {
            return Own::Gone;
        }
        Own::Done(f.take().map(|f| f(ctx.port())))
    });
    match own {
        Some(Own::Done(result)) => result,
        Some(Own::Gone) => None,
        Some(Own::NotCurrent) => {
            let port = crate::port::lookup_handle(handle)?;
            f.take().map(|f| f(&port))
        }
        None => {
            // No callback runs on this thread: a driver thread, which must
            // hold the port's data lock around queue calls.
            let port = crate::port::lookup_handle(handle)?;
            let pdl = port.queue.pdl();
            if pdl.is_null() || !Pdl::held_by_me(pdl) {
                log_detached(&format!(
                    "{func} called from a thread that does not hold the port's data lock \
                     (driver_pdl_lock); the queue stays consistent, but the driver races"
                ));
            }
            f.take().map(|f| f(&port))
        }
    }
}

/// The segments of `ev` after skipping `skip` bytes, and the number of
/// bytes they add to the queue; `Ok(None)` when nothing is left. As
/// natively, the skipped part of the driver's vector is consumed in place.
///
/// # Safety
/// `ev` is NULL or a valid `ErlIOVec` whose arrays hold `vsize` entries.
unsafe fn segments_of(
    ev: *mut IOVec,
    skip: usize,
) -> Result<Option<(Vec<Segment>, usize)>, String> {
    if ev.is_null() {
        return Err("a NULL ErlIOVec".into());
    }
    // SAFETY: non-NULL, valid per the function's contract.
    let ev = unsafe { &*ev };
    if ev.size <= skip {
        return Ok(None);
    }
    let n =
        usize::try_from(ev.vsize).map_err(|_| format!("an ErlIOVec with vsize {}", ev.vsize))?;
    if n > 0 && ev.iov.is_null() {
        return Err("an ErlIOVec without segments".into());
    }
    // SAFETY: the contract: the arrays hold vsize (= n) segments; natively
    // the runtime consumes the skipped bytes in the driver's own vector.
    let Some(first) = (unsafe { ev.skip_front(skip) }) else {
        return Err("an ErlIOVec whose size exceeds its segments".into());
    };
    let mut segments = Vec::with_capacity(n - first);
    for i in first..n {
        // SAFETY: i < vsize, the driver's segment count.
        let seg = unsafe { ev.segment(i) };
        // SAFETY: as above; binv is NULL or has vsize entries.
        let raw_bin = unsafe { ev.segment_binary(i) };
        let bin = if raw_bin.is_null() || seg.iov_len == 0 {
            None
        } else {
            // SAFETY: a binary pointer of an ErlIOVec is one of ours or is
            // detected as foreign by its header.
            let bin = unsafe { DriverBinary::from_raw(raw_bin) }.map_err(|e| {
                format!("an ErlIOVec holding an invalid driver binary {raw_bin:p} ({e:?})")
            })?;
            Some(bin)
        };
        if bin.is_none() && seg.iov_base.is_null() && seg.iov_len > 0 {
            return Err("an ErlIOVec segment with a NULL base".into());
        }
        segments.push(Segment {
            base: seg.iov_base,
            len: seg.iov_len,
            bin,
        });
    }
    Ok(Some((segments, ev.size - skip)))
}

/// Queues `segments` at the tail or the head of the port's queue.
fn queue_segments(
    port: DrvPort,
    func: &'static str,
    segments: &[Segment],
    size: usize,
    at_head: bool,
) -> c_int {
    with_queue_port(port, func, |p| {
        // The copies are made under the queue's lock: its release is then
        // a plain store that does not wait for them (taking the lock after
        // a 1 KiB copy waited for the copy's stores).
        let queued = p.queue.with(|q| {
            if at_head {
                q.push_front(segments, size)
            } else {
                q.enqueue(segments, size)
            }
        });
        if queued.is_ok() {
            0
        } else {
            -1
        }
    })
    .unwrap_or(-1)
}

fn enqv(port: DrvPort, ev: *mut IOVec, skip: SizeT, func: &'static str, at_head: bool) -> c_int {
    // Natively a port that is gone is reported before the vector is read.
    if with_queue_port(port, func, |_| ()).is_none() {
        return -1;
    }
    // SAFETY: the driver passes an ErlIOVec it got from outputv or built.
    match unsafe { segments_of(ev, skip) } {
        Ok(None) => 0,
        Ok(Some((segments, size))) => queue_segments(port, func, &segments, size, at_head),
        Err(what) => {
            bad(func, &what);
            -1
        }
    }
}

fn enq_buf(
    port: DrvPort,
    buf: *mut c_char,
    len: SizeT,
    func: &'static str,
    at_head: bool,
) -> c_int {
    if len == 0 {
        return 0;
    }
    if buf.is_null() {
        bad(func, "a NULL buffer");
        return -1;
    }
    let seg = Segment {
        base: buf,
        len,
        bin: None,
    };
    queue_segments(port, func, &[seg], len, at_head)
}

fn enq_bin(
    port: DrvPort,
    bin: *mut DrvBinary,
    offset: SizeT,
    len: SizeT,
    func: &'static str,
    at_head: bool,
) -> c_int {
    if len == 0 {
        return 0;
    }
    // SAFETY: pointers the driver passes here came from
    // driver_alloc_binary; anything else is detected by the header check.
    let b = match unsafe { DriverBinary::from_raw(bin) } {
        Ok(b) => b,
        Err(e) => {
            bad(func, &format!("an invalid driver binary {bin:p} ({e:?})"));
            return -1;
        }
    };
    if offset.checked_add(len).is_none_or(|end| end > b.size()) {
        bad(
            func,
            &format!(
                "{len} bytes at offset {offset} of a binary of {} bytes",
                b.size()
            ),
        );
        return -1;
    }
    let seg = Segment {
        base: b.data().wrapping_add(offset).cast(),
        len,
        bin: Some(b),
    };
    queue_segments(port, func, &[seg], len, at_head)
}

/// `int driver_enq(ErlDrvPort port, char *buf, ErlDrvSizeT len)`: copies.
pub(crate) extern "C" fn driver_enq(port: DrvPort, buf: *mut c_char, len: SizeT) -> c_int {
    guard(-1, || enq_buf(port, buf, len, "driver_enq", false))
}

/// `int driver_pushq(ErlDrvPort port, char *buf, ErlDrvSizeT len)`: copies.
pub(crate) extern "C" fn driver_pushq(port: DrvPort, buf: *mut c_char, len: SizeT) -> c_int {
    guard(-1, || enq_buf(port, buf, len, "driver_pushq", true))
}

/// `int driver_enq_bin(ErlDrvPort port, ErlDrvBinary *bin, ErlDrvSizeT
/// offset, ErlDrvSizeT len)`: the queue takes a reference.
pub(crate) extern "C" fn driver_enq_bin(
    port: DrvPort,
    bin: *mut DrvBinary,
    offset: SizeT,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        enq_bin(port, bin, offset, len, "driver_enq_bin", false)
    })
}

/// `int driver_pushq_bin(ErlDrvPort port, ErlDrvBinary *bin, ErlDrvSizeT
/// offset, ErlDrvSizeT len)`: the queue takes a reference.
pub(crate) extern "C" fn driver_pushq_bin(
    port: DrvPort,
    bin: *mut DrvBinary,
    offset: SizeT,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        enq_bin(port, bin, offset, len, "driver_pushq_bin", true)
    })
}

/// `int driver_enqv(ErlDrvPort port, ErlIOVec *ev, ErlDrvSizeT skip)`
pub(crate) extern "C" fn driver_enqv(port: DrvPort, ev: *mut IOVec, skip: SizeT) -> c_int {
    guard(-1, || enqv(port, ev, skip, "driver_enqv", false))
}

/// `int driver_pushqv(ErlDrvPort port, ErlIOVec *ev, ErlDrvSizeT skip)`
pub(crate) extern "C" fn driver_pushqv(port: DrvPort, ev: *mut IOVec, skip: SizeT) -> c_int {
    guard(-1, || enqv(port, ev, skip, "driver_pushqv", true))
}

/// `ErlDrvSizeT driver_deq(ErlDrvPort port, ErlDrvSizeT size)`: the bytes
/// left, or `(size_t)-1` when fewer than `size` are queued.
pub(crate) extern "C" fn driver_deq(port: DrvPort, size: SizeT) -> SizeT {
    guard(SIZE_ERROR, || {
        with_queue_port(port, "driver_deq", |p| p.queue.with(|q| q.dequeue(size)))
            .flatten()
            .unwrap_or(SIZE_ERROR)
    })
}

/// `ErlDrvSizeT driver_sizeq(ErlDrvPort port)`
pub(crate) extern "C" fn driver_sizeq(port: DrvPort) -> SizeT {
    guard(SIZE_ERROR, || {
        with_queue_port(port, "driver_sizeq", |p| p.queue.size()).unwrap_or(SIZE_ERROR)
    })
}

/// `SysIOVec *driver_peekq(ErlDrvPort port, int *vlen)`: the queue's own
/// segments (valid until the next queue operation), NULL when empty;
/// `*vlen` is -1 for a port that is gone.
pub(crate) extern "C" fn driver_peekq(port: DrvPort, vlen: *mut c_int) -> *mut SysIOVec {
    guard(std::ptr::null_mut(), || {
        let (iov, n) = with_queue_port(port, "driver_peekq", |p| {
            p.queue.with(|q| {
                let (iov, _, n) = q.peek();
                (iov, n as c_int)
            })
        })
        .unwrap_or((std::ptr::null_mut(), -1));
        if vlen.is_null() {
            bad("driver_peekq", "a NULL vlen");
        } else {
            // SAFETY: the driver passes a writable int.
            unsafe { *vlen = n };
        }
        iov
    })
}

/// `ErlDrvSizeT driver_peekqv(ErlDrvPort port, ErlIOVec *ev)`: fills `ev`
/// with the queue's own segments (no reserved first slot); returns the
/// queue's size.
pub(crate) extern "C" fn driver_peekqv(port: DrvPort, ev: *mut IOVec) -> SizeT {
    guard(SIZE_ERROR, || {
        if ev.is_null() {
            bad("driver_peekqv", "a NULL ErlIOVec");
            return SIZE_ERROR;
        }
        with_queue_port(port, "driver_peekqv", |p| {
            p.queue.with(|q| {
                let (iov, binv, n) = q.peek();
                let size = if n == 0 { 0 } else { q.size() };
                let view = IOVec {
                    vsize: n as c_int,
                    size,
                    iov,
                    binv,
                };
                // SAFETY: the driver passes a writable, aligned ErlIOVec
                // (checked non-NULL above) that no reference aliases.
                unsafe { ev.write(view) };
                q.size()
            })
        })
        .unwrap_or(SIZE_ERROR)
    })
}

/// `ErlDrvPDL driver_pdl_create(ErlDrvPort port)`: NULL when the port is
/// gone or has a PDL already.
pub(crate) extern "C" fn driver_pdl_create(port: DrvPort) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        with_queue_port(port, "driver_pdl_create", |_| ())
            .and_then(|()| crate::port::lookup_handle(port))
            .map_or(std::ptr::null_mut(), |p| {
                p.queue.create_pdl(Box::new(p.clone())).as_ptr()
            })
    })
}

fn invalid_pdl(func: &'static str, pdl: *mut c_void) {
    bad(func, &format!("an ErlDrvPDL {pdl:p} that is not live"));
}

/// `void driver_pdl_lock(ErlDrvPDL pdl)`
pub(crate) extern "C" fn driver_pdl_lock(pdl: *mut c_void) {
    guard((), || match Pdl::lock(PdlHandle::from_ptr(pdl)) {
        Locked::Now => {}
        Locked::AlreadyHeld => bad(
            "driver_pdl_lock",
            "a port data lock this thread holds already (it would deadlock)",
        ),
        Locked::Invalid => invalid_pdl("driver_pdl_lock", pdl),
    })
}

/// `void driver_pdl_unlock(ErlDrvPDL pdl)`
pub(crate) extern "C" fn driver_pdl_unlock(pdl: *mut c_void) {
    guard((), || {
        if !Pdl::unlock(PdlHandle::from_ptr(pdl)) {
            bad(
                "driver_pdl_unlock",
                &format!("a port data lock {pdl:p} this thread does not hold"),
            );
        }
    })
}

/// `ErlDrvSInt driver_pdl_get_refc(ErlDrvPDL pdl)`
pub(crate) extern "C" fn driver_pdl_get_refc(pdl: *mut c_void) -> isize {
    guard(-1, || {
        Pdl::refc(PdlHandle::from_ptr(pdl)).unwrap_or_else(|| {
            invalid_pdl("driver_pdl_get_refc", pdl);
            -1
        })
    })
}

/// `ErlDrvSInt driver_pdl_inc_refc(ErlDrvPDL pdl)`: the new count.
pub(crate) extern "C" fn driver_pdl_inc_refc(pdl: *mut c_void) -> isize {
    guard(-1, || {
        Pdl::inc_refc(PdlHandle::from_ptr(pdl)).unwrap_or_else(|| {
            invalid_pdl("driver_pdl_inc_refc", pdl);
            -1
        })
    })
}

/// `ErlDrvSInt driver_pdl_dec_refc(ErlDrvPDL pdl)`: the new count; the
/// PDL is freed at zero.
pub(crate) extern "C" fn driver_pdl_dec_refc(pdl: *mut c_void) -> isize {
    guard(-1, || {
        Pdl::dec_refc(PdlHandle::from_ptr(pdl)).unwrap_or_else(|| {
            invalid_pdl("driver_pdl_dec_refc", pdl);
            -1
        })
    })
}
