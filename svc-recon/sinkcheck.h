/* sinkcheck.h — svc-recon's check of the sinks' own state: what PostgreSQL
 * and Redis really hold for a dataset, compared with the newest version of
 * every key the pipeline accepted (from audit.events).
 *
 * Each stored record's content digest (core_avro_content_digest(): the
 * business fields alone, meta left out) is recomputed from what is stored,
 * never taken from a service:
 *
 * - PostgreSQL (svc-persister's table `<pg schema>.<dataset>`, one column
 *   per top-level field other than meta, plus tb_version, tb_id, tb_batch;
 *   docs/svc-persister.md): the canonical Avro binary of each row is built
 *   and hashed inside the database (sha256() over SQL expressions, one per
 *   column type), keys are spread over buckets by a hash of the key, and
 *   only a bucket's count and XOR of row tokens comes back; buckets that
 *   differ from the expected ones are fetched row by row. A clean table
 *   ships one row per bucket. One REPEATABLE READ, READ ONLY snapshot.
 * - Redis (svc-cache-feeder's layout, feeder.h: `P:D:<key>` in the json,
 *   hash or avro format, `P#meta:D` versions and tombstones): the expected
 *   keys are read in pipelined MGET / HGETALL / HMGET and hashed here.
 * - MongoDB (svc-persister's collection `<dataset>`: _id = key, the fields,
 *   tb_version, tb_id, tb_batch): the documents are read and hashed here.
 *
 * Findings name the key, the id the pipeline expected there, the sink and
 * what was found:
 *   missing     a key the pipeline wrote and did not delete is not there
 *   altered     the stored values (or the stored id) differ from the
 *               pipeline's at the same version
 *   stale       the key holds an older version than the pipeline's newest
 *               (or a row the pipeline deleted is still there, older)
 *   unexpected  a record the pipeline never wrote: a row of one of the
 *               given batches whose key it never accepted, or a version
 *               newer than any it accepted
 *
 * Threads: one call at a time per connection; calls hold no global state.
 */
#ifndef SVC_RECON_SINKCHECK_H
#define SVC_RECON_SINKCHECK_H

#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sinkcheck_verdict {
    SINKCHECK_MISSING = 0,
    SINKCHECK_ALTERED = 1,
    SINKCHECK_STALE = 2,
    SINKCHECK_UNEXPECTED = 3,
} sinkcheck_verdict_t;

/** "missing", "altered", "stale", "unexpected". */
const char *sinkcheck_verdict_name(sinkcheck_verdict_t v);

/** What the pipeline accepted last for one key (borrowed strings). */
typedef struct sinkcheck_expect {
    const char *key;      /* business key (required, unique in the array) */
    const char *id;       /* meta.id of that event (required) */
    int64_t version;      /* its meta.version */
    core_digest content;  /* its content digest (ignored when deleted) */
    bool deleted;         /* the newest accepted event deletes the key */
} sinkcheck_expect;

/** One discrepancy. Strings owned by the result. */
typedef struct sinkcheck_finding {
    sinkcheck_verdict_t verdict;
    char *key;
    char *id;               /* the expected id; for unexpected the stored id (or NULL) */
    const char *sink;       /* "postgres", "redis" or "mongodb" (static) */
    int64_t stored_version; /* the version the sink holds; SINKCHECK_NONE when it
                             * holds nothing (Redis: a missing record gives the
                             * version its guard, P#meta, still records) */
    char detail[192];       /* what differs; never a field's value */
} sinkcheck_finding;

#define SINKCHECK_NONE INT64_MIN

typedef struct sinkcheck_result {
    sinkcheck_finding *findings; /* sorted by sink, then key */
    size_t n, cap;
    /* figures of the last check(s) added to it */
    uint64_t expected;       /* expected records checked */
    uint64_t buckets;        /* PostgreSQL buckets compared */
    uint64_t buckets_differ; /* of which fetched row by row */
    uint64_t rows_fetched;   /* rows (PostgreSQL) or keys (Redis) read one by one */
} sinkcheck_result;

/** Free the findings and zero the result. NULL ok. */
void sinkcheck_result_clear(sinkcheck_result *r);

/** What to check: one dataset and the pipeline's newest state of its keys. */
typedef struct sinkcheck_params {
    const core_avro_catalog_t *cat; /* schemas: the dataset's current one, and
                                     * any version by id (Redis avro format) */
    const char *dataset;
    const sinkcheck_expect *expect;
    size_t nexpect;
    /* batches whose stored rows must all be expected (unexpected rows);
     * none: only the expected keys are looked at */
    const char *const *batches;
    size_t nbatches;
} sinkcheck_params;

/** PostgreSQL as svc-persister writes it (its pg.* keys and defaults). */
typedef struct sinkcheck_pg_conf {
    const char *conninfo;  /* libpq string or URI; NULL: svc-persister's default
                            * "host=127.0.0.1 port=5432 dbname=tributary user=tributary" */
    const char *password;  /* NULL: none (or in conninfo / PGPASSWORD) */
    const char *schema;    /* NULL: "public" */
    int64_t statement_timeout_ms; /* 0: 60000 */
    size_t bucket_rows;    /* expected rows per bucket; 0: 256 */
} sinkcheck_pg_conf;

/**
 * @brief Check the dataset's PostgreSQL table against p->expect; findings
 * are appended to *out (which starts zeroed or holds earlier findings).
 * @returns CORE_OK (clean or not: see out->n); CORE_ERR_TRANSIENT (server
 *          unreachable, connection lost, timeout: errstr names the server
 *          and libpq's reason, never the password); CORE_ERR_INVALID (a
 *          dataset not in the catalogue, a column type whose content digest
 *          SQL cannot rebuild (record, array, map, other unions, bytes,
 *          fixed, float, double, decimals of more than 18 digits), a missing
 *          table, duplicate or NULL keys in expect); CORE_ERR_NOMEM.
 */
core_err_t sinkcheck_pg(const sinkcheck_pg_conf *conf, const sinkcheck_params *p,
                        sinkcheck_result *out, char *errstr, size_t errstr_size);

typedef enum sinkcheck_redis_format {
    SINKCHECK_REDIS_JSON = 0, /* svc-cache-feeder's cache.format json (default) */
    SINKCHECK_REDIS_HASH = 1,
    SINKCHECK_REDIS_AVRO = 2,
} sinkcheck_redis_format_t;

/** Redis as svc-cache-feeder writes it (its redis.* / cache.* keys). */
typedef struct sinkcheck_redis_conf {
    const char *host;      /* NULL: 127.0.0.1; "/path": unix socket */
    int port;              /* 0: 6379 */
    const char *user;      /* ACL user or NULL */
    const char *password;  /* NULL: no AUTH */
    int db;
    const char *prefix;    /* NULL: "tb" */
    sinkcheck_redis_format_t format;
    size_t pipeline;       /* keys per round trip; 0: 500 */
} sinkcheck_redis_conf;

/**
 * @brief Check the dataset's Redis keys against p->expect (the expected
 * keys only: Redis records carry no batch, so unexpected means a version
 * newer than the pipeline's there). Findings appended to *out.
 * @returns CORE_OK; CORE_ERR_TRANSIENT (unreachable, timeout: errstr names
 *          host:port); CORE_ERR_INVALID (credentials refused, unknown
 *          dataset, duplicate keys); CORE_ERR_NOMEM.
 */
core_err_t sinkcheck_redis(const sinkcheck_redis_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size);

/** MongoDB as svc-persister writes it (its mongodb.* keys): _id = the key,
 * the fields, tb_version, tb_id, tb_batch (docs/svc-persister.md). */
typedef struct sinkcheck_mongo_conf {
    const char *uri;       /* NULL: "mongodb://127.0.0.1:27017" (secret: never in errstr) */
    const char *database;  /* NULL: "tributary" */
    int timeout_ms;        /* server selection and socket; 0: 10000 */
} sinkcheck_mongo_conf;

/**
 * @brief Check the dataset's collection: every document is read once
 * (FerretDB 1.x pushes neither $in nor a hash down, so nothing is gained by
 * asking it for less) and its content digest recomputed here; documents of
 * p->batches whose key is not expected are unexpected. Findings appended.
 * @returns CORE_OK; CORE_ERR_TRANSIENT (no server answers: errstr says so
 *          without the URI); CORE_ERR_INVALID (bad URI, unknown dataset,
 *          duplicate keys, a server error); CORE_ERR_NOMEM.
 */
core_err_t sinkcheck_mongo(const sinkcheck_mongo_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size);

#endif
