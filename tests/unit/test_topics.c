/* test_topics.c — core_topics: one naming rule, {prefix}{dataset}.{kind},
 * at the edges of Kafka's topic names. */
#include "testutil.h"
#include "tributary/core_topics.h"

#include <string.h>

START_TEST(names_of_every_kind)
{
    static const char *const want[] = { "payee.raw", "payee.valid", "payee.retry", "payee.dlq" };
    char buf[CORE_TOPIC_MAX + 1], err[256];

    for (int k = 0; k < CORE_TOPIC_NKINDS; k++) {
        ck_assert_int_eq(core_topic_name(NULL, "payee", (core_topic_kind)k, buf, sizeof(buf), err,
                                         sizeof(err)),
                         CORE_OK);
        ck_assert_str_eq(buf, want[k]);
        ck_assert_int_eq(core_topic_name("", "payee", (core_topic_kind)k, buf, sizeof(buf), err,
                                         sizeof(err)),
                         CORE_OK);
        ck_assert_str_eq(buf, want[k]);
    }
    ck_assert_int_eq(core_topic_name("test.", "account_setting", CORE_TOPIC_VALID, buf,
                                     sizeof(buf), err, sizeof(err)),
                     CORE_OK);
    ck_assert_str_eq(buf, "test.account_setting.valid");
    ck_assert_str_eq(core_topic_kind_name(CORE_TOPIC_RETRY), "retry");
    ck_assert_ptr_null(core_topic_kind_name(CORE_TOPIC_NKINDS));
    ck_assert_ptr_null(core_topic_kind_name((core_topic_kind)-1));
}
END_TEST

/* Kafka takes at most 249 characters: a prefix that makes 249 is taken, one
 * more is refused naming topic.prefix; so is a character Kafka refuses. */
START_TEST(length_and_characters_at_kafkas_limits)
{
    char prefix[300], buf[CORE_TOPIC_MAX + 1], small[10], err[512];
    size_t fixed = strlen("payee.valid");

    memset(prefix, 'p', sizeof(prefix));
    prefix[CORE_TOPIC_MAX - fixed] = '\0';
    ck_assert_int_eq(core_topic_name(prefix, "payee", CORE_TOPIC_VALID, buf, sizeof(buf), err,
                                     sizeof(err)),
                     CORE_OK);
    ck_assert_uint_eq(strlen(buf), CORE_TOPIC_MAX);
    prefix[CORE_TOPIC_MAX - fixed] = 'p';
    prefix[CORE_TOPIC_MAX - fixed + 1] = '\0';
    ck_assert_int_eq(core_topic_name(prefix, "payee", CORE_TOPIC_VALID, buf, sizeof(buf), err,
                                     sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "topic.prefix"));
    ck_assert_str_eq(buf, "");
    /* a buffer too small is refused, never cut */
    ck_assert_int_eq(core_topic_name("", "payee", CORE_TOPIC_VALID, small, sizeof(small), err,
                                     sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_str_eq(small, "");
    static const char *const bad[] = { "a/b.", "x y.", "t\xc3\xa9st.", "colon:" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(core_topic_name(bad[i], "payee", CORE_TOPIC_RAW, buf, sizeof(buf), err,
                                         sizeof(err)),
                         CORE_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "topic.prefix"));
    }
    ck_assert_int_eq(core_topic_name("", "", CORE_TOPIC_RAW, buf, sizeof(buf), err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_eq(core_topic_name("", NULL, CORE_TOPIC_RAW, buf, sizeof(buf), err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert(core_topic_valid("a-b_c.D9"));
    ck_assert(!core_topic_valid("."));
    ck_assert(!core_topic_valid(".."));
    ck_assert(!core_topic_valid(""));
    ck_assert(!core_topic_valid(NULL));
}
END_TEST

START_TEST(parse_is_the_inverse_under_its_prefix)
{
    char ds[64], small[4];
    core_topic_kind k;

    ck_assert(core_topic_parse("", "payee.raw", ds, sizeof(ds), &k));
    ck_assert_str_eq(ds, "payee");
    ck_assert_int_eq(k, CORE_TOPIC_RAW);
    ck_assert(core_topic_parse("test.", "test.account_setting.dlq", ds, sizeof(ds), &k));
    ck_assert_str_eq(ds, "account_setting");
    ck_assert_int_eq(k, CORE_TOPIC_DLQ);
    /* a dataset name with a dot: only the last word is the kind */
    ck_assert(core_topic_parse(NULL, "a.valid.retry", ds, sizeof(ds), &k));
    ck_assert_str_eq(ds, "a.valid");
    ck_assert_int_eq(k, CORE_TOPIC_RETRY);
    ck_assert(!core_topic_parse("test.", "payee.raw", ds, sizeof(ds), &k)); /* other prefix */
    ck_assert(!core_topic_parse("", "payee.raws", ds, sizeof(ds), &k));
    ck_assert(!core_topic_parse("", ".raw", ds, sizeof(ds), &k));           /* no dataset */
    ck_assert(!core_topic_parse("", "payeeraw", ds, sizeof(ds), &k));
    ck_assert(!core_topic_parse("", "payee.raw", small, sizeof(small), &k)); /* no room */
    ck_assert(!core_topic_parse("", NULL, ds, sizeof(ds), &k));
}
END_TEST

static Suite *topics_suite(void)
{
    Suite *s = suite_create("topics");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, names_of_every_kind);
    tcase_add_test(tc, length_and_characters_at_kafkas_limits);
    tcase_add_test(tc, parse_is_the_inverse_under_its_prefix);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { topics_suite() };

    return tu_run(s, 1);
}
