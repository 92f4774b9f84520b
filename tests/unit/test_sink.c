/* test_sink.c — core_sink's loop on librdkafka's mock cluster, with a test
 * plugin that answers OK, RETRY or ERROR on cue: offsets committed only
 * after OK, nothing committed while RETRY and every record written after
 * it, poison and refused records to the DLQ with the rest written, a
 * revoke in the middle of a batch, the shutdown drain within the grace
 * period, batch sizes at the capacity and ±1. Each test runs the sink on a
 * thread of its own and stops it as a signal would. Every first group join
 * costs 3 s on the 2.0.2 mock.
 *
 * The plugin modes: inline flush, pipelined send/recv, writer thread
 * (loop tests run a case in each). */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "testutil.h"
#include "tributary/core_audit.h"
#include "tributary/core_http.h"
#include "tributary/core_httpc.h"
#include "tributary/core_kafka.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_sink.h"

#define DEADLINE_MS 30000
#define MAXREC 64
#define TOPIC "sinkds.valid"
#define DLQ "sinkds.dlq"

/* ---- the mock cluster ------------------------------------------------------ */

static rd_kafka_t *g_mrk;
static rd_kafka_mock_cluster_t *g_mc;
static char g_boot[256];
static core_metrics_t *g_reg;
static core_avro_catalog_t *g_cat;
static char g_group[64];

static void setup(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    core_log_init("test_sink", getenv("TS_DEBUG") ? CORE_LOG_DEBUG : CORE_LOG_WARN);
    ck_assert(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof(err)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) == RD_KAFKA_CONF_OK);
    g_mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(g_mrk, "mock: %s", err);
    g_mc = rd_kafka_handle_mock_cluster(g_mrk);
    snprintf(g_boot, sizeof(g_boot), "%s", rd_kafka_mock_cluster_bootstraps(g_mc));
    ck_assert_int_eq(rd_kafka_mock_topic_create(g_mc, TOPIC, 1, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(g_mc, DLQ, 1, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(g_mc, CORE_AUDIT_TOPIC, 1, 1), 0);
    g_reg = core_metrics_new();
    g_cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(g_cat, "catalogue: %s", err);
    snprintf(g_group, sizeof(g_group), "sink-%s", tu_unique());
    core_lifecycle_reset();
}

static void teardown(void)
{
    core_lifecycle_reset();
    rd_kafka_destroy(g_mrk);
    ck_assert_int_eq(rd_kafka_wait_destroyed(10000), 0);
    core_avro_catalog_free(g_cat);
    core_metrics_free(g_reg);
}

static int64_t watermark(const char *topic)
{
    int64_t lo = -1, hi = -1;
    ck_assert_int_eq(rd_kafka_query_watermark_offsets(g_mrk, topic, 0, &lo, &hi, 5000), 0);
    return hi;
}

/* The group's committed offset of partition 0 (RD_KAFKA_OFFSET_INVALID:
 * none). */
static int64_t committed(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t off;

    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", g_boot, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "group.id", g_group, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    ck_assert(rk);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0);
    ck_assert_int_eq(rd_kafka_committed(rk, l, 5000), 0);
    off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* committed(), or RD_KAFKA_OFFSET_INVALID while the mock refuses the
 * OffsetFetch (an error a test injected). */
static int64_t committed_try(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t off = RD_KAFKA_OFFSET_INVALID;

    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", g_boot, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "group.id", g_group, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    ck_assert(rk);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0);
    if (rd_kafka_committed(rk, l, 5000) == 0 && l->elems[0].err == 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

static bool committed_try_reaches(void *arg)
{
    return committed_try() >= *(int64_t *)arg;
}

/* Produce values[i] (NULL: an empty value) keyed by i. */
static void produce(const char *const *values, size_t n)
{
    char err[512];
    core_kafka_prop ov[] = { { "bootstrap.servers", g_boot } };
    core_kafka_producer_opts o = { .overrides = ov, .noverrides = 1, .metrics = g_reg };
    core_kafka_producer_t *p = core_kafka_producer_new(&o, err, sizeof(err));

    ck_assert_msg(p, "%s", err);
    for (size_t i = 0; i < n; i++) {
        char key[16], id[16];
        int kl = snprintf(key, sizeof(key), "k%zu", i);
        /* what svc-ingest writes, and one header no stage keeps */
        core_kafka_header h[] = { { "tb.id", id, (size_t)snprintf(id, sizeof(id), "id-%zu", i) },
                                  { "tb.batch", "b1", 2 },
                                  { "tb.ingest.ts", "1700000000000", 13 },
                                  { "x.other", "dropped", 7 } };
        ck_assert_msg(core_kafka_produce(p, TOPIC, key, (size_t)kl, values[i],
                                         values[i] ? strlen(values[i]) : 0, h,
                                         CORE_ARRAY_SIZE(h), NULL, err, sizeof(err)) == CORE_OK,
                      "%s", err);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 10000), 0);
    core_kafka_producer_free(p);
}

static void produce_n(size_t from, size_t n)
{
    char buf[MAXREC][16];
    const char *v[MAXREC] = { 0 };

    ck_assert_uint_le(n, MAXREC);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof(buf[i]), "v-%zu", from + i);
        v[i] = buf[i];
    }
    produce(v, n);
}

/* ---- the test plugin ----------------------------------------------------------- */

enum { MODE_INLINE, MODE_PIPELINED, MODE_WRITER };

static struct {
    pthread_mutex_t mu;
    atomic_int retries_left;  /* answer RETRY this many more times (-1: always) */
    atomic_int flushes;       /* batch calls answered */
    atomic_int retried;       /* batch calls answered RETRY */
    int written[MAXREC];      /* OK fates per value index */
    size_t sizes[256];        /* size of each batch answered OK */
    size_t nsizes;
    atomic_int inited, exited, released, prepared;
    atomic_int waits;         /* waiting() calls */
    atomic_int prepared_at_wait; /* P.prepared at the last waiting() */
    atomic_int unseen_flushes; /* batches handed over with records waiting() did not see */
} P;

static void plugin_reset(void)
{
    memset(&P, 0, sizeof(P));
    pthread_mutex_init(&P.mu, NULL);
}

static int value_index(const core_sink_record *r)
{
    const char *v = r->data;
    const char *dash = strchr(v, '-');
    return dash ? atoi(dash + 1) : -1;
}

static int tp_init(core_sink_t *s, void *conf, void **ctxp, char *errstr, size_t errstr_size)
{
    size_t n;
    (void)errstr;
    (void)errstr_size;
    ck_assert_ptr_eq(conf, &P);
    ck_assert_str_eq(core_sink_datasets(s, &n)[0].name, "sinkds");
    *ctxp = &P;
    atomic_fetch_add(&P.inited, 1);
    return 0;
}

static core_sink_res_t tp_prepare(void *ctx, core_sink_record *rec, char *errstr,
                                  size_t errstr_size)
{
    const rd_kafka_message_t *m = rec->rkm;
    char *v;

    ck_assert_ptr_eq(ctx, &P);
    ck_assert(m->payload && m->len > 0); /* empty values never get here */
    if (m->len >= 6 && memcmp(m->payload, "poison", 6) == 0) {
        snprintf(errstr, errstr_size, "test: poison value");
        return CORE_SINK_ERROR;
    }
    v = strndup(m->payload, m->len);
    ck_assert(v);
    rec->data = v;
    rec->id = v;
    rec->key = v;
    rec->batch_id = "b1";
    atomic_fetch_add(&P.prepared, 1);
    return CORE_SINK_OK;
}

static core_sink_res_t tp_write(core_sink_record *const *recs, size_t n, char *errstr,
                                size_t errstr_size)
{
    int left = atomic_load(&P.retries_left);

    atomic_fetch_add(&P.flushes, 1);
    if (left != 0) {
        if (left > 0)
            atomic_fetch_sub(&P.retries_left, 1);
        atomic_fetch_add(&P.retried, 1);
        snprintf(errstr, errstr_size, "test: sink unreachable");
        return CORE_SINK_RETRY;
    }
    bool refused = false;
    pthread_mutex_lock(&P.mu);
    for (size_t i = 0; i < n; i++) {
        const char *v = recs[i]->data;
        if (strncmp(v, "bad", 3) == 0) {
            recs[i]->res = CORE_SINK_ERROR;
            snprintf(recs[i]->reason, sizeof(recs[i]->reason), "test: refused %s", v);
            recs[i]->field = "amount";
            refused = true;
            continue;
        }
        int k = value_index(recs[i]);
        if (k >= 0 && k < MAXREC)
            P.written[k]++;
        if (k % 2)
            recs[i]->outcome = "stale_skipped";
    }
    if (P.nsizes < CORE_ARRAY_SIZE(P.sizes))
        P.sizes[P.nsizes++] = n;
    pthread_mutex_unlock(&P.mu);
    return refused ? CORE_SINK_ERROR : CORE_SINK_OK;
}

static core_sink_res_t tp_flush(void *ctx, core_sink_record *const *recs, size_t n,
                                char *errstr, size_t errstr_size)
{
    ck_assert_ptr_eq(ctx, &P);
    return tp_write(recs, n, errstr, errstr_size);
}

static core_sink_res_t tp_send(void *ctx, core_sink_record *const *recs, size_t n,
                               char *errstr, size_t errstr_size)
{
    (void)ctx;
    (void)recs;
    (void)n;
    (void)errstr;
    (void)errstr_size;
    return CORE_SINK_OK;
}

static void tp_release(void *ctx, core_sink_record *rec)
{
    (void)ctx;
    free(rec->data);
    atomic_fetch_add(&P.released, 1);
}

static bool tp_ready(void *ctx, char *reason, size_t reason_size)
{
    (void)ctx;
    (void)reason;
    (void)reason_size;
    return true;
}

static void tp_exit(void *ctx)
{
    ck_assert_ptr_eq(ctx, &P);
    atomic_fetch_add(&P.exited, 1);
}

/* waiting(): on the main thread, before a wait and before a hand-over:
 * every record prepared so far has been seen by it when a batch goes */
static void tp_waiting(void *ctx)
{
    ck_assert_ptr_eq(ctx, &P);
    atomic_fetch_add(&P.waits, 1);
    atomic_store(&P.prepared_at_wait, atomic_load(&P.prepared));
}

static core_sink_res_t tp_flush_seen(void *ctx, core_sink_record *const *recs, size_t n,
                                     char *errstr, size_t errstr_size)
{
    if (atomic_load(&P.prepared_at_wait) != atomic_load(&P.prepared))
        atomic_fetch_add(&P.unseen_flushes, 1);
    return tp_flush(ctx, recs, n, errstr, errstr_size);
}

static const core_sink_plugin plugin_waiting = {
    .name = "test", .outcome_ok = "persisted", .outcome_dead = "dead",
    .init = tp_init, .prepare = tp_prepare, .flush = tp_flush_seen, .release = tp_release,
    .ready = tp_ready, .exit = tp_exit, .waiting = tp_waiting,
};

static const core_sink_plugin plugin_inline = {
    .name = "test", .outcome_ok = "persisted", .outcome_dead = "dead",
    .init = tp_init, .prepare = tp_prepare, .flush = tp_flush, .release = tp_release,
    .ready = tp_ready, .exit = tp_exit,
};
/* pipelined: send() does nothing, recv() writes */
static const core_sink_plugin plugin_pipelined = {
    .name = "test", .outcome_ok = "persisted", .outcome_dead = "dead",
    .init = tp_init, .prepare = tp_prepare, .flush = tp_flush, .send = tp_send,
    .recv = tp_flush, .release = tp_release, .ready = tp_ready, .exit = tp_exit,
};

/* ---- running the sink ------------------------------------------------------------ */

static const core_sink_dataset g_ds[] = { { "sinkds", TOPIC, DLQ } };
static const core_kafka_prop g_ov_tmpl[] = {
    { "bootstrap.servers", NULL },
    { "session.timeout.ms", "4500" },
    { "heartbeat.interval.ms", "200" },
    { "topic.metadata.refresh.interval.ms", "1000" },
    { "fetch.wait.max.ms", "50" },
};

typedef struct run {
    core_sink_opts o;
    core_kafka_prop ov[CORE_ARRAY_SIZE(g_ov_tmpl)];
    pthread_t th;
    int rc;
    char err[512];
    atomic_bool done;
    int64_t stopped_at, ended_at;
} run_t;

static void *run_main(void *arg)
{
    run_t *r = arg;
    r->rc = core_sink_run(&r->o, r->err, sizeof(r->err));
    r->ended_at = core_mono_ms();
    atomic_store(&r->done, true);
    return NULL;
}

static void run_init(run_t *r, int mode, int64_t batch_size, int64_t wait_ms)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->ov, g_ov_tmpl, sizeof(g_ov_tmpl));
    r->ov[0].value = g_boot;
    r->o.plugin = mode == MODE_PIPELINED ? &plugin_pipelined : &plugin_inline;
    r->o.writer_thread = mode == MODE_WRITER;
    r->o.plugin_conf = &P;
    r->o.datasets = g_ds;
    r->o.ndatasets = 1;
    r->o.kafka_overrides = r->ov;
    r->o.nkafka_overrides = CORE_ARRAY_SIZE(g_ov_tmpl);
    r->o.group_id = g_group;
    r->o.catalog = g_cat;
    r->o.audit = true;
    r->o.stage = "test-sink";
    r->o.batch_size = batch_size;
    r->o.batch_wait_ms = wait_ms;
    r->o.batch_inflight = mode == MODE_INLINE ? 0 : 2;
    r->o.commit_interval_ms = 0;
    r->o.backoff = (core_backoff){ 20, 100, 2.0, 0.5, 0 };
    r->o.breaker_threshold = 1000;
    r->o.metrics = g_reg;
}

static void run_start(run_t *r)
{
    ck_assert_int_eq(pthread_create(&r->th, NULL, run_main, r), 0);
}

static int run_stop(run_t *r)
{
    r->stopped_at = core_mono_ms();
    core_lifecycle_request_stop();
    ck_assert_int_eq(pthread_join(r->th, NULL), 0);
    ck_assert_msg(r->rc == 0, "sink run: %d %s", r->rc, r->err);
    return r->rc;
}

static int written_total(void)
{
    int t = 0;
    pthread_mutex_lock(&P.mu);
    for (int i = 0; i < MAXREC; i++)
        t += P.written[i];
    pthread_mutex_unlock(&P.mu);
    return t;
}

static void wait_for(bool (*cond)(void *), void *arg, const char *what)
{
    int64_t dl = core_mono_ms() + DEADLINE_MS;
    while (!cond(arg)) {
        ck_assert_msg(core_mono_ms() < dl, "timed out waiting for %s", what);
        usleep(10000);
    }
}

static bool written_reaches(void *arg)
{
    return written_total() >= *(int *)arg;
}

static bool committed_reaches(void *arg)
{
    return committed() >= *(int64_t *)arg;
}

static bool retried_reaches(void *arg)
{
    return atomic_load(&P.retried) >= *(int *)arg;
}

static double metric1(const char *family, const char *v1)
{
    static const char *const labels[] = { "sink", NULL };
    core_metric_family_t *f =
        core_metrics_family(g_reg, CORE_METRIC_COUNTER, family, "x", labels, NULL, 0, NULL, 0);
    const char *v[] = { v1, NULL };
    ck_assert(f);
    return core_metric_value(core_metrics_series(f, v));
}

static double metric3(const char *family, const char *v1, const char *v2, const char *v3)
{
    static const char *const labels[] = { "sink", "dataset", "outcome", NULL };
    core_metric_family_t *f =
        core_metrics_family(g_reg, CORE_METRIC_COUNTER, family, "x", labels, NULL, 0, NULL, 0);
    const char *v[] = { v1, v2, v3, NULL };
    ck_assert(f);
    return core_metric_value(core_metrics_series(f, v));
}

/* Read a topic from the start: n records expected; per record the value
 * and the header named hdr (both NUL-terminated, "" when absent). */
static void read_topic(const char *topic, size_t n, char vals[][64], char hdrs[][64],
                       const char *hdr)
{
    char err[512];
    core_kafka_prop ov[] = { { "bootstrap.servers", g_boot } };
    core_kafka_consumer_opts o = { .overrides = ov, .noverrides = 1, .group_id = tu_unique(),
                                   .metrics = g_reg };
    core_kafka_consumer_t *c = core_kafka_consumer_new(&o, err, sizeof(err));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    size_t got = 0;
    int64_t dl = core_mono_ms() + DEADLINE_MS;

    ck_assert_msg(c, "%s", err);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert(core_kafka_consumer_assign(c, l, err, sizeof(err)) == CORE_OK);
    rd_kafka_topic_partition_list_destroy(l);
    while (got < n && core_mono_ms() < dl) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            rd_kafka_headers_t *h = NULL;
            const void *hv = NULL;
            size_t hl = 0;
            snprintf(vals[got], 64, "%.*s", (int)m->len, m->payload ? (char *)m->payload : "");
            snprintf(hdrs[got], 64, "(none)");
            if (hdr && rd_kafka_message_headers(m, &h) == 0 &&
                rd_kafka_header_get_last(h, hdr, &hv, &hl) == 0)
                snprintf(hdrs[got], 64, "%.*s", (int)hl, (const char *)hv);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_close(c, NULL, 0);
    core_kafka_consumer_free(c);
    ck_assert_uint_eq(got, n);
}

/* ---- tests -------------------------------------------------------------------------- */

/* OK: every record written once, the offset after the last one committed
 * only after the plugin answered, one audit event per record. */
START_TEST(test_commit_only_after_ok)
{
    run_t r;
    int n = 20;
    int64_t want = 20;

    plugin_reset();
    run_init(&r, _i, 8, 20);
    produce_n(0, 20);
    run_start(&r);
    wait_for(written_reaches, &n, "20 records written");
    wait_for(committed_reaches, &want, "offset 20 committed");
    run_stop(&r);
    ck_assert_int_eq(committed(), 20);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(P.written[i] == 1, "record %d written %d times", i, P.written[i]);
    for (size_t i = 0; i < P.nsizes; i++)
        ck_assert_uint_le(P.sizes[i], 8);
    ck_assert_int_eq(watermark(CORE_AUDIT_TOPIC), 20);
    ck_assert_int_eq(watermark(DLQ), 0);
    ck_assert_double_eq(metric3("tributary_sink_records_total", "test", "sinkds", "persisted"), 10);
    ck_assert_double_eq(metric3("tributary_sink_records_total", "test", "sinkds", "stale_skipped"),
                        10);
    ck_assert_int_eq(P.inited, 1);
    ck_assert_int_eq(P.exited, 1);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* RETRY: nothing committed while the plugin answers RETRY; afterwards
 * every record is written (the batch again, and what was fetched while
 * paused read again) and committed. */
START_TEST(test_retry_commits_nothing_then_everything)
{
    run_t r;
    int n = 12, three = 3;
    int64_t want = 12;

    plugin_reset();
    atomic_store(&P.retries_left, -1);
    run_init(&r, _i, 4, 10);
    r.o.breaker_name = "test_sink_breaker"; /* the service's own name for it */
    produce_n(0, 12);
    run_start(&r);
    wait_for(retried_reaches, &three, "three RETRY answers");
    char *text = core_metrics_render(core_metrics_global(), NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "tributary_circuit_state{name=\"test_sink_breaker\"}"), "%s",
                  text);
    free(text);
    ck_assert_int_eq(committed(), RD_KAFKA_OFFSET_INVALID);
    ck_assert_int_eq(written_total(), 0);
    ck_assert_int_eq(watermark(CORE_AUDIT_TOPIC), 0);
    atomic_store(&P.retries_left, 0); /* the sink is back */
    wait_for(written_reaches, &n, "12 records written");
    wait_for(committed_try_reaches, &want, "offset 12 committed");
    run_stop(&r);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(P.written[i] == 1, "record %d written %d times", i, P.written[i]);
    ck_assert_int_eq(committed_try(), 12);
    ck_assert_int_eq(watermark(CORE_AUDIT_TOPIC), 12);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* A poison record (prepare refuses it), an empty value and a record the
 * plugin refuses (ERROR with its fate) each go to the DLQ with their
 * reason; the others are written and everything committed. */
START_TEST(test_poison_and_error_to_dlq)
{
    static const char *const vals[] = { "v-0", "v-1", "poison-2", "v-3", "bad-4",
                                        NULL, "v-6", "v-7" };
    char got[8][64], cls[8][64], msg[8][64];
    run_t r;
    int n = 5;
    int64_t want = 8;

    plugin_reset();
    run_init(&r, _i, 8, 20);
    produce(vals, 8);
    run_start(&r);
    wait_for(written_reaches, &n, "5 records written");
    wait_for(committed_reaches, &want, "offset 8 committed");
    run_stop(&r);
    ck_assert_int_eq(written_total(), 5);
    ck_assert_int_eq(P.written[0] + P.written[1] + P.written[3] + P.written[6] + P.written[7], 5);
    ck_assert_int_eq(watermark(DLQ), 3);
    read_topic(DLQ, 3, got, cls, "tb.error.class");
    ck_assert_str_eq(got[0], "poison-2");
    ck_assert_str_eq(cls[0], "poison");
    ck_assert_str_eq(got[1], "bad-4");
    ck_assert_str_eq(cls[1], "invalid");
    ck_assert_str_eq(got[2], "");
    ck_assert_str_eq(cls[2], "poison");
    read_topic(DLQ, 3, got, msg, "__connect.errors.exception.message");
    ck_assert_str_eq(msg[0], "test: poison value");
    ck_assert_str_eq(msg[1], "test: refused bad-4");
    ck_assert_ptr_nonnull(strstr(msg[2], "empty record value"));
    /* the field the plugin named; none for poison */
    read_topic(DLQ, 3, got, msg, "tb.error.field");
    ck_assert_str_eq(msg[0], "(none)");
    ck_assert_str_eq(msg[1], "amount");
    ck_assert_str_eq(msg[2], "(none)");
    /* the record's own tb.* headers go with it (a replay keeps its id and
     * latency), nothing else of its headers */
    read_topic(DLQ, 3, got, msg, "tb.id");
    ck_assert_str_eq(msg[0], "id-2");
    ck_assert_str_eq(msg[1], "id-4");
    ck_assert_str_eq(msg[2], "id-5");
    read_topic(DLQ, 3, got, msg, "tb.ingest.ts");
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(msg[i], "1700000000000");
    read_topic(DLQ, 3, got, msg, "tb.batch");
    ck_assert_str_eq(msg[1], "b1");
    read_topic(DLQ, 3, got, msg, "x.other");
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(msg[i], "(none)");
    ck_assert_int_eq(watermark(CORE_AUDIT_TOPIC), 8);
    ck_assert_double_eq(metric3("tributary_sink_records_total", "test", "sinkds", "dead"), 3);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* A plugin names its dead-letter headers (class name, stage, exception
 * classes) and a record's tb.error.class: "invalid" from prepare() (a
 * record of the wrong schema is no poison), "poison" from flush(); the
 * exception class follows the class, not where the record was refused. */
static core_sink_res_t named_prepare(void *ctx, core_sink_record *rec, char *errstr,
                                     size_t errstr_size)
{
    core_sink_res_t r = tp_prepare(ctx, rec, errstr, errstr_size);
    if (r == CORE_SINK_ERROR)
        rec->error_class = "invalid";
    return r;
}

static core_sink_res_t named_flush(void *ctx, core_sink_record *const *recs, size_t n,
                                   char *errstr, size_t errstr_size)
{
    core_sink_res_t r = tp_flush(ctx, recs, n, errstr, errstr_size);
    for (size_t i = 0; i < n; i++)
        if (recs[i]->res == CORE_SINK_ERROR)
            recs[i]->error_class = "poison";
    return r;
}

START_TEST(test_dlq_header_names_from_the_plugin)
{
    static const char *const vals[] = { "v-0", "poison-1", "bad-2", NULL };
    core_sink_plugin pl = plugin_inline;
    char got[3][64], h[3][64];
    run_t r;
    int64_t want = 4;

    pl.prepare = named_prepare;
    pl.flush = named_flush;
    pl.dlq_class_name = "svc-test";
    pl.dlq_stage = "SINK_TEST_WRITE";
    pl.dlq_exc_poison = "test.Poison";
    pl.dlq_exc_refused = "test.Refused";
    plugin_reset();
    run_init(&r, MODE_INLINE, 8, 20);
    r.o.plugin = &pl;
    produce(vals, 4);
    run_start(&r);
    wait_for(committed_reaches, &want, "offset 4 committed");
    run_stop(&r);
    ck_assert_int_eq(watermark(DLQ), 3);
    read_topic(DLQ, 3, got, h, "tb.error.class");
    ck_assert_str_eq(got[0], "poison-1");
    ck_assert_str_eq(h[0], "invalid");
    ck_assert_str_eq(got[1], "bad-2");
    ck_assert_str_eq(h[1], "poison");
    ck_assert_str_eq(got[2], "");
    ck_assert_str_eq(h[2], "poison"); /* the engine's own: empty value */
    read_topic(DLQ, 3, got, h, "__connect.errors.exception.class.name");
    ck_assert_str_eq(h[0], "test.Refused");
    ck_assert_str_eq(h[1], "test.Poison");
    ck_assert_str_eq(h[2], "test.Poison");
    read_topic(DLQ, 3, got, h, "__connect.errors.class.name");
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(h[i], "svc-test");
    read_topic(DLQ, 3, got, h, "__connect.errors.stage");
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(h[i], "SINK_TEST_WRITE");
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* A batch ERROR that marks no record refuses the whole batch. */
static core_sink_res_t refuse_all(void *ctx, core_sink_record *const *recs, size_t n,
                                  char *errstr, size_t errstr_size)
{
    (void)ctx;
    (void)recs;
    (void)n;
    snprintf(errstr, errstr_size, "test: all refused");
    return CORE_SINK_ERROR;
}

START_TEST(test_batch_error_refuses_every_record)
{
    core_sink_plugin pl = plugin_inline;
    char got[4][64], msg[4][64];
    run_t r;
    int64_t want = 4;

    pl.flush = refuse_all;
    plugin_reset();
    run_init(&r, MODE_INLINE, 8, 20);
    r.o.plugin = &pl;
    produce_n(0, 4);
    run_start(&r);
    wait_for(committed_reaches, &want, "offset 4 committed");
    run_stop(&r);
    read_topic(DLQ, 4, got, msg, "__connect.errors.exception.message");
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(msg[i], "test: all refused");
}
END_TEST

static bool nsizes_reaches(void *arg)
{
    pthread_mutex_lock(&P.mu);
    bool ok = P.nsizes >= *(size_t *)arg;
    pthread_mutex_unlock(&P.mu);
    return ok;
}

/* batch.size 5 and a long batch.wait.ms: 4 records wait for the stop, 5
 * go at once as one batch, 6 as a batch of 5 and one that waits. */
START_TEST(test_batch_capacity_edges)
{
    static const int counts[] = { 4, 5, 6 };
    int n = counts[_i];
    run_t r;
    size_t one = 1;

    plugin_reset();
    run_init(&r, MODE_INLINE, 5, 60000);
    produce_n(0, (size_t)n);
    run_start(&r);
    int64_t dl = core_mono_ms() + DEADLINE_MS;
    while (atomic_load(&P.prepared) < n) {
        ck_assert(core_mono_ms() < dl);
        usleep(10000);
    }
    if (n >= 5) {
        int64_t five = 5;
        wait_for(nsizes_reaches, &one, "a full batch");
        ck_assert_uint_eq(P.sizes[0], 5);
        wait_for(committed_reaches, &five, "offset 5 committed");
    }
    /* what is left stays in hand: nothing more is written meanwhile */
    usleep(300000);
    pthread_mutex_lock(&P.mu);
    ck_assert_uint_eq(P.nsizes, n >= 5 ? 1 : 0);
    pthread_mutex_unlock(&P.mu);
    ck_assert_int_eq(committed(), n >= 5 ? 5 : RD_KAFKA_OFFSET_INVALID);
    run_stop(&r); /* the drain writes the rest */
    ck_assert_int_eq(written_total(), n);
    ck_assert_uint_eq(P.nsizes, n == 5 ? 1 : n == 4 ? 1 : 2);
    ck_assert_uint_eq(P.sizes[P.nsizes - 1], n == 5 ? 5 : n == 4 ? 4 : 1);
    ck_assert_int_eq(committed(), n);
}
END_TEST

/* The group's committed offsets of a topic's partitions, summed (a
 * partition without one counts 0). */
static int64_t committed_sum(const char *topic, int parts)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    int64_t sum = 0;

    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", g_boot, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "group.id", g_group, err, sizeof(err)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    ck_assert(rk);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    ck_assert_int_eq(rd_kafka_committed(rk, l, 5000), 0);
    for (int p = 0; p < parts; p++)
        sum += l->elems[p].offset >= 0 ? l->elems[p].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return sum;
}

/* A second member joins while a batch is half full (batch.wait.ms long):
 * the revoke writes it and commits before the partition goes, so the next
 * owner reads nothing of it again. cooperative-sticky: the 2.0.2 mock
 * refuses every commit while an eager rebalance is in progress
 * (REBALANCE_IN_PROGRESS, where a broker takes a commit of the current
 * generation), so the revoke is an incremental one: one of the two
 * partitions moves to the new member. */
START_TEST(test_revoke_mid_batch_writes_and_commits)
{
    static const core_sink_dataset ds[] = { { "sinkds", "sinkrv.valid", DLQ } };
    core_kafka_prop ov[CORE_ARRAY_SIZE(g_ov_tmpl) + 1];
    run_t r;
    int n = 6;
    char err[512];

    plugin_reset();
    ck_assert_int_eq(rd_kafka_mock_topic_create(g_mc, "sinkrv.valid", 2, 1), 0);
    for (int i = 0; i < 6; i++) {
        char v[16];
        int len = snprintf(v, sizeof(v), "v-%d", i);
        ck_assert_int_eq(rd_kafka_producev(g_mrk, RD_KAFKA_V_TOPIC("sinkrv.valid"),
                                           RD_KAFKA_V_PARTITION(i % 2),
                                           RD_KAFKA_V_VALUE(v, (size_t)len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    }
    ck_assert_int_eq(rd_kafka_flush(g_mrk, 10000), 0);
    run_init(&r, _i, 100, 120000);
    memcpy(ov, r.ov, sizeof(r.ov));
    ov[CORE_ARRAY_SIZE(g_ov_tmpl)] =
        (core_kafka_prop){ "partition.assignment.strategy", "cooperative-sticky" };
    r.o.kafka_overrides = ov;
    r.o.nkafka_overrides = CORE_ARRAY_SIZE(ov);
    r.o.datasets = ds;
    run_start(&r);
    /* wait until the six records are in hand (prepared, not written) */
    int64_t dl = core_mono_ms() + DEADLINE_MS;
    while (atomic_load(&P.prepared) < 6) {
        ck_assert(core_mono_ms() < dl);
        usleep(10000);
    }
    ck_assert_int_eq(written_total(), 0);
    core_kafka_consumer_opts co = { .overrides = ov, .noverrides = CORE_ARRAY_SIZE(ov),
                                    .group_id = g_group, .metrics = g_reg };
    core_kafka_consumer_t *c2 = core_kafka_consumer_new(&co, err, sizeof(err));
    const char *topics[] = { "sinkrv.valid" };
    ck_assert_msg(c2, "%s", err);
    ck_assert(core_kafka_consumer_subscribe(c2, topics, 1, err, sizeof(err)) == CORE_OK);
    size_t read2 = 0;
    dl = core_mono_ms() + DEADLINE_MS;
    while (written_total() < n || core_kafka_consumer_assigned(c2) == 0) {
        ck_assert_msg(core_mono_ms() < dl, "no revoke, or it did not write the batch in hand");
        rd_kafka_message_t *m = core_kafka_consumer_poll(c2, 50);
        if (m) {
            read2 += !m->err;
            rd_kafka_message_destroy(m);
        }
    }
    /* written by the revoke (long before batch.wait.ms) */
    ck_assert_int_eq(atomic_load(&P.flushes), 1);
    /* The 2.0.2 mock refuses the revoke's commit (REBALANCE_IN_PROGRESS)
     * when the new member's JoinGroup comes again meanwhile, and under load
     * it may then fence the old member (ILLEGAL_GENERATION, partitions
     * lost); a broker in PreparingRebalance takes the commit. Then only the
     * weaker promise can be checked: after the stop, what the old member
     * did not commit its successor reads, exactly that and nothing twice. */
    bool refused = metric1("tributary_sink_commit_failures_total", "test") > 0;
    if (!refused) { /* committed before the partition went */
        ck_assert_int_eq(committed_sum("sinkrv.valid", 2), 6);
        dl = core_mono_ms() + 2000;
        while (core_mono_ms() < dl) { /* the new owner reads from the commit */
            rd_kafka_message_t *m = core_kafka_consumer_poll(c2, 50);
            if (m) {
                read2 += !m->err;
                rd_kafka_message_destroy(m);
            }
        }
        ck_assert_uint_eq(read2, 0);
    }
    run_stop(&r); /* the old member commits what it holds and leaves */
    int64_t committed_end = committed_sum("sinkrv.valid", 2);
    dl = core_mono_ms() + DEADLINE_MS;
    int64_t quiet_until = 0;
    while (quiet_until == 0 || core_mono_ms() < quiet_until) {
        ck_assert_msg(core_mono_ms() < dl, "the new owner read %zu, %lld committed, of 6",
                      read2, (long long)committed_end);
        rd_kafka_message_t *m = core_kafka_consumer_poll(c2, 50);
        if (m) {
            read2 += !m->err;
            rd_kafka_message_destroy(m);
        }
        if (quiet_until == 0 && committed_end + (int64_t)read2 >= 6)
            quiet_until = core_mono_ms() + 1000; /* and nothing more after */
    }
    ck_assert_int_eq(committed_end + (int64_t)read2, 6);
    ck_assert_int_eq(committed_sum("sinkrv.valid", 2), committed_end);
    core_kafka_consumer_close(c2, NULL, 0);
    core_kafka_consumer_free(c2);
    for (int i = 0; i < 6; i++) /* fenced, the old member writes again: idempotent */
        ck_assert_int_eq(P.written[i] >= 1 && (refused || P.written[i] == 1), 1);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* A commit refused because a rebalance is under way (REBALANCE_IN_PROGRESS,
 * as a broker answers in CompletingRebalance) keeps its offsets and is
 * retried: dropping them left records written but never committed until
 * more came, and read again after a restart. */
START_TEST(test_commit_refused_in_a_rebalance_is_retried)
{
    run_t r;
    int64_t four = 4;

    plugin_reset();
    run_init(&r, MODE_INLINE, 4, 20);
    produce_n(0, 4);
    rd_kafka_mock_push_request_errors(g_mc, 8 /* OffsetCommit */, 2,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    run_start(&r);
    wait_for(committed_reaches, &four, "offset 4 committed after two refusals");
    ck_assert_int_eq(written_total(), 4);
    run_stop(&r);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(P.written[i], 1);
}
END_TEST

/* The stop drains the batch in hand within the grace period. */
START_TEST(test_shutdown_drains_within_grace)
{
    run_t r;
    char err[256];

    plugin_reset();
    ck_assert_int_eq(core_lifecycle_install(5000, err, sizeof(err)), 0);
    run_init(&r, _i, 100, 120000);
    produce_n(0, 7);
    run_start(&r);
    int64_t dl = core_mono_ms() + DEADLINE_MS;
    while (atomic_load(&P.prepared) < 7) {
        ck_assert(core_mono_ms() < dl);
        usleep(10000);
    }
    ck_assert_int_eq(written_total(), 0);
    run_stop(&r);
    ck_assert_int_eq(written_total(), 7);
    ck_assert_int_eq(committed(), 7);
    ck_assert_int_lt(r.ended_at - r.stopped_at, 5000);
}
END_TEST

/* A sink that answers RETRY for ever: the stop gives up when the grace
 * period ends, commits nothing and returns. */
START_TEST(test_shutdown_retry_gives_up_at_grace)
{
    run_t r;
    char err[256];
    int one = 1;

    plugin_reset();
    atomic_store(&P.retries_left, -1);
    ck_assert_int_eq(core_lifecycle_install(1500, err, sizeof(err)), 0);
    run_init(&r, _i, 4, 10);
    produce_n(0, 6);
    run_start(&r);
    wait_for(retried_reaches, &one, "a RETRY");
    run_stop(&r);
    ck_assert_int_eq(written_total(), 0);
    ck_assert_int_eq(committed(), RD_KAFKA_OFFSET_INVALID);
    /* the grace period, plus leaving the group */
    ck_assert_int_ge(r.ended_at - r.stopped_at, 1400);
    ck_assert_int_lt(r.ended_at - r.stopped_at, 1500 + 4000);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* ---- engine-kept plugin data, the accounted callback, readiness ------------------ */

typedef struct dslot {
    char v[24];
    int64_t pad; /* a size that is not a power of two */
} dslot;

static struct {
    atomic_int contiguous_bad; /* flush calls whose data was not one array */
    atomic_int accounted;      /* records seen by accounted() */
    atomic_int accounted_poison;
    atomic_int accounted_calls;
} D;

static core_sink_res_t dp_prepare(void *ctx, core_sink_record *rec, char *errstr,
                                  size_t errstr_size)
{
    const rd_kafka_message_t *m = rec->rkm;
    dslot *d = rec->data;

    (void)ctx;
    ck_assert_ptr_nonnull(d);
    for (size_t i = 0; i < sizeof(*d); i++) /* zeroed by the engine */
        ck_assert_int_eq(((const char *)d)[i], 0);
    if (m->len >= 6 && memcmp(m->payload, "poison", 6) == 0) {
        snprintf(errstr, errstr_size, "test: poison value");
        snprintf(d->v, sizeof(d->v), "dirty"); /* the slot is the next record's */
        return CORE_SINK_ERROR;
    }
    snprintf(d->v, sizeof(d->v), "%.*s", (int)m->len, (const char *)m->payload);
    rec->id = d->v;
    rec->batch_id = "b1";
    atomic_fetch_add(&P.prepared, 1);
    return CORE_SINK_OK;
}

static core_sink_res_t dp_flush(void *ctx, core_sink_record *const *recs, size_t n,
                                char *errstr, size_t errstr_size)
{
    dslot *arr = recs[0]->data;

    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (recs[i]->data != &arr[i] || strncmp(arr[i].v, recs[i]->rkm->payload,
                                                recs[i]->rkm->len) != 0)
            atomic_fetch_add(&D.contiguous_bad, 1);
    return tp_write(recs, n, errstr, errstr_size); /* a dslot starts with its text */
}

static void dp_release(void *ctx, core_sink_record *rec)
{
    (void)ctx;
    (void)rec; /* nothing of its own: the slot is the engine's */
    atomic_fetch_add(&P.released, 1);
}

static void dp_accounted(void *ctx, const core_sink_record *recs, size_t n)
{
    ck_assert_ptr_eq(ctx, &P);
    atomic_fetch_add(&D.accounted_calls, 1);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&D.accounted, 1);
        if (recs[i].poison) {
            ck_assert_ptr_null(recs[i].data);
            atomic_fetch_add(&D.accounted_poison, 1);
        } else {
            ck_assert_ptr_nonnull(recs[i].data);
        }
    }
}

static const core_sink_plugin plugin_slots = {
    .name = "test", .outcome_ok = "persisted", .outcome_dead = "dead",
    .init = tp_init, .prepare = dp_prepare, .flush = dp_flush, .release = dp_release,
    .exit = tp_exit, .data_size = sizeof(dslot), .accounted = dp_accounted,
};

/* data_size: every record's slot zeroed before prepare, one array per
 * batch (a poison record's slot reused), nothing to free; accounted()
 * sees every record once, poison ones included. */
START_TEST(test_plugin_data_kept_by_the_engine)
{
    static const char *const vals[] = { "v-0", "v-1", "poison-2", "v-3", NULL,
                                        "v-5", "v-6", "v-7", "v-8", "v-9" };
    run_t r;
    int n = 8;
    int64_t want = 10;

    plugin_reset();
    memset(&D, 0, sizeof(D));
    run_init(&r, _i, 3, 20);
    r.o.plugin = &plugin_slots;
    produce(vals, 10);
    run_start(&r);
    wait_for(written_reaches, &n, "8 records written");
    wait_for(committed_reaches, &want, "offset 10 committed");
    run_stop(&r);
    ck_assert_int_eq(atomic_load(&D.contiguous_bad), 0);
    ck_assert_int_eq(atomic_load(&D.accounted), 10);
    ck_assert_int_eq(atomic_load(&D.accounted_poison), 2);
    ck_assert_int_ge(atomic_load(&D.accounted_calls), 4); /* batches of at most 3 */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(P.written[i], i == 2 || i == 4 ? 0 : 1);
    ck_assert_int_eq(watermark(DLQ), 2);
    /* the poison record's slot too: prepare() may have left something in it */
    ck_assert_int_eq(P.released, P.prepared + 1);
}
END_TEST

static int readyz_of(core_http_t *h, char *body, size_t size)
{
    char url[64], err[256];
    core_httpc_opts o = { .timeout_ms = 10000, .metrics = g_reg };
    core_httpc_t *c = core_httpc_new(&o, err, sizeof(err));
    core_httpc_req q = { 0 };
    int status;

    ck_assert_msg(c, "%s", err);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", core_http_port(h));
    q.url = url;
    ck_assert_int_eq(core_httpc_perform(c, &q, 1), CORE_OK);
    ck_assert_msg(q.err == CORE_OK, "%s", q.errstr);
    snprintf(body, size, "%s", q.resp ? q.resp : "");
    status = q.status;
    core_httpc_req_clear(&q);
    core_httpc_free(c);
    return status;
}

static struct {
    atomic_bool up;
} R;

static bool rp_ready(void *ctx, char *reason, size_t reason_size)
{
    (void)ctx;
    if (!atomic_load(&R.up))
        snprintf(reason, reason_size, "not connected");
    return atomic_load(&R.up);
}

static bool other_ready(void *opaque, char *reason, size_t reason_size)
{
    (void)opaque;
    snprintf(reason, reason_size, "down");
    return false;
}

/* The engine's readiness is one probe named after the plugin, beside the
 * HTTP server's others (none replaced): the plugin's ready(), then
 * "writes failing" while RETRYs last, "not running" after the run. */
START_TEST(test_readiness_probe_named_after_the_plugin)
{
    core_sink_plugin pl = plugin_inline;
    char err[256], body[512];
    core_http_t *h = core_http_new("127.0.0.1", 0, g_reg, err, sizeof(err));
    run_t r;
    int n = 4, one = 1;

    ck_assert_msg(h, "%s", err);
    plugin_reset();
    atomic_store(&R.up, true);
    pl.ready = rp_ready;
    ck_assert_int_eq(core_http_add_ready(h, "other", other_ready, NULL), CORE_OK);
    run_init(&r, MODE_INLINE, 2, 10);
    r.o.plugin = &pl;
    r.o.http = h;
    produce_n(0, 4);
    run_start(&r);
    wait_for(written_reaches, &n, "4 records written");
    ck_assert_int_eq(readyz_of(h, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: other: down\n");
    ck_assert_int_eq(core_http_add_ready(h, "other", NULL, NULL), CORE_OK);
    ck_assert_int_eq(readyz_of(h, body, sizeof(body)), 200);
    atomic_store(&R.up, false);
    ck_assert_int_eq(readyz_of(h, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: test: not connected\n");
    atomic_store(&R.up, true);
    atomic_store(&P.retries_left, -1); /* writes fail from now on */
    produce_n(4, 2);
    wait_for(retried_reaches, &one, "a RETRY");
    int64_t dl = core_mono_ms() + DEADLINE_MS;
    while (readyz_of(h, body, sizeof(body)) == 200) /* paused just after the answer */
        ck_assert_msg(core_mono_ms() < dl, "never paused");
    ck_assert_str_eq(body, "not ready: test: writes failing, consumption paused\n");
    atomic_store(&P.retries_left, 0);
    n = 6;
    wait_for(written_reaches, &n, "6 records written");
    dl = core_mono_ms() + DEADLINE_MS;
    while (readyz_of(h, body, sizeof(body)) != 200)
        ck_assert_msg(core_mono_ms() < dl, "still %s", body);
    run_stop(&r);
    ck_assert_int_eq(readyz_of(h, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: test: not running\n");
    core_http_free(h);
}
END_TEST

START_TEST(test_bad_plugin_refused)
{
    core_sink_plugin pl = plugin_inline;
    run_t r;
    char err[512];

    plugin_reset();
    run_init(&r, MODE_WRITER, 8, 20);
    pl.send = tp_send;
    pl.recv = tp_flush;
    r.o.plugin = &pl;
    ck_assert_int_eq(core_sink_run(&r.o, err, sizeof(err)), CORE_EX_SOFTWARE);
    ck_assert_ptr_nonnull(strstr(err, "writer thread"));
    run_init(&r, MODE_INLINE, 0, 20);
    ck_assert_int_eq(core_sink_run(&r.o, err, sizeof(err)), CORE_EX_CONFIG);
    ck_assert_int_eq(P.inited, 0);
}
END_TEST

/* The optional waiting() hook: called while idle, and before every batch
 * is handed over (by size or by time) after the last record prepared, so
 * a plugin's own pipeline (svc-persister's Redis backup) is sent before
 * the batch it mirrors is written. */
START_TEST(test_waiting_hook_before_waits_and_handover)
{
    run_t r;
    int n = 21;
    int64_t want = 21;

    plugin_reset();
    run_init(&r, MODE_INLINE, 8, 50);
    r.o.plugin = &plugin_waiting;
    produce_n(0, 21); /* two full batches of 8, then 5 by time */
    run_start(&r);
    wait_for(written_reaches, &n, "21 records written");
    wait_for(committed_reaches, &want, "offset 21 committed");
    int w0 = atomic_load(&P.waits);
    usleep(500000); /* idle: it goes on being called */
    ck_assert_int_gt(atomic_load(&P.waits), w0);
    run_stop(&r);
    ck_assert_int_ge(P.nsizes, 3);
    ck_assert_int_eq(atomic_load(&P.unseen_flushes), 0);
    for (int i = 0; i < 21; i++)
        ck_assert_msg(P.written[i] == 1, "record %d written %d times", i, P.written[i]);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

/* Records fetched while paused are dropped and the partition rewound to
 * its committed offset; when that rewind fails (the group coordinator
 * refuses the OffsetFetch), it is retried, and nothing is taken meanwhile:
 * no record is skipped, each is written once, everything is committed. */
START_TEST(test_failed_rewind_is_retried_nothing_skipped)
{
    run_t r;
    int n = 12, three = 3;
    int64_t want = 12;

    plugin_reset();
    atomic_store(&P.retries_left, -1);
    run_init(&r, MODE_INLINE, 4, 10);
    produce_n(0, 12);
    run_start(&r);
    wait_for(retried_reaches, &three, "three RETRY answers");
    ck_assert_int_eq(written_total(), 0);
    /* OffsetFetch (ApiKey 9) refused: the rewinds after the outage fail */
    rd_kafka_mock_push_request_errors(g_mc, 9, 3, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    atomic_store(&P.retries_left, 0); /* the sink is back */
    wait_for(written_reaches, &n, "12 records written");
    wait_for(committed_try_reaches, &want, "offset 12 committed");
    run_stop(&r);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(P.written[i] == 1, "record %d written %d times", i, P.written[i]);
    ck_assert_int_eq(committed_try(), 12);
    ck_assert_int_eq(P.released, P.prepared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sink");
    TCase *tc = tcase_create("loop");

    tcase_set_timeout(tc, 90);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_commit_only_after_ok, MODE_INLINE, MODE_WRITER + 1);
    tcase_add_loop_test(tc, test_retry_commits_nothing_then_everything, MODE_INLINE,
                        MODE_WRITER + 1);
    tcase_add_loop_test(tc, test_poison_and_error_to_dlq, MODE_INLINE, MODE_WRITER + 1);
    tcase_add_test(tc, test_batch_error_refuses_every_record);
    tcase_add_test(tc, test_dlq_header_names_from_the_plugin);
    tcase_add_loop_test(tc, test_batch_capacity_edges, 0, 3);
    tcase_add_loop_test(tc, test_revoke_mid_batch_writes_and_commits, MODE_INLINE,
                        MODE_WRITER + 1);
    tcase_add_test(tc, test_commit_refused_in_a_rebalance_is_retried);
    tcase_add_loop_test(tc, test_shutdown_drains_within_grace, MODE_INLINE, MODE_WRITER + 1);
    tcase_add_loop_test(tc, test_shutdown_retry_gives_up_at_grace, MODE_INLINE,
                        MODE_WRITER + 1);
    tcase_add_test(tc, test_bad_plugin_refused);
    tcase_add_loop_test(tc, test_plugin_data_kept_by_the_engine, MODE_INLINE, MODE_WRITER + 1);
    tcase_add_test(tc, test_readiness_probe_named_after_the_plugin);
    tcase_add_test(tc, test_waiting_hook_before_waits_and_handover);
    tcase_add_test(tc, test_failed_rewind_is_retried_nothing_skipped);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
