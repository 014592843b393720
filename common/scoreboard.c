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

void slot_observe_job(struct sb_slot *slot, uint64_t elapsed_us, uint64_t audio_ms)
{
    double secs = (double)elapsed_us / 1e6;
    for (int i = 0; i < HIST_JOB_BUCKETS; i++)
        if (secs <= hist_job_bounds[i])
            atomic_fetch_add(&slot->job_seconds.le[i], 1);
    atomic_fetch_add(&slot->job_seconds.le[HIST_JOB_BUCKETS], 1);
    atomic_fetch_add(&slot->job_seconds.sum_us, elapsed_us);
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
        s->current_job[0] = '\0';
        atomic_store(&s->seq, 0);
        s->broker_error[0] = '\0';
        atomic_store(&s->err_seq, 0);
        memset(&s->job_seconds, 0, sizeof(s->job_seconds));
        memset(&s->audio_seconds, 0, sizeof(s->audio_seconds));
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
