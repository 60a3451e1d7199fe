/*
 * lc_thread_drv: the driver thread API. erl_drv_thread_create/join/exit/
 * self/equal_tids/name, erl_drv_thread_opts_create/destroy, mutexes,
 * condition variables, rwlocks, thread-specific data and the *_name
 * functions.
 *
 * Every operation is a port_control; the calling callback starts the
 * threads it needs and joins them before it replies, so a reply is the
 * whole outcome. Arguments and replies are text (replies are Erlang terms
 * without the final dot). EBUSY is 16 and EINVAL 22 on Linux.
 *
 *   1 "N K"  OP_COUNTER: N threads each add 1 to a shared counter K times,
 *            under one mutex; each returns K from its thread function.
 *            -> "{Total,SumOfJoinResults,JoinErrors}"
 *   2 "N"    OP_PRODCONS: a producer thread puts 1..N through a one-slot
 *            buffer (a mutex, two condition variables, signal) to a
 *            consumer thread.              -> "{Sum,Count}"
 *   3 "N"    OP_BROADCAST: N threads wait on one condition variable until
 *            the callback, once all are waiting, sets a flag and
 *            broadcasts.                   -> "{Woken,JoinErrors}"
 *   4 "R W K" OP_RWLOCK: W writers each do K times {a++; b++} under the
 *            write lock; R readers each check a == b K times under the
 *            read lock.                    -> "{Violations,A,B}"
 *   5        OP_RWTRY: a helper thread tries both locks while the callback
 *            holds the read lock, the write lock, nothing.
 *            -> "{{TryR,TryW},{TryR,TryW},{TryR,TryW}}"
 *   6        OP_TRYLOCK: a helper thread trylocks a mutex the callback
 *            holds, then one it does not.  -> "{Busy,Free}"
 *   7 "N"    OP_TSD: a key; N threads set their own value, meet, and
 *            read it back; the callback's thread reads, sets, reads.
 *            -> "{ThreadsOk,MainBeforeIsNull,MainAfterIsOwn}"
 *   8        OP_SELF: erl_drv_thread_self/erl_drv_equal_tids in the
 *            callback and in a created thread; joining the callback's
 *            own (not created) thread.
 *            -> "{SelfTwiceEqual,ChildIsItsTid,ChildIsNotMain,ChildSelfSelf,JoinNotCreated}"
 *   9        OP_NAMES: the names of locks and threads (given, copied, NULL),
 *            the OS name of a created thread, name(NULL).
 *            -> "{Mutex,Cond,RwLock,ThreadInside,ThreadOutside,OsName,
 *                 {NullMutex,NullCond,NullRwLock,NullThread},
 *                 CallbackThread,{NameOfNull...}}"
 *  10 "V"    OP_EXIT: a thread ends with erl_drv_thread_exit(V) two calls
 *            deep; another returns V+1.
 *            -> "{JoinRet,Result,ReachedAfterExit,JoinRet2,Result2}"
 *  11 "S"    OP_OPTS: the default suggested_stack_size, then the stack
 *            size (pthread_getattr_np) of a thread created with
 *            suggested_stack_size S, with NULL options and with the
 *            default options.      -> "{Default,WithS,WithNull,WithDefault}"
 *  12        OP_SYSINFO: driver_system_info.
 *            -> "{ThreadSupport,SmpSupport,AsyncThreads,SchedulerThreads}"
 *  13 "K"    OP_THREAD_SEND: a created thread sends K terms
 *            {thread_msg,Port,I} with erl_drv_output_term. -> "JoinRet"
 *  14        OP_MISUSE: misuse that makes the native runtime abort the
 *            VM (NULL and destroyed handles, a double join, exit from a
 *            thread not created, destroying a locked mutex): never run
 *            it on a native port.
 *            -> "{TryNull,TryDestroyed,TryRNull,TryWNull,JoinNull,
 *                 JoinJoined,EqNull,NameDestroyed,TsdDestroyed,
 *                 KeyCreateNull,ExitReturned,DestroyLocked}"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "erl_driver.h"

static ErlDrvData thr_start(ErlDrvPort port, char *command);
static void thr_stop(ErlDrvData handle);
static ErlDrvSSizeT thr_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry thr_entry = {
    NULL,                       /* init */
    thr_start,
    thr_stop,
    NULL,                       /* output */
    NULL,                       /* ready_input */
    NULL,                       /* ready_output */
    "lc_thread_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    thr_control,
    NULL,                       /* timeout */
    NULL,                       /* outputv */
    NULL,                       /* ready_async */
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

DRIVER_INIT(lc_thread_drv) { return &thr_entry; }

#define OP_COUNTER     1
#define OP_PRODCONS    2
#define OP_BROADCAST   3
#define OP_RWLOCK      4
#define OP_RWTRY       5
#define OP_TRYLOCK     6
#define OP_TSD         7
#define OP_SELF        8
#define OP_NAMES       9
#define OP_EXIT        10
#define OP_OPTS        11
#define OP_SYSINFO     12
#define OP_THREAD_SEND 13
#define OP_MISUSE      14

#define MAX_THREADS 64

typedef struct {
    ErlDrvPort port;
} ThrData;

static ErlDrvData thr_start(ErlDrvPort port, char *command)
{
    ThrData *d;

    (void)command;
    d = driver_alloc(sizeof(ThrData));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    d->port = port;
    return (ErlDrvData)d;
}

static void thr_stop(ErlDrvData handle)
{
    driver_free(handle);
}

/* The reply text, in *rbuf or in a driver_alloc'ed buffer. */
static ErlDrvSSizeT reply(char **rbuf, ErlDrvSizeT rlen, const char *text)
{
    size_t n = strlen(text);

    if (n > rlen) {
        char *big = driver_alloc(n);
        if (big == NULL)
            return -1;
        *rbuf = big;
    }
    memcpy(*rbuf, text, n);
    return (ErlDrvSSizeT)n;
}

/* Up to three integers from the argument text. */
static int args(char *buf, ErlDrvSizeT len, long *a, long *b, long *c)
{
    char text[64];

    if (len >= sizeof(text))
        return 0;
    memcpy(text, buf, len);
    text[len] = '\0';
    *a = *b = *c = 0;
    return sscanf(text, "%ld %ld %ld", a, b, c);
}

static int clamp_threads(long n)
{
    return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
}

/* ------------------------------------------------------------------ */
/* OP_COUNTER                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvMutex *mtx;
    volatile long counter;
    long k;
} Counter;

static void *counter_thread(void *arg)
{
    Counter *c = arg;
    long i;

    for (i = 0; i < c->k; i++) {
        erl_drv_mutex_lock(c->mtx);
        c->counter = c->counter + 1;
        erl_drv_mutex_unlock(c->mtx);
    }
    return (void *)(intptr_t)c->k;
}

static void op_counter(long n, long k, char *out, size_t outlen)
{
    Counter c;
    ErlDrvTid tids[MAX_THREADS];
    int i, threads = clamp_threads(n), errors = 0;
    long sum = 0;

    c.mtx = erl_drv_mutex_create("lc_counter");
    c.counter = 0;
    c.k = k;
    for (i = 0; i < threads; i++)
        if (erl_drv_thread_create("lc_counter", &tids[i], counter_thread, &c, NULL) != 0)
            errors++;
    for (i = 0; i < threads; i++) {
        void *res = NULL;
        if (erl_drv_thread_join(tids[i], &res) != 0)
            errors++;
        sum += (long)(intptr_t)res;
    }
    erl_drv_mutex_destroy(c.mtx);
    snprintf(out, outlen, "{%ld,%ld,%d}", c.counter, sum, errors);
}

/* ------------------------------------------------------------------ */
/* OP_PRODCONS                                                         */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvMutex *mtx;
    ErlDrvCond *not_empty;
    ErlDrvCond *not_full;
    int full;
    long item;
    long n;
    long sum;
    long count;
} Buffer;

static void *producer(void *arg)
{
    Buffer *b = arg;
    long i;

    for (i = 1; i <= b->n; i++) {
        erl_drv_mutex_lock(b->mtx);
        while (b->full)
            erl_drv_cond_wait(b->not_full, b->mtx);
        b->item = i;
        b->full = 1;
        erl_drv_cond_signal(b->not_empty);
        erl_drv_mutex_unlock(b->mtx);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    Buffer *b = arg;
    long i;

    for (i = 1; i <= b->n; i++) {
        erl_drv_mutex_lock(b->mtx);
        while (!b->full)
            erl_drv_cond_wait(b->not_empty, b->mtx);
        b->sum += b->item;
        b->count++;
        b->full = 0;
        erl_drv_cond_signal(b->not_full);
        erl_drv_mutex_unlock(b->mtx);
    }
    return NULL;
}

static void op_prodcons(long n, char *out, size_t outlen)
{
    Buffer b;
    ErlDrvTid p, c;

    memset(&b, 0, sizeof(b));
    b.mtx = erl_drv_mutex_create("lc_buffer");
    b.not_empty = erl_drv_cond_create("lc_not_empty");
    b.not_full = erl_drv_cond_create("lc_not_full");
    b.n = n;
    erl_drv_thread_create("lc_consumer", &c, consumer, &b, NULL);
    erl_drv_thread_create("lc_producer", &p, producer, &b, NULL);
    erl_drv_thread_join(p, NULL);
    erl_drv_thread_join(c, NULL);
    erl_drv_cond_destroy(b.not_full);
    erl_drv_cond_destroy(b.not_empty);
    erl_drv_mutex_destroy(b.mtx);
    snprintf(out, outlen, "{%ld,%ld}", b.sum, b.count);
}

/* ------------------------------------------------------------------ */
/* OP_BROADCAST                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvMutex *mtx;
    ErlDrvCond *ready;
    ErlDrvCond *go_cond;
    int waiting;
    int go;
    int woken;
} Gate;

static void *gate_waiter(void *arg)
{
    Gate *g = arg;

    erl_drv_mutex_lock(g->mtx);
    g->waiting++;
    erl_drv_cond_signal(g->ready);
    while (!g->go)
        erl_drv_cond_wait(g->go_cond, g->mtx);
    g->woken++;
    erl_drv_mutex_unlock(g->mtx);
    return NULL;
}

static void op_broadcast(long n, char *out, size_t outlen)
{
    Gate g;
    ErlDrvTid tids[MAX_THREADS];
    int i, threads = clamp_threads(n), errors = 0;

    memset(&g, 0, sizeof(g));
    g.mtx = erl_drv_mutex_create("lc_gate");
    g.ready = erl_drv_cond_create("lc_ready");
    g.go_cond = erl_drv_cond_create("lc_go");
    for (i = 0; i < threads; i++)
        if (erl_drv_thread_create("lc_waiter", &tids[i], gate_waiter, &g, NULL) != 0)
            errors++;
    erl_drv_mutex_lock(g.mtx);
    /* A waiter counted here has released the mutex only by waiting. */
    while (g.waiting < threads - errors)
        erl_drv_cond_wait(g.ready, g.mtx);
    g.go = 1;
    erl_drv_cond_broadcast(g.go_cond);
    erl_drv_mutex_unlock(g.mtx);
    for (i = 0; i < threads - errors; i++)
        if (erl_drv_thread_join(tids[i], NULL) != 0)
            errors++;
    erl_drv_cond_destroy(g.go_cond);
    erl_drv_cond_destroy(g.ready);
    erl_drv_mutex_destroy(g.mtx);
    snprintf(out, outlen, "{%d,%d}", g.woken, errors);
}

/* ------------------------------------------------------------------ */
/* OP_RWLOCK and OP_RWTRY                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvRWLock *rw;
    volatile long a;
    volatile long b;
    long k;
    int try_r;
    int try_w;
} Shared;

static void *writer(void *arg)
{
    Shared *s = arg;
    long i;

    for (i = 0; i < s->k; i++) {
        erl_drv_rwlock_rwlock(s->rw);
        s->a = s->a + 1;
        s->b = s->b + 1;
        erl_drv_rwlock_rwunlock(s->rw);
    }
    return NULL;
}

static void *reader(void *arg)
{
    Shared *s = arg;
    long i, violations = 0;

    for (i = 0; i < s->k; i++) {
        erl_drv_rwlock_rlock(s->rw);
        if (s->a != s->b)
            violations++;
        erl_drv_rwlock_runlock(s->rw);
    }
    return (void *)(intptr_t)violations;
}

static void op_rwlock(long r, long w, long k, char *out, size_t outlen)
{
    Shared s;
    ErlDrvTid tids[MAX_THREADS];
    int i, readers = clamp_threads(r), writers = clamp_threads(w);
    long violations = 0;

    if (readers + writers > MAX_THREADS)
        readers = writers = MAX_THREADS / 2;
    memset(&s, 0, sizeof(s));
    s.rw = erl_drv_rwlock_create("lc_rw");
    s.k = k;
    for (i = 0; i < readers + writers; i++)
        erl_drv_thread_create("lc_rw_user", &tids[i],
                              i < readers ? reader : writer, &s, NULL);
    for (i = 0; i < readers + writers; i++) {
        void *res = NULL;
        erl_drv_thread_join(tids[i], &res);
        violations += (long)(intptr_t)res;
    }
    erl_drv_rwlock_destroy(s.rw);
    snprintf(out, outlen, "{%ld,%ld,%ld}", violations, s.a, s.b);
}

static void *rw_trier(void *arg)
{
    Shared *s = arg;

    s->try_r = erl_drv_rwlock_tryrlock(s->rw);
    if (s->try_r == 0)
        erl_drv_rwlock_runlock(s->rw);
    s->try_w = erl_drv_rwlock_tryrwlock(s->rw);
    if (s->try_w == 0)
        erl_drv_rwlock_rwunlock(s->rw);
    return NULL;
}

static void rw_try(Shared *s, int *r, int *w)
{
    ErlDrvTid tid;

    erl_drv_thread_create("lc_rw_trier", &tid, rw_trier, s, NULL);
    erl_drv_thread_join(tid, NULL);
    *r = s->try_r;
    *w = s->try_w;
}

static void op_rwtry(char *out, size_t outlen)
{
    Shared s;
    int r1, w1, r2, w2, r3, w3;

    memset(&s, 0, sizeof(s));
    s.rw = erl_drv_rwlock_create("lc_rw_try");
    erl_drv_rwlock_rlock(s.rw);
    rw_try(&s, &r1, &w1);
    erl_drv_rwlock_runlock(s.rw);
    erl_drv_rwlock_rwlock(s.rw);
    rw_try(&s, &r2, &w2);
    erl_drv_rwlock_rwunlock(s.rw);
    rw_try(&s, &r3, &w3);
    erl_drv_rwlock_destroy(s.rw);
    snprintf(out, outlen, "{{%d,%d},{%d,%d},{%d,%d}}", r1, w1, r2, w2, r3, w3);
}

/* ------------------------------------------------------------------ */
/* OP_TRYLOCK                                                          */
/* ------------------------------------------------------------------ */

static void *mutex_trier(void *arg)
{
    ErlDrvMutex *m = arg;
    int res = erl_drv_mutex_trylock(m);

    if (res == 0)
        erl_drv_mutex_unlock(m);
    return (void *)(intptr_t)res;
}

static int try_from_thread(ErlDrvMutex *m)
{
    ErlDrvTid tid;
    void *res = NULL;

    erl_drv_thread_create("lc_trier", &tid, mutex_trier, m, NULL);
    erl_drv_thread_join(tid, &res);
    return (int)(intptr_t)res;
}

static void op_trylock(char *out, size_t outlen)
{
    ErlDrvMutex *m = erl_drv_mutex_create("lc_try");
    int busy, free_;

    erl_drv_mutex_lock(m);
    busy = try_from_thread(m);
    erl_drv_mutex_unlock(m);
    free_ = try_from_thread(m);
    erl_drv_mutex_destroy(m);
    snprintf(out, outlen, "{%d,%d}", busy, free_);
}

/* ------------------------------------------------------------------ */
/* OP_TSD                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvTSDKey key;
    ErlDrvMutex *mtx;
    ErlDrvCond *all_set;
    int arrived;
    int threads;
} TsdMeet;

typedef struct {
    TsdMeet *meet;
    long value;
} TsdArg;

static void *tsd_thread(void *arg)
{
    TsdArg *a = arg;
    TsdMeet *m = a->meet;
    int ok = erl_drv_tsd_get(m->key) == NULL;

    erl_drv_tsd_set(m->key, (void *)(intptr_t)a->value);
    /* Everybody sets before anybody reads back. */
    erl_drv_mutex_lock(m->mtx);
    m->arrived++;
    if (m->arrived == m->threads)
        erl_drv_cond_broadcast(m->all_set);
    while (m->arrived < m->threads)
        erl_drv_cond_wait(m->all_set, m->mtx);
    erl_drv_mutex_unlock(m->mtx);
    ok = ok && erl_drv_tsd_get(m->key) == (void *)(intptr_t)a->value;
    return (void *)(intptr_t)ok;
}

static void op_tsd(long n, char *out, size_t outlen)
{
    TsdMeet m;
    TsdArg targs[MAX_THREADS];
    ErlDrvTid tids[MAX_THREADS];
    int i, threads = clamp_threads(n), ok = 0, main_before, main_after;
    int marker;

    memset(&m, 0, sizeof(m));
    erl_drv_tsd_key_create("lc_key", &m.key);
    m.mtx = erl_drv_mutex_create("lc_meet");
    m.all_set = erl_drv_cond_create("lc_all_set");
    m.threads = threads;
    for (i = 0; i < threads; i++) {
        targs[i].meet = &m;
        targs[i].value = i + 1;
        erl_drv_thread_create("lc_tsd", &tids[i], tsd_thread, &targs[i], NULL);
    }
    main_before = erl_drv_tsd_get(m.key) == NULL;
    erl_drv_tsd_set(m.key, &marker);
    main_after = erl_drv_tsd_get(m.key) == &marker;
    /* This thread is the VM's: leave nothing behind for the next key. */
    erl_drv_tsd_set(m.key, NULL);
    for (i = 0; i < threads; i++) {
        void *res = NULL;
        erl_drv_thread_join(tids[i], &res);
        ok += (int)(intptr_t)res;
    }
    erl_drv_cond_destroy(m.all_set);
    erl_drv_mutex_destroy(m.mtx);
    erl_drv_tsd_key_destroy(m.key);
    snprintf(out, outlen, "{%d,%d,%d}", ok, main_before, main_after);
}

/* ------------------------------------------------------------------ */
/* OP_SELF                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvMutex *mtx;
    ErlDrvTid created;          /* written by the creator under mtx */
    ErlDrvTid main;
    int is_its_tid;
    int is_not_main;
    int self_self;
} SelfCheck;

static void *self_thread(void *arg)
{
    SelfCheck *s = arg;
    ErlDrvTid me = erl_drv_thread_self();

    erl_drv_mutex_lock(s->mtx);
    s->is_its_tid = erl_drv_equal_tids(s->created, me) != 0;
    s->is_not_main = erl_drv_equal_tids(s->main, me) == 0;
    s->self_self = erl_drv_equal_tids(me, erl_drv_thread_self()) != 0;
    erl_drv_mutex_unlock(s->mtx);
    return NULL;
}

static void op_self(char *out, size_t outlen)
{
    SelfCheck s;
    ErlDrvTid tid, s1, s2;
    int twice, join_main;

    memset(&s, 0, sizeof(s));
    s1 = erl_drv_thread_self();
    s2 = erl_drv_thread_self();
    twice = erl_drv_equal_tids(s1, s2) != 0;
    s.mtx = erl_drv_mutex_create("lc_self");
    s.main = s1;
    erl_drv_mutex_lock(s.mtx);
    erl_drv_thread_create("lc_self", &tid, self_thread, &s, NULL);
    s.created = tid;
    erl_drv_mutex_unlock(s.mtx);
    erl_drv_thread_join(tid, NULL);
    erl_drv_mutex_destroy(s.mtx);
    join_main = erl_drv_thread_join(s1, NULL);
    snprintf(out, outlen, "{%d,%d,%d,%d,%d}", twice, s.is_its_tid,
             s.is_not_main, s.self_self, join_main);
}

/* ------------------------------------------------------------------ */
/* OP_NAMES                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    char inside[64];
    char os_name[64];
} NameCheck;

static void *name_thread(void *arg)
{
    NameCheck *n = arg;
    char *name = erl_drv_thread_name(erl_drv_thread_self());

    snprintf(n->inside, sizeof(n->inside), "%s", name ? name : "(null)");
    if (pthread_getname_np(pthread_self(), n->os_name, sizeof(n->os_name)) != 0)
        strcpy(n->os_name, "(error)");
    return NULL;
}

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

static void op_names(char *out, size_t outlen)
{
    char given[32];
    ErlDrvMutex *m, *m0;
    ErlDrvCond *c, *c0;
    ErlDrvRWLock *rw, *rw0;
    ErlDrvTid tid, tid0;
    NameCheck n, n0;
    char outside[64], outside0[64];

    /* Each name is a copy: the buffer is overwritten after each create. */
    strcpy(given, "lc_mutex");
    m = erl_drv_mutex_create(given);
    strcpy(given, "lc_cond");
    c = erl_drv_cond_create(given);
    strcpy(given, "lc_rwlock");
    rw = erl_drv_rwlock_create(given);
    strcpy(given, "lc_named_thread");
    erl_drv_thread_create(given, &tid, name_thread, &n, NULL);
    strcpy(given, "overwritten");
    snprintf(outside, sizeof(outside), "%s", or_null(erl_drv_thread_name(tid)));
    erl_drv_thread_join(tid, NULL);

    m0 = erl_drv_mutex_create(NULL);
    c0 = erl_drv_cond_create(NULL);
    rw0 = erl_drv_rwlock_create(NULL);
    erl_drv_thread_create(NULL, &tid0, name_thread, &n0, NULL);
    snprintf(outside0, sizeof(outside0), "%s", or_null(erl_drv_thread_name(tid0)));
    erl_drv_thread_join(tid0, NULL);

    snprintf(out, outlen,
             "{\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\","
             "{\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"},\"%s\",{%d,%d,%d,%d}}",
             or_null(erl_drv_mutex_name(m)), or_null(erl_drv_cond_name(c)),
             or_null(erl_drv_rwlock_name(rw)), n.inside, outside, n.os_name,
             or_null(erl_drv_mutex_name(m0)), or_null(erl_drv_cond_name(c0)),
             or_null(erl_drv_rwlock_name(rw0)), n0.inside, outside0,
             or_null(erl_drv_thread_name(erl_drv_thread_self())),
             erl_drv_mutex_name(NULL) == NULL, erl_drv_cond_name(NULL) == NULL,
             erl_drv_rwlock_name(NULL) == NULL, erl_drv_thread_name(NULL) == NULL);
    erl_drv_rwlock_destroy(rw0);
    erl_drv_cond_destroy(c0);
    erl_drv_mutex_destroy(m0);
    erl_drv_rwlock_destroy(rw);
    erl_drv_cond_destroy(c);
    erl_drv_mutex_destroy(m);
}

/* ------------------------------------------------------------------ */
/* OP_EXIT                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    long value;
    volatile int reached;
} ExitArg;

static void exit_deep(ExitArg *e)
{
    erl_drv_thread_exit((void *)(intptr_t)e->value);
    e->reached = 1;
}

static void *exit_thread(void *arg)
{
    ExitArg *e = arg;

    exit_deep(e);
    e->reached = 2;
    return NULL;
}

static void *return_thread(void *arg)
{
    ExitArg *e = arg;

    return (void *)(intptr_t)(e->value + 1);
}

static void op_exit(long v, char *out, size_t outlen)
{
    ExitArg e;
    ErlDrvTid t1, t2;
    void *res1 = NULL, *res2 = NULL;
    int j1, j2;

    e.value = v;
    e.reached = 0;
    erl_drv_thread_create("lc_exit", &t1, exit_thread, &e, NULL);
    j1 = erl_drv_thread_join(t1, &res1);
    erl_drv_thread_create("lc_return", &t2, return_thread, &e, NULL);
    j2 = erl_drv_thread_join(t2, &res2);
    snprintf(out, outlen, "{%d,%ld,%d,%d,%ld}", j1, (long)(intptr_t)res1,
             e.reached, j2, (long)(intptr_t)res2);
}

/* ------------------------------------------------------------------ */
/* OP_OPTS                                                             */
/* ------------------------------------------------------------------ */

static void *stack_thread(void *arg)
{
    pthread_attr_t attr;
    size_t size = 0;

    (void)arg;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return NULL;
    pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
    return (void *)(uintptr_t)size;
}

static long stack_with(ErlDrvThreadOpts *opts)
{
    ErlDrvTid tid;
    void *res = NULL;

    if (erl_drv_thread_create("lc_stack", &tid, stack_thread, NULL, opts) != 0)
        return -1;
    erl_drv_thread_join(tid, &res);
    return (long)(uintptr_t)res;
}

static void op_opts(long s, char *out, size_t outlen)
{
    ErlDrvThreadOpts *opts = erl_drv_thread_opts_create("lc_opts");
    ErlDrvThreadOpts *defaults = erl_drv_thread_opts_create(NULL);
    int deflt = opts->suggested_stack_size;
    long with_s, with_null, with_default;

    opts->suggested_stack_size = (int)s;
    with_s = stack_with(opts);
    with_null = stack_with(NULL);
    with_default = stack_with(defaults);
    erl_drv_thread_opts_destroy(defaults);
    erl_drv_thread_opts_destroy(opts);
    snprintf(out, outlen, "{%d,%ld,%ld,%ld}", deflt, with_s, with_null, with_default);
}

/* ------------------------------------------------------------------ */
/* OP_SYSINFO                                                          */
/* ------------------------------------------------------------------ */

static void op_sysinfo(char *out, size_t outlen)
{
    ErlDrvSysInfo si;

    memset(&si, 0, sizeof(si));
    driver_system_info(&si, sizeof(si));
    snprintf(out, outlen, "{%d,%d,%d,%d}", si.thread_support, si.smp_support,
             si.async_threads, si.scheduler_threads);
}

/* ------------------------------------------------------------------ */
/* OP_THREAD_SEND                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    ErlDrvTermData port;
    long k;
} SendArg;

static void *send_thread(void *arg)
{
    SendArg *s = arg;
    long i;

    for (i = 1; i <= s->k; i++) {
        ErlDrvTermData spec[] = {
            ERL_DRV_ATOM, driver_mk_atom("thread_msg"),
            ERL_DRV_PORT, s->port,
            ERL_DRV_INT, (ErlDrvTermData)i,
            ERL_DRV_TUPLE, 3
        };
        erl_drv_output_term(s->port, spec, sizeof(spec) / sizeof(spec[0]));
    }
    return NULL;
}

static int op_thread_send(ThrData *d, long k)
{
    SendArg s;
    ErlDrvTid tid;
    int res;

    s.port = driver_mk_port(d->port);
    s.k = k;
    /* driver_mk_atom is not thread-safe: made here once first. */
    (void)driver_mk_atom("thread_msg");
    res = erl_drv_thread_create("lc_sender", &tid, send_thread, &s, NULL);
    if (res != 0)
        return res;
    return erl_drv_thread_join(tid, NULL);
}

/* ------------------------------------------------------------------ */
/* OP_MISUSE (compat only: natively these abort the VM)                */
/* ------------------------------------------------------------------ */

static void *nothing_thread(void *arg)
{
    return arg;
}

/* Using a destroyed handle is the point here. */
#if defined(__GNUC__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

static void op_misuse(char *out, size_t outlen)
{
    ErlDrvMutex *m;
    ErlDrvCond *c;
    ErlDrvTid tid;
    ErlDrvTSDKey key;
    int try_null, try_destroyed, tryr_null, tryw_null, join_null, join_joined;
    int eq_null, name_destroyed, tsd_destroyed, key_null, destroy_locked;

    try_null = erl_drv_mutex_trylock(NULL);
    m = erl_drv_mutex_create("lc_doomed");
    erl_drv_mutex_destroy(m);
    try_destroyed = erl_drv_mutex_trylock(m);
    erl_drv_mutex_lock(m);
    erl_drv_mutex_unlock(m);
    erl_drv_mutex_destroy(m);
    tryr_null = erl_drv_rwlock_tryrlock(NULL);
    tryw_null = erl_drv_rwlock_tryrwlock(NULL);
    join_null = erl_drv_thread_join(NULL, NULL);
    erl_drv_thread_create("lc_once", &tid, nothing_thread, NULL, NULL);
    erl_drv_thread_join(tid, NULL);
    join_joined = erl_drv_thread_join(tid, NULL);
    eq_null = erl_drv_equal_tids(NULL, erl_drv_thread_self());
    c = erl_drv_cond_create("lc_gone");
    erl_drv_cond_destroy(c);
    name_destroyed = erl_drv_cond_name(c) == NULL;
    erl_drv_cond_signal(c);
    erl_drv_cond_destroy(c);
    erl_drv_tsd_key_create("lc_gone", &key);
    erl_drv_tsd_key_destroy(key);
    erl_drv_tsd_set(key, &key);
    tsd_destroyed = erl_drv_tsd_get(key) == NULL;
    erl_drv_tsd_key_destroy(key);
    key_null = erl_drv_tsd_key_create("lc_null", NULL);
    erl_drv_thread_exit(NULL);   /* not a created thread: returns here */
    m = erl_drv_mutex_create("lc_locked");
    erl_drv_mutex_lock(m);
    erl_drv_mutex_destroy(m);    /* reported, left alive */
    destroy_locked = erl_drv_mutex_trylock(m);
    snprintf(out, outlen, "{%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d}",
             try_null, try_destroyed, tryr_null, tryw_null, join_null,
             join_joined, eq_null, name_destroyed, tsd_destroyed, key_null,
             1, destroy_locked);
}

/* ------------------------------------------------------------------ */

static ErlDrvSSizeT thr_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    ThrData *d = (ThrData *)handle;
    char out[512];
    long a, b, c;

    args(buf, len, &a, &b, &c);
    switch (op) {
    case OP_COUNTER:
        op_counter(a, b, out, sizeof(out));
        break;
    case OP_PRODCONS:
        op_prodcons(a, out, sizeof(out));
        break;
    case OP_BROADCAST:
        op_broadcast(a, out, sizeof(out));
        break;
    case OP_RWLOCK:
        op_rwlock(a, b, c, out, sizeof(out));
        break;
    case OP_RWTRY:
        op_rwtry(out, sizeof(out));
        break;
    case OP_TRYLOCK:
        op_trylock(out, sizeof(out));
        break;
    case OP_TSD:
        op_tsd(a, out, sizeof(out));
        break;
    case OP_SELF:
        op_self(out, sizeof(out));
        break;
    case OP_NAMES:
        op_names(out, sizeof(out));
        break;
    case OP_EXIT:
        op_exit(a, out, sizeof(out));
        break;
    case OP_OPTS:
        op_opts(a, out, sizeof(out));
        break;
    case OP_SYSINFO:
        op_sysinfo(out, sizeof(out));
        break;
    case OP_THREAD_SEND:
        snprintf(out, sizeof(out), "%d", op_thread_send(d, a));
        break;
    case OP_MISUSE:
        op_misuse(out, sizeof(out));
        break;
    default:
        snprintf(out, sizeof(out), "badop");
        break;
    }
    return reply(rbuf, rlen, out);
}
