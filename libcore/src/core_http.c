/* core_http.c — embedded HTTP server (libmicrohttpd): health, readiness,
 * Prometheus metrics and service routes.
 *
 * Threading: libmicrohttpd runs a listening thread plus one thread per
 * connection (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION).
 * h->lock (a rwlock) guards the route table, the ready callback and the
 * named readiness probes: request threads take it for reading only long
 * enough to copy what they need, so a handler may itself add routes. Routes are never removed before
 * core_http_free(), so a route pointer stays valid after the lock is
 * released. healthy and max_body are atomics. */
#include "tributary/core_http.h"
#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <microhttpd.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CONN_LIMIT 64u
#define CONN_TIMEOUT_S 30u
#define UNMATCHED "unmatched"
#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct route {
    char *method;
    char *pattern;          /* as given, with its trailing '*' if any */
    size_t match_len;       /* prefix: strlen(pattern) - 1; exact: strlen */
    bool prefix;
    core_http_handler fn;
    void *opaque;
} route_t;

/* A named readiness probe (core_http_add_ready). */
typedef struct probe {
    char name[CORE_HTTP_PROBE_NAME_MAX + 1];
    core_http_ready_cb cb;
    void *opaque;
} probe_t;

struct core_http {
    struct MHD_Daemon *daemon;
    pthread_rwlock_t lock;           /* routes, ready_cb, ready_opaque, probes */
    route_t **routes;
    size_t nroutes, caproutes;
    core_http_ready_cb ready_cb;
    void *ready_opaque;
    probe_t probes[CORE_HTTP_MAX_PROBES];
    size_t nprobes;
    core_http_guard guard;           /* under lock, as ready_cb */
    void *guard_opaque;
    atomic_bool healthy;
    atomic_bool set_up;              /* core_http_hold / core_http_open */
    _Atomic size_t max_body;
    int port;
    core_metrics_t *metrics;
    core_metric_family_t *req_total;     /* {path, code} */
    core_metric_family_t *req_seconds;   /* {path} */
    pthread_mutex_t log_lock;            /* starting, start_err */
    bool starting;
    char start_err[512];
};

/* Per-request state, created by the URI log callback (the first thing
 * libmicrohttpd calls for a request) and freed when the request ends. */
typedef struct req_state {
    char *uri;              /* raw request target, query included */
    char *body;
    size_t body_len, body_cap;
    bool started;           /* the access handler has seen the headers */
    bool too_big;
    bool responded;         /* a response is queued */
    double t0;
} req_state_t;

/* ---- helpers -------------------------------------------------------------- */

static char *json_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *json_error(const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL, *esc, *out;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    esc = core_http_json_escape(msg);
    free(msg);
    if (!esc)
        return NULL;
    out = core_http_printf("{\"error\": \"%s\"}\n", esc);
    free(esc);
    return out;
}

/* ---- routes --------------------------------------------------------------- */

typedef enum match_kind { MATCH_NONE, MATCH_OK, MATCH_METHOD } match_kind_t;

static bool pattern_matches(const route_t *r, const char *path)
{
    if (r->prefix)
        return strncmp(path, r->pattern, r->match_len) == 0;
    return strcmp(path, r->pattern) == 0;
}

/* Find the route for method + path. On MATCH_METHOD, allow holds the
 * methods the path does take. Caller holds h->lock for reading. */
static match_kind_t match_route(core_http_t *h, const char *method, const char *path,
                                const route_t **out, char *allow, size_t allow_size)
{
    const route_t *best = NULL, *hit = NULL, *head_hit = NULL;
    size_t i, used = 0;

    for (i = 0; i < h->nroutes; i++) {
        const route_t *r = h->routes[i];

        if (!pattern_matches(r, path))
            continue;
        if (!best || (best->prefix && !r->prefix) ||
            (best->prefix && r->prefix && r->match_len > best->match_len))
            best = r;
    }
    *out = best;
    if (!best)
        return MATCH_NONE;
    allow[0] = '\0';
    for (i = 0; i < h->nroutes; i++) {
        const route_t *r = h->routes[i];

        if (strcmp(r->pattern, best->pattern) != 0)
            continue;
        if (strcmp(r->method, method) == 0)
            hit = r;
        else if (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)
            head_hit = r;
        if (used < allow_size) {
            int n = snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "",
                             r->method);
            if (n > 0)
                used += (size_t)n;
        }
    }
    if (!hit)
        hit = head_hit;
    if (hit) {
        *out = hit;
        return MATCH_OK;
    }
    return MATCH_METHOD;
}

int core_http_route(core_http_t *h, const char *method, const char *path,
                    core_http_handler fn, void *opaque)
{
    route_t *r;
    size_t i, len;

    if (!h || !method || !*method || !path || path[0] != '/' || !fn)
        return CORE_ERR_INVALID;
    len = strlen(path);
    r = calloc(1, sizeof(*r));
    if (!r)
        return CORE_ERR_NOMEM;
    r->method = strdup(method);
    r->pattern = strdup(path);
    if (!r->method || !r->pattern) {
        free(r->method);
        free(r->pattern);
        free(r);
        return CORE_ERR_NOMEM;
    }
    for (i = 0; r->method[i]; i++)
        if (r->method[i] >= 'a' && r->method[i] <= 'z')
            r->method[i] = (char)(r->method[i] - 'a' + 'A');
    r->prefix = path[len - 1] == '*';
    r->match_len = r->prefix ? len - 1 : len;
    r->fn = fn;
    r->opaque = opaque;

    pthread_rwlock_wrlock(&h->lock);
    for (i = 0; i < h->nroutes; i++)
        if (strcmp(h->routes[i]->pattern, r->pattern) == 0 &&
            strcmp(h->routes[i]->method, r->method) == 0)
            break;
    if (i < h->nroutes) {
        pthread_rwlock_unlock(&h->lock);
        free(r->method);
        free(r->pattern);
        free(r);
        return CORE_ERR_INVALID;
    }
    if (h->nroutes == h->caproutes) {
        size_t cap = h->caproutes ? h->caproutes * 2 : 8;
        route_t **nr = realloc(h->routes, cap * sizeof(*nr));

        if (!nr) {
            pthread_rwlock_unlock(&h->lock);
            free(r->method);
            free(r->pattern);
            free(r);
            return CORE_ERR_NOMEM;
        }
        h->routes = nr;
        h->caproutes = cap;
    }
    h->routes[h->nroutes++] = r;
    pthread_rwlock_unlock(&h->lock);
    return CORE_OK;
}

void core_http_set_guard(core_http_t *h, core_http_guard fn, void *opaque)
{
    if (!h)
        return;
    pthread_rwlock_wrlock(&h->lock);
    h->guard = fn;
    h->guard_opaque = opaque;
    pthread_rwlock_unlock(&h->lock);
}

void core_http_hold(core_http_t *h)
{
    atomic_store(&h->set_up, false);
}

void core_http_open(core_http_t *h)
{
    atomic_store(&h->set_up, true);
}

void core_http_set_ready(core_http_t *h, core_http_ready_cb cb, void *opaque)
{
    if (!h)
        return;
    pthread_rwlock_wrlock(&h->lock);
    h->ready_cb = cb;
    h->ready_opaque = opaque;
    pthread_rwlock_unlock(&h->lock);
}

int core_http_add_ready(core_http_t *h, const char *name, core_http_ready_cb cb, void *opaque)
{
    size_t i;
    int rc = CORE_OK;

    if (!h || !name || !*name || strlen(name) > CORE_HTTP_PROBE_NAME_MAX)
        return CORE_ERR_INVALID;
    pthread_rwlock_wrlock(&h->lock);
    for (i = 0; i < h->nprobes && strcmp(h->probes[i].name, name) != 0; i++)
        ;
    if (i < h->nprobes && !cb) { /* removed: the others keep their order */
        memmove(&h->probes[i], &h->probes[i + 1], (h->nprobes - i - 1) * sizeof(h->probes[0]));
        h->nprobes--;
    } else if (i < h->nprobes) {
        h->probes[i].cb = cb;
        h->probes[i].opaque = opaque;
    } else if (cb && h->nprobes == CORE_HTTP_MAX_PROBES) {
        rc = CORE_ERR_TOOBIG;
    } else if (cb) {
        snprintf(h->probes[i].name, sizeof(h->probes[i].name), "%s", name);
        h->probes[i].cb = cb;
        h->probes[i].opaque = opaque;
        h->nprobes++;
    }
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

void core_http_set_healthy(core_http_t *h, bool healthy)
{
    if (h)
        atomic_store(&h->healthy, healthy);
}

void core_http_set_max_body(core_http_t *h, size_t max_body)
{
    if (h)
        atomic_store(&h->max_body, max_body);
}

int core_http_port(const core_http_t *h)
{
    return h ? h->port : -1;
}

/* ---- built-in routes ------------------------------------------------------ */

static void on_healthz(const core_http_request *req, core_http_response *resp, void *opaque)
{
    core_http_t *h = opaque;

    (void)req;
    if (atomic_load(&h->healthy)) {
        resp->body = strdup("ok\n");
    } else {
        resp->status = 503;
        resp->body = strdup("unhealthy\n");
    }
}

/* Append one failed check to the answer ("; " between two), unless the
 * same text is there already (a service's own callback that repeats a
 * probe's check). */
static void ready_note(char *out, size_t size, const char *name, const char *reason)
{
    char one[CORE_HTTP_PROBE_NAME_MAX + 520];
    size_t len = strlen(out);

    snprintf(one, sizeof(one), "%s%s%s", name ? name : "", name ? ": " : "",
             reason[0] ? reason : "no reason given");
    if (strstr(out, one))
        return;
    snprintf(out + len, size - len, "%s%s", len ? "; " : "", one);
}

/* /readyz: the ready callback, then every named probe in the order added;
 * 503 names each that failed. */
static void on_readyz(const core_http_request *req, core_http_response *resp, void *opaque)
{
    core_http_t *h = opaque;
    core_http_ready_cb cb;
    void *cb_opaque;
    probe_t probes[CORE_HTTP_MAX_PROBES];
    size_t n;
    char reason[512], out[2048] = "";

    (void)req;
    pthread_rwlock_rdlock(&h->lock);
    cb = h->ready_cb;
    cb_opaque = h->ready_opaque;
    n = h->nprobes;
    memcpy(probes, h->probes, n * sizeof(probes[0]));
    pthread_rwlock_unlock(&h->lock);
    if (!atomic_load(&h->set_up))
        ready_note(out, sizeof(out), "starting", "routes and probes not all set up yet");
    reason[0] = '\0';
    if (cb && !cb(cb_opaque, reason, sizeof(reason))) {
        reason[sizeof(reason) - 1] = '\0';
        ready_note(out, sizeof(out), NULL, reason);
    }
    for (size_t i = 0; i < n; i++) {
        reason[0] = '\0';
        if (probes[i].cb(probes[i].opaque, reason, sizeof(reason)))
            continue;
        reason[sizeof(reason) - 1] = '\0';
        ready_note(out, sizeof(out), probes[i].name, reason);
    }
    if (!out[0]) {
        resp->body = strdup("ready\n");
        return;
    }
    resp->status = 503;
    resp->body = core_http_printf("not ready: %s\n", out);
}

static void on_metrics(const core_http_request *req, core_http_response *resp, void *opaque)
{
    core_http_t *h = opaque;

    (void)req;
    resp->body = core_metrics_render(h->metrics, &resp->body_len);
    if (!resp->body) {
        resp->status = 500;
        resp->body = strdup("cannot render metrics: out of memory\n");
        resp->body_len = 0;
        return;
    }
    resp->content_type = METRICS_TYPE;
}

/* ---- request handling ----------------------------------------------------- */

static enum MHD_Result send_response(core_http_t *h, struct MHD_Connection *conn,
                                     req_state_t *st, const char *label, int status,
                                     const char *ctype, char *body, size_t len,
                                     const char *allow)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char code[16];

    if (!body) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (len == 0) {
        free(body);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(body);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : TEXT_TYPE);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 503)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    ret = MHD_queue_response(conn, (unsigned int)status, r);
    MHD_destroy_response(r);
    st->responded = true;

    snprintf(code, sizeof(code), "%d", status);
    core_metric_inc(core_metrics_series2(h->req_total, label, code));
    core_metric_observe(core_metrics_series1(h->req_seconds, label), core_mono_s() - st->t0);
    return ret;
}

static enum MHD_Result send_too_big(core_http_t *h, struct MHD_Connection *conn,
                                    req_state_t *st, const char *method, const char *url)
{
    const route_t *r = NULL;
    char allow[256];

    pthread_rwlock_rdlock(&h->lock);
    match_route(h, method, url, &r, allow, sizeof(allow));
    pthread_rwlock_unlock(&h->lock);
    char *body = json_error("request body exceeds the limit of %zu bytes",
                            atomic_load(&h->max_body));
    return send_response(h, conn, st, r ? r->pattern : UNMATCHED, 413, JSON_TYPE, body,
                         body ? strlen(body) : 0, NULL);
}

/* The service's guard, asked before every route but the built-in ones
 * (/healthz, /readyz, /metrics stay open). */
static bool guard_allows(core_http_t *h, const route_t *r, const core_http_request *req,
                         core_http_response *resp)
{
    core_http_guard g;
    void *opaque;

    if (r->fn == on_healthz || r->fn == on_readyz || r->fn == on_metrics)
        return true;
    pthread_rwlock_rdlock(&h->lock);
    g = h->guard;
    opaque = h->guard_opaque;
    pthread_rwlock_unlock(&h->lock);
    return !g || g(req, r->pattern, resp, opaque);
}

static enum MHD_Result dispatch(core_http_t *h, struct MHD_Connection *conn, req_state_t *st,
                                const char *method, const char *url)
{
    const route_t *r = NULL;
    char allow[256];
    match_kind_t mk;
    core_http_request req;
    core_http_response resp;
    const char *q;
    char *body;

    pthread_rwlock_rdlock(&h->lock);
    mk = match_route(h, method, url, &r, allow, sizeof(allow));
    pthread_rwlock_unlock(&h->lock);

    /* An error body names the method and the route pattern, never the
     * path asked for: a path may hold a key or a personal value, and error
     * bodies end up in clients' and proxies' logs (docs/SECURITY.md). */
    if (mk == MATCH_NONE && !atomic_load(&h->set_up)) {
        /* the route may be one the service has not added yet: not a 404 */
        body = json_error("starting: %s of this path (%zu bytes, not echoed) is not served yet, "
                          "retry", method, strlen(url));
        return send_response(h, conn, st, UNMATCHED, 503, JSON_TYPE, body,
                             body ? strlen(body) : 0, NULL);
    }
    if (mk == MATCH_NONE) {
        body = json_error("no route for %s of this path (%zu bytes, not echoed)", method,
                          strlen(url));
        return send_response(h, conn, st, UNMATCHED, 404, JSON_TYPE, body,
                             body ? strlen(body) : 0, NULL);
    }
    if (mk == MATCH_METHOD) {
        body = json_error("method %s not allowed for %s (allowed: %s)", method, r->pattern,
                          allow);
        return send_response(h, conn, st, r->pattern, 405, JSON_TYPE, body,
                             body ? strlen(body) : 0, allow);
    }

    q = st->uri ? strchr(st->uri, '?') : NULL;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.query = q ? q + 1 : NULL;
    req.body = st->body_len ? st->body : NULL;
    req.body_len = st->body_len;
    req.conn_ = conn;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;

    if (guard_allows(h, r, &req, &resp))
        r->fn(&req, &resp, r->opaque);

    if (resp.status < 100 || resp.status > 599) {
        core_log_warn("http: handler returned an invalid status", CLF_S("path", r->pattern),
                      CLF_I("status", resp.status));
        free(resp.body);
        resp.body = json_error("handler for %s returned invalid status %d", r->pattern,
                               resp.status);
        resp.body_len = 0;
        resp.status = 500;
        resp.content_type = JSON_TYPE;
    }
    if (resp.body && resp.body_len == 0)
        resp.body_len = strlen(resp.body);
    return send_response(h, conn, st, r->pattern, resp.status, resp.content_type, resp.body,
                         resp.body_len, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    core_http_t *h = cls;
    req_state_t *st = *con_cls;
    size_t max_body = atomic_load(&h->max_body);

    (void)version;
    if (!st)
        return MHD_NO; /* the URI callback ran out of memory: drop the connection */
    if (st->responded) {
        *upload_data_size = 0; /* early answer queued: discard the rest */
        return MHD_YES;
    }
    if (!st->started) {
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        st->started = true;
        if (cl) {
            char *end;
            unsigned long long n;

            errno = 0;
            n = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && n > max_body) {
                st->too_big = true;
                return send_too_big(h, conn, st, method, url);
            }
        }
        if (*upload_data_size == 0)
            return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (st->too_big)
            return MHD_YES;
        if (n > max_body || st->body_len > max_body - n) {
            st->too_big = true; /* keep reading, answer 413 at the end */
            free(st->body);
            st->body = NULL;
            st->body_len = st->body_cap = 0;
            return MHD_YES;
        }
        if (st->body_len + n + 1 > st->body_cap) {
            size_t cap = st->body_cap ? st->body_cap : 4096;
            char *nb;

            while (cap < st->body_len + n + 1)
                cap *= 2;
            nb = realloc(st->body, cap);
            if (!nb)
                return MHD_NO;
            st->body = nb;
            st->body_cap = cap;
        }
        memcpy(st->body + st->body_len, upload_data, n);
        st->body_len += n;
        st->body[st->body_len] = '\0';
        return MHD_YES;
    }
    if (st->too_big)
        return send_too_big(h, conn, st, method, url);
    return dispatch(h, conn, st, method, url);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    req_state_t *st = calloc(1, sizeof(*st));

    (void)cls;
    (void)conn;
    if (!st)
        return NULL;
    st->uri = strdup(uri ? uri : "");
    if (!st->uri) {
        free(st);
        return NULL;
    }
    st->t0 = core_mono_s();
    return st;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_state_t *st = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (!st)
        return;
    free(st->uri);
    free(st->body);
    free(st);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    core_http_t *h = cls;
    char msg[512];
    size_t n;
    bool starting;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    pthread_mutex_lock(&h->log_lock);
    starting = h->starting;
    if (starting && !h->start_err[0])
        snprintf(h->start_err, sizeof(h->start_err), "%s", msg);
    pthread_mutex_unlock(&h->log_lock);
    if (!starting)
        core_log_warn("http: libmicrohttpd", CLF_S("error", msg));
}

/* ---- lifecycle ------------------------------------------------------------ */

static void http_free_routes(core_http_t *h)
{
    size_t i;

    for (i = 0; i < h->nroutes; i++) {
        free(h->routes[i]->method);
        free(h->routes[i]->pattern);
        free(h->routes[i]);
    }
    free(h->routes);
    h->routes = NULL;
    h->nroutes = h->caproutes = 0;
}

core_http_t *core_http_new(const char *bind_addr, int port, core_metrics_t *metrics,
                           char *errstr, size_t errstr_size)
{
    static const char *const l_path_code[] = { "path", "code", NULL };
    static const char *const l_path[] = { "path", NULL };
    struct addrinfo hints, *ai = NULL;
    const union MHD_DaemonInfo *info;
    char portstr[16], err[256];
    const char *host = (bind_addr && *bind_addr) ? bind_addr : "0.0.0.0";
    unsigned int flags;
    core_http_t *h;
    int rc;

    if (port < 0 || port > 65535) {
        core_errstr(errstr, errstr_size, "http: port %d out of range 0..65535", port);
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        core_errstr(errstr, errstr_size, "http: out of memory");
        return NULL;
    }
    if (pthread_rwlock_init(&h->lock, NULL) != 0) {
        free(h);
        core_errstr(errstr, errstr_size, "http: cannot create a lock");
        return NULL;
    }
    if (pthread_mutex_init(&h->log_lock, NULL) != 0) {
        pthread_rwlock_destroy(&h->lock);
        free(h);
        core_errstr(errstr, errstr_size, "http: cannot create a lock");
        return NULL;
    }
    atomic_init(&h->healthy, true);
    atomic_init(&h->set_up, true);
    atomic_init(&h->max_body, (size_t)CORE_HTTP_DEFAULT_MAX_BODY);
    h->metrics = metrics ? metrics : core_metrics_global();
    h->req_total = core_metrics_family(h->metrics, CORE_METRIC_COUNTER,
                                       "tributary_http_requests_total",
                                       "HTTP requests answered, by route pattern and status code.",
                                       l_path_code, NULL, 0, err, sizeof(err));
    if (!h->req_total)
        core_log_warn("http: request counter not available", CLF_S("error", err));
    h->req_seconds = core_metrics_family(h->metrics, CORE_METRIC_HISTOGRAM,
                                         "tributary_http_request_duration_seconds",
                                         "Time to answer an HTTP request, by route pattern.",
                                         l_path, NULL, 0, err, sizeof(err));
    if (!h->req_seconds)
        core_log_warn("http: request histogram not available", CLF_S("error", err));

    if (core_http_route(h, "GET", "/healthz", on_healthz, h) != CORE_OK ||
        core_http_route(h, "GET", "/readyz", on_readyz, h) != CORE_OK ||
        core_http_route(h, "GET", "/metrics", on_metrics, h) != CORE_OK) {
        core_errstr(errstr, errstr_size, "http: out of memory");
        goto fail;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0 || !ai) {
        core_errstr(errstr, errstr_size, "http: cannot resolve bind address \"%s\": %s", host,
                    rc ? gai_strerror(rc) : "no address");
        goto fail;
    }

    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
            MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->starting = true;
    h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_log, h, /* first */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    pthread_mutex_lock(&h->log_lock);
    h->starting = false;
    pthread_mutex_unlock(&h->log_lock);
    if (!h->daemon) {
        core_errstr(errstr, errstr_size, "http: cannot listen on %s:%d: %s", host, port,
                    h->start_err[0] ? h->start_err : "libmicrohttpd failed to start");
        goto fail;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? (int)info->port : port;
    return h;

fail:
    http_free_routes(h);
    pthread_mutex_destroy(&h->log_lock);
    pthread_rwlock_destroy(&h->lock);
    free(h);
    return NULL;
}

void core_http_free(core_http_t *h)
{
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    http_free_routes(h);
    pthread_mutex_destroy(&h->log_lock);
    pthread_rwlock_destroy(&h->lock);
    free(h);
}
