/*
 * lc_term_drv: term output. driver_output_term, driver_send_term,
 * erl_drv_output_term and erl_drv_send_term with term specifications
 * (ERL_DRV_NIL ... ERL_DRV_MAP), from callbacks and from the driver's own
 * threads.
 *
 * Everything is driven by port_control/3; replies are Erlang terms written
 * as text (without the final dot), usually the return code of the call.
 *
 *   OP_SPEC (1): a spec serialized by the test (see spec_from_wire below),
 *       so that the Erlang side can write and generate specs, valid or not.
 *   OP_CATALOGUE (2): <<Func, Index>>: entry Index of a fixed catalogue of
 *       specs written here in C (every term type, nestings, error cases);
 *       reply "done" past the last entry.
 *   OP_REMEMBER_CALLER (3) / OP_REMEMBER_PORT (4): <<Slot>>: stores
 *       driver_caller / driver_mk_port in a slot shared by every port of
 *       the driver (to use later as a receiver or port, e.g. once dead).
 *   OP_THREADS (5): "N K Func Stop": starts N threads (plain pthreads),
 *       each sending K terms {Thread, Seq} to this port with
 *       erl_drv_output_term (Func 2) or erl_drv_send_term to the caller of
 *       this op (Func 3). With Stop = 1 this port's stop joins them;
 *       otherwise they may outlive the port (one set runs at a time).
 *   OP_JOIN (6): joins them (from any port of the driver); replies the
 *       summary (see join_threads()), also kept for OP_LAST.
 *   OP_LAST (7): {LastJoinSummary, LastStopReturn}.
 *   OP_FAIL_THEN (8): <<Func>>: driver_failure_atom(port, "boom"), then a
 *       term {after_failure} with Func; replies its return code.
 *   OP_ON_STOP (9): <<Func>>: stop sends {stopping} with Func (the return
 *       code is kept for OP_LAST).
 *   OP_REMEMBER_ATOM (10): <<Slot, Name/binary>>: stores
 *       driver_mk_atom(Name) in a slot (a receiver that is not a pid).
 *
 * Func: 0 driver_output_term, 1 driver_send_term (to the caller),
 *       2 erl_drv_output_term, 3 erl_drv_send_term (to the caller).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData term_start(ErlDrvPort port, char *command);
static void term_stop(ErlDrvData handle);
static ErlDrvSSizeT term_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry term_entry = {
    NULL,                           /* init */
    term_start,
    term_stop,
    NULL,                           /* output */
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "lc_term_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    term_control,
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

DRIVER_INIT(lc_term_drv) { return &term_entry; }

#define OP_SPEC            1
#define OP_CATALOGUE       2
#define OP_REMEMBER_CALLER 3
#define OP_REMEMBER_PORT   4
#define OP_THREADS         5
#define OP_JOIN            6
#define OP_LAST            7
#define OP_FAIL_THEN       8
#define OP_ON_STOP         9
#define OP_REMEMBER_ATOM   10

#define MAX_THREADS 16
#define NSLOTS 8
#define SUMMARY_MAX 1024

struct sender {
    pthread_t tid;
    ErlDrvTermData port_term;
    ErlDrvTermData to;
    int func, index, count;
    int ones, zeros, minus_ones, other;
    int monotonic;              /* no 1 after a failed send */
};

typedef struct {
    ErlDrvPort port;
    int on_stop;                /* Func for stop, or -1 */
    int owns_threads;           /* stop joins the running threads */
} term_data;

/* Shared by every port of the driver (the test runs one scenario at a
 * time); the summary is written by whichever callback joins. */
static ErlDrvTermData slots[NSLOTS];
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_summary[SUMMARY_MAX] = "none";
static int last_stop_ret = -99;
/* The running senders (one set at a time, started by OP_THREADS). */
static int nthreads;
static struct sender threads[MAX_THREADS];

static ErlDrvData term_start(ErlDrvPort port, char *command)
{
    term_data *d = driver_alloc(sizeof(term_data));
    (void)command;
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(*d));
    d->port = port;
    d->on_stop = -1;
    return (ErlDrvData)d;
}

/* Sends spec with Func; the receiver of the send variants is `to`.
 * driver_output_term and driver_send_term are deprecated, and tested. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int send_with(ErlDrvPort port, int func, ErlDrvTermData port_term,
                     ErlDrvTermData to, ErlDrvTermData *spec, int n)
{
    switch (func) {
    case 0: return driver_output_term(port, spec, n);
    case 1: return driver_send_term(port, to, spec, n);
    case 2: return erl_drv_output_term(port_term, spec, n);
    case 3: return erl_drv_send_term(port_term, to, spec, n);
    default: return -100;
    }
}
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------------
 * Joining threads and the summary: a list of
 * {Ones, Zeros, MinusOnes, Other, Monotonic} per thread.
 * --------------------------------------------------------------------- */

static void join_threads(void)
{
    char text[SUMMARY_MAX];
    int i, n = 0;
    for (i = 0; i < nthreads; i++)
        pthread_join(threads[i].tid, NULL);
    n += snprintf(text + n, sizeof(text) - n, "[");
    for (i = 0; i < nthreads && n < SUMMARY_MAX - 64; i++) {
        struct sender *s = &threads[i];
        n += snprintf(text + n, sizeof(text) - n, "%s{%d,%d,%d,%d,%s}",
                      i ? "," : "", s->ones, s->zeros, s->minus_ones, s->other,
                      s->monotonic ? "true" : "false");
    }
    snprintf(text + n, sizeof(text) - n, "]");
    nthreads = 0;
    pthread_mutex_lock(&last_lock);
    memcpy(last_summary, text, sizeof(text));
    pthread_mutex_unlock(&last_lock);
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    int seq, failed = 0;
    for (seq = 1; seq <= s->count; seq++) {
        ErlDrvTermData spec[] = {
            ERL_DRV_INT, (ErlDrvTermData)s->index,
            ERL_DRV_INT, (ErlDrvTermData)seq,
            ERL_DRV_TUPLE, 2
        };
        int r = send_with(NULL, s->func, s->port_term, s->to, spec,
                          sizeof(spec) / sizeof(spec[0]));
        switch (r) {
        case 1:
            s->ones++;
            if (failed)
                s->monotonic = 0;
            break;
        case 0: s->zeros++; failed = 1; break;
        case -1: s->minus_ones++; failed = 1; break;
        default: s->other++; failed = 1; break;
        }
    }
    return NULL;
}

static void term_stop(ErlDrvData handle)
{
    term_data *d = (term_data *)handle;
    if (d->on_stop >= 0) {
        ErlDrvTermData spec[] = {
            ERL_DRV_ATOM, driver_mk_atom("stopping"),
            ERL_DRV_TUPLE, 1
        };
        ErlDrvTermData owner = driver_connected(d->port);
        int r = send_with(d->port, d->on_stop, driver_mk_port(d->port), owner,
                          spec, 4);
        pthread_mutex_lock(&last_lock);
        last_stop_ret = r;
        pthread_mutex_unlock(&last_lock);
    }
    if (d->owns_threads && nthreads > 0)
        join_threads();
    driver_free(d);
}

/* ---------------------------------------------------------------------
 * Replies
 * --------------------------------------------------------------------- */

static ErlDrvSSizeT reply(const char *text, char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvSizeT n = strlen(text);
    if (n > rlen) {
        *rbuf = driver_alloc(n);
        if (*rbuf == NULL)
            return 0;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT reply_int(int value, char **rbuf, ErlDrvSizeT rlen)
{
    char text[32];
    snprintf(text, sizeof(text), "%d", value);
    return reply(text, rbuf, rlen);
}

/* ---------------------------------------------------------------------
 * Specs from the wire. Header: <<Func, Receiver, PortSel, LenMode>>
 *   Receiver: 0 the caller, 1 the connected process, 2+S slot S
 *   PortSel:  0 driver_mk_port(port), 1+S slot S (erl_drv_* only)
 *   LenMode:  0 the number of words, 1 -1, 2 0 with a NULL array,
 *             3 the words wrapped in driver_output "<" and ">"
 * then items, each one word of the spec:
 *   'w' U64        the word itself (big-endian)
 *   'a' U8 Name    driver_mk_atom(Name)
 *   'p'            driver_mk_port(port)
 *   'c' / 'C'      driver_connected(port) / driver_caller(port)
 *   'S' U8         slot S
 *   's' U32 Bytes  a pointer to a copy of Bytes
 *   'b' U32 Bytes  a new driver binary holding Bytes (freed after the call)
 *   'i' U64        a pointer to a 64-bit word holding U64 (INT64, UINT64)
 *   'f' U64        a pointer to the double whose bits are U64
 *   'x'            a pointer into a static buffer (not a driver binary)
 * --------------------------------------------------------------------- */

#define MAX_WORDS 4096
#define MAX_OWNED 1024

struct owned {
    int n;
    void *mem[MAX_OWNED];
    ErlDrvBinary *bins[MAX_OWNED];
    int nbins;
};

static char fake_binary[8192];

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void *own(struct owned *o, size_t size)
{
    void *m;
    if (o->n >= MAX_OWNED)
        return NULL;
    m = driver_alloc(size ? size : 1);
    o->mem[o->n++] = m;
    return m;
}

static void release(struct owned *o)
{
    int i;
    for (i = 0; i < o->n; i++)
        driver_free(o->mem[i]);
    for (i = 0; i < o->nbins; i++)
        driver_free_binary(o->bins[i]);
}

/* Parses items into spec; returns the number of words or -1. */
static int spec_from_wire(ErlDrvPort port, const unsigned char *p, size_t len,
                          ErlDrvTermData *spec, struct owned *o)
{
    size_t i = 0;
    int n = 0;
    while (i < len) {
        unsigned char kind = p[i++];
        ErlDrvTermData w = 0;
        uint32_t sz;
        if (n >= MAX_WORDS)
            return -1;
        switch (kind) {
        case 'w':
            if (i + 8 > len) return -1;
            w = (ErlDrvTermData)get_u64(p + i);
            i += 8;
            break;
        case 'a': {
            char name[256];
            if (i + 1 > len || i + 1 + p[i] > len) return -1;
            memcpy(name, p + i + 1, p[i]);
            name[p[i]] = 0;
            w = driver_mk_atom(name);
            i += 1 + p[i];
            break;
        }
        case 'p': w = driver_mk_port(port); break;
        case 'c': w = driver_connected(port); break;
        case 'C': w = driver_caller(port); break;
        case 'S':
            if (i + 1 > len || p[i] >= NSLOTS) return -1;
            w = slots[p[i++]];
            break;
        case 's': case 'b': {
            if (i + 4 > len) return -1;
            sz = get_u32(p + i);
            i += 4;
            if (i + sz > len) return -1;
            if (kind == 's') {
                char *m = own(o, sz);
                if (m == NULL) return -1;
                memcpy(m, p + i, sz);
                w = (ErlDrvTermData)m;
            } else {
                ErlDrvBinary *b;
                if (o->nbins >= MAX_OWNED) return -1;
                b = driver_alloc_binary(sz);
                memcpy(b->orig_bytes, p + i, sz);
                o->bins[o->nbins++] = b;
                w = (ErlDrvTermData)b;
            }
            i += sz;
            break;
        }
        case 'i': case 'f': {
            uint64_t *m;
            if (i + 8 > len) return -1;
            m = own(o, sizeof(uint64_t));
            if (m == NULL) return -1;
            *m = get_u64(p + i);
            i += 8;
            w = (ErlDrvTermData)m;
            break;
        }
        case 'x': w = (ErlDrvTermData)(fake_binary + 4096); break;
        default:
            return -1;
        }
        spec[n++] = w;
    }
    return n;
}

static ErlDrvSSizeT op_spec(term_data *d, const unsigned char *p, size_t len,
                            char **rbuf, ErlDrvSizeT rlen)
{
    static ErlDrvTermData spec[MAX_WORDS];
    struct owned o;
    ErlDrvTermData to, port_term;
    int n, r;
    if (len < 4)
        return reply("bad_wire", rbuf, rlen);
    memset(&o, 0, sizeof(o));
    n = spec_from_wire(d->port, p + 4, len - 4, spec, &o);
    if (n < 0) {
        release(&o);
        return reply("bad_wire", rbuf, rlen);
    }
    to = p[1] == 0 ? driver_caller(d->port)
        : p[1] == 1 ? driver_connected(d->port)
        : slots[(p[1] - 2) % NSLOTS];
    port_term = p[2] == 0 ? driver_mk_port(d->port) : slots[(p[2] - 1) % NSLOTS];
    switch (p[3]) {
    case 1: r = send_with(d->port, p[0], port_term, to, spec, -1); break;
    case 2: r = send_with(d->port, p[0], port_term, to, NULL, 0); break;
    case 3:
        driver_output(d->port, "<", 1);
        r = send_with(d->port, p[0], port_term, to, spec, n);
        driver_output(d->port, ">", 1);
        break;
    default: r = send_with(d->port, p[0], port_term, to, spec, n); break;
    }
    release(&o);
    return reply_int(r, rbuf, rlen);
}

/* ---------------------------------------------------------------------
 * The catalogue: each entry fills spec and returns its length.
 * --------------------------------------------------------------------- */

/* {17, 4711} and {<<"bin">>, [1.5], #{a => "x"}} in the external format. */
static const unsigned char ext_17_4711[] = {131, 104, 2, 97, 17, 98, 0, 0, 18, 103};
static const unsigned char ext_mixed[] = {
    131, 104, 3,
    109, 0, 0, 0, 3, 'b', 'i', 'n',
    108, 0, 0, 0, 1, 70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 106,
    116, 0, 0, 0, 1, 119, 1, 'a', 107, 0, 1, 'x'
};
static const unsigned char ext_bad[] = {131, 104, 5, 97, 1};

static ErlDrvBinary *cat_bin;     /* 200 bytes, for ERL_DRV_BINARY entries */
static double dbl[4];
static ErlDrvSInt64 i64[3];
static ErlDrvUInt64 u64[2];

#define T(x) ((ErlDrvTermData)(x))

static int catalogue(ErlDrvPort port, int index, ErlDrvTermData *s)
{
    int n = 0, i;
    ErlDrvTermData self = driver_mk_port(port);
    switch (index) {
    case 0: /* [] */
        s[n++] = ERL_DRV_NIL;
        break;
    case 1: /* {hello, '', 'with space'} */
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("hello");
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("");
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("with space");
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 2: /* ERL_DRV_INT: small, negative, bignums both ways, extremes */
        s[n++] = ERL_DRV_INT; s[n++] = T(0);
        s[n++] = ERL_DRV_INT; s[n++] = T((ErlDrvSInt)-1);
        s[n++] = ERL_DRV_INT; s[n++] = T((ErlDrvSInt)1 << 59);
        s[n++] = ERL_DRV_INT; s[n++] = T(-((ErlDrvSInt)1 << 59) - 1);
        s[n++] = ERL_DRV_INT; s[n++] = T(INT64_MAX);
        s[n++] = ERL_DRV_INT; s[n++] = T(INT64_MIN);
        s[n++] = ERL_DRV_TUPLE; s[n++] = 6;
        break;
    case 3: /* ERL_DRV_UINT */
        s[n++] = ERL_DRV_UINT; s[n++] = T(0);
        s[n++] = ERL_DRV_UINT; s[n++] = T((ErlDrvUInt)1 << 59);
        s[n++] = ERL_DRV_UINT; s[n++] = T(UINT64_MAX);
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 4: /* ERL_DRV_INT64 / ERL_DRV_UINT64 (pointers) */
        i64[0] = 0; i64[1] = INT64_MIN; i64[2] = INT64_MAX;
        u64[0] = 42; u64[1] = UINT64_MAX;
        for (i = 0; i < 3; i++) { s[n++] = ERL_DRV_INT64; s[n++] = T(&i64[i]); }
        for (i = 0; i < 2; i++) { s[n++] = ERL_DRV_UINT64; s[n++] = T(&u64[i]); }
        s[n++] = ERL_DRV_LIST; s[n++] = 5;   /* improper: tail UINT64_MAX */
        break;
    case 5: /* {Port, Owner, Caller} */
        s[n++] = ERL_DRV_PORT; s[n++] = self;
        s[n++] = ERL_DRV_PID; s[n++] = driver_connected(port);
        s[n++] = ERL_DRV_PID; s[n++] = driver_caller(port);
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 6: /* ERL_DRV_BINARY: small, empty, large, at offsets */
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 10; s[n++] = 5;
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 0; s[n++] = 200;
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 100; s[n++] = 50;
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 200; s[n++] = 0;
        s[n++] = ERL_DRV_NIL;
        s[n++] = ERL_DRV_LIST; s[n++] = 5;
        break;
    case 7: /* ERL_DRV_BUF2BINARY: small, empty, NULL with 0, large */
        s[n++] = ERL_DRV_BUF2BINARY; s[n++] = T("abc"); s[n++] = 3;
        s[n++] = ERL_DRV_BUF2BINARY; s[n++] = T(""); s[n++] = 0;
        s[n++] = ERL_DRV_BUF2BINARY; s[n++] = T(NULL); s[n++] = 0;
        s[n++] = ERL_DRV_BUF2BINARY; s[n++] = T(fake_binary); s[n++] = 1000;
        s[n++] = ERL_DRV_TUPLE; s[n++] = 4;
        break;
    case 8: /* strings: latin-1, empty, with NUL and high bytes */
        s[n++] = ERL_DRV_STRING; s[n++] = T("abc"); s[n++] = 3;
        s[n++] = ERL_DRV_STRING; s[n++] = T(""); s[n++] = 0;
        s[n++] = ERL_DRV_STRING; s[n++] = T("a\0\377\200"); s[n++] = 4;
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 9: /* the manual: [x, "abc", y] */
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("x");
        s[n++] = ERL_DRV_STRING; s[n++] = T("abc"); s[n++] = 3;
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("y");
        s[n++] = ERL_DRV_NIL;
        s[n++] = ERL_DRV_LIST; s[n++] = 4;
        break;
    case 10: /* the manual: "abc123" with STRING_CONS; and onto an atom */
        s[n++] = ERL_DRV_NIL;
        s[n++] = ERL_DRV_STRING_CONS; s[n++] = T("123"); s[n++] = 3;
        s[n++] = ERL_DRV_STRING_CONS; s[n++] = T("abc"); s[n++] = 3;
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("tail");
        s[n++] = ERL_DRV_STRING_CONS; s[n++] = T("xy"); s[n++] = 2;
        s[n++] = ERL_DRV_STRING_CONS; s[n++] = T(""); s[n++] = 0;
        s[n++] = ERL_DRV_TUPLE; s[n++] = 2;
        break;
    case 11: /* floats */
        dbl[0] = 3.14; dbl[1] = -0.0; dbl[2] = 1e308; dbl[3] = -2.5e-300;
        for (i = 0; i < 4; i++) { s[n++] = ERL_DRV_FLOAT; s[n++] = T(&dbl[i]); }
        s[n++] = ERL_DRV_TUPLE; s[n++] = 4;
        break;
    case 12: /* the manual: {my_tag, {17, 4711}}; and a richer term */
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("my_tag");
        s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(ext_17_4711); s[n++] = sizeof(ext_17_4711);
        s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(ext_mixed); s[n++] = sizeof(ext_mixed);
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 13: /* maps: empty, small (keys out of order), nested */
        s[n++] = ERL_DRV_MAP; s[n++] = 0;
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("b");
        s[n++] = ERL_DRV_INT; s[n++] = 2;
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("a");
        s[n++] = ERL_DRV_MAP; s[n++] = 0;
        s[n++] = ERL_DRV_INT; s[n++] = 1;
        s[n++] = ERL_DRV_STRING; s[n++] = T("k"); s[n++] = 1;
        s[n++] = ERL_DRV_MAP; s[n++] = 3;
        s[n++] = ERL_DRV_TUPLE; s[n++] = 2;
        break;
    case 14: /* a large map (hash map): 40 pairs I => -I */
        for (i = 0; i < 40; i++) {
            s[n++] = ERL_DRV_INT; s[n++] = T((ErlDrvSInt)i);
            s[n++] = ERL_DRV_INT; s[n++] = T(-(ErlDrvSInt)i);
        }
        s[n++] = ERL_DRV_MAP; s[n++] = 40;
        break;
    case 15: /* the manual: {tcp, Port, [100 | Binary]} */
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("tcp");
        s[n++] = ERL_DRV_PORT; s[n++] = self;
        s[n++] = ERL_DRV_INT; s[n++] = 100;
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 50; s[n++] = 0;
        s[n++] = ERL_DRV_LIST; s[n++] = 2;
        s[n++] = ERL_DRV_TUPLE; s[n++] = 3;
        break;
    case 16: /* deep nesting: 500 tuples {{{...{[]}...}}} then 500 lists */
        s[n++] = ERL_DRV_NIL;
        for (i = 0; i < 500; i++) { s[n++] = ERL_DRV_TUPLE; s[n++] = 1; }
        for (i = 0; i < 500; i++) { s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_LIST; s[n++] = 2; }
        break;
    case 17: /* the empty tuple, a one-element list with its tail */
        s[n++] = ERL_DRV_TUPLE; s[n++] = 0;
        s[n++] = ERL_DRV_LIST; s[n++] = 1;
        break;
    /* ---- error cases ---- */
    case 18: /* two terms, no container */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_NIL;
        break;
    case 19: /* tuple of more elements than there are */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_TUPLE; s[n++] = 2;
        break;
    case 20: /* unknown tag */
        s[n++] = T(99);
        break;
    case 21: /* short array: ATOM without its atom */
        s[n++] = ERL_DRV_ATOM;
        break;
    case 22: /* EXT2TERM: bad data */
        s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(ext_bad); s[n++] = sizeof(ext_bad);
        break;
    case 23: /* EXT2TERM: size 0 */
        s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(ext_17_4711); s[n++] = 0;
        break;
    case 24: /* STRING: NULL with a length */
        s[n++] = ERL_DRV_STRING; s[n++] = T(NULL); s[n++] = 3;
        break;
    case 25: /* STRING: NULL with length 0 */
        s[n++] = ERL_DRV_STRING; s[n++] = T(NULL); s[n++] = 0;
        break;
    case 26: /* BINARY: past its end */
        s[n++] = ERL_DRV_BINARY; s[n++] = T(cat_bin); s[n++] = 150; s[n++] = 51;
        break;
    case 27: /* BINARY: NULL */
        s[n++] = ERL_DRV_BINARY; s[n++] = T(NULL); s[n++] = 0; s[n++] = 0;
        break;
    case 28: /* LIST 0 */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_LIST; s[n++] = 0;
        break;
    case 29: /* STRING_CONS with nothing to cons onto */
        s[n++] = ERL_DRV_STRING_CONS; s[n++] = T("a"); s[n++] = 1;
        break;
    case 30: /* map with a duplicate key */
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("k");
        s[n++] = ERL_DRV_INT; s[n++] = 1;
        s[n++] = ERL_DRV_ATOM; s[n++] = driver_mk_atom("k");
        s[n++] = ERL_DRV_INT; s[n++] = 2;
        s[n++] = ERL_DRV_MAP; s[n++] = 2;
        break;
    case 31: /* float: not finite */
        dbl[0] = 1e308 * 10.0;
        s[n++] = ERL_DRV_FLOAT; s[n++] = T(&dbl[0]);
        break;
    case 32: /* ATOM with a word that is not an atom (a small integer) */
        s[n++] = ERL_DRV_ATOM; s[n++] = T(0x5f);
        break;
    case 33: /* PID with an atom */
        s[n++] = ERL_DRV_PID; s[n++] = driver_mk_atom("nopid");
        break;
    case 34: /* negative tuple size */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_TUPLE; s[n++] = T((ErlDrvSInt)-1);
        break;
    case 35: /* map of more pairs than there are terms */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_NIL;
        s[n++] = ERL_DRV_MAP; s[n++] = 2;
        break;
    case 36: /* STRING: negative length */
        s[n++] = ERL_DRV_STRING; s[n++] = T("abc"); s[n++] = T((ErlDrvSInt)-1);
        break;
    case 37: /* BUF2BINARY: NULL with a length */
        s[n++] = ERL_DRV_BUF2BINARY; s[n++] = T(NULL); s[n++] = 5;
        break;
    case 38: /* a valid term, then an extra tag without arguments */
        s[n++] = ERL_DRV_NIL; s[n++] = ERL_DRV_INT;
        break;
    case 39: /* EXT2TERM: trailing bytes after a complete term */
        {
            static unsigned char trail[sizeof(ext_17_4711) + 2];
            memcpy(trail, ext_17_4711, sizeof(ext_17_4711));
            trail[sizeof(ext_17_4711)] = 97;
            trail[sizeof(ext_17_4711) + 1] = 1;
            s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(trail); s[n++] = sizeof(trail);
        }
        break;
    case 40: /* EXT2TERM: truncated */
        s[n++] = ERL_DRV_EXT2TERM; s[n++] = T(ext_17_4711); s[n++] = sizeof(ext_17_4711) - 1;
        break;
    default:
        return -1;
    }
    return n;
}

static ErlDrvSSizeT op_catalogue(term_data *d, const unsigned char *p, size_t len,
                                 char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvTermData spec[4096];
    int n;
    if (len < 2)
        return reply("bad_wire", rbuf, rlen);
    if (cat_bin == NULL) {
        int i;
        cat_bin = driver_alloc_binary(200);
        for (i = 0; i < 200; i++)
            cat_bin->orig_bytes[i] = (char)i;
    }
    n = catalogue(d->port, p[1], spec);
    if (n < 0)
        return reply("done", rbuf, rlen);
    return reply_int(send_with(d->port, p[0], driver_mk_port(d->port),
                               driver_caller(d->port), spec, n),
                     rbuf, rlen);
}

static ErlDrvSSizeT op_threads(term_data *d, char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen)
{
    char text[64];
    int n, count, func, joined_by_stop, i;
    ErlDrvTermData port_term = driver_mk_port(d->port);
    ErlDrvTermData caller = driver_caller(d->port);
    if (len >= sizeof(text) || nthreads > 0)
        return reply("badarg", rbuf, rlen);
    memcpy(text, buf, len);
    text[len] = 0;
    if (sscanf(text, "%d %d %d %d", &n, &count, &func, &joined_by_stop) != 4
        || n < 1 || n > MAX_THREADS)
        return reply("badarg", rbuf, rlen);
    d->owns_threads = joined_by_stop;
    for (i = 0; i < n; i++) {
        struct sender *s = &threads[i];
        memset(s, 0, sizeof(*s));
        s->port_term = port_term;
        s->to = caller;
        s->func = func;
        s->index = i;
        s->count = count;
        s->monotonic = 1;
        if (pthread_create(&s->tid, NULL, sender_main, s) != 0)
            break;
        nthreads = i + 1;
    }
    return reply("ok", rbuf, rlen);
}

static ErlDrvSSizeT term_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                 ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    term_data *d = (term_data *)handle;
    const unsigned char *p = (const unsigned char *)buf;
    char text[SUMMARY_MAX + 32];
    switch (cmd) {
    case OP_SPEC:
        return op_spec(d, p, len, rbuf, rlen);
    case OP_CATALOGUE:
        return op_catalogue(d, p, len, rbuf, rlen);
    case OP_REMEMBER_CALLER:
    case OP_REMEMBER_PORT:
        if (len < 1 || p[0] >= NSLOTS)
            return reply("badarg", rbuf, rlen);
        slots[p[0]] = cmd == OP_REMEMBER_CALLER ? driver_caller(d->port)
                                                : driver_mk_port(d->port);
        return reply("ok", rbuf, rlen);
    case OP_REMEMBER_ATOM: {
        char name[256];
        if (len < 1 || p[0] >= NSLOTS || len - 1 >= sizeof(name))
            return reply("badarg", rbuf, rlen);
        memcpy(name, p + 1, len - 1);
        name[len - 1] = 0;
        slots[p[0]] = driver_mk_atom(name);
        return reply("ok", rbuf, rlen);
    }
    case OP_THREADS:
        return op_threads(d, buf, len, rbuf, rlen);
    case OP_JOIN:
        join_threads();
        /* fall through */
    case OP_LAST:
        pthread_mutex_lock(&last_lock);
        if (cmd == OP_JOIN)
            snprintf(text, sizeof(text), "%s", last_summary);
        else
            snprintf(text, sizeof(text), "{%s,%d}", last_summary, last_stop_ret);
        pthread_mutex_unlock(&last_lock);
        return reply(text, rbuf, rlen);
    case OP_FAIL_THEN: {
        ErlDrvTermData spec[] = {
            ERL_DRV_ATOM, driver_mk_atom("after_failure"),
            ERL_DRV_TUPLE, 1
        };
        ErlDrvTermData port_term = driver_mk_port(d->port);
        ErlDrvTermData caller = driver_caller(d->port);
        if (len < 1)
            return reply("badarg", rbuf, rlen);
        driver_failure_atom(d->port, "boom");
        return reply_int(send_with(d->port, p[0], port_term, caller, spec, 4),
                         rbuf, rlen);
    }
    case OP_ON_STOP:
        if (len < 1)
            return reply("badarg", rbuf, rlen);
        d->on_stop = p[0];
        return reply("ok", rbuf, rlen);
    default:
        return reply("unknown_op", rbuf, rlen);
    }
}
