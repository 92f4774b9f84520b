/* test_service.c — core_service's start-up policy (core_service_await) and
 * the default static member id of a consumer, without any server. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_config.h"
#include "tributary/core_httpc.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const core_service_def def = {
    .name = "svc-test",
    .summary = "test",
    .usage = "svc-test",
    .http_port_default = "0",
};

/* A service started with these flags (HTTP on a free port). */
static core_service_t *start(const char *const *flags)
{
    char *argv[16] = { "svc-test", "--http.port=0", "--http.bind=127.0.0.1" };
    char *envp[] = { NULL };
    core_service_t *svc = NULL;
    int argc = 3;

    for (; flags && *flags && argc < 15; flags++)
        argv[argc++] = (char *)*flags;
    argv[argc] = NULL;
    ck_assert_int_eq(core_service_init(&svc, &def, argc, argv, envp), CORE_SERVICE_CONTINUE);
    return svc;
}

static void finish(core_service_t *svc)
{
    core_service_free(svc);
    core_lifecycle_reset();
}

/* A probe answering as told: fail `failures` times (TRANSIENT, or INVALID
 * when refuse is set), then CORE_OK. */
struct probe {
    int calls, failures;
    bool refuse;
    int last_timeout;
};

static core_err_t probe(void *opaque, int timeout_ms, char *errstr, size_t errstr_size)
{
    struct probe *p = opaque;

    p->calls++;
    p->last_timeout = timeout_ms;
    if (p->calls > p->failures)
        return CORE_OK;
    if (p->refuse) {
        core_errstr(errstr, errstr_size, "db.password: refused");
        return CORE_ERR_INVALID;
    }
    /* a library's multi-line message comes out as one line */
    core_errstr(errstr, errstr_size, "connection refused\n\tsecond line");
    return CORE_ERR_TRANSIENT;
}

/* stderr of fn, as text. */
static char *stderr_of(int (*fn)(void *), void *arg, int *rc)
{
    char path[] = "/tmp/tb_test_service_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);

    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    dup2(fd, 2);
    *rc = fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    char *text = core_read_file(path, 1 << 20, NULL, NULL, 0);
    unlink(path);
    ck_assert_ptr_nonnull(text);
    return text;
}

struct await_args {
    core_service_t *svc;
    struct probe *p;
};

static int do_await(void *arg)
{
    struct await_args *a = arg;
    return core_service_await(a->svc, "db", "10.0.0.1:5432", probe, a->p);
}

START_TEST(await_gives_up_after_startup_timeout_with_one_line)
{
    const char *flags[] = { "--startup.timeout.ms=400", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct probe p = { .failures = 1000000 };
    struct await_args a = { svc, &p };
    int rc;
    int64_t t0 = core_mono_ms();
    char *err = stderr_of(do_await, &a, &rc);
    int64_t took = core_mono_ms() - t0;

    ck_assert_int_eq(rc, CORE_EX_UNAVAILABLE);
    ck_assert_str_eq(err, "svc-test: db at 10.0.0.1:5432 unreachable for startup.timeout.ms "
                          "(400 ms): connection refused  second line\n");
    ck_assert_int_ge(took, 350); /* counted from init, a little before */
    ck_assert_int_lt(took, 3000);
    ck_assert_int_ge(p.calls, 3); /* retried, with backoff */
    ck_assert_int_le(p.last_timeout, 400);
    free(err);
    finish(svc);
}
END_TEST

/* The edge: 1 ms still tries once. */
START_TEST(await_with_1ms_tries_once)
{
    const char *flags[] = { "--startup.timeout.ms=1", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct probe p = { .failures = 1 };
    struct await_args a = { svc, &p };
    int rc;

    usleep(5000); /* the deadline has passed before the first try */
    char *err = stderr_of(do_await, &a, &rc);
    ck_assert_int_eq(rc, CORE_EX_UNAVAILABLE);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_ptr_nonnull(strstr(err, "(1 ms)"));
    free(err);
    /* the same with an answer on the first try: go on */
    p = (struct probe){ .failures = 0 };
    ck_assert_int_eq(core_service_await(svc, "db", "x:1", probe, &p), CORE_SERVICE_CONTINUE);
    ck_assert_int_eq(p.calls, 1);
    finish(svc);
}
END_TEST

START_TEST(await_goes_on_once_reached)
{
    const char *flags[] = { "--startup.timeout.ms=20000", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct probe p = { .failures = 2 };

    ck_assert_int_eq(core_service_await(svc, "db", "x:1", probe, &p), CORE_SERVICE_CONTINUE);
    ck_assert_int_eq(p.calls, 3);
    finish(svc);
}
END_TEST

/* A server that answers and refuses the configuration is not waited for. */
START_TEST(await_refusal_is_a_configuration_error_at_once)
{
    const char *flags[] = { "--startup.timeout.ms=20000", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct probe p = { .failures = 1000, .refuse = true };
    struct await_args a = { svc, &p };
    int rc;
    char *err = stderr_of(do_await, &a, &rc);

    ck_assert_int_eq(rc, CORE_EX_CONFIG);
    ck_assert_str_eq(err, "svc-test: configuration error: db.password: refused\n");
    ck_assert_int_eq(p.calls, 1);
    free(err);
    finish(svc);
}
END_TEST

/* SIGTERM while waiting: exit 0, nothing printed. */
START_TEST(await_stops_on_a_stop_request)
{
    const char *flags[] = { "--startup.timeout.ms=60000", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct probe p = { .failures = 1000000 };
    struct await_args a = { svc, &p };
    int rc;

    core_lifecycle_request_stop();
    int64_t t0 = core_mono_ms();
    char *err = stderr_of(do_await, &a, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_lt(core_mono_ms() - t0, 5000);
    free(err);
    finish(svc);
}
END_TEST

START_TEST(group_instance_id_is_stable_per_instance_and_bounded)
{
    char long_id[400], flag[420], buf[512];
    const char *flags[] = { "--instance.id=pod-7", NULL };
    core_service_t *svc = start(flags);
    char *v[] = { "payee", "account_setting" };
    core_cfg_list two = { 2, v }, none = { 0, NULL };

    ck_assert_str_eq(core_service_group_instance_id(svc, NULL, &two, buf, sizeof(buf)),
                     "svc-test-pod-7-payee.account_setting");
    ck_assert_str_eq(core_service_group_instance_id(svc, NULL, &none, buf, sizeof(buf)),
                     "svc-test-pod-7");
    /* set: as given; empty: a dynamic member */
    ck_assert_str_eq(core_service_group_instance_id(svc, "mine", &two, buf, sizeof(buf)), "mine");
    ck_assert_ptr_null(core_service_group_instance_id(svc, "", &two, buf, sizeof(buf)));
    finish(svc);

    /* bytes Kafka refuses in an id become '_'; at most 249 bytes */
    const char *odd[] = { "--instance.id=a b/c:d\xc3\xa9", NULL };
    svc = start(odd);
    ck_assert_str_eq(core_service_group_instance_id(svc, NULL, &none, buf, sizeof(buf)),
                     "svc-test-a_b_c_d__");
    finish(svc);
    memset(long_id, 'x', 300);
    long_id[300] = '\0';
    snprintf(flag, sizeof(flag), "--instance.id=%s", long_id);
    const char *lng[] = { flag, NULL };
    svc = start(lng);
    ck_assert_uint_eq(strlen(core_service_group_instance_id(svc, NULL, &two, buf, sizeof(buf))),
                      249);
    /* a small buffer: cut, never overrun */
    ck_assert_uint_eq(strlen(core_service_group_instance_id(svc, NULL, &two, buf, 10)), 9);
    finish(svc);
}
END_TEST

/* GET /readyz of the service: the status, the body in body. */
static int readyz(core_service_t *svc, char *body, size_t size)
{
    char url[64], err[256];
    core_httpc_opts o = { .timeout_ms = 10000 };
    core_httpc_t *h = core_httpc_new(&o, err, sizeof(err));
    core_httpc_req r = { 0 };
    int status;

    ck_assert_msg(h, "%s", err);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", core_http_port(core_service_http(svc)));
    r.url = url;
    ck_assert_int_eq(core_httpc_perform(h, &r, 1), CORE_OK);
    ck_assert_msg(r.err == CORE_OK, "%s", r.errstr);
    snprintf(body, size, "%s", r.resp ? r.resp : "");
    status = r.status;
    core_httpc_req_clear(&r);
    core_httpc_free(h);
    return status;
}

struct dep {
    bool up;
    const char *why;
};

static bool dep_ready(void *opaque, char *reason, size_t reason_size)
{
    const struct dep *d = opaque;
    if (!d->up)
        snprintf(reason, reason_size, "%s", d->why);
    return d->up;
}

/* Readiness composed: the "kafka" probe (a mock cluster answers it), a
 * service's own named probe beside it, and the older ready_also callback;
 * a 503 names each one that failed. */
START_TEST(readiness_probes_are_composed_and_named)
{
    const char *flags[] = { "--kafka.test.mock.num.brokers=1", "--log.level=error", NULL };
    core_service_t *svc = start(flags);
    struct dep redis = { false, "not connected" }, pg = { false, "postgres: down" };
    char body[1024], err[256];

    ck_assert_int_eq(core_service_ready_on_kafka(svc, err, sizeof(err)), 0);
    /* until run() says its routes and probes are in: not ready, whatever
     * the probes say */
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: starting: routes and probes not all set up yet\n");
    core_service_open(svc);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 200);
    ck_assert_str_eq(body, "ready\n");
    ck_assert_int_eq(core_service_ready_add(svc, "redis", dep_ready, &redis), CORE_OK);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: redis: not connected\n");
    core_service_ready_also(svc, dep_ready, &pg);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: postgres: down; redis: not connected\n");
    redis.up = true;
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: postgres: down\n");
    core_service_ready_also(svc, NULL, NULL);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 200);
    /* the same name replaces, NULL removes, a bad name is refused */
    redis.up = false;
    ck_assert_int_eq(core_service_ready_add(svc, "redis", dep_ready, &pg), CORE_OK);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "not ready: redis: postgres: down\n");
    ck_assert_int_eq(core_service_ready_add(svc, "redis", NULL, NULL), CORE_OK);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 200);
    ck_assert_int_eq(core_service_ready_add(svc, "", dep_ready, &pg), CORE_ERR_INVALID);
    finish(svc);
}
END_TEST

/* No broker at the address: the "kafka" probe says so under its name. */
START_TEST(readiness_names_kafka_when_the_brokers_are_away)
{
    const char *flags[] = { "--kafka.bootstrap.servers=127.0.0.1:1", "--log.level=error",
                            "--kafka.log_level=0", NULL };
    core_service_t *svc = start(flags);
    struct dep redis = { false, "not connected" };
    char body[1024], err[256];

    ck_assert_int_eq(core_service_ready_on_kafka(svc, err, sizeof(err)), 0);
    ck_assert_int_eq(core_service_ready_add(svc, "redis", dep_ready, &redis), CORE_OK);
    core_service_open(svc);
    ck_assert_int_eq(readyz(svc, body, sizeof(body)), 503);
    ck_assert_msg(strncmp(body, "not ready: kafka: ", 18) == 0, "%s", body);
    ck_assert_msg(strstr(body, "; redis: not connected\n") != NULL, "%s", body);
    ck_assert_msg(strstr(body, "kafka: kafka:") == NULL, "%s", body);
    finish(svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("startup");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, await_gives_up_after_startup_timeout_with_one_line);
    tcase_add_test(tc, await_with_1ms_tries_once);
    tcase_add_test(tc, await_goes_on_once_reached);
    tcase_add_test(tc, await_refusal_is_a_configuration_error_at_once);
    tcase_add_test(tc, await_stops_on_a_stop_request);
    tcase_add_test(tc, group_instance_id_is_stable_per_instance_and_bounded);
    tcase_add_test(tc, readiness_probes_are_composed_and_named);
    tcase_add_test(tc, readiness_names_kafka_when_the_brokers_are_away);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
