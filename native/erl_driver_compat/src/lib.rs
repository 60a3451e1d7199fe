//! erl_driver_compat: runs legacy Erlang linked-in drivers (C code written
//! against `erl_driver.h`) inside an unmodified BEAM as NIF-backed
//! pseudo-ports.
//!
//! Layers, lowest first (each uses only the ones before it, except where a
//! module doc says otherwise):
//!
//! * [`abi`]: C layouts of `erl_driver.h`; [`ffi`]: every raw `enif_*`
//!   call, as small `unsafe fn`s; [`binary_kind`]: the one reader of the
//!   VM's term layout (heap, off-heap or sub-binary);
//! * [`terms`], [`binary`], [`iodata`], [`queue`]: safe term builders,
//!   driver binaries, port data on its way in, the port queue; [`term_spec`]: term
//!   specifications (`driver_output_term`) checked and built;
//! * [`loader`] (ELF binding through the [`binding`] table: API name →
//!   ABI variant → our function), [`driver`] (loaded drivers);
//! * [`port`] (pseudo-ports: state, registry, callbacks), [`context`] (the
//!   running callback) and [`effects`] (what a callback hands back);
//!   [`timer`] (the port timer on the VM's timers, and the VM's clock);
//!   [`select`] (`driver_select` on the VM's poll set);
//!   [`monitor`] (process monitors of ports);
//! * [`api`]: the `extern "C"` functions a driver calls;
//! * [`nif`]: the entry points the Erlang modules call.
//!
//! One cycle is inherent: a driver callback (in [`port`]) calls driver code,
//! which calls back into [`api`], which finds the running callback's port
//! through [`context`]. [`api`] never calls into [`port::callbacks`] except
//! [`port::terminate`] (a driver ending its port from inside a callback).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::multiple_unsafe_ops_per_block)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
pub mod api;
pub mod async_pool;
mod atoms;
pub mod binary;
pub mod binary_kind;
pub mod binding;
pub mod context;
pub mod driver;
pub mod effects;
pub mod ffi;
pub mod iodata;
pub mod loader;
pub mod monitor;
pub mod nif;
pub mod port;
pub mod queue;
pub mod reply;
pub mod select;
pub mod term_spec;
pub mod terms;
#[cfg(test)]
mod test_stubs;
pub mod timer;

rustler::init!("erl_driver_compat_nif", load = crate::select::on_load);
