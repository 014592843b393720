/* Loading c2a-http.so on first need; see http_api.h. */
#include "http_api.h"
#include "../common/log.h"
#include "../common/util.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

const struct http_api *http_api_load(char *err, size_t errlen)
{
    static const struct http_api *api;
    if (api)
        return api;
    /* Beside this object: the build tree or PKGLIBDIR, whichever we came from. */
    Dl_info info;
    char dir[PATH_MAX] = ".";
    if (dladdr((void *)http_api_load, &info) && info.dli_fname) {
        strlcpy_c2a(dir, info.dli_fname, sizeof(dir));
        strlcpy_c2a(dir, dirname(dir), sizeof(dir));
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/c2a-http.so", dir);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "cannot load HTTP support: %s", dlerror());
        return NULL;
    }
    api = dlsym(dl, HTTP_API_SYMBOL);
    if (!api) {
        snprintf(err, errlen, "%s has no " HTTP_API_SYMBOL, path);
        dlclose(dl);
        return NULL;
    }
    log_debug("loaded %s", path);
    return api; /* stays loaded until the worker exits */
}
