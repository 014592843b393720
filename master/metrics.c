/*
 * GET /metrics: the Prometheus text exposition format (version 0.0.4), built
 * from the scoreboard and the master's counters of workers that have exited.
 * Names follow Prometheus conventions: c2a_ prefix, _total for counters,
 * base units (seconds, bytes).
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/util.h"

#include <event2/buffer.h>
#include <string.h>
#include <unistd.h>

static void header(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct evbuffer *b, const char *name, const char *help, const double *bounds,
                      int n, const uint64_t *counts, double sum)
{
    header(b, name, "histogram", help);
    for (int i = 0; i < n; i++)
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                            (unsigned long long)counts[i]);
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)counts[n], name, sum, name,
                        (unsigned long long)counts[n]);
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
            evbuffer_add_printf(b, "\",kind=\"%s\"} %lld\n", q.dead ? "dead-letter" : "work",
                                (long long)(k == 0 ? q.messages : q.consumers));
        }
    }
}

void metrics_render(struct master *m, struct evbuffer *b)
{
    uint64_t ok = m->retired_ok, failed = m->retired_failed, retried = m->retired_retried,
             dead = m->retired_dead;
    uint64_t engine_crashes = m->retired_engine_crashes,
             engine_timeouts = m->retired_engine_timeouts;
    uint64_t job_le[HIST_JOB_BUCKETS + 1], audio_le[HIST_AUDIO_BUCKETS + 1];
    uint64_t job_sum_us = m->retired_job_seconds.sum_us;
    uint64_t audio_sum_ms = m->retired_audio_seconds.sum_ms;
    memcpy(job_le, m->retired_job_seconds.le, sizeof(job_le));
    memcpy(audio_le, m->retired_audio_seconds.le, sizeof(audio_le));
    int by_state[WS_STOPPING + 1] = {0};
    int connected = 0;
    uint64_t rss_kb = 0, in_hand = 0, transfers = 0;
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *s = scoreboard_slot(m->sb, m->children[i].slot);
        ok += atomic_load(&s->jobs_ok);
        failed += atomic_load(&s->jobs_failed);
        retried += atomic_load(&s->jobs_retried);
        dead += atomic_load(&s->jobs_dead);
        engine_crashes += atomic_load(&s->engine_crashes);
        engine_timeouts += atomic_load(&s->engine_timeouts);
        for (int k = 0; k <= HIST_JOB_BUCKETS; k++)
            job_le[k] += atomic_load(&s->job_seconds.le[k]);
        for (int k = 0; k <= HIST_AUDIO_BUCKETS; k++)
            audio_le[k] += atomic_load(&s->audio_seconds.le[k]);
        job_sum_us += atomic_load(&s->job_seconds.sum_us);
        audio_sum_ms += atomic_load(&s->audio_seconds.sum_ms);
        int st = atomic_load(&s->state);
        if (st > WS_FREE && st <= WS_STOPPING)
            by_state[st]++;
        connected |= atomic_load(&s->broker_connected);
        rss_kb += atomic_load(&s->rss_kb) + atomic_load(&s->engine_rss_kb);
        in_hand += atomic_load(&s->jobs_in_hand);
        transfers += atomic_load(&s->transfers);
    }

    header(b, "c2a_jobs_total", "counter", "Jobs finished, by outcome.");
    evbuffer_add_printf(b, "c2a_jobs_total{outcome=\"ok\"} %llu\n", (unsigned long long)ok);
    evbuffer_add_printf(b, "c2a_jobs_total{outcome=\"failed\"} %llu\n",
                        (unsigned long long)failed);
    header(b, "c2a_jobs_retried_total", "counter", "Jobs sent to a delay queue for a retry.");
    evbuffer_add_printf(b, "c2a_jobs_retried_total %llu\n", (unsigned long long)retried);
    header(b, "c2a_jobs_dead_total", "counter", "Jobs sent to a dead-letter queue.");
    evbuffer_add_printf(b, "c2a_jobs_dead_total %llu\n", (unsigned long long)dead);
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
    header(b, "c2a_jobs_in_hand", "gauge", "Jobs received by workers and not yet acked.");
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
    header(b, "c2a_start_time_seconds", "gauge", "Start time of the master, since the epoch.");
    evbuffer_add_printf(b, "c2a_start_time_seconds %.3f\n", m->started_real_ms / 1000.0);
    histogram(b, "c2a_job_duration_seconds", "Time from delivery to result, per job.",
              hist_job_bounds, HIST_JOB_BUCKETS, job_le, job_sum_us / 1e6);
    histogram(b, "c2a_audio_duration_seconds", "Audio produced, per job that produced audio.",
              hist_audio_bounds, HIST_AUDIO_BUCKETS, audio_le, audio_sum_ms / 1e3);
    header(b, "c2a_build_info", "gauge", "Always 1; the version as a label.");
    evbuffer_add_printf(b, "c2a_build_info{version=\"%s\"} 1\n", C2A_VERSION);
}
