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

/* Per work queue, for /metrics' queue labels: a worker names its queues in its
 * slot once at boot (before it takes a job), then counts each attempt's end. */
#define SB_QUEUES 16     /* CONFIG_MAX_QUEUES */
#define SB_QUEUE_LEN 256 /* an AMQP short string */

/* How an attempt ended: ok, failed for good (dead-lettered), or retried later. */
enum job_outcome { JO_OK, JO_FAILED, JO_RETRIED, JO_COUNT };
extern const char *const job_outcome_names[JO_COUNT];

/* Error codes counted by name; any other (an app's own) counts as "other". */
#define SB_CODES 14
extern const char *const sb_error_codes[SB_CODES];

/* Where a job's time goes, observed per attempt: "queued" in the broker (from the
 * message's AMQP timestamp, when the producer set one), "waiting" in the worker
 * for the engine, then each step it went through. */
enum job_stage { ST_QUEUED, ST_WAITING, ST_FETCH, ST_SYNTHESIS, ST_TTS, ST_ENCODE, ST_COMMIT,
                 ST_UPLOAD, ST_CALLBACK, ST_COUNT };
extern const char *const job_stage_names[ST_COUNT];

struct sb_queue {
    char name[SB_QUEUE_LEN];
    atomic_uint_least64_t outcomes[JO_COUNT];
    atomic_uint_least64_t errors[SB_CODES]; /* failed and retried attempts, by code */
    struct sb_hist_job seconds[JO_COUNT];  /* delivery to outcome */
};

/* A failed attempt, for the status page's "recent failures": each worker keeps
 * its last SB_FAILURES in its slot, and the master gathers them. */
#define SB_FAILURES 8
struct failure {
    int64_t time_ms; /* since the epoch */
    int retried;     /* 1: sent to a delay queue; 0: dead-lettered */
    char queue[128];
    char id[128];
    char code[32];
    char message[256];
};
struct sb_failure {
    atomic_uint seq; /* odd while written */
    struct failure f;
};

/* The same figures as plain numbers, summed by the master (live slots and the
 * workers that have exited). */
struct hist_sum {
    uint64_t le[HIST_JOB_BUCKETS + 1];
    uint64_t sum_us;
};
struct queue_totals {
    char name[SB_QUEUE_LEN];
    uint64_t outcomes[JO_COUNT];
    uint64_t errors[SB_CODES];
    struct hist_sum seconds[JO_COUNT];
};

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
    atomic_uint_least64_t cache_hits, cache_misses; /* jobs with cache: reused or made */
    atomic_uint seq; /* odd while current_job is being written */
    char current_job[SCOREBOARD_JOB_LEN];
    atomic_uint err_seq; /* the same for broker_error */
    /* Why the worker is not connected to a broker ("" when it is): the last
     * connect, TLS, login or queue declaration failure. */
    char broker_error[SCOREBOARD_ERR_LEN];
    struct sb_hist_job job_seconds;
    struct sb_hist_audio audio_seconds;
    struct sb_hist_job stages[ST_COUNT];
    atomic_int nqueues; /* set after the names: a reader sees whole names */
    struct sb_queue queues[SB_QUEUES];
    atomic_uint_least64_t failures_written; /* failure n is in failures[n % SB_FAILURES] */
    struct sb_failure failures[SB_FAILURES];
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
/* Worker, at boot: its work queues, in the order of the configuration. */
void slot_set_queues(struct sb_slot *slot, char *const *names, int n);
/* The index of a queue named by slot_set_queues(), -1 if none. */
int slot_queue_index(const struct sb_slot *slot, const char *name);
/* Worker: an attempt on queue qi (-1: not counted) ended; code is the error's
 * (NULL for ok). */
void slot_count_outcome(struct sb_slot *slot, int qi, enum job_outcome o, const char *code,
                        uint64_t elapsed_us);
void slot_observe_stage(struct sb_slot *slot, enum job_stage st, uint64_t us);
/* Worker: an attempt failed (texts are cut to fit). */
void slot_add_failure(struct sb_slot *slot, const char *queue, const char *id, const char *code,
                      const char *message, int retried);
/* Reader: failure number n (from 0) into out; -1 when it is not written yet or
 * was written over since. */
int slot_get_failure(struct sb_slot *slot, uint64_t n, struct failure *out);
int sb_error_code_index(const char *code);

/* Master: add a slot's queue qi, or its stages, to plain totals. */
void slot_queue_totals(struct sb_slot *slot, int qi, struct queue_totals *into);
void slot_stage_totals(struct sb_slot *slot, struct hist_sum into[ST_COUNT]);
/* Master: the totals named q in list[*n] (added, zeroed, while *n < cap);
 * NULL when the list is full. */
struct queue_totals *queue_totals_find(struct queue_totals *list, int *n, int cap,
                                       const char *q);

/* Writer side (the slot's worker): set or clear (id == NULL) the current job. */
void slot_set_job(struct sb_slot *slot, const char *id);
/* Reader side (any process): copy the current job id into buf ("" when none). */
void slot_get_job(struct sb_slot *slot, char *buf, size_t len);
/* The same for the worker's broker error. */
void slot_set_broker_error(struct sb_slot *slot, const char *text);
void slot_get_broker_error(struct sb_slot *slot, char *buf, size_t len);

#endif
