/* lc_start_drv: what start() receives and how its return value is taken.
 *
 * The words after the driver name in the command choose the behaviour:
 *   general  start returns ERL_DRV_ERROR_GENERAL
 *   enoent   start sets errno = ENOENT and returns ERL_DRV_ERROR_ERRNO
 *   badarg   start returns ERL_DRV_ERROR_BADARG
 *   null     start returns NULL (a valid handle)
 *   hello    start calls driver_output("hello_from_start")
 * Control ops (list replies) report what start saw; see lc_start_control. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_start_start(ErlDrvPort port, char *command);
static void lc_start_stop(ErlDrvData handle);
static void lc_start_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_start_control(ErlDrvData handle, unsigned int op,
                                     char *buf, ErlDrvSizeT len,
                                     char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry lc_start_entry = {
    NULL,                       /* init */
    lc_start_start,
    lc_start_stop,
    lc_start_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_start_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_start_control,
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

DRIVER_INIT(lc_start_drv) { return &lc_start_entry; }

typedef struct {
    ErlDrvPort port;
    char command[256];
    int flags_in_start;
    int caller_is_connected_in_start;
    ErlDrvTermData caller_in_start;
} lc_start_data;

static int stops;       /* stop() calls, any handle */
static int null_stops;  /* stop() calls that received NULL */

static int has_word(const char *command, const char *word)
{
    const char *space = strchr(command, ' ');
    if (space == NULL)
        return 0;
    return strstr(space, word) != NULL;
}

static ErlDrvData lc_start_start(ErlDrvPort port, char *command)
{
    lc_start_data *d;

    if (has_word(command, "general"))
        return ERL_DRV_ERROR_GENERAL;
    if (has_word(command, "enoent")) {
        errno = ENOENT;
        return ERL_DRV_ERROR_ERRNO;
    }
    if (has_word(command, "badarg"))
        return ERL_DRV_ERROR_BADARG;
    if (has_word(command, "null"))
        return NULL;
    if (has_word(command, "hello"))
        driver_output(port, "hello_from_start", 16);

    d = driver_alloc(sizeof(lc_start_data));
    d->port = port;
    strncpy(d->command, command, sizeof(d->command) - 1);
    d->command[sizeof(d->command) - 1] = '\0';
    d->flags_in_start = get_port_flags(port);
    d->caller_in_start = driver_caller(port);
    d->caller_is_connected_in_start =
        driver_caller(port) == driver_connected(port);
    return (ErlDrvData)d;
}

static void lc_start_stop(ErlDrvData handle)
{
    stops++;
    if (handle == NULL) {
        null_stops++;
        return;
    }
    driver_free(handle);
}

static void lc_start_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    lc_start_data *d = (lc_start_data *)handle;
    if (d == NULL)
        return;
    driver_output(d->port, buf, len);
}

/* Ops (any handle):  7 stops, 8 null_stops.
 * Ops (non-NULL handle): 1 command seen by start, 2 get_port_flags in
 * start, 3 get_port_flags now, 4 caller == connected in start,
 * 5 caller now == caller in start, 6 caller now == connected now.
 * A NULL handle answers "null" to ops 1..6. */
static ErlDrvSSizeT lc_start_control(ErlDrvData handle, unsigned int op,
                                     char *buf, ErlDrvSizeT len,
                                     char **rbuf, ErlDrvSizeT rlen)
{
    lc_start_data *d = (lc_start_data *)handle;
    char reply[256];
    size_t n;

    (void)buf; (void)len;
    if (op == 7)
        n = sprintf(reply, "%d", stops);
    else if (op == 8)
        n = sprintf(reply, "%d", null_stops);
    else if (d == NULL)
        n = sprintf(reply, "null");
    else if (op == 1)
        n = sprintf(reply, "%s", d->command);
    else if (op == 2)
        n = sprintf(reply, "%d", d->flags_in_start);
    else if (op == 3)
        n = sprintf(reply, "%d", get_port_flags(d->port));
    else if (op == 4)
        n = sprintf(reply, "%d", d->caller_is_connected_in_start);
    else if (op == 5)
        n = sprintf(reply, "%d", driver_caller(d->port) == d->caller_in_start);
    else if (op == 6)
        n = sprintf(reply, "%d",
                    driver_caller(d->port) == driver_connected(d->port));
    else
        return -1;

    if (n > rlen)
        *rbuf = driver_alloc(n);
    memcpy(*rbuf, reply, n);
    return (ErlDrvSSizeT)n;
}
