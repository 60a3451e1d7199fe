/*
 * lc_lock_drv: locking modes. Every callback counts itself in at entry
 * and out at exit, per driver (one count per loaded copy of the driver)
 * and per port, and records the largest count it saw: a value above 1
 * means two callbacks ran at once. With driver-level locking (the
 * default) no two callbacks of the driver may overlap; with port-level
 * locking no two callbacks of one port may.
 *
 * The locking mode is chosen when the driver is loaded: driver_init sets
 * ERL_DRV_FLAG_USE_PORT_LOCKING when the emulator's environment variable
 * LC_LOCK_DRV_PORT_LOCKING (os:putenv/2) is "1".
 *
 * Callbacks that count: start, stop, output, control, timeout,
 * ready_async, ready_input. Each spins briefly inside, to widen the window
 * in which an overlap would be seen. Each port owns a pipe whose read end
 * is selected for reading (driver_select, ERL_DRV_READ|ERL_DRV_USE) from
 * start; ready_input reads what is there; stop deselects it (stop_select
 * closes it) and closes the write end.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1         nothing but the count                        -> "ok"
 *   2         driver_set_timer(port, 0)                    -> "Ret"
 *   3         driver_async(port, &key 0, job): its ready_async counts
 *                                                          -> "Ret > 0"
 *   4         -> "{DriverMax,PortMax,Timeouts,Readies}" (this port's
 *             timeouts and ready_asyncs)
 *   5         the next timeout outputs "timer_done"         -> "Ret"
 *   6 "N"     an async job as 3; the ready_async that brings this
 *             port's count of ready_asyncs to N outputs "async_done"
 *                                                          -> "Ret > 0"
 *   7         driver_lock_driver(port)                     -> "Ret"
 *   8         writes one byte into the port's pipe          -> "ok"
 *   9 "N"     the ready_input (or this call) that finds N bytes read
 *             from the pipe in all outputs "select_done"   -> "ok"
 *
 * output: counts, emits nothing.
 * finish: writes "finished" to the file named by the emulator's
 * environment variable LC_LOCK_DRV_FINISH_FILE (when set), so that a test
 * can see whether finish ran.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "erl_driver.h"

static int lock_init(void);
static void lock_finish(void);
static ErlDrvData lock_start(ErlDrvPort port, char *command);
static void lock_stop(ErlDrvData handle);
static void lock_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lock_control(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len,
                                 char **rbuf, ErlDrvSizeT rlen);
static void lock_timeout(ErlDrvData handle);
static void lock_ready_async(ErlDrvData handle, ErlDrvThreadData data);
static void lock_ready_input(ErlDrvData handle, ErlDrvEvent event);
static void lock_stop_select(ErlDrvEvent event, void *reserved);

static ErlDrvEntry lock_entry = {
    lock_init,
    lock_start,
    lock_stop,
    lock_output,
    lock_ready_input,
    NULL,                       /* ready_output */
    "lc_lock_drv",
    lock_finish,
    NULL,                       /* handle */
    lock_control,
    lock_timeout,
    NULL,                       /* outputv */
    lock_ready_async,
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                          /* driver_flags: set by lock_init */
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    lock_stop_select,
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_lock_drv)
{
    char mode[8];
    size_t size = sizeof(mode);
    int set = erl_drv_getenv("LC_LOCK_DRV_PORT_LOCKING", mode, &size) == 0
        && strcmp(mode, "1") == 0;
    lock_entry.driver_flags = set ? ERL_DRV_FLAG_USE_PORT_LOCKING : 0;
    return &lock_entry;
}

#define OP_NOTHING     1
#define OP_TIMER       2
#define OP_ASYNC       3
#define OP_REPORT      4
#define OP_TIMER_DONE  5
#define OP_ASYNC_DONE  6
#define OP_LOCK_DRIVER 7
#define OP_SELECT      8
#define OP_SELECT_DONE 9

typedef struct {
    ErlDrvPort port;
    int in;                     /* callbacks of this port running */
    int max;                    /* the most seen at once */
    long timeouts;
    long readies;
    long readies_done;          /* output "async_done" at this count */
    int timer_done;
    int pipe_r;                 /* selected for reading */
    int pipe_w;
    long bytes_read;
    long bytes_done;            /* output "select_done" at this count */
} LockData;

static int driver_in = 0;
static int driver_max = 0;

static void raise_max(int *max, int n)
{
    int seen = __atomic_load_n(max, __ATOMIC_SEQ_CST);
    while (n > seen
           && !__atomic_compare_exchange_n(max, &seen, n, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

static void enter(LockData *d)
{
    volatile int spin;
    raise_max(&driver_max, __atomic_add_fetch(&driver_in, 1, __ATOMIC_SEQ_CST));
    raise_max(&d->max, __atomic_add_fetch(&d->in, 1, __ATOMIC_SEQ_CST));
    for (spin = 0; spin < 2000; spin++)
        ;
}

static void leave(LockData *d)
{
    __atomic_sub_fetch(&d->in, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&driver_in, 1, __ATOMIC_SEQ_CST);
}

static int lock_init(void)
{
    driver_in = 0;
    driver_max = 0;
    return 0;
}

static void lock_finish(void)
{
    char file[256];
    size_t size = sizeof(file);
    FILE *f;
    if (erl_drv_getenv("LC_LOCK_DRV_FINISH_FILE", file, &size) != 0)
        return;
    f = fopen(file, "w");
    if (f != NULL) {
        fputs("finished", f);
        fclose(f);
    }
}

static ErlDrvData lock_start(ErlDrvPort port, char *command)
{
    LockData *d = driver_alloc(sizeof(LockData));
    int fds[2];
    (void) command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(LockData));
    d->port = port;
    enter(d);
    if (pipe(fds) != 0) {
        leave(d);
        driver_free(d);
        return ERL_DRV_ERROR_ERRNO;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    d->pipe_r = fds[0];
    d->pipe_w = fds[1];
    driver_select(port, (ErlDrvEvent) (long) d->pipe_r, ERL_DRV_READ | ERL_DRV_USE, 1);
    leave(d);
    return (ErlDrvData) d;
}

static void lock_stop(ErlDrvData handle)
{
    LockData *d = (LockData *) handle;
    enter(d);
    driver_select(d->port, (ErlDrvEvent) (long) d->pipe_r, ERL_DRV_READ | ERL_DRV_USE, 0);
    close(d->pipe_w);
    leave(d);
    driver_free(d);
}

static void lock_stop_select(ErlDrvEvent event, void *reserved)
{
    (void) reserved;
    close((int) (long) event);
}

static void select_check(LockData *d)
{
    if (d->bytes_done > 0 && d->bytes_read == d->bytes_done) {
        d->bytes_done = 0;
        driver_output(d->port, "select_done", 11);
    }
}

static void lock_ready_input(ErlDrvData handle, ErlDrvEvent event)
{
    LockData *d = (LockData *) handle;
    char buf[64];
    ssize_t n;
    enter(d);
    n = read((int) (long) event, buf, sizeof(buf));
    if (n > 0)
        d->bytes_read += n;
    select_check(d);
    leave(d);
}

static void lock_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    LockData *d = (LockData *) handle;
    (void) buf;
    (void) len;
    enter(d);
    leave(d);
}

static void lock_timeout(ErlDrvData handle)
{
    LockData *d = (LockData *) handle;
    enter(d);
    d->timeouts++;
    if (d->timer_done) {
        d->timer_done = 0;
        driver_output(d->port, "timer_done", 10);
    }
    leave(d);
}

static void job_invoke(void *arg)
{
    (void) arg;
}

static void job_free(void *arg)
{
    driver_free(arg);
}

static void lock_ready_async(ErlDrvData handle, ErlDrvThreadData data)
{
    LockData *d = (LockData *) handle;
    enter(d);
    d->readies++;
    if (d->readies == d->readies_done)
        driver_output(d->port, "async_done", 10);
    driver_free(data);
    leave(d);
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);
    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT) n;
}

static long submit(LockData *d)
{
    unsigned int key = 0;
    void *job = driver_alloc(16);
    if (job == NULL)
        return -1;
    return driver_async(d->port, &key, job_invoke, job, job_free);
}

static ErlDrvSSizeT lock_control(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len,
                                 char **rbuf, ErlDrvSizeT rlen)
{
    LockData *d = (LockData *) handle;
    char text[96];
    ErlDrvSSizeT n;

    enter(d);
    switch (op) {
    case OP_NOTHING:
        n = reply(rbuf, rlen, "ok");
        break;
    case OP_TIMER:
        snprintf(text, sizeof(text), "%d", driver_set_timer(d->port, 0));
        n = reply(rbuf, rlen, text);
        break;
    case OP_ASYNC:
        n = reply(rbuf, rlen, submit(d) > 0 ? "true" : "false");
        break;
    case OP_REPORT:
        snprintf(text, sizeof(text), "{%d,%d,%ld,%ld}",
                 __atomic_load_n(&driver_max, __ATOMIC_SEQ_CST),
                 __atomic_load_n(&d->max, __ATOMIC_SEQ_CST),
                 d->timeouts, d->readies);
        n = reply(rbuf, rlen, text);
        break;
    case OP_TIMER_DONE:
        d->timer_done = 1;
        snprintf(text, sizeof(text), "%d", driver_set_timer(d->port, 0));
        n = reply(rbuf, rlen, text);
        break;
    case OP_ASYNC_DONE:
        if (len >= sizeof(text))
            len = sizeof(text) - 1;
        memcpy(text, buf, len);
        text[len] = '\0';
        d->readies_done = strtol(text, NULL, 10);
        n = reply(rbuf, rlen, submit(d) > 0 ? "true" : "false");
        break;
    case OP_SELECT:
        n = reply(rbuf, rlen, write(d->pipe_w, "s", 1) == 1 ? "ok" : "error");
        break;
    case OP_SELECT_DONE:
        if (len >= sizeof(text))
            len = sizeof(text) - 1;
        memcpy(text, buf, len);
        text[len] = '\0';
        d->bytes_done = strtol(text, NULL, 10);
        select_check(d);
        n = reply(rbuf, rlen, "ok");
        break;
    case OP_LOCK_DRIVER:
        snprintf(text, sizeof(text), "%d", driver_lock_driver(d->port));
        n = reply(rbuf, rlen, text);
        break;
    default:
        n = -1;
        break;
    }
    leave(d);
    return n;
}
