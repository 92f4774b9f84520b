/* test_cache_feeder_redis.c — svc-cache-feeder's Redis side (feeder.c)
 * against the real local Redis (TB_REDIS_HOST / TB_REDIS_PORT, default
 * 127.0.0.1:6379): each operation, the version guard with out-of-order
 * versions, UPDATE with a moved key, TTL, the three value formats, NOSCRIPT
 * after SCRIPT FLUSH, the bulk-reload purge, and bad input.
 *
 * Every test uses its own key prefix ("cft<pid>_<n>") and deletes its keys. */
#include "testutil.h"

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
    tcase_add_test(tc, bulk_reload_purge);
    tcase_add_test(tc, bad_input_is_refused_with_a_clear_error);
    tcase_add_test(tc, versions_compare_exactly_over_64_bits);
    tcase_add_test(tc, topic_template_needs_dataset);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
