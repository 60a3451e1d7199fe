//! Data from `port_command` on its way into a driver: flattened for
//! `output`, or cut into an `ErlIOVec` for `outputv` with the segment rules
//! of the native runtime (`erts_ioq_iolist_vec_len`/`_to_vec` in OTP 25):
//! bytes and heap binaries copied into one common binary, off-heap (refc)
//! binaries as segments of their own, or copied too when they are small
//! and the vector would otherwise get 16 segments or more. As natively, an
//! off-heap binary is not copied: its VM `Binary` is lent to the driver as
//! the segment's `ErlDrvBinary` (see `crate::binary`), without a reference
//! of the vector's own (the caller's term holds it for the call); only
//! binaries whose `Binary` is unknown are copied, one driver binary each.

use std::cell::RefCell;
use std::os::raw::c_int;

use rustler::{Binary, Term};

use crate::abi::{DrvBinary, IOVec, SysIOVec};
use crate::binary::{self, DriverBinary};
use crate::binary_kind::{self, BinKind, Parent};
use crate::ffi::{self, IoTerm, RawEnv, RawTerm};

/// Off-heap binaries smaller than this are copied when the vector is
/// packed (`ERL_SMALL_IO_BIN_LIMIT` in the runtime: 4 × the 64-byte heap
/// limit).
pub const SMALL_IO_BIN_LIMIT: usize = 256;

/// Vectors of this many data segments or more are packed
/// (`SMALL_WRITE_VEC`).
const SMALL_WRITE_VEC: usize = 16;

/// Port data as one contiguous buffer (see [`flatten`]).
pub enum Flat<'a> {
    /// The bytes of a binary, in place.
    InPlace(&'a [u8]),
    /// An iolist copied once.
    Copied(Binary<'a>),
}

impl Flat<'_> {
    /// The bytes.
    #[inline(always)]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Flat::InPlace(bytes) => bytes,
            Flat::Copied(binary) => binary.as_slice(),
        }
    }
}

/// `data` as one contiguous buffer: a binary as it is, an iolist copied
/// once. `None` when `data` is not iodata. Inlined: on the hot path the
/// result stays in registers rather than coming back through memory.
#[inline(always)]
pub fn flatten(data: Term<'_>) -> Option<Flat<'_>> {
    // The binary first, read with one VM call (the usual argument; rustler's
    // `Binary` decode went through memory with a stall).
    // SAFETY: `data` is a term of its env, live for the term's lifetime.
    if let Some(bytes) = unsafe { ffi::binary_bytes(data.get_env().as_c_arg(), data.as_c_arg()) } {
        return Some(Flat::InPlace(bytes));
    }
    if data.is_binary() {
        return None;
    }
    Binary::from_iolist(data).ok().map(Flat::Copied)
}

/// One element of the flattened iolist.
enum Item {
    Byte(u8),
    Bin(*const u8, usize, BinKind),
}

/// A segment of the vector being built.
enum Piece {
    /// Bytes in the common copy buffer at this offset.
    Copied { offset: usize, len: usize },
    /// Bytes of an off-heap binary: its `Binary` lent when `parent` is
    /// known, else copied into a driver binary of their own.
    OffHeap {
        ptr: *const u8,
        len: usize,
        parent: Option<Parent>,
    },
}

/// An `ErlIOVec` and the storage it points into. Small enough (under 128
/// bytes, with its `Option`) to be moved with inline stores rather than a
/// `memcpy` call, whose stores the caller's next read of the buffer
/// waited for (`Port::command`, ~3 % of a 1 KiB `outputv` round trip).
pub struct IoVecBuf {
    /// The vector of several segments (`None` for a lone binary).
    many: Option<Box<Many>>,
    /// How many entries [`as_mut_ptr`](Self::as_mut_ptr) pushed on
    /// [`IN_VECTOR`] (taken off again on drop).
    registered: usize,
    /// The vector of a lone binary (the reserved slot and one segment)
    /// and the binary it holds (lent or owned), kept here instead of in
    /// [`Many`]: no allocation on the usual `port_command` path of an
    /// off-heap binary.
    lone: Option<Lone>,
    vec: IOVec,
}

/// See [`IoVecBuf::many`].
struct Many {
    iov: Vec<SysIOVec>,
    binv: Vec<*mut DrvBinary>,
    /// Distinct binaries we hold one reference to.
    owned: Vec<DriverBinary>,
    /// The callers' binaries lent to the vector.
    lent: Vec<DriverBinary>,
}

/// See [`IoVecBuf::lone`].
struct Lone {
    iov: [SysIOVec; 2],
    binv: [*mut DrvBinary; 2],
    /// The binary when we hold a reference to it (a copy), `None` when it
    /// is lent.
    owned: Option<DriverBinary>,
}

impl IoVecBuf {
    /// Builds the vector for `data`; `None` when it is not iodata.
    ///
    /// The layout follows the runtime: slot 0 is reserved and empty; off-
    /// heap binaries (of any size) are segments of their own, bytes and
    /// heap binaries are copied into one common binary, consecutive ones
    /// merged; when that would give 16 data segments or more, off-heap
    /// binaries under 256 bytes are copied too.
    ///
    /// Also `None` when this VM's binaries are not laid out as erts 13's
    /// ([`binary::layout_ok`], which logs why): no vector can be built.
    pub fn from_iodata(data: Term<'_>) -> Option<IoVecBuf> {
        if !binary::layout_ok() {
            return None;
        }
        let env = data.get_env();
        let raw_ok = binary_kind::usable(env);
        if let Some(lone) = Self::lone_binary(data, raw_ok) {
            return Some(lone);
        }
        // SAFETY: `data` is a Term of `env`, the env of the running NIF
        // call (a rustler Term carries its env).
        let items = unsafe { collect(data.as_c_arg(), env.as_c_arg(), raw_ok)? };
        // A lone empty binary still gives one (empty) segment.
        if data.is_binary() && matches!(items.as_slice(), [Item::Bin(_, 0, _)]) {
            return Some(IoVecBuf::build(Vec::new(), vec![None]));
        }
        let limit = if native_segment_count(&items) < SMALL_WRITE_VEC {
            0
        } else {
            SMALL_IO_BIN_LIMIT
        };
        let (copy, pieces) = segment(&items, limit);
        Some(IoVecBuf::build(
            copy,
            pieces.into_iter().map(Some).collect(),
        ))
    }

    /// The vector for a non-empty binary term (the usual `port_command`
    /// argument), as the general path lays it out (one copied segment, or
    /// one off-heap segment in its lent `Binary`) without flattening into
    /// items and pieces first. `None` for anything else.
    fn lone_binary(data: Term<'_>, raw_ok: bool) -> Option<IoVecBuf> {
        let env = data.get_env();
        // SAFETY: `data` is a Term of `env`, the env of the running NIF call.
        let IoTerm::Binary(ptr, len) = (unsafe { ffi::io_term(env.as_c_arg(), data.as_c_arg()) })
        else {
            return None;
        };
        if len == 0 {
            return None;
        }
        let kind = if raw_ok {
            // SAFETY: `data` is a binary term of the running call's env and
            // ptr/len are what inspecting it gave.
            unsafe { binary_kind::classify(data.as_c_arg(), ptr, len) }
        } else {
            None
        };
        let kind = kind.unwrap_or(if len > binary_kind::ONHEAP_BIN_LIMIT {
            BinKind::OffHeap(None)
        } else {
            BinKind::Copied
        });
        // A copied binary and an off-heap one whose Binary is unknown get
        // the same layout here: one segment, a private copy at offset 0.
        let (bin, offset, owned) = match kind {
            // SAFETY: p.key is the live, plain (not magic, not writable)
            // Binary of `data`, which the NIF call's term keeps alive for
            // as long as the vector is used (the call).
            BinKind::OffHeap(Some(p)) => (
                unsafe { DriverBinary::lent(p.key) },
                ptr as usize - p.start,
                None,
            ),
            BinKind::OffHeap(None) | BinKind::Copied => {
                let bin = DriverBinary::alloc_pooled(len).unwrap_or_else(|| out_of_memory(len));
                // SAFETY: ptr/len are the bytes of a binary term of the NIF
                // call, readable until it returns; bin is a fresh
                // allocation of len data bytes, so they cannot overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, bin.data(), len) };
                (bin, 0, Some(bin))
            }
        };
        // SAFETY: offset + len <= bin.size(): a lent Binary's data holds
        // the term's bytes at offset (classify checked them inside it); a
        // fresh bin holds exactly len bytes at 0.
        let base = unsafe { bin.data().add(offset) };
        Some(IoVecBuf {
            many: None,
            registered: 0,
            lone: Some(Lone {
                iov: [
                    SysIOVec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    SysIOVec {
                        iov_base: base.cast(),
                        iov_len: len,
                    },
                ],
                binv: [std::ptr::null_mut(), bin.as_ptr()],
                owned,
            }),
            vec: IOVec {
                vsize: 2,
                size: len,
                iov: std::ptr::null_mut(),
                binv: std::ptr::null_mut(),
            },
        })
    }

    fn build(copy: Vec<u8>, pieces: Vec<Option<Piece>>) -> IoVecBuf {
        let mut owned: Vec<DriverBinary> = Vec::new();
        let mut lent: Vec<DriverBinary> = Vec::new();
        let copy_bin = (!copy.is_empty()).then(|| {
            let bin = alloc_or_abort(copy.len());
            // SAFETY: bin is a fresh binary of copy.len() data bytes, the
            // length copied; the source is the Vec `copy`, a different
            // allocation.
            unsafe { std::ptr::copy_nonoverlapping(copy.as_ptr(), bin.data(), copy.len()) };
            owned.push(bin);
            bin
        });
        let shared = SharedBinaries::new(&pieces, &mut owned);
        let mut iov = vec![SysIOVec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }];
        let mut binv: Vec<*mut DrvBinary> = vec![std::ptr::null_mut()];
        let mut total = 0usize;
        for piece in &pieces {
            let (bin, offset, len) = match *piece {
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
                Some(Piece::OffHeap { ptr, len, parent }) => {
                    let (bin, offset) = shared.place(ptr, len, parent, &mut owned);
                    if parent.is_some() && !lent.contains(&bin) {
                        lent.push(bin);
                    }
                    (bin, offset, len)
                }
            };
            // SAFETY: offset + len <= bin.size(): a copied piece lies in the
            // common binary of all copied bytes, an off-heap piece where
            // SharedBinaries placed it (inside its cluster or its own
            // binary), so data + offset stays inside the data.
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
            many: Some(Box::new(Many {
                iov,
                binv,
                owned,
                lent,
            })),
            registered: 0,
            lone: None,
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
    ///
    /// From here until the buffer drops, its binaries (lent and copies)
    /// are known to [`in_running_vector`] on this thread.
    pub fn as_mut_ptr(&mut self) -> *mut IOVec {
        if self.registered == 0 {
            let lone = self.lone.as_ref().map(|l| l.binv[1] as usize);
            let (lent, owned): (&[DriverBinary], &[DriverBinary]) = match &self.many {
                Some(m) => (&m.lent, &m.owned),
                None => (&[], &[]),
            };
            let mine = lent.iter().chain(owned.iter());
            IN_VECTOR.with_borrow_mut(|v| {
                v.extend(lone);
                v.extend(mine.map(|b| b.as_ptr() as usize));
            });
            self.registered = usize::from(lone.is_some()) + lent.len() + owned.len();
        }
        // The pointers are taken here, where the buffer no longer moves
        // (the caller holds it in place while the driver uses them).
        match (&mut self.lone, &mut self.many) {
            (Some(lone), _) => {
                self.vec.iov = lone.iov.as_mut_ptr();
                self.vec.binv = lone.binv.as_mut_ptr();
            }
            (None, Some(many)) => {
                self.vec.iov = many.iov.as_mut_ptr();
                self.vec.binv = many.binv.as_mut_ptr();
            }
            (None, None) => {}
        }
        &mut self.vec
    }
}

impl Drop for IoVecBuf {
    fn drop(&mut self) {
        if self.registered > 0 {
            let n = self.registered;
            // try_: a buffer dropped while the thread ends finds no list.
            let _ = IN_VECTOR.try_with(|l| {
                let mut lent = l.borrow_mut();
                let keep = lent.len().saturating_sub(n);
                lent.truncate(keep);
            });
        }
        if let Some(many) = self.many.as_mut() {
            for bin in many.owned.drain(..) {
                bin.release();
            }
        }
        if let Some(owned) = self.lone.take().and_then(|l| l.owned) {
            owned.release();
        }
    }
}

thread_local! {
    /// The binaries of the vectors of the `outputv` calls running on this
    /// thread (their `ErlDrvBinary` addresses): callers' binaries lent to
    /// the driver and our copies.
    static IN_VECTOR: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether `bin` is a binary of the vector of an `outputv` running on this
/// thread. Its references are then the sender's terms' (a lent binary) or
/// the vector's (a copy), plus those the driver took
/// (`driver_binary_inc_refc`, `driver_enq_bin`, ...): with a count of 1 the
/// driver holds none.
pub fn in_running_vector(bin: DriverBinary) -> bool {
    let addr = bin.as_ptr() as usize;
    IN_VECTOR
        .try_with(|v| v.borrow().contains(&addr))
        .unwrap_or(false)
}

fn alloc_or_abort(len: usize) -> DriverBinary {
    DriverBinary::alloc(len).unwrap_or_else(|| out_of_memory(len))
}

fn out_of_memory(len: usize) -> ! {
    std::alloc::handle_alloc_error(
        std::alloc::Layout::from_size_align(len.max(1), 16)
            .unwrap_or(std::alloc::Layout::new::<u8>()),
    )
}

/// The driver binaries of the off-heap pieces: a known parent's `Binary`
/// lent as it is, a private copy per distinct piece otherwise.
struct SharedBinaries {
    copies: Vec<(usize, usize, DriverBinary)>,
}

impl SharedBinaries {
    /// Copies every off-heap piece whose `Binary` is unknown.
    fn new(pieces: &[Option<Piece>], owned: &mut Vec<DriverBinary>) -> SharedBinaries {
        let mut copies: Vec<(usize, usize, DriverBinary)> = Vec::new();
        for piece in pieces.iter().flatten() {
            let Piece::OffHeap {
                ptr,
                len,
                parent: None,
            } = *piece
            else {
                continue;
            };
            let start = ptr as usize;
            if copies.iter().any(|&(s, l, _)| s == start && l == len) {
                continue;
            }
            let bin = alloc_or_abort(len);
            // SAFETY: ptr/len are an off-heap binary's bytes from a term of
            // the NIF call, readable and unchanged until it returns; bin is
            // a fresh allocation of len data bytes, so they cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, bin.data(), len) };
            owned.push(bin);
            copies.push((start, len, bin));
        }
        SharedBinaries { copies }
    }

    /// The driver binary and offset for one off-heap piece.
    fn place(
        &self,
        ptr: *const u8,
        len: usize,
        parent: Option<Parent>,
        owned: &mut Vec<DriverBinary>,
    ) -> (DriverBinary, usize) {
        if let Some(p) = parent {
            // SAFETY: p.key is the live, plain Binary of a term of the NIF
            // call, which keeps it alive while the vector is used.
            return (unsafe { DriverBinary::lent(p.key) }, ptr as usize - p.start);
        }
        let start = ptr as usize;
        self.copies
            .iter()
            .find(|&&(s, l, _)| s == start && l == len)
            .map(|&(_, _, bin)| (bin, 0))
            .unwrap_or_else(|| {
                // Not reached: every piece was copied by new(). Copy it on
                // its own rather than fail.
                let bin = alloc_or_abort(len);
                // SAFETY: ptr/len are an off-heap binary's bytes from a
                // term of the NIF call, readable until it returns; bin is a
                // fresh allocation of len data bytes, so they cannot
                // overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, bin.data(), len) };
                owned.push(bin);
                (bin, 0)
            })
    }
}

/// The number of data segments the runtime counts for the unpacked
/// vector (`erts_ioq_iolist_vec_len`): one per off-heap binary, one per
/// run of bytes and heap binaries — an empty heap binary starts a run too.
fn native_segment_count(items: &[Item]) -> usize {
    let mut count = 0;
    let mut in_run = false;
    for item in items {
        match item {
            Item::Bin(_, _, BinKind::OffHeap(_)) => {
                in_run = false;
                count += 1;
            }
            Item::Byte(_) | Item::Bin(_, _, BinKind::Copied) => {
                if !in_run {
                    in_run = true;
                    count += 1;
                }
            }
        }
    }
    count
}

/// Cuts the flattened items into pieces (`erts_ioq_iolist_to_vec`):
/// off-heap binaries of `limit` bytes or more get a segment of their own
/// (all of them when `limit` is 0), the rest is copied and merged.
fn segment(items: &[Item], limit: usize) -> (Vec<u8>, Vec<Piece>) {
    let mut copy = Vec::new();
    let mut pieces = Vec::new();
    let mut run_start = 0usize;
    for item in items {
        let bytes: &[u8] = match *item {
            Item::Byte(ref b) => std::slice::from_ref(b),
            Item::Bin(ptr, len, kind) => {
                if let BinKind::OffHeap(parent) = kind {
                    if len >= limit {
                        if copy.len() > run_start {
                            pieces.push(Piece::Copied {
                                offset: run_start,
                                len: copy.len() - run_start,
                            });
                            run_start = copy.len();
                        }
                        pieces.push(Piece::OffHeap { ptr, len, parent });
                        continue;
                    }
                }
                if len == 0 {
                    continue;
                }
                // SAFETY: ptr/len are what enif_inspect_binary gave for a
                // binary term of the NIF call's env: len readable bytes,
                // alive and unchanged until the call returns, which the
                // slice (used only in this loop) does not outlive.
                unsafe { std::slice::from_raw_parts(ptr, len) }
            }
        };
        copy.extend_from_slice(bytes);
    }
    if copy.len() > run_start {
        pieces.push(Piece::Copied {
            offset: run_start,
            len: copy.len() - run_start,
        });
    }
    (copy, pieces)
}

/// Flattens an iolist without recursion. `None` on non-iodata. With
/// `layout_ok`, binaries are classified by their term layout; else by
/// size (over 64 bytes: off-heap).
///
/// # Safety
/// `term` must belong to `env`, the env of the running NIF call.
unsafe fn collect(term: RawTerm, env: RawEnv, layout_ok: bool) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    // (term, is a list element): only list elements may be bytes.
    let mut stack = vec![(term, false)];
    while let Some((t, element)) = stack.pop() {
        // SAFETY: every term on the stack is `term` (of `env`, the running
        // call's env, by the caller's contract) or an element of it, which
        // enif returned for the same env.
        match unsafe { ffi::io_term(env, t) } {
            IoTerm::Binary(data, size) => {
                let kind = if layout_ok {
                    // SAFETY: `t` is a binary term of the running call's
                    // env and data/size are what inspecting it gave.
                    unsafe { binary_kind::classify(t, data, size) }
                } else {
                    None
                };
                let kind = kind.unwrap_or(if size > binary_kind::ONHEAP_BIN_LIMIT {
                    BinKind::OffHeap(None)
                } else {
                    BinKind::Copied
                });
                items.push(Item::Bin(data, size, kind));
            }
            IoTerm::Cons(head, tail) => {
                // Tail first so that the head is processed next.
                stack.push((tail, false));
                stack.push((head, true));
            }
            IoTerm::Nil => {}
            IoTerm::Int(byte) if element && (0..=255).contains(&byte) => {
                items.push(Item::Byte(byte as u8));
            }
            _ => return None,
        }
    }
    Some(items)
}

#[cfg(test)]
#[test]
fn io_vec_buf_moves_without_memcpy() {
    // rustc moves values of up to 128 bytes with inline stores.
    assert!(std::mem::size_of::<Option<IoVecBuf>>() <= 128);
}
#[cfg(test)]
mod tests;
