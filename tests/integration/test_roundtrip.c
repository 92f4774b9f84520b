/* test_roundtrip.c — Avro records of the real catalogue through the real
 * servers of the local stack: Kafka (plain and transactional, read_committed),
 * Redis, PostgreSQL and FerretDB. Every record comes back bit-exact (same
 * digest) and as the same JSON; counts are exact. */
#include "testutil.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_kafka.h"
#include "tributary/core_redis.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_RECORDS 1000

static core_avro_catalog_t *cat;
static const core_avro_schema_t *payee;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static void setup(void)
{
    char err[512];

    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
    payee = core_avro_catalog_by_dataset(cat, "payee");
    ck_assert_ptr_nonnull(payee);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
    cat = NULL;
}

/* The natural JSON of payee number i. */
static cJSON *payee_json(int i, const char *batch)
{
    char text[1024];
    cJSON *j;

    snprintf(text, sizeof(text),
             "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012d\",\"op\":\"ADD\",\"kind\":\"BULK\","
             "\"source\":\"test\",\"batch_id\":\"%s\",\"seq\":%d,"
             "\"event_time\":\"2026-11-22T10:00:00.000Z\",\"version\":%d,\"old_key\":null},"
             "\"payee_id\":\"P%06d\",\"name\":\"Payee Nº %d «ü»\",\"account_number\":\"%010d\","
             "\"routing_number\":\"021000021\",\"iban\":null,\"country\":\"US\",\"currency\":\"USD\","
             "\"email\":%s,\"amount_limit\":\"%d.%02d\",\"status\":\"%s\","
             "\"updated_at\":\"2026-11-%02dT08:30:00.000Z\"}",
             i, batch, i, i + 1, i, i, i * 7, i % 3 ? "\"p@example.com\"" : "null", i * 10,
             i % 100, i % 3 == 0 ? "ACTIVE" : i % 3 == 1 ? "INACTIVE" : "BLOCKED", 1 + i % 28);
    j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* Encode JSON to wire bytes (caller frees). */
static void *encode_json(const cJSON *j, size_t *len)
{
    char err[512];
    avro_value_t v;
    void *buf = NULL;

    ck_assert_msg(core_avro_from_json(payee, j, &v, err, sizeof(err)) == CORE_OK, "from_json: %s", err);
    ck_assert_msg(core_avro_encode(payee, &v, &buf, len, err, sizeof(err)) == CORE_OK, "encode: %s", err);
    avro_value_decref(&v);
    return buf;
}

/* Decode wire bytes and compare with the expected JSON; returns 1 if equal. */
static int decoded_equals(const void *buf, size_t len, const cJSON *expect)
{
    char err[512];
    avro_value_t v;
    const core_avro_schema_t *s = NULL;
    cJSON *got;
    int eq;

    ck_assert_msg(core_avro_decode(cat, buf, len, &s, &v, err, sizeof(err)) == CORE_OK, "decode: %s", err);
    ck_assert_ptr_eq(s, payee);
    got = core_avro_to_json(payee, &v, err, sizeof(err));
    ck_assert_ptr_nonnull(got);
    eq = cJSON_Compare(got, expect, 1);
    if (!eq) {
        char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(expect);
        fprintf(stderr, "got    %s\nexpect %s\n", a, b);
        free(a);
        free(b);
    }
    cJSON_Delete(got);
    avro_value_decref(&v);
    return eq;
}

static int index_of(const char *key, size_t keylen)
{
    /* "P000123" → 123 */
    char buf[16];
    if (keylen < 2 || keylen > 10 || key[0] != 'P')
        return -1;
    memcpy(buf, key + 1, keylen - 1);
    buf[keylen - 1] = '\0';
    return atoi(buf);
}

/* ---- Kafka ---------------------------------------------------------------- */

static core_kafka_prop bootstrap(void)
{
    core_kafka_prop p = { "bootstrap.servers", env_or("TRIBUTARY_TEST_KAFKA", "127.0.0.1:9092") };
    return p;
}

/* Consume topic until want records or the deadline; calls fn per record. */
static int consume_all(const char *topic, const char *isolation, int want, int64_t timeout_ms,
                       void (*fn)(const rd_kafka_message_t *, void *), void *ud)
{
    char err[512], group[128];
    core_kafka_prop defaults[2] = { bootstrap(), { "isolation.level", isolation } };
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c;
    int got = 0;
    int64_t deadline = core_mono_ms() + timeout_ms;
    const char *topics[] = { topic };

    snprintf(group, sizeof(group), "it-%s", tu_unique());
    o.defaults = defaults;
    o.ndefaults = 2;
    o.group_id = group;
    c = core_kafka_consumer_new(&o, err, sizeof(err));
    ck_assert_msg(c != NULL, "consumer: %s", err);
    ck_assert_int_eq(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)), CORE_OK);
    /* Read until want records, then a little longer to catch extras. */
    int64_t settle = 0;
    while (core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 200);
        if (!m) {
            if (got >= want && settle == 0)
                settle = core_mono_ms() + 1500;
            if (settle && core_mono_ms() > settle)
                break;
            continue;
        }
        if (!m->err) {
            got++;
            if (fn)
                fn(m, ud);
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_close(c, err, sizeof(err));
    core_kafka_consumer_free(c);
    return got;
}

struct seen {
    int count[N_RECORDS];
    int bad;
    cJSON **expect;
};

static void check_record(const rd_kafka_message_t *m, void *ud)
{
    struct seen *s = ud;
    int i = index_of(m->key, m->key_len);
    rd_kafka_headers_t *hdrs = NULL;
    const void *hv;
    size_t hlen;

    if (i < 0 || i >= N_RECORDS) {
        s->bad++;
        return;
    }
    s->count[i]++;
    if (!decoded_equals(m->payload, m->len, s->expect[i]))
        s->bad++;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, "tb.id", &hv, &hlen) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        hlen != 36)
        s->bad++;
}

START_TEST(kafka_roundtrip_exact)
{
    char err[512], topic[128];
    core_kafka_prop defaults[1] = { bootstrap() };
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *p;
    static cJSON *expect[N_RECORDS];
    static struct seen seen;
    core_digest_agg sent, recv;

    snprintf(topic, sizeof(topic), "it.payee.raw.%s", tu_unique());
    po.defaults = defaults;
    po.ndefaults = 1;
    p = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    core_digest_agg_init(&sent);
    for (int i = 0; i < N_RECORDS; i++) {
        size_t len;
        void *buf;
        char key[16], id[40];
        core_digest d;

        expect[i] = payee_json(i, "it-batch");
        buf = encode_json(expect[i], &len);
        core_digest_record(buf, len, &d);
        core_digest_agg_add(&sent, &d);
        snprintf(key, sizeof(key), "P%06d", i);
        snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
        core_kafka_header h[] = { { "tb.id", id, strlen(id) }, { "tb.batch", "it-batch", 8 } };
        ck_assert_msg(core_kafka_produce(p, topic, key, strlen(key), buf, len, h, 2, NULL, err,
                                         sizeof(err)) == CORE_OK, "produce: %s", err);
        free(buf);
    }
    ck_assert_uint_eq(core_kafka_producer_flush(p, 30000), 0);
    ck_assert_uint_eq(core_kafka_producer_delivered(p), N_RECORDS);
    ck_assert_uint_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);

    memset(&seen, 0, sizeof(seen));
    seen.expect = expect;
    ck_assert_int_eq(consume_all(topic, "read_committed", N_RECORDS, 60000, check_record, &seen),
                     N_RECORDS);
    ck_assert_int_eq(seen.bad, 0);
    core_digest_agg_init(&recv);
    for (int i = 0; i < N_RECORDS; i++) {
        size_t len;
        void *buf = encode_json(expect[i], &len);
        core_digest d;
        ck_assert_int_eq(seen.count[i], 1);   /* no gap, no duplicate */
        core_digest_record(buf, len, &d);
        core_digest_agg_add(&recv, &d);
        free(buf);
        cJSON_Delete(expect[i]);
    }
    ck_assert(core_digest_agg_equal(&sent, &recv));
}
END_TEST

/* On the real broker, aborted transactions stay invisible to read_committed
 * consumers and visible to read_uncommitted ones. */
START_TEST(kafka_transactions_read_committed)
{
    char err[512], topic[128], txid[128];
    core_kafka_prop defaults[1] = { bootstrap() };
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *p;
    static cJSON *expect[N_RECORDS];
    static struct seen seen;

    snprintf(topic, sizeof(topic), "it.payee.txn.%s", tu_unique());
    snprintf(txid, sizeof(txid), "it-txn-%s", tu_unique());
    po.defaults = defaults;
    po.ndefaults = 1;
    po.transactional_id = txid;
    p = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    ck_assert_msg(core_kafka_txn_init(p, 30000, err, sizeof(err)) == CORE_KAFKA_TXN_OK, "init: %s", err);

    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(core_kafka_txn_begin(p, err, sizeof(err)), CORE_KAFKA_TXN_OK);
        for (int i = round * 50; i < round * 50 + 50; i++) {
            size_t len;
            void *buf;
            char key[16], id[40];
            expect[i] = payee_json(i, "it-txn");
            buf = encode_json(expect[i], &len);
            snprintf(key, sizeof(key), "P%06d", i);
            snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
            core_kafka_header h[] = { { "tb.id", id, strlen(id) } };
            ck_assert_int_eq(core_kafka_produce(p, topic, key, strlen(key), buf, len, h, 1, NULL,
                                                err, sizeof(err)), CORE_OK);
            free(buf);
        }
        /* Abort purges what is still queued locally: flush first so the
         * aborted records really are on the broker. */
        ck_assert_uint_eq(core_kafka_producer_flush(p, 30000), 0);
        if (round == 0)
            ck_assert_msg(core_kafka_txn_abort(p, 30000, err, sizeof(err)) == CORE_KAFKA_TXN_OK,
                          "abort: %s", err);
        else
            ck_assert_msg(core_kafka_txn_commit(p, 30000, err, sizeof(err)) == CORE_KAFKA_TXN_OK,
                          "commit: %s", err);
    }
    core_kafka_producer_free(p);

    memset(&seen, 0, sizeof(seen));
    seen.expect = expect;
    ck_assert_int_eq(consume_all(topic, "read_committed", 50, 60000, check_record, &seen), 50);
    ck_assert_int_eq(seen.bad, 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(seen.count[i], i < 50 ? 0 : 1);

    memset(&seen, 0, sizeof(seen));
    seen.expect = expect;
    ck_assert_int_eq(consume_all(topic, "read_uncommitted", 100, 60000, check_record, &seen), 100);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(seen.count[i], 1);
        cJSON_Delete(expect[i]);
    }
}
END_TEST

/* A second producer with the same transactional.id fences the first on the
 * real broker: the first one's next commit is FATAL, the new one works. */
START_TEST(kafka_transactional_id_fencing)
{
    char err[512], topic[128], txid[128];
    core_kafka_prop defaults[1] = { bootstrap() };
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *old, *new;

    snprintf(topic, sizeof(topic), "it.payee.fence.%s", tu_unique());
    snprintf(txid, sizeof(txid), "it-fence-%s", tu_unique());
    po.defaults = defaults;
    po.ndefaults = 1;
    po.transactional_id = txid;
    old = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(old != NULL, "%s", err);
    ck_assert_int_eq(core_kafka_txn_init(old, 30000, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_txn_begin(old, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_produce(old, topic, "k", 1, "v", 1, NULL, 0, NULL, err, sizeof(err)),
                     CORE_OK);
    ck_assert_uint_eq(core_kafka_producer_flush(old, 30000), 0);

    new = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(new != NULL, "%s", err);
    ck_assert_msg(core_kafka_txn_init(new, 30000, err, sizeof(err)) == CORE_KAFKA_TXN_OK, "%s", err);

    ck_assert_int_eq(core_kafka_txn_commit(old, 30000, err, sizeof(err)), CORE_KAFKA_TXN_FATAL);
    ck_assert(core_kafka_producer_fatal(old, NULL, 0));
    core_kafka_producer_free(old);

    ck_assert_int_eq(core_kafka_txn_begin(new, err, sizeof(err)), CORE_KAFKA_TXN_OK);
    ck_assert_int_eq(core_kafka_produce(new, topic, "k", 1, "w", 1, NULL, 0, NULL, err, sizeof(err)),
                     CORE_OK);
    ck_assert_msg(core_kafka_txn_commit(new, 30000, err, sizeof(err)) == CORE_KAFKA_TXN_OK, "%s", err);
    core_kafka_producer_free(new);

    /* Only the new producer's record is committed. */
    ck_assert_int_eq(consume_all(topic, "read_committed", 1, 30000, NULL, NULL), 1);
}
END_TEST

/* ---- Redis ---------------------------------------------------------------- */

START_TEST(redis_roundtrip_pipelined)
{
    char err[512], prefix[64];
    core_redis_opts o = { 0 };
    core_redis_t *r;
    redisReply **replies = NULL;
    size_t n = 0;
    enum { NR = 200 };
    cJSON *expect[NR];

    o.host = env_or("TRIBUTARY_TEST_REDIS_HOST", "127.0.0.1");
    o.port = atoi(env_or("TRIBUTARY_TEST_REDIS_PORT", "6379"));
    o.connect_timeout_ms = 2000;
    o.command_timeout_ms = 5000;
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "redis: %s", err);
    snprintf(prefix, sizeof(prefix), "it:%s", tu_unique());

    for (int i = 0; i < NR; i++) {
        char key[96];
        size_t len;
        void *buf;
        expect[i] = payee_json(i, "it-redis");
        buf = encode_json(expect[i], &len);
        snprintf(key, sizeof(key), "%s:P%06d", prefix, i);
        const char *argv[] = { "SET", key, buf };
        size_t argvlen[] = { 3, strlen(key), len };
        ck_assert_int_eq(core_redis_append_argv(r, 3, argv, argvlen), CORE_OK);
        free(buf);
    }
    ck_assert_msg(core_redis_pipeline_exec(r, &replies, &n, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(n, NR);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(replies[i]->type, REDIS_REPLY_STATUS);
    core_redis_replies_free(replies, n);

    for (int i = 0; i < NR; i++) {
        char key[96];
        const char *argv[2] = { "GET", key };
        size_t argvlen[2] = { 3, 0 };
        redisReply *rep;
        snprintf(key, sizeof(key), "%s:P%06d", prefix, i);
        argvlen[1] = strlen(key);
        rep = core_redis_command_argv(r, 2, argv, argvlen, err, sizeof(err));
        ck_assert_msg(rep && rep->type == REDIS_REPLY_STRING, "GET %s: %s", key, err);
        ck_assert(decoded_equals(rep->str, rep->len, expect[i]));
        freeReplyObject(rep);
        rep = core_redis_command(r, err, sizeof(err), "DEL %s", key);
        ck_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
        freeReplyObject(rep);
        cJSON_Delete(expect[i]);
    }
    core_redis_free(r);
}
END_TEST

/* ---- PostgreSQL ----------------------------------------------------------- */

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(env_or("TRIBUTARY_TEST_PG",
                                   "host=127.0.0.1 port=5432 user=tributary password=tributary "
                                   "dbname=tributary connect_timeout=5"));
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "postgres: %s", PQerrorMessage(c));
    return c;
}

START_TEST(postgres_roundtrip_bytea_and_jsonb)
{
    PGconn *c = pg_connect();
    PGresult *res;
    enum { NR = 200 };
    cJSON *expect[NR];

    res = PQexec(c, "CREATE TEMP TABLE it_payee (payee_id text PRIMARY KEY, value bytea NOT NULL, "
                    "doc jsonb NOT NULL)");
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    for (int i = 0; i < NR; i++) {
        size_t len;
        void *buf;
        char key[16], *doc;
        expect[i] = payee_json(i, "it-pg");
        buf = encode_json(expect[i], &len);
        doc = cJSON_PrintUnformatted(expect[i]);
        snprintf(key, sizeof(key), "P%06d", i);
        const char *vals[3] = { key, buf, doc };
        int lens[3] = { 0, (int)len, 0 };
        int fmts[3] = { 0, 1, 0 };
        res = PQexecParams(c, "INSERT INTO it_payee VALUES ($1, $2, $3::jsonb)", 3, NULL, vals,
                           lens, fmts, 0);
        ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(res);
        free(buf);
        free(doc);
    }
    res = PQexecParams(c, "SELECT payee_id, value, doc::text FROM it_payee ORDER BY payee_id", 0,
                       NULL, NULL, NULL, NULL, 1);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), NR);
    for (int i = 0; i < NR; i++) {
        cJSON *doc;
        ck_assert(decoded_equals(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), expect[i]));
        doc = cJSON_ParseWithLength(PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
        ck_assert_ptr_nonnull(doc);
        ck_assert(cJSON_Compare(doc, expect[i], 1));
        cJSON_Delete(doc);
        cJSON_Delete(expect[i]);
    }
    PQclear(res);
    PQfinish(c);
}
END_TEST

/* ---- FerretDB (MongoDB wire protocol) ------------------------------------- */

START_TEST(mongodb_roundtrip_documents)
{
    bson_error_t berr;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    char collname[64];
    enum { NR = 200 };
    cJSON *expect[NR];

    mongoc_init();
    client = mongoc_client_new(env_or("TRIBUTARY_TEST_MONGO", "mongodb://127.0.0.1:27017/?serverSelectionTimeoutMS=5000"));
    ck_assert_ptr_nonnull(client);
    snprintf(collname, sizeof(collname), "it_payee_%s", tu_unique());
    coll = mongoc_client_get_collection(client, "tributary_test", collname);

    for (int i = 0; i < NR; i++) {
        cJSON *withid;
        char *text, key[16];
        bson_t *doc;
        expect[i] = payee_json(i, "it-mongo");
        withid = cJSON_Duplicate(expect[i], 1);
        snprintf(key, sizeof(key), "P%06d", i);
        cJSON_AddStringToObject(withid, "_id", key);
        text = cJSON_PrintUnformatted(withid);
        doc = bson_new_from_json((const uint8_t *)text, -1, &berr);
        ck_assert_msg(doc != NULL, "bson: %s", berr.message);
        ck_assert_msg(mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr), "insert: %s", berr.message);
        bson_destroy(doc);
        free(text);
        cJSON_Delete(withid);
    }
    ck_assert_int_eq(mongoc_collection_count_documents(coll, &(bson_t)BSON_INITIALIZER, NULL, NULL, NULL, &berr), NR);

    for (int i = 0; i < NR; i++) {
        char key[16], *json;
        bson_t *filter;
        const bson_t *doc;
        mongoc_cursor_t *cur;
        cJSON *back;
        size_t len;
        void *buf, *orig;
        size_t olen;
        core_digest d1, d2;

        snprintf(key, sizeof(key), "P%06d", i);
        filter = BCON_NEW("_id", BCON_UTF8(key));
        cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
        ck_assert(mongoc_cursor_next(cur, &doc));
        json = bson_as_relaxed_extended_json(doc, NULL);
        back = cJSON_Parse(json);
        ck_assert_ptr_nonnull(back);
        cJSON_DeleteItemFromObject(back, "_id");
        ck_assert_msg(cJSON_Compare(back, expect[i], 1), "document %s differs: %s", key, json);
        /* Back to Avro: the same bytes as the original record. */
        buf = encode_json(back, &len);
        orig = encode_json(expect[i], &olen);
        core_digest_record(buf, len, &d1);
        core_digest_record(orig, olen, &d2);
        ck_assert(core_digest_equal(&d1, &d2));
        free(buf);
        free(orig);
        cJSON_Delete(back);
        bson_free(json);
        ck_assert(!mongoc_cursor_next(cur, &doc));
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        cJSON_Delete(expect[i]);
    }
    ck_assert(mongoc_collection_drop(coll, &berr));
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_cleanup();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("roundtrip");
    TCase *tk = tcase_create("kafka");
    TCase *ts = tcase_create("stores");

    tcase_add_checked_fixture(tk, setup, teardown);
    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_set_timeout(tk, 180);
    tcase_set_timeout(ts, 120);
    tcase_add_test(tk, kafka_roundtrip_exact);
    tcase_add_test(tk, kafka_transactions_read_committed);
    tcase_add_test(tk, kafka_transactional_id_fencing);
    tcase_add_test(ts, redis_roundtrip_pipelined);
    tcase_add_test(ts, postgres_roundtrip_bytea_and_jsonb);
    tcase_add_test(ts, mongodb_roundtrip_documents);
    suite_add_tcase(s, tk);
    suite_add_tcase(s, ts);
    return tu_run(&s, 1);
}
