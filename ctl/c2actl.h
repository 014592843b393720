/*
 * What c2actl's files share: the options, and the error, number and broker
 * helpers of c2actl.c that the dead-letter commands (dead.c) use too.
 */
#ifndef C2A_CTL_H
#define C2A_CTL_H

#include <amqp.h>
#include <stddef.h>

struct config;

#define DEAD_MAX_IDS 256

struct opts {
    const char *config;
    const char *config_read; /* the file read, -c or the default, for messages */
    const char *server;
    const char *token;
    const char *url;
    const char *queue;
    int json;
    /* submit */
    const char *text, *ssml, *file, *fetch, *id, *voice, *format, *engine, *upload_url,
        *callback_url;
    int sample_rate, wait, timeout, marks;
    const char *scale; /* scale N */
    /* dead VERB QUEUE [ID] */
    const char *args[3];
    int nargs;
    const char *ids[DEAD_MAX_IDS];
    int nids;
    const char *code;
    int all;
    long limit;
};

/* One error, as text on stderr or, with --json, as {"error": {code, message}}
 * on stdout; returns rc for the caller to return. */
int fail(const struct opts *o, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A whole-string integer in [min, max], or -1. */
long number(const char *s, long min, long max);
/* 0 for a normal reply, else the error reported (fail) and 1. */
int amqp_failed(const struct opts *o, amqp_rpc_reply_t r, const char *what);
/* The first broker of the list (--url, else the configuration's failover list)
 * that takes us, as the workers would; NULL with the error reported. */
amqp_connection_state_t open_broker(const struct opts *o, const struct config *cfg);

/* dead.c: c2actl dead list|show|requeue|purge; returns the exit status. */
int cmd_dead(const struct opts *o, const struct config *cfg);

#endif
