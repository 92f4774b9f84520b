/* verify.h — external verification (seed 000's "validation service"):
 * an HTTP verifier per rule, answers cached in Redis with a TTL.
 *
 * Fast path: the answer is in Redis (one pipelined GET per batch). Slow
 * path: a miss calls the verifier over HTTP (core_httpc: bounded
 * concurrency, timeouts, connection reuse) and caches the verdict: 2xx as
 * valid for cache_ttl_s, other 4xx as refused for negative_ttl_s.
 * Timeouts, connection errors, 408, 429 and 5xx are transient (never
 * cached): the record goes to the retry topic. Redis being down only
 * costs the fast path: every check then calls the verifier.
 *
 * Cache keys: tb:verify:<dataset>:<field>:<sha256(value)>:<sha256(url)[0..16]>
 * (values are personal data: never stored in clear in key names).
 * Invalidation: verifier_invalidate() (subcommand `invalidate`, HTTP
 * DELETE /cache) deletes one value's entries or a whole field's.
 *
 * Threads: a verifier is used by one thread at a time. */
#ifndef SVC_VALIDATOR_VERIFY_H
#define SVC_VALIDATOR_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "rules.h"
#include "tributary/core_common.h"
#include "tributary/core_redis.h"

typedef enum vverdict { VV_OK = 0, VV_INVALID = 1, VV_TRANSIENT = 2 } vverdict;

typedef struct verifier verifier_t;

typedef struct verifier_opts {
    const core_redis_config *redis; /* libcore's redis.* settings; NULL: the defaults */
    int concurrency;            /* HTTP requests in flight; 0: 16 */
    int timeout_ms;             /* default per request; 0: 2000 */
    /* Circuit breaker per (dataset, field): after this many transient
     * failures in a row, no call for breaker_open_ms (the checks are
     * transient at once), then one trial call. 0: no breaker. */
    int breaker_failures;
    int breaker_open_ms;        /* 0: 5000 */
} verifier_opts;

/** One check to run: filled by the caller, answered by verifier_run(). */
typedef struct vv_item {
    const char *dataset;
    const vr_external *ext;
    const char *value;          /* the field's text (for the cache key) */
    const char *url;            /* from vrules_external_url() */
    /* out */
    vverdict verdict;
    bool cached;
    int status;                 /* HTTP status, 0 when none */
    char reason[192];           /* never the value */
} vv_item;

verifier_t *verifier_new(const verifier_opts *o, char *errstr, size_t errstr_size);
void verifier_free(verifier_t *v);

/** Answer every item: cache first, then the verifiers for the misses. */
void verifier_run(verifier_t *v, vv_item *items, size_t n);

/**
 * @brief Delete cached answers of one field of a dataset: of one value when
 * \p value is not NULL, else all of them.
 * @returns CORE_OK with *deleted set; CORE_ERR_TRANSIENT (Redis down) with errstr.
 */
core_err_t verifier_invalidate(verifier_t *v, const char *dataset, const char *field,
                               const char *value, size_t *deleted,
                               char *errstr, size_t errstr_size);

#endif
