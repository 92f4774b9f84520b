/* core_sink.h — the consume-batch-write-commit loop every sink shares.
 *
 * A sink service (svc-cache-feeder, svc-persister) writes the records of
 * <dataset> topics somewhere else. The engine owns everything but the
 * writing: it subscribes, maps each record's topic to its dataset, decodes
 * (optionally), hands each record to the plugin to prepare, batches by
 * size (batch_size) and time (batch_wait_ms), hands batches to the plugin
 * to write (inline, pipelined or on a writer thread), sends refused and
 * undecodable records to the dataset's dead-letter topic, publishes one
 * audit event per record, commits offsets only after the plugin said OK
 * (and after the audit and DLQ records were delivered), pauses and backs
 * off (jitter, circuit breaker) while the plugin answers RETRY, drains on
 * revoke and on shutdown within the grace period that is left
 * (core_lifecycle), and answers readiness. A commit the group refuses
 * during a rebalance keeps its offsets and is retried once the rebalance is
 * over; the offsets of partitions that are revoked are dropped (never
 * committed for their next owner), so only those records are written again. The plugin, in the shape of a
 * Fluent Bit output plugin, only says how one record is prepared and how a
 * batch is written: OK, RETRY or ERROR.
 *
 * Results of a plugin call (core_sink_res_t):
 *   OK     - done. After flush/recv every record was written, except those
 *            whose res the plugin set to CORE_SINK_ERROR (each goes to the
 *            DLQ with its reason) — "written" includes a write the sink
 *            skipped on purpose (a stale version): set rec->outcome.
 *   RETRY  - nothing is known (connection lost, timeout, busy): the engine
 *            pauses consumption, backs off and calls flush() again with the
 *            same records; nothing of the batch (or any later one) is
 *            committed meanwhile. Writes must therefore be idempotent: a
 *            batch may be written more than once (and again by the next
 *            owner after a rebalance).
 *   ERROR  - the sink refused data. Records the plugin marked ERROR go to
 *            the DLQ, the others count as written; when the plugin marked
 *            none, every record of the batch is refused with errstr.
 *            From prepare(): the record is poison (cannot be written ever):
 *            to the DLQ with errstr, never given to flush.
 *   FATAL  - the sink cannot go on (out of memory, a bug): the engine stops
 *            the service (core_lifecycle_request_stop) with exit code
 *            CORE_EX_SOFTWARE; nothing more is committed.
 *
 * Threads and ownership:
 *   - core_sink_run() is called on one thread, "the main thread"; the
 *     consumer, the producer (audit, DLQ) and every commit stay on it.
 *   - init() and exit() run on the main thread, before the first and after
 *     the last other callback.
 *   - prepare() runs on the main thread, record by record, in consumption
 *     order (per partition).
 *   - flush(), send(), recv() and drop() run on the main thread, or — when
 *     opts.writer_thread is set — flush() and drop() run on the engine's
 *     writer thread alone (never two calls at once; the plugin's connection
 *     may live there), while the main thread goes on consuming and
 *     preparing the next batch.
 *   - release() runs on the main thread once a record is accounted for (or
 *     dropped): the record's data, set by prepare(), is the plugin's until
 *     then, and must be freed by release().
 *   - ready() runs on an HTTP thread, at any time between init() and exit()
 *     (never during exit()): it must be thread-safe. It is part of the
 *     engine's /readyz probe (opts.http), named after the plugin: ready()
 *     first (its reason without the plugin's name: "not connected"), then
 *     "writes failing, consumption paused" while RETRYs last, "not running"
 *     before and after the run. The brokers are the service's own "kafka"
 *     probe (core_service), beside it: the engine has no copy of it.
 *   - The core_sink_record structs, their rkm and the pointer arrays given
 *     to flush belong to the engine; the plugin may keep nothing of them
 *     past the call, except between send() and its recv() (the same array,
 *     unchanged).
 *   - Rebalances run inside the consumer's poll on the main thread; the
 *     engine then finishes the batches in flight (one try) and commits
 *     before the partitions go, or drops them when the partitions were
 *     lost. No callback of the plugin runs librdkafka calls.
 *
 * Metrics (opts.metrics, or core_metrics_global()), label sink = plugin name:
 *   tributary_sink_records_total{sink,dataset,outcome}  counter
 *   tributary_sink_dlq_total{sink,dataset}              counter
 *   tributary_sink_batch_records{sink}                  histogram, records per batch written
 *   tributary_sink_flush_seconds{sink}                  histogram, a batch from hand-over to answer
 *   tributary_sink_retries_total{sink}                  counter, batch writes answered RETRY
 *   tributary_sink_paused{sink}                         gauge, 1 while consumption is paused
 *   tributary_sink_commit_failures_total{sink}          counter, commits to be retried
 *   tributary_circuit_state{name="sink_<name>"}         (core_breaker; opts.breaker_name)
 */
#ifndef TRIBUTARY_CORE_SINK_H
#define TRIBUTARY_CORE_SINK_H

#include "tributary/core_avro.h"
#include "tributary/core_config.h"
#include "tributary/core_digest.h"
#include "tributary/core_http.h"
#include "tributary/core_kafka.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum core_sink_res {
    CORE_SINK_OK = 0,
    CORE_SINK_RETRY = 1,
    CORE_SINK_ERROR = 2,
    CORE_SINK_FATAL = 3,
} core_sink_res_t;

const char *core_sink_res_name(core_sink_res_t r);

/* What the engine does with a record's value before prepare(). */
typedef enum core_sink_decode {
    CORE_SINK_DECODE_NONE = 0, /* prepare() gets the bytes (rec->rkm) */
    CORE_SINK_DECODE_AVRO = 1, /* the engine decodes (Confluent wire format,
                                * the service's catalogue) and checks that
                                * the record is of the topic's dataset; an
                                * undecodable record goes to the DLQ */
} core_sink_decode_t;

/* One dataset: where its records come from and where refused ones go. */
typedef struct core_sink_dataset {
    const char *name;      /* borrowed, must outlive the run */
    const char *topic;     /* input topic */
    const char *dlq_topic; /* NULL: refused records are only audited and logged */
} core_sink_dataset;

/* One record in the engine's hands. */
typedef struct core_sink_record {
    /* set by the engine */
    const rd_kafka_message_t *rkm;    /* the Kafka record (payload never NULL or empty) */
    size_t dataset;                   /* index into opts.datasets */
    const core_avro_schema_t *schema; /* DECODE_AVRO: the record's schema */
    avro_value_t *value;              /* DECODE_AVRO: during prepare() only */
    /* set by prepare(): the plugin's data (freed by release()) and the
     * record's identity for its audit event; the strings may point into
     * data. id NULL: the engine names it "topic:partition:offset". */
    void *data;
    const char *id, *key, *batch_id;
    const char *old_key;              /* an UPDATE moving the record away from
                                       * this key (its audit event's old_key);
                                       * NULL otherwise */
    int64_t version;                  /* CORE_AUDIT_NONE when unknown */
    core_digest digest;
    bool has_digest;                  /* false: the digest of the value bytes */
    /* set by flush()/recv(): see the results above. outcome: the audit
     * outcome of a written record (a static string; NULL: the plugin's
     * outcome_ok); reason: why it was refused, or the audit reason of a
     * written one (e.g. "duplicate"). */
    core_sink_res_t res;
    bool poison;                      /* set by the engine: never reached flush */
    const char *outcome;
    char reason[256];
    /* set by prepare() (with ERROR) or flush()/recv() on a refused record:
     * its tb.error.class in the DLQ (a static string, "poison" or
     * "invalid"); NULL: "poison" when it never reached flush, else
     * "invalid". Reset before every flush. */
    const char *error_class;
    const char *field;                /* with ERROR: the field refused (tb.error.field
                                       * of the DLQ record; static or in data), or NULL */
} core_sink_record;

typedef struct core_sink core_sink_t;

typedef struct core_sink_plugin {
    const char *name;            /* "redis", "postgres": metrics' sink label, DLQ class name */
    const core_config_key *keys; /* its configuration table (may be NULL), for the
                                  * service to add (core_config_add_table) */
    core_sink_decode_t decode;
    const char *outcome_ok;      /* audit outcome of a written record ("persisted") */
    const char *outcome_dead;    /* audit outcome of a refused or poison one ("dead") */
    /* Tables, indexes, scripts, connections. conf: opts.plugin_conf.
     * @returns 0 or an exit code (CORE_EX_CONFIG, CORE_EX_UNAVAILABLE...)
     * with errstr (having freed what it made: exit() is not called then);
     * *ctxp is passed to every other callback. */
    int (*init)(core_sink_t *sink, void *conf, void **ctxp, char *errstr, size_t errstr_size);
    /* Prepare one record for a batch: OK (rec->data set), ERROR (poison),
     * FATAL. Required. */
    core_sink_res_t (*prepare)(void *ctx, core_sink_record *rec, char *errstr,
                               size_t errstr_size);
    /* Write a batch of prepared records (n >= 1, in consumption order).
     * Required. */
    core_sink_res_t (*flush)(void *ctx, core_sink_record *const *recs, size_t n, char *errstr,
                             size_t errstr_size);
    /* Optional pipelining (not with writer_thread): send() starts a batch
     * without waiting, recv() later finishes it, in the order sent, up to
     * batch_inflight batches in flight. After RETRY from either, every
     * batch in flight is lost: the engine calls drop(), then flush() for
     * each of them again, oldest first. */
    core_sink_res_t (*send)(void *ctx, core_sink_record *const *recs, size_t n, char *errstr,
                            size_t errstr_size);
    core_sink_res_t (*recv)(void *ctx, core_sink_record *const *recs, size_t n, char *errstr,
                            size_t errstr_size);
    /* Optional: forget every batch sent and not received (e.g. close the
     * connection that holds their replies). */
    void (*drop)(void *ctx);
    /* Optional: free rec->data. */
    void (*release)(void *ctx, core_sink_record *rec);
    /* Optional: is the sink reachable? (reason when not). HTTP thread. */
    bool (*ready)(void *ctx, char *reason, size_t reason_size);
    /* Optional: free ctx. */
    void (*exit)(void *ctx);
    /* Optional: the engine keeps data_size bytes per record for the
     * plugin: before prepare() rec->data points to them, zeroed (release()
     * frees only what they hold). Laid out contiguously per batch in the
     * order given to flush/send/recv: recs[i]->data is
     * (char *)recs[0]->data + i * data_size, so a plugin whose writer takes
     * an array of its own records needs no copy. 0: prepare() sets data. */
    size_t data_size;
    /* Optional: a batch was accounted for (its DLQ records and audit events
     * queued, its offsets pending): every record of it, in consumption
     * order, poison ones included (data NULL), with its final res, outcome
     * and reason; data still set for the others. Main thread, before
     * release(). For the plugin's own metrics and logs. */
    void (*accounted)(void *ctx, const core_sink_record *recs, size_t n);
    /* Optional: main thread, when the engine has taken every record
     * fetched so far and is about to wait for more, and before it hands a
     * filled batch over; never inside a rebalance or while retrying. For
     * work the plugin keeps aside from prepare() (a pipeline of its own to
     * send, a ping while idle); with writer_thread, flush() may run
     * meanwhile on the writer thread. */
    void (*waiting)(void *ctx);
    /* Optional: the names in its dead-letter headers. NULL: the defaults.
     *   dlq_class_name  __connect.errors.class.name   (the plugin's name)
     *   dlq_stage       __connect.errors.stage        (SINK_PREPARE for a
     *                   record that never reached flush, else SINK_WRITE)
     *   dlq_exc_poison  .exception.class.name of tb.error.class poison
     *                   (tributary.sink.PoisonRecord)
     *   dlq_exc_refused .exception.class.name of the others
     *                   (tributary.sink.RecordRefused) */
    const char *dlq_class_name;
    const char *dlq_stage;
    const char *dlq_exc_poison;
    const char *dlq_exc_refused;
} core_sink_plugin;

typedef struct core_sink_opts {
    const core_sink_plugin *plugin;
    void *plugin_conf;                  /* given to init() */
    const core_sink_dataset *datasets;  /* borrowed */
    size_t ndatasets;
    const core_config_t *cfg;           /* kafka.* keys; may be NULL */
    const core_kafka_prop *kafka_overrides; /* after cfg (tests: the mock's bootstrap) */
    size_t nkafka_overrides;
    const char *group_id;               /* unless kafka[.consumer].group.id is set */
    const char *group_instance_id;      /* static membership, unless kafka[.consumer].
                                         * group.instance.id is set; NULL: dynamic */
    const core_avro_catalog_t *catalog; /* for audit events and DECODE_AVRO */
    bool audit;                         /* publish audit events (needs catalog) */
    const char *audit_topic;            /* NULL: CORE_AUDIT_TOPIC */
    const char *stage;                  /* audit stage ("cache-feeder"); NULL: plugin name */
    int64_t batch_size;                 /* records per batch, >= 1 */
    int64_t batch_wait_ms;              /* longest wait for a batch to fill */
    int64_t batch_inflight;             /* batches in flight while the next fills (0..64) */
    int64_t commit_interval_ms;         /* 0: commit after every batch */
    bool writer_thread;                 /* flush() on a thread of its own */
    core_backoff backoff;               /* between RETRYs; {0}: CORE_BACKOFF_DEFAULT */
    int breaker_threshold;              /* 0: 5 */
    int64_t breaker_open_ms;            /* 0: 10000 */
    const char *breaker_name;           /* tributary_circuit_state{name}; NULL: sink_<plugin> */
    core_http_t *http;                  /* /readyz probe named after the plugin; may be NULL */
    core_metrics_t *metrics;            /* NULL: core_metrics_global() */
} core_sink_opts;

/**
 * @brief Run a sink until core_lifecycle_stopping() (or a fatal error):
 * create the clients, init() the plugin, subscribe, loop, drain within the
 * grace period left, commit, leave the group, exit() the plugin.
 * One sink per process at a time (the readiness state is the process's).
 * @returns 0, or the exit code: the plugin's init() code, CORE_EX_CONFIG
 * (bad options or kafka.* keys, errstr says which), CORE_EX_SOFTWARE
 * (FATAL from the plugin, a fatal consumer error, out of memory).
 */
int core_sink_run(const core_sink_opts *opts, char *errstr, size_t errstr_size);

/** The datasets of a running sink (for init()). */
const core_sink_dataset *core_sink_datasets(const core_sink_t *s, size_t *n);

/** The record's topic name. */
const char *core_sink_record_topic(const core_sink_record *rec);

#endif
