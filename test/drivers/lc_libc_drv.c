/* lc_libc_drv: a driver using libc's data symbols, which beam.smp also
 * exports (stderr, stdout, environ; errno through __errno_location).
 *   start      writes a line to stderr and flushes stdout
 *   control 1  the value of the environment variable named by the data,
 *              looked up in environ ("unset" when absent)
 *   control 2  erl_errno_id(errno) after close(-1) fails
 *   control 3  "<fileno(stdout)> <fileno(stderr)> <fprintf result>" */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "erl_driver.h"

extern char **environ;

static ErlDrvData lc_libc_start(ErlDrvPort port, char *command);
static ErlDrvSSizeT lc_libc_control(ErlDrvData handle, unsigned int cmd,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry lc_libc_entry = {
    NULL,                       /* init */
    lc_libc_start,
    NULL,                       /* stop */
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_libc_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_libc_control,
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

DRIVER_INIT(lc_libc_drv) { return &lc_libc_entry; }

/* Result of the fprintf in start (per port, as the port's data). */
struct lc_libc_port {
    int printed;
};

static struct lc_libc_port lc_libc_ports[16];
static int lc_libc_next;

static ErlDrvData lc_libc_start(ErlDrvPort port, char *command)
{
    struct lc_libc_port *p = &lc_libc_ports[lc_libc_next++ % 16];
    (void)port;
    p->printed = fprintf(stderr, "lc_libc_drv: start \"%s\"\r\n", command);
    fflush(stdout);
    return (ErlDrvData)p;
}

static ErlDrvSSizeT lc_libc_reply(const char *text, char **rbuf,
                                  ErlDrvSizeT rlen)
{
    size_t n = strlen(text);
    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

static const char *lc_libc_lookup(const char *name, size_t len)
{
    char **e;
    for (e = environ; e && *e; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    }
    return "unset";
}

static ErlDrvSSizeT lc_libc_control(ErlDrvData handle, unsigned int cmd,
                                    char *buf, ErlDrvSizeT len,
                                    char **rbuf, ErlDrvSizeT rlen)
{
    struct lc_libc_port *p = (struct lc_libc_port *)handle;
    char text[64];
    switch (cmd) {
    case 1:
        return lc_libc_reply(lc_libc_lookup(buf, len), rbuf, rlen);
    case 2:
        errno = 0;
        if (close(-1) == 0)
            return lc_libc_reply("closed", rbuf, rlen);
        return lc_libc_reply(erl_errno_id(errno), rbuf, rlen);
    case 3:
        snprintf(text, sizeof text, "%d %d %d", fileno(stdout), fileno(stderr),
                 p->printed);
        return lc_libc_reply(text, rbuf, rlen);
    default:
        return -1;
    }
}
