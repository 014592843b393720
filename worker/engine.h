/*
 * The engine child of a worker. espeak-ng keeps global state and crashes on some
 * inputs (stack smashing, heap corruption): synthesis, encoding and the file run
 * in a child process that the worker forks, one job at a time, spoken to over a
 * socketpair with framed typed messages (frame.h). A crash, a hang past
 * job_timeout or a malformed answer costs the job on the engine only: the worker,
 * its AMQP connection and its other jobs go on, and the worker forks a new
 * child (with backoff when children die before they are ready).
 *
 * The child gives up what it does not need: it closes every inherited
 * descriptor, dumps no core, and under the built-in speech app a seccomp filter
 * refuses it exec and every socket but AF_UNIX (so espeak-ng can neither start
 * mbrola nor reach the network). It dies with its worker (PR_SET_PDEATHSIG).
 *
 * Everything here runs on the worker's loop and never blocks it, except
 * engine_start() (which waits for the first child to be ready: a boot failure
 * is reported there) and engine_free() (the worker is exiting).
 */
#ifndef C2A_ENGINE_H
#define C2A_ENGINE_H

#include "../common/config.h"
#include "../common/scoreboard.h"
#include "synth.h"

#include <stddef.h>

struct event_base;
struct engine;

struct engine_env {
    struct event_base *base;
    const struct config *cfg;
    struct sb_slot *slot;
    int espeak;                /* the child synthesizes with espeak-ng */
    int sandbox;               /* seccomp: no exec, no network sockets (the built-in speech app) */
    const struct c2a_app *app; /* an app's handle() runs in the child; NULL for speech */
    void *app_state;
};

struct engine_callbacks {
    /* A job handed over with engine_submit() is done: its outcome is in w's out
     * fields; w->engine_died when the child died on it. */
    void (*done)(void *arg, struct synth_work *w);
    /* A new child is ready for a job (after one died). */
    void (*ready)(void *arg);
    /* The job in hand (one that asked for progress) has come this far. */
    void (*progress)(void *arg, struct synth_work *w, int64_t done_chars, int64_t total_chars,
                     int64_t audio_ms);
    void *arg;
};

/* Fork the first child and wait until it is ready; NULL with a reason when it
 * cannot start (espeak-ng cannot initialize). */
struct engine *engine_start(const struct engine_env *env, const struct engine_callbacks *cb,
                            char *err, size_t errlen);
/* Whether a job can be handed over now (a child is up and has none). */
int engine_idle(const struct engine *e);
/* Hand over one job; w must stay valid until done() is called with it. */
void engine_submit(struct engine *e, struct synth_work *w);
/* End the child (it finishes nothing: call with no job in hand) and free. */
void engine_free(struct engine *e);

#endif
