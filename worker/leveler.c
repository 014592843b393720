#include "leveler.h"
#include "../common/log.h"
#include "../common/util.h"
#include "encode.h"
#include "outfile.h"

#include <ebur128.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 8192
#define RELEASE_MS 50
#define MAX_REDUCTION_DB 30 /* the most the limiter takes off a peak */
#define MAX_ROUNDS 16 /* passes over the audio, the last one encoding */

struct leveler {
    int rate;
    double target, ceiling;
    double margin; /* dB under the ceiling the limiter aims at */
    int fd;        /* the spilled audio, unnamed */
    uint64_t frames;
    ebur128_state *in;
    int16_t buf[BLOCK];
    size_t buffered;
};

static int spill_flush(struct leveler *l, char *err, size_t errlen)
{
    size_t done = 0, len = l->buffered * sizeof(int16_t);
    while (done < len) {
        ssize_t n = write(l->fd, (char *)l->buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "loudness: spilling the audio: %s", strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    l->buffered = 0;
    return 0;
}

struct leveler *leveler_new(int rate, double target_lufs, double ceiling_dbtp, int lossy,
                            const char *dir, char *err, size_t errlen)
{
    char tmpdir[4096];
    outfile_tmp_path(tmpdir, sizeof(tmpdir), dir, "", "");
    char *slash = strrchr(tmpdir, '/');
    if (slash)
        *slash = '\0';
    int fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* A file system without unnamed files (NFS): a named one, unlinked
         * at once (outfile_clean_stale() takes it if we die in between). */
        char named[4200];
        snprintf(named, sizeof(named), "%s/%d.spill", tmpdir, (int)getpid());
        fd = open(named, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0)
            unlink(named);
    }
    if (fd < 0) {
        snprintf(err, errlen, "loudness: a spill file in %.200s: %s", tmpdir, strerror(errno));
        return NULL;
    }
    struct leveler *l = xcalloc(1, sizeof(*l));
    l->rate = rate;
    l->target = target_lufs;
    l->ceiling = ceiling_dbtp;
    /* Lossy codecs ring: their decoded peaks pass the input's by up to 1.5 dB
     * on loud, limited speech (Vorbis by up to 2 dB); resampling adds a little. */
    l->margin = lossy ? 3.0 : 0.5;
    l->fd = fd;
    l->in = ebur128_init(1, (unsigned long)rate, EBUR128_MODE_I | EBUR128_MODE_TRUE_PEAK);
    if (!l->in) {
        snprintf(err, errlen, "loudness: libebur128 cannot start");
        leveler_free(l);
        return NULL;
    }
    return l;
}

int leveler_push(struct leveler *l, const int16_t *pcm, size_t frames, char *err, size_t errlen)
{
    if (ebur128_add_frames_short(l->in, pcm, frames) != EBUR128_SUCCESS) {
        snprintf(err, errlen, "loudness: libebur128 refused the audio");
        return -1;
    }
    l->frames += frames;
    while (frames) {
        size_t n = BLOCK - l->buffered < frames ? BLOCK - l->buffered : frames;
        memcpy(l->buf + l->buffered, pcm, n * sizeof(int16_t));
        l->buffered += n;
        pcm += n;
        frames -= n;
        if (l->buffered == BLOCK && spill_flush(l, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* A look-ahead peak limiter: the gain each sample needs to stay under the
 * threshold, r[n]; its minimum over the next LOOKAHEAD samples, m[n]; that
 * averaged over the last LOOKAHEAD samples, so the gain glides down before a
 * peak instead of stepping (each average includes r[n] itself: it never lets
 * a sample past the threshold); then a slower release. The output is delayed
 * by LOOKAHEAD - 1 + TP_HALF samples.
 *
 * A sample's peak is the largest of it and the three points a quarter, a half
 * and three quarters of the way to the next, interpolated 4x the way a true
 * peak meter does (BS.1770: libebur128 measures the result so): loud, clipped
 * speech has much energy near Nyquist, and its true peaks lie well above its
 * samples. Limiting those peaks themselves, the limiter seldom has to be
 * run again lower because its output's true peak passed the ceiling. */
#define LOOKAHEAD_MAX 512
#define TP_HALF 6             /* taps each side of the point interpolated */
#define TP_TAPS (2 * TP_HALF) /* a phase's taps: samples m - 5 .. m + 6 */

/* The interpolating filter's three phases: a windowed sinc (Hann over the
 * taps), each phase scaled to unity gain at DC. By tap, then phase. */
static double tp_coef[TP_TAPS][3];

static void tp_init(void)
{
    static int done;
    if (done)
        return;
    for (int q = 1; q <= 3; q++) {
        double t = q / 4.0, sum = 0;
        for (int i = 0; i < TP_TAPS; i++) {
            double x = t - (i - (TP_HALF - 1)); /* distance from sample m + i - 5 */
            double sinc = fabs(x) < 1e-12 ? 1 : sin(M_PI * x) / (M_PI * x);
            double w = 0.5 + 0.5 * cos(M_PI * x / TP_HALF);
            tp_coef[i][q - 1] = sinc * w;
            sum += sinc * w;
        }
        for (int i = 0; i < TP_TAPS; i++)
            tp_coef[i][q - 1] /= sum;
    }
    done = 1;
}

struct limiter {
    double threshold, release;
    int la;                  /* look-ahead, samples */
    uint64_t n;              /* samples taken */
    double x[LOOKAHEAD_MAX]; /* the input, delayed */
    double m[LOOKAHEAD_MAX]; /* the last la window minima */
    double msum;
    int qi[LOOKAHEAD_MAX * 2]; /* a deque of sample indices (mod), increasing r */
    double qr[LOOKAHEAD_MAX * 2];
    uint64_t qn[LOOKAHEAD_MAX * 2];
    int qh, qt;
    double env;
    uint64_t taken;          /* inputs taken, the first TP_HALF only into h */
    int hi;                  /* where the next input goes in h */
    int xi;                  /* n % la, the slot of x[] and m[] of the next sample */
    double h[2 * TP_TAPS];   /* the last TP_TAPS inputs, twice: h[hi .. hi + TP_TAPS) */
};

static void limiter_init(struct limiter *lm, double threshold, int rate)
{
    memset(lm, 0, sizeof(*lm));
    tp_init();
    lm->threshold = threshold;
    lm->la = rate / 200; /* 5 ms */
    if (lm->la < 2)
        lm->la = 2;
    if (lm->la > LOOKAHEAD_MAX)
        lm->la = LOOKAHEAD_MAX;
    lm->release = 1.0 / ((double)rate * RELEASE_MS / 1000.0);
    lm->env = 1.0;
    lm->msum = lm->la; /* the averaged minima start at gain 1 */
    for (int i = 0; i < lm->la; i++)
        lm->m[i] = 1.0;
}

/* Take an input; returns 1 with *y set when a delayed sample comes out. */
static int limiter_step(struct limiter *lm, double in, double *y)
{
    /* The sample TP_HALF inputs back, m, with the points after it. */
    lm->h[lm->hi] = lm->h[lm->hi + TP_TAPS] = in;
    lm->hi = lm->hi + 1 == TP_TAPS ? 0 : lm->hi + 1;
    if (++lm->taken <= TP_HALF)
        return 0;
    const double *h = lm->h + lm->hi; /* oldest first: h[i] is sample m - 5 + i */
    double x = h[TP_HALF - 1], v0 = 0, v1 = 0, v2 = 0; /* three sums, in registers */
    for (int i = 0; i < TP_TAPS; i++) {
        v0 += tp_coef[i][0] * h[i];
        v1 += tp_coef[i][1] * h[i];
        v2 += tp_coef[i][2] * h[i];
    }
    double peak = fmax(fmax(fabs(x), fabs(v0)), fmax(fabs(v1), fabs(v2)));
    int la = lm->la;
    uint64_t k = lm->n++;
    int xk = lm->xi, xj = xk + 1 == la ? 0 : xk + 1; /* k % la, (k + 1 - la) % la */
    lm->xi = xj;
    double r = peak > lm->threshold ? lm->threshold / peak : 1.0;
    lm->x[xk] = x;
    /* the deque holds the window [k - la + 1, k], minimum at its head */
    int cap = LOOKAHEAD_MAX * 2;
    while (lm->qt != lm->qh && lm->qr[(lm->qt + cap - 1) % cap] >= r)
        lm->qt = (lm->qt + cap - 1) % cap;
    lm->qr[lm->qt] = r;
    lm->qn[lm->qt] = k;
    lm->qt = (lm->qt + 1) % cap;
    while (lm->qn[lm->qh] + (uint64_t)la <= k)
        lm->qh = (lm->qh + 1) % cap;
    if (k + 1 < (uint64_t)la)
        return 0;
    /* m[j] = min r[j .. k], j = k + 1 - la */
    double m = lm->qr[lm->qh];
    lm->msum += m - lm->m[xj];
    lm->m[xj] = m;
    double a = lm->msum / la;
    if (a < lm->env)
        lm->env = a;
    else
        lm->env = lm->env + lm->release < a ? lm->env + lm->release : a;
    *y = lm->x[xj] * lm->env;
    return 1;
}

/* One pass over the spilled audio: gain, then the limiter (threshold > 0),
 * measured into st and written to enc, each when given. */
static int emit(ebur128_state *st, struct encoder *enc, const int16_t *out, size_t n, char *err,
                size_t errlen)
{
    float f[BLOCK];
    for (size_t i = 0; st && i < n; i++)
        f[i] = out[i] / 32768.0f; /* measured as encoded: the rounded samples */
    if (st && ebur128_add_frames_float(st, f, n) != EBUR128_SUCCESS) {
        snprintf(err, errlen, "loudness: libebur128 refused the audio");
        return -1;
    }
    return enc ? encoder_write(enc, out, n, err, errlen) : 0;
}

static int16_t to_pcm(double x)
{
    double s = lrint(x * 32768.0);
    return (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
}

static int pass(struct leveler *l, double gain, double threshold, ebur128_state *st,
                struct encoder *enc, char *err, size_t errlen)
{
    int16_t pcm[BLOCK], out[BLOCK];
    struct limiter *lm = threshold > 0 ? xmalloc(sizeof(*lm)) : NULL;
    if (lm)
        limiter_init(lm, threshold, l->rate);
    off_t pos = 0;
    uint64_t left = l->frames;
    int rc = 0;
    while (rc == 0 && left) {
        size_t n = left < BLOCK ? (size_t)left : BLOCK, o = 0;
        ssize_t got = pread(l->fd, pcm, n * sizeof(int16_t), pos);
        if (got != (ssize_t)(n * sizeof(int16_t))) {
            snprintf(err, errlen, "loudness: reading the audio back: %s",
                     got < 0 ? strerror(errno) : "short read");
            rc = -1;
            break;
        }
        pos += got;
        left -= n;
        for (size_t i = 0; i < n; i++) {
            double x = pcm[i] / 32768.0 * gain, y;
            if (!lm)
                out[o++] = to_pcm(x);
            else if (limiter_step(lm, x, &y))
                out[o++] = to_pcm(y);
        }
        rc = emit(st, enc, out, o, err, errlen);
    }
    /* What the look-ahead still holds. */
    if (rc == 0 && lm) {
        size_t o = 0;
        double y;
        for (int i = 0; i < lm->la - 1 + TP_HALF && lm->taken; i++)
            if (limiter_step(lm, 0, &y))
                out[o++] = to_pcm(y);
        rc = emit(st, enc, out, o, err, errlen);
    }
    free(lm);
    return rc;
}

static double db(double lin)
{
    return lin > 0 ? 20.0 * log10(lin) : -HUGE_VAL;
}

/* One pass measured: its integrated loudness, and its true peak when tp. */
static int measured_pass(struct leveler *l, double gain_db, double threshold, int tp,
                         struct encoder *enc, double *got, double *got_tp, char *err,
                         size_t errlen)
{
    ebur128_state *st = ebur128_init(1, (unsigned long)l->rate,
                                     EBUR128_MODE_I | (tp ? EBUR128_MODE_TRUE_PEAK : 0));
    if (!st) {
        snprintf(err, errlen, "loudness: libebur128 cannot start");
        return -1;
    }
    int rc = pass(l, pow(10, gain_db / 20), threshold, st, enc, err, errlen);
    *got = -HUGE_VAL;
    *got_tp = 0;
    ebur128_loudness_global(st, got);
    if (tp)
        ebur128_true_peak(st, 0, got_tp);
    ebur128_destroy(&st);
    return rc;
}

int leveler_finish(struct leveler *l, struct encoder *enc, double *lufs, double *dbtp, char *err,
                   size_t errlen)
{
    if (l->buffered && spill_flush(l, err, errlen) < 0)
        return -1;
    double loud = -HUGE_VAL, peak = 0;
    ebur128_loudness_global(l->in, &loud);
    ebur128_true_peak(l->in, 0, &peak);
    /* Silence (or too short to measure) keeps its level. */
    double gain_db = isfinite(loud) ? l->target - loud : 0;
    double limit_db = l->ceiling - l->margin;
    double threshold = db(peak) + gain_db > limit_db ? pow(10, limit_db / 20) : 0;
    if (threshold == 0) {
        /* A gain alone: one pass, which encodes, measured for the result. */
        double got, got_tp;
        if (measured_pass(l, gain_db, 0, 1, enc, &got, &got_tp, err, errlen) < 0)
            return -1;
        *lufs = got;
        *dbtp = db(got_tp);
        log_debug("loudness: 1 pass to %.2f LUFS, %.2f dBTP (gain %.2f dB)", got, *dbtp,
                  gain_db);
        return 0;
    }
    /* With the limiter, passes that only measure until the loudness is within
     * 0.2 LU of the target and the true peak under the ceiling, then the one
     * that encodes, the same samples as the last measured: its figures are
     * that pass's. The true peak (4x oversampled: most of a pass's time) is
     * measured on the first pass and on those that may land on the target.
     * The louder the gain, the more the limiter takes off, so a dB of gain
     * gives less than a dB of loudness: the gain steps by the secant through
     * the last two passes at the same threshold. */
    double prev_gain = 0, prev_got = 0, miss = HUGE_VAL, got = -HUGE_VAL, got_tp = 0, slope = 1;
    int have_prev = 0, converged = 0, round = 0, tp_passes = 0;
    for (; round < MAX_ROUNDS - 1 && !converged; round++) {
        int tp = round == 0 || fabs(miss) < 1.0;
        tp_passes += tp;
        if (measured_pass(l, gain_db, threshold, tp, NULL, &got, &got_tp, err, errlen) < 0)
            return -1;
        miss = isfinite(got) ? l->target - got : 0;
        int peaks_pass = tp && db(got_tp) > limit_db + 0.3;
        int off_target = fabs(miss) > 0.2;
        if (peaks_pass) { /* peaks between the samples pass: limit lower */
            threshold *= pow(10, (limit_db - db(got_tp)) / 20);
            have_prev = 0; /* another curve, of much the same slope */
        }
        if (off_target) {
            if (have_prev && fabs(gain_db - prev_gain) > 1e-3)
                slope = (got - prev_got) / (gain_db - prev_gain);
            slope = slope < 0.1 ? 0.1 : slope > 1 ? 1 : slope;
            double step = miss / slope;
            step = step > 24 ? 24 : step < -24 ? -24 : step;
            prev_gain = gain_db;
            prev_got = got;
            have_prev = !peaks_pass;
            /* No more than MAX_REDUCTION_DB for the limiter to take off the
             * loudest peak: past that a target is out of reach (the result
             * says what was reached), and more gain would only distort. */
            double top = limit_db - db(peak) + MAX_REDUCTION_DB;
            if (gain_db + step > top)
                step = top - gain_db;
            off_target = fabs(step) > 0.01;
            if (off_target) /* else the gain stays that of the pass measured */
                gain_db += step;
        }
        /* On target with the peaks unmeasured: the next pass measures them,
         * at the same gain. */
        converged = tp && !peaks_pass && !off_target;
        if (!off_target && !tp)
            miss = 0;
    }
    if (converged) {
        if (pass(l, pow(10, gain_db / 20), threshold, NULL, enc, err, errlen) < 0)
            return -1;
    } else if (measured_pass(l, gain_db, threshold, 1, enc, &got, &got_tp, err, errlen) < 0) {
        return -1; /* out of passes: the last one's figures */
    }
    *lufs = got;
    *dbtp = db(got_tp);
    log_debug("loudness: %d passes (%d measuring the true peak) to %.2f LUFS, %.2f dBTP "
              "(gain %.2f dB, limited%s)",
              round + 1, tp_passes, got, *dbtp, gain_db, converged ? "" : ", out of passes");
    return 0;
}

void leveler_free(struct leveler *l)
{
    if (!l)
        return;
    if (l->in)
        ebur128_destroy(&l->in);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
