/* lc_life_drv: port lifecycle — echoes output and counts stop() calls so
 * that a second port of the same driver can tell whether a port was
 * stopped. Control ops (list replies):
 *   1  number of stop() calls so far (all ports of this driver)
 *   2  1 if driver_caller == driver_connected, else 0
 * port_command data "whoami" answers like op 2 through driver_output. */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_life_start(ErlDrvPort port, char *command);
static void lc_life_stop(ErlDrvData handle);
static void lc_life_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_life_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry lc_life_entry = {
    NULL,                       /* init */
    lc_life_start,
    lc_life_stop,
    lc_life_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_life_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_life_control,
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

DRIVER_INIT(lc_life_drv) { return &lc_life_entry; }

static int stops;

static ErlDrvData lc_life_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void lc_life_stop(ErlDrvData handle)
{
    (void)handle;
    stops++;
}

static int caller_is_connected(ErlDrvPort port)
{
    return driver_caller(port) == driver_connected(port);
}

static void lc_life_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    ErlDrvPort port = (ErlDrvPort)handle;
    char reply[32];
    int n;

    if (len == 6 && memcmp(buf, "whoami", 6) == 0) {
        n = sprintf(reply, "%d", caller_is_connected(port));
        driver_output(port, reply, n);
        return;
    }
    driver_output(port, buf, len);
}

static ErlDrvSSizeT lc_life_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvPort port = (ErlDrvPort)handle;

    (void)buf; (void)len; (void)rlen;
    if (op == 1)
        return sprintf(*rbuf, "%d", stops);
    if (op == 2)
        return sprintf(*rbuf, "%d", caller_is_connected(port));
    return -1;
}
