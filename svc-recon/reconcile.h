/* reconcile.h — the verdict on one batch, from svc-recon's state.
 *
 * Aggregates first: per dataset of the batch, the stages' counts and
 * aggregate digests (state.h) are compared: ingest's published against
 * everything the validator reported, the validator's valid against
 * everything each expected sink reported. When all agree, no retry is
 * pending and no sink refused a record, the dataset is clean without
 * reading one id: every valid record is delivered, every rejection is
 * counted from the aggregates. A dataset whose aggregates differ is
 * compared again per bucket of ids (RECON_BUCKETS by a hash of the id),
 * with counts and sums computed inside PostgreSQL; only the buckets that
 * differ are read, grouped by record id, and each of their records gets a
 * verdict:
 *
 *   delivered   published, valid, reached every expected sink unaltered, once;
 *   rejected    a format error (ingest), invalid / poison / exhausted
 *               (validator, to the DLQ), refused by a sink; with the reason;
 *   retrying    on .retry, no final outcome yet;
 *   missing     a stage that should have seen it did not (the stage named);
 *   altered     a stage's digest differs from what ingest published;
 *   duplicated  one stage applied it twice from different source offsets or
 *               with different digests (the same offset again is a
 *               redelivery, not a duplicate);
 *   unexpected  a stage saw an id that ingest never published;
 *   stale       (--verify-sinks, verify.h) a sink holds an older version.
 *
 * Methods (method.h): a dataset applied by counts is judged by the
 * aggregates' counts alone (no id to read: a count that differs is named
 * by its stage, count_differs); by ids, digests are not compared (never
 * altered).
 *
 * A record with several problems gets the first in pipeline order as its
 * verdict; the others are listed in its detail. Expected sinks: the
 * configured ones, else every sink stage that has ever reported on the
 * dataset. */
#ifndef SVC_RECON_RECONCILE_H
#define SVC_RECON_RECONCILE_H

#include "event.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum recon_verdict {
    RV_DELIVERED,
    RV_REJECTED,
    RV_RETRYING,
    RV_MISSING,
    RV_ALTERED,
    RV_DUPLICATED,
    RV_UNEXPECTED,
    RV_STALE,      /* --verify-sinks: a sink holds an older version */
    RV_COUNT
} recon_verdict;
extern const char *const recon_verdict_names[RV_COUNT];
/* The verdict named s, or -1. */
int recon_verdict_index(const char *s);
/* Whether a verdict makes a batch unclean. */
bool recon_verdict_is_discrepancy(int v);

/* One record's verdict (discrepancies, and the rejected records). */
typedef struct recon_record {
    char *id, *key, *dataset;
    int verdict;   /* RV_* */
    int stage;     /* RS_* where it happened */
    char *detail;  /* why: the reason, or what differs; every problem found */
    char *went;    /* rejected: where the record went; else NULL */
    const char *sink; /* --verify-sinks: "postgres", "redis", "mongodb" (static); else NULL */
} recon_record;

/* Control totals of one dataset of the batch. Drilled down: records (one
 * per id, by its final outcome); else: the aggregates' counts. */
typedef struct recon_totals {
    int64_t lines, format_errors, published;
    int64_t valid, invalid, poison, exhausted, retrying;
    int64_t sink_handled[RS_COUNT], sink_refused[RS_COUNT];
    bool sink_expected[RS_COUNT];
    bool lines_ok, published_ok, sinks_ok; /* the three equations hold */
} recon_totals;

typedef struct recon_dataset_result {
    char *dataset;
    int method;                   /* recon_method (method.h) the batch was applied under */
    bool drilled;                 /* ids were read */
    int buckets_drilled;          /* of RECON_BUCKETS: those whose sums differed */
    int64_t counts[RV_COUNT];
    recon_totals t;
    /* method counts: per stage, its count minus the count it should equal
     * (validator: everything it reported against published; each expected
     * sink: what it reported against valid); any non-zero makes the batch
     * unclean. No record can be named. */
    bool count_differs;
    int64_t count_expected[RS_COUNT], count_seen[RS_COUNT];
} recon_dataset_result;

/* One sink checked for one dataset (--verify-sinks, verify.h). */
typedef struct recon_sink_check {
    char *dataset;
    const char *sink;           /* "postgres", "redis", "mongodb" (static) */
    const char *why;            /* why it was expected: "coverage", "sinks", "observed" */
    uint64_t expected;          /* keys the pipeline accepted last */
    uint64_t buckets, buckets_differ, rows_fetched;
    uint64_t findings;
    char *error;                /* the sink could not be verified (unclean); else NULL */
} recon_sink_check;

typedef struct recon_report {
    char *batch;
    bool known;                   /* any event of the batch */
    bool clean;                   /* no missing, altered, duplicated, unexpected;
                                   * method counts: no stage's count differs */
    int64_t counts[RV_COUNT];
    recon_dataset_result *ds;
    size_t nds;
    recon_record *disc;           /* discrepancies, by dataset, stage order, id */
    size_t ndisc;
    recon_record *rejected;       /* rejected records, at most rejected_max */
    size_t nrejected;
    bool rejected_truncated;
    int64_t bad_total;            /* audit events refused as bad input (all batches) */
    int64_t bad[3];               /* malformed, unknown_dataset, future_timestamp */
    double seconds;               /* time the reconciliation took */
    bool verified;                /* --verify-sinks ran: checks below */
    recon_sink_check *checks;
    size_t nchecks;
    double verify_seconds;
} recon_report;

extern const char *const recon_bad_reasons[3];

typedef struct recon_reconcile_opts {
    const char *schema;
    /* Expected sinks for every dataset (RS_CACHE, RS_PERSISTER bits:
     * 1 << stage); 0: those that ever reported on the dataset. */
    unsigned sinks;
    size_t rejected_max;          /* 0: 1000 */
} recon_reconcile_opts;

/**
 * @brief Reconcile one batch from the state in \p c.
 * @returns CORE_OK and *out (recon_report_free()), or CORE_ERR_TRANSIENT
 *          with errstr when PostgreSQL failed.
 */
int recon_reconcile_batch(PGconn *c, const recon_reconcile_opts *o, const char *batch,
                          recon_report **out, char *errstr, size_t errstr_size);
void recon_report_free(recon_report *r);

#endif
