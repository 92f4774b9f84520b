/* test_cache_feeder_redis.c — svc-cache-feeder's Redis side (feeder.c)
 * against the real local Redis (TB_REDIS_HOST / TB_REDIS_PORT, default
 * 127.0.0.1:6379): each operation, the version guard with out-of-order
 * versions, UPDATE with a moved key, TTL, the three value formats, NOSCRIPT
 * after SCRIPT FLUSH, the bulk-reload purge, and bad input.
 *
 * Every test uses its own key prefix ("cft<pid>_<n>") and deletes its keys. */
#include "testutil.h"

#include "../../svc-cache-feeder/docjson.h"
#include "../../svc-cache-feeder/feeder.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static core_avro_catalog_t *cat;
static core_redis_t *r;
static feeder_t *f;
static feeder_dataset ds;
static char prefix[64];

static void setup(void)
{
    char err[512] = "";
    const char *h = getenv("TB_REDIS_HOST"), *p = getenv("TB_REDIS_PORT");
    core_redis_opts o = { 0 };

    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
    o.host = h && *h ? h : "127.0.0.1";
    o.port = p && *p ? atoi(p) : 6379;
    o.password = getenv("TB_REDIS_PASSWORD");
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "Redis not reachable: %s", err);
    f = feeder_new(r, err, sizeof(err));
    ck_assert_ptr_nonnull(f);
    snprintf(prefix, sizeof(prefix), "cft%s", tu_unique());
    ck_assert_int_eq(feeder_dataset_init(&ds, "account_setting",
                                         core_avro_catalog_by_dataset(cat, "account_setting"),
                                         prefix, "{dataset}.valid", err, sizeof(err)),
                     CORE_OK);
}

static void del_pattern(const char *pattern)
{
    char err[256], cursor[32] = "0";
    do {
        redisReply *rep = core_redis_command(r, err, sizeof(err), "SCAN %s MATCH %s COUNT 1000",
                                             cursor, pattern);
        if (!rep)
            return;
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++)
            freeReplyObject(core_redis_command(r, err, sizeof(err), "DEL %b",
                                               rep->element[1]->element[i]->str,
                                               rep->element[1]->element[i]->len));
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
}

static void teardown(void)
{
    char pat[128];

    snprintf(pat, sizeof(pat), "%s[:#]*", prefix);
    del_pattern(pat);
    feeder_dataset_clear(&ds);
    feeder_free(f);
    core_redis_free(r);
    core_avro_catalog_free(cat);
}

/* The wire bytes of one account_setting event; setting_value "v<version>". */
static void *make(const char *op, const char *kind, const char *key, int64_t version,
                  const char *old_key, const char *batch, int64_t event_time, size_t *lenp)
{
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "account_setting");
    char json[2048], err[512] = "", oldk[300];
    cJSON *j;
    avro_value_t v;
    void *buf = NULL;

    if (old_key)
        snprintf(oldk, sizeof(oldk), "\"%s\"", old_key);
    else
        snprintf(oldk, sizeof(oldk), "null");
    snprintf(json, sizeof(json),
             "{\"meta\":{\"id\":\"id-%s-%" PRId64 "\",\"op\":\"%s\",\"kind\":\"%s\",\"source\":\"test\","
             "\"batch_id\":\"%s\",\"seq\":1,\"event_time\":%" PRId64 ",\"version\":\"%" PRId64 "\",\"old_key\":%s},"
             "\"setting_key\":\"%s\",\"client_id\":\"c1\",\"account_id\":\"acc-1\","
             "\"setting_name\":\"card.contactless\",\"setting_value\":\"v%" PRId64 "\","
             "\"value_type\":\"STRING\",\"card_last4\":null,\"updated_at\":%" PRId64 "}",
             key, version, op, kind, batch, event_time, version, oldk, key, version, event_time);
    j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_encode(s, &v, &buf, lenp, err, sizeof(err)) == CORE_OK, "%s", err);
    avro_value_decref(&v);
    cJSON_Delete(j);
    return buf;
}

/* Prepare and run one event; returns its result. */
static feeder_result_t apply_full(const char *op, const char *kind, const char *key,
                                  int64_t version, const char *old_key, const char *batch,
                                  int64_t et, feeder_record *out)
{
    size_t len;
    void *buf = make(op, kind, key, version, old_key, batch, et, &len);
    char err[512] = "";
    feeder_record rec;
    feeder_result_t res;

    ck_assert_msg(feeder_prepare(f, &ds, cat, buf, len, &rec, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(feeder_exec(f, &rec, 1, err, sizeof(err)) == CORE_OK, "%s", err);
    res = rec.result;
    ck_assert_msg(res != FEEDER_RES_ERROR, "%s", rec.error);
    if (out)
        *out = rec;
    else
        feeder_record_clear(&rec);
    free(buf);
    return res;
}

static feeder_result_t apply(const char *op, const char *key, int64_t version)
{
    return apply_full(op, "CHANGE", key, version, NULL, "chg", 1000, NULL);
}

/* setting_value of the cached document, "" when absent (caller frees). */
static char *cached_value(const char *key)
{
    char *doc = NULL, err[512];
    int rc = feeder_get(f, &ds, cat, key, &doc, err, sizeof(err));
    cJSON *j, *sv;
    char *out;

    if (rc == CORE_ERR_NOTFOUND)
        return strdup("");
    ck_assert_msg(rc == CORE_OK, "%s", err);
    j = cJSON_Parse(doc);
    ck_assert_ptr_nonnull(j);
    sv = cJSON_GetObjectItem(j, "setting_value");
    ck_assert_ptr_nonnull(sv);
    out = strdup(sv->valuestring);
    cJSON_Delete(j);
    free(doc);
    return out;
}

#define ASSERT_VALUE(key, want)                                                        \
    do {                                                                               \
        char *got_ = cached_value(key);                                                \
        ck_assert_msg(strcmp(got_, want) == 0, "%s: got '%s', want '%s'", key, got_, want); \
        free(got_);                                                                    \
    } while (0)

START_TEST(add_overwrites_and_delete_removes)
{
    char err[256];
    redisReply *rep;
    char dkey[128];

    ck_assert_int_eq(apply("ADD", "k1", 1), FEEDER_RES_CACHED);
    ASSERT_VALUE("k1", "v1");
    ck_assert_int_eq(apply("ADD", "k1", 2), FEEDER_RES_CACHED);
    ASSERT_VALUE("k1", "v2");
    /* the key clients read: <prefix>:<dataset>:<key>, a JSON document */
    snprintf(dkey, sizeof(dkey), "%s:account_setting:k1", prefix);
    rep = core_redis_command(r, err, sizeof(err), "GET %s", dkey);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_ptr_nonnull(strstr(rep->str, "\"setting_key\":\"k1\""));
    freeReplyObject(rep);
    ck_assert_int_eq(apply("UPDATE", "k1", 3), FEEDER_RES_CACHED);
    ASSERT_VALUE("k1", "v3");
    ck_assert_int_eq(apply("DELETE", "k1", 4), FEEDER_RES_DELETED);
    ASSERT_VALUE("k1", "");
    rep = core_redis_command(r, err, sizeof(err), "EXISTS %s", dkey);
    ck_assert_int_eq(rep->integer, 0);
    freeReplyObject(rep);
}
END_TEST

START_TEST(version_guard_with_out_of_order_versions)
{
    feeder_record rec;

    ck_assert_int_eq(apply("ADD", "g", 5), FEEDER_RES_CACHED);
    /* older write: skipped, not a duplicate */
    ck_assert_int_eq(apply_full("ADD", "CHANGE", "g", 3, NULL, "chg", 1, &rec), FEEDER_RES_STALE);
    ck_assert(!rec.duplicate);
    feeder_record_clear(&rec);
    ASSERT_VALUE("g", "v5");
    /* the same version again (a replay): skipped as a duplicate */
    ck_assert_int_eq(apply_full("ADD", "CHANGE", "g", 5, NULL, "chg", 1, &rec), FEEDER_RES_STALE);
    ck_assert(rec.duplicate);
    feeder_record_clear(&rec);
    /* an older delete never removes a newer record */
    ck_assert_int_eq(apply("DELETE", "g", 4), FEEDER_RES_STALE);
    ASSERT_VALUE("g", "v5");
    ck_assert_int_eq(apply("DELETE", "g", 6), FEEDER_RES_DELETED);
    ASSERT_VALUE("g", "");
    /* the tombstone keeps an older write from bringing it back */
    ck_assert_int_eq(apply("ADD", "g", 5), FEEDER_RES_STALE);
    ASSERT_VALUE("g", "");
    ck_assert_int_eq(apply("ADD", "g", 7), FEEDER_RES_CACHED);
    ASSERT_VALUE("g", "v7");
}
END_TEST

START_TEST(update_with_moved_key)
{
    feeder_record rec;

    ck_assert_int_eq(apply("ADD", "old", 1), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply_full("UPDATE", "CHANGE", "new", 2, "old", "chg", 1, &rec), FEEDER_RES_CACHED);
    ck_assert(rec.moved);
    feeder_record_clear(&rec);
    ASSERT_VALUE("old", "");
    ASSERT_VALUE("new", "v2");
    /* replaying the old ADD leaves the old key gone */
    ck_assert_int_eq(apply("ADD", "old", 1), FEEDER_RES_STALE);
    ASSERT_VALUE("old", "");
    /* a move never deletes a newer record under the old key */
    ck_assert_int_eq(apply("ADD", "keep", 10), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply_full("UPDATE", "CHANGE", "new2", 3, "keep", "chg", 1, &rec), FEEDER_RES_CACHED);
    ck_assert(!rec.moved);
    feeder_record_clear(&rec);
    ASSERT_VALUE("keep", "v10");
    ASSERT_VALUE("new2", "v3");
    /* a move whose new key already holds a newer version still removes the
     * old record (each key is guarded by its own version) */
    ck_assert_int_eq(apply("ADD", "mv", 8), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("ADD", "mvn", 12), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply_full("UPDATE", "CHANGE", "mvn", 9, "mv", "chg", 1, &rec), FEEDER_RES_STALE);
    ck_assert(rec.moved);
    feeder_record_clear(&rec);
    ASSERT_VALUE("mv", "");
    ASSERT_VALUE("mvn", "v12");
}
END_TEST

START_TEST(ttl_per_dataset)
{
    char err[256], dkey[128];
    redisReply *rep;
    int64_t deadline;
    char *v;

    ds.ttl_ms = 60000;
    ck_assert_int_eq(apply("ADD", "t", 1), FEEDER_RES_CACHED);
    snprintf(dkey, sizeof(dkey), "%s:account_setting:t", prefix);
    rep = core_redis_command(r, err, sizeof(err), "PTTL %s", dkey);
    ck_assert_int_gt(rep->integer, 50000);
    ck_assert_int_le(rep->integer, 60000);
    freeReplyObject(rep);
    /* no TTL configured: a rewrite leaves none */
    ds.ttl_ms = 0;
    ck_assert_int_eq(apply("ADD", "t", 2), FEEDER_RES_CACHED);
    rep = core_redis_command(r, err, sizeof(err), "PTTL %s", dkey);
    ck_assert_int_eq(rep->integer, -1);
    freeReplyObject(rep);
    /* an expired record is not brought back by an older replay */
    ds.ttl_ms = 1;
    ck_assert_int_eq(apply("ADD", "t", 3), FEEDER_RES_CACHED);
    deadline = core_mono_ms() + 5000;
    while ((v = cached_value("t"))[0] && core_mono_ms() < deadline) {
        free(v);
        usleep(10000);
    }
    ck_assert_str_eq(v, "");
    free(v);
    ds.ttl_ms = 0;
    ck_assert_int_eq(apply("ADD", "t", 2), FEEDER_RES_STALE);
    ASSERT_VALUE("t", "");
}
END_TEST

START_TEST(hash_and_avro_formats)
{
    char err[512], dkey[128], *doc = NULL;
    redisReply *rep;
    size_t len;
    void *wire;

    ds.format = FEEDER_FMT_HASH;
    ck_assert_int_eq(apply("ADD", "h", 1), FEEDER_RES_CACHED);
    snprintf(dkey, sizeof(dkey), "%s:account_setting:h", prefix);
    rep = core_redis_command(r, err, sizeof(err), "HGET %s setting_value", dkey);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "v1");
    freeReplyObject(rep);
    rep = core_redis_command(r, err, sizeof(err), "HEXISTS %s card_last4", dkey);
    ck_assert_int_eq(rep->integer, 0); /* null fields are left out */
    freeReplyObject(rep);
    ck_assert_int_eq(apply("ADD", "h", 2), FEEDER_RES_CACHED);
    ASSERT_VALUE("h", "v2");

    ds.format = FEEDER_FMT_AVRO;
    wire = make("ADD", "CHANGE", "a", 1, NULL, "chg", 1000, &len);
    ck_assert_int_eq(apply("ADD", "a", 1), FEEDER_RES_CACHED);
    snprintf(dkey, sizeof(dkey), "%s:account_setting:a", prefix);
    rep = core_redis_command(r, err, sizeof(err), "GET %s", dkey);
    ck_assert_uint_eq(rep->len, len);
    ck_assert(memcmp(rep->str, wire, len) == 0);
    freeReplyObject(rep);
    free(wire);
    ck_assert_int_eq(feeder_get(f, &ds, cat, "a", &doc, err, sizeof(err)), CORE_OK);
    ck_assert_ptr_nonnull(strstr(doc, "\"setting_value\":\"v1\""));
    free(doc);
}
END_TEST

START_TEST(script_reloaded_after_noscript_in_a_pipeline)
{
    char err[512];
    feeder_record recs[3];
    const char *keys[3] = { "n1", "n2", "n1" };
    int64_t vers[3] = { 1, 1, 2 };
    redisReply *rep;

    rep = core_redis_command(r, err, sizeof(err), "SCRIPT FLUSH");
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
    for (int i = 0; i < 3; i++) {
        size_t len;
        void *buf = make("ADD", "CHANGE", keys[i], vers[i], NULL, "chg", 1, &len);
        ck_assert(feeder_prepare(f, &ds, cat, buf, len, &recs[i], err, sizeof(err)) == CORE_OK);
        free(buf);
    }
    ck_assert_msg(feeder_exec(f, recs, 3, err, sizeof(err)) == CORE_OK, "%s", err);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(recs[i].result, FEEDER_RES_CACHED);
        feeder_record_clear(&recs[i]);
    }
    ASSERT_VALUE("n1", "v2");
    ASSERT_VALUE("n2", "v1");
}
END_TEST

/* Records go to Redis as a few scripts of many records. A script Redis
 * refuses as a whole is run again one record per script: only the record at
 * fault is refused. Here an ACL user may write every key of the dataset but
 * one (NOPERM inside the script). */
START_TEST(one_refused_record_does_not_take_its_script_down)
{
    char err[512], user[96], allow[160], meta[160];
    const char *keys[5] = { "ok1", "ok2", "nope", "ok3", "ok4" };
    feeder_record recs[5];
    redisReply *rep;

    snprintf(user, sizeof(user), "%s_acl", prefix);
    snprintf(allow, sizeof(allow), "~%s:account_setting:ok*", prefix);
    snprintf(meta, sizeof(meta), "~%s#*", prefix);
    rep = core_redis_command(r, err, sizeof(err), "ACL SETUSER %s on >pw %s %s +@all", user, allow,
                             meta);
    ck_assert_msg(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER: %s", rep ? rep->str : err);
    freeReplyObject(rep);
    core_redis_opts o = { .host = "127.0.0.1", .port = 6379, .user = user, .password = "pw" };
    const char *h = getenv("TB_REDIS_HOST"), *p = getenv("TB_REDIS_PORT");
    if (h && *h)
        o.host = h;
    if (p && *p)
        o.port = atoi(p);
    core_redis_t *r2 = core_redis_new(&o, err, sizeof(err));
    ck_assert_msg(r2 != NULL, "%s", err);
    feeder_t *f2 = feeder_new(r2, err, sizeof(err));
    ck_assert_ptr_nonnull(f2);
    for (int i = 0; i < 5; i++) {
        size_t len;
        void *buf = make("ADD", "CHANGE", keys[i], 7, NULL, "chg", 1, &len);
        ck_assert(feeder_prepare(f2, &ds, cat, buf, len, &recs[i], err, sizeof(err)) == CORE_OK);
        free(buf);
    }
    ck_assert_msg(feeder_exec(f2, recs, 5, err, sizeof(err)) == CORE_OK, "%s", err);
    for (int i = 0; i < 5; i++) {
        if (i == 2) {
            ck_assert_int_eq(recs[i].result, FEEDER_RES_ERROR);
            ck_assert_msg(strstr(recs[i].error, "NOPERM") || strstr(recs[i].error, "access"),
                          "error: %s", recs[i].error);
        } else {
            ck_assert_msg(recs[i].result == FEEDER_RES_CACHED, "%s: result %d (%s)", keys[i],
                          recs[i].result, recs[i].error);
        }
        feeder_record_clear(&recs[i]);
    }
    ASSERT_VALUE("ok1", "v7");
    ASSERT_VALUE("ok4", "v7");
    ASSERT_VALUE("nope", "");
    feeder_free(f2);
    core_redis_free(r2);
    rep = core_redis_command(r, err, sizeof(err), "ACL DELUSER %s", user);
    freeReplyObject(rep);
}
END_TEST

/* Batches in flight when the connection dies: the one answered before is
 * done; the ones behind a blocked command never ran and are lost with the
 * connection (feeder_recv: TRANSIENT, nothing in flight any more). Redone
 * in their order they give the state a single pass gives, and redoing them
 * again (a batch that may or may not have run) changes nothing. */
START_TEST(in_flight_batches_are_redone_after_the_connection_dies)
{
    char err[512];
    feeder_record a[2], b[2], c[3];
    struct { feeder_record *recs; const char *op[3]; const char *key[3]; int64_t ver[3]; size_t n; } bt[3] = {
        { a, { "ADD", "ADD" }, { "f1", "f2" }, { 1, 1 }, 2 },
        { b, { "ADD", "ADD" }, { "f1", "f3" }, { 3, 1 }, 2 },
        { c, { "ADD", "ADD", "DELETE" }, { "f1", "f2", "f3" }, { 2, 5, 2 }, 3 },
    };
    redisReply *rep;
    long long id;
    core_redis_t *admin;
    core_redis_opts o = { 0 };
    const char *h = getenv("TB_REDIS_HOST"), *p = getenv("TB_REDIS_PORT");
    char blk[128];

    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < bt[k].n; i++) {
            size_t len;
            void *buf = make(bt[k].op[i], "CHANGE", bt[k].key[i], bt[k].ver[i], NULL, "chg", 1, &len);
            ck_assert(feeder_prepare(f, &ds, cat, buf, len, &bt[k].recs[i], err, sizeof(err)) == CORE_OK);
            free(buf);
        }
    o.host = h && *h ? h : "127.0.0.1";
    o.port = p && *p ? atoi(p) : 6379;
    o.password = getenv("TB_REDIS_PASSWORD");
    admin = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(admin);
    rep = core_redis_command(r, err, sizeof(err), "CLIENT ID");
    ck_assert_msg(rep && rep->type == REDIS_REPLY_INTEGER, "CLIENT ID: %s", err);
    id = rep->integer;
    freeReplyObject(rep);

    /* a runs; a blocking command holds b and c back in Redis's input */
    ck_assert_msg(feeder_send(f, a, 2, err, sizeof(err)) == CORE_OK, "%s", err);
    snprintf(blk, sizeof(blk), "%s:never", prefix);
    ck_assert_int_eq(core_redis_append_argv(r, 3, (const char *[]){ "BLPOP", blk, "10" }, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_send(r, err, sizeof(err)), CORE_OK);
    ck_assert_msg(feeder_send(f, b, 2, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(feeder_send(f, c, 3, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(core_redis_inflight(r), 4);
    for (int tries = 0;; tries++) { /* wait until the feeder's connection is blocked */
        rep = core_redis_command(admin, err, sizeof(err), "CLIENT LIST ID %lld", id);
        ck_assert_msg(rep && rep->type == REDIS_REPLY_STRING, "CLIENT LIST: %s", err);
        bool blocked = strstr(rep->str, "cmd=blpop") != NULL;
        freeReplyObject(rep);
        if (blocked)
            break;
        ck_assert_msg(tries < 200, "the feeder's connection never blocked");
        usleep(10000);
    }
    rep = core_redis_command(admin, err, sizeof(err), "CLIENT KILL ID %lld", id);
    ck_assert_msg(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1, "CLIENT KILL: %s", err);
    freeReplyObject(rep);

    ck_assert_msg(feeder_recv(f, a, 2, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_int_eq(a[0].result, FEEDER_RES_CACHED);
    ck_assert_int_eq(a[1].result, FEEDER_RES_CACHED);
    ck_assert_int_eq(core_redis_pipeline_recv(r, NULL, NULL, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_uint_eq(core_redis_inflight(r), 0); /* b and c went with the connection */
    ASSERT_VALUE("f1", "v1");
    ASSERT_VALUE("f3", "");

    /* redo b and c, in order (feeder_exec reconnects) */
    ck_assert_msg(feeder_exec(f, b, 2, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(feeder_exec(f, c, 3, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_int_eq(b[0].result, FEEDER_RES_CACHED);
    ck_assert_int_eq(b[1].result, FEEDER_RES_CACHED);
    ck_assert_int_eq(c[0].result, FEEDER_RES_STALE); /* v2 after v3: older */
    ck_assert(!c[0].duplicate);
    ck_assert_int_eq(c[1].result, FEEDER_RES_CACHED);
    ck_assert_int_eq(c[2].result, FEEDER_RES_DELETED);
    ASSERT_VALUE("f1", "v3");
    ASSERT_VALUE("f2", "v5");
    ASSERT_VALUE("f3", "");

    /* all three again, pipelined (a redo after a crash): nothing changes */
    for (int k = 0; k < 3; k++)
        ck_assert_msg(feeder_send(f, bt[k].recs, bt[k].n, err, sizeof(err)) == CORE_OK, "%s", err);
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(feeder_recv(f, bt[k].recs, bt[k].n, err, sizeof(err)) == CORE_OK, "%s", err);
        for (size_t i = 0; i < bt[k].n; i++) {
            ck_assert_int_eq(bt[k].recs[i].result, FEEDER_RES_STALE);
            feeder_record_clear(&bt[k].recs[i]);
        }
    }
    ASSERT_VALUE("f1", "v3");
    ASSERT_VALUE("f2", "v5");
    ASSERT_VALUE("f3", "");
    core_redis_free(admin);
}
END_TEST

START_TEST(bulk_reload_purge)
{
    char err[512];
    uint64_t n = 99;

    /* bulk 1 at t=1000: a, b, c */
    apply_full("ADD", "BULK", "pa", 1, NULL, "bulk1", 1000, NULL);
    apply_full("ADD", "BULK", "pb", 1, NULL, "bulk1", 1000, NULL);
    apply_full("ADD", "BULK", "pc", 1, NULL, "bulk1", 1000, NULL);
    /* a change before the next snapshot: d */
    apply_full("ADD", "CHANGE", "pd", 1, NULL, "chg", 1500, NULL);
    /* bulk 2 at t=2000..2001: a, b only */
    apply_full("ADD", "BULK", "pa", 2, NULL, "bulk2", 2001, NULL);
    apply_full("ADD", "BULK", "pb", 2, NULL, "bulk2", 2000, NULL);
    /* a change after the snapshot: e (kept) */
    apply_full("ADD", "CHANGE", "pe", 1, NULL, "chg", 2500, NULL);
    ck_assert_int_eq(feeder_purge(f, &ds, "no-such-batch", &n, err, sizeof(err)), CORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "no-such-batch"));
    ck_assert_msg(feeder_purge(f, &ds, "bulk2", &n, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(n, 2);
    ASSERT_VALUE("pa", "v2");
    ASSERT_VALUE("pb", "v2");
    ASSERT_VALUE("pc", "");
    ASSERT_VALUE("pd", "");
    ASSERT_VALUE("pe", "v1");
    /* purged records stay purged when bulk 1 is replayed */
    ck_assert_int_eq(apply_full("ADD", "BULK", "pc", 1, NULL, "bulk1", 1000, NULL), FEEDER_RES_STALE);
    ASSERT_VALUE("pc", "");
    /* purging again removes nothing */
    ck_assert(feeder_purge(f, &ds, "bulk2", &n, err, sizeof(err)) == CORE_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(bad_input_is_refused_with_a_clear_error)
{
    char err[512] = "";
    feeder_record rec;
    const unsigned char garbage[] = { 0, 0, 0, 0, 103, 0xff, 0xff, 0xff, 0xff, 0x0f };
    const unsigned char unknown_id[] = { 0, 0, 0, 0x7f, 0x7f, 2, 'a' };
    feeder_dataset other;
    size_t len;
    void *buf;

    ck_assert_int_ne(feeder_prepare(f, &ds, cat, garbage, sizeof(garbage), &rec, err, sizeof(err)), CORE_OK);
    ck_assert_msg(strlen(err) > 0, "no error text");
    ck_assert_int_eq(feeder_prepare(f, &ds, cat, unknown_id, sizeof(unknown_id), &rec, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_int_ne(feeder_prepare(f, &ds, cat, "x", 1, &rec, err, sizeof(err)), CORE_OK);
    /* a record of another dataset on this dataset's topic */
    ck_assert_int_eq(feeder_dataset_init(&other, "payee", core_avro_catalog_by_dataset(cat, "payee"),
                                         prefix, "{dataset}.valid", err, sizeof(err)), CORE_OK);
    buf = make("ADD", "CHANGE", "x", 1, NULL, "chg", 1, &len);
    ck_assert_int_eq(feeder_prepare(f, &other, cat, buf, len, &rec, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "AccountSetting") && strstr(err, "payee"), "%s", err);
    free(buf);
    feeder_dataset_clear(&other);
    /* an empty business key */
    buf = make("ADD", "CHANGE", "", 1, NULL, "chg", 1, &len);
    ck_assert_int_eq(feeder_prepare(f, &ds, cat, buf, len, &rec, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "setting_key"), "%s", err);
    free(buf);
    /* and the good ones still go through */
    ck_assert_int_eq(apply("ADD", "fine", 1), FEEDER_RES_CACHED);
}
END_TEST

/* meta.version is a 64-bit long (svc-ingest's default is event_time s x 2^30
 * + line, near 2^61): versions beyond a double's 2^53 and negative ones
 * compare exactly. */
START_TEST(versions_compare_exactly_over_64_bits)
{
    const int64_t big = (int64_t)1 << 60;

    ck_assert_int_eq(apply("ADD", "big", big + 1), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("ADD", "big", big), FEEDER_RES_STALE);
    ck_assert_int_eq(apply("ADD", "big", big + 1), FEEDER_RES_STALE);
    ck_assert_int_eq(apply("ADD", "big", big + 2), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("ADD", "big", INT64_MAX), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("ADD", "neg", -5), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("ADD", "neg", -7), FEEDER_RES_STALE);
    ck_assert_int_eq(apply("ADD", "neg", INT64_MIN), FEEDER_RES_STALE);
    ck_assert_int_eq(apply("ADD", "neg", 0), FEEDER_RES_CACHED);
    ck_assert_int_eq(apply("DELETE", "neg", 1), FEEDER_RES_DELETED);
    ck_assert_int_eq(apply("ADD", "neg", -1), FEEDER_RES_STALE);
}
END_TEST

START_TEST(topic_template_needs_dataset)
{
    feeder_dataset d;
    char err[256] = "";

    ck_assert_int_eq(feeder_dataset_init(&d, "payee", NULL, "tb", "fixed.topic", err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "topic.template"));
    ck_assert_int_eq(feeder_dataset_init(&d, "payee", NULL, "tb", "prod.{dataset}.valid", err, sizeof(err)),
                     CORE_OK);
    ck_assert_str_eq(d.topic, "prod.payee.valid");
    ck_assert_str_eq(d.key_prefix, "tb:payee:");
    ck_assert_str_eq(d.meta_key, "tb#meta:payee");
    feeder_dataset_clear(&d);
}
END_TEST


/* The document writer (docjson.c) must print what cJSON prints, to the
 * byte, for every type and the awkward values: escapes, control bytes,
 * UTF-8, bytes, decimals, big longs, floats, dates, nested unions, arrays
 * and maps, a named type used twice. Also each hash-format field. */
static void assert_same_as_cjson(const core_avro_schema_t *s, const char *json)
{
    feeder_jplan *plan = feeder_jplan_new(s);
    feeder_buf out = { 0 };
    char err[512] = "";
    cJSON *in = cJSON_Parse(json), *doc, *it;
    avro_value_t v;
    char *want;
    size_t i = 0;

    ck_assert_msg(in != NULL, "bad test JSON: %s", json);
    ck_assert_msg(plan != NULL, "no plan for %s", core_avro_schema_name(s));
    ck_assert_msg(core_avro_from_json(s, in, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    doc = core_avro_to_json(s, &v, err, sizeof(err));
    ck_assert_msg(doc != NULL, "%s", err);
    want = cJSON_PrintUnformatted(doc);
    ck_assert_int_eq(feeder_json_write(plan, &v, &out), CORE_OK);
    ck_assert_msg(out.len == strlen(want) && memcmp(out.p, want, out.len) == 0,
                  "writer:\n%.*s\ncJSON:\n%s", (int)out.len, out.p, want);
    cJSON_ArrayForEach(it, doc) {
        size_t nl;
        bool skip = false;
        char *txt = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
        const char *exp = cJSON_IsString(it) ? it->valuestring : txt;

        const char *name = feeder_jplan_field_name(plan, i, &nl);

        ck_assert(nl == strlen(it->string) && memcmp(name, it->string, nl) == 0);
        out.len = 0;
        ck_assert_int_eq(feeder_json_field(plan, i, &v, &out, &skip), CORE_OK);
        ck_assert_int_eq(skip, cJSON_IsNull(it));
        if (!skip)
            ck_assert_msg(out.len == strlen(exp) && memcmp(out.p, exp, out.len) == 0,
                          "field %s: writer %.*s, cJSON %s", it->string, (int)out.len, out.p, exp);
        free(txt);
        i++;
    }
    ck_assert_uint_eq(i, feeder_jplan_nfields(plan));
    free(want);
    cJSON_Delete(doc);
    cJSON_Delete(in);
    avro_value_decref(&v);
    feeder_buf_free(&out);
    feeder_jplan_free(plan);
}

START_TEST(document_writer_prints_what_cjson_prints)
{
    static const char schema[] =
        "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
        "{\"name\":\"s\",\"type\":\"string\"},"
        "{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"i\",\"type\":\"int\"},"
        "{\"name\":\"l\",\"type\":\"long\"},"
        "{\"name\":\"f\",\"type\":\"float\"},"
        "{\"name\":\"d\",\"type\":\"double\"},"
        "{\"name\":\"by\",\"type\":\"bytes\"},"
        "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"F4\",\"size\":4}},"
        "{\"name\":\"dec\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":20,\"scale\":3}},"
        "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
        "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        "{\"name\":\"tus\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B_2\"]}},"
        "{\"name\":\"e2\",\"type\":\"E\"},"
        "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"long\"]},"
        "{\"name\":\"n\",\"type\":[\"null\",\"F4\"]},"
        "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":[\"null\",\"double\"]}},"
        "{\"name\":\"map\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"record\",\"name\":\"In\","
        "\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}}},"
        "{\"name\":\"nul\",\"type\":\"null\"}]}";
    static const char *const values[] = {
        "{\"s\":\"plain\",\"b\":true,\"i\":0,\"l\":0,\"f\":0,\"d\":0,\"by\":\"\",\"fx\":\"abcd\",\"dec\":\"0\","
        "\"day\":0,\"ts\":0,\"tus\":0,\"e\":\"A\",\"e2\":\"B_2\",\"u\":null,\"n\":null,\"arr\":[],\"map\":{},\"nul\":null}",
        "{\"s\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f caf\\u00e9 \\u20ac \\ud83d\\ude00\",\"b\":false,"
        "\"i\":-2147483648,\"l\":\"9007199254740993\",\"f\":1.5,\"d\":0.1,\"by\":\"a\\\\x00\\\\\\\\\\\"z\\\\xff\","
        "\"fx\":\"\\\\x01\\\\x02\\\\x03\\\\x04\",\"dec\":\"-12345678901234567.891\",\"day\":-719162,"
        "\"ts\":-62135596800001,\"tus\":\"9999-12-31T23:59:59.999999Z\",\"e\":\"B_2\",\"e2\":\"A\",\"u\":{\"long\":\"-9007199254740993\"},"
        "\"n\":{\"t.F4\":\"wxyz\"},\"arr\":[null,1e300,-0.0,3.0,123456789012345.0,1234567890123456.0,2.5e-7],"
        "\"map\":{\"k\\\"1\":{\"x\":2147483648},\"\":{\"x\":\"-9223372036854775808\"}},\"nul\":null}",
        "{\"s\":\"\",\"b\":true,\"i\":2147483647,\"l\":\"-9223372036854775807\",\"f\":-3.4e38,\"d\":1e-320,"
        "\"by\":\"x\",\"fx\":\"\\\\\\\\\\\\\\\\x\\\"\",\"dec\":\"0.001\",\"day\":2932896,\"ts\":253402300800000,"
        "\"tus\":-1,\"e\":\"A\",\"e2\":\"A\",\"u\":{\"string\":\"\"},\"n\":null,\"arr\":[999999999999999.0],"
        "\"map\":{\"a\":{\"x\":1000000000000000}},\"nul\":null}",
    };
    char err[512] = "";
    core_avro_schema_t *s = core_avro_schema_new(schema, strlen(schema), 9999, err, sizeof(err));

    ck_assert_msg(s != NULL, "%s", err);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(values); i++)
        assert_same_as_cjson(s, values[i]);
    core_avro_schema_free(s);
    /* and the catalogue's datasets */
    assert_same_as_cjson(core_avro_catalog_by_dataset(cat, "payee"),
        "{\"meta\":{\"id\":\"i\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"s\",\"batch_id\":\"b\",\"seq\":1,"
        "\"event_time\":1700000000000,\"version\":\"2305843009213693952\",\"old_key\":null},\"payee_id\":\"P1\","
        "\"name\":\"Ren\\u00e9e \\\"R\\\"\",\"account_number\":\"1\",\"routing_number\":\"2\",\"iban\":null,"
        "\"country\":\"FR\",\"currency\":\"EUR\",\"email\":\"a@b\",\"amount_limit\":\"-1234.50\",\"status\":\"BLOCKED\","
        "\"updated_at\":1700000000123}");
    assert_same_as_cjson(core_avro_catalog_by_dataset(cat, "event"),
        "{\"meta\":{\"id\":\"i\",\"op\":\"UPDATE\",\"kind\":\"CHANGE\",\"source\":\"s\",\"batch_id\":\"b\",\"seq\":-1,"
        "\"event_time\":0,\"version\":-5,\"old_key\":\"o\"},\"id\":\"e\",\"timestamp\":1,\"source\":\"x\","
        "\"type\":\"t\",\"payload\":\"{\\\"a\\\":[1,2]}\",\"metadata\":{\"version\":\"1.0\",\"priority\":\"high\"}}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache_feeder_redis");
    TCase *tc = tcase_create("redis");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, add_overwrites_and_delete_removes);
    tcase_add_test(tc, version_guard_with_out_of_order_versions);
    tcase_add_test(tc, update_with_moved_key);
    tcase_add_test(tc, ttl_per_dataset);
    tcase_add_test(tc, hash_and_avro_formats);
    tcase_add_test(tc, script_reloaded_after_noscript_in_a_pipeline);
    tcase_add_test(tc, one_refused_record_does_not_take_its_script_down);
    tcase_add_test(tc, in_flight_batches_are_redone_after_the_connection_dies);
    tcase_add_test(tc, bulk_reload_purge);
    tcase_add_test(tc, bad_input_is_refused_with_a_clear_error);
    tcase_add_test(tc, versions_compare_exactly_over_64_bits);
    tcase_add_test(tc, topic_template_needs_dataset);
    tcase_add_test(tc, document_writer_prints_what_cjson_prints);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
