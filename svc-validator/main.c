/* svc-validator — rules and cached external checks; routes every record to
 * success, retry or dead-letter topics, exactly once.
 *
 *   svc-validator --dataset NAME [--dataset NAME2 ...] [options]
 *   svc-validator replay --dataset NAME [--class C] [--reason R] [--since T] [--dry.run]
 *   svc-validator invalidate --dataset NAME --field F [--value V]
 *
 * docs/svc-validator.md is the operator's guide. */
#include "replay.h"
#include "validator.h"
#include "verify.h"

#include "tributary/core_audit.h"
#include "tributary/core_exit.h"
#include "tributary/core_http.h"
#include "tributary/core_log.h"
#include "tributary/core_service.h"
#include "tributary/core_topics.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct validator_conf {
    core_cfg_list datasets;
    char *group_id;
    char *group_instance_id;
    char *transactional_id;
    char *topic_prefix;
    char *audit_topic;
    int64_t batch_max;
    int64_t commit_interval_ms;
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    double retry_multiplier;
    double retry_jitter;
    int64_t retry_max_attempts;
    int64_t clock_skew_ms;
    core_redis_config redis; /* libcore's redis.* keys */
    int64_t verify_concurrency;
    int64_t verify_timeout_ms;
    int64_t breaker_failures;
    int64_t breaker_open_ms;
    char *replay_class;
    char *replay_reason;
    char *replay_since;
    bool dry_run;
    char *field;
    char *value;
};

static struct validator_conf conf;

#define OFF(f) offsetof(struct validator_conf, f)
static const core_config_key validator_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, OFF(datasets),
      "Datasets to validate (repeat the flag or comma-separate)", 0, 0, NULL },
    { "group.id", CORE_CFG_STR, "tributary-validator", 0, OFF(group_id),
      "Consumer group of the validator instances", 0, 0, NULL },
    { "group.instance.id", CORE_CFG_STR, NULL, 0, OFF(group_instance_id),
      "Static member id in the group (default svc-validator-<instance.id>-<datasets>; empty: "
      "a dynamic member)", 0, 0, NULL },
    { "transactional.id", CORE_CFG_STR, NULL, 0, OFF(transactional_id),
      "Transactional id of this instance (default svc-validator-<instance.id>); stable per "
      "instance, unique across instances", 0, 0, NULL },
    CORE_TOPICS_CONFIG_KEYS(struct validator_conf, topic_prefix),
    { "audit.topic", CORE_CFG_STR, CORE_AUDIT_TOPIC, 0, OFF(audit_topic),
      "Topic of the audit events", 0, 0, NULL },
    { "batch.max", CORE_CFG_INT, "1000", 0, OFF(batch_max),
      "Most records in one transaction", 1, 100000, NULL },
    { "commit.interval.ms", CORE_CFG_INT, "100", 0, OFF(commit_interval_ms),
      "Longest time a batch collects records before its transaction commits", 1, 60000, NULL },
    { "retry.base.ms", CORE_CFG_INT, "1000", 0, OFF(retry_base_ms),
      "Delay before the first retry of a transient failure", 0, 86400000, NULL },
    { "retry.max.ms", CORE_CFG_INT, "60000", 0, OFF(retry_max_ms),
      "Cap of the retry delay", 0, 86400000, NULL },
    { "retry.multiplier", CORE_CFG_DOUBLE, "2.0", 0, OFF(retry_multiplier),
      "Growth of the retry delay per attempt", 1, 100, NULL },
    { "retry.jitter", CORE_CFG_DOUBLE, "0.5", 0, OFF(retry_jitter),
      "Share of the delay taken off at random (0 none, 1 full jitter)", 0, 1, NULL },
    { "retry.max.attempts", CORE_CFG_INT, "5", 0, OFF(retry_max_attempts),
      "Retries before a record goes to the DLQ as exhausted", 0, 1000, NULL },
    { "clock.skew.ms", CORE_CFG_INT, "300000", 0, OFF(clock_skew_ms),
      "Tolerance of the not_future check", 0, 86400000, NULL },
    CORE_REDIS_CONFIG_KEYS(struct validator_conf, redis), /* the verification cache */
    { "verify.concurrency", CORE_CFG_INT, "16", 0, OFF(verify_concurrency),
      "External verifier requests in flight at once", 1, 1024, NULL },
    { "verify.timeout.ms", CORE_CFG_INT, "2000", 0, OFF(verify_timeout_ms),
      "Timeout of a verifier request (a rule's timeout_ms wins)", 1, 600000, NULL },
    { "verify.breaker.failures", CORE_CFG_INT, "20", 0, OFF(breaker_failures),
      "Transient verifier failures in a row that open its circuit (0: no breaker)", 0, 100000,
      NULL },
    { "verify.breaker.open.ms", CORE_CFG_INT, "5000", 0, OFF(breaker_open_ms),
      "How long an open circuit holds calls back before a trial call", 1, 3600000, NULL },
    { "class", CORE_CFG_ENUM, NULL, 0, OFF(replay_class),
      "replay: only DLQ records of this class", 0, 0, "invalid|poison|exhausted" },
    { "reason", CORE_CFG_STR, NULL, 0, OFF(replay_reason),
      "replay: only DLQ records whose error message contains this text", 0, 0, NULL },
    { "since", CORE_CFG_STR, NULL, 0, OFF(replay_since),
      "replay: only DLQ records written at or after (ISO 8601 or ms since the epoch)", 0, 0,
      NULL },
    { "dry.run", CORE_CFG_BOOL, "false", 0, OFF(dry_run),
      "replay: count what would be replayed, publish nothing", 0, 0, NULL },
    { "field", CORE_CFG_STR, NULL, 0, OFF(field),
      "invalidate: the field whose cached verifications are dropped", 0, 0, NULL },
    { "value", CORE_CFG_STR, NULL, 0, OFF(value),
      "invalidate: only this value's cached verifications (default: all of the field)", 0, 0,
      NULL },
    CORE_CFG_END
};

/* The dashed name of 0.1, accepted one release with a warning. */
static const core_config_alias validator_aliases[] = {
    { "dry-run", "dry.run" },
    CORE_CFG_ALIAS_END
};

static const char *const subcommands[] = { "replay", "invalidate", NULL };

static void verify_opts(const struct validator_conf *c, verifier_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->redis = &c->redis;
    o->concurrency = (int)c->verify_concurrency;
    o->timeout_ms = (int)c->verify_timeout_ms;
    o->breaker_failures = (int)c->breaker_failures;
    o->breaker_open_ms = (int)c->breaker_open_ms;
}

/* ---- HTTP: DELETE /cache?dataset=D&field=F[&value=V] ------------------- */

typedef struct cache_route {
    pthread_mutex_t lock;
    verifier_t *verifier;
    const struct validator_conf *conf;
} cache_route;

static bool dataset_known(const struct validator_conf *c, const char *ds)
{
    for (size_t i = 0; i < c->datasets.n; i++)
        if (strcmp(c->datasets.v[i], ds) == 0)
            return true;
    return false;
}

static void h_cache(const core_http_request *req, core_http_response *resp, void *opaque)
{
    cache_route *cr = opaque;
    char ds[128], field[128], value[512], errstr[256];
    bool has_value;
    size_t deleted = 0;
    core_err_t rc;

    if (core_http_query_param(req, "dataset", ds, sizeof(ds)) != CORE_OK ||
        core_http_query_param(req, "field", field, sizeof(field)) != CORE_OK) {
        resp->status = 400;
        resp->body = core_http_printf("dataset and field are required\n");
        return;
    }
    if (!dataset_known(cr->conf, ds)) {
        resp->status = 404;
        resp->body = core_http_printf("dataset not validated here\n");
        return;
    }
    has_value = core_http_query_param(req, "value", value, sizeof(value)) == CORE_OK;
    pthread_mutex_lock(&cr->lock);
    if (cr->verifier) {
        rc = verifier_invalidate(cr->verifier, ds, field, has_value ? value : NULL, &deleted,
                                 errstr, sizeof(errstr));
    } else {
        rc = CORE_ERR_STATE;
        snprintf(errstr, sizeof(errstr), "shutting down");
    }
    pthread_mutex_unlock(&cr->lock);
    if (rc != CORE_OK) {
        resp->status = 503;
        resp->body = core_http_printf("cache unavailable: %s\n", errstr);
        return;
    }
    resp->content_type = "application/json";
    resp->body = core_http_printf("{\"deleted\":%zu}\n", deleted);
    core_log_info("verification cache invalidated", CLF_S("dataset", ds), CLF_S("field", field),
                  CLF_I("deleted", (int64_t)deleted));
}

/* ---- modes -------------------------------------------------------------- */

/* The validator's run: topic names checked, the audit and the output
 * subjects bound, the verifier and the loop made, run until a stop. Longer
 * than ~120 lines for a reason: the steps of a start in order, each with
 * its own exit code and one release at the end. */
static int run_validate(core_service_t *svc, struct validator_conf *c)
{
    const struct core_service_common *common = core_service_common(svc);
    validator_params p = { 0 };
    /* The route outlives this function (the HTTP server stops after run
     * returns): static, and emptied under its lock before we go. */
    static cache_route cr = { .lock = PTHREAD_MUTEX_INITIALIZER };
    validator_t *v;
    char errstr[512], txn_id[512], member_id[512];
    uint32_t *out_ids = NULL; /* validator_params.out_ids */
    int rc;

    for (size_t i = 0; i < c->datasets.n; i++) {
        char topic[CORE_TOPIC_MAX + 1];

        for (int k = 0; k < CORE_TOPIC_NKINDS; k++)
            if (core_topic_name(c->topic_prefix, c->datasets.v[i], (core_topic_kind)k, topic,
                                sizeof(topic), errstr, sizeof(errstr)))
                return core_service_config_error(svc, errstr);
    }
    if (c->transactional_id)
        snprintf(txn_id, sizeof(txn_id), "%s", c->transactional_id);
    else
        snprintf(txn_id, sizeof(txn_id), "svc-validator-%s", common->instance_id);
    /* with a registry: the audit event's id on the configured audit topic,
     * and each dataset's current schema under the subject of each output
     * (<prefix><dataset>.valid|retry|dlq-value with TopicNameStrategy), as
     * auto.register says: a Confluent consumer of .valid finds the schema
     * under the topic's own subject */
    if ((rc = core_service_bind_audit(svc, c->audit_topic)) != CORE_SERVICE_CONTINUE)
        return rc;
    if (core_service_registry(svc)) {
        if (!(out_ids = calloc(c->datasets.n * VALIDATOR_OUT_COUNT, sizeof(*out_ids)))) {
            fprintf(stderr, "svc-validator: out of memory\n");
            return CORE_EX_SOFTWARE;
        }
        for (size_t i = 0; i < c->datasets.n; i++) {
            const core_avro_schema_t *s = core_avro_catalog_by_dataset(core_service_catalog(svc),
                                                                       c->datasets.v[i]);

            for (size_t k = 0; k < VALIDATOR_OUT_COUNT; k++) {
                static const core_topic_kind kinds[VALIDATOR_OUT_COUNT] = {
                    CORE_TOPIC_VALID, CORE_TOPIC_RETRY, CORE_TOPIC_DLQ
                };
                char topic[CORE_TOPIC_MAX + 1];

                /* the prefix was checked above */
                core_topic_name(c->topic_prefix, c->datasets.v[i], kinds[k], topic, sizeof(topic),
                                NULL, 0);
                if ((rc = core_service_schema_bind(svc, topic, s)) != CORE_SERVICE_CONTINUE) {
                    free(out_ids);
                    return rc;
                }
                out_ids[i * VALIDATOR_OUT_COUNT + k] = core_avro_schema_id(s);
            }
        }
    }
    p.out_ids = out_ids;
    p.cfg = core_service_config(svc);
    p.cat = core_service_catalog(svc);
    p.datasets = (const char *const *)c->datasets.v;
    p.ndatasets = c->datasets.n;
    p.topic_prefix = c->topic_prefix;
    p.audit_topic = c->audit_topic;
    p.group_id = c->group_id;
    p.transactional_id = txn_id;
    p.group_instance_id = core_service_group_instance_id(svc, c->group_instance_id, &c->datasets,
                                                         member_id, sizeof(member_id));
    p.batch_max = (int)c->batch_max;
    p.commit_interval_ms = (int)c->commit_interval_ms;
    p.retry.base_ms = c->retry_base_ms;
    p.retry.max_ms = c->retry_max_ms;
    p.retry.multiplier = c->retry_multiplier;
    p.retry.jitter = c->retry_jitter;
    p.retry.max_attempts = (int)c->retry_max_attempts; /* retries; 0: straight to the DLQ */
    p.clock_skew_ms = c->clock_skew_ms;
    verify_opts(c, &p.verify);

    /* the start-up policy (docs/OPERATIONS.md): the brokers first; the
     * verification cache in Redis is optional (skipped while it fails) */
    rc = core_service_await_kafka(svc);
    if (rc != CORE_SERVICE_CONTINUE) {
        free(out_ids);
        return rc;
    }
    cr.conf = c;
    cr.verifier = verifier_new(&p.verify, errstr, sizeof(errstr));
    if (!cr.verifier) {
        free(out_ids);
        return core_service_config_error(svc, errstr);
    }
    v = validator_new(&p, errstr, sizeof(errstr));
    free(out_ids); /* validator_new copied them */
    p.out_ids = out_ids = NULL;
    if (!v) {
        verifier_free(cr.verifier);
        cr.verifier = NULL;
        core_log_error("cannot start", CLF_S("reason", errstr));
        return CORE_EX_UNAVAILABLE;
    }
    core_http_route(core_service_http(svc), "DELETE", "/cache", h_cache, &cr);
    core_service_open(svc);
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(core_service_http(svc))),
                  CLF_S("instance", common->instance_id), CLF_S("transactional_id", txn_id),
                  CLF_S("group", c->group_id));
    rc = validator_run(v);
    {
        const validator_stats *s = validator_get_stats(v);

        core_log_info("stopped", CLF_I("valid", (int64_t)s->committed[VO_VALID]),
                      CLF_I("invalid", (int64_t)s->committed[VO_INVALID]),
                      CLF_I("poison", (int64_t)s->committed[VO_POISON]),
                      CLF_I("retrying", (int64_t)s->committed[VO_RETRYING]),
                      CLF_I("exhausted", (int64_t)s->committed[VO_EXHAUSTED]),
                      CLF_I("transactions", (int64_t)s->transactions),
                      CLF_I("aborts", (int64_t)s->aborts));
    }
    validator_free(v);
    pthread_mutex_lock(&cr.lock);
    verifier_free(cr.verifier);
    cr.verifier = NULL;
    pthread_mutex_unlock(&cr.lock);
    return rc;
}

static int run_replay(core_service_t *svc, struct validator_conf *c)
{
    replay_params p = { 0 };
    replay_result res;
    char errstr[512], dlq[256], raw[256];
    int rc = 0;

    if (c->replay_since && replay_parse_since(c->replay_since, &p.since_ms) != 0) {
        snprintf(errstr, sizeof(errstr),
                 "since: '%s' is neither an ISO 8601 time nor ms since the epoch",
                 c->replay_since);
        return core_service_config_error(svc, errstr);
    }
    p.cfg = core_service_config(svc);
    p.error_class = c->replay_class;
    p.reason = c->replay_reason;
    p.dry_run = c->dry_run;
    for (size_t i = 0; i < c->datasets.n && rc == 0; i++) {
        if (core_topic_name(c->topic_prefix, c->datasets.v[i], CORE_TOPIC_DLQ, dlq, sizeof(dlq),
                            errstr, sizeof(errstr)) ||
            core_topic_name(c->topic_prefix, c->datasets.v[i], CORE_TOPIC_RAW, raw, sizeof(raw),
                            errstr, sizeof(errstr)))
            return core_service_config_error(svc, errstr);
        p.dlq_topic = dlq;
        p.raw_topic = raw;
        if (replay_run(&p, &res, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "svc-validator: replay: %s\n", errstr);
            rc = CORE_EX_UNAVAILABLE;
        }
        if (c->dry_run)
            printf("replay %s: %zu of %zu DLQ records match (%zu older copies superseded); "
                   "dry run, nothing published\n",
                   c->datasets.v[i], res.matched, res.scanned, res.superseded);
        else
            printf("replay %s: %zu of %zu DLQ records match (%zu older copies superseded); "
                   "%zu published to %s\n",
                   c->datasets.v[i], res.matched, res.scanned, res.superseded, res.published,
                   raw);
        fflush(stdout);
    }
    return rc;
}

static int run_invalidate(core_service_t *svc, struct validator_conf *c)
{
    verifier_opts o;
    verifier_t *v;
    char errstr[512];
    int rc = 0;

    if (!c->field)
        return core_service_config_error(svc, "field: required by invalidate");
    verify_opts(c, &o);
    v = verifier_new(&o, errstr, sizeof(errstr));
    if (!v)
        return core_service_config_error(svc, errstr);
    for (size_t i = 0; i < c->datasets.n; i++) {
        size_t deleted = 0;

        if (verifier_invalidate(v, c->datasets.v[i], c->field, c->value, &deleted, errstr,
                                sizeof(errstr)) != CORE_OK) {
            fprintf(stderr, "svc-validator: invalidate: %s\n", errstr);
            rc = CORE_EX_UNAVAILABLE;
            break;
        }
        printf("invalidate %s.%s: %zu cached verifications deleted\n", c->datasets.v[i],
               c->field, deleted);
    }
    verifier_free(v);
    return rc;
}

static int run(core_service_t *svc, void *confp)
{
    struct validator_conf *c = confp;
    const char *sub = core_service_subcommand(svc);

    if (sub && strcmp(sub, "replay") == 0)
        return run_replay(svc, c);
    if (sub && strcmp(sub, "invalidate") == 0)
        return run_invalidate(svc, c);
    return run_validate(svc, c);
}

static const core_service_def def = {
    .name = "svc-validator",
    .summary = "rules and cached external checks; success, retry and dead-letter routing",
    .usage = "svc-validator --dataset NAME [options]\n"
             "       svc-validator replay --dataset NAME [--class C] [--reason R] [--since T] "
             "[--dry.run]\n"
             "       svc-validator invalidate --dataset NAME --field F [--value V]",
    .http_port_default = "8082",
    .keys = validator_keys,
    .aliases = validator_aliases,
    .rules_check = vrules_file_check,
    .conf = &conf,
    .subcommands = subcommands,
    .oneshot_subcommands = subcommands,
    .datasets = &conf.datasets,
    .run = run,
};

CORE_SERVICE_MAIN(def)
