/* replay.h — manual intervention: re-publish chosen dead-letter records
 * to <dataset>.raw with a fresh attempt count. */
#ifndef SVC_VALIDATOR_REPLAY_H
#define SVC_VALIDATOR_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tributary/core_config.h"
#include "tributary/core_kafka.h"

typedef struct replay_params {
    const core_config_t *cfg;             /* kafka.* properties; may be NULL */
    const core_kafka_prop *kafka_defaults;
    size_t nkafka_defaults;
    const char *dlq_topic;
    const char *raw_topic;
    const char *error_class;  /* NULL: any (invalid | poison | exhausted) */
    const char *reason;       /* NULL: any; else a substring of the error message */
    int64_t since_ms;         /* only DLQ records written at or after; 0: all */
    bool dry_run;             /* count only */
    int timeout_ms;           /* give up reading after this long; 0: 120000 */
} replay_params;

typedef struct replay_result {
    size_t scanned;    /* DLQ records read */
    size_t superseded; /* older copies: a later DLQ record of the same
                        * tb.id, or one naming it in tb.replay.of, tells
                        * the record's fate; never replayed */
    size_t matched;    /* chosen by the filters, of the newest copies */
    size_t published;  /* delivered to the raw topic (0 on a dry run) */
} replay_result;

/**
 * @brief Read the whole DLQ (committed records, up to its end now) twice:
 * first to learn which copies are superseded (a record that failed again
 * after a replay has a newer copy with its tb.id, and that copy's
 * tb.replay.of names the old one), then to choose among the newest copies
 * by class, reason and time and re-publish the chosen ones to the raw
 * topic (same key and value bytes; tb.id, tb.batch and tb.ingest.ts kept;
 * no tb.attempt, so the count starts afresh; tb.replay.of names the DLQ
 * record) and wait until every one is delivered. A record that keeps
 * failing is replayed once per replay, never once per earlier copy.
 * @returns 0, or -1 with errstr (and what was done so far in *res).
 */
int replay_run(const replay_params *p, replay_result *res, char *errstr, size_t errstr_size);

/** "2024-03-07T10:00:00Z" or ms since the epoch → ms. @returns 0 or -1. */
int replay_parse_since(const char *text, int64_t *msp);

#endif
