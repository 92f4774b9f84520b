/* consume.h — the audit consumer loop of svc-recon, kept thin: it polls
 * audit.events, hands batches of raw records to recon_state_apply() (which
 * decodes, deduplicates and writes them in one PostgreSQL transaction with
 * their offsets), then commits the Kafka offsets for lag. The domain
 * (state.c, reconcile.c) never sees a Kafka handle, so the loop can move
 * onto libcore's sink loop later.
 *
 * Two modes:
 *   daemon    a consumer group member (read_committed); on assignment each
 *             partition is sought to the offset stored in PostgreSQL, so a
 *             kill -9 and restart resumes exactly where the state ends;
 *   catch-up  no group: every partition assigned from its stored offset and
 *             read to its end (partition EOF), then the call returns; the
 *             standalone `report` runs it before answering.
 *
 * PostgreSQL down: the batch in hand is kept and applied again with
 * backoff; nothing is polled meanwhile, nothing is lost or doubled.
 *
 * Metrics:
 *   tributary_recon_audit_events_total{result}  applied | bad | skipped
 *   tributary_recon_apply_seconds               histogram, one transaction
 *   tributary_recon_apply_errors_total          failed transactions (retried)
 *   tributary_recon_audit_lag_seconds           daemon: now minus the event time of the
 *                                               newest audit event applied (grows while
 *                                               the pipeline is idle: read it with
 *                                               _audit_lag_messages)
 *   tributary_recon_audit_lag_messages          daemon: high watermark minus the next
 *                                               offset to apply, summed over the assigned
 *                                               partitions (at most every second) */
#ifndef SVC_RECON_CONSUME_H
#define SVC_RECON_CONSUME_H

#include "state.h"

#include "tributary/core_config.h"
#include "tributary/core_kafka.h"

typedef struct recon_consume_opts {
    const core_config_t *cfg;             /* kafka.* properties */
    const char *topic;                    /* audit.events */
    const char *group_id;
    int batch_max;                        /* records per transaction */
    int batch_ms;                         /* longest a batch collects */
    bool catch_up;                        /* read to the end and return */
    int catch_up_timeout_ms;              /* catch-up: give up after this */
    /* daemon: called between batches at most every tick_ms (closing due
     * batches and windows); NULL: none */
    void (*tick)(recon_state_t *st, void *arg);
    void *tick_arg;
    int tick_ms;
} recon_consume_opts;

typedef struct recon_consume_stats {
    uint64_t applied, bad, skipped, transactions;
} recon_consume_stats;

/**
 * @brief Run the loop until stopped (daemon) or at the end (catch-up).
 * @returns 0; CORE_EX_UNAVAILABLE with errstr when Kafka or PostgreSQL
 *          cannot be reached (catch-up: within its time-out); CORE_EX_CONFIG
 *          for a consumer the kafka.* keys cannot build.
 */
int recon_consume_run(recon_state_t *st, const recon_consume_opts *o, recon_consume_stats *stats,
                      char *errstr, size_t errstr_size);

#endif
