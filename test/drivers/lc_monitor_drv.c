/*
 * lc_monitor_drv: process monitors (driver_monitor_process,
 * driver_demonitor_process, driver_get_monitored_process,
 * driver_compare_monitors) and the process_exit callback.
 *
 * Each port keeps its monitors in numbered slots (0, 1, ... in the order
 * they were made, whether the call succeeded or not).
 *
 * open_port({spawn, "lc_monitor_drv"}, ...) opens a port without monitors;
 * "lc_monitor_drv start" monitors the opener from start and outputs
 * {start_monitor,Ret,Slot}.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1          monitor driver_caller(port)         -> "{Ret,Slot}"
 *   2          monitor driver_connected(port)      -> "{Ret,Slot}"
 *   3          remember driver_caller(port)        -> "ok"
 *   4          monitor the remembered process      -> "{Ret,Slot}"
 *   5 "S"      driver_demonitor_process(slot S)    -> "Ret"
 *   6 "S"      driver_get_monitored_process(slot S): outputs
 *              {monitored,S,Pid} ([] instead of Pid for driver_term_nil,
 *              as driver_mk_term_nil gives it)     -> "ok"
 *   7 "A B"    driver_compare_monitors(slot A, slot B), its sign
 *                                                  -> "-1" | "0" | "1"
 *   8 "A"      copies slot A into a new slot (a plain struct copy)
 *                                                  -> "Slot"
 *   9          stop will monitor driver_connected(port) and output
 *              {stop_monitor,Ret}                  -> "ok"
 *  10          process_exit also demonitors the monitor it got and
 *              reports the result                  -> "ok"
 *
 * process_exit outputs {process_exit,Slot,Pid}: Slot is the first slot
 * whose monitor compares equal to the one given (-1 if none), Pid what
 * driver_get_monitored_process gives for it there ([] for
 * driver_term_nil); with op 10, {process_exit,Slot,Pid,DemonitorRet}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData mon_start(ErlDrvPort port, char *command);
static void mon_stop(ErlDrvData handle);
static ErlDrvSSizeT mon_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen);
static void mon_process_exit(ErlDrvData handle, ErlDrvMonitor *monitor);

static ErlDrvEntry mon_entry = {
    NULL,                       /* init */
    mon_start,
    mon_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_monitor_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    mon_control,
    NULL,                       /* timeout */
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
    mon_process_exit,
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_monitor_drv) { return &mon_entry; }

#define OP_MONITOR_CALLER     1
#define OP_MONITOR_CONNECTED  2
#define OP_REMEMBER           3
#define OP_MONITOR_REMEMBERED 4
#define OP_DEMONITOR          5
#define OP_GET                6
#define OP_COMPARE            7
#define OP_COPY               8
#define OP_STOP_MONITOR       9
#define OP_EXIT_DEMONITORS    10

#define SLOTS 64

typedef struct {
    ErlDrvPort port;
    ErlDrvTermData remembered;
    int stop_monitor;
    int exit_demonitors;
    int n;
    ErlDrvMonitor slot[SLOTS];
} MonData;

static void output_slot_pid(MonData *d, const char *tag, int slot,
                            ErlDrvTermData pid, int extra, int with_extra)
{
    ErlDrvTermData spec[12];
    int n = 0;

    spec[n++] = ERL_DRV_ATOM; spec[n++] = driver_mk_atom((char *)tag);
    spec[n++] = ERL_DRV_INT; spec[n++] = (ErlDrvTermData)(ErlDrvSInt)slot;
    if (pid == driver_mk_term_nil()) {
        spec[n++] = ERL_DRV_NIL;
    } else {
        spec[n++] = ERL_DRV_PID; spec[n++] = pid;
    }
    if (with_extra) {
        spec[n++] = ERL_DRV_INT; spec[n++] = (ErlDrvTermData)(ErlDrvSInt)extra;
    }
    spec[n++] = ERL_DRV_TUPLE; spec[n++] = with_extra ? 4 : 3;
    erl_drv_output_term(driver_mk_port(d->port), spec, n);
}

/* Monitors pid into the next slot; returns the slot (or -1 when full) and
 * the call's result in *ret. */
static int monitor_into_slot(MonData *d, ErlDrvTermData pid, int *ret)
{
    int slot;

    if (d->n >= SLOTS) {
        *ret = -99;
        return -1;
    }
    slot = d->n++;
    memset(&d->slot[slot], 0, sizeof(ErlDrvMonitor));
    *ret = driver_monitor_process(d->port, pid, &d->slot[slot]);
    return slot;
}

static ErlDrvData mon_start(ErlDrvPort port, char *command)
{
    MonData *d = driver_alloc(sizeof(MonData));
    int ret, slot;
    ErlDrvTermData spec[10];

    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(MonData));
    d->port = port;
    if (strstr(command, " start") == NULL)
        return (ErlDrvData)d;
    slot = monitor_into_slot(d, driver_caller(port), &ret);
    spec[0] = ERL_DRV_ATOM; spec[1] = driver_mk_atom("start_monitor");
    spec[2] = ERL_DRV_INT; spec[3] = (ErlDrvTermData)(ErlDrvSInt)ret;
    spec[4] = ERL_DRV_INT; spec[5] = (ErlDrvTermData)(ErlDrvSInt)slot;
    spec[6] = ERL_DRV_TUPLE; spec[7] = 3;
    erl_drv_output_term(driver_mk_port(port), spec, 8);
    return (ErlDrvData)d;
}

static void mon_stop(ErlDrvData handle)
{
    MonData *d = (MonData *)handle;
    ErlDrvTermData spec[6];
    int ret;

    if (d->stop_monitor) {
        monitor_into_slot(d, driver_connected(d->port), &ret);
        spec[0] = ERL_DRV_ATOM; spec[1] = driver_mk_atom("stop_monitor");
        spec[2] = ERL_DRV_INT; spec[3] = (ErlDrvTermData)(ErlDrvSInt)ret;
        spec[4] = ERL_DRV_TUPLE; spec[5] = 2;
        erl_drv_output_term(driver_mk_port(d->port), spec, 6);
    }
    driver_free(d);
}

static void mon_process_exit(ErlDrvData handle, ErlDrvMonitor *monitor)
{
    MonData *d = (MonData *)handle;
    ErlDrvTermData pid;
    int i, slot = -1, ret;

    for (i = 0; i < d->n; i++) {
        if (driver_compare_monitors(monitor, &d->slot[i]) == 0) {
            slot = i;
            break;
        }
    }
    pid = driver_get_monitored_process(d->port, monitor);
    if (!d->exit_demonitors) {
        output_slot_pid(d, "process_exit", slot, pid, 0, 0);
        return;
    }
    ret = driver_demonitor_process(d->port, monitor);
    output_slot_pid(d, "process_exit", slot, pid, ret, 1);
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);

    if (n > rlen) {
        *rbuf = driver_alloc(n);
        if (*rbuf == NULL)
            return 0;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

/* The slot number in buf (NUL-terminated copy), or -1. */
static int parse_slots(const char *buf, ErlDrvSizeT len, int *a, int *b)
{
    char text[64];

    if (len >= sizeof(text))
        return -1;
    memcpy(text, buf, len);
    text[len] = '\0';
    *a = *b = -1;
    return sscanf(text, "%d %d", a, b);
}

static int valid(MonData *d, int slot)
{
    return slot >= 0 && slot < d->n;
}

static ErlDrvSSizeT mon_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    MonData *d = (MonData *)handle;
    char out[64];
    int ret, slot, a, b, cmp;

    switch (op) {
    case OP_MONITOR_CALLER:
        slot = monitor_into_slot(d, driver_caller(d->port), &ret);
        snprintf(out, sizeof(out), "{%d,%d}", ret, slot);
        return reply(rbuf, rlen, out);
    case OP_MONITOR_CONNECTED:
        slot = monitor_into_slot(d, driver_connected(d->port), &ret);
        snprintf(out, sizeof(out), "{%d,%d}", ret, slot);
        return reply(rbuf, rlen, out);
    case OP_REMEMBER:
        d->remembered = driver_caller(d->port);
        return reply(rbuf, rlen, "ok");
    case OP_MONITOR_REMEMBERED:
        slot = monitor_into_slot(d, d->remembered, &ret);
        snprintf(out, sizeof(out), "{%d,%d}", ret, slot);
        return reply(rbuf, rlen, out);
    case OP_DEMONITOR:
        if (parse_slots(buf, len, &a, &b) < 1 || !valid(d, a))
            return reply(rbuf, rlen, "bad_slot");
        snprintf(out, sizeof(out), "%d",
                 driver_demonitor_process(d->port, &d->slot[a]));
        return reply(rbuf, rlen, out);
    case OP_GET:
        if (parse_slots(buf, len, &a, &b) < 1 || !valid(d, a))
            return reply(rbuf, rlen, "bad_slot");
        output_slot_pid(d, "monitored", a,
                        driver_get_monitored_process(d->port, &d->slot[a]),
                        0, 0);
        return reply(rbuf, rlen, "ok");
    case OP_COMPARE:
        if (parse_slots(buf, len, &a, &b) < 2 || !valid(d, a) || !valid(d, b))
            return reply(rbuf, rlen, "bad_slot");
        cmp = driver_compare_monitors(&d->slot[a], &d->slot[b]);
        snprintf(out, sizeof(out), "%d", cmp < 0 ? -1 : cmp > 0 ? 1 : 0);
        return reply(rbuf, rlen, out);
    case OP_COPY:
        if (parse_slots(buf, len, &a, &b) < 1 || !valid(d, a) || d->n >= SLOTS)
            return reply(rbuf, rlen, "bad_slot");
        slot = d->n++;
        d->slot[slot] = d->slot[a];
        snprintf(out, sizeof(out), "%d", slot);
        return reply(rbuf, rlen, out);
    case OP_STOP_MONITOR:
        d->stop_monitor = 1;
        return reply(rbuf, rlen, "ok");
    case OP_EXIT_DEMONITORS:
        d->exit_demonitors = 1;
        return reply(rbuf, rlen, "ok");
    default:
        return reply(rbuf, rlen, "unknown_op");
    }
}
