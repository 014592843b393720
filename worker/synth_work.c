/* The parts of synth.h that both sides use: the worker frees what the engine
 * child's answers carried, and runs an app's handle() in an app's engine child
 * (which loads no speech engine). */
#include "synth.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

void synth_run_app(struct synth_work *w)
{
    int64_t t0 = now_mono_ms();
    w->app->handle(w->app_state, &w->app_job, &w->app_result);
    w->synth_ms = now_mono_ms() - t0;
    w->ok = w->app_result.status == C2A_OK;
    w->permanent = w->app_result.status == C2A_FAIL_PERMANENT;
    if (!w->ok) {
        strlcpy_c2a(w->code, w->app_result.code[0] ? w->app_result.code : "app_failed",
                    sizeof(w->code));
        strlcpy_c2a(w->message, w->app_result.message, sizeof(w->message));
    }
}

void synth_free_pieces(char **pieces, int n)
{
    for (int i = 0; pieces && i < n; i++)
        free(pieces[i]);
    free(pieces);
}

void synth_work_clear_out(struct synth_work *w)
{
    free(w->marks_json);
    free(w->spoken_text);
    synth_free_pieces(w->pieces, w->n_pieces);
    free(w->app_result.json);
    w->marks_json = w->spoken_text = NULL;
    w->pieces = NULL;
    w->n_pieces = 0;
    w->app_result = (struct c2a_result){0};
    w->ok = w->permanent = w->engine_died = w->timed_out = 0;
    w->code[0] = w->message[0] = '\0';
    w->enc = (struct encoded){0};
    w->synth_ms = w->encode_ms = 0;
}
