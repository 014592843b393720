/*
 * The job pipeline of one worker: deliveries from amqp.c, synthesis and encoding
 * on the synthesis thread, the result published with confirms, and only then the
 * ack. Built into c2a-pipeline.so, which the worker loads after fork; the shell
 * (worker.c) finds `c2a_pipeline_api` in it.
 */
#ifndef C2A_PIPELINE_H
#define C2A_PIPELINE_H

#include "c2a_app.h"
#include "../common/config.h"
#include "../common/scoreboard.h"

#include <stddef.h>

struct event_base;
struct pipeline;

struct pipeline_env {
    struct event_base *base;
    const struct config *cfg;
    struct scoreboard *sb;
    struct sb_slot *slot;
    int noop; /* builtin:noop: answer ok without synthesis */
    /* An app from a shared object: its handle() runs each job instead of the
     * speech pipeline. NULL for the built-in apps. */
    const struct c2a_app *app;
    void *app_state;
};

struct pipeline_api {
    /* Connect (asynchronously), start the synthesis thread; NULL with a reason
     * when the worker cannot work at all (a boot failure). */
    struct pipeline *(*start)(const struct pipeline_env *env, char *err, size_t errlen);
    /* Called on every heartbeat: follows the master's pause flag. */
    void (*tick)(struct pipeline *p);
    /* Graceful stop: stop consuming, finish the job in hand, hand back the jobs
     * not started, then call stopped(arg). Also used when recycling. */
    void (*stop)(struct pipeline *p, void (*stopped)(void *arg), void *arg);
    /* Tell whether the pipeline wants the worker replaced (max_jobs reached). */
    int (*recycle)(struct pipeline *p);
    void (*free)(struct pipeline *p);
};

#define PIPELINE_API_SYMBOL "c2a_pipeline_api"

#endif
