/* svc-persister — batched, idempotent writes to PostgreSQL or MongoDB.
 *
 *   svc-persister --dataset payee [--sink postgres|mongodb] [--create-tables]
 *   svc-persister schema-sql --dataset payee      print the table's DDL
 *
 * See docs/svc-persister.md. */
#include "persister.h"

#include "tributary/core_log.h"
#include "tributary/core_service.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static struct persister_conf conf;

#define OFF(f) offsetof(struct persister_conf, f)

static const core_config_key persister_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, OFF(datasets),
      "Datasets to persist (repeat the flag or comma-separate)", 0, 0, NULL },
    { "sink", CORE_CFG_ENUM, "postgres", 0, OFF(sink), "Database the records are written to", 0,
      0, "postgres|mongodb" },
    { "batch.size", CORE_CFG_INT, "1000", 0, OFF(batch_size),
      "Largest batch (records); also the most records held in memory", 1, 1000000, NULL },
    { "batch.timeout.ms", CORE_CFG_INT, "30000", 0, OFF(batch_timeout_ms),
      "Longest a record waits in the buffer before its batch is written", 1, 86400000, NULL },
    { "group.id", CORE_CFG_STR, NULL, 0, OFF(group_id),
      "Consumer group (default svc-persister-<sink>; kafka.group.id also works)", 0, 0, NULL },
    { "group.instance.id", CORE_CFG_STR, NULL, 0, OFF(group_instance_id),
      "Static member id in the group (default svc-persister-<instance.id>-<datasets>; empty: a "
      "dynamic member)", 0, 0, NULL },
    { "topic.valid.suffix", CORE_CFG_STR, ".valid", 0, OFF(topic_valid_suffix),
      "Input topic of a dataset: <dataset><suffix>", 0, 0, NULL },
    { "topic.dlq.suffix", CORE_CFG_STR, ".dlq", 0, OFF(topic_dlq_suffix),
      "Dead-letter topic of a dataset: <dataset><suffix>", 0, 0, NULL },
    { "audit.topic", CORE_CFG_STR, "audit.events", 0, OFF(audit_topic),
      "Topic of the audit events", 0, 0, NULL },
    { "create-tables", CORE_CFG_BOOL, "false", 0, OFF(create_tables),
      "Create missing tables (PostgreSQL) or indexes (MongoDB) at start", 0, 0, NULL },
    { "pg.conninfo", CORE_CFG_STR, "host=127.0.0.1 port=5432 dbname=tributary user=tributary",
      0, OFF(pg_conninfo), "libpq connection string or URI (no password here: pg.password)", 0,
      0, NULL },
    { "pg.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, OFF(pg_password),
      "PostgreSQL password (pg.password_file / TB_PG_PASSWORD_FILE to read it from a file)", 0,
      0, NULL },
    { "pg.sslmode", CORE_CFG_ENUM, "prefer", 0, OFF(pg_sslmode),
      "TLS to PostgreSQL (verify-full with pg.sslrootcert in production)", 0, 0,
      "disable|allow|prefer|require|verify-ca|verify-full" },
    { "pg.sslrootcert", CORE_CFG_STR, NULL, 0, OFF(pg_sslrootcert),
      "CA certificate file that signed the server's certificate", 0, 0, NULL },
    { "pg.schema", CORE_CFG_STR, "public", 0, OFF(pg_schema),
      "PostgreSQL schema holding the dataset tables", 0, 0, NULL },
    { "pg.statement.timeout.ms", CORE_CFG_INT, "60000", 0, OFF(pg_statement_timeout_ms),
      "statement_timeout of the persister's session", 0, 3600000, NULL },
    { "mongodb.uri", CORE_CFG_STR, "mongodb://127.0.0.1:27017", CORE_CFG_SECRET, OFF(mongo_uri),
      "MongoDB connection string (mongodb.uri_file to read it from a file)", 0, 0, NULL },
    { "mongodb.database", CORE_CFG_STR, "tributary", 0, OFF(mongo_database),
      "Database of the dataset collections", 0, 0, NULL },
    { "mongodb.write.concern", CORE_CFG_STR, "majority", 0, OFF(mongo_write_concern),
      "Write concern w: majority or a number of members", 0, 0, NULL },
    { "mongodb.wtimeout.ms", CORE_CFG_INT, "10000", 0, OFF(mongo_wtimeout_ms),
      "Write concern timeout (0: none)", 0, 3600000, NULL },
    { "mongodb.indexes", CORE_CFG_LIST, NULL, 0, OFF(mongo_indexes),
      "Secondary indexes, dataset:field[+field...][:unique], created with --create-tables", 0, 0, NULL },
    { "mongodb.decimal128", CORE_CFG_BOOL, "true", 0, OFF(mongo_decimal128),
      "Store Avro decimals as Decimal128 (false: as their exact text; FerretDB 1.x has no "
      "Decimal128)", 0, 0, NULL },
    { "retry.base.ms", CORE_CFG_INT, "200", 0, OFF(retry_base_ms),
      "First delay after a failed database write (doubles, with jitter)", 1, 600000, NULL },
    { "retry.max.ms", CORE_CFG_INT, "30000", 0, OFF(retry_max_ms),
      "Longest delay between database write attempts", 1, 3600000, NULL },
    { "breaker.threshold", CORE_CFG_INT, "5", 0, OFF(breaker_threshold),
      "Consecutive failed writes that open the circuit breaker", 1, 1000, NULL },
    { "breaker.open.ms", CORE_CFG_INT, "10000", 0, OFF(breaker_open_ms),
      "How long an open breaker refuses database calls", 1, 3600000, NULL },
    { "buffer.backup", CORE_CFG_BOOL, "false", 0, OFF(backup_enabled),
      "Mirror the buffer in Redis (msg:buffer:<instance>:<uuid>) and restore it on start", 0, 0,
      NULL },
    { "redis.host", CORE_CFG_STR, "127.0.0.1", 0, OFF(redis_host),
      "Redis of the buffer backup", 0, 0, NULL },
    { "redis.port", CORE_CFG_INT, "6379", 0, OFF(redis_port), "Redis port", 1, 65535, NULL },
    { "redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, OFF(redis_password),
      "Redis password (redis.password_file)", 0, 0, NULL },
    { "redis.db", CORE_CFG_INT, "0", 0, OFF(redis_db), "Redis database number", 0, 15, NULL },
    CORE_CFG_END
};

static const char *const subcommands[] = { "schema-sql", NULL };

/* The start-up probe of the database: connect and ping (main thread, the
 * writer thread does not exist yet); readiness says what it answered. */
static core_err_t probe_db(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    pers_sink *sink = opaque;
    pers_res_t r;

    (void)timeout_ms; /* the sinks bound an attempt themselves (5 s) */
    r = sink->ping(sink, errstr, errstr_size);
    pers_ready_set(r == PERS_OK, errstr);
    return r == PERS_OK ? CORE_OK : r == PERS_ERROR ? CORE_ERR_INVALID : CORE_ERR_TRANSIENT;
}

static int run(core_service_t *svc, void *vconf)
{
    struct persister_conf *c = vconf;
    const core_avro_catalog_t *cat = core_service_catalog(svc);
    char err[512];
    int rc = 0;
    pers_sink *sink = NULL;
    pers_dataset *ds = calloc(c->datasets.n, sizeof(*ds));
    size_t nds = 0;

    if (!ds)
        return CORE_EX_SOFTWARE;
    for (; nds < c->datasets.n; nds++)
        if (pers_dataset_init(&ds[nds], c->datasets.v[nds], cat, c, err, sizeof(err))) {
            rc = core_service_config_error(svc, err);
            goto out;
        }

    const char *sub = core_service_subcommand(svc);
    if (sub && !strcmp(sub, "schema-sql")) {
        for (size_t i = 0; i < nds; i++) {
            char *sql = pers_schema_sql(&ds[i], c->pg_schema);
            if (!sql) {
                rc = CORE_EX_SOFTWARE;
                goto out;
            }
            fputs(sql, stdout);
            free(sql);
        }
        fflush(stdout);
        goto out;
    }

    bool pg = !strcmp(c->sink, "postgres");
    sink = pg ? pers_pg_new(c, err, sizeof(err)) : pers_mongo_new(c, err, sizeof(err));
    if (!sink) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    /* the start-up policy (docs/OPERATIONS.md): the database first (a
     * refused password is found at once), then the brokers */
    snprintf(err, sizeof(err), "%s at %s: not connected yet", sink->name, sink->addr);
    pers_ready_set(false, err);
    pers_ready_install(svc);
    core_service_open(svc);
    if ((rc = core_service_await(svc, sink->name, sink->addr, probe_db, sink)) !=
            CORE_SERVICE_CONTINUE ||
        (rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE ||
        (rc = core_service_bind_audit(svc, c->audit_topic)) != CORE_SERVICE_CONTINUE)
        goto out;
    rc = 0;
    if (pg && pers_pg_rows_init(ds, nds, err, sizeof(err)) != 0) {
        core_log_error("cannot prepare the datasets", CLF_S("error", err));
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    if (c->create_tables) {
        int r = pg ? pers_pg_create_tables(sink, ds, nds, err, sizeof(err))
                   : pers_mongo_create_indexes(sink, ds, nds, err, sizeof(err));
        if (r) {
            core_log_error("cannot create the tables or indexes", CLF_S("error", err));
            rc = CORE_EX_UNAVAILABLE;
            goto out;
        }
    }
    rc = persister_loop(svc, c, ds, nds, sink);
out:
    if (sink)
        sink->free(sink);
    for (size_t i = 0; i < nds; i++)
        pers_dataset_clear(&ds[i]);
    free(ds);
    return rc;
}

static const core_service_def def = {
    .name = "svc-persister",
    .summary = "batched, idempotent writes to PostgreSQL and MongoDB",
    .usage = "svc-persister [schema-sql] --dataset NAME [--sink postgres|mongodb] [options]",
    .http_port_default = "8084",
    .keys = persister_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .datasets = &conf.datasets,
    .run = run,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
