//! Safe term builders shared by the NIF entry points and the driver API,
//! on top of [`crate::ffi`].

use rustler::{Encoder, Env, LocalPid, Term};

use crate::atoms;
use crate::ffi;

/// A new binary holding a copy of `bytes`.
pub fn binary_copy<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    // SAFETY: env is live for 'a.
    let term = unsafe { ffi::binary_copy(env.as_c_arg(), bytes) };
    // SAFETY: the new term belongs to env.
    unsafe { Term::new(env, term) }
}

/// `[head | tail]`.
pub fn list_cell<'a>(env: Env<'a>, head: Term<'a>, tail: Term<'a>) -> Term<'a> {
    // SAFETY: both terms belong to env (same lifetime 'a).
    let cell = unsafe { ffi::list_cell(env.as_c_arg(), head.as_c_arg(), tail.as_c_arg()) };
    // SAFETY: the cell was made in env.
    unsafe { Term::new(env, cell) }
}

/// The list of byte values of `bytes`, ending in `tail` (or `[]`).
pub fn byte_list<'a>(env: Env<'a>, bytes: &[u8], tail: Option<Term<'a>>) -> Term<'a> {
    let raw_env = env.as_c_arg();
    let list = match tail {
        // SAFETY: env is live.
        None if !bytes.is_empty() => unsafe { ffi::latin1_string(raw_env, bytes) },
        // SAFETY: env is live.
        None => unsafe { ffi::empty_list(raw_env) },
        Some(mut list) => {
            for &b in bytes.iter().rev() {
                list = list_cell(env, (b as i32).encode(env), list);
            }
            return list;
        }
    };
    // SAFETY: the list was built in env.
    unsafe { Term::new(env, list) }
}

/// `{Port, {data, Data}}`, built with two VM calls (rustler's tuple
/// encoder goes through a `Vec` per tuple and copies the pid through
/// memory: ~3 % of a 1 KiB `outputv` round trip).
pub fn data_message<'a>(env: Env<'a>, port: &LocalPid, data: Term<'a>) -> Term<'a> {
    let raw_env = env.as_c_arg();
    let pid = ffi::pid_term(port.as_c_arg());
    // SAFETY: env is live for 'a; the atom is an immediate and data a term
    // of env.
    let inner = unsafe { ffi::tuple(raw_env, &[atoms::data().as_c_arg(), data.as_c_arg()]) };
    // SAFETY: env is live; the pid is an immediate, inner was made in env.
    let outer = unsafe { ffi::tuple(raw_env, &[pid, inner]) };
    // SAFETY: outer was made in env.
    unsafe { Term::new(env, outer) }
}

/// A raw term value as a term of `env` (immediates such as pids, atoms).
///
/// # Safety
/// `raw` must be an immediate term or belong to `env`.
pub unsafe fn raw<'a>(env: Env<'a>, raw: usize) -> Term<'a> {
    // SAFETY: raw is an immediate (valid in every env) or a term of env
    // (caller's contract), so it is valid for env's lifetime 'a.
    unsafe { Term::new(env, ffi::from_raw(raw)) }
}

/// The raw term of a local pid: an immediate, valid in every env (map
/// keys, `driver_mk_port`, `driver_connected`).
pub fn pid_term(pid: &LocalPid) -> usize {
    ffi::to_raw(ffi::pid_term(pid.as_c_arg()))
}

/// The bits of a term.
pub fn to_raw(term: ffi::RawTerm) -> usize {
    ffi::to_raw(term)
}
