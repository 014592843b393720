/*
 * systemd's readiness protocol (sd_notify(3)), spoken directly: one datagram of
 * "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. Linking
 * libsystemd would cost the master more than the forty lines below, and the
 * protocol is documented and stable.
 *
 * Without $NOTIFY_SOCKET (no systemd, or Type= other than notify) every call is
 * a no-op. The variable is left in the environment on purpose: a master
 * re-executed by USR2 is a child of this one and must reach the same socket to
 * announce its own pid (sdnotify_mainpid()). Workers never call these.
 */
#include "master.h"
#include "../common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fill addr from $NOTIFY_SOCKET: a path, or "@name" for the abstract namespace.
 * Returns the address length, 0 when there is no usable socket. */
static socklen_t notify_address(struct sockaddr_un *addr)
{
    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || (e[0] != '/' && e[0] != '@'))
        return 0;
    size_t n = strlen(e);
    if (n < 2 || n >= sizeof(addr->sun_path))
        return 0;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, e, n);
    if (addr->sun_path[0] == '@')
        addr->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

void sdnotify(const char *fmt, ...)
{
    struct sockaddr_un addr;
    socklen_t len = notify_address(&addr);
    if (len == 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return;
    /* A full or absent socket loses the message: systemd then times the start
     * or reload out, which is the right outcome for a manager that is gone. */
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr, len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

void sdnotify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload
     * to its request; older ones ignore it. */
    sdnotify("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void sdnotify_mainpid(const char *status)
{
    sdnotify("MAINPID=%d\nREADY=1\nSTATUS=%s", (int)getpid(), status);
}
