/*
 * lc_async_drv: asynchronous jobs (driver_async, ready_async, async_free,
 * driver_async_port_key) and the seed's driver_async_cancel.
 *
 * Jobs of kind WORK append their sequence number (and the thread they ran
 * on) to a per-port, per-key log from async_invoke; ready_async outputs
 * "{done,Key,Seq}" and frees the job; async_free frees it too. Global
 * counters (one set per loaded copy of the driver) count the WORK jobs
 * invoked, completed through ready_async and freed through async_free; a
 * WAITER job waits in the pool (plain pthreads) until the counters show a
 * number of completions and then reports them from ready_async, so the
 * test learns about jobs of a port that is gone without sleeping.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1 "K N"  N WORK jobs, each driver_async(port, &key, ...) with key = K
 *            -> "{AllPositive,Increasing,KeyAfter}" (the ids returned,
 *            and what driver_async left in key after the last call)
 *   2 "K"    the log of key K -> "{[Seq...],SameThread}"
 *   3        a BLOCKED job on key 0: its invoke waits for the gate
 *            -> "Ret > 0" as true/false
 *   4        opens the gate (wakes every BLOCKED job) -> "ok"
 *   5 "N"    a WAITER job (key NULL): waits until WORK jobs completed
 *            (ready_async + async_free) reach N, then its ready_async
 *            outputs "{counts,Ready,Freed,Invoked}" -> "ok"
 *   6        resets the counters and closes the gate -> "ok"
 *   7        driver_async(NULL, NULL, WORK job ...) -> "Ret"
 *   8        driver_async_port_key(port) -> "Key"
 *   9        driver_system_info: async_threads -> "N"
 *  10 "Id"   driver_async_cancel(Id) (a weak import: OTP 25 does not
 *            export it) -> "absent" | "Ret"
 *  11 "K"    one WORK job on key K -> "Id"
 *
 * A BLOCKED job counts as a WORK job (invoked, ready or freed); it logs
 * sequence 0 on key 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "erl_driver.h"

/* Removed from OTP 25's header and runtime: weak, so that the driver also
 * loads natively (the address is then NULL). */
extern int driver_async_cancel(unsigned int id) __attribute__((weak));

static ErlDrvData async_start(ErlDrvPort port, char *command);
static void async_stop(ErlDrvData handle);
static ErlDrvSSizeT async_control(ErlDrvData handle, unsigned int op,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen);
static void async_ready(ErlDrvData handle, ErlDrvThreadData thread_data);

static ErlDrvEntry async_entry = {
    NULL,                       /* init */
    async_start,
    async_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_async_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    async_control,
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    async_ready,
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

DRIVER_INIT(lc_async_drv) { return &async_entry; }

#define OP_SUBMIT   1
#define OP_LOG      2
#define OP_BLOCK    3
#define OP_RELEASE  4
#define OP_WAIT     5
#define OP_RESET    6
#define OP_NULLPORT 7
#define OP_PORTKEY  8
#define OP_THREADS  9
#define OP_CANCEL   10
#define OP_ONE      11

#define KEYS    8
#define LOG_MAX 256

#define WORK    0
#define BLOCKED 1
#define WAITER  2

typedef struct {
    ErlDrvPort port;
    int refs;                   /* the port and its jobs (under g_mtx) */
    pthread_mutex_t mtx;        /* guards the logs (pool threads) */
    int n[KEYS];
    int seq[KEYS][LOG_MAX];
    pthread_t thr[KEYS][LOG_MAX];
} AsyncData;

typedef struct {
    int kind;
    int key;
    int seq;
    int target;                 /* WAITER: completions to wait for */
    AsyncData *d;               /* NULL for a job without a port */
    char result[96];            /* WAITER: what ready_async outputs */
} Job;

static pthread_mutex_t g_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cnd = PTHREAD_COND_INITIALIZER;
static int g_gate_open;
static int g_invoked, g_ready, g_freed;

static ErlDrvData async_start(ErlDrvPort port, char *command)
{
    AsyncData *d;

    (void)command;
    d = driver_alloc(sizeof(AsyncData));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(AsyncData));
    d->port = port;
    d->refs = 1;
    pthread_mutex_init(&d->mtx, NULL);
    return (ErlDrvData)d;
}

/* The port data lives until the port and every job of it are gone (a job
 * may still run after its port closed). */
static void unref(AsyncData *d)
{
    int left;

    if (d == NULL)
        return;
    pthread_mutex_lock(&g_mtx);
    left = --d->refs;
    pthread_mutex_unlock(&g_mtx);
    if (left == 0) {
        pthread_mutex_destroy(&d->mtx);
        driver_free(d);
    }
}

static void async_stop(ErlDrvData handle)
{
    unref((AsyncData *)handle);
}

static void count(int *counter)
{
    pthread_mutex_lock(&g_mtx);
    (*counter)++;
    pthread_cond_broadcast(&g_cnd);
    pthread_mutex_unlock(&g_mtx);
}

static void job_invoke(void *arg)
{
    Job *j = (Job *)arg;
    struct timespec until;
    int rc = 0;

    if (j->kind == WAITER) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&g_mtx);
        while (g_ready + g_freed < j->target && rc == 0)
            rc = pthread_cond_timedwait(&g_cnd, &g_mtx, &until);
        snprintf(j->result, sizeof(j->result), "{counts,%d,%d,%d}",
                 g_ready, g_freed, g_invoked);
        pthread_mutex_unlock(&g_mtx);
        return;
    }
    if (j->kind == BLOCKED) {
        pthread_mutex_lock(&g_mtx);
        while (!g_gate_open)
            pthread_cond_wait(&g_cnd, &g_mtx);
        pthread_mutex_unlock(&g_mtx);
    }
    count(&g_invoked);
    if (j->d == NULL)
        return;
    /* A BLOCKED job never logs. */
    if (j->kind == WORK) {
        pthread_mutex_lock(&j->d->mtx);
        if (j->d->n[j->key] < LOG_MAX) {
            j->d->seq[j->key][j->d->n[j->key]] = j->seq;
            j->d->thr[j->key][j->d->n[j->key]] = pthread_self();
            j->d->n[j->key]++;
        }
        pthread_mutex_unlock(&j->d->mtx);
    }
}

static void job_free(void *arg)
{
    Job *j = (Job *)arg;

    if (j->kind != WAITER)
        count(&g_freed);
    unref(j->d);
    driver_free(j);
}

static void async_ready(ErlDrvData handle, ErlDrvThreadData thread_data)
{
    AsyncData *d = (AsyncData *)handle;
    Job *j = (Job *)thread_data;
    char msg[128];
    int n;

    if (j->kind == WAITER) {
        driver_output(d->port, j->result, strlen(j->result));
    } else {
        n = snprintf(msg, sizeof(msg), "{done,%d,%d}", j->key, j->seq);
        driver_output(d->port, msg, n);
        count(&g_ready);
    }
    unref(j->d);
    driver_free(j);
}

static Job *new_job(AsyncData *d, int kind, int key, int seq)
{
    Job *j = driver_alloc(sizeof(Job));

    if (j == NULL)
        return NULL;
    memset(j, 0, sizeof(Job));
    j->kind = kind;
    j->key = key;
    j->seq = seq;
    j->d = d;
    if (d != NULL) {
        pthread_mutex_lock(&g_mtx);
        d->refs++;
        pthread_mutex_unlock(&g_mtx);
    }
    return j;
}

static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);

    if (n > rlen)
        n = rlen;
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

static ErlDrvSSizeT log_reply(AsyncData *d, int key, char **rbuf, ErlDrvSizeT rlen)
{
    char *out;
    size_t size = 16 + 8 * LOG_MAX, pos = 0;
    int i, same = 1;
    ErlDrvSSizeT n;

    out = driver_alloc(size);
    if (out == NULL)
        return -1;
    pthread_mutex_lock(&d->mtx);
    pos += snprintf(out + pos, size - pos, "{[");
    for (i = 0; i < d->n[key]; i++) {
        pos += snprintf(out + pos, size - pos, "%s%d", i ? "," : "", d->seq[key][i]);
        if (!pthread_equal(d->thr[key][i], d->thr[key][0]))
            same = 0;
    }
    pos += snprintf(out + pos, size - pos, "],%s}", same ? "true" : "false");
    pthread_mutex_unlock(&d->mtx);
    if (pos > rlen) {
        *rbuf = driver_alloc(pos);
        if (*rbuf == NULL) {
            driver_free(out);
            return -1;
        }
    }
    memcpy(*rbuf, out, pos);
    n = (ErlDrvSSizeT)pos;
    driver_free(out);
    return n;
}

static ErlDrvSSizeT async_control(ErlDrvData handle, unsigned int op,
                                  char *buf, ErlDrvSizeT len,
                                  char **rbuf, ErlDrvSizeT rlen)
{
    AsyncData *d = (AsyncData *)handle;
    ErlDrvSysInfo info;
    char arg[64];
    char out[128];
    unsigned int key = 0;
    long ret, prev = 0;
    int k = 0, n = 0, i, all_positive = 1, increasing = 1;
    Job *j;

    if (len >= sizeof(arg))
        return -1;
    memcpy(arg, buf, len);
    arg[len] = '\0';

    switch (op) {
    case OP_SUBMIT:
        if (sscanf(arg, "%d %d", &k, &n) != 2 || k < 0 || k >= KEYS)
            return -1;
        for (i = 1; i <= n; i++) {
            j = new_job(d, WORK, k, i);
            if (j == NULL)
                return -1;
            key = (unsigned int)k;
            ret = driver_async(d->port, &key, job_invoke, j, job_free);
            if (ret <= 0)
                all_positive = 0;
            if (i > 1 && ret <= prev)
                increasing = 0;
            prev = ret;
        }
        snprintf(out, sizeof(out), "{%s,%s,%u}", all_positive ? "true" : "false",
                 increasing ? "true" : "false", key);
        return reply(rbuf, rlen, out);
    case OP_LOG:
        k = atoi(arg);
        if (k < 0 || k >= KEYS)
            return -1;
        return log_reply(d, k, rbuf, rlen);
    case OP_BLOCK:
        j = new_job(d, BLOCKED, 0, 0);
        if (j == NULL)
            return -1;
        key = 0;
        ret = driver_async(d->port, &key, job_invoke, j, job_free);
        return reply(rbuf, rlen, ret > 0 ? "true" : "false");
    case OP_RELEASE:
        pthread_mutex_lock(&g_mtx);
        g_gate_open = 1;
        pthread_cond_broadcast(&g_cnd);
        pthread_mutex_unlock(&g_mtx);
        return reply(rbuf, rlen, "ok");
    case OP_WAIT:
        j = new_job(d, WAITER, 0, 0);
        if (j == NULL)
            return -1;
        j->target = atoi(arg);
        driver_async(d->port, NULL, job_invoke, j, job_free);
        return reply(rbuf, rlen, "ok");
    case OP_RESET:
        pthread_mutex_lock(&g_mtx);
        g_gate_open = 0;
        g_invoked = g_ready = g_freed = 0;
        pthread_mutex_unlock(&g_mtx);
        return reply(rbuf, rlen, "ok");
    case OP_NULLPORT:
        j = new_job(NULL, WORK, 0, 0);
        if (j == NULL)
            return -1;
        ret = driver_async(NULL, NULL, job_invoke, j, job_free);
        snprintf(out, sizeof(out), "%ld", ret);
        return reply(rbuf, rlen, out);
    case OP_PORTKEY:
        snprintf(out, sizeof(out), "%u", driver_async_port_key(d->port));
        return reply(rbuf, rlen, out);
    case OP_THREADS:
        driver_system_info(&info, sizeof(info));
        snprintf(out, sizeof(out), "%d", info.async_threads);
        return reply(rbuf, rlen, out);
    case OP_CANCEL:
        if (!driver_async_cancel)
            return reply(rbuf, rlen, "absent");
        snprintf(out, sizeof(out), "%d", driver_async_cancel((unsigned int)strtoul(arg, NULL, 10)));
        return reply(rbuf, rlen, out);
    case OP_ONE:
        k = atoi(arg);
        if (k < 0 || k >= KEYS)
            return -1;
        j = new_job(d, WORK, k, 1);
        if (j == NULL)
            return -1;
        key = (unsigned int)k;
        ret = driver_async(d->port, &key, job_invoke, j, job_free);
        snprintf(out, sizeof(out), "%ld", ret);
        return reply(rbuf, rlen, out);
    default:
        return -1;
    }
}
