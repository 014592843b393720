/* Backoff: doubling, cap, and jitter bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../common/backoff.h"

static void test_doubling_and_cap(void **state)
{
    (void)state;
    assert_int_equal(backoff_delay_ms(0, 500, 30000, 0, 0), 0);
    assert_int_equal(backoff_delay_ms(1, 500, 30000, 0, 0), 500);
    assert_int_equal(backoff_delay_ms(2, 500, 30000, 0, 0), 1000);
    assert_int_equal(backoff_delay_ms(3, 500, 30000, 0, 0), 2000);
    assert_int_equal(backoff_delay_ms(7, 500, 30000, 0, 0), 30000);
    assert_int_equal(backoff_delay_ms(1000000, 500, 30000, 0, 0), 30000);
    assert_int_equal(backoff_delay_ms(UINT32_MAX, 1, UINT32_MAX, 0, 0), UINT32_MAX);
}

static void test_jitter_bounds(void **state)
{
    (void)state;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t r = 0; r < 100000; r += 7) {
        uint32_t d = backoff_delay_ms(3, 500, 30000, 20, r * 2654435761u);
        assert_in_range(d, 1600, 2400);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* The jitter actually spreads the delays. */
    assert_true(lo < 1700);
    assert_true(hi > 2300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling_and_cap),
        cmocka_unit_test(test_jitter_bounds),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
