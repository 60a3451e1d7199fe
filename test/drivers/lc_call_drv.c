/* lc_call_drv: port_call argument encoding and reply decoding. Ops:
 *   1  reply with the argument bytes unchanged (echo of the term)
 *   2  reply with a BINARY_EXT wrapping the argument bytes, so that
 *      port_call returns the encoding the driver received
 *   3  rlen as an INTEGER_EXT          4  *flags on entry as INTEGER_EXT
 *   5  return 0                        6  return -1 (general error)
 *   7  return -3                       8  invalid term <<131,255,0>>
 *   9  no version byte <<97,5>>       10  <<131,97,5,97,6>> (trailing bytes)
 *  11  a 1000-byte binary in a driver_alloc'ed reply
 *  12  remember driver_caller, reply 'ok'
 *  13  {CallerIsSaved, CallerIsConnected} as small integers
 *  other ops: the op as an INTEGER_EXT */
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_call_start(ErlDrvPort port, char *command);
static void lc_call_stop(ErlDrvData handle);
static ErlDrvSSizeT lc_call_call(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len, char **rbuf,
                                 ErlDrvSizeT rlen, unsigned int *flags);

static ErlDrvEntry lc_call_entry = {
    NULL,                       /* init */
    lc_call_start,
    lc_call_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_call_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    NULL,                       /* control */
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
    NULL,                       /* flush */
    lc_call_call,
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

DRIVER_INIT(lc_call_drv) { return &lc_call_entry; }

typedef struct {
    ErlDrvPort port;
    ErlDrvTermData saved_caller;
} lc_call_data;

static ErlDrvData lc_call_start(ErlDrvPort port, char *command)
{
    lc_call_data *d = driver_alloc(sizeof(lc_call_data));
    (void)command;
    d->port = port;
    d->saved_caller = 0;
    return (ErlDrvData)d;
}

static void lc_call_stop(ErlDrvData handle)
{
    driver_free(handle);
}

static void put32(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The reply buffer for len bytes: the default one or driver_alloc'ed. */
static unsigned char *reply_buf(char **rbuf, ErlDrvSizeT rlen, ErlDrvSizeT len)
{
    if (len > rlen)
        *rbuf = driver_alloc(len);
    return (unsigned char *)*rbuf;
}

static ErlDrvSSizeT integer_reply(char **rbuf, ErlDrvSizeT rlen, unsigned long v)
{
    unsigned char *r = reply_buf(rbuf, rlen, 6);
    r[0] = 131;
    r[1] = 98;                  /* INTEGER_EXT */
    put32(r + 2, v);
    return 6;
}

static ErlDrvSSizeT lc_call_call(ErlDrvData handle, unsigned int op,
                                 char *buf, ErlDrvSizeT len, char **rbuf,
                                 ErlDrvSizeT rlen, unsigned int *flags)
{
    lc_call_data *d = (lc_call_data *)handle;
    unsigned char *r;

    switch (op) {
    case 1:
        r = reply_buf(rbuf, rlen, len);
        memcpy(r, buf, len);
        return (ErlDrvSSizeT)len;
    case 2:
        r = reply_buf(rbuf, rlen, len + 6);
        r[0] = 131;
        r[1] = 109;             /* BINARY_EXT */
        put32(r + 2, len);
        memcpy(r + 6, buf, len);
        return (ErlDrvSSizeT)(len + 6);
    case 3:
        return integer_reply(rbuf, rlen, rlen);
    case 4:
        return integer_reply(rbuf, rlen, *flags);
    case 5:
        return 0;
    case 6:
        return -1;
    case 7:
        return -3;
    case 8:
        memcpy(*rbuf, "\203\377\000", 3);
        return 3;
    case 9:
        memcpy(*rbuf, "\141\005", 2);
        return 2;
    case 10:
        memcpy(*rbuf, "\203\141\005\141\006", 5);
        return 5;
    case 11:
        r = reply_buf(rbuf, rlen, 1006);
        r[0] = 131;
        r[1] = 109;
        put32(r + 2, 1000);
        memset(r + 6, 'B', 1000);
        return 1006;
    case 12:
        d->saved_caller = driver_caller(d->port);
        memcpy(*rbuf, "\203\144\000\002ok", 6);   /* ATOM_EXT ok */
        return 6;
    case 13:
        r = (unsigned char *)*rbuf;
        r[0] = 131;
        r[1] = 104;             /* SMALL_TUPLE_EXT */
        r[2] = 2;
        r[3] = 97;              /* SMALL_INTEGER_EXT */
        r[4] = driver_caller(d->port) == d->saved_caller;
        r[5] = 97;
        r[6] = driver_caller(d->port) == driver_connected(d->port);
        return 7;
    default:
        return integer_reply(rbuf, rlen, op);
    }
}
