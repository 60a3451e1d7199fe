//! Data from `port_command` on its way into a driver: flattened for
//! `output`, or cut into an `ErlIOVec` for `outputv` with the segment rules
//! of the native runtime (`erts_ioq_iolist_vec_len`/`_to_vec` in OTP 25):
//! bytes and heap binaries copied into one common binary, off-heap (refc)
//! binaries as segments of their own, or copied too when they are small
//! and the vector would otherwise get 16 segments or more. Segments of the
//! same off-heap binary share one driver binary, as natively; our own
//! exposed driver binaries are passed without copying.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicU8, Ordering};

use rustler::sys::{self, ErlNifBinary, ErlNifTerm as ERL_NIF_TERM};
use rustler::{Binary, Env, NewBinary, Term};

use crate::abi::{DrvBinary, IOVec, SysIOVec};
use crate::binary::{self, DriverBinary};

/// Off-heap binaries smaller than this are copied when the vector is
/// packed (`ERL_SMALL_IO_BIN_LIMIT` in the runtime: 4 × the 64-byte heap
/// limit).
pub const SMALL_IO_BIN_LIMIT: usize = 256;

/// Vectors of this many data segments or more are packed
/// (`SMALL_WRITE_VEC`).
const SMALL_WRITE_VEC: usize = 16;

/// Two pieces of one off-heap binary further apart than this are copied
/// without the bytes between them (their offsets then differ from the
/// native ones; nearer pieces keep their distance).
const MAX_COPIED_GAP: usize = 64 * 1024;

/// `data` as one contiguous buffer: a binary as it is, an iolist copied
/// once. `None` when `data` is not iodata.
pub fn flatten(data: Term<'_>) -> Option<Binary<'_>> {
    if data.is_binary() {
        data.decode::<Binary>().ok()
    } else {
        Binary::from_iolist(data).ok()
    }
}

/// The off-heap binary a piece of data lies in: its identity and the
/// extent of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parent {
    key: usize,
    start: usize,
    end: usize,
}

/// How the runtime treats a binary of an iolist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinKind {
    /// Copied with the bytes: a heap binary (or a sub-binary of one), or a
    /// binary that does not start on a byte boundary.
    Copied,
    /// Backed by an off-heap binary; `parent` when its extent is known.
    OffHeap(Option<Parent>),
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
    /// Bytes of an off-heap binary: shared when it is one of our exposed
    /// driver binaries, else copied into a driver binary per parent.
    OffHeap {
        ptr: *const u8,
        len: usize,
        parent: Option<Parent>,
    },
}

/// An `ErlIOVec` and the storage it points into.
pub struct IoVecBuf {
    iov: Vec<SysIOVec>,
    binv: Vec<*mut DrvBinary>,
    /// Distinct binaries we hold one reference to.
    owned: Vec<DriverBinary>,
    vec: IOVec,
}

impl IoVecBuf {
    /// Builds the vector for `data`; `None` when it is not iodata.
    ///
    /// The layout follows the runtime: slot 0 is reserved and empty; off-
    /// heap binaries (of any size) are segments of their own, bytes and
    /// heap binaries are copied into one common binary, consecutive ones
    /// merged; when that would give 16 data segments or more, off-heap
    /// binaries under 256 bytes are copied too.
    pub fn from_iodata(data: Term<'_>) -> Option<IoVecBuf> {
        let env = data.get_env();
        let raw_ok = raw::usable(env);
        // SAFETY: `data` belongs to the env of the running NIF call.
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

    fn build(copy: Vec<u8>, pieces: Vec<Option<Piece>>) -> IoVecBuf {
        let mut owned: Vec<DriverBinary> = Vec::new();
        let copy_bin = (!copy.is_empty()).then(|| {
            let bin = alloc_or_abort(copy.len());
            // SAFETY: the binary holds copy.len() bytes.
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
                    (bin, offset, len)
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

/// The private driver binaries of the off-heap pieces: one per parent
/// binary (pieces close together keep their distance), one per distinct
/// piece when the parent is unknown.
struct SharedBinaries {
    groups: Vec<Group>,
}

/// The driver binary holding the pieces of one parent.
struct Group {
    key: GroupKey,
    bin: DriverBinary,
    clusters: Vec<Cluster>,
}

/// Source bytes `start..end` copied to `offset` in the group's binary.
struct Cluster {
    start: usize,
    end: usize,
    offset: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupKey {
    Parent(usize),
    Range(usize, usize),
}

impl SharedBinaries {
    /// Allocates and fills the binaries for every off-heap piece that is
    /// not one of our exposed driver binaries.
    fn new(pieces: &[Option<Piece>], owned: &mut Vec<DriverBinary>) -> SharedBinaries {
        let mut ranges: Vec<(GroupKey, usize, usize)> = Vec::new();
        for piece in pieces.iter().flatten() {
            let Piece::OffHeap { ptr, len, parent } = *piece else {
                continue;
            };
            if is_exposed(ptr, len) {
                continue;
            }
            let start = ptr as usize;
            let key = match parent {
                Some(p) => GroupKey::Parent(p.key),
                None => GroupKey::Range(start, len),
            };
            ranges.push((key, start, start + len));
        }
        let mut groups = Vec::new();
        while let Some(&(key, _, _)) = ranges.first() {
            let (mut mine, rest): (Vec<_>, Vec<_>) =
                ranges.into_iter().partition(|(k, _, _)| *k == key);
            ranges = rest;
            mine.sort_by_key(|&(_, start, end)| (start, end));
            let mut clusters: Vec<Cluster> = Vec::new();
            let mut size = 0usize;
            for (_, start, end) in mine {
                match clusters.last_mut() {
                    Some(c) if start <= c.end.saturating_add(MAX_COPIED_GAP) => {
                        if end > c.end {
                            size += end - c.end;
                            c.end = end;
                        }
                    }
                    _ => {
                        clusters.push(Cluster {
                            start,
                            end,
                            offset: size,
                        });
                        size += end - start;
                    }
                }
            }
            let bin = alloc_or_abort(size);
            for &Cluster { start, end, offset } in &clusters {
                // SAFETY: a cluster spans pieces of one off-heap binary
                // and the bytes between them, all inside that binary
                // (a piece without a known parent is a cluster alone),
                // live for the NIF call; the driver binary holds `size`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        start as *const u8,
                        bin.data().add(offset),
                        end - start,
                    )
                };
            }
            owned.push(bin);
            groups.push(Group { key, bin, clusters });
        }
        SharedBinaries { groups }
    }

    /// The driver binary and offset for one off-heap piece.
    fn place(
        &self,
        ptr: *const u8,
        len: usize,
        parent: Option<Parent>,
        owned: &mut Vec<DriverBinary>,
    ) -> (DriverBinary, usize) {
        if let Some((bin, offset)) = binary::find_exposed(ptr, len) {
            owned.push(bin);
            return (bin, offset);
        }
        let start = ptr as usize;
        let key = match parent {
            Some(p) => GroupKey::Parent(p.key),
            None => GroupKey::Range(start, len),
        };
        self.groups
            .iter()
            .find(|g| g.key == key)
            .and_then(|g| {
                g.clusters
                    .iter()
                    .find(|c| c.start <= start && start + len <= c.end)
                    .map(|c| (g.bin, c.offset + (start - c.start)))
            })
            .unwrap_or_else(|| {
                // Not reached: every piece was placed by new(). Copy it on
                // its own rather than fail.
                let bin = alloc_or_abort(len);
                // SAFETY: the piece is live for the NIF call; the binary
                // holds len bytes.
                unsafe { std::ptr::copy_nonoverlapping(ptr, bin.data(), len) };
                owned.push(bin);
                (bin, 0)
            })
    }
}

/// Whether the bytes lie in one of our exposed driver binaries.
fn is_exposed(ptr: *const u8, len: usize) -> bool {
    match binary::find_exposed(ptr, len) {
        Some((bin, _)) => {
            bin.release();
            true
        }
        None => false,
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
                // SAFETY: the binary is live for the NIF call.
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
/// `raw_ok`, binaries are classified by their term layout; else by size
/// (over 64 bytes: off-heap).
///
/// # Safety
/// `term` must belong to `env`, the env of the running NIF call.
unsafe fn collect(term: ERL_NIF_TERM, env: *mut sys::ErlNifEnv, raw_ok: bool) -> Option<Vec<Item>> {
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
                let kind = if raw_ok {
                    raw::classify(t, bin.data, bin.size)
                } else {
                    None
                };
                let kind = kind.unwrap_or(if bin.size > raw::ONHEAP_BIN_LIMIT {
                    BinKind::OffHeap(None)
                } else {
                    BinKind::Copied
                });
                items.push(Item::Bin(bin.data, bin.size, kind));
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

/// Which binaries are heap, off-heap or sub-binaries: the NIF API does not
/// say, but the runtime's segment rules depend on it. Read from the term
/// layout of erts 13 (64-bit): a boxed term points at a header word whose
/// subtag says heap (`ErlHeapBin`), refc (`ProcBin`: size, next, val,
/// bytes, flags) or sub-binary (`ErlSubBin`: size, offs, bit fields,
/// orig). Every result is checked against `enif_inspect_binary` (same
/// data pointer and size), and the whole scheme against binaries of known
/// kind once ([`usable`]); when a check fails we fall back to sizes.
mod raw {
    use super::*;

    /// Largest heap binary (`ERL_ONHEAP_BIN_LIMIT`).
    pub const ONHEAP_BIN_LIMIT: usize = 64;

    const WORD: usize = std::mem::size_of::<usize>();
    const TAG_PRIMARY_MASK: usize = 0x3;
    const TAG_PRIMARY_BOXED: usize = 0x2;
    const HEADER_SUBTAG_MASK: usize = 0x3f;
    const REFC_BINARY_SUBTAG: usize = 0x8 << 2;
    const HEAP_BINARY_SUBTAG: usize = 0x9 << 2;
    const SUB_BINARY_SUBTAG: usize = 0xa << 2;
    const HEADER_ARITY_OFFS: usize = 6;
    /// `ProcBin` is 6 words, arity 5.
    const HEADER_PROC_BIN: usize = (5 << HEADER_ARITY_OFFS) | REFC_BINARY_SUBTAG;
    /// `ErlSubBin` is 5 words, arity 3 (`orig` is not counted).
    const HEADER_SUB_BIN: usize = (3 << HEADER_ARITY_OFFS) | SUB_BINARY_SUBTAG;
    /// `Binary`: flags, refc, orig_size, then the bytes.
    const BINARY_BYTES_OFFSET: usize = 3 * WORD;

    const UNKNOWN: u8 = 0;
    const USABLE: u8 = 1;
    const UNUSABLE: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn raw_term(t: ERL_NIF_TERM) -> usize {
        // SAFETY: ErlNifTerm is a transparent wrapper of a word.
        unsafe { std::mem::transmute::<ERL_NIF_TERM, usize>(t) }
    }

    /// Whether the layout reading works in this VM; probed once with a
    /// heap binary, an off-heap binary and a sub-binary of it.
    pub fn usable(env: Env<'_>) -> bool {
        match STATE.load(Ordering::Acquire) {
            USABLE => true,
            UNUSABLE => false,
            _ => {
                let ok = probe(env);
                STATE.store(if ok { USABLE } else { UNUSABLE }, Ordering::Release);
                ok
            }
        }
    }

    fn probe(env: Env<'_>) -> bool {
        let heap: Binary = NewBinary::new(env, 8).into();
        let big: Binary = NewBinary::new(env, 200).into();
        let Ok(sub) = big.make_subbinary(10, 100) else {
            return false;
        };
        let kind = |b: &Binary| {
            let t = b.to_term(env);
            // SAFETY: a binary term of the running call's env.
            unsafe { classify(t.as_c_arg(), b.as_slice().as_ptr(), b.len()) }
        };
        let (Some(k_heap), Some(k_big), Some(k_sub)) = (kind(&heap), kind(&big), kind(&sub)) else {
            return false;
        };
        matches!(
            (k_heap, k_big, k_sub),
            (BinKind::Copied, BinKind::OffHeap(Some(p)), BinKind::OffHeap(Some(q)))
                if p == q && p.end - p.start == 200 && p.start == big.as_slice().as_ptr() as usize
        )
    }

    /// The kind of the binary term `t` whose bytes `enif_inspect_binary`
    /// gave as `data`/`size`; `None` when the layout does not match.
    ///
    /// # Safety
    /// `t` must be a binary term (`enif_is_binary`) of the running call's
    /// env, `data`/`size` what `enif_inspect_binary` returned for it.
    pub unsafe fn classify(t: ERL_NIF_TERM, data: *const u8, size: usize) -> Option<BinKind> {
        let t = raw_term(t);
        if t & TAG_PRIMARY_MASK != TAG_PRIMARY_BOXED {
            return None;
        }
        let boxed = (t & !TAG_PRIMARY_MASK) as *const usize;
        // SAFETY: a boxed binary term points at its header word followed
        // by the size word (every binary kind has both); the further
        // words read below exist for the exact header values tested
        // before reading them.
        unsafe {
            let header = *boxed;
            if *boxed.add(1) != size {
                return None;
            }
            let (real, offs) = if header == HEADER_SUB_BIN {
                let bits = boxed.add(3).cast::<u8>();
                let (bitsize, bitoffs) = (*bits, *bits.add(1));
                if bitsize != 0 {
                    return None;
                }
                if bitoffs != 0 {
                    // Not byte-aligned: the runtime copies it.
                    return Some(BinKind::Copied);
                }
                let orig = *boxed.add(4);
                if orig & TAG_PRIMARY_MASK != TAG_PRIMARY_BOXED {
                    return None;
                }
                ((orig & !TAG_PRIMARY_MASK) as *const usize, *boxed.add(2))
            } else {
                (boxed, 0)
            };
            let real_header = *real;
            if real_header == HEADER_PROC_BIN {
                let val = *real.add(3);
                let bytes = *real.add(4);
                if bytes.wrapping_add(offs) != data as usize || val == 0 {
                    return None;
                }
                // The piece lies in the Binary's own bytes unless this is
                // a resource binary pointing elsewhere.
                let start = val + BINARY_BYTES_OFFSET;
                let orig_size = *(val as *const usize).add(2);
                let end = start.checked_add(orig_size)?;
                let d = data as usize;
                let parent = (d >= start && d.checked_add(size)? <= end).then_some(Parent {
                    key: val,
                    start,
                    end,
                });
                return Some(BinKind::OffHeap(parent));
            }
            if real_header & HEADER_SUBTAG_MASK == HEAP_BINARY_SUBTAG {
                let bytes = real.add(2) as usize;
                if bytes.wrapping_add(offs) != data as usize {
                    return None;
                }
                return Some(BinKind::Copied);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(b: &'static [u8], kind: BinKind) -> Item {
        Item::Bin(b.as_ptr(), b.len(), kind)
    }

    fn shape(items: &[Item], limit: usize) -> Vec<(bool, usize)> {
        segment(items, limit)
            .1
            .iter()
            .map(|p| match p {
                Piece::Copied { len, .. } => (true, *len),
                Piece::OffHeap { len, .. } => (false, *len),
            })
            .collect()
    }

    #[test]
    fn small_off_heap_binaries_are_own_segments_unless_packed() {
        let off = BinKind::OffHeap(None);
        let items = [
            Item::Byte(b'a'),
            bin(b"xyz", off),
            bin(b"hb", BinKind::Copied),
        ];
        assert_eq!(shape(&items, 0), vec![(true, 1), (false, 3), (true, 2)]);
        assert_eq!(shape(&items, SMALL_IO_BIN_LIMIT), vec![(true, 6)]);
    }

    #[test]
    fn empty_heap_binaries_count_as_runs() {
        let off = BinKind::OffHeap(None);
        let mut items = Vec::new();
        for _ in 0..8 {
            items.push(bin(b"0123456789", off));
            items.push(bin(b"", BinKind::Copied));
        }
        assert_eq!(native_segment_count(&items), 16);
        assert_eq!(shape(&items, 0).len(), 8);
    }

    #[test]
    fn pieces_of_one_parent_keep_their_distance_up_to_the_gap_limit() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let start = data.as_ptr() as usize;
        let parent = Some(Parent {
            key: 1,
            start,
            end: start + data.len(),
        });
        let piece = |off: usize| {
            Some(Piece::OffHeap {
                ptr: data[off..].as_ptr(),
                len: 100,
                parent,
            })
        };
        let pieces = [piece(1000), piece(0), piece(150_000)];
        let mut owned = Vec::new();
        let shared = SharedBinaries::new(&pieces, &mut owned);
        assert_eq!(owned.len(), 1);
        let place = |off: usize| shared.place(data[off..].as_ptr(), 100, parent, &mut Vec::new());
        let (bin, near) = place(1000);
        let (_, first) = place(0);
        let (_, far) = place(150_000);
        assert_eq!((first, near, far), (0, 1000, 1100));
        assert_eq!(bin.size(), 1200);
        // SAFETY: the binary holds 1200 bytes.
        let copied = unsafe { std::slice::from_raw_parts(bin.data(), 1200) };
        assert_eq!(&copied[..1100], &data[..1100]);
        assert_eq!(&copied[1100..], &data[150_000..150_100]);
        for b in owned {
            b.release();
        }
    }
}
