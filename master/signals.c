/*
 * The master's signals. Like nginx, one table maps each signal to its name and
 * its action; unlike a raw handler, libevent delivers them as events on the
 * master's loop, so every action below runs in normal context, never inside a
 * signal handler.
 */
#include "master.h"
#include "../common/log.h"

#include <event2/event.h>
#include <signal.h>

static void on_hup(struct master *m)
{
    master_reload(m, NULL);
}

static void on_term(struct master *m)
{
    master_stop(m, 1);
}

static void on_int(struct master *m)
{
    /* A second Ctrl-C while stopping gracefully means "now". */
    master_stop(m, m->state == MS_RUNNING);
}

static void on_quit(struct master *m)
{
    master_stop(m, 0);
}

static void on_ttin(struct master *m)
{
    master_scale(m, +1);
}

static void on_ttou(struct master *m)
{
    master_scale(m, -1);
}

static void on_usr1(struct master *m)
{
    master_reopen_logs(m);
}

static void on_usr2(struct master *m)
{
    master_reexec(m);
}

static void on_chld(struct master *m)
{
    children_reap(m);
}

static const struct {
    int signo;
    const char *name;
    void (*action)(struct master *m);
} signal_table[] = {
    {SIGHUP, "HUP", on_hup},     {SIGTERM, "TERM", on_term}, {SIGINT, "INT", on_int},
    {SIGQUIT, "QUIT", on_quit},  {SIGTTIN, "TTIN", on_ttin}, {SIGTTOU, "TTOU", on_ttou},
    {SIGUSR1, "USR1", on_usr1},  {SIGUSR2, "USR2", on_usr2}, {SIGCHLD, "CHLD", on_chld},
};

static void signal_cb(evutil_socket_t signo, short what, void *arg)
{
    (void)what;
    struct master *m = arg;
    for (size_t i = 0; i < sizeof(signal_table) / sizeof(signal_table[0]); i++) {
        if (signal_table[i].signo == signo) {
            if (signo != SIGCHLD)
                log_info("received SIG%s", signal_table[i].name);
            signal_table[i].action(m);
            return;
        }
    }
}

int signals_init(struct master *m)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(signal_table) / sizeof(signal_table[0]); i++) {
        struct event *ev = evsignal_new(m->base, signal_table[i].signo, signal_cb, m);
        if (!ev || evsignal_add(ev, NULL) < 0) {
            log_error("cannot watch SIG%s", signal_table[i].name);
            if (ev)
                event_free(ev);
            return -1;
        }
        m->signal_events[m->n_signal_events++] = ev;
    }
    return 0;
}

void signals_free(struct master *m)
{
    for (int i = 0; i < m->n_signal_events; i++)
        event_free(m->signal_events[i]);
    m->n_signal_events = 0;
}
