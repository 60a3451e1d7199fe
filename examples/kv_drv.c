/*
 * kv_drv -- a line-oriented key/value store, written the way linked-in
 * drivers were written in the R13/R14 days (one C file, a static
 * ErlDrvEntry, hand-made replies), compiled against the 3.3 erl_driver.h
 * shipped with erl_driver_compat.
 *
 * Every port has its own table. The protocol:
 *
 *   port_command/2 -- text lines, any number per command; a line may be
 *   split across commands (the tail is kept until its newline arrives).
 *   Each line gets one reply message {Port, {data, Reply}}:
 *
 *       SET key value     ->  OK
 *       GET key           ->  VALUE value  |  NOT_FOUND
 *       DEL key           ->  OK           |  NOT_FOUND
 *       KEYS              ->  KEYS k1 k2 ... (in insertion order)
 *       CRASH             ->  no reply: the port exits with reason `crashed'
 *       anything else     ->  ERROR ...
 *
 *   Keys are words without spaces; a value is the rest of the line. A
 *   trailing "\r" is ignored. Empty lines are ignored.
 *
 *   port_control/3 (replies are text, returned as a list):
 *       1 COUNT  ->  "3"            number of keys
 *       2 CLEAR  ->  "OK"           forget all keys
 *       3 STATS  ->  "keys=3 bytes=24 lines=9 errors=1 pending=0"
 *       other    ->  badarg
 *
 *   port_call/3 (arguments and replies in the external term format,
 *   encoded and decoded by hand below -- no ei):
 *       1 GET   Key            ->  {ok, Value} | not_found
 *       2 SET   {Key, Value}   ->  ok
 *       3 COUNT []             ->  integer()
 *       other, or a bad argument  ->  badarg
 *   Key and Value may be binaries, strings or atoms; values come back as
 *   binaries.
 */

#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

#define KV_MAX_LINE     65536   /* longer lines are refused */
#define KV_INITIAL_KEYS 16

/* Control operations */
#define KV_CTL_COUNT 1
#define KV_CTL_CLEAR 2
#define KV_CTL_STATS 3

/* Call operations */
#define KV_CALL_GET   1
#define KV_CALL_SET   2
#define KV_CALL_COUNT 3

/* The parts of the external term format we speak */
#define EXT_VERSION          131
#define EXT_SMALL_INTEGER    97
#define EXT_INTEGER          98
#define EXT_ATOM             100
#define EXT_SMALL_TUPLE      104
#define EXT_NIL              106
#define EXT_STRING           107
#define EXT_BINARY           109
#define EXT_SMALL_BIG        110
#define EXT_SMALL_ATOM       115
#define EXT_ATOM_UTF8        118
#define EXT_SMALL_ATOM_UTF8  119

typedef struct {
    char *key;                  /* key and value share one allocation */
    ErlDrvSizeT klen;
    char *val;
    ErlDrvSizeT vlen;
} kv_entry;

typedef struct {
    ErlDrvPort port;
    kv_entry *entries;
    int n_entries;
    int max_entries;
    char *pending;              /* the start of an unfinished line */
    ErlDrvSizeT pending_len;
    ErlDrvSizeT pending_max;
    int skipping;               /* inside a line that was too long */
    unsigned long lines;
    unsigned long errors;
} kv_data;

static ErlDrvData kv_start(ErlDrvPort port, char *buff);
static void kv_stop(ErlDrvData handle);
static void kv_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT kv_control(ErlDrvData handle, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen);
static ErlDrvSSizeT kv_call(ErlDrvData handle, unsigned int command,
                            char *buf, ErlDrvSizeT len,
                            char **rbuf, ErlDrvSizeT rlen,
                            unsigned int *flags);

static ErlDrvEntry kv_driver_entry = {
    NULL,                       /* init */
    kv_start,                   /* start, called by open_port/2 */
    kv_stop,                    /* stop, called when the port closes */
    kv_output,                  /* output, called by port_command/2 */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "kv_drv",                   /* the driver name */
    NULL,                       /* finish */
    NULL,                       /* handle, reserved */
    kv_control,                 /* control, called by port_control/3 */
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    kv_call,                    /* call, called by port_call/3 */
    NULL,                       /* event, unused */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    0,                          /* driver_flags: driver-level locking */
    NULL,                       /* handle2, reserved */
    NULL,                       /* process_exit */
    NULL,                       /* stop_select */
    NULL                        /* emergency_close */
};

DRIVER_INIT(kv_drv)
{
    return &kv_driver_entry;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

static int kv_find(kv_data *d, const char *key, ErlDrvSizeT klen)
{
    int i;
    for (i = 0; i < d->n_entries; i++) {
        if (d->entries[i].klen == klen && memcmp(d->entries[i].key, key, klen) == 0)
            return i;
    }
    return -1;
}

/* Returns 0, or -1 when out of memory (the table is unchanged then). */
static int kv_set(kv_data *d, const char *key, ErlDrvSizeT klen,
                  const char *val, ErlDrvSizeT vlen)
{
    char *mem;
    int i = kv_find(d, key, klen);

    mem = driver_alloc(klen + vlen + 1);
    if (mem == NULL)
        return -1;
    memcpy(mem, key, klen);
    memcpy(mem + klen, val, vlen);
    mem[klen + vlen] = '\0';

    if (i < 0) {
        if (d->n_entries == d->max_entries) {
            int max = d->max_entries * 2;
            kv_entry *e = driver_realloc(d->entries, (ErlDrvSizeT)max * sizeof(kv_entry));
            if (e == NULL) {
                driver_free(mem);
                return -1;
            }
            d->entries = e;
            d->max_entries = max;
        }
        i = d->n_entries++;
    } else {
        driver_free(d->entries[i].key);
    }
    d->entries[i].key = mem;
    d->entries[i].klen = klen;
    d->entries[i].val = mem + klen;
    d->entries[i].vlen = vlen;
    return 0;
}

static int kv_del(kv_data *d, const char *key, ErlDrvSizeT klen)
{
    int i = kv_find(d, key, klen);
    if (i < 0)
        return -1;
    driver_free(d->entries[i].key);
    memmove(&d->entries[i], &d->entries[i + 1],
            (size_t)(d->n_entries - i - 1) * sizeof(kv_entry));
    d->n_entries--;
    return 0;
}

static void kv_clear(kv_data *d)
{
    int i;
    for (i = 0; i < d->n_entries; i++)
        driver_free(d->entries[i].key);
    d->n_entries = 0;
}

static unsigned long kv_bytes(kv_data *d)
{
    unsigned long n = 0;
    int i;
    for (i = 0; i < d->n_entries; i++)
        n += (unsigned long)(d->entries[i].klen + d->entries[i].vlen);
    return n;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */
/* ------------------------------------------------------------------ */

static ErlDrvData kv_start(ErlDrvPort port, char *buff)
{
    kv_data *d;

    (void)buff;
    d = driver_alloc(sizeof(kv_data));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(kv_data));
    d->port = port;
    d->max_entries = KV_INITIAL_KEYS;
    d->entries = driver_alloc(KV_INITIAL_KEYS * sizeof(kv_entry));
    if (d->entries == NULL) {
        driver_free(d);
        return ERL_DRV_ERROR_GENERAL;
    }
    return (ErlDrvData)d;
}

static void kv_stop(ErlDrvData handle)
{
    kv_data *d = (kv_data *)handle;

    kv_clear(d);
    driver_free(d->entries);
    if (d->pending != NULL)
        driver_free(d->pending);
    driver_free(d);
}

/* ------------------------------------------------------------------ */
/* port_command: the line protocol                                     */
/* ------------------------------------------------------------------ */

/*
 * Sends "<head><body>\n" as one message. Returns 0, or -1 when the port
 * has failed (out of memory): see do_line().
 */
static int reply(kv_data *d, const char *head, const char *body, ErlDrvSizeT blen)
{
    char small[256];
    ErlDrvSizeT hlen = strlen(head);
    ErlDrvSizeT n = hlen + blen + 1;
    char *out = small;

    if (n > sizeof(small)) {
        out = driver_alloc(n);
        if (out == NULL) {
            driver_failure_atom(d->port, "enomem");
            return -1;
        }
    }
    memcpy(out, head, hlen);
    memcpy(out + hlen, body, blen);
    out[n - 1] = '\n';
    driver_output(d->port, out, n);
    if (out != small)
        driver_free(out);
    return 0;
}

static int reply_keys(kv_data *d)
{
    ErlDrvSizeT n = 5;          /* "KEYS" + "\n" */
    char *out, *p;
    int i;

    for (i = 0; i < d->n_entries; i++)
        n += 1 + d->entries[i].klen;
    out = driver_alloc(n);
    if (out == NULL) {
        driver_failure_atom(d->port, "enomem");
        return -1;
    }
    memcpy(out, "KEYS", 4);
    p = out + 4;
    for (i = 0; i < d->n_entries; i++) {
        *p++ = ' ';
        memcpy(p, d->entries[i].key, d->entries[i].klen);
        p += d->entries[i].klen;
    }
    *p = '\n';
    driver_output(d->port, out, n);
    driver_free(out);
    return 0;
}

static int reply_error(kv_data *d, const char *why)
{
    d->errors++;
    return reply(d, "ERROR ", why, strlen(why));
}

/* Splits off the next word. */
static ErlDrvSizeT word(const char *s, ErlDrvSizeT len)
{
    ErlDrvSizeT i = 0;
    while (i < len && s[i] != ' ')
        i++;
    return i;
}

/*
 * Runs one line (without its newline). Returns 0, or -1 when the port
 * has failed: the caller must then return at once without touching the
 * port data, which the runtime may already have freed (a native port runs
 * stop from inside driver_failure_atom when nothing is queued).
 */
static int do_line(kv_data *d, const char *line, ErlDrvSizeT len)
{
    ErlDrvSizeT clen, klen;
    const char *key;
    int i;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0;
    d->lines++;

    clen = word(line, len);
    key = line + clen + 1;
    klen = clen < len ? word(key, len - clen - 1) : 0;

    if (clen == 3 && memcmp(line, "SET", 3) == 0) {
        if (klen == 0 || clen + 1 + klen >= len)
            return reply_error(d, "usage: SET key value");
        if (kv_set(d, key, klen, key + klen + 1, len - clen - klen - 2) < 0)
            return reply_error(d, "out of memory");
        return reply(d, "OK", "", 0);
    }
    if (clen == 3 && memcmp(line, "GET", 3) == 0) {
        if (klen == 0 || clen + 1 + klen != len)
            return reply_error(d, "usage: GET key");
        if ((i = kv_find(d, key, klen)) < 0)
            return reply(d, "NOT_FOUND", "", 0);
        return reply(d, "VALUE ", d->entries[i].val, d->entries[i].vlen);
    }
    if (clen == 3 && memcmp(line, "DEL", 3) == 0) {
        if (klen == 0 || clen + 1 + klen != len)
            return reply_error(d, "usage: DEL key");
        if (kv_del(d, key, klen) < 0)
            return reply(d, "NOT_FOUND", "", 0);
        return reply(d, "OK", "", 0);
    }
    if (len == 4 && memcmp(line, "KEYS", 4) == 0)
        return reply_keys(d);
    if (len == 5 && memcmp(line, "CRASH", 5) == 0) {
        /* The classic way to give up: the port closes and the owner,
         * which is linked to it, gets {'EXIT', Port, crashed}. */
        driver_failure_atom(d->port, "crashed");
        return -1;
    }
    return reply_error(d, "unknown command");
}

/* Appends to the unfinished line; -1 when out of memory. */
static int keep(kv_data *d, const char *buf, ErlDrvSizeT len)
{
    if (d->pending_len + len > d->pending_max) {
        ErlDrvSizeT max = d->pending_max ? d->pending_max : 64;
        char *p;
        while (max < d->pending_len + len)
            max *= 2;
        p = d->pending ? driver_realloc(d->pending, max) : driver_alloc(max);
        if (p == NULL)
            return -1;
        d->pending = p;
        d->pending_max = max;
    }
    memcpy(d->pending + d->pending_len, buf, len);
    d->pending_len += len;
    return 0;
}

static void kv_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    kv_data *d = (kv_data *)handle;

    while (len > 0) {
        char *nl = memchr(buf, '\n', len);
        ErlDrvSizeT n = nl ? (ErlDrvSizeT)(nl - buf) : len;

        if (d->skipping) {
            /* the rest of a line that was too long */
            if (nl != NULL)
                d->skipping = 0;
        } else if (d->pending_len + n > KV_MAX_LINE) {
            d->pending_len = 0;
            d->skipping = (nl == NULL);
            d->lines++;
            if (reply_error(d, "line too long") < 0)
                return;
        } else if (nl == NULL) {
            if (keep(d, buf, n) < 0) {
                driver_failure_atom(d->port, "enomem");
                return;
            }
        } else if (d->pending_len == 0) {
            /* a whole line inside this command: no copy */
            if (do_line(d, buf, n) < 0)
                return;
        } else {
            if (keep(d, buf, n) < 0) {
                driver_failure_atom(d->port, "enomem");
                return;
            }
            n = d->pending_len;
            d->pending_len = 0;
            if (do_line(d, d->pending, n) < 0)
                return;
            n = (ErlDrvSizeT)(nl - buf);
        }
        if (nl == NULL)
            break;
        buf += n + 1;
        len -= n + 1;
    }
}

/* ------------------------------------------------------------------ */
/* port_control: text replies                                          */
/* ------------------------------------------------------------------ */

static ErlDrvSSizeT kv_control(ErlDrvData handle, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen)
{
    kv_data *d = (kv_data *)handle;
    char text[160];
    ErlDrvSizeT n;

    (void)buf; (void)len;
    switch (command) {
    case KV_CTL_COUNT:
        sprintf(text, "%d", d->n_entries);
        break;
    case KV_CTL_CLEAR:
        kv_clear(d);
        strcpy(text, "OK");
        break;
    case KV_CTL_STATS:
        sprintf(text, "keys=%d bytes=%lu lines=%lu errors=%lu pending=%lu",
                d->n_entries, kv_bytes(d), d->lines, d->errors,
                (unsigned long)d->pending_len);
        break;
    default:
        return -1;              /* port_control/3 raises badarg */
    }
    n = strlen(text);
    if (n > rlen) {
        /* The runtime's buffer is too small: hand over one of ours, which
         * the runtime frees with driver_free. */
        char *p = driver_alloc(n);
        if (p == NULL)
            return -1;
        *rbuf = p;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

/* ------------------------------------------------------------------ */
/* port_call: a tiny external term format codec                        */
/* ------------------------------------------------------------------ */

typedef struct {
    char *buf;
    ErlDrvSizeT len;
    ErlDrvSizeT size;
    int own;                    /* buf was driver_alloc'ed by us */
    int failed;
} enc;

static void put(enc *e, const void *p, ErlDrvSizeT n)
{
    if (e->failed)
        return;
    if (e->len + n > e->size) {
        ErlDrvSizeT size = e->size * 2 + n;
        char *b = e->own ? driver_realloc(e->buf, size) : driver_alloc(size);
        if (b == NULL) {
            e->failed = 1;
            return;
        }
        if (!e->own)
            memcpy(b, e->buf, e->len);
        e->buf = b;
        e->size = size;
        e->own = 1;
    }
    memcpy(e->buf + e->len, p, n);
    e->len += n;
}

static void put_byte(enc *e, int b)
{
    unsigned char c = (unsigned char)b;
    put(e, &c, 1);
}

static void put_be32(enc *e, unsigned long v)
{
    unsigned char b[4];
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    put(e, b, 4);
}

static void enc_atom(enc *e, const char *name)
{
    ErlDrvSizeT n = strlen(name);
    put_byte(e, EXT_ATOM);
    put_byte(e, (int)(n >> 8));
    put_byte(e, (int)(n & 0xff));
    put(e, name, n);
}

static void enc_tuple(enc *e, int arity)
{
    put_byte(e, EXT_SMALL_TUPLE);
    put_byte(e, arity);
}

static void enc_binary(enc *e, const char *p, ErlDrvSizeT n)
{
    put_byte(e, EXT_BINARY);
    put_be32(e, (unsigned long)n);
    put(e, p, n);
}

static void enc_uint(enc *e, unsigned long v)
{
    if (v < 256) {
        put_byte(e, EXT_SMALL_INTEGER);
        put_byte(e, (int)v);
    } else if (v < 0x80000000UL) {
        put_byte(e, EXT_INTEGER);
        put_be32(e, v);
    } else {
        unsigned char digits[sizeof(unsigned long)];
        int n = 0;
        while (v != 0) {
            digits[n++] = (unsigned char)(v & 0xff);
            v >>= 8;
        }
        put_byte(e, EXT_SMALL_BIG);
        put_byte(e, n);
        put_byte(e, 0);         /* sign: positive */
        put(e, digits, (ErlDrvSizeT)n);
    }
}

/* Decodes a binary, string or atom at *pos as raw bytes. */
static int dec_bytes(const char *buf, ErlDrvSizeT len, ErlDrvSizeT *pos,
                     const char **p, ErlDrvSizeT *n)
{
    const unsigned char *s = (const unsigned char *)buf + *pos;
    ErlDrvSizeT left = len - *pos, hdr;

    if (left < 1)
        return -1;
    switch (s[0]) {
    case EXT_NIL:               /* "" */
        *p = buf + *pos;
        *n = 0;
        *pos += 1;
        return 0;
    case EXT_BINARY:
        if (left < 5)
            return -1;
        hdr = 5;
        *n = ((ErlDrvSizeT)s[1] << 24) | ((ErlDrvSizeT)s[2] << 16)
            | ((ErlDrvSizeT)s[3] << 8) | s[4];
        break;
    case EXT_STRING:
    case EXT_ATOM:
    case EXT_ATOM_UTF8:
        if (left < 3)
            return -1;
        hdr = 3;
        *n = ((ErlDrvSizeT)s[1] << 8) | s[2];
        break;
    case EXT_SMALL_ATOM:
    case EXT_SMALL_ATOM_UTF8:
        if (left < 2)
            return -1;
        hdr = 2;
        *n = s[1];
        break;
    default:
        return -1;
    }
    if (left - hdr < *n)
        return -1;
    *p = buf + *pos + hdr;
    *pos += hdr + *n;
    return 0;
}

static ErlDrvSSizeT kv_call(ErlDrvData handle, unsigned int command,
                            char *buf, ErlDrvSizeT len,
                            char **rbuf, ErlDrvSizeT rlen,
                            unsigned int *flags)
{
    kv_data *d = (kv_data *)handle;
    ErlDrvSizeT pos = 1;
    const char *key, *val;
    ErlDrvSizeT klen, vlen;
    enc e;

    (void)flags;
    if (len < 1 || (unsigned char)buf[0] != EXT_VERSION)
        return -1;

    e.buf = *rbuf;
    e.len = 0;
    e.size = rlen;
    e.own = 0;
    e.failed = 0;
    put_byte(&e, EXT_VERSION);

    switch (command) {
    case KV_CALL_GET: {
        int i;
        if (dec_bytes(buf, len, &pos, &key, &klen) < 0 || pos != len)
            return -1;
        i = kv_find(d, key, klen);
        if (i < 0) {
            enc_atom(&e, "not_found");
        } else {
            enc_tuple(&e, 2);
            enc_atom(&e, "ok");
            enc_binary(&e, d->entries[i].val, d->entries[i].vlen);
        }
        break;
    }
    case KV_CALL_SET:
        if (len < 3 || (unsigned char)buf[1] != EXT_SMALL_TUPLE || buf[2] != 2)
            return -1;
        pos = 3;
        if (dec_bytes(buf, len, &pos, &key, &klen) < 0
            || dec_bytes(buf, len, &pos, &val, &vlen) < 0 || pos != len)
            return -1;
        if (kv_set(d, key, klen, val, vlen) < 0)
            return -1;
        enc_atom(&e, "ok");
        break;
    case KV_CALL_COUNT:
        enc_uint(&e, (unsigned long)d->n_entries);
        break;
    default:
        return -1;              /* port_call/3 raises badarg */
    }

    if (e.failed) {
        if (e.own)
            driver_free(e.buf);
        return -1;
    }
    *rbuf = e.buf;
    return (ErlDrvSSizeT)e.len;
}
