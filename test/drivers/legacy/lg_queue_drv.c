/*
 * lg_queue_drv: seed-era (interface 1.5, int ABI) twin of lc_queue_drv,
 * written against the R13B/R14B manual's prototypes (int lengths, int
 * driver_deq/driver_sizeq/driver_peekqv results, the 24-byte ErlIOVec with
 * `int size') and compiled with -DERL_DRV_COMPAT_LEGACY_INT_API.
 *
 * It implements lc_queue_drv's single-port operations with the same
 * numbers and replies (see lc_queue_drv.c): 1 ENQ, 2 PUSHQ, 3 DEQ,
 * 4 SIZEQ, 6 PEEKQV, 7 ALLOC_KEPT, 8 ENQ_BIN, 9 PUSHQ_BIN, 12 OUTV_MODE,
 * 13 LAST_RC, 29 OUTPUT; port data (outputv) is queued with driver_enqv
 * or driver_pushqv; stop outputs "stop"; port_call echoes its argument (command 1 dequeues
 * everything first). Other operations return -1 (badarg).
 */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData q_start(ErlDrvPort port, char *command);
static void q_stop(ErlDrvData handle);
static void q_outputv(ErlDrvData handle, ErlIOVec *ev);
static int q_control(ErlDrvData handle, unsigned int cmd, char *buf,
                     int len, char **rbuf, int rlen);
static int q_call(ErlDrvData handle, unsigned int cmd, char *buf,
                  int len, char **rbuf, int rlen, unsigned int *flags);

static ErlDrvEntry q_entry = {
    NULL,                           /* init */
    q_start,
    q_stop,
    NULL,                           /* output: outputv is used */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "lg_queue_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    q_control,
    NULL,                           /* timeout */
    q_outputv,
    NULL,                           /* ready_async */
    NULL,                           /* flush */
    q_call,
    NULL,                           /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                              /* driver_flags: driver-level locking */
    NULL,                           /* handle2 */
    NULL,                           /* process_exit */
    NULL,                           /* stop_select */
    NULL                            /* emergency_close */
};

DRIVER_INIT(lg_queue_drv) { return &q_entry; }

#define OP_ENQ          1
#define OP_PUSHQ        2
#define OP_DEQ          3
#define OP_SIZEQ        4
#define OP_PEEKQV       6
#define OP_ALLOC_KEPT   7
#define OP_ENQ_BIN      8
#define OP_PUSHQ_BIN    9
#define OP_OUTV_MODE   12
#define OP_LAST_RC     13
#define OP_OUTPUT      29

typedef struct {
    ErlDrvPort port;
    ErlDrvBinary *kept;
    int outv_mode;
    int outv_skip;
    int last_rc;
    long last_size;
    int last_vsize;
} qstate;

static int reply(char **rbuf, int rlen, const char *text)
{
    int n = (int) strlen(text);
    if (n > rlen) {
        *rbuf = driver_alloc(n);
        if (*rbuf == NULL)
            return -1;
    }
    memcpy(*rbuf, text, n);
    return n;
}

static int reply_long(char **rbuf, int rlen, long v)
{
    char text[32];
    sprintf(text, "%ld", v);
    return reply(rbuf, rlen, text);
}

static int reply_pair(char **rbuf, int rlen, long a, long b)
{
    char text[64];
    sprintf(text, "{%ld,%ld}", a, b);
    return reply(rbuf, rlen, text);
}

static void put_bytes(char *text, size_t *pos, size_t cap, const char *p, size_t n)
{
    size_t i;
    *pos += snprintf(text + *pos, cap - *pos, "[");
    for (i = 0; i < n && *pos < cap; i++)
        *pos += snprintf(text + *pos, cap - *pos, i ? ",%u" : "%u",
                         (unsigned) (unsigned char) p[i]);
    if (*pos < cap)
        *pos += snprintf(text + *pos, cap - *pos, "]");
}

static ErlDrvData q_start(ErlDrvPort port, char *command)
{
    qstate *st = driver_alloc(sizeof(qstate));
    (void) command;
    if (st == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(st, 0, sizeof(*st));
    st->port = port;
    return (ErlDrvData) st;
}

static void q_stop(ErlDrvData handle)
{
    qstate *st = (qstate *) handle;
    driver_output(st->port, "stop", 4);
    if (st->kept != NULL)
        driver_free_binary(st->kept);
    driver_free(st);
}

static void q_outputv(ErlDrvData handle, ErlIOVec *ev)
{
    qstate *st = (qstate *) handle;
    st->last_size = (long) ev->size;
    st->last_vsize = ev->vsize;
    if (st->outv_mode == 0)
        st->last_rc = driver_enqv(st->port, ev, st->outv_skip);
    else if (st->outv_mode == 1)
        st->last_rc = driver_pushqv(st->port, ev, st->outv_skip);
}

static int q_call(ErlDrvData handle, unsigned int cmd, char *buf,
                  int len, char **rbuf, int rlen, unsigned int *flags)
{
    qstate *st = (qstate *) handle;
    (void) flags;
    if (cmd == 1)
        driver_deq(st->port, driver_sizeq(st->port));
    if (len > rlen) {
        *rbuf = driver_alloc(len);
        if (*rbuf == NULL)
            return -1;
    }
    memcpy(*rbuf, buf, len);
    return len;
}

static int peekqv_reply(qstate *st, char **rbuf, int rlen)
{
    ErlIOVec ev;
    int ret;
    size_t cap = 65536, pos = 0;
    char *text;
    int i, n;

    memset(&ev, 0xAB, sizeof(ev));
    ret = driver_peekqv(st->port, &ev);
    text = driver_alloc(cap);
    if (text == NULL)
        return -1;
    pos += snprintf(text, cap, "{%ld,%d,%ld,%s,%s,[", (long) ret, ev.vsize,
                    (long) ev.size, ev.iov == NULL ? "true" : "false",
                    ev.binv == NULL ? "true" : "false");
    for (i = 0; i < ev.vsize && pos < cap - 256; i++) {
        SysIOVec *v = &ev.iov[i];
        ErlDrvBinary *b = ev.binv[i];
        long off = b ? (long) ((char *) v->iov_base - b->orig_bytes) : -1;
        pos += snprintf(text + pos, cap - pos, "%s{%ld,%ld,%ld,%ld,%s,", i ? "," : "",
                        (long) v->iov_len, off, b ? (long) b->orig_size : -1,
                        b ? (long) driver_binary_get_refc(b) : -1,
                        b != NULL && b == st->kept ? "kept" : "other");
        put_bytes(text, &pos, cap - 64, v->iov_base, v->iov_len);
        pos += snprintf(text + pos, cap - pos, "}");
    }
    pos += snprintf(text + pos, cap - pos, "]}");
    n = reply(rbuf, rlen, text);
    driver_free(text);
    return n;
}

static int parse2(const char *buf, int len, long *a, long *b)
{
    char tmp[64];
    if (len < 0 || len >= (int) sizeof(tmp))
        return 0;
    memcpy(tmp, buf, len);
    tmp[len] = '\0';
    return sscanf(tmp, "%ld %ld", a, b);
}

static int q_control(ErlDrvData handle, unsigned int cmd, char *buf,
                     int len, char **rbuf, int rlen)
{
    qstate *st = (qstate *) handle;
    long a = 0, b = 0;
    char text[256];

    switch (cmd) {
    case OP_ENQ:
        return reply_long(rbuf, rlen, driver_enq(st->port, buf, len));
    case OP_PUSHQ:
        return reply_long(rbuf, rlen, driver_pushq(st->port, buf, len));
    case OP_DEQ:
        parse2(buf, len, &a, &b);
        return reply_long(rbuf, rlen, (long) driver_deq(st->port, (int) a));
    case OP_SIZEQ:
        return reply_long(rbuf, rlen, (long) driver_sizeq(st->port));
    case OP_PEEKQV:
        return peekqv_reply(st, rbuf, rlen);
    case OP_ALLOC_KEPT:
        if (st->kept != NULL)
            driver_free_binary(st->kept);
        st->kept = driver_alloc_binary(len);
        if (st->kept == NULL)
            return reply(rbuf, rlen, "enomem");
        memcpy(st->kept->orig_bytes, buf, len);
        return reply_long(rbuf, rlen, (long) driver_binary_get_refc(st->kept));
    case OP_ENQ_BIN:
    case OP_PUSHQ_BIN: {
        int rc;
        if (st->kept == NULL)
            return reply(rbuf, rlen, "no_binary");
        parse2(buf, len, &a, &b);
        rc = cmd == OP_ENQ_BIN
            ? driver_enq_bin(st->port, st->kept, (int) a, (int) b)
            : driver_pushq_bin(st->port, st->kept, (int) a, (int) b);
        return reply_pair(rbuf, rlen, rc, (long) driver_binary_get_refc(st->kept));
    }
    case OP_OUTV_MODE:
        parse2(buf, len, &a, &b);
        st->outv_mode = (int) a;
        st->outv_skip = (int) b;
        return reply(rbuf, rlen, "ok");
    case OP_LAST_RC:
        sprintf(text, "{%d,%ld,%d}", st->last_rc, st->last_size, st->last_vsize);
        return reply(rbuf, rlen, text);
    case OP_OUTPUT:
        return reply_long(rbuf, rlen, driver_output(st->port, buf, len));
    default:
        return -1;
    }
}
