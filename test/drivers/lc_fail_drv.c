/* lc_fail_drv: driver_failure* and driver_exit from output, control and
 * call. The action is a string (port_command data, control data, or a
 * port_call string argument):
 *   "fail N"  driver_failure(N)         "atom A"  driver_failure_atom(A)
 *   "posix N" driver_failure_posix(N)   "exit N"  driver_exit(N)
 *   "eof"     driver_failure_eof        anything else: nothing
 * After the action the driver calls driver_output("after") and records
 * both return values. Control op 2 on any port of the driver reports
 * "<action rc> <after rc> <stops>"; control op 1 performs an action and
 * replies "ctl_ok"; port_call op 1 performs an action and replies 'ok'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_fail_start(ErlDrvPort port, char *command);
static void lc_fail_stop(ErlDrvData handle);
static void lc_fail_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT lc_fail_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen);
static ErlDrvSSizeT lc_fail_call(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len, char **rbuf,
                                 ErlDrvSizeT rlen, unsigned int *flags);

static ErlDrvEntry lc_fail_entry = {
    NULL,                       /* init */
    lc_fail_start,
    lc_fail_stop,
    lc_fail_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_fail_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_fail_control,
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    lc_fail_call,
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

DRIVER_INIT(lc_fail_drv) { return &lc_fail_entry; }

static int action_rc;
static int after_rc;
static int stops;

static ErlDrvData lc_fail_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void lc_fail_stop(ErlDrvData handle)
{
    (void)handle;
    stops++;
}

/* buf is not NUL-terminated; copy it so that it can be parsed. */
static void act(ErlDrvPort port, const char *buf, ErlDrvSizeT len)
{
    char action[64];

    if (len >= sizeof(action))
        len = sizeof(action) - 1;
    memcpy(action, buf, len);
    action[len] = '\0';

    action_rc = 0;
    if (strncmp(action, "fail ", 5) == 0)
        action_rc = driver_failure(port, atoi(action + 5));
    else if (strncmp(action, "atom ", 5) == 0)
        action_rc = driver_failure_atom(port, action + 5);
    else if (strncmp(action, "posix ", 6) == 0)
        action_rc = driver_failure_posix(port, atoi(action + 6));
    else if (strncmp(action, "exit ", 5) == 0)
        action_rc = driver_exit(port, atoi(action + 5));
    else if (strcmp(action, "eof") == 0)
        action_rc = driver_failure_eof(port);
    after_rc = driver_output(port, "after", 5);
}

static void lc_fail_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    act((ErlDrvPort)handle, buf, len);
}

static ErlDrvSSizeT lc_fail_control(ErlDrvData handle, unsigned int op,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen)
{
    (void)rlen;
    if (op == 1) {
        act((ErlDrvPort)handle, buf, len);
        memcpy(*rbuf, "ctl_ok", 6);
        return 6;
    }
    if (op == 2)
        return sprintf(*rbuf, "%d %d %d", action_rc, after_rc, stops);
    return -1;
}

/* The argument must be a string term: 131, STRING_EXT (107), 2-byte
 * length, characters. */
static ErlDrvSSizeT lc_fail_call(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len, char **rbuf,
                                 ErlDrvSizeT rlen, unsigned int *flags)
{
    unsigned char *b = (unsigned char *)buf;
    ErlDrvSizeT slen;

    (void)rlen; (void)flags;
    if (op != 1 || len < 4 || b[0] != 131 || b[1] != 107)
        return -1;
    slen = ((ErlDrvSizeT)b[2] << 8) | b[3];
    if (slen > len - 4)
        return -1;
    act((ErlDrvPort)handle, buf + 4, slen);
    memcpy(*rbuf, "\203\144\000\002ok", 6);
    return 6;
}
