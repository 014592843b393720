/* Text normalisation: the inputs that crash espeak-ng 1.51 are changed,
 * ordinary prose and SSML markup come back byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../worker/normalize.h"

static char *norm(const char *s, int ssml, const char *lang)
{
    size_t n;
    char *r = normalize_text(s, strlen(s), ssml, lang, &n);
    assert_int_equal(n, strlen(r));
    return r;
}

static void same(const char *s, int ssml)
{
    char *r = norm(s, ssml, "en-us");
    assert_string_equal(r, s);
    free(r);
}

static void expect(const char *s, int ssml, const char *lang, const char *want)
{
    char *r = norm(s, ssml, lang);
    assert_string_equal(r, want);
    free(r);
}

static char *repeat(const char *pre, const char *unit, int n, const char *post)
{
    size_t u = strlen(unit), a = strlen(pre), b = strlen(post);
    char *s = malloc(a + u * (size_t)n + b + 1);
    memcpy(s, pre, a);
    for (int i = 0; i < n; i++)
        memcpy(s + a + u * (size_t)i, unit, u);
    memcpy(s + a + u * (size_t)n, post, b + 1);
    return s;
}

/* The longest run of single characters joined by dots in s, the way
 * espeak-ng's CheckDottedAbbrev collects them: "a.b", "a .b", "a . b",
 * "a.b. c" join, "a. b" does not. */
static int longest_dotted(const char *s)
{
    int best = 0, run = 0, joined = 0;
    const char *p = s;
    for (;;) {
        int word_start = p == s || p[-1] == ' ' || *p == ' ';
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == '.') {
            run = joined = 0;
            p++;
            continue;
        }
        const char *e = p;
        int cps = 0;
        for (; *e && *e != ' ' && *e != '.'; e++)
            cps += (*e & 0xc0) != 0x80;
        int letter = cps == 1 && !(*p > ' ' && *p < '0') && *p != ',' && *p != ';';
        run = !letter ? 0 : joined ? run + 1 : 1;
        best = run > best ? run : best;
        const char *q = e;
        int ws_before = 0, ws_after = 0;
        for (; *q == ' '; q++)
            ws_before = 1;
        joined = 0;
        if (*q == '.') {
            for (q++; *q == ' '; q++)
                ws_after = 1;
            joined = letter && !(word_start && ws_after && !ws_before);
        }
        p = q;
    }
    return best;
}

/* The longest run of characters without white space or punctuation other
 * than apostrophes, in code points. */
static int longest_word(const char *s)
{
    int best = 0, run = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) == 0x80)
            continue;
        if (*p == ' ' ||
            (*p < 0x80 && *p != '\'' &&
             !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))) {
            run = 0;
            continue;
        }
        run++;
        best = run > best ? run : best;
    }
    return best;
}

static void check_safe(const char *s, int ssml)
{
    char *r = norm(s, ssml, "en-us");
    assert_string_not_equal(r, s);
    if (longest_dotted(r) > NORMALIZE_DOTTED_MAX)
        fail_msg("dotted run of %d in '%.80s'", longest_dotted(r), r);
    if (longest_word(r) > NORMALIZE_WORD_MAX)
        fail_msg("word of %d in '%.80s'", longest_word(r), r);
    /* normalising again changes nothing */
    char *r2 = norm(r, ssml, "en-us");
    assert_string_equal(r2, r);
    free(r2);
    free(r);
}

static void test_prose_unchanged(void **state)
{
    (void)state;
    same("", 0);
    same("Hello, world.", 0);
    same("The U.S.A. and the U.K. signed it on 3.14.2015, i.e. on Pi Day; e.g. at 9 a.m. "
         "Mr. Smith's dog didn't bark... \"Really?\" she asked. 'Yes!' -- he said -- "
         "it cost $1,234.56 (about 10% more) & took 2-3 weeks: a well-known fact.\n\n"
         "Second paragraph\twith a tab, an em dash \xe2\x80\x94 and an ellipsis \xe2\x80\xa6 "
         "and ordinal 1st, 2nd, 3rd; ratio 16:9; path /usr/lib; C++ and C#; x^2 = 4!!\r\n",
         0);
    same("Rindfleischetikettierungs\xc3\xbc"
         "berwachungsaufgaben\xc3\xbc"
         "bertragungsgesetz "
         "und Donaudampfschifffahrtsgesellschaftskapit\xc3\xa4nswitwe.",
         0);
    same("Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch is in Wales.", 0);
    same("A. B. C. D. E. F. G. H. I. J. K. L. M. N. O. P. Q. R. S. T. U. V. W. X. Y. Z.", 0);
    same("\xe4\xb8\xad\xe6\x96\x87\xe5\x8f\xa5\xe5\xad\x90\xe6\xb2\xa1\xe6\x9c\x89\xe7\xa9\xba"
         "\xe6\xa0\xbc\xef\xbc\x8c\xe4\xb9\x9f\xe6\xb2\xa1\xe5\x85\xb3\xe7\xb3\xbb\xe3\x80\x82",
         0);
    /* Tamil, Bengali and Devanagari words (not digits) */
    same("\xe0\xae\xb5\xe0\xae\xa3\xe0\xae\x95\xe0\xaf\x8d\xe0\xae\x95\xe0\xae\xae\xe0\xaf\x8d "
         "\xe0\xa6\xac\xe0\xa6\xbe\xe0\xa6\x82\xe0\xa6\xb2\xe0\xa6\xbe "
         "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
         0);
    /* numbers, ellipses, dashes and rules below the thresholds */
    same("3.14159265358979 1.2.3.4 10.0.0.1 1,000,000 ... !!! ??? --- ** ==", 0);
    same("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", 0);                                  /* 16 letters */
    same("s's's's's's's's's's's's's's's's's's's's's's's's's's's's's's's's'", 0); /* 64 */
}

static void test_ssml_unchanged(void **state)
{
    (void)state;
    same("<speak>Hello <break time=\"300ms\"/> world.</speak>", 1);
    same("<?xml version=\"1.0\"?>\n<speak version=\"1.0\" xml:lang=\"en-US\">"
         "<p><s>One &amp; two &lt; three.</s></p><!-- a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a -->"
         "<prosody rate=\"slow\" pitch=\"+10%\">Slow &quot;words&quot;</prosody>"
         "<say-as interpret-as=\"characters\">U.S.A.</say-as>"
         "<sub alias=\"World Wide Web Consortium\">W3C</sub> &#169; 2024 &#x2014; "
         "<mark name=\"m1\"/>end&apos;s.</speak>",
         1);
    /* a '>' inside an attribute value does not end the tag */
    same("<speak><mark name=\"a>b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b.b\"/>hi</speak>", 1);
    /* the same text as plain text is text: its "tags" are not special */
    same("if a<b and c>d then 1 < 2", 0);
}

static void test_crashers_changed(void **state)
{
    (void)state;
    char *s;
    static const struct {
        const char *pre, *unit, *post;
        int n;
    } crashers[] = {
        {"", "a.", "", 85},
        {"", "a.", "", 300},
        {"", "A.", "", 85},
        {"http://", "a.", "com", 85},
        {"Read https://", "a.", "com/path?q=1 now.", 100},
        {"www.", "a.", "com", 100},
        {"", "s'", "", 100},
        {"", "'s", "", 70},
        {"good", "ness", "", 67},
        {"", "\xc3\xa9.", "", 150},
        {"", "\xc3\xa9.", "", 41},
        {"", "a .", "", 100},
        {"", "a . ", "", 100},
        {"", "x.y. ", "", 120},
        {"", "x.y.\t", "", 120},
        {"", "\xf0\x9d\x90\x9a.", "", 21},
        {"Hello world. ", "a.", " The end.", 100},
    };
    for (size_t i = 0; i < sizeof(crashers) / sizeof(crashers[0]); i++) {
        s = repeat(crashers[i].pre, crashers[i].unit, crashers[i].n, crashers[i].post);
        check_safe(s, 0);
        free(s);
        /* inside SSML, and with an entity for the dot */
        s = repeat("<speak><p>", crashers[i].unit, crashers[i].n, "</p></speak>");
        check_safe(s, 1);
        free(s);
    }
    s = repeat("<speak>", "a&#46;", 100, "</speak>");
    char *r = norm(s, 1, NULL);
    assert_string_not_equal(r, s);
    assert_non_null(strstr(r, "a&#46;a&#46;a ")); /* the entity counts as a dot */
    free(r);
    free(s);
    s = repeat("<speak>", "a.<emphasis>a</emphasis>.", 50, "</speak>");
    r = norm(s, 1, NULL);
    assert_string_not_equal(r, s); /* tags do not end a run */
    assert_int_equal(strstr(r, "<emphasis>") - r, strstr(s, "<emphasis>") - s);
    free(r);
    free(s);
}

static void test_code_points(void **state)
{
    (void)state;
    /* U+09E6 BENGALI DIGIT ZERO, U+0BFF (unassigned, Tamil block) */
    expect("x \xe0\xa7\xa6 y \xe0\xaf\xbf z", 0, "en-us", "x   y   z");
    expect("<speak>&#x9e6;&#3071;</speak>", 1, NULL, "<speak>  </speak>");
    /* a voice reading its own script keeps them */
    expect("\xe0\xa7\xa6\xe0\xa7\xa7", 0, "en", "  ");
    expect("\xe0\xa7\xa6\xe0\xa7\xa7", 0, "bn", "\xe0\xa7\xa6\xe0\xa7\xa7");
    expect("\xe0\xaf\xa6 \xe0\xaf\xbf", 0, "ta", "\xe0\xaf\xa6 \xe0\xaf\xbf");
    expect("\xe0\xaf\xa6", 0, "te", " ");
    /* U+0BAA TAMIL LETTER PA: alone it goes, in a word it stays */
    expect("\xe0\xae\xaa", 0, "en", " ");
    expect("(\xe0\xae\xaa)", 0, "en", "( )");
    expect("\xe0\xae\xaa\xe0\xae\xbe", 0, "en", "\xe0\xae\xaa\xe0\xae\xbe");
    /* old Hangul jamo, Georgian */
    expect("\xe1\x86\x80 \xe1\x83\xbb", 0, "de", "   ");
    /* other voices cannot spell a foreign letter: DEVANAGARI KA alone goes,
     * a word stays; English voices and Hindi keep both */
    expect("\xe0\xa4\x95 \xe0\xa4\x95\xe0\xa4\xbe", 0, "de", "  \xe0\xa4\x95\xe0\xa4\xbe");
    expect("\xe0\xa4\x95 \xe0\xa4\x95\xe0\xa4\xbe", 0, "fr-fr", "  \xe0\xa4\x95\xe0\xa4\xbe");
    expect("\xe0\xa4\x95 \xe0\xa4\x95\xe0\xa4\xbe", 0, NULL, "  \xe0\xa4\x95\xe0\xa4\xbe");
    same("\xe0\xa4\x95 \xe0\xa4\x95\xe0\xa4\xbe", 0); /* en-us */
    expect("\xe0\xa4\x95", 0, "en", "\xe0\xa4\x95");
    expect("\xe0\xa4\x95", 0, "hi", "\xe0\xa4\x95");
    /* GREEK BETA SYMBOL, anywhere, for other voices than English and Greek */
    expect("\xce\xb1\xcf\x90", 0, "de", "\xce\xb1 ");
    expect("\xce\xb1\xcf\x90", 0, "el", "\xce\xb1\xcf\x90");
    expect("\xce\xb1\xcf\x90", 0, "en-gb", "\xce\xb1\xcf\x90");
    /* HANGUL SYLLABLE A alone, not in a word; Korean keeps it */
    expect("\xec\x95\x84 \xec\x95\x84\xec\x9d\xb4", 0, "de", "  \xec\x95\x84\xec\x9d\xb4");
    expect("\xec\x95\x84", 0, "ko", "\xec\x95\x84");
    /* Cyrillic, Arabic, Hebrew, Thai letters alone are fine everywhere */
    expect("\xd0\x96 \xd8\xb4 \xd7\x90 \xe0\xb8\x81", 0, "de",
           "\xd0\x96 \xd8\xb4 \xd7\x90 \xe0\xb8\x81");
}

static void test_urls(void **state)
{
    (void)state;
    expect("see https://www.example.com/a/b?c=d#e.", 0, NULL, "see example.com.");
    expect("(http://user:pw@host.example.org:8080/x)", 0, NULL, "(host.example.org)");
    expect("\"www.example.com\"", 0, NULL, "\"example.com\"");
    expect("FTP://files.example.net/pub/", 0, NULL, "files.example.net");
    expect("http:// www. https://", 0, NULL, "http:// www. https://");
    expect("<speak>Go to <emphasis>http://x.org/y</emphasis>.</speak>", 1, NULL,
           "<speak>Go to <emphasis>x.org</emphasis>.</speak>");
}

static void test_punctuation_runs(void **state)
{
    (void)state;
    expect("Wow!!!!!!! Really????", 0, NULL, "Wow! Really?");
    expect("end.......", 0, NULL, "end...");
    expect("----------\n==========", 0, NULL, "-\n=");
    expect("<speak>&amp;&amp;&amp;&amp;</speak>", 1, NULL, "<speak>&amp;</speak>");
}

static void test_long_tokens(void **state)
{
    (void)state;
    char *s = repeat("", "path/to_", 10, "end"); /* 83 code points */
    char *r = norm(s, 0, NULL);
    assert_string_equal(r, "path to path to path to path to path to path to path to path to path "
                           "to path to end");
    free(r);
    free(s);
    /* digits keep their decimal point in a long token */
    expect("3.141592653589793238462643383279502884197169399375105820974944-xyz", 0, NULL,
           "3.141592653589793238462643383279502884197169399375105820974944 xyz");
    /* a long word gets a space after every 64 code points */
    s = repeat("", "ab", 70, "");
    r = norm(s, 0, NULL);
    assert_int_equal(strlen(r), 142);
    assert_int_equal(r[64], ' ');
    assert_int_equal(r[129], ' ');
    free(r);
    free(s);
    /* but not in front of a combining mark: a, then e + U+0301 */
    s = repeat("a", "e\xcc\x81", 40, "");
    r = norm(s, 0, NULL);
    assert_int_equal(r[96], '\x81'); /* cp 64 is a mark: the space comes after it */
    assert_int_equal(r[97], ' ');
    assert_int_equal(longest_word(r), 65);
    free(r);
    free(s);
}

/* Long texts are read in pieces: the rules hold across them. */
static void test_long_texts(void **state)
{
    (void)state;
    char *s =
        repeat("", "The quick brown fox jumps over the lazy dog, e.g. U.S.A. 3.14... ", 5000, "");
    same(s, 0);
    free(s);
    static const char *const units[] = {"a.", "x.y.  ", "a . ", "s'", "ab"};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        s = repeat("", units[i], 150000, "");
        char *r = norm(s, 0, "en-us");
        if (longest_dotted(r) > NORMALIZE_DOTTED_MAX)
            fail_msg("%s: dotted run of %d", units[i], longest_dotted(r));
        if (longest_word(r) > NORMALIZE_WORD_MAX)
            fail_msg("%s: word of %d", units[i], longest_word(r));
        free(r);
        free(s);
    }
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    same("a\xff\xfe b \xc3 \xe0\xa7", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prose_unchanged),
        cmocka_unit_test(test_ssml_unchanged),
        cmocka_unit_test(test_crashers_changed),
        cmocka_unit_test(test_code_points),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_punctuation_runs),
        cmocka_unit_test(test_long_tokens),
        cmocka_unit_test(test_long_texts),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
