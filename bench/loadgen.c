/*
 * loadgen: a C load generator for c2a-worker (Python tops out near 11,000
 * messages/s here). Publishes N jobs to a queue with at most W unanswered at a
 * time, collects the results on a private reply queue, and prints throughput
 * and latency percentiles.
 *   loadgen AMQP_URL QUEUE N WINDOW 'JOB_JSON_WITHOUT_ID' [ID_PREFIX]
 * The job JSON gets "id":"<ID_PREFIX>-<n>" inserted (ID_PREFIX defaults to lg;
 * runs into one output directory need prefixes of their own, or each file
 * replaces the last run's); results must all be "ok".
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: loadgen AMQP_URL QUEUE N WINDOW JOB_JSON [ID_PREFIX]\n");
        return 2;
    }
    struct amqp_connection_info ci;
    char *url = strdup(argv[1]);
    const char *queue = argv[2];
    long n = atol(argv[3]), window = atol(argv[4]);
    const char *job = argv[5], *prefix = argc == 7 ? argv[6] : "lg";
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK || job[0] != '{')
        die("bad arguments");
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK)
        die("cannot connect");
    if (amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
            .reply_type != AMQP_RESPONSE_NORMAL)
        die("login failed");
    amqp_channel_open(conn, 1);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (!ok)
        die("cannot declare the reply queue");
    amqp_bytes_t reply = amqp_bytes_malloc_dup(ok->queue);
    amqp_basic_consume(conn, 1, reply, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);

    double *sent = calloc((size_t)n, sizeof(double)), *lat = calloc((size_t)n, sizeof(double));
    long published = 0, received = 0, bad = 0;
    char body[65536], cid[32];
    double t0 = bench_now();
    while (received < n) {
        while (published < n && published - received < window) {
            int len = snprintf(body, sizeof(body), "{\"id\":\"%s-%ld\",%s", prefix, published,
                               job + 1);
            snprintf(cid, sizeof(cid), "%ld", published);
            amqp_basic_properties_t p = {0};
            p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                       AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
            p.content_type = amqp_cstring_bytes("application/json");
            p.reply_to = reply;
            p.correlation_id = amqp_cstring_bytes(cid);
            p.message_id = amqp_cstring_bytes(cid);
            sent[published] = bench_now();
            amqp_bytes_t b = {(size_t)len, body};
            if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0,
                                   &p, b) != AMQP_STATUS_OK)
                die("publish failed");
            published++;
        }
        amqp_envelope_t env;
        struct timeval tv = {30, 0};
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            die("no result within 30 s");
        char idbuf[32] = "";
        size_t l = env.message.properties.correlation_id.len;
        if (l < sizeof(idbuf))
            memcpy(idbuf, env.message.properties.correlation_id.bytes, l);
        long i = atol(idbuf);
        if (i >= 0 && i < n) {
            lat[received] = bench_now() - sent[i];
            received++;
        }
        if (!memmem(env.message.body.bytes, env.message.body.len, "\"status\":\"ok\"", 13))
            bad++;
        amqp_destroy_envelope(&env);
    }
    double elapsed = bench_now() - t0;
    qsort(lat, (size_t)n, sizeof(double), bench_cmp_double);
    printf("jobs %ld  errors %ld  seconds %.2f  jobs/s %.1f  p50_ms %.2f  p99_ms %.2f\n", n, bad,
           elapsed, n / elapsed, lat[n / 2] * 1000, lat[(long)(n * 0.99)] * 1000);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    free(url);
    return bad ? 1 : 0;
}
