/* fsynctrace.so: preloaded by tests/integration/test_durability.py into the
 * daemon, it records the calls that make a file durable, in the order the
 * processes made them, so the test can check that a job's result was published
 * only after its file and its directory entry reached the disk.
 *
 *   C2A_FSYNC_TRACE=FILE      one line per call, appended:
 *                               fsync START END PATH      (fsync and fdatasync;
 *                                                         PATH of the descriptor)
 *                               rename TIME OLD NEW
 *                               fadvise TIME ADVICE PATH  (posix_fadvise;
 *                                                         ADVICE a number)
 *                             times are CLOCK_MONOTONIC seconds, the clock of
 *                             Python's time.monotonic()
 *   C2A_FSYNC_DIR_DELAY_MS=N  each fsync of a directory sleeps N ms first, so a
 *                             result published before the flush returned would
 *                             arrive before it
 *
 * Built without sanitizers (like keepstderr.so). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void trace(const char *line)
{
    const char *file = getenv("C2A_FSYNC_TRACE");
    if (!file)
        return;
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t n = write(fd, line, strlen(line)); /* one write: lines do not interleave */
    (void)n;
    close(fd);
}

static void fd_path(int fd, char *path, size_t len)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, len - 1);
    path[n > 0 ? n : 0] = '\0';
}

static int traced_sync(int fd, const char *name)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    char path[4096];
    fd_path(fd, path, sizeof(path));
    double start = now();
    struct stat st;
    const char *delay = getenv("C2A_FSYNC_DIR_DELAY_MS");
    if (delay && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct timespec ts = {0, atol(delay) * 1000000L};
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        nanosleep(&ts, NULL);
    }
    int rc = real(fd);
    char line[4200];
    snprintf(line, sizeof(line), "fsync %.6f %.6f %s\n", start, now(), path);
    trace(line);
    return rc;
}

int fsync(int fd)
{
    return traced_sync(fd, "fsync");
}

int fdatasync(int fd)
{
    return traced_sync(fd, "fdatasync");
}

int rename(const char *old, const char *new)
{
    int (*real)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int rc = real(old, new);
    if (rc == 0) {
        char line[8300];
        snprintf(line, sizeof(line), "rename %.6f %s %s\n", now(), old, new);
        trace(line);
    }
    return rc;
}

int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
    int (*real)(int, off_t, off_t, int) =
        (int (*)(int, off_t, off_t, int))dlsym(RTLD_NEXT, "posix_fadvise");
    char path[4096], line[4200];
    fd_path(fd, path, sizeof(path));
    snprintf(line, sizeof(line), "fadvise %.6f %d %s\n", now(), advice, path);
    trace(line);
    return real(fd, off, len, advice);
}
