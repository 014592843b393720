/* Voice resolution against a hand-made list shaped like espeak-ng 1.51's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../worker/voices.h"

static struct voice_list list;

/* Languages are packed as espeak_VOICE.languages: priority byte, code, NUL,
 * ..., and a final 0 (the literal's own NUL). */
static int setup(void **state)
{
    (void)state;
    memset(&list, 0, sizeof(list));
    voices_add(&list, "English (Great Britain)", "gmw/en", "\002en-gb\0\002en\0", 0);
    voices_add(&list, "English (America)", "gmw/en-US", "\002en-us\0\003en\0", 0);
    voices_add(&list, "English (Scotland)", "gmw/en-GB-scotland", "\005en-gb-scotland\0\004en\0",
               0);
    voices_add(&list, "German", "gmw/de", "\005de\0", 0);
    voices_add(&list, "French (France)", "roa/fr", "\005fr-fr\0\005fr\0", 0);
    voices_add(&list, "French (Belgium)", "roa/fr-BE", "\005fr-be\0\010fr\0", 0);
    voices_add(&list, "Chinese (Mandarin, latin as English)", "sit/cmn",
               "\005cmn\0\005zh-cmn\0\005zh\0", 0);
    voices_add(&list, "Basque", "eu", "\005eu\0", 0);
    voices_add(&list, "Cherokee ", "iro/chr", "\005chr-US-Qaaa-x-west\0", 0);
    voices_add(&list, "english-mb-en1", "mb/mb-en1", "\005en-uk\0", 0);
    voices_add(&list, "german-mbrola-1", "mb/mb-de1", "\005de\0", 0);
    voices_add_variant(&list, "male3", "m3");
    voices_add_variant(&list, "male1", "m1");
    voices_add_variant(&list, "female2", "f2");
    voices_add_variant(&list, "klatt", "klatt");
    voices_add_variant(&list, "Mr_Serious", "Mr serious");
    voices_add_variant(&list, "Alex", "Alex");
    voices_add_variant(&list, "long", "abcdefghijabcdefghijabcdefghijabcdefg"); /* 37 */
    voices_add_variant(&list, "long2", "abcdefghijabcdefghijabcdefghij");       /* 30 */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    voices_free(&list);
    return 0;
}

static void ok(const char *spec, int allow_mbrola, const char *espeak, const char *language)
{
    struct voice_choice c;
    char err[256] = "";
    if (voices_resolve(&list, spec, allow_mbrola, &c, err, sizeof(err)) != 0)
        fail_msg("%s: %s", spec, err);
    assert_string_equal(c.espeak, espeak);
    assert_string_equal(c.language, language);
    const char *plus = strchr(espeak, '+');
    assert_int_equal(strlen(c.identifier), plus ? (size_t)(plus - espeak) : strlen(espeak));
    assert_string_equal(c.variant, plus ? plus + 1 : "");
}

static void bad(const char *spec, int allow_mbrola, const char *msg)
{
    struct voice_choice c;
    char err[256] = "";
    assert_int_equal(voices_resolve(&list, spec, allow_mbrola, &c, err, sizeof(err)), -1);
    if (!strstr(err, msg))
        fail_msg("%s: '%s' does not contain '%s'", spec, err, msg);
}

static void test_by_file(void **state)
{
    (void)state;
    ok("gmw/en-US", 0, "gmw/en-US", "en-us");
    ok("GMW/EN-us", 0, "gmw/en-US", "en-us");
    ok("gmw/en", 0, "gmw/en", "en-gb");
    ok("eu", 0, "eu", "eu");
    /* the last part of a file name, as espeak-ng matches it */
    ok("en-us", 0, "gmw/en-US", "en-us");
    ok("en-GB-scotland", 0, "gmw/en-GB-scotland", "en-gb-scotland");
    ok("fr", 0, "roa/fr", "fr-fr");
    ok("de", 0, "gmw/de", "de");
}

static void test_by_name(void **state)
{
    (void)state;
    ok("English (America)", 0, "gmw/en-US", "en-us");
    ok("english (america)", 0, "gmw/en-US", "en-us");
    ok("English_(America)", 0, "gmw/en-US", "en-us"); /* as espeak-ng --voices prints it */
    ok("Chinese_(Mandarin,_latin_as_English)", 0, "sit/cmn", "cmn");
    ok("German", 0, "gmw/de", "de");
    ok("Cherokee_", 0, "iro/chr", "chr-us-qaaa-x-west");
}

static void test_by_language(void **state)
{
    (void)state;
    ok("en", 0, "gmw/en", "en-gb"); /* a file too, and the best en voice */
    ok("en-gb", 0, "gmw/en", "en-gb");
    ok("EN-GB", 0, "gmw/en", "en-gb");
    ok("en-uk", 0, "gmw/en", "en-gb"); /* the mbrola voice's language, but never mbrola */
    ok("en-gb-x-rp", 0, "gmw/en", "en-gb");
    ok("fr-fr", 0, "roa/fr", "fr-fr");
    ok("fr-be", 0, "roa/fr-BE", "fr-be");
    ok("fr-ca", 0, "roa/fr", "fr-fr");
    ok("de-de", 0, "gmw/de", "de");
    ok("de-AT", 0, "gmw/de", "de");
    ok("zh", 0, "sit/cmn", "cmn");
    ok("chr-US-Qaaa-x-west", 0, "iro/chr", "chr-us-qaaa-x-west");
}

static void test_variants(void **state)
{
    (void)state;
    ok("en+m3", 0, "gmw/en+m3", "en-gb");
    ok("en-us+klatt", 0, "gmw/en-US+klatt", "en-us");
    ok("en-us+KLATT", 0, "gmw/en-US+klatt", "en-us");
    ok("en+male3", 0, "gmw/en+m3", "en-gb");  /* by name */
    ok("en+alex", 0, "gmw/en+Alex", "en-gb"); /* the file's own case */
    ok("en+Mr_Serious", 0, "gmw/en+Mr serious", "en-gb");
    ok("en+mr_serious", 0, "gmw/en+Mr serious", "en-gb");
    ok("en+3", 0, "gmw/en+m3", "en-gb");     /* espeak-ng's numbers: 1-9 male */
    ok("en+12", 0, "gmw/en+f2", "en-gb");    /* 11-15 female */
    ok("fr-fr+f2", 0, "roa/fr+f2", "fr-fr"); /* a language keeps its variant */
    ok("English_(America)+female2", 0, "gmw/en-US+f2", "en-us");
    ok("eu+long2", 0, "eu+abcdefghijabcdefghijabcdefghij", "eu");
}

static void test_mbrola(void **state)
{
    (void)state;
    bad("mb/mb-en1", 0, "mbrola");
    bad("mb-en1", 0, "mbrola");
    bad("english-mb-en1", 0, "mbrola");
    ok("mb/mb-en1", 1, "mb/mb-en1", "en-uk");
    ok("mb-de1+m3", 1, "mb/mb-de1+m3", "de");
    ok("de", 1, "gmw/de", "de"); /* a language never picks an mbrola voice */
    struct voice_choice c;
    char err[256];
    assert_int_equal(voices_resolve(&list, "mb-en1", 1, &c, err, sizeof(err)), 0);
    assert_true(c.mbrola);
    assert_int_equal(voices_resolve(&list, "en", 1, &c, err, sizeof(err)), 0);
    assert_false(c.mbrola);
}

static void test_errors(void **state)
{
    (void)state;
    bad("xx", 0, "voice: xx is not installed (try one of: ");
    bad("eng", 0, "(try one of: en-gb, en-us, en-gb-scotland)");
    bad("klatt", 0, "klatt is not installed"); /* a variant is no voice */
    bad("en+zz", 0, "voice: variant zz is not installed (try one of: m3, m1, f2, klatt, ");
    bad("en+0", 0, "variant 0 is not installed");
    bad("en+9", 0, "variant 9 is not installed");
    bad("en+", 0, "not a voice");
    bad("+m3", 0, "not a voice");
    bad("", 0, "characters");
    /* what espeak-ng's buffers cannot hold: "!v/" + 37 in 40 bytes */
    bad("en+long", 0, "longer than espeak-ng can load");
    /* identifier + "+" + file in 40 bytes: 18 + 1 + 30 */
    bad("en-GB-scotland+long2", 0, "longer than espeak-ng can load");
    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bad(big, 0, "characters");
    big[100] = '\0';
    bad(big, 0, "is not installed");
    /* the message fits a short buffer, truncated */
    struct voice_choice c;
    char small[24];
    assert_int_equal(voices_resolve(&list, "xx", 0, &c, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_add(void **state)
{
    (void)state;
    struct voice_list l;
    memset(&l, 0, sizeof(l));
    char longname[VOICES_STR_MAX + 1];
    memset(longname, 'x', VOICES_STR_MAX);
    longname[VOICES_STR_MAX] = '\0';
    assert_int_equal(voices_add(&l, longname, "a/b", "\005ab\0", 0), -1);
    assert_int_equal(voices_add(&l, "A", longname, "\005ab\0", 0), -1);
    assert_int_equal(voices_add(&l, "", "a/b", "\005ab\0", 0), -1);
    assert_int_equal(voices_add_variant(&l, "v", longname), -1);
    assert_int_equal(voices_add(&l, "A", "a/b", "\005AB-cd\0\007ab\0", 40), 0);
    assert_int_equal(l.n_voices, 1);
    assert_int_equal(l.voices[0].n_langs, 2);
    assert_string_equal(l.voices[0].langs[0].code, "ab-cd");
    assert_int_equal(l.voices[0].langs[1].priority, 7);
    assert_int_equal(l.voices[0].age, 40);
    assert_false(l.voices[0].mbrola);
    voices_free(&l);
    assert_null(l.voices);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_file),     cmocka_unit_test(test_by_name),
        cmocka_unit_test(test_by_language), cmocka_unit_test(test_variants),
        cmocka_unit_test(test_mbrola),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_add),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
