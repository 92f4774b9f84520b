/* config.c — svc-cache-feeder's configuration: its key table (the redis.*
 * keys are libcore's, CORE_REDIS_CONFIG_KEYS) and the datasets built from
 * it, every check naming its key. */
#include "cache_feeder.h"

#include "tributary/core_audit.h"
#include "tributary/core_topics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct feeder_conf, field), help, lo, hi, ch }

const core_config_key feeder_keys[] = {
    K("dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, datasets,
      "Datasets to cache (repeat the flag or comma-separate)", 0, 0, NULL),
    CORE_REDIS_CONFIG_KEYS(struct feeder_conf, redis),
    K("cache.prefix", CORE_CFG_STR, "tb", 0, prefix,
      "Key prefix: records live at <prefix>:<dataset>:<key>", 0, 0, NULL),
    K("cache.format", CORE_CFG_ENUM, "json", 0, format,
      "How a record is stored: json document, hash of its fields, or the avro wire bytes", 0, 0,
      "json|hash|avro"),
    K("cache.format.by.dataset", CORE_CFG_LIST, NULL, 0, format_by_dataset,
      "Per-dataset format, e.g. payee=hash,account_setting=json", 0, 0, NULL),
    K("cache.ttl.s", CORE_CFG_INT, "0", 0, ttl_s, "TTL of cached records in seconds (0: none)", 0,
      31536000.0 * 10, NULL),
    K("cache.ttl.by.dataset", CORE_CFG_LIST, NULL, 0, ttl_by_dataset,
      "Per-dataset TTL in seconds, e.g. account_setting=86400", 0, 0, NULL),
    K("cache.purge", CORE_CFG_LIST, NULL, 0, purge_datasets,
      "Datasets whose completed bulk loads may purge the records they did not write (purge subcommand)",
      0, 0, NULL),
    K("batch.size", CORE_CFG_INT, "100", 0, batch_size,
      "Commands per pipelined round trip to Redis", 1, 10000, NULL),
    K("batch.wait.ms", CORE_CFG_INT, "5", 0, batch_wait_ms,
      "Longest wait for a batch to fill before it is sent", 0, 60000, NULL),
    K("batch.inflight", CORE_CFG_INT, "2", 0, batch_inflight,
      "Batches left in flight in Redis while the next is prepared (0: wait for each batch's replies)",
      0, 64, NULL),
    K("commit.interval.ms", CORE_CFG_INT, "1000", 0, commit_interval_ms,
      "How often the offsets of written batches are committed", 0, 600000, NULL),
    CORE_TOPICS_CONFIG_KEYS(struct feeder_conf, topic_prefix),
    K("topic.template", CORE_CFG_STR, NULL, 0, topic_template,
      "Deprecated (use topic.prefix): the input topic of a dataset, {dataset} standing for its "
      "name", 0, 0, NULL),
    K("group.id", CORE_CFG_STR, "tributary-cache-feeder", 0, group_id, "Kafka consumer group", 0, 0,
      NULL),
    K("group.instance.id", CORE_CFG_STR, NULL, 0, group_instance_id,
      "Static member id in the group (default svc-cache-feeder-<instance.id>-<datasets>; empty: a "
      "dynamic member)", 0, 0, NULL),
    K("audit.enabled", CORE_CFG_BOOL, "true", 0, audit_enabled,
      "Publish cached / deleted / stale_skipped / rejected events", 0, 0, NULL),
    K("audit.topic", CORE_CFG_STR, CORE_AUDIT_TOPIC, 0, audit_topic, "Audit topic", 0, 0, NULL),
    CORE_CFG_END
};

/* Look "name=value" up in a list; NULL when absent. */
static const char *by_dataset(const core_cfg_list *l, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], name, n) == 0 && l->v[i][n] == '=')
            return l->v[i] + n + 1;
    return NULL;
}

static bool in_list(const core_cfg_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return true;
    return false;
}

/* Every "name=value" entry must name a configured dataset. */
static int check_by_dataset(const struct feeder_conf *conf, const char *key, const core_cfg_list *l,
                            char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *eq = strchr(l->v[i], '=');
        bool known = false;
        if (!eq || eq == l->v[i] || eq[1] == '\0') {
            core_errstr(errstr, errstr_size, "%s: '%s' is not dataset=value", key, l->v[i]);
            return CORE_EX_CONFIG;
        }
        for (size_t d = 0; d < conf->datasets.n; d++)
            known |= strlen(conf->datasets.v[d]) == (size_t)(eq - l->v[i]) &&
                     strncmp(conf->datasets.v[d], l->v[i], (size_t)(eq - l->v[i])) == 0;
        if (!known) {
            core_errstr(errstr, errstr_size, "%s: '%.*s' is not a configured dataset", key,
                        (int)(eq - l->v[i]), l->v[i]);
            return CORE_EX_CONFIG;
        }
    }
    return 0;
}

void feeder_datasets_free(feeder_dataset *ds, size_t n)
{
    for (size_t i = 0; ds && i < n; i++)
        feeder_dataset_clear(&ds[i]);
    free(ds);
}

feeder_dataset *feeder_datasets_build(const struct feeder_conf *conf,
                                      const core_avro_catalog_t *cat, char *errstr,
                                      size_t errstr_size)
{
    feeder_dataset *ds = calloc(conf->datasets.n, sizeof(*ds));

    if (!ds) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (check_by_dataset(conf, "cache.format.by.dataset", &conf->format_by_dataset, errstr,
                         errstr_size) ||
        check_by_dataset(conf, "cache.ttl.by.dataset", &conf->ttl_by_dataset, errstr,
                         errstr_size))
        goto fail;
    if (strchr(conf->prefix, '#') || conf->prefix[0] == '\0') {
        core_errstr(errstr, errstr_size, "cache.prefix: '%s' must be non-empty and without '#'",
                    conf->prefix);
        goto fail;
    }
    for (size_t i = 0; i < conf->purge_datasets.n; i++)
        if (!in_list(&conf->datasets, conf->purge_datasets.v[i])) {
            core_errstr(errstr, errstr_size, "cache.purge: '%s' is not a configured dataset",
                        conf->purge_datasets.v[i]);
            goto fail;
        }
    for (size_t i = 0; i < conf->datasets.n; i++) {
        const char *name = conf->datasets.v[i];
        const char *fmt = by_dataset(&conf->format_by_dataset, name);
        const char *ttl = by_dataset(&conf->ttl_by_dataset, name);
        int f;
        char *end = NULL;
        long long secs = conf->ttl_s;

        for (size_t k = 0; k < i; k++)
            if (strcmp(conf->datasets.v[k], name) == 0) {
                core_errstr(errstr, errstr_size, "dataset: '%s' named twice", name);
                goto fail;
            }
        char topic[CORE_TOPIC_MAX + 1], tmpl[CORE_TOPIC_MAX + 16];

        if (conf->topic_template && *conf->topic_template) {
            snprintf(tmpl, sizeof(tmpl), "%s", conf->topic_template);
        } else {
            if (core_topic_name(conf->topic_prefix, name, CORE_TOPIC_VALID, topic, sizeof(topic),
                                errstr, errstr_size))
                goto fail;
            snprintf(tmpl, sizeof(tmpl), "%s{dataset}.valid",
                     conf->topic_prefix ? conf->topic_prefix : "");
        }
        if (feeder_dataset_init(&ds[i], name, core_avro_catalog_by_dataset(cat, name), conf->prefix,
                                tmpl, errstr, errstr_size))
            goto fail;
        f = feeder_format_parse(fmt ? fmt : conf->format);
        if (f < 0) {
            core_errstr(errstr, errstr_size, "cache.format.by.dataset: '%s' for %s is not json, hash or avro",
                        fmt, name);
            goto fail;
        }
        ds[i].format = (feeder_format_t)f;
        if (ttl) {
            secs = strtoll(ttl, &end, 10);
            if (*end != '\0' || secs < 0 || secs > 315360000LL) {
                core_errstr(errstr, errstr_size,
                            "cache.ttl.by.dataset: '%s' for %s is not a number of seconds (0..315360000)",
                            ttl, name);
                goto fail;
            }
        }
        ds[i].ttl_ms = (int64_t)secs * 1000;
        ds[i].purge = in_list(&conf->purge_datasets, name);
    }
    return ds;
fail:
    feeder_datasets_free(ds, conf->datasets.n);
    return NULL;
}
