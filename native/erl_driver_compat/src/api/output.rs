//! "Output functions": data from the driver to the connected process.
//!
//! Message shapes follow the manual: `{Port, {data, Data}}` where `Data` is
//! a list in list mode; in binary mode a header of `hlen` bytes comes first
//! as list elements, the payload as binaries (the last one as the tail).

use std::os::raw::{c_char, c_int};

use rustler::{Env, Term};

use super::{guard, misuse, with_port};
use crate::abi::{driver_bytes, DrvBinary, DrvPort, IOVec, SizeT};
use crate::binary::DriverBinary;
use crate::context::CallbackCtx;
use crate::port::state::PortState;
use crate::port::Port;
use crate::terms;

/// Binaries up to this size are copied into messages (heap binaries in
/// the runtime); larger ones are shared.
const ONHEAP_BIN_LIMIT: usize = 64;

/// Payload pieces of one message, in order.
enum Piece<'b> {
    Bytes(&'b [u8]),
    Shared(DriverBinary, usize, usize),
}

/// Sends `{Port, {data, Header ++ Pieces}}` to the connected process.
fn deliver(ctx: &CallbackCtx, port: &Port, st: &PortState, header: &[u8], pieces: &[Piece]) {
    let total: usize = header.len()
        + pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len(),
                Piece::Shared(_, _, len) => *len,
            })
            .sum::<usize>();
    st.add_bytes_out(total);
    let binary_mode = st.options().binary;
    let port_pid = port.pid;
    ctx.emit_to_connected(st, |env| {
        let data = if binary_mode {
            binary_data(env, header, pieces)
        } else {
            let mut all = Vec::with_capacity(total);
            all.extend_from_slice(header);
            for p in pieces {
                match p {
                    Piece::Bytes(b) => all.extend_from_slice(b),
                    Piece::Shared(bin, off, len) => {
                        // SAFETY: the driver holds a reference to bin for
                        // the whole API call (it passed it to us) and does
                        // not write the data while it waits for the call;
                        // the slice is dropped before the call returns.
                        // off/len were checked against the size.
                        let data = unsafe { bin.bytes(*off, *len) };
                        all.extend_from_slice(data.unwrap_or_default())
                    }
                }
            }
            terms::byte_list(env, &all, None)
        };
        terms::data_message(env, &port_pid, data)
    });
}

/// Binary-mode data: header bytes as list elements, then one binary per
/// piece, the last one as the tail; `[]` when there is nothing at all.
fn binary_data<'a>(env: Env<'a>, header: &[u8], pieces: &[Piece]) -> Term<'a> {
    let piece_term = |p: &Piece| match p {
        Piece::Bytes(b) => terms::binary_copy(env, b),
        Piece::Shared(bin, off, len) => bin.to_term(env, *off, *len),
    };
    // The usual case, one piece and no header: the binary itself, without
    // collecting the pieces first.
    if let ([piece], true) = (pieces, header.is_empty()) {
        return piece_term(piece);
    }
    let mut bins: Vec<Term<'a>> = pieces.iter().map(piece_term).collect();
    let tail = match bins.pop() {
        None => None,
        Some(last) => {
            let mut list = last;
            for b in bins.into_iter().rev() {
                list = terms::list_cell(env, b, list);
            }
            Some(list)
        }
    };
    match tail {
        Some(t) if header.is_empty() => t,
        _ => terms::byte_list(env, header, tail),
    }
}

/// `driver_output`/`driver_output2` data: through the line buffer on a
/// `{line, L}` port, as one message otherwise (`None`: a NULL buffer, which
/// natively gives no binary tail).
fn deliver_stream(
    ctx: &CallbackCtx,
    port: &Port,
    st: &PortState,
    header: &[u8],
    data: Option<&[u8]>,
) {
    let max = st.options().line;
    if max == 0 {
        let pieces: Vec<Piece> = data.map(Piece::Bytes).into_iter().collect();
        deliver(ctx, port, st, header, &pieces);
        return;
    }
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return;
    };
    st.with_line_buf(|buf| buf.extend_from_slice(data));
    while let Some((line, eol)) = st.with_line_buf(|buf| next_line(buf, max)) {
        deliver_line(ctx, port, st, header, &line, eol);
    }
}

/// Cuts the next complete line (`eol`) or full chunk of `max` bytes
/// (`noeol`) off the front of `buf`; `None` when more data is needed.
fn next_line(buf: &mut Vec<u8>, max: usize) -> Option<(Vec<u8>, bool)> {
    let scan = buf.len().min(max + 1);
    if let Some(nl) = buf[..scan].iter().position(|&b| b == b'\n') {
        let mut line: Vec<u8> = buf.drain(..=nl).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        return Some((line, true));
    }
    if buf.len() > max {
        return Some((buf.drain(..max).collect(), false));
    }
    None
}

/// Sends what is left in the line buffer as `noeol` (before
/// `driver_failure_eof`, as natively).
pub fn flush_line_buffer(ctx: &CallbackCtx, port: &Port, st: &PortState) {
    let rest = st.with_line_buf(std::mem::take);
    if !rest.is_empty() {
        deliver_line(ctx, port, st, &[], &rest, false);
    }
}

/// `{Port, {data, {eol | noeol, Header ++ Line}}}`.
fn deliver_line(
    ctx: &CallbackCtx,
    port: &Port,
    st: &PortState,
    header: &[u8],
    line: &[u8],
    eol: bool,
) {
    st.add_bytes_out(header.len() + line.len());
    let binary_mode = st.options().binary;
    let port_pid = port.pid;
    ctx.emit_to_connected(st, |env| {
        use rustler::Encoder;
        let data = if binary_mode {
            binary_data(env, header, &[Piece::Bytes(line)])
        } else {
            let mut all = header.to_vec();
            all.extend_from_slice(line);
            terms::byte_list(env, &all, None)
        };
        let tag = if eol {
            crate::atoms::eol()
        } else {
            crate::atoms::noeol()
        };
        terms::data_message(env, &port_pid, (tag, data).encode(env))
    });
}

/// `int driver_output(ErlDrvPort port, char *buf, ErlDrvSizeT len)`
pub(crate) extern "C" fn driver_output(port: DrvPort, buf: *mut c_char, len: SizeT) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output", |ctx, p, st| {
            // SAFETY: the driver passes len readable bytes.
            let data = unsafe { driver_bytes(buf.cast(), len) };
            deliver_stream(ctx, p, st, &[], (!buf.is_null()).then_some(data));
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_output2(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// char *buf, ErlDrvSizeT len)`
pub(crate) extern "C" fn driver_output2(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    buf: *mut c_char,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output2", |ctx, p, st| {
            // SAFETY: the manual requires hbuf to hold hlen readable bytes
            // (or be NULL with hlen 0); the driver does not write it while
            // it waits for this call, where the slice ends.
            let header = unsafe { driver_bytes(hbuf.cast(), hlen) };
            // SAFETY: the manual requires buf to hold len readable bytes
            // (or be NULL with len 0); the driver does not write it while
            // it waits for this call, where the slice ends.
            let data = unsafe { driver_bytes(buf.cast(), len) };
            deliver_stream(ctx, p, st, header, (!buf.is_null()).then_some(data));
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_output_binary(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// ErlDrvBinary *bin, ErlDrvSizeT offset, ErlDrvSizeT len)`
pub(crate) extern "C" fn driver_output_binary(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    bin: *mut DrvBinary,
    offset: SizeT,
    len: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_output_binary", |ctx, p, st| {
            // SAFETY: a driver passes a pointer it got from
            // driver_alloc_binary or an outputv vector, a VM binary whose 16
            // preceding header bytes are readable; from_raw checks them.
            let bin = match unsafe { DriverBinary::from_raw(bin) } {
                Ok(b) => b,
                Err(e) => {
                    misuse(
                        ctx,
                        "driver_output_binary",
                        &format!("an invalid binary ({e:?})"),
                    );
                    return -1;
                }
            };
            // SAFETY: the driver holds a reference to bin for the whole API
            // call and does not write its data while it waits for it; the
            // slice is dropped before the call returns.
            let Some(data) = (unsafe { bin.bytes(offset, len) }) else {
                misuse(ctx, "driver_output_binary", "offset/len outside the binary");
                return -1;
            };
            // SAFETY: the manual requires hbuf to hold hlen readable bytes
            // (or be NULL with hlen 0), unwritten until this call returns.
            let header = unsafe { driver_bytes(hbuf.cast(), hlen) };
            // Natively small pieces are copied into heap binaries, larger
            // ones share the driver binary (one more reference).
            let piece = if len <= ONHEAP_BIN_LIMIT {
                Piece::Bytes(data)
            } else {
                Piece::Shared(bin, offset, len)
            };
            deliver(ctx, p, st, header, &[piece]);
            0
        })
        .unwrap_or(-1)
    })
}

/// The pieces of one `driver_outputv` message: the usual single segment
/// without an allocation.
enum Pieces<'b> {
    One([Piece<'b>; 1]),
    Many(Vec<Piece<'b>>),
}

impl<'b> Pieces<'b> {
    fn as_slice(&self) -> &[Piece<'b>] {
        match self {
            Pieces::One(one) => one,
            Pieces::Many(v) => v,
        }
    }
}

/// The segments of `ev` after skipping `skip` bytes, as pieces, with the
/// runtime's rules: nothing when `skip` reaches `ev.size`; else whole
/// segments are dropped while they fit in what is left to skip (at least
/// the first one, the reserved slot, when it is empty), the segment where
/// skipping ends is advanced *in the driver's vector* (natively too), and
/// every later segment is a piece, empty ones included.
///
/// # Safety
/// `ev` must be a valid `ErlIOVec` (its `iov`/`binv` arrays of `vsize`
/// entries, segments readable for their lengths) that the driver lets us
/// write to and does not change for `'b`.
unsafe fn vec_pieces<'b>(ev: *mut IOVec, skip: usize) -> Pieces<'b> {
    // SAFETY: ev points at a valid, aligned ErlIOVec (caller's contract);
    // only its arrays are written below, never the struct itself.
    let ev = unsafe { &*ev };
    let vsize = ev.vsize.max(0) as usize;
    if skip >= ev.size || ev.iov.is_null() {
        return Pieces::Many(Vec::new());
    }
    // SAFETY: the caller's contract: the driver's arrays hold vsize
    // segments and it lets us advance them (natively the runtime does).
    let Some(first) = (unsafe { ev.skip_front(skip) }) else {
        return Pieces::Many(Vec::new());
    };
    // SAFETY: every i passed is in first..vsize, so below vsize, and the
    // caller's contract on ev (valid, unchanged for 'b) carries over.
    let piece = |i| unsafe { segment_piece(ev, i) };
    if vsize - first == 1 {
        return Pieces::One([piece(first)]);
    }
    Pieces::Many((first..vsize).map(piece).collect())
}

/// Segment `i` of `ev` as a piece: empty, shared (more than 64 bytes
/// inside the segment's driver binary; natively segments of up to 64
/// bytes become heap binaries, larger ones share the driver binary), or
/// bytes to copy.
///
/// # Safety
/// `i < ev.vsize`, and the contract of [`vec_pieces`] on `ev`.
unsafe fn segment_piece<'b>(ev: &IOVec, i: usize) -> Piece<'b> {
    // SAFETY: i < vsize, the length of the driver's iov array.
    let seg = unsafe { ev.segment(i) };
    // SAFETY: i < vsize; binv is NULL or has vsize entries.
    let bin = unsafe { ev.segment_binary(i) };
    let base = seg.iov_base as *const u8;
    let len = seg.iov_len;
    if len == 0 || base.is_null() {
        return Piece::Bytes(&[]);
    }
    // SAFETY: a segment's binary is NULL or a VM binary the driver got
    // (driver_alloc_binary, an outputv vector), whose 16 preceding header
    // bytes are readable; from_raw rejects NULL and checks them.
    let shared = unsafe { DriverBinary::from_raw(bin) }.ok().filter(|b| {
        let start = b.data() as usize;
        len > ONHEAP_BIN_LIMIT && base as usize >= start && base as usize + len <= start + b.size()
    });
    match shared {
        Some(b) => Piece::Shared(b, base as usize - b.data() as usize, len),
        // SAFETY: base is non-NULL and the segment is readable for its len
        // bytes, unchanged for 'b (caller's contract).
        None => Piece::Bytes(unsafe { std::slice::from_raw_parts(base, len) }),
    }
}

/// `int driver_outputv(ErlDrvPort port, char *hbuf, ErlDrvSizeT hlen,
/// ErlIOVec *ev, ErlDrvSizeT skip)`
pub(crate) extern "C" fn driver_outputv(
    port: DrvPort,
    hbuf: *mut c_char,
    hlen: SizeT,
    ev: *mut IOVec,
    skip: SizeT,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_outputv", |ctx, p, st| {
            if ev.is_null() {
                misuse(ctx, "driver_outputv", "a NULL ErlIOVec");
                return -1;
            }
            // SAFETY: the manual requires hbuf to hold hlen readable bytes
            // (or be NULL with hlen 0), unwritten until this call returns.
            let header = unsafe { driver_bytes(hbuf.cast(), hlen) };
            // SAFETY: ev is non-NULL and the driver passes a valid
            // ErlIOVec, which it lets the runtime advance and does not
            // change until this call returns (the pieces end before).
            let pieces = unsafe { vec_pieces(ev, skip) };
            deliver(ctx, p, st, header, pieces.as_slice());
            0
        })
        .unwrap_or(-1)
    })
}

/// `ErlDrvSizeT driver_vec_to_buf(ErlIOVec *ev, char *buf, ErlDrvSizeT len)`:
/// copies up to `len` bytes; returns the number of bytes copied (what the
/// runtime returns, although old manuals say "space left").
pub(crate) extern "C" fn driver_vec_to_buf(ev: *mut IOVec, buf: *mut c_char, len: SizeT) -> SizeT {
    guard(0, || {
        if ev.is_null() || (buf.is_null() && len > 0) {
            return 0;
        }
        let mut left = len;
        let mut out = buf as *mut u8;
        // SAFETY: ev is non-NULL and the manual requires a valid, aligned
        // ErlIOVec, which is only read here.
        let ev = unsafe { &*ev };
        for i in 0..ev.vsize.max(0) as usize {
            if left == 0 {
                break;
            }
            // SAFETY: i < vsize, the length of the driver's iov array.
            let seg = unsafe { ev.segment(i) };
            let n = seg.iov_len.min(left);
            if n > 0 {
                // SAFETY: the segment is readable for iov_len >= n bytes;
                // out = buf + (len - left) has left >= n writable bytes
                // (the driver's buffer holds len); a vector's data and the
                // destination are distinct memory, as for the runtime's
                // memcpy.
                unsafe { std::ptr::copy_nonoverlapping(seg.iov_base as *const u8, out, n) };
                // SAFETY: n <= left: out + n is at most buf + len, one past
                // the end of the driver's buffer.
                out = unsafe { out.add(n) };
                left -= n;
            }
        }
        len - left
    })
}
