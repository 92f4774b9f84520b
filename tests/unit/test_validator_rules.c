/* test_validator_rules.c — svc-validator's rules: every check and checksum
 * with good and bad values, every constraint kind, failures naming the
 * field and the rule (never the value), external URL templating, and the
 * real payee rules on good and bad payees. */
#include "testutil.h"

#include "../../svc-validator/checks.h"
#include "../../svc-validator/rules.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <cjson/cJSON.h>
#include <regex.h>
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
    ck_assert(vrules_time_ms(j, &ms));
    ck_assert_int_eq(ms, 1709805600000LL);
    cJSON_Delete(j);
    j = cJSON_CreateString("2024-03-07");
    ck_assert(vrules_time_ms(j, &ms));
    ck_assert_int_eq(ms, 1709769600000LL);
    cJSON_Delete(j);
    j = cJSON_CreateString("yesterday");
    ck_assert(!vrules_time_ms(j, &ms));
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
    r = vrules_new(j, NULL, 60000, errstr, sizeof(errstr));
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

/* Simple anchored patterns are matched without regexec(): every pattern
 * here, fast or not, decides as regexec() does on every string. */
START_TEST(patterns_as_regexec)
{
    static const char *const pats[] = {
        "^[0-9]{9}$", "^[A-Za-z0-9][A-Za-z0-9._:-]*$", "^[0-9A-Za-z]+$", "^x\\.y$",
        "^a{2,3}b?$", "^[a-c-]+$", "^[a-z]*a$", "^a{2,}$", "^ab?c$", "^abc", "abc$",
        "^(a|b)$", "^[^0-9]+$", "^[[:alpha:]]+$", "^.+$", "^[ab]{1,2}[cd]{0,1}e$",
    };
    static const char *const strs[] = {
        "a", "aa", "aaa", "aaaa", "aab", "aaab", "ab", "ac", "abc", "xabc", "abcx",
        "123456789", "12345678", "1234567890", "12345678a", "x.y", "xzy", "A9._:-", "-A",
        "b-", "c-a", "\xc3\xa9", "ce", "abde", "abcde", "bbd", "e", "Z",
    };
    char errstr[256];

    for (size_t p = 0; p < CORE_ARRAY_SIZE(pats); p++) {
        cJSON *rj = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(rj, "rules");
        cJSON *rule = cJSON_CreateObject();
        regex_t re;
        vrules_t *r;

        cJSON_AddStringToObject(rule, "field", "x");
        cJSON_AddStringToObject(rule, "pattern", pats[p]);
        cJSON_AddItemToArray(arr, rule);
        ck_assert_int_eq(regcomp(&re, pats[p], REG_EXTENDED | REG_NOSUB), 0);
        r = vrules_new(rj, NULL, 0, errstr, sizeof(errstr));
        ck_assert_msg(r != NULL, "%s", errstr);
        for (size_t i = 0; i < CORE_ARRAY_SIZE(strs); i++) {
            cJSON *rec = cJSON_CreateObject();
            vr_failure f[4];
            bool want = regexec(&re, strs[i], 0, NULL, 0) == 0;

            cJSON_AddStringToObject(rec, "x", strs[i]);
            ck_assert_msg((vrules_eval(r, rec, 0, f, 4) == 0) == want, "'%s' on '%s'", pats[p],
                          strs[i]);
            cJSON_Delete(rec);
        }
        regfree(&re);
        vrules_free(r);
        cJSON_Delete(rj);
    }
}
END_TEST

START_TEST(bad_rules_refused)
{
    char errstr[256];
    cJSON *j = cJSON_Parse("{\"rules\":[{\"field\":\"a\",\"pattern\":\"([a-\"}]}");
    vrules_t *r = vrules_new(j, NULL, 0, errstr, sizeof(errstr));

    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(errstr, "a: pattern"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"rules\":[{\"field\":\"a\",\"check\":\"crc32\"}]}");
    ck_assert_ptr_null(vrules_new(j, NULL, 0, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "crc32"));
    cJSON_Delete(j);
    r = vrules_new(NULL, NULL, 0, errstr, sizeof(errstr)); /* no rules file: nothing to check */
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
    r = vrules_new(core_avro_schema_rules(s), s, 300000, errstr, sizeof(errstr));
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

/* ---- rules on Avro values: the same failures as on natural JSON ---------- */

static const char *avro_schema_text =
    "{\"type\":\"record\",\"name\":\"T\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"a\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"n\",\"type\":\"long\"},"
    "{\"name\":\"big\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\",\"Z\"]}},"
    "{\"name\":\"d\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":10,\"scale\":2}},"
    "{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"tu\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}],"
    "\"default\":null},"
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"raw\",\"type\":\"bytes\"},"
    "{\"name\":\"m\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"M\",\"fields\":["
    "{\"name\":\"c\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"k\",\"type\":\"int\"}]}],\"default\":null},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"list\",\"type\":{\"type\":\"array\",\"items\":\"int\"}}]}";

static const char *avro_rules_text =
    "{\"rules\":["
    "{\"field\":\"a\",\"required\":true,\"pattern\":\"^[a-z]+$\",\"length\":{\"max\":5}},"
    "{\"field\":\"n\",\"type\":\"integer\",\"min\":1,\"max\":10,\"enum\":[1,2,3]},"
    "{\"field\":\"big\",\"type\":\"integer\",\"min\":0},"
    "{\"field\":\"big\",\"type\":\"number\",\"enum\":[9007199254740993]},"
    "{\"field\":\"s\",\"type\":\"uuid\"},"
    "{\"field\":\"s\",\"type\":\"json_object\",\"required\":true},"
    "{\"field\":\"s\",\"type\":\"boolean\"},"
    "{\"field\":\"e\",\"enum\":[\"X\",\"Y\"],\"length\":{\"min\":1,\"max\":1}},"
    "{\"field\":\"d\",\"min\":\"0.00\",\"max\":100,\"pattern\":\"^[0-9]+[.][0-9]{2}$\"},"
    "{\"field\":\"t\",\"check\":\"not_future\",\"min\":0,\"type\":\"timestamp\"},"
    "{\"field\":\"tu\",\"type\":\"timestamp\",\"check\":\"not_future\",\"max\":1e15},"
    "{\"field\":\"day\",\"type\":\"timestamp\",\"min\":0,\"check\":\"not_future\","
    "\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"},"
    "{\"field\":\"f\",\"type\":\"number\",\"max\":1.5},"
    "{\"field\":\"b\",\"type\":\"boolean\",\"enum\":[\"true\"]},"
    "{\"field\":\"raw\",\"length\":{\"max\":8},\"pattern\":\"^[a-z]*$\"},"
    "{\"field\":\"m\",\"required\":true,\"type\":\"json\"},"
    "{\"field\":\"m.c\",\"required\":true,\"check\":\"iso3166_alpha2\"},"
    "{\"field\":\"m.k\",\"min\":1,\"message\":\"m.k must be positive\"},"
    "{\"field\":\"tags\",\"required\":true,\"type\":\"json\",\"length\":{\"min\":0}},"
    "{\"field\":\"list\",\"length\":{\"min\":0},\"enum\":[1]}"
    "]}";

/* The record's failures through vrules_eval() on its natural JSON and
 * through vrules_eval_avro() on the value: both must be the same. */
static size_t eval_both(const core_avro_schema_t *s, vrules_t *r, avro_value_t *v,
                        int64_t now, vr_failure *f, size_t max)
{
    char err[256], err2[256];
    vr_failure g[32];
    vrules_bound_t *b = vrules_bind(r, s, err, sizeof(err));
    cJSON *j = core_avro_to_json(s, v, err2, sizeof(err2));
    size_t n, n2 = 0;

    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_msg(j != NULL, "%s", err2);
    ck_assert_uint_le(max, 32);
    n = vrules_eval(r, j, now, f, max);
    ck_assert_int_eq(vrules_eval_avro(b, v, now, g, max, &n2, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, n2);
    for (size_t i = 0; i < n && i < max; i++) {
        ck_assert_str_eq(f[i].field, g[i].field);
        ck_assert_str_eq(f[i].rule, g[i].rule);
        ck_assert_str_eq(f[i].message, g[i].message);
    }
    cJSON_Delete(j);
    vrules_unbind(b);
    return n;
}

static void value_of(const core_avro_schema_t *s, const char *json, avro_value_t *v)
{
    char err[256];
    cJSON *j = core_json_parse(json, strlen(json), NULL); /* numbers exact, as ingest reads them */

    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(s, j, v, err, sizeof(err)) == CORE_OK, "%s", err);
    cJSON_Delete(j);
}

START_TEST(rules_on_avro_values)
{
    static const char *const recs[] = {
        /* all good but the constraints that cannot hold on some types */
        "{\"a\":\"abc\",\"n\":2,\"big\":\"9007199254740993\",\"s\":\"{\\\"x\\\":1}\",\"e\":\"X\","
        "\"d\":\"12.50\",\"t\":\"2024-03-07T10:00:00.000Z\",\"tu\":\"2024-03-07T10:00:00.000001Z\","
        "\"day\":\"2024-03-01\",\"f\":1.25,\"b\":true,\"raw\":\"abc\","
        "\"m\":{\"c\":\"DE\",\"k\":3},\"tags\":{\"x\":\"1\"},\"list\":[1,2]}",
        /* nulls, empties, out of range, a nullable union of a record set to null */
        "{\"a\":\"\",\"n\":11,\"big\":\"-9007199254740993\",\"s\":\"true\",\"e\":\"Z\","
        "\"d\":\"-0.01\",\"t\":\"2999-01-01T00:00:00.000Z\",\"tu\":null,"
        "\"day\":\"2999-12-31\",\"f\":2.5,\"b\":false,\"raw\":\"a\\\\x00\\\\\\\\b\","
        "\"m\":null,\"tags\":{},\"list\":[]}",
        /* the union null, inner optional null, large numbers, bytes escapes */
        "{\"a\":null,\"n\":0,\"big\":5,\"s\":\"123e4567-e89b-12d3-a456-426614174000\","
        "\"e\":\"Y\",\"d\":\"100.01\",\"t\":-1,\"tu\":1,\"day\":-1,\"f\":-0.5,\"b\":true,"
        "\"raw\":\"\",\"m\":{\"c\":null,\"k\":0},\"tags\":{\"c\":\"x\"},\"list\":[3]}",
        /* years beyond 9999: timestamps are numbers in natural JSON */
        "{\"a\":\"zz\",\"n\":3,\"big\":0,\"s\":\"\",\"e\":\"X\",\"d\":\"0.00\","
        "\"t\":253402300800000,\"tu\":253402300800000,\"day\":2932897,\"f\":1.5,"
        "\"b\":false,\"raw\":\"abcdefghi\",\"m\":{\"c\":\"XX\",\"k\":1},\"tags\":{},"
        "\"list\":[]}",
    };
    char errstr[256];
    core_avro_schema_t *s = core_avro_schema_new(avro_schema_text, strlen(avro_schema_text), 7,
                                                 errstr, sizeof(errstr));
    cJSON *rj = core_json_parse(avro_rules_text, strlen(avro_rules_text), NULL);
    vrules_t *r;
    vr_failure f[32];
    size_t total = 0;

    ck_assert_msg(s != NULL, "%s", errstr);
    ck_assert_ptr_nonnull(rj);
    r = vrules_new(rj, s, 60000, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(recs); i++) {
        avro_value_t v;
        size_t n;

        value_of(s, recs[i], &v);
        n = eval_both(s, r, &v, 1709805600000LL, f, 32);
        total += n;
        if (i == 0) { /* only what cannot hold on these types */
            ck_assert(has(f, n, "big", "type"));    /* a raw number is not an integer */
            ck_assert(has(f, n, "s", "uuid") || has(f, n, "s", "type"));
            ck_assert(has(f, n, "tags", "type"));   /* an object is not JSON text */
            ck_assert(has(f, n, "list", "length")); /* an array has no length */
            ck_assert(!has(f, n, "m.c", "required"));
            ck_assert(!has(f, n, "d", "min"));
            ck_assert(!has(f, n, "t", "not_future"));
        }
        if (i == 1) {
            ck_assert(has(f, n, "a", "required"));
            ck_assert(has(f, n, "n", "max"));
            ck_assert(has(f, n, "d", "min"));
            ck_assert(has(f, n, "t", "not_future"));
            ck_assert(has(f, n, "day", "not_future"));
            ck_assert(has(f, n, "m.c", "required")); /* through a null union */
            ck_assert(has(f, n, "raw", "pattern"));  /* escaped bytes */
            ck_assert(has(f, n, "e", "enum"));
        }
        if (i == 2) {
            ck_assert(has(f, n, "a", "required"));
            ck_assert(has(f, n, "m.c", "required")); /* inner optional null */
            ck_assert(has(f, n, "m.k", "min"));
            ck_assert(has(f, n, "d", "max"));
        }
        avro_value_decref(&v);
    }
    ck_assert_uint_gt(total, 20);
    /* A short failure array: the total still counts every failure. */
    {
        avro_value_t v;

        value_of(s, recs[1], &v);
        ck_assert_uint_gt(eval_both(s, r, &v, 1709805600000LL, f, 2), 2);
        avro_value_decref(&v);
    }
    vrules_free(r);
    cJSON_Delete(rj);
    core_avro_schema_free(s);
}
END_TEST

/* A decimal wider than 128 bits makes the record unreadable, as to_json
 * says, whether a rule reads it or not; a rule naming no record path of
 * the schema leaves the record to the natural-JSON evaluation. */
START_TEST(rules_on_avro_unreadable_and_unbound)
{
    char errstr[256], e1[256], e2[256];
    core_avro_schema_t *s = core_avro_schema_new(avro_schema_text, strlen(avro_schema_text), 7,
                                                 errstr, sizeof(errstr));
    cJSON *rj = cJSON_Parse("{\"rules\":[{\"field\":\"n\",\"min\":0}]}");
    cJSON *rj2 = cJSON_Parse("{\"rules\":[{\"field\":\"tags.x\",\"required\":true}]}");
    cJSON *rj3 = cJSON_Parse("{\"rules\":[{\"field\":\"nope\",\"required\":true}]}");
    vrules_t *r, *r2, *r3;
    vrules_bound_t *b;
    avro_value_t v, d;
    uint8_t wide[17];
    vr_failure f[4];
    size_t n = 0;

    ck_assert_msg(s != NULL, "%s", errstr);
    r = vrules_new(rj, NULL, 0, errstr, sizeof(errstr));
    r2 = vrules_new(rj2, NULL, 0, errstr, sizeof(errstr));
    r3 = vrules_new(rj3, NULL, 0, errstr, sizeof(errstr));
    ck_assert(r && r2 && r3);
    value_of(s, "{\"a\":\"abc\",\"n\":2,\"big\":0,\"s\":\"x\",\"e\":\"X\",\"d\":\"1.00\","
                "\"t\":0,\"day\":0,\"f\":0,\"b\":true,\"raw\":\"\",\"tags\":{},\"list\":[]}", &v);
    memset(wide, 0, sizeof(wide));
    wide[0] = 0x01; /* 2^128: needs more than 128 bits */
    ck_assert_int_eq(avro_value_get_by_name(&v, "d", &d, NULL), 0);
    ck_assert_int_eq(avro_value_set_bytes(&d, wide, sizeof(wide)), 0);
    b = vrules_bind(r, s, errstr, sizeof(errstr));
    ck_assert_msg(b != NULL, "%s", errstr);
    ck_assert_ptr_null(core_avro_to_json(s, &v, e1, sizeof(e1)));
    ck_assert_int_eq(vrules_eval_avro(b, &v, 0, f, 4, &n, e2, sizeof(e2)), -1);
    ck_assert_str_eq(e1, e2);
    vrules_unbind(b);
    /* through a map, or a field the schema lacks: not bound */
    ck_assert_ptr_null(vrules_bind(r2, s, errstr, sizeof(errstr)));
    ck_assert_ptr_null(vrules_bind(r3, s, errstr, sizeof(errstr)));
    ck_assert(strstr(errstr, "nope") != NULL);
    vrules_unbind(NULL);
    avro_value_decref(&v);
    vrules_free(r);
    vrules_free(r2);
    vrules_free(r3);
    cJSON_Delete(rj);
    cJSON_Delete(rj2);
    cJSON_Delete(rj3);
    core_avro_schema_free(s);
}
END_TEST

/* The real payee rules on the real schema: Avro and JSON agree. */
START_TEST(payee_rules_on_avro)
{
    char errstr[256];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), errstr, sizeof(errstr));
    const core_avro_schema_t *s;
    vrules_t *r;
    vr_failure f[16];
    const char *tmpl =
        "{\"meta\":{\"id\":\"%s\",\"op\":\"ADD\","
        "\"kind\":\"BULK\",\"source\":\"f\",\"batch_id\":\"b\",\"seq\":1,\"event_time\":0,"
        "\"version\":%s,\"old_key\":null},\"payee_id\":\"%s\",\"name\":\"N\","
        "\"account_number\":\"12345678\",\"routing_number\":\"%s\",\"iban\":%s,"
        "\"country\":\"%s\",\"currency\":\"%s\",\"email\":%s,\"amount_limit\":\"%s\","
        "\"status\":\"ACTIVE\",\"updated_at\":\"%s\"}";
    static const char *const v[][10] = {
        { "123e4567-e89b-12d3-a456-426614174000", "1", "P1", "021000021",
          "\"DE89370400440532013000\"", "US", "USD", "\"a@example.com\"", "10.00",
          "2024-01-01T00:00:00.000Z" },
        { "not-a-uuid", "-1", "", "021000022", "null", "UK", "XYZ", "\"not-an-email\"", "-1.00",
          "2999-01-01T00:00:00.000Z" },
        { "", "0", "P 1", "02100002", "\"GB82WEST12345698765433\"", "", "usd", "null", "0.00",
          "2024-03-07T10:04:59.999Z" },
    };
    char rec[2048];

    ck_assert_msg(cat != NULL, "%s", errstr);
    s = core_avro_catalog_by_dataset(cat, "payee");
    r = vrules_new(core_avro_schema_rules(s), s, 300000, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(v); i++) {
        avro_value_t val;
        size_t n;

        snprintf(rec, sizeof(rec), tmpl, v[i][0], v[i][1], v[i][2], v[i][3], v[i][4], v[i][5],
                 v[i][6], v[i][7], v[i][8], v[i][9]);
        value_of(s, rec, &val);
        n = eval_both(s, r, &val, 1709805600000LL, f, 16);
        if (i == 0)
            ck_assert_uint_eq(n, 0);
        else
            ck_assert_uint_ge(n, 4);
        avro_value_decref(&val);
    }
    vrules_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- bounds compared exactly (issue 15): never through a double -------- */

static const char *exact_schema_text =
    "{\"type\":\"record\",\"name\":\"X\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"d\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":10,\"scale\":2}},"
    "{\"name\":\"x\",\"type\":\"double\"},"
    "{\"name\":\"s\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

/* The rules in text (read as the catalogue reads them: core_json_parse())
 * compiled for exact_schema_text; NULL with errstr when refused. */
static vrules_t *exact_rules(const core_avro_schema_t *s, const char *rules, char *errstr,
                             size_t size)
{
    cJSON *j = core_json_parse(rules, strlen(rules), NULL);
    vrules_t *r;

    ck_assert_msg(j != NULL, "%s", rules);
    r = vrules_new(j, s, 0, errstr, size);
    cJSON_Delete(j);
    return r;
}

/* Failures of the record (JSON text, with l, i, d, x and s) on both paths;
 * the natural JSON read by core_json_parse() too (numbers as text). */
static size_t exact_eval(const core_avro_schema_t *s, vrules_t *r, const char *rec,
                         vr_failure *f, size_t max)
{
    avro_value_t v;
    cJSON *j = core_json_parse(rec, strlen(rec), NULL);
    size_t n, n2;

    ck_assert_ptr_nonnull(j);
    value_of(s, rec, &v);
    n = eval_both(s, r, &v, 0, f, max);
    n2 = vrules_eval(r, j, 0, f, max); /* the record's own text: the same */
    ck_assert_uint_eq(n, n2);
    avro_value_decref(&v);
    cJSON_Delete(j);
    return n;
}

static core_avro_schema_t *exact_schema(void)
{
    char errstr[256];
    core_avro_schema_t *s = core_avro_schema_new(exact_schema_text, strlen(exact_schema_text), 9,
                                                 errstr, sizeof(errstr));

    ck_assert_msg(s != NULL, "%s", errstr);
    return s;
}

#define EXACT_REC(l, i, d, x, s)                                                              \
    "{\"l\":" l ",\"i\":" i ",\"d\":\"" d "\",\"x\":" x ",\"s\":" s "}"

START_TEST(max_2p53_refuses_2p53_plus_1)
{
    char errstr[256];
    core_avro_schema_t *s = exact_schema();
    vrules_t *r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"max\":9007199254740992},"
                                 "{\"field\":\"s\",\"max\":9007199254740992}]}",
                              errstr, sizeof(errstr));
    vr_failure f[4];
    size_t n;

    ck_assert_msg(r != NULL, "%s", errstr);
    n = exact_eval(s, r, EXACT_REC("9007199254740992", "0", "0.00", "0", "\"9007199254740992\""),
                   f, 4);
    ck_assert_uint_eq(n, 0);
    n = exact_eval(s, r, EXACT_REC("9007199254740993", "0", "0.00", "0", "\"9007199254740993\""),
                   f, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert(has(f, n, "l", "max"));
    ck_assert(has(f, n, "s", "max"));
    ck_assert_str_eq(f[0].message, "l is above the maximum 9007199254740992");
    /* and below: -2^53 - 1 under a min of -2^53 */
    vrules_free(r);
    r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"min\":-9007199254740992}]}", errstr,
                    sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-9007199254740992", "0", "0.00", "0", "null"),
                                 f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-9007199254740993", "0", "0.00", "0", "null"),
                                 f, 4), 1);
    vrules_free(r);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(int64_edges_exact_and_out_of_range_refused)
{
    char errstr[256];
    core_avro_schema_t *s = exact_schema();
    vrules_t *r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"min\":-9223372036854775808,"
                                 "\"max\":9223372036854775807},"
                                 "{\"field\":\"i\",\"min\":-2147483648,\"max\":2147483647}]}",
                              errstr, sizeof(errstr));
    vr_failure f[4];

    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9223372036854775807", "2147483647", "0.00", "0",
                                                 "null"), f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-9223372036854775808", "-2147483648", "0.00",
                                                 "0", "null"), f, 4), 0);
    vrules_free(r);
    /* one inside each edge: the edge value itself fails */
    r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"max\":9223372036854775806},"
                       "{\"field\":\"i\",\"min\":-2147483647}]}", errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9223372036854775807", "-2147483648", "0.00",
                                                 "0", "null"), f, 4), 2);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9223372036854775806", "-2147483647", "0.00",
                                                 "0", "null"), f, 4), 0);
    vrules_free(r);
    /* bounds the field's type cannot hold: a rules-file error naming the rule */
    {
        static const char *const bad[][2] = {
            { "{\"rules\":[{\"field\":\"s\",\"required\":true},"
              "{\"field\":\"l\",\"max\":9223372036854775808}]}", "rule 1 (l): max" },
            { "{\"rules\":[{\"field\":\"l\",\"min\":-9223372036854775809}]}", "rule 0 (l): min" },
            { "{\"rules\":[{\"field\":\"i\",\"max\":2147483648}]}", "rule 0 (i): max" },
            { "{\"rules\":[{\"field\":\"i\",\"min\":-2147483649}]}", "rule 0 (i): min" },
            { "{\"rules\":[{\"field\":\"l\",\"max\":1.5}]}", "not a long" },
            { "{\"rules\":[{\"field\":\"l\",\"enum\":[1,18446744073709551616]}]}",
              "rule 0 (l): enum" },
            { "{\"rules\":[{\"field\":\"x\",\"max\":1e400}]}", "out of range for a double" },
        };

        for (size_t k = 0; k < CORE_ARRAY_SIZE(bad); k++) {
            errstr[0] = '\0';
            ck_assert_ptr_null(exact_rules(s, bad[k][0], errstr, sizeof(errstr)));
            ck_assert_msg(strstr(errstr, bad[k][1]) != NULL, "%s: %s", bad[k][0], errstr);
        }
    }
    /* without a schema, the same bounds are kept exactly (the 2^63 edge) */
    {
        const char *rt = "{\"rules\":[{\"field\":\"n\",\"max\":9223372036854775807}]}";
        cJSON *j = core_json_parse(rt, strlen(rt), NULL);
        cJSON *rec;

        ck_assert_ptr_nonnull(j);
        r = vrules_new(j, NULL, 0, errstr, sizeof(errstr));
        ck_assert_msg(r != NULL, "%s", errstr);
        rec = core_json_parse("{\"n\":9223372036854775808}", 25, NULL);
        ck_assert_uint_eq(vrules_eval(r, rec, 0, f, 4), 1);
        cJSON_Delete(rec);
        rec = core_json_parse("{\"n\":9223372036854775807}", 25, NULL);
        ck_assert_uint_eq(vrules_eval(r, rec, 0, f, 4), 0);
        cJSON_Delete(rec);
        vrules_free(r);
        cJSON_Delete(j);
    }
    core_avro_schema_free(s);
}
END_TEST

START_TEST(negative_zero_equals_zero)
{
    char errstr[256];
    core_avro_schema_t *s = exact_schema();
    vrules_t *r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"min\":-0,\"max\":0},"
                                 "{\"field\":\"d\",\"min\":\"-0.00\",\"max\":-0},"
                                 "{\"field\":\"x\",\"min\":0,\"max\":-0.0},"
                                 "{\"field\":\"s\",\"enum\":[-0]}]}",
                              errstr, sizeof(errstr));
    vr_failure f[8];

    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "0.00", "-0.0", "\"0\""), f, 8), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-0", "0", "-0.00", "0", "\"-0.000\""), f, 8), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("1", "0", "0.01", "5e-324", "\"1e-9\""), f, 8),
                      4);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-1", "0", "-0.01", "-5e-324", "\"-1e-9\""), f,
                                 8), 4);
    vrules_free(r);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(decimals_compare_across_scales)
{
    char errstr[256];
    core_avro_schema_t *s = exact_schema();
    vrules_t *r = exact_rules(s, "{\"rules\":[{\"field\":\"d\",\"min\":\"10.50\",\"max\":10.5},"
                                 "{\"field\":\"s\",\"min\":10.5,\"max\":\"10.500\"}]}",
                              errstr, sizeof(errstr));
    vr_failure f[4];
    size_t n;

    ck_assert_msg(r != NULL, "%s", errstr);
    /* 10.5 == 10.50 == 10.500 == 1.05e1 */
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "10.50", "0", "\"1.05e1\""), f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "10.50", "0", "\"10.5000000\""), f, 4),
                      0);
    n = exact_eval(s, r, EXACT_REC("0", "0", "10.51", "0", "\"10.50000000000000000001\""), f, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert(has(f, n, "d", "max") && has(f, n, "s", "max"));
    n = exact_eval(s, r, EXACT_REC("0", "0", "10.49", "0", "\"10.49999999999999999999\""), f, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert(has(f, n, "d", "min") && has(f, n, "s", "min"));
    /* 70 digits in a string value: still ordered exactly */
    n = exact_eval(s, r, EXACT_REC("0", "0", "10.50", "0",
                                   "\"10.50000000000000000000000000000000000000000000000000000000"
                                   "000000000001\""), f, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert(has(f, n, "s", "max"));
    vrules_free(r);
    /* bounds decimal(10, 2) cannot hold; a trailing zero is no decimal */
    ck_assert_ptr_null(exact_rules(s, "{\"rules\":[{\"field\":\"d\",\"max\":10.505}]}", errstr,
                                   sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "rule 0 (d): max 10.505 does not fit the field's "
                                 "decimal(10, 2)") != NULL, "%s", errstr);
    ck_assert_ptr_null(exact_rules(s, "{\"rules\":[{\"field\":\"d\",\"min\":\"-100000000\"}]}",
                                   errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "rule 0 (d): min") != NULL, "%s", errstr);
    r = exact_rules(s, "{\"rules\":[{\"field\":\"d\",\"max\":99999999.990,\"min\":\"-1e2\"}]}",
                    errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "99999999.99", "0", "null"), f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "-100.01", "0", "null"), f, 4), 1);
    vrules_free(r);
    /* a double field: the bound rounded once to a double, as the value was */
    r = exact_rules(s, "{\"rules\":[{\"field\":\"x\",\"max\":0.1}]}", errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "0.00", "0.1", "null"), f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("0", "0", "0.00", "0.10000000000000002", "null"),
                                 f, 4), 1);
    vrules_free(r);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(numeric_enum_with_big_integers)
{
    char errstr[256];
    core_avro_schema_t *s = exact_schema();
    vrules_t *r = exact_rules(s, "{\"rules\":[{\"field\":\"l\",\"enum\":[9007199254740993,"
                                 "-9223372036854775808,9223372036854775807,\"x\"]},"
                                 "{\"field\":\"d\",\"enum\":[10.5,\"-0.01\"]}]}",
                              errstr, sizeof(errstr));
    vr_failure f[4];
    size_t n;

    ck_assert_msg(r != NULL, "%s", errstr);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9007199254740993", "0", "10.50", "0", "null"),
                                 f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("-9223372036854775808", "0", "-0.01", "0",
                                                 "null"), f, 4), 0);
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9223372036854775807", "0", "10.50", "0",
                                                 "null"), f, 4), 0);
    /* 2^53 is the double 2^53 + 1 rounds to: not in the enum */
    n = exact_eval(s, r, EXACT_REC("9007199254740992", "0", "10.51", "0", "null"), f, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert(has(f, n, "l", "enum") && has(f, n, "d", "enum"));
    ck_assert_uint_eq(exact_eval(s, r, EXACT_REC("9223372036854775806", "0", "10.5", "0", "null"),
                                 f, 4), 1);
    vrules_free(r);
    core_avro_schema_free(s);
}
END_TEST

/* A bound cJSON already read into a double has lost its digits: refused
 * unless it is an integer a double holds exactly. */
START_TEST(bound_read_into_double_refused)
{
    char errstr[256];
    cJSON *j = cJSON_Parse("{\"rules\":[{\"field\":\"n\",\"max\":9007199254740993}]}");
    vrules_t *r;

    ck_assert_ptr_null(vrules_new(j, NULL, 0, errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "rule 0 (n): max was read into a double") != NULL, "%s", errstr);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"rules\":[{\"field\":\"n\",\"min\":0.1}]}");
    ck_assert_ptr_null(vrules_new(j, NULL, 0, errstr, sizeof(errstr)));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"rules\":[{\"field\":\"n\",\"min\":-9007199254740991}]}");
    r = vrules_new(j, NULL, 0, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    vrules_free(r);
    cJSON_Delete(j);
    /* and a number as text that is none */
    j = cJSON_Parse("{\"rules\":[{\"field\":\"n\",\"min\":\" 1\"}]}");
    ck_assert_ptr_null(vrules_new(j, NULL, 0, errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "rule 0 (n): min") != NULL, "%s", errstr);
    cJSON_Delete(j);
}
END_TEST

/* What the validator registers with the catalogue (vrules_file_check()):
 * libcore knows only the shape of a rules file; the rule names, forms and
 * keys are refused here, naming the file, the rule and the key. */
START_TEST(rules_file_checked_by_the_validator)
{
    static const struct { const char *from, *to, *want; } cases[] = {
        { "\"check\": \"aba\"", "\"check\": \"abba\"",
          "payee.rules.json: rule 5 (routing_number): invalid \"check\"" },
        { "\"pattern\": \"^[0-9]{9}$\"", "\"pattern\": \"^[0-9]{9$\"",
          "payee.rules.json: rule 5 (routing_number): pattern:" },
        { "\"length\": {\"min\": 1, \"max\": 140}", "\"length\": {\"min\": 9, \"max\": 1}",
          "rule 3 (name): invalid \"length\"" },
        { "{\"field\": \"iban\", \"check\": \"iban\"}",
          "{\"field\": \"iban\", \"external\": {\"url\": \"ftp://x\"}}",
          "rule 6 (iban): invalid \"external\"" },
        { "{\"field\": \"iban\", \"check\": \"iban\"}", "{\"field\": \"iban\"}",
          "rule 6 (iban) has no constraint" },
        { "{\"field\": \"iban\", \"check\": \"iban\"}", "{\"field\": \"iban\", \"frobnicate\": 1}",
          "unknown key \"frobnicate\"" },
        { "\"type\": \"uuid\"", "\"type\": \"guid\"", "rule 0 (meta.id): invalid \"type\"" },
        { "{\"field\": \"meta.version\", \"min\": 0}", "{\"field\": \"meta.version\", \"min\": \"x\"}",
          "rule 1 (meta.version): invalid \"min\"" },
    };
    char errstr[512];
    char path[4096];
    char *text;
    size_t len;
    core_avro_catalog_t *cat = core_avro_catalog_load_checked(tu_proto_dir(), vrules_file_check,
                                                              errstr, sizeof(errstr));
    const core_avro_schema_t *s;

    ck_assert_msg(cat != NULL, "the real rules files pass: %s", errstr);
    s = core_avro_catalog_by_dataset(cat, "payee");
    ck_assert_int_eq(vrules_file_check(s, "payee.rules.json", core_avro_schema_rules(s), errstr,
                                       sizeof(errstr)), 0);
    snprintf(path, sizeof(path), "%s/payee.rules.json", tu_proto_dir());
    text = core_read_file(path, 1 << 20, &len, errstr, sizeof(errstr));
    ck_assert_msg(text != NULL, "%s", errstr);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        const char *at = strstr(text, cases[i].from);
        char *edited;
        cJSON *j;

        ck_assert_msg(at != NULL, "%s", cases[i].from);
        edited = malloc(len + strlen(cases[i].to) + 1);
        ck_assert_ptr_nonnull(edited);
        sprintf(edited, "%.*s%s%s", (int)(at - text), text, cases[i].to,
                at + strlen(cases[i].from));
        j = core_json_parse(edited, strlen(edited), NULL);
        ck_assert_ptr_nonnull(j);
        errstr[0] = '\0';
        ck_assert_int_eq(vrules_file_check(s, "payee.rules.json", j, errstr, sizeof(errstr)), -1);
        ck_assert_msg(strstr(errstr, cases[i].want) != NULL, "'%s' lacks '%s'", errstr,
                      cases[i].want);
        cJSON_Delete(j);
        free(edited);
    }
    free(text);
    core_avro_catalog_free(cat);
}
END_TEST

/* Every listed code is found (the binary search needs the lists sorted). */
START_TEST(codes_all_found)
{
    static const char *const a2[] = { "AD", "ZW", "US", "DE", "GB", "MX", "AE", "ZA" };
    static const char *const c3[] = { "AED", "ZWL", "USD", "EUR", "GBP", "JPY", "XPT", "ZMW" };

    for (size_t i = 0; i < CORE_ARRAY_SIZE(a2); i++)
        ck_assert_msg(vcheck_iso3166_alpha2(a2[i]), "%s", a2[i]);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(c3); i++)
        ck_assert_msg(vcheck_iso4217(c3[i]), "%s", c3[i]);
    ck_assert(!vcheck_iso3166_alpha2("AA"));
    ck_assert(!vcheck_iso3166_alpha2("ZZ"));
    ck_assert(!vcheck_iso3166_alpha2("A"));
    ck_assert(!vcheck_iso3166_alpha2("ADX"));
    ck_assert(!vcheck_iso4217("AAA"));
    ck_assert(!vcheck_iso4217("ZZZ"));
    ck_assert(!vcheck_iso4217("XTS"));
    ck_assert(!vcheck_iso4217("US"));
    ck_assert(!vcheck_iso4217(NULL));
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
    tcase_add_test(tr, patterns_as_regexec);
    tcase_add_test(tr, payee_rules);
    tcase_add_test(tr, rules_on_avro_values);
    tcase_add_test(tr, rules_on_avro_unreadable_and_unbound);
    tcase_add_test(tr, payee_rules_on_avro);
    tcase_add_test(tc, codes_all_found);
    tcase_add_test(tr, max_2p53_refuses_2p53_plus_1);
    tcase_add_test(tr, int64_edges_exact_and_out_of_range_refused);
    tcase_add_test(tr, negative_zero_equals_zero);
    tcase_add_test(tr, decimals_compare_across_scales);
    tcase_add_test(tr, numeric_enum_with_big_integers);
    tcase_add_test(tr, bound_read_into_double_refused);
    tcase_add_test(tr, rules_file_checked_by_the_validator);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tr);
    return tu_run(&s, 1);
}
