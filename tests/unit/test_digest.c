/* test_digest.c — SHA-256 vectors, the order-independent aggregate, and
 * the content digest (business fields only, canonical). */
#include "testutil.h"
#include "tributary/core_avro.h"
#include "tributary/core_digest.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(sha256_known_vectors)
{
    core_digest d;
    char hex[65];

    core_digest_sha256("", 0, &d);
    core_digest_to_hex(&d, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    core_digest_sha256("abc", 3, &d);
    core_digest_to_hex(&d, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(record_digest_skips_wire_header)
{
    const unsigned char a[] = { 0x00, 0, 0, 0, 101, 'a', 'b', 'c' };
    const unsigned char b[] = { 0x00, 0, 0, 0, 202, 'a', 'b', 'c' };
    core_digest da, db, dabc;

    core_digest_record(a, sizeof(a), &da);
    core_digest_record(b, sizeof(b), &db);
    core_digest_sha256("abc", 3, &dabc);
    ck_assert(core_digest_equal(&da, &db));
    ck_assert(core_digest_equal(&da, &dabc));
}
END_TEST

START_TEST(hex_round_trip_and_bad_hex)
{
    core_digest d, back;
    char hex[65];

    core_digest_sha256("x", 1, &d);
    core_digest_to_hex(&d, hex);
    ck_assert_int_eq(core_digest_from_hex(hex, &back), 0);
    ck_assert(core_digest_equal(&d, &back));
    ck_assert_int_eq(core_digest_from_hex("abc", &back), -1);
    hex[10] = 'g';
    ck_assert_int_eq(core_digest_from_hex(hex, &back), -1);
    ck_assert_int_eq(core_digest_from_hex(NULL, &back), -1);
}
END_TEST

START_TEST(aggregate_is_order_independent_and_sees_duplicates)
{
    core_digest d[100];
    core_digest_agg fwd, rev, dup, x;
    char buf[16];

    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "rec-%d", i);
        core_digest_sha256(buf, strlen(buf), &d[i]);
    }
    core_digest_agg_init(&fwd);
    core_digest_agg_init(&rev);
    for (int i = 0; i < 100; i++) {
        core_digest_agg_add(&fwd, &d[i]);
        core_digest_agg_add(&rev, &d[99 - i]);
    }
    ck_assert(core_digest_agg_equal(&fwd, &rev));
    ck_assert_uint_eq(fwd.count, 100);

    /* A duplicate changes the aggregate (XOR would cancel a pair). */
    dup = fwd;
    core_digest_agg_add(&dup, &d[5]);
    core_digest_agg_add(&dup, &d[5]);
    ck_assert(!core_digest_agg_equal(&dup, &fwd));
    core_digest_agg_remove(&dup, &d[5]);
    core_digest_agg_remove(&dup, &d[5]);
    ck_assert(core_digest_agg_equal(&dup, &fwd));

    /* Merge of two halves equals the whole. */
    core_digest_agg_init(&x);
    core_digest_agg fst, snd;
    core_digest_agg_init(&fst);
    core_digest_agg_init(&snd);
    for (int i = 0; i < 50; i++)
        core_digest_agg_add(&fst, &d[i]);
    for (int i = 50; i < 100; i++)
        core_digest_agg_add(&snd, &d[i]);
    core_digest_agg_merge(&x, &fst);
    core_digest_agg_merge(&x, &snd);
    ck_assert(core_digest_agg_equal(&x, &fwd));

    /* An altered record changes it. */
    core_digest_agg alt = fwd;
    core_digest changed;
    core_digest_sha256("rec-5-altered", 13, &changed);
    core_digest_agg_remove(&alt, &d[5]);
    core_digest_agg_add(&alt, &changed);
    ck_assert(!core_digest_agg_equal(&alt, &fwd));
}
END_TEST

START_TEST(aggregate_wraps_modulo)
{
    core_digest ones;
    core_digest_agg a, zero;

    memset(ones.b, 0xff, sizeof(ones.b));
    core_digest_agg_init(&a);
    core_digest_agg_init(&zero);
    core_digest_agg_add(&a, &ones);
    core_digest one = { { 0 } };
    one.b[31] = 1;
    core_digest_agg_add(&a, &one);            /* 2^256 - 1 + 1 = 0 (mod 2^256) */
    ck_assert_int_eq(memcmp(a.sum, zero.sum, 32), 0);
    core_digest_agg_remove(&a, &one);
    ck_assert_int_eq(memcmp(a.sum, ones.b, 32), 0);
}
END_TEST

/* ---- content digest ----------------------------------------------------- */

#define PAYEE(meta, name, limit, iban)                                                   \
    "{\"meta\":{" meta "},\"payee_id\":\"P-1\",\"name\":\"" name "\","                   \
    "\"account_number\":\"000123\",\"routing_number\":\"021000021\",\"iban\":" iban ","   \
    "\"country\":\"US\",\"currency\":\"USD\",\"email\":null,\"amount_limit\":\"" limit "\"," \
    "\"status\":\"ACTIVE\",\"updated_at\":\"2024-03-07T10:00:00.000Z\"}"
#define META_A "\"id\":\"id-a\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"f.csv\","      \
    "\"batch_id\":\"b1\",\"seq\":1,\"event_time\":1,\"version\":1,\"old_key\":null"
#define META_B "\"id\":\"id-b\",\"op\":\"UPDATE\",\"kind\":\"CHANGE\",\"source\":\"feed\","  \
    "\"batch_id\":\"b2\",\"seq\":99,\"event_time\":253402300799999,"                 \
    "\"version\":\"-9223372036854775808\",\"old_key\":\"P-0\""

static core_avro_catalog_t *load_cat(void)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));

    ck_assert_msg(cat != NULL, "%s", err);
    return cat;
}

/* The content digest of a payee given as natural JSON, through its wire
 * bytes (what a stage has) and through its value (what a sink check has). */
static core_digest payee_cd(core_avro_catalog_t *cat, const char *json)
{
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    cJSON *j = cJSON_Parse(json);
    avro_value_t v;
    char err[512];
    void *buf = NULL;
    size_t len = 0;
    core_digest d, dv;

    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_encode(s, &v, &buf, &len, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_content_digest_wire(cat, buf, len, &d, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_msg(core_avro_content_digest_value(s, &v, &dv, err, sizeof(err)) == CORE_OK, "%s",
                  err);
    ck_assert(core_digest_equal(&d, &dv));
    free(buf);
    avro_value_decref(&v);
    cJSON_Delete(j);
    return d;
}

START_TEST(content_digest_ignores_meta)
{
    core_avro_catalog_t *cat = load_cat();
    core_digest a = payee_cd(cat, PAYEE(META_A, "Ann", "1234.50", "null"));
    core_digest b = payee_cd(cat, PAYEE(META_B, "Ann", "1234.50", "null"));

    ck_assert(core_digest_equal(&a, &b));
    core_avro_catalog_free(cat);
}
END_TEST

START_TEST(content_digest_sees_one_changed_field)
{
    core_avro_catalog_t *cat = load_cat();
    core_digest a = payee_cd(cat, PAYEE(META_A, "Ann", "1234.50", "null"));
    core_digest name = payee_cd(cat, PAYEE(META_A, "Anne", "1234.50", "null"));
    core_digest limit = payee_cd(cat, PAYEE(META_A, "Ann", "1234.51", "null"));
    core_digest empty = payee_cd(cat, PAYEE(META_A, "Ann", "1234.50", "\"\""));
    ck_assert(!core_digest_equal(&a, &name));
    ck_assert(!core_digest_equal(&a, &limit));
    /* null and "" in a union are different values */
    ck_assert(!core_digest_equal(&a, &empty));
    core_avro_catalog_free(cat);
}
END_TEST

/* A small schema to build bodies by hand: the content digest is the SHA-256
 * of the body with meta's bytes cut out. */
static const char EDGE_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Edge\",\"fields\":["
    "{\"name\":\"meta\",\"type\":{\"type\":\"record\",\"name\":\"M\",\"fields\":"
    "[{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"version\",\"type\":\"long\"}]}},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"n\",\"type\":\"long\"},"
    "{\"name\":\"b\",\"type\":\"bytes\"},"
    "{\"name\":\"d\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":18,"
    "\"scale\":2}},"
    "{\"name\":\"o\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}}]}";

static core_err_t edge_cd(const core_avro_schema_t *s, const uint8_t *body, size_t len,
                          core_digest *d)
{
    char err[256];

    return core_avro_content_digest(s, body, len, d, err, sizeof(err));
}

START_TEST(content_digest_edge_values)
{
    char err[512];
    core_avro_schema_t *s = core_avro_schema_new(EDGE_SCHEMA, sizeof(EDGE_SCHEMA) - 1, 900,
                                                 err, sizeof(err));
    core_digest d, want, d2;

    ck_assert_msg(s != NULL, "%s", err);
    /* meta {id "x", version 5}; s ""; n 2^63-1; b ""; d 0x00 0x96 (1.50);
     * o null; a []; m {} */
    const uint8_t base[] = { 0x02, 'x', 0x0a,
                             0x00,
                             0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                             0x00,
                             0x04, 0x00, 0x96,
                             0x00,
                             0x00,
                             0x00 };
    ck_assert_int_eq(edge_cd(s, base, sizeof(base), &d), CORE_OK);
    core_digest_sha256(base + 3, sizeof(base) - 3, &want);
    ck_assert(core_digest_equal(&d, &want));

    /* another meta: same digest */
    const uint8_t meta2[] = { 0x04, 'y', 'z', 0x01,
                              0x00,
                              0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                              0x00,
                              0x04, 0x00, 0x96,
                              0x00, 0x00, 0x00 };
    ck_assert_int_eq(edge_cd(s, meta2, sizeof(meta2), &d2), CORE_OK);
    ck_assert(core_digest_equal(&d, &d2));

    /* the same decimal written longer (0x00 0x00 0x96), and an array and a
     * map written in two blocks, one with a byte size: canonical, same
     * digest as the shortest single-block form */
    const uint8_t longer[] = { 0x00, 0x00,
                               0x00,
                               0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                               0x00,
                               0x06, 0x00, 0x00, 0x96,
                               0x00,
                               0x02, 0x02, 0x02, 0x04, 0x00,       /* a: [1] [2] */
                               0x02, 0x02, 'k', 0x02, 0x00 };      /* m: {k: 1} */
    const uint8_t shortest[] = { 0x00, 0x00,
                                 0x00,
                                 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                                 0x00,
                                 0x04, 0x00, 0x96,
                                 0x00,
                                 0x04, 0x02, 0x04, 0x00,
                                 0x02, 0x02, 'k', 0x02, 0x00 };
    const uint8_t blocks[] = { 0x00, 0x00,
                               0x00,
                               0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                               0x00,
                               0x04, 0x00, 0x96,
                               0x00,
                               0x03, 0x04, 0x02, 0x04, 0x00,       /* a: block -2 of 2 bytes */
                               0x02, 0x02, 'k', 0x02, 0x00 };
    ck_assert_int_eq(edge_cd(s, longer, sizeof(longer), &d), CORE_OK);
    ck_assert_int_eq(edge_cd(s, shortest, sizeof(shortest), &d2), CORE_OK);
    ck_assert(core_digest_equal(&d, &d2));
    core_digest_sha256(shortest + 2, sizeof(shortest) - 2, &want);
    ck_assert(core_digest_equal(&d2, &want));
    ck_assert_int_eq(edge_cd(s, blocks, sizeof(blocks), &d), CORE_OK);
    ck_assert(core_digest_equal(&d, &d2));

    /* map entries in another order: same digest */
    const uint8_t m_ab[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                             0x04, 0x02, 'a', 0x02, 0x02, 'b', 0x04, 0x00 };
    const uint8_t m_ba[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                             0x04, 0x02, 'b', 0x04, 0x02, 'a', 0x02, 0x00 };
    ck_assert_int_eq(edge_cd(s, m_ab, sizeof(m_ab), &d), CORE_OK);
    ck_assert_int_eq(edge_cd(s, m_ba, sizeof(m_ba), &d2), CORE_OK);
    ck_assert(core_digest_equal(&d, &d2));

    /* negative decimal -1: 0xff and 0xff 0xff are one value; 0 and an
     * empty decimal too; 0 and -1 differ */
    const uint8_t neg1[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xff, 0x00, 0x00, 0x00 };
    const uint8_t neg2[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xff, 0xff, 0x00, 0x00, 0x00 };
    const uint8_t zero1[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
    const uint8_t zero0[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
    core_digest dz;
    ck_assert_int_eq(edge_cd(s, neg1, sizeof(neg1), &d), CORE_OK);
    ck_assert_int_eq(edge_cd(s, neg2, sizeof(neg2), &d2), CORE_OK);
    ck_assert(core_digest_equal(&d, &d2));
    ck_assert_int_eq(edge_cd(s, zero1, sizeof(zero1), &dz), CORE_OK);
    ck_assert_int_eq(edge_cd(s, zero0, sizeof(zero0), &d2), CORE_OK);
    ck_assert(core_digest_equal(&dz, &d2));
    ck_assert(!core_digest_equal(&d, &dz));

    /* NUL bytes: in bytes they are data ("\0" differs from ""); in a string
     * they are refused, as core_avro_decode refuses them */
    const uint8_t bnul[] = { 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
    const uint8_t bnone[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
    const uint8_t snul[] = { 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
    ck_assert_int_eq(edge_cd(s, bnul, sizeof(bnul), &d), CORE_OK);
    ck_assert_int_eq(edge_cd(s, bnone, sizeof(bnone), &d2), CORE_OK);
    ck_assert(!core_digest_equal(&d, &d2));
    ck_assert_int_eq(core_avro_content_digest(s, snul, sizeof(snul), &d, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));

    /* null and "" in a union differ; 2^63-1 and -2^63 differ from 0 */
    const uint8_t oe[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00 };
    const uint8_t nmin[] = { 0x00, 0x00, 0x00,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                             0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
    ck_assert_int_eq(edge_cd(s, oe, sizeof(oe), &d), CORE_OK);
    ck_assert(!core_digest_equal(&d, &dz));
    ck_assert_int_eq(edge_cd(s, nmin, sizeof(nmin), &d), CORE_OK);
    ck_assert(!core_digest_equal(&d, &dz));

    /* truncated or trailing bytes: refused, never read past the end */
    ck_assert_int_eq(edge_cd(s, base, sizeof(base) - 1, &d), CORE_ERR_INVALID);
    const uint8_t trail[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x07 };
    ck_assert_int_eq(edge_cd(s, trail, sizeof(trail), &d), CORE_ERR_INVALID);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(content_digest_refuses_unknown_wire_id)
{
    core_avro_catalog_t *cat = load_cat();
    const uint8_t v[] = { 0x00, 0x00, 0x00, 0x03, 0xe7, 0x00 };
    core_digest d;
    char err[256];

    ck_assert_int_eq(core_avro_content_digest_wire(cat, v, sizeof(v), &d, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_int_eq(core_avro_content_digest_wire(cat, v, 3, &d, err, sizeof(err)),
                     CORE_ERR_INVALID);
    core_avro_catalog_free(cat);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sha256_known_vectors);
    tcase_add_test(tc, record_digest_skips_wire_header);
    tcase_add_test(tc, hex_round_trip_and_bad_hex);
    tcase_add_test(tc, aggregate_is_order_independent_and_sees_duplicates);
    tcase_add_test(tc, aggregate_wraps_modulo);
    tcase_add_test(tc, content_digest_ignores_meta);
    tcase_add_test(tc, content_digest_sees_one_changed_field);
    tcase_add_test(tc, content_digest_edge_values);
    tcase_add_test(tc, content_digest_refuses_unknown_wire_id);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
