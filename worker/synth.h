/*
 * The synthesis thread of a worker. espeak-ng keeps global state, so each worker
 * process has exactly one thread that synthesizes, one job at a time; encoding
 * and writing the file happen there too, so the worker's event loop only hands
 * jobs over and receives results.
 *
 * synth_submit() and the done callback are called on the loop's thread only.
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
    int max_duration_s;
    /* out */
    int ok;
    int permanent;        /* on failure: retrying cannot help */
    char code[32];        /* unknown_voice, too_large, synth_failed, ... */
    char message[256];
    struct encoded enc;
    char *marks_json;     /* "[{...}]" when the job asked for marks; malloc'd */
    char *spoken_text;    /* the text spoken, when the job asked (include_text); malloc'd */
    char **pieces;        /* SW_PREPARE: malloc'd, content_free_pieces() */
    int n_pieces;
    int64_t synth_ms, encode_ms;
};

typedef void (*synth_done_fn)(void *arg, struct synth_work *w);

/* Start the thread and, with espeak set, initialize espeak-ng in it; NULL with a
 * reason in err if espeak-ng cannot start (a boot failure). */
struct synth *synth_start(struct event_base *base, int espeak, synth_done_fn done, void *arg,
                          char *err, size_t errlen);
/* Hand over one job; the thread must be idle (one at a time). */
void synth_submit(struct synth *s, struct synth_work *w);
/* Stop the thread after its current job; the done callback is not called again. */
void synth_stop(struct synth *s);

#endif
