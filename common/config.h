/*
 * The configuration: one table (config.c) describes every key with its type,
 * default, bounds and documentation. The parser, `c2a-worker -t`, the defaults,
 * the /status summary and the tests that keep the man page and the example file
 * complete all read that table.
 *
 * A struct config is immutable once loaded; the master owns one per generation
 * and frees the old one after a successful reload.
 */
#ifndef C2A_CONFIG_H
#define C2A_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_WORKERS 256
#define CONFIG_MAX_URLS 16
#define CONFIG_MAX_QUEUES 16

struct config {
    /* [master] */
    char *control;
    char *control_token;
    char *pidfile;
    char *log_file;
    int log_level;
    char *log_format;   /* text or json */
    int job_log;
    char *user;
    char *group;
    /* [workers] */
    int count;
    int timeout;
    int graceful_timeout;
    int job_timeout;
    int slow_job; /* seconds; 0 = no warning */
    int max_jobs;
    int max_jobs_jitter;
    int max_rss;        /* MB, worker + engine child; 0 = no limit */
    char *app;
    /* [broker] */
    char *urls[CONFIG_MAX_URLS];
    int n_urls;
    char *queues_raw;
    char *queues[CONFIG_MAX_QUEUES];
    int n_queues;
    int prefetch;
    int heartbeat;
    int max_attempts;
    char *results_exchange;
    char *queue_type;   /* classic or quorum */
    int max_priority;   /* 0: no x-max-priority */
    char *tls_ca;       /* "" = the system's CA store */
    char *tls_cert;
    char *tls_key;
    int tls_verify;
    /* [speech] */
    char *engine;
    char *voice;
    char *format;
    int sample_rate;
    int max_chars;
    int max_duration;
    int allow_mbrola;
    char *http_url;
    char *http_token;
    char *http_model;
    char *http_voice;
    int http_max_chars;
    int http_timeout;
    int http_concurrency;
    /* [fetch] */
    int fetch_timeout;
    int connect_timeout;
    int upload_timeout;
    int fetch_max_bytes;
    char *allow_private; /* no, yes or CIDR ranges: common/netpolicy.h */
    char *user_agent;
    /* [output] */
    char *output_dir;
    int output_fsync;
    char *page_cache; /* drop or keep */
    int keep_uploaded;
    int progress;
    char *captions; /* none, vtt, srt or both */
    int loudness;   /* LUFS; 0 = off */
    int cache, cache_max_mb;
    int true_peak;  /* dBTP */
    char *metadata_artist, *metadata_album, *metadata_comment, *metadata_language; /* "" = none */

    char *path; /* the file this came from */
};

enum config_type { CT_STRING, CT_INT, CT_BOOL, CT_ENUM, CT_ADDR, CT_LOGLEVEL, CT_URL, CT_QUEUES,
                   CT_APP, CT_USER, CT_GROUP, CT_PATH, CT_HTTPURL, CT_EXCHANGE,
                   CT_NETS, CT_FILE, CT_LANG };

struct config_key {
    const char *section;
    const char *name;
    enum config_type type;
    size_t offset;
    const char *def;           /* default, as it would be written in the file */
    long min, max;             /* CT_INT bounds */
    const char *const *choices; /* CT_ENUM, NULL-terminated */
    int secret;                /* never shown in /status */
    const char *doc;           /* one line for the example file and -h */
};

/* Receives one complete "file:line: key: reason" message per problem. */
typedef void (*config_report_fn)(void *ctx, const char *msg);

/* The configuration file to read without -c: conf/c2a-worker.conf beside a
 * binary built in a checkout (build/<binary>), else SYSCONFDIR/c2a-worker.conf.
 * The caller frees it. */
char *config_default_path(void);

/* Parse the file at path. Every problem is reported (not just the first); NULL is
 * returned when there was any. */
struct config *config_load(const char *path, config_report_fn report, void *ctx);
/* Parse from a buffer; name is used in messages. For tests and -t. */
struct config *config_parse(const char *name, const char *text, size_t len,
                            config_report_fn report, void *ctx);
/* A configuration with every default, as if from an empty file. */
struct config *config_defaults(void);
void config_free(struct config *cfg);

/* Override a key from the command line (-w, -b); -1 with a message if invalid. */
int config_set(struct config *cfg, const char *section, const char *name, const char *value,
               char *err, size_t errlen);

size_t config_key_count(void);
const struct config_key *config_key_at(size_t i);
/* The value of a key as text (for /status and `-t -v`); the caller frees it. */
char *config_value_string(const struct config *cfg, const struct config_key *k);
/* amqp://user:secret@host -> amqp://user:***@host, for display; caller frees. */
char *config_mask_url(const char *url);

/* Split "host:port" / "[v6]:port" / "unix:/path"; 0 or -1 with a reason. */
struct control_addr {
    int is_unix;
    char host[256];
    char port[8];
    char path[108];
};
int config_parse_addr(const char *s, struct control_addr *out, const char **why);

#endif
