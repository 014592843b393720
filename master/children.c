/*
 * The worker pool: fork, reap, and the supervision tick. Like php-fpm's
 * fpm_children.c this file alone decides when a worker is started, asked to stop
 * or killed, and why.
 *
 * Every decision is taken in children_supervise(), which runs on a timer and right
 * after every reap, so a dead worker is replaced at once unless the pool is
 * backing off after boot failures.
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/backoff.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../worker/worker.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOOT_BACKOFF_BASE_MS 500
#define BOOT_BACKOFF_MAX_MS 30000
#define FAST_STOP_GRACE_MS 5000

const char *exit_reason_name(enum exit_reason r)
{
    static const char *const names[] = {"crashed",  "killed",      "heartbeat", "job_timeout",
                                        "recycled", "boot_failed", "memory"};
    return (unsigned)r < ARRAY_LEN(names) ? names[r] : "unknown";
}

int children_alive(const struct master *m)
{
    return m->nchildren;
}

static struct child *find_child(struct master *m, pid_t pid)
{
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].pid == pid)
            return &m->children[i];
    return NULL;
}

static void spawn(struct master *m)
{
    if (m->nchildren == (int)ARRAY_LEN(m->children)) {
        log_error("worker table full: not spawning");
        return;
    }
    int slot = scoreboard_acquire(m->sb);
    if (slot < 0) {
        log_error("scoreboard full: not spawning");
        return;
    }
    /* Block every signal across fork so that none reaches the child while it still
     * has the master's handlers (they would wake the master's loop). */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        scoreboard_release(m->sb, slot);
        log_error("fork: %s", strerror(e));
        m->next_spawn_mono_ms = now_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        struct worker_args args = {
            .cfg = m->cfg,
            .sb = m->sb,
            .slot = slot,
            .master_pid = getppid(),
            .sigmask = old,
        };
        master_close_in_child(m);
        worker_main(&args); /* never returns */
        _exit(1);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    atomic_store(&scoreboard_slot(m->sb, slot)->pid, pid);
    struct child *c = &m->children[m->nchildren++];
    memset(c, 0, sizeof(*c));
    c->pid = pid;
    c->slot = slot;
    c->generation = m->generation;
    c->spawned_mono_ms = now_mono_ms();
    c->kill_reason = -1;
    log_info("spawned worker %d (slot %d, generation %u)", (int)pid, slot, m->generation);
}

/* Ask a worker to stop: TERM finishes its job, QUIT leaves now. SIGKILL follows
 * when it is still there after the deadline. */
static void ask_to_stop(struct child *c, int sig, int64_t grace_ms)
{
    if (c->asked_to_stop && sig == SIGTERM)
        return;
    c->asked_to_stop = 1;
    int64_t deadline = now_mono_ms() + grace_ms;
    if (!c->kill_at_mono_ms || deadline < c->kill_at_mono_ms)
        c->kill_at_mono_ms = deadline;
    kill(c->pid, sig);
}

static void kill_child(struct child *c, enum exit_reason why)
{
    if (c->kill_reason >= 0)
        return; /* already sent */
    c->kill_reason = (int)why;
    log_warn("killing worker %d: %s", (int)c->pid, exit_reason_name(why));
    kill(c->pid, SIGKILL);
}

void children_signal_all(struct master *m, int sig)
{
    int64_t grace = sig == SIGTERM ? (int64_t)m->cfg->graceful_timeout * 1000 : FAST_STOP_GRACE_MS;
    for (int i = 0; i < m->nchildren; i++) {
        struct child *c = &m->children[i];
        if (sig == SIGTERM || sig == SIGQUIT)
            ask_to_stop(c, sig, grace);
        else
            kill(c->pid, sig);
    }
}

/* A worker is up once its slot left WS_BOOTING. Checked on every tick and at
 * reap, so a worker that came up and died between two ticks is not taken for a
 * boot failure. */
static void note_ready(struct master *m, struct child *c)
{
    int st = atomic_load(&scoreboard_slot(m->sb, c->slot)->state);
    if (c->ready || st == WS_BOOTING || st == WS_FREE || c->kill_reason >= 0)
        return;
    c->ready = 1;
    if (m->boot_failures)
        log_info("worker %d is up: boot backoff cleared", (int)c->pid);
    m->boot_failures = 0;
    m->next_spawn_mono_ms = 0;
}

static void account_exit(struct master *m, struct child *c, int status)
{
    note_ready(m, c);
    struct sb_slot *s = scoreboard_slot(m->sb, c->slot);
    m->retired_ok += atomic_load(&s->jobs_ok);
    m->retired_failed += atomic_load(&s->jobs_failed);
    m->retired_retried += atomic_load(&s->jobs_retried);
    m->retired_dead += atomic_load(&s->jobs_dead);
    m->retired_engine_crashes += atomic_load(&s->engine_crashes);
    m->retired_engine_timeouts += atomic_load(&s->engine_timeouts);
    m->retired_cache_hits += atomic_load(&s->cache_hits);
    m->retired_cache_misses += atomic_load(&s->cache_misses);
    for (int k = 0; k <= HIST_JOB_BUCKETS; k++)
        m->retired_job_seconds.le[k] += atomic_load(&s->job_seconds.le[k]);
    m->retired_job_seconds.sum_us += atomic_load(&s->job_seconds.sum_us);
    for (int k = 0; k <= HIST_AUDIO_BUCKETS; k++)
        m->retired_audio_seconds.le[k] += atomic_load(&s->audio_seconds.le[k]);
    m->retired_audio_seconds.sum_ms += atomic_load(&s->audio_seconds.sum_ms);
    slot_stage_totals(s, m->retired_stages);
    history_gather_failures(m, c);
    if (!m->retired_queues)
        m->retired_queues = xcalloc(RETIRED_QUEUES, sizeof(*m->retired_queues));
    for (int i = 0; i < atomic_load(&s->nqueues); i++) {
        struct queue_totals *q = queue_totals_find(m->retired_queues, &m->n_retired_queues,
                                                   RETIRED_QUEUES, s->queues[i].name);
        if (q)
            slot_queue_totals(s, i, q);
    }
    int self_stopping = atomic_load(&s->state) == WS_STOPPING;

    char how[64];
    if (WIFEXITED(status))
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof(how), "status 0x%x", status);

    int boot_failed = !c->ready && !c->asked_to_stop && c->kill_reason < 0;
    if (boot_failed) {
        /* Treat a worker that never came up as a boot failure whatever killed it:
         * respawning it at once could only fail again. */
        m->restarts_by_reason[XR_BOOT_FAILED]++;
        m->boot_failures++;
        uint32_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
            rnd = (uint32_t)now_mono_ms();
        uint32_t delay = backoff_delay_ms(m->boot_failures, BOOT_BACKOFF_BASE_MS,
                                          BOOT_BACKOFF_MAX_MS, 20, rnd);
        m->next_spawn_mono_ms = now_mono_ms() + delay;
        log_error("worker %d failed to boot (%s); %u consecutive boot failures, next spawn in "
                  "%u ms",
                  (int)c->pid, how, m->boot_failures, delay);
    } else if (c->kill_reason >= 0) {
        m->restarts_by_reason[c->kill_reason]++;
        log_warn("worker %d killed (%s): %s", (int)c->pid,
                 exit_reason_name((enum exit_reason)c->kill_reason), how);
    } else if (c->asked_to_stop) {
        log_info("worker %d stopped (%s)", (int)c->pid, how);
    } else if (self_stopping && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        int memory = atomic_load(&s->recycled_for_memory);
        m->restarts_by_reason[memory ? XR_MEMORY : XR_RECYCLED]++;
        log_info("worker %d recycled itself%s (%s)", (int)c->pid, memory ? " (max_rss)" : "", how);
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        m->restarts_by_reason[XR_KILLED]++;
        log_warn("worker %d was killed from outside (%s)", (int)c->pid, how);
    } else {
        m->restarts_by_reason[XR_CRASHED]++;
        log_warn("worker %d died unexpectedly (%s)", (int)c->pid, how);
    }
}

static void on_new_master_exit(struct master *m, int status)
{
    m->new_master_pid = 0;
    if (m->state != MS_RUNNING)
        return; /* it took over and we are stopping: expected */
    log_error("re-executed master exited before taking over (status 0x%x); keeping this one",
              status);
    if (m->pidfile.path) {
        size_t n = strlen(m->pidfile.path);
        if (n > 7 && strcmp(m->pidfile.path + n - 7, ".oldbin") == 0) {
            char *orig = xasprintf("%.*s", (int)(n - 7), m->pidfile.path);
            pidfile_rename(&m->pidfile, orig);
            free(orig);
        }
    }
}

void children_reap(struct master *m)
{
    int status;
    pid_t pid;
    struct rusage ru;
    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        if (pid == m->new_master_pid) {
            on_new_master_exit(m, status);
            continue;
        }
        /* Not a worker, nothing to count or replace: the queue probe's TLS
         * relays, and engine children of dead workers (we are their subreaper). */
        if (probe_reaped(m->probe, pid, status))
            continue;
        struct child *c = find_child(m, pid);
        if (!c)
            continue;
        /* Its own and its reaped engine children's */
        m->retired_cpu_s += (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        account_exit(m, c, status);
        scoreboard_release(m->sb, c->slot);
        *c = m->children[--m->nchildren];
    }
    children_supervise(m);
}

static int is_current(const struct master *m, const struct child *c)
{
    return c->generation == m->generation && !c->asked_to_stop;
}

/* A worker that stops on its own (recycling) no longer counts: its replacement
 * is started before it leaves. */
static int counts_as_serving(const struct master *m, const struct child *c)
{
    return is_current(m, c) &&
           atomic_load(&scoreboard_slot(m->sb, c->slot)->state) != WS_STOPPING;
}

/* php-fpm's slowlog: a job past slow_job is named once, with the processes an
 * operator would look at (perf top -p, gdb -p) while it still runs. */
static void warn_slow(struct master *m, struct child *c, struct sb_slot *s, int64_t ran_ms)
{
    char job[SCOREBOARD_JOB_LEN];
    slot_get_job(s, job, sizeof(job));
    c->slow_warned = atomic_load(&s->job_started_mono_ms);
    m->slow_jobs++;
    log_warn("slow job: %s has run for %.1f s (slow_job = %d s) in worker %d, engine pid %d",
             job[0] ? job : "(unnamed)", (double)ran_ms / 1000.0, m->cfg->slow_job, (int)c->pid,
             atomic_load(&s->engine_pid));
}

static void check_timeouts(struct master *m, int64_t now)
{
    int64_t hb_limit = (int64_t)m->cfg->timeout * 1000;
    int64_t slow_limit = (int64_t)m->cfg->slow_job * 1000;
    /* A worker kills its own engine child at job_timeout and goes on; this is the
     * backstop for a worker that failed to (the heartbeat catches a blocked loop). */
    int64_t job_limit = ((int64_t)m->cfg->job_timeout + m->cfg->timeout) * 1000;
    for (int i = 0; i < m->nchildren; i++) {
        struct child *c = &m->children[i];
        struct sb_slot *s = scoreboard_slot(m->sb, c->slot);
        if (c->kill_at_mono_ms && now >= c->kill_at_mono_ms) {
            kill_child(c, XR_KILLED);
            continue;
        }
        if (now - atomic_load(&s->heartbeat_mono_ms) > hb_limit) {
            kill_child(c, XR_HEARTBEAT);
            continue;
        }
        int64_t job_start = atomic_load(&s->job_started_mono_ms);
        if (job_start && now - job_start > job_limit) {
            kill_child(c, XR_JOB_TIMEOUT);
            continue;
        }
        if (job_start && slow_limit && now - job_start > slow_limit &&
            c->slow_warned != job_start)
            warn_slow(m, c, s, now - job_start);
    }
}

void children_supervise(struct master *m)
{
    int64_t now = now_mono_ms();
    check_timeouts(m, now);

    int serving = 0, ready = 0;
    for (int i = 0; i < m->nchildren; i++) {
        struct child *c = &m->children[i];
        note_ready(m, c);
        if (counts_as_serving(m, c)) {
            serving++;
            ready += c->ready;
        }
    }

    if (m->state != MS_RUNNING)
        return;

    /* Scale up; after a boot failure, one probe at a time and only after the delay. */
    while (serving < m->target && now >= m->next_spawn_mono_ms) {
        spawn(m);
        serving++;
        if (m->boot_failures)
            break;
    }
    /* Scale down: the oldest go first, as in gunicorn. */
    while (serving > m->target) {
        struct child *oldest = NULL;
        for (int i = 0; i < m->nchildren; i++) {
            struct child *c = &m->children[i];
            if (counts_as_serving(m, c) &&
                (!oldest || c->spawned_mono_ms < oldest->spawned_mono_ms))
                oldest = c;
        }
        if (!oldest)
            break;
        log_info("stopping worker %d (scaling down to %d)", (int)oldest->pid, m->target);
        ask_to_stop(oldest, SIGTERM, (int64_t)m->cfg->graceful_timeout * 1000);
        serving--;
    }

    /* After a reload, the previous generation leaves once the new one is up, so a
     * configuration whose workers cannot boot never takes the service down. */
    if (ready >= m->target) {
        for (int i = 0; i < m->nchildren; i++) {
            struct child *c = &m->children[i];
            if (c->generation != m->generation && !c->asked_to_stop) {
                log_info("stopping worker %d of generation %u", (int)c->pid, c->generation);
                ask_to_stop(c, SIGTERM, (int64_t)m->cfg->graceful_timeout * 1000);
            }
        }
        if (!m->generation_ready) {
            m->generation_ready = 1;
            if (m->old_master_pid)
                sdnotify_mainpid("serving after a binary upgrade");
            if (m->old_master_pid && getppid() == m->old_master_pid) {
                log_info("workers are up: asking the old master %d to stop",
                         (int)m->old_master_pid);
                kill(m->old_master_pid, SIGTERM);
            }
            m->old_master_pid = 0;
        }
    }
}
