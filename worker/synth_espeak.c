#include "synth.h"
#include "cache.h"
#include "captions.h"
#include "leveler.h"
#include "engine_api.h"
#include "http_api.h"
#include "normalize.h"
#include "voices.h"
#include "tts_http.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct synth {
    int allow_mbrola;
    int rate;
    struct voice_list voices; /* installed, loaded once */
    char voice[VOICES_ESPEAK_MAX]; /* the voice espeak-ng has loaded, as resolved */
};

/* What the synthesis callback fills, per job: audio goes straight to the
 * encoder, so memory does not grow with the length of the text. */
struct capture {
    struct encoder *enc;
    struct leveler *lev; /* between synthesis and encoder, when the job sets loudness */
    size_t frames, max_frames;
    int too_long;
    int write_failed;
    char err[256];
    int want_marks;
    char *marks;
    size_t marks_len, marks_cap;
    struct synth_work *w;      /* for its progress hook */
    int want_captions;
    struct cap_event *ev;      /* for captions: words and sentences */
    size_t nev, ev_cap;
    int64_t total_chars, done_chars, audio_ms, progress_at_ms;
};

/* At most once a second: how far the speech has come. */
static void progress(struct capture *c, int final)
{
    struct synth_work *w = c->w;
    int64_t now = now_mono_ms();
    if (!w->progress || (!final && now - c->progress_at_ms < 1000))
        return;
    c->progress_at_ms = now;
    w->progress(w->progress_ctx, final ? c->total_chars : c->done_chars, c->total_chars,
                c->audio_ms);
}

static void marks_append(struct capture *c, const char *s)
{
    size_t n = strlen(s);
    if (c->marks_len + n + 2 > c->marks_cap) {
        c->marks_cap = (c->marks_len + n + 2) * 2;
        c->marks = xrealloc(c->marks, c->marks_cap);
    }
    memcpy(c->marks + c->marks_len, s, n + 1);
    c->marks_len += n;
}

static int on_audio(short *wav, int n, espeak_EVENT *events)
{
    struct capture *c = events ? events->user_data : NULL;
    if (!c)
        return 0;
    for (espeak_EVENT *e = events; e->type != espeakEVENT_LIST_TERMINATED; e++) {
        if (e->type == espeakEVENT_WORD && e->text_position - 1 > c->done_chars &&
            e->text_position - 1 <= c->total_chars)
            c->done_chars = e->text_position - 1;
        if (e->audio_position > c->audio_ms)
            c->audio_ms = e->audio_position;
        if (c->want_captions && (e->type == espeakEVENT_WORD || e->type == espeakEVENT_SENTENCE)) {
            if (c->nev == c->ev_cap) {
                c->ev_cap = c->ev_cap ? c->ev_cap * 2 : 256;
                c->ev = xrealloc(c->ev, c->ev_cap * sizeof(*c->ev));
            }
            c->ev[c->nev++] = (struct cap_event){e->type == espeakEVENT_SENTENCE,
                                                 e->text_position - 1, e->audio_position};
        }
        if (!c->want_marks || (e->type != espeakEVENT_WORD && e->type != espeakEVENT_SENTENCE))
            continue;
        char item[128];
        snprintf(item, sizeof(item), "%s{\"type\":\"%s\",\"time_ms\":%d,\"start\":%d,\"length\":%d}",
                 c->marks_len > 1 ? "," : "", e->type == espeakEVENT_WORD ? "word" : "sentence",
                 e->audio_position, e->text_position - 1, e->length);
        marks_append(c, item);
    }
    if (!wav || n <= 0)
        return 0;
    if (c->frames + (size_t)n > c->max_frames) {
        c->too_long = 1;
        return 1; /* abort synthesis */
    }
    if (c->lev ? leveler_push(c->lev, wav, (size_t)n, c->err, sizeof(c->err)) < 0
               : encoder_write(c->enc, wav, (size_t)n, c->err, sizeof(c->err)) < 0) {
        c->write_failed = 1;
        return 1;
    }
    c->frames += (size_t)n;
    progress(c, 0);
    return 0;
}

/* SSML <audio src=...> would make espeak-ng open (and run a command on) a file:
 * refuse every URI. */
static int refuse_uri(int type, const char *uri, const char *base)
{
    (void)type;
    (void)uri;
    (void)base;
    return 1;
}

static int init_espeak(struct synth *s, char *err, size_t errlen)
{
    espeak_ng_ERROR_CONTEXT ctx = NULL;
    espeak_ng_InitializePath(NULL);
    espeak_ng_STATUS st = espeak_ng_Initialize(&ctx);
    if (st == ENS_OK)
        st = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL);
    if (st != ENS_OK) {
        char msg[128] = "";
        espeak_ng_GetStatusCodeMessage(st, msg, sizeof(msg));
        snprintf(err, errlen, "espeak-ng: %s", msg);
        espeak_ng_ClearErrorContext(&ctx);
        return -1;
    }
    espeak_SetSynthCallback(on_audio);
    espeak_SetUriCallback(refuse_uri);
    s->rate = espeak_ng_GetSampleRate();
    return 0;
}

static void fail_work(struct synth_work *w, int permanent, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_work(struct synth_work *w, int permanent, const char *code, const char *fmt, ...)
{
    w->ok = 0;
    w->permanent = permanent;
    strlcpy_c2a(w->code, code, sizeof(w->code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->message, sizeof(w->message), fmt, ap);
    va_end(ap);
}

static void run_job(struct synth *s, struct synth_work *w, const char *text, size_t len, int ssml)
{
    const struct job *job = w->job;
    int64_t t0 = now_mono_ms();
    /* Voices are taken the way espeak-ng -v takes them (name, file, language,
     * +variant), checked against the installed list first: espeak-ng's own
     * lookup aborts on a long variant. */
    struct voice_choice vc;
    char verr[sizeof(w->message)];
    if (voices_resolve(&s->voices, job->voice, s->allow_mbrola, &vc, verr, sizeof(verr)) < 0) {
        fail_work(w, 1, "unknown_voice", "%s", verr);
        return;
    }
    if (strcmp(s->voice, vc.espeak) != 0) {
        if (espeak_ng_SetVoiceByName(vc.espeak) != ENS_OK) {
            s->voice[0] = '\0';
            fail_work(w, 1, "unknown_voice", "voice: %s cannot be loaded", job->voice);
            return;
        }
        strlcpy_c2a(s->voice, vc.espeak, sizeof(s->voice));
    }
    /* Parameters persist between calls: set every one for every job. */
    espeak_ng_SetParameter(espeakRATE, job->rate, 0);
    espeak_ng_SetParameter(espeakPITCH, job->pitch, 0);
    espeak_ng_SetParameter(espeakVOLUME, job->volume, 0);
    espeak_ng_SetParameter(espeakRANGE, 50, 0);

    char name[JOB_NAME_MAX + 16];
    outfile_job_name(job, name, sizeof(name));
    int out_rate = encode_output_rate(job->format, job->sample_rate, s->rate);
    /* Known crashers and long junk tokens are made speakable first; ordinary
     * prose passes unchanged (normalize.h). Marks refer to this text. */
    size_t nlen;
    char *norm = normalize_text(text, len, ssml, vc.language, &nlen);
    if (w->spoken_text && (nlen != len || memcmp(norm, text, len) != 0)) {
        free(w->spoken_text);
        w->spoken_text = xstrdup(norm);
    }
    struct cache_key key;
    if (job->cache) {
        cache_key(w, vc.espeak, out_rate, norm, nlen, &key);
        if (cache_fetch(w, &key, name)) {
            free(norm);
            return;
        }
    }
    struct capture c = {.want_marks = job->marks, .want_captions = job->captions};
    int permanent;
    c.enc = encoder_open(job->format, s->rate, out_rate, w->output_dir, name, w->tmp_tag,
                         &permanent, w->message, sizeof(w->message));
    if (!c.enc) {
        w->permanent = permanent;
        strlcpy_c2a(w->code, permanent ? "bad_field" : "write_failed", sizeof(w->code));
        free(norm);
        return;
    }
    if (encoder_set_tags(c.enc, job->tags, w->message, sizeof(w->message)) < 0) {
        encoder_abort(c.enc);
        w->permanent = 1;
        strlcpy_c2a(w->code, "bad_field", sizeof(w->code));
        free(norm);
        return;
    }
    if (job->loudness != 0 &&
        !(c.lev = leveler_new(s->rate, job->loudness, job->true_peak, encode_lossy(job->format),
                              w->output_dir, w->message, sizeof(w->message)))) {
        encoder_abort(c.enc);
        strlcpy_c2a(w->code, "write_failed", sizeof(w->code));
        free(norm);
        return;
    }
    c.max_frames = (size_t)w->max_duration_s * (size_t)s->rate;
    if (c.want_marks)
        marks_append(&c, "[");
    c.w = w;
    c.total_chars = (int64_t)job_utf8_chars(norm, nlen);
    c.progress_at_ms = now_mono_ms(); /* the first a second in */
    unsigned flags = espeakCHARS_UTF8 | espeakENDPAUSE | (ssml ? espeakSSML : 0);
    espeak_ng_STATUS st =
        espeak_ng_Synthesize(norm, nlen + 1, 0, POS_CHARACTER, 0, flags, NULL, &c);
    w->synth_ms = now_mono_ms() - t0;
    if (c.too_long) {
        fail_work(w, 1, "too_large", "audio longer than %d s", w->max_duration_s);
    } else if (c.write_failed) {
        fail_work(w, 0, "write_failed", "%s", c.err);
    } else if (st != ENS_OK) {
        char msg[128] = "";
        espeak_ng_GetStatusCodeMessage(st, msg, sizeof(msg));
        fail_work(w, 1, "synth_failed", "espeak-ng: %s", msg);
    } else if (c.frames == 0) {
        fail_work(w, 1, "synth_failed", "no audio for this text");
    } else {
        int64_t t1 = now_mono_ms();
        char err[256];
        int closed;
        if (c.lev && leveler_finish(c.lev, c.enc, &w->loudness_lufs, &w->true_peak_dbtp, err,
                                    sizeof(err)) < 0) {
            fail_work(w, 0, "write_failed", "%s", err);
            encoder_abort(c.enc);
        } else if ((closed = encoder_close(c.enc, &w->enc, err, sizeof(err))) < 0) {
            fail_work(w, closed == -2, closed == -2 ? "bad_field" : "write_failed", "%s", err);
        } else if (captions_write(w->output_dir, w->tmp_tag, name, job->captions, norm, nlen,
                                  c.ev, c.nev, w->enc.duration_ms, &w->captions_written, err,
                                  sizeof(err)) < 0) {
            char tmp[4096];
            outfile_tmp_path(tmp, sizeof(tmp), w->output_dir, w->tmp_tag, name);
            unlink(tmp);
            fail_work(w, 0, "write_failed", "%s", err);
        } else {
            w->ok = 1;
            w->levelled = c.lev != NULL;
            c.audio_ms = w->enc.duration_ms;
            progress(&c, 1);
        }
        c.enc = NULL;
        w->encode_ms = now_mono_ms() - t1;
    }
    free(norm);
    free(c.ev);
    leveler_free(c.lev);
    encoder_abort(c.enc); /* no-op once closed */
    if (w->ok && c.want_marks) {
        marks_append(&c, "]");
        w->marks_json = c.marks;
        c.marks = NULL;
    }
    free(c.marks);
    if (w->ok && job->cache)
        cache_store(w, &key, name, w->cache_max_mb);
}

/* The text a speech job speaks: its own, or its fetched content made speakable
 * (url jobs). Fails the work (bad_field, too_large) when that cannot be done. */
static int job_text(struct synth_work *w, struct content *c)
{
    const struct job *job = w->job;
    if (!w->raw) {
        c->text = job->content;
        c->len = job->content_len;
        c->ssml = job->source == JOB_SSML;
        return 0;
    }
    char err[256];
    if (w->http->content_prepare(w->raw, w->raw_len, w->raw_type, c, err, sizeof(err)) < 0) {
        fail_work(w, 1, "bad_field", "url: %s", err);
        return -1;
    }
    size_t blank = strspn(c->text, " \t\r\n");
    if (blank == c->len) {
        fail_work(w, 1, "bad_field", "url: the content is empty");
        free(c->text);
        c->text = NULL;
        return -1;
    }
    if (job_utf8_chars(c->text, c->len) > (size_t)w->max_chars) {
        fail_work(w, 1, "too_large", "url: the content is longer than %d characters",
                  w->max_chars);
        free(c->text);
        c->text = NULL;
        return -1;
    }
    return 0;
}

/* The http engine's cache: the key is the server and model, the voice, the
 * pieces as they will be asked for, and the rest as for espeak-ng (cache_key());
 * the rate is the one asked for, the server's when none. A hit leaves the
 * files at the job's temporary names and no pieces: the job is done without
 * a request. A miss gives the worker the key, for the rendering to store under. */
static void http_cache_lookup(struct synth_work *w)
{
    struct strbuf text = {0}, voice = {0};
    for (int i = 0; i < w->n_pieces; i++) {
        char head[32];
        int n = snprintf(head, sizeof(head), "%zu:", strlen(w->pieces[i]));
        strbuf_add(&text, head, (size_t)n);
        strbuf_add(&text, w->pieces[i], strlen(w->pieces[i]));
    }
    const char *parts[] = {"http ", w->http_scope ? w->http_scope : "", " ", w->job->voice};
    for (size_t i = 0; i < ARRAY_LEN(parts); i++)
        strbuf_add(&voice, parts[i], strlen(parts[i]));
    strbuf_add(&voice, "", 1);
    struct cache_key key;
    cache_key(w, voice.s, w->job->sample_rate, text.s, text.len, &key);
    free(text.s);
    free(voice.s);
    char name[JOB_NAME_MAX + 16];
    outfile_job_name(w->job, name, sizeof(name));
    if (w->tmp_tag && cache_fetch(w, &key, name)) {
        for (int i = 0; i < w->n_pieces; i++)
            free(w->pieces[i]);
        free(w->pieces);
        w->pieces = NULL;
        w->n_pieces = 0;
        return;
    }
    memcpy(w->cache_key, key.hex, sizeof(w->cache_key));
}

static void prepare_pieces(struct synth_work *w, const struct content *c)
{
    struct content plain = *c;
    char err[256];
    if (c->ssml && w->http->content_ssml_plain(c->text, c->len, &plain, err, sizeof(err)) < 0) {
        fail_work(w, 1, "bad_field", "ssml: %s", err);
        return;
    }
    w->n_pieces = w->http->content_split(plain.text, plain.len, w->piece_max, &w->pieces);
    if (plain.text != c->text)
        free(plain.text);
    if (w->n_pieces == 0) {
        fail_work(w, 1, "bad_field", "nothing to speak");
        return;
    }
    w->ok = 1;
    if (w->job->cache)
        http_cache_lookup(w);
}

static void run_speech(struct synth *s, struct synth_work *w)
{
    if (w->kind == SW_RENDER) {
        int64_t t0 = now_mono_ms();
        int permanent;
        char code[32];
        struct render_levels lv = {0, 0, 0};
        if (tts_http_render(w->wavs, w->n_wavs, w->texts, w->n_texts, &w->captions_written,
                            w->job, w->output_dir, w->tmp_tag, w->max_duration_s, &w->enc, &lv,
                            &permanent, code, w->message, sizeof(w->message)) < 0) {
            w->permanent = permanent;
            strlcpy_c2a(w->code, code, sizeof(w->code));
        } else {
            w->ok = 1;
            w->levelled = lv.on;
            w->loudness_lufs = lv.lufs;
            w->true_peak_dbtp = lv.dbtp;
            if (w->job->cache && strspn(w->cache_key, "0123456789abcdef") == 64) {
                struct cache_key key;
                memcpy(key.hex, w->cache_key, sizeof(key.hex));
                char name[JOB_NAME_MAX + 16];
                outfile_job_name(w->job, name, sizeof(name));
                cache_store(w, &key, name, w->cache_max_mb);
            }
        }
        w->encode_ms = now_mono_ms() - t0;
        return;
    }
    struct content c;
    if (job_text(w, &c) < 0)
        return;
    if (w->job->include_text)
        w->spoken_text = xstrdup(c.text);
    if (w->kind == SW_PREPARE)
        prepare_pieces(w, &c);
    else
        run_job(s, w, c.text, c.len, c.ssml);
    if (c.text != w->job->content)
        free(c.text);
}

struct synth *synth_init(int allow_mbrola, char *err, size_t errlen)
{
    struct synth *s = xcalloc(1, sizeof(*s));
    s->allow_mbrola = allow_mbrola;
    if (init_espeak(s, err, errlen) < 0 || voices_load(&s->voices, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    log_debug("espeak-ng ready at %d Hz", s->rate);
    return s;
}

void synth_run(struct synth *s, struct synth_work *w)
{
    run_speech(s, w);
}

void synth_free(struct synth *s)
{
    if (s) {
        voices_free(&s->voices);
        espeak_ng_Terminate();
    }
    free(s);
}

static int voice_check(struct synth *s, const char *voice, char *err, size_t errlen)
{
    struct voice_choice vc;
    return voices_resolve(&s->voices, voice, s->allow_mbrola, &vc, err, errlen);
}

const struct engine_api c2a_engine_api = {ENGINE_API_VERSION, synth_init, synth_run, synth_free,
                                          voice_check};
