/* lg_nomarker_drv: a driver with no extended marker (R9B ... R11B-2
 * layout: the entry ends after `event', 128 bytes on x86-64), the twin of
 * echo_drv: echoes port_command data (output), control data (binary
 * control mode) and call terms, with the int prototypes of that era.
 * Compiled with -DERL_DRV_COMPAT_LEGACY_INT_API (Makefile).
 *
 * The entry is declared with that era's 16 slots, not with the header's
 * ErlDrvEntry, so nothing of the extended fields exists. It is followed by
 * zeroed bytes, as a lone static entry often is: runtimes R11B-4 ... R14B04
 * (and erl_driver_compat) read major_version ... process_exit there and
 * refuse the driver unless they are 0 (spec/ABI_VERSIONS.md section 6). */
#include <string.h>
#include "erl_driver.h"

typedef struct { ErlDrvPort port; } echo_data;

static ErlDrvData echo_start(ErlDrvPort port, char *command)
{
    echo_data *d = driver_alloc(sizeof(echo_data));
    (void)command;
    d->port = port;
    set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData)d;
}

static void echo_stop(ErlDrvData handle) { driver_free(handle); }

static void echo_output(ErlDrvData handle, char *buf, int len)
{
    echo_data *d = (echo_data *)handle;
    driver_output(d->port, buf, len);
}

static int echo_control(ErlDrvData handle, unsigned int cmd, char *buf,
                        int len, char **rbuf, int rlen)
{
    (void)handle; (void)cmd;
    if (len > rlen) {
        ErlDrvBinary *bin = driver_alloc_binary(len);
        memcpy(bin->orig_bytes, buf, len);
        *rbuf = (char *)bin;
        return len;
    }
    memcpy(*rbuf, buf, len);
    return len;
}

static int echo_call(ErlDrvData handle, unsigned int cmd, char *buf,
                     int len, char **rbuf, int rlen, unsigned int *flags)
{
    (void)handle; (void)cmd; (void)flags;
    if (len > rlen) {
        *rbuf = driver_alloc(len);
    }
    memcpy(*rbuf, buf, len);
    return len;
}

/* ErlDrvEntry as R9B ... R11B-2 declared it. */
typedef struct old_driver_entry {
    int (*init)(void);
    ErlDrvData (*start)(ErlDrvPort port, char *command);
    void (*stop)(ErlDrvData drv_data);
    void (*output)(ErlDrvData drv_data, char *buf, int len);
    void (*ready_input)(ErlDrvData drv_data, ErlDrvEvent event);
    void (*ready_output)(ErlDrvData drv_data, ErlDrvEvent event);
    char *driver_name;
    void (*finish)(void);
    void *handle;
    int (*control)(ErlDrvData drv_data, unsigned int command, char *buf,
                   int len, char **rbuf, int rlen);
    void (*timeout)(ErlDrvData drv_data);
    void (*outputv)(ErlDrvData drv_data, ErlIOVec *ev);
    void (*ready_async)(ErlDrvData drv_data, ErlDrvThreadData thread_data);
    void (*flush)(ErlDrvData drv_data);
    int (*call)(ErlDrvData drv_data, unsigned int command, char *buf,
                int len, char **rbuf, int rlen, unsigned int *flags);
    void (*event)(void);
} OldDriverEntry;

typedef char old_entry_is_128_bytes[sizeof(OldDriverEntry) == 128 ? 1 : -1];

static struct {
    OldDriverEntry entry;
    char after[32];
} old = {
    {
        NULL, echo_start, echo_stop, echo_output, NULL, NULL,
        "lg_nomarker_drv", NULL, NULL, echo_control, NULL, NULL, NULL, NULL,
        echo_call, NULL
    },
    {0}
};

DRIVER_INIT(lg_nomarker_drv) { return (ErlDrvEntry *)(void *)&old.entry; }
