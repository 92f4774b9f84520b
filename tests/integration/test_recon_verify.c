/* test_recon_verify.c — `svc-recon report --verify-sinks` on the real stack:
 * a file goes through the real svc-ingest, svc-validator, svc-cache-feeder
 * (Redis, json) and svc-persister (PostgreSQL); the report with the sinks
 * verified is clean; then rows are deleted, changed, set back a version and
 * planted in PostgreSQL and keys deleted and changed in Redis behind the
 * pipeline's back, and the report must name exactly those records, each at
 * its sink, and nothing else (exit 1). Also: coverage naming a store no
 * service wrote for the dataset makes every record missing there; a bad
 * coverage entry exits 78. */
#include "testutil.h"
#include "tu_stack.h"
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
#include <unistd.h>

#define ROWS 300

typedef struct run {
    char topic[128], schema[100], batch[64];
    char topic_flag[200], schema_flag[200];
} run;

/* svc-recon report --batch B --json --verify-sinks [extra]: exit code, *json. */
static int report(const run *r, const char *extra, cJSON **json)
{
    char bflag[200], bin[1024], *out = NULL, *err = NULL;
    snprintf(bflag, sizeof(bflag), "--batch=%s", r->batch);
    snprintf(bin, sizeof(bin), "%s/bin/svc-recon", tu_build_dir());
    char *argv[] = { bin, "report", bflag, "--json", "--verify-sinks", (char *)r->topic_flag,
                     (char *)r->schema_flag, "--log.level=warn",
                     extra ? (char *)extra : "--sinks=cache-feeder,persister", NULL };
    int rc = tu_run_cmd(argv, tu_env(true), &out, &err, 120000);
    *json = cJSON_Parse(out);
    if (!*json && rc != 78)
        ck_abort_msg("report (exit %d) printed no JSON: %s / %s", rc, out, err);
    free(out);
    free(err);
    return rc;
}

static double num(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    ck_assert_msg(cJSON_IsNumber(x), "%s.%s is not a number", a, b);
    return x->valuedouble;
}

/* Called by pipeline() while the services still run (NULL: none). */
typedef void (*more_fn)(run *r, const char *aflag);

/* Run the file through the four services; the batch reconciles clean with
 * the sinks verified; then more(), if given. */
static void pipeline_more(run *r, more_fn more)
{
    char aflag[200], bflag[200], *path;
    core_strbuf csv = { 0 };

    snprintf(r->batch, sizeof(r->batch), "vfy%s", tu_unique());
    snprintf(r->topic, sizeof(r->topic), "audit.recon_vfy_%s", tu_unique());
    snprintf(r->schema, sizeof(r->schema), "recon_t_vfy_%s", tu_unique());
    snprintf(r->topic_flag, sizeof(r->topic_flag), "--audit.topic=%s", r->topic);
    snprintf(r->schema_flag, sizeof(r->schema_flag), "--state.schema=%s", r->schema);
    tu_topic_create(r->topic, 3);
    snprintf(aflag, sizeof(aflag), "--audit.topic=%s", r->topic);
    snprintf(bflag, sizeof(bflag), "--batch-id=%s", r->batch);
    core_strbuf_add(&csv, "payee_id,name,account_number,routing_number,country,currency,email,"
                          "amount_limit,status,updated_at\n");
    for (int i = 1; i <= ROWS; i++) {
        if (i == 40) /* invalid: a bad routing number; never reaches a sink */
            core_strbuf_addf(&csv, "V%s%06d,Acme Ltd,12345678,123456789,US,USD,,1.00,ACTIVE,"
                                   "2026-11-01T10:00:00Z\n", r->batch, i);
        else
            core_strbuf_addf(&csv, "V%s%06d,Payee %d,%d,021000021,US,USD,p%d@example.com,%d.50,"
                                   "ACTIVE,2026-11-01T10:00:00Z\n", r->batch, i, i,
                             10000000 + i, i, i);
    }
    path = tu_write_temp(csv.p);
    core_strbuf_free(&csv);

    const char *vargs[] = { "--dataset=payee", aflag, "--commit.interval.ms=100", NULL };
    const char *cargs[] = { "--dataset=payee", aflag, NULL };
    const char *pargs[] = { "--dataset=payee", aflag, "--sink=postgres", "--create.tables",
                      "--batch.timeout.ms=200", "--pg.password=tributary", NULL };
    pid_t v = tu_service_start("svc-validator", 18491, vargs, NULL);
    pid_t cf = tu_service_start("svc-cache-feeder", 18492, cargs, NULL);
    pid_t ps = tu_service_start("svc-persister", 18493, pargs, NULL);

    char ipath[1024];
    snprintf(ipath, sizeof(ipath), "%s/bin/svc-ingest", tu_build_dir());
    char *iargv[] = { ipath, "--dataset=payee", bflag, aflag, "--http.port=0",
                      "--log.level=warn", path, NULL };
    char *out = NULL, *err = NULL;
    int irc = tu_run_cmd(iargv, tu_env(false), &out, &err, 60000);
    ck_assert_msg(irc == 0, "svc-ingest exit %d: %s", irc, err);
    free(out);
    free(err);

    cJSON *j = NULL;
    int rc = -1;
    int64_t deadline = core_mono_ms() + 90000;
    while (core_mono_ms() < deadline) {
        rc = report(r, NULL, &j);
        if (rc == 0 && num(j, "counts", "delivered") == ROWS - 1)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(500000);
    }
    ck_assert_msg(j != NULL, "the batch never reconciled clean with its sinks (last exit %d)",
                  rc);
    const cJSON *checks = cJSON_GetObjectItem(j, "sinks_verified");
    ck_assert_int_eq(cJSON_GetArraySize(checks), 2); /* postgres and redis */
    for (int i = 0; i < 2; i++) {
        const cJSON *k = cJSON_GetArrayItem(checks, i);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(k, "verified")));
        ck_assert_int_eq((int)cJSON_GetObjectItem(k, "records")->valuedouble, ROWS - 1);
        ck_assert_int_eq((int)cJSON_GetObjectItem(k, "findings")->valuedouble, 0);
    }
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    cJSON_Delete(j);
    if (more)
        more(r, aflag);

    tu_service_stop(ps);
    tu_service_stop(cf);
    tu_service_stop(v);
    char epath[1100];
    snprintf(epath, sizeof(epath), "%s.errors.jsonl", path);
    unlink(epath);
    unlink(path);
    free(path);
}

static void pipeline(run *r)
{
    pipeline_more(r, NULL);
}

/* The one discrepancy of key k, or NULL; fails on a second one. */
static const cJSON *disc_of(const cJSON *j, const char *key)
{
    const cJSON *d, *found = NULL;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(j, "discrepancies"))
    {
        const cJSON *k = cJSON_GetObjectItem(d, "key");
        if (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0) {
            ck_assert_msg(found == NULL, "two discrepancies for %s", key);
            found = d;
        }
    }
    return found;
}

static void expect_disc(const cJSON *j, const char *key, const char *verdict, const char *sink,
                        const char *stage)
{
    const cJSON *d = disc_of(j, key);
    ck_assert_msg(d != NULL, "%s not named", key);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "verdict")->valuestring, verdict);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "sink")->valuestring, sink);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "stage")->valuestring, stage);
}

START_TEST(verify_sinks_names_records_tampered_in_postgres_and_redis)
{
    run r;
    char sql[1024], k[8][96];
    cJSON *j;

    pipeline(&r);
    for (int i = 0; i < 8; i++)
        snprintf(k[i], sizeof(k[i]), "V%s%06d", r.batch, (int[]){ 3, 77, 150, 299, 5, 222, 40,
                                                                  300 }[i]);
    /* PostgreSQL: a row deleted, a row's value changed, a row set back a
     * version, a row of the batch planted under a key never published */
    snprintf(sql, sizeof(sql),
             "DELETE FROM public.payee WHERE payee_id = '%s';"
             "UPDATE public.payee SET name = 'Mallory' WHERE payee_id = '%s';"
             "UPDATE public.payee SET tb_version = tb_version - 1 WHERE payee_id = '%s';"
             "CREATE TEMP TABLE t AS SELECT * FROM public.payee WHERE payee_id = '%s';"
             "UPDATE t SET payee_id = '%s';"
             "INSERT INTO public.payee SELECT * FROM t;",
             k[0], k[1], k[2], k[3], k[6]);
    tu_pg_exec(sql);
    /* Redis: a key deleted, a key's document changed */
    redisContext *rc = redisConnect("127.0.0.1", 6379);
    ck_assert(rc && !rc->err);
    redisReply *rr = redisCommand(rc, "DEL tb:payee:%s", k[4]);
    ck_assert(rr && rr->type == REDIS_REPLY_INTEGER && rr->integer == 1);
    freeReplyObject(rr);
    rr = redisCommand(rc, "GET tb:payee:%s", k[5]);
    ck_assert(rr && rr->type == REDIS_REPLY_STRING);
    char *doc = strdup(rr->str), *p = strstr(doc, "Payee 222");
    freeReplyObject(rr);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "Payee 999", 9);
    rr = redisCommand(rc, "SET tb:payee:%s %s", k[5], doc);
    ck_assert(rr && rr->type == REDIS_REPLY_STATUS);
    freeReplyObject(rr);
    free(doc);
    redisFree(rc);

    ck_assert_int_eq(report(&r, NULL, &j), 1);
    ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(j, "clean")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 6);
    expect_disc(j, k[0], "missing", "postgres", "persister");
    expect_disc(j, k[1], "altered", "postgres", "persister");
    expect_disc(j, k[2], "stale", "postgres", "persister");
    expect_disc(j, k[6], "unexpected", "postgres", "persister");
    expect_disc(j, k[4], "missing", "redis", "cache-feeder");
    expect_disc(j, k[5], "altered", "redis", "cache-feeder");
    ck_assert_ptr_null(disc_of(j, k[3])); /* the row copied is untouched */
    ck_assert_ptr_null(disc_of(j, k[7]));
    ck_assert_int_eq((int)num(j, "counts", "missing"), 2);
    ck_assert_int_eq((int)num(j, "counts", "altered"), 2);
    ck_assert_int_eq((int)num(j, "counts", "stale"), 1);
    ck_assert_int_eq((int)num(j, "counts", "unexpected"), 1);
    ck_assert_int_eq((int)num(j, "counts", "rejected"), 1);
    /* the audit trail alone is still clean: the sinks were tampered with */
    cJSON_Delete(j);

    /* coverage that names MongoDB, where no service wrote the dataset: every
     * record of the batch is missing there */
    char cov[] = "--coverage=payee:mongodb";
    ck_assert_int_eq(report(&r, cov, &j), 1);
    ck_assert_int_eq((int)num(j, "counts", "missing"), ROWS - 1);
    const cJSON *checks = cJSON_GetObjectItem(j, "sinks_verified");
    ck_assert_int_eq(cJSON_GetArraySize(checks), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(checks, 0), "sink")->valuestring,
                     "mongodb");
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(checks, 0), "expected_because")->valuestring,
        "coverage");
    cJSON_Delete(j);

    /* no setting: the sinks that reported on the dataset (both) */
    char none[] = "--log.level=warn";
    ck_assert_int_eq(report(&r, none, &j), 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 6);
    cJSON_Delete(j);

    /* a bad coverage entry: 78 */
    char bad[] = "--coverage=payee:oracle";
    ck_assert_int_eq(report(&r, bad, &j), 78);
    cJSON_Delete(j);
    snprintf(sql, sizeof(sql), "DELETE FROM public.payee WHERE tb_batch = '%s'", r.batch);
    tu_pg_exec(sql);
    tu_pg_drop_schema(r.schema);
}
END_TEST

/* ---- moves: an UPDATE with old_key moves a record to a new key ---------- */

#define MOVES 3
static const int moved_rows[MOVES] = { 10, 20, 30 };
static char move_batch[64];

/* The change file: MOVES records moved to new keys (a version above the
 * batch's), through the running services; its batch reconciles clean with
 * the sinks verified. */
static void run_moves(run *r, const char *aflag)
{
    core_strbuf csv = { 0 };
    char bflag[200], ipath[1024], *path, *out = NULL, *err = NULL;
    run r2 = *r;

    snprintf(move_batch, sizeof(move_batch), "mv%s", tu_unique());
    snprintf(bflag, sizeof(bflag), "--batch-id=%s", move_batch);
    core_strbuf_add(&csv, "payee_id,name,account_number,routing_number,country,currency,email,"
                          "amount_limit,status,updated_at,op,version,old_key\n");
    for (int m = 0; m < MOVES; m++) {
        int i = moved_rows[m];
        core_strbuf_addf(&csv, "W%s%06d,Payee %d,%d,021000021,US,USD,p%d@example.com,%d.50,"
                               "ACTIVE,2026-11-01T10:00:00Z,UPDATE,4000000000000000000,V%s%06d\n",
                         r->batch, i, i, 10000000 + i, i, i, r->batch, i);
    }
    path = tu_write_temp(csv.p);
    core_strbuf_free(&csv);
    snprintf(ipath, sizeof(ipath), "%s/bin/svc-ingest", tu_build_dir());
    char *iargv[] = { ipath, "--dataset=payee", bflag, (char *)aflag, "--http.port=0",
                      "--log.level=warn", path, NULL };
    int irc = tu_run_cmd(iargv, tu_env(false), &out, &err, 60000);
    ck_assert_msg(irc == 0, "svc-ingest exit %d: %s", irc, err);
    free(out);
    free(err);
    snprintf(r2.batch, sizeof(r2.batch), "%s", move_batch);
    cJSON *j = NULL;
    int rc = -1;
    int64_t deadline = core_mono_ms() + 90000;
    while (core_mono_ms() < deadline) {
        rc = report(&r2, NULL, &j);
        if (rc == 0 && num(j, "counts", "delivered") == MOVES)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(500000);
    }
    ck_assert_msg(j != NULL, "the change file never reconciled clean with its sinks (last "
                  "exit %d)", rc);
    cJSON_Delete(j);
    char epath[1100];
    snprintf(epath, sizeof(epath), "%s.errors.jsonl", path);
    unlink(epath);
    unlink(path);
    free(path);
}

/* Records moved to new keys by a change file: the batch they left and the
 * change file's batch verify clean (the old keys expected absent, not
 * missing); an old key put back by hand in PostgreSQL and in Redis is
 * named at that sink, exactly that key. */
START_TEST(verify_sinks_moved_keys_expected_absent)
{
    run r, r2;
    char sql[1024], oldk[96], newk[96];
    cJSON *j;

    pipeline_more(&r, run_moves);
    r2 = r;
    snprintf(r2.batch, sizeof(r2.batch), "%s", move_batch);
    /* the batch the records left: still clean, its moved keys gone */
    ck_assert_int_eq(report(&r, NULL, &j), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 0);
    cJSON_Delete(j);

    snprintf(oldk, sizeof(oldk), "V%s%06d", r.batch, moved_rows[1]);
    snprintf(newk, sizeof(newk), "W%s%06d", r.batch, moved_rows[1]);
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE t AS SELECT * FROM public.payee WHERE payee_id = '%s';"
             "UPDATE t SET payee_id = '%s', tb_version = 7;"
             "INSERT INTO public.payee SELECT * FROM t;", newk, oldk);
    tu_pg_exec(sql);
    redisContext *rc = redisConnect("127.0.0.1", 6379);
    ck_assert(rc && !rc->err);
    redisReply *rr = redisCommand(rc, "GET tb:payee:%s", newk);
    ck_assert(rr && rr->type == REDIS_REPLY_STRING);
    char *doc = strdup(rr->str);
    freeReplyObject(rr);
    rr = redisCommand(rc, "SET tb:payee:%s %s", oldk, doc);
    ck_assert(rr && rr->type == REDIS_REPLY_STATUS);
    freeReplyObject(rr);
    free(doc);
    redisFree(rc);

    for (int b = 0; b < 2; b++) {
        const cJSON *d;
        int n = 0;

        ck_assert_int_eq(report(b ? &r2 : &r, NULL, &j), 1);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "discrepancies")), 2);
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(j, "discrepancies"))
        {
            const char *v = cJSON_GetObjectItem(d, "verdict")->valuestring;
            ck_assert_str_eq(cJSON_GetObjectItem(d, "key")->valuestring, oldk);
            ck_assert_msg(!strcmp(v, "stale") || !strcmp(v, "unexpected"), "verdict %s", v);
            n += !strcmp(cJSON_GetObjectItem(d, "sink")->valuestring, "postgres") ? 1 : 10;
        }
        ck_assert_int_eq(n, 11); /* one at postgres, one at redis */
        cJSON_Delete(j);
    }
    snprintf(sql, sizeof(sql), "DELETE FROM public.payee WHERE tb_batch IN ('%s', '%s')"
             " OR payee_id = '%s'", r.batch, move_batch, oldk);
    tu_pg_exec(sql);
    tu_pg_drop_schema(r.schema);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("recon_verify");
    TCase *tc = tcase_create("recon_verify");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, verify_sinks_names_records_tampered_in_postgres_and_redis);
    tcase_add_test(tc, verify_sinks_moved_keys_expected_absent);
    suite_add_tcase(s, tc);
    int rc = tu_run(&s, 1);
    curl_global_cleanup();
    return rc;
}
