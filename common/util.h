/*
 * Small helpers every module uses: allocation that cannot fail (running out of
 * memory is fatal, logged once here rather than checked at every call site) and
 * the two clocks.
 */
#ifndef C2A_UTIL_H
#define C2A_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define C2A_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on CLOCK_MONOTONIC: the same clock in every process of the host,
 * so the master can compare a worker's heartbeat with its own "now". */
int64_t now_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC, for measuring short durations. */
int64_t now_mono_us(void);
/* Milliseconds since the epoch (wall clock), for display only. */
int64_t now_real_ms(void);

/* Copy at most size-1 bytes and always terminate; returns strlen(src). */
size_t strlcpy_c2a(char *dst, const char *src, size_t size);

/* A language tag as files carry it (BCP 47's shape: en, en-US, zh-Hant-TW):
 * 1 to 35 (RFC 5646's longest) letters, digits and hyphens, a letter first. */
int language_tag_ok(const char *s);

/* Resident set size of a process in kB from /proc/<pid>/statm; 0 if unknown. */
uint64_t proc_rss_kb(int pid);

/* A growing string, NUL-terminated once anything was added; s is malloc'd. */
struct strbuf {
    char *s;
    size_t len, cap;
};
void strbuf_add(struct strbuf *b, const char *s, size_t n);
/* CPU time of a process in seconds from /proc/PID/stat, user + system, with
 * its reaped children's when children is set; 0 when it is gone. */
double proc_cpu_seconds(int pid, int children);

#endif
