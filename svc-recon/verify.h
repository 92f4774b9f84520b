/* verify.h — `report --verify-sinks`: the sinks' own state checked for a
 * batch, merged into its report.
 *
 * For every dataset of the batch, the sinks expected to hold it are
 * checked (sinkcheck.h) against what the pipeline accepted last for each
 * key of the batch's valid records — the newest `valid` event of the key in
 * any batch (so a key left at the batch's version after a later update is
 * `stale`), deleted when svc-cache-feeder reported it `deleted` — with the
 * content digest that event carried (AuditEvent v2). Rows of the batch
 * whose key the pipeline never accepted are `unexpected` (PostgreSQL and
 * MongoDB: they store the batch id; Redis does not).
 *
 * Expected sinks of a dataset, first match:
 *   coverage   entries "DATASET:STORE" (STORE postgres, redis, mongodb;
 *              DATASET "*" for every dataset);
 *   sinks      the configured sink stages (cache-feeder -> redis,
 *              persister -> persister_store);
 *   observed   the sink stages that ever reported on the dataset.
 * A dataset with no expected sink, or a sink that cannot be verified (a
 * column type SQL cannot rebuild, v1 audit events without a content
 * digest), makes the report unclean with the reason: never read as clean.
 *
 * Findings become discrepancies (missing, altered, stale, unexpected) with
 * `sink` set and the stage of the service that writes the sink. */
#ifndef SVC_RECON_VERIFY_H
#define SVC_RECON_VERIFY_H

#include "reconcile.h"
#include "sinkcheck.h"

enum { RECON_STORE_POSTGRES, RECON_STORE_REDIS, RECON_STORE_MONGODB, RECON_STORE_COUNT };
extern const char *const recon_store_names[RECON_STORE_COUNT];
/* The store named s, or -1. */
int recon_store_index(const char *s);

typedef struct recon_verify_opts {
    const char *schema;              /* recon's state schema */
    const core_avro_catalog_t *cat;
    unsigned sinks;                  /* expected sink stages (1 << RS_*); 0: observed */
    const char *const *coverage;     /* "DATASET:STORE" entries */
    size_t ncoverage;
    int persister_store;             /* RECON_STORE_POSTGRES or RECON_STORE_MONGODB */
    sinkcheck_pg_conf pg;
    sinkcheck_redis_conf redis;
    sinkcheck_mongo_conf mongo;
} recon_verify_opts;

/**
 * @brief Whether a coverage entry is "DATASET:STORE" with a known store
 * (and a dataset of the catalogue, or "*").
 * @returns 0, or -1 with errstr.
 */
int recon_coverage_check(const char *entry, const core_avro_catalog_t *cat, char *errstr,
                         size_t errstr_size);

/**
 * @brief Check every expected sink of every dataset of rep's batch; the
 * findings are added to rep (discrepancies, counts, clean), the checks to
 * rep->checks.
 * @returns CORE_OK; CORE_ERR_TRANSIENT with errstr when recon's state or a
 *          sink is unreachable; CORE_ERR_NOMEM.
 */
core_err_t recon_verify_sinks(PGconn *state, const recon_verify_opts *o, recon_report *rep,
                              char *errstr, size_t errstr_size);

#endif
