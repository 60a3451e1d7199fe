//! NIF entry points, split by subject: [`drivers`] (load, unload, info,
//! compatibility report), [`ports`] (the port BIFs called by any process)
//! and [`messages`] (what the port process receives). Each entry point only
//! decodes its arguments, calls into [`crate::driver`] / [`crate::port`]
//! and encodes the result; the helpers shared by all of them live here.
//!
//! A port operation's result reaches Erlang as the plain value, or, when
//! the callback had [`Effects`](crate::effects::Effects), as the term
//! [`crate::effects`] defines, decoded by `erl_driver_compat_effects`.

mod drivers;
mod messages;
mod ports;

use rustler::{Atom, Encoder, Env, Error, NifResult, Term};

use crate::atoms;
use crate::port::{PortError, Ran};

pub use ports::PortResource;

/// The atom an operation's error is raised as.
fn error_atom(env: Env, e: &PortError) -> Atom {
    match e {
        PortError::Badarg => atoms::badarg(),
        PortError::Notsup => atoms::notsup(),
        PortError::BadValue => atoms::bad_value(),
        PortError::Posix(name) => Atom::from_str(env, name).unwrap_or_else(|_| atoms::badarg()),
    }
}

/// Packs an operation's outcome for the Erlang wrapper: the plain value
/// (or a raised error) when there are no effects, else the effects term
/// with the value or `{'$edc_error', Reason}` in it.
fn finish<'a, T>(env: Env<'a>, ran: Ran<T>, ok: impl FnOnce(T) -> Term<'a>) -> NifResult<Term<'a>> {
    let Ran { value, effects } = ran;
    if effects.is_empty() {
        return match value {
            Ok(v) => Ok(ok(v)),
            Err(PortError::Badarg) => Err(Error::BadArg),
            Err(e) => Err(Error::RaiseTerm(Box::new(error_atom(env, &e)))),
        };
    }
    let value = match value {
        Ok(v) => ok(v),
        Err(e) => (atoms::edc_error(), error_atom(env, &e)).encode(env),
    };
    Ok(effects.encode(env, value))
}

/// A driver or file name given as a string, binary or atom.
fn name_of(term: Term) -> NifResult<String> {
    if let Ok(s) = term.decode::<String>() {
        return Ok(s);
    }
    if let Ok(a) = term.atom_to_string() {
        return Ok(a);
    }
    let chars: Vec<u32> = term.decode().map_err(|_| Error::BadArg)?;
    chars
        .into_iter()
        .map(|c| char::from_u32(c).ok_or(Error::BadArg))
        .collect()
}
