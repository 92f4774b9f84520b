/* test_kafka.c — core_kafka against librdkafka's built-in mock cluster
 * (rdkafka_mock.h): no broker needed. read_committed visibility and fencing
 * by a second producer cannot be tested here (the 2.0.2 mock writes no
 * transaction markers, stores no transactional offsets and gives a new
 * producer id per InitProducerId): the integration tests do that on a real
 * broker. Every first join of a consumer group costs 3 s on the mock, so
 * tests that do not need a group use a static assignment.
 *
 * Diagnostics: TK_DEBUG=cgrp,fetch (librdkafka debug contexts, logged at
 * debug level), TK_TIMING=1 (each test's duration on stderr). */
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
#include "tributary/core_config.h"
#include "tributary/core_kafka.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

/* Kafka protocol ApiKeys (the mock's RD_KAFKAP_* names are not public). */
enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_OFFSET_COMMIT = 8,
    API_INIT_PRODUCER_ID = 22,
    API_ADD_PARTITIONS_TO_TXN = 24,
    API_END_TXN = 26,
    API_TXN_OFFSET_COMMIT = 28,
};

#define DEADLINE_MS 20000

/* ---- fixtures ------------------------------------------------------------ */

typedef struct mock {
    rd_kafka_t *rk; /* owns the mock cluster; also used for watermarks */
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[256];
} mock_t;

static void mock_start(mock_t *m, int nbrokers)
{
    char err[512], n[16];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    snprintf(n, sizeof(n), "%d", nbrokers);
    ck_assert(rd_kafka_conf_set(conf, "test.mock.num.brokers", n, err, sizeof(err)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) == RD_KAFKA_CONF_OK);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(m->rk, "mock: %s", err);
    m->mc = rd_kafka_handle_mock_cluster(m->rk);
    ck_assert(m->mc);
    snprintf(m->bootstraps, sizeof(m->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void mock_stop(mock_t *m)
{
    if (m->rk)
        rd_kafka_destroy(m->rk);
    m->rk = NULL;
}

static void mock_topic(mock_t *m, const char *topic, int partitions)
{
    ck_assert_int_eq(rd_kafka_mock_topic_create(m->mc, topic, partitions, 1), 0);
}

/* Sum of high watermarks of a topic's partitions (records on the log). */
static int64_t topic_records(mock_t *m, const char *topic, int partitions)
{
    int64_t total = 0;

    for (int p = 0; p < partitions; p++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(m->rk, topic, p, &lo, &hi, 5000);

        ck_assert_msg(err == 0, "watermarks %s[%d]: %s", topic, p, rd_kafka_err2str(err));
        total += hi - lo;
    }
    return total;
}

static int64_t deadline_in(int ms)
{
    return core_mono_ms() + ms;
}

static bool before(int64_t deadline)
{
    return core_mono_ms() < deadline;
}

static core_metrics_t *g_reg;

static double g_t0;

static void setup(void)
{
    g_t0 = core_mono_s();
    core_log_init("test_kafka", getenv("TK_DEBUG") ? CORE_LOG_DEBUG : CORE_LOG_WARN);
    g_reg = core_metrics_new();
    ck_assert(g_reg);
}

static void teardown(void)
{
    if (getenv("TK_TIMING"))
        fprintf(stderr, "TIMING %.2fs\n", core_mono_s() - g_t0);
    /* Every rd_kafka_t of the test must be gone: nothing leaked. */
    ck_assert_int_eq(rd_kafka_wait_destroyed(10000), 0);
    core_metrics_free(g_reg);
    g_reg = NULL;
}

static double metric1(const char *family, core_metric_kind_t kind, const char *label,
                      const char *v1)
{
    const char *labels[] = { label, NULL };
    core_metric_family_t *f = core_metrics_family(g_reg, kind, family, "x",
                                                  label ? labels : NULL, NULL, 0, NULL, 0);
    const char *values[] = { v1, NULL };

    ck_assert_msg(f, "family %s", family);
    return core_metric_value(core_metrics_series(f, label ? values : NULL));
}

static double metric2(const char *family, const char *l1, const char *l2, const char *v1,
                      const char *v2)
{
    const char *labels[] = { l1, l2, NULL };
    core_metric_family_t *f = core_metrics_family(g_reg, CORE_METRIC_COUNTER, family, "x",
                                                  labels, NULL, 0, NULL, 0);

    ck_assert_msg(f, "family %s", family);
    return core_metric_value(core_metrics_series2(f, v1, v2));
}

static double lag_of(const char *topic, const char *part)
{
    const char *labels[] = { "topic", "partition", NULL };
    core_metric_family_t *f = core_metrics_family(g_reg, CORE_METRIC_GAUGE,
                                                  "tributary_kafka_consumer_lag", "x", labels,
                                                  NULL, 0, NULL, 0);

    ck_assert(f);
    return core_metric_value(core_metrics_series2(f, topic, part));
}

/* ---- helpers -------------------------------------------------------------- */

typedef struct dr_log {
    size_t n;
    unsigned *seen;      /* per opaque index: delivery reports */
    size_t ok, failed;
    rd_kafka_resp_err_t last_err;
} dr_log;

static void dr_record(void *msg_opaque, const rd_kafka_message_t *rkm, void *user)
{
    dr_log *d = user;
    size_t i = (size_t)(uintptr_t)msg_opaque;

    if (i >= 1 && i <= d->n)
        d->seen[i - 1]++;
    if (rkm->err) {
        d->failed++;
        d->last_err = rkm->err;
    } else {
        d->ok++;
    }
}

static core_kafka_producer_t *producer(mock_t *m, const core_kafka_prop *extra, size_t nextra,
                                       core_kafka_dr_cb *cb, void *user)
{
    core_kafka_prop ov[16];
    size_t n = 0;
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p;
    char err[512] = "";

    ov[n++] = (core_kafka_prop){ "bootstrap.servers", m->bootstraps };
    for (size_t i = 0; i < nextra; i++)
        ov[n++] = extra[i];
    o.overrides = ov;
    o.noverrides = n;
    o.dr_cb = cb;
    o.dr_user = user;
    o.metrics = g_reg;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p, "producer: %s", err);
    return p;
}

static core_kafka_consumer_t *consumer(mock_t *m, const char *group, const core_kafka_prop *extra,
                                       size_t nextra, core_kafka_consumer_opts *base)
{
    core_kafka_prop ov[16];
    size_t n = 0;
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c;
    char err[512] = "";

    if (base)
        o = *base;
    ov[n++] = (core_kafka_prop){ "bootstrap.servers", m->bootstraps };
    /* Quick group rebalances on the mock. */
    ov[n++] = (core_kafka_prop){ "session.timeout.ms", "4500" };
    ov[n++] = (core_kafka_prop){ "heartbeat.interval.ms", "200" };
    ov[n++] = (core_kafka_prop){ "topic.metadata.refresh.interval.ms", "1000" };
    if (getenv("TK_DEBUG")) /* e.g. TK_DEBUG=cgrp,fetch to diagnose */
        ov[n++] = (core_kafka_prop){ "debug", getenv("TK_DEBUG") };
    for (size_t i = 0; i < nextra; i++)
        ov[n++] = extra[i];
    o.overrides = ov;
    o.noverrides = n;
    o.group_id = group;
    o.metrics = g_reg;
    c = core_kafka_consumer_new(&o, err, sizeof(err));
    ck_assert_msg(c, "consumer: %s", err);
    return c;
}

static void subscribe1(core_kafka_consumer_t *c, const char *topic)
{
    char err[512] = "";
    const char *topics[] = { topic };

    ck_assert_msg(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)) == CORE_OK,
                  "%s", err);
}

static size_t value_index(const rd_kafka_message_t *rkm)
{
    char buf[32];
    size_t len = rkm->len < sizeof(buf) - 1 ? rkm->len : sizeof(buf) - 1;
    const char *digits;

    memcpy(buf, rkm->payload, len);
    buf[len] = '\0';
    digits = strchr(buf, '-');
    ck_assert_msg(digits, "unexpected value %s", buf);
    return (size_t)strtoul(digits + 1, NULL, 10);
}

/* Produce values "v-<i>" for i in [0, n) with opaques i+1; flush. */
static void produce_values(mock_t *m, const char *topic, size_t n)
{
    dr_log d = { .n = n, .seen = calloc(n, sizeof(unsigned)) };
    core_kafka_producer_t *p = producer(m, NULL, 0, dr_record, &d);
    char err[512] = "", val[32];

    for (size_t i = 0; i < n; i++) {
        int len = snprintf(val, sizeof(val), "v-%zu", i);

        ck_assert_msg(core_kafka_produce(p, topic, val, (size_t)len, val, (size_t)len, NULL, 0,
                                         (void *)(uintptr_t)(i + 1), err, sizeof(err)) == CORE_OK,
                      "%s", err);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 10000), 0);
    ck_assert_uint_eq(d.ok, n);
    core_kafka_producer_free(p);
    free(d.seen);
}

/* Static assignment of every partition of a topic from \p offset: no
 * group join (the 2.0.2 mock delays every first join by 3 s). */
static void assign_all(core_kafka_consumer_t *c, const char *topic, int partitions,
                       int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    char err[512] = "";

    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset;
    ck_assert_msg(core_kafka_consumer_assign(c, l, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(core_kafka_consumer_assigned(c), (size_t)partitions);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Read a whole topic from the beginning; every value index below n must be
 * seen exactly once. Returns how many records were read. */
static size_t read_back(mock_t *m, const char *topic, int partitions, size_t n, size_t expect)
{
    core_kafka_consumer_t *c = consumer(m, tu_unique(), NULL, 0, NULL);
    unsigned *seen = calloc(n, sizeof(unsigned));
    size_t got = 0;
    int64_t dl = deadline_in(DEADLINE_MS);

    assign_all(c, topic, partitions, RD_KAFKA_OFFSET_BEGINNING);
    while (got < expect && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 200);

        if (!rkm)
            continue;
        if (!rkm->err) {
            size_t i = value_index(rkm);

            ck_assert_uint_lt(i, n);
            ck_assert_msg(seen[i] == 0, "record %zu read twice", i);
            seen[i]++;
            got++;
        }
        rd_kafka_message_destroy(rkm);
    }
    core_kafka_consumer_close(c, NULL, 0);
    core_kafka_consumer_free(c);
    free(seen);
    return got;
}

/* ---- configuration -------------------------------------------------------- */

static core_config_t *config_from(const char *text)
{
    char *path = tu_write_temp(text);
    core_config_t *cfg = core_config_new("test_kafka");
    char err[512] = "";

    ck_assert(path && cfg);
    ck_assert_msg(core_config_load_file(cfg, path, err, sizeof(err)) == 0, "%s", err);
    unlink(path);
    free(path);
    return cfg;
}

START_TEST(test_conf_bad_value_names_key)
{
    core_config_t *cfg = config_from("kafka.linger.ms = abc\n");
    char err[512] = "";
    core_kafka_producer_opts o = { .cfg = cfg, .metrics = g_reg };

    ck_assert_int_eq(core_kafka_conf_check(cfg, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_str_eq(err, "kafka.linger.ms: Invalid value \"abc\" for configuration property "
                          "\"linger.ms\"");
    /* The clients refuse it the same way, and leak nothing. */
    err[0] = '\0';
    ck_assert_ptr_null(core_kafka_producer_new(&o, err, sizeof(err)));
    ck_assert_str_eq(err, "kafka.linger.ms: Invalid value \"abc\" for configuration property "
                          "\"linger.ms\"");
    core_config_free(cfg);
}
END_TEST

START_TEST(test_conf_unknown_key_names_key)
{
    core_config_t *cfg = config_from("kafka.linger.ms = 5\nkafka.no.such.prop = 1\n");
    core_kafka_consumer_opts o = { .cfg = cfg, .group_id = "g", .metrics = g_reg };
    char err[512] = "";

    ck_assert_int_eq(core_kafka_conf_check(cfg, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strncmp(err, "kafka.no.such.prop: ", 20) == 0, "got: %s", err);
    ck_assert_msg(strstr(err, "No such configuration property"), "got: %s", err);
    err[0] = '\0';
    ck_assert_ptr_null(core_kafka_consumer_new(&o, err, sizeof(err)));
    ck_assert_msg(strncmp(err, "kafka.no.such.prop: ", 20) == 0, "got: %s", err);
    core_config_free(cfg);

    /* A good config passes. */
    cfg = config_from("kafka.linger.ms = 5\nkafka.compression.type = zstd\n");
    ck_assert_int_eq(core_kafka_conf_check(cfg, err, sizeof(err)), CORE_OK);
    core_config_free(cfg);
}
END_TEST

/* Assert a conf property's value as librdkafka reads it back. */
#define ck_assert_conf(conf, name, want)                                                   \
    do {                                                                                   \
        char buf_[256];                                                                    \
        size_t n_ = sizeof(buf_);                                                          \
        ck_assert_msg(rd_kafka_conf_get(conf, name, buf_, &n_) == RD_KAFKA_CONF_OK, "%s", \
                      name);                                                               \
        ck_assert_str_eq(buf_, want);                                                      \
    } while (0)

static void conf_enforced(void *arg)
{
    core_config_t *cfg = arg;
    static const core_kafka_prop defs[] = { { "linger.ms", "7" }, { "batch.size", "1000" } };
    static const core_kafka_prop enforced[] = { { "acks", "all" } };
    char err[512] = "";
    rd_kafka_conf_t *conf;

    conf = core_kafka_conf_new(cfg, defs, 2, enforced, 1, err, sizeof(err));
    ck_assert_msg(conf, "%s", err);
    ck_assert_conf(conf, "linger.ms", "20");    /* user beats default */
    ck_assert_conf(conf, "batch.size", "1000"); /* default where the user said nothing */
    ck_assert_conf(conf, "acks", "-1");         /* enforced beats user */
    rd_kafka_conf_destroy(conf);

    /* A bad default is named as built-in. */
    {
        static const core_kafka_prop bad[] = { { "linger.ms", "soon" } };

        ck_assert_ptr_null(core_kafka_conf_new(NULL, bad, 1, NULL, 0, err, sizeof(err)));
        ck_assert_msg(strncmp(err, "linger.ms (built-in): Invalid value", 35) == 0, "got: %s",
                      err);
    }
}

START_TEST(test_conf_layers_and_enforced_warning)
{
    core_config_t *cfg = config_from("kafka.linger.ms = 20\nkafka.acks = 1\n"
                                     "kafka.sasl.password = hunter2secret\n");
    char *log = tu_capture_log(conf_enforced, cfg);

    ck_assert(log);
    ck_assert_msg(strstr(log, "\"level\":\"warn\"") && strstr(log, "kafka.acks"), "log: %s", log);
    /* values the user set are never logged */
    ck_assert_msg(!strstr(log, "hunter2secret"), "secret leaked: %s", log);
    free(log);
    core_config_free(cfg);
}
END_TEST

/* A property librdkafka scopes to one kind of client reaches that kind only
 * (no CONFWARN from the other), and kafka.producer.X / kafka.consumer.X
 * reach one kind and win over kafka.X. */
static void conf_scoped(void *arg)
{
    core_config_t *cfg = arg;
    core_kafka_producer_opts po = { .cfg = cfg, .metrics = g_reg };
    core_kafka_consumer_opts co = { .cfg = cfg, .group_id = "g-scope", .metrics = g_reg };
    char err[512] = "";
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    core_kafka_consumer_t *c;
    const rd_kafka_conf_t *pc, *cc;

    ck_assert_msg(p, "%s", err);
    c = core_kafka_consumer_new(&co, err, sizeof(err));
    ck_assert_msg(c, "%s", err);
    pc = rd_kafka_conf(core_kafka_producer_handle(p));
    cc = rd_kafka_conf(core_kafka_consumer_handle(c));
    ck_assert_conf(cc, "session.timeout.ms", "12000");
    ck_assert_conf(pc, "session.timeout.ms", "45000"); /* librdkafka's default: never set */
    ck_assert_conf(pc, "linger.ms", "9"); /* kafka.producer.linger.ms beats kafka.linger.ms */
    ck_assert_conf(cc, "client.id", "tb-consumer");
    ck_assert_conf(pc, "client.id", "tb-common");
    core_kafka_consumer_free(c);
    core_kafka_producer_free(p);
}

START_TEST(test_conf_scoped_by_client_kind)
{
    core_config_t *cfg = config_from("kafka.bootstrap.servers = 127.0.0.1:9\n"
                                     "kafka.producer.linger.ms = 9\n"
                                     "kafka.linger.ms = 3\n"
                                     "kafka.session.timeout.ms = 12000\n"
                                     "kafka.group.instance.id = inst-1\n"
                                     "kafka.client.id = tb-common\n"
                                     "kafka.consumer.client.id = tb-consumer\n");
    char *log = tu_capture_log(conf_scoped, cfg);
    char err[512] = "";

    ck_assert(log);
    ck_assert_msg(!strstr(log, "CONFWARN"), "log: %s", log);
    free(log);
    ck_assert_int_eq(core_kafka_conf_check(cfg, err, sizeof(err)), CORE_OK);
    ck_assert_str_eq(core_kafka_consumer_config(cfg, "client.id"), "tb-consumer");
    ck_assert_str_eq(core_kafka_consumer_config(cfg, "session.timeout.ms"), "12000");
    ck_assert_ptr_null(core_kafka_consumer_config(cfg, "linger.ms")); /* a producer's */
    ck_assert_ptr_null(core_kafka_consumer_config(cfg, "group.id"));
    core_config_free(cfg);

    /* A scoped key is checked and named as written. */
    cfg = config_from("kafka.producer.linger.ms = soon\n");
    ck_assert_int_eq(core_kafka_conf_check(cfg, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strncmp(err, "kafka.producer.linger.ms: Invalid value \"soon\"", 45) == 0,
                  "got: %s", err);
    core_config_free(cfg);
}
END_TEST

START_TEST(test_conf_txn_timeouts)
{
    core_kafka_prop bad[] = { { "bootstrap.servers", "127.0.0.1:9" },
                              { "transaction.timeout.ms", "60000" },
                              { "message.timeout.ms", "60000" } };
    core_kafka_producer_opts o = { .overrides = bad, .noverrides = 3, .metrics = g_reg,
                                   .transactional_id = "tx-timeouts" };
    char err[512] = "", buf[32];
    size_t n = sizeof(buf);
    core_kafka_producer_t *p;

    ck_assert_ptr_null(core_kafka_producer_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.message.timeout.ms") && strstr(err, "lower"), "got: %s", err);

    /* Set for producers only, it is as explicit. */
    {
        core_config_t *cfg = config_from("kafka.producer.message.timeout.ms = 60000\n");

        o.cfg = cfg;
        o.noverrides = 2;
        ck_assert_ptr_null(core_kafka_producer_new(&o, err, sizeof(err)));
        ck_assert_msg(strstr(err, "lower"), "got: %s", err);
        o.cfg = NULL;
        core_config_free(cfg);
    }

    /* Unset: made lower than the transaction timeout. */
    o.noverrides = 2;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p, "%s", err);
    ck_assert(rd_kafka_conf_get(rd_kafka_conf(core_kafka_producer_handle(p)), "message.timeout.ms",
                                buf, &n) == RD_KAFKA_CONF_OK);
    ck_assert_int_lt(atoll(buf), 60000);
    ck_assert_int_gt(atoll(buf), 0);
    core_kafka_producer_free(p);
}
END_TEST

/* ---- producer ------------------------------------------------------------- */

START_TEST(test_produce_delivery_reports)
{
    enum { N = 2000 };
    mock_t m = { 0 };
    dr_log d = { .n = N, .seen = calloc(N, sizeof(unsigned)) };
    core_kafka_producer_t *p;
    char err[512] = "", val[32];
    const core_kafka_header hdrs[] = {
        { "tb.id", "abc", 3 },
        { "tb.batch", NULL, 0 },
    };

    mock_start(&m, 3);
    mock_topic(&m, "orders", 3);
    p = producer(&m, NULL, 0, dr_record, &d);
    for (size_t i = 0; i < N; i++) {
        int len = snprintf(val, sizeof(val), "v-%zu", i);

        ck_assert_msg(core_kafka_produce(p, "orders", val, (size_t)len, val, (size_t)len,
                                         i % 2 ? hdrs : NULL, i % 2 ? 2 : 0,
                                         (void *)(uintptr_t)(i + 1), err, sizeof(err)) == CORE_OK,
                      "%s", err);
    }
    ck_assert_uint_gt(core_kafka_producer_outstanding(p), 0);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 10000), 0);
    ck_assert_uint_eq(core_kafka_producer_outstanding(p), 0);
    ck_assert_uint_eq(d.ok, N);
    ck_assert_uint_eq(d.failed, 0);
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(d.seen[i] == 1, "opaque %zu reported %u times", i + 1, d.seen[i]);
    ck_assert_uint_eq(core_kafka_producer_delivered(p), N);
    ck_assert_uint_eq(core_kafka_producer_failed(p), 0);
    ck_assert(metric1("tributary_kafka_produced_total", CORE_METRIC_COUNTER, "topic", "orders") ==
              N);
    ck_assert(metric1("tributary_kafka_produce_latency_seconds", CORE_METRIC_HISTOGRAM, NULL,
                      NULL) == N);
    ck_assert_int_eq(topic_records(&m, "orders", 3), N);
    core_kafka_producer_free(p);
    free(d.seen);
    mock_stop(&m);
}
END_TEST

/* A topic the broker does not know yet, or without leaders yet, is asked
 * for again until it settles; another error is returned at once. */
struct settle {
    mock_t *m;
    const char *topic;
    int after_ms;
};

static void *settle_later(void *arg)
{
    struct settle *s = arg;

    usleep((useconds_t)s->after_ms * 1000);
    rd_kafka_mock_topic_set_error(s->m->mc, s->topic, RD_KAFKA_RESP_ERR_NO_ERROR);
    return NULL;
}

START_TEST(test_topic_metadata_waits_for_a_new_topic)
{
    mock_t m = { 0 };
    core_kafka_producer_t *p;
    const struct rd_kafka_metadata *md = NULL;
    char err[512] = "";
    struct settle s = { &m, "fresh", 700 };
    pthread_t th;
    int64_t t0;

    mock_start(&m, 3);
    mock_topic(&m, "fresh", 4);
    p = producer(&m, NULL, 0, NULL, NULL);

    /* unknown to the broker for 700 ms, then known: waited for */
    rd_kafka_mock_topic_set_error(m.mc, "fresh", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    ck_assert_int_eq(pthread_create(&th, NULL, settle_later, &s), 0);
    t0 = core_mono_ms();
    ck_assert_msg(core_kafka_topic_metadata(core_kafka_producer_handle(p), "fresh", 10000, &md,
                                            err, sizeof(err)) == CORE_OK,
                  "%s", err);
    pthread_join(th, NULL);
    ck_assert_int_ge(core_mono_ms() - t0, 600);
    ck_assert_int_eq(md->topics[0].partition_cnt, 4);
    rd_kafka_metadata_destroy(md);

    /* never settles: the last answer, named, after the timeout */
    rd_kafka_mock_topic_set_error(m.mc, "fresh", RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
    ck_assert_int_eq(core_kafka_topic_metadata(core_kafka_producer_handle(p), "fresh", 800, &md,
                                               err, sizeof(err)),
                     CORE_ERR_TRANSIENT);
    ck_assert_ptr_null(md);
    ck_assert_msg(strstr(err, "topic fresh: ") && strstr(err, "eader not available"), "got: %s",
                  err);

    /* not a settling error: at once */
    rd_kafka_mock_topic_set_error(m.mc, "fresh", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    t0 = core_mono_ms();
    ck_assert_int_eq(core_kafka_topic_metadata(core_kafka_producer_handle(p), "fresh", 5000, &md,
                                               err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_lt(core_mono_ms() - t0, 2000);
    ck_assert_msg(strstr(err, "uthorization"), "got: %s", err);

    core_kafka_producer_free(p);
    mock_stop(&m);
}
END_TEST

START_TEST(test_idempotent_survives_produce_errors)
{
    enum { N = 600 };
    mock_t m = { 0 };
    dr_log d = { .n = N, .seen = calloc(N, sizeof(unsigned)) };
    static const core_kafka_prop small_batches[] = {
        { "linger.ms", "5" },
        { "batch.num.messages", "50" },
        { "retry.backoff.ms", "20" },
    };
    core_kafka_producer_t *p;
    char err[512] = "", val[32];
    size_t left = 99;

    mock_start(&m, 3);
    mock_topic(&m, "idem", 3);
    for (int part = 0; part < 3; part++)
        ck_assert_int_eq(rd_kafka_mock_partition_set_leader(m.mc, "idem", part, 1), 0);
    /* Retriable errors on the leader's next Produce requests. */
    ck_assert_int_eq(rd_kafka_mock_broker_push_request_error_rtts(
                         m.mc, 1, API_PRODUCE, 6,
                         RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
                         RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
                         RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0,
                         RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
                         RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, 0,
                         RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0), 0);

    p = producer(&m, small_batches, CORE_ARRAY_SIZE(small_batches), dr_record, &d);
    for (size_t i = 0; i < N; i++) {
        int len = snprintf(val, sizeof(val), "v-%zu", i);

        ck_assert_msg(core_kafka_produce(p, "idem", val, (size_t)len, val, (size_t)len, NULL, 0,
                                         (void *)(uintptr_t)(i + 1), err, sizeof(err)) == CORE_OK,
                      "%s", err);
        if (i % 100 == 0)
            core_kafka_producer_poll(p, 0);
    }
    ck_assert_uint_eq(core_kafka_producer_flush(p, 15000), 0);
    ck_assert_uint_eq(d.ok, N);
    ck_assert_uint_eq(d.failed, 0);
    ck_assert(!core_kafka_producer_fatal(p, err, sizeof(err)));
    /* The errors were really served. */
    ck_assert_int_eq(rd_kafka_mock_broker_error_stack_cnt(m.mc, 1, API_PRODUCE, &left), 0);
    ck_assert_uint_eq(left, 0);
    core_kafka_producer_free(p);

    /* Exactly N on the log, each once. */
    ck_assert_int_eq(topic_records(&m, "idem", 3), N);
    ck_assert_uint_eq(read_back(&m, "idem", 3, N, N), N);
    free(d.seen);
    mock_stop(&m);
}
END_TEST

START_TEST(test_produce_too_large_and_bad_args)
{
    mock_t m = { 0 };
    dr_log d = { .n = 1, .seen = calloc(1, sizeof(unsigned)) };
    core_kafka_producer_t *p;
    size_t big = 10u << 20;
    char *value = malloc(big), err[512] = "";
    const core_kafka_header noname[] = { { NULL, "x", 1 } };

    ck_assert(value);
    memset(value, 'x', big);
    mock_start(&m, 1);
    mock_topic(&m, "big", 1);
    p = producer(&m, NULL, 0, dr_record, &d);

    ck_assert_int_eq(core_kafka_produce(p, "big", "k", 1, value, big, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_ERR_TOOBIG);
    ck_assert_msg(strstr(err, "too large") && strstr(err, "big"), "got: %s", err);
    ck_assert(metric2("tributary_kafka_produce_errors_total", "topic", "error", "big",
                      "MSG_SIZE_TOO_LARGE") == 1);
    ck_assert_uint_eq(core_kafka_producer_outstanding(p), 0);

    ck_assert_int_eq(core_kafka_produce(p, NULL, NULL, 0, "v", 1, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_kafka_produce(p, "big", NULL, 0, NULL, 5, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_kafka_produce(p, "big", NULL, 0, "v", 1, NULL, 3, NULL, err,
                                        sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_kafka_produce(p, "big", NULL, 0, "v", 1, noname, 1, NULL, err,
                                        sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "header 0"), "got: %s", err);

    /* Still usable: a small record (a tombstone: NULL value) is delivered. */
    ck_assert_int_eq(core_kafka_produce(p, "big", "k", 1, NULL, 0, NULL, 0, (void *)1, err,
                                        sizeof(err)), CORE_OK);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 10000), 0);
    ck_assert_uint_eq(d.ok, 1);
    ck_assert_uint_eq(d.seen[0], 1);
    core_kafka_producer_free(p);
    free(value);
    free(d.seen);
    mock_stop(&m);
}
END_TEST

START_TEST(test_too_large_for_broker_reported_in_delivery)
{
    /* The client allows it, the broker refuses it: the failure arrives in
     * the delivery report, with the opaque. */
    mock_t m = { 0 };
    dr_log d = { .n = 1, .seen = calloc(1, sizeof(unsigned)) };
    static const core_kafka_prop big_client[] = { { "message.max.bytes", "20000000" },
                                                  { "message.timeout.ms", "5000" } };
    core_kafka_producer_t *p;
    size_t big = 10u << 20;
    char *value = malloc(big), err[512] = "";

    ck_assert(value);
    memset(value, 'y', big);
    mock_start(&m, 1);
    mock_topic(&m, "big2", 1);
    p = producer(&m, big_client, 2, dr_record, &d);
    rd_kafka_mock_push_request_errors(m.mc, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    ck_assert_int_eq(core_kafka_produce(p, "big2", NULL, 0, value, big, NULL, 0, (void *)1, err,
                                        sizeof(err)), CORE_OK);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 15000), 0);
    ck_assert_uint_eq(d.seen[0], 1);
    ck_assert_uint_eq(d.failed, 1);
    ck_assert_int_eq(d.last_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    ck_assert_int_eq(core_kafka_err_class(d.last_err), CORE_ERR_TOOBIG);
    ck_assert_uint_eq(core_kafka_producer_failed(p), 1);
    ck_assert(metric2("tributary_kafka_produce_errors_total", "topic", "error", "big2",
                      "MSG_SIZE_TOO_LARGE") == 1);
    core_kafka_producer_free(p);
    free(value);
    free(d.seen);
    mock_stop(&m);
}
END_TEST

START_TEST(test_producer_fatal_surfaces)
{
    mock_t m = { 0 };
    core_kafka_producer_t *p;
    char err[512] = "";
    int64_t dl;

    mock_start(&m, 1);
    mock_topic(&m, "f", 1);
    p = producer(&m, NULL, 0, NULL, NULL);
    ck_assert(!core_kafka_producer_fatal(p, err, sizeof(err)));
    ck_assert_int_eq(rd_kafka_test_fatal_error(core_kafka_producer_handle(p),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected desync"), 0);
    ck_assert_int_eq(core_kafka_produce(p, "f", NULL, 0, "v", 1, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_ERR_FATAL);
    ck_assert_msg(strstr(err, "OUT_OF_ORDER_SEQUENCE_NUMBER"), "got: %s", err);
    ck_assert(core_kafka_producer_fatal(p, err, sizeof(err)));
    ck_assert_msg(strstr(err, "injected desync"), "got: %s", err);
    /* The error event is counted once served. */
    dl = deadline_in(5000);
    while (before(dl) && metric1("tributary_kafka_client_errors_total", CORE_METRIC_COUNTER,
                                 "error", "_FATAL") < 1)
        core_kafka_producer_poll(p, 100);
    ck_assert(metric1("tributary_kafka_client_errors_total", CORE_METRIC_COUNTER, "error",
                      "_FATAL") == 1);
    core_kafka_producer_free(p);
    mock_stop(&m);
}
END_TEST

static void brokers_down(void *arg)
{
    core_kafka_prop ov[] = { { "bootstrap.servers", "127.0.0.1:1" },
                             { "reconnect.backoff.ms", "10" },
                             { "reconnect.backoff.max.ms", "50" } };
    core_kafka_producer_opts o = { .overrides = ov, .noverrides = 3, .metrics = g_reg };
    char err[512] = "";
    core_kafka_producer_t *p = core_kafka_producer_new(&o, err, sizeof(err));
    int64_t dl = deadline_in(10000);

    (void)arg;
    ck_assert_msg(p, "%s", err);
    while (before(dl) && metric1("tributary_kafka_client_errors_total", CORE_METRIC_COUNTER,
                                 "error", "_ALL_BROKERS_DOWN") < 1)
        core_kafka_producer_poll(p, 100);
    core_kafka_producer_free(p);
}

START_TEST(test_background_errors_logged_and_counted)
{
    char *log = tu_capture_log(brokers_down, NULL);

    ck_assert(log);
    ck_assert(metric1("tributary_kafka_client_errors_total", CORE_METRIC_COUNTER, "error",
                      "_ALL_BROKERS_DOWN") >= 1);
    ck_assert_msg(strstr(log, "\"level\":\"warn\"") && strstr(log, "_ALL_BROKERS_DOWN"),
                  "log: %s", log);
    free(log);
}
END_TEST

/* ---- consumer ------------------------------------------------------------- */

typedef struct hooks {
    int assigned, revoked, lost;
    int assigned_parts, revoked_parts;
    /* what the revoke hook commits (a service commits its work there) */
    rd_kafka_topic_partition_list_t *commit_on_revoke;
    core_err_t revoke_commit_rc;
} hooks_t;

static void on_assign(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    hooks_t *h = user;

    (void)c;
    (void)lost;
    h->assigned++;
    h->assigned_parts += parts->cnt;
}

static void on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    hooks_t *h = user;

    h->revoked++;
    h->revoked_parts += parts->cnt;
    if (lost)
        h->lost++;
    if (h->commit_on_revoke && !lost)
        h->revoke_commit_rc = core_kafka_consumer_commit_offsets(c, h->commit_on_revoke, NULL, 0);
}

static const char *strategies[] = { "range", "cooperative-sticky" };

START_TEST(test_group_commit_then_resume)
{
    enum { N = 90, FIRST = 30, PARTS = 3 };
    mock_t m = { 0 };
    const char *group = tu_unique();
    core_kafka_prop strat[] = { { "partition.assignment.strategy", strategies[_i] } };
    core_kafka_prop strat2[] = { { "partition.assignment.strategy", strategies[_i] },
                                 { "statistics.interval.ms", "100" } };
    int64_t hi[PARTS];
    char *text;
    hooks_t h = { 0 };
    core_kafka_consumer_opts base = { .on_assign = on_assign, .on_revoke = on_revoke,
                                      .hook_user = &h };
    core_kafka_consumer_t *c;
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(PARTS), *chk;
    unsigned seen[N] = { 0 };
    int64_t first_seen[PARTS] = { -1, -1, -1 };
    size_t got = 0, got2 = 0;
    char err[512] = "";
    int64_t dl;

    mock_start(&m, 3);
    mock_topic(&m, "grp", PARTS);
    produce_values(&m, "grp", N);

    c = consumer(&m, group, strat, 1, &base);
    subscribe1(c, "grp");
    dl = deadline_in(DEADLINE_MS);
    while (got < FIRST && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 200);

        if (!rkm)
            continue;
        if (!rkm->err) {
            seen[value_index(rkm)]++;
            core_kafka_offsets_add_message(offsets, rkm);
            got++;
        }
        rd_kafka_message_destroy(rkm);
    }
    ck_assert_uint_eq(got, FIRST);
    ck_assert_int_eq(h.assigned, 1);
    ck_assert_int_eq(h.assigned_parts, PARTS);
    ck_assert_uint_eq(core_kafka_consumer_assigned(c), PARTS);
    /* Half of the work is committed now, the rest from the revoke hook. */
    chk = rd_kafka_topic_partition_list_copy(offsets);
    for (int i = 0; i < chk->cnt; i++)
        chk->elems[i].offset = chk->elems[i].offset / 2;
    ck_assert_msg(core_kafka_consumer_commit_offsets(c, chk, err, sizeof(err)) == CORE_OK, "%s",
                  err);
    ck_assert_int_eq(rd_kafka_committed(core_kafka_consumer_handle(c), chk, 5000), 0);
    for (int i = 0; i < chk->cnt; i++)
        ck_assert_int_eq(chk->elems[i].offset, offsets->elems[i].offset / 2);
    h.commit_on_revoke = offsets;
    h.revoke_commit_rc = CORE_ERR_STATE;

    ck_assert_int_eq(core_kafka_consumer_close(c, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(h.revoke_commit_rc, CORE_OK);
    rd_kafka_topic_partition_list_destroy(chk);
    ck_assert_int_eq(h.revoked, 1);
    ck_assert_int_eq(h.revoked_parts, PARTS);
    ck_assert_int_eq(h.lost, 0);
    ck_assert_uint_eq(core_kafka_consumer_assigned(c), 0);
    ck_assert_ptr_null(core_kafka_consumer_poll(c, 0));
    core_kafka_consumer_free(c);

    /* Same group: resumes exactly at the committed offsets. Statistics
     * often, for the lag gauge. */
    c = consumer(&m, group, strat2, 2, NULL);
    subscribe1(c, "grp");
    dl = deadline_in(DEADLINE_MS);
    while (got + got2 < N && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 200);

        if (!rkm)
            continue;
        if (!rkm->err) {
            size_t i = value_index(rkm);

            ck_assert_int_ge(rkm->partition, 0);
            ck_assert_int_lt(rkm->partition, PARTS);
            if (first_seen[rkm->partition] < 0)
                first_seen[rkm->partition] = rkm->offset;
            /* records past the commit that the first consumer read but did
             * not count are read again; nothing before the commit is */
            if (seen[i] == 0)
                got2++;
            seen[i]++;
        }
        rd_kafka_message_destroy(rkm);
    }
    ck_assert_uint_eq(got + got2, N);
    for (int part = 0; part < PARTS; part++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offsets, "grp", part);
        int64_t committed = tp ? tp->offset : 0, lo = 0;

        ck_assert_int_eq(rd_kafka_query_watermark_offsets(m.rk, "grp", part, &lo, &hi[part], 5000),
                         0);
        /* nothing left in a partition the first consumer finished */
        ck_assert_msg(first_seen[part] == (committed < hi[part] ? committed : -1),
                      "partition %d resumed at %" PRId64 ", committed %" PRId64, part,
                      first_seen[part], committed);
    }
    /* Lag from statistics: end - committed (this consumer commits nothing). */
    {
        rd_kafka_topic_partition_t *tp = &offsets->elems[0];
        double want = (double)(hi[tp->partition] - tp->offset), lag = -1;
        char part[16];

        snprintf(part, sizeof(part), "%d", (int)tp->partition);
        dl = deadline_in(DEADLINE_MS);
        while (before(dl) && lag != want) {
            rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 100);

            if (rkm)
                rd_kafka_message_destroy(rkm);
            lag = lag_of("grp", part);
        }
        ck_assert_msg(lag == want, "lag of grp[%s]: %g, want %g", part, lag, want);
    }
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(seen[i] == 1, "record %zu read %u times", i, seen[i]);
    /* Revoked partitions leave no lag series behind. */
    ck_assert_int_eq(core_kafka_consumer_close(c, err, sizeof(err)), CORE_OK);
    text = core_metrics_render(g_reg, NULL);
    ck_assert_msg(!strstr(text, "tributary_kafka_consumer_lag{"), "lag kept after revoke: %s",
                  text);
    free(text);
    core_kafka_consumer_free(c);
    rd_kafka_topic_partition_list_destroy(offsets);
    mock_stop(&m);
}
END_TEST

/* Poll until \p n records were read; returns the last one (caller destroys). */
static rd_kafka_message_t *poll_records(core_kafka_consumer_t *c, size_t n, int timeout_ms,
                                        size_t *got)
{
    rd_kafka_message_t *last = NULL;
    int64_t dl = deadline_in(timeout_ms);

    *got = 0;
    while (*got < n && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 100);

        if (!rkm)
            continue;
        if (rkm->err) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        (*got)++;
        if (last)
            rd_kafka_message_destroy(last);
        last = rkm;
    }
    return last;
}

/* tb.ingest.ts as the sinks read it for the end-to-end latency: the last
 * header of that name, decimal ms; none or a bad one is -1. */
START_TEST(test_ingest_ts_header)
{
    mock_t m = { 0 };
    dr_log d = { .n = 4, .seen = calloc(4, sizeof(unsigned)) };
    char err[512] = "";
    const core_kafka_header good[] = { { "tb.ingest.ts", "1700000000123", 13 } };
    const core_kafka_header bad[] = { { "tb.ingest.ts", "12x", 3 } };
    const core_kafka_header two[] = { { "tb.ingest.ts", "5", 1 }, { "tb.ingest.ts", "7", 1 } };
    const struct {
        const core_kafka_header *h;
        size_t n;
        int64_t want;
    } cases[] = { { good, 1, 1700000000123 }, { NULL, 0, -1 }, { bad, 1, -1 }, { two, 2, 7 } };
    int64_t got[4] = { 0 };
    size_t n = 0;

    mock_start(&m, 1);
    mock_topic(&m, "lat", 1);
    core_kafka_producer_t *p = producer(&m, NULL, 0, dr_record, &d);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(core_kafka_produce(p, "lat", "k", 1, "v", 1, cases[i].h, cases[i].n,
                                         (void *)(uintptr_t)(i + 1), err, sizeof(err)) == CORE_OK,
                      "%s", err);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 10000), 0);
    core_kafka_producer_free(p);

    core_kafka_consumer_t *c = consumer(&m, "lat-g", NULL, 0, NULL);
    subscribe1(c, "lat");
    int64_t dl = deadline_in(DEADLINE_MS);
    while (n < 4 && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 100);
        if (!rkm)
            continue;
        if (!rkm->err)
            got[n++] = core_kafka_ingest_ts(rkm);
        rd_kafka_message_destroy(rkm);
    }
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(got[i] == cases[i].want, "record %zu: %" PRId64 ", want %" PRId64, i,
                      got[i], cases[i].want);
    ck_assert_int_eq(core_kafka_ingest_ts(NULL), -1);
    core_kafka_consumer_free(c);

    /* one family, declared again by a second sink in the process */
    core_metric_family_t *f = core_kafka_latency_family(g_reg, err, sizeof(err));
    ck_assert_msg(f, "%s", err);
    ck_assert_ptr_eq(core_kafka_latency_family(g_reg, NULL, 0), f);
    free(d.seen);
    mock_stop(&m);
}
END_TEST

/* rd_kafka_consumer_close() serves the last revoke and the statistics
 * callbacks itself. A callback that asks librdkafka's group thread anything
 * (rd_kafka_assignment(), rd_kafka_rebalance_protocol()) once the revoke's
 * unassign is done can wait forever: the group may have terminated
 * (librdkafka#4041; seen once in ~40 stops of svc-persister on 2.0.2).
 * Many consumers closing at once, with statistics every 10 ms: every close
 * ends, with the revoke seen and nothing left assigned. */
enum { CLOSERS = 32 };

typedef struct closer {
    mock_t *m;
    const char *strategy;
    char group[64];
    atomic_int *assigned_all, *go;
    hooks_t h;
    atomic_int state; /* 0 joining, 1 assigned, 2 closed, -1 no assignment */
    core_err_t rc;
    size_t left_assigned;
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *t = arg;
    core_kafka_prop props[] = { { "partition.assignment.strategy", t->strategy },
                                { "statistics.interval.ms", "10" } };
    core_kafka_consumer_opts base = { .on_assign = on_assign, .on_revoke = on_revoke,
                                      .hook_user = &t->h };
    core_kafka_consumer_t *c = consumer(t->m, t->group, props, 2, &base);
    int64_t dl = deadline_in(DEADLINE_MS);
    rd_kafka_message_t *rkm;

    subscribe1(c, "cls");
    while (core_kafka_consumer_assigned(c) == 0 && before(dl))
        if ((rkm = core_kafka_consumer_poll(c, 50)))
            rd_kafka_message_destroy(rkm);
    atomic_store(&t->state, core_kafka_consumer_assigned(c) > 0 ? 1 : -1);
    atomic_fetch_add(t->assigned_all, 1);
    /* statistics keep coming while the others join */
    while (!atomic_load(t->go))
        if ((rkm = core_kafka_consumer_poll(c, 10)))
            rd_kafka_message_destroy(rkm);
    t->rc = core_kafka_consumer_close(c, NULL, 0);
    t->left_assigned = core_kafka_consumer_assigned(c);
    atomic_store(&t->state, 2);
    core_kafka_consumer_free(c);
    return NULL;
}

START_TEST(test_close_never_blocks)
{
    mock_t m = { 0 };
    closer_t t[CLOSERS];
    pthread_t th[CLOSERS];
    atomic_int assigned_all = 0, go = 0;
    int64_t dl;
    int closed = 0;

    mock_start(&m, 1);
    mock_topic(&m, "cls", 4);
    for (int i = 0; i < CLOSERS; i++) {
        t[i] = (closer_t){ .m = &m, .strategy = strategies[_i], .assigned_all = &assigned_all,
                           .go = &go };
        snprintf(t[i].group, sizeof(t[i].group), "cls-%s-%d", tu_unique(), i);
        ck_assert_int_eq(pthread_create(&th[i], NULL, closer_main, &t[i]), 0);
    }
    dl = deadline_in(DEADLINE_MS + 5000);
    while (atomic_load(&assigned_all) < CLOSERS && before(dl))
        usleep(20000);
    ck_assert_int_eq(atomic_load(&assigned_all), CLOSERS);
    atomic_store(&go, 1);
    dl = deadline_in(15000);
    while (before(dl)) {
        closed = 0;
        for (int i = 0; i < CLOSERS; i++)
            closed += atomic_load(&t[i].state) == 2;
        if (closed == CLOSERS)
            break;
        usleep(20000);
    }
    /* a thread stuck in the close cannot be joined: fail (the fork ends it) */
    ck_assert_msg(closed == CLOSERS, "%d of %d consumer closes still blocked after 15 s",
                  CLOSERS - closed, CLOSERS);
    for (int i = 0; i < CLOSERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].rc, CORE_OK);
        ck_assert_uint_eq(t[i].left_assigned, 0);
        ck_assert_int_eq(t[i].h.assigned, 1);
        ck_assert_int_eq(t[i].h.revoked, 1);
        ck_assert_int_eq(t[i].h.revoked_parts, 4);
    }
    mock_stop(&m);
}
END_TEST

START_TEST(test_commit_failure_reported)
{
    mock_t m = { 0 };
    core_kafka_consumer_t *c;
    rd_kafka_message_t *rkm;
    rd_kafka_topic_partition_list_t *chk;
    char err[512] = "";
    size_t got;

    mock_start(&m, 1);
    mock_topic(&m, "cf", 1);
    produce_values(&m, "cf", 5);
    c = consumer(&m, tu_unique(), NULL, 0, NULL);
    assign_all(c, "cf", 1, RD_KAFKA_OFFSET_INVALID);
    rkm = poll_records(c, 3, DEADLINE_MS, &got);
    ck_assert_uint_eq(got, 3);
    ck_assert_ptr_nonnull(rkm);

    rd_kafka_mock_push_request_errors(m.mc, API_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    ck_assert_int_ne(core_kafka_consumer_commit_message(c, rkm, err, sizeof(err)), CORE_OK);
    ck_assert_msg(strstr(err, "GROUP_AUTHORIZATION_FAILED") && strstr(err, "cf[0]"), "got: %s",
                  err);
    ck_assert(metric1("tributary_kafka_commit_errors_total", CORE_METRIC_COUNTER, "error",
                      "GROUP_AUTHORIZATION_FAILED") == 1);

    /* Nothing was committed; the retry is. */
    chk = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(chk, "cf", 0);
    ck_assert_int_eq(rd_kafka_committed(core_kafka_consumer_handle(c), chk, 5000), 0);
    ck_assert_int_lt(chk->elems[0].offset, 0);
    ck_assert_msg(core_kafka_consumer_commit_message(c, rkm, err, sizeof(err)) == CORE_OK, "%s",
                  err);
    ck_assert_int_eq(rd_kafka_committed(core_kafka_consumer_handle(c), chk, 5000), 0);
    ck_assert_int_eq(chk->elems[0].offset, rkm->offset + 1);

    /* store + commit_stored path, and the empty case */
    ck_assert_int_eq(core_kafka_consumer_commit_stored(c, err, sizeof(err)), CORE_OK);
    rd_kafka_message_destroy(rkm);
    rkm = poll_records(c, 2, DEADLINE_MS, &got);
    ck_assert_uint_eq(got, 2);
    ck_assert_msg(core_kafka_consumer_store(c, rkm, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_kafka_consumer_commit_stored(c, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_int_eq(rd_kafka_committed(core_kafka_consumer_handle(c), chk, 5000), 0);
    ck_assert_int_eq(chk->elems[0].offset, 5);
    /* bad input */
    ck_assert_int_eq(core_kafka_consumer_commit_message(c, NULL, err, sizeof(err)),
                     CORE_ERR_INVALID);
    chk->elems[0].offset = -5;
    ck_assert_int_eq(core_kafka_consumer_commit_offsets(c, chk, err, sizeof(err)),
                     CORE_ERR_INVALID);

    rd_kafka_topic_partition_list_destroy(chk);
    rd_kafka_message_destroy(rkm);
    core_kafka_consumer_close(c, NULL, 0);
    core_kafka_consumer_free(c);
    mock_stop(&m);
}
END_TEST

START_TEST(test_pause_resume)
{
    enum { N = 20 };
    mock_t m = { 0 };
    core_kafka_consumer_t *c;
    char err[512] = "";
    size_t got = 0;
    int64_t dl;

    mock_start(&m, 1);
    mock_topic(&m, "pz", 2);
    produce_values(&m, "pz", N);
    ck_assert_int_eq(topic_records(&m, "pz", 2), N);
    c = consumer(&m, tu_unique(), NULL, 0, NULL);
    /* Pausing all also pauses what is assigned later. */
    ck_assert_msg(core_kafka_consumer_pause(c, NULL, 0, err, sizeof(err)) == CORE_OK, "%s", err);
    assign_all(c, "pz", 2, RD_KAFKA_OFFSET_BEGINNING);
    /* Records are there, none arrives while paused. */
    dl = deadline_in(1000);
    while (before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 100);

        if (rkm) {
            ck_assert_msg(rkm->err != 0, "record delivered while paused");
            rd_kafka_message_destroy(rkm);
        }
    }

    /* Resume one partition: only its records arrive. */
    ck_assert_msg(core_kafka_consumer_resume(c, "pz", 0, err, sizeof(err)) == CORE_OK, "%s", err);
    {
        int64_t end = 0, lo = 0;
        rd_kafka_message_t *rkm;
        size_t n0 = 0;

        ck_assert_int_eq(rd_kafka_query_watermark_offsets(m.rk, "pz", 0, &lo, &end, 5000), 0);
        ck_assert_int_gt(end, 0);
        ck_assert_int_lt(end, N);
        dl = deadline_in(DEADLINE_MS);
        while ((int64_t)n0 < end && before(dl)) {
            rkm = core_kafka_consumer_poll(c, 100);
            if (!rkm)
                continue;
            if (!rkm->err) {
                ck_assert_int_eq(rkm->partition, 0);
                n0++;
            }
            rd_kafka_message_destroy(rkm);
        }
        ck_assert_int_eq((int64_t)n0, end);
        got = n0;
    }
    ck_assert_msg(core_kafka_consumer_resume(c, NULL, 0, err, sizeof(err)) == CORE_OK, "%s", err);
    dl = deadline_in(DEADLINE_MS);
    while (got < N && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(c, 100);

        if (!rkm)
            continue;
        if (!rkm->err)
            got++;
        rd_kafka_message_destroy(rkm);
    }
    ck_assert_uint_eq(got, N);
    ck_assert_int_eq(core_kafka_consumer_pause(c, "", 0, err, sizeof(err)), CORE_ERR_INVALID);
    core_kafka_consumer_close(c, NULL, 0);
    core_kafka_consumer_free(c);
    mock_stop(&m);
}
END_TEST

START_TEST(test_rewind_to_committed)
{
    enum { N = 10 };
    mock_t m = { 0 };
    core_kafka_consumer_t *c;
    rd_kafka_message_t *rkm;
    char err[512] = "";
    size_t got;

    mock_start(&m, 1);
    mock_topic(&m, "rw", 1);
    produce_values(&m, "rw", N);
    c = consumer(&m, tu_unique(), NULL, 0, NULL);
    assign_all(c, "rw", 1, RD_KAFKA_OFFSET_INVALID);
    rkm = poll_records(c, 4, DEADLINE_MS, &got);
    ck_assert_uint_eq(got, 4);
    ck_assert_int_eq(core_kafka_consumer_commit_message(c, rkm, err, sizeof(err)), CORE_OK);
    rd_kafka_message_destroy(rkm);
    rkm = poll_records(c, 3, DEADLINE_MS, &got);
    ck_assert_int_eq(rkm->offset, 6);
    rd_kafka_message_destroy(rkm);
    /* seek timeouts of DEADLINE_MS: 5 s timed out once under ASan at load 10 */
    ck_assert_msg(core_kafka_consumer_rewind(c, DEADLINE_MS, err, sizeof(err)) == CORE_OK, "%s",
                  err);
    /* The old position is gone (send_offsets(NULL) relies on it: a
     * partition without a position is left out). */
    {
        rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(1);

        rd_kafka_topic_partition_list_add(pos, "rw", 0);
        ck_assert_int_eq(rd_kafka_position(core_kafka_consumer_handle(c), pos), 0);
        ck_assert_msg(pos->elems[0].offset == 4 || pos->elems[0].offset < 0, "position %" PRId64,
                      pos->elems[0].offset);
        rd_kafka_topic_partition_list_destroy(pos);
    }
    rkm = poll_records(c, 1, DEADLINE_MS, &got);
    ck_assert_ptr_nonnull(rkm);
    ck_assert_int_eq(rkm->offset, 4);
    rd_kafka_message_destroy(rkm);
    ck_assert_msg(core_kafka_consumer_seek(c, "rw", 0, 8, DEADLINE_MS, err, sizeof(err)) ==
                      CORE_OK,
                  "%s", err);
    rkm = poll_records(c, 1, DEADLINE_MS, &got);
    ck_assert_ptr_nonnull(rkm);
    ck_assert_int_eq(rkm->offset, 8);
    rd_kafka_message_destroy(rkm);
    core_kafka_consumer_close(c, NULL, 0);
    core_kafka_consumer_free(c);
    mock_stop(&m);
}
END_TEST

/* ---- transactions --------------------------------------------------------- */

enum { TX_N = 100, TX_PARTS = 3, TX_BATCH = 20, TX_MAXREC = TX_N * 8 };

typedef struct txrun {
    mock_t m;
    core_kafka_consumer_t *c;
    core_kafka_producer_t *p;
    const char *txid;
    unsigned done[TX_N];         /* input records in committed transactions */
    int rec_batch[TX_MAXREC];    /* produced record -> batch number */
    size_t nrec;
    int dr_ok_by_batch[64 * TX_N];
    bool batch_committed[64 * TX_N];
    int batches, commits, aborts, retries;
    bool explicit_offsets;       /* send our own list, not the positions */
    int commit_timeout_ms;
    /* fault to inject before the send_offsets / commit of batch number k */
    void (*inject)(struct txrun *t, int batch);
} txrun_t;

static void tx_dr(void *msg_opaque, const rd_kafka_message_t *rkm, void *user)
{
    txrun_t *t = user;
    int *batch = msg_opaque;

    if (!rkm->err)
        t->dr_ok_by_batch[*batch]++;
}

static void tx_setup(txrun_t *t, const char *txid)
{
    static const core_kafka_prop txp[] = { { "transaction.timeout.ms", "10000" },
                                           { "linger.ms", "2" } };
    core_kafka_producer_opts o = { 0 };
    core_kafka_prop ov[4];
    char err[512] = "";
    core_kafka_txn_res_t r;

    mock_start(&t->m, 3);
    mock_topic(&t->m, "in", TX_PARTS);
    mock_topic(&t->m, "out", TX_PARTS);
    produce_values(&t->m, "in", TX_N);
    t->txid = txid;
    t->commit_timeout_ms = 5000;
    t->c = consumer(&t->m, tu_unique(), NULL, 0, NULL);
    subscribe1(t->c, "in");

    ov[0] = (core_kafka_prop){ "bootstrap.servers", t->m.bootstraps };
    ov[1] = txp[0];
    ov[2] = txp[1];
    o.overrides = ov;
    o.noverrides = 3;
    o.transactional_id = txid;
    o.dr_cb = tx_dr;
    o.dr_user = t;
    o.metrics = g_reg;
    t->p = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(t->p, "%s", err);
    r = core_kafka_txn_init(t->p, 10000, err, sizeof(err));
    ck_assert_msg(r == CORE_KAFKA_TXN_OK, "init: %s", err);
}

static void tx_teardown(txrun_t *t)
{
    core_kafka_consumer_close(t->c, NULL, 0);
    core_kafka_consumer_free(t->c);
    core_kafka_producer_free(t->p);
    mock_stop(&t->m);
}

static size_t tx_done_count(const txrun_t *t)
{
    size_t n = 0;

    for (size_t i = 0; i < TX_N; i++)
        n += t->done[i] ? 1 : 0;
    return n;
}

/* Retry a call while it answers RETRY. */
#define TX_CALL(t, res, call)                                                  \
    do {                                                                       \
        int tries_ = 0;                                                        \
        while (((res) = (call)) == CORE_KAFKA_TXN_RETRY && tries_++ < 20)      \
            (t)->retries++;                                                    \
    } while (0)

/* Consume-transform-produce until every input record is in a committed
 * transaction. */
static void tx_loop(txrun_t *t)
{
    int64_t dl = deadline_in(40000);
    char err[512] = "";

    while (tx_done_count(t) < TX_N && before(dl)) {
        size_t idx[TX_BATCH], n = 0;
        int batch = ++t->batches, empty = 0;
        core_kafka_txn_res_t r;
        rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(TX_PARTS);

        ck_assert_int_lt(batch, 64 * TX_N);
        r = core_kafka_txn_begin(t->p, err, sizeof(err));
        ck_assert_msg(r == CORE_KAFKA_TXN_OK, "begin: %s", err);
        while (n < TX_BATCH && empty < 3) {
            rd_kafka_message_t *rkm = core_kafka_consumer_poll(t->c, 100);
            char out[32];
            int len;

            if (!rkm) {
                if (n > 0)
                    empty++;
                if (!before(dl))
                    break;
                continue;
            }
            if (rkm->err) {
                rd_kafka_message_destroy(rkm);
                continue;
            }
            idx[n] = value_index(rkm);
            len = snprintf(out, sizeof(out), "out-%zu", idx[n]);
            n++;
            ck_assert_uint_lt(t->nrec, TX_MAXREC);
            t->rec_batch[t->nrec] = batch;
            ck_assert_msg(core_kafka_produce(t->p, "out", rkm->key, rkm->key_len, out,
                                             (size_t)len, NULL, 0, &t->rec_batch[t->nrec], err,
                                             sizeof(err)) == CORE_OK, "produce: %s", err);
            t->nrec++;
            core_kafka_offsets_add_message(offs, rkm);
            rd_kafka_message_destroy(rkm);
        }
        if (t->inject)
            t->inject(t, batch);
        TX_CALL(t, r, core_kafka_txn_send_offsets(t->p, t->c, t->explicit_offsets ? offs : NULL,
                                                  5000, err, sizeof(err)));
        rd_kafka_topic_partition_list_destroy(offs);
        if (r == CORE_KAFKA_TXN_OK)
            TX_CALL(t, r, core_kafka_txn_commit(t->p, t->commit_timeout_ms, err, sizeof(err)));
        if (r == CORE_KAFKA_TXN_ABORT) {
            t->aborts++;
            TX_CALL(t, r, core_kafka_txn_abort_rewind(t->p, t->c, 10000, err, sizeof(err)));
            ck_assert_msg(r == CORE_KAFKA_TXN_OK, "abort+rewind: %s", err);
            continue; /* the batch is dropped and redone */
        }
        ck_assert_msg(r == CORE_KAFKA_TXN_OK, "send_offsets/commit: %s (%s)", err,
                      core_kafka_txn_res2str(r));
        t->commits++;
        t->batch_committed[batch] = true;
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_lt(idx[i], TX_N);
            ck_assert_msg(t->done[idx[i]] == 0, "record %zu committed twice", idx[i]);
            t->done[idx[i]]++;
        }
    }
}

static void tx_verify(txrun_t *t)
{
    int64_t hi[TX_PARTS], ok_committed = 0, ok_all = 0;
    char err[512] = "";
    size_t got = 0;
    int64_t dl;

    ck_assert_uint_eq(tx_done_count(t), TX_N);
    ck_assert_uint_eq(core_kafka_producer_flush(t->p, 5000), 0);
    core_kafka_producer_poll(t->p, 0);
    /* Records delivered by committed transactions: exactly one per input.
     * (The mock keeps aborted records visible: they are the rest.) */
    for (int b = 1; b <= t->batches; b++) {
        ok_all += t->dr_ok_by_batch[b];
        if (t->batch_committed[b])
            ok_committed += t->dr_ok_by_batch[b];
    }
    ck_assert_int_eq(ok_committed, TX_N);
    ck_assert_int_eq(topic_records(&t->m, "out", TX_PARTS), ok_all);
    ck_assert(metric1("tributary_kafka_txn_commit_seconds", CORE_METRIC_HISTOGRAM, NULL, NULL) ==
              t->commits);

    /* The committed offsets moved to the end of "in": a rewind now reads
     * nothing old, only records added after it. (The 2.0.2 mock does not
     * store transactional offsets broker-side; the consumer keeps what its
     * transactions committed.) */
    ck_assert_msg(core_kafka_consumer_rewind(t->c, 5000, err, sizeof(err)) == CORE_OK, "%s", err);
    for (int p = 0; p < TX_PARTS; p++) {
        int64_t lo = 0;
        char v[16];
        int len = snprintf(v, sizeof(v), "v-%d", TX_N + p);

        ck_assert_int_eq(rd_kafka_query_watermark_offsets(t->m.rk, "in", p, &lo, &hi[p], 5000), 0);
        ck_assert_int_eq(rd_kafka_producev(t->m.rk, RD_KAFKA_V_TOPIC("in"), RD_KAFKA_V_PARTITION(p),
                                           RD_KAFKA_V_VALUE(v, (size_t)len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END), 0);
    }
    ck_assert_int_eq(rd_kafka_flush(t->m.rk, 5000), 0);
    dl = deadline_in(DEADLINE_MS);
    while (got < TX_PARTS && before(dl)) {
        rd_kafka_message_t *rkm = core_kafka_consumer_poll(t->c, 100);

        if (!rkm)
            continue;
        if (!rkm->err) {
            ck_assert_msg(value_index(rkm) >= TX_N, "record %zu read again after the commit",
                          value_index(rkm));
            ck_assert_int_eq(rkm->offset, hi[rkm->partition]);
            got++;
        }
        rd_kafka_message_destroy(rkm);
    }
    ck_assert_uint_eq(got, TX_PARTS);
}

START_TEST(test_txn_consume_transform_produce)
{
    txrun_t *t = calloc(1, sizeof(*t));
    size_t left = 99;

    tx_setup(t, "tx-ctp");
    /* librdkafka retries a busy coordinator by itself. */
    ck_assert_int_eq(rd_kafka_mock_coordinator_set(t->m.mc, "transaction", t->txid, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_broker_push_request_error_rtts(
                         t->m.mc, 1, API_END_TXN, 2,
                         RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, 0,
                         RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, 0), 0);
    tx_loop(t);
    tx_verify(t);
    ck_assert_int_eq(t->aborts, 0);
    ck_assert_int_eq(rd_kafka_mock_broker_error_stack_cnt(t->m.mc, 1, API_END_TXN, &left), 0);
    ck_assert_uint_eq(left, 0);
    ck_assert(metric1("tributary_kafka_txn_aborts_total", CORE_METRIC_COUNTER, NULL, NULL) == 0);
    tx_teardown(t);
    free(t);
}
END_TEST

static void inject_abortable(txrun_t *t, int batch)
{
    /* Batch 2: TxnOffsetCommit refused (abortable). Batch 4: a slow EndTxn
     * (commit times out: retriable, commit again). Batch 5: a produce error
     * that fails the batch's records (abortable at commit). */
    if (batch == 2)
        rd_kafka_mock_push_request_errors(t->m.mc, API_TXN_OFFSET_COMMIT, 1,
                                          RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    if (batch == 4)
        rd_kafka_mock_broker_push_request_error_rtts(t->m.mc, 1, API_END_TXN, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, 1500);
}

START_TEST(test_txn_abort_rewind_redo)
{
    txrun_t *t = calloc(1, sizeof(*t));

    tx_setup(t, _i ? "tx-abort-explicit" : "tx-abort");
    ck_assert_int_eq(rd_kafka_mock_coordinator_set(t->m.mc, "transaction", t->txid, 1), 0);
    t->inject = inject_abortable;
    t->explicit_offsets = _i == 1;
    t->commit_timeout_ms = 500;
    tx_loop(t);
    tx_verify(t);
    ck_assert_int_ge(t->aborts, 1);
    ck_assert_int_ge(t->retries, 1);
    ck_assert(metric1("tributary_kafka_txn_aborts_total", CORE_METRIC_COUNTER, NULL, NULL) ==
              t->aborts);
    tx_teardown(t);
    free(t);
}
END_TEST

START_TEST(test_txn_fenced_is_fatal)
{
    /* The 2.0.2 mock does not fence one transactional.id's older producer
     * when a newer one initialises (a real broker does: integration test);
     * the broker's answer to the fenced producer is injected instead. */
    mock_t m = { 0 };
    core_kafka_prop ov[2];
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p1, *p2;
    char err[512] = "";
    core_kafka_txn_res_t r;

    mock_start(&m, 1);
    mock_topic(&m, "fz", 1);
    ov[0] = (core_kafka_prop){ "bootstrap.servers", m.bootstraps };
    ov[1] = (core_kafka_prop){ "transaction.timeout.ms", "10000" };
    o.overrides = ov;
    o.noverrides = 2;
    o.transactional_id = "tx-fence";
    o.metrics = g_reg;
    p1 = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p1, "%s", err);
    /* Misuse is reported, not crashed on: no transaction yet. */
    ck_assert_int_eq(core_kafka_txn_commit(p1, 1000, err, sizeof(err)), CORE_KAFKA_TXN_FATAL);
    ck_assert_int_eq(core_kafka_txn_init(p1, 10000, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_txn_begin(p1, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_produce(p1, "fz", NULL, 0, "a", 1, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_OK);
    ck_assert_uint_eq(core_kafka_producer_flush(p1, 5000), 0);

    rd_kafka_mock_push_request_errors(m.mc, API_END_TXN, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
    r = core_kafka_txn_commit(p1, 5000, err, sizeof(err));
    ck_assert_msg(r == CORE_KAFKA_TXN_FATAL, "commit when fenced: %s (%s)",
                  core_kafka_txn_res2str(r), err);
    ck_assert(core_kafka_producer_fatal(p1, err, sizeof(err)));
    ck_assert_int_eq(core_kafka_produce(p1, "fz", NULL, 0, "a", 1, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_ERR_FATAL);
    core_kafka_producer_free(p1);

    /* The rebuilt producer works. */
    p2 = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p2, "%s", err);
    ck_assert_int_eq(core_kafka_txn_init(p2, 10000, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_txn_begin(p2, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_produce(p2, "fz", NULL, 0, "b", 1, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_OK);
    ck_assert_int_eq(core_kafka_txn_commit(p2, 5000, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(topic_records(&m, "fz", 1), 2);
    core_kafka_producer_free(p2);
    mock_stop(&m);
}
END_TEST

/* ---- statistics ----------------------------------------------------------- */

static const char *STATS_CONSUMER =
    "{\"name\":\"rdkafka#consumer-1\",\"client_id\":\"rdkafka\",\"type\":\"consumer\","
    "\"ts\":1,\"time\":1,\"msg_cnt\":0,"
    "\"brokers\":{"
    "  \"localhost:9092/1\":{\"name\":\"localhost:9092/1\",\"nodeid\":1,"
    "    \"rtt\":{\"min\":100,\"max\":9000,\"avg\":2500,\"cnt\":12}},"
    "  \"localhost:9092/bootstrap\":{\"nodeid\":-1,\"rtt\":{\"avg\":7,\"cnt\":1}},"
    "  \"localhost:9093/2\":{\"nodeid\":2,\"rtt\":{\"avg\":0,\"cnt\":0}}},"
    "\"topics\":{"
    "  \"payee.raw\":{\"topic\":\"payee.raw\",\"partitions\":{"
    "    \"0\":{\"partition\":0,\"consumer_lag\":42,\"app_offset\":100,\"ls_offset\":150,"
    "          \"hi_offset\":150},"
    "    \"1\":{\"partition\":1,\"consumer_lag\":-1,\"app_offset\":-1001,\"ls_offset\":7},"
    "    \"2\":{\"partition\":2,\"consumer_lag\":0,\"app_offset\":9,\"ls_offset\":9},"
    "    \"-1\":{\"partition\":-1,\"consumer_lag\":5}}},"
    "  \"other\":{\"topic\":\"other\",\"partitions\":{"
    "    \"3\":{\"partition\":3,\"consumer_lag\":1000000,\"app_offset\":10,"
    "          \"ls_offset\":1000010}}}}}";

START_TEST(test_stats_parser)
{
    char err[256] = "", *text;

    ck_assert_msg(core_kafka_stats_apply(g_reg, STATS_CONSUMER, strlen(STATS_CONSUMER), NULL, 0,
                                         err, sizeof(err)) == CORE_OK, "%s", err);
    text = core_metrics_render(g_reg, NULL);
    ck_assert_msg(strstr(text, "tributary_kafka_consumer_lag{topic=\"payee.raw\",partition=\"0\"} 42"),
                  "%s", text);
    ck_assert(strstr(text, "tributary_kafka_consumer_lag{topic=\"payee.raw\",partition=\"2\"} 0"));
    ck_assert(strstr(text, "tributary_kafka_consumer_lag{topic=\"other\",partition=\"3\"} 1000000"));
    /* lag -1 and partition -1 are not series */
    ck_assert_msg(!strstr(text, "partition=\"1\"") && !strstr(text, "partition=\"-1\""), "%s",
                  text);
    /* broker 1: 2500 µs; bootstrap and sample-less brokers skipped */
    ck_assert_msg(strstr(text, "tributary_kafka_broker_rtt_seconds{broker=\"1\"} 0.0025"), "%s",
                  text);
    ck_assert(!strstr(text, "broker=\"-1\"") && !strstr(text, "broker=\"2\""));
    /* not a producer: no queue gauge */
    ck_assert(!strstr(text, "tributary_kafka_producer_queue_messages "));
    free(text);
}
END_TEST

START_TEST(test_stats_parser_assigned_and_position)
{
    rd_kafka_topic_partition_list_t *assigned = rd_kafka_topic_partition_list_new(2);
    static const char *producer_doc =
        "{\"type\":\"producer\",\"msg_cnt\":1234,\"brokers\":{},\"topics\":{}}";
    char err[256] = "", *text;

    rd_kafka_topic_partition_list_add(assigned, "payee.raw", 0);
    rd_kafka_topic_partition_list_add(assigned, "payee.raw", 1);
    ck_assert_int_eq(core_kafka_stats_apply(g_reg, STATS_CONSUMER, strlen(STATS_CONSUMER),
                                            assigned, CORE_KAFKA_STATS_LAG_POSITION, err,
                                            sizeof(err)), CORE_OK);
    text = core_metrics_render(g_reg, NULL);
    /* position mode: ls_offset (150) - app_offset (100) */
    ck_assert_msg(lag_of("payee.raw", "0") == 50, "%s", text);
    /* only assigned partitions; partition 1 has no position and no lag */
    ck_assert_msg(!strstr(text, "topic=\"other\"") && !strstr(text, "partition=\"2\"") &&
                  !strstr(text, "partition=\"1\""), "%s", text);
    free(text);
    rd_kafka_topic_partition_list_destroy(assigned);

    ck_assert_int_eq(core_kafka_stats_apply(g_reg, producer_doc, strlen(producer_doc), NULL, 0,
                                            err, sizeof(err)), CORE_OK);
    ck_assert(metric1("tributary_kafka_producer_queue_messages", CORE_METRIC_GAUGE, NULL, NULL) ==
              1234);
}
END_TEST

START_TEST(test_stats_parser_bad_input)
{
    static const char *bad[] = {
        "", "{", "[1,2,3]", "null", "\"str\"", "{\"topics\":", "{\"type\":\"consumer\"",
        "{\"topics\":{\"t\":{\"partitions\":{\"0\":{\"partition\":\"x\"}}}}}",
        "{\"topics\":{\"t\":[1,2]},\"brokers\":[\"x\"]}",
        "{\"topics\":{\"t\":{\"partitions\":{\"0\":{\"partition\":1e300,\"consumer_lag\":1}}}}}",
        "{\"brokers\":{\"b\":{\"nodeid\":1e300,\"rtt\":{\"avg\":1,\"cnt\":1}}}}",
    };
    char err[256];
    char *deep;
    size_t depth = 5000;

    for (size_t i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
        core_err_t rc;

        err[0] = '\0';
        rc = core_kafka_stats_apply(g_reg, bad[i], strlen(bad[i]), NULL, 0, err, sizeof(err));
        /* well-formed but odd documents are accepted with nothing set;
         * malformed ones are refused with a reason */
        if (i < 7) {
            ck_assert_msg(rc == CORE_ERR_INVALID, "doc %zu accepted", i);
            ck_assert(err[0] != '\0');
        } else {
            ck_assert_msg(rc == CORE_OK, "doc %zu: %s", i, err);
        }
    }
    ck_assert_int_eq(core_kafka_stats_apply(g_reg, NULL, 5, NULL, 0, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_eq(core_kafka_stats_apply(g_reg, "{}", (size_t)1 << 40, NULL, 0, err,
                                            sizeof(err)), CORE_ERR_TOOBIG);
    /* deep nesting */
    deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    ck_assert_int_eq(core_kafka_stats_apply(g_reg, deep, depth * 2, NULL, 0, err, sizeof(err)),
                     CORE_ERR_INVALID);
    free(deep);
    {
        char *text = core_metrics_render(g_reg, NULL);

        ck_assert_msg(!strstr(text, "tributary_kafka_consumer_lag{"), "%s", text);
        free(text);
    }
}
END_TEST

/* ---- main ----------------------------------------------------------------- */

int main(void)
{
    Suite *s[4];
    TCase *tc;

    s[0] = suite_create("kafka_conf");
    tc = tcase_create("conf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_conf_bad_value_names_key);
    tcase_add_test(tc, test_conf_unknown_key_names_key);
    tcase_add_test(tc, test_conf_layers_and_enforced_warning);
    tcase_add_test(tc, test_conf_txn_timeouts);
    tcase_add_test(tc, test_conf_scoped_by_client_kind);
    suite_add_tcase(s[0], tc);

    s[1] = suite_create("kafka_producer");
    tc = tcase_create("producer");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_produce_delivery_reports);
    tcase_add_test(tc, test_topic_metadata_waits_for_a_new_topic);
    tcase_add_test(tc, test_idempotent_survives_produce_errors);
    tcase_add_test(tc, test_produce_too_large_and_bad_args);
    tcase_add_test(tc, test_too_large_for_broker_reported_in_delivery);
    tcase_add_test(tc, test_producer_fatal_surfaces);
    tcase_add_test(tc, test_background_errors_logged_and_counted);
    suite_add_tcase(s[1], tc);

    s[2] = suite_create("kafka_consumer");
    tc = tcase_create("group");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_group_commit_then_resume, 0, 2);
    tcase_add_loop_test(tc, test_close_never_blocks, 0, 2);
    tcase_add_test(tc, test_ingest_ts_header);
    suite_add_tcase(s[2], tc);
    tc = tcase_create("offsets");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_commit_failure_reported);
    tcase_add_test(tc, test_pause_resume);
    tcase_add_test(tc, test_rewind_to_committed);
    suite_add_tcase(s[2], tc);
    tc = tcase_create("txn");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_txn_consume_transform_produce);
    tcase_add_loop_test(tc, test_txn_abort_rewind_redo, 0, 2);
    tcase_add_test(tc, test_txn_fenced_is_fatal);
    suite_add_tcase(s[2], tc);

    s[3] = suite_create("kafka_stats");
    tc = tcase_create("stats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stats_parser);
    tcase_add_test(tc, test_stats_parser_assigned_and_position);
    tcase_add_test(tc, test_stats_parser_bad_input);
    suite_add_tcase(s[3], tc);

    return tu_run(s, 4);
}
