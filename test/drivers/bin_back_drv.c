/*
 * bin_back_drv: a driver binary that comes back from Erlang.
 *
 * OP_SEND sends a binary of the driver's own with driver_output_binary
 * (all of it, or a part); the test sends the received binary back with
 * port_command, and outputv records what the vector's binaries are:
 * whether a segment's ErlDrvBinary is the driver's own binary, the
 * segment's offset in it and the reference counts. OP_INFO replies with
 * that record as an Erlang term written as text. After OP_MISFREE the
 * next outputv frees the vector's first binary without having taken a
 * reference to it (a driver bug: it frees the sender's binary).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData back_start(ErlDrvPort port, char *command);
static void back_stop(ErlDrvData handle);
static void back_outputv(ErlDrvData handle, ErlIOVec *ev);
static ErlDrvSSizeT back_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry back_entry = {
    NULL,                           /* init */
    back_start,
    back_stop,
    NULL,                           /* output: outputv is used */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "bin_back_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    back_control,
    NULL,                           /* timeout */
    back_outputv,
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

DRIVER_INIT(bin_back_drv) { return &back_entry; }

/* Operations (port_control command numbers). */
#define OP_SEND  1   /* "SIZE OFF LEN": new own binary, driver_output_binary -> refc */
#define OP_INFO  2   /* what the last outputv saw */
#define OP_REFC  3   /* refc of the own binary */
#define OP_MISFREE 4 /* the next outputv calls driver_free_binary(binv[i]) */

#define SEGS_MAX 8

typedef struct {
    int own;                  /* binv[i] is the driver's own binary */
    long offset;              /* iov_base - binv[i]->orig_bytes */
    unsigned long len;
    long refc;                /* driver_binary_get_refc(binv[i]) in outputv */
} seg_info;

typedef struct {
    ErlDrvPort port;
    ErlDrvBinary *own;
    int misfree;
    int nsegs;
    seg_info segs[SEGS_MAX];
} back_data;

static ErlDrvData back_start(ErlDrvPort port, char *command)
{
    back_data *d = driver_alloc(sizeof(back_data));
    (void)command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(*d));
    d->port = port;
    set_port_control_flags(port, 0);
    return (ErlDrvData)d;
}

static void back_stop(ErlDrvData handle)
{
    back_data *d = (back_data *)handle;
    if (d->own != NULL)
        driver_free_binary(d->own);
    driver_free(d);
}

static void back_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    back_data *d = (back_data *)handle;
    int i;
    d->nsegs = 0;
    for (i = 0; i < ev->vsize && d->nsegs < SEGS_MAX; i++) {
        ErlDrvBinary *bin = ev->binv[i];
        seg_info *s;
        if (bin == NULL)
            continue;
        s = &d->segs[d->nsegs++];
        s->own = bin == d->own;
        s->offset = (long)((char *)ev->iov[i].iov_base - bin->orig_bytes);
        s->len = (unsigned long)ev->iov[i].iov_len;
        s->refc = (long)driver_binary_get_refc(bin);
        if (d->misfree) {
            d->misfree = 0;
            driver_free_binary(bin);
        }
    }
}

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

static ErlDrvSSizeT back_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    back_data *d = (back_data *)handle;
    char arg[64];
    char out[512];
    char *o = out;
    unsigned long size = 0, off = 0, n = 0, i;
    int k;

    if (len >= sizeof(arg))
        return -1;
    memcpy(arg, buf, len);
    arg[len] = '\0';

    switch (cmd) {
    case OP_SEND:
        if (sscanf(arg, "%lu %lu %lu", &size, &off, &n) != 3 || off + n > size)
            return -1;
        if (d->own != NULL)
            driver_free_binary(d->own);
        d->own = driver_alloc_binary(size);
        if (d->own == NULL)
            return -1;
        for (i = 0; i < size; i++)
            d->own->orig_bytes[i] = (char)('a' + i % 26);
        driver_output_binary(d->port, NULL, 0, d->own, off, n);
        sprintf(out, "%ld", (long)driver_binary_get_refc(d->own));
        return reply(out, rbuf, rlen);
    case OP_INFO:
        o += sprintf(o, "[");
        for (k = 0; k < d->nsegs; k++) {
            seg_info *s = &d->segs[k];
            o += sprintf(o, "%s{%s,%ld,%lu,%ld}", k ? "," : "",
                         s->own ? "true" : "false", s->offset, s->len, s->refc);
        }
        sprintf(o, "]");
        return reply(out, rbuf, rlen);
    case OP_MISFREE:
        d->misfree = 1;
        return reply("ok", rbuf, rlen);
    case OP_REFC:
        sprintf(out, "%ld", d->own ? (long)driver_binary_get_refc(d->own) : -1L);
        return reply(out, rbuf, rlen);
    default:
        return -1;
    }
}
