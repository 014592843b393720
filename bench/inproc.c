/*
 * inproc: the in-process limit for c2a-worker's speech jobs: espeak-ng synthesis
 * plus WAV encoding, in a loop, one process per worker, no broker.
 *   inproc PROCESSES SECONDS TEXT_FILE OUTPUT_DIR [drop]   each file written
 *       as the workers write it (encode_to_file(): temporary file, SHA-256
 *       read back, fsync, its pages dropped with drop as with [output]
 *       page_cache = drop, the daemon's default, rename, directory fsync) and
 *       kept: a file deleted at once would make ext4 without a journal skip its
 *       inode at the next allocations
 *   inproc PROCESSES SECONDS TEXT_FILE -            the WAV encoded by libsndfile
 *       into memory, no file: the limit that the ratios are taken against
 * Prints jobs/s over all processes (the sum of each process's own rate: each
 * finishes the job it is in when the time is up, and a total over the longest
 * run would count that overshoot against the others) and p50/p99 of one job.
 */
#include "../worker/encode.h"

#include <sndfile.h>

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int16_t *buf;
static size_t frames, cap;

static int on_audio(short *wav, int n, espeak_EVENT *e)
{
    (void)e;
    if (wav && n > 0) {
        if (frames + (size_t)n > cap) {
            cap = (frames + (size_t)n) * 2;
            buf = realloc(buf, cap * sizeof(int16_t));
        }
        memcpy(buf + frames, wav, (size_t)n * sizeof(int16_t));
        frames += (size_t)n;
    }
    return 0;
}

/* A growing memory file for libsndfile's virtual I/O. */
struct memfile {
    char *data;
    sf_count_t len, cap, pos;
};

static sf_count_t mem_len(void *u)
{
    return ((struct memfile *)u)->len;
}

static sf_count_t mem_seek(sf_count_t off, int whence, void *u)
{
    struct memfile *m = u;
    m->pos = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;
    return m->pos;
}

static sf_count_t mem_read(void *p, sf_count_t n, void *u)
{
    struct memfile *m = u;
    if (n > m->len - m->pos)
        n = m->len - m->pos;
    memcpy(p, m->data + m->pos, (size_t)n);
    m->pos += n;
    return n;
}

static sf_count_t mem_write(const void *p, sf_count_t n, void *u)
{
    struct memfile *m = u;
    if (m->pos + n > m->cap) {
        m->cap = (m->pos + n) * 2;
        m->data = realloc(m->data, (size_t)m->cap);
    }
    memcpy(m->data + m->pos, p, (size_t)n);
    m->pos += n;
    if (m->pos > m->len)
        m->len = m->pos;
    return n;
}

static sf_count_t mem_tell(void *u)
{
    return ((struct memfile *)u)->pos;
}

static void encode_to_memory(const struct pcm *p, struct memfile *m)
{
    static SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info = {.samplerate = p->rate, .channels = 1,
                    .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    m->len = m->pos = 0;
    SNDFILE *sf = sf_open_virtual(&io, SFM_WRITE, &info, m);
    if (!sf || sf_writef_short(sf, p->samples, (sf_count_t)p->frames) != (sf_count_t)p->frames ||
        sf_close(sf) != 0) {
        fprintf(stderr, "inproc: encoding in memory: %s\n", sf_strerror(NULL));
        exit(1);
    }
}

static void run(int idx, double seconds, const char *text, const char *dir, int flags, int fd)
{
    espeak_ng_InitializePath(NULL);
    if (espeak_ng_Initialize(NULL) != ENS_OK ||
        espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL) != ENS_OK)
        exit(1);
    espeak_SetSynthCallback(on_audio);
    espeak_ng_SetVoiceByName("en-us");
    int rate = espeak_ng_GetSampleRate();
    double *lat = malloc(sizeof(double) * 1000000);
    long jobs = 0;
    struct memfile mem = {0};
    double start = bench_now();
    while (bench_now() - start < seconds && jobs < 1000000) {
        double t = bench_now();
        frames = 0;
        espeak_ng_SetParameter(espeakRATE, 175, 0);
        espeak_ng_Synthesize(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
                             espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
        struct pcm p = {buf, frames, rate};
        if (strcmp(dir, "-") == 0) {
            encode_to_memory(&p, &mem);
        } else {
            struct encoded e;
            char name[64], err[256];
            int permanent;
            snprintf(name, sizeof(name), "inproc-%d-%ld.wav", idx, jobs);
            if (encode_to_file(&p, "wav", rate, dir, name, flags, &e, &permanent, err,
                               sizeof(err)) < 0) {
                fprintf(stderr, "inproc: %s\n", err);
                exit(1);
            }
        }
        lat[jobs++] = bench_now() - t;
    }
    double elapsed = bench_now() - start;
    if (write(fd, &jobs, sizeof(jobs)) < 0 || write(fd, &elapsed, sizeof(elapsed)) < 0 ||
        write(fd, lat, sizeof(double) * (size_t)jobs) < 0)
        exit(1);
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "drop") == 0 && strcmp(argv[4], "-") != 0)) {
        fprintf(stderr, "usage: inproc PROCESSES SECONDS TEXT_FILE OUTPUT_DIR|- [drop]\n");
        return 2;
    }
    int np = atoi(argv[1]);
    double seconds = atof(argv[2]);
    FILE *f = fopen(argv[3], "r");
    static char text[1 << 20];
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    int pipes[64][2];
    for (int i = 0; i < np && i < 64; i++) {
        if (pipe(pipes[i]) < 0)
            return 1;
        if (fork() == 0) {
            close(pipes[i][0]);
            run(i, seconds, text, argv[4], OUTFILE_FLUSH | (argc == 6 ? OUTFILE_DROP : 0), pipes[i][1]);
        }
        close(pipes[i][1]);
    }
    long total = 0;
    double max_elapsed = 0, rate = 0;
    double *all = malloc(sizeof(double) * 1000000 * (size_t)np);
    for (int i = 0; i < np; i++) {
        long jobs = 0;
        double elapsed = 0;
        if (read(pipes[i][0], &jobs, sizeof(jobs)) != sizeof(jobs) ||
            read(pipes[i][0], &elapsed, sizeof(elapsed)) != sizeof(elapsed))
            return 1;
        size_t want = sizeof(double) * (size_t)jobs, got = 0;
        while (got < want) {
            ssize_t r = read(pipes[i][0], (char *)(all + total) + got, want - got);
            if (r <= 0)
                return 1;
            got += (size_t)r;
        }
        total += jobs;
        rate += jobs / elapsed;
        if (elapsed > max_elapsed)
            max_elapsed = elapsed;
        wait(NULL);
    }
    qsort(all, (size_t)total, sizeof(double), bench_cmp_double);
    printf("jobs %ld  seconds %.2f  jobs/s %.1f  p50_ms %.2f  p99_ms %.2f\n", total, max_elapsed,
           rate, all[total / 2] * 1000, all[(long)(total * 0.99)] * 1000);
    return 0;
}
