/*
 * consumer_drv: the driver a fresh rebar3 project builds against
 * erl_driver_compat:include_dir() in test/consumer/rebar3_consumer.sh.
 * port_command data is echoed with driver_output; port_control command 1
 * replies with the data reversed (a list reply: no binary flag is set).
 */
#include <string.h>
#include "erl_driver.h"

static ErlDrvData consumer_start(ErlDrvPort port, char *command);
static void consumer_output(ErlDrvData handle, char *buf, ErlDrvSizeT len);
static ErlDrvSSizeT consumer_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                     ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen);

static ErlDrvEntry consumer_entry = {
    NULL,                           /* init */
    consumer_start,
    NULL,                           /* stop */
    consumer_output,
    NULL,                           /* ready_input */
    NULL,                           /* ready_output */
    "consumer_drv",
    NULL,                           /* finish */
    NULL,                           /* handle */
    consumer_control,
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

DRIVER_INIT(consumer_drv) { return &consumer_entry; }

static ErlDrvData consumer_start(ErlDrvPort port, char *command)
{
    (void)command;
    return (ErlDrvData)port;
}

static void consumer_output(ErlDrvData handle, char *buf, ErlDrvSizeT len)
{
    driver_output((ErlDrvPort)handle, buf, len);
}

static ErlDrvSSizeT consumer_control(ErlDrvData handle, unsigned int cmd, char *buf,
                                     ErlDrvSizeT len, char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvSizeT i;
    (void)handle;
    if (cmd != 1)
        return -1;
    if (len > rlen) {
        *rbuf = driver_alloc(len);
        if (*rbuf == NULL)
            return -1;
    }
    for (i = 0; i < len; i++)
        (*rbuf)[i] = buf[len - 1 - i];
    return (ErlDrvSSizeT)len;
}
