/*
 * Opening an AMQP connection the way every client of ours does (the workers and
 * c2actl): amqp:// or amqps:// with the [broker] tls_* settings, a bounded TCP
 * and TLS handshake, and a login that tells the broker who we are
 * (connection_name, product, capabilities).
 */
#ifndef C2A_AMQP_OPEN_H
#define C2A_AMQP_OPEN_H

#include <amqp.h>
#include <stddef.h>

struct config;

/* Room for any error text of ours: a broker's 406 names the queue twice. */
#define AMQP_ERR_LEN 512

struct amqp_open_opts {
    const char *connection_name; /* shown in the broker's connection list */
    int heartbeat;               /* seconds; 0 = off */
    int timeout_s;               /* TCP connect, TLS handshake, each RPC */
};

/* A logged-in connection (no channel open yet), or NULL with the reason in err:
 * "connect 127.0.0.1:5671: a socket error occurred", "TLS with broker:5671:
 * certificate verify failed: unable to get local issuer certificate", "login to
 * host:5672: connection closed: 530 NOT_ALLOWED - vhost x not found". */
amqp_connection_state_t amqp_open_url(const struct config *cfg, const char *url,
                                      const struct amqp_open_opts *o, char *err,
                                      size_t errlen);

/* A failed RPC reply as text (a library error, or the broker's close). */
const char *amqp_reply_text(amqp_rpc_reply_t r, char *buf, size_t len);

/* The 406 of a queue.declare whose queue exists with other arguments. */
int amqp_reply_is_precondition(amqp_rpc_reply_t r);

/* This host's name, for results and connection names ("unknown" when unset). */
const char *amqp_host_name(void);

#endif
