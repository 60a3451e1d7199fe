//! Term specifications: the `ErlDrvTermData` arrays of
//! `driver_output_term` and friends (`ERL_DRV_NIL` ... `ERL_DRV_MAP`),
//! turned into terms with `enif_make_*` (no external-format detour).
//!
//! Work is split as the runtime splits it, because the order of the checks
//! decides the return code a driver sees (`io.c`, `driver_deliver_term`):
//!
//! 1. [`parse`]: the array is read once, with bounds checks against its
//!    length, into [`Op`]s; tags, argument counts, the stack depth, atoms,
//!    pids, ports, binaries and pointers are checked. Pure Rust: the words
//!    that must be atoms, pids or ports are classified by a [`Words`]
//!    implementation, so the unit tests need no VM.
//! 2. [`decode_ext`]: every `ERL_DRV_EXT2TERM` is decoded (the runtime's
//!    `erts_binary2term_prepare`); bad data is an error like (1).
//! 3. The caller checks the receiver: a dead one gives 0 *before* building,
//!    so errors only the building finds are not reported then.
//! 4. [`build`]: the term, with an explicit stack (no recursion on driver
//!    data); a float that is not finite or a map with a repeated key fails
//!    here, as natively.

use std::os::raw::c_int;

use rustler::{Encoder, Env, Term};

use crate::abi::{driver_bytes, DrvBinary, TermData};
use crate::binary::DriverBinary;
use crate::ffi::{self, RawTerm};
use crate::terms;

mod ops;
pub use ops::{Ops, INLINE_OPS};

/// Terms kept on [`build`]'s own stack (deeper specs use the heap).
const INLINE_TERMS: usize = 16;

/// `ERL_DRV_NIL`.
pub const ERL_DRV_NIL: TermData = 1;
/// `ERL_DRV_ATOM`.
pub const ERL_DRV_ATOM: TermData = 2;
/// `ERL_DRV_INT`.
pub const ERL_DRV_INT: TermData = 3;
/// `ERL_DRV_PORT`.
pub const ERL_DRV_PORT: TermData = 4;
/// `ERL_DRV_BINARY`.
pub const ERL_DRV_BINARY: TermData = 5;
/// `ERL_DRV_STRING`.
pub const ERL_DRV_STRING: TermData = 6;
/// `ERL_DRV_TUPLE`.
pub const ERL_DRV_TUPLE: TermData = 7;
/// `ERL_DRV_LIST`.
pub const ERL_DRV_LIST: TermData = 8;
/// `ERL_DRV_STRING_CONS`.
pub const ERL_DRV_STRING_CONS: TermData = 9;
/// `ERL_DRV_PID`.
pub const ERL_DRV_PID: TermData = 10;
/// `ERL_DRV_FLOAT`.
pub const ERL_DRV_FLOAT: TermData = 11;
/// `ERL_DRV_EXT2TERM`.
pub const ERL_DRV_EXT2TERM: TermData = 12;
/// `ERL_DRV_UINT`.
pub const ERL_DRV_UINT: TermData = 13;
/// `ERL_DRV_BUF2BINARY`.
pub const ERL_DRV_BUF2BINARY: TermData = 14;
/// `ERL_DRV_INT64`.
pub const ERL_DRV_INT64: TermData = 15;
/// `ERL_DRV_UINT64`.
pub const ERL_DRV_UINT64: TermData = 16;
/// `ERL_DRV_MAP`.
pub const ERL_DRV_MAP: TermData = 17;

/// Binaries up to this size are copied into the message (heap binaries in
/// the runtime); larger `ERL_DRV_BINARY`s share the driver binary.
const ONHEAP_BIN_LIMIT: usize = 64;

/// Counts and lengths are C `int`s in the runtime: a word above this is
/// rejected (natively it would be truncated, or exhaust memory).
const MAX_COUNT: usize = i32::MAX as usize;

/// One element of a checked specification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `[]`.
    Nil,
    /// An atom term.
    Atom(TermData),
    /// `ERL_DRV_INT`.
    Int(isize),
    /// `ERL_DRV_UINT`.
    Uint(usize),
    /// `ERL_DRV_INT64` (the value it points at).
    Int64(i64),
    /// `ERL_DRV_UINT64` (the value it points at).
    Uint64(u64),
    /// A port: the pid term of a pseudo-port.
    Port(TermData),
    /// A local pid term.
    Pid(TermData),
    /// `len` bytes at `offset` of a driver binary.
    Binary(DriverBinary, usize, usize),
    /// A copy of `len` bytes at a pointer (NULL when `len` is 0).
    Buf2Binary(*const u8, usize),
    /// The list of `len` bytes at a pointer.
    String(*const u8, usize),
    /// `len` bytes at a pointer consed onto the term below.
    StringCons(*const u8, usize),
    /// A tuple of the `n` terms below.
    Tuple(usize),
    /// A list of the `n` terms below, the last one being the tail.
    List(usize),
    /// `ERL_DRV_FLOAT` (the value it points at).
    Float(f64),
    /// External-format data of `len` bytes at a pointer.
    Ext(*const u8, usize),
    /// A map of the `n` key/value pairs below.
    Map(usize),
}

/// Why a specification is rejected (the driver sees -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The tag at `at` lacks arguments before the end of the array.
    Short {
        /// Index of the tag.
        at: usize,
    },
    /// The word at `at` is not a tag.
    UnknownTag {
        /// Index of the word.
        at: usize,
    },
    /// An argument at `at` is invalid (count, length, pointer, atom, ...).
    BadArgument {
        /// Index of the tag.
        at: usize,
    },
    /// The tag at `at` takes more terms than there are.
    Underflow {
        /// Index of the tag.
        at: usize,
    },
    /// The array does not describe exactly one term (or is empty).
    NotOneTerm,
    /// `ERL_DRV_EXT2TERM` data that does not decode.
    BadExternal,
    /// A float that is not finite.
    NotFinite,
    /// A map with a repeated key.
    DuplicateKey,
}

/// What the words of a specification that name terms are.
pub trait Words {
    /// True when `word` is an atom term.
    fn is_atom(&self, word: TermData) -> bool;
    /// True when `word` is a local pid term.
    fn is_pid(&self, word: TermData) -> bool;
    /// True when `word` names a port (the pid of an open pseudo-port).
    fn is_port(&self, word: TermData) -> bool;
}

/// Reads and checks the specification of `len` words at `data` into
/// `ops` (empty; filled in place: the caller's buffer is not moved).
///
/// # Safety
/// When `len > 0`, `data` points at `len` readable words. The pointers the
/// specification carries are valid as the manual requires (strings and
/// buffers readable for their length; `ERL_DRV_INT64`, `ERL_DRV_UINT64`
/// and `ERL_DRV_FLOAT` point at their value; binaries are driver binaries
/// or at least readable for the header before them). NULL pointers are
/// detected and rejected.
pub unsafe fn parse(
    data: *const TermData,
    len: c_int,
    words: &impl Words,
    ops: &mut Ops,
) -> Result<(), SpecError> {
    if len <= 0 || data.is_null() {
        return Err(SpecError::NotOneTerm);
    }
    // SAFETY: data is non-NULL and len > 0 (checked above), so the caller
    // guarantees len readable, aligned words there, which the driver does
    // not change while it waits for this API call (the slice's scope).
    let spec = unsafe { std::slice::from_raw_parts(data, len as usize) };
    // SAFETY: parse's caller guarantees the pointers the words carry are
    // valid as the manual requires, which is parse_words' contract.
    unsafe { parse_words(spec, words, ops) }
}

/// [`parse`] on a slice.
///
/// # Safety
/// As for [`parse`], for the pointers the words carry.
pub unsafe fn parse_words(
    spec: &[TermData],
    words: &impl Words,
    ops: &mut Ops,
) -> Result<(), SpecError> {
    let room = ops.room(spec.len());
    let mut count = 0;
    let (mut depth, mut peak, mut exts) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < spec.len() {
        let at = i;
        let tag = spec[i];
        let nargs = match tag {
            ERL_DRV_NIL => 0,
            ERL_DRV_BINARY => 3,
            ERL_DRV_STRING | ERL_DRV_STRING_CONS | ERL_DRV_EXT2TERM | ERL_DRV_BUF2BINARY => 2,
            ERL_DRV_ATOM..=ERL_DRV_MAP => 1,
            _ => return Err(SpecError::UnknownTag { at }),
        };
        let Some(args) = spec.get(i + 1..i + 1 + nargs) else {
            return Err(SpecError::Short { at });
        };
        i += 1 + nargs;
        let bad = SpecError::BadArgument { at };
        // Terms taken off the stack; the op leaves one (STRING_CONS puts
        // back the one it takes).
        let (op, take) = match tag {
            ERL_DRV_NIL => (Op::Nil, 0),
            ERL_DRV_ATOM if words.is_atom(args[0]) => (Op::Atom(args[0]), 0),
            ERL_DRV_PORT if words.is_port(args[0]) => (Op::Port(args[0]), 0),
            ERL_DRV_PID if words.is_pid(args[0]) => (Op::Pid(args[0]), 0),
            ERL_DRV_ATOM | ERL_DRV_PORT | ERL_DRV_PID => return Err(bad),
            ERL_DRV_INT => (Op::Int(args[0] as isize), 0),
            ERL_DRV_UINT => (Op::Uint(args[0]), 0),
            // SAFETY: the manual makes ERL_DRV_INT64's argument a pointer
            // to the value (caller's contract); NULL is checked by `read`.
            ERL_DRV_INT64 => (
                Op::Int64(unsafe { read(args[0] as *const i64) }.ok_or(bad)?),
                0,
            ),
            // SAFETY: the manual makes ERL_DRV_UINT64's argument a pointer
            // to the value (caller's contract); NULL is checked by `read`.
            ERL_DRV_UINT64 => (
                Op::Uint64(unsafe { read(args[0] as *const u64) }.ok_or(bad)?),
                0,
            ),
            // SAFETY: the manual makes ERL_DRV_FLOAT's argument a pointer to
            // the double (caller's contract); NULL is checked by `read`.
            ERL_DRV_FLOAT => (
                Op::Float(unsafe { read(args[0] as *const f64) }.ok_or(bad)?),
                0,
            ),
            ERL_DRV_BINARY => {
                // SAFETY: the caller guarantees an ERL_DRV_BINARY pointer is
                // NULL or readable for the HEADER bytes before it (a driver
                // binary is); from_raw rejects NULL, freed and foreign ones.
                let bin = unsafe { DriverBinary::from_raw(args[0] as *mut DrvBinary) }
                    .map_err(|_| bad)?;
                let (len, offset) = (args[1], args[2]);
                if len.checked_add(offset).is_none_or(|end| end > bin.size()) {
                    return Err(bad);
                }
                (Op::Binary(bin, offset, len), 0)
            }
            ERL_DRV_BUF2BINARY => {
                let (ptr, len) = (args[0] as *const u8, args[1]);
                if (ptr.is_null() && len > 0) || len > isize::MAX as usize {
                    return Err(bad);
                }
                (Op::Buf2Binary(ptr, len), 0)
            }
            ERL_DRV_STRING | ERL_DRV_STRING_CONS => {
                // Natively a NULL string is an error even when empty.
                let (ptr, len) = (args[0] as *const u8, args[1]);
                if ptr.is_null() || len > MAX_COUNT {
                    return Err(bad);
                }
                if tag == ERL_DRV_STRING {
                    (Op::String(ptr, len), 0)
                } else {
                    (Op::StringCons(ptr, len), 1)
                }
            }
            ERL_DRV_EXT2TERM => {
                let (ptr, len) = (args[0] as *const u8, args[1]);
                if ptr.is_null() || len == 0 || len > MAX_COUNT {
                    return Err(bad);
                }
                (Op::Ext(ptr, len), 0)
            }
            ERL_DRV_TUPLE | ERL_DRV_LIST | ERL_DRV_MAP => {
                let n = args[0];
                if n > MAX_COUNT || (tag == ERL_DRV_LIST && n == 0) {
                    return Err(bad);
                }
                match tag {
                    ERL_DRV_TUPLE => (Op::Tuple(n), n),
                    ERL_DRV_LIST => (Op::List(n), n),
                    _ => (Op::Map(n), 2 * n),
                }
            }
            _ => return Err(SpecError::UnknownTag { at }),
        };
        depth = depth.checked_sub(take).ok_or(SpecError::Underflow { at })? + 1;
        peak = peak.max(depth);
        exts += usize::from(matches!(op, Op::Ext(..)));
        // Each op takes at least one word: room (one slot per word) has
        // a free slot.
        room[count].write(op);
        count += 1;
    }
    // SAFETY: room[..count] were written just above, and ops was not
    // touched since room() lent its slots.
    unsafe { ops.set_len(count) };
    if depth != 1 {
        return Err(SpecError::NotOneTerm);
    }
    ops.depth = peak;
    ops.exts = exts;
    Ok(())
}

/// The value at `ptr`, or `None` for NULL.
///
/// # Safety
/// A non-NULL `ptr` points at a readable `T` (alignment not required).
unsafe fn read<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: ptr is non-NULL here, so the caller guarantees a readable
    // T there; read_unaligned needs no alignment, and the T used (i64,
    // u64, f64) accept every bit pattern.
    (!ptr.is_null()).then(|| unsafe { ptr.read_unaligned() })
}

/// Decodes every `ERL_DRV_EXT2TERM` of `ops` into `env`, in order.
///
/// # Safety
/// `ops` come from [`parse`] in this call into the API (the data they
/// point at is still the driver's).
pub unsafe fn decode_ext<'a>(env: Env<'a>, ops: &Ops) -> Result<Vec<Term<'a>>, SpecError> {
    let mut terms = Vec::new();
    if ops.exts == 0 {
        return Ok(terms);
    }
    for op in ops.iter() {
        if let Op::Ext(ptr, len) = *op {
            // SAFETY: parse checked ptr is non-NULL; the driver's
            // ERL_DRV_EXT2TERM buffer holds len readable bytes, unchanged
            // while it waits for this API call (caller's contract).
            let data = unsafe { driver_bytes(ptr, len) };
            // SAFETY: env is the live env of the running call (valid for
            // 'a) and data a readable slice; binary_to_term only reads it.
            let (term, _read) = unsafe { crate::ffi::binary_to_term(env.as_c_arg(), data) }
                .ok_or(SpecError::BadExternal)?;
            // SAFETY: binary_to_term made the term in env, so it is valid
            // for env's lifetime 'a. (Bytes after a complete term are
            // ignored, as natively.)
            terms.push(unsafe { Term::new(env, term) });
        }
    }
    Ok(terms)
}

/// Builds the term `ops` describe in `env`; `ext` are the terms
/// [`decode_ext`] made of the `ERL_DRV_EXT2TERM`s. One pass over `ops`
/// with a stack of terms (inline for the usual depth): a tuple is made
/// from the top of the stack in place.
///
/// # Safety
/// As for [`decode_ext`]; `ops` passed [`parse`] with words that name
/// terms valid in every env (atoms, local pids).
pub unsafe fn build<'a>(
    env: Env<'a>,
    ops: &Ops,
    ext: Vec<Term<'a>>,
) -> Result<Term<'a>, SpecError> {
    let mut inline = [RawTerm::default(); INLINE_TERMS];
    let mut heap = Vec::new();
    let stack: &mut [RawTerm] = if ops.depth <= INLINE_TERMS {
        &mut inline
    } else {
        heap.resize(ops.depth, RawTerm::default());
        &mut heap
    };
    // SAFETY: as for this function.
    let top = unsafe { build_on(env, ops, ext, stack) }?;
    // SAFETY: the top term was made in env (or is an immediate), valid for
    // 'a.
    Ok(unsafe { Term::new(env, top) })
}

/// [`build`] with `stack` (at least `ops.depth` terms) as its stack.
///
/// # Safety
/// As for [`build`].
unsafe fn build_on<'a>(
    env: Env<'a>,
    ops: &Ops,
    ext: Vec<Term<'a>>,
    stack: &mut [RawTerm],
) -> Result<RawTerm, SpecError> {
    let raw_env = env.as_c_arg();
    let mut ext = ext.into_iter();
    // Terms on the stack: stack[..sp].
    let mut sp = 0;
    for op in ops.iter() {
        // parse checked every count against the depth: `sp` cannot
        // underflow.
        let term = match *op {
            // SAFETY: env is live for 'a.
            Op::Nil => unsafe { ffi::empty_list(raw_env) },
            // parse checked with `words` that these are atoms, local pids
            // or port pids: immediates, valid in every env (caller's
            // contract).
            Op::Atom(w) | Op::Port(w) | Op::Pid(w) => ffi::from_raw(w),
            Op::Int(v) => (v as i64).encode(env).as_c_arg(),
            Op::Uint(v) => (v as u64).encode(env).as_c_arg(),
            Op::Int64(v) => v.encode(env).as_c_arg(),
            Op::Uint64(v) => v.encode(env).as_c_arg(),
            Op::Float(v) if v.is_finite() => v.encode(env).as_c_arg(),
            Op::Float(_) => return Err(SpecError::NotFinite),
            Op::Binary(bin, offset, len) if len > ONHEAP_BIN_LIMIT => {
                bin.to_term(env, offset, len).as_c_arg()
            }
            Op::Binary(bin, offset, len) => {
                // SAFETY: the driver holds its reference to bin during this
                // API call and does not write it while waiting; the slice
                // ends with this arm. (parse checked offset/len.)
                let data = unsafe { bin.bytes(offset, len) }.unwrap_or_default();
                // SAFETY: env is live for 'a.
                unsafe { ffi::binary_copy(raw_env, data) }
            }
            Op::Buf2Binary(ptr, len) => {
                // SAFETY: parse checked ptr is non-NULL or len 0; the
                // driver's buffer holds len readable bytes, unchanged
                // during this call.
                let data = unsafe { driver_bytes(ptr, len) };
                // SAFETY: env is live for 'a.
                unsafe { ffi::binary_copy(raw_env, data) }
            }
            Op::String(ptr, len) => {
                // SAFETY: parse checked ptr is non-NULL; the driver's
                // string holds len readable bytes, unchanged during this
                // call.
                let bytes = unsafe { driver_bytes(ptr, len) };
                terms::byte_list(env, bytes, None).as_c_arg()
            }
            Op::StringCons(ptr, len) => {
                sp -= 1;
                // SAFETY: the stack's terms were made in env (lifetime 'a).
                let tail = unsafe { Term::new(env, stack[sp]) };
                // SAFETY: parse checked ptr is non-NULL; the driver's
                // string holds len readable bytes, unchanged during this
                // call.
                let bytes = unsafe { driver_bytes(ptr, len) };
                terms::byte_list(env, bytes, Some(tail)).as_c_arg()
            }
            Op::Tuple(n) => {
                sp -= n;
                // SAFETY: env is live and the stack's terms belong to it.
                unsafe { ffi::tuple(raw_env, &stack[sp..sp + n]) }
            }
            Op::List(n) => {
                // parse rejected n == 0: the last item is the tail.
                sp -= n;
                let base = sp;
                let mut list = stack[base + n - 1];
                for &head in stack[base..base + n - 1].iter().rev() {
                    // SAFETY: env is live and both terms belong to it.
                    list = unsafe { ffi::list_cell(raw_env, head, list) };
                }
                list
            }
            Op::Ext(..) => ext.next().ok_or(SpecError::BadExternal)?.as_c_arg(),
            Op::Map(n) => {
                sp -= 2 * n;
                let base = sp;
                // SAFETY: the stack's terms were made in env (lifetime 'a).
                let term = |raw: &RawTerm| unsafe { Term::new(env, *raw) };
                let flat = &stack[base..base + 2 * n];
                let keys: Vec<Term<'a>> = flat.iter().step_by(2).map(term).collect();
                let values: Vec<Term<'a>> = flat.iter().skip(1).step_by(2).map(term).collect();
                let map = Term::map_from_term_arrays(env, &keys, &values)
                    .map_err(|_| SpecError::DuplicateKey)?;
                map.as_c_arg()
            }
        };
        // parse checked the depth never exceeds ops.depth (stack's
        // length at least).
        stack[sp] = term;
        sp += 1;
    }
    // parse checked exactly one term is left.
    Ok(stack[0])
}

#[cfg(test)]
mod tests;
