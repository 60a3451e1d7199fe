//! erl_driver_compat: runs legacy Erlang linked-in drivers (C code written
//! against `erl_driver.h`) inside an unmodified BEAM as NIF-backed
//! pseudo-ports.
//!
//! Layers, lowest first: [`abi`] (C layouts), [`loader`] (ELF binding of a
//! driver's imports to [`api`] through the [`binding`] table), [`binary`],
//! [`context`], [`driver`], [`port`], and [`nif`] (the entry points the
//! Erlang modules call).
#![deny(missing_docs)]

pub mod abi;
pub mod api;
mod atoms;
pub mod binary;
pub mod binding;
pub mod context;
pub mod driver;
pub mod iodata;
pub mod loader;
pub mod nif;
pub mod port;
pub mod reply;
pub mod terms;
#[cfg(test)]
mod test_stubs;

rustler::init!("erl_driver_compat_nif");
