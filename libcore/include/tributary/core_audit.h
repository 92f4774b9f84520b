/* core_audit.h — what a stage did with each record, published to
 * audit.events (schema tributary.AuditEvent, the catalogue's last version:
 * 203, proto/audit_event_v3.avsc) for svc-recon: id, key, dataset, batch,
 * stage, outcome, payload digest, content digest (the business fields
 * alone, core_avro_content_digest()) and the key an UPDATE moved the record
 * away from (old_key).
 *
 * The events go through a producer the caller owns: a transactional
 * producer puts them in the same transaction as the records they describe,
 * so an aborted transaction leaves no audit trail behind it either. */
#ifndef TRIBUTARY_CORE_AUDIT_H
#define TRIBUTARY_CORE_AUDIT_H

#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_kafka.h"

#define CORE_AUDIT_TOPIC "audit.events"
#define CORE_AUDIT_NONE INT64_MIN /* an absent partition, offset, line, version */

typedef struct core_audit core_audit_t;

/** One event. Strings are borrowed for the call; NULL key, topic, reason
 * and digest, and CORE_AUDIT_NONE numbers, are written as null. */
typedef struct core_audit_event {
    const char *id;        /* meta.id of the record (required) */
    const char *key;
    const char *dataset;   /* required */
    const char *batch_id;  /* required ("" when none) */
    const char *outcome;   /* published, rejected, valid, ... (required) */
    const core_digest *digest;
    const char *topic;
    int64_t partition;
    int64_t offset;
    const char *reason;
    int64_t line;
    int64_t version;
    int64_t ts;            /* event time, ms since the epoch; 0: now. A caller
                            * emitting many events at once may pass one
                            * clock reading for all of them */
    /* The record's Kafka value (wire format), when the stage has it: the
     * publisher computes the content digest from it (schema by the wire
     * id, in the publisher's catalogue); bytes that do not decode give a
     * null content_digest. NULL: null, unless content_digest is given. */
    const void *value;
    size_t value_len;
    const core_digest *content_digest; /* given: used instead of value */
    /* An UPDATE that moves the record (meta.old_key, differing from key):
     * the key it leaves, which the sinks delete. NULL otherwise; not written
     * by a schema before version 3. */
    const char *old_key;
} core_audit_event;

/* An event with every optional field absent. */
#define CORE_AUDIT_EVENT_INIT { NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
    CORE_AUDIT_NONE, CORE_AUDIT_NONE, NULL, CORE_AUDIT_NONE, CORE_AUDIT_NONE, 0, NULL, 0, NULL, NULL }

/**
 * @brief An audit publisher for one stage ("ingest", "validator", ...).
 * @param producer borrowed; must outlive the publisher.
 * @param cat borrowed; must outlive the publisher (schema of the events,
 *        schemas of the records whose content digest it computes).
 * @param topic NULL for CORE_AUDIT_TOPIC.
 * @returns NULL with errstr when the catalogue lacks tributary.AuditEvent.
 */
core_audit_t *core_audit_new(core_kafka_producer_t *producer, const core_avro_catalog_t *cat,
                             const char *topic, const char *stage,
                             char *errstr, size_t errstr_size);
void core_audit_free(core_audit_t *a);

/**
 * @brief Encode and produce one event, keyed by the record's key (its id
 * when the key is unknown). Not thread-safe: one publisher per thread.
 * Counts tributary_audit_events_total{stage,outcome}.
 * @returns as core_kafka_produce(); CORE_ERR_INVALID for a missing field.
 */
core_err_t core_audit_emit(core_audit_t *a, const core_audit_event *ev,
                           char *errstr, size_t errstr_size);

/** Encode an event to wire bytes without producing it (tests, tools). */
core_err_t core_audit_encode(core_audit_t *a, const core_audit_event *ev,
                             void **bufp, size_t *lenp, char *errstr, size_t errstr_size);

#endif
