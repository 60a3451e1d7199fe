/* lc_min_drv: a driver with only an output callback (echo); it has no
 * control and no call, so port_control/port_call must fail. */
#include "erl_driver.h"

static ErlDrvData lc_min_start(ErlDrvPort port, char *command);
static void lc_min_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);

static ErlDrvEntry lc_min_entry = {
    NULL,                       /* init */
    lc_min_start,
    NULL,                       /* stop */
    lc_min_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_min_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    NULL,                       /* control */
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                          /* driver_flags */
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_min_drv) { return &lc_min_entry; }

static ErlDrvData lc_min_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void lc_min_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    driver_output((ErlDrvPort)handle, buf, len);
}
