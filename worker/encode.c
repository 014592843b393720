#include "encode.h"
#include "job.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK_FRAMES 4096

static const struct {
    const char *name;
    const char *ext;
    int sf_format;
    double compression; /* SFC_SET_COMPRESSION_LEVEL, or < 0 to leave alone */
} formats[] = {
    {"wav", ".wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, -1},
    {"flac", ".flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 0.5},
    {"ogg", ".ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0.6},
    {"opus", ".opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 0.6},
    {"mp3", ".mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 0.6},
};

static int find_format(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(formats); i++)
        if (strcmp(formats[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *encode_extension(const char *format)
{
    int i = find_format(format);
    return i < 0 ? NULL : formats[i].ext;
}

int encode_output_rate(const char *format, int want, int input_rate)
{
    int rate = want ? want : input_rate;
    if (strcmp(format, "opus") == 0)
        rate = job_opus_rate(rate);
    return rate;
}

/* Resample to out_rate; returns a new buffer of *frames float samples. */
static float *resample(const struct pcm *pcm, int out_rate, size_t *frames, char *err,
                       size_t errlen)
{
    double ratio = (double)out_rate / pcm->rate;
    size_t in_n = pcm->frames;
    size_t out_cap = (size_t)(in_n * ratio) + 64;
    float *in = xmalloc((in_n ? in_n : 1) * sizeof(float));
    float *out = xmalloc(out_cap * sizeof(float));
    src_short_to_float_array(pcm->samples, in, (int)in_n);
    SRC_DATA d = {.data_in = in, .data_out = out, .input_frames = (long)in_n,
                  .output_frames = (long)out_cap, .src_ratio = ratio, .end_of_input = 1};
    int rc = src_simple(&d, SRC_SINC_FASTEST, 1);
    free(in);
    if (rc != 0) {
        snprintf(err, errlen, "resampling: %s", src_strerror(rc));
        free(out);
        return NULL;
    }
    *frames = (size_t)d.output_frames_gen;
    return out;
}

static int sha256_file(int fd, char hex[65], uint64_t *bytes)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return -1;
    }
    unsigned char buf[65536];
    uint64_t total = 0;
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            EVP_MD_CTX_free(ctx);
            return -1;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += n;
        total += (uint64_t)n;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *bytes = total;
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int encode_to_file(const struct pcm *pcm, const char *format, int out_rate, const char *dir,
                   const char *name, struct encoded *out, int *permanent, char *err,
                   size_t errlen)
{
    *permanent = 0;
    memset(out, 0, sizeof(*out));
    int fi = find_format(format);
    if (fi < 0) {
        *permanent = 1;
        snprintf(err, errlen, "format: unknown format %s", format);
        return -1;
    }
    /* libsndfile 1.2.0 leaks LAME's state (about 220 kB) when LAME refuses a
     * rate at open: refuse those rates before it is asked. */
    static const int mp3_rates[] = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000};
    if (strcmp(format, "mp3") == 0) {
        int legal = 0;
        for (size_t i = 0; i < ARRAY_LEN(mp3_rates); i++)
            legal |= mp3_rates[i] == out_rate;
        if (!legal) {
            *permanent = 1;
            snprintf(err, errlen,
                     "format: mp3 cannot be written at %d Hz (8000, 11025, 12000, 16000, "
                     "22050, 24000, 32000, 44100 or 48000)",
                     out_rate);
            return -1;
        }
    }
    SF_INFO info = {.samplerate = out_rate, .channels = 1, .format = formats[fi].sf_format};
    if (!sf_format_check(&info)) {
        *permanent = 1;
        snprintf(err, errlen, "format: %s cannot be written at %d Hz", format, out_rate);
        return -1;
    }

    float *resampled = NULL;
    size_t frames = pcm->frames;
    if (out_rate != pcm->rate) {
        resampled = resample(pcm, out_rate, &frames, err, errlen);
        if (!resampled)
            return -1;
    }

    char tmp[4096];
    snprintf(out->path, sizeof(out->path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%d", dir, name, (int)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        free(resampled);
        return -1;
    }
    int rc = -1;
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, 0);
    if (!sf) {
        /* libsndfile refuses some rates only when it opens the codec. */
        *permanent = 1;
        snprintf(err, errlen, "format: %s at %d Hz: %s", format, out_rate, sf_strerror(NULL));
        goto out;
    }
    if (formats[fi].compression >= 0) {
        double level = formats[fi].compression;
        sf_command(sf, SFC_SET_COMPRESSION_LEVEL, &level, sizeof(level));
    }
    for (size_t done = 0; done < frames;) {
        size_t n = frames - done < BLOCK_FRAMES ? frames - done : BLOCK_FRAMES;
        sf_count_t w = resampled ? sf_writef_float(sf, resampled + done, (sf_count_t)n)
                                 : sf_writef_short(sf, pcm->samples + done, (sf_count_t)n);
        if (w != (sf_count_t)n) {
            snprintf(err, errlen, "writing %s: %s", format, sf_strerror(sf));
            sf_close(sf);
            goto out;
        }
        done += n;
    }
    if (sf_close(sf) != 0) {
        snprintf(err, errlen, "closing %s: %s", format, sf_strerror(NULL));
        goto out;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (sha256_file(fd, out->sha256, &out->bytes) < 0) {
        snprintf(err, errlen, "reading back %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, out->path) < 0) {
        snprintf(err, errlen, "rename to %s: %s", out->path, strerror(errno));
        goto out;
    }
    fsync_dir(dir);
    out->sample_rate = out_rate;
    out->channels = 1;
    out->duration_ms = (int64_t)frames * 1000 / out_rate;
    rc = 0;
out:
    close(fd);
    if (rc < 0)
        unlink(tmp);
    free(resampled);
    return rc;
}
