/*
 * ddll_life_drv: the life cycle of a loaded driver.
 *
 * init and finish record that they ran in the emulator's environment
 * (EDC_DDLL_LIFE_INIT / EDC_DDLL_LIFE_FINISH = "called"), where the test
 * reads them with os:getenv/1. A static counter shows whether two ports
 * share one copy of the driver's data: a native load and a compat load of
 * the same file must not.
 */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static int life_init(void);
static void life_finish(void);
static ErlDrvData life_start(ErlDrvPort port, char *command);
static void life_stop(ErlDrvData handle);
static void life_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT life_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry life_entry = {
    life_init,
    life_start,
    life_stop,
    life_output,
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "ddll_life_drv",
    life_finish,
    NULL,                           /* handle */
    life_control,
    NULL,                           /* timeout */
    NULL,                           /* outputv */
    NULL,                           /* ready_async */
    NULL,                           /* flush */
    NULL,                           /* call */
    NULL,                           /* unused_event_callback */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                              /* driver_flags */
    NULL,                           /* handle2 */
    NULL,                           /* process_exit */
    NULL,                           /* stop_select */
    NULL                            /* emergency_close */
};

DRIVER_INIT(ddll_life_drv) { return &life_entry; }

/* Operations (port_control command numbers). */
#define OP_BUMP   1   /* ++counter; replies the new value */
#define OP_STATS  2   /* replies "{InitCalls,Starts,Stops,Counter}" */

static int init_calls;
static int starts;
static int stops;
static int counter;

static int life_init(void)
{
    init_calls++;
    erl_drv_putenv("EDC_DDLL_LIFE_INIT", "called");
    return 0;
}

static void life_finish(void)
{
    erl_drv_putenv("EDC_DDLL_LIFE_FINISH", "called");
}

static ErlDrvData life_start(ErlDrvPort port, char *command)
{
    (void)command;
    starts++;
    return (ErlDrvData)port;
}

static void life_stop(ErlDrvData handle)
{
    (void)handle;
    stops++;
}

static void life_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    driver_output((ErlDrvPort)handle, buf, len);
}

static ErlDrvSSizeT life_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    char out[64];
    ErlDrvSizeT n;
    (void)handle; (void)buf; (void)len;
    switch (cmd) {
    case OP_BUMP:
        sprintf(out, "%d", ++counter);
        break;
    case OP_STATS:
        sprintf(out, "{%d,%d,%d,%d}", init_calls, starts, stops, counter);
        break;
    default:
        return -1;
    }
    n = strlen(out);
    if (n > rlen)
        return -1;
    memcpy(*rbuf, out, n);
    return (ErlDrvSSizeT)n;
}
