/* core_retry.c — exponential backoff with jitter and a cap; a circuit breaker. */
#include "tributary/core_retry.h"
#include "tributary/core_common.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Thread_local uint64_t rng_state;

void core_backoff_seed(uint64_t seed)
{
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
        seed ^= (uint64_t)(uintptr_t)&rng_state;
    }
    rng_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* xorshift64*: fast, good enough for jitter, never for secrets. */
static double rng_unit(void)
{
    if (rng_state == 0)
        core_backoff_seed(0);
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

int64_t core_backoff_ceiling_ms(const core_backoff *b, int attempt)
{
    double d;

    if (attempt < 1)
        attempt = 1;
    d = (double)b->base_ms * pow(b->multiplier > 1.0 ? b->multiplier : 1.0, attempt - 1);
    if (b->max_ms > 0 && (d > (double)b->max_ms || !isfinite(d)))
        d = (double)b->max_ms;
    return d < 0 ? 0 : (int64_t)d;
}

int64_t core_backoff_delay_ms(const core_backoff *b, int attempt)
{
    double d = (double)core_backoff_ceiling_ms(b, attempt);
    double j = b->jitter < 0 ? 0 : b->jitter > 1 ? 1 : b->jitter;

    return (int64_t)(d * (1.0 - j) + d * j * rng_unit());
}

bool core_backoff_exhausted(const core_backoff *b, int attempt)
{
    return b->max_attempts > 0 && attempt > b->max_attempts;
}

struct core_breaker {
    pthread_mutex_t lock;
    char *name;
    int failure_threshold;
    int64_t open_ms;
    int half_open_max;
    core_breaker_state_t state;
    int failures;          /* consecutive, while closed */
    int trials;            /* calls let through while half-open */
    int64_t opened_at;
    core_metric_t *m_state;
    core_metric_family_t *m_transitions;
};

const char *core_breaker_state_name(core_breaker_state_t s)
{
    switch (s) {
    case CORE_BREAKER_CLOSED: return "closed";
    case CORE_BREAKER_OPEN: return "open";
    case CORE_BREAKER_HALF_OPEN: return "half_open";
    }
    return "?";
}

core_breaker_t *core_breaker_new(const char *name, int failure_threshold,
                                 int64_t open_ms, int half_open_max)
{
    static const char *const name_label[] = { "name", NULL };
    static const char *const trans_labels[] = { "name", "to", NULL };
    core_breaker_t *b = calloc(1, sizeof(*b));
    core_metric_family_t *f;

    if (!b)
        return NULL;
    if (!(b->name = strdup(name ? name : "breaker"))) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->failure_threshold = failure_threshold > 0 ? failure_threshold : 1;
    b->open_ms = open_ms > 0 ? open_ms : 1000;
    b->half_open_max = half_open_max > 0 ? half_open_max : 1;
    f = core_metrics_family(core_metrics_global(), CORE_METRIC_GAUGE, "tributary_circuit_state",
                            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                            name_label, NULL, 0, NULL, 0);
    b->m_state = f ? core_metrics_series1(f, b->name) : NULL;
    core_metric_set(b->m_state, 0);
    b->m_transitions = core_metrics_family(core_metrics_global(), CORE_METRIC_COUNTER,
                                           "tributary_circuit_transitions_total",
                                           "Circuit breaker state changes",
                                           trans_labels, NULL, 0, NULL, 0);
    return b;
}

void core_breaker_free(core_breaker_t *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b->name);
    free(b);
}

/* Caller holds b->lock. */
static void set_state(core_breaker_t *b, core_breaker_state_t s, int64_t now_ms)
{
    if (b->state == s)
        return;
    b->state = s;
    b->trials = 0;
    if (s == CORE_BREAKER_OPEN)
        b->opened_at = now_ms;
    if (s == CORE_BREAKER_CLOSED)
        b->failures = 0;
    core_metric_set(b->m_state, (double)s);
    if (b->m_transitions)
        core_metric_inc(core_metrics_series2(b->m_transitions, b->name, core_breaker_state_name(s)));
    core_log_(s == CORE_BREAKER_OPEN ? CORE_LOG_WARN : CORE_LOG_INFO, "circuit breaker state changed",
              CLF_S("breaker", b->name), CLF_S("state", core_breaker_state_name(s)));
}

/* Caller holds b->lock: an open breaker past its time turns half-open. */
static void refresh(core_breaker_t *b, int64_t now_ms)
{
    if (b->state == CORE_BREAKER_OPEN && now_ms - b->opened_at >= b->open_ms)
        set_state(b, CORE_BREAKER_HALF_OPEN, now_ms);
}

bool core_breaker_allow(core_breaker_t *b, int64_t now_ms)
{
    bool ok;

    pthread_mutex_lock(&b->lock);
    refresh(b, now_ms);
    switch (b->state) {
    case CORE_BREAKER_CLOSED:
        ok = true;
        break;
    case CORE_BREAKER_HALF_OPEN:
        ok = b->trials < b->half_open_max;
        if (ok)
            b->trials++;
        break;
    default:
        ok = false;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void core_breaker_success(core_breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    b->failures = 0;
    if (b->state != CORE_BREAKER_CLOSED)
        set_state(b, CORE_BREAKER_CLOSED, now_ms);
    pthread_mutex_unlock(&b->lock);
}

void core_breaker_failure(core_breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    refresh(b, now_ms);
    if (b->state == CORE_BREAKER_HALF_OPEN) {
        set_state(b, CORE_BREAKER_OPEN, now_ms);
    } else if (b->state == CORE_BREAKER_CLOSED && ++b->failures >= b->failure_threshold) {
        set_state(b, CORE_BREAKER_OPEN, now_ms);
    }
    pthread_mutex_unlock(&b->lock);
}

core_breaker_state_t core_breaker_get_state(core_breaker_t *b, int64_t now_ms)
{
    core_breaker_state_t s;

    pthread_mutex_lock(&b->lock);
    refresh(b, now_ms);
    s = b->state;
    pthread_mutex_unlock(&b->lock);
    return s;
}

int64_t core_breaker_wait_ms(core_breaker_t *b, int64_t now_ms)
{
    int64_t w = 0;

    pthread_mutex_lock(&b->lock);
    refresh(b, now_ms);
    if (b->state == CORE_BREAKER_OPEN)
        w = b->opened_at + b->open_ms - now_ms;
    pthread_mutex_unlock(&b->lock);
    return w > 0 ? w : 0;
}
