//! Data from `port_command` on its way into a driver: flattened for
//! `output`, or cut into an `ErlIOVec` for `outputv` with the segment rules
//! of the native runtime (small pieces merged into one copied segment,
//! large binaries as segments of their own, our own exposed driver binaries
//! passed without copying).

use std::os::raw::c_int;

use rustler::sys::{self, ErlNifBinary, ErlNifTerm as ERL_NIF_TERM};
use rustler::{Binary, Term};

use crate::abi::{DrvBinary, IOVec, SysIOVec};
use crate::binary::{self, DriverBinary};

/// Binaries larger than this get a segment of their own
/// (`ERL_SMALL_IO_BIN_LIMIT` in the runtime: 4 × the 64-byte heap limit).
pub const SMALL_IO_BIN_LIMIT: usize = 256;

/// `data` as one contiguous buffer: a binary as it is, an iolist copied
/// once. `None` when `data` is not iodata.
pub fn flatten(data: Term<'_>) -> Option<Binary<'_>> {
    if data.is_binary() {
        data.decode::<Binary>().ok()
    } else {
        Binary::from_iolist(data).ok()
    }
}

enum Piece {
    /// Bytes in the common copy buffer at this offset.
    Copied { offset: usize, len: usize },
    /// A binary of its own: copied into a driver binary of its own (or
    /// shared, when it is one of our exposed driver binaries).
    Referenced { ptr: *const u8, len: usize },
}

/// One element of the flattened iolist.
enum Item {
    Byte(u8),
    Bin(*const u8, usize),
}

/// An `ErlIOVec` and the storage it points into.
pub struct IoVecBuf {
    iov: Vec<SysIOVec>,
    binv: Vec<*mut DrvBinary>,
    /// Distinct binaries we hold one reference to.
    owned: Vec<DriverBinary>,
    vec: IOVec,
}

/// Largest vector (with the reserved first slot) before the runtime copies
/// more to keep it small (`SMALL_WRITE_VEC`).
const SMALL_WRITE_VEC: usize = 16;
/// Binaries larger than this are referenced, not copied
/// (`ERL_ONHEAP_BIN_LIMIT`).
const ONHEAP_BIN_LIMIT: usize = 64;

impl IoVecBuf {
    /// Builds the vector for `data`; `None` when it is not iodata.
    ///
    /// The layout follows the runtime: slot 0 is reserved and empty;
    /// binaries over 64 bytes are segments of their own, everything else is
    /// copied into one common binary, consecutive pieces merged; when that
    /// gives more than 15 segments, only binaries of 256 bytes or more keep
    /// a segment of their own.
    pub fn from_iodata(data: Term<'_>) -> Option<IoVecBuf> {
        let env = data.get_env().as_c_arg();
        // SAFETY: `data` belongs to the env of the running NIF call.
        let items = unsafe { collect(data.as_c_arg(), env)? };
        // A lone empty binary still gives one (empty) segment.
        if data.is_binary() && matches!(items.as_slice(), [Item::Bin(_, 0)]) {
            return Some(IoVecBuf::build(Vec::new(), vec![None]));
        }
        let mut pieces = segment(&items, |len| len > ONHEAP_BIN_LIMIT);
        if pieces.1.len() + 1 > SMALL_WRITE_VEC {
            pieces = segment(&items, |len| len >= SMALL_IO_BIN_LIMIT);
        }
        let (copy, pieces) = pieces;
        Some(IoVecBuf::build(
            copy,
            pieces.into_iter().map(Some).collect(),
        ))
    }

    fn build(copy: Vec<u8>, pieces: Vec<Option<Piece>>) -> IoVecBuf {
        let mut owned: Vec<DriverBinary> = Vec::new();
        let copy_bin = (!copy.is_empty()).then(|| {
            let bin = alloc_or_abort(copy.len());
            // SAFETY: the binary holds copy.len() bytes.
            unsafe { std::ptr::copy_nonoverlapping(copy.as_ptr(), bin.data(), copy.len()) };
            owned.push(bin);
            bin
        });
        // Referenced binaries by source address, so that the same binary
        // twice gives the same driver binary, as natively.
        let mut referenced: Vec<(*const u8, usize, DriverBinary, usize)> = Vec::new();
        let mut iov = vec![SysIOVec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }];
        let mut binv: Vec<*mut DrvBinary> = vec![std::ptr::null_mut()];
        let mut total = 0usize;
        for piece in pieces {
            let (bin, offset, len) = match piece {
                None => {
                    iov.push(SysIOVec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    });
                    binv.push(std::ptr::null_mut());
                    continue;
                }
                Some(Piece::Copied { offset, len }) => match copy_bin {
                    Some(b) => (b, offset, len),
                    None => continue,
                },
                Some(Piece::Referenced { ptr, len }) => {
                    if let Some(&(_, _, bin, off)) = referenced
                        .iter()
                        .find(|(p, l, _, _)| *p == ptr && *l == len)
                    {
                        (bin, off, len)
                    } else {
                        let (bin, off) = binary::find_exposed(ptr, len).unwrap_or_else(|| {
                            let bin = alloc_or_abort(len);
                            // SAFETY: the source is a live binary of len
                            // bytes; the new binary holds len bytes.
                            unsafe { std::ptr::copy_nonoverlapping(ptr, bin.data(), len) };
                            (bin, 0)
                        });
                        owned.push(bin);
                        referenced.push((ptr, len, bin, off));
                        (bin, off, len)
                    }
                }
            };
            // SAFETY: offset + len lies within the binary.
            let base = unsafe { bin.data().add(offset) };
            iov.push(SysIOVec {
                iov_base: base.cast(),
                iov_len: len,
            });
            binv.push(bin.as_ptr());
            total += len;
        }
        let vsize = iov.len() as c_int;
        IoVecBuf {
            iov,
            binv,
            owned,
            vec: IOVec {
                vsize,
                size: total,
                iov: std::ptr::null_mut(),
                binv: std::ptr::null_mut(),
            },
        }
    }

    /// Total number of bytes.
    pub fn total(&self) -> usize {
        self.vec.size
    }

    /// The vector to pass to the driver.
    pub fn as_mut_ptr(&mut self) -> *mut IOVec {
        self.vec.iov = self.iov.as_mut_ptr();
        self.vec.binv = self.binv.as_mut_ptr();
        &mut self.vec
    }
}

impl Drop for IoVecBuf {
    fn drop(&mut self) {
        for bin in self.owned.drain(..) {
            bin.release();
        }
    }
}

fn alloc_or_abort(len: usize) -> DriverBinary {
    DriverBinary::alloc(len).unwrap_or_else(|| {
        std::alloc::handle_alloc_error(
            std::alloc::Layout::from_size_align(len.max(1), 16)
                .unwrap_or(std::alloc::Layout::new::<u8>()),
        )
    })
}

/// Cuts the flattened items into pieces: binaries for which `own` holds
/// get a segment of their own, the rest is copied and merged.
fn segment(items: &[Item], own: impl Fn(usize) -> bool) -> (Vec<u8>, Vec<Piece>) {
    let mut copy = Vec::new();
    let mut pieces = Vec::new();
    let mut open = false;
    for item in items {
        let bytes: &[u8] = match *item {
            Item::Byte(ref b) => std::slice::from_ref(b),
            Item::Bin(ptr, len) => {
                if len == 0 {
                    continue;
                }
                if own(len) {
                    pieces.push(Piece::Referenced { ptr, len });
                    open = false;
                    continue;
                }
                // SAFETY: the binary is live for the NIF call.
                unsafe { std::slice::from_raw_parts(ptr, len) }
            }
        };
        let offset = copy.len();
        copy.extend_from_slice(bytes);
        match pieces.last_mut() {
            Some(Piece::Copied { len, .. }) if open => *len += bytes.len(),
            _ => {
                pieces.push(Piece::Copied {
                    offset,
                    len: bytes.len(),
                });
                open = true;
            }
        }
    }
    (copy, pieces)
}

/// Flattens an iolist without recursion. `None` on non-iodata.
///
/// # Safety
/// `term` must belong to `env`, the env of the running NIF call.
unsafe fn collect(term: ERL_NIF_TERM, env: *mut sys::ErlNifEnv) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    let mut stack = vec![term];
    while let Some(t) = stack.pop() {
        // SAFETY: all terms come from `env`; out-parameters are locals.
        unsafe {
            let mut bin: ErlNifBinary = std::mem::zeroed();
            if sys::enif_is_binary(env, t) != 0 {
                if sys::enif_inspect_binary(env, t, &mut bin) == 0 {
                    return None;
                }
                items.push(Item::Bin(bin.data, bin.size));
                continue;
            }
            let mut head = ERL_NIF_TERM::default();
            let mut tail = ERL_NIF_TERM::default();
            if sys::enif_get_list_cell(env, t, &mut head, &mut tail) != 0 {
                // Tail first so that the head is processed next.
                if sys::enif_is_empty_list(env, tail) == 0 {
                    if sys::enif_is_binary(env, tail) == 0 && sys::enif_is_list(env, tail) == 0 {
                        return None;
                    }
                    stack.push(tail);
                }
                let mut byte: c_int = 0;
                if sys::enif_get_int(env, head, &mut byte) != 0 {
                    if !(0..=255).contains(&byte) {
                        return None;
                    }
                    items.push(Item::Byte(byte as u8));
                } else if sys::enif_is_binary(env, head) != 0 || sys::enif_is_list(env, head) != 0 {
                    stack.push(head);
                } else {
                    return None;
                }
                continue;
            }
            if sys::enif_is_empty_list(env, t) != 0 {
                continue;
            }
            return None;
        }
    }
    Some(items)
}
