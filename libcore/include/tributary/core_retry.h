/* core_retry.h — exponential backoff with jitter and a cap; a circuit breaker. */
#ifndef TRIBUTARY_CORE_RETRY_H
#define TRIBUTARY_CORE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/**
 * Delay before attempt n (1-based) is min(max_ms, base_ms * multiplier^(n-1)),
 * then jittered down by up to `jitter` of itself: uniform in
 * [d * (1 - jitter), d]. jitter = 1 is AWS's "full jitter"; 0 none.
 * max_attempts 0 means unlimited.
 */
typedef struct core_backoff {
    int64_t base_ms;
    int64_t max_ms;
    double multiplier;
    double jitter;
    int max_attempts;
} core_backoff;

#define CORE_BACKOFF_DEFAULT { 100, 30000, 2.0, 0.5, 0 }

/* Delay in ms before attempt n (n >= 1). Thread-safe (thread-local RNG). */
int64_t core_backoff_delay_ms(const core_backoff *b, int attempt);
/* The un-jittered delay (what the jitter is taken from). */
int64_t core_backoff_ceiling_ms(const core_backoff *b, int attempt);
/* True when attempt n is beyond max_attempts. */
bool core_backoff_exhausted(const core_backoff *b, int attempt);
/* Seed this thread's jitter RNG (tests); 0 reseeds from time and pid. */
void core_backoff_seed(uint64_t seed);

typedef enum core_breaker_state {
    CORE_BREAKER_CLOSED = 0,    /* calls flow */
    CORE_BREAKER_OPEN = 1,      /* calls refused until open_ms have passed */
    CORE_BREAKER_HALF_OPEN = 2, /* up to half_open_max trial calls */
} core_breaker_state_t;

typedef struct core_breaker core_breaker_t;

/**
 * @brief A breaker that opens after `failure_threshold` consecutive
 * failures, stays open `open_ms`, then lets `half_open_max` trial calls
 * through: one success closes it, one failure opens it again. Exposes
 * tributary_circuit_state{name} (0 closed, 1 open, 2 half-open) and
 * tributary_circuit_transitions_total{name,to}. Thread-safe (own mutex).
 */
core_breaker_t *core_breaker_new(const char *name, int failure_threshold,
                                 int64_t open_ms, int half_open_max);
void core_breaker_free(core_breaker_t *b);

/* May a call go through now? now_ms: core_mono_ms(). */
bool core_breaker_allow(core_breaker_t *b, int64_t now_ms);
void core_breaker_success(core_breaker_t *b, int64_t now_ms);
void core_breaker_failure(core_breaker_t *b, int64_t now_ms);
core_breaker_state_t core_breaker_get_state(core_breaker_t *b, int64_t now_ms);
/* Ms until an open breaker lets a trial call through (0 if not open). */
int64_t core_breaker_wait_ms(core_breaker_t *b, int64_t now_ms);
const char *core_breaker_state_name(core_breaker_state_t s);

#endif
