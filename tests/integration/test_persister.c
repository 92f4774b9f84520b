/* test_persister.c — svc-persister against the real local stack: Kafka,
 * PostgreSQL (and a private PostgreSQL cluster for the outage), FerretDB,
 * MariaDB (stopped and started with stack.sh for its outage).
 *
 * A workload of adds, updates, deletes, moved keys and out-of-order
 * versions is produced to <dataset>.valid; the test keeps the expected
 * final state (per key: the highest version wins; a delete or a move away
 * leaves no row) and compares the table / collection with it exactly,
 * row by row: after a plain run, after kill -9 at random points, after the
 * database stopped mid-stream, and with a planted bad row (DLQ). */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- the workload and its expected final state -------------------------- */

typedef struct model {
    int nkeys_max;
    int64_t *best;   /* highest version seen per key (0: none) */
    bool *present;   /* row expected */
    int64_t *rowver; /* version of the expected row */
    int nkeys;
} model;

static void model_apply(model *m, int k, int64_t v, bool upsert)
{
    if (v <= m->best[k])
        return;
    m->best[k] = v;
    m->present[k] = upsert;
    m->rowver[k] = upsert ? v : 0;
}

static void key_name(int k, char *buf, size_t size)
{
    snprintf(buf, size, "K%07d", k);
}

/* Produce one payee event. amount: text of amount_limit. */
static void produce_event(core_kafka_producer_t *p, const char *topic, int seq, int k,
                          int64_t v, const char *op, int old_k, const char *amount)
{
    char text[2048], key[32], oldkey[48], err[512];
    key_name(k, key, sizeof(key));
    if (old_k >= 0) {
        oldkey[0] = '"';
        key_name(old_k, oldkey + 1, sizeof(oldkey) - 2);
        strcat(oldkey, "\"");
    } else {
        snprintf(oldkey, sizeof(oldkey), "null");
    }
    snprintf(text, sizeof(text),
             "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012d\",\"op\":\"%s\",\"kind\":"
             "\"CHANGE\",\"source\":\"test\",\"batch_id\":\"b1\",\"seq\":%d,"
             "\"event_time\":\"2026-11-22T10:00:00.000Z\",\"version\":%lld,\"old_key\":%s},"
             "\"payee_id\":\"%s\",\"name\":\"n%lld\",\"account_number\":\"0000000001\","
             "\"routing_number\":\"021000021\",\"iban\":null,\"country\":\"US\","
             "\"currency\":\"USD\",\"email\":null,\"amount_limit\":\"%s\",\"status\":\"ACTIVE\","
             "\"updated_at\":\"2026-11-22T08:30:00.000Z\"}",
             seq, op, seq, (long long)v, oldkey, key, (long long)v, amount);
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
    free(buf);
    avro_value_decref(&val);
    cJSON_Delete(j);
}

/* nevents events over about nkeys keys: adds, updates, deletes, moves,
 * out-of-order versions; bad: index of an event given an amount the test's
 * CHECK constraint refuses (-1: none): the last event of its key, right after
 * a valid update of it. Versions of one key are unique. */
static void produce_workload(core_kafka_producer_t *p, const char *topic, int nevents,
                             int nkeys, unsigned seed, model *m, int seq0, int bad, int *bad_key)
{
    if (!m->best) {
        m->nkeys_max = nkeys * 3 + nevents / 5 + 16;
        m->best = calloc((size_t)m->nkeys_max, sizeof(int64_t));
        m->present = calloc((size_t)m->nkeys_max, sizeof(bool));
        m->rowver = calloc((size_t)m->nkeys_max, sizeof(int64_t));
        m->nkeys = nkeys;
    }
    int *ooo = calloc((size_t)m->nkeys_max, sizeof(int));
    int last_k = 0;
    srand(seed);
    for (int j = 0; j < nevents; j++) {
        int seq = seq0 + j;
        int64_t v = (int64_t)seq * 16 + 16;
        int k = rand() % m->nkeys;
        int r = rand() % 100;
        /* the refused event follows a valid update of its key, which must
         * still be written though the two share a batch ... */
        if (bad >= 0 && j == bad - 1)
            r = 0;
        if (j == bad)
            k = last_k;
        /* ... and stays the last of its key: a newer event in the same
         * batch would make it stale (not tried, no DLQ), as it should */
        if (bad >= 0 && j > bad && k == *bad_key)
            k = (k + 1) % m->nkeys;
        last_k = k;
        if (j == bad) {
            produce_event(p, topic, seq, k, v, "UPDATE", -1, "9999999.00");
            *bad_key = k; /* refused: the model does not change */
            continue;
        }
        if (m->best[k] == 0 || r < 50) {
            produce_event(p, topic, seq, k, v, m->best[k] ? "UPDATE" : "ADD", -1, "10.00");
            model_apply(m, k, v, true);
            ooo[k] = 0;
        } else if (r < 65) {
            produce_event(p, topic, seq, k, v, "DELETE", -1, "10.00");
            model_apply(m, k, v, false);
            ooo[k] = 0;
        } else if (r < 80 && m->nkeys < m->nkeys_max) {
            int nk = m->nkeys++;
            produce_event(p, topic, seq, nk, v, "UPDATE", k, "10.00");
            model_apply(m, nk, v, true);
            model_apply(m, k, v, false);
            ooo[k] = 0;
        } else if (ooo[k] < 15) {
            /* an older version arriving late: must not win */
            int64_t ov = m->best[k] - 1 - ooo[k]++;
            produce_event(p, topic, seq, k, ov, "UPDATE", -1, "10.00");
            model_apply(m, k, ov, true);
        } else {
            produce_event(p, topic, seq, k, v, "UPDATE", -1, "10.00");
            model_apply(m, k, v, true);
            ooo[k] = 0;
        }
    }
    free(ooo);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 60000), 0);
    ck_assert_int_eq((int)core_kafka_producer_failed(p), 0);
}

static void model_free(model *m)
{
    free(m->best);
    free(m->present);
    free(m->rowver);
}

static int model_rows(const model *m)
{
    int n = 0;
    for (int k = 0; k < m->nkeys; k++)
        n += m->present[k];
    return n;
}

/* ---- PostgreSQL checks -------------------------------------------------- */

static PGconn *pg(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "postgres: %s", PQerrorMessage(c));
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Differences between the table and the model (0: exactly equal). -1 when
 * the table cannot be read now (server down). */
static int pg_diff(const char *conninfo, const char *schema, const model *m, char *why,
                   size_t why_size)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        snprintf(why, why_size, "unreachable");
        return -1;
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT payee_id, tb_version, name FROM \"%s\".payee", schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, why_size, "%s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return -1;
    }
    int diff = 0, rows = PQntuples(r);
    char *seen = calloc((size_t)m->nkeys_max, 1);
    why[0] = '\0';
    for (int i = 0; i < rows; i++) {
        int k = atoi(PQgetvalue(r, i, 0) + 1);
        long long v = atoll(PQgetvalue(r, i, 1));
        char name[32];
        snprintf(name, sizeof(name), "n%lld", v);
        if (k < 0 || k >= m->nkeys || !m->present[k] || m->rowver[k] != v ||
            strcmp(name, PQgetvalue(r, i, 2)) || seen[k]) {
            if (!diff)
                snprintf(why, why_size, "row %s v%lld unexpected (want present=%d v%lld)",
                         PQgetvalue(r, i, 0), v, k >= 0 && k < m->nkeys ? m->present[k] : -1,
                         k >= 0 && k < m->nkeys ? (long long)m->rowver[k] : -1LL);
            diff++;
        }
        if (k >= 0 && k < m->nkeys_max)
            seen[k] = 1;
    }
    int want = model_rows(m);
    if (rows != want) {
        if (!diff)
            snprintf(why, why_size, "%d rows, want %d", rows, want);
        diff += abs(rows - want) ? abs(rows - want) : 1;
    }
    free(seen);
    PQclear(r);
    PQfinish(c);
    return diff;
}

/* ---- the service -------------------------------------------------------- */

typedef struct run_opts {
    const char *suffix;
    const char *conninfo;
    const char *password;
    const char *schema;
    const char *sink;
    const char *mongo_db;
    const char *mongo_indexes; /* mongodb.indexes, or NULL */
    const char *mysql_db;      /* --sink mysql: mysql.database */
    int http_port;
    const char *batch_size;
    const char *timeout_ms;
    const char *topic_suffix;  /* NULL: the suffix */
    const char *instance;      /* group.instance.id; NULL: from the suffix */
    const char *extra[8];      /* more flags, NULL-terminated */
} run_opts;

static pid_t start_persister(const run_opts *o)
{
    char bin[1024], proto[1100], vs[128], ds[128], grp[128], aud[128], port[16];
    snprintf(bin, sizeof(bin), "%s/bin/svc-persister", tu_build_dir());
    snprintf(proto, sizeof(proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    snprintf(vs, sizeof(vs), ".valid_%s", o->topic_suffix ? o->topic_suffix : o->suffix);
    snprintf(ds, sizeof(ds), ".dlq_%s", o->suffix);
    snprintf(grp, sizeof(grp), "persister_%s", o->suffix);
    snprintf(aud, sizeof(aud), "audit_%s", o->suffix);
    snprintf(port, sizeof(port), "%d", o->http_port);
    char pw[256];
    snprintf(pw, sizeof(pw), "TB_PG_PASSWORD=%s", o->password ? o->password : "");
    char *envp[] = { proto, "PATH=/usr/bin:/bin", pw,
                     getenv("PERSISTER_DEBUG") ? "TB_LOG_LEVEL=debug" : "TB_LOG_LEVEL=warn",
                     "MONGOC_DISABLE_SHM=1", /* as the images: kill -9 leaves no shm file */
                     NULL };
    char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--dataset";
    argv[n++] = "payee";
    argv[n++] = "--sink";
    argv[n++] = (char *)(o->sink ? o->sink : "postgres");
    argv[n++] = "--create.tables";
    argv[n++] = "--topic.valid.suffix";
    argv[n++] = vs;
    argv[n++] = "--topic.dlq.suffix";
    argv[n++] = ds;
    argv[n++] = "--group.id";
    argv[n++] = grp;
    argv[n++] = "--audit.topic";
    argv[n++] = aud;
    argv[n++] = "--http.port";
    argv[n++] = port;
    argv[n++] = "--batch.size";
    argv[n++] = (char *)(o->batch_size ? o->batch_size : "1000");
    argv[n++] = "--batch.timeout.ms";
    argv[n++] = (char *)(o->timeout_ms ? o->timeout_ms : "200");
    argv[n++] = "--retry.base.ms";
    argv[n++] = "100";
    argv[n++] = "--retry.max.ms";
    argv[n++] = "2000";
    argv[n++] = "--breaker.open.ms";
    argv[n++] = "1000";
    /* a killed member leaves the group after 6 s, not 45 */
    argv[n++] = "--kafka.session.timeout.ms";
    argv[n++] = "6000";
    /* static membership: a restarted instance takes its partitions back at
     * once (as a pod restarted by Kubernetes would, with its own name) */
    char inst[128];
    snprintf(inst, sizeof(inst), "persister-%s", o->instance ? o->instance : o->suffix);
    argv[n++] = "--kafka.group.instance.id";
    argv[n++] = inst;
    if (o->conninfo) {
        argv[n++] = "--pg.conninfo";
        argv[n++] = (char *)o->conninfo;
    }
    if (o->schema) {
        argv[n++] = "--pg.schema";
        argv[n++] = (char *)o->schema;
    }
    if (o->mongo_db) {
        argv[n++] = "--mongodb.database";
        argv[n++] = (char *)o->mongo_db;
        argv[n++] = "--mongodb.write.concern";
        argv[n++] = "1";
        argv[n++] = "--mongodb.decimal128=false"; /* FerretDB 1.24 has no Decimal128 */
        if (o->mongo_indexes) {
            argv[n++] = "--mongodb.indexes";
            argv[n++] = (char *)o->mongo_indexes;
        }
    }
    if (o->mysql_db) {
        argv[n++] = "--mysql.database";
        argv[n++] = (char *)o->mysql_db;
        argv[n++] = "--mysql.password";
        argv[n++] = "tributary";
    }
    for (size_t i = 0; i < CORE_ARRAY_SIZE(o->extra) && o->extra[i]; i++)
        argv[n++] = (char *)o->extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execve(bin, argv, envp);
        _exit(127);
    }
    return pid;
}

static int stop_persister(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 600; i++) { /* up to 60 s */
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Wait until the table equals the model (deadline in ms). */
static void assert_alive(pid_t pid)
{
    int st;
    if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid)
        ck_abort_msg("svc-persister exited early: status %d", st);
}

static void wait_pg_equal(pid_t pid, const char *conninfo, const char *schema, const model *m,
                          int deadline_ms)
{
    char why[512] = "";
    int64_t end = core_mono_ms() + deadline_ms;
    int d = -1;
    while (core_mono_ms() < end) {
        d = pg_diff(conninfo, schema, m, why, sizeof(why));
        if (d == 0)
            return;
        assert_alive(pid);
        tu_sleep_ms(250);
    }
    ck_abort_msg("table %s.payee differs from the expected final state: %d differences (%s)",
                 schema, d, why);
}

static int http_port(void)
{
    return 20000 + (int)(getpid() % 10000);
}

/* ---- tests -------------------------------------------------------------- */

/* A test's names: a unique suffix, its input and DLQ topics, and the
 * schema (PostgreSQL) or database (MongoDB) it writes to. tag tells the
 * tests apart in the broker's and the databases' listings. */
typedef struct names {
    char u[48], topic[128], dlq[128], store[64];
} names;

static void names_init(names *n, char tag)
{
    snprintf(n->u, sizeof(n->u), "%c%s", tag, tu_unique());
    snprintf(n->topic, sizeof(n->topic), "payee.valid_%s", n->u);
    snprintf(n->dlq, sizeof(n->dlq), "payee.dlq_%s", n->u);
    snprintf(n->store, sizeof(n->store), "t_%s", n->u);
}

#define N_MAIN 100000
#define N_KILL 100000

START_TEST(pg_final_state_exact)
{
    names nm;
    names_init(&nm, 'p');
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_MAIN, N_MAIN / 4, 42, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .schema = nm.store, .password = "tributary",
                   .http_port = http_port() };
    pid_t pid = start_persister(&o);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 120000);
    ck_assert_int_eq(stop_persister(pid), 0);
    /* every column as the events carry it, not only key, version, name */
    PGconn *pc = pg(PG_MAIN);
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM \"%s\".payee WHERE NOT (account_number = '0000000001' AND "
             "routing_number = '021000021' AND iban IS NULL AND country = 'US' AND currency = "
             "'USD' AND email IS NULL AND amount_limit = 10.00 AND status = 'ACTIVE' AND "
             "updated_at = '2026-11-22T08:30:00Z' AND tb_batch = 'b1' AND tb_id LIKE "
             "'00000000-0000-4000-8000-%%')",
             nm.store);
    PGresult *qr = PQexec(pc, q);
    ck_assert_int_eq(PQresultStatus(qr), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(qr, 0, 0), "0");
    PQclear(qr);
    PQfinish(pc);
    /* nothing more arrives after a clean stop and a restart: idempotent */
    pid = start_persister(&o);
    tu_sleep_ms(1000);
    char why[256];
    ck_assert_int_eq(pg_diff(PG_MAIN, nm.store, &m, why, sizeof(why)), 0);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    tu_pg_drop_schema(nm.store);
}
END_TEST

/* Rows plus tombstones written so far (-1 before the tables exist). */
static long progress(const char *conninfo, const char *schema)
{
    char sql[256];
    long n = -1;
    PGconn *c = PQconnectdb(conninfo);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM \"%s\".payee) + (SELECT count(*) FROM "
             "\"%s\".payee_tombstone)",
             schema, schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

/* Rows plus tombstones written so far (-1 before the tables exist). */
static long pg_progress(const void *schema)
{
    return progress(PG_MAIN, schema);
}

/* Start svc-persister `times` times, each time kill -9 it at a random point
 * once it has made progress (what progress() counts grew). */
static void kill9_loop(const run_opts *o, long (*prog)(const void *), const void *arg, int times)
{
    srand((unsigned)time(NULL));
    for (int i = 0; i < times; i++) {
        pid_t pid = start_persister(o);
        long last = prog(arg);
        /* wait for the run to make progress, then kill at a random point */
        int64_t end = core_mono_ms() + 30000;
        while (prog(arg) <= last && core_mono_ms() < end)
            tu_sleep_ms(20);
        tu_sleep_ms(rand() % 400);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
}

START_TEST(pg_kill9_ten_times_exact)
{
    names nm;
    names_init(&nm, 'k');
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_KILL, N_KILL / 4, 7, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .schema = nm.store, .password = "tributary",
                   .http_port = http_port() + 1, .batch_size = "200", .timeout_ms = "100" };
    kill9_loop(&o, pg_progress, nm.store, 10);
    pid_t pid = start_persister(&o);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 120000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    tu_pg_drop_schema(nm.store);
}
END_TEST

/* Two instances share the partitions, then one stops: every rebalance
 * happens with batches in flight on the writer threads. */
START_TEST(pg_rebalance_with_batches_in_flight_exact)
{
    names nm;
    names_init(&nm, 'g');
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 4);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 60000, 15000, 21, &m, 0, -1, &bad_key);
    run_opts a = { .suffix = nm.u, .schema = nm.store, .password = "tributary",
                   .http_port = http_port() + 7, .batch_size = "300", .timeout_ms = "50",
                   .instance = "a" };
    run_opts b = a;
    b.instance = "b";
    b.http_port = a.http_port + 1;
    pid_t pa = start_persister(&a);
    long last = progress(PG_MAIN, nm.store);
    int64_t end = core_mono_ms() + 30000;
    while (progress(PG_MAIN, nm.store) <= last + 1000 && core_mono_ms() < end)
        tu_sleep_ms(20);
    pid_t pb = start_persister(&b); /* A gives up half its partitions */
    last = progress(PG_MAIN, nm.store);
    end = core_mono_ms() + 30000;
    while (progress(PG_MAIN, nm.store) <= last + 5000 && core_mono_ms() < end)
        tu_sleep_ms(20);
    ck_assert_int_eq(stop_persister(pa), 0); /* B takes them all */
    wait_pg_equal(pb, PG_MAIN, nm.store, &m, 120000);
    ck_assert_int_eq(stop_persister(pb), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    tu_pg_drop_schema(nm.store);
}
END_TEST

/* One value of a query on c ("" when no row). */
static void pg_value(PGconn *c, const char *sql, char *out, size_t size)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

/* The move of K0000002 to K0000003 (v48) deletes K0000002 while another
 * instance, in a transaction not yet committed, upserts K0000002 at v32
 * (the test plays that instance, holding the key lock instances share).
 * The DELETE cannot see the uncommitted row and the other merge cannot see
 * the uncommitted tombstone: without the key lock both commit and the
 * moved-away row survives (K0015675 in pg_rebalance_with_batches_in_flight_
 * exact). The persister must wait for the other transaction, then delete. */
START_TEST(pg_moved_key_delete_waits_for_concurrent_upsert)
{
    names nm;
    names_init(&nm, 'm');
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 1);
    int64_t best[8] = { 0 }, rowver[8] = { 0 };
    bool present[8] = { 0 };
    model m = { .nkeys_max = 8, .best = best, .present = present, .rowver = rowver, .nkeys = 4 };
    produce_event(p, nm.topic, 0, 1, 16, "ADD", -1, "10.00");
    model_apply(&m, 1, 16, true);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 60000), 0);
    run_opts o = { .suffix = nm.u, .schema = nm.store, .password = "tributary",
                   .http_port = http_port() + 11 };
    pid_t pid = start_persister(&o);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 60000);

    PGconn *c = pg(PG_MAIN);
    char sql[1024], v[64];
    pg_exec(c, "BEGIN");
    pg_exec(c, "SELECT pg_advisory_xact_lock(hashtextextended('payee' || chr(31) || "
               "'K0000002', 0))");
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE tb_other ON COMMIT DROP AS SELECT * FROM \"%s\".payee WHERE "
             "payee_id = 'K0000001'; UPDATE tb_other SET payee_id = 'K0000002', tb_version = 32; "
             "INSERT INTO \"%s\".payee SELECT * FROM tb_other",
             nm.store, nm.store);
    pg_exec(c, sql);
    model_apply(&m, 2, 32, true);

    produce_event(p, nm.topic, 2, 3, 48, "UPDATE", 2, "10.00");
    model_apply(&m, 3, 48, true);
    model_apply(&m, 2, 48, false);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 60000), 0);
    /* until the persister either waits for the key or has written the move */
    PGconn *w = pg(PG_MAIN);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT "
             "granted) + (SELECT count(*) FROM \"%s\".payee WHERE payee_id = 'K0000003')",
             nm.store);
    int64_t end = core_mono_ms() + 60000;
    do {
        assert_alive(pid);
        tu_sleep_ms(50);
        pg_value(w, sql, v, sizeof(v));
    } while (!strcmp(v, "0") && core_mono_ms() < end);
    ck_assert_str_ne(v, "0");
    PQfinish(w);
    pg_exec(c, "COMMIT");
    PQfinish(c);

    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 60000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    tu_pg_drop_schema(nm.store);
}
END_TEST

/* Count the records of a topic (from the beginning) and find key. */
static int count_topic(const char *topic, const char *key, char *hdr_msg, size_t hdr_size,
                       int want, int deadline_ms)
{
    char err[512], grp[128];
    snprintf(grp, sizeof(grp), "count_%s", tu_unique());
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    core_kafka_consumer_opts co = { .defaults = props, .ndefaults = 1, .group_id = grp };
    core_kafka_consumer_t *c = core_kafka_consumer_new(&co, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    const char *topics[] = { topic };
    ck_assert_int_eq(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)), CORE_OK);
    int n = 0, found = 0;
    int64_t end = core_mono_ms() + deadline_ms;
    while (core_mono_ms() < end && n < want) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (!m->err) {
            n++;
            if (key && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len)) {
                found++;
                rd_kafka_headers_t *h = NULL;
                const void *v;
                size_t vl;
                if (!rd_kafka_message_headers(m, &h) &&
                    !rd_kafka_header_get_last(h, "__connect.errors.exception.message", &v, &vl))
                    snprintf(hdr_msg, hdr_size, "%.*s", (int)vl, (const char *)v);
            }
        }
        rd_kafka_message_destroy(m);
    }
    /* a little longer: anything beyond want would be a duplicate */
    int64_t extra = core_mono_ms() + 1500;
    while (core_mono_ms() < extra) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 200);
        if (m) {
            if (!m->err)
                n++;
            rd_kafka_message_destroy(m);
        }
    }
    core_kafka_consumer_free(c);
    return key ? (found == 1 ? n : -found - 100) : n;
}

/* What the audit topic says about a run: one event per consumed record. */
typedef struct audit_tally {
    int events, persisted, stale, dead, other;
    int dup_ids;        /* an id seen twice */
    int bad_digest;     /* a digest that is not 64 hex digits */
    int wrong_stage;
    char dead_key[64];  /* key and reason of the last dead event */
    char dead_reason[512];
} audit_tally;

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read topic from the start until want events (or the deadline), then a
 * little longer (anything beyond want is a duplicate), and tally them. */
static void audit_read(const char *topic, int want, int deadline_ms, audit_tally *t)
{
    char err[512], grp[128];
    memset(t, 0, sizeof(*t));
    snprintf(grp, sizeof(grp), "audit_%s", tu_unique());
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    core_kafka_consumer_opts co = { .defaults = props, .ndefaults = 1, .group_id = grp };
    core_kafka_consumer_t *c = core_kafka_consumer_new(&co, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    const char *topics[] = { topic };
    ck_assert_int_eq(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)), CORE_OK);
    size_t cap = (size_t)want + 1024;
    char **ids = calloc(cap, sizeof(*ids));
    ck_assert_ptr_nonnull(ids);
    int64_t end = core_mono_ms() + deadline_ms, extra = -1;
    while (core_mono_ms() < (extra > 0 ? extra : end)) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (!m->err) {
            const core_avro_schema_t *s = NULL;
            avro_value_t v;
            ck_assert_msg(core_avro_decode(cat, m->payload, m->len, &s, &v, err, sizeof(err)) ==
                              CORE_OK,
                          "audit event: %s", err);
            cJSON *j = core_avro_to_json(s, &v, err, sizeof(err));
            ck_assert_msg(j != NULL, "audit event: %s", err);
            const char *outcome = cJSON_GetStringValue(cJSON_GetObjectItem(j, "outcome"));
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
            const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(j, "stage"));
            const char *dg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "digest"));
            ck_assert_ptr_nonnull(outcome);
            ck_assert_ptr_nonnull(id);
            if (!stage || strcmp(stage, "persister"))
                t->wrong_stage++;
            if (!dg || strlen(dg) != 64 || strspn(dg, "0123456789abcdef") != 64)
                t->bad_digest++;
            if (!strcmp(outcome, "persisted")) {
                t->persisted++;
            } else if (!strcmp(outcome, "stale_skipped")) {
                t->stale++;
            } else if (!strcmp(outcome, "dead")) {
                t->dead++;
                const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(j, "key"));
                const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(j, "reason"));
                snprintf(t->dead_key, sizeof(t->dead_key), "%s", k ? k : "");
                snprintf(t->dead_reason, sizeof(t->dead_reason), "%s", r ? r : "");
            } else {
                t->other++;
            }
            if ((size_t)t->events < cap)
                ids[t->events] = strdup(id);
            t->events++;
            if (t->events == want)
                extra = core_mono_ms() + 1500;
            cJSON_Delete(j);
            avro_value_decref(&v);
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_free(c);
    size_t n = (size_t)t->events < cap ? (size_t)t->events : cap;
    qsort(ids, n, sizeof(*ids), str_cmp);
    for (size_t i = 1; i < n; i++)
        t->dup_ids += !strcmp(ids[i - 1], ids[i]);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

START_TEST(pg_bad_row_to_dlq_rest_written)
{
    char sql[512];
    names nm;
    names_init(&nm, 'b');
    /* the table from `svc-persister schema-sql`, plus a constraint of the
     * operator's that one row breaks */
    char bin[1024], proto[1100], *out = NULL, *err = NULL;
    snprintf(bin, sizeof(bin), "%s/bin/svc-persister", tu_build_dir());
    snprintf(proto, sizeof(proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    char *argv[] = { bin, "schema-sql", "--dataset", "payee", "--pg.schema", nm.store, NULL };
    char *envp[] = { proto, NULL };
    ck_assert_int_eq(tu_run_cmd(argv, envp, &out, &err, 20000), 0);
    ck_assert_ptr_nonnull(strstr(out, "CREATE TABLE IF NOT EXISTS"));
    PGconn *c = pg(PG_MAIN);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA \"%s\"", nm.store);
    pg_exec(c, sql);
    pg_exec(c, out);
    snprintf(sql, sizeof(sql),
             "ALTER TABLE \"%s\".payee ADD CONSTRAINT amount_below_million CHECK (amount_limit "
             "< 1000000)",
             nm.store);
    pg_exec(c, sql);
    free(out);
    free(err);

    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    tu_topic_create(nm.dlq, 1); /* as deployments do: no wait for its metadata */
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 5000, 1000, 11, &m, 0, 2500, &bad_key);
    ck_assert_int_ge(bad_key, 0);
    run_opts o = { .suffix = nm.u, .schema = nm.store, .password = "tributary",
                   .http_port = http_port() + 2 };
    pid_t pid = start_persister(&o);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 60000);
    char key[32], msg[512] = "";
    key_name(bad_key, key, sizeof(key));
    int n = count_topic(nm.dlq, key, msg, sizeof(msg), 1, 30000);
    ck_assert_msg(n == 1, "dlq holds %d records (want exactly the bad one)", n);
    ck_assert_msg(strstr(msg, "amount_below_million") != NULL, "DLQ reason: %s", msg);
    /* the condition and the constraint, never the row (issue 15 item 8):
     * PostgreSQL's DETAIL says "Failing row contains (..., 9999999.00, ...)" */
    ck_assert_msg(strstr(msg, "postgres 23514 check_violation") != NULL, "DLQ reason: %s", msg);
    ck_assert_msg(!strstr(msg, "9999999") && !strstr(msg, "Failing row"), "DLQ reason: %s", msg);
    ck_assert_int_eq(stop_persister(pid), 0);
    /* audit: one event per record, exactly; the bad row is the one dead */
    char aud[128];
    audit_tally t;
    snprintf(aud, sizeof(aud), "audit_%s", nm.u);
    audit_read(aud, 5000, 30000, &t);
    ck_assert_int_eq(t.events, 5000);
    ck_assert_int_eq(t.dup_ids, 0);
    ck_assert_int_eq(t.dead, 1);
    ck_assert_str_eq(t.dead_key, key);
    ck_assert_msg(strstr(t.dead_reason, "amount_below_million") != NULL, "reason: %s",
                  t.dead_reason);
    ck_assert_msg(!strstr(t.dead_reason, "9999999"), "reason: %s", t.dead_reason);
    ck_assert_int_eq(t.persisted + t.stale, 4999);
    ck_assert_int_ge(t.stale, 1); /* the workload has late, older versions */
    ck_assert_int_eq(t.other, 0);
    ck_assert_int_eq(t.bad_digest, 0);
    ck_assert_int_eq(t.wrong_stage, 0);
    core_kafka_producer_free(p);
    model_free(&m);
    snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", nm.store);
    pg_exec(c, sql);
    PQfinish(c);
}
END_TEST

/* ---- a private PostgreSQL cluster for the outage ------------------------ */

static int run_sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}


START_TEST(pg_outage_exact_memory_bounded)
{
    char dir[256], cmd[1024], conninfo[256];
    int port = 25000 + (int)(getpid() % 5000);
    names nm;
    names_init(&nm, 'o');
    snprintf(dir, sizeof(dir), "/tmp/tb_pg_%s", nm.u);
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=postgres user=postgres",
             port);
    const char *bin = "/usr/lib/postgresql/15/bin";
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && chown postgres %s && runuser -u postgres -- %s/initdb -D %s/data "
             "-U postgres --auth=trust >/dev/null 2>&1",
             dir, dir, bin, dir);
    ck_assert_int_eq(run_sh(cmd), 0);
    char start[1024], stop[1024];
    snprintf(start, sizeof(start),
             "runuser -u postgres -- %s/pg_ctl -D %s/data -w -l %s/log -o '-p %d -k %s -c "
             "listen_addresses=127.0.0.1' start >/dev/null",
             bin, dir, dir, port, dir);
    snprintf(stop, sizeof(stop),
             "runuser -u postgres -- %s/pg_ctl -D %s/data -w -m immediate stop >/dev/null", bin,
             dir);
    ck_assert_int_eq(run_sh(start), 0);

    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 10000, 2500, 5, &m, 0, -1, &bad_key);
    int hport = http_port() + 3;
    run_opts o = { .suffix = nm.u, .conninfo = conninfo, .schema = "public",
                   .http_port = hport, .batch_size = "500", .timeout_ms = "100" };
    pid_t pid = start_persister(&o);
    wait_pg_equal(pid, conninfo, "public", &m, 60000);

    /* the database goes away; records keep arriving */
    ck_assert_int_eq(run_sh(stop), 0);
    produce_workload(p, nm.topic, 10000, 2500, 6, &m, 10000, -1, &bad_key);
    int64_t end = core_mono_ms() + 30000; /* 30 s down, as the issue asks */
    double depth_max = 0, retries = 0;
    while (core_mono_ms() < end) {
        double d = 0;
        if (tu_metric_sum(hport, "tributary_persister_buffer_records", "", &d) && d > depth_max)
            depth_max = d;
        tu_sleep_ms(200);
    }
    tu_metric_sum(hport, "tributary_persister_retries_total{sink=\"postgres\"}", "", &retries);
    /* bounded: the held batch and one more being filled */
    ck_assert_msg(depth_max <= 1000, "buffer grew to %.0f records (batch.size 500)", depth_max);
    ck_assert_msg(depth_max >= 1, "nothing buffered during the outage?");
    ck_assert_msg(retries >= 2, "only %.0f retries during the outage", retries);
    char why[128];
    ck_assert_int_eq(pg_diff(conninfo, "public", &m, why, sizeof(why)), -1); /* still down */
    ck_assert_int_eq(run_sh(start), 0);
    wait_pg_equal(pid, conninfo, "public", &m, 90000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    run_sh(stop);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run_sh(cmd);
}
END_TEST

/* ---- the Redis backup of the buffer (seed 004) ------------------------------ */

/* Keys msg:buffer:<inst>:* in the stack's Redis; *hash_ok: every one is a
 * hash with topic, partition, offset, key and a non-empty value. */
static long backup_keys(const char *inst, bool *hash_ok)
{
    redisContext *r = redisConnect("127.0.0.1", 6379);
    ck_assert_msg(r && !r->err, "redis: %s", r ? r->errstr : "no memory");
    long n = 0;
    char cursor[32] = "0";
    if (hash_ok)
        *hash_ok = true;
    do {
        redisReply *rep = redisCommand(r, "SCAN %s MATCH msg:buffer:%s:* COUNT 1000", cursor, inst);
        ck_assert(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2);
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            n++;
            if (!hash_ok)
                continue;
            redisReply *h = redisCommand(r, "HMGET %s topic partition offset key value",
                                         rep->element[1]->element[i]->str);
            ck_assert(h && h->type == REDIS_REPLY_ARRAY && h->elements == 5);
            for (size_t f = 0; f < 5; f++)
                if (h->element[f]->type != REDIS_REPLY_STRING || h->element[f]->len == 0)
                    *hash_ok = false;
            freeReplyObject(h);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0"));
    redisFree(r);
    return n;
}

static long pg_count(const char *schema)
{
    char sql[160];
    long n = -1;
    PGconn *c = pg(PG_MAIN);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\".payee", schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

START_TEST(pg_redis_backup_restored_after_kill9)
{
    char inst[96], why[256];
    names nm;
    names_init(&nm, 'r');
    snprintf(inst, sizeof(inst), "persister-bk-%s", nm.u);
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 2);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 1500, 400, 13, &m, 0, -1, &bad_key);

    /* 1. a batch far from full and a timeout far away: everything consumed
     *    sits in the buffer, mirrored in Redis, nothing in the table */
    int hport = http_port() + 5;
    run_opts o = { .suffix = nm.u, .schema = nm.store, .password = "tributary", .http_port = hport,
                   .batch_size = "5000", .timeout_ms = "600000",
                   .extra = { "--buffer.backup", "--instance.id", inst } };
    pid_t pid = start_persister(&o);
    bool hash_ok = false;
    long nk = 0;
    int64_t end = core_mono_ms() + 60000;
    while ((nk = backup_keys(inst, NULL)) < 1500 && core_mono_ms() < end) {
        assert_alive(pid);
        tu_sleep_ms(200);
    }
    ck_assert_int_eq(nk, 1500);
    ck_assert_int_eq(backup_keys(inst, &hash_ok), 1500);
    ck_assert_msg(hash_ok, "a backup hash lacks a field");
    ck_assert_int_eq(pg_count(nm.store), 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    /* 2. the same instance restarts in a fresh consumer group that starts
     *    at the end of the topic: the table can only come from the backup,
     *    which is emptied once written */
    run_opts o2 = o;
    char u2[64];
    snprintf(u2, sizeof(u2), "%s_2", nm.u);
    o2.suffix = u2;         /* another group, audit and DLQ topic */
    o2.topic_suffix = nm.u; /* the same records topic */
    o2.timeout_ms = "100";
    o2.batch_size = "1000"; /* the 1,500 restored records take two batches */
    o2.extra[3] = "--kafka.auto.offset.reset";
    o2.extra[4] = "latest";
    pid = start_persister(&o2);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 60000);
    end = core_mono_ms() + 20000;
    while ((nk = backup_keys(inst, NULL)) > 0 && core_mono_ms() < end)
        tu_sleep_ms(100);
    ck_assert_int_eq(nk, 0);
    ck_assert_int_eq(stop_persister(pid), 0);

    /* 3. Redis unreachable: the buffer stays in memory, a metric counts it,
     *    rows are still written (Kafka redelivers the 1,500: idempotent) */
    run_opts o3 = o;
    o3.timeout_ms = "100";
    o3.http_port = hport + 1;
    o3.extra[3] = "--redis.port";
    o3.extra[4] = "1";
    produce_workload(p, nm.topic, 500, 400, 14, &m, 1500, -1, &bad_key); /* more to write */
    pid = start_persister(&o3);
    wait_pg_equal(pid, PG_MAIN, nm.store, &m, 60000);
    double errs = 0;
    end = core_mono_ms() + 10000;
    while ((!tu_metric_sum(o3.http_port, "tributary_persister_backup_errors_total", "", &errs) ||
            errs < 1) && core_mono_ms() < end)
        tu_sleep_ms(100);
    ck_assert_msg(errs >= 1, "backup errors counted: %.0f", errs);
    ck_assert_int_eq(stop_persister(pid), 0);
    ck_assert_int_eq(pg_diff(PG_MAIN, nm.store, &m, why, sizeof(why)), 0);

    core_kafka_producer_free(p);
    model_free(&m);
    tu_pg_drop_schema(nm.store);
}
END_TEST

/* ---- metrics over HTTP ---------------------------------------------------- */

/* ---- MongoDB (FerretDB) --------------------------------------------------- */

#define MONGO_URI "mongodb://127.0.0.1:27017/?serverSelectionTimeoutMS=5000"

/* Differences between the collection and the model (0: exactly equal; -1:
 * unreadable now). Documents whose _id is not a workload key (K...) are
 * the test's own (the bad-row test's blocker) and left out. */
static int mongo_diff(const char *db, const model *m, char *why, size_t why_size)
{
    mongoc_client_t *cl = mongoc_client_new(MONGO_URI);
    mongoc_collection_t *coll = mongoc_client_get_collection(cl, db, "payee");
    bson_t q = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("batchSize", BCON_INT32(10000));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &q, opts, NULL);
    const bson_t *d;
    int rows = 0, diff = 0;
    char *seen = calloc((size_t)m->nkeys_max, 1);
    why[0] = '\0';
    while (mongoc_cursor_next(cur, &d)) {
        bson_iter_t it;
        const char *id = "";
        const char *name = "";
        int64_t v = -1;
        if (bson_iter_init_find(&it, d, "_id") && BSON_ITER_HOLDS_UTF8(&it))
            id = bson_iter_utf8(&it, NULL);
        if (id[0] != 'K')
            continue;
        if (bson_iter_init_find(&it, d, "tb_version"))
            v = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, d, "name") && BSON_ITER_HOLDS_UTF8(&it))
            name = bson_iter_utf8(&it, NULL);
        char want_name[32];
        snprintf(want_name, sizeof(want_name), "n%lld", (long long)v);
        int k = atoi(id + 1);
        rows++;
        if (k < 0 || k >= m->nkeys || !m->present[k] || m->rowver[k] != v ||
            strcmp(name, want_name) || seen[k]) {
            if (!diff)
                snprintf(why, why_size, "doc %s v%lld unexpected (want present=%d v%lld)", id,
                         (long long)v, k >= 0 && k < m->nkeys ? m->present[k] : -1,
                         k >= 0 && k < m->nkeys ? (long long)m->rowver[k] : -1LL);
            diff++;
        }
        if (k >= 0 && k < m->nkeys_max)
            seen[k] = 1;
    }
    bson_error_t err;
    if (mongoc_cursor_error(cur, &err)) {
        snprintf(why, why_size, "%s", err.message);
        diff = -1;
    } else if (rows != model_rows(m)) {
        if (!diff)
            snprintf(why, why_size, "%d documents, want %d", rows, model_rows(m));
        diff += abs(rows - model_rows(m));
    }
    free(seen);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&q);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(cl);
    return diff;
}

/* Documents in the collection and its tombstones (-1: unreadable). */
/* Records the running svc-persister on port *portp has handled (written,
 * stale or dead; 0 before it has, or while it starts). Cheap, unlike
 * counting documents: FerretDB 1.x answers a count with a full scan. */
static long run_progress(const void *portp)
{
    static const char *const outcome[] = { "written", "stale", "dead" };
    int port = *(const int *)portp;
    long total = 0;
    for (size_t i = 0; i < 3; i++) {
        char name[160];
        double v = 0;
        snprintf(name, sizeof(name),
                 "tributary_persister_rows_total{dataset=\"payee\",sink=\"mongodb\","
                 "outcome=\"%s\"}",
                 outcome[i]);
        if (tu_metric_sum(port, name, "", &v))
            total += (long)v;
    }
    return total;
}

/* Wait until the collection equals the model. Reading every document
 * costs FerretDB a full scan: compare only once the service on port has
 * been idle for 2 s (nothing more handled, nothing buffered). */
static void wait_mongo_equal(pid_t pid, int port, const char *db, const model *m,
                             int deadline_ms)
{
    char why[512] = "not compared yet";
    int64_t end = core_mono_ms() + deadline_ms;
    int d = -1;
    long before = -1;
    while (core_mono_ms() < end) {
        long now = run_progress(&port);
        double buffered = -1;
        tu_metric_sum(port, "tributary_persister_buffer_records", "", &buffered);
        if (now == before && buffered == 0) {
            d = mongo_diff(db, m, why, sizeof(why));
            if (d == 0)
                return;
        }
        before = now;
        assert_alive(pid);
        tu_sleep_ms(2000);
    }
    d = mongo_diff(db, m, why, sizeof(why));
    if (d == 0)
        return;
    ck_abort_msg("collection %s.payee differs from the expected final state: %d differences (%s)",
                 db, d, why);
}

static void mongo_drop_db(const char *db)
{
    mongoc_client_t *cl = mongoc_client_new(MONGO_URI);
    mongoc_database_t *mdb = mongoc_client_get_database(cl, db);
    mongoc_database_drop(mdb, NULL);
    mongoc_database_destroy(mdb);
    mongoc_client_destroy(cl);
}

#define N_MONGO 100000
/* FerretDB 1.24 takes about 1-2 ms per guarded write (see
 * docs/svc-persister.md): the 100,000 events go over fewer keys than the
 * PostgreSQL runs', in large batches, so that most of a batch's events meet
 * their newer versions in the batch and the database sees about 40,000
 * writes. Out-of-order versions, deletes and moves still cross batches. */
#define N_MONGO_KEYS 2000

/* 100,000 events; the service is stopped (SIGTERM) and started again in the
 * middle of the stream (this once left about 10% of the keys at an older
 * version), then once more after the end: exact, and nothing changes. */
START_TEST(mongo_final_state_exact_across_restart)
{
    char why[512] = "";
    names nm;
    names_init(&nm, 'm');
    mongoc_init();
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_MONGO, N_MONGO_KEYS, 3, &m, 0, -1, &bad_key);
    /* a batch takes FerretDB longer than the grace period of a stop: the
     * batch being written is given up (its records come again) */
    run_opts o = { .suffix = nm.u, .sink = "mongodb", .mongo_db = nm.store,
                   .http_port = http_port() + 4, .batch_size = "10000", .timeout_ms = "200",
                   .extra = { "--shutdown.grace.ms", "2000" } };
    pid_t pid = start_persister(&o);
    /* stop mid-stream, once the run has written something */
    int64_t end = core_mono_ms() + 60000;
    while (run_progress(&o.http_port) < N_MONGO / 40 && core_mono_ms() < end) {
        assert_alive(pid);
        tu_sleep_ms(100);
    }
    int64_t t0 = core_mono_ms();
    ck_assert_int_eq(stop_persister(pid), 0);
    ck_assert_msg(core_mono_ms() - t0 < 15000,
                  "a stop with shutdown.grace.ms=2000 took %lld ms",
                  (long long)(core_mono_ms() - t0));
    pid = start_persister(&o);
    wait_mongo_equal(pid, o.http_port, nm.store, &m, 550000);
    ck_assert_int_eq(stop_persister(pid), 0);
    /* nothing more arrives after a clean stop and a restart: idempotent */
    pid = start_persister(&o);
    tu_sleep_ms(1000);
    ck_assert_msg(mongo_diff(nm.store, &m, why, sizeof(why)) == 0, "after restart: %s", why);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    mongo_drop_db(nm.store);
    mongoc_cleanup();
}
END_TEST

START_TEST(mongo_kill9_ten_times_exact)
{
    names nm;
    names_init(&nm, 'q');
    mongoc_init();
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_MONGO, N_MONGO_KEYS, 8, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .sink = "mongodb", .mongo_db = nm.store,
                   .http_port = http_port() + 5, .batch_size = "5000", .timeout_ms = "200" };
    kill9_loop(&o, run_progress, &o.http_port, 10);
    pid_t pid = start_persister(&o);
    wait_mongo_equal(pid, o.http_port, nm.store, &m, 550000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    mongo_drop_db(nm.store);
    mongoc_cleanup();
}
END_TEST

/* A dataset without deletes has no tombstone: upserts are inserted first.
 * New keys, then newer versions of half of them and older ones (stale) of
 * the other half, so that most inserts meet their _id; then a second group
 * replays the whole topic over the collection: exact both times. */
START_TEST(mongo_without_deletes_inserted_first_exact)
{
    enum { NK = 1500 };
    char u2[56];
    names nm;
    names_init(&nm, 'w');
    snprintf(u2, sizeof(u2), "%s_again", nm.u);
    mongoc_init();
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 2);
    model m = { .nkeys_max = NK, .nkeys = NK };
    m.best = calloc(NK, sizeof(int64_t));
    m.present = calloc(NK, sizeof(bool));
    m.rowver = calloc(NK, sizeof(int64_t));
    int seq = 0;
    for (int k = 0; k < NK; k++, seq++) {
        produce_event(p, nm.topic, seq, k, (int64_t)seq * 16 + 16, "ADD", -1, "10.00");
        model_apply(&m, k, (int64_t)seq * 16 + 16, true);
    }
    for (int k = 0; k < NK; k++, seq++) {
        int64_t v = k % 2 ? m.best[k] - 1 : (int64_t)seq * 16 + 16;
        produce_event(p, nm.topic, seq, k, v, "UPDATE", -1, "10.00");
        model_apply(&m, k, v, true);
    }
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 60000), 0);
    run_opts o = { .suffix = nm.u, .sink = "mongodb", .mongo_db = nm.store,
                   .http_port = http_port() + 9, .batch_size = "500", .timeout_ms = "100" };
    pid_t pid = start_persister(&o);
    wait_mongo_equal(pid, o.http_port, nm.store, &m, 120000);
    ck_assert_int_eq(stop_persister(pid), 0);
    run_opts again = o; /* another group: every event once more */
    again.suffix = u2;
    again.topic_suffix = nm.u;
    again.http_port = o.http_port + 1;
    pid = start_persister(&again);
    long want = 2 * NK, done = 0;
    int64_t end = core_mono_ms() + 120000;
    while ((done = run_progress(&again.http_port)) < want && core_mono_ms() < end) {
        assert_alive(pid);
        tu_sleep_ms(200);
    }
    ck_assert_msg(done >= want, "the replay handled %ld of %ld events", done, want);
    wait_mongo_equal(pid, again.http_port, nm.store, &m, 60000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    mongo_drop_db(nm.store);
    mongoc_cleanup();
}
END_TEST

/* The operator's unique index on name (mongodb.indexes payee:name:unique)
 * and a document of the test's already holding the name the planted event
 * carries: FerretDB refuses that one document (E11000 on the index); it
 * goes to the DLQ, every other one is written. */
START_TEST(mongo_bad_row_to_dlq_rest_written)
{
    names nm;
    names_init(&nm, 'r');
    mongoc_init();
    const int nev = 5000, bad = 2500;
    /* the planted event is the bad-th: version bad * 16 + 16, name "n<version>" */
    char blocker_name[32];
    snprintf(blocker_name, sizeof(blocker_name), "n%d", bad * 16 + 16);
    mongoc_client_t *cl = mongoc_client_new(MONGO_URI);
    mongoc_collection_t *coll = mongoc_client_get_collection(cl, nm.store, "payee");
    bson_t *blocker = BCON_NEW("_id", BCON_UTF8("blocker"), "name", BCON_UTF8(blocker_name));
    bson_error_t err;
    ck_assert_msg(mongoc_collection_insert_one(coll, blocker, NULL, NULL, &err), "%s", err.message);
    bson_destroy(blocker);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(cl);

    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, nev, nev / 5, 11, &m, 0, bad, &bad_key);
    ck_assert_int_ge(bad_key, 0);
    run_opts o = { .suffix = nm.u, .sink = "mongodb", .mongo_db = nm.store,
                   .mongo_indexes = "payee:name:unique", .http_port = http_port() + 6 };
    pid_t pid = start_persister(&o);
    wait_mongo_equal(pid, o.http_port, nm.store, &m, 90000);
    char key[32], msg[512] = "";
    key_name(bad_key, key, sizeof(key));
    int n = count_topic(nm.dlq, key, msg, sizeof(msg), 1, 30000);
    ck_assert_msg(n == 1, "dlq holds %d records (want exactly the bad one)", n);
    ck_assert_msg(strstr(msg, "11000") != NULL, "DLQ reason: %s", msg);
    /* the code and the index, never the duplicate name (issue 15 item 8) */
    ck_assert_msg(strstr(msg, "duplicate key") != NULL && !strstr(msg, blocker_name),
                  "DLQ reason: %s", msg);

    /* the same refusal on a guarded replace: a stored key updated onto a
     * second blocker's name (FerretDB fails the whole update command, not
     * one op; it must not pass for an outage) */
    int kp = -1;
    for (int k = 0; k < m.nkeys && kp < 0; k++)
        if (m.present[k] && k != bad_key)
            kp = k;
    ck_assert_int_ge(kp, 0);
    int64_t v2 = (int64_t)(nev + 100) * 16 + 16;
    snprintf(blocker_name, sizeof(blocker_name), "n%lld", (long long)v2);
    cl = mongoc_client_new(MONGO_URI);
    coll = mongoc_client_get_collection(cl, nm.store, "payee");
    blocker = BCON_NEW("_id", BCON_UTF8("blocker2"), "name", BCON_UTF8(blocker_name));
    ck_assert_msg(mongoc_collection_insert_one(coll, blocker, NULL, NULL, &err), "%s", err.message);
    bson_destroy(blocker);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(cl);
    produce_event(p, nm.topic, nev + 100, kp, v2, "UPDATE", -1, "10.00");
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    key_name(kp, key, sizeof(key));
    msg[0] = '\0';
    n = count_topic(nm.dlq, key, msg, sizeof(msg), 2, 60000);
    ck_assert_msg(n == 2, "dlq holds %d records (want the two refused ones)", n);
    ck_assert_msg(strstr(msg, "11000") != NULL, "DLQ reason: %s", msg);
    ck_assert_msg(strstr(msg, "unique_violation") != NULL && !strstr(msg, blocker_name),
                  "DLQ reason: %s", msg);
    wait_mongo_equal(pid, o.http_port, nm.store, &m, 30000); /* kp unchanged */
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    mongo_drop_db(nm.store);
    mongoc_cleanup();
}
END_TEST

/* ---- MySQL / MariaDB (the stack's, 127.0.0.1:3306) ----------------------- */

/* A connection to the stack's MariaDB (db: NULL for none), or NULL while it
 * is down. */
static MYSQL *my_conn(const char *db)
{
    MYSQL *c = mysql_init(NULL);
    unsigned int t = 3;
    ck_assert_ptr_nonnull(c);
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &t);
    if (!mysql_real_connect(c, "127.0.0.1", "tributary", "tributary", db, 3306, NULL, 0)) {
        mysql_close(c);
        return NULL;
    }
    return c;
}

static void my_exec(MYSQL *c, const char *sql)
{
    ck_assert_msg(mysql_query(c, sql) == 0, "%s: %s", sql, mysql_error(c));
    MYSQL_RES *r = mysql_store_result(c);
    if (r)
        mysql_free_result(r);
}

static void my_database(const char *db, bool create)
{
    char sql[160];
    MYSQL *c = my_conn(NULL);
    ck_assert_msg(c != NULL, "mariadb at 127.0.0.1:3306 does not answer");
    snprintf(sql, sizeof(sql), create ? "CREATE DATABASE `%s`" : "DROP DATABASE `%s`", db);
    my_exec(c, sql);
    mysql_close(c);
}

/* One value of a query ("" when no row; NULL when it cannot be asked). */
static char *my_value(MYSQL *c, const char *sql, char *out, size_t size)
{
    if (mysql_query(c, sql))
        return NULL;
    MYSQL_RES *r = mysql_store_result(c);
    if (!r)
        return NULL;
    MYSQL_ROW row = mysql_fetch_row(r);
    snprintf(out, size, "%s", row && row[0] ? row[0] : "");
    mysql_free_result(r);
    return out;
}

/* Differences between db.payee and the model (0: exactly equal; -1: it
 * cannot be read now). */
static int my_diff(const char *db, const model *m, char *why, size_t why_size)
{
    MYSQL *c = my_conn(db);
    if (!c) {
        snprintf(why, why_size, "unreachable");
        return -1;
    }
    MYSQL_RES *r = NULL;
    if (mysql_query(c, "SELECT payee_id, tb_version, name FROM payee") ||
        !(r = mysql_store_result(c))) {
        snprintf(why, why_size, "%s", mysql_error(c));
        mysql_close(c);
        return -1;
    }
    int diff = 0, rows = 0;
    char *seen = calloc((size_t)m->nkeys_max, 1);
    MYSQL_ROW row;
    why[0] = '\0';
    while ((row = mysql_fetch_row(r))) {
        if (row[0][0] != 'K')
            continue; /* the test's own rows (the unique key's blocker) */
        int k = atoi(row[0] + 1);
        long long v = atoll(row[1]);
        char name[32];
        snprintf(name, sizeof(name), "n%lld", v);
        rows++;
        if (k < 0 || k >= m->nkeys || !m->present[k] || m->rowver[k] != v ||
            strcmp(name, row[2]) || seen[k]) {
            if (!diff)
                snprintf(why, why_size, "row %s v%lld unexpected (want present=%d v%lld)", row[0],
                         v, k >= 0 && k < m->nkeys ? m->present[k] : -1,
                         k >= 0 && k < m->nkeys ? (long long)m->rowver[k] : -1LL);
            diff++;
        }
        if (k >= 0 && k < m->nkeys_max)
            seen[k] = 1;
    }
    int want = model_rows(m);
    if (rows != want) {
        if (!diff)
            snprintf(why, why_size, "%d rows, want %d", rows, want);
        diff += abs(rows - want);
    }
    free(seen);
    mysql_free_result(r);
    mysql_close(c);
    return diff;
}

static void wait_my_equal(pid_t pid, const char *db, const model *m, int deadline_ms)
{
    char why[512] = "";
    int64_t end = core_mono_ms() + deadline_ms;
    int d = -1;
    while (core_mono_ms() < end) {
        if ((d = my_diff(db, m, why, sizeof(why))) == 0)
            return;
        assert_alive(pid);
        tu_sleep_ms(250);
    }
    ck_abort_msg("table %s.payee differs from the expected final state: %d differences (%s)", db,
                 d, why);
}

/* Rows plus tombstones written so far (-1 before the tables exist). */
static long my_progress(const void *db)
{
    char v[32];
    long n = -1;
    MYSQL *c = my_conn(db);
    if (c && my_value(c, "SELECT (SELECT count(*) FROM payee) + (SELECT count(*) FROM "
                         "payee_tombstone)", v, sizeof(v)))
        n = atol(v);
    if (c)
        mysql_close(c);
    return n;
}

#define N_MYSQL 100000

/* 100,000 events with updates, deletes, moved keys and out-of-order
 * versions, in batches of 2500 (more than one statement each): the exact
 * table, every column as the events carry it; nothing changes after a
 * restart. */
START_TEST(mysql_final_state_exact)
{
    names nm;
    names_init(&nm, 'y');
    my_database(nm.store, true);
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_MYSQL, N_MYSQL / 4, 42, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .sink = "mysql", .mysql_db = nm.store,
                   .http_port = http_port() + 12, .batch_size = "2500" };
    int64_t t0 = core_mono_ms();
    pid_t pid = start_persister(&o);
    wait_my_equal(pid, nm.store, &m, 150000);
    fprintf(stderr, "mysql_final_state_exact: %d events in %lld ms\n", N_MYSQL,
            (long long)(core_mono_ms() - t0));
    ck_assert_int_eq(stop_persister(pid), 0);
    MYSQL *c = my_conn(nm.store);
    ck_assert_ptr_nonnull(c);
    char v[64];
    ck_assert_ptr_nonnull(my_value(c,
            "SELECT count(*) FROM payee WHERE NOT (account_number = '0000000001' AND "
            "routing_number = '021000021' AND iban IS NULL AND country = 'US' AND currency = "
            "'USD' AND email IS NULL AND amount_limit = 10.00 AND status = 'ACTIVE' AND "
            "updated_at = '2026-11-22 08:30:00.000' AND tb_batch = 'b1' AND tb_id LIKE "
            "'00000000-0000-4000-8000-%')",
            v, sizeof(v)));
    ck_assert_str_eq(v, "0");
    mysql_close(c);
    pid = start_persister(&o);
    tu_sleep_ms(1000);
    char why[256];
    ck_assert_msg(my_diff(nm.store, &m, why, sizeof(why)) == 0, "after restart: %s", why);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    my_database(nm.store, false);
}
END_TEST

START_TEST(mysql_kill9_ten_times_exact)
{
    names nm;
    names_init(&nm, 'z');
    my_database(nm.store, true);
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, N_MYSQL, N_MYSQL / 4, 7, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .sink = "mysql", .mysql_db = nm.store,
                   .http_port = http_port() + 13, .batch_size = "200", .timeout_ms = "100" };
    kill9_loop(&o, my_progress, nm.store, 10);
    pid_t pid = start_persister(&o);
    wait_my_equal(pid, nm.store, &m, 150000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    my_database(nm.store, false);
}
END_TEST

/* The table from `svc-persister schema-sql --sink mysql` plus a CHECK of the
 * operator's that one row breaks: only it in the DLQ, with the constraint
 * and never its value; every other event written; one audit event each.
 * Then a unique key of the operator's refusing an update: the key named,
 * never the duplicate value. */
START_TEST(mysql_bad_row_to_dlq_rest_written)
{
    names nm;
    names_init(&nm, 'x');
    my_database(nm.store, true);
    char bin[1024], proto[1100], *out = NULL, *err = NULL;
    snprintf(bin, sizeof(bin), "%s/bin/svc-persister", tu_build_dir());
    snprintf(proto, sizeof(proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    char *argv[] = { bin, "schema-sql", "--dataset", "payee", "--sink", "mysql", NULL };
    char *envp[] = { proto, NULL };
    ck_assert_int_eq(tu_run_cmd(argv, envp, &out, &err, 20000), 0);
    MYSQL *c = my_conn(nm.store);
    ck_assert_ptr_nonnull(c);
    for (char *st = strstr(out, "CREATE"), *end; st; st = end ? strstr(end, "CREATE") : NULL) {
        if ((end = strstr(st, ";\n")))
            *end++ = '\0';
        my_exec(c, st);
    }
    my_exec(c, "ALTER TABLE payee ADD CONSTRAINT amount_below_million CHECK (amount_limit < "
               "1000000)");
    my_exec(c, "ALTER TABLE payee ADD UNIQUE KEY name_u (name(64))"); /* names: n<version> */
    mysql_close(c);
    free(out);
    free(err);

    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    tu_topic_create(nm.dlq, 1);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 5000, 1000, 11, &m, 0, 2500, &bad_key);
    ck_assert_int_ge(bad_key, 0);
    run_opts o = { .suffix = nm.u, .sink = "mysql", .mysql_db = nm.store,
                   .http_port = http_port() + 14 };
    pid_t pid = start_persister(&o);
    wait_my_equal(pid, nm.store, &m, 60000);
    char key[32], msg[512] = "";
    key_name(bad_key, key, sizeof(key));
    int n = count_topic(nm.dlq, key, msg, sizeof(msg), 1, 30000);
    ck_assert_msg(n == 1, "dlq holds %d records (want exactly the bad one)", n);
    ck_assert_msg(strstr(msg, "mysql 4025 23000 check_violation (constraint "
                              "amount_below_million)") != NULL,
                  "DLQ reason: %s", msg);
    ck_assert_msg(!strstr(msg, "9999999"), "DLQ reason: %s", msg);
    ck_assert_int_eq(stop_persister(pid), 0);
    char aud[128];
    audit_tally t;
    snprintf(aud, sizeof(aud), "audit_%s", nm.u);
    audit_read(aud, 5000, 30000, &t);
    ck_assert_int_eq(t.events, 5000);
    ck_assert_int_eq(t.dup_ids, 0);
    ck_assert_int_eq(t.dead, 1);
    ck_assert_str_eq(t.dead_key, key);
    ck_assert_msg(strstr(t.dead_reason, "amount_below_million") != NULL, "reason: %s",
                  t.dead_reason);
    ck_assert_int_eq(t.persisted + t.stale, 4999);
    ck_assert_int_ge(t.stale, 1);
    ck_assert_int_eq(t.other, 0);

    /* a stored key updated onto the name a row of the test's holds: the
     * unique key refuses it (1062, whose message quotes the name) */
    int kp = -1;
    for (int k = 0; k < m.nkeys && kp < 0; k++)
        if (m.present[k] && k != bad_key)
            kp = k;
    ck_assert_int_ge(kp, 0);
    int64_t v2 = (int64_t)(5000 + 100) * 16 + 16;
    char blocker[64], ins[512];
    snprintf(blocker, sizeof(blocker), "n%lld", (long long)v2);
    snprintf(ins, sizeof(ins),
             "INSERT INTO payee (payee_id, name, account_number, routing_number, country, "
             "currency, amount_limit, status, updated_at, tb_version, tb_id, tb_batch) VALUES "
             "('blocker', '%s', '1', '1', 'US', 'USD', 1, 'ACTIVE', '2026-01-01', 1, 'x', 'x')",
             blocker);
    c = my_conn(nm.store);
    ck_assert_ptr_nonnull(c);
    my_exec(c, ins);
    mysql_close(c);
    pid = start_persister(&o);
    produce_event(p, nm.topic, 5100, kp, v2, "UPDATE", -1, "10.00");
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    key_name(kp, key, sizeof(key));
    msg[0] = '\0';
    n = count_topic(nm.dlq, key, msg, sizeof(msg), 2, 60000);
    ck_assert_msg(n == 2, "dlq holds %d records (want the two refused ones)", n);
    ck_assert_msg(strstr(msg, "mysql 1062 23000 unique_violation (key name_u)") != NULL,
                  "DLQ reason: %s", msg);
    ck_assert_msg(!strstr(msg, blocker), "DLQ reason: %s", msg);
    wait_my_equal(pid, nm.store, &m, 30000); /* kp unchanged */
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    my_database(nm.store, false);
}
END_TEST

/* MariaDB stopped 30 s mid-stream (stack.sh mariadb-stop) while records keep
 * arriving: the persister retries, holds a bounded buffer, and once the
 * server is back the table is exact. */
START_TEST(mysql_outage_exact)
{
    names nm;
    names_init(&nm, 'v');
    my_database(nm.store, true);
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 3);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 10000, 2500, 5, &m, 0, -1, &bad_key);
    int hport = http_port() + 15;
    run_opts o = { .suffix = nm.u, .sink = "mysql", .mysql_db = nm.store, .http_port = hport,
                   .batch_size = "500", .timeout_ms = "100" };
    pid_t pid = start_persister(&o);
    wait_my_equal(pid, nm.store, &m, 60000);
    ck_assert_int_eq(run_sh("deploy/local/stack.sh mariadb-stop >/dev/null"), 0);
    produce_workload(p, nm.topic, 10000, 2500, 6, &m, 10000, -1, &bad_key);
    int64_t end = core_mono_ms() + 30000;
    double depth_max = 0, retries = 0;
    while (core_mono_ms() < end) {
        double d = 0;
        assert_alive(pid);
        if (tu_metric_sum(hport, "tributary_persister_buffer_records", "", &d) && d > depth_max)
            depth_max = d;
        tu_sleep_ms(200);
    }
    tu_metric_sum(hport, "tributary_persister_retries_total{sink=\"mysql\"}", "", &retries);
    char why[128];
    int down = my_diff(nm.store, &m, why, sizeof(why));
    ck_assert_int_eq(run_sh("deploy/local/stack.sh mariadb-start >/dev/null"), 0);
    ck_assert_int_eq(down, -1);
    ck_assert_msg(depth_max <= 1000, "buffer grew to %.0f records (batch.size 500)", depth_max);
    ck_assert_msg(depth_max >= 1, "nothing buffered during the outage?");
    ck_assert_msg(retries >= 2, "only %.0f retries during the outage", retries);
    wait_my_equal(pid, nm.store, &m, 90000);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    my_database(nm.store, false);
}
END_TEST

/* Seed 004, Kafka → MySQL with a Redis-backed buffer: what was consumed
 * sits in the buffer and in Redis; after kill -9 the same instance, in a
 * group that starts at the topic's end, writes it from the backup alone. */
START_TEST(mysql_redis_backup_restored_after_kill9)
{
    char inst[96], v[32];
    names nm;
    names_init(&nm, 'u');
    snprintf(inst, sizeof(inst), "persister-bk-%s", nm.u);
    my_database(nm.store, true);
    core_kafka_producer_t *p = tu_producer("20");
    tu_topic_create(nm.topic, 2);
    model m = { 0 };
    int bad_key = -1;
    produce_workload(p, nm.topic, 1500, 400, 13, &m, 0, -1, &bad_key);
    run_opts o = { .suffix = nm.u, .sink = "mysql", .mysql_db = nm.store,
                   .http_port = http_port() + 16, .batch_size = "5000",
                   .timeout_ms = "600000",
                   .extra = { "--buffer.backup", "--instance.id", inst } };
    pid_t pid = start_persister(&o);
    long nk = 0;
    int64_t end = core_mono_ms() + 60000;
    while ((nk = backup_keys(inst, NULL)) < 1500 && core_mono_ms() < end) {
        assert_alive(pid);
        tu_sleep_ms(200);
    }
    ck_assert_int_eq(nk, 1500);
    MYSQL *c = my_conn(nm.store);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(my_value(c, "SELECT count(*) FROM payee", v, sizeof(v)));
    ck_assert_str_eq(v, "0");
    mysql_close(c);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    run_opts o2 = o;
    char u2[64];
    snprintf(u2, sizeof(u2), "%s_2", nm.u);
    o2.suffix = u2;
    o2.topic_suffix = nm.u;
    o2.timeout_ms = "100";
    o2.batch_size = "1000";
    o2.extra[3] = "--kafka.auto.offset.reset";
    o2.extra[4] = "latest";
    pid = start_persister(&o2);
    wait_my_equal(pid, nm.store, &m, 60000);
    end = core_mono_ms() + 20000;
    while ((nk = backup_keys(inst, NULL)) > 0 && core_mono_ms() < end)
        tu_sleep_ms(100);
    ck_assert_int_eq(nk, 0);
    ck_assert_int_eq(stop_persister(pid), 0);
    core_kafka_producer_free(p);
    model_free(&m);
    my_database(nm.store, false);
}
END_TEST

/* PERSISTER_TEST=name runs one test only (while working on it). */
static void add(TCase *tc, const TTest *t, const char *name)
{
    const char *only = getenv("PERSISTER_TEST");
    if (!only || !*only || !strcmp(only, name))
        tcase_add_test(tc, t);
}
#define ADD(tc, t) add(tc, t, #t)

int main(void)
{
    Suite *s = suite_create("persister");
    TCase *tc = tcase_create("postgres");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    ADD(tc, pg_final_state_exact);
    ADD(tc, pg_kill9_ten_times_exact);
    ADD(tc, pg_bad_row_to_dlq_rest_written);
    ADD(tc, pg_outage_exact_memory_bounded);
    ADD(tc, pg_redis_backup_restored_after_kill9);
    ADD(tc, pg_rebalance_with_batches_in_flight_exact);
    ADD(tc, pg_moved_key_delete_waits_for_concurrent_upsert);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("mongodb");
    tcase_add_checked_fixture(tm, setup, teardown);
    tcase_set_timeout(tm, 900);
    ADD(tm, mongo_final_state_exact_across_restart);
    ADD(tm, mongo_kill9_ten_times_exact);
    ADD(tm, mongo_bad_row_to_dlq_rest_written);
    ADD(tm, mongo_without_deletes_inserted_first_exact);
    suite_add_tcase(s, tm);
    TCase *ty = tcase_create("mysql");
    tcase_add_checked_fixture(ty, setup, teardown);
    tcase_set_timeout(ty, 300);
    ADD(ty, mysql_final_state_exact);
    ADD(ty, mysql_kill9_ten_times_exact);
    ADD(ty, mysql_bad_row_to_dlq_rest_written);
    ADD(ty, mysql_outage_exact);
    ADD(ty, mysql_redis_backup_restored_after_kill9);
    suite_add_tcase(s, ty);
    return tu_run(&s, 1);
}
