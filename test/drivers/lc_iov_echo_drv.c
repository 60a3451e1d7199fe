/* lc_iov_echo_drv: echoes the ErlIOVec handed to outputv() with
 * driver_outputv() and records the layout of the vector it received.
 *
 * port_control(P, 1, "H S E"): later echoes use a header of H bytes
 *   ("ABC..."; 0 = NULL header) and skip S bytes; H = -1 turns the echo
 *   off (the layout is still recorded). E = 1 echoes a copy of the
 *   vector with an empty segment (NULL base and binary) after each
 *   segment instead of the vector itself. Replies "ok".
 * port_control(P, 2, ""): the layout of the last vector, as Erlang term
 *   text {Size, Vsize, [{Len, Class, Offset, Mine}], Changed}:
 *   Class -1 when binv[i] is NULL, else the index of the first element
 *   with the same binv; Offset = iov_base - binv[i]->orig_bytes (-1 when
 *   NULL); Mine = 1 when binv[i] is the binary this driver last sent with
 *   control 3; Changed = number of elements whose iov_base/iov_len the
 *   echo (driver_outputv) changed.
 * port_control(P, 3, "N"): sends an N-byte driver binary ("abc...") with
 *   driver_output_binary and keeps a reference to it. Replies "ok". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData iov_echo_start(ErlDrvPort port, char *command);
static void iov_echo_stop(ErlDrvData handle);
static void iov_echo_outputv(ErlDrvData handle, ErlIOVec *ev);
static ErlDrvSSizeT iov_echo_control(ErlDrvData handle, unsigned int op,
                                     char *buf, ErlDrvSizeT len,
                                     char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry iov_echo_entry = {
    NULL,                       /* init */
    iov_echo_start,
    iov_echo_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_iov_echo_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    iov_echo_control,
    NULL,                       /* timeout */
    iov_echo_outputv,
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

DRIVER_INIT(lc_iov_echo_drv) { return &iov_echo_entry; }

#define HEADER_MAX 26

typedef struct {
    ErlDrvPort port;
    long hlen;                  /* -1: no echo */
    unsigned long skip;
    int pad;                    /* echo with empty segments in between */
    char *layout;               /* driver_alloc'ed text, NUL-terminated */
    ErlDrvBinary *sent;         /* last binary sent with control 3 */
} iov_echo;

static ErlDrvData iov_echo_start(ErlDrvPort port, char *command)
{
    iov_echo *st = driver_alloc(sizeof(iov_echo));
    (void)command;
    if (st == NULL)
        return ERL_DRV_ERROR_GENERAL;
    st->port = port;
    st->hlen = 0;
    st->skip = 0;
    st->pad = 0;
    st->layout = NULL;
    st->sent = NULL;
    return (ErlDrvData)st;
}

static void iov_echo_stop(ErlDrvData handle)
{
    iov_echo *st = (iov_echo *)handle;
    if (st->layout != NULL)
        driver_free(st->layout);
    if (st->sent != NULL)
        driver_free_binary(st->sent);
    driver_free(st);
}

static int class_of(ErlIOVec *ev, int i)
{
    int j;
    if (ev->binv[i] == NULL)
        return -1;
    for (j = 0; j < i; j++)
        if (ev->binv[j] == ev->binv[i])
            return j;
    return i;
}

static void record_layout(iov_echo *st, ErlIOVec *ev)
{
    size_t cap = 64 + 80 * (size_t)ev->vsize;
    char *text = driver_alloc(cap);
    size_t n;
    int i;

    if (text == NULL)
        return;
    n = (size_t)sprintf(text, "{%lu,%d,[", (unsigned long)ev->size, ev->vsize);
    for (i = 0; i < ev->vsize; i++) {
        ErlDrvBinary *bin = ev->binv[i];
        long offset = -1;
        if (bin != NULL)
            offset = (long)((char *)ev->iov[i].iov_base - bin->orig_bytes);
        n += (size_t)sprintf(text + n, "%s{%lu,%d,%ld,%d}", i ? "," : "",
                             (unsigned long)ev->iov[i].iov_len,
                             class_of(ev, i), offset,
                             bin != NULL && bin == st->sent);
    }
    sprintf(text + n, "]");
    if (st->layout != NULL)
        driver_free(st->layout);
    st->layout = text;
}

/* A copy of ev with an empty segment after each segment; NULL when out of
 * memory. Free with driver_free (one block). */
static ErlIOVec *padded_copy(ErlIOVec *ev)
{
    int n = 2 * ev->vsize, i;
    ErlIOVec *pv = driver_alloc(sizeof(ErlIOVec) + (size_t)n
                                * (sizeof(SysIOVec) + sizeof(ErlDrvBinary *)));
    if (pv == NULL)
        return NULL;
    pv->vsize = n;
    pv->size = ev->size;
    pv->iov = (SysIOVec *)(pv + 1);
    pv->binv = (ErlDrvBinary **)(pv->iov + n);
    for (i = 0; i < ev->vsize; i++) {
        pv->iov[2 * i] = ev->iov[i];
        pv->binv[2 * i] = ev->binv[i];
        pv->iov[2 * i + 1].iov_base = NULL;
        pv->iov[2 * i + 1].iov_len = 0;
        pv->binv[2 * i + 1] = NULL;
    }
    return pv;
}

static void iov_echo_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    iov_echo *st = (iov_echo *)handle;
    char header[HEADER_MAX];
    ErlIOVec *out = ev;
    SysIOVec *before;
    int i, changed = 0;
    size_t n;

    record_layout(st, ev);
    if (st->hlen < 0 || st->layout == NULL)
        return;
    if (st->pad) {
        out = padded_copy(ev);
        if (out == NULL)
            return;
    }
    before = driver_alloc(sizeof(SysIOVec) * ((size_t)out->vsize + 1));
    if (before == NULL) {
        if (out != ev)
            driver_free(out);
        return;
    }
    for (i = 0; i < out->vsize; i++)
        before[i] = out->iov[i];
    for (i = 0; i < HEADER_MAX; i++)
        header[i] = (char)('A' + i);
    driver_outputv(st->port, st->hlen > 0 ? header : NULL,
                   (ErlDrvSizeT)st->hlen, out, (ErlDrvSizeT)st->skip);
    for (i = 0; i < out->vsize; i++)
        if (before[i].iov_base != out->iov[i].iov_base
            || before[i].iov_len != out->iov[i].iov_len)
            changed++;
    driver_free(before);
    if (out != ev)
        driver_free(out);
    /* Append ",Changed}" to the layout text. */
    n = strlen(st->layout);
    {
        char *text = driver_realloc(st->layout, n + 16);
        if (text == NULL)
            return;
        sprintf(text + n, ",%d}", changed);
        st->layout = text;
    }
}

static ErlDrvSSizeT reply(const char *text, char **rbuf, ErlDrvSizeT rlen)
{
    size_t len = strlen(text);
    if (len > rlen) {
        char *buf = driver_alloc(len);
        if (buf == NULL)
            return -1;
        *rbuf = buf;
    }
    memcpy(*rbuf, text, len);
    return (ErlDrvSSizeT)len;
}

static ErlDrvSSizeT iov_echo_control(ErlDrvData handle, unsigned int op,
                                     char *buf, ErlDrvSizeT len,
                                     char **rbuf, ErlDrvSizeT rlen)
{
    iov_echo *st = (iov_echo *)handle;
    char arg[64];
    long a = 0;
    unsigned long b = 0;
    int c = 0;

    if (len >= sizeof(arg))
        return -1;
    memcpy(arg, buf, len);
    arg[len] = '\0';
    switch (op) {
    case 1:
        if (sscanf(arg, "%ld %lu %d", &a, &b, &c) != 3 || a > HEADER_MAX)
            return -1;
        st->hlen = a;
        st->skip = b;
        st->pad = c;
        return reply("ok", rbuf, rlen);
    case 2:
        if (st->layout == NULL)
            return reply("none", rbuf, rlen);
        if (st->hlen < 0) {
            /* No echo ran: close the term as the echo path does. */
            size_t n = strlen(st->layout);
            char *text = driver_realloc(st->layout, n + 8);
            if (text == NULL)
                return -1;
            if (text[n - 1] == ']')
                sprintf(text + n, ",0}");
            st->layout = text;
        }
        return reply(st->layout, rbuf, rlen);
    case 3: {
        ErlDrvBinary *bin;
        long i;
        if (sscanf(arg, "%ld", &a) != 1 || a < 0)
            return -1;
        bin = driver_alloc_binary((ErlDrvSizeT)a);
        if (bin == NULL)
            return -1;
        for (i = 0; i < a; i++)
            bin->orig_bytes[i] = (char)('a' + i % 26);
        if (st->sent != NULL)
            driver_free_binary(st->sent);
        st->sent = bin;
        driver_output_binary(st->port, NULL, 0, bin, 0, (ErlDrvSizeT)a);
        return reply("ok", rbuf, rlen);
    }
    default:
        return -1;
    }
}
