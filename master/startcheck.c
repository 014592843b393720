/*
 * What `c2a-worker -t` checks beyond the file itself: what start and the
 * workers will need, so that a configuration that passes -t does not fail at
 * start (systemd's ExecStartPre and ExecReload, the init script's restart and
 * reload all run -t first).
 *
 * The master's own needs are checked as this process: the log file and the pid
 * file can be opened. The workers' are checked as the workers will be: in a
 * throwaway child that drops to `user` the way a worker does (common/privs.c),
 * the output directory can be made and written, and the TLS files read. Then
 * the app is loaded and its ABI checked (its init is not run), and for the
 * speech app the default voice is looked up in espeak-ng's installed list
 * (the engine object is loaded for that, as an engine child would).
 *
 * Nothing is created: a missing file or directory passes when the nearest
 * existing directory above it is writable.
 */
#include "master.h"
#include "../common/config.h"
#include "../common/pkglib.h"
#include "../common/privs.h"
#include "../common/util.h"
#include "../worker/app.h"
#include "../worker/engine_api.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct check {
    const char *file; /* the configuration's path, at the head of each message */
    config_report_fn report;
    void *ctx;
    int problems;
};

static void problem(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct check *c, const char *fmt, ...)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s: ", c->file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    c->report(c->ctx, msg);
    c->problems++;
}

/* The nearest directory at or above path that exists; 0, or -1 with errno. */
static int existing_ancestor(const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", path);
    for (;;) {
        struct stat st;
        if (stat(out, &st) == 0)
            return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
        if (errno != ENOENT)
            return -1;
        char *slash = strrchr(out, '/');
        if (!slash)
            snprintf(out, outlen, ".");
        else if (slash == out)
            out[1] = '\0';
        else
            *slash = '\0';
    }
}

/* A file this process will open for writing (created if missing). */
static void check_file_writable(struct check *c, const char *key, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            problem(c, "%s: %s is a directory", key, path);
        else if (access(path, W_OK) < 0)
            problem(c, "%s: cannot write %s: %s", key, path, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        problem(c, "%s: %s: %s", key, path, strerror(errno));
        return;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        slash[slash == dir] = '\0';
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        problem(c, "%s: cannot create %s: no directory %s", key, path, dir);
    else if (access(dir, W_OK | X_OK) < 0)
        problem(c, "%s: cannot create %s in %s: %s", key, path, dir, strerror(errno));
}

/* In the child that became the workers' user: one line per problem on fd. */
static void worker_side(const struct config *cfg, int fd)
{
    char err[512];
    if (privs_drop(cfg, err, sizeof(err)) < 0) {
        dprintf(fd, "user: %s\n", err);
        return;
    }
    char as[128] = "";
    if (cfg->user[0] && getuid() != 0)
        snprintf(as, sizeof(as), " (as user %s)", cfg->user);
    char dir[PATH_MAX];
    if (existing_ancestor(cfg->output_dir, dir, sizeof(dir)) < 0)
        dprintf(fd, "dir: %s: %s%s\n", cfg->output_dir, strerror(errno), as);
    else if (access(dir, W_OK | X_OK) < 0)
        dprintf(fd, "dir: cannot %s %s: %s%s\n",
                strcmp(dir, cfg->output_dir) == 0 ? "write in" : "create the directory under",
                dir, strerror(errno), as);
    const char *tls[] = {cfg->tls_ca, cfg->tls_cert, cfg->tls_key};
    const char *names[] = {"tls_ca", "tls_cert", "tls_key"};
    for (size_t i = 0; i < ARRAY_LEN(tls); i++)
        if (tls[i][0] && access(tls[i], R_OK) < 0)
            dprintf(fd, "%s: cannot read %s: %s%s\n", names[i], tls[i], strerror(errno), as);
}

/* Fork, check as the workers' user, and report what the child found. */
static void check_as_worker(struct check *c, const struct config *cfg)
{
    int p[2];
    if (pipe(p) < 0) {
        problem(c, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        problem(c, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        worker_side(cfg, p[1]);
        _exit(0);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char line[1024];
    while (in && fgets(line, sizeof(line), in)) {
        line[strcspn(line, "\n")] = '\0';
        problem(c, "%s", line);
    }
    if (in)
        fclose(in);
    else
        close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* The default voice, looked up by the speech engine an engine child loads. */
static void check_voice(struct check *c, const struct config *cfg)
{
    char err[512];
    void *dl = pkglib_open(ENGINE_LIB, err, sizeof(err));
    const struct engine_api *api = dl ? dlsym(dl, ENGINE_API_SYMBOL) : NULL;
    if (!api || api->version != ENGINE_API_VERSION) {
        problem(c, "the speech engine %s cannot be loaded: %s", ENGINE_LIB,
                dl ? "not of this version" : err);
        return;
    }
    struct synth *s = api->synth_init(cfg->allow_mbrola, err, sizeof(err));
    if (!s)
        problem(c, "espeak-ng does not start: %s", err);
    else if (api->voice_check(s, cfg->voice, err, sizeof(err)) < 0)
        problem(c, "%s", err);
    api->synth_free(s);
}

int startcheck_run(const struct config *cfg, config_report_fn report, void *ctx)
{
    struct check c = {cfg->path ? cfg->path : "(config)", report, ctx, 0};
    if (cfg->log_file[0] && strcmp(cfg->log_file, "-") != 0 && strcmp(cfg->log_file, "syslog") != 0)
        check_file_writable(&c, "log_file", cfg->log_file);
    if (cfg->pidfile[0])
        check_file_writable(&c, "pidfile", cfg->pidfile);
    check_as_worker(&c, cfg);
    char err[512];
    if (app_check(cfg->app, err, sizeof(err)) < 0)
        problem(&c, "%s", err);
    else if (strcmp(cfg->app, "builtin:speech") == 0 && strcmp(cfg->engine, "espeak") == 0)
        check_voice(&c, cfg);
    return c.problems;
}
