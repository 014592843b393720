/* The http engine's request body, and the length of its WAV answers as their
 * headers tell (progress messages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../worker/tts_http.h"

static size_t put32(unsigned char *b, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[off + (size_t)i] = (unsigned char)(v >> (8 * i));
    return off + 4;
}

/* RIFF/WAVE with an extra chunk of extra bytes before fmt, rate Hz, channels,
 * 16-bit, data_len bytes of data whose size field says data_size. */
static size_t make_wav(unsigned char *b, uint32_t extra, uint32_t rate, uint16_t channels,
                       uint32_t data_len, uint32_t data_size)
{
    size_t o = 0;
    memcpy(b, "RIFF", 4);
    o = put32(b, 4, 0xffffffffu);
    memcpy(b + o, "WAVE", 4);
    o += 4;
    if (extra) {
        memcpy(b + o, "LIST", 4);
        o = put32(b, o + 4, extra);
        memset(b + o, 'x', extra + (extra & 1));
        o += extra + (extra & 1);
    }
    memcpy(b + o, "fmt ", 4);
    o = put32(b, o + 4, 16);
    b[o] = 1, b[o + 1] = 0, b[o + 2] = (unsigned char)channels, b[o + 3] = 0;
    o = put32(b, o + 4, rate);
    o = put32(b, o, rate * channels * 2);
    b[o] = (unsigned char)(channels * 2), b[o + 1] = 0, b[o + 2] = 16, b[o + 3] = 0;
    o += 4;
    memcpy(b + o, "data", 4);
    o = put32(b, o + 4, data_size);
    memset(b + o, 0, data_len);
    return o + data_len;
}

static void test_wav_lengths(void **state)
{
    (void)state;
    unsigned char *b = malloc(200000);
    /* a second of 24 kHz mono; half a second of 48 kHz stereo after a LIST */
    size_t n = make_wav(b, 0, 24000, 1, 48000, 48000);
    assert_int_equal(tts_wav_ms((char *)b, n), 1000);
    n = make_wav(b, 7, 48000, 2, 96000, 96000);
    assert_int_equal(tts_wav_ms((char *)b, n), 500);
    /* a streaming server's unknown size (either way): what follows the header */
    n = make_wav(b, 0, 24000, 1, 12000, 0xffffffffu);
    assert_int_equal(tts_wav_ms((char *)b, n), 250);
    n = make_wav(b, 0, 24000, 1, 12000, 0);
    assert_int_equal(tts_wav_ms((char *)b, n), 250);
    /* cut short: what arrived */
    n = make_wav(b, 0, 24000, 1, 48000, 96000);
    assert_int_equal(tts_wav_ms((char *)b, n), 1000);
    /* no fmt before data, a chunk past the end, not WAV, too short: 0 */
    n = make_wav(b, 0, 24000, 1, 480, 480);
    memcpy(b + 12, "junk", 4);
    assert_int_equal(tts_wav_ms((char *)b, n), 0);
    n = make_wav(b, 0, 24000, 1, 480, 480);
    put32(b, 16, 0xfffffff0u);
    assert_int_equal(tts_wav_ms((char *)b, n), 0);
    n = make_wav(b, 0, 0, 1, 480, 480);
    assert_int_equal(tts_wav_ms((char *)b, n), 0);
    memcpy(b + 8, "AVI ", 4);
    assert_int_equal(tts_wav_ms((char *)b, n), 0);
    assert_int_equal(tts_wav_ms((char *)b, 11), 0);
    assert_int_equal(tts_wav_ms("", 0), 0);
    free(b);
}

static void test_request_body(void **state)
{
    (void)state;
    char *body = tts_http_request("tts-1", "nova", 700, "Hi \"there\".");
    json_t *doc = json_loads(body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "input")), "Hi \"there\".");
    assert_string_equal(json_string_value(json_object_get(doc, "response_format")), "wav");
    assert_true(json_real_value(json_object_get(doc, "speed")) == 4.0); /* clamped */
    json_decref(doc);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wav_lengths),
        cmocka_unit_test(test_request_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
