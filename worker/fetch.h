/*
 * HTTP transfers of a worker: libcurl's multi interface driven by the worker's
 * libevent loop (a libevent event per socket libcurl asks about, one timer), so
 * any number of fetches, uploads and callbacks run at once and none of them
 * blocks the loop or the synthesis thread.
 *
 * Every transfer gets the same guard rails: http and https only (redirects
 * included), at most 5 redirects when following them, connect and total
 * timeouts, a response size cap counted as bytes arrive, no proxy from the
 * environment, and the address policy of `[fetch] allow_private` checked on the
 * address of every connection libcurl opens (redirects and DNS answers
 * included).
 *
 * Loop thread only. The done callback runs from the loop, never from inside
 * fetch_start(); the fetch is freed after it returns.
 */
#ifndef C2A_FETCH_H
#define C2A_FETCH_H

#include <stddef.h>

struct event_base;
struct config;
struct fetcher;
struct fetch;

enum fetch_method { FETCH_GET, FETCH_PUT, FETCH_POST };

struct fetch_req {
    enum fetch_method method;
    const char *url;
    const char *accept;        /* Accept header, GET */
    const char *content_type;  /* of the request body, PUT/POST */
    const char *body;          /* POST: copied */
    size_t body_len;
    const char *upload_path;   /* PUT: this file is streamed */
    const char *bearer;        /* Authorization: Bearer ..., or NULL */
    size_t max_bytes;          /* response cap */
    long timeout_s;            /* whole transfer */
    int follow_redirects;
    int trusted;               /* a URL from the configuration: no address policy */
};

struct fetch_result {
    int ok;              /* the transfer finished with a 2xx status */
    int transient;       /* on failure: a retry may succeed (timeouts, 5xx, 408, 429) */
    int too_large;       /* the response passed max_bytes */
    long status;         /* HTTP status, 0 when there was no response */
    char error[320];     /* on failure: why, for a person */
    char *body;          /* the response (NUL-terminated); take it by setting NULL */
    size_t len;
    char content_type[160];
};

typedef void (*fetch_done_fn)(void *arg, struct fetch_result *r);

/* NULL with a reason when libcurl cannot start. */
struct fetcher *fetcher_new(struct event_base *base, const struct config *cfg, char *err,
                            size_t errlen);
/* Cancels whatever is in flight without calling back. */
void fetcher_free(struct fetcher *f);

struct fetch *fetch_start(struct fetcher *f, const struct fetch_req *req, fetch_done_fn done,
                          void *arg);
/* Stop a transfer; its callback is not called. */
void fetch_cancel(struct fetch *x);
/* Transfers in flight. */
int fetcher_active(const struct fetcher *f);

#endif
