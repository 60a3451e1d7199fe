/*
 * bench_drv: the smallest useful work for each way into a driver, so that
 * a benchmark measures the path, not the driver.
 *
 *   port_control/3  op 1: echoes the data; binary mode
 *                   (PORT_CONTROL_FLAG_BINARY), so the reply is a binary
 *                   op 2: sends {term, Port, 42} with erl_drv_output_term
 *                   op 3: driver_set_timer(0); `timeout` sends "t" with
 *                   driver_output
 *   port_command/2  echoes the data with driver_output
 *   port_call/3     echoes the term (the external format bytes unchanged)
 *
 * Port-level locking, as a driver written for speed would use.
 */
#include <string.h>
#include "erl_driver.h"

typedef struct {
    ErlDrvPort port;
} bench_data;

static ErlDrvData bench_start(ErlDrvPort port, char *command);
static void bench_stop(ErlDrvData handle);
static void bench_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static void bench_timeout(ErlDrvData handle);
static ErlDrvSSizeT bench_control(ErlDrvData handle, unsigned int command,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen);
static ErlDrvSSizeT bench_call(ErlDrvData handle, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen,
                               unsigned int *flags);

static ErlDrvEntry bench_entry = {
    NULL,                       /* init */
    bench_start,
    bench_stop,
    bench_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "bench_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    bench_control,
    bench_timeout,
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    bench_call,
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

DRIVER_INIT(bench_drv)
{
    return &bench_entry;
}

static ErlDrvData bench_start(ErlDrvPort port, char *command)
{
    bench_data *d = driver_alloc(sizeof(bench_data));

    (void)command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData)d;
}

static void bench_stop(ErlDrvData handle)
{
    driver_free(handle);
}

static void bench_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    bench_data *d = (bench_data *)handle;

    driver_output(d->port, buf, len);
}

static void bench_timeout(ErlDrvData handle)
{
    bench_data *d = (bench_data *)handle;

    driver_output(d->port, "t", 1);
}

static ErlDrvSSizeT bench_control(ErlDrvData handle, unsigned int command,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen)
{
    bench_data *d = (bench_data *)handle;

    if (command == 2) {
        ErlDrvTermData spec[] = {
            ERL_DRV_ATOM, driver_mk_atom("term"),
            ERL_DRV_PORT, driver_mk_port(d->port),
            ERL_DRV_INT, 42,
            ERL_DRV_TUPLE, 3
        };
        return erl_drv_output_term(driver_mk_port(d->port), spec,
                                   sizeof(spec) / sizeof(spec[0])) == 1 ? 0 : -1;
    }
    if (command == 3)
        return driver_set_timer(d->port, 0) == 0 ? 0 : -1;
    if (len > rlen) {
        /* binary mode: a reply that does not fit is a driver binary */
        ErlDrvBinary *bin = driver_alloc_binary(len);
        if (bin == NULL)
            return -1;
        memcpy(bin->orig_bytes, buf, len);
        *rbuf = (char *)bin;
        return (ErlDrvSSizeT)len;
    }
    memcpy(*rbuf, buf, len);
    return (ErlDrvSSizeT)len;
}

static ErlDrvSSizeT bench_call(ErlDrvData handle, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen,
                               unsigned int *flags)
{
    (void)handle;
    (void)command;
    (void)flags;
    if (len > rlen) {
        char *p = driver_alloc(len);
        if (p == NULL)
            return -1;
        *rbuf = p;
    }
    memcpy(*rbuf, buf, len);
    return (ErlDrvSSizeT)len;
}
