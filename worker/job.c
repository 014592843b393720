#include "job.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const formats[] = {"wav", "flac", "ogg", "opus", "mp3"};

static int fail(struct job_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct job_error *err, const char *code, const char *fmt, ...)
{
    strlcpy_c2a(err->code, code, sizeof(err->code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

int job_safe_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int job_opus_rate(int hz)
{
    static const int legal[] = {8000, 12000, 16000, 24000, 48000};
    int best = legal[0];
    for (size_t i = 0; i < ARRAY_LEN(legal); i++) {
        int d = abs(legal[i] - hz), bd = abs(best - hz);
        if (d < bd || (d == bd && legal[i] > best))
            best = legal[i];
    }
    return best;
}

size_t job_strip_controls(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            continue;
        s[o++] = s[i];
    }
    s[o] = '\0';
    return o;
}

size_t job_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

static int get_int(json_t *root, const char *key, int def, int lo, int hi, int *out,
                   struct job_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(err, "bad_field", "%s: expected an integer", key);
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return fail(err, "bad_field", "%s: %lld is out of range (%d..%d)", key, (long long)n,
                    lo, hi);
    *out = (int)n;
    return 0;
}

static int get_str(json_t *root, const char *key, const char **out, struct job_error *err)
{
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(err, "bad_field", "%s: expected a string", key);
    *out = json_string_value(v);
    return 0;
}

/* A number in [lo, hi], or the default when absent; "off" (loudness) is 0. */
static int get_db(json_t *root, const char *key, double def, double lo, double hi, int can_off,
                  double *out, struct job_error *err)
{
    json_t *v = json_object_get(root, key);
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (can_off && json_is_string(v) && strcmp(json_string_value(v), "off") == 0) {
        *out = 0;
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
        return fail(err, "bad_field", "%s: expected a number from %g to %g%s", key, lo, hi,
                    can_off ? " or \"off\"" : "");
    *out = json_number_value(v);
    return 0;
}

/* "captions": "vtt", "srt", "both", "none" or an array of "vtt" and "srt". */
static int get_captions(json_t *root, int def, int *out, struct job_error *err)
{
    json_t *v = json_object_get(root, "captions");
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    static const struct {
        const char *name;
        int bits;
    } kinds[] = {{"none", 0}, {"vtt", 1}, {"srt", 2}, {"both", 3}};
    json_t *one = v;
    size_t i = 0;
    *out = 0;
    if (json_is_array(v) && json_array_size(v) == 0)
        return 0;
    for (;;) {
        if (json_is_array(v))
            one = json_array_get(v, i);
        int bits = -1;
        for (size_t k = 0; json_is_string(one) && k < ARRAY_LEN(kinds); k++)
            if (strcmp(json_string_value(one), kinds[k].name) == 0)
                bits = kinds[k].bits;
        if (bits < 0)
            return fail(err, "bad_field", "captions: expected \"vtt\", \"srt\", \"both\", "
                                          "\"none\" or an array of \"vtt\" and \"srt\"");
        *out |= bits;
        if (!json_is_array(v) || ++i == json_array_size(v))
            return 0;
    }
}

const char *const job_tag_names[JOB_TAGS] = {"title",   "artist", "album",
                                              "comment", "date",   "language"};

/* "metadata": {"title", "artist", "album", "comment", "date", "language"}, each
 * a string of at most JOB_TAG_MAX bytes ("" for none), the language a tag such
 * as en-US (language_tag_ok()); what the job leaves out comes
 * from the defaults. Any other key is an error, so that a misspelt one is
 * not silently left out of the file. */
static int get_tags(json_t *root, const struct job_defaults *defs, struct job *job,
                    struct job_error *err)
{
    json_t *md = json_object_get(root, "metadata");
    if (md && !json_is_null(md) && !json_is_object(md))
        return fail(err, "bad_field", "metadata: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(json_is_object(md) ? md : NULL, key, v)
    {
        int known = 0;
        for (int t = 0; t < JOB_TAGS; t++)
            known |= strcmp(key, job_tag_names[t]) == 0;
        if (!known)
            return fail(err, "bad_field",
                        "metadata: %.40s is not a tag (title, artist, album, comment, date, "
                        "language)",
                        key);
    }
    for (int t = 0; t < JOB_TAGS; t++) {
        json_t *tv = json_is_object(md) ? json_object_get(md, job_tag_names[t]) : NULL;
        const char *s = defs->tags[t];
        if (tv && !json_is_null(tv)) {
            if (!json_is_string(tv))
                return fail(err, "bad_field", "metadata.%s: expected a string", job_tag_names[t]);
            s = json_string_value(tv);
            if (strlen(s) > JOB_TAG_MAX)
                return fail(err, "bad_field", "metadata.%s: longer than %d bytes",
                            job_tag_names[t], JOB_TAG_MAX);
            if (t == TAG_LANGUAGE && s[0] && !language_tag_ok(s))
                return fail(err, "bad_field",
                            "metadata.language: %.40s is not a language tag such as en or en-US",
                            s);
        }
        if (s && s[0]) {
            job->tags[t] = xstrdup(s);
            job->tags[t][job_strip_controls(job->tags[t], strlen(s))] = '\0';
        }
    }
    return 0;
}

void job_clear(struct job *job)
{
    for (int t = 0; t < JOB_TAGS; t++)
        free(job->tags[t]);
    free(job->content);
    free(job->upload_url);
    free(job->callback_url);
    free(job->captions_upload[0]);
    free(job->captions_upload[1]);
    memset(job, 0, sizeof(*job));
}

/* An absolute http(s) URL without spaces or control characters. */
static int valid_http_url(const char *s)
{
    size_t n = strlen(s);
    if (n > JOB_URL_MAX)
        return 0;
    size_t scheme = !strncasecmp(s, "http://", 7) ? 7 : !strncasecmp(s, "https://", 8) ? 8 : 0;
    if (!scheme || n == scheme || s[scheme] == '/')
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

static int get_bool(json_t *root, const char *key, int def, int *out, struct job_error *err)
{
    json_t *v = json_object_get(root, key);
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(err, "bad_field", "%s: expected true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int get_url(json_t *root, const char *key, char **out, struct job_error *err)
{
    const char *s;
    if (get_str(root, key, &s, err) < 0)
        return -1;
    if (!s)
        return 0;
    if (!valid_http_url(s))
        return fail(err, "bad_field", "%s: expected an http:// or https:// URL (at most %d bytes)",
                    key, JOB_URL_MAX);
    *out = xstrdup(s);
    return 0;
}

int job_parse(const char *body, size_t len, const char *message_id,
              const struct job_defaults *defs, struct job *job, struct job_error *err)
{
    memset(job, 0, sizeof(*job));
    memset(err, 0, sizeof(*err));
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (message_id && job_safe_name(message_id, JOB_ID_MAX))
            strlcpy_c2a(job->id, message_id, sizeof(job->id));
        return fail(err, "bad_json", "line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    }
    int rc = -1;
    const char *s;
    if (!json_is_object(root)) {
        fail(err, "bad_json", "a job is a JSON object");
        goto out;
    }

    /* id first, so every later error can name the job. */
    json_t *idv = json_object_get(root, "id");
    if (idv && !json_is_null(idv)) {
        if (!json_is_string(idv)) {
            fail(err, "bad_field", "id: expected a string");
            goto out;
        }
        s = json_string_value(idv);
    } else {
        s = message_id;
    }
    if (!s || !s[0]) {
        fail(err, "bad_field", "id: missing (and no AMQP message_id)");
        goto out;
    }
    if (!job_safe_name(s, JOB_ID_MAX)) {
        fail(err, "bad_field", "id: 1..%d of [A-Za-z0-9._-], not starting with '.'",
             JOB_ID_MAX);
        goto out;
    }
    strlcpy_c2a(job->id, s, sizeof(job->id));

    static const char *const sources[] = {"text", "ssml", "url"};
    int found = 0;
    for (size_t i = 0; i < ARRAY_LEN(sources); i++) {
        if (get_str(root, sources[i], &s, err) < 0)
            goto out;
        if (!s)
            continue;
        if (found++) {
            fail(err, "bad_field", "exactly one of text, ssml, url");
            goto out;
        }
        job->source = (enum job_source)i;
        size_t n = strlen(s);
        job->content = xmalloc(n + 1);
        memcpy(job->content, s, n + 1);
        job->content_len = n;
    }
    if (!found) {
        fail(err, "bad_field", "one of text, ssml, url is required");
        goto out;
    }
    if (job->source == JOB_URL) {
        if (!valid_http_url(job->content)) {
            fail(err, "bad_field", "url: expected an http:// or https:// URL (at most %d bytes)",
                 JOB_URL_MAX);
            goto out;
        }
    } else if (job_utf8_chars(job->content, job->content_len) > (size_t)defs->max_chars) {
        fail(err, "too_large", "%s: longer than %d characters",
             job->source == JOB_TEXT ? "text" : "ssml", defs->max_chars);
        goto out;
    }
    job->content_len = job_strip_controls(job->content, job->content_len);
    if (job->content_len == 0) {
        fail(err, "bad_field", "%s: empty", job->source == JOB_TEXT ? "text" : "ssml");
        goto out;
    }

    if (get_str(root, "engine", &s, err) < 0)
        goto out;
    s = s ? s : defs->engine;
    if (strcmp(s, "espeak") == 0) {
        job->engine = ENGINE_ESPEAK;
    } else if (strcmp(s, "http") == 0) {
        if (!defs->http_configured) {
            fail(err, "bad_field", "engine: http needs [speech] http_url in the configuration");
            goto out;
        }
        job->engine = ENGINE_HTTP;
    } else {
        fail(err, "bad_field", "engine: expected espeak or http");
        goto out;
    }

    if (get_str(root, "voice", &s, err) < 0)
        goto out;
    s = s ? s : job->engine == ENGINE_HTTP ? defs->http_voice : defs->voice;
    /* espeak-ng voices by identifier (gmw/en-US), language (en-us), +variant
     * (en+m3), or name as `espeak-ng --voices` prints it, '_' for ' '
     * ("English_(America)", "Chinese_(Mandarin,_latin_as_English)", "K'iche'") */
    if (strlen(s) == 0 || strlen(s) > JOB_VOICE_MAX ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+/(),'") !=
            strlen(s)) {
        fail(err, "bad_field", "voice: not a voice name");
        goto out;
    }
    strlcpy_c2a(job->voice, s, sizeof(job->voice));

    if (get_str(root, "format", &s, err) < 0)
        goto out;
    s = s ? s : defs->format;
    for (size_t i = 0; i < ARRAY_LEN(formats); i++)
        if (strcmp(s, formats[i]) == 0)
            strlcpy_c2a(job->format, s, sizeof(job->format));
    if (!job->format[0]) {
        fail(err, "bad_field", "format: expected wav, flac, ogg, opus or mp3");
        goto out;
    }

    if (get_int(root, "sample_rate", defs->sample_rate, 0, 192000, &job->sample_rate, err) < 0)
        goto out;
    if (job->sample_rate != 0 && job->sample_rate < 8000) {
        fail(err, "bad_field", "sample_rate: 0 or 8000..192000");
        goto out;
    }
    if (get_int(root, "rate", 175, 80, 450, &job->rate, err) < 0 ||
        get_int(root, "pitch", 50, 0, 99, &job->pitch, err) < 0 ||
        get_int(root, "volume", 100, 0, 200, &job->volume, err) < 0)
        goto out;

    if (get_bool(root, "marks", 0, &job->marks, err) < 0)
        goto out;
    if (get_str(root, "output", &s, err) < 0)
        goto out;
    if (s) {
        if (!job_safe_name(s, JOB_NAME_MAX)) {
            fail(err, "bad_field", "output: a file name of [A-Za-z0-9._-], not starting with '.'");
            goto out;
        }
        strlcpy_c2a(job->output, s, sizeof(job->output));
    }
    if (job->marks && job->engine == ENGINE_HTTP) {
        fail(err, "bad_field", "marks: only the espeak engine reports word timings");
        goto out;
    }
    if (get_url(root, "upload_url", &job->upload_url, err) < 0 ||
        get_url(root, "callback_url", &job->callback_url, err) < 0 ||
        get_bool(root, "keep_file", defs->keep_uploaded, &job->keep_file, err) < 0 ||
        get_bool(root, "include_text", 0, &job->include_text, err) < 0 ||
        get_bool(root, "progress", defs->progress, &job->progress, err) < 0 ||
        get_captions(root, defs->captions, &job->captions, err) < 0 ||
        get_bool(root, "cache", defs->cache, &job->cache, err) < 0 ||
        get_db(root, "loudness", defs->loudness, -70, -5, 1, &job->loudness, err) < 0 ||
        get_db(root, "true_peak", defs->true_peak, -9, 0, 0, &job->true_peak, err) < 0 ||
        get_tags(root, defs, job, err) < 0)
        goto out;
    json_t *cu = json_object_get(root, "captions_upload_url");
    if (cu && !json_is_null(cu)) {
        const char *key;
        json_t *v;
        if (!json_is_object(cu)) {
            fail(err, "bad_field", "captions_upload_url: expected {\"vtt\": URL, \"srt\": URL}");
            goto out;
        }
        json_object_foreach(cu, key, v)
        {
            int kind = strcmp(key, "vtt") == 0 ? 0 : strcmp(key, "srt") == 0 ? 1 : -1;
            if (kind < 0 || !(job->captions & (1 << kind))) {
                fail(err, "bad_field", "captions_upload_url: %.8s is not among the captions asked",
                     key);
                goto out;
            }
            if (get_url(cu, key, &job->captions_upload[kind], err) < 0)
                goto out;
        }
    }
    if (job->captions && job->source == JOB_SSML) {
        fail(err, "bad_field", "captions: not for ssml jobs (text and url jobs only)");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc < 0) {
        char id[sizeof(job->id)];
        memcpy(id, job->id, sizeof(id));
        job_clear(job);
        memcpy(job->id, id, sizeof(id));
    }
    return rc;
}
