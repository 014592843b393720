/*
 * libFuzzer target: the master's control socket (master/control_http.c) on
 * libevent's evhttp, fed raw bytes as a client would send them.
 *
 * Each input gets a fresh event_base and a control server made by
 * control_open(), exactly as the master makes it, on a listening socket handed
 * in as if inherited (an abstract unix socket: nothing on disk, no TCP ports
 * in TIME_WAIT). A client connects, writes the input, and reads whatever comes
 * back while the loop runs in non-blocking rounds; when the server has been
 * quiet for a while the client half-closes, and the server then gets a few
 * more rounds to finish. Everything is freed before the next input, so
 * LeakSanitizer sees a leak of a single request.
 *
 * The master is a fake with a scoreboard of three workers, a control token
 * (seeds carry "Authorization: Bearer fuzz-token") and a queue probe with two
 * queues. The functions of master.c, children.c and broker_probe.c that the
 * handlers call are stand-ins below: reload is refused with a message, a scale
 * only sets the target, a stop only sets the state; the real ones fork,
 * signal and talk to the broker, which a fuzzer must not.
 */
#include "../../common/config.h"
#include "../../common/log.h"
#include "../../common/scoreboard.h"
#include "../../common/util.h"
#include "../../master/broker_probe.h"
#include "../../master/master.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define TOKEN "fuzz-token"
#define MAX_ROUNDS 512  /* loop rounds per input, all told */
#define QUIET_ROUNDS 16 /* rounds without an answer before the client half-closes */

/* ---- stand-ins for the master's other modules ---- */

struct broker_probe {
    struct probe_queue queues[2];
};

int probe_connected(const struct broker_probe *p)
{
    (void)p;
    return 0;
}

const char *probe_error(const struct broker_probe *p)
{
    (void)p;
    return "connection refused <&\"'>";
}

/* A queue with other arguments than the workers', for /healthz's reason. */
const struct probe_queue *probe_mismatch(const struct broker_probe *p)
{
    return p->queues[1].mismatch[0] ? &p->queues[1] : NULL;
}

const char *probe_url(const struct broker_probe *p)
{
    (void)p;
    return "amqp://guest:***@127.0.0.1:5672/%2f";
}

int probe_queue_count(const struct broker_probe *p)
{
    return (int)ARRAY_LEN(p->queues);
}

void probe_queue_get(const struct broker_probe *p, int i, struct probe_queue *out)
{
    *out = p->queues[i];
}

const char *exit_reason_name(enum exit_reason r)
{
    static const char *const names[] = {"crashed",     "killed",   "heartbeat",
                                        "job_timeout", "recycled", "boot_failed"};
    return (unsigned)r < ARRAY_LEN(names) ? names[r] : "unknown";
}

int master_reload(struct master *m, struct reload_errors *errors)
{
    (void)m;
    if (errors)
        errors->len = (size_t)snprintf(errors->text, sizeof(errors->text), "%s",
                                       "c2a.conf:3: count: out of range (1..256)\n"
                                       "c2a.conf:9: url: \"quoted\" <b>&amp;</b>");
    return -1;
}

int master_scale_to(struct master *m, int n)
{
    if (m->state != MS_RUNNING)
        return -1;
    m->target = n;
    return 0;
}

void master_stop(struct master *m, int graceful)
{
    m->state = graceful ? MS_STOPPING : MS_QUITTING;
}

/* ---- the fake master, made once ---- */

static struct master master;
static struct broker_probe probe;

static void fake_master(void)
{
    struct master *m = &master;
    m->cfg = config_defaults();
    char err[128];
    if (config_set(m->cfg, "master", "control_token", TOKEN, err, sizeof(err)) < 0)
        abort();
    m->config_path = xstrdup("/etc/c2a-worker.conf");
    /* No c2actl beside it: /dead/... answers 501 and never forks. */
    m->self_exe = xstrdup("/nonexistent/c2a-worker");
    m->sb = scoreboard_create(SCOREBOARD_SLOTS);
    if (!m->sb)
        abort();
    static const int states[] = {WS_IDLE, WS_BUSY, WS_BOOTING};
    for (int i = 0; i < (int)ARRAY_LEN(states); i++) {
        int slot = scoreboard_acquire(m->sb);
        struct sb_slot *s = scoreboard_slot(m->sb, slot);
        atomic_store(&s->pid, 1000 + i);
        atomic_store(&s->state, states[i]);
        atomic_store(&s->broker_connected, states[i] != WS_BOOTING);
        atomic_store(&s->heartbeat_mono_ms, now_mono_ms());
        atomic_store(&s->started_real_ms, now_real_ms());
        atomic_store(&s->jobs_ok, 41 + (unsigned)i);
        if (states[i] == WS_BUSY) {
            atomic_store(&s->job_started_mono_ms, now_mono_ms());
            slot_set_job(s, "job-<1>&\"2\"");
        }
        slot_observe_job(s, 1500000, 2000);
        char *queues[] = {"c2a.jobs"};
        slot_set_queues(s, queues, 1);
        slot_count_outcome(s, 0, JO_FAILED, "bad_json", 2000);
        slot_add_failure(s, "c2a.jobs", "j<1>", "bad_json", "not \"JSON\" & <b>", 0);
        m->children[i] = (struct child){.pid = 1000 + i,
                                        .slot = slot,
                                        .generation = 1,
                                        .spawned_mono_ms = now_mono_ms(),
                                        .kill_reason = -1};
        m->nchildren++;
    }
    m->restarts_by_reason[XR_CRASHED] = 2;
    m->started_real_ms = now_real_ms();

    probe.queues[0] = (struct probe_queue){
        .name = "c2a.jobs", .exists = 1, .messages = 7, .consumers = 2, .updated_mono_ms = 1};
    probe.queues[1] = (struct probe_queue){
        .name = "c2a.jobs.dead\"\n\\", .dead = 1, .exists = 1, .messages = -1, .consumers = -1,
        .mismatch = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' <&\">"};
    m->probe = &probe;
    m->history = history_new();
    history_tick(m);
}

/* What a request may change, put back before the next one. */
static void reset_master(void)
{
    master.state = MS_RUNNING;
    master.target = 2;
    master.generation = 1;
    atomic_store(&master.sb->paused, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as the master: a client that hangs up is no signal */
    log_open("-", LL_ERROR);
    fake_master();
    return 0;
}

/* A listening socket with a name the kernel picks (Linux "autobind"). */
static int listen_abstract(struct sockaddr_un *sa, socklen_t *salen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un any = {.sun_family = AF_UNIX};
    *salen = sizeof(*sa);
    if (bind(fd, (struct sockaddr *)&any, sizeof(sa_family_t)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)sa, salen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read what the server sent; 1 if anything came, -1 at end of stream. */
static int drain(int fd)
{
    char buf[16384];
    int got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            got = 1;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return got;
        if (n < 0 && errno == EINTR)
            continue;
        return -1; /* closed or reset */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reset_master();
    struct sockaddr_un sa;
    socklen_t salen;
    int lfd = listen_abstract(&sa, &salen);
    if (lfd < 0)
        abort();
    master.base = event_base_new();
    if (!master.base)
        abort();
    /* The address only names the socket in logs and /status. */
    master.control = control_open(&master, master.cfg->control, lfd);
    if (!master.control)
        abort();

    int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, salen) < 0)
        abort();

    size_t sent = 0;
    int quiet = 0, shut = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        if (sent < size) {
            ssize_t n = send(cfd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                break; /* the server hung up before reading it all */
        }
        event_base_loop(master.base, EVLOOP_NONBLOCK);
        int got = drain(cfd);
        if (got < 0)
            break;
        quiet = got ? 0 : quiet + 1;
        if (sent == size && quiet >= QUIET_ROUNDS) {
            if (shut)
                break;
            shutdown(cfd, SHUT_WR);
            shut = 1;
            quiet = 0;
        }
    }
    close(cfd);
    /* Let the server see the hang-up, then free it with whatever it still has. */
    for (int round = 0; round < 4; round++)
        event_base_loop(master.base, EVLOOP_NONBLOCK);
    control_free(master.control);
    master.control = NULL;
    event_base_free(master.base);
    master.base = NULL;
    return 0;
}
