/* test_http.c — core_http on an ephemeral loopback port, driven by libcurl. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_http.h"
#include "tributary/core_metrics.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct http_resp {
    long code;
    char *body;
    size_t len;
    char ctype[128];
    char allow[128];
    char retry_after[16];
    CURLcode cc;
} http_resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    http_resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);

    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

/* The value of header `name` ("Allow: ") if line p is that header. */
static void header_value(const char *p, size_t len, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name), k;

    if (len <= nl || strncasecmp(p, name, nl) != 0)
        return;
    k = len - nl < size ? len - nl : size - 1;
    memcpy(out, p + nl, k);
    out[k] = '\0';
    while (k > 0 && (out[k - 1] == '\r' || out[k - 1] == '\n'))
        out[--k] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    http_resp *r = ud;
    size_t len = sz * n;

    header_value(p, len, "Allow: ", r->allow, sizeof(r->allow));
    header_value(p, len, "Retry-After: ", r->retry_after, sizeof(r->retry_after));
    return len;
}

typedef struct upload {
    size_t left;
} upload;

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
    upload *u = ud;
    size_t k = sz * n < u->left ? sz * n : u->left;

    memset(p, 'u', k);
    u->left -= k;
    return k;
}

/* One request. body may be NULL; chunked uploads `chunked_len` bytes of
 * 'u' with Transfer-Encoding: chunked. */
static void http_req(int port, const char *method, const char *path, const char *body,
                     size_t body_len, size_t chunked_len, http_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char url[1024];
    char *ct = NULL;
    upload up = { chunked_len };

    memset(r, 0, sizeof(*r));
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
    } else if (chunked_len) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    }
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    r->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    if (!r->body)
        r->body = calloc(1, 1);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

static void get(int port, const char *path, http_resp *r)
{
    http_req(port, "GET", path, NULL, 0, 0, r);
    ck_assert_msg(r->cc == CURLE_OK, "GET %s: %s", path, curl_easy_strerror(r->cc));
}

static core_http_t *start(core_metrics_t *m)
{
    char err[256] = "";
    core_http_t *h = core_http_new("127.0.0.1", 0, m, err, sizeof(err));

    ck_assert_msg(h != NULL, "core_http_new: %s", err);
    ck_assert_int_gt(core_http_port(h), 0);
    return h;
}

/* ---- handlers ------------------------------------------------------------- */

static void h_item(const core_http_request *req, core_http_response *resp, void *opaque)
{
    char name[64], missing[8], small[4];
    int rc = core_http_query_param(req, "name", name, sizeof(name));
    int rc2 = core_http_query_param(req, "nope", missing, sizeof(missing));
    int rc3 = core_http_query_param(req, "name", small, sizeof(small));
    int rc4 = core_http_query_param(req, "bad", missing, sizeof(missing));

    (void)opaque;
    resp->content_type = "application/json";
    resp->body = core_http_printf("{\"path\":\"%s\",\"name\":\"%s\",\"rc\":%d,\"rc2\":%d,"
                                  "\"rc3\":%d,\"rc4\":%d,\"query\":\"%s\",\"ua\":%s}",
                                  req->path, rc == CORE_OK ? name : "?", rc, rc2, rc3, rc4,
                                  req->query ? req->query : "(null)",
                                  core_http_header(req, "user-agent") ? "true" : "false");
}

static void h_echo(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)opaque;
    resp->status = 201;
    resp->content_type = "application/octet-stream";
    if (req->body_len) {
        resp->body = malloc(req->body_len);
        memcpy(resp->body, req->body, req->body_len);
        resp->body_len = req->body_len;
    }
}

static void h_tag(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    resp->body = core_http_printf("%s", (const char *)opaque);
}

static void h_badstatus(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    (void)opaque;
    resp->status = 42;
    resp->body = core_http_printf("whatever");
}

typedef struct ready_state {
    bool ready;
    const char *reason;
} ready_state;

static bool ready_cb(void *opaque, char *reason, size_t size)
{
    ready_state *rs = opaque;

    if (!rs->ready)
        snprintf(reason, size, "%s", rs->reason);
    return rs->ready;
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_healthz)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    http_resp r;

    get(core_http_port(h), "/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ok\n");
    free(r.body);
    core_http_set_healthy(h, false);
    get(core_http_port(h), "/healthz", &r);
    ck_assert_int_eq(r.code, 503);
    free(r.body);
    core_http_set_healthy(h, true);
    http_req(core_http_port(h), "HEAD", "/healthz", NULL, 0, 0, &r);
    ck_assert_int_eq(r.cc, CURLE_OK);
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 0);
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_readyz)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    ready_state rs = { false, "kafka: no partitions assigned" };
    http_resp r;

    get(core_http_port(h), "/readyz", &r); /* no callback: ready */
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ready\n");
    free(r.body);

    core_http_set_ready(h, ready_cb, &rs);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "not ready: kafka: no partitions assigned\n");
    free(r.body);

    rs.ready = true;
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ready\n");
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

/* Named probes: each failing one named in the 503, in the order added,
 * after the set_ready callback; a repeated text once; replace, remove, and
 * the edges of a name's length and of the table's size. */
START_TEST(test_readyz_probes)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    ready_state kafka = { false, "Local: Broker transport failure" };
    ready_state redis = { false, "not connected" };
    ready_state own = { false, "kafka: Local: Broker transport failure" };
    ready_state ok = { true, "" };
    char name[64];
    http_resp r;

    ck_assert_int_eq(core_http_add_ready(h, "kafka", ready_cb, &kafka), CORE_OK);
    ck_assert_int_eq(core_http_add_ready(h, "redis", ready_cb, &redis), CORE_OK);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body,
                     "not ready: kafka: Local: Broker transport failure; redis: not connected\n");
    free(r.body);
    /* a service's own callback repeating the kafka check: said once */
    core_http_set_ready(h, ready_cb, &own);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_str_eq(r.body,
                     "not ready: kafka: Local: Broker transport failure; redis: not connected\n");
    free(r.body);
    core_http_set_ready(h, NULL, NULL);
    kafka.ready = true;
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "not ready: redis: not connected\n");
    free(r.body);
    /* the same name takes the new callback in its place */
    ck_assert_int_eq(core_http_add_ready(h, "redis", ready_cb, &ok), CORE_OK);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ready\n");
    free(r.body);
    redis.reason = ""; /* no reason given */
    ck_assert_int_eq(core_http_add_ready(h, "redis", ready_cb, &redis), CORE_OK);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_str_eq(r.body, "not ready: redis: no reason given\n");
    free(r.body);
    ck_assert_int_eq(core_http_add_ready(h, "redis", NULL, NULL), CORE_OK); /* removed */
    ck_assert_int_eq(core_http_add_ready(h, "absent", NULL, NULL), CORE_OK);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);

    /* names: 1..CORE_HTTP_PROBE_NAME_MAX bytes */
    ck_assert_int_eq(core_http_add_ready(h, "", ready_cb, &ok), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_add_ready(h, NULL, ready_cb, &ok), CORE_ERR_INVALID);
    memset(name, 'n', CORE_HTTP_PROBE_NAME_MAX + 1);
    name[CORE_HTTP_PROBE_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(core_http_add_ready(h, name, ready_cb, &ok), CORE_ERR_INVALID);
    name[CORE_HTTP_PROBE_NAME_MAX] = '\0';
    ck_assert_int_eq(core_http_add_ready(h, name, ready_cb, &ok), CORE_OK);
    /* the table: CORE_HTTP_MAX_PROBES (kafka and the long name are two) */
    for (int i = 2; i < CORE_HTTP_MAX_PROBES; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        ck_assert_int_eq(core_http_add_ready(h, name, ready_cb, &ok), CORE_OK);
    }
    ck_assert_int_eq(core_http_add_ready(h, "one-too-many", ready_cb, &ok), CORE_ERR_TOOBIG);
    ck_assert_int_eq(core_http_add_ready(h, "kafka", ready_cb, &redis), CORE_OK); /* replace */
    snprintf(name, sizeof(name), "p%d", CORE_HTTP_MAX_PROBES - 1);
    ck_assert_int_eq(core_http_add_ready(h, name, ready_cb, &kafka), CORE_OK);
    kafka.ready = false;
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "not ready: kafka: no reason given; p15: Local: Broker transport "
                             "failure\n");
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

/* Held (a service still adding its routes and probes): /readyz 503 names
 * "starting" beside the probes, an unknown path 503 with Retry-After, not
 * 404; /healthz answers; open: the probes alone decide, 404 again. */
START_TEST(test_held_until_open)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    ready_state kafka = { false, "Local: Broker transport failure" };
    http_resp r;

    core_http_hold(h);
    get(core_http_port(h), "/readyz", &r); /* no probe yet: still not ready */
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.retry_after, "1");
    ck_assert_str_eq(r.body, "not ready: starting: routes and probes not all set up yet\n");
    free(r.body);
    ck_assert_int_eq(core_http_add_ready(h, "kafka", ready_cb, &kafka), CORE_OK);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_str_eq(r.body, "not ready: starting: routes and probes not all set up yet; "
                             "kafka: Local: Broker transport failure\n");
    free(r.body);
    get(core_http_port(h), "/batches/b1", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.retry_after, "1");
    ck_assert_str_eq(r.body, "{\"error\": \"starting: GET of this path (11 bytes, not echoed) "
                             "is not served yet, retry\"}\n");
    free(r.body);
    get(core_http_port(h), "/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);
    ck_assert_int_eq(core_http_route(h, "GET", "/batches/*", h_tag, "batch"), CORE_OK);
    get(core_http_port(h), "/batches/b1", &r); /* a route added: served while held */
    ck_assert_int_eq(r.code, 200);
    free(r.body);

    core_http_open(h);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "not ready: kafka: Local: Broker transport failure\n");
    free(r.body);
    kafka.ready = true;
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.retry_after, "");
    free(r.body);
    get(core_http_port(h), "/nothing", &r);
    ck_assert_int_eq(r.code, 404);
    ck_assert_str_eq(r.retry_after, "");
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_metrics_endpoint)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    core_metric_family_t *f = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_test_answer",
                                                  "The answer.", NULL, NULL, 0, NULL, 0);
    http_resp r;

    core_metric_set(core_metrics_series(f, NULL), 42);
    get(core_http_port(h), "/healthz", &r);
    free(r.body);
    get(core_http_port(h), "/nowhere/at/all", &r);
    free(r.body);
    get(core_http_port(h), "/metrics", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_msg(strncmp(r.ctype, "text/plain; version=0.0.4", 25) == 0, "ctype %s", r.ctype);
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE tributary_test_answer gauge\n"
                                         "tributary_test_answer 42\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "tributary_http_requests_total{path=\"/healthz\",code=\"200\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "tributary_http_requests_total{path=\"unmatched\",code=\"404\"} 1\n"));
    ck_assert_ptr_null(strstr(r.body, "/nowhere")); /* raw paths never become labels */
    ck_assert_ptr_nonnull(
        strstr(r.body, "tributary_http_request_duration_seconds_count{path=\"/healthz\"} 1\n"));
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_get_route_query)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    http_resp r;

    ck_assert_int_eq(core_http_route(h, "GET", "/items/*", h_item, NULL), CORE_OK);
    get(core_http_port(h), "/items/42?x=1&name=a%20b+c&bad=%zz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.ctype, "application/json");
    ck_assert_str_eq(r.body, "{\"path\":\"/items/42\",\"name\":\"a b c\",\"rc\":0,\"rc2\":-5,"
                             "\"rc3\":-6,\"rc4\":-1,\"query\":\"x=1&name=a%20b+c&bad=%zz\","
                             "\"ua\":false}");
    free(r.body);
    get(core_http_port(h), "/items/", &r); /* no query at all */
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"rc\":-5"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"query\":\"(null)\""));
    free(r.body);
    get(core_http_port(h), "/items", &r); /* the prefix needs the slash */
    ck_assert_int_eq(r.code, 404);
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

/* The guard: asked with the route's pattern before a service route, never
 * before /healthz, /readyz, /metrics; a refusal is sent as the guard wrote it. */
static bool guard_cb(const core_http_request *req, const char *pattern,
                     core_http_response *resp, void *opaque)
{
    int *calls = opaque;
    (*calls)++;
    ck_assert_str_eq(pattern, "/items/*");
    if (req->query && strstr(req->query, "let=1"))
        return true;
    resp->status = 401;
    resp->content_type = "application/json";
    resp->body = core_http_printf("{\"error\":\"no\"}");
    return false;
}

START_TEST(test_guard)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    http_resp r;
    int calls = 0;

    ck_assert_int_eq(core_http_route(h, "GET", "/items/*", h_item, NULL), CORE_OK);
    core_http_set_guard(h, guard_cb, &calls);
    get(core_http_port(h), "/items/1", &r);
    ck_assert_int_eq(r.code, 401);
    ck_assert_str_eq(r.body, "{\"error\":\"no\"}");
    free(r.body);
    get(core_http_port(h), "/items/1?let=1&name=x", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"x\""));
    free(r.body);
    ck_assert_int_eq(calls, 2);
    get(core_http_port(h), "/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);
    get(core_http_port(h), "/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);
    get(core_http_port(h), "/metrics", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);
    get(core_http_port(h), "/nothing", &r); /* no route: 404, the guard not asked */
    ck_assert_int_eq(r.code, 404);
    free(r.body);
    ck_assert_int_eq(calls, 2);
    core_http_set_guard(h, NULL, NULL); /* removed: open again */
    get(core_http_port(h), "/items/1", &r);
    ck_assert_int_eq(r.code, 200);
    free(r.body);
    ck_assert_int_eq(calls, 2);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_post_echo)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    const char body[] = "line one\nline\0two";
    http_resp r;

    ck_assert_int_eq(core_http_route(h, "POST", "/echo", h_echo, NULL), CORE_OK);
    http_req(core_http_port(h), "POST", "/echo", body, sizeof(body) - 1, 0, &r);
    ck_assert_int_eq(r.cc, CURLE_OK);
    ck_assert_int_eq(r.code, 201);
    ck_assert_str_eq(r.ctype, "application/octet-stream");
    ck_assert_uint_eq(r.len, sizeof(body) - 1);
    ck_assert(memcmp(r.body, body, r.len) == 0);
    free(r.body);
    /* empty POST */
    http_req(core_http_port(h), "POST", "/echo", "", 0, 0, &r);
    ck_assert_int_eq(r.code, 201);
    ck_assert_uint_eq(r.len, 0);
    free(r.body);
    /* a chunked body under the limit */
    http_req(core_http_port(h), "POST", "/echo", NULL, 0, 300000, &r);
    ck_assert_int_eq(r.cc, CURLE_OK);
    ck_assert_int_eq(r.code, 201);
    ck_assert_uint_eq(r.len, 300000);
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_404_405)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    http_resp r;

    ck_assert_int_eq(core_http_route(h, "POST", "/echo", h_echo, NULL), CORE_OK);
    get(core_http_port(h), "/no/such\"path", &r);
    ck_assert_int_eq(r.code, 404);
    ck_assert_str_eq(r.ctype, "application/json");
    /* the path is not echoed (it may hold a key or a personal value) */
    ck_assert_str_eq(r.body, "{\"error\": \"no route for GET of this path (13 bytes, not "
                             "echoed)\"}\n");
    free(r.body);

    http_req(core_http_port(h), "DELETE", "/healthz", NULL, 0, 0, &r);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(r.allow, "GET");
    ck_assert_ptr_nonnull(strstr(r.body, "\"error\": \"method DELETE not allowed"));
    free(r.body);

    get(core_http_port(h), "/echo", &r);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(r.allow, "POST");
    free(r.body);

    /* a 405 names the route's pattern, not the path (which holds data) */
    ck_assert_int_eq(core_http_route(h, "POST", "/items/*", h_echo, NULL), CORE_OK);
    http_req(core_http_port(h), "DELETE", "/items/Pia%20Example", NULL, 0, 0, &r);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(r.body, "{\"error\": \"method DELETE not allowed for /items/* (allowed: "
                             "POST)\"}\n");
    free(r.body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_413)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    size_t big = 2 * 1024 * 1024;
    char *body = malloc(big);
    http_resp r;

    memset(body, 'x', big);
    ck_assert_int_eq(core_http_route(h, "POST", "/echo", h_echo, NULL), CORE_OK);
    /* Content-Length over the limit: refused before the body is read */
    http_req(core_http_port(h), "POST", "/echo", body, big, 0, &r);
    ck_assert_msg(r.cc == CURLE_OK, "%s", curl_easy_strerror(r.cc));
    ck_assert_int_eq(r.code, 413);
    ck_assert_str_eq(r.body, "{\"error\": \"request body exceeds the limit of 1048576 bytes\"}\n");
    free(r.body);
    /* chunked: no length up front, refused once the limit is crossed */
    http_req(core_http_port(h), "POST", "/echo", NULL, 0, big, &r);
    ck_assert_msg(r.cc == CURLE_OK, "%s", curl_easy_strerror(r.cc));
    ck_assert_int_eq(r.code, 413);
    free(r.body);
    /* exactly at a lowered limit passes, one more byte does not */
    core_http_set_max_body(h, 1000);
    http_req(core_http_port(h), "POST", "/echo", body, 1000, 0, &r);
    ck_assert_int_eq(r.code, 201);
    ck_assert_uint_eq(r.len, 1000);
    free(r.body);
    http_req(core_http_port(h), "POST", "/echo", body, 1001, 0, &r);
    ck_assert_int_eq(r.code, 413);
    ck_assert_ptr_nonnull(strstr(r.body, "limit of 1000 bytes"));
    free(r.body);
    /* a 413 on a path without a route still answers */
    http_req(core_http_port(h), "POST", "/nothing", body, 5000, 0, &r);
    ck_assert_int_eq(r.code, 413);
    free(r.body);
    free(body);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_route_matching)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    http_resp r;

    ck_assert_int_eq(core_http_route(h, "GET", "/a/*", h_tag, "prefix-a"), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "GET", "/a/b/*", h_tag, "prefix-ab"), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "GET", "/a/b", h_tag, "exact-ab"), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "get", "/*", h_tag, "root"), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "GET", "/bad", h_badstatus, NULL), CORE_OK);
    get(core_http_port(h), "/a/x", &r);
    ck_assert_str_eq(r.body, "prefix-a");
    free(r.body);
    get(core_http_port(h), "/a/b", &r);
    ck_assert_str_eq(r.body, "exact-ab");
    free(r.body);
    get(core_http_port(h), "/a/b/c", &r);
    ck_assert_str_eq(r.body, "prefix-ab");
    free(r.body);
    get(core_http_port(h), "/zzz", &r);
    ck_assert_str_eq(r.body, "root");
    free(r.body);
    get(core_http_port(h), "/healthz", &r); /* exact beats the catch-all */
    ck_assert_str_eq(r.body, "ok\n");
    free(r.body);
    get(core_http_port(h), "/bad", &r);
    ck_assert_int_eq(r.code, 500);
    free(r.body);

    /* refused routes */
    ck_assert_int_eq(core_http_route(h, "GET", "/a/b", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "GET", "/healthz", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "GET", "nope", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "GET", "", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "", "/x", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, NULL, "/x", h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "GET", NULL, h_tag, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(h, "GET", "/x", NULL, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_route(NULL, "GET", "/x", h_tag, NULL), CORE_ERR_INVALID);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

static int listen_socket(int *port)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

START_TEST(test_bind_failures)
{
    char err[256];
    core_metrics_t *m = core_metrics_new();
    core_http_t *h, *h2;
    int port, fd;

    /* an address this host does not have (TEST-NET-1) */
    err[0] = '\0';
    ck_assert_ptr_null(core_http_new("192.0.2.1", 0, m, err, sizeof(err)));
    ck_assert_msg(strstr(err, "192.0.2.1") != NULL, "errstr: %s", err);
    ck_assert_msg(strstr(err, "assign") != NULL, "errstr: %s", err);

    /* a port someone else listens on */
    fd = listen_socket(&port);
    err[0] = '\0';
    ck_assert_ptr_null(core_http_new("127.0.0.1", port, m, err, sizeof(err)));
    ck_assert_msg(strstr(err, "in use") != NULL, "errstr: %s", err);
    close(fd);

    /* the port of another server */
    h = start(m);
    err[0] = '\0';
    h2 = core_http_new("127.0.0.1", core_http_port(h), m, err, sizeof(err));
    ck_assert_ptr_null(h2);
    ck_assert_msg(strstr(err, "in use") != NULL, "errstr: %s", err);
    core_http_free(h);

    ck_assert_ptr_null(core_http_new("127.0.0.1", -1, m, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    ck_assert_ptr_null(core_http_new("127.0.0.1", 70000, m, err, sizeof(err)));
    ck_assert_ptr_null(core_http_new("no.such.host.invalid", 0, m, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "no.such.host.invalid"));
    ck_assert_ptr_null(core_http_new("127.0.0.1", -1, m, NULL, 0));
    core_http_free(NULL);
    core_metrics_free(m);
}
END_TEST

static int connect_to(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Read until the peer closes (0 or an error) or the deadline passes. */
static bool wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = core_mono_ms() + timeout_ms;
    char buf[4096];

    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        int64_t left = deadline - core_mono_ms();
        ssize_t n;

        if (left <= 0)
            return false;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return true;
    }
}

START_TEST(test_free_with_client_connected)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[1024];
    size_t got = 0;
    int idle, partial;
    int64_t t0;

    /* a keep-alive connection that has been served and stays open */
    idle = connect_to(core_http_port(h));
    ck_assert_int_eq(write(idle, req, strlen(req)), (ssize_t)strlen(req));
    while (got < sizeof(buf) - 1) {
        ssize_t n = read(idle, buf + got, sizeof(buf) - 1 - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\nok\n"))
            break;
    }
    ck_assert_ptr_nonnull(strstr(buf, "200"));
    /* a connection in the middle of its headers */
    partial = connect_to(core_http_port(h));
    ck_assert_int_eq(write(partial, "GET /healthz HTTP/1.1\r\nHo", 25), 25);

    t0 = core_mono_ms();
    core_http_free(h);
    ck_assert_int_lt(core_mono_ms() - t0, 5000);
    ck_assert(wait_closed(idle, 5000));
    ck_assert(wait_closed(partial, 5000));
    close(idle);
    close(partial);
    core_metrics_free(m);
}
END_TEST

struct hammer {
    int port;
    int ok;
};

static void *hammer_run(void *arg)
{
    struct hammer *hm = arg;
    int i;

    for (i = 0; i < 25; i++) {
        http_resp r;
        http_req(hm->port, "GET", "/healthz", NULL, 0, 0, &r);
        if (r.cc == CURLE_OK && r.code == 200)
            hm->ok++;
        free(r.body);
    }
    return NULL;
}

START_TEST(test_routes_added_while_serving)
{
    core_metrics_t *m = core_metrics_new();
    core_http_t *h = start(m);
    struct hammer hm[4];
    pthread_t th[4];
    char path[32];
    http_resp r;
    int i;

    for (i = 0; i < 4; i++) {
        hm[i].port = core_http_port(h);
        hm[i].ok = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run, &hm[i]), 0);
    }
    for (i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        ck_assert_int_eq(core_http_route(h, "GET", path, h_tag, "added"), CORE_OK);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(hm[i].ok, 25);
    }
    get(core_http_port(h), "/r99", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "added");
    free(r.body);
    core_metric_family_t *f = core_metrics_family(m, CORE_METRIC_COUNTER,
                                                  "tributary_http_requests_total", "",
                                                  (const char *const[]){ "path", "code", NULL },
                                                  NULL, 0, NULL, 0);
    ck_assert(core_metric_value(core_metrics_series2(f, "/healthz", "200")) == 100);
    core_http_free(h);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_helpers)
{
    char *s = core_http_printf("%d-%s", 7, "x");
    char *e = core_http_json_escape("a\"b\\c\nd\x01");
    core_http_request req = { 0 };
    char buf[8];

    ck_assert_str_eq(s, "7-x");
    ck_assert_str_eq(e, "a\\\"b\\\\c\\u000ad\\u0001");
    free(s);
    free(e);
    ck_assert_int_eq(core_http_query_param(NULL, "a", buf, sizeof(buf)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_query_param(&req, "a", buf, 0), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_query_param(&req, "a", buf, sizeof(buf)), CORE_ERR_NOTFOUND);
    req.query = "a&b=&c=%4&d=%41%42&&=x&e=1=2";
    ck_assert_int_eq(core_http_query_param(&req, "a", buf, sizeof(buf)), CORE_OK);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(core_http_query_param(&req, "b", buf, sizeof(buf)), CORE_OK);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(core_http_query_param(&req, "c", buf, sizeof(buf)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_http_query_param(&req, "d", buf, sizeof(buf)), CORE_OK);
    ck_assert_str_eq(buf, "AB");
    ck_assert_int_eq(core_http_query_param(&req, "e", buf, sizeof(buf)), CORE_OK);
    ck_assert_str_eq(buf, "1=2");
    ck_assert_ptr_null(core_http_header(&req, "host"));
    ck_assert_ptr_null(core_http_header(NULL, "host"));
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("server");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_healthz);
    tcase_add_test(tc, test_readyz);
    tcase_add_test(tc, test_readyz_probes);
    tcase_add_test(tc, test_metrics_endpoint);
    tcase_add_test(tc, test_get_route_query);
    tcase_add_test(tc, test_guard);
    tcase_add_test(tc, test_post_echo);
    tcase_add_test(tc, test_404_405);
    tcase_add_test(tc, test_413);
    tcase_add_test(tc, test_route_matching);
    tcase_add_test(tc, test_bind_failures);
    tcase_add_test(tc, test_free_with_client_connected);
    tcase_add_test(tc, test_routes_added_while_serving);
    tcase_add_test(tc, test_helpers);
    tcase_add_test(tc, test_held_until_open);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { http_suite() };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = tu_run(s, 1);
    curl_global_cleanup();
    return rc;
}
