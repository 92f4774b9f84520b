/* test_cache_feeder_stream.c — the svc-cache-feeder binary against the real
 * broker and real Redis servers: a stream that mixes bulk, change and delete
 * events (moved keys, out-of-order versions, a few undecodable records) must
 * leave Redis exactly in the expected final state, key by key:
 *
 *   - plain run, then a replay of the whole topic by a new consumer group
 *     (nothing changes; every record is a stale skip);
 *   - kill -9 of the feeder mid-stream, then a restart;
 *   - a PRIVATE redis-server (own port, AOF with appendfsync always, an ACL
 *     user, the default user disabled) killed mid-stream and restarted.
 *
 * Unique topics, consumer groups and key prefixes per run (tu_unique()). The
 * shared Redis on :6379 is only written under this run's prefix. */
#include "testutil.h"
#include "tu_stack.h"

#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"
#include "tributary/core_redis.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NK 1200          /* business keys "k<i>" (plus moved keys "m<i>") */
#define NBAD 3           /* undecodable records in the stream */

typedef struct ev {
    char key[32];
    void *wire;
    size_t len;
} ev;

typedef struct expect {
    int64_t ver;         /* 0: never written */
    bool del;
    char *json;          /* the document the winner leaves in Redis */
} expect;

static core_avro_catalog_t *cat;
static const core_avro_schema_t *schema;
static ev *evs;
static size_t nev;
static expect exp_k[NK], exp_m[NK];
static char uniq[64], topic_tmpl[128], topic[128], prefix[64];
static size_t ngood;

/* ---- the stream and its expected final state ---------------------------------- */

static void model(expect *e, int64_t ver, bool del, const char *json)
{
    if (ver <= e->ver)
        return;
    e->ver = ver;
    e->del = del;
    free(e->json);
    e->json = json ? strdup(json) : NULL;
}

static expect *exp_of(const char *key)
{
    int i = atoi(key + 1);
    return key[0] == 'k' ? &exp_k[i] : &exp_m[i];
}

static void add_event(const char *op, const char *kind, const char *key, int64_t ver,
                      const char *old_key, const char *batch, int64_t et)
{
    char json[2048], err[512] = "", oldk[64];
    cJSON *j, *back;
    avro_value_t v;
    char *doc;
    ev *e = &evs[nev++];

    snprintf(oldk, sizeof(oldk), old_key ? "\"%s\"" : "null", old_key ? old_key : "");
    snprintf(json, sizeof(json),
             "{\"meta\":{\"id\":\"%s-%s-%" PRId64 "\",\"op\":\"%s\",\"kind\":\"%s\",\"source\":\"test\","
             "\"batch_id\":\"%s\",\"seq\":%zu,\"event_time\":%" PRId64 ",\"version\":%" PRId64 ",\"old_key\":%s},"
             "\"setting_key\":\"%s\",\"client_id\":\"client-%s\",\"account_id\":\"acc-%s\","
             "\"setting_name\":\"statement.paperless\",\"setting_value\":\"%s@%" PRId64 "\","
             "\"value_type\":\"STRING\",\"card_last4\":%s,\"updated_at\":%" PRId64 "}",
             uniq, key, ver, op, kind, batch, nev, et, ver, oldk, key, key, key, op, ver,
             ver % 2 ? "\"1234\"" : "null", et);
    j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(schema, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_encode(schema, &v, &e->wire, &e->len, err, sizeof(err)) == CORE_OK, "%s", err);
    back = core_avro_to_json(schema, &v, err, sizeof(err));
    ck_assert_ptr_nonnull(back);
    doc = cJSON_PrintUnformatted(back);
    snprintf(e->key, sizeof(e->key), "%s", key);
    if (strcmp(op, "DELETE") == 0) {
        model(exp_of(key), ver, true, NULL);
    } else {
        model(exp_of(key), ver, false, doc);
        if (old_key)
            model(exp_of(old_key), ver, true, NULL);
    }
    ngood++;
    free(doc);
    cJSON_Delete(back);
    cJSON_Delete(j);
    avro_value_decref(&v);
}

static void add_garbage(int i)
{
    ev *e = &evs[nev++];
    static const unsigned char bad[] = { 0, 0, 0, 0, 103, 0xff, 0xff, 0xff, 0xff, 0x0f };

    snprintf(e->key, sizeof(e->key), "bad%d", i);
    e->wire = malloc(sizeof(bad));
    memcpy(e->wire, bad, sizeof(bad));
    e->len = sizeof(bad);
}

/* Bulk load, then changes with out-of-order versions, deletes, moves. */
static void build_stream(void)
{
    char key[32], key2[32];
    const char *bulk = "bulk-1";

    evs = calloc(NK * 8 + NBAD, sizeof(*evs));
    for (int i = 0; i < NK; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        add_event("ADD", "BULK", key, 10, NULL, bulk, 1000);
    }
    for (int i = 0; i < NK; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        add_event("UPDATE", "CHANGE", key, 30, NULL, "chg-1", 3000);
        add_event("ADD", "CHANGE", key, 20, NULL, "chg-1", 2000); /* older, after */
        if (i % 5 == 0) {
            add_event("DELETE", "CHANGE", key, 40, NULL, "chg-1", 4000);
            add_event("ADD", "CHANGE", key, 35, NULL, "chg-1", 3500); /* older than the delete */
        }
        if (i % 7 == 3) {
            snprintf(key2, sizeof(key2), "m%d", i);
            add_event("UPDATE", "CHANGE", key2, 50, key, "chg-1", 5000);
        }
        if (i % 11 == 0)
            add_event("ADD", "CHANGE", key, 60, NULL, "chg-1", 6000);
        if (i % 400 == 7 && nev < (size_t)(NK * 8))
            add_garbage(i / 400);
    }
}

static void setup(void)
{
    char err[512] = "";

    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "%s", err);
    schema = core_avro_catalog_by_dataset(cat, "account_setting");
    snprintf(uniq, sizeof(uniq), "cf%s_%lld", tu_unique(), (long long)(core_now_ms() % 100000));
    snprintf(topic_tmpl, sizeof(topic_tmpl), "{dataset}.valid.%s", uniq);
    snprintf(topic, sizeof(topic), "account_setting.valid.%s", uniq);
    snprintf(prefix, sizeof(prefix), "%s", uniq);
    memset(exp_k, 0, sizeof(exp_k));
    memset(exp_m, 0, sizeof(exp_m));
    nev = ngood = 0;
    build_stream();
}

static void teardown(void)
{
    for (size_t i = 0; i < nev; i++)
        free(evs[i].wire);
    free(evs);
    for (int i = 0; i < NK; i++) {
        free(exp_k[i].json);
        free(exp_m[i].json);
    }
    core_avro_catalog_free(cat);
}

/* ---- Kafka ------------------------------------------------------------------ */

static void produce_range(size_t from, size_t to)
{
    char err[512] = "";
    core_kafka_producer_opts o = { 0 };
    core_kafka_prop defaults[] = { { "bootstrap.servers", "127.0.0.1:9092" }, { "linger.ms", "5" } };
    core_kafka_producer_t *p;

    o.defaults = defaults;
    o.ndefaults = 2;
    p = core_kafka_producer_new(&o, err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    for (size_t i = from; i < to; i++)
        ck_assert_msg(core_kafka_produce(p, topic, evs[i].key, strlen(evs[i].key), evs[i].wire,
                                         evs[i].len, NULL, 0, NULL, err, sizeof(err)) == CORE_OK,
                      "%s", err);
    ck_assert_uint_eq(core_kafka_producer_flush(p, 60000), 0);
    ck_assert_uint_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);
}

/* ---- the feeder process ------------------------------------------------------- */

typedef struct proc {
    pid_t pid;
    char log[256];
    int port;
} proc;

static void feeder_start(proc *p, const char *group, int redis_port, const char *user,
                         const char *pwfile)
{
    char a_tmpl[200], a_prefix[100], a_group[100], a_rport[64], a_user[100], a_pw[300];
    char a_audit[160], env_proto[1024];
    char *argv[24];
    char *envp[] = { env_proto, "PATH=/usr/bin:/bin", NULL };
    int n = 0;

    snprintf(env_proto, sizeof(env_proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    snprintf(p->log, sizeof(p->log), "/tmp/%s_%s.log", uniq, group);
    snprintf(a_tmpl, sizeof(a_tmpl), "--topic.template=%s", topic_tmpl);
    snprintf(a_prefix, sizeof(a_prefix), "--cache.prefix=%s", prefix);
    snprintf(a_group, sizeof(a_group), "--group.id=%s_%s", uniq, group);
    snprintf(a_rport, sizeof(a_rport), "--redis.port=%d", redis_port);
    snprintf(a_audit, sizeof(a_audit), "--audit.topic=audit.%s", uniq);
    static char bin[1024];
    snprintf(bin, sizeof(bin), "%s/bin/svc-cache-feeder", tu_build_dir());
    argv[n++] = bin;
    argv[n++] = "--dataset=account_setting";
    argv[n++] = a_tmpl;
    argv[n++] = a_prefix;
    argv[n++] = a_group;
    argv[n++] = a_rport;
    argv[n++] = a_audit;
    argv[n++] = "--http.port=0";
    argv[n++] = "--batch.size=20";
    argv[n++] = "--commit.interval.ms=300";
    argv[n++] = "--redis.backoff.base.ms=50";
    argv[n++] = "--redis.backoff.max.ms=400";
    argv[n++] = "--redis.connect.timeout.ms=500";
    argv[n++] = "--shutdown.grace.ms=5000";
    if (user) {
        snprintf(a_user, sizeof(a_user), "--redis.user=%s", user);
        argv[n++] = a_user;
    }
    if (pwfile) {
        snprintf(a_pw, sizeof(a_pw), "--redis.password_file=%s", pwfile);
        argv[n++] = a_pw;
    }
    argv[n] = NULL;
    p->port = 0;
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    /* wait for the "started" line: it names the HTTP port */
    int64_t deadline = core_mono_ms() + 20000;
    while (core_mono_ms() < deadline && p->port == 0) {
        char *text = core_read_file(p->log, 1 << 22, NULL, NULL, 0);
        const char *s = text ? strstr(text, "\"msg\":\"started\"") : NULL;
        const char *hp = s ? strstr(s, "\"http_port\":") : NULL;
        if (hp)
            p->port = atoi(hp + strlen("\"http_port\":"));
        free(text);
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
            ck_abort_msg("svc-cache-feeder exited early; see %s", p->log);
        if (!p->port)
            usleep(20000);
    }
    ck_assert_msg(p->port > 0, "svc-cache-feeder never started; see %s", p->log);
}

static int feeder_stop(proc *p, int sig)
{
    int status = 0;
    int64_t deadline = core_mono_ms() + 15000;

    kill(p->pid, sig);
    while (core_mono_ms() < deadline && waitpid(p->pid, &status, WNOHANG) == 0)
        usleep(20000);
    return status;
}

/* Sum of the samples of a metric whose line contains `filter` (may be ""). */
static double metric(int port, const char *name, const char *filter)
{
    double sum;

    tu_metric_sum(port, name, filter, &sum);
    return sum;
}

/* ---- Redis state -------------------------------------------------------------- */

static core_redis_t *redis_at(int port, const char *user, const char *password)
{
    char err[512];
    core_redis_opts o = { 0 };
    core_redis_t *r;

    o.port = port;
    o.user = user;
    o.password = password;
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 200;
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(core_redis_ensure(r, core_mono_ms() + 10000, err, sizeof(err)) == CORE_OK,
                  "redis on %d: %s", port, err);
    return r;
}

/* 0 when Redis holds exactly the expected records under the prefix; else
 * writes the first difference into why. */
static int compare_state(core_redis_t *r, char *why, size_t whysize)
{
    char err[512], cursor[32] = "0", pat[128], dkey[160];
    size_t live_expected = 0, live_found = 0;
    redisReply *rep;

    snprintf(pat, sizeof(pat), "%s:account_setting:*", prefix);
    do {
        rep = core_redis_command(r, err, sizeof(err), "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            snprintf(why, whysize, "SCAN failed: %s", err);
            freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        live_found += rep->element[1]->elements;
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < NK; i++) {
            expect *e = t == 0 ? &exp_k[i] : &exp_m[i];
            snprintf(dkey, sizeof(dkey), "%s:account_setting:%c%d", prefix, t == 0 ? 'k' : 'm', i);
            if (e->ver > 0 && !e->del)
                live_expected++;
            rep = core_redis_command(r, err, sizeof(err), "GET %s", dkey);
            if (!rep) {
                snprintf(why, whysize, "GET failed: %s", err);
                return -1;
            }
            if (e->ver == 0 || e->del) {
                if (rep->type != REDIS_REPLY_NIL) {
                    snprintf(why, whysize, "%s should be absent", dkey);
                    freeReplyObject(rep);
                    return -1;
                }
            } else if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, e->json) != 0) {
                snprintf(why, whysize, "%s: got %.200s, want %.200s", dkey,
                         rep->type == REDIS_REPLY_STRING ? rep->str : "(none)", e->json);
                freeReplyObject(rep);
                return -1;
            }
            freeReplyObject(rep);
        }
    }
    if (live_found != live_expected) {
        snprintf(why, whysize, "%zu records under %s, want %zu", live_found, pat, live_expected);
        return -1;
    }
    return 0;
}

static void wait_state(core_redis_t *r, int timeout_ms, const char *log)
{
    char why[600] = "";
    int64_t deadline = core_mono_ms() + timeout_ms;

    while (compare_state(r, why, sizeof(why)) != 0) {
        if (core_mono_ms() > deadline)
            ck_abort_msg("Redis never reached the expected state: %s (log %s)", why, log);
        usleep(100000);
    }
}

static long long hlen_meta(core_redis_t *r)
{
    char err[256], key[128];
    redisReply *rep;
    long long n = -1;

    snprintf(key, sizeof(key), "%s#meta:account_setting", prefix);
    rep = core_redis_command(r, err, sizeof(err), "HLEN %s", key);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static void cleanup_keys(core_redis_t *r)
{
    char err[256], cursor[32] = "0", pat[128];

    snprintf(pat, sizeof(pat), "%s[:#]*", prefix);
    do {
        redisReply *rep = core_redis_command(r, err, sizeof(err), "SCAN %s MATCH %s COUNT 1000",
                                             cursor, pat);
        if (!rep)
            return;
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++)
            freeReplyObject(core_redis_command(r, err, sizeof(err), "DEL %s",
                                               rep->element[1]->element[i]->str));
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
}

/* ---- audit events ------------------------------------------------------------- */

typedef struct audit_counts {
    int total, cached, deleted, stale, rejected, wrong_stage, no_digest;
    int no_content; /* decoded records without their content digest */
} audit_counts;

/* Read the run's audit topic from its start until want events came (or the
 * deadline) and count them by outcome. */
static void read_audit(int want, audit_counts *ac)
{
    char err[512] = "", topic_a[160], group[160];
    core_kafka_consumer_opts o = { 0 };
    core_kafka_prop defaults[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    core_kafka_consumer_t *c;
    const char *topics[1];
    int64_t deadline = core_mono_ms() + 60000;

    memset(ac, 0, sizeof(*ac));
    snprintf(topic_a, sizeof(topic_a), "audit.%s", uniq);
    snprintf(group, sizeof(group), "%s_auditreader", uniq);
    o.defaults = defaults;
    o.ndefaults = 1;
    o.group_id = group;
    c = core_kafka_consumer_new(&o, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    topics[0] = topic_a;
    ck_assert(core_kafka_consumer_subscribe(c, topics, 1, err, sizeof(err)) == CORE_OK);
    while (ac->total < want && core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 200);
        const core_avro_schema_t *s = NULL;
        avro_value_t v;
        cJSON *j;
        if (!m)
            continue;
        if (m->err || core_avro_decode(cat, m->payload, m->len, &s, &v, err, sizeof(err)) != CORE_OK) {
            rd_kafka_message_destroy(m);
            continue;
        }
        j = core_avro_to_json(s, &v, err, sizeof(err));
        if (j) {
            const char *out = cJSON_GetObjectItem(j, "outcome")->valuestring;
            const cJSON *d = cJSON_GetObjectItem(j, "digest");
            ac->total++;
            ac->cached += !strcmp(out, "cached");
            ac->deleted += !strcmp(out, "deleted");
            ac->stale += !strcmp(out, "stale_skipped");
            ac->rejected += !strcmp(out, "rejected");
            ac->wrong_stage += strcmp(cJSON_GetObjectItem(j, "stage")->valuestring, "cache-feeder") != 0;
            ac->no_digest += !cJSON_IsString(d) || strlen(d->valuestring) != 64;
            const cJSON *cd = cJSON_GetObjectItem(j, "content_digest");
            if (strcmp(out, "rejected") != 0)
                ac->no_content += !cJSON_IsString(cd) || strlen(cd->valuestring) != 64;
            cJSON_Delete(j);
        }
        avro_value_decref(&v);
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_free(c);
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(mixed_stream_reaches_exact_state_and_replay_changes_nothing)
{
    proc p, q;
    core_redis_t *r = redis_at(6379, NULL, NULL);
    double ops;
    int64_t deadline;

    produce_range(0, nev);
    feeder_start(&p, "a", 6379, NULL, NULL);
    wait_state(r, 90000, p.log);
    /* every record accounted for: the undecodable ones rejected, by name */
    deadline = core_mono_ms() + 20000;
    while (metric(p.port, "tributary_cache_operations_total", "") < (double)nev &&
           core_mono_ms() < deadline)
        usleep(50000);
    ck_assert_int_eq((int)metric(p.port, "tributary_cache_operations_total", ""), (int)nev);
    ck_assert_int_eq((int)metric(p.port, "tributary_cache_operations_total", "outcome=\"rejected\""), NBAD);
    ck_assert_int_gt(metric(p.port, "tributary_cache_stale_skips_total", "reason=\"older\""), 0);
    ck_assert_int_gt(metric(p.port, "tributary_cache_batch_size_count", ""), 0);
    ck_assert_int_eq(WEXITSTATUS(feeder_stop(&p, SIGTERM)), 0);
    {
        char *log = core_read_file(p.log, 1 << 24, NULL, NULL, 0);
        ck_assert_ptr_nonnull(log);
        ck_assert_msg(strstr(log, "\"msg\":\"record rejected\"") != NULL, "no rejection logged");
        free(log);
    }

    /* replay the topic from its start with a new group: nothing changes */
    feeder_start(&q, "replay", 6379, NULL, NULL);
    deadline = core_mono_ms() + 60000;
    while ((ops = metric(q.port, "tributary_cache_operations_total", "")) < (double)nev &&
           core_mono_ms() < deadline)
        usleep(50000);
    ck_assert_int_eq((int)ops, (int)nev);
    ck_assert_int_eq((int)metric(q.port, "tributary_cache_operations_total", "outcome=\"cached\""), 0);
    ck_assert_int_eq((int)metric(q.port, "tributary_cache_operations_total", "outcome=\"deleted\""), 0);
    ck_assert_int_eq((int)metric(q.port, "tributary_cache_operations_total", "outcome=\"stale_skipped\""),
                     (int)ngood);
    {
        char why[600] = "";
        ck_assert_msg(compare_state(r, why, sizeof(why)) == 0, "after replay: %s", why);
    }
    ck_assert_int_eq(WEXITSTATUS(feeder_stop(&q, SIGTERM)), 0);
    /* one audit event per record and run, with the payload digest */
    {
        audit_counts ac;
        read_audit(2 * (int)nev, &ac);
        ck_assert_int_eq(ac.total, 2 * (int)nev);
        ck_assert_int_eq(ac.rejected, 2 * NBAD);
        ck_assert_int_eq(ac.cached + ac.deleted + ac.stale, 2 * (int)ngood);
        ck_assert_int_gt(ac.cached, 0);
        ck_assert_int_gt(ac.deleted, 0);
        ck_assert_int_ge(ac.stale, (int)ngood);
        ck_assert_int_eq(ac.wrong_stage, 0);
        ck_assert_int_eq(ac.no_digest, 0);
        ck_assert_int_eq(ac.no_content, 0);
    }
    cleanup_keys(r);
    core_redis_free(r);
    unlink(p.log);
    unlink(q.log);
}
END_TEST

START_TEST(kill_9_mid_stream_then_restart_gives_the_same_state)
{
    proc p;
    core_redis_t *r = redis_at(6379, NULL, NULL);
    int64_t deadline;
    long long seen = 0;
    int status;

    produce_range(0, nev);
    feeder_start(&p, "k9", 6379, NULL, NULL);
    deadline = core_mono_ms() + 30000;
    while ((seen = hlen_meta(r)) < NK / 4 && core_mono_ms() < deadline)
        usleep(2000);
    ck_assert_int_ge(seen, NK / 4);
    status = feeder_stop(&p, SIGKILL);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    fprintf(stderr, "kill -9 after %lld of %d keys had a version\n", hlen_meta(r), NK + NK / 7 + 1);

    feeder_start(&p, "k9", 6379, NULL, NULL);
    wait_state(r, 90000, p.log);
    ck_assert_int_eq(WEXITSTATUS(feeder_stop(&p, SIGTERM)), 0);
    cleanup_keys(r);
    core_redis_free(r);
    unlink(p.log);
}
END_TEST

/* A private redis-server: AOF fsynced on every write, an ACL user for the
 * feeder, a password on the default user. (Not "default off": Redis 7.0.15
 * then refuses the MULTI/EXEC blocks of its own AOF on load, NOPERM, and
 * comes back empty.) */
static pid_t redis_private_start(int port, const char *dir)
{
    char a_port[32], a_dir[300];
    pid_t pid;

    snprintf(a_port, sizeof(a_port), "%d", port);
    snprintf(a_dir, sizeof(a_dir), "%s", dir);
    pid = fork();
    if (pid == 0) {
        char *argv[] = { "/usr/bin/redis-server", "--port", a_port, "--bind", "127.0.0.1",
                         "--dir", a_dir, "--appendonly", "yes", "--appendfsync", "always",
                         "--save", "", "--user", "default", "on", ">adm1n", "~*", "&*", "+@all",
                         "--user", "feeder", "on", ">s3cret", "~*", "&*", "+@all", NULL };
        char logp[400];
        snprintf(logp, sizeof(logp), "%s/redis.log", dir);
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

START_TEST(redis_restart_mid_stream_gives_the_same_state)
{
    char dir[256], pwfile[300];
    int port = 16390 + (int)(getpid() % 500);
    pid_t rp;
    proc p;
    core_redis_t *r;
    int64_t deadline;
    int status;
    FILE *fp;

    snprintf(dir, sizeof(dir), "/tmp/%s_redis", uniq);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
    fp = fopen(pwfile, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("s3cret\n", fp);
    fclose(fp);
    rp = redis_private_start(port, dir);
    ck_assert_int_gt(rp, 0);
    r = redis_at(port, "feeder", "s3cret");

    /* first part of the stream, fed while Redis is up */
    produce_range(0, nev / 2);
    feeder_start(&p, "rr", port, "feeder", pwfile);
    deadline = core_mono_ms() + 30000;
    while (hlen_meta(r) < NK / 4 && core_mono_ms() < deadline)
        usleep(5000);
    ck_assert_int_ge(hlen_meta(r), NK / 4);

    /* Redis dies (SIGKILL: only the fsynced AOF survives), the rest of the
     * stream arrives, the feeder notices and pauses */
    core_redis_disconnect(r);
    kill(rp, SIGKILL);
    waitpid(rp, &status, 0);
    produce_range(nev / 2, nev);
    deadline = core_mono_ms() + 30000;
    while (metric(p.port, "tributary_cache_redis_outages_total", "") < 1 && core_mono_ms() < deadline)
        usleep(20000);
    ck_assert_int_ge(metric(p.port, "tributary_cache_redis_outages_total", ""), 1);
    ck_assert_int_eq((int)metric(p.port, "tributary_cache_paused", ""), 1);

    /* Redis comes back: everything lands, nothing twice */
    rp = redis_private_start(port, dir);
    ck_assert_int_gt(rp, 0);
    wait_state(r, 90000, p.log);
    ck_assert_int_ge(metric(p.port, "tributary_redis_reconnects_total", ""), 1);
    ck_assert_int_eq((int)metric(p.port, "tributary_cache_paused", ""), 0);
    ck_assert_int_eq(WEXITSTATUS(feeder_stop(&p, SIGTERM)), 0);

    core_redis_free(r);
    kill(rp, SIGTERM);
    waitpid(rp, &status, 0);
    {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    unlink(p.log);
}
END_TEST

START_TEST(get_prints_the_cached_document)
{
    proc p;
    core_redis_t *r = redis_at(6379, NULL, NULL);
    char bin[1024], a_prefix[100], env_proto[1024];
    char *out = NULL, *err = NULL;
    char *envp[] = { env_proto, "PATH=/usr/bin:/bin", NULL };
    int rc;

    produce_range(0, nev);
    feeder_start(&p, "get", 6379, NULL, NULL);
    wait_state(r, 90000, p.log);
    ck_assert_int_eq(WEXITSTATUS(feeder_stop(&p, SIGTERM)), 0);

    snprintf(env_proto, sizeof(env_proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    snprintf(bin, sizeof(bin), "%s/bin/svc-cache-feeder", tu_build_dir());
    snprintf(a_prefix, sizeof(a_prefix), "--cache.prefix=%s", prefix);
    {
        char *argv[] = { bin, "get", "--dataset", "account_setting", a_prefix, "--http.port=0", "k1", NULL };
        rc = tu_run_cmd(argv, envp, &out, &err, 20000);
        ck_assert_msg(rc == 0, "get: %d %s", rc, err);
        ck_assert_msg(strncmp(out, exp_k[1].json, strlen(exp_k[1].json)) == 0, "got %s", out);
        free(out);
        free(err);
    }
    {
        char *argv[] = { bin, "get", "--dataset", "account_setting", a_prefix, "--http.port=0", "k0", NULL };
        /* k0 was deleted at v40 then re-added at v60 (i % 11 == 0) */
        rc = tu_run_cmd(argv, envp, &out, &err, 20000);
        ck_assert_int_eq(rc, 0);
        free(out);
        free(err);
    }
    {
        char *argv[] = { bin, "get", "--dataset", "account_setting", a_prefix, "--http.port=0", "k5", NULL };
        /* k5: deleted */
        rc = tu_run_cmd(argv, envp, &out, &err, 20000);
        ck_assert_int_eq(rc, 1);
        ck_assert_ptr_nonnull(strstr(err, "not in the cache"));
        free(out);
        free(err);
    }
    cleanup_keys(r);
    core_redis_free(r);
    unlink(p.log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache_feeder_stream");
    TCase *tc = tcase_create("stream");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, mixed_stream_reaches_exact_state_and_replay_changes_nothing);
    tcase_add_test(tc, kill_9_mid_stream_then_restart_gives_the_same_state);
    tcase_add_test(tc, redis_restart_mid_stream_gives_the_same_state);
    tcase_add_test(tc, get_prints_the_cached_document);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
