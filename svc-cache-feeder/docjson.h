/* docjson.h — svc-cache-feeder's value text without a cJSON tree: an Avro
 * record written straight into a reused buffer as natural JSON, byte for
 * byte what cJSON_PrintUnformatted(core_avro_to_json()) prints (see
 * core_avro.h for the mapping), and the hash format's per-field values.
 *
 * A plan is compiled once per schema from the schema's JSON (logical types
 * are not in avro-c's schema). A schema the compiler does not understand
 * gets no plan: the caller then takes the cJSON path, which stays the
 * reference; feeder.c also compares both on the first record of every
 * schema and keeps to the cJSON path when they differ.
 *
 * Threads: a plan is read-only once built; buffers belong to one thread. */
#ifndef SVC_CACHE_FEEDER_DOCJSON_H
#define SVC_CACHE_FEEDER_DOCJSON_H

#include "tributary/core_avro.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A growable byte buffer, reused between records (len = 0 to empty it). */
typedef struct feeder_buf {
    char *p;
    size_t len, cap;
} feeder_buf;

/* Make room for more bytes. @returns CORE_OK or CORE_ERR_NOMEM. */
int feeder_buf_grow(feeder_buf *b, size_t more);
void feeder_buf_free(feeder_buf *b);

static inline int feeder_buf_put(feeder_buf *b, const void *s, size_t n)
{
    if (b->cap - b->len < n && feeder_buf_grow(b, n) != CORE_OK)
        return CORE_ERR_NOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return CORE_OK;
}

/* Decimal text of v, at most 20 characters, into out; returns its length. */
size_t feeder_u64_text(uint64_t v, char *out);
size_t feeder_i64_text(int64_t v, char *out);

typedef struct feeder_jplan feeder_jplan;

/* @returns the plan, or NULL when the schema has a construct the writer
 * does not handle (or out of memory): use core_avro_to_json() then. */
feeder_jplan *feeder_jplan_new(const core_avro_schema_t *schema);
void feeder_jplan_free(feeder_jplan *p);

/**
 * @brief Append the record as natural JSON text to out.
 * @returns CORE_OK; CORE_ERR_INVALID when the value does not match the
 * plan or a decimal is wider than 128 bits (take the cJSON path: it says
 * why); CORE_ERR_NOMEM. out may hold a partial text after an error.
 */
int feeder_json_write(const feeder_jplan *p, avro_value_t *record, feeder_buf *out);

/* Top-level fields of the plan's record, for the hash format. */
size_t feeder_jplan_nfields(const feeder_jplan *p);
const char *feeder_jplan_field_name(const feeder_jplan *p, size_t i, size_t *lenp);

/**
 * @brief The hash format's value of top-level field i of record: a string
 * (or enum symbol, timestamp, decimal, bytes text) as it is, anything else
 * as JSON text; *skip is set for null, which the hash leaves out.
 * @returns as feeder_json_write.
 */
int feeder_json_field(const feeder_jplan *p, size_t i, avro_value_t *record, feeder_buf *out,
                      bool *skip);

#endif
