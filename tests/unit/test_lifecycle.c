/* test_lifecycle.c — signals set the stop flag; the grace clock runs. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_lifecycle.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(sigterm_requests_stop_and_wakes_waiters)
{
    int64_t t0;

    ck_assert_int_eq(core_lifecycle_install(5000, NULL, 0), 0);
    ck_assert(!core_lifecycle_stopping());
    ck_assert_int_eq(core_lifecycle_remaining_ms(), 5000);
    ck_assert(!core_lifecycle_wait(20));
    kill(getpid(), SIGTERM);
    t0 = core_mono_ms();
    ck_assert(core_lifecycle_wait(10000));
    ck_assert_int_lt(core_mono_ms() - t0, 1000);     /* woke at once */
    ck_assert(core_lifecycle_stopping());
    ck_assert(!core_lifecycle_forced());
    ck_assert_int_eq(core_lifecycle_signal(), SIGTERM);
    ck_assert_int_gt(core_lifecycle_remaining_ms(), 4000);
    ck_assert_int_le(core_lifecycle_remaining_ms(), 5000);
    kill(getpid(), SIGINT);                            /* second signal */
    ck_assert(core_lifecycle_forced());
    ck_assert_int_eq(core_lifecycle_remaining_ms(), 0);
    core_lifecycle_reset();
    ck_assert(!core_lifecycle_stopping());
}
END_TEST

START_TEST(grace_period_runs_out)
{
    char err[128] = "";
    ck_assert_int_eq(core_lifecycle_install(50, NULL, 0), 0);
    ck_assert(!core_lifecycle_give_up(err, sizeof(err))); /* not stopping */
    core_lifecycle_request_stop();
    ck_assert(core_lifecycle_stopping());
    ck_assert(!core_lifecycle_give_up(NULL, 0) || core_lifecycle_remaining_ms() == 0);
    ck_assert(core_lifecycle_wait(100));
    while (core_lifecycle_remaining_ms() > 0)
        usleep(1000);
    ck_assert_int_eq(core_lifecycle_remaining_ms(), 0);
    ck_assert(core_lifecycle_give_up(err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "shutdown.grace.ms is over"));
    core_lifecycle_reset();
}
END_TEST

START_TEST(sigpipe_is_ignored)
{
    int p[2];

    ck_assert_int_eq(core_lifecycle_install(1000, NULL, 0), 0);
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_int_eq(write(p[1], "x", 1), -1);   /* EPIPE, not death */
    close(p[1]);
    core_lifecycle_reset();
}
END_TEST

/* A stop past its grace names the stage it is stuck in, again every
 * overrun; nothing is said before the grace is over. */
static void overrun(void *arg)
{
    const char *prev;

    (void)arg;
    ck_assert_int_eq(core_lifecycle_install(300, NULL, 0), 0);
    ck_assert_int_eq(core_lifecycle_watchdog_start(200, NULL, 0), 0);
    ck_assert_int_eq(core_lifecycle_watchdog_start(200, NULL, 0), 0); /* idempotent */
    usleep(700000); /* no stop requested: silent */
    prev = core_lifecycle_stage("closing the Kafka consumer");
    ck_assert_ptr_null(prev);
    core_lifecycle_request_stop();
    usleep(400000); /* within grace + overrun (500 ms): silent */
    ck_assert_str_eq(core_lifecycle_stage("closing the Kafka consumer"),
                     "closing the Kafka consumer");
    usleep(800000); /* warned at ~500 ms and ~700 ms */
    core_lifecycle_reset();
}

START_TEST(watchdog_names_the_stuck_stage)
{
    char *log = tu_capture_log(overrun, NULL);
    const char *first, *second;

    ck_assert_ptr_nonnull(log);
    first = strstr(log, "stop overruns shutdown.grace.ms");
    ck_assert_msg(first, "no overrun warning: %s", log);
    ck_assert_ptr_nonnull(strstr(first, "\"stage\":\"closing the Kafka consumer\""));
    ck_assert_ptr_nonnull(strstr(first, "\"grace_ms\":300"));
    second = strstr(first + 1, "stop overruns shutdown.grace.ms");
    ck_assert_msg(second, "warned once only: %s", log);
    /* the first warning came after the grace plus one overrun, not before */
    {
        const char *ms = strstr(first, "\"stopping_for_ms\":");
        ck_assert_ptr_nonnull(ms);
        ck_assert_int_ge(atoi(ms + strlen("\"stopping_for_ms\":")), 500);
    }
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sigterm_requests_stop_and_wakes_waiters);
    tcase_add_test(tc, grace_period_runs_out);
    tcase_add_test(tc, sigpipe_is_ignored);
    tcase_add_test(tc, watchdog_names_the_stuck_stage);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
