/* lg_out_drv: seed-era (interface 1.5, int ABI) twin of lc_out_drv, written
 * against the R13B/R14B manual's prototypes (int lengths, offsets and
 * skips, the 24-byte ErlIOVec it builds itself, int control) and compiled
 * with -DERL_DRV_COMPAT_LEGACY_INT_API (Makefile). The same operations:
 *
 * lc_out_drv: the message shapes of driver_output, driver_output2,
 * driver_output_binary and driver_outputv (notes §8 table).
 *
 * port_control(P, Row, "") performs one call of the table and replies
 * (as a list) with its return value; the message goes to the owner.
 * Op 50 reports driver_vec_to_buf results. port_command data is echoed
 * with driver_output, so port_info input/output can be checked. */
#include <stdio.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData lc_out_start(ErlDrvPort port, char *command);
static void lc_out_output(ErlDrvData handle, char *buf, int len);
static int lc_out_control(ErlDrvData handle, unsigned int op,
                                   char *buf, int len,
                                   char **rbuf, int rlen);

static ErlDrvEntry lc_out_entry = {
    NULL,                       /* init */
    lc_out_start,
    NULL,                       /* stop */
    lc_out_output,
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lg_out_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    lc_out_control,
    NULL,                       /* timeout */
    NULL,                       /* outputv */
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

DRIVER_INIT(lg_out_drv) { return &lc_out_entry; }

#define LONG72 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst"

/* An ErlIOVec of up to four driver binaries. */
typedef struct {
    ErlIOVec ev;
    SysIOVec iov[4];
    ErlDrvBinary *binv[4];
} lc_vec;

static void vec_init(lc_vec *v, const char *a, const char *b, const char *c)
{
    const char *parts[3];
    int i;

    parts[0] = a; parts[1] = b; parts[2] = c;
    v->ev.vsize = 0;
    v->ev.size = 0;
    v->ev.iov = v->iov;
    v->ev.binv = v->binv;
    for (i = 0; i < 3 && parts[i] != NULL; i++) {
        size_t len = strlen(parts[i]);
        v->binv[i] = driver_alloc_binary(len);
        memcpy(v->binv[i]->orig_bytes, parts[i], len);
        v->iov[i].iov_base = v->binv[i]->orig_bytes;
        v->iov[i].iov_len = len;
        v->ev.size += len;
        v->ev.vsize++;
    }
}

static void vec_free(lc_vec *v)
{
    int i;
    for (i = 0; i < v->ev.vsize; i++)
        driver_free_binary(v->binv[i]);
}

static int output_binary(ErlDrvPort port, char *hbuf, int hlen,
                         const char *data, int offset, int len)
{
    ErlDrvBinary *bin = driver_alloc_binary(strlen(data));
    int r;
    memcpy(bin->orig_bytes, data, strlen(data));
    r = driver_output_binary(port, hbuf, hlen, bin, offset, len);
    driver_free_binary(bin);
    return r;
}

static int outputv(ErlDrvPort port, char *hbuf, int hlen,
                   const char *a, const char *b, const char *c,
                   int skip)
{
    lc_vec v;
    int r;
    vec_init(&v, a, b, c);
    r = driver_outputv(port, hbuf, hlen, &v.ev, skip);
    vec_free(&v);
    return r;
}

static int vec_to_buf(char *text)
{
    lc_vec v;
    char buf[16];
    int n1, n2, n3;

    vec_init(&v, "ab", "cd", "ef");
    memset(buf, 0, sizeof(buf));
    n1 = driver_vec_to_buf(&v.ev, buf, 4);
    n2 = driver_vec_to_buf(&v.ev, buf + 4, 10);
    n3 = driver_vec_to_buf(&v.ev, buf + 14, 0);
    vec_free(&v);
    return sprintf(text, "%lu %lu %lu %s", (unsigned long)n1,
                   (unsigned long)n2, (unsigned long)n3, buf);
}

static ErlDrvData lc_out_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void lc_out_output(ErlDrvData handle, char *buf, int len)
{
    driver_output((ErlDrvPort)handle, buf, len);
}

static int lc_out_control(ErlDrvData handle, unsigned int op,
                                   char *buf, int len,
                                   char **rbuf, int rlen)
{
    ErlDrvPort port = (ErlDrvPort)handle;
    char hello[] = "hello", he[] = "he", xy[] = "XY";
    int r;

    (void)buf; (void)len; (void)rlen;
    switch (op) {
    case 1:  r = driver_output(port, hello, 5); break;
    case 2:  r = driver_output(port, hello, 0); break;
    case 3:  r = driver_output(port, NULL, 0); break;
    case 4:  r = driver_output2(port, he, 0, hello, 5); break;
    case 5:  r = driver_output2(port, he, 2, "llo", 3); break;
    case 6:  r = driver_output2(port, hello, 5, he, 0); break;
    case 7:  r = driver_output2(port, he, 2, NULL, 0); break;
    case 8:  r = driver_output2(port, NULL, 0, NULL, 0); break;
    case 9:  r = output_binary(port, he, 2, "llo", 1, 2); break;
    case 10: r = output_binary(port, he, 0, "hello", 0, 5); break;
    case 11: r = output_binary(port, he, 2, "llo", 3, 0); break;
    case 12: r = outputv(port, xy, 0, "ab", "cd", "ef", 0); break;
    case 13: r = outputv(port, xy, 2, "ab", "cd", NULL, 0); break;
    case 14: r = outputv(port, xy, 2, "ab", "cd", "ef", 3); break;
    case 15: r = outputv(port, NULL, 0, "ab", "cd", "ef", 6); break;
    case 16: r = outputv(port, xy, 2, "ab", "cd", "ef", 6); break;
    case 17: r = outputv(port, NULL, 0, LONG72, "x", NULL, 1); break;
    case 50: return vec_to_buf(*rbuf);
    default: return -1;
    }
    return sprintf(*rbuf, "%d", r);
}
