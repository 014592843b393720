/*
 * c2a-tls.so: the TLS relay of the master's queue probe (see tls_relay.h).
 *
 * It runs alone in a process of its own, forked by the master for one
 * connection, so it may wait: it blocks in the name lookup and polls the
 * connect and the handshake against one deadline. Both sockets are then
 * non-blocking and one poll() loop relays: every round tries each transfer the
 * buffers allow and, when none moved a byte, sleeps on exactly what the
 * blocked ones wait for (OpenSSL may need to read before it can write and the
 * other way round, so that is asked of it each time).
 */
#include "tls_relay.h"
#include "../common/log.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* After the master has closed its end, its last bytes (a goodbye,
 * connection.close) are passed on and their answer (close-ok) awaited, for a
 * relay that leaves before makes the broker log an unexpected close; but no
 * longer than this. */
#define FLUSH_AFTER_EOF_MS 1000
#define BUF_SIZE 16384

struct relay {
    const struct tls_relay_args *a;
    int64_t deadline_mono_ms;
    int tcp;
    SSL_CTX *ctx;
    SSL *ssl;
    char err[TLS_RELAY_LINE_MAX - 8];
};

static void fail(struct relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct relay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
}

/* The one line the master waits for; a reason never spans lines. */
static void report(int fd, const char *reason)
{
    char line[TLS_RELAY_LINE_MAX];
    int n = reason ? snprintf(line, sizeof(line), "error %s\n", reason)
                   : snprintf(line, sizeof(line), "ok\n");
    if (n < 0 || (size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    for (int i = 0; i < n - 1; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n - 1] = '\n';
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
        /* the master has gone: nobody to tell */
    }
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(struct relay *r, int fd, short events)
{
    for (;;) {
        int64_t left = r->deadline_mono_ms - now_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {fd, events, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int connect_one(struct relay *r, const struct addrinfo *ai, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return -1;
    }
    socklen_t len = sizeof(*err);
    int ready = wait_fd(r, fd, POLLOUT);
    if (ready <= 0)
        *err = ready == 0 ? ETIMEDOUT : errno;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) < 0)
        *err = errno;
    if (ready <= 0 || *err) {
        close(fd);
        return -1;
    }
    /* AMQP frames are small and each waits for an answer: no Nagle delay. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int tcp_connect(struct relay *r)
{
    const struct tls_relay_args *a = r->a;
    char port[16];
    snprintf(port, sizeof(port), "%d", a->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        fail(r, "resolve %s: %s", a->host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    int err = ENOENT;
    for (const struct addrinfo *ai = res; ai && r->tcp < 0; ai = ai->ai_next)
        r->tcp = connect_one(r, ai, &err);
    freeaddrinfo(res);
    if (r->tcp < 0) {
        fail(r, "connect %s:%d: %s", a->host, a->port, strerror(err));
        return -1;
    }
    return 0;
}

/* OpenSSL's reason for the last failure, with the certificate check's own
 * reason when that is what failed. */
static void fail_tls(struct relay *r, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    if (!why)
        why = errno ? strerror(errno) : "failed";
    long v = r->ssl ? SSL_get_verify_result(r->ssl) : X509_V_OK;
    if (path)
        fail(r, "TLS: %s %s: %s", what, path, why);
    else if (what)
        fail(r, "TLS: %s: %s", what, why);
    else if (v != X509_V_OK)
        fail(r, "TLS: %s: %s", why, X509_verify_cert_error_string(v));
    else
        fail(r, "TLS: %s", why);
    ERR_clear_error();
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int tls_setup(struct relay *r)
{
    const struct tls_relay_args *a = r->a;
    r->ctx = SSL_CTX_new(TLS_client_method());
    if (!r->ctx || !SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION)) {
        fail_tls(r, "setup", NULL);
        return -1;
    }
    if (a->verify) {
        if (a->ca[0] ? !SSL_CTX_load_verify_locations(r->ctx, a->ca, NULL)
                     : !SSL_CTX_set_default_verify_paths(r->ctx)) {
            fail_tls(r, "tls_ca", a->ca[0] ? a->ca : "(the system's store)");
            return -1;
        }
        SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (a->cert[0]) {
        if (!SSL_CTX_use_certificate_chain_file(r->ctx, a->cert)) {
            fail_tls(r, "tls_cert", a->cert);
            return -1;
        }
        if (!SSL_CTX_use_PrivateKey_file(r->ctx, a->key, SSL_FILETYPE_PEM) ||
            !SSL_CTX_check_private_key(r->ctx)) {
            fail_tls(r, "tls_key", a->key);
            return -1;
        }
    }
    r->ssl = SSL_new(r->ctx);
    if (!r->ssl || !SSL_set_fd(r->ssl, r->tcp)) {
        fail_tls(r, "setup", NULL);
        return -1;
    }
    /* SNI takes host names only (RFC 6066); an address is checked as one. */
    int ip = is_ip_literal(a->host);
    if (!ip)
        SSL_set_tlsext_host_name(r->ssl, a->host);
    if (a->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(r->ssl);
        if (!(ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, a->host)
                 : X509_VERIFY_PARAM_set1_host(vp, a->host, 0))) {
            fail_tls(r, "host name", a->host);
            return -1;
        }
    }
    return 0;
}

static int tls_handshake(struct relay *r)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(r->ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(r->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            if (e == SSL_ERROR_SYSCALL && !ERR_peek_last_error() && !errno)
                fail(r, "TLS: %s:%d closed the connection in the handshake", r->a->host,
                     r->a->port);
            else
                fail_tls(r, NULL, NULL);
            return -1;
        }
        int ready = wait_fd(r, r->tcp, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
        if (ready <= 0) {
            fail(r, "TLS: no handshake with %s:%d in %d s", r->a->host, r->a->port,
                 r->a->timeout_ms / 1000);
            return -1;
        }
    }
}

/* ---- relaying ---- */

struct chunk {
    unsigned char b[BUF_SIZE];
    size_t off, len;
};

/* What OpenSSL waits for after a WANT_* answer, as poll events. */
static short tls_wants(SSL *ssl, int rc, int *broken)
{
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return POLLIN;
    case SSL_ERROR_WANT_WRITE:
        return POLLOUT;
    default:
        *broken = 1;
        return 0;
    }
}

/* Returns why the relay ended, for the debug log. */
static const char *relay(struct relay *r)
{
    int fd = r->a->fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct chunk up = {.len = 0}, down = {.len = 0}; /* master -> broker, broker -> master */
    short up_wants = 0, down_wants = 0;
    int master_eof = 0, broker_eof = 0, broken = 0;
    int answered = 1; /* the broker has sent something since our last write */
    int64_t flush_until = 0;
    for (;;) {
        int moved = 0;
        if (!up.len && !master_eof) {
            ssize_t n = read(fd, up.b, sizeof(up.b));
            if (n > 0) {
                up.off = 0;
                up.len = (size_t)n;
                moved = 1;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                master_eof = 1;
                flush_until = now_mono_ms() + FLUSH_AFTER_EOF_MS;
                down.len = 0; /* nobody will read it */
            }
        }
        if (up.len) {
            ERR_clear_error();
            int n = SSL_write(r->ssl, up.b + up.off, (int)up.len);
            if (n > 0) {
                up.off += (size_t)n;
                up.len -= (size_t)n;
                answered = 0;
                moved = 1;
            } else {
                up_wants = tls_wants(r->ssl, n, &broken);
                if (broken)
                    return "TLS write failed";
            }
        }
        if (!down.len && !broker_eof) {
            ERR_clear_error();
            int n = SSL_read(r->ssl, down.b, sizeof(down.b));
            if (n > 0) {
                down.off = 0;
                down.len = master_eof ? 0 : (size_t)n; /* nobody reads it now */
                answered = 1;
                moved = 1;
            } else {
                down_wants = tls_wants(r->ssl, n, &broker_eof);
            }
        }
        if (down.len) {
            ssize_t n = send(fd, down.b + down.off, down.len, MSG_NOSIGNAL);
            if (n > 0) {
                down.off += (size_t)n;
                down.len -= (size_t)n;
                moved = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                return "the master closed its end";
            }
        }
        if (master_eof && !up.len && answered)
            return "the master closed its end";
        if (broker_eof && !down.len)
            return "the broker closed the connection";
        if (moved)
            continue;

        /* A closed master end would report POLLHUP for good: leave it out. */
        struct pollfd p[2] = {{master_eof ? -1 : fd, 0, 0}, {r->tcp, 0, 0}};
        if (!up.len && !master_eof)
            p[0].events |= POLLIN;
        if (down.len)
            p[0].events |= POLLOUT;
        if (up.len)
            p[1].events |= up_wants;
        if (!down.len && !broker_eof)
            p[1].events |= down_wants;
        int timeout = -1;
        if (master_eof) {
            int64_t left = flush_until - now_mono_ms();
            if (left <= 0)
                return "the master closed its end; its last words got no answer in time";
            timeout = (int)left;
        }
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            return strerror(errno);
        if (p[0].revents & (POLLERR | POLLHUP) && !(p[0].revents & POLLIN))
            return "the master closed its end";
    }
}

static void run(const struct tls_relay_args *a)
{
    struct relay r = {.a = a, .tcp = -1};
    r.deadline_mono_ms = now_mono_ms() + a->timeout_ms;
    if (tcp_connect(&r) < 0 || tls_setup(&r) < 0 || tls_handshake(&r) < 0) {
        report(a->fd, r.err);
        _exit(1);
    }
    report(a->fd, NULL);
    log_debug("relaying to %s:%d over %s", a->host, a->port, SSL_get_version(r.ssl));
    const char *why = relay(&r);
    log_debug("relay to %s:%d ended: %s", a->host, a->port, why);
    /* A close_notify if the socket takes it now; nothing waits for the answer. */
    SSL_shutdown(r.ssl);
    _exit(0);
}

const struct tls_relay_api c2a_tls_relay_api = {run};
