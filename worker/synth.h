/*
 * What the engine child does with one job: synthesis with espeak-ng (or the
 * preparation and rendering around the http engine, or an app's handle()), the
 * encoding and the file. espeak-ng keeps global state and can crash on some
 * inputs, so this runs only in the engine child (engine.h), one job at a time;
 * a worker's event loop only hands jobs over and receives results.
 */
#ifndef C2A_SYNTH_H
#define C2A_SYNTH_H

#include "c2a_app.h"
#include "encode.h"
#include "job.h"

#include <stdint.h>

struct event_base;
struct http_api;
struct synth;

/* What the thread does with a speech job. */
enum synth_kind {
    SW_SPEAK,   /* espeak-ng: (content ->) text -> audio file */
    SW_PREPARE, /* for the http engine: (content ->) text -> pieces of at most piece_max */
    SW_RENDER,  /* for the http engine: the server's WAV answers -> audio file */
};

struct wav_part {
    char *data;
    size_t len;
};

struct synth_work {
    enum synth_kind kind;
    /* in: fetched content of a url job, made speakable first (content.h);
     * NULL for text and ssml jobs */
    const char *raw;
    size_t raw_len;
    const char *raw_type;
    int max_chars;
    size_t piece_max;             /* SW_PREPARE */
    const struct http_api *http;  /* content functions, for url jobs and the http engine */
    const struct wav_part *wavs;  /* SW_RENDER */
    int n_wavs;
    /* in: an app's job (app set), or a speech job */
    const struct c2a_app *app;
    void *app_state;
    struct c2a_job app_job;
    struct c2a_result app_result; /* out, for an app's job */
    const struct job *job;
    const char *output_dir;
    /* the temporary file's tag (encoder_open()): the engine leaves the audio
     * closed in it, and the worker commits it (commit.h) */
    const char *tmp_tag;
    int max_duration_s;
    int cache_max_mb;     /* [output] cache_max_mb, for a job with cache */
    const char *http_scope; /* the http engine's server and model: part of its cache key */
    /* the http engine's cache key (hex), found missing by SW_PREPARE and kept by
     * the worker for SW_RENDER, which stores the files under it; "" for none */
    char cache_key[65];
    /* SW_RENDER of a job with captions: each piece's text, a cue each */
    char *const *texts;
    int n_texts;
    /* in the engine child: called at most once a second while a job that asked
     * for progress is spoken, and once at its end (done == total) */
    void (*progress)(void *ctx, int64_t done_chars, int64_t total_chars, int64_t audio_ms);
    void *progress_ctx;
    /* out */
    int ok;
    int engine_died;      /* the engine child died on this job (crash, or killed at job_timeout) */
    int timed_out;        /* ... because it ran past job_timeout */
    int permanent;        /* on failure: retrying cannot help */
    char code[32];        /* unknown_voice, too_large, synth_failed, ... */
    char message[256];
    struct encoded enc;
    char *marks_json;     /* "[{...}]" when the job asked for marks; malloc'd */
    int captions_written; /* CAPTIONS_* files left beside the audio's temporary file */
    int levelled;         /* loudness was applied: what was measured after */
    int cached;           /* the files came from the cache (cache.h) */
    double loudness_lufs, true_peak_dbtp;
    char *spoken_text;    /* the text spoken, when the job asked (include_text); malloc'd */
    char **pieces;        /* SW_PREPARE: malloc'd, content_free_pieces() */
    int n_pieces;
    int64_t synth_ms, encode_ms;
};

struct synth;

/* The speech engine, in c2a-engine.so (engine_api.h), which only an engine
 * child loads: initialize espeak-ng; NULL with a reason in err when it cannot
 * start. allow_mbrola: accept mb/ voices. */
struct synth *synth_init(int allow_mbrola, char *err, size_t errlen);
/* Run one speech job; the outcome is in w's out fields. */
void synth_run(struct synth *s, struct synth_work *w);
void synth_free(struct synth *s);

/* Run one job of an app (w->app): its handle(), in the engine child. */
void synth_run_app(struct synth_work *w);

/* Free a malloc'd array of n malloc'd strings (pieces). */
void synth_free_pieces(char **pieces, int n);
/* The work's results (out fields) freed and cleared. */
void synth_work_clear_out(struct synth_work *w);

#endif
