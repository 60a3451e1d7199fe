/*
 * bench_drv: the smallest useful work for each way into a driver, so that
 * a benchmark measures the path, not the driver.
 *
 *   open_port command "bench_drv" (binary control replies) or
 *   "bench_drv list" (list control replies).
 *
 *   port_control/3  op 1: echoes the data (a driver_alloc_binary, or in list
 *                   mode a driver_alloc buffer, when it does not fit rbuf)
 *                   op 2: sends {term, Port, 42} with erl_drv_output_term
 *                   op 3: driver_set_timer(0); `timeout` sends "t" with
 *                   driver_output
 *                   op 4: sends the data back with driver_output_binary
 *                   op 5: driver_enq then driver_deq of the data
 *                   op 6: driver_async of an empty job; `ready_async`
 *                   sends "a"
 *                   op 7: writes a byte to the port's pipe and selects its
 *                   read end; `ready_input` reads it, deselects, sends "s"
 *                   op 8: driver_set_timer(3600000) (a live timer)
 *                   op 9: driver_cancel_timer
 *   port_command/2  echoes the data with driver_output
 *   port_call/3     echoes the term (the external format bytes unchanged)
 *
 * Port-level locking, as a driver written for speed would use.
 */
#include <string.h>
#include <unistd.h>
#include "erl_driver.h"

typedef struct {
    ErlDrvPort port;
    int list;
    int pipe_fd[2];
} bench_data;

static ErlDrvData bench_start(ErlDrvPort port, char *command);
static void bench_stop(ErlDrvData handle);
static void bench_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static void bench_ready_input(ErlDrvData handle, ErlDrvEvent event);
static void bench_timeout(ErlDrvData handle);
static void bench_ready_async(ErlDrvData handle, ErlDrvThreadData data);
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
    bench_ready_input,
    NULL,                       /* ready_output */
    "bench_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    bench_control,
    bench_timeout,
    NULL,                       /* outputv */
    bench_ready_async,
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

    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    d->list = strstr(command, " list") != NULL;
    d->pipe_fd[0] = d->pipe_fd[1] = -1;
    if (!d->list)
        set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData)d;
}

static void bench_stop(ErlDrvData handle)
{
    bench_data *d = (bench_data *)handle;

    if (d->pipe_fd[0] >= 0) {
        close(d->pipe_fd[0]);
        close(d->pipe_fd[1]);
    }
    driver_free(handle);
}

static void bench_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    bench_data *d = (bench_data *)handle;

    driver_output(d->port, buf, len);
}

static void bench_ready_input(ErlDrvData handle, ErlDrvEvent event)
{
    bench_data *d = (bench_data *)handle;
    char byte;

    (void)event;
    if (read(d->pipe_fd[0], &byte, 1) != 1)
        return;
    driver_select(d->port, (ErlDrvEvent)(ErlDrvSInt)d->pipe_fd[0], ERL_DRV_READ, 0);
    driver_output(d->port, "s", 1);
}

static void bench_timeout(ErlDrvData handle)
{
    bench_data *d = (bench_data *)handle;

    driver_output(d->port, "t", 1);
}

static void bench_async_job(void *arg)
{
    (void)arg;
}

static void bench_ready_async(ErlDrvData handle, ErlDrvThreadData data)
{
    bench_data *d = (bench_data *)handle;

    (void)data;
    driver_output(d->port, "a", 1);
}

static ErlDrvSSizeT bench_select(bench_data *d)
{
    if (d->pipe_fd[0] < 0 && pipe(d->pipe_fd) != 0)
        return -1;
    if (write(d->pipe_fd[1], "x", 1) != 1)
        return -1;
    return driver_select(d->port, (ErlDrvEvent)(ErlDrvSInt)d->pipe_fd[0],
                         ERL_DRV_READ, 1) == 0 ? 0 : -1;
}

static ErlDrvSSizeT bench_control(ErlDrvData handle, unsigned int command,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen)
{
    bench_data *d = (bench_data *)handle;

    switch (command) {
    case 1:
        break;
    case 2: {
        ErlDrvTermData spec[] = {
            ERL_DRV_ATOM, driver_mk_atom("term"),
            ERL_DRV_PORT, driver_mk_port(d->port),
            ERL_DRV_INT, 42,
            ERL_DRV_TUPLE, 3
        };
        return erl_drv_output_term(driver_mk_port(d->port), spec,
                                   sizeof(spec) / sizeof(spec[0])) == 1 ? 0 : -1;
    }
    case 3:
        return driver_set_timer(d->port, 0) == 0 ? 0 : -1;
    case 4: {
        ErlDrvBinary *bin = driver_alloc_binary(len);
        int r;
        if (bin == NULL)
            return -1;
        memcpy(bin->orig_bytes, buf, len);
        r = driver_output_binary(d->port, NULL, 0, bin, 0, len);
        driver_free_binary(bin);
        return r == 0 ? 0 : -1;
    }
    case 5:
        driver_enq(d->port, buf, len);
        return driver_deq(d->port, len) == 0 ? 0 : -1;
    case 6:
        return driver_async(d->port, NULL, bench_async_job, NULL, NULL) < 0 ? -1 : 0;
    case 7:
        return bench_select(d);
    case 8:
        return driver_set_timer(d->port, 3600000) == 0 ? 0 : -1;
    case 9:
        return driver_cancel_timer(d->port) == 0 ? 0 : -1;
    default:
        return -1;
    }
    if (len > rlen) {
        /* a reply that does not fit: a driver binary in binary mode, a
           driver_alloc buffer in list mode */
        if (d->list) {
            char *p = driver_alloc(len);
            if (p == NULL)
                return -1;
            memcpy(p, buf, len);
            *rbuf = p;
        } else {
            ErlDrvBinary *bin = driver_alloc_binary(len);
            if (bin == NULL)
                return -1;
            memcpy(bin->orig_bytes, buf, len);
            *rbuf = (char *)bin;
        }
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
