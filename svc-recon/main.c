/* svc-recon — compares what each stage of the pipeline reported to
 * audit.events and names every record delivered, rejected, retrying,
 * missing, altered, duplicated or unexpected.
 *
 *   svc-recon [options]                       consume audit.events, serve the API
 *   svc-recon report --batch ID [--json] [--verify-sinks]
 *                                             catch up, reconcile, answer, exit
 *   svc-recon replay --batch ID [--verdict missing|altered] [--dry-run]
 *                                             re-publish them to .raw, exit
 *   svc-recon token add --id NAME --role ROLE --file F   a new API token
 *
 * docs/svc-recon.md is the operator's guide. */
#include "api.h"
#include "auth.h"
#include "method.h"
#include "payload.h"
#include "consume.h"
#include "dashboard.h"
#include "metrics.h"
#include "reconcile.h"
#include "replay.h"
#include "report.h"
#include "state.h"
#include "statement.h"
#include "verify.h"
#include "winreport.h"
#include "webhook.h"

#include "tributary/core_audit.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_retry.h"
#include "tributary/core_service.h"
#include "tributary/core_topics.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct recon_conf {
    char *audit_topic;
    char *group_id;
    int64_t batch_max;
    int64_t batch_timeout_ms;
    char *pg_conninfo;
    char *pg_password;
    char *pg_sslmode;
    char *pg_sslrootcert;
    char *state_schema;
    int64_t future_ms;
    core_cfg_list sinks;
    char *batch;
    bool json;
    int64_t catchup_timeout_ms;
    int64_t page_size;
    int64_t window_ms;
    int64_t grace_ms;
    int64_t close_idle_ms;
    int64_t close_interval_ms;
    char *dataset;
    char *from;
    char *to;
    /* report --verify-sinks: the sinks as their services write them */
    bool verify_sinks;
    core_cfg_list coverage;
    core_cfg_list method;
    char *topic_prefix;
    int64_t retention_days, purge_interval_ms;
    char *v_persister_sink;
    char *v_pg_conninfo;
    char *v_pg_password;
    char *v_pg_schema;
    int64_t v_pg_timeout_ms;
    char *v_redis_host;
    int64_t v_redis_port;
    char *v_redis_user;
    char *v_redis_password;
    int64_t v_redis_db;
    char *v_cache_prefix;
    char *v_cache_format;
    char *v_mongo_uri;
    char *v_mongo_database;
    char *auth_tokens_file;
    bool auth_open;
    char *verdict;
    bool dry_run;
    char *webhook_url;
    int64_t webhook_attempts;
    int64_t webhook_timeout_ms;
};

static struct recon_conf conf;

#define OFF(f) offsetof(struct recon_conf, f)
static const core_config_key recon_keys[] = {
    { "audit.topic", CORE_CFG_STR, CORE_AUDIT_TOPIC, 0, OFF(audit_topic),
      "Topic of the audit events", 0, 0, NULL },
    { "group.id", CORE_CFG_STR, "tributary-recon", 0, OFF(group_id),
      "Consumer group of the svc-recon instances", 0, 0, NULL },
    { "batch.max", CORE_CFG_INT, "5000", 0, OFF(batch_max),
      "Most audit events applied in one PostgreSQL transaction", 1, 1000000, NULL },
    { "batch.timeout.ms", CORE_CFG_INT, "200", 0, OFF(batch_timeout_ms),
      "Longest a batch of audit events collects before it is applied", 1, 60000, NULL },
    { "pg.conninfo", CORE_CFG_STR, "host=127.0.0.1 port=5432 dbname=tributary user=tributary",
      0, OFF(pg_conninfo), "libpq connection string or URI of recon's state (no password here)",
      0, 0, NULL },
    { "pg.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, OFF(pg_password),
      "PostgreSQL password (pg.password_file / TB_PG_PASSWORD_FILE to read it from a file)", 0,
      0, NULL },
    { "pg.sslmode", CORE_CFG_ENUM, "prefer", 0, OFF(pg_sslmode),
      "TLS to PostgreSQL (verify-full with pg.sslrootcert in production)", 0, 0,
      "disable|allow|prefer|require|verify-ca|verify-full" },
    { "pg.sslrootcert", CORE_CFG_STR, NULL, 0, OFF(pg_sslrootcert),
      "CA certificate file that signed the server's certificate", 0, 0, NULL },
    { "state.schema", CORE_CFG_STR, "tributary_recon", 0, OFF(state_schema),
      "PostgreSQL schema of recon's own state (created and migrated on start)", 0, 0, NULL },
    { "future.tolerance.ms", CORE_CFG_INT, "86400000", 0, OFF(future_ms),
      "An audit event stamped later than now + this is bad input (counted, not applied)", 0,
      31536000000.0, NULL },
    { "sinks", CORE_CFG_LIST, NULL, 0, OFF(sinks),
      "Sinks every dataset must reach (cache-feeder, persister); default: those that ever "
      "reported on the dataset", 0, 0, NULL },
    { "batch", CORE_CFG_STR, NULL, 0, OFF(batch), "report: the batch id", 0, 0, NULL },
    { "json", CORE_CFG_BOOL, "false", 0, OFF(json), "report: one JSON object on stdout", 0, 0,
      NULL },
    { "catchup.timeout.ms", CORE_CFG_INT, "120000", 0, OFF(catchup_timeout_ms),
      "report: longest time to read audit.events to its end before answering", 1000,
      86400000, NULL },
    { "page.size", CORE_CFG_INT, "100", 0, OFF(page_size),
      "HTTP API: records or batches per page", 1, 10000, NULL },
    { "window.ms", CORE_CFG_INT, "600000", 0, OFF(window_ms),
      "Event-time window of the per-dataset, per-stage counts (fixed for a state schema)", 1000,
      86400000, NULL },
    { "grace.ms", CORE_CFG_INT, "60000", 0, OFF(grace_ms),
      "An event older than its stage's watermark minus this is late (counted, reopens a closed "
      "window); a window closes when every expected stage's watermark passed its end plus this",
      0, 86400000, NULL },
    { "close.idle.ms", CORE_CFG_INT, "600000", 0, OFF(close_idle_ms),
      "A batch or window whose stages' watermarks stay short of its end + grace.ms closes "
      "anyway this long after (unclean where an expected stage never reported)", 0,
      604800000, NULL },
    { "close.interval.ms", CORE_CFG_INT, "5000", 0, OFF(close_interval_ms),
      "daemon: how often due batches and windows are closed into statements", 100, 3600000,
      NULL },
    { "dataset", CORE_CFG_STR, NULL, 0, OFF(dataset),
      "report: the dataset whose windows to report (with from and to)", 0, 0, NULL },
    { "from", CORE_CFG_STR, NULL, 0, OFF(from),
      "report --dataset: from this time (ms since the epoch or ISO-8601)", 0, 0, NULL },
    { "to", CORE_CFG_STR, NULL, 0, OFF(to),
      "report --dataset: to this time, exclusive (ms since the epoch or ISO-8601)", 0, 0, NULL },
    { "verify-sinks", CORE_CFG_BOOL, "false", 0, OFF(verify_sinks),
      "report: also check the sinks' own stored state (docs/svc-recon-sinkcheck.md)", 0, 0,
      NULL },
    { "method", CORE_CFG_LIST, NULL, 0, OFF(method),
      "Reconciliation method per dataset, DATASET:METHOD entries (DATASET * for all; METHOD "
      "counts, ids, digests or full, full for a named dataset only); unset: digests",
      0, 0, NULL },
    CORE_TOPICS_CONFIG_KEYS(struct recon_conf, topic_prefix), /* .raw of method full, replay */
    { "retention.days", CORE_CFG_INT, "7", 0, OFF(retention_days),
      "Method full: days a kept payload stays (a dataset's PUT /retention setting wins)", 1,
      36500, NULL },
    { "retention.purge.interval.ms", CORE_CFG_INT, "3600000", 0, OFF(purge_interval_ms),
      "Method full: how often the daemon deletes the payloads past their retention", 100,
      86400000, NULL },
    { "coverage", CORE_CFG_LIST, NULL, 0, OFF(coverage),
      "Stores each dataset feeds, DATASET:STORE (postgres, redis, mongodb; * for every "
      "dataset); default: from sinks, else the sinks that ever reported on the dataset", 0, 0,
      NULL },
    { "verify.persister.sink", CORE_CFG_ENUM, "postgres", 0, OFF(v_persister_sink),
      "The database svc-persister writes (its sink key)", 0, 0, "postgres|mongodb" },
    { "verify.pg.conninfo", CORE_CFG_STR,
      "host=127.0.0.1 port=5432 dbname=tributary user=tributary", 0, OFF(v_pg_conninfo),
      "svc-persister's PostgreSQL (its pg.conninfo; no password here)", 0, 0, NULL },
    { "verify.pg.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, OFF(v_pg_password),
      "Its password; default: pg.password", 0, 0, NULL },
    { "verify.pg.schema", CORE_CFG_STR, "public", 0, OFF(v_pg_schema),
      "svc-persister's pg.schema", 0, 0, NULL },
    { "verify.pg.statement.timeout.ms", CORE_CFG_INT, "60000", 0, OFF(v_pg_timeout_ms),
      "Longest query of the PostgreSQL sink check", 100, 86400000, NULL },
    { "verify.redis.host", CORE_CFG_STR, "127.0.0.1", 0, OFF(v_redis_host),
      "svc-cache-feeder's redis.host (/path: unix socket)", 0, 0, NULL },
    { "verify.redis.port", CORE_CFG_INT, "6379", 0, OFF(v_redis_port),
      "svc-cache-feeder's redis.port", 1, 65535, NULL },
    { "verify.redis.user", CORE_CFG_STR, NULL, 0, OFF(v_redis_user),
      "svc-cache-feeder's redis.user", 0, 0, NULL },
    { "verify.redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, OFF(v_redis_password),
      "svc-cache-feeder's redis.password", 0, 0, NULL },
    { "verify.redis.db", CORE_CFG_INT, "0", 0, OFF(v_redis_db), "svc-cache-feeder's redis.db",
      0, 65535, NULL },
    { "verify.cache.prefix", CORE_CFG_STR, "tb", 0, OFF(v_cache_prefix),
      "svc-cache-feeder's cache.prefix", 0, 0, NULL },
    { "verify.cache.format", CORE_CFG_ENUM, "json", 0, OFF(v_cache_format),
      "svc-cache-feeder's cache.format", 0, 0, "json|hash|avro" },
    { "verify.mongodb.uri", CORE_CFG_STR, "mongodb://127.0.0.1:27017", CORE_CFG_SECRET,
      OFF(v_mongo_uri), "svc-persister's mongodb.uri", 0, 0, NULL },
    { "verify.mongodb.database", CORE_CFG_STR, "tributary", 0, OFF(v_mongo_database),
      "svc-persister's mongodb.database", 0, 0, NULL },
    { "verdict", CORE_CFG_ENUM, "missing", 0, OFF(verdict),
      "replay: the records to re-publish", 0, 0, "missing|altered" },
    { "dry.run", CORE_CFG_BOOL, "false", 0, OFF(dry_run),
      "replay: find the records, publish nothing", 0, 0, NULL },
    { "alert.webhook.url", CORE_CFG_STR, NULL, 0, OFF(webhook_url),
      "Alerts: URL a JSON POST goes to when a batch turns unclean or clean again", 0, 0, NULL },
    { "alert.webhook.attempts", CORE_CFG_INT, "5", 0, OFF(webhook_attempts),
      "Alerts: attempts per alert (5xx, timeouts and refused connections are retried)", 1, 100,
      NULL },
    { "alert.webhook.timeout.ms", CORE_CFG_INT, "5000", 0, OFF(webhook_timeout_ms),
      "Alerts: longest one attempt takes", 100, 600000, NULL },
    { "auth.tokens.file", CORE_CFG_STR, NULL, 0, OFF(auth_tokens_file),
      "HTTP API: token file (id role sha256, from `svc-recon token add`); unset: every API route "
      "answers 401 unless auth.open=true",
      0, 0, NULL },
    { "auth.open", CORE_CFG_BOOL, "false", 0, OFF(auth_open),
      "HTTP API without a token file: true opens every route to every caller (development only)",
      0, 0, NULL },
    CORE_CFG_END
};

/* The API's token table: the HTTP server outlives run(), main frees it. */
static recon_auth *auth;
static recon_webhook *webhook;

static const char *const subcommands[] = { "report", "close", "verify-chain", "replay", NULL };

/* Refused settings: 0, or the exit code after printing the line. */
static int check_conf(core_service_t *svc, const struct recon_conf *c, unsigned *sinks)
{
    char err[300];

    if (!recon_schema_name_ok(c->state_schema)) {
        snprintf(err, sizeof(err), "state.schema: '%s' is not a plain lower-case SQL name",
                 c->state_schema);
        return core_service_config_error(svc, err);
    }
    *sinks = 0;
    for (size_t i = 0; i < c->sinks.n; i++) {
        int s = recon_stage_index(c->sinks.v[i], strlen(c->sinks.v[i]));
        if (s != RS_CACHE && s != RS_PERSISTER) {
            snprintf(err, sizeof(err), "sinks: '%s' is not a sink (cache-feeder, persister)",
                     c->sinks.v[i]);
            return core_service_config_error(svc, err);
        }
        *sinks |= 1u << s;
    }
    for (size_t i = 0; i < c->method.n; i++)
        if (recon_method_check(c->method.v[i], core_service_catalog(svc), err, sizeof(err)) != 0)
            return core_service_config_error(svc, err);
    for (size_t i = 0; i < c->coverage.n; i++)
        if (recon_coverage_check(c->coverage.v[i], core_service_catalog(svc), err,
                                 sizeof(err)) != 0)
            return core_service_config_error(svc, err);
    return 0;
}

static void verify_opts(core_service_t *svc, const struct recon_conf *c, unsigned sinks,
                        recon_verify_opts *vo)
{
    memset(vo, 0, sizeof(*vo));
    vo->schema = c->state_schema;
    vo->cat = core_service_catalog(svc);
    vo->sinks = sinks;
    vo->coverage = (const char *const *)c->coverage.v;
    vo->ncoverage = c->coverage.n;
    vo->persister_store = strcmp(c->v_persister_sink, "mongodb") == 0 ? RECON_STORE_MONGODB
                                                                       : RECON_STORE_POSTGRES;
    vo->pg.conninfo = c->v_pg_conninfo;
    vo->pg.password = c->v_pg_password ? c->v_pg_password : c->pg_password;
    vo->pg.schema = c->v_pg_schema;
    vo->pg.statement_timeout_ms = c->v_pg_timeout_ms;
    vo->redis.host = c->v_redis_host;
    vo->redis.port = (int)c->v_redis_port;
    vo->redis.user = c->v_redis_user;
    vo->redis.password = c->v_redis_password;
    vo->redis.db = (int)c->v_redis_db;
    vo->redis.prefix = c->v_cache_prefix;
    vo->redis.format = !strcmp(c->v_cache_format, "hash")   ? SINKCHECK_REDIS_HASH
                       : !strcmp(c->v_cache_format, "avro") ? SINKCHECK_REDIS_AVRO
                                                            : SINKCHECK_REDIS_JSON;
    vo->mongo.uri = c->v_mongo_uri;
    vo->mongo.database = c->v_mongo_database;
}

static void state_opts(core_service_t *svc, const struct recon_conf *c, recon_state_opts *so)
{
    memset(so, 0, sizeof(*so));
    so->pg.conninfo = c->pg_conninfo;
    so->pg.password = c->pg_password;
    so->pg.sslmode = c->pg_sslmode;
    so->pg.sslrootcert = c->pg_sslrootcert;
    so->pg.schema = c->state_schema;
    so->audit_topic = c->audit_topic;
    so->cat = core_service_catalog(svc);
    so->future_ms = c->future_ms;
    so->window_ms = c->window_ms;
    so->grace_ms = c->grace_ms;
    so->methods = (const char *const *)c->method.v;
    so->nmethods = c->method.n;
}

static void consume_opts(core_service_t *svc, const struct recon_conf *c, bool catch_up,
                         recon_consume_opts *co)
{
    memset(co, 0, sizeof(*co));
    co->cfg = core_service_config(svc);
    co->topic = c->audit_topic;
    co->group_id = c->group_id;
    co->batch_max = (int)c->batch_max;
    co->batch_ms = (int)c->batch_timeout_ms;
    co->catch_up = catch_up;
    co->catch_up_timeout_ms = (int)c->catchup_timeout_ms;
}

/* report --dataset NAME --from T --to T: the windows, exit 0 when all are clean. */
static int window_report(core_service_t *svc, struct recon_conf *c, unsigned sinks,
                         recon_state_t *st, int64_t from, int64_t to)
{
    recon_win_query q = { c->state_schema, c->dataset, c->window_ms, from, to, sinks };
    cJSON *o = NULL;
    char err[512];
    char *s;
    int rc;

    (void)svc;
    if (recon_windows_json(recon_state_conn(st), &q, &o, err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        return CORE_EX_UNAVAILABLE;
    }
    s = c->json ? cJSON_PrintUnformatted(o) : recon_windows_text(o);
    rc = !s ? CORE_EX_SOFTWARE : cJSON_IsTrue(cJSON_GetObjectItem(o, "clean")) ? 0 : 1;
    if (s)
        printf(c->json ? "%s\n" : "%s", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
    return rc;
}

static void payload_opts_free(recon_payload_opts *po)
{
    for (size_t i = 0; i < po->n; i++) {
        free(po->topics[i]);
        free(po->datasets[i]);
    }
    free(po->topics);
    free(po->datasets);
    free((char *)po->group_id);
    memset(po, 0, sizeof(*po));
}

/* The keeper's settings: one .raw topic per dataset whose method is full. */
static int payload_opts(core_service_t *svc, const struct recon_conf *c,
                        const recon_state_opts *so, recon_payload_opts *po)
{
    memset(po, 0, sizeof(*po));
    po->pg = so->pg;
    po->cfg = core_service_config(svc);
    po->topics = calloc(c->method.n + 1, sizeof(*po->topics));
    po->datasets = calloc(c->method.n + 1, sizeof(*po->datasets));
    char *g = malloc(strlen(c->group_id) + sizeof("-payloads"));
    if (!po->topics || !po->datasets || !g) {
        free(g);
        payload_opts_free(po);
        return core_service_config_error(svc, "out of memory");
    }
    sprintf(g, "%s-payloads", c->group_id);
    po->group_id = g;
    for (size_t i = 0; i < c->method.n; i++) {
        char *e = c->method.v[i], *colon = strchr(e, ':');
        if (!colon || strcmp(colon + 1, "full") != 0)
            continue;
        size_t dl = (size_t)(colon - e);
        char raw[CORE_TOPIC_MAX + 1], err[300] = "out of memory";
        char *d = strndup(e, dl), *t = NULL;
        if (!d || core_topic_name(c->topic_prefix, d, CORE_TOPIC_RAW, raw, sizeof(raw), err,
                                  sizeof(err)) != 0 || !(t = strdup(raw))) {
            free(d);
            payload_opts_free(po);
            return core_service_config_error(svc, err);
        }
        po->topics[po->n] = t;
        po->datasets[po->n++] = d;
    }
    return 0;
}

static int run_report(core_service_t *svc, struct recon_conf *c, unsigned sinks)
{
    recon_state_opts so;
    recon_consume_opts co;
    recon_consume_stats cs;
    recon_reconcile_opts ro = { 0 };
    recon_state_t *st;
    recon_report *rep = NULL;
    char err[512];
    int rc;

    int64_t from = 0, to = 0;
    bool windows = c->dataset && *c->dataset;
    if (windows) {
        if (!core_avro_catalog_by_dataset(core_service_catalog(svc), c->dataset))
            return core_service_config_error(svc, "dataset: not in the catalogue");
        if (!c->from || recon_parse_time(c->from, &from) != 0 || !c->to ||
            recon_parse_time(c->to, &to) != 0 || to <= from)
            return core_service_config_error(
                svc, "from, to: required with dataset, ms since the epoch or ISO-8601, from < to");
    } else if (!c->batch || !*c->batch) {
        return core_service_config_error(svc, "batch: required by report (or dataset, from, to)");
    }
    state_opts(svc, c, &so);
    if (!(st = recon_state_open(&so, err, sizeof(err)))) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        return CORE_EX_UNAVAILABLE;
    }
    consume_opts(svc, c, true, &co);
    rc = recon_consume_run(st, &co, &cs, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        recon_state_free(st);
        return rc;
    }
    core_log_info("audit events caught up", CLF_I("applied", (int64_t)cs.applied),
                  CLF_I("bad", (int64_t)cs.bad), CLF_I("skipped", (int64_t)cs.skipped));
    /* method full: the .raw records kept too, as the daemon's keeper does */
    recon_payload_opts po;
    if ((rc = payload_opts(svc, c, &so, &po)) != 0) {
        recon_state_free(st);
        return rc;
    }
    rc = recon_payload_catch_up(&po, (int)c->catchup_timeout_ms, err, sizeof(err));
    payload_opts_free(&po);
    if (rc != 0) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        recon_state_free(st);
        return rc;
    }
    if (windows) {
        rc = window_report(svc, c, sinks, st, from, to);
        recon_state_free(st);
        return rc;
    }
    ro.schema = c->state_schema;
    ro.sinks = sinks;
    if (recon_reconcile_batch(recon_state_conn(st), &ro, c->batch, &rep, err, sizeof(err)) !=
        CORE_OK) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        recon_state_free(st);
        return CORE_EX_UNAVAILABLE;
    }
    if (c->verify_sinks) {
        recon_verify_opts vo;
        verify_opts(svc, c, sinks, &vo);
        if (recon_verify_sinks(recon_state_conn(st), &vo, rep, err, sizeof(err)) != CORE_OK) {
            fprintf(stderr, "svc-recon: report: %s\n", err);
            recon_report_free(rep);
            recon_state_free(st);
            return CORE_EX_UNAVAILABLE;
        }
    }
    if (c->json) {
        cJSON *o = recon_report_json(rep);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        rc = s ? 0 : CORE_EX_SOFTWARE;
    } else {
        char *s = recon_report_text(rep, 50);
        if (s)
            fputs(s, stdout);
        free(s);
        rc = s ? 0 : CORE_EX_SOFTWARE;
    }
    fflush(stdout);
    if (rc == 0)
        rc = rep->clean ? 0 : 1;
    recon_report_free(rep);
    recon_state_free(st);
    return rc;
}

static void close_opts(const struct recon_conf *c, unsigned sinks, recon_close_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->schema = c->state_schema;
    o->rec.schema = c->state_schema;
    o->rec.sinks = sinks;
    o->window_ms = c->window_ms;
    o->grace_ms = c->grace_ms;
    o->idle_ms = c->close_idle_ms;
    o->batches = true;
    o->windows = true;
}

/* What the daemon's tick does: close what is due, purge old payloads. */
typedef struct daemon_tick {
    recon_close_opts clo;
    int64_t retention_days, purge_ms, next_purge; /* monotonic ms */
} daemon_tick;

/* Delete the payloads past their retention (method full), at most every purge_ms. */
static void purge_tick(recon_state_t *st, daemon_tick *t)
{
    int64_t deleted = 0;
    char err[512];

    if (core_mono_ms() < t->next_purge)
        return;
    t->next_purge = core_mono_ms() + t->purge_ms;
    if (recon_payload_purge(recon_state_conn(st), t->clo.schema, t->retention_days,
                            core_now_ms(), &deleted, err, sizeof(err)) != CORE_OK)
        core_log_warn("payload purge failed; retried later", CLF_S("reason", err));
    else if (deleted)
        core_log_info("payloads past their retention deleted", CLF_I("records", deleted));
}

/* The daemon's tick: close what is due. */
static void close_tick(recon_state_t *st, void *arg)
{
    daemon_tick *t = arg;
    const recon_close_opts *o = &t->clo;
    recon_close_stats cs;
    char err[512];

    purge_tick(st, t);

    if (recon_close_due(recon_state_conn(st), o, &cs, err, sizeof(err)) != CORE_OK)
        core_log_warn("closing batches and windows failed; retried later", CLF_S("reason", err));
    else if (recon_metrics_windows(recon_state_conn(st), o->schema, o->window_ms, err,
                                   sizeof(err)) != CORE_OK)
        core_log_warn("windows gauge not updated", CLF_S("reason", err));
}

/* svc-recon close: catch up, close every due batch and window, exit. */
static int run_close(core_service_t *svc, struct recon_conf *c, unsigned sinks)
{
    recon_state_opts so;
    recon_consume_opts co;
    recon_consume_stats cs;
    recon_close_opts clo;
    recon_close_stats st;
    recon_state_t *state;
    char err[512];
    int rc;

    state_opts(svc, c, &so);
    if (!(state = recon_state_open(&so, err, sizeof(err)))) {
        fprintf(stderr, "svc-recon: close: %s\n", err);
        return CORE_EX_UNAVAILABLE;
    }
    consume_opts(svc, c, true, &co);
    if ((rc = recon_consume_run(state, &co, &cs, err, sizeof(err))) != 0) {
        fprintf(stderr, "svc-recon: close: %s\n", err);
        recon_state_free(state);
        return rc;
    }
    close_opts(c, sinks, &clo);
    clo.webhook = recon_webhook_new(c->webhook_url, (int)c->webhook_attempts,
                                    (int)c->webhook_timeout_ms, err, sizeof(err));
    if (!clo.webhook && *err) {
        recon_state_free(state);
        return core_service_config_error(svc, err);
    }
    rc = 0;
    if (recon_close_due(recon_state_conn(state), &clo, &st, err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "svc-recon: close: %s\n", err);
        rc = CORE_EX_UNAVAILABLE;
    } else {
        printf("closed: %d batches, %d windows (%d unclean, %d amended)\n", st.batches,
               st.windows, st.unclean, st.amended);
    }
    recon_webhook_free(clo.webhook); /* the alerts of this close sent (or given up) first */
    recon_state_free(state);
    return rc;
}

/* svc-recon verify-chain: check the statements offline (no Kafka). */
static int run_verify_chain(core_service_t *svc, struct recon_conf *c)
{
    recon_state_opts so;
    recon_chain_result res;
    recon_state_t *state;
    char err[512];

    state_opts(svc, c, &so);
    if (!(state = recon_state_open(&so, err, sizeof(err)))) {
        fprintf(stderr, "svc-recon: verify-chain: %s\n", err);
        return CORE_EX_UNAVAILABLE;
    }
    if (recon_chain_verify(recon_state_conn(state), c->state_schema, &res, err, sizeof(err)) !=
        CORE_OK) {
        fprintf(stderr, "svc-recon: verify-chain: %s\n", err);
        recon_state_free(state);
        return CORE_EX_UNAVAILABLE;
    }
    recon_state_free(state);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", res.ok);
        cJSON_AddNumberToObject(o, "statements", (double)res.statements);
        if (res.ok) {
            cJSON_AddStringToObject(o, "head", res.head);
        } else {
            cJSON_AddNumberToObject(o, "broken_seq", (double)res.broken_seq);
            cJSON_AddStringToObject(o, "broken_subject", res.broken_subject);
            cJSON_AddStringToObject(o, "reason", res.reason);
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else if (res.ok) {
        printf("chain intact: %" PRId64 " statements, head %s\n", res.statements,
               res.statements ? res.head : "(none)");
    } else {
        printf("chain BROKEN at statement %" PRId64 " (%s): %s\n", res.broken_seq,
               res.broken_subject, res.reason);
    }
    return res.ok ? 0 : 1;
}

/* svc-recon replay: catch up, re-publish the batch's records of the verdict,
 * print what was done (one JSON object); exit 0, or 1 when some record is no
 * longer on its topic. */
static int run_replay(core_service_t *svc, struct recon_conf *c, unsigned sinks)
{
    recon_state_opts so;
    recon_consume_opts co;
    recon_consume_stats cs;
    recon_reconcile_opts ro = { 0 };
    recon_replay_opts rp = { 0 };
    recon_state_t *st;
    cJSON *out = NULL;
    char err[512];
    int rc;

    if (!c->batch || !*c->batch)
        return core_service_config_error(svc, "batch: required by replay");
    state_opts(svc, c, &so);
    if (!(st = recon_state_open(&so, err, sizeof(err)))) {
        fprintf(stderr, "svc-recon: replay: %s\n", err);
        return CORE_EX_UNAVAILABLE;
    }
    consume_opts(svc, c, true, &co);
    if ((rc = recon_consume_run(st, &co, &cs, err, sizeof(err))) != 0) {
        fprintf(stderr, "svc-recon: replay: %s\n", err);
        recon_state_free(st);
        return rc;
    }
    ro.schema = c->state_schema;
    ro.sinks = sinks;
    rp.cfg = core_service_config(svc);
    rp.topic_prefix = c->topic_prefix;
    rp.verdict = recon_verdict_index(c->verdict);
    rp.dry_run = c->dry_run;
    rc = recon_replay_batch(recon_state_conn(st), &ro, &rp, c->batch, &out, err, sizeof(err));
    recon_state_free(st);
    if (rc != CORE_OK) {
        fprintf(stderr, "svc-recon: replay: %s\n", err);
        return rc == CORE_ERR_NOTFOUND ? CORE_EX_DATAERR : CORE_EX_UNAVAILABLE;
    }
    char *s = cJSON_PrintUnformatted(out);
    if (s)
        printf("%s\n", s);
    fflush(stdout);
    rc = !s ? CORE_EX_SOFTWARE
            : cJSON_GetArraySize(cJSON_GetObjectItem(out, "not_found")) ? 1 : 0;
    free(s);
    cJSON_Delete(out);
    return rc;
}

static int run_daemon(core_service_t *svc, struct recon_conf *c, unsigned sinks)
{
    const struct core_service_common *common = core_service_common(svc);
    /* the API's context outlives this function (the server stops after run
     * returns): static */
    static recon_api api;
    recon_state_opts so;
    recon_consume_opts co;
    recon_consume_stats cs = { 0 };
    recon_state_t *st = NULL;
    core_backoff bo = { 500, 10000, 2.0, 0.5, 0 };
    char err[512];
    int rc, attempt = 0;

    if (!(auth = recon_auth_new(c->auth_tokens_file, c->auth_open, err, sizeof(err))))
        return core_service_config_error(svc, err);
    if (recon_auth_open(auth))
        core_log_warn("auth.open=true and no auth.tokens.file: the HTTP API is open to every "
                      "caller (development only)",
                      CLF_S("setting", "auth.open"));
    else if (!recon_auth_enabled(auth))
        core_log_warn("auth.tokens.file not set: every API route answers 401 (set "
                      "auth.tokens.file, or auth.open=true for development)");
    else if (c->auth_open)
        core_log_warn("auth.open=true ignored: auth.tokens.file is set",
                      CLF_S("file", c->auth_tokens_file));
    core_http_set_guard(core_service_http(svc), recon_auth_guard, auth);
    webhook = recon_webhook_new(c->webhook_url, (int)c->webhook_attempts,
                                (int)c->webhook_timeout_ms, err, sizeof(err));
    if (!webhook && *err)
        return core_service_config_error(svc, err);
    state_opts(svc, c, &so);
    api.pg = so.pg;
    api.rec.schema = c->state_schema;
    api.rec.sinks = sinks;
    api.page_size = (int)c->page_size;
    api.cat = core_service_catalog(svc);
    api.window_ms = c->window_ms;
    api.grace_ms = c->grace_ms;
    api.idle_ms = c->close_idle_ms;
    api.retention_days = c->retention_days;
    api.cfg = core_service_config(svc);
    api.topic_prefix = c->topic_prefix;
    api.webhook = webhook;
    recon_api_init(&api);
    /* /readyz: Kafka, then PostgreSQL */
    core_service_ready_also(svc, recon_api_ready, &api);
    while (!(st = recon_state_open(&so, err, sizeof(err)))) {
        core_log_warn("state unavailable; retrying", CLF_S("reason", err),
                      CLF_I("attempt", attempt));
        if (core_lifecycle_wait(core_backoff_delay_ms(&bo, attempt++))) {
            recon_api_close(&api);
            return 0;
        }
    }
    recon_api_register(core_service_http(svc), &api);
    recon_dashboard_register(core_service_http(svc));
    core_service_open(svc);
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(core_service_http(svc))),
                  CLF_S("instance", common->instance_id), CLF_S("group", c->group_id),
                  CLF_S("topic", c->audit_topic), CLF_S("schema", c->state_schema));
    consume_opts(svc, c, false, &co);
    static daemon_tick tick; /* read by the tick during the loop */
    close_opts(c, sinks, &tick.clo);
    tick.clo.webhook = webhook;
    tick.retention_days = c->retention_days;
    tick.purge_ms = c->purge_interval_ms;
    tick.next_purge = 0;
    co.tick = close_tick;
    co.tick_arg = &tick;
    co.tick_ms = (int)c->close_interval_ms;
    /* method full: the .raw records of its datasets kept (payload.h) */
    recon_payload_opts po;
    recon_payload_keeper *keeper = NULL;
    if ((rc = payload_opts(svc, c, &so, &po)) != 0) {
        recon_state_free(st);
        recon_api_close(&api);
        return rc;
    }
    if (po.n && !(keeper = recon_payload_start(&po, err, sizeof(err)))) {
        core_log_error("payload keeper not started: exiting", CLF_S("reason", err));
        payload_opts_free(&po);
        recon_state_free(st);
        recon_api_close(&api);
        return CORE_EX_UNAVAILABLE;
    }
    rc = recon_consume_run(st, &co, &cs, err, sizeof(err));
    if (rc != 0)
        core_log_error("audit consumer stopped", CLF_S("reason", err));
    recon_payload_stop(keeper);
    payload_opts_free(&po);
    core_log_info("stopped", CLF_I("applied", (int64_t)cs.applied), CLF_I("bad", (int64_t)cs.bad),
                  CLF_I("skipped", (int64_t)cs.skipped),
                  CLF_I("transactions", (int64_t)cs.transactions));
    recon_state_free(st);
    recon_api_close(&api);
    return rc;
}

static int run(core_service_t *svc, void *confp)
{
    struct recon_conf *c = confp;
    const char *sub = core_service_subcommand(svc);
    unsigned sinks = 0;
    int rc;

    /* verify-chain reads recon's state only: offline, no broker needed */
    if (sub && strcmp(sub, "verify-chain") == 0)
        return (rc = check_conf(svc, c, &sinks)) != 0 ? rc : run_verify_chain(svc, c);
    /* the start-up policy: the brokers first, as every service (OPERATIONS.md) */
    if ((rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE)
        return rc;
    if ((rc = check_conf(svc, c, &sinks)) != 0)
        return rc;
    if (sub && strcmp(sub, "report") == 0)
        return run_report(svc, c, sinks);
    if (sub && strcmp(sub, "close") == 0)
        return run_close(svc, c, sinks);
    if (sub && strcmp(sub, "replay") == 0)
        return run_replay(svc, c, sinks);
    return run_daemon(svc, c, sinks);
}

static const core_service_def def = {
    .name = "svc-recon",
    .summary = "reconciliation of every stage from audit.events",
    .usage = "svc-recon [options]\n"
             "       svc-recon report --batch ID [--json] [--verify-sinks] [options]\n"
             "       svc-recon report --dataset NAME --from T --to T [--json] [options]\n"
             "       svc-recon close [options]\n"
             "       svc-recon verify-chain [--json] [options]\n"
             "       svc-recon replay --batch ID [--verdict missing|altered] [--dry.run] "
             "[options]\n"
             "       svc-recon token add --id NAME --role viewer|operator|admin --file FILE",
    .http_port_default = "8085",
    .keys = recon_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .run = run,
};

int main(int argc, char **argv)
{
    int rc;

    /* a file tool: no broker, no state, no configuration */
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return recon_token_main(argc, argv);
    rc = core_service_main(&def, argc, argv, environ);
    recon_webhook_free(webhook);
    recon_auth_free(auth);
    recon_metrics_free();
    return rc;
}
