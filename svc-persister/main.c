/* svc-persister — batched, idempotent writes to PostgreSQL, MongoDB or MySQL.
 *
 *   svc-persister --dataset payee [--sink postgres|mongodb|mysql] [--create.tables]
 *   svc-persister schema-sql --dataset payee [--sink mysql]   print the table's DDL
 *
 * The work is libcore's sink loop (core_sink: batches, a writer thread,
 * commits after the database said OK, pause and backoff while it is away,
 * revoke and stop drains, audit, DLQ) driving the plugin of --sink
 * (persister.c over sink_pg.c, sink_mongo.c or sink_mysql.c, each with its
 * own keys); here: the service's keys, the start-up policy, the plugin's
 * choice. See docs/svc-persister.md. */
#include "persister.h"

#include "tributary/core_audit.h"
#include "tributary/core_log.h"
#include "tributary/core_service.h"
#include "tributary/core_topics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct persister_conf {
    core_cfg_list datasets;
    char *sink;
    int64_t batch_size;
    int64_t batch_timeout_ms;
    char *group_id;
    char *group_instance_id;
    char *topic_prefix;
    char *topic_valid_suffix, *topic_dlq_suffix; /* deprecated (topic.prefix) */
    char *audit_topic;
    bool create_tables;
    int64_t retry_base_ms, retry_max_ms;
    int64_t breaker_threshold, breaker_open_ms;
} conf;
static struct pers_pg_conf pg_conf;
static struct pers_mongo_conf mongo_conf;
static struct pers_mysql_conf mysql_conf;
static struct pers_backup_conf backup_conf;

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct persister_conf, field), help, lo, hi, ch }

static const core_config_key persister_keys[] = {
    K("dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, datasets,
      "Datasets to persist (repeat the flag or comma-separate)", 0, 0, NULL),
    K("sink", CORE_CFG_ENUM, "postgres", 0, sink, "Database the records are written to", 0, 0,
      "postgres|mongodb|mysql"),
    K("batch.size", CORE_CFG_INT, "1000", 0, batch_size,
      "Largest batch (records); also the most records held in memory", 1, 1000000, NULL),
    K("batch.timeout.ms", CORE_CFG_INT, "30000", 0, batch_timeout_ms,
      "Longest a record waits in the buffer before its batch is written", 1, 86400000, NULL),
    K("group.id", CORE_CFG_STR, NULL, 0, group_id,
      "Consumer group (default svc-persister-<sink>; kafka.group.id also works)", 0, 0, NULL),
    K("group.instance.id", CORE_CFG_STR, NULL, 0, group_instance_id,
      "Static member id in the group (default svc-persister-<instance.id>-<datasets>; empty: a "
      "dynamic member)", 0, 0, NULL),
    CORE_TOPICS_CONFIG_KEYS(struct persister_conf, topic_prefix),
    K("topic.valid.suffix", CORE_CFG_STR, NULL, 0, topic_valid_suffix,
      "Deprecated (use topic.prefix): input topic <dataset><suffix>", 0, 0, NULL),
    K("topic.dlq.suffix", CORE_CFG_STR, NULL, 0, topic_dlq_suffix,
      "Deprecated (use topic.prefix): dead-letter topic <dataset><suffix>", 0, 0, NULL),
    K("audit.topic", CORE_CFG_STR, CORE_AUDIT_TOPIC, 0, audit_topic, "Topic of the audit events",
      0, 0, NULL),
    K("create.tables", CORE_CFG_BOOL, "false", 0, create_tables,
      "Create missing tables (PostgreSQL, MySQL) or indexes (MongoDB) at start", 0, 0, NULL),
    K("retry.base.ms", CORE_CFG_INT, "200", 0, retry_base_ms,
      "First delay after a failed database write (doubles, with jitter)", 1, 600000, NULL),
    K("retry.max.ms", CORE_CFG_INT, "30000", 0, retry_max_ms,
      "Longest delay between database write attempts", 1, 3600000, NULL),
    K("breaker.threshold", CORE_CFG_INT, "5", 0, breaker_threshold,
      "Consecutive failed writes that open the circuit breaker", 1, 1000, NULL),
    K("breaker.open.ms", CORE_CFG_INT, "10000", 0, breaker_open_ms,
      "How long an open breaker refuses database calls", 1, 3600000, NULL),
    CORE_CFG_END
};

/* Each plugin's keys land in its own struct. */
static const core_service_table tables[] = {
    { pers_pg_keys, &pg_conf },
    { pers_mongo_keys, &mongo_conf },
    { pers_mysql_keys, &mysql_conf },
    { pers_backup_keys, &backup_conf },
    { NULL, NULL },
};

static const char *const subcommands[] = { "schema-sql", NULL };

/* The start-up probe of the database: connect and ping (main thread, the
 * writer thread does not exist yet); readiness says what it answered. */
static core_err_t probe_db(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    pers_sink *db = opaque;
    pers_res_t r;

    (void)timeout_ms; /* the sinks bound an attempt themselves (5 s) */
    r = pers_sink_ping(db, errstr, errstr_size);
    pers_ready_set(r == PERS_OK, errstr);
    return r == PERS_OK ? CORE_OK : r == PERS_ERROR ? CORE_ERR_INVALID : CORE_ERR_TRANSIENT;
}

/* The start-up policy (docs/OPERATIONS.md): the database first (a refused
 * password is found at once), then the brokers; then the sink runs. */
static int persist(core_service_t *svc, pers_sink *db, pers_dataset *ds, size_t nds)
{
    core_sink_dataset *sds = calloc(nds, sizeof(*sds));
    pers_plugin_conf pc = { db, ds, nds, core_service_catalog(svc), NULL, (size_t)conf.batch_size,
                            { conf.retry_base_ms, conf.retry_max_ms, 2.0, 0.5, 0 } };
    core_sink_opts o = { 0 };
    char err[512], member[256], group[256], breaker[64];
    int rc;

    if (!sds)
        return CORE_EX_SOFTWARE;
    for (size_t i = 0; i < nds; i++)
        sds[i] = (core_sink_dataset){ ds[i].name, ds[i].topic_valid, ds[i].topic_dlq };
    snprintf(err, sizeof(err), "%s at %s: not connected yet", db->name, db->addr);
    pers_ready_set(false, err);
    core_service_ready_add(svc, db->name, pers_ready, NULL);
    core_service_open(svc);
    if ((rc = core_service_await(svc, db->name, db->addr, probe_db, db)) !=
            CORE_SERVICE_CONTINUE ||
        (rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE ||
        (rc = core_service_bind_audit(svc, conf.audit_topic)) != CORE_SERVICE_CONTINUE)
        goto out;
    if ((rc = db->setup(db, ds, nds, conf.create_tables, err, sizeof(err))) != 0) {
        core_log_error("cannot set up the datasets in the database", CLF_S("error", err));
        goto out;
    }
    if (backup_conf.enabled &&
        !(pc.backup = pers_backup_new(&backup_conf, core_service_common(svc)->instance_id, err,
                                      sizeof(err)))) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    snprintf(group, sizeof(group), "svc-persister-%s", db->name);
    snprintf(breaker, sizeof(breaker), "persister_%s", db->name);
    o.plugin = !strcmp(db->name, "postgres") ? &pers_pg_plugin
               : !strcmp(db->name, "mysql") ? &pers_mysql_plugin : &pers_mongo_plugin;
    o.plugin_conf = &pc;
    o.datasets = sds;
    o.ndatasets = nds;
    o.cfg = core_service_config(svc);
    o.group_id = conf.group_id && *conf.group_id ? conf.group_id : group;
    /* static membership: a restarted instance takes its partitions back at
     * once instead of after the dead member's session (docs/svc-persister.md) */
    o.group_instance_id = core_service_group_instance_id(svc, conf.group_instance_id,
                                                         &conf.datasets, member, sizeof(member));
    o.catalog = core_service_catalog(svc);
    o.audit = true;
    o.audit_topic = conf.audit_topic;
    o.stage = "persister";
    o.batch_size = conf.batch_size;
    o.batch_wait_ms = conf.batch_timeout_ms;
    o.batch_inflight = 1; /* one batch in the database while the next fills */
    o.writer_thread = true;
    o.backoff = pc.backoff;
    o.breaker_threshold = (int)conf.breaker_threshold;
    o.breaker_open_ms = conf.breaker_open_ms;
    o.breaker_name = breaker;
    o.http = core_service_http(svc);
    core_log_info("started", CLF_S("sink", db->name), CLF_I("datasets", nds),
                  CLF_I("batch_size", conf.batch_size), CLF_I("batch_timeout_ms", o.batch_wait_ms),
                  CLF_B("buffer_backup", backup_conf.enabled));
    rc = core_sink_run(&o, err, sizeof(err));
    if (rc == CORE_EX_CONFIG)
        core_service_config_error(svc, err);
    else if (rc != 0 && err[0])
        core_log_error("cannot persist", CLF_S("error", err));
out:
    pers_backup_free(pc.backup);
    free(sds);
    return rc;
}

static int schema_sql(pers_dataset *ds, size_t nds)
{
    for (size_t i = 0; i < nds; i++) {
        char *sql = !strcmp(conf.sink, "mysql") ? pers_mysql_schema_sql(&ds[i])
                                                : pers_schema_sql(&ds[i], pg_conf.schema);
        if (!sql)
            return CORE_EX_SOFTWARE;
        fputs(sql, stdout);
        free(sql);
    }
    fflush(stdout);
    return 0;
}

static int run(core_service_t *svc, void *vconf)
{
    const char *sub = core_service_subcommand(svc);
    pers_dataset *ds = calloc(conf.datasets.n, sizeof(*ds));
    pers_sink *db = NULL;
    char err[512];
    size_t nds = 0;
    int rc = 0;

    (void)vconf;
    if (!ds)
        return CORE_EX_SOFTWARE;
    pers_metrics_init();
    for (; nds < conf.datasets.n; nds++)
        if (pers_dataset_init(&ds[nds], conf.datasets.v[nds], core_service_catalog(svc),
                              conf.topic_prefix, conf.topic_valid_suffix,
                              conf.topic_dlq_suffix, err, sizeof(err))) {
            rc = core_service_config_error(svc, err);
            goto out;
        }
    if (sub && !strcmp(sub, "schema-sql")) {
        rc = schema_sql(ds, nds);
        goto out;
    }
    db = !strcmp(conf.sink, "postgres") ? pers_pg_new(&pg_conf, err, sizeof(err))
         : !strcmp(conf.sink, "mysql")  ? pers_mysql_new(&mysql_conf, err, sizeof(err))
                                        : pers_mongo_new(&mongo_conf, err, sizeof(err));
    rc = db ? persist(svc, db, ds, nds) : core_service_config_error(svc, err);
out:
    if (db)
        db->free(db);
    for (size_t i = 0; i < nds; i++)
        pers_dataset_clear(&ds[i]);
    free(ds);
    return rc;
}

static const core_service_def def = {
    .name = "svc-persister",
    .summary = "batched, idempotent writes to PostgreSQL, MongoDB and MySQL",
    .usage = "svc-persister [schema-sql] --dataset NAME [--sink postgres|mongodb|mysql] [options]",
    .http_port_default = "8084",
    .keys = persister_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .datasets = &conf.datasets,
    .run = run,
    .tables = tables,
    .aliases = (const core_config_alias[]){ { "create-tables", "create.tables" },
                                            CORE_CFG_ALIAS_END },
    .deprecated = (const core_config_alias[]){ { "topic.valid.suffix", "topic.prefix" },
                                               { "topic.dlq.suffix", "topic.prefix" },
                                               CORE_CFG_ALIAS_END },
};

CORE_SERVICE_MAIN(def)
