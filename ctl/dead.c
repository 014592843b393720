/*
 * c2actl dead: the dead letters of a work queue (<queue>.dead), where a worker
 * puts a job that failed for good, with the reason in x-c2a-error-code and
 * x-c2a-error-message and the time in x-c2a-failed-at.
 *
 *   dead list QUEUE [--limit N]       id, code, attempts, age, message
 *   dead show QUEUE ID                one dead letter whole: properties, headers, body
 *   dead requeue QUEUE (--id ID... | --code CODE | --all)
 *                                     back to QUEUE, attempts reset
 *   dead purge QUEUE [--code CODE]    gone for good
 *
 * Messages are read with basic.get and held unacknowledged while the command
 * runs; those it does not take are given back (basic.nack, requeue) at the end,
 * and the broker gives them back itself if c2actl dies. A requeued job is
 * published to the work queue and confirmed by the broker before its dead
 * letter is acknowledged: an interruption can leave a job in both queues,
 * never in neither.
 */
#include "c2actl.h"
#include "../common/config.h"
#include "../common/util.h"
#include "../worker/amqp_open.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CH_GET 1
#define CH_PUT 2
#define CONFIRM_TIMEOUT_S 10
#define DEAD_SUFFIX ".dead"

struct dead {
    const struct opts *o;
    amqp_connection_state_t conn;
    char work[256]; /* the work queue */
    char name[256 + 8]; /* its dead-letter queue */
    long count;     /* its messages when we began */
};

/* ---- AMQP values as JSON ---- */

static json_t *field_json(const amqp_field_value_t *v);

static json_t *table_json(const amqp_table_t *t)
{
    json_t *o = json_object();
    for (int i = 0; i < t->num_entries; i++) {
        char *k = xasprintf("%.*s", (int)t->entries[i].key.len, (char *)t->entries[i].key.bytes);
        json_object_set_new(o, k, field_json(&t->entries[i].value));
        free(k);
    }
    return o;
}

static json_t *bytes_json(amqp_bytes_t b)
{
    json_t *s = json_stringn(b.bytes, b.len);
    return s ? s : json_sprintf("<%zu bytes, not UTF-8>", b.len);
}

static json_t *field_json(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return json_boolean(v->value.boolean);
    case AMQP_FIELD_KIND_I8: return json_integer(v->value.i8);
    case AMQP_FIELD_KIND_U8: return json_integer(v->value.u8);
    case AMQP_FIELD_KIND_I16: return json_integer(v->value.i16);
    case AMQP_FIELD_KIND_U16: return json_integer(v->value.u16);
    case AMQP_FIELD_KIND_I32: return json_integer(v->value.i32);
    case AMQP_FIELD_KIND_U32: return json_integer(v->value.u32);
    case AMQP_FIELD_KIND_I64: return json_integer(v->value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: return json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F32: return json_real(v->value.f32);
    case AMQP_FIELD_KIND_F64: return json_real(v->value.f64);
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return bytes_json(v->value.bytes);
    case AMQP_FIELD_KIND_TABLE: return table_json(&v->value.table);
    case AMQP_FIELD_KIND_ARRAY: {
        json_t *a = json_array();
        for (int i = 0; i < v->value.array.num_entries; i++)
            json_array_append_new(a, field_json(&v->value.array.entries[i]));
        return a;
    }
    default: return json_null();
    }
}

static const amqp_field_value_t *header(const amqp_basic_properties_t *p, const char *key)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    size_t n = strlen(key);
    for (int i = 0; i < p->headers.num_entries; i++)
        if (p->headers.entries[i].key.len == n && memcmp(p->headers.entries[i].key.bytes, key, n) == 0)
            return &p->headers.entries[i].value;
    return NULL;
}

/* A header as text ("" when absent), into buf. */
static const char *header_text(const amqp_basic_properties_t *p, const char *key, char *buf,
                               size_t len)
{
    const amqp_field_value_t *v = header(p, key);
    buf[0] = '\0';
    if (v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        snprintf(buf, len, "%.*s", (int)v->value.bytes.len, (char *)v->value.bytes.bytes);
    return buf;
}

static long long header_int(const amqp_basic_properties_t *p, const char *key)
{
    json_t *j = header(p, key) ? field_json(header(p, key)) : NULL;
    long long v = json_is_integer(j) ? (long long)json_integer_value(j) : 0;
    json_decref(j);
    return v;
}

/* The job's id: the body's "id", else the message_id the worker falls back to. */
static void job_id(const amqp_message_t *m, char *buf, size_t len)
{
    json_t *body = json_loadb(m->body.bytes, m->body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(body, "id"));
    if (id)
        snprintf(buf, len, "%s", id);
    else if (m->properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        snprintf(buf, len, "%.*s", (int)m->properties.message_id.len,
                 (char *)m->properties.message_id.bytes);
    else
        snprintf(buf, len, "-");
    json_decref(body);
}

/* ---- the scan ---- */

enum verdict { KEEP, TAKE, STOP };
/* What to do with one dead letter: KEEP it (given back at the end), TAKE it
 * (the visitor acked it, or must have it acked), STOP the scan (keep it). A
 * visitor that fails returns STOP and sets *rc. */
typedef enum verdict (*visit_fn)(struct dead *d, const amqp_message_t *m, uint64_t tag,
                                 void *ctx, int *rc);

/* basic.get each dead letter until the queue is empty, limit (0: no limit) or
 * STOP; TAKEn ones are acked, the others given back in one nack. */
static int scan(struct dead *d, long limit, visit_fn visit, void *ctx, int *more)
{
    int rc = 0, held = 0;
    long seen = 0;
    *more = 0;
    for (;;) {
        if (limit && seen == limit) {
            *more = 1;
            break;
        }
        amqp_rpc_reply_t r = amqp_basic_get(d->conn, CH_GET, amqp_cstring_bytes(d->name), 0);
        if (amqp_failed(d->o, r, d->name))
            return 1;
        if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
            break; /* get-empty */
        uint64_t tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
        amqp_message_t m;
        if (amqp_failed(d->o, amqp_read_message(d->conn, CH_GET, &m, 0), "reading a dead letter"))
            return 1;
        seen++;
        enum verdict v = visit(d, &m, tag, ctx, &rc);
        amqp_destroy_message(&m);
        if (v == TAKE) {
            if (amqp_basic_ack(d->conn, CH_GET, tag, 0) != AMQP_STATUS_OK)
                return fail(d->o, 1, "broker_error", "%s: ack failed", d->name);
        } else {
            held = 1;
        }
        if (v == STOP)
            break;
        amqp_maybe_release_buffers(d->conn);
    }
    /* Everything not taken goes back, in its order (delivery tag 0 + multiple:
     * all that this channel holds). */
    if (held && amqp_basic_nack(d->conn, CH_GET, 0, 1, 1) != AMQP_STATUS_OK)
        return fail(d->o, 1, "broker_error", "%s: giving messages back failed", d->name);
    return rc;
}

/* ---- list ---- */

struct list_ctx {
    json_t *rows;
};

static enum verdict list_one(struct dead *d, const amqp_message_t *m, uint64_t tag, void *ctx,
                             int *rc)
{
    (void)d;
    (void)tag;
    (void)rc;
    struct list_ctx *l = ctx;
    char id[256], code[64], msg[512];
    job_id(m, id, sizeof(id));
    long long failed_at = header_int(&m->properties, "x-c2a-failed-at");
    json_t *row = json_pack("{s:s,s:s,s:s,s:I}", "id", id, "code",
                            header_text(&m->properties, "x-c2a-error-code", code, sizeof(code)),
                            "message",
                            header_text(&m->properties, "x-c2a-error-message", msg, sizeof(msg)),
                            "attempts", (json_int_t)header_int(&m->properties, "x-c2a-attempts"));
    json_object_set_new(row, "failed_at", failed_at ? json_integer(failed_at) : json_null());
    json_object_set_new(row, "age_s",
                        failed_at ? json_integer((json_int_t)(time(NULL) - failed_at)) : json_null());
    json_array_append_new(l->rows, row);
    return KEEP;
}

static int dead_list(struct dead *d)
{
    struct list_ctx l = {json_array()};
    int more;
    int rc = scan(d, d->o->limit, list_one, &l, &more);
    if (rc == 0 && d->o->json) {
        json_t *doc = json_pack("{s:s,s:O,s:b}", "queue", d->name, "messages", l.rows, "more", more);
        char *s = json_dumps(doc, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(doc);
    } else if (rc == 0) {
        printf("%-36s %-16s %8s %8s  %s\n", "ID", "CODE", "ATTEMPTS", "AGE", "MESSAGE");
        size_t i;
        json_t *row;
        json_array_foreach(l.rows, i, row)
        {
            char age[32] = "-";
            if (json_is_integer(json_object_get(row, "age_s"))) {
                long long s = json_integer_value(json_object_get(row, "age_s"));
                if (s < 3600)
                    snprintf(age, sizeof(age), "%lldm%02llds", s / 60, s % 60);
                else
                    snprintf(age, sizeof(age), "%lldh%02lldm", s / 3600, s / 60 % 60);
            }
            printf("%-36s %-16s %8lld %8s  %s\n", json_string_value(json_object_get(row, "id")),
                   json_string_value(json_object_get(row, "code")),
                   (long long)json_integer_value(json_object_get(row, "attempts")), age,
                   json_string_value(json_object_get(row, "message")));
        }
        printf("%zu dead letter%s in %s%s\n", json_array_size(l.rows),
               json_array_size(l.rows) == 1 ? "" : "s", d->name,
               more ? " shown (--limit); there are more" : "");
    }
    json_decref(l.rows);
    return rc;
}

/* ---- show ---- */

static json_t *properties_json(const amqp_basic_properties_t *p)
{
    json_t *o = json_object();
    const struct {
        amqp_flags_t flag;
        const char *name;
        const amqp_bytes_t *v;
    } strs[] = {{AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", &p->content_type},
                {AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding", &p->content_encoding},
                {AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", &p->correlation_id},
                {AMQP_BASIC_REPLY_TO_FLAG, "reply_to", &p->reply_to},
                {AMQP_BASIC_EXPIRATION_FLAG, "expiration", &p->expiration},
                {AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", &p->message_id},
                {AMQP_BASIC_TYPE_FLAG, "type", &p->type},
                {AMQP_BASIC_USER_ID_FLAG, "user_id", &p->user_id},
                {AMQP_BASIC_APP_ID_FLAG, "app_id", &p->app_id}};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        if (p->_flags & strs[i].flag)
            json_object_set_new(o, strs[i].name, bytes_json(*strs[i].v));
    if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
        json_object_set_new(o, "delivery_mode", json_integer(p->delivery_mode));
    if (p->_flags & AMQP_BASIC_PRIORITY_FLAG)
        json_object_set_new(o, "priority", json_integer(p->priority));
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        json_object_set_new(o, "timestamp", json_integer((json_int_t)p->timestamp));
    return o;
}

struct show_ctx {
    const char *want;
    json_t *found;
};

static enum verdict show_one(struct dead *d, const amqp_message_t *m, uint64_t tag, void *ctx,
                             int *rc)
{
    (void)tag;
    (void)rc;
    struct show_ctx *s = ctx;
    char id[256];
    job_id(m, id, sizeof(id));
    if (strcmp(id, s->want) != 0)
        return KEEP;
    json_t *body = json_loadb(m->body.bytes, m->body.len, 0, NULL);
    s->found = json_pack("{s:s,s:s,s:o,s:o,s:o}", "id", id, "queue", d->name, "properties",
                         properties_json(&m->properties), "headers",
                         (m->properties._flags & AMQP_BASIC_HEADERS_FLAG)
                             ? table_json(&m->properties.headers)
                             : json_object(),
                         "body", body ? body : bytes_json(m->body));
    return STOP;
}

static int dead_show(struct dead *d, const char *id)
{
    struct show_ctx s = {id, NULL};
    int more;
    int rc = scan(d, 0, show_one, &s, &more);
    if (rc)
        return rc;
    if (!s.found)
        return fail(d->o, 1, "not_found", "%s: no dead letter with id %s", d->name, id);
    char *text = json_dumps(s.found, JSON_INDENT(2));
    puts(text);
    free(text);
    json_decref(s.found);
    return 0;
}

/* ---- requeue and purge ---- */

struct take_ctx {
    int requeue; /* else purge */
    long taken;
    int *found;  /* per --id, whether it was seen */
};

static int selected(const struct opts *o, const amqp_message_t *m, struct take_ctx *t)
{
    if (o->all)
        return 1;
    if (o->code) {
        char code[64];
        return strcmp(header_text(&m->properties, "x-c2a-error-code", code, sizeof(code)),
                      o->code) == 0;
    }
    char id[256];
    job_id(m, id, sizeof(id));
    for (int i = 0; i < o->nids; i++)
        if (strcmp(o->ids[i], id) == 0) {
            t->found[i] = 1;
            return 1;
        }
    return 0;
}

/* Publish m to the work queue as a new job (its properties and headers, less
 * the x-c2a-* counts and reasons) and wait for the broker's confirm. */
static int republish(struct dead *d, const amqp_message_t *m)
{
    amqp_basic_properties_t p = m->properties;
    amqp_table_entry_t *h = NULL;
    if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
        h = xcalloc((size_t)p.headers.num_entries + 1, sizeof(*h));
        int n = 0;
        for (int i = 0; i < p.headers.num_entries; i++) {
            const amqp_bytes_t *k = &p.headers.entries[i].key;
            if (!(k->len >= 6 && memcmp(k->bytes, "x-c2a-", 6) == 0))
                h[n++] = p.headers.entries[i];
        }
        p.headers = (amqp_table_t){n, h};
    }
    p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.delivery_mode = 2;
    int st = amqp_basic_publish(d->conn, CH_PUT, amqp_empty_bytes, amqp_cstring_bytes(d->work), 1,
                                0, &p, m->body);
    free(h);
    if (st != AMQP_STATUS_OK)
        return fail(d->o, 1, "broker_error", "publishing to %s: %s", d->work,
                    amqp_error_string2(st));
    time_t deadline = time(NULL) + CONFIRM_TIMEOUT_S;
    int returned = 0;
    for (;;) {
        struct timeval tv = {1, 0};
        amqp_frame_t f;
        st = amqp_simple_wait_frame_noblock(d->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) {
            if (time(NULL) >= deadline)
                return fail(d->o, 1, "not_confirmed", "%s: the broker did not confirm", d->work);
            continue;
        }
        if (st != AMQP_STATUS_OK)
            return fail(d->o, 1, "broker_error", "%s: %s", d->work, amqp_error_string2(st));
        if (f.frame_type != AMQP_FRAME_METHOD || f.channel != CH_PUT)
            continue;
        if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            amqp_message_t back;
            if (amqp_failed(d->o, amqp_read_message(d->conn, CH_PUT, &back, 0), "a returned job"))
                return 1;
            amqp_destroy_message(&back);
            returned = 1;
        } else if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            if (returned)
                return fail(d->o, 1, "unroutable", "no queue named %s: the job stays dead",
                            d->work);
            return 0;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            return fail(d->o, 1, "refused", "%s: the broker refused the job", d->work);
        }
    }
}

static enum verdict take_one(struct dead *d, const amqp_message_t *m, uint64_t tag, void *ctx,
                             int *rc)
{
    (void)tag;
    struct take_ctx *t = ctx;
    if (!selected(d->o, m, t))
        return KEEP;
    if (t->requeue && (*rc = republish(d, m)) != 0)
        return STOP;
    t->taken++;
    return TAKE;
}

static int dead_take(struct dead *d, int requeue)
{
    const struct opts *o = d->o;
    if (requeue && !o->all && !o->code && !o->nids)
        return fail(o, 2, "usage", "dead requeue needs --id ID..., --code CODE or --all");
    if (!requeue && o->nids)
        return fail(o, 2, "usage", "dead purge takes --code CODE or nothing (all)");
    int found[DEAD_MAX_IDS] = {0};
    struct take_ctx t = {requeue, 0, found};
    int rc, more;
    if (!requeue && !o->code) {
        /* All of them: one queue.purge. */
        amqp_queue_purge_ok_t *ok =
            amqp_queue_purge(d->conn, CH_GET, amqp_cstring_bytes(d->name));
        if (amqp_failed(o, amqp_get_rpc_reply(d->conn), d->name))
            return 1;
        t.taken = ok->message_count;
        rc = 0;
    } else if (d->count > 0) {
        /* Only the messages there when we began: a requeued job that fails
         * again at once comes back to the tail, and must not be taken again
         * (and again) in the same pass. */
        rc = scan(d, d->count, take_one, &t, &more);
    } else {
        rc = 0;
    }
    int missing = -1;
    for (int i = 0; rc == 0 && i < o->nids && missing < 0; i++)
        if (!found[i])
            missing = i;
    if (o->json && rc == 0) {
        /* One document: what was done, and what was not found beside it. */
        json_t *doc = json_pack("{s:s,s:I}", "queue", d->name, requeue ? "requeued" : "purged",
                                (json_int_t)t.taken);
        if (requeue)
            json_object_set_new(doc, "to", json_string(d->work));
        if (missing >= 0) {
            char *msg = xasprintf("%s: no dead letter with id %s", d->name, o->ids[missing]);
            json_object_set_new(doc, "error", json_pack("{s:s,s:s}", "code", "not_found",
                                                        "message", msg));
            free(msg);
            rc = 1;
        }
        char *s = json_dumps(doc, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(doc);
    } else if (!o->json) {
        printf("%s %ld dead letter%s%s%s\n", requeue ? "requeued" : "purged", t.taken,
               t.taken == 1 ? "" : "s", requeue ? " to " : " from ", requeue ? d->work : d->name);
        if (missing >= 0)
            rc = fail(o, 1, "not_found", "%s: no dead letter with id %s", d->name,
                      o->ids[missing]);
    }
    return rc;
}

int cmd_dead(const struct opts *o, const struct config *cfg)
{
    static const char *const verbs[] = {"list", "show", "requeue", "purge"};
    const char *verb = o->nargs > 0 ? o->args[0] : "";
    size_t v = 0;
    while (v < ARRAY_LEN(verbs) && strcmp(verbs[v], verb) != 0)
        v++;
    if (v == ARRAY_LEN(verbs) || o->nargs < 2 || o->nargs != (v == 1 ? 3 : 2))
        return fail(o, 2, "usage",
                    "dead list QUEUE [--limit N] | show QUEUE ID | requeue QUEUE (--id ID... | "
                    "--code CODE | --all) | purge QUEUE [--code CODE]");
    struct dead d = {o, NULL, "", ""};
    /* The work queue or its dead-letter queue, either name. */
    const char *q = o->args[1];
    size_t n = strlen(q), sl = strlen(DEAD_SUFFIX);
    if (n > sl && strcmp(q + n - sl, DEAD_SUFFIX) == 0)
        n -= sl;
    if (n == 0 || n >= sizeof(d.work) - sl)
        return fail(o, 2, "usage", "%s: not a queue name", q);
    snprintf(d.work, sizeof(d.work), "%.*s", (int)n, q);
    snprintf(d.name, sizeof(d.name), "%s" DEAD_SUFFIX, d.work);

    d.conn = open_broker(o, cfg);
    if (!d.conn)
        return 1;
    int rc = 1;
    amqp_channel_open(d.conn, CH_GET);
    if (amqp_failed(o, amqp_get_rpc_reply(d.conn), "channel.open"))
        goto out;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(d.conn, CH_GET, amqp_cstring_bytes(d.name),
                                                     1, 0, 0, 0, amqp_empty_table);
    if (amqp_failed(o, amqp_get_rpc_reply(d.conn), d.name))
        goto out;
    d.count = ok ? (long)ok->message_count : 0;
    if (v == 2) {
        amqp_channel_open(d.conn, CH_PUT);
        amqp_confirm_select(d.conn, CH_PUT);
        if (amqp_failed(o, amqp_get_rpc_reply(d.conn), "confirm.select"))
            goto out;
    }
    switch (v) {
    case 0: rc = dead_list(&d); break;
    case 1: rc = dead_show(&d, o->args[2]); break;
    case 2: rc = dead_take(&d, 1); break;
    default: rc = dead_take(&d, 0); break;
    }
out:
    amqp_connection_close(d.conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(d.conn);
    return rc;
}
