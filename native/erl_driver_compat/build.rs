//! Build script: lets the unit-test binaries link and start.
//!
//! The crate calls `enif_*` functions that only the running BEAM provides.
//! The cdylib leaves them undefined (the BEAM resolves them when it loads
//! the NIF); a test executable must be allowed to leave them undefined too,
//! and must bind lazily so that it starts at all. The unit tests never call
//! them.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--unresolved-symbols=ignore-all");
    println!("cargo:rustc-link-arg=-Wl,-z,lazy");
    println!("cargo:rerun-if-changed=build.rs");
}
