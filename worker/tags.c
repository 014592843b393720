/* pread, pwrite, ftruncate and strnlen are POSIX: the file builds alone with
 * -std=c11 too, without the Makefile's -D_GNU_SOURCE. */
#define _POSIX_C_SOURCE 200809L

#include "tags.h"
#include "../common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The metadata a format keeps in one place (a LIST chunk, a FLAC block, an
 * ID3v2 tag, the Ogg header packets) is read whole, up to this size; the audio
 * is only ever moved, a block at a time. */
#define META_MAX (1u << 20)
#define BLOCK (64 * 1024)
#define OGG_BODY_MAX (255 * 255)

/* One call's file: its descriptor, its length as it changes, and where the
 * reason of a refusal goes. */
struct tfile {
    int fd;
    int io; /* a read or write failed: not a refusal */
    uint64_t len;
    char *err;
    size_t errlen;
};

static int fail(struct tfile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct tfile *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, f->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* ID3v2's 28-bit sizes, seven bits a byte; -1 when a byte has its high bit. */
static int64_t synchsafe(const uint8_t *p)
{
    if ((p[0] | p[1] | p[2] | p[3]) & 0x80)
        return -1;
    return (int64_t)p[0] << 21 | (int64_t)p[1] << 14 | (int64_t)p[2] << 7 | p[3];
}

static void put_synchsafe(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (21 - 7 * i) & 0x7f);
}

static void add_le32(struct strbuf *b, uint32_t v)
{
    uint8_t p[4];
    put_le32(p, v);
    strbuf_add(b, (const char *)p, 4);
}

static void add_bytes(struct strbuf *b, const void *p, size_t n)
{
    strbuf_add(b, (const char *)p, n);
}

/* A chunk or frame id for a message: what is not printable becomes '?'. */
static const char *fourcc(const uint8_t *p, char out[5])
{
    for (int i = 0; i < 4; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[4] = '\0';
    return out;
}

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* n bytes at off, all of them inside the file. */
static int read_at(struct tfile *f, void *buf, size_t n, uint64_t off)
{
    if (off > f->len || n > f->len - off)
        return fail(f, "truncated file: %zu bytes at %llu of %llu", n, ull(off), ull(f->len));
    uint8_t *p = buf;
    while (n) {
        ssize_t k = pread(f->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return f->io = 1, fail(f, "read: %s", strerror(errno));
        if (k == 0)
            return fail(f, "read: the file is shorter than %llu bytes", ull(f->len));
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static int write_at(struct tfile *f, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = pwrite(f->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = ENOSPC; /* no progress: as good as a full disk */
            f->io = 1;
            return fail(f, "write: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* Replace the oldlen bytes at off by the newlen bytes of buf, moving what
 * follows them, a block at a time (from the end backwards when the file
 * grows). A growing file is extended first, so that a full disk stops it
 * before anything is overwritten and the file is cut back as it was. */
static int splice_at(struct tfile *f, uint64_t off, uint64_t oldlen, const void *buf, size_t newlen)
{
    uint64_t tail = off + oldlen, rest = f->len - tail;
    int rc = -1;
    uint8_t *blk = NULL;
    if (newlen > oldlen) {
        uint64_t d = newlen - oldlen, len0 = f->len;
        blk = xcalloc(1, BLOCK);
        for (uint64_t done = 0; done < d;) {
            size_t n = d - done < BLOCK ? (size_t)(d - done) : BLOCK;
            if (write_at(f, blk, n, len0 + done) < 0) {
                int e = errno;
                if (ftruncate(f->fd, (off_t)len0) == 0)
                    fail(f, "write: %s (the file is left as it was)", strerror(e));
                goto out;
            }
            done += n;
        }
        f->len = len0 + d;
        for (uint64_t left = rest; left;) {
            size_t n = left < BLOCK ? (size_t)left : BLOCK;
            left -= n;
            if (read_at(f, blk, n, tail + left) < 0 || write_at(f, blk, n, tail + left + d) < 0)
                goto out;
        }
    } else if (newlen < oldlen) {
        uint64_t d = oldlen - newlen;
        blk = xmalloc(BLOCK);
        for (uint64_t done = 0; done < rest;) {
            size_t n = rest - done < BLOCK ? (size_t)(rest - done) : BLOCK;
            if (read_at(f, blk, n, tail + done) < 0 || write_at(f, blk, n, tail + done - d) < 0)
                goto out;
            done += n;
        }
        if (ftruncate(f->fd, (off_t)(f->len - d)) < 0) {
            f->io = 1;
            fail(f, "truncate: %s", strerror(errno));
            goto out;
        }
        f->len -= d;
    }
    rc = write_at(f, buf, newlen, off);
out:
    free(blk);
    return rc;
}

int tags_check_language(const char *lang, char *err, size_t errlen)
{
    if (lang && language_tag_ok(lang))
        return 0;
    snprintf(err, errlen,
             "language: expected 1 to %d letters, digits and hyphens, a letter first (en-US)",
             TAGS_LANGUAGE_MAX);
    return -1;
}

/* Vorbis comments (FLAC, Ogg Vorbis, Opus) */

/* Whether the comment e (n bytes) is a LANGUAGE= one: names are ASCII and
 * compared without case. */
static int is_language(const uint8_t *e, size_t n)
{
    static const char key[] = "LANGUAGE=";
    if (n < sizeof(key) - 1)
        return 0;
    for (size_t i = 0; i < sizeof(key) - 1; i++) {
        uint8_t c = e[i] >= 'a' && e[i] <= 'z' ? (uint8_t)(e[i] - 32) : e[i];
        if (c != (uint8_t)key[i])
            return 0;
    }
    return 1;
}

static void add_language_comment(struct strbuf *out, const char *lang)
{
    add_le32(out, (uint32_t)(9 + strlen(lang)));
    add_bytes(out, "LANGUAGE=", 9);
    add_bytes(out, lang, strlen(lang));
}

/* The comment list at p[0..n) (vendor, count, entries; little-endian lengths)
 * appended to out with its LANGUAGE entries replaced by one for lang. *used
 * gets the bytes the list took: what follows is the caller's. */
static int comments_rebuild(struct tfile *f, const char *what, const uint8_t *p, size_t n,
                            const char *lang, struct strbuf *out, size_t *used)
{
    if (n < 4 || le32(p) > n - 4 || n - 4 - le32(p) < 4)
        return fail(f, "%s: truncated comment header (vendor)", what);
    size_t pos = 4 + le32(p);
    uint32_t count = le32(p + pos);
    pos += 4;
    size_t count_at = out->len + pos - 4;
    add_bytes(out, p, pos);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (n - pos < 4 || le32(p + pos) > n - pos - 4)
            return fail(f, "%s: truncated comment header (comment %u of %u)", what, i + 1, count);
        size_t el = le32(p + pos);
        if (!is_language(p + pos + 4, el)) {
            add_bytes(out, p + pos, 4 + el);
            kept++;
        }
        pos += 4 + el;
    }
    add_language_comment(out, lang);
    put_le32((uint8_t *)out->s + count_at, kept + 1);
    *used = pos;
    return 0;
}

/* WAV: an ILNG entry in the LIST INFO chunk */

static int wav_add(struct tfile *f, const char *lang)
{
    uint8_t h[12];
    char id[5];
    if (f->len < 12 || read_at(f, h, 12, 0) < 0 || memcmp(h, "RIFF", 4) != 0 ||
        memcmp(h + 8, "WAVE", 4) != 0)
        return fail(f, "wav: not a RIFF WAVE file");
    if ((uint64_t)le32(h + 4) + 8 != f->len)
        return fail(f, "wav: the RIFF size (%u) does not match the file's length (%llu)",
                    le32(h + 4), ull(f->len));
    uint64_t list_off = 0, list_size = 0;
    int fmt = 0, data = 0;
    for (uint64_t off = 12; off < f->len;) {
        uint8_t c[8], type[4];
        if (f->len - off < 8)
            return fail(f, "wav: truncated chunk header at %llu", ull(off));
        if (read_at(f, c, 8, off) < 0)
            return -1;
        uint64_t size = le32(c + 4);
        if (size + (size & 1) > f->len - off - 8)
            return fail(f, "wav: chunk '%s' at %llu runs past the end of the file", fourcc(c, id),
                        ull(off));
        fmt |= memcmp(c, "fmt ", 4) == 0;
        data |= memcmp(c, "data", 4) == 0;
        if (memcmp(c, "LIST", 4) == 0 && size >= 4 && !list_off) {
            if (read_at(f, type, 4, off + 8) < 0)
                return -1;
            if (memcmp(type, "INFO", 4) == 0) {
                list_off = off;
                list_size = size;
            }
        }
        off += 8 + size + (size & 1);
    }
    if (!fmt || !data)
        return fail(f, "wav: no '%s' chunk", fmt ? "data" : "fmt ");

    struct strbuf nb = {0};
    uint8_t *l = NULL;
    int rc = -1;
    uint64_t at = f->len, old = 0;
    add_bytes(&nb, "LIST\0\0\0\0INFO", 12);
    if (list_off) {
        if (list_size > META_MAX) {
            fail(f, "wav: LIST INFO chunk over %u bytes", META_MAX);
            goto out;
        }
        l = xmalloc((size_t)list_size);
        if (read_at(f, l, (size_t)list_size, list_off + 8) < 0)
            goto out;
        for (size_t pos = 4; pos < list_size;) {
            if (list_size - pos < 8 || le32(l + pos + 4) > list_size - pos - 8) {
                fail(f, "wav: truncated LIST INFO entry at %llu", ull(list_off + 8 + pos));
                goto out;
            }
            size_t sz = le32(l + pos + 4);
            if (memcmp(l + pos, "ILNG", 4) != 0) {
                add_bytes(&nb, l + pos, 8 + sz);
                if (sz & 1)
                    add_bytes(&nb, "", 1);
            }
            pos += 8 + sz + (sz & 1);
        }
        at = list_off;
        old = 8 + list_size + (list_size & 1);
    }
    size_t ll = strlen(lang) + 1;
    add_bytes(&nb, "ILNG", 4);
    add_le32(&nb, (uint32_t)ll);
    add_bytes(&nb, lang, ll);
    if (ll & 1)
        add_bytes(&nb, "", 1);
    put_le32((uint8_t *)nb.s + 4, (uint32_t)(nb.len - 8));
    if (f->len - old + nb.len - 8 > UINT32_MAX) {
        fail(f, "wav: the file would pass the 4 GB a RIFF size can count");
        goto out;
    }
    if (splice_at(f, at, old, nb.s, nb.len) < 0)
        goto out;
    put_le32(h + 4, (uint32_t)(f->len - 8));
    rc = write_at(f, h + 4, 4, 4);
out:
    free(l);
    free(nb.s);
    return rc;
}

/* FLAC: a LANGUAGE= entry in the VORBIS_COMMENT block */

enum { FLAC_STREAMINFO = 0, FLAC_PADDING = 1, FLAC_VORBIS_COMMENT = 4 };

static void flac_block_header(uint8_t *p, uint8_t type_last, size_t len)
{
    p[0] = type_last;
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

static int flac_add(struct tfile *f, const char *lang)
{
    uint8_t h[4];
    if (f->len < 8 || read_at(f, h, 4, 0) < 0 || memcmp(h, "fLaC", 4) != 0)
        return fail(f, "flac: not a FLAC file");
    uint64_t off = 4, vc_off = 0, pad_off = 0;
    size_t vc_len = 0, pad_len = 0;
    uint8_t vc_type = 0, pad_type = 0, si_type = 0;
    int last = 0, after_vc = 0;
    for (int first = 1; !last; first = 0) {
        if (f->len - off < 4)
            return fail(f, "flac: truncated metadata block header at %llu", ull(off));
        if (read_at(f, h, 4, off) < 0)
            return -1;
        int type = h[0] & 0x7f;
        size_t blen = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        last = h[0] >> 7;
        if (type == 127)
            return fail(f, "flac: invalid metadata block type at %llu", ull(off));
        if (blen > f->len - off - 4)
            return fail(f, "flac: metadata block at %llu runs past the end of the file", ull(off));
        if (first != (type == FLAC_STREAMINFO) || (first && blen != 34))
            return fail(f, "flac: STREAMINFO is not the first block, or not the only one");
        if (first)
            si_type = h[0];
        if (type == FLAC_VORBIS_COMMENT) {
            if (vc_off)
                return fail(f, "flac: two VORBIS_COMMENT blocks");
            vc_off = off;
            vc_len = blen;
            vc_type = h[0];
        } else if (type == FLAC_PADDING && after_vc) {
            pad_off = off;
            pad_len = blen;
            pad_type = h[0];
        }
        after_vc = type == FLAC_VORBIS_COMMENT;
        off += 4 + blen;
    }
    if (f->len - off < 2 || read_at(f, h, 2, off) < 0 || h[0] != 0xff || (h[1] & 0xfe) != 0xf8)
        return fail(f, "flac: no audio frame after the metadata (at %llu)", ull(off));

    struct strbuf nb = {0};
    uint8_t *vc = NULL;
    int rc = -1;
    add_bytes(&nb, "\0\0\0\0", 4);
    if (!vc_off) {
        /* A new block after STREAMINFO, last if STREAMINFO was. */
        static const char vendor[] = "c2a-worker";
        add_le32(&nb, sizeof(vendor) - 1);
        add_bytes(&nb, vendor, sizeof(vendor) - 1);
        add_le32(&nb, 1);
        add_language_comment(&nb, lang);
        flac_block_header((uint8_t *)nb.s, FLAC_VORBIS_COMMENT | (si_type & 0x80), nb.len - 4);
        if (splice_at(f, 42, 0, nb.s, nb.len) < 0)
            goto out;
        uint8_t si = si_type & 0x7f;
        rc = si == si_type ? 0 : write_at(f, &si, 1, 4);
        goto out;
    }
    if (vc_len > META_MAX) {
        fail(f, "flac: VORBIS_COMMENT block over %u bytes", META_MAX);
        goto out;
    }
    vc = xmalloc(vc_len ? vc_len : 1);
    size_t used;
    if (read_at(f, vc, vc_len, vc_off + 4) < 0 ||
        comments_rebuild(f, "flac", vc, vc_len, lang, &nb, &used) < 0)
        goto out;
    if (used != vc_len) {
        fail(f, "flac: %zu bytes after the Vorbis comments", vc_len - used);
        goto out;
    }
    size_t nl = nb.len - 4;
    if (nl >= 1u << 24) {
        fail(f, "flac: the VORBIS_COMMENT block would pass 16 MB");
        goto out;
    }
    flac_block_header((uint8_t *)nb.s, vc_type, nl);
    if (pad_off && pad_len + vc_len >= nl && pad_len + vc_len - nl < 1u << 24) {
        /* The padding that follows gives (or takes) the difference: nothing
         * moves. What the padding newly covers is zeroed. */
        uint8_t ph[4];
        flac_block_header(ph, pad_type, pad_len + vc_len - nl);
        if (write_at(f, nb.s, nb.len, vc_off) < 0 || write_at(f, ph, 4, vc_off + 4 + nl) < 0)
            goto out;
        if (nl < vc_len) {
            uint8_t *z = xcalloc(1, vc_len - nl);
            int w = write_at(f, z, vc_len - nl, vc_off + 8 + nl);
            free(z);
            if (w < 0)
                goto out;
        }
        rc = 0;
        goto out;
    }
    rc = splice_at(f, vc_off, 4 + vc_len, nb.s, nb.len);
out:
    free(vc);
    free(nb.s);
    return rc;
}

/* Ogg Vorbis and Opus: a LANGUAGE= entry in the comment header packet */

struct page {
    uint8_t h[27 + 255]; /* header and lacing values */
    size_t nseg, body;
    uint64_t size;
};

static void crc_init(uint32_t t[256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i << 24;
        for (int k = 0; k < 8; k++)
            r = r & 0x80000000u ? r << 1 ^ 0x04c11db7u : r << 1;
        t[i] = r;
    }
}

static uint32_t crc_add(const uint32_t *t, uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--)
        crc = crc << 8 ^ t[(crc >> 24 ^ *p++) & 0xff];
    return crc;
}

/* The page's checksum, its CRC field taken as zero. */
static uint32_t page_crc(const uint32_t *t, const struct page *pg, const uint8_t *body)
{
    uint8_t h[27 + 255];
    memcpy(h, pg->h, 27 + pg->nseg);
    memset(h + 22, 0, 4);
    return crc_add(t, crc_add(t, 0, h, 27 + pg->nseg), body, pg->body);
}

/* The header of the page at off; it and its body are inside the file. */
static int page_read(struct tfile *f, uint64_t off, struct page *pg)
{
    if (f->len - off < 27)
        return fail(f, "ogg: truncated page at %llu", ull(off));
    if (read_at(f, pg->h, 27, off) < 0)
        return -1;
    if (memcmp(pg->h, "OggS", 4) != 0 || pg->h[4] != 0 || (pg->h[5] & ~7) != 0)
        return fail(f, "ogg: no Ogg page at %llu", ull(off));
    pg->nseg = pg->h[26];
    if (f->len - off - 27 < pg->nseg || read_at(f, pg->h + 27, pg->nseg, off + 27) < 0)
        return fail(f, "ogg: truncated page at %llu", ull(off));
    pg->body = 0;
    for (size_t i = 0; i < pg->nseg; i++)
        pg->body += pg->h[27 + i];
    if (f->len - off - 27 - pg->nseg < pg->body)
        return fail(f, "ogg: truncated page at %llu", ull(off));
    pg->size = 27 + pg->nseg + pg->body;
    return 0;
}

/* The page's body into body, its checksum verified. */
static int page_body(struct tfile *f, const uint32_t *t, uint64_t off, const struct page *pg,
                     uint8_t *body)
{
    if (read_at(f, body, pg->body, off + 27 + pg->nseg) < 0)
        return -1;
    if (page_crc(t, pg, body) != le32(pg->h + 22))
        return fail(f, "ogg: bad checksum in the page at %llu", ull(off));
    return 0;
}

/* The packets pk[0..n) as pages of up to 255 segments, laid out as libogg's
 * ogg_stream_flush() does headers: the continued flag where a page starts
 * inside a packet, granule position 0 where a packet ends on the page, else
 * -1; eos on the last page when eos. Returns the number of pages. */
static uint32_t ogg_paginate(const uint32_t *t, const struct strbuf *pk, size_t n, uint32_t serial,
                             uint32_t seq, int eos, struct strbuf *out)
{
    uint32_t pages = 0;
    size_t p = 0, at = 0;
    while (p < n) {
        struct page pg = {.nseg = 0, .body = 0};
        size_t p0 = p, at0 = at;
        int ended = 0, cont = at > 0;
        while (pg.nseg < 255 && p < n) {
            size_t left = pk[p].len - at, lv = left < 255 ? left : 255;
            pg.h[27 + pg.nseg++] = (uint8_t)lv;
            at += lv;
            pg.body += lv;
            if (lv < 255) {
                p++;
                at = 0;
                ended = 1;
            }
        }
        memcpy(pg.h, "OggS", 4);
        pg.h[4] = 0;
        pg.h[5] = (uint8_t)((cont ? 1 : 0) | (eos && p == n ? 4 : 0));
        uint32_t granule = ended ? 0 : UINT32_MAX;
        put_le32(pg.h + 6, granule);
        put_le32(pg.h + 10, granule);
        put_le32(pg.h + 14, serial);
        put_le32(pg.h + 18, seq + pages);
        put_le32(pg.h + 22, 0);
        pg.h[26] = (uint8_t)pg.nseg;
        size_t start = out->len;
        add_bytes(out, pg.h, 27 + pg.nseg);
        for (size_t left = pg.body; left;) {
            size_t k = pk[p0].len - at0 < left ? pk[p0].len - at0 : left;
            add_bytes(out, pk[p0].s + at0, k);
            left -= k;
            at0 += k;
            if (at0 == pk[p0].len) {
                p0++;
                at0 = 0;
            }
        }
        uint8_t *o = (uint8_t *)out->s + start;
        put_le32(o + 22, crc_add(t, 0, o, out->len - start));
        pages++;
    }
    return pages;
}

/* The pages after the headers, from off: one stream (no other serial, no
 * beginning of another), numbered on from seq; checksums verified too when
 * check_crc (they are about to be recomputed). */
static int ogg_check_tail(struct tfile *f, const uint32_t *t, uint64_t off, uint32_t serial,
                          uint32_t seq, int check_crc, uint8_t *body)
{
    struct page pg;
    for (; off < f->len; off += pg.size) {
        if (page_read(f, off, &pg) < 0)
            return -1;
        if (le32(pg.h + 14) != serial || (pg.h[5] & 2))
            return fail(f,
                        "ogg: another logical stream at %llu (chained or multiplexed files "
                        "are not supported)",
                        ull(off));
        if (le32(pg.h + 18) != ++seq)
            return fail(f, "ogg: page at %llu out of sequence", ull(off));
        if (check_crc && page_body(f, t, off, &pg, body) < 0)
            return -1;
    }
    return 0;
}

static int ogg_renumber(struct tfile *f, const uint32_t *t, uint64_t off, uint32_t shift,
                        uint8_t *body)
{
    struct page pg;
    for (; off < f->len; off += pg.size) {
        if (page_read(f, off, &pg) < 0 || read_at(f, body, pg.body, off + 27 + pg.nseg) < 0)
            return -1;
        put_le32(pg.h + 18, le32(pg.h + 18) + shift);
        put_le32(pg.h + 22, page_crc(t, &pg, body));
        if (write_at(f, pg.h, 27, off) < 0)
            return -1;
    }
    return 0;
}

static int ogg_add(struct tfile *f, int opus, const char *lang)
{
    const char *what = opus ? "opus" : "ogg";
    uint32_t t[256];
    crc_init(t);
    struct page pg;
    struct strbuf pk[2] = {{0}}, nc = {0}, pages = {0};
    uint8_t *body = xmalloc(OGG_BODY_MAX);
    int rc = -1;

    /* The first page: the identification header alone. */
    if (page_read(f, 0, &pg) < 0 || page_body(f, t, 0, &pg, body) < 0)
        goto out;
    if ((pg.h[5] & 3) != 2 || pg.nseg == 0 || pg.h[27 + pg.nseg - 1] == 255) {
        fail(f, "%s: the first page does not hold exactly one header", what);
        goto out;
    }
    for (size_t i = 0; i + 1 < pg.nseg; i++) {
        if (pg.h[27 + i] != 255) {
            fail(f, "%s: the first page does not hold exactly one header", what);
            goto out;
        }
    }
    if (opus ? pg.body < 19 || memcmp(body, "OpusHead", 8) != 0
             : pg.body < 30 || memcmp(body, "\x01vorbis", 7) != 0) {
        fail(f, "%s: not an Ogg %s stream", what, opus ? "Opus" : "Vorbis");
        goto out;
    }
    uint32_t serial = le32(pg.h + 14), seq = le32(pg.h + 18);
    uint64_t start = pg.size, off = start;

    /* The other headers: Vorbis' comment and setup, Opus' tags, ending a
     * page (the audio starts on a page of its own). */
    size_t need = opus ? 1 : 2, k = 0;
    uint32_t old_pages = 0;
    int eos = 0;
    while (k < need) {
        if (off == f->len) {
            fail(f, "%s: the file ends inside the headers", what);
            goto out;
        }
        if (page_read(f, off, &pg) < 0 || page_body(f, t, off, &pg, body) < 0)
            goto out;
        if (le32(pg.h + 14) != serial || (pg.h[5] & 2) || le32(pg.h + 18) != seq + 1) {
            fail(f, "%s: header page at %llu is not the next of the stream", what, ull(off));
            goto out;
        }
        if (!(pg.h[5] & 1) != (pk[k].len == 0)) {
            fail(f, "%s: wrong continued-packet flag at %llu", what, ull(off));
            goto out;
        }
        size_t at = 0;
        for (size_t i = 0; i < pg.nseg; i++) {
            if (k == need) {
                fail(f, "%s: audio shares the page at %llu with the headers", what, ull(off));
                goto out;
            }
            size_t lv = pg.h[27 + i];
            if (pk[k].len + lv > META_MAX) {
                fail(f, "%s: header packet over %u bytes", what, META_MAX);
                goto out;
            }
            add_bytes(&pk[k], body + at, lv);
            at += lv;
            if (lv < 255)
                k++;
        }
        eos = pg.h[5] & 4;
        if (eos && k < need) {
            fail(f, "%s: the stream ends inside the headers", what);
            goto out;
        }
        seq++;
        old_pages++;
        off += pg.size;
    }
    uint64_t end = off;
    const char *magic = opus ? "OpusTags" : "\x03vorbis";
    size_t ml = strlen(magic), used;
    if (pk[0].len < ml || memcmp(pk[0].s, magic, ml) != 0 ||
        (!opus && (pk[1].len < 7 || memcmp(pk[1].s, "\x05vorbis", 7) != 0))) {
        fail(f, "%s: the headers are not %s's", what, opus ? "Opus" : "Vorbis");
        goto out;
    }
    add_bytes(&nc, pk[0].s, ml);
    if (comments_rebuild(f, what, (const uint8_t *)pk[0].s + ml, pk[0].len - ml, lang, &nc, &used) <
        0)
        goto out;
    size_t rest = pk[0].len - ml - used;
    const uint8_t *tail = (const uint8_t *)pk[0].s + ml + used;
    if (!opus && (rest != 1 || !(tail[0] & 1))) {
        fail(f, "%s: the comment header does not end with its framing bit", what);
        goto out;
    }
    add_bytes(&nc, tail, rest); /* Vorbis' framing bit, or Opus' binary data */
    if (nc.len > META_MAX) {
        fail(f, "%s: the comment header would pass %u bytes", what, META_MAX);
        goto out;
    }

    free(pk[0].s);
    pk[0] = nc;
    nc = (struct strbuf){0};
    uint32_t new_pages = ogg_paginate(t, pk, need, serial, seq - old_pages + 1, eos, &pages);
    if (ogg_check_tail(f, t, end, serial, seq, new_pages != old_pages, body) < 0)
        goto out;
    if (splice_at(f, start, end - start, pages.s, pages.len) < 0)
        goto out;
    rc = new_pages == old_pages
             ? 0
             : ogg_renumber(f, t, start + pages.len, new_pages - old_pages, body);
out:
    free(pk[0].s);
    free(pk[1].s);
    free(nc.s);
    free(pages.s);
    free(body);
    return rc;
}

/* MP3: an ID3v2 TLAN frame */

static int mpeg_sync(const uint8_t *b)
{
    return b[0] == 0xff && (b[1] & 0xe0) == 0xe0;
}

static void id3_frame(struct strbuf *b, int v4, const char *id, const void *data, size_t n)
{
    uint8_t h[10] = {0};
    memcpy(h, id, 4);
    if (v4)
        put_synchsafe(h + 4, (uint32_t)n);
    else
        put_be32(h + 4, (uint32_t)n);
    add_bytes(b, h, 10);
    add_bytes(b, data, n);
}

/* Whether s[0..n) is UTF-8 (shortest forms, no surrogates, up to U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i], min;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (s[i + j] & 0x3f);
        }
        if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Whether an ID3v1 field is best copied as UTF-16: it is UTF-8 and not
 * ASCII (libsndfile hands LAME UTF-8). Else it stays ISO-8859-1 as it is. */
static int v1_utf16(const uint8_t *s, size_t n)
{
    int high = 0;
    for (size_t i = 0; i < n; i++)
        high |= s[i] >= 0x80;
    return high && utf8_valid(s, n);
}

/* An ID3v2.3 text after its encoding byte: s itself, or (utf16) s as UTF-16
 * with a byte order mark; v2.3 has no UTF-8. */
static void id3_text(struct strbuf *b, const uint8_t *s, size_t n, int utf16)
{
    if (!utf16) {
        add_bytes(b, s, n);
        return;
    }
    add_bytes(b, "\xff\xfe", 2);
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        size_t k = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
        c &= k == 0 ? 0x7f : k == 1 ? 0x1f : k == 2 ? 0x0f : 0x07;
        for (size_t j = 1; j <= k; j++)
            c = c << 6 | (s[i + j] & 0x3f);
        i += k + 1;
        uint16_t u[2];
        size_t m = 1;
        if (c >= 0x10000) {
            c -= 0x10000;
            u[0] = (uint16_t)(0xd800 | c >> 10);
            u[1] = (uint16_t)(0xdc00 | (c & 0x3ff));
            m = 2;
        } else {
            u[0] = (uint16_t)c;
        }
        for (size_t j = 0; j < m; j++) {
            uint8_t le[2] = {(uint8_t)u[j], (uint8_t)(u[j] >> 8)};
            add_bytes(b, le, 2);
        }
    }
}

/* An ID3v1 field: up to its first NUL, trailing spaces dropped. */
static size_t v1_len(const uint8_t *s, size_t n)
{
    size_t l = strnlen((const char *)s, n);
    while (l && s[l - 1] == ' ')
        l--;
    return l;
}

/* The ID3v1 tag's fields as ID3v2.3 frames: a reader that finds an ID3v2 tag
 * (ffmpeg) looks no further. */
static void id3_from_v1(struct strbuf *b, const uint8_t *v1)
{
    static const struct {
        const char *id;
        size_t at, n;
    } fields[] = {{"TIT2", 3, 30}, {"TPE1", 33, 30}, {"TALB", 63, 30}, {"TYER", 93, 4}};
    struct strbuf d = {0};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        const uint8_t *s = v1 + fields[i].at;
        size_t n = v1_len(s, fields[i].n);
        if (!n)
            continue;
        int u = v1_utf16(s, n);
        d.len = 0;
        add_bytes(&d, u ? "\x01" : "\x00", 1);
        id3_text(&d, s, n, u);
        id3_frame(b, 0, fields[i].id, d.s, d.len);
    }
    /* ID3v1.1: a track number in the comment's last byte, after a NUL. */
    int v11 = v1[125] == 0 && v1[126] != 0;
    size_t cn = v1_len(v1 + 97, v11 ? 28 : 30);
    if (cn) {
        int u = v1_utf16(v1 + 97, cn);
        d.len = 0;
        add_bytes(&d,
                  u ? "\x01"
                      "eng"
                      "\xff\xfe\0\0"
                    : "\x00"
                      "eng"
                      "\0",
                  u ? 8 : 5);
        id3_text(&d, v1 + 97, cn, u);
        id3_frame(b, 0, "COMM", d.s, d.len);
    }
    char num[8] = {0}; /* the encoding byte, then digits */
    if (v11) {
        int n = snprintf(num + 1, sizeof(num) - 1, "%u", v1[126]);
        id3_frame(b, 0, "TRCK", num, 1 + (size_t)n);
    }
    if (v1[127] != 255) {
        int n = snprintf(num + 1, sizeof(num) - 1, "(%u)", v1[127]);
        id3_frame(b, 0, "TCON", num, 1 + (size_t)n);
    }
    free(d.s);
}

static int mp3_add(struct tfile *f, const char *lang)
{
    uint8_t h[10], s[2];
    char name[5];
    struct strbuf nb = {0};
    uint8_t *tag = NULL;
    int rc = -1;
    size_t ll = strlen(lang);
    char tlan[1 + TAGS_LANGUAGE_MAX];
    tlan[0] = 0; /* ISO-8859-1, which every version has; the tag is ASCII */
    memcpy(tlan + 1, lang, ll);

    if (f->len < 10 || read_at(f, h, 10, 0) < 0 || memcmp(h, "ID3", 3) != 0) {
        /* No ID3v2 tag: a new ID3v2.3 one. */
        if (f->len < 2 || read_at(f, s, 2, 0) < 0 || !mpeg_sync(s))
            return fail(f, "mp3: neither an ID3v2 tag nor an MPEG frame at the start");
        add_bytes(&nb, "ID3\x03\0\0\0\0\0\0", 10);
        uint8_t v1[128];
        if (f->len >= 2 + 128) {
            if (read_at(f, v1, 128, f->len - 128) < 0)
                goto out;
            if (memcmp(v1, "TAG", 3) == 0)
                id3_from_v1(&nb, v1);
        }
        id3_frame(&nb, 0, "TLAN", tlan, 1 + ll);
        put_synchsafe((uint8_t *)nb.s + 6, (uint32_t)(nb.len - 10));
        rc = splice_at(f, 0, 0, nb.s, nb.len);
        goto out;
    }

    int v4 = h[3] == 4;
    int64_t size = synchsafe(h + 6);
    if ((h[3] != 3 && h[3] != 4) || h[4] == 0xff)
        return fail(f, "mp3: ID3v2.%u tags are not supported (2.3 and 2.4 are)", h[3]);
    if (h[5] != 0)
        return fail(f,
                    "mp3: ID3v2 flags 0x%02x (unsynchronisation, extended header, footer) "
                    "are not supported",
                    h[5]);
    if (size < 0 || (uint64_t)size > f->len - 10)
        return fail(f, "mp3: the ID3v2 tag's size is invalid or runs past the end of the file");
    if (size > META_MAX)
        return fail(f, "mp3: ID3v2 tag over %u bytes", META_MAX);
    uint64_t tag_end = 10 + (uint64_t)size;
    if (f->len - tag_end < 2 || read_at(f, s, 2, tag_end) < 0 || !mpeg_sync(s))
        return fail(f, "mp3: no MPEG frame after the ID3v2 tag (at %llu)", ull(tag_end));
    tag = xmalloc(size ? (size_t)size : 1);
    if (read_at(f, tag, (size_t)size, 10) < 0)
        goto out;
    add_bytes(&nb, h, 10);
    for (size_t pos = 0; pos < (size_t)size;) {
        if (tag[pos] == 0) {
            for (size_t i = pos; i < (size_t)size; i++) {
                if (tag[i] != 0) {
                    fail(f, "mp3: bytes other than zero in the ID3v2 padding at %zu", 10 + i);
                    goto out;
                }
            }
            break;
        }
        if ((size_t)size - pos < 10) {
            fail(f, "mp3: truncated ID3v2 frame at %zu", 10 + pos);
            goto out;
        }
        for (int i = 0; i < 4; i++) {
            uint8_t c = tag[pos + i];
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
                fail(f, "mp3: bad ID3v2 frame id '%s' at %zu", fourcc(tag + pos, name), 10 + pos);
                goto out;
            }
        }
        int64_t fs = v4 ? synchsafe(tag + pos + 4) : be32(tag + pos + 4);
        if (fs < 0 || (uint64_t)fs > (size_t)size - pos - 10) {
            fail(f, "mp3: ID3v2 frame %s at %zu runs past the tag", fourcc(tag + pos, name),
                 10 + pos);
            goto out;
        }
        if (memcmp(tag + pos, "TLAN", 4) != 0)
            add_bytes(&nb, tag + pos, 10 + (size_t)fs);
        pos += 10 + (size_t)fs;
    }
    id3_frame(&nb, v4, "TLAN", tlan, 1 + ll);
    if (nb.len - 10 <= (size_t)size) {
        /* The tag's padding has room: nothing moves. */
        size_t pad = (size_t)size - (nb.len - 10);
        memset(tag, 0, pad);
        add_bytes(&nb, tag, pad);
        rc = write_at(f, nb.s, nb.len, 0);
        goto out;
    }
    if (nb.len - 10 >= 1u << 28) {
        fail(f, "mp3: the ID3v2 tag would pass 256 MB");
        goto out;
    }
    put_synchsafe((uint8_t *)nb.s + 6, (uint32_t)(nb.len - 10));
    rc = splice_at(f, 0, tag_end, nb.s, nb.len);
out:
    free(tag);
    free(nb.s);
    return rc;
}

int tags_add_language(int fd, uint64_t *len, const char *format, const char *lang, char *err,
                      size_t errlen)
{
    struct tfile f = {.fd = fd, .len = *len, .err = err, .errlen = errlen};
    int rc;
    if (tags_check_language(lang, err, errlen) < 0)
        return -2;
    if (strcmp(format, "wav") == 0)
        rc = wav_add(&f, lang);
    else if (strcmp(format, "flac") == 0)
        rc = flac_add(&f, lang);
    else if (strcmp(format, "ogg") == 0)
        rc = ogg_add(&f, 0, lang);
    else if (strcmp(format, "opus") == 0)
        rc = ogg_add(&f, 1, lang);
    else if (strcmp(format, "mp3") == 0)
        rc = mp3_add(&f, lang);
    else
        return fail(&f, "language: no language tag for format %s", format) - 1;
    *len = f.len;
    return rc < 0 && !f.io ? -2 : rc;
}
