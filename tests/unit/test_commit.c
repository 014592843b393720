/* The commit thread: closed temporary files become their names with their size
 * and SHA-256, in the order handed over; a file that cannot be committed fails
 * alone with its reason; a discarded one is removed; requests whose owner let go
 * complete without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "../../worker/commit.h"

static char dir[] = "/tmp/c2a-commit-XXXXXX";
static struct commit_req *done_list[16];
static int n_done;

static void on_done(void *ctx, struct commit_req *r)
{
    (void)ctx;
    done_list[n_done++] = r;
}

static struct commit_req *req(const char *tmp_name, const char *content, const char *name)
{
    struct commit_req *r = calloc(1, sizeof(*r));
    snprintf(r->tmp, sizeof(r->tmp), "%s/%s", dir, tmp_name);
    if (content) {
        FILE *f = fopen(r->tmp, "w");
        fputs(content, f);
        fclose(f);
    }
    if (name)
        snprintf(r->path, sizeof(r->path), "%s/%s", dir, name);
    r->arg = r;
    return r;
}

static void run_until(struct event_base *base, int n)
{
    for (int i = 0; i < 1000 && n_done < n; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

static void test_commit_in_order(void **state)
{
    (void)state;
    for (int flush = 0; flush <= 1; flush++) {
        n_done = 0;
        struct event_base *base = event_base_new();
        char err[256];
        struct committer *c = committer_new(base, flush, on_done, NULL, err, sizeof(err));
        assert_non_null(c);
        committer_submit(c, req("t1", "abc", "a.wav"));
        committer_submit(c, req("t2", NULL, "b.wav")); /* no temporary file */
        committer_submit(c, req("t3", "x", NULL));     /* discarded */
        struct commit_req *gone = req("t4", "", "d.wav");
        committer_submit(c, gone);
        gone->arg = NULL; /* its job is gone: it completes all the same */
        assert_int_equal(committer_pending(c), 4);
        run_until(base, 4);
        assert_int_equal(n_done, 4);
        assert_int_equal(committer_pending(c), 0);
        /* In order, each with its outcome. */
        assert_true(done_list[0]->ok);
        assert_string_equal(done_list[0]->enc.sha256,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(done_list[0]->enc.bytes, 3);
        char path[600];
        snprintf(path, sizeof(path), "%s/a.wav", dir);
        assert_int_equal(access(path, F_OK), 0);
        assert_false(done_list[1]->ok);
        assert_non_null(strstr(done_list[1]->err, "t2"));
        assert_true(done_list[2]->ok);
        assert_int_equal(access(done_list[2]->tmp, F_OK), -1);
        assert_null(done_list[3]->arg);
        assert_true(done_list[3]->ok);
        for (int i = 0; i < n_done; i++)
            free(done_list[i]);
        committer_free(c);
        event_base_free(base);
    }
}

/* Freed with requests still out: the thread finishes them, nothing leaks. */
static void test_free_with_requests_out(void **state)
{
    (void)state;
    n_done = 0;
    struct event_base *base = event_base_new();
    char err[256];
    struct committer *c = committer_new(base, 1, on_done, NULL, err, sizeof(err));
    for (int i = 0; i < 5; i++) {
        char t[16], name[16];
        snprintf(t, sizeof(t), "f%d", i);
        snprintf(name, sizeof(name), "f%d.wav", i);
        committer_submit(c, req(t, "data", name));
    }
    committer_free(c);
    assert_int_equal(n_done, 0);
    event_base_free(base);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_in_order),
        cmocka_unit_test(test_free_with_requests_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
