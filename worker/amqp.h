/*
 * A worker's RabbitMQ connection, driven by its libevent loop (librabbitmq has no
 * thread of its own: frames are read when the socket is readable and on a timer
 * that also keeps heartbeats going). Channel 1 consumes and acks, channel 2
 * publishes in confirm mode.
 *
 * Connecting and declaring are synchronous RPCs bounded by timeouts; everything
 * else is read without waiting. A lost connection is reopened with backoff and
 * jitter over the configured URLs; every delivery carries the connection
 * generation it came on, and an ack for an older generation is dropped (the
 * broker has requeued that message already).
 */
#ifndef C2A_AMQP_H
#define C2A_AMQP_H

#include "../common/config.h"
#include "../common/topology.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct amqp_link;

#define AMQP_SHORTSTR 256
/* Our count headers from producers are believed up to this; above, absent. */
#define AMQP_COUNT_MAX 1000

struct amqp_delivery {
    uint64_t tag;
    unsigned generation;
    int redelivered;
    char queue[AMQP_SHORTSTR]; /* the work queue it came from */
    char reply_to[AMQP_SHORTSTR];
    char correlation_id[AMQP_SHORTSTR];
    char message_id[AMQP_SHORTSTR];
    int attempts;              /* x-c2a-attempts header, 0 when absent or invalid */
    int crashes;               /* x-c2a-crashes: engine crashes and timeouts charged */
    int redeliveries;          /* x-c2a-redeliveries: times its worker or connection was lost */
    int64_t timestamp;         /* the AMQP timestamp property (s since the epoch), 0 if none */
    char *body;                /* owned */
    size_t body_len;
    void *message;             /* the message's properties and headers, as received */
};

struct amqp_callbacks {
    void (*delivery)(void *arg, struct amqp_delivery *d); /* takes ownership */
    void (*confirm)(void *arg, uint64_t seq, int acked);
    void (*connection)(void *arg, int up);                /* up, or lost */
    /* Why connecting failed ("" once connected): shown in /status and /healthz. */
    void (*error)(void *arg, const char *text);
};

struct amqp_publish {
    /* When set, the message keeps every property and header of this delivery
     * (priority, timestamp, type, app_id, user headers such as traceparent,
     * reply_to, correlation_id...), less its expiration, with our x-c2a-*
     * headers replaced by the ones below. */
    const struct amqp_delivery *original;
    const char *exchange;
    const char *routing_key;
    const char *correlation_id;
    const char *message_id;
    const char *reply_to;
    const char *content_type;
    int attempts;              /* written as x-c2a-attempts when > 0 */
    int crashes;               /* written as x-c2a-crashes when > 0 */
    int redeliveries;          /* written as x-c2a-redeliveries when > 0 */
    const char *error_code;    /* x-c2a-error-code, for dead letters */
    const char *error_message; /* x-c2a-error-message */
    const void *body;
    size_t len;
};

/* Returns at once; the connection is opened from the loop's next turn. */
struct amqp_link *amqp_link_open(struct event_base *base, const struct config *cfg,
                                 const struct amqp_callbacks *cb, void *arg);
void amqp_link_free(struct amqp_link *l);
void amqp_delivery_free(struct amqp_delivery *d);
unsigned amqp_link_generation(const struct amqp_link *l);
/* Publish on the confirm channel; *seq is the number the confirm will carry.
 * -1 when not connected (the caller's delivery will come back anyway). */
int amqp_link_publish(struct amqp_link *l, const struct amqp_publish *p, uint64_t *seq);
int amqp_link_ack(struct amqp_link *l, uint64_t tag, unsigned generation);
/* basic.reject with requeue: the broker delivers it again (as redelivered). */
int amqp_link_reject(struct amqp_link *l, uint64_t tag, unsigned generation);
/* Stop or restart consuming (pause, graceful stop). */
void amqp_link_consume(struct amqp_link *l, int on);

#endif
