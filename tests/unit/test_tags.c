/* Language tags (worker/tags.c) in files the encoder writes: every format keeps
 * its audio and its other tags, readers (libsndfile, and ffprobe/ffmpeg where
 * installed) see the language, the Ogg pages are renumbered when the headers
 * take one page more, and what is not understood is refused untouched. */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sndfile.h>

#include "../../worker/encode.h"
#include "../../worker/job.h"
#include "../../worker/tags.h"

static char dir[] = "/tmp/c2a-tags-XXXXXX";
static int have_ffmpeg;

struct bytes {
    uint8_t *p;
    size_t n;
};

static struct bytes slurp(const char *path)
{
    struct bytes b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    b.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc(b.n ? b.n : 1);
    assert_int_equal(fread(b.p, 1, b.n, f), b.n);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A second of a 440 Hz tone through the encoder, with tags (5 or NULL) and a
 * language (or NULL); path gets the closed temporary file. */
static void make(const char *format, int rate, char *const *tags, const char *lang,
                 const char *name, char *path, size_t pathlen)
{
    char err[512];
    int permanent;
    struct encoder *e =
        encoder_open(format, rate, rate, dir, name, NULL, &permanent, err, sizeof(err));
    if (!e)
        fail_msg("%s at %d: %s", format, rate, err);
    if (tags && encoder_set_tags(e, tags, err, sizeof(err)) != 0)
        fail_msg("%s tags: %s", format, err);
    if (lang && encoder_set_language(e, lang, err, sizeof(err)) != 0)
        fail_msg("%s language: %s", format, err);
    int16_t *pcm = malloc((size_t)rate * sizeof(*pcm));
    for (int i = 0; i < rate; i++)
        pcm[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * i / rate));
    if (encoder_write(e, pcm, (size_t)rate, err, sizeof(err)) != 0)
        fail_msg("%s write: %s", format, err);
    free(pcm);
    struct encoded out;
    if (encoder_close(e, &out, err, sizeof(err)) != 0)
        fail_msg("%s at %d (language %s): %s", format, rate, lang ? lang : "-", err);
    outfile_tmp_path(path, pathlen, dir, NULL, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, out.bytes);
}

/* What libsndfile reads of a file: frames, samples, the five strings. */
struct decoded {
    SF_INFO info;
    short *pcm;
    char *str[5];
};

static const int str_types[5] = {SF_STR_TITLE, SF_STR_ARTIST, SF_STR_ALBUM, SF_STR_COMMENT,
                                 SF_STR_DATE};

static struct decoded decode(const char *path)
{
    struct decoded d = {.info = {0}};
    SNDFILE *sf = sf_open(path, SFM_READ, &d.info);
    if (!sf)
        fail_msg("%s: %s", path, sf_strerror(NULL));
    d.pcm = malloc((size_t)d.info.frames * sizeof(short) + 1);
    assert_int_equal(sf_readf_short(sf, d.pcm, d.info.frames), d.info.frames);
    for (int i = 0; i < 5; i++) {
        const char *s = sf_get_string(sf, str_types[i]);
        d.str[i] = s ? strdup(s) : NULL;
    }
    sf_close(sf);
    return d;
}

static void decoded_free(struct decoded *d)
{
    free(d->pcm);
    for (int i = 0; i < 5; i++)
        free(d->str[i]);
}

/* The same audio in both files, and the same strings when strings is set. */
static void same_audio(const char *plain, const char *tagged, int strings)
{
    struct decoded a = decode(plain), b = decode(tagged);
    if (a.info.frames != b.info.frames)
        fail_msg("%s: %lld frames, %lld without the language", tagged, (long long)b.info.frames,
                 (long long)a.info.frames);
    assert_int_equal(a.info.samplerate, b.info.samplerate);
    assert_memory_equal(a.pcm, b.pcm, (size_t)a.info.frames * sizeof(short));
    for (int i = 0; strings && i < 5; i++) {
        if (!a.str[i] != !b.str[i] || (a.str[i] && strcmp(a.str[i], b.str[i]) != 0))
            fail_msg("%s: string %d is '%.40s', was '%.40s'", tagged, i,
                     b.str[i] ? b.str[i] : "(none)", a.str[i] ? a.str[i] : "(none)");
    }
    decoded_free(&a);
    decoded_free(&b);
}

/* A command's output (stdout and stderr), lower-cased. */
static char *run(const char *fmt, const char *path)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), fmt, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2)
            out = realloc(out, cap *= 2);
    }
    out[n] = '\0';
    pclose(p);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return out;
}

#define FFPROBE "ffprobe -v error -show_entries format_tags:stream_tags -of json %s 2>&1"

/* ffprobe sees the language in path (format or stream tags, any case), and
 * each of the tags it sees in plain, the file without the language (ffmpeg
 * takes an MP3's date only when it looks like one); ffmpeg decodes the file
 * without an error. */
static void ffprobe_check(const char *plain, const char *path, const char *lang, char *const *tags)
{
    if (!have_ffmpeg)
        return;
    static const char *const keys[5] = {"title", "artist", "album", "comment", "date"};
    char *out = run(FFPROBE, path), *out0 = run(FFPROBE, plain);
    char want[2200];
    snprintf(want, sizeof(want), "\"language\": \"%s\"", lang);
    for (char *c = want; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (!strstr(out, want))
        fail_msg("%s: ffprobe does not report %s:\n%.2000s", path, want, out);
    for (int i = 0; tags && i < 5; i++) {
        if (!tags[i])
            continue;
        snprintf(want, sizeof(want), "\"%s\": \"%s\"", keys[i], tags[i]);
        for (char *c = want; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (strstr(out0, want)) {
            if (!strstr(out, want))
                fail_msg("%s: ffprobe does not report %.60s:\n%.2000s", path, want, out);
        } else if (i == 0) {
            fail_msg("%s: ffprobe does not report the title:\n%.2000s", plain, out0);
        }
    }
    free(out);
    free(out0);
    out = run("ffmpeg -nostdin -v error -i %s -f null - 2>&1", path);
    if (out[0])
        fail_msg("%s: ffmpeg: %s", path, out);
    free(out);
}

static char long_tags[5][1001];
static char *const short_set[JOB_TAGS] = {"A title", "Someone", "An album", "A comment", "2024"};
static char *long_set[JOB_TAGS];

/* Every format at two rates, without tags, with short and with long ones:
 * the same audio and strings as without the language, which readers see. */
static void test_formats(void **state)
{
    (void)state;
    static const struct {
        const char *format;
        int rates[2];
    } cases[] = {{"wav", {22050, 48000}},
                 {"flac", {22050, 48000}},
                 {"ogg", {22050, 48000}},
                 {"opus", {48000, 24000}},
                 {"mp3", {22050, 48000}}};
    /* Odd lengths (with the NUL) pad WAV's ILNG. */
    static const char *const langs[3] = {"de", "en-US", "zh-Hant-TW"};
    char *const *sets[3] = {NULL, short_set, long_set};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int r = 0; r < 2; r++) {
            for (int s = 0; s < 3; s++) {
                const char *fmt = cases[c].format;
                int rate = cases[c].rates[r];
                char n0[64], n1[64], p0[4096], p1[4096];
                snprintf(n0, sizeof(n0), "plain-%d-%d.%s", rate, s, fmt);
                snprintf(n1, sizeof(n1), "lang-%d-%d.%s", rate, s, fmt);
                make(fmt, rate, sets[s], NULL, n0, p0, sizeof(p0));
                make(fmt, rate, sets[s], langs[s], n1, p1, sizeof(p1));
                same_audio(p0, p1, 1);
                if (r == 0) /* ffprobe at one rate: the tags do not depend on it */
                    ffprobe_check(p0, p1, langs[s], sets[s]);
                unlink(p0);
                unlink(p1);
            }
        }
    }
}

/* Ogg pages, for the tests' own checks: CRC, count, sequence. */

static uint32_t crc32_ogg(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    while (n--) {
        crc ^= (uint32_t)*p++ << 24;
        for (int k = 0; k < 8; k++)
            crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
    }
    return crc;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static size_t page_size(const uint8_t *p)
{
    size_t n = 27 + p[26];
    for (int i = 0; i < p[26]; i++)
        n += p[27 + i];
    return n;
}

/* The number of pages, every one checked: consecutive sequence numbers and a
 * right CRC. */
static int ogg_pages(const char *path)
{
    struct bytes b = slurp(path);
    int n = 0;
    for (size_t off = 0; off < b.n; n++) {
        assert_true(b.n - off >= 27);
        assert_memory_equal(b.p + off, "OggS", 4);
        size_t sz = page_size(b.p + off);
        assert_true(sz <= b.n - off);
        assert_int_equal(rd32(b.p + off + 18), (uint32_t)n);
        uint8_t *pg = malloc(sz);
        memcpy(pg, b.p + off, sz);
        memset(pg + 22, 0, 4);
        assert_int_equal(crc32_ogg(pg, sz), rd32(b.p + off + 22));
        free(pg);
        off += sz;
    }
    free(b.p);
    return n;
}

/* A page like the one at t (its granule position and serial), numbered seq,
 * with these lacing values and body, its CRC computed; returns its size. */
static size_t make_page(uint8_t *out, const uint8_t *t, uint32_t seq, const uint8_t *lacing,
                        size_t nseg, const uint8_t *body, size_t blen)
{
    memcpy(out, t, 27);
    wr32(out + 18, seq);
    out[26] = (uint8_t)nseg;
    memcpy(out + 27, lacing, nseg);
    memcpy(out + 27 + nseg, body, blen);
    memset(out + 22, 0, 4);
    wr32(out + 22, crc32_ogg(out, 27 + nseg + blen));
    return 27 + nseg + blen;
}

/* The sizes of Vorbis' comment and setup packets in a file. */
static void vorbis_header_sizes(const char *path, size_t *comment, size_t *setup)
{
    struct bytes b = slurp(path);
    size_t sizes[3] = {0}, k = 0;
    for (size_t off = 0; k < 3; off += page_size(b.p + off)) {
        for (int i = 0; i < b.p[off + 26] && k < 3; i++) {
            sizes[k] += b.p[off + 27 + i];
            k += b.p[off + 27 + i] < 255;
        }
    }
    *comment = sizes[1];
    *setup = sizes[2];
    free(b.p);
}

/* Vorbis with a comment header that brings comment and setup to exactly 255
 * lacing values, one page: the language takes a 256th, so a second header
 * page, and every audio page is renumbered. Also the headers over several
 * pages, and a bad checksum in an audio page refused before anything moves. */
static void test_ogg_renumber(void **state)
{
    (void)state;
    char *title = malloc(70000), p0[4096], p1[4096], err[256];
    char *tags[JOB_TAGS] = {title, "artist", NULL, NULL, NULL};
    memset(title, 't', 1000);
    title[1000] = '\0';
    make("ogg", 44100, tags, NULL, "probe.ogg", p0, sizeof(p0));
    size_t c, s;
    vorbis_header_sizes(p0, &c, &s);
    /* floor(c/255) + floor(s/255) + 2 == 255 lacing values, and the last of
     * the comment's at 240: 18 more bytes ("LANGUAGE=en-US" and its length)
     * need one more. */
    size_t target = 255 * (253 - s / 255) + 240;
    assert_true(target > c);
    memset(title, 't', 1000 + target - c);
    title[1000 + target - c] = '\0';
    make("ogg", 44100, tags, NULL, "full.ogg", p0, sizeof(p0));
    vorbis_header_sizes(p0, &c, &s);
    assert_int_equal(c, target);
    int before = ogg_pages(p0);
    make("ogg", 44100, tags, "en-US", "full-lang.ogg", p1, sizeof(p1));
    assert_int_equal(ogg_pages(p1), before + 1);
    same_audio(p0, p1, 1);
    ffprobe_check(p0, p1, "en-US", tags);

    /* A bad checksum in the last page: refused, nothing changed. */
    struct bytes b = slurp(p0);
    b.p[b.n - 1] ^= 0x55;
    spit(p0, b.p, b.n);
    int fd = open(p0, O_RDWR);
    uint64_t len = b.n;
    assert_int_equal(tags_add_language(fd, &len, "ogg", "en-US", err, sizeof(err)), -2);
    assert_non_null(strstr(err, "checksum"));
    close(fd);
    struct bytes after = slurp(p0);
    assert_int_equal(after.n, b.n);
    assert_memory_equal(after.p, b.p, b.n);
    free(after.p);
    free(b.p);
    unlink(p0);
    unlink(p1);

    /* Headers over three pages; the page count stays. */
    static char big[4][40001];
    for (int i = 0; i < 4; i++) {
        memset(big[i], 'a' + i, 40000);
        big[i][40000] = '\0';
        tags[i] = big[i];
    }
    make("ogg", 22050, tags, NULL, "multi.ogg", p0, sizeof(p0));
    make("ogg", 22050, tags, "en-GB", "multi-lang.ogg", p1, sizeof(p1));
    assert_true(ogg_pages(p0) >= 5);
    assert_int_equal(ogg_pages(p1), ogg_pages(p0));
    same_audio(p0, p1, 1);
    ffprobe_check(p0, p1, "en-GB", NULL);
    unlink(p0);
    unlink(p1);
    free(title);
}

/* Vorbis' comment and setup headers on pages of their own, as some muxers
 * write them: packed into one page again, the audio pages numbered one less. */
static void test_ogg_fewer_pages(void **state)
{
    (void)state;
    char p0[4096], p1[4096], err[256];
    make("ogg", 22050, short_set, NULL, "split.ogg", p0, sizeof(p0));
    struct bytes b = slurp(p0);
    size_t p1_off = page_size(b.p), nseg = b.p[p1_off + 26], k = 0, cb = 0;
    const uint8_t *lac = b.p + p1_off + 27, *body = lac + nseg;
    while (lac[k] == 255)
        cb += lac[k++];
    cb += lac[k++]; /* the comment: k lacing values, cb bytes */
    uint8_t *f = malloc(b.n + 27);
    size_t n = p1_off, seq = 1;
    memcpy(f, b.p, p1_off);
    n += make_page(f + n, b.p + p1_off, (uint32_t)seq++, lac, k, body, cb);
    n += make_page(f + n, b.p + p1_off, (uint32_t)seq++, lac + k, nseg - k, body + cb,
                   page_size(b.p + p1_off) - 27 - nseg - cb);
    for (size_t off = p1_off + page_size(b.p + p1_off); off < b.n; off += page_size(b.p + off)) {
        const uint8_t *pg = b.p + off;
        n += make_page(f + n, pg, (uint32_t)seq++, pg + 27, pg[26], pg + 27 + pg[26],
                       page_size(pg) - 27 - pg[26]);
    }
    assert_int_equal(n, b.n + 27); /* one more page header */
    snprintf(p1, sizeof(p1), "%s/split-lang.ogg", dir);
    spit(p1, f, n);
    int pages = ogg_pages(p1);
    int fd = open(p1, O_RDWR);
    uint64_t len = n;
    if (tags_add_language(fd, &len, "ogg", "en", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    close(fd);
    assert_int_equal(ogg_pages(p1), pages - 1);
    same_audio(p0, p1, 1);
    ffprobe_check(p0, p1, "en", short_set);
    free(f);
    free(b.p);
    unlink(p0);
    unlink(p1);
}

/* libsndfile cannot write an OpusTags packet of 255 lacing values (it cuts
 * long ones short), so the test makes one: the encoder's page 1 replaced by a
 * page holding an OpusTags of 254 * 255 + 240 bytes, padded with a comment of
 * its own. The language then takes a second page. */
static void test_opus_renumber(void **state)
{
    (void)state;
    char p0[4096], p1[4096], err[256];
    make("opus", 48000, NULL, NULL, "small.opus", p0, sizeof(p0));
    struct bytes b = slurp(p0);
    size_t p1_off = page_size(b.p), p1_len = page_size(b.p + p1_off);
    assert_memory_equal(b.p + p1_off + 27 + b.p[p1_off + 26], "OpusTags", 8);

    const size_t total = 254 * 255 + 240;
    static const char vendor[] = "test";
    size_t fill = total - (8 + 4 + 4 + 4 + 4 + 2); /* the comment "X=..." */
    size_t plen = 27 + 255 + total;
    uint8_t *pg = calloc(1, plen), *q = pg + 27 + 255;
    memcpy(pg, b.p + p1_off, 27); /* flags, granule, serial, sequence */
    pg[26] = 255;
    memset(pg + 27, 255, 254);
    pg[27 + 254] = 240;
    memcpy(q, "OpusTags", 8);
    wr32(q + 8, 4);
    memcpy(q + 12, vendor, 4);
    wr32(q + 16, 1);
    wr32(q + 20, (uint32_t)(fill + 2));
    memcpy(q + 24, "X=", 2);
    memset(q + 26, 'x', fill);
    assert_int_equal(26 + fill, total);
    memset(pg + 22, 0, 4);
    wr32(pg + 22, crc32_ogg(pg, plen));

    size_t n = b.n - p1_len + plen;
    uint8_t *f = malloc(n);
    memcpy(f, b.p, p1_off);
    memcpy(f + p1_off, pg, plen);
    memcpy(f + p1_off + plen, b.p + p1_off + p1_len, b.n - p1_off - p1_len);
    snprintf(p1, sizeof(p1), "%s/full.opus", dir);
    spit(p1, f, n);
    int pages = ogg_pages(p1);

    int fd = open(p1, O_RDWR);
    uint64_t len = n;
    if (tags_add_language(fd, &len, "opus", "fr-CA", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    close(fd);
    assert_int_equal(ogg_pages(p1), pages + 1);
    struct stat st;
    assert_int_equal(stat(p1, &st), 0);
    assert_int_equal((uint64_t)st.st_size, len);
    same_audio(p0, p1, 1);
    ffprobe_check(p0, p1, "fr-CA", NULL);
    free(pg);
    free(f);
    free(b.p);
    unlink(p0);
    unlink(p1);
}

/* tags_add_language() on a file of bytes b, written to path; returns its
 * result and the file's new bytes in *out. */
static int add_to(const char *path, const struct bytes *b, const char *format, const char *lang,
                  struct bytes *out, char *err, size_t errlen)
{
    spit(path, b->p, b->n);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint64_t len = b->n;
    int rc = tags_add_language(fd, &len, format, lang, err, errlen);
    close(fd);
    *out = slurp(path);
    assert_int_equal(out->n, len);
    return rc;
}

/* FLAC blocks: the offset of the block of a type, and its length. */
static size_t flac_block(const struct bytes *b, int type, size_t *len)
{
    for (size_t off = 4;; off += 4 + *len) {
        *len = (size_t)b->p[off + 1] << 16 | (size_t)b->p[off + 2] << 8 | b->p[off + 3];
        if ((b->p[off] & 0x7f) == type)
            return off;
        if (b->p[off] & 0x80)
            return 0;
    }
}

/* A PADDING block after the VORBIS_COMMENT takes the growth when it is large
 * enough (nothing moves); a small one does not; without a VORBIS_COMMENT
 * block, one is made after STREAMINFO. */
static void test_flac_padding(void **state)
{
    (void)state;
    char p0[4096], p1[4096], err[256];
    make("flac", 22050, short_set, NULL, "plain.flac", p0, sizeof(p0));
    snprintf(p1, sizeof(p1), "%s/edited.flac", dir);
    struct bytes b = slurp(p0), out;
    size_t vl, vc = flac_block(&b, 4, &vl);
    assert_true(vc > 0 && (b.p[vc] & 0x80)); /* libsndfile's: the last block */

    for (size_t pad = 4; pad <= 200; pad += 196) {
        /* VORBIS_COMMENT, then PADDING (last) */
        size_t at = vc + 4 + vl;
        struct bytes e = {malloc(b.n + 4 + pad), b.n + 4 + pad};
        memcpy(e.p, b.p, at);
        e.p[vc] &= 0x7f;
        uint8_t h[4] = {0x81, 0, 0, (uint8_t)pad};
        memcpy(e.p + at, h, 4);
        memset(e.p + at + 4, 0, pad);
        memcpy(e.p + at + 4 + pad, b.p + at, b.n - at);
        assert_int_equal(add_to(p1, &e, "flac", "en-US", &out, err, sizeof(err)), 0);
        if (pad == 200)
            assert_int_equal(out.n, e.n); /* in the padding */
        else
            assert_true(out.n > e.n);
        same_audio(p0, p1, 1);
        ffprobe_check(p0, p1, "en-US", short_set);
        free(out.p);
        free(e.p);
    }

    /* No VORBIS_COMMENT: STREAMINFO becomes the last but one. */
    struct bytes e = {malloc(b.n), b.n - 4 - vl};
    memcpy(e.p, b.p, vc);
    e.p[4] |= 0x80;
    memcpy(e.p + vc, b.p + vc + 4 + vl, b.n - vc - 4 - vl);
    assert_int_equal(add_to(p1, &e, "flac", "pt-BR", &out, err, sizeof(err)), 0);
    assert_int_equal(out.p[4], 0x00);
    assert_int_equal(out.p[42], 0x84);
    assert_non_null(memmem(out.p, out.n, "c2a-worker", 10));
    struct decoded d = decode(p1);
    assert_int_equal(d.info.frames, 22050);
    decoded_free(&d);
    ffprobe_check(p0, p1, "pt-BR", NULL);
    free(out.p);
    free(e.p);
    free(b.p);
    unlink(p0);
    unlink(p1);
}

static void synchsafe(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (21 - 7 * i) & 0x7f);
}

/* ID3v2: the tag's padding takes the frame; an ID3v2.4 tag gets a v2.4 frame;
 * a second language replaces the first. */
static void test_mp3_id3(void **state)
{
    (void)state;
    char p0[4096], p1[4096], err[256];
    make("mp3", 44100, long_set, NULL, "long.mp3", p0, sizeof(p0));
    snprintf(p1, sizeof(p1), "%s/edited.mp3", dir);
    struct bytes b = slurp(p0), out, out2;
    assert_memory_equal(b.p, "ID3\x03", 4); /* LAME writes ID3v2.3, without padding */
    size_t size = (size_t)b.p[6] << 21 | (size_t)b.p[7] << 14 | (size_t)b.p[8] << 7 | b.p[9];

    struct bytes e = {calloc(1, b.n + 512), b.n + 512};
    memcpy(e.p, b.p, 10 + size);
    memcpy(e.p + 10 + size + 512, b.p + 10 + size, b.n - 10 - size);
    synchsafe(e.p + 6, (uint32_t)size + 512);
    assert_int_equal(add_to(p1, &e, "mp3", "en-US", &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, e.n);
    same_audio(p0, p1, 1);
    ffprobe_check(p0, p1, "en-US", long_set);
    /* Again, another language: replaced, in the same room. */
    assert_int_equal(add_to(p1, &out, "mp3", "nl", &out2, err, sizeof(err)), 0);
    assert_int_equal(out2.n, e.n);
    assert_null(memmem(out2.p, 10 + size + 512, "en-US", 5));
    ffprobe_check(p0, p1, "nl", long_set);
    free(out.p);
    free(out2.p);
    free(e.p);
    free(b.p);

    /* ID3v2.4 with a title before a file of no tag at all. */
    make("mp3", 22050, NULL, NULL, "bare.mp3", p0, sizeof(p0));
    b = slurp(p0);
    assert_false(b.p[0] == 'I');
    static const char title[] = "\x03Title four";
    size_t fl = sizeof(title) - 1, tl = 10 + fl;
    e = (struct bytes){malloc(b.n + 10 + tl), b.n + 10 + tl};
    memcpy(e.p, "ID3\x04\0\0", 6);
    synchsafe(e.p + 6, (uint32_t)tl);
    memcpy(e.p + 10, "TIT2", 4);
    synchsafe(e.p + 14, (uint32_t)fl);
    memset(e.p + 18, 0, 2);
    memcpy(e.p + 20, title, fl);
    memcpy(e.p + 10 + tl, b.p, b.n);
    assert_int_equal(add_to(p1, &e, "mp3", "sv", &out, err, sizeof(err)), 0);
    uint8_t *tlan = memmem(out.p, out.n, "TLAN", 4);
    assert_non_null(tlan);
    assert_memory_equal(tlan + 4, "\0\0\0\x03", 4);
    assert_int_equal(out.p[3], 4);
    same_audio(p0, p1, 0);
    char *const t4[5] = {"Title four", NULL, NULL, NULL, NULL};
    char p2[4200];
    snprintf(p2, sizeof(p2), "%s.v24", p0);
    spit(p2, e.p, e.n);
    ffprobe_check(p2, p1, "sv", t4);
    unlink(p2);
    free(out.p);
    free(e.p);
    free(b.p);
    unlink(p0);
    unlink(p1);
}

static void test_bad_language(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",           "en_US", "en US", "en-US\n",
        "fr\xc3\xa9", "-en",   "1en",   "abcdefghijklmnopqrstuvwxyz0123456789"};
    char err[256], p0[4096];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tags_check_language(bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "language"));
    }
    assert_int_equal(tags_check_language(NULL, err, sizeof(err)), -1);
    assert_int_equal(tags_check_language("abcdefghijklmnopqrstuvwxyz012345678", err, sizeof(err)),
                     0);
    assert_int_equal(tags_check_language("x", err, sizeof(err)), 0);

    int permanent;
    struct encoder *e =
        encoder_open("wav", 22050, 22050, dir, "bad.wav", NULL, &permanent, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(encoder_set_language(e, "en_US", err, sizeof(err)), -1);
    assert_int_equal(encoder_set_language(e, "", err, sizeof(err)), -1);
    encoder_abort(e);

    /* On a good file: refused, untouched; an unknown format too. */
    make("wav", 22050, NULL, NULL, "good.wav", p0, sizeof(p0));
    struct bytes b = slurp(p0), out;
    char p1[4200];
    snprintf(p1, sizeof(p1), "%s.copy", p0);
    assert_int_equal(add_to(p1, &b, "wav", "en US", &out, err, sizeof(err)), -2);
    assert_int_equal(out.n, b.n);
    assert_memory_equal(out.p, b.p, b.n);
    free(out.p);
    assert_int_equal(add_to(p1, &b, "aiff", "en", &out, err, sizeof(err)), -2);
    assert_memory_equal(out.p, b.p, b.n);
    free(out.p);
    free(b.p);
    unlink(p0);
    unlink(p1);
}

/* Truncated, garbage and mislabelled files: -2 with a reason, and not one byte
 * changed. */
static void test_refused_untouched(void **state)
{
    (void)state;
    static const char *const formats[] = {"wav", "flac", "ogg", "opus", "mp3"};
    char p[5][4096], err[256], copy[4200];
    struct bytes good[5];
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "good.%s", formats[i]);
        make(formats[i], 48000, long_set, NULL, name, p[i], sizeof(p[i]));
        good[i] = slurp(p[i]);
    }
    snprintf(copy, sizeof(copy), "%s/refused", dir);
    for (int i = 0; i < 5; i++) {
        const struct bytes *g = &good[i];
        /* Cuts inside the metadata (the whole file for WAV and Ogg, whose
         * ends are checked), and one byte short. */
        size_t cuts[] = {0, 1, 3, 9, 11, 12, 41, 43, 200, 3000, g->n / 2, g->n - 1};
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
            if (cuts[c] >= g->n || ((i == 1 || i == 4) && cuts[c] >= 5000))
                continue;
            struct bytes t = {g->p, cuts[c]}, out;
            err[0] = '\0';
            if (add_to(copy, &t, formats[i], "en", &out, err, sizeof(err)) != -2)
                fail_msg("%s cut at %zu accepted", formats[i], cuts[c]);
            assert_true(err[0] != '\0');
            assert_int_equal(out.n, t.n);
            assert_memory_equal(out.p, t.p, t.n);
            free(out.p);
        }
        /* Each format's file given as every other format. */
        for (int j = 0; j < 5; j++) {
            if (j == i)
                continue;
            struct bytes out;
            if (add_to(copy, g, formats[j], "en", &out, err, sizeof(err)) != -2)
                fail_msg("a %s file accepted as %s", formats[i], formats[j]);
            assert_memory_equal(out.p, g->p, g->n);
            free(out.p);
        }
        /* Garbage after the first bytes (the magic) of a good file. */
        struct bytes t = {malloc(g->n), g->n}, out;
        srand(7 + i);
        memcpy(t.p, g->p, g->n);
        for (size_t k = 40; k < 4000 && k < t.n; k++)
            t.p[k] = (uint8_t)rand();
        if (i == 1)
            t.p[42] = 0x04; /* a VORBIS_COMMENT that no longer fits */
        assert_int_equal(add_to(copy, &t, formats[i], "en", &out, err, sizeof(err)), -2);
        assert_memory_equal(out.p, t.p, t.n);
        free(out.p);
        free(t.p);
    }
    for (int i = 0; i < 5; i++) {
        free(good[i].p);
        unlink(p[i]);
    }
    unlink(copy);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    have_ffmpeg = access("/usr/bin/ffprobe", X_OK) == 0 && access("/usr/bin/ffmpeg", X_OK) == 0;
    for (int i = 0; i < 5; i++) {
        memset(long_tags[i], 'k' + i, 1000);
        long_tags[i][1000] = '\0';
        long_set[i] = long_tags[i];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),         cmocka_unit_test(test_ogg_renumber),
        cmocka_unit_test(test_ogg_fewer_pages), cmocka_unit_test(test_opus_renumber),
        cmocka_unit_test(test_flac_padding),    cmocka_unit_test(test_mp3_id3),
        cmocka_unit_test(test_bad_language),    cmocka_unit_test(test_refused_untouched),
    };
    int rc = cmocka_run_group_tests_name("tags", tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
