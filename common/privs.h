/*
 * Becoming the configured unprivileged user: what a worker does right after its
 * fork, and what `c2a-worker -t` does in a throwaway child to check the output
 * directory and TLS files as the workers will see them.
 */
#ifndef C2A_PRIVS_H
#define C2A_PRIVS_H

#include <stddef.h>

struct config;

/* When `user` is set and we are root: take its groups, then its uid (the
 * `group` key replaces its primary group). 0 when done or nothing to do; -1
 * with the reason in err. Irreversible: call it in a process of its own. */
int privs_drop(const struct config *cfg, char *err, size_t errlen);

#endif
