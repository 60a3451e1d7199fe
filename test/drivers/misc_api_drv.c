/*
 * misc_api_drv: the miscellaneous API functions — memory, system info,
 * errno names, term data handles and the environment.
 *
 * Everything is driven by port_control/3; the operation is the command
 * number and its arguments are text in the data. Replies are Erlang terms
 * written as text (without the final dot), so that the test can parse them
 * and compare the native and the compat replies field by field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData misc_start(ErlDrvPort port, char *command);
static void misc_stop(ErlDrvData handle);
static ErlDrvSSizeT misc_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry misc_entry = {
    NULL,                           /* init */
    misc_start,
    misc_stop,
    NULL,                           /* output */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "misc_api_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    misc_control,
    NULL,                           /* timeout */
    NULL,                           /* outputv */
    NULL,                           /* ready_async */
    NULL,                           /* flush */
    NULL,                           /* call */
    NULL,                           /* unused_event_callback */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                              /* driver_flags */
    NULL,                           /* handle2 */
    NULL,                           /* process_exit */
    NULL,                           /* stop_select */
    NULL                            /* emergency_close */
};

DRIVER_INIT(misc_api_drv) { return &misc_entry; }

/* Operations (port_control command numbers). */
#define OP_MEMORY    1   /* "N": alloc N, grow to 2N, shrink to N/2, free */
#define OP_SYSINFO   2   /* "SIZE": driver_system_info with that size */
#define OP_ERRNO     3   /* "E1 E2 ...": erl_errno_id of each */
#define OP_TERMS     4   /* ErlDrvTermData handles, see terms_reply() */
#define OP_GETENV    5   /* "KEY SIZE": erl_drv_getenv with a SIZE buffer */
#define OP_PUTENV    6   /* "KEY VALUE": erl_drv_putenv */
#define OP_TIMESLICE 7   /* "PERCENT MAX": erl_drv_consume_timeslice until 1 */

#define REPLY_MAX 2048

typedef struct {
    ErlDrvPort port;
    ErlDrvTermData port_term;   /* driver_mk_port in start */
    ErlDrvTermData owner;       /* driver_connected in start */
    ErlDrvTermData opener;      /* driver_caller in start */
} misc_data;

/* driver_mk_atom("foo") of the first OP_TERMS call, for the stability check. */
static ErlDrvTermData first_foo;

static ErlDrvData misc_start(ErlDrvPort port, char *command)
{
    misc_data *d = driver_alloc(sizeof(misc_data));
    (void)command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    d->port_term = driver_mk_port(port);
    d->owner = driver_connected(port);
    d->opener = driver_caller(port);
    return (ErlDrvData)d;
}

static void misc_stop(ErlDrvData handle)
{
    driver_free(handle);
}

/* Copies `text' into the reply buffer, allocating a bigger one if needed. */
static ErlDrvSSizeT reply(const char *text, char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvSizeT n = strlen(text);
    if (n > rlen) {
        *rbuf = driver_alloc(n);
        if (*rbuf == NULL)
            return -1;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

/* The control data as a NUL-terminated string (at most size - 1 bytes). */
static void args(char *dst, size_t size, const char *buf, ErlDrvSizeT len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, buf, len);
    dst[len] = '\0';
}

static int pattern_ok(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 1))
            return 0;
    return 1;
}

static void pattern_fill(unsigned char *p, size_t from, size_t to)
{
    size_t i;
    for (i = from; i < to; i++)
        p[i] = (unsigned char)(i * 7 + 1);
}

static void memory_reply(size_t n, char *out)
{
    unsigned char *p = driver_alloc(n);
    unsigned char *q;
    if (p == NULL) {
        strcpy(out, "{error,alloc}");
        return;
    }
    if (((size_t)p % 8) != 0) {
        driver_free(p);
        strcpy(out, "{error,unaligned}");
        return;
    }
    pattern_fill(p, 0, n);
    q = driver_realloc(p, 2 * n);
    if (q == NULL) {
        driver_free(p);
        strcpy(out, "{error,grow}");
        return;
    }
    if (!pattern_ok(q, n)) {
        driver_free(q);
        strcpy(out, "{error,grow_lost_data}");
        return;
    }
    pattern_fill(q, n, 2 * n);
    p = driver_realloc(q, n / 2);
    if (p == NULL) {
        driver_free(q);
        strcpy(out, "{error,shrink}");
        return;
    }
    if (!pattern_ok(p, n / 2)) {
        driver_free(p);
        strcpy(out, "{error,shrink_lost_data}");
        return;
    }
    driver_free(p);
    strcpy(out, "ok");
}

/* A field is reported as `untouched' when it still holds the fill byte. */
#define SENTINEL 0xA5

static int untouched(const void *field, size_t size)
{
    const unsigned char *p = field;
    size_t i;
    for (i = 0; i < size; i++)
        if (p[i] != SENTINEL)
            return 0;
    return 1;
}

static char *put_int(char *o, const char *name, const int *field)
{
    if (untouched(field, sizeof *field))
        return o + sprintf(o, "{%s,untouched},", name);
    return o + sprintf(o, "{%s,%d},", name, *field);
}

static char *put_str(char *o, const char *name, char *const *field)
{
    if (untouched(field, sizeof *field))
        return o + sprintf(o, "{%s,untouched},", name);
    if (*field == NULL)
        return o + sprintf(o, "{%s,null},", name);
    return o + sprintf(o, "{%s,\"%.40s\"},", name, *field);
}

static void sysinfo_reply(size_t size, char *out)
{
    ErlDrvSysInfo si;
    char *o = out;
    if (size > sizeof si)
        size = sizeof si;
    memset(&si, SENTINEL, sizeof si);
    driver_system_info(&si, size);
    o += sprintf(o, "[");
    o = put_int(o, "driver_major_version", &si.driver_major_version);
    o = put_int(o, "driver_minor_version", &si.driver_minor_version);
    o = put_str(o, "erts_version", &si.erts_version);
    o = put_str(o, "otp_release", &si.otp_release);
    o = put_int(o, "thread_support", &si.thread_support);
    o = put_int(o, "smp_support", &si.smp_support);
    o = put_int(o, "async_threads", &si.async_threads);
    o = put_int(o, "scheduler_threads", &si.scheduler_threads);
    o = put_int(o, "nif_major_version", &si.nif_major_version);
    o = put_int(o, "nif_minor_version", &si.nif_minor_version);
    o = put_int(o, "dirty_scheduler_support", &si.dirty_scheduler_support);
    sprintf(o - 1, "]");
}

static void errno_reply(char *list, char *out)
{
    char *o = out;
    char *tok = strtok(list, " ");
    o += sprintf(o, "[");
    while (tok != NULL) {
        char *id = erl_errno_id(atoi(tok));
        o += sprintf(o, "'%.40s',", id == NULL ? "NULL" : id);
        tok = strtok(NULL, " ");
    }
    if (o[-1] == ',')
        o--;
    sprintf(o, "]");
}

static const char *boolean(int b) { return b ? "true" : "false"; }

/* Raw ErlDrvTermData values are only compared; their low tag bits are
 * reported (port 0x7, pid 0x3, atom 0x0B in the BEAM's encoding). */
static void terms_reply(misc_data *d, char *out)
{
    ErlDrvTermData port1 = driver_mk_port(d->port);
    ErlDrvTermData port2 = driver_mk_port(d->port);
    ErlDrvTermData foo1 = driver_mk_atom("foo");
    ErlDrvTermData foo2 = driver_mk_atom("foo");
    ErlDrvTermData bar = driver_mk_atom("bar");
    ErlDrvTermData connected = driver_connected(d->port);
    ErlDrvTermData caller = driver_caller(d->port);
    ErlDrvTermData nil = driver_mk_term_nil();
    int first_call = first_foo == 0;
    if (first_call)
        first_foo = foo1;
    sprintf(out,
            "[{port_eq,%s},{port_tag,%lu},{port_same_as_start,%s},"
            "{atom_eq,%s},{atom_ne,%s},{atom_tag,%lu},{atom_same_as_first,%s},"
            "{connected_tag,%lu},{caller_tag,%lu},"
            "{caller_is_connected,%s},{connected_is_start_owner,%s},"
            "{caller_is_start_caller,%s},{opener_is_owner,%s},{nil,%lu}]",
            boolean(port1 == port2), (unsigned long)(port1 & 0xF),
            boolean(port1 == d->port_term),
            boolean(foo1 == foo2), boolean(foo1 != bar), (unsigned long)(foo1 & 0x3F),
            boolean(first_call || foo1 == first_foo),
            (unsigned long)(connected & 0xF), (unsigned long)(caller & 0xF),
            boolean(caller == connected), boolean(connected == d->owner),
            boolean(caller == d->opener), boolean(d->opener == d->owner),
            (unsigned long)nil);
}

static void getenv_reply(char *arg, char *out)
{
    char value[256];
    char key[128];
    unsigned long size = 0;
    size_t value_size;
    int rc;
    if (sscanf(arg, "%127s %lu", key, &size) != 2 || size > sizeof value) {
        strcpy(out, "{error,args}");
        return;
    }
    memset(value, 0, sizeof value);
    value_size = size;
    rc = erl_drv_getenv(key, value, &value_size);
    if (rc == 0)
        sprintf(out, "{%d,%lu,\"%.200s\"}", rc, (unsigned long)value_size, value);
    else
        sprintf(out, "{%d,%lu,none}", rc < 0 ? -1 : rc, (unsigned long)value_size);
}

static void putenv_reply(char *arg, char *out)
{
    char *space = strchr(arg, ' ');
    if (space == NULL) {
        strcpy(out, "{error,args}");
        return;
    }
    *space = '\0';
    sprintf(out, "%d", erl_drv_putenv(arg, space + 1));
}

/* Calls erl_drv_consume_timeslice(port, percent) until it returns 1 (the
 * timeslice is used up) or `max' calls were made; replies the number of
 * calls, or {never, LastValue}. */
static void timeslice_reply(misc_data *d, const char *arg, char *out)
{
    int percent, max, calls, rc = 0;
    if (sscanf(arg, "%d %d", &percent, &max) != 2) {
        strcpy(out, "{error,args}");
        return;
    }
    for (calls = 1; calls <= max; calls++) {
        rc = erl_drv_consume_timeslice(d->port, percent);
        if (rc == 1) {
            sprintf(out, "%d", calls);
            return;
        }
    }
    sprintf(out, "{never,%d}", rc);
}

static ErlDrvSSizeT misc_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    misc_data *d = (misc_data *)handle;
    char arg[512];
    char out[REPLY_MAX];
    args(arg, sizeof arg, buf, len);
    switch (cmd) {
    case OP_MEMORY:
        memory_reply((size_t)atol(arg), out);
        break;
    case OP_SYSINFO:
        sysinfo_reply((size_t)atol(arg), out);
        break;
    case OP_ERRNO:
        errno_reply(arg, out);
        break;
    case OP_TERMS:
        terms_reply(d, out);
        break;
    case OP_GETENV:
        getenv_reply(arg, out);
        break;
    case OP_PUTENV:
        putenv_reply(arg, out);
        break;
    case OP_TIMESLICE:
        timeslice_reply(d, arg, out);
        break;
    default:
        return -1;
    }
    return reply(out, rbuf, rlen);
}
