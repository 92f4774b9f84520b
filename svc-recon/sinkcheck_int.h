/* sinkcheck_int.h — what the sinks' checks (sinkcheck_pg.c,
 * sinkcheck_redis.c, sinkcheck_mongo.c) share, from sinkcheck.c: the
 * findings, the expected records by key, the verdict of one record, and
 * readers of stored text. Not for the rest of svc-recon (sinkcheck.h). */
#ifndef SVC_RECON_SINKCHECK_INT_H
#define SVC_RECON_SINKCHECK_INT_H

#include "sinkcheck.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SINK_PG "postgres"
#define SINK_REDIS "redis"
#define SINK_MONGO "mongodb"

typedef struct exp_index {
    const sinkcheck_expect **by_key; /* sorted */
    size_t n;
} exp_index;

/* What a sink holds for a key. */
typedef struct stored {
    bool present;
    int64_t version;
    const char *id;          /* may be NULL when the sink keeps none */
    bool have_digest;
    core_digest content;
} stored;

/* Add a finding (detail printf-style, never a field's value). */
core_err_t sinkcheck_add_finding(sinkcheck_result *r, sinkcheck_verdict_t v, const char *sink,
                                 const char *key, const char *id, int64_t stored_version,
                                 const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* qsort order of findings: by sink, then key. */
int sinkcheck_finding_cmp(const void *a, const void *b);
/* The expected records of p sorted by key (each key once). */
core_err_t sinkcheck_exp_build(exp_index *ix, const sinkcheck_params *p, char *errstr,
                               size_t errstr_size);
const sinkcheck_expect *sinkcheck_exp_find(const exp_index *ix, const char *key, size_t *pos);
/* The verdict for one expected key, or -1 when it agrees (detail set). */
int sinkcheck_judge(const sinkcheck_expect *e, const stored *s, char *detail, size_t size);
/* A decimal int64 (INT64_MIN when it is not one). */
int64_t sinkcheck_parse_i64(const char *s);
/* Is a field of this Avro type (JSON form) a string in natural JSON? */
bool sinkcheck_natural_is_string(const cJSON *t);
/* JSON text parsed keeping every number's text exact. */
cJSON *sinkcheck_parse_exact(const char *s, size_t len);

#endif
