/* core_kafka.h — Kafka clients for the services, over librdkafka (>= 2.0.2).
 *
 * What this module adds to librdkafka:
 *   - configuration from core_config: every kafka.* key goes straight to
 *     rd_kafka_conf_set(); errors name the key as the user wrote it;
 *   - an idempotent producer (acks=all) with delivery counting, a
 *     per-message delivery callback, QUEUE_FULL back-pressure and fatal
 *     error detection;
 *   - a consumer-group consumer with manual offsets (no auto commit, no
 *     auto offset store), EAGER and COOPERATIVE rebalancing, assign/revoke
 *     hooks, pause/resume, commit and rewind helpers;
 *   - consume-transform-produce transactions whose every call answers
 *     OK / RETRY / ABORT / FATAL;
 *   - librdkafka statistics turned into metrics (consumer lag, producer
 *     queue, broker round-trip time); librdkafka's logs and errors turned
 *     into core_log JSON lines and counters.
 *
 * Threads: every callback a client runs (delivery reports, statistics,
 * errors, rebalances) is served from the thread that calls the client's
 * poll, flush, produce (on QUEUE_FULL) or transaction functions; the
 * librdkafka log callback alone may run on librdkafka's internal threads
 * (it only calls core_log, which is thread-safe). A consumer is meant to be
 * driven by one thread. Counters (outstanding, delivered, failed, assigned)
 * may be read from any thread.
 *
 * Metrics (core_metrics_global() unless a registry is passed in):
 *   tributary_kafka_produced_total{topic}            counter, delivered records
 *   tributary_kafka_produce_errors_total{topic,error} counter, failed produce or delivery
 *   tributary_kafka_produce_latency_seconds          histogram, produce() → delivery report
 *   tributary_kafka_client_errors_total{error}       counter, librdkafka error events
 *   tributary_kafka_commit_errors_total{error}       counter, failed offset commits
 *   tributary_kafka_rebalances_total{event}          counter, assign | revoke | lost
 *   tributary_kafka_txn_commit_seconds               histogram, commit_transaction()
 *   tributary_kafka_txn_aborts_total                 counter
 *   tributary_kafka_consumer_lag{topic,partition}    gauge, from statistics
 *   tributary_kafka_producer_queue_messages          gauge, from statistics (msg_cnt)
 *   tributary_kafka_broker_rtt_seconds{broker}       gauge, from statistics (rtt.avg)
 */
#ifndef TRIBUTARY_CORE_KAFKA_H
#define TRIBUTARY_CORE_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "tributary/core_common.h"
#include "tributary/core_config.h"
#include "tributary/core_metrics.h"

/** Default statistics.interval.ms (overridable with kafka.statistics.interval.ms). */
/* The broker every client talks to unless kafka.bootstrap.servers says
 * otherwise (the local stack's). */
#define CORE_KAFKA_DEFAULT_BOOTSTRAP "127.0.0.1:9092"
#define CORE_KAFKA_STATS_INTERVAL_MS "5000"
/** Default time core_kafka_produce() keeps retrying a full queue. */
#define CORE_KAFKA_ENQUEUE_TIMEOUT_MS 30000

/** A librdkafka property as name/value text (both borrowed). */
typedef struct core_kafka_prop {
    const char *name;  /* librdkafka name, without "kafka." */
    const char *value;
} core_kafka_prop;

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/**
 * @brief Build a librdkafka configuration.
 *
 * Applied in this order (later wins): bootstrap.servers =
 * CORE_KAFKA_DEFAULT_BOOTSTRAP, \p defaults, then every kafka.*
 * property of \p cfg (may be NULL) in the order the config holds them, then
 * \p enforced. When an enforced value replaces one the user set, a warning
 * is logged naming the key (values are never logged otherwise, and
 * rd_kafka_conf_dump() is never logged: it holds secrets).
 *
 * @returns a conf the caller owns (rd_kafka_conf_destroy(), or hand it to
 *          rd_kafka_new()), or NULL with errstr naming the key as written:
 *          `kafka.linger.ms: Invalid value "abc" for configuration property
 *          "linger.ms"`. Defaults and enforced properties are named by their
 *          librdkafka name with "(built-in)" appended.
 */
rd_kafka_conf_t *core_kafka_conf_new(const core_config_t *cfg,
                                     const core_kafka_prop *defaults, size_t ndefaults,
                                     const core_kafka_prop *enforced, size_t nenforced,
                                     char *errstr, size_t errstr_size);

/**
 * @brief The value a consumer built from \p cfg gets for librdkafka property
 * \p name ("group.id"): kafka.consumer.NAME, else kafka.NAME; NULL when
 * the user set neither.
 */
const char *core_kafka_consumer_config(const core_config_t *cfg, const char *name);

/** @brief The same for a producer: kafka.producer.NAME, else kafka.NAME. */
const char *core_kafka_producer_config(const core_config_t *cfg, const char *name);

/**
 * @brief Check every kafka.* key of \p cfg (names and values) without
 * creating a client: for start-up checks, before anything is touched
 * (services exit CORE_EX_CONFIG on failure). Only what rd_kafka_conf_set()
 * can judge is checked; combinations are judged by rd_kafka_new().
 *
 * @returns CORE_OK, or CORE_ERR_INVALID with errstr as for
 *          core_kafka_conf_new().
 */
core_err_t core_kafka_conf_check(const core_config_t *cfg, char *errstr, size_t errstr_size);

/**
 * @brief Map a librdkafka error code to the core class a caller acts on:
 * CORE_OK, CORE_ERR_TRANSIENT (timeouts, transport, broker-side retriable),
 * CORE_ERR_TOOBIG (message too large), CORE_ERR_FATAL (__FATAL, fenced),
 * CORE_ERR_STATE (wrong state, rebalance in progress, unknown member),
 * CORE_ERR_INVALID (anything else: retrying will not help).
 */
core_err_t core_kafka_err_class(rd_kafka_resp_err_t err);

/**
 * @brief Whether \p err is what a broker answers for a topic created a
 * moment ago: not known to it yet (UNKNOWN_TOPIC_OR_PART), or a partition
 * without a leader yet (LEADER_NOT_AVAILABLE, NOT_LEADER_FOR_PARTITION).
 * CreateTopics answers once the controller has the topic; the other
 * brokers learn of it shortly after.
 */
bool core_kafka_err_topic_settling(rd_kafka_resp_err_t err);

/**
 * @brief Metadata of one topic once it can be used: known to the broker
 * asked, every partition with a leader. Settling answers (above) are asked
 * again every 200 ms until \p timeout_ms, or until the service stops; any
 * other error is returned at once.
 * @returns CORE_OK and *mdp (the caller rd_kafka_metadata_destroy()s it), or
 *          CORE_ERR_TRANSIENT / CORE_ERR_INVALID with errstr
 *          "topic NAME: <the broker's last answer>".
 */
core_err_t core_kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                     const struct rd_kafka_metadata **mdp, char *errstr,
                                     size_t errstr_size);

/* ------------------------------------------------------------------------ */
/* Producer                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct core_kafka_producer core_kafka_producer_t;

/**
 * @brief Called once per produced message from the thread serving delivery
 * reports, after the counters and metrics are updated.
 * @param msg_opaque the opaque given to core_kafka_produce().
 * @param rkm the delivery report: rkm->err is 0 on success, else why it
 *        failed; topic, partition, offset. Valid only during the call.
 */
typedef void core_kafka_dr_cb(void *msg_opaque, const rd_kafka_message_t *rkm, void *user);

typedef struct core_kafka_producer_opts {
    const core_config_t *cfg;          /* kafka.* properties; may be NULL */
    const core_kafka_prop *defaults;   /* applied before cfg's properties */
    size_t ndefaults;
    const core_kafka_prop *overrides;  /* applied after cfg's properties */
    size_t noverrides;
    /* Transactional producer when set (copied). message.timeout.ms is made
     * lower than transaction.timeout.ms (an explicit kafka.message.timeout.ms
     * that is not lower is refused). Call core_kafka_txn_init() next. */
    const char *transactional_id;
    core_kafka_dr_cb *dr_cb;           /* optional */
    void *dr_user;
    int enqueue_timeout_ms;            /* QUEUE_FULL retry; 0: CORE_KAFKA_ENQUEUE_TIMEOUT_MS */
    core_metrics_t *metrics;           /* NULL: core_metrics_global() */
} core_kafka_producer_opts;

/**
 * @brief Create a producer. Enforced: enable.idempotence=true, acks=all.
 * Defaults: statistics.interval.ms=CORE_KAFKA_STATS_INTERVAL_MS.
 * @returns the producer, or NULL with errstr (a bad property names its key).
 */
core_kafka_producer_t *core_kafka_producer_new(const core_kafka_producer_opts *opts,
                                               char *errstr, size_t errstr_size);

/**
 * @brief Destroy the producer. Does not flush: call
 * core_kafka_producer_flush() first (a warning is logged when messages are
 * still outstanding; their delivery callbacks are not called). NULL is a no-op.
 */
void core_kafka_producer_free(core_kafka_producer_t *p);

/** One record header. value NULL means a null header value. */
typedef struct core_kafka_header {
    const char *name;
    const void *value;
    size_t len;
} core_kafka_header;

/**
 * @brief Enqueue one record (key, value and headers are copied).
 *
 * The partition is chosen by the configured partitioner from the key. On a
 * full local queue it serves delivery reports and retries until the
 * producer's enqueue timeout. On success the delivery callback is called
 * exactly once for \p opaque (from a later poll/flush).
 *
 * @returns CORE_OK; CORE_ERR_INVALID (bad arguments, unknown topic);
 *          CORE_ERR_TOOBIG (larger than message.max.bytes);
 *          CORE_ERR_TRANSIENT (queue still full at the deadline);
 *          CORE_ERR_STATE (transactional producer outside a transaction, or
 *          in a transaction that must be aborted);
 *          CORE_ERR_FATAL (the producer is unusable: rebuild it; see
 *          core_kafka_producer_fatal()). errstr says why.
 */
core_err_t core_kafka_produce(core_kafka_producer_t *p, const char *topic,
                              const void *key, size_t keylen,
                              const void *value, size_t vallen,
                              const core_kafka_header *headers, size_t nheaders,
                              void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief core_kafka_produce() with the headers as a librdkafka list, which
 * the call takes over in every case (it goes with the record, or is
 * destroyed on failure); NULL for none. Saves copying headers one by one,
 * e.g. when passing on a consumed record's headers
 * (rd_kafka_message_detach_headers()). Key and value are copied.
 */
core_err_t core_kafka_produce_hdrs(core_kafka_producer_t *p, const char *topic,
                                   const void *key, size_t keylen,
                                   const void *value, size_t vallen,
                                   rd_kafka_headers_t *hdrs,
                                   void *opaque, char *errstr, size_t errstr_size);

/** @brief Serve delivery reports and other events. @returns events served. */
int core_kafka_producer_poll(core_kafka_producer_t *p, int timeout_ms);

/**
 * @brief Wait up to \p timeout_ms for every outstanding message to be
 * delivered or to fail, serving delivery reports (shutdown: flush within the
 * grace period before freeing).
 * @returns the number of messages still outstanding (0: all reported).
 */
size_t core_kafka_producer_flush(core_kafka_producer_t *p, int timeout_ms);

/** Messages enqueued whose delivery report has not been served yet. */
size_t core_kafka_producer_outstanding(const core_kafka_producer_t *p);
/** Delivery reports served so far: successes and failures. */
uint64_t core_kafka_producer_delivered(const core_kafka_producer_t *p);
uint64_t core_kafka_producer_failed(const core_kafka_producer_t *p);

/**
 * @brief Has the producer raised a fatal error (idempotence sequence
 * desync, fenced transactional id, ...)? If so it cannot produce any more:
 * flush what can be flushed, free it, build a new one and resume from the
 * last committed position. errstr (may be NULL) gets the reason.
 */
bool core_kafka_producer_fatal(core_kafka_producer_t *p, char *errstr, size_t errstr_size);

/** The underlying handle (owned by the producer) for advanced uses. */
rd_kafka_t *core_kafka_producer_handle(core_kafka_producer_t *p);

/**
 * Did a broker refuse this producer's connection (SASL authentication, a
 * TLS certificate it cannot verify, a failed TLS handshake, a connection
 * closed before its first answer as when plaintext meets a TLS listener)?
 * Serves the producer's pending error callbacks first. If so, returns
 * CORE_ERR_INVALID and errstr gets one line: the setting to check first,
 * what was refused, by which server (address), librdkafka's reason; never a
 * secret. Otherwise CORE_OK.
 */
core_err_t core_kafka_producer_refusal(core_kafka_producer_t *p, const core_config_t *cfg,
                                       const char *address, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------------ */
/* Consumer                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct core_kafka_consumer core_kafka_consumer_t;

/**
 * @brief Rebalance hook, called from within core_kafka_consumer_poll() or
 * core_kafka_consumer_close().
 *
 * on_assign runs after the partitions were added to the assignment (the
 * hook may seek them). on_revoke runs before they are removed, so the
 * service can flush its work and commit; when \p lost is true the
 * partitions already belong to another member and a commit would fail:
 * drop the in-flight work instead. \p parts is only valid during the call.
 */
typedef void core_kafka_rebalance_hook(core_kafka_consumer_t *c,
                                       const rd_kafka_topic_partition_list_t *parts,
                                       bool lost, void *user);

typedef struct core_kafka_consumer_opts {
    const core_config_t *cfg;          /* kafka.* properties; may be NULL */
    const core_kafka_prop *defaults;   /* applied before cfg's properties */
    size_t ndefaults;
    const core_kafka_prop *overrides;  /* applied after cfg's properties */
    size_t noverrides;
    const char *group_id;              /* NULL: kafka.group.id must be set */
    core_kafka_rebalance_hook *on_assign;  /* optional */
    core_kafka_rebalance_hook *on_revoke;  /* optional */
    void *hook_user;
    core_metrics_t *metrics;           /* NULL: core_metrics_global() */
} core_kafka_consumer_opts;

/**
 * @brief Create a consumer-group consumer.
 * Enforced: enable.auto.commit=false, enable.auto.offset.store=false,
 * group.id=opts->group_id (when given). Defaults (overridable):
 * auto.offset.reset=earliest, isolation.level=read_committed,
 * statistics.interval.ms=CORE_KAFKA_STATS_INTERVAL_MS,
 * topic.metadata.refresh.interval.ms=10000 (a subscribed topic created
 * later is found within 10 s).
 * @returns the consumer, or NULL with errstr.
 */
core_kafka_consumer_t *core_kafka_consumer_new(const core_kafka_consumer_opts *opts,
                                               char *errstr, size_t errstr_size);

/**
 * @brief Close (when not closed yet: the hooks are NOT called then) and
 * destroy. NULL is a no-op.
 */
void core_kafka_consumer_free(core_kafka_consumer_t *c);

/** @brief Subscribe to \p n topics (replaces any previous subscription). */
core_err_t core_kafka_consumer_subscribe(core_kafka_consumer_t *c,
                                         const char *const *topics, size_t n,
                                         char *errstr, size_t errstr_size);

/**
 * @brief Static assignment instead of subscribe(): read exactly \p parts,
 * each from its .offset (absolute, RD_KAFKA_OFFSET_BEGINNING / _END, or
 * RD_KAFKA_OFFSET_INVALID for the group's committed offset). No group
 * membership, no rebalance hooks; commits still go to the group id. For
 * tools (replay, drill-down). NULL or an empty list unassigns.
 */
core_err_t core_kafka_consumer_assign(core_kafka_consumer_t *c,
                                      const rd_kafka_topic_partition_list_t *parts,
                                      char *errstr, size_t errstr_size);

/**
 * @brief Next message or event, waiting up to \p timeout_ms; runs the
 * rebalance, statistics and error callbacks. Uses rd_kafka_consumer_poll()
 * (never consume_batch: message loss with seek/pause in 2.0.2).
 *
 * @returns NULL on timeout; else a message the caller destroys with
 *          rd_kafka_message_destroy(). When rkm->err is set it is an event,
 *          not a record (already logged and counted): __PARTITION_EOF, a
 *          topic error, or __FATAL (see core_kafka_consumer_fatal()).
 */
rd_kafka_message_t *core_kafka_consumer_poll(core_kafka_consumer_t *c, int timeout_ms);

/**
 * @brief Leave the group: revokes the assignment (on_revoke runs) without
 * committing anything itself. Later polls return NULL. Idempotent.
 */
core_err_t core_kafka_consumer_close(core_kafka_consumer_t *c, char *errstr, size_t errstr_size);

/**
 * @brief Commit \p offsets synchronously. Each offset is the NEXT offset to
 * read: last processed + 1 (see core_kafka_offsets_add_message()).
 * Every partition's result is checked.
 * @returns CORE_OK; CORE_ERR_STATE when the group rebalanced meanwhile (the
 *          partitions' next owner will redo the work); CORE_ERR_TRANSIENT
 *          (timeout, coordinator moving: may be retried); CORE_ERR_FATAL;
 *          CORE_ERR_INVALID (e.g. not authorized). errstr names the error.
 */
core_err_t core_kafka_consumer_commit_offsets(core_kafka_consumer_t *c,
                                              const rd_kafka_topic_partition_list_t *offsets,
                                              char *errstr, size_t errstr_size);

/** @brief Commit the offset after \p rkm (rkm->offset + 1), synchronously. */
core_err_t core_kafka_consumer_commit_message(core_kafka_consumer_t *c,
                                              const rd_kafka_message_t *rkm,
                                              char *errstr, size_t errstr_size);

/**
 * @brief Store the offset after \p rkm (rkm->offset + 1) for a later
 * core_kafka_consumer_commit_stored(). The partition must be assigned.
 */
core_err_t core_kafka_consumer_store(core_kafka_consumer_t *c, const rd_kafka_message_t *rkm,
                                     char *errstr, size_t errstr_size);

/** @brief Commit the stored offsets synchronously. Nothing stored: CORE_OK. */
core_err_t core_kafka_consumer_commit_stored(core_kafka_consumer_t *c,
                                             char *errstr, size_t errstr_size);

/**
 * @brief Raise, in \p offsets, the entry for rkm's partition to
 * rkm->offset + 1 (adding the entry when missing): a batch's commit list.
 */
void core_kafka_offsets_add_message(rd_kafka_topic_partition_list_t *offsets,
                                    const rd_kafka_message_t *rkm);

/**
 * @brief Pause fetching one partition, or every assigned partition when
 * \p topic is NULL. Pausing all also pauses partitions assigned later, until
 * core_kafka_consumer_resume(c, NULL, 0).
 */
core_err_t core_kafka_consumer_pause(core_kafka_consumer_t *c, const char *topic,
                                     int32_t partition, char *errstr, size_t errstr_size);
core_err_t core_kafka_consumer_resume(core_kafka_consumer_t *c, const char *topic,
                                      int32_t partition, char *errstr, size_t errstr_size);

/**
 * @brief Seek one assigned partition to \p offset (absolute, or
 * RD_KAFKA_OFFSET_BEGINNING / _END). Messages fetched before are dropped.
 */
core_err_t core_kafka_consumer_seek(core_kafka_consumer_t *c, const char *topic,
                                    int32_t partition, int64_t offset, int timeout_ms,
                                    char *errstr, size_t errstr_size);

/**
 * @brief Seek every assigned partition back to its committed offset (after a
 * transaction abort, or a failed batch): the group's committed offset, or
 * the offset this consumer's last committed transaction set when that is
 * higher (the broker may not show it yet). A partition without a committed
 * offset goes to the start the auto.offset.reset policy names (earliest:
 * beginning; latest: end). Messages already returned by poll must be
 * dropped by the caller. A rewound partition has no position until one of
 * its records is consumed again.
 */
core_err_t core_kafka_consumer_rewind(core_kafka_consumer_t *c, int timeout_ms,
                                      char *errstr, size_t errstr_size);

/** Number of partitions currently assigned (any thread; for /readyz). */
size_t core_kafka_consumer_assigned(const core_kafka_consumer_t *c);

/** @brief As core_kafka_producer_fatal(), for the consumer. */
bool core_kafka_consumer_fatal(core_kafka_consumer_t *c, char *errstr, size_t errstr_size);

/** The underlying handle (owned by the consumer) for advanced uses. */
rd_kafka_t *core_kafka_consumer_handle(core_kafka_consumer_t *c);

/* ------------------------------------------------------------------------ */
/* Transactions (consume-transform-produce)                                 */
/* ------------------------------------------------------------------------ */

/**
 * @brief What the caller does after a transaction call:
 *   OK    - go on;
 *   RETRY - call the same function again (timeout, coordinator busy);
 *   ABORT - the transaction cannot commit: core_kafka_txn_abort_rewind(),
 *           drop the batch, redo it from the rewound position;
 *   FATAL - the producer is fenced or broken (or the call was a bug: wrong
 *           state, not transactional): flush nothing, free it, build a new
 *           one, core_kafka_txn_init() it, rewind, redo.
 */
typedef enum core_kafka_txn_res {
    CORE_KAFKA_TXN_OK = 0,
    CORE_KAFKA_TXN_RETRY = 1,
    CORE_KAFKA_TXN_ABORT = 2,
    CORE_KAFKA_TXN_FATAL = 3,
} core_kafka_txn_res_t;

const char *core_kafka_txn_res2str(core_kafka_txn_res_t r);

/** @brief rd_kafka_init_transactions(): once, after core_kafka_producer_new(). */
core_kafka_txn_res_t core_kafka_txn_init(core_kafka_producer_t *p, int timeout_ms,
                                         char *errstr, size_t errstr_size);

/** @brief Begin a transaction. */
core_kafka_txn_res_t core_kafka_txn_begin(core_kafka_producer_t *p,
                                          char *errstr, size_t errstr_size);

/**
 * @brief Add consumer offsets to the transaction, with the consumer's group
 * metadata (fencing by generation, KIP-447). \p c must stay alive until the
 * transaction is committed or aborted. Call it from the consumer's thread.
 * @param offsets next offsets to read (last processed + 1), or NULL for the
 *        consumer's current positions of its assigned partitions (the
 *        partitions without a position — not consumed since assignment or
 *        since a rewind — are left out).
 */
core_kafka_txn_res_t core_kafka_txn_send_offsets(core_kafka_producer_t *p,
                                                 core_kafka_consumer_t *c,
                                                 const rd_kafka_topic_partition_list_t *offsets,
                                                 int timeout_ms,
                                                 char *errstr, size_t errstr_size);

/** @brief Commit (flushes the transaction's messages first). */
core_kafka_txn_res_t core_kafka_txn_commit(core_kafka_producer_t *p, int timeout_ms,
                                           char *errstr, size_t errstr_size);

/** @brief Abort the current transaction. */
core_kafka_txn_res_t core_kafka_txn_abort(core_kafka_producer_t *p, int timeout_ms,
                                          char *errstr, size_t errstr_size);

/**
 * @brief Abort (retrying while retriable, within \p timeout_ms) and rewind
 * \p c to its committed offsets. @returns OK (redo the batch), RETRY
 * (deadline passed: call again), FATAL (rebuild the producer).
 */
core_kafka_txn_res_t core_kafka_txn_abort_rewind(core_kafka_producer_t *p,
                                                 core_kafka_consumer_t *c, int timeout_ms,
                                                 char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

enum {
    /* Lag from the consumer's position (app_offset) instead of its committed
     * offset: for consumers whose offsets are committed by a transaction,
     * which librdkafka's consumer_lag does not see. */
    CORE_KAFKA_STATS_LAG_POSITION = 1 << 0,
};

/**
 * @brief Parse one librdkafka statistics document (JSON, at most 64 MiB)
 * and set the gauges in \p m: consumer lag per partition (partition -1 and
 * lag -1 skipped; only partitions in \p assigned when it is not NULL),
 * producer queue messages (producer documents), broker rtt (known brokers).
 * Called by every client's stats callback; public for tests and tools.
 * @returns CORE_OK, or CORE_ERR_INVALID / CORE_ERR_TOOBIG with errstr.
 */
core_err_t core_kafka_stats_apply(core_metrics_t *m, const char *json, size_t len,
                                  const rd_kafka_topic_partition_list_t *assigned,
                                  int flags, char *errstr, size_t errstr_size);

/* ---- end-to-end latency -------------------------------------------------- */

/**
 * @brief The record's tb.ingest.ts header: when svc-ingest read its line, in
 * ms since the Unix epoch (decimal digits, the last such header), or -1 when
 * the record has none or one that is not a number.
 */
int64_t core_kafka_ingest_ts(const rd_kafka_message_t *m);

/**
 * @brief The histogram family tributary_end_to_end_latency_seconds{sink,
 * dataset}: from tb.ingest.ts to the record's committed write at a sink
 * (seconds; buckets 5 ms to 5 min). Each sink observes
 * core_now_ms() - core_kafka_ingest_ts() of every record it wrote, when the
 * header is there. Declared once per registry (the same family again on a
 * second call). NULL on failure, with errstr.
 */
core_metric_family_t *core_kafka_latency_family(core_metrics_t *m, char *errstr,
                                                size_t errstr_size);

#endif
