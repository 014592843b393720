/* Encoding: every format at several rates decodes back to the expected rate and
 * duration; files appear atomically with the right size and hash. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sndfile.h>

#include "../../worker/encode.h"

static char dir[] = "/tmp/c2a-encode-XXXXXX";

static struct pcm sine(int rate, double seconds)
{
    struct pcm p = {.rate = rate, .frames = (size_t)(rate * seconds)};
    p.samples = malloc(p.frames * sizeof(int16_t));
    for (size_t i = 0; i < p.frames; i++)
        p.samples[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)i / rate));
    return p;
}

static void check(const char *format, int want_rate, int expect_rate)
{
    struct pcm p = sine(22050, 1.5);
    struct encoded e;
    char name[64], err[256];
    int permanent;
    int rate = encode_output_rate(format, want_rate, p.rate);
    assert_int_equal(rate, expect_rate);
    snprintf(name, sizeof(name), "t-%d%s", want_rate, encode_extension(format));
    if (encode_to_file(&p, format, rate, dir, name, OUTFILE_FLUSH, &e, &permanent, err,
                       sizeof(err)) != 0)
        fail_msg("%s at %d: %s", format, rate, err);
    assert_int_equal(e.sample_rate, expect_rate);
    assert_in_range(e.duration_ms, 1490, 1510); /* resampling may drop a few frames */
    struct stat st;
    assert_int_equal(stat(e.path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, e.bytes);
    assert_int_equal(strlen(e.sha256), 64);

    SF_INFO info = {0};
    SNDFILE *sf = sf_open(e.path, SFM_READ, &info);
    if (!sf)
        fail_msg("%s: cannot decode: %s", e.path, sf_strerror(NULL));
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.samplerate, expect_rate);
    double seconds = (double)info.frames / info.samplerate;
    if (fabs(seconds - 1.5) > 0.08)
        fail_msg("%s at %d: decoded %.3f s", format, rate, seconds);
    sf_close(sf);
    unlink(e.path);
    free(p.samples);
}

static void test_formats_and_rates(void **state)
{
    (void)state;
    const char *formats[] = {"wav", "flac", "ogg", "mp3"};
    for (size_t i = 0; i < 4; i++) {
        check(formats[i], 0, 22050);
        check(formats[i], 16000, 16000);
        check(formats[i], 44100, 44100);
    }
    check("opus", 0, 24000);
    check("opus", 16000, 16000);
    check("opus", 44100, 48000);
}

static void touch(const char *base, long pid, const char *tail)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/" OUTFILE_TMP_DIR "/%ld.%s", base, pid, tail);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static int exists(const char *base, long pid, const char *tail)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/" OUTFILE_TMP_DIR "/%ld.%s", base, pid, tail);
    return access(path, F_OK) == 0;
}

/* A temp file whose writer is gone is removed; a living writer's stays, and so
 * does what is not ours. */
static void test_clean_stale(void **state)
{
    (void)state;
    char base[] = "/tmp/c2a-stale-XXXXXX";
    assert_non_null(mkdtemp(base));
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s/" OUTFILE_TMP_DIR, base);
    assert_int_equal(mkdir(tmp, 0700), 0);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    touch(base, dead, "wav");
    touch(base, getpid(), "ogg");
    char other[600];
    snprintf(other, sizeof(other), "%s/notes.txt", tmp);
    fclose(fopen(other, "w"));
    outfile_clean_stale(base);
    assert_false(exists(base, dead, "wav"));
    assert_true(exists(base, getpid(), "ogg"));
    assert_int_equal(access(other, F_OK), 0);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    assert_int_equal(system(cmd), 0);
}

static void test_refused_rate_is_permanent(void **state)
{
    (void)state;
    struct pcm p = sine(22050, 0.2);
    struct encoded e;
    char err[256];
    int permanent;
    assert_int_equal(encode_to_file(&p, "mp3", 96000, dir, "x.mp3", OUTFILE_FLUSH, &e, &permanent,
                                    err, sizeof(err)),
                     -1);
    assert_true(permanent);
    assert_non_null(strstr(err, "mp3"));
    assert_int_equal(access("x.mp3", F_OK), -1);
    /* A directory that does not exist is not the job's fault. */
    assert_int_equal(encode_to_file(&p, "wav", 22050, "/nonexistent-dir", "x.wav", OUTFILE_FLUSH,
                                    &e, &permanent, err, sizeof(err)),
                     -1);
    assert_false(permanent);
    free(p.samples);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_and_rates),
        cmocka_unit_test(test_refused_rate_is_permanent),
        cmocka_unit_test(test_clean_stale),
    };
    int rc = cmocka_run_group_tests_name("encode", tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
