/* test_log.c — JSON lines, levels, masking of personal fields. */
#include "testutil.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void log_some(void *arg)
{
    (void)arg;
    core_log_debug("hidden at info");
    core_log_info("published", CLF_S("topic", "payee.raw"), CLF_I("count", 1000),
                  CLF_B("ok", true), CLF_D("seconds", 1.5), CLF_S("account_number", "123456789"));
    core_log_error("quote \" and newline \n in msg", CLF_S("name", "Ada Lovelace"));
}

START_TEST(json_lines_with_levels_and_masking)
{
    const char *personal[] = { "account_number", "name" };
    char *text, *line2;
    cJSON *j;

    core_log_init("test-svc", CORE_LOG_INFO);
    core_log_clear_personal();
    core_log_set_personal(personal, 2);
    text = tu_capture_log(log_some, NULL);
    ck_assert_ptr_nonnull(text);
    /* Two lines: debug is below the level. */
    line2 = strchr(text, '\n');
    ck_assert_ptr_nonnull(line2);
    *line2++ = '\0';
    ck_assert_ptr_nonnull(strchr(line2, '\n'));
    ck_assert_ptr_null(strstr(text, "hidden"));
    ck_assert_ptr_null(strstr(text, "123456789"));
    ck_assert_ptr_null(strstr(line2, "Lovelace"));

    j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "info");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "service")->valuestring, "test-svc");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "published");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "topic")->valuestring, "payee.raw");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "count")->valueint, 1000);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "account_number")->valuestring, core_log_mask());
    ck_assert_uint_eq(strlen(cJSON_GetObjectItem(j, "ts")->valuestring), 24);
    cJSON_Delete(j);

    j = cJSON_Parse(line2);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "quote \" and newline \n in msg");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "name")->valuestring, core_log_mask());
    cJSON_Delete(j);
    free(text);
    core_log_clear_personal();
}
END_TEST

static void log_record(void *arg)
{
    core_log_warn("bad record", CLF_JSON("record", (const cJSON *)arg));
}

START_TEST(personal_fields_masked_inside_json)
{
    const char *personal[] = { "account_number", "name" };
    cJSON *rec = cJSON_Parse("{\"payee_id\":\"P1\",\"name\":\"Ada\",\"nested\":{\"account_number\":\"999\"},"
                             "\"list\":[{\"name\":\"Bob\"}],\"email\":null}");
    char *text;

    core_log_init("t", CORE_LOG_DEBUG);
    core_log_set_personal(personal, 2);
    text = tu_capture_log(log_record, rec);
    ck_assert_ptr_nonnull(strstr(text, "P1"));
    ck_assert_ptr_null(strstr(text, "Ada"));
    ck_assert_ptr_null(strstr(text, "999"));
    ck_assert_ptr_null(strstr(text, "Bob"));
    /* The caller's object is not modified. */
    ck_assert_str_eq(cJSON_GetObjectItem(rec, "name")->valuestring, "Ada");
    free(text);
    cJSON_Delete(rec);
    core_log_clear_personal();
}
END_TEST

START_TEST(level_parsing)
{
    core_log_level_t l;
    ck_assert_int_eq(core_log_level_parse("debug", &l), 0);
    ck_assert_int_eq(l, CORE_LOG_DEBUG);
    ck_assert_int_eq(core_log_level_parse("WARNING", &l), 0);
    ck_assert_int_eq(l, CORE_LOG_WARN);
    ck_assert_int_eq(core_log_level_parse("loud", &l), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json_lines_with_levels_and_masking);
    tcase_add_test(tc, personal_fields_masked_inside_json);
    tcase_add_test(tc, level_parsing);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
