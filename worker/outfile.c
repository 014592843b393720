#include "outfile.h"
#include "job.h"
#include "../common/log.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
/* The one-shot SHA-256 functions: deprecated in OpenSSL 3 in favour of EVP, but
 * EVP loads its providers and costs a worker about 3 MB of resident memory,
 * while these run the same SHA-NI code directly. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sha256_file(int fd, char hex[65], uint64_t *bytes)
{
    SHA256_CTX h;
    SHA256_Init(&h);
    unsigned char buf[65536];
    uint64_t total = 0;
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        SHA256_Update(&h, buf, (size_t)n);
        off += n;
        total += (uint64_t)n;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_Final(md, &h);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *bytes = total;
    return 0;
}

int outfile_flush_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

void outfile_tmp_path(char *out, size_t len, const char *dir, const char *tag, const char *name)
{
    if (tag)
        snprintf(out, len, "%s/" OUTFILE_TMP_DIR "/%s.%s", dir, tag, name);
    else
        snprintf(out, len, "%s/" OUTFILE_TMP_DIR "/%d.%s", dir, (int)getpid(), name);
}

int outfile_commit(const char *tmp, const char *path, int flags, struct encoded *out, char *err,
                   size_t errlen)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *what = "reading back";
    int rc = sha256_file(fd, out->sha256, &out->bytes);
    if (rc == 0 && (flags & OUTFILE_FLUSH)) {
        what = "fsync";
        rc = fsync(fd);
        /* Advice: a failure costs memory, never the file. */
        if (rc == 0 && (flags & OUTFILE_DROP))
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s %s: %s", what, tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0) {
        snprintf(err, errlen, "rename to %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Whether pid is a live process: a zombie (a writer killed a moment ago and not
 * yet reaped) is not. */
static int writer_alive(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 0;
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1; /* not ours to judge */
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close = strrchr(buf, ')');
    return !(close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X'));
}

void outfile_clean_stale(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" OUTFILE_TMP_DIR, dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '.' || pid <= 0)
            continue;
        if (writer_alive((pid_t)pid))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            log_info("removed %s/%s, left by a worker that died", path, de->d_name);
    }
    closedir(d);
}

void outfile_job_name(const struct job *job, char *out, size_t len)
{
    if (job->output[0])
        strlcpy_c2a(out, job->output, len);
    else
        snprintf(out, len, "%s.%s", job->id, job->format); /* the format is the extension */
}
