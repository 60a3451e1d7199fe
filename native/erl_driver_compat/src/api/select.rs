//! "Select" (the manual's `driver_select`): readiness of the driver's
//! descriptors on the VM's own poll set; see [`crate::select`].

use std::os::raw::c_int;

use super::{guard, with_port};
use crate::abi::{DrvEvent, DrvPort};
use crate::select;

/// `int driver_select(ErlDrvPort port, ErlDrvEvent event, int mode, int
/// on)`: 0, or -1 for a negative descriptor or a port handle that is not
/// usable here. Usable from the port's callbacks, `stop` included.
pub(crate) extern "C" fn driver_select(
    port: DrvPort,
    event: DrvEvent,
    mode: c_int,
    on: c_int,
) -> c_int {
    guard(-1, || {
        with_port(port, "driver_select", |ctx, p, st| {
            select::driver_select(ctx, p, st, event as isize, mode, on != 0)
        })
        .unwrap_or(-1)
    })
}
