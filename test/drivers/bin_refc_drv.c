/*
 * bin_refc_drv: driver binaries and their reference count.
 *
 * The port keeps one binary of its own (`kept', made with OP_ALLOC) and
 * the binaries of the last outputv call (`vec', each with a reference
 * taken by driver_binary_inc_refc). port_control operations work on them
 * and reply with Erlang terms written as text; OP_BIN_REPLY and
 * OP_BIN_SMALL reply in binary mode instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData bin_start(ErlDrvPort port, char *command);
static void bin_stop(ErlDrvData handle);
static void bin_outputv(ErlDrvData handle, ErlIOVec *ev);
static ErlDrvSSizeT bin_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry bin_entry = {
    NULL,                           /* init */
    bin_start,
    bin_stop,
    NULL,                           /* output: outputv is used */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "bin_refc_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    bin_control,
    NULL,                           /* timeout */
    bin_outputv,
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

DRIVER_INIT(bin_refc_drv) { return &bin_entry; }

/* Operations (port_control command numbers). */
#define OP_ALLOC      1   /* "N": kept = driver_alloc_binary(N) -> refc */
#define OP_REFC       2   /* refc of kept (-1 when none) */
#define OP_OUTPUT     3   /* "OFF LEN": driver_output_binary of kept -> {Rc, Refc} */
#define OP_INC        4   /* driver_binary_inc_refc(kept) */
#define OP_DEC        5   /* driver_binary_dec_refc(kept) */
#define OP_REALLOC    6   /* "N": driver_realloc_binary -> {Refc, Size, DataKept} */
#define OP_FREE       7   /* driver_free_binary(kept) -> refc before; forgets kept at 1 */
#define OP_BIN_REPLY  8   /* "N": binary-mode reply in a new driver binary */
#define OP_BIN_SMALL  9   /* "N": binary-mode reply in the default buffer */
#define OP_VEC_INFO  10   /* the binaries kept from outputv */
#define OP_VEC_FREE  11   /* driver_free_binary on them -> refcs before */
#define OP_OUTPUT_HDR 12  /* "OFF LEN": as OP_OUTPUT with the header "hd" */
#define OP_FREE_TWICE 13  /* driver_free_binary(kept) twice: a double free */
#define OP_TERM      14   /* "OFF LEN": erl_drv_output_term {Port, Part of kept} -> {Rc, Refc} */

#define VEC_MAX 16

typedef struct {
    ErlDrvBinary *bin;
    ErlDrvSizeT offset;   /* of the iov in bin */
    ErlDrvSizeT len;
    ErlDrvSInt refc_in_callback;   /* before our inc_refc */
    ErlDrvSInt refc_after_inc;
} vec_entry;

typedef struct {
    ErlDrvPort port;
    ErlDrvBinary *kept;
    int vec_size;       /* ev->size of the last outputv */
    int vec_vsize;      /* ev->vsize of the last outputv */
    int nvec;
    vec_entry vec[VEC_MAX];
} bin_data;

static void fill(ErlDrvBinary *bin, ErlDrvSizeT from, ErlDrvSizeT to)
{
    ErlDrvSizeT i;
    for (i = from; i < to; i++)
        bin->orig_bytes[i] = (char)('a' + i % 26);
}

static int filled(const ErlDrvBinary *bin, ErlDrvSizeT n)
{
    ErlDrvSizeT i;
    for (i = 0; i < n; i++)
        if (bin->orig_bytes[i] != (char)('a' + i % 26))
            return 0;
    return 1;
}

static void release_vec(bin_data *d)
{
    int i;
    for (i = 0; i < d->nvec; i++)
        driver_free_binary(d->vec[i].bin);
    d->nvec = 0;
}

static ErlDrvData bin_start(ErlDrvPort port, char *command)
{
    bin_data *d = driver_alloc(sizeof(bin_data));
    (void)command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof *d);
    d->port = port;
    return (ErlDrvData)d;
}

static void bin_stop(ErlDrvData handle)
{
    bin_data *d = (bin_data *)handle;
    release_vec(d);
    if (d->kept != NULL)
        driver_free_binary(d->kept);
    driver_free(d);
}

/* Keeps a reference to every binary of the vector. */
static void bin_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    bin_data *d = (bin_data *)handle;
    int i;
    release_vec(d);
    d->vec_size = (int)ev->size;
    d->vec_vsize = ev->vsize;
    for (i = 0; i < ev->vsize && d->nvec < VEC_MAX; i++) {
        vec_entry *e = &d->vec[d->nvec];
        ErlDrvBinary *bin = ev->binv[i];
        if (bin == NULL)
            continue;
        e->bin = bin;
        e->offset = (ErlDrvSizeT)((char *)ev->iov[i].iov_base - bin->orig_bytes);
        e->len = ev->iov[i].iov_len;
        e->refc_in_callback = driver_binary_get_refc(bin);
        e->refc_after_inc = driver_binary_inc_refc(bin);
        d->nvec++;
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

static void vec_info(bin_data *d, char *out)
{
    char *o = out;
    int i;
    o += sprintf(o, "{%d,%d,[", d->vec_size, d->vec_vsize);
    for (i = 0; i < d->nvec; i++) {
        vec_entry *e = &d->vec[i];
        char first[5] = {0, 0, 0, 0, 0};
        memcpy(first, e->bin->orig_bytes + e->offset, e->len < 4 ? e->len : 4);
        o += sprintf(o, "%s{%lu,%ld,%ld,%ld,%ld,\"%s\"}", i ? "," : "",
                     (unsigned long)e->len, (long)e->bin->orig_size,
                     (long)e->refc_in_callback, (long)e->refc_after_inc,
                     (long)driver_binary_get_refc(e->bin), first);
    }
    sprintf(o, "]}");
}

static void vec_free(bin_data *d, char *out)
{
    char *o = out;
    int i;
    o += sprintf(o, "[");
    for (i = 0; i < d->nvec; i++)
        o += sprintf(o, "%s%ld", i ? "," : "", (long)driver_binary_get_refc(d->vec[i].bin));
    sprintf(o, "]");
    release_vec(d);
}

/* {Port, Binary} with the part OFF LEN of kept (ERL_DRV_BINARY) to the
 * connected process. */
static void output_kept_term(bin_data *d, const char *arg, char *out)
{
    unsigned long off = 0, len = 0;
    int rc;
    ErlDrvTermData spec[8];
    if (d->kept == NULL || sscanf(arg, "%lu %lu", &off, &len) != 2) {
        strcpy(out, "{error,args}");
        return;
    }
    spec[0] = ERL_DRV_PORT;
    spec[1] = driver_mk_port(d->port);
    spec[2] = ERL_DRV_BINARY;
    spec[3] = (ErlDrvTermData) d->kept;
    spec[4] = (ErlDrvTermData) len;
    spec[5] = (ErlDrvTermData) off;
    spec[6] = ERL_DRV_TUPLE;
    spec[7] = 2;
    rc = erl_drv_output_term(driver_mk_port(d->port), spec, 8);
    sprintf(out, "{%d,%ld}", rc, (long)driver_binary_get_refc(d->kept));
}

static void output_kept(bin_data *d, const char *arg, char *hdr, ErlDrvSizeT hlen, char *out)
{
    unsigned long off = 0, len = 0;
    int rc;
    if (d->kept == NULL || sscanf(arg, "%lu %lu", &off, &len) != 2) {
        strcpy(out, "{error,args}");
        return;
    }
    rc = driver_output_binary(d->port, hdr, hlen, d->kept, off, len);
    sprintf(out, "{%d,%ld}", rc, (long)driver_binary_get_refc(d->kept));
}

static void realloc_kept(bin_data *d, ErlDrvSizeT n, char *out)
{
    ErlDrvSizeT old = (ErlDrvSizeT)d->kept->orig_size;
    ErlDrvBinary *bin = driver_realloc_binary(d->kept, n);
    if (bin == NULL) {
        strcpy(out, "{error,realloc}");
        return;
    }
    d->kept = bin;
    sprintf(out, "{%ld,%ld,%s}", (long)driver_binary_get_refc(bin), (long)bin->orig_size,
            filled(bin, old < n ? old : n) ? "true" : "false");
    if (n > old)
        fill(bin, old, n);
}

/* Binary-mode replies: a new driver binary whose reference erts takes over. */
static ErlDrvSSizeT bin_reply(ErlDrvSizeT n, char **rbuf)
{
    ErlDrvBinary *bin = driver_alloc_binary(n);
    if (bin == NULL)
        return -1;
    fill(bin, 0, n);
    *rbuf = (char *)bin;
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT small_reply(ErlDrvSizeT n, char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvSizeT i;
    if (n > rlen)
        return -1;
    for (i = 0; i < n; i++)
        (*rbuf)[i] = (char)('A' + i % 26);
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT bin_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    bin_data *d = (bin_data *)handle;
    char arg[64];
    char out[2048];
    ErlDrvSizeT n;
    if (len >= sizeof arg)
        len = sizeof arg - 1;
    memcpy(arg, buf, len);
    arg[len] = '\0';
    n = (ErlDrvSizeT)atol(arg);
    set_port_control_flags(d->port, (cmd == OP_BIN_REPLY || cmd == OP_BIN_SMALL)
                                        ? PORT_CONTROL_FLAG_BINARY : 0);
    if (((cmd != OP_ALLOC && cmd <= OP_FREE && cmd != OP_REFC) || cmd == OP_FREE_TWICE)
        && d->kept == NULL)
        return reply("{error,no_binary}", rbuf, rlen);
    switch (cmd) {
    case OP_ALLOC:
        if (d->kept != NULL)
            driver_free_binary(d->kept);
        d->kept = driver_alloc_binary(n);
        if (d->kept == NULL)
            return reply("{error,alloc}", rbuf, rlen);
        fill(d->kept, 0, n);
        sprintf(out, "%ld", (long)driver_binary_get_refc(d->kept));
        break;
    case OP_REFC:
        sprintf(out, "%ld", d->kept == NULL ? -1L : (long)driver_binary_get_refc(d->kept));
        break;
    case OP_OUTPUT:
        output_kept(d, arg, NULL, 0, out);
        break;
    case OP_TERM:
        output_kept_term(d, arg, out);
        break;
    case OP_OUTPUT_HDR:
        output_kept(d, arg, "hd", 2, out);
        break;
    case OP_INC:
        sprintf(out, "%ld", (long)driver_binary_inc_refc(d->kept));
        break;
    case OP_DEC:
        sprintf(out, "%ld", (long)driver_binary_dec_refc(d->kept));
        break;
    case OP_REALLOC:
        realloc_kept(d, n, out);
        break;
    case OP_FREE: {
        ErlDrvSInt before = driver_binary_get_refc(d->kept);
        driver_free_binary(d->kept);
        if (before == 1)
            d->kept = NULL;
        sprintf(out, "%ld", (long)before);
        break;
    }
    case OP_FREE_TWICE: {
        /* A driver bug on purpose: the second call gets freed memory. Only
         * the compat side runs this (natively it is undefined behaviour). */
        ErlDrvBinary *bin = d->kept;
        ErlDrvBinary *volatile again = bin;   /* hides the bug from -Wuse-after-free */
        d->kept = NULL;
        driver_free_binary(bin);
        driver_free_binary(again);
        strcpy(out, "freed_twice");
        break;
    }
    case OP_BIN_REPLY:
        return bin_reply(n, rbuf);
    case OP_BIN_SMALL:
        return small_reply(n, rbuf, rlen);
    case OP_VEC_INFO:
        vec_info(d, out);
        break;
    case OP_VEC_FREE:
        vec_free(d, out);
        break;
    default:
        return -1;
    }
    return reply(out, rbuf, rlen);
}
