/* Job parsing: every rule a producer can break has a code and a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../worker/job.h"

static const struct job_defaults defs = {"en-us", "wav", 0, 100, "espeak", "alloy", 1, 1};

static int parse(const char *body, const char *msgid, struct job *j, struct job_error *e)
{
    return job_parse(body, strlen(body), msgid, &defs, j, e);
}

static void test_full_job(void **state)
{
    (void)state;
    struct job j;
    struct job_error e;
    assert_int_equal(parse("{\"id\":\"a-1\",\"text\":\"Hello\",\"voice\":\"de\",\"format\":\"ogg\","
                           "\"sample_rate\":24000,\"rate\":200,\"pitch\":40,\"volume\":90,"
                           "\"marks\":true,\"output\":\"x.ogg\"}",
                           NULL, &j, &e),
                     0);
    assert_string_equal(j.id, "a-1");
    assert_int_equal(j.source, JOB_TEXT);
    assert_string_equal(j.content, "Hello");
    assert_string_equal(j.voice, "de");
    assert_string_equal(j.format, "ogg");
    assert_int_equal(j.sample_rate, 24000);
    assert_int_equal(j.rate, 200);
    assert_int_equal(j.pitch, 40);
    assert_int_equal(j.volume, 90);
    assert_true(j.marks);
    assert_string_equal(j.output, "x.ogg");
    job_clear(&j);
}

static void test_defaults_and_message_id(void **state)
{
    (void)state;
    struct job j;
    struct job_error e;
    assert_int_equal(parse("{\"ssml\":\"<speak>Hi</speak>\"}", "m-7", &j, &e), 0);
    assert_string_equal(j.id, "m-7");
    assert_int_equal(j.source, JOB_SSML);
    assert_string_equal(j.voice, "en-us");
    assert_string_equal(j.format, "wav");
    assert_int_equal(j.rate, 175);
    assert_int_equal(j.pitch, 50);
    assert_int_equal(j.volume, 100);
    assert_false(j.marks);
    job_clear(&j);
}

static void expect(const char *body, const char *msgid, const char *code, const char *msg)
{
    struct job j;
    struct job_error e;
    assert_int_equal(parse(body, msgid, &j, &e), -1);
    assert_string_equal(e.code, code);
    if (msg && !strstr(e.message, msg))
        fail_msg("'%s' does not contain '%s'", e.message, msg);
    job_clear(&j);
}

static void test_errors(void **state)
{
    (void)state;
    expect("{not json", NULL, "bad_json", "line 1");
    expect("[1,2]", NULL, "bad_json", "object");
    expect("{\"text\":\"a\",\"text\":\"b\"}", "x", "bad_json", "duplicate");
    expect("{\"text\":\"hi\"}", NULL, "bad_field", "id: missing");
    expect("{\"id\":\"../etc/passwd\",\"text\":\"hi\"}", NULL, "bad_field", "id:");
    expect("{\"id\":\".hidden\",\"text\":\"hi\"}", NULL, "bad_field", "id:");
    expect("{\"id\":7,\"text\":\"hi\"}", NULL, "bad_field", "id: expected a string");
    expect("{\"id\":\"a\"}", NULL, "bad_field", "one of text, ssml, url");
    expect("{\"id\":\"a\",\"text\":\"x\",\"ssml\":\"y\"}", NULL, "bad_field", "exactly one");
    expect("{\"id\":\"a\",\"text\":5}", NULL, "bad_field", "text: expected a string");
    expect("{\"id\":\"a\",\"text\":\"\\u0001\\u0002\"}", NULL, "bad_field", "empty");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"format\":\"aac\"}", NULL, "bad_field", "format");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"voice\":\"en us\"}", NULL, "bad_field", "voice");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"voice\":\"en;us\"}", NULL, "bad_field", "voice");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"voice\":\"M\\u0101ori\"}", NULL, "bad_field", "voice");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"rate\":1000}", NULL, "bad_field", "rate: 1000");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"rate\":\"fast\"}", NULL, "bad_field", "rate");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"sample_rate\":100}", NULL, "bad_field", "sample_rate");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"marks\":1}", NULL, "bad_field", "marks");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"output\":\"a/b\"}", NULL, "bad_field", "output");
    expect("{\"id\":\"a\",\"url\":\"ftp://x/\"}", NULL, "bad_field", "url: expected an http");
    expect("{\"id\":\"a\",\"url\":\"http://x/a b\"}", NULL, "bad_field", "url");
    expect("{\"id\":\"a\",\"url\":\"file:///etc/passwd\"}", NULL, "bad_field", "url");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"upload_url\":\"gopher://x\"}", NULL, "bad_field",
           "upload_url");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"callback_url\":3}", NULL, "bad_field",
           "callback_url: expected a string");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"engine\":\"festival\"}", NULL, "bad_field", "engine");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"engine\":\"http\",\"marks\":true}", NULL,
           "bad_field", "marks: only the espeak");
    expect("{\"id\":\"a\",\"text\":\"hi\",\"keep_file\":\"no\"}", NULL, "bad_field", "keep_file");
    /* 101 characters (multi-byte ones count once) against max_chars = 100 */
    char big[512] = "{\"id\":\"a\",\"text\":\"";
    for (int i = 0; i < 101; i++)
        strcat(big, "\xc3\xa9");
    strcat(big, "\"}");
    expect(big, NULL, "too_large", "longer than 100");
}

/* Voices as espeak-ng names them: the characters of `espeak-ng --voices`. */
static void test_voice_names(void **state)
{
    (void)state;
    static const char *const voices[] = {
        "gmw/en-US", "en-us+m3",      "English_(America)", "Chinese_(Mandarin,_latin_as_English)",
        "K'iche'",   "en+Mr_Serious",
    };
    for (size_t i = 0; i < sizeof(voices) / sizeof(voices[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"id\":\"a\",\"text\":\"hi\",\"voice\":\"%s\"}", voices[i]);
        struct job j;
        struct job_error e;
        assert_int_equal(parse(body, NULL, &j, &e), 0);
        assert_string_equal(j.voice, voices[i]);
        job_clear(&j);
    }
}

static void test_id_survives_errors(void **state)
{
    (void)state;
    struct job j;
    struct job_error e;
    assert_int_equal(parse("{\"id\":\"j-9\",\"text\":\"hi\",\"format\":\"x\"}", NULL, &j, &e), -1);
    assert_string_equal(j.id, "j-9");
    job_clear(&j);
    assert_int_equal(parse("garbage", "m-1", &j, &e), -1);
    assert_string_equal(j.id, "m-1");
    job_clear(&j);
}

static void test_http_fields(void **state)
{
    (void)state;
    struct job j;
    struct job_error e;
    assert_int_equal(parse("{\"id\":\"u\",\"url\":\"https://example.org/a?b=c\","
                           "\"upload_url\":\"http://up.example/x.wav\","
                           "\"callback_url\":\"http://cb.example/\",\"engine\":\"http\","
                           "\"keep_file\":false,\"include_text\":true}",
                           NULL, &j, &e),
                     0);
    assert_int_equal(j.source, JOB_URL);
    assert_string_equal(j.content, "https://example.org/a?b=c");
    assert_string_equal(j.upload_url, "http://up.example/x.wav");
    assert_string_equal(j.callback_url, "http://cb.example/");
    assert_int_equal(j.engine, ENGINE_HTTP);
    assert_string_equal(j.voice, "alloy"); /* the http engine's default voice */
    assert_false(j.keep_file);
    assert_true(j.include_text);
    job_clear(&j);
    assert_int_equal(parse("{\"id\":\"v\",\"text\":\"x\"}", NULL, &j, &e), 0);
    assert_int_equal(j.engine, ENGINE_ESPEAK);
    assert_null(j.upload_url);
    assert_true(j.keep_file);
    job_clear(&j);
    /* Without [speech] http_url the engine cannot be chosen. */
    struct job_defaults d = defs;
    d.http_configured = 0;
    const char *b = "{\"id\":\"w\",\"text\":\"x\",\"engine\":\"http\"}";
    assert_int_equal(job_parse(b, strlen(b), NULL, &d, &j, &e), -1);
    assert_string_equal(e.code, "bad_field");
    assert_string_equal(j.id, "w");
}

/* Tags: the job's, else the defaults; "" writes none; controls removed;
 * unknown keys and wrong types refused. */
static void test_metadata(void **state)
{
    (void)state;
    struct job_defaults d = defs;
    d.tags[TAG_ARTIST] = "House Voice";
    d.tags[TAG_ALBUM] = "Daily";
    struct job j;
    struct job_error e;
    assert_int_equal(job_parse("{\"text\":\"x\",\"metadata\":{\"title\":\"T\\u0001itle\","
                               "\"album\":\"\",\"date\":\"2026-12-07\"}}",
                               strlen("{\"text\":\"x\",\"metadata\":{\"title\":\"T\\u0001itle\","
                                      "\"album\":\"\",\"date\":\"2026-12-07\"}}"),
                               "m", &d, &j, &e),
                     0);
    assert_string_equal(j.tags[TAG_TITLE], "Title");
    assert_string_equal(j.tags[TAG_ARTIST], "House Voice");
    assert_null(j.tags[TAG_ALBUM]);
    assert_null(j.tags[TAG_COMMENT]);
    assert_string_equal(j.tags[TAG_DATE], "2026-12-07");
    job_clear(&j);
    assert_int_equal(job_parse("{\"text\":\"x\"}", 12, "m", &d, &j, &e), 0);
    assert_string_equal(j.tags[TAG_ALBUM], "Daily");
    job_clear(&j);
    expect("{\"text\":\"x\",\"metadata\":[1]}", "m", "bad_field", "metadata: expected an object");
    expect("{\"text\":\"x\",\"metadata\":{\"lang\":\"en\"}}", "m", "bad_field",
           "lang is not a tag");
    expect("{\"text\":\"x\",\"metadata\":{\"language\":\"en_US\"}}", "m", "bad_field",
           "metadata.language: en_US is not a language tag");
    expect("{\"text\":\"x\",\"metadata\":{\"language\":\"-en\"}}", "m", "bad_field",
           "not a language tag");
    d.tags[TAG_LANGUAGE] = "en";
    assert_int_equal(job_parse("{\"text\":\"x\",\"metadata\":{\"language\":\"zh-Hant-TW\"}}",
                               strlen("{\"text\":\"x\",\"metadata\":{\"language\":\"zh-Hant-TW\"}}"),
                               "m", &d, &j, &e),
                     0);
    assert_string_equal(j.tags[TAG_LANGUAGE], "zh-Hant-TW");
    job_clear(&j);
    assert_int_equal(job_parse("{\"text\":\"x\"}", 12, "m", &d, &j, &e), 0);
    assert_string_equal(j.tags[TAG_LANGUAGE], "en");
    job_clear(&j);
    expect("{\"text\":\"x\",\"metadata\":{\"title\":7}}", "m", "bad_field",
           "metadata.title: expected a string");
    char big[1200 + 64];
    int n = snprintf(big, sizeof(big), "{\"text\":\"x\",\"metadata\":{\"comment\":\"");
    memset(big + n, 'c', 1025);
    strcpy(big + n + 1025, "\"}}");
    expect(big, "m", "bad_field", "metadata.comment: longer than 1024 bytes");
}

static void test_loudness_and_captions(void **state)
{
    (void)state;
    struct job_defaults d = defs;
    d.loudness = -16;
    d.true_peak = -1;
    d.captions = 1;
    struct job j;
    struct job_error e;
    const char *body = "{\"text\":\"x\",\"true_peak\":-2.5,\"captions\":[\"srt\",\"vtt\"]}";
    assert_int_equal(job_parse(body, strlen(body), "m", &d, &j, &e), 0);
    assert_true(j.loudness == -16 && j.true_peak == -2.5 && j.captions == 3);
    job_clear(&j);
    body = "{\"text\":\"x\",\"loudness\":\"off\",\"captions\":\"none\"}";
    assert_int_equal(job_parse(body, strlen(body), "m", &d, &j, &e), 0);
    assert_true(j.loudness == 0 && j.captions == 0);
    job_clear(&j);
    expect("{\"text\":\"x\",\"loudness\":-80}", "m", "bad_field", "loudness: expected a number");
    expect("{\"text\":\"x\",\"true_peak\":\"off\"}", "m", "bad_field", "true_peak");
    expect("{\"text\":\"x\",\"captions\":[\"vtt\",7]}", "m", "bad_field", "captions");
    expect("{\"ssml\":\"<speak>x</speak>\",\"captions\":\"srt\"}", "m", "bad_field",
           "not for ssml");
}

static void test_helpers(void **state)
{
    (void)state;
    char s[] = "a\x01" "b\tc\x1b[0m\nd\x7f";
    assert_int_equal(job_strip_controls(s, strlen(s)), 9);
    assert_string_equal(s, "ab\tc[0m\nd");
    assert_int_equal(job_opus_rate(22050), 24000);
    assert_int_equal(job_opus_rate(44100), 48000);
    assert_int_equal(job_opus_rate(8000), 8000);
    assert_int_equal(job_opus_rate(10000), 12000); /* a tie goes up */
    assert_int_equal(job_opus_rate(96000), 48000);
    assert_true(job_safe_name("a-1.B_2", 128));
    assert_false(job_safe_name("", 128));
    assert_false(job_safe_name("a b", 128));
    assert_false(job_safe_name("abc", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_job),
        cmocka_unit_test(test_defaults_and_message_id),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_voice_names),
        cmocka_unit_test(test_id_survives_errors),
        cmocka_unit_test(test_http_fields),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_loudness_and_captions),
    };
    return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
