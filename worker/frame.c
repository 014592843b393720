#include "frame.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

static void put(struct wbuf *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        w->data = xrealloc(w->data, cap);
        w->cap = cap;
    }
    if (n)
        memcpy(w->data + w->len, p, n);
    w->len += n;
}

void frame_begin(struct wbuf *w, uint32_t type)
{
    uint32_t hdr[2] = {type, 0};
    w->len = 0;
    put(w, hdr, sizeof(hdr));
}

void frame_end(struct wbuf *w)
{
    uint32_t len = (uint32_t)(w->len - FRAME_HDR);
    memcpy(w->data + 4, &len, 4);
}

void wbuf_u32(struct wbuf *w, uint32_t v)
{
    put(w, &v, sizeof(v));
}

void wbuf_i64(struct wbuf *w, int64_t v)
{
    put(w, &v, sizeof(v));
}

void wbuf_bytes(struct wbuf *w, const void *p, size_t len)
{
    wbuf_u32(w, (uint32_t)len);
    put(w, p, len);
}

void wbuf_str(struct wbuf *w, const char *s)
{
    wbuf_bytes(w, s ? s : "", s ? strlen(s) : 0);
}

void wbuf_free(struct wbuf *w)
{
    free(w->data);
    *w = (struct wbuf){0};
}

void frame_header(const void *p, uint32_t *type, uint32_t *len)
{
    memcpy(type, p, 4);
    memcpy(len, (const char *)p + 4, 4);
}

static const char *take(struct rbuf *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    const char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint32_t rbuf_u32(struct rbuf *r)
{
    uint32_t v = 0;
    const char *p = take(r, sizeof(v));
    if (p)
        memcpy(&v, p, sizeof(v));
    return v;
}

int64_t rbuf_i64(struct rbuf *r)
{
    int64_t v = 0;
    const char *p = take(r, sizeof(v));
    if (p)
        memcpy(&v, p, sizeof(v));
    return v;
}

const char *rbuf_bytes(struct rbuf *r, size_t *len)
{
    uint32_t n = rbuf_u32(r);
    const char *p = take(r, n);
    *len = p ? n : 0;
    return p ? p : "";
}

void rbuf_strcpy(struct rbuf *r, char *dst, size_t size)
{
    size_t n;
    const char *p = rbuf_bytes(r, &n);
    if (n >= size || memchr(p, '\0', n)) {
        r->bad = 1;
        n = 0;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
}

char *rbuf_strdup(struct rbuf *r, int null_if_empty)
{
    size_t n;
    const char *p = rbuf_bytes(r, &n);
    if (n == 0 && null_if_empty)
        return NULL;
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}
