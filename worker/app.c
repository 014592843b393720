#include "app.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The built-in apps: the pipeline itself serves them (speech, or noop's instant
 * ok), so they have no handle(). */
static const struct c2a_app builtin_speech = {C2A_APP_ABI_VERSION, "speech", NULL, NULL};
static const struct c2a_app builtin_noop = {C2A_APP_ABI_VERSION, "noop", NULL, NULL};

static const struct c2a_app *find_builtin(const char *name)
{
    if (strcmp(name, "speech") == 0)
        return &builtin_speech;
    if (strcmp(name, "noop") == 0)
        return &builtin_noop;
    return NULL;
}

/* Find the app and check its ABI, without running its init. */
static int app_resolve(const char *spec, struct app_handle *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (strncmp(spec, "builtin:", 8) == 0) {
        h->app = find_builtin(spec + 8);
        if (!h->app) {
            snprintf(err, errlen, "app %s: no such builtin", spec);
            return -1;
        }
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon) {
            snprintf(err, errlen, "app %s: expected /path/lib.so:symbol", spec);
            return -1;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%.*s", (int)(colon - spec), spec);
        h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h->dl) {
            snprintf(err, errlen, "app %s: %s", spec, dlerror());
            return -1;
        }
        h->app = dlsym(h->dl, colon + 1);
        if (!h->app) {
            snprintf(err, errlen, "app %s: %s", spec, dlerror());
            goto fail;
        }
        if (h->app->abi_version != C2A_APP_ABI_VERSION) {
            snprintf(err, errlen, "app %s: ABI version %u, this server speaks %u", spec,
                     h->app->abi_version, C2A_APP_ABI_VERSION);
            goto fail;
        }
    }
    return 0;
fail:
    dlclose(h->dl);
    memset(h, 0, sizeof(*h));
    return -1;
}

int app_load(const char *spec, struct app_handle *h, char *err, size_t errlen)
{
    if (app_resolve(spec, h, err, errlen) < 0)
        return -1;
    if (h->app->init && h->app->init(&h->state) != 0) {
        snprintf(err, errlen, "app %s: init failed", spec);
        if (h->dl)
            dlclose(h->dl);
        memset(h, 0, sizeof(*h));
        return -1;
    }
    return 0;
}

int app_check(const char *spec, char *err, size_t errlen)
{
    struct app_handle h;
    if (app_resolve(spec, &h, err, errlen) < 0)
        return -1;
    if (h.dl)
        dlclose(h.dl);
    return 0;
}

void app_unload(struct app_handle *h)
{
    if (h->app && h->app->fini)
        h->app->fini(h->state);
    if (h->dl)
        dlclose(h->dl);
    memset(h, 0, sizeof(*h));
}
