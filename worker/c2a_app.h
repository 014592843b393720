/*
 * c2a_app.h: the ABI between c2a-worker and a job handler ("app") loaded with
 * `app = /path/lib.so:symbol`. The symbol names a `const struct c2a_app`.
 *
 * Life cycle, in every worker process (never in the master):
 *   init(&state)   once after fork, before the worker takes jobs. Return 0, or -1
 *                  to make the worker exit as a boot failure (the master backs
 *                  off and keeps the previous workers when reloading).
 *   fini(state)    once when the worker stops cleanly.
 * Both may be NULL. The job-handling entry point joins this structure with the
 * job pipeline; until then the ABI version stays 1 and only grows at the end.
 */
#ifndef C2A_APP_H
#define C2A_APP_H

#define C2A_APP_ABI_VERSION 1

struct c2a_app {
    unsigned abi_version; /* C2A_APP_ABI_VERSION */
    const char *name;
    int (*init)(void **state);
    void (*fini)(void *state);
};

#endif
