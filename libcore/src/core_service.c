/* core_service.c — common start-up and shutdown of every service. */
#include "tributary/core_service.h"
#include "tributary/core_audit.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TB_VERSION
#define TB_VERSION "0.0.0"
#endif
#ifndef TB_PROTO_DIR
#define TB_PROTO_DIR "/usr/share/tributary/proto"
#endif

#define READY_CACHE_MS 2000
#define READY_TIMEOUT_MS 1500

/* The common table; http.port's default is patched per service. */
static const core_config_key common_keys[] = {
    { "log.level", CORE_CFG_ENUM, "info", 0, offsetof(struct core_service_common, log_level),
      "Minimum log level", 0, 0, "debug|info|warn|error" },
    { "http.bind", CORE_CFG_STR, "0.0.0.0", 0, offsetof(struct core_service_common, http_bind),
      "Address of the HTTP server (/healthz, /readyz, /metrics)", 0, 0, NULL },
    { "http.port", CORE_CFG_INT, "8080", 0, offsetof(struct core_service_common, http_port),
      "Port of the HTTP server; 0 picks a free one", 0, 65535, NULL },
    { "shutdown.grace.ms", CORE_CFG_INT, "30000", 0,
      offsetof(struct core_service_common, shutdown_grace_ms),
      "Time to drain and commit after SIGTERM before giving up", 0, 3600000, NULL },
    { "proto.dir", CORE_CFG_STR, TB_PROTO_DIR, 0, offsetof(struct core_service_common, proto_dir),
      "Folder of the Avro schemas, rules and catalogue", 0, 0, NULL },
    { "instance.id", CORE_CFG_STR, NULL, 0, offsetof(struct core_service_common, instance_id),
      "Name of this instance (default: the host name)", 0, 0, NULL },
    { "startup.timeout.ms", CORE_CFG_INT, "30000", 0,
      offsetof(struct core_service_common, startup_timeout_ms),
      "Longest wait at start for a dependency (broker, Redis, database) that never answered: "
      "then exit 69", 1, 86400000, NULL },
    { "schema.registry.url", CORE_CFG_STR, NULL, 0,
      offsetof(struct core_service_common, registry_url),
      "Schema Registry (Confluent API), e.g. http://127.0.0.1:18081/apis/ccompat/v7; empty: the "
      "fixed ids of proto/catalog.json", 0, 0, NULL },
    { "schema.registry.subject.name.strategy", CORE_CFG_ENUM, "TopicNameStrategy", 0,
      offsetof(struct core_service_common, registry_strategy),
      "Subject of a record's schema: <topic>-value, or the record's full name", 0, 0,
      "TopicNameStrategy|RecordNameStrategy" },
    { "schema.registry.auto.register.schemas", CORE_CFG_BOOL, "false", 0,
      offsetof(struct core_service_common, registry_auto_register),
      "Register a schema the subject lacks (off: a schema the registry does not know stops the "
      "service at start, exit 78)", 0, 0, NULL },
    { "schema.registry.basic.auth.user.info", CORE_CFG_STR, NULL, CORE_CFG_SECRET,
      offsetof(struct core_service_common, registry_basic_auth),
      "user:password for the registry (HTTP basic auth)", 0, 0, NULL },
    { "schema.registry.bearer.auth.file", CORE_CFG_STR, NULL, 0,
      offsetof(struct core_service_common, registry_token_file),
      "File holding a bearer token for the registry (read at each request)", 0, 0, NULL },
    { "schema.registry.ssl.ca.location", CORE_CFG_STR, NULL, 0,
      offsetof(struct core_service_common, registry_ca),
      "CA bundle (PEM) to verify the registry's certificate with", 0, 0, NULL },
    { "schema.registry.ssl.certificate.location", CORE_CFG_STR, NULL, 0,
      offsetof(struct core_service_common, registry_cert),
      "Client certificate (PEM) for the registry", 0, 0, NULL },
    { "schema.registry.ssl.key.location", CORE_CFG_STR, NULL, 0,
      offsetof(struct core_service_common, registry_key),
      "Key (PEM) of the client certificate", 0, 0, NULL },
    { "schema.registry.timeout.ms", CORE_CFG_INT, "5000", 0,
      offsetof(struct core_service_common, registry_timeout_ms),
      "Longest registry request", 100, 600000, NULL },
    { "schema.registry.retries", CORE_CFG_INT, "3", 0,
      offsetof(struct core_service_common, registry_retries),
      "Retries of a registry request that got no answer or a 5xx (backoff 100 ms doubling to 2 s)",
      0, 100, NULL },
    CORE_CFG_END
};

struct core_service {
    const core_service_def *def;
    core_config_key common_table[CORE_ARRAY_SIZE(common_keys)];
    struct core_service_common common;
    char hostname[256];
    core_config_t *cfg;
    core_avro_catalog_t *catalog;
    core_registry_t *registry;
    core_http_t *http;
    const char *subcommand;
    size_t first_file;
    int64_t start_ms; /* core_mono_ms() at init: startup.timeout.ms counts from it */

    /* Readiness probe (HTTP thread). */
    pthread_mutex_t probe_lock;
    core_kafka_producer_t *probe;
    int64_t probe_at;
    bool probe_ok;
    char probe_reason[256];
};

static void print_usage(const core_service_def *def, const core_config_t *cfg)
{
    printf("%s — %s\n\nUsage: %s\n\n", def->name, def->summary, def->usage);
    core_config_print_help(cfg, stdout);
    printf("\nExit codes: 0 ok, 64 bad usage, 65 bad input data, 69 a server unreachable, "
           "78 bad configuration.\n");
}

static bool in_list(const char *const *list, const char *word)
{
    for (const char *const *s = list; s && *s; s++)
        if (strcmp(*s, word) == 0)
            return true;
    return false;
}

/* ---- schema ids: the catalogue's, or a registry's ---------------------- */

struct bind_job {
    core_service_t *svc;
    const char *topic;
    const core_avro_schema_t *schema;
};

/* One attempt to bind (core_service_await's probe): a refusal is a
 * configuration error (CORE_ERR_INVALID), no answer is retried. */
static core_err_t probe_bind(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    struct bind_job *b = opaque;
    uint32_t id = 0;
    core_err_t e;

    (void)timeout_ms; /* schema.registry.timeout.ms bounds each request */
    e = core_registry_bind(b->svc->registry, b->svc->catalog, b->schema, b->topic, &id, errstr,
                           errstr_size);
    if (e == CORE_OK) {
        core_log_info("schema bound", CLF_S("schema", core_avro_schema_name(b->schema)),
                      CLF_S("topic", b->topic), CLF_I("id", id));
        return CORE_OK;
    }
    return e == CORE_ERR_TRANSIENT ? e : CORE_ERR_INVALID;
}

int core_service_schema_bind(core_service_t *svc, const char *topic,
                             const core_avro_schema_t *schema)
{
    struct bind_job b = { svc, topic, schema };

    if (!svc->registry)
        return CORE_SERVICE_CONTINUE;
    return core_service_await(svc, "schema registry", core_registry_url(svc->registry), probe_bind,
                              &b);
}

int core_service_bind_audit(core_service_t *svc, const char *audit_topic)
{
    const core_avro_schema_t *audit = core_avro_catalog_by_name(svc->catalog,
                                                                "tributary.AuditEvent");

    if (!svc->registry || !audit || !audit_topic || !*audit_topic)
        return CORE_SERVICE_CONTINUE;
    return core_service_schema_bind(svc, audit_topic, audit);
}

core_registry_t *core_service_registry(const core_service_t *svc)
{
    return svc->registry;
}

/* The id source: without schema.registry.url the catalogue's ids; with it,
 * the registry's (every fixed id dropped), and the audit event bound. */
static int schemas_init(core_service_t *svc)
{
    const struct core_service_common *c = &svc->common;
    core_registry_conf rc = { 0 };
    char errstr[512];

    if (!c->registry_url || !*c->registry_url) {
        core_log_info("schemas", CLF_S("source", "catalogue"), CLF_S("proto_dir", c->proto_dir));
        return CORE_SERVICE_CONTINUE;
    }
    rc.url = c->registry_url;
    if (core_registry_strategy_parse(c->registry_strategy, &rc.strategy) != 0)
        return core_service_config_error(svc, "schema.registry.subject.name.strategy: unknown");
    rc.auto_register = c->registry_auto_register;
    rc.basic_auth = c->registry_basic_auth;
    rc.bearer_token_file = c->registry_token_file;
    rc.ca_file = c->registry_ca;
    rc.cert_file = c->registry_cert;
    rc.key_file = c->registry_key;
    rc.timeout_ms = (int)c->registry_timeout_ms;
    rc.retries = (int)c->registry_retries;
    if (c->registry_basic_auth && !strchr(c->registry_basic_auth, ':'))
        return core_service_config_error(svc, "schema.registry.basic.auth.user.info: must be "
                                              "user:password");
    if (!(svc->registry = core_registry_new(&rc, errstr, sizeof(errstr))))
        return core_service_config_error(svc, errstr);
    if (core_avro_catalog_set_fetch(svc->catalog, core_registry_fetch, svc->registry) != CORE_OK) {
        fprintf(stderr, "%s: out of memory\n", svc->def->name);
        return CORE_EX_SOFTWARE;
    }
    core_log_info("schemas", CLF_S("source", "registry"), CLF_S("url", c->registry_url),
                  CLF_S("strategy", core_registry_strategy_name(rc.strategy)),
                  CLF_B("auto_register", rc.auto_register));
    return core_service_bind_audit(svc, CORE_AUDIT_TOPIC);
}

/* Longer than most (about 125 lines) for a reason: the start of every
 * service in the order the contract gives it (config, --help/--version,
 * logging, catalogue and schema source, HTTP, signals), each step's
 * failure being the service's exit code. */
int core_service_init(core_service_t **svcp, const core_service_def *def,
                      int argc, char **argv, char **envp)
{
    core_service_t *svc;
    char errstr[512];
    core_log_level_t level;
    int rc;

    *svcp = NULL;
    svc = calloc(1, sizeof(*svc));
    if (!svc) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        return CORE_EX_SOFTWARE;
    }
    svc->def = def;
    svc->start_ms = core_mono_ms();
    pthread_mutex_init(&svc->probe_lock, NULL);
    memcpy(svc->common_table, common_keys, sizeof(common_keys));
    for (size_t i = 0; svc->common_table[i].key; i++)
        if (strcmp(svc->common_table[i].key, "http.port") == 0 && def->http_port_default)
            svc->common_table[i].def = def->http_port_default;

    svc->cfg = core_config_new(def->name);
    if (!svc->cfg || core_config_add_table(svc->cfg, svc->common_table, &svc->common) ||
        (def->keys && core_config_add_table(svc->cfg, def->keys, def->conf)) ||
        (def->aliases && core_config_add_aliases(svc->cfg, def->aliases)) ||
        (def->deprecated && core_config_add_deprecated(svc->cfg, def->deprecated))) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        core_service_free(svc);
        return CORE_EX_SOFTWARE;
    }
    for (const core_service_table *t = def->tables; t && t->keys; t++)
        if (core_config_add_table(svc->cfg, t->keys, t->conf)) {
            fprintf(stderr, "%s: out of memory\n", def->name);
            core_service_free(svc);
            return CORE_EX_SOFTWARE;
        }
    rc = core_config_load(svc->cfg, argc, argv, envp, errstr, sizeof(errstr));
    if (rc == 0 && core_config_help_requested(svc->cfg)) {
        print_usage(def, svc->cfg);
        core_service_free(svc);
        return 0;
    }
    if (rc == 0 && core_config_version_requested(svc->cfg)) {
        printf("%s %s (librdkafka %s)\n", def->name, TB_VERSION, rd_kafka_version_str());
        core_service_free(svc);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", def->name,
                rc == CORE_EX_USAGE ? "usage error" : "configuration error", errstr);
        core_service_free(svc);
        return rc;
    }

    /* Subcommand and files. */
    if (core_config_nargs(svc->cfg) > 0 && in_list(def->subcommands, core_config_arg(svc->cfg, 0))) {
        svc->subcommand = core_config_arg(svc->cfg, 0);
        svc->first_file = 1;
    }
    if (!def->takes_files && core_config_nargs(svc->cfg) > svc->first_file) {
        fprintf(stderr, "%s: usage error: unexpected argument '%s' (see --help)\n", def->name,
                core_config_arg(svc->cfg, svc->first_file));
        core_service_free(svc);
        return CORE_EX_USAGE;
    }

    if ((svc->subcommand ? in_list(def->oneshot_subcommands, svc->subcommand)
                         : def->takes_files && core_config_nargs(svc->cfg) > 0) &&
        strcmp(core_config_source(svc->cfg, "http.port"), "default") == 0)
        svc->common.http_port = 0;

    core_log_level_parse(svc->common.log_level, &level);
    core_log_init(def->name, level);
    for (size_t i = 0; i < core_config_nwarnings(svc->cfg); i++)
        core_log_warn("configuration", CLF_S("warning", core_config_warning(svc->cfg, i)));
    if (!svc->common.instance_id) {
        if (gethostname(svc->hostname, sizeof(svc->hostname) - 1) != 0)
            snprintf(svc->hostname, sizeof(svc->hostname), "%s-%d", def->name, (int)getpid());
        svc->common.instance_id = svc->hostname;
    }

    if (core_kafka_conf_check(svc->cfg, errstr, sizeof(errstr)) != CORE_OK) {
        rc = core_service_config_error(svc, errstr);
        core_service_free(svc);
        return rc;
    }
    svc->catalog = core_avro_catalog_load_checked(svc->common.proto_dir, def->rules_check, errstr,
                                                  sizeof(errstr));
    if (!svc->catalog) {
        char msg[700];
        snprintf(msg, sizeof(msg), "proto.dir: %s", errstr);
        rc = core_service_config_error(svc, msg);
        core_service_free(svc);
        return rc;
    }
    if (def->datasets &&
        core_service_check_datasets(svc, "dataset", def->datasets, errstr, sizeof(errstr))) {
        rc = core_service_config_error(svc, errstr);
        core_service_free(svc);
        return rc;
    }
    /* a stop still busy 5 s past its grace says where, before the kubelet's
     * SIGKILL (terminationGracePeriodSeconds 45 vs 30 s of grace) */
    if (core_lifecycle_install(svc->common.shutdown_grace_ms, errstr, sizeof(errstr)) != CORE_OK ||
        core_lifecycle_watchdog_start(5000, errstr, sizeof(errstr)) != CORE_OK) {
        fprintf(stderr, "%s: %s\n", def->name, errstr);
        core_service_free(svc);
        return CORE_EX_SOFTWARE;
    }
    svc->http = core_http_new(svc->common.http_bind, (int)svc->common.http_port, NULL,
                              errstr, sizeof(errstr));
    if (!svc->http) {
        fprintf(stderr, "%s: http.port: %s\n", def->name, errstr);
        core_service_free(svc);
        return CORE_EX_UNAVAILABLE;
    }
    core_http_hold(svc->http); /* until run() has added its routes and probes */
    if ((rc = schemas_init(svc)) != CORE_SERVICE_CONTINUE) {
        core_service_free(svc);
        return rc;
    }
    *svcp = svc;
    return CORE_SERVICE_CONTINUE;
}

void core_service_open(core_service_t *svc)
{
    core_http_open(svc->http);
}

void core_service_free(core_service_t *svc)
{
    if (!svc)
        return;
    core_lifecycle_watchdog_stop();
    core_http_free(svc->http); /* first: the readiness callback uses the probe */
    core_kafka_producer_free(svc->probe);
    core_avro_catalog_free(svc->catalog);
    core_registry_free(svc->registry); /* after the catalogue: its id source */
    core_config_free(svc->cfg);
    pthread_mutex_destroy(&svc->probe_lock);
    free(svc);
}

const struct core_service_common *core_service_common(const core_service_t *svc)
{
    return &svc->common;
}

const core_config_t *core_service_config(const core_service_t *svc)
{
    return svc->cfg;
}

const core_avro_catalog_t *core_service_catalog(const core_service_t *svc)
{
    return svc->catalog;
}

core_http_t *core_service_http(core_service_t *svc)
{
    return svc->http;
}

const char *core_service_subcommand(const core_service_t *svc)
{
    return svc->subcommand;
}

size_t core_service_nfiles(const core_service_t *svc)
{
    return core_config_nargs(svc->cfg) - svc->first_file;
}

const char *core_service_file(const core_service_t *svc, size_t i)
{
    return core_config_arg(svc->cfg, svc->first_file + i);
}

int core_service_config_error(const core_service_t *svc, const char *errstr)
{
    fprintf(stderr, "%s: configuration error: %s\n", svc->def->name, errstr);
    return CORE_EX_CONFIG;
}

int core_service_check_datasets(core_service_t *svc, const char *key,
                                const core_cfg_list *datasets, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < datasets->n; i++) {
        const core_avro_schema_t *s = core_avro_catalog_by_dataset(svc->catalog, datasets->v[i]);
        const char *const *personal;
        size_t n = 0;

        if (!s) {
            core_errstr(errstr, errstr_size, "%s: unknown dataset '%s' (not in %s/catalog.json)",
                        key, datasets->v[i], svc->common.proto_dir);
            return CORE_EX_CONFIG;
        }
        personal = core_avro_schema_personal(s, &n);
        if (personal && n > 0)
            core_log_set_personal(personal, n);
    }
    return 0;
}

/* /readyz: a metadata request answered by the brokers, cached briefly. */
bool core_service_kafka_ready(core_service_t *svc, char *reason, size_t reason_size)
{
    bool ok;

    pthread_mutex_lock(&svc->probe_lock);
    if (!svc->probe) {
        svc->probe_ok = false;
        snprintf(svc->probe_reason, sizeof(svc->probe_reason), "kafka: no client");
    } else if (core_mono_ms() - svc->probe_at >= READY_CACHE_MS) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(core_kafka_producer_handle(svc->probe), 0, NULL,
                                                    &md, READY_TIMEOUT_MS);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0) {
            svc->probe_ok = true;
            svc->probe_reason[0] = '\0';
        } else {
            svc->probe_ok = false;
            snprintf(svc->probe_reason, sizeof(svc->probe_reason), "kafka: %s",
                     err ? rd_kafka_err2str(err) : "no broker in metadata");
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        svc->probe_at = core_mono_ms();
    }
    ok = svc->probe_ok;
    if (!ok)
        snprintf(reason, reason_size, "%s", svc->probe_reason);
    pthread_mutex_unlock(&svc->probe_lock);
    return ok;
}

/* The "kafka" probe of /readyz (core_http names it: the reason without
 * the "kafka: " of core_service_kafka_ready). */
static bool ready_on_kafka(void *opaque, char *reason, size_t reason_size)
{
    char r[300];

    if (core_service_kafka_ready(opaque, r, sizeof(r)))
        return true;
    snprintf(reason, reason_size, "%s", strncmp(r, "kafka: ", 7) == 0 ? r + 7 : r);
    return false;
}

/* Kept for the services that use it: their own check is the HTTP server's
 * unnamed ready callback, asked beside the probes. */
void core_service_ready_also(core_service_t *svc, core_http_ready_cb cb, void *opaque)
{
    core_http_set_ready(svc->http, cb, opaque);
}

int core_service_ready_add(core_service_t *svc, const char *name, core_http_ready_cb cb,
                           void *opaque)
{
    return core_http_add_ready(svc->http, name, cb, opaque);
}

int core_service_ready_on_kafka(core_service_t *svc, char *errstr, size_t errstr_size)
{
    core_kafka_producer_opts o = { 0 };

    /* A producer only for metadata requests: it logs like every client. */
    o.cfg = svc->cfg;
    svc->probe = core_kafka_producer_new(&o, errstr, errstr_size);
    if (!svc->probe)
        return CORE_EX_CONFIG;
    if (core_http_add_ready(svc->http, "kafka", ready_on_kafka, svc) != CORE_OK) {
        core_errstr(errstr, errstr_size, "http: no room for the kafka readiness probe");
        return CORE_EX_SOFTWARE;
    }
    return 0;
}

int core_service_await(core_service_t *svc, const char *dependency, const char *address,
                       core_service_probe_fn probe, void *opaque)
{
    const core_backoff bo = { 100, 2000, 2.0, 0.5, 0 };
    int64_t deadline = svc->start_ms + svc->common.startup_timeout_ms;
    char err[512];
    bool warned = false;

    for (int attempt = 1;; attempt++) {
        int64_t left = deadline - core_mono_ms();
        int timeout = left > 5000 ? 5000 : left < 100 ? 100 : (int)left;
        core_err_t e;

        err[0] = '\0';
        e = probe(opaque, timeout, err, sizeof(err));
        if (e == CORE_OK) {
            if (warned)
                core_log_info("dependency reached", CLF_S("dependency", dependency),
                              CLF_S("address", address),
                              CLF_I("after_ms", core_mono_ms() - svc->start_ms));
            return CORE_SERVICE_CONTINUE;
        }
        for (char *p = err; *p; p++) /* one line, whatever the library said */
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
        if (e == CORE_ERR_INVALID)
            return core_service_config_error(svc, err);
        if (core_lifecycle_stopping())
            return 0;
        left = deadline - core_mono_ms();
        if (left <= 0) {
            fprintf(stderr, "%s: %s at %s unreachable for startup.timeout.ms (%lld ms): %s\n",
                    svc->def->name, dependency, address,
                    (long long)svc->common.startup_timeout_ms, err[0] ? err : "no answer");
            return CORE_EX_UNAVAILABLE;
        }
        if (!warned) {
            core_log_warn("waiting for a dependency at start", CLF_S("dependency", dependency),
                          CLF_S("address", address), CLF_S("error", err),
                          CLF_I("startup_timeout_ms", svc->common.startup_timeout_ms));
            warned = true;
        }
        int64_t d = core_backoff_delay_ms(&bo, attempt);
        if (core_lifecycle_wait(d < left ? d : left))
            return 0;
    }
}

/* One metadata request on the readiness probe's producer. */
static core_err_t probe_kafka(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    core_service_t *svc = opaque;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    core_err_t rc;

    if (!svc->probe) {
        core_errstr(errstr, errstr_size, "no client (core_service_ready_on_kafka not called)");
        return CORE_ERR_STATE;
    }
    err = rd_kafka_metadata(core_kafka_producer_handle(svc->probe), 0, NULL, &md, timeout_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0) {
        rc = CORE_OK;
    } else {
        const char *addr = core_kafka_producer_config(svc->cfg, "bootstrap.servers");

        /* A broker that answers and refuses the credentials, the CA or the
         * protocol is not waited for (exit 78 naming the setting). */
        rc = core_kafka_producer_refusal(svc->probe, svc->cfg,
                                         addr ? addr : CORE_KAFKA_DEFAULT_BOOTSTRAP, errstr,
                                         errstr_size);
        if (rc == CORE_OK) {
            core_errstr(errstr, errstr_size, "%s",
                        err ? rd_kafka_err2str(err) : "no broker in metadata");
            rc = CORE_ERR_TRANSIENT;
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    pthread_mutex_lock(&svc->probe_lock); /* what readiness answers next */
    svc->probe_ok = rc == CORE_OK;
    snprintf(svc->probe_reason, sizeof(svc->probe_reason), "kafka: %s", rc ? errstr : "");
    svc->probe_at = core_mono_ms();
    pthread_mutex_unlock(&svc->probe_lock);
    return rc;
}

int core_service_await_kafka(core_service_t *svc)
{
    const char *addr = core_kafka_producer_config(svc->cfg, "bootstrap.servers");

    return core_service_await(svc, "kafka", addr ? addr : CORE_KAFKA_DEFAULT_BOOTSTRAP,
                              probe_kafka, svc);
}

const char *core_service_group_instance_id(const core_service_t *svc, const char *configured,
                                           const core_cfg_list *datasets, char *buf,
                                           size_t size)
{
    size_t n, max = size < 250 ? size : 250; /* Kafka: at most 249 bytes */

    if (configured)
        return *configured ? configured : NULL;
    if (size == 0)
        return NULL;
    n = (size_t)snprintf(buf, max, "%s-%s", svc->def->name, svc->common.instance_id);
    for (size_t i = 0; datasets && i < datasets->n && n + 1 < max; i++)
        n += (size_t)snprintf(buf + n, max - n, "%s%s", i ? "." : "-", datasets->v[i]);
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    return buf;
}

int core_service_idle(core_service_t *svc)
{
    int rc;

    core_service_open(svc);
    rc = core_service_await_kafka(svc);
    if (rc != CORE_SERVICE_CONTINUE)
        return rc;
    core_log_info("started", CLF_S("version", TB_VERSION),
                  CLF_I("http_port", core_http_port(svc->http)),
                  CLF_S("instance", svc->common.instance_id));
    while (!core_lifecycle_wait(1000))
        ;
    core_log_info("stopping", CLF_I("signal", core_lifecycle_signal()));
    return 0;
}

int core_service_main(const core_service_def *def, int argc, char **argv, char **envp)
{
    core_service_t *svc;
    char errstr[512];
    int rc;

    rc = core_service_init(&svc, def, argc, argv, envp);
    if (rc != CORE_SERVICE_CONTINUE)
        return rc;
    if ((rc = core_service_ready_on_kafka(svc, errstr, sizeof(errstr)))) {
        rc = core_service_config_error(svc, errstr);
    } else {
        rc = def->run ? def->run(svc, def->conf) : core_service_idle(svc);
    }
    core_service_free(svc);
    return rc;
}
