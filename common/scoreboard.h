/*
 * The scoreboard: one shared, anonymous memory mapping made by the master before
 * it forks, with one slot per worker. A worker writes only its own slot (state,
 * heartbeat, counters, current job); the master reads every slot and owns slot
 * allocation. Numeric fields are C11 atomics; the current job id, which is text,
 * is guarded by a per-slot sequence counter (a seqlock: one writer, lock-free
 * readers that retry).
 *
 * The header carries the master's requests to all workers (paused) that workers
 * poll on their heartbeat timer.
 */
#ifndef C2A_SCOREBOARD_H
#define C2A_SCOREBOARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a full pool plus a full replacement pool during a reload. */
#define SCOREBOARD_SLOTS 512
#define SCOREBOARD_JOB_LEN 128
#define SCOREBOARD_ERR_LEN 512

enum worker_state { WS_FREE = 0, WS_BOOTING, WS_IDLE, WS_BUSY, WS_PAUSED, WS_STOPPING };

/* Histograms for /metrics: cumulative counts per upper bound, then +Inf. */
#define HIST_JOB_BUCKETS 14   /* job duration, seconds */
#define HIST_AUDIO_BUCKETS 11 /* audio produced per job, seconds */

struct sb_hist_job {
    atomic_uint_least64_t le[HIST_JOB_BUCKETS + 1]; /* [HIST_JOB_BUCKETS] = +Inf */
    atomic_uint_least64_t sum_us;
};

struct sb_hist_audio {
    atomic_uint_least64_t le[HIST_AUDIO_BUCKETS + 1];
    atomic_uint_least64_t sum_ms;
};

extern const double hist_job_bounds[HIST_JOB_BUCKETS];
extern const double hist_audio_bounds[HIST_AUDIO_BUCKETS];

struct sb_slot {
    atomic_int pid;
    atomic_int state;           /* enum worker_state */
    atomic_int broker_connected;
    atomic_int_least64_t started_real_ms;
    atomic_int_least64_t heartbeat_mono_ms;
    atomic_int_least64_t job_started_mono_ms; /* 0 when no job */
    atomic_uint_least64_t jobs_ok;
    atomic_uint_least64_t jobs_failed;
    atomic_uint_least64_t jobs_retried;
    atomic_uint_least64_t jobs_dead;
    atomic_uint_least64_t rss_kb;
    atomic_uint jobs_in_hand; /* received and not yet acked or handed back */
    atomic_uint transfers;    /* HTTP transfers in flight (fetch, TTS, upload, callback) */
    atomic_int engine_pid;    /* the worker's engine child, 0 while there is none */
    atomic_uint_least64_t engine_rss_kb;
    atomic_uint_least64_t engine_crashes;  /* engine children that died on a job */
    atomic_uint_least64_t engine_timeouts; /* ... killed because a job ran past job_timeout */
    atomic_int recycled_for_memory; /* it stops itself because of max_rss */
    atomic_uint seq; /* odd while current_job is being written */
    char current_job[SCOREBOARD_JOB_LEN];
    atomic_uint err_seq; /* the same for broker_error */
    /* Why the worker is not connected to a broker ("" when it is): the last
     * connect, TLS, login or queue declaration failure. */
    char broker_error[SCOREBOARD_ERR_LEN];
    struct sb_hist_job job_seconds;
    struct sb_hist_audio audio_seconds;
};

struct scoreboard {
    atomic_int paused; /* set by the master: workers stop consuming */
    unsigned nslots;
    struct sb_slot slots[];
};

/* Map a scoreboard of nslots slots. NULL on failure (logged). Master only. */
struct scoreboard *scoreboard_create(unsigned nslots);
void scoreboard_destroy(struct scoreboard *sb);

/* Take a free slot for a new worker and reset it; -1 when full. Master only. */
int scoreboard_acquire(struct scoreboard *sb);
/* Return a slot after its worker has been reaped. Master only. */
void scoreboard_release(struct scoreboard *sb, int idx);

static inline struct sb_slot *scoreboard_slot(struct scoreboard *sb, int idx)
{
    return &sb->slots[idx];
}

const char *worker_state_name(enum worker_state st);

/* Worker: one job finished after elapsed_us; audio_ms of audio (0 for none). */
void slot_observe_job(struct sb_slot *slot, uint64_t elapsed_us, uint64_t audio_ms);

/* Writer side (the slot's worker): set or clear (id == NULL) the current job. */
void slot_set_job(struct sb_slot *slot, const char *id);
/* Reader side (any process): copy the current job id into buf ("" when none). */
void slot_get_job(struct sb_slot *slot, char *buf, size_t len);
/* The same for the worker's broker error. */
void slot_set_broker_error(struct sb_slot *slot, const char *text);
void slot_get_broker_error(struct sb_slot *slot, char *buf, size_t len);

#endif
