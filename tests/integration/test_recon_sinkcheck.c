/* test_recon_sinkcheck.c — svc-recon's sink verification (sinkcheck.c)
 * against the real stack: payee records go through the real svc-persister
 * (PostgreSQL) and svc-cache-feeder (Redis, json and hash formats); their
 * audit events give the expected state (with the content digest each stage
 * computed), and the check of the untouched sinks must be clean — which
 * also proves that the digest rebuilt inside PostgreSQL and from the Redis
 * documents is the one the stages computed, for edge values (decimals at
 * the byte boundaries of their two's complement, 18 digits, empty and
 * non-ASCII strings, nulls and "" in unions, timestamps before 1970 and in
 * 9999, versions near 2^63). Then rows and keys are tampered with behind
 * the pipeline's back and the check must name exactly those. */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include "../../svc-recon/sinkcheck.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NREC 300

static core_avro_catalog_t *cat;
static const core_avro_schema_t *payee;

static void setup(void)
{
    cat = tu_catalog_load();
    payee = core_avro_catalog_by_dataset(cat, "payee");
    ck_assert_ptr_nonnull(payee);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
}

/* ---- the records ---------------------------------------------------------- */

static const char *const AMOUNTS[] = {
    "0.00", "-0.01", "1.27", "1.28", "-1.28", "-1.29", "327.67", "327.68", "-327.68",
    "-327.69", "83886.07", "-83886.08", "21474836.47", "-21474836.48", "9999999999999999.99",
    "-9999999999999999.99", "0.01", "100.00",
};
static const char *const TIMES[] = {
    "2026-11-22T08:30:00.000Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z",
};

/* The payee JSON of key k at version v (the business fields depend on v). */
static char *payee_json(int k, int64_t v, const char *op, const char *batch)
{
    char name[64];
    const char *iban = k % 3 == 0 ? "null" : k % 3 == 1 ? "\"\"" : "\"DE89370400440532013000\"";
    const char *email = k % 4 == 0 ? "\"p\\u00e9@ex\\u65e5\\u672c.com\"" : "null";

    if (k % 7 == 0)
        snprintf(name, sizeof(name), "%s", v > 1 ? "renamed" : "");
    else
        snprintf(name, sizeof(name), "n%d-v%lld", k, (long long)v);
    return core_asprintf(
        "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%06d%06lld\",\"op\":\"%s\",\"kind\":\"BULK\","
        "\"source\":\"test\",\"batch_id\":\"%s\",\"seq\":%d,\"event_time\":1,\"version\":\"%lld\","
        "\"old_key\":null},\"payee_id\":\"K%04d\",\"name\":\"%s\",\"account_number\":\"0001\","
        "\"routing_number\":\"021000021\",\"iban\":%s,\"country\":\"US\",\"currency\":\"USD\","
        "\"email\":%s,\"amount_limit\":\"%s\",\"status\":\"%s\",\"updated_at\":\"%s\"}",
        k, (long long)(v % 1000000), op, batch, k, (long long)v, k, name, iban, email,
        AMOUNTS[(size_t)k % CORE_ARRAY_SIZE(AMOUNTS)], k % 2 ? "ACTIVE" : "BLOCKED",
        TIMES[(size_t)k % CORE_ARRAY_SIZE(TIMES)]);
}

static void *payee_wire(int k, int64_t v, const char *op, const char *batch, size_t *len,
                        core_digest *cd)
{
    char err[512], *text = payee_json(k, v, op, batch);
    cJSON *j = cJSON_Parse(text);
    avro_value_t val;
    void *buf = NULL;

    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(payee, j, &val, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_int_eq(core_avro_encode(payee, &val, &buf, len, err, sizeof(err)), CORE_OK);
    if (cd)
        ck_assert_int_eq(core_avro_content_digest_value(payee, &val, cd, err, sizeof(err)),
                         CORE_OK);
    avro_value_decref(&val);
    cJSON_Delete(j);
    free(text);
    return buf;
}

/* Versions near 2^63 for some keys, small for others. */
static int64_t base_version(int k)
{
    return k % 5 == 0 ? INT64_MAX - 10 : k % 5 == 1 ? (INT64_C(1) << 61) + k : 1;
}

typedef struct model {
    int64_t version[NREC];
    bool deleted[NREC];
    core_digest cd[NREC];
    char id[NREC][64];
} model;

static void produce(core_kafka_producer_t *p, const char *topic, int k, int64_t v, const char *op,
                    model *m)
{
    char err[512], key[16];
    size_t len;
    core_digest cd;
    void *buf = payee_wire(k, v, op, "b1", &len, &cd);

    snprintf(key, sizeof(key), "K%04d", k);
    ck_assert_int_eq(core_kafka_produce(p, topic, key, strlen(key), buf, len, NULL, 0, NULL, err,
                                        sizeof(err)),
                     CORE_OK);
    free(buf);
    m->version[k] = v;
    m->deleted[k] = !strcmp(op, "DELETE");
    m->cd[k] = cd;
    snprintf(m->id[k], sizeof(m->id[k]), "00000000-0000-4000-8000-%06d%06lld", k,
             (long long)(v % 1000000));
}

/* ---- the services --------------------------------------------------------- */

/* Audit events of the stages, per key: the content digest of the newest
 * version the stage applied. */
typedef struct audit_seen {
    int64_t version[NREC];
    char cd[NREC][65];
    int n;
} audit_seen;

static bool all_seen(const audit_seen *as, const model *m)
{
    for (int k = 0; k < NREC; k++)
        if (as->version[k] != m->version[k])
            return false;
    return true;
}

static void read_audit(const char *topic, const char *group, const char *outcome_a,
                       const char *outcome_b, const model *mod, audit_seen *as)
{
    char err[512];
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    core_kafka_consumer_opts co = { .defaults = props, .ndefaults = 1, .group_id = group };
    core_kafka_consumer_t *c = core_kafka_consumer_new(&co, err, sizeof(err));
    const char *topics[1] = { topic };
    int64_t end = core_mono_ms() + 120000;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)), CORE_OK);
    for (int k = 0; k < NREC; k++)
        as->version[k] = INT64_MIN;
    while (!all_seen(as, mod) && core_mono_ms() < end) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 500);
        const core_avro_schema_t *s;
        avro_value_t v;

        if (!m)
            continue;
        if (!m->err &&
            core_avro_decode(cat, m->payload, m->len, &s, &v, err, sizeof(err)) == CORE_OK) {
            cJSON *j = core_avro_to_json(s, &v, err, sizeof(err));
            const cJSON *out = cJSON_GetObjectItem(j, "outcome");
            const cJSON *key = cJSON_GetObjectItem(j, "key");
            const cJSON *ver = cJSON_GetObjectItem(j, "version");
            const cJSON *cd = cJSON_GetObjectItem(j, "content_digest");

            ck_assert_uint_eq(core_avro_schema_id(s), 203); /* AuditEvent v3 (old_key) */
            if (cJSON_IsString(out) && (!strcmp(out->valuestring, outcome_a) ||
                                        !strcmp(out->valuestring, outcome_b))) {
                int k = atoi(key->valuestring + 1);
                int64_t vv = cJSON_IsRaw(ver) ? strtoll(ver->valuestring, NULL, 10)
                                              : (int64_t)ver->valuedouble;

                ck_assert_msg(cJSON_IsString(cd), "event without content_digest");
                if (vv >= as->version[k]) {
                    as->version[k] = vv;
                    snprintf(as->cd[k], sizeof(as->cd[k]), "%s", cd->valuestring);
                }
                as->n++;
            }
            cJSON_Delete(j);
            avro_value_decref(&v);
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_free(c);
    ck_assert_msg(all_seen(as, mod), "%d audit events on %s: not every key at its version",
                  as->n, topic);
}

static void pg_do(PGconn *c, const char *fmt, const char *schema)
{
    char sql[1024];
    PGresult *r;

    snprintf(sql, sizeof(sql), fmt, schema, schema); /* the format uses it once or twice */
    r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK && atoi(PQcmdTuples(r)) == 1,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static redisContext *rds(void)
{
    redisContext *r = redisConnect("127.0.0.1", 6379);

    ck_assert_msg(r && !r->err, "redis");
    return r;
}

static void redis_do(redisContext *r, const char *fmt, const char *a, const char *b)
{
    redisReply *rep = redisCommand(r, fmt, a, b);

    ck_assert_msg(rep && rep->type != REDIS_REPLY_ERROR, "redis: %s", fmt);
    freeReplyObject(rep);
}

/* The expected records from the model (digests from the audit events). */
static sinkcheck_expect *expectations(const model *m, const audit_seen *as, char keys[][16])
{
    sinkcheck_expect *e = calloc(NREC, sizeof(*e));

    for (int k = 0; k < NREC; k++) {
        snprintf(keys[k], 16, "K%04d", k);
        e[k].key = keys[k];
        e[k].id = m->id[k];
        e[k].version = m->version[k];
        e[k].deleted = m->deleted[k];
        if (!m->deleted[k]) {
            /* what the stage said equals what the test computed */
            ck_assert_int_eq(as->version[k], m->version[k]);
            ck_assert_int_eq(core_digest_from_hex(as->cd[k], &e[k].content), 0);
            ck_assert(core_digest_equal(&e[k].content, &m->cd[k]));
        }
    }
    return e;
}

static bool has(const sinkcheck_result *r, const char *sink, sinkcheck_verdict_t v,
                const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->findings[i].sink, sink) && r->findings[i].verdict == v &&
            !strcmp(r->findings[i].key, key))
            return true;
    return false;
}

static void dump(const sinkcheck_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        fprintf(stderr, "finding: %s %s %s id=%s stored=%lld: %s\n", r->findings[i].sink,
                sinkcheck_verdict_name(r->findings[i].verdict), r->findings[i].key,
                r->findings[i].id ? r->findings[i].id : "-",
                (long long)r->findings[i].stored_version, r->findings[i].detail);
}

/* A run of both sinks for formats json and hash; tamper; check. */
static void run_case(const char *format)
{
    char u[48], topic[128], tmpl[128], store[64], aud_p[128], aud_c[128], grp_p[128], grp_c[128];
    char prefix[64], a_tmpl[200], a_prefix[100], a_fmt[64], a_grp[160], a_aud[160],
        err[512];
    static model m;
    static audit_seen ap, ac;
    static char keys[NREC][16];
    core_kafka_producer_t *p = tu_producer("5");

    memset(&m, 0, sizeof(m));
    memset(&ap, 0, sizeof(ap));
    memset(&ac, 0, sizeof(ac));
    snprintf(u, sizeof(u), "s%s", tu_unique());
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(tmpl, sizeof(tmpl), "{dataset}.valid_%s", u);
    snprintf(store, sizeof(store), "t_%s", u);
    snprintf(aud_p, sizeof(aud_p), "audit_p_%s", u);
    snprintf(aud_c, sizeof(aud_c), "audit_c_%s", u);
    snprintf(grp_p, sizeof(grp_p), "persister_%s", u);
    snprintf(grp_c, sizeof(grp_c), "feeder_%s", u);
    snprintf(prefix, sizeof(prefix), "tb%s", u);

    /* every key added; a tenth updated; some deleted */
    for (int k = 0; k < NREC; k++)
        produce(p, topic, k, base_version(k), "ADD", &m);
    for (int k = 0; k < NREC; k += 10)
        produce(p, topic, k, base_version(k) + 2, "UPDATE", &m);
    for (int k = 5; k < NREC; k += 50)
        produce(p, topic, k, base_version(k) + 3, "DELETE", &m);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 30000), 0);

    char vs[128];
    snprintf(vs, sizeof(vs), ".valid_%s", u);
    const char *argv_p[] = { "--log.level=warn", "--dataset", "payee", "--sink", "postgres", "--create.tables",
                       "--topic.valid.suffix", vs, "--group.id", grp_p, "--audit.topic", aud_p,
                       "--http.port", "0", "--pg.schema", store, "--batch.size", "100",
                       "--batch.timeout.ms", "100", NULL };
    snprintf(a_tmpl, sizeof(a_tmpl), "--topic.template=%s", tmpl);
    snprintf(a_prefix, sizeof(a_prefix), "--cache.prefix=%s", prefix);
    snprintf(a_fmt, sizeof(a_fmt), "--cache.format=%s", format);
    snprintf(a_grp, sizeof(a_grp), "--group.id=%s", grp_c);
    snprintf(a_aud, sizeof(a_aud), "--audit.topic=%s", aud_c);
    const char *argv_c[] = { "--log.level=warn", "--dataset=payee", a_tmpl, a_prefix, a_fmt, a_grp, a_aud,
                       "--http.port=0", "--commit.interval.ms=300", NULL };
    {
        PGconn *c = tu_pg_connect();
        char sql[256];

        snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS \"%s\"", store);
        PQclear(PQexec(c, sql));
        PQfinish(c);
    }
    pid_t pp = tu_spawn("svc-persister", argv_p, tu_env(true), NULL);
    pid_t pc = tu_spawn("svc-cache-feeder", argv_c, NULL, NULL);
    char g1[160], g2[160];
    snprintf(g1, sizeof(g1), "reader_p_%s", u);
    snprintf(g2, sizeof(g2), "reader_c_%s", u);
    read_audit(aud_p, g1, "persisted", "persisted", &m, &ap);
    read_audit(aud_c, g2, "cached", "deleted", &m, &ac);
    ck_assert_int_eq(tu_stop(pp, SIGTERM, 60000), 0);
    ck_assert_int_eq(tu_stop(pc, SIGTERM, 60000), 0);
    core_kafka_producer_free(p);

    sinkcheck_expect *ex = expectations(&m, &ap, keys);
    /* the feeder's digests agree with the persister's */
    for (int k = 0; k < NREC; k++)
        if (!m.deleted[k])
            ck_assert_str_eq(ac.cd[k], ap.cd[k]);
    const char *batches[] = { "b1" };
    sinkcheck_params sp = { .cat = cat, .dataset = "payee", .expect = ex, .nexpect = NREC,
                            .batches = batches, .nbatches = 1 };
    sinkcheck_pg_conf pgc = { .password = "tributary", .schema = store, .bucket_rows = 16 };
    sinkcheck_redis_conf rc = { .prefix = prefix, .pipeline = 64,
                                .format = !strcmp(format, "hash") ? SINKCHECK_REDIS_HASH
                                                                  : SINKCHECK_REDIS_JSON };
    sinkcheck_result res = { 0 };

    /* 1. untouched: clean, and a clean table ships one row per bucket */
    ck_assert_msg(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    dump(&res);
    ck_assert_uint_eq(res.n, 0);
    ck_assert_uint_eq(res.buckets_differ, 0);
    ck_assert_uint_eq(res.rows_fetched, 0);
    ck_assert_uint_gt(res.buckets, 10);
    ck_assert_msg(sinkcheck_redis(&rc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    dump(&res);
    ck_assert_uint_eq(res.n, 0);
    sinkcheck_result_clear(&res);

    /* 2. behind the pipeline's back */
    PGconn *c = tu_pg_connect();
    pg_do(c, "DELETE FROM \"%s\".payee WHERE payee_id = 'K0101'", store);            /* missing */
    pg_do(c, "UPDATE \"%s\".payee SET amount_limit = amount_limit + 0.01 "
             "WHERE payee_id = 'K0102'", store);                                      /* altered */
    pg_do(c, "UPDATE \"%s\".payee SET name = 'n103-v2 ' WHERE payee_id = 'K0103'", store);
    pg_do(c, "UPDATE \"%s\".payee SET tb_version = tb_version - 2 "
             "WHERE payee_id = 'K0020'", store);                                      /* stale */
    pg_do(c, "INSERT INTO \"%s\".payee SELECT 'K9999', name, account_number, routing_number, "
             "iban, country, currency, email, amount_limit, status, updated_at, 1, 'x', 'b1' "
             "FROM \"%s\".payee WHERE payee_id = 'K0104'", store);                    /* unexpected */
    /* a row of another batch the check was not asked about: not a finding */
    pg_do(c, "INSERT INTO \"%s\".payee SELECT 'K8888', name, account_number, routing_number, "
             "iban, country, currency, email, amount_limit, status, updated_at, 1, 'x', 'b0' "
             "FROM \"%s\".payee WHERE payee_id = 'K0104'", store);
    /* a deleted key brought back at an older version */
    pg_do(c, "INSERT INTO \"%s\".payee SELECT 'K0055', name, account_number, routing_number, "
             "iban, country, currency, email, amount_limit, status, updated_at, 1, 'x', 'b1' "
             "FROM \"%s\".payee WHERE payee_id = 'K0104'", store);                    /* stale */
    PQfinish(c);

    redisContext *r = rds();
    char dk[200], other[200];
    snprintf(dk, sizeof(dk), "%s:payee:K0201", prefix);
    redis_do(r, "DEL %s%s", dk, "");                                                      /* missing */
    if (!strcmp(format, "hash")) {
        snprintf(dk, sizeof(dk), "%s:payee:K0202", prefix);
        redis_do(r, "HSET %s name %s", dk, "someone else");                              /* altered */
    } else {
        redisReply *g;
        snprintf(dk, sizeof(dk), "%s:payee:K0202", prefix);
        g = redisCommand(r, "GET %s", dk);
        ck_assert(g && g->type == REDIS_REPLY_STRING);
        char *doc = strdup(g->str), *at = strstr(doc, "\"country\":\"US\"");
        ck_assert_ptr_nonnull(at);
        at[12] = 'K'; /* "UK" */
        freeReplyObject(g);
        redis_do(r, "SET %s %s", dk, doc);                                               /* altered */
        free(doc);
    }
    /* stale: K0030's record put back to its first version (as the feeder
     * wrote it for version 1, taken from the copy under another key) */
    {
        char *v1 = payee_json(30, base_version(30), "ADD", "b1");
        cJSON *j = cJSON_Parse(v1);
        snprintf(dk, sizeof(dk), "%s:payee:K0030", prefix);
        if (!strcmp(format, "hash")) {
            char *meta = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "meta"));
            redis_do(r, "HSET %s meta %s", dk, meta);
            free(meta);
            redis_do(r, "HSET %s name %s", dk, cJSON_GetObjectItem(j, "name")->valuestring);
        } else {
            /* the version as a string is what from_json accepts; the feeder
             * writes an exact number, either reads back the same */
            redis_do(r, "SET %s %s", dk, v1);
        }
        cJSON_Delete(j);
        free(v1);
    }
    snprintf(other, sizeof(other), "%s:payee:K0999", prefix); /* not a key of the pipeline */
    redis_do(r, "SET %s %s", other, "{}");
    redisFree(r);

    ck_assert_msg(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(sinkcheck_redis(&rc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    dump(&res);
    ck_assert(has(&res, "postgres", SINKCHECK_MISSING, "K0101"));
    ck_assert(has(&res, "postgres", SINKCHECK_ALTERED, "K0102"));
    ck_assert(has(&res, "postgres", SINKCHECK_ALTERED, "K0103"));
    ck_assert(has(&res, "postgres", SINKCHECK_STALE, "K0020"));
    ck_assert(has(&res, "postgres", SINKCHECK_UNEXPECTED, "K9999"));
    ck_assert(has(&res, "postgres", SINKCHECK_STALE, "K0055"));
    ck_assert(has(&res, "redis", SINKCHECK_MISSING, "K0201"));
    ck_assert(has(&res, "redis", SINKCHECK_ALTERED, "K0202"));
    ck_assert(has(&res, "redis", SINKCHECK_STALE, "K0030"));
    ck_assert_uint_eq(res.n, 9);
    /* the expected id, the sink's version */
    for (size_t i = 0; i < res.n; i++)
        if (!strcmp(res.findings[i].key, "K0020")) {
            ck_assert_str_eq(res.findings[i].id, m.id[20]);
            ck_assert_int_eq(res.findings[i].stored_version, m.version[20] - 2);
        }
    ck_assert_uint_gt(res.buckets_differ, 0);
    ck_assert_uint_lt(res.buckets_differ, res.buckets);
    sinkcheck_result_clear(&res);
    free(ex);
}

START_TEST(sinks_tampered_behind_the_pipeline_are_named_json)
{
    run_case("json");
}
END_TEST

START_TEST(sinks_tampered_behind_the_pipeline_are_named_hash)
{
    run_case("hash");
}
END_TEST

/* MongoDB (FerretDB): the real svc-persister with --sink mongodb; then a
 * removed, a changed, a lowered and an unexpected document. */
START_TEST(mongodb_tampered_documents_are_named)
{
    char u[48], topic[128], vs[128], db[64], aud[128], grp[128], rgrp[160], err[512];
    static model m;
    static audit_seen ap;
    static char keys[NREC][16];
    core_kafka_producer_t *p = tu_producer("5");

    memset(&m, 0, sizeof(m));
    memset(&ap, 0, sizeof(ap));
    snprintf(u, sizeof(u), "m%s", tu_unique());
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(vs, sizeof(vs), ".valid_%s", u);
    snprintf(db, sizeof(db), "sc_%s", u);
    snprintf(aud, sizeof(aud), "audit_m_%s", u);
    snprintf(grp, sizeof(grp), "persister_%s", u);
    snprintf(rgrp, sizeof(rgrp), "reader_m_%s", u);
    for (int k = 0; k < NREC; k++)
        produce(p, topic, k, base_version(k), "ADD", &m);
    for (int k = 0; k < NREC; k += 10)
        produce(p, topic, k, base_version(k) + 2, "UPDATE", &m);
    for (int k = 5; k < NREC; k += 50)
        produce(p, topic, k, base_version(k) + 3, "DELETE", &m);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 30000), 0);
    core_kafka_producer_free(p);
    const char *argv[] = { "--log.level=warn", "--dataset", "payee", "--sink", "mongodb", "--topic.valid.suffix", vs,
                     "--group.id", grp, "--audit.topic", aud, "--http.port", "0",
                     "--mongodb.database", db, "--mongodb.write.concern", "1",
                     "--mongodb.decimal128=false", "--batch.size", "500",
                     "--batch.timeout.ms", "100", NULL };
    pid_t pp = tu_spawn("svc-persister", argv, NULL, NULL);
    read_audit(aud, rgrp, "persisted", "persisted", &m, &ap);
    ck_assert_int_eq(tu_stop(pp, SIGTERM, 60000), 0);

    sinkcheck_expect *ex = expectations(&m, &ap, keys);
    const char *batches[] = { "b1" };
    sinkcheck_params sp = { .cat = cat, .dataset = "payee", .expect = ex, .nexpect = NREC,
                            .batches = batches, .nbatches = 1 };
    sinkcheck_mongo_conf mc = { .database = db };
    sinkcheck_result res = { 0 };

    ck_assert_msg(sinkcheck_mongo(&mc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    dump(&res);
    ck_assert_uint_eq(res.n, 0);

    mongoc_client_t *c = mongoc_client_new("mongodb://127.0.0.1:27017");
    mongoc_collection_t *coll = mongoc_client_get_collection(c, db, "payee");
    bson_error_t be;
    bson_t *q = BCON_NEW("_id", "K0101");
    ck_assert_msg(mongoc_collection_delete_one(coll, q, NULL, NULL, &be), "%s", be.message);
    bson_destroy(q);
    q = BCON_NEW("_id", "K0102");
    bson_t *up = BCON_NEW("$set", "{", "country", BCON_UTF8("UK"), "}");
    ck_assert_msg(mongoc_collection_update_one(coll, q, up, NULL, NULL, &be), "%s", be.message);
    bson_destroy(q);
    bson_destroy(up);
    q = BCON_NEW("_id", "K0020");
    up = BCON_NEW("$set", "{", "tb_version", BCON_INT64(m.version[20] - 2), "}");
    ck_assert_msg(mongoc_collection_update_one(coll, q, up, NULL, NULL, &be), "%s", be.message);
    bson_destroy(q);
    bson_destroy(up);
    bson_t *doc = BCON_NEW("_id", "K9999", "name", "x", "tb_version", BCON_INT64(1), "tb_id", "x",
                           "tb_batch", "b1");
    ck_assert_msg(mongoc_collection_insert_one(coll, doc, NULL, NULL, &be), "%s", be.message);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);

    ck_assert_msg(sinkcheck_mongo(&mc, &sp, &res, err, sizeof(err)) == CORE_OK, "%s", err);
    dump(&res);
    ck_assert(has(&res, "mongodb", SINKCHECK_MISSING, "K0101"));
    ck_assert(has(&res, "mongodb", SINKCHECK_ALTERED, "K0102"));
    ck_assert(has(&res, "mongodb", SINKCHECK_STALE, "K0020"));
    ck_assert(has(&res, "mongodb", SINKCHECK_UNEXPECTED, "K9999"));
    ck_assert_uint_eq(res.n, 4);
    sinkcheck_result_clear(&res);

    /* unreachable */
    mc.uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500";
    mc.timeout_ms = 500;
    ck_assert_int_eq(sinkcheck_mongo(&mc, &sp, &res, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "no server answered"), "%s", err);
    ck_assert_uint_eq(res.n, 0);
    free(ex);
}
END_TEST

START_TEST(unreachable_sinks_and_unsupported_datasets_are_clear_errors)
{
    char err[512];
    sinkcheck_expect e = { .key = "K1", .id = "i", .version = 1 };
    sinkcheck_params sp = { .cat = cat, .dataset = "payee", .expect = &e, .nexpect = 1 };
    sinkcheck_pg_conf pgc = { .conninfo = "host=127.0.0.1 port=1 dbname=x user=x" };
    sinkcheck_redis_conf rc = { .port = 1 };
    sinkcheck_result res = { 0 };

    ck_assert_int_eq(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "postgres") && strstr(err, "cannot connect"), "%s", err);
    ck_assert_int_eq(sinkcheck_redis(&rc, &sp, &res, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "127.0.0.1:1"), "%s", err);
    /* wrong password */
    pgc.conninfo = "host=127.0.0.1 port=5432 dbname=tributary user=tributary";
    pgc.password = "wrong";
    ck_assert_int_eq(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "authentication"), "%s", err);
    ck_assert_ptr_null(strstr(err, "wrong"));
    /* no such table */
    pgc.password = "tributary";
    pgc.schema = "no_such_schema";
    ck_assert_int_eq(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "does not exist"), "%s", err);
    /* a dataset with a jsonb column: refused, named */
    sp.dataset = "event";
    ck_assert_int_eq(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "not supported") && strstr(err, "jsonb"), "%s", err);
    sp.dataset = "nope";
    ck_assert_int_eq(sinkcheck_pg(&pgc, &sp, &res, err, sizeof(err)), CORE_ERR_INVALID);
    /* a key twice */
    sinkcheck_expect two[2] = { e, e };
    sp.dataset = "payee";
    sp.expect = two;
    sp.nexpect = 2;
    ck_assert_int_eq(sinkcheck_redis(NULL, &sp, &res, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_uint_eq(res.n, 0);
    sinkcheck_result_clear(&res);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recon_sinkcheck");
    TCase *tc = tcase_create("sinks");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sinks_tampered_behind_the_pipeline_are_named_json);
    tcase_add_test(tc, sinks_tampered_behind_the_pipeline_are_named_hash);
    tcase_add_test(tc, mongodb_tampered_documents_are_named);
    tcase_add_test(tc, unreachable_sinks_and_unsupported_datasets_are_clear_errors);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
