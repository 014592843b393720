/*
 * The pidfile is locked (flock) for as long as the master lives: a held lock means
 * a live master, whatever pid the file names, and a file whose lock nobody holds
 * is stale and taken over. The lock follows the inode, so after a USR2 rename to
 * "<pidfile>.oldbin" the old master keeps its lock and the new one locks the new
 * file.
 */
#include "master.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int pidfile_open(struct pidfile *pf, const char *path, char *err, size_t errlen)
{
    pf->fd = -1;
    pf->path = NULL;
    if (!path || !path[0])
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(err, errlen, "pidfile %s is held by a running c2a-worker (pid %s)", path,
                 buf[0] ? buf : "unknown");
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        snprintf(err, errlen, "pidfile %s: write: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    pf->fd = fd;
    pf->path = xstrdup(path);
    return 0;
}

int pidfile_rename(struct pidfile *pf, const char *newpath)
{
    if (!pf->path)
        return 0;
    if (rename(pf->path, newpath) < 0) {
        log_error("pidfile: rename %s to %s: %s", pf->path, newpath, strerror(errno));
        return -1;
    }
    free(pf->path);
    pf->path = xstrdup(newpath);
    return 0;
}

void pidfile_remove(struct pidfile *pf)
{
    if (pf->path && unlink(pf->path) < 0 && errno != ENOENT)
        log_warn("pidfile: unlink %s: %s", pf->path, strerror(errno));
    pidfile_close(pf);
}

void pidfile_close(struct pidfile *pf)
{
    if (pf->fd >= 0)
        close(pf->fd);
    pf->fd = -1;
    free(pf->path);
    pf->path = NULL;
}
