/* core_digest.h — SHA-256 of a record's canonical bytes and an
 * order-independent aggregate of many digests.
 *
 * A record's canonical bytes are its Avro binary body: the Kafka value less
 * the 5-byte Confluent header (magic byte and schema id), so a record keeps
 * its digest when a registry gives its schema another id. Avro binary is
 * deterministic for a value of a given schema (tributary's datasets use no
 * maps, the one Avro type whose order is not fixed).
 *
 * The aggregate is the sum of the digests modulo 2^256 with a count: adding
 * is commutative (order does not matter), a duplicate changes it (unlike
 * XOR, where two copies cancel), and a digest can be subtracted again. */
#ifndef TRIBUTARY_CORE_DIGEST_H
#define TRIBUTARY_CORE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_DIGEST_LEN 32
#define CORE_DIGEST_HEX_LEN 64

typedef struct core_digest {
    uint8_t b[CORE_DIGEST_LEN];
} core_digest;

typedef struct core_digest_agg {
    uint8_t sum[CORE_DIGEST_LEN]; /* big-endian 256-bit integer */
    uint64_t count;
} core_digest_agg;

void core_digest_sha256(const void *buf, size_t len, core_digest *out);

/* Digest of a Kafka record value: skips the Confluent header when present
 * (len >= 5 and byte 0 is 0x00), hashes the rest. */
void core_digest_record(const void *value, size_t len, core_digest *out);

/* hex: at least 65 bytes; lower-case, NUL-terminated. */
void core_digest_to_hex(const core_digest *d, char *hex);
/* 0 on success; -1 when hex is not exactly 64 hex digits. */
int core_digest_from_hex(const char *hex, core_digest *out);
bool core_digest_equal(const core_digest *a, const core_digest *b);

void core_digest_agg_init(core_digest_agg *a);
void core_digest_agg_add(core_digest_agg *a, const core_digest *d);
void core_digest_agg_remove(core_digest_agg *a, const core_digest *d);
void core_digest_agg_merge(core_digest_agg *a, const core_digest_agg *b);
bool core_digest_agg_equal(const core_digest_agg *a, const core_digest_agg *b);
/* hex: at least 65 bytes: the sum, count not included. */
void core_digest_agg_to_hex(const core_digest_agg *a, char *hex);

#endif
