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

/* Streaming: open a temporary file in dir for dir/name, write mono 16-bit
 * blocks of in_rate audio as they come (resampled to out_rate), then finish
 * (close, fsync, hash, rename) or abort (remove the temporary file). Memory
 * stays bounded whatever the length of the audio. Errors come with a reason in
 * err and *permanent set when retrying cannot help (a rate the codec refuses)
 * rather than a transient failure (disk full). */
struct encoder;
struct encoder *encoder_open(const char *format, int in_rate, int out_rate, const char *dir,
                             const char *name, int *permanent, char *err, size_t errlen);
int encoder_write(struct encoder *e, const int16_t *samples, size_t frames, char *err,
                  size_t errlen);
int encoder_finish(struct encoder *e, struct encoded *out, char *err, size_t errlen);
void encoder_abort(struct encoder *e);

/* The file name of a job's audio: its output field, else <id>.<ext>. */
struct job;
void encode_job_name(const struct job *job, char *out, size_t len);

/* Temporary files live in <dir>/.c2a-tmp/<pid>.<name> until their rename. */
#define ENCODE_TMP_DIR ".c2a-tmp"
/* Remove the temporary files of processes that no longer exist (a worker killed
 * while writing). Called by a worker at boot. */
void encode_clean_stale(const char *dir);

/* The whole of pcm at once, through the functions above. */
int encode_to_file(const struct pcm *pcm, const char *format, int out_rate, const char *dir,
                   const char *name, struct encoded *out, int *permanent, char *err,
                   size_t errlen);

#endif
