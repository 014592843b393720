/*
 * The shared objects that come with the binary (c2a-pipeline.so, c2a-tls.so):
 * found beside the binary in a build tree, else in ../lib/c2a-worker from the
 * binary (installed under any PREFIX), else in PKGLIBDIR, so that a process
 * maps a library only when it loads the object that needs it.
 */
#ifndef C2A_PKGLIB_H
#define C2A_PKGLIB_H

#include <stddef.h>

/* dlopen() the object called name (RTLD_NOW | RTLD_LOCAL); NULL with
 * dlerror()'s reason in err. */
void *pkglib_open(const char *name, char *err, size_t errlen);

#endif
