/* bench_cache_feeder.c — svc-cache-feeder's Redis path (feeder.c): decode a
 * Kafka value, build the version-guarded EVALSHA and run it in pipelined
 * batches, against a real Redis. Three stages over the same N records:
 *
 *   prepare  decode + JSON + command building only (no Redis)
 *   write    prepare + pipelined EVALSHA (every record written)
 *   replay   the same records again (every one a stale skip)
 *
 * Prints ops/s and CPU-seconds per million records of this process (the
 * Redis server's CPU is not counted; redis-benchmark's neither), and the
 * average document size, so run.sh can run redis-benchmark SET with the same
 * pipeline depth and value size right after and print the ratio.
 *
 *   bench_cache_feeder [--n N] [--depth D] [--inflight K] [--host H] [--port P] [--results FILE]
 *   (--inflight: batches left in flight in Redis while the next is prepared,
 *   as svc-cache-feeder's batch.inflight; default 2, 0 = wait for each)
 *   bench_cache_feeder fill --broker B --topic T [--n N]   (the same records to Kafka,
 *                                                        for run.sh's end-to-end stage)
 *
 * Exit 1 when a record is refused or a count does not match. */
#include "bench_common.h"

#include "../svc-cache-feeder/feeder.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BENCH_PROTO_DIR
#define BENCH_PROTO_DIR "proto"
#endif

typedef struct wire {
    void *buf;
    size_t len;
} wire;

/* Receive the oldest batch in flight (slot head) and check its results. */
static int take_oldest(feeder_t *f, feeder_record *recs, size_t *cnt, int depth, int *head,
                       int *nfly, int slots, feeder_result_t want, uint64_t *bad)
{
    feeder_record *b = &recs[(size_t)*head * (size_t)depth];
    char err[512];
    int rc = BENCH_EX_OK;

    if (feeder_recv(f, b, cnt[*head], err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "bench: batch failed: %s\n", err);
        rc = BENCH_EX_BROKEN;
    }
    for (size_t j = 0; j < cnt[*head]; j++) {
        *bad += b[j].result != want;
        feeder_record_clear(&b[j]);
    }
    *head = (*head + 1) % slots;
    (*nfly)--;
    return rc;
}

/* Prepare n records in batches of depth; with send, run them in Redis with
 * up to inflight batches left in flight while the next is prepared
 * (feeder_send / feeder_recv, as the service does; 0: wait for each). */
static int run_stage(feeder_t *f, feeder_dataset *ds, const core_avro_catalog_t *cat, wire *w,
                     uint64_t n, int depth, int inflight, bool send, feeder_result_t want,
                     const char *name, const char *results, size_t *docbytes)
{
    int slots = send ? inflight + 2 : 1, head = 0, nfly = 0;
    feeder_record *recs = calloc((size_t)slots * (size_t)depth, sizeof(*recs));
    size_t *cnt = calloc((size_t)slots, sizeof(*cnt));
    bench_clock t0, t1;
    bench_result r = { 0 };
    char err[512], rate[32], dur[32];
    uint64_t bad = 0;
    int rc = BENCH_EX_OK;

    if (!recs || !cnt) {
        free(recs);
        free(cnt);
        return BENCH_EX_SETUP;
    }
    bench_clock_now(&t0);
    for (uint64_t i = 0; i < n && rc == BENCH_EX_OK; i += (uint64_t)depth) {
        int k = (int)(n - i < (uint64_t)depth ? n - i : (uint64_t)depth);
        int slot = (head + nfly) % slots;
        feeder_record *b = &recs[(size_t)slot * (size_t)depth];

        for (int j = 0; j < k; j++) {
            if (feeder_prepare(f, ds, cat, w[i + (uint64_t)j].buf, w[i + (uint64_t)j].len, &b[j],
                               err, sizeof(err)) != CORE_OK) {
                fprintf(stderr, "bench: record %" PRIu64 " refused: %s\n", i + (uint64_t)j, err);
                rc = BENCH_EX_BROKEN;
                k = j;
                break;
            }
            if (docbytes)
                *docbytes += b[j].value_len;
        }
        cnt[slot] = (size_t)k;
        if (send && rc == BENCH_EX_OK && k > 0) {
            if (feeder_send(f, b, (size_t)k, err, sizeof(err)) != CORE_OK) {
                fprintf(stderr, "bench: batch failed: %s\n", err);
                rc = BENCH_EX_BROKEN;
            }
            nfly++;
            while (rc == BENCH_EX_OK && nfly > inflight)
                rc = take_oldest(f, recs, cnt, depth, &head, &nfly, slots, want, &bad);
        } else {
            for (int j = 0; j < k; j++)
                feeder_record_clear(&b[j]);
        }
    }
    while (rc == BENCH_EX_OK && nfly > 0)
        rc = take_oldest(f, recs, cnt, depth, &head, &nfly, slots, want, &bad);
    bench_clock_now(&t1);
    for (int s = 0; s < slots; s++) /* after a failure: what is left */
        for (size_t j = 0; j < cnt[s]; j++)
            feeder_record_clear(&recs[(size_t)s * (size_t)depth + j]);
    free(recs);
    free(cnt);
    if (bad) {
        fprintf(stderr, "bench: %s: %" PRIu64 " records with an unexpected result\n", name, bad);
        rc = BENCH_EX_BROKEN;
    }
    r.section = "cache_feeder";
    r.name = name;
    r.n = n;
    r.limit = "";
    bench_result_times(&r, &t0, &t1);
    bench_results_append(results, &r);
    printf("  cache_feeder %-8s %10s ops/s  %7.3f CPU-s/Mrec  (%s per record, depth %d, %d in flight)\n",
           name, bench_fmt_rate((double)n / r.wall_s, rate, sizeof(rate)), r.cpu_s * 1e6 / (double)n,
           bench_fmt_dur(r.wall_s / (double)n, dur, sizeof(dur)), depth, send ? inflight : 0);
    printf("RESULT\t%s\t%.1f\t%.4f\n", name, (double)n / r.wall_s, r.cpu_s * 1e6 / (double)n);
    return rc;
}

static void delete_prefix(core_redis_t *r, const char *prefix)
{
    char err[256], cursor[32] = "0", pat[128];

    snprintf(pat, sizeof(pat), "%s[:#]*", prefix);
    do {
        redisReply *rep = core_redis_command(r, err, sizeof(err), "SCAN %s MATCH %s COUNT 5000",
                                             cursor, pat);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++)
            core_redis_append_argv(r, 2, (const char *[]){ "UNLINK", rep->element[1]->element[i]->str },
                                   NULL);
        core_redis_pipeline_exec(r, NULL, NULL, err, sizeof(err));
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
}

/* Record i as wire bytes (malloc'd). */
static int build_record(const core_avro_schema_t *schema, uint64_t i, wire *w, char *err, size_t errsize)
{
    char json[1024];
    cJSON *j;
    avro_value_t v;
    int rc;

    snprintf(json, sizeof(json),
             "{\"meta\":{\"id\":\"bench-%" PRIu64 "\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"bench\","
             "\"batch_id\":\"bench-1\",\"seq\":%" PRIu64 ",\"event_time\":1700000000000,\"version\":1,"
             "\"old_key\":null},\"setting_key\":\"client%08" PRIu64 ":card.contactless\","
             "\"client_id\":\"client%08" PRIu64 "\",\"account_id\":\"ACC%012" PRIu64 "\","
             "\"setting_name\":\"card.contactless\",\"setting_value\":\"%s\",\"value_type\":\"BOOLEAN\","
             "\"card_last4\":\"%04" PRIu64 "\",\"updated_at\":1700000000000}",
             i, i, i, i, i, i % 2 ? "true" : "false", i % 10000);
    j = cJSON_Parse(json);
    if (!j)
        return -1;
    rc = core_avro_from_json(schema, j, &v, err, errsize);
    cJSON_Delete(j);
    if (rc != CORE_OK)
        return -1;
    rc = core_avro_encode(schema, &v, &w->buf, &w->len, err, errsize);
    avro_value_decref(&v);
    return rc == CORE_OK ? 0 : -1;
}

static int fill(int argc, char **argv)
{
    const char *broker = "127.0.0.1:9092", *topic = NULL;
    uint64_t n = 200000;
    char err[512] = "";
    core_avro_catalog_t *cat;
    core_kafka_producer_t *p;
    core_kafka_producer_opts o = { 0 };
    core_kafka_prop defaults[] = { { "linger.ms", "5" }, { "compression.codec", "lz4" } };
    core_kafka_prop over[] = { { "bootstrap.servers", broker } };

    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--broker"))
            over[0].value = broker = argv[i + 1];
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = bench_parse_count(argv[i + 1]);
    }
    if (!topic || n == 0) {
        fprintf(stderr, "usage: bench_cache_feeder fill --broker B --topic T [--n N]\n");
        return BENCH_EX_SETUP;
    }
    cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "bench: %s\n", err);
        return BENCH_EX_SETUP;
    }
    o.defaults = defaults;
    o.ndefaults = 2;
    o.overrides = over;
    o.noverrides = 1;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench: %s\n", err);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    for (uint64_t i = 0; i < n; i++) {
        wire w = { 0 };
        char key[64];
        if (build_record(core_avro_catalog_by_dataset(cat, "account_setting"), i, &w, err, sizeof(err))) {
            fprintf(stderr, "bench: record %" PRIu64 ": %s\n", i, err);
            return BENCH_EX_SETUP;
        }
        snprintf(key, sizeof(key), "client%08" PRIu64 ":card.contactless", i);
        if (core_kafka_produce(p, topic, key, strlen(key), w.buf, w.len, NULL, 0, NULL, err,
                               sizeof(err)) != CORE_OK) {
            fprintf(stderr, "bench: produce: %s\n", err);
            free(w.buf);
            return BENCH_EX_SETUP;
        }
        free(w.buf);
    }
    if (core_kafka_producer_flush(p, 120000) != 0 || core_kafka_producer_failed(p) != 0) {
        fprintf(stderr, "bench: not every record was delivered\n");
        return BENCH_EX_BROKEN;
    }
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
    printf("  cache_feeder: %" PRIu64 " records on %s\n", n, topic);
    return BENCH_EX_OK;
}

int main(int argc, char **argv)
{
    uint64_t n = 200000;
    int depth = 100, port = 6379, inflight = 2;
    const char *host = "127.0.0.1", *results = NULL;
    char err[512], prefix[64];
    core_avro_catalog_t *cat;
    core_redis_t *r;
    feeder_t *f;
    feeder_dataset ds;
    wire *w;
    size_t docbytes = 0;
    int rc = BENCH_EX_OK;
    core_redis_opts o = { 0 };

    if (argc > 1 && !strcmp(argv[1], "fill"))
        return fill(argc, argv);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n"))
            n = bench_parse_count(argv[i + 1]);
        else if (!strcmp(argv[i], "--depth"))
            depth = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--inflight"))
            inflight = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--results"))
            results = argv[i + 1];
    }
    if (n == 0 || depth < 1 || inflight < 0 || inflight > 64) {
        fprintf(stderr, "usage: bench_cache_feeder [--n N] [--depth D] [--inflight K] [--host H] [--port P] [--results FILE]\n");
        return BENCH_EX_SETUP;
    }
    cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "bench: %s\n", err);
        return BENCH_EX_SETUP;
    }
    o.host = host;
    o.port = port;
    r = core_redis_new(&o, err, sizeof(err));
    if (!r || core_redis_connect(r, err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "bench: redis %s:%d: %s\n", host, port, err);
        core_redis_free(r);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    f = feeder_new(r, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "bench-cf-%d", (int)getpid());
    if (!f || feeder_dataset_init(&ds, "account_setting", core_avro_catalog_by_dataset(cat, "account_setting"),
                                  prefix, "{dataset}.valid", err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "bench: %s\n", err);
        return BENCH_EX_SETUP;
    }
    /* N account_setting records, distinct keys, encoded once up front */
    w = calloc(n, sizeof(*w));
    for (uint64_t i = 0; w && i < n; i++)
        if (build_record(ds.schema, i, &w[i], err, sizeof(err))) {
            fprintf(stderr, "bench: building record %" PRIu64 ": %s\n", i, err);
            return BENCH_EX_SETUP;
        }
    printf("  cache_feeder: %" PRIu64 " account_setting records, pipeline depth %d, redis %s:%d\n", n,
           depth, host, port);
    rc |= run_stage(f, &ds, cat, w, n, depth, 0, false, FEEDER_RES_PENDING, "prepare", results, &docbytes);
    printf("VALUE_SIZE\t%zu\n", docbytes / n);
    rc |= run_stage(f, &ds, cat, w, n, depth, inflight, true, FEEDER_RES_CACHED, "write", results, NULL);
    rc |= run_stage(f, &ds, cat, w, n, depth, inflight, true, FEEDER_RES_STALE, "replay", results, NULL);
    delete_prefix(r, prefix);
    for (uint64_t i = 0; i < n; i++)
        free(w[i].buf);
    free(w);
    feeder_dataset_clear(&ds);
    feeder_free(f);
    core_redis_free(r);
    core_avro_catalog_free(cat);
    return rc;
}
