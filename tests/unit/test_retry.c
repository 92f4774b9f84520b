/* test_retry.c — backoff bounds, cap, jitter spread; breaker transitions. */
#include "testutil.h"
#include "tributary/core_retry.h"

START_TEST(backoff_grows_and_caps)
{
    core_backoff b = { 100, 5000, 2.0, 0.0, 0 };

    ck_assert_int_eq(core_backoff_delay_ms(&b, 1), 100);
    ck_assert_int_eq(core_backoff_delay_ms(&b, 2), 200);
    ck_assert_int_eq(core_backoff_delay_ms(&b, 5), 1600);
    ck_assert_int_eq(core_backoff_delay_ms(&b, 7), 5000);
    ck_assert_int_eq(core_backoff_delay_ms(&b, 10000), 5000);   /* no overflow */
    ck_assert_int_eq(core_backoff_delay_ms(&b, 0), 100);
}
END_TEST

START_TEST(jitter_stays_in_range_and_spreads)
{
    core_backoff b = { 1000, 60000, 2.0, 0.5, 0 };
    int64_t lo = INT64_MAX, hi = 0;

    core_backoff_seed(42);
    for (int i = 0; i < 2000; i++) {
        int64_t d = core_backoff_delay_ms(&b, 3);   /* ceiling 4000 */
        ck_assert_int_ge(d, 2000);
        ck_assert_int_le(d, 4000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ck_assert_int_lt(lo, 2200);   /* spread over the range, not constant */
    ck_assert_int_gt(hi, 3800);
}
END_TEST

START_TEST(attempts_exhaust)
{
    core_backoff b = { 10, 100, 2.0, 0.2, 3 };
    ck_assert(!core_backoff_exhausted(&b, 3));
    ck_assert(core_backoff_exhausted(&b, 4));
    b.max_attempts = 0;
    ck_assert(!core_backoff_exhausted(&b, 1000000));
}
END_TEST

START_TEST(breaker_opens_half_opens_closes)
{
    core_breaker_t *b = core_breaker_new("test", 3, 1000, 1);
    int64_t t = 10000;

    ck_assert(core_breaker_allow(b, t));
    core_breaker_failure(b, t);
    core_breaker_failure(b, t);
    ck_assert_int_eq(core_breaker_get_state(b, t), CORE_BREAKER_CLOSED);
    core_breaker_success(b, t);                  /* resets the streak */
    core_breaker_failure(b, t);
    core_breaker_failure(b, t);
    ck_assert_int_eq(core_breaker_get_state(b, t), CORE_BREAKER_CLOSED);
    core_breaker_failure(b, t);
    ck_assert_int_eq(core_breaker_get_state(b, t), CORE_BREAKER_OPEN);
    ck_assert(!core_breaker_allow(b, t + 10));
    ck_assert_int_eq(core_breaker_wait_ms(b, t + 400), 600);

    /* After open_ms: one trial call; a failure re-opens. */
    ck_assert(core_breaker_allow(b, t + 1000));
    ck_assert(!core_breaker_allow(b, t + 1001));
    core_breaker_failure(b, t + 1002);
    ck_assert_int_eq(core_breaker_get_state(b, t + 1003), CORE_BREAKER_OPEN);

    /* Next trial succeeds: closed. */
    ck_assert(core_breaker_allow(b, t + 2100));
    core_breaker_success(b, t + 2101);
    ck_assert_int_eq(core_breaker_get_state(b, t + 2102), CORE_BREAKER_CLOSED);
    ck_assert(core_breaker_allow(b, t + 2103));
    core_breaker_free(b);
    core_breaker_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, backoff_grows_and_caps);
    tcase_add_test(tc, jitter_stays_in_range_and_spreads);
    tcase_add_test(tc, attempts_exhaust);
    tcase_add_test(tc, breaker_opens_half_opens_closes);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
