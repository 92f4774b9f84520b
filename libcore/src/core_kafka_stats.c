/* core_kafka_stats.c — librdkafka statistics JSON (STATISTICS.md) to gauges:
 * consumer lag per partition, producer queue, broker round-trip time. */
#include "core_kafka_int.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#define STATS_MAX_BYTES ((size_t)64 << 20)

/* A number member, or \p def when missing or not a number. */
static double num(const cJSON *obj, const char *name, double def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsNumber(it) ? it->valuedouble : def;
}

static void apply_brokers(core_metrics_t *m, const cJSON *brokers)
{
    static const char *const labels[] = { "broker", NULL };
    core_metric_family_t *f = NULL;
    const cJSON *b;

    cJSON_ArrayForEach(b, brokers) {
        const cJSON *rtt;
        double id, avg, cnt;
        char idbuf[24];

        if (!cJSON_IsObject(b))
            continue;
        id = num(b, "nodeid", -1);
        rtt = cJSON_GetObjectItemCaseSensitive(b, "rtt");
        if (id < 0 || id > 2147483647.0 || !cJSON_IsObject(rtt))
            continue; /* bootstrap or internal broker */
        cnt = num(rtt, "cnt", 0);
        avg = num(rtt, "avg", -1);
        if (cnt <= 0 || avg < 0)
            continue; /* no sample in this window */
        if (!f) {
            f = core_kafka_family(m, CORE_METRIC_GAUGE, "tributary_kafka_broker_rtt_seconds",
                                  "Average broker round-trip time over the last statistics "
                                  "window, from librdkafka statistics", labels);
            if (!f)
                return;
        }
        snprintf(idbuf, sizeof(idbuf), "%d", (int)id);
        core_metric_set(core_metrics_series1(f, idbuf), avg / 1e6);
    }
}

static void apply_topics(core_metrics_t *m, const cJSON *topics,
                         const rd_kafka_topic_partition_list_t *assigned, int flags)
{
    static const char *const labels[] = { "topic", "partition", NULL };
    core_metric_family_t *f = NULL;
    const cJSON *t;

    cJSON_ArrayForEach(t, topics) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "topic");
        const cJSON *parts = cJSON_GetObjectItemCaseSensitive(t, "partitions");
        const char *topic = cJSON_IsString(name) ? name->valuestring : t->string;
        const cJSON *pa;

        if (!cJSON_IsObject(t) || !topic || !*topic || !cJSON_IsObject(parts))
            continue;
        cJSON_ArrayForEach(pa, parts) {
            double part, lag;
            char pbuf[24];

            if (!cJSON_IsObject(pa))
                continue;
            part = num(pa, "partition", -1);
            if (part < 0 || part > 2147483647.0)
                continue; /* -1: librdkafka's internal unassigned partition */
            if (assigned && !rd_kafka_topic_partition_list_find(assigned, topic, (int32_t)part))
                continue;
            lag = num(pa, "consumer_lag", -1);
            if (flags & CORE_KAFKA_STATS_LAG_POSITION) {
                double ls = num(pa, "ls_offset", -1), hi = num(pa, "hi_offset", -1);
                double end = ls >= 0 ? ls : hi, app = num(pa, "app_offset", -1);

                if (end >= 0 && app >= 0)
                    lag = end > app ? end - app : 0;
            }
            if (lag < 0)
                continue; /* unknown */
            if (!f) {
                f = core_kafka_family(m, CORE_METRIC_GAUGE, "tributary_kafka_consumer_lag",
                                      CORE_KAFKA_LAG_HELP,
                                      labels);
                if (!f)
                    return;
            }
            snprintf(pbuf, sizeof(pbuf), "%d", (int)part);
            core_metric_set(core_metrics_series2(f, topic, pbuf), lag);
        }
    }
}

core_err_t core_kafka_stats_apply(core_metrics_t *m, const char *json, size_t len,
                                  const rd_kafka_topic_partition_list_t *assigned,
                                  int flags, char *errstr, size_t errstr_size)
{
    const cJSON *type, *brokers, *topics;
    cJSON *root;

    if (!json || len == 0) {
        core_errstr(errstr, errstr_size, "kafka statistics: empty document");
        return CORE_ERR_INVALID;
    }
    if (len > STATS_MAX_BYTES) {
        core_errstr(errstr, errstr_size, "kafka statistics: %zu bytes exceeds the limit of %zu",
                    len, STATS_MAX_BYTES);
        return CORE_ERR_TOOBIG;
    }
    if (!m)
        m = core_metrics_global();
    root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        core_errstr(errstr, errstr_size, "kafka statistics: not a JSON object");
        cJSON_Delete(root);
        return CORE_ERR_INVALID;
    }
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "producer") == 0) {
        double n = num(root, "msg_cnt", -1);

        if (n >= 0) {
            core_metric_family_t *f = core_kafka_family(
                m, CORE_METRIC_GAUGE, "tributary_kafka_producer_queue_messages",
                "Messages in the producer's queues (waiting or in flight), from librdkafka "
                "statistics", NULL);

            core_metric_set(core_metrics_series(f, NULL), n);
        }
    }
    brokers = cJSON_GetObjectItemCaseSensitive(root, "brokers");
    if (cJSON_IsObject(brokers))
        apply_brokers(m, brokers);
    topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    if (cJSON_IsObject(topics))
        apply_topics(m, topics, assigned, flags);
    cJSON_Delete(root);
    return CORE_OK;
}
