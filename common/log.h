/*
 * Logging for the master and the workers. One line per message, written with a
 * single write(2) to an O_APPEND descriptor so that lines from several processes
 * never interleave. The target is stderr ("-"), a file path, or "syslog".
 *
 * The state is per process: a worker inherits the master's open file at fork and
 * reopens it itself on USR1.
 */
#ifndef C2A_LOG_H
#define C2A_LOG_H

enum log_level { LL_DEBUG = 0, LL_INFO, LL_WARN, LL_ERROR };
/* text: "TIME [pid] role level: message"; json: one object a line with time,
 * level, pid, role, message and, for a job, its fields. Time is ISO 8601 with
 * milliseconds and the UTC offset. syslog gets the text message only. */
enum log_format { LF_TEXT = 0, LF_JSON };

/* The access-log line of a job (log_job). */
struct log_job {
    const char *id, *queue;
    const char *status; /* "ok", "retry" or "failed" */
    const char *code;   /* the error code; NULL when ok */
    long long chars;    /* characters of the text; -1 when not known (a url job) */
    long long audio_ms, elapsed_ms;
    int attempt;
};

/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lvl);

/* Switch to a new target and level. On failure the previous target stays and -1
 * is returned with errno set. */
int log_open(const char *target, enum log_level level);
/* Close and reopen the current file target (logrotate); no-op for stderr/syslog. */
int log_reopen(void);
/* Make log files owned by this uid (workers run unprivileged and reopen too). */
void log_set_owner(int uid, int gid);
/* "master" or "worker": printed in every line. */
void log_set_role(const char *role);
/* "text" or "json"; -1 if unknown. */
int log_format_parse(const char *s);
void log_set_format(enum log_format f);
/* While a process starts: every error is also written to stderr as
 * "c2a-worker: message" when the log goes elsewhere, so that a failed start
 * says why on the terminal (or to the service manager). */
void log_echo_errors(int on);
/* For a forked child that closes the descriptors it inherited: the one to keep
 * (the log file, or -1), and the syslog connection dropped before and made
 * again after, so that syslog never writes to a descriptor reused meanwhile. */
int log_fd(void);
void log_syslog_detach(void);
void log_syslog_attach(void);
/* In a forked child: close every inherited descriptor but stdio, the log and
 * keep (-1 for none). */
void log_close_inherited_fds(int keep);
/* Close the log in a process that will not log any more. */
void log_close(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A message with a job's fields (json: separate members; text: key=value). */
void log_job(enum log_level lvl, const struct log_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)

#endif
