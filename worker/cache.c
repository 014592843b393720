#include "cache.h"
#include "captions.h"
#include "job.h"
#include "outfile.h"
#include "synth.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_DIR ".c2a-cache"
#define STALE_TMP_S 3600

static void add_field(struct strbuf *b, const char *name, const char *value)
{
    /* name=length:value, so no value can pass for another */
    char head[96];
    int n = snprintf(head, sizeof(head), "%s=%zu:", name, strlen(value ? value : ""));
    strbuf_add(b, head, (size_t)n);
    if (value)
        strbuf_add(b, value, strlen(value));
    strbuf_add(b, "\n", 1);
}

void cache_key(const struct synth_work *w, const char *voice, int out_rate, const char *text,
               size_t len, struct cache_key *k)
{
    const struct job *j = w->job;
    struct strbuf b = {0};
    char num[160];
    add_field(&b, "c2a-cache", "1");
    add_field(&b, "voice", voice);
    snprintf(num, sizeof(num), "%d %d %d %d %lld %lld %d %d", j->rate, j->pitch, j->volume,
             out_rate, (long long)(j->loudness * 1000), (long long)(j->true_peak * 1000),
             j->captions, j->marks);
    add_field(&b, "params", num);
    add_field(&b, "format", j->format);
    for (int t = 0; t < JOB_TAGS; t++)
        add_field(&b, job_tag_names[t], j->tags[t]);
    snprintf(num, sizeof(num), "text=%zu:", len);
    strbuf_add(&b, num, strlen(num));
    strbuf_add(&b, text, len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(b.s, b.len, md, &mdlen, EVP_sha256(), NULL);
    free(b.s);
    for (unsigned i = 0; i < 32 && i < mdlen; i++)
        snprintf(k->hex + 2 * i, 3, "%02x", md[i]);
}

static void entry_path(char *out, size_t len, const char *dir, const struct cache_key *k,
                       const char *ext)
{
    snprintf(out, len, "%s/" CACHE_DIR "/%s.%s", dir, k->hex, ext);
}

/* The audio in the cache is <key>.<format> (the format is in the key). */
static const char *audio_ext(const struct synth_work *w, const char *audio_name)
{
    (void)audio_name;
    return w->job->format;
}

int cache_fetch(struct synth_work *w, const struct cache_key *k, const char *audio_name)
{
    char path[4096], tmp[4096];
    entry_path(path, sizeof(path), w->output_dir, k, audio_ext(w, audio_name));
    if (access(path, F_OK) < 0)
        return 0;
    char side[4096];
    entry_path(side, sizeof(side), w->output_dir, k, "json");
    json_t *meta = json_load_file(side, 0, NULL);
    if (!json_is_object(meta)) {
        json_decref(meta);
        return 0;
    }
    int taken = 0;
    for (int kind = CAPTIONS_VTT; kind <= CAPTIONS_SRT; kind <<= 1) {
        if (!(w->job->captions & kind))
            continue;
        char name[512], from[4096];
        captions_name(audio_name, kind, name, sizeof(name));
        outfile_tmp_path(tmp, sizeof(tmp), w->output_dir, w->tmp_tag, name);
        entry_path(from, sizeof(from), w->output_dir, k, kind == CAPTIONS_VTT ? "vtt" : "srt");
        unlink(tmp);
        if (link(from, tmp) < 0) {
            captions_remove_tmp(w->output_dir, w->tmp_tag, audio_name, taken);
            json_decref(meta);
            return 0; /* evicted meanwhile: a miss */
        }
        taken |= kind;
    }
    outfile_tmp_path(tmp, sizeof(tmp), w->output_dir, w->tmp_tag, audio_name);
    unlink(tmp);
    if (link(path, tmp) < 0) {
        captions_remove_tmp(w->output_dir, w->tmp_tag, audio_name, taken);
        json_decref(meta);
        return 0;
    }
    utimensat(AT_FDCWD, side, NULL, 0); /* recently used */
    w->enc.duration_ms = json_integer_value(json_object_get(meta, "duration_ms"));
    w->enc.sample_rate = (int)json_integer_value(json_object_get(meta, "sample_rate"));
    w->enc.channels = (int)json_integer_value(json_object_get(meta, "channels"));
    snprintf(w->enc.path, sizeof(w->enc.path), "%s/%s", w->output_dir, audio_name);
    json_t *marks = json_object_get(meta, "marks");
    if (w->job->marks && json_is_array(marks))
        w->marks_json = json_dumps(marks, JSON_COMPACT);
    json_t *lv = json_object_get(meta, "loudness_lufs");
    if (json_is_number(lv)) {
        w->levelled = 1;
        w->loudness_lufs = json_number_value(lv);
        w->true_peak_dbtp = json_number_value(json_object_get(meta, "true_peak_dbtp"));
    }
    w->captions_written = taken;
    w->cached = 1;
    w->ok = 1;
    json_decref(meta);
    return 1;
}

/* Link (or write) into the cache under a name of this process's, then rename
 * into place. */
static int put(const char *from, const char *to)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", to, (int)getpid());
    unlink(tmp);
    if (link(from, tmp) < 0)
        return -1;
    if (rename(tmp, to) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct entry {
    char hex[65];
    int64_t used; /* the .json's mtime, ns */
    long long bytes;
};

static int by_use(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return (x->used > y->used) - (x->used < y->used);
}

/* Least recently used entries out until the cache is under max_mb. */
static void evict(const char *dir, long long max_bytes)
{
    char cdir[4096];
    snprintf(cdir, sizeof(cdir), "%s/" CACHE_DIR, dir);
    DIR *d = opendir(cdir);
    if (!d)
        return;
    struct entry *ents = NULL;
    size_t n = 0, cap = 0;
    long long total = 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        const char *dot = strchr(e->d_name, '.');
        if (!dot || dot - e->d_name != 64)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (strstr(e->d_name, ".tmp")) {
            /* A writer's name between its link and its rename: one an hour
             * old was left by a process that died there (on any host). */
            if (now - st.st_mtime > STALE_TMP_S)
                unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        size_t i = 0;
        while (i < n && memcmp(ents[i].hex, e->d_name, 64) != 0)
            i++;
        if (i == n) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                ents = xrealloc(ents, cap * sizeof(*ents));
            }
            memset(&ents[n], 0, sizeof(ents[n]));
            memcpy(ents[n].hex, e->d_name, 64);
            n++;
        }
        ents[i].bytes += (long long)st.st_blocks * 512;
        if (strcmp(dot, ".json") == 0)
            ents[i].used = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        total += (long long)st.st_blocks * 512;
    }
    closedir(d);
    qsort(ents, n, sizeof(*ents), by_use);
    static const char *const exts[] = {"wav", "flac", "ogg", "opus", "mp3", "vtt", "srt", "json"};
    for (size_t i = 0; i < n && total > max_bytes; i++) {
        /* The audio first: a reader that still finds it finds the rest. */
        for (size_t x = 0; x < ARRAY_LEN(exts); x++) {
            char p[4300];
            snprintf(p, sizeof(p), "%s/%s.%s", cdir, ents[i].hex, exts[x]);
            unlink(p);
        }
        total -= ents[i].bytes;
    }
    free(ents);
}

void cache_store(const struct synth_work *w, const struct cache_key *k, const char *audio_name,
                 int max_mb)
{
    char cdir[4096], path[4096], tmp[4096];
    snprintf(cdir, sizeof(cdir), "%s/" CACHE_DIR, w->output_dir);
    if (mkdir(cdir, 0755) < 0 && errno != EEXIST)
        return;
    json_t *meta = json_pack("{s:i,s:I,s:i,s:i}", "v", 1, "duration_ms",
                             (json_int_t)w->enc.duration_ms, "sample_rate", w->enc.sample_rate,
                             "channels", w->enc.channels);
    if (w->marks_json)
        json_object_set_new(meta, "marks", json_loads(w->marks_json, 0, NULL));
    if (w->levelled) {
        json_object_set_new(meta, "loudness_lufs", json_real(w->loudness_lufs));
        json_object_set_new(meta, "true_peak_dbtp", json_real(w->true_peak_dbtp));
    }
    entry_path(path, sizeof(path), w->output_dir, k, "json");
    char side_tmp[4200];
    snprintf(side_tmp, sizeof(side_tmp), "%s.%d.tmp", path, (int)getpid());
    int ok = json_dump_file(meta, side_tmp, JSON_COMPACT) == 0 && rename(side_tmp, path) == 0;
    json_decref(meta);
    if (!ok) {
        unlink(side_tmp);
        return;
    }
    for (int kind = CAPTIONS_VTT; ok && kind <= CAPTIONS_SRT; kind <<= 1) {
        if (!(w->captions_written & kind))
            continue;
        char name[512];
        captions_name(audio_name, kind, name, sizeof(name));
        outfile_tmp_path(tmp, sizeof(tmp), w->output_dir, w->tmp_tag, name);
        entry_path(path, sizeof(path), w->output_dir, k, kind == CAPTIONS_VTT ? "vtt" : "srt");
        ok = put(tmp, path) == 0;
    }
    if (ok) {
        outfile_tmp_path(tmp, sizeof(tmp), w->output_dir, w->tmp_tag, audio_name);
        entry_path(path, sizeof(path), w->output_dir, k, audio_ext(w, audio_name));
        put(tmp, path);
    }
    evict(w->output_dir, (long long)max_mb * 1024 * 1024);
}
