#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum log_kind { LK_STDERR, LK_FILE, LK_SYSLOG };

static struct {
    enum log_kind kind;
    enum log_level level;
    int fd;
    char path[4096];
    const char *role;
    int uid, gid;
    enum log_format format;
    int echo_errors; /* start-up: errors also on stderr when the log is elsewhere */
} lg = {LK_STDERR, LL_INFO, STDERR_FILENO, "", "master", -1, -1, LF_TEXT, 0};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *log_level_name(enum log_level lvl)
{
    return level_names[lvl];
}

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0 && lg.uid >= 0 && geteuid() == 0 && fchown(fd, (uid_t)lg.uid, (gid_t)lg.gid) < 0) {
        /* not fatal: the master still logs; workers may not reopen */
    }
    return fd;
}

static void close_current(void)
{
    if (lg.kind == LK_FILE && lg.fd >= 0)
        close(lg.fd);
    else if (lg.kind == LK_SYSLOG)
        closelog();
}

int log_open(const char *target, enum log_level level)
{
    if (strcmp(target, "-") == 0 || target[0] == '\0') {
        close_current();
        lg.kind = LK_STDERR;
        lg.fd = STDERR_FILENO;
        lg.path[0] = '\0';
    } else if (strcmp(target, "syslog") == 0) {
        close_current();
        openlog("c2a-worker", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        lg.kind = LK_SYSLOG;
        lg.fd = -1;
        lg.path[0] = '\0';
    } else {
        if (lg.kind == LK_FILE && strcmp(lg.path, target) == 0) {
            lg.level = level;
            return 0;
        }
        int fd = open_file(target);
        if (fd < 0)
            return -1;
        close_current();
        lg.kind = LK_FILE;
        lg.fd = fd;
        strlcpy_c2a(lg.path, target, sizeof(lg.path));
    }
    lg.level = level;
    return 0;
}

int log_reopen(void)
{
    if (lg.kind != LK_FILE)
        return 0;
    int fd = open_file(lg.path);
    if (fd < 0) {
        int e = errno;
        log_error("cannot reopen log file %s: %s", lg.path, strerror(e));
        errno = e;
        return -1;
    }
    close(lg.fd);
    lg.fd = fd;
    return 0;
}

void log_set_owner(int uid, int gid)
{
    lg.uid = uid;
    lg.gid = gid;
}

void log_set_role(const char *role)
{
    lg.role = role;
}

int log_format_parse(const char *s)
{
    return strcmp(s, "text") == 0 ? LF_TEXT : strcmp(s, "json") == 0 ? LF_JSON : -1;
}

void log_set_format(enum log_format f)
{
    lg.format = f;
}

void log_echo_errors(int on)
{
    lg.echo_errors = on;
}

int log_fd(void)
{
    return lg.kind == LK_FILE ? lg.fd : -1;
}

void log_syslog_detach(void)
{
    if (lg.kind == LK_SYSLOG)
        closelog();
}

void log_syslog_attach(void)
{
    if (lg.kind == LK_SYSLOG)
        openlog("c2a-worker", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_close(void)
{
    close_current();
    lg.kind = LK_STDERR;
    lg.fd = STDERR_FILENO;
}

/* ISO 8601 local time with milliseconds and the UTC offset. */
static size_t timestamp(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    long off = tm.tm_gmtoff / 60;
    int n = snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, off < 0 ? '-' : '+', labs(off) / 60,
                     labs(off) % 60);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* Appends to a fixed line; what does not fit is cut (a JSON line stays valid:
 * see json_str). */
struct line {
    char buf[4096];
    size_t len;
    size_t cap; /* room kept for the closing "}\n" of a JSON line */
};
/* The message gets at most this much of a line, so that a job's fields (ids
 * and queue names are short and plain) always fit after it. */
#define MSG_ROOM (sizeof(((struct line *)0)->buf) - 1024)

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct line *l, const char *fmt, ...)
{
    if (l->len >= l->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

/* The length of the UTF-8 sequence at s (n bytes left), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
                : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!need || need > n || (need == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* A JSON string of at most room bytes: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD; cut whole
 * (never inside an escape or a character). The line always has room for it:
 * MSG_ROOM and the small fields add up to less than its size. */
static void json_str(struct line *l, const char *s, size_t room)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    size_t end = l->len + room < l->cap ? l->len + room : l->cap;
    l->buf[l->len++] = '"';
    while (left) {
        char esc[8];
        const char *piece = esc;
        size_t n = 1, k = utf8_len(p, left);
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof(esc), "\\%c", *p);
        else if (*p < 0x20)
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
        else if (k == 0)
            snprintf(esc, sizeof(esc), "\\ufffd");
        else
            piece = (const char *)p, n = k;
        size_t plen = piece == esc ? strlen(esc) : n;
        if (l->len + plen + 1 > end)
            break;
        memcpy(l->buf + l->len, piece, plen);
        l->len += plen;
        p += n;
        left -= n;
    }
    l->buf[l->len++] = '"';
}

static void emit(enum log_level lvl, const struct log_job *j, const char *msg)
{
    if (lg.kind == LK_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        struct line l = {.cap = sizeof(l.buf)};
        put(&l, "%s: %s", lg.role, msg);
        if (j)
            put(&l, " id=%s queue=%s status=%s%s%s chars=%lld audio_ms=%lld elapsed_ms=%lld "
                    "attempt=%d",
                j->id, j->queue, j->status, j->code ? " code=" : "", j->code ? j->code : "",
                j->chars, j->audio_ms, j->elapsed_ms, j->attempt);
        syslog(prio[lvl], "%s", l.buf);
        return;
    }
    struct line l = {.cap = sizeof(l.buf) - 2};
    char ts[96];
    timestamp(ts, sizeof(ts));
    if (lg.format == LF_JSON) {
        put(&l, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"role\":", ts, level_names[lvl],
            (int)getpid());
        json_str(&l, lg.role, 64);
        put(&l, ",\"message\":");
        json_str(&l, msg, MSG_ROOM);
        if (j) {
            put(&l, ",\"id\":");
            json_str(&l, j->id, 512);
            put(&l, ",\"queue\":");
            json_str(&l, j->queue, 300);
            put(&l, ",\"status\":\"%s\"", j->status);
            if (j->code) {
                put(&l, ",\"code\":");
                json_str(&l, j->code, 64);
            }
            if (j->chars >= 0)
                put(&l, ",\"chars\":%lld", j->chars);
            put(&l, ",\"audio_ms\":%lld,\"elapsed_ms\":%lld,\"attempt\":%d", j->audio_ms,
                j->elapsed_ms, j->attempt);
        }
        l.buf[l.len++] = '}';
    } else {
        put(&l, "%s [%d] %s %s: %s", ts, (int)getpid(), lg.role, level_names[lvl], msg);
        if (j) {
            put(&l, " id=%s queue=%s status=%s", j->id, j->queue, j->status);
            if (j->code)
                put(&l, " code=%s", j->code);
            if (j->chars >= 0)
                put(&l, " chars=%lld", j->chars);
            put(&l, " audio_ms=%lld elapsed_ms=%lld attempt=%d", j->audio_ms, j->elapsed_ms,
                j->attempt);
        }
    }
    l.buf[l.len++] = '\n';
    if (write(lg.fd, l.buf, l.len) < 0) {
        /* nowhere to report a failing log */
    }
}

static void vlog(enum log_level lvl, const struct log_job *j, const char *fmt, va_list ap)
{
    int saved = errno;
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (lvl == LL_ERROR && lg.echo_errors && lg.kind != LK_STDERR)
        dprintf(STDERR_FILENO, "c2a-worker: %s\n", msg);
    if (lvl >= lg.level)
        emit(lvl, j, msg);
    errno = saved;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, NULL, fmt, ap);
    va_end(ap);
}

void log_job(enum log_level lvl, const struct log_job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, j, fmt, ap);
    va_end(ap);
}

void log_close_inherited_fds(int keep)
{
    int mine = log_fd();
    log_syslog_detach();
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            int fd = atoi(de->d_name);
            if (fd > STDERR_FILENO && fd != mine && fd != keep && fd != dirfd(d))
                close(fd);
        }
        closedir(d);
    }
    log_syslog_attach();
}
