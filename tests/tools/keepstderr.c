/* keepstderr.so: preloaded by the integration tests (tests/integration/conftest.py)
 * into the programs they start from a sanitizer build.
 *
 * GCC links ASan and UBSan as two runtimes, each with its own copy of
 * sanitizer_common. The exported __sanitizer_set_report_path of the first one
 * loaded (libasan) serves both, so libubsan's report file is never set: UBSan
 * ignores log_path and always writes to fd 2 (GCC PR 94328; checked with gcc 12.2).
 * A master started with -D points fd 2 at /dev/null once it has detached, and
 * with it every worker and re-executed master it starts later: their UBSan
 * reports would be lost. Here dup2()/dup3() of /dev/null onto fd 2 does nothing,
 * so fd 2 stays the file the test gave the daemon, and the test reads it.
 *
 * Only processes that carry a sanitizer runtime are affected; the shell of the
 * init script and the tools it runs see the plain calls. Built without
 * sanitizers, and preloaded before libasan (hence verify_asan_link_order=0):
 * libasan does not intercept dup2 or dup3, so nothing of ASan is displaced. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int sanitized(void)
{
    return dlsym(RTLD_DEFAULT, "__asan_init") != NULL ||
           dlsym(RTLD_DEFAULT, "__ubsan_handle_add_overflow") != NULL;
}

static int is_dev_null(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && S_ISCHR(a.st_mode) && stat("/dev/null", &b) == 0 &&
           a.st_rdev == b.st_rdev;
}

/* What the call would have returned; fd 2 is left as it is. */
static int kept(int oldfd, int newfd)
{
    if (fcntl(oldfd, F_GETFD) < 0)
        return -1; /* EBADF, as the real call would say */
    return newfd;
}

int dup2(int oldfd, int newfd)
{
    static int (*real)(int, int);
    if (!real)
        real = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (newfd == STDERR_FILENO && oldfd != newfd && is_dev_null(oldfd) && sanitized())
        return kept(oldfd, newfd);
    return real(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags)
{
    static int (*real)(int, int, int);
    if (!real)
        real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (newfd == STDERR_FILENO && oldfd != newfd && is_dev_null(oldfd) && sanitized())
        return kept(oldfd, newfd);
    return real(oldfd, newfd, flags);
}
