/* test_json.c — core_json_parse(): numbers keep their exact text, and what
 * cJSON lets through in silence (duplicate names, \u0000, lone surrogates,
 * trailing text) is refused with the byte and the path. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *text, core_json_error *e)
{
    return core_json_parse(text, strlen(text), e);
}

/* cJSON_Parse keeps a double: 9007199254740993 came back as ...992. */
START_TEST(json_numbers_keep_their_exact_text)
{
    static const char *const nums[] = {
        "0", "-0", "9007199254740993", "-9223372036854775809", "18446744073709551616",
        "1234567890123456.78", "1.5", "1e400", "-2.5E-3", "0.1000000000000000055511151231257827",
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(nums); i++) {
        char text[128];
        core_json_error e;
        cJSON *j, *v;

        snprintf(text, sizeof(text), "{\"n\": %s, \"a\": [%s]}", nums[i], nums[i]);
        j = parse(text, &e);
        ck_assert_msg(j != NULL, "%s: byte %zu %s", nums[i], e.offset, e.reason);
        v = cJSON_GetObjectItemCaseSensitive(j, "n");
        ck_assert(cJSON_IsRaw(v));
        ck_assert_str_eq(v->valuestring, nums[i]);
        ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "a"), 0)->valuestring,
                         nums[i]);
        cJSON_Delete(j);
    }
}
END_TEST

START_TEST(json_values_strings_and_escapes)
{
    core_json_error e;
    cJSON *j = parse(" {\"s\":\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\xc3\xa9\",\"t\":true,"
                     "\"f\":false,\"z\":null,\"o\":{},\"l\":[]} \r\n", &e);

    ck_assert_msg(j != NULL, "byte %zu %s", e.offset, e.reason);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "s")->valuestring,
                     "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "t")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "f")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "z")));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "o")));
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(j, "l")));
    cJSON_Delete(j);
}
END_TEST

START_TEST(json_refusals_name_byte_and_path)
{
    static const struct {
        const char *text;
        size_t offset;
        const char *path, *why;
    } cases[] = {
        { "{\"a\":1,\"a\":2}", 7, "a", "twice" },
        { "{\"o\":{\"x\":[1,{\"y\":\"\\u0000\"}]}}", 19, "o.x[1].y", "u0000" },
        { "{\"s\":\"\\udc00\"}", 6, "s", "surrogate" },
        { "{\"s\":\"\\ud800x\"}", 6, "s", "surrogate" },
        { "{\"s\":\"a\tb\"}", 7, "s", "control" },
        { "{\"s\":\"\xc3\x28\"}", 6, "s", "UTF-8" },
        { "{\"s\":\"\\q\"}", 6, "s", "escape" },
        { "{\"n\":01}", 5, "n", "leading zero" },
        { "{\"n\":1.}", 5, "n", "point" },
        { "{\"n\":.5}", 5, "n", "value" },
        { "{\"n\":+1}", 5, "n", "value" },
        { "{\"n\":1e}", 5, "n", "exponent" },
        { "{\"n\":NaN}", 5, "n", "value" },
        { "{\"a\":1} x", 8, "", "after the value" },
        { "{\"a\":1,}", 7, "", "name" },
        { "{\"a\" 1}", 5, "", "':'" },
        { "[1 2]", 3, "", "','" },
        { "{\"a\":", 5, "a", "end" },
        { "\"abc", 0, "", "unterminated" },
        { "", 0, "", "end" },
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        core_json_error e;
        cJSON *j = parse(cases[i].text, &e);

        ck_assert_msg(j == NULL, "case %zu accepted", i);
        ck_assert_msg(e.offset == cases[i].offset, "case %zu: byte %zu (%s)", i, e.offset, e.reason);
        ck_assert_msg(strcmp(e.path, cases[i].path) == 0, "case %zu: path %s", i, e.path);
        ck_assert_msg(strstr(e.reason, cases[i].why) != NULL, "case %zu: %s", i, e.reason);
    }
    /* a NUL byte inside the given length */
    {
        core_json_error e;
        ck_assert_ptr_null(core_json_parse("{\"a\":\"x\0\"}", 10, &e));
        ck_assert_int_eq(e.offset, 7);
        ck_assert_ptr_null(core_json_parse("{}\0", 3, &e));
        ck_assert_ptr_nonnull(strstr(e.reason, "NUL"));
    }
}
END_TEST

/* Duplicates among many names are found by sorting, not a scan per name. */
START_TEST(json_duplicate_among_many_names)
{
    size_t n = 200000, cap = n * 16 + 64, off = 0;
    char *text = malloc(cap);
    core_json_error e;
    cJSON *j;

    text[off++] = '{';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(text + off, cap - off, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    text[off++] = '}';
    j = core_json_parse(text, off, &e);
    ck_assert_msg(j != NULL, "%s", e.reason);
    ck_assert_int_eq(cJSON_GetArraySize(j), (int)n);
    cJSON_Delete(j);
    off--;
    off += (size_t)snprintf(text + off, cap - off, ",\"k123456\":0}");
    ck_assert_ptr_null(core_json_parse(text, off, &e));
    ck_assert_str_eq(e.path, "k123456");
    ck_assert_ptr_nonnull(strstr(e.reason, "twice"));
    free(text);
}
END_TEST

START_TEST(json_nesting_is_bounded)
{
    char text[2 * (CORE_JSON_MAX_DEPTH + 2) + 1];
    size_t d;
    core_json_error e;
    cJSON *j;

    for (d = 0; d < CORE_JSON_MAX_DEPTH; d++)
        text[d] = '[';
    for (size_t i = 0; i < CORE_JSON_MAX_DEPTH; i++)
        text[d + i] = ']';
    j = core_json_parse(text, 2 * CORE_JSON_MAX_DEPTH, &e);
    ck_assert_msg(j != NULL, "%s", e.reason);
    cJSON_Delete(j);
    memmove(text + 1, text, 2 * CORE_JSON_MAX_DEPTH);
    text[0] = '[';
    text[2 * CORE_JSON_MAX_DEPTH + 1] = ']';
    ck_assert_ptr_null(core_json_parse(text, 2 * CORE_JSON_MAX_DEPTH + 2, &e));
    ck_assert_ptr_nonnull(strstr(e.reason, "nesting"));
}
END_TEST

/* core_number: exact comparisons from the text (issue 15). */
START_TEST(number_text_compares_exactly)
{
    static const struct { const char *a, *b; int cmp; } cases[] = {
        { "9007199254740993", "9007199254740992", 1 },
        { "9223372036854775807", "9223372036854775806", 1 },
        { "-9223372036854775808", "-9223372036854775807", -1 },
        { "9223372036854775808", "9223372036854775807", 1 },
        { "-0", "0", 0 },
        { "-0.00", "0e5", 0 },
        { "10.5", "10.50", 0 },
        { "10.5", "1.05e1", 0 },
        { "+007", "7", 0 },
        { "0.1", "0.10000000000000001", -1 },
        { "-1e-400", "0", -1 },
        { "1e400", "9e399", 1 },
        { "-10.51", "-10.5", -1 },
        /* 70 significant digits: the dropped ones still order */
        { "1.000000000000000000000000000000000000000000000000000000000000000000001", "1", 1 },
        { "1.000000000000000000000000000000000000000000000000000000000000000000001",
          "1.000000000000000000000000000000000000000000000000000000000000001", -1 },
        { "1.000000000000000000000000000000000000000000000000000000000000000000001",
          "1.00000000000000000000000000000000000000000000000000000000000000000000", 1 },
    };
    static const char *const bad[] = { "", "-", ".5", "1.", "1e", "0x10", " 1", "1 ", "inf",
                                       "nan", "1e+", "--1", "1.2.3" };
    core_number a, b;
    int64_t v;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int c;

        ck_assert_int_eq(core_number_parse(cases[i].a, &a), CORE_OK);
        ck_assert_int_eq(core_number_parse(cases[i].b, &b), CORE_OK);
        c = core_number_cmp(&a, &b);
        ck_assert_msg((c > 0) - (c < 0) == cases[i].cmp, "%s vs %s: %d", cases[i].a, cases[i].b, c);
        c = core_number_cmp(&b, &a);
        ck_assert_msg((c > 0) - (c < 0) == -cases[i].cmp, "%s vs %s", cases[i].b, cases[i].a);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(core_number_parse(bad[i], &a) == CORE_ERR_INVALID, "'%s'", bad[i]);
    ck_assert_int_eq(core_number_parse("1e9999999999", &a), CORE_ERR_TOOBIG);
    /* the 64-bit edges and what lies past them */
    ck_assert_int_eq(core_number_parse("9223372036854775807", &a), CORE_OK);
    ck_assert(core_number_int64(&a, INT64_MIN, INT64_MAX, &v) && v == INT64_MAX);
    ck_assert_int_eq(core_number_parse("-9223372036854775808", &a), CORE_OK);
    ck_assert(core_number_int64(&a, INT64_MIN, INT64_MAX, &v) && v == INT64_MIN);
    ck_assert_int_eq(core_number_parse("9223372036854775808", &a), CORE_OK);
    ck_assert(!core_number_int64(&a, INT64_MIN, INT64_MAX, &v));
    ck_assert_int_eq(core_number_parse("-9223372036854775809", &a), CORE_OK);
    ck_assert(!core_number_int64(&a, INT64_MIN, INT64_MAX, &v));
    ck_assert_int_eq(core_number_parse("1.5", &a), CORE_OK);
    ck_assert(!core_number_int64(&a, INT64_MIN, INT64_MAX, &v));
    ck_assert_int_eq(core_number_parse("1.50e1", &a), CORE_OK);
    ck_assert(core_number_int64(&a, INT64_MIN, INT64_MAX, &v) && v == 15);
    ck_assert_int_eq(core_number_decimals(&a), 0);
    ck_assert_int_eq(core_number_parse("10.50", &a), CORE_OK);
    ck_assert_int_eq(core_number_decimals(&a), 1);
    ck_assert_int_eq(core_number_int_digits(&a), 2);
    core_number_from_int64(INT64_MIN, &b);
    ck_assert_int_eq(core_number_parse("-9223372036854775808", &a), CORE_OK);
    ck_assert_int_eq(core_number_cmp(&a, &b), 0);
    core_number_from_int64(0, &b);
    ck_assert_int_eq(core_number_parse("-0.0", &a), CORE_OK);
    ck_assert_int_eq(core_number_cmp(&a, &b), 0);
}
END_TEST

/* core_json_int() keeps every digit; core_json_int_get() reads them back. */
START_TEST(json_int_round_trip_past_2p53)
{
    static const int64_t vals[] = { 0, -1, 999999999999999LL, 1000000000000001LL,
                                    9007199254740991LL, 9007199254740993LL,
                                    -9007199254740993LL, INT64_MAX, INT64_MIN };

    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        cJSON *o = cJSON_CreateObject(), *back;
        char *text;
        int64_t v = 0;

        cJSON_AddItemToObject(o, "n", core_json_int(vals[i]));
        text = cJSON_PrintUnformatted(o);
        back = core_json_parse(text, strlen(text), NULL);
        ck_assert_ptr_nonnull(back);
        ck_assert(core_json_int_get(cJSON_GetObjectItemCaseSensitive(back, "n"), INT64_MIN,
                                    INT64_MAX, &v));
        ck_assert_msg(v == vals[i], "%s", text);
        free(text);
        cJSON_Delete(back);
        cJSON_Delete(o);
    }
    {
        /* a cJSON double is taken only below 2^53, where it is exact */
        cJSON *d = cJSON_CreateNumber(9007199254740992.0);
        int64_t v;

        ck_assert(!core_json_int_get(d, INT64_MIN, INT64_MAX, &v));
        cJSON_SetNumberValue(d, 9007199254740991.0);
        ck_assert(core_json_int_get(d, INT64_MIN, INT64_MAX, &v) && v == 9007199254740991LL);
        ck_assert(!core_json_int_get(d, 0, 10, &v));
        cJSON_SetNumberValue(d, 1.5);
        ck_assert(!core_json_int_get(d, INT64_MIN, INT64_MAX, &v));
        cJSON_Delete(d);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json_numbers_keep_their_exact_text);
    tcase_add_test(tc, json_values_strings_and_escapes);
    tcase_add_test(tc, json_refusals_name_byte_and_path);
    tcase_add_test(tc, json_duplicate_among_many_names);
    tcase_add_test(tc, json_nesting_is_bounded);
    tcase_add_test(tc, number_text_compares_exactly);
    tcase_add_test(tc, json_int_round_trip_past_2p53);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
