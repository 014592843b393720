/* Config parsing and validation: every error names file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/config.h"

struct msgs {
    char text[16][256];
    int n;
};

static void collect(void *ctx, const char *msg)
{
    struct msgs *m = ctx;
    if (m->n < 16)
        snprintf(m->text[m->n++], sizeof(m->text[0]), "%s", msg);
}

static struct config *parse(const char *text, struct msgs *m)
{
    memset(m, 0, sizeof(*m));
    return config_parse("t.conf", text, strlen(text), collect, m);
}

static void test_defaults(void **state)
{
    (void)state;
    struct msgs m;
    struct config *c = parse("", &m);
    assert_non_null(c);
    assert_string_equal(c->control, "127.0.0.1:8765");
    assert_int_equal(c->count, 2);
    assert_int_equal(c->timeout, 30);
    assert_int_equal(c->graceful_timeout, 30);
    assert_int_equal(c->job_timeout, 300);
    assert_string_equal(c->app, "builtin:speech");
    assert_int_equal(c->n_urls, 1);
    assert_string_equal(c->urls[0], "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_int_equal(c->n_queues, 1);
    assert_string_equal(c->queues[0], "c2a.jobs");
    assert_int_equal(c->prefetch, 1);
    assert_string_equal(c->format, "wav");
    assert_int_equal(c->fetch_max_bytes, 10485760);
    assert_string_equal(c->allow_private, "no");
    assert_int_equal(c->keep_uploaded, 1);
    assert_int_equal(c->http_max_chars, 4096);
    assert_string_equal(c->output_dir, "/var/lib/c2a-worker/audio");
    config_free(c);
}

static void test_full_file(void **state)
{
    (void)state;
    struct msgs m;
    struct config *c = parse("; comment\n"
                             "# another\n"
                             "[master]\n"
                             "control = unix:/run/c2a.sock  ; inline comment\n"
                             "log_level = debug\n"
                             "[workers]\n"
                             "count = 8\n"
                             "app = /opt/lib/libmine.so:my_app\n"
                             "[broker]\n"
                             "url = amqp://a:b@h1:5672/%2f\n"
                             "url = amqps://h2\n"
                             "queues = q1, q2 ,q3\n"
                             "[speech]\n"
                             "engine = http\n"
                             "http_url = https://tts.example/v1\n"
                             "format = opus\n"
                             "sample_rate = 48000\n"
                             "[fetch]\n"
                             "allow_private = yes\n",
                             &m);
    assert_int_equal(m.n, 0);
    assert_non_null(c);
    assert_string_equal(c->control, "unix:/run/c2a.sock");
    assert_int_equal(c->log_level, 0);
    assert_int_equal(c->count, 8);
    assert_int_equal(c->n_urls, 2);
    assert_string_equal(c->urls[1], "amqps://h2");
    assert_int_equal(c->n_queues, 3);
    assert_string_equal(c->queues[1], "q2");
    assert_string_equal(c->engine, "http");
    assert_int_equal(c->sample_rate, 48000);
    assert_string_equal(c->allow_private, "yes");
    config_free(c);
}

/* Each bad line is reported with its own line number, and parsing goes on. */
static void test_every_error_reported(void **state)
{
    (void)state;
    struct msgs m;
    struct config *c = parse("[master]\n"
                             "bogus = 1\n"
                             "control = nope\n"
                             "[workers]\n"
                             "count = 0\n"
                             "timeout = 3x\n"
                             "[nosuch]\n"
                             "key = 1\n"
                             "[broker]\n"
                             "url = http://x\n"
                             "queues = a,,b\n"
                             "prefetch = 99999999999999999999\n"
                             "just text\n",
                             &m);
    assert_null(c);
    assert_int_equal(m.n, 9);
    assert_string_equal(m.text[0], "t.conf:2: bogus: unknown key in [master]");
    assert_string_equal(m.text[1], "t.conf:3: control: expected host:port or unix:/path");
    assert_string_equal(m.text[2], "t.conf:5: count: out of range (1..256)");
    assert_string_equal(m.text[3], "t.conf:6: timeout: not an integer");
    assert_string_equal(m.text[4], "t.conf:7: [nosuch]: unknown section");
    assert_true(strncmp(m.text[5], "t.conf:10: url: not an AMQP URL", 31) == 0);
    assert_true(strncmp(m.text[6], "t.conf:11: queues:", 18) == 0);
    assert_string_equal(m.text[7], "t.conf:12: prefetch: not an integer");
    assert_string_equal(m.text[8], "t.conf:13: expected 'key = value'");
}

static void expect_one_error(const char *text, const char *want)
{
    struct msgs m;
    struct config *c = parse(text, &m);
    assert_null(c);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.text[0], want);
}

static void test_single_errors(void **state)
{
    (void)state;
    expect_one_error("count = 1\n", "t.conf:1: count: key outside a section");
    expect_one_error("[workers]\ncount = 2\ncount = 3\n",
                     "t.conf:3: count: set twice (first at line 2)");
    expect_one_error("[master\n", "t.conf:1: missing ']' in section header");
    expect_one_error("[master]\ncontrol = 127.0.0.1:0\n", "t.conf:2: control: port must be 1..65535");
    expect_one_error("[master]\ncontrol = 127.0.0.1:70000\n",
                     "t.conf:2: control: port must be 1..65535");
    expect_one_error("[master]\ncontrol = unix:rel/path\n",
                     "t.conf:2: control: unix socket path must be absolute");
    expect_one_error("[master]\nlog_level = loud\n",
                     "t.conf:2: log_level: expected debug, info, warn or error");
    expect_one_error("[master]\nuser = no-such-user-c2a\n", "t.conf:2: user: no such user");
    expect_one_error("[workers]\napp = builtin:nothing\n",
                     "t.conf:2: app: unknown builtin app (builtin:speech, builtin:noop)");
    expect_one_error("[workers]\napp = rel.so:x\n",
                     "t.conf:2: app: expected builtin:NAME or /absolute/path/lib.so:symbol");
    expect_one_error("[workers]\napp = /x.so:9x\n", "t.conf:2: app: symbol must be a C identifier");
    expect_one_error("[speech]\nformat = aac\n",
                     "t.conf:2: format: expected wav, flac, ogg, opus or mp3");
    expect_one_error("[speech]\nsample_rate = 100\n", "t.conf:2: sample_rate: must be 0 or 8000..192000");
    expect_one_error("[speech]\nengine = http\n", "t.conf:2: http_url: required when engine = http");
    expect_one_error("[speech]\nhttp_url = ftp://x\n",
                     "t.conf:2: http_url: expected an http:// or https:// URL");
    expect_one_error("[fetch]\nallow_private = maybe\n", "t.conf:2: allow_private: expected no, yes or a comma list of address ranges (10.0.0.0/8, fd00::/8)");
    expect_one_error("[output]\ndir =\n", "t.conf:2: dir: must not be empty");
    expect_one_error("[output]\nmetadata_language = en_GB\n",
                     "t.conf:2: metadata_language: expected a language tag such as en or en-US");
    expect_one_error("[broker]\nurl = amqp://h:99999/\n", "t.conf:2: url: port must be 1..65535");
    expect_one_error("[broker]\nresults_exchange = a b\n",
                     "t.conf:2: results_exchange: exchange names are 1..255 of [A-Za-z0-9._-:], not amq.*");
    expect_one_error("[broker]\nqueues = amq.direct\n",
                     "t.conf:2: queues: queue names are 1..255 of [A-Za-z0-9._-:], not amq.*");
    expect_one_error("[broker]\nqueue_type = stream\n",
                     "t.conf:2: queue_type: expected classic or quorum");
    expect_one_error("[broker]\nmax_priority = 256\n",
                     "t.conf:2: max_priority: out of range (0..255)");
    expect_one_error("[broker]\nqueue_type = quorum\nmax_priority = 10\n",
                     "t.conf:3: max_priority: quorum queues take no x-max-priority (RabbitMQ 4 "
                     "gives them two priorities of their own); use queue_type = classic for "
                     "priorities");
    expect_one_error("[broker]\n\ntls_cert = /etc/hostname\n",
                     "t.conf:3: tls_cert: needs tls_key too");
    expect_one_error("[broker]\ntls_ca = /nonexistent/ca.pem\n",
                     "t.conf:2: tls_ca: cannot read /nonexistent/ca.pem: No such file or directory");
    expect_one_error("[broker]\ntls_verify = maybe\n", "t.conf:2: tls_verify: expected yes or no");
}

static void test_tls_and_queue_keys(void **state)
{
    (void)state;
    struct msgs m;
    struct config *c = parse("[broker]\nurl = amqps://u:p@broker.example:5671/v\n"
                             "queue_type = quorum\ntls_ca = /etc/hostname\n"
                             "tls_cert = /etc/hostname\ntls_key = /etc/hostname\n"
                             "tls_verify = no\n", &m);
    assert_non_null(c);
    assert_string_equal(c->queue_type, "quorum");
    assert_int_equal(c->max_priority, 0);
    assert_string_equal(c->tls_ca, "/etc/hostname");
    assert_int_equal(c->tls_verify, 0);
    config_free(c);
    c = parse("[broker]\nmax_priority = 10\n", &m);
    assert_non_null(c);
    assert_string_equal(c->queue_type, "classic");
    assert_int_equal(c->max_priority, 10);
    assert_int_equal(c->tls_verify, 1);
    config_free(c);
}

static void test_addr(void **state)
{
    (void)state;
    struct control_addr a;
    const char *why;
    assert_int_equal(config_parse_addr("127.0.0.1:8765", &a, &why), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_string_equal(a.port, "8765");
    assert_int_equal(config_parse_addr("[::1]:80", &a, &why), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(config_parse_addr("localhost:1", &a, &why), 0);
    assert_int_equal(config_parse_addr("unix:/tmp/x.sock", &a, &why), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.path, "/tmp/x.sock");
    assert_int_equal(config_parse_addr(":80", &a, &why), -1);
    assert_int_equal(config_parse_addr("host", &a, &why), -1);
    assert_int_equal(config_parse_addr("ho st:80", &a, &why), -1);
}

static void test_override_and_values(void **state)
{
    (void)state;
    struct config *c = config_defaults();
    char err[128];
    assert_int_equal(config_set(c, "workers", "count", "7", err, sizeof(err)), 0);
    assert_int_equal(c->count, 7);
    assert_int_equal(config_set(c, "workers", "count", "x", err, sizeof(err)), -1);
    assert_string_equal(err, "count: not an integer");
    assert_int_equal(config_set(c, "master", "control_token", "s3cret", err, sizeof(err)), 0);
    /* Secrets and URL passwords never appear in the summary. */
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key *k = config_key_at(i);
        char *v = config_value_string(c, k);
        assert_null(strstr(v, "s3cret"));
        if (strcmp(k->name, "url") == 0)
            assert_string_equal(v, "amqp://guest:***@127.0.0.1:5672/%2f");
        free(v);
    }
    config_free(c);
}

/* The man page and the example file describe every key in the table. */
static void test_docs_cover_table(void **state)
{
    (void)state;
    const char *files[] = {"man/c2a-worker.conf.5", "conf/c2a-worker.conf"};
    for (size_t f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        assert_non_null(fp);
        static char buf[1 << 18];
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
        for (size_t i = 0; i < config_key_count(); i++) {
            const struct config_key *k = config_key_at(i);
            char needle[96];
            if (f == 0)
                snprintf(needle, sizeof(needle), ".It Cm %s", k->name);
            else
                snprintf(needle, sizeof(needle), "\n%s =", k->name);
            if (!strstr(buf, needle))
                fail_msg("%s does not document %s.%s", files[f], k->section, k->name);
        }
    }
    /* And the example file is itself valid. */
    struct msgs m = {0};
    struct config *c = config_load("conf/c2a-worker.conf", collect, &m);
    if (!c)
        fail_msg("conf/c2a-worker.conf: %s", m.text[0]);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_single_errors),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_tls_and_queue_keys),
        cmocka_unit_test(test_override_and_values),
        cmocka_unit_test(test_docs_cover_table),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
