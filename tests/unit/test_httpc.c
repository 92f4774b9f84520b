/* test_httpc.c — core_httpc against a local core_http server on an
 * ephemeral port: answers and their classes, bounded concurrency,
 * connection reuse, timeouts, refused connections, malformed URLs,
 * oversized answers, URL escaping. */
#include "testutil.h"

#include "tributary/core_http.h"
#include "tributary/core_httpc.h"
#include "tributary/core_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int in_flight, max_in_flight, calls;

static void h_status(const core_http_request *req, core_http_response *resp, void *opaque)
{
    char buf[16];

    (void)opaque;
    atomic_fetch_add(&calls, 1);
    resp->status = 200;
    if (core_http_query_param(req, "s", buf, sizeof(buf)) == CORE_OK)
        resp->status = atoi(buf);
    resp->body = core_http_printf("status %d %s", resp->status, req->method);
}

/* Holds the request a while so concurrent ones overlap (the server's
 * slowness is what is simulated here, not a wait for an event). */
static void h_slow(const core_http_request *req, core_http_response *resp, void *opaque)
{
    char buf[16];
    int now = atomic_fetch_add(&in_flight, 1) + 1, m;
    int ms = 100;

    (void)opaque;
    if (core_http_query_param(req, "ms", buf, sizeof(buf)) == CORE_OK)
        ms = atoi(buf);
    while (now > (m = atomic_load(&max_in_flight)) &&
           !atomic_compare_exchange_weak(&max_in_flight, &m, now))
        ;
    usleep((useconds_t)ms * 1000);
    atomic_fetch_sub(&in_flight, 1);
    resp->body = core_http_printf("slow");
}

static void h_big(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    (void)opaque;
    resp->body = malloc(100000);
    memset(resp->body, 'x', 100000);
    resp->body_len = 100000;
}

static core_http_t *server(void)
{
    char err[256];
    core_http_t *h = core_http_new("127.0.0.1", 0, NULL, err, sizeof(err));

    ck_assert_msg(h != NULL, "%s", err);
    core_http_route(h, "GET", "/status", h_status, NULL);
    core_http_route(h, "POST", "/status", h_status, NULL);
    core_http_route(h, "GET", "/slow", h_slow, NULL);
    core_http_route(h, "GET", "/big", h_big, NULL);
    return h;
}

START_TEST(answers_and_classes)
{
    core_http_t *h = server();
    core_httpc_t *c = core_httpc_new(NULL, NULL, 0);
    core_httpc_req r[6];
    char url[6][128];
    static const int codes[] = { 200, 204, 404, 429, 503, 400 };
    static const core_err_t cls[] = { CORE_OK, CORE_OK, CORE_ERR_INVALID, CORE_ERR_TRANSIENT,
                                      CORE_ERR_TRANSIENT, CORE_ERR_INVALID };

    ck_assert_ptr_nonnull(c);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 6; i++) {
        snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%d/status?s=%d", core_http_port(h),
                 codes[i]);
        r[i].url = url[i];
    }
    r[0].method = "POST";
    r[0].body = "{}";
    r[0].body_len = 2;
    ck_assert_int_eq(core_httpc_perform(c, r, 6), CORE_OK);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(r[i].err, CORE_OK);
        ck_assert_int_eq(r[i].status, codes[i]);
        ck_assert_int_eq(core_httpc_status_class(r[i].status), cls[i]);
        ck_assert_ptr_nonnull(r[i].resp);
        core_httpc_req_clear(&r[i]);
    }
    ck_assert_int_eq(core_httpc_status_class(408), CORE_ERR_TRANSIENT);
    ck_assert_int_eq(core_httpc_status_class(302), CORE_ERR_INVALID);
    core_httpc_free(c);
    core_http_free(h);
}
END_TEST

START_TEST(bounded_concurrency)
{
    core_http_t *h = server();
    core_httpc_opts o = { .max_concurrency = 3 };
    core_httpc_t *c = core_httpc_new(&o, NULL, 0);
    core_httpc_req r[12];
    char url[128];

    memset(r, 0, sizeof(r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow?ms=100", core_http_port(h));
    for (int i = 0; i < 12; i++)
        r[i].url = url;
    atomic_store(&max_in_flight, 0);
    ck_assert_int_eq(core_httpc_perform(c, r, 12), CORE_OK);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(r[i].err, CORE_OK);
        ck_assert_int_eq(r[i].status, 200);
        core_httpc_req_clear(&r[i]);
    }
    ck_assert_int_le(atomic_load(&max_in_flight), 3);
    ck_assert_int_ge(atomic_load(&max_in_flight), 2); /* they did run side by side */
    core_httpc_free(c);
    core_http_free(h);
}
END_TEST

START_TEST(timeout_refused_malformed)
{
    core_http_t *h = server();
    core_httpc_t *c = core_httpc_new(NULL, NULL, 0);
    core_httpc_req r[3];
    char slow[128], refused[128];
    int port;

    /* A port nobody listens on: bind one, then close it. */
    {
        char err[256];
        core_http_t *tmp = core_http_new("127.0.0.1", 0, NULL, err, sizeof(err));

        port = core_http_port(tmp);
        core_http_free(tmp);
    }
    memset(r, 0, sizeof(r));
    snprintf(slow, sizeof(slow), "http://127.0.0.1:%d/slow?ms=1500", core_http_port(h));
    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/x", port);
    r[0].url = slow;
    r[0].timeout_ms = 200;
    r[1].url = refused;
    r[2].url = "ht!tp://what";
    ck_assert_int_eq(core_httpc_perform(c, r, 3), CORE_OK);
    ck_assert_int_eq(r[0].err, CORE_ERR_TRANSIENT);
    ck_assert_int_eq(r[0].status, 0);
    ck_assert_ptr_nonnull(strstr(r[0].errstr, "imeout"));
    ck_assert_int_eq(r[1].err, CORE_ERR_TRANSIENT);
    ck_assert_int_eq(r[2].err, CORE_ERR_INVALID);
    for (int i = 0; i < 3; i++)
        core_httpc_req_clear(&r[i]);
    core_httpc_free(c);
    core_http_free(h);
}
END_TEST

START_TEST(too_big_and_reuse)
{
    core_http_t *h = server();
    core_httpc_opts o = { .max_response = 1000, .max_concurrency = 1 };
    core_httpc_t *c = core_httpc_new(&o, NULL, 0);
    core_httpc_req r[1];
    char url[128];
    int before;

    memset(r, 0, sizeof(r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", core_http_port(h));
    r[0].url = url;
    ck_assert_int_eq(core_httpc_perform(c, r, 1), CORE_OK);
    ck_assert_int_eq(r[0].err, CORE_ERR_TOOBIG);
    core_httpc_req_clear(&r[0]);
    /* Many calls in a row through one handle keep working (connections reused). */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/status", core_http_port(h));
    before = atomic_load(&calls);
    for (int i = 0; i < 50; i++) {
        r[0].url = url;
        ck_assert_int_eq(core_httpc_perform(c, r, 1), CORE_OK);
        ck_assert_int_eq(r[0].status, 200);
        ck_assert_str_eq(r[0].resp, "status 200 GET");
    }
    core_httpc_req_clear(&r[0]);
    ck_assert_int_eq(atomic_load(&calls) - before, 50);
    core_httpc_free(c);
    core_http_free(h);
}
END_TEST

START_TEST(escape)
{
    char *e = core_httpc_escape("a b/c?d=é~", strlen("a b/c?d=é~"));

    ck_assert_str_eq(e, "a%20b%2Fc%3Fd%3D%C3%A9~");
    free(e);
    ck_assert_ptr_null(core_httpc_new(&(core_httpc_opts){ .timeout_ms = -1 }, NULL, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("httpc");
    TCase *tc = tcase_create("httpc");

    tcase_add_test(tc, answers_and_classes);
    tcase_add_test(tc, bounded_concurrency);
    tcase_add_test(tc, timeout_refused_malformed);
    tcase_add_test(tc, too_big_and_reuse);
    tcase_add_test(tc, escape);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
