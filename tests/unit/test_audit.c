/* test_audit.c — audit events encode to the catalogue's AuditEvent schema
 * with nulls where fields are absent; missing required fields are refused. */
#include "testutil.h"
#include "tributary/core_audit.h"
#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static core_avro_catalog_t *cat;

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "%s", err);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
}

static cJSON *round_trip(core_audit_t *a, const core_audit_event *ev)
{
    char err[512];
    void *buf = NULL;
    size_t len = 0;
    avro_value_t v;
    const core_avro_schema_t *s;
    cJSON *j;

    ck_assert_msg(core_audit_encode(a, ev, &buf, &len, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_decode(cat, buf, len, &s, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_str_eq(core_avro_schema_name(s), "tributary.AuditEvent");
    j = core_avro_to_json(s, &v, err, sizeof(err));
    avro_value_decref(&v);
    free(buf);
    return j;
}

START_TEST(full_and_sparse_events)
{
    char err[512];
    core_audit_t *a = core_audit_new(NULL, cat, NULL, "ingest", err, sizeof(err));
    core_digest d;
    char hex[65];
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    cJSON *j;

    ck_assert_msg(a != NULL, "%s", err);
    core_digest_sha256("abc", 3, &d);
    core_digest_to_hex(&d, hex);
    ev.id = "id-1";
    ev.key = "P1";
    ev.dataset = "payee";
    ev.batch_id = "b1";
    ev.outcome = "published";
    ev.digest = &d;
    ev.topic = "payee.raw";
    ev.partition = 3;
    ev.offset = 42;
    ev.line = 7;
    ev.version = 9;
    j = round_trip(a, &ev);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "stage")->valuestring, "ingest");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "digest")->valuestring, hex);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "partition")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "offset")->valueint, 42);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "line")->valueint, 7);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
    cJSON_Delete(j);

    /* A format error: no key, no digest, no topic. */
    core_audit_event fe = CORE_AUDIT_EVENT_INIT;
    fe.id = "id-2";
    fe.dataset = "payee";
    fe.batch_id = "b1";
    fe.outcome = "format_error";
    fe.reason = "line 12, column amount_limit: not a decimal";
    fe.line = 12;
    j = round_trip(a, &fe);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "key")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "digest")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "partition")));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "line")->valueint, 12);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "reason")->valuestring, fe.reason);
    cJSON_Delete(j);

    /* Required fields missing. */
    core_audit_event bad = CORE_AUDIT_EVENT_INIT;
    void *buf = NULL;
    size_t len = 0;
    bad.id = "x";
    bad.dataset = "payee";
    bad.batch_id = "b";
    ck_assert_int_eq(core_audit_encode(a, &bad, &buf, &len, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "outcome"));
    ck_assert_ptr_null(buf);
    core_audit_free(a);
    core_audit_free(NULL);
}
END_TEST

/* The direct encoder gives avro-c's own bytes: decode what it wrote and
 * encode that value again with avro-c's generic writer. Every optional
 * field present and absent, negative and large numbers, empty strings. */
START_TEST(direct_encoding_is_canonical)
{
    char err[512];
    core_audit_t *a = core_audit_new(NULL, cat, NULL, "validator", err, sizeof(err));
    core_digest d;
    core_audit_event evs[4];

    ck_assert_msg(a != NULL, "%s", err);
    core_digest_sha256("abc", 3, &d);
    for (size_t i = 0; i < 4; i++)
        evs[i] = (core_audit_event)CORE_AUDIT_EVENT_INIT;
    evs[0].id = "id-1";
    evs[0].key = "P1";
    evs[0].dataset = "payee";
    evs[0].batch_id = "b1";
    evs[0].outcome = "invalid";
    evs[0].digest = &d;
    evs[0].topic = "payee.raw";
    evs[0].partition = 2147483647;
    evs[0].offset = INT64_MAX;
    evs[0].reason = "routing_number must be a valid 9-digit ABA routing transit number (aba)";
    evs[0].line = -1;
    evs[0].version = INT64_MIN + 1;
    evs[1].id = "";
    evs[1].dataset = "d";
    evs[1].batch_id = "";
    evs[1].outcome = "poison";
    evs[1].partition = -2147483647 - 1;
    evs[1].offset = 0;
    evs[2] = evs[0];
    evs[2].key = "";
    evs[2].reason = "";
    evs[2].partition = -1;
    evs[2].offset = -64;
    evs[2].version = 63;
    evs[3] = evs[1];
    evs[3].id = "x\xc3\xa9y"; /* UTF-8 */
    evs[3].line = 1LL << 40;
    evs[3].ts = 1763790000123; /* given by the caller (0: now) */
    evs[3].content_digest = &d;
    for (size_t i = 0; i < 4; i++) {
        void *buf = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        avro_value_t v;
        const core_avro_schema_t *s;

        ck_assert_msg(core_audit_encode(a, &evs[i], &buf, &len, err, sizeof(err)) == CORE_OK,
                      "%s", err);
        ck_assert_msg(core_avro_decode(cat, buf, len, &s, &v, err, sizeof(err)) == CORE_OK,
                      "%s", err);
        ck_assert_msg(core_avro_encode(s, &v, &again, &len2, err, sizeof(err)) == CORE_OK,
                      "%s", err);
        ck_assert_uint_eq(len, len2);
        ck_assert_mem_eq(buf, again, len);
        {
            avro_value_t f;
            int64_t ts = 0;

            ck_assert_int_eq(avro_value_get_by_name(&v, "ts", &f, NULL), 0);
            ck_assert_int_eq(avro_value_get_long(&f, &ts), 0);
            if (evs[i].ts)
                ck_assert_int_eq(ts, evs[i].ts);
            else
                ck_assert_int_ge(ts, core_now_ms() - 60000);
        }
        avro_value_decref(&v);
        free(buf);
        free(again);
    }
    /* size only */
    {
        size_t len = 0;

        ck_assert_int_eq(core_audit_encode(a, &evs[0], NULL, &len, err, sizeof(err)), CORE_OK);
        ck_assert_uint_gt(len, 100);
    }
    core_audit_free(a);
}
END_TEST

/* Version 2 (id 202) carries the content digest, computed from the record's
 * value: equal for two events of a record that differ only in meta, null
 * for bytes that do not decode; a catalogue without 202 still writes 201. */
START_TEST(content_digest_in_v2_events)
{
    char err[512];
    core_audit_t *a = core_audit_new(NULL, cat, NULL, "persister", err, sizeof(err));
    const core_avro_schema_t *ps = core_avro_catalog_by_dataset(cat, "payee");
    static const char *const metas[2] = {
        "{\"id\":\"a\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"s\",\"batch_id\":\"b1\","
        "\"seq\":1,\"event_time\":1,\"version\":1,\"old_key\":null}",
        "{\"id\":\"b\",\"op\":\"UPDATE\",\"kind\":\"CHANGE\",\"source\":\"t\",\"batch_id\":\"b9\","
        "\"seq\":7,\"event_time\":2,\"version\":8,\"old_key\":null}",
    };
    char hexes[2][65], whole[65];

    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_uint_eq(core_avro_schema_id(core_avro_catalog_by_name(cat, "tributary.AuditEvent")),
                      203);
    for (int i = 0; i < 2; i++) {
        char json[1024];
        cJSON *j, *got;
        avro_value_t v;
        void *buf = NULL;
        size_t len = 0;
        core_digest cd, d;
        core_audit_event ev = CORE_AUDIT_EVENT_INIT;

        snprintf(json, sizeof(json),
                 "{\"meta\":%s,\"payee_id\":\"P1\",\"name\":\"N\",\"account_number\":\"1\","
                 "\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\","
                 "\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":0}", metas[i]);
        j = cJSON_Parse(json);
        ck_assert_msg(core_avro_from_json(ps, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_msg(core_avro_encode(ps, &v, &buf, &len, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_int_eq(core_avro_content_digest_value(ps, &v, &cd, err, sizeof(err)), CORE_OK);
        core_digest_record(buf, len, &d);
        ev.id = "x";
        ev.dataset = "payee";
        ev.batch_id = "b1";
        ev.outcome = "persisted";
        ev.digest = &d;
        ev.value = buf;
        ev.value_len = len;
        got = round_trip(a, &ev);
        ck_assert(cJSON_IsString(cJSON_GetObjectItem(got, "content_digest")));
        snprintf(hexes[i], sizeof(hexes[i]), "%s",
                 cJSON_GetObjectItem(got, "content_digest")->valuestring);
        core_digest_to_hex(&cd, whole);
        ck_assert_str_eq(hexes[i], whole);
        /* the payload digest covers meta: it differs from the content digest */
        ck_assert_str_ne(cJSON_GetObjectItem(got, "digest")->valuestring, hexes[i]);
        cJSON_Delete(got);
        /* undecodable bytes: null, and the event is still written */
        ((uint8_t *)buf)[5] = 0x7f;
        got = round_trip(a, &ev);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(got, "content_digest")));
        cJSON_Delete(got);
        free(buf);
        avro_value_decref(&v);
        cJSON_Delete(j);
    }
    ck_assert_str_eq(hexes[0], hexes[1]);
    core_audit_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, full_and_sparse_events);
    tcase_add_test(tc, direct_encoding_is_canonical);
    tcase_add_test(tc, content_digest_in_v2_events);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
