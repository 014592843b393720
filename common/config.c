#include "config.h"
#include "netpolicy.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(f) offsetof(struct config, f)

static const char *const engines[] = {"espeak", "http", NULL};
static const char *const formats[] = {"wav", "flac", "ogg", "opus", "mp3", NULL};
static const char *const queue_types[] = {"classic", "quorum", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const captions_kinds[] = {"none", "vtt", "srt", "both", NULL};
static const char *const page_cache_modes[] = {"drop", "keep", NULL};

/* Every key of the file. Order is the order of the example file and the man page. */
static const struct config_key keys[] = {
    {"master", "control", CT_ADDR, OFF(control), "127.0.0.1:8765", 0, 0, NULL, 0,
     "control socket: host:port or unix:/path"},
    {"master", "control_token", CT_STRING, OFF(control_token), "", 0, 0, NULL, 1,
     "when set, POST requests need Authorization: Bearer <token>"},
    {"master", "pidfile", CT_STRING, OFF(pidfile), "/run/c2a-worker.pid", 0, 0, NULL, 0,
     "pid file of the master; empty for none"},
    {"master", "log_file", CT_STRING, OFF(log_file), "-", 0, 0, NULL, 0,
     "- (stderr), a file path, or syslog"},
    {"master", "log_level", CT_LOGLEVEL, OFF(log_level), "info", 0, 0, NULL, 0,
     "debug, info, warn or error"},
    {"master", "log_format", CT_ENUM, OFF(log_format), "text", 0, 0, log_formats, 0,
     "text, or json: one JSON object a line"},
    {"master", "job_log", CT_BOOL, OFF(job_log), "yes", 0, 0, NULL, 0,
     "one info line per finished job: id, queue, status, chars, audio and elapsed ms, attempt"},
    {"master", "user", CT_USER, OFF(user), "", 0, 0, NULL, 0,
     "workers run as this user (the master must start as root)"},
    {"master", "group", CT_GROUP, OFF(group), "", 0, 0, NULL, 0,
     "workers run with this group (default: the user's group)"},

    {"workers", "count", CT_INT, OFF(count), "2", 1, CONFIG_MAX_WORKERS, NULL, 0,
     "number of worker processes"},
    {"workers", "timeout", CT_INT, OFF(timeout), "30", 1, 86400, NULL, 0,
     "seconds without a heartbeat before a worker is killed and replaced"},
    {"workers", "graceful_timeout", CT_INT, OFF(graceful_timeout), "30", 0, 86400, NULL, 0,
     "seconds a stopping worker may take to finish before it is killed"},
    {"workers", "job_timeout", CT_INT, OFF(job_timeout), "300", 1, 86400, NULL, 0,
     "seconds one job may run before its worker is killed"},
    {"workers", "slow_job", CT_INT, OFF(slow_job), "0", 0, 86400, NULL, 0,
     "warn once about a job still running after this many seconds; 0 = never"},
    {"workers", "max_jobs", CT_INT, OFF(max_jobs), "0", 0, INT_MAX, NULL, 0,
     "recycle a worker after this many jobs; 0 = never"},
    {"workers", "max_jobs_jitter", CT_INT, OFF(max_jobs_jitter), "0", 0, INT_MAX, NULL, 0,
     "add up to this many jobs at random to max_jobs, per worker"},
    {"workers", "max_rss", CT_INT, OFF(max_rss), "0", 0, 1048576, NULL, 0,
     "recycle a worker after a job when it and its engine use more MB than this; 0 = never"},
    {"workers", "app", CT_APP, OFF(app), "builtin:speech", 0, 0, NULL, 0,
     "job handler: builtin:speech, builtin:noop or /path/lib.so:symbol"},

    {"broker", "url", CT_URL, OFF(urls), "amqp://guest:guest@127.0.0.1:5672/%2f", 0, 0, NULL, 0,
     "AMQP URL; repeat the key for a failover list"},
    {"broker", "queues", CT_QUEUES, OFF(queues_raw), "c2a.jobs", 0, 0, NULL, 0,
     "comma-separated queues to consume"},
    {"broker", "prefetch", CT_INT, OFF(prefetch), "1", 1, 65535, NULL, 0,
     "unacknowledged deliveries per worker"},
    {"broker", "heartbeat", CT_INT, OFF(heartbeat), "30", 0, 3600, NULL, 0,
     "AMQP heartbeat in seconds; 0 = off"},
    {"broker", "max_attempts", CT_INT, OFF(max_attempts), "5", 1, 1000, NULL, 0,
     "attempts before a job is dead-lettered"},
    {"broker", "results_exchange", CT_EXCHANGE, OFF(results_exchange), "", 0, 0, NULL, 0,
     "also publish every result to this topic exchange; empty for none"},
    {"broker", "queue_type", CT_ENUM, OFF(queue_type), "classic", 0, 0, queue_types, 0,
     "classic or quorum: the type of the work, delay and dead-letter queues"},
    {"broker", "max_priority", CT_INT, OFF(max_priority), "0", 0, 255, NULL, 0,
     "declare the work queues with this x-max-priority; 0 = no priorities"},
    {"broker", "tls_ca", CT_FILE, OFF(tls_ca), "", 0, 0, NULL, 0,
     "amqps://: CA certificates (PEM) to verify the broker; empty = the system's"},
    {"broker", "tls_cert", CT_FILE, OFF(tls_cert), "", 0, 0, NULL, 0,
     "amqps://: client certificate (PEM), for brokers that ask for one"},
    {"broker", "tls_key", CT_FILE, OFF(tls_key), "", 0, 0, NULL, 0,
     "amqps://: the client certificate's private key (PEM)"},
    {"broker", "tls_verify", CT_BOOL, OFF(tls_verify), "yes", 0, 0, NULL, 0,
     "amqps://: verify the broker's certificate and host name"},

    {"speech", "engine", CT_ENUM, OFF(engine), "espeak", 0, 0, engines, 0, "espeak or http"},
    {"speech", "voice", CT_STRING, OFF(voice), "en-us", 0, 0, NULL, 0, "default voice"},
    {"speech", "format", CT_ENUM, OFF(format), "wav", 0, 0, formats, 0,
     "default format: wav, flac, ogg, opus or mp3"},
    {"speech", "sample_rate", CT_INT, OFF(sample_rate), "0", 0, 192000, NULL, 0,
     "default sample rate in Hz; 0 = the engine's own rate"},
    {"speech", "max_chars", CT_INT, OFF(max_chars), "100000", 1, 10000000, NULL, 0,
     "longest text a job may carry, in characters"},
    {"speech", "max_duration", CT_INT, OFF(max_duration), "3600", 1, 86400, NULL, 0,
     "longest audio a job may produce, in seconds"},
    {"speech", "allow_mbrola", CT_BOOL, OFF(allow_mbrola), "no", 0, 0, NULL, 0,
     "accept mbrola voices (mb/...): espeak-ng then runs the external mbrola program"},
    {"speech", "http_url", CT_HTTPURL, OFF(http_url), "", 0, 0, NULL, 0,
     "engine = http: base URL; POST {http_url}/audio/speech"},
    {"speech", "http_token", CT_STRING, OFF(http_token), "", 0, 0, NULL, 1,
     "engine = http: bearer token"},
    {"speech", "http_model", CT_STRING, OFF(http_model), "tts-1", 0, 0, NULL, 0,
     "engine = http: the model field of each request"},
    {"speech", "http_voice", CT_STRING, OFF(http_voice), "alloy", 0, 0, NULL, 0,
     "engine = http: the voice when a job names none"},
    {"speech", "http_max_chars", CT_INT, OFF(http_max_chars), "4096", 16, 1000000, NULL, 0,
     "engine = http: longest input per request; longer text is split at sentences"},
    {"speech", "http_timeout", CT_INT, OFF(http_timeout), "120", 1, 3600, NULL, 0,
     "engine = http: seconds one request may take"},
    {"speech", "http_concurrency", CT_INT, OFF(http_concurrency), "4", 1, 64, NULL, 0,
     "engine = http: requests in flight at once for one job's pieces"},

    {"fetch", "timeout", CT_INT, OFF(fetch_timeout), "10", 1, 3600, NULL, 0,
     "seconds a content fetch may take"},
    {"fetch", "max_bytes", CT_INT, OFF(fetch_max_bytes), "10485760", 1, 1073741824, NULL, 0,
     "largest content a fetch may return"},
    {"fetch", "connect_timeout", CT_INT, OFF(connect_timeout), "5", 1, 600, NULL, 0,
     "seconds to connect, for fetches, uploads and callbacks"},
    {"fetch", "upload_timeout", CT_INT, OFF(upload_timeout), "120", 1, 86400, NULL, 0,
     "seconds an upload or a callback may take"},
    {"fetch", "allow_private", CT_NETS, OFF(allow_private), "no", 0, 0, NULL, 0,
     "private addresses allowed: no, yes or a comma list of ranges (10.1.0.0/16)"},
    {"fetch", "user_agent", CT_STRING, OFF(user_agent), "c2a-worker/" C2A_VERSION, 0, 0, NULL,
     0, "User-Agent of fetches, uploads and callbacks"},

    {"output", "dir", CT_PATH, OFF(output_dir), "/var/lib/c2a-worker/audio", 0, 0, NULL, 0,
     "directory the audio files are written to"},
    {"output", "fsync", CT_BOOL, OFF(output_fsync), "yes", 0, 0, NULL, 0,
     "flush each file and its directory entry to disk before its result is published"},
    {"output", "page_cache", CT_ENUM, OFF(page_cache), "drop", 0, 0, page_cache_modes, 0,
     "drop (a flushed file not read again leaves the page cache) or keep"},
    {"output", "keep_uploaded", CT_BOOL, OFF(keep_uploaded), "yes", 0, 0, NULL, 0,
     "keep the local file of a job whose audio was uploaded (job field keep_file)"},
    {"output", "captions", CT_ENUM, OFF(captions), "none", 0, 0, captions_kinds, 0,
     "captions files beside the audio: none, vtt, srt or both (job field captions)"},
    {"output", "cache", CT_BOOL, OFF(cache), "no", 0, 0, NULL, 0,
     "reuse the output of an identical earlier job (job field cache)"},
    {"output", "cache_max_mb", CT_INT, OFF(cache_max_mb), "1024", 1, 1048576, NULL, 0,
     "size of the cache in MB; the least recently used entries go first"},
    {"output", "loudness", CT_INT, OFF(loudness), "0", -70, 0, NULL, 0,
     "integrated loudness of every file in LUFS (e.g. -16); 0 = as synthesized (job field)"},
    {"output", "true_peak", CT_INT, OFF(true_peak), "-1", -9, 0, NULL, 0,
     "true-peak ceiling in dBTP of levelled files (job field true_peak)"},
    {"output", "progress", CT_BOOL, OFF(progress), "no", 0, 0, NULL, 0,
     "progress messages to reply_to while a job is spoken (job field progress)"},
    {"output", "metadata_artist", CT_STRING, OFF(metadata_artist), "", 0, 0, NULL, 0,
     "artist tag of every file whose job names none; empty for none"},
    {"output", "metadata_album", CT_STRING, OFF(metadata_album), "", 0, 0, NULL, 0,
     "album tag of every file whose job names none; empty for none"},
    {"output", "metadata_comment", CT_STRING, OFF(metadata_comment), "", 0, 0, NULL, 0,
     "comment tag of every file whose job names none; empty for none"},
    {"output", "metadata_language", CT_LANG, OFF(metadata_language), "", 0, 0, NULL, 0,
     "language tag (en, en-US) of every file whose job names none; empty for none"},
};

#define NKEYS ARRAY_LEN(keys)

size_t config_key_count(void)
{
    return NKEYS;
}

const struct config_key *config_key_at(size_t i)
{
    return i < NKEYS ? &keys[i] : NULL;
}

static char **str_field(struct config *cfg, const struct config_key *k)
{
    return (char **)((char *)cfg + k->offset);
}

static int *int_field(struct config *cfg, const struct config_key *k)
{
    return (int *)((char *)cfg + k->offset);
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

int config_parse_addr(const char *s, struct control_addr *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        if (p[0] != '/') {
            *why = "unix socket path must be absolute";
            return -1;
        }
        if (strlen(p) >= sizeof(out->path)) {
            *why = "unix socket path too long";
            return -1;
        }
        out->is_unix = 1;
        strcpy(out->path, p);
        return 0;
    }
    const char *colon;
    size_t hostlen;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') {
            *why = "expected [ipv6]:port";
            return -1;
        }
        hostlen = (size_t)(end - s - 1);
        colon = end + 1;
        if (hostlen == 0 || hostlen >= sizeof(out->host)) {
            *why = "bad host";
            return -1;
        }
        memcpy(out->host, s + 1, hostlen);
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "expected host:port or unix:/path";
            return -1;
        }
        hostlen = (size_t)(colon - s);
        if (hostlen == 0 || hostlen >= sizeof(out->host)) {
            *why = "missing host";
            return -1;
        }
        memcpy(out->host, s, hostlen);
        for (size_t i = 0; i < hostlen; i++) {
            unsigned char c = (unsigned char)out->host[i];
            if (!isalnum(c) && c != '.' && c != '-' && c != '_') {
                *why = "bad character in host";
                return -1;
            }
        }
    }
    const char *port = colon + 1;
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno || p < 1 || p > 65535) {
        *why = "port must be 1..65535";
        return -1;
    }
    snprintf(out->port, sizeof(out->port), "%ld", p);
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int valid_queue_name(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > 255 || strncmp(q, "amq.", 4) == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)q[i];
        if (!isalnum(c) && !strchr("._-:", c))
            return 0;
    }
    return 1;
}

static int set_queues(struct config *cfg, const char *v, const char **why)
{
    char *copy = xstrdup(v), *rest = copy, *tok;
    int n = 0, rc = 0;
    char *names[CONFIG_MAX_QUEUES];
    while ((tok = strsep(&rest, ",")) != NULL) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!valid_queue_name(tok)) {
            *why = "queue names are 1..255 of [A-Za-z0-9._-:], not amq.*";
            rc = -1;
            break;
        }
        if (n == CONFIG_MAX_QUEUES) {
            *why = "at most 16 queues";
            rc = -1;
            break;
        }
        names[n++] = tok;
    }
    if (rc == 0 && n == 0) {
        *why = "at least one queue is needed";
        rc = -1;
    }
    if (rc == 0) {
        for (int i = 0; i < cfg->n_queues; i++)
            free(cfg->queues[i]);
        for (int i = 0; i < n; i++)
            cfg->queues[i] = xstrdup(names[i]);
        cfg->n_queues = n;
        set_str(&cfg->queues_raw, v);
    }
    free(copy);
    return rc;
}

/* amqp[s]://[user[:pass]@]host[:port][/vhost]: the form librabbitmq's
 * amqp_parse_url accepts, checked here so the master need not link it. */
static int check_amqp_url(const char *v, const char **why)
{
    *why = "not an AMQP URL (amqp://user:pass@host:port/vhost)";
    const char *p;
    if (strncmp(v, "amqp://", 7) == 0)
        p = v + 7;
    else if (strncmp(v, "amqps://", 8) == 0)
        p = v + 8;
    else
        return -1;
    const char *end = p + strcspn(p, "/");
    const char *at = memchr(p, '@', (size_t)(end - p));
    const char *host = at ? at + 1 : p;
    if (host == end || *host == ':')
        return -1;
    const char *colon;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (!rb || rb == host + 1)
            return -1;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end)
            return -1;
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
    }
    if (colon) {
        if (colon + 1 == end || end - (colon + 1) > 5)
            return -1;
        long port = 0;
        for (const char *q = colon + 1; q < end; q++) {
            if (!isdigit((unsigned char)*q))
                return -1;
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) {
            *why = "port must be 1..65535";
            return -1;
        }
    }
    for (const char *q = v; *q; q++)
        if ((unsigned char)*q <= ' ')
            return -1;
    return 0;
}

static int check_app(const char *v, const char **why)
{
    if (strcmp(v, "builtin:speech") == 0 || strcmp(v, "builtin:noop") == 0)
        return 0;
    if (strncmp(v, "builtin:", 8) == 0) {
        *why = "unknown builtin app (builtin:speech, builtin:noop)";
        return -1;
    }
    const char *colon = strrchr(v, ':');
    if (v[0] != '/' || !colon || colon == v + 1) {
        *why = "expected builtin:NAME or /absolute/path/lib.so:symbol";
        return -1;
    }
    const char *sym = colon + 1;
    if (!isalpha((unsigned char)*sym) && *sym != '_') {
        *why = "symbol must be a C identifier";
        return -1;
    }
    for (const char *p = sym; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') {
            *why = "symbol must be a C identifier";
            return -1;
        }
    return 0;
}

/* "expected a, b or c" */
static void enum_choices(const char *const *c, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "expected");
    for (int i = 0; c[i] && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i == 0 ? " " : c[i + 1] ? ", " : " or ",
                              c[i]);
}

/* Apply one value to one key. Returns 0, or -1 with *why set. `append` is set for
 * the second and later occurrences of a repeatable key. */
#define WHY_LEN 96

static int apply(struct config *cfg, const struct config_key *k, const char *v, int append,
                 const char **why, char *whybuf)
{
    switch (k->type) {
    case CT_STRING:
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_LANG:
        if (v[0] && !language_tag_ok(v)) {
            *why = "expected a language tag such as en or en-US";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_PATH:
        if (v[0] == '\0') {
            *why = "must not be empty";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || errno == ERANGE) {
            *why = "not an integer";
            return -1;
        }
        if (n < k->min || n > k->max) {
            snprintf(whybuf, WHY_LEN, "out of range (%ld..%ld)", k->min, k->max);
            *why = whybuf;
            return -1;
        }
        if (k->offset == OFF(sample_rate) && n != 0 && n < 8000) {
            *why = "must be 0 or 8000..192000";
            return -1;
        }
        *int_field(cfg, k) = (int)n;
        return 0;
    }
    case CT_BOOL:
        if (parse_bool(v, int_field(cfg, k)) < 0) {
            *why = "expected yes or no";
            return -1;
        }
        return 0;
    case CT_LOGLEVEL: {
        int lvl = log_level_parse(v);
        if (lvl < 0) {
            *why = "expected debug, info, warn or error";
            return -1;
        }
        *int_field(cfg, k) = lvl;
        return 0;
    }
    case CT_ENUM:
        for (const char *const *c = k->choices; *c; c++)
            if (strcmp(*c, v) == 0) {
                set_str(str_field(cfg, k), v);
                return 0;
            }
        enum_choices(k->choices, whybuf, WHY_LEN);
        *why = whybuf;
        return -1;
    case CT_ADDR: {
        struct control_addr a;
        if (config_parse_addr(v, &a, why) < 0)
            return -1;
        set_str(str_field(cfg, k), v);
        return 0;
    }
    case CT_URL:
        if (check_amqp_url(v, why) < 0)
            return -1;
        if (!append) {
            for (int i = 0; i < cfg->n_urls; i++)
                free(cfg->urls[i]);
            cfg->n_urls = 0;
        }
        if (cfg->n_urls == CONFIG_MAX_URLS) {
            *why = "at most 16 broker URLs";
            return -1;
        }
        cfg->urls[cfg->n_urls++] = xstrdup(v);
        return 0;
    case CT_QUEUES:
        return set_queues(cfg, v, why);
    case CT_APP:
        if (check_app(v, why) < 0)
            return -1;
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_USER:
        if (v[0] && !getpwnam(v)) {
            *why = "no such user";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_GROUP:
        if (v[0] && !getgrnam(v)) {
            *why = "no such group";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_EXCHANGE:
        if (v[0] && !valid_queue_name(v)) {
            *why = "exchange names are 1..255 of [A-Za-z0-9._-:], not amq.*";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_NETS: {
        struct netpolicy np;
        if (netpolicy_parse(v, &np, why) < 0)
            return -1;
        set_str(str_field(cfg, k), v);
        return 0;
    }
    case CT_FILE:
        /* Whether it can be read is checked once the whole file is parsed:
         * a relative path is relative to the file. */
        set_str(str_field(cfg, k), v);
        return 0;
    case CT_HTTPURL:
        if (v[0] && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            *why = "expected an http:// or https:// URL";
            return -1;
        }
        set_str(str_field(cfg, k), v);
        return 0;
    }
    *why = "internal: unknown key type";
    return -1;
}

static const struct config_key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int known_section(const char *s)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, s) == 0)
            return 1;
    return 0;
}

struct config *config_defaults(void)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        const char *why = NULL;
        char whybuf[WHY_LEN];
        if (apply(cfg, &keys[i], keys[i].def, 0, &why, whybuf) < 0)
            abort(); /* a default that fails its own check is a bug in the table */
    }
    return cfg;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &keys[i];
        if (k->type != CT_INT && k->type != CT_BOOL && k->type != CT_LOGLEVEL &&
            k->type != CT_URL)
            free(*str_field(cfg, k));
    }
    for (int i = 0; i < cfg->n_urls; i++)
        free(cfg->urls[i]);
    for (int i = 0; i < cfg->n_queues; i++)
        free(cfg->queues[i]);
    free(cfg->path);
    free(cfg);
}

static void report(config_report_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(config_report_fn fn, void *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (fn)
        fn(ctx, msg);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* A ';' or '#' that starts the value or follows whitespace starts a comment, so
 * URLs keep their '#' and ';' when they are part of a word. */
static void strip_inline_comment(char *v)
{
    for (char *p = v; *p; p++)
        if ((*p == ';' || *p == '#') && (p == v || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
}

#define MAX_LINE 4096

struct config *config_parse(const char *name, const char *text, size_t len,
                            config_report_fn fn, void *ctx)
{
    struct config *cfg = config_defaults();
    int errors = 0;
    int seen[NKEYS] = {0};
    char section[64] = "";
    int in_bad_section = 0;
    size_t pos = 0;
    int lineno = 0;

    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t linelen = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *raw = text + pos;
        pos += linelen + (nl ? 1 : 0);
        if (linelen >= MAX_LINE) {
            report(fn, ctx, "%s:%d: line too long (max %d bytes)", name, lineno, MAX_LINE - 1);
            errors++;
            continue;
        }
        if (memchr(raw, '\0', linelen)) {
            report(fn, ctx, "%s:%d: NUL byte in line", name, lineno);
            errors++;
            continue;
        }
        char buf[MAX_LINE];
        memcpy(buf, raw, linelen);
        buf[linelen] = '\0';
        char *line = trim(buf);
        if (lineno == 1 && (unsigned char)line[0] == 0xef && (unsigned char)line[1] == 0xbb &&
            (unsigned char)line[2] == 0xbf)
            line = trim(line + 3);
        if (line[0] == '\0' || line[0] == ';' || line[0] == '#')
            continue;

        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (!end) {
                report(fn, ctx, "%s:%d: missing ']' in section header", name, lineno);
                errors++;
                in_bad_section = 1;
                section[0] = '\0';
                continue;
            }
            *end = '\0';
            char *rest = trim(end + 1);
            char *sec = trim(line + 1);
            if (rest[0] && rest[0] != ';' && rest[0] != '#') {
                report(fn, ctx, "%s:%d: [%s]: text after section header", name, lineno, sec);
                errors++;
            }
            if (!known_section(sec)) {
                report(fn, ctx, "%s:%d: [%s]: unknown section", name, lineno, sec);
                errors++;
                in_bad_section = 1;
                section[0] = '\0';
                continue;
            }
            strlcpy_c2a(section, sec, sizeof(section));
            in_bad_section = 0;
            continue;
        }

        char *eq = strchr(line, '=');
        if (!eq) {
            report(fn, ctx, "%s:%d: expected 'key = value'", name, lineno);
            errors++;
            continue;
        }
        *eq = '\0';
        char *key = trim(line);
        char *val = eq + 1;
        strip_inline_comment(val);
        val = trim(val);
        if (!section[0]) {
            /* Keys under an unknown section were reported with the section. */
            if (!in_bad_section) {
                report(fn, ctx, "%s:%d: %s: key outside a section", name, lineno, key);
                errors++;
            }
            continue;
        }
        const struct config_key *k = find_key(section, key);
        if (!k) {
            report(fn, ctx, "%s:%d: %s: unknown key in [%s]", name, lineno, key, section);
            errors++;
            continue;
        }
        size_t idx = (size_t)(k - keys);
        if (seen[idx] && k->type != CT_URL) {
            report(fn, ctx, "%s:%d: %s: set twice (first at line %d)", name, lineno, key,
                   seen[idx]);
            errors++;
            continue;
        }
        const char *why = NULL;
        char whybuf[WHY_LEN];
        if (apply(cfg, k, val, seen[idx] != 0, &why, whybuf) < 0) {
            report(fn, ctx, "%s:%d: %s: %s", name, lineno, key, why);
            errors++;
        }
        if (!seen[idx])
            seen[idx] = lineno;
    }

    /* Checks that involve more than one key. */
    if (strcmp(cfg->engine, "http") == 0 && cfg->http_url[0] == '\0') {
        size_t e = (size_t)(find_key("speech", "engine") - keys);
        report(fn, ctx, "%s:%d: http_url: required when engine = http", name, seen[e]);
        errors++;
    }
    if (cfg->group[0] && !cfg->user[0]) {
        size_t g = (size_t)(find_key("master", "group") - keys);
        report(fn, ctx, "%s:%d: group: needs user to be set too", name, seen[g]);
        errors++;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        const char *set = cfg->tls_cert[0] ? "tls_cert" : "tls_key";
        size_t i = (size_t)(find_key("broker", set) - keys);
        report(fn, ctx, "%s:%d: %s: needs %s too", name, seen[i], set,
               cfg->tls_cert[0] ? "tls_key" : "tls_cert");
        errors++;
    }
    if (cfg->max_priority && strcmp(cfg->queue_type, "quorum") == 0) {
        size_t i = (size_t)(find_key("broker", "max_priority") - keys);
        report(fn, ctx,
               "%s:%d: max_priority: quorum queues take no x-max-priority (RabbitMQ 4 gives "
               "them two priorities of their own); use queue_type = classic for priorities",
               name, seen[i]);
        errors++;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const char *v = keys[i].type == CT_FILE ? *str_field(cfg, &keys[i]) : "";
        if (!v[0])
            continue;
        const char *slash = strrchr(name, '/');
        char *path = v[0] == '/' || !slash ? xstrdup(v)
                                           : xasprintf("%.*s/%s", (int)(slash - name), name, v);
        if (access(path, R_OK) < 0) {
            report(fn, ctx, "%s:%d: %s: cannot read %s: %s", name, seen[i], keys[i].name, path,
                   strerror(errno));
            errors++;
        }
        free(path);
    }

    if (errors) {
        config_free(cfg);
        return NULL;
    }
    cfg->path = xstrdup(name);
    return cfg;
}

/* Relative paths in the file are relative to the file's own directory, so that
 * a daemon that has changed to / still finds them after a reload. */
static void resolve_relative(char **field, const char *dir)
{
    const char *v = *field;
    if (!v[0] || v[0] == '/' || strcmp(v, "-") == 0 || strcmp(v, "syslog") == 0)
        return;
    char *abs = xasprintf("%s/%s", dir, v);
    free(*field);
    *field = abs;
}

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

char *config_default_path(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char *cand = xasprintf("%s/../conf/c2a-worker.conf", exe);
            if (access(cand, R_OK) == 0)
                return cand;
            free(cand);
        }
    }
    return xstrdup(SYSCONFDIR "/c2a-worker.conf");
}

#define MAX_FILE (1 << 20)

struct config *config_load(const char *path, config_report_fn fn, void *ctx)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        report(fn, ctx, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(MAX_FILE + 1);
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    struct config *cfg = NULL;
    if (err)
        report(fn, ctx, "%s: read error", path);
    else if (n > MAX_FILE)
        report(fn, ctx, "%s: larger than %d bytes", path, MAX_FILE);
    else
        cfg = config_parse(path, buf, n, fn, ctx);
    free(buf);
    if (cfg && path[0] == '/') {
        char *dir = xstrdup(path);
        *strrchr(dir, '/') = '\0';
        if (!dir[0])
            strcpy(dir, "/");
        resolve_relative(&cfg->pidfile, dir);
        resolve_relative(&cfg->log_file, dir);
        resolve_relative(&cfg->output_dir, dir);
        for (size_t i = 0; i < NKEYS; i++)
            if (keys[i].type == CT_FILE)
                resolve_relative(str_field(cfg, &keys[i]), dir);
        free(dir);
    }
    return cfg;
}

int config_set(struct config *cfg, const char *section, const char *name, const char *value,
               char *err, size_t errlen)
{
    const struct config_key *k = find_key(section, name);
    const char *why = "unknown key";
    char whybuf[WHY_LEN];
    if (k && apply(cfg, k, value, 0, &why, whybuf) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", name, why);
    return -1;
}

/* amqp://user:secret@host -> amqp://user:***@host, for display. */
char *config_mask_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = strrchr(url, '@');
    if (!scheme || !at)
        return xstrdup(url);
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    if (!colon)
        return xstrdup(url);
    return xasprintf("%.*s:***%s", (int)(colon - url), url, at);
}

char *config_value_string(const struct config *cfg, const struct config_key *k)
{
    struct config *c = (struct config *)cfg;
    switch (k->type) {
    case CT_INT:
        return xasprintf("%d", *int_field(c, k));
    case CT_BOOL:
        return xstrdup(*int_field(c, k) ? "yes" : "no");
    case CT_LOGLEVEL:
        return xstrdup(log_level_name((enum log_level) * int_field(c, k)));
    case CT_URL: {
        size_t cap = 1, n = 0;
        char *out = xstrdup("");
        for (int i = 0; i < cfg->n_urls; i++) {
            char *m = config_mask_url(cfg->urls[i]);
            size_t ml = strlen(m);
            cap = n + ml + 3;
            out = xrealloc(out, cap);
            n += (size_t)sprintf(out + n, "%s%s", i ? ", " : "", m);
            free(m);
        }
        return out;
    }
    default: {
        const char *s = *str_field(c, k);
        if (k->secret)
            return xstrdup(s[0] ? "(set)" : "");
        return xstrdup(s);
    }
    }
}
