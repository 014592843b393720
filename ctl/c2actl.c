/*
 * c2actl: the command-line client of c2a-worker.
 *   status                   the pool, from the control socket
 *   submit [...] [--wait]    publish a job to RabbitMQ, optionally wait for its result
 *   dead ...                 the dead letters of a queue (dead.c)
 * Addresses and the control token come from the daemon's configuration file
 * (-c), or -s / --url / --token. Exit status: 0 done (status: healthy), 1
 * failed (status: degraded), 2 bad usage, 3 no result in time (status: the
 * daemon is down). With --json every answer and every error is one JSON
 * document on standard output.
 */
#include "c2actl.h"
#include "../common/config.h"
#include "../common/util.h"
#include "../worker/amqp_open.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CH_RESULTS 1
#define CH_PUBLISH 2
#define CONFIRM_TIMEOUT_S 10

static void usage(FILE *out)
{
    fprintf(out,
            "usage: c2actl [-c FILE] [-s ADDR] [--token T] [--json] COMMAND\n"
            "       c2actl --version\n"
            "commands:\n"
            "  status                    show the master and its workers; exit 0 healthy,\n"
            "                            1 degraded, 3 down\n"
            "  pause | resume            stop / restart consuming\n"
            "  reload                    re-read the configuration (as SIGHUP)\n"
            "  stop                      graceful stop (as SIGTERM)\n"
            "  scale N                   run N workers\n"
            "  submit (--text T | --ssml S | --file F | --fetch URL) [--id ID] [--voice V]\n"
            "         [--format F] [--sample-rate HZ] [--marks] [--engine espeak|http]\n"
            "         [--upload-url URL] [--callback-url URL] [--queue Q] [--url AMQP_URL]\n"
            "         [--wait [--timeout S]]\n"
            "                            publish a job; with --wait print its result\n"
            "  dead list QUEUE [--limit N]          the dead letters of QUEUE\n"
            "  dead show QUEUE ID                   one of them, whole\n"
            "  dead requeue QUEUE (--id ID... | --code CODE | --all)\n"
            "                            back to QUEUE, attempts reset\n"
            "  dead purge QUEUE [--code CODE]       drop them\n");
}

/* Configuration errors (ctx: the options). */
static void report(void *ctx, const char *msg)
{
    fail(ctx, 2, "bad_config", "%s", msg);
}

int fail(const struct opts *o, int rc, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (o->json) {
        json_t *e = json_pack("{s:{s:s,s:s?}}", "error", "code", code, "message", msg);
        char *s = json_dumps(e, JSON_COMPACT);
        puts(s ? s : "{\"error\":{\"code\":\"internal\"}}");
        free(s);
        json_decref(e);
    } else {
        fprintf(stderr, "c2actl: %s\n", msg);
    }
    return rc;
}

long number(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return -1;
    return v;
}

static struct config *load_config(const struct opts *o)
{
    char *path = o->config ? xstrdup(o->config) : config_default_path();
    struct config *cfg;
    if (access(path, R_OK) == 0)
        cfg = config_load(path, report, (void *)o);
    else if (o->config) {
        fail(o, 2, "bad_config", "%s: cannot read: %s", path, strerror(errno));
        cfg = NULL;
    } else
        cfg = config_defaults();
    free(path);
    return cfg;
}

/* ---- status (HTTP on the control socket) ---- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    struct { char *buf; size_t len; } *b = arg;
    size_t add = size * n;
    if (b->len + add > (16u << 20))
        return 0;
    b->buf = xrealloc(b->buf, b->len + add + 1);
    memcpy(b->buf + b->len, p, add);
    b->len += add;
    b->buf[b->len] = '\0';
    return add;
}

/* GET (body NULL) or POST a request to the control socket, *code the HTTP
 * status (0: nothing answered). Returns the JSON answer of a 2xx, or NULL with
 * the reason reported. With any_status: the JSON answer whatever the status,
 * and nothing reported. */
static json_t *http_request(const struct opts *o, const char *addr, const char *path,
                            const char *body, long *code, int any_status)
{
    CURL *c = curl_easy_init();
    char url[512];
    if (strncmp(addr, "unix:", 5) == 0) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, addr + 5);
        snprintf(url, sizeof(url), "http://localhost%s", path);
    } else {
        snprintf(url, sizeof(url), "http://%s%s", addr, path);
    }
    struct { char *buf; size_t len; } b = {NULL, 0};
    struct curl_slist *h = NULL;
    char auth[600];
    if (o->token && o->token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        *code = 0;
        free(b.buf);
        if (!any_status)
            fail(o, 3, "daemon_down", "%s: %s (is c2a-worker running? %s%s%s)", addr,
                 curl_easy_strerror(rc),
                 o->server ? "-s names its control socket" : "its control socket is [master] "
                                                             "control in ",
                 o->server ? "" : o->config_read ? o->config_read : "the configuration",
                 o->server ? "" : "; -s names another");
        return NULL;
    }
    json_t *doc = b.buf ? json_loads(b.buf, 0, NULL) : NULL;
    free(b.buf);
    if (any_status)
        return doc;
    if (*code < 200 || *code > 299 || !doc) {
        json_t *e = doc ? json_object_get(json_object_get(doc, "error"), "message") : NULL;
        fail(o, 1, *code == 401 ? "unauthorized" : "http_error", "%s: HTTP %ld%s%s%s", addr,
                 *code, e ? ": " : "", e ? json_string_value(e) : "",
                 *code == 401 ? " (the token is control_token in the configuration, "
                                "--token or C2A_CONTROL_TOKEN)" : "");
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The exit status of `status`: /healthz's verdict (0 healthy, 1 degraded),
 * 3 when the daemon does not answer; reason gets /healthz's reason. */
static int health(const struct opts *o, const char *addr, char *reason, size_t len)
{
    long code;
    json_t *h = http_request(o, addr, "/healthz", NULL, &code, 1);
    const char *why = json_string_value(json_object_get(h, "reason"));
    snprintf(reason, len, "%s", why ? why : code == 0 ? "no answer" : "the health check failed");
    json_decref(h);
    return code == 200 ? 0 : code == 0 ? 3 : 1;
}

static int cmd_status(const struct opts *o, const struct config *cfg)
{
    const char *addr = o->server ? o->server : cfg->control;
    long code;
    json_t *st = http_request(o, addr, "/status", NULL, &code, 0);
    if (!st)
        return code ? 1 : 3;
    char reason[512];
    int rc = health(o, addr, reason, sizeof(reason));
    if (o->json) {
        json_object_set_new(st, "health", json_string(rc == 0 ? "healthy" : "degraded"));
        char *s = json_dumps(st, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(st);
        return rc;
    }
    json_t *t = json_object_get(st, "totals");
    printf("master %lld  %s  version %s  up %llds  workers %zu/%lld%s\n",
           json_integer_value(json_object_get(st, "pid")),
           json_string_value(json_object_get(st, "state")),
           json_string_value(json_object_get(st, "version")),
           json_integer_value(json_object_get(st, "uptime_s")),
           json_array_size(json_object_get(st, "workers")),
           json_integer_value(json_object_get(st, "workers_target")),
           json_is_true(json_object_get(st, "paused")) ? "  PAUSED" : "");
    printf("jobs ok %lld  failed %lld  retried %lld  dead %lld  restarts %lld  broker %s\n",
           json_integer_value(json_object_get(t, "jobs_ok")),
           json_integer_value(json_object_get(t, "jobs_failed")),
           json_integer_value(json_object_get(t, "jobs_retried")),
           json_integer_value(json_object_get(t, "jobs_dead")),
           json_integer_value(json_object_get(t, "worker_restarts")),
           json_is_true(json_object_get(json_object_get(st, "broker"), "connected"))
               ? "connected"
               : "DISCONNECTED");
    printf("%8s  %-9s %8s %8s %8s  %s\n", "PID", "STATE", "OK", "FAILED", "RSS_KB", "JOB");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(st, "workers"), i, w)
    {
        json_t *job = json_object_get(w, "current_job");
        printf("%8lld  %-9s %8lld %8lld %8lld  %s\n", json_integer_value(json_object_get(w, "pid")),
               json_string_value(json_object_get(w, "state")),
               json_integer_value(json_object_get(w, "jobs_ok")),
               json_integer_value(json_object_get(w, "jobs_failed")),
               json_integer_value(json_object_get(w, "rss_kb")),
               json_is_string(job) ? json_string_value(job) : "-");
    }
    json_t *broker = json_object_get(st, "broker");
    const char *why = json_string_value(json_object_get(broker, "probe_error"));
    printf("\n%10s %10s  %-11s %s\n", "MESSAGES", "CONSUMERS", "KIND", "QUEUE");
    json_t *q;
    json_array_foreach(json_object_get(st, "queues"), i, q)
    {
        json_t *msgs = json_object_get(q, "messages"), *cons = json_object_get(q, "consumers");
        char m[24] = "unknown", c[24] = "unknown";
        if (!json_is_true(json_object_get(q, "exists")))
            snprintf(m, sizeof(m), "missing");
        else if (json_is_integer(msgs)) {
            snprintf(m, sizeof(m), "%lld", (long long)json_integer_value(msgs));
            snprintf(c, sizeof(c), "%lld", (long long)json_integer_value(cons));
        }
        printf("%10s %10s  %-11s %s\n", m, c, json_string_value(json_object_get(q, "kind")),
               json_string_value(json_object_get(q, "name")));
    }
    if (why)
        printf("queue depths unknown: %s\n", why);
    if (rc == 0)
        printf("health: ok\n");
    else
        printf("health: DEGRADED: %s\n", reason);
    json_decref(st);
    return rc;
}

/* pause, resume, reload, stop, scale N: one POST each. */
static int cmd_post(const struct opts *o, const struct config *cfg, const char *path,
                    const char *body, const char *done)
{
    long code;
    json_t *r = http_request(o, o->server ? o->server : cfg->control, path, body, &code, 0);
    if (!r)
        return code ? 1 : 3;
    if (o->json) {
        char *s = json_dumps(r, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        puts(done);
    }
    json_decref(r);
    return 0;
}

/* ---- submit (AMQP) ---- */

static char *read_file(const struct opts *o, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fail(o, 1, "bad_file", "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 65536;
    char *buf = xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    if (f != stdin)
        fclose(f);
    return buf;
}

int amqp_failed(const struct opts *o, amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char buf[256];
    return fail(o, 1, "broker_error", "%s: %s", what, amqp_reply_text(r, buf, sizeof(buf)));
}

amqp_connection_state_t open_broker(const struct opts *o, const struct config *cfg)
{
    char name[300];
    snprintf(name, sizeof(name), "c2actl@%s:%d", amqp_host_name(), (int)getpid());
    struct amqp_open_opts oo = {name, 0, 5};
    int n = o->url ? 1 : cfg->n_urls;
    char why[AMQP_ERR_LEN + 512] = "no broker URL";
    for (int i = 0; i < n; i++) {
        const char *url = o->url ? o->url : cfg->urls[i];
        char err[AMQP_ERR_LEN];
        amqp_connection_state_t conn = amqp_open_url(cfg, url, &oo, err, sizeof(err));
        if (conn)
            return conn;
        char *masked = config_mask_url(url);
        snprintf(why, sizeof(why), "%s: %s", masked, err);
        free(masked);
        if (i + 1 < n && !o->json)
            fprintf(stderr, "c2actl: %s; trying the next broker\n", why);
    }
    fail(o, 1, "broker_unreachable", "%s", why);
    return NULL;
}

static void print_result(const struct opts *o, json_t *res)
{
    if (o->json) {
        char *s = json_dumps(res, JSON_COMPACT);
        puts(s);
        free(s);
        return;
    }
    const char *status = json_string_value(json_object_get(res, "status"));
    if (status && strcmp(status, "ok") == 0) {
        /* The file, or where it was uploaded when no local copy was kept. */
        const char *where = json_string_value(json_object_get(res, "path"));
        printf("%s\n", where ? where : json_string_value(json_object_get(res, "url")));
        fprintf(stderr, "c2actl: %s: ok, %s, %lld Hz, %.2f s, %lld bytes\n",
                json_string_value(json_object_get(res, "id")),
                json_string_value(json_object_get(res, "format")),
                json_integer_value(json_object_get(res, "sample_rate")),
                json_integer_value(json_object_get(res, "duration_ms")) / 1000.0,
                json_integer_value(json_object_get(res, "bytes")));
    } else {
        json_t *e = json_object_get(res, "error");
        fprintf(stderr, "c2actl: %s: %s: %s\n", json_string_value(json_object_get(res, "id")),
                json_string_value(json_object_get(e, "code")),
                json_string_value(json_object_get(e, "message")));
    }
}

/* After the publish: the broker's confirm (or its return of an unroutable job),
 * then with --wait the result. Returns the exit status. */
static int await(amqp_connection_state_t conn, const struct opts *o, const char *id,
                 const char *queue)
{
    int confirmed = 0, returned = 0;
    json_t *res = NULL;
    time_t deadline = time(NULL) + (o->wait ? o->timeout : CONFIRM_TIMEOUT_S);
    while (!confirmed || (o->wait && !res && !returned)) {
        time_t left = deadline - time(NULL);
        if (left <= 0) {
            if (!confirmed)
                return fail(o, 1, "not_confirmed", "%s: the broker did not confirm the job", id);
            return fail(o, 3, "no_result", "%s: no result within %d s (is a worker consuming %s?)",
                        id, o->timeout, queue);
        }
        struct timeval wait = {left, 0};
        amqp_frame_t f;
        amqp_maybe_release_buffers(conn);
        int st = amqp_simple_wait_frame_noblock(conn, &f, &wait);
        if (st == AMQP_STATUS_TIMEOUT)
            continue;
        if (st != AMQP_STATUS_OK) {
            return fail(o, 1, "broker_error", "%s: %s", id, amqp_error_string2(st));
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        amqp_method_number_t m = f.payload.method.id;
        if (m == AMQP_BASIC_ACK_METHOD) {
            confirmed = 1;
        } else if (m == AMQP_BASIC_NACK_METHOD) {
            return fail(o, 1, "refused", "%s: the broker refused the job (nack)", id);
        } else if (m == AMQP_BASIC_RETURN_METHOD || m == AMQP_BASIC_DELIVER_METHOD) {
            amqp_message_t msg;
            if (amqp_failed(o, amqp_read_message(conn, f.channel, &msg, 0), "reading a message"))
                return 1;
            const amqp_bytes_t *c = &msg.properties.correlation_id;
            if (m == AMQP_BASIC_RETURN_METHOD)
                returned = 1;
            else if (!res && c->len == strlen(id) && memcmp(c->bytes, id, c->len) == 0)
                res = json_loadb(msg.body.bytes, msg.body.len, 0, NULL);
            amqp_destroy_message(&msg);
        } else if (m == AMQP_CHANNEL_CLOSE_METHOD || m == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_channel_close_t *cl = f.payload.method.decoded; /* same leading fields */
            return fail(o, 1, "broker_error", "%s: closed by the broker: %u %.*s", id,
                        cl->reply_code, (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
        }
    }
    if (returned) {
        json_decref(res);
        return fail(o, 1, "unroutable", "%s: no queue named %s: the broker returned the job", id,
                    queue);
    }
    if (!o->wait) {
        json_t *sent = json_pack("{s:s,s:s}", "id", id, "queue", queue);
        char *text = sent && o->json ? json_dumps(sent, JSON_COMPACT) : NULL;
        printf("%s\n", text ? text : id);
        free(text);
        json_decref(sent);
        return 0;
    }
    print_result(o, res);
    const char *st = json_string_value(json_object_get(res, "status"));
    int rc = st && strcmp(st, "ok") == 0 ? 0 : 1;
    json_decref(res);
    return rc;
}

static int cmd_submit(const struct opts *o, const struct config *cfg)
{
    int sources = !!o->text + !!o->ssml + !!o->file + !!o->fetch;
    if (sources != 1) {
        return fail(o, 2, "usage", "submit needs exactly one of --text, --ssml, --file, --fetch");
    }
    char idbuf[64];
    const char *id = o->id;
    if (!id) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(idbuf, sizeof(idbuf), "c2actl-%lld-%d-%ld", (long long)ts.tv_sec, (int)getpid(),
                 ts.tv_nsec / 1000);
        id = idbuf;
    }
    char *content = o->file ? read_file(o, o->file) : NULL;
    if (o->file && !content)
        return 1;
    json_t *job = json_pack("{s:s}", "id", id);
    const char *key = o->ssml ? "ssml" : o->fetch ? "url" : "text";
    json_object_set_new(job, key,
                        json_string(o->ssml    ? o->ssml
                                    : o->fetch ? o->fetch
                                    : o->text  ? o->text
                                               : content));
    free(content);
    if (!json_object_get(job, key)) {
        json_decref(job);
        return fail(o, 2, "bad_text", "the text is not valid UTF-8");
    }
    if (o->voice)
        json_object_set_new(job, "voice", json_string(o->voice));
    if (o->format)
        json_object_set_new(job, "format", json_string(o->format));
    if (o->sample_rate)
        json_object_set_new(job, "sample_rate", json_integer(o->sample_rate));
    if (o->marks)
        json_object_set_new(job, "marks", json_true());
    const char *strings[][2] = {{"engine", o->engine},
                                {"upload_url", o->upload_url},
                                {"callback_url", o->callback_url}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (strings[i][1])
            json_object_set_new(job, strings[i][0], json_string(strings[i][1]));
    char *body = json_dumps(job, JSON_COMPACT);
    json_decref(job);

    const char *queue = o->queue ? o->queue : cfg->queues[0];
    int rc = 1;
    amqp_bytes_t reply_q = amqp_empty_bytes;
    amqp_connection_state_t conn = open_broker(o, cfg);
    if (!conn)
        goto out;
    /* Results come on channel 1, the job goes out on channel 2 in confirm mode:
     * a result may come before the confirm of a job a worker was quick with. */
    amqp_channel_open(conn, CH_RESULTS);
    if (amqp_failed(o, amqp_get_rpc_reply(conn), "channel.open"))
        goto out;
    amqp_channel_open(conn, CH_PUBLISH);
    if (amqp_failed(o, amqp_get_rpc_reply(conn), "channel.open"))
        goto out;
    amqp_confirm_select(conn, CH_PUBLISH);
    if (amqp_failed(o, amqp_get_rpc_reply(conn), "confirm.select"))
        goto out;
    if (o->wait) {
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(conn, CH_RESULTS, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
        if (amqp_failed(o, amqp_get_rpc_reply(conn), "declaring the reply queue"))
            goto out;
        reply_q = amqp_bytes_malloc_dup(ok->queue);
        amqp_basic_consume(conn, CH_RESULTS, reply_q, amqp_empty_bytes, 0, 1, 1,
                           amqp_empty_table);
        if (amqp_failed(o, amqp_get_rpc_reply(conn), "basic.consume"))
            goto out;
    }
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                   AMQP_BASIC_TIMESTAMP_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2;
    props.timestamp = (uint64_t)time(NULL); /* the queued stage of the metrics */
    props.message_id = amqp_cstring_bytes(id);
    props.correlation_id = amqp_cstring_bytes(id);
    if (o->wait) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = reply_q;
    }
    /* mandatory: a queue name nobody declared returns the job instead of
     * dropping it. */
    if (amqp_basic_publish(conn, CH_PUBLISH, amqp_empty_bytes, amqp_cstring_bytes(queue), 1, 0,
                           &props, amqp_cstring_bytes(body)) != AMQP_STATUS_OK) {
        fail(o, 1, "broker_error", "publish failed");
        goto out;
    }
    rc = await(conn, o, id, queue);
out:
    amqp_bytes_free(reply_q);
    if (conn) {
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn);
    }
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {.timeout = 60, .token = getenv("C2A_CONTROL_TOKEN")};
    const char *rate = NULL, *timeout = NULL, *limit = NULL;
    enum { O_TOKEN = 256, O_JSON, O_TEXT, O_SSML, O_FILE, O_ID, O_VOICE, O_FORMAT, O_RATE,
           O_WAIT, O_TIMEOUT, O_QUEUE, O_URL, O_MARKS, O_FETCH, O_ENGINE, O_UPLOAD, O_CALLBACK,
           O_CODE, O_ALL, O_LIMIT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, O_TOKEN}, {"json", no_argument, NULL, O_JSON},
        {"text", required_argument, NULL, O_TEXT}, {"ssml", required_argument, NULL, O_SSML},
        {"file", required_argument, NULL, O_FILE}, {"id", required_argument, NULL, O_ID},
        {"voice", required_argument, NULL, O_VOICE}, {"format", required_argument, NULL, O_FORMAT},
        {"sample-rate", required_argument, NULL, O_RATE}, {"wait", no_argument, NULL, O_WAIT},
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"queue", required_argument, NULL, O_QUEUE},
        {"url", required_argument, NULL, O_URL}, {"marks", no_argument, NULL, O_MARKS},
        {"fetch", required_argument, NULL, O_FETCH}, {"engine", required_argument, NULL, O_ENGINE},
        {"upload-url", required_argument, NULL, O_UPLOAD},
        {"callback-url", required_argument, NULL, O_CALLBACK},
        {"code", required_argument, NULL, O_CODE}, {"all", no_argument, NULL, O_ALL},
        {"limit", required_argument, NULL, O_LIMIT},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+c:s:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 's': o.server = optarg; break;
        case O_TOKEN: o.token = optarg; break;
        case O_JSON: o.json = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("c2actl %s\n", C2A_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    /* Command options and operands follow the command: a second getopt over
     * the rest (optind 0 starts it afresh; the command stands for argv[0]).
     * "-": operands come back in their place, as 1. */
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0;
    while ((c = getopt_long(sub_argc, sub_argv, "-c:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (strcmp(cmd, "scale") == 0 && !o.scale)
                o.scale = optarg;
            else if (strcmp(cmd, "dead") == 0 && o.nargs < 3)
                o.args[o.nargs++] = optarg;
            else
                return fail(&o, 2, "usage", "unexpected argument '%s'", optarg);
            break;
        case 'c': o.config = optarg; break;
        case 's': o.server = optarg; break;
        case O_TOKEN: o.token = optarg; break;
        case O_JSON: o.json = 1; break;
        case O_TEXT: o.text = optarg; break;
        case O_SSML: o.ssml = optarg; break;
        case O_FILE: o.file = optarg; break;
        case O_ID:
            o.id = optarg;
            if (o.nids == DEAD_MAX_IDS)
                return fail(&o, 2, "usage", "at most %d --id", DEAD_MAX_IDS);
            o.ids[o.nids++] = optarg;
            break;
        case O_CODE: o.code = optarg; break;
        case O_ALL: o.all = 1; break;
        case O_LIMIT: limit = optarg; break;
        case O_VOICE: o.voice = optarg; break;
        case O_FORMAT: o.format = optarg; break;
        case O_RATE: rate = optarg; break;
        case O_WAIT: o.wait = 1; break;
        case O_TIMEOUT: timeout = optarg; break;
        case O_QUEUE: o.queue = optarg; break;
        case O_URL: o.url = optarg; break;
        case O_MARKS: o.marks = 1; break;
        case O_FETCH: o.fetch = optarg; break;
        case O_ENGINE: o.engine = optarg; break;
        case O_UPLOAD: o.upload_url = optarg; break;
        case O_CALLBACK: o.callback_url = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    if (rate && (o.sample_rate = (int)number(rate, 1, 192000)) < 0)
        return fail(&o, 2, "usage", "--sample-rate: %s is not a rate in Hz (1..192000)", rate);
    if (limit && (o.limit = number(limit, 1, 1000000)) < 0)
        return fail(&o, 2, "usage", "--limit: %s is not a count (1..1000000)", limit);
    if (timeout && (o.timeout = (int)number(timeout, 1, 86400)) < 0)
        return fail(&o, 2, "usage", "--timeout: %s is not a number of seconds (1..86400)",
                    timeout);
    struct config *cfg = load_config(&o);
    if (!cfg)
        return 2;
    o.config_read = cfg->path;
    /* The token of the configuration we read, unless given. */
    if (!o.token && cfg->control_token[0])
        o.token = cfg->control_token;
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char body[64], done[64];
    if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&o, cfg);
    else if (strcmp(cmd, "pause") == 0)
        rc = cmd_post(&o, cfg, "/pause", "", "paused: workers stop consuming");
    else if (strcmp(cmd, "resume") == 0)
        rc = cmd_post(&o, cfg, "/resume", "", "resumed");
    else if (strcmp(cmd, "reload") == 0)
        rc = cmd_post(&o, cfg, "/reload", "", "reloaded");
    else if (strcmp(cmd, "stop") == 0)
        rc = cmd_post(&o, cfg, "/shutdown", "", "stopping gracefully");
    else if (strcmp(cmd, "scale") == 0) {
        char *end = NULL;
        long n = o.scale ? strtol(o.scale, &end, 10) : 0;
        if (!o.scale || *end || n < 1 || n > 256) {
            rc = fail(&o, 2, "usage", "scale needs a worker count, 1..256");
        } else {
            snprintf(body, sizeof(body), "{\"count\": %ld}", n);
            snprintf(done, sizeof(done), "scaling to %ld workers", n);
            rc = cmd_post(&o, cfg, "/workers", body, done);
        }
    }
    else if (strcmp(cmd, "submit") == 0)
        rc = cmd_submit(&o, cfg);
    else if (strcmp(cmd, "dead") == 0)
        rc = cmd_dead(&o, cfg);
    else {
        rc = fail(&o, 2, "usage", "unknown command '%s' (c2actl -h lists them)", cmd);
    }
    curl_global_cleanup();
    config_free(cfg);
    return rc;
}
