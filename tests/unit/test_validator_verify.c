/* test_validator_verify.c — svc-validator's external verification against
 * a local HTTP verifier (core_http on an ephemeral port): verdicts and
 * their classes, reasons naming the field, the circuit breaker holding
 * calls back after repeated transient failures and letting a trial through
 * later, and the slow path alone when Redis is unreachable (the cache's
 * fast path is covered by tests/integration/test_validator.c). */
#include "testutil.h"

#include "../../svc-validator/rules.h"
#include "../../svc-validator/verify.h"
#include "tributary/core_http.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int calls;
static atomic_bool busy_recovered;

static void h_verify(const core_http_request *req, core_http_response *resp, void *opaque)
{
    const char *what = req->path + strlen("/v/");

    (void)opaque;
    atomic_fetch_add(&calls, 1);
    if (strncmp(what, "no", 2) == 0)
        resp->status = 404;
    else if (strncmp(what, "busy", 4) == 0 && !atomic_load(&busy_recovered))
        resp->status = 503;
    else if (strncmp(what, "limit", 5) == 0)
        resp->status = 429;
    resp->body = core_http_printf("{}");
}

typedef struct fixture {
    core_http_t *http;
    verifier_t *v;
    vr_external ext;
    char url[16][160];
} fixture;

static void setup_fx(fixture *f, int breaker_failures)
{
    char err[256];
    verifier_opts o = { 0 };
    /* nothing listens on port 1: the cache is unusable */
    static const core_redis_config redis = { .host = "127.0.0.1", .port = 1 };

    memset(f, 0, sizeof(*f));
    f->http = core_http_new("127.0.0.1", 0, NULL, err, sizeof(err));
    ck_assert_msg(f->http != NULL, "%s", err);
    core_http_route(f->http, "GET", "/v/*", h_verify, NULL);
    o.redis = &redis;
    o.concurrency = 4;
    o.timeout_ms = 2000;
    o.breaker_failures = breaker_failures;
    o.breaker_open_ms = 300;
    f->v = verifier_new(&o, err, sizeof(err));
    ck_assert_msg(f->v != NULL, "%s", err);
    f->ext.field = "account_number";
    f->ext.url = "unused";
    f->ext.method = "GET";
    f->ext.cache_ttl_s = 60;
}

static void teardown_fx(fixture *f)
{
    verifier_free(f->v);
    core_http_free(f->http);
}

static void item(fixture *f, vv_item *it, int i, const char *what)
{
    memset(it, 0, sizeof(*it));
    snprintf(f->url[i], sizeof(f->url[i]), "http://127.0.0.1:%d/v/%s%d",
             core_http_port(f->http), what, i);
    it->dataset = "payee";
    it->ext = &f->ext;
    it->value = f->url[i];
    it->url = f->url[i];
}

START_TEST(verdicts)
{
    fixture f;
    vv_item it[4];

    setup_fx(&f, 0);
    item(&f, &it[0], 0, "ok");
    item(&f, &it[1], 1, "no");
    item(&f, &it[2], 2, "busy");
    item(&f, &it[3], 3, "limit");
    atomic_store(&calls, 0);
    verifier_run(f.v, it, 4);
    ck_assert_int_eq(atomic_load(&calls), 4);
    ck_assert_int_eq(it[0].verdict, VV_OK);
    ck_assert_int_eq(it[1].verdict, VV_INVALID);
    ck_assert_int_eq(it[1].status, 404);
    ck_assert_ptr_nonnull(strstr(it[1].reason, "account_number"));
    ck_assert_int_eq(it[2].verdict, VV_TRANSIENT);
    ck_assert_int_eq(it[2].status, 503);
    ck_assert_int_eq(it[3].verdict, VV_TRANSIENT);
    ck_assert_int_eq(it[3].status, 429);
    for (int i = 0; i < 4; i++)
        ck_assert(!it[i].cached);
    teardown_fx(&f);
}
END_TEST

START_TEST(unreachable_is_transient)
{
    fixture f;
    vv_item it;

    setup_fx(&f, 0);
    memset(&it, 0, sizeof(it));
    it.dataset = "payee";
    it.ext = &f.ext;
    it.url = "http://127.0.0.1:1/v/x";
    it.value = "x";
    verifier_run(f.v, &it, 1);
    ck_assert_int_eq(it.verdict, VV_TRANSIENT);
    ck_assert_ptr_nonnull(strstr(it.reason, "unreachable"));
    teardown_fx(&f);
}
END_TEST

START_TEST(breaker)
{
    fixture f;
    vv_item it[12];
    int held = 0;

    setup_fx(&f, 3);
    atomic_store(&busy_recovered, false);
    for (int i = 0; i < 12; i++)
        item(&f, &it[i], i, "busy");
    /* First batch: all calls go out (the breaker counts after answers). */
    atomic_store(&calls, 0);
    verifier_run(f.v, it, 4);
    ck_assert_int_eq(atomic_load(&calls), 4);
    /* Open now: the next checks are transient without a call. */
    verifier_run(f.v, it + 4, 8);
    ck_assert_int_eq(atomic_load(&calls), 4);
    for (int i = 4; i < 12; i++) {
        ck_assert_int_eq(it[i].verdict, VV_TRANSIENT);
        held += strstr(it[i].reason, "circuit open") != NULL;
    }
    ck_assert_int_eq(held, 8);
    /* After open_ms one trial goes through; the verifier recovered: closed. */
    atomic_store(&busy_recovered, true);
    {
        int64_t deadline = core_mono_ms() + 5000;

        while (core_mono_ms() < deadline) {
            verifier_run(f.v, it, 1);
            if (it[0].verdict == VV_OK)
                break;
            usleep(20000);
        }
    }
    ck_assert_int_eq(it[0].verdict, VV_OK);
    verifier_run(f.v, it + 1, 4);
    for (int i = 1; i < 5; i++)
        ck_assert_int_eq(it[i].verdict, VV_OK);
    teardown_fx(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("validator_verify");
    TCase *tc = tcase_create("verify");

    tcase_add_test(tc, verdicts);
    tcase_add_test(tc, unreachable_is_transient);
    tcase_add_test(tc, breaker);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
