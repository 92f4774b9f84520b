/* svc-cache-feeder — bulk, change and delete events of <dataset>.valid into
 * Redis, version-guarded so the cache is never stale.
 *
 *   svc-cache-feeder --dataset NAME [options]           feed Redis
 *   svc-cache-feeder get --dataset NAME KEY             print a cached record
 *   svc-cache-feeder purge --dataset NAME BATCH_ID      bulk-reload purge
 *
 * The loop: poll records, prepare each record's part of the guard script
 * (feeder.c), send them in pipelined batches of batch.size without waiting,
 * up to batch.inflight batches in flight while the next one is prepared;
 * the oldest batch's replies are then read, each outcome audited and the
 * batch's offsets remembered, strictly in order. Offsets are committed
 * (after the audit producer has flushed) every commit.interval.ms, on
 * rebalance and on shutdown, and only for batches whose every reply (and
 * every earlier batch's) came back. Redis trouble pauses consumption, backs
 * off, reconnects and re-runs every batch in flight, oldest first: the
 * version guard makes the re-run harmless. See docs/svc-cache-feeder.md. */
#include "feeder.h"

#include "tributary/core_audit.h"
#include "tributary/core_kafka.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"
#include "tributary/core_service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct feeder_conf {
    core_cfg_list datasets;
    char *redis_host;
    int64_t redis_port;
    char *redis_user;
    char *redis_password;
    int64_t redis_db;
    int64_t redis_connect_timeout_ms;
    int64_t redis_command_timeout_ms;
    int64_t redis_backoff_base_ms;
    int64_t redis_backoff_max_ms;
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
    char *topic_template;
    char *group_id;
    char *group_instance_id;
    bool audit_enabled;
    char *audit_topic;
};

static struct feeder_conf conf;

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct feeder_conf, field), help, lo, hi, ch }

static const core_config_key feeder_keys[] = {
    K("dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, datasets,
      "Datasets to cache (repeat the flag or comma-separate)", 0, 0, NULL),
    K("redis.host", CORE_CFG_STR, "127.0.0.1", 0, redis_host,
      "Redis host name or address, or /path of a unix socket (no TLS: put a TLS proxy in front)", 0, 0, NULL),
    K("redis.port", CORE_CFG_INT, "6379", 0, redis_port, "Redis port", 1, 65535, NULL),
    K("redis.user", CORE_CFG_STR, NULL, 0, redis_user, "ACL user (needs redis.password)", 0, 0, NULL),
    K("redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, redis_password,
      "AUTH password (or redis.password_file / TB_REDIS_PASSWORD_FILE)", 0, 0, NULL),
    K("redis.db", CORE_CFG_INT, "0", 0, redis_db, "Database number (SELECT)", 0, 65535, NULL),
    K("redis.connect.timeout.ms", CORE_CFG_INT, "2000", 0, redis_connect_timeout_ms,
      "Timeout of one connection attempt", 1, 600000, NULL),
    K("redis.command.timeout.ms", CORE_CFG_INT, "5000", 0, redis_command_timeout_ms,
      "Timeout of each write and read on the connection", 1, 600000, NULL),
    K("redis.backoff.base.ms", CORE_CFG_INT, "100", 0, redis_backoff_base_ms,
      "First delay before reconnecting (doubles, with jitter)", 1, 600000, NULL),
    K("redis.backoff.max.ms", CORE_CFG_INT, "5000", 0, redis_backoff_max_ms,
      "Cap of the reconnect delay", 1, 600000, NULL),
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
    K("topic.template", CORE_CFG_STR, "{dataset}.valid", 0, topic_template,
      "Input topic of a dataset", 0, 0, NULL),
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

static const char *const subcommands[] = { "get", "purge", NULL };

/* ---- metrics -------------------------------------------------------------- */

static struct {
    core_metric_family_t *ops;       /* {dataset, op, outcome} */
    core_metric_family_t *stale;     /* {dataset, reason} */
    core_metric_family_t *purged;    /* {dataset} */
    core_metric_t *batch_size;
    core_metric_t *rtt;
    core_metric_t *outages;
    core_metric_t *paused;
} M;

static void metrics_init(void)
{
    static const char *const l_ops[] = { "dataset", "op", "outcome", NULL };
    static const char *const l_stale[] = { "dataset", "reason", NULL };
    static const char *const l_ds[] = { "dataset", NULL };
    static const double size_buckets[] = { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };
    core_metrics_t *m = core_metrics_global();
    char err[256];

    M.ops = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_operations_total",
                                "Records handled, by operation and outcome", l_ops, NULL, 0, err,
                                sizeof(err));
    M.stale = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_stale_skips_total",
                                  "Writes skipped because Redis holds an equal (duplicate) or newer (older) version",
                                  l_stale, NULL, 0, err, sizeof(err));
    M.purged = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_purged_total",
                                   "Records removed by bulk-reload purges", l_ds, NULL, 0, err,
                                   sizeof(err));
    M.batch_size = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_cache_batch_size",
                            "Commands per pipelined round trip", NULL, size_buckets,
                            CORE_ARRAY_SIZE(size_buckets), err, sizeof(err)),
        NULL);
    M.rtt = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_cache_batch_roundtrip_seconds",
                            "Time to run one pipelined batch in Redis", NULL, NULL, 0, err,
                            sizeof(err)),
        NULL);
    M.outages = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_redis_outages_total",
                            "Times consumption was paused because Redis failed", NULL, NULL, 0,
                            err, sizeof(err)),
        NULL);
    M.paused = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_cache_paused",
                            "1 while consumption is paused for Redis", NULL, NULL, 0, err,
                            sizeof(err)),
        NULL);
}


/* ---- readiness (static: the HTTP thread may ask after run() returned) ----- */

static atomic_bool ready_redis;
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_t *ready_rk;
static int64_t ready_at;
static bool ready_kafka;

static bool feeder_ready(void *opaque, char *reason, size_t reason_size)
{
    bool ok;

    (void)opaque;
    if (!atomic_load(&ready_redis)) {
        snprintf(reason, reason_size, "redis: not connected");
        return false;
    }
    pthread_mutex_lock(&ready_lock);
    if (ready_rk && core_mono_ms() - ready_at >= 2000) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(ready_rk, 0, NULL, &md, 1500);
        ready_kafka = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        ready_at = core_mono_ms();
    }
    ok = ready_rk && ready_kafka;
    pthread_mutex_unlock(&ready_lock);
    if (!ok)
        snprintf(reason, reason_size, "kafka: brokers unreachable");
    return ok;
}

static void ready_set_kafka(rd_kafka_t *rk)
{
    pthread_mutex_lock(&ready_lock);
    ready_rk = rk;
    ready_at = 0;
    ready_kafka = false;
    pthread_mutex_unlock(&ready_lock);
}

/* ---- datasets and Redis from the configuration ------------------------------ */

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
static int check_by_dataset(const char *key, const core_cfg_list *l, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *eq = strchr(l->v[i], '=');
        bool known = false;
        if (!eq || eq == l->v[i] || eq[1] == '\0') {
            core_errstr(errstr, errstr_size, "%s: '%s' is not dataset=value", key, l->v[i]);
            return CORE_EX_CONFIG;
        }
        for (size_t d = 0; d < conf.datasets.n; d++)
            known |= strlen(conf.datasets.v[d]) == (size_t)(eq - l->v[i]) &&
                     strncmp(conf.datasets.v[d], l->v[i], (size_t)(eq - l->v[i])) == 0;
        if (!known) {
            core_errstr(errstr, errstr_size, "%s: '%.*s' is not a configured dataset", key,
                        (int)(eq - l->v[i]), l->v[i]);
            return CORE_EX_CONFIG;
        }
    }
    return 0;
}

static void datasets_free(feeder_dataset *ds, size_t n)
{
    for (size_t i = 0; ds && i < n; i++)
        feeder_dataset_clear(&ds[i]);
    free(ds);
}

static feeder_dataset *datasets_build(core_service_t *svc, char *errstr, size_t errstr_size)
{
    const core_avro_catalog_t *cat = core_service_catalog(svc);
    feeder_dataset *ds = calloc(conf.datasets.n, sizeof(*ds));

    if (!ds) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (check_by_dataset("cache.format.by.dataset", &conf.format_by_dataset, errstr, errstr_size) ||
        check_by_dataset("cache.ttl.by.dataset", &conf.ttl_by_dataset, errstr, errstr_size))
        goto fail;
    if (strchr(conf.prefix, '#') || conf.prefix[0] == '\0') {
        core_errstr(errstr, errstr_size, "cache.prefix: '%s' must be non-empty and without '#'",
                    conf.prefix);
        goto fail;
    }
    for (size_t i = 0; i < conf.purge_datasets.n; i++)
        if (!in_list(&conf.datasets, conf.purge_datasets.v[i])) {
            core_errstr(errstr, errstr_size, "cache.purge: '%s' is not a configured dataset",
                        conf.purge_datasets.v[i]);
            goto fail;
        }
    for (size_t i = 0; i < conf.datasets.n; i++) {
        const char *name = conf.datasets.v[i];
        const char *fmt = by_dataset(&conf.format_by_dataset, name);
        const char *ttl = by_dataset(&conf.ttl_by_dataset, name);
        int f;
        char *end = NULL;
        long long secs = conf.ttl_s;

        for (size_t k = 0; k < i; k++)
            if (strcmp(conf.datasets.v[k], name) == 0) {
                core_errstr(errstr, errstr_size, "dataset: '%s' named twice", name);
                goto fail;
            }
        if (feeder_dataset_init(&ds[i], name, core_avro_catalog_by_dataset(cat, name), conf.prefix,
                                conf.topic_template, errstr, errstr_size))
            goto fail;
        f = feeder_format_parse(fmt ? fmt : conf.format);
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
        ds[i].purge = in_list(&conf.purge_datasets, name);
    }
    return ds;
fail:
    datasets_free(ds, conf.datasets.n);
    return NULL;
}

static core_redis_t *redis_build(char *errstr, size_t errstr_size)
{
    core_redis_opts o = { 0 };

    o.host = conf.redis_host;
    o.port = (int)conf.redis_port;
    o.user = conf.redis_user;
    o.password = conf.redis_password;
    o.db = (int)conf.redis_db;
    o.connect_timeout_ms = (int)conf.redis_connect_timeout_ms;
    o.command_timeout_ms = (int)conf.redis_command_timeout_ms;
    o.backoff_base_ms = (int)conf.redis_backoff_base_ms;
    o.backoff_max_ms = (int)conf.redis_backoff_max_ms;
    return core_redis_new(&o, errstr, errstr_size);
}

/* ---- the feeding loop ----------------------------------------------------- */

typedef struct item {
    rd_kafka_message_t *rkm;
    feeder_dataset *ds;
    int rec;               /* index in recs, -1 for a rejected record */
    char reason[384];      /* why it was rejected */
} item;

/* One batch: its Kafka messages and the records prepared from them. */
typedef struct batch {
    item *items;
    feeder_record *recs;
    size_t nitems, nrecs;
    double t_sent;
} batch;

/* Metric series of one dataset, looked up once: ops[op][outcome] with op
 * add/update/delete/unknown and outcome cached/deleted/stale_skipped/
 * rejected; stale[duplicate]. Counts are added once per batch. */
enum { OUT_CACHED, OUT_DELETED, OUT_STALE, OUT_REJECTED, NOUT };
enum { OPI_ADD, OPI_UPDATE, OPI_DELETE, OPI_UNKNOWN, NOPI };
typedef struct ds_metrics {
    core_metric_t *ops[NOPI][NOUT];
    core_metric_t *stale[2];
    uint32_t n_ops[NOPI][NOUT];
    uint32_t n_stale[2];
} ds_metrics;

typedef struct loop {
    core_service_t *svc;
    feeder_t *f;
    core_redis_t *r;
    feeder_dataset *ds;
    ds_metrics *dm;      /* per dataset, parallel to ds */
    size_t nds;
    core_kafka_consumer_t *c;
    core_kafka_producer_t *p;
    core_audit_t *audit;
    /* A ring of batches: nfly sent to Redis (oldest at head), then the one
     * being filled. Accounted (audit, offsets) strictly in order. */
    batch *bs;
    size_t nb, head, nfly;
    rd_kafka_topic_partition_list_t *pending; /* offsets of written batches */
    int64_t last_commit;
    bool in_flush;       /* batches are being retried: the hook must not touch them */
    bool batch_lost;     /* partitions revoked during a retry: drop the batches */
    bool redis_down;
    int status;          /* exit code when something fatal happened; 0 otherwise */
} loop;

static feeder_dataset *ds_by_topic(loop *L, const char *topic)
{
    for (size_t i = 0; i < L->nds; i++)
        if (strcmp(L->ds[i].topic, topic) == 0)
            return &L->ds[i];
    return NULL;
}

/* The batch being filled. */
static batch *cur(loop *L)
{
    return &L->bs[(L->head + L->nfly) % L->nb];
}

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->nitems; i++)
        rd_kafka_message_destroy(b->items[i].rkm);
    for (size_t i = 0; i < b->nrecs; i++)
        feeder_record_clear(&b->recs[i]);
    b->nitems = b->nrecs = 0;
}

/* Drop every batch, in flight or filling (their offsets are not committed:
 * they are redone). Replies still due on the connection go with it. */
static void batches_drop(loop *L)
{
    for (size_t i = 0; i <= L->nfly; i++)
        batch_clear(&L->bs[(L->head + i) % L->nb]);
    L->head = L->nfly = 0;
    if (core_redis_inflight(L->r) > 0)
        core_redis_disconnect(L->r);
}

static size_t ds_index(const loop *L, const feeder_dataset *ds)
{
    return (size_t)(ds - L->ds);
}

static void ds_metrics_init(loop *L)
{
    static const char *const ops[NOPI] = { "add", "update", "delete", "unknown" };
    static const char *const outs[NOUT] = { "cached", "deleted", "stale_skipped", "rejected" };

    for (size_t d = 0; d < L->nds; d++) {
        for (int o = 0; o < NOPI; o++)
            for (int k = 0; k < NOUT; k++)
                L->dm[d].ops[o][k] = core_metrics_series(
                    M.ops, (const char *const[]){ L->ds[d].name, ops[o], outs[k], NULL });
        L->dm[d].stale[0] = core_metrics_series2(M.stale, L->ds[d].name, "older");
        L->dm[d].stale[1] = core_metrics_series2(M.stale, L->ds[d].name, "duplicate");
    }
}

/* Add the counts gathered over a batch to the series. */
static void ds_metrics_flush(loop *L)
{
    for (size_t d = 0; d < L->nds; d++) {
        ds_metrics *dm = &L->dm[d];
        for (int o = 0; o < NOPI; o++)
            for (int k = 0; k < NOUT; k++)
                if (dm->n_ops[o][k]) {
                    core_metric_add(dm->ops[o][k], dm->n_ops[o][k]);
                    dm->n_ops[o][k] = 0;
                }
        for (int k = 0; k < 2; k++)
            if (dm->n_stale[k]) {
                core_metric_add(dm->stale[k], dm->n_stale[k]);
                dm->n_stale[k] = 0;
            }
    }
}

static void emit(loop *L, const item *it, const feeder_record *rec, const char *outcome,
                 const char *reason)
{
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    char idbuf[160], err[512];
    const rd_kafka_message_t *m = it->rkm;
    core_digest d;

    if (!L->audit)
        return;
    if (rec) {
        ev.id = rec->id;
        ev.key = rec->key;
        ev.batch_id = rec->batch_id;
        ev.digest = &rec->digest;
        ev.version = rec->version;
    } else {
        /* undecodable: no id of its own; named by where it sits */
        snprintf(idbuf, sizeof(idbuf), "%s:%" PRId32 ":%" PRId64, rd_kafka_topic_name(m->rkt),
                 m->partition, m->offset);
        core_digest_record(m->payload, m->len, &d);
        ev.id = idbuf;
        ev.batch_id = "";
        ev.digest = &d;
    }
    ev.dataset = it->ds->name;
    ev.value = m->payload; /* for the content digest */
    ev.value_len = m->len;
    ev.outcome = outcome;
    ev.topic = rd_kafka_topic_name(m->rkt);
    ev.partition = m->partition;
    ev.offset = m->offset;
    ev.reason = reason;
    if (core_audit_emit(L->audit, &ev, err, sizeof(err)) != CORE_OK)
        core_log_error("audit event not produced", CLF_S("id", ev.id), CLF_S("error", err));
}

/* Account for one handled batch: metrics, logs, audit, pending offsets. */
static void batch_done(loop *L, batch *b)
{
    for (size_t i = 0; i < b->nitems; i++) {
        item *it = &b->items[i];
        const char *dsn = it->ds->name;
        ds_metrics *dm = &L->dm[ds_index(L, it->ds)];
        if (it->rec < 0) {
            dm->n_ops[OPI_UNKNOWN][OUT_REJECTED]++;
            emit(L, it, NULL, "rejected", it->reason);
        } else {
            feeder_record *rec = &b->recs[it->rec];
            int opi = rec->op == CORE_AVRO_OP_DELETE ? OPI_DELETE
                      : rec->op == CORE_AVRO_OP_UPDATE ? OPI_UPDATE : OPI_ADD;
            int outi = OUT_REJECTED;
            const char *outcome = "rejected";
            switch (rec->result) {
            case FEEDER_RES_CACHED: outcome = "cached"; outi = OUT_CACHED; break;
            case FEEDER_RES_DELETED: outcome = "deleted"; outi = OUT_DELETED; break;
            case FEEDER_RES_STALE:
                outcome = "stale_skipped";
                outi = OUT_STALE;
                dm->n_stale[rec->duplicate ? 1 : 0]++;
                break;
            default:
                core_log_error("record refused by redis", CLF_S("dataset", dsn),
                               CLF_S("key", rec->key), CLF_S("id", rec->id),
                               CLF_S("topic", rd_kafka_topic_name(it->rkm->rkt)),
                               CLF_I("partition", it->rkm->partition),
                               CLF_I("offset", it->rkm->offset), CLF_S("error", rec->error));
                break;
            }
            dm->n_ops[opi][outi]++;
            emit(L, it, rec, outcome,
                 rec->result == FEEDER_RES_ERROR ? rec->error
                 : rec->result == FEEDER_RES_STALE ? (rec->duplicate ? "duplicate" : "older")
                 : NULL);
        }
        core_kafka_offsets_add_message(L->pending, it->rkm);
    }
    ds_metrics_flush(L);
    batch_clear(b);
}

static void set_paused(loop *L, bool down, const char *err)
{
    char e[256];

    if (down && !L->redis_down) {
        L->redis_down = true;
        atomic_store(&ready_redis, false);
        core_metric_inc(M.outages);
        core_metric_set(M.paused, 1);
        core_log_warn("redis unavailable: pausing consumption", CLF_S("error", err));
        if (core_kafka_consumer_pause(L->c, NULL, 0, e, sizeof(e)) != CORE_OK)
            core_log_warn("pause failed", CLF_S("error", e));
    } else if (!down && L->redis_down) {
        L->redis_down = false;
        atomic_store(&ready_redis, true);
        core_metric_set(M.paused, 0);
        core_log_info("redis back: resuming consumption");
        if (core_kafka_consumer_resume(L->c, NULL, 0, e, sizeof(e)) != CORE_OK)
            core_log_warn("resume failed", CLF_S("error", e));
    }
}

/* Commit the pending offsets after the audit events are delivered. */
static int commit_pending(loop *L, int flush_ms)
{
    char err[512];
    core_err_t rc;

    if (L->pending->cnt == 0)
        return CORE_OK;
    if (L->p && core_kafka_producer_flush(L->p, flush_ms) > 0) {
        core_log_warn("audit events still in flight: commit postponed");
        return CORE_ERR_TRANSIENT;
    }
    rc = core_kafka_consumer_commit_offsets(L->c, L->pending, err, sizeof(err));
    if (rc == CORE_OK || rc == CORE_ERR_STATE) {
        if (rc == CORE_ERR_STATE)
            core_log_warn("commit refused after a rebalance: the next owner redoes the batch (idempotent)",
                          CLF_S("error", err));
        rd_kafka_topic_partition_list_destroy(L->pending);
        L->pending = rd_kafka_topic_partition_list_new(16);
        L->last_commit = core_mono_ms();
        return CORE_OK;
    }
    core_log_warn("offset commit failed: retried later", CLF_S("error", err));
    return rc;
}

/* Records fetched while paused were dropped: commit what is done, then go
 * back to the committed offsets (re-reading a written record is harmless). */
static void rewind_to_committed(loop *L)
{
    char err[512];

    commit_pending(L, 10000);
    if (core_kafka_consumer_rewind(L->c, 10000, err, sizeof(err)) != CORE_OK)
        core_log_warn("rewind failed", CLF_S("error", err));
}

/* A batch is answered: its metrics, then accounting; the ring moves on. */
static void fly_done(loop *L)
{
    batch *b = &L->bs[L->head];

    if (b->nrecs) {
        core_metric_observe(M.rtt, core_mono_s() - b->t_sent);
        core_metric_observe(M.batch_size, (double)b->nrecs);
    }
    batch_done(L, b);
    L->head = (L->head + 1) % L->nb;
    L->nfly--;
}

/* Send the filling batch to Redis (a batch of only rejected records is
 * queued all the same, so that accounting stays in order). */
static int send_cur(loop *L, char *err, size_t errsize)
{
    batch *b = cur(L);
    int rc = CORE_OK;

    if (b->nitems == 0)
        return CORE_OK;
    b->t_sent = core_mono_s();
    if (b->nrecs)
        rc = feeder_send(L->f, b->recs, b->nrecs, err, errsize);
    L->nfly++; /* in flight even when the send failed: it is redone */
    return rc;
}

/* Receive the oldest batch in flight and account for it. */
static int recv_oldest(loop *L, char *err, size_t errsize)
{
    batch *b = &L->bs[L->head];
    int rc = b->nrecs ? feeder_recv(L->f, b->recs, b->nrecs, err, errsize) : CORE_OK;

    if (rc == CORE_OK)
        fly_done(L);
    return rc;
}

/* Redis failed with batches in flight (every one of them is to be redone:
 * whether any of it ran is unknown, and the version guard makes a redo
 * harmless). Pause consumption, back off, reconnect, then run the batches
 * again in their order, one round trip each, until all are answered, or
 * they are dropped after a revoke or a forced stop (their offsets are not
 * committed, so they are redone later). */
static void outage(loop *L, int rc, char *err)
{
    int attempt = 0;
    core_backoff bo = { conf.redis_backoff_base_ms, conf.redis_backoff_max_ms, 2.0, 0.5, 0 };

    L->in_flush = true;
    L->batch_lost = false;
    for (;;) {
        if (rc == CORE_ERR_NOMEM) {
            core_log_error("out of memory sending a batch", CLF_S("error", err));
            L->status = CORE_EX_SOFTWARE;
            batches_drop(L);
            L->in_flush = false;
            core_lifecycle_request_stop();
            return;
        }
        set_paused(L, true, err);
        if (rc == CORE_ERR_INVALID)
            core_log_error("redis refused the connection (credentials?): retrying", CLF_S("error", err));
        /* Wait, serving the group (paused: no records should come; any that
         * do are dropped and the partitions rewound afterwards). */
        int64_t until = core_mono_ms() + core_backoff_delay_ms(&bo, ++attempt);
        while (core_mono_ms() < until) {
            rd_kafka_message_t *m;
            if (core_lifecycle_forced() ||
                (core_lifecycle_stopping() && core_lifecycle_remaining_ms() <= 0))
                goto drop;
            m = core_kafka_consumer_poll(L->c, 100);
            if (m) /* dropped: the rewind after the outage reads it again */
                rd_kafka_message_destroy(m);
            if (L->batch_lost)
                goto drop;
        }
        if (core_redis_inflight(L->r) > 0) /* leftovers would misalign the replies */
            core_redis_disconnect(L->r);
        rc = core_redis_ensure(L->r, core_mono_ms() + conf.redis_connect_timeout_ms, err, 512);
        if (rc != CORE_OK)
            continue;
        core_log_info("redis reconnected", CLF_I("attempts", attempt),
                      CLF_I("batches", (int64_t)L->nfly));
        while (L->nfly > 0) {
            batch *b = &L->bs[L->head];
            b->t_sent = core_mono_s();
            if (b->nrecs && (rc = feeder_exec(L->f, b->recs, b->nrecs, err, 512)) != CORE_OK)
                break;
            fly_done(L);
        }
        if (L->nfly == 0)
            break;
    }
    L->in_flush = false;
    if (L->redis_down) {
        /* librdkafka 2.0.2 may not refetch what a pause purged from its
         * queues: commit what is written, resume, then seek every partition
         * back to its committed offset (re-reading is harmless). */
        set_paused(L, false, NULL);
        rewind_to_committed(L);
    }
    return;
drop:
    core_log_warn("batches dropped, not committed: they will be redone",
                  CLF_I("batches", (int64_t)L->nfly));
    batches_drop(L);
    L->in_flush = false;
}

/* Send the filling batch, then receive answered batches until at most keep
 * are in flight; Redis trouble goes through outage(). */
static void pipeline_step(loop *L, size_t keep)
{
    char err[512];
    int rc = send_cur(L, err, sizeof(err));

    while (rc == CORE_OK && L->nfly > keep)
        rc = recv_oldest(L, err, sizeof(err));
    if (rc != CORE_OK)
        outage(L, rc, err);
}

/* Before partitions go: finish what is in flight and in hand (one try: a
 * poll must not run inside the rebalance) and commit; when they are lost,
 * drop it all. */
static void on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    loop *L = user;
    char err[512];
    int rc;

    (void)c;
    (void)parts;
    if (L->in_flush || lost) {
        L->batch_lost = true;
        if (lost) {
            if (!L->in_flush)
                batches_drop(L);
            rd_kafka_topic_partition_list_destroy(L->pending);
            L->pending = rd_kafka_topic_partition_list_new(16);
        }
        return;
    }
    rc = send_cur(L, err, sizeof(err));
    while (rc == CORE_OK && L->nfly > 0)
        rc = recv_oldest(L, err, sizeof(err));
    if (rc != CORE_OK) {
        core_log_warn("batches not written before a rebalance: the next owner redoes them",
                      CLF_S("error", err), CLF_I("batches", (int64_t)L->nfly));
        batches_drop(L);
    }
    commit_pending(L, 10000);
}

static void handle_message(loop *L, rd_kafka_message_t *m)
{
    batch *b = cur(L);
    item *it = &b->items[b->nitems];
    char err[384];
    int rc;

    it->rkm = m;
    it->ds = ds_by_topic(L, rd_kafka_topic_name(m->rkt));
    it->rec = -1;
    it->reason[0] = '\0';
    b->nitems++;
    if (!it->ds) { /* cannot happen: only our topics are subscribed */
        it->ds = &L->ds[0];
        snprintf(it->reason, sizeof(it->reason), "topic %s is not a dataset's topic",
                 rd_kafka_topic_name(m->rkt));
    } else if (!m->payload || m->len == 0) {
        snprintf(it->reason, sizeof(it->reason), "empty record value (a tombstone is not a tributary record)");
    } else {
        rc = feeder_prepare(L->f, it->ds, core_service_catalog(L->svc), m->payload, m->len,
                            &b->recs[b->nrecs], err, sizeof(err));
        if (rc == CORE_OK) {
            it->rec = (int)b->nrecs++;
            return;
        }
        snprintf(it->reason, sizeof(it->reason), "%s", err);
        if (rc == CORE_ERR_NOMEM) {
            core_log_error("out of memory preparing a record");
            L->status = CORE_EX_SOFTWARE;
            core_lifecycle_request_stop();
        }
    }
    core_log_error("record rejected", CLF_S("dataset", it->ds->name),
                   CLF_S("topic", rd_kafka_topic_name(m->rkt)), CLF_I("partition", m->partition),
                   CLF_I("offset", m->offset), CLF_S("reason", it->reason));
}

/* The start-up probe of Redis: one connection attempt. A refusal names the
 * key to fix. */
static core_err_t probe_redis(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    char err[400];
    int rc;

    (void)timeout_ms; /* redis.connect.timeout.ms bounds the attempt */
    rc = core_redis_connect(opaque, err, sizeof(err));
    if (rc == CORE_ERR_INVALID)
        core_errstr(errstr, errstr_size, "%s: %s",
                    strstr(err, "SELECT") ? "redis.db"
                    : conf.redis_user     ? "redis.user / redis.password"
                                          : "redis.password",
                    err);
    else if (rc != CORE_OK)
        core_errstr(errstr, errstr_size, "%s", err);
    if (rc == CORE_OK)
        atomic_store(&ready_redis, true);
    return rc == CORE_OK || rc == CORE_ERR_INVALID ? (core_err_t)rc : CORE_ERR_TRANSIENT;
}

static int feed(core_service_t *svc, feeder_dataset *ds, size_t nds, core_redis_t *r, feeder_t *f)
{
    core_kafka_prop cdefaults[] = {
        { "bootstrap.servers", "127.0.0.1:9092" },
        { "group.instance.id", NULL }, /* static membership: set below */
    };
    char member[256], raddr[300];
    static const core_kafka_prop pdefaults[] = {
        { "bootstrap.servers", "127.0.0.1:9092" },
        { "linger.ms", "5" },
        { "compression.codec", "lz4" },
    };
    loop L = { 0 };
    core_kafka_consumer_opts co = { 0 };
    core_kafka_producer_opts po = { 0 };
    const char **topics = NULL;
    char err[512];
    int64_t batch_start = 0;
    int rc;

    L.svc = svc;
    L.f = f;
    L.r = r;
    L.ds = ds;
    L.nds = nds;
    /* batch.inflight in flight, one more just sent, one filling */
    L.nb = (size_t)conf.batch_inflight + 2;
    L.bs = calloc(L.nb, sizeof(*L.bs));
    L.dm = calloc(nds, sizeof(*L.dm));
    L.pending = rd_kafka_topic_partition_list_new(16);
    topics = calloc(nds, sizeof(*topics));
    for (size_t i = 0; L.bs && i < L.nb; i++) {
        L.bs[i].items = calloc((size_t)conf.batch_size, sizeof(*L.bs[i].items));
        L.bs[i].recs = calloc((size_t)conf.batch_size, sizeof(*L.bs[i].recs));
        if (!L.bs[i].items || !L.bs[i].recs) {
            free(L.bs[i].items);
            free(L.bs[i].recs);
            L.bs[i].items = NULL;
            L.bs[i].recs = NULL;
            L.nb = i;
            break;
        }
    }
    if (!L.bs || L.nb != (size_t)conf.batch_inflight + 2 || !L.dm || !L.pending || !topics) {
        core_log_error("out of memory");
        L.status = CORE_EX_SOFTWARE;
        goto out;
    }
    ds_metrics_init(&L);
    /* the start-up policy (docs/OPERATIONS.md): Redis, then the brokers;
     * /readyz says which one is awaited */
    core_http_set_ready(core_service_http(svc), feeder_ready, NULL);
    if (conf.redis_host[0] == '/')
        snprintf(raddr, sizeof(raddr), "%s", conf.redis_host);
    else
        snprintf(raddr, sizeof(raddr), "%s:%lld", conf.redis_host, (long long)conf.redis_port);
    if ((rc = core_service_await(svc, "redis", raddr, probe_redis, r)) != CORE_SERVICE_CONTINUE ||
        (rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE) {
        L.status = rc;
        goto out;
    }
    if (conf.audit_enabled) {
        po.cfg = core_service_config(svc);
        po.defaults = pdefaults;
        po.ndefaults = CORE_ARRAY_SIZE(pdefaults);
        if (!(L.p = core_kafka_producer_new(&po, err, sizeof(err)))) {
            L.status = core_service_config_error(svc, err);
            goto out;
        }
        if (!(L.audit = core_audit_new(L.p, core_service_catalog(svc), conf.audit_topic,
                                       "cache-feeder", err, sizeof(err)))) {
            L.status = core_service_config_error(svc, err);
            goto out;
        }
    }
    cdefaults[1].value = core_service_group_instance_id(svc, conf.group_instance_id,
                                                        &conf.datasets, member, sizeof(member));
    co.cfg = core_service_config(svc);
    co.defaults = cdefaults;
    co.ndefaults = cdefaults[1].value ? 2 : 1;
    co.group_id = core_kafka_consumer_config(core_service_config(svc), "group.id") ? NULL
                                                                                  : conf.group_id;
    co.on_revoke = on_revoke;
    co.hook_user = &L;
    if (!(L.c = core_kafka_consumer_new(&co, err, sizeof(err)))) {
        L.status = core_service_config_error(svc, err);
        goto out;
    }
    for (size_t i = 0; i < nds; i++)
        topics[i] = ds[i].topic;
    if (core_kafka_consumer_subscribe(L.c, topics, nds, err, sizeof(err)) != CORE_OK) {
        L.status = core_service_config_error(svc, err);
        goto out;
    }
    ready_set_kafka(core_kafka_consumer_handle(L.c));
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(core_service_http(svc))),
                  CLF_S("topic", ds[0].topic), CLF_I("datasets", (int64_t)nds),
                  CLF_I("batch_size", conf.batch_size), CLF_S("prefix", conf.prefix));
    L.last_commit = core_mono_ms();

    /* The clock (about 50 ns a read here) is read when time may have
     * passed: after a poll that waited, when a batch starts, after Redis
     * work, and every 32 records; a record taken from librdkafka's queue
     * without waiting costs no clock read. */
    int64_t now = core_mono_ms();
    unsigned since_clock = 0;
    while (!core_lifecycle_stopping()) {
        int timeout = 200;
        rd_kafka_message_t *m;
        batch *b = cur(&L);
        bool waited = false;

        if (b->nitems > 0) {
            int64_t left = batch_start + conf.batch_wait_ms - now;
            timeout = left > 0 ? (int)left : 0;
        } else if (L.nfly > 0) {
            timeout = 0; /* replies are due: do not sleep on Kafka */
        }
        m = core_kafka_consumer_poll(L.c, 0);
        if (!m && timeout > 0) {
            m = core_kafka_consumer_poll(L.c, timeout);
            waited = true;
        }
        if (!m || waited || b->nitems == 0 || ++since_clock >= 32) {
            now = core_mono_ms();
            since_clock = 0;
        }
        if (m && m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                core_kafka_consumer_fatal(L.c, err, sizeof(err));
                core_log_error("kafka consumer fatal error", CLF_S("error", err));
                L.status = CORE_EX_SOFTWARE;
                rd_kafka_message_destroy(m);
                break;
            }
            rd_kafka_message_destroy(m);
            m = NULL;
        }
        if (m) {
            if (cur(&L)->nitems == 0)
                batch_start = now;
            handle_message(&L, m);
        }
        b = cur(&L);
        if (b->nitems > 0 && ((int64_t)b->nitems >= conf.batch_size || !m ||
                              now - batch_start >= conf.batch_wait_ms)) {
            /* send it; Redis runs it while the next one is prepared */
            pipeline_step(&L, (size_t)conf.batch_inflight);
            now = core_mono_ms();
        } else if (!m && L.nfly > 0) {
            pipeline_step(&L, 0); /* nothing to prepare meanwhile */
            now = core_mono_ms();
        }
        if (L.p)
            core_kafka_producer_poll(L.p, 0);
        if (L.pending->cnt > 0 && now - L.last_commit >= conf.commit_interval_ms) {
            commit_pending(&L, 10000);
            now = core_mono_ms();
        }
    }
    /* drain: what is in hand, then commit, then leave the group */
    core_log_info("stopping", CLF_I("signal", core_lifecycle_signal()));
    if (L.bs)
        pipeline_step(&L, 0);
    commit_pending(&L, (int)(core_lifecycle_remaining_ms() > 0 ? core_lifecycle_remaining_ms() : 1000));
out:
    ready_set_kafka(NULL);
    atomic_store(&ready_redis, false);
    if (L.c && core_kafka_consumer_close(L.c, err, sizeof(err)) != CORE_OK)
        core_log_warn("consumer close", CLF_S("error", err));
    if (L.bs && L.nb > 0)
        batches_drop(&L);
    if (L.p) {
        size_t left = core_kafka_producer_flush(L.p, 10000);
        if (left)
            core_log_warn("audit events not delivered at exit", CLF_I("count", (int64_t)left));
    }
    core_kafka_consumer_free(L.c);
    core_audit_free(L.audit);
    core_kafka_producer_free(L.p);
    if (L.pending)
        rd_kafka_topic_partition_list_destroy(L.pending);
    for (size_t i = 0; L.bs && i < L.nb; i++) {
        free(L.bs[i].items);
        free(L.bs[i].recs);
    }
    free(L.bs);
    free(L.dm);
    free(topics);
    return L.status;
}

/* ---- subcommands ------------------------------------------------------------ */

static int exit_for(int rc)
{
    switch (rc) {
    case CORE_ERR_INVALID: return CORE_EX_CONFIG;
    case CORE_ERR_TRANSIENT: return CORE_EX_UNAVAILABLE;
    case CORE_ERR_NOTFOUND: return 1;
    default: return CORE_EX_SOFTWARE;
    }
}

static int cmd_get(core_service_t *svc, feeder_dataset *ds, feeder_t *f)
{
    char err[512];
    char *doc = NULL;
    int rc;

    if (conf.datasets.n != 1 || core_service_nfiles(svc) != 1) {
        fprintf(stderr, "svc-cache-feeder: usage error: get needs one --dataset and one KEY\n");
        return CORE_EX_USAGE;
    }
    rc = feeder_get(f, ds, core_service_catalog(svc), core_service_file(svc, 0), &doc, err,
                    sizeof(err));
    if (rc != CORE_OK) {
        fprintf(stderr, "svc-cache-feeder: %s\n", err);
        return exit_for(rc);
    }
    printf("%s\n", doc);
    free(doc);
    return 0;
}

static int cmd_purge(core_service_t *svc, feeder_dataset *ds, feeder_t *f)
{
    char err[512];
    uint64_t n = 0;
    int rc;

    if (conf.datasets.n != 1 || core_service_nfiles(svc) != 1) {
        fprintf(stderr, "svc-cache-feeder: usage error: purge needs one --dataset and one BATCH_ID\n");
        return CORE_EX_USAGE;
    }
    if (!ds->purge) {
        fprintf(stderr, "svc-cache-feeder: configuration error: cache.purge: dataset %s is not opted in\n",
                ds->name);
        return CORE_EX_CONFIG;
    }
    rc = feeder_purge(f, ds, core_service_file(svc, 0), &n, err, sizeof(err));
    if (rc != CORE_OK) {
        fprintf(stderr, "svc-cache-feeder: %s\n", err);
        return exit_for(rc);
    }
    core_metric_add(core_metrics_series1(M.purged, ds->name), (double)n);
    core_log_info("purged", CLF_S("dataset", ds->name), CLF_S("batch", core_service_file(svc, 0)),
                  CLF_I("records", (int64_t)n));
    printf("%" PRIu64 "\n", n);
    return 0;
}

static int run(core_service_t *svc, void *cf)
{
    const char *sub = core_service_subcommand(svc);
    feeder_dataset *ds;
    core_redis_t *r = NULL;
    feeder_t *f = NULL;
    char err[512];
    int rc;

    (void)cf;
    metrics_init();
    if (!sub && core_service_nfiles(svc) > 0) {
        fprintf(stderr, "svc-cache-feeder: usage error: unexpected argument '%s' (see --help)\n",
                core_service_file(svc, 0));
        return CORE_EX_USAGE;
    }
    if (!(ds = datasets_build(svc, err, sizeof(err))))
        return core_service_config_error(svc, err);
    if (!(r = redis_build(err, sizeof(err)))) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    if (!(f = feeder_new(r, err, sizeof(err)))) {
        core_log_error("cannot start", CLF_S("error", err));
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    if (sub && strcmp(sub, "get") == 0)
        rc = cmd_get(svc, ds, f);
    else if (sub && strcmp(sub, "purge") == 0)
        rc = cmd_purge(svc, ds, f);
    else
        rc = feed(svc, ds, conf.datasets.n, r, f);
out:
    feeder_free(f);
    core_redis_free(r);
    datasets_free(ds, conf.datasets.n);
    return rc;
}

static const core_service_def def = {
    .name = "svc-cache-feeder",
    .summary = "bulk, change and delete events into Redis, never stale",
    .usage = "svc-cache-feeder --dataset NAME [options]  |  svc-cache-feeder get --dataset NAME KEY"
             "  |  svc-cache-feeder purge --dataset NAME BATCH_ID",
    .http_port_default = "8083",
    .keys = feeder_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .takes_files = true,
    .datasets = &conf.datasets,
    .run = run,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
