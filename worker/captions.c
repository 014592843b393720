#include "captions.h"
#include "../common/util.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_time(struct strbuf *o, int64_t ms, char frac_sep)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld%c%03lld", (long long)(ms / 3600000),
                     (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), frac_sep,
                     (long long)(ms % 1000));
    strbuf_add(o, buf, (size_t)n);
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Cue text: bytes [from, to) of text, whitespace collapsed and trimmed; for
 * WebVTT escaped, with <time> tags where words start (words: char positions
 * and times, those inside the cue). Returns 0 when the cue has no text. */
static int cue_text(struct strbuf *o, const char *text, size_t from, size_t to, int64_t char0,
                    const struct cap_event *words, size_t nwords, int64_t start_ms, int64_t end_ms,
                    int vtt)
{
    size_t mark = o->len;
    int pending_space = 0, any = 0;
    int64_t ch = char0, last_ms = start_ms;
    size_t w = 0;
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)text[i];
        int lead = (c & 0xC0) != 0x80;
        if (lead) {
            while (w < nwords && words[w].pos < ch)
                w++;
        }
        if (is_space(c)) {
            pending_space = any;
            ch += lead;
            continue;
        }
        if (pending_space)
            strbuf_add(o, " ", 1);
        pending_space = 0;
        if (vtt && lead && any && w < nwords && words[w].pos == ch && words[w].ms > last_ms &&
            words[w].ms < end_ms) {
            strbuf_add(o, "<", 1);
            put_time(o, words[w].ms, '.');
            strbuf_add(o, ">", 1);
            last_ms = words[w].ms;
        }
        if (vtt && c == '&')
            strbuf_add(o, "&amp;", 5);
        else if (vtt && c == '<')
            strbuf_add(o, "&lt;", 4);
        else if (vtt && c == '>')
            strbuf_add(o, "&gt;", 4);
        else
            strbuf_add(o, (const char *)&text[i], 1);
        any = 1;
        ch += lead;
    }
    if (!any)
        o->len = mark;
    if (o->s)
        o->s[o->len] = '\0';
    return any;
}

char *captions_build(const char *text, size_t len, const struct cap_event *ev, size_t n,
                     int64_t duration_ms, int kind)
{
    int vtt = kind == CAPTIONS_VTT;
    /* Byte offset of each character, and the character count. */
    size_t nchars = 0;
    for (size_t i = 0; i < len; i++)
        nchars += ((unsigned char)text[i] & 0xC0) != 0x80;
    size_t *off = xmalloc((nchars + 1) * sizeof(*off));
    for (size_t i = 0, c = 0; i < len; i++)
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            off[c++] = i;
    off[nchars] = len;

    /* Sentence starts, increasing in position and time, the first at 0; words
     * in order. */
    struct cap_event *sent = xmalloc((n + 1) * sizeof(*sent));
    struct cap_event *words = xmalloc((n + 1) * sizeof(*words));
    size_t ns = 0, nw = 0;
    sent[ns++] = (struct cap_event){1, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int64_t pos = ev[i].pos, ms = ev[i].ms;
        if (pos < 0 || pos >= (int64_t)nchars || ms < 0 || ms > duration_ms)
            continue;
        if (ev[i].sentence) {
            if (pos > sent[ns - 1].pos && ms >= sent[ns - 1].ms)
                sent[ns++] = ev[i];
        } else if (!nw || (pos > words[nw - 1].pos && ms >= words[nw - 1].ms)) {
            words[nw++] = ev[i];
        }
    }

    struct strbuf o = {0};
    if (vtt)
        strbuf_add(&o, "WEBVTT\n\n", 8);
    int cue = 0;
    size_t k = 0;
    while (k < ns) {
        /* A cue runs to the next sentence that starts later in time; one that
         * would last no time joins the next. */
        size_t next = k + 1;
        while (next < ns && sent[next].ms <= sent[k].ms)
            next++;
        int64_t from = sent[k].pos, to = next < ns ? sent[next].pos : (int64_t)nchars;
        int64_t start = sent[k].ms, end = next < ns ? sent[next].ms : duration_ms;
        if (end <= start)
            end = start + 1;
        struct strbuf t = {0};
        if (cue_text(&t, text, off[from], off[to], from, words, nw, start, end, vtt)) {
            char num[32];
            if (!vtt) {
                int m = snprintf(num, sizeof(num), "%d\n", ++cue);
                strbuf_add(&o, num, (size_t)m);
            }
            put_time(&o, start, vtt ? '.' : ',');
            strbuf_add(&o, " --> ", 5);
            put_time(&o, end, vtt ? '.' : ',');
            strbuf_add(&o, "\n", 1);
            strbuf_add(&o, t.s, t.len);
            strbuf_add(&o, "\n\n", 2);
        }
        free(t.s);
        k = next;
    }
    free(off);
    free(sent);
    free(words);
    if (!o.s)
        strbuf_add(&o, "", 0);
    return o.s;
}

void captions_remove_tmp(const char *dir, const char *tag, const char *audio_name, int kinds)
{
    for (int k = CAPTIONS_VTT; k <= CAPTIONS_SRT; k <<= 1) {
        if (!(kinds & k))
            continue;
        char name[512], tmp[4096];
        captions_name(audio_name, k, name, sizeof(name));
        outfile_tmp_path(tmp, sizeof(tmp), dir, tag, name);
        unlink(tmp);
    }
}

int captions_write(const char *dir, const char *tag, const char *audio_name, int kinds,
                   const char *text, size_t len, const struct cap_event *ev, size_t n,
                   int64_t duration_ms, int *written, char *err, size_t errlen)
{
    *written = 0;
    for (int kind = CAPTIONS_VTT; kind <= CAPTIONS_SRT; kind <<= 1) {
        if (!(kinds & kind))
            continue;
        char name[512], tmp[4096];
        captions_name(audio_name, kind, name, sizeof(name));
        outfile_tmp_path(tmp, sizeof(tmp), dir, tag, name);
        char *doc = captions_build(text, len, ev, n, duration_ms, kind);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        size_t total = strlen(doc), done = 0;
        while (fd >= 0 && done < total) {
            ssize_t k = write(fd, doc + done, total - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            done += (size_t)k;
        }
        int e = errno;
        if (fd >= 0 && close(fd) < 0 && done == total) {
            e = errno;
            done = 0;
        }
        free(doc);
        if (fd < 0 || done < total) {
            snprintf(err, errlen, "%.160s: %s", tmp, strerror(e));
            unlink(tmp);
            captions_remove_tmp(dir, tag, audio_name, *written);
            *written = 0;
            return -1;
        }
        *written |= kind;
    }
    return 0;
}
