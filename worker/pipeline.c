#include "pipeline.h"
#include "amqp.h"
#include "amqp_open.h"
#include "captions.h"
#include "commit.h"
#include "content.h"
#include "encode.h"
#include "engine.h"
#include "fetch.h"
#include "http_api.h"
#include "job.h"
#include "synth.h"
#include "tts_http.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where a speech job is. The engine child takes PH_SYNTH and PH_RENDER tasks;
 * the others wait on an HTTP transfer on the loop, so fetches, TTS requests,
 * uploads and callbacks of many jobs overlap the one synthesis. */
enum task_phase {
    PH_FETCH,    /* url: fetching the content */
    PH_SYNTH,    /* waiting for the engine: espeak, or preparing pieces for the http engine */
    PH_TTS,      /* http engine: one request per piece, in order */
    PH_RENDER,   /* waiting for the engine: decode the WAV answers, encode */
    PH_COMMIT,   /* the file is written: the commit thread flushes and renames it */
    PH_UPLOAD,   /* PUT of the audio to upload_url */
    PH_CALLBACK, /* POST of the result to callback_url */
};

struct task {
    struct task *next;
    struct pipeline *p;
    struct sb_slot *slot;
    enum task_phase phase;
    struct fetch *net;     /* the transfer in flight, if any */
    int started;           /* has been on the engine */
    char *raw;             /* url: the fetched content */
    size_t raw_len;
    char raw_type[160];
    char **pieces;         /* http engine: the text, cut */
    int n_pieces, next_piece, pieces_done;
    struct wav_part *wavs; /* http engine: the answers, one per piece, in order */
    int n_wavs;
    struct tts_call *calls; /* http engine: the request of each piece */
    int64_t tts_chars, tts_done_chars, tts_audio_ms; /* ... for progress messages */
    int64_t progress_at_us; /* when the last progress message went */
    json_t *result;        /* the ok result, while it is uploaded and called back */
    int64_t audio_ms;
    struct amqp_delivery *d;
    struct job job;
    struct synth_work work;
    char tmp_tag[32];          /* the engine's temporary file for this attempt, if any */
    struct commit_req *commit; /* in the commit thread */
    int attempts;          /* this attempt, 1-based */
    int crashes;           /* engine crashes and timeouts charged to the job so far */
    unsigned pending;      /* publishes not yet confirmed */
    int failed_publish;    /* a publish was nacked or lost: do not ack */
    int publish_lost;      /* ... one could not be sent (the connection is gone) */
    int result_refused;    /* ... a result was nacked (its reply_to refuses it) */
    uint64_t dead_seq;     /* the dead letter's publish, 0 if none */
    int dead_failed;       /* ... and it was nacked or lost */
    uint64_t requeue_seq;  /* the publish that puts the job back in a queue, 0 if none */
    int counted_ok;        /* jobs_ok was counted for it */
    int64_t received_us;
    int qi;                /* its queue in the scoreboard slot, -1 if not there */
    int64_t mark_us;       /* when the current stage began */
    int64_t stage_us[ST_COUNT];
    unsigned stages_seen;  /* bit per enum job_stage */
};

/* One TTS request: which piece of which task. */
struct tts_call {
    struct task *t;
    int index;
    struct fetch *net;
};

struct confirm_slot {
    uint64_t seq;
    struct task *task;
};

struct pipeline {
    struct pipeline_env env;
    struct amqp_link *link;
    struct engine *engine;
    struct committer *committer;
    uint64_t tmp_seq;
    const struct http_api *http; /* c2a-http.so, once a job needed it */
    struct fetcher *fetcher;
    /* Received and not finished, in order of arrival: waiting for the engine or
     * for a transfer. The task on the engine is not in the list. */
    struct task *queue_head, *queue_tail;
    struct task *current;                 /* on the engine */
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
    int recycling;          /* max_jobs or max_rss reached: the shell stops us */
};

static void kick(struct pipeline *p);
static void maybe_stopped(struct pipeline *p);

/* Stage times (/metrics' c2a_job_stage_seconds): add us to stage st. */
static void stage_add(struct task *t, enum job_stage st, int64_t us)
{
    t->stage_us[st] += us > 0 ? us : 0;
    t->stages_seen |= 1u << st;
}

/* Stage st ends now, and the next begins. */
static void stage_end(struct task *t, enum job_stage st)
{
    int64_t now = now_mono_us();
    stage_add(t, st, now - t->mark_us);
    t->mark_us = now;
}

static void stages_observe(struct task *t)
{
    for (int st = 0; st < ST_COUNT; st++)
        if (t->stages_seen & (1u << st))
            slot_observe_stage(t->slot, (enum job_stage)st, (uint64_t)t->stage_us[st]);
    t->stages_seen = 0;
}

static void count_outcome(struct task *t, enum job_outcome o, const char *code)
{
    slot_count_outcome(t->slot, t->qi, o, code, (uint64_t)(now_mono_us() - t->received_us));
}

/* For the status page's recent failures. */
static void note_failure(struct task *t, const char *code, const char *msg, int retried)
{
    const char *id = t->job.id[0] ? t->job.id : (t->d->message_id[0] ? t->d->message_id : "-");
    slot_add_failure(t->slot, t->d->queue, id, code, msg, retried);
}

/* Every transfer of a task goes through these two, so the scoreboard's count of
 * transfers in flight stays right. *net is the task's one transfer (fetch,
 * upload, callback) or one of its TTS calls. */
static void net_start(struct task *t, struct fetch **net, const struct fetch_req *req,
                      fetch_done_fn done, void *arg)
{
    if (net == &t->net)
        t->mark_us = now_mono_us();
    *net = t->p->http->fetch_start(t->p->fetcher, req, done, arg);
    atomic_fetch_add(&t->slot->transfers, 1);
}

/* A transfer ended (from its callback) or is abandoned (cancel set). */
static void net_end(struct task *t, struct fetch **net, int cancel)
{
    if (!*net)
        return;
    if (cancel)
        t->p->http->fetch_cancel(*net);
    *net = NULL;
    atomic_fetch_sub(&t->slot->transfers, 1);
    if (net == &t->net && !cancel)
        stage_end(t, t->phase == PH_FETCH    ? ST_FETCH
                     : t->phase == PH_UPLOAD ? ST_UPLOAD
                                             : ST_CALLBACK);
}

/* Abandon every transfer of the task. */
static void net_cancel(struct task *t)
{
    net_end(t, &t->net, 1);
    for (int i = 0; t->calls && i < t->n_pieces; i++)
        net_end(t, &t->calls[i].net, 1);
}

/* Whether any transfer of the task is in flight. */
static int net_busy(const struct task *t)
{
    if (t->net)
        return 1;
    for (int i = 0; t->calls && i < t->n_pieces; i++)
        if (t->calls[i].net)
            return 1;
    return 0;
}

static void task_free(struct task *t)
{
    if (!t)
        return;
    net_cancel(t);
    if (t->commit)
        t->commit->arg = NULL; /* it completes without us */
    atomic_fetch_sub(&t->slot->jobs_in_hand, 1);
    free(t->raw);
    synth_free_pieces(t->pieces, t->n_pieces);
    for (int i = 0; i < t->n_wavs; i++)
        free(t->wavs[i].data);
    free(t->wavs);
    free(t->calls);
    json_decref(t->result);
    free(t->work.spoken_text);
    synth_free_pieces(t->work.pieces, t->work.n_pieces);
    free(t->work.app_result.json);
    job_clear(&t->job);
    free(t->work.marks_json);
    amqp_delivery_free(t->d);
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

static void retry_later(struct pipeline *p, struct task *t, const char *code, const char *msg);

/* Everything the task published is confirmed: now the job may be acked. */
static void task_complete(struct pipeline *p, struct task *t)
{
    if (t->failed_publish && t->result_refused && !t->publish_lost && !t->dead_seq &&
        !t->requeue_seq) {
        /* Only its result was refused (a reply_to queue that rejects messages,
         * e.g. full with x-overflow = reject-publish): the job is done but not
         * reported. A transient failure of its own, retried later; nothing
         * crashed. */
        char msg[AMQP_SHORTSTR + 64];
        snprintf(msg, sizeof(msg), "the broker refused the result for reply_to %s",
                 t->d->reply_to[0] ? t->d->reply_to : "(results exchange)");
        t->failed_publish = t->result_refused = 0;
        if (t->counted_ok) {
            atomic_fetch_sub(&p->env.slot->jobs_ok, 1);
            t->counted_ok = 0;
        }
        retry_later(p, t, "reply_failed", msg);
        return;
    }
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
        if (t->counted_ok)
            count_outcome(t, JO_OK, NULL);
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
        t->failed_publish = t->publish_lost = 1;
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
    return json_pack("{s:o,s:s,s:i,s:I,s:s,s:i}", "id", id ? json_string(id) : json_null(),
                     "status", status, "attempts", t->attempts, "elapsed_ms",
                     (json_int_t)((now_mono_us() - t->received_us) / 1000), "host",
                     amqp_host_name(), "worker", (int)getpid());
}

/* The job's access-log line ([master] job_log): one per outcome of an attempt,
 * ok, retry (a delay queue) or failed (dead-lettered). */
static void log_job_end(struct pipeline *p, const struct task *t, const char *status,
                        const char *code)
{
    if (!p->env.cfg->job_log)
        return;
    const char *id = t->job.id[0] ? t->job.id : (t->d->message_id[0] ? t->d->message_id : "-");
    int text = t->job.content && t->job.source != JOB_URL;
    struct log_job j = {id, t->d->queue, status, code,
                        text ? (long long)job_utf8_chars(t->job.content, t->job.content_len) : -1,
                        code ? 0 : t->audio_ms, (now_mono_us() - t->received_us) / 1000,
                        t->attempts};
    log_job(LL_INFO, &j, "job %s", status);
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
    log_job_end(p, t, "failed", code);
    json_t *doc = result_base(t, "error");
    json_object_set_new(doc, "error", json_pack("{s:s,s:s}", "code", code, "message", msg));
    publish_result(p, t, doc);
    char dead[AMQP_SHORTSTR + 8];
    amqp_dead_queue(t->d->queue, dead, sizeof(dead));
    struct amqp_publish m = {.original = t->d, .exchange = "", .routing_key = dead,
                             .attempts = t->attempts,
                             .crashes = t->crashes, .error_code = code,
                             .error_message = msg, .body = t->d->body, .len = t->d->body_len};
    t->dead_seq = publish(p, t, &m);
    t->dead_failed = t->dead_seq == 0;
    atomic_fetch_add(&p->env.slot->jobs_failed, 1);
    atomic_fetch_add(&p->env.slot->jobs_dead, 1);
    count_outcome(t, JO_FAILED, code);
    note_failure(t, code, msg, 0);
    settle(p, t);
}

/* Put the message back at the tail of its queue with `attempts` and the task's
 * crashes recorded, then ack this delivery. Used for transient failures (through
 * a delay queue) and for messages handed back unprocessed. */
static void requeue(struct pipeline *p, struct task *t, const char *routing_key, int attempts,
                    int redeliveries)
{
    struct amqp_publish m = {.original = t->d, .exchange = "", .routing_key = routing_key,
                             .attempts = attempts,
                             .crashes = t->crashes, .redeliveries = redeliveries,
                             .body = t->d->body, .len = t->d->body_len};
    t->requeue_seq = publish(p, t, &m);
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
    log_job_end(p, t, "retry", code);
    atomic_fetch_add(&p->env.slot->jobs_retried, 1);
    count_outcome(t, JO_RETRIED, code);
    note_failure(t, code, msg, 1);
    requeue(p, t, q, t->attempts, 0);
}

static void set_idle(struct pipeline *p)
{
    slot_set_job(p->env.slot, NULL);
    if (!p->stopping && atomic_load(&p->env.slot->state) != WS_STOPPING)
        atomic_store(&p->env.slot->state, p->paused ? WS_PAUSED : WS_IDLE);
}

/* A job is done (whatever its outcome): metrics, and recycling after max_jobs. */
static void count_done(struct pipeline *p, struct task *t, int64_t audio_ms)
{
    slot_observe_job(p->env.slot, (uint64_t)(now_mono_us() - t->received_us),
                     audio_ms > 0 ? (uint64_t)audio_ms : 0);
    stages_observe(t);
    p->jobs_done++;
    if (p->recycling || p->stopping)
        return;
    if (p->recycle_after && p->jobs_done == p->recycle_after) {
        log_info("recycling after %llu jobs", (unsigned long long)p->jobs_done);
    } else if (p->env.cfg->max_rss) {
        /* Measured after a job, as Celery's max-memory-per-child: an idle worker
         * above the limit (set too low) is not replaced in a loop. */
        pid_t engine = atomic_load(&p->env.slot->engine_pid);
        uint64_t rss = proc_rss_kb(getpid()) + (engine ? proc_rss_kb(engine) : 0);
        if (rss <= (uint64_t)p->env.cfg->max_rss * 1024)
            return;
        log_warn("recycling: the worker and its engine use %llu kB, over max_rss = %d MB",
                 (unsigned long long)rss, p->env.cfg->max_rss);
        atomic_store(&p->env.slot->recycled_for_memory, 1);
    } else {
        return;
    }
    /* Take no more jobs now; the shell stops us gracefully on its next
     * heartbeat, and the master starts our replacement as soon as it sees
     * WS_STOPPING. */
    p->recycling = 1;
    amqp_link_consume(p->link, 0);
    atomic_store(&p->env.slot->state, WS_STOPPING);
}

static void list_append(struct pipeline *p, struct task *t)
{
    t->next = NULL;
    if (p->queue_tail)
        p->queue_tail->next = t;
    else
        p->queue_head = t;
    p->queue_tail = t;
}

static void list_remove(struct pipeline *p, struct task *t)
{
    struct task *prev = NULL;
    for (struct task *x = p->queue_head; x; prev = x, x = x->next) {
        if (x != t)
            continue;
        if (prev)
            prev->next = x->next;
        else
            p->queue_head = x->next;
        if (p->queue_tail == x)
            p->queue_tail = prev;
        x->next = NULL;
        return;
    }
}

/* The end of a task's own work, whatever its outcome: out of the list, counted. */
static void task_end(struct pipeline *p, struct task *t)
{
    list_remove(p, t);
    count_done(p, t, t->audio_ms);
}

/* A transfer or a synthesis step failed: permanent errors dead-letter the job,
 * transient ones retry it later through the delay queues. */
static void task_fail(struct pipeline *p, struct task *t, int transient, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void task_fail(struct pipeline *p, struct task *t, int transient, const char *code,
                      const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    task_end(p, t);
    if (transient)
        retry_later(p, t, code, msg);
    else
        finish_dead(p, t, code, msg);
}

static void finish_ok(struct pipeline *p, struct task *t)
{
    task_end(p, t);
    json_t *doc = t->result;
    t->result = NULL;
    atomic_fetch_add(&p->env.slot->jobs_ok, 1);
    t->counted_ok = 1;
    log_job_end(p, t, "ok", NULL);
    publish_result(p, t, doc);
    settle(p, t);
}

static const char *format_mime(const char *format)
{
    static const char *const map[][2] = {{"wav", "audio/wav"},
                                         {"flac", "audio/flac"},
                                         {"ogg", "audio/ogg"},
                                         {"opus", "audio/ogg; codecs=opus"},
                                         {"mp3", "audio/mpeg"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i][0], format) == 0)
            return map[i][1];
    return "application/octet-stream";
}

#define SMALL_ANSWER (64 * 1024) /* what an upload or callback server may answer */

static void after_audio(struct pipeline *p, struct task *t);

static void on_callback_done(void *arg, struct fetch_result *r)
{
    struct task *t = arg;
    net_end(t, &t->net, 0);
    if (!r->ok) {
        task_fail(t->p, t, r->transient, "callback_failed", "callback_url: %s", r->error);
        return;
    }
    finish_ok(t->p, t);
}

static void on_caption_uploaded(void *arg, struct fetch_result *r)
{
    struct task *t = arg;
    struct pipeline *p = t->p;
    net_end(t, &t->net, 0);
    int cap = t->job.captions_upload[0] ? 0 : 1;
    const char *kind = cap ? "srt" : "vtt";
    if (!r->ok) {
        task_fail(p, t, r->transient, "upload_failed", "captions_upload_url (%s): %s", kind,
                  r->error);
        return;
    }
    json_t *urls = json_object_get(t->result, "captions_urls");
    if (!urls) {
        urls = json_object();
        json_object_set_new(t->result, "captions_urls", urls);
    }
    json_object_set_new(urls, kind, json_string(t->job.captions_upload[cap]));
    json_t *paths = json_object_get(t->result, "captions");
    const char *path = json_string_value(json_object_get(paths, kind));
    if (!t->job.keep_file && path) {
        if (unlink(path) < 0)
            log_warn("job %s: cannot remove %s after its upload: %s", t->job.id, path,
                     strerror(errno));
        json_object_set_new(paths, kind, json_null());
    }
    free(t->job.captions_upload[cap]);
    t->job.captions_upload[cap] = NULL;
    after_audio(p, t);
}

static void on_upload_done(void *arg, struct fetch_result *r)
{
    struct task *t = arg;
    struct pipeline *p = t->p;
    net_end(t, &t->net, 0);
    if (!r->ok) {
        task_fail(p, t, r->transient, "upload_failed", "upload_url: %s", r->error);
        return;
    }
    json_object_set_new(t->result, "url", json_string(t->job.upload_url));
    if (!t->job.keep_file) {
        if (unlink(t->work.enc.path) < 0)
            log_warn("job %s: cannot remove %s after its upload: %s", t->job.id,
                     t->work.enc.path, strerror(errno));
        json_object_set_new(t->result, "path", json_null());
    }
    free(t->job.upload_url);
    t->job.upload_url = NULL;
    after_audio(p, t);
}

static void on_caption_uploaded(void *arg, struct fetch_result *r);

/* The audio file is written: upload it, then its captions, call back, then
 * publish the result. Each step ends by calling this again. */
static void after_audio(struct pipeline *p, struct task *t)
{
    const struct config *cfg = p->env.cfg;
    int cap = t->job.captions_upload[0] ? 0 : t->job.captions_upload[1] ? 1 : -1;
    if (!t->job.upload_url && cap >= 0) {
        json_t *paths = json_object_get(t->result, "captions");
        const char *path = json_string_value(json_object_get(paths, cap ? "srt" : "vtt"));
        if (!path) {
            task_fail(p, t, 0, "upload_failed", "captions_upload_url: no %s file",
                      cap ? "srt" : "vtt");
            return;
        }
        struct fetch_req req = {.method = FETCH_PUT, .url = t->job.captions_upload[cap],
                                .content_type = cap ? "application/x-subrip; charset=utf-8"
                                                    : "text/vtt; charset=utf-8",
                                .upload_path = path, .max_bytes = SMALL_ANSWER,
                                .timeout_s = cfg->upload_timeout};
        if (t->phase != PH_UPLOAD)
            list_append(p, t);
        t->phase = PH_UPLOAD;
        net_start(t, &t->net, &req, on_caption_uploaded, t);
    } else if (t->job.upload_url) {
        struct fetch_req req = {.method = FETCH_PUT, .url = t->job.upload_url,
                                .content_type = format_mime(t->job.format),
                                .upload_path = t->work.enc.path, .max_bytes = SMALL_ANSWER,
                                .timeout_s = cfg->upload_timeout};
        t->phase = PH_UPLOAD;
        list_append(p, t);
        net_start(t, &t->net, &req, on_upload_done, t);
    } else if (t->job.callback_url) {
        char *body = json_dumps(t->result, JSON_COMPACT);
        struct fetch_req req = {.method = FETCH_POST, .url = t->job.callback_url,
                                .content_type = "application/json", .body = body,
                                .body_len = strlen(body), .max_bytes = SMALL_ANSWER,
                                .timeout_s = cfg->upload_timeout};
        if (t->phase != PH_UPLOAD)
            list_append(p, t);
        t->phase = PH_CALLBACK;
        net_start(t, &t->net, &req, on_callback_done, t);
        free(body);
        free(t->job.callback_url);
        t->job.callback_url = NULL;
    } else {
        finish_ok(p, t);
    }
}

static void on_tts_done(void *arg, struct fetch_result *r);

/* A long job's progress (job field progress), to its reply_to with its
 * correlation_id. Not confirmed, and nothing waits on it: the result that
 * follows is what counts. */
static void send_progress(struct pipeline *p, struct task *t, int64_t done, int64_t total,
                          int64_t audio_ms)
{
    if (!t->d->reply_to[0])
        return;
    t->progress_at_us = now_mono_us();
    json_t *doc = json_pack("{s:o,s:s,s:I,s:I,s:I,s:i}", "id",
                            t->job.id[0] ? json_string(t->job.id) : json_null(), "status",
                            "progress", "done_chars", (json_int_t)done, "total_chars",
                            (json_int_t)total, "audio_ms", (json_int_t)audio_ms, "attempts",
                            t->attempts);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return;
    struct amqp_publish m = {.exchange = "", .routing_key = t->d->reply_to,
                             .correlation_id = t->d->correlation_id, .message_id = t->job.id,
                             .body = text, .len = strlen(text)};
    uint64_t seq;
    if (amqp_link_publish(p->link, &m, &seq) < 0)
        log_debug("job %s: progress not sent: not connected", t->job.id);
    free(text);
}

/* The request for the next piece. Up to [speech] http_concurrency run at once;
 * the answers are kept by piece, so they join in the order of the text. */
static void next_tts_request(struct pipeline *p, struct task *t)
{
    const struct config *cfg = p->env.cfg;
    size_t base_len = strlen(cfg->http_url);
    while (base_len && cfg->http_url[base_len - 1] == '/')
        base_len--;
    char *url = xasprintf("%.*s/audio/speech", (int)base_len, cfg->http_url);
    struct tts_call *call = &t->calls[t->next_piece];
    char *body = tts_http_request(cfg->http_model, t->job.voice, t->job.rate,
                                  t->pieces[t->next_piece]);
    t->next_piece++;
    /* Enough for max_duration of 48 kHz stereo 16-bit, and a little. */
    size_t cap = (size_t)cfg->max_duration * 48000u * 4u + (1u << 20);
    struct fetch_req req = {.method = FETCH_POST, .url = url, .accept = "audio/wav",
                            .content_type = "application/json", .body = body,
                            .body_len = strlen(body), .bearer = cfg->http_token,
                            .max_bytes = cap, .timeout_s = cfg->http_timeout, .trusted = 1};
    net_start(t, &call->net, &req, on_tts_done, call);
    free(body);
    free(url);
}

static void start_tts(struct pipeline *p, struct task *t)
{
    t->calls = xcalloc((size_t)t->n_pieces, sizeof(*t->calls));
    t->wavs = xcalloc((size_t)t->n_pieces, sizeof(*t->wavs));
    t->n_wavs = t->n_pieces;
    t->tts_chars = 0;
    for (int i = 0; i < t->n_pieces; i++) {
        t->calls[i] = (struct tts_call){t, i, NULL};
        t->tts_chars += (int64_t)job_utf8_chars(t->pieces[i], strlen(t->pieces[i]));
    }
    t->phase = PH_TTS;
    t->mark_us = now_mono_us();
    t->progress_at_us = t->mark_us; /* the first a second in */
    list_append(p, t);
    while (t->next_piece < t->n_pieces && t->next_piece < p->env.cfg->http_concurrency)
        next_tts_request(p, t);
}

static void on_tts_done(void *arg, struct fetch_result *r)
{
    struct tts_call *call = arg;
    struct task *t = call->t;
    struct pipeline *p = t->p;
    net_end(t, &call->net, 0);
    if (!r->ok) {
        stage_end(t, ST_TTS);
        net_cancel(t); /* the other pieces are of no use now */
        task_fail(p, t, r->transient, "synth_failed", "TTS server, piece %d of %d: %s",
                  call->index + 1, t->n_pieces, r->error);
        return;
    }
    t->wavs[call->index] = (struct wav_part){r->body, r->len};
    r->body = NULL;
    t->pieces_done++;
    if (t->job.progress) {
        /* The pieces' characters and audio as they come back (in any order):
         * at most a message a second, the last when the file is made. */
        const char *piece = t->pieces[call->index];
        t->tts_done_chars += (int64_t)job_utf8_chars(piece, strlen(piece));
        t->tts_audio_ms += tts_wav_ms(t->wavs[call->index].data, t->wavs[call->index].len);
        if (t->pieces_done < t->n_pieces && now_mono_us() - t->progress_at_us >= 1000000)
            send_progress(p, t, t->tts_done_chars, t->tts_chars, t->tts_audio_ms);
    }
    if (t->next_piece < t->n_pieces)
        next_tts_request(p, t);
    if (t->pieces_done < t->n_pieces)
        return;
    stage_end(t, ST_TTS);
    t->phase = PH_RENDER;
    kick(p);
}

static void on_fetched(void *arg, struct fetch_result *r)
{
    struct task *t = arg;
    struct pipeline *p = t->p;
    net_end(t, &t->net, 0);
    if (r->too_large) {
        task_fail(p, t, 0, "too_large", "url: the content passed %d bytes ([fetch] max_bytes)",
                  p->env.cfg->fetch_max_bytes);
        return;
    }
    if (!r->ok) {
        task_fail(p, t, r->transient, "fetch_failed", "url: %s", r->error);
        return;
    }
    if (r->len == 0) {
        /* 204, or 200 with no body: nothing to speak (the url must not be spoken
         * in its place). */
        task_fail(p, t, 0, "bad_field", "url: the content is empty");
        return;
    }
    log_debug("job %s: fetched %zu bytes of %s", t->job.id, r->len,
              r->content_type[0] ? r->content_type : "(no type)");
    t->raw = r->body;
    t->raw_len = r->len;
    r->body = NULL;
    strlcpy_c2a(t->raw_type, r->content_type, sizeof(t->raw_type));
    t->phase = PH_SYNTH;
    kick(p);
}

/* The ok result of a speech job's audio. */
static json_t *audio_result(struct task *t)
{
    const struct encoded *e = &t->work.enc;
    json_t *doc = result_base(t, "ok");
    json_object_update_new(
        doc, json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:s,s:s}", "path", e->path, "format",
                       t->job.format, "sample_rate", e->sample_rate, "channels", e->channels,
                       "duration_ms", (json_int_t)e->duration_ms, "bytes", (json_int_t)e->bytes,
                       "sha256", e->sha256, "engine",
                       t->job.engine == ENGINE_HTTP ? "http" : "espeak"));
    if (t->job.source == JOB_URL)
        json_object_set_new(doc, "source_url", json_string(t->job.content));
    if (t->work.marks_json) {
        json_t *marks = json_loads(t->work.marks_json, 0, NULL);
        if (marks)
            json_object_set_new(doc, "marks", marks);
    }
    if (t->work.spoken_text)
        json_object_set_new(doc, "text", json_string(t->work.spoken_text));
    if (t->job.cache) {
        json_object_set_new(doc, "cached", json_boolean(t->work.cached));
        atomic_fetch_add(t->work.cached ? &t->slot->cache_hits : &t->slot->cache_misses, 1);
    }
    if (t->work.levelled) {
        /* As measured after levelling; silence has no loudness (null). */
        double l = t->work.loudness_lufs, p = t->work.true_peak_dbtp;
        json_object_set_new(doc, "loudness_lufs",
                            isfinite(l) ? json_real(round(l * 10) / 10) : json_null());
        json_object_set_new(doc, "true_peak_dbtp",
                            isfinite(p) ? json_real(round(p * 10) / 10) : json_null());
    }
    return doc;
}

static void app_done(struct pipeline *p, struct task *t)
{
    json_t *doc = result_base(t, "ok");
    if (t->work.app_result.json) {
        json_t *extra = json_loads(t->work.app_result.json, 0, NULL);
        if (json_is_object(extra)) {
            json_object_del(extra, "id");
            json_object_del(extra, "status");
            json_object_update(doc, extra);
        } else {
            log_warn("job %s: app %s returned a result that is not a JSON object", t->job.id,
                     t->work.app->name);
        }
        json_decref(extra);
    }
    t->result = doc;
    finish_ok(p, t);
}

/* The engine died on this job (a crash, or killed at job_timeout). The job alone
 * is charged: one attempt and one crash. A job that has crashed its engine
 * CRASH_LIMIT times is quarantined (dead-lettered), whatever max_attempts allows
 * for transient failures. */
#define CRASH_LIMIT 2

/* The path of the task's temporary file and of its audio, and of the captions
 * of kinds beside it (those the engine wrote; for a job given up, all it may
 * have written). Files that are read again keep their pages: an upload reads
 * its file right after the commit, and a cache entry is the very file (a hard
 * link), read back for its hash at each hit. */
static void task_paths(struct pipeline *p, const struct task *t, struct commit_req *r, int kinds)
{
    char name[JOB_NAME_MAX + 16];
    outfile_job_name(&t->job, name, sizeof(name));
    const char *dir = p->env.cfg->output_dir;
    outfile_tmp_path(r->tmp, sizeof(r->tmp), dir, t->tmp_tag, name);
    snprintf(r->path, sizeof(r->path), "%s/%s", dir, name);
    r->keep_audio = t->job.upload_url || t->job.cache;
    r->n_side = 0;
    for (int kind = CAPTIONS_VTT; kind <= CAPTIONS_SRT; kind <<= 1) {
        if (!(kinds & kind))
            continue;
        char cname[JOB_NAME_MAX + 16];
        captions_name(name, kind, cname, sizeof(cname));
        outfile_tmp_path(r->side_tmp[r->n_side], sizeof(r->side_tmp[0]), dir, t->tmp_tag, cname);
        snprintf(r->side_path[r->n_side], sizeof(r->side_path[0]), "%s/%s", dir, cname);
        r->keep_side[r->n_side] = t->job.cache || t->job.captions_upload[kind == CAPTIONS_SRT];
        r->n_side++;
    }
}

/* The engine's temporary file of this attempt, if it left one, goes (through
 * the commit thread, in order with the commits). */
static void discard_tmp(struct pipeline *p, struct task *t)
{
    if (!t->tmp_tag[0] || !p->committer)
        return;
    struct commit_req *r = xcalloc(1, sizeof(*r));
    task_paths(p, t, r, t->job.captions);
    r->path[0] = '\0';
    t->tmp_tag[0] = '\0';
    committer_submit(p->committer, r);
}

/* Hand the closed file to the commit thread; on_committed() goes on. */
static void commit_audio(struct pipeline *p, struct task *t)
{
    struct commit_req *r = xcalloc(1, sizeof(*r));
    task_paths(p, t, r, t->work.captions_written);
    r->arg = t;
    t->tmp_tag[0] = '\0';
    t->commit = r;
    t->phase = PH_COMMIT;
    t->mark_us = now_mono_us();
    list_append(p, t);
    committer_submit(p->committer, r);
}

static void on_committed(void *arg, struct commit_req *r)
{
    struct pipeline *p = arg;
    struct task *t = r->arg;
    if (!t) {
        free(r);
        return;
    }
    t->commit = NULL;
    list_remove(p, t);
    stage_end(t, ST_COMMIT);
    if (!r->ok) {
        task_fail(p, t, 1, "write_failed", "%s", r->err);
    } else {
        struct encoded *e = &t->work.enc;
        e->bytes = r->enc.bytes;
        memcpy(e->sha256, r->enc.sha256, sizeof(e->sha256));
        t->result = audio_result(t);
        if (r->n_side) {
            json_t *caps = json_object();
            for (int i = 0; i < r->n_side; i++) {
                size_t n = strlen(r->side_path[i]);
                json_object_set_new(caps, r->side_path[i] + n - 3, json_string(r->side_path[i]));
            }
            json_object_set_new(t->result, "captions", caps);
        }
        after_audio(p, t);
    }
    free(r);
    kick(p);
    maybe_stopped(p);
}

static void engine_died_on(struct pipeline *p, struct task *t)
{
    discard_tmp(p, t);
    t->crashes++;
    const char *code = t->work.code; /* crashed or timeout */
    if (t->crashes >= CRASH_LIMIT)
        task_fail(p, t, 0, code, "%s (%d times)", t->work.message, t->crashes);
    else
        task_fail(p, t, 1, code, "%s", t->work.message);
}

/* Every piece of text the engine cut for the http engine is valid UTF-8 (what
 * jansson takes for a request body). */
static int pieces_valid(const struct synth_work *w)
{
    for (int i = 0; i < w->n_pieces; i++) {
        json_t *s = json_string(w->pieces[i]);
        if (!s)
            return 0;
        json_decref(s);
    }
    return w->n_pieces > 0;
}

static void on_engine_done(void *arg, struct synth_work *w)
{
    struct pipeline *p = arg;
    struct task *t = p->current;
    p->current = NULL;
    set_idle(p);
    int64_t engine_us = now_mono_us() - t->mark_us;
    t->mark_us += engine_us;
    if (w->kind == SW_RENDER && !w->app) {
        stage_add(t, ST_ENCODE, engine_us);
    } else if (w->ok && !w->app && w->kind == SW_SPEAK && (w->synth_ms || w->encode_ms)) {
        /* espeak-ng encodes as it speaks: the engine's own split */
        stage_add(t, ST_SYNTHESIS, w->synth_ms * 1000);
        stage_add(t, ST_ENCODE, w->encode_ms * 1000);
    } else {
        stage_add(t, ST_SYNTHESIS, engine_us);
    }
    if (t->d->generation != amqp_link_generation(p->link)) {
        /* The connection it came on is gone and the broker has requeued it: the
         * next delivery rewrites the same file. */
        log_info("job %s: finished after its connection was lost; it will run again",
                 t->job.id);
        discard_tmp(p, t);
        count_done(p, t, 0);
        task_free(t);
    } else if (t->work.engine_died) {
        engine_died_on(p, t);
    } else if (!t->work.ok) {
        if (t->work.permanent)
            task_fail(p, t, 0, t->work.code, "%s", t->work.message);
        else
            task_fail(p, t, 1, t->work.code, "%s", t->work.message);
    } else if (t->work.app) {
        app_done(p, t);
    } else if (t->work.kind == SW_PREPARE && !t->work.cached && !pieces_valid(&t->work)) {
        /* The child is not trusted: a piece that is not UTF-8 could not become
         * a request body. */
        task_fail(p, t, 0, "synth_failed", "the engine returned text that is not UTF-8");
    } else if (t->work.kind == SW_PREPARE && !t->work.cached) {
        t->pieces = t->work.pieces;
        t->n_pieces = t->work.n_pieces;
        t->work.pieces = NULL;
        start_tts(p, t);
    } else {
        const struct encoded *e = &t->work.enc;
        log_debug("job %s: ok, %lld ms of audio, synth %lld ms, encode %lld ms", t->job.id,
                  (long long)e->duration_ms, (long long)t->work.synth_ms,
                  (long long)t->work.encode_ms);
        t->audio_ms = e->duration_ms;
        if (t->job.progress && t->work.kind == SW_RENDER)
            send_progress(p, t, t->tts_chars, t->tts_chars, e->duration_ms);
        commit_audio(p, t);
    }
    kick(p);
    maybe_stopped(p);
}

static void on_engine_ready(void *arg)
{
    kick(arg);
}

/* The espeak engine's progress, from the engine child. */
static void on_engine_progress(void *arg, struct synth_work *w, int64_t done, int64_t total,
                               int64_t audio_ms)
{
    struct pipeline *p = arg;
    struct task *t = p->current;
    if (t && &t->work == w)
        send_progress(p, t, done, total, audio_ms);
}

/* The next task for the engine: one whose audio is half made first
 * (PH_RENDER), else the oldest waiting. Stopping, only tasks already started go
 * on; maybe_stopped() hands the others back. */
static struct task *next_for_thread(struct pipeline *p)
{
    int stopping = p->stopping || atomic_load(&p->env.slot->state) == WS_STOPPING;
    struct task *first = NULL;
    for (struct task *t = p->queue_head; t; t = t->next) {
        if (net_busy(t) || (stopping && !t->started))
            continue;
        if (t->phase == PH_RENDER)
            return t;
        if (t->phase == PH_SYNTH && !first)
            first = t;
    }
    return first;
}

static void kick(struct pipeline *p)
{
    if (p->current || !p->engine || !engine_idle(p->engine))
        return;
    struct task *t = next_for_thread(p);
    if (!t)
        return;
    list_remove(p, t);
    p->current = t;
    t->started = 1;
    stage_end(t, ST_WAITING);
    slot_set_job(p->env.slot, t->job.id);
    atomic_store(&p->env.slot->state, WS_BUSY);
    struct synth_work *w = &t->work;
    w->ok = w->permanent = w->engine_died = w->timed_out = 0;
    w->code[0] = w->message[0] = '\0';
    w->job = &t->job;
    if (p->env.app) {
        w->app = p->env.app;
        w->app_state = p->env.app_state;
        w->app_job = (struct c2a_job){t->job.id, t->d->body, t->d->body_len,
                                      p->env.cfg->output_dir, t->attempts};
    } else if (t->phase == PH_RENDER) {
        w->kind = SW_RENDER;
        w->wavs = t->wavs;
        w->n_wavs = t->n_wavs;
        w->texts = t->job.captions ? t->pieces : NULL;
        w->n_texts = t->job.captions ? t->n_pieces : 0;
    } else {
        w->kind = t->job.engine == ENGINE_HTTP ? SW_PREPARE : SW_SPEAK;
        w->raw = t->raw;
        w->raw_len = t->raw_len;
        w->raw_type = t->raw_type;
        w->max_chars = p->env.cfg->max_chars;
        w->piece_max = (size_t)p->env.cfg->http_max_chars;
    }
    w->tmp_tag = NULL;
    if (!p->env.app && (w->kind != SW_PREPARE || t->job.cache)) {
        /* The worker's pid, which outlives the engine child (outfile_clean_stale()),
         * and a number no other attempt of this worker has. Preparing for the
         * http engine leaves files only on a cache hit. */
        snprintf(t->tmp_tag, sizeof(t->tmp_tag), "%d.%llu", (int)getpid(),
                 (unsigned long long)++p->tmp_seq);
        w->tmp_tag = t->tmp_tag;
    }
    engine_submit(p->engine, w);
}

static void enqueue(struct pipeline *p, struct task *t)
{
    t->p = p;
    t->mark_us = now_mono_us();
    list_append(p, t);
    if (t->phase == PH_FETCH) {
        struct fetch_req req = {.method = FETCH_GET, .url = t->job.content,
                                .accept = "text/plain, text/html, application/xhtml+xml, "
                                          "application/ssml+xml;q=0.9, */*;q=0.1",
                                .max_bytes = (size_t)p->env.cfg->fetch_max_bytes,
                                .timeout_s = p->env.cfg->fetch_timeout,
                                .follow_redirects = 1};
        net_start(t, &t->net, &req, on_fetched, t);
        return;
    }
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

static int job_needs_http(const struct job *job)
{
    return job->source == JOB_URL || job->upload_url || job->callback_url ||
           job->captions_upload[0] || job->captions_upload[1] || job->engine == ENGINE_HTTP;
}

/* HTTP support is loaded, and the worker's fetcher made, by the first job that
 * needs them. */
static int ensure_http(struct pipeline *p, char *err, size_t errlen)
{
    if (p->fetcher)
        return 0;
    if (!p->http)
        p->http = http_api_load(err, errlen);
    if (p->http)
        p->fetcher = p->http->fetcher_new(p->env.base, p->env.cfg, err, errlen);
    if (!p->fetcher) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Deliveries lost with their worker or connection before a job is dead-lettered. */
#define REDELIVERY_LIMIT 10
#define REDELIVERY_LIMIT_S "10"

static void on_delivery(void *arg, struct amqp_delivery *d)
{
    struct pipeline *p = arg;
    struct task *t = xcalloc(1, sizeof(*t));
    t->slot = p->env.slot;
    t->p = p;
    atomic_fetch_add(&t->slot->jobs_in_hand, 1);
    t->d = d;
    t->received_us = now_mono_us();
    t->attempts = d->attempts + 1;
    t->qi = slot_queue_index(t->slot, d->queue);
    if (d->timestamp && !d->attempts && !d->redelivered)
        stage_add(t, ST_QUEUED, (now_real_ms() - d->timestamp * 1000) * 1000);

    t->crashes = d->crashes;

    if (d->redelivered) {
        /* Its worker or connection went away while the job was in hand: that is
         * not the job's fault, so no attempt is charged (a crash of the engine on
         * the job is charged where it happens). The count of such redeliveries
         * travels in the message (republished to the tail of its queue), so that
         * a job that somehow takes its whole worker down every time still cannot
         * crash-loop the pool. */
        app_job_id(d, t->job.id, sizeof(t->job.id));
        t->attempts = d->attempts > 0 ? d->attempts : 1;
        if (d->redeliveries + 1 >= REDELIVERY_LIMIT) {
            count_done(p, t, 0);
            finish_dead(p, t, "crashed",
                        "its worker or connection was lost on every delivery (" 
                        "redelivered " REDELIVERY_LIMIT_S " times)");
            return;
        }
        log_info("job %s: redelivered after its worker or connection was lost (%d)",
                 t->job.id[0] ? t->job.id : "?", d->redeliveries + 1);
        requeue(p, t, d->queue, d->attempts, d->redeliveries + 1);
        return;
    }

    if (p->env.noop) {
        const char *id = d->message_id;
        strlcpy_c2a(t->job.id, job_safe_name(id, JOB_ID_MAX) ? id : "", sizeof(t->job.id));
        atomic_fetch_add(&p->env.slot->jobs_ok, 1);
        t->counted_ok = 1;
        log_job_end(p, t, "ok", NULL);
        publish_result(p, t, result_base(t, "ok"));
        count_done(p, t, 0);
        settle(p, t);
        return;
    }

    if (p->env.app) {
        app_job_id(d, t->job.id, sizeof(t->job.id));
        t->phase = PH_SYNTH;
        enqueue(p, t);
        return;
    }

    const struct config *cfg = p->env.cfg;
    struct job_defaults defs = {cfg->voice,      cfg->format,        cfg->sample_rate,
                                cfg->max_chars,  cfg->engine,        cfg->http_voice,
                                cfg->http_url[0] != '\0', cfg->keep_uploaded,
                                cfg->progress,
                                (strcmp(cfg->captions, "vtt") == 0    ? CAPTIONS_VTT
                                 : strcmp(cfg->captions, "srt") == 0  ? CAPTIONS_SRT
                                 : strcmp(cfg->captions, "both") == 0 ? CAPTIONS_VTT | CAPTIONS_SRT
                                                                      : 0),
                                cfg->loudness, cfg->true_peak, cfg->cache,
                                {NULL, cfg->metadata_artist, cfg->metadata_album,
                                 cfg->metadata_comment, NULL, cfg->metadata_language}};
    struct job_error err;
    if (job_parse(d->body, d->body_len, d->message_id, &defs, &t->job, &err) < 0) {
        count_done(p, t, 0);
        finish_dead(p, t, err.code, err.message);
        return;
    }
    if (job_needs_http(&t->job) && ensure_http(p, err.message, sizeof(err.message)) < 0) {
        count_done(p, t, 0);
        retry_later(p, t, "fetch_failed", err.message);
        return;
    }
    t->phase = t->job.source == JOB_URL ? PH_FETCH : PH_SYNTH;
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
            if (seq == t->dead_seq)
                t->dead_failed = 1;
            else if (seq != t->requeue_seq)
                t->result_refused = 1;
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
            task_free(t); /* cancels its transfer, if any */
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

static void on_broker_error(void *arg, const char *text)
{
    struct pipeline *p = arg;
    slot_set_broker_error(p->env.slot, text);
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
    struct pipeline *p = xcalloc(1, sizeof(*p));
    p->env = *env;
    slot_set_queues(env->slot, env->cfg->queues, env->cfg->n_queues);
    if (!env->noop) {
        /* The engine child cleans up temporary files of dead writers. Under the
         * built-in speech app it is sandboxed; an app from a shared object may
         * need what the sandbox refuses (the network). */
        struct engine_env ee = {env->base, env->cfg, env->slot, !env->app, !env->app,
                                env->app, env->app_state};
        struct engine_callbacks cb = {on_engine_done, on_engine_ready, on_engine_progress, p};
        p->engine = engine_start(&ee, &cb, err, errlen);
        if (!p->engine) {
            free(p);
            return NULL;
        }
        /* The commit thread after the first fork: a thread being created
         * allocates, and an allocator that is not fork-safe (ASan's in gcc 12)
         * would hand the child a lock it can never take. Later forks (engine
         * respawns) find the thread idle or in system calls: it never
         * allocates. */
        int flags = 0;
        if (env->cfg->output_fsync)
            flags = OUTFILE_FLUSH | (strcmp(env->cfg->page_cache, "drop") ? 0 : OUTFILE_DROP);
        if (!env->app &&
            !(p->committer = committer_new(env->base, flags, on_committed, p, err, errlen))) {
            engine_free(p->engine);
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
    struct amqp_callbacks cb = {on_delivery, on_confirm, on_connection, on_broker_error};
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
    return p->recycling;
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
    /* Jobs received but not started (their content may be half fetched) go back
     * to their queue unchanged; started ones finish. */
    struct task *t = p->queue_head;
    while (t) {
        struct task *next = t->next;
        if (!t->started) {
            net_cancel(t);
            list_remove(p, t);
            requeue(p, t, t->d->queue, t->d->attempts, t->d->redeliveries);
        }
        t = next;
    }
    if (p->current || p->n_confirms || p->queue_head)
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
    engine_free(p->engine); /* a job in hand is dropped: the broker gets it back */
    task_free(p->current);
    drop_queued(p);
    for (size_t i = 0; i < p->n_confirms; i++) {
        struct task *t = p->confirms[i].task;
        if (--t->pending == 0)
            task_free(t);
    }
    free(p->confirms);
    committer_free(p->committer); /* after the tasks: they let go of their requests */
    if (p->fetcher)
        p->http->fetcher_free(p->fetcher);
    amqp_link_free(p->link);
    if (p->stop_check)
        event_free(p->stop_check);
    event_free(p->forget_ev);
    free(p);
}

const struct pipeline_api c2a_pipeline_api = {pipeline_start, pipeline_tick, pipeline_stop,
                                              pipeline_recycle, pipeline_free};
