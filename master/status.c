/*
 * The /status document, read from the scoreboard and the master's own counters.
 * Field names are a stable interface (SPEC section 4); add, never rename.
 * Times are seconds since the epoch, with milliseconds.
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *master_state_name(const struct master *m)
{
    switch (m->state) {
    case MS_RUNNING:
        return m->boot_failures ? "backoff" : "running";
    case MS_STOPPING:
        return "stopping";
    case MS_QUITTING:
        return "quitting";
    }
    return "unknown";
}

static json_t *epoch(int64_t ms)
{
    return json_real((double)ms / 1000.0);
}

static json_t *config_summary(const struct config *cfg)
{
    json_t *o = json_object();
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key *k = config_key_at(i);
        json_t *sec = json_object_get(o, k->section);
        if (!sec) {
            sec = json_object();
            json_object_set_new(o, k->section, sec);
        }
        char *v = config_value_string(cfg, k);
        json_object_set_new(sec, k->name, json_string(v));
        free(v);
    }
    return o;
}

json_t *status_build(struct master *m, int full)
{
    int64_t now_mono = now_mono_ms(), now_real = now_real_ms();
    json_t *workers = json_array();
    uint64_t ok = m->retired_ok, failed = m->retired_failed, retried = m->retired_retried,
             dead = m->retired_dead;
    uint64_t engine_crashes = m->retired_engine_crashes,
             engine_timeouts = m->retired_engine_timeouts;
    int connected = 0;
    for (int i = 0; i < m->nchildren; i++) {
        const struct child *c = &m->children[i];
        struct sb_slot *s = scoreboard_slot(m->sb, c->slot);
        char job[SCOREBOARD_JOB_LEN];
        slot_get_job(s, job, sizeof(job));
        uint64_t w_ok = atomic_load(&s->jobs_ok), w_failed = atomic_load(&s->jobs_failed);
        ok += w_ok;
        failed += w_failed;
        retried += atomic_load(&s->jobs_retried);
        dead += atomic_load(&s->jobs_dead);
        engine_crashes += atomic_load(&s->engine_crashes);
        engine_timeouts += atomic_load(&s->engine_timeouts);
        connected |= atomic_load(&s->broker_connected);
        int64_t hb = atomic_load(&s->heartbeat_mono_ms);
        int64_t job_start = atomic_load(&s->job_started_mono_ms);
        json_t *w = json_pack(
            "{s:i,s:s,s:o,s:o,s:I,s:I,s:o,s:I,s:I,s:i,s:b}", "pid", (int)c->pid, "state",
            c->asked_to_stop && atomic_load(&s->state) != WS_BOOTING
                ? "stopping"
                : worker_state_name((enum worker_state)atomic_load(&s->state)),
            "started_at", epoch(atomic_load(&s->started_real_ms)), "heartbeat_at",
            epoch(now_real - (now_mono - hb)), "jobs_ok", (json_int_t)w_ok, "jobs_failed",
            (json_int_t)w_failed, "current_job", job[0] ? json_string(job) : json_null(),
            "rss_kb", (json_int_t)atomic_load(&s->rss_kb), "age_s",
            (json_int_t)((now_mono - c->spawned_mono_ms) / 1000), "generation",
            (int)c->generation, "broker_connected", atomic_load(&s->broker_connected));
        json_object_set_new(w, "job_elapsed_ms",
                            job_start ? json_integer(now_mono - job_start) : json_null());
        json_object_set_new(w, "jobs_in_hand", json_integer(atomic_load(&s->jobs_in_hand)));
        json_object_set_new(w, "transfers", json_integer(atomic_load(&s->transfers)));
        char berr[SCOREBOARD_ERR_LEN];
        slot_get_broker_error(s, berr, sizeof(berr));
        json_object_set_new(w, "broker_error", berr[0] ? json_string(berr) : json_null());
        int engine_pid = atomic_load(&s->engine_pid);
        json_object_set_new(w, "engine_pid", engine_pid ? json_integer(engine_pid) : json_null());
        json_object_set_new(w, "engine_rss_kb",
                            json_integer((json_int_t)atomic_load(&s->engine_rss_kb)));
        json_object_set_new(w, "engine_crashes",
                            json_integer((json_int_t)atomic_load(&s->engine_crashes)));
        json_object_set_new(w, "engine_timeouts",
                            json_integer((json_int_t)atomic_load(&s->engine_timeouts)));
        if (full) {
            json_object_set_new(w, "slot", json_integer(c->slot));
            json_object_set_new(w, "jobs_retried",
                                json_integer((json_int_t)atomic_load(&s->jobs_retried)));
            json_object_set_new(w, "jobs_dead",
                                json_integer((json_int_t)atomic_load(&s->jobs_dead)));
            json_object_set_new(w, "heartbeat_age_ms", json_integer(now_mono - hb));
        }
        json_array_append_new(workers, w);
    }

    json_t *restarts = json_object();
    uint64_t total_restarts = 0;
    for (int r = 0; r < XR_COUNT; r++) {
        json_object_set_new(restarts, exit_reason_name((enum exit_reason)r),
                            json_integer((json_int_t)m->restarts_by_reason[r]));
        total_restarts += m->restarts_by_reason[r];
    }

    json_t *queues = json_array();
    for (int i = 0; i < probe_queue_count(m->probe); i++) {
        struct probe_queue q;
        probe_queue_get(m->probe, i, &q);
        json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:b}", "name", q.name, "kind",
                              q.dead ? "dead-letter" : q.retry ? "retry" : "work", "messages",
                              q.messages < 0 ? json_null() : json_integer(q.messages),
                              "consumers",
                              q.consumers < 0 ? json_null() : json_integer(q.consumers),
                              "exists", q.exists);
        json_object_set_new(o, "error", q.mismatch[0] ? json_string(q.mismatch) : json_null());
        json_array_append_new(queues, o);
    }

    int64_t backoff_ms = m->next_spawn_mono_ms > now_mono ? m->next_spawn_mono_ms - now_mono : 0;
    json_t *doc = json_pack(
        "{s:i,s:s,s:o,s:I,s:s,s:s,s:b,s:i,s:i,s:i,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:o,"
        "s:{s:b},s:{s:i,s:I}}",
        "pid", (int)getpid(), "version", C2A_VERSION, "started_at", epoch(m->started_real_ms),
        "uptime_s", (json_int_t)((now_real - m->started_real_ms) / 1000), "state",
        master_state_name(m), "config_file", m->config_path, "paused",
        atomic_load(&m->sb->paused), "workers_target", m->target, "workers_alive",
        m->nchildren, "generation", (int)m->generation, "reloads", (json_int_t)m->reloads,
        "workers", workers, "totals", "jobs_ok", (json_int_t)ok, "jobs_failed",
        (json_int_t)failed, "jobs_retried", (json_int_t)retried, "jobs_dead", (json_int_t)dead,
        "worker_restarts", (json_int_t)total_restarts, "restarts", restarts, "queues", queues,
        "broker", "connected", connected, "backoff", "boot_failures", (int)m->boot_failures,
        "next_spawn_in_ms", (json_int_t)backoff_ms);
    json_t *totals = json_object_get(doc, "totals");
    json_object_set_new(totals, "engine_crashes", json_integer((json_int_t)engine_crashes));
    json_object_set_new(totals, "engine_timeouts", json_integer((json_int_t)engine_timeouts));
    json_object_set_new(totals, "slow_jobs", json_integer((json_int_t)m->slow_jobs));
    uint64_t hits = m->retired_cache_hits, misses = m->retired_cache_misses;
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *s = scoreboard_slot(m->sb, m->children[i].slot);
        hits += atomic_load(&s->cache_hits);
        misses += atomic_load(&s->cache_misses);
    }
    json_object_set_new(totals, "cache_hits", json_integer((json_int_t)hits));
    json_object_set_new(totals, "cache_misses", json_integer((json_int_t)misses));
    json_t *broker = json_object_get(doc, "broker");
    json_object_set_new(broker, "url", json_string(probe_url(m->probe)));
    json_object_set_new(broker, "probe_connected", json_boolean(probe_connected(m->probe)));
    /* While connected, null unless a queue exists with other arguments. */
    const char *probe_err = probe_error(m->probe);
    json_object_set_new(broker, "probe_error", probe_connected(m->probe) && !probe_err[0]
                                                   ? json_null()
                                                   : json_string(probe_err));
    json_object_set_new(doc, "control", json_string(control_address(m->control)));
    json_object_set_new(doc, "master_rss_kb", json_integer((json_int_t)proc_rss_kb(getpid())));
    if (full) {
        json_object_set_new(doc, "config", config_summary(m->cfg));
        json_object_set_new(doc, "recent_failures", history_failures_json(m));
    }
    return doc;
}
