/* sfinfo FILE...: decode each audio file with libsndfile and print
 * "rate frames channels rms_per_50ms,..." so the integration tests can check
 * what the daemon wrote without a Python audio library. */
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        SF_INFO info = {0};
        SNDFILE *sf = sf_open(argv[i], SFM_READ, &info);
        if (!sf) {
            printf("error %s\n", sf_strerror(NULL));
            rc = 1;
            continue;
        }
        printf("%d %lld %d ", info.samplerate, (long long)info.frames, info.channels);
        int win = info.samplerate / 20;
        float *buf = malloc(sizeof(float) * (size_t)win * (size_t)info.channels);
        sf_count_t n;
        int first = 1;
        while ((n = sf_readf_float(sf, buf, win)) > 0) {
            double sum = 0;
            for (sf_count_t k = 0; k < n * info.channels; k++)
                sum += (double)buf[k] * buf[k];
            printf("%s%.5f", first ? "" : ",", sqrt(sum / (double)(n * info.channels)));
            first = 0;
        }
        printf("\n");
        free(buf);
        sf_close(sf);
    }
    return rc;
}
