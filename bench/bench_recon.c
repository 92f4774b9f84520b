/* bench_recon.c — fills an audit topic for bench_recon.sh: N records of
 * one batch, each with its four audit events (ingest published, validator
 * valid, cache-feeder cached, persister persisted), written by core_audit
 * as the stages write them. Prints the number of audit events.
 *
 *   bench_recon --broker B --topic T --batch ID -n RECORDS */
#include "bench_common.h"

#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *broker = "127.0.0.1:9092", *topic = NULL, *batch = "bench";
    static const char *const stages[4] = { "ingest", "validator", "cache-feeder", "persister" };
    static const char *const outcomes[4] = { "published", "valid", "cached", "persisted" };
    long n = 250000;
    char err[512];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--broker"))
            broker = argv[i + 1];
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batch = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            n = atol(argv[i + 1]);
    }
    if (!topic || n <= 0) {
        fprintf(stderr, "usage: bench_recon --broker B --topic T --batch ID -n RECORDS\n");
        return BENCH_EX_SETUP;
    }
    core_avro_catalog_t *cat = core_avro_catalog_load(BENCH_PROTO_DIR, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "bench_recon: %s\n", err);
        return BENCH_EX_SETUP;
    }
    core_kafka_prop props[] = { { "bootstrap.servers", broker }, { "linger.ms", "20" },
                                { "batch.num.messages", "10000" },
                                { "queue.buffering.max.messages", "1000000" } };
    core_kafka_producer_opts po = { 0 };
    po.defaults = props;
    po.ndefaults = 4;
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    core_audit_t *a[4] = { NULL };
    if (!p) {
        fprintf(stderr, "bench_recon: %s\n", err);
        return BENCH_EX_SETUP;
    }
    for (int s = 0; s < 4; s++)
        if (!(a[s] = core_audit_new(p, cat, topic, stages[s], err, sizeof(err)))) {
            fprintf(stderr, "bench_recon: %s\n", err);
            return BENCH_EX_SETUP;
        }
    int64_t now = core_now_ms();
    for (long i = 0; i < n; i++) {
        char id[96], key[32], text[64];
        core_digest d;
        core_audit_event ev = CORE_AUDIT_EVENT_INIT;
        snprintf(id, sizeof(id), "%s-%09ld", batch, i);
        snprintf(key, sizeof(key), "K%09ld", i);
        snprintf(text, sizeof(text), "record %ld", i);
        core_digest_sha256(text, strlen(text), &d);
        ev.id = id;
        ev.key = key;
        ev.dataset = "payee";
        ev.batch_id = batch;
        ev.digest = &d;
        ev.version = 1;
        ev.ts = now;
        for (int s = 0; s < 4; s++) {
            ev.outcome = outcomes[s];
            ev.topic = s < 2 ? "payee.raw" : "payee.valid";
            ev.partition = s ? 0 : CORE_AUDIT_NONE;
            ev.offset = s ? i : CORE_AUDIT_NONE;
            ev.line = s ? CORE_AUDIT_NONE : i + 2;
            if (core_audit_emit(a[s], &ev, err, sizeof(err)) != CORE_OK) {
                fprintf(stderr, "bench_recon: %s\n", err);
                return BENCH_EX_BROKEN;
            }
        }
    }
    if (core_kafka_producer_flush(p, 120000) != 0 || core_kafka_producer_failed(p) != 0) {
        fprintf(stderr, "bench_recon: audit events not delivered\n");
        return BENCH_EX_BROKEN;
    }
    printf("%ld\n", n * 4);
    for (int s = 0; s < 4; s++)
        core_audit_free(a[s]);
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
    return BENCH_EX_OK;
}
