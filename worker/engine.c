#include "engine.h"
#include "captions.h"
#include "engine_api.h"
#include "../common/backoff.h"
#include "../common/log.h"
#include "../common/pkglib.h"
#include "../common/util.h"
#include "outfile.h"
#include "frame.h"
#include "http_api.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Message types. */
enum { MSG_READY = 1, MSG_WORK = 2, MSG_RESULT = 3, MSG_PROGRESS = 4 };

enum engine_state { EN_STARTING, EN_IDLE, EN_BUSY, EN_DEAD };

#define READY_TIMEOUT_MS 60000
#define REAP_POLL_MS 5
#define REAP_KILL_AFTER 100 /* polls (half a second) before SIGKILL */
#define RESPAWN_BASE_MS 100
#define RESPAWN_MAX_MS 30000

struct engine {
    struct engine_env env;
    struct engine_callbacks cb;
    pid_t worker_pid;
    pid_t pid;
    struct bufferevent *bev;
    enum engine_state state;
    struct synth_work *work; /* on the child */
    int timed_out;           /* the child was killed for job_timeout */
    unsigned boot_failures;  /* children that died before they were ready, in a row */
    int reap_polls;
    struct event *job_timer;
    struct event *reap_timer;
    struct event *respawn_timer;
    struct wbuf out;
};

/* ---- the messages ---- */

static void put_int(struct wbuf *w, int v)
{
    wbuf_u32(w, (uint32_t)v);
}

static int get_int(struct rbuf *r)
{
    return (int)(int32_t)rbuf_u32(r);
}

static void encode_work(struct wbuf *b, const struct synth_work *w)
{
    frame_begin(b, MSG_WORK);
    put_int(b, w->kind);
    put_int(b, w->app != NULL);
    if (w->app) {
        wbuf_str(b, w->app_job.id);
        wbuf_bytes(b, w->app_job.body, w->app_job.body_len);
        put_int(b, w->app_job.attempt);
    } else {
        const struct job *j = w->job;
        wbuf_str(b, j->id);
        put_int(b, j->source);
        wbuf_bytes(b, j->content, j->content_len);
        wbuf_str(b, j->voice);
        wbuf_str(b, j->format);
        put_int(b, j->sample_rate);
        put_int(b, j->rate);
        put_int(b, j->pitch);
        put_int(b, j->volume);
        put_int(b, j->marks);
        wbuf_str(b, j->output);
        wbuf_str(b, w->tmp_tag);
        put_int(b, j->engine);
        put_int(b, j->include_text);
        put_int(b, j->progress);
        put_int(b, j->captions);
        put_int(b, j->cache);
        wbuf_str(b, w->cache_key);
        wbuf_i64(b, (int64_t)llround(j->loudness * 1000));
        wbuf_i64(b, (int64_t)llround(j->true_peak * 1000));
        for (int t = 0; t < JOB_TAGS; t++)
            wbuf_str(b, j->tags[t] ? j->tags[t] : "");
        put_int(b, w->max_chars);
        wbuf_i64(b, (int64_t)w->piece_max);
        put_int(b, w->raw != NULL);
        wbuf_bytes(b, w->raw, w->raw ? w->raw_len : 0);
        wbuf_str(b, w->raw_type);
        put_int(b, w->n_wavs);
        for (int i = 0; i < w->n_wavs; i++)
            wbuf_bytes(b, w->wavs[i].data, w->wavs[i].len);
        put_int(b, w->n_texts);
        for (int i = 0; i < w->n_texts; i++)
            wbuf_str(b, w->texts[i]);
    }
    frame_end(b);
}

/* In the child: the work in r, pointing into the payload where it can. Returns
 * -1 on a malformed message. */
static int decode_work(struct rbuf *r, struct synth_work *w, struct job *j)
{
    w->kind = (enum synth_kind)get_int(r);
    int is_app = get_int(r);
    if (is_app) {
        w->app_job.id = rbuf_strdup(r, 0);
        size_t n;
        const char *body = rbuf_bytes(r, &n);
        char *copy = xmalloc(n + 1); /* an app gets its body NUL-terminated */
        memcpy(copy, body, n);
        copy[n] = '\0';
        w->app_job.body = copy;
        w->app_job.body_len = n;
        w->app_job.attempt = get_int(r);
        return r->bad ? -1 : 0;
    }
    rbuf_strcpy(r, j->id, sizeof(j->id));
    j->source = (enum job_source)get_int(r);
    size_t n;
    const char *content = rbuf_bytes(r, &n);
    j->content = xmalloc(n + 1);
    memcpy(j->content, content, n);
    j->content[n] = '\0';
    j->content_len = n;
    rbuf_strcpy(r, j->voice, sizeof(j->voice));
    rbuf_strcpy(r, j->format, sizeof(j->format));
    j->sample_rate = get_int(r);
    j->rate = get_int(r);
    j->pitch = get_int(r);
    j->volume = get_int(r);
    j->marks = get_int(r);
    rbuf_strcpy(r, j->output, sizeof(j->output));
    w->tmp_tag = rbuf_strdup(r, 1);
    j->engine = (enum job_engine)get_int(r);
    j->include_text = get_int(r);
    j->progress = get_int(r);
    j->captions = get_int(r) & (CAPTIONS_VTT | CAPTIONS_SRT);
    j->cache = get_int(r) != 0;
    rbuf_strcpy(r, w->cache_key, sizeof(w->cache_key));
    j->loudness = (double)rbuf_i64(r) / 1000;
    j->true_peak = (double)rbuf_i64(r) / 1000;
    for (int t = 0; t < JOB_TAGS; t++)
        j->tags[t] = rbuf_strdup(r, 1);
    w->job = j;
    w->max_chars = get_int(r);
    w->piece_max = (size_t)rbuf_i64(r);
    int has_raw = get_int(r);
    w->raw = rbuf_bytes(r, &w->raw_len);
    if (!has_raw)
        w->raw = NULL;
    w->raw_type = rbuf_strdup(r, 0);
    int n_wavs = get_int(r);
    if (n_wavs < 0 || (size_t)n_wavs > r->left / 4)
        return -1;
    struct wav_part *wavs = xcalloc((size_t)n_wavs + 1, sizeof(*wavs));
    for (int i = 0; i < n_wavs; i++) {
        size_t len;
        wavs[i].data = (char *)rbuf_bytes(r, &len);
        wavs[i].len = len;
    }
    w->wavs = wavs;
    w->n_wavs = n_wavs;
    int n_texts = get_int(r);
    if (n_texts < 0 || (size_t)n_texts > r->left / 4)
        return -1;
    char **texts = xcalloc((size_t)n_texts + 1, sizeof(*texts));
    for (int i = 0; i < n_texts; i++)
        texts[i] = rbuf_strdup(r, 0);
    w->texts = texts;
    w->n_texts = n_texts;
    return r->bad ? -1 : 0;
}

static void encode_result(struct wbuf *b, const struct synth_work *w)
{
    frame_begin(b, MSG_RESULT);
    put_int(b, w->ok);
    put_int(b, w->permanent);
    wbuf_str(b, w->code);
    wbuf_str(b, w->message);
    wbuf_i64(b, w->synth_ms);
    wbuf_i64(b, w->encode_ms);
    const struct encoded *e = &w->enc;
    wbuf_str(b, e->path);
    put_int(b, e->sample_rate);
    put_int(b, e->channels);
    wbuf_i64(b, e->duration_ms);
    wbuf_i64(b, (int64_t)e->bytes);
    wbuf_str(b, e->sha256);
    wbuf_str(b, w->marks_json);
    put_int(b, w->captions_written);
    put_int(b, w->levelled);
    put_int(b, w->cached);
    wbuf_str(b, w->cache_key);
    wbuf_i64(b, isfinite(w->loudness_lufs) ? (int64_t)llround(w->loudness_lufs * 1000) : INT64_MIN);
    wbuf_i64(b, isfinite(w->true_peak_dbtp) ? (int64_t)llround(w->true_peak_dbtp * 1000) : INT64_MIN);
    put_int(b, w->spoken_text != NULL);
    wbuf_str(b, w->spoken_text);
    put_int(b, w->n_pieces);
    for (int i = 0; i < w->n_pieces; i++)
        wbuf_str(b, w->pieces[i]);
    put_int(b, w->app_result.status);
    wbuf_str(b, w->app_result.code);
    wbuf_str(b, w->app_result.message);
    wbuf_str(b, w->app_result.json);
    frame_end(b);
}

/* In the worker: the child's answer into w's out fields; -1 when malformed. */
static int decode_result(struct rbuf *r, struct synth_work *w)
{
    w->ok = get_int(r);
    w->permanent = get_int(r);
    rbuf_strcpy(r, w->code, sizeof(w->code));
    rbuf_strcpy(r, w->message, sizeof(w->message));
    w->synth_ms = rbuf_i64(r);
    w->encode_ms = rbuf_i64(r);
    struct encoded *e = &w->enc;
    rbuf_strcpy(r, e->path, sizeof(e->path));
    e->sample_rate = get_int(r);
    e->channels = get_int(r);
    e->duration_ms = rbuf_i64(r);
    e->bytes = (uint64_t)rbuf_i64(r);
    rbuf_strcpy(r, e->sha256, sizeof(e->sha256));
    /* What a step does not produce stays as an earlier step left it (the http
     * engine's text, kept from preparing to rendering). */
    char *marks = rbuf_strdup(r, 1);
    if (marks) {
        free(w->marks_json);
        w->marks_json = marks;
    }
    w->captions_written = get_int(r) & (CAPTIONS_VTT | CAPTIONS_SRT);
    int levelled = get_int(r);
    w->cached = get_int(r) != 0;
    rbuf_strcpy(r, w->cache_key, sizeof(w->cache_key));
    int64_t lufs = rbuf_i64(r), tp = rbuf_i64(r);
    w->levelled = levelled;
    w->loudness_lufs = lufs == INT64_MIN ? -HUGE_VAL : (double)lufs / 1000;
    w->true_peak_dbtp = tp == INT64_MIN ? -HUGE_VAL : (double)tp / 1000;
    int has_spoken = get_int(r);
    char *spoken = rbuf_strdup(r, 0);
    if (has_spoken) {
        free(w->spoken_text);
        w->spoken_text = spoken;
    } else {
        free(spoken);
    }
    int n = get_int(r);
    if (n < 0 || (size_t)n > r->left / 4)
        return -1;
    if (n) {
        synth_free_pieces(w->pieces, w->n_pieces);
        w->pieces = xcalloc((size_t)n, sizeof(*w->pieces));
        w->n_pieces = n;
        for (int i = 0; i < n; i++)
            w->pieces[i] = rbuf_strdup(r, 0);
    }
    w->app_result.status = (enum c2a_status)get_int(r);
    rbuf_strcpy(r, w->app_result.code, sizeof(w->app_result.code));
    rbuf_strcpy(r, w->app_result.message, sizeof(w->app_result.message));
    free(w->app_result.json);
    w->app_result.json = rbuf_strdup(r, 1);
    return r->bad || r->left ? -1 : 0;
}

/* ---- the child ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* 1 when n bytes were read, 0 on end of file before any, -1 on error. */
static int read_all(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            return got ? -1 : 0;
        got += (size_t)k;
    }
    return 1;
}

/* No exec (mbrola, unless allowed), no sockets but AF_UNIX (syslog), no io_uring
 * (it can open sockets too). Only where the architecture is known. */
static void sandbox(int allow_exec)
{
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
#define C2A_AUDIT_ARCH AUDIT_ARCH_X86_64
#else
#define C2A_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif
    /* An allowed exec compares with a number no system call has. */
    uint32_t nr_execve = allow_exec ? 0x3fffffff : __NR_execve;
    uint32_t nr_execveat = allow_exec ? 0x3fffffff : __NR_execveat;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, C2A_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 7, 0), /* x32 */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr_execve, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr_execveat, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {(unsigned short)ARRAY_LEN(f), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        log_warn("engine: no seccomp filter (%s): running without it", strerror(errno));
#else
    (void)allow_exec;
#endif
}

static void send_ready(int fd, int ok, const char *err)
{
    struct wbuf b = {0};
    frame_begin(&b, MSG_READY);
    put_int(&b, ok);
    wbuf_str(&b, err);
    frame_end(&b);
    write_all(fd, b.data, b.len);
    wbuf_free(&b);
}

/* A url job's content and the http engine's text need content.c (c2a-http.so). */
static int work_needs_http(const struct synth_work *w)
{
    return !w->app && (w->raw || w->kind == SW_PREPARE);
}

/* The speech engine (engine_api.h), loaded by the child: NULL with a reason. */
static const struct engine_api *engine_api_load(char *err, size_t errlen)
{
    /* First the stand-in for espeak-ng's sound output (noaudio.c); without it
     * the real one is loaded, which costs memory and nothing else. */
    char why[256];
    if (!pkglib_open(NOAUDIO_LIB, why, sizeof(why)))
        log_debug("engine: %s: %s", NOAUDIO_LIB, why);
    size_t n = (size_t)snprintf(err, errlen, "cannot load the speech engine: ");
    void *dl = pkglib_open(ENGINE_LIB, err + n, n < errlen ? errlen - n : 0);
    if (!dl)
        return NULL;
    const struct engine_api *api = dlsym(dl, ENGINE_API_SYMBOL);
    if (!api || api->version != ENGINE_API_VERSION) {
        snprintf(err, errlen, "%s: no " ENGINE_API_SYMBOL " version %d", ENGINE_LIB,
                 ENGINE_API_VERSION);
        return NULL;
    }
    return api;
}

/* In the child, from the synthesis: a MSG_PROGRESS straight to the worker. */
static void child_progress(void *ctx, int64_t done, int64_t total, int64_t audio_ms)
{
    int fd = *(int *)ctx;
    struct wbuf b = {0};
    frame_begin(&b, MSG_PROGRESS);
    wbuf_i64(&b, done);
    wbuf_i64(&b, total);
    wbuf_i64(&b, audio_ms);
    frame_end(&b);
    if (write_all(fd, b.data, b.len) < 0)
        _exit(2);
    free(b.data);
}

static void child_run(struct engine *e, const struct engine_api *api, struct synth *s,
                      struct rbuf *r, struct wbuf *out, int fd)
{
    struct synth_work w = {0};
    struct job job = {0};
    if (decode_work(r, &w, &job) < 0) {
        log_error("engine: a malformed job message from the worker");
        _exit(2);
    }
    if (job.progress) {
        w.progress = child_progress;
        w.progress_ctx = &fd;
    }
    w.output_dir = e->env.cfg->output_dir;
    w.cache_max_mb = e->env.cfg->cache_max_mb;
    char *scope = xasprintf("%s %s", e->env.cfg->http_url ? e->env.cfg->http_url : "",
                            e->env.cfg->http_model ? e->env.cfg->http_model : "");
    w.http_scope = scope;
    w.max_duration_s = e->env.cfg->max_duration;
    if (w.app_job.body) {
        w.app = e->env.app;
        w.app_state = e->env.app_state;
        w.app_job.output_dir = e->env.cfg->output_dir;
    }
    char err[256];
    if (work_needs_http(&w) && !(w.http = http_api_load(err, sizeof(err)))) {
        strlcpy_c2a(w.code, "synth_failed", sizeof(w.code));
        strlcpy_c2a(w.message, err, sizeof(w.message));
    } else if (w.app) {
        synth_run_app(&w);
    } else if (api) {
        api->synth_run(s, &w);
    } else {
        /* A speech job for an app's engine: the worker never sends one. */
        strlcpy_c2a(w.code, "synth_failed", sizeof(w.code));
        strlcpy_c2a(w.message, "no speech engine in this worker", sizeof(w.message));
    }
    encode_result(out, &w);
    synth_work_clear_out(&w);
    free((char *)w.app_job.id);
    free((char *)w.app_job.body);
    free((char *)w.raw_type);
    free((char *)w.tmp_tag);
    free(scope);
    free((struct wav_part *)w.wavs);
    for (int i = 0; i < w.n_texts; i++)
        free(w.texts[i]);
    free((char **)w.texts);
    job_clear(&job);
}

static void child_main(struct engine *e, int fd) __attribute__((noreturn));

static void child_main(struct engine *e, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != e->worker_pid)
        _exit(0);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    log_set_role("engine");
    log_close_inherited_fds(fd);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);

    char err[256] = "";
    const struct engine_api *api = NULL;
    struct synth *s = NULL;
    if (e->env.espeak && (!(api = engine_api_load(err, sizeof(err))) ||
                          !(s = api->synth_init(e->env.cfg->allow_mbrola, err, sizeof(err))))) {
        send_ready(fd, 0, err);
        _exit(1);
    }
    /* Temporary files of workers that died while theirs were being written
     * (a live worker removes what its own dead engines left). */
    if (!e->env.app)
        outfile_clean_stale(e->env.cfg->output_dir);
    if (e->env.sandbox)
        sandbox(e->env.cfg->allow_mbrola);
    send_ready(fd, 1, "");

    struct wbuf out = {0};
    char *payload = NULL;
    for (;;) {
        char hdr[FRAME_HDR];
        int rc = read_all(fd, hdr, sizeof(hdr));
        if (rc == 0)
            break; /* the worker closed: stop */
        uint32_t type, len;
        if (rc > 0)
            frame_header(hdr, &type, &len);
        if (rc < 0 || type != MSG_WORK || len > FRAME_MAX) {
            log_error("engine: a bad message from the worker");
            _exit(2);
        }
        payload = xrealloc(payload, len ? len : 1);
        if (read_all(fd, payload, len) <= 0 && len)
            _exit(2);
        struct rbuf r = {payload, len, 0};
        child_run(e, api, s, &r, &out, fd);
        if (write_all(fd, out.data, out.len) < 0)
            _exit(2);
    }
    /* _exit, not exit: nothing of the worker's (atexit handlers, stdio buffers,
     * a leak check of memory it shares with us) is ours to run. */
    _exit(0);
}

/* ---- the worker's side ---- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* Fork a child. With wait_ready, block until it says it is ready (boot);
 * otherwise its READY comes through the loop. */
static int spawn(struct engine *e, int wait_ready, char *err, size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        child_main(e, sv[1]);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        return -1;
    }
    e->pid = pid;
    e->state = EN_STARTING;
    e->timed_out = 0;
    atomic_store(&e->env.slot->engine_pid, pid);
    if (wait_ready) {
        struct pollfd pfd = {sv[0], POLLIN, 0};
        char hdr[FRAME_HDR];
        uint32_t type = 0, len = 0;
        int rc = poll(&pfd, 1, READY_TIMEOUT_MS) == 1 ? read_all(sv[0], hdr, sizeof(hdr)) : -1;
        if (rc > 0)
            frame_header(hdr, &type, &len);
        char *payload = rc > 0 && type == MSG_READY && len < 4096 ? xmalloc(len + 1) : NULL;
        if (!payload || read_all(sv[0], payload, len) <= 0) {
            snprintf(err, errlen, "the engine child did not start");
        } else {
            struct rbuf r = {payload, len, 0};
            int ok = get_int(&r);
            rbuf_strcpy(&r, err, errlen);
            if (ok && !r.bad)
                e->state = EN_IDLE;
        }
        free(payload);
        if (e->state != EN_IDLE) {
            close(sv[0]);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            e->pid = 0;
            atomic_store(&e->env.slot->engine_pid, 0);
            return -1;
        }
    }
    evutil_make_socket_nonblocking(sv[0]);
    e->bev = bufferevent_socket_new(e->env.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(e->bev, on_read, NULL, on_event, e);
    bufferevent_enable(e->bev, EV_READ);
    log_debug("engine child %d started", (int)pid);
    return 0;
}

static void on_respawn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct engine *e = arg;
    char err[256];
    if (spawn(e, 0, err, sizeof(err)) < 0) {
        log_error("engine: %s", err);
        e->boot_failures++;
        uint32_t ms = backoff_delay_ms(e->boot_failures, RESPAWN_BASE_MS, RESPAWN_MAX_MS, 0, 0);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(e->respawn_timer, &tv);
    }
}

static const char *job_name(const struct synth_work *w)
{
    if (w->app)
        return w->app_job.id && w->app_job.id[0] ? w->app_job.id : "?";
    return w->job && w->job->id[0] ? w->job->id : "?";
}

/* The child is reaped: answer the job it had, then start another. */
static void died(struct engine *e, int status)
{
    char how[96];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof(how), "status 0x%x", status);
    atomic_store(&e->env.slot->engine_pid, 0);
    atomic_store(&e->env.slot->engine_rss_kb, 0);
    struct synth_work *w = e->work;
    int was_starting = e->state == EN_STARTING;
    e->work = NULL;
    e->pid = 0;
    e->state = EN_DEAD;
    evtimer_del(e->job_timer);

    uint32_t delay_ms = 0;
    if (was_starting) {
        e->boot_failures++;
        delay_ms = backoff_delay_ms(e->boot_failures, RESPAWN_BASE_MS, RESPAWN_MAX_MS, 0, 0);
        log_error("engine child died before it was ready (%s); next in %u ms", how, delay_ms);
    }
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(e->respawn_timer, &tv);
    if (!w) {
        if (!was_starting)
            log_warn("engine child died while idle (%s)", how);
        return;
    }
    w->ok = 0;
    w->permanent = 0;
    w->engine_died = 1;
    w->timed_out = e->timed_out;
    if (e->timed_out) {
        atomic_fetch_add(&e->env.slot->engine_timeouts, 1);
        strlcpy_c2a(w->code, "timeout", sizeof(w->code));
        snprintf(w->message, sizeof(w->message),
                 "the job ran past job_timeout (%d s); its engine was killed",
                 e->env.cfg->job_timeout);
    } else {
        atomic_fetch_add(&e->env.slot->engine_crashes, 1);
        strlcpy_c2a(w->code, "crashed", sizeof(w->code));
        snprintf(w->message, sizeof(w->message), "the engine died on this job: %s", how);
    }
    log_warn("job %s: %s", job_name(w), w->message);
    e->cb.done(e->cb.arg, w);
}

static void try_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct engine *e = arg;
    int status = 0;
    pid_t r = waitpid(e->pid, &status, WNOHANG);
    if (r == 0) {
        /* Its socket closed before it became a zombie: a moment more, then make
         * sure (a child that closed its socket and lives on is no use). */
        if (++e->reap_polls == REAP_KILL_AFTER)
            kill(e->pid, SIGKILL);
        struct timeval tv = {0, REAP_POLL_MS * 1000};
        evtimer_add(e->reap_timer, &tv);
        return;
    }
    died(e, r < 0 ? 0 : status);
}

/* The socket is closed or broken: the child is dying or dead. */
static void lost(struct engine *e)
{
    if (e->bev) {
        bufferevent_free(e->bev);
        e->bev = NULL;
    }
    e->reap_polls = 0;
    try_reap(-1, 0, e);
}

/* The child said something it should not: it is corrupted. */
static void broken(struct engine *e, const char *why)
{
    log_error("engine child %d: %s; killing it", (int)e->pid, why);
    kill(e->pid, SIGKILL);
    lost(e);
}

static void on_job_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct engine *e = arg;
    if (e->state != EN_BUSY)
        return;
    log_warn("job %s ran past job_timeout (%d s): killing engine child %d", job_name(e->work),
             e->env.cfg->job_timeout, (int)e->pid);
    e->timed_out = 1;
    kill(e->pid, SIGKILL); /* its socket closes: on_event() reaps it */
}

/* One message from the child; -1 when the child was found broken. */
static int handle(struct engine *e, uint32_t type, struct rbuf *r)
{
    if (type == MSG_READY && e->state == EN_STARTING) {
        int ok = get_int(r);
        char err[256];
        rbuf_strcpy(r, err, sizeof(err));
        if (!ok || r->bad) {
            log_error("engine child %d cannot start: %s", (int)e->pid, err);
            kill(e->pid, SIGKILL); /* it exits anyway; its death backs off */
            return 0;
        }
        e->state = EN_IDLE;
        e->boot_failures = 0;
        e->cb.ready(e->cb.arg);
        return 0;
    }
    if (type == MSG_PROGRESS && e->state == EN_BUSY) {
        int64_t done = rbuf_i64(r), total = rbuf_i64(r), ms = rbuf_i64(r);
        if (r->bad || done < 0 || total < done || ms < 0) {
            broken(e, "a malformed progress message");
            return -1;
        }
        if (e->cb.progress)
            e->cb.progress(e->cb.arg, e->work, done, total, ms);
        return 0;
    }
    if (type == MSG_RESULT && e->state == EN_BUSY) {
        struct synth_work *w = e->work;
        if (decode_result(r, w) < 0) {
            synth_work_clear_out(w);
            broken(e, "a malformed result");
            return -1;
        }
        evtimer_del(e->job_timer);
        e->work = NULL;
        e->state = EN_IDLE;
        e->cb.done(e->cb.arg, w);
        return 0;
    }
    broken(e, "a message out of turn");
    return -1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct engine *e = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (e->bev == bev && evbuffer_get_length(in) >= FRAME_HDR) {
        char hdr[FRAME_HDR];
        uint32_t type, len;
        evbuffer_copyout(in, hdr, sizeof(hdr));
        frame_header(hdr, &type, &len);
        if (len > FRAME_MAX) {
            broken(e, "an oversized message");
            return;
        }
        if (evbuffer_get_length(in) < FRAME_HDR + (size_t)len)
            return;
        evbuffer_drain(in, FRAME_HDR);
        struct rbuf r = {(const char *)evbuffer_pullup(in, len), len, 0};
        /* handle() may free bev (a broken child): drain first, from a copy. */
        char *copy = xmalloc(len ? len : 1);
        if (len)
            memcpy(copy, r.p, len);
        evbuffer_drain(in, len);
        r.p = copy;
        int rc = handle(e, type, &r);
        free(copy);
        if (rc < 0)
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct engine *e = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        lost(e);
}

struct engine *engine_start(const struct engine_env *env, const struct engine_callbacks *cb,
                            char *err, size_t errlen)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    e->env = *env;
    e->cb = *cb;
    e->worker_pid = getpid();
    e->job_timer = evtimer_new(env->base, on_job_timeout, e);
    e->reap_timer = evtimer_new(env->base, try_reap, e);
    e->respawn_timer = evtimer_new(env->base, on_respawn, e);
    if (spawn(e, 1, err, errlen) < 0) {
        engine_free(e);
        return NULL;
    }
    return e;
}

int engine_idle(const struct engine *e)
{
    return e->state == EN_IDLE;
}

void engine_submit(struct engine *e, struct synth_work *w)
{
    e->work = w;
    e->state = EN_BUSY;
    e->timed_out = 0;
    encode_work(&e->out, w);
    bufferevent_write(e->bev, e->out.data, e->out.len);
    if (e->out.cap > (1u << 20))
        wbuf_free(&e->out); /* keep no large buffer between jobs */
    struct timeval tv = {e->env.cfg->job_timeout, 0};
    evtimer_add(e->job_timer, &tv);
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    if (e->bev)
        bufferevent_free(e->bev); /* the child reads end of file and exits */
    if (e->pid > 0) {
        struct timespec ts = {0, REAP_POLL_MS * 1000000L};
        int status;
        for (int i = 0; waitpid(e->pid, &status, WNOHANG) == 0; i++) {
            if (i == REAP_KILL_AFTER)
                kill(e->pid, SIGKILL);
            nanosleep(&ts, NULL);
        }
        atomic_store(&e->env.slot->engine_pid, 0);
    }
    event_free(e->job_timer);
    event_free(e->reap_timer);
    event_free(e->respawn_timer);
    wbuf_free(&e->out);
    free(e);
}
