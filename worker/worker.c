/*
 * A worker process: its own libevent loop (never the master's), its scoreboard
 * slot, its signals. TERM stops it gracefully, QUIT and INT at once, USR1 reopens
 * the log. The heartbeat timer proves to the master that the loop turns; a loop
 * that blocks stops the heartbeat and gets the worker replaced.
 */
#include "worker.h"
#include "app.h"
#include "pipeline.h"
#include "../common/log.h"
#include "../common/pkglib.h"
#include "../common/privs.h"
#include "../common/util.h"

#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define HEARTBEAT_MAX_MS 1000

struct worker {
    struct event_base *base;
    const struct config *cfg;
    struct scoreboard *sb;
    struct sb_slot *slot;
    pid_t master_pid;
    struct app_handle app;
    void *pipeline_dl;
    const struct pipeline_api *pipeline_api;
    struct pipeline *pipeline;
    struct event *signals[5];
    struct event *heartbeat;
    int stopping;
};

static void set_state(struct worker *w, enum worker_state st)
{
    atomic_store(&w->slot->state, st);
}

static void on_pipeline_stopped(void *arg)
{
    struct worker *w = arg;
    event_base_loopexit(w->base, NULL);
}

/* Graceful: the pipeline finishes the job in hand and hands back the rest; the
 * master kills us if that takes longer than graceful_timeout. */
static void begin_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    log_info("stopping: %s", why);
    set_state(w, WS_STOPPING);
    if (w->pipeline)
        w->pipeline_api->stop(w->pipeline, on_pipeline_stopped, w);
    else
        event_base_loopexit(w->base, NULL);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    atomic_store(&w->slot->heartbeat_mono_ms, now_mono_ms());
    atomic_store(&w->slot->rss_kb, proc_rss_kb(getpid()));
    int engine = atomic_load(&w->slot->engine_pid);
    atomic_store(&w->slot->engine_rss_kb, engine ? proc_rss_kb(engine) : 0);
    if (getppid() != w->master_pid) {
        begin_stop(w, "the master is gone");
        return;
    }
    if (w->pipeline && !w->stopping) {
        w->pipeline_api->tick(w->pipeline);
        if (w->pipeline_api->recycle(w->pipeline))
            begin_stop(w, "max_jobs reached");
    } else if (!w->stopping) {
        int paused = atomic_load(&w->sb->paused);
        int st = atomic_load(&w->slot->state);
        if (paused && st == WS_IDLE)
            set_state(w, WS_PAUSED);
        else if (!paused && st == WS_PAUSED)
            set_state(w, WS_IDLE);
    }
}

static void signal_cb(evutil_socket_t signo, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    switch (signo) {
    case SIGTERM:
        begin_stop(w, "SIGTERM");
        break;
    case SIGQUIT:
    case SIGINT:
        /* Fast stop: unacked jobs go back to the queue when the connection drops. */
        log_info("exiting now: SIG%s", signo == SIGQUIT ? "QUIT" : "INT");
        set_state(w, WS_STOPPING);
        _exit(0);
    case SIGUSR1:
        log_reopen();
        break;
    case SIGHUP:
        break; /* the master reloads by replacing workers */
    }
}

static void boot_fail(const char *msg)
{
    log_error("boot failed: %s", msg);
    exit(WORKER_EXIT_BOOT);
}

void worker_main(const struct worker_args *a)
{
    struct worker w = {0};
    w.cfg = a->cfg;
    w.sb = a->sb;
    w.slot = scoreboard_slot(a->sb, a->slot);
    w.master_pid = a->master_pid;
    log_set_role("worker");

    /* If the master dies, so do we; and it may have died already. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != w.master_pid)
        exit(0);
    atomic_store(&w.slot->pid, getpid());
    atomic_store(&w.slot->heartbeat_mono_ms, now_mono_ms());

    static const int sigs[] = {SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGHUP};
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);

    w.base = event_base_new();
    if (!w.base)
        boot_fail("event_base_new failed");
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++) {
        w.signals[i] = evsignal_new(w.base, sigs[i], signal_cb, &w);
        evsignal_add(w.signals[i], NULL);
    }
    int64_t hb_ms = (int64_t)w.cfg->timeout * 1000 / 4;
    if (hb_ms > HEARTBEAT_MAX_MS)
        hb_ms = HEARTBEAT_MAX_MS;
    if (hb_ms < 50)
        hb_ms = 50;
    w.heartbeat = event_new(w.base, -1, EV_PERSIST, heartbeat_cb, &w);
    struct timeval tv = {hb_ms / 1000, (hb_ms % 1000) * 1000};
    event_add(w.heartbeat, &tv);
    sigprocmask(SIG_SETMASK, &a->sigmask, NULL);

    char err[512];
    if (privs_drop(w.cfg, err, sizeof(err)) < 0)
        boot_fail(err);
    if (app_load(w.cfg->app, &w.app, err, sizeof(err)) < 0)
        boot_fail(err);

    /* The built-in apps run the speech pipeline (or answer at once, noop); an app
     * from a shared object consumes jobs when it has a handle(). */
    int builtin = strncmp(w.cfg->app, "builtin:", 8) == 0;
    if (builtin || w.app.app->handle) {
        /* Beside the binary or in PKGLIBDIR: the master never loads its libraries. */
        w.pipeline_dl = pkglib_open("c2a-pipeline.so", err, sizeof(err));
        if (!w.pipeline_dl)
            boot_fail(err);
        w.pipeline_api = dlsym(w.pipeline_dl, PIPELINE_API_SYMBOL);
        if (!w.pipeline_api)
            boot_fail("c2a-pipeline.so has no " PIPELINE_API_SYMBOL);
        struct pipeline_env env = {w.base, w.cfg, w.sb, w.slot,
                                   strcmp(w.cfg->app, "builtin:noop") == 0,
                                   builtin ? NULL : w.app.app, w.app.state};
        w.pipeline = w.pipeline_api->start(&env, err, sizeof(err));
        if (!w.pipeline)
            boot_fail(err);
    }

    heartbeat_cb(-1, 0, &w);
    if (!w.stopping)
        set_state(&w, atomic_load(&w.sb->paused) ? WS_PAUSED : WS_IDLE);
    log_debug("worker ready (app %s)", w.app.app->name);

    event_base_dispatch(w.base);

    if (w.pipeline)
        w.pipeline_api->free(w.pipeline);
    /* c2a-pipeline.so stays mapped until exit: unloading it (and espeak-ng with
     * it) just before exiting gains nothing and hides leak reports' symbols. */
    app_unload(&w.app);
    event_free(w.heartbeat);
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
        event_free(w.signals[i]);
    event_base_free(w.base);
    log_debug("worker exiting");
    exit(0);
}
