//! Small term builders shared by the NIF entry points and the driver API.

use rustler::sys;
use rustler::{Encoder, Env, Term};

use crate::atoms;

/// A new binary holding a copy of `bytes`.
pub fn binary_copy<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut term = sys::ErlNifTerm::default();
    // SAFETY: enif_make_new_binary returns a writable buffer of the size
    // asked for, owned by the term.
    unsafe {
        let buf = sys::enif_make_new_binary(env.as_c_arg(), bytes.len(), &mut term);
        if !bytes.is_empty() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        }
        Term::new(env, term)
    }
}

/// The list of byte values of `bytes`, ending in `tail` (or `[]`).
pub fn byte_list<'a>(env: Env<'a>, bytes: &[u8], tail: Option<Term<'a>>) -> Term<'a> {
    // SAFETY: all terms are built in `env`.
    unsafe {
        let raw_env = env.as_c_arg();
        let mut list = match tail {
            None if !bytes.is_empty() => {
                return Term::new(
                    env,
                    sys::enif_make_string_len(
                        raw_env,
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        sys::ErlNifCharEncoding::ERL_NIF_LATIN1,
                    ),
                );
            }
            None => sys::enif_make_list_from_array(raw_env, std::ptr::null(), 0),
            Some(t) => t.as_c_arg(),
        };
        for &b in bytes.iter().rev() {
            list = sys::enif_make_list_cell(raw_env, sys::enif_make_int(raw_env, b as i32), list);
        }
        Term::new(env, list)
    }
}

/// `{Port, {data, Data}}`.
pub fn data_message<'a>(env: Env<'a>, port: usize, data: Term<'a>) -> Term<'a> {
    // SAFETY: port is a pid term (immediate, valid in every env).
    let port = unsafe { raw(env, port) };
    (port, (atoms::data(), data)).encode(env)
}

/// A raw term value as a term of `env` (immediates such as pids, atoms).
///
/// # Safety
/// `raw` must be an immediate term or belong to `env`.
pub unsafe fn raw<'a>(env: Env<'a>, raw: usize) -> Term<'a> {
    // SAFETY: per the contract.
    unsafe { Term::new(env, from_raw(raw)) }
}

/// The raw term of a local pid: an immediate, valid in every env (map
/// keys, `driver_mk_port`, `driver_connected`).
pub fn pid_term(pid: &rustler::LocalPid) -> usize {
    // SAFETY: enif_make_pid only reads the pid's term (no env use).
    to_raw(unsafe { sys::enif_make_pid(std::ptr::null_mut(), *pid.as_c_arg()) })
}

/// The bits of a term (terms are machine words).
pub fn to_raw(term: sys::ErlNifTerm) -> usize {
    // SAFETY: ErlNifTerm is a repr(transparent) wrapper of a machine word.
    unsafe { std::mem::transmute::<sys::ErlNifTerm, usize>(term) }
}

/// A term from its bits.
pub fn from_raw(bits: usize) -> sys::ErlNifTerm {
    // SAFETY: ErlNifTerm is a repr(transparent) wrapper of a machine word.
    unsafe { std::mem::transmute::<usize, sys::ErlNifTerm>(bits) }
}
