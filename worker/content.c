#include "content.h"
#include "job.h"
#include "../common/util.h"

#include <ctype.h>
#include <iconv.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* "text/html; charset=ISO-8859-1" -> type "text/html", charset "ISO-8859-1". */
static void parse_media_type(const char *ct, char *type, size_t tlen, char *charset, size_t clen)
{
    size_t n = strcspn(ct, ";");
    while (n && isspace((unsigned char)ct[n - 1]))
        n--;
    while (n && isspace((unsigned char)*ct))
        ct++, n--;
    snprintf(type, tlen, "%.*s", (int)n, ct);
    for (char *p = type; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    charset[0] = '\0';
    const char *cs = strcasestr(ct, "charset=");
    if (cs) {
        cs += 8;
        if (*cs == '"')
            cs++;
        size_t cl = strcspn(cs, "\"; \t");
        snprintf(charset, clen, "%.*s", (int)cl, cs);
    }
}

static int valid_utf8(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n;
        if (c < 0x80)
            n = 0;
        else if ((c & 0xE0) == 0xC0 && c >= 0xC2)
            n = 1;
        else if ((c & 0xF0) == 0xE0)
            n = 2;
        else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
            n = 3;
        else
            return 0;
        if (n > len - i - 1)
            return 0;
        for (size_t k = 1; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        /* No overlong forms, surrogates or code points above U+10FFFF (RFC 3629):
         * jansson refuses them, and the http engine's request is JSON. */
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Windows-1252 at 0x80..0x9F; its five unassigned bytes stay C1 code points. */
static const unsigned short cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

/* A copy of s[0..len) (malloc'd) in which each byte that does not belong to a
 * UTF-8 character is read as Windows-1252. */
static char *utf8_repair(const char *s, size_t len, size_t *outlen)
{
    char *out = xmalloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (n <= len - i && valid_utf8((const unsigned char *)s + i, n)) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        unsigned cp = c >= 0xA0 ? c : cp1252_c1[c - 0x80];
        if (cp < 0x800) {
            out[o++] = (char)(0xC0 | cp >> 6);
        } else {
            out[o++] = (char)(0xE0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
        }
        out[o++] = (char)(0x80 | (cp & 0x3F));
        i++;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* body in charset -> UTF-8 (malloc'd), or NULL with a reason. */
static char *to_utf8(const char *body, size_t len, const char *charset, size_t *outlen, char *err,
                     size_t errlen)
{
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        snprintf(err, errlen, "unknown charset %s", charset);
        return NULL;
    }
    size_t cap = len * 4 + 16;
    char *out = xmalloc(cap);
    char *in = (char *)body, *o = out;
    size_t inleft = len, oleft = cap - 1;
    size_t rc = iconv(cd, &in, &inleft, &o, &oleft);
    iconv_close(cd);
    if (rc == (size_t)-1) {
        snprintf(err, errlen, "the content is not valid %s", charset);
        free(out);
        return NULL;
    }
    *o = '\0';
    *outlen = (size_t)(o - out);
    return out;
}

static int is_utf8_name(const char *cs)
{
    return !strcasecmp(cs, "utf-8") || !strcasecmp(cs, "utf8") || !strcasecmp(cs, "us-ascii") ||
           !strcasecmp(cs, "ascii");
}

static int plain_text(const char *body, size_t len, const char *charset, struct content *out,
                      char *err, size_t errlen)
{
    if (len >= 3 && !memcmp(body, "\xEF\xBB\xBF", 3))
        body += 3, len -= 3;
    if (charset[0] && !is_utf8_name(charset)) {
        out->text = to_utf8(body, len, charset, &out->len, err, errlen);
        return out->text ? 0 : -1;
    }
    if (!valid_utf8((const unsigned char *)body, len)) {
        if (charset[0]) {
            snprintf(err, errlen, "the content is not valid UTF-8");
            return -1;
        }
        /* No charset and not UTF-8: the web's usual fallback. */
        out->text = to_utf8(body, len, "WINDOWS-1252", &out->len, err, errlen);
        return out->text ? 0 : -1;
    }
    out->text = xmalloc(len + 1);
    memcpy(out->text, body, len);
    out->text[len] = '\0';
    out->len = len;
    return 0;
}

/* ---- HTML ---- */

static int skipped_element(const xmlNode *n)
{
    static const char *const skip[] = {"script", "style", "noscript", "template", "nav", "header",
                                       "footer", "aside", "form", "button", "select", "textarea",
                                       "iframe", "svg", "canvas", "head", "menu", "dialog",
                                       "object", "embed", "audio", "video", NULL};
    for (const char *const *s = skip; *s; s++)
        if (!strcasecmp((const char *)n->name, *s))
            return 1;
    if (xmlHasProp(n, (const xmlChar *)"hidden"))
        return 1;
    xmlChar *aria = xmlGetProp(n, (const xmlChar *)"aria-hidden");
    int hidden = aria && !strcasecmp((const char *)aria, "true");
    xmlFree(aria);
    return hidden;
}

static int block_element(const xmlNode *n)
{
    static const char *const blocks[] = {
        "p",  "div", "section", "article", "main",  "h1",         "h2",      "h3",  "h4",
        "h5", "h6",  "li",      "ul",      "ol",    "blockquote", "pre",     "br",  "hr",
        "tr", "table", "dd",    "dt",      "dl",    "figcaption", "address", "body", "title",
        "caption", "summary", "details", "td", "th", NULL};
    for (const char *const *b = blocks; *b; b++)
        if (!strcasecmp((const char *)n->name, *b))
            return 1;
    return 0;
}

/* Text of an HTML tree: whitespace collapsed, one paragraph ("\n\n") per block. */
struct extract {
    struct strbuf out;
    int pending_space; /* a space is owed before the next word */
    int pending_break; /* a paragraph break is owed before the next word */
};

static void emit_text(struct extract *x, const char *s)
{
    for (const char *p = s; *p;) {
        if (isspace((unsigned char)*p) || ((unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0)) {
            x->pending_space = 1;
            p += isspace((unsigned char)*p) ? 1 : 2;
            continue;
        }
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n]) &&
               !((unsigned char)p[n] == 0xC2 && (unsigned char)p[n + 1] == 0xA0))
            n++;
        if (x->out.len) {
            if (x->pending_break)
                strbuf_add(&x->out, "\n\n", 2);
            else if (x->pending_space)
                strbuf_add(&x->out, " ", 1);
        }
        x->pending_space = x->pending_break = 0;
        strbuf_add(&x->out, p, n);
        p += n;
    }
}

static void walk(struct extract *x, const xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content)
                emit_text(x, (const char *)n->content);
        } else if (n->type == XML_ELEMENT_NODE) {
            if (skipped_element(n))
                continue;
            int block = block_element(n);
            if (block)
                x->pending_break = 1;
            walk(x, n->children);
            if (block)
                x->pending_break = 1;
        }
    }
}

/* The text of the nodes from `first` on (and their descendants) into out; frees
 * doc either way. */
static int take_text(xmlDocPtr doc, const xmlNode *first, struct content *out, char *err,
                     size_t errlen, const char *what)
{
    struct extract x = {{NULL, 0, 0}, 0, 0};
    walk(&x, first);
    xmlFreeDoc(doc);
    if (!x.out.len) {
        free(x.out.s);
        snprintf(err, errlen, "%s has no readable text", what);
        return -1;
    }
    out->text = x.out.s;
    out->len = x.out.len;
    return 0;
}

static const xmlNode *find_element(const xmlNode *n, const char *name)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (!strcasecmp((const char *)n->name, name))
            return n;
        const xmlNode *c = find_element(n->children, name);
        if (c)
            return c;
    }
    return NULL;
}

static int html_text(const char *body, size_t len, const char *charset, struct content *out,
                     char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "the page is too large to parse");
        return -1;
    }
    htmlDocPtr doc = htmlReadMemory(body, (int)len, NULL, charset[0] ? charset : NULL,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                        HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (!doc) {
        snprintf(err, errlen, "the page could not be parsed as HTML");
        return -1;
    }
    const xmlNode *root = xmlDocGetRootElement(doc);
    const xmlNode *from = find_element(root, "article");
    if (!from)
        from = find_element(root, "main");
    if (!from)
        from = find_element(root, "body");
    const xmlNode *first = root;
    if (from)
        first = skipped_element(from) ? NULL : from->children;
    return take_text(doc, first, out, err, errlen, "the page");
}

/* ---- SSML ---- */

static int ssml_text(const char *body, size_t len, const char *charset, struct content *out,
                     char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "the SSML is too large to parse");
        return -1;
    }
    /* No entity substitution, no DTD loading, no network: nothing outside the
     * document is read. */
    xmlDocPtr doc = xmlReadMemory(body, (int)len, NULL, charset[0] ? charset : NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(err, errlen, "the SSML is not well-formed XML%s%.*s", e && e->message ? ": " : "",
                 e && e->message ? (int)strcspn(e->message, "\n") : 0,
                 e && e->message ? e->message : "");
        return -1;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || strcmp((const char *)root->name, "speak") != 0) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "the SSML's root element is not <speak>");
        return -1;
    }
    xmlBufferPtr buf = xmlBufferCreate();
    /* A node dump is UTF-8 whatever the document's declared encoding. */
    xmlNodeDump(buf, doc, root, 0, 0);
    out->len = (size_t)xmlBufferLength(buf);
    out->text = xmalloc(out->len + 1);
    memcpy(out->text, xmlBufferContent(buf), out->len);
    out->text[out->len] = '\0';
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    out->ssml = 1;
    return 0;
}

int content_ssml_plain(const char *ssml, size_t len, struct content *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > INT32_MAX) {
        snprintf(err, errlen, "the SSML is too large to parse");
        return -1;
    }
    xmlDocPtr doc = xmlReadMemory(ssml, (int)len, NULL, "UTF-8",
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        snprintf(err, errlen, "the SSML is not well-formed XML");
        return -1;
    }
    return take_text(doc, xmlDocGetRootElement(doc), out, err, errlen, "the SSML");
}

int content_prepare(const char *body, size_t len, const char *content_type, struct content *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char type[96], charset[64];
    parse_media_type(content_type ? content_type : "", type, sizeof(type), charset,
                     sizeof(charset));
    int rc;
    if (!strcmp(type, "text/plain"))
        rc = plain_text(body, len, charset, out, err, errlen);
    else if (!strcmp(type, "text/html") || !strcmp(type, "application/xhtml+xml"))
        rc = html_text(body, len, charset, out, err, errlen);
    else if (!strcmp(type, "application/ssml+xml"))
        rc = ssml_text(body, len, charset, out, err, errlen);
    else {
        snprintf(err, errlen,
                 "content type '%s' is not text/plain, text/html or application/ssml+xml",
                 type[0] ? type : "(none)");
        return -1;
    }
    if (rc < 0)
        return -1;
    /* libxml2's HTML parser copies the bytes of a page that claims UTF-8 but is
     * not (a common mislabelling) into its text unchanged. The text must be
     * UTF-8: the http engine's JSON request cannot carry anything else. */
    if (!valid_utf8((const unsigned char *)out->text, out->len)) {
        size_t n;
        char *fixed = utf8_repair(out->text, out->len, &n);
        free(out->text);
        out->text = fixed;
        out->len = n;
    }
    out->len = job_strip_controls(out->text, out->len);
    if (!out->ssml) {
        size_t a = 0, b = out->len;
        while (a < b && isspace((unsigned char)out->text[a]))
            a++;
        while (b > a && isspace((unsigned char)out->text[b - 1]))
            b--;
        memmove(out->text, out->text + a, b - a);
        out->len = b - a;
        out->text[out->len] = '\0';
    }
    if (!out->len) {
        free(out->text);
        out->text = NULL;
        snprintf(err, errlen, "the content is empty");
        return -1;
    }
    return 0;
}

/* The last good cut in text[0..max]: after a sentence end, else at a space,
 * else before a UTF-8 lead byte. */
static size_t cut_point(const char *t, size_t max)
{
    for (size_t i = max; i > 0; i--) {
        char c = t[i - 1];
        if ((c == '.' || c == '!' || c == '?' || c == '\n') &&
            (i == max || isspace((unsigned char)t[i])))
            return i;
    }
    for (size_t i = max; i > 0; i--)
        if (isspace((unsigned char)t[i - 1]))
            return i;
    size_t i = max;
    while (i > 1 && ((unsigned char)t[i] & 0xC0) == 0x80)
        i--;
    return i;
}

int content_split(const char *text, size_t len, size_t max, char ***pieces)
{
    int n = 0, cap = 8;
    char **out = xmalloc((size_t)cap * sizeof(*out));
    size_t pos = 0;
    while (pos < len) {
        while (pos < len && isspace((unsigned char)text[pos]))
            pos++;
        if (pos >= len)
            break;
        size_t take = len - pos <= max ? len - pos : cut_point(text + pos, max);
        size_t end = take;
        while (end > 0 && isspace((unsigned char)text[pos + end - 1]))
            end--;
        if (end) {
            if (n == cap) {
                cap *= 2;
                out = xrealloc(out, (size_t)cap * sizeof(*out));
            }
            out[n] = xmalloc(end + 1);
            memcpy(out[n], text + pos, end);
            out[n][end] = '\0';
            n++;
        }
        pos += take;
    }
    *pieces = out;
    return n;
}

void content_free_pieces(char **pieces, int n)
{
    for (int i = 0; i < n; i++)
        free(pieces[i]);
    free(pieces);
}
