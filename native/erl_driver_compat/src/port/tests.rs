//! Fake drivers (Rust `extern "C"` functions in the test binary) whose
//! callbacks re-enter the API while the code around the callback holds
//! the port's state: the aliasing the lock-token design exists for.
//! They need no VM; run them under Miri too:
//! `cargo +nightly miri test -p erl_driver_compat --lib port::tests`.

use std::os::raw::{c_char, c_uint};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustler::LocalPid;

use super::registry::register;
use super::state::{PortOptions, PortState};
use super::{lookup_handle, terminate, ExitReason, Port, PortError};
use crate::abi::{self, DrvData, DrvEntry, SSizeT, SizeT};
use crate::api;
use crate::context::Delivery;
use crate::driver::Driver;
use crate::effects::Action;

fn fake_pid(n: usize) -> LocalPid {
    // SAFETY: only compared and used as a key: never given to the VM in
    // these tests.
    LocalPid::from_c_arg(unsafe { crate::ffi::pid_from_term(crate::ffi::from_raw((n << 4) | 0x3)) })
}

fn fake_driver(name: &str, edit: impl FnOnce(&mut DrvEntry)) -> Arc<Driver> {
    // SAFETY: DrvEntry is plain data: all-zero is every callback None,
    // every pointer NULL and every number 0.
    let mut entry: DrvEntry = unsafe { std::mem::zeroed() };
    edit(&mut entry);
    Driver::for_test(name, entry)
}

/// A port of `driver` whose ErlDrvData is its own handle (as drivers
/// that keep the ErlDrvPort as their data do).
fn fake_port(driver: &Arc<Driver>, n: usize) -> Arc<Port> {
    assert!(driver.port_opened());
    let port = Arc::new(Port {
        driver: driver.clone(),
        pid: fake_pid(n),
        pid_term: n,
        command: b"fake".to_vec(),
        number: n as u64,
        lock: driver.lock.clone(),
        state: PortState::new(fake_pid(1000 + n)),
        select: Default::default(),
        queue: Default::default(),
    });
    register(&port);
    let handle = port.handle();
    let _ = port.run_with(detached(), |ctx| {
        ctx.state().started(handle, PortOptions::default());
        Ok(())
    });
    port
}

fn detached() -> Delivery {
    Delivery::Process {
        env: std::ptr::null_mut(),
        caller: Some(fake_pid(1)),
    }
}

/// `control` that sets the binary control flag and reads the port
/// flags back, through the API, while its caller holds the state.
unsafe extern "C" fn control_reentering(
    data: DrvData,
    _op: c_uint,
    _buf: *mut c_char,
    _len: SizeT,
    _rbuf: *mut *mut c_char,
    _rlen: SizeT,
) -> SSizeT {
    api::port::set_port_control_flags(data, abi::PORT_CONTROL_FLAG_BINARY);
    api::port::get_port_flags(data) as SSizeT
}

#[test]
fn a_callback_may_change_the_state_its_caller_holds() {
    let driver = fake_driver("reenter", |e| e.control = Some(control_reentering));
    let port = fake_port(&driver, 1);
    let ran = port.run_with(detached(), |ctx| {
        let st = ctx.state();
        let before = st.control_flags();
        let control = ctx.port().driver.entry().control.expect("control");
        let mut rbuf: *mut c_char = std::ptr::null_mut();
        // SAFETY: a fake callback of this test; it ignores its buffers.
        let flags =
            ctx.enter(|| unsafe { control(st.data(), 1, std::ptr::null_mut(), 0, &mut rbuf, 0) });
        Ok((before, flags, st.control_flags()))
    });
    assert_eq!(ran.value, Ok((0, 0, abi::PORT_CONTROL_FLAG_BINARY)));
    assert!(ran.effects.is_empty());
}

static STOPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn stop_counting(_data: DrvData) {
    STOPS.fetch_add(1, Ordering::SeqCst);
}

/// `output` that fails the sibling port whose handle is in the data it
/// gets (driver-level locking: one lock for both), then finds the
/// sibling closed.
unsafe extern "C" fn output_failing_sibling(data: DrvData, buf: *mut c_char, len: SizeT) {
    assert_eq!(len, std::mem::size_of::<usize>());
    // SAFETY: the test passes a pointer-sized buffer holding a handle.
    let sibling = unsafe { buf.cast::<usize>().read_unaligned() } as DrvData;
    assert_eq!(
        api::failure::driver_failure_atom(sibling, c"gone".as_ptr().cast_mut()),
        0
    );
    // The sibling is closed now: nothing more reaches it.
    assert_eq!(api::port::get_port_flags(sibling), 0);
    // The calling port is untouched.
    let _ = data;
}

#[test]
fn a_port_closed_from_a_siblings_callback_is_counted_once() {
    let driver = fake_driver("sibling", |e| {
        e.output = Some(output_failing_sibling);
        e.stop = Some(stop_counting);
    });
    let a = fake_port(&driver, 11);
    let b = fake_port(&driver, 12);
    assert_eq!(driver.open_ports(), 2);
    let stops = STOPS.load(Ordering::SeqCst);
    let handle = b.handle() as usize;
    let ran = a.run_with(detached(), |ctx| {
        let output = ctx.port().driver.entry().output.expect("output");
        let mut buf = handle.to_ne_bytes();
        let data = ctx.state().data();
        // SAFETY: a fake callback of this test, given a readable buffer.
        ctx.enter(|| unsafe { output(data, buf.as_mut_ptr().cast(), buf.len()) });
        Ok(())
    });
    assert_eq!(ran.value, Ok(()));
    assert_eq!(STOPS.load(Ordering::SeqCst), stops + 1);
    // Counted once, after the lock was released; `a` is still open.
    assert_eq!(driver.open_ports(), 1);
    assert!(lookup_handle(b.handle()).is_none());
    assert!(lookup_handle(a.handle()).is_some());
    assert!(matches!(
        ran.effects.actions(),
        [Action::ExitPort { reason: ExitReason::Atom(r), unlink: None, .. }] if r == "gone"
    ));
    // Closing `a` too brings the count to zero.
    let ran = a.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
    assert_eq!(ran.value, Ok(()));
    assert_eq!(driver.open_ports(), 0);
    assert_eq!(STOPS.load(Ordering::SeqCst), stops + 2);
    // A closed port runs nothing more.
    let ran = a.run_with(detached(), |_ctx| Ok(()));
    assert_eq!(ran.value, Err(PortError::Badarg));
}

unsafe extern "C" fn stop_reentering(data: DrvData) {
    // From stop the port is closing: still usable for output-like
    // calls (get_port_flags), and a failure now is a no-op.
    assert_eq!(api::failure::driver_failure(data, 7), 0);
    let _ = api::port::get_port_flags(data);
}

#[test]
fn stop_may_reenter_without_closing_twice() {
    let driver = fake_driver("stopper", |e| e.stop = Some(stop_reentering));
    let port = fake_port(&driver, 21);
    let ran = port.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
    assert_eq!(ran.value, Ok(()));
    assert_eq!(ran.effects.actions().len(), 1, "one exit, not two");
    assert_eq!(driver.open_ports(), 0);
}

#[test]
fn a_created_ports_lock_is_held_until_the_creating_run_ends() {
    let driver = fake_driver("creator", |e| e.driver_flags = abi::FLAG_USE_PORT_LOCKING);
    let creator = fake_port(&driver, 41);
    assert!(driver.port_opened());
    let created = Port::new(driver.clone(), fake_pid(42), fake_pid(1042), b"made");
    let ran = creator.run_with(detached(), |ctx| {
        assert!(ctx.state_of(&created).is_none(), "not this callback's lock");
        ctx.created_locks().hold(created.clone());
        let st = ctx.state_of(&created).expect("held by the creating run");
        st.started(std::ptr::null_mut(), PortOptions::default());
        Ok(created.lock.is_locked())
    });
    assert_eq!(ran.value, Ok(true), "locked during the run");
    assert!(!created.lock.is_locked(), "released after it");
    let _ = creator.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
    driver.port_closed();
}

#[test]
fn api_calls_outside_any_callback_are_refused() {
    let driver = fake_driver("outside", |_| {});
    let port = fake_port(&driver, 31);
    // No callback runs on this thread: the call is logged and ignored.
    assert_eq!(api::port::get_port_flags(port.handle()), 0);
    assert_eq!(api::failure::driver_failure(port.handle(), 1), -1);
    assert!(lookup_handle(port.handle()).is_some());
    let _ = port.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
}

/// A port reached through the lookup cache (no reference held) and
/// closed by its own run stays alive until the run has ended and its lock
/// is released; the cache then no longer finds it.
#[test]
fn a_port_found_by_pid_outlives_its_own_close() {
    let driver = fake_driver("found", |e| e.stop = Some(stop_counting));
    let port = fake_port(&driver, 61);
    let other = fake_port(&driver, 62);
    let alive = Arc::downgrade(&port);
    drop(port);
    // The first lookup fills this thread's cache; the second hits it.
    let found = super::registry::lock_by_pid(61).expect("registered");
    assert!(!found.cached());
    drop(found);
    let found = super::registry::lock_by_pid(61).expect("registered");
    assert!(found.cached());
    let ran = Port::locked_found(found, detached(), super::closing::Gate::Open, |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        // Unregistered, and only the run keeps it now.
        assert!(lookup_handle(ctx.port().handle()).is_none());
        Ok(ctx.port().number)
    });
    assert_eq!(ran.value, Ok(61));
    assert!(alive.upgrade().is_none(), "freed once the run ended");
    assert!(super::registry::lock_by_pid(61).is_none());
    // An entry made before another port left the registry is not used,
    // and the port is found anyway.
    drop(super::registry::lock_by_pid(62).expect("registered"));
    let third = fake_port(&driver, 63);
    let _ = third.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
    let found = super::registry::lock_by_pid(62).expect("registered");
    assert!(!found.cached());
    assert_eq!(found.port().number, 62);
    drop(found);
    let _ = other.run_with(detached(), |ctx| {
        terminate(ctx, ctx.port(), ExitReason::Normal, None);
        Ok(())
    });
}
