/* validator.h — the validating stage: consume <dataset>.raw and
 * <dataset>.retry as a consumer group (read_committed), decode, apply the
 * dataset's rules and external checks, and route each record to .valid,
 * .retry or .dlq with its audit event, in one Kafka transaction together
 * with the input offsets (exactly once between the input and every output).
 *
 * One transactional producer per instance (KIP-447: the consumer group
 * metadata goes with the offsets, so one producer serves every partition):
 * its transactional.id is stable for the instance, so a restarted
 * instance fences its dead predecessor and aborts what it left open.
 *
 * Threads: everything runs on the caller's thread. */
#ifndef SVC_VALIDATOR_VALIDATOR_H
#define SVC_VALIDATOR_VALIDATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tributary/core_avro.h"
#include "tributary/core_config.h"
#include "tributary/core_kafka.h"
#include "tributary/core_retry.h"
#include "verify.h"

/* Outcomes, in the order of validator_stats.committed[]. */
enum { VO_VALID, VO_INVALID, VO_POISON, VO_RETRYING, VO_EXHAUSTED, VO_COUNT };
extern const char *const validator_outcome_names[VO_COUNT];

typedef struct validator_params {
    const core_config_t *cfg;             /* kafka.* properties; may be NULL */
    const core_kafka_prop *kafka_defaults; /* before cfg's (bootstrap.servers ...) */
    size_t nkafka_defaults;
    const core_avro_catalog_t *cat;
    const char *const *datasets;
    size_t ndatasets;
    const char *topic_prefix;             /* prepended to <dataset>.raw etc.; NULL = "" */
    const char *audit_topic;              /* NULL = audit.events */
    const char *group_id;
    const char *transactional_id;
    /* Static group membership (KIP-345; default kafka.group.instance.id):
     * a restarted instance gets its partitions back at once instead of
     * after the session timeout. NULL: dynamic membership. */
    const char *group_instance_id;
    int batch_max;                        /* records per transaction */
    int commit_interval_ms;               /* longest a batch collects */
    core_backoff retry;                   /* max_attempts: retries before exhausted (0: none) */
    int64_t clock_skew_ms;
    verifier_opts verify;
    /* With a Schema Registry: the id of each dataset's current schema under
     * the subjects of its outputs, VALIDATOR_OUT_COUNT per dataset in the
     * order of validator_out_kind (main.c binds them at start). A record
     * written with that schema's text under another id is passed on with
     * the output subject's id in its header (the body, and so every
     * digest, unchanged). NULL: ids are passed on as they are. */
    const uint32_t *out_ids;
} validator_params;

/* The outputs of a dataset, in the order of validator_params.out_ids. */
typedef enum validator_out_kind {
    VALIDATOR_OUT_VALID,
    VALIDATOR_OUT_RETRY,
    VALIDATOR_OUT_DLQ,
    VALIDATOR_OUT_COUNT
} validator_out_kind;
extern const char *const validator_out_names[VALIDATOR_OUT_COUNT]; /* "valid", "retry", "dlq" */

typedef struct validator_stats {
    uint64_t committed[VO_COUNT]; /* records per outcome, in committed transactions */
    uint64_t transactions;        /* committed */
    uint64_t aborts;              /* aborted and redone */
    uint64_t rebuilds;            /* producers rebuilt after a fatal error */
    uint64_t revokes;             /* rebalances that took partitions away */
} validator_stats;

typedef struct validator validator_t;

/** @returns the validator (consumer subscribed, producer initialised) or NULL + errstr. */
validator_t *validator_new(const validator_params *p, char *errstr, size_t errstr_size);
void validator_free(validator_t *v);

/**
 * @brief Collect one batch (up to batch_max records or commit_interval_ms),
 * validate it and commit it in one transaction; an aborted transaction is
 * rewound and the records are redone by a later step.
 * @returns 0 (done, or nothing to do), or -1 with errstr when the validator
 *          cannot go on (a fatal consumer error).
 */
int validator_step(validator_t *v, char *errstr, size_t errstr_size);

/** Steps until core_lifecycle_stopping(); then leaves the group. @returns exit code. */
int validator_run(validator_t *v);

const validator_stats *validator_get_stats(const validator_t *v);
core_kafka_consumer_t *validator_consumer(validator_t *v);
core_kafka_producer_t *validator_producer(validator_t *v);


#endif
