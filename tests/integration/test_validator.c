/* test_validator.c — svc-validator on the real local stack (Kafka, Redis):
 *
 *   - N payee records with planted invalid ones (bad ABA checksum), poison
 *     ones (bytes that are not Avro), ones the external verifier refuses
 *     (404: a verdict), ones it fails for a while (503 / 429, then
 *     recovers: retried), and ones it keeps failing (exhausted after the
 *     configured retries); the verifier is a local HTTP server (core_http)
 *     started by the test on an ephemeral port;
 *   - the validator is killed with SIGKILL mid-stream and restarted;
 *   - a read_committed consumer then counts every output topic: exact
 *     counts per topic and class, every tb.id exactly once across .valid and
 *     .dlq, one audit event per consumed record (raw + retry), the retry
 *     records' headers replaced (one tb.attempt each), DLQ records with the
 *     original bytes and Kafka Connect's header names;
 *   - replay of the exhausted class after the verifier recovered: the
 *     replayed records come back through to .valid.
 *
 * Size: TB_TEST_VALIDATOR_N records (default 100000). */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_http.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOOTSTRAP "127.0.0.1:9092"
#define PARTS 3
#define MAX_ATTEMPTS 3

static const core_kafka_prop kdefaults[] = { { "bootstrap.servers", BOOTSTRAP } };

/* ---- the planted records ------------------------------------------------ */

enum { K_VALID, K_INVALID, K_POISON, K_REFUSED, K_TRANSIENT, K_EXHAUSTED };

static int kind_of(size_t i)
{
    if (i % 211 == 7)
        return K_POISON;
    if (i % 97 == 5)
        return K_INVALID;
    if (i % 503 == 11)
        return K_REFUSED;
    if (i % 401 == 13)
        return K_TRANSIENT;
    if (i % 4999 == 17)
        return K_EXHAUSTED;
    return K_VALID;
}

/* ---- the verifier: GET /accounts/<account> ------------------------------ */

#define MAX_TRANSIENT 4096
static atomic_int transient_calls[MAX_TRANSIENT];
static atomic_bool exhausted_recovered;
static atomic_long verifier_calls;

static void h_account(const core_http_request *req, core_http_response *resp, void *opaque)
{
    const char *acc = req->path + strlen("/accounts/");

    (void)opaque;
    atomic_fetch_add(&verifier_calls, 1);
    if (acc[0] == 'R') {
        resp->status = 404;
    } else if (acc[0] == 'T') {
        long k = strtol(acc + 1, NULL, 10) % MAX_TRANSIENT;

        /* The first two calls of each key fail, then it recovers. */
        if (atomic_fetch_add(&transient_calls[k], 1) < 2)
            resp->status = k % 2 ? 429 : 503;
    } else if (acc[0] == 'E') {
        if (!atomic_load(&exhausted_recovered))
            resp->status = 503;
    }
    resp->body = core_http_printf("{}");
    resp->content_type = "application/json";
}

/* ---- helpers ------------------------------------------------------------ */

static char *proto_copy(int port)
{
    char *dir = strdup("/tmp/tb-validator-proto-XXXXXX");
    char path[1024], src[1024], errstr[256];
    DIR *d;
    struct dirent *e;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    d = opendir(tu_proto_dir());
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d))) {
        size_t len;
        char *text;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(src, sizeof(src), "%s/%s", tu_proto_dir(), e->d_name);
        text = core_read_file(src, 1 << 20, &len, errstr, sizeof(errstr));
        if (!text)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        if (strcmp(e->d_name, "payee.rules.json") == 0) {
            cJSON *j = cJSON_Parse(text);
            cJSON *rule = cJSON_CreateObject(), *ext = cJSON_CreateObject();
            char url[256], *out;

            snprintf(url, sizeof(url), "http://127.0.0.1:%d/accounts/{value}", port);
            cJSON_AddStringToObject(rule, "field", "account_number");
            cJSON_AddStringToObject(ext, "url", url);
            cJSON_AddNumberToObject(ext, "cache_ttl_s", 600);
            cJSON_AddNumberToObject(ext, "negative_ttl_s", 600);
            cJSON_AddNumberToObject(ext, "timeout_ms", 3000);
            cJSON_AddItemToObject(rule, "external", ext);
            cJSON_AddItemToArray(cJSON_GetObjectItem(j, "rules"), rule);
            out = cJSON_Print(j);
            fputs(out, f);
            free(out);
            cJSON_Delete(j);
        } else {
            fwrite(text, 1, len, f);
        }
        fclose(f);
        free(text);
    }
    closedir(d);
    return dir;
}

static void rm_dir(char *dir)
{
    char cmd[1200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

static void create_topics(const char *const *names, size_t n)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_NewTopic_t *nt[8];
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;

    rd_kafka_conf_set(conf, "bootstrap.servers", BOOTSTRAP, errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    for (size_t i = 0; i < n; i++)
        nt[i] = rd_kafka_NewTopic_new(names[i], PARTS, 1, errstr, sizeof(errstr));
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, n, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    ck_assert_ptr_nonnull(ev);
    {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);

        ck_assert_int_eq(cnt, n);
        for (size_t i = 0; i < cnt; i++)
            ck_assert_msg(rd_kafka_topic_result_error(tr[i]) == 0 ||
                              rd_kafka_topic_result_error(tr[i]) ==
                                  RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
                          "create %s: %s", rd_kafka_topic_result_name(tr[i]),
                          rd_kafka_topic_result_error_string(tr[i]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, n);
    rd_kafka_destroy(rk);
}

static char *payee_json(size_t i, const char *run, int kind)
{
    char buf[1024], account[160];
    const char *routing = kind == K_INVALID ? "111111111" : "021000021";

    switch (kind) {
    case K_REFUSED: snprintf(account, sizeof(account), "R%s%zu", run, i); break;
    case K_TRANSIENT: snprintf(account, sizeof(account), "T%zu%s", i / 401, run); break;
    case K_EXHAUSTED: snprintf(account, sizeof(account), "E%s%zu", run, i); break;
    default: /* repeated accounts: the cache answers most of them */
        snprintf(account, sizeof(account), "A%s%zu", run, i % 2000);
    }
    snprintf(buf, sizeof(buf),
             "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012zu\",\"op\":\"ADD\","
             "\"kind\":\"BULK\",\"source\":\"test\",\"batch_id\":\"b-%s\",\"seq\":%zu,"
             "\"event_time\":1700000000000,\"version\":1,\"old_key\":null},"
             "\"payee_id\":\"P%zu\",\"name\":\"Name %zu\",\"account_number\":\"%s\","
             "\"routing_number\":\"%s\",\"iban\":null,\"country\":\"US\",\"currency\":\"USD\","
             "\"email\":\"p%zu@example.com\",\"amount_limit\":\"1000.00\",\"status\":\"ACTIVE\","
             "\"updated_at\":1700000000000}",
             i, run, i, i, i, account, routing, i);
    return strdup(buf);
}

static void produce_records(const char *topic, size_t n, const char *run)
{
    char errstr[512];
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p;
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), errstr, sizeof(errstr));
    const core_avro_schema_t *s;

    ck_assert_msg(cat != NULL, "%s", errstr);
    s = core_avro_catalog_by_dataset(cat, "payee");
    o.defaults = kdefaults;
    o.ndefaults = 1;
    p = core_kafka_producer_new(&o, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    for (size_t i = 0; i < n; i++) {
        int kind = kind_of(i);
        char key[32], id[32], ts[32];
        void *buf = NULL;
        size_t len = 0;
        core_kafka_header h[3];

        snprintf(key, sizeof(key), "P%zu", i);
        snprintf(id, sizeof(id), "id-%zu", i);
        snprintf(ts, sizeof(ts), "%" PRId64, core_now_ms());
        h[0] = (core_kafka_header){ "tb.id", id, strlen(id) };
        h[1] = (core_kafka_header){ "tb.batch", run, strlen(run) };
        h[2] = (core_kafka_header){ "tb.ingest.ts", ts, strlen(ts) };
        if (kind == K_POISON) {
            static const char poison[] = "\x00\x00\x00\x00\x65garbage that is not avro";

            len = sizeof(poison) - 1;
            buf = malloc(len);
            memcpy(buf, poison, len);
        } else {
            char *js = payee_json(i, run, kind);
            cJSON *j = cJSON_Parse(js);
            avro_value_t v;

            ck_assert_int_eq(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)), CORE_OK);
            ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, errstr, sizeof(errstr)),
                             CORE_OK);
            avro_value_decref(&v);
            cJSON_Delete(j);
            free(js);
        }
        ck_assert_int_eq(core_kafka_produce(p, topic, key, strlen(key), buf, len, h, 3, NULL,
                                            errstr, sizeof(errstr)),
                         CORE_OK);
        free(buf);
        if (i % 1000 == 0)
            core_kafka_producer_poll(p, 0);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 60000), 0);
    ck_assert_int_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
}

/* ---- counting a topic (read_committed) ---------------------------------- */

typedef struct counter {
    core_kafka_consumer_t *c;
    size_t n;
    size_t cls[3]; /* dlq: invalid, poison, exhausted */
    uint8_t *seen; /* by tb.id index */
    size_t nseen;
    size_t dups;
    size_t bad_headers; /* retry: more than one tb.attempt; dlq: missing Connect headers */
    size_t value_changed;
    const char *kind;
} counter;

static void counter_open(counter *k, const char *topic, const char *kind, size_t nids)
{
    static const core_kafka_prop over[] = { { "isolation.level", "read_committed" } };
    char errstr[512], group[128];
    core_kafka_consumer_opts o = { 0 };
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTS);

    memset(k, 0, sizeof(*k));
    snprintf(group, sizeof(group), "tv-count-%s", tu_unique());
    o.defaults = kdefaults;
    o.ndefaults = 1;
    o.overrides = over;
    o.noverrides = 1;
    o.group_id = group;
    k->c = core_kafka_consumer_new(&o, errstr, sizeof(errstr));
    ck_assert_msg(k->c != NULL, "%s", errstr);
    for (int i = 0; i < PARTS; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(core_kafka_consumer_assign(k->c, parts, errstr, sizeof(errstr)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(parts);
    k->kind = kind;
    k->nseen = nids;
    k->seen = nids ? calloc(nids, 1) : NULL;
}

static void counter_close(counter *k)
{
    core_kafka_consumer_free(k->c);
    free(k->seen);
}

static size_t header_count(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len, n = 0;

    if (rd_kafka_message_headers(m, &h) != 0)
        return 0;
    while (rd_kafka_header_get(h, n, name, &v, &len) == 0)
        n++;
    return n;
}

static bool header_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;

    if (rd_kafka_message_headers(m, &h) != 0 || rd_kafka_header_get_last(h, name, &v, &len) != 0)
        return false;
    if (len >= size)
        len = size - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return true;
}

/* Read what is there now (up to ms). */
static void counter_drain(counter *k, int ms)
{
    int64_t end = core_mono_ms() + ms;

    while (core_mono_ms() < end) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(k->c, 50);
        char buf[128];

        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        k->n++;
        if (k->seen && header_str(m, "tb.id", buf, sizeof(buf)) && strncmp(buf, "id-", 3) == 0) {
            size_t i = strtoull(buf + 3, NULL, 10);

            if (i < k->nseen) {
                if (k->seen[i]++)
                    k->dups++;
            }
        }
        if (strcmp(k->kind, "dlq") == 0) {
            if (header_str(m, "tb.error.class", buf, sizeof(buf))) {
                if (strcmp(buf, "invalid") == 0)
                    k->cls[0]++;
                else if (strcmp(buf, "poison") == 0)
                    k->cls[1]++;
                else if (strcmp(buf, "exhausted") == 0)
                    k->cls[2]++;
            }
            if (header_count(m, "__connect.errors.topic") != 1 ||
                header_count(m, "__connect.errors.exception.message") != 1 ||
                header_count(m, "tb.error.field") != 1 || header_count(m, "tb.ingest.ts") != 1)
                k->bad_headers++;
        } else if (strcmp(k->kind, "retry") == 0) {
            if (header_count(m, "tb.attempt") != 1 || header_count(m, "tb.not_before") != 1 ||
                header_count(m, "tb.id") != 1)
                k->bad_headers++;
        }
        rd_kafka_message_destroy(m);
    }
}

/* ---- the validator process ---------------------------------------------- */

typedef struct vproc {
    pid_t pid;
    char log[256];
} vproc;

static void spawn(vproc *vp, const char *proto, const char *prefix, const char *group,
                  const char *instance, const char *sub, const char *const *extra,
                  char **out)
{
    char envp0[1100], bin[1024];
    char *envp[] = { envp0, "PATH=/usr/bin:/bin", NULL };
    const char *argv[40];
    int n = 0, fd;

    snprintf(envp0, sizeof(envp0), "TB_PROTO_DIR=%s", proto);
    snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
    argv[n++] = bin;
    if (sub)
        argv[n++] = sub;
    argv[n++] = "--dataset";
    argv[n++] = "payee";
    argv[n++] = "--topic.prefix";
    argv[n++] = prefix;
    argv[n++] = "--group.id";
    argv[n++] = group;
    argv[n++] = "--instance.id";
    argv[n++] = instance;
    argv[n++] = "--http.port";
    argv[n++] = "0";
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if (out) { /* run to completion */
        ck_assert_int_eq(tu_run_cmd((char *const *)argv, envp, out, NULL, 120000), 0);
        return;
    }
    snprintf(vp->log, sizeof(vp->log), "/tmp/tb-validator-%s.log", instance);
    vp->pid = fork();
    ck_assert_int_ge(vp->pid, 0);
    if (vp->pid == 0) {
        fd = open(vp->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execve(bin, (char *const *)argv, envp);
        _exit(127);
    }
}

static int stop(vproc *vp, int sig)
{
    int status = 0;

    kill(vp->pid, sig);
    ck_assert_int_eq(waitpid(vp->pid, &status, 0), vp->pid);
    return status;
}

/* ---- the test ----------------------------------------------------------- */

START_TEST(exactly_once_with_kill_and_replay)
{
    const char *env_n = getenv("TB_TEST_VALIDATOR_N");
    size_t n = env_n ? strtoull(env_n, NULL, 10) : 100000;
    size_t want[6] = { 0 };
    char errstr[256], prefix[128], group[128], inst[128], run[32];
    char raw[192], valid[192], retry[192], dlq[192], audit[192];
    const char *topics[5] = { raw, valid, retry, dlq, audit };
    core_http_t *http;
    char *proto;
    counter cv, cr, cd, ca;
    vproc vp;
    int64_t t0, deadline;
    const char *const extra[] = { "--retry.base.ms", "300", "--retry.max.ms", "1000",
                                  "--retry.max.attempts", "3", "--audit.topic", audit,
                                  "--batch.max", "2000",
                                  /* the planted transient keys fail in bursts by
                                   * design: no breaker (test_validator_verify
                                   * covers it) */
                                  "--verify.breaker.failures", "0", NULL };

    for (size_t i = 0; i < n; i++)
        want[kind_of(i)]++;
    snprintf(run, sizeof(run), "r%dx%" PRId64, (int)getpid(), core_now_ms() % 1000000);
    snprintf(prefix, sizeof(prefix), "tv%s.", tu_unique());
    snprintf(group, sizeof(group), "tv-group-%s", tu_unique());
    snprintf(inst, sizeof(inst), "tv-%s", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    snprintf(valid, sizeof(valid), "%spayee.valid", prefix);
    snprintf(retry, sizeof(retry), "%spayee.retry", prefix);
    snprintf(dlq, sizeof(dlq), "%spayee.dlq", prefix);
    snprintf(audit, sizeof(audit), "%saudit.events", prefix);
    create_topics(topics, 5);

    http = core_http_new("127.0.0.1", 0, NULL, errstr, sizeof(errstr));
    ck_assert_msg(http != NULL, "%s", errstr);
    ck_assert_int_eq(core_http_route(http, "GET", "/accounts/*", h_account, NULL), CORE_OK);
    proto = proto_copy(core_http_port(http));

    t0 = core_mono_ms();
    spawn(&vp, proto, prefix, group, inst, NULL, extra, NULL);
    produce_records(raw, n, run);
    fprintf(stderr, "validator test: %zu records produced in %.1f s\n", n,
            (core_mono_ms() - t0) / 1000.0);

    counter_open(&cv, valid, "valid", n);
    counter_open(&cd, dlq, "dlq", n);
    counter_open(&cr, retry, "retry", 0);
    counter_open(&ca, audit, "audit", 0);

    /* Kill -9 once a third has gone through. */
    deadline = core_mono_ms() + 120000;
    while (cv.n + cd.n < n / 3 && core_mono_ms() < deadline)
        counter_drain(&cv, 200);
    ck_assert_msg(cv.n + cd.n >= n / 3, "validator made no progress: %zu (log %s)",
                  cv.n + cd.n, vp.log);
    ck_assert(WIFSIGNALED(stop(&vp, SIGKILL)));
    fprintf(stderr, "validator test: killed at %zu outputs after %.1f s\n", cv.n + cd.n,
            (core_mono_ms() - t0) / 1000.0);
    spawn(&vp, proto, prefix, group, inst, NULL, extra, NULL);

    deadline = core_mono_ms() + 150000;
    while (cv.n + cd.n < n && core_mono_ms() < deadline) {
        counter_drain(&cv, 200);
        counter_drain(&cd, 100);
    }
    fprintf(stderr, "validator test: all %zu through after %.1f s\n", cv.n + cd.n,
            (core_mono_ms() - t0) / 1000.0);
    /* Anything more would be a duplicate: give it a moment to show. */
    counter_drain(&cv, 1500);
    counter_drain(&cd, 500);
    counter_drain(&cr, 3000);
    counter_drain(&ca, 5000);
    {
        size_t audit_before = ca.n;

        counter_drain(&ca, 1000);
        ck_assert_uint_eq(ca.n, audit_before);
    }

    ck_assert_uint_eq(cv.n, want[K_VALID] + want[K_TRANSIENT]);
    ck_assert_uint_eq(cv.dups, 0);
    ck_assert_uint_eq(cd.n, want[K_INVALID] + want[K_POISON] + want[K_REFUSED] +
                                want[K_EXHAUSTED]);
    ck_assert_uint_eq(cd.dups, 0);
    ck_assert_uint_eq(cd.cls[0], want[K_INVALID] + want[K_REFUSED]);
    ck_assert_uint_eq(cd.cls[1], want[K_POISON]);
    ck_assert_uint_eq(cd.cls[2], want[K_EXHAUSTED]);
    ck_assert_uint_eq(cd.bad_headers, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(cv.seen[i] + cd.seen[i] == 1, "record %zu seen %d times", i,
                      cv.seen[i] + cd.seen[i]);
    /* Exhausted keys never succeed: exactly MAX_ATTEMPTS retries each;
     * transient keys fail twice at most (fewer when an attempt's call was
     * made in a transaction the kill aborted). */
    ck_assert_uint_ge(cr.n, want[K_EXHAUSTED] * MAX_ATTEMPTS + want[K_TRANSIENT]);
    ck_assert_uint_le(cr.n, want[K_EXHAUSTED] * MAX_ATTEMPTS + 2 * want[K_TRANSIENT]);
    ck_assert_uint_eq(cr.bad_headers, 0);
    /* One audit event per consumed record, raw and retry: nothing doubled. */
    ck_assert_uint_eq(ca.n, n + cr.n);
    /* The cache answered the repeated accounts: without it every record
     * would have called (the factor 2 covers batches redone after the kill). */
    {
        size_t distinct = (n < 2000 ? n : 2000) + want[K_REFUSED] + 2 * want[K_TRANSIENT] +
                          (MAX_ATTEMPTS + 1) * want[K_EXHAUSTED];

        ck_assert_int_le(atomic_load(&verifier_calls), (long)(2 * distinct));
    }

    /* Replay: the verifier recovered; the exhausted ones come back through. */
    atomic_store(&exhausted_recovered, true);
    {
        char *out = NULL;
        const char *const dry[] = { "--class", "exhausted", "--dry.run", NULL };
        const char *const real[] = { "--class", "exhausted", NULL };
        char expect[128];

        spawn(NULL, proto, prefix, group, inst, "replay", dry, &out);
        snprintf(expect, sizeof(expect), "%zu of %zu DLQ records match", want[K_EXHAUSTED], cd.n);
        ck_assert_msg(strstr(out, expect) != NULL, "replay --dry.run said: %s", out);
        free(out);
        out = NULL;
        spawn(NULL, proto, prefix, group, inst, "replay", real, &out);
        snprintf(expect, sizeof(expect), "%zu published", want[K_EXHAUSTED]);
        ck_assert_msg(strstr(out, expect) != NULL, "replay said: %s", out);
        free(out);
    }
    {
        size_t before = cv.n;

        deadline = core_mono_ms() + 60000;
        while (cv.n < before + want[K_EXHAUSTED] && core_mono_ms() < deadline)
            counter_drain(&cv, 200);
        ck_assert_uint_eq(cv.n, before + want[K_EXHAUSTED]);
    }
    /* Invalidation of one value's cached verification: once, then nothing left. */
    {
        char value[64], *out = NULL;
        const char *const inv[] = { "--field", "account_number", "--value", value, NULL };

        snprintf(value, sizeof(value), "A%s%d", run, 5);
        spawn(NULL, proto, prefix, group, inst, "invalidate", inv, &out);
        ck_assert_msg(strstr(out, "1 cached verifications deleted") != NULL, "invalidate: %s",
                      out);
        free(out);
        out = NULL;
        spawn(NULL, proto, prefix, group, inst, "invalidate", inv, &out);
        ck_assert_msg(strstr(out, "0 cached verifications deleted") != NULL, "invalidate: %s",
                      out);
        free(out);
    }
    /* The same over HTTP on the running validator: DELETE /cache. */
    {
        char *log = core_read_file(vp.log, 64 << 20, NULL, errstr, sizeof(errstr));
        const char *at, *last = NULL;
        char url[256], value[64];
        int port;
        long code = 0;
        CURL *c = curl_easy_init();

        ck_assert_ptr_nonnull(log);
        for (at = log; (at = strstr(at, "\"http_port\":")); at++)
            last = at;
        ck_assert_ptr_nonnull(last);
        port = atoi(last + strlen("\"http_port\":"));
        free(log);
        snprintf(value, sizeof(value), "A%s%d", run, 6);
        snprintf(url, sizeof(url),
                 "http://127.0.0.1:%d/cache?dataset=payee&field=account_number&value=%s", port,
                 value);
        for (int round = 0; round < 2; round++) {
            FILE *body = tmpfile();
            char got[64] = "";

            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
            curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
            ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            ck_assert_int_eq(code, 200);
            rewind(body);
            ck_assert_ptr_nonnull(fgets(got, sizeof(got), body));
            ck_assert_str_eq(got, round == 0 ? "{\"deleted\":1}\n" : "{\"deleted\":0}\n");
            fclose(body);
        }
        curl_easy_cleanup(c);
    }
    {
        int st = stop(&vp, SIGTERM);

        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "validator did not exit 0 on SIGTERM (status %d, log %s)", st, vp.log);
    }
    fprintf(stderr, "validator test: done in %.1f s (verifier calls %ld)\n",
            (core_mono_ms() - t0) / 1000.0, atomic_load(&verifier_calls));

    counter_close(&cv);
    counter_close(&cd);
    counter_close(&cr);
    counter_close(&ca);
    core_http_free(http);
    rm_dir(proto);
    unlink(vp.log);
    tu_topics_delete(topics, 5);
}
END_TEST

/* ---- small runs: a few records, every output read back ------------------ */

/* One record of a small run: its Kafka key (NULL: null; keylen bytes, so a
 * key may hold a NUL) and its natural JSON. */
typedef struct small_rec {
    const char *key;
    size_t keylen;
    char *json;
} small_rec;

/* What a small run put out: the DLQ records' headers (every header of
 * every record, "name=value\n"), the audit events' reasons (one a line),
 * the counts, and the validator's log. */
typedef struct small_out {
    core_strbuf dlq_headers;
    core_strbuf audit_reasons;
    size_t nvalid, ndlq, naudit, ninvalid;
    char *log;
} small_out;

/* The payee record i of payee_json() with payee_id bk and the given fields
 * replaced (name/value pairs, NULL-terminated). */
static char *payee_with(size_t i, const char *run, const char *bk, const char *const *kv)
{
    char *js = payee_json(i, run, K_VALID), *out;
    cJSON *j = cJSON_Parse(js);

    free(js);
    ck_assert_ptr_nonnull(j);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "payee_id", cJSON_CreateString(bk));
    for (size_t k = 0; kv && kv[k]; k += 2)
        cJSON_ReplaceItemInObjectCaseSensitive(j, kv[k], cJSON_CreateString(kv[k + 1]));
    out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

static void small_run(const small_rec *recs, size_t n, small_out *out)
{
    char errstr[256], prefix[128], group[128], inst[128];
    char raw[192], valid[192], retry[192], dlq[192], audit[192];
    const char *topics[5] = { raw, valid, retry, dlq, audit };
    const char *const extra[] = { "--audit.topic", audit, "--log.level", "debug",
                                  "--commit.interval.ms", "100", NULL };
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), errstr, sizeof(errstr));
    core_avro_decoder_t *dec;
    const core_avro_schema_t *s;
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *p;
    counter cv, cd, ca;
    vproc vp;
    int64_t deadline;
    int st;

    ck_assert_msg(cat != NULL, "%s", errstr);
    dec = core_avro_decoder_new(cat, errstr, sizeof(errstr));
    ck_assert_msg(dec != NULL, "%s", errstr);
    s = core_avro_catalog_by_dataset(cat, "payee");
    memset(out, 0, sizeof(*out));
    core_strbuf_add(&out->dlq_headers, "");
    core_strbuf_add(&out->audit_reasons, "");
    snprintf(prefix, sizeof(prefix), "tvs%s.", tu_unique());
    snprintf(group, sizeof(group), "tvs-group-%s", tu_unique());
    snprintf(inst, sizeof(inst), "tvs-%s", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    snprintf(valid, sizeof(valid), "%spayee.valid", prefix);
    snprintf(retry, sizeof(retry), "%spayee.retry", prefix);
    snprintf(dlq, sizeof(dlq), "%spayee.dlq", prefix);
    snprintf(audit, sizeof(audit), "%saudit.events", prefix);
    create_topics(topics, 5);

    po.defaults = kdefaults;
    po.ndefaults = 1;
    p = core_kafka_producer_new(&po, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(recs[i].json);
        avro_value_t v;
        void *buf = NULL;
        size_t len = 0;

        ck_assert_ptr_nonnull(j);
        ck_assert_msg(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s",
                      errstr);
        ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, errstr, sizeof(errstr)), CORE_OK);
        ck_assert_int_eq(core_kafka_produce(p, raw, recs[i].key, recs[i].keylen, buf, len, NULL,
                                            0, NULL, errstr, sizeof(errstr)),
                         CORE_OK);
        avro_value_decref(&v);
        cJSON_Delete(j);
        free(buf);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    ck_assert_int_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);

    spawn(&vp, tu_proto_dir(), prefix, group, inst, NULL, extra, NULL);
    counter_open(&cv, valid, "valid", 0);
    counter_open(&cd, dlq, "dlq", 0);
    counter_open(&ca, audit, "audit", 0);
    /* One audit event per record: then every output is there. */
    deadline = core_mono_ms() + 90000;
    while (out->naudit < n && core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(ca.c, 100);
        const core_avro_schema_t *as;
        avro_value_t *av;
        cJSON *ej, *r;

        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        ck_assert_msg(core_avro_decoder_decode(dec, m->payload, m->len, &as, &av, errstr,
                                               sizeof(errstr)) == CORE_OK,
                      "audit event: %s", errstr);
        ej = core_avro_to_json(as, av, errstr, sizeof(errstr));
        ck_assert_msg(ej != NULL, "%s", errstr);
        r = cJSON_GetObjectItemCaseSensitive(ej, "reason");
        if (cJSON_IsObject(r))
            r = cJSON_GetObjectItemCaseSensitive(r, "string");
        if (cJSON_IsString(r))
            core_strbuf_addf(&out->audit_reasons, "%s\n", r->valuestring);
        cJSON_Delete(ej);
        rd_kafka_message_destroy(m);
        out->naudit++;
    }
    ck_assert_msg(out->naudit == n, "%zu audit events of %zu (log %s)", out->naudit, n, vp.log);
    counter_drain(&cv, 1000);
    deadline = core_mono_ms() + 10000;
    while (core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(cd.c, 100);
        rd_kafka_headers_t *h = NULL;
        const char *name;
        const void *val;
        size_t len;

        if (!m) {
            if (out->ndlq + cv.n >= n)
                break;
            continue;
        }
        if (!m->err) {
            out->ndlq++;
            if (rd_kafka_message_headers(m, &h) == 0)
                for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++) {
                    core_strbuf_addf(&out->dlq_headers, "%s=%.*s\n", name, (int)len,
                                     val ? (const char *)val : "");
                    if (!strcmp(name, "tb.error.class") && len == 7 && !memcmp(val, "invalid", 7))
                        out->ninvalid++;
                }
        }
        rd_kafka_message_destroy(m);
    }
    out->nvalid = cv.n;
    st = stop(&vp, SIGTERM);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validator exit status %d (log %s)", st,
                  vp.log);
    out->log = core_read_file(vp.log, 64 << 20, NULL, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(out->log);
    counter_close(&cv);
    counter_close(&cd);
    counter_close(&ca);
    core_avro_decoder_free(dec);
    core_avro_catalog_free(cat);
    unlink(vp.log);
    tu_topics_delete(topics, 5);
}

static void small_out_free(small_out *o)
{
    core_strbuf_free(&o->dlq_headers);
    core_strbuf_free(&o->audit_reasons);
    free(o->log);
}

/* Issue 15 item 9: the sinks key by the business key and Kafka orders per
 * Kafka key, so a .raw record whose Kafka key is null or is not its
 * business key (another text, the same with a NUL after it, empty) goes to
 * the DLQ as invalid, with a reason naming the mismatch and neither key. */
START_TEST(raw_key_null_or_not_business_key_to_dlq)
{
    char run[32];
    small_rec r[5];
    small_out o;

    snprintf(run, sizeof(run), "k%dx%" PRId64, (int)getpid(), core_now_ms() % 1000000);
    r[0] = (small_rec){ NULL, 0, payee_with(0, run, "BKSECRET0", NULL) };
    r[1] = (small_rec){ "KKSECRET1", 9, payee_with(1, run, "BKSECRET1", NULL) };
    r[2] = (small_rec){ "BKSECRET2\0", 10, payee_with(2, run, "BKSECRET2", NULL) };
    r[3] = (small_rec){ "", 0, payee_with(3, run, "BKSECRET3", NULL) };
    r[4] = (small_rec){ "BKSECRET4", 9, payee_with(4, run, "BKSECRET4", NULL) };
    small_run(r, 5, &o);
    ck_assert_uint_eq(o.nvalid, 1); /* only the record keyed by its business key */
    ck_assert_uint_eq(o.ndlq, 4);
    ck_assert_uint_eq(o.ninvalid, 4);
    ck_assert_msg(strstr(o.dlq_headers.p, "__connect.errors.exception.message=Kafka key is null;"),
                  "%s", o.dlq_headers.p);
    ck_assert_msg(strstr(o.dlq_headers.p,
                         "__connect.errors.exception.message=Kafka key differs from the business "
                         "key (payee_id)"),
                  "%s", o.dlq_headers.p);
    ck_assert_msg(strstr(o.dlq_headers.p, "tb.error.field=payee_id\n"), "%s", o.dlq_headers.p);
    ck_assert_msg(strstr(o.audit_reasons.p, "Kafka key differs from the business key"), "%s",
                  o.audit_reasons.p);
    ck_assert_msg(!strstr(o.dlq_headers.p, "SECRET"), "a key in the DLQ headers: %s",
                  o.dlq_headers.p);
    ck_assert_msg(!strstr(o.audit_reasons.p, "SECRET"), "a key in an audit reason: %s",
                  o.audit_reasons.p);
    for (size_t i = 0; i < 5; i++)
        free(r[i].json);
    small_out_free(&o);
}
END_TEST

/* Issue 15 item 8: personal fields (tb.personal: email, account_number,
 * name) that fail a rule: the DLQ headers, the audit event's reason and the
 * log lines (at debug) name the field and the rule, never the value. */
START_TEST(personal_value_failing_a_rule_never_quoted)
{
    char run[32], longname[160];
    small_rec r[2];
    small_out o;
    const char *const bad1[] = { "email", "PIISECRET.mail.example", "account_number",
                                 "PII-SECRET-ACCT", NULL };
    const char *const bad2[] = { "name", longname, NULL };

    snprintf(run, sizeof(run), "p%dx%" PRId64, (int)getpid(), core_now_ms() % 1000000);
    memset(longname, 'x', 141); /* length max 140 */
    memcpy(longname, "PIISECRET", 9);
    longname[141] = '\0';
    r[0] = (small_rec){ "PK1", 3, payee_with(0, run, "PK1", bad1) };
    r[1] = (small_rec){ "PK2", 3, payee_with(1, run, "PK2", bad2) };
    small_run(r, 2, &o);
    ck_assert_uint_eq(o.nvalid, 0);
    ck_assert_uint_eq(o.ninvalid, 2);
    ck_assert_msg(strstr(o.dlq_headers.p, "tb.error.field=account_number,email\n") ||
                      strstr(o.dlq_headers.p, "tb.error.field=email,account_number\n"),
                  "%s", o.dlq_headers.p);
    ck_assert_msg(strstr(o.dlq_headers.p, "tb.error.field=name\n"), "%s", o.dlq_headers.p);
    ck_assert_msg(strstr(o.audit_reasons.p, "email fails the email check"), "%s",
                  o.audit_reasons.p);
    ck_assert_msg(!strstr(o.dlq_headers.p, "SECRET"), "a value in the DLQ headers: %s",
                  o.dlq_headers.p);
    ck_assert_msg(!strstr(o.audit_reasons.p, "SECRET"), "a value in an audit reason: %s",
                  o.audit_reasons.p);
    ck_assert_msg(!strstr(o.log, "SECRET"), "a value in the log: %s", o.log);
    for (size_t i = 0; i < 2; i++)
        free(r[i].json);
    small_out_free(&o);
}
END_TEST

/* A bad rules file stops the service at start-up with one line naming it. */
START_TEST(refuses_unknown_dataset)
{
    char bin[1024], *err = NULL;
    char envp0[1100];
    char *envp[] = { envp0, "PATH=/usr/bin:/bin", NULL };
    char *argv[] = { bin, "--dataset", "nosuch", "--http.port", "0", NULL };

    snprintf(envp0, sizeof(envp0), "TB_PROTO_DIR=%s", tu_proto_dir());
    snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
    ck_assert_int_eq(tu_run_cmd(argv, envp, NULL, &err, 20000), 78);
    ck_assert_ptr_nonnull(strstr(err, "nosuch"));
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("validator");
    TCase *tc = tcase_create("stack");

    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, exactly_once_with_kill_and_replay);
    tcase_add_test(tc, refuses_unknown_dataset);
    tcase_add_test(tc, raw_key_null_or_not_business_key_to_dlq);
    tcase_add_test(tc, personal_value_failing_a_rule_never_quoted);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
