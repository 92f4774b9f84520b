/* core_registry.h — a Schema Registry client (Confluent's REST API; here
 * Apicurio Registry's /apis/ccompat/v7), in the shape of Confluent's
 * libserdes: a conf checked first, an opaque handle, the transport (REST
 * over libcurl, core_registry_http.c) apart from the domain (subjects, the
 * schema caches, references: core_registry.c).
 *
 * What it does for tributary:
 *   - producers: the subject of a schema on a topic by the strategy
 *     (TopicNameStrategy "<topic>-value", the default; RecordNameStrategy
 *     "<record full name>"), then look it up there, or register it when
 *     auto_register is set (Confluent's auto.register.schemas, off by
 *     default); a named schema of the catalogue that the schema uses
 *     (tributary.Meta) goes as a schema reference, registered or looked up
 *     under its full name as subject;
 *   - consumers: the schema of any id met (GET /schemas/ids/{id}), for
 *     core_avro_catalog_set_fetch() (core_registry_fetch()).
 *
 * Caches: by id (schema text, never evicted: an id's schema never
 * changes), by subject + schema text (id and version), and a short-lived
 * negative cache of ids the registry does not know (at most 1024 ids, so
 * records with random ids cannot grow it; a stream of records with an
 * unknown id costs one request per negative_ttl_ms, not one each).
 *
 * Errors (core_err_t, errstr with the registry's own message):
 *   CORE_ERR_NOTFOUND  the registry answered: no such subject, schema or id
 *   CORE_ERR_INVALID   the registry refused: 409 incompatible, 422 invalid
 *                      schema, 401/403 credentials (check the key named)
 *   CORE_ERR_TRANSIENT no answer after the retries: connection refused,
 *                      timeout, 5xx, 429
 *   CORE_ERR_NOMEM
 * Retries: transient failures are retried `retries` times, backing off
 * from retry_backoff_ms (doubling, with jitter) up to retry_backoff_max_ms.
 *
 * Threads: every function may be called from any thread; the caches and
 * the curl handle are under one lock (the registry is asked at start and
 * on an id seen for the first time, never per record).
 */
#ifndef TRIBUTARY_CORE_REGISTRY_H
#define TRIBUTARY_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tributary/core_avro.h"
#include "tributary/core_common.h"

typedef struct core_registry core_registry_t;

typedef enum core_registry_strategy {
    CORE_REGISTRY_TOPIC_NAME = 0, /* "<topic>-value" (Confluent's default) */
    CORE_REGISTRY_RECORD_NAME,    /* "<namespace>.<name>" of the record */
} core_registry_strategy;

typedef struct core_registry_conf {
    const char *url;               /* base URL, e.g. http://127.0.0.1:18081/apis/ccompat/v7 */
    core_registry_strategy strategy;
    bool auto_register;            /* register a schema the subject lacks (default false) */
    const char *basic_auth;        /* "user:password" or NULL */
    const char *bearer_token_file; /* file holding a bearer token (read at each request) */
    const char *ca_file;           /* TLS: CA bundle to verify the server with, or NULL */
    const char *cert_file;         /* TLS client certificate (PEM) or NULL */
    const char *key_file;          /* its key (PEM) or NULL */
    bool insecure;                 /* TLS: skip verifying the server (tests only) */
    int connect_timeout_ms;        /* 0 = 2000 */
    int timeout_ms;                /* whole request; 0 = 5000 */
    int retries;                   /* after the first attempt; < 0 = 0 */
    int retry_backoff_ms;          /* 0 = 100 */
    int retry_backoff_max_ms;      /* 0 = 2000 */
    int negative_ttl_ms;           /* unknown ids remembered; 0 = 10000 */
} core_registry_conf;

/** Parse "TopicNameStrategy" / "RecordNameStrategy" (also Confluent's
 * io.confluent.kafka.serializers.subject.* class names, and "topic" /
 * "record"). @returns 0 or -1. */
int core_registry_strategy_parse(const char *s, core_registry_strategy *out);
const char *core_registry_strategy_name(core_registry_strategy s);

/**
 * @brief The subject of a record on a topic by the strategy.
 * @returns the length written, or -1 when buf is short or a needed name
 *          is missing.
 */
int core_registry_subject(core_registry_strategy s, const char *topic,
                          const char *record_fullname, char *buf, size_t size);

/** @returns a handle (the conf's strings are copied) or NULL + errstr
 * (no url, a URL that is not http(s), a bearer token file unreadable). */
core_registry_t *core_registry_new(const core_registry_conf *conf, char *errstr,
                                   size_t errstr_size);
void core_registry_free(core_registry_t *r);

/** The base URL, as configured. */
const char *core_registry_url(const core_registry_t *r);

/** One reference of a schema to another registered one. */
typedef struct core_registry_ref {
    const char *name;    /* the full name the schema uses as a type */
    const char *subject; /* where the referenced schema is registered */
    int version;
} core_registry_ref;

/**
 * @brief The id of \p schema (Avro JSON text) under \p subject: looked up,
 * or registered when \p do_register (the registry then checks the
 * subject's compatibility: 409 → CORE_ERR_INVALID naming the subject and
 * quoting the registry). Cached by subject and text.
 * @param versionp receives the version under the subject (may be NULL).
 */
core_err_t core_registry_lookup(core_registry_t *r, const char *subject, const char *schema,
                                const core_registry_ref *refs, size_t nrefs, bool do_register,
                                uint32_t *idp, int *versionp, char *errstr, size_t errstr_size);

/**
 * @brief Ask whether \p schema may follow the latest version of \p subject
 * under its compatibility level (POST /compatibility/subjects/S/versions/latest).
 * @returns CORE_OK with *compatible; the registry's reasons in errstr when not.
 */
core_err_t core_registry_check_compat(core_registry_t *r, const char *subject,
                                      const char *schema, const core_registry_ref *refs,
                                      size_t nrefs, bool *compatible, char *errstr,
                                      size_t errstr_size);

/**
 * @brief The schema of an id (GET /schemas/ids/{id}), its text as
 * registered (references as type names). Cached for ever; an unknown id
 * for negative_ttl_ms.
 * @param textp receives a malloc'd copy the caller frees.
 */
core_err_t core_registry_get(core_registry_t *r, uint32_t id, char **textp, char *errstr,
                             size_t errstr_size);

/** core_avro_fetch_fn over core_registry_get() (opaque: the registry). */
core_err_t core_registry_fetch(void *registry, uint32_t id, char **json, char *errstr,
                               size_t errstr_size);

/**
 * @brief Producer side: the registry id of a catalogue schema on a topic.
 * The subject comes from the strategy; the text sent is the schema file's
 * JSON (minified), the catalogue's named schemas it uses as types sent as
 * references (each looked up, or registered, under its full name). Sets
 * the schema's id in the catalogue (core_avro_catalog_set_id()).
 * Not thread-safe with respect to the catalogue: call at start.
 * @param subjectp receives the subject used (may be NULL; size 256).
 * @returns CORE_OK; CORE_ERR_NOTFOUND when the subject lacks the schema
 *          and auto_register is off (errstr names the subject); the errors
 *          of core_registry_lookup().
 */
core_err_t core_registry_bind(core_registry_t *r, core_avro_catalog_t *cat,
                              const core_avro_schema_t *schema, const char *topic,
                              uint32_t *idp, char *errstr, size_t errstr_size);

/**
 * @brief core_registry_bind() under a subject given, without touching the
 * catalogue's ids: the id the subject gives the schema (registered when
 * auto_register is set).
 */
core_err_t core_registry_bind_subject(core_registry_t *r, const core_avro_catalog_t *cat,
                                      const core_avro_schema_t *schema, const char *subject,
                                      uint32_t *idp, char *errstr, size_t errstr_size);

/**
 * @brief Whether a catalogue schema may follow the latest version of
 * \p subject (core_registry_check_compat() with the text and references
 * core_registry_bind() would send; references are looked up or
 * registered, by auto_register).
 */
core_err_t core_registry_check_schema(core_registry_t *r, const core_avro_catalog_t *cat,
                                      const core_avro_schema_t *schema, const char *subject,
                                      bool *compatible, char *errstr, size_t errstr_size);

/** Set a subject's compatibility level ("BACKWARD", "NONE"...): PUT /config/S. */
core_err_t core_registry_set_compat(core_registry_t *r, const char *subject, const char *level,
                                    char *errstr, size_t errstr_size);

/** Delete a subject and its versions for good (soft, then permanent). A
 * subject already gone is CORE_OK. Clears the caches of that subject. */
core_err_t core_registry_delete_subject(core_registry_t *r, const char *subject, char *errstr,
                                        size_t errstr_size);

/** The request counters since core_registry_new() (tests: the caches). */
typedef struct core_registry_stats {
    uint64_t requests; /* HTTP requests sent, retries included */
    uint64_t hits;     /* answers from a cache */
} core_registry_stats;
void core_registry_get_stats(core_registry_t *r, core_registry_stats *out);

#endif
