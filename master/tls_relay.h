/*
 * amqps:// for the master's queue probe without OpenSSL in the master.
 *
 * OpenSSL would cost the master about 4 MB of RSS, as much again as the rest of
 * it, so the master never maps it: for an amqps:// URL the probe forks a relay
 * process (tls_spawn.c) that loads c2a-tls.so and runs its api->run(). The
 * relay connects, does the TLS handshake, writes one line on its end of a
 * socketpair, "ok" or "error <reason>", and then moves the probe's plain AMQP
 * bytes between the socketpair and the TLS connection until either side
 * closes. The master speaks AMQP on the socketpair as it would on a socket.
 */
#ifndef C2A_TLS_RELAY_H
#define C2A_TLS_RELAY_H

/* Connect and handshake together get this long; the probe itself gives up on
 * a connection after five seconds, so the relay's reason arrives first. */
#define TLS_RELAY_TIMEOUT_MS 4000
/* The longest first line a relay writes, newline included. */
#define TLS_RELAY_LINE_MAX 512

struct tls_relay_args {
    int fd; /* the relay's end of the socketpair */
    const char *host;
    int port;
    const char *ca;   /* CA file; "" = the system's store */
    const char *cert; /* client certificate and key; "" = none */
    const char *key;
    int verify; /* 0: no check of the chain or the host name */
    int timeout_ms;
};

struct tls_relay_api {
    /* Runs in the relay process and never returns: it _exit()s. */
    void (*run)(const struct tls_relay_args *a);
};

#define TLS_RELAY_API_SYMBOL "c2a_tls_relay_api"

#endif
