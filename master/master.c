/*
 * The master's loop and its state changes: start, reload (HUP), graceful and fast
 * stop (TERM/INT, QUIT), scaling (TTIN/TTOU), log reopening (USR1) and binary
 * re-exec (USR2). Signals, the control socket and the supervision timer all end
 * up here, on one libevent loop.
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/log.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define TICK_MS 200

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct master *m = arg;
    children_supervise(m);
    history_tick(m);
    if (m->state != MS_RUNNING && children_alive(m) == 0)
        event_base_loopexit(m->base, NULL);
}

int master_apply_overrides(struct master *m, struct config *cfg)
{
    char err[256];
    if (m->cli_count && config_set(cfg, "workers", "count", m->cli_count, err, sizeof(err)) < 0)
        goto bad;
    if (m->cli_control &&
        config_set(cfg, "master", "control", m->cli_control, err, sizeof(err)) < 0)
        goto bad;
    if (m->cli_pidfile &&
        config_set(cfg, "master", "pidfile", m->cli_pidfile, err, sizeof(err)) < 0)
        goto bad;
    return 0;
bad:
    log_error("command line: %s", err);
    return -1;
}

static void set_log_owner(const struct config *cfg)
{
    struct passwd *pw = cfg->user[0] ? getpwnam(cfg->user) : NULL;
    if (pw)
        log_set_owner((int)pw->pw_uid, (int)pw->pw_gid);
    else
        log_set_owner(-1, -1);
}

/* Where the log goes: log_file, except that "-" (stderr) means syslog for a
 * daemon, which has no stderr. */
static const char *log_target(const struct master *m, const struct config *cfg)
{
    return m->daemonized && strcmp(cfg->log_file, "-") == 0 ? "syslog" : cfg->log_file;
}

/* Detach from the terminal once start-up has succeeded. */
static void notify_started(int notify_fd)
{
    if (notify_fd < 0)
        return;
    if (write(notify_fd, "k", 1) < 0) {
        /* the foreground parent is gone: nobody to tell */
    }
    close(notify_fd);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
}

int master_run(struct master *m, int inherited_fd, int notify_fd)
{
    m->base = event_base_new();
    if (!m->base) {
        log_error("event_base_new failed");
        return 2;
    }
    m->sb = scoreboard_create(SCOREBOARD_SLOTS);
    if (!m->sb)
        return 2;
    /* The engine child of a worker that was killed is handed to us, not to init,
     * and reaped with the workers (children_reap() ignores pids it does not know). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (signals_init(m) < 0)
        return 2;
    m->control = control_open(m, m->cfg->control, inherited_fd);
    if (!m->control)
        return 2;
    char err[512];
    if (pidfile_open(&m->pidfile, m->cfg->pidfile, err, sizeof(err)) < 0) {
        log_error("%s", err);
        control_free(m->control);
        return 2;
    }
    set_log_owner(m->cfg);
    if (m->daemonized && strcmp(m->cfg->log_file, "-") == 0 &&
        log_open("syslog", (enum log_level)m->cfg->log_level) == 0)
        log_info("running in the background with log_file = -: logging to syslog");
    notify_started(notify_fd);
    log_echo_errors(0);
    /* A master started by USR2 is ready only once its workers are: children.c. */
    if (!m->old_master_pid)
        sdnotify("READY=1\nMAINPID=%d\nSTATUS=serving, control %s", (int)getpid(),
                 control_address(m->control));
    m->probe = probe_new(m->base, m->cfg);
    m->history = history_new();
    history_tick(m); /* the first sample: nothing done yet */
    m->tick = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(m->tick, &tv);

    m->target = m->cfg->count;
    m->generation = 1;
    m->state = MS_RUNNING;
    m->started_real_ms = now_real_ms();
    log_info("c2a-worker %s master started: pid %d, control %s, %d workers, config %s",
             C2A_VERSION, (int)getpid(), control_address(m->control), m->target,
             m->config_path);
    children_supervise(m);

    event_base_dispatch(m->base);

    log_info("master exiting (%d)", m->exit_code);
    event_free(m->tick);
    probe_free(m->probe);
    control_free(m->control);
    signals_free(m);
    event_base_free(m->base);
    scoreboard_destroy(m->sb);
    free(m->retired_queues);
    history_free(m->history);
    return m->exit_code;
}

/* Log each configuration error, and keep the first ones for the caller. */
static void report_to_log(void *ctx, const char *msg)
{
    struct reload_errors *e = ctx;
    log_error("%s", msg);
    if (e && e->len < sizeof(e->text) - 1)
        e->len += (size_t)snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s%s",
                                   e->len ? "\n" : "", msg);
}

static int reload(struct master *m, struct reload_errors *errors);

/* systemd hears of the reload and of its end, whether it took or not. */
int master_reload(struct master *m, struct reload_errors *errors)
{
    if (m->state != MS_RUNNING)
        return reload(m, errors);
    sdnotify_reloading();
    int rc = reload(m, errors);
    sdnotify("READY=1\nSTATUS=%s (generation %u)",
             rc == 0 ? "configuration reloaded" : "reload refused, previous configuration running",
             m->generation);
    return rc;
}

static int reload(struct master *m, struct reload_errors *errors)
{
    if (errors) {
        errors->len = 0;
        errors->text[0] = '\0';
    }
    if (m->state != MS_RUNNING) {
        log_warn("reload ignored: stopping");
        if (errors)
            report_to_log(errors, "the master is stopping");
        return -1;
    }
    struct config *cfg = config_load(m->config_path, report_to_log, errors);
    if (!cfg || master_apply_overrides(m, cfg) < 0) {
        log_error("reload refused: %s has errors; the running configuration stays",
                  m->config_path);
        config_free(cfg);
        return -1;
    }
    if (strcmp(cfg->log_file, m->cfg->log_file) != 0 || cfg->log_level != m->cfg->log_level) {
        if (log_open(log_target(m, cfg), (enum log_level)cfg->log_level) < 0) {
            log_error("reload refused: cannot open log %s: %s", cfg->log_file, strerror(errno));
            if (errors)
                report_to_log(errors, "cannot open the new log file");
            config_free(cfg);
            return -1;
        }
    }
    if (strcmp(cfg->control, m->cfg->control) != 0) {
        struct control *c = control_open(m, cfg->control, -1);
        if (!c) {
            log_error("reload refused: cannot bind control socket %s", cfg->control);
            if (errors)
                report_to_log(errors, "cannot bind the new control socket");
            config_free(cfg);
            return -1;
        }
        control_free(m->control);
        m->control = c;
    }
    if (strcmp(cfg->pidfile, m->cfg->pidfile) != 0)
        log_warn("reload: pidfile changed to '%s'; it takes effect at the next start",
                 cfg->pidfile);
    set_log_owner(cfg);
    log_set_format((enum log_format)log_format_parse(cfg->log_format));

    /* Children keep pointers into their own copy of the old configuration, so
     * freeing the master's copy is safe. */
    config_free(m->cfg);
    m->cfg = cfg;
    probe_configure(m->probe, cfg);
    m->generation++;
    m->generation_ready = 0;
    m->target = cfg->count;
    m->boot_failures = 0;
    m->next_spawn_mono_ms = 0;
    m->reloads++;
    log_info("configuration reloaded (generation %u, %d workers)", m->generation, m->target);
    children_supervise(m);
    return 0;
}

void master_stop(struct master *m, int graceful)
{
    if (graceful && m->state != MS_RUNNING)
        return;
    if (!graceful && m->state == MS_QUITTING)
        return;
    m->state = graceful ? MS_STOPPING : MS_QUITTING;
    /* A master that handed over to a re-executed one is no longer the service:
     * its stop is not the service's. */
    if (!m->new_master_pid)
        sdnotify("STOPPING=1\nSTATUS=%s stop", graceful ? "graceful" : "fast");
    log_info("%s stop: %d workers to stop", graceful ? "graceful" : "fast", children_alive(m));
    /* A re-executed master holds the control socket now; leave it to it. */
    if (m->new_master_pid)
        control_stop_listening(m->control);
    children_signal_all(m, graceful ? SIGTERM : SIGQUIT);
    if (children_alive(m) == 0)
        event_base_loopexit(m->base, NULL);
}

int master_scale_to(struct master *m, int n)
{
    if (m->state != MS_RUNNING)
        return -1;
    if (n < 1 || n > CONFIG_MAX_WORKERS) {
        log_warn("scale to %d refused (1..%d)", n, CONFIG_MAX_WORKERS);
        return -1;
    }
    m->target = n;
    log_info("scaling to %d workers", n);
    children_supervise(m);
    return 0;
}

void master_scale(struct master *m, int delta)
{
    master_scale_to(m, m->target + delta);
}

void master_reopen_logs(struct master *m)
{
    log_reopen();
    log_info("log reopened");
    children_signal_all(m, SIGUSR1);
}

/* USR2: start the binary on disk again as a child, handing it the listening
 * socket through C2A_CONTROL_FD. The pidfile moves to "<pidfile>.oldbin" so the
 * new master can take the name; the new master sends us TERM once its workers
 * are up, and if it dies first we take the name back (children.c). */
void master_reexec(struct master *m)
{
    if (m->state != MS_RUNNING || m->new_master_pid) {
        log_warn("re-exec ignored: %s", m->new_master_pid ? "one is starting" : "stopping");
        return;
    }
    if (m->pidfile.path) {
        char *old = xasprintf("%s.oldbin", m->pidfile.path);
        int rc = pidfile_rename(&m->pidfile, old);
        free(old);
        if (rc < 0)
            return;
    }
    int fd = control_listen_fd(m->control);
    char fdbuf[16], pidbuf[16];
    snprintf(fdbuf, sizeof(fdbuf), "%d", fd);
    snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());

    char *argv[12];
    int argc = 0;
    argv[argc++] = m->self_exe;
    argv[argc++] = "-c";
    argv[argc++] = m->config_path;
    if (m->cli_count) {
        argv[argc++] = "-w";
        argv[argc++] = (char *)m->cli_count;
    }
    if (m->cli_control) {
        argv[argc++] = "-b";
        argv[argc++] = (char *)m->cli_control;
    }
    if (m->cli_pidfile) {
        argv[argc++] = "-p";
        argv[argc++] = (char *)m->cli_pidfile;
    }
    argv[argc] = NULL;

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0)
            fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
        setenv("C2A_CONTROL_FD", fdbuf, 1);
        setenv("C2A_CONTROL_ADDR", control_address(m->control), 1);
        setenv("C2A_OLD_MASTER", pidbuf, 1);
        for (int s = 1; s < NSIG; s++)
            signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(m->self_exe, argv);
        log_error("re-exec %s: %s", m->self_exe, strerror(errno));
        _exit(127);
    }
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        log_error("re-exec: fork: %s", strerror(e));
        return;
    }
    m->new_master_pid = pid;
    log_info("re-executing %s as pid %d", m->self_exe, (int)pid);
}

void master_close_in_child(struct master *m)
{
    /* No event_reinit here: it would register the master's signal events a
     * second time in libevent's process-wide signal state, and the worker's own
     * base would then find signals "already added to another base" (a raw
     * libevent warning on stderr at every spawn). Nothing below touches the
     * epoll set this process shares with the master: the tick is a timer and
     * deleting a signal event only restores its handler. */
    event_free(m->tick);
    m->tick = NULL;
    signals_free(m);
    /* The control server and the base are not freed here: evhttp shutdown()s
     * its client sockets when freed, and those sockets are the master's too, so
     * a reply in flight would be cut off. Their descriptors are closed instead;
     * their memory lasts until the worker exits. */
    m->pidfile.fd = -1;
    log_close_inherited_fds(-1);
}
