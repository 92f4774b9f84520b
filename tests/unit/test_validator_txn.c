/* test_validator_txn.c — svc-validator's transaction path on librdkafka's
 * mock cluster: consume payee.raw, validate, route and commit with the
 * input offsets in one transaction, while errors are injected into the
 * offset step (TxnOffsetCommit, AddOffsetsToTxn), the partition step
 * (AddPartitionsToTxn) and the commit step (EndTxn). Every failure must end
 * in abort + rewind + redo: each input record counted in exactly one
 * committed transaction (nothing lost, nothing doubled), with the group's
 * committed offsets at the end of the input. And a record whose output
 * Kafka refuses (larger than message.max.bytes) ends in the DLQ instead of
 * stalling its partition.
 *
 * The 2.0.2 mock writes no transaction markers, so what read_committed
 * hides is proven on the real broker (tests/integration/test_validator.c);
 * here the validator's own accounting of committed transactions is the
 * evidence (the 2.0.2 mock does not keep TxnOffsetCommit offsets for the
 * group either: core_kafka's rewind uses the offsets of the transactions
 * it saw commit, which is what the redo after each abort exercises). */
#include "testutil.h"

#include "../../svc-validator/validator.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 3000
#define BIG_AT 101 /* scenario 3: this record's outputs are too large */
#define PARTS 3
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_ADD_OFFSETS_TO_TXN 25
#define API_END_TXN 26
#define API_TXN_OFFSET_COMMIT 28

static int kind_of(size_t i)
{
    if (i % 13 == 3)
        return VO_POISON;
    if (i % 7 == 2)
        return VO_INVALID;
    return VO_VALID;
}

static void produce(const char *bootstraps, const core_avro_catalog_t *cat)
{
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    core_kafka_prop ov[] = { { "bootstrap.servers", bootstraps } };
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p;
    char err[512];

    o.overrides = ov;
    o.noverrides = 1;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    for (size_t i = 0; i < N; i++) {
        char js[2048], key[32];
        void *buf = NULL;
        size_t len = 0;

        snprintf(key, sizeof(key), "P%zu", i);
        if (kind_of(i) == VO_POISON) {
            static const char poison[] = "\x00\x00\x00\x00\x65not avro";

            len = sizeof(poison) - 1;
            buf = malloc(len);
            memcpy(buf, poison, len);
        } else {
            cJSON *j;
            avro_value_t v;

            snprintf(js, sizeof(js),
                     "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012zu\",\"op\":\"ADD\","
                     "\"kind\":\"BULK\",\"source\":\"t\",\"batch_id\":\"b\",\"seq\":%zu,"
                     "\"event_time\":0,\"version\":1,\"old_key\":null},\"payee_id\":\"%s\","
                     "\"name\":\"n\",\"account_number\":\"1234\",\"routing_number\":\"%s\","
                     "\"iban\":null,\"country\":\"US\",\"currency\":\"USD\",\"email\":null,"
                     "\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":0}",
                     i, i, key, kind_of(i) == VO_INVALID ? "111111111" : "021000021");
            if (i == BIG_AT) { /* a name so long the output exceeds 1000 bytes */
                char *name = strstr(js, "\"name\":\"n\"");
                char tail[1024];

                snprintf(tail, sizeof(tail), "%s", name + strlen("\"name\":\"n\""));
                snprintf(name, sizeof(js) - (size_t)(name - js), "\"name\":\"%0800d\"%s", 0,
                         tail);
            }
            j = cJSON_Parse(js);
            ck_assert_int_eq(core_avro_from_json(s, j, &v, err, sizeof(err)), CORE_OK);
            ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, err, sizeof(err)), CORE_OK);
            avro_value_decref(&v);
            cJSON_Delete(j);
        }
        ck_assert_int_eq(core_kafka_produce(p, "payee.raw", key, strlen(key), buf, len, NULL, 0,
                                            NULL, err, sizeof(err)),
                         CORE_OK);
        free(buf);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 20000), 0);
    ck_assert_int_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);
}

static uint64_t committed_total(const validator_stats *s)
{
    uint64_t t = 0;

    for (int o = 0; o < VO_COUNT; o++)
        t += s->committed[o];
    return t;
}

static void run_with_faults(int scenario)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *mrk;
    rd_kafka_mock_cluster_t *mc;
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    const char *bootstraps;
    validator_params p = { 0 };
    validator_t *v;
    const char *ds[] = { "payee" };
    int64_t deadline;
    int step = 0;
    size_t want[VO_COUNT] = { 0 };

    ck_assert_msg(cat != NULL, "%s", err);
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "3", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
    mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(mrk != NULL, "%s", err);
    mc = rd_kafka_handle_mock_cluster(mrk);
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "payee.raw", PARTS, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "payee.retry", PARTS, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "payee.valid", PARTS, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "payee.dlq", PARTS, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "audit.events", PARTS, 1), 0);
    produce(bootstraps, cat);
    for (size_t i = 0; i < N; i++)
        want[kind_of(i)]++;

    {
        const core_kafka_prop kd[] = {
            { "bootstrap.servers", bootstraps },
            /* One member: no session may lapse on a loaded machine (a
             * rebalance on the 2.0.2 mock re-reads from the start: it keeps
             * no transactional offsets). */
            { "session.timeout.ms", "30000" },
            { "heartbeat.interval.ms", "1000" },
            { "transaction.timeout.ms", "10000" },
            { "topic.metadata.refresh.interval.ms", "1000" },
            { "log_level", "2" },
            /* scenario 3: outputs over 1000 bytes are refused by the producer */
            { "message.max.bytes", scenario == 3 ? "1000" : "1000000" },
        };

        p.kafka_defaults = kd;
        p.nkafka_defaults = CORE_ARRAY_SIZE(kd);
        p.cat = cat;
        p.datasets = ds;
        p.ndatasets = 1;
        p.group_id = "validators";
        p.transactional_id = "svc-validator-test";
        p.batch_max = 200;
        p.commit_interval_ms = 100;
        p.retry = (core_backoff){ 100, 1000, 2.0, 0.5, 3 };
        p.clock_skew_ms = 60000;
        ck_assert_int_eq(rd_kafka_mock_coordinator_set(mc, "transaction", "svc-validator-test",
                                                       1),
                         0);
        v = validator_new(&p, err, sizeof(err));
        ck_assert_msg(v != NULL, "%s", err);
    }

    deadline = core_mono_ms() + 60000;
    while (committed_total(validator_get_stats(v)) < N && core_mono_ms() < deadline) {
        uint64_t before = validator_get_stats(v)->transactions;

        ck_assert_msg(validator_step(v, err, sizeof(err)) == 0, "step: %s", err);
        if (validator_get_stats(v)->transactions == before)
            continue; /* inject after real progress only */
        step++;
        if (scenario == 0 && (step == 2 || step == 5)) /* offset step refused: abortable */
            rd_kafka_mock_push_request_errors(mc, API_TXN_OFFSET_COMMIT, 1,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        if (scenario == 1 && step == 2) /* adding the offsets' partition refused */
            rd_kafka_mock_push_request_errors(mc, API_ADD_OFFSETS_TO_TXN, 1,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        if (scenario == 1 && step == 4) /* adding output partitions refused */
            rd_kafka_mock_push_request_errors(mc, API_ADD_PARTITIONS_TO_TXN, 1,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        if (scenario == 2 && step == 2) /* commit step: coordinator busy, then moved */
            rd_kafka_mock_push_request_errors(mc, API_END_TXN, 3,
                                              RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                                              RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                              RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
    }
    /* Nothing more may come: step a little longer. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(validator_step(v, err, sizeof(err)), 0);

    {
        const validator_stats *s = validator_get_stats(v);

        /* After a rebalance the mock would hand the partitions back from
         * their start: the counts below could not be judged. */
        ck_assert_msg(s->revokes == 0, "%llu rebalances took partitions away",
                      (unsigned long long)s->revokes);
        ck_assert_uint_eq(committed_total(s), N);
        /* The big one breaks the name's length rule: invalid; in scenario 3
         * even its DLQ record is too large: poison, value dropped, no stall. */
        want[VO_VALID]--;
        want[scenario == 3 ? VO_POISON : VO_INVALID]++;
        ck_assert_uint_eq(s->committed[VO_VALID], want[VO_VALID]);
        ck_assert_uint_eq(s->committed[VO_INVALID], want[VO_INVALID]);
        ck_assert_uint_eq(s->committed[VO_POISON], want[VO_POISON]);
        if (scenario != 2)
            ck_assert_msg(s->aborts >= 1, "no transaction was aborted: the fault missed");
        fprintf(stderr, "scenario %d: %llu transactions, %llu aborts, %llu rebuilds\n",
                scenario, (unsigned long long)s->transactions, (unsigned long long)s->aborts,
                (unsigned long long)s->rebuilds);
    }
    core_kafka_consumer_close(validator_consumer(v), NULL, 0);
    validator_free(v);
    core_avro_catalog_free(cat);
    rd_kafka_destroy(mrk);
}

START_TEST(offset_step_faults) { run_with_faults(0); }
END_TEST
START_TEST(partition_step_faults) { run_with_faults(1); }
END_TEST
START_TEST(commit_step_faults) { run_with_faults(2); }
END_TEST
START_TEST(output_refused_never_stalls) { run_with_faults(3); }
END_TEST

int main(void)
{
    Suite *s = suite_create("validator_txn");
    TCase *tc = tcase_create("mock");

    core_log_init("test", CORE_LOG_ERROR);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, offset_step_faults);
    tcase_add_test(tc, partition_step_faults);
    tcase_add_test(tc, commit_step_faults);
    tcase_add_test(tc, output_refused_never_stalls);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
