/* core_httpc.h — an HTTP client over libcurl (7.88): many requests at once
 * with bounded concurrency (curl multi), per-request timeouts and
 * connection reuse (the multi handle keeps its connection cache between
 * calls, and easy handles are recycled).
 *
 * Used by svc-validator (external verification) and svc-recon (alert
 * webhook).
 *
 * Error classes of one request (core_httpc_req.err):
 *   CORE_OK            an answer came back: look at .status
 *   CORE_ERR_TRANSIENT timeout, connection refused or reset, DNS failure
 *   CORE_ERR_INVALID   the request itself is wrong (malformed URL, bad method)
 *   CORE_ERR_TOOBIG    the answer exceeded opts.max_response
 * core_httpc_status_class() turns a status into the class a caller acts on:
 * 2xx OK, 408, 429 and 5xx TRANSIENT, anything else INVALID (a verdict).
 *
 * Threads: a handle is used by one thread at a time (give each thread its
 * own). curl_global_init() is called once, thread-safely, on first use.
 *
 * Metrics (opts.metrics or core_metrics_global()):
 *   tributary_httpc_request_seconds{host}          histogram, per request
 *   tributary_httpc_requests_total{host,class}     counter: 2xx, 4xx, 5xx, error
 */
#ifndef TRIBUTARY_CORE_HTTPC_H
#define TRIBUTARY_CORE_HTTPC_H

#include <stddef.h>

#include "tributary/core_common.h"
#include "tributary/core_metrics.h"

typedef struct core_httpc core_httpc_t;

typedef struct core_httpc_opts {
    int max_concurrency;     /* requests in flight at once; 0 = 8 */
    int connect_timeout_ms;  /* 0 = 2000 */
    int timeout_ms;          /* whole request, unless the request sets one; 0 = 5000 */
    size_t max_response;     /* largest body kept; 0 = 1 MiB */
    const char *user_agent;  /* NULL = "tributary/<version>" */
    core_metrics_t *metrics; /* NULL = core_metrics_global() */
} core_httpc_opts;

/** One request and, after core_httpc_perform(), its answer. */
typedef struct core_httpc_req {
    /* in (borrowed for the call) */
    const char *method;       /* NULL = "GET" */
    const char *url;
    const char *body;         /* NULL: no body */
    size_t body_len;
    const char *content_type; /* for the body; NULL = application/json */
    int timeout_ms;           /* 0 = the handle's */
    /* out */
    core_err_t err;
    int status;               /* HTTP status when err is CORE_OK, else 0 */
    char *resp;               /* NUL-terminated body (malloc'd) or NULL */
    size_t resp_len;
    double seconds;           /* time the request took */
    char errstr[256];
} core_httpc_req;

/** @returns a handle or NULL with errstr (bad options, curl init failed). */
core_httpc_t *core_httpc_new(const core_httpc_opts *opts, char *errstr, size_t errstr_size);
/** Free the handle and its connections. NULL ok. */
void core_httpc_free(core_httpc_t *h);

/**
 * @brief Run \p n requests, at most max_concurrency at once, until each has
 * an answer or an error (its own .err). Frees any previous .resp first.
 * @returns CORE_OK when every request ran (each may still have failed);
 *          CORE_ERR_NOMEM or CORE_ERR_FATAL (curl multi failure) otherwise.
 */
core_err_t core_httpc_perform(core_httpc_t *h, core_httpc_req *reqs, size_t n);

/** Free a request's answer (resp). */
void core_httpc_req_clear(core_httpc_req *r);

/** CORE_OK for 2xx, CORE_ERR_TRANSIENT for 408, 429 and 5xx, else CORE_ERR_INVALID. */
core_err_t core_httpc_status_class(int status);

/** URL-encode (RFC 3986 unreserved kept) into a malloc'd string; NULL on ENOMEM. */
char *core_httpc_escape(const char *s, size_t len);

#endif
