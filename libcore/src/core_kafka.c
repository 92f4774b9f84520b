/* core_kafka.c — librdkafka configuration from core_config, the callbacks
 * every client shares (log, error, statistics), end-to-end latency. The
 * producer, the consumer, transactions and statistics parsing live in
 * core_kafka_producer.c, core_kafka_consumer.c, core_kafka_txn.c and
 * core_kafka_stats.c. */
#include "core_kafka_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/* Names whose values are never repeated in an error message. */
static bool secret_name(const char *name)
{
    static const char *const words[] = { "password", "secret", "key", "jaas", "token",
                                         "credential", "sasl.oauthbearer.config" };

    for (size_t i = 0; i < CORE_ARRAY_SIZE(words); i++)
        if (strstr(name, words[i]))
            return true;
    return false;
}

/* Set one property; errstr names it as the user wrote it:
 * shown_prefix + name + shown_suffix ("kafka.linger.ms", "linger.ms (built-in)").
 * librdkafka's own message names the canonical property (linger.ms is
 * "queue.buffering.max.ms" to it) and omits the value: say it plainly, and
 * keep librdkafka's text as detail when it adds something (a range). */
core_err_t core_kafka_conf_set_one(rd_kafka_conf_t *conf, const char *shown_prefix,
                                   const char *shown_suffix, const char *name, const char *value,
                                   char *errstr, size_t errstr_size)
{
    char rderr[512];
    rd_kafka_conf_res_t res;
    size_t n;

    if (!name || !*name) {
        core_errstr(errstr, errstr_size, "%sempty Kafka property name%s", shown_prefix,
                    shown_suffix);
        return CORE_ERR_INVALID;
    }
    if (!value) {
        core_errstr(errstr, errstr_size, "%s%s%s: no value", shown_prefix, name, shown_suffix);
        return CORE_ERR_INVALID;
    }
    rderr[0] = '\0';
    res = rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr));
    if (res == RD_KAFKA_CONF_OK)
        return CORE_OK;
    n = strlen(rderr);
    while (n > 0 && (rderr[n - 1] == '\n' || rderr[n - 1] == ' ' || rderr[n - 1] == '.'))
        rderr[--n] = '\0';
    if (res == RD_KAFKA_CONF_UNKNOWN) {
        core_errstr(errstr, errstr_size, "%s%s%s: %s", shown_prefix, name, shown_suffix, rderr);
    } else {
        bool plain = strncmp(rderr, "Invalid value", 13) == 0 || !rderr[0];
        char shown_value[80];

        if (secret_name(name))
            shown_value[0] = '\0';
        else if (strlen(value) < 64)
            snprintf(shown_value, sizeof(shown_value), "\"%s\" ", value);
        else
            snprintf(shown_value, sizeof(shown_value), "\"%.60s...\" ", value);
        core_errstr(errstr, errstr_size,
                    "%s%s%s: Invalid value %sfor configuration property \"%s\"%s%s%s",
                    shown_prefix, name, shown_suffix, shown_value, name, plain ? "" : " (",
                    plain ? "" : rderr, plain ? "" : ")");
    }
    return CORE_ERR_INVALID;
}

bool core_kafka_conf_get(const rd_kafka_conf_t *conf, const char *name, char *buf, size_t size)
{
    size_t n = size;

    return rd_kafka_conf_get(conf, name, buf, &n) == RD_KAFKA_CONF_OK;
}

/* Which client each property is for, as librdkafka itself documents it:
 * the "C/P" column of rd_kafka_conf_properties_show(), read once. Only
 * properties of one kind are kept ('C' or 'P'); the rest are for both. */
struct prop_scope {
    char name[64];
    char scope;
};

static struct prop_scope *scopes;
static size_t nscopes;
static pthread_once_t scopes_once = PTHREAD_ONCE_INIT;

static void scopes_load(void)
{
    char *text = NULL, *line, *save = NULL;
    size_t len = 0, cap = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f)
        return;
    rd_kafka_conf_properties_show(f);
    if (fclose(f) != 0 || !text) {
        free(text);
        return;
    }
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64], scope;
        struct prop_scope *grown;

        /* "session.timeout.ms                       |  C  | 1 .. 3600000 | ..." */
        if (sscanf(line, "%63s | %c |", name, &scope) != 2 || (scope != 'C' && scope != 'P'))
            continue;
        if (nscopes == cap) {
            cap = cap ? cap * 2 : 128;
            grown = realloc(scopes, cap * sizeof(*grown));
            if (!grown)
                break;
            scopes = grown;
        }
        memcpy(scopes[nscopes].name, name, sizeof(name));
        scopes[nscopes++].scope = scope;
    }
    free(text);
}

/* 'C', 'P', or '*' (both, or unknown to this librdkafka: rd_kafka_conf_set()
 * then names it). */
static char prop_scope(const char *name)
{
    pthread_once(&scopes_once, scopes_load);
    for (size_t i = 0; i < nscopes; i++)
        if (strcmp(scopes[i].name, name) == 0)
            return scopes[i].scope;
    return '*';
}

/* "producer.linger.ms" → 'P' and *rest "linger.ms"; unscoped → 0. */
static char key_scope(const char *name, const char **rest)
{
    if (strncmp(name, "producer.", 9) == 0 && name[9]) {
        *rest = name + 9;
        return 'P';
    }
    if (strncmp(name, "consumer.", 9) == 0 && name[9]) {
        *rest = name + 9;
        return 'C';
    }
    *rest = name;
    return 0;
}

static bool scope_fits(char scope, core_kafka_kind kind)
{
    return kind == CORE_KAFKA_ANY || scope == '*' ||
           scope == (kind == CORE_KAFKA_PRODUCER ? 'P' : 'C');
}

/* The value the user set for a property this client receives (a built-in
 * override, else the scoped key, else the unscoped one), or NULL. */
const char *core_kafka_user_value(const core_config_t *cfg, core_kafka_kind kind,
                                  const core_kafka_prop *ov, size_t nov, const char *name)
{
    const char *v = NULL, *scoped = NULL, *plain = NULL;
    size_t n = cfg ? core_config_kafka_count(cfg) : 0;

    for (size_t i = 0; i < nov; i++)
        if (ov[i].name && strcmp(ov[i].name, name) == 0)
            v = ov[i].value;
    if (v)
        return v;
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL, *value = NULL, *prop;
        char scope;

        core_config_kafka_get(cfg, i, &key, &value);
        scope = key_scope(key, &prop);
        if (strcmp(prop, name) != 0 || !scope_fits(scope ? scope : prop_scope(prop), kind))
            continue;
        if (scope)
            scoped = value;
        else
            plain = value;
    }
    return scoped ? scoped : plain;
}

const char *core_kafka_consumer_config(const core_config_t *cfg, const char *name)
{
    return core_kafka_user_value(cfg, CORE_KAFKA_CONSUMER, NULL, 0, name);
}

const char *core_kafka_producer_config(const core_config_t *cfg, const char *name)
{
    return core_kafka_user_value(cfg, CORE_KAFKA_PRODUCER, NULL, 0, name);
}

/* cfg's kafka.* keys for a client of kind: unscoped ones first, then
 * kafka.producer.* / kafka.consumer.* (so that they win). */
static core_err_t conf_set_user(rd_kafka_conf_t *conf, const core_config_t *cfg,
                                core_kafka_kind kind, char *errstr, size_t errstr_size)
{
    size_t n = cfg ? core_config_kafka_count(cfg) : 0;

    for (int scoped = 0; scoped < 2; scoped++) {
        for (size_t i = 0; i < n; i++) {
            const char *key = NULL, *value = NULL, *prop;
            char scope, shown[32];

            core_config_kafka_get(cfg, i, &key, &value);
            scope = key_scope(key, &prop);
            if ((scope != 0) != scoped)
                continue;
            if (!scope_fits(scope ? scope : prop_scope(prop), kind))
                continue;
            snprintf(shown, sizeof(shown), "kafka.%s",
                     scope == 'P' ? "producer." : scope == 'C' ? "consumer." : "");
            if (core_kafka_conf_set_one(conf, shown, "", prop, value, errstr,
                                        errstr_size) != CORE_OK)
                return CORE_ERR_INVALID;
        }
    }
    return CORE_OK;
}

rd_kafka_conf_t *core_kafka_conf_build(const core_config_t *cfg, core_kafka_kind kind,
                                       const core_kafka_prop *defaults, size_t ndefaults,
                                       const core_kafka_prop *overrides, size_t noverrides,
                                       const core_kafka_prop *enforced, size_t nenforced,
                                       char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    if (!conf) {
        core_errstr(errstr, errstr_size, "kafka: out of memory");
        return NULL;
    }
    if (core_kafka_conf_set_one(conf, "", " (built-in)", "bootstrap.servers",
                                CORE_KAFKA_DEFAULT_BOOTSTRAP, errstr, errstr_size) != CORE_OK)
        goto fail;
    for (size_t i = 0; i < ndefaults; i++)
        if (core_kafka_conf_set_one(conf, "", " (built-in)", defaults[i].name, defaults[i].value,
                                    errstr, errstr_size) != CORE_OK)
            goto fail;

    if (conf_set_user(conf, cfg, kind, errstr, errstr_size) != CORE_OK)
        goto fail;
    for (size_t i = 0; i < noverrides; i++)
        if (core_kafka_conf_set_one(conf, "", " (built-in)", overrides[i].name, overrides[i].value,
                                    errstr, errstr_size) != CORE_OK)
            goto fail;

    for (size_t i = 0; i < nenforced; i++) {
        char before[256] = "", after[256] = "";
        const char *uv = enforced[i].name
                             ? core_kafka_user_value(cfg, kind, overrides, noverrides,
                                                     enforced[i].name)
                             : NULL;
        bool had = uv && core_kafka_conf_get(conf, enforced[i].name, before, sizeof(before));

        if (core_kafka_conf_set_one(conf, "", " (built-in)", enforced[i].name, enforced[i].value,
                                    errstr, errstr_size) != CORE_OK)
            goto fail;
        if (had && core_kafka_conf_get(conf, enforced[i].name, after, sizeof(after)) &&
            strcmp(before, after) != 0) {
            char key[256];

            snprintf(key, sizeof(key), "kafka.%s", enforced[i].name);
            /* Only the required value is logged: a user value is never. */
            core_log_warn("kafka property overridden: this client requires another value",
                          CLF_S("key", key), CLF_S("required", enforced[i].value));
        }
    }
    return conf;

fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_conf_t *core_kafka_conf_new(const core_config_t *cfg,
                                     const core_kafka_prop *defaults, size_t ndefaults,
                                     const core_kafka_prop *enforced, size_t nenforced,
                                     char *errstr, size_t errstr_size)
{
    return core_kafka_conf_build(cfg, CORE_KAFKA_ANY, defaults, ndefaults, NULL, 0, enforced,
                                 nenforced, errstr, errstr_size);
}

core_err_t core_kafka_conf_check(const core_config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = core_kafka_conf_build(cfg, CORE_KAFKA_ANY, NULL, 0, NULL, 0, NULL,
                                                  0, errstr, errstr_size);

    if (!conf)
        return CORE_ERR_INVALID;
    rd_kafka_conf_destroy(conf);
    /* an empty broker list is taken, and then nothing is ever reached */
    static const char *const scoped[] = { "bootstrap.servers", "producer.bootstrap.servers",
                                          "consumer.bootstrap.servers" };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(scoped); i++) {
        const char *v = core_config_kafka_lookup(cfg, scoped[i]);
        if (v && !v[strspn(v, " \t,")]) {
            core_errstr(errstr, errstr_size, "kafka.%s: empty (host:port[,host:port...])",
                        scoped[i]);
            return CORE_ERR_INVALID;
        }
    }
    return CORE_OK;
}

bool core_kafka_err_topic_settling(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
}

core_err_t core_kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                     const struct rd_kafka_metadata **mdp, char *errstr,
                                     size_t errstr_size)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t until = core_mono_ms() + timeout_ms;
    rd_kafka_resp_err_t err;

    *mdp = NULL;
    if (!rkt) {
        core_errstr(errstr, errstr_size, "topic %s: %s", topic,
                    rd_kafka_err2str(rd_kafka_last_error()));
        return CORE_ERR_INVALID;
    }
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        int64_t left = until - core_mono_ms();

        err = rd_kafka_metadata(rk, 0, rkt, &md, left > 100 ? (int)left : 100);
        if (!err && (!md || md->topic_cnt != 1))
            err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!err)
            err = md->topics[0].err;
        for (int i = 0; !err && i < md->topics[0].partition_cnt; i++)
            if (md->topics[0].partitions[i].leader < 0)
                err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
        if (!err && md->topics[0].partition_cnt == 0)
            err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
        if (!err) {
            *mdp = md;
            rd_kafka_topic_destroy(rkt);
            return CORE_OK;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if ((!core_kafka_err_topic_settling(err) && err != RD_KAFKA_RESP_ERR__TIMED_OUT) ||
            core_mono_ms() >= until || core_lifecycle_wait(200))
            break;
    }
    rd_kafka_topic_destroy(rkt);
    core_errstr(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(err));
    return core_kafka_err_topic_settling(err) || err == RD_KAFKA_RESP_ERR__TIMED_OUT
               ? CORE_ERR_TRANSIENT
               : CORE_ERR_INVALID;
}

core_err_t core_kafka_err_class(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return CORE_OK;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
        return CORE_ERR_FATAL;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return CORE_ERR_TOOBIG;
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
        return CORE_ERR_STATE;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__NO_OFFSET:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
        return CORE_ERR_TRANSIENT;
    default:
        return CORE_ERR_INVALID;
    }
}

/* ------------------------------------------------------------------------ */
/* Callbacks shared by every client                                         */
/* ------------------------------------------------------------------------ */

core_metric_family_t *core_kafka_family(core_metrics_t *m, core_metric_kind_t kind,
                                        const char *name, const char *help,
                                        const char *const *labels)
{
    char err[256] = "";
    core_metric_family_t *f = core_metrics_family(m, kind, name, help, labels, NULL, 0, err,
                                                  sizeof(err));

    if (!f)
        core_log_error("kafka: metric family refused", CLF_S("metric", name),
                       CLF_S("error", err));
    return f;
}

core_err_t core_kafka_fams_init(core_kafka_fams *f, core_metrics_t *m,
                                char *errstr, size_t errstr_size)
{
    static const char *const err_labels[] = { "error", NULL };
    static const char *const lag_labels[] = { "topic", "partition", NULL };

    f->m = m ? m : core_metrics_global();
    if (!f->m) {
        core_errstr(errstr, errstr_size, "kafka: no metrics registry");
        return CORE_ERR_NOMEM;
    }
    f->client_errors = core_kafka_family(f->m, CORE_METRIC_COUNTER,
                                         "tributary_kafka_client_errors_total",
                                         "librdkafka error events (brokers down, transport, "
                                         "authentication, fatal)", err_labels);
    f->lag = core_kafka_family(f->m, CORE_METRIC_GAUGE, "tributary_kafka_consumer_lag",
                               CORE_KAFKA_LAG_HELP, lag_labels);
    return CORE_OK;
}

static core_log_level_t syslog2core(int level)
{
    if (level <= 3)
        return CORE_LOG_ERROR;
    if (level == 4)
        return CORE_LOG_WARN;
    if (level <= 6)
        return CORE_LOG_INFO;
    return CORE_LOG_DEBUG;
}

/* May run on librdkafka's internal threads: touches nothing but core_log. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    core_log_level_t lvl = syslog2core(level);

    /* A broker connection failing is reported (and counted) by error_cb as
     * a warning: librdkafka's own LOG_ERR line for it is not more severe. */
    if (lvl > CORE_LOG_WARN && fac && strcmp(fac, "FAIL") == 0)
        lvl = CORE_LOG_WARN;
    if (lvl < core_log_level())
        return;
    core_log_(lvl, buf, CLF_S("component", "librdkafka"), CLF_S("client", rd_kafka_name(rk)),
              CLF_S("facility", fac ? fac : ""), CLF_I("syslog_level", level));
}

static bool is_auth_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

static bool is_refusal(rd_kafka_resp_err_t err, const char *reason)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL ||
           err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
           (err == RD_KAFKA_RESP_ERR__TRANSPORT && reason && strstr(reason, "security.protocol"));
}

static void refusal_store(core_kafka_common *cc, rd_kafka_resp_err_t err, const char *reason)
{
    while (atomic_flag_test_and_set_explicit(&cc->refusal_lock, memory_order_acquire))
        ;
    cc->refusal_err = (int)err;
    snprintf(cc->refusal, sizeof(cc->refusal), "%s", reason ? reason : "");
    atomic_flag_clear_explicit(&cc->refusal_lock, memory_order_release);
}

rd_kafka_resp_err_t core_kafka_common_refusal(core_kafka_common *cc, char *buf, size_t size)
{
    rd_kafka_resp_err_t err;

    while (atomic_flag_test_and_set_explicit(&cc->refusal_lock, memory_order_acquire))
        ;
    err = (rd_kafka_resp_err_t)cc->refusal_err;
    if (size)
        snprintf(buf, size, "%s", cc->refusal);
    atomic_flag_clear_explicit(&cc->refusal_lock, memory_order_release);
    return err;
}

/* Served by the thread polling the client. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    core_kafka_common *cc = opaque;
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)err;

    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char fstr[512] = "";
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fstr, sizeof(fstr));

        if (cc)
            atomic_store(&cc->fatal, true);
        core_log_error("kafka fatal error: the client must be rebuilt",
                       CLF_S("client", rd_kafka_name(rk)), CLF_S("error", rd_kafka_err2name(orig)),
                       CLF_S("reason", fstr[0] ? fstr : reason));
    } else if (is_auth_error(e)) {
        core_log_error("kafka error", CLF_S("client", rd_kafka_name(rk)),
                       CLF_S("error", rd_kafka_err2name(e)), CLF_S("reason", reason));
    } else {
        core_log_warn("kafka error", CLF_S("client", rd_kafka_name(rk)),
                      CLF_S("error", rd_kafka_err2name(e)), CLF_S("reason", reason));
    }
    if (cc && is_refusal(e, reason))
        refusal_store(cc, e, reason);
    if (cc)
        core_metric_inc(core_metrics_series1(cc->fams.client_errors, rd_kafka_err2name(e)));
}

/* Served by the thread polling the client. The JSON is freed by librdkafka. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    core_kafka_common *cc = opaque;
    rd_kafka_topic_partition_list_t *assigned = NULL;
    int flags = 0;
    char err[256];

    if (!cc)
        return 0;
    if (cc->kind == CORE_KAFKA_CONSUMER) {
        struct core_kafka_consumer *c = (struct core_kafka_consumer *)cc;

        assigned = core_kafka_consumer_assignment(c);
        if (!assigned)
            return 0; /* lag is only meaningful for assigned partitions */
        if (atomic_load(&c->lag_from_position))
            flags |= CORE_KAFKA_STATS_LAG_POSITION;
    }
    if (core_kafka_stats_apply(cc->fams.m, json, json_len, assigned, flags, err, sizeof(err)) !=
        CORE_OK)
        core_log_warn("kafka statistics not understood", CLF_S("client", rd_kafka_name(rk)),
                      CLF_S("error", err));
    if (assigned)
        rd_kafka_topic_partition_list_destroy(assigned);
    return 0;
}

void core_kafka_conf_set_common_cbs(rd_kafka_conf_t *conf, core_kafka_common *cc)
{
    rd_kafka_conf_set_opaque(conf, cc);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
}

bool core_kafka_common_fatal(core_kafka_common *cc, char *errstr, size_t errstr_size)
{
    char buf[512] = "";
    rd_kafka_resp_err_t err;

    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!cc || !cc->rk)
        return false;
    err = rd_kafka_fatal_error(cc->rk, buf, sizeof(buf));
    if (err) {
        atomic_store(&cc->fatal, true);
        core_errstr(errstr, errstr_size, "%s: %s", rd_kafka_err2name(err), buf);
        return true;
    }
    return atomic_load(&cc->fatal);
}

/* ---- end-to-end latency -------------------------------------------------- */

int64_t core_kafka_ingest_ts(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t size = 0;
    int64_t ts = 0;

    if (!m || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, CORE_HDR_INGEST_TS, &val, &size) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || size == 0 || size > 18)
        return -1;
    for (size_t i = 0; i < size; i++) {
        char c = ((const char *)val)[i];
        if (c < '0' || c > '9')
            return -1;
        ts = ts * 10 + (c - '0');
    }
    return ts;
}

core_metric_family_t *core_kafka_latency_family(core_metrics_t *m, char *errstr,
                                                size_t errstr_size)
{
    static const char *const labels[] = { "sink", "dataset", NULL };
    static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60,   300 };

    return core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_end_to_end_latency_seconds",
                               "From svc-ingest reading the line (tb.ingest.ts) to the sink's "
                               "committed write",
                               labels, buckets, CORE_ARRAY_SIZE(buckets), errstr, errstr_size);
}
