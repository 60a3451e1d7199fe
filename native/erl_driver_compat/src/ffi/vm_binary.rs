//! The VM's own binaries (`Binary`, the object behind every refc binary
//! and, natively, every `ErlDrvBinary`): allocation, resizing, release and
//! terms made from them. rustler hides `ErlNifBinary::ref_bin`, which is
//! the `Binary *` itself, so the struct and the five functions are
//! declared here.

use std::ffi::c_void;
use std::os::raw::c_int;

use rustler::sys::ErlNifEnv;

use super::{RawEnv, RawTerm};

/// `ErlNifBinary` with its `ref_bin` visible.
#[repr(C)]
pub struct NifBinary {
    /// Size in bytes.
    pub size: usize,
    /// First byte.
    pub data: *mut u8,
    /// The VM's `Binary *` (NULL for a binary owned by a term).
    pub ref_bin: *mut c_void,
    spare: [*mut c_void; 2],
}

impl NifBinary {
    /// The `ErlNifBinary` of `size` bytes at `data` in the `Binary` at
    /// `ref_bin`.
    pub fn of(ref_bin: *mut c_void, size: usize, data: *mut u8) -> NifBinary {
        NifBinary {
            size,
            data,
            ref_bin,
            spare: [std::ptr::null_mut(); 2],
        }
    }
}

extern "C" {
    fn enif_alloc_binary(size: usize, bin: *mut NifBinary) -> c_int;
    fn enif_realloc_binary(bin: *mut NifBinary, size: usize) -> c_int;
    fn enif_release_binary(bin: *mut NifBinary);
    #[link_name = "enif_make_binary"]
    fn enif_make_binary_raw(env: *mut ErlNifEnv, bin: *mut NifBinary) -> RawTerm;
    #[link_name = "enif_make_sub_binary"]
    fn enif_make_sub_binary_raw(
        env: *mut ErlNifEnv,
        bin_term: RawTerm,
        pos: usize,
        size: usize,
    ) -> RawTerm;
}

/// `enif_alloc_binary`: a new VM `Binary` of `size` bytes with reference
/// count 1 (owned by the caller); `None` when out of memory.
pub fn alloc_binary(size: usize) -> Option<NifBinary> {
    let mut bin = NifBinary::of(std::ptr::null_mut(), 0, std::ptr::null_mut());
    // SAFETY: `bin` is a writable local out-parameter; enif_alloc_binary
    // has no other precondition (it needs no env).
    let ok = unsafe { enif_alloc_binary(size, &mut bin) } != 0;
    (ok && !bin.ref_bin.is_null()).then_some(bin)
}

/// `enif_realloc_binary` of the VM `Binary` at `ref_bin`: the resized
/// `Binary` (maybe moved), `None` when out of memory (then `ref_bin` is
/// unchanged).
///
/// # Safety
/// `ref_bin` is a live, non-magic `Binary` the caller holds the only
/// reference to (the VM may move or free the old block).
pub unsafe fn realloc_binary(ref_bin: *mut c_void, size: usize) -> Option<NifBinary> {
    let mut bin = NifBinary::of(ref_bin, 0, std::ptr::null_mut());
    // SAFETY: bin.ref_bin is a live Binary referenced only by the caller
    // (caller's contract), as enif_realloc_binary requires of an
    // ErlNifBinary it resizes.
    let ok = unsafe { enif_realloc_binary(&mut bin, size) } != 0;
    ok.then_some(bin)
}

/// `enif_release_binary` of one reference to the VM `Binary` at
/// `ref_bin`: freed when it was the last.
///
/// # Safety
/// The caller owns one reference to the live `Binary` at `ref_bin` and
/// gives it up.
pub unsafe fn release_binary(ref_bin: *mut c_void) {
    let mut bin = NifBinary::of(ref_bin, 0, std::ptr::null_mut());
    // SAFETY: one reference the caller owns (caller's contract) is
    // released, which is what enif_release_binary does with ref_bin.
    unsafe { enif_release_binary(&mut bin) };
}

/// `enif_make_binary` of the VM `Binary` at `ref_bin`: a term of its
/// whole data (the VM takes the size from the `Binary`'s `orig_size`; up to
/// 64 bytes it makes a heap binary copy). Takes over one reference.
///
/// # Safety
/// `env` is a live env; the caller owns one reference to the live,
/// non-magic `Binary` at `ref_bin`, whose `size` bytes at `data` are its
/// data, and gives that reference to the term.
pub unsafe fn make_binary(
    env: RawEnv,
    ref_bin: *mut c_void,
    data: *mut u8,
    size: usize,
) -> RawTerm {
    let mut bin = NifBinary::of(ref_bin, size, data);
    // SAFETY: env is live; bin describes a live Binary one of whose
    // references the caller hands over (caller's contract).
    unsafe { enif_make_binary_raw(env, &mut bin) }
}

/// `enif_make_sub_binary`: `size` bytes at `pos` of the binary `term`.
///
/// # Safety
/// `env` is a live env, `term` a binary of it, `pos + size` at most its
/// size.
pub unsafe fn make_sub_binary(env: RawEnv, term: RawTerm, pos: usize, size: usize) -> RawTerm {
    // SAFETY: the caller's contract is enif_make_sub_binary's.
    unsafe { enif_make_sub_binary_raw(env, term, pos, size) }
}
