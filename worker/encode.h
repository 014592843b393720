/*
 * Encoding PCM to a file with libsndfile (wav, flac, ogg/vorbis, opus, mp3),
 * resampled with libsamplerate, written atomically: a temporary file in the
 * output directory, fsync, rename, fsync of the directory. The encoding runs in
 * the engine child, from c2a-engine.so (engine_api.h); the commit (outfile.h:
 * hash, fsync, rename, the directory's fsync) in the worker's commit thread
 * (commit.h), never on a worker's event loop.
 */
#ifndef C2A_ENCODE_H
#define C2A_ENCODE_H

#include "outfile.h"

#include <stddef.h>
#include <stdint.h>

struct pcm {
    int16_t *samples; /* mono */
    size_t frames;
    int rate;
};

/* "wav" -> ".wav" etc.; NULL for an unknown format. */
const char *encode_extension(const char *format);
/* Whether the format's codec is lossy (ogg, opus, mp3). */
int encode_lossy(const char *format);
/* The rate a file will have: `want` (0 = the input's), moved to the nearest rate
 * the format accepts (Opus: 8/12/16/24/48 kHz). */
int encode_output_rate(const char *format, int want, int input_rate);

/* Streaming: open a temporary file in dir for dir/name, write mono 16-bit
 * blocks of in_rate audio as they come (resampled to out_rate), then close it
 * (the audio is complete in the temporary file) and commit it (outfile.h:
 * hash, fsync, rename), or abort (remove the temporary file). Memory stays bounded whatever
 * the length of the audio; libsndfile's many small writes reach the file in
 * blocks of ENCODE_WRITE_BLOCK. Errors come with a reason in err and
 * *permanent set when retrying cannot help (a rate the codec refuses) rather
 * than a transient failure (disk full).
 *
 * The temporary file is <dir>/.c2a-tmp/<tag>.<name>; tag NULL means the
 * process id. It must start with the id of a process that lives as long as the
 * file is wanted (outfile_clean_stale()). */
#define ENCODE_WRITE_BLOCK (64 * 1024)
struct encoder;
struct encoder *encoder_open(const char *format, int in_rate, int out_rate, const char *dir,
                             const char *name, const char *tag, int *permanent, char *err,
                             size_t errlen);
/* Tags (title, artist, album, comment, date, language: enum job_tag's order;
 * NULL for none) as the format's own: LIST INFO in WAV, Vorbis comments in
 * FLAC, Ogg Vorbis and Opus, ID3 in MP3; the language through
 * encoder_set_language(). Before the first write. */
int encoder_set_tags(struct encoder *e, char *const *tags, char *err, size_t errlen);
/* The language (tags.h: 1 to 35 of A-Z, a-z, 0-9 and -, as "en-US"), which
 * libsndfile cannot write: encoder_close() adds it to the closed file as the
 * format's own tag (tags_add_language()). Before the first write, like the
 * tags. -1 with a reason in err for a string tags_check_language() refuses. */
int encoder_set_language(struct encoder *e, const char *lang, char *err, size_t errlen);
int encoder_write(struct encoder *e, const int16_t *samples, size_t frames, char *err,
                  size_t errlen);
/* Close and free the encoder: out gets the final path, the rate, channels,
 * duration and the file's length (with the language tag, if one was set,
 * added after libsndfile closed the file); the temporary file is complete but
 * neither flushed, hashed nor renamed (outfile_commit()). On failure (adding
 * the language tag too) it is removed: -2 when the language tag could not be
 * written into this file (tags_add_language(): retrying cannot help), else -1. */
int encoder_close(struct encoder *e, struct encoded *out, char *err, size_t errlen);
/* Close and commit at once (outfile_commit() with flags, OUTFILE_FLUSH at
 * least), the directory flushed too; frees the encoder. */
int encoder_finish(struct encoder *e, int flags, struct encoded *out, char *err, size_t errlen);
void encoder_abort(struct encoder *e);

/* The whole of pcm at once, through the functions above. */
int encode_to_file(const struct pcm *pcm, const char *format, int out_rate, const char *dir,
                   const char *name, int flags, struct encoded *out, int *permanent, char *err,
                   size_t errlen);

#endif
