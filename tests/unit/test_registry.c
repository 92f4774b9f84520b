/* test_registry.c — core_registry without a registry: the subject
 * strategies, the configuration refused at core_registry_new(), and the
 * transport's behaviour against a scripted local HTTP server (core_http on
 * an ephemeral port) answering as the Confluent API does: retries of 503
 * with backoff, the error classes of 401, 404, 409 and 422, the bearer
 * token read from its file, basic auth, the caches by subject and by id.
 * The real Apicurio Registry: tests/integration/test_registry.c. */
#include "testutil.h"

#include "tributary/core_http.h"
#include "tributary/core_registry.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(strategies_and_subjects)
{
    core_registry_strategy s;
    char buf[64];

    ck_assert_int_eq(core_registry_strategy_parse("TopicNameStrategy", &s), 0);
    ck_assert_int_eq(s, CORE_REGISTRY_TOPIC_NAME);
    ck_assert_int_eq(core_registry_strategy_parse(
                         "io.confluent.kafka.serializers.subject.RecordNameStrategy", &s),
                     0);
    ck_assert_int_eq(s, CORE_REGISTRY_RECORD_NAME);
    ck_assert_int_eq(core_registry_strategy_parse("record", &s), 0);
    ck_assert_int_eq(core_registry_strategy_parse("TopicRecordNameStrategy", &s), -1);
    ck_assert_int_eq(core_registry_strategy_parse(NULL, &s), -1);
    ck_assert_str_eq(core_registry_strategy_name(CORE_REGISTRY_RECORD_NAME), "RecordNameStrategy");

    ck_assert_int_eq(core_registry_subject(CORE_REGISTRY_TOPIC_NAME, "payee.raw",
                                           "tributary.dataset.Payee", buf, sizeof(buf)),
                     15);
    ck_assert_str_eq(buf, "payee.raw-value");
    ck_assert_int_gt(core_registry_subject(CORE_REGISTRY_RECORD_NAME, "payee.raw",
                                           "tributary.dataset.Payee", buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "tributary.dataset.Payee");
    ck_assert_int_eq(core_registry_subject(CORE_REGISTRY_TOPIC_NAME, "", "x", buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(core_registry_subject(CORE_REGISTRY_RECORD_NAME, "t", NULL, buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(core_registry_subject(CORE_REGISTRY_TOPIC_NAME, "a-long-topic-name", NULL,
                                           buf, 8),
                     -1);
}
END_TEST

START_TEST(bad_conf_refused_naming_the_key)
{
    core_registry_conf c = { 0 };
    char err[512];

    ck_assert_ptr_null(core_registry_new(&c, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "schema.registry.url"));
    c.url = "ftp://registry";
    ck_assert_ptr_null(core_registry_new(&c, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "schema.registry.url"));
    c.url = "http://127.0.0.1:1";
    c.bearer_token_file = "/nonexistent/token";
    ck_assert_ptr_null(core_registry_new(&c, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "schema.registry.bearer.auth.file"));
    core_registry_free(NULL);
}
END_TEST

/* ---- a scripted registry ----------------------------------------------- */

static atomic_int n_flaky, n_auth, n_lookup, n_ids;
static char seen_auth[256];

/* 503 twice, then the answer. */
static void h_flaky(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    (void)opaque;
    if (atomic_fetch_add(&n_flaky, 1) < 2) {
        resp->status = 503;
        resp->body = core_http_printf("{\"error_code\":50301,\"message\":\"busy\"}");
        return;
    }
    resp->body = core_http_printf("{\"subject\":\"flaky-value\",\"id\":7,\"version\":1}");
}

static void h_auth(const core_http_request *req, core_http_response *resp, void *opaque)
{
    const char *a = core_http_header(req, "Authorization");

    (void)opaque;
    atomic_fetch_add(&n_auth, 1);
    snprintf(seen_auth, sizeof(seen_auth), "%s", a ? a : "");
    resp->status = 401;
    resp->body = core_http_printf("{\"error_code\":401,\"message\":\"Unauthorized\"}");
}

/* POST /subjects/S (lookup): 404 40403; POST /subjects/S/versions: 409 or 422 by name. */
static void h_subjects(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&n_lookup, 1);
    if (strstr(req->path, "/versions")) {
        bool bad = strstr(req->path, "bad-value") != NULL;

        resp->status = bad ? 422 : 409;
        resp->body = core_http_printf("{\"error_code\":%d,\"message\":\"%s\"}", bad ? 42201 : 409,
                                      bad ? "Invalid schema" : "Incompatible schema: b added");
        return;
    }
    if (strstr(req->path, "known-value")) {
        resp->body = core_http_printf("{\"subject\":\"known-value\",\"id\":42,\"version\":3}");
        return;
    }
    resp->status = 404;
    resp->body = core_http_printf("{\"error_code\":40403,\"message\":\"Schema not found\"}");
}

static void h_ids(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&n_ids, 1);
    if (strcmp(req->path, "/api/schemas/ids/5") == 0) {
        resp->body = core_http_printf("{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}");
        return;
    }
    resp->status = 404;
    resp->body = core_http_printf("{\"error_code\":40403,\"message\":\"Schema not found\"}");
}

static core_http_t *server(char *url, size_t size)
{
    char err[256];
    core_http_t *h = core_http_new("127.0.0.1", 0, NULL, err, sizeof(err));

    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(core_http_route(h, "POST", "/api/subjects/flaky-value", h_flaky, NULL),
                     CORE_OK);
    ck_assert_int_eq(core_http_route(h, "POST", "/api/subjects/auth-value", h_auth, NULL), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "POST", "/api/subjects/s/*", h_subjects, NULL), CORE_OK);
    ck_assert_int_eq(core_http_route(h, "GET", "/api/schemas/ids/*", h_ids, NULL), CORE_OK);
    snprintf(url, size, "http://127.0.0.1:%d/api/", core_http_port(h));
    return h;
}

static core_registry_t *client(const char *url, const char *token_file, const char *basic)
{
    core_registry_conf c = { 0 };
    core_registry_t *r;
    char err[512];

    c.url = url;
    c.retries = 3;
    c.retry_backoff_ms = 10;
    c.bearer_token_file = token_file;
    c.basic_auth = basic;
    r = core_registry_new(&c, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

START_TEST(transient_answers_retried_with_backoff)
{
    char url[128], err[512];
    core_http_t *h = server(url, sizeof(url));
    core_registry_t *r = client(url, NULL, NULL);
    core_registry_stats st;
    uint32_t id = 0;
    int version = 0;

    atomic_store(&n_flaky, 0);
    ck_assert_msg(core_registry_lookup(r, "flaky-value", "\"string\"", NULL, 0, false, &id,
                                       &version, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_uint_eq(id, 7);
    ck_assert_int_eq(version, 1);
    core_registry_get_stats(r, &st);
    ck_assert_uint_eq(st.requests, 3);
    ck_assert_int_eq(atomic_load(&n_flaky), 3);
    /* cached by subject and text: no further request */
    ck_assert_int_eq(core_registry_lookup(r, "flaky-value", "\"string\"", NULL, 0, false, &id,
                                          NULL, err, sizeof(err)),
                     CORE_OK);
    ck_assert_int_eq(atomic_load(&n_flaky), 3);
    core_registry_free(r);
    core_http_free(h);
}
END_TEST

START_TEST(unreachable_is_transient_after_the_retries)
{
    char url[128], err[512];
    core_registry_t *r;
    core_registry_stats st;
    char *text = NULL;
    int64_t t0 = core_mono_ms();

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", tu_free_port());
    r = client(url, NULL, NULL);
    ck_assert_int_eq(core_registry_get(r, 1, &text, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_ptr_null(text);
    ck_assert_ptr_nonnull(strstr(err, url));
    core_registry_get_stats(r, &st);
    ck_assert_uint_eq(st.requests, 4); /* 1 + 3 retries */
    ck_assert_int_lt(core_mono_ms() - t0, 5000);
    core_registry_free(r);
}
END_TEST

START_TEST(refusals_classed_with_the_registry_message)
{
    char url[128], err[512], tok[] = "/tmp/tb-registry-token-XXXXXX";
    core_http_t *h = server(url, sizeof(url));
    core_registry_t *r;
    uint32_t id = 0;
    int fd = mkstemp(tok);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "s3cret-token\n", 13), 13);
    close(fd);

    r = client(url, tok, NULL);
    atomic_store(&n_auth, 0);
    ck_assert_int_eq(core_registry_lookup(r, "auth-value", "\"string\"", NULL, 0, false, &id, NULL,
                                          err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_eq(atomic_load(&n_auth), 1); /* a refusal is not retried */
    ck_assert_str_eq(seen_auth, "Bearer s3cret-token");
    ck_assert_ptr_nonnull(strstr(err, "HTTP 401"));
    ck_assert_ptr_nonnull(strstr(err, "schema.registry.bearer.auth.file"));
    ck_assert_ptr_null(strstr(err, "s3cret")); /* never the token */
    core_registry_free(r);

    r = client(url, NULL, "alice:pw");
    ck_assert_int_eq(core_registry_lookup(r, "auth-value", "\"string\"", NULL, 0, false, &id, NULL,
                                          err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_str_eq(seen_auth, "Basic YWxpY2U6cHc=");

    /* lookup misses, registration off: NOTFOUND naming the subject */
    ck_assert_int_eq(core_registry_lookup(r, "s/new-value", "\"string\"", NULL, 0, false, &id,
                                          NULL, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "subject s/new-value"));
    ck_assert_ptr_nonnull(strstr(err, "auto.register.schemas is false"));
    /* registration on: 409 and 422 are INVALID, quoting the registry */
    ck_assert_int_eq(core_registry_lookup(r, "s/new-value", "\"string\"", NULL, 0, true, &id, NULL,
                                          err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "HTTP 409"));
    ck_assert_ptr_nonnull(strstr(err, "Incompatible schema: b added"));
    ck_assert_int_eq(core_registry_lookup(r, "s/bad-value", "\"string\"", NULL, 0, true, &id, NULL,
                                          err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "42201"));
    /* found: id and version */
    {
        int version = 0;

        ck_assert_int_eq(core_registry_lookup(r, "s/known-value", "\"string\"", NULL, 0, false,
                                              &id, &version, err, sizeof(err)),
                         CORE_OK);
        ck_assert_uint_eq(id, 42);
        ck_assert_int_eq(version, 3);
    }
    core_registry_free(r);
    unlink(tok);
    core_http_free(h);
}
END_TEST

START_TEST(by_id_cached_and_unknown_ids_remembered)
{
    char url[128], err[512], *text = NULL;
    core_http_t *h = server(url, sizeof(url));
    core_registry_t *r = client(url, NULL, NULL);

    atomic_store(&n_ids, 0);
    ck_assert_int_eq(core_registry_get(r, 5, &text, err, sizeof(err)), CORE_OK);
    ck_assert_str_eq(text, "{\"type\":\"string\"}");
    free(text);
    ck_assert_int_eq(core_registry_get(r, 5, &text, err, sizeof(err)), CORE_OK);
    free(text);
    ck_assert_int_eq(atomic_load(&n_ids), 1);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(core_registry_get(r, 6, &text, err, sizeof(err)), CORE_ERR_NOTFOUND);
        ck_assert_ptr_null(text);
        ck_assert_ptr_nonnull(strstr(err, "schema id 6 is not in the registry"));
    }
    ck_assert_int_eq(atomic_load(&n_ids), 2); /* one request for the five */
    core_registry_free(r);
    core_http_free(h);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *c = tcase_create("client");

    tcase_add_test(c, strategies_and_subjects);
    tcase_add_test(c, bad_conf_refused_naming_the_key);
    tcase_add_test(c, transient_answers_retried_with_backoff);
    tcase_add_test(c, unreachable_is_transient_after_the_retries);
    tcase_add_test(c, refusals_classed_with_the_registry_message);
    tcase_add_test(c, by_id_cached_and_unknown_ids_remembered);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    Suite *s[] = { registry_suite() };

    return tu_run(s, 1);
}
