/* svc-recon — compares what each stage of the pipeline reported to
 * audit.events and names every record delivered, rejected, retrying,
 * missing, altered, duplicated or unexpected.
 *
 *   svc-recon [options]                       consume audit.events, serve the API
 *   svc-recon report --batch ID [--json]      catch up, reconcile, answer, exit
 *   svc-recon replay --batch ID [--verdict missing|altered] [--dry-run]
 *                                             re-publish them to .raw, exit
 *   svc-recon token add --id NAME --role ROLE --file F   a new API token
 *
 * docs/svc-recon.md is the operator's guide. */
#include "api.h"
#include "auth.h"
#include "consume.h"
#include "dashboard.h"
#include "metrics.h"
#include "reconcile.h"
#include "replay.h"
#include "report.h"
#include "state.h"
#include "webhook.h"

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_retry.h"
#include "tributary/core_service.h"

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
    char *auth_tokens_file;
    char *verdict;
    bool dry_run;
    char *webhook_url;
    int64_t webhook_attempts;
    int64_t webhook_timeout_ms;
};

static struct recon_conf conf;

#define OFF(f) offsetof(struct recon_conf, f)
static const core_config_key recon_keys[] = {
    { "audit.topic", CORE_CFG_STR, "audit.events", 0, OFF(audit_topic),
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
      "HTTP API: token file (id role sha256, from `svc-recon token add`); unset: the API is open",
      0, 0, NULL },
    CORE_CFG_END
};

/* The API's token table: the HTTP server outlives run(), main frees it. */
static recon_auth *auth;
static recon_webhook *webhook;

static const char *const subcommands[] = { "report", "replay", NULL };

static const core_kafka_prop kafka_defaults[] = {
    { "bootstrap.servers", "127.0.0.1:9092" },
};

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
    return 0;
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
}

static void consume_opts(core_service_t *svc, const struct recon_conf *c, bool catch_up,
                         recon_consume_opts *co)
{
    memset(co, 0, sizeof(*co));
    co->cfg = core_service_config(svc);
    co->kafka_defaults = kafka_defaults;
    co->nkafka_defaults = CORE_ARRAY_SIZE(kafka_defaults);
    co->topic = c->audit_topic;
    co->group_id = c->group_id;
    co->batch_max = (int)c->batch_max;
    co->batch_ms = (int)c->batch_timeout_ms;
    co->catch_up = catch_up;
    co->catch_up_timeout_ms = (int)c->catchup_timeout_ms;
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

    if (!c->batch || !*c->batch)
        return core_service_config_error(svc, "batch: required by report");
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
    ro.schema = c->state_schema;
    ro.sinks = sinks;
    if (recon_reconcile_batch(recon_state_conn(st), &ro, c->batch, &rep, err, sizeof(err)) !=
        CORE_OK) {
        fprintf(stderr, "svc-recon: report: %s\n", err);
        recon_state_free(st);
        return CORE_EX_UNAVAILABLE;
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
    rp.kafka_defaults = kafka_defaults;
    rp.nkafka_defaults = CORE_ARRAY_SIZE(kafka_defaults);
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

    if (!(auth = recon_auth_new(c->auth_tokens_file, err, sizeof(err))))
        return core_service_config_error(svc, err);
    if (!recon_auth_enabled(auth))
        core_log_warn("auth.tokens.file not set: the HTTP API is open to every caller");
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
    api.cfg = core_service_config(svc);
    api.kafka_defaults = kafka_defaults;
    api.nkafka_defaults = CORE_ARRAY_SIZE(kafka_defaults);
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
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(core_service_http(svc))),
                  CLF_S("instance", common->instance_id), CLF_S("group", c->group_id),
                  CLF_S("topic", c->audit_topic), CLF_S("schema", c->state_schema));
    consume_opts(svc, c, false, &co);
    rc = recon_consume_run(st, &co, &cs, err, sizeof(err));
    if (rc != 0)
        core_log_error("audit consumer stopped", CLF_S("reason", err));
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

    /* the start-up policy: the brokers first, as every service (OPERATIONS.md) */
    if ((rc = core_service_await_kafka(svc)) != CORE_SERVICE_CONTINUE)
        return rc;
    if ((rc = check_conf(svc, c, &sinks)) != 0)
        return rc;
    if (sub && strcmp(sub, "report") == 0)
        return run_report(svc, c, sinks);
    if (sub && strcmp(sub, "replay") == 0)
        return run_replay(svc, c, sinks);
    return run_daemon(svc, c, sinks);
}

static const core_service_def def = {
    .name = "svc-recon",
    .summary = "reconciliation of every stage from audit.events",
    .usage = "svc-recon [options]\n"
             "       svc-recon report --batch ID [--json] [options]\n"
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
