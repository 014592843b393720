/* san_app does, on request, what the sanitizer pass must catch; see
 * tests/integration/test_sanitizer_watch.py. The job body says what: "overflow"
 * overflows a signed int (UBSan), "heap" writes past a heap block (ASan), "leak"
 * loses a block (LSan, when the worker exits); any other body succeeds. Built
 * with the tests' CFLAGS, so instrumented in a sanitizer build. */
#include "../../worker/c2a_app.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* volatile: the compiler must not see through what the job asks for. */
static volatile int big = INT_MAX;
static void *volatile lost;

static void san_handle(void *state, const struct c2a_job *job, struct c2a_result *res)
{
    (void)state;
    int n = 0;
    if (strcmp(job->body, "overflow") == 0) {
        n = big + (int)job->body_len;
    } else if (strcmp(job->body, "heap") == 0) {
        size_t len = job->body_len;
        char *p = malloc(len);
        if (p) {
            memset(p, 'x', len + 1);
            n = p[0];
            free(p);
        }
    } else if (strcmp(job->body, "leak") == 0) {
        lost = malloc(4096);
        lost = NULL;
    }
    res->json = malloc(64);
    if (res->json)
        snprintf(res->json, 64, "{\"n\":%d}", n);
}

const struct c2a_app san_app = {C2A_APP_ABI_VERSION, "sanapp", 0, 0, san_handle};
