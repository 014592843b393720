/* Captions: cues per sentence, word timestamps in WebVTT, every character in
 * one cue, escaping, and times that never run backwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../worker/captions.h"

static const char TEXT[] = "Hello  <world> & co.\nSecond one.";
static const struct cap_event EV[] = {
    {1, 0, 0},     {0, 0, 0},      {0, 7, 400},  {0, 15, 700}, /* Hello, <world>, & */
    {0, 17, 750},  {1, 21, 1000},  {0, 21, 1000}, {0, 28, 1400}, /* co., Second, one */
    {0, 25, 1200}, /* out of order: ignored */
    {1, 99, 5000}, /* past the text: ignored */
};

static void test_vtt(void **state)
{
    (void)state;
    char *s = captions_build(TEXT, strlen(TEXT), EV, sizeof(EV) / sizeof(EV[0]), 2000,
                             CAPTIONS_VTT);
    assert_string_equal(s, "WEBVTT\n\n"
                           "00:00:00.000 --> 00:00:01.000\n"
                           "Hello <00:00:00.400>&lt;world&gt; <00:00:00.700>&amp; "
                           "<00:00:00.750>co.\n\n"
                           "00:00:01.000 --> 00:00:02.000\n"
                           "Second <00:00:01.400>one.\n\n");
    free(s);
}

static void test_srt(void **state)
{
    (void)state;
    char *s = captions_build(TEXT, strlen(TEXT), EV, sizeof(EV) / sizeof(EV[0]), 2000,
                             CAPTIONS_SRT);
    assert_string_equal(s, "1\n00:00:00,000 --> 00:00:01,000\nHello <world> & co.\n\n"
                           "2\n00:00:01,000 --> 00:00:02,000\nSecond one.\n\n");
    free(s);
}

/* No events at all: one cue for the whole text; sentences at the same time
 * share a cue; UTF-8 positions are characters. */
static void test_edges(void **state)
{
    (void)state;
    char *s = captions_build("Éa. Bé.", strlen("Éa. Bé."), NULL, 0, 1500, CAPTIONS_SRT);
    assert_string_equal(s, "1\n00:00:00,000 --> 00:00:01,500\nÉa. Bé.\n\n");
    free(s);
    static const struct cap_event same[] = {{1, 0, 0}, {1, 4, 0}};
    s = captions_build("Éa. Bé.", strlen("Éa. Bé."), same, 2, 1500, CAPTIONS_SRT);
    assert_string_equal(s, "1\n00:00:00,000 --> 00:00:01,500\nÉa. Bé.\n\n");
    free(s);
    static const struct cap_event two[] = {{1, 0, 0}, {1, 4, 600}};
    s = captions_build("Éa. Bé.", strlen("Éa. Bé."), two, 2, 1500, CAPTIONS_SRT);
    assert_string_equal(s, "1\n00:00:00,000 --> 00:00:00,600\nÉa.\n\n"
                           "2\n00:00:00,600 --> 00:00:01,500\nBé.\n\n");
    free(s);
    char name[64];
    captions_name("a-1.ogg", CAPTIONS_VTT, name, sizeof(name));
    assert_string_equal(name, "a-1.vtt");
    captions_name("noext", CAPTIONS_SRT, name, sizeof(name));
    assert_string_equal(name, "noext.srt");
    captions_name(".hidden", CAPTIONS_SRT, name, sizeof(name));
    assert_string_equal(name, ".hidden.srt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vtt),
        cmocka_unit_test(test_srt),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests_name("captions", tests, NULL, NULL);
}
