/*
 * The control socket: libevent's evhttp on a listening socket the master binds
 * before forking (TCP host:port or a unix socket). Nothing a client sends may
 * crash or stall the master, and no set of clients may lock the others out:
 *  - headers and bodies are capped; a silent connection is closed after
 *    CLIENT_TIMEOUT_S (evhttp's timeout, which every byte restarts);
 *  - so a request must also be whole within REQUEST_DEADLINE_S of its first
 *    byte, however slowly it trickles in (slowloris);
 *  - past MAX_CONNECTIONS open connections, or when the process is out of
 *    descriptors, the connection idle longest is closed to make room, so a new
 *    client (a health check) always gets in; accept() never spins and the log
 *    is not flooded. A connection waiting for an answer that comes later (the
 *    dead letters, from c2actl) is not idle and is not closed;
 *  - a NUL byte in a request gets 400: evhttp keeps header values as C strings,
 *    so "Bearer <token>\0junk" would otherwise pass for the token.
 *
 * evhttp has no hook between accept() and a complete request, so what the
 * master knows of each connection is kept by descriptor (struct peer), filled
 * in by a callback on each connection's input buffer and checked against the
 * socket's inode before use: a descriptor number is reused, an inode is not.
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_HEADERS_SIZE 8192
#define MAX_BODY_SIZE 65536
#define CLIENT_TIMEOUT_S 10
#define REQUEST_DEADLINE_S 10
#define ACCEPT_PAUSE_MS 100
/* Out of descriptors: one warning, then at most one a minute while it lasts. */
#define STARVED_LOG_EVERY_MS 60000
/* The kernel caps this at net.core.somaxconn; a deep queue rides out bursts of
 * connections while the loop is busy closing the previous burst. */
#define LISTEN_BACKLOG 4096
/* Connections that sent something and are still open (keep-alive included).
 * Past it, each new one closes the one idle longest. */
#define MAX_CONNECTIONS 256

/* A client connection, by descriptor; valid while the inode matches. */
struct peer {
    ino_t ino;        /* 0: nothing known on this descriptor */
    int64_t since_ms; /* first byte of the request being read; 0 between requests */
    int64_t last_ms;  /* last request or byte: the idle one goes first */
    int nul;          /* a NUL byte arrived: its request gets 400 */
    int waiting;      /* its request is being answered later (/dead/): never closed for room */
};

struct control {
    struct master *m;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct evconnlistener *listener;
    struct event *resume_accept;
    char *addr;
    char unix_path[108];
    int fd;
    int handed_over; /* the socket belongs to another master now: never unlink it */
    struct event *sweep;  /* every second: requests past their deadline */
    struct dead_api *dead; /* /dead/... */
    int starved;          /* accepting is paused: no descriptor left */
    uint64_t refused;     /* accepts that failed for lack of descriptors */
    int64_t starved_logged_ms;
};

/* Descriptors are the process's, whichever control (two during a reload that
 * moves the socket) accepted them: so is what is known of them. */
static struct peer *peers;
static int npeers;
static int cap_logged;

/* A unix socket path may be left over from a crash: remove it unless something
 * still accepts on it. */
static int unix_path_in_use(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strlcpy_c2a(sa.sun_path, path, sizeof(sa.sun_path));
    int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
    close(s);
    return rc == 0;
}

static int bind_unix(const char *path)
{
    if (unix_path_in_use(path)) {
        log_error("control socket %s: another process is listening on it", path);
        return -1;
    }
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("control socket: socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strlcpy_c2a(sa.sun_path, path, sizeof(sa.sun_path));
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(path, 0660) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        log_error("control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int bind_tcp(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("control socket %s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        log_error("control socket %s:%s: %s", host, port, strerror(err));
    return fd;
}

void control_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *doc)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = json_dumps(doc, JSON_COMPACT);
    if (buf && text) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
    }
    free(text);
    json_decref(doc);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, buf);
    if (buf)
        evbuffer_free(buf);
}

void control_reply_error(struct evhttp_request *req, int code, const char *reason,
                        const char *errcode, const char *message)
{
    control_reply_json(req, code, reason,
               json_pack("{s:{s:s,s:s}}", "error", "code", errcode, "message", message));
}

static int query_has(struct evhttp_request *req, const char *name)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!q)
        return 0;
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == '\0' || p[n] == '&' || p[n] == '='))
            return 1;
    return 0;
}

static void handle_status(struct control *c, struct evhttp_request *req)
{
    control_reply_json(req, HTTP_OK, "OK", status_build(c->m, query_has(req, "full")));
}

/* Constant time in the length of the expected token, whatever the client sent. */
static int token_matches(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = gl != wl;
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

/* Mutating requests need the bearer token when one is configured. */
static int authorized(struct control *c, struct evhttp_request *req)
{
    const char *want = c->m->cfg->control_token;
    if (!want[0])
        return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 && token_matches(h + 7, want))
        return 1;
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"c2a-worker\"");
    control_reply_error(req, 401, "Unauthorized", "unauthorized", "a valid bearer token is required");
    return 0;
}

static void set_paused(struct control *c, struct evhttp_request *req, int paused)
{
    if (!authorized(c, req))
        return;
    int was = atomic_exchange(&c->m->sb->paused, paused);
    if (was != paused)
        log_info("control: %s", paused ? "paused: workers stop consuming" : "resumed");
    control_reply_json(req, HTTP_OK, "OK", json_pack("{s:b,s:b}", "paused", paused, "changed", was != paused));
}

static void handle_pause(struct control *c, struct evhttp_request *req)
{
    set_paused(c, req, 1);
}

static void handle_resume(struct control *c, struct evhttp_request *req)
{
    set_paused(c, req, 0);
}

/* A 200 whose body render() writes, for the text endpoints. */
static void reply_rendered(struct control *c, struct evhttp_request *req, const char *type,
                           void (*render)(struct master *m, struct evbuffer *b))
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    render(c->m, buf);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, HTTP_OK, "OK", buf);
    evbuffer_free(buf);
}

static void handle_page(struct control *c, struct evhttp_request *req)
{
    reply_rendered(c, req, "text/html; charset=utf-8", status_html);
}

static void handle_metrics(struct control *c, struct evhttp_request *req)
{
    reply_rendered(c, req, "text/plain; version=0.0.4; charset=utf-8", metrics_render);
}

/* 200 while at least one worker consumes; 503 with the reason otherwise. */
static void handle_healthz(struct control *c, struct evhttp_request *req)
{
    char why[640];
    struct master *m = c->m;
    int consuming = 0, alive = 0, connected = 0;
    char berr[SCOREBOARD_ERR_LEN] = "", down[SCOREBOARD_ERR_LEN + 64];
    for (int i = 0; i < m->nchildren; i++) {
        struct sb_slot *s = scoreboard_slot(m->sb, m->children[i].slot);
        int st = atomic_load(&s->state);
        int up = atomic_load(&s->broker_connected);
        alive += st == WS_IDLE || st == WS_BUSY || st == WS_PAUSED;
        connected |= up;
        consuming += (st == WS_IDLE || st == WS_BUSY) && up;
        if (!berr[0])
            slot_get_broker_error(s, berr, sizeof(berr));
    }
    /* The workers' own reason when they have one: a queue declared with other
     * arguments or a refused certificate is not "broker down". */
    if (berr[0])
        snprintf(down, sizeof(down), "no worker is connected: %s", berr);
    else
        snprintf(down, sizeof(down), "broker down: no worker is connected");
    const char *reason = NULL;
    if (m->state != MS_RUNNING)
        reason = "stopping";
    else if (atomic_load(&m->sb->paused))
        reason = "paused";
    else if (!alive)
        reason = m->boot_failures ? "no worker alive: workers fail to boot" : "no worker alive";
    else if (!connected && probe_mismatch(m->probe)) {
        /* The workers cannot declare their topology: the broker is up. */
        const struct probe_queue *q = probe_mismatch(m->probe);
        snprintf(why, sizeof(why), "queue %s exists with other arguments: %s", q->name,
                 q->mismatch);
        reason = why;
    } else if (!connected)
        reason = down;
    else if (!consuming)
        reason = "no worker is consuming";
    if (reason)
        control_reply_json(req, 503, "Service Unavailable",
                   json_pack("{s:s,s:s,s:i}", "status", "unavailable", "reason", reason,
                             "consuming", consuming));
    else
        control_reply_json(req, HTTP_OK, "OK", json_pack("{s:s,s:i}", "status", "ok", "consuming", consuming));
}

static void handle_reload(struct control *c, struct evhttp_request *req)
{
    if (!authorized(c, req))
        return;
    struct reload_errors errs;
    if (master_reload(c->m, &errs) < 0) {
        control_reply_error(req, 409, "Conflict", "reload_refused", errs.text[0] ? errs.text : "refused");
        return;
    }
    control_reply_json(req, HTTP_OK, "OK", json_pack("{s:b,s:i}", "reloaded", 1, "generation",
                                             (int)c->m->generation));
}

static void stop_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    master_stop(arg, 1);
}

/* Answer first, then stop: the client learns that the stop has begun. */
static void handle_shutdown(struct control *c, struct evhttp_request *req)
{
    if (!authorized(c, req))
        return;
    control_reply_json(req, 202, "Accepted", json_pack("{s:b}", "stopping", 1));
    struct timeval now = {0, 0};
    event_base_once(c->m->base, -1, EV_TIMEOUT, stop_later, c->m, &now);
}

static void handle_workers(struct control *c, struct evhttp_request *req)
{
    if (!authorized(c, req))
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t err;
    json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err);
    json_t *count = json_is_object(body) ? json_object_get(body, "count") : NULL;
    if (!json_is_integer(count)) {
        control_reply_error(req, 400, "Bad Request", "bad_request",
                    body ? "expected {\"count\": N}" : "the body is not JSON");
        json_decref(body);
        return;
    }
    json_int_t n = json_integer_value(count);
    json_decref(body);
    if (n < 1 || n > CONFIG_MAX_WORKERS) {
        control_reply_error(req, 400, "Bad Request", "bad_request", "count must be 1..256");
        return;
    }
    if (master_scale_to(c->m, (int)n) < 0) {
        control_reply_error(req, 409, "Conflict", "stopping", "the master is stopping");
        return;
    }
    control_reply_json(req, HTTP_OK, "OK", json_pack("{s:i}", "count", (int)n));
}

static const struct route {
    const char *path;
    enum evhttp_cmd_type method;
    void (*handler)(struct control *c, struct evhttp_request *req);
} routes[] = {
    {"/", EVHTTP_REQ_GET, handle_page},
    {"/status", EVHTTP_REQ_GET, handle_status},
    {"/metrics", EVHTTP_REQ_GET, handle_metrics},
    {"/healthz", EVHTTP_REQ_GET, handle_healthz},
    {"/pause", EVHTTP_REQ_POST, handle_pause},
    {"/resume", EVHTTP_REQ_POST, handle_resume},
    {"/reload", EVHTTP_REQ_POST, handle_reload},
    {"/shutdown", EVHTTP_REQ_POST, handle_shutdown},
    {"/workers", EVHTTP_REQ_POST, handle_workers},
};

static ino_t socket_ino(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
}

/* The peer on fd if it is still the connection it was, else NULL. */
static struct peer *peer_live(int fd)
{
    if (fd < 0 || fd >= npeers || !peers[fd].ino)
        return NULL;
    if (socket_ino(fd) != peers[fd].ino) {
        peers[fd].ino = 0;
        return NULL;
    }
    return &peers[fd];
}

/* Close a connection from under evhttp: shutdown() makes its next read see the
 * end of the stream, and evhttp frees it the usual way. */
static void peer_drop(int fd)
{
    shutdown(fd, SHUT_RDWR);
    peers[fd].ino = 0;
}

static int peers_live(int except)
{
    int n = 0;
    for (int fd = 0; fd < npeers; fd++)
        n += fd != except && peer_live(fd) != NULL;
    return n;
}

/* Close the connection idle longest (else the request that has been trickling
 * in longest), never except. 0 when one was closed. */
static int peers_make_room(int except)
{
    int victim = -1;
    for (int fd = 0; fd < npeers; fd++) {
        struct peer *p = fd == except ? NULL : peer_live(fd);
        if (!p || p->waiting)
            continue;
        struct peer *v = victim >= 0 ? &peers[victim] : NULL;
        if (!v || (v->since_ms && !p->since_ms) ||
            (!v->since_ms == !p->since_ms && p->last_ms < v->last_ms))
            victim = fd;
    }
    if (victim < 0)
        return -1;
    log_debug("control socket: closing a connection %s to make room",
              peers[victim].since_ms ? "still sending its request" : "idle");
    peer_drop(victim);
    return 0;
}

/* The input buffer of every connection calls this when bytes arrive, before
 * evhttp parses them. */
static void peer_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    struct bufferevent *bev = arg;
    if (info->n_added == 0)
        return;
    int fd = bufferevent_getfd(bev);
    struct peer *p = peer_live(fd);
    if (!p) {
        ino_t ino = socket_ino(fd);
        if (!ino)
            return;
        if (fd >= npeers) {
            int n = npeers ? npeers : 64;
            while (n <= fd)
                n *= 2;
            peers = xrealloc(peers, (size_t)n * sizeof(*peers));
            memset(peers + npeers, 0, (size_t)(n - npeers) * sizeof(*peers));
            npeers = n;
        }
        p = &peers[fd];
        *p = (struct peer){.ino = ino};
        if (peers_live(fd) >= MAX_CONNECTIONS && peers_make_room(fd) == 0 &&
            !cap_logged) {
            log_warn("control socket: %d connections open; the one idle longest is closed "
                     "for each new client", MAX_CONNECTIONS);
            cap_logged = 1;
        }
    }
    p->last_ms = now_mono_ms();
    if (!p->since_ms)
        p->since_ms = p->last_ms;
    size_t len = evbuffer_get_length(in);
    if (!p->nul && info->n_added <= len) {
        struct evbuffer_ptr from;
        if (evbuffer_ptr_set(in, &from, len - info->n_added, EVBUFFER_PTR_SET) == 0 &&
            evbuffer_search(in, "", 1, &from).pos >= 0)
            p->nul = 1;
    }
}

/* evhttp's hook for a new connection's bufferevent, called at accept (before
 * the descriptor is set): the one evhttp would make, with peer_input() on its
 * input buffer. */
static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (bev && !evbuffer_add_cb(bufferevent_get_input(bev), peer_input, bev)) {
        bufferevent_free(bev);
        return NULL; /* evhttp makes its own */
    }
    return bev;
}

/* Requests still incomplete REQUEST_DEADLINE_S after their first byte. */
static void sweep_cb(evutil_socket_t fd_, short what, void *arg)
{
    (void)fd_;
    (void)what;
    (void)arg;
    int64_t now = now_mono_ms();
    int n = 0;
    for (int fd = 0; fd < npeers; fd++) {
        struct peer *p = peers[fd].since_ms ? peer_live(fd) : NULL;
        if (p && now - p->since_ms > REQUEST_DEADLINE_S * 1000) {
            peer_drop(fd);
            n++;
        }
    }
    if (n)
        log_info("control socket: %d client(s) dropped: no whole request within %d s", n,
                 REQUEST_DEADLINE_S);
}

/* The peer whose connection carries req, if still the one it was. */
static struct peer *peer_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev ? peer_live(bufferevent_getfd(bev)) : NULL;
}

/* A request answered later has had its answer sent. */
static void answered(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct peer *p = peer_of(req);
    if (p) {
        p->waiting = 0;
        p->last_ms = now_mono_ms();
    }
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct control *c = arg;
    struct peer *p = peer_of(req);
    if (p) {
        p->since_ms = 0; /* whole: what follows is the next request */
        p->last_ms = now_mono_ms();
        if (p->nul) {
            p->nul = 0;
            evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
            control_reply_error(req, 400, "Bad Request", "bad_request", "a NUL byte in the request");
            return;
        }
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !path[0])
        path = "/";
    if (strncmp(path, "/dead/", 6) == 0) {
        if (evhttp_request_get_command(req) == EVHTTP_REQ_POST && !authorized(c, req))
            return;
        if (p) {
            p->waiting = 1;
            evhttp_request_set_on_complete_cb(req, answered, NULL);
        }
        dead_api_handle(c->dead, req, path + 6);
        return;
    }
    int path_known = 0;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        path_known = 1;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        /* HEAD is GET without the body: evhttp leaves the body out. */
        if (routes[i].method == cmd ||
            (cmd == EVHTTP_REQ_HEAD && routes[i].method == EVHTTP_REQ_GET)) {
            routes[i].handler(c, req);
            return;
        }
    }
    if (path_known) {
        const char *allow = "GET, HEAD";
        for (size_t i = 0; i < ARRAY_LEN(routes); i++)
            if (strcmp(routes[i].path, path) == 0 && routes[i].method == EVHTTP_REQ_POST)
                allow = "POST";
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        control_reply_error(req, 405, "Method Not Allowed", "method_not_allowed",
                    "this path does not accept that method");
        return;
    }
    control_reply_error(req, HTTP_NOTFOUND, "Not Found", "not_found", "no such path");
}

/* evhttp_bind_listener() takes over the listener's callback argument, so the
 * error callback cannot be handed its control; the (at most two, during a reload
 * that moves the socket) live controls are found here instead. */
static struct control *live_controls[4];

static struct control *control_of(struct evconnlistener *lis)
{
    for (size_t i = 0; i < ARRAY_LEN(live_controls); i++)
        if (live_controls[i] && live_controls[i]->listener == lis)
            return live_controls[i];
    return NULL;
}

static void track(struct control *c, int on)
{
    for (size_t i = 0; i < ARRAY_LEN(live_controls); i++) {
        if (on && !live_controls[i]) {
            live_controls[i] = c;
            return;
        }
        if (!on && live_controls[i] == c)
            live_controls[i] = NULL;
    }
}

static void resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct control *c = arg;
    if (c->listener && c->starved) {
        c->starved = 0;
        evconnlistener_enable(c->listener);
    }
}

/* Out of descriptors: close the connection idle longest and listen again on the
 * next turn of the loop (once evhttp has freed it), or after ACCEPT_PAUSE_MS
 * when none could be closed; never spin on accept(), never flood the log. */
static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    (void)arg;
    struct control *c = control_of(lis);
    int e = EVUTIL_SOCKET_ERROR();
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
        log_debug("control socket: accept: %s", strerror(e));
        return;
    }
    evconnlistener_disable(lis);
    if (!c)
        return;
    c->refused++;
    int64_t now = now_mono_ms();
    if (!c->starved_logged_ms || now - c->starved_logged_ms >= STARVED_LOG_EVERY_MS) {
        log_warn("control socket: accept: %s (%llu refused so far); closing the connections "
                 "idle longest to make room", strerror(e), (unsigned long long)c->refused);
        c->starved_logged_ms = now;
    }
    c->starved = 1;
    struct timeval tv = {0, peers_make_room(-1) == 0 ? 1000 : ACCEPT_PAUSE_MS * 1000};
    evtimer_add(c->resume_accept, &tv);
}

struct control *control_open(struct master *m, const char *addr, int inherited_fd)
{
    struct control_addr a;
    const char *why;
    if (config_parse_addr(addr, &a, &why) < 0) {
        log_error("control socket %s: %s", addr, why);
        return NULL;
    }
    int fd = inherited_fd;
    if (fd < 0)
        fd = a.is_unix ? bind_unix(a.path) : bind_tcp(a.host, a.port);
    if (fd < 0)
        return NULL;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);

    struct control *c = xcalloc(1, sizeof(*c));
    c->m = m;
    c->fd = fd;
    c->addr = xstrdup(addr);
    if (a.is_unix)
        strlcpy_c2a(c->unix_path, a.path, sizeof(c->unix_path));
    c->http = evhttp_new(m->base);
    c->listener = evconnlistener_new(m->base, NULL, NULL,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    c->resume_accept = evtimer_new(m->base, resume_accept_cb, c);
    c->sweep = event_new(m->base, -1, EV_PERSIST, sweep_cb, c);
    c->dead = dead_api_new(m);
    if (!c->http || !c->listener || !c->resume_accept || !c->sweep) {
        log_error("control socket %s: cannot set up the HTTP server", addr);
        if (!c->listener)
            close(fd);
        control_free(c);
        return NULL;
    }
    evhttp_set_max_headers_size(c->http, MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(c->http, MAX_BODY_SIZE);
    evhttp_set_timeout(c->http, CLIENT_TIMEOUT_S);
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(c->http, dispatch, c);
    evhttp_set_bevcb(c->http, conn_new, c);
    struct timeval second = {1, 0};
    evtimer_add(c->sweep, &second);
    c->bound = evhttp_bind_listener(c->http, c->listener);
    if (!c->bound) {
        log_error("control socket %s: cannot attach the listener", addr);
        control_free(c);
        return NULL;
    }
    evconnlistener_set_error_cb(c->listener, accept_error_cb);
    track(c, 1);
    return c;
}

void control_free(struct control *c)
{
    if (!c)
        return;
    track(c, 0);
    dead_api_free(c->dead); /* answers what it still runs, before evhttp frees it */
    if (c->http)
        evhttp_free(c->http); /* frees the bound socket and its listener */
    else if (c->listener)
        evconnlistener_free(c->listener);
    if (c->resume_accept)
        event_free(c->resume_accept);
    if (c->sweep)
        event_free(c->sweep);
    int others = 0;
    for (size_t i = 0; i < ARRAY_LEN(live_controls); i++)
        others += live_controls[i] != NULL;
    if (!others) {
        free(peers);
        peers = NULL;
        npeers = 0;
    }
    if (c->unix_path[0] && !c->handed_over)
        unlink(c->unix_path);
    free(c->addr);
    free(c);
}


const char *control_address(const struct control *c)
{
    return c->addr;
}

int control_listen_fd(const struct control *c)
{
    return c->fd;
}

void control_stop_listening(struct control *c)
{
    if (c->handed_over)
        return;
    c->handed_over = 1;
    if (c->bound) {
        evhttp_del_accept_socket(c->http, c->bound);
        c->bound = NULL;
        c->listener = NULL;
    }
}
