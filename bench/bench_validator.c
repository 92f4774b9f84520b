/* bench_validator.c — svc-validator's consume-validate-produce loop with
 * transactions on, against kcat consuming the same topic in the same run.
 *
 *   bench_validator fill  --broker B --topic T -n N       produce N payees to T
 *   bench_validator run   --broker B --prefix P -n N --interval MS [--results F]
 *
 * `run` validates P + "payee.raw" with a fresh consumer group and a fresh
 * transactional id, batch.max 20000 and commit.interval.ms MS, until N
 * records are committed; it prints records per second and CPU-seconds per
 * million records of this process (the validator, librdkafka's threads
 * included). run.sh times kcat reading the same topic and prints the
 * ratios. No external verifier: the payee rules of proto/ (local checks). */
#include "bench_common.h"

#include "../svc-validator/validator.h"
#include "tributary/core_avro.h"
#include "tributary/core_kafka.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static int cmd_fill(const char *broker, const char *topic, uint64_t n)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    const core_avro_schema_t *s;
    core_kafka_prop kp[] = { { "bootstrap.servers", broker }, { "linger.ms", "5" },
                             { "compression.codec", "lz4" } };
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p;
    char js[BENCH_PAYEE_JSON_MAX];

    if (!cat) {
        fprintf(stderr, "bench_validator: %s\n", err);
        return BENCH_EX_SETUP;
    }
    s = core_avro_catalog_by_dataset(cat, "payee");
    o.defaults = kp;
    o.ndefaults = 3;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench_validator: %s\n", err);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    for (uint64_t i = 0; i < n; i++) {
        cJSON *j;
        avro_value_t v;
        void *buf = NULL;
        size_t len = 0;
        const char *key;
        size_t klen;

        bench_payee_json(42, i, js, sizeof(js));
        j = cJSON_Parse(js);
        if (!j || core_avro_from_json(s, j, &v, err, sizeof(err)) != CORE_OK) {
            fprintf(stderr, "bench_validator: record %llu: %s\n", (unsigned long long)i, err);
            return BENCH_EX_BROKEN;
        }
        core_avro_get_key(s, &v, &key, &klen, NULL, 0);
        if (core_avro_encode(s, &v, &buf, &len, err, sizeof(err)) != CORE_OK ||
            core_kafka_produce(p, topic, key, klen, buf, len, NULL, 0, NULL, err,
                               sizeof(err)) != CORE_OK) {
            fprintf(stderr, "bench_validator: %s\n", err);
            return BENCH_EX_BROKEN;
        }
        free(buf);
        avro_value_decref(&v);
        cJSON_Delete(j);
        if (i % 4096 == 0)
            core_kafka_producer_poll(p, 0);
    }
    if (core_kafka_producer_flush(p, 120000) != 0 || core_kafka_producer_failed(p) != 0) {
        fprintf(stderr, "bench_validator: records not delivered\n");
        return BENCH_EX_BROKEN;
    }
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
    return BENCH_EX_OK;
}

static int cmd_run(const char *broker, const char *prefix, uint64_t n, int interval,
                   const char *results)
{
    char err[512], group[128], txid[128], label[64], b1[32];
    core_avro_catalog_t *cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    const core_kafka_prop kd[] = { { "bootstrap.servers", broker } };
    const char *ds[] = { "payee" };
    validator_params p = { 0 };
    validator_t *v;
    bench_clock t0, t1;
    bench_result r = { 0 };
    uint64_t done = 0, idle_since = 0;
    char audit[256];

    if (!cat) {
        fprintf(stderr, "bench_validator: %s\n", err);
        return BENCH_EX_SETUP;
    }
    snprintf(group, sizeof(group), "bench-validator-%d-%d", (int)getpid(), interval);
    snprintf(txid, sizeof(txid), "bench-validator-%d-%d", (int)getpid(), interval);
    snprintf(audit, sizeof(audit), "%saudit.events", prefix);
    p.kafka_defaults = kd;
    p.nkafka_defaults = 1;
    p.cat = cat;
    p.datasets = ds;
    p.ndatasets = 1;
    p.topic_prefix = prefix;
    p.audit_topic = audit;
    p.group_id = group;
    p.transactional_id = txid;
    p.batch_max = 20000; /* mostly the interval closes a batch */
    p.commit_interval_ms = interval;
    p.retry = (core_backoff){ 1000, 60000, 2.0, 0.5, 5 };
    p.clock_skew_ms = 300000;
    v = validator_new(&p, err, sizeof(err));
    if (!v) {
        fprintf(stderr, "bench_validator: %s\n", err);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    /* Time from the first record: group join is not the loop's cost. */
    while (done == 0) {
        bench_clock_now(&t0);
        if (validator_step(v, err, sizeof(err)) != 0)
            break;
        for (int o = 0; o < VO_COUNT; o++)
            done += validator_get_stats(v)->committed[o];
    }
    while (done < n) {
        uint64_t before = done;

        if (validator_step(v, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench_validator: %s\n", err);
            break;
        }
        done = 0;
        for (int o = 0; o < VO_COUNT; o++)
            done += validator_get_stats(v)->committed[o];
        if (done == before) {
            if (!idle_since)
                idle_since = (uint64_t)core_mono_ms();
            else if ((uint64_t)core_mono_ms() - idle_since > 30000)
                break;
        } else {
            idle_since = 0;
        }
    }
    bench_clock_now(&t1);
    snprintf(label, sizeof(label), "txn-%dms", interval);
    r.section = "validator";
    r.name = label;
    r.n = done;
    bench_result_times(&r, &t0, &t1);
    r.limit = "";
    bench_results_append(results, &r);
    printf("  validator commit.interval.ms=%-5d %8s rec/s  %6.3f CPU-s/Mrec  %llu transactions "
           "(%llu aborts)  wall %.2f s\n",
           interval, bench_fmt_rate(done / r.wall_s, b1, sizeof(b1)), r.cpu_s * 1e6 / done,
           (unsigned long long)validator_get_stats(v)->transactions,
           (unsigned long long)validator_get_stats(v)->aborts, r.wall_s);
    core_kafka_consumer_close(validator_consumer(v), NULL, 0);
    validator_free(v);
    core_avro_catalog_free(cat);
    if (done != n) {
        fprintf(stderr, "BROKEN: %llu of %llu records committed\n", (unsigned long long)done,
                (unsigned long long)n);
        return BENCH_EX_BROKEN;
    }
    return BENCH_EX_OK;
}

int main(int argc, char **argv)
{
    const char *broker = arg(argc, argv, "--broker", "127.0.0.1:9092");
    uint64_t n = bench_parse_count(arg(argc, argv, "-n", "200000"));

    core_log_init("bench_validator", CORE_LOG_ERROR);
    if (argc >= 2 && strcmp(argv[1], "fill") == 0)
        return cmd_fill(broker, arg(argc, argv, "--topic", "bench.payee.raw"), n);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return cmd_run(broker, arg(argc, argv, "--prefix", "bench."), n,
                       atoi(arg(argc, argv, "--interval", "100")),
                       arg(argc, argv, "--results", NULL));
    fprintf(stderr, "usage: bench_validator fill|run --broker B ... (see the file comment)\n");
    return BENCH_EX_SETUP;
}
