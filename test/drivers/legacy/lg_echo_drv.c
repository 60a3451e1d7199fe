/* lg_echo_drv: seed-era (interface 1.5, int ABI) twin of echo_drv, written
 * against the R13B/R14B manual's prototypes (int lengths, int returns) and
 * compiled with -DERL_DRV_COMPAT_LEGACY_INT_API. Echoes port_command data
 * (output), control data (binary control mode) and call terms. */
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

static ErlDrvEntry echo_entry = {
    NULL, echo_start, echo_stop, echo_output, NULL, NULL, "lg_echo_drv", NULL,
    NULL, echo_control, NULL, NULL, NULL, NULL, echo_call, NULL,
    ERL_DRV_EXTENDED_MARKER, ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION, 0, NULL, NULL, NULL, NULL
};

DRIVER_INIT(lg_echo_drv) { return &echo_entry; }
