/*
 * The last 15 minutes, kept in the master from the scoreboard for the status
 * page: every HISTORY_STEP_MS a sample of the cumulative job counters and of
 * the job-time histogram (workers that have exited included), from which the
 * page draws jobs/s, failures/s and p50/p99 job time as inline SVG; and the
 * last HISTORY_FAILURES failed attempts, gathered from the workers' slots.
 * Nothing here allocates after history_new(): a sample is a fixed ring slot.
 */
#include "../common/util.h"
#include "master.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_STEP_MS 10000
#define HISTORY_SPAN_MS (15 * 60 * 1000)
#define HISTORY_SAMPLES (HISTORY_SPAN_MS / HISTORY_STEP_MS + 1)
#define HISTORY_FAILURES 50

struct sample {
    int64_t mono_ms;
    uint64_t ok, failed; /* failed: dead-lettered or retried attempts */
    uint64_t le[HIST_JOB_BUCKETS + 1];
};

struct history {
    struct sample ring[HISTORY_SAMPLES];
    int nsamples, next; /* ring[next] is written next */
    struct failure failures[HISTORY_FAILURES];
    int nfailures, next_failure;
    /* history_charts()' working space */
    int64_t t0[HISTORY_SAMPLES + 1], t[HISTORY_SAMPLES + 1];
    double v[HISTORY_SAMPLES + 1][4];
};

struct history *history_new(void)
{
    return xcalloc(1, sizeof(struct history));
}

void history_free(struct history *h)
{
    free(h);
}

/* The counters now: live workers' slots plus those of workers that exited. */
static void take(struct master *m, struct sample *s)
{
    memset(s, 0, sizeof(*s));
    s->mono_ms = now_mono_ms();
    s->ok = m->retired_ok;
    s->failed = m->retired_failed + m->retired_retried;
    memcpy(s->le, m->retired_job_seconds.le, sizeof(s->le));
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *sl = scoreboard_slot(m->sb, m->children[i].slot);
        s->ok += atomic_load(&sl->jobs_ok);
        s->failed += atomic_load(&sl->jobs_failed) + atomic_load(&sl->jobs_retried);
        for (int k = 0; k <= HIST_JOB_BUCKETS; k++)
            s->le[k] += atomic_load(&sl->job_seconds.le[k]);
    }
}

void history_gather_failures(struct master *m, struct child *c)
{
    struct history *h = m->history;
    struct sb_slot *s = scoreboard_slot(m->sb, c->slot);
    uint64_t written = atomic_load(&s->failures_written);
    if (written - c->failures_seen > SB_FAILURES)
        c->failures_seen = written - SB_FAILURES; /* the older ones are written over */
    for (; c->failures_seen < written; c->failures_seen++) {
        if (slot_get_failure(s, c->failures_seen, &h->failures[h->next_failure]) < 0)
            continue;
        h->next_failure = (h->next_failure + 1) % HISTORY_FAILURES;
        if (h->nfailures < HISTORY_FAILURES)
            h->nfailures++;
    }
}

void history_tick(struct master *m)
{
    struct history *h = m->history;
    for (int i = 0; i < m->nchildren; i++)
        history_gather_failures(m, &m->children[i]);
    int last = (h->next + HISTORY_SAMPLES - 1) % HISTORY_SAMPLES;
    if (h->nsamples && now_mono_ms() - h->ring[last].mono_ms < HISTORY_STEP_MS)
        return;
    take(m, &h->ring[h->next]);
    h->next = (h->next + 1) % HISTORY_SAMPLES;
    if (h->nsamples < HISTORY_SAMPLES)
        h->nsamples++;
}

/* Prometheus' histogram_quantile: the bucket where the rank falls, linearly
 * interpolated; NAN without observations. */
static double quantile(double q, const uint64_t *le)
{
    uint64_t total = le[HIST_JOB_BUCKETS];
    if (!total)
        return NAN;
    double rank = q * (double)total;
    for (int i = 0; i < HIST_JOB_BUCKETS; i++) {
        if ((double)le[i] >= rank) {
            double lo = i ? hist_job_bounds[i - 1] : 0, below = i ? (double)le[i - 1] : 0;
            double in = (double)le[i] - below;
            return in > 0 ? lo + (hist_job_bounds[i] - lo) * (rank - below) / in : lo;
        }
    }
    return hist_job_bounds[HIST_JOB_BUCKETS - 1];
}

enum { SERIES_OK, SERIES_FAILED, SERIES_P50, SERIES_P99, SERIES_COUNT };
_Static_assert(SERIES_COUNT == 4, "struct history's working space");

/* One point per interval between samples (the last from the newest sample to
 * now): its end time and each series' value, and t0[] its start. Returns how
 * many. */
static int points(struct master *m, int64_t *t0, int64_t *t, double (*v)[SERIES_COUNT])
{
    struct history *h = m->history;
    struct sample now;
    take(m, &now);
    int n = 0;
    const struct sample *prev = NULL;
    for (int k = 0; k <= h->nsamples; k++) {
        const struct sample *s =
            k < h->nsamples
                ? &h->ring[(h->next + HISTORY_SAMPLES - h->nsamples + k) % HISTORY_SAMPLES]
                : &now;
        if (prev && s->mono_ms - prev->mono_ms >= 1000) {
            double dt = (double)(s->mono_ms - prev->mono_ms) / 1000.0;
            uint64_t d[HIST_JOB_BUCKETS + 1];
            for (int i = 0; i <= HIST_JOB_BUCKETS; i++)
                d[i] = s->le[i] - prev->le[i];
            t0[n] = prev->mono_ms;
            t[n] = s->mono_ms;
            v[n][SERIES_OK] = (double)(s->ok - prev->ok) / dt;
            v[n][SERIES_FAILED] = (double)(s->failed - prev->failed) / dt;
            v[n][SERIES_P50] = quantile(0.5, d);
            v[n][SERIES_P99] = quantile(0.99, d);
            n++;
        }
        if (!prev || s->mono_ms - prev->mono_ms >= 1000)
            prev = s;
    }
    return n;
}

/* 1, 2 or 5 times a power of ten, at least v. */
static double nice_ceiling(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

#define W 300
#define H 110
#define LEFT 46
#define TOP 8
#define BOTTOM 20

struct chart_series {
    int index;
    const char *name, *color, *dash;
};

static double xpos(int64_t t, int64_t start)
{
    double x = LEFT + (double)W * (double)(t - start) / HISTORY_SPAN_MS;
    return x < LEFT ? LEFT : x;
}

/* Each interval is a step at its value from its start to its end; a gap (no
 * job, for a time) breaks the line; the newest value has a dot, so that a
 * chart a few seconds old already shows something. */
static void chart(struct evbuffer *b, const char *title, const char *unit, const int64_t *t0,
                  const int64_t *t, double (*v)[SERIES_COUNT], int n,
                  const struct chart_series *series, int ns)
{
    int64_t end = now_mono_ms(), start = end - HISTORY_SPAN_MS;
    double max = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ns; k++)
            if (isfinite(v[i][series[k].index]) && v[i][series[k].index] > max)
                max = v[i][series[k].index];
    max = nice_ceiling(max);
    evbuffer_add_printf(b,
                        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                        "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
                        "<title>%s, last 15 minutes</title>",
                        LEFT + W + 4, TOP + H + BOTTOM, LEFT + W + 4, TOP + H + BOTTOM, title,
                        title);
    evbuffer_add_printf(b,
                        "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" "
                        "stroke=\"#ccc\"/>",
                        LEFT, TOP, W, H);
    for (int g = 1; g < 4; g++)
        evbuffer_add_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/>",
                            LEFT, LEFT + W, TOP + H * g / 4, TOP + H * g / 4);
    evbuffer_add_printf(b,
                        "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%g%s</text>"
                        "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">0</text>"
                        "<text x=\"%d\" y=\"%d\" font-size=\"10\">-15 min</text>"
                        "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">now</text>",
                        LEFT - 4, TOP + 9, max, unit, LEFT - 4, TOP + H, LEFT, TOP + H + 14,
                        LEFT + W, TOP + H + 14);
    for (int k = 0; k < ns; k++) {
        const struct chart_series *se = &series[k];
        int open = 0;
        double lx = 0, ly = 0;
        for (int i = 0; i < n; i++) {
            double y = v[i][se->index];
            if (!isfinite(y) || t[i] < start) {
                if (open)
                    evbuffer_add_printf(b, "\"/>");
                open = 0;
                continue;
            }
            double py = TOP + H - (double)H * y / max;
            if (!open)
                evbuffer_add_printf(b,
                                    "<polyline class=\"series\" data-series=\"%s\" fill=\"none\" "
                                    "stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"",
                                    se->name, se->color, se->dash ? " stroke-dasharray=\"" : "",
                                    se->dash ? se->dash : "", se->dash ? "\"" : "");
            lx = xpos(t[i], start);
            ly = py;
            evbuffer_add_printf(b, "%s%.1f,%.1f %.1f,%.1f", open ? " " : "", xpos(t0[i], start), py,
                                lx, ly);
            open = 1;
        }
        if (open)
            evbuffer_add_printf(b,
                                "\"/><circle class=\"last\" data-series=\"%s\" cx=\"%.1f\" "
                                "cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                                se->name, lx, ly, se->color);
    }
    evbuffer_add_printf(b, "</svg><figcaption>%s", title);
    for (int k = 0; k < ns; k++)
        evbuffer_add_printf(b, " <span style=\"color:%s\">&#9644; %s</span>", series[k].color,
                            series[k].name);
    evbuffer_add_printf(b, "</figcaption></figure>\n");
}

void history_charts(struct master *m, struct evbuffer *b)
{
    int64_t *t0 = m->history->t0, *t = m->history->t;
    double(*v)[SERIES_COUNT] = m->history->v;
    int n = points(m, t0, t, v);
    static const struct chart_series jobs[] = {{SERIES_OK, "ok", "#176117", NULL}},
                                     fails[] = {{SERIES_FAILED, "failed", "#b00020", NULL}},
                                     times[] = {{SERIES_P50, "p50", "#1f5fa8", NULL},
                                                {SERIES_P99, "p99", "#8a5a00", "4 3"}};
    evbuffer_add_printf(b, "<div class=\"charts\">\n");
    chart(b, "Jobs per second", "/s", t0, t, v, n, jobs, 1);
    chart(b, "Failures per second (retried or dead-lettered)", "/s", t0, t, v, n, fails, 1);
    chart(b, "Job time", " s", t0, t, v, n, times, 2);
    evbuffer_add_printf(b, "</div>\n");
}

/* Newest first; time as an epoch number for JSON. */
struct json_t *history_failures_json(struct master *m)
{
    struct history *h = m->history;
    json_t *a = json_array();
    for (int k = 0; k < h->nfailures; k++) {
        const struct failure *f =
            &h->failures[(h->next_failure + HISTORY_FAILURES - 1 - k) % HISTORY_FAILURES];
        json_t *o = json_pack("{s:f,s:s,s:s,s:s,s:s}", "time", (double)f->time_ms / 1000.0, "queue",
                              f->queue, "id", f->id, "outcome", f->retried ? "retried" : "failed",
                              "code", f->code);
        json_t *msg = json_string(f->message); /* an app's words may not be UTF-8 */
        if (!o)
            continue;
        json_object_set_new(o, "message", msg ? msg : json_string("(not UTF-8)"));
        json_array_append_new(a, o);
    }
    return a;
}
