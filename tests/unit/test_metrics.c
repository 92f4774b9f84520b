/* test_metrics.c — core_metrics: exposition text, escaping, names,
 * concurrency, NULL safety. */
#include "testutil.h"
#include "tributary/core_metrics.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const L_TOPIC_CODE[] = { "topic", "code", NULL };
static const char *const L_PATH[] = { "path", NULL };

START_TEST(test_render_exact)
{
    char err[256] = "";
    core_metrics_t *m = core_metrics_new();
    const double b[] = { 0.1, 0.5, 1 };
    core_metric_family_t *c, *g, *h;
    char *txt;
    size_t len = 0;

    ck_assert_ptr_nonnull(m);
    /* declared out of order: rendering sorts families by name */
    h = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_test_latency_seconds",
                            "Latency of a thing.", L_PATH, b, 3, err, sizeof(err));
    ck_assert_msg(h != NULL, "%s", err);
    g = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_test_inflight", "In flight.",
                            NULL, NULL, 0, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    c = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_test_events_total",
                            "Events seen.", L_TOPIC_CODE, NULL, 0, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);

    /* series in creation order, not sorted */
    core_metric_add(core_metrics_series2(c, "payee.raw", "ok"), 3);
    core_metric_inc(core_metrics_series2(c, "a.raw", "err"));
    core_metric_inc(core_metrics_series2(c, "payee.raw", "ok"));
    core_metric_set(core_metrics_series(g, NULL), 2.5);
    core_metric_add(core_metrics_series(g, NULL), -1);

    core_metric_t *hs = core_metrics_series1(h, "/x");
    core_metric_observe(hs, 0.05);
    core_metric_observe(hs, 0.1);  /* le is inclusive */
    core_metric_observe(hs, 0.7);
    core_metric_observe(hs, 3);
    ck_assert(core_metric_value(hs) == 4);
    ck_assert(fabs(core_metric_sum(hs) - 3.85) < 1e-9);

    txt = core_metrics_render(m, &len);
    ck_assert_ptr_nonnull(txt);
    const char *want =
        "# HELP tributary_test_events_total Events seen.\n"
        "# TYPE tributary_test_events_total counter\n"
        "tributary_test_events_total{topic=\"payee.raw\",code=\"ok\"} 4\n"
        "tributary_test_events_total{topic=\"a.raw\",code=\"err\"} 1\n"
        "# HELP tributary_test_inflight In flight.\n"
        "# TYPE tributary_test_inflight gauge\n"
        "tributary_test_inflight 1.5\n"
        "# HELP tributary_test_latency_seconds Latency of a thing.\n"
        "# TYPE tributary_test_latency_seconds histogram\n"
        "tributary_test_latency_seconds_bucket{path=\"/x\",le=\"0.1\"} 2\n"
        "tributary_test_latency_seconds_bucket{path=\"/x\",le=\"0.5\"} 2\n"
        "tributary_test_latency_seconds_bucket{path=\"/x\",le=\"1\"} 3\n"
        "tributary_test_latency_seconds_bucket{path=\"/x\",le=\"+Inf\"} 4\n"
        "tributary_test_latency_seconds_sum{path=\"/x\"} 3.85\n"
        "tributary_test_latency_seconds_count{path=\"/x\"} 4\n";
    ck_assert_str_eq(txt, want);
    ck_assert_uint_eq(len, strlen(want));
    free(txt);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_histogram_no_labels_default_buckets)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *h = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                                  "tributary_x_seconds", "x", NULL, NULL, 0,
                                                  NULL, 0);
    core_metric_t *s = core_metrics_series(h, NULL);
    char *txt;

    ck_assert_ptr_nonnull(s);
    core_metric_observe(s, 0.0004);
    core_metric_observe(s, 20);
    txt = core_metrics_render(m, NULL);
    ck_assert_ptr_nonnull(strstr(txt, "tributary_x_seconds_bucket{le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(txt, "tributary_x_seconds_bucket{le=\"10\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(txt, "tributary_x_seconds_bucket{le=\"+Inf\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(txt, "tributary_x_seconds_sum 20.0004\n"));
    ck_assert_ptr_nonnull(strstr(txt, "tributary_x_seconds_count 2\n"));
    free(txt);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_escaping)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *c = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_esc_total",
                                                  "Help with \\ backslash\nand newline \"q\"",
                                                  L_PATH, NULL, 0, NULL, 0);
    char *txt;

    ck_assert_ptr_nonnull(c);
    core_metric_inc(core_metrics_series1(c, "a\\b\"c\nd"));
    txt = core_metrics_render(m, NULL);
    ck_assert_str_eq(txt,
                     "# HELP tributary_esc_total Help with \\\\ backslash\\nand newline \"q\"\n"
                     "# TYPE tributary_esc_total counter\n"
                     "tributary_esc_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
    free(txt);
    core_metrics_free(m);
}
END_TEST

#define NTHREADS 4
#define NITER 100000

struct worker {
    core_metric_t *c, *g, *h;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < NITER; i++) {
        core_metric_inc(w->c);
        core_metric_add(w->g, 0.5);
        core_metric_observe(w->h, 0.25);
    }
    return NULL;
}

START_TEST(test_concurrent_updates)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *c = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_conc_total",
                                                  "c", NULL, NULL, 0, NULL, 0);
    core_metric_family_t *g = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_conc_gauge",
                                                  "g", NULL, NULL, 0, NULL, 0);
    core_metric_family_t *h = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                                  "tributary_conc_seconds", "h", NULL, NULL, 0,
                                                  NULL, 0);
    struct worker w = { core_metrics_series(c, NULL), core_metrics_series(g, NULL),
                        core_metrics_series(h, NULL) };
    pthread_t th[NTHREADS];
    int i;

    for (i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_run, &w), 0);
    /* render concurrently with the updates: must not crash or deadlock */
    for (i = 0; i < 20; i++)
        free(core_metrics_render(m, NULL));
    for (i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert(core_metric_value(w.c) == (double)NTHREADS * NITER);
    ck_assert(core_metric_value(w.g) == (double)NTHREADS * NITER * 0.5);
    ck_assert(core_metric_value(w.h) == (double)NTHREADS * NITER);
    ck_assert(core_metric_sum(w.h) == (double)NTHREADS * NITER * 0.25);
    core_metrics_free(m);
}
END_TEST

struct creator {
    core_metric_family_t *f;
    int id;
};

static void *creator_run(void *arg)
{
    struct creator *cr = arg;
    char v[16];
    int i;

    for (i = 0; i < 200; i++) {
        snprintf(v, sizeof(v), "p%d", i % 50);
        core_metric_inc(core_metrics_series1(cr->f, v));
    }
    return NULL;
}

START_TEST(test_concurrent_series_creation)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *f = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cc_total",
                                                  "c", L_PATH, NULL, 0, NULL, 0);
    struct creator cr[NTHREADS];
    pthread_t th[NTHREADS];
    int i;

    for (i = 0; i < NTHREADS; i++) {
        cr[i].f = f;
        cr[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, creator_run, &cr[i]), 0);
    }
    for (i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof(v), "p%d", i);
        ck_assert(core_metric_value(core_metrics_series1(f, v)) == NTHREADS * 4);
    }
    core_metrics_free(m);
}
END_TEST

START_TEST(test_bad_names)
{
    char err[256];
    core_metrics_t *m = core_metrics_new();
    const char *const bad_label[] = { "9x", NULL };
    const char *const reserved_label[] = { "__x", NULL };
    const char *const le_label[] = { "le", NULL };
    const char *const dup_labels[] = { "a", "a", NULL };
    const char *const many[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", NULL };
    const double unsorted[] = { 1, 0.5 };
    const double nan_b[] = { NAN };

    err[0] = '\0';
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "other_prefix", "", NULL,
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "tributary_"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_events", "",
                                           NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "_total"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_bad-name", "",
                                           NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "tributary_bad-name"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_", "", NULL, NULL,
                                           0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "", "", NULL, NULL, 0, err,
                                           sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, NULL, "", NULL, NULL, 0, err,
                                           sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "1tributary_x", "", NULL,
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_x", "", bad_label,
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "9x"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_x", "",
                                           reserved_label, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_x", "",
                                           le_label, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_x", "", dup_labels,
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_x", "", many, NULL,
                                           0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_x", "", NULL,
                                           unsorted, 2, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "ascending"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_x", "", NULL,
                                           nan_b, 1, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, (core_metric_kind_t)42, "tributary_x", "", NULL,
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(NULL, CORE_METRIC_GAUGE, "tributary_x", "", NULL,
                                           NULL, 0, err, sizeof(err)));
    /* none of the refused ones were registered */
    char *txt = core_metrics_render(m, NULL);
    ck_assert_str_eq(txt, "");
    free(txt);
    /* errstr may be NULL */
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "bad", "", NULL, NULL, 0,
                                           NULL, 0));
    core_metrics_free(m);
}
END_TEST

START_TEST(test_redeclaration)
{
    char err[256];
    core_metrics_t *m = core_metrics_new();
    const char *const other[] = { "topic", NULL };
    const double b1[] = { 1, 2 };
    const double b2[] = { 1, 3 };
    core_metric_family_t *f1, *f2, *h1;

    f1 = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_re_total", "h", L_PATH, NULL, 0,
                             err, sizeof(err));
    ck_assert_ptr_nonnull(f1);
    f2 = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_re_total", "other help", L_PATH,
                             NULL, 0, err, sizeof(err));
    ck_assert_ptr_eq(f1, f2);
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_re_total", "h",
                                           L_PATH, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "tributary_re_total"));
    ck_assert_ptr_nonnull(strstr(err, "counter"));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_re_total", "h",
                                           other, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_re_total", "h",
                                           NULL, NULL, 0, err, sizeof(err)));
    h1 = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_re_seconds", "h", NULL, b1, 2,
                             err, sizeof(err));
    ck_assert_ptr_nonnull(h1);
    ck_assert_ptr_eq(core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_re_seconds", "h",
                                         NULL, b1, 2, err, sizeof(err)), h1);
    ck_assert_ptr_null(core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_re_seconds",
                                           "h", NULL, b2, 2, err, sizeof(err)));
    /* same label values give the same series */
    ck_assert_ptr_eq(core_metrics_series1(f1, "a"), core_metrics_series1(f1, "a"));
    ck_assert_ptr_ne(core_metrics_series1(f1, "a"), core_metrics_series1(f1, "b"));
    core_metrics_free(m);
}
END_TEST

START_TEST(test_null_safe_and_kind_mismatch)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *c = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_n_total",
                                                  "c", L_TOPIC_CODE, NULL, 0, NULL, 0);
    core_metric_family_t *h = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_n_seconds",
                                                  "h", NULL, NULL, 0, NULL, 0);
    core_metric_t *s, *hs;

    core_metric_inc(NULL);
    core_metric_add(NULL, 1);
    core_metric_set(NULL, 1);
    core_metric_observe(NULL, 1);
    ck_assert(core_metric_value(NULL) == 0);
    ck_assert(core_metric_sum(NULL) == 0);
    ck_assert_ptr_null(core_metrics_series(NULL, NULL));
    ck_assert_ptr_null(core_metrics_series1(NULL, "x"));
    core_metrics_family_clear(NULL);
    ck_assert_ptr_null(core_metrics_render(NULL, NULL));
    core_metrics_free(NULL);

    s = core_metrics_series1(c, "t"); /* missing second value: "" */
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_eq(s, core_metrics_series2(c, "t", ""));
    ck_assert_ptr_nonnull(core_metrics_series(c, NULL)); /* all values "" */
    core_metric_add(s, -5);      /* counters never go down */
    core_metric_add(s, NAN);
    core_metric_set(s, 10);      /* not a gauge */
    core_metric_observe(s, 1);   /* not a histogram */
    ck_assert(core_metric_value(s) == 0);
    core_metric_add(s, 2);
    ck_assert(core_metric_value(s) == 2);

    hs = core_metrics_series(h, NULL);
    core_metric_inc(hs);
    core_metric_set(hs, 3);
    core_metric_observe(hs, NAN);
    ck_assert(core_metric_value(hs) == 0);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_family_clear)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *g = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_lag",
                                                  "lag", L_PATH, NULL, 0, NULL, 0);
    core_metric_t *p0 = core_metrics_series1(g, "0");
    char *txt;

    core_metric_set(p0, 7);
    core_metric_set(core_metrics_series1(g, "1"), 8);
    core_metrics_family_clear(g);
    core_metric_set(p0, 9); /* stale pointer: safe, not shown */
    txt = core_metrics_render(m, NULL);
    /* the family stays declared: HELP and TYPE, no sample */
    ck_assert_str_eq(txt, "# HELP tributary_lag lag\n# TYPE tributary_lag gauge\n");
    free(txt);
    ck_assert_ptr_eq(core_metrics_series1(g, "0"), p0); /* revived at zero */
    ck_assert(core_metric_value(p0) == 0);
    txt = core_metrics_render(m, NULL);
    ck_assert_str_eq(txt, "# HELP tributary_lag lag\n# TYPE tributary_lag gauge\n"
                          "tributary_lag{path=\"0\"} 0\n");
    free(txt);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_value_formatting)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_family_t *g = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_fmt",
                                                  "f", L_PATH, NULL, 0, NULL, 0);
    char *txt;

    core_metric_set(core_metrics_series1(g, "a"), 1e21);
    core_metric_set(core_metrics_series1(g, "b"), 0.1 + 0.2);
    core_metric_set(core_metrics_series1(g, "c"), -INFINITY);
    core_metric_set(core_metrics_series1(g, "d"), NAN);
    core_metric_set(core_metrics_series1(g, "e"), 123456789);
    txt = core_metrics_render(m, NULL);
    ck_assert_ptr_nonnull(strstr(txt, "{path=\"a\"} 1e+21\n"));
    ck_assert_ptr_nonnull(strstr(txt, "{path=\"b\"} 0.30000000000000004\n"));
    ck_assert_ptr_nonnull(strstr(txt, "{path=\"c\"} -Inf\n"));
    ck_assert_ptr_nonnull(strstr(txt, "{path=\"d\"} NaN\n"));
    ck_assert_ptr_nonnull(strstr(txt, "{path=\"e\"} 123456789\n"));
    free(txt);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_global)
{
    core_metrics_t *g1 = core_metrics_global();

    ck_assert_ptr_nonnull(g1);
    ck_assert_ptr_eq(core_metrics_global(), g1);
    ck_assert_ptr_nonnull(core_metrics_family(g1, CORE_METRIC_COUNTER, "tributary_g_total", "g",
                                              NULL, NULL, 0, NULL, 0));
    core_metrics_global_free();
    core_metrics_global_free(); /* twice is fine */
    core_metrics_t *g2 = core_metrics_global();
    ck_assert_ptr_nonnull(g2);
    char *txt = core_metrics_render(g2, NULL);
    ck_assert_ptr_null(strstr(txt, "tributary_g_total"));
    free(txt);
    core_metrics_global_free();
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_render_exact);
    tcase_add_test(tc, test_histogram_no_labels_default_buckets);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_concurrent_updates);
    tcase_add_test(tc, test_concurrent_series_creation);
    tcase_add_test(tc, test_bad_names);
    tcase_add_test(tc, test_redeclaration);
    tcase_add_test(tc, test_null_safe_and_kind_mismatch);
    tcase_add_test(tc, test_family_clear);
    tcase_add_test(tc, test_value_formatting);
    tcase_add_test(tc, test_global);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { metrics_suite() };

    return tu_run(s, 1);
}
