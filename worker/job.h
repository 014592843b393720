/*
 * A job: the JSON message a producer publishes, parsed and validated. Parsing is
 * pure (no I/O) so the unit tests cover every rule; anything a job can get wrong
 * is a permanent error with a stable code (SPEC section 4).
 */
#ifndef C2A_JOB_H
#define C2A_JOB_H

#include <stddef.h>

#define JOB_ID_MAX 128
#define JOB_VOICE_MAX 64
#define JOB_NAME_MAX 200

enum job_source { JOB_TEXT, JOB_SSML, JOB_URL };
enum job_engine { ENGINE_ESPEAK, ENGINE_HTTP };

#define JOB_URL_MAX 4096

/* Tags written into the audio file (job field "metadata"), in this order. */
enum job_tag { TAG_TITLE, TAG_ARTIST, TAG_ALBUM, TAG_COMMENT, TAG_DATE, TAG_LANGUAGE, JOB_TAGS };
#define JOB_TAG_MAX 1024 /* bytes of one tag */
extern const char *const job_tag_names[JOB_TAGS];

struct job_defaults {
    const char *voice;
    const char *format;
    int sample_rate;
    int max_chars;
    const char *engine;      /* espeak or http */
    const char *http_voice;  /* the voice of the http engine */
    int http_configured;     /* [speech] http_url is set */
    int keep_uploaded;
    int progress;
    int captions;
    int loudness, true_peak; /* [output]: LUFS (0 = off) and dBTP */
    int cache;
    const char *tags[JOB_TAGS]; /* [output] metadata_*; NULL or "" for none */
};

struct job {
    char id[JOB_ID_MAX + 1];
    enum job_source source;
    char *content; /* text or SSML (control characters stripped) or the URL; owned */
    size_t content_len;
    char voice[JOB_VOICE_MAX + 1];
    char format[8];
    int sample_rate; /* 0 = the engine's rate; opus: a legal rate, see job_parse */
    int rate, pitch, volume;
    int marks;
    char output[JOB_NAME_MAX + 1]; /* file name inside the output dir; "" = <id>.<ext> */
    enum job_engine engine;
    char *upload_url;   /* PUT the audio here; owned, NULL for none */
    char *callback_url; /* POST the result here; owned, NULL for none */
    char *captions_upload[2]; /* PUT the vtt, srt captions here; owned, NULL for none */
    int keep_file;      /* with upload_url: keep the local file too */
    int include_text;   /* the result carries the text that was spoken */
    int progress;       /* progress messages to reply_to while it is spoken */
    int captions;       /* CAPTIONS_VTT | CAPTIONS_SRT (captions.h) files beside the audio */
    int cache;          /* reuse an identical earlier output (cache.h) */
    double loudness;    /* target integrated loudness, LUFS; 0 = as synthesized */
    double true_peak;   /* ceiling, dBTP, with loudness */
    char *tags[JOB_TAGS]; /* owned; NULL for none */
};

struct job_error {
    char code[32];     /* bad_json, bad_field, too_large, ... */
    char message[256];
};

/* Parse body into job. message_id (may be NULL) is the default id. Returns 0, or
 * -1 with err filled; on error job->id still holds the id when one was found, so
 * the error result can name it. The caller frees with job_clear(). */
int job_parse(const char *body, size_t len, const char *message_id,
              const struct job_defaults *defs, struct job *job, struct job_error *err);
void job_clear(struct job *job);

/* A name that is safe as a file name in the output dir: 1..max of
 * [A-Za-z0-9._-], not starting with '.'. */
int job_safe_name(const char *s, size_t max);

/* The nearest sample rate Opus accepts (8000, 12000, 16000, 24000, 48000). */
int job_opus_rate(int hz);

/* Characters (code points) in s[0..len), which is UTF-8. */
size_t job_utf8_chars(const char *s, size_t len);

/* Remove C0 control characters except tab, newline and CR, in place; returns the
 * new length. Byte 0x01 would start espeak's embedded commands. */
size_t job_strip_controls(char *s, size_t len);

#endif
