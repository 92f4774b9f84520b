/* cache_feeder.h — svc-cache-feeder's pieces around core_sink: its
 * configuration (config.c) and its Redis sink plugin (sink_redis.c).
 * main.c joins them: the configuration builds the datasets and the Redis
 * handle, the start-up policy awaits Redis and the brokers, then
 * core_sink_run() drives the plugin. feeder.h holds the Redis layout and
 * the version guard. */
#ifndef SVC_CACHE_FEEDER_CACHE_FEEDER_H
#define SVC_CACHE_FEEDER_CACHE_FEEDER_H

#include "feeder.h"

#include "tributary/core_config.h"
#include "tributary/core_redis.h"
#include "tributary/core_service.h"
#include "tributary/core_sink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- configuration (config.c) ------------------------------------------------ */

struct feeder_conf {
    core_cfg_list datasets;
    core_redis_config redis; /* libcore's redis.* keys */
    char *prefix;
    char *format;
    core_cfg_list format_by_dataset;
    int64_t ttl_s;
    core_cfg_list ttl_by_dataset;
    core_cfg_list purge_datasets;
    int64_t batch_size;
    int64_t batch_wait_ms;
    int64_t batch_inflight;
    int64_t commit_interval_ms;
    char *topic_prefix;
    char *topic_template; /* deprecated (topic.prefix): "{dataset}.valid" */
    char *group_id;
    char *group_instance_id;
    bool audit_enabled;
    char *audit_topic;
};

/* The service's key table; values land in a struct feeder_conf. */
extern const core_config_key feeder_keys[];

/**
 * @brief The configured datasets, checked (per-dataset lists naming
 * configured datasets, the prefix, formats, TTLs, cache.purge), in the
 * order of conf->datasets.
 * @returns the array (conf->datasets.n entries; feeder_datasets_free), or
 * NULL with errstr naming the key.
 */
feeder_dataset *feeder_datasets_build(const struct feeder_conf *conf,
                                      const core_avro_catalog_t *cat, char *errstr,
                                      size_t errstr_size);
void feeder_datasets_free(feeder_dataset *ds, size_t n);

/* ---- the Redis sink plugin (sink_redis.c) ---------------------------------------- */

/* What the plugin borrows from main (opts.plugin_conf): everything must
 * outlive core_sink_run(). ds is parallel to the sink's datasets. */
typedef struct feeder_sink_conf {
    feeder_t *f;
    core_redis_t *r;
    feeder_dataset *ds;
    size_t nds;
    const core_avro_catalog_t *cat;
} feeder_sink_conf;

/* The plugin: name "redis", outcomes cached / deleted / stale_skipped and
 * rejected, pipelined send/recv, engine-kept feeder_record per record. */
extern const core_sink_plugin feeder_sink_plugin;

/* Register the feeder's own metrics (tributary_cache_*) once, before the
 * sink runs. */
void feeder_metrics_init(void);

/* Count n records purged from dataset's cache (tributary_cache_purged_total). */
void feeder_metric_purged(const char *dataset, uint64_t n);

/**
 * @brief Readiness of the Redis connection as the feeder last saw it
 * (false until the start-up probe connected, false from a failed write
 * until the next good one): "not connected" when false. Thread-safe; a
 * core_http probe (opaque unused).
 */
bool feeder_redis_ready(void *opaque, char *reason, size_t reason_size);
void feeder_redis_set_up(bool up);

#endif
