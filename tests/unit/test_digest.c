/* test_digest.c — SHA-256 vectors and the order-independent aggregate. */
#include "testutil.h"
#include "tributary/core_digest.h"

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

int main(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sha256_known_vectors);
    tcase_add_test(tc, record_digest_skips_wire_header);
    tcase_add_test(tc, hex_round_trip_and_bad_hex);
    tcase_add_test(tc, aggregate_is_order_independent_and_sees_duplicates);
    tcase_add_test(tc, aggregate_wraps_modulo);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
