#include "pkglib.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

void *pkglib_open(const char *name, char *err, size_t errlen)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    /* Beside the binary in a build tree; PREFIX/lib/c2a-worker from an installed
     * PREFIX/sbin or PREFIX/bin, wherever PREFIX is (make install PREFIX=,
     * DESTDIR staging, a moved tree); last, the directory compiled in. */
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        const char *const where[] = {"%s/%s", "%s/../lib/c2a-worker/%s"};
        for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
            snprintf(path, sizeof(path), where[i], dir, name);
            if (access(path, R_OK) == 0)
                goto found;
        }
    }
    snprintf(path, sizeof(path), "%s/%s", PKGLIBDIR, name);
found:;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        snprintf(err, errlen, "%s", dlerror());
    return dl;
}
