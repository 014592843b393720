/*
 * Resolving the `app =` import string in a worker: builtin:NAME or
 * /path/lib.so:symbol (dlopen), then running the app's init and fini.
 */
#ifndef C2A_WORKER_APP_H
#define C2A_WORKER_APP_H

#include "c2a_app.h"

#include <stddef.h>

struct app_handle {
    const struct c2a_app *app;
    void *dl;
    void *state;
};

/* Load and init the app; 0, or -1 with a reason in err. */
int app_load(const char *spec, struct app_handle *h, char *err, size_t errlen);
void app_unload(struct app_handle *h);
/* What `c2a-worker -t` asks: can the app be loaded, and does it speak our ABI?
 * Its init is not run. 0, or -1 with a reason in err. */
int app_check(const char *spec, char *err, size_t errlen);

#endif
