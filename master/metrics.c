/*
 * GET /metrics: the Prometheus text exposition format (version 0.0.4), built
 * from the scoreboard and the master's counters of workers that have exited.
 * Names follow Prometheus conventions: c2a_ prefix, _total for counters,
 * base units (seconds, bytes).
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/util.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void header(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label(struct evbuffer *b, const char *v);

/* One histogram's samples; labels is "" or `name="value",...` (already escaped)
 * put before le. */
static void hist_samples(struct evbuffer *b, const char *name, const char *labels,
                         const double *bounds, int n, const uint64_t *counts, double sum)
{
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < n; i++)
        evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                            (unsigned long long)counts[i]);
    evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                        (unsigned long long)counts[n]);
    if (labels[0])
        evbuffer_add_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, sum, name,
                            labels, (unsigned long long)counts[n]);
    else
        evbuffer_add_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, sum, name,
                            (unsigned long long)counts[n]);
}

static void histogram(struct evbuffer *b, const char *name, const char *help, const double *bounds,
                      int n, const uint64_t *counts, double sum)
{
    header(b, name, "histogram", help);
    hist_samples(b, name, "", bounds, n, counts, sum);
}

/* `queue="NAME"` with NAME escaped, for a labels argument. */
static char *queue_label(const char *q)
{
    struct evbuffer *t = evbuffer_new();
    evbuffer_add_printf(t, "queue=\"");
    label(t, q);
    evbuffer_add(t, "\"", 2); /* with the NUL */
    char *out = xstrdup((const char *)evbuffer_pullup(t, -1));
    evbuffer_free(t);
    return out;
}

/* A label value, escaped as the exposition format asks. */
static void label(struct evbuffer *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(b, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, v, 1);
    }
}

/* Queues whose figures are unknown (broker down) have no sample at all: an
 * absent series, not a made-up zero. */
static void queue_gauges(struct evbuffer *b, const struct broker_probe *p)
{
    static const struct {
        const char *name, *help;
    } g[] = {{"c2a_queue_messages", "Messages ready in a queue, as the broker reports."},
             {"c2a_queue_consumers", "Consumers of a queue, as the broker reports."}};
    for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
        header(b, g[k].name, "gauge", g[k].help);
        for (int i = 0; i < probe_queue_count(p); i++) {
            struct probe_queue q;
            probe_queue_get(p, i, &q);
            if (q.messages < 0)
                continue;
            evbuffer_add_printf(b, "%s{queue=\"", g[k].name);
            label(b, q.name);
            evbuffer_add_printf(b, "\",kind=\"%s\"} %lld\n",
                                q.dead ? "dead-letter" : q.retry ? "retry" : "work",
                                (long long)(k == 0 ? q.messages : q.consumers));
        }
    }
}

/* Jobs by queue: the exited workers' totals, plus every live worker's. */
static int queue_figures(struct master *m, struct queue_totals *out)
{
    int n = m->n_retired_queues;
    if (n)
        memcpy(out, m->retired_queues, (size_t)n * sizeof(*out));
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *s = scoreboard_slot(m->sb, m->children[i].slot);
        int nq = atomic_load_explicit(&s->nqueues, memory_order_acquire);
        for (int k = 0; k < nq; k++) {
            struct queue_totals *q = queue_totals_find(out, &n, RETIRED_QUEUES + SB_QUEUES,
                                                       s->queues[k].name);
            if (q)
                slot_queue_totals(s, k, q);
        }
    }
    return n;
}

static void job_metrics(struct master *m, struct evbuffer *b)
{
    struct queue_totals *qs = xcalloc(RETIRED_QUEUES + SB_QUEUES, sizeof(*qs));
    int nq = queue_figures(m, qs);
    char **labels = xcalloc((size_t)nq + 1, sizeof(*labels));
    for (int i = 0; i < nq; i++)
        labels[i] = queue_label(qs[i].name);

    header(b, "c2a_jobs_total", "counter",
           "Jobs finished, by queue and outcome (failed: dead-lettered).");
    for (int i = 0; i < nq; i++)
        for (int o = JO_OK; o <= JO_FAILED; o++)
            evbuffer_add_printf(b, "c2a_jobs_total{%s,outcome=\"%s\"} %llu\n", labels[i],
                                job_outcome_names[o], (unsigned long long)qs[i].outcomes[o]);
    header(b, "c2a_jobs_retried_total", "counter",
           "Attempts sent to a delay queue for a retry, by queue.");
    for (int i = 0; i < nq; i++)
        evbuffer_add_printf(b, "c2a_jobs_retried_total{%s} %llu\n", labels[i],
                            (unsigned long long)qs[i].outcomes[JO_RETRIED]);
    header(b, "c2a_jobs_dead_total", "counter", "Jobs sent to a dead-letter queue, by queue.");
    for (int i = 0; i < nq; i++)
        evbuffer_add_printf(b, "c2a_jobs_dead_total{%s} %llu\n", labels[i],
                            (unsigned long long)qs[i].outcomes[JO_FAILED]);
    header(b, "c2a_job_errors_total", "counter",
           "Attempts that ended in an error (retried or dead-lettered), by queue and code.");
    for (int i = 0; i < nq; i++)
        for (int c = 0; c < SB_CODES; c++)
            if (qs[i].errors[c])
                evbuffer_add_printf(b, "c2a_job_errors_total{%s,code=\"%s\"} %llu\n",
                                    labels[i], sb_error_codes[c],
                                    (unsigned long long)qs[i].errors[c]);
    header(b, "c2a_job_duration_seconds", "histogram",
           "Time from delivery to outcome, per attempt, by queue and outcome.");
    for (int i = 0; i < nq; i++) {
        for (int o = 0; o < JO_COUNT; o++) {
            char *l = xasprintf("%s,outcome=\"%s\"", labels[i], job_outcome_names[o]);
            hist_samples(b, "c2a_job_duration_seconds", l, hist_job_bounds, HIST_JOB_BUCKETS,
                         qs[i].seconds[o].le, (double)qs[i].seconds[o].sum_us / 1e6);
            free(l);
        }
    }
    for (int i = 0; i < nq; i++)
        free(labels[i]);
    free(labels);
    free(qs);

    struct hist_sum stages[ST_COUNT];
    memcpy(stages, m->retired_stages, sizeof(stages));
    for (int i = 0; i < m->nchildren; i++)
        slot_stage_totals(scoreboard_slot(m->sb, m->children[i].slot), stages);
    header(b, "c2a_job_stage_seconds", "histogram",
           "Time an attempt spent in each stage it went through: queued in the broker (first "
           "attempts of messages with a timestamp), waiting for the engine, fetch, synthesis, "
           "tts (HTTP engine requests), encode, commit (flush and rename), upload, callback.");
    for (int st = 0; st < ST_COUNT; st++) {
        char l[64];
        snprintf(l, sizeof(l), "stage=\"%s\"", job_stage_names[st]);
        hist_samples(b, "c2a_job_stage_seconds", l, hist_job_bounds, HIST_JOB_BUCKETS,
                     stages[st].le, (double)stages[st].sum_us / 1e6);
    }
}

/* The standard process_* metrics, of the master itself. */
static void process_metrics(struct master *m, struct evbuffer *b)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    header(b, "process_cpu_seconds_total", "counter", "CPU time of the master, user and system.");
    evbuffer_add_printf(b, "process_cpu_seconds_total %.6f\n",
                        (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    header(b, "process_resident_memory_bytes", "gauge", "Resident memory of the master.");
    evbuffer_add_printf(b, "process_resident_memory_bytes %llu\n", rss * page);
    header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory of the master.");
    evbuffer_add_printf(b, "process_virtual_memory_bytes %llu\n", vsz * page);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own */
    }
    header(b, "process_open_fds", "gauge", "Open file descriptors of the master.");
    evbuffer_add_printf(b, "process_open_fds %d\n", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        header(b, "process_max_fds", "gauge", "The master's limit of open file descriptors.");
        evbuffer_add_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    header(b, "process_start_time_seconds", "gauge",
           "Start time of the master, in seconds since the epoch.");
    evbuffer_add_printf(b, "process_start_time_seconds %.3f\n", m->started_real_ms / 1000.0);
}

void metrics_render(struct master *m, struct evbuffer *b)
{
    uint64_t engine_crashes = m->retired_engine_crashes,
             engine_timeouts = m->retired_engine_timeouts;
    uint64_t audio_le[HIST_AUDIO_BUCKETS + 1];
    uint64_t audio_sum_ms = m->retired_audio_seconds.sum_ms;
    memcpy(audio_le, m->retired_audio_seconds.le, sizeof(audio_le));
    int by_state[WS_STOPPING + 1] = {0};
    int connected = 0;
    uint64_t rss_kb = 0, in_hand = 0, transfers = 0;
    double cpu_s = m->retired_cpu_s;
    uint64_t cache_hits = m->retired_cache_hits, cache_misses = m->retired_cache_misses;
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *s = scoreboard_slot(m->sb, m->children[i].slot);
        engine_crashes += atomic_load(&s->engine_crashes);
        engine_timeouts += atomic_load(&s->engine_timeouts);
        cache_hits += atomic_load(&s->cache_hits);
        cache_misses += atomic_load(&s->cache_misses);
        for (int k = 0; k <= HIST_AUDIO_BUCKETS; k++)
            audio_le[k] += atomic_load(&s->audio_seconds.le[k]);
        audio_sum_ms += atomic_load(&s->audio_seconds.sum_ms);
        int st = atomic_load(&s->state);
        if (st > WS_FREE && st <= WS_STOPPING)
            by_state[st]++;
        connected |= atomic_load(&s->broker_connected);
        rss_kb += atomic_load(&s->rss_kb) + atomic_load(&s->engine_rss_kb);
        in_hand += atomic_load(&s->jobs_in_hand);
        transfers += atomic_load(&s->transfers);
        /* The worker with its reaped engine children, and its engine child now */
        int engine = atomic_load(&s->engine_pid);
        cpu_s += proc_cpu_seconds(m->children[i].pid, 1) + (engine ? proc_cpu_seconds(engine, 0) : 0);
    }

    job_metrics(m, b);
    header(b, "c2a_cache_lookups_total", "counter",
           "Jobs that asked for the cache, by result: hit (reused) or miss (made and added).");
    evbuffer_add_printf(b, "c2a_cache_lookups_total{result=\"hit\"} %llu\n",
                        (unsigned long long)cache_hits);
    evbuffer_add_printf(b, "c2a_cache_lookups_total{result=\"miss\"} %llu\n",
                        (unsigned long long)cache_misses);
    header(b, "c2a_jobs_slow_total", "counter", "Jobs that ran past slow_job (warned about).");
    evbuffer_add_printf(b, "c2a_jobs_slow_total %llu\n", (unsigned long long)m->slow_jobs);
    header(b, "c2a_worker_restarts_total", "counter",
           "Workers that left without being asked to, by reason.");
    for (int r = 0; r < XR_COUNT; r++)
        evbuffer_add_printf(b, "c2a_worker_restarts_total{reason=\"%s\"} %llu\n",
                            exit_reason_name((enum exit_reason)r),
                            (unsigned long long)m->restarts_by_reason[r]);
    header(b, "c2a_engine_restarts_total", "counter",
           "Engine children that died on a job: crashed, or killed at job_timeout.");
    evbuffer_add_printf(b, "c2a_engine_restarts_total{reason=\"crashed\"} %llu\n",
                        (unsigned long long)engine_crashes);
    evbuffer_add_printf(b, "c2a_engine_restarts_total{reason=\"timeout\"} %llu\n",
                        (unsigned long long)engine_timeouts);
    header(b, "c2a_workers", "gauge", "Worker processes, by state.");
    for (int st = WS_BOOTING; st <= WS_STOPPING; st++)
        evbuffer_add_printf(b, "c2a_workers{state=\"%s\"} %d\n",
                            worker_state_name((enum worker_state)st), by_state[st]);
    header(b, "c2a_jobs_in_hand", "gauge",
           "Jobs delivered to workers and not yet acked (unacked messages).");
    evbuffer_add_printf(b, "c2a_jobs_in_hand %llu\n", (unsigned long long)in_hand);
    header(b, "c2a_http_transfers", "gauge",
           "HTTP transfers in flight: fetches, TTS requests, uploads, callbacks.");
    evbuffer_add_printf(b, "c2a_http_transfers %llu\n", (unsigned long long)transfers);
    header(b, "c2a_workers_target", "gauge", "Worker processes wanted.");
    evbuffer_add_printf(b, "c2a_workers_target %d\n", m->target);
    header(b, "c2a_broker_connected", "gauge", "1 when at least one worker is connected.");
    evbuffer_add_printf(b, "c2a_broker_connected %d\n", connected);
    header(b, "c2a_broker_probe_connected", "gauge",
           "1 when the master's own connection (for queue depths) is up.");
    evbuffer_add_printf(b, "c2a_broker_probe_connected %d\n", probe_connected(m->probe));
    queue_gauges(b, m->probe);
    header(b, "c2a_paused", "gauge", "1 while consuming is paused.");
    evbuffer_add_printf(b, "c2a_paused %d\n", atomic_load(&m->sb->paused));
    header(b, "c2a_boot_failures", "gauge", "Consecutive worker boot failures (backoff).");
    evbuffer_add_printf(b, "c2a_boot_failures %u\n", m->boot_failures);
    header(b, "c2a_master_resident_memory_bytes", "gauge", "Resident memory of the master.");
    evbuffer_add_printf(b, "c2a_master_resident_memory_bytes %llu\n",
                        (unsigned long long)proc_rss_kb(getpid()) * 1024);
    header(b, "c2a_workers_resident_memory_bytes", "gauge",
           "Resident memory of all workers and their engine children.");
    evbuffer_add_printf(b, "c2a_workers_resident_memory_bytes %llu\n",
                        (unsigned long long)rss_kb * 1024);
    header(b, "c2a_workers_cpu_seconds_total", "counter",
           "CPU time of the workers and their engine children, user and system, exited ones "
           "included.");
    evbuffer_add_printf(b, "c2a_workers_cpu_seconds_total %.3f\n", cpu_s);
    header(b, "c2a_start_time_seconds", "gauge", "Start time of the master, since the epoch.");
    evbuffer_add_printf(b, "c2a_start_time_seconds %.3f\n", m->started_real_ms / 1000.0);
    histogram(b, "c2a_audio_duration_seconds", "Audio produced, per job that produced audio.",
              hist_audio_bounds, HIST_AUDIO_BUCKETS, audio_le, audio_sum_ms / 1e3);
    process_metrics(m, b);
    header(b, "c2a_build_info", "gauge", "Always 1; the version as a label.");
    evbuffer_add_printf(b, "c2a_build_info{version=\"%s\"} 1\n", C2A_VERSION);
}
