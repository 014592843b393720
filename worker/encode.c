#include "encode.h"
#include "job.h"
#include "outfile.h"
#include "tags.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
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

struct encoder {
    SNDFILE *sf;
    SRC_STATE *src;
    double ratio;
    int fd;
    int out_rate;
    const char *format;               /* formats[].name */
    char lang[TAGS_LANGUAGE_MAX + 1]; /* "" for none */
    uint64_t frames;
    /* libsndfile's writes, gathered: buf holds the bytes from buf_off on; pos
     * and len are libsndfile's idea of the position and the length. */
    sf_count_t pos, len, buf_off;
    size_t buf_len;
    int io_errno;
    char dir[4096];
    char tmp[4096];
    char path[4096];
    float in[BLOCK_FRAMES];
    float *out; /* resampling only: room for up to 8x per block */
    char buf[ENCODE_WRITE_BLOCK];
};

#define OUT_FRAMES (BLOCK_FRAMES * 8)

static int pwrite_all(int fd, const char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

static int vio_flush(struct encoder *e)
{
    if (e->buf_len && !e->io_errno && pwrite_all(e->fd, e->buf, e->buf_len, e->buf_off) < 0)
        e->io_errno = errno ? errno : EIO;
    e->buf_len = 0;
    return e->io_errno ? -1 : 0;
}

static sf_count_t vio_filelen(void *u)
{
    return ((struct encoder *)u)->len;
}

static sf_count_t vio_seek(sf_count_t off, int whence, void *u)
{
    struct encoder *e = u;
    sf_count_t to = whence == SEEK_SET ? off : whence == SEEK_CUR ? e->pos + off : e->len + off;
    if (to < 0)
        return -1;
    e->pos = to;
    return to;
}

static sf_count_t vio_read(void *ptr, sf_count_t n, void *u)
{
    struct encoder *e = u;
    if (vio_flush(e) < 0)
        return 0;
    ssize_t k = pread(e->fd, ptr, (size_t)n, e->pos);
    if (k < 0) {
        e->io_errno = errno;
        return 0;
    }
    e->pos += k;
    return k;
}

static sf_count_t vio_write(const void *ptr, sf_count_t n, void *u)
{
    struct encoder *e = u;
    if (e->buf_len && e->pos != e->buf_off + (sf_count_t)e->buf_len)
        vio_flush(e); /* a seek back (the header, at close) */
    if (e->buf_len + (size_t)n > sizeof(e->buf))
        vio_flush(e);
    if (e->io_errno)
        return 0;
    if ((size_t)n >= sizeof(e->buf)) {
        if (pwrite_all(e->fd, ptr, (size_t)n, e->pos) < 0) {
            e->io_errno = errno ? errno : EIO;
            return 0;
        }
    } else {
        if (!e->buf_len)
            e->buf_off = e->pos;
        memcpy(e->buf + e->buf_len, ptr, (size_t)n);
        e->buf_len += (size_t)n;
    }
    e->pos += n;
    if (e->pos > e->len)
        e->len = e->pos;
    return n;
}

static sf_count_t vio_tell(void *u)
{
    return ((struct encoder *)u)->pos;
}

static SF_VIRTUAL_IO vio = {vio_filelen, vio_seek, vio_read, vio_write, vio_tell};

/* The reason of a failed libsndfile call: ours when our I/O failed. */
static const char *sf_reason(struct encoder *e, SNDFILE *sf)
{
    return e->io_errno ? strerror(e->io_errno) : sf_strerror(sf);
}

struct encoder *encoder_open(const char *format, int in_rate, int out_rate, const char *dir,
                             const char *name, const char *tag, int *permanent, char *err,
                             size_t errlen)
{
    *permanent = 0;
    int fi = find_format(format);
    if (fi < 0) {
        *permanent = 1;
        snprintf(err, errlen, "format: unknown format %s", format);
        return NULL;
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
            return NULL;
        }
    }
    if (out_rate > in_rate * 8 || in_rate > out_rate * 256) {
        *permanent = 1;
        snprintf(err, errlen, "sample_rate: cannot convert %d Hz to %d Hz", in_rate, out_rate);
        return NULL;
    }
    SF_INFO info = {.samplerate = out_rate, .channels = 1, .format = formats[fi].sf_format};
    if (!sf_format_check(&info)) {
        *permanent = 1;
        snprintf(err, errlen, "format: %s cannot be written at %d Hz", format, out_rate);
        return NULL;
    }
    struct encoder *e = xcalloc(1, sizeof(*e));
    e->out_rate = out_rate;
    e->format = formats[fi].name;
    strlcpy_c2a(e->dir, dir, sizeof(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/%s", dir, name);
    outfile_tmp_path(e->tmp, sizeof(e->tmp), dir, tag, name);
    e->fd = open(e->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (e->fd < 0 && errno == ENOENT) {
        /* The first file, or someone removed the directory of temporary files. */
        char tmpdir[sizeof(e->tmp)];
        snprintf(tmpdir, sizeof(tmpdir), "%s/" OUTFILE_TMP_DIR, dir);
        if (mkdir(tmpdir, 0755) == 0 || errno == EEXIST)
            e->fd = open(e->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (e->fd < 0) {
        snprintf(err, errlen, "%s: %s", e->tmp, strerror(errno));
        free(e);
        return NULL;
    }
    e->sf = sf_open_virtual(&vio, SFM_WRITE, &info, e);
    if (!e->sf) {
        /* libsndfile refuses some rates only when it opens the codec. */
        *permanent = !e->io_errno;
        snprintf(err, errlen, "format: %s at %d Hz: %s", format, out_rate, sf_reason(e, NULL));
        encoder_abort(e);
        return NULL;
    }
    if (formats[fi].compression >= 0) {
        double level = formats[fi].compression;
        sf_command(e->sf, SFC_SET_COMPRESSION_LEVEL, &level, sizeof(level));
    }
    if (out_rate != in_rate) {
        int rc = 0;
        e->src = src_new(SRC_SINC_FASTEST, 1, &rc);
        if (!e->src) {
            snprintf(err, errlen, "resampling: %s", src_strerror(rc));
            encoder_abort(e);
            return NULL;
        }
        e->ratio = (double)out_rate / in_rate;
        e->out = xmalloc(OUT_FRAMES * sizeof(float));
    }
    return e;
}

static int write_float(struct encoder *e, const float *f, size_t n, char *err, size_t errlen)
{
    if (n && sf_writef_float(e->sf, f, (sf_count_t)n) != (sf_count_t)n) {
        snprintf(err, errlen, "writing: %s", sf_reason(e, e->sf));
        return -1;
    }
    e->frames += n;
    return 0;
}

/* Feed n input frames (or, with end set, flush) through the resampler. */
static int resample_block(struct encoder *e, const float *in, size_t n, int end, char *err,
                          size_t errlen)
{
    SRC_DATA d = {.data_in = in, .input_frames = (long)n, .src_ratio = e->ratio,
                  .end_of_input = end};
    do {
        d.data_out = e->out;
        d.output_frames = OUT_FRAMES;
        int rc = src_process(e->src, &d);
        if (rc) {
            snprintf(err, errlen, "resampling: %s", src_strerror(rc));
            return -1;
        }
        if (write_float(e, e->out, (size_t)d.output_frames_gen, err, errlen) < 0)
            return -1;
        d.data_in += d.input_frames_used;
        d.input_frames -= d.input_frames_used;
    } while (d.input_frames > 0 || (end && d.output_frames_gen > 0));
    return 0;
}

int encode_lossy(const char *format)
{
    return strcmp(format, "wav") != 0 && strcmp(format, "flac") != 0;
}

int encoder_set_tags(struct encoder *e, char *const *tags, char *err, size_t errlen)
{
    static const int types[] = {SF_STR_TITLE, SF_STR_ARTIST, SF_STR_ALBUM, SF_STR_COMMENT,
                                SF_STR_DATE};
    static const char *const names[] = {"title", "artist", "album", "comment", "date"};
    for (size_t t = 0; t < ARRAY_LEN(types); t++) {
        if (!tags[t] || sf_set_string(e->sf, types[t], tags[t]) == 0)
            continue;
        snprintf(err, errlen, "metadata.%s: %s", names[t], sf_strerror(e->sf));
        return -1;
    }
    if (tags[TAG_LANGUAGE] && tags[TAG_LANGUAGE][0])
        return encoder_set_language(e, tags[TAG_LANGUAGE], err, errlen);
    return 0;
}

int encoder_set_language(struct encoder *e, const char *lang, char *err, size_t errlen)
{
    if (tags_check_language(lang, err, errlen) < 0)
        return -1;
    strlcpy_c2a(e->lang, lang, sizeof(e->lang));
    return 0;
}

int encoder_write(struct encoder *e, const int16_t *samples, size_t frames, char *err,
                  size_t errlen)
{
    for (size_t done = 0; done < frames;) {
        size_t n = frames - done < BLOCK_FRAMES ? frames - done : BLOCK_FRAMES;
        if (e->src) {
            src_short_to_float_array(samples + done, e->in, (int)n);
            if (resample_block(e, e->in, n, 0, err, errlen) < 0)
                return -1;
        } else {
            if (sf_writef_short(e->sf, samples + done, (sf_count_t)n) != (sf_count_t)n) {
                snprintf(err, errlen, "writing: %s", sf_reason(e, e->sf));
                return -1;
            }
            e->frames += n;
        }
        done += n;
    }
    return 0;
}

static void encoder_free(struct encoder *e)
{
    if (e->src)
        src_delete(e->src);
    if (e->fd >= 0)
        close(e->fd);
    free(e->out);
    free(e);
}

void encoder_abort(struct encoder *e)
{
    if (!e)
        return;
    if (e->sf)
        sf_close(e->sf);
    unlink(e->tmp);
    encoder_free(e);
}

int encoder_close(struct encoder *e, struct encoded *out, char *err, size_t errlen)
{
    int ret = -1;
    memset(out, 0, sizeof(*out));
    if (e->src && resample_block(e, e->in, 0, 1, err, errlen) < 0)
        goto fail;
    int rc = sf_close(e->sf);
    e->sf = NULL;
    if (rc != 0 || vio_flush(e) < 0) {
        snprintf(err, errlen, "closing %s: %s", e->tmp, sf_reason(e, NULL));
        goto fail;
    }
    if (e->lang[0]) {
        uint64_t len = (uint64_t)e->len;
        char why[256];
        ret = tags_add_language(e->fd, &len, e->format, e->lang, why, sizeof(why));
        if (ret < 0) {
            snprintf(err, errlen, "language tag in %s: %s", e->tmp, why);
            goto fail;
        }
        e->len = (sf_count_t)len;
    }
    strlcpy_c2a(out->path, e->path, sizeof(out->path));
    out->sample_rate = e->out_rate;
    out->channels = 1;
    out->duration_ms = (int64_t)(e->frames * 1000 / (uint64_t)e->out_rate);
    out->bytes = (uint64_t)e->len;
    encoder_free(e);
    return 0;
fail:
    encoder_abort(e);
    return ret;
}

int encoder_finish(struct encoder *e, int flags, struct encoded *out, char *err, size_t errlen)
{
    char tmp[sizeof(e->tmp)], path[sizeof(e->path)], dir[sizeof(e->dir)];
    memcpy(tmp, e->tmp, sizeof(tmp));
    memcpy(path, e->path, sizeof(path));
    memcpy(dir, e->dir, sizeof(dir));
    if (encoder_close(e, out, err, errlen) < 0 ||
        outfile_commit(tmp, path, flags, out, err, errlen) < 0)
        return -1;
    if (outfile_flush_dir(dir) < 0) {
        snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int encode_to_file(const struct pcm *pcm, const char *format, int out_rate, const char *dir,
                   const char *name, int flags, struct encoded *out, int *permanent, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct encoder *e =
        encoder_open(format, pcm->rate, out_rate, dir, name, NULL, permanent, err, errlen);
    if (!e)
        return -1;
    if (encoder_write(e, pcm->samples, pcm->frames, err, errlen) < 0) {
        encoder_abort(e);
        return -1;
    }
    return encoder_finish(e, flags, out, err, errlen);
}
