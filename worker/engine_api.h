/*
 * The speech engine as a shared object: espeak-ng, libsndfile and its codecs,
 * libsamplerate (synth_espeak.c, encode.c, normalize.c, voices.c,
 * tts_render.c) are in c2a-engine.so, which only an engine child loads, after
 * its fork. The worker itself (its loop, AMQP, the commit thread) maps none of
 * them: about 3 MB of resident memory less per worker, and nothing of the
 * codecs in the process that holds the broker connection. The child loads
 * c2a-noaudio.so first, so that espeak-ng's sound output (PulseAudio, ALSA,
 * X11, which we never use) is not loaded at all.
 */
#ifndef C2A_ENGINE_API_H
#define C2A_ENGINE_API_H

#include "synth.h"

/* Bumped with every change to the structures both sides read (synth.h, job.h):
 * 3 for the language tag (JOB_TAGS) and the http engine's cache key. */
#define ENGINE_API_VERSION 3
#define ENGINE_API_SYMBOL "c2a_engine_api"
#define ENGINE_LIB "c2a-engine.so"
#define NOAUDIO_LIB "c2a-noaudio.so" /* loaded first: see noaudio.c */

struct engine_api {
    int version; /* ENGINE_API_VERSION: an object from another build is refused */
    struct synth *(*synth_init)(int allow_mbrola, char *err, size_t errlen);
    void (*synth_run)(struct synth *s, struct synth_work *w);
    void (*synth_free)(struct synth *s);
    /* For `c2a-worker -t`: is the default voice installed (voices.h)? 0, or -1
     * with the reason in err. */
    int (*voice_check)(struct synth *s, const char *voice, char *err, size_t errlen);
};

extern const struct engine_api c2a_engine_api;

#endif
