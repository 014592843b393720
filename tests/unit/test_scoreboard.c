/* Scoreboard: slot allocation, and sharing across a real fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/scoreboard.h"

static void test_acquire_release(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(4);
    assert_non_null(sb);
    int a = scoreboard_acquire(sb), b = scoreboard_acquire(sb);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(atomic_load(&scoreboard_slot(sb, a)->state), WS_BOOTING);
    assert_int_equal(scoreboard_acquire(sb), 2);
    assert_int_equal(scoreboard_acquire(sb), 3);
    assert_int_equal(scoreboard_acquire(sb), -1);
    atomic_store(&scoreboard_slot(sb, 1)->jobs_ok, 42);
    scoreboard_release(sb, 1);
    assert_int_equal(scoreboard_acquire(sb), 1);
    /* A reused slot starts from zero. */
    assert_int_equal(atomic_load(&scoreboard_slot(sb, 1)->jobs_ok), 0);
    scoreboard_destroy(sb);
}

static void test_job_text(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(1);
    struct sb_slot *s = scoreboard_slot(sb, scoreboard_acquire(sb));
    char buf[SCOREBOARD_JOB_LEN];
    slot_get_job(s, buf, sizeof(buf));
    assert_string_equal(buf, "");
    slot_set_job(s, "job-1");
    slot_get_job(s, buf, sizeof(buf));
    assert_string_equal(buf, "job-1");
    assert_true(atomic_load(&s->job_started_mono_ms) > 0);
    char longid[300];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    slot_set_job(s, longid);
    slot_get_job(s, buf, sizeof(buf));
    assert_int_equal(strlen(buf), SCOREBOARD_JOB_LEN - 1);
    slot_set_job(s, NULL);
    slot_get_job(s, buf, sizeof(buf));
    assert_string_equal(buf, "");
    assert_int_equal(atomic_load(&s->job_started_mono_ms), 0);
    scoreboard_destroy(sb);
}

static void test_shared_across_fork(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(2);
    int idx = scoreboard_acquire(sb);
    struct sb_slot *s = scoreboard_slot(sb, idx);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        atomic_store(&s->pid, getpid());
        atomic_store(&s->state, WS_BUSY);
        for (int i = 0; i < 1000; i++)
            atomic_fetch_add(&s->jobs_ok, 1);
        slot_set_job(s, "from-child");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(atomic_load(&s->pid), pid);
    assert_int_equal(atomic_load(&s->state), WS_BUSY);
    assert_int_equal(atomic_load(&s->jobs_ok), 1000);
    char buf[SCOREBOARD_JOB_LEN];
    slot_get_job(s, buf, sizeof(buf));
    assert_string_equal(buf, "from-child");
    assert_string_equal(worker_state_name(WS_BUSY), "busy");
    scoreboard_destroy(sb);
}

/* Per-queue figures: counted by index, summed by name, unknown codes as
 * "other", a queue the worker does not have not counted. */
static void test_queue_figures(void **state)
{
    (void)state;
    struct scoreboard *sb = scoreboard_create(2);
    int i = scoreboard_acquire(sb);
    struct sb_slot *s = scoreboard_slot(sb, i);
    char *names[] = {"a", "b"};
    slot_set_queues(s, names, 2);
    assert_int_equal(slot_queue_index(s, "b"), 1);
    assert_int_equal(slot_queue_index(s, "c"), -1);
    slot_count_outcome(s, 0, JO_OK, NULL, 3000);
    slot_count_outcome(s, 1, JO_RETRIED, "fetch_failed", 2000000);
    slot_count_outcome(s, 1, JO_FAILED, "my_app_code", 40000000);
    slot_count_outcome(s, -1, JO_OK, NULL, 1);
    slot_observe_stage(s, ST_COMMIT, 7000);

    struct queue_totals list[2];
    int n = 0;
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 2; k++)
            slot_queue_totals(s, k, queue_totals_find(list, &n, 2, names[k]));
    assert_int_equal(n, 2);
    assert_null(queue_totals_find(list, &n, 2, "c"));
    assert_int_equal(list[0].outcomes[JO_OK], 2);
    assert_int_equal(list[1].outcomes[JO_RETRIED], 2);
    assert_int_equal(list[1].errors[sb_error_code_index("fetch_failed")], 2);
    assert_int_equal(list[1].errors[SB_CODES - 1], 2);
    assert_string_equal(sb_error_codes[sb_error_code_index("my_app_code")], "other");
    /* 40 s: past the 30 s bound, inside 60 s; cumulative buckets */
    assert_int_equal(list[1].seconds[JO_FAILED].le[HIST_JOB_BUCKETS - 3], 0);
    assert_int_equal(list[1].seconds[JO_FAILED].le[HIST_JOB_BUCKETS - 2], 2);
    assert_int_equal(list[1].seconds[JO_FAILED].le[HIST_JOB_BUCKETS], 2);
    assert_int_equal(list[1].seconds[JO_FAILED].sum_us, 80000000);

    struct hist_sum st[ST_COUNT] = {0};
    slot_stage_totals(s, st);
    assert_int_equal(st[ST_COMMIT].le[1], 1); /* 7 ms <= 10 ms */
    assert_int_equal(st[ST_COMMIT].le[0], 0);
    assert_string_equal(job_stage_names[ST_COMMIT], "commit");

    /* A slot taken again starts from nothing. */
    scoreboard_release(sb, i);
    i = scoreboard_acquire(sb);
    assert_int_equal(atomic_load(&scoreboard_slot(sb, i)->nqueues), 0);
    assert_int_equal(atomic_load(&scoreboard_slot(sb, i)->queues[0].outcomes[JO_OK]), 0);
    scoreboard_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_release),
        cmocka_unit_test(test_job_text),
        cmocka_unit_test(test_shared_across_fork),
        cmocka_unit_test(test_queue_figures),
    };
    return cmocka_run_group_tests_name("scoreboard", tests, NULL, NULL);
}
