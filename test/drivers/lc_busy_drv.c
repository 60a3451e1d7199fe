/*
 * lc_busy_drv: the busy state of a port (set_busy_port) and the limits of
 * its message queue (erl_drv_busy_msgq_limits).
 *
 * lc_busy_soft_drv.c builds the same driver with ERL_DRV_FLAG_SOFT_BUSY
 * (port_command(P, D, [force]) is then allowed), lc_busy_nomsgq_drv.c with
 * ERL_DRV_FLAG_NO_BUSY_MSGQ.
 *
 * output: counts the command and echoes its data to the connected process
 * (driver_output), so the order in which commands reach the driver is the
 * order of the {Port, {data, D}} messages. Data "busy" / "unbusy" then
 * sets / clears the busy state (from inside output).
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1        set_busy_port(port, 1)                     -> "ok"
 *   2        set_busy_port(port, 0)                     -> "ok"
 *   3        commands received so far                   -> "N"
 *   4 "L H"  erl_drv_busy_msgq_limits(port, &L, &H)     -> "{L,H}"
 *            (the values after the call, as unsigned)
 *   5 "N"    driver_set_timer(port, N); the timeout
 *            clears the busy state and outputs "timeout" -> "ok"
 *   6 "A"    driver_failure_atom(port, A)               -> "ok"
 *   7 "N"    driver_exit(port, N)                       -> "ok"
 *   8 "N"    driver_failure(port, N)                    -> "ok"
 * stop outputs "stop" (the connected process gets it after the exit
 * signals, natively).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

#ifndef LC_BUSY_NAME
#define LC_BUSY_NAME lc_busy_drv
#define LC_BUSY_FLAGS 0
#endif
#define LC_STR2(x) #x
#define LC_STR(x) LC_STR2(x)

static ErlDrvData lc_busy_start(ErlDrvPort port, char *command);
static void lc_busy_stop(ErlDrvData handle);
static void lc_busy_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_busy_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen);
static void lc_busy_timeout(ErlDrvData handle);

static ErlDrvEntry lc_busy_entry = {
    NULL,                       /* init */
    lc_busy_start,
    lc_busy_stop,
    lc_busy_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    LC_STR(LC_BUSY_NAME),
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_busy_control,
    lc_busy_timeout,
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    NULL,                       /* call */
    NULL,                       /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    LC_BUSY_FLAGS,              /* driver_flags */
    NULL,                       /* handle2 */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(LC_BUSY_NAME) { return &lc_busy_entry; }

typedef struct {
    ErlDrvPort port;
    long commands;
} lc_busy;

static ErlDrvData lc_busy_start(ErlDrvPort port, char *command)
{
    lc_busy *b = driver_alloc(sizeof(lc_busy));

    (void)command;
    if (b == NULL)
        return ERL_DRV_ERROR_GENERAL;
    b->port = port;
    b->commands = 0;
    return (ErlDrvData)b;
}

static void lc_busy_stop(ErlDrvData handle)
{
    lc_busy *b = (lc_busy *)handle;

    driver_output(b->port, "stop", 4);
    driver_free(b);
}

static void lc_busy_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    lc_busy *b = (lc_busy *)handle;

    b->commands++;
    driver_output(b->port, buf, len);
    if (len == 4 && memcmp(buf, "busy", 4) == 0)
        set_busy_port(b->port, 1);
    else if (len == 6 && memcmp(buf, "unbusy", 6) == 0)
        set_busy_port(b->port, 0);
}

static void lc_busy_timeout(ErlDrvData handle)
{
    lc_busy *b = (lc_busy *)handle;

    driver_output(b->port, "timeout", 7);
    set_busy_port(b->port, 0);
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    ErlDrvSizeT n = strlen(text);

    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT lc_busy_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen)
{
    lc_busy *b = (lc_busy *)handle;
    char arg[64];
    char out[64];

    if (len >= sizeof(arg))
        len = sizeof(arg) - 1;
    memcpy(arg, buf, len);
    arg[len] = '\0';
    switch (op) {
    case 1:
        set_busy_port(b->port, 1);
        return reply(rbuf, rlen, "ok");
    case 2:
        set_busy_port(b->port, 0);
        return reply(rbuf, rlen, "ok");
    case 3:
        snprintf(out, sizeof(out), "%ld", b->commands);
        return reply(rbuf, rlen, out);
    case 4: {
        ErlDrvSizeT low = 0, high = 0;
        unsigned long long l, h;

        if (sscanf(arg, "%llu %llu", &l, &h) == 2) {
            low = (ErlDrvSizeT)l;
            high = (ErlDrvSizeT)h;
        }
        erl_drv_busy_msgq_limits(b->port, &low, &high);
        snprintf(out, sizeof(out), "{%llu,%llu}",
                 (unsigned long long)low, (unsigned long long)high);
        return reply(rbuf, rlen, out);
    }
    case 5:
        driver_set_timer(b->port, strtoul(arg, NULL, 10));
        return reply(rbuf, rlen, "ok");
    case 6:
        driver_failure_atom(b->port, arg);
        return reply(rbuf, rlen, "ok");
    case 7:
        driver_exit(b->port, atoi(arg));
        return reply(rbuf, rlen, "ok");
    case 8:
        driver_failure(b->port, atoi(arg));
        return reply(rbuf, rlen, "ok");
    default:
        return -1;
    }
}
