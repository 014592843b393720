#include "amqp.h"
#include "amqp_open.h"
#include "confirms.h"
#include "../common/backoff.h"
#include "../common/log.h"
#include "../common/util.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define CH_CONSUME 1
#define CH_PUBLISH 2
#define CONNECT_TIMEOUT_S 5
#define RPC_TIMEOUT_S 10
#define RECONNECT_BASE_MS 500
#define RECONNECT_MAX_MS 30000

struct amqp_link {
    struct event_base *base;
    const struct config *cfg;
    struct amqp_callbacks cb;
    void *arg;
    amqp_connection_state_t conn;
    int connected;
    unsigned generation;
    uint64_t publish_seq;
    struct confirms unconfirmed; /* publish numbers not yet acked or nacked */
    int url_index;
    uint32_t failures;
    int consuming;   /* basic.consume is active */
    int want_consume;
    struct event *read_ev;
    struct event *tick;
    struct event *reconnect;
    char url_error[CONFIG_MAX_URLS][AMQP_ERR_LEN]; /* last failure per URL, logged once */
};

static void schedule_reconnect(struct amqp_link *l);
static void drain(struct amqp_link *l);


static amqp_bytes_t bytes(const char *s)
{
    return amqp_cstring_bytes(s ? s : "");
}

static void copy_bytes(char *dst, size_t len, amqp_bytes_t b)
{
    size_t n = b.len < len - 1 ? b.len : len - 1;
    if (n)
        memcpy(dst, b.bytes, n);
    dst[n] = '\0';
}

/* The outcome of the last RPC; on failure its text, prefixed with what was
 * asked, goes to err. */
static int check(struct amqp_link *l, const char *what, char *err, size_t errlen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(l->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char buf[256];
    const char *text = amqp_reply_text(r, buf, sizeof(buf));
    if (amqp_reply_is_precondition(r)) {
        /* "channel closed: 406 PRECONDITION_FAILED - inequivalent arg ..." */
        const char *why = strstr(text, "406 ");
        snprintf(err, errlen, "%s exists with other arguments: %s; delete it or change "
                 "[broker] to match", what, why ? why : text);
    } else {
        snprintf(err, errlen, "%s: %s", what, text);
    }
    return -1;
}

/* Forget the connection. Only a deliberate close (goodbye) says connection.close
 * to the broker: that is an RPC, and on a connection that is already broken it
 * would hold the loop for the whole RPC timeout. */
static void drop_connection(struct amqp_link *l, const char *why, int goodbye)
{
    int was = l->connected;
    if (l->read_ev) {
        event_free(l->read_ev);
        l->read_ev = NULL;
    }
    if (l->conn) {
        if (was && goodbye)
            amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(l->conn);
        l->conn = NULL;
    }
    l->connected = 0;
    l->consuming = 0;
    l->generation++;
    if (!was)
        return;
    if (goodbye)
        log_debug("amqp: connection closed: %s", why);
    else
        log_warn("amqp: connection lost: %s", why);
    if (l->cb.connection)
        l->cb.connection(l->arg, 0);
}

static void arg_str(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
}

static void arg_int(amqp_table_entry_t *e, const char *key, int value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_I32;
    e->value.value.i32 = value;
}

static int declare_queue(struct amqp_link *l, const char *name, amqp_table_entry_t *args,
                         int nargs, char *err, size_t errlen)
{
    amqp_queue_declare(l->conn, CH_CONSUME, bytes(name), 0, 1, 0, 0,
                       (amqp_table_t){nargs, nargs ? args : NULL});
    char what[300];
    snprintf(what, sizeof(what), "queue %s", name);
    return check(l, what, err, errlen);
}

/* Work queues, their dead-letter queues, and one delay queue per retry delay
 * whose messages expire back into the work queue (per-message TTL only expires
 * at the head of a queue, hence one queue per delay). Quorum delay queues
 * dead-letter at least once: an at-most-once expiry that a node failure
 * interrupts would lose the job (RabbitMQ >= 3.10 needs reject-publish for it). */
static int declare_topology(struct amqp_link *l, char *err, size_t errlen)
{
    const struct config *cfg = l->cfg;
    int quorum = strcmp(cfg->queue_type, "quorum") == 0;
    const char *ex = cfg->results_exchange;
    if (ex[0]) {
        amqp_exchange_declare(l->conn, CH_CONSUME, bytes(ex), bytes("topic"), 0, 1, 0, 0,
                              amqp_empty_table);
        char what[300];
        snprintf(what, sizeof(what), "exchange %s", ex);
        if (check(l, what, err, errlen) < 0)
            return -1;
    }
    for (int i = 0; i < cfg->n_queues; i++) {
        const char *q = cfg->queues[i];
        char name[AMQP_SHORTSTR];
        amqp_table_entry_t a[6];
        int n = 0;
        if (quorum)
            arg_str(&a[n++], "x-queue-type", "quorum");
        if (cfg->max_priority)
            arg_int(&a[n++], "x-max-priority", cfg->max_priority);
        if (declare_queue(l, q, a, n, err, errlen) < 0)
            return -1;
        amqp_dead_queue(q, name, sizeof(name));
        if (declare_queue(l, name, a, quorum, err, errlen) < 0)
            return -1;
        int delays[TOPOLOGY_MAX_DELAYS];
        int nd = amqp_retry_delays(cfg->max_attempts, delays);
        for (int k = 0; k < nd; k++) {
            int delay = delays[k];
            n = 0;
            arg_int(&a[n++], "x-message-ttl", delay);
            arg_str(&a[n++], "x-dead-letter-exchange", "");
            arg_str(&a[n++], "x-dead-letter-routing-key", q);
            if (quorum) {
                arg_str(&a[n++], "x-queue-type", "quorum");
                arg_str(&a[n++], "x-dead-letter-strategy", "at-least-once");
                arg_str(&a[n++], "x-overflow", "reject-publish");
            }
            amqp_retry_queue(q, delay, name, sizeof(name));
            if (declare_queue(l, name, a, n, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

static void start_consuming(struct amqp_link *l)
{
    if (!l->connected || l->consuming)
        return;
    for (int i = 0; i < l->cfg->n_queues; i++) {
        const char *q = l->cfg->queues[i];
        amqp_basic_consume(l->conn, CH_CONSUME, bytes(q), bytes(q), 0, 0, 0, amqp_empty_table);
        char err[AMQP_ERR_LEN];
        if (check(l, "basic.consume", err, sizeof(err)) < 0) {
            drop_connection(l, err, 0);
            schedule_reconnect(l);
            return;
        }
    }
    l->consuming = 1;
}

static void stop_consuming(struct amqp_link *l)
{
    if (!l->connected || !l->consuming)
        return;
    /* basic.cancel is an RPC: its cancel-ok may arrive after deliveries already on
     * the way, which drain() still hands over. */
    for (int i = 0; i < l->cfg->n_queues; i++)
        amqp_basic_cancel(l->conn, CH_CONSUME, bytes(l->cfg->queues[i]));
    l->consuming = 0;
}

void amqp_link_consume(struct amqp_link *l, int on)
{
    l->want_consume = on;
    if (on)
        start_consuming(l);
    else
        stop_consuming(l);
}

static int connect_url(struct amqp_link *l, const char *url, char *err, size_t errlen)
{
    char name[300];
    snprintf(name, sizeof(name), "c2a-worker@%s:%d", amqp_host_name(), (int)getpid());
    struct amqp_open_opts o = {name, l->cfg->heartbeat, CONNECT_TIMEOUT_S};
    l->conn = amqp_open_url(l->cfg, url, &o, err, errlen);
    if (!l->conn)
        return -1;
    struct timeval rpc = {RPC_TIMEOUT_S, 0};
    amqp_set_rpc_timeout(l->conn, &rpc);
    amqp_channel_open(l->conn, CH_CONSUME);
    if (check(l, "channel.open", err, errlen) < 0)
        goto fail;
    amqp_channel_open(l->conn, CH_PUBLISH);
    if (check(l, "channel.open", err, errlen) < 0)
        goto fail;
    amqp_confirm_select(l->conn, CH_PUBLISH);
    if (check(l, "confirm.select", err, errlen) < 0)
        goto fail;
    /* Per consumer (global = 0): quorum queues know no other kind. */
    amqp_basic_qos(l->conn, CH_CONSUME, 0, (uint16_t)l->cfg->prefetch, 0);
    if (check(l, "basic.qos", err, errlen) < 0 || declare_topology(l, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    amqp_destroy_connection(l->conn);
    l->conn = NULL;
    return -1;
}

/* A failure is logged when it differs from the last one of the same URL: a
 * broker that refuses us for minutes says why once, not every few seconds. */
static void report_failure(struct amqp_link *l, int i, const char *url, const char *err)
{
    char *masked = config_mask_url(url);
    if (strcmp(l->url_error[i], err) != 0) {
        log_error("amqp: %s: %s", masked, err);
        strlcpy_c2a(l->url_error[i], err, sizeof(l->url_error[i]));
    } else {
        log_debug("amqp: %s: %s", masked, err);
    }
    free(masked);
    if (l->cb.error)
        l->cb.error(l->arg, err);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

static void connected(struct amqp_link *l, int u)
{
    char *masked = config_mask_url(l->cfg->urls[u]);
    log_info("amqp: connected to %s", masked);
    free(masked);
    l->url_error[u][0] = '\0';
    if (l->cb.error)
        l->cb.error(l->arg, "");
    l->url_index = u;
    l->connected = 1;
    l->failures = 0;
    l->publish_seq = 0;
    confirms_reset(&l->unconfirmed);
    l->generation++;
    l->read_ev = event_new(l->base, amqp_get_sockfd(l->conn), EV_READ | EV_PERSIST, on_readable,
                           l);
    event_add(l->read_ev, NULL);
    if (l->cb.connection)
        l->cb.connection(l->arg, 1);
    if (l->want_consume)
        start_consuming(l);
    drain(l);
}

static void try_connect(struct amqp_link *l)
{
    int n = l->cfg->n_urls;
    for (int i = 0; i < n; i++) {
        int u = (l->url_index + i) % n;
        char err[AMQP_ERR_LEN];
        if (connect_url(l, l->cfg->urls[u], err, sizeof(err)) == 0) {
            connected(l, u);
            return;
        }
        report_failure(l, u, l->cfg->urls[u], err);
    }
    l->url_index = (l->url_index + 1) % n;
    schedule_reconnect(l);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    try_connect(arg);
}

static void schedule_reconnect(struct amqp_link *l)
{
    l->failures++;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
        rnd = (uint32_t)now_mono_ms();
    uint32_t ms = backoff_delay_ms(l->failures, RECONNECT_BASE_MS, RECONNECT_MAX_MS, 30, rnd);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (l->failures <= 3)
        log_info("amqp: reconnecting in %u ms", ms);
    else
        log_debug("amqp: reconnecting in %u ms", ms);
    evtimer_add(l->reconnect, &tv);
}

/* A count kept in a header of ours (x-c2a-attempts, x-c2a-crashes). Producers
 * can send anything: a value that is not an integer, or is outside 0..limit, is
 * treated as absent (0). */
static int header_count(amqp_table_t *t, const char *key, int limit)
{
    for (int i = 0; i < t->num_entries; i++) {
        amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
            continue;
        int64_t v;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I8: v = e->value.value.i8; break;
        case AMQP_FIELD_KIND_U8: v = e->value.value.u8; break;
        case AMQP_FIELD_KIND_I16: v = e->value.value.i16; break;
        case AMQP_FIELD_KIND_U16: v = e->value.value.u16; break;
        case AMQP_FIELD_KIND_I32: v = e->value.value.i32; break;
        case AMQP_FIELD_KIND_U32: v = e->value.value.u32; break;
        case AMQP_FIELD_KIND_I64: v = e->value.value.i64; break;
        case AMQP_FIELD_KIND_U64:
            v = e->value.value.u64 > (uint64_t)limit ? -1 : (int64_t)e->value.value.u64;
            break;
        default: return 0;
        }
        return v >= 0 && v <= limit ? (int)v : 0;
    }
    return 0;
}

static int read_delivery(struct amqp_link *l, amqp_frame_t *f)
{
    amqp_basic_deliver_t *m = f->payload.method.decoded;
    struct amqp_delivery *d = xcalloc(1, sizeof(*d));
    d->tag = m->delivery_tag;
    d->redelivered = m->redelivered;
    d->generation = l->generation;
    copy_bytes(d->queue, sizeof(d->queue), m->consumer_tag); /* consumer tag = queue */
    amqp_message_t *msg = xcalloc(1, sizeof(*msg));
    /* Header and body frames follow at once; reading them may wait briefly. */
    amqp_rpc_reply_t r = amqp_read_message(l->conn, f->channel, msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        free(msg);
        free(d);
        char buf[256];
        drop_connection(l, amqp_reply_text(r, buf, sizeof(buf)), 0);
        return -1;
    }
    amqp_basic_properties_t *p = &msg->properties;
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        copy_bytes(d->reply_to, sizeof(d->reply_to), p->reply_to);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        copy_bytes(d->correlation_id, sizeof(d->correlation_id), p->correlation_id);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        copy_bytes(d->message_id, sizeof(d->message_id), p->message_id);
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG && p->timestamp <= INT64_MAX / 1000)
        d->timestamp = (int64_t)p->timestamp;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        d->attempts = header_count(&p->headers, "x-c2a-attempts", AMQP_COUNT_MAX);
        d->crashes = header_count(&p->headers, "x-c2a-crashes", AMQP_COUNT_MAX);
        d->redeliveries = header_count(&p->headers, "x-c2a-redeliveries", AMQP_COUNT_MAX);
    }
    d->body_len = msg->body.len;
    d->body = xmalloc(msg->body.len + 1);
    if (msg->body.len) /* an empty body has no bytes pointer */
        memcpy(d->body, msg->body.bytes, msg->body.len);
    d->body[msg->body.len] = '\0';
    /* The properties stay (in the message's own pool) for retries and dead
     * letters; the body is ours now. */
    amqp_bytes_free(msg->body);
    msg->body = amqp_empty_bytes;
    d->message = msg;
    l->cb.delivery(l->arg, d);
    return 0;
}

/* A basic.ack or basic.nack on the publish channel: report every publish it
 * settles, unless a report loses the connection (those numbers belong to the
 * old channel, whose tasks the pipeline forgets). */
static void confirm_range(struct amqp_link *l, uint64_t tag, int multiple, int acked)
{
    unsigned gen = l->generation;
    uint64_t *seqs;
    size_t n = confirms_take(&l->unconfirmed, tag, multiple, &seqs);
    for (size_t i = 0; i < n && l->connected && gen == l->generation; i++)
        l->cb.confirm(l->arg, seqs[i], acked);
    free(seqs);
}

/* Read every frame that is ready, without waiting for more. */
static void drain(struct amqp_link *l)
{
    unsigned gen = l->generation;
    while (l->connected && gen == l->generation) {
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(l->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            drop_connection(l, amqp_error_string2(rc), 0);
            schedule_reconnect(l);
            return;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
            if (read_delivery(l, &f) < 0) {
                schedule_reconnect(l);
                return;
            }
            break;
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            confirm_range(l, a->delivery_tag, a->multiple, 1);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *n = f.payload.method.decoded;
            confirm_range(l, n->delivery_tag, n->multiple, 0);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t msg;
            if (amqp_read_message(l->conn, f.channel, &msg, 0).reply_type ==
                AMQP_RESPONSE_NORMAL)
                amqp_destroy_message(&msg);
            log_warn("amqp: a published message was returned as unroutable");
            break;
        }
        case AMQP_BASIC_CANCEL_METHOD:
            drop_connection(l, "the broker cancelled our consumer (queue deleted?)", 0);
            schedule_reconnect(l);
            return;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *c = f.payload.method.decoded;
            char why[300];
            snprintf(why, sizeof(why), "channel %u closed: %u %.*s", f.channel, c->reply_code,
                     (int)c->reply_text.len, (char *)c->reply_text.bytes);
            amqp_channel_close_ok_t ok = {0};
            amqp_send_method(l->conn, f.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            drop_connection(l, why, 0);
            schedule_reconnect(l);
            return;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *c = f.payload.method.decoded;
            char why[300];
            snprintf(why, sizeof(why), "connection closed by the broker: %u %.*s",
                     c->reply_code, (int)c->reply_text.len, (char *)c->reply_text.bytes);
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(l->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            drop_connection(l, why, 0);
            schedule_reconnect(l);
            return;
        }
        case AMQP_CONNECTION_BLOCKED_METHOD:
            log_warn("amqp: the broker blocks publishing (resource alarm)");
            break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            log_info("amqp: the broker unblocked publishing");
            break;
        default:
            break;
        }
        if (!l->connected || gen != l->generation)
            return; /* a callback lost the connection */
        amqp_maybe_release_buffers(l->conn);
    }
}

/* Heartbeats are sent, and a silent broker noticed, only inside library calls:
 * call in regularly. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct amqp_link *l = arg;
    if (l->connected)
        drain(l);
}

struct amqp_link *amqp_link_open(struct event_base *base, const struct config *cfg,
                                 const struct amqp_callbacks *cb, void *arg)
{
    struct amqp_link *l = xcalloc(1, sizeof(*l));
    l->base = base;
    l->cfg = cfg;
    l->cb = *cb;
    l->arg = arg;
    l->want_consume = 1;
    l->reconnect = evtimer_new(base, on_reconnect, l);
    l->tick = event_new(base, -1, EV_PERSIST, on_tick, l);
    int ms = cfg->heartbeat ? cfg->heartbeat * 1000 / 4 : 1000;
    if (ms > 1000)
        ms = 1000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(l->tick, &tv);
    /* Connect from the loop: a delivery may arrive during the first drain, and
     * the caller must hold the link by then. */
    struct timeval now = {0, 0};
    evtimer_add(l->reconnect, &now);
    return l;
}

void amqp_link_free(struct amqp_link *l)
{
    if (!l)
        return;
    drop_connection(l, "the worker stops", 1);
    event_free(l->tick);
    event_free(l->reconnect);
    confirms_free(&l->unconfirmed);
    free(l);
}

unsigned amqp_link_generation(const struct amqp_link *l)
{
    return l->generation;
}

void amqp_delivery_free(struct amqp_delivery *d)
{
    if (!d)
        return;
    if (d->message) {
        amqp_destroy_message(d->message);
        free(d->message);
    }
    free(d->body);
    free(d);
}

static int is_ours(amqp_bytes_t key)
{
    return key.len >= 6 && memcmp(key.bytes, "x-c2a-", 6) == 0;
}

static void set_str_prop(amqp_basic_properties_t *props, amqp_flags_t flag, amqp_bytes_t *field,
                         const char *v)
{
    if (v && v[0]) {
        props->_flags |= flag;
        *field = amqp_cstring_bytes(v);
    }
}

/* The properties of a publish: the original's when it has one (its headers
 * less ours), then the fields p sets. h has room for the original's headers
 * plus ours; the caller frees it. */
static amqp_table_entry_t *build_props(const struct amqp_publish *p,
                                       amqp_basic_properties_t *props)
{
    const amqp_message_t *orig = p->original ? p->original->message : NULL;
    int norig = 0;
    memset(props, 0, sizeof(*props));
    if (orig) {
        *props = orig->properties;
        /* A dead letter must not vanish, and a delay queue sets its own TTL. */
        props->_flags &= ~(amqp_flags_t)AMQP_BASIC_EXPIRATION_FLAG;
        if (props->_flags & AMQP_BASIC_HEADERS_FLAG)
            norig = props->headers.num_entries;
    }
    amqp_table_entry_t *h = xcalloc((size_t)norig + 6, sizeof(*h));
    int nh = 0;
    for (int i = 0; i < norig; i++)
        if (!is_ours(props->headers.entries[i].key))
            h[nh++] = props->headers.entries[i];
    props->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props->delivery_mode = 2;
    if (!(props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) || p->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = bytes(p->content_type ? p->content_type : "application/json");
    }
    set_str_prop(props, AMQP_BASIC_CORRELATION_ID_FLAG, &props->correlation_id,
                 p->correlation_id);
    set_str_prop(props, AMQP_BASIC_REPLY_TO_FLAG, &props->reply_to, p->reply_to);
    set_str_prop(props, AMQP_BASIC_MESSAGE_ID_FLAG, &props->message_id, p->message_id);
    const struct {
        const char *key;
        int value;
    } counts[] = {{"x-c2a-attempts", p->attempts},
                  {"x-c2a-crashes", p->crashes},
                  {"x-c2a-redeliveries", p->redeliveries}};
    for (size_t i = 0; i < ARRAY_LEN(counts); i++) {
        if (counts[i].value <= 0)
            continue;
        h[nh].key = amqp_cstring_bytes(counts[i].key);
        h[nh].value.kind = AMQP_FIELD_KIND_I32;
        h[nh++].value.value.i32 = counts[i].value;
    }
    if (p->error_code) {
        h[nh].key = amqp_cstring_bytes("x-c2a-error-code");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = bytes(p->error_code);
        h[nh].key = amqp_cstring_bytes("x-c2a-error-message");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = bytes(p->error_message);
        /* When it failed: `c2actl dead list` shows the age. */
        h[nh].key = amqp_cstring_bytes("x-c2a-failed-at");
        h[nh].value.kind = AMQP_FIELD_KIND_TIMESTAMP;
        h[nh++].value.value.u64 = (uint64_t)(now_real_ms() / 1000);
    }
    props->_flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
    if (nh) {
        props->_flags |= AMQP_BASIC_HEADERS_FLAG;
        props->headers = (amqp_table_t){nh, h};
    }
    return h;
}

int amqp_link_publish(struct amqp_link *l, const struct amqp_publish *p, uint64_t *seq)
{
    if (!l->connected)
        return -1;
    amqp_basic_properties_t props;
    amqp_table_entry_t *h = build_props(p, &props);
    amqp_bytes_t body = {p->len, (void *)p->body};
    int rc = amqp_basic_publish(l->conn, CH_PUBLISH, bytes(p->exchange), bytes(p->routing_key),
                                0, 0, &props, body);
    free(h);
    if (rc != AMQP_STATUS_OK) {
        drop_connection(l, amqp_error_string2(rc), 0);
        schedule_reconnect(l);
        return -1;
    }
    *seq = ++l->publish_seq;
    confirms_add(&l->unconfirmed, *seq);
    return 0;
}

static int settle_delivery(struct amqp_link *l, uint64_t tag, unsigned generation, int ack)
{
    if (!l->connected || generation != l->generation)
        return -1; /* that channel is gone: the broker has requeued the message */
    int rc = ack ? amqp_basic_ack(l->conn, CH_CONSUME, tag, 0)
                 : amqp_basic_reject(l->conn, CH_CONSUME, tag, 1);
    if (rc != AMQP_STATUS_OK) {
        drop_connection(l, amqp_error_string2(rc), 0);
        schedule_reconnect(l);
        return -1;
    }
    return 0;
}

int amqp_link_ack(struct amqp_link *l, uint64_t tag, unsigned generation)
{
    return settle_delivery(l, tag, generation, 1);
}

int amqp_link_reject(struct amqp_link *l, uint64_t tag, unsigned generation)
{
    return settle_delivery(l, tag, generation, 0);
}
