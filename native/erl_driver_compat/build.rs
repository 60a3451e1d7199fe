//! Build script: lets the unit-test binaries link.
//!
//! The crate calls `enif_*` functions that only the running BEAM provides.
//! A cdylib may leave them undefined, but a test executable may not; the
//! unit tests never call them, so unresolved symbols are allowed there.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--unresolved-symbols=ignore-all");
    println!("cargo:rerun-if-changed=build.rs");
}
