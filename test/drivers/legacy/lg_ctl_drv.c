/* lg_ctl_drv: seed-era (interface 1.5, int ABI) twin of lc_ctl_drv, written
 * against the R13B/R14B manual's prototypes (control returns int, int len
 * and rlen) and compiled with -DERL_DRV_COMPAT_LEGACY_INT_API. The same
 * operations:
 *
 * lc_ctl_drv: port_control reply handling.
 *
 * "lc_ctl_drv binary" sets PORT_CONTROL_FLAG_BINARY in start; otherwise
 * replies are lists. Ops:
 *   1  echo the data (driver_alloc / driver_alloc_binary when > rlen)
 *   2  report rlen
 *   3  1000 bytes of 'A' in a driver-allocated buffer
 *   4  *rbuf = NULL, return 0        5  *rbuf = NULL, return 5
 *   6  return -1                      7  return -2
 *   8  exactly rlen bytes of 'x' in the default buffer
 *   9  driver_output("from_control") then reply "ok"
 *  10  remember driver_caller, reply "saved"
 *  11  "<caller == saved> <caller == connected>"
 *  12  report the data length
 *  other ops: "op=<op>" */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_ctl_start(ErlDrvPort port, char *command);
static void lc_ctl_stop(ErlDrvData handle);
static int lc_ctl_control(ErlDrvData handle, unsigned int op,
                                   char *buf, int len,
                                   char **rbuf, int rlen);

static ErlDrvEntry lc_ctl_entry = {
    NULL,                       /* init */
    lc_ctl_start,
    lc_ctl_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lg_ctl_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_ctl_control,
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

DRIVER_INIT(lg_ctl_drv) { return &lc_ctl_entry; }

typedef struct {
    ErlDrvPort port;
    int binary;
    ErlDrvTermData saved_caller;
} lc_ctl_data;

static ErlDrvData lc_ctl_start(ErlDrvPort port, char *command)
{
    lc_ctl_data *d = driver_alloc(sizeof(lc_ctl_data));
    d->port = port;
    d->binary = strstr(command, " binary") != NULL;
    d->saved_caller = 0;
    if (d->binary)
        set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData)d;
}

static void lc_ctl_stop(ErlDrvData handle)
{
    driver_free(handle);
}

/* Copies len bytes into the reply, allocating the kind of buffer the
 * current mode requires when the default one is too small. */
static int reply(lc_ctl_data *d, char **rbuf, int rlen,
                          const char *buf, int len)
{
    ErlDrvBinary *bin;

    if (len <= rlen) {
        memcpy(*rbuf, buf, len);
        return len;
    }
    if (d->binary) {
        bin = driver_alloc_binary(len);
        memcpy(bin->orig_bytes, buf, len);
        *rbuf = (char *)bin;
        return len;
    }
    *rbuf = driver_alloc(len);
    memcpy(*rbuf, buf, len);
    return len;
}

static int lc_ctl_control(ErlDrvData handle, unsigned int op,
                                   char *buf, int len,
                                   char **rbuf, int rlen)
{
    lc_ctl_data *d = (lc_ctl_data *)handle;
    char text[1000];
    int n;

    switch (op) {
    case 1:
        return reply(d, rbuf, rlen, buf, len);
    case 2:
        n = sprintf(text, "%lu", (unsigned long)rlen);
        return reply(d, rbuf, rlen, text, n);
    case 3:
        memset(text, 'A', sizeof(text));
        return reply(d, rbuf, rlen, text, sizeof(text));
    case 4:
        *rbuf = NULL;
        return 0;
    case 5:
        *rbuf = NULL;
        return 5;
    case 6:
        return -1;
    case 7:
        return -2;
    case 8:
        memset(*rbuf, 'x', rlen);
        return rlen;
    case 9:
        driver_output(d->port, "from_control", 12);
        return reply(d, rbuf, rlen, "ok", 2);
    case 10:
        d->saved_caller = driver_caller(d->port);
        return reply(d, rbuf, rlen, "saved", 5);
    case 11:
        n = sprintf(text, "%d %d",
                    driver_caller(d->port) == d->saved_caller,
                    driver_caller(d->port) == driver_connected(d->port));
        return reply(d, rbuf, rlen, text, n);
    case 12:
        n = sprintf(text, "%lu", (unsigned long)len);
        return reply(d, rbuf, rlen, text, n);
    default:
        n = sprintf(text, "op=%u", op);
        return reply(d, rbuf, rlen, text, n);
    }
}
