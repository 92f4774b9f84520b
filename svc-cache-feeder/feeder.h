/* feeder.h — svc-cache-feeder's Redis side: one dataset record turned into
 * one version-guarded EVALSHA, pipelined batches (feeder.c), the client read
 * path and the bulk-reload purge (feeder_read.c).
 *
 * Redis layout for dataset D under prefix P (default "tb"):
 *
 *   P:D:<key>      the record: a JSON document (default), a hash of its
 *                  top-level fields, or the Kafka value bytes (Confluent
 *                  wire format); optional TTL.
 *   P#meta:D       hash: <key> -> "<version>|<deleted 0/1>|<event_time>|<batch>"
 *                  (version: 20 digits of the int64 with its sign bit flipped,
 *                  so that string order is numeric order)
 *                  the version guard and the tombstones (kept when the data
 *                  key expires or is deleted, so an older event replayed
 *                  later can never bring a record back).
 *   P#bulk:D       hash: <bulk batch id> -> smallest event_time seen in it
 *                  (the snapshot time the purge compares against).
 *
 * Every write goes through one Lua script (EVALSHA, loaded on connect and
 * reloaded after NOSCRIPT by core_redis) that compares versions and writes
 * atomically inside Redis: one call per run of up to 500 records of one
 * dataset, each record guarded as if it ran alone, in order. Versions travel as order-preserving strings (20
 * digits of the int64 with its sign bit flipped): Lua's doubles are exact
 * only to 2^53.
 *
 * Batches can be pipelined: feeder_send() now, feeder_recv() later, several
 * in flight on the one connection (svc-cache-feeder's batch.inflight).
 *
 * Threads: a feeder_t and its records belong to one thread. */
#ifndef SVC_CACHE_FEEDER_FEEDER_H
#define SVC_CACHE_FEEDER_FEEDER_H

#include "tributary/core_avro.h"
#include "tributary/core_digest.h"
#include "tributary/core_redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


typedef enum feeder_format {
    FEEDER_FMT_JSON = 0,
    FEEDER_FMT_HASH = 1,
    FEEDER_FMT_AVRO = 2,
} feeder_format_t;

/* "json", "hash", "avro"; -1 when unknown. */
int feeder_format_parse(const char *s);
const char *feeder_format_name(feeder_format_t f);

/* One dataset as the feeder caches it. Strings owned (feeder_dataset_clear). */
typedef struct feeder_dataset {
    char *name;
    const core_avro_schema_t *schema; /* borrowed from the catalogue */
    feeder_format_t format;
    int64_t ttl_ms;                   /* 0: no TTL */
    bool purge;                       /* bulk-reload purge allowed */
    char *topic;                      /* input topic */
    char *key_prefix;                 /* "P:D:" */
    char *meta_key;                   /* "P#meta:D" */
    char *bulk_key;                   /* "P#bulk:D" */
} feeder_dataset;

/* Fill names from prefix and topic template ("{dataset}" is replaced).
 * @returns CORE_OK, CORE_ERR_INVALID (template without {dataset}), NOMEM. */
int feeder_dataset_init(feeder_dataset *ds, const char *name, const core_avro_schema_t *schema,
                        const char *prefix, const char *topic_template, char *errstr,
                        size_t errstr_size);
void feeder_dataset_clear(feeder_dataset *ds);

typedef enum feeder_result {
    FEEDER_RES_PENDING = -1,
    FEEDER_RES_STALE = 0,     /* an equal or newer version is in Redis: skipped */
    FEEDER_RES_CACHED = 1,    /* written */
    FEEDER_RES_DELETED = 2,   /* removed (tombstone kept) */
    FEEDER_RES_ERROR = 3,     /* Redis refused this command (see error) */
} feeder_result_t;

/* One record prepared for Redis: everything owned (one allocation, buf;
 * id, key, old_key and batch_id point into it). */
typedef struct feeder_record {
    feeder_dataset *ds;
    const char *id, *key, *old_key, *batch_id;
    core_avro_op_t op;
    core_avro_kind_t kind;
    int64_t version;
    int64_t event_time;
    core_digest digest;
    /* the record's arguments to the write script, in RESP, at buf[0..resp_len) */
    char *buf;
    size_t resp_len;
    int nargs;
    size_t value_len; /* bytes of the cached value(s) (0 for a delete) */
    /* after feeder_exec */
    feeder_result_t result;
    bool duplicate;   /* STALE with an equal version (a replay) */
    bool moved;       /* UPDATE removed the record under old_key */
    char error[256];
} feeder_record;

/* Free what rec holds and zero it; NULL ok. */
void feeder_record_clear(feeder_record *rec);

typedef struct feeder feeder_t;

/**
 * @brief Bind the feeder's scripts to a Redis handle (borrowed; must outlive
 * the feeder, which frees its scripts itself).
 * @returns NULL on out of memory.
 */
feeder_t *feeder_new(core_redis_t *r, char *errstr, size_t errstr_size);
void feeder_free(feeder_t *f);
core_redis_t *feeder_redis(feeder_t *f);

/**
 * @brief Decode a Kafka value of dataset ds and build its part of the
 * write script's arguments. rec is overwritten (clear it first if it held
 * something). The decoded value and the buffers are the feeder's, reused
 * from record to record; rec gets one allocation of its own.
 * @returns CORE_OK; CORE_ERR_INVALID / NOTFOUND / TOOBIG for a record that
 * cannot be cached (errstr names what is wrong: undecodable, other dataset,
 * empty key); CORE_ERR_NOMEM.
 */
int feeder_prepare(feeder_t *f, feeder_dataset *ds, const core_avro_catalog_t *cat,
                   const void *value, size_t len, feeder_record *rec, char *errstr,
                   size_t errstr_size);

/**
 * @brief Run n prepared records in one pipelined round trip and set each
 * one's result. Records of the same key keep their order. Consecutive
 * records of one dataset share one EVALSHA (up to 500): a Redis error reply
 * to it (a wrong-type key) is every one of its records' FEEDER_RES_ERROR,
 * and then nothing of it was written.
 * @returns CORE_OK (every record has a result; some may be FEEDER_RES_ERROR);
 * CORE_ERR_TRANSIENT (connection lost, timeout, Redis busy: nothing is
 * known; run the same records again once Redis is back: the version guard
 * makes the re-run harmless); CORE_ERR_INVALID (refused credentials),
 * CORE_ERR_NOMEM.
 */
int feeder_exec(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size);

/**
 * @brief feeder_exec in two steps, so that the caller's work overlaps
 * Redis's: feeder_send() sends the n records' scripts (one pipeline) and
 * returns without waiting; feeder_recv() later reads their replies and sets
 * the results. Several batches may be in flight on one feeder; receive them
 * in the order sent, each with the same recs and n it was sent with (not
 * changed meanwhile). A refused script's records are re-run one per script
 * by feeder_recv (after the batches sent since: the version guard keeps the
 * outcome right). feeder_exec (and feeder_get, feeder_purge) may be called
 * while batches are in flight: it first reads their replies.
 * @returns as feeder_exec. After CORE_ERR_TRANSIENT from either, every
 * batch in flight is lost (see core_redis_pipeline_send): send them all
 * again, in their order, once Redis is back.
 */
int feeder_send(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size);
int feeder_recv(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size);

/**
 * @brief The client read path: the cached document of key as JSON text
 * (malloc'd, *out). JSON format: as stored; hash: an object of the fields;
 * avro: the decoded record as natural JSON.
 * @returns CORE_OK, CORE_ERR_NOTFOUND (no such key), TRANSIENT, INVALID.
 */
int feeder_get(feeder_t *f, const feeder_dataset *ds, const core_avro_catalog_t *cat,
               const char *key, char **out, char *errstr, size_t errstr_size);

/**
 * @brief Bulk-reload purge: remove every live record of ds that bulk batch
 * batch_id did not write and whose last write is older than the batch's
 * snapshot time (its earliest event_time). Tombstones are kept. Each chunk is
 * re-checked atomically in Redis, so writes racing with the purge win.
 * @returns CORE_OK with *purged; CORE_ERR_NOTFOUND when the batch never
 * reached this cache; TRANSIENT / INVALID as feeder_exec.
 */
int feeder_purge(feeder_t *f, const feeder_dataset *ds, const char *batch_id, uint64_t *purged,
                 char *errstr, size_t errstr_size);

#endif
