/*
 * lc_queue_drv: the port queue (driver_enq & co), the port data lock and
 * flush-before-close.
 *
 * port_control operations work on the port's queue and reply with Erlang
 * terms written as text. Port data (outputv) is queued with driver_enqv or
 * driver_pushqv. The flush callback and stop record what they saw in
 * driver-global statistics that any other port of the driver can read
 * (the flushing port itself is no longer reachable from Erlang). Driver
 * threads are plain pthreads that lock the port data lock around their
 * queue calls.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData q_start(ErlDrvPort port, char *command);
static void q_stop(ErlDrvData handle);
static void q_outputv(ErlDrvData handle, ErlIOVec *ev);
static ErlDrvSSizeT q_control(ErlDrvData handle, unsigned int cmd, char *buf,
                              ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);
static void q_flush(ErlDrvData handle);
static ErlDrvSSizeT q_call(ErlDrvData handle, unsigned int cmd, char *buf,
                           ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen,
                           unsigned int *flags);

static ErlDrvEntry q_entry = {
    NULL,                           /* init */
    q_start,
    q_stop,
    NULL,                           /* output: outputv is used */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "lc_queue_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    q_control,
    NULL,                           /* timeout */
    q_outputv,
    NULL,                           /* ready_async */
    q_flush,
    q_call,
    NULL,                           /* unused_event_callback */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                              /* driver_flags: driver-level locking */
    NULL,                           /* handle2 */
    NULL,                           /* process_exit */
    NULL,                           /* stop_select */
    NULL                            /* emergency_close */
};

DRIVER_INIT(lc_queue_drv) { return &q_entry; }

/* Operations (port_control command numbers). */
#define OP_ENQ          1   /* bytes: driver_enq -> Rc */
#define OP_PUSHQ        2   /* bytes: driver_pushq -> Rc */
#define OP_DEQ          3   /* "N": driver_deq -> remaining | -1 */
#define OP_SIZEQ        4   /* driver_sizeq */
#define OP_PEEKQ        5   /* {Vlen, [Bytes]} */
#define OP_PEEKQV       6   /* {Ret, Vsize, Size, IovNull, BinvNull, [Seg]} */
#define OP_ALLOC_KEPT   7   /* bytes: kept = new binary with them -> refc */
#define OP_ENQ_BIN      8   /* "OFF LEN": driver_enq_bin(kept) -> {Rc, Refc} */
#define OP_PUSHQ_BIN    9   /* "OFF LEN": driver_pushq_bin(kept) -> {Rc, Refc} */
#define OP_KEPT_REFC   10   /* refc of kept (-1 when none) */
#define OP_FREE_KEPT   11   /* driver_free_binary(kept) -> refc before */
#define OP_OUTV_MODE   12   /* "MODE SKIP": outputv enqv (0), pushqv (1) */
#define OP_LAST_RC     13   /* {Rc, EvSize, EvVsize} of the last outputv */
#define OP_FLUSH_MODE  14   /* "MODE": what flush does, see FLUSH_* */
#define OP_STATS       15   /* driver-global flush/stop statistics */
#define OP_STATS_RESET 16
#define OP_PDL_CREATE  17   /* {Created, SecondIsNull, Refc} */
#define OP_THREAD_DEQ  18   /* "N": a thread deqs under the PDL -> {Rc, Size} */
#define OP_THREAD_ENQ  19   /* bytes: a thread enqs under the PDL -> {Rc, Size} */
#define OP_PDL_REFC    20   /* {Get, Inc, Dec, Get} */
#define OP_EMPTY_ENQ   21   /* zero-length enq/pushq/enq_bin/pushq_bin -> Rcs */
#define OP_REGISTER    22   /* this port becomes the driver's `other' port */
#define OP_DEQ_OTHER   23   /* "N": driver_deq on the other port */
#define OP_RELEASE     24   /* release the flush thread, join it -> {Rc, Size} */
#define OP_HOLD_PDL    25   /* keep a PDL reference of this port globally */
#define OP_STALE_SIZEQ 26   /* a thread: sizeq of the held port under its PDL */
#define OP_FAIL        27   /* driver_failure(port, 5) */
#define OP_SIZEQ_OTHER 28   /* driver_sizeq on the other port */
#define OP_OUTPUT      29   /* bytes: driver_output -> Rc */
#define OP_ENQ_BIN_OTHER 30 /* "OFF LEN": driver_enq_bin(other, kept) -> {Rc, Refc} */
#define OP_FAIL_EOF    31   /* driver_failure_eof(port) -> Rc */

/* What flush does. */
#define FLUSH_LEAVE     0   /* nothing: the data stays queued */
#define FLUSH_DEQ_ALL   1   /* dequeue everything */
#define FLUSH_DEQ_SOME  2   /* dequeue all but one byte */
#define FLUSH_FAIL      3   /* driver_failure(port, 7) */
#define FLUSH_THREAD    4   /* a thread dequeues all once released */
#define FLUSH_DEQ_OUT   5   /* output "flush", then dequeue everything */

typedef struct {
    ErlDrvPort port;
    ErlDrvBinary *kept;
    ErlDrvPDL pdl;
    int outv_mode;
    ErlDrvSizeT outv_skip;
    int last_rc;
    long last_size;
    int last_vsize;
    int flush_mode;
} qstate;

/* Driver-global statistics (driver-level locking guards them). */
static long g_flush_calls, g_flush_sizeq, g_flush_output_rc;
static long g_stop_calls, g_stop_sizeq, g_stop_output_rc;
static ErlDrvPort g_other;
static ErlDrvPort g_held_port;
static ErlDrvPDL g_held_pdl;

/* The flush thread (FLUSH_THREAD) and its release. */
static pthread_mutex_t g_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_released;
static int g_flush_thread_running;
static pthread_t g_flush_thread;

typedef struct {
    ErlDrvPort port;
    ErlDrvPDL pdl;
    ErlDrvSizeT n;          /* bytes to dequeue; (size_t)-1: all */
    const char *data;       /* bytes to enqueue instead, when non-NULL */
    ErlDrvSizeT len;
    int wait_release;
    long rc;
    long size;
} thread_job;

static thread_job g_flush_job;

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);
    if (n > rlen) {
        *rbuf = driver_alloc(n);
        if (*rbuf == NULL)
            return -1;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT) n;
}

static ErlDrvSSizeT reply_long(char **rbuf, ErlDrvSizeT rlen, long v)
{
    char text[32];
    snprintf(text, sizeof(text), "%ld", v);
    return reply(rbuf, rlen, text);
}

static ErlDrvSSizeT reply_pair(char **rbuf, ErlDrvSizeT rlen, long a, long b)
{
    char text[64];
    snprintf(text, sizeof(text), "{%ld,%ld}", a, b);
    return reply(rbuf, rlen, text);
}

/* Appends bytes as an Erlang list of integers to text at *pos. */
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

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    if (job->wait_release) {
        pthread_mutex_lock(&g_mtx);
        while (!g_released)
            pthread_cond_wait(&g_cond, &g_mtx);
        pthread_mutex_unlock(&g_mtx);
    }
    driver_pdl_lock(job->pdl);
    if (job->data != NULL) {
        job->rc = driver_enq(job->port, (char *) job->data, job->len);
    } else {
        ErlDrvSizeT n = job->n;
        if (n == (ErlDrvSizeT) -1)
            n = driver_sizeq(job->port);
        job->rc = (long) driver_deq(job->port, n);
    }
    job->size = (long) driver_sizeq(job->port);
    driver_pdl_unlock(job->pdl);
    return NULL;
}

static ErlDrvPDL ensure_pdl(qstate *st)
{
    if (st->pdl == NULL)
        st->pdl = driver_pdl_create(st->port);
    return st->pdl;
}

/* Runs a thread job to completion (the caller waits for it). */
static ErlDrvSSizeT run_job(qstate *st, thread_job *job, char **rbuf, ErlDrvSizeT rlen)
{
    pthread_t tid;
    job->port = st->port;
    job->pdl = ensure_pdl(st);
    if (job->pdl == NULL)
        return reply(rbuf, rlen, "no_pdl");
    if (pthread_create(&tid, NULL, thread_main, job) != 0)
        return reply(rbuf, rlen, "no_thread");
    pthread_join(tid, NULL);
    return reply_pair(rbuf, rlen, job->rc, job->size);
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
    g_stop_calls++;
    g_stop_sizeq = (long) driver_sizeq(st->port);
    g_stop_output_rc = driver_output(st->port, "stop", 4);
    if (st->kept != NULL)
        driver_free_binary(st->kept);
    if (g_other == st->port)
        g_other = NULL;
    driver_free(st);
}

static void q_flush(ErlDrvData handle)
{
    qstate *st = (qstate *) handle;
    ErlDrvSizeT size;
    g_flush_calls++;
    size = driver_sizeq(st->port);
    g_flush_sizeq = (long) size;
    g_flush_output_rc = driver_output(st->port, "flush", 5);
    switch (st->flush_mode) {
    case FLUSH_DEQ_ALL:
        driver_deq(st->port, size);
        break;
    case FLUSH_DEQ_SOME:
        if (size > 1)
            driver_deq(st->port, size - 1);
        break;
    case FLUSH_FAIL:
        driver_failure(st->port, 7);
        break;
    case FLUSH_THREAD:
        memset(&g_flush_job, 0, sizeof(g_flush_job));
        g_flush_job.port = st->port;
        g_flush_job.pdl = ensure_pdl(st);
        g_flush_job.n = (ErlDrvSizeT) -1;
        g_flush_job.wait_release = 1;
        /* The thread may outlive the port: it keeps a PDL reference. */
        driver_pdl_inc_refc(g_flush_job.pdl);
        g_released = 0;
        if (pthread_create(&g_flush_thread, NULL, thread_main, &g_flush_job) == 0)
            g_flush_thread_running = 1;
        break;
    case FLUSH_DEQ_OUT:
        driver_output(st->port, "flush", 5);
        driver_deq(st->port, size);
        break;
    default:
        break;
    }
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

/* port_call: the argument comes back (it is already in the external
 * format); command 1 dequeues everything first. */
static ErlDrvSSizeT q_call(ErlDrvData handle, unsigned int cmd, char *buf,
                           ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen,
                           unsigned int *flags)
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
    return (ErlDrvSSizeT) len;
}

static ErlDrvSSizeT peekqv_reply(qstate *st, char **rbuf, ErlDrvSizeT rlen)
{
    ErlIOVec ev;
    ErlDrvSizeT ret;
    size_t cap = 65536, pos = 0;
    char *text;
    int i;
    ErlDrvSSizeT n;

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

static ErlDrvSSizeT peekq_reply(qstate *st, char **rbuf, ErlDrvSizeT rlen)
{
    int vlen = 12345, i;
    SysIOVec *iov = driver_peekq(st->port, &vlen);
    size_t cap = 65536, pos = 0;
    char *text = driver_alloc(cap);
    ErlDrvSSizeT n;
    if (text == NULL)
        return -1;
    pos += snprintf(text, cap, "{%d,%s,[", vlen, iov == NULL ? "true" : "false");
    for (i = 0; iov != NULL && i < vlen && pos < cap - 256; i++) {
        if (i)
            pos += snprintf(text + pos, cap - pos, ",");
        put_bytes(text, &pos, cap - 64, iov[i].iov_base, iov[i].iov_len);
    }
    pos += snprintf(text + pos, cap - pos, "]}");
    n = reply(rbuf, rlen, text);
    driver_free(text);
    return n;
}

static int parse2(const char *buf, ErlDrvSizeT len, long *a, long *b)
{
    char tmp[64];
    if (len >= sizeof(tmp))
        return 0;
    memcpy(tmp, buf, len);
    tmp[len] = '\0';
    return sscanf(tmp, "%ld %ld", a, b);
}

static ErlDrvSSizeT q_control(ErlDrvData handle, unsigned int cmd, char *buf,
                              ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    qstate *st = (qstate *) handle;
    long a = 0, b = 0;
    char text[256];
    thread_job job;

    switch (cmd) {
    case OP_ENQ:
        return reply_long(rbuf, rlen, driver_enq(st->port, buf, len));
    case OP_PUSHQ:
        return reply_long(rbuf, rlen, driver_pushq(st->port, buf, len));
    case OP_DEQ:
        parse2(buf, len, &a, &b);
        return reply_long(rbuf, rlen, (long) driver_deq(st->port, (ErlDrvSizeT) a));
    case OP_SIZEQ:
        return reply_long(rbuf, rlen, (long) driver_sizeq(st->port));
    case OP_PEEKQ:
        return peekq_reply(st, rbuf, rlen);
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
            ? driver_enq_bin(st->port, st->kept, (ErlDrvSizeT) a, (ErlDrvSizeT) b)
            : driver_pushq_bin(st->port, st->kept, (ErlDrvSizeT) a, (ErlDrvSizeT) b);
        return reply_pair(rbuf, rlen, rc, (long) driver_binary_get_refc(st->kept));
    }
    case OP_KEPT_REFC:
        return reply_long(rbuf, rlen,
                          st->kept ? (long) driver_binary_get_refc(st->kept) : -1);
    case OP_FREE_KEPT:
        if (st->kept == NULL)
            return reply_long(rbuf, rlen, -1);
        a = (long) driver_binary_get_refc(st->kept);
        driver_free_binary(st->kept);
        st->kept = NULL;
        return reply_long(rbuf, rlen, a);
    case OP_OUTV_MODE:
        parse2(buf, len, &a, &b);
        st->outv_mode = (int) a;
        st->outv_skip = (ErlDrvSizeT) b;
        return reply(rbuf, rlen, "ok");
    case OP_LAST_RC:
        snprintf(text, sizeof(text), "{%d,%ld,%d}", st->last_rc, st->last_size,
                 st->last_vsize);
        return reply(rbuf, rlen, text);
    case OP_FLUSH_MODE:
        parse2(buf, len, &a, &b);
        st->flush_mode = (int) a;
        return reply(rbuf, rlen, "ok");
    case OP_STATS:
        snprintf(text, sizeof(text), "{%ld,%ld,%ld,%ld,%ld,%ld}", g_flush_calls,
                 g_flush_sizeq, g_flush_output_rc, g_stop_calls, g_stop_sizeq,
                 g_stop_output_rc);
        return reply(rbuf, rlen, text);
    case OP_STATS_RESET:
        g_flush_calls = g_flush_sizeq = g_flush_output_rc = 0;
        g_stop_calls = g_stop_sizeq = g_stop_output_rc = 0;
        return reply(rbuf, rlen, "ok");
    case OP_PDL_CREATE: {
        ErlDrvPDL first = driver_pdl_create(st->port);
        ErlDrvPDL second = driver_pdl_create(st->port);
        if (first != NULL)
            st->pdl = first;
        snprintf(text, sizeof(text), "{%s,%s,%ld}", first ? "true" : "false",
                 second ? "false" : "true",
                 st->pdl ? (long) driver_pdl_get_refc(st->pdl) : -1);
        return reply(rbuf, rlen, text);
    }
    case OP_THREAD_DEQ:
        memset(&job, 0, sizeof(job));
        parse2(buf, len, &a, &b);
        job.n = (ErlDrvSizeT) a;
        return run_job(st, &job, rbuf, rlen);
    case OP_THREAD_ENQ:
        memset(&job, 0, sizeof(job));
        job.data = buf;
        job.len = len;
        return run_job(st, &job, rbuf, rlen);
    case OP_PDL_REFC: {
        long g1, i, d, g2;
        if (ensure_pdl(st) == NULL)
            return reply(rbuf, rlen, "no_pdl");
        g1 = (long) driver_pdl_get_refc(st->pdl);
        i = (long) driver_pdl_inc_refc(st->pdl);
        d = (long) driver_pdl_dec_refc(st->pdl);
        g2 = (long) driver_pdl_get_refc(st->pdl);
        snprintf(text, sizeof(text), "{%ld,%ld,%ld,%ld}", g1, i, d, g2);
        return reply(rbuf, rlen, text);
    }
    case OP_EMPTY_ENQ: {
        int r1 = driver_enq(st->port, NULL, 0);
        int r2 = driver_pushq(st->port, NULL, 0);
        int r3 = st->kept ? driver_enq_bin(st->port, st->kept, 0, 0) : -2;
        int r4 = st->kept ? driver_pushq_bin(st->port, st->kept, 0, 0) : -2;
        snprintf(text, sizeof(text), "{%d,%d,%d,%d,%ld}", r1, r2, r3, r4,
                 (long) driver_sizeq(st->port));
        return reply(rbuf, rlen, text);
    }
    case OP_REGISTER:
        g_other = st->port;
        return reply(rbuf, rlen, "ok");
    case OP_DEQ_OTHER:
        if (g_other == NULL)
            return reply(rbuf, rlen, "no_other");
        parse2(buf, len, &a, &b);
        return reply_long(rbuf, rlen, (long) driver_deq(g_other, (ErlDrvSizeT) a));
    case OP_ENQ_BIN_OTHER: {
        int rc;
        if (g_other == NULL || st->kept == NULL)
            return reply(rbuf, rlen, "no_other");
        parse2(buf, len, &a, &b);
        rc = driver_enq_bin(g_other, st->kept, (ErlDrvSizeT) a, (ErlDrvSizeT) b);
        return reply_pair(rbuf, rlen, rc, (long) driver_binary_get_refc(st->kept));
    }
    case OP_SIZEQ_OTHER:
        if (g_other == NULL)
            return reply(rbuf, rlen, "no_other");
        return reply_long(rbuf, rlen, (long) driver_sizeq(g_other));
    case OP_RELEASE:
        if (!g_flush_thread_running)
            return reply(rbuf, rlen, "no_thread");
        pthread_mutex_lock(&g_mtx);
        g_released = 1;
        pthread_cond_broadcast(&g_cond);
        pthread_mutex_unlock(&g_mtx);
        pthread_join(g_flush_thread, NULL);
        g_flush_thread_running = 0;
        driver_pdl_dec_refc(g_flush_job.pdl);
        return reply_pair(rbuf, rlen, g_flush_job.rc, g_flush_job.size);
    case OP_HOLD_PDL:
        if (ensure_pdl(st) == NULL)
            return reply(rbuf, rlen, "no_pdl");
        g_held_port = st->port;
        g_held_pdl = st->pdl;
        return reply_long(rbuf, rlen, (long) driver_pdl_inc_refc(st->pdl));
    case OP_STALE_SIZEQ: {
        long refc;
        if (g_held_pdl == NULL)
            return reply(rbuf, rlen, "no_pdl");
        memset(&job, 0, sizeof(job));
        driver_pdl_lock(g_held_pdl);
        job.size = (long) driver_sizeq(g_held_port);
        job.rc = (long) driver_deq(g_held_port, 0);
        refc = (long) driver_pdl_get_refc(g_held_pdl);
        driver_pdl_unlock(g_held_pdl);
        driver_pdl_dec_refc(g_held_pdl);
        g_held_pdl = NULL;
        g_held_port = NULL;
        snprintf(text, sizeof(text), "{%ld,%ld,%ld}", job.size, job.rc, refc);
        return reply(rbuf, rlen, text);
    }
    case OP_OUTPUT:
        return reply_long(rbuf, rlen, driver_output(st->port, buf, len));
    case OP_FAIL:
        driver_failure(st->port, 5);
        return reply(rbuf, rlen, "failed");
    case OP_FAIL_EOF:
        return reply_long(rbuf, rlen, driver_failure_eof(st->port));
    default:
        return -1;
    }
}
