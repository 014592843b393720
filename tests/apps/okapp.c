/* Test apps for `app = /path/lib.so:symbol`.
 * ok_app writes each job's body, reversed, to <output dir>/<id>.rev and reports
 * its size; a body "fail-permanent" or "fail-transient" fails that way. */
#include "../../worker/c2a_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ok_init(void **state)
{
    static int calls;
    *state = &calls;
    return 0;
}

static void ok_handle(void *state, const struct c2a_job *job, struct c2a_result *res)
{
    int *calls = state;
    ++*calls;
    if (strstr(job->body, "fail-permanent")) {
        res->status = C2A_FAIL_PERMANENT;
        snprintf(res->code, sizeof(res->code), "bad_field");
        snprintf(res->message, sizeof(res->message), "the test app refuses this body");
        return;
    }
    if (strstr(job->body, "fail-transient")) {
        res->status = C2A_FAIL_TRANSIENT;
        snprintf(res->code, sizeof(res->code), "upstream_down");
        snprintf(res->message, sizeof(res->message), "try again (attempt %d)", job->attempt);
        return;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.rev", job->output_dir, job->id[0] ? job->id : "noid");
    FILE *f = fopen(path, "w");
    if (!f) {
        res->status = C2A_FAIL_TRANSIENT;
        snprintf(res->code, sizeof(res->code), "write_failed");
        return;
    }
    for (size_t i = job->body_len; i > 0; i--)
        fputc(job->body[i - 1], f);
    fclose(f);
    res->json = malloc(4200);
    snprintf(res->json, 4200, "{\"path\":\"%s\",\"bytes\":%zu,\"calls\":%d}", path, job->body_len,
             *calls);
}

const struct c2a_app ok_app = {C2A_APP_ABI_VERSION, "okapp", ok_init, 0, ok_handle};
const struct c2a_app wrong_abi_app = {999, "wrongabi", 0, 0, 0};
