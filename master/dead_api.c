/*
 * The control API's dead letters, the HTTP face of `c2actl dead`:
 *
 *   GET  /dead/QUEUE[?limit=N]     the dead letters of a work queue (default 100)
 *   GET  /dead/QUEUE/ID            one whole: properties, headers, body
 *   POST /dead/QUEUE/requeue       {"ids": [...]} | {"code": C} | {"all": true}
 *   POST /dead/QUEUE/purge         {"code": C} | {}
 *
 * The master speaks only a handful of AMQP methods of its own (broker_probe.c)
 * and must never wait on the broker, so each request runs c2actl (--json, with
 * the master's configuration file) as a child whose standard output is a pipe
 * the loop reads; the reply goes out when the child closes it. c2actl holds
 * what it reads unacknowledged and confirms a requeued job before it acks its
 * dead letter, so a request cut short loses nothing. At most DEAD_HELPERS run
 * at once (503 beyond), each for at most DEAD_TIMEOUT_S (then killed: 504).
 * Only the configured work queues (or their .dead) are served.
 */
#include "../common/log.h"
#include "../common/util.h"
#include "master.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#define DEAD_HELPERS 2
#define DEAD_TIMEOUT_S 60
#define DEAD_MAX_OUTPUT (32 * 1024 * 1024)
#define DEAD_DEFAULT_LIMIT 100
#define DEAD_MAX_LIMIT 10000
#define DEAD_MAX_IDS_HTTP 256
#define DEAD_MAX_ARGS (16 + DEAD_MAX_IDS_HTTP * 2)

struct helper {
    pid_t pid; /* 0: a free entry */
    struct bufferevent *out;
    struct event *deadline;
    struct evhttp_request *req; /* NULL once its client has gone */
    struct evhttp_connection *evcon;
};

struct dead_api {
    struct master *m;
    struct helper helpers[DEAD_HELPERS];
};

struct dead_api *dead_api_new(struct master *m)
{
    struct dead_api *a = xcalloc(1, sizeof(*a));
    a->m = m;
    return a;
}

static void client_gone(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct helper *h = arg;
    h->req = NULL;
    h->evcon = NULL;
}

/* The request is answered or its client gone: forget it, and the child. */
static void helper_done(struct helper *h, int kill_it)
{
    if (h->evcon)
        evhttp_connection_set_closecb(h->evcon, NULL, NULL);
    if (kill_it)
        kill(h->pid, SIGKILL); /* reaped by children_reap(), which knows no such pid */
    if (h->out)
        bufferevent_free(h->out);
    if (h->deadline)
        event_free(h->deadline);
    memset(h, 0, sizeof(*h));
}

/* c2actl's answer: its JSON as it is, or its {"error"} with a status. */
static void answer(struct helper *h)
{
    struct evbuffer *in = bufferevent_get_input(h->out);
    size_t len = evbuffer_get_length(in);
    const char *text = (const char *)evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *doc = len ? json_loadb(text, len, 0, &jerr) : NULL;
    json_t *err = json_object_get(doc, "error");
    if (!doc) {
        control_reply_error(h->req, 502, "Bad Gateway", "helper_failed",
                            "c2actl gave no answer (see the master's log)");
    } else if (err) {
        const char *code = json_string_value(json_object_get(err, "code"));
        int status = 502;
        const char *reason = "Bad Gateway";
        if (code && strcmp(code, "usage") == 0)
            status = 400, reason = "Bad Request";
        else if (code && strcmp(code, "not_found") == 0)
            status = 404, reason = "Not Found";
        control_reply_json(h->req, status, reason, doc);
        return;
    } else {
        control_reply_json(h->req, HTTP_OK, "OK", doc);
        return;
    }
    json_decref(doc);
}

static void on_output(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct helper *h = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (h->req)
        answer(h);
    helper_done(h, 0);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct helper *h = arg;
    if (evbuffer_get_length(bufferevent_get_input(bev)) <= DEAD_MAX_OUTPUT)
        return;
    log_warn("control: dead letters: c2actl's answer passed %d MB; stopped", DEAD_MAX_OUTPUT >> 20);
    if (h->req)
        control_reply_error(h->req, 502, "Bad Gateway", "too_large", "the answer is too large");
    helper_done(h, 1);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct helper *h = arg;
    log_warn("control: dead letters: c2actl (pid %d) ran past %d s; killed", (int)h->pid,
             DEAD_TIMEOUT_S);
    if (h->req)
        control_reply_error(h->req, 504, "Gateway Timeout", "timeout",
                            "the broker did not answer in time");
    helper_done(h, 1);
}

/* c2actl beside the daemon (a build tree), or in ../bin (an installed one). */
static int find_ctl(const struct master *m, char *out, size_t len)
{
    const char *slash = strrchr(m->self_exe, '/');
    int dir = slash ? (int)(slash - m->self_exe) : 0;
    const char *tries[] = {"%.*s/c2actl", "%.*s/../bin/c2actl"};
    for (size_t i = 0; i < ARRAY_LEN(tries); i++) {
        snprintf(out, len, tries[i], dir, m->self_exe);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* Fork and exec c2actl with argv (after its path); the child's stdout is the
 * pipe returned in *rfd. */
static pid_t run_ctl(const char *path, char **argv, int *rfd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        close_range(3, ~0U, 0); /* nothing of the master's but its stdout */
        for (int s = 1; s < NSIG; s++)
            signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(path, argv);
        _exit(127);
    }
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        errno = e;
        return -1;
    }
    *rfd = p[0];
    return pid;
}

static int queue_known(const struct config *cfg, const char *q)
{
    size_t n = strlen(q);
    if (n > 5 && strcmp(q + n - 5, ".dead") == 0)
        n -= 5;
    for (int i = 0; i < cfg->n_queues; i++)
        if (strlen(cfg->queues[i]) == n && strncmp(cfg->queues[i], q, n) == 0)
            return 1;
    return 0;
}

static const char *query_get(struct evhttp_request *req, const char *key, struct evkeyvalq *q)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!qs || evhttp_parse_query_str(qs, q) < 0)
        return NULL;
    return evhttp_find_header(q, key);
}

/* The words after "dead" for c2actl, from the path and the body; NULL with a
 * 4xx sent. argv[] holds pointers into parts[] and body, which stay valid. */
static int build_args(struct evhttp_request *req, char **parts, int nparts, const char *limit,
                      json_t *body, const char **argv, int *argc)
{
    int n = *argc;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    int verb = nparts == 2 && (strcmp(parts[1], "requeue") == 0 || strcmp(parts[1], "purge") == 0);
    if (get && nparts == 1) {
        argv[n++] = "list";
        argv[n++] = parts[0];
        argv[n++] = "--limit";
        argv[n++] = limit;
    } else if (get && nparts == 2 && !verb && parts[1][0] != '-') {
        argv[n++] = "show";
        argv[n++] = parts[0];
        argv[n++] = parts[1];
    } else if (cmd == EVHTTP_REQ_POST && verb) {
        int requeue = parts[1][0] == 'r';
        argv[n++] = parts[1];
        argv[n++] = parts[0];
        json_t *ids = json_object_get(body, "ids"), *code = json_object_get(body, "code");
        int all = json_is_true(json_object_get(body, "all"));
        int picks = (json_array_size(ids) > 0) + (code != NULL) + all;
        if (!json_is_object(body) || (ids && !json_is_array(ids)) ||
            (code && !json_is_string(code)) || picks > 1 ||
            (requeue ? picks != 1 : ids != NULL || all)) {
            control_reply_error(req, 400, "Bad Request", "bad_request",
                                requeue ? "expected {\"ids\": [ID, ...]}, {\"code\": CODE} or "
                                          "{\"all\": true}"
                                        : "expected {} (all) or {\"code\": CODE}");
            return -1;
        }
        if (json_array_size(ids) > DEAD_MAX_IDS_HTTP) {
            control_reply_error(req, 400, "Bad Request", "bad_request", "at most 256 ids at once");
            return -1;
        }
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id)
        {
            if (!json_is_string(id) || !json_string_value(id)[0] ||
                json_string_value(id)[0] == '-') {
                control_reply_error(req, 400, "Bad Request", "bad_request",
                                    "ids are non-empty strings");
                return -1;
            }
            argv[n++] = "--id";
            argv[n++] = json_string_value(id);
        }
        if (code) {
            argv[n++] = "--code";
            argv[n++] = json_string_value(code);
        }
        if (all)
            argv[n++] = "--all";
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          verb ? "POST" : "GET, HEAD");
        control_reply_error(req, 405, "Method Not Allowed", "method_not_allowed",
                            "GET /dead/QUEUE, GET /dead/QUEUE/ID, POST /dead/QUEUE/requeue or "
                            "POST /dead/QUEUE/purge");
        return -1;
    }
    *argc = n;
    return 0;
}

void dead_api_handle(struct dead_api *a, struct evhttp_request *req, const char *rest)
{
    struct master *m = a->m;
    /* rest: QUEUE[/ID or /requeue or /purge], each part percent-decoded */
    char *parts[3] = {NULL, NULL, NULL};
    int nparts = 0;
    const char *p = rest;
    while (*p && nparts < 3) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *raw = xasprintf("%.*s", (int)len, p);
        parts[nparts++] = evhttp_uridecode(raw, 0, NULL);
        free(raw);
        p = e ? e + 1 : p + len;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    json_t *body = NULL;
    char limit[16];
    const char *argv[DEAD_MAX_ARGS];
    int argc = 0;
    char ctl[PATH_MAX];
    struct helper *h = NULL;

    if (nparts == 0 || nparts > 2 || *p || !parts[0] || !parts[0][0] ||
        (nparts == 2 && (!parts[1] || !parts[1][0]))) {
        control_reply_error(req, 404, "Not Found", "not_found", "no such path");
        goto out;
    }
    if (!queue_known(m->cfg, parts[0])) {
        control_reply_error(req, 404, "Not Found", "not_found", "not a work queue of this daemon");
        goto out;
    }
    const char *lim = query_get(req, "limit", &q);
    long n = lim ? strtol(lim, NULL, 10) : DEAD_DEFAULT_LIMIT;
    if (lim && (n < 1 || n > DEAD_MAX_LIMIT || strspn(lim, "0123456789") != strlen(lim))) {
        control_reply_error(req, 400, "Bad Request", "bad_request", "limit must be 1..10000");
        goto out;
    }
    snprintf(limit, sizeof(limit), "%ld", n);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        body =
            len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL) : json_object();
        if (!body) {
            control_reply_error(req, 400, "Bad Request", "bad_request", "the body is not JSON");
            goto out;
        }
    }
    if (find_ctl(m, ctl, sizeof(ctl)) < 0) {
        control_reply_error(req, 501, "Not Implemented", "no_c2actl",
                            "c2actl is not installed beside c2a-worker");
        goto out;
    }
    argv[argc++] = "c2actl";
    argv[argc++] = "--json";
    argv[argc++] = "-c";
    argv[argc++] = m->config_path;
    argv[argc++] = "dead";
    if (build_args(req, parts, nparts, limit, body, argv, &argc) < 0)
        goto out;
    argv[argc] = NULL;
    for (int i = 0; i < DEAD_HELPERS && !h; i++)
        if (!a->helpers[i].pid)
            h = &a->helpers[i];
    if (!h) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        control_reply_error(req, 503, "Service Unavailable", "busy",
                            "dead-letter requests already running; try again");
        goto out;
    }
    int fd;
    pid_t pid = run_ctl(ctl, (char **)argv, &fd);
    if (pid < 0) {
        log_error("control: dead letters: cannot run %s: %s", ctl, strerror(errno));
        control_reply_error(req, 500, "Internal Server Error", "internal", "cannot run c2actl");
        goto out;
    }
    evutil_make_socket_nonblocking(fd);
    h->pid = pid;
    h->req = req;
    h->evcon = evhttp_request_get_connection(req);
    h->out = bufferevent_socket_new(m->base, fd, BEV_OPT_CLOSE_ON_FREE);
    h->deadline = evtimer_new(m->base, on_deadline, h);
    if (!h->out || !h->deadline) {
        if (!h->out)
            close(fd);
        control_reply_error(req, 500, "Internal Server Error", "internal", "out of memory");
        helper_done(h, 1);
        goto out;
    }
    if (h->evcon)
        evhttp_connection_set_closecb(h->evcon, client_gone, h);
    bufferevent_setcb(h->out, on_read, NULL, on_output, h);
    bufferevent_enable(h->out, EV_READ);
    struct timeval tv = {DEAD_TIMEOUT_S, 0};
    evtimer_add(h->deadline, &tv);
    log_info("control: dead letters: %s %s (c2actl pid %d)", argv[5], parts[0], (int)pid);
out:
    evhttp_clear_headers(&q);
    json_decref(body);
    for (int i = 0; i < 3; i++)
        free(parts[i]);
}

void dead_api_free(struct dead_api *a)
{
    if (!a)
        return;
    for (int i = 0; i < DEAD_HELPERS; i++) {
        struct helper *h = &a->helpers[i];
        if (!h->pid)
            continue;
        if (h->req)
            control_reply_error(h->req, 503, "Service Unavailable", "stopping",
                                "the control socket is closing");
        helper_done(h, 1);
    }
    free(a);
}
