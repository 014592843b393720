/*
 * The master's view of the queues: how many messages wait in each work queue,
 * its dead-letter queue and its delay (retry) queues, and how many consumers
 * each has, asked of the broker.
 *
 * The probe keeps one AMQP 0-9-1 connection of its own, spoken directly on a
 * libevent bufferevent (a handful of methods: handshake, channel.open and passive
 * queue.declare), so the master neither links librabbitmq nor ever waits on the
 * broker: every step is a callback on the master's loop, and a broker that does
 * not answer within a few seconds is dropped and shown as unknown. For amqps://
 * a relay process does the TLS (tls_relay.h), so the master maps no OpenSSL.
 *
 * It also tells a queue that the workers cannot declare because it exists with
 * other arguments (another x-queue-type or x-max-priority) from a broker that
 * is down: both leave every worker disconnected.
 */
#ifndef C2A_BROKER_PROBE_H
#define C2A_BROKER_PROBE_H

#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct config;
struct broker_probe;

/* Every PROBE_INTERVAL_MS the queues are asked again; a figure older than
 * PROBE_STALE_MS is reported as unknown. */
#define PROBE_INTERVAL_MS 2000
#define PROBE_STALE_MS 6000

struct probe_queue {
    char name[256];
    int dead;               /* the dead-letter queue of a work queue */
    int retry;              /* one of its delay queues: depth only, arguments not checked */
    int exists;             /* 0: the broker said 404 */
    int64_t messages;       /* -1 when unknown */
    int64_t consumers;      /* -1 when unknown */
    int64_t updated_mono_ms;
    int checked;            /* declared with the workers' arguments on this connection */
    char mismatch[256];     /* the broker's refusal of those arguments (406), or "" */
};

struct broker_probe *probe_new(struct event_base *base, const struct config *cfg);
/* A reload: new URLs or queues restart the probe; otherwise nothing changes. */
void probe_configure(struct broker_probe *p, const struct config *cfg);
/* Closes the connection politely. */
void probe_free(struct broker_probe *p);

/* The master's SIGCHLD reaped pid: 1 if it was the probe's current TLS relay
 * (the probe then forgets the pid, so it never signals a process that reuses
 * it). Relays the probe has let go already are strangers here, as are the
 * engine children of dead workers: the caller ignores them. */
int probe_reaped(struct broker_probe *p, pid_t pid, int status);

int probe_connected(const struct broker_probe *p);
/* Why the probe is not connected; while connected, "queue NAME: <the broker's
 * words>" for the first queue that exists with other arguments than the
 * workers', or "". */
const char *probe_error(const struct broker_probe *p);
/* That queue, or NULL. */
const struct probe_queue *probe_mismatch(const struct broker_probe *p);
/* The masked URL in use. */
const char *probe_url(const struct broker_probe *p);
int probe_queue_count(const struct broker_probe *p);
/* Queue i, with messages/consumers set to -1 when stale or unknown. */
void probe_queue_get(const struct broker_probe *p, int i, struct probe_queue *out);

#endif
