/*
 * c2a_app.h: the ABI between c2a-worker and a job handler ("app") loaded with
 * `app = /path/lib.so:symbol`. The symbol names a `const struct c2a_app`.
 *
 * Life cycle, in every worker process (never in the master):
 *   init(&state)   once after fork, before the worker takes jobs. Return 0, or -1
 *                  to make the worker exit as a boot failure (the master backs
 *                  off, and keeps the previous workers when reloading).
 *   handle(...)    once per job, on the worker's job thread: one job at a time,
 *                  never on the event loop, so it may block and use the CPU.
 *                  The server publishes the result and acks the message after.
 *   fini(state)    once when the worker stops cleanly.
 * init and fini may be NULL; an app without handle loads but consumes nothing.
 * A crash or hang in handle kills only the worker; the job is retried at most
 * max_attempts times in all and then dead-lettered with code "crashed".
 */
#ifndef C2A_APP_H
#define C2A_APP_H

#include <stddef.h>

#define C2A_APP_ABI_VERSION 2

struct c2a_job {
    const char *id;         /* the JSON "id" or the AMQP message id; may be "" */
    const char *body;       /* the message as published, NUL-terminated */
    size_t body_len;
    const char *output_dir; /* [output] dir, for apps that write files */
    int attempt;            /* 1 on the first attempt */
};

enum c2a_status { C2A_OK = 0, C2A_FAIL_PERMANENT = 1, C2A_FAIL_TRANSIENT = 2 };

struct c2a_result {
    enum c2a_status status; /* C2A_OK unless set */
    char code[32];          /* on failure: a stable error code, e.g. "bad_field" */
    char message[256];      /* on failure: for people */
    /* Optional, on success: a malloc'd JSON object whose members are added to the
     * result message (the server frees it). */
    char *json;
};

struct c2a_app {
    unsigned abi_version; /* C2A_APP_ABI_VERSION */
    const char *name;
    int (*init)(void **state);
    void (*fini)(void *state);
    void (*handle)(void *state, const struct c2a_job *job, struct c2a_result *result);
};

#endif
