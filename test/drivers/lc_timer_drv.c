/*
 * lc_timer_drv: the port's timer (driver_set_timer, driver_cancel_timer,
 * driver_read_timer, the timeout callback) and time measurement
 * (driver_get_now, erl_drv_monotonic_time, erl_drv_time_offset,
 * erl_drv_convert_time_unit).
 *
 * open_port({spawn, "lc_timer_drv"}, ...) opens a port without a timer;
 * "lc_timer_drv N" sets a timer of N ms from start.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1 "N"      driver_set_timer(port, N)              -> "Ret"
 *   2          driver_cancel_timer(port)              -> "Ret"
 *   3          driver_read_timer(port, &left)         -> "{Ret,Left}"
 *   4 "K N"    the next K timeouts re-arm with N ms   -> "ok"
 *   5          the next timeout fails the port with
 *              driver_failure_atom(port, "timeout_failed") -> "ok"
 *   6          driver_get_now(&now)                   -> "{Ret,Mega,Sec,Micro}"
 *   7 "U"      erl_drv_monotonic_time(U) (U: 0 sec, 1 msec, 2 usec,
 *              3 nsec, anything else invalid)         -> "Time"
 *   8 "U"      erl_drv_time_offset(U)                 -> "Offset"
 *   9 "V F T"  erl_drv_convert_time_unit(V, F, T)     -> "Result"
 *  10          stop will call driver_set_timer(port, 0) and output
 *              "{stop_set,Ret}"                       -> "ok"
 *  11 "N"      driver_set_timer(port, N), then
 *              driver_failure_atom(port, "failed")    -> "ok"
 *  12          timeouts report driver_read_timer too  -> "ok"
 *  13          timeouts report whether at least the set time passed
 *              since the last driver_set_timer (erl_drv_monotonic_time)
 *                                                     -> "ok"
 *  14          driver_failure_atom(port, "failed"), then the timer
 *              functions on the failed port  -> "{SetRet,CancelRet,ReadRet}"
 *
 * timeout: outputs "{timeout,Seq}" (Seq counts this port's timeouts from 1),
 * "{timeout,Seq,{Ret,Left}}" with op 12, "{timeout,Seq,NotEarly}" with op 13.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData timer_start(ErlDrvPort port, char *command);
static void timer_stop(ErlDrvData handle);
static ErlDrvSSizeT timer_control(ErlDrvData handle, unsigned int op,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen);
static void timer_timeout(ErlDrvData handle);

static ErlDrvEntry timer_entry = {
    NULL,                       /* init */
    timer_start,
    timer_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_timer_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    timer_control,
    timer_timeout,
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING,
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_timer_drv) { return &timer_entry; }

#define OP_SET          1
#define OP_CANCEL       2
#define OP_READ         3
#define OP_REARM        4
#define OP_FAIL_TIMEOUT 5
#define OP_GET_NOW      6
#define OP_MONOTONIC    7
#define OP_OFFSET       8
#define OP_CONVERT      9
#define OP_SET_IN_STOP  10
#define OP_SET_FAIL     11
#define OP_READ_IN_TMO  12
#define OP_NOT_EARLY    13
#define OP_FAIL_THEN    14

typedef struct {
    ErlDrvPort port;
    unsigned long seq;          /* timeouts so far */
    unsigned long rearm_left;   /* timeouts still to re-arm */
    unsigned long rearm_ms;
    int fail_in_timeout;
    int set_in_stop;
    int read_in_timeout;
    int check_not_early;
    unsigned long last_ms;      /* time of the last driver_set_timer */
    ErlDrvTime last_set;        /* erl_drv_monotonic_time(ERL_DRV_MSEC) then */
} TimerData;

static int set_timer(TimerData *d, unsigned long ms)
{
    d->last_ms = ms;
    d->last_set = erl_drv_monotonic_time(ERL_DRV_MSEC);
    return driver_set_timer(d->port, ms);
}

static ErlDrvData timer_start(ErlDrvPort port, char *command)
{
    TimerData *d;
    char *arg;

    d = driver_alloc(sizeof(TimerData));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(TimerData));
    d->port = port;
    arg = strchr(command, ' ');
    if (arg != NULL)
        set_timer(d, strtoul(arg + 1, NULL, 10));
    return (ErlDrvData)d;
}

static void timer_stop(ErlDrvData handle)
{
    TimerData *d = (TimerData *)handle;
    char msg[64];
    int n;

    if (d->set_in_stop) {
        n = snprintf(msg, sizeof(msg), "{stop_set,%d}", set_timer(d, 0));
        driver_output(d->port, msg, n);
    }
    driver_free(d);
}

static void timer_timeout(ErlDrvData handle)
{
    TimerData *d = (TimerData *)handle;
    char msg[128];
    unsigned long left = 12345;
    int n, ret;

    d->seq++;
    if (d->read_in_timeout) {
        ret = driver_read_timer(d->port, &left);
        n = snprintf(msg, sizeof(msg), "{timeout,%lu,{%d,%lu}}", d->seq, ret, left);
    } else if (d->check_not_early) {
        ErlDrvTime now = erl_drv_monotonic_time(ERL_DRV_MSEC);
        n = snprintf(msg, sizeof(msg), "{timeout,%lu,%s}", d->seq,
                     now - d->last_set >= (ErlDrvTime)d->last_ms ? "true" : "false");
    } else {
        n = snprintf(msg, sizeof(msg), "{timeout,%lu}", d->seq);
    }
    driver_output(d->port, msg, n);
    if (d->fail_in_timeout) {
        driver_failure_atom(d->port, "timeout_failed");
        return;
    }
    if (d->rearm_left > 0) {
        d->rearm_left--;
        set_timer(d, d->rearm_ms);
    }
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);

    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT timer_control(ErlDrvData handle, unsigned int op,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen)
{
    TimerData *d = (TimerData *)handle;
    char arg[64];
    char out[256];
    unsigned long left = 12345;
    ErlDrvTime t;
    ErlDrvNowData now;
    ErlDrvPort port;
    long long v;
    int from, to, unit, ret;

    if (len >= sizeof(arg))
        return -1;
    memcpy(arg, buf, len);
    arg[len] = '\0';

    switch (op) {
    case OP_SET:
        snprintf(out, sizeof(out), "%d", set_timer(d, strtoul(arg, NULL, 10)));
        break;
    case OP_CANCEL:
        snprintf(out, sizeof(out), "%d", driver_cancel_timer(d->port));
        break;
    case OP_READ:
        ret = driver_read_timer(d->port, &left);
        snprintf(out, sizeof(out), "{%d,%lu}", ret, left);
        break;
    case OP_REARM:
        if (sscanf(arg, "%lu %lu", &d->rearm_left, &d->rearm_ms) != 2)
            return -1;
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_FAIL_TIMEOUT:
        d->fail_in_timeout = 1;
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_GET_NOW:
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        ret = driver_get_now(&now);
#pragma GCC diagnostic pop
        snprintf(out, sizeof(out), "{%d,%lu,%lu,%lu}", ret,
                 now.megasecs, now.secs, now.microsecs);
        break;
    case OP_MONOTONIC:
    case OP_OFFSET:
        unit = atoi(arg);
        t = op == OP_MONOTONIC ? erl_drv_monotonic_time((ErlDrvTimeUnit)unit)
                               : erl_drv_time_offset((ErlDrvTimeUnit)unit);
        snprintf(out, sizeof(out), "%lld", (long long)t);
        break;
    case OP_CONVERT:
        if (sscanf(arg, "%lld %d %d", &v, &from, &to) != 3)
            return -1;
        snprintf(out, sizeof(out), "%lld",
                 (long long)erl_drv_convert_time_unit((ErlDrvTime)v,
                                                      (ErlDrvTimeUnit)from,
                                                      (ErlDrvTimeUnit)to));
        break;
    case OP_SET_IN_STOP:
        d->set_in_stop = 1;
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_SET_FAIL:
        set_timer(d, strtoul(arg, NULL, 10));
        driver_failure_atom(d->port, "failed");
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_READ_IN_TMO:
        d->read_in_timeout = 1;
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_NOT_EARLY:
        d->check_not_early = 1;
        snprintf(out, sizeof(out), "ok");
        break;
    case OP_FAIL_THEN:
        port = d->port;         /* d is freed by stop, inside the failure */
        driver_failure_atom(port, "failed");
        ret = driver_set_timer(port, 10);
        snprintf(out, sizeof(out), "{%d,%d,%d}", ret, driver_cancel_timer(port),
                 driver_read_timer(port, &left));
        break;
    default:
        return -1;
    }
    return reply(rbuf, rlen, out);
}
