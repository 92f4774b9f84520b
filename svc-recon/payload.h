/* payload.h — method full (method.h): the records of a dataset as they were
 * published on its .raw topic, kept in recon's own state, for replay after
 * .raw's retention has dropped them.
 *
 * Where the payload comes from: the daemon runs a second consumer (group
 * "<group.id>-payloads") on the .raw topic of every `full` dataset
 * ({topic.prefix}{dataset}.raw) and keeps each record that carries tb.id
 * and tb.batch headers: its key, value and every header, byte for byte,
 * with its topic, partition, offset and time. Chosen over carrying the
 * payload in the ingest audit event: audit.events stays small for every
 * dataset (its consumers, the bisection and the benches do not pay for
 * `full`), libcore's AuditEvent and svc-ingest stay as they are, and the
 * bytes kept are exactly those a replay must publish again. The cost: a
 * second read of .raw for `full` datasets only. Rows are written in one
 * transaction per poll batch (INSERT ... ON CONFLICT DO NOTHING: a
 * redelivery keeps the first copy), then the Kafka offsets are committed;
 * a crash between the two re-reads and keeps nothing twice.
 *
 * Retention: per dataset (table retention, set by PUT /retention), else
 * retention.days (default 7), counted from when recon kept the row
 * (kept_ms); the daemon purges every retention.purge.interval.ms.
 *
 * Tables (state.c, migration 6):
 *   payloads   (batch_id, dataset, id) -> topic, partition, offset, key,
 *              value, headers (recon_headers_encode), ts_ms, kept_ms
 *   retention  dataset -> days, updated_ms */
#ifndef SVC_RECON_PAYLOAD_H
#define SVC_RECON_PAYLOAD_H

#include "state.h"

#include "tributary/core_config.h"
#include "tributary/core_kafka.h"
#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

typedef struct recon_payload_opts {
    recon_pg_opts pg;                     /* copied strings must outlive the keeper */
    const core_config_t *cfg;             /* kafka.* */
    const char *group_id;                 /* "<group.id>-payloads" */
    char **topics;                        /* the .raw topics, one per dataset */
    char **datasets;
    size_t n;
} recon_payload_opts;

typedef struct recon_payload_keeper recon_payload_keeper;

/* Make the keeper's consumer (subscribed) and start its thread. NULL with
 * err on failure, naming the payload consumer (o->n == 0: NULL, err
 * empty): the daemon then exits 69. */
recon_payload_keeper *recon_payload_start(const recon_payload_opts *o, char *err, size_t errsize);
/* `report` standalone: read the .raw topics of o to their end (the same
 * group, so the daemon's keeper and the report share the offsets) and keep
 * their records, as the daemon's keeper does, within timeout_ms.
 * @returns 0, or an exit code (78 no consumer, 69 Kafka or PostgreSQL
 * unavailable, the end not reached in time) with err. */
int recon_payload_catch_up(const recon_payload_opts *o, int timeout_ms, char *err,
                           size_t errsize);
/* Stop (after the service was told to stop), join, free. NULL: nothing. */
void recon_payload_stop(recon_payload_keeper *k);

/* The last value of a message's header name (len bytes), or NULL. */
const char *recon_msg_header(const rd_kafka_message_t *m, const char *name, size_t *len);

/* Headers as bytes: per header a 2-byte big-endian name length, the name,
 * a 4-byte big-endian value length (0xffffffff: null), the value. */
void recon_headers_encode(const rd_kafka_headers_t *h, core_strbuf *out);
/* The headers back (rd_kafka_headers_destroy), or NULL when malformed. */
rd_kafka_headers_t *recon_headers_decode(const void *p, size_t n);

/* Delete the payloads older than their dataset's retention (the retention
 * table's days, else default_days). @returns CORE_OK with *deleted. */
core_err_t recon_payload_purge(PGconn *c, const char *schema, int64_t default_days, int64_t now_ms,
                               int64_t *deleted, char *errstr, size_t errstr_size);

/* GET /retention's answer: {"default_days", "datasets": [{dataset, days,
 * updated_ms}], "payloads": [{dataset, records, oldest_kept_ms}]}. */
core_err_t recon_retention_json(PGconn *c, const char *schema, int64_t default_days, cJSON **out,
                                char *errstr, size_t errstr_size);
/* PUT /retention: set a dataset's days (1..36500). */
core_err_t recon_retention_set(PGconn *c, const char *schema, const char *dataset, int64_t days,
                               int64_t now_ms, char *errstr, size_t errstr_size);

#endif
