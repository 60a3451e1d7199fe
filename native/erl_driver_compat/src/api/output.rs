//! "Output functions": data from the driver to the connected process.
//!
//! Message shapes follow the manual: `{Port, {data, Data}}` where `Data` is
//! a list in list mode; in binary mode a header of `hlen` bytes comes first
//! as list elements, the payload as binaries (the last one as the tail).

use std::os::raw::{c_char, c_int};

use rustler::{Env, Term};

use super::{guard, misuse, with_port};
use crate::abi::{DrvBinary, DrvPort, IOVec, SizeT};
use crate::binary::DriverBinary;
use crate::context::CallbackCtx;
use crate::port::{Port, PortState};
use crate::terms;

/// Binaries up to this size are copied into messages (heap binaries in
/// the runtime); larger ones are shared.
const ONHEAP_BIN_LIMIT: usize = 64;

/// # Safety
/// `ptr` must be NULL with `len == 0`, or readable for `len` bytes.
unsafe fn bytes<'b>(ptr: *const c_char, len: usize) -> &'b [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts(ptr.cast(), len) }
    }
}

/// Payload pieces of one message, in order.
enum Piece<'b> {
    Bytes(&'b [u8]),
    Shared(DriverBinary, usize, usize),
}

/// Sends `{Port, {data, Header ++ Pieces}}` to the connected process.
fn deliver(port: &Port, st: &mut PortState, ctx: &mut CallbackCtx, header: &[u8], pieces: &[Piece]) {
    let total: usize = header.len()
        + pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len(),
                Piece::Shared(_, _, len) => *len,
            })
            .sum::<usize>();
    st.bytes_out += total as u64;
    let binary_mode = st.options.binary;
    let to = st.connected;
    let port_term = port.pid_term;
    ctx.emit(&to, |env| {
        let data = if binary_mode {
            binary_data(env, header, pieces)
        } else {
            let mut all = Vec::with_capacity(total);
            all.extend_from_slice(header);
            for p in pieces {
                match p {
                    Piece::Bytes(b) => all.extend_from_slice(b),
                    Piece::Shared(bin, off, len) => {
                        // SAFETY: off + len was checked against the size.
                        all.extend_from_slice(unsafe {
                            std::slice::from_raw_parts(bin.data().add(*off), *len)
                        })
                    }
                }
            }
            terms::byte_list(env, &all, None)
        };
        terms::data_message(env, port_term, data)
    });
}

fn binary_data<'a>(env: Env<'a>, header: &[u8], pieces: &[Piece]) -> Term<'a> {
    let mut bins: Vec<Term<'a>> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Bytes(b) if b.is_empty() => None,
            Piece::Bytes(b) => Some(terms::binary_copy(env, b)),
            Piece::Shared(_, _, 0) => None,
            Piece::Shared(bin, off, len) => Some(bin.to_term(env, *off, *len)),
        })
        .collect();
    let tail = match bins.pop() {
        None if header.is_empty() => return terms::binary_copy(env, &[]),
        None => None,
        Some(last) => {
            let mut list = last;
            for b in bins.into_iter().rev() {
                list = list_cell(env, b, list);
            }
            Some(list)
        }
    };
    if header.is_empty() {
        return tail.unwrap_or_else(|| terms::binary_copy(env, &[]));
    }
    terms::byte_list(env, header, tail)
}

fn list_cell<'a>(env: Env<'a>, head: Term<'a>, tail: Term<'a>) -> Term<'a> {
    // SAFETY: both terms belong to env.
    unsafe {
        Term::new(
            env,
            rustler::sys::enif_make_list_cell(env.as_c_arg(), head.as_c_arg(), tail.as_c_arg()),
        )
    }
}

/// `int driver_output(ErlDrvPort port, char *buf, ErlDrvSizeT len)`
pub extern "C" fn driver_output(port: DrvPort, buf: *mut c_char, len: SizeT) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output", |p, st, ctx| {
            // SAFETY: the driver passes len readable bytes.
            let data = unsafe { bytes(buf, len) };
            deliver(p, st, ctx, &[], &[Piece::Bytes(data)]);
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_output2(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// char *buf, ErlDrvSizeT len)`
pub extern "C" fn driver_output2(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    buf: *mut c_char,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output2", |p, st, ctx| {
            // SAFETY: the driver passes readable buffers of these lengths.
            let (header, data) = unsafe { (bytes(hbuf, hlen), bytes(buf, len)) };
            deliver(p, st, ctx, header, &[Piece::Bytes(data)]);
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_output_binary(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// ErlDrvBinary *bin, ErlDrvSizeT offset, ErlDrvSizeT len)`
pub extern "C" fn driver_output_binary(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    bin: *mut DrvBinary,
    offset: SizeT,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output_binary", |p, st, ctx| {
            // SAFETY: driver binaries are ours; foreign pointers are
            // detected by their header.
            let bin = match unsafe { DriverBinary::from_raw(bin) } {
                Ok(b) => b,
                Err(e) => {
                    misuse(ctx, "driver_output_binary", &format!("an invalid binary ({e:?})"));
                    return -1;
                }
            };
            if offset.checked_add(len).is_none_or(|end| end > bin.size()) {
                misuse(ctx, "driver_output_binary", "offset/len outside the binary");
                return -1;
            }
            // SAFETY: the header buffer holds hlen bytes.
            let header = unsafe { bytes(hbuf, hlen) };
            deliver(p, st, ctx, header, &[Piece::Shared(bin, offset, len)]);
            0
        })
        .unwrap_or(-1)
    })
}

/// The segments of `ev` after skipping `skip` bytes, as pieces.
///
/// # Safety
/// `ev` must be a valid `ErlIOVec`.
unsafe fn vec_pieces<'b>(ev: &'b IOVec, mut skip: usize) -> Vec<Piece<'b>> {
    let mut pieces = Vec::new();
    for i in 0..ev.vsize.max(0) as usize {
        // SAFETY: iov/binv have vsize entries.
        let (seg, bin) = unsafe {
            (
                *ev.iov.add(i),
                if ev.binv.is_null() {
                    std::ptr::null_mut()
                } else {
                    *ev.binv.add(i)
                },
            )
        };
        let mut base = seg.iov_base as *const u8;
        let mut len = seg.iov_len;
        if skip >= len {
            skip -= len;
            continue;
        }
        // SAFETY: skip < len: still inside the segment.
        base = unsafe { base.add(skip) };
        len -= skip;
        skip = 0;
        // SAFETY: a segment's binary, if any, is a driver binary.
        let shared = unsafe { DriverBinary::from_raw(bin) }.ok().filter(|b| {
            let start = b.data() as usize;
            len > ONHEAP_BIN_LIMIT && base as usize >= start && base as usize + len <= start + b.size()
        });
        match shared {
            Some(b) => pieces.push(Piece::Shared(b, base as usize - b.data() as usize, len)),
            // SAFETY: the segment is readable for len bytes.
            None => pieces.push(Piece::Bytes(unsafe { std::slice::from_raw_parts(base, len) })),
        }
    }
    pieces
}

/// `int driver_outputv(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// ErlIOVec *ev, ErlDrvSizeT skip)`
pub extern "C" fn driver_outputv(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    ev: *mut IOVec,
    skip: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_outputv", |p, st, ctx| {
            if ev.is_null() {
                misuse(ctx, "driver_outputv", "a NULL ErlIOVec");
                return -1;
            }
            // SAFETY: the driver passes a valid vector and header buffer.
            let (header, pieces) = unsafe { (bytes(hbuf, hlen), vec_pieces(&*ev, skip)) };
            deliver(p, st, ctx, header, &pieces);
            0
        })
        .unwrap_or(-1)
    })
}

/// `ErlDrvSizeT driver_vec_to_buf(ErlIOVec *ev, char *buf, ErlDrvSizeT len)`:
/// copies up to `len` bytes; returns the space left in `buf`.
pub extern "C" fn driver_vec_to_buf(ev: *mut IOVec, buf: *mut c_char, len: SizeT) -> SizeT {
    guard(0, || {
        if ev.is_null() || (buf.is_null() && len > 0) {
            return len;
        }
        let mut left = len;
        let mut out = buf as *mut u8;
        // SAFETY: the driver passes a valid vector and a buffer of len bytes.
        unsafe {
            let ev = &*ev;
            for i in 0..ev.vsize.max(0) as usize {
                if left == 0 {
                    break;
                }
                let seg = *ev.iov.add(i);
                let n = seg.iov_len.min(left);
                if n > 0 {
                    std::ptr::copy_nonoverlapping(seg.iov_base as *const u8, out, n);
                    out = out.add(n);
                    left -= n;
                }
            }
        }
        left
    })
}
