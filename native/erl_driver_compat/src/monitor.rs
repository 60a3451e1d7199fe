//! Process monitors of ports (`driver_monitor_process` & co) on the VM's
//! resource monitors.
//!
//! # How a monitor works
//!
//! Each monitor is a small resource ([`MonitorWatch`]) that knows its port
//! process and its id, monitoring the process with
//! `enif_monitor_process`. The driver's `ErlDrvMonitor` holds only the id
//! ([`encode`]): the id is the key of the port's table here, so the
//! functions work on any copy of the driver's struct. When the process
//! dies the resource's `down` callback (on whatever scheduler runs it)
//! does no driver work: it sends `{'$edc_down', Id}` to the port process,
//! which calls the NIF `msg_down`, which runs [`on_down`] under the port's
//! lock: `process_exit(drv_data, &monitor)`.
//!
//! # Native semantics kept (measured on OTP 25)
//!
//! * `driver_monitor_process` returns 0, or 1 for a process that is no
//!   longer alive (no `process_exit` ever follows); -1 for a driver
//!   without `process_exit` (the manual's value; not measured). It works
//!   from `start` and from `stop` (a monitor made in `stop` never fires).
//! * Inside `process_exit` the monitor is still known:
//!   `driver_get_monitored_process` gives the process; afterwards the
//!   monitor is gone (`driver_term_nil`, and demonitoring it returns 1).
//! * Several monitors of one process fire one `process_exit` each.
//! * `driver_demonitor_process` returns 0, then 1 for a monitor it
//!   already removed; a copy of the struct works as the original.
//! * A port that closes drops its monitors: no `process_exit` after it
//!   (also when the monitored process is the owner, whose death closes
//!   the port).
//! * `driver_compare_monitors` orders monitors of a port by creation (the
//!   earlier is less), like a byte comparison (`memcmp`) of the structs.
//!
//! What differs: natively `driver_demonitor_process` on the monitor that
//! `process_exit` is running for crashes the VM (measured: segmentation
//! fault, before the driver could report the return value); here it
//! returns 0 (the monitor was live) and nothing more happens. The ids
//! are ours (a global counter), so monitors of different ports compare
//! by creation too, where natively they compare by reference number.

use std::collections::HashMap;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use rustler::sys::ErlNifMonitor;
use rustler::{Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc};

use crate::abi::{DrvMonitor, TermData};
use crate::atoms;
use crate::context::{CallbackCtx, Delivery};
use crate::ffi::{self, RawEnv};
use crate::port::Port;

/// The resource behind one monitor: its `down` callback tells the port
/// process.
pub struct MonitorWatch {
    port: LocalPid,
    id: u64,
}

#[rustler::resource_impl]
impl Resource for MonitorWatch {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        let owned = OwnedEnv::new();
        owned.run(|msg_env| {
            let msg = (atoms::edc_down(), self.id).encode(msg_env);
            // SAFETY: env is the env of this down callback; the message
            // belongs to `owned`, handed over with it. A port process that
            // is gone does not receive it (its port has closed).
            unsafe {
                ffi::send(
                    env.as_c_arg(),
                    self.port.as_c_arg(),
                    msg_env.as_c_arg(),
                    msg.as_c_arg(),
                )
            };
        });
    }
}

/// One live monitor of a port.
struct Entry {
    /// The monitored process.
    pid: LocalPid,
    watch: ResourceArc<MonitorWatch>,
    monitor: ErlNifMonitor,
}

impl Entry {
    /// Removes the VM's monitor (nothing if it has fired).
    fn demonitor(&self, env: RawEnv) {
        // SAFETY: env is the running NIF call's or callback's (see
        // `caller_env`); the monitor was made for this resource, which
        // `watch` keeps alive.
        unsafe { ffi::demonitor_process(env, self.watch.as_c_arg(), &self.monitor) };
    }
}

/// The live monitors of every port: port number → monitor id → entry.
fn table() -> &'static Mutex<HashMap<u64, HashMap<u64, Entry>>> {
    static TABLE: OnceLock<Mutex<HashMap<u64, HashMap<u64, Entry>>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The number of live driver monitors (`driver_monitor_process` made, not
/// yet removed by `driver_demonitor_process`, the process's exit or the
/// port's close), for `erl_driver_compat:info/0`.
pub fn stats() -> usize {
    table().lock().values().map(HashMap::len).sum()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Marks a struct as one of ours (a zeroed or garbage struct has no id).
const MAGIC: [u8; 8] = *b"edc-mon\0";

/// The `ErlDrvMonitor` of monitor `id`: the id big-endian first (so that
/// a byte comparison orders monitors by creation), then a marker.
pub fn encode(id: u64) -> DrvMonitor {
    let mut data = [0u8; 32];
    data[..8].copy_from_slice(&id.to_be_bytes());
    data[8..16].copy_from_slice(&MAGIC);
    DrvMonitor { data }
}

/// The id in a struct [`encode`] made, if it is one.
pub fn decode(monitor: &DrvMonitor) -> Option<u64> {
    if monitor.data[8..16] != MAGIC {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&monitor.data[..8]);
    Some(u64::from_be_bytes(id))
}

/// `driver_compare_monitors`: the sign of a byte comparison, as natively.
pub fn compare(a: &DrvMonitor, b: &DrvMonitor) -> c_int {
    match a.data.cmp(&b.data) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

/// The env of the NIF call or callback running `ctx` (process-bound or a
/// callback's), or NULL on a thread the VM does not manage: what
/// `enif_monitor_process` and `enif_demonitor_process` take.
fn caller_env(ctx: &CallbackCtx) -> RawEnv {
    match ctx.delivery() {
        Delivery::Process { env, .. } => env,
        Delivery::Detached { caller_env } => caller_env,
    }
}

/// `driver_monitor_process` for `port` (locked by `ctx`): 0 and the new
/// monitor in `out`, 1 when `process` is not a live local process, -1
/// when the driver has no `process_exit`.
pub fn monitor(ctx: &CallbackCtx, port: &Port, process: TermData, out: &mut DrvMonitor) -> c_int {
    if port.driver.entry().process_exit.is_none() {
        return -1;
    }
    let env = caller_env(ctx);
    if env.is_null() {
        // No callback runs on an unmanaged thread (`with_port` refuses).
        return 1;
    }
    // SAFETY: the env is live; any word may be tested.
    let Some(pid) = (unsafe { ffi::local_pid(env, ffi::from_raw(process)) }) else {
        return 1;
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let watch = ResourceArc::new(MonitorWatch { port: port.pid, id });
    // SAFETY: all-zero is a valid ErlNifMonitor (plain bytes), written by
    // the VM on success.
    let mut monitor: ErlNifMonitor = unsafe { std::mem::zeroed() };
    // SAFETY: env is the running NIF call's or callback's; `watch` is a
    // live resource of a type with a down callback.
    let ret = unsafe { ffi::monitor_process(env, watch.as_c_arg(), &pid, &mut monitor) };
    if ret != 0 {
        return 1;
    }
    let pid = LocalPid::from_c_arg(pid);
    table().lock().entry(port.number).or_default().insert(
        id,
        Entry {
            pid,
            watch,
            monitor,
        },
    );
    *out = encode(id);
    0
}

/// `driver_demonitor_process`: 0 when the monitor was live (it is removed
/// and will not fire), else 1.
pub fn demonitor(ctx: &CallbackCtx, port: &Port, monitor: &DrvMonitor) -> c_int {
    let Some(id) = decode(monitor) else {
        return 1;
    };
    let entry = table()
        .lock()
        .get_mut(&port.number)
        .and_then(|monitors| monitors.remove(&id));
    match entry {
        Some(entry) => {
            entry.demonitor(caller_env(ctx));
            0
        }
        None => 1,
    }
}

/// `driver_get_monitored_process`: the monitored process's pid term, or
/// `None` when the monitor is not live (`driver_term_nil`).
pub fn monitored(port: &Port, monitor: &DrvMonitor) -> Option<TermData> {
    let id = decode(monitor)?;
    let table = table().lock();
    let entry = table.get(&port.number)?.get(&id)?;
    Some(crate::terms::pid_term(&entry.pid))
}

/// `{'$edc_down', Id}` reached the context's (open) port: calls
/// `process_exit` for a live monitor, then forgets it. Nothing for a
/// monitor removed meanwhile.
pub fn on_down(ctx: &CallbackCtx, id: u64) {
    let port = ctx.port();
    let live = table()
        .lock()
        .get(&port.number)
        .is_some_and(|monitors| monitors.contains_key(&id));
    if !live {
        return;
    }
    if let Some(process_exit) = port.driver.entry().process_exit {
        let data = ctx.state().data();
        let mut monitor = encode(id);
        // SAFETY: the driver's process_exit, under the port's lock, with
        // the data start returned and a monitor struct that lives until
        // it returns; no borrow of port data is held across it.
        ctx.enter(|| unsafe { process_exit(data, &mut monitor) });
    }
    // Fired: nothing to demonitor (the driver may have removed it).
    if let Some(monitors) = table().lock().get_mut(&port.number) {
        monitors.remove(&id);
    }
}

/// `port` has closed (its `stop` has run): its monitors are removed and
/// will not fire.
pub fn port_closed(ctx: &CallbackCtx, port: &Port) {
    let Some(monitors) = table().lock().remove(&port.number) else {
        return;
    };
    let env = caller_env(ctx);
    for entry in monitors.values() {
        entry.demonitor(env);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_ids_round_trip_and_order_by_creation() {
        let a = encode(1);
        let b = encode(2);
        let c = encode(0x1_0000_0000);
        assert_eq!(decode(&a), Some(1));
        assert_eq!(decode(&c), Some(0x1_0000_0000));
        assert_eq!(compare(&a, &a), 0);
        assert_eq!(compare(&a, &b), -1);
        assert_eq!(compare(&b, &a), 1);
        assert_eq!(compare(&b, &c), -1);
        let copy = a;
        assert_eq!(compare(&a, &copy), 0);
    }

    #[test]
    fn a_struct_not_made_here_has_no_id() {
        let zeroed = DrvMonitor { data: [0; 32] };
        assert_eq!(decode(&zeroed), None);
        let garbage = DrvMonitor { data: [0xa5; 32] };
        assert_eq!(decode(&garbage), None);
    }
}
