/*
 * The http engine: an OpenAI-style speech server (`POST {http_url}/audio/speech`
 * with {"model", "input", "voice", "response_format": "wav", "speed"}). The
 * requests run on the worker's loop (fetch.c), one piece of text at a time; the
 * WAV answers are decoded and re-encoded in the engine child (tts_render.c, in
 * c2a-engine.so), so the http engine gives every format and sample rate the
 * espeak engine does.
 */
#ifndef C2A_TTS_HTTP_H
#define C2A_TTS_HTTP_H

#include "outfile.h"
#include "job.h"
#include "synth.h"

/* The request body for one piece of text (malloc'd JSON). The job's rate (words
 * a minute, espeak's 175 being normal) becomes speed, clamped to 0.25..4. */
char *tts_http_request(const char *model, const char *voice, int rate, const char *input);

/* The length in ms of a WAV answer, for progress messages, from its header
 * alone (the data chunk's size, or the bytes after it when a streaming server
 * left the size unknown: 0 or past the end, over the fmt chunk's byte rate); 0 when it cannot
 * tell. The answer is not trusted: only the engine child decodes it. */
int64_t tts_wav_ms(const char *wav, size_t len);

/* Decode the parts (WAV, any channel count: mixed down to mono) and encode them,
 * in order, into one file for the job, left closed in its temporary file (tag:
 * encoder_open()) for the worker to commit. 0, or -1 with an error code (32
 * bytes: synth_failed, too_large, write_failed, bad_field), a reason and
 * *permanent. */
/* With the job's captions asked and texts[i] the text of parts[i] (n_texts ==
 * n), a cue per part is written beside the audio (*captions_written). */
struct render_levels {
    int on; /* the job's loudness was applied; as measured after: */
    double lufs, dbtp;
};
int tts_http_render(const struct wav_part *parts, int n, char *const *texts, int n_texts,
                    int *captions_written, const struct job *job, const char *dir,
                    const char *tag, int max_duration_s, struct encoded *out,
                    struct render_levels *levels, int *permanent, char *code, char *err,
                    size_t errlen);

#endif
