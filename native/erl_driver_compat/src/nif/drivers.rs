//! NIFs for drivers: load, unload, what is loaded, and the compatibility
//! report.

use std::path::PathBuf;

use rustler::{Atom, Encoder, Env, Error, NifResult, Term};

use super::name_of;
use crate::atoms;
use crate::driver::{self, DriverError};
use crate::loader::LoadError;

fn driver_error<'a>(env: Env<'a>, e: DriverError) -> Term<'a> {
    match encode_driver_error(env, e) {
        Ok(term) => term,
        Err(_) => (atoms::error(), atoms::error()).encode(env),
    }
}

fn encode_driver_error<'a>(env: Env<'a>, e: DriverError) -> NifResult<Term<'a>> {
    let reason = match e {
        DriverError::Load(LoadError::NotFound(msg)) => (atoms::open_error(), msg).encode(env),
        DriverError::Load(LoadError::NotElf(msg)) => (atoms::not_elf(), msg).encode(env),
        DriverError::Load(LoadError::NoDriverInit) => atoms::no_driver_init().encode(env),
        DriverError::Load(LoadError::Unsupported(names)) => {
            (atoms::unsupported_functions(), names).encode(env)
        }
        DriverError::Load(LoadError::OpenError(msg)) => (atoms::open_error(), msg).encode(env),
        DriverError::Load(LoadError::Copy(msg)) => (atoms::copy_error(), msg).encode(env),
        DriverError::Load(LoadError::Bind(msg)) => (atoms::bind_error(), msg).encode(env),
        DriverError::Load(LoadError::Version(_)) => atoms::driver_incorrect_version().encode(env),
        DriverError::Load(LoadError::BadEntry(msg)) => {
            (Atom::from_str(env, "bad_driver_entry")?, msg).encode(env)
        }
        DriverError::NoEntry | DriverError::InitFailed(_) => {
            atoms::driver_init_failed().encode(env)
        }
        DriverError::IncorrectVersion { .. } => atoms::driver_incorrect_version().encode(env),
        DriverError::BadDriverName(_) | DriverError::Inconsistent => {
            atoms::bad_driver_name().encode(env)
        }
        DriverError::NotLoaded => atoms::not_loaded().encode(env),
        DriverError::NotLoadedByThisProcess => atoms::not_loaded_by_this_process().encode(env),
        DriverError::Unloading => atoms::unloading().encode(env),
        DriverError::Permanent => atoms::permanent().encode(env),
    };
    Ok((atoms::error(), reason).encode(env))
}

/// `driver` (driver-level locking) or `port_level`.
pub(super) fn locking_atom(driver: &driver::Driver) -> Atom {
    if driver.port_locking {
        atoms::port_level()
    } else {
        atoms::driver()
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn load_driver<'a>(env: Env<'a>, dir: Term<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let dir = PathBuf::from(name_of(dir)?);
    let name = name_of(name)?;
    if name.is_empty() || name.contains('/') {
        return Err(Error::BadArg);
    }
    if !crate::binary::layout_ok() {
        // Every ErlDrvBinary is a VM Binary: refuse up front rather than
        // fail the driver's first driver_alloc_binary.
        let why = "this VM's Binary is not laid out as erts 13's (flags, refc, \
                   orig_size, orig_bytes): driver binaries cannot be made";
        return Ok(driver_error(
            env,
            DriverError::Load(LoadError::Bind(why.into())),
        ));
    }
    Ok(match driver::load(env, &dir, &name, &env.pid()) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => driver_error(env, e),
    })
}

#[rustler::nif]
fn unload_driver<'a>(env: Env<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let name = name_of(name)?;
    Ok(match driver::unload(env, &name, &env.pid()) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => driver_error(env, e),
    })
}

#[rustler::nif]
fn loaded_drivers() -> Vec<String> {
    driver::loaded()
}

/// `driver_loaded(Name)`: whether `Name` (a binary, the first word of a
/// port command) is a driver loaded through us and not unloading: the
/// question `open_port/2` asks on every open, answered without building
/// [`driver_info`]'s tuple. `false` for bytes that are not UTF-8 or empty.
#[rustler::nif]
fn driver_loaded(name: rustler::Binary) -> bool {
    match std::str::from_utf8(name.as_slice()) {
        Ok(name) if !name.is_empty() => driver::find(name).is_some(),
        _ => false,
    }
}

#[rustler::nif]
fn driver_info<'a>(env: Env<'a>, name: Term<'a>) -> NifResult<Term<'a>> {
    let name = name_of(name)?;
    Ok(match driver::find(&name) {
        None => atoms::undefined().encode(env),
        Some(d) => {
            let entry = d.entry();
            (
                d.path.to_string_lossy().into_owned(),
                (entry.major_version, entry.minor_version),
                locking_atom(&d),
                d.open_ports(),
                entry.outputv.is_some(),
            )
                .encode(env)
        }
    })
}

/// `check_driver(Path)`: the compatibility report of a driver file
/// ([`crate::loader::check`]), without running any of its code:
/// `{ok, [{Name, Supported}], [{Name, Provider}], Entry, {HasInit,
/// InitArrayEntries}, HasDriverInit, Verdict}` where `Entry` is
/// `{found, Major, Minor, Flags, Name | undefined}`, `not_found` or
/// `{ambiguous, N}` and `Verdict` `will_run`, `{will_run_with_warnings,
/// [Text]}` or `{will_not_run, [Text]}`.
#[rustler::nif(schedule = "DirtyIo")]
fn check_driver<'a>(env: Env<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    use crate::loader::check::{self, EntryFinding, Provider, Verdict};
    let path = PathBuf::from(name_of(path)?);
    let report = match check::check_file(&path) {
        Ok(report) => report,
        Err(e) => return Ok(driver_error(env, DriverError::Load(e))),
    };
    let atom = |name: &str| Atom::from_str(env, name);
    let others: Vec<(String, Atom)> = report
        .other_imports
        .iter()
        .map(|(name, p)| {
            let tag = match p {
                Provider::Library => "library",
                Provider::VmOnly => "vm_only",
                Provider::NotLoaded => "not_loaded",
                Provider::Weak => "weak",
            };
            Ok((name.clone(), atom(tag)?))
        })
        .collect::<NifResult<_>>()?;
    let entry = match &report.entry {
        EntryFinding::Found(e) => (
            atom("found")?,
            e.major,
            e.minor,
            e.flags,
            match &e.name {
                Some(n) => n.encode(env),
                None => atoms::undefined().encode(env),
            },
        )
            .encode(env),
        EntryFinding::NotFound => atom("not_found")?.encode(env),
        EntryFinding::Ambiguous(n) => (atom("ambiguous")?, *n).encode(env),
    };
    let verdict = match &report.verdict {
        Verdict::WillRun => atom("will_run")?.encode(env),
        Verdict::WillRunWithWarnings(texts) => {
            (atom("will_run_with_warnings")?, texts.clone()).encode(env)
        }
        Verdict::WillNotRun(problems) => {
            let texts: Vec<String> = problems.iter().map(|p| p.text()).collect();
            (atom("will_not_run")?, texts).encode(env)
        }
    };
    Ok((
        atoms::ok(),
        report.api_imports.clone(),
        others,
        entry,
        (report.init_function, report.init_array),
        report.has_driver_init,
        verdict,
    )
        .encode(env))
}

/// For tests: the reference count of the driver binary the given binary
/// views (0 if it is not a driver binary).
#[rustler::nif]
fn binary_refc(bin: Term) -> isize {
    let env = bin.get_env();
    if !crate::binary_kind::usable(env) {
        return 0;
    }
    // SAFETY: bin is a term of the running NIF call's env.
    let crate::ffi::IoTerm::Binary(ptr, len) =
        (unsafe { crate::ffi::io_term(env.as_c_arg(), bin.as_c_arg()) })
    else {
        return 0;
    };
    // SAFETY: bin is a binary term of the running call's env and ptr/len
    // what inspecting it gave.
    match unsafe { crate::binary_kind::classify(bin.as_c_arg(), ptr, len) } {
        Some(crate::binary_kind::BinKind::OffHeap(Some(p))) => {
            // SAFETY: p.key is the live, plain Binary the term keeps.
            let b = unsafe { crate::binary::DriverBinary::lent(p.key) };
            if b.is_driver_allocated() {
                b.refc()
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// `set_async_threads(N)`: the size of the async thread pool (the
/// `async_threads` setting, read when the library loads); `false` once the
/// pool has started or for a size outside 1..1024.
#[rustler::nif]
fn set_async_threads(threads: usize) -> bool {
    crate::api::async_job::configure(threads)
}

/// `stats()`: live counts for `erl_driver_compat:info/0`, as the list
/// `[Drivers, Ports, Binaries, BinaryBytes, Timers, AsyncJobs,
/// SelectedFds, Monitors]`. Each service keeps its own count (relaxed
/// atomics, or its table's size); the counts are read one after the other,
/// not as one snapshot.
#[rustler::nif]
fn stats() -> Vec<usize> {
    let (binaries, binary_bytes) = crate::binary::stats();
    vec![
        driver::loaded().len(),
        crate::port::all().len(),
        binaries,
        binary_bytes,
        crate::timer::stats(),
        crate::async_pool::stats(),
        crate::select::stats(),
        crate::monitor::stats(),
    ]
}
