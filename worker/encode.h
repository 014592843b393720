/*
 * Encoding PCM to a file with libsndfile (wav, flac, ogg/vorbis, opus, mp3),
 * resampled with libsamplerate, written atomically: a temporary file in the
 * output directory, fsync, rename, fsync of the directory. CPU work: runs on the
 * synthesis thread, never on a worker's event loop.
 */
#ifndef C2A_ENCODE_H
#define C2A_ENCODE_H

#include <stddef.h>
#include <stdint.h>

struct pcm {
    int16_t *samples; /* mono */
    size_t frames;
    int rate;
};

struct encoded {
    char path[4096];
    int sample_rate;
    int channels;
    int64_t duration_ms;
    uint64_t bytes;
    char sha256[65];
};

/* "wav" -> ".wav" etc.; NULL for an unknown format. */
const char *encode_extension(const char *format);
/* The rate a file will have: `want` (0 = the input's), moved to the nearest rate
 * the format accepts (Opus: 8/12/16/24/48 kHz). */
int encode_output_rate(const char *format, int want, int input_rate);

/* Encode pcm to dir/name atomically. Returns 0, or -1 with a reason in err and
 * *permanent set when retrying cannot help (a rate the codec refuses) rather than
 * a transient failure (disk full). */
int encode_to_file(const struct pcm *pcm, const char *format, int out_rate, const char *dir,
                   const char *name, struct encoded *out, int *permanent, char *err,
                   size_t errlen);

#endif
