//! "Timer" and "time measurement": the port's one timer (see
//! [`crate::timer`] for how it runs on the VM's timers) and the VM's clock.

use std::os::raw::{c_int, c_ulong};

use super::{guard, with_port};
use crate::abi::{DrvPort, NowData};
use crate::port::state::Status;
use crate::timer::{self, TIME_ERROR};

/// `int driver_set_timer(ErlDrvPort port, unsigned long time)`: replaces
/// the port's timer; `timeout` runs in `time` ms. From `stop` (the port is
/// closing) it returns 0 and the timer never fires, as natively. A driver
/// without a `timeout` callback gets 0 too and its timer expires without
/// a call: so does OTP 25 (the manual's -1 is from older releases).
pub(crate) extern "C" fn driver_set_timer(port: DrvPort, time: c_ulong) -> c_int {
    guard(-1, || {
        with_port(port, "driver_set_timer", |ctx, p, st| {
            if st.status() != Status::Open {
                return 0;
            }
            // c_ulong is u64 here, u32 on other targets.
            #[allow(clippy::useless_conversion)]
            let ms = u64::from(time);
            if let Some(start) = st.timer().set(timer::monotonic_ns(), ms) {
                ctx.act(timer::start_action(p.pid, start));
            }
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_cancel_timer(ErlDrvPort port)`
pub(crate) extern "C" fn driver_cancel_timer(port: DrvPort) -> c_int {
    guard(-1, || {
        with_port(port, "driver_cancel_timer", |_ctx, _p, st| {
            st.timer().cancel();
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_read_timer(ErlDrvPort port, unsigned long *time_left)`:
/// milliseconds left, rounded up; 0 when no timer is set (as natively).
/// -1 for a NULL `time_left`.
pub(crate) extern "C" fn driver_read_timer(port: DrvPort, time_left: *mut c_ulong) -> c_int {
    guard(-1, || {
        if time_left.is_null() {
            return -1;
        }
        with_port(port, "driver_read_timer", |_ctx, _p, st| {
            let left = st.timer().left_ms(timer::monotonic_ns());
            // SAFETY: time_left is non-NULL and points at an unsigned long
            // the driver passed for us to write.
            unsafe { *time_left = c_ulong::try_from(left).unwrap_or(c_ulong::MAX) };
            0
        })
        .unwrap_or(-1)
    })
}

/// `int driver_get_now(ErlDrvNowData *now)`: the VM's own (an
/// `erlang:now/0` timestamp); -1 for NULL.
pub(crate) extern "C" fn driver_get_now(now: *mut NowData) -> c_int {
    // SAFETY: the driver passes NULL or a writable ErlDrvNowData.
    guard(-1, || unsafe { timer::get_now(now) })
}

/// `ErlDrvTime erl_drv_monotonic_time(ErlDrvTimeUnit time_unit)`: the
/// VM's own. The unit is taken as an `int`: a driver may pass any value,
/// and a bad one gives `ERL_DRV_TIME_ERROR`.
pub(crate) extern "C" fn erl_drv_monotonic_time(time_unit: c_int) -> i64 {
    guard(TIME_ERROR, || timer::monotonic_time(time_unit))
}

/// `ErlDrvTime erl_drv_time_offset(ErlDrvTimeUnit time_unit)`: the VM's
/// own.
pub(crate) extern "C" fn erl_drv_time_offset(time_unit: c_int) -> i64 {
    guard(TIME_ERROR, || timer::time_offset(time_unit))
}

/// `ErlDrvTime erl_drv_convert_time_unit(ErlDrvTime val, ErlDrvTimeUnit
/// from, ErlDrvTimeUnit to)`: rounded down, as the VM does.
pub(crate) extern "C" fn erl_drv_convert_time_unit(val: i64, from: c_int, to: c_int) -> i64 {
    guard(TIME_ERROR, || timer::convert_time_unit(val, from, to))
}
