/* Fetched content made speakable, and text cut for a remote TTS server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../worker/content.h"
#include "../../worker/job.h"

static char *prep(const char *body, const char *ctype, int *ssml)
{
    struct content c;
    char err[256];
    if (content_prepare(body, strlen(body), ctype, &c, err, sizeof(err)) < 0) {
        print_message("error: %s\n", err);
        return NULL;
    }
    if (ssml)
        *ssml = c.ssml;
    return c.text;
}

static void expect_error(const char *body, size_t len, const char *ctype, const char *part)
{
    struct content c;
    char err[256] = "";
    assert_int_equal(content_prepare(body, len, ctype, &c, err, sizeof(err)), -1);
    if (!strstr(err, part))
        fail_msg("'%s' does not contain '%s'", err, part);
}

static void test_plain(void **state)
{
    (void)state;
    char *t = prep("  Hello world.\n", "text/plain", NULL);
    assert_string_equal(t, "Hello world.");
    free(t);
    /* Latin-1 declared, converted to UTF-8. */
    t = prep("caf\xe9", "text/plain; charset=ISO-8859-1", NULL);
    assert_string_equal(t, "caf\xc3\xa9");
    free(t);
    /* No charset and not UTF-8: Windows-1252. */
    t = prep("\x93quoted\x94", "text/plain", NULL);
    assert_string_equal(t, "\xe2\x80\x9cquoted\xe2\x80\x9d");
    free(t);
    /* UTF-8 with a BOM; control characters stripped. */
    t = prep("\xef\xbb\xbf" "a\x01" "b", "Text/Plain;charset=\"utf-8\"", NULL);
    assert_string_equal(t, "ab");
    free(t);
    expect_error("\xff\xfe", 2, "text/plain; charset=utf-8", "not valid UTF-8");
    expect_error("x", 1, "text/plain; charset=klingon", "unknown charset");
    expect_error("{}", 2, "application/json", "content type 'application/json'");
    expect_error("x", 1, NULL, "(none)");
    expect_error(" \n ", 3, "text/plain", "empty");
}

/* Bytes shaped like UTF-8 that are not (a surrogate, overlong forms, a code
 * point above U+10FFFF) passed as UTF-8; json_pack() refuses them, so the http
 * engine's request body came out NULL and the worker took strlen() of it.
 * Found by tests/fuzz/fuzz_content. */
static void test_plain_almost_utf8(void **state)
{
    (void)state;
    expect_error("\xed\xa0\x80", 3, "text/plain; charset=utf-8", "not valid UTF-8");
    expect_error("\xe0\x80\xaf", 3, "text/plain; charset=utf-8", "not valid UTF-8");
    expect_error("\xf0\x80\x80\xaf", 4, "text/plain; charset=utf-8", "not valid UTF-8");
    expect_error("\xf4\x96\x96\x96", 4, "text/plain; charset=utf-8", "not valid UTF-8");
    /* Without a charset they are Windows-1252, as any other bytes that are not UTF-8. */
    char *t = prep("\xf4\x96\x96\x96", "text/plain", NULL);
    assert_string_equal(t, "\xc3\xb4\xe2\x80\x93\xe2\x80\x93\xe2\x80\x93");
    free(t);
    /* The edges that are UTF-8. */
    const char *edges = "\xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 "
                        "\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf";
    t = prep(edges, "text/plain; charset=utf-8", NULL);
    assert_string_equal(t, edges);
    free(t);
}

static void test_html(void **state)
{
    (void)state;
    const char *page =
        "<!doctype html><html><head><title>Site: A story</title>"
        "<style>p{color:red}</style><script>var x = 'not read';</script></head>"
        "<body><header><nav><a href=/>Home</a> <a href=/about>About</a></nav></header>"
        "<article><h1>The Lighthouse</h1>"
        "<p>The keeper climbed   the\n stairs.</p>"
        "<p>He lit the <b>lamp</b>&nbsp;at dusk &amp; waited.</p>"
        "<aside>Related: other stories</aside>"
        "<ul><li>One</li><li>Two</li></ul>"
        "<div hidden>secret</div><p aria-hidden=\"true\">icon</p>"
        "</article><footer>Copyright 2026</footer></body></html>";
    char *t = prep(page, "text/html; charset=utf-8", NULL);
    assert_string_equal(t, "The Lighthouse\n\nThe keeper climbed the stairs.\n\n"
                           "He lit the lamp at dusk & waited.\n\nOne\n\nTwo");
    free(t);
    /* No <article>: <main>, else <body>; the charset from <meta>. */
    t = prep("<html><head><meta charset=\"iso-8859-1\"></head><body><nav>menu</nav>"
             "<p>Gr\xfc\xdf Gott</p></body></html>",
             "text/html", NULL);
    assert_string_equal(t, "Gr\xc3\xbc\xc3\x9f Gott");
    free(t);
    t = prep("<body><p>outside</p><main><p>inside</p></main></body>", "text/html", NULL);
    assert_string_equal(t, "inside");
    free(t);
    expect_error("<html><script>x</script></html>", 31, "text/html", "no readable text");
}

/* A page that claims UTF-8 and is not: libxml2 passed its bytes through, the
 * text was not UTF-8, and the http engine's request failed as above. Bytes
 * that are not UTF-8 are read as Windows-1252; UTF-8 beside them stays. Found
 * by tests/fuzz/fuzz_content. */
static void test_html_mislabelled_utf8(void **state)
{
    (void)state;
    char *t = prep("<p>\x93" "Caf\xe9\x94 don\x92t \xe2\x82\xac" "5 \x81 \xc3</p>",
                   "text/html; charset=utf-8", NULL);
    assert_string_equal(t, "\xe2\x80\x9c" "Caf\xc3\xa9\xe2\x80\x9d don\xe2\x80\x99t "
                           "\xe2\x82\xac" "5 \xc2\x81 \xc3\x83");
    free(t);
}

static void test_ssml(void **state)
{
    (void)state;
    int ssml = 0;
    char *t = prep("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
                   "<speak version=\"1.0\">Caf\xe9 <break time=\"1s\"/> ok</speak>",
                   "application/ssml+xml", &ssml);
    assert_true(ssml);
    assert_string_equal(t, "<speak version=\"1.0\">Caf\xc3\xa9 <break time=\"1s\"/> ok</speak>");
    free(t);
    expect_error("<speak>unclosed", 15, "application/ssml+xml", "not well-formed");
    expect_error("<html/>", 7, "application/ssml+xml", "root element is not <speak>");
    /* External entities are not read. */
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE speak [<!ENTITY x SYSTEM "
                      "\"file:///etc/passwd\">]><speak>&x;</speak>";
    t = prep(xxe, "application/ssml+xml", &ssml);
    if (t) {
        assert_null(strstr(t, "root:"));
        free(t);
    }
}

static void test_split(void **state)
{
    (void)state;
    char **p;
    const char *text = "One two three. Four five six! Seven eight nine? Ten.";
    int n = content_split(text, strlen(text), 20, &p);
    assert_int_equal(n, 4);
    assert_string_equal(p[0], "One two three.");
    assert_string_equal(p[1], "Four five six!");
    assert_string_equal(p[2], "Seven eight nine?");
    assert_string_equal(p[3], "Ten.");
    content_free_pieces(p, n);
    /* Sentences packed up to the limit. */
    n = content_split(text, strlen(text), 40, &p);
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "One two three. Four five six!");
    content_free_pieces(p, n);
    /* No sentence end in reach: at a space; no space: between characters. */
    const char *words = "aaaa bbbb cccc dddd";
    n = content_split(words, strlen(words), 10, &p);
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "aaaa bbbb");
    assert_string_equal(p[1], "cccc dddd");
    content_free_pieces(p, n);
    const char *utf = "\xc3\xa9\xc3\xa9\xc3\xa9"; /* never cut inside a character */
    n = content_split(utf, strlen(utf), 3, &p);
    assert_int_equal(n, 3);
    assert_string_equal(p[0], "\xc3\xa9");
    content_free_pieces(p, n);
    assert_int_equal(job_utf8_chars(utf, strlen(utf)), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_almost_utf8),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_html_mislabelled_utf8),
        cmocka_unit_test(test_ssml),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests_name("content", tests, NULL, NULL);
}
