/*
 * Fetched content made speakable: the body of a `url` job, with its Content-Type,
 * becomes UTF-8 text or SSML; and long text is cut into pieces a remote TTS
 * server accepts. Pure functions (no I/O), run on the synthesis thread; the unit
 * tests cover them.
 *
 *   text/plain                 spoken as is (charset converted to UTF-8)
 *   text/html, xhtml           the readable text: libxml2's HTML parser, then
 *                              <article> (or <main>, or <body>) without scripts,
 *                              styles, navigation, headers, footers, asides and
 *                              forms; one paragraph per block element
 *   application/ssml+xml       parsed as XML (no network, no external entities),
 *                              root <speak>, re-serialized as UTF-8
 */
#ifndef C2A_CONTENT_H
#define C2A_CONTENT_H

#include <stddef.h>

struct content {
    char *text; /* UTF-8, NUL-terminated, control characters stripped; malloc'd */
    size_t len;
    int ssml;
};

/* 0, or -1 with a reason in err (every failure is the content's fault: the
 * caller reports bad_field). */
int content_prepare(const char *body, size_t len, const char *content_type, struct content *out,
                    char *err, size_t errlen);

/* The words of an SSML document without its markup, for an engine that does not
 * speak SSML (the http engine). */
int content_ssml_plain(const char *ssml, size_t len, struct content *out, char *err,
                       size_t errlen);

/* Cut text into pieces of at most max bytes, at sentence ends where possible,
 * else at spaces, else anywhere between two UTF-8 characters. Returns the
 * number of pieces; *pieces is a malloc'd array of malloc'd strings. */
int content_split(const char *text, size_t len, size_t max, char ***pieces);
void content_free_pieces(char **pieces, int n);

#endif
