/* test_services.c — every service binary: --help, --version, refused
 * configuration (exit 78 with one line naming the key), health, readiness
 * and metrics over HTTP with the real broker, clean exit on SIGTERM. */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_common.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *services[] = {
    "svc-ingest", "svc-validator", "svc-cache-feeder", "svc-persister", "svc-recon",
};
#define NSERVICES (sizeof(services) / sizeof(services[0]))

/* The environment the services run with: only what they need. */
static char **base_env;

static void setup(void)
{
    base_env = tu_env(false);
}

static bool needs_dataset(const char *svc)
{
    return strcmp(svc, "svc-recon") != 0;
}

/* Run svc with extra args; returns exit status; err gets stderr. */
static int run(const char *svc, char **extra, char **err, char **out)
{
    char *argv[16];
    int n = 0;

    argv[n++] = (char *)tu_bin(svc);
    for (int i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return tu_run_cmd(argv, base_env, out, err, 20000);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(help_lists_every_key)
{
    const char *svc = services[_i];
    char *out = NULL, *err = NULL;
    char *args[] = { "--help", NULL };

    ck_assert_int_eq(run(svc, args, &err, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "Usage:"));
    ck_assert_ptr_nonnull(strstr(out, "--http.port"));
    ck_assert_ptr_nonnull(strstr(out, "TB_LOG_LEVEL"));
    ck_assert_ptr_nonnull(strstr(out, "--kafka.<property>"));
    if (needs_dataset(svc))
        ck_assert_ptr_nonnull(strstr(out, "--dataset"));
    free(out);
    free(err);

    char *vargs[] = { "--version", NULL };
    ck_assert_int_eq(run(svc, vargs, &err, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, svc));
    free(out);
    free(err);
}
END_TEST

/* Each bad configuration must exit 78 with one line naming the key. */
START_TEST(bad_config_exits_78_naming_the_key)
{
    const char *svc = services[_i];
    static const struct { const char *file; const char *key; } cases[] = {
        { "dataset = payee\nkafka.linger.ms = abc\n", "kafka.linger.ms" },
        { "dataset = payee\nhttp.prot = 8080\n", "http.prot" },
        { "dataset = payee\nkafka.no.such.property = 1\n", "kafka.no.such.property" },
        { "dataset = payee\nhttp.port = 99999\n", "http.port" },
        { "dataset = payee\nlog.level = loud\n", "log.level" },
        { "dataset = payee\nshutdown.grace.ms = soon\n", "shutdown.grace.ms" },
        { "dataset = payee\nstartup.timeout.ms = 0\n", "startup.timeout.ms" },
        /* an empty broker list: nothing would ever be reached */
        { "dataset = payee\nkafka.bootstrap.servers =\n", "kafka.bootstrap.servers" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = tu_write_temp(needs_dataset(svc) ? cases[i].file : strchr(cases[i].file, '\n') + 1);
        char *err = NULL, *out = NULL;
        char *args[] = { "--config", path, NULL };
        int rc = run(svc, args, &err, &out);
        ck_assert_msg(rc == 78, "%s with %s: exit %d, stderr: %s", svc, cases[i].key, rc, err);
        ck_assert_msg(strstr(err, cases[i].key) != NULL, "%s: stderr does not name %s: %s", svc,
                      cases[i].key, err);
        ck_assert_msg(count_lines(err) == 1, "%s: expected one line, got: %s", svc, err);
        unlink(path);
        free(path);
        free(err);
        free(out);
    }
}
END_TEST

START_TEST(missing_or_unknown_dataset_exits_78)
{
    const char *svc = services[_i];
    char *err = NULL, *out = NULL;

    if (!needs_dataset(svc))
        return;
    ck_assert_int_eq(run(svc, NULL, &err, &out), 78);
    ck_assert_ptr_nonnull(strstr(err, "dataset"));
    free(err);
    free(out);
    char *args[] = { "--dataset", "payees", NULL };
    ck_assert_int_eq(run(svc, args, &err, &out), 78);
    ck_assert_ptr_nonnull(strstr(err, "payees"));
    free(err);
    free(out);
}
END_TEST

START_TEST(unknown_flag_is_a_usage_error)
{
    const char *svc = services[_i];
    char *err = NULL, *out = NULL;
    char *args[] = { "--datset", "payee", NULL };

    ck_assert_int_eq(run(svc, args, &err, &out), 64);
    ck_assert_ptr_nonnull(strstr(err, "--datset"));
    free(err);
    free(out);
}
END_TEST

struct body {
    char buf[65536];
    size_t len;
};

static long http_get(int port, const char *path, struct body *b)
{
    char *text = NULL;
    long code = tu_http_get(port, path, &text);

    b->len = (size_t)snprintf(b->buf, sizeof(b->buf), "%s", text);
    free(text);
    return code;
}

/* Start the service on its own port, wait for /healthz and /readyz (the
 * real broker answers), read /metrics, SIGTERM, expect exit 0 in time. */
START_TEST(serves_health_ready_metrics_and_stops_on_sigterm)
{
    const char *svc = services[_i];
    int port = 18181 + (int)_i;
    char portflag[32];
    struct body b;
    pid_t pid;
    int status = 0;
    int64_t deadline;
    long code = 0;

    snprintf(portflag, sizeof(portflag), "--http.port=%d", port);
    {
        const char *args[] = { portflag, "--shutdown.grace.ms=5000",
                               /* the persister and svc-recon are ready once their database answers */
                               strcmp(svc, "svc-persister") == 0 || strcmp(svc, "svc-recon") == 0
                                   ? "--pg.password=tributary"
                                   : "--log.level=info",
                               needs_dataset(svc) ? "--dataset=payee" : NULL, NULL };
        pid = tu_spawn(svc, args, base_env, NULL);
    }
    deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = http_get(port, "/healthz", &b)) != 200)
        usleep(50000);
    ck_assert_msg(code == 200, "%s: /healthz never answered 200", svc);
    ck_assert_ptr_nonnull(strstr(b.buf, "ok"));

    deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = http_get(port, "/readyz", &b)) != 200)
        usleep(100000);
    ck_assert_msg(code == 200, "%s: /readyz never ready: %s", svc, b.buf);

    ck_assert_int_eq(http_get(port, "/metrics", &b), 200);
    ck_assert_ptr_nonnull(strstr(b.buf, "# TYPE tributary_http_requests_total counter"));
    ck_assert_ptr_nonnull(strstr(b.buf, "path=\"/readyz\""));
    ck_assert_int_eq(http_get(port, "/no/such/path", &b), 404);

    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    deadline = core_mono_ms() + 10000;
    while (core_mono_ms() < deadline && waitpid(pid, &status, WNOHANG) == 0)
        usleep(20000);
    if (core_mono_ms() >= deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("%s did not stop within 10 s of SIGTERM", svc);
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit status %d", svc, status);
}
END_TEST

/* Readiness tells the truth: with no broker at the address, /readyz is 503
 * with the reason while /healthz stays 200. */
START_TEST(readyz_fails_without_broker)
{
    int port = 18199;
    char portflag[32];
    struct body b;
    pid_t pid;
    int status;
    int64_t deadline;
    long code = 0;

    snprintf(portflag, sizeof(portflag), "--http.port=%d", port);
    {
        const char *args[] = { portflag, "--kafka.bootstrap.servers=127.0.0.1:1", NULL };
        pid = tu_spawn("svc-recon", args, base_env, NULL);
    }
    deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = http_get(port, "/healthz", &b)) != 200)
        usleep(50000);
    ck_assert_int_eq(code, 200);
    ck_assert_int_eq(http_get(port, "/readyz", &b), 503);
    ck_assert_ptr_nonnull(strstr(b.buf, "kafka"));
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* ---- the start-up policy (docs/OPERATIONS.md) -------------------------- */

/* Run svc with args until it exits; assert exit 69 with one plain line
 * that starts "<svc>: <want>", after at least min_ms. */
static void expect_69(const char *svc, char **args, const char *want, int64_t min_ms)
{
    char *err = NULL, *out = NULL, line[512];
    int64_t t0 = core_mono_ms(), took;
    int rc = run(svc, args, &err, &out);

    took = core_mono_ms() - t0;
    snprintf(line, sizeof(line), "%s: %s", svc, want);
    ck_assert_msg(rc == 69, "%s: exit %d, not 69; stderr: %s", svc, rc, err);
    ck_assert_msg(strstr(err, line) != NULL, "%s: no line '%s' in: %s", svc, line, err);
    ck_assert_msg(tu_count_plain_lines(err) == 1, "%s: expected one plain line: %s", svc, err);
    ck_assert_msg(took >= min_ms, "%s: gave up after %lld ms, before startup.timeout.ms", svc,
                  (long long)took);
    ck_assert_msg(took < min_ms + 15000, "%s: took %lld ms", svc, (long long)took);
    free(err);
    free(out);
}

/* Every service, started with a broker address where nothing listens,
 * gives up after startup.timeout.ms (not 30 s, 60 s or never), exit 69,
 * naming the dependency and its address. */
START_TEST(unreachable_broker_at_start_exits_69_naming_it)
{
    const char *svc = services[_i];
    char *args[] = { "--http.port=0", "--startup.timeout.ms=1500",
                     "--kafka.bootstrap.servers=127.0.0.1:1",
                     /* the persister reaches its database first */
                     strcmp(svc, "svc-persister") == 0 ? "--pg.password=tributary"
                                                       : "--log.level=info",
                     needs_dataset(svc) ? "--dataset=payee" : NULL, NULL };

    expect_69(svc, args, "kafka at 127.0.0.1:1 unreachable for startup.timeout.ms (1500 ms)",
              1500);
}
END_TEST

/* svc-ingest's one-shot run of a file follows the same rule. */
START_TEST(ingest_file_with_unreachable_broker_exits_69_naming_it)
{
    char *path = tu_write_temp("payee_id,name\nP1,x\n");
    char *args[] = { "--http.port=0", "--startup.timeout.ms=1000",
                     "--kafka.bootstrap.servers=127.0.0.1:1", "--dataset=payee", path, NULL };

    expect_69("svc-ingest", args,
              "kafka at 127.0.0.1:1 unreachable for startup.timeout.ms (1000 ms)", 1000);
    unlink(path);
    free(path);
}
END_TEST

/* The feeder waited for an unreachable Redis forever: now startup.timeout.ms,
 * then 69 naming it (the edge: 1 ms still tries once). */
START_TEST(feeder_unreachable_redis_at_start_exits_69_naming_it)
{
    char *args[] = { "--http.port=0", "--startup.timeout.ms=1200", "--redis.port=1",
                     "--dataset=payee", NULL };
    char *args1[] = { "--http.port=0", "--startup.timeout.ms=1", "--redis.host=127.0.0.1",
                      "--redis.port=1", "--dataset=payee", NULL };

    expect_69("svc-cache-feeder", args,
              "redis at 127.0.0.1:1 unreachable for startup.timeout.ms (1200 ms)", 1200);
    expect_69("svc-cache-feeder", args1,
              "redis at 127.0.0.1:1 unreachable for startup.timeout.ms (1 ms): redis "
              "127.0.0.1:1: connect: Connection refused",
              0);
}
END_TEST

/* A refused Redis password is a configuration error: 78 at once. */
START_TEST(feeder_refused_redis_password_exits_78_naming_it)
{
    char *err = NULL, *out = NULL;
    char *args[] = { "--http.port=0", "--redis.password=not-the-password", "--dataset=payee",
                     NULL };
    int rc = run("svc-cache-feeder", args, &err, &out);

    ck_assert_msg(rc == 78, "exit %d; stderr: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(err, "svc-cache-feeder: configuration error: redis.password: "));
    ck_assert_msg(strstr(err, "not-the-password") == NULL, "the password is printed: %s", err);
    ck_assert_int_eq(tu_count_plain_lines(err), 1);
    free(err);
    free(out);
}
END_TEST

/* A dependency that answers within startup.timeout.ms is waited for: the
 * feeder with Redis behind a forwarder that opens 1.5 s after the start
 * gets ready (and /readyz says what it waits for meanwhile). */
START_TEST(feeder_waits_for_redis_that_comes_up_in_time)
{
    int port = tu_free_port(), rport = tu_free_port();
    char portflag[32], rflag[32];
    struct body b;
    pid_t pid, proxy;
    int status = 0;
    int64_t deadline;
    long code = 0;

    ck_assert_int_gt(port, 0);
    ck_assert_int_gt(rport, 0);
    ck_assert_int_ne(port, rport);
    snprintf(portflag, sizeof(portflag), "--http.port=%d", port);
    snprintf(rflag, sizeof(rflag), "--redis.port=%d", rport);
    {
        const char *args[] = { portflag, rflag, "--dataset=payee", "--startup.timeout.ms=60000",
                               "--shutdown.grace.ms=5000", NULL };
        pid = tu_spawn("svc-cache-feeder", args, base_env, NULL);
    }
    deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = http_get(port, "/healthz", &b)) != 200)
        usleep(50000);
    ck_assert_int_eq(code, 200);
    /* 503 from the start: "starting" until run() has added its Redis
     * probe, then the reason names redis */
    deadline = core_mono_ms() + 1000;
    do {
        ck_assert_int_eq(http_get(port, "/readyz", &b), 503);
    } while (!strstr(b.buf, "redis") && core_mono_ms() < deadline && usleep(20000) == 0);
    ck_assert_msg(strstr(b.buf, "redis") != NULL, "reason: %s", b.buf);
    usleep(1500000); /* the outage being tested: Redis absent for a while */
    ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
    proxy = tu_proxy_start(rport, 6379);
    ck_assert_int_gt(proxy, 0);
    deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = http_get(port, "/readyz", &b)) != 200)
        usleep(100000);
    ck_assert_msg(code == 200, "never ready: %s", b.buf);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    tu_proxy_stop(proxy);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* ---- topic names: one rule, {topic.prefix}{dataset}.{kind} (core_topics) ---- */

/* A prefix that makes no Kafka topic name is refused at start, naming
 * topic.prefix, by every service that names dataset topics. */
START_TEST(bad_topic_prefix_exits_78_naming_it)
{
    static const char *const svcs[] = { "svc-ingest", "svc-validator", "svc-cache-feeder",
                                        "svc-persister" };
    char *path = tu_write_temp("payee_id,name\nP1,x\n");

    for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
        char *err = NULL, *out = NULL;
        char *args[] = { "--http.port=0", "--topic.prefix=no/slash.", "--dataset=payee",
                         !strcmp(svcs[i], "svc-ingest") ? path : NULL, NULL };
        int rc = run(svcs[i], args, &err, &out);

        ck_assert_msg(rc == 78, "%s: exit %d; stderr: %s", svcs[i], rc, err);
        ck_assert_msg(strstr(err, "topic.prefix") != NULL, "%s: %s", svcs[i], err);
        ck_assert_int_eq(tu_count_plain_lines(err), 1);
        free(err);
        free(out);
    }
    /* the deprecated suffix keys of svc-persister by the same rule */
    static const char *const suffixes[] = { "--topic.valid.suffix=.v/2", "--topic.dlq.suffix=.d/q" };
    for (size_t i = 0; i < 2; i++) {
        char *err = NULL, *out = NULL;
        char *args[] = { "--http.port=0", (char *)suffixes[i], "--dataset=payee", NULL };
        int rc = run("svc-persister", args, &err, &out);

        ck_assert_msg(rc == 78, "%s: exit %d; stderr: %s", suffixes[i], rc, err);
        ck_assert_msg(strstr(err, i ? "topic.dlq.suffix: " : "topic.valid.suffix: "), "%s: %s",
                      suffixes[i], err);
        ck_assert_int_eq(tu_count_plain_lines(err), 1);
        free(err);
        free(out);
    }
    unlink(path);
    free(path);
}
END_TEST

/* The keys each service had before still work, with a warning naming
 * topic.prefix (the service then goes on: here to its exit for want of a
 * broker or a Redis). */
START_TEST(former_topic_keys_warn_naming_topic_prefix)
{
    char *path = tu_write_temp("payee_id,name\nP1,x\n");
    char *iargs[] = { "--http.port=0", "--topic=some.raw", "--startup.timeout.ms=200",
                      "--kafka.bootstrap.servers=127.0.0.1:1", "--dataset=payee", path, NULL };
    char *fargs[] = { "--http.port=0", "--topic.template=x.{dataset}.valid",
                      "--startup.timeout.ms=200", "--redis.port=1", "--dataset=payee", NULL };
    char *pargs[] = { "--http.port=0", "--topic.valid.suffix=.v2", "--startup.timeout.ms=200",
                      "--pg.conninfo=host=127.0.0.1 port=1 dbname=x user=x", "--dataset=payee",
                      "--create-tables", NULL };
    struct { const char *svc; char **args; const char *warning; } cases[] = {
        { "svc-ingest", iargs, "topic is deprecated: use topic.prefix" },
        { "svc-cache-feeder", fargs, "topic.template is deprecated: use topic.prefix" },
        { "svc-persister", pargs, "topic.valid.suffix is deprecated: use topic.prefix" },
        { "svc-persister", pargs, "create-tables is deprecated: use create.tables" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL, *out = NULL;
        int rc = run(cases[i].svc, cases[i].args, &err, &out);

        ck_assert_msg(rc == 69, "%s: exit %d: %s", cases[i].svc, rc, err);
        ck_assert_msg(strstr(err, cases[i].warning) != NULL, "%s: no warning: %s", cases[i].svc,
                      err);
        free(err);
        free(out);
    }
    unlink(path);
    free(path);
}
END_TEST

/* One --topic.prefix given to each stage carries a file through: ingest
 * writes <P>payee.raw, the validator reads it and writes <P>payee.valid,
 * the cache-feeder reads that into Redis. */
START_TEST(one_topic_prefix_carries_a_file_through_the_stages)
{
    const int rows = 40;
    char u[64], pflag[128], cflag[128], vg[128], fg[128], aflag[160], topic[256], pattern[128];
    core_strbuf csv = { 0 };
    char *path;

    snprintf(u, sizeof(u), "%s", tu_unique());
    snprintf(pflag, sizeof(pflag), "--topic.prefix=tp%s.", u);
    snprintf(cflag, sizeof(cflag), "--cache.prefix=tp%s", u);
    snprintf(vg, sizeof(vg), "--group.id=tp_v_%s", u);
    snprintf(fg, sizeof(fg), "--group.id=tp_f_%s", u);
    snprintf(aflag, sizeof(aflag), "--audit.topic=audit.tp_%s", u);
    static const char *const kinds[] = { "raw", "valid", "retry", "dlq" };
    for (size_t k = 0; k < 4; k++) {
        snprintf(topic, sizeof(topic), "tp%s.payee.%s", u, kinds[k]);
        tu_topic_create(topic, 1);
    }
    core_strbuf_add(&csv, "payee_id,name,account_number,routing_number,country,currency,email,"
                          "amount_limit,status,updated_at\n");
    for (int i = 1; i <= rows; i++)
        core_strbuf_addf(&csv, "TP%s%04d,Payee %d,%d,021000021,US,USD,p%d@example.com,%d.50,"
                               "ACTIVE,2026-11-01T10:00:00Z\n", u, i, i, 10000000 + i, i, i);
    path = tu_write_temp(csv.p);
    core_strbuf_free(&csv);

    int vport = tu_free_port(), fport = tu_free_port();
    ck_assert(vport > 0 && fport > 0 && vport != fport);
    const char *vargs[] = { "--dataset=payee", pflag, vg, aflag, "--commit.interval.ms=100", NULL };
    const char *fargs[] = { "--dataset=payee", pflag, cflag, fg, aflag, NULL };
    pid_t v = tu_service_start("svc-validator", vport, vargs, NULL);
    pid_t f = tu_service_start("svc-cache-feeder", fport, fargs, NULL);
    char *iargv[] = { (char *)tu_bin("svc-ingest"), "--dataset=payee", pflag, aflag,
                      "--http.port=0", "--log.level=warn", path, NULL };
    char *out = NULL, *err = NULL;
    int irc = tu_run_cmd(iargv, base_env, &out, &err, 60000);
    ck_assert_msg(irc == 0, "svc-ingest exit %d: %s", irc, err);
    free(out);
    free(err);

    snprintf(topic, sizeof(topic), "tp%s.payee.raw", u);
    ck_assert_uint_eq(tu_topic_read(topic, "read_committed", NULL, NULL), (size_t)rows);
    redisContext *r = redisConnect("127.0.0.1", 6379);
    ck_assert_msg(r && !r->err, "redis");
    snprintf(pattern, sizeof(pattern), "tp%s:payee:*", u);
    long long keys = 0;
    int64_t deadline = core_mono_ms() + 60000;
    while (keys < rows && core_mono_ms() < deadline) {
        redisReply *rep = redisCommand(r, "KEYS %s", pattern);
        ck_assert_ptr_nonnull(rep);
        keys = rep->type == REDIS_REPLY_ARRAY ? (long long)rep->elements : -1;
        freeReplyObject(rep);
        if (keys < rows)
            tu_sleep_ms(200);
    }
    ck_assert_msg(keys == rows, "%lld of %d keys in Redis", keys, rows);
    snprintf(topic, sizeof(topic), "tp%s.payee.valid", u);
    ck_assert_uint_eq(tu_topic_read(topic, "read_committed", NULL, NULL), (size_t)rows);
    redisFree(r);
    tu_service_stop(f);
    tu_service_stop(v);
    char epath[1100];
    snprintf(epath, sizeof(epath), "%s.errors.jsonl", path);
    unlink(epath);
    unlink(path);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("services");
    TCase *tc = tcase_create("cli");
    TCase *th = tcase_create("http");

    setup();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_add_loop_test(tc, help_lists_every_key, 0, NSERVICES);
    tcase_add_loop_test(tc, bad_config_exits_78_naming_the_key, 0, NSERVICES);
    tcase_add_loop_test(tc, missing_or_unknown_dataset_exits_78, 0, NSERVICES);
    tcase_add_loop_test(tc, unknown_flag_is_a_usage_error, 0, NSERVICES);
    tcase_set_timeout(th, 60);
    tcase_add_loop_test(th, serves_health_ready_metrics_and_stops_on_sigterm, 0, NSERVICES);
    tcase_add_test(th, readyz_fails_without_broker);
    tcase_add_test(th, feeder_waits_for_redis_that_comes_up_in_time);
    TCase *ts = tcase_create("startup");
    tcase_set_timeout(ts, 60);
    tcase_add_loop_test(ts, unreachable_broker_at_start_exits_69_naming_it, 0, NSERVICES);
    tcase_add_test(ts, ingest_file_with_unreachable_broker_exits_69_naming_it);
    tcase_add_test(ts, feeder_unreachable_redis_at_start_exits_69_naming_it);
    tcase_add_test(ts, feeder_refused_redis_password_exits_78_naming_it);
    tcase_add_test(ts, bad_topic_prefix_exits_78_naming_it);
    tcase_add_test(ts, former_topic_keys_warn_naming_topic_prefix);
    tcase_add_test(th, one_topic_prefix_carries_a_file_through_the_stages);
    suite_add_tcase(s, ts);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, th);
    int rc = tu_run(&s, 1);
    curl_global_cleanup();
    return rc;
}
