/*
 * lc_select_drv: driver_select with ERL_DRV_READ, ERL_DRV_WRITE, ERL_DRV_USE
 * and ERL_DRV_USE_NO_CALLBACK; the ready_input, ready_output and
 * stop_select callbacks.
 *
 * open_port({spawn, "lc_select_drv Tag"}, ...) opens a port named Tag (used
 * in the stop_select log). A port owns at most two descriptors, "a" and
 * "b": a pipe (a = read end, b = write end), a socketpair, a TCP client
 * socket (a) or a UDP socket (a); all non-blocking, loopback only.
 *
 * Operations (port_control command numbers, arguments as text); replies
 * are Erlang terms written as text (without the final dot):
 *   1          a, b = pipe()                            -> "ok"
 *   2          a, b = socketpair(AF_UNIX, SOCK_STREAM)  -> "ok"
 *   3 "W M O"  driver_select(port, W, M, O); W 0 = a, 1 = b  -> "Ret"
 *   4 "W Text" write(W, Text)                           -> "N"
 *   5 "M K"    how ready_input behaves (below)          -> "ok"
 *   6 "M"      how stop behaves (below)                 -> "ok"
 *   7          the stop_select log of this driver, oldest first, then
 *              cleared: "[{Tag,Fd,Direct},...]", Fd a or b, Direct true
 *              when stop_select ran inside a driver_select call -> "[...]"
 *   8 "P"      a = TCP socket connecting to 127.0.0.1:P, selected for
 *              ERL_DRV_WRITE|ERL_DRV_USE                -> "ok"
 *   9          a = UDP socket bound to 127.0.0.1:0, selected for
 *              ERL_DRV_READ|ERL_DRV_USE                 -> "PortNumber"
 *  10 "W"      close(W) without deselecting             -> "ok"
 *  11          "pending events": writes "x" to b, waits (poll, 2 s at
 *              most) until a is readable and 20 ms more (for the VM's poll
 *              thread to see the event: natively it schedules a
 *              ready_input task, through enif_select it sends a message),
 *              then deselects a's ERL_DRV_READ and selects b for
 *              ERL_DRV_WRITE, all in this one callback  -> "Readable"
 *  12          how many times ready_input ran on this port -> "N"
 *  13 "F M O"  driver_select(port, F, M, O), F any number -> "Ret"
 *
 * ready_input modes (op 5), each outputs one message to the owner:
 *   0  read: "{in,Fd,\"Data\"}" ("{in,Fd,eof}" and deselect at end of
 *      file, "{in,Fd,eagain}" when nothing was there)
 *   1  no read, K times: "{noread,Fd,N}" for N = 1..K; at N = K it reads
 *      and deselects ERL_DRV_READ (level triggering calls it again while
 *      the data is unread)
 *   2  read, then deselect ERL_DRV_READ inside ready_input
 *   3  read, then driver_failure_atom(port, "closed_in_input")
 *   4  echo: read (recvfrom for UDP) and write it back: "{echo,Fd,\"Data\"}"
 *   5  read, then change the event set: deselect ERL_DRV_READ and select
 *      the same descriptor for ERL_DRV_WRITE
 *   6  read, then driver_select(ERL_DRV_READ|ERL_DRV_USE, 0): stop_select
 *      runs inside ready_input
 * ready_output: "{out,Fd}" and deselects ERL_DRV_WRITE; for a connecting
 * TCP socket "{connected,Errno}" and selects ERL_DRV_READ instead.
 *
 * stop modes (op 6): 0 nothing (descriptors left selected and open);
 * 1 driver_select(Fd, ERL_DRV_READ|ERL_DRV_WRITE|ERL_DRV_USE, 0) for a and
 * b (stop_select closes them); 2 the same with ERL_DRV_USE_NO_CALLBACK,
 * then close() by the driver itself.
 *
 * stop_select logs and closes the descriptor; it looks it up in a table of
 * this driver's open descriptors (it gets no port).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "erl_driver.h"

static ErlDrvData sel_start(ErlDrvPort port, char *command);
static void sel_stop(ErlDrvData handle);
static void sel_ready_input(ErlDrvData handle, ErlDrvEvent event);
static void sel_ready_output(ErlDrvData handle, ErlDrvEvent event);
static ErlDrvSSizeT sel_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen);
static void sel_stop_select(ErlDrvEvent event, void *reserved);

static ErlDrvEntry sel_entry = {
    NULL,                       /* init */
    sel_start,
    sel_stop,
    NULL,                       /* output */
    sel_ready_input,
    sel_ready_output,
    "lc_select_drv",
    NULL,                       /* finish */
    NULL,                       /* handle */
    sel_control,
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
    sel_stop_select,
    NULL                        /* emergency_close */
};

DRIVER_INIT(lc_select_drv) { return &sel_entry; }

#define OP_PIPE        1
#define OP_SOCKETPAIR  2
#define OP_SELECT      3
#define OP_WRITE       4
#define OP_INPUT_MODE  5
#define OP_STOP_MODE   6
#define OP_LOG         7
#define OP_TCP         8
#define OP_UDP         9
#define OP_CLOSE       10
#define OP_PENDING     11
#define OP_CALLS       12
#define OP_SELECT_RAW  13

#define TAG_LEN 32
#define MAX_FDS 256
#define LOG_LEN 64

typedef struct {
    ErlDrvPort port;
    char tag[TAG_LEN];
    int fd[2];
    int udp;
    int connecting;
    int input_mode;
    int input_k;
    int noread_count;
    int input_calls;
    int stop_mode;
} SelData;

/* Descriptors open through this driver: stop_select gets only the fd. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    char tag[TAG_LEN];
    char name;
} fd_table[MAX_FDS];
static int fd_count;
static char stop_log[LOG_LEN][TAG_LEN + 16];
static int log_count;

/* Non-zero while this thread is inside a driver_select call of ours. */
static __thread int in_select;

static void remember_fd(const SelData *d, int fd, char name)
{
    pthread_mutex_lock(&table_lock);
    if (fd_count < MAX_FDS) {
        fd_table[fd_count].fd = fd;
        strcpy(fd_table[fd_count].tag, d->tag);
        fd_table[fd_count].name = name;
        fd_count++;
    }
    pthread_mutex_unlock(&table_lock);
}

static void forget_fd(int fd)
{
    int i;

    pthread_mutex_lock(&table_lock);
    for (i = 0; i < fd_count; i++) {
        if (fd_table[i].fd == fd) {
            fd_table[i] = fd_table[--fd_count];
            break;
        }
    }
    pthread_mutex_unlock(&table_lock);
}

static void sel_stop_select(ErlDrvEvent event, void *reserved)
{
    int fd = (int)(long)event;
    int i;

    (void)reserved;
    pthread_mutex_lock(&table_lock);
    for (i = 0; i < fd_count; i++) {
        if (fd_table[i].fd == fd)
            break;
    }
    if (log_count < LOG_LEN) {
        if (i < fd_count)
            snprintf(stop_log[log_count], sizeof(stop_log[0]), "{'%s',%c,%s}",
                     fd_table[i].tag, fd_table[i].name,
                     in_select ? "true" : "false");
        else
            snprintf(stop_log[log_count], sizeof(stop_log[0]), "{unknown,%s}",
                     in_select ? "true" : "false");
        log_count++;
    }
    if (i < fd_count)
        fd_table[i] = fd_table[--fd_count];
    pthread_mutex_unlock(&table_lock);
    close(fd);
}

static int do_select(SelData *d, int fd, int mode, int on)
{
    int ret;

    in_select++;
    ret = driver_select(d->port, (ErlDrvEvent)(long)fd, mode, on);
    in_select--;
    return ret;
}

static char fd_name(const SelData *d, int fd)
{
    return fd == d->fd[0] ? 'a' : (fd == d->fd[1] ? 'b' : '?');
}

static void output_text(SelData *d, const char *text)
{
    driver_output(d->port, (char *)text, strlen(text));
}

static ErlDrvData sel_start(ErlDrvPort port, char *command)
{
    SelData *d;
    char *arg;

    d = driver_alloc(sizeof(SelData));
    if (d == NULL)
        return ERL_DRV_ERROR_GENERAL;
    memset(d, 0, sizeof(SelData));
    d->port = port;
    d->fd[0] = d->fd[1] = -1;
    arg = strchr(command, ' ');
    snprintf(d->tag, TAG_LEN, "%s", arg != NULL ? arg + 1 : "none");
    return (ErlDrvData)d;
}

static void sel_stop(ErlDrvData handle)
{
    SelData *d = (SelData *)handle;
    int i;

    for (i = 0; i < 2; i++) {
        if (d->fd[i] < 0)
            continue;
        if (d->stop_mode == 1) {
            do_select(d, d->fd[i], ERL_DRV_READ | ERL_DRV_WRITE | ERL_DRV_USE, 0);
        } else if (d->stop_mode == 2) {
            do_select(d, d->fd[i],
                      ERL_DRV_READ | ERL_DRV_WRITE | ERL_DRV_USE_NO_CALLBACK, 0);
            forget_fd(d->fd[i]);
            close(d->fd[i]);
        }
    }
    driver_free(d);
}

/* Reads what is there; returns the byte count, 0 at end of file, -1 for
 * EAGAIN. */
static int read_some(SelData *d, int fd, char *buf, size_t size)
{
    ssize_t n;

    if (d->udp) {
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        n = recvfrom(fd, buf, size, 0, (struct sockaddr *)&from, &from_len);
        if (n >= 0)
            sendto(fd, buf, n, 0, (struct sockaddr *)&from, from_len);
    } else {
        n = read(fd, buf, size);
    }
    return n < 0 ? -1 : (int)n;
}

static void report_read(SelData *d, int fd, const char *what, int n, const char *buf)
{
    char msg[400];

    if (n > 0)
        snprintf(msg, sizeof(msg), "{%s,%c,\"%.*s\"}", what, fd_name(d, fd), n, buf);
    else
        snprintf(msg, sizeof(msg), "{%s,%c,%s}", what, fd_name(d, fd),
                 n == 0 ? "eof" : "eagain");
    output_text(d, msg);
}

static void sel_ready_input(ErlDrvData handle, ErlDrvEvent event)
{
    SelData *d = (SelData *)handle;
    int fd = (int)(long)event;
    char buf[256];
    char msg[64];
    int n;

    d->input_calls++;
    switch (d->input_mode) {
    case 7:
        snprintf(msg, sizeof(msg), "{unread,%c,%d}", fd_name(d, fd), d->input_calls);
        output_text(d, msg);
        do_select(d, fd, ERL_DRV_READ, 0);
        return;
    case 1:
        d->noread_count++;
        snprintf(msg, sizeof(msg), "{noread,%c,%d}", fd_name(d, fd), d->noread_count);
        output_text(d, msg);
        if (d->noread_count >= d->input_k) {
            read_some(d, fd, buf, sizeof(buf));
            do_select(d, fd, ERL_DRV_READ, 0);
        }
        return;
    case 4:
        n = read_some(d, fd, buf, sizeof(buf));
        if (n > 0 && !d->udp && write(fd, buf, n) != n)
            n = -1;
        report_read(d, fd, "echo", n, buf);
        if (n == 0)
            do_select(d, fd, ERL_DRV_READ, 0);
        return;
    default:
        break;
    }
    n = read_some(d, fd, buf, sizeof(buf));
    report_read(d, fd, "in", n, buf);
    switch (d->input_mode) {
    case 0:
        if (n == 0)
            do_select(d, fd, ERL_DRV_READ, 0);
        break;
    case 2:
        do_select(d, fd, ERL_DRV_READ, 0);
        break;
    case 3:
        driver_failure_atom(d->port, "closed_in_input");
        break;
    case 5:
        do_select(d, fd, ERL_DRV_READ, 0);
        do_select(d, fd, ERL_DRV_WRITE, 1);
        break;
    case 6:
        do_select(d, fd, ERL_DRV_READ | ERL_DRV_USE, 0);
        if (fd == d->fd[0])
            d->fd[0] = -1;
        break;
    default:
        break;
    }
}

static void sel_ready_output(ErlDrvData handle, ErlDrvEvent event)
{
    SelData *d = (SelData *)handle;
    int fd = (int)(long)event;
    char msg[64];

    if (d->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        d->connecting = 0;
        do_select(d, fd, ERL_DRV_WRITE, 0);
        do_select(d, fd, ERL_DRV_READ | ERL_DRV_USE, 1);
        snprintf(msg, sizeof(msg), "{connected,%d}", err);
        output_text(d, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "{out,%c}", fd_name(d, fd));
    output_text(d, msg);
    do_select(d, fd, ERL_DRV_WRITE, 0);
}

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

static int nonblocking(int fd)
{
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void adopt_pair(SelData *d, int fds[2])
{
    d->fd[0] = fds[0];
    d->fd[1] = fds[1];
    nonblocking(fds[0]);
    nonblocking(fds[1]);
    remember_fd(d, fds[0], 'a');
    remember_fd(d, fds[1], 'b');
}

static ErlDrvSSizeT sel_control(ErlDrvData handle, unsigned int op,
                                char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    SelData *d = (SelData *)handle;
    char arg[256];
    char out[LOG_LEN * (TAG_LEN + 17) + 8];
    int fds[2];
    int w = 0, mode = 0, on = 0, n, i;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof(addr);
    struct pollfd pfd;

    if (len >= sizeof(arg))
        return -1;
    memcpy(arg, buf, len);
    arg[len] = '\0';

    switch (op) {
    case OP_PIPE:
        if (pipe(fds) != 0)
            return reply(rbuf, rlen, "{error,pipe}");
        adopt_pair(d, fds);
        return reply(rbuf, rlen, "ok");
    case OP_SOCKETPAIR:
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
            return reply(rbuf, rlen, "{error,socketpair}");
        adopt_pair(d, fds);
        return reply(rbuf, rlen, "ok");
    case OP_SELECT:
        if (sscanf(arg, "%d %d %d", &w, &mode, &on) != 3 || w < 0 || w > 1)
            return -1;
        snprintf(out, sizeof(out), "%d", do_select(d, d->fd[w], mode, on));
        return reply(rbuf, rlen, out);
    case OP_WRITE:
        if (len < 2 || (arg[0] != '0' && arg[0] != '1'))
            return -1;
        n = (int)write(d->fd[arg[0] - '0'], arg + 2, len - 2);
        snprintf(out, sizeof(out), "%d", n);
        return reply(rbuf, rlen, out);
    case OP_INPUT_MODE:
        d->input_k = 1;
        if (sscanf(arg, "%d %d", &d->input_mode, &d->input_k) < 1)
            return -1;
        return reply(rbuf, rlen, "ok");
    case OP_STOP_MODE:
        d->stop_mode = atoi(arg);
        return reply(rbuf, rlen, "ok");
    case OP_LOG:
        pthread_mutex_lock(&table_lock);
        strcpy(out, "[");
        for (i = 0; i < log_count; i++) {
            if (i > 0)
                strcat(out, ",");
            strcat(out, stop_log[i]);
        }
        strcat(out, "]");
        log_count = 0;
        pthread_mutex_unlock(&table_lock);
        return reply(rbuf, rlen, out);
    case OP_TCP:
        fds[0] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[0] < 0)
            return reply(rbuf, rlen, "{error,socket}");
        nonblocking(fds[0]);
        memset(&addr, 0, sizeof(addr));
        addr.sin_family = AF_INET;
        addr.sin_port = htons((unsigned short)atoi(arg));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fds[0], (struct sockaddr *)&addr, sizeof(addr)) != 0
            && errno != EINPROGRESS) {
            close(fds[0]);
            return reply(rbuf, rlen, "{error,connect}");
        }
        d->fd[0] = fds[0];
        d->connecting = 1;
        d->input_mode = 4;
        remember_fd(d, fds[0], 'a');
        do_select(d, fds[0], ERL_DRV_WRITE | ERL_DRV_USE, 1);
        return reply(rbuf, rlen, "ok");
    case OP_UDP:
        fds[0] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fds[0] < 0)
            return reply(rbuf, rlen, "{error,socket}");
        nonblocking(fds[0]);
        memset(&addr, 0, sizeof(addr));
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fds[0], (struct sockaddr *)&addr, sizeof(addr)) != 0
            || getsockname(fds[0], (struct sockaddr *)&addr, &addr_len) != 0) {
            close(fds[0]);
            return reply(rbuf, rlen, "{error,bind}");
        }
        d->fd[0] = fds[0];
        d->udp = 1;
        d->input_mode = 4;
        remember_fd(d, fds[0], 'a');
        do_select(d, fds[0], ERL_DRV_READ | ERL_DRV_USE, 1);
        snprintf(out, sizeof(out), "%d", ntohs(addr.sin_port));
        return reply(rbuf, rlen, out);
    case OP_CLOSE:
        w = atoi(arg);
        if (w < 0 || w > 1 || d->fd[w] < 0)
            return -1;
        forget_fd(d->fd[w]);
        close(d->fd[w]);
        d->fd[w] = -1;
        return reply(rbuf, rlen, "ok");
    case OP_PENDING:
        if (write(d->fd[1], "x", 1) != 1)
            return -1;
        pfd.fd = d->fd[0];
        pfd.events = POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, 2000);
        usleep(20000);
        do_select(d, d->fd[0], ERL_DRV_READ, 0);
        do_select(d, d->fd[1], ERL_DRV_WRITE, 1);
        snprintf(out, sizeof(out), "%s", n == 1 ? "true" : "false");
        return reply(rbuf, rlen, out);
    case OP_SELECT_RAW:
        if (sscanf(arg, "%d %d %d", &w, &mode, &on) != 3)
            return -1;
        snprintf(out, sizeof(out), "%d", do_select(d, w, mode, on));
        return reply(rbuf, rlen, out);
    case OP_CALLS:
        snprintf(out, sizeof(out), "%d", d->input_calls);
        return reply(rbuf, rlen, out);
    default:
        return -1;
    }
}
