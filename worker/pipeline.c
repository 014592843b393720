#include "pipeline.h"
#include "amqp.h"
#include "encode.h"
#include "job.h"
#include "synth.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

struct task {
    struct task *next;
    struct amqp_delivery *d;
    struct job job;
    struct synth_work work;
    int attempts;          /* this attempt, 1-based */
    unsigned pending;      /* publishes not yet confirmed */
    int failed_publish;    /* a publish was nacked or lost: do not ack */
    uint64_t dead_seq;     /* the dead letter's publish, 0 if none */
    int dead_failed;       /* ... and it was nacked or lost */
    int64_t received_us;
};

struct confirm_slot {
    uint64_t seq;
    struct task *task;
};

struct pipeline {
    struct pipeline_env env;
    struct amqp_link *link;
    struct synth *synth;
    struct task *queue_head, *queue_tail; /* received, waiting for the synthesis thread */
    struct task *current;                 /* on the synthesis thread */
    struct confirm_slot *confirms;
    size_t n_confirms, cap_confirms;
    int paused;
    int stopping;
    void (*stopped)(void *arg);
    void *stopped_arg;
    struct event *stop_check;
    struct event *forget_ev;
    uint64_t jobs_done;
    uint64_t recycle_after; /* 0 = never */
};

static void kick(struct pipeline *p);
static void maybe_stopped(struct pipeline *p);

static void task_free(struct task *t)
{
    if (!t)
        return;
    free(t->work.app_result.json);
    job_clear(&t->job);
    free(t->work.marks_json);
    if (t->d)
        free(t->d->body);
    free(t->d);
    free(t);
}

static void confirm_track(struct pipeline *p, uint64_t seq, struct task *t)
{
    if (p->n_confirms == p->cap_confirms) {
        p->cap_confirms = p->cap_confirms ? p->cap_confirms * 2 : 16;
        p->confirms = xrealloc(p->confirms, p->cap_confirms * sizeof(*p->confirms));
    }
    p->confirms[p->n_confirms++] = (struct confirm_slot){seq, t};
    t->pending++;
}

/* Everything the task published is confirmed: now the job may be acked. */
static void task_complete(struct pipeline *p, struct task *t)
{
    if (t->failed_publish && t->dead_seq && !t->dead_failed) {
        /* The dead letter is safe; only the error result could not be delivered
         * (a reply queue that refuses messages): retrying cannot help. */
        log_warn("job %s: its error result was refused; the dead letter keeps the job",
                 t->job.id[0] ? t->job.id : "?");
        amqp_link_ack(p->link, t->d->tag, t->d->generation);
    } else if (t->failed_publish) {
        /* Not acked, so not lost: hand it back now (on a live connection an
         * unacked delivery would otherwise hold its prefetch slot for good). */
        log_warn("job %s: a publish was not confirmed; the job goes back to its queue",
                 t->job.id[0] ? t->job.id : "?");
        amqp_link_reject(p->link, t->d->tag, t->d->generation);
    } else {
        amqp_link_ack(p->link, t->d->tag, t->d->generation);
    }
    task_free(t);
    maybe_stopped(p);
}

/* Returns the confirm sequence number, or 0 when the publish failed. */
static uint64_t publish(struct pipeline *p, struct task *t, const struct amqp_publish *m)
{
    uint64_t seq;
    if (amqp_link_publish(p->link, m, &seq) < 0) {
        t->failed_publish = 1;
        return 0;
    }
    confirm_track(p, seq, t);
    return seq;
}

static void settle(struct pipeline *p, struct task *t)
{
    if (t->pending == 0)
        task_complete(p, t);
}

static json_t *result_base(struct task *t, const char *status)
{
    const char *id = t->job.id[0] ? t->job.id : (t->d->message_id[0] ? t->d->message_id : NULL);
    return json_pack("{s:o,s:s,s:i,s:I,s:i}", "id", id ? json_string(id) : json_null(),
                     "status", status, "attempts", t->attempts, "elapsed_ms",
                     (json_int_t)((now_mono_us() - t->received_us) / 1000), "worker", (int)getpid());
}

/* The result goes to the message's reply_to and to the results exchange, each
 * confirmed before the job is acked. */
static void publish_result(struct pipeline *p, struct task *t, json_t *doc)
{
    const char *ex = p->env.cfg->results_exchange;
    if (!t->d->reply_to[0] && !ex[0]) {
        json_decref(doc);
        return;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct amqp_publish m = {.exchange = "", .routing_key = t->d->reply_to,
                             .correlation_id = t->d->correlation_id,
                             .message_id = t->job.id, .body = text, .len = strlen(text)};
    if (t->d->reply_to[0])
        publish(p, t, &m);
    if (ex[0]) {
        m.exchange = ex;
        m.routing_key = t->d->queue;
        publish(p, t, &m);
    }
    free(text);
}

/* A job that will not succeed: an error result, the message to <queue>.dead with
 * the reason, then the ack. */
static void finish_dead(struct pipeline *p, struct task *t, const char *code, const char *msg)
{
    log_warn("job %s: %s: %s (attempt %d): dead-lettered", t->job.id[0] ? t->job.id : "?", code,
             msg, t->attempts);
    json_t *doc = result_base(t, "error");
    json_object_set_new(doc, "error", json_pack("{s:s,s:s}", "code", code, "message", msg));
    publish_result(p, t, doc);
    char dead[AMQP_SHORTSTR + 8];
    amqp_dead_queue(t->d->queue, dead, sizeof(dead));
    struct amqp_publish m = {.exchange = "", .routing_key = dead,
                             .message_id = t->d->message_id, .attempts = t->attempts,
                             .error_code = code, .error_message = msg, .body = t->d->body,
                             .len = t->d->body_len};
    t->dead_seq = publish(p, t, &m);
    t->dead_failed = t->dead_seq == 0;
    atomic_fetch_add(&p->env.slot->jobs_failed, 1);
    atomic_fetch_add(&p->env.slot->jobs_dead, 1);
    settle(p, t);
}

/* Put the message back at the tail of its queue with `attempts` recorded, then
 * ack this delivery. Used for transient failures (through a delay queue) and for
 * messages handed back unprocessed. */
static void requeue(struct pipeline *p, struct task *t, const char *routing_key, int attempts)
{
    struct amqp_publish m = {.exchange = "", .routing_key = routing_key,
                             .message_id = t->d->message_id,
                             .correlation_id = t->d->correlation_id,
                             .reply_to = t->d->reply_to, .attempts = attempts,
                             .body = t->d->body, .len = t->d->body_len};
    publish(p, t, &m);
    settle(p, t);
}

static void retry_later(struct pipeline *p, struct task *t, const char *code, const char *msg)
{
    if (t->attempts >= p->env.cfg->max_attempts) {
        finish_dead(p, t, code, msg);
        return;
    }
    char q[AMQP_SHORTSTR + 32];
    amqp_retry_queue(t->d->queue, amqp_retry_delay_ms(t->attempts), q, sizeof(q));
    log_info("job %s: %s: %s; retry %d of %d via %s", t->job.id, code, msg, t->attempts + 1,
             p->env.cfg->max_attempts, q);
    atomic_fetch_add(&p->env.slot->jobs_retried, 1);
    requeue(p, t, q, t->attempts);
}

static void set_idle(struct pipeline *p)
{
    slot_set_job(p->env.slot, NULL);
    if (!p->stopping && atomic_load(&p->env.slot->state) != WS_STOPPING)
        atomic_store(&p->env.slot->state, p->paused ? WS_PAUSED : WS_IDLE);
}

/* A job is done (whatever its outcome): metrics, and recycling after max_jobs. */
static void count_done(struct pipeline *p, const struct task *t, int64_t audio_ms)
{
    slot_observe_job(p->env.slot, (uint64_t)(now_mono_us() - t->received_us),
                     audio_ms > 0 ? (uint64_t)audio_ms : 0);
    p->jobs_done++;
    if (p->recycle_after && p->jobs_done == p->recycle_after && !p->stopping) {
        /* Take no more jobs now; the shell stops us gracefully on its next
         * heartbeat, and the master starts our replacement as soon as it sees
         * WS_STOPPING. */
        log_info("recycling after %llu jobs", (unsigned long long)p->jobs_done);
        amqp_link_consume(p->link, 0);
        atomic_store(&p->env.slot->state, WS_STOPPING);
    }
}

static void on_synth_done(void *arg, struct synth_work *w)
{
    struct pipeline *p = arg;
    struct task *t = p->current;
    p->current = NULL;
    (void)w;
    set_idle(p);
    /* Before the outcome below, which may free the task. */
    count_done(p, t, t->work.ok && !t->work.app ? t->work.enc.duration_ms : 0);
    if (t->d->generation != amqp_link_generation(p->link)) {
        /* The connection it came on is gone and the broker has requeued it: the
         * next delivery rewrites the same file. */
        log_info("job %s: finished after its connection was lost; it will run again",
                 t->job.id);
        task_free(t);
    } else if (t->work.ok && t->work.app) {
        json_t *doc = result_base(t, "ok");
        if (t->work.app_result.json) {
            json_t *extra = json_loads(t->work.app_result.json, 0, NULL);
            if (json_is_object(extra)) {
                json_object_del(extra, "id");
                json_object_del(extra, "status");
                json_object_update(doc, extra);
            } else {
                log_warn("job %s: app %s returned a result that is not a JSON object",
                         t->job.id, t->work.app->name);
            }
            json_decref(extra);
        }
        atomic_fetch_add(&p->env.slot->jobs_ok, 1);
        publish_result(p, t, doc);
        settle(p, t);
    } else if (t->work.ok) {
        const struct encoded *e = &t->work.enc;
        json_t *doc = result_base(t, "ok");
        json_object_update_new(
            doc, json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:s}", "path", e->path, "format",
                           t->job.format, "sample_rate", e->sample_rate, "channels",
                           e->channels, "duration_ms", (json_int_t)e->duration_ms, "bytes",
                           (json_int_t)e->bytes, "sha256", e->sha256));
        if (t->work.marks_json) {
            json_t *marks = json_loads(t->work.marks_json, 0, NULL);
            if (marks)
                json_object_set_new(doc, "marks", marks);
        }
        log_debug("job %s: ok, %lld ms of audio, synth %lld ms, encode %lld ms", t->job.id,
                  (long long)e->duration_ms, (long long)t->work.synth_ms,
                  (long long)t->work.encode_ms);
        atomic_fetch_add(&p->env.slot->jobs_ok, 1);
        publish_result(p, t, doc);
        settle(p, t);
    } else if (t->work.permanent) {
        finish_dead(p, t, t->work.code, t->work.message);
    } else {
        retry_later(p, t, t->work.code, t->work.message);
    }
    kick(p);
    maybe_stopped(p);
}

static void kick(struct pipeline *p)
{
    /* Stopping or recycling: what is queued goes back (maybe_stopped), not on. */
    if (p->current || !p->queue_head || !p->synth || p->stopping ||
        atomic_load(&p->env.slot->state) == WS_STOPPING)
        return;
    struct task *t = p->queue_head;
    p->queue_head = t->next;
    if (!p->queue_head)
        p->queue_tail = NULL;
    t->next = NULL;
    p->current = t;
    slot_set_job(p->env.slot, t->job.id);
    atomic_store(&p->env.slot->state, WS_BUSY);
    t->work.job = &t->job;
    t->work.output_dir = p->env.cfg->output_dir;
    t->work.max_duration_s = p->env.cfg->max_duration;
    if (p->env.app) {
        t->work.app = p->env.app;
        t->work.app_state = p->env.app_state;
        t->work.app_job = (struct c2a_job){t->job.id, t->d->body, t->d->body_len,
                                           p->env.cfg->output_dir, t->attempts};
    }
    synth_submit(p->synth, &t->work);
}

static void enqueue(struct pipeline *p, struct task *t)
{
    if (p->queue_tail)
        p->queue_tail->next = t;
    else
        p->queue_head = t;
    p->queue_tail = t;
    kick(p);
}

/* An app's job is opaque to the server: its id is the JSON "id" when the body is
 * an object that has one, else the AMQP message id; "" when neither is a safe
 * name. */
static void app_job_id(const struct amqp_delivery *d, char *id, size_t len)
{
    const char *s = d->message_id;
    json_t *root = json_loadb(d->body, d->body_len, 0, NULL);
    json_t *v = json_is_object(root) ? json_object_get(root, "id") : NULL;
    if (json_is_string(v))
        s = json_string_value(v);
    strlcpy_c2a(id, job_safe_name(s, JOB_ID_MAX) ? s : "", len);
    json_decref(root);
}

static void on_delivery(void *arg, struct amqp_delivery *d)
{
    struct pipeline *p = arg;
    struct task *t = xcalloc(1, sizeof(*t));
    t->d = d;
    t->received_us = now_mono_us();
    t->attempts = d->attempts + 1;

    if (d->redelivered) {
        /* The last attempt was interrupted: the worker crashed or was killed, or
         * the connection was lost. Count it in the message itself (a redelivery
         * carries the old headers), so a job that kills its worker every time
         * reaches max_attempts instead of crash-looping the pool. */
        app_job_id(d, t->job.id, sizeof(t->job.id));
        if (d->attempts + 1 >= p->env.cfg->max_attempts) {
            t->attempts = d->attempts + 1;
            if (scoreboard_kill_reason(p->env.sb, t->job.id) == JK_TIMEOUT)
                finish_dead(p, t, "timeout", "the job ran past job_timeout on its last attempt");
            else
                finish_dead(p, t, "crashed",
                            "the job was interrupted on every attempt (worker crash, kill or "
                            "lost connection)");
            return;
        }
        log_warn("job %s: redelivered after an interrupted attempt; attempt %d of %d",
                 t->job.id[0] ? t->job.id : "?", d->attempts + 2, p->env.cfg->max_attempts);
        requeue(p, t, d->queue, d->attempts + 1);
        return;
    }

    if (p->env.noop) {
        const char *id = d->message_id;
        strlcpy_c2a(t->job.id, job_safe_name(id, JOB_ID_MAX) ? id : "", sizeof(t->job.id));
        atomic_fetch_add(&p->env.slot->jobs_ok, 1);
        publish_result(p, t, result_base(t, "ok"));
        count_done(p, t, 0);
        settle(p, t);
        return;
    }

    if (p->env.app) {
        app_job_id(d, t->job.id, sizeof(t->job.id));
        enqueue(p, t);
        return;
    }

    const struct config *cfg = p->env.cfg;
    struct job_defaults defs = {cfg->voice, cfg->format, cfg->sample_rate, cfg->max_chars};
    struct job_error err;
    if (job_parse(d->body, d->body_len, d->message_id, &defs, &t->job, &err) < 0) {
        count_done(p, t, 0);
        finish_dead(p, t, err.code, err.message);
        return;
    }
    enqueue(p, t);
}

static void on_confirm(void *arg, uint64_t seq, int acked)
{
    struct pipeline *p = arg;
    for (size_t i = 0; i < p->n_confirms; i++) {
        if (p->confirms[i].seq != seq)
            continue;
        struct task *t = p->confirms[i].task;
        p->confirms[i] = p->confirms[--p->n_confirms];
        if (!acked) {
            t->failed_publish = 1;
            t->dead_failed |= seq == t->dead_seq;
        }
        if (--t->pending == 0)
            task_complete(p, t);
        return;
    }
}

static void drop_queued(struct pipeline *p)
{
    while (p->queue_head) {
        struct task *t = p->queue_head;
        p->queue_head = t->next;
        task_free(t);
    }
    p->queue_tail = NULL;
}

/* The broker requeues every unacked delivery of a lost channel: forget the jobs
 * waiting here and the confirms that will never come. Runs from the loop, not
 * inside on_connection(), which a failing publish can call while its caller
 * still holds one of these tasks. */
static void forget_lost(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pipeline *p = arg;
    unsigned gen = amqp_link_generation(p->link);
    struct task **pp = &p->queue_head;
    p->queue_tail = NULL;
    while (*pp) {
        struct task *t = *pp;
        if (t->d->generation != gen) {
            *pp = t->next;
            task_free(t);
        } else {
            p->queue_tail = t;
            pp = &t->next;
        }
    }
    size_t keep = 0;
    for (size_t i = 0; i < p->n_confirms; i++) {
        struct task *t = p->confirms[i].task;
        if (t->d->generation == gen) {
            p->confirms[keep++] = p->confirms[i];
        } else if (--t->pending == 0) {
            task_free(t);
        }
    }
    p->n_confirms = keep;
    maybe_stopped(p);
}

static void on_connection(void *arg, int up)
{
    struct pipeline *p = arg;
    atomic_store(&p->env.slot->broker_connected, up);
    if (!up)
        event_active(p->forget_ev, EV_TIMEOUT, 0);
}

static int ensure_output_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    strlcpy_c2a(path, dir, sizeof(path));
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            break;
        *s = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "output dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (access(path, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "output dir %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static struct pipeline *pipeline_start(const struct pipeline_env *env, char *err, size_t errlen)
{
    if (!env->noop && ensure_output_dir(env->cfg->output_dir, err, errlen) < 0)
        return NULL;
    if (!env->noop && !env->app)
        encode_clean_stale(env->cfg->output_dir);
    struct pipeline *p = xcalloc(1, sizeof(*p));
    p->env = *env;
    if (!env->noop) {
        p->synth = synth_start(env->base, !env->app, on_synth_done, p, err, errlen);
        if (!p->synth) {
            free(p);
            return NULL;
        }
    }
    if (env->cfg->max_jobs) {
        uint32_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
            rnd = (uint32_t)getpid();
        p->recycle_after = (uint64_t)env->cfg->max_jobs +
                           (env->cfg->max_jobs_jitter ? rnd % (env->cfg->max_jobs_jitter + 1u) : 0);
    }
    p->paused = atomic_load(&env->sb->paused);
    p->forget_ev = evtimer_new(env->base, forget_lost, p);
    struct amqp_callbacks cb = {on_delivery, on_confirm, on_connection};
    p->link = amqp_link_open(env->base, env->cfg, &cb, p);
    if (p->paused)
        amqp_link_consume(p->link, 0);
    return p;
}

static void pipeline_tick(struct pipeline *p)
{
    int paused = atomic_load(&p->env.sb->paused);
    if (paused == p->paused || p->stopping)
        return;
    p->paused = paused;
    if (atomic_load(&p->env.slot->state) == WS_STOPPING)
        return; /* recycling: consuming stays off */
    log_info("%s consuming", paused ? "pausing:" : "resuming:");
    amqp_link_consume(p->link, !paused);
    if (!p->current)
        set_idle(p);
}

static int pipeline_recycle(struct pipeline *p)
{
    return p->recycle_after && p->jobs_done >= p->recycle_after;
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pipeline *p = arg;
    void (*cb)(void *) = p->stopped;
    p->stopped = NULL;
    if (cb)
        cb(p->stopped_arg);
}

/* Stopped once nothing is in hand: no synthesis running, no confirm awaited. */
static void maybe_stopped(struct pipeline *p)
{
    if (!p->stopping || !p->stopped)
        return;
    /* Jobs received but not started go back to their queue unchanged. */
    while (p->queue_head) {
        struct task *t = p->queue_head;
        p->queue_head = t->next;
        t->next = NULL;
        if (!p->queue_head)
            p->queue_tail = NULL;
        requeue(p, t, t->d->queue, t->d->attempts);
    }
    if (p->current || p->n_confirms)
        return;
    /* Report from the loop, not from inside a callback of the link. */
    event_active(p->stop_check, EV_TIMEOUT, 0);
}

static void pipeline_stop(struct pipeline *p, void (*stopped)(void *arg), void *arg)
{
    p->stopping = 1;
    p->stopped = stopped;
    p->stopped_arg = arg;
    if (!p->stop_check)
        p->stop_check = evtimer_new(p->env.base, stop_check_cb, p);
    amqp_link_consume(p->link, 0);
    maybe_stopped(p);
}

static void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    synth_stop(p->synth); /* waits for a job in hand */
    task_free(p->current);
    drop_queued(p);
    for (size_t i = 0; i < p->n_confirms; i++) {
        struct task *t = p->confirms[i].task;
        if (--t->pending == 0)
            task_free(t);
    }
    free(p->confirms);
    amqp_link_free(p->link);
    if (p->stop_check)
        event_free(p->stop_check);
    event_free(p->forget_ev);
    free(p);
}

const struct pipeline_api c2a_pipeline_api = {pipeline_start, pipeline_tick, pipeline_stop,
                                              pipeline_recycle, pipeline_free};
