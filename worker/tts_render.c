/* The http engine's rendering, in the engine child (c2a-engine.so): the TTS
 * server's WAV answers decoded and encoded into the job's file. */
#include "tts_http.h"
#include "captions.h"
#include "encode.h"
#include "leveler.h"
#include "job.h"
#include "outfile.h"
#include "../common/util.h"

#include <sndfile.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libsndfile reading from memory. */
struct memfile {
    const char *data;
    sf_count_t len, pos;
};

static sf_count_t mf_len(void *u)
{
    return ((struct memfile *)u)->len;
}

static sf_count_t mf_seek(sf_count_t off, int whence, void *u)
{
    struct memfile *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
    if (base + off < 0 || base + off > m->len)
        return -1;
    m->pos = base + off;
    return m->pos;
}

static sf_count_t mf_read(void *ptr, sf_count_t count, void *u)
{
    struct memfile *m = u;
    if (count > m->len - m->pos)
        count = m->len - m->pos;
    memcpy(ptr, m->data + m->pos, (size_t)count);
    m->pos += count;
    return count;
}

static sf_count_t mf_write(const void *ptr, sf_count_t count, void *u)
{
    (void)ptr;
    (void)count;
    (void)u;
    return 0;
}

static sf_count_t mf_tell(void *u)
{
    return ((struct memfile *)u)->pos;
}

static SF_VIRTUAL_IO memfile_io = {mf_len, mf_seek, mf_read, mf_write, mf_tell};

/* The parts' texts joined, with a sentence event at the start of each at the
 * time its audio starts, then the captions (captions.h). */
static int render_captions(char *const *texts, int n, const int64_t *start_ms,
                           const struct job *job, const char *dir, const char *tag,
                           const struct encoded *out, int *written, char *err, size_t errlen)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(texts[i]) + 1;
    char *text = xmalloc(len + 1);
    struct cap_event *ev = xmalloc(((size_t)n + 1) * sizeof(*ev));
    size_t at = 0, chars = 0;
    for (int i = 0; i < n; i++) {
        ev[i] = (struct cap_event){1, (int64_t)chars, start_ms[i]};
        size_t k = strlen(texts[i]);
        memcpy(text + at, texts[i], k);
        text[at + k] = ' ';
        chars += job_utf8_chars(texts[i], k) + 1;
        at += k + 1;
    }
    text[at] = '\0';
    char name[JOB_NAME_MAX + 16];
    outfile_job_name(job, name, sizeof(name));
    int rc = captions_write(dir, tag, name, job->captions, text, at, ev, (size_t)n,
                            out->duration_ms, written, err, errlen);
    free(text);
    free(ev);
    return rc;
}

int tts_http_render(const struct wav_part *parts, int n, char *const *texts, int n_texts,
                    int *captions_written, const struct job *job, const char *dir,
                    const char *tag, int max_duration_s, struct encoded *out,
                    struct render_levels *levels, int *permanent, char *code, char *err,
                    size_t errlen)
{
    *permanent = 1;
    strcpy(code, "synth_failed");
    struct encoder *enc = NULL;
    struct leveler *lev = NULL;
    int rate = 0;
    size_t frames = 0, max_frames = 0;
    short *buf = xmalloc(4096 * 8 * sizeof(short));
    int16_t *mono = xmalloc(4096 * sizeof(int16_t));
    int64_t *start_ms = xcalloc((size_t)n + 1, sizeof(*start_ms));
    for (int i = 0; i < n; i++) {
        start_ms[i] = rate ? (int64_t)frames * 1000 / rate : 0;
        struct memfile m = {parts[i].data, (sf_count_t)parts[i].len, 0};
        SF_INFO info = {0};
        SNDFILE *sf = sf_open_virtual(&memfile_io, SFM_READ, &info, &m);
        if (!sf) {
            snprintf(err, errlen, "the TTS server's answer %d is not audio libsndfile reads: %s",
                     i + 1, sf_strerror(NULL));
            goto fail;
        }
        if (info.channels < 1 || info.channels > 8 || info.samplerate < 1000) {
            sf_close(sf);
            snprintf(err, errlen, "the TTS server's answer %d has %d channels at %d Hz", i + 1,
                     info.channels, info.samplerate);
            goto fail;
        }
        if (!enc) {
            rate = info.samplerate;
            max_frames = (size_t)max_duration_s * (size_t)rate;
            char name[JOB_NAME_MAX + 16];
            outfile_job_name(job, name, sizeof(name));
            int perm;
            enc = encoder_open(job->format, rate, encode_output_rate(job->format, job->sample_rate,
                                                                     rate),
                               dir, name, tag, &perm, err, errlen);
            if (!enc) {
                *permanent = perm;
                strcpy(code, perm ? "bad_field" : "write_failed");
                sf_close(sf);
                goto fail;
            }
            if (encoder_set_tags(enc, job->tags, err, errlen) < 0) {
                *permanent = 1;
                strcpy(code, "bad_field");
                sf_close(sf);
                goto fail;
            }
            if (job->loudness != 0 &&
                !(lev = leveler_new(rate, job->loudness, job->true_peak,
                                    encode_lossy(job->format), dir, err, errlen))) {
                *permanent = 0;
                strcpy(code, "write_failed");
                sf_close(sf);
                goto fail;
            }
        } else if (info.samplerate != rate) {
            sf_close(sf);
            snprintf(err, errlen, "the TTS server answered at %d Hz, then at %d Hz", rate,
                     info.samplerate);
            goto fail;
        }
        sf_count_t got;
        while ((got = sf_readf_short(sf, buf, 4096)) > 0) {
            for (sf_count_t f = 0; f < got; f++) {
                int sum = 0;
                for (int c = 0; c < info.channels; c++)
                    sum += buf[f * info.channels + c];
                mono[f] = (int16_t)(sum / info.channels);
            }
            if (frames + (size_t)got > max_frames) {
                sf_close(sf);
                strcpy(code, "too_large");
                snprintf(err, errlen, "audio longer than %d s", max_duration_s);
                goto fail;
            }
            if (lev ? leveler_push(lev, mono, (size_t)got, err, errlen) < 0
                    : encoder_write(enc, mono, (size_t)got, err, errlen) < 0) {
                *permanent = 0;
                strcpy(code, "write_failed");
                sf_close(sf);
                goto fail;
            }
            frames += (size_t)got;
        }
        sf_close(sf);
    }
    if (!enc || frames == 0) {
        snprintf(err, errlen, "the TTS server returned no audio");
        goto fail;
    }
    free(buf);
    free(mono);
    if (lev) {
        if (leveler_finish(lev, enc, &levels->lufs, &levels->dbtp, err, errlen) < 0) {
            *permanent = 0;
            strcpy(code, "write_failed");
            encoder_abort(enc);
            leveler_free(lev);
            free(start_ms);
            return -1;
        }
        levels->on = 1;
        leveler_free(lev);
    }
    int closed = encoder_close(enc, out, err, errlen);
    if (closed < 0) {
        *permanent = closed == -2;
        strcpy(code, closed == -2 ? "bad_field" : "write_failed");
        free(start_ms);
        return -1;
    }
    if (job->captions && n_texts == n &&
        render_captions(texts, n, start_ms, job, dir, tag, out, captions_written, err, errlen) <
            0) {
        char tmp[4096], name[JOB_NAME_MAX + 16];
        outfile_job_name(job, name, sizeof(name));
        outfile_tmp_path(tmp, sizeof(tmp), dir, tag, name);
        unlink(tmp);
        *permanent = 0;
        strcpy(code, "write_failed");
        free(start_ms);
        return -1;
    }
    free(start_ms);
    return 0;
fail:
    encoder_abort(enc);
    leveler_free(lev);
    free(buf);
    free(mono);
    free(start_ms);
    return -1;
}
