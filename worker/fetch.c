#include "fetch.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/netpolicy.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REDIRECTS 5L

struct fetcher {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct netpolicy policy;
    long connect_timeout_s;
    char *user_agent;
    struct fetch *all;   /* in flight, for fetcher_free */
    int active;
};

struct fetch {
    struct fetcher *f;
    struct fetch *prev, *next;
    CURL *easy;
    fetch_done_fn done;
    void *arg;
    struct curl_slist *headers;
    char *post_body;
    FILE *upload;
    char *body;
    size_t len, cap, max;
    int too_large;
    char refused[INET6_ADDRSTRLEN + 8]; /* an address the policy refused */
    char ctype[160];
    char errbuf[CURL_ERROR_SIZE];
    int trusted;
    struct event *early;                /* a failure before any transfer */
    char early_err[256];
};

/* One libevent event per socket libcurl watches. */
struct sock {
    struct event *ev;
};

static void check_done(struct fetcher *f);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct fetcher *f = arg;
    int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(f->multi, fd, action, &running);
    check_done(f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetcher *f = arg;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct fetcher *f = userp;
    struct sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            event_free(sk->ev);
            free(sk);
            curl_multi_assign(f->multi, s, NULL);
        }
        return 0;
    }
    short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                   (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!sk) {
        sk = xcalloc(1, sizeof(*sk));
        sk->ev = event_new(f->base, s, events, on_socket_event, f);
        curl_multi_assign(f->multi, s, sk);
    } else {
        event_del(sk->ev);
        event_assign(sk->ev, f->base, s, events, on_socket_event, f);
    }
    event_add(sk->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct fetcher *f = userp;
    if (timeout_ms < 0) {
        evtimer_del(f->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(f->timer, &tv);
    return 0;
}

/* Every connection libcurl opens comes through here with its resolved address:
 * the private-address policy is enforced on what is actually connected to. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    struct fetch *x = clientp;
    (void)purpose;
    if (!x->trusted && !netpolicy_allows(&x->f->policy, &addr->addr)) {
        char ip[INET6_ADDRSTRLEN] = "?";
        if (addr->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&addr->addr)->sin_addr, ip, sizeof(ip));
        else if (addr->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr->addr)->sin6_addr, ip, sizeof(ip));
        strlcpy_c2a(x->refused, ip, sizeof(x->refused));
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *x = arg;
    size_t len = size * n;
    if (x->len + len > x->max) {
        x->too_large = 1;
        return 0; /* an error: stop the transfer now */
    }
    if (x->len + len + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 16384;
        while (cap < x->len + len + 1)
            cap *= 2;
        if (cap > x->max + 1)
            cap = x->max + 1;
        x->body = xrealloc(x->body, cap);
        x->cap = cap;
    }
    memcpy(x->body + x->len, data, len);
    x->len += len;
    x->body[x->len] = '\0';
    return len;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *x = arg;
    size_t len = size * n;
    /* A redirect's headers come first: every status line starts afresh. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
        x->ctype[0] = '\0';
    if (len > 13 && strncasecmp(data, "content-type:", 13) == 0) {
        const char *v = data + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(x->ctype, sizeof(x->ctype), "%.*s", (int)vl, v);
    }
    return len;
}

static void unlink_fetch(struct fetch *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        x->f->all = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->f->active--;
}

static void fetch_free(struct fetch *x)
{
    if (x->easy) {
        curl_multi_remove_handle(x->f->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    if (x->early)
        event_free(x->early);
    curl_slist_free_all(x->headers);
    if (x->upload)
        fclose(x->upload);
    free(x->post_body);
    free(x->body);
    free(x);
}

/* Whether a failed transfer is worth another attempt later. */
static int transient_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static void finish(struct fetch *x, CURLcode rc)
{
    struct fetch_result r = {.body = x->body, .len = x->len};
    x->body = NULL;
    strlcpy_c2a(r.content_type, x->ctype, sizeof(r.content_type));
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
    if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        /* Counted while receiving, or refused on the announced length. */
        r.too_large = 1;
        snprintf(r.error, sizeof(r.error), "the response passed %zu bytes", x->max);
    } else if (x->refused[0]) {
        snprintf(r.error, sizeof(r.error),
                 "refused to connect to %s: a private address ([fetch] allow_private)",
                 x->refused);
    } else if (rc != CURLE_OK) {
        r.transient = transient_code(rc);
        snprintf(r.error, sizeof(r.error), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    } else if (r.status >= 200 && r.status < 300) {
        r.ok = 1;
    } else {
        r.transient = r.status == 408 || r.status == 429 || r.status >= 500;
        snprintf(r.error, sizeof(r.error), "HTTP %ld", r.status);
        /* A short plain answer says why better than the status alone. */
        if (r.body && r.len && r.len < 200 && !memchr(r.body, '<', r.len))
            snprintf(r.error + strlen(r.error), sizeof(r.error) - strlen(r.error), ": %.*s",
                     (int)strcspn(r.body, "\r\n"), r.body);
    }
    unlink_fetch(x);
    fetch_done_fn done = x->done;
    void *arg = x->arg;
    fetch_free(x);
    done(arg, &r);
    free(r.body);
}

static void check_done(struct fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct fetch *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(x, m->data.result);
    }
}

static void early_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetch *x = arg;
    struct fetch_result r = {.ok = 0};
    strlcpy_c2a(r.error, x->early_err, sizeof(r.error));
    unlink_fetch(x);
    fetch_done_fn done = x->done;
    void *a = x->arg;
    fetch_free(x);
    done(a, &r);
}

static struct fetch *fail_early(struct fetch *x, const char *why)
{
    strlcpy_c2a(x->early_err, why, sizeof(x->early_err));
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    x->early = evtimer_new(x->f->base, early_cb, x);
    event_active(x->early, EV_TIMEOUT, 0);
    return x;
}

struct fetch *fetch_start(struct fetcher *f, const struct fetch_req *req, fetch_done_fn done,
                          void *arg)
{
    struct fetch *x = xcalloc(1, sizeof(*x));
    x->f = f;
    x->done = done;
    x->arg = arg;
    x->max = req->max_bytes;
    x->trusted = req->trusted;
    x->next = f->all;
    if (f->all)
        f->all->prev = x;
    f->all = x;
    f->active++;
    CURL *e = x->easy = curl_easy_init();
    if (!e)
        return fail_early(x, "curl_easy_init failed");
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, f->connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, req->timeout_s);
    curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* counted after decoding */
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (req->max_bytes)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_bytes);
    char h[512];
    if (req->accept) {
        snprintf(h, sizeof(h), "Accept: %s", req->accept);
        x->headers = curl_slist_append(x->headers, h);
    }
    if (req->content_type) {
        snprintf(h, sizeof(h), "Content-Type: %s", req->content_type);
        x->headers = curl_slist_append(x->headers, h);
    }
    if (req->bearer && req->bearer[0]) {
        snprintf(h, sizeof(h), "Authorization: Bearer %s", req->bearer);
        x->headers = curl_slist_append(x->headers, h);
    }
    /* No "Expect: 100-continue" round trip before a body. */
    x->headers = curl_slist_append(x->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (req->method == FETCH_POST) {
        x->post_body = xmalloc(req->body_len + 1);
        memcpy(x->post_body, req->body, req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->post_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (req->method == FETCH_PUT) {
        x->upload = fopen(req->upload_path, "rbe");
        if (!x->upload) {
            char why[300];
            snprintf(why, sizeof(why), "%s: %s", req->upload_path, strerror(errno));
            return fail_early(x, why);
        }
        fseek(x->upload, 0, SEEK_END);
        long size = ftell(x->upload);
        rewind(x->upload);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READDATA, x->upload);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    }
    CURLMcode mc = curl_multi_add_handle(f->multi, e);
    if (mc != CURLM_OK)
        return fail_early(x, curl_multi_strerror(mc));
    return x;
}

void fetch_cancel(struct fetch *x)
{
    if (!x)
        return;
    unlink_fetch(x);
    fetch_free(x);
}

int fetcher_active(const struct fetcher *f)
{
    return f->active;
}

struct fetcher *fetcher_new(struct event_base *base, const struct config *cfg, char *err,
                            size_t errlen)
{
    static int global_done;
    if (!global_done) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
            return NULL;
        }
        global_done = 1;
    }
    struct fetcher *f = xcalloc(1, sizeof(*f));
    const char *why;
    if (netpolicy_parse(cfg->allow_private, &f->policy, &why) < 0) {
        snprintf(err, errlen, "allow_private: %s", why);
        free(f);
        return NULL;
    }
    f->base = base;
    f->connect_timeout_s = cfg->connect_timeout;
    f->user_agent = xstrdup(cfg->user_agent);
    f->multi = curl_multi_init();
    f->timer = evtimer_new(base, on_timer, f);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    return f;
}

void fetcher_free(struct fetcher *f)
{
    if (!f)
        return;
    while (f->all)
        fetch_cancel(f->all);
    curl_multi_cleanup(f->multi);
    event_free(f->timer);
    free(f->user_agent);
    free(f);
}
