#include "normalize.h"
#include "../common/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Rule 1. espeak-ng 1.51 reads freed memory (TranslateLetter frees the
 * translator it is using, SetTranslator2) when it spells a character of
 * another script that the script's own language cannot name. Found with
 * tests/tools/espeak_crash, every code point of U+0080-U+FFFF alone, in two
 * ways: libespeak-ng built from the Debian source with -fsanitize=address,
 * and Debian's own library under an ASan-built caller (which sees the reads
 * made through memcmp/strcpy); the tables are the union. U+10000-U+1FFFF
 * (the second way, en-us) had none.
 *
 * bad_any: with the en-us voice (whole BMP, both ways), en, de and fr (Indic
 * blocks, both ways): the same set for all. Digits, signs, unassigned code
 * points, a few rare letters.
 *
 * bad_not_en: with de (whole BMP), fr, es and ru (these blocks), which cannot
 * name foreign alphabets at all: besides bad_any, rare Greek letters, and most
 * letters of these scripts when they stand alone (a one-letter word). English
 * voices read those.
 *
 * A voice reading its own script reads its block without fault (hi, mr, ne,
 * kok, bn, as, bpy, pa, gu, ta, kn, ml, si, hy, el, grc, ka, ko checked), so
 * lang exempts it.
 */
enum {
    SCRIPT_NONE,
    SCRIPT_GREEK,
    SCRIPT_ARMENIAN,
    SCRIPT_DEVANAGARI,
    SCRIPT_BENGALI,
    SCRIPT_GURMUKHI,
    SCRIPT_GUJARATI,
    SCRIPT_TAMIL,
    SCRIPT_KANNADA,
    SCRIPT_MALAYALAM,
    SCRIPT_SINHALA,
    SCRIPT_GEORGIAN,
    SCRIPT_HANGUL,
    SCRIPT_OTHER, /* a script of its own: Oriya, Telugu */
};

/* The voice languages that read a script themselves (primary subtag). */
static const char *const script_langs[][4] = {
    [SCRIPT_GREEK] = {"el", "grc"},
    [SCRIPT_ARMENIAN] = {"hy"},
    [SCRIPT_DEVANAGARI] = {"hi", "mr", "ne", "kok"},
    [SCRIPT_BENGALI] = {"bn", "as", "bpy"},
    [SCRIPT_GURMUKHI] = {"pa"},
    [SCRIPT_GUJARATI] = {"gu"},
    [SCRIPT_TAMIL] = {"ta"},
    [SCRIPT_KANNADA] = {"kn"},
    [SCRIPT_MALAYALAM] = {"ml"},
    [SCRIPT_SINHALA] = {"si"},
    [SCRIPT_GEORGIAN] = {"ka"},
    [SCRIPT_HANGUL] = {"ko"},
};

struct script_block {
    uint32_t lo, hi;
    uint8_t script;
};

static const struct script_block script_blocks[] = {
    {0x0370, 0x03ff, SCRIPT_GREEK},      {0x0530, 0x058f, SCRIPT_ARMENIAN},
    {0x0900, 0x097f, SCRIPT_DEVANAGARI}, {0x0980, 0x09ff, SCRIPT_BENGALI},
    {0x0a00, 0x0a7f, SCRIPT_GURMUKHI},   {0x0a80, 0x0aff, SCRIPT_GUJARATI},
    {0x0b00, 0x0b7f, SCRIPT_OTHER},      {0x0b80, 0x0bff, SCRIPT_TAMIL},
    {0x0c00, 0x0c7f, SCRIPT_OTHER},      {0x0c80, 0x0cff, SCRIPT_KANNADA},
    {0x0d00, 0x0d7f, SCRIPT_MALAYALAM},  {0x0d80, 0x0dff, SCRIPT_SINHALA},
    {0x10a0, 0x10ff, SCRIPT_GEORGIAN},   {0x1100, 0x11ff, SCRIPT_HANGUL},
    {0x3130, 0x318f, SCRIPT_HANGUL},     {0xac00, 0xd7af, SCRIPT_HANGUL},
};

#define ALONE 1 /* only when no character of the same script touches it */

struct bad_range {
    uint16_t lo, hi;
    uint8_t flags;
};

static const struct bad_range bad_any[] = {
    {0x0558, 0x0558, 0}, {0x055a, 0x055a, 0}, {0x058b, 0x058f, 0},     {0x0970, 0x0970, 0},
    {0x09e4, 0x09ef, 0}, {0x09f2, 0x09f3, 0}, {0x09f7, 0x09f9, 0},     {0x09fb, 0x09fb, 0},
    {0x09fd, 0x09ff, 0}, {0x0a64, 0x0a6f, 0}, {0x0a76, 0x0a7f, 0},     {0x0ae4, 0x0af8, 0},
    {0x0afd, 0x0aff, 0}, {0x0b80, 0x0b81, 0}, {0x0b84, 0x0b84, 0},     {0x0b8b, 0x0b8d, 0},
    {0x0b91, 0x0b91, 0}, {0x0b96, 0x0b98, 0}, {0x0b9b, 0x0b9b, 0},     {0x0b9d, 0x0b9d, 0},
    {0x0ba0, 0x0ba2, 0}, {0x0ba5, 0x0ba7, 0}, {0x0baa, 0x0baa, ALONE}, {0x0bab, 0x0bad, 0},
    {0x0bba, 0x0bbd, 0}, {0x0bc3, 0x0bc5, 0}, {0x0bc9, 0x0bc9, 0},     {0x0bce, 0x0bcf, 0},
    {0x0bd1, 0x0bd6, 0}, {0x0bd8, 0x0bef, 0}, {0x0bfb, 0x0bff, 0},     {0x0c80, 0x0c81, 0},
    {0x0c84, 0x0c84, 0}, {0x0c8c, 0x0c8d, 0}, {0x0c91, 0x0c91, 0},     {0x0ca9, 0x0ca9, 0},
    {0x0cb4, 0x0cb4, 0}, {0x0cba, 0x0cbb, 0}, {0x0cc5, 0x0cc5, 0},     {0x0cc9, 0x0cc9, 0},
    {0x0cce, 0x0cd4, 0}, {0x0cd7, 0x0cdd, 0}, {0x0cdf, 0x0cdf, 0},     {0x0ce1, 0x0cff, 0},
    {0x0d00, 0x0d01, 0}, {0x0d04, 0x0d04, 0}, {0x0d0c, 0x0d0d, 0},     {0x0d11, 0x0d11, 0},
    {0x0d29, 0x0d29, 0}, {0x0d3a, 0x0d3c, 0}, {0x0d45, 0x0d45, 0},     {0x0d49, 0x0d49, 0},
    {0x0d4f, 0x0d56, 0}, {0x0d58, 0x0d5f, 0}, {0x0d62, 0x0d79, 0},     {0x0dc7, 0x0dc9, 0},
    {0x0dcb, 0x0dce, 0}, {0x0dd5, 0x0dd5, 0}, {0x0dd7, 0x0dd7, 0},     {0x0de0, 0x0df1, 0},
    {0x0df5, 0x0dff, 0}, {0x10c6, 0x10c6, 0}, {0x10c8, 0x10cc, 0},     {0x10ce, 0x10cf, 0},
    {0x10fb, 0x10fb, 0}, {0x1180, 0x11a7, 0}, {0x11c3, 0x11ff, 0},
};

static const struct bad_range bad_not_en[] = {
    {0x037f, 0x0385, 0},
    {0x0387, 0x0387, 0},
    {0x038b, 0x038b, 0},
    {0x038d, 0x038d, 0},
    {0x03a2, 0x03a2, 0},
    {0x03cf, 0x03f3, 0},
    {0x03f5, 0x03fc, 0},
    {0x0530, 0x058f, ALONE},
    {0x0900, 0x0aff, ALONE},
    {0x0b80, 0x0bff, ALONE},
    {0x0c80, 0x0dff, ALONE},
    {0x1100, 0x11ff, ALONE},
    {0x3130, 0x318f, ALONE},
    /* the syllables of U+110B IEUNG and a vowel, no final: "a", "i", "o"... */
    {0xc544, 0xc544, ALONE},
    {0xc560, 0xc560, ALONE},
    {0xc57c, 0xc57c, ALONE},
    {0xc598, 0xc598, ALONE},
    {0xc5b4, 0xc5b4, ALONE},
    {0xc5d0, 0xc5d0, ALONE},
    {0xc5ec, 0xc5ec, ALONE},
    {0xc608, 0xc608, ALONE},
    {0xc624, 0xc624, ALONE},
    {0xc640, 0xc640, ALONE},
    {0xc65c, 0xc65c, ALONE},
    {0xc678, 0xc678, ALONE},
    {0xc694, 0xc694, ALONE},
    {0xc6b0, 0xc6b0, ALONE},
    {0xc6cc, 0xc6cc, ALONE},
    {0xc6e8, 0xc6e8, ALONE},
    {0xc704, 0xc704, ALONE},
    {0xc720, 0xc720, ALONE},
    {0xc73c, 0xc73c, ALONE},
    {0xc758, 0xc758, ALONE},
    {0xc774, 0xc774, ALONE},
};

/* ASCII white space ends a token. */
static int is_space(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v';
}

static int is_punct(uint32_t cp)
{
    return (cp >= 0x21 && cp <= 0x2f) || (cp >= 0x3a && cp <= 0x40) || (cp >= 0x5b && cp <= 0x60) ||
           (cp >= 0x7b && cp <= 0x7e);
}

static int is_digit(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

/* Scripts written without spaces between words: a token of them is a phrase. */
static int is_nospace_script(uint32_t cp)
{
    return (cp >= 0x0e00 && cp <= 0x0eff) || /* Thai, Lao */
           (cp >= 0x1000 && cp <= 0x109f) || /* Myanmar */
           (cp >= 0x1780 && cp <= 0x17ff) || /* Khmer */
           (cp >= 0x2e80 && cp <= 0x9fff) || /* CJK radicals, kana, ideographs */
           (cp >= 0xf900 && cp <= 0xfaff) || /* CJK compatibility ideographs */
           (cp >= 0xff00 && cp <= 0xffef) || /* half- and full-width forms */
           (cp >= 0x20000 && cp <= 0x3ffff); /* CJK extensions */
}

/* Combining marks (roughly): a word is not split in front of one. */
static int is_mark(uint32_t cp)
{
    if ((cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x0483 && cp <= 0x0489) ||
        (cp >= 0x0591 && cp <= 0x05c7) || (cp >= 0x0610 && cp <= 0x061a) ||
        (cp >= 0x064b && cp <= 0x065f) || cp == 0x0670 || (cp >= 0x06d6 && cp <= 0x06ed) ||
        (cp >= 0x1ab0 && cp <= 0x1aff) || (cp >= 0x1dc0 && cp <= 0x1dff) ||
        (cp >= 0x200c && cp <= 0x200d) || (cp >= 0x20d0 && cp <= 0x20ff) ||
        (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0xfe20 && cp <= 0xfe2f))
        return 1;
    if (cp >= 0x0900 && cp <= 0x0dff) { /* Indic: signs, vowel signs, virama */
        unsigned o = cp & 0x7f;
        return o <= 0x03 || (o >= 0x3a && o <= 0x4f) || (o >= 0x51 && o <= 0x57) || o == 0x62 ||
               o == 0x63;
    }
    return 0;
}

static unsigned script_of(uint32_t cp)
{
    for (size_t i = 0; i < ARRAY_LEN(script_blocks); i++)
        if (cp >= script_blocks[i].lo && cp <= script_blocks[i].hi)
            return script_blocks[i].script;
    return SCRIPT_NONE;
}

/* The entry of table holding cp, or NULL. */
static const struct bad_range *bad_find(const struct bad_range *table, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < table[mid].lo)
            hi = mid;
        else if (cp > table[mid].hi)
            lo = mid + 1;
        else
            return &table[mid];
    }
    return NULL;
}

/* The script lang reads itself, or SCRIPT_NONE. */
static unsigned own_script(const char *lang)
{
    if (!lang)
        return SCRIPT_NONE;
    size_t n = strcspn(lang, "-_");
    for (unsigned s = 1; s < ARRAY_LEN(script_langs); s++)
        for (size_t i = 0; i < ARRAY_LEN(script_langs[s]) && script_langs[s][i]; i++)
            if (strlen(script_langs[s][i]) == n && strncasecmp(lang, script_langs[s][i], n) == 0)
                return s;
    return SCRIPT_NONE;
}

static int is_english(const char *lang)
{
    return lang && strncasecmp(lang, "en", 2) == 0 &&
           (lang[2] == '\0' || lang[2] == '-' || lang[2] == '_');
}

enum unit_kind { U_CHAR, U_SPACE, U_TAG };
enum unit_act { ACT_KEEP, ACT_DROP, ACT_SPACE };

/* A piece of the input: one character (written as UTF-8 or as an entity),
 * white space, or a whole SSML tag. */
struct unit {
    size_t off;
    uint32_t len;
    uint32_t cp;
    uint8_t kind;
    uint8_t act;
    uint8_t space_before;
    uint8_t alone; /* a rule-1 ALONE code point, not yet decided */
};

struct norm {
    const char *src;
    size_t len;
    int ssml;
    unsigned own;     /* the script the voice reads itself */
    int english;      /* an English voice: bad_not_en does not apply */
    struct unit *tok; /* the units of the current token */
    size_t ntok;
    char *out;
    size_t olen, ocap;
};

static void out_put(struct norm *n, const char *s, size_t len)
{
    if (n->olen + len + 1 > n->ocap) {
        while (n->olen + len + 1 > n->ocap)
            n->ocap *= 2;
        n->out = xrealloc(n->out, n->ocap);
    }
    memcpy(n->out + n->olen, s, len);
    n->olen += len;
}

/* Decode one UTF-8 sequence at s[0..avail); an invalid byte is U+FFFD of
 * length 1 (copied as it is). */
static uint32_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *len)
{
    unsigned char c = s[0];
    uint32_t cp, need;
    if (c < 0x80) {
        *len = 1;
        return c;
    } else if (c >= 0xc2 && c <= 0xdf) {
        cp = c & 0x1f;
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        cp = c & 0x0f;
        need = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
        cp = c & 0x07;
        need = 3;
    } else {
        *len = 1;
        return 0xfffd;
    }
    if (need >= avail) {
        *len = 1;
        return 0xfffd;
    }
    for (uint32_t i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *len = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *len = need + 1;
    return cp;
}

/* An SSML tag at p (src[p] == '<'): its length. Comments end at "-->", other
 * tags at the first '>' outside quotes; an unclosed one runs to the end. */
static size_t tag_len(const struct norm *n, size_t p)
{
    const char *s = n->src;
    if (n->len - p >= 4 && memcmp(s + p, "<!--", 4) == 0) {
        for (size_t i = p + 4; i + 3 <= n->len; i++)
            if (memcmp(s + i, "-->", 3) == 0)
                return i + 3 - p;
        return n->len - p;
    }
    char quote = 0;
    for (size_t i = p + 1; i < n->len; i++) {
        if (quote) {
            if (s[i] == quote)
                quote = 0;
        } else if (s[i] == '"' || s[i] == '\'') {
            quote = s[i];
        } else if (s[i] == '>') {
            return i + 1 - p;
        }
    }
    return n->len - p;
}

/* An entity at p (src[p] == '&'): its length and code point, or 0 when this
 * '&' starts none (then it is an ordinary character). */
static size_t entity(const struct norm *n, size_t p, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"amp", '&'},  {"lt", '<'},    {"gt", '>'},
                 {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xa0}};
    const char *s = n->src + p + 1;
    size_t avail = n->len - p - 1, i = 0;
    while (i < avail && i < 12 && s[i] != ';')
        i++;
    if (i == 0 || i >= avail || s[i] != ';')
        return 0;
    if (s[0] == '#') {
        int hex = i > 1 && (s[1] == 'x' || s[1] == 'X');
        size_t j = hex ? 2 : 1;
        uint32_t v = 0;
        if (j >= i)
            return 0;
        for (; j < i; j++) {
            char c = s[j];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0)
                return 0;
            v = v * (hex ? 16 : 10) + (uint32_t)d;
            if (v > 0x10ffff)
                return 0;
        }
        *cp = v;
        return i + 2;
    }
    for (size_t k = 0; k < ARRAY_LEN(named); k++)
        if (strlen(named[k].name) == i && memcmp(s, named[k].name, i) == 0) {
            *cp = named[k].cp;
            return i + 2;
        }
    return 0;
}

/* Read the unit at p. */
static void read_unit(const struct norm *n, size_t p, struct unit *u)
{
    memset(u, 0, sizeof(*u));
    u->off = p;
    u->kind = U_CHAR;
    if (n->ssml && n->src[p] == '<') {
        u->len = (uint32_t)tag_len(n, p);
        u->kind = U_TAG;
        return;
    }
    if (n->ssml && n->src[p] == '&') {
        size_t l = entity(n, p, &u->cp);
        if (l) {
            u->len = (uint32_t)l;
            goto classify;
        }
    }
    u->cp = utf8_decode((const unsigned char *)n->src + p, n->len - p, &u->len);
classify:
    if (is_space(u->cp)) {
        u->kind = U_SPACE;
        return;
    }
    const struct bad_range *bad = bad_find(bad_any, ARRAY_LEN(bad_any), u->cp);
    if (!bad && !n->english)
        bad = bad_find(bad_not_en, ARRAY_LEN(bad_not_en), u->cp);
    if (!bad || script_of(u->cp) == n->own)
        return;
    if (bad->flags & ALONE) {
        u->alone = 1;
    } else {
        u->kind = U_SPACE;
        u->act = ACT_SPACE;
    }
}

/* A unit the token rules look at: a character still in the text. */
static int live(const struct unit *u)
{
    return u->kind == U_CHAR && u->act == ACT_KEEP;
}

/* The index of the next live unit after i in the token, or ntok. */
static size_t next_live(const struct norm *n, size_t i)
{
    for (i++; i < n->ntok && !live(&n->tok[i]); i++)
        ;
    return i;
}

static uint32_t lower(uint32_t cp)
{
    return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

/* Do the live units from i on spell prefix (ASCII, case-insensitive)? Returns
 * the index after it, or 0. */
static size_t match(const struct norm *n, size_t i, const char *prefix)
{
    for (; *prefix; prefix++) {
        if (i >= n->ntok || lower(n->tok[i].cp) != (unsigned char)*prefix)
            return 0;
        i = next_live(n, i);
    }
    return i;
}

static void drop(struct norm *n, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (n->tok[i].kind == U_CHAR)
            n->tok[i].act = ACT_DROP;
}

/* Rule 1 for ALONE code points: replaced unless a character of the same
 * script is next to it. */
static void rule_alone(struct norm *n)
{
    size_t prev = n->ntok;
    for (size_t i = 0; i < n->ntok; i++) {
        struct unit *u = &n->tok[i];
        if (u->kind != U_CHAR)
            continue;
        if (u->alone) {
            size_t nx = next_live(n, i);
            unsigned script = script_of(u->cp);
            int touch = (prev < n->ntok && script_of(n->tok[prev].cp) == script) ||
                        (nx < n->ntok && script_of(n->tok[nx].cp) == script);
            if (!touch)
                u->act = ACT_SPACE;
        }
        prev = i;
    }
}

/* Rule 2: a URL token keeps its host. */
static void rule_url(struct norm *n)
{
    static const char lead[] = "([{<\"'";
    static const char trail[] = ".,;:!?)]}>\"'";
    size_t i = next_live(n, (size_t)-1);
    while (i < n->ntok && n->tok[i].cp < 0x80 && strchr(lead, (int)n->tok[i].cp))
        i = next_live(n, i);
    if (i >= n->ntok)
        return;
    static const char *const schemes[] = {"http://", "https://", "ftp://", "www."};
    size_t host = 0;
    for (size_t k = 0; k < ARRAY_LEN(schemes) && !host; k++)
        host = match(n, i, schemes[k]);
    if (!host || host >= n->ntok)
        return;
    if (n->tok[i].cp == 'w' || n->tok[i].cp == 'W')
        host = i; /* "www." is dropped below, with the host's */
    /* the URL ends before the sentence punctuation that ends the token */
    size_t end = n->ntok, last = n->ntok;
    for (size_t k = n->ntok; k-- > host;) {
        if (!live(&n->tok[k]))
            continue;
        if (n->tok[k].cp < 0x80 && strchr(trail, (int)n->tok[k].cp)) {
            end = k;
            continue;
        }
        last = k;
        break;
    }
    if (last == n->ntok)
        return;
    /* host: after the last '@' of the authority, up to '/', '?', '#' or ':' */
    size_t auth_end = end;
    for (size_t k = host; k < end; k = next_live(n, k))
        if (n->tok[k].cp == '/' || n->tok[k].cp == '?' || n->tok[k].cp == '#') {
            auth_end = k;
            break;
        }
    for (size_t k = host; k < auth_end; k = next_live(n, k))
        if (n->tok[k].cp == '@')
            host = next_live(n, k);
    size_t host_end = auth_end;
    for (size_t k = host; k < auth_end; k = next_live(n, k))
        if (n->tok[k].cp == ':') {
            host_end = k;
            break;
        }
    size_t www = match(n, host, "www.");
    if (www && www < host_end)
        host = www;
    if (host >= host_end)
        return; /* no host: leave the token alone */
    drop(n, i, host);
    drop(n, host_end, end);
}

/* Rule 3: runs of one punctuation character. */
static void rule_punct_runs(struct norm *n)
{
    size_t i = next_live(n, (size_t)-1);
    while (i < n->ntok) {
        uint32_t c = n->tok[i].cp;
        size_t j = i, count = 0;
        while (j < n->ntok && n->tok[j].cp == c) {
            count++;
            j = next_live(n, j);
        }
        if (is_punct(c) && count >= NORMALIZE_PUNCT_RUN) {
            size_t keep = c == '.' ? 3 : 1, k = i;
            for (size_t m = 0; m < keep; m++)
                k = next_live(n, k);
            drop(n, k, j);
        }
        i = j;
    }
}

/* Rule 4 looks at the whole text: espeak-ng's dotted runs cross white space.
 * A unit it sees: white space (also what a rule made a space), or a character
 * still in the text. */
static int white(const struct unit *u)
{
    return u->kind == U_SPACE || u->act == ACT_SPACE;
}

static int visible(const struct unit *u)
{
    return white(u) || (u->kind == U_CHAR && u->act == ACT_KEEP);
}

static size_t next_visible(const struct unit *u, size_t nu, size_t i)
{
    for (i++; i < nu && !visible(&u[i]); i++)
        ;
    return i;
}

static int letterish(const struct unit *u)
{
    return u->kind == U_CHAR && u->act == ACT_KEEP && !is_punct(u->cp);
}

/* Cut the run u[from..to) when it has too many letters: the dot after every
 * NORMALIZE_DOTTED_MAX-th letter becomes a space. Shorter dotted runs are read
 * as before (letter by letter); spaces everywhere would make as many words as
 * letters, and espeak-ng reads past its table of 300 words per clause. */
static void dotted_end(struct unit *u, size_t nu, size_t from, size_t to, size_t letters)
{
    if (letters <= NORMALIZE_DOTTED_MAX)
        return;
    size_t seen = 0;
    for (size_t k = from; k < to && k < nu; k = next_visible(u, nu, k)) {
        if (letterish(&u[k]))
            seen++;
        else if (!white(&u[k]) && u[k].cp == '.' && seen % NORMALIZE_DOTTED_MAX == 0)
            u[k].act = ACT_SPACE;
    }
}

/* Rule 4: dotted runs of single characters. espeak-ng reads "a.b", "a .b",
 * "a . b" and "a.b. c" alike as letters joined by a dot, but drops the dot
 * of a one-letter word before white space ("a. b"): such a dot ends a run. */
static void rule_dotted(struct unit *u, size_t nu)
{
    size_t run = nu, run_end = nu, letters = 0;
    int joined = 0; /* the last letter of the run was followed by a joining dot */
    size_t i = next_visible(u, nu, (size_t)-1);
    while (i < nu) {
        if (!letterish(&u[i])) {
            if (run < nu)
                dotted_end(u, nu, run, run_end, letters);
            run = nu;
            joined = 0;
            i = next_visible(u, nu, i);
            continue;
        }
        size_t seg = i, len = 0;
        for (; i < nu && letterish(&u[i]); i = next_visible(u, nu, i))
            len++;
        /* espeak-ng joins letters, not digits: "1.2.3" is a number */
        if (len != 1 || is_digit(u[seg].cp)) {
            if (run < nu)
                dotted_end(u, nu, run, run_end, letters);
            run = nu;
            joined = 0;
            continue;
        }
        if (run < nu && joined) {
            letters++;
        } else {
            if (run < nu)
                dotted_end(u, nu, run, run_end, letters);
            run = seg;
            letters = 1;
        }
        run_end = i;
        /* the separator: white space, one dot, white space */
        size_t j = i;
        int ws_before = 0, ws_after = 0;
        for (; j < nu && white(&u[j]); j = next_visible(u, nu, j))
            ws_before = 1;
        joined = 0;
        if (j < nu && !white(&u[j]) && u[j].cp == '.') {
            size_t k = next_visible(u, nu, j);
            for (; k < nu && white(&u[k]); k = next_visible(u, nu, k))
                ws_after = 1;
            /* the dot espeak-ng drops: after a letter that starts a word */
            size_t b = seg;
            int word_start = 1;
            while (b-- > 0)
                if (visible(&u[b])) {
                    word_start = white(&u[b]);
                    break;
                }
            int dropped = word_start && !ws_before && ws_after;
            if (!dropped && k < nu && letterish(&u[k])) {
                joined = 1;
                i = k;
                continue;
            }
        }
        i = j;
    }
    if (run < nu)
        dotted_end(u, nu, run, run_end, letters);
}

/* Rule 5: a long token is split at its inner punctuation. */
static void rule_long_token(struct norm *n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n->ntok; i++) {
        if (!live(&n->tok[i]))
            continue;
        if (is_nospace_script(n->tok[i].cp))
            return;
        chars++;
    }
    if (chars <= NORMALIZE_TOKEN_MAX)
        return;
    size_t prev = n->ntok; /* the last live character before i */
    size_t i = next_live(n, (size_t)-1);
    while (i < n->ntok) {
        if (!is_punct(n->tok[i].cp)) {
            prev = i;
            i = next_live(n, i);
            continue;
        }
        size_t j = i, count = 0;
        while (j < n->ntok && is_punct(n->tok[j].cp)) {
            count++;
            j = next_live(n, j);
        }
        int inner = prev < n->ntok && j < n->ntok;
        int number = count == 1 && (n->tok[i].cp == '.' || n->tok[i].cp == ',') && inner &&
                     is_digit(n->tok[prev].cp) && is_digit(n->tok[j].cp);
        if (inner && !number) {
            drop(n, i, j);
            n->tok[i].act = ACT_SPACE;
        }
        i = j;
    }
}

/* Rule 6: long words get a space every NORMALIZE_WORD_MAX code points. */
static void rule_long_word(struct norm *n)
{
    size_t count = 0;
    for (size_t i = 0; i < n->ntok; i++) {
        struct unit *u = &n->tok[i];
        if (u->kind == U_TAG || u->act == ACT_DROP)
            continue;
        if (u->act == ACT_SPACE || (is_punct(u->cp) && u->cp != '\'') || is_nospace_script(u->cp)) {
            count = 0;
            continue;
        }
        if (count >= NORMALIZE_WORD_MAX && !is_mark(u->cp)) {
            u->space_before = 1;
            count = 0;
        }
        count++;
    }
}

/* Rule 7, on the way out: espeak-ng keeps at most 300 words per clause and
 * reads and writes past that table when a clause has more (TranslateClause).
 * A clause is at most about 800 bytes, so that takes words of one or two
 * characters: "a a a ...", "a-a-a-...", dotted runs. An item here is a run of
 * letters, a run of digits, one punctuation character, or one character of a
 * script without spaces: at least as many as espeak-ng's words. When 201
 * items would fall within 800 bytes since the last clause break, " , " is put
 * in front of the item (a comma right after a dot would not end the clause). Prose has 5 or more
 * bytes per item and a clause break long before 200 of them. */
#define CLAUSE_ITEMS 200
#define CLAUSE_BYTES 800

struct clause {
    size_t at[CLAUSE_ITEMS]; /* where the last items started, a ring */
    size_t items;            /* since the last clause break */
    size_t bytes;            /* emitted, tags not counted, white space runs as 1 */
    uint32_t prev;           /* the last character emitted (' ' for white space) */
    int prev_class, prev2;   /* the classes of the last two */
};

enum { C_SPACE, C_LETTER, C_DIGIT, C_OTHER };

static void emit(struct norm *n, struct clause *c, const char *s, size_t len, uint32_t cp)
{
    if (is_space(cp)) {
        /* ",;:!?" then white space ends a clause, but not right after a
         * punctuation character: espeak-ng reads on through "a.a., b" */
        if (c->prev && c->prev < 0x80 && strchr(",;:!?", (int)c->prev) && c->prev2 != C_OTHER)
            c->items = 0;
        if (c->prev_class != C_SPACE)
            c->bytes++;
        c->prev2 = c->prev_class;
        c->prev_class = C_SPACE;
        c->prev = ' ';
        out_put(n, s, len);
        return;
    }
    int cls = is_punct(cp) || is_nospace_script(cp) ? C_OTHER : is_digit(cp) ? C_DIGIT : C_LETTER;
    if (cls == C_OTHER || cls != c->prev_class) {
        /* not in front of a comma (or the like), which may be a break itself */
        int breaks = cp < 0x80 && strchr(",;:!?", (int)cp);
        if (!breaks && c->items >= CLAUSE_ITEMS &&
            c->bytes - c->at[c->items % CLAUSE_ITEMS] < CLAUSE_BYTES) {
            if (c->prev_class == C_SPACE)
                out_put(n, ", ", 2);
            else
                out_put(n, " , ", 3);
            c->items = 0;
            c->bytes += 3;
        }
        c->at[c->items % CLAUSE_ITEMS] = c->bytes;
        c->items++;
    }
    /* an entity counts as one byte: never more than espeak-ng sees */
    c->bytes += n->ssml && s[0] == '&' && len > 1 ? 1 : len;
    c->prev2 = c->prev_class;
    c->prev_class = cls;
    c->prev = cp;
    out_put(n, s, len);
}

/* Apply fn to every token (a run of units without white space). */
static void each_token(struct norm *n, struct unit *u, size_t nu, void (*fn)(struct norm *))
{
    for (size_t i = 0; i < nu;) {
        if (u[i].kind == U_SPACE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < nu && u[j].kind != U_SPACE)
            j++;
        n->tok = u + i;
        n->ntok = j - i;
        fn(n);
        i = j;
    }
}

static void token_rules_early(struct norm *n)
{
    rule_alone(n);
    rule_url(n);
    rule_punct_runs(n);
}

static void token_rules_late(struct norm *n)
{
    /* rule 5 sees the token as split by the rules before it */
    struct unit *tok = n->tok;
    size_t ntok = n->ntok;
    for (size_t i = 0; i < ntok;) {
        size_t j = i;
        while (j < ntok && tok[j].act != ACT_SPACE)
            j++;
        n->tok = tok + i;
        n->ntok = j - i;
        if (n->ntok)
            rule_long_token(n);
        i = j + 1;
    }
    n->tok = tok;
    n->ntok = ntok;
    rule_long_word(n);
}

/* Apply every rule to u[0..nu) and append the result. */
static void run_rules(struct norm *n, struct clause *c, struct unit *u, size_t nu)
{
    each_token(n, u, nu, token_rules_early);
    rule_dotted(u, nu);
    each_token(n, u, nu, token_rules_late);
    for (size_t i = 0; i < nu; i++) {
        if (u[i].space_before)
            emit(n, c, " ", 1, ' ');
        if (u[i].kind == U_TAG)
            out_put(n, n->src + u[i].off, u[i].len);
        else if (u[i].act == ACT_KEEP)
            emit(n, c, n->src + u[i].off, u[i].len, u[i].kind == U_SPACE ? ' ' : u[i].cp);
        else if (u[i].act == ACT_SPACE)
            emit(n, c, " ", 1, ' ');
    }
}

static int is_dot(const struct unit *u)
{
    return u->kind == U_CHAR && u->cp == '.';
}

/* The text is read CHUNK_UNITS units at a time, cut at white space that has no
 * dot (rule 4's runs) or tag next to it; a text without such white space is
 * cut after CHUNK_MAX units, with " , " put in. So memory does not grow with
 * the text beyond the result. */
#define CHUNK_UNITS 16384
#define CHUNK_MAX (4 * CHUNK_UNITS)

char *normalize_text(const char *text, size_t len, int ssml, const char *lang, size_t *out_len)
{
    struct norm n = {.src = text,
                     .len = len,
                     .ssml = ssml,
                     .own = own_script(lang),
                     .english = is_english(lang)};
    n.ocap = len + 16;
    n.out = xmalloc(n.ocap);
    struct clause c = {.prev = ' ', .prev_class = C_SPACE, .prev2 = C_SPACE};
    size_t nu = 0, cap = 64;
    struct unit *u = xmalloc(cap * sizeof(*u));
    int held = 0; /* the last unit that is not white space is a dot or a tag */
    for (size_t p = 0; p < len;) {
        if (nu == cap) {
            cap *= 2;
            u = xrealloc(u, cap * sizeof(*u));
        }
        struct unit *last = &u[nu++];
        read_unit(&n, p, last);
        p += last->len;
        if (last->kind != U_SPACE)
            held = is_dot(last) || last->kind == U_TAG;
        if (nu < CHUNK_UNITS || p >= len)
            continue;
        int cut = 0;
        if (last->kind == U_SPACE && !held) {
            struct unit next;
            read_unit(&n, p, &next);
            cut = next.kind == U_CHAR && next.cp != '.';
        }
        if (cut || nu >= CHUNK_MAX) {
            run_rules(&n, &c, u, nu);
            if (!cut) /* a clause break: no run of rule 4 goes on across it */
                out_put(&n, " , ", 3);
            nu = 0;
        }
    }
    run_rules(&n, &c, u, nu);
    free(u);
    n.out[n.olen] = '\0';
    *out_len = n.olen;
    return n.out;
}
