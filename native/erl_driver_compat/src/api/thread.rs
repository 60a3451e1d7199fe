//! "Multi-threading": driver threads and their options, on the VM's own
//! threads (`enif_thread_*`, which in the VM *are* the driver functions:
//! the same stack sizes, thread names and `pthread_exit`). Locks and
//! thread-specific data are in [`super::sync`].
//!
//! A driver's `ErlDrvTid` is our own [`DrvThread`], holding the VM's id
//! and the name, one per thread: the handle `erl_drv_thread_create`
//! returns is the one `erl_drv_thread_self` gives on that thread. A
//! thread the driver did not create (a scheduler calling a callback) gets
//! a handle on first use, freed when the thread ends, as natively. Every
//! handle is registered, so a NULL, joined or unknown handle is reported
//! and answered with the documented value (natively some of these abort
//! the VM or read freed memory).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::LazyLock;

use parking_lot::Mutex;

use super::guard;
use super::sync::copy_name;
use crate::context;
use crate::effects::log_detached;
use crate::ffi::{self, NifThreadOpts, NifTid, ThreadFn};

/// Misuse reports logged before further ones are dropped (a driver
/// looping on a bad handle must not flood the log).
const MAX_REPORTS: usize = 100;
static REPORTS: AtomicUsize = AtomicUsize::new(0);

/// Logs that `func` was called with `what` (to the Erlang logger inside a
/// callback, to stderr on the driver's own threads).
pub(super) fn report(func: &str, what: &str) {
    let n = REPORTS.fetch_add(1, Ordering::Relaxed);
    if n > MAX_REPORTS {
        return;
    }
    let line = if n == MAX_REPORTS {
        "further misuse of the driver thread API is not reported".to_owned()
    } else {
        format!("{func} called with {what}; ignored")
    };
    if context::with_current(|ctx| ctx.log(line.clone())).is_none() {
        log_detached(&line);
    }
}

/// What an `ErlDrvTid` points at.
pub struct DrvThread {
    vm: NifTid,
    name: CString,
    /// Made by `erl_drv_thread_create` (only those can be joined).
    created: bool,
    joining: AtomicBool,
}

/// Every live [`DrvThread`], by address, and the created ones by the VM's
/// id (so that a created thread finds its own handle).
#[derive(Default)]
struct Registry {
    handles: HashSet<usize>,
    created: HashMap<usize, usize>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// The live `ErlDrvThreadOpts` we made.
static OPTS: LazyLock<Mutex<HashSet<usize>>> = LazyLock::new(Default::default);

/// The handle of a thread we did not create, freed when it ends.
struct ForeignHandle(Cell<*mut DrvThread>);

impl Drop for ForeignHandle {
    fn drop(&mut self) {
        let handle = self.0.get();
        if handle.is_null() {
            return;
        }
        let _ = SELF.try_with(|s| s.set(ptr::null_mut()));
        REGISTRY.lock().handles.remove(&(handle as usize));
        // SAFETY: made by Box::into_raw in `thread_self` for this thread,
        // unregistered just above, freed once.
        drop(unsafe { Box::from_raw(handle) });
    }
}

thread_local! {
    /// The calling thread's handle, once known.
    static SELF: Cell<*mut DrvThread> = const { Cell::new(ptr::null_mut()) };
    static FOREIGN: ForeignHandle = const { ForeignHandle(Cell::new(ptr::null_mut())) };
}

/// The calling thread's handle.
fn thread_self() -> *mut DrvThread {
    let known = SELF.with(Cell::get);
    if !known.is_null() {
        return known;
    }
    let vm = ffi::thread_self();
    // A thread we create waits here until its creator has registered it.
    if let Some(&handle) = REGISTRY.lock().created.get(&(vm as usize)) {
        let handle = handle as *mut DrvThread;
        SELF.with(|s| s.set(handle));
        return handle;
    }
    // SAFETY: vm is the calling thread's own id, live while it runs.
    let vm_name = unsafe { ffi::thread_name(vm) };
    let name = if vm_name.is_null() {
        copy_name(ptr::null())
    } else {
        // SAFETY: the VM's name is a NUL-terminated string.
        unsafe { CStr::from_ptr(vm_name) }.to_owned()
    };
    let handle = Box::into_raw(Box::new(DrvThread {
        vm,
        name,
        created: false,
        joining: AtomicBool::new(false),
    }));
    REGISTRY.lock().handles.insert(handle as usize);
    // On a thread already tearing down its thread-locals the handle is
    // not freed at its end (a leak, never a dangling handle).
    let _ = FOREIGN.try_with(|f| f.0.set(handle));
    let _ = SELF.try_with(|s| s.set(handle));
    handle
}

/// Runs `f` on the live handle `tid` (under the registry's lock), or
/// reports the misuse by `func` and returns `default`.
fn with_thread<R>(
    func: &str,
    tid: *mut DrvThread,
    default: R,
    f: impl FnOnce(&DrvThread) -> R,
) -> R {
    if tid.is_null() {
        report(func, "a NULL thread id");
        return default;
    }
    let registry = REGISTRY.lock();
    if !registry.handles.contains(&(tid as usize)) {
        report(
            func,
            "a thread id that is not live (joined, or never created)",
        );
        return default;
    }
    // SAFETY: a registered handle is live until unregistered, which needs
    // the lock held here.
    f(unsafe { &*tid })
}

/// `int erl_drv_thread_create(char *name, ErlDrvTid *tid, void *(*func)(void *),
/// void *arg, ErlDrvThreadOpts *opts)`: 0 or an errno value. The VM
/// names the thread and honours `opts->suggested_stack_size`.
pub(crate) extern "C" fn erl_drv_thread_create(
    name: *mut c_char,
    tid: *mut *mut DrvThread,
    func: Option<ThreadFn>,
    arg: *mut c_void,
    opts: *mut DrvThreadOpts,
) -> c_int {
    const FUNC: &str = "erl_drv_thread_create";
    guard(libc::EAGAIN, || {
        let Some(func) = func else {
            report(FUNC, "a NULL thread function");
            return libc::EINVAL;
        };
        if tid.is_null() {
            report(FUNC, "a NULL ErlDrvTid pointer");
            return libc::EINVAL;
        }
        let mut vm_opts = NifThreadOpts {
            suggested_stack_size: -1,
        };
        let vm_opts_ptr = if opts.is_null() {
            ptr::null_mut()
        } else if OPTS.lock().contains(&(opts as usize)) {
            // SAFETY: a registered ErlDrvThreadOpts of ours is live.
            vm_opts.suggested_stack_size = unsafe { (*opts).suggested_stack_size };
            &mut vm_opts as *mut NifThreadOpts
        } else {
            report(
                FUNC,
                "ErlDrvThreadOpts that are destroyed or not from erl_drv_thread_opts_create",
            );
            return libc::EINVAL;
        };
        let copy = copy_name(name);
        let mut registry = REGISTRY.lock();
        // The new thread's erl_drv_thread_self waits for the lock: it
        // finds itself registered.
        // SAFETY: the VM copies `name` (NULL stays NULL, as the driver
        // gave it); func/arg are the driver's; vm_opts lives across the
        // call.
        match unsafe { ffi::thread_create(name, func, arg, vm_opts_ptr) } {
            Ok(vm) => {
                let handle = Box::into_raw(Box::new(DrvThread {
                    vm,
                    name: copy,
                    created: true,
                    joining: AtomicBool::new(false),
                }));
                registry.handles.insert(handle as usize);
                registry.created.insert(vm as usize, handle as usize);
                // SAFETY: tid is non-NULL and writable (the contract).
                unsafe { *tid = handle };
                0
            }
            Err(errno) => errno,
        }
    })
}

/// `ErlDrvTid erl_drv_thread_self(void)`
pub(crate) extern "C" fn erl_drv_thread_self() -> *mut DrvThread {
    guard(ptr::null_mut(), thread_self)
}

/// `int erl_drv_equal_tids(ErlDrvTid tid1, ErlDrvTid tid2)`: non-zero
/// when both name the same thread (one handle per thread: the same
/// pointer). 0 for a NULL id (natively an abort).
pub(crate) extern "C" fn erl_drv_equal_tids(tid1: *mut DrvThread, tid2: *mut DrvThread) -> c_int {
    guard(0, || {
        if tid1.is_null() || tid2.is_null() {
            report("erl_drv_equal_tids", "a NULL thread id");
            return 0;
        }
        c_int::from(tid1 == tid2)
    })
}

/// `char *erl_drv_thread_name(ErlDrvTid tid)`: NULL for NULL.
pub(crate) extern "C" fn erl_drv_thread_name(tid: *mut DrvThread) -> *mut c_char {
    guard(ptr::null_mut(), || {
        if tid.is_null() {
            return ptr::null_mut();
        }
        with_thread("erl_drv_thread_name", tid, ptr::null_mut(), |t| {
            t.name.as_ptr() as *mut c_char
        })
    })
}

/// `int erl_drv_thread_join(ErlDrvTid tid, void **respp)`: 0 and the
/// thread's result (its return value or `erl_drv_thread_exit`'s
/// argument) in `*respp` unless NULL; `EINVAL` for a thread not made by
/// `erl_drv_thread_create` (as natively) and for a NULL, joined or
/// unknown id.
pub(crate) extern "C" fn erl_drv_thread_join(
    tid: *mut DrvThread,
    respp: *mut *mut c_void,
) -> c_int {
    const FUNC: &str = "erl_drv_thread_join";
    guard(libc::EINVAL, || {
        let vm = with_thread(FUNC, tid, Err(libc::EINVAL), |t| {
            if !t.created {
                return Err(libc::EINVAL);
            }
            if t.joining.swap(true, Ordering::AcqRel) {
                report(FUNC, "a thread id another thread is joining");
                return Err(libc::EINVAL);
            }
            Ok(t.vm)
        });
        let vm = match vm {
            Ok(vm) => vm,
            Err(errno) => return errno,
        };
        // SAFETY: a thread we created, joined once (the `joining` flag);
        // respp is NULL or writable (the contract).
        let res = unsafe { ffi::thread_join(vm, respp) };
        let mut registry = REGISTRY.lock();
        if res != 0 {
            // SAFETY: still registered: only a successful join frees it.
            unsafe { &*tid }.joining.store(false, Ordering::Release);
            return res;
        }
        registry.handles.remove(&(tid as usize));
        // The VM freed its id: a new thread may already have it.
        if registry.created.get(&(vm as usize)) == Some(&(tid as usize)) {
            registry.created.remove(&(vm as usize));
        }
        drop(registry);
        // SAFETY: made by Box::into_raw in erl_drv_thread_create,
        // unregistered above under the lock, freed once (`joining`).
        drop(unsafe { Box::from_raw(tid) });
        0
    })
}

/// True when the calling thread was made by `erl_drv_thread_create`.
fn is_created_thread() -> bool {
    // SAFETY: thread_self returns the calling thread's live handle.
    unsafe { &*thread_self() }.created
}

/// `void erl_drv_thread_exit(void *resp)`: ends the calling thread; `resp`
/// is what `erl_drv_thread_join` gives. Only for threads made by
/// `erl_drv_thread_create`: on any other thread it is reported and
/// returns (natively the VM aborts).
///
/// The thread ends by a forced unwind (`pthread_exit`) through this
/// frame, which therefore holds nothing to drop and catches nothing at
/// that point ("C-unwind").
pub(crate) extern "C-unwind" fn erl_drv_thread_exit(resp: *mut c_void) {
    if guard(false, is_created_thread) {
        // SAFETY: a thread made by erl_drv_thread_create; nothing with a
        // destructor is live in this frame (the guard above has
        // returned), and the frames below are the driver's and the VM's.
        unsafe { ffi::thread_exit(resp) }
    }
    guard((), || {
        report(
            "erl_drv_thread_exit",
            "a thread not made by erl_drv_thread_create (the calling thread)",
        )
    })
}

/// `ErlDrvThreadOpts`: the layout the driver sees, one field.
#[repr(C)]
pub struct DrvThreadOpts {
    /// Suggested stack size in kilo-words; -1 (the default) for the VM's
    /// default.
    pub suggested_stack_size: c_int,
}

/// `ErlDrvThreadOpts *erl_drv_thread_opts_create(char *name)`: the
/// default options (`suggested_stack_size` -1, as natively).
pub(crate) extern "C" fn erl_drv_thread_opts_create(_name: *mut c_char) -> *mut DrvThreadOpts {
    guard(ptr::null_mut(), || {
        let opts = Box::into_raw(Box::new(DrvThreadOpts {
            suggested_stack_size: -1,
        }));
        OPTS.lock().insert(opts as usize);
        opts
    })
}

/// `void erl_drv_thread_opts_destroy(ErlDrvThreadOpts *opts)`
pub(crate) extern "C" fn erl_drv_thread_opts_destroy(opts: *mut DrvThreadOpts) {
    guard((), || {
        if opts.is_null() {
            report("erl_drv_thread_opts_destroy", "NULL options");
            return;
        }
        if !OPTS.lock().remove(&(opts as usize)) {
            report(
                "erl_drv_thread_opts_destroy",
                "options that are destroyed or not ours",
            );
            return;
        }
        // SAFETY: made by Box::into_raw in erl_drv_thread_opts_create,
        // unregistered above, freed once.
        drop(unsafe { Box::from_raw(opts) });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_thread_ids_give_the_documented_values_without_the_vm() {
        assert_eq!(
            erl_drv_thread_join(ptr::null_mut(), ptr::null_mut()),
            libc::EINVAL
        );
        let unknown = 0x1000 as *mut DrvThread;
        assert_eq!(erl_drv_thread_join(unknown, ptr::null_mut()), libc::EINVAL);
        assert!(erl_drv_thread_name(ptr::null_mut()).is_null());
        assert!(erl_drv_thread_name(unknown).is_null());
        assert_eq!(erl_drv_equal_tids(ptr::null_mut(), unknown), 0);
        assert_eq!(erl_drv_equal_tids(unknown, unknown), 1);
    }

    #[test]
    fn thread_create_refuses_null_arguments_without_the_vm() {
        let mut tid = ptr::null_mut();
        assert_eq!(
            erl_drv_thread_create(
                ptr::null_mut(),
                &mut tid,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            libc::EINVAL
        );
        unsafe extern "C" fn body(_: *mut c_void) -> *mut c_void {
            ptr::null_mut()
        }
        assert_eq!(
            erl_drv_thread_create(
                ptr::null_mut(),
                ptr::null_mut(),
                Some(body),
                ptr::null_mut(),
                ptr::null_mut()
            ),
            libc::EINVAL
        );
        let stale = erl_drv_thread_opts_create(ptr::null_mut());
        erl_drv_thread_opts_destroy(stale);
        assert_eq!(
            erl_drv_thread_create(
                ptr::null_mut(),
                &mut tid,
                Some(body),
                ptr::null_mut(),
                stale
            ),
            libc::EINVAL
        );
        assert!(tid.is_null());
    }

    #[test]
    fn opts_default_and_double_destroy() {
        let opts = erl_drv_thread_opts_create(c"o".as_ptr() as *mut c_char);
        // SAFETY: just created.
        assert_eq!(unsafe { (*opts).suggested_stack_size }, -1);
        erl_drv_thread_opts_destroy(opts);
        erl_drv_thread_opts_destroy(opts);
        erl_drv_thread_opts_destroy(ptr::null_mut());
    }
}
