/* event.h — one audit event as svc-recon reads it from audit.events.
 *
 * The decoder reads the AuditEvent layouts of proto/audit_event.avsc and
 * audit_event_v2.avsc (catalogue ids 201, 202; with a Schema Registry the
 * ids the registry gave them: recon_audit_ids) directly from the wire bytes, bound-checked, without
 * avro-c: no allocation, every string a slice of the Kafka value (valid
 * while the message is). Bytes from Kafka are untrusted: anything that is
 * not exactly one well-formed event (a short buffer, a length beyond the
 * bytes left, a varint over 10 bytes, trailing bytes, a string with a NUL
 * or invalid UTF-8, which PostgreSQL's text would refuse, a digest that is
 * not 64 hex digits, an unknown stage or outcome) is refused with a reason,
 * never half-read. */
#ifndef SVC_RECON_EVENT_H
#define SVC_RECON_EVENT_H

#include "tributary/core_digest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECON_AUDIT_SCHEMA_ID 201    /* AuditEvent v1 */
#define RECON_AUDIT_SCHEMA_ID_V2 202 /* v2: appends content_digest */
#define RECON_AUDIT_SCHEMA_ID_V3 203 /* v3: appends old_key */
#define RECON_FIELD_MAX 4096  /* longest string field accepted */
#define RECON_NONE INT64_MIN  /* an absent number */

/* The stages in pipeline order; a stage's index orders the report. */
enum { RS_INGEST, RS_VALIDATOR, RS_CACHE, RS_PERSISTER, RS_COUNT };
extern const char *const recon_stage_names[RS_COUNT];
/* The stage's index, or -1. */
int recon_stage_index(const char *s, size_t len);

/* The index of an outcome among the stage's (stable, the order of
 * core_audit's callers), or -1; and its name (NULL past the last). */
int recon_outcome_index(int stage, const char *s, size_t len);
const char *recon_outcome_name(int stage, int i);
#define RECON_OUTCOMES_MAX 8

/* A slice of the wire bytes; p NULL for an absent (null) field. */
typedef struct recon_str {
    const char *p;
    size_t len;
} recon_str;

typedef struct recon_event {
    recon_str id, key, dataset, batch_id, stage, outcome, topic, reason;
    recon_str old_key;          /* v3: the key an UPDATE moved the record from */
    bool has_digest;
    core_digest content;  /* v2's content_digest, when has_content */
    bool has_content;
    core_digest digest;
    int64_t ts;                 /* ms since the epoch */
    int64_t partition, offset;  /* of the record the stage read or wrote; RECON_NONE */
    int64_t line, version;      /* RECON_NONE when absent */
    int stage_ix;               /* RS_* */
} recon_event;

/**
 * @brief Decode one Kafka value (Confluent header + AuditEvent body) whose
 * schema id is the catalogue's 201 (v1), 202 (v2) or 203 (v3).
 * @returns 0, or -1 with why (a static string naming the field) in *why.
 */
int recon_event_decode(const void *buf, size_t len, recon_event *ev, const char **why);

/* Which AuditEvent layout each schema id is: with a Schema Registry the ids
 * are the registry's, so an id is looked up in the catalogue (which fetches
 * it) and its schema compared with the catalogue's v1, v2 and v3
 * (avro_schema_equal); answers are kept (ids never change their schema).
 * One per thread. */
#define RECON_AUDIT_IDS_MAX 32
typedef struct recon_audit_ids {
    const struct core_avro_catalog *cat; /* NULL: 201, 202 and 203 only */
    uint32_t id[RECON_AUDIT_IDS_MAX];
    int version[RECON_AUDIT_IDS_MAX];    /* 1, 2, 3; 0: not an AuditEvent layout */
    size_t n;
} recon_audit_ids;

/** The layout of id: 1, 2, or 0 (not an AuditEvent this decoder reads, or
 * the id could not be resolved now: then not remembered). */
int recon_audit_ids_version(recon_audit_ids *a, uint32_t id);

/** recon_event_decode() for the ids \p a resolves (NULL: 201 and 202). */
int recon_event_decode_ids(recon_audit_ids *a, const void *buf, size_t len, recon_event *ev,
                           const char **why);

/* Whether s equals the NUL-terminated t. */
bool recon_str_is(recon_str s, const char *t);

/* The element the aggregates add up for one event: SHA-256 of the id, a
 * zero byte and the 32 digest bytes (zeros when there is no digest), so
 * two stages agree only on the same ids with the same digests. */
void recon_event_element(const recon_event *ev, core_digest *out);
void recon_element(const char *id, size_t idlen, const core_digest *dg, core_digest *out);

/* The drill-down's buckets: the first 10 bits of SHA-256(id), so every
 * stage's events of one record fall in one bucket; and the first 8 bytes of
 * an element as a signed big-endian integer, which PostgreSQL sums per
 * bucket. Both have an SQL twin in state.c's migration 2. */
#define RECON_BUCKETS 1024
int recon_bucket(const char *id, size_t idlen);
int64_t recon_element_prefix(const core_digest *el);

#endif
