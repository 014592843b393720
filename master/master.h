/*
 * The master process: what its modules share. The master never does job work; it
 * owns the configuration, the scoreboard, the control socket, the pidfile and the
 * table of children, and acts on signals and timers from one libevent loop.
 *
 *   main.c          command line, -t, daemonizing, start-up order
 *   master.c        the loop, reload, stop, re-exec, cleanup in a forked child
 *   children.c      fork, reap, supervise (heartbeat, job timeout, backoff, scaling)
 *   signals.c       signal table: each signal's name and action
 *   control_http.c  the control socket (evhttp)
 *   status.c        the /status document, built from the scoreboard
 *   history.c       the last 15 minutes for the status page, and recent failures
 *   dead_api.c      the dead letters over the control socket (through c2actl)
 *   broker_probe.c  queue depths, asked of the broker over AMQP
 *   tls_spawn.c     the probe's amqps:// relay process (tls_relay.c is c2a-tls.so)
 *   pidfile.c       pidfile with a lock
 *   startcheck.c    -t: what start and the workers need, checked before start
 *   sdnotify.c      readiness, reload and stop notices to systemd
 */
#ifndef C2A_MASTER_H
#define C2A_MASTER_H

#include "../common/config.h"
#include "../common/scoreboard.h"

#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct event;
struct control;
struct broker_probe;

enum master_state { MS_RUNNING, MS_STOPPING, MS_QUITTING };

/* Why a worker left; indexes master.restarts_by_reason. */
enum exit_reason { XR_CRASHED, XR_KILLED, XR_HEARTBEAT, XR_JOB_TIMEOUT, XR_RECYCLED,
                   XR_BOOT_FAILED, XR_MEMORY, XR_COUNT };

#define RETIRED_QUEUES 64

struct child {
    pid_t pid;
    int slot;
    unsigned generation;
    int64_t spawned_mono_ms;
    int ready;              /* reached idle at least once */
    int asked_to_stop;      /* we sent TERM/QUIT: its exit is expected */
    int64_t kill_at_mono_ms; /* SIGKILL if still alive then; 0 = no deadline */
    int kill_reason;         /* enum exit_reason when the master killed it, else -1 */
    int64_t slow_warned;     /* job_started_mono_ms of the job last warned about */
    uint64_t failures_seen;  /* its slot's failures gathered (history.c) */
};

struct pidfile {
    char *path;
    int fd;
};

struct master {
    struct event_base *base;
    struct config *cfg;
    char *config_path;        /* absolute */
    /* Command-line overrides, re-applied on every reload. */
    const char *cli_count;
    const char *cli_control;
    const char *cli_pidfile;
    char *self_exe;           /* for USR2 re-exec */
    int daemonized;

    struct scoreboard *sb;
    struct child children[SCOREBOARD_SLOTS];
    int nchildren;
    int target;               /* workers wanted in the current generation */
    unsigned generation;
    enum master_state state;
    int64_t started_real_ms;
    uint64_t reloads;

    uint32_t boot_failures;   /* consecutive; reset when a worker becomes ready */
    int64_t next_spawn_mono_ms;
    int generation_ready;     /* every worker of the current generation came up once */

    /* Counters of workers that have exited, so totals survive restarts. */
    uint64_t retired_ok, retired_failed, retired_retried, retired_dead;
    uint64_t retired_engine_crashes, retired_engine_timeouts;
    uint64_t restarts_by_reason[XR_COUNT];
    uint64_t slow_jobs; /* jobs warned about at slow_job */
    uint64_t retired_cache_hits, retired_cache_misses;
    struct {
        uint64_t le[HIST_JOB_BUCKETS + 1];
        uint64_t sum_us;
    } retired_job_seconds;
    struct {
        uint64_t le[HIST_AUDIO_BUCKETS + 1];
        uint64_t sum_ms;
    } retired_audio_seconds;
    /* ... by queue (at most RETIRED_QUEUES names, kept across reloads) and by
     * stage, and the CPU time of exited workers with their engine children. */
    struct queue_totals *retired_queues;
    int n_retired_queues;
    struct hist_sum retired_stages[ST_COUNT];
    double retired_cpu_s;

    struct control *control;
    struct broker_probe *probe; /* queue depths for the control socket */
    struct history *history;    /* charts and recent failures */
    struct pidfile pidfile;

    pid_t new_master_pid;     /* USR2: the re-executed binary, while it starts */
    pid_t old_master_pid;     /* we are that binary: stop our parent once ready */

    struct event *signal_events[16];
    int n_signal_events;
    struct event *tick;
    int exit_code;
};

/* master.c */
/* Bind, write the pidfile, tell a waiting foreground parent (notify_fd, or -1)
 * that start-up worked, then supervise until stopped. Returns the exit status. */
int master_run(struct master *m, int inherited_control_fd, int notify_fd);
/* The first configuration errors of a refused reload, for the control API. */
struct reload_errors {
    char text[2048];
    size_t len;
};
/* HUP: 0 when the new configuration took over; -1 (errors logged, and copied
 * into errors when given) when the running one stays. */
int master_reload(struct master *m, struct reload_errors *errors);
void master_stop(struct master *m, int graceful);
void master_reexec(struct master *m);
void master_reopen_logs(struct master *m);
void master_scale(struct master *m, int delta);
/* Scale the current generation to n workers (1..256); -1 if refused. */
int master_scale_to(struct master *m, int n);
/* In a freshly forked child: release everything the master's loop owns without
 * touching the master's own kernel objects (epoll set, listening socket). */
void master_close_in_child(struct master *m);
/* Apply -w/-b/-p overrides; -1 with a message logged if one is invalid. */
int master_apply_overrides(struct master *m, struct config *cfg);

/* children.c */
void children_supervise(struct master *m);
void children_reap(struct master *m);
void children_signal_all(struct master *m, int sig);
int children_alive(const struct master *m);
const char *exit_reason_name(enum exit_reason r);

/* signals.c */
int signals_init(struct master *m);
void signals_free(struct master *m);

/* control_http.c */
struct control *control_open(struct master *m, const char *addr, int inherited_fd);
void control_free(struct control *c);
const char *control_address(const struct control *c);
int control_listen_fd(const struct control *c);
/* Stop accepting (the re-executed master has the socket now). */
void control_stop_listening(struct control *c);
/* Answer with a JSON document (taken), or {"error": {code, message}}. */
struct evhttp_request;
struct json_t;
void control_reply_json(struct evhttp_request *req, int code, const char *reason,
                        struct json_t *doc);
void control_reply_error(struct evhttp_request *req, int code, const char *reason,
                         const char *errcode, const char *message);

/* dead_api.c: GET/POST /dead/..., run through c2actl */
struct dead_api;
struct evhttp_request;
struct dead_api *dead_api_new(struct master *m);
void dead_api_free(struct dead_api *a);
/* rest: the path after "/dead/"; POSTs are authorized by the caller. */
void dead_api_handle(struct dead_api *a, struct evhttp_request *req, const char *rest);

/* metrics.c */
struct evbuffer;
void metrics_render(struct master *m, struct evbuffer *b);

/* status_html.c */
void status_html(struct master *m, struct evbuffer *b);

/* history.c */
struct history *history_new(void);
void history_free(struct history *h);
/* Every tick: a sample when one is due, and the workers' new failures. */
void history_tick(struct master *m);
/* The failures of one worker's slot not gathered yet (also before it is reaped). */
void history_gather_failures(struct master *m, struct child *c);
/* The status page's charts, inline SVG. */
void history_charts(struct master *m, struct evbuffer *b);
/* The last 50 failed attempts, newest first. */
struct json_t *history_failures_json(struct master *m);

/* status.c */
struct json_t;
struct json_t *status_build(struct master *m, int full);

/* startcheck.c: what -t checks beyond the file (start's and the workers'
 * needs); reports each problem, returns how many. */
int startcheck_run(const struct config *cfg, config_report_fn report, void *ctx);

/* sdnotify.c: systemd's notify protocol; no-ops without $NOTIFY_SOCKET. */
void sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sdnotify_reloading(void);
/* A master started by USR2: announce this pid as the service's main one. */
void sdnotify_mainpid(const char *status);

/* pidfile.c */
int pidfile_open(struct pidfile *pf, const char *path, char *err, size_t errlen);
int pidfile_rename(struct pidfile *pf, const char *newpath);
void pidfile_remove(struct pidfile *pf);
void pidfile_close(struct pidfile *pf);

#endif
