/*
 * inproc: the in-process limit for c2a-worker's speech jobs: espeak-ng synthesis
 * plus WAV encoding (the same encode_to_file() the workers use, atomic write
 * included), in a loop, one process per worker, no broker.
 *   inproc PROCESSES SECONDS TEXT_FILE OUTPUT_DIR
 * Prints jobs/s over all processes and p50/p99 of one job.
 */
#include "../worker/encode.h"

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

static void run(int idx, double seconds, const char *text, const char *dir, int fd)
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
    double start = bench_now();
    while (bench_now() - start < seconds && jobs < 1000000) {
        double t = bench_now();
        frames = 0;
        espeak_ng_SetParameter(espeakRATE, 175, 0);
        espeak_ng_Synthesize(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
                             espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
        struct pcm p = {buf, frames, rate};
        struct encoded e;
        char name[64], err[256];
        int permanent;
        snprintf(name, sizeof(name), "inproc-%d-%ld.wav", idx, jobs);
        if (encode_to_file(&p, "wav", rate, dir, name, &e, &permanent, err, sizeof(err)) < 0) {
            fprintf(stderr, "inproc: %s\n", err);
            exit(1);
        }
        unlink(e.path);
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
    if (argc != 5) {
        fprintf(stderr, "usage: inproc PROCESSES SECONDS TEXT_FILE OUTPUT_DIR\n");
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
            run(i, seconds, text, argv[4], pipes[i][1]);
        }
        close(pipes[i][1]);
    }
    long total = 0;
    double max_elapsed = 0;
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
        if (elapsed > max_elapsed)
            max_elapsed = elapsed;
        wait(NULL);
    }
    qsort(all, (size_t)total, sizeof(double), bench_cmp_double);
    printf("jobs %ld  seconds %.2f  jobs/s %.1f  p50_ms %.2f  p99_ms %.2f\n", total, max_elapsed,
           total / max_elapsed, all[total / 2] * 1000, all[(long)(total * 0.99)] * 1000);
    return 0;
}
