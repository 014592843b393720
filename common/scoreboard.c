#include "scoreboard.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

const double hist_job_bounds[HIST_JOB_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,     2.5,  5,     10,   30,  60,  300};
const double hist_audio_bounds[HIST_AUDIO_BUCKETS] = {1,   2,   5,    10,   30,  60,
                                                      120, 300, 600, 1800, 3600};

const char *const job_outcome_names[JO_COUNT] = {"ok", "failed", "retried"};
const char *const sb_error_codes[SB_CODES] = {
    "bad_json",      "bad_field",    "too_large",    "unknown_voice",   "fetch_failed",
    "synth_failed",  "write_failed", "upload_failed", "callback_failed", "reply_failed",
    "app_failed",    "timeout",      "crashed",      "other"};
const char *const job_stage_names[ST_COUNT] = {"queued", "waiting", "fetch",  "synthesis", "tts",
                                               "encode", "commit",  "upload", "callback"};

static void hist_observe(struct sb_hist_job *h, uint64_t us)
{
    double secs = (double)us / 1e6;
    for (int i = 0; i < HIST_JOB_BUCKETS; i++)
        if (secs <= hist_job_bounds[i])
            atomic_fetch_add_explicit(&h->le[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->le[HIST_JOB_BUCKETS], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

static void hist_add(struct sb_hist_job *h, struct hist_sum *into)
{
    for (int k = 0; k <= HIST_JOB_BUCKETS; k++)
        into->le[k] += atomic_load_explicit(&h->le[k], memory_order_relaxed);
    into->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

int sb_error_code_index(const char *code)
{
    for (int i = 0; i < SB_CODES - 1; i++)
        if (strcmp(code, sb_error_codes[i]) == 0)
            return i;
    return SB_CODES - 1;
}

void slot_set_queues(struct sb_slot *slot, char *const *names, int n)
{
    if (n > SB_QUEUES)
        n = SB_QUEUES;
    for (int i = 0; i < n; i++)
        strlcpy_c2a(slot->queues[i].name, names[i], sizeof(slot->queues[i].name));
    atomic_store_explicit(&slot->nqueues, n, memory_order_release);
}

int slot_queue_index(const struct sb_slot *slot, const char *name)
{
    int n = atomic_load_explicit(&slot->nqueues, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(slot->queues[i].name, name) == 0)
            return i;
    return -1;
}

void slot_count_outcome(struct sb_slot *slot, int qi, enum job_outcome o, const char *code,
                        uint64_t elapsed_us)
{
    if (qi < 0 || qi >= SB_QUEUES)
        return;
    struct sb_queue *q = &slot->queues[qi];
    atomic_fetch_add_explicit(&q->outcomes[o], 1, memory_order_relaxed);
    if (code)
        atomic_fetch_add_explicit(&q->errors[sb_error_code_index(code)], 1,
                                  memory_order_relaxed);
    hist_observe(&q->seconds[o], elapsed_us);
}

void slot_observe_stage(struct sb_slot *slot, enum job_stage st, uint64_t us)
{
    hist_observe(&slot->stages[st], us);
}

void slot_add_failure(struct sb_slot *slot, const char *queue, const char *id, const char *code,
                      const char *message, int retried)
{
    uint64_t n = atomic_load_explicit(&slot->failures_written, memory_order_relaxed);
    struct sb_failure *e = &slot->failures[n % SB_FAILURES];
    unsigned seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 1, memory_order_release);
    atomic_thread_fence(memory_order_release);
    e->f.time_ms = now_real_ms();
    e->f.retried = retried;
    strlcpy_c2a(e->f.queue, queue, sizeof(e->f.queue));
    strlcpy_c2a(e->f.id, id, sizeof(e->f.id));
    strlcpy_c2a(e->f.code, code, sizeof(e->f.code));
    strlcpy_c2a(e->f.message, message, sizeof(e->f.message));
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    atomic_store_explicit(&slot->failures_written, n + 1, memory_order_release);
}

int slot_get_failure(struct sb_slot *slot, uint64_t n, struct failure *out)
{
    struct sb_failure *e = &slot->failures[n % SB_FAILURES];
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t written = atomic_load_explicit(&slot->failures_written, memory_order_acquire);
        if (n >= written || written - n > SB_FAILURES)
            return -1;
        unsigned a = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (a & 1)
            continue;
        atomic_thread_fence(memory_order_acquire);
        memcpy(out, &e->f, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_acquire) != a)
            continue;
        /* Still failure n, not one written over it meanwhile. */
        if (atomic_load_explicit(&slot->failures_written, memory_order_acquire) - n > SB_FAILURES)
            return -1;
        out->queue[sizeof(out->queue) - 1] = out->id[sizeof(out->id) - 1] = '\0';
        out->code[sizeof(out->code) - 1] = out->message[sizeof(out->message) - 1] = '\0';
        return 0;
    }
    return -1;
}

void slot_queue_totals(struct sb_slot *slot, int qi, struct queue_totals *into)
{
    struct sb_queue *q = &slot->queues[qi];
    for (int o = 0; o < JO_COUNT; o++) {
        into->outcomes[o] += atomic_load_explicit(&q->outcomes[o], memory_order_relaxed);
        hist_add(&q->seconds[o], &into->seconds[o]);
    }
    for (int c = 0; c < SB_CODES; c++)
        into->errors[c] += atomic_load_explicit(&q->errors[c], memory_order_relaxed);
}

void slot_stage_totals(struct sb_slot *slot, struct hist_sum into[ST_COUNT])
{
    for (int st = 0; st < ST_COUNT; st++)
        hist_add(&slot->stages[st], &into[st]);
}

struct queue_totals *queue_totals_find(struct queue_totals *list, int *n, int cap,
                                       const char *q)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(list[i].name, q) == 0)
            return &list[i];
    if (*n >= cap)
        return NULL;
    struct queue_totals *t = &list[(*n)++];
    memset(t, 0, sizeof(*t));
    strlcpy_c2a(t->name, q, sizeof(t->name));
    return t;
}

void slot_observe_job(struct sb_slot *slot, uint64_t elapsed_us, uint64_t audio_ms)
{
    hist_observe(&slot->job_seconds, elapsed_us);
    if (!audio_ms)
        return;
    double asecs = (double)audio_ms / 1e3;
    for (int i = 0; i < HIST_AUDIO_BUCKETS; i++)
        if (asecs <= hist_audio_bounds[i])
            atomic_fetch_add(&slot->audio_seconds.le[i], 1);
    atomic_fetch_add(&slot->audio_seconds.le[HIST_AUDIO_BUCKETS], 1);
    atomic_fetch_add(&slot->audio_seconds.sum_ms, audio_ms);
}

static size_t scoreboard_size(unsigned nslots)
{
    return sizeof(struct scoreboard) + (size_t)nslots * sizeof(struct sb_slot);
}

struct scoreboard *scoreboard_create(unsigned nslots)
{
    size_t size = scoreboard_size(nslots);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("scoreboard: mmap of %zu bytes failed: %s", size, strerror(errno));
        return NULL;
    }
    struct scoreboard *sb = p; /* anonymous mappings come zeroed: every slot is WS_FREE */
    sb->nslots = nslots;
    return sb;
}

void scoreboard_destroy(struct scoreboard *sb)
{
    if (sb)
        munmap(sb, scoreboard_size(sb->nslots));
}

int scoreboard_acquire(struct scoreboard *sb)
{
    for (unsigned i = 0; i < sb->nslots; i++) {
        struct sb_slot *s = &sb->slots[i];
        if (atomic_load(&s->state) != WS_FREE)
            continue;
        atomic_store(&s->pid, 0);
        atomic_store(&s->broker_connected, 0);
        atomic_store(&s->started_real_ms, now_real_ms());
        atomic_store(&s->heartbeat_mono_ms, now_mono_ms());
        atomic_store(&s->job_started_mono_ms, 0);
        atomic_store(&s->jobs_ok, 0);
        atomic_store(&s->jobs_failed, 0);
        atomic_store(&s->jobs_retried, 0);
        atomic_store(&s->jobs_dead, 0);
        atomic_store(&s->rss_kb, 0);
        atomic_store(&s->jobs_in_hand, 0);
        atomic_store(&s->transfers, 0);
        atomic_store(&s->engine_pid, 0);
        atomic_store(&s->engine_rss_kb, 0);
        atomic_store(&s->engine_crashes, 0);
        atomic_store(&s->engine_timeouts, 0);
        atomic_store(&s->recycled_for_memory, 0);
        atomic_store(&s->cache_hits, 0);
        atomic_store(&s->cache_misses, 0);
        s->current_job[0] = '\0';
        atomic_store(&s->seq, 0);
        s->broker_error[0] = '\0';
        atomic_store(&s->err_seq, 0);
        memset(&s->job_seconds, 0, sizeof(s->job_seconds));
        memset(&s->audio_seconds, 0, sizeof(s->audio_seconds));
        memset(&s->stages, 0, sizeof(s->stages));
        atomic_store(&s->nqueues, 0);
        memset(&s->queues, 0, sizeof(s->queues));
        atomic_store(&s->failures_written, 0);
        memset(&s->failures, 0, sizeof(s->failures));
        atomic_store(&s->state, WS_BOOTING);
        return (int)i;
    }
    return -1;
}

void scoreboard_release(struct scoreboard *sb, int idx)
{
    atomic_store(&sb->slots[idx].pid, 0);
    atomic_store(&sb->slots[idx].state, WS_FREE);
}

const char *worker_state_name(enum worker_state st)
{
    static const char *const names[] = {"free", "booting", "idle", "busy", "paused", "stopping"};
    return (unsigned)st < ARRAY_LEN(names) ? names[st] : "unknown";
}

/* One writer per text field; readers retry while a write is under way. */
static void seq_write(atomic_uint *seq, char *dst, size_t size, const char *text)
{
    unsigned n = atomic_load_explicit(seq, memory_order_relaxed);
    atomic_store_explicit(seq, n + 1, memory_order_release);
    atomic_thread_fence(memory_order_release);
    strlcpy_c2a(dst, text, size);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(seq, n + 2, memory_order_release);
}

static void seq_read(atomic_uint *seq, const char *src, size_t size, char *buf, size_t len)
{
    char tmp[SCOREBOARD_ERR_LEN > SCOREBOARD_JOB_LEN ? SCOREBOARD_ERR_LEN : SCOREBOARD_JOB_LEN];
    if (size > sizeof(tmp))
        size = sizeof(tmp);
    for (int tries = 0; tries < 1000; tries++) {
        unsigned a = atomic_load_explicit(seq, memory_order_acquire);
        if (a & 1)
            continue;
        atomic_thread_fence(memory_order_acquire);
        memcpy(tmp, src, size);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(seq, memory_order_acquire) != a)
            continue;
        tmp[size - 1] = '\0';
        strlcpy_c2a(buf, tmp, len);
        return;
    }
    strlcpy_c2a(buf, "", len); /* a writer that never settles: show nothing */
}

void slot_set_job(struct sb_slot *slot, const char *id)
{
    seq_write(&slot->seq, slot->current_job, sizeof(slot->current_job), id ? id : "");
    atomic_store(&slot->job_started_mono_ms, id ? now_mono_ms() : 0);
}

void slot_get_job(struct sb_slot *slot, char *buf, size_t len)
{
    seq_read(&slot->seq, slot->current_job, sizeof(slot->current_job), buf, len);
}

void slot_set_broker_error(struct sb_slot *slot, const char *text)
{
    seq_write(&slot->err_seq, slot->broker_error, sizeof(slot->broker_error), text ? text : "");
}

void slot_get_broker_error(struct sb_slot *slot, char *buf, size_t len)
{
    seq_read(&slot->err_seq, slot->broker_error, sizeof(slot->broker_error), buf, len);
}
