/* core_dlq.h — the headers of tributary's records, and the dead-letter
 * record every stage writes the same way.
 *
 * Kept across every stage, retry, dead-letter and replay, as they are (the
 * last of each): tb.id (meta.id), tb.batch, tb.ingest.ts (ms since the epoch
 * the line was read: end-to-end latency), and on a replayed record tb.replay
 * (svc-recon's replay id) and tb.replay.of (the DLQ record svc-validator's
 * replay took it from: topic/partition/offset). A replayed record keeps
 * them, so its id and latency survive a trip through a DLQ, and its copies
 * on .valid, .retry and the DLQ say which replay made them.
 *
 * A dead-letter record keeps the original key and value bytes and carries
 * Kafka Connect's dead-letter header names, so tools made for Connect's
 * DLQs read ours:
 *   __connect.errors.topic / .partition / .offset   where the record was read
 *   __connect.errors.stage                          VALUE_CONVERTER (undecodable),
 *                                                   TRANSFORMATION (validation),
 *                                                   SINK_PREPARE, SINK_WRITE (sinks)
 *   __connect.errors.class.name                     who refused it (svc-validator, a sink plugin)
 *   __connect.errors.exception.class.name           tributary.<who>.<Kind>
 *   __connect.errors.exception.message              the reason (never a value)
 * and ours: tb.error.class (invalid | poison | exhausted), tb.error.field
 * (the field refused, when one is), tb.attempt (attempts made, when
 * retried). A retry or a replay replaces these headers, never appends
 * them (a record that piled up headers on every retry would grow until
 * Kafka refuses it). */
#ifndef TRIBUTARY_CORE_DLQ_H
#define TRIBUTARY_CORE_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_HDR_ID "tb.id"
#define CORE_HDR_BATCH "tb.batch"
#define CORE_HDR_INGEST_TS "tb.ingest.ts"
#define CORE_HDR_ATTEMPT "tb.attempt"
#define CORE_HDR_NOT_BEFORE "tb.not_before"
#define CORE_HDR_REPLAY "tb.replay"
#define CORE_HDR_REPLAY_OF "tb.replay.of"
#define CORE_HDR_ERROR_CLASS "tb.error.class"
#define CORE_HDR_ERROR_FIELD "tb.error.field"
#define CORE_HDR_ERROR_MESSAGE "tb.error.message"

/* The headers kept from a record's input, in this order. */
#define CORE_DLQ_NKEPT 5
extern const char *const core_dlq_kept[CORE_DLQ_NKEPT];

/* Why a record is dead. Strings borrowed for the call. */
typedef struct core_dlq_error {
    const char *stage;       /* __connect.errors.stage */
    const char *who;         /* __connect.errors.class.name */
    const char *exception;   /* __connect.errors.exception.class.name */
    const char *message;     /* the reason; NULL: "refused" */
    const char *error_class; /* tb.error.class: invalid | poison | exhausted */
    const char *field;       /* tb.error.field; NULL: none ("" is written empty) */
    int64_t attempt;         /* tb.attempt; < 0: none */
} core_dlq_error;

/**
 * @brief A new header list with the kept headers of m (the last of each,
 * as they are; nothing else of m's) and room for nadd more.
 * @returns the list (the caller's; rd_kafka_headers_destroy() or hand it
 * to a produce call), or NULL when out of memory.
 */
rd_kafka_headers_t *core_dlq_headers_kept(const rd_kafka_message_t *m, size_t nadd);

/**
 * @brief The same, taking m's own list over when it holds only kept
 * headers, each once and in order (what svc-ingest writes): nothing is
 * copied then and m has no headers after. NULL when m has none and nadd is
 * 0 (a record without headers stays without).
 */
rd_kafka_headers_t *core_dlq_headers_take(rd_kafka_message_t *m, size_t nadd);

/** Add the dead-letter headers of e for m (read from m's topic, partition
 * and offset) to h. */
void core_dlq_headers_add(rd_kafka_headers_t *h, const rd_kafka_message_t *m,
                          const core_dlq_error *e);

/** The headers of a dead-letter record of m: kept ones, then e's. */
rd_kafka_headers_t *core_dlq_headers(const rd_kafka_message_t *m, const core_dlq_error *e);

/** A header of text, and one of a decimal integer (as Kafka Connect writes). */
void core_dlq_add_str(rd_kafka_headers_t *h, const char *name, const char *s);
void core_dlq_add_int(rd_kafka_headers_t *h, const char *name, int64_t x);

#endif
