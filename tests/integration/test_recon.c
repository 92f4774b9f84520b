/* test_recon.c — svc-recon against the real broker and PostgreSQL.
 *
 * The test plays every stage: it writes the audit events of a batch with
 * core_audit, as the stages do (one publisher per stage), on an audit
 * topic of its own, and runs svc-recon on a state schema of its own:
 *   - a clean batch: every record delivered, rejections accounted for, exit 0;
 *   - a tampered batch (an event dropped at the persister, a digest changed
 *     at the validator, a cache-feeder event applied twice from another
 *     offset, an id only the persister saw) plus a redelivery and bad input
 *     (malformed bytes, an unknown dataset, a timestamp far in the future):
 *     the report names exactly the four tampered records, each at its stage,
 *     and counts the bad input;
 *   - the daemon killed -9 mid-stream and restarted: the same report as a
 *     state built in one go, and no event applied twice;
 *   - the HTTP API of the daemon: /batches, /batches/{id}, /discrepancies;
 *   - the real svc-ingest, svc-validator, svc-cache-feeder and svc-persister
 *     on a small file: the batch reconciles clean from their own events. */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include "../../svc-recon/state.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


static core_avro_catalog_t *cat;

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
    cat = NULL;
}

/* ---- the tamperer: one audit publisher per stage ---------------------------- */

enum { ST_INGEST, ST_VALIDATOR, ST_CACHE, ST_PERSISTER, ST_N };
static const char *const stage_names[ST_N] = { "ingest", "validator", "cache-feeder",
                                               "persister" };

typedef struct stages {
    core_kafka_producer_t *p;
    core_audit_t *a[ST_N];
    char topic[128];
} stages;

static void stages_open(stages *s, const char *tag)
{
    char err[512];
    core_kafka_producer_opts po = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" },
                                { "linger.ms", "5" } };

    po.defaults = props;
    po.ndefaults = 2;
    s->p = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(s->p != NULL, "producer: %s", err);
    snprintf(s->topic, sizeof(s->topic), "audit.recon_%s_%s", tag, tu_unique());
    tu_topic_create(s->topic, 3);
    for (int i = 0; i < ST_N; i++) {
        s->a[i] = core_audit_new(s->p, cat, s->topic, stage_names[i], err, sizeof(err));
        ck_assert_msg(s->a[i] != NULL, "audit: %s", err);
    }
}

static void stages_close(stages *s)
{
    ck_assert_int_eq((int)core_kafka_producer_flush(s->p, 30000), 0);
    ck_assert_int_eq((int)core_kafka_producer_failed(s->p), 0);
    for (int i = 0; i < ST_N; i++)
        core_audit_free(s->a[i]);
    core_kafka_producer_free(s->p);
}

static void rec_id(const char *batch, int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%06d", batch, i);
}

static void rec_digest(int i, int variant, core_digest *d)
{
    char text[64];
    snprintf(text, sizeof(text), "record %d variant %d", i, variant);
    core_digest_sha256(text, strlen(text), d);
}

/* One stage's event of record i; offset is the source offset (CORE_AUDIT_NONE: none). */
static void emit(stages *s, int stage, const char *batch, const char *dataset, int i,
                 const char *outcome, int digest_variant, int64_t offset, int64_t ts,
                 const char *reason)
{
    char id[128], key[32], err[512];
    core_digest d;
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;

    rec_id(batch, i, id, sizeof(id));
    snprintf(key, sizeof(key), "K%06d", i);
    rec_digest(i, digest_variant, &d);
    ev.id = id;
    ev.key = key;
    ev.dataset = dataset;
    ev.batch_id = batch;
    ev.outcome = outcome;
    ev.digest = strcmp(outcome, "format_error") ? &d : NULL;
    ev.ts = ts;
    ev.version = 1;
    ev.reason = reason;
    switch (stage) {
    case ST_INGEST:
        ev.topic = "payee.raw";
        ev.line = i + 2;
        if (!strcmp(outcome, "format_error"))
            ev.key = NULL;
        break;
    case ST_VALIDATOR:
        ev.topic = "payee.raw";
        ev.partition = 0;
        ev.offset = offset;
        break;
    default:
        ev.topic = "payee.valid";
        ev.partition = 0;
        ev.offset = offset;
        break;
    }
    ck_assert_msg(core_audit_emit(s->a[stage], &ev, err, sizeof(err)) == CORE_OK, "emit: %s",
                  err);
}

/* The whole life of a good record: published, valid, cached, persisted. */
static void emit_delivered(stages *s, const char *batch, int i)
{
    emit(s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
    emit(s, ST_VALIDATOR, batch, "payee", i, "valid", 0, i, 0, NULL);
    emit(s, ST_CACHE, batch, "payee", i, "cached", 0, i, 0, NULL);
    emit(s, ST_PERSISTER, batch, "payee", i, "persisted", 0, i, 0, NULL);
}

/* ---- running svc-recon -------------------------------------------------------- */

typedef struct recon_cfg {
    char topic_flag[200], schema_flag[200], schema[100];
    char sinks_flag[100]; /* "--sinks=..." or "--log.level=warn" (no sinks set) */
    char method_flag[100]; /* "--method=..." or "--log.level=warn" (digests) */
} recon_cfg;

static void cfg_init(recon_cfg *c, const stages *s, const char *tag)
{
    snprintf(c->schema, sizeof(c->schema), "recon_t_%s_%s", tag, tu_unique());
    snprintf(c->topic_flag, sizeof(c->topic_flag), "--audit.topic=%s", s->topic);
    snprintf(c->schema_flag, sizeof(c->schema_flag), "--state.schema=%s", c->schema);
    snprintf(c->sinks_flag, sizeof(c->sinks_flag), "--log.level=warn");
    snprintf(c->method_flag, sizeof(c->method_flag), "--log.level=warn");
}

/* svc-recon report --batch B --json; returns the exit code, *json the parsed stdout. */
static int report(const recon_cfg *c, const char *batch, cJSON **json)
{
    char bflag[200], *out = NULL, *err = NULL;
    snprintf(bflag, sizeof(bflag), "--batch=%s", batch);
    char *argv[] = { (char *)tu_bin("svc-recon"), "report", bflag, "--json", (char *)c->topic_flag,
                     (char *)c->schema_flag, "--log.level=warn", (char *)c->sinks_flag,
                     (char *)c->method_flag, NULL };
    int rc = tu_run_cmd(argv, tu_env(true), &out, &err, 120000);
    *json = cJSON_Parse(out);
    ck_assert_msg(*json != NULL, "report (exit %d) printed no JSON: %s / %s", rc, out, err);
    free(out);
    free(err);
    return rc;
}

static double num(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2)
        x = cJSON_GetObjectItemCaseSensitive(x, path2);
    ck_assert_msg(cJSON_IsNumber(x), "%s.%s is not a number", path1, path2 ? path2 : "");
    return x->valuedouble;
}

static bool is_true(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(clean_batch_every_record_delivered)
{
    stages s;
    recon_cfg c;
    cJSON *j;
    char batch[64];

    stages_open(&s, "clean");
    snprintf(batch, sizeof(batch), "clean%s", tu_unique());
    for (int i = 0; i < 200; i++)
        emit_delivered(&s, batch, i);
    /* rejections are accounted for, not discrepancies */
    emit(&s, ST_INGEST, batch, "payee", 200, "format_error", 0, CORE_AUDIT_NONE, 0, "bad quote");
    emit(&s, ST_INGEST, batch, "payee", 201, "published", 0, CORE_AUDIT_NONE, 0, NULL);
    emit(&s, ST_VALIDATOR, batch, "payee", 201, "invalid", 0, 201, 0, "account: not a number");
    stages_close(&s);
    cfg_init(&c, &s, "clean");

    int rc = report(&c, batch, &j);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, cJSON_PrintUnformatted(j));
    ck_assert(is_true(j, "clean"));
    ck_assert_int_eq((int)num(j, "counts", "delivered"), 200);
    ck_assert_int_eq((int)num(j, "counts", "rejected"), 2);
    for (int v = 0; v < 5; v++) {
        static const char *d[] = { "missing", "altered", "duplicated", "unexpected", "retrying" };
        ck_assert_int_eq((int)num(j, "counts", d[v]), 0);
    }
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rejected")), 2);
    /* proved clean by the aggregates: no id was read */
    const cJSON *ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert(!is_true(ds, "drilled_down"));
    const cJSON *t = cJSON_GetObjectItem(ds, "totals");
    ck_assert_int_eq((int)num(t, "lines", NULL), 202);
    ck_assert_int_eq((int)num(t, "published", NULL), 201);
    ck_assert_int_eq((int)num(t, "valid", NULL), 200);
    ck_assert(is_true(cJSON_GetObjectItem(t, "checks"), "valid_eq_each_sink"));
    cJSON_Delete(j);

    /* a second run applies nothing again: same answer, no event twice */
    rc = report(&c, batch, &j);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq((int)num(j, "counts", "delivered"), 200);
    cJSON_Delete(j);
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.events", c.schema);
    ck_assert_int_eq((long)tu_pg_count(sql), 200 * 4 + 3); /* + format error, published, invalid */
    /* the drill-down columns svc-recon computes are what migration 2 computes in SQL
     * for older rows */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.events WHERE bucket <> ((get_byte(sha256(convert_to(id, "
             "'UTF8')), 0) << 2) | (get_byte(sha256(convert_to(id, 'UTF8')), 1) >> 6)) OR eh <> "
             "('x' || encode(substr(sha256(convert_to(id, 'UTF8') || '\\x00'::bytea || "
             "coalesce(digest, decode(repeat('00', 32), 'hex'))), 1, 8), 'hex'))::bit(64)::bigint",
             c.schema);
    ck_assert_int_eq((long)tu_pg_count(sql), 0);
    snprintf(sql, sizeof(sql), "SELECT max(version) FROM %s.schema_version", c.schema);
    ck_assert_int_eq((long)tu_pg_count(sql), RECON_SCHEMA_VERSION);
    tu_pg_drop_schema(c.schema);
}
END_TEST

/* The four tampered records, and what else the batch holds. */
static void emit_tampered(stages *s, const char *batch, int n)
{
    char err[512];
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;

    for (int i = 0; i < n; i++) {
        switch (i) {
        case 3: /* dropped at the persister */
            emit(s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
            emit(s, ST_VALIDATOR, batch, "payee", i, "valid", 0, i, 0, NULL);
            emit(s, ST_CACHE, batch, "payee", i, "cached", 0, i, 0, NULL);
            break;
        case 5: /* digest changed at the validator */
            emit(s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
            emit(s, ST_VALIDATOR, batch, "payee", i, "valid", 1, i, 0, NULL);
            emit(s, ST_CACHE, batch, "payee", i, "cached", 0, i, 0, NULL);
            emit(s, ST_PERSISTER, batch, "payee", i, "persisted", 0, i, 0, NULL);
            break;
        case 7: /* applied twice by the cache feeder, from two offsets */
            emit_delivered(s, batch, i);
            emit(s, ST_CACHE, batch, "payee", i, "cached", 0, 100000 + i, 0, NULL);
            break;
        case 9: /* a redelivery of the same offset after a crash: not a duplicate */
            emit_delivered(s, batch, i);
            emit(s, ST_PERSISTER, batch, "payee", i, "persisted", 0, i, 0, NULL);
            break;
        case 11: /* retried once, then valid: delivered */
            emit(s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
            emit(s, ST_VALIDATOR, batch, "payee", i, "retrying", 0, i, 0, "verifier timeout");
            emit(s, ST_VALIDATOR, batch, "payee", i, "valid", 0, 500000 + i, 0, NULL);
            emit(s, ST_CACHE, batch, "payee", i, "cached", 0, i, 0, NULL);
            emit(s, ST_PERSISTER, batch, "payee", i, "persisted", 0, i, 0, NULL);
            break;
        case 13: /* poison at the validator: rejected */
            emit(s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
            emit(s, ST_VALIDATOR, batch, "payee", i, "poison", 0, i, 0, "undecodable");
            break;
        default:
            emit_delivered(s, batch, i);
        }
    }
    /* an id only a consumer saw */
    emit(s, ST_PERSISTER, batch, "payee", 999999, "persisted", 0, 999999, 0, NULL);
    /* bad input: malformed bytes, an unknown dataset, a time far in the future */
    ck_assert_int_eq(core_kafka_produce(s->p, s->topic, "k", 1, "\0\0\0\0\xc9garbage", 12, NULL,
                                        0, NULL, err, sizeof(err)),
                     CORE_OK);
    ck_assert_int_eq(core_kafka_produce(s->p, s->topic, "k", 1, "not avro", 8, NULL, 0, NULL, err,
                                        sizeof(err)),
                     CORE_OK);
    emit(s, ST_INGEST, batch, "no_such_dataset", 5000, "published", 0, CORE_AUDIT_NONE, 0, NULL);
    emit(s, ST_INGEST, batch, "payee", 5001, "published", 0, CORE_AUDIT_NONE,
         core_now_ms() + 400LL * 86400000, NULL);
    (void)ev;
}

/* Exactly the four tampered records, each at its stage. */
static void assert_tampered_report(const cJSON *j, const char *batch, int n)
{
    const cJSON *disc = cJSON_GetObjectItem(j, "discrepancies"), *d;
    struct {
        int i;
        const char *verdict, *stage;
        bool seen;
    } want[] = {
        { 3, "missing", "persister", false },
        { 5, "altered", "validator", false },
        { 7, "duplicated", "cache-feeder", false },
        { 999999, "unexpected", "persister", false },
    };
    char id[128];

    ck_assert(!is_true(j, "clean"));
    ck_assert_msg(cJSON_GetArraySize(disc) == 4, "discrepancies: %s",
                  cJSON_PrintUnformatted(disc));
    cJSON_ArrayForEach(d, disc)
    {
        const char *did = cJSON_GetObjectItem(d, "id")->valuestring;
        bool found = false;
        for (size_t k = 0; k < 4; k++) {
            rec_id(batch, want[k].i, id, sizeof(id));
            if (strcmp(did, id) == 0) {
                found = true;
                want[k].seen = true;
                ck_assert_str_eq(cJSON_GetObjectItem(d, "verdict")->valuestring, want[k].verdict);
                ck_assert_str_eq(cJSON_GetObjectItem(d, "stage")->valuestring, want[k].stage);
                char key[32];
                snprintf(key, sizeof(key), "K%06d", want[k].i);
                ck_assert_str_eq(cJSON_GetObjectItem(d, "key")->valuestring, key);
            }
        }
        ck_assert_msg(found, "unexpected discrepancy %s", cJSON_PrintUnformatted(d));
    }
    for (size_t k = 0; k < 4; k++)
        ck_assert_msg(want[k].seen, "record %d not reported", want[k].i);
    ck_assert_int_eq((int)num(j, "counts", "missing"), 1);
    ck_assert_int_eq((int)num(j, "counts", "altered"), 1);
    ck_assert_int_eq((int)num(j, "counts", "duplicated"), 1);
    ck_assert_int_eq((int)num(j, "counts", "unexpected"), 1);
    ck_assert_int_eq((int)num(j, "counts", "rejected"), 1); /* the poison one */
    ck_assert_int_eq((int)num(j, "counts", "retrying"), 0);
    ck_assert_int_eq((int)num(j, "counts", "delivered"), n - 4);
    ck_assert_int_eq((int)num(j, "bad_input", "malformed"), 2);
    ck_assert_int_eq((int)num(j, "bad_input", "unknown_dataset"), 1);
    ck_assert_int_eq((int)num(j, "bad_input", "future_timestamp"), 1);
    /* only the buckets of the tampered, retried and redelivered records were read */
    const cJSON *ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert(is_true(ds, "drilled_down"));
    int nb = (int)num(ds, "buckets_drilled", NULL);
    ck_assert_msg(nb >= 1 && nb <= 6, "%d buckets drilled", nb);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rejected")), 1);
}

START_TEST(tampered_batch_names_each_record_at_its_stage)
{
    stages s;
    recon_cfg c;
    cJSON *j;
    char batch[64];
    const int n = 40;

    stages_open(&s, "tamper");
    snprintf(batch, sizeof(batch), "tamper%s", tu_unique());
    emit_tampered(&s, batch, n);
    stages_close(&s);
    cfg_init(&c, &s, "tamper");
    int rc = report(&c, batch, &j);
    ck_assert_int_eq(rc, 1);
    assert_tampered_report(j, batch, n);
    cJSON_Delete(j);
    tu_pg_drop_schema(c.schema);
}
END_TEST

/* ---- the daemon ---------------------------------------------------------------- */

static pid_t start_daemon(const recon_cfg *c, int port, const char *batch_max)
{
    char pflag[64], bflag[64];
    pid_t pid;

    snprintf(pflag, sizeof(pflag), "--http.port=%d", port);
    snprintf(bflag, sizeof(bflag), "--batch.max=%s", batch_max);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *argv[] = { (char *)tu_bin("svc-recon"), (char *)c->topic_flag, (char *)c->schema_flag, pflag, bflag,
                         "--batch.timeout.ms=50", "--log.level=warn",
                         /* the API without tokens (RBAC: test_recon_api) */
                         "--auth.open=true", NULL };
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execve(argv[0], argv, tu_env(true));
        _exit(127);
    }
    return pid;
}

static long applied(const char *schema)
{
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(next_offset), 0) FROM %s.offsets", schema);
    return (long)tu_pg_count(sql);
}

/* The audit offsets the topic holds: the sum of its high watermarks. */
static long topic_total(const char *topic)
{
    core_kafka_producer_opts po = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    char err[256];
    long total = 0;

    po.defaults = props;
    po.ndefaults = 1;
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_ptr_nonnull(p);
    for (int part = 0; part < 3; part++) {
        int64_t lo, hi;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(core_kafka_producer_handle(p), topic,
                                                          part, &lo, &hi, 10000),
                         0);
        total += hi;
    }
    core_kafka_producer_free(p);
    return total;
}

/* A cJSON copy without the fields that differ between two runs. */
static char *stable_json(const cJSON *j)
{
    cJSON *c = cJSON_Duplicate(j, 1);
    cJSON_DeleteItemFromObject(c, "seconds");
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

/* Seed 001's methods per dataset, on one batch with record 3 never
 * persisted and record 5 altered at the cache: digests names both; ids names
 * the missing one only (altered is not detectable without digests); counts
 * names no record, only the persister's count one short, and keeps no
 * per-record row. */
START_TEST(methods_counts_ids_digests)
{
    stages s;
    recon_cfg c[3];
    static const char *const methods[3] = { "--method=payee:counts", "--method=*:ids",
                                            "--log.level=warn" /* digests */ };
    char batch[64], id3[128], sql[512];

    stages_open(&s, "methods");
    snprintf(batch, sizeof(batch), "methods%s", tu_unique());
    for (int i = 0; i < 20; i++) {
        emit(&s, ST_INGEST, batch, "payee", i, "published", 0, CORE_AUDIT_NONE, 0, NULL);
        emit(&s, ST_VALIDATOR, batch, "payee", i, "valid", 0, i, 0, NULL);
        emit(&s, ST_CACHE, batch, "payee", i, "cached", i == 5, i, 0, NULL);
        if (i != 3)
            emit(&s, ST_PERSISTER, batch, "payee", i, "persisted", 0, i, 0, NULL);
    }
    stages_close(&s);
    rec_id(batch, 3, id3, sizeof(id3));
    for (int m = 0; m < 3; m++) {
        static const char *const tags[3] = { "mcounts", "mids", "mdigests" };
        cfg_init(&c[m], &s, tags[m]);
        snprintf(c[m].method_flag, sizeof(c[m].method_flag), "%s", methods[m]);
    }

    /* counts: the persister's count one short, no record named, no row kept */
    cJSON *j;
    int rc = report(&c[0], batch, &j);
    char *txt = cJSON_PrintUnformatted(j);
    ck_assert_msg(rc == 1, "counts: exit %d: %s", rc, txt);
    ck_assert(!is_true(j, "clean"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    const cJSON *ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ds, "method")->valuestring, "counts");
    ck_assert_msg(strstr(cJSON_GetObjectItem(ds, "method_limit")->valuestring, "cannot be named"),
                  "%s", txt);
    const cJSON *diffs = cJSON_GetObjectItem(ds, "count_differences");
    ck_assert_msg(cJSON_GetArraySize(diffs) == 1, "counts: %s", txt);
    const cJSON *d0 = cJSON_GetArrayItem(diffs, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d0, "stage")->valuestring, "persister");
    ck_assert_int_eq((int)num(d0, "expected", NULL), 20);
    ck_assert_int_eq((int)num(d0, "counted", NULL), 19);
    ck_assert_int_eq((int)num(d0, "difference", NULL), -1);
    free(txt);
    cJSON_Delete(j);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.events", c[0].schema);
    ck_assert_int_eq((long)tu_pg_count(sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.aggregates WHERE method = 'counts' AND "
             "agg = decode(repeat('00', 32), 'hex')", c[0].schema);
    ck_assert_int_eq((long)tu_pg_count(sql), 4); /* one row a stage, no id in any */

    /* ids: the missing record named at the persister; the altered one not seen */
    rc = report(&c[1], batch, &j);
    txt = cJSON_PrintUnformatted(j);
    ck_assert_msg(rc == 1, "ids: exit %d: %s", rc, txt);
    const cJSON *disc = cJSON_GetObjectItem(j, "discrepancies");
    ck_assert_msg(cJSON_GetArraySize(disc) == 1, "ids: %s", txt);
    const cJSON *r0 = cJSON_GetArrayItem(disc, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(r0, "id")->valuestring, id3);
    ck_assert_str_eq(cJSON_GetObjectItem(r0, "verdict")->valuestring, "missing");
    ck_assert_str_eq(cJSON_GetObjectItem(r0, "stage")->valuestring, "persister");
    ck_assert_int_eq((int)num(j, "counts", "altered"), 0);
    ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ds, "method")->valuestring, "ids");
    ck_assert_msg(strstr(cJSON_GetObjectItem(ds, "method_limit")->valuestring, "not detectable"),
                  "%s", txt);
    free(txt);
    cJSON_Delete(j);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.events WHERE digest IS NULL",
             c[1].schema);
    ck_assert_int_eq((long)tu_pg_count(sql), 20 * 4 - 1); /* ids and times, no digest */

    /* digests (the default): both named */
    rc = report(&c[2], batch, &j);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq((int)num(j, "counts", "missing"), 1);
    ck_assert_int_eq((int)num(j, "counts", "altered"), 1);
    ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ds, "method")->valuestring, "digests");
    cJSON_Delete(j);

    /* a clean batch by counts is clean (exit 0) */
    char clean[64];
    stages_open(&s, "methods_clean");
    snprintf(clean, sizeof(clean), "mclean%s", tu_unique());
    for (int i = 0; i < 10; i++)
        emit_delivered(&s, clean, i);
    stages_close(&s);
    recon_cfg cc;
    cfg_init(&cc, &s, "mclean");
    snprintf(cc.method_flag, sizeof(cc.method_flag), "--method=payee:counts");
    rc = report(&cc, clean, &j);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq((int)num(j, "counts", "delivered"), 10);
    cJSON_Delete(j);

    for (int m = 0; m < 3; m++)
        tu_pg_drop_schema(c[m].schema);
    tu_pg_drop_schema(cc.schema);
}
END_TEST

START_TEST(method_unknown_exits_78)
{
    char *argv[] = { (char *)tu_bin("svc-recon"), "report", "--batch=x", "--method=payee:full?",
                     NULL };
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_run_cmd(argv, tu_env(true), &out, &err, 30000), 78);
    ck_assert_msg(strstr(err, "method") != NULL, "%s", err);
    free(out);
    free(err);
    char *argv2[] = { (char *)tu_bin("svc-recon"), "report", "--batch=x", "--method=nosuch:ids",
                      NULL };
    ck_assert_int_eq(tu_run_cmd(argv2, tu_env(true), &out, &err, 30000), 78);
    free(out);
    free(err);
    /* full reads the dataset's .raw topic: it needs the dataset named */
    char *argv3[] = { (char *)tu_bin("svc-recon"), "report", "--batch=x", "--method=*:full", NULL };
    ck_assert_int_eq(tu_run_cmd(argv3, tu_env(true), &out, &err, 30000), 78);
    ck_assert_msg(strstr(err, "full needs a dataset") != NULL, "%s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(kill9_mid_stream_same_report)
{
    stages s;
    recon_cfg c, fresh;
    cJSON *j1, *j2;
    char batch[64];
    const int n = 20000;
    int status;
    long total;

    stages_open(&s, "kill");
    snprintf(batch, sizeof(batch), "kill%s", tu_unique());
    emit_tampered(&s, batch, n);
    stages_close(&s);
    cfg_init(&c, &s, "kill");
    total = topic_total(s.topic);

    /* kill -9 twice while it applies, each time with work left */
    for (int round = 0; round < 2; round++) {
        pid_t pid = start_daemon(&c, 18385, "300");
        long target = total * (round + 1) / 4, now = 0;
        int64_t deadline = core_mono_ms() + 60000;
        while (core_mono_ms() < deadline && (now = applied(c.schema)) < target)
            usleep(20000);
        ck_assert_msg(now >= target, "round %d: only %ld of %ld applied", round, now, total);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        waitpid(pid, &status, 0);
        ck_assert_msg(applied(c.schema) < total, "round %d: nothing left to apply", round);
    }
    /* restarted: it resumes from the stored offsets */
    pid_t pid = start_daemon(&c, 18385, "300");
    int64_t deadline = core_mono_ms() + 90000;
    while (core_mono_ms() < deadline && applied(c.schema) < total)
        usleep(50000);
    ck_assert_int_eq(applied(c.schema), total);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* nothing applied twice: every audit record once, in events or bad_events */
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM %s.events) + (SELECT count(*) FROM %s.bad_events)",
             c.schema, c.schema);
    ck_assert_int_eq((long)tu_pg_count(sql), total);
    ck_assert_int_eq(report(&c, batch, &j1), 1);
    assert_tampered_report(j1, batch, n);

    /* the same report as a state built in one go */
    cfg_init(&fresh, &s, "fresh");
    ck_assert_int_eq(report(&fresh, batch, &j2), 1);
    char *a = stable_json(j1), *b = stable_json(j2);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    tu_pg_drop_schema(c.schema);
    tu_pg_drop_schema(fresh.schema);
}
END_TEST

/* The daemon's PostgreSQL connection dropped again and again mid-stream:
 * every batch is applied again after a reconnect, nothing lost or doubled. */
START_TEST(postgres_connection_dropped_mid_stream_loses_nothing)
{
    stages s;
    recon_cfg c;
    cJSON *j;
    char batch[64], sql[400];
    const int n = 10000;
    int status, drops = 0;
    long total = 0;

    stages_open(&s, "drop");
    snprintf(batch, sizeof(batch), "drop%s", tu_unique());
    emit_tampered(&s, batch, n);
    stages_close(&s);
    cfg_init(&c, &s, "drop");
    total = topic_total(s.topic);
    pid_t pid = start_daemon(&c, 18387, "200");
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
             "application_name = 'svc-recon' AND pid <> pg_backend_pid()");
    int64_t deadline = core_mono_ms() + 120000;
    long now = 0;
    while (core_mono_ms() < deadline && (now = applied(c.schema)) < total) {
        if (now > 0 && (long)tu_pg_count(sql) > 0)
            drops++;
        usleep(150000);
    }
    ck_assert_msg(now == total, "%ld of %ld applied", now, total);
    ck_assert_msg(drops >= 2, "only %d connections dropped", drops);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM %s.events) + (SELECT count(*) FROM %s.bad_events)",
             c.schema, c.schema);
    ck_assert_int_eq((long)tu_pg_count(sql), total);
    ck_assert_int_eq(report(&c, batch, &j), 1);
    assert_tampered_report(j, batch, n);
    cJSON_Delete(j);
    tu_pg_drop_schema(c.schema);
}
END_TEST

/* ---- the HTTP API ---------------------------------------------------------------- */

START_TEST(http_api_batches_and_discrepancies)
{
    stages s;
    recon_cfg c;
    char batch[64], path[300];
    const int n = 40, port = 18386;
    cJSON *j = NULL;
    int status;
    long code = 0;

    stages_open(&s, "api");
    snprintf(batch, sizeof(batch), "api%s", tu_unique());
    emit_tampered(&s, batch, n);
    stages_close(&s);
    cfg_init(&c, &s, "api");
    pid_t pid = start_daemon(&c, port, "5000");

    /* the daemon consumes continuously: wait until the batch reconciles as planted */
    snprintf(path, sizeof(path), "/batches/%s", batch);
    int64_t deadline = core_mono_ms() + 60000;
    while (core_mono_ms() < deadline) {
        code = tu_http_json(port, "GET", path, NULL, &j);
        if (code == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")) == 4 &&
            num(j, "bad_input", "total") == 4)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(100000);
    }
    ck_assert_msg(j != NULL, "GET %s: %ld", path, code);
    assert_tampered_report(j, batch, n);
    cJSON_Delete(j);

    ck_assert_int_eq(tu_http_json(port, "GET", "/batches", NULL, &j), 200);
    const cJSON *b, *list = cJSON_GetObjectItem(j, "batches");
    bool found = false;
    cJSON_ArrayForEach(b, list)
    {
        if (!strcmp(cJSON_GetObjectItem(b, "batch")->valuestring, batch)) {
            found = true;
            ck_assert_int_eq((int)num(b, "published", NULL), n);
        }
    }
    ck_assert(found);
    cJSON_Delete(j);

    snprintf(path, sizeof(path), "/discrepancies?batch=%s&verdict=missing", batch);
    ck_assert_int_eq(tu_http_json(port, "GET", path, NULL, &j), 200);
    ck_assert_int_eq((int)num(j, "total", NULL), 1);
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "discrepancies"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "stage")->valuestring, "persister");
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/discrepancies?batch=%s&page=2", batch);
    ck_assert_int_eq(tu_http_json(port, "GET", path, NULL, &j), 200);
    ck_assert_int_eq((int)num(j, "total", NULL), 4);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    cJSON_Delete(j);
    ck_assert_int_eq(tu_http_json(port, "GET", "/discrepancies", NULL, NULL), 400);
    snprintf(path, sizeof(path), "/discrepancies?batch=%s&verdict=lost", batch);
    ck_assert_int_eq(tu_http_json(port, "GET", path, NULL, NULL), 400);
    ck_assert_int_eq(tu_http_json(port, "GET", "/batches/no-such-batch", NULL, NULL), 404);

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tu_pg_drop_schema(c.schema);
}
END_TEST

/* ---- the real services on a small file ------------------------------------------ */

START_TEST(real_services_small_file_reconciles_clean)
{
    stages s;
    recon_cfg c;
    char batch[64], aflag[200], bflag[200], *path;
    core_strbuf csv = { 0 };
    const int rows = 300;
    cJSON *j = NULL;
    int rc = -1;

    stages_open(&s, "real"); /* only for the audit topic */
    stages_close(&s);
    cfg_init(&c, &s, "real");
    /* both sinks expected: a sink that has not reported yet is silence, not health */
    snprintf(c.sinks_flag, sizeof(c.sinks_flag), "--sinks=cache-feeder,persister");
    snprintf(batch, sizeof(batch), "real%s", tu_unique());
    snprintf(aflag, sizeof(aflag), "--audit.topic=%s", s.topic);
    snprintf(bflag, sizeof(bflag), "--batch-id=%s", batch);
    core_strbuf_add(&csv, "payee_id,name,account_number,routing_number,country,currency,email,"
                          "amount_limit,status,updated_at\n");
    for (int i = 1; i <= rows; i++) {
        if (i == 17) /* a format error */
            core_strbuf_addf(&csv, "R%s%06d,Acme Ltd,1,021000021,US,USD,,ten,ACTIVE,"
                                   "2026-11-01T10:00:00Z\n", batch, i);
        else if (i == 40) /* invalid: a bad routing number */
            core_strbuf_addf(&csv, "R%s%06d,Acme Ltd,12345678,123456789,US,USD,,1.00,ACTIVE,"
                                   "2026-11-01T10:00:00Z\n", batch, i);
        else
            core_strbuf_addf(&csv, "R%s%06d,Payee %d,%d,021000021,US,USD,p%d@example.com,%d.50,"
                                   "ACTIVE,2026-11-01T10:00:00Z\n", batch, i, i, 10000000 + i, i,
                             i);
    }
    path = tu_write_temp(csv.p);
    core_strbuf_free(&csv);

    const char *vargs[] = { "--dataset=payee", aflag, "--commit.interval.ms=100", NULL };
    const char *cargs[] = { "--dataset=payee", aflag, NULL };
    const char *pargs[] = { "--dataset=payee", aflag, "--sink=postgres", "--create.tables",
                      "--batch.timeout.ms=200", "--pg.password=tributary", NULL };
    pid_t v = tu_service_start("svc-validator", 18391, vargs, NULL);
    pid_t cf = tu_service_start("svc-cache-feeder", 18392, cargs, NULL);
    pid_t ps = tu_service_start("svc-persister", 18393, pargs, NULL);

    char ipath[1024];
    snprintf(ipath, sizeof(ipath), "%s/bin/svc-ingest", tu_build_dir());
    char *iargv[] = { ipath, "--dataset=payee", bflag, aflag, "--http.port=0", "--log.level=warn",
                      path, NULL };
    char *out = NULL, *err = NULL;
    int irc = tu_run_cmd(iargv, tu_env(false), &out, &err, 60000);
    ck_assert_msg(irc == 65, "svc-ingest exit %d: %s", irc, err); /* 65: a line rejected */
    free(out);
    free(err);

    /* the sinks catch up: then every record is delivered, the two rejected accounted for */
    int64_t deadline = core_mono_ms() + 90000;
    while (core_mono_ms() < deadline) {
        rc = report(&c, batch, &j);
        if (rc == 0 && num(j, "counts", "delivered") == rows - 2)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(500000);
    }
    ck_assert_msg(j != NULL, "the batch never reconciled clean (last exit %d)", rc);
    ck_assert(is_true(j, "clean"));
    ck_assert_int_eq((int)num(j, "counts", "rejected"), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    const cJSON *ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    const cJSON *sinks = cJSON_GetObjectItem(cJSON_GetObjectItem(ds, "totals"), "sinks");
    ck_assert_int_eq((int)num(sinks, "cache-feeder", "handled"), rows - 2);
    ck_assert_int_eq((int)num(sinks, "persister", "handled"), rows - 2);
    ck_assert(!is_true(ds, "drilled_down")); /* the real digests agree stage to stage */
    cJSON_Delete(j);

    /* the same real events under the counts and ids methods: clean */
    recon_cfg cm[2];
    static const char *const mflags[2] = { "--method=payee:counts", "--method=payee:ids" };
    static const char *const mnames[2] = { "counts", "ids" };
    for (int m = 0; m < 2; m++) {
        cfg_init(&cm[m], &s, mnames[m]);
        snprintf(cm[m].sinks_flag, sizeof(cm[m].sinks_flag), "--sinks=cache-feeder,persister");
        snprintf(cm[m].method_flag, sizeof(cm[m].method_flag), "%s", mflags[m]);
        rc = report(&cm[m], batch, &j);
        ck_assert_msg(rc == 0, "%s on the real events: exit %d", mnames[m], rc);
        ck_assert_int_eq((int)num(j, "counts", "delivered"), rows - 2);
        ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
        ck_assert_str_eq(cJSON_GetObjectItem(ds, "method")->valuestring, mnames[m]);
        cJSON_Delete(j);
    }
    /* a record dropped after ingest (a tamperer publishes one more ingest
     * event no stage follows): counts names the validator's count one short,
     * ids names the record missing at the validator */
    {
        char e2[512], did[128];
        core_kafka_producer_t *tp = tu_producer("5");
        core_audit_t *ta = core_audit_new(tp, cat, s.topic, "ingest", e2, sizeof(e2));
        ck_assert_msg(ta != NULL, "%s", e2);
        core_digest dg;
        core_digest_sha256("dropped", 7, &dg);
        core_audit_event ev = CORE_AUDIT_EVENT_INIT;
        snprintf(did, sizeof(did), "%s-dropped", batch);
        ev.id = did;
        ev.key = "Rdropped";
        ev.dataset = "payee";
        ev.batch_id = batch;
        ev.outcome = "published";
        ev.digest = &dg;
        ev.topic = "payee.raw";
        ev.line = rows + 2;
        ck_assert_msg(core_audit_emit(ta, &ev, e2, sizeof(e2)) == CORE_OK, "%s", e2);
        ck_assert_int_eq((int)core_kafka_producer_flush(tp, 30000), 0);
        core_audit_free(ta);
        core_kafka_producer_free(tp);

        rc = report(&cm[0], batch, &j);
        char *txt = cJSON_PrintUnformatted(j);
        ck_assert_msg(rc == 1, "counts after the drop: exit %d: %s", rc, txt);
        ds = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
        const cJSON *diffs = cJSON_GetObjectItem(ds, "count_differences");
        ck_assert_msg(cJSON_GetArraySize(diffs) == 1, "%s", txt);
        const cJSON *d0 = cJSON_GetArrayItem(diffs, 0);
        ck_assert_str_eq(cJSON_GetObjectItem(d0, "stage")->valuestring, "validator");
        ck_assert_int_eq((int)num(d0, "expected", NULL), rows);      /* published */
        ck_assert_int_eq((int)num(d0, "counted", NULL), rows - 1);   /* valid + invalid */
        ck_assert_int_eq((int)num(d0, "difference", NULL), -1);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
        free(txt);
        cJSON_Delete(j);

        rc = report(&cm[1], batch, &j);
        txt = cJSON_PrintUnformatted(j);
        ck_assert_msg(rc == 1, "ids after the drop: exit %d: %s", rc, txt);
        const cJSON *disc = cJSON_GetObjectItem(j, "discrepancies");
        ck_assert_msg(cJSON_GetArraySize(disc) == 1, "%s", txt);
        const cJSON *r0 = cJSON_GetArrayItem(disc, 0);
        ck_assert_str_eq(cJSON_GetObjectItem(r0, "id")->valuestring, did);
        ck_assert_str_eq(cJSON_GetObjectItem(r0, "verdict")->valuestring, "missing");
        ck_assert_str_eq(cJSON_GetObjectItem(r0, "stage")->valuestring, "validator");
        free(txt);
        cJSON_Delete(j);
    }
    for (int m = 0; m < 2; m++)
        tu_pg_drop_schema(cm[m].schema);

    tu_service_stop(ps);
    tu_service_stop(cf);
    tu_service_stop(v);
    char epath[1100];
    snprintf(epath, sizeof(epath), "%s.errors.jsonl", path);
    unlink(epath);
    unlink(path);
    free(path);
    tu_pg_drop_schema(c.schema);
}
END_TEST

/* Method full through the real services: svc-ingest publishes a batch while
 * no validator runs; the recon daemon keeps every .raw record; .raw then
 * loses them all (DeleteRecords); the validator and both sinks start on an
 * empty .raw; a replay from recon's state re-publishes every record and the
 * real pipeline makes the batch clean. */
START_TEST(real_services_full_replay_from_state)
{
    stages s;
    recon_cfg c;
    char batch[64], prefix[64], raw[128], aflag[200], bflag[200], xflag[200], mflag[64];
    char pflag[64], sql[400], path[300], *csvpath;
    core_strbuf csv = { 0 };
    const int rows = 60, port = 18394;
    cJSON *j = NULL;

    stages_open(&s, "realfull"); /* only for the audit topic */
    stages_close(&s);
    cfg_init(&c, &s, "realfull");
    snprintf(batch, sizeof(batch), "rfull%s", tu_unique());
    snprintf(prefix, sizeof(prefix), "rf%s_", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    tu_topic_create(raw, 1);
    snprintf(aflag, sizeof(aflag), "--audit.topic=%s", s.topic);
    snprintf(bflag, sizeof(bflag), "--batch-id=%s", batch);
    snprintf(xflag, sizeof(xflag), "--topic.prefix=%s", prefix);
    snprintf(mflag, sizeof(mflag), "--method=payee:full");
    snprintf(pflag, sizeof(pflag), "--http.port=%d", port);
    core_strbuf_add(&csv, "payee_id,name,account_number,routing_number,country,currency,email,"
                          "amount_limit,status,updated_at\n");
    for (int i = 1; i <= rows; i++)
        core_strbuf_addf(&csv, "F%s%06d,Payee %d,%d,021000021,US,USD,p%d@example.com,%d.50,"
                               "ACTIVE,2026-11-01T10:00:00Z\n", batch, i, i, 10000000 + i, i, i);
    csvpath = tu_write_temp(csv.p);
    core_strbuf_free(&csv);

    const char *rargs[] = { pflag, c.topic_flag, c.schema_flag, mflag, xflag, "--auth.open=true",
                            "--sinks=cache-feeder,persister", "--batch.timeout.ms=50",
                            "--log.level=warn", "--group.id=recon-realfull", NULL };
    pid_t rp = tu_spawn("svc-recon", rargs, tu_env(true), NULL);
    char ipath[1024];
    snprintf(ipath, sizeof(ipath), "%s/bin/svc-ingest", tu_build_dir());
    char *iargv[] = { ipath, "--dataset=payee", bflag, aflag, xflag, "--http.port=0",
                      "--log.level=warn", csvpath, NULL };
    char *out = NULL, *err = NULL;
    int irc = tu_run_cmd(iargv, tu_env(false), &out, &err, 60000);
    ck_assert_msg(irc == 0, "svc-ingest exit %d: %s", irc, err);
    free(out);
    free(err);

    /* recon keeps every record published */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s'",
             c.schema, batch);
    int64_t deadline = core_mono_ms() + 60000;
    while (tu_pg_count(sql) < rows && core_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_int_eq((long)tu_pg_count(sql), rows);

    /* .raw loses them all before any validator read them */
    {
        core_kafka_producer_t *p = tu_producer("5");
        rd_kafka_t *rk = core_kafka_producer_handle(p);
        int64_t lo, hi;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, raw, 0, &lo, &hi, 10000), 0);
        ck_assert_int_ge(hi, rows); /* the records (and whatever else ingest wrote there) */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, raw, 0)->offset = hi;
        rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_DeleteRecords(rk, &dr, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        ck_assert_msg(ev && rd_kafka_event_error(ev) == 0, "delete records");
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteRecords_destroy(dr);
        rd_kafka_topic_partition_list_destroy(l);
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, raw, 0, &lo, &hi, 10000), 0);
        ck_assert_int_eq(lo, hi);
        core_kafka_producer_free(p);
    }

    const char *vargs[] = { "--dataset=payee", aflag, xflag, "--commit.interval.ms=100", NULL };
    const char *cargs[] = { "--dataset=payee", aflag, xflag, NULL };
    const char *sargs[] = { "--dataset=payee", aflag, xflag, "--sink=postgres", "--create.tables",
                            "--batch.timeout.ms=200", "--pg.password=tributary", NULL };
    pid_t v = tu_service_start("svc-validator", 18395, vargs, NULL);
    pid_t cf = tu_service_start("svc-cache-feeder", 18396, cargs, NULL);
    pid_t ps = tu_service_start("svc-persister", 18397, sargs, NULL);

    /* every record missing at the validator; the replay takes them from recon's state */
    snprintf(path, sizeof(path), "/discrepancies?batch=%s&verdict=missing", batch);
    deadline = core_mono_ms() + 60000;
    long code = 0;
    while (core_mono_ms() < deadline) {
        code = tu_http_json(port, "GET", path, NULL, &j);
        if (code == 200 && cJSON_GetObjectItem(j, "total")->valuedouble == rows)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(300 * 1000);
    }
    ck_assert_msg(j != NULL, "the daemon never named the %d records missing (last %ld)", rows,
                  code);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/replay?batch=%s", batch);
    ck_assert_int_eq(tu_http_json(port, "POST", path, NULL, &j), 200);
    ck_assert_int_eq((int)num(j, "published", NULL), rows);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "not_found")), 0);
    const cJSON *recs = cJSON_GetObjectItem(j, "records");
    for (int k = 0; k < cJSON_GetArraySize(recs); k++)
        ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, k), "source")->valuestring,
                         "state");
    cJSON_Delete(j);

    /* the real validator and sinks take the replayed records: clean */
    snprintf(path, sizeof(path), "/batches/%s", batch);
    deadline = core_mono_ms() + 60000;
    bool clean = false;
    while (!clean && core_mono_ms() < deadline) {
        code = tu_http_json(port, "GET", path, NULL, &j);
        clean = code == 200 && is_true(j, "clean") && num(j, "counts", "delivered") == rows;
        cJSON_Delete(j);
        j = NULL;
        if (!clean)
            usleep(300 * 1000);
    }
    ck_assert_msg(clean, "the batch is not clean after the replay from recon's state");

    tu_service_stop(ps);
    tu_service_stop(cf);
    tu_service_stop(v);
    tu_service_stop(rp);
    char epath[1100];
    snprintf(epath, sizeof(epath), "%s.errors.jsonl", csvpath);
    unlink(epath);
    unlink(csvpath);
    free(csvpath);
    tu_pg_drop_schema(c.schema);
}
END_TEST

START_TEST(readyz_names_postgres_when_state_unreachable)
{
    int port = 18388, status;
    long code = 0;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *argv[] = { (char *)tu_bin("svc-recon"), "--http.port=18388", "--pg.conninfo=host=127.0.0.1 port=1",
                         NULL };
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execve(argv[0], argv, tu_env(true));
        _exit(127);
    }
    int64_t deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && (code = tu_http_json(port, "GET", "/healthz", NULL, NULL)) != 200)
        usleep(50000);
    ck_assert_int_eq(code, 200);
    char *text = NULL;
    deadline = core_mono_ms() + 20000;
    do { /* 503 from the start; the reason names postgres once Kafka answers */
        free(text);
        text = NULL;
        code = tu_http_get(port, "/readyz", &text);
        ck_assert_int_eq(code, 503);
    } while (core_mono_ms() < deadline && !(text && strstr(text, "postgres")));
    ck_assert_msg(text && strstr(text, "postgres"), "readyz: %s", text ? text : "");
    free(text);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(report_without_batch_exits_78)
{
    char *out = NULL, *err = NULL;
    char *argv[] = { (char *)tu_bin("svc-recon"), "report", NULL };
    ck_assert_int_eq(tu_run_cmd(argv, tu_env(true), &out, &err, 20000), 78);
    ck_assert_ptr_nonnull(strstr(err, "batch"));
    free(out);
    free(err);
    char *argv2[] = { (char *)tu_bin("svc-recon"), "report", "--batch=x", "--state.schema=Bad-Name", NULL };
    ck_assert_int_eq(tu_run_cmd(argv2, tu_env(true), &out, &err, 20000), 78);
    ck_assert_ptr_nonnull(strstr(err, "state.schema"));
    free(out);
    free(err);
}
END_TEST

START_TEST(report_without_postgres_exits_69)
{
    char *out = NULL, *err = NULL;
    char *argv[] = { (char *)tu_bin("svc-recon"), "report", "--batch=x", "--pg.conninfo=host=127.0.0.1 port=1", NULL };
    ck_assert_int_eq(tu_run_cmd(argv, tu_env(true), &out, &err, 30000), 69);
    ck_assert_ptr_nonnull(strstr(err, "postgres"));
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recon");
    TCase *tc = tcase_create("recon");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, report_without_batch_exits_78);
    tcase_add_test(tc, report_without_postgres_exits_69);
    tcase_add_test(tc, readyz_names_postgres_when_state_unreachable);
    tcase_add_test(tc, clean_batch_every_record_delivered);
    tcase_add_test(tc, tampered_batch_names_each_record_at_its_stage);
    tcase_add_test(tc, methods_counts_ids_digests);
    tcase_add_test(tc, method_unknown_exits_78);
    tcase_add_test(tc, http_api_batches_and_discrepancies);
    tcase_add_test(tc, kill9_mid_stream_same_report);
    tcase_add_test(tc, postgres_connection_dropped_mid_stream_loses_nothing);
    tcase_add_test(tc, real_services_small_file_reconciles_clean);
    tcase_add_test(tc, real_services_full_replay_from_state);
    suite_add_tcase(s, tc);
    int rc = tu_run(&s, 1);
    curl_global_cleanup();
    return rc;
}
