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
    /* A build tree has the objects beside the binary; an installed binary in
     * sbin has none there. */
    if (n > 0) {
        exe[n] = '\0';
        snprintf(path, sizeof(path), "%s/%s", dirname(exe), name);
        if (access(path, R_OK) < 0)
            n = 0;
    }
    if (n <= 0)
        snprintf(path, sizeof(path), "%s/%s", PKGLIBDIR, name);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        snprintf(err, errlen, "%s", dlerror());
    return dl;
}
