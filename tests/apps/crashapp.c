/* A test app whose jobs fail the way a synthesis engine can: a body containing
 * "abort" aborts the process, "kill" dies by SIGKILL, "hang" never returns,
 * "nap" takes 3 seconds. Any
 * other body is answered ok with the process id that ran it, so a test can see
 * that neighbours of a crasher run in the same worker, on a new engine child. */
#include "../../worker/c2a_app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void crash_handle(void *state, const struct c2a_job *job, struct c2a_result *res)
{
    (void)state;
    if (strstr(job->body, "abort"))
        abort();
    if (strstr(job->body, "kill"))
        raise(SIGKILL);
    if (strstr(job->body, "hang"))
        for (;;)
            pause();
    if (strstr(job->body, "nap"))
        sleep(3);
    res->json = malloc(64);
    snprintf(res->json, 64, "{\"engine_pid\":%d}", (int)getpid());
}

const struct c2a_app crash_app = {C2A_APP_ABI_VERSION, "crashapp", 0, 0, crash_handle};
