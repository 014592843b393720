/*
 * The master's side of the TLS relay (tls_relay.h): fork the relay process of
 * one amqps:// connection of the queue probe.
 *
 * Nothing here waits. The child does everything that may: it closes what it
 * inherited, loads c2a-tls.so (so OpenSSL is mapped in the child, never in the
 * master), and runs the relay, whose outcome comes back as the first line on
 * the socketpair. The master reaps the child with its workers; see
 * probe_reaped().
 */
#include "tls_spawn.h"
#include "../common/log.h"
#include "../common/pkglib.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void child_main(const struct tls_relay_args *a, pid_t master) __attribute__((noreturn));

static void child_main(const struct tls_relay_args *a, pid_t master)
{
    /* Never outlive the master, which may have died already. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != master)
        _exit(0);
    prctl(PR_SET_NAME, "c2a-tls-relay"); /* what ps and top show */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    log_set_role("tls-relay");
    /* The control socket, other connections, the event loop's descriptors. */
    log_close_inherited_fds(a->fd);

    char err[400] = "";
    void *dl = pkglib_open("c2a-tls.so", err, sizeof(err));
    const struct tls_relay_api *api = dl ? dlsym(dl, TLS_RELAY_API_SYMBOL) : NULL;
    if (!api) {
        dprintf(a->fd, "error cannot load TLS support: %s\n",
                dl ? "c2a-tls.so has no " TLS_RELAY_API_SYMBOL : err);
        _exit(1);
    }
    api->run(a);
    _exit(1);
}

int tls_spawn(const struct tls_relay_args *a, pid_t *pid, char *err, size_t errlen)
{
    int sv[2];
    /* Close-on-exec: a master re-executed on USR2 must not inherit the master's end. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t master = getpid();
    /* As for a worker: no signal may reach the child while it still has the
     * master's handlers (they would wake the master's loop). */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child == 0) {
        struct tls_relay_args mine = *a;
        mine.fd = sv[1];
        close(sv[0]);
        child_main(&mine, master);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (child < 0) {
        close(sv[0]);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        return -1;
    }
    *pid = child;
    return sv[0];
}
