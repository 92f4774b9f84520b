/* core_registry_int.h — the transport of the Schema Registry client: one
 * REST request over libcurl with auth, TLS, timeouts and retries
 * (core_registry_http.c), apart from the domain (core_registry.c). */
#ifndef TRIBUTARY_CORE_REGISTRY_INT_H
#define TRIBUTARY_CORE_REGISTRY_INT_H

#include "tributary/core_registry.h"

#include <stdint.h>

typedef struct reg_http reg_http;

/** @returns the transport (conf's strings copied) or NULL + errstr. */
reg_http *reg_http_new(const core_registry_conf *conf, char *errstr, size_t errstr_size);
void reg_http_free(reg_http *h);

/** An answer: the status and the body (malloc'd, NUL-terminated). */
typedef struct reg_answer {
    int status;
    char *body;
    size_t len;
} reg_answer;

/**
 * @brief One request to base URL + \p path, with the JSON \p body (NULL:
 * none). Connection failures, timeouts, 429 and 5xx are retried with
 * backoff; *nreq counts every attempt. Not thread-safe: the caller holds
 * the registry's lock.
 * @returns CORE_OK with *a (any status, a->body freed by the caller),
 *          CORE_ERR_TRANSIENT (no answer, or still 429/5xx, after the
 *          retries: errstr says what and where), CORE_ERR_INVALID (a bad
 *          URL, an unreadable token file), CORE_ERR_NOMEM.
 */
core_err_t reg_http_do(reg_http *h, const char *method, const char *path, const char *body,
                       reg_answer *a, uint64_t *nreq, char *errstr, size_t errstr_size);

#endif
