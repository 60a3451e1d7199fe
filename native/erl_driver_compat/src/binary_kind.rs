//! Which binaries are heap, off-heap or sub-binaries: the NIF API does not
//! say, but the runtime's segment rules depend on it. Read from the term
//! layout of erts 13 (64-bit): a boxed term points at a header word whose
//! subtag says heap (`ErlHeapBin`), refc (`ProcBin`: size, next, val,
//! bytes, flags) or sub-binary (`ErlSubBin`: size, offs, bit fields,
//! orig). Every result is checked against `enif_inspect_binary` (same
//! data pointer and size), and the whole scheme against binaries of known
//! kind once ([`usable`]); when a check fails we fall back to sizes.
//!
//! This is the one place that reads the VM's memory behind a term; it is
//! part of the lowest layer, beside [`crate::ffi`].

use std::sync::atomic::{AtomicU8, Ordering};

use rustler::{Binary, Env, NewBinary};

use crate::ffi::{self, RawTerm};

/// The off-heap binary a piece of data lies in: its identity (the address
/// of its VM `Binary`, which can be lent to a driver as its
/// `ErlDrvBinary`) and the extent of its bytes. Only known for plain
/// binaries (not magic, not writable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    /// Identity of the off-heap binary (its address).
    pub key: usize,
    /// Address of its first byte.
    pub start: usize,
    /// Address past its last byte.
    pub end: usize,
}

/// How the runtime treats a binary of an iolist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinKind {
    /// Copied with the bytes: a heap binary (or a sub-binary of one), or a
    /// binary that does not start on a byte boundary.
    Copied,
    /// Backed by an off-heap binary; `parent` when its extent is known.
    OffHeap(Option<Parent>),
}

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
/// `BIN_FLAG_MAGIC` in a `Binary`'s flags word.
const BIN_FLAG_MAGIC: usize = 1;

const UNKNOWN: u8 = 0;
const USABLE: u8 = 1;
const UNUSABLE: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

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

/// `ErlSubBin` of erts 13: a byte-aligned view into `orig`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SubBin {
    header: usize,
    size: usize,
    offs: usize,
    bitsize: u8,
    bitoffs: u8,
    is_writable: u8,
    orig: usize,
}

/// `ProcBin` of erts 13: the process's handle on an off-heap `Binary`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProcBin {
    header: usize,
    size: usize,
    next: usize,
    val: usize,
    bytes: usize,
    flags: usize,
}

/// Word `i` of the VM object at `obj`.
///
/// # Safety
/// `obj` must be a word-aligned object of more than `i` words, readable
/// and not written by anyone else during the read.
unsafe fn word(obj: *const usize, i: usize) -> usize {
    // SAFETY: i is below the object's length in words (caller's
    // contract), so obj + i stays inside it.
    let at = unsafe { obj.add(i) };
    // SAFETY: at is an aligned, readable word of the object that nobody
    // writes meanwhile (caller's contract); usize has no invalid values.
    unsafe { at.read() }
}

/// The kind of the binary term `t` whose bytes `enif_inspect_binary`
/// gave as `data`/`size`; `None` when the layout does not match.
///
/// # Safety
/// `t` must be a binary term (`enif_is_binary`) of the running call's
/// env, `data`/`size` what `enif_inspect_binary` returned for it.
pub unsafe fn classify(t: RawTerm, data: *const u8, size: usize) -> Option<BinKind> {
    let t = ffi::to_raw(t);
    if t & TAG_PRIMARY_MASK != TAG_PRIMARY_BOXED {
        return None;
    }
    let boxed = (t & !TAG_PRIMARY_MASK) as *const usize;
    // SAFETY: t is a binary term of the running call (caller's contract)
    // with the boxed tag, so `boxed` is its word-aligned object on the
    // calling process's heap, which nothing else writes during the call;
    // every binary object (heap, refc, sub) starts with its header word.
    let header = unsafe { word(boxed, 0) };
    // SAFETY: `boxed` is the word-aligned object of a binary term on the
    // calling process's heap, unchanged during the call, and every binary
    // object (heap, refc, sub) has its byte size as second word.
    if unsafe { word(boxed, 1) } != size {
        return None;
    }
    let (real, offs) = if header == HEADER_SUB_BIN {
        // SAFETY: the header says ErlSubBin: the object is 5 words laid out
        // as SubBin (checked by a unit test), aligned, on the calling
        // process's heap and unchanged during the call.
        let sub = unsafe { boxed.cast::<SubBin>().read() };
        if sub.bitsize != 0 {
            return None;
        }
        if sub.bitoffs != 0 {
            // Not byte-aligned: the runtime copies it.
            return Some(BinKind::Copied);
        }
        if sub.orig & TAG_PRIMARY_MASK != TAG_PRIMARY_BOXED {
            return None;
        }
        ((sub.orig & !TAG_PRIMARY_MASK) as *const usize, sub.offs)
    } else {
        (boxed, 0)
    };
    // SAFETY: real is either `boxed` or the boxed `orig` of a sub-binary,
    // the refc or heap binary object it views, kept by the term for the
    // call: a word-aligned object on the heap whose first word is its
    // header.
    let real_header = unsafe { word(real, 0) };
    if real_header == HEADER_PROC_BIN {
        // SAFETY: the header says ProcBin: the object is 6 words laid out
        // as ProcBin (checked by a unit test), aligned, unchanged during
        // the call.
        let proc_bin = unsafe { real.cast::<ProcBin>().read() };
        let (val, bytes) = (proc_bin.val, proc_bin.bytes);
        if bytes.wrapping_add(offs) != data as usize || val == 0 {
            return None;
        }
        // The piece lies in the Binary's own bytes unless this is
        // a resource binary pointing elsewhere.
        let start = val + BINARY_BYTES_OFFSET;
        // SAFETY: val is the non-NULL `Binary *` of a ProcBin the term
        // keeps, which holds a reference to it for the call; a Binary
        // starts with flags, refc, orig_size (word 2), and orig_size is
        // not written while a process holds a ProcBin of it.
        let orig_size = unsafe { word(val as *const usize, 2) };
        let end = start.checked_add(orig_size)?;
        let d = data as usize;
        // SAFETY: as above: val is a live Binary the term keeps; its flags
        // word is not written while a process holds a ProcBin of it.
        let bin_flags = unsafe { word(val as *const usize, 0) };
        // Only a plain Binary that is not being appended to can be lent
        // to a driver as its ErlDrvBinary (see `Parent`): a magic binary's
        // bytes are not data, and a writable one may be moved by its
        // owner's next append.
        let plain = bin_flags & BIN_FLAG_MAGIC == 0 && proc_bin.flags == 0;
        let parent = (plain && d >= start && d.checked_add(size)? <= end).then_some(Parent {
            key: val,
            start,
            end,
        });
        return Some(BinKind::OffHeap(parent));
    }
    if real_header & HEADER_SUBTAG_MASK == HEAP_BINARY_SUBTAG {
        // An ErlHeapBin's bytes follow its header and size words.
        let bytes = real as usize + 2 * WORD;
        if bytes.wrapping_add(offs) != data as usize {
            return None;
        }
        return Some(BinKind::Copied);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structs read from the heap have erts 13's sizes and offsets
    /// (`ErlSubBin` is 5 words, `ProcBin` 6; the fields read are where
    /// erl_binary.h puts them).
    #[test]
    fn vm_object_layouts_match_erts() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<SubBin>(), 5 * WORD);
        assert_eq!(offset_of!(SubBin, offs), 2 * WORD);
        assert_eq!(offset_of!(SubBin, bitsize), 3 * WORD);
        assert_eq!(offset_of!(SubBin, bitoffs), 3 * WORD + 1);
        assert_eq!(offset_of!(SubBin, orig), 4 * WORD);
        assert_eq!(size_of::<ProcBin>(), 6 * WORD);
        assert_eq!(offset_of!(ProcBin, val), 3 * WORD);
        assert_eq!(offset_of!(ProcBin, bytes), 4 * WORD);
    }

    #[test]
    fn word_reads_the_indexed_word() {
        let obj = [7usize, 8, 9];
        // SAFETY: obj is a live, aligned 3-word array only read here.
        assert_eq!(unsafe { word(obj.as_ptr(), 2) }, 9);
    }
}
