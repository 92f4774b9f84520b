/* core_http.h — the small HTTP server every service runs: /healthz,
 * /readyz, /metrics, plus routes a service adds (recon reports, replay).
 *
 * Built on libmicrohttpd 0.9.75 in thread-per-connection mode with an
 * internal listening thread (MHD_USE_INTERNAL_POLLING_THREAD |
 * MHD_USE_THREAD_PER_CONNECTION): each connection has its own thread, so a
 * slow handler (a readiness check that pings Kafka, a recon report) never
 * holds up /healthz or a Prometheus scrape. At most 64 connections at once;
 * an idle connection is closed after 30 s.
 *
 * Threads: handlers, the ready callback and the probes run on connection threads,
 * several at once; they must be thread-safe. Every other function may be
 * called from any thread; routes may be added while serving. */
#ifndef TRIBUTARY_CORE_HTTP_H
#define TRIBUTARY_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "tributary/core_common.h"
#include "tributary/core_metrics.h"

typedef struct core_http core_http_t;

/**
 * @brief One request as a handler sees it. Every pointer is valid for the
 * duration of the handler call only.
 */
typedef struct core_http_request {
    const char *method;   /* "GET", "POST", ... */
    const char *path;     /* percent-decoded path, without the query */
    const char *query;    /* raw query string (after '?'), or NULL */
    const char *body;     /* request body, NUL-terminated; NULL when empty */
    size_t body_len;
    const void *conn_;    /* private: use core_http_header() */
} core_http_request;

/**
 * @brief What a handler answers. Preset to status 200, content type NULL
 * ("text/plain; charset=utf-8"), no body. body must be malloc'd (or NULL):
 * the server takes it and frees it. content_type must stay valid until the
 * handler returns (a string literal is the usual case).
 */
typedef struct core_http_response {
    int status;               /* 100..599; anything else becomes 500 */
    const char *content_type;
    char *body;
    size_t body_len;          /* 0 with a non-NULL body: strlen(body) */
} core_http_response;

typedef void (*core_http_handler)(const core_http_request *req, core_http_response *resp,
                                  void *opaque);

/* Readiness: return true when ready; otherwise write one line into reason. */
typedef bool (*core_http_ready_cb)(void *opaque, char *reason, size_t reason_size);

#define CORE_HTTP_DEFAULT_MAX_BODY (1024 * 1024)

/**
 * @brief Start serving on bind_addr:port.
 *
 * bind_addr: a numeric IPv4 or IPv6 address or a host name ("0.0.0.0",
 * "::", "127.0.0.1", "localhost"); NULL or "" means every IPv4 address.
 * port: 0 picks a free port (see core_http_port()).
 * metrics: the registry /metrics renders and the request counters land in;
 * NULL means core_metrics_global(). It must outlive the server.
 *
 * Serves /healthz (200 "ok\n", or 503 after core_http_set_healthy(false)),
 * /readyz (200 "ready\n" or 503 "not ready: <reason>\n"; ready when no
 * callback or probe is set) and /metrics (text/plain; version=0.0.4), GET and HEAD.
 *
 * Counts tributary_http_requests_total{path,code} and observes
 * tributary_http_request_duration_seconds{path}; the path label is the
 * route's pattern (a prefix route's label ends in '*'), "unmatched" for a 404, so the number of
 * series stays bounded whatever clients send.
 *
 * @returns the server, or NULL with errstr (e.g. "http: cannot listen on
 * 127.0.0.1:8080: Address already in use").
 */
core_http_t *core_http_new(const char *bind_addr, int port, core_metrics_t *metrics,
                           char *errstr, size_t errstr_size);

/**
 * @brief Add a route. path is matched exactly, or as a prefix when it ends
 * with '*' (the pattern "/batches/" + '*' matches "/batches/42" and
 * "/batches/"). An exact
 * route wins over a prefix; among prefixes the longest wins. A request whose
 * path matches a route but not its method gets 405 with an Allow header.
 * HEAD is served by a GET route (without the body).
 *
 * @returns CORE_OK; CORE_ERR_INVALID for a NULL/empty argument, a path not
 * starting with '/', or a method+path already routed (the built-in ones
 * included); CORE_ERR_NOMEM.
 */
int core_http_route(core_http_t *h, const char *method, const char *path,
                    core_http_handler fn, void *opaque);

/* A guard asked before every handler of a route the service added (never
 * for /healthz, /readyz, /metrics): return true to run the handler; false
 * after filling resp (a 401 or 403, say), which is then sent as is. pattern
 * is the route's pattern ("/batches/" + '*'). Runs on connection threads:
 * thread-safe. NULL removes it; opaque must outlive the server. */
typedef bool (*core_http_guard)(const core_http_request *req, const char *pattern,
                                core_http_response *resp, void *opaque);
void core_http_set_guard(core_http_t *h, core_http_guard fn, void *opaque);

/* While a service is still adding its routes and readiness probes (from
 * core_http_hold() to core_http_open(); a new server is open): /readyz
 * answers 503 naming "starting" beside the probes it has, and a path with
 * no route yet 503 "starting" (Retry-After: 1), not a 404 that says the
 * resource does not exist. /healthz and /metrics answer throughout.
 * Thread-safe. */
void core_http_hold(core_http_t *h);
void core_http_open(core_http_t *h);

/* Readiness callback for /readyz (NULL: none), asked before the named
 * probes; its reason is shown as it wrote it. It runs on a connection
 * thread; keep it quick and thread-safe. Prefer core_http_add_ready(). */
void core_http_set_ready(core_http_t *h, core_http_ready_cb cb, void *opaque);

#define CORE_HTTP_MAX_PROBES 16
#define CORE_HTTP_PROBE_NAME_MAX 47

/**
 * @brief Add a named readiness probe ("kafka", "redis", "postgres"): /readyz
 * is 200 "ready" only when the set_ready callback (if any) and every probe
 * answer true, else 503 "not ready: <name>: <reason>[; <name>: <reason>]"
 * naming each probe that failed (the set_ready callback's reason first, as
 * it wrote it; a text already in the answer is not repeated). Every probe
 * is asked on each request, in the order added, from a connection thread:
 * each must be quick and thread-safe, and its opaque valid until
 * core_http_free(). The reason a probe writes should not repeat its name.
 * A name already added gets the new callback in its place (in its order);
 * cb NULL removes it.
 * @returns CORE_OK; CORE_ERR_INVALID (no name, or longer than
 * CORE_HTTP_PROBE_NAME_MAX); CORE_ERR_TOOBIG (CORE_HTTP_MAX_PROBES already).
 */
int core_http_add_ready(core_http_t *h, const char *name, core_http_ready_cb cb, void *opaque);

/* /healthz answer: true (the default) 200 "ok", false 503. */
void core_http_set_healthy(core_http_t *h, bool healthy);

/* Largest request body accepted (default CORE_HTTP_DEFAULT_MAX_BODY);
 * bigger bodies get 413. */
void core_http_set_max_body(core_http_t *h, size_t max_body);

/* The port actually bound (the chosen one when 0 was asked for). */
int core_http_port(const core_http_t *h);

/* Stop the daemon (waits for the connection threads; handlers running now
 * finish first) and free everything. NULL is ok. */
void core_http_free(core_http_t *h);

/**
 * @brief Value of a query parameter, percent-decoded ('+' is a space),
 * copied NUL-terminated into buf.
 * @returns CORE_OK; CORE_ERR_NOTFOUND when absent; CORE_ERR_TOOBIG when the
 * value does not fit (buf holds a truncated copy); CORE_ERR_INVALID for
 * NULL arguments or bad percent-encoding.
 */
int core_http_query_param(const core_http_request *req, const char *name, char *buf,
                          size_t size);

/* Value of a request header (case-insensitive name), or NULL. Valid during
 * the handler call. */
const char *core_http_header(const core_http_request *req, const char *name);

/* printf into a malloc'd buffer (a response body); NULL on ENOMEM: libcore's
 * core_asprintf under the name the handlers use. */
#define core_http_printf core_asprintf

/* JSON-escape s (without quotes) into a malloc'd string; NULL on ENOMEM. */
char *core_http_json_escape(const char *s);

#endif
