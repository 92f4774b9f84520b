/* core_service.h — the common start and stop of every tributary service.
 *
 * core_service_init() declares the common keys (log.level, http.*,
 * shutdown.grace.ms, startup.timeout.ms, proto.dir, instance.id) next to the service's own
 * table, loads the configuration (defaults < file < env < flags), answers
 * --help and --version, checks the kafka.* keys and the datasets named
 * (def->datasets),
 * loads the schema catalogue, installs the signal handlers and starts the
 * HTTP server (/healthz, /readyz, /metrics). Anything wrong is refused
 * before any work starts, with one line naming the key.
 *
 * Schema ids: without schema.registry.url, the catalogue's fixed ids
 * (proto/catalog.json). With it, a Schema Registry's (core_registry.h):
 * init gives the catalogue the registry as its id source (a consumer
 * resolves any id it meets), binds tributary.AuditEvent on audit.events,
 * and logs which source it uses ("schemas" line); a producer binds what it
 * writes with core_service_schema_bind() before producing.
 *
 * Typical main (CORE_SERVICE_MAIN(def) writes it):
 *
 *     int main(int argc, char **argv)
 *     {
 *         return core_service_main(&def, argc, argv, environ);
 *     }
 *
 * where def.run does the work until core_lifecycle_stopping(). */
#ifndef TRIBUTARY_CORE_SERVICE_H
#define TRIBUTARY_CORE_SERVICE_H

#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_config.h"
#include "tributary/core_http.h"
#include "tributary/core_registry.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#define CORE_SERVICE_CONTINUE (-1)

/* The keys every service has, filled by core_service_init(). */
struct core_service_common {
    char *log_level;
    char *http_bind;
    int64_t http_port;
    int64_t shutdown_grace_ms;
    char *proto_dir;
    char *instance_id;
    int64_t startup_timeout_ms;
    /* schema.registry.*: a Schema Registry instead of the catalogue's ids */
    char *registry_url;
    char *registry_strategy;
    bool registry_auto_register;
    char *registry_basic_auth;
    char *registry_token_file;
    char *registry_ca, *registry_cert, *registry_key;
    int64_t registry_timeout_ms;
    int64_t registry_retries;
};

typedef struct core_service core_service_t;

/* A further configuration table (a plugin's), filling its own struct. */
typedef struct core_service_table {
    const core_config_key *keys;
    void *conf;
} core_service_table;

typedef struct core_service_def {
    const char *name;              /* "svc-ingest" */
    const char *summary;           /* one line for --help */
    const char *usage;             /* "svc-ingest --dataset NAME [options] FILE..." */
    const char *http_port_default; /* "8081" */
    const core_config_key *keys;   /* the service's own table (may be NULL) */
    const core_config_alias *aliases; /* former names of its keys (may be NULL) */
    const core_config_alias *deprecated; /* keys still working, to be replaced by
                                          * others: a warning names them (may be NULL) */
    core_avro_rules_check_fn *rules_check; /* what it checks in rules files (may be NULL) */
    void *conf;                    /* where its values land */
    /* Subcommands the service accepts as its first word (NULL-terminated);
     * NULL accepts none. Any other first word is a usage error (64). */
    const char *const *subcommands;
    /* Does the service take file arguments after the subcommand? */
    bool takes_files;
    /* Subcommands that are one-shot tools (NULL-terminated, may be NULL).
     * A one-shot run — one of these, or files given without a subcommand —
     * serves HTTP on any free port unless http.port is set, so it runs
     * beside the long-running service on the same host. */
    const char *const *oneshot_subcommands;
    /* The service's dataset list inside conf (checked against the
     * catalogue by core_service_main), or NULL. */
    const core_cfg_list *datasets;
    /* The work of the service: runs until done or stopped; returns the
     * process exit code. */
    int (*run)(core_service_t *svc, void *conf);
    /* Further tables (each plugin's own keys and struct), ended by one
     * whose keys are NULL; may be NULL. */
    const core_service_table *tables;
} core_service_def;

/**
 * @brief The whole life of a service: core_service_init() (which also
 * checks def->datasets), readiness on Kafka, def->run(), core_service_free().
 * @returns the process exit code.
 */
int core_service_main(const core_service_def *def, int argc, char **argv, char **envp);

/* The main() of a service that only runs its definition:
 * CORE_SERVICE_MAIN(def) at file scope. */
#define CORE_SERVICE_MAIN(def_)                                                                \
    extern char **environ;                                                                     \
    int main(int argc, char **argv) { return core_service_main(&(def_), argc, argv, environ); }

/**
 * @brief Start a service. On CORE_SERVICE_CONTINUE *svcp is the service;
 * otherwise nothing is left allocated and the return value is the exit
 * code main should return: 0 after --help / --version, 64 for a malformed
 * command line, 78 for a refused configuration, 69 when the HTTP port
 * cannot be bound. The reason has been printed as one line on stderr.
 */
int core_service_init(core_service_t **svcp, const core_service_def *def,
                      int argc, char **argv, char **envp);

void core_service_free(core_service_t *svc);

/** The Schema Registry client, or NULL when schema.registry.url is unset. */
core_registry_t *core_service_registry(const core_service_t *svc);

/**
 * @brief Producer side, registry mode: give \p schema (a schema of the
 * service's catalogue) the registry's id for records on \p topic (the
 * subject of the configured strategy: looked up, or registered with
 * schema.registry.auto.register.schemas). Without a registry: nothing.
 * Main thread, before the catalogue is used by other threads. The registry
 * down is waited out up to startup.timeout.ms (core_service_await()).
 * @returns CORE_SERVICE_CONTINUE; else the exit code, its reason printed:
 *          78 naming the subject (not registered, refused as incompatible,
 *          credentials), 69 (the registry did not answer in time), 0 (stop
 *          asked while waiting).
 */
int core_service_schema_bind(core_service_t *svc, const char *topic,
                             const core_avro_schema_t *schema);

/** core_service_schema_bind() of tributary.AuditEvent on the service's
 * audit topic (init binds it on audit.events; a service whose audit.topic
 * differs calls this). Same returns. */
int core_service_bind_audit(core_service_t *svc, const char *audit_topic);

const struct core_service_common *core_service_common(const core_service_t *svc);
const core_config_t *core_service_config(const core_service_t *svc);
const core_avro_catalog_t *core_service_catalog(const core_service_t *svc);
core_http_t *core_service_http(core_service_t *svc);
/* The subcommand given (NULL if none) and the remaining words. */
const char *core_service_subcommand(const core_service_t *svc);
size_t core_service_nfiles(const core_service_t *svc);
const char *core_service_file(const core_service_t *svc, size_t i);

/**
 * @brief Check that every dataset named under `key` exists in the
 * catalogue; declares each dataset's personal fields to the logger.
 * @returns 0, or CORE_EX_CONFIG with errstr naming the key and the dataset.
 */
int core_service_check_datasets(core_service_t *svc, const char *key,
                                const core_cfg_list *datasets, char *errstr, size_t errstr_size);

/**
 * @brief Report a refused configuration found after init (by the service's
 * own checks): prints "<service>: configuration error: <errstr>" on stderr
 * and returns CORE_EX_CONFIG.
 */
int core_service_config_error(const core_service_t *svc, const char *errstr);

/**
 * @brief Readiness by Kafka reachability: the /readyz probe "kafka", true
 * only while a metadata request to the brokers succeeds (checked at most
 * every 2 s, from the HTTP thread). core_service_main() calls it before
 * def->run. Services add a probe per further dependency beside it
 * (core_service_ready_add), never a copy of this one.
 * @returns 0 or CORE_EX_CONFIG (the kafka.* keys could not build a client).
 */
int core_service_ready_on_kafka(core_service_t *svc, char *errstr, size_t errstr_size);

/**
 * @brief The Kafka part of readiness, for a service's own readiness
 * callback: what core_service_ready_on_kafka() serves (a metadata request,
 * at most every 2 s). Thread-safe (HTTP threads).
 * @returns true while the brokers answer; else false with the reason
 * ("kafka: ...").
 */
bool core_service_kafka_ready(core_service_t *svc, char *reason, size_t reason_size);

/**
 * @brief One attempt to reach a dependency, for core_service_await().
 * @p timeout_ms bounds the attempt (the time left, at most 5 s).
 * @returns CORE_OK (it answered), CORE_ERR_INVALID (it answered and refused
 * the configuration: errstr names the key, "pg.password: ..."), anything
 * else (not reachable yet: errstr says why).
 */
typedef core_err_t (*core_service_probe_fn)(void *opaque, int timeout_ms, char *errstr,
                                            size_t errstr_size);

/**
 * @brief The start-up policy for a dependency (docs/OPERATIONS.md): try
 * @p probe, backing off from 100 ms to 2 s, until it answers or
 * startup.timeout.ms has passed since core_service_init(). One warning is
 * logged while it waits. Main thread; the HTTP server answers meanwhile
 * (readiness says what the service waits for).
 * @returns CORE_SERVICE_CONTINUE once the dependency answered; otherwise
 * the exit code, its reason printed as one line on stderr:
 * CORE_EX_UNAVAILABLE ("<service>: <dependency> at <address> unreachable
 * for startup.timeout.ms (N ms): <reason>"), CORE_EX_CONFIG ("<service>:
 * configuration error: <errstr>"), or 0 when SIGTERM/SIGINT came first
 * (nothing printed).
 */
int core_service_await(core_service_t *svc, const char *dependency, const char *address,
                       core_service_probe_fn probe, void *opaque);

/**
 * @brief core_service_await() on the Kafka brokers (kafka.bootstrap.servers):
 * a metadata request they answer. Needs core_service_ready_on_kafka()
 * (core_service_main() calls it before def->run).
 */
int core_service_await_kafka(core_service_t *svc);

/**
 * @brief The group.instance.id (static membership) of a consumer service's
 * member: @p configured when set (empty: NULL, a dynamic member), else
 * "<service>-<instance.id>-<dataset>[.<dataset>...]", every byte Kafka does
 * not allow in an id ([A-Za-z0-9._-]) as '_', cut to 249 bytes. Stable per
 * instance, so a restarted member gets its partitions back at once; a
 * kafka.group.instance.id the user set still wins (kafka.* over defaults).
 * @returns buf, or NULL for a dynamic member.
 */
const char *core_service_group_instance_id(const core_service_t *svc, const char *configured,
                                           const core_cfg_list *datasets, char *buf,
                                           size_t size);

/**
 * @brief The service has added its routes and readiness probes. The HTTP
 * server listens from core_service_init on (so /healthz answers during a
 * slow start), but until this call /readyz is 503 "starting" and a path
 * with no route 503, not 404 (core_http_hold). Call it in run() once the
 * routes and probes are in, before any wait for a dependency; the
 * default run (core_service_idle) calls it.
 */
void core_service_open(core_service_t *svc);

/**
 * @brief A readiness probe of one of the service's own dependencies, named
 * after it ("redis", "postgres"), asked beside the "kafka" probe: /readyz
 * is 200 only when every probe is, and a 503 names each that failed
 * (core_http_add_ready). The same name replaces its callback; cb NULL
 * removes it. cb must be quick and thread-safe; opaque must outlive the
 * HTTP server.
 * @returns CORE_OK, CORE_ERR_INVALID (bad name), CORE_ERR_TOOBIG (full).
 */
int core_service_ready_add(core_service_t *svc, const char *name, core_http_ready_cb cb,
                           void *opaque);

/**
 * @brief Older form of core_service_ready_add, kept for the services that
 * still use it: a further check (its reason shown as written), asked beside
 * the "kafka" probe; /readyz is 200 only when both are. NULL removes it.
 * cb must be quick and thread-safe; opaque must outlive the HTTP server.
 */
void core_service_ready_also(core_service_t *svc, core_http_ready_cb cb, void *opaque);

/**
 * @brief Wait until SIGTERM/SIGINT (the work loop of a service that has
 * nothing else to do yet), after core_service_await_kafka(). Logs start
 * and stop. @returns 0, or the exit code of core_service_await_kafka().
 */
int core_service_idle(core_service_t *svc);

#endif
