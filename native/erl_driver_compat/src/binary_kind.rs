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

/// The off-heap binary a piece of data lies in: its identity and the
/// extent of its bytes.
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
