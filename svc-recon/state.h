/* state.h — svc-recon's state in PostgreSQL, in a schema of its own
 * (default tributary_recon), created on start by versioned migrations
 * (table schema_version).
 *
 * Tables:
 *   events      one row per audit event applied: record id, key, dataset,
 *               batch, stage, outcome, digest, version, where the record
 *               was (src_topic/partition/offset), line, reason, event time,
 *               which audit.events partition/offset it came from, and
 *               its drill-down bucket and element prefix (event.h);
 *   aggregates  per (batch, dataset, stage, outcome): count, the
 *               order-independent aggregate (sum mod 2^256 of
 *               recon_event_element()), first and last event time, and the
 *               method (method.h) its events were applied under: a
 *               dataset reconciled by counts writes no events rows and adds
 *               zero elements; by ids, events rows without digests;
 *   offsets     per audit.events partition: the next offset to apply;
 *   bad_events  audit events refused (malformed, unknown dataset, a
 *               timestamp far in the future), with the reason;
 *   windows, window_latency, watermarks  (window.h), in the same transaction;
 *   closings, statements                 (statement.h).
 *
 * Exactly once: one apply is one transaction that writes the events, the
 * aggregates and the offsets together, under a transaction-level advisory
 * lock (so a report run beside the daemon applies nothing twice); an event
 * whose audit offset is below its partition's stored offset is skipped, so
 * a redelivery (a restart from older Kafka offsets, two consumers) never
 * counts twice.
 *
 * Threads: a recon_state_t is one libpq connection, used by one thread. */
#ifndef SVC_RECON_STATE_H
#define SVC_RECON_STATE_H

#include "tributary/core_avro.h"
#include "tributary/core_common.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define RECON_SCHEMA_VERSION 7

typedef struct recon_state recon_state_t;

typedef struct recon_pg_opts {
    const char *conninfo;     /* libpq string or URI */
    const char *password;     /* may be NULL */
    const char *sslmode;      /* may be NULL */
    const char *sslrootcert;  /* may be NULL */
    const char *schema;       /* recon's own schema: [a-z_][a-z0-9_]* */
} recon_pg_opts;

typedef struct recon_state_opts {
    recon_pg_opts pg;
    const char *audit_topic;          /* the topic the offsets belong to */
    const core_avro_catalog_t *cat;   /* datasets known: others are bad input */
    int64_t future_ms;                /* an event time later than now + this is bad input */
    int64_t window_ms;                /* event-time window (window.h); 0: 600000 */
    int64_t grace_ms;                 /* later than a stage's watermark - this: late */
    const char *const *methods;       /* "DATASET:METHOD" entries (method.h); none: digests */
    size_t nmethods;
} recon_state_opts;

/* One audit record handed over by the consumer loop (borrowed). */
typedef struct recon_input {
    int32_t partition;
    int64_t offset;
    const void *value;
    size_t len;
} recon_input;

typedef struct recon_apply_stats {
    size_t applied;  /* events written */
    size_t bad;      /* refused: counted in bad_events */
    size_t skipped;  /* already applied (audit offset below the stored one) */
    int64_t newest_ts; /* the newest event time applied (ms); RECON_NONE: none */
} recon_apply_stats;

/** Whether s is a schema name recon accepts ([a-z_][a-z0-9_]{0,62}). */
bool recon_schema_name_ok(const char *s);

/**
 * @brief Connect and bring the schema to RECON_SCHEMA_VERSION.
 * @returns NULL with errstr ("postgres connect: ...") on failure.
 */
recon_state_t *recon_state_open(const recon_state_opts *o, char *errstr, size_t errstr_size);
void recon_state_free(recon_state_t *st);

/** A new connection with the options' settings (for readers on other threads). */
PGconn *recon_pg_connect(const recon_pg_opts *o, const char *app, char *errstr,
                         size_t errstr_size);

/**
 * @brief Apply n audit records (any partitions, any order) in one transaction.
 * @returns CORE_OK; CORE_ERR_TRANSIENT when PostgreSQL failed (nothing was
 *          applied; the connection is rebuilt on the next call).
 */
core_err_t recon_state_apply(recon_state_t *st, const recon_input *in, size_t n,
                             recon_apply_stats *stats, char *errstr, size_t errstr_size);

/**
 * @brief The next offset to apply of every partition below npart
 * (next[p] = -1 when nothing of p was applied yet).
 */
core_err_t recon_state_offsets(recon_state_t *st, int64_t *next, size_t npart, char *errstr,
                               size_t errstr_size);

PGconn *recon_state_conn(recon_state_t *st);
const char *recon_state_schema(const recon_state_t *st);

#endif
