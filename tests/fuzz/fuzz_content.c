/*
 * libFuzzer target: fetched content made speakable (worker/content.c), the way
 * the http engine uses it: content_prepare() on the body and its Content-Type,
 * then content_ssml_plain() for SSML, then content_split() into pieces.
 *
 * Input: byte 0 picks the Content-Type from the table below, or, one past its
 * end, takes the input's first line as the type (up to '\n', at most 200
 * bytes), so the fuzzer can also invent types and charsets. Byte 1 picks the piece size
 * for content_split() (16..271 bytes; [speech] http_max_chars is at least 16).
 * The rest is the body. Results are checked against content.h's promises; a
 * broken promise aborts.
 */
#include "../../worker/content.h"
#include "../../worker/job.h"

#include <ctype.h>
#include <libxml/xmlerror.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const types[] = {
    "text/plain",
    "text/plain; charset=utf-8",
    "text/plain; charset=ISO-8859-1",
    "text/plain; charset=windows-1252",
    "text/plain; charset=UTF-16",
    "text/plain; charset=Shift_JIS",
    "text/plain; charset=ISO-2022-JP",
    "text/plain; charset=GB18030",
    "text/plain; charset=UTF-7",
    "Text/Plain;charset=\"utf-8\"",
    "text/html",
    "text/html; charset=utf-8",
    "text/html; charset=ISO-8859-1",
    "text/html; charset=windows-1251",
    "text/html; charset=UTF-16LE",
    "text/html; charset=\"Shift_JIS\"",
    "application/xhtml+xml",
    "application/ssml+xml",
    "application/ssml+xml; charset=utf-8",
    "application/ssml+xml; charset=ISO-8859-1",
    "application/ssml+xml; charset=UTF-16",
    "application/json",
    "",
    NULL, /* no Content-Type header */
};
#define NTYPES (sizeof(types) / sizeof(types[0]))
#define MAX_TYPE 200

static int is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f;
}

/* Valid UTF-8 as jansson checks it (no overlong forms, no surrogates, nothing
 * above U+10FFFF): the http engine puts the text into a JSON request, and
 * json_pack() refuses anything less. */
static int utf8_ok(const char *s, size_t len)
{
    static const uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            n = 0;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n > len - i - 1)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            unsigned char cc = (unsigned char)s[i + k];
            if ((cc & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (cc & 0x3F);
        }
        if (cp < least[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += n + 1;
    }
    return 1;
}

static void check_text(const struct content *c, int trimmed)
{
    if (!c->text || c->len == 0 || strlen(c->text) != c->len || !utf8_ok(c->text, c->len))
        abort();
    for (size_t i = 0; i < c->len; i++)
        if (is_control((unsigned char)c->text[i]))
            abort();
    if (trimmed &&
        (isspace((unsigned char)c->text[0]) || isspace((unsigned char)c->text[c->len - 1])))
        abort();
}

/* Every piece is 1..max bytes without surrounding space, cut between two
 * characters of a UTF-8 text, and together the pieces hold every non-space
 * byte of the text, in order. */
static void check_pieces(const char *text, size_t len, size_t max, char **pieces, int n)
{
    if (n < 0)
        abort();
    int whole = utf8_ok(text, len);
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        size_t pl = strlen(pieces[i]);
        if (pl == 0 || pl > max || isspace((unsigned char)pieces[i][0]) ||
            isspace((unsigned char)pieces[i][pl - 1]) || (whole && !utf8_ok(pieces[i], pl)))
            abort();
        for (size_t k = 0; k < pl; k++) {
            if (isspace((unsigned char)pieces[i][k]))
                continue;
            while (t < len && isspace((unsigned char)text[t]))
                t++;
            if (t == len || text[t] != pieces[i][k])
                abort();
            t++;
        }
    }
    while (t < len && isspace((unsigned char)text[t]))
        t++;
    if (t != len)
        abort();
}

static void split(const char *text, size_t len, size_t max)
{
    char **pieces = NULL;
    int n = content_split(text, len, max, &pieces);
    check_pieces(text, len, max, pieces, n);
    content_free_pieces(pieces, n);
}

static void quiet(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
}

/* libxml2 prints encoding errors to stderr even with NOERROR: a line per input
 * would slow the fuzzer down to the speed of the terminal. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xmlSetGenericErrorFunc(NULL, quiet);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t pick = data[0] % (NTYPES + 1);
    size_t max = 16 + (size_t)data[1];
    const char *in = (const char *)data + 2;
    size_t len = size - 2;

    char custom[MAX_TYPE + 1];
    const char *type;
    if (pick == NTYPES) {
        const char *nl = memchr(in, '\n', len);
        size_t tl = nl ? (size_t)(nl - in) : len;
        if (tl > MAX_TYPE || memchr(in, '\0', tl))
            return 0;
        memcpy(custom, in, tl);
        custom[tl] = '\0';
        type = custom;
        in += tl + (nl ? 1 : 0);
        len -= tl + (nl ? 1 : 0);
    } else {
        type = types[pick];
    }

    /* Exactly len bytes on the heap, so ASan sees any read past the body. */
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, in, len);

    struct content c;
    char err[256];
    err[0] = '\0';
    if (content_prepare(body, len, type, &c, err, sizeof(err)) == 0) {
        check_text(&c, !c.ssml);
        if (c.ssml) {
            struct content plain;
            if (content_ssml_plain(c.text, c.len, &plain, err, sizeof(err)) == 0) {
                split(plain.text, plain.len, max);
                free(plain.text);
            } else if (!err[0] || plain.text) {
                abort();
            }
        } else {
            split(c.text, c.len, max);
        }
        free(c.text);
    } else if (!err[0] || c.text) {
        abort();
    }

    /* The SSML a job carries inline goes to content_ssml_plain() without
     * content_prepare(), and a text job's text straight to content_split();
     * job_parse() has stripped control characters from both. */
    char *text = malloc(len + 1);
    if (text) {
        memcpy(text, in, len);
        size_t tlen = job_strip_controls(text, len);
        struct content plain;
        if (content_ssml_plain(text, tlen, &plain, err, sizeof(err)) == 0)
            free(plain.text);
        split(text, tlen, max);
        free(text);
    }
    free(body);
    return 0;
}
