/*
 * erl_driver.h -- the Erlang linked-in driver interface, version 3.3.
 *
 * Part of erl_driver_compat. Written for this project from the erl_driver
 * manual and the OTP 25 binary interface: every type, structure layout,
 * constant and prototype here matches OTP 25 (erts 13) on x86-64 Linux, so
 * a driver written for OTP compiles against this file unchanged, and a
 * driver built against either header runs under erl_driver_compat.
 * test/header/check.sh compares the two headers.
 *
 * Layout: configuration, constants, types, the driver entry, and then the
 * API, one block per group of the manual's FUNCTIONALITY section, in the
 * manual's order (spec/erl_driver.3.txt, with the calls added since then
 * placed in the group they belong to).
 *
 * A driver includes only this file; erl_drv_nif.h comes with it.
 */

#ifndef __ERL_DRIVER_H__
#define __ERL_DRIVER_H__

/* An autoconf-built driver may describe its platform in config.h; it is
 * read first because it can decide the SysIOVec type (HAVE_SYS_UIO_H). */
#ifdef HAVE_CONFIG_H
#  include "config.h"
#endif

#include "erl_drv_nif.h"

#include <stdlib.h>

/* Windows DLL drivers reach the runtime through a table of function
 * pointers (erl_win_dyn_driver.h), which this project does not provide.
 * Such a driver may still use the type declarations: it then defines
 * ERL_DRIVER_TYPES_ONLY itself. */
#if (defined(__WIN32__) || defined(_WIN32) || defined(_WIN32_)) \
    && !defined(STATIC_ERLANG_DRIVER) && !defined(ERL_DRIVER_TYPES_ONLY)
#  error "erl_driver_compat: Windows dynamic drivers are not supported"
#endif

/* Linkage of the API functions: plain C, also when compiled as C++. */
#ifndef EXTERN
#  ifdef __cplusplus
#    define EXTERN extern "C"
#  else
#    define EXTERN extern
#  endif
#endif

/* Marks calls the manual lists as deprecated. */
#if defined(__GNUC__) && __GNUC__ >= 3
#  define ERL_DRV_DEPRECATED_FUNC __attribute__((deprecated))
#else
#  define ERL_DRV_DEPRECATED_FUNC
#endif

/* ========================================================================
 * Constants
 * ======================================================================== */

/* `mode' bits of driver_select(). ERL_DRV_USE_NO_CALLBACK adds the bit
 * (8) that asks the runtime not to call stop_select when the event is
 * deselected. */
#define ERL_DRV_READ  ((int) ERL_NIF_SELECT_READ)
#define ERL_DRV_WRITE ((int) ERL_NIF_SELECT_WRITE)
#define ERL_DRV_USE   ((int) ERL_NIF_SELECT_STOP)
#define ERL_DRV_USE_NO_CALLBACK (ERL_DRV_USE | (int) ERL_NIF_SELECT_CANCEL)

/* Names used before R13A (erts 5.7) for the same two bits. */
#define DO_READ  ERL_DRV_READ
#define DO_WRITE ERL_DRV_WRITE

/*
 * Version management. A driver stores these three values in the
 * extended_marker, major_version and minor_version fields of its
 * ErlDrvEntry. The runtime refuses a driver whose major version is below
 * ERL_DRV_MIN_REQUIRED_MAJOR_VERSION_ON_LOAD, and one whose version is the
 * same major but a newer minor than its own.
 */
#define ERL_DRV_EXTENDED_MARKER        (0xfeeeeeed)
#ifdef ERL_DRV_COMPAT_LEGACY_INT_API
#  define ERL_DRV_EXTENDED_MAJOR_VERSION 1
#  define ERL_DRV_EXTENDED_MINOR_VERSION 5
#else
#  define ERL_DRV_EXTENDED_MAJOR_VERSION 3
#  define ERL_DRV_EXTENDED_MINOR_VERSION 3
#endif

#define ERL_DRV_MIN_REQUIRED_MAJOR_VERSION_ON_LOAD 2

/* Flags for set_port_control_flags(): how port_control/3 replies. */
#define PORT_CONTROL_FLAG_BINARY (1 << 0)   /* reply is a binary */
#define PORT_CONTROL_FLAG_HEAVY  (1 << 1)

/* Flags returned by get_port_flags(): how the port was opened. */
#define PORT_FLAG_BINARY (1 << 0)           /* open_port option binary */
#define PORT_FLAG_LINE   (1 << 1)           /* open_port option {line, N} */

/* Flags for the driver_flags field of ErlDrvEntry. */
#define ERL_DRV_FLAG_USE_PORT_LOCKING (1 << 0)  /* lock per port, not per driver */
#define ERL_DRV_FLAG_SOFT_BUSY        (1 << 1)  /* accept port_command(.., [force]) */
#define ERL_DRV_FLAG_NO_BUSY_MSGQ     (1 << 2)  /* no busy message queue */
#define ERL_DRV_FLAG_USE_INIT_ACK     (1 << 3)  /* start answers via erl_drv_init_ack() */

/* ========================================================================
 * Types
 * ======================================================================== */

/* Fixed and pointer-sized integers; ErlDrvTermData holds a term handle. */
typedef ErlNapiUInt64 ErlDrvUInt64;
typedef ErlNapiSInt64 ErlDrvSInt64;
typedef ErlNapiUInt ErlDrvUInt;
typedef ErlNapiSInt ErlDrvSInt;
typedef ErlNapiUInt ErlDrvTermData;

/* Sizes and lengths (size_t/ssize_t since 2.0). */
#if defined(__WIN32__) || defined(_WIN32)
typedef ErlDrvUInt ErlDrvSizeT;
typedef ErlDrvSInt ErlDrvSSizeT;
#else
typedef size_t ErlDrvSizeT;
typedef ssize_t ErlDrvSSizeT;
#endif

/*
 * Legacy mode (erl_driver_compat only; OTP 25 refuses such drivers).
 *
 * Seed-era driver source (interface 1.x, R11B-3 ... R14B04) used `int'
 * where 2.0 (R15B) has ErlDrvSizeT/ErlDrvSSizeT: in the output, control
 * and call callbacks, in ErlIOVec.size, and in driver_output*,
 * driver_vec_to_buf, driver_alloc_binary/realloc_binary and the queue
 * functions (driver_enq* / pushq* / deq / sizeq / peekqv). To compile
 * such source unchanged, define ERL_DRV_COMPAT_LEGACY_INT_API before
 * including this header:
 *
 *     #define ERL_DRV_COMPAT_LEGACY_INT_API
 *     #include "erl_driver.h"
 *
 * It declares exactly those items with `int' (ErlIOVec is then 24 bytes,
 * size at offset 4) and sets ERL_DRV_EXTENDED_MAJOR_VERSION.MINOR to 1.5,
 * so the entry declares the int ABI and erl_driver_compat binds the
 * driver to its int-typed entry points. Everything else is unchanged.
 * ERL_DRV_COMPAT_LEN_ / ERL_DRV_COMPAT_SLEN_ are the types of those
 * lengths and results in the current mode.
 */
#ifdef ERL_DRV_COMPAT_LEGACY_INT_API
#  define ERL_DRV_COMPAT_LEN_  int
#  define ERL_DRV_COMPAT_SLEN_ int
#else
#  define ERL_DRV_COMPAT_LEN_  ErlDrvSizeT
#  define ERL_DRV_COMPAT_SLEN_ ErlDrvSSizeT
#endif

/*
 * A driver binary: reference counted, shared with the runtime. Once sent
 * to Erlang its bytes must not change. orig_bytes really extends to
 * orig_size bytes; it is declared with one element because C89 has no
 * flexible array member, which keeps the offset of orig_bytes at one word.
 * The reference count is kept elsewhere (driver_binary_get_refc() etc.).
 */
typedef struct erl_drv_binary {
    ErlDrvSInt orig_size;   /* number of bytes in orig_bytes */
    char orig_bytes[1];     /* the data, aligned for double */
} ErlDrvBinary;

/* Opaque handles; the tags are never completed, so mixing them up is a
 * compile-time error. ErlDrvThreadData shares the port's tag, as in OTP. */
typedef struct _erl_drv_data *ErlDrvData;          /* the driver's own state */
typedef struct _erl_drv_event *ErlDrvEvent;        /* fd or handle to select on */
typedef struct _erl_drv_port *ErlDrvPort;          /* a driver instance */
typedef struct _erl_drv_port *ErlDrvThreadData;    /* passed to ready_async */

/* Time stamp filled in by driver_get_now() (like erlang:now/0). */
typedef struct {
    unsigned long megasecs;
    unsigned long secs;
    unsigned long microsecs;
} ErlDrvNowData;

/* Erlang time values and their units (erl_drv_monotonic_time() etc.). */
typedef ErlDrvSInt64 ErlDrvTime;

#define ERL_DRV_TIME_ERROR ((ErlDrvSInt64) ERTS_NAPI_TIME_ERROR__)

typedef enum {
    ERL_DRV_SEC = ERTS_NAPI_SEC__,
    ERL_DRV_MSEC = ERTS_NAPI_MSEC__,
    ERL_DRV_USEC = ERTS_NAPI_USEC__,
    ERL_DRV_NSEC = ERTS_NAPI_NSEC__
} ErlDrvTimeUnit;

/*
 * Values the start callback may return instead of its ErlDrvData to make
 * open_port/2 fail with {'EXIT', {Reason, _}}:
 *   ERL_DRV_ERROR_GENERAL  Reason = einval
 *   ERL_DRV_ERROR_ERRNO    Reason = the POSIX name of errno (eacces, ...)
 *   ERL_DRV_ERROR_BADARG   Reason = badarg
 */
#define ERL_DRV_ERROR_GENERAL ((ErlDrvData) -1)
#define ERL_DRV_ERROR_ERRNO   ((ErlDrvData) -2)
#define ERL_DRV_ERROR_BADARG  ((ErlDrvData) -3)

/*
 * A list of byte ranges (iov) together with the binaries that own them
 * (binv, one per element, NULL where there is none). Used by outputv,
 * driver_outputv() and the driver queue.
 */
typedef struct erl_io_vec {
    int vsize;              /* elements in iov and binv */
    ERL_DRV_COMPAT_LEN_ size; /* total bytes over all elements */
    SysIOVec *iov;
    ErlDrvBinary **binv;
} ErlIOVec;

/* Threads and synchronisation; all opaque. */
typedef struct ErlDrvTid_ *ErlDrvTid;
typedef struct ErlDrvMutex_ ErlDrvMutex;
typedef struct ErlDrvCond_ ErlDrvCond;
typedef struct ErlDrvRWLock_ ErlDrvRWLock;
typedef int ErlDrvTSDKey;

/* Port data lock: guards a port's queue against other threads. */
typedef struct erl_drv_port_data_lock *ErlDrvPDL;

/* ========================================================================
 * The driver entry
 *
 * A driver describes itself with one static ErlDrvEntry and returns its
 * address from the function declared by DRIVER_INIT. Callbacks it does
 * not need are NULL. Offsets on x86-64 are given on the right; they are
 * part of the ABI and must never change.
 * ======================================================================== */

typedef struct erl_drv_entry {
    /* After loading (and at start-up for static drivers). 0 = success. */
    int (*init)(void);                                          /*   0 */

    /* open_port/2: create an instance; see ERL_DRV_ERROR_* above. */
    ErlDrvData (*start)(ErlDrvPort port, char *command);        /*   8 */

    /* The port is closing (also when the runtime halts). */
    void (*stop)(ErlDrvData drv_data);                          /*  16 */

    /* Data from port_command/2 or Port ! {Pid, {command, Data}}. */
    void (*output)(ErlDrvData drv_data, char *buf,
                   ERL_DRV_COMPAT_LEN_ len);                            /*  24 */

    /* An event given to driver_select() became readable / writable. */
    void (*ready_input)(ErlDrvData drv_data, ErlDrvEvent event);  /* 32 */
    void (*ready_output)(ErlDrvData drv_data, ErlDrvEvent event); /* 40 */

    /* The name open_port/2 uses; must match the library's file name. */
    char *driver_name;                                          /*  48 */

    /* Before the driver is unloaded. */
    void (*finish)(void);                                       /*  56 */

    /* Owned by the runtime; leave NULL. */
    void *handle;                                               /*  64 */

    /* port_control/3. The reply goes into *rbuf (rlen bytes available;
     * allocate a new buffer with driver_alloc, or a binary when
     * PORT_CONTROL_FLAG_BINARY is set). Returns the reply length. */
    ERL_DRV_COMPAT_SLEN_ (*control)(ErlDrvData drv_data, unsigned int command,
                            char *buf, ERL_DRV_COMPAT_LEN_ len,
                            char **rbuf, ERL_DRV_COMPAT_LEN_ rlen);     /*  72 */

    /* The timer set with driver_set_timer() expired. */
    void (*timeout)(ErlDrvData drv_data);                       /*  80 */

    /* Like output, but the data arrives as an I/O vector; used instead
     * of output when both are set. */
    void (*outputv)(ErlDrvData drv_data, ErlIOVec *ev);         /*  88 */

    /* A driver_async() job of this port has finished. */
    void (*ready_async)(ErlDrvData drv_data,
                        ErlDrvThreadData thread_data);          /*  96 */

    /* The port is closing but its queue is not empty. */
    void (*flush)(ErlDrvData drv_data);                         /* 104 */

    /* erlang:port_call/3: like control, with the data in the external
     * term format; *flags may be given DRIVER_CALL_KEEP_BUFFER. */
    ERL_DRV_COMPAT_SLEN_ (*call)(ErlDrvData drv_data, unsigned int command,
                         char *buf, ERL_DRV_COMPAT_LEN_ len,
                         char **rbuf, ERL_DRV_COMPAT_LEN_ rlen,
                         unsigned int *flags);                  /* 112 */

    /* Formerly `event'; ignored since OTP 21. Leave NULL. */
    void (*unused_event_callback)(void);                        /* 120 */

    /* Version management; see ERL_DRV_EXTENDED_MARKER. */
    int extended_marker;                                        /* 128 */
    int major_version;                                          /* 132 */
    int minor_version;                                          /* 136 */
    int driver_flags;           /* ERL_DRV_FLAG_* */            /* 140 */

    /* Owned by the runtime; leave NULL. */
    void *handle2;                                              /* 144 */

    /* A process monitored with driver_monitor_process() went down. */
    void (*process_exit)(ErlDrvData drv_data,
                         ErlDrvMonitor *monitor);               /* 152 */

    /* The event deselected with ERL_DRV_USE is no longer watched and may
     * be released (on Unix: closed). */
    void (*stop_select)(ErlDrvEvent event, void *reserved);     /* 160 */

    /* The port is being closed abruptly (e.g. while writing a crash
     * dump); since 3.2. */
    void (*emergency_close)(ErlDrvData drv_data);               /* 168 */
} ErlDrvEntry;                                                  /* 176 */

/*
 * DRIVER_INIT(name) starts the definition of the function through which
 * the runtime finds the entry:
 *
 *     DRIVER_INIT(echo_drv)
 *     {
 *         return &echo_driver_entry;
 *     }
 *
 * A dynamically loaded driver exports it as `driver_init' (the argument
 * is ignored); one linked into the emulator with STATIC_ERLANG_DRIVER
 * defined gets `<name>_driver_init' instead, so that drivers do not
 * clash. Under C++ the function is given C linkage.
 */
#ifdef STATIC_ERLANG_DRIVER
#  define ERLANG_DRIVER_NAME(NAME) NAME##_driver_init
#  define ERL_DRIVER_EXPORT
#else
#  define ERLANG_DRIVER_NAME(NAME) driver_init
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define ERL_DRIVER_EXPORT __attribute__((visibility("default")))
#  elif defined(__SUNPRO_C) && __SUNPRO_C >= 0x550
#    define ERL_DRIVER_EXPORT __global
#  else
#    define ERL_DRIVER_EXPORT
#  endif
#endif

/* Output of port_call: the runtime must not free *rbuf. */
#define DRIVER_CALL_KEEP_BUFFER 0x1

/* Limits for erl_drv_busy_msgq_limits(). */
#define ERL_DRV_BUSY_MSGQ_DISABLED  (~((ErlDrvSizeT) 0))
#define ERL_DRV_BUSY_MSGQ_READ_ONLY ((ErlDrvSizeT) 0)
#define ERL_DRV_BUSY_MSGQ_LIM_MAX   (ERL_DRV_BUSY_MSGQ_DISABLED - 1)
#define ERL_DRV_BUSY_MSGQ_LIM_MIN   ((ErlDrvSizeT) 1)

/*
 * Term specifications for erl_drv_output_term() and erl_drv_send_term().
 * A term is written in postfix order as an array of ErlDrvTermData: each
 * tag below is followed by its arguments, and TUPLE/LIST/MAP take their
 * elements from what precedes them. For example {tcp, Port, [100 | Bin]}:
 *
 *     ErlDrvTermData spec[] = {
 *         ERL_DRV_ATOM,   driver_mk_atom("tcp"),
 *         ERL_DRV_PORT,   driver_mk_port(port),
 *         ERL_DRV_INT,    100,
 *         ERL_DRV_BINARY, TERM_DATA(bin), 50, 0,
 *         ERL_DRV_LIST,   2,
 *         ERL_DRV_TUPLE,  3
 *     };
 *
 * The comments give the arguments that follow each tag.
 */
#define TERM_DATA(x) ((ErlDrvTermData) (x))

#define ERL_DRV_NIL         ((ErlDrvTermData) 1)  /* -- */
#define ERL_DRV_ATOM        ((ErlDrvTermData) 2)  /* driver_mk_atom() */
#define ERL_DRV_INT         ((ErlDrvTermData) 3)  /* ErlDrvSInt */
#define ERL_DRV_PORT        ((ErlDrvTermData) 4)  /* driver_mk_port() */
#define ERL_DRV_BINARY      ((ErlDrvTermData) 5)  /* ErlDrvBinary *, len, offset */
#define ERL_DRV_STRING      ((ErlDrvTermData) 6)  /* char *, len */
#define ERL_DRV_TUPLE       ((ErlDrvTermData) 7)  /* arity */
#define ERL_DRV_LIST        ((ErlDrvTermData) 8)  /* elements incl. tail */
#define ERL_DRV_STRING_CONS ((ErlDrvTermData) 9)  /* char *, len */
#define ERL_DRV_PID         ((ErlDrvTermData) 10) /* driver_connected() etc. */
#define ERL_DRV_FLOAT       ((ErlDrvTermData) 11) /* double * */
#define ERL_DRV_EXT2TERM    ((ErlDrvTermData) 12) /* char *, len */
#define ERL_DRV_UINT        ((ErlDrvTermData) 13) /* ErlDrvUInt */
#define ERL_DRV_BUF2BINARY  ((ErlDrvTermData) 14) /* char *, len */
#define ERL_DRV_INT64       ((ErlDrvTermData) 15) /* ErlDrvSInt64 * */
#define ERL_DRV_UINT64      ((ErlDrvTermData) 16) /* ErlDrvUInt64 * */
#define ERL_DRV_MAP         ((ErlDrvTermData) 17) /* number of pairs */

#ifndef ERL_DRIVER_TYPES_ONLY

#ifdef __cplusplus
#  define DRIVER_INIT(DRIVER_NAME) \
    extern "C" ERL_DRIVER_EXPORT ErlDrvEntry *ERLANG_DRIVER_NAME(DRIVER_NAME)(void); \
    ERL_DRIVER_EXPORT ErlDrvEntry *ERLANG_DRIVER_NAME(DRIVER_NAME)(void)
#else
#  define DRIVER_INIT(DRIVER_NAME) \
    ERL_DRIVER_EXPORT ErlDrvEntry *ERLANG_DRIVER_NAME(DRIVER_NAME)(void); \
    ERL_DRIVER_EXPORT ErlDrvEntry *ERLANG_DRIVER_NAME(DRIVER_NAME)(void)
#endif

/* ========================================================================
 * System information
 *
 * Fills in *sip, writing at most si_size bytes: pass sizeof(ErlDrvSysInfo).
 * ======================================================================== */

EXTERN void driver_system_info(ErlDrvSysInfo *sip, size_t si_size);

/* ========================================================================
 * Output
 *
 * Send data to the port owner as {Port, {data, Data}}; with a header
 * buffer, hbuf comes first as a list and the rest follows as the tail.
 * All return 0, or -1 on error. driver_vec_to_buf() flattens an I/O
 * vector into buf and returns the number of bytes copied.
 * ======================================================================== */

EXTERN int driver_output(ErlDrvPort port, char *buf, ERL_DRV_COMPAT_LEN_ len);
EXTERN int driver_output2(ErlDrvPort port, char *hbuf, ERL_DRV_COMPAT_LEN_ hlen,
                          char *buf, ERL_DRV_COMPAT_LEN_ len);
EXTERN int driver_output_binary(ErlDrvPort port, char *hbuf,
                                ERL_DRV_COMPAT_LEN_ hlen, ErlDrvBinary *bin,
                                ERL_DRV_COMPAT_LEN_ offset,
                                ERL_DRV_COMPAT_LEN_ len);
EXTERN int driver_outputv(ErlDrvPort port, char *hbuf, ERL_DRV_COMPAT_LEN_ hlen,
                          ErlIOVec *ev, ERL_DRV_COMPAT_LEN_ skip);
EXTERN ERL_DRV_COMPAT_LEN_ driver_vec_to_buf(ErlIOVec *ev, char *buf,
                                             ERL_DRV_COMPAT_LEN_ len);

/* ========================================================================
 * Timer
 *
 * One timer per port; when it expires the timeout callback runs. Times
 * are in milliseconds. Returns 0, or -1 on error.
 * ======================================================================== */

EXTERN int driver_set_timer(ErlDrvPort port, unsigned long time);
EXTERN int driver_cancel_timer(ErlDrvPort port);
EXTERN int driver_read_timer(ErlDrvPort port, unsigned long *time_left);

/* ========================================================================
 * Time measurement
 *
 * driver_get_now() is the deprecated erlang:now/0 analogue. The others
 * follow erlang:monotonic_time/1, erlang:time_offset/1 and
 * erlang:convert_time_unit/3; they return ERL_DRV_TIME_ERROR on bad input.
 * ======================================================================== */

EXTERN int driver_get_now(ErlDrvNowData *now) ERL_DRV_DEPRECATED_FUNC;
EXTERN ErlDrvTime erl_drv_monotonic_time(ErlDrvTimeUnit time_unit);
EXTERN ErlDrvTime erl_drv_time_offset(ErlDrvTimeUnit time_unit);
EXTERN ErlDrvTime erl_drv_convert_time_unit(ErlDrvTime val,
                                            ErlDrvTimeUnit from,
                                            ErlDrvTimeUnit to);

/* ========================================================================
 * Event selection
 *
 * Ask for ready_input/ready_output when event becomes readable/writable
 * (mode: ERL_DRV_READ, ERL_DRV_WRITE, ERL_DRV_USE; on: 1 to start, 0 to
 * stop). Returns 0, or -1 on error.
 * ======================================================================== */

EXTERN int driver_select(ErlDrvPort port, ErlDrvEvent event, int mode, int on);

/* ========================================================================
 * Memory
 *
 * malloc()/realloc()/free() counterparts; NULL when out of memory.
 * (driver_free is declared first so the allocators can name it.)
 * ======================================================================== */

EXTERN void driver_free(void *ptr);
EXTERN void *driver_alloc(ErlDrvSizeT size)
    ERL_NAPI_ATTR_MALLOC_USD(1, driver_free, 1);
EXTERN void *driver_realloc(void *ptr, ErlDrvSizeT size)
    ERL_NAPI_ATTR_ALLOC_SIZE(2);

/* ========================================================================
 * Driver binaries
 *
 * A new binary has reference count 1; driver_free_binary() drops one
 * reference and frees at zero. Never change a binary once it has been
 * handed to the runtime. The refc calls return the new count.
 * ======================================================================== */

EXTERN void driver_free_binary(ErlDrvBinary *bin);
EXTERN ErlDrvBinary *driver_alloc_binary(ERL_DRV_COMPAT_LEN_ size)
    ERL_NAPI_ATTR_MALLOC_UD(driver_free_binary, 1);
EXTERN ErlDrvBinary *driver_realloc_binary(ErlDrvBinary *bin,
                                          ERL_DRV_COMPAT_LEN_ size)
    ERL_NAPI_ATTR_WUR;
EXTERN ErlDrvSInt driver_binary_get_refc(ErlDrvBinary *dbp);
EXTERN ErlDrvSInt driver_binary_inc_refc(ErlDrvBinary *dbp);
EXTERN ErlDrvSInt driver_binary_dec_refc(ErlDrvBinary *dbp);

/* ========================================================================
 * Queue handling
 *
 * Each port has a byte queue, typically for output a device is not yet
 * ready for; a port does not finish closing while it is non-empty.
 * enq* append, pushq* prepend, deq drops bytes from the head and returns
 * what remains. The *_bin and *v forms queue binaries by reference.
 * With a port data lock, other threads may use the queue too.
 * ======================================================================== */

EXTERN int driver_enq(ErlDrvPort port, char *buf, ERL_DRV_COMPAT_LEN_ len);
EXTERN int driver_pushq(ErlDrvPort port, char *buf, ERL_DRV_COMPAT_LEN_ len);
EXTERN ERL_DRV_COMPAT_LEN_ driver_deq(ErlDrvPort port, ERL_DRV_COMPAT_LEN_ size);
EXTERN ERL_DRV_COMPAT_LEN_ driver_sizeq(ErlDrvPort port);
EXTERN int driver_enq_bin(ErlDrvPort port, ErlDrvBinary *bin,
                          ERL_DRV_COMPAT_LEN_ offset, ERL_DRV_COMPAT_LEN_ len);
EXTERN int driver_pushq_bin(ErlDrvPort port, ErlDrvBinary *bin,
                            ERL_DRV_COMPAT_LEN_ offset, ERL_DRV_COMPAT_LEN_ len);
EXTERN SysIOVec *driver_peekq(ErlDrvPort port, int *vlen);
EXTERN ERL_DRV_COMPAT_LEN_ driver_peekqv(ErlDrvPort port, ErlIOVec *ev);
EXTERN int driver_enqv(ErlDrvPort port, ErlIOVec *ev, ERL_DRV_COMPAT_LEN_ skip);
EXTERN int driver_pushqv(ErlDrvPort port, ErlIOVec *ev, ERL_DRV_COMPAT_LEN_ skip);

/* ========================================================================
 * Port data lock
 *
 * Created once per port; reference counted (the refc calls return the
 * new count). Hold it around every queue access from outside callbacks.
 * ======================================================================== */

EXTERN ErlDrvPDL driver_pdl_create(ErlDrvPort port);
EXTERN void driver_pdl_lock(ErlDrvPDL pdl);
EXTERN void driver_pdl_unlock(ErlDrvPDL pdl);
EXTERN ErlDrvSInt driver_pdl_get_refc(ErlDrvPDL pdl);
EXTERN ErlDrvSInt driver_pdl_inc_refc(ErlDrvPDL pdl);
EXTERN ErlDrvSInt driver_pdl_dec_refc(ErlDrvPDL pdl);

/* ========================================================================
 * Process monitors
 *
 * When a monitored process exits, the process_exit callback runs.
 * ======================================================================== */

EXTERN int driver_monitor_process(ErlDrvPort port, ErlDrvTermData process,
                                  ErlDrvMonitor *monitor);
EXTERN int driver_demonitor_process(ErlDrvPort port,
                                    const ErlDrvMonitor *monitor);
EXTERN ErlDrvTermData driver_get_monitored_process(ErlDrvPort port,
                                                   const ErlDrvMonitor *monitor);
EXTERN int driver_compare_monitors(const ErlDrvMonitor *monitor1,
                                   const ErlDrvMonitor *monitor2);

/* ========================================================================
 * Adding and removing drivers
 *
 * Register further entries from inside a loaded driver, e.g. from init.
 * ======================================================================== */

EXTERN void add_driver_entry(ErlDrvEntry *de);
EXTERN int remove_driver_entry(ErlDrvEntry *de);

/* ========================================================================
 * Error names
 *
 * The atom text for an errno value ("eacces", ...).
 * ======================================================================== */

EXTERN char *erl_errno_id(int error);

/* ========================================================================
 * Port attributes and scheduling
 *
 * Busy state (senders block while it is on) and its message-queue limits,
 * the reply format of port_control/3, the open_port options in effect,
 * a hint about time spent in a callback (percent of a time slice), the
 * late answer to open_port/2 for ERL_DRV_FLAG_USE_INIT_ACK drivers, and
 * the os_pid shown by erlang:port_info/2.
 * ======================================================================== */

EXTERN void set_busy_port(ErlDrvPort port, int on);
EXTERN void erl_drv_busy_msgq_limits(ErlDrvPort port, ErlDrvSizeT *low,
                                     ErlDrvSizeT *high);
EXTERN void set_port_control_flags(ErlDrvPort port, int flags);
EXTERN int get_port_flags(ErlDrvPort port);
EXTERN int erl_drv_consume_timeslice(ErlDrvPort port, int percent);
EXTERN void erl_drv_init_ack(ErlDrvPort port, ErlDrvData res);
EXTERN void erl_drv_set_os_pid(ErlDrvPort port, ErlDrvSInt pid);

/* ========================================================================
 * Failure
 *
 * For errors the driver cannot recover from: the port is closed and its
 * owner gets an exit signal. The reason is an atom (driver_failure_atom),
 * the POSIX name of an errno value (driver_failure_posix), an integer
 * (driver_failure), or `normal' when err is 0 and the errno name otherwise
 * (driver_exit). driver_failure_eof() reports end of file; a port opened
 * with the eof option gets {Port, eof} and stays open. All return 0.
 * ======================================================================== */

EXTERN int driver_failure_eof(ErlDrvPort port);
EXTERN int driver_failure_atom(ErlDrvPort port, char *string);
EXTERN int driver_failure_posix(ErlDrvPort port, int error);
EXTERN int driver_failure(ErlDrvPort port, int error);
EXTERN int driver_exit(ErlDrvPort port, int err);

/* ========================================================================
 * Sending terms
 *
 * Build terms from a term specification (see ERL_DRV_NIL ...) and send
 * them to the port owner or to any process. The driver_* forms are
 * deprecated in favour of the erl_drv_* forms, which take the port as
 * driver_mk_port(port). driver_term_nil is the empty list.
 * ======================================================================== */

EXTERN ErlDrvTermData driver_connected(ErlDrvPort port);
EXTERN ErlDrvTermData driver_caller(ErlDrvPort port);
EXTERN int driver_output_term(ErlDrvPort port, ErlDrvTermData *data, int len)
    ERL_DRV_DEPRECATED_FUNC;
EXTERN ErlDrvTermData driver_mk_atom(char *string);
EXTERN ErlDrvTermData driver_mk_port(ErlDrvPort port);
EXTERN int driver_send_term(ErlDrvPort port, ErlDrvTermData to,
                            ErlDrvTermData *data, int len)
    ERL_DRV_DEPRECATED_FUNC;
EXTERN int erl_drv_output_term(ErlDrvTermData port, ErlDrvTermData *data,
                               int len);
EXTERN int erl_drv_send_term(ErlDrvTermData port, ErlDrvTermData to,
                             ErlDrvTermData *data, int len);
EXTERN const ErlDrvTermData driver_term_nil;
EXTERN ErlDrvTermData driver_mk_term_nil(void);

/* ========================================================================
 * Asynchronous calls
 *
 * Run async_invoke(async_data) on the async thread pool; jobs with equal
 * *key run in order on the same thread (NULL key: any thread). Then
 * ready_async runs (async_free instead when the entry has none). Returns
 * -1 on failure. driver_async_cancel() is gone since 3.0. The port key
 * is a value for *key that keeps one port's jobs on one thread.
 * ======================================================================== */

EXTERN long driver_async(ErlDrvPort port, unsigned int *key,
                         void (*async_invoke)(void *), void *async_data,
                         void (*async_free)(void *));
EXTERN unsigned int driver_async_port_key(ErlDrvPort port);

/* ========================================================================
 * Driver and port lifetime
 *
 * Keep the driver loaded for good; open another port on this driver,
 * owned by the process `owner' and sharing drv_data.
 * ======================================================================== */

EXTERN int driver_lock_driver(ErlDrvPort port);
EXTERN ErlDrvPort driver_create_port(ErlDrvPort creator_port,
                                     ErlDrvTermData owner,
                                     char *name, ErlDrvData drv_data);

/* ========================================================================
 * Threads
 *
 * A subset of POSIX threads. `name' arguments label the object for
 * debugging. Creation calls return 0 (or the object) on success, an
 * errno value (or NULL) on failure.
 * ======================================================================== */

EXTERN int erl_drv_thread_create(char *name, ErlDrvTid *tid,
                                 void *(*func)(void *), void *args,
                                 ErlDrvThreadOpts *opts);
EXTERN void erl_drv_thread_opts_destroy(ErlDrvThreadOpts *opts);
EXTERN ErlDrvThreadOpts *erl_drv_thread_opts_create(char *name)
    ERL_NAPI_ATTR_MALLOC_D(erl_drv_thread_opts_destroy, 1);
EXTERN void erl_drv_thread_exit(void *resp);
EXTERN int erl_drv_thread_join(ErlDrvTid tid, void **respp);
EXTERN ErlDrvTid erl_drv_thread_self(void);
EXTERN int erl_drv_equal_tids(ErlDrvTid tid1, ErlDrvTid tid2);
EXTERN char *erl_drv_thread_name(ErlDrvTid tid);

/* ========================================================================
 * Mutexes
 *
 * trylock returns 0 when it got the lock, EBUSY when it did not.
 * ======================================================================== */

EXTERN void erl_drv_mutex_destroy(ErlDrvMutex *mtx);
EXTERN ErlDrvMutex *erl_drv_mutex_create(char *name)
    ERL_NAPI_ATTR_MALLOC_D(erl_drv_mutex_destroy, 1);
EXTERN void erl_drv_mutex_lock(ErlDrvMutex *mtx);
EXTERN int erl_drv_mutex_trylock(ErlDrvMutex *mtx);
EXTERN void erl_drv_mutex_unlock(ErlDrvMutex *mtx);
EXTERN char *erl_drv_mutex_name(ErlDrvMutex *mtx);

/* ========================================================================
 * Condition variables
 *
 * Used with a mutex; wait may wake up spuriously, so re-check. There is
 * deliberately no timed wait: use the driver timer.
 * ======================================================================== */

EXTERN void erl_drv_cond_destroy(ErlDrvCond *cnd);
EXTERN ErlDrvCond *erl_drv_cond_create(char *name)
    ERL_NAPI_ATTR_MALLOC_D(erl_drv_cond_destroy, 1);
EXTERN void erl_drv_cond_signal(ErlDrvCond *cnd);
EXTERN void erl_drv_cond_broadcast(ErlDrvCond *cnd);
EXTERN void erl_drv_cond_wait(ErlDrvCond *cnd, ErlDrvMutex *mtx);
EXTERN char *erl_drv_cond_name(ErlDrvCond *cnd);

/* ========================================================================
 * Read/write locks
 *
 * Many readers (r*) or one writer (rw*); the try forms return 0 or EBUSY.
 * ======================================================================== */

EXTERN void erl_drv_rwlock_destroy(ErlDrvRWLock *rwlck);
EXTERN ErlDrvRWLock *erl_drv_rwlock_create(char *name)
    ERL_NAPI_ATTR_MALLOC_D(erl_drv_rwlock_destroy, 1);
EXTERN void erl_drv_rwlock_rlock(ErlDrvRWLock *rwlck);
EXTERN int erl_drv_rwlock_tryrlock(ErlDrvRWLock *rwlck);
EXTERN void erl_drv_rwlock_runlock(ErlDrvRWLock *rwlck);
EXTERN void erl_drv_rwlock_rwlock(ErlDrvRWLock *rwlck);
EXTERN int erl_drv_rwlock_tryrwlock(ErlDrvRWLock *rwlck);
EXTERN void erl_drv_rwlock_rwunlock(ErlDrvRWLock *rwlck);
EXTERN char *erl_drv_rwlock_name(ErlDrvRWLock *rwlck);

/* ========================================================================
 * Thread-specific data
 *
 * One void * per thread and key. Clear it before an emulator thread
 * leaves the driver's control.
 * ======================================================================== */

EXTERN int erl_drv_tsd_key_create(char *name, ErlDrvTSDKey *key);
EXTERN void erl_drv_tsd_key_destroy(ErlDrvTSDKey key);
EXTERN void erl_drv_tsd_set(ErlDrvTSDKey key, void *data);
EXTERN void *erl_drv_tsd_get(ErlDrvTSDKey key);

/* ========================================================================
 * Environment
 *
 * Thread-safe access to the emulator's environment; use these instead of
 * the C library's. putenv returns 0 on success. getenv takes the size of
 * value in *value_size and returns 0 (found; *value_size = length),
 * > 0 (value too small; *value_size = size needed) or < 0 (not set).
 * ======================================================================== */

EXTERN int erl_drv_putenv(const char *key, char *value);
EXTERN int erl_drv_getenv(const char *key, char *value, size_t *value_size);

/* ========================================================================
 * Dynamic loading
 *
 * Portable dlopen()/dlsym()/dlclose()/dlerror().
 * ======================================================================== */

EXTERN void *driver_dl_open(char *path);
EXTERN void *driver_dl_sym(void *handle, char *func_name);
EXTERN int driver_dl_close(void *handle);
EXTERN char *driver_dl_error(void);

/* ========================================================================
 * Miscellaneous
 *
 * null_func() does nothing and returns 0 (a placeholder callback).
 * dtrace_drvport_str() belongs to the runtime's DTrace probes; it is
 * declared only because OTP's header declares it.
 * ======================================================================== */

EXTERN int null_func(void);
EXTERN void dtrace_drvport_str(ErlDrvPort port, char *port_buf);

#endif /* !ERL_DRIVER_TYPES_ONLY */

#endif /* __ERL_DRIVER_H__ */
