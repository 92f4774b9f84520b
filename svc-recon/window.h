/* window.h — svc-recon's event-time windows (window.ms, 10 minutes by
 * default), kept in the same transaction as the events (state.c):
 *
 *   windows         per (dataset, window, stage, outcome): count, audit
 *                   bytes, late count, the additive aggregate (sum mod 2^256
 *                   of the elements, as numeric), first and last event time;
 *   window_latency  per (dataset, window, hop, bucket): a log-bucket
 *                   histogram (4 buckets per power of two of milliseconds)
 *                   of the time between stages of one record: ingest ->
 *                   validator, validator -> cache-feeder, validator ->
 *                   persister, in the window of the later event. Mergeable:
 *                   windows add bucket by bucket;
 *   watermarks      per (stage, audit partition): the newest event time;
 *   closings        per batch or window: open, closed or reopened
 *                   (statement.h closes them).
 *
 * An event is late when its time is older than its stage's watermark on
 * its audit partition minus grace.ms: it is counted (n and late), never
 * dropped, and a window or batch it falls in that was closed is reopened,
 * so the next close writes an amended statement.
 *
 * Latency needs the earlier stage's time of the same record: svc-recon
 * keeps the newest RECON_LAT_SLOTS ids in a direct-mapped cache (events
 * of a key come in order on one audit partition). A record whose earlier
 * event was applied before a restart, or evicted, gives no sample (counted
 * in the histogram's bucket -1, "unknown"); counts and digests never depend
 * on the cache. */
#ifndef SVC_RECON_WINDOW_H
#define SVC_RECON_WINDOW_H

#include "event.h"

#include "tributary/core_common.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define RECON_LAT_SLOTS (1u << 20)
enum { RH_INGEST_VALIDATOR, RH_VALIDATOR_CACHE, RH_VALIDATOR_PERSISTER, RH_COUNT };
extern const char *const recon_hop_names[RH_COUNT];

/* The latency cache (owned by the state, outlives applies). */
typedef struct recon_lat_cache recon_lat_cache;
recon_lat_cache *recon_lat_cache_new(void);
void recon_lat_cache_free(recon_lat_cache *c);

/* The window an event time falls in (floor to window_ms). */
int64_t recon_window_start(int64_t ts, int64_t window_ms);
/* The histogram bucket of a latency in ms (0: below 1 ms) and its upper bound. */
int recon_lat_bucket(int64_t ms);
double recon_lat_bucket_upper(int b);

/* The accumulator of one apply. */
typedef struct recon_win_acc recon_win_acc;

/**
 * @brief Begin: read the watermarks (inside the apply's transaction).
 * @returns NULL with errstr on failure (PostgreSQL, memory).
 */
recon_win_acc *recon_win_begin(PGconn *c, const char *schema, int64_t window_ms, int64_t grace_ms,
                               recon_lat_cache *cache, char *errstr, size_t errstr_size);
/* Count one applied event (bytes: the audit record's size). 0, or -1 on ENOMEM. */
int recon_win_add(recon_win_acc *a, const recon_event *ev, int32_t audit_partition, size_t bytes,
                  const core_digest *element);
/* Write everything counted, in the caller's transaction. */
core_err_t recon_win_write(recon_win_acc *a, int64_t now_ms, char *errstr, size_t errstr_size);
void recon_win_free(recon_win_acc *a);

/* 32 big-endian bytes as a decimal string (buf of at least 80 bytes). */
void recon_u256_decimal(const uint8_t *be, char *buf);

#endif
