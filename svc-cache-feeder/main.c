/* svc-cache-feeder — bulk, change and delete events of <dataset>.valid into
 * Redis, version-guarded so the cache is never stale.
 *
 *   svc-cache-feeder --dataset NAME [options]           feed Redis
 *   svc-cache-feeder get --dataset NAME KEY             print a cached record
 *   svc-cache-feeder purge --dataset NAME BATCH_ID      bulk-reload purge
 *
 * Feeding is libcore's sink loop (core_sink: batches, commits after Redis
 * said OK, pause and backoff while Redis is away, revoke drain, audit)
 * driving the Redis plugin (sink_redis.c); this file joins it to the
 * configuration (config.c) and the start-up policy, and runs the
 * subcommands. See docs/svc-cache-feeder.md. */
#include "cache_feeder.h"

#include "tributary/core_log.h"
#include "tributary/core_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct feeder_conf conf;

static const char *const subcommands[] = { "get", "purge", NULL };

/* The start-up probe of Redis: one connection attempt. A refusal names the
 * key to fix. */
static core_err_t probe_redis(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    char err[400];
    int rc;

    (void)timeout_ms; /* redis.connect.timeout.ms bounds the attempt */
    rc = core_redis_connect(opaque, err, sizeof(err));
    if (rc == CORE_ERR_INVALID)
        core_errstr(errstr, errstr_size, "%s: %s", core_redis_config_refused_key(&conf.redis, err),
                    err);
    else if (rc != CORE_OK)
        core_errstr(errstr, errstr_size, "%s", err);
    if (rc == CORE_OK)
        feeder_redis_set_up(true);
    return rc == CORE_OK || rc == CORE_ERR_INVALID ? (core_err_t)rc : CORE_ERR_TRANSIENT;
}

/* Await Redis and the brokers (docs/OPERATIONS.md), then run the sink. */
static int feed(core_service_t *svc, feeder_dataset *ds, core_redis_t *r, feeder_t *f)
{
    size_t n = conf.datasets.n;
    core_sink_dataset *sds = calloc(n, sizeof(*sds));
    feeder_sink_conf pc = { f, r, ds, n, core_service_catalog(svc) };
    core_sink_opts o = { 0 };
    char member[256], raddr[300], err[512] = "";
    int rc;

    if (!sds) {
        core_log_error("out of memory");
        return CORE_EX_SOFTWARE;
    }
    for (size_t i = 0; i < n; i++)
        sds[i] = (core_sink_dataset){ ds[i].name, ds[i].topic, NULL };
    core_redis_config_address(&conf.redis, raddr, sizeof(raddr));
    if ((rc = core_service_await(svc, "redis", raddr, probe_redis, r)) != CORE_SERVICE_CONTINUE ||
        (rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE ||
        (rc = core_service_bind_audit(svc, conf.audit_topic)) != CORE_SERVICE_CONTINUE)
        goto out;
    o.plugin = &feeder_sink_plugin;
    o.plugin_conf = &pc;
    o.datasets = sds;
    o.ndatasets = n;
    o.cfg = core_service_config(svc);
    o.group_id = conf.group_id;
    o.group_instance_id = core_service_group_instance_id(svc, conf.group_instance_id,
                                                         &conf.datasets, member, sizeof(member));
    o.catalog = core_service_catalog(svc);
    o.audit = conf.audit_enabled;
    o.audit_topic = conf.audit_topic;
    o.stage = "cache-feeder";
    o.batch_size = conf.batch_size;
    o.batch_wait_ms = conf.batch_wait_ms;
    o.batch_inflight = conf.batch_inflight;
    o.commit_interval_ms = conf.commit_interval_ms;
    o.backoff = (core_backoff){ conf.redis.backoff_base_ms, conf.redis.backoff_max_ms, 2.0, 0.5, 0 };
    o.breaker_open_ms = conf.redis.backoff_max_ms; /* never a longer wait than the backoff's cap */
    o.http = core_service_http(svc);
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(core_service_http(svc))),
                  CLF_S("topic", ds[0].topic), CLF_I("datasets", (int64_t)n),
                  CLF_I("batch_size", conf.batch_size), CLF_S("prefix", conf.prefix));
    rc = core_sink_run(&o, err, sizeof(err));
    if (rc == CORE_EX_CONFIG)
        core_service_config_error(svc, err);
    else if (rc != 0 && err[0])
        core_log_error("cannot feed", CLF_S("error", err));
out:
    feeder_redis_set_up(false);
    free(sds);
    return rc;
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
    feeder_metric_purged(ds->name, n);
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
    /* /readyz "redis" from the first answer on (the server is up before
     * run()), while Redis is awaited; the sink's probe of the same name
     * takes over once it runs */
    core_service_ready_add(svc, "redis", feeder_redis_ready, NULL);
    core_service_open(svc);
    feeder_metrics_init();
    if (!sub && core_service_nfiles(svc) > 0) {
        fprintf(stderr, "svc-cache-feeder: usage error: unexpected argument '%s' (see --help)\n",
                core_service_file(svc, 0));
        return CORE_EX_USAGE;
    }
    if (!(ds = feeder_datasets_build(&conf, core_service_catalog(svc), err, sizeof(err))))
        return core_service_config_error(svc, err);
    if (!(r = core_redis_config_new(&conf.redis, NULL, err, sizeof(err)))) {
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
        rc = feed(svc, ds, r, f);
out:
    feeder_free(f);
    core_redis_free(r);
    feeder_datasets_free(ds, conf.datasets.n);
    return rc;
}

/* Keys that still work, to be replaced (a warning names the new one). */
static const core_config_alias feeder_deprecated[] = {
    { "topic.template", "topic.prefix" },
    CORE_CFG_ALIAS_END
};

static const core_service_def def = {
    .name = "svc-cache-feeder",
    .summary = "bulk, change and delete events into Redis, never stale",
    .usage = "svc-cache-feeder --dataset NAME [options]  |  svc-cache-feeder get --dataset NAME KEY"
             "  |  svc-cache-feeder purge --dataset NAME BATCH_ID",
    .http_port_default = "8083",
    .keys = feeder_keys,
    .deprecated = feeder_deprecated,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .takes_files = true,
    .datasets = &conf.datasets,
    .run = run,
};

CORE_SERVICE_MAIN(def)
