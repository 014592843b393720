/*
 * A worker process, entered in the child right after the master forks it.
 */
#ifndef C2A_WORKER_H
#define C2A_WORKER_H

#include "../common/config.h"
#include "../common/scoreboard.h"

#include <signal.h>
#include <sys/types.h>

/* Exit status of a worker that could not start (bad app, privileges): the master
 * counts it as a boot failure and backs off. */
#define WORKER_EXIT_BOOT 3

struct worker_args {
    const struct config *cfg; /* the child's copy of the master's configuration */
    struct scoreboard *sb;
    int slot;
    pid_t master_pid;
    sigset_t sigmask;         /* the mask to restore once handlers are in place */
};

/* Run the worker until it is told to stop; exits the process. */
void worker_main(const struct worker_args *a) __attribute__((noreturn));

#endif
