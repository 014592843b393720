#include "amqp_open.h"
#include "../common/config.h"
#include "../common/util.h"

#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *amqp_reply_text(amqp_rpc_reply_t r, char *buf, size_t len)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "missing reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, len, "connection closed: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, len, "channel closed: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(buf, len, "server error, method 0x%08x", r.reply.id);
        }
        return buf;
    }
    return "unknown";
}

int amqp_reply_is_precondition(amqp_rpc_reply_t r)
{
    return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
           r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
           ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED;
}

const char *amqp_host_name(void)
{
    static char host[256];
    if (!host[0] && (gethostname(host, sizeof(host) - 1) < 0 || !host[0]))
        strcpy(host, "unknown");
    return host;
}

/* Why OpenSSL refused the broker's certificate: the library only says "SSL
 * connection failed", and an operator needs the chain error. One connection is
 * opened at a time per process, so one buffer serves. */
static char verify_error[256];

static int on_verify(int ok, X509_STORE_CTX *store)
{
    if (!ok && !verify_error[0]) {
        int e = X509_STORE_CTX_get_error(store);
        char subject[160] = "";
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
        snprintf(verify_error, sizeof(verify_error), "certificate verify failed: %s%s%s",
                 X509_verify_cert_error_string(e), subject[0] ? " for " : "", subject);
    }
    return ok;
}

/* Peer and host name checks by OpenSSL itself: librabbitmq's own host name
 * check knows no IP addresses in subjectAltName. */
static int setup_tls(const struct config *cfg, amqp_socket_t *sock, const char *host, char *err,
                     size_t errlen)
{
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
    amqp_ssl_socket_set_verify_hostname(sock, 0);
    amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST);
    if (cfg->tls_cert[0] && amqp_ssl_socket_set_key(sock, cfg->tls_cert, cfg->tls_key) != 0) {
        snprintf(err, errlen, "TLS: cannot use client certificate %s with key %s", cfg->tls_cert,
                 cfg->tls_key);
        return -1;
    }
    if (!cfg->tls_verify) {
        amqp_ssl_socket_set_verify_peer(sock, 0);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    int rc = cfg->tls_ca[0] ? amqp_ssl_socket_set_cacert(sock, cfg->tls_ca)
                            : (SSL_CTX_set_default_verify_paths(ctx) == 1 ? 0 : -1);
    if (rc != 0) {
        snprintf(err, errlen, "TLS: cannot load CA certificates from %s",
                 cfg->tls_ca[0] ? cfg->tls_ca : "the system store");
        return -1;
    }
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
        rc = X509_VERIFY_PARAM_set1_ip_asc(param, host);
    else
        rc = X509_VERIFY_PARAM_set1_host(param, host, 0);
    if (rc != 1) {
        snprintf(err, errlen, "TLS: cannot check the host name %s", host);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
    return 0;
}

static amqp_rpc_reply_t login(amqp_connection_state_t conn, const struct amqp_connection_info *ci,
                              const struct amqp_open_opts *o)
{
    /* The library advertises no capabilities itself; without consumer_cancel_notify
     * a deleted queue would leave a consumer silently dead. */
    static const char *const caps[] = {"consumer_cancel_notify", "connection.blocked",
                                       "basic.nack", "publisher_confirms",
                                       "authentication_failure_close"};
    amqp_table_entry_t cap[ARRAY_LEN(caps)];
    for (size_t i = 0; i < ARRAY_LEN(caps); i++) {
        cap[i].key = amqp_cstring_bytes(caps[i]);
        cap[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        cap[i].value.value.boolean = 1;
    }
    amqp_table_entry_t props[3];
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = (amqp_table_t){(int)ARRAY_LEN(caps), cap};
    props[1].key = amqp_cstring_bytes("product");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes("c2a-worker " C2A_VERSION);
    props[2].key = amqp_cstring_bytes("connection_name");
    props[2].value.kind = AMQP_FIELD_KIND_UTF8;
    props[2].value.value.bytes = amqp_cstring_bytes(o->connection_name);
    amqp_table_t client_props = {3, props};
    return amqp_login_with_properties(conn, ci->vhost, 0, 131072, o->heartbeat, &client_props,
                                      AMQP_SASL_METHOD_PLAIN, ci->user, ci->password);
}

amqp_connection_state_t amqp_open_url(const struct config *cfg, const char *url,
                                      const struct amqp_open_opts *o, char *err, size_t errlen)
{
    struct amqp_connection_info ci;
    char *copy = xstrdup(url);
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "not an AMQP URL");
        free(copy);
        return NULL;
    }
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = ci.ssl ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!sock) {
        snprintf(err, errlen, "%s:%d: cannot make a %s socket", ci.host, ci.port,
                 ci.ssl ? "TLS" : "TCP");
        goto fail;
    }
    if (ci.ssl && setup_tls(cfg, sock, ci.host, err, errlen) < 0)
        goto fail;
    verify_error[0] = '\0';
    struct timeval tv = {o->timeout_s, 0};
    int rc = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        if (ci.ssl && (rc == AMQP_STATUS_SSL_CONNECTION_FAILED ||
                       rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
                       rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED))
            snprintf(err, errlen, "TLS with %s:%d: %s", ci.host, ci.port,
                     verify_error[0] ? verify_error : amqp_error_string2(rc));
        else
            snprintf(err, errlen, "connect %s:%d: %s", ci.host, ci.port, amqp_error_string2(rc));
        goto fail;
    }
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    amqp_rpc_reply_t r = login(conn, &ci, o);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[256];
        const char *text = amqp_reply_text(r, buf, sizeof(buf));
        /* With TLS 1.3 a broker that wants a client certificate refuses it
         * only after the handshake: the library then sees an SSL error and
         * says no more. */
        if (ci.ssl && !cfg->tls_cert[0] && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_SSL_ERROR) {
            snprintf(buf, sizeof(buf), "TLS error after the handshake (does the broker want a "
                     "client certificate? tls_cert, tls_key)");
            text = buf;
        }
        snprintf(err, errlen, "login to %s:%d: %s", ci.host, ci.port, text);
        goto fail;
    }
    free(copy);
    return conn;
fail:
    amqp_destroy_connection(conn);
    free(copy);
    return NULL;
}
