/*
 * Queue depths for the control socket, asked of the broker by the master.
 *
 * A minimal AMQP 0-9-1 client on a bufferevent: protocol header, start/start-ok
 * (PLAIN), tune/tune-ok (no heartbeats: the probe talks every two seconds and
 * drops a broker that does not answer), open, channel.open, then one passive
 * queue.declare per queue per round, one at a time. A passive declare of a queue
 * that does not exist closes the channel (404); the probe notes the queue as
 * missing, acknowledges the close and reopens the channel.
 *
 * Once per connection (and after a reload), a queue the broker has is also
 * declared as the workers declare it: durable, with their arguments
 * (x-queue-type, x-max-priority). A queue made elsewhere with other arguments
 * refuses that with 406 PRECONDITION_FAILED, which makes every worker fail its
 * topology and retry forever; the probe keeps the broker's words for /status
 * and /healthz, which would otherwise only say that no worker is connected.
 *
 * amqps:// goes through a relay process (tls_relay.h): the probe reads its
 * first line, then speaks AMQP on the socketpair exactly as on a socket.
 *
 * Everything runs on the master's loop and nothing waits: a slow or dead broker
 * costs the master one timer callback every PROBE_INTERVAL_MS.
 */
#include "broker_probe.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/topology.h"
#include "../common/util.h"
#include "tls_spawn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 5000
#define MAX_FRAME (1 << 20)
#define FRAME_METHOD 1
#define FRAME_END 0xCE
#define CHANNEL 1

/* P_RELAYING: waiting for the TLS relay's first line; P_CHECKING: a queue's
 * declare with the workers' arguments is out. */
enum probe_state { P_DOWN, P_RELAYING, P_CONNECTING, P_READY, P_ASKING, P_CHECKING, P_REOPENING };

struct amqp_target {
    char host[256];
    int port;
    int tls;
    char user[256], pass[256], vhost[256];
};

/* What the connection and the argument check depend on besides the URLs and
 * the queues; copied from the configuration, which a reload frees. */
struct probe_settings {
    char *tls_ca, *tls_cert, *tls_key;
    int tls_verify;
    int quorum;
    int max_priority;
};

struct broker_probe {
    struct event_base *base;
    struct evdns_base *dns;
    struct event *tick;
    struct bufferevent *bev;
    pid_t relay_pid; /* the amqps:// relay behind bev, until let go or reaped */
    enum probe_state state;
    int64_t step_started_mono_ms;

    char **urls;
    int n_urls;
    int url_index;           /* the URL in use or tried last */
    struct amqp_target target; /* that URL, parsed */
    char *url_masked;
    int ever_connected;
    char error[TLS_RELAY_LINE_MAX];
    char queue_error[600]; /* "queue NAME: the broker's words", or "" */
    struct probe_settings set;

    struct probe_queue *queues;
    int n_queues;
    int asking;              /* index of the queue whose declare-ok is awaited */
};

/* Frames we send are small; a fixed buffer with an overflow flag keeps the
 * builders free of error checks. */
struct wbuf {
    uint8_t b[2048];
    size_t n;
    int overflow;
};

static void put(struct wbuf *w, const void *p, size_t len)
{
    if (w->n + len > sizeof(w->b)) {
        w->overflow = 1;
        return;
    }
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void put_shortstr(struct wbuf *w, const char *s)
{
    size_t len = strlen(s);
    if (len > 255) {
        w->overflow = 1;
        return;
    }
    put_u8(w, (uint8_t)len);
    put(w, s, len);
}

static void put_longstr(struct wbuf *w, const void *s, size_t len)
{
    put_u32(w, (uint32_t)len);
    put(w, s, len);
}

/* A field-table entry of type 'S' (long string). */
static void put_table_str(struct wbuf *w, const char *key, const char *val)
{
    put_shortstr(w, key);
    put_u8(w, 'S');
    put_longstr(w, val, strlen(val));
}

/* A field-table entry of type 'I' (signed 32-bit), as librabbitmq sends an int. */
static void put_table_int(struct wbuf *w, const char *key, int32_t val)
{
    put_shortstr(w, key);
    put_u8(w, 'I');
    put_u32(w, (uint32_t)val);
}

static void probe_drop(struct broker_probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Wrap the method arguments in w into a frame on channel ch and queue it. */
static void send_method(struct broker_probe *p, uint16_t ch, uint16_t cls, uint16_t meth,
                        const struct wbuf *args)
{
    struct wbuf f = {.n = 0};
    put_u8(&f, FRAME_METHOD);
    put_u16(&f, ch);
    put_u32(&f, (uint32_t)(4 + (args ? args->n : 0)));
    put_u16(&f, cls);
    put_u16(&f, meth);
    if (args)
        put(&f, args->b, args->n);
    put_u8(&f, FRAME_END);
    if (f.overflow || (args && args->overflow)) {
        probe_drop(p, "an AMQP frame for %u.%u does not fit (credentials too long?)", cls, meth);
        return;
    }
    bufferevent_write(p->bev, f.b, f.n);
}

/* Reading: a cursor over one frame's payload; every getter fails past the end. */
struct rbuf {
    const uint8_t *p;
    size_t left;
};

static int get_u16(struct rbuf *r, uint16_t *v)
{
    if (r->left < 2)
        return -1;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return 0;
}

static int get_u32(struct rbuf *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int get_shortstr(struct rbuf *r, char *out, size_t outlen)
{
    if (r->left < 1 || r->left < 1u + r->p[0])
        return -1;
    size_t len = r->p[0];
    snprintf(out, outlen, "%.*s", (int)len, (const char *)r->p + 1);
    r->p += 1 + len;
    r->left -= 1 + len;
    return 0;
}

/* ---- URL ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s+len) into out; -1 on a bad escape, a NUL or no room. */
static int pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* amqp[s]://[user[:pass]@]host[:port][/vhost], librabbitmq's defaults (guest,
 * guest, port 5672 or 5671, vhost "/"). The config parser already checked the
 * shape. */
static int parse_target(const char *url, struct amqp_target *t, const char **why)
{
    *why = "not an AMQP URL";
    memset(t, 0, sizeof(*t));
    if (strncmp(url, "amqps://", 8) == 0)
        t->tls = 1;
    else if (strncmp(url, "amqp://", 7) != 0)
        return -1;
    const char *p = url + 7 + t->tls;
    const char *end = p + strcspn(p, "/");
    const char *at = memchr(p, '@', (size_t)(end - p));
    strcpy(t->user, "guest");
    strcpy(t->pass, "guest");
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (pct_decode(p, (size_t)(uend - p), t->user, sizeof(t->user)) < 0)
            return -1;
        if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), t->pass, sizeof(t->pass)) < 0)
            return -1;
        p = at + 1;
    }
    const char *hend, *port = NULL;
    if (*p == '[') {
        p++;
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend)
            return -1;
        if (hend + 1 < end && hend[1] == ':')
            port = hend + 2;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (hend)
            port = hend + 1;
        else
            hend = end;
    }
    if (hend == p || (size_t)(hend - p) >= sizeof(t->host))
        return -1;
    memcpy(t->host, p, (size_t)(hend - p));
    t->port = t->tls ? 5671 : 5672;
    if (port) {
        t->port = 0;
        for (const char *q = port; q < end; q++)
            t->port = t->port * 10 + (*q - '0');
    }
    if (*end == '\0')
        strcpy(t->vhost, "/");
    else if (pct_decode(end + 1, strlen(end + 1), t->vhost, sizeof(t->vhost)) < 0)
        return -1;
    return 0;
}

/* ---- connection ---- */

/* probe_error() while connected: the first queue the broker would not declare
 * with the workers' arguments. */
static void update_queue_error(struct broker_probe *p)
{
    p->queue_error[0] = '\0';
    for (int i = 0; i < p->n_queues; i++) {
        const struct probe_queue *q = &p->queues[i];
        if (q->mismatch[0]) {
            snprintf(p->queue_error, sizeof(p->queue_error), "queue %s: %s", q->name, q->mismatch);
            return;
        }
    }
}

static void forget_figures(struct broker_probe *p)
{
    for (int i = 0; i < p->n_queues; i++) {
        struct probe_queue *q = &p->queues[i];
        q->messages = q->consumers = -1;
        q->exists = 1;
        q->updated_mono_ms = 0;
        /* The next connection checks the arguments afresh. */
        q->checked = 0;
        q->mismatch[0] = '\0';
    }
    update_queue_error(p);
}

/* Done with the relay: killed, or left to leave by itself, which it does at
 * once after saying why it failed, and within a second of the socket's EOF
 * while relaying (after passing on what it was given: a goodbye). Either way
 * the probe forgets it here and never signals it again, so no kill can reach a
 * process that got the number later; the master reaps it as a stranger. */
static void let_relay_go(struct broker_probe *p, int kill_it)
{
    if (p->relay_pid && kill_it)
        kill(p->relay_pid, SIGKILL); /* not reaped yet: still ours */
    p->relay_pid = 0;
}

/* The connection is the bufferevent and, for amqps://, the relay behind it. */
static void close_conn(struct broker_probe *p, int kill_relay)
{
    if (p->bev) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    let_relay_go(p, kill_relay);
}

static void probe_drop(struct broker_probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof(p->error), fmt, ap);
    va_end(ap);
    if (probe_connected(p))
        log_warn("queue probe: lost %s: %s", p->url_masked, p->error);
    else
        log_debug("queue probe: %s: %s", p->url_masked, p->error);
    close_conn(p, 1);
    p->state = P_DOWN;
    forget_figures(p);
    /* The next URL of a failover list gets the next try. */
    if (p->n_urls)
        p->url_index = (p->url_index + 1) % p->n_urls;
}

static void ask_next(struct broker_probe *p)
{
    if (p->asking >= p->n_queues) {
        p->state = P_READY;
        return;
    }
    struct wbuf a = {.n = 0};
    put_u16(&a, 0);                        /* reserved */
    put_shortstr(&a, p->queues[p->asking].name);
    put_u8(&a, 1);                         /* passive */
    put_u32(&a, 0);                        /* no arguments */
    p->state = P_ASKING;
    send_method(p, CHANNEL, 50, 10, &a);
}

/* Declare q as a worker does (worker/amqp.c), so that the broker compares the
 * arguments: durable, not exclusive, not auto-delete; x-queue-type on every
 * queue of a quorum topology, x-max-priority on work queues. Only for a queue
 * that exists: made here, it would be made before any worker wants it. */
static void send_check(struct broker_probe *p, const struct probe_queue *q)
{
    struct wbuf a = {.n = 0}, args = {.n = 0};
    if (p->set.quorum)
        put_table_str(&args, "x-queue-type", "quorum");
    if (p->set.max_priority && !q->dead)
        put_table_int(&args, "x-max-priority", p->set.max_priority);
    put_u16(&a, 0); /* reserved */
    put_shortstr(&a, q->name);
    put_u8(&a, 0x02); /* durable; not passive, exclusive, auto-delete or no-wait */
    put_u32(&a, (uint32_t)args.n);
    put(&a, args.b, args.n);
    a.overflow |= args.overflow;
    p->state = P_CHECKING;
    send_method(p, CHANNEL, 50, 10, &a);
}

static void note_check_passed(struct broker_probe *p, struct probe_queue *q)
{
    q->checked = 1;
    if (!q->mismatch[0])
        return;
    log_info("queue probe: queue %s has the workers' arguments now", q->name);
    q->mismatch[0] = '\0';
    update_queue_error(p);
}

/* Checked once per connection or reload, so each refusal is logged once. */
static void note_check_refused(struct broker_probe *p, struct probe_queue *q, unsigned code,
                               const char *text)
{
    q->checked = 1;
    if (code != 406) {
        /* Not other arguments (no configure permission, say): worth a line,
         * not a verdict on the queue. */
        log_warn("queue probe: cannot declare queue %s as the workers do: %u %s", q->name, code,
                 text);
        return;
    }
    snprintf(q->mismatch, sizeof(q->mismatch), "%s", text[0] ? text : "PRECONDITION_FAILED");
    update_queue_error(p);
    log_warn("queue probe: queue %s exists with other arguments than the workers': %s", q->name,
             q->mismatch);
}

static void start_round(struct broker_probe *p)
{
    p->asking = 0;
    p->step_started_mono_ms = now_mono_ms();
    ask_next(p);
}

static void send_start_ok(struct broker_probe *p, const struct amqp_target *t)
{
    struct wbuf a = {.n = 0}, props = {.n = 0};
    /* c2a-worker@host:master beside the workers' c2a-worker@host:pid (see
     * c2a-worker.conf(5)), so that the broker's connection list tells hosts
     * and processes apart. */
    char host[256] = "", name[300];
    if (gethostname(host, sizeof(host) - 1) < 0)
        strcpy(host, "unknown");
    snprintf(name, sizeof(name), "c2a-worker@%s:master", host);
    put_table_str(&props, "product", "c2a-worker");
    put_table_str(&props, "version", C2A_VERSION);
    put_table_str(&props, "connection_name", name);
    /* Without this capability RabbitMQ answers bad credentials by closing the
     * socket, and the operator would see "connection reset" instead of why. */
    struct wbuf caps = {.n = 0};
    put_shortstr(&caps, "authentication_failure_close");
    put_u8(&caps, 't');
    put_u8(&caps, 1);
    put_shortstr(&props, "capabilities");
    put_u8(&props, 'F');
    put_u32(&props, (uint32_t)caps.n);
    put(&props, caps.b, caps.n);
    put_u32(&a, (uint32_t)props.n);
    put(&a, props.b, props.n);
    put_shortstr(&a, "PLAIN");
    char resp[520];
    size_t ul = strlen(t->user), pl = strlen(t->pass);
    resp[0] = '\0';
    memcpy(resp + 1, t->user, ul);
    resp[1 + ul] = '\0';
    memcpy(resp + 2 + ul, t->pass, pl);
    put_longstr(&a, resp, 2 + ul + pl);
    put_shortstr(&a, "en_US");
    a.overflow |= props.overflow;
    send_method(p, 0, 10, 11, &a);
}

static void send_channel_open(struct broker_probe *p)
{
    struct wbuf a = {.n = 0};
    put_shortstr(&a, "");
    send_method(p, CHANNEL, 20, 10, &a);
}

static int on_declare_ok(struct broker_probe *p, struct rbuf *r)
{
    char name[256];
    uint32_t msgs, cons;
    if (get_shortstr(r, name, sizeof(name)) < 0 || get_u32(r, &msgs) < 0 ||
        get_u32(r, &cons) < 0) {
        probe_drop(p, "a short queue.declare-ok");
        return -1;
    }
    struct probe_queue *q = &p->queues[p->asking];
    q->exists = 1;
    q->messages = msgs;
    q->consumers = cons;
    q->updated_mono_ms = now_mono_ms();
    if (p->state == P_CHECKING) {
        note_check_passed(p, q);
    } else if (!q->checked && !q->retry) {
        send_check(p, q);
        return 0;
    }
    p->asking++;
    ask_next(p);
    return 0;
}

static void on_channel_close(struct broker_probe *p, struct rbuf *r)
{
    uint16_t code = 0;
    char text[256] = "";
    get_u16(r, &code);
    get_shortstr(r, text, sizeof(text));
    send_method(p, CHANNEL, 20, 41, NULL);
    if (p->state == P_ASKING && code == 404) {
        struct probe_queue *q = &p->queues[p->asking++];
        q->exists = 0;
        q->messages = q->consumers = 0;
        q->updated_mono_ms = now_mono_ms();
        /* Whoever makes it again may make it otherwise. */
        q->checked = 0;
        if (q->mismatch[0]) {
            q->mismatch[0] = '\0';
            update_queue_error(p);
        }
    } else if (p->state == P_CHECKING) {
        note_check_refused(p, &p->queues[p->asking++], code, text);
    } else {
        log_warn("queue probe: channel closed by the broker: %u %s", code, text);
        p->asking++;
    }
    p->state = P_REOPENING;
    send_channel_open(p);
}

/* One method frame from the broker. Returns -1 when the connection was dropped. */
static int on_method(struct broker_probe *p, uint16_t ch, struct rbuf *r)
{
    uint16_t cls, meth;
    if (get_u16(r, &cls) < 0 || get_u16(r, &meth) < 0) {
        probe_drop(p, "a short method frame");
        return -1;
    }
    if (cls == 10 && meth == 10) { /* connection.start */
        send_start_ok(p, &p->target);
    } else if (cls == 10 && meth == 30) { /* connection.tune */
        uint16_t chmax, hb;
        uint32_t fmax;
        if (get_u16(r, &chmax) < 0 || get_u32(r, &fmax) < 0 || get_u16(r, &hb) < 0) {
            probe_drop(p, "a short connection.tune");
            return -1;
        }
        struct wbuf a = {.n = 0};
        put_u16(&a, 1);
        put_u32(&a, fmax && fmax < 131072 ? fmax : 131072);
        put_u16(&a, 0); /* no heartbeats: see the top of the file */
        send_method(p, 0, 10, 31, &a);
        struct wbuf o = {.n = 0};
        put_shortstr(&o, p->target.vhost);
        put_shortstr(&o, "");
        put_u8(&o, 0);
        send_method(p, 0, 10, 40, &o);
    } else if (cls == 10 && meth == 41) { /* connection.open-ok */
        send_channel_open(p);
    } else if (cls == 20 && meth == 11) { /* channel.open-ok */
        if (p->state == P_CONNECTING) {
            log_info("queue probe: connected to %s", p->url_masked);
            p->ever_connected = 1;
            p->error[0] = '\0';
            start_round(p);
        } else if (p->state == P_REOPENING) {
            ask_next(p);
        }
    } else if (cls == 50 && meth == 11 && ch == CHANNEL &&
               (p->state == P_ASKING || p->state == P_CHECKING)) { /* queue.declare-ok */
        if (on_declare_ok(p, r) < 0)
            return -1;
    } else if (cls == 20 && meth == 40) { /* channel.close */
        on_channel_close(p, r);
    } else if (cls == 10 && meth == 50) { /* connection.close */
        uint16_t code = 0;
        char text[256] = "";
        get_u16(r, &code);
        get_shortstr(r, text, sizeof(text));
        /* The broker closes the socket after this; close-ok is a courtesy. */
        send_method(p, 0, 10, 51, NULL);
        probe_drop(p, "closed by the broker: %u %s", code, text);
        return -1;
    }
    /* Anything else (blocked/unblocked, close-ok) needs no answer. A send that
     * could not be framed has dropped the connection already. */
    return p->bev ? 0 : -1;
}

static void send_protocol_header(struct broker_probe *p)
{
    static const uint8_t header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    bufferevent_write(p->bev, header, sizeof(header));
}

/* The TLS relay's first line: "ok" once it is connected, or "error <reason>".
 * Returns 1 when AMQP may start, 0 to wait for more, -1 when dropped. */
static int read_relay_line(struct broker_probe *p, struct evbuffer *in)
{
    char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_LF);
    if (!line) {
        if (evbuffer_get_length(in) < TLS_RELAY_LINE_MAX)
            return 0;
        probe_drop(p, "the TLS relay said something else than its status");
        return -1;
    }
    int ok = strcmp(line, "ok") == 0;
    if (!ok) {
        let_relay_go(p, 0); /* it is on its way out */
        probe_drop(p, "%s", strncmp(line, "error ", 6) == 0 ? line + 6 : line);
    }
    free(line);
    if (!ok)
        return -1;
    log_debug("queue probe: TLS relay %d is connected to %s:%d", (int)p->relay_pid, p->target.host,
              p->target.port);
    p->state = P_CONNECTING;
    send_protocol_header(p);
    return 1;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct broker_probe *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (p->state == P_RELAYING && read_relay_line(p, in) <= 0)
        return;
    for (;;) {
        uint8_t h[7];
        if (evbuffer_copyout(in, h, sizeof(h)) < (ev_ssize_t)sizeof(h))
            return;
        if (h[0] == 'A') {
            probe_drop(p, "the broker refused AMQP 0-9-1");
            return;
        }
        uint32_t size = (uint32_t)h[3] << 24 | (uint32_t)h[4] << 16 | (uint32_t)h[5] << 8 | h[6];
        if (size > MAX_FRAME) {
            probe_drop(p, "a frame of %u bytes", size);
            return;
        }
        if (evbuffer_get_length(in) < 7u + size + 1u)
            return;
        const uint8_t *f = evbuffer_pullup(in, (ev_ssize_t)(7 + size + 1));
        if (f[7 + size] != FRAME_END) {
            probe_drop(p, "a frame without its end marker");
            return;
        }
        int rc = 0;
        if (h[0] == FRAME_METHOD) {
            struct rbuf r = {f + 7, size};
            rc = on_method(p, (uint16_t)(h[1] << 8 | h[2]), &r);
        }
        if (rc < 0)
            return; /* the bufferevent is gone */
        evbuffer_drain(in, 7 + size + 1);
    }
}

/* libevent makes the socket without close-on-exec: a master re-executed on USR2
 * would inherit it and hold the old master's broker connection open for good. */
static void keep_from_exec(struct broker_probe *p)
{
    evutil_socket_t fd = p->bev ? bufferevent_getfd(p->bev) : -1;
    if (fd >= 0)
        evutil_make_socket_closeonexec(fd);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct broker_probe *p = arg;
    if (what & BEV_EVENT_CONNECTED) {
        keep_from_exec(p);
        send_protocol_header(p);
        return;
    }
    int dns = bufferevent_socket_get_dns_error(bev);
    if (dns)
        probe_drop(p, "%s", evutil_gai_strerror(dns));
    else if (what & BEV_EVENT_EOF)
        probe_drop(p, "%s",
                   p->state == P_RELAYING ? "the TLS relay ended without a word"
                                          : "the broker closed the connection");
    else
        probe_drop(p, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* amqps://: the relay connects and does TLS; the probe talks to it. */
static void connect_via_relay(struct broker_probe *p)
{
    struct tls_relay_args a = {-1,
                               p->target.host,
                               p->target.port,
                               p->set.tls_ca,
                               p->set.tls_cert,
                               p->set.tls_key,
                               p->set.tls_verify,
                               TLS_RELAY_TIMEOUT_MS};
    char err[256];
    int fd = tls_spawn(&a, &p->relay_pid, err, sizeof(err));
    if (fd < 0) {
        probe_drop(p, "%s", err);
        return;
    }
    log_debug("queue probe: TLS relay %d for %s:%d started", (int)p->relay_pid, p->target.host,
              p->target.port);
    evutil_make_socket_nonblocking(fd);
    p->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!p->bev) {
        close(fd);
        probe_drop(p, "bufferevent_socket_new failed");
        return;
    }
    bufferevent_setcb(p->bev, read_cb, NULL, event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    p->state = P_RELAYING;
    p->step_started_mono_ms = now_mono_ms();
}

static void probe_connect(struct broker_probe *p)
{
    if (!p->n_urls || !p->n_queues)
        return;
    free(p->url_masked);
    p->url_masked = config_mask_url(p->urls[p->url_index]);
    const char *why;
    if (parse_target(p->urls[p->url_index], &p->target, &why) < 0) {
        probe_drop(p, "%s", why);
        return;
    }
    if (p->target.tls) {
        connect_via_relay(p);
        return;
    }
    p->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!p->bev) {
        probe_drop(p, "bufferevent_socket_new failed");
        return;
    }
    bufferevent_setcb(p->bev, read_cb, NULL, event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    p->state = P_CONNECTING;
    p->step_started_mono_ms = now_mono_ms();
    /* The connect may fail at once (a refused loopback port), in which case
     * event_cb has already dropped the bufferevent. */
    bufferevent_socket_connect_hostname(p->bev, p->dns, AF_UNSPEC, p->target.host,
                                        p->target.port);
    keep_from_exec(p); /* a numeric address has its socket already */
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct broker_probe *p = arg;
    int64_t waited = now_mono_ms() - p->step_started_mono_ms;
    switch (p->state) {
    case P_DOWN:
        probe_connect(p);
        break;
    case P_READY:
        start_round(p);
        break;
    case P_RELAYING:
    case P_CONNECTING:
    case P_ASKING:
    case P_CHECKING:
    case P_REOPENING:
        if (waited > PROBE_TIMEOUT_MS)
            probe_drop(p, "no answer in %d s", PROBE_TIMEOUT_MS / 1000);
        break;
    }
}

static size_t target_queues_max(const struct config *cfg)
{
    return (size_t)cfg->n_queues * (2 + TOPOLOGY_MAX_DELAYS) + 1;
}

/* The queues asked about, in order: each work queue, its dead-letter queue and
 * its delay queues, named as the workers declare them. A name too long for
 * AMQP is left out (no worker could declare it either). */
static int target_queues(const struct config *cfg, struct probe_queue *out)
{
    int n = 0, delays[TOPOLOGY_MAX_DELAYS];
    int nd = amqp_retry_delays(cfg->max_attempts, delays);
    for (int i = 0; i < cfg->n_queues; i++) {
        for (int k = -2; k < nd; k++) {
            struct probe_queue *q = &out[n];
            char name[sizeof(q->name) + 32];
            if (k == -2)
                snprintf(name, sizeof(name), "%s", cfg->queues[i]);
            else if (k == -1)
                amqp_dead_queue(cfg->queues[i], name, sizeof(name));
            else
                amqp_retry_queue(cfg->queues[i], delays[k], name, sizeof(name));
            if (strlen(name) >= sizeof(q->name))
                continue;
            memcpy(q->name, name, strlen(name) + 1);
            q->dead = k == -1;
            q->retry = k >= 0;
            n++;
        }
    }
    return n;
}

static void set_targets(struct broker_probe *p, const struct config *cfg)
{
    p->n_urls = cfg->n_urls;
    p->urls = xcalloc((size_t)(cfg->n_urls ? cfg->n_urls : 1), sizeof(char *));
    for (int i = 0; i < cfg->n_urls; i++)
        p->urls[i] = xstrdup(cfg->urls[i]);
    p->url_index = 0;
    p->set.tls_ca = xstrdup(cfg->tls_ca);
    p->set.tls_cert = xstrdup(cfg->tls_cert);
    p->set.tls_key = xstrdup(cfg->tls_key);
    p->set.tls_verify = cfg->tls_verify;
    p->set.quorum = strcmp(cfg->queue_type, "quorum") == 0;
    p->set.max_priority = cfg->max_priority;
    p->queues = xcalloc(target_queues_max(cfg), sizeof(*p->queues));
    p->n_queues = target_queues(cfg, p->queues);
    forget_figures(p);
}

static void clear_targets(struct broker_probe *p)
{
    for (int i = 0; i < p->n_urls; i++)
        free(p->urls[i]);
    free(p->urls);
    p->urls = NULL;
    p->n_urls = 0;
    free(p->set.tls_ca);
    free(p->set.tls_cert);
    free(p->set.tls_key);
    memset(&p->set, 0, sizeof(p->set));
    free(p->queues);
    p->queues = NULL;
    p->n_queues = 0;
}

struct broker_probe *probe_new(struct event_base *base, const struct config *cfg)
{
    struct broker_probe *p = xcalloc(1, sizeof(*p));
    p->base = base;
    p->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!p->dns)
        log_warn("queue probe: no DNS resolver (/etc/resolv.conf?): broker host names "
                 "are resolved with a blocking lookup");
    p->tick = event_new(base, -1, EV_PERSIST, tick_cb, p);
    struct timeval tv = {PROBE_INTERVAL_MS / 1000, (PROBE_INTERVAL_MS % 1000) * 1000};
    event_add(p->tick, &tv);
    strcpy(p->error, "not connected yet");
    set_targets(p, cfg);
    probe_connect(p);
    return p;
}

/* Whether cfg needs a new connection: other URLs, queues or TLS settings. */
static int same_targets(const struct broker_probe *p, const struct config *cfg)
{
    struct probe_queue *want = xcalloc(target_queues_max(cfg), sizeof(*want));
    int n = target_queues(cfg, want), same = n == p->n_queues;
    for (int i = 0; same && i < n; i++)
        same = strcmp(p->queues[i].name, want[i].name) == 0;
    free(want);
    if (!same || p->n_urls != cfg->n_urls)
        return 0;
    for (int i = 0; i < cfg->n_urls; i++)
        if (strcmp(p->urls[i], cfg->urls[i]) != 0)
            return 0;
    return strcmp(p->set.tls_ca, cfg->tls_ca) == 0 && strcmp(p->set.tls_cert, cfg->tls_cert) == 0 &&
           strcmp(p->set.tls_key, cfg->tls_key) == 0 && p->set.tls_verify == cfg->tls_verify;
}

/* A polite goodbye: connection.close written straight to the socket, since
 * freeing a bufferevent discards what it has not sent. */
static void say_goodbye(struct broker_probe *p)
{
    if (!p->bev || !probe_connected(p))
        return;
    static const uint8_t close_frame[] = {
        FRAME_METHOD, 0, 0, 0, 0, 0, 11, 0, 10, 0, 50, 0, 200, 0, 0, 0, 0, 0, FRAME_END};
    evutil_socket_t fd = bufferevent_getfd(p->bev);
    if (fd >= 0 && send(fd, close_frame, sizeof(close_frame), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("queue probe: goodbye: %s", strerror(errno));
}

void probe_configure(struct broker_probe *p, const struct config *cfg)
{
    if (same_targets(p, cfg)) {
        /* The same connection, but the workers' arguments may have changed,
         * and a queue may have been made again meanwhile: check every queue
         * again; what /status shows stands until then. */
        p->set.quorum = strcmp(cfg->queue_type, "quorum") == 0;
        p->set.max_priority = cfg->max_priority;
        for (int i = 0; i < p->n_queues; i++)
            p->queues[i].checked = 0;
        return;
    }
    say_goodbye(p);
    close_conn(p, p->state == P_RELAYING);
    p->state = P_DOWN;
    clear_targets(p);
    set_targets(p, cfg);
    strcpy(p->error, "not connected yet");
    probe_connect(p);
}

void probe_free(struct broker_probe *p)
{
    if (!p)
        return;
    say_goodbye(p);
    close_conn(p, p->state == P_RELAYING);
    event_free(p->tick);
    if (p->dns)
        evdns_base_free(p->dns, 0);
    clear_targets(p);
    free(p->url_masked);
    free(p);
}

int probe_reaped(struct broker_probe *p, pid_t pid, int status)
{
    if (!p || !pid || pid != p->relay_pid)
        return 0;
    p->relay_pid = 0;
    log_debug("queue probe: TLS relay %d exited (status 0x%x)", (int)pid, status);
    return 1;
}

int probe_connected(const struct broker_probe *p)
{
    return p->state == P_READY || p->state == P_ASKING || p->state == P_CHECKING ||
           p->state == P_REOPENING;
}

const char *probe_error(const struct broker_probe *p)
{
    return probe_connected(p) ? p->queue_error : p->error;
}

const struct probe_queue *probe_mismatch(const struct broker_probe *p)
{
    for (int i = 0; probe_connected(p) && i < p->n_queues; i++)
        if (p->queues[i].mismatch[0])
            return &p->queues[i];
    return NULL;
}

const char *probe_url(const struct broker_probe *p)
{
    return p->url_masked ? p->url_masked : "";
}

int probe_queue_count(const struct broker_probe *p)
{
    return p->n_queues;
}

void probe_queue_get(const struct broker_probe *p, int i, struct probe_queue *out)
{
    *out = p->queues[i];
    if (!out->updated_mono_ms || now_mono_ms() - out->updated_mono_ms > PROBE_STALE_MS)
        out->messages = out->consumers = -1;
}
