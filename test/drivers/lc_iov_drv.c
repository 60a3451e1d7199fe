/* lc_iov_drv: the ErlIOVec handed to outputv(). For every port_command
 * it replies (driver_output, list) with space-separated integers:
 *   Size Vsize, then per element: Len IsNull OrigSize Offset
 * where OrigSize and Offset are -1 for elements without a binary and
 * Offset = iov_base - binv[i]->orig_bytes. */
#include <stdio.h>
#include "erl_driver.h"

static ErlDrvData lc_iov_start(ErlDrvPort port, char *command);
static void lc_iov_outputv(ErlDrvData handle, ErlIOVec *ev);

static ErlDrvEntry lc_iov_entry = {
    NULL,                       /* init */
    lc_iov_start,
    NULL,                       /* stop */
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_iov_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    NULL,                       /* control */
    NULL,                       /* timeout */
    lc_iov_outputv,
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

DRIVER_INIT(lc_iov_drv) { return &lc_iov_entry; }

static ErlDrvData lc_iov_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void lc_iov_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    ErlDrvPort port = (ErlDrvPort)handle;
    char *text = driver_alloc(64 + 96 * (size_t)ev->vsize);
    int n, i;

    n = sprintf(text, "%lu %d", (unsigned long)ev->size, ev->vsize);
    for (i = 0; i < ev->vsize; i++) {
        ErlDrvBinary *bin = ev->binv[i];
        long orig = -1, offset = -1;
        if (bin != NULL) {
            orig = (long)bin->orig_size;
            offset = (long)((char *)ev->iov[i].iov_base - bin->orig_bytes);
        }
        n += sprintf(text + n, " %lu %d %ld %ld",
                     (unsigned long)ev->iov[i].iov_len, bin == NULL,
                     orig, offset);
    }
    driver_output(port, text, n);
    driver_free(text);
}
