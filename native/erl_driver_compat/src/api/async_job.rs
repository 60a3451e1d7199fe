//! "Asynchronous calls": `driver_async`, `driver_async_port_key` and the
//! seed's `driver_async_cancel`, on our own pool ([`crate::async_pool`]).
//!
//! # The life of a job
//!
//! `driver_async` (inside a callback of an open port) queues the job on
//! the pool and returns its id. A pool thread runs `async_invoke(data)`,
//! then finishes the job: for an open port it keeps the job and sends
//! `{'$edc_async', Id}` to the port process (`enif_send` from the pool
//! thread); the port process calls the NIF `msg_async`, which runs
//! [`on_ready`] under the port's lock: `ready_async(drv_data, data)`, or
//! `async_free(data)` for a driver without `ready_async` (as erts's
//! `async_ready`). A job that finishes after its port closed is freed with
//! `async_free` in the pool thread, and closing a port frees the jobs
//! that finished but whose message the port process had not handled
//! ([`port_closed`]): `ready_async` never runs for a closed port, and
//! every job ends exactly once. Natively (OTP 25, measured: three jobs
//! pending when the port closed were all invoked, then freed, never
//! "ready") a queued job of a closed port still runs `async_invoke` and is
//! freed when it completes; so here.
//!
//! # Pool size
//!
//! Like the VM's `+A`: the application environment setting
//! `erl_driver_compat` `async_threads`, read by `erl_driver_compat_nif`
//! when the NIF library loads ([`configure`]), by default
//! `erlang:system_info(thread_pool_size)`; clamped to 1..1024 as OTP 25
//! clamps `+A` (`+A 0` gives one thread, measured). The pool starts at the
//! first `driver_async`; `driver_system_info` reports its size as
//! `async_threads`.
//!
//! # What differs from native
//!
//! * `driver_async` with a NULL port: OTP 25 dereferences it and the VM
//!   crashes (measured: segmentation fault). The seed runtimes returned -1
//!   without running or freeing the job; we do that, and log the misuse.
//! * Ids: positive and increasing, but from our own counter and 31 bits
//!   wide (wrapping to 1), as the seed runtimes; OTP 25's count from the
//!   VM's.
//! * `driver_async_port_key`: natively the port's number (the `N` of
//!   `#Port<0.N>`); ours is the pseudo-port's number (`port_info(P, id)`).
//!   Either way equal for one port and distinct between ports.
//!
//! # `driver_async_cancel`
//!
//! OTP 25 no longer exports it (a driver importing it cannot load
//! natively); R15B–OTP 24 kept it as a no-op returning 0; the seed
//! runtimes (R8B–R14B, `erl_async.c` `async_del`) removed a job not yet
//! taken by a thread, called its `async_free` in the calling thread and
//! returned 1, else 0 — what the seed manual documents. We implement the
//! seed's cancellation: every runtime that declared the function
//! documented it so, a driver written for the no-op runtimes already
//! handles 0 (its job then completes with `ready_async`), and it only sees
//! 1 for a job it asked to cancel that had not started, which is the
//! contract its header stated.

use std::ffi::c_void;
use std::os::raw::{c_int, c_long, c_uint};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustler::{Encoder, OwnedEnv};

use super::{guard, with_port};
use crate::abi::DrvPort;
use crate::async_pool::{Completions, Finished, Pool, Work, MAX_THREADS};
use crate::atoms;
use crate::context::CallbackCtx;
use crate::effects::log_detached;
use crate::port::state::Status;
use crate::port::Port;

/// `void (*)(void *)`: `async_invoke` and `async_free`.
type JobFn = unsafe extern "C" fn(*mut c_void);

/// The pool size set by [`configure`]; 0: not set.
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

static POOL: OnceLock<Pool> = OnceLock::new();

/// Finished jobs of open ports, by port number.
fn completions() -> &'static Completions<DoneJob> {
    static COMPLETIONS: OnceLock<Completions<DoneJob>> = OnceLock::new();
    COMPLETIONS.get_or_init(Completions::default)
}

/// Sets the pool size (the `async_threads` setting). False once the pool
/// has started (its size is then fixed) or for a size out of 1..=1024.
pub fn configure(threads: usize) -> bool {
    if POOL.get().is_some() || !(1..=MAX_THREADS).contains(&threads) {
        return false;
    }
    CONFIGURED.store(threads, Ordering::Relaxed);
    true
}

/// The size the pool has or will have: the configured size, else the
/// VM's `+A`.
pub fn pool_size() -> usize {
    if let Some(pool) = POOL.get() {
        return pool.threads();
    }
    match CONFIGURED.load(Ordering::Relaxed) {
        0 => super::system::vm_async_threads().clamp(1, MAX_THREADS),
        n => n,
    }
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(pool_size()))
}

/// A finished job waiting for its port process: the driver's data and
/// `async_free`.
pub struct DoneJob {
    data: usize,
    free: Option<JobFn>,
}

impl DoneJob {
    /// Calls `async_free(data)` (nothing when the driver gave none).
    fn free(self) {
        if let Some(free) = self.free {
            // SAFETY: the driver's async_free with the data it gave to
            // driver_async, called once: the job ends here.
            unsafe { free(self.data as *mut c_void) };
        }
    }
}

/// A job of a port, as queued.
struct PortJob {
    /// Keeps the port (and with it the driver's code) alive until the job
    /// ends, as erts references the driver.
    port: Arc<Port>,
    data: usize,
    invoke: JobFn,
    free: Option<JobFn>,
}

impl Work for PortJob {
    fn run(self: Box<Self>, id: u32) {
        // SAFETY: the driver's async_invoke with its own data, on a thread
        // of ours, as the driver asked.
        unsafe { (self.invoke)(self.data as *mut c_void) };
        let done = DoneJob {
            data: self.data,
            free: self.free,
        };
        let number = self.port.number;
        match completions().finished(number, id, done) {
            Finished::Free(done) => done.free(),
            Finished::Wait(id) => {
                if !notify(&self.port, id) {
                    // The port process is gone: its close frees the job,
                    // unless it happened before we kept it.
                    if let Some(done) = completions().take(number, id) {
                        done.free();
                    }
                }
            }
        }
    }

    fn cancel(self: Box<Self>) {
        completions().withdrawn(self.port.number);
        DoneJob {
            data: self.data,
            free: self.free,
        }
        .free();
    }
}

/// Sends `{'$edc_async', Id}` to the port process from a pool thread;
/// false when it is not alive.
fn notify(port: &Port, id: u32) -> bool {
    let owned = OwnedEnv::new();
    owned.run(|env| {
        let msg = (atoms::edc_async(), id).encode(env);
        // SAFETY: a pool thread is not managed by the VM: caller_env NULL;
        // the message belongs to `owned`, handed over with it.
        unsafe {
            crate::ffi::send(
                std::ptr::null_mut(),
                port.pid.as_c_arg(),
                env.as_c_arg(),
                msg.as_c_arg(),
            )
        }
    })
}

/// `{'$edc_async', Id}` reached the context's (open) port: runs
/// `ready_async`, or `async_free` when the driver has no `ready_async`.
/// Nothing when the job is not waiting (cannot happen while the port is
/// open).
pub fn on_ready(ctx: &CallbackCtx, id: u32) {
    let port = ctx.port();
    let Some(done) = completions().take(port.number, id) else {
        return;
    };
    match port.driver.entry().ready_async {
        Some(ready) => {
            let data = ctx.state().data();
            // SAFETY: the driver's ready_async, under the port's lock, with
            // the data start returned and the job's data; the job ends
            // here (the driver frees its data).
            ctx.enter(|| unsafe { ready(data, done.data as *mut c_void) });
        }
        None => done.free(),
    }
}

/// `port` has closed (its `stop` has run): frees its finished jobs that
/// the port process had not handled; jobs still queued or running are
/// freed as they finish.
pub fn port_closed(port: &Port) {
    for done in completions().closed(port.number) {
        done.free();
    }
}

/// `long driver_async(ErlDrvPort port, unsigned int *key, void
/// (*async_invoke)(void *), void *async_data, void (*async_free)(void
/// *))`: the job's id (> 0), or -1 when the port is NULL, not open or not
/// this callback's, or `async_invoke` is NULL. With a `key`, equal keys
/// run on one thread in order and `*key` becomes the queue's index.
pub(crate) extern "C" fn driver_async(
    port: DrvPort,
    key: *mut c_uint,
    async_invoke: Option<JobFn>,
    async_data: *mut c_void,
    async_free: Option<JobFn>,
) -> c_long {
    guard(-1, || {
        if port.is_null() {
            log_detached("driver_async called with a NULL port; -1 returned");
            return -1;
        }
        let Some(invoke) = async_invoke else {
            log_detached("driver_async called with a NULL async_invoke; -1 returned");
            return -1;
        };
        with_port(port, "driver_async", |_ctx, p, st| {
            if st.status() != Status::Open {
                return -1;
            }
            let Some(port) = crate::port::lookup_handle(p.handle()) else {
                return -1;
            };
            completions().submitted(port.number);
            let job = Box::new(PortJob {
                port,
                data: async_data as usize,
                invoke,
                free: async_free,
            });
            // SAFETY: a non-NULL key points at the driver's unsigned int,
            // read and written during this call only.
            let key = unsafe { key.as_mut() };
            c_long::from(pool().submit(key, job))
        })
        .unwrap_or(-1)
    })
}

/// `unsigned int driver_async_port_key(ErlDrvPort port)`: a key that puts
/// the port's jobs on one thread (the port's number); 0 for an unusable
/// port.
pub(crate) extern "C" fn driver_async_port_key(port: DrvPort) -> c_uint {
    guard(0, || {
        with_port(port, "driver_async_port_key", |_ctx, p, _st| {
            p.number as c_uint
        })
        .unwrap_or(0)
    })
}

/// `int driver_async_cancel(unsigned int id)` (the seed's; see the module
/// documentation): 1 when the job was still queued (its `async_free` has
/// run, its `ready_async` never will), else 0.
pub(crate) extern "C" fn driver_async_cancel(id: c_uint) -> c_int {
    guard(0, || match POOL.get() {
        Some(pool) => c_int::from(pool.cancel(id)),
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::SysInfo;

    #[test]
    fn system_info_reports_the_configured_pool() {
        assert!(!configure(0));
        assert!(!configure(MAX_THREADS + 1));
        assert!(configure(5));
        assert_eq!(pool_size(), 5);
        let mut info = std::mem::MaybeUninit::<SysInfo>::zeroed();
        super::super::system::driver_system_info(info.as_mut_ptr(), std::mem::size_of::<SysInfo>());
        // SAFETY: zeroed, then filled: integers and pointers only.
        let info = unsafe { info.assume_init() };
        assert_eq!(info.async_threads, 5);
    }
}
