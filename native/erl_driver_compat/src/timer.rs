//! The port timer (`driver_set_timer`, `driver_cancel_timer`,
//! `driver_read_timer`) on the VM's own timers, and the VM's clock.
//!
//! # How a timer fires
//!
//! Each port has one [`PortTimer`] (in its [`PortState`](crate::port::state::PortState)): the driver's
//! *deadline* and the *armed* VM timer that will wake the port up, named by
//! a generation number. When a callback sets a timer that no armed VM
//! timer covers, it records an [`Action::StartTimer`]; the Erlang side
//! carries it out with `erlang:start_timer(Ms, PortPid, {'$edc_timeout',
//! Gen})` (from the calling process, or from the port process for a
//! detached run). The port process hands `{timeout, _, {'$edc_timeout',
//! Gen}}` to [`on_timeout`] (through the NIF `msg_timeout`), which under the
//! port's lock:
//!
//! * ignores a generation that is not the armed one (a stale VM timer, or
//!   one that arrives after the port closed);
//! * does nothing when the timer was cancelled meanwhile;
//! * re-arms for the rest when the deadline moved later meanwhile;
//! * otherwise clears the timer and calls the driver's `timeout`, which
//!   may set the timer again, fail the port, output, ...
//!
//! # Why stale VM timers are not cancelled
//!
//! Cancelling needs the VM timer's reference, which only the Erlang side
//! that started it holds: keeping it would cost a NIF call or a message per
//! `driver_set_timer`. Instead a VM timer is reused: setting a timer whose
//! deadline is not earlier than the armed VM timer's starts nothing, the
//! armed timer fires and re-arms for the rest. So the common pattern of
//! pushing an inactivity timeout forward on every packet costs no VM timer
//! at all, and `driver_cancel_timer` costs none either; at most one VM
//! timer per port is pending, except after a timer was replaced by an
//! *earlier* one (each such replacement leaves the replaced VM timer
//! pending until its time; it then finds a newer generation and is
//! dropped). The VM cancels every timer addressed to a process when the
//! process exits, so a closed port leaves none behind. (Measured: a VM
//! timer costs about 280 bytes; 100,000 ports with a one-hour timer take
//! 28 MB for them, pushing all of them later five times adds nothing,
//! replacing all of them by earlier ones adds 28 MB until the replaced
//! ones expire.)
//!
//! The VM timer is started by the Erlang side after the NIF returned; a
//! caller killed in between leaves the port counting on a VM timer that
//! does not exist, and its timer does not fire (as an `exit_port` action
//! is lost the same way).
//!
//! A VM timer is started for at most [`MAX_VM_TIMER_MS`] (the VM refuses
//! much longer ones); a longer timer re-arms when that one fires.
//!
//! # Native semantics kept (measured on OTP 25)
//!
//! * `driver_read_timer` gives the milliseconds left, rounded up (10000
//!   right after setting 10000), and 0 when no timer is set: never set,
//!   cancelled, expired, or read from inside `timeout`.
//! * A time of 2^63 ms or more (negative as the VM's signed 64-bit time)
//!   fires at once.
//! * A timer set while the port is closing (from `stop`) never fires.
//! * A driver without a `timeout` callback may set a timer (0 is
//!   returned, it reads back, it expires without a call).
//!
//! # The clock
//!
//! Deadlines are in the VM's monotonic time ([`monotonic_ns`]), the clock
//! the VM's timers run on, so a VM timer never fires before the deadline
//! it was started for. `driver_get_now`, `erl_drv_monotonic_time` and
//! `erl_drv_time_offset` are the VM's own exports (looked up with
//! `dlsym`, as `api::system` does for `driver_system_info`), so their
//! values are exactly the native ones.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::abi::NowData;
use crate::context::CallbackCtx;
use crate::effects::Action;
use crate::ffi::vm_fn;

/// `ERL_DRV_TIME_ERROR`.
pub const TIME_ERROR: i64 = i64::MIN;

/// `ERL_DRV_NSEC`.
const NSEC: c_int = 3;

/// Nanoseconds per millisecond.
const NS_PER_MS: i128 = 1_000_000;

/// The longest VM timer started at once (about 49.7 days; the VM accepts
/// up to about 2^40 ms).
pub const MAX_VM_TIMER_MS: u64 = u32::MAX as u64;

/// A VM timer to start: `erlang:start_timer(ms, PortPid, {'$edc_timeout',
/// generation})`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Milliseconds until it fires.
    pub ms: u64,
    /// The generation it carries.
    pub generation: u64,
}

/// What a VM timer's message means for the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// Not the armed VM timer (replaced by an earlier one): ignored.
    Stale,
    /// The timer was cancelled (or never re-set) since: nothing to do.
    Idle,
    /// The deadline moved later: start this VM timer for the rest.
    Rearm(Start),
    /// The deadline has passed: the timer is cleared, call `timeout`.
    Expired,
}

/// The VM timer the port counts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    generation: u64,
    /// When it fires at the latest (monotonic ns), i.e. when the port
    /// looks at its deadline again.
    at: i128,
}

/// One port's timer (cells: see [`crate::port::state`]). Times are monotonic
/// nanoseconds, given by the caller (see [`monotonic_ns`]) so that the
/// logic is testable without a VM.
#[derive(Default)]
pub struct PortTimer {
    /// When the driver's timer expires; `None`: no timer set.
    deadline: Cell<Option<i128>>,
    /// The pending VM timer the port counts on, if any.
    armed: Cell<Option<Armed>>,
    /// The last generation handed out.
    generation: Cell<u64>,
}

/// Driver timers set and not yet expired or cancelled, over all ports,
/// for `erl_driver_compat:info/0`. Relaxed: statistics only.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The number of driver timers pending right now.
pub fn stats() -> usize {
    PENDING.load(Ordering::Relaxed)
}

impl Drop for PortTimer {
    fn drop(&mut self) {
        self.set_deadline(None);
    }
}

impl PortTimer {
    /// Sets the deadline, keeping [`PENDING`] in step.
    fn set_deadline(&self, deadline: Option<i128>) {
        match (
            self.deadline.replace(deadline).is_some(),
            deadline.is_some(),
        ) {
            (false, true) => PENDING.fetch_add(1, Ordering::Relaxed),
            (true, false) => PENDING.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// `driver_set_timer(port, ms)` at `now`: replaces any timer. Returns
    /// the VM timer to start, unless the armed one fires in time.
    pub fn set(&self, now: i64, ms: u64) -> Option<Start> {
        // The VM takes the time as a signed 64-bit number: 2^63 and more
        // are negative and fire at once.
        let ms = i64::try_from(ms).unwrap_or(0);
        let deadline = i128::from(now) + i128::from(ms) * NS_PER_MS;
        self.set_deadline(Some(deadline));
        match self.armed.get() {
            Some(armed) if armed.at <= deadline => None,
            _ => Some(self.arm(now, deadline)),
        }
    }

    /// `driver_cancel_timer`. The armed VM timer stays pending (see the
    /// module documentation) and may serve the next `set`.
    pub fn cancel(&self) {
        self.set_deadline(None);
    }

    /// `driver_read_timer` at `now`: milliseconds left, rounded up; 0 when
    /// no timer is set.
    pub fn left_ms(&self, now: i64) -> u64 {
        let Some(deadline) = self.deadline.get() else {
            return 0;
        };
        let left = deadline - i128::from(now);
        if left <= 0 {
            return 0;
        }
        u64::try_from((left + NS_PER_MS - 1) / NS_PER_MS).unwrap_or(u64::MAX)
    }

    /// The VM timer of `generation` fired; `now` is the time.
    pub fn fired(&self, now: i64, generation: u64) -> Fired {
        match self.armed.get() {
            Some(armed) if armed.generation == generation => self.armed.set(None),
            _ => return Fired::Stale,
        }
        match self.deadline.get() {
            None => Fired::Idle,
            Some(deadline) if deadline > i128::from(now) => Fired::Rearm(self.arm(now, deadline)),
            Some(_) => {
                self.set_deadline(None);
                Fired::Expired
            }
        }
    }

    /// Starts counting on a new VM timer for `deadline`.
    fn arm(&self, now: i64, deadline: i128) -> Start {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let left = (deadline - i128::from(now)).max(0);
        let ms = u64::try_from((left + NS_PER_MS - 1) / NS_PER_MS)
            .unwrap_or(u64::MAX)
            .min(MAX_VM_TIMER_MS);
        self.armed.set(Some(Armed {
            generation,
            at: i128::from(now) + i128::from(ms) * NS_PER_MS,
        }));
        Start { ms, generation }
    }
}

/// The action starting `start` for the port process `port`.
pub fn start_action(port: rustler::LocalPid, start: Start) -> Action {
    Action::StartTimer {
        port,
        ms: start.ms,
        generation: start.generation,
    }
}

/// Runs what the VM timer of `generation` means for the context's port
/// (open: the caller checked), calling the driver's `timeout` when the
/// timer expired.
pub fn on_timeout(ctx: &CallbackCtx, generation: u64) {
    let port = ctx.port();
    let st = ctx.state();
    match st.timer().fired(monotonic_ns(), generation) {
        Fired::Stale | Fired::Idle => {}
        Fired::Rearm(start) => ctx.act(start_action(port.pid, start)),
        Fired::Expired => {
            if let Some(timeout) = port.driver.entry().timeout {
                let data = st.data();
                // SAFETY: timeout is the driver's callback, called under
                // the port's lock with the data start returned; no borrow
                // of port data is held across it.
                ctx.enter(|| unsafe { timeout(data) });
            }
        }
    }
}

// --- the VM's clock ----------------------------------------------------------

vm_fn!(
    vm_monotonic_time,
    c"erl_drv_monotonic_time",
    unsafe extern "C" fn(c_int) -> i64
);
vm_fn!(
    vm_time_offset,
    c"erl_drv_time_offset",
    unsafe extern "C" fn(c_int) -> i64
);
vm_fn!(
    vm_get_now,
    c"driver_get_now",
    unsafe extern "C" fn(*mut NowData) -> c_int
);

/// `erl_drv_monotonic_time(unit)`: the VM's, or `TIME_ERROR` outside a
/// BEAM. (The VM itself gives `TIME_ERROR` for a bad unit and on a thread
/// that is not a scheduler.)
pub fn monotonic_time(unit: c_int) -> i64 {
    // SAFETY: the VM's own function; it checks `unit`.
    vm_monotonic_time().map_or(TIME_ERROR, |f| unsafe { f(unit) })
}

/// `erl_drv_time_offset(unit)`: as [`monotonic_time`].
pub fn time_offset(unit: c_int) -> i64 {
    // SAFETY: the VM's own function; it checks `unit`.
    vm_time_offset().map_or(TIME_ERROR, |f| unsafe { f(unit) })
}

/// `driver_get_now(now)`: the VM's (unique, increasing timestamps shared
/// with `erlang:now/0`); -1 for NULL or outside a BEAM.
///
/// # Safety
/// `now` is NULL or points at a writable `ErlDrvNowData`.
pub unsafe fn get_now(now: *mut NowData) -> c_int {
    if now.is_null() {
        return -1;
    }
    // SAFETY: f is the VM's driver_get_now; now is non-NULL, so the
    // caller guarantees it points at a writable ErlDrvNowData.
    vm_get_now().map_or(-1, |f| unsafe { f(now) })
}

/// The VM's monotonic time in nanoseconds: the clock of its timers. On a
/// thread where the VM refuses to tell (not a scheduler; timers are only
/// set from callbacks, which run on schedulers) or outside a BEAM, the OS
/// monotonic clock continues from the last VM reading.
pub fn monotonic_ns() -> i64 {
    static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();
    let t = monotonic_time(NSEC);
    if t != TIME_ERROR {
        ANCHOR.get_or_init(|| (t, Instant::now()));
        return t;
    }
    let (vm, at) = *ANCHOR.get_or_init(|| (0, Instant::now()));
    vm.saturating_add(i64::try_from(at.elapsed().as_nanos()).unwrap_or(i64::MAX))
}

/// `erl_drv_convert_time_unit(val, from, to)` (units: 0 s, 1 ms, 2 µs,
/// 3 ns): rounded down (towards minus infinity), as the VM does; a product
/// that does not fit wraps, as in the VM's C; `TIME_ERROR` for a bad unit.
pub fn convert_time_unit(val: i64, from: c_int, to: c_int) -> i64 {
    let freq = |unit: c_int| -> Option<i64> {
        match unit {
            0 => Some(1),
            1 => Some(1_000),
            2 => Some(1_000_000),
            3 => Some(1_000_000_000),
            _ => None,
        }
    };
    let (Some(ffreq), Some(tfreq)) = (freq(from), freq(to)) else {
        return TIME_ERROR;
    };
    if tfreq >= ffreq {
        return val.wrapping_mul(tfreq / ffreq);
    }
    val.div_euclid(ffreq / tfreq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn set_then_fire_calls_timeout_once() {
        let t = PortTimer::default();
        let start = t.set(0, 10).expect("a VM timer");
        assert_eq!(start.ms, 10);
        assert_eq!(t.left_ms(0), 10);
        assert_eq!(t.left_ms(3 * MS + 1), 7);
        assert_eq!(t.fired(10 * MS, start.generation), Fired::Expired);
        assert_eq!(t.left_ms(10 * MS), 0);
        // The same message again (cannot happen) or a late one: ignored.
        assert_eq!(t.fired(11 * MS, start.generation), Fired::Stale);
    }

    #[test]
    fn no_timer_reads_zero() {
        let t = PortTimer::default();
        assert_eq!(t.left_ms(5), 0);
        t.cancel();
        assert_eq!(t.left_ms(5), 0);
    }

    #[test]
    fn cancel_leaves_the_vm_timer_idle() {
        let t = PortTimer::default();
        let start = t.set(0, 10).expect("a VM timer");
        t.cancel();
        assert_eq!(t.left_ms(0), 0);
        assert_eq!(t.fired(10 * MS, start.generation), Fired::Idle);
    }

    #[test]
    fn a_later_deadline_reuses_the_armed_vm_timer() {
        let t = PortTimer::default();
        let first = t.set(0, 10).expect("a VM timer");
        // Pushed forward (an inactivity timeout): no new VM timer.
        assert_eq!(t.set(5 * MS, 10), None);
        assert_eq!(t.left_ms(5 * MS), 10);
        // The armed one fires early for the new deadline: re-arm the rest.
        let rest = match t.fired(10 * MS, first.generation) {
            Fired::Rearm(start) => start,
            other => panic!("{other:?}"),
        };
        assert_eq!(rest.ms, 5);
        assert_ne!(rest.generation, first.generation);
        assert_eq!(t.fired(15 * MS, rest.generation), Fired::Expired);
    }

    #[test]
    fn an_earlier_deadline_starts_a_new_vm_timer_and_the_old_one_goes_stale() {
        let t = PortTimer::default();
        let long = t.set(0, 1000).expect("a VM timer");
        let short = t.set(0, 10).expect("a new VM timer");
        assert_ne!(long.generation, short.generation);
        assert_eq!(t.fired(10 * MS, short.generation), Fired::Expired);
        assert_eq!(t.fired(1000 * MS, long.generation), Fired::Stale);
    }

    #[test]
    fn a_stale_vm_timer_does_not_take_the_place_of_the_armed_one() {
        let t = PortTimer::default();
        let long = t.set(0, 1000).expect("a VM timer");
        let short = t.set(0, 10).expect("a new VM timer");
        assert_eq!(t.fired(10 * MS, short.generation), Fired::Expired);
        // Re-armed from `timeout`, for later than the stale VM timer.
        let rearmed = t.set(10 * MS, 2000).expect("a new VM timer");
        // The stale one neither fires the timer nor starts another VM
        // timer: the armed one still counts.
        assert_eq!(t.fired(1000 * MS, long.generation), Fired::Stale);
        assert_eq!(t.fired(2010 * MS, rearmed.generation), Fired::Expired);
    }

    #[test]
    fn reuse_after_cancel_and_rearm_from_timeout() {
        let t = PortTimer::default();
        let first = t.set(0, 10).expect("a VM timer");
        t.cancel();
        assert_eq!(t.set(1, 20), None);
        let rest = match t.fired(10 * MS, first.generation) {
            Fired::Rearm(start) => start,
            other => panic!("{other:?}"),
        };
        assert_eq!(t.fired(20 * MS + 1, rest.generation), Fired::Expired);
        // Re-armed from `timeout`: nothing is armed any more, so a new one.
        assert!(t.set(20 * MS + 1, 5).is_some());
    }

    #[test]
    fn huge_times() {
        let t = PortTimer::default();
        // 2^63 ms and more are negative for the VM: at once.
        let now_start = t.set(0, 1 << 63).expect("a VM timer");
        assert_eq!(now_start.ms, 0);
        assert_eq!(t.left_ms(0), 0);
        assert_eq!(t.fired(0, now_start.generation), Fired::Expired);
        // 2^62 ms: read back exactly, started in VM-sized steps.
        let far = t.set(0, 1 << 62).expect("a VM timer");
        assert_eq!(t.left_ms(0), 1 << 62);
        assert_eq!(far.ms, MAX_VM_TIMER_MS);
        let at = MAX_VM_TIMER_MS as i64 * MS;
        assert!(matches!(t.fired(at, far.generation), Fired::Rearm(s) if s.ms == MAX_VM_TIMER_MS));
    }

    #[test]
    fn convert_rounds_down_like_the_vm() {
        assert_eq!(convert_time_unit(1500, 1, 0), 1);
        assert_eq!(convert_time_unit(-1500, 1, 0), -2);
        assert_eq!(convert_time_unit(-1, 3, 0), -1);
        assert_eq!(convert_time_unit(-1000, 1, 0), -1);
        assert_eq!(convert_time_unit(7, 0, 3), 7_000_000_000);
        assert_eq!(convert_time_unit(7, 2, 2), 7);
        assert_eq!(convert_time_unit(5, 4, 1), TIME_ERROR);
        assert_eq!(convert_time_unit(5, 1, -1), TIME_ERROR);
        // Wraps as the VM's 64-bit multiplication does.
        assert_eq!(convert_time_unit(1 << 62, 0, 3), 0);
    }

    #[test]
    fn outside_a_vm_the_clock_still_advances() {
        assert_eq!(monotonic_time(NSEC), TIME_ERROR);
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}
