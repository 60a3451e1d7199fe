//! "Monitors": `driver_monitor_process`, `driver_demonitor_process`,
//! `driver_get_monitored_process` and `driver_compare_monitors` (see
//! [`crate::monitor`] for how monitors work and what was measured).

use std::os::raw::c_int;

use super::{guard, with_port};
use crate::abi::{DrvMonitor, DrvPort, TermData};
use crate::effects::log_detached;
use crate::monitor;

/// `int driver_monitor_process(ErlDrvPort port, ErlDrvTermData process,
/// ErlDrvMonitor *monitor)`: 0 on success, 1 when the process is not
/// alive, -1 when the driver has no `process_exit` callback, the port is
/// unusable or `monitor` is NULL.
pub(crate) extern "C" fn driver_monitor_process(
    port: DrvPort,
    process: TermData,
    monitor: *mut DrvMonitor,
) -> c_int {
    guard(-1, || {
        // SAFETY: a non-NULL monitor points at the driver's writable
        // ErlDrvMonitor, used during this call only.
        let Some(out) = (unsafe { monitor.as_mut() }) else {
            log_detached("driver_monitor_process called with a NULL monitor; -1 returned");
            return -1;
        };
        with_port(port, "driver_monitor_process", |ctx, p, _st| {
            monitor::monitor(ctx, p, process, out)
        })
        .unwrap_or(-1)
    })
}

/// `int driver_demonitor_process(ErlDrvPort port, const ErlDrvMonitor
/// *monitor)`: 0 when the monitor was live (it will not fire), 1 when it
/// is not (fired, removed, or not a monitor of this port), -1 for an
/// unusable port or a NULL `monitor`.
pub(crate) extern "C" fn driver_demonitor_process(
    port: DrvPort,
    monitor: *const DrvMonitor,
) -> c_int {
    guard(-1, || {
        // SAFETY: a non-NULL monitor points at a readable ErlDrvMonitor.
        let Some(mon) = (unsafe { monitor.as_ref() }) else {
            log_detached("driver_demonitor_process called with a NULL monitor; -1 returned");
            return -1;
        };
        with_port(port, "driver_demonitor_process", |ctx, p, _st| {
            monitor::demonitor(ctx, p, mon)
        })
        .unwrap_or(-1)
    })
}

/// `ErlDrvTermData driver_get_monitored_process(ErlDrvPort port, const
/// ErlDrvMonitor *monitor)`: the monitored process, or `driver_term_nil`
/// when the monitor is not live.
pub(crate) extern "C" fn driver_get_monitored_process(
    port: DrvPort,
    monitor: *const DrvMonitor,
) -> TermData {
    let nil = super::port::driver_mk_term_nil;
    guard(nil(), || {
        // SAFETY: a non-NULL monitor points at a readable ErlDrvMonitor.
        let Some(mon) = (unsafe { monitor.as_ref() }) else {
            return nil();
        };
        with_port(port, "driver_get_monitored_process", |_ctx, p, _st| {
            monitor::monitored(p, mon)
        })
        .flatten()
        .unwrap_or_else(|| nil())
    })
}

/// `int driver_compare_monitors(const ErlDrvMonitor *monitor1, const
/// ErlDrvMonitor *monitor2)`: 0 for equal monitors, else -1 or 1 (a byte
/// comparison, as natively). NULL compares less than any monitor.
pub(crate) extern "C" fn driver_compare_monitors(
    monitor1: *const DrvMonitor,
    monitor2: *const DrvMonitor,
) -> c_int {
    guard(0, || {
        // SAFETY: a non-NULL pointer points at a readable ErlDrvMonitor.
        let a = unsafe { monitor1.as_ref() };
        // SAFETY: as above.
        let b = unsafe { monitor2.as_ref() };
        match (a, b) {
            (Some(a), Some(b)) => monitor::compare(a, b),
            (a, b) => a.is_some() as c_int - b.is_some() as c_int,
        }
    })
}
