/* ingest_int.h — what ingest.c (the run), kafka.c (its Kafka plumbing) and
 * status.c (its status and context) share. Private to svc-ingest. */
#ifndef SVC_INGEST_INGEST_INT_H
#define SVC_INGEST_INGEST_INT_H

#include "ingest.h"

#include "tributary/core_kafka.h"
#include "tributary/core_metrics.h"

#include <stdbool.h>
#include <stdint.h>

/* transaction.timeout.ms of the run's producer and of the checkpoint reads. */
#define TXN_TIMEOUT_MS 60000

struct ingest_ctx {
    core_service_t *svc;
    const ingest_conf *conf;
    const core_avro_catalog_t *cat;
    core_metric_family_t *f_read, *f_pub, *f_rej, *f_bytes, *f_depth, *f_commit, *f_files;
};

/* The state a committed checkpoint describes. */
struct ckpt {
    bool found;
    bool done;
    char file_id[65];
    uint64_t offset, line;
    uint64_t rows_read, published, rejected, errors_bytes, bytes;
};

/* Is the broker answering? @returns true, or false with errstr. */
bool ingest_kafka_reachable(core_kafka_producer_t *p, int timeout_ms, char *errstr,
                            size_t errstr_size);
/* Create the compacted checkpoint topic when missing. @returns 0 or -1 + errstr. */
int ingest_kafka_checkpoint_topic(core_kafka_producer_t *p, const char *topic, int timeout_ms,
                                  char *errstr, size_t errstr_size);
/* Read the last committed checkpoint of batch_id (read_committed, to the
 * high watermark of every partition). @returns 0 or -1 + errstr. */
int ingest_kafka_load_checkpoint(ingest_ctx *ctx, const char *topic, const char *batch_id,
                                 struct ckpt *ck, int timeout_ms, char *errstr,
                                 size_t errstr_size);

/* status.c: the status lock, when the run has one (serve mode). */
void ingest_status_lock(ingest_status *st);
void ingest_status_unlock(ingest_status *st);

#endif
