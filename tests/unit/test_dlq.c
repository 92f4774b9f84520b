/* test_dlq.c — core_dlq's header writers at the edges of int64. (The
 * dead-letter records themselves: test_sink, test_validator.) */
#include "testutil.h"
#include "tributary/core_dlq.h"

#include <stdint.h>
#include <string.h>

static void expect(rd_kafka_headers_t *h, const char *name, const char *want)
{
    const void *v;
    size_t len;

    ck_assert_int_eq(rd_kafka_header_get_last(h, name, &v, &len), RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(v, want, len) == 0);
}

START_TEST(int_headers_at_the_int64_edges)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);

    core_dlq_add_int(h, "zero", 0);
    core_dlq_add_int(h, "max", INT64_MAX);
    core_dlq_add_int(h, "min", INT64_MIN);
    core_dlq_add_int(h, "neg", -1);
    core_dlq_add_int(h, "p53", (INT64_C(1) << 53) + 1);
    core_dlq_add_str(h, "empty", "");
    core_dlq_add_str(h, "null", NULL);
    expect(h, "zero", "0");
    expect(h, "max", "9223372036854775807");
    expect(h, "min", "-9223372036854775808");
    expect(h, "neg", "-1");
    expect(h, "p53", "9007199254740993");
    expect(h, "empty", "");
    expect(h, "null", "");
    ck_assert_str_eq(core_dlq_kept[0], CORE_HDR_ID);
    ck_assert_str_eq(core_dlq_kept[2], CORE_HDR_INGEST_TS);
    rd_kafka_headers_destroy(h);
}
END_TEST

static Suite *dlq_suite(void)
{
    Suite *s = suite_create("dlq");
    TCase *tc = tcase_create("headers");

    tcase_add_test(tc, int_headers_at_the_int64_edges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { dlq_suite() };

    return tu_run(s, 1);
}
