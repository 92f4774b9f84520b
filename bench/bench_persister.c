/* bench_persister.c — helpers of the svc-persister benchmark
 * (bench/bench_persister.sh runs them):
 *
 *   bench_persister fill  --broker B --topic T -n N [--partitions P]
 *       N payee ADD records (distinct keys, bench_payee_json) on T (P partitions,
 *       3 by default; -n 0 only creates the topic)
 *   bench_persister mongo-insert --uri U --db D --coll C -n N
 *       the same N records as documents, unordered insert_many in batches of
 *       1000 (the MongoDB "physical limit" next to svc-persister); prints
 *       "wall user sys" seconds of this process. */
#include "bench_common.h"

#include "tributary/core_avro.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_PROTO_DIR
#define BENCH_PROTO_DIR "proto"
#endif

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static int fill(const char *broker, const char *topic, uint64_t n, int partitions)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "catalogue: %s\n", err);
        return 2;
    }
    const core_avro_schema_t *payee = core_avro_catalog_by_dataset(cat, "payee");
    core_kafka_prop props[] = { { "bootstrap.servers", broker }, { "linger.ms", "20" },
                                { "compression.codec", "lz4" } };
    core_kafka_producer_opts po = { .defaults = props, .ndefaults = 3 };
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "producer: %s\n", err);
        core_avro_catalog_free(cat);
        return 2;
    }
    rd_kafka_t *rk = core_kafka_producer_handle(p);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    int rc = 0;
    char json[BENCH_PAYEE_JSON_MAX];
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        bench_payee_json(1, i, json, sizeof(json));
        cJSON *j = cJSON_Parse(json);
        avro_value_t v;
        void *buf = NULL;
        size_t len = 0;
        const char *key = NULL;
        if (!j || core_avro_from_json(payee, j, &v, err, sizeof(err)) != CORE_OK) {
            fprintf(stderr, "record %llu: %s\n", (unsigned long long)i, err);
            cJSON_Delete(j);
            rc = 1;
            break;
        }
        if (core_avro_get_key(payee, &v, &key, NULL, err, sizeof(err)) != CORE_OK ||
            core_avro_encode(payee, &v, &buf, &len, err, sizeof(err)) != CORE_OK ||
            core_kafka_produce(p, topic, key, strlen(key), buf, len, NULL, 0, NULL, err,
                               sizeof(err)) != CORE_OK) {
            fprintf(stderr, "record %llu: %s\n", (unsigned long long)i, err);
            rc = 1;
        }
        free(buf);
        avro_value_decref(&v);
        cJSON_Delete(j);
    }
    if (core_kafka_producer_flush(p, 120000) != 0 || core_kafka_producer_failed(p) != 0) {
        fprintf(stderr, "fill: records not delivered\n");
        rc = 1;
    }
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
    return rc;
}

static int mongo_insert(const char *uri, const char *db, const char *coll_name, uint64_t n)
{
    mongoc_init();
    mongoc_client_t *cl = mongoc_client_new(uri);
    mongoc_collection_t *coll = mongoc_client_get_collection(cl, db, coll_name);
    char json[BENCH_PAYEE_JSON_MAX];
    bson_t **docs = calloc(1000, sizeof(*docs));
    bson_error_t err;
    int rc = 0;
    bench_clock t0, t1;
    bench_clock_now(&t0);
    for (uint64_t i = 0; i < n && rc == 0;) {
        size_t k = 0;
        for (; k < 1000 && i < n; k++, i++) {
            bench_payee_json(1, i, json, sizeof(json));
            cJSON *j = cJSON_Parse(json);
            cJSON *meta = cJSON_DetachItemFromObject(j, "meta");
            cJSON *id = cJSON_DetachItemFromObject(j, "payee_id");
            cJSON_AddItemToObject(j, "_id", id);
            cJSON_AddNumberToObject(j, "tb_version", 1);
            char *text = cJSON_PrintUnformatted(j);
            docs[k] = bson_new_from_json((const uint8_t *)text, -1, &err);
            free(text);
            cJSON_Delete(meta);
            cJSON_Delete(j);
            if (!docs[k]) {
                fprintf(stderr, "document: %s\n", err.message);
                rc = 1;
                break;
            }
        }
        bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
        if (rc == 0 && !mongoc_collection_insert_many(coll, (const bson_t **)docs, k, opts, NULL,
                                                      &err)) {
            fprintf(stderr, "insert_many: %s\n", err.message);
            rc = 1;
        }
        bson_destroy(opts);
        for (size_t d = 0; d < k; d++)
            bson_destroy(docs[d]);
    }
    bench_clock_now(&t1);
    printf("%.3f %.3f %.3f\n", t1.wall - t0.wall, t1.user - t0.user, t1.sys - t0.sys);
    free(docs);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(cl);
    mongoc_cleanup();
    return rc;
}

static int mongo_admin(const char *uri, const char *db, bool drop)
{
    mongoc_init();
    mongoc_client_t *cl = mongoc_client_new(uri);
    int rc = 0;
    if (drop) {
        mongoc_database_t *d = mongoc_client_get_database(cl, db);
        mongoc_database_drop(d, NULL);
        mongoc_database_destroy(d);
    } else {
        mongoc_collection_t *c = mongoc_client_get_collection(cl, db, "payee");
        bson_t q = BSON_INITIALIZER;
        bson_error_t err;
        int64_t n = mongoc_collection_count_documents(c, &q, NULL, NULL, NULL, &err);
        printf("%lld\n", (long long)(n < 0 ? 0 : n));
        rc = n < 0;
        mongoc_collection_destroy(c);
    }
    mongoc_client_destroy(cl);
    mongoc_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_persister fill|mongo-insert ...\n");
        return 2;
    }
    uint64_t n = bench_parse_count(arg(argc, argv, "-n", "100000"));
    if (!strcmp(argv[1], "fill")) {
        uint64_t parts = bench_parse_count(arg(argc, argv, "--partitions", "3"));
        if (parts < 1 || parts > 1000) {
            fprintf(stderr, "fill: --partitions: 1 to 1000\n");
            return 2;
        }
        return fill(arg(argc, argv, "--broker", "127.0.0.1:9092"),
                    arg(argc, argv, "--topic", "bench.payee.valid"), n, (int)parts);
    }
    if (!strcmp(argv[1], "mongo-insert"))
        return mongo_insert(arg(argc, argv, "--uri", "mongodb://127.0.0.1:27017"),
                            arg(argc, argv, "--db", "bench"), arg(argc, argv, "--coll", "payee"),
                            n);
    if (!strcmp(argv[1], "mongo-count") || !strcmp(argv[1], "mongo-drop"))
        return mongo_admin(arg(argc, argv, "--uri", "mongodb://127.0.0.1:27017"),
                           arg(argc, argv, "--db", "bench"), !strcmp(argv[1], "mongo-drop"));
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
