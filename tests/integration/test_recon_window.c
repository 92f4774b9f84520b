/* test_recon_window.c — svc-recon's event-time windows, closing statements
 * and their hash chain, against the real broker and PostgreSQL. Audit
 * events with chosen event times (three hours ago, so every window is past
 * its grace and idle time) go to a one-partition topic of this test (so
 * every stage's watermark is one partition's):
 *
 *   window A: 20 records through all four stages, the validator 50 ms after
 *             ingest, the sinks 100 / 300 ms after the validator;
 *   window B: 5 records published and validated, no sink ever reports.
 *
 * `report --dataset` shows per stage counts, bytes and latency percentiles
 * from the histogram; A clean, B unclean naming both silent sinks (exit 1).
 * `close` writes one statement per batch and window; `verify-chain` finds
 * the chain intact. A record of window A arriving after the close is
 * counted late and reopens A (and its batch): the next `close` writes
 * amended statements (version 2, amends). A statement edited by SQL:
 * `verify-chain` exits 1 naming it; a statement removed: the gap is named. */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WMS 600000LL

static core_avro_catalog_t *cat;
static core_kafka_producer_t *prod;
static core_audit_t *aud[4];
static const char *const stage_names[4] = { "ingest", "validator", "cache-feeder", "persister" };
static char topic[128], schema[100], topic_flag[200], schema_flag[200];

static void setup(void)
{
    char err[512];

    cat = tu_catalog_load();
    prod = tu_producer("5");
    snprintf(topic, sizeof(topic), "audit.recon_win_%s", tu_unique());
    snprintf(schema, sizeof(schema), "recon_t_win_%s", tu_unique());
    snprintf(topic_flag, sizeof(topic_flag), "--audit.topic=%s", topic);
    snprintf(schema_flag, sizeof(schema_flag), "--state.schema=%s", schema);
    tu_topic_create(topic, 1);
    for (int i = 0; i < 4; i++) {
        aud[i] = core_audit_new(prod, cat, topic, stage_names[i], err, sizeof(err));
        ck_assert_msg(aud[i] != NULL, "audit: %s", err);
    }
}

static void teardown(void)
{
    for (int i = 0; i < 4; i++)
        core_audit_free(aud[i]);
    core_kafka_producer_free(prod);
    core_avro_catalog_free(cat);
    tu_pg_drop_schema(schema);
}

static void emit(int stage, const char *batch, const char *name, const char *outcome,
                 int64_t ts)
{
    char err[512], key[64];
    core_digest d;
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;

    snprintf(key, sizeof(key), "K-%s", name);
    core_digest_sha256(name, strlen(name), &d);
    ev.id = name;
    ev.key = key;
    ev.dataset = "payee";
    ev.batch_id = batch;
    ev.outcome = outcome;
    ev.digest = &d;
    ev.ts = ts;
    ev.version = 1;
    ev.topic = stage <= 1 ? "payee.raw" : "payee.valid";
    if (stage >= 1) {
        ev.partition = 0;
        ev.offset = (int64_t)(d.b[0] << 8 | d.b[1]);
    } else {
        ev.line = 2;
    }
    ck_assert_msg(core_audit_emit(aud[stage], &ev, err, sizeof(err)) == CORE_OK, "emit: %s",
                  err);
}

static void flush(void)
{
    ck_assert_int_eq((int)core_kafka_producer_flush(prod, 30000), 0);
    ck_assert_int_eq((int)core_kafka_producer_failed(prod), 0);
}

static void full_record(const char *batch, const char *name, int64_t t)
{
    emit(0, batch, name, "published", t);
    emit(1, batch, name, "valid", t + 50);
    emit(2, batch, name, "cached", t + 150);
    emit(3, batch, name, "persisted", t + 350);
}

/* svc-recon SUB [args...] NULL; exit code and stdout. */
static int recon(char **out, const char *sub, ...)
{
    char bin[1024], proto[1100], *err = NULL;
    char *argv[20];
    int n = 0;
    va_list ap;

    snprintf(bin, sizeof(bin), "%s/bin/svc-recon", tu_build_dir());
    snprintf(proto, sizeof(proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    char *env[] = { proto, "PATH=/usr/bin:/bin", "TB_PG_PASSWORD=tributary", NULL };
    argv[n++] = bin;
    argv[n++] = (char *)sub;
    argv[n++] = topic_flag;
    argv[n++] = schema_flag;
    argv[n++] = "--log.level=error";
    argv[n++] = "--grace.ms=1000";
    argv[n++] = "--close.idle.ms=1000";
    argv[n++] = "--sinks=cache-feeder,persister";
    va_start(ap, sub);
    for (const char *a; n < 19 && (a = va_arg(ap, const char *));)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int rc = tu_run_cmd(argv, env, out, &err, 120000);
    if (rc != 0 && rc != 1)
        fprintf(stderr, "svc-recon %s exit %d: %s\n", sub, rc, err);
    free(err);
    return rc;
}

static cJSON *json_of(char *out)
{
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out ? out : "(none)");
    free(out);
    return j;
}

static const cJSON *get(const cJSON *o, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItem(o, a);
    if (b)
        x = cJSON_GetObjectItem(x, b);
    if (c)
        x = cJSON_GetObjectItem(x, c);
    ck_assert_msg(x != NULL, "no %s.%s.%s", a, b ? b : "", c ? c : "");
    return x;
}

START_TEST(windows_close_into_a_hash_chain_amended_after_late_events)
{
    int64_t base = (core_now_ms() - 3 * 3600 * 1000LL) / WMS * WMS;
    char from[64], to[64], batch_a[64], batch_b[64], name[96], sql[512], *out = NULL;
    cJSON *j;

    snprintf(batch_a, sizeof(batch_a), "wa%s", tu_unique());
    snprintf(batch_b, sizeof(batch_b), "wb%s", tu_unique());
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "%s-%02d", batch_a, i);
        full_record(batch_a, name, base + 1000 + i * 1000);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "%s-%02d", batch_b, i);
        emit(0, batch_b, name, "published", base + WMS + 1000 + i);
        emit(1, batch_b, name, "valid", base + WMS + 1100 + i);
    }
    flush();

    /* the windows: A clean with its figures, B unclean naming both silent sinks */
    snprintf(from, sizeof(from), "--from=%lld", (long long)base);
    snprintf(to, sizeof(to), "--to=%lld", (long long)(base + 2 * WMS));
    ck_assert_int_eq(recon(&out, "report", "--dataset=payee", from, to, NULL), 1);
    ck_assert_ptr_nonnull(strstr(out, "NOT CLEAN")); /* the text form */
    free(out);
    ck_assert_int_eq(recon(&out, "report", "--dataset=payee", from, NULL), 78); /* no to */
    free(out);
    ck_assert_int_eq(recon(&out, "report", "--dataset=nosuch", from, to, NULL), 78);
    free(out);
    ck_assert_int_eq(recon(&out, "report", "--dataset=payee", from, to, "--json", NULL), 1);
    j = json_of(out);
    ck_assert(!cJSON_IsTrue(get(j, "clean", NULL, NULL)));
    const cJSON *ws = get(j, "windows", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(ws), 2);
    const cJSON *wa = cJSON_GetArrayItem(ws, 0), *wb = cJSON_GetArrayItem(ws, 1);
    ck_assert_int_eq((long long)get(wa, "start", NULL, NULL)->valuedouble, base);
    ck_assert(cJSON_IsTrue(get(wa, "clean", NULL, NULL)));
    ck_assert_str_eq(get(wa, "state", NULL, NULL)->valuestring, "open");
    for (int s = 0; s < 4; s++) {
        ck_assert_int_eq((int)get(wa, "stages", stage_names[s], "n")->valuedouble, 20);
        ck_assert_int_eq((int)get(wa, "stages", stage_names[s], "late")->valuedouble, 0);
        ck_assert(get(wa, "stages", stage_names[s], "bytes")->valuedouble > 20 * 50);
    }
    ck_assert_int_eq((int)get(wa, "stages", "ingest", "outcomes")->child->valuedouble, 20);
    /* 50 ms falls in the bucket (45.3, 53.8]; 100 ms in (90.5, 107.6]; 300 in (269, 320] */
    const cJSON *iv = get(wa, "latency", "ingest->validator", NULL);
    ck_assert_int_eq((int)get(iv, "samples", NULL, NULL)->valuedouble, 20);
    double p50 = get(iv, "p50_ms", NULL, NULL)->valuedouble;
    ck_assert_msg(p50 >= 50 && p50 < 54, "p50 %f", p50);
    double p99 = get(wa, "latency", "validator->persister", "p99_ms")->valuedouble;
    ck_assert_msg(p99 >= 300 && p99 < 321, "p99 %f", p99);
    double pc = get(wa, "latency", "validator->cache-feeder", "p50_ms")->valuedouble;
    ck_assert_msg(pc >= 100 && pc < 108, "p50 cache %f", pc);
    ck_assert(!cJSON_IsTrue(get(wb, "clean", NULL, NULL)));
    const cJSON *reasons = get(wb, "reasons", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(reasons), 2);
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(reasons, 0)->valuestring, "cache-feeder"));
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(reasons, 1)->valuestring, "persister"));
    ck_assert_int_eq((int)get(wb, "balance", "valid_minus_persister", NULL)->valuedouble, 5);
    cJSON_Delete(j);

    /* close: 2 batches and 2 windows, one statement each; the webhook told
     * of the two that closed unclean (batch B, window B), not of A */
    char hook_flag[200], wsubj[96];
    snprintf(hook_flag, sizeof(hook_flag), "--alert.webhook.url=http://127.0.0.1:%d/hook",
             tu_hook_start(0));
    /* first a close whose transaction fails at its COMMIT (a deferred
     * trigger refuses the statements): nothing written, no alert sent */
    {
        char tsql[1024];
        snprintf(tsql, sizeof(tsql),
                 "CREATE FUNCTION %s.tb_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$f$BEGIN RAISE EXCEPTION 'refused at commit'; END$f$;"
                 "CREATE CONSTRAINT TRIGGER tb_refuse AFTER INSERT ON %s.statements "
                 "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION %s.tb_refuse();",
                 schema, schema, schema);
        tu_pg_exec(tsql);
        int crc = recon(&out, "close", hook_flag, NULL);
        ck_assert_msg(crc != 0 && crc != 1, "close with a failing COMMIT: exit %d", crc);
        free(out);
        usleep(300000);
        ck_assert_int_eq(tu_hook_taken(), 0);
        snprintf(tsql, sizeof(tsql), "DROP TRIGGER tb_refuse ON %s.statements;"
                 "DROP FUNCTION %s.tb_refuse();", schema, schema);
        tu_pg_exec(tsql);
    }
    ck_assert_int_eq(recon(&out, "close", hook_flag, NULL), 0);
    ck_assert_msg(strstr(out, "closed: 2 batches, 2 windows"), "%s", out);
    free(out);
    ck_assert_int_eq(tu_hook_taken(), 2); /* sent before the close exits */
    snprintf(wsubj, sizeof(wsubj), "payee@%lld", (long long)(base + WMS));
    for (int i = 0; i < 2; i++) {
        j = tu_hook_wait(i, 1000);
        const char *kind = get(j, "kind", NULL, NULL)->valuestring;
        ck_assert_str_eq(get(j, "event", NULL, NULL)->valuestring,
                         !strcmp(kind, "batch") ? "batch.closed.unclean" : "window.closed.unclean");
        ck_assert_str_eq(get(j, "subject", NULL, NULL)->valuestring,
                         !strcmp(kind, "batch") ? batch_b : wsubj);
        ck_assert(!cJSON_IsTrue(get(j, "clean", NULL, NULL)));
        cJSON_Delete(j);
    }
    ck_assert_int_eq(recon(&out, "close", hook_flag, NULL), 0); /* nothing more is due */
    ck_assert_msg(strstr(out, "closed: 0 batches, 0 windows"), "%s", out);
    free(out);
    ck_assert_int_eq(recon(&out, "verify-chain", "--json", NULL), 0);
    j = json_of(out);
    ck_assert(cJSON_IsTrue(get(j, "ok", NULL, NULL)));
    ck_assert_int_eq((int)get(j, "statements", NULL, NULL)->valuedouble, 4);
    cJSON_Delete(j);

    /* a late record of window A: counted late, reopens A and batch A */
    snprintf(name, sizeof(name), "%s-late", batch_a);
    full_record(batch_a, name, base + 500);
    flush();
    ck_assert_int_eq(recon(&out, "close", hook_flag, NULL), 0);
    ck_assert_msg(strstr(out, "closed: 1 batches, 1 windows (0 unclean, 2 amended)"), "%s", out);
    free(out);
    ck_assert_int_eq(tu_hook_taken(), 2); /* amended clean over clean: no alert */
    tu_hook_stop();
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM %s.statements WHERE seq = 6 AND version = 2 AND kind = 'window' AND "
             "body LIKE '%%\"amends\":3%%' AND body LIKE '%%\"late\":1%%'", schema);
    ck_assert_msg(tu_pg_count(sql) == 1, "no amended window statement 6");
    ck_assert_int_eq(recon(&out, "verify-chain", NULL), 0);
    ck_assert_msg(strstr(out, "chain intact: 6 statements"), "%s", out);
    free(out);

    /* an edited statement: verify-chain exits 1 naming it */
    snprintf(sql, sizeof(sql),
             "UPDATE %s.statements SET body = replace(body, '\"clean\":false', '\"clean\":true') "
             "WHERE seq = 4", schema);
    tu_pg_exec(sql);
    ck_assert_int_eq(recon(&out, "verify-chain", "--json", NULL), 1);
    j = json_of(out);
    ck_assert(!cJSON_IsTrue(get(j, "ok", NULL, NULL)));
    ck_assert_int_eq((int)get(j, "broken_seq", NULL, NULL)->valuedouble, 4);
    ck_assert_ptr_nonnull(strstr(get(j, "reason", NULL, NULL)->valuestring, "edited"));
    cJSON_Delete(j);
    /* a statement removed (the edited one too): the gap is named */
    snprintf(sql, sizeof(sql), "DELETE FROM %s.statements WHERE seq = 4", schema);
    tu_pg_exec(sql);
    ck_assert_int_eq(recon(&out, "verify-chain", NULL), 1);
    ck_assert_msg(strstr(out, "BROKEN at statement 5") && strstr(out, "missing"), "%s", out);
    free(out);
}
END_TEST

START_TEST(http_windows_and_reconcile_on_demand)
{
    int64_t base = (core_now_ms() - 3 * 3600 * 1000LL) / WMS * WMS;
    char batch[64], name[96], path[400], pflag[40];
    int port = tu_free_port();
    cJSON *j;

    snprintf(batch, sizeof(batch), "wh%s", tu_unique());
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "%s-%02d", batch, i);
        full_record(batch, name, base + 1000 + i);
    }
    flush();
    snprintf(pflag, sizeof(pflag), "--http.port=%d", port);
    const char *args[] = { pflag, topic_flag, schema_flag, "--log.level=error", "--grace.ms=1000",
                           "--close.idle.ms=86400000", "--close.interval.ms=3600000",
                           "--sinks=cache-feeder,persister", "--batch.timeout.ms=50",
                           "--auth.open=true" /* RBAC: test_recon_api */, NULL };
    pid_t pid = tu_spawn("svc-recon", args, tu_env(true), NULL);
    /* ready, and the daemon has applied the 40 events */
    int64_t deadline = core_mono_ms() + 60000;
    long code = 0;
    snprintf(path, sizeof(path), "/windows?dataset=payee&from=%lld&to=%lld", (long long)base,
             (long long)(base + WMS));
    while (core_mono_ms() < deadline) {
        code = tu_http_json(port, "GET", path, NULL, &j);
        if (code == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "windows")) == 1 &&
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                                    cJSON_GetArrayItem(cJSON_GetObjectItem(j, "windows"), 0),
                                    "stages"), "persister"), "n") &&
            get(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "windows"), 0), "stages", "persister",
                "n")->valuedouble == 10)
            break;
        cJSON_Delete(j);
        j = NULL;
        usleep(200000);
    }
    ck_assert_msg(j != NULL, "GET /windows never showed the window (last %ld)", code);
    ck_assert(cJSON_IsTrue(get(j, "clean", NULL, NULL)));
    cJSON_Delete(j);
    /* bad input: 400 */
    ck_assert_int_eq(tu_http_json(port, "GET", "/windows?dataset=payee&from=x&to=1", NULL, NULL), 400);
    ck_assert_int_eq(tu_http_json(port, "GET", "/windows?dataset=nosuch&from=1&to=2", NULL, NULL), 400);
    ck_assert_int_eq(tu_http_json(port, "GET", "/windows?from=1&to=2", NULL, NULL), 400);
    ck_assert_int_eq(tu_http_json(port, "POST", "/reconcile?from=5&to=1", NULL, NULL), 400);
    ck_assert_int_eq(tu_http_json(port, "POST", "/reconcile?batch=nosuchbatch", NULL, NULL), 404);
    /* on demand: the batch (not yet due: close.idle.ms is a day) */
    snprintf(path, sizeof(path), "/reconcile?batch=%s", batch);
    ck_assert_int_eq(tu_http_json(port, "POST", path, NULL, &j), 200);
    ck_assert(cJSON_IsTrue(get(j, "clean", NULL, NULL)));
    ck_assert_int_eq((int)get(j, "counts", "delivered", NULL)->valuedouble, 10);
    ck_assert(!cJSON_IsTrue(get(j, "closed_now", NULL, NULL)));
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/reconcile?from=%lld&to=%lld", (long long)base,
             (long long)(base + WMS));
    ck_assert_int_eq(tu_http_json(port, "POST", path, NULL, &j), 200);
    ck_assert(cJSON_IsTrue(get(j, "clean", NULL, NULL)));
    ck_assert_int_eq(cJSON_GetArraySize(get(j, "datasets", NULL, NULL)), 1);
    cJSON_Delete(j);
    int status;
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("recon_window");
    TCase *tc = tcase_create("recon_window");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, windows_close_into_a_hash_chain_amended_after_late_events);
    tcase_add_test(tc, http_windows_and_reconcile_on_demand);
    suite_add_tcase(s, tc);
    int rc = tu_run(&s, 1);
    curl_global_cleanup();
    return rc;
}
