//! Turning the reply buffers of `control` and `call` into terms, with the
//! native ownership rules: a buffer the driver replaced the default with is
//! freed by us (`driver_free`), a driver binary (binary control mode) is
//! handed to Erlang without copying.

use std::os::raw::c_char;

use rustler::{Encoder, Env, Term};

use crate::abi::SSizeT;
use crate::binary::DriverBinary;
use crate::context::CallbackCtx;
use crate::port::PortError;
use crate::terms;

/// Builds `port_control`'s result from the `control` callback's return
/// when the reply is not a success left in the default buffer (that one
/// is made a term after the port's lock is released:
/// `crate::port::callbacks::Reply::InBuffer`).
pub fn control_reply<'a>(
    ctx: &CallbackCtx,
    env: Env<'a>,
    binary_mode: bool,
    n: SSizeT,
    rbuf: *mut c_char,
    default: *mut c_char,
) -> Result<Term<'a>, PortError> {
    if n < 0 {
        free_reply(rbuf, default, binary_mode);
        return Err(PortError::Badarg);
    }
    let n = n as usize;
    if rbuf.is_null() {
        // Natively a NULL reply is `[]` in both modes.
        return Ok(terms::byte_list(env, &[], None));
    }
    debug_assert!(rbuf != default, "the caller takes default-buffer replies");
    if binary_mode {
        // SAFETY: in binary mode the driver returns a driver binary (the
        // 16 bytes before it readable); from_raw checks its header.
        match unsafe { DriverBinary::from_raw(rbuf.cast()) } {
            // Natively the reply is the whole driver binary (`orig_size`;
            // the return value only says success: trace_ip_drv returns 0
            // with a 3-byte binary), and it takes the driver's reference:
            // no copy.
            Ok(bin) => Ok(bin.into_term_from_driver(env)),
            Err(e) => {
                ctx.log(format!(
                    "control returned a reply that is not a driver binary ({e:?}) \
                     although PORT_CONTROL_FLAG_BINARY is set"
                ));
                Err(PortError::Badarg)
            }
        }
    } else {
        // SAFETY: a replaced buffer holds at least n bytes (the driver's
        // contract) and was allocated with driver_alloc.
        let bytes = unsafe { std::slice::from_raw_parts(rbuf as *const u8, n) };
        let term = terms::byte_list(env, bytes, None);
        crate::api::memory::free(rbuf.cast());
        Ok(term)
    }
}

fn free_reply(rbuf: *mut c_char, default: *mut c_char, binary_mode: bool) {
    if rbuf.is_null() || rbuf == default {
        return;
    }
    if binary_mode {
        // SAFETY: in binary mode a non-default reply is a pointer the
        // driver got from driver_alloc_binary (the manual's contract), so
        // the 16 bytes before it are readable; from_raw rejects what does
        // not look like a live binary.
        if let Ok(bin) = unsafe { DriverBinary::from_raw(rbuf.cast()) } {
            bin.free_by_driver();
        }
    } else {
        crate::api::memory::free(rbuf.cast());
    }
}

/// Builds `port_call`'s result (the reply must be in external term
/// format) when it is not a success left in the default buffer (decoded
/// after the port's lock is released: `Reply::InBuffer`).
pub fn call_reply<'a>(
    env: Env<'a>,
    n: SSizeT,
    rbuf: *mut c_char,
    default: *mut c_char,
) -> Result<Term<'a>, PortError> {
    if n < 0 || rbuf.is_null() {
        free_reply(rbuf, default, false);
        return Err(PortError::Badarg);
    }
    debug_assert!(rbuf != default, "the caller takes default-buffer replies");
    // SAFETY: a replaced buffer holds at least n bytes (the driver's
    // contract).
    let bytes = unsafe { std::slice::from_raw_parts(rbuf as *const u8, n as usize) };
    let decoded = env.binary_to_term(bytes).map(|(t, _)| t);
    free_reply(rbuf, default, false);
    decoded.ok_or(PortError::Badarg).map(|t| t.encode(env))
}
