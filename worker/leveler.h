/*
 * Loudness normalisation (EBU R128 / ITU-R BS.1770, measured with libebur128),
 * between the synthesis and the encoder, in the engine child. The audio cannot
 * be levelled before it is all measured, and must not be held in memory (an
 * hour of speech is 160 MB), so it is spilled to an unnamed file in the output
 * directory while it is measured; then it is read back, given the gain that
 * brings it to the target, limited where its peaks would pass the ceiling (an
 * look-ahead limiter, on the peaks between the samples too, aiming under the
 * ceiling so that resampling and lossy codecs stay below it), measured again (further
 * passes give back the loudness the limiter took off) and handed to the
 * encoder.
 */
#ifndef C2A_LEVELER_H
#define C2A_LEVELER_H

#include <stddef.h>
#include <stdint.h>

struct leveler;
struct encoder;

/* For mono audio at rate; target in LUFS, ceiling in dBTP; lossy: the
 * encoder is (the limiter leaves more room). NULL with err. */
struct leveler *leveler_new(int rate, double target_lufs, double ceiling_dbtp, int lossy,
                            const char *dir, char *err, size_t errlen);
/* Take (spill and measure) frames of audio. -1 with err (the disk). */
int leveler_push(struct leveler *l, const int16_t *pcm, size_t frames, char *err, size_t errlen);
/* Level what was pushed into enc; *lufs and *dbtp as measured after levelling
 * (before encoding). -1 with err. */
int leveler_finish(struct leveler *l, struct encoder *enc, double *lufs, double *dbtp, char *err,
                   size_t errlen);
void leveler_free(struct leveler *l);

#endif
