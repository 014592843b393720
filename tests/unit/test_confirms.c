/* Publisher confirms: the exact set of unconfirmed publishes, whatever order the
 * broker confirms them in (issue: a single ack raised a high-water mark, and a
 * later multiple ack then skipped the lower tags, so a job was never acked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../worker/confirms.h"

static struct confirms with(uint64_t n)
{
    struct confirms c = {0};
    for (uint64_t s = 1; s <= n; s++)
        confirms_add(&c, s);
    return c;
}

/* Take and check that exactly `want` (ascending, count k) came out. */
static void take(struct confirms *c, uint64_t tag, int multiple, const uint64_t *want, size_t k)
{
    uint64_t *out;
    size_t n = confirms_take(c, tag, multiple, &out);
    assert_int_equal(n, k);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(out[i], want[i]);
    free(out);
}

static void test_in_order(void **state)
{
    (void)state;
    struct confirms c = with(3);
    take(&c, 1, 0, (uint64_t[]){1}, 1);
    take(&c, 3, 1, (uint64_t[]){2, 3}, 2);
    assert_int_equal(c.n, 0);
    confirms_free(&c);
}

/* The sequence seen in production: 7 alone, then "up to 6". */
static void test_single_then_lower_multiple(void **state)
{
    (void)state;
    struct confirms c = with(8);
    take(&c, 7, 0, (uint64_t[]){7}, 1);
    take(&c, 6, 1, (uint64_t[]){1, 2, 3, 4, 5, 6}, 6);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.seq[0], 8);
    take(&c, 8, 1, (uint64_t[]){8}, 1);
    assert_int_equal(c.n, 0);
    confirms_free(&c);
}

static void test_multiple_over_gaps(void **state)
{
    (void)state;
    struct confirms c = with(10);
    take(&c, 2, 0, (uint64_t[]){2}, 1);
    take(&c, 5, 0, (uint64_t[]){5}, 1);
    take(&c, 9, 0, (uint64_t[]){9}, 1);
    take(&c, 6, 1, (uint64_t[]){1, 3, 4, 6}, 4);
    /* a multiple ack whose own tag was settled already still settles below it */
    take(&c, 9, 1, (uint64_t[]){7, 8}, 2);
    take(&c, 10, 0, (uint64_t[]){10}, 1);
    assert_int_equal(c.n, 0);
    confirms_free(&c);
}

static void test_duplicates_and_unknown(void **state)
{
    (void)state;
    struct confirms c = with(4);
    take(&c, 3, 0, (uint64_t[]){3}, 1);
    take(&c, 3, 0, NULL, 0);  /* settled twice: nothing */
    take(&c, 99, 0, NULL, 0); /* never published */
    take(&c, 0, 1, NULL, 0);
    take(&c, 99, 1, (uint64_t[]){1, 2, 4}, 3);
    take(&c, 4, 1, NULL, 0);
    confirms_free(&c);
}

/* Adding while settling: numbers published after a confirm are kept. */
static void test_add_after_take(void **state)
{
    (void)state;
    struct confirms c = with(3);
    take(&c, 2, 1, (uint64_t[]){1, 2}, 2);
    confirms_add(&c, 4);
    confirms_add(&c, 5);
    take(&c, 4, 1, (uint64_t[]){3, 4}, 2);
    confirms_reset(&c);
    assert_int_equal(c.n, 0);
    confirms_add(&c, 1); /* a new channel starts again at 1 */
    take(&c, 1, 0, (uint64_t[]){1}, 1);
    confirms_free(&c);
}

/* A long random replay: every publish is settled exactly once. */
static void test_random_replay(void **state)
{
    (void)state;
    enum { N = 5000 };
    static unsigned char settled[N + 1];
    struct confirms c = with(N);
    unsigned rnd = 12345;
    size_t total = 0;
    while (c.n) {
        rnd = rnd * 1103515245u + 12345u;
        uint64_t tag = 1 + (rnd >> 8) % N;
        int multiple = (rnd >> 4) & 1;
        uint64_t *out;
        size_t n = confirms_take(&c, tag, multiple, &out);
        for (size_t i = 0; i < n; i++) {
            assert_true(out[i] <= tag);
            assert_int_equal(settled[out[i]], 0);
            settled[out[i]] = 1;
        }
        total += n;
        free(out);
    }
    assert_int_equal(total, N);
    confirms_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_single_then_lower_multiple),
        cmocka_unit_test(test_multiple_over_gaps),
        cmocka_unit_test(test_duplicates_and_unknown),
        cmocka_unit_test(test_add_after_take),
        cmocka_unit_test(test_random_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
