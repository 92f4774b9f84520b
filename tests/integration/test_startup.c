/* test_startup.c — how the services start and restart against the real
 * local stack: svc-persister's database checked at start (a refused
 * password or database is a configuration error, exit 78; an unreachable
 * one is waited for up to startup.timeout.ms, then 69), its readiness while
 * the database is away (at start and during an outage), and how fast a
 * consumer service killed with -9 writes again after its restart (static
 * membership: no wait for the dead member's session). */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_MAIN "host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary"

static core_avro_catalog_t *cat;
static const core_avro_schema_t *payee;

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
    payee = core_avro_catalog_by_dataset(cat, "payee");
    ck_assert_ptr_nonnull(payee);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
    cat = NULL;
}

/* ---- running a service ---------------------------------------------------- */

/* Run svc with args (NULL-terminated) to its end: exit status, stderr. */
static int run(const char *svc, const char *const *args, char **err)
{
    char *argv[32];
    int n = 0;

    argv[n++] = (char *)tu_bin(svc);
    for (; args[n - 1] && n < 31; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    return tu_run_cmd(argv, tu_env(false), NULL, err, 30000);
}

/* svc-persister with args exits code with one plain line holding want,
 * and never prints secret. */
static void persister_refuses(const char *const *args, int code, const char *want,
                              const char *secret)
{
    char *err = NULL;
    int rc = run("svc-persister", args, &err);

    ck_assert_msg(rc == code, "exit %d, not %d; stderr: %s", rc, code, err);
    ck_assert_msg(strstr(err, want) != NULL, "no '%s' in: %s", want, err);
    ck_assert_msg(tu_count_plain_lines(err) == 1, "expected one plain line: %s", err);
    ck_assert_msg(!secret || strstr(err, secret) == NULL, "the secret is printed: %s", err);
    free(err);
}

/* ---- HTTP ----------------------------------------------------------------- */

/* Wait until /readyz answers want (and its body holds has, if set). */
static void wait_readyz(pid_t pid, const char *log, int port, long want, const char *has,
                        int within_ms)
{
    char *body = NULL;
    long code = 0;
    int64_t deadline = core_mono_ms() + within_ms;

    while (core_mono_ms() < deadline) {
        free(body);
        body = NULL;
        code = tu_http_get(port, "/readyz", &body);
        if (code == want && (!has || (body && strstr(body, has)))) {
            free(body);
            return;
        }
        tu_assert_alive(pid, log);
        tu_sleep_ms(100);
    }
    ck_abort_msg("/readyz: %ld '%s' after %d ms, expected %ld with '%s'", code, body ? body : "",
                 within_ms, want, has ? has : "");
}

/* ---- svc-persister: the database at start --------------------------------- */

START_TEST(wrong_pg_password_exits_78_naming_pg_password)
{
    const char *args[] = { "--dataset=payee", "--http.port=0", "--pg.password=not-the-password",
                           NULL };
    persister_refuses(args, 78, "svc-persister: configuration error: pg.password: ",
                      "not-the-password");
    /* none set while the server asks for one: the same key */
    const char *none[] = { "--dataset=payee", "--http.port=0", NULL };
    persister_refuses(none, 78, "svc-persister: configuration error: pg.password: ", NULL);
}
END_TEST

START_TEST(unknown_pg_database_exits_78_naming_pg_conninfo)
{
    const char *args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                           "--pg.conninfo=host=127.0.0.1 dbname=tb_no_such_db user=tributary",
                           NULL };
    persister_refuses(args, 78, "svc-persister: configuration error: pg.conninfo: ", NULL);
    persister_refuses(args, 78, "tb_no_such_db", NULL);
}
END_TEST

/* libpq takes an empty value for its default (port 5432, the user the
 * process runs as), and "port= dbname=x" for port "dbname=x": refused,
 * before any server is asked. */
START_TEST(pg_conninfo_empty_value_exits_78)
{
    static const struct { const char *conninfo, *want; } cases[] = {
        { "host=127.0.0.1 dbname=tributary user=tributary port=", "pg.conninfo: port has an empty value" },
        { "host=127.0.0.1 port= dbname=tributary user=tributary", "pg.conninfo: port has an empty value" },
        { "host=127.0.0.1 port=5432 dbname=tributary user=''", "pg.conninfo: user has an empty value" },
        { "host= port=5432 dbname=tributary", "pg.conninfo: host has an empty value" },
        { "", "pg.conninfo: empty" },
        { "host=127.0.0.1 port=5432x", "pg.conninfo: invalid integer value \"5432x\"" },
        { "host=127.0.0.1 no_such_option=1", "pg.conninfo: invalid connection option" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char flag[256];
        snprintf(flag, sizeof(flag), "--pg.conninfo=%s", cases[i].conninfo);
        const char *args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                               flag, "--kafka.bootstrap.servers=127.0.0.1:1", NULL };
        int64_t t0 = core_mono_ms();
        persister_refuses(args, 78, cases[i].want, NULL);
        ck_assert_msg(core_mono_ms() - t0 < 10000, "%s: refused only after %lld ms",
                      cases[i].conninfo, (long long)(core_mono_ms() - t0));
    }
}
END_TEST

/* Issue 15: libpq drops an empty port in a URI ("postgresql://h:/db"), so
 * the host silently got 5432: refused from the URI's text, before any
 * server is asked; the password in a URI's user info is never quoted. */
START_TEST(pg_conninfo_uri_empty_port_exits_78)
{
    static const struct { const char *conninfo, *want; } cases[] = {
        { "postgresql://127.0.0.1:/tributary", "pg.conninfo: port has an empty value in '127.0.0.1:'" },
        { "postgres://127.0.0.1:/tributary", "pg.conninfo: port has an empty value in '127.0.0.1:'" },
        { "postgresql://tributary:pw-in-uri@127.0.0.1:?dbname=tributary",
          "pg.conninfo: port has an empty value in '127.0.0.1:'" },
        { "postgresql://127.0.0.1:5432,localhost:/tributary",
          "pg.conninfo: port has an empty value in 'localhost:'" },
        { "postgresql://[::1]:/tributary", "pg.conninfo: port has an empty value in '[::1]:'" },
        { "postgresql://127.0.0.1:", "pg.conninfo: port has an empty value in '127.0.0.1:'" },
        { "postgresql://127.0.0.1/tributary?port=", "pg.conninfo: port has an empty value" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char flag[256];
        snprintf(flag, sizeof(flag), "--pg.conninfo=%s", cases[i].conninfo);
        const char *args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                               flag, "--kafka.bootstrap.servers=127.0.0.1:1", NULL };
        int64_t t0 = core_mono_ms();
        persister_refuses(args, 78, cases[i].want, "pw-in-uri");
        ck_assert_msg(core_mono_ms() - t0 < 10000, "%s: refused only after %lld ms",
                      cases[i].conninfo, (long long)(core_mono_ms() - t0));
    }
}
END_TEST

/* FerretDB refuses SCRAM logins (it knows PLAIN only): a refused login at
 * start is the configuration's. */
START_TEST(mongodb_login_refused_exits_78_naming_mongodb_uri)
{
    const char *args[] = { "--dataset=payee", "--http.port=0", "--sink=mongodb",
                           "--mongodb.uri=mongodb://someone:s3cret-pw@127.0.0.1:27017/", NULL };
    persister_refuses(args, 78, "svc-persister: configuration error: mongodb.uri: ", "s3cret-pw");
}
END_TEST

/* Issue 15: FerretDB 1.24 with PLAIN passes the login on to its
 * PostgreSQL and answers a wrong password with InternalError (code 1):
 * refused configuration too, the password never printed. */
START_TEST(ferretdb_plain_wrong_password_exits_78_naming_mongodb_uri)
{
    const char *args[] = { "--dataset=payee", "--http.port=0", "--sink=mongodb",
                           "--mongodb.uri=mongodb://tributary:not-the-pw@127.0.0.1:27017/"
                           "?authMechanism=PLAIN",
                           NULL };
    persister_refuses(args, 78, "svc-persister: configuration error: mongodb.uri: ", "not-the-pw");
    persister_refuses(args, 78, "refused the user or password (SQLSTATE 28P01)", "not-the-pw");
}
END_TEST

/* MariaDB refusing the password, or the database: the configuration's
 * (78, the key named, the password never printed); not listening: waited
 * for, then 69 naming its address. */
START_TEST(mysql_login_refused_exits_78_naming_the_key)
{
    const char *pw[] = { "--dataset=payee", "--http.port=0", "--sink=mysql",
                         "--mysql.password=not-the-pw", NULL };
    persister_refuses(pw, 78, "svc-persister: configuration error: mysql.password: ", "not-the-pw");
    const char *db[] = { "--dataset=payee", "--http.port=0", "--sink=mysql",
                         "--mysql.password=tributary", "--mysql.database=tb_no_such_db", NULL };
    persister_refuses(db, 78, "svc-persister: configuration error: mysql.database: ", NULL);
    persister_refuses(db, 78, "tb_no_such_db", NULL);
    const char *down[] = { "--dataset=payee", "--http.port=0", "--sink=mysql",
                           "--mysql.password=tributary", "--mysql.port=1",
                           "--startup.timeout.ms=1500", NULL };
    persister_refuses(down, 69,
                      "svc-persister: mysql at 127.0.0.1:1 unreachable for startup.timeout.ms "
                      "(1500 ms)",
                      NULL);
}
END_TEST

START_TEST(unreachable_database_at_start_exits_69_naming_it)
{
    const char *pgargs[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                             "--pg.conninfo=host=127.0.0.1 port=1 dbname=tributary user=tributary",
                             "--startup.timeout.ms=1500", NULL };
    int64_t t0 = core_mono_ms();
    persister_refuses(pgargs, 69,
                      "svc-persister: postgres at 127.0.0.1:1 unreachable for startup.timeout.ms "
                      "(1500 ms)",
                      NULL);
    ck_assert_int_ge(core_mono_ms() - t0, 1500);
    /* a host name that does not resolve (yet) is waited for too, not 78 */
    const char *dnsargs[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                              "--pg.conninfo=host=no-such-host.invalid dbname=tributary "
                              "user=tributary",
                              "--startup.timeout.ms=1500", NULL };
    t0 = core_mono_ms();
    persister_refuses(dnsargs, 69, "svc-persister: postgres at no-such-host.invalid", NULL);
    ck_assert_int_ge(core_mono_ms() - t0, 1500);
    const char *margs[] = { "--dataset=payee", "--http.port=0", "--sink=mongodb",
                            "--mongodb.uri=mongodb://127.0.0.1:1", "--startup.timeout.ms=1500",
                            NULL };
    persister_refuses(margs, 69,
                      "svc-persister: mongodb at 127.0.0.1:1 unreachable for startup.timeout.ms "
                      "(1500 ms)",
                      NULL);
}
END_TEST

/* PostgreSQL behind a forwarder: absent at start (the persister waits,
 * /readyz 503 naming it), then there (200), then gone with nothing to
 * write (503 again: the idle persister pings it), then back (200). */
START_TEST(persister_readyz_503_while_database_away)
{
    int pgport = tu_free_port(), hport = 21000 + (int)(getpid() % 5000);
    char conninfo[200], hflag[32], log[256];
    pid_t proxy, pid;

    ck_assert_int_gt(pgport, 0);
    snprintf(conninfo, sizeof(conninfo),
             "--pg.conninfo=host=127.0.0.1 port=%d dbname=tributary user=tributary", pgport);
    snprintf(hflag, sizeof(hflag), "--http.port=%d", hport);
    snprintf(log, sizeof(log), "/tmp/tb_startup_ready_%s.log", tu_unique());
    /* its own group from the topic's end: records other suites left on
     * payee.valid would sit in its buffer (batch.timeout.ms 30 s), and a
     * persister with records in hand pings no idle database */
    char group[80];
    snprintf(group, sizeof(group), "--group.id=persister_ready_%s", tu_unique());
    const char *args[] = { "--dataset=payee", hflag, "--pg.password=tributary", conninfo,
                           group, "--kafka.auto.offset.reset=latest",
                           "--startup.timeout.ms=120000", "--shutdown.grace.ms=5000",
                           "--retry.base.ms=100", "--retry.max.ms=500", NULL };
    pid = tu_spawn("svc-persister", args, NULL, log);
    wait_readyz(pid, log, hport, 503, "postgres", 20000);
    ck_assert_int_eq(tu_http_get(hport, "/healthz", NULL), 200);

    proxy = tu_proxy_start(pgport, 5432);
    ck_assert_int_gt(proxy, 0);
    wait_readyz(pid, log, hport, 200, NULL, 30000);

    tu_proxy_stop(proxy); /* the outage: every connection cut */
    wait_readyz(pid, log, hport, 503, "postgres", 15000);

    proxy = tu_proxy_start(pgport, 5432);
    ck_assert_int_gt(proxy, 0);
    wait_readyz(pid, log, hport, 200, NULL, 30000);
    ck_assert_int_eq(tu_stop(pid, SIGTERM, 30000), 0);
    tu_proxy_stop(proxy);

    char *text = core_read_file(log, 1 << 22, NULL, NULL, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", pgport);
    ck_assert_msg(text && strstr(text, "waiting for a dependency at start") && strstr(text, addr),
                  "the wait at start is not reported: %s", text ? text : "");
    free(text);
    unlink(log);
}
END_TEST

/* ---- restarts after kill -9: static membership ---------------------------- */

/* One payee ADD of key (version v) onto topic, delivered. */
static void produce_payee(core_kafka_producer_t *p, const char *topic, const char *key, int v)
{
    char text[2048], err[512];
    snprintf(text, sizeof(text),
             "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012d\",\"op\":\"ADD\",\"kind\":"
             "\"CHANGE\",\"source\":\"test\",\"batch_id\":\"b1\",\"seq\":%d,"
             "\"event_time\":\"2026-11-22T10:00:00.000Z\",\"version\":%d,\"old_key\":null},"
             "\"payee_id\":\"%s\",\"name\":\"n\",\"account_number\":\"0000000001\","
             "\"routing_number\":\"021000021\",\"iban\":null,\"country\":\"US\","
             "\"currency\":\"USD\",\"email\":null,\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\","
             "\"updated_at\":\"2026-11-22T08:30:00.000Z\"}",
             v, v, v, key);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    avro_value_t val;
    ck_assert_msg(core_avro_from_json(payee, j, &val, err, sizeof(err)) == CORE_OK, "%s", err);
    void *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(core_avro_encode(payee, &val, &buf, &len, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(core_kafka_produce(p, topic, key, strlen(key), buf, len, NULL, 0, NULL, err,
                                        sizeof(err)),
                     CORE_OK);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 20000), 0);
    free(buf);
    avro_value_decref(&val);
    cJSON_Delete(j);
}

typedef bool (*written_fn)(const char *where, const char *key);

static bool pg_has(const char *schema, const char *key)
{
    PGconn *c = PQconnectdb(PG_MAIN);
    char sql[256];
    bool found = false;

    if (PQstatus(c) == CONNECTION_OK) {
        snprintf(sql, sizeof(sql), "SELECT 1 FROM \"%s\".payee WHERE payee_id = '%s'", schema,
                 key);
        PGresult *r = PQexec(c, sql);
        found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
    }
    PQfinish(c);
    return found;
}

static bool redis_has(const char *prefix, const char *key)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", 6379, tv);
    bool found = false;

    if (c && !c->err) {
        redisReply *r = redisCommand(c, "EXISTS %s:payee:%s", prefix, key);
        found = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return found;
}

/* ms until key is written (where), or -1 after within_ms. */
static int64_t wait_written(pid_t pid, const char *log, written_fn has, const char *where,
                            const char *key, int within_ms)
{
    int64_t t0 = core_mono_ms();
    while (core_mono_ms() - t0 < within_ms) {
        if (has(where, key))
            return core_mono_ms() - t0;
        tu_assert_alive(pid, log);
        tu_sleep_ms(50);
    }
    return -1;
}

/* A service consumes topic: written, kill -9, restarted with the same
 * arguments at t0, a new record produced: written again within 5 s of t0
 * (the dead member's session, 45 s by default, is not waited out). */
static void restart_after_kill9(const char *svc, const char *const *args, const char *topic,
                                written_fn has, const char *where)
{
    char log[256];
    core_kafka_producer_t *p = tu_producer("0");
    pid_t pid;
    int64_t t0, ms;

    snprintf(log, sizeof(log), "/tmp/tb_startup_%s_%s.log", svc, tu_unique());
    tu_topic_create(topic, 3);
    pid = tu_spawn(svc, args, NULL, log);
    /* a group without offsets may start at the end (the validator): the
     * first record again until the service has its partitions */
    ms = -1;
    for (int v = 1; v <= 12 && ms < 0; v++) {
        produce_payee(p, topic, "R0000001", v);
        ms = wait_written(pid, log, has, where, "R0000001", 5000);
    }
    ck_assert_msg(ms >= 0, "%s: the first record never written; see %s", svc, log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    t0 = core_mono_ms();
    pid = tu_spawn(svc, args, NULL, log);
    produce_payee(p, topic, "R0000002", 100);
    ms = wait_written(pid, log, has, where, "R0000002", 60000);
    ck_assert_msg(ms >= 0, "%s: nothing written after the restart; see %s", svc, log);
    ms = core_mono_ms() - t0;
    printf("%s: restart after kill -9 to the first write: %lld ms\n", svc, (long long)ms);
    fflush(stdout);
    ck_assert_msg(ms < 5000, "%s: %lld ms from the restart to the first write", svc,
                  (long long)ms);
    ck_assert_int_eq(tu_stop(pid, SIGTERM, 30000), 0);
    core_kafka_producer_free(p);
    unlink(log);
}

/* Regression (issue 10): with records in its buffer and batch.timeout.ms
 * not yet due, the hand-written loop never pinged an idle database, so
 * /readyz stayed 200 through an outage for up to batch.timeout.ms (here
 * ten minutes). On core_sink the plugin pings while the engine waits. */
static double buffered_records(int port)
{
    double n;

    return tu_metric_sum(port, "tributary_persister_buffer_records", "", &n) ? n : -1;
}

START_TEST(persister_readyz_503_while_database_away_records_buffered)
{
    int pgport = tu_free_port(), hport = 21000 + (int)((getpid() + 7) % 5000);
    char conninfo[200], hflag[32], log[256], u[48], topic[128], suffix[128], dlq[128];
    char schema[80], group[80], audit[80];
    pid_t proxy, pid;

    ck_assert_int_gt(pgport, 0);
    snprintf(u, sizeof(u), "b%s", tu_unique());
    snprintf(conninfo, sizeof(conninfo),
             "--pg.conninfo=host=127.0.0.1 port=%d dbname=tributary user=tributary", pgport);
    snprintf(hflag, sizeof(hflag), "--http.port=%d", hport);
    snprintf(log, sizeof(log), "/tmp/tb_startup_ready_%s.log", u);
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(suffix, sizeof(suffix), "--topic.valid.suffix=.valid_%s", u);
    snprintf(dlq, sizeof(dlq), "--topic.dlq.suffix=.dlq_%s", u);
    snprintf(schema, sizeof(schema), "--pg.schema=t_%s", u);
    snprintf(group, sizeof(group), "--group.id=persister_%s", u);
    snprintf(audit, sizeof(audit), "--audit.topic=audit_%s", u);
    core_kafka_producer_t *p = tu_producer("0");
    tu_topic_create(topic, 1);
    const char *args[] = { "--dataset=payee", hflag, "--pg.password=tributary", conninfo,
                           "--create.tables", schema, suffix, dlq, group, audit,
                           "--batch.timeout.ms=600000", "--startup.timeout.ms=120000",
                           "--shutdown.grace.ms=5000", "--retry.base.ms=100",
                           "--retry.max.ms=500", NULL };
    proxy = tu_proxy_start(pgport, 5432);
    ck_assert_int_gt(proxy, 0);
    pid = tu_spawn("svc-persister", args, NULL, log);
    wait_readyz(pid, log, hport, 200, NULL, 30000);
    produce_payee(p, topic, "R0000001", 1);
    int64_t dl = core_mono_ms() + 30000;
    while (buffered_records(hport) < 1 && core_mono_ms() < dl) {
        tu_assert_alive(pid, log);
        tu_sleep_ms(100);
    }
    ck_assert_msg(buffered_records(hport) == 1, "the record is not in the buffer; see %s", log);

    tu_proxy_stop(proxy); /* the outage, the record still waiting for its batch */
    wait_readyz(pid, log, hport, 503, "postgres", 15000);
    ck_assert_msg(buffered_records(hport) == 1, "the record left the buffer; see %s", log);

    proxy = tu_proxy_start(pgport, 5432);
    ck_assert_int_gt(proxy, 0);
    wait_readyz(pid, log, hport, 200, NULL, 30000);
    ck_assert_int_eq(tu_stop(pid, SIGTERM, 30000), 0); /* the stop writes the record */
    tu_proxy_stop(proxy);
    core_kafka_producer_free(p);
    unlink(log);
}
END_TEST

START_TEST(persister_restart_after_kill9_writes_within_5s)
{
    char u[48], topic[128], suffix[128], dlq[128], schema[64], group[80], inst[80], audit[80];
    char s_schema[80];

    snprintf(u, sizeof(u), "r%s", tu_unique());
    snprintf(suffix, sizeof(suffix), "--topic.valid.suffix=.valid_%s", u);
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(dlq, sizeof(dlq), "--topic.dlq.suffix=.dlq_%s", u);
    snprintf(schema, sizeof(schema), "t_%s", u);
    snprintf(s_schema, sizeof(s_schema), "--pg.schema=%s", schema);
    snprintf(group, sizeof(group), "--group.id=persister_%s", u);
    snprintf(inst, sizeof(inst), "--instance.id=inst_%s", u);
    snprintf(audit, sizeof(audit), "--audit.topic=audit_%s", u);
    /* no group.instance.id, no session.timeout.ms: the defaults */
    const char *args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                           "--create.tables", s_schema, suffix, dlq, group, inst, audit,
                           "--batch.timeout.ms=50", NULL };
    restart_after_kill9("svc-persister", args, topic, pg_has, schema);

    PGconn *c = PQconnectdb(PG_MAIN);
    char sql[128];
    snprintf(sql, sizeof(sql), "SET client_min_messages = warning; DROP SCHEMA \"%s\" CASCADE",
             schema);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}
END_TEST

/* where: the validator's HTTP port; key: unused (a restarted process
 * counts from 0: any record routed in a committed transaction). */
static bool validator_routed(const char *where, const char *key)
{
    double sum = 0;

    (void)key;
    return tu_metric_sum(atoi(where), "tributary_validator_records_total", "", &sum) && sum > 0;
}

START_TEST(validator_restart_after_kill9_writes_within_5s)
{
    char u[48], topic[128], prefix[80], s_prefix[100], group[80], inst[80], audit[80];
    char port[16], s_port[32];

    snprintf(u, sizeof(u), "v%s", tu_unique());
    snprintf(prefix, sizeof(prefix), "%s.", u);
    snprintf(s_prefix, sizeof(s_prefix), "--topic.prefix=%s", prefix);
    snprintf(topic, sizeof(topic), "%spayee.raw", prefix);
    snprintf(group, sizeof(group), "--group.id=validator_%s", u);
    snprintf(inst, sizeof(inst), "--instance.id=inst_%s", u);
    snprintf(audit, sizeof(audit), "--audit.topic=audit_%s", u);
    snprintf(port, sizeof(port), "%d", 26000 + (int)(getpid() % 4000));
    snprintf(s_port, sizeof(s_port), "--http.port=%s", port);
    const char *args[] = { "--dataset=payee", s_port, s_prefix, group, inst, audit,
                           "--commit.interval.ms=50", NULL };
    restart_after_kill9("svc-validator", args, topic, validator_routed, port);
}
END_TEST

static int pg_count_prefix(const char *schema, const char *prefix)
{
    PGconn *c = PQconnectdb(PG_MAIN);
    char sql[256];
    int n = -1;

    if (PQstatus(c) == CONNECTION_OK) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\".payee WHERE payee_id LIKE '%s%%'",
                 schema, prefix);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            n = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
    return n;
}

/* ms until n keys "<prefix>NN" are in the table, or -1 after within_ms. */
static int64_t wait_rows(pid_t pid, const char *log, const char *schema, const char *prefix,
                         int n, int within_ms)
{
    int64_t t0 = core_mono_ms();
    while (core_mono_ms() - t0 < within_ms) {
        if (pg_count_prefix(schema, prefix) == n)
            return core_mono_ms() - t0;
        tu_assert_alive(pid, log);
        tu_sleep_ms(50);
    }
    return -1;
}

static void produce_keys(core_kafka_producer_t *p, const char *topic, const char *prefix, int n,
                         int v)
{
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "%s%02d", prefix, i);
        produce_payee(p, topic, key, v);
    }
}

static bool log_has(const char *log, const char *text)
{
    char *t = core_read_file(log, 1 << 22, NULL, NULL, 0);
    bool has = t && strstr(t, text);
    free(t);
    return has;
}

/* Static membership's catch (librdkafka 2.0.2 sends no LeaveGroup for a
 * static member that closes): a member stopped by SIGTERM leaves the group
 * all the same, so the others take its partitions at once instead of after
 * its session (45 s). Two persisters share four partitions; one stops; the
 * other writes what comes next on all four within 5 s. */
START_TEST(static_member_stopped_by_sigterm_hands_its_partitions_over_at_once)
{
    char u[48], topic[128], suffix[128], dlq[128], schema[64], s_schema[80], group[80];
    char audit[80], log_a[256], log_b[256];
    core_kafka_producer_t *p = tu_producer("0");

    snprintf(u, sizeof(u), "h%s", tu_unique());
    snprintf(suffix, sizeof(suffix), "--topic.valid.suffix=.valid_%s", u);
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(dlq, sizeof(dlq), "--topic.dlq.suffix=.dlq_%s", u);
    snprintf(schema, sizeof(schema), "t_%s", u);
    snprintf(s_schema, sizeof(s_schema), "--pg.schema=%s", schema);
    snprintf(group, sizeof(group), "--group.id=persister_%s", u);
    snprintf(audit, sizeof(audit), "--audit.topic=audit_%s", u);
    snprintf(log_a, sizeof(log_a), "/tmp/tb_startup_a_%s.log", u);
    snprintf(log_b, sizeof(log_b), "/tmp/tb_startup_b_%s.log", u);
    tu_topic_create(topic, 4);
    const char *a_args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                             "--create.tables", s_schema, suffix, dlq, group, audit,
                             "--batch.timeout.ms=50", "--instance.id=a", NULL };
    const char *b_args[] = { "--dataset=payee", "--http.port=0", "--pg.password=tributary",
                             "--create.tables", s_schema, suffix, dlq, group, audit,
                             "--batch.timeout.ms=50", "--instance.id=b", NULL };
    pid_t a = tu_spawn("svc-persister", a_args, NULL, log_a);
    produce_keys(p, topic, "A", 16, 1);
    ck_assert_msg(wait_rows(a, log_a, schema, "A", 16, 60000) >= 0, "A never written");
    pid_t b = tu_spawn("svc-persister", b_args, NULL, log_b);
    int64_t deadline = core_mono_ms() + 60000;
    while (core_mono_ms() < deadline && !log_has(log_b, "\"msg\":\"kafka partitions assigned\""))
        tu_sleep_ms(50);
    ck_assert_msg(log_has(log_b, "\"msg\":\"kafka partitions assigned\""),
                  "b never got partitions; see %s", log_b);
    produce_keys(p, topic, "B", 16, 2);
    ck_assert_msg(wait_rows(b, log_b, schema, "B", 16, 60000) >= 0, "B never written");

    ck_assert_int_eq(tu_stop(a, SIGTERM, 30000), 0);
    int64_t t0 = core_mono_ms();
    produce_keys(p, topic, "C", 16, 3);
    int64_t ms = wait_rows(b, log_b, schema, "C", 16, 60000);
    ck_assert_msg(ms >= 0, "C never written; see %s", log_b);
    ms = core_mono_ms() - t0;
    printf("svc-persister: SIGTERM of a static member to all its partitions written by the "
           "other: %lld ms\n", (long long)ms);
    fflush(stdout);
    ck_assert_msg(ms < 10000, "%lld ms until the stopped member's partitions were taken over",
                  (long long)ms);
    ck_assert_int_eq(tu_stop(b, SIGTERM, 30000), 0);
    core_kafka_producer_free(p);
    PGconn *c = PQconnectdb(PG_MAIN);
    char sql[128];
    snprintf(sql, sizeof(sql), "SET client_min_messages = warning; DROP SCHEMA \"%s\" CASCADE",
             schema);
    PQclear(PQexec(c, sql));
    PQfinish(c);
    unlink(log_a);
    unlink(log_b);
}
END_TEST

START_TEST(feeder_restart_after_kill9_writes_within_5s)
{
    char u[48], topic[128], tmpl[160], prefix[64], s_prefix[80], group[80], inst[80], audit[80];

    snprintf(u, sizeof(u), "f%s", tu_unique());
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(tmpl, sizeof(tmpl), "--topic.template={dataset}.valid_%s", u);
    snprintf(prefix, sizeof(prefix), "p_%s", u);
    snprintf(s_prefix, sizeof(s_prefix), "--cache.prefix=%s", prefix);
    snprintf(group, sizeof(group), "--group.id=feeder_%s", u);
    snprintf(inst, sizeof(inst), "--instance.id=inst_%s", u);
    snprintf(audit, sizeof(audit), "--audit.topic=audit_%s", u);
    const char *args[] = { "--dataset=payee", "--http.port=0", tmpl, s_prefix, group, inst,
                           audit, "--commit.interval.ms=100", NULL };
    restart_after_kill9("svc-cache-feeder", args, topic, redis_has, prefix);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("startup");
    TCase *tc = tcase_create("persister_database");
    TCase *tr = tcase_create("restart");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wrong_pg_password_exits_78_naming_pg_password);
    tcase_add_test(tc, unknown_pg_database_exits_78_naming_pg_conninfo);
    tcase_add_test(tc, pg_conninfo_empty_value_exits_78);
    tcase_add_test(tc, pg_conninfo_uri_empty_port_exits_78);
    tcase_add_test(tc, mongodb_login_refused_exits_78_naming_mongodb_uri);
    tcase_add_test(tc, ferretdb_plain_wrong_password_exits_78_naming_mongodb_uri);
    tcase_add_test(tc, mysql_login_refused_exits_78_naming_the_key);
    tcase_add_test(tc, unreachable_database_at_start_exits_69_naming_it);
    tcase_add_test(tc, persister_readyz_503_while_database_away);
    tcase_add_test(tc, persister_readyz_503_while_database_away_records_buffered);
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_set_timeout(tr, 180);
    tcase_add_test(tr, persister_restart_after_kill9_writes_within_5s);
    tcase_add_test(tr, feeder_restart_after_kill9_writes_within_5s);
    tcase_add_test(tr, validator_restart_after_kill9_writes_within_5s);
    tcase_add_test(tr, static_member_stopped_by_sigterm_hands_its_partitions_over_at_once);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tr);
    int rc = tu_run(&s, 1);
    curl_global_cleanup();
    return rc;
}
