#include "confirms.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

void confirms_add(struct confirms *c, uint64_t seq)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->seq = xrealloc(c->seq, c->cap * sizeof(*c->seq));
    }
    c->seq[c->n++] = seq;
}

/* Index of the first outstanding number >= tag. */
static size_t lower_bound(const struct confirms *c, uint64_t tag)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->seq[mid] < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t confirms_take(struct confirms *c, uint64_t tag, int multiple, uint64_t **out)
{
    *out = NULL;
    size_t i = lower_bound(c, tag);
    int found = i < c->n && c->seq[i] == tag;
    size_t from = multiple ? 0 : i;
    size_t to = found ? i + 1 : i;
    if (to <= from)
        return 0;
    size_t k = to - from;
    *out = xmalloc(k * sizeof(**out));
    memcpy(*out, c->seq + from, k * sizeof(**out));
    memmove(c->seq + from, c->seq + to, (c->n - to) * sizeof(*c->seq));
    c->n -= k;
    return k;
}

void confirms_reset(struct confirms *c)
{
    c->n = 0;
}

void confirms_free(struct confirms *c)
{
    free(c->seq);
    *c = (struct confirms){0};
}
