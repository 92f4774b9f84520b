/* test_validator_rules.c — svc-validator's rules: every check and checksum
 * with good and bad values, every constraint kind, failures naming the
 * field and the rule (never the value), external URL templating, and the
 * real payee rules on good and bad payees. */
#include "testutil.h"

#include "../../svc-validator/rules.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

START_TEST(aba)
{
    ck_assert(vcheck_aba("021000021"));  /* JPMorgan Chase */
    ck_assert(vcheck_aba("011000015"));  /* Federal Reserve Boston */
    ck_assert(vcheck_aba("121000358"));  /* Bank of America CA */
    ck_assert(!vcheck_aba("021000022")); /* checksum off by one */
    ck_assert(!vcheck_aba("111111111"));
    ck_assert(!vcheck_aba("000000000"));
    ck_assert(!vcheck_aba("02100002"));  /* 8 digits */
    ck_assert(!vcheck_aba("0210000211"));
    ck_assert(!vcheck_aba("02100002a"));
    ck_assert(!vcheck_aba(""));
    ck_assert(!vcheck_aba(NULL));
}
END_TEST

START_TEST(luhn)
{
    ck_assert(vcheck_luhn("4111111111111111"));
    ck_assert(vcheck_luhn("79927398713"));
    ck_assert(vcheck_luhn("5555555555554444"));
    ck_assert(!vcheck_luhn("4111111111111112"));
    ck_assert(!vcheck_luhn("79927398710"));
    ck_assert(!vcheck_luhn("4111 1111 1111 1111"));
    ck_assert(!vcheck_luhn("7"));
    ck_assert(!vcheck_luhn(NULL));
}
END_TEST

START_TEST(iban)
{
    ck_assert(vcheck_iban("GB82WEST12345698765432"));
    ck_assert(vcheck_iban("DE89370400440532013000"));
    ck_assert(vcheck_iban("FR1420041010050500013M02606"));
    ck_assert(vcheck_iban("NO9386011117947"));
    ck_assert(!vcheck_iban("GB82WEST12345698765433"));  /* mod 97 fails */
    ck_assert(!vcheck_iban("GB82WEST1234569876543"));   /* wrong length for GB */
    ck_assert(!vcheck_iban("ZZ82WEST12345698765432"));  /* unknown country */
    ck_assert(!vcheck_iban("gb82west12345698765432"));  /* lower case */
    ck_assert(!vcheck_iban("GB82 WEST 1234 5698 7654 32"));
    ck_assert(!vcheck_iban(""));
}
END_TEST

START_TEST(codes)
{
    ck_assert(vcheck_iso3166_alpha2("US"));
    ck_assert(vcheck_iso3166_alpha2("DE"));
    ck_assert(vcheck_iso3166_alpha2("ZW"));
    ck_assert(vcheck_iso3166_alpha2("AD"));
    ck_assert(!vcheck_iso3166_alpha2("UK")); /* not assigned (GB is) */
    ck_assert(!vcheck_iso3166_alpha2("us"));
    ck_assert(!vcheck_iso3166_alpha2("USA"));
    ck_assert(!vcheck_iso3166_alpha2("XX"));
    ck_assert(!vcheck_iso3166_alpha2(""));
    ck_assert(vcheck_iso4217("USD"));
    ck_assert(vcheck_iso4217("EUR"));
    ck_assert(vcheck_iso4217("AED"));
    ck_assert(vcheck_iso4217("ZWL"));
    ck_assert(!vcheck_iso4217("usd"));
    ck_assert(!vcheck_iso4217("XXX"));
    ck_assert(!vcheck_iso4217("DEM")); /* withdrawn */
    ck_assert(!vcheck_iso4217("US"));
    ck_assert(!vcheck_iso4217("ABC"));
}
END_TEST

START_TEST(email)
{
    ck_assert(vcheck_email("a@example.com"));
    ck_assert(vcheck_email("first.last+tag@mail.example.co.uk"));
    ck_assert(!vcheck_email("no-at.example.com"));
    ck_assert(!vcheck_email("a@b"));
    ck_assert(!vcheck_email("a@@example.com"));
    ck_assert(!vcheck_email("a b@example.com"));
    ck_assert(!vcheck_email("@example.com"));
    ck_assert(!vcheck_email("a@example.c"));
    ck_assert(!vcheck_email("a..b@example.com"));
    ck_assert(!vcheck_email("a@.example.com"));
    {
        char big[300];

        memset(big, 'a', sizeof(big));
        memcpy(big + 280, "@example.com", 13);
        ck_assert(!vcheck_email(big)); /* over 254 bytes */
    }
}
END_TEST

START_TEST(uuid_and_time)
{
    int64_t ms = 0;
    cJSON *j;

    ck_assert(vcheck_uuid("123e4567-e89b-12d3-a456-426614174000"));
    ck_assert(!vcheck_uuid("123e4567e89b12d3a456426614174000"));
    ck_assert(!vcheck_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    j = cJSON_CreateString("2024-03-07T10:00:00.000Z");
    ck_assert(vcheck_time_ms(j, &ms));
    ck_assert_int_eq(ms, 1709805600000LL);
    cJSON_Delete(j);
    j = cJSON_CreateString("2024-03-07");
    ck_assert(vcheck_time_ms(j, &ms));
    ck_assert_int_eq(ms, 1709769600000LL);
    cJSON_Delete(j);
    j = cJSON_CreateString("yesterday");
    ck_assert(!vcheck_time_ms(j, &ms));
    cJSON_Delete(j);
}
END_TEST

/* Every constraint kind, each good and bad. */
static const char *rules_text =
    "{\"dataset\":\"t\",\"rules\":["
    "{\"field\":\"a\",\"required\":true},"
    "{\"field\":\"n\",\"type\":\"integer\",\"min\":1,\"max\":10},"
    "{\"field\":\"s\",\"pattern\":\"^[a-z]+$\",\"length\":{\"min\":2,\"max\":4}},"
    "{\"field\":\"e\",\"enum\":[\"X\",\"Y\"]},"
    "{\"field\":\"j\",\"type\":\"json_object\"},"
    "{\"field\":\"d\",\"min\":\"0.00\",\"message\":\"d must not be negative\"},"
    "{\"field\":\"t\",\"check\":\"not_future\"},"
    "{\"field\":\"m.c\",\"check\":\"iso3166_alpha2\"},"
    "{\"field\":\"acc\",\"external\":{\"url\":\"http://v.local/x/{value}?c={m.c}\","
    "\"cache_ttl_s\":60}}"
    "]}";

static vrules_t *compile(void)
{
    char errstr[256];
    cJSON *j = cJSON_Parse(rules_text);
    vrules_t *r;

    ck_assert_ptr_nonnull(j);
    r = vrules_new(j, 60000, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    cJSON_Delete(j);
    return r;
}

static size_t eval(vrules_t *r, const char *rec, vr_failure *f, size_t max)
{
    cJSON *j = cJSON_Parse(rec);
    size_t n;

    ck_assert_ptr_nonnull(j);
    n = vrules_eval(r, j, 1709805600000LL, f, max);
    cJSON_Delete(j);
    return n;
}

START_TEST(constraints_pass)
{
    vrules_t *r = compile();
    vr_failure f[16];

    ck_assert_uint_eq(eval(r, "{\"a\":\"x\",\"n\":\"5\",\"s\":\"abc\",\"e\":\"Y\","
                              "\"j\":\"{\\\"k\\\":1}\",\"d\":\"0.00\","
                              "\"t\":\"2024-03-07T10:00:30.000Z\",\"m\":{\"c\":\"FR\"}}",
                           f, 16),
                      0);
    /* Optional fields absent or null: nothing applies but required. */
    ck_assert_uint_eq(eval(r, "{\"a\":\"x\",\"n\":null}", f, 16), 0);
    vrules_free(r);
}
END_TEST

static bool has(const vr_failure *f, size_t n, const char *field, const char *rule)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].field, field) == 0 && strcmp(f[i].rule, rule) == 0)
            return true;
    return false;
}

START_TEST(constraints_fail)
{
    vrules_t *r = compile();
    vr_failure f[16];
    size_t n;

    n = eval(r, "{\"a\":\"\",\"n\":\"11\",\"s\":\"ABCDE\",\"e\":\"Z\",\"j\":\"[1]\","
                "\"d\":\"-0.01\",\"t\":\"2024-03-08T10:00:00.000Z\",\"m\":{\"c\":\"UK\"}}",
             f, 16);
    ck_assert_uint_eq(n, 9);
    ck_assert(has(f, n, "a", "required"));
    ck_assert(has(f, n, "n", "max"));
    ck_assert(has(f, n, "s", "pattern"));
    ck_assert(has(f, n, "s", "length"));
    ck_assert(has(f, n, "e", "enum"));
    ck_assert(has(f, n, "j", "type"));
    ck_assert(has(f, n, "d", "min"));
    ck_assert(has(f, n, "t", "not_future"));
    ck_assert(has(f, n, "m.c", "iso3166_alpha2"));
    for (size_t i = 0; i < n; i++) {
        /* Every message names the field and never quotes the value. */
        ck_assert_ptr_nonnull(strstr(f[i].message, f[i].field));
        ck_assert_ptr_null(strstr(f[i].message, "ABCDE"));
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].field, "d") == 0)
            ck_assert_str_eq(f[i].message, "d must not be negative");
    /* A non-integer for type integer, and below min. */
    n = eval(r, "{\"a\":\"x\",\"n\":\"1.5\"}", f, 16);
    ck_assert_uint_eq(n, 1);
    ck_assert(has(f, n, "n", "type"));
    n = eval(r, "{\"a\":\"x\",\"n\":0}", f, 16);
    ck_assert(has(f, n, "n", "min"));
    /* The count is total even when the array is short. */
    ck_assert_uint_eq(eval(r, "{\"a\":null,\"n\":99,\"e\":\"Q\"}", f, 1), 3);
    vrules_free(r);
}
END_TEST

START_TEST(external_url)
{
    vrules_t *r = compile();
    cJSON *j = cJSON_Parse("{\"acc\":\"12 34/5\",\"m\":{\"c\":\"FR\"}}");
    bool skip = true;
    char *url;

    ck_assert_uint_eq(vrules_nexternal(r), 1);
    ck_assert_str_eq(vrules_external(r, 0)->field, "acc");
    ck_assert_int_eq(vrules_external(r, 0)->cache_ttl_s, 60);
    url = vrules_external_url(r, 0, j, &skip);
    ck_assert_ptr_nonnull(url);
    ck_assert(!skip);
    ck_assert_str_eq(url, "http://v.local/x/12%2034%2F5?c=FR");
    free(url);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"acc\":null}");
    ck_assert_ptr_null(vrules_external_url(r, 0, j, &skip));
    ck_assert(skip);
    cJSON_Delete(j);
    vrules_free(r);
}
END_TEST

START_TEST(bad_rules_refused)
{
    char errstr[256];
    cJSON *j = cJSON_Parse("{\"rules\":[{\"field\":\"a\",\"pattern\":\"([a-\"}]}");
    vrules_t *r = vrules_new(j, 0, errstr, sizeof(errstr));

    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(errstr, "a: pattern"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"rules\":[{\"field\":\"a\",\"check\":\"crc32\"}]}");
    ck_assert_ptr_null(vrules_new(j, 0, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "crc32"));
    cJSON_Delete(j);
    r = vrules_new(NULL, 0, errstr, sizeof(errstr)); /* no rules file: nothing to check */
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(vrules_count(r), 0);
    vrules_free(r);
}
END_TEST

/* The real payee rules on a real payee, good and with each planted fault. */
START_TEST(payee_rules)
{
    char errstr[256];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), errstr, sizeof(errstr));
    const core_avro_schema_t *s;
    vrules_t *r;
    vr_failure f[16];
    size_t n;
    const char *good =
        "{\"meta\":{\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"op\":\"ADD\","
        "\"kind\":\"BULK\",\"source\":\"f\",\"batch_id\":\"b\",\"seq\":1,\"event_time\":0,"
        "\"version\":1,\"old_key\":null},\"payee_id\":\"P1\",\"name\":\"N\","
        "\"account_number\":\"12345678\",\"routing_number\":\"%s\",\"iban\":%s,"
        "\"country\":\"%s\",\"currency\":\"%s\",\"email\":%s,\"amount_limit\":\"%s\","
        "\"status\":\"ACTIVE\",\"updated_at\":\"2024-01-01T00:00:00.000Z\"}";
    char rec[2048];

    ck_assert_msg(cat != NULL, "%s", errstr);
    s = core_avro_catalog_by_dataset(cat, "payee");
    r = vrules_new(core_avro_schema_rules(s), 300000, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    snprintf(rec, sizeof(rec), good, "021000021", "\"DE89370400440532013000\"", "US", "USD",
             "\"a@example.com\"", "10.00");
    ck_assert_uint_eq(eval(r, rec, f, 16), 0);
    snprintf(rec, sizeof(rec), good, "021000022", "null", "UK", "XYZ", "\"not-an-email\"",
             "-1.00");
    n = eval(r, rec, f, 16);
    ck_assert(has(f, n, "routing_number", "aba"));
    ck_assert(has(f, n, "country", "iso3166_alpha2"));
    ck_assert(has(f, n, "currency", "iso4217"));
    ck_assert(has(f, n, "email", "email"));
    ck_assert(has(f, n, "amount_limit", "min"));
    ck_assert_uint_eq(n, 5);
    snprintf(rec, sizeof(rec), good, "021000021", "\"GB82WEST12345698765433\"", "US", "USD",
             "null", "0.00");
    n = eval(r, rec, f, 16);
    ck_assert_uint_eq(n, 1);
    ck_assert(has(f, n, "iban", "iban"));
    vrules_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("validator_rules");
    TCase *tc = tcase_create("checks");
    TCase *tr = tcase_create("rules");

    tcase_add_test(tc, aba);
    tcase_add_test(tc, luhn);
    tcase_add_test(tc, iban);
    tcase_add_test(tc, codes);
    tcase_add_test(tc, email);
    tcase_add_test(tc, uuid_and_time);
    tcase_add_test(tr, constraints_pass);
    tcase_add_test(tr, constraints_fail);
    tcase_add_test(tr, external_url);
    tcase_add_test(tr, bad_rules_refused);
    tcase_add_test(tr, payee_rules);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tr);
    return tu_run(&s, 1);
}
