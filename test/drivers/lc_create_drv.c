/*
 * lc_create_drv: driver_create_port. A port opened with open_port creates
 * new ports of the same driver from its control callback; each created
 * port gets its own data (start is not called for it) and then behaves as
 * any port of the driver: it takes commands, emits output, fails and
 * closes. Port-level locking (ERL_DRV_FLAG_USE_PORT_LOCKING), so that the
 * creating callback manipulates a port whose lock is not its own.
 *
 * The created port is reported to the process that made the call as
 * {created, CreatedPort} (erl_drv_send_term to driver_caller), before the
 * control reply.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1 "Name"  driver_create_port(port, driver_caller(port), Name, New)
 *             -> "ok" | "invalid" (the invalid handle was returned)
 *   2 "Name"  as 1 with owner driver_connected(port)      -> same
 *   3         remembers driver_caller(port) as the saved pid -> "ok"
 *   4 "Name"  as 1 with the saved pid as owner              -> same
 *   5 "Name"  as 1, then driver_output(New, "early") in the same
 *             callback                                      -> same
 *   6 "Name"  as 1, then driver_failure_atom(New, "early_failure") in the
 *             same callback                                 -> same
 *   7         -> "{Tag,Flags}": "parent" or the name the port was created
 *             with, and get_port_flags(port)
 *   8         driver_failure_atom(port, "failed")           -> "ok"
 *   9         -> "Stops": created ports whose stop has run (one count per
 *             loaded copy of the driver)
 *  10 "N"     N ports created in this one callback as by 1, named "b1"
 *             ... "bN"                                     -> "Created"
 *
 * output: driver_output(port, "Tag:" ++ Data) (to the port's owner).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData create_start(ErlDrvPort port, char *command);
static void create_stop(ErlDrvData handle);
static void create_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT create_control(ErlDrvData handle, unsigned int op,
                                   char *buf, ErlDrvSizeT len,
                                   char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry create_entry = {
    NULL,                       /* init */
    create_start,
    create_stop,
    create_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_create_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    create_control,
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
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_create_drv) { return &create_entry; }

#define OP_CREATE           1
#define OP_CREATE_CONNECTED 2
#define OP_SAVE_CALLER      3
#define OP_CREATE_SAVED     4
#define OP_CREATE_OUTPUT    5
#define OP_CREATE_FAIL      6
#define OP_WHOAMI           7
#define OP_FAIL             8
#define OP_STOPS            9
#define OP_BURST            10

#define TAG_MAX 64

typedef struct {
    ErlDrvPort port;
    int created;
    char tag[TAG_MAX];
    ErlDrvTermData saved;       /* the pid op 3 remembered */
} CreateData;

/* Created ports whose stop has run. */
static int created_stops = 0;

static CreateData *new_data(const char *tag, size_t len)
{
    CreateData *d = driver_alloc(sizeof(CreateData));
    if (d == NULL)
        return NULL;
    memset(d, 0, sizeof(CreateData));
    if (len >= TAG_MAX)
        len = TAG_MAX - 1;
    memcpy(d->tag, tag, len);
    return d;
}

static ErlDrvData create_start(ErlDrvPort port, char *command)
{
    CreateData *d = new_data("parent", 6);
    (void) command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    return (ErlDrvData) d;
}

static void create_stop(ErlDrvData handle)
{
    CreateData *d = (CreateData *) handle;
    if (d->created)
        created_stops++;
    driver_free(d);
}

static void create_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    CreateData *d = (CreateData *) handle;
    char out[TAG_MAX + 256];
    size_t tag_len = strlen(d->tag);
    if (len > 255)
        len = 255;
    memcpy(out, d->tag, tag_len);
    out[tag_len] = ':';
    memcpy(out + tag_len + 1, buf, len);
    driver_output(d->port, out, tag_len + 1 + len);
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);
    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT) n;
}

/* Creates a port owned by `owner`, named by the control argument, and
 * tells the caller about it. Returns the new handle, or NULL after
 * replying "invalid". */
static ErlDrvPort create(CreateData *d, ErlDrvTermData owner,
                         char *buf, ErlDrvSizeT len)
{
    char name[TAG_MAX];
    CreateData *nd;
    ErlDrvPort np;
    ErlDrvTermData spec[] = {
        ERL_DRV_ATOM, 0,
        ERL_DRV_PORT, 0,
        ERL_DRV_TUPLE, 2
    };

    if (len >= TAG_MAX)
        len = TAG_MAX - 1;
    memcpy(name, buf, len);
    name[len] = '\0';
    nd = new_data(name, len);
    if (nd == NULL)
        return NULL;
    nd->created = 1;
    np = driver_create_port(d->port, owner, name, (ErlDrvData) nd);
    if (np == (ErlDrvPort) -1 || np == NULL) {
        driver_free(nd);
        return NULL;
    }
    nd->port = np;
    spec[1] = driver_mk_atom("created");
    spec[3] = driver_mk_port(np);
    erl_drv_send_term(driver_mk_port(d->port), driver_caller(d->port),
                      spec, sizeof(spec) / sizeof(spec[0]));
    return np;
}

static ErlDrvSSizeT create_control(ErlDrvData handle, unsigned int op,
                                   char *buf, ErlDrvSizeT len,
                                   char **rbuf, ErlDrvSizeT rlen)
{
    CreateData *d = (CreateData *) handle;
    char text[TAG_MAX + 32];
    ErlDrvPort np;

    switch (op) {
    case OP_CREATE:
        np = create(d, driver_caller(d->port), buf, len);
        return reply(rbuf, rlen, np ? "ok" : "invalid");
    case OP_CREATE_CONNECTED:
        np = create(d, driver_connected(d->port), buf, len);
        return reply(rbuf, rlen, np ? "ok" : "invalid");
    case OP_SAVE_CALLER:
        d->saved = driver_caller(d->port);
        return reply(rbuf, rlen, "ok");
    case OP_CREATE_SAVED:
        np = create(d, d->saved, buf, len);
        return reply(rbuf, rlen, np ? "ok" : "invalid");
    case OP_CREATE_OUTPUT:
        np = create(d, driver_caller(d->port), buf, len);
        if (np)
            driver_output(np, "early", 5);
        return reply(rbuf, rlen, np ? "ok" : "invalid");
    case OP_CREATE_FAIL:
        np = create(d, driver_caller(d->port), buf, len);
        if (np)
            driver_failure_atom(np, "early_failure");
        return reply(rbuf, rlen, np ? "ok" : "invalid");
    case OP_WHOAMI:
        snprintf(text, sizeof(text), "{\"%s\",%d}", d->tag, get_port_flags(d->port));
        return reply(rbuf, rlen, text);
    case OP_FAIL:
        driver_failure_atom(d->port, "failed");
        return reply(rbuf, rlen, "ok");
    case OP_BURST: {
        int i, n, created = 0;
        char name[16];
        if (len >= sizeof(text))
            len = sizeof(text) - 1;
        memcpy(text, buf, len);
        text[len] = '\0';
        n = atoi(text);
        for (i = 1; i <= n; i++) {
            snprintf(name, sizeof(name), "b%d", i);
            if (create(d, driver_caller(d->port), name, strlen(name)))
                created++;
        }
        snprintf(text, sizeof(text), "%d", created);
        return reply(rbuf, rlen, text);
    }
    case OP_STOPS:
        snprintf(text, sizeof(text), "%d", created_stops);
        return reply(rbuf, rlen, text);
    default:
        return -1;
    }
}
