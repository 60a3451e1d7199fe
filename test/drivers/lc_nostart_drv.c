/* lc_nostart_drv: a driver without a start callback (as some real ones
 * are: every callback ignores its ErlDrvData). Natively such a port opens
 * and its callbacks get NULL as ErlDrvData.
 *   control 1   reply "null" when the ErlDrvData is NULL, else "set"
 *   output      ignored */
#include <stdio.h>
#include "erl_driver.h"

static void lc_nostart_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_nostart_control(ErlDrvData handle, unsigned int op,
                                       char *buf, ErlDrvSizeT len,
                                       char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry lc_nostart_entry = {
    NULL,                       /* init */
    NULL,                       /* start */
    NULL,                       /* stop */
    lc_nostart_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_nostart_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_nostart_control,
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

DRIVER_INIT(lc_nostart_drv) { return &lc_nostart_entry; }

static void lc_nostart_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    (void)handle;
    (void)buf;
    (void)len;
}

static ErlDrvSSizeT lc_nostart_control(ErlDrvData handle, unsigned int op,
                                       char *buf, ErlDrvSizeT len,
                                       char **rbuf, ErlDrvSizeT rlen)
{
    (void)buf;
    (void)len;
    if (op != 1)
        return -1;
    return snprintf(*rbuf, rlen, "%s", handle == NULL ? "null" : "set");
}
