/*
 * libFuzzer target: job_parse(), the JSON a producer publishes.
 *
 * Input: the AMQP message_id, a newline, then the message body. Without a
 * newline the whole input is the body and the message has no message_id.
 * Every input is parsed twice, with the defaults of the example configuration
 * (espeak engine, no http_url) and with those of an http-engine configuration,
 * and the result is checked against what job.h promises; a broken promise
 * aborts, so the fuzzer reports it like a crash.
 */
#include "../../worker/job.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct job_defaults defaults[] = {
    /* conf/c2a-worker.conf as shipped */
    {"en-us", "wav", 0, 100000, "espeak", "alloy", 0, 1},
    /* engine = http with http_url set; a small max_chars so too_large is reachable */
    {"en-us", "opus", 24000, 64, "http", "alloy", 1, 0},
};

static const char *const codes[] = {"bad_json", "bad_field", "too_large"};

static void check_error(const struct job *job, const struct job_error *err)
{
    int known = 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        known |= strcmp(err->code, codes[i]) == 0;
    if (!known || !err->message[0] || memchr(err->message, '\0', sizeof(err->message)) == NULL)
        abort();
    /* On error only the id survives, and it is safe or empty. */
    if (job->content || job->upload_url || job->callback_url)
        abort();
    if (job->id[0] && !job_safe_name(job->id, JOB_ID_MAX))
        abort();
}

static void check_job(const struct job *job, const struct job_defaults *defs)
{
    if (!job_safe_name(job->id, JOB_ID_MAX))
        abort();
    if (!job->content || job->content_len == 0 || strlen(job->content) != job->content_len)
        abort();
    for (size_t i = 0; i < job->content_len; i++) {
        unsigned char c = (unsigned char)job->content[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            abort();
    }
    if (job->source != JOB_URL &&
        job_utf8_chars(job->content, job->content_len) > (size_t)defs->max_chars)
        abort();
    if (!job->voice[0] || !job->format[0])
        abort();
    if (job->sample_rate != 0 && (job->sample_rate < 8000 || job->sample_rate > 192000))
        abort();
    if (job->engine == ENGINE_HTTP && (!defs->http_configured || job->marks))
        abort();
    if (job->output[0] && !job_safe_name(job->output, JOB_NAME_MAX))
        abort();
    /* What the encoder makes of an Opus job's rate. */
    if (job->sample_rate && strcmp(job->format, "opus") == 0) {
        int r = job_opus_rate(job->sample_rate);
        if (r != 8000 && r != 12000 && r != 16000 && r != 24000 && r != 48000)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    char *message_id = NULL;
    const char *body = in;
    size_t len = size;
    if (nl) {
        size_t idlen = (size_t)(nl - in);
        if (idlen > 0) {
            /* An AMQP short string: at most 255 bytes, and a C string here. */
            if (idlen > 255 || memchr(in, '\0', idlen))
                return 0;
            message_id = malloc(idlen + 1);
            if (!message_id)
                return 0;
            memcpy(message_id, in, idlen);
            message_id[idlen] = '\0';
        }
        body = nl + 1;
        len = size - idlen - 1;
    }
    /* A copy of exactly len bytes, so ASan sees any read past the body. */
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        free(message_id);
        return 0;
    }
    memcpy(copy, body, len);

    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        struct job job;
        struct job_error err;
        if (job_parse(copy, len, message_id, &defaults[i], &job, &err) == 0)
            check_job(&job, &defaults[i]);
        else
            check_error(&job, &err);
        job_clear(&job);
    }
    free(copy);
    free(message_id);
    return 0;
}
