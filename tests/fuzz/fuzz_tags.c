/*
 * libFuzzer target: language tags added to audio files (worker/tags.c).
 *
 * Input: byte 0 picks the format (its value mod 5: wav, flac, ogg, opus, mp3)
 * and the language (its value / 5, from the table below); the rest is the
 * file, in a memfd, on which tags_add_language() runs. Its promises are
 * checked, and a broken one aborts: a refusal comes with a reason and leaves
 * every byte as it was (a memfd cannot fail a write, so every refusal is one
 * found before writing); a success leaves *len the file's length, and a
 * second call with the same language succeeds and changes nothing (it
 * replaces the tag it finds with the same one).
 */
#include "../../worker/tags.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const formats[] = {"wav", "flac", "ogg", "opus", "mp3"};
static const char *const langs[] = {"en-US", "de", "x", "zh-Hant-TW",
                                    "abcdefghijklmnopqrstuvwxyz012345678"};

static void put(int fd, const uint8_t *p, size_t n)
{
    if (ftruncate(fd, 0) < 0)
        abort();
    for (size_t off = 0; off < n;) {
        ssize_t k = pwrite(fd, p + off, n - off, (off_t)off);
        if (k <= 0)
            abort();
        off += (size_t)k;
    }
}

/* The file's bytes (malloc'd), its length in *n. */
static uint8_t *get(int fd, size_t *n)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        abort();
    *n = (size_t)st.st_size;
    uint8_t *p = malloc(*n ? *n : 1);
    if (!p)
        abort();
    for (size_t off = 0; off < *n;) {
        ssize_t k = pread(fd, p + off, *n - off, (off_t)off);
        if (k <= 0)
            abort();
        off += (size_t)k;
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *format = formats[data[0] % 5];
    const char *lang = langs[data[0] / 5 % (sizeof(langs) / sizeof(langs[0]))];
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    int fd = memfd_create("fuzz_tags", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    put(fd, in, n);
    uint64_t len = n;
    char err[256];
    err[0] = '\0';
    int rc = tags_add_language(fd, &len, format, lang, err, sizeof(err));
    size_t got;
    uint8_t *file = get(fd, &got);
    if (rc != 0) {
        if (rc != -2 || !err[0] || got != n || len != n || memcmp(file, in, n) != 0)
            abort();
    } else {
        if (len != got)
            abort();
        uint64_t len2 = len;
        if (tags_add_language(fd, &len2, format, lang, err, sizeof(err)) != 0)
            abort();
        size_t got2;
        uint8_t *file2 = get(fd, &got2);
        if (len2 != len || got2 != got || memcmp(file2, file, got) != 0)
            abort();
        free(file2);
    }
    free(file);
    close(fd);
    return 0;
}
