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
} lg = {LK_STDERR, LL_INFO, STDERR_FILENO, "", "master", -1, -1};

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

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl < lg.level)
        return;
    int saved = errno;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (lg.kind == LK_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[lvl], "%s: %s", lg.role, msg);
        errno = saved;
        return;
    }
    char line[2300];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld [%d] %s %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), lg.role, level_names[lvl], msg);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    if (write(lg.fd, line, (size_t)n) < 0) {
        /* nowhere to report a failing log */
    }
    errno = saved;
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
