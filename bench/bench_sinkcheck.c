/* bench_sinkcheck.c — time svc-recon's PostgreSQL sink check (sinkcheck.c)
 * on a clean table of N payee rows in svc-persister's layout, next to
 * `SELECT count(*)` and a full-table md5 over the same table.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Ilibcore/include $(pkg-config --cflags libcjson hiredis libmongoc-1.0) \
 *      -I/usr/include/postgresql bench/bench_sinkcheck.c svc-recon/sinkcheck.c \
 *      build/lib/libtributary-core.a -lpq $(pkg-config --libs rdkafka hiredis libcjson avro-c \
 *      libcurl libmicrohttpd uuid libcrypto zlib libmongoc-1.0) -lpthread -lm -o build/bench/bench_sinkcheck
 *   build/bench/bench_sinkcheck [N]       (default 1000000; stack's PostgreSQL)
 *
 * The rows are generated in SQL from their number i; the expected records
 * (the content digests) are built here from the same i through the payee
 * schema, as a stage would, so a clean check proves the two agree. Prints
 * figures; exits 1 when the check is not clean.
 *
 * BENCH_AUDIT_TOPIC=T: also publish the four stages' audit events of every
 * row (batch "bench", the same ids, versions and content digests) to T, so
 * `svc-recon report --batch bench [--verify-sinks]` can be timed on them
 * (bench/bench_recon.sh's verify part); BENCH_KEEP=1 keeps the table. */
#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include "../svc-recon/sinkcheck.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNINFO "host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double timed_sql(PGconn *c, const char *sql)
{
    double t0 = now_s();
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(c));
        exit(2);
    }
    PQclear(r);
    return now_s() - t0;
}

/* The four stages' audit events of every expected record, to topic. */
static int publish_audit(const core_avro_catalog_t *cat, const char *topic,
                         const sinkcheck_expect *ex, long n)
{
    static const char *const stages[4] = { "ingest", "validator", "cache-feeder", "persister" };
    static const char *const outcomes[4] = { "published", "valid", "cached", "persisted" };
    char err[512];
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" }, { "linger.ms", "20" },
                                { "batch.num.messages", "10000" },
                                { "queue.buffering.max.messages", "1000000" } };
    core_kafka_producer_opts po = { 0 };
    po.defaults = props;
    po.ndefaults = 4;
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    core_audit_t *a[4] = { NULL };
    double t = now_s();

    if (!p) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    for (int s = 0; s < 4; s++)
        if (!(a[s] = core_audit_new(p, cat, topic, stages[s], err, sizeof(err)))) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
    int64_t now = core_now_ms();
    for (long i = 0; i < n; i++) {
        core_audit_event ev = CORE_AUDIT_EVENT_INIT;
        ev.id = ex[i].id;
        ev.key = ex[i].key;
        ev.dataset = "payee";
        ev.batch_id = "bench";
        ev.digest = &ex[i].content;
        ev.content_digest = &ex[i].content;
        ev.version = ex[i].version;
        ev.ts = now;
        for (int s = 0; s < 4; s++) {
            ev.outcome = outcomes[s];
            ev.topic = s < 2 ? "payee.raw" : "payee.valid";
            ev.partition = s ? 0 : CORE_AUDIT_NONE;
            ev.offset = s ? i : CORE_AUDIT_NONE;
            ev.line = s ? CORE_AUDIT_NONE : i + 2;
            if (core_audit_emit(a[s], &ev, err, sizeof(err)) != CORE_OK) {
                fprintf(stderr, "bench: %s\n", err);
                return -1;
            }
        }
    }
    if (core_kafka_producer_flush(p, 300000) != 0 || core_kafka_producer_failed(p) != 0) {
        fprintf(stderr, "bench: audit events not delivered\n");
        return -1;
    }
    for (int s = 0; s < 4; s++)
        core_audit_free(a[s]);
    core_kafka_producer_free(p);
    printf("audit events: %ld published to %s in %.2f s\n", n * 4, topic, now_s() - t);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    const char *proto = getenv("TB_PROTO_DIR") ? getenv("TB_PROTO_DIR") : "proto";
    char err[512], sql[4096];
    core_avro_catalog_t *cat = core_avro_catalog_load(proto, err, sizeof(err));
    const core_avro_schema_t *payee;
    PGconn *c;
    sinkcheck_expect *ex;
    char (*keys)[24], (*ids)[24];
    double t;

    if (!cat) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    payee = core_avro_catalog_by_dataset(cat, "payee");
    c = PQconnectdb(CONNINFO);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: %s", PQerrorMessage(c));
        return 2;
    }
    timed_sql(c, "DROP SCHEMA IF EXISTS bench_sinkcheck CASCADE; CREATE SCHEMA bench_sinkcheck");
    timed_sql(c, "CREATE TABLE bench_sinkcheck.payee (payee_id text NOT NULL, name text NOT NULL,"
                 " account_number text NOT NULL, routing_number text NOT NULL, iban text,"
                 " country text NOT NULL, currency text NOT NULL, email text,"
                 " amount_limit numeric(18,2) NOT NULL, status text NOT NULL,"
                 " updated_at timestamptz NOT NULL, tb_version bigint NOT NULL,"
                 " tb_id text NOT NULL, tb_batch text NOT NULL,"
                 " tb_persisted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (payee_id))");
    snprintf(sql, sizeof(sql),
             "INSERT INTO bench_sinkcheck.payee SELECT 'P' || lpad(i::text, 8, '0'), 'name ' || i,"
             " '000' || i, '021000021', CASE WHEN i %% 3 = 0 THEN NULL ELSE 'DE89370400440532013000'"
             " END, 'US', 'USD', CASE WHEN i %% 2 = 0 THEN NULL ELSE 'e' || i || '@example.com' END,"
             " (i %% 100000) / 100.0, (ARRAY['ACTIVE','INACTIVE','BLOCKED'])[i %% 3 + 1],"
             " to_timestamp(1700000000 + i), i, 'id-' || i, 'bench' FROM generate_series(1, %ld) i",
             n);
    t = timed_sql(c, sql);
    timed_sql(c, "VACUUM ANALYZE bench_sinkcheck.payee");
    printf("rows %ld inserted in %.2f s\n", n, t);

    ex = calloc((size_t)n, sizeof(*ex));
    keys = calloc((size_t)n, sizeof(*keys));
    ids = calloc((size_t)n, sizeof(*ids));
    t = now_s();
    for (long i = 1; i <= n; i++) {
        static const char *const st[] = { "ACTIVE", "INACTIVE", "BLOCKED" };
        char json[1024], iban[40], email[64];
        cJSON *j;
        avro_value_t v;

        snprintf(iban, sizeof(iban), i % 3 == 0 ? "null" : "\"DE89370400440532013000\"");
        if (i % 2 == 0)
            snprintf(email, sizeof(email), "null");
        else
            snprintf(email, sizeof(email), "\"e%ld@example.com\"", i);
        snprintf(keys[i - 1], sizeof(keys[i - 1]), "P%08ld", i);
        snprintf(ids[i - 1], sizeof(ids[i - 1]), "id-%ld", i);
        snprintf(json, sizeof(json),
                 "{\"meta\":{\"id\":\"%s\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"b\","
                 "\"batch_id\":\"bench\",\"seq\":%ld,\"event_time\":0,\"version\":%ld,"
                 "\"old_key\":null},\"payee_id\":\"%s\",\"name\":\"name %ld\","
                 "\"account_number\":\"000%ld\",\"routing_number\":\"021000021\",\"iban\":%s,"
                 "\"country\":\"US\",\"currency\":\"USD\",\"email\":%s,\"amount_limit\":\"%ld.%02ld\","
                 "\"status\":\"%s\",\"updated_at\":%ld}",
                 ids[i - 1], i, i, keys[i - 1], i, i, iban, email, (i % 100000) / 100,
                 (i % 100000) % 100, st[i % 3], (1700000000 + i) * 1000);
        j = cJSON_Parse(json);
        if (!j || core_avro_from_json(payee, j, &v, err, sizeof(err)) != CORE_OK ||
            core_avro_content_digest_value(payee, &v, &ex[i - 1].content, err, sizeof(err)) !=
                CORE_OK) {
            fprintf(stderr, "bench: record %ld: %s\n", i, err);
            return 2;
        }
        avro_value_decref(&v);
        cJSON_Delete(j);
        ex[i - 1].key = keys[i - 1];
        ex[i - 1].id = ids[i - 1];
        ex[i - 1].version = i;
    }
    printf("expected records built in %.2f s (JSON -> Avro -> content digest, as a stage)\n",
           now_s() - t);

    if (getenv("BENCH_AUDIT_TOPIC") && publish_audit(cat, getenv("BENCH_AUDIT_TOPIC"), ex, n) != 0)
        return 2;
    sinkcheck_params p = { .cat = cat, .dataset = "payee", .expect = ex, .nexpect = (size_t)n };
    sinkcheck_pg_conf pc = { .password = "tributary", .schema = "bench_sinkcheck",
                             .statement_timeout_ms = 600000 };
    sinkcheck_result res = { 0 };

    t = now_s();
    if (sinkcheck_pg(&pc, &p, &res, err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "bench: sinkcheck: %s\n", err);
        return 2;
    }
    t = now_s() - t;
    printf("sinkcheck_pg: %ld rows in %.2f s, %llu buckets, %llu differ, %zu findings\n", n, t,
           (unsigned long long)res.buckets, (unsigned long long)res.buckets_differ, res.n);
    printf("SELECT count(*): %.3f s\n", timed_sql(c, "SELECT count(*) FROM bench_sinkcheck.payee"));
    printf("full-table md5 (sum of md5 of each row's text): %.2f s\n",
           timed_sql(c, "SELECT sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) "
                        "FROM bench_sinkcheck.payee t"));
    if (!getenv("BENCH_KEEP"))
        timed_sql(c, "DROP SCHEMA bench_sinkcheck CASCADE");
    PQfinish(c);
    size_t nfind = res.n;
    sinkcheck_result_clear(&res);
    free(ex);
    free(keys);
    free(ids);
    core_avro_catalog_free(cat);
    return nfind ? 1 : 0;
}
