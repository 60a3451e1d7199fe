/* lc_core_drv: one port acting on another port of the same driver
 * (driver-level locking), and output from stop.
 *   control 1        reply this port's slot number ("0".."7")
 *   control 2 "N"    driver_failure_atom(port in slot N, "sibling_failed")
 *   control 3 "N"    driver_exit(port in slot N, 0)
 *   control 4        make stop send "bye\n" with driver_output
 *   output           echo the data with driver_output
 */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

#define SLOTS 8

typedef struct {
    ErlDrvPort port;
    int slot;
    int bye;
} CoreData;

static ErlDrvData lc_core_start(ErlDrvPort port, char *command);
static void lc_core_stop(ErlDrvData handle);
static void lc_core_finish(void);
static void lc_core_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_core_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry lc_core_entry = {
    NULL,                       /* init */
    lc_core_start,
    lc_core_stop,
    lc_core_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_core_drv",
    lc_core_finish,
    NULL,                       /* handle */
    lc_core_control,
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                          /* driver_flags: driver-level locking */
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_core_drv) { return &lc_core_entry; }

static ErlDrvPort slots[SLOTS];

static ErlDrvData lc_core_start(ErlDrvPort port, char *command)
{
    CoreData *d;
    int i;

    (void)command;
    for (i = 0; i < SLOTS && slots[i] != NULL; i++)
        ;
    if (i == SLOTS)
        return ERL_DRV_ERROR_GENERAL;
    d = driver_alloc(sizeof(CoreData));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    d->slot = i;
    d->bye = 0;
    slots[i] = port;
    return (ErlDrvData)d;
}

static void lc_core_stop(ErlDrvData handle)
{
    CoreData *d = (CoreData *)handle;

    if (d->bye)
        driver_output(d->port, "bye\n", 4);
    slots[d->slot] = NULL;
    driver_free(d);
}

static void lc_core_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    CoreData *d = (CoreData *)handle;

    driver_output(d->port, buf, len);
}

static void lc_core_finish(void)
{
    memset(slots, 0, sizeof(slots));
}

static ErlDrvPort slot_port(char *buf, ErlDrvSizeT len)
{
    int n;

    if (len != 1 || buf[0] < '0' || buf[0] >= '0' + SLOTS)
        return NULL;
    n = buf[0] - '0';
    return slots[n];
}

static ErlDrvSSizeT lc_core_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen)
{
    CoreData *d = (CoreData *)handle;
    ErlDrvPort other;

    switch (op) {
    case 1:
        return snprintf(*rbuf, rlen, "%d", d->slot);
    case 2:
    case 3:
        other = slot_port(buf, len);
        if (other == NULL)
            return snprintf(*rbuf, rlen, "empty");
        if (op == 2)
            driver_failure_atom(other, "sibling_failed");
        else
            driver_exit(other, 0);
        return snprintf(*rbuf, rlen, "done");
    case 4:
        d->bye = 1;
        return snprintf(*rbuf, rlen, "ok");
    default:
        return -1;
    }
}
