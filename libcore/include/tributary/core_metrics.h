/* core_metrics.h — counters, gauges and histograms with labels, rendered in
 * Prometheus text exposition format (version 0.0.4).
 *
 * A family is declared once (name, help, label names); a series is one
 * combination of label values, created on first use and kept until the
 * registry is freed. Updates are lock-free atomics on the series; creating
 * a series and rendering take the registry's mutex. Any thread may update
 * and render.
 *
 * Names must start with "tributary_"; counters end in "_total"; durations
 * are histograms in seconds (DESIGN.md). */
#ifndef TRIBUTARY_CORE_METRICS_H
#define TRIBUTARY_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct core_metrics core_metrics_t;           /* a registry */
typedef struct core_metric_family core_metric_family_t;
typedef struct core_metric core_metric_t;             /* one labelled series */

typedef enum core_metric_kind {
    CORE_METRIC_COUNTER,
    CORE_METRIC_GAUGE,
    CORE_METRIC_HISTOGRAM,
} core_metric_kind_t;

core_metrics_t *core_metrics_new(void);
void core_metrics_free(core_metrics_t *m);

/* The process-wide registry the services and libcore modules use. Created on
 * first call; freed by core_metrics_global_free(). */
core_metrics_t *core_metrics_global(void);
void core_metrics_global_free(void);

/**
 * @brief Declare a family. Returns the existing family when one of the same
 * name, kind and label names exists; NULL (and errstr) on a clash or a bad
 * name. label_names: up to 8 names, NULL-terminated array or NULL for none.
 * buckets: upper bounds for a histogram (ascending; +Inf is implicit), or
 * NULL for core_metrics_default_buckets.
 */
core_metric_family_t *core_metrics_family(core_metrics_t *m, core_metric_kind_t kind,
                                          const char *name, const char *help,
                                          const char *const *label_names,
                                          const double *buckets, size_t nbuckets,
                                          char *errstr, size_t errstr_size);

/* Latency buckets in seconds, 0.5 ms .. 10 s. */
extern const double core_metrics_default_buckets[];
extern const size_t core_metrics_default_nbuckets;

/**
 * @brief The series for these label values (as many as the family has label
 * names; NULL-terminated array, or NULL when the family has none). Created on
 * first use. The pointer stays valid until the registry is freed: look it up
 * once, update it often. Returns NULL only on allocation failure.
 */
core_metric_t *core_metrics_series(core_metric_family_t *f, const char *const *label_values);

/* Convenience: one-label / two-label lookups. */
core_metric_t *core_metrics_series1(core_metric_family_t *f, const char *v1);
core_metric_t *core_metrics_series2(core_metric_family_t *f, const char *v1, const char *v2);

/* Updates; all accept NULL (a no-op) so optional metrics cost nothing.
 * An update that does not fit the kind is ignored: a negative or NaN add to
 * a counter, set on a counter or histogram, observe on a counter or gauge,
 * inc/add on a histogram. Lock-free; any thread. */
void core_metric_inc(core_metric_t *s);              /* counter/gauge += 1 */
void core_metric_add(core_metric_t *s, double v);    /* counter (v >= 0) / gauge */
void core_metric_set(core_metric_t *s, double v);    /* gauge */
void core_metric_observe(core_metric_t *s, double v);/* histogram */
double core_metric_value(const core_metric_t *s);    /* counter/gauge value; histogram count */
double core_metric_sum(const core_metric_t *s);      /* histogram sum of observations; 0 otherwise */

/* Drop every series of a family (e.g. per-partition lag after a revoke).
 * Dropped series are no longer rendered; their memory stays valid until the
 * registry is freed (a kept pointer is safe but its updates are not shown).
 * Looking the same label values up again revives the series at zero. */
void core_metrics_family_clear(core_metric_family_t *f);

/**
 * @brief Render the registry in Prometheus text format into a malloc'd,
 * NUL-terminated buffer the caller frees. Families sorted by name.
 */
char *core_metrics_render(core_metrics_t *m, size_t *lenp);

#endif
