/*
 * c2a-worker: command line, configuration check (-t), daemonizing (-D), and the
 * start-up order: config, log, control socket, pidfile, then workers.
 */
#include "master.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc" /* for the usage text; config.c has the same default */
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: c2a-worker [-c FILE] [-t | -T] [-D] [-w N] [-b ADDR] [-p PIDFILE] [-V] [-h]\n"
            "  -c FILE     configuration file (default: %s/c2a-worker.conf, or\n"
            "              conf/c2a-worker.conf beside a binary built in a checkout)\n"
            "  -t          check the configuration and what start needs, and exit\n"
            "              (0 good, 1 bad)\n"
            "  -T          as -t, then print the effective configuration (secrets\n"
            "              masked)\n"
            "  -D          run in the background (daemonize)\n"
            "  -w N        number of workers (overrides [workers] count)\n"
            "  -b ADDR     control socket, host:port or unix:/path (overrides control)\n"
            "  -p PIDFILE  pid file (overrides pidfile)\n"
            "  -V          print the version and exit\n"
            "  -h          print this help and exit\n",
            SYSCONFDIR);
}

/* libevent's own messages, in our log's format and levels instead of raw lines
 * on stderr; a fork inherits it (workers, engine children). */
static void libevent_log(int severity, const char *msg)
{
    enum log_level lvl = severity == EVENT_LOG_DEBUG ? LL_DEBUG
                         : severity == EVENT_LOG_MSG ? LL_INFO
                         : severity == EVENT_LOG_WARN ? LL_WARN
                                                       : LL_ERROR;
    log_msg(lvl, "libevent: %s", msg);
}

static void report_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "%s\n", msg);
}

/* -T: every key with its value in force (defaults filled in, overrides
 * applied, secrets and URL passwords masked), in the file's own syntax. */
static void print_config(const struct config *cfg)
{
    printf("# configuration file %s, as in force\n", cfg->path ? cfg->path : "(defaults)");
    const char *section = "";
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key *k = config_key_at(i);
        if (strcmp(k->section, section) != 0) {
            section = k->section;
            printf("%s[%s]\n", i ? "\n" : "", section);
        }
        if (k->type == CT_URL) {
            for (int u = 0; u < cfg->n_urls; u++) {
                char *masked = config_mask_url(cfg->urls[u]);
                printf("url = %s\n", masked);
                free(masked);
            }
            continue;
        }
        char *v = config_value_string(cfg, k);
        printf("%s = %s\n", k->name, v);
        free(v);
    }
}

/* Run in the background. The foreground process waits until the daemon reports
 * that it is serving (or has failed, printing why on the terminal's stderr) and
 * exits with 0 or 2 accordingly, so init scripts know whether start worked. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("c2a-worker: pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("c2a-worker: fork");
        exit(2);
    }
    if (pid > 0) {
        close(p[1]);
        char c;
        ssize_t n;
        do
            n = read(p[0], &c, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 2);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(2);
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        _exit(2);
    return p[1];
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The control socket handed over by a master that re-executed us (USR2), if it
 * is for the address we are configured with. */
static int inherited_control_fd(const struct config *cfg)
{
    const char *fds = getenv("C2A_CONTROL_FD");
    const char *addr = getenv("C2A_CONTROL_ADDR");
    int fd = -1;
    if (fds) {
        fd = atoi(fds);
        if (fd < 3 || fcntl(fd, F_GETFD) < 0)
            fd = -1;
        else if (!addr || strcmp(addr, cfg->control) != 0) {
            close(fd);
            fd = -1;
        }
    }
    unsetenv("C2A_CONTROL_FD");
    unsetenv("C2A_CONTROL_ADDR");
    return fd;
}

int main(int argc, char **argv)
{
    struct master m;
    memset(&m, 0, sizeof(m));
    m.pidfile.fd = -1;
    const char *config_arg = NULL;
    int test_only = 0, dump = 0, daemon_mode = 0;

    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tTDw:b:p:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_arg = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'T':
            test_only = dump = 1;
            break;
        case 'D':
            daemon_mode = 1;
            break;
        case 'w':
            m.cli_count = optarg;
            break;
        case 'b':
            m.cli_control = optarg;
            break;
        case 'p':
            m.cli_pidfile = optarg;
            break;
        case 'V':
            printf("c2a-worker %s\n", C2A_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "c2a-worker: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    char *path = config_arg ? xstrdup(config_arg) : config_default_path();
    char *abs = realpath(path, NULL);
    m.config_path = abs ? abs : xstrdup(path);
    free(path);

    m.cfg = config_load(m.config_path, report_stderr, NULL);
    if (m.cfg && master_apply_overrides(&m, m.cfg) < 0) {
        config_free(m.cfg);
        m.cfg = NULL;
    }
    if (test_only) {
        int ok = m.cfg && startcheck_run(m.cfg, report_stderr, NULL) == 0;
        printf("c2a-worker: configuration file %s test %s\n", m.config_path,
               ok ? "is successful" : "failed");
        if (ok && dump)
            print_config(m.cfg);
        config_free(m.cfg);
        free(m.config_path);
        return ok ? 0 : 1;
    }
    if (!m.cfg) {
        fprintf(stderr, "c2a-worker: configuration file %s has errors\n", m.config_path);
        free(m.config_path);
        return 1;
    }

    if (log_open(m.cfg->log_file, (enum log_level)m.cfg->log_level) < 0) {
        fprintf(stderr, "c2a-worker: log_file %s: %s\n", m.cfg->log_file, strerror(errno));
        return 2;
    }
    log_set_format((enum log_format)log_format_parse(m.cfg->log_format));
    event_set_log_callback(libevent_log);
    /* Until it serves, a failure is said on stderr too (master_run ends this). */
    log_echo_errors(1);
    int inherited = inherited_control_fd(m.cfg);
    const char *old = getenv("C2A_OLD_MASTER");
    if (old) {
        m.old_master_pid = (pid_t)atoi(old);
        unsetenv("C2A_OLD_MASTER");
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    m.self_exe = xstrdup(n > 0 ? (exe[n] = '\0', exe) : argv[0]);
    raise_fd_limit();

    int notify_fd = -1;
    if (daemon_mode && inherited < 0) {
        notify_fd = daemonize();
        m.daemonized = 1;
    }
    int rc = master_run(&m, inherited, notify_fd);

    pidfile_remove(&m.pidfile);
    config_free(m.cfg);
    free(m.config_path);
    free(m.self_exe);
    log_close();
    return rc;
}
