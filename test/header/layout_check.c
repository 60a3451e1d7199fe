/*
 * layout_check.c -- compile-time checks of priv/include/erl_driver.h.
 *
 * Nothing here runs. The file is compiled (not linked) by check.sh as
 * C89, C99, C11 and C++, with -Wall -Wextra -pedantic -Werror, against
 * our header and, as a control, against OTP's: both must accept it.
 *
 * Part 1 asserts the x86-64 (LP64) sizes, offsets and constant values that
 * the Rust side (native/erl_driver_compat/src/abi/) relies on; the numbers
 * come from spec/ABI_VERSIONS.md. Part 2 is a small but complete driver, in
 * the style of OTP's test drivers, that fills every ErlDrvEntry field with
 * a callback of the exact type and uses the everyday API calls, so that a
 * wrong parameter type in the header shows up as a compile error.
 */

#include <stddef.h>
#include <string.h>
#include <errno.h>

#include "erl_driver.h"

/* ------------------------------------------------------------------------
 * Part 1: static assertions
 *
 * C89 has no static_assert; an array type with a negative size is a
 * compile error instead. The typedef name carries the line number so each
 * assertion is distinct, and the message is in the name on failure.
 * ------------------------------------------------------------------------ */

#define LC_CONCAT_(a, b) a##b
#define LC_CONCAT(a, b) LC_CONCAT_(a, b)
#define LC_ASSERT(cond) \
    typedef char LC_CONCAT(layout_check_failed_at_line_, __LINE__)[(cond) ? 1 : -1]

#define LC_OFFSET(type, field, off) LC_ASSERT(offsetof(type, field) == (off))
#define LC_SIZE(type, size) LC_ASSERT(sizeof(type) == (size))

#if !defined(__x86_64__) || !defined(__LP64__)
#  error "layout_check.c: the expected values are for x86-64 LP64"
#endif

/* ErlDrvEntry (ABI_VERSIONS.md section 2) */
LC_OFFSET(ErlDrvEntry, init, 0);
LC_OFFSET(ErlDrvEntry, start, 8);
LC_OFFSET(ErlDrvEntry, stop, 16);
LC_OFFSET(ErlDrvEntry, output, 24);
LC_OFFSET(ErlDrvEntry, ready_input, 32);
LC_OFFSET(ErlDrvEntry, ready_output, 40);
LC_OFFSET(ErlDrvEntry, driver_name, 48);
LC_OFFSET(ErlDrvEntry, finish, 56);
LC_OFFSET(ErlDrvEntry, handle, 64);
LC_OFFSET(ErlDrvEntry, control, 72);
LC_OFFSET(ErlDrvEntry, timeout, 80);
LC_OFFSET(ErlDrvEntry, outputv, 88);
LC_OFFSET(ErlDrvEntry, ready_async, 96);
LC_OFFSET(ErlDrvEntry, flush, 104);
LC_OFFSET(ErlDrvEntry, call, 112);
LC_OFFSET(ErlDrvEntry, unused_event_callback, 120);
LC_OFFSET(ErlDrvEntry, extended_marker, 128);
LC_OFFSET(ErlDrvEntry, major_version, 132);
LC_OFFSET(ErlDrvEntry, minor_version, 136);
LC_OFFSET(ErlDrvEntry, driver_flags, 140);
LC_OFFSET(ErlDrvEntry, handle2, 144);
LC_OFFSET(ErlDrvEntry, process_exit, 152);
LC_OFFSET(ErlDrvEntry, stop_select, 160);
LC_OFFSET(ErlDrvEntry, emergency_close, 168);
LC_SIZE(ErlDrvEntry, 176);

/* ErlDrvBinary: R11B-0+ layout, data right after the size word */
LC_OFFSET(ErlDrvBinary, orig_size, 0);
LC_OFFSET(ErlDrvBinary, orig_bytes, 8);
LC_SIZE(((ErlDrvBinary *) 0)->orig_size, 8);
LC_SIZE(ErlDrvBinary, 16);

/* ErlIOVec: the 2.0+ layout */
LC_OFFSET(ErlIOVec, vsize, 0);
LC_OFFSET(ErlIOVec, size, 8);
LC_OFFSET(ErlIOVec, iov, 16);
LC_OFFSET(ErlIOVec, binv, 24);
LC_SIZE(ErlIOVec, 32);

/* SysIOVec: same layout as struct iovec */
LC_OFFSET(SysIOVec, iov_base, 0);
LC_OFFSET(SysIOVec, iov_len, 8);
LC_SIZE(SysIOVec, 16);

/* ErlDrvSysInfo: the 3.1+ layout, ending with dirty_scheduler_support */
LC_OFFSET(ErlDrvSysInfo, driver_major_version, 0);
LC_OFFSET(ErlDrvSysInfo, driver_minor_version, 4);
LC_OFFSET(ErlDrvSysInfo, erts_version, 8);
LC_OFFSET(ErlDrvSysInfo, otp_release, 16);
LC_OFFSET(ErlDrvSysInfo, thread_support, 24);
LC_OFFSET(ErlDrvSysInfo, smp_support, 28);
LC_OFFSET(ErlDrvSysInfo, async_threads, 32);
LC_OFFSET(ErlDrvSysInfo, scheduler_threads, 36);
LC_OFFSET(ErlDrvSysInfo, nif_major_version, 40);
LC_OFFSET(ErlDrvSysInfo, nif_minor_version, 44);
LC_OFFSET(ErlDrvSysInfo, dirty_scheduler_support, 48);
LC_SIZE(ErlDrvSysInfo, 56);

/* ErlDrvMonitor: 32 opaque bytes */
LC_SIZE(ErlDrvMonitor, 32);

/* ErlDrvNowData */
LC_OFFSET(ErlDrvNowData, megasecs, 0);
LC_OFFSET(ErlDrvNowData, secs, 8);
LC_OFFSET(ErlDrvNowData, microsecs, 16);
LC_SIZE(ErlDrvNowData, 24);

/* ErlDrvThreadOpts */
LC_OFFSET(ErlDrvThreadOpts, suggested_stack_size, 0);
LC_SIZE(ErlDrvThreadOpts, 4);

/* Scalar and handle types: width and signedness */
LC_SIZE(ErlDrvSizeT, 8);
LC_SIZE(ErlDrvSSizeT, 8);
LC_SIZE(ErlDrvUInt, 8);
LC_SIZE(ErlDrvSInt, 8);
LC_SIZE(ErlDrvUInt64, 8);
LC_SIZE(ErlDrvSInt64, 8);
LC_SIZE(ErlDrvTermData, 8);
LC_SIZE(ErlDrvTime, 8);
LC_SIZE(ErlDrvTSDKey, 4);
LC_SIZE(ErlDrvTimeUnit, 4);
LC_SIZE(ErlDrvData, 8);
LC_SIZE(ErlDrvEvent, 8);
LC_SIZE(ErlDrvPort, 8);
LC_SIZE(ErlDrvThreadData, 8);
LC_SIZE(ErlDrvPDL, 8);
LC_SIZE(ErlDrvTid, 8);
LC_ASSERT((ErlDrvSizeT) -1 > 0);
LC_ASSERT((ErlDrvSSizeT) -1 < 0);
LC_ASSERT((ErlDrvUInt) -1 > 0);
LC_ASSERT((ErlDrvSInt) -1 < 0);
LC_ASSERT((ErlDrvUInt64) -1 > 0);
LC_ASSERT((ErlDrvSInt64) -1 < 0);
LC_ASSERT((ErlDrvTermData) -1 > 0);
LC_ASSERT((ErlDrvTime) -1 < 0);

/* Version management */
LC_ASSERT(ERL_DRV_EXTENDED_MARKER == 0xfeeeeeedU);
LC_ASSERT(sizeof(ERL_DRV_EXTENDED_MARKER) == 4);
LC_ASSERT(ERL_DRV_EXTENDED_MARKER > 0);   /* unsigned int, as in OTP */
LC_ASSERT(ERL_DRV_EXTENDED_MAJOR_VERSION == 3);
LC_ASSERT(ERL_DRV_EXTENDED_MINOR_VERSION == 3);
LC_ASSERT(ERL_DRV_MIN_REQUIRED_MAJOR_VERSION_ON_LOAD == 2);

/* driver_flags */
LC_ASSERT(ERL_DRV_FLAG_USE_PORT_LOCKING == 1);
LC_ASSERT(ERL_DRV_FLAG_SOFT_BUSY == 2);
LC_ASSERT(ERL_DRV_FLAG_NO_BUSY_MSGQ == 4);
LC_ASSERT(ERL_DRV_FLAG_USE_INIT_ACK == 8);

/* Port flags */
LC_ASSERT(PORT_CONTROL_FLAG_BINARY == 1);
LC_ASSERT(PORT_CONTROL_FLAG_HEAVY == 2);
LC_ASSERT(PORT_FLAG_BINARY == 1);
LC_ASSERT(PORT_FLAG_LINE == 2);
LC_ASSERT(DRIVER_CALL_KEEP_BUFFER == 1);

/* driver_select() modes */
LC_ASSERT(ERL_DRV_READ == 1);
LC_ASSERT(ERL_DRV_WRITE == 2);
LC_ASSERT(ERL_DRV_USE == 4);
LC_ASSERT(ERL_DRV_USE_NO_CALLBACK == 12);
LC_ASSERT(DO_READ == 1);
LC_ASSERT(DO_WRITE == 2);
LC_ASSERT(ERL_NIF_SELECT_READ == 1);
LC_ASSERT(ERL_NIF_SELECT_WRITE == 2);
LC_ASSERT(ERL_NIF_SELECT_STOP == 4);
LC_ASSERT(ERL_NIF_SELECT_CANCEL == 8);
LC_ASSERT(ERL_NIF_SELECT_CUSTOM_MSG == 16);
LC_ASSERT(ERL_NIF_SELECT_ERROR == 32);
LC_ASSERT(ERL_DIRTY_JOB_CPU_BOUND == 1);
LC_ASSERT(ERL_DIRTY_JOB_IO_BOUND == 2);

/* Term specification tags */
LC_ASSERT(ERL_DRV_NIL == 1);
LC_ASSERT(ERL_DRV_ATOM == 2);
LC_ASSERT(ERL_DRV_INT == 3);
LC_ASSERT(ERL_DRV_PORT == 4);
LC_ASSERT(ERL_DRV_BINARY == 5);
LC_ASSERT(ERL_DRV_STRING == 6);
LC_ASSERT(ERL_DRV_TUPLE == 7);
LC_ASSERT(ERL_DRV_LIST == 8);
LC_ASSERT(ERL_DRV_STRING_CONS == 9);
LC_ASSERT(ERL_DRV_PID == 10);
LC_ASSERT(ERL_DRV_FLOAT == 11);
LC_ASSERT(ERL_DRV_EXT2TERM == 12);
LC_ASSERT(ERL_DRV_UINT == 13);
LC_ASSERT(ERL_DRV_BUF2BINARY == 14);
LC_ASSERT(ERL_DRV_INT64 == 15);
LC_ASSERT(ERL_DRV_UINT64 == 16);
LC_ASSERT(ERL_DRV_MAP == 17);
LC_ASSERT(sizeof(ERL_DRV_MAP) == sizeof(ErlDrvTermData));
LC_ASSERT(TERM_DATA(-1) == (ErlDrvTermData) -1);

/* Time */
LC_ASSERT(ERL_DRV_SEC == 0);
LC_ASSERT(ERL_DRV_MSEC == 1);
LC_ASSERT(ERL_DRV_USEC == 2);
LC_ASSERT(ERL_DRV_NSEC == 3);
LC_ASSERT(ERL_DRV_TIME_ERROR == -9223372036854775807L - 1);
LC_ASSERT(sizeof(ERL_DRV_TIME_ERROR) == 8);

/* Busy message queue limits */
LC_ASSERT(ERL_DRV_BUSY_MSGQ_DISABLED == (ErlDrvSizeT) -1);
LC_ASSERT(ERL_DRV_BUSY_MSGQ_READ_ONLY == 0);
LC_ASSERT(ERL_DRV_BUSY_MSGQ_LIM_MAX == (ErlDrvSizeT) -2);
LC_ASSERT(ERL_DRV_BUSY_MSGQ_LIM_MIN == 1);

/* Integer widths left defined for the includer */
LC_ASSERT(SIZEOF_CHAR == 1 && SIZEOF_SHORT == 2 && SIZEOF_INT == 4);
LC_ASSERT(SIZEOF_LONG == 8 && SIZEOF_LONG_LONG == 8 && SIZEOF_VOID_P == 8);

/* ------------------------------------------------------------------------
 * Part 2: a driver using the header the way real drivers do
 *
 * An echo driver. The entry comes first and names every field; each
 * callback has exactly the field's type, so a header that disagrees with
 * OTP's fails to compile (in C++ outright, in C through -Werror).
 * ------------------------------------------------------------------------ */

#ifdef __cplusplus
/* The marker is an unsigned int constant in OTP too; C++11 rejects its
 * narrowing to int inside braces, so C++ drivers convert it explicitly. */
#  define LC_MARKER ((int) ERL_DRV_EXTENDED_MARKER)
#else
#  define LC_MARKER ERL_DRV_EXTENDED_MARKER
#endif

typedef struct {
    ErlDrvPort port;
    ErlDrvMutex *lock;
    ErlDrvMonitor owner_monitor;
    unsigned int async_key;
    int fd;
} LcState;

static int lc_init(void);
static ErlDrvData lc_start(ErlDrvPort port, char *command);
static void lc_stop(ErlDrvData drv_data);
static void lc_output(ErlDrvData drv_data, char *buf, ErlDrvSizeT len);
static void lc_ready_input(ErlDrvData drv_data, ErlDrvEvent event);
static void lc_ready_output(ErlDrvData drv_data, ErlDrvEvent event);
static void lc_finish(void);
static ErlDrvSSizeT lc_control(ErlDrvData drv_data, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen);
static void lc_timeout(ErlDrvData drv_data);
static void lc_outputv(ErlDrvData drv_data, ErlIOVec *ev);
static void lc_ready_async(ErlDrvData drv_data, ErlDrvThreadData thread_data);
static void lc_flush(ErlDrvData drv_data);
static ErlDrvSSizeT lc_call(ErlDrvData drv_data, unsigned int command,
                            char *buf, ErlDrvSizeT len,
                            char **rbuf, ErlDrvSizeT rlen,
                            unsigned int *flags);
static void lc_process_exit(ErlDrvData drv_data, ErlDrvMonitor *monitor);
static void lc_stop_select(ErlDrvEvent event, void *reserved);
static void lc_emergency_close(ErlDrvData drv_data);

static char lc_driver_name[] = "layout_check";

static ErlDrvEntry lc_driver_entry = {
    lc_init,                        /* init */
    lc_start,                       /* start */
    lc_stop,                        /* stop */
    lc_output,                      /* output */
    lc_ready_input,                 /* ready_input */
    lc_ready_output,                /* ready_output */
    lc_driver_name,                 /* driver_name */
    lc_finish,                      /* finish */
    NULL,                           /* handle */
    lc_control,                     /* control */
    lc_timeout,                     /* timeout */
    lc_outputv,                     /* outputv */
    lc_ready_async,                 /* ready_async */
    lc_flush,                       /* flush */
    lc_call,                        /* call */
    NULL,                           /* unused_event_callback */
    LC_MARKER,                      /* extended_marker */
    ERL_DRV_EXTENDED_MAJOR_VERSION, /* major_version */
    ERL_DRV_EXTENDED_MINOR_VERSION, /* minor_version */
    ERL_DRV_FLAG_USE_PORT_LOCKING | ERL_DRV_FLAG_SOFT_BUSY, /* driver_flags */
    NULL,                           /* handle2 */
    lc_process_exit,                /* process_exit */
    lc_stop_select,                 /* stop_select */
    lc_emergency_close              /* emergency_close */
};

DRIVER_INIT(layout_check)
{
    return &lc_driver_entry;
}

static char lc_mutex_name[] = "layout_check_state";
static char lc_atom_ok[] = "ok";
static char lc_atom_stopped[] = "stopped";

static int lc_init(void)
{
    ErlDrvSysInfo info;

    driver_system_info(&info, sizeof(info));
    if (info.driver_major_version < ERL_DRV_EXTENDED_MAJOR_VERSION)
        return -1;
    return 0;
}

static ErlDrvData lc_start(ErlDrvPort port, char *command)
{
    LcState *state;

    (void) command;
    state = (LcState *) driver_alloc(sizeof(LcState));
    if (state == NULL)
        return ERL_DRV_ERROR_GENERAL;
    state->port = port;
    state->fd = -1;
    state->async_key = driver_async_port_key(port);
    state->lock = erl_drv_mutex_create(lc_mutex_name);
    if (state->lock == NULL) {
        driver_free(state);
        errno = ENOMEM;
        return ERL_DRV_ERROR_ERRNO;
    }
    if (driver_monitor_process(port, driver_caller(port),
                               &state->owner_monitor) != 0) {
        erl_drv_mutex_destroy(state->lock);
        driver_free(state);
        return ERL_DRV_ERROR_BADARG;
    }
    set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData) state;
}

static void lc_stop(ErlDrvData drv_data)
{
    LcState *state = (LcState *) drv_data;

    driver_demonitor_process(state->port, &state->owner_monitor);
    driver_cancel_timer(state->port);
    erl_drv_mutex_destroy(state->lock);
    driver_free(state);
}

static void lc_output(ErlDrvData drv_data, char *buf, ErlDrvSizeT len)
{
    LcState *state = (LcState *) drv_data;
    ErlDrvBinary *bin;

    if (len == 0) {
        driver_output(state->port, buf, len);
        return;
    }
    bin = driver_alloc_binary(len);
    if (bin == NULL) {
        driver_failure_posix(state->port, ENOMEM);
        return;
    }
    memcpy(bin->orig_bytes, buf, len);
    driver_output_binary(state->port, NULL, 0, bin, 0, len);
    driver_free_binary(bin);
}

static void lc_ready_input(ErlDrvData drv_data, ErlDrvEvent event)
{
    LcState *state = (LcState *) drv_data;

    driver_select(state->port, event, ERL_DRV_READ | ERL_DRV_USE, 0);
}

static void lc_ready_output(ErlDrvData drv_data, ErlDrvEvent event)
{
    LcState *state = (LcState *) drv_data;
    int vlen;
    SysIOVec *iov;

    iov = driver_peekq(state->port, &vlen);
    if (iov == NULL || vlen == 0) {
        driver_select(state->port, event, ERL_DRV_WRITE, 0);
        return;
    }
    if (driver_deq(state->port, iov[0].iov_len) == 0)
        set_busy_port(state->port, 0);
}

static void lc_finish(void)
{
}

static ErlDrvSSizeT lc_control(ErlDrvData drv_data, unsigned int command,
                               char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen)
{
    LcState *state = (LcState *) drv_data;
    ErlDrvBinary *reply;

    (void) rlen;
    switch (command) {
    case 1:
        /* With PORT_CONTROL_FLAG_BINARY the reply is a driver binary. */
        reply = driver_alloc_binary(len);
        if (reply == NULL)
            return -1;
        memcpy(reply->orig_bytes, buf, len);
        *rbuf = (char *) reply;
        return (ErlDrvSSizeT) len;
    case 2:
        driver_set_timer(state->port, 100);
        return 0;
    case 3:
        if (state->fd >= 0)
            driver_select(state->port, (ErlDrvEvent) (ErlDrvSInt) state->fd,
                          ERL_DRV_READ | ERL_DRV_WRITE, 1);
        return 0;
    default:
        return -1;
    }
}

static void lc_timeout(ErlDrvData drv_data)
{
    LcState *state = (LcState *) drv_data;
    ErlDrvTermData spec[] = {
        ERL_DRV_PORT, 0,
        ERL_DRV_ATOM, 0,
        ERL_DRV_INT, (ErlDrvTermData) 42,
        ERL_DRV_NIL,
        ERL_DRV_LIST, 2,
        ERL_DRV_TUPLE, 3
    };

    spec[1] = driver_mk_port(state->port);
    spec[3] = driver_mk_atom(lc_atom_ok);
    erl_drv_output_term(driver_mk_port(state->port), spec,
                        (int) (sizeof(spec) / sizeof(spec[0])));
}

static void lc_outputv(ErlDrvData drv_data, ErlIOVec *ev)
{
    LcState *state = (LcState *) drv_data;
    char *flat;
    ErlDrvSizeT copied;

    if (driver_sizeq(state->port) > 0) {
        driver_enqv(state->port, ev, 0);
        return;
    }
    flat = (char *) driver_alloc(ev->size);
    if (flat == NULL) {
        driver_outputv(state->port, NULL, 0, ev, 0);
        return;
    }
    copied = driver_vec_to_buf(ev, flat, ev->size);
    driver_output2(state->port, NULL, 0, flat, copied);
    driver_free(flat);
}

static void lc_async_invoke(void *data)
{
    (void) data;
}

static void lc_ready_async(ErlDrvData drv_data, ErlDrvThreadData thread_data)
{
    LcState *state = (LcState *) drv_data;

    (void) thread_data;
    erl_drv_mutex_lock(state->lock);
    if (driver_async(state->port, &state->async_key, lc_async_invoke,
                     NULL, NULL) < 0)
        driver_failure_atom(state->port, lc_atom_stopped);
    erl_drv_mutex_unlock(state->lock);
}

static void lc_flush(ErlDrvData drv_data)
{
    LcState *state = (LcState *) drv_data;

    driver_deq(state->port, driver_sizeq(state->port));
}

static ErlDrvSSizeT lc_call(ErlDrvData drv_data, unsigned int command,
                            char *buf, ErlDrvSizeT len,
                            char **rbuf, ErlDrvSizeT rlen,
                            unsigned int *flags)
{
    (void) drv_data;
    (void) command;
    *flags = 0;
    if (len > rlen)
        return -1;
    memcpy(*rbuf, buf, len);
    return (ErlDrvSSizeT) len;
}

static void lc_process_exit(ErlDrvData drv_data, ErlDrvMonitor *monitor)
{
    LcState *state = (LcState *) drv_data;

    if (driver_compare_monitors(monitor, &state->owner_monitor) == 0)
        driver_exit(state->port, 0);
}

static void lc_stop_select(ErlDrvEvent event, void *reserved)
{
    (void) event;
    (void) reserved;
}

static void lc_emergency_close(ErlDrvData drv_data)
{
    LcState *state = (LcState *) drv_data;

    driver_failure_eof(state->port);
}
