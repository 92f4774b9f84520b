/* test_validator_ids.c — the schema ids svc-validator writes on its outputs
 * (validator_params.out_ids: with a Schema Registry, the id of the
 * dataset's current schema under each output's subject), on librdkafka's
 * mock cluster:
 *   - a record written with the current schema, or with a schema of the
 *     same text under another id, leaves with the output subject's id
 *     (.valid's for a valid record, .dlq's for an invalid one);
 *   - a record of an older version keeps its own id (its bytes are that
 *     version's);
 *   - the body is never touched: the payload digest (body only) of every
 *     output equals its input's, so svc-recon sees nothing altered;
 *   - without out_ids every id passes as it came. */
#include "testutil.h"

#include "../../svc-validator/validator.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_V1 101     /* payee.avsc: the older version */
#define ID_SAME 9002  /* the current version's text under another id */
#define ID_CUR 9001   /* the current version (payee + an optional field) */
#define OUT_VALID 7001
#define OUT_RETRY 7002
#define OUT_DLQ 7003

struct rec {
    const char *key;
    uint32_t id;
    bool invalid;
    uint32_t want_id; /* on its output, with out_ids */
    const char *want_topic;
};

static const struct rec recs[] = {
    { "A", ID_V1, false, ID_V1, "payee.valid" },
    { "B", ID_CUR, false, OUT_VALID, "payee.valid" },
    { "C", ID_SAME, false, OUT_VALID, "payee.valid" },
    { "D", ID_CUR, true, OUT_DLQ, "payee.dlq" },
    { "E", ID_V1, true, ID_V1, "payee.dlq" },
};
#define NRECS (sizeof(recs) / sizeof(recs[0]))

/* The catalogue: proto/ plus payee v2 (one more optional field) twice, as
 * id ID_SAME then as the current ID_CUR. */
static core_avro_catalog_t *catalog(void)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    cJSON *j;
    char *text;

    ck_assert_msg(cat != NULL, "%s", err);
    j = cJSON_Duplicate(core_avro_schema_json(core_avro_catalog_by_dataset(cat, "payee")), 1);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "fields"),
                         cJSON_Parse("{\"name\":\"nick\",\"type\":[\"null\",\"string\"],"
                                     "\"default\":null}"));
    text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    ck_assert_msg(core_avro_catalog_add(cat, ID_SAME, "payee", text, strlen(text), err,
                                        sizeof(err)) == CORE_OK &&
                      core_avro_catalog_add(cat, ID_CUR, "payee", text, strlen(text), err,
                                            sizeof(err)) == CORE_OK,
                  "%s", err);
    free(text);
    ck_assert_uint_eq(core_avro_schema_id(core_avro_catalog_by_dataset(cat, "payee")), ID_CUR);
    return cat;
}

/* The wire bytes of a record with the schema of id (malloc'd). */
static void *record(const core_avro_catalog_t *cat, const struct rec *r, size_t *lenp)
{
    const core_avro_schema_t *s = core_avro_catalog_by_id(cat, r->id);
    char js[1024], err[512];
    avro_value_t v;
    void *buf = NULL;
    cJSON *j;

    ck_assert_ptr_nonnull(s);
    snprintf(js, sizeof(js),
             "{\"meta\":{\"id\":\"00000000-0000-4000-8000-00000000000%c\",\"op\":\"ADD\","
             "\"kind\":\"BULK\",\"source\":\"t\",\"batch_id\":\"b\",\"seq\":1,"
             "\"event_time\":0,\"version\":1,\"old_key\":null},\"payee_id\":\"%s%s\","
             "\"name\":\"n\",\"account_number\":\"1234\",\"routing_number\":\"021000021\","
             "\"iban\":null,\"country\":\"US\",\"currency\":\"USD\",\"email\":null,"
             "\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":0}",
             r->key[0], r->key, r->invalid ? "x" : ""); /* invalid: the key differs */
    j = cJSON_Parse(js);
    ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_int_eq(core_avro_encode(s, &v, &buf, lenp, err, sizeof(err)), CORE_OK);
    avro_value_decref(&v);
    cJSON_Delete(j);
    ck_assert_uint_eq(((uint8_t *)buf)[4], r->id & 0xff);
    return buf;
}

static void run(bool with_out_ids)
{
    static const uint32_t out_ids[] = { OUT_VALID, OUT_RETRY, OUT_DLQ };
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *mrk;
    rd_kafka_mock_cluster_t *mc;
    core_avro_catalog_t *cat = catalog();
    const char *bootstraps, *ds[] = { "payee" };
    validator_params p = { 0 };
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *prod;
    validator_t *v;
    core_digest in_dg[NRECS];
    bool seen[NRECS] = { false };
    size_t nseen = 0;
    int64_t deadline;

    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
    mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(mrk != NULL, "%s", err);
    mc = rd_kafka_handle_mock_cluster(mrk);
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    {
        const char *topics[] = { "payee.raw", "payee.retry", "payee.valid", "payee.dlq",
                                 "audit.events" };

        for (size_t i = 0; i < CORE_ARRAY_SIZE(topics); i++)
            ck_assert_int_eq(rd_kafka_mock_topic_create(mc, topics[i], 1, 1), 0);
    }
    {
        core_kafka_prop ov[] = { { "bootstrap.servers", bootstraps } };

        po.overrides = ov;
        po.noverrides = 1;
        prod = core_kafka_producer_new(&po, err, sizeof(err));
        ck_assert_msg(prod != NULL, "%s", err);
        for (size_t i = 0; i < NRECS; i++) {
            size_t len = 0;
            void *buf = record(cat, &recs[i], &len);

            core_digest_record(buf, len, &in_dg[i]);
            ck_assert_int_eq(core_kafka_produce(prod, "payee.raw", recs[i].key, 1, buf, len,
                                                NULL, 0, NULL, err, sizeof(err)),
                             CORE_OK);
            free(buf);
        }
        ck_assert_int_eq(core_kafka_producer_flush(prod, 20000), 0);
        core_kafka_producer_free(prod);
    }
    {
        const core_kafka_prop kd[] = {
            { "bootstrap.servers", bootstraps },
            { "transaction.timeout.ms", "10000" },
            { "log_level", "2" },
        };

        p.kafka_defaults = kd;
        p.nkafka_defaults = CORE_ARRAY_SIZE(kd);
        p.cat = cat;
        p.datasets = ds;
        p.ndatasets = 1;
        p.group_id = "validators";
        p.transactional_id = "svc-validator-ids";
        p.batch_max = 100;
        p.commit_interval_ms = 100;
        p.retry = (core_backoff){ 100, 1000, 2.0, 0.5, 3 };
        p.clock_skew_ms = 60000;
        p.out_ids = with_out_ids ? out_ids : NULL;
        v = validator_new(&p, err, sizeof(err));
        ck_assert_msg(v != NULL, "%s", err);
        deadline = core_mono_ms() + 30000;
        while (validator_get_stats(v)->committed[VO_VALID] +
                       validator_get_stats(v)->committed[VO_INVALID] <
                   NRECS &&
               core_mono_ms() < deadline)
            ck_assert_msg(validator_step(v, err, sizeof(err)) == 0, "step: %s", err);
        ck_assert_uint_eq(validator_get_stats(v)->committed[VO_VALID], 3);
        ck_assert_uint_eq(validator_get_stats(v)->committed[VO_INVALID], 2);
        core_kafka_consumer_close(validator_consumer(v), NULL, 0);
        validator_free(v);
    }
    {
        /* the mock writes no transaction markers: read uncommitted */
        const core_kafka_prop ov[] = { { "bootstrap.servers", bootstraps },
                                       { "isolation.level", "read_uncommitted" } };
        core_kafka_consumer_opts co = { 0 };
        core_kafka_consumer_t *c;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(2);

        co.overrides = ov;
        co.noverrides = CORE_ARRAY_SIZE(ov);
        co.group_id = "ids-reader";
        c = core_kafka_consumer_new(&co, err, sizeof(err));
        ck_assert_msg(c != NULL, "%s", err);
        rd_kafka_topic_partition_list_add(parts, "payee.valid", 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_topic_partition_list_add(parts, "payee.dlq", 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        ck_assert_int_eq(core_kafka_consumer_assign(c, parts, err, sizeof(err)), CORE_OK);
        rd_kafka_topic_partition_list_destroy(parts);
        deadline = core_mono_ms() + 20000;
        while (nseen < NRECS && core_mono_ms() < deadline) {
            rd_kafka_message_t *m = core_kafka_consumer_poll(c, 100);
            uint32_t id = 0;
            core_digest dg;
            size_t i;

            if (!m)
                continue;
            if (m->err || m->key_len != 1) {
                rd_kafka_message_destroy(m);
                continue;
            }
            for (i = 0; i < NRECS && recs[i].key[0] != *(const char *)m->key; i++)
                ;
            ck_assert_uint_lt(i, NRECS);
            ck_assert_msg(!seen[i], "record %s twice", recs[i].key);
            seen[i] = true;
            nseen++;
            ck_assert_str_eq(rd_kafka_topic_name(m->rkt), recs[i].want_topic);
            ck_assert_int_eq(core_avro_wire_id(m->payload, m->len, &id, err, sizeof(err)),
                             CORE_OK);
            ck_assert_msg(id == (with_out_ids ? recs[i].want_id : recs[i].id),
                          "record %s left with id %u", recs[i].key, id);
            core_digest_record(m->payload, m->len, &dg);
            ck_assert_msg(memcmp(&dg, &in_dg[i], sizeof(dg)) == 0, "record %s: body changed",
                          recs[i].key);
            rd_kafka_message_destroy(m);
        }
        core_kafka_consumer_free(c);
    }
    ck_assert_uint_eq(nseen, NRECS);
    core_avro_catalog_free(cat);
    rd_kafka_destroy(mrk);
}

START_TEST(output_subject_ids_written_body_untouched) { run(true); }
END_TEST

START_TEST(without_out_ids_every_id_passes_as_it_came) { run(false); }
END_TEST

static Suite *ids_suite(void)
{
    Suite *s = suite_create("validator_ids");
    TCase *tc = tcase_create("ids");

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, output_subject_ids_written_body_untouched);
    tcase_add_test(tc, without_out_ids_every_id_passes_as_it_came);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { ids_suite() };

    return tu_run(s, 1);
}
