/*
 * bench_v_drv: port_command through `outputv`; the I/O vector goes back
 * unchanged with driver_outputv (binaries by reference, as natively).
 */
#include "erl_driver.h"

static ErlDrvData benchv_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void benchv_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    driver_outputv((ErlDrvPort)handle, NULL, 0, ev, 0);
}

static ErlDrvEntry benchv_entry = {
    NULL,                       /* init */
    benchv_start,
    NULL,                       /* stop */
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "bench_v_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    NULL,                       /* control */
    NULL,                       /* timeout */
    benchv_outputv,
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* unused_event_callback */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING,
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(bench_v_drv)
{
    return &benchv_entry;
}
