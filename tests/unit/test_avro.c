/* test_avro.c — the schema catalogue, the wire format, the body checker
 * against hostile bytes, natural JSON, and the decimal/time helpers. */
#include "testutil.h"
#include "tributary/core_avro.h"
#include "tributary/core_json.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TB_PROTO_DIR
#define TB_PROTO_DIR "proto"
#endif

static const char *proto_dir(void)
{
    const char *d = getenv("TB_PROTO_DIR");

    return d && *d ? d : TB_PROTO_DIR;
}

static core_avro_catalog_t *load(void)
{
    char err[512] = "";
    core_avro_catalog_t *cat = core_avro_catalog_load(proto_dir(), err, sizeof(err));

    ck_assert_msg(cat != NULL, "catalogue: %s", err);
    return cat;
}

#define META(op, kind)                                                              \
    "\"meta\":{\"id\":\"6f1c0b7e-3b7a-4a56-9a57-1d2b3c4d5e6f\",\"op\":\"" op         \
    "\",\"kind\":\"" kind "\",\"source\":\"payees-2024-03-07.csv\",\"batch_id\":"     \
    "\"b-20240307\",\"seq\":42,\"event_time\":\"2024-03-07T09:59:59.250Z\","          \
    "\"version\":7,\"old_key\":null}"

static const char PAYEE_JSON[] =
    "{" META("ADD", "BULK") ",\"payee_id\":\"P-0001\",\"name\":\"Ann Example\","
    "\"account_number\":\"000123456789\",\"routing_number\":\"021000021\","
    "\"iban\":null,\"country\":\"US\",\"currency\":\"USD\",\"email\":\"ann@example.com\","
    "\"amount_limit\":\"1234.50\",\"status\":\"ACTIVE\","
    "\"updated_at\":\"2024-03-07T10:00:00.000Z\"}";

static const char DELIVERY_JSON[] =
    "{" META("ADD", "CHANGE") ",\"event_id\":\"E-77\",\"shipment_id\":\"S-9\","
    "\"tracking_number\":\"1Z999AA10123456784\",\"status\":\"OUT_FOR_DELIVERY\","
    "\"location\":\"Memphis, TN\",\"carrier\":\"UPS\","
    "\"occurred_at\":\"2024-03-07T10:00:00.000Z\",\"recipient_name\":null,"
    "\"notes\":\"left at the door \\u00e9\"}";

static const char SETTING_JSON[] =
    "{" META("UPDATE", "CHANGE") ",\"setting_key\":\"C1:card.contactless\","
    "\"client_id\":\"C1\",\"account_id\":\"ACC-123\",\"setting_name\":\"card.contactless\","
    "\"setting_value\":\"true\",\"value_type\":\"BOOLEAN\",\"card_last4\":\"4242\","
    "\"updated_at\":\"1999-12-31T23:59:59.999Z\"}";

static const char EVENT_JSON[] =
    "{" META("DELETE", "CHANGE") ",\"id\":\"msg-123456\","
    "\"timestamp\":\"2023-06-15T08:30:45.123Z\",\"source\":\"producer-1\","
    "\"type\":\"data_event\",\"payload\":\"{\\\"field1\\\":\\\"value1\\\",\\\"field2\\\":12345}\","
    "\"metadata\":{\"version\":\"1.0\",\"priority\":\"normal\"}}";

static const char AUDIT_JSON[] =
    "{\"id\":\"6f1c0b7e-3b7a-4a56-9a57-1d2b3c4d5e6f\",\"key\":\"P-0001\",\"dataset\":\"payee\","
    "\"batch_id\":\"b-20240307\",\"stage\":\"validator\",\"outcome\":\"valid\","
    "\"digest\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
    "\"ts\":\"2024-03-07T10:00:00.001Z\",\"topic\":\"payee.raw\",\"partition\":3,"
    "\"offset\":123456789012,\"reason\":null,\"line\":null,\"version\":7,"
    "\"content_digest\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"old_key\":\"P-0000\"}";

static cJSON *parse(const char *s)
{
    cJSON *j = cJSON_Parse(s);

    ck_assert_msg(j != NULL, "test JSON does not parse: %s", s);
    return j;
}

/* JSON -> Avro, or fail the test. */
static void from_json_ok(const core_avro_schema_t *s, const char *text, avro_value_t *v)
{
    char err[512] = "";
    cJSON *j = parse(text);
    core_err_t rc = core_avro_from_json(s, j, v, err, sizeof(err));

    cJSON_Delete(j);
    ck_assert_msg(rc == CORE_OK, "from_json: %s", err);
}

/* JSON -> Avro expected to fail; the error must contain want. */
static void from_json_bad(const core_avro_schema_t *s, const char *text, const char *want)
{
    char err[512] = "";
    avro_value_t v;
    cJSON *j = parse(text);
    core_err_t rc = core_avro_from_json(s, j, &v, err, sizeof(err));

    cJSON_Delete(j);
    if (rc == CORE_OK)
        avro_value_decref(&v);
    ck_assert_msg(rc == CORE_ERR_INVALID, "accepted: %s", text);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

static void encode_ok(const core_avro_schema_t *s, avro_value_t *v, void **buf, size_t *len)
{
    char err[512] = "";

    ck_assert_msg(core_avro_encode(s, v, buf, len, err, sizeof(err)) == CORE_OK,
                  "encode: %s", err);
}

/* Encode JSON text of a dataset to the wire format. */
static void wire_of(const core_avro_catalog_t *cat, const char *dataset, const char *text,
                    void **buf, size_t *len)
{
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, dataset);
    avro_value_t v;

    ck_assert_ptr_nonnull(s);
    from_json_ok(s, text, &v);
    encode_ok(s, &v, buf, len);
    avro_value_decref(&v);
}

static core_err_t decode(const core_avro_catalog_t *cat, const void *buf, size_t len,
                         char *err, size_t errsz)
{
    avro_value_t v;
    const core_avro_schema_t *s = NULL;
    core_err_t rc;

    err[0] = '\0';
    rc = core_avro_decode(cat, buf, len, &s, &v, err, errsz);
    if (rc == CORE_OK) {
        ck_assert_ptr_nonnull(s);
        avro_value_decref(&v);
    } else {
        ck_assert_msg(err[0] != '\0', "error without a message");
    }
    return rc;
}

static void decode_bad(const core_avro_catalog_t *cat, const void *buf, size_t len,
                       core_err_t want_rc, const char *want)
{
    char err[512];
    core_err_t rc = decode(cat, buf, len, err, sizeof(err));

    ck_assert_msg(rc == want_rc, "rc %d (want %d), err '%s'", rc, want_rc, err);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

/* ---- catalogue ---------------------------------------------------------- */

START_TEST(test_catalog_loads)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s;
    const char *const *pers;
    size_t np;
    const cJSON *meta;
    static const struct { uint32_t id; const char *ds, *name, *key; } want[] = {
        { 1, NULL, "tributary.Meta", NULL },
        { 101, "payee", "tributary.dataset.Payee", "payee_id" },
        { 102, "delivery_event", "tributary.dataset.DeliveryEvent", "event_id" },
        { 103, "account_setting", "tributary.dataset.AccountSetting", "setting_key" },
        { 104, "event", "tributary.dataset.Event", "id" },
        { 201, NULL, "tributary.AuditEvent", NULL },
        { 202, NULL, "tributary.AuditEvent", NULL },
        { 203, NULL, "tributary.AuditEvent", NULL },
    };
    size_t i;

    ck_assert_uint_eq(core_avro_catalog_count(cat), CORE_ARRAY_SIZE(want));
    for (i = 0; i < CORE_ARRAY_SIZE(want); i++) {
        s = core_avro_catalog_by_id(cat, want[i].id);
        ck_assert_msg(s != NULL, "id %u missing", want[i].id);
        ck_assert_str_eq(core_avro_schema_name(s), want[i].name);
        if (want[i].id != 201 && want[i].id != 202) /* 203 is the AuditEvent's last version */
            ck_assert_ptr_eq(core_avro_catalog_by_name(cat, want[i].name), s);
        ck_assert_ptr_nonnull(core_avro_schema_avro(s));
        ck_assert_ptr_nonnull(core_avro_schema_iface(s));
        ck_assert_ptr_nonnull(core_avro_schema_json(s));
        if (want[i].ds) {
            ck_assert_ptr_eq(core_avro_catalog_by_dataset(cat, want[i].ds), s);
            ck_assert_str_eq(core_avro_schema_dataset(s), want[i].ds);
            ck_assert_str_eq(core_avro_schema_key_field(s), want[i].key);
            ck_assert_ptr_nonnull(core_avro_schema_rules(s));
            /* meta inlined: the first field's type is the Meta record itself */
            meta = cJSON_GetArrayItem(cJSON_GetObjectItem(core_avro_schema_json(s), "fields"), 0);
            ck_assert(cJSON_IsObject(cJSON_GetObjectItem(meta, "type")));
        } else {
            ck_assert_ptr_null(core_avro_schema_dataset(s));
            ck_assert_ptr_null(core_avro_schema_rules(s));
        }
    }
    ck_assert_ptr_null(core_avro_catalog_by_id(cat, 999));
    ck_assert_ptr_null(core_avro_catalog_by_dataset(cat, "nope"));

    s = core_avro_catalog_by_dataset(cat, "payee");
    pers = core_avro_schema_personal(s, &np);
    ck_assert_uint_eq(np, 4);
    for (i = 0; i < np; i++)
        ck_assert(strcmp(pers[i], "name") == 0 || strcmp(pers[i], "account_number") == 0 ||
                  strcmp(pers[i], "iban") == 0 || strcmp(pers[i], "email") == 0);
    ck_assert(core_avro_schema_is_personal(s, "account_number"));
    ck_assert(!core_avro_schema_is_personal(s, "routing_number"));
    ck_assert(core_avro_schema_is_personal(core_avro_catalog_by_dataset(cat, "account_setting"),
                                           "card_last4"));
    ck_assert(core_avro_schema_is_personal(core_avro_catalog_by_dataset(cat, "delivery_event"),
                                           "recipient_name"));
    ck_assert_uint_eq(core_avro_catalog_max_record(cat), CORE_AVRO_DEFAULT_MAX_RECORD);
    core_avro_catalog_free(cat);
    core_avro_catalog_free(NULL);
    core_avro_schema_free(NULL);
}
END_TEST

/* ---- round trips -------------------------------------------------------- */

static void roundtrip(const core_avro_catalog_t *cat, const char *dataset, const char *text)
{
    const core_avro_schema_t *s = dataset[0] == '@'
                                      ? core_avro_catalog_by_name(cat, dataset + 1)
                                      : core_avro_catalog_by_dataset(cat, dataset);
    avro_value_t v, back;
    const core_avro_schema_t *bs = NULL;
    void *buf;
    size_t len, need, got;
    char err[512] = "", small[8];
    cJSON *orig, *out;
    uint32_t id;
    char *printed;

    ck_assert_ptr_nonnull(s);
    from_json_ok(s, text, &v);
    /* size-only mode agrees with the allocating mode */
    ck_assert_int_eq(core_avro_encode(s, &v, NULL, &need, err, sizeof(err)), CORE_OK);
    encode_ok(s, &v, &buf, &len);
    ck_assert_uint_eq(need, len);
    ck_assert_int_eq(core_avro_encode_into(s, &v, small, sizeof(small), &got, err,
                                           sizeof(err)), CORE_ERR_TOOBIG);
    ck_assert_uint_eq(got, len);
    ck_assert_int_eq(((uint8_t *)buf)[0], 0);
    ck_assert_int_eq(core_avro_wire_id(buf, len, &id, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(id, core_avro_schema_id(s));

    ck_assert_msg(core_avro_decode(cat, buf, len, &bs, &back, err, sizeof(err)) == CORE_OK,
                  "decode %s: %s", dataset, err);
    ck_assert_ptr_eq(bs, s);
    ck_assert(avro_value_equal(&v, &back));
    out = core_avro_to_json(s, &back, err, sizeof(err));
    ck_assert_msg(out != NULL, "to_json: %s", err);
    orig = parse(text);
    printed = cJSON_PrintUnformatted(out);
    ck_assert_msg(cJSON_Compare(orig, out, 1), "%s: round trip gave %s", dataset, printed);
    free(printed);
    if (core_avro_schema_dataset(s)) {
        const char *key;
        size_t klen;
        const cJSON *kj = cJSON_GetObjectItem(orig, core_avro_schema_key_field(s));
        core_avro_meta m;

        ck_assert_int_eq(core_avro_get_key(s, &back, &key, &klen, err, sizeof(err)), CORE_OK);
        ck_assert_str_eq(key, kj->valuestring);
        ck_assert_uint_eq(klen, strlen(kj->valuestring));
        ck_assert_int_eq(core_avro_get_meta(s, &back, &m, err, sizeof(err)), CORE_OK);
        ck_assert_str_eq(m.id, "6f1c0b7e-3b7a-4a56-9a57-1d2b3c4d5e6f");
        ck_assert_str_eq(m.batch_id, "b-20240307");
        ck_assert_str_eq(m.source, "payees-2024-03-07.csv");
        ck_assert_int_eq(m.seq, 42);
        ck_assert_int_eq(m.version, 7);
        ck_assert_int_eq(m.event_time, 1709805599250LL);
        ck_assert_ptr_null(m.old_key);
        ck_assert_str_eq(core_avro_op_name(m.op),
                         cJSON_GetObjectItem(cJSON_GetObjectItem(orig, "meta"), "op")->valuestring);
    }
    cJSON_Delete(orig);
    cJSON_Delete(out);
    free(buf);
    avro_value_decref(&v);
    avro_value_decref(&back);
}

START_TEST(test_roundtrip_datasets)
{
    core_avro_catalog_t *cat = load();

    roundtrip(cat, "payee", PAYEE_JSON);
    roundtrip(cat, "delivery_event", DELIVERY_JSON);
    roundtrip(cat, "account_setting", SETTING_JSON);
    roundtrip(cat, "event", EVENT_JSON);
    roundtrip(cat, "@tributary.AuditEvent", AUDIT_JSON);
    core_avro_catalog_free(cat);
}
END_TEST

START_TEST(test_meta_set_and_key)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *audit = core_avro_catalog_by_id(cat, 201);
    core_avro_meta m = {
        .id = "11111111-2222-3333-4444-555555555555", .op = CORE_AVRO_OP_UPDATE,
        .kind = CORE_AVRO_KIND_CHANGE, .source = "feed", .batch_id = "b2", .seq = 9,
        .event_time = 1, .version = 99, .old_key = "P-OLD",
    }, got;
    avro_value_t v;
    char err[256];
    const char *key;

    from_json_ok(s, PAYEE_JSON, &v);
    ck_assert_int_eq(core_avro_set_meta(s, &v, &m, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(core_avro_get_meta(s, &v, &got, err, sizeof(err)), CORE_OK);
    ck_assert_str_eq(got.id, m.id);
    ck_assert_int_eq(got.op, CORE_AVRO_OP_UPDATE);
    ck_assert_int_eq(got.kind, CORE_AVRO_KIND_CHANGE);
    ck_assert_str_eq(got.old_key, "P-OLD");
    ck_assert_int_eq(got.version, 99);
    ck_assert_int_eq(got.seq, 9);
    ck_assert_int_eq(core_avro_get_key(s, &v, &key, NULL, err, sizeof(err)), CORE_OK);
    ck_assert_str_eq(key, "P-0001");
    /* the audit schema is not a dataset: no key, no meta */
    ck_assert_int_eq(core_avro_get_key(audit, &v, &key, NULL, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_get_meta(audit, &v, &got, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not a dataset"));
    ck_assert_str_eq(core_avro_op_name(CORE_AVRO_OP_DELETE), "DELETE");
    ck_assert_str_eq(core_avro_kind_name(CORE_AVRO_KIND_BULK), "BULK");
    avro_value_decref(&v);
    core_avro_catalog_free(cat);
}
END_TEST

START_TEST(test_encode_wrong_schema)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *payee = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *event = core_avro_catalog_by_dataset(cat, "event");
    avro_value_t v;
    void *buf = NULL;
    size_t len;
    char err[256] = "";

    from_json_ok(payee, PAYEE_JSON, &v);
    ck_assert_int_eq(core_avro_encode(event, &v, &buf, &len, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not of schema tributary.dataset.Event"));
    ck_assert_ptr_null(buf);
    avro_value_decref(&v);
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- natural JSON forms ------------------------------------------------- */

static cJSON *json_of(const core_avro_schema_t *s, const char *text)
{
    avro_value_t v;
    char err[256];
    cJSON *j;

    from_json_ok(s, text, &v);
    j = core_avro_to_json(s, &v, err, sizeof(err));
    ck_assert_msg(j != NULL, "to_json: %s", err);
    avro_value_decref(&v);
    return j;
}

/* Replace "from" by "to" once in a copy of text. */
static char *subst(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);

    ck_assert_msg(at != NULL, "'%s' not in the sample", from);
    snprintf(s, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return s;
}

static const char *str_field(const cJSON *j, const char *name)
{
    const cJSON *f = cJSON_GetObjectItem(j, name);

    ck_assert_msg(cJSON_IsString(f), "%s is not a string", name);
    return f->valuestring;
}

START_TEST(test_json_forms)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *ev = core_avro_catalog_by_dataset(cat, "event");
    char *t;
    cJSON *j;

    /* decimals: numbers, extra zeros, negatives, exponents */
    t = subst(PAYEE_JSON, "\"1234.50\"", "1234.5");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "amount_limit"), "1234.50");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"1234.50\"", "\"-0.0500\"");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "amount_limit"), "-0.05");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"1234.50\"", "\"1.5e3\"");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "amount_limit"), "1500.00");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"1234.50\"", "\"9999999999999999.99\"");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "amount_limit"), "9999999999999999.99");
    cJSON_Delete(j);
    free(t);
    /* as a cJSON number (a double) it read as ...456.80: refused; from
     * core_json_parse() (the number's text) it is exact */
    t = subst(PAYEE_JSON, "\"1234.50\"", "1234567890123456.78");
    from_json_bad(s, t, "string");
    {
        core_json_error je;
        char err[256];
        avro_value_t v;
        cJSON *in = core_json_parse(t, strlen(t), &je), *out;

        ck_assert_ptr_nonnull(in);
        ck_assert_int_eq(core_avro_from_json(s, in, &v, err, sizeof(err)), CORE_OK);
        out = core_avro_to_json(s, &v, err, sizeof(err));
        ck_assert_str_eq(str_field(out, "amount_limit"), "1234567890123456.78");
        cJSON_Delete(out);
        cJSON_Delete(in);
        avro_value_decref(&v);
    }
    free(t);

    /* timestamps: offsets, integers of ms, lower-case t and z */
    t = subst(PAYEE_JSON, "\"2024-03-07T10:00:00.000Z\"", "\"2024-03-07T11:30:00+01:30\"");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "updated_at"), "2024-03-07T10:00:00.000Z");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"2024-03-07T10:00:00.000Z\"", "1709805600000");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "updated_at"), "2024-03-07T10:00:00.000Z");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"2024-03-07T10:00:00.000Z\"", "\"2024-03-07t05:00:00.1230-0500\"");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "updated_at"), "2024-03-07T10:00:00.123Z");
    cJSON_Delete(j);
    free(t);
    /* a fraction finer than the field's millisecond was truncated in silence */
    t = subst(PAYEE_JSON, "\"2024-03-07T10:00:00.000Z\"", "\"2024-03-07t05:00:00.1234-0500\"");
    from_json_bad(s, t, "millisecond");
    free(t);

    /* unions: Avro's wrapped form, and missing optional fields become null */
    t = subst(PAYEE_JSON, "\"ann@example.com\"", "{\"string\":\"w@example.com\"}");
    j = json_of(s, t);
    ck_assert_str_eq(str_field(j, "email"), "w@example.com");
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, "\"email\":\"ann@example.com\",", "");
    j = json_of(s, t);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "email")));
    cJSON_Delete(j);
    free(t);
    t = subst(PAYEE_JSON, ",\"old_key\":null", "");
    j = json_of(s, t);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "meta"), "old_key")));
    cJSON_Delete(j);
    free(t);
    /* unknown keys: refused by default, skipped on request */
    t = subst(PAYEE_JSON, "\"iban\":null", "\"iban\":null,\"extra\":[1]");
    from_json_bad(s, t, "record: unknown field 'extra'");
    {
        avro_value_t v;
        char err[256];
        cJSON *in = parse(t);

        ck_assert_int_eq(core_avro_from_json_opts(s, in, CORE_AVRO_JSON_IGNORE_UNKNOWN, &v,
                                                  err, sizeof(err)), CORE_OK);
        j = core_avro_to_json(s, &v, err, sizeof(err));
        ck_assert_ptr_null(cJSON_GetObjectItem(j, "extra"));
        cJSON_Delete(j);
        cJSON_Delete(in);
        avro_value_decref(&v);
    }
    free(t);
    /* a default that is not null: metadata.priority */
    t = subst(EVENT_JSON, ",\"priority\":\"normal\"", "");
    j = json_of(ev, t);
    ck_assert_str_eq(str_field(cJSON_GetObjectItem(j, "metadata"), "priority"), "normal");
    cJSON_Delete(j);
    free(t);
    core_avro_catalog_free(cat);
}
END_TEST

/* A schema with every type, for the forms the datasets do not use. */
static const char ALL_TYPES[] =
    "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"F4\",\"size\":4}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"long\",\"E\"]},"
    "{\"name\":\"dt\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"us\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},"
    "{\"name\":\"dfx\",\"type\":{\"type\":\"fixed\",\"name\":\"D8\",\"size\":8,"
    "\"logicalType\":\"decimal\",\"precision\":18,\"scale\":4}},"
    "{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"},\"default\":[]},"
    "{\"name\":\"raw\",\"type\":\"bytes\",\"default\":\"\\u00ff\\u0001A\"}"
    "]}";

/* bytes a, backslash, b, 0x00, 0xff in the escaped form (JSON text) */
#define BY_TXT "a\\\\\\\\b\\\\x00\\\\xff"

static const char ALL_JSON[] =
    "{\"b\":true,\"i\":-2147483648,\"l\":12345,\"f\":1.5,\"d\":-0.25,"
    "\"by\":\"" BY_TXT "\",\"s\":\"h\\u00e9llo\",\"e\":\"B\",\"fx\":\"ab\\\\x01d\","
    "\"tags\":[\"x\",\"y\"],\"m\":{\"k1\":1,\"k2\":-2},\"u\":12,\"dt\":\"2024-02-29\","
    "\"us\":\"1969-12-31T23:59:59.999999Z\",\"dfx\":\"-12.3400\",\"nulls\":[null,null],"
    "\"raw\":\"\\\\x00\"}";

static core_avro_schema_t *all_types(void)
{
    char err[512] = "";
    core_avro_schema_t *s = core_avro_schema_new(ALL_TYPES, strlen(ALL_TYPES), 7, err,
                                                 sizeof(err));

    ck_assert_msg(s != NULL, "schema: %s", err);
    return s;
}

START_TEST(test_json_all_types)
{
    core_avro_schema_t *s = all_types();
    avro_value_t v, back;
    void *buf;
    size_t len;
    char err[512] = "";
    cJSON *orig = parse(ALL_JSON), *out, *j;
    char *printed;

    ck_assert_uint_eq(core_avro_schema_id(s), 7);
    ck_assert_ptr_null(core_avro_schema_key_field(s));
    from_json_ok(s, ALL_JSON, &v);
    {
        avro_value_t l;

        ck_assert_int_eq(avro_value_get_by_name(&v, "l", &l, NULL), 0);
        ck_assert_int_eq(avro_value_set_long(&l, 9007199254740993LL), 0);
    }
    encode_ok(s, &v, &buf, &len);
    ck_assert_msg(core_avro_decode_body(s, (uint8_t *)buf + 5, len - 5, 0, &back, err,
                                        sizeof(err)) == CORE_OK, "decode: %s", err);
    out = core_avro_to_json(s, &back, err, sizeof(err));
    ck_assert_ptr_nonnull(out);
    printed = cJSON_PrintUnformatted(out);
    /* the long beyond 2^53 comes back exact, as raw number text */
    ck_assert_ptr_nonnull(strstr(printed, "\"l\":9007199254740993"));
    free(printed);
    /* compare everything but the raw long, which cJSON parsed as a double */
    cJSON_DeleteItemFromObject(orig, "l");
    cJSON_DeleteItemFromObject(out, "l");
    printed = cJSON_PrintUnformatted(out);
    ck_assert_msg(cJSON_Compare(orig, out, 1), "round trip gave %s", printed);
    free(printed);
    cJSON_Delete(out);
    cJSON_Delete(orig);
    free(buf);
    avro_value_decref(&v);
    avro_value_decref(&back);

    /* a missing bytes field takes its default in Avro's latin-1 form */
    j = parse("{\"b\":false,\"i\":0,\"l\":0,\"f\":0,\"d\":0,\"by\":\"\",\"s\":\"\",\"e\":\"A\","
              "\"fx\":\"abcd\",\"tags\":[],\"m\":{},\"u\":{\"E\":\"A\"},\"dt\":0,\"us\":0,"
              "\"dfx\":0}");
    ck_assert_int_eq(core_avro_from_json(s, j, &v, err, sizeof(err)), CORE_OK);
    cJSON_Delete(j);
    out = core_avro_to_json(s, &v, err, sizeof(err));
    ck_assert_str_eq(str_field(out, "raw"), "\\xff\\x01A");
    ck_assert_str_eq(str_field(out, "u"), "A");
    ck_assert_str_eq(str_field(out, "dt"), "1970-01-01");
    ck_assert_str_eq(str_field(out, "dfx"), "0.0000");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(out, "nulls")), 0);
    cJSON_Delete(out);
    /* empty strings, bytes, arrays and maps survive the wire */
    encode_ok(s, &v, &buf, &len);
    ck_assert_int_eq(core_avro_decode_body(s, (uint8_t *)buf + 5, len - 5, 0, &back, err,
                                           sizeof(err)), CORE_OK);
    ck_assert(avro_value_equal(&v, &back));
    avro_value_decref(&back);
    free(buf);
    avro_value_decref(&v);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(test_json_bad)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *audit = core_avro_catalog_by_id(cat, 203);
    core_avro_schema_t *all = all_types();
    char *t;
    static const struct { const char *from, *to, *want; } cases[] = {
        { "\"P-0001\"", "17", "payee_id: expected a string, got a number" },
        { "\"1234.50\"", "\"1234.567\"", "amount_limit: decimal has 3 decimals, scale is 2" },
        { "\"1234.50\"", "1234.567", "amount_limit: decimal has 3 decimals, scale is 2" },
        { "\"1234.50\"", "\"12345678901234567.00\"", "amount_limit: decimal has 19 digits, precision is 18" },
        { "\"1234.50\"", "\"12,50\"", "amount_limit: not a decimal number" },
        { "\"1234.50\"", "true", "amount_limit: expected a decimal" },
        { "\"2024-03-07T10:00:00.000Z\"", "\"2023-02-29T10:00:00Z\"", "updated_at: bad date-time: day out of range" },
        { "\"2024-03-07T10:00:00.000Z\"", "\"2024-13-01T10:00:00Z\"", "updated_at: bad date-time" },
        { "\"2024-03-07T10:00:00.000Z\"", "\"2024-03-07T10:00:00\"", "zone missing" },
        { "\"2024-03-07T10:00:00.000Z\"", "\"yesterday\"", "updated_at: bad date-time" },
        { "\"2024-03-07T10:00:00.000Z\"", "1.5", "updated_at: not an integer" },
        { "\"name\":\"Ann Example\",", "", "name: required field missing" },
        { "\"ACTIVE\"", "\"GONE\"", "status: not a symbol of enum tributary.dataset.PayeeStatus" },
        { "\"country\":\"US\"", "\"country\":null", "country: expected a string, got null" },
        { "\"seq\":42", "\"seq\":\"4x2\"", "meta.seq: not a long" },
        { "\"seq\":42", "\"seq\":9007199254740993", "meta.seq: at or beyond 2^53" },
        { "\"seq\":42", "\"seq\":1e300", "meta.seq: out of range for long" },
        { "\"op\":\"ADD\"", "\"op\":\"UPSERT\"", "meta.op: not a symbol" },
        { "\"email\":\"ann@example.com\"", "\"email\":42", "email: no branch of the union takes a number" },
        { "\"iban\":null", "\"iban\":null,\"colour\":\"red\"", "record: unknown field 'colour'" },
    };
    size_t i;

    for (i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        t = subst(PAYEE_JSON, cases[i].from, cases[i].to);
        from_json_bad(s, t, cases[i].want);
        free(t);
    }
    from_json_bad(s, "[1,2]", "record: expected an object");
    from_json_bad(s, "{\"meta\":7}", "meta: expected an object");
    /* int range: partition is ["null","int"] in the audit schema */
    t = subst(AUDIT_JSON, "\"partition\":3", "\"partition\":2147483648");
    from_json_bad(audit, t, "partition: out of range for int");
    free(t);
    t = subst(AUDIT_JSON, "\"partition\":3", "\"partition\":-2147483649");
    from_json_bad(audit, t, "partition: out of range for int");
    free(t);
    /* bytes, fixed, arrays, maps, dates */
    t = subst(ALL_JSON, "\"fx\":\"ab\\\\x01d\"", "\"fx\":\"abc\"");
    from_json_bad(all, t, "fx: fixed needs 4 bytes, got 3");
    free(t);
    t = subst(ALL_JSON, "\"by\":\"" BY_TXT "\"", "\"by\":\"\\\\q\"");
    from_json_bad(all, t, "by: bytes: a backslash");
    free(t);
    t = subst(ALL_JSON, "\"y\"]", "7]");
    from_json_bad(all, t, "tags[1]: expected a string, got a number");
    free(t);
    t = subst(ALL_JSON, "\"k2\":-2", "\"k2\":\"x\"");
    from_json_bad(all, t, "m[1]: not a long");
    free(t);
    t = subst(ALL_JSON, "\"2024-02-29\"", "\"2023-02-29\"");
    from_json_bad(all, t, "dt: bad date: day out of range");
    free(t);
    t = subst(ALL_JSON, "\"f\":1.5", "\"f\":1e300");
    from_json_bad(all, t, "f: out of range for float");
    free(t);
    t = subst(ALL_JSON, "\"-12.3400\"", "\"123456789012345.5\"");
    from_json_bad(all, t, "dfx: decimal has 19 digits, precision is 18");
    free(t);
    core_avro_schema_free(all);
    core_avro_catalog_free(cat);
}
END_TEST

/* Issue 15 item 8: a conversion's error names the field path and the fault,
 * never the value (values may be personal; reasons reach audit events, logs
 * and DLQ headers). Each bad value carries the marker 9753 or PII; the
 * error must hold neither. */
static void bad_never_quoted(const core_avro_schema_t *s, const char *text, const char *want)
{
    char err[512] = "";
    avro_value_t v;
    cJSON *j = parse(text);
    core_err_t rc = core_avro_from_json(s, j, &v, err, sizeof(err));

    cJSON_Delete(j);
    if (rc == CORE_OK)
        avro_value_decref(&v);
    ck_assert_msg(rc == CORE_ERR_INVALID, "accepted: %s", text);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    ck_assert_msg(!strstr(err, "PII") && !strstr(err, "9753"), "error quotes the value: %s",
                  err);
}

START_TEST(test_json_errors_never_quote_the_value)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    core_avro_schema_t *all = all_types();
    char err[256] = "";
    int64_t ms;
    uint8_t dec[16];
    size_t declen;
    static const struct { const char *from, *to, *want; } payee[] = {
        { "\"2024-03-07T10:00:00.000Z\"", "\"PIIyesterday\"", "updated_at: bad date-time: " },
        { "\"2024-03-07T10:00:00.000Z\"", "\"2024-02-30T10:00:00Z PII\"", "updated_at: bad date-time: " },
        { "\"2024-03-07T10:00:00.000Z\"", "1.9753", "updated_at: not an integer" },
        { "\"ACTIVE\"", "\"PII\"", "status: not a symbol of enum" },
        { "\"seq\":42", "\"seq\":\"4PII\"", "meta.seq: not a long" },
        { "\"seq\":42", "\"seq\":9753e300", "meta.seq: out of range for long" },
        { "\"seq\":42", "\"seq\":9753000000000000001", "meta.seq: out of range for long" },
        { "\"seq\":42", "\"seq\":97530000000000001", "meta.seq: at or beyond 2^53" },
        { "\"1234.50\"", "\"PII12.50\"", "amount_limit: not a decimal number" },
        { "\"1234.50\"", "\"9753.123\"", "amount_limit: decimal has 3 decimals, scale is 2" },
    };
    static const struct { const char *from, *to, *want; } alltypes[] = {
        { "\"dt\":\"2024-02-29\"", "\"dt\":\"9753-02-30\"", "dt: bad date: day out of range" },
        { "\"dt\":\"2024-02-29\"", "\"dt\":\"PII\"", "dt: bad date: " },
        { "\"f\":1.5", "\"f\":9753e300", "f: out of range for float" },
        { "\"e\":\"B\"", "\"e\":\"PII\"", "e: not a symbol of enum" },
        /* a map key is data: the entry is named by its position */
        { "\"k2\":-2", "\"PIIkey\":\"x\"", "m[1]: not a long" },
        { "\"by\":\"" BY_TXT "\"", "\"by\":\"PII\\u0001\"", "by: bytes: byte 4 is outside" },
        { "\"us\":\"1969-12-31T23:59:59.999999Z\"", "\"us\":\"PII\"", "us: bad date-time" },
    };

    for (size_t i = 0; i < CORE_ARRAY_SIZE(payee); i++) {
        char *t = subst(PAYEE_JSON, payee[i].from, payee[i].to);

        bad_never_quoted(s, t, payee[i].want);
        free(t);
    }
    for (size_t i = 0; i < CORE_ARRAY_SIZE(alltypes); i++) {
        char *t = subst(ALL_JSON, alltypes[i].from, alltypes[i].to);

        bad_never_quoted(all, t, alltypes[i].want);
        free(t);
    }
    /* the parsers themselves */
    ck_assert_int_eq(core_avro_time_parse("PIIyesterday", &ms, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "bad date-time: ") && !strstr(err, "PII"), "%s", err);
    ck_assert_int_eq(core_avro_time_parse_us("9753-13-01T00:00:00Z", &ms, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "month out of range") && !strstr(err, "9753"), "%s", err);
    ck_assert_int_eq(core_avro_decimal_parse("9753.PII", 18, 2, dec, &declen, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(!strstr(err, "PII") && !strstr(err, "9753"), "%s", err);
    core_avro_schema_free(all);
    core_avro_catalog_free(cat);
}
END_TEST

/* Which refused values svc-ingest's errors file may show: a path through a
 * personal field is personal; an unknown (empty) path is too. */
START_TEST(test_path_personal)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");

    ck_assert(core_avro_schema_path_personal(s, "name"));
    ck_assert(core_avro_schema_path_personal(s, "email"));
    ck_assert(core_avro_schema_path_personal(s, "account_number"));
    ck_assert(core_avro_schema_path_personal(s, "name.first"));
    ck_assert(core_avro_schema_path_personal(s, "name[2]"));
    ck_assert(core_avro_schema_path_personal(s, "x[1].iban"));
    ck_assert(core_avro_schema_path_personal(s, ""));
    ck_assert(core_avro_schema_path_personal(s, NULL));
    ck_assert(core_avro_schema_path_personal(s, "tags[1"));
    ck_assert(!core_avro_schema_path_personal(s, "updated_at"));
    ck_assert(!core_avro_schema_path_personal(s, "meta.op"));
    ck_assert(!core_avro_schema_path_personal(s, "m[1]"));
    ck_assert(!core_avro_schema_path_personal(s, "names")); /* a whole name, not a prefix */
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- hostile wire input ------------------------------------------------- */

START_TEST(test_wire_header_errors)
{
    core_avro_catalog_t *cat = load();
    uint8_t b[8] = { 0, 0, 0, 0, 101, 0, 0, 0 };
    uint8_t magic[6] = { 0x01, 0, 0, 0, 101, 0 };
    uint8_t unknown[6] = { 0, 0, 0, 0x03, 0xe7, 0 };

    decode_bad(cat, NULL, 0, CORE_ERR_INVALID, "record of 0 bytes is shorter than the 5-byte wire header");
    decode_bad(cat, "", 0, CORE_ERR_INVALID, "shorter than the 5-byte wire header");
    decode_bad(cat, b, 4, CORE_ERR_INVALID, "record of 4 bytes is shorter than the 5-byte wire header");
    decode_bad(cat, magic, sizeof(magic), CORE_ERR_INVALID, "wrong magic byte 0x01");
    decode_bad(cat, unknown, sizeof(unknown), CORE_ERR_NOTFOUND, "unknown schema id 999");
    /* a header alone: the body is empty, so the payee is truncated */
    decode_bad(cat, b, 5, CORE_ERR_INVALID, "meta.id: truncated");
    core_avro_catalog_free(cat);
}
END_TEST

/* Every strict prefix of a valid record is refused, never crashes. */
START_TEST(test_wire_truncated_every_length)
{
    core_avro_catalog_t *cat = load();
    static const struct { const char *ds, *json; } samples[] = {
        { "payee", PAYEE_JSON }, { "delivery_event", DELIVERY_JSON },
        { "account_setting", SETTING_JSON }, { "event", EVENT_JSON },
    };
    size_t i, l;

    for (i = 0; i < CORE_ARRAY_SIZE(samples); i++) {
        void *buf;
        size_t len;
        char err[512];

        wire_of(cat, samples[i].ds, samples[i].json, &buf, &len);
        ck_assert_int_eq(decode(cat, buf, len, err, sizeof(err)), CORE_OK);
        for (l = 0; l < len; l++) {
            uint8_t *copy = malloc(l ? l : 1); /* exact size: ASan sees overreads */

            memcpy(copy, buf, l);
            ck_assert_msg(decode(cat, copy, l, err, sizeof(err)) == CORE_ERR_INVALID,
                          "%s prefix of %zu/%zu bytes accepted", samples[i].ds, l, len);
            if (l >= 5)
                ck_assert_msg(strstr(err, "truncated") || strstr(err, "exceeds the"),
                              "prefix %zu: %s", l, err);
            free(copy);
        }
        free(buf);
    }
    core_avro_catalog_free(cat);
}
END_TEST

static void wire_bytes(uint8_t *out, uint32_t id, const uint8_t *body, size_t n)
{
    out[0] = 0;
    out[1] = (uint8_t)(id >> 24);
    out[2] = (uint8_t)(id >> 16);
    out[3] = (uint8_t)(id >> 8);
    out[4] = (uint8_t)id;
    memcpy(out + 5, body, n);
}

START_TEST(test_wire_hostile_lengths)
{
    core_avro_catalog_t *cat = load();
    uint8_t w[64];
    /* meta.id is the first thing in a payee body: a string whose length says
     * 2^31-1 (zig-zag 0xfffffffe), then one byte: 6 bytes of body */
    static const uint8_t huge[] = { 0xfe, 0xff, 0xff, 0xff, 0x0f, 'x' };
    static const uint8_t neg[] = { 0x09, 'x', 'x' };                 /* -5 */
    static const uint8_t nonutf8[] = { 0x04, 0xc3, 0x28 };
    static const uint8_t nul[] = { 0x04, 'a', 0x00 };
    static const uint8_t long11[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x01 };

    wire_bytes(w, 101, huge, sizeof(huge));
    decode_bad(cat, w, 5 + sizeof(huge), CORE_ERR_INVALID,
               "meta.id: string length 2147483647 exceeds the 1 bytes left");
    wire_bytes(w, 101, neg, sizeof(neg));
    decode_bad(cat, w, 5 + sizeof(neg), CORE_ERR_INVALID, "meta.id: negative string length -5");
    wire_bytes(w, 101, nonutf8, sizeof(nonutf8));
    decode_bad(cat, w, 5 + sizeof(nonutf8), CORE_ERR_INVALID, "not valid UTF-8");
    wire_bytes(w, 101, nul, sizeof(nul));
    decode_bad(cat, w, 5 + sizeof(nul), CORE_ERR_INVALID, "NUL");
    wire_bytes(w, 101, long11, sizeof(long11));
    decode_bad(cat, w, 5 + sizeof(long11), CORE_ERR_INVALID, "varint longer than 10 bytes");
    core_avro_catalog_free(cat);
}
END_TEST

START_TEST(test_wire_enum_union_trailing)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    avro_value_t v;
    void *buf;
    size_t len, off_op, off_oldkey;
    uint8_t *w;

    from_json_ok(s, PAYEE_JSON, &v);
    encode_ok(s, &v, &buf, &len);
    avro_value_decref(&v);
    w = malloc(len + 1);
    /* body: meta.id (len 36 -> 0x48, 36 bytes), op enum index */
    off_op = 5 + 1 + 36;
    memcpy(w, buf, len);
    ck_assert_int_eq(w[off_op], 0x00); /* ADD */
    w[off_op] = 0x06;                   /* index 3 of 3 symbols */
    decode_bad(cat, w, len, CORE_ERR_INVALID, "meta.op: enum index 3 out of range (3 symbols)");
    w[off_op] = 0x01;                   /* -1 */
    decode_bad(cat, w, len, CORE_ERR_INVALID, "meta.op: enum index -1 out of range");
    /* old_key union index: after op, kind, source, batch_id, seq, event_time,
     * version; find it as the byte before payee_id's length (0x0c "P-0001") */
    memcpy(w, buf, len);
    off_oldkey = 0;
    for (size_t i = off_op; i + 7 < len; i++)
        if (w[i + 1] == 0x0c && memcmp(w + i + 2, "P-0001", 6) == 0) {
            off_oldkey = i;
            break;
        }
    ck_assert_uint_gt(off_oldkey, 0);
    ck_assert_int_eq(w[off_oldkey], 0x00); /* null branch */
    w[off_oldkey] = 0x04;                   /* branch 2 of 2 */
    decode_bad(cat, w, len, CORE_ERR_INVALID, "meta.old_key: union index 2 out of range (2 branches)");
    w[off_oldkey] = 0x03;                   /* -2 */
    decode_bad(cat, w, len, CORE_ERR_INVALID, "union index -2 out of range");
    /* trailing garbage */
    memcpy(w, buf, len);
    w[len] = 0x00;
    decode_bad(cat, w, len + 1, CORE_ERR_INVALID, "1 trailing bytes after the record");
    free(w);
    free(buf);
    core_avro_catalog_free(cat);
}
END_TEST

/* Bodies for the ALL_TYPES schema built by hand from a valid prefix. */
START_TEST(test_wire_blocks)
{
    core_avro_schema_t *s = all_types();
    char err[512];
    avro_value_t v, back;
    void *buf;
    size_t len, pre, i;
    uint8_t body[256];
    cJSON *j;
    core_err_t rc;
    /* encode a record with empty tags and everything after it fixed; find
     * the offset of tags by encoding with tags=[] and m={} */
    {
        char *t = subst(ALL_JSON, "[\"x\",\"y\"]", "[]");
        char *t2 = subst(t, "{\"k1\":1,\"k2\":-2}", "{}");

        from_json_ok(s, t2, &v);
        free(t);
        free(t2);
    }
    encode_ok(s, &v, &buf, &len);
    avro_value_decref(&v);
    /* prefix = everything before tags: b i l f d by s e fx */
    pre = 1 + 5 + 3 + 4 + 8 + (1 + 5) + (1 + 6) + 1 + 4;
    ck_assert_uint_lt(pre + 2, len - 5);
    ck_assert_int_eq(((uint8_t *)buf)[5 + pre], 0x00);     /* tags: empty */
    ck_assert_int_eq(((uint8_t *)buf)[5 + pre + 1], 0x00); /* m: empty */
    /* rest after tags and m */
    {
        const uint8_t *b = (const uint8_t *)buf + 5;
        size_t rest = len - 5 - pre - 2;
        uint8_t *rest_p = (uint8_t *)b + pre + 2;

#define BODY(...)                                                                   \
    do {                                                                            \
        static const uint8_t mid_[] = { __VA_ARGS__ };                             \
        memcpy(body, b, pre);                                                       \
        memcpy(body + pre, mid_, sizeof(mid_));                                     \
        memcpy(body + pre + sizeof(mid_), rest_p, rest);                            \
        i = pre + sizeof(mid_) + rest;                                              \
    } while (0)

        /* negative block count with a correct byte size: valid per the spec */
        BODY(0x03, 0x08, 0x02, 'x', 0x02, 'y', 0x00, 0x00);
        rc = core_avro_decode_body(s, body, i, 0, &back, err, sizeof(err));
        ck_assert_msg(rc == CORE_OK, "negative block count: %s", err);
        j = core_avro_to_json(s, &back, err, sizeof(err));
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tags")), 2);
        ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tags"), 1)->valuestring, "y");
        cJSON_Delete(j);
        avro_value_decref(&back);
        /* map with a negative count */
        BODY(0x00, 0x01, 0x08, 0x04, 'k', 'z', 0x06, 0x00);
        rc = core_avro_decode_body(s, body, i, 0, &back, err, sizeof(err));
        ck_assert_msg(rc == CORE_OK, "negative map count: %s", err);
        j = core_avro_to_json(s, &back, err, sizeof(err));
        ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "m"), "kz")->valueint, 3);
        cJSON_Delete(j);
        avro_value_decref(&back);

        /* wrong block size */
        BODY(0x03, 0x0a, 0x02, 'x', 0x02, 'y', 0x00, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "tags: array block size says 5 bytes, its items take 4"));
        /* negative block size */
        BODY(0x03, 0x07, 0x02, 'x', 0x02, 'y', 0x00, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "tags: array block size -4 outside"));
        /* huge block count: 2^62 items */
        BODY(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "tags: array block of 4611686018427387904 items") != NULL, "%s", err);
        /* block count INT64_MIN (negative, its negation overflows) */
        BODY(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "tags: array block count out of range") != NULL, "%s", err);
        /* a large negative count */
        BODY(0xfd, 0xff, 0xff, 0xff, 0x0f, 0x02, 0x00, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "tags: array block of 2147483647 items") != NULL, "%s", err);
        /* a map key whose length lies */
        BODY(0x00, 0x02, 0x7e, 'k', 0x02, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "m[0]: map key length 63 exceeds") != NULL, "%s", err);
        /* a 10-byte varint that overflows 64 bits */
        BODY(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "varint overflows 64 bits") != NULL, "%s", err);
        /* billions of nulls announced in a few bytes: the element budget */
        BODY(0x00, 0x00);
        ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)), CORE_OK);
        {
            size_t nulls_off = i - 4; /* nulls: count 2, end; raw: length 1, byte */

            ck_assert_int_eq(body[nulls_off], 0x04);
            memcpy(body + 200, body + nulls_off + 1, i - nulls_off - 1);
            body[nulls_off] = 0xfe;
            body[nulls_off + 1] = 0xff;
            body[nulls_off + 2] = 0xff;
            body[nulls_off + 3] = 0xff;
            body[nulls_off + 4] = 0x0f;
            memcpy(body + nulls_off + 5, body + 200, i - nulls_off - 1);
            i += 4;
            ck_assert_int_eq(core_avro_check_body(s, body, i, 0, err, sizeof(err)),
                             CORE_ERR_INVALID);
            ck_assert_msg(strstr(err, "nulls: array block of 2147483647 items exceeds") != NULL,
                          "%s", err);
        }
        /* boolean byte 2 */
        memcpy(body, b, len - 5);
        body[0] = 0x02;
        ck_assert_int_eq(core_avro_check_body(s, body, len - 5, 0, err, sizeof(err)),
                         CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "b: boolean byte 0x02") != NULL, "%s", err);
        /* int over 5 bytes / over 32 bits */
        memcpy(body, b, len - 5);
        body[1] = 0xff; body[2] = 0xff; body[3] = 0xff; body[4] = 0xff; body[5] = 0x1f;
        ck_assert_int_eq(core_avro_check_body(s, body, len - 5, 0, err, sizeof(err)),
                         CORE_ERR_INVALID);
        ck_assert_msg(strstr(err, "i: int: varint overflows 32 bits") != NULL, "%s", err);
#undef BODY
    }
    free(buf);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(test_wire_deep_nesting)
{
    static const char rec[] =
        "{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
        "{\"name\":\"v\",\"type\":\"int\"},"
        "{\"name\":\"child\",\"type\":[\"null\",\"Node\"]}]}";
    char err[512] = "";
    core_avro_schema_t *s = core_avro_schema_new(rec, strlen(rec), 5, err, sizeof(err));
    uint8_t body[256];
    size_t n = 0, d;
    avro_value_t v;
    cJSON *j;

    ck_assert_msg(s != NULL, "%s", err);
    /* the same schema also parses with avro-c directly */
    {
        avro_schema_t raw;

        ck_assert_int_eq(avro_schema_from_json_length(rec, strlen(rec), &raw), 0);
        ck_assert(avro_schema_equal(raw, core_avro_schema_avro(s)));
        avro_schema_decref(raw);
    }
    /* 32 levels: accepted */
    for (d = 0; d < 31; d++) {
        body[n++] = 0x02; /* v = 1 */
        body[n++] = 0x02; /* child: branch 1 */
    }
    body[n++] = 0x02;
    body[n++] = 0x00;     /* child: null */
    ck_assert_msg(core_avro_decode_body(s, body, n, 0, &v, err, sizeof(err)) == CORE_OK,
                  "32 levels: %s", err);
    j = core_avro_to_json(s, &v, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    avro_value_decref(&v);
    /* 40 levels: refused */
    n = 0;
    for (d = 0; d < 40; d++) {
        body[n++] = 0x02;
        body[n++] = 0x02;
    }
    body[n++] = 0x02;
    body[n++] = 0x00;
    ck_assert_int_eq(core_avro_decode_body(s, body, n, 0, &v, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "nesting deeper than 32") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "child.child.child") != NULL, "%s", err);
    core_avro_schema_free(s);
}
END_TEST

START_TEST(test_wire_too_big)
{
    core_avro_catalog_t *cat = load();
    size_t big = 10u * 1024 * 1024;
    uint8_t *w = calloc(1, big + 5);
    char err[512];
    static const char str_schema[] =
        "{\"type\":\"record\",\"name\":\"S\",\"fields\":[{\"name\":\"s\",\"type\":\"string\"}]}";
    core_avro_schema_t *s = core_avro_schema_new(str_schema, strlen(str_schema), 9, err,
                                                 sizeof(err));
    avro_value_t v, sv;
    const char *str;
    size_t sz;

    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(s);
    w[4] = 101;
    memset(w + 5, 'a', big);
    decode_bad(cat, w, big + 5, CORE_ERR_TOOBIG, "record of 10485760 bytes exceeds max 1048576 bytes");
    core_avro_catalog_set_max_record(cat, 512);
    decode_bad(cat, w, 5 + 513, CORE_ERR_TOOBIG, "record of 513 bytes exceeds max 512 bytes");
    core_avro_catalog_set_max_record(cat, 0);
    ck_assert_uint_eq(core_avro_catalog_max_record(cat), CORE_AVRO_DEFAULT_MAX_RECORD);
    /* a 10 MB string value: refused by default, read when the limit allows */
    {
        uint8_t *body = w + 1; /* reuse: varint of 2*(big-5) fits in 4 bytes */
        uint64_t zz = 2 * (uint64_t)(big - 5);
        size_t k = 0;

        while (zz >= 0x80) {
            body[k++] = (uint8_t)(zz | 0x80);
            zz >>= 7;
        }
        body[k++] = (uint8_t)zz;
        ck_assert_uint_eq(k, 4);
        ck_assert_int_eq(core_avro_decode_body(s, body, big - 1, 0, &v, err, sizeof(err)),
                         CORE_ERR_TOOBIG);
        ck_assert_msg(strstr(err, "exceeds max") != NULL, "%s", err);
        ck_assert_int_eq(core_avro_decode_body(s, body, big - 1, 16u << 20, &v, err,
                                               sizeof(err)), CORE_OK);
        ck_assert_int_eq(avro_value_get_by_index(&v, 0, &sv, NULL), 0);
        ck_assert_int_eq(avro_value_get_string(&sv, &str, &sz), 0);
        ck_assert_uint_eq(sz, big - 5 + 1);
        avro_value_decref(&v);
    }
    free(w);
    core_avro_schema_free(s);
    core_avro_catalog_free(cat);
}
END_TEST

/* Deterministic mutations of valid records: any outcome but a crash, a leak
 * or an acceptance that avro-c then cannot read. */
START_TEST(test_wire_mutations)
{
    core_avro_catalog_t *cat = load();
    void *buf;
    size_t len, it;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char err[512];

    wire_of(cat, "payee", PAYEE_JSON, &buf, &len);
    for (it = 0; it < 20000; it++) {
        uint8_t *m = malloc(len);
        size_t nmut, k, l = len;

        memcpy(m, buf, len);
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        nmut = 1 + x % 4;
        for (k = 0; k < nmut; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            m[5 + x % (len - 5)] = (uint8_t)(x >> 32);
        }
        if (x & 0x100)
            l = 5 + (x >> 40) % (len - 5);
        (void)decode(cat, m, l, err, sizeof(err));
        free(m);
    }
    free(buf);
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- helpers ------------------------------------------------------------ */

static void dec_rt(const char *in, int prec, int scale, const char *want)
{
    uint8_t b[16];
    size_t n;
    char err[256] = "", out[CORE_AVRO_DECIMAL_SIZE];

    ck_assert_msg(core_avro_decimal_parse(in, prec, scale, b, &n, err, sizeof(err)) == CORE_OK,
                  "%s: %s", in, err);
    ck_assert_int_eq(core_avro_decimal_format(b, n, scale, out, sizeof(out), err, sizeof(err)),
                     CORE_OK);
    ck_assert_str_eq(out, want);
}

START_TEST(test_decimal_helpers)
{
    uint8_t b[16];
    size_t n;
    char err[256], out[CORE_AVRO_DECIMAL_SIZE];
    static const uint8_t wide_ok[18] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x85 };
    static const uint8_t wide_bad[17] = { 0x01 };

    dec_rt("0", 18, 2, "0.00");
    dec_rt("-0", 18, 2, "0.00");
    dec_rt("1234.5", 18, 2, "1234.50");
    dec_rt("-1234.56", 18, 2, "-1234.56");
    dec_rt("+0.01", 18, 2, "0.01");
    dec_rt("-0.01", 18, 2, "-0.01");
    dec_rt("00012", 5, 0, "12");
    dec_rt("1.2300000", 18, 2, "1.23");
    dec_rt("12e-1", 18, 2, "1.20");
    dec_rt("99999999999999999999999999999999999999", 38, 0,
           "99999999999999999999999999999999999999");
    dec_rt("-99999999999999999999999999999999999999", 38, 0,
           "-99999999999999999999999999999999999999");
    dec_rt("-9999999999999999999999999999999999.9999", 38, 4,
           "-9999999999999999999999999999999999.9999");
    dec_rt("1000000000000000000000000000000000000000e-2", 38, 0,
           "10000000000000000000000000000000000000");
    /* minimal two's complement */
    ck_assert_int_eq(core_avro_decimal_parse("-0.01", 18, 2, b, &n, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(b[0], 0xff);
    ck_assert_int_eq(core_avro_decimal_parse("1.28", 18, 2, b, &n, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(b[0], 0x00);
    ck_assert_int_eq(b[1], 0x80);
    /* refusals */
    ck_assert_int_eq(core_avro_decimal_parse("1.234", 18, 2, b, &n, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_str_eq(err, "decimal has 3 decimals, scale is 2");
    ck_assert_int_eq(core_avro_decimal_parse("100000000000000000000000000000000000000", 38, 0,
                                             b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse(".", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("1e", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("1e99999", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("1 ", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("0x10", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("nan", 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse(NULL, 18, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_parse("1", 39, 2, b, &n, err, sizeof(err)), CORE_ERR_INVALID);
    /* wide input: sign extension accepted, real width refused */
    ck_assert_int_eq(core_avro_decimal_format(wide_ok, sizeof(wide_ok), 2, out, sizeof(out),
                                              err, sizeof(err)), CORE_OK);
    ck_assert_str_eq(out, "-1.23");
    ck_assert_int_eq(core_avro_decimal_format(wide_bad, sizeof(wide_bad), 2, out, sizeof(out),
                                              err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "wider than 128 bits"));
    ck_assert_int_eq(core_avro_decimal_format(wide_ok, sizeof(wide_ok), 2, out, 3, err,
                                              sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_decimal_format("", 0, 2, out, sizeof(out), err, sizeof(err)),
                     CORE_OK);
    ck_assert_str_eq(out, "0.00");
}
END_TEST

START_TEST(test_time_helpers)
{
    int64_t ms, us;
    char err[256], buf[CORE_AVRO_TIME_SIZE];
    static const struct { const char *in; int64_t ms; } ok[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "1970-01-01T00:00:00.001Z", 1 },
        { "1969-12-31T23:59:59.999Z", -1 },
        { "2024-03-07T10:00:00.000Z", 1709805600000LL },
        { "2024-03-07T10:00Z", 1709805600000LL },
        { "2024-03-07 11:00:00+01:00", 1709805600000LL },
        { "2024-03-07T05:00:00-05", 1709805600000LL },
        { "2024-02-29T00:00:00Z", 1709164800000LL },
        { "2000-02-29T12:00:00,5Z", 951825600500LL },
        { "0001-01-01T00:00:00Z", -62135596800000LL },
        { "9999-12-31T23:59:59.999Z", 253402300799999LL },
    };
    static const char *const bad[] = {
        "", "2024", "2024-03-07", "2024-03-07T10:00:00", "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
        "2024-03-07T24:00:00Z", "2024-03-07T10:60:00Z", "2024-03-07T10:00:60Z",
        "2024-03-07T10:00:00.Z", "2024-03-07T10:00:00.1234567891Z", "2024-03-07T10:00:00Zjunk",
        "2024-03-07T10:00:00+25:00", "0000-01-01T00:00:00Z", "24-03-07T10:00:00Z",
        "2024-3-7T10:00:00Z", "2024-03-07X10:00:00Z", "2024-03-07T10:00:00 Z",
        "0001-01-01T00:00:00+01:00",
    };
    size_t i;

    for (i = 0; i < CORE_ARRAY_SIZE(ok); i++) {
        ck_assert_msg(core_avro_time_parse(ok[i].in, &ms, err, sizeof(err)) == CORE_OK,
                      "%s: %s", ok[i].in, err);
        ck_assert_msg(ms == ok[i].ms, "%s: %lld", ok[i].in, (long long)ms);
    }
    for (i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        ck_assert_msg(core_avro_time_parse(bad[i], &ms, err, sizeof(err)) == CORE_ERR_INVALID,
                      "accepted '%s'", bad[i]);
        ck_assert_msg(strstr(err, "bad date-time") != NULL, "%s", err);
    }
    ck_assert_int_eq(core_avro_time_parse(NULL, &ms, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_avro_time_format(1709805600123LL, buf, sizeof(buf)), 24);
    ck_assert_str_eq(buf, "2024-03-07T10:00:00.123Z");
    ck_assert_int_eq(core_avro_time_format(-1, buf, sizeof(buf)), 24);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    ck_assert_int_eq(core_avro_time_format(253402300799999LL, buf, sizeof(buf)), 24);
    ck_assert_str_eq(buf, "9999-12-31T23:59:59.999Z");
    ck_assert_int_eq(core_avro_time_format(253402300800000LL, buf, sizeof(buf)), -1);
    ck_assert_int_eq(core_avro_time_format(INT64_MIN, buf, sizeof(buf)), -1);
    ck_assert_int_eq(core_avro_time_format(INT64_MAX, buf, sizeof(buf)), -1);
    ck_assert_int_eq(core_avro_time_format(0, buf, 24), -1);
    ck_assert_int_eq(core_avro_time_parse_us("2024-03-07T10:00:00.123456Z", &us, err,
                                             sizeof(err)), CORE_OK);
    ck_assert_int_eq(us, 1709805600123456LL);
    ck_assert_int_eq(core_avro_time_format_us(us, buf, sizeof(buf)), 27);
    ck_assert_str_eq(buf, "2024-03-07T10:00:00.123456Z");
    ck_assert_int_eq(core_avro_time_format_us(-1, buf, sizeof(buf)), 27);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
    /* every ms of a few days around the epoch and a leap day round-trips */
    for (ms = -86400000LL * 2; ms < 86400000LL * 2; ms += 86399999LL / 97) {
        int64_t back;

        ck_assert_int_gt(core_avro_time_format(ms, buf, sizeof(buf)), 0);
        ck_assert_int_eq(core_avro_time_parse(buf, &back, err, sizeof(err)), CORE_OK);
        ck_assert_int_eq(back, ms);
    }
}
END_TEST

/* ---- bad catalogues ----------------------------------------------------- */

static char *slurp(const char *path, size_t *lenp)
{
    char err[256];
    char *t = core_read_file(path, 1 << 20, lenp, err, sizeof(err));

    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A temp copy of the real proto/ directory. */
static char *proto_copy(void)
{
    static const char *const files[] = {
        "catalog.json", "meta.avsc", "payee.avsc", "payee.rules.json",
        "delivery_event.avsc", "delivery_event.rules.json", "account_setting.avsc",
        "account_setting.rules.json", "event.avsc", "event.rules.json", "audit_event.avsc",
        "audit_event_v2.avsc", "audit_event_v3.avsc",
    };
    char *dir = strdup("/tmp/tb-avro-test-XXXXXX");
    size_t i;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (i = 0; i < CORE_ARRAY_SIZE(files); i++) {
        char src[1024];
        size_t len;
        char *t;

        snprintf(src, sizeof(src), "%s/%s", proto_dir(), files[i]);
        t = slurp(src, &len);
        put(dir, files[i], t);
        free(t);
    }
    return dir;
}

static void rm_dir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char p[1024];

        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
}

/* Replace from by to in dir/name. */
static void edit(const char *dir, const char *name, const char *from, const char *to)
{
    char path[1024];
    size_t len;
    char *t, *n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    t = slurp(path, &len);
    n = subst(t, from, to);
    put(dir, name, n);
    free(t);
    free(n);
}

static void catalog_bad(const char *dir, const char *want1, const char *want2)
{
    char err[512] = "";
    core_avro_catalog_t *cat = core_avro_catalog_load(dir, err, sizeof(err));

    if (cat)
        core_avro_catalog_free(cat);
    ck_assert_msg(cat == NULL, "bad catalogue loaded (want '%s')", want1);
    ck_assert_msg(strstr(err, want1) != NULL, "error '%s' lacks '%s'", err, want1);
    if (want2)
        ck_assert_msg(strstr(err, want2) != NULL, "error '%s' lacks '%s'", err, want2);
}

START_TEST(test_catalog_bad)
{
    static const struct { const char *file, *from, *to, *want1, *want2; } cases[] = {
        { "catalog.json", "\"id\": 102", "\"id\": 101", "schema id 101 (delivery_event.avsc) is already used by", "payee.avsc" },
        { "catalog.json", "\"file\": \"event.avsc\"", "\"file\": \"nope.avsc\"", "nope.avsc", "No such file" },
        { "catalog.json", "\"file\": \"event.avsc\"", "\"file\": \"../event.avsc\"", "catalog.json: schema id 104", "file name" },
        { "catalog.json", "\"id\": 1,", "\"id\": 0,", "catalog.json: schema 0", "\"id\" must be an integer" },
        { "catalog.json", "\"dataset\": \"event\",", "\"dataset\": \"event\", \"colour\": 1,", "unknown key \"colour\"", NULL },
        { "catalog.json", "{\"id\": 1,   \"name\": \"tributary.Meta\",       \"file\": \"meta.avsc\"},", "", "payee.avsc", "unknown type 'tributary.Meta'" },
        { "catalog.json", "\"name\": \"tributary.AuditEvent\"", "\"name\": \"tributary.Audit\"", "audit_event.avsc: defines tributary.AuditEvent, catalog.json says tributary.Audit", NULL },
        { "catalog.json", "\"dataset\": \"event\"", "\"dataset\": \"payee\"", "dataset payee: tb.key 'id' differs from 'payee_id'", "event.avsc" },
        { "catalog.json", "\"dataset\": \"event\"", "\"dataset\": \"Event-X\"", "dataset name 'Event-X'", NULL },
        { "catalog.json", "\"schemas\"", "\"schemata\"", "needs a \"schemas\" array", NULL },
        { "catalog.json", "]", "", "catalog.json: JSON syntax error", NULL },
        { "payee.avsc", "\"tb.key\": \"payee_id\"", "\"tb.key\": \"nope\"", "payee.avsc: tb.key names 'nope', which is not a field", NULL },
        { "payee.avsc", "\"tb.key\": \"payee_id\"", "\"tb.key\": \"amount_limit\"", "tb.key field 'amount_limit' must be of type string", NULL },
        { "payee.avsc", "\"tb.key\": \"payee_id\",", "", "payee.avsc: a dataset schema needs \"tb.key\"", NULL },
        { "payee.avsc", "\"name\": \"meta\"", "\"name\": \"meta2\"", "payee.avsc: a dataset schema must be a record whose first field is meta", NULL },
        { "payee.avsc", "\"type\": \"tributary.Meta\"", "\"type\": \"string\"", "field meta must be of type tributary.Meta", NULL },
        { "payee.avsc", "\"type\": \"tributary.Meta\"", "\"type\": \"Metta\"", "unknown type 'Metta'", NULL },
        { "payee.avsc", "\"tb.personal\": true, \"doc\": \"Bank", "\"tb.personal\": \"yes\", \"doc\": \"Bank", "tb.personal must be true or false", NULL },
        { "payee.avsc", "\"precision\": 18", "\"precision\": 40", "decimal precision must be an integer in 1..38", NULL },
        { "payee.avsc", "\"BLOCKED\"]", "\"ACTIVE\"]", "symbol ACTIVE appears twice", NULL },
        { "payee.avsc", "\"default\": null, \"tb.personal\": true,\n     \"doc\": \"Remittance", "\"default\": \"x\", \"tb.personal\": true,\n     \"doc\": \"Remittance", "field tributary.dataset.Payee.email: default value does not match", NULL },
        { "meta.avsc", "\"UPDATE\", \"DELETE\"", "\"DELETE\", \"UPDATE\"", "op must be enum [ADD, UPDATE, DELETE]", NULL },
        { "payee.rules.json", "{\"field\": \"iban\"", "{\"field\": \"ibna\"", "payee.rules.json: rule 6: field 'ibna' is not in schema", NULL },
        { "payee.rules.json", "\"dataset\": \"payee\"", "\"dataset\": \"payees\"", "\"dataset\" must be \"payee\"", NULL },
    };
    size_t i;
    char *dir;

    /* the unmodified copy loads: the cases below fail for their edit alone */
    {
        char err[512] = "";
        core_avro_catalog_t *cat;

        dir = proto_copy();
        cat = core_avro_catalog_load(dir, err, sizeof(err));
        ck_assert_msg(cat != NULL, "%s", err);
        core_avro_catalog_free(cat);
        rm_dir(dir);
    }
    for (i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        dir = proto_copy();
        edit(dir, cases[i].file, cases[i].from, cases[i].to);
        catalog_bad(dir, cases[i].want1, cases[i].want2);
        rm_dir(dir);
    }
    /* missing directory, oversized schema, a valid external rule */
    catalog_bad("/nonexistent/proto", "/nonexistent/proto/catalog.json", "No such file");
    dir = proto_copy();
    {
        size_t big = CORE_AVRO_MAX_FILE + 10;
        char *t = malloc(big + 1);

        memset(t, ' ', big);
        t[big] = '\0';
        put(dir, "event.avsc", t);
        free(t);
        catalog_bad(dir, "event.avsc", "exceeds the limit");
    }
    rm_dir(dir);
    dir = proto_copy();
    edit(dir, "payee.rules.json", "{\"field\": \"iban\", \"check\": \"iban\"}",
         "{\"field\": \"account_number\", \"external\": {\"url\": \"http://localhost:8089/verify\","
         " \"cache_ttl_s\": 3600, \"timeout_ms\": 500, \"method\": \"POST\"}}");
    {
        char err[512] = "";
        core_avro_catalog_t *cat = core_avro_catalog_load(dir, err, sizeof(err));

        ck_assert_msg(cat != NULL, "%s", err);
        core_avro_catalog_free(cat);
    }
    rm_dir(dir);
}
END_TEST

/* A second version of a dataset: new id, old records still readable. */
START_TEST(test_catalog_versions)
{
    char *dir = proto_copy();
    char err[512] = "", src[1024];
    core_avro_catalog_t *cat, *old;
    const core_avro_schema_t *v1, *v2;
    void *buf;
    size_t len;
    avro_value_t v;
    const core_avro_schema_t *got = NULL;
    cJSON *j;
    char *t;

    /* payee_v2.avsc: payee.avsc plus an optional nickname */
    snprintf(src, sizeof(src), "%s/payee.avsc", dir);
    t = slurp(src, &len);
    {
        char *n = subst(t, "{\"name\": \"payee_id\"",
                        "{\"name\": \"nickname\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
                        "    {\"name\": \"payee_id\"");
        put(dir, "payee_v2.avsc", n);
        free(n);
    }
    free(t);
    edit(dir, "catalog.json", "{\"id\": 201,",
         "{\"id\": 105, \"dataset\": \"payee\", \"file\": \"payee_v2.avsc\", \"rules\": \"payee.rules.json\"},\n"
         "    {\"id\": 201,");
    cat = core_avro_catalog_load(dir, err, sizeof(err));
    ck_assert_msg(cat != NULL, "%s", err);
    v1 = core_avro_catalog_by_id(cat, 101);
    v2 = core_avro_catalog_by_id(cat, 105);
    ck_assert_ptr_nonnull(v1);
    ck_assert_ptr_nonnull(v2);
    ck_assert_ptr_eq(core_avro_catalog_by_dataset(cat, "payee"), v2);
    ck_assert_ptr_eq(core_avro_catalog_by_name(cat, "tributary.dataset.Payee"), v2);
    /* a record written by the real catalogue (id 101) is read as the
     * current version v2: nickname, which v1 lacks, at its default */
    old = load();
    wire_of(old, "payee", PAYEE_JSON, &buf, &len);
    ck_assert_int_eq(core_avro_decode(cat, buf, len, &got, &v, err, sizeof(err)), CORE_OK);
    ck_assert_ptr_eq(got, v2);
    j = core_avro_to_json(got, &v, err, sizeof(err));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "nickname")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "payee_id")->valuestring, "P-0001");
    cJSON_Delete(j);
    avro_value_decref(&v);
    {
        /* the reusing decoder reads it the same way; its content digest is
         * that of the v2 record (nickname null), which the sinks store */
        core_avro_decoder_t *dec = core_avro_decoder_new(cat, err, sizeof(err));
        avro_value_t *dv, v2v;
        core_digest dw, dv2;

        ck_assert_ptr_nonnull(dec);
        ck_assert_int_eq(core_avro_decoder_decode(dec, buf, len, &got, &dv, err, sizeof(err)),
                         CORE_OK);
        ck_assert_ptr_eq(got, v2);
        ck_assert_ptr_eq(avro_value_get_schema(dv), core_avro_schema_avro(v2));
        ck_assert_msg(core_avro_content_digest_wire(cat, buf, len, &dw, err, sizeof(err)) ==
                      CORE_OK, "%s", err);
        from_json_ok(v2, PAYEE_JSON, &v2v);
        ck_assert_int_eq(core_avro_content_digest_value(v2, &v2v, &dv2, err, sizeof(err)),
                         CORE_OK);
        ck_assert(memcmp(&dw, &dv2, sizeof(dw)) == 0);
        avro_value_decref(&v2v);
        core_avro_decoder_free(dec);
    }
    free(buf);
    /* the current version writes with id 105 */
    from_json_ok(v2, PAYEE_JSON, &v);
    encode_ok(v2, &v, &buf, &len);
    ck_assert_int_eq(((uint8_t *)buf)[4], 105);
    avro_value_decref(&v);
    ck_assert_int_eq(core_avro_decode(cat, buf, len, &got, &v, err, sizeof(err)), CORE_OK);
    j = core_avro_to_json(got, &v, err, sizeof(err));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "nickname")));
    cJSON_Delete(j);
    avro_value_decref(&v);
    free(buf);
    core_avro_catalog_free(old);
    core_avro_catalog_free(cat);
    rm_dir(dir);
}
END_TEST

START_TEST(test_schema_new_and_add)
{
    char err[512] = "";
    core_avro_catalog_t *cat = load();
    static const char reg[] =
        "{\"type\":\"record\",\"name\":\"Extra\",\"namespace\":\"x\",\"tb.key\":\"k\","
        "\"fields\":[{\"name\":\"meta\",\"type\":\"tributary.Meta\"},"
        "{\"name\":\"k\",\"type\":\"string\"}]}";
    static const char *const bad[][2] = {
        { "{", "JSON syntax error" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"Nope\"}]}",
          "unknown type 'Nope'" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
          "{\"name\":\"a\",\"type\":\"int\"}]}", "field a appears twice" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"int\",\"int\"]}]}",
          "union holds the same type twice" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"int\",[\"null\"]]}]}",
          "a union cannot hold a union" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"tributary.Meta\"}]}",
          "unknown type 'tributary.Meta'" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"1a\",\"type\":\"int\"}]}",
          "needs a valid \"name\"" },
        { "{\"type\":\"record\",\"name\":\"R\",\"tb.key\":\"a\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}",
          "tb.key field 'a' must be of type string" },
        { "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[]}", "non-empty" },
        { "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "\"size\" must be" },
        { "{\"type\":\"array\"}", "needs \"items\"" },
        { "42", "a schema must be a JSON object" },
        /* a long default cJSON rounded (9007199254740993 read as ...992),
         * a fraction or an out-of-range int: refused with the schema */
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"long\","
          "\"default\":9007199254740993}]}", "2^53" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"long\","
          "\"default\":1.5}]}", "not an integer" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\","
          "\"default\":2147483648}]}", "not an integer" },
    };
    size_t i;
    avro_value_t v;
    void *buf;
    size_t len;
    const core_avro_schema_t *s;

    for (i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
        core_avro_schema_t *x = core_avro_schema_new(bad[i][0], strlen(bad[i][0]), 1, err,
                                                     sizeof(err));

        ck_assert_msg(x == NULL, "accepted %s", bad[i][0]);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "error '%s' lacks '%s'", err, bad[i][1]);
    }
    /* a registry schema added under its own id, with the meta reference */
    ck_assert_int_eq(core_avro_catalog_add(cat, 101, "extra", reg, strlen(reg), err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "schema id 101 is already used"));
    ck_assert_int_eq(core_avro_catalog_add(cat, 0, "extra", reg, strlen(reg), err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(core_avro_catalog_add(cat, 5000, "extra", reg, strlen(reg), err,
                                        sizeof(err)) == CORE_OK, "%s", err);
    s = core_avro_catalog_by_id(cat, 5000);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(core_avro_schema_dataset(s), "extra");
    from_json_ok(s, "{" META("ADD", "BULK") ",\"k\":\"key-1\"}", &v);
    encode_ok(s, &v, &buf, &len);
    avro_value_decref(&v);
    ck_assert_uint_eq(((uint8_t *)buf)[3], 5000 >> 8);
    ck_assert_int_eq(decode(cat, buf, len, err, sizeof(err)), CORE_OK);
    free(buf);
    core_avro_catalog_free(cat);
}
END_TEST

/* The decoder fills its reused value from the checked bytes itself (no
 * avro_value_read()): every kind of value comes out equal to what avro-c
 * reads (avro_value_equal(): same kinds, same string sizes with their NUL),
 * record after record, longer and shorter strings in turn; block counts
 * with a size (negative counts, which avro-c's writer never makes). */
START_TEST(test_decoder_same_as_avro_read)
{
    static const char schema[] =
        "{\"type\":\"record\",\"name\":\"All\",\"fields\":["
        "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
        "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
        "{\"name\":\"by\",\"type\":\"bytes\"},{\"name\":\"s\",\"type\":\"string\"},"
        "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"F3\",\"size\":3}},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
        "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"long\"]},"
        "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
        "\"name\":\"It\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"}]}}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"double\"]}}]}";
    static const char *const recs[] = {
        "{\"n\":null,\"b\":true,\"i\":-2147483648,\"l\":\"-9223372036854775808\","
        "\"f\":1.5,\"d\":-2.25e300,\"by\":\"\\\\x01\\\\xffz\",\"s\":\"a much longer string "
        "than the next one, \\u00e9\\u4e2d\",\"fx\":\"abc\",\"e\":\"B\","
        "\"u\":{\"string\":\"x\"},\"a\":[{\"k\":\"one\"},{\"k\":\"\"}],"
        "\"m\":{\"p\":{\"double\":1},\"q\":null}}",
        "{\"n\":null,\"b\":false,\"i\":7,\"l\":\"9223372036854775807\",\"f\":0,\"d\":0,"
        "\"by\":\"\",\"s\":\"\",\"fx\":\"xyz\",\"e\":\"A\",\"u\":null,\"a\":[],\"m\":{}}",
        "{\"n\":null,\"b\":true,\"i\":0,\"l\":1,\"f\":-0.5,\"d\":3,\"by\":\"q\",\"s\":\"mid\","
        "\"fx\":\"def\",\"e\":\"A\",\"u\":{\"long\":-3},"
        "\"a\":[{\"k\":\"z\"}],\"m\":{\"r\":{\"double\":-1}}}",
    };
    char err[256];
    core_avro_catalog_t *cat = load();
    core_avro_schema_t *s = core_avro_schema_new(schema, strlen(schema), 4343, err, sizeof(err));
    core_avro_decoder_t *d;

    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(core_avro_catalog_add(cat, 4343, NULL, schema, strlen(schema), err,
                                           sizeof(err)), CORE_OK);
    d = core_avro_decoder_new(cat, err, sizeof(err));
    ck_assert_ptr_nonnull(d);
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < CORE_ARRAY_SIZE(recs); i++) {
            cJSON *j = cJSON_Parse(recs[i]);
            avro_value_t v, rv, *dv = NULL;
            void *buf = NULL;
            size_t len = 0;

            ck_assert_ptr_nonnull(j);
            ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s",
                          err);
            ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, err, sizeof(err)), CORE_OK);
            ck_assert_msg(core_avro_decoder_decode(d, buf, len, NULL, &dv, err, sizeof(err)) ==
                              CORE_OK, "%s", err);
            ck_assert_int_eq(core_avro_decode(cat, buf, len, NULL, &rv, err, sizeof(err)),
                             CORE_OK);
            ck_assert_msg(avro_value_equal(&rv, dv), "record %zu round %d", i, round);
            ck_assert(avro_value_equal(&v, dv));
            avro_value_decref(&rv);
            avro_value_decref(&v);
            cJSON_Delete(j);
            free(buf);
        }
    /* {"l": [1, 2]} as one block of count -2 and size 2 */
    {
        static const char s2[] = "{\"type\":\"record\",\"name\":\"Blk\",\"fields\":["
                                 "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":"
                                 "\"int\"}},{\"name\":\"t\",\"type\":\"string\"}]}";
        static const uint8_t wire[] = { 0, 0, 0, 0x11, 0x44, 0x03, 0x04, 0x02, 0x04, 0x00,
                                        0x02, 'k' };
        avro_value_t rv, *dv = NULL, item;
        size_t n = 0;
        int32_t x = 0;
        const char *t = NULL;
        size_t tlen = 0;

        ck_assert_int_eq(core_avro_catalog_add(cat, 0x1144, NULL, s2, strlen(s2), err,
                                               sizeof(err)), CORE_OK);
        ck_assert_msg(core_avro_decoder_decode(d, wire, sizeof(wire), NULL, &dv, err,
                                               sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_int_eq(core_avro_decode(cat, wire, sizeof(wire), NULL, &rv, err, sizeof(err)),
                         CORE_OK);
        ck_assert(avro_value_equal(&rv, dv));
        ck_assert_int_eq(avro_value_get_by_index(dv, 0, &item, NULL), 0);
        ck_assert_int_eq(avro_value_get_size(&item, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(avro_value_get_by_index(dv, 1, &item, NULL), 0);
        ck_assert_int_eq(avro_value_get_string(&item, &t, &tlen), 0);
        ck_assert_uint_eq(tlen, 2); /* "k" and its NUL, as avro-c reads it */
        ck_assert_str_eq(t, "k");
        ck_assert_int_eq(avro_value_get_by_index(dv, 0, &item, NULL), 0);
        ck_assert_int_eq(avro_value_get_by_index(&item, 1, &item, NULL), 0);
        ck_assert_int_eq(avro_value_get_int(&item, &x), 0);
        ck_assert_int_eq(x, 2);
        avro_value_decref(&rv);
    }
    core_avro_decoder_free(d);
    core_avro_schema_free(s);
    core_avro_catalog_free(cat);
}
END_TEST

/* The reusing decoder: records of one schema in a row leave nothing of
 * each other behind (arrays, maps, union branches); the same errors as
 * core_avro_decode(). A path through a map reads the entry by name. */
START_TEST(test_decoder_reuse_and_paths)
{
    static const char schema[] =
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
        "{\"name\":\"u\",\"type\":[\"null\",\"string\",{\"type\":\"record\",\"name\":\"In\","
        "\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}]},"
        "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}]}";
    static const char *const recs[] = {
        "{\"u\":{\"In\":{\"x\":5}},\"l\":[1,2,3],\"m\":{\"a\":\"1\",\"b\":\"2\"}}",
        "{\"u\":\"s\",\"l\":[],\"m\":{}}",
        "{\"u\":null,\"l\":[7],\"m\":{\"b\":\"3\"}}",
        "{\"u\":{\"In\":{\"x\":\"-9007199254740993\"}},\"l\":[1,2,3],\"m\":{\"a\":\"1\"}}",
    };
    char err[256], err2[256];
    core_avro_catalog_t *cat = load();
    core_avro_schema_t *s = core_avro_schema_new(schema, strlen(schema), 4242, err, sizeof(err));
    core_avro_decoder_t *d;
    core_avro_path_t *px, *pmb, *pl;
    bool resolved = true;

    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(core_avro_catalog_add(cat, 4242, NULL, schema, strlen(schema), err,
                                           sizeof(err)), CORE_OK);
    d = core_avro_decoder_new(cat, err, sizeof(err));
    ck_assert_ptr_nonnull(d);
    px = core_avro_path_new(s, "u.x", &resolved, err, sizeof(err));
    ck_assert(resolved);
    pmb = core_avro_path_new(s, "m.b", &resolved, err, sizeof(err));
    ck_assert(!resolved); /* through a map: not a rule path, still readable */
    pl = core_avro_path_new(s, "l", NULL, err, sizeof(err));
    ck_assert(px && pmb && pl);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < CORE_ARRAY_SIZE(recs); i++) {
            cJSON *j = cJSON_Parse(recs[i]), *back, *want;
            avro_value_t v, *dv = NULL;
            void *buf = NULL;
            size_t len = 0;
            const core_avro_schema_t *ds = NULL;
            core_avro_natural nx, nb, nl;
            char tb[64];

            ck_assert_ptr_nonnull(j);
            ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s",
                          err);
            ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, err, sizeof(err)), CORE_OK);
            ck_assert_msg(core_avro_decoder_decode(d, buf, len, &ds, &dv, err, sizeof(err)) ==
                              CORE_OK, "%s", err);
            ck_assert_uint_eq(core_avro_schema_id(ds), 4242);
            want = core_avro_to_json(s, &v, err, sizeof(err));
            back = core_avro_to_json(ds, dv, err, sizeof(err));
            ck_assert(cJSON_Compare(want, back, 1));
            ck_assert_int_eq(core_avro_natural_check(ds, dv, err, sizeof(err)), CORE_OK);
            ck_assert_int_eq(core_avro_path_get(px, dv, &nx, tb, sizeof(tb), err, sizeof(err)),
                             CORE_OK);
            ck_assert_int_eq(core_avro_path_get(pmb, dv, &nb, tb + 32, 32, err, sizeof(err)),
                             CORE_OK);
            ck_assert_int_eq(core_avro_path_get(pl, dv, &nl, tb, sizeof(tb), err, sizeof(err)),
                             CORE_OK);
            ck_assert_int_eq(nl.kind, CORE_AVRO_NAT_ARRAY);
            if (i == 0) {
                ck_assert_int_eq(nx.kind, CORE_AVRO_NAT_NUMBER);
                ck_assert(nx.number == 5.0);
                ck_assert_int_eq(nb.kind, CORE_AVRO_NAT_STRING);
                ck_assert_str_eq(nb.text, "2");
            } else if (i == 3) {
                ck_assert_int_eq(nx.kind, CORE_AVRO_NAT_RAW);
                ck_assert_str_eq(nx.text, "-9007199254740993");
                ck_assert_int_eq(nb.kind, CORE_AVRO_NAT_ABSENT);
            } else {
                ck_assert_int_eq(nx.kind, CORE_AVRO_NAT_ABSENT); /* string or null union */
                if (i == 2)
                    ck_assert_str_eq(nb.text, "3");
                else
                    ck_assert_int_eq(nb.kind, CORE_AVRO_NAT_ABSENT);
            }
            cJSON_Delete(want);
            cJSON_Delete(back);
            cJSON_Delete(j);
            avro_value_decref(&v);
            free(buf);
        }
    /* errors as core_avro_decode() gives them */
    {
        static const uint8_t bad[] = { 0, 0, 0, 0x10, 0x92, 0x02 };
        avro_value_t *dv = NULL, v;

        ck_assert_int_eq(core_avro_decoder_decode(d, bad, sizeof(bad), NULL, &dv, err,
                                                  sizeof(err)),
                         core_avro_decode(cat, bad, sizeof(bad), NULL, &v, err2, sizeof(err2)));
        ck_assert_str_eq(err, err2);
        ck_assert_int_eq(core_avro_decoder_decode(d, bad, 3, NULL, &dv, err, sizeof(err)),
                         CORE_ERR_INVALID);
    }
    core_avro_path_free(px);
    core_avro_path_free(pmb);
    core_avro_path_free(pl);
    core_avro_path_free(NULL);
    core_avro_decoder_free(d);
    core_avro_decoder_free(NULL);
    core_avro_schema_free(s);
    core_avro_catalog_free(cat);
}
END_TEST

/* An id source for the catalogue (what core_registry_fetch() is): 7 is the
 * payee schema with one more optional field, 8 a schema of no dataset, 9
 * does not answer, anything else is unknown. */
static int fetch_calls;
static core_err_t fetch_ids(void *opaque, uint32_t id, char **json, char *errstr,
                            size_t errstr_size)
{
    (void)opaque;
    fetch_calls++;
    if (id == 9) {
        core_errstr(errstr, errstr_size, "registry at http://r: no answer");
        return CORE_ERR_TRANSIENT;
    }
    if (id == 8) {
        *json = strdup("{\"type\":\"record\",\"name\":\"Other\",\"namespace\":\"x\","
                       "\"fields\":[{\"name\":\"a\",\"type\":\"long\"}]}");
        return CORE_OK;
    }
    if (id == 7) {
        char path[1024], *text;
        cJSON *j;

        snprintf(path, sizeof(path), "%s/payee.avsc", proto_dir());
        text = core_read_file(path, 1 << 20, NULL, errstr, errstr_size);
        j = cJSON_Parse(text);
        free(text);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "fields"),
                             cJSON_Parse("{\"name\":\"extra\",\"type\":[\"null\",\"string\"],"
                                         "\"default\":null}"));
        *json = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        return CORE_OK;
    }
    core_errstr(errstr, errstr_size, "schema id %u is not in the registry", id);
    return CORE_ERR_NOTFOUND;
}

/* core_avro_catalog_set_fetch(): the fixed ids dropped, set_id, ids
 * fetched once and kept, a fetched dataset version read, the source's
 * errors passed on by decode. */
START_TEST(test_catalog_id_source)
{
    core_avro_catalog_t *cat = load();
    const core_avro_schema_t *payee = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *w;
    char err[512];
    uint8_t wire[] = { 0, 0, 0, 0, 9, 0 };
    avro_value_t v;

    ck_assert_ptr_eq(core_avro_catalog_by_id(cat, 101), payee);
    ck_assert_int_eq(core_avro_catalog_set_fetch(cat, fetch_ids, NULL), CORE_OK);
    fetch_calls = 0;
    ck_assert_ptr_null(core_avro_catalog_by_id(cat, 101)); /* asked of the source: unknown */
    ck_assert_int_eq(fetch_calls, 1);
    ck_assert_int_eq(core_avro_catalog_set_id(cat, payee, 5001, err, sizeof(err)), CORE_OK);
    ck_assert_ptr_eq(core_avro_catalog_by_id(cat, 5001), payee);
    ck_assert_uint_eq(core_avro_schema_id(payee), 5001);
    ck_assert_int_eq(core_avro_catalog_set_id(cat, core_avro_catalog_by_dataset(cat, "event"),
                                              5001, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "5001"));
    ck_assert_int_eq(core_avro_catalog_set_id(cat, payee, 0, err, sizeof(err)), CORE_ERR_INVALID);

    w = core_avro_catalog_by_id(cat, 7);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(core_avro_schema_dataset(w), "payee"); /* a version of payee */
    ck_assert_str_eq(core_avro_schema_key_field(w), "payee_id");
    ck_assert_ptr_eq(core_avro_catalog_by_id(cat, 7), w);  /* kept: fetched once */
    ck_assert_int_eq(fetch_calls, 2);
    ck_assert_ptr_eq(core_avro_catalog_by_dataset(cat, "payee"), payee); /* still current */
    w = core_avro_catalog_by_id(cat, 8);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_null(core_avro_schema_dataset(w));

    /* decode passes the source's class and words on */
    ck_assert_int_eq(core_avro_decode(cat, wire, sizeof(wire), NULL, &v, err, sizeof(err)),
                     CORE_ERR_TRANSIENT);
    ck_assert_ptr_nonnull(strstr(err, "no answer"));
    wire[4] = 10;
    ck_assert_int_eq(core_avro_decode(cat, wire, sizeof(wire), NULL, &v, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "schema id 10 is not in the registry"));
    {
        /* a record written with id 7 (payee + a null "extra") is a version of
         * payee: read as payee's current schema, "extra" dropped */
        cJSON *j = cJSON_Parse("{" META("ADD", "BULK") ",\"payee_id\":\"P1\",\"name\":\"N\","
                               "\"account_number\":\"1\",\"routing_number\":\"021000021\","
                               "\"iban\":null,\"country\":\"US\",\"currency\":\"USD\","
                               "\"email\":null,\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\","
                               "\"updated_at\":\"2024-03-07T10:00:00.000Z\"}");
        const core_avro_schema_t *got = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        const char *key;

        ck_assert_ptr_nonnull(j);
        ck_assert_msg(core_avro_from_json(payee, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_int_eq(core_avro_encode(payee, &v, (void **)&buf, &len, err, sizeof(err)),
                         CORE_OK);
        avro_value_decref(&v);
        ck_assert_uint_eq(buf[4], 5001 & 0xff); /* the id set_id gave */
        buf = realloc(buf, len + 1);
        buf[len++] = 0;
        buf[1] = buf[2] = buf[3] = 0;
        buf[4] = 7;
        ck_assert_msg(core_avro_decode(cat, buf, len, &got, &v, err, sizeof(err)) == CORE_OK, "%s",
                      err);
        ck_assert_ptr_eq(got, payee);
        ck_assert_ptr_ne(core_avro_catalog_by_id(cat, 7), payee);
        ck_assert_str_eq(core_avro_schema_dataset(core_avro_catalog_by_id(cat, 7)), "payee");
        ck_assert_int_eq(core_avro_get_key(got, &v, &key, NULL, err, sizeof(err)), CORE_OK);
        ck_assert_str_eq(key, "P1");
        avro_value_decref(&v);
        free(buf);
        cJSON_Delete(j);
    }
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- reader's schema projection ----------------------------------------- */

#define REC(fields) "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[" fields "]}"

/* Write wvalue (natural JSON) with the writer's schema text, read the body
 * as the reader's: its natural JSON, or NULL with err. */
static cJSON *project_rc(const char *wschema, const char *wvalue, const char *rschema,
                         core_err_t *rcp, char *err, size_t errsz)
{
    core_avro_schema_t *w = core_avro_schema_new(wschema, strlen(wschema), 1, err, errsz);
    core_avro_schema_t *r;
    avro_value_t v, rv;
    void *buf = NULL;
    size_t len = 0;
    cJSON *out = NULL;

    ck_assert_msg(w != NULL, "writer: %s", err);
    r = core_avro_schema_new(rschema, strlen(rschema), 2, err, errsz);
    ck_assert_msg(r != NULL, "reader: %s", err);
    from_json_ok(w, wvalue, &v);
    encode_ok(w, &v, &buf, &len);
    avro_value_decref(&v);
    *rcp = core_avro_decode_body_as(w, r, (uint8_t *)buf + CORE_AVRO_WIRE_HEADER,
                                    len - CORE_AVRO_WIRE_HEADER, 0, &rv, err, errsz);
    if (*rcp == CORE_OK) {
        ck_assert_ptr_eq(avro_value_get_schema(&rv), core_avro_schema_avro(r));
        out = core_avro_to_json(r, &rv, err, errsz);
        ck_assert_msg(out != NULL, "to_json: %s", err);
        avro_value_decref(&rv);
    }
    free(buf);
    core_avro_schema_free(w);
    core_avro_schema_free(r);
    return out;
}

static void project_ok(const char *wschema, const char *wvalue, const char *rschema,
                       const char *want)
{
    char err[512] = "";
    core_err_t rc;
    cJSON *j = project_rc(wschema, wvalue, rschema, &rc, err, sizeof(err));
    char *txt;

    ck_assert_msg(rc == CORE_OK, "projection refused: %s", err);
    txt = cJSON_PrintUnformatted(j);
    ck_assert_str_eq(txt, want);
    free(txt);
    cJSON_Delete(j);
}

static void project_bad(const char *wschema, const char *wvalue, const char *rschema,
                        const char *want)
{
    char err[512] = "";
    core_err_t rc;
    cJSON *j = project_rc(wschema, wvalue, rschema, &rc, err, sizeof(err));

    cJSON_Delete(j);
    ck_assert_msg(rc == CORE_ERR_INVALID, "accepted (rc %d), want '%s'", rc, want);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

/* BACKWARD's case: the reader added fields with defaults, of every kind. */
START_TEST(test_project_reader_defaults)
{
    project_ok(REC("{\"name\":\"a\",\"type\":\"int\"}"), "{\"a\":1}",
               REC("{\"name\":\"a\",\"type\":\"int\"},"
                   "{\"name\":\"b\",\"type\":\"string\",\"default\":\"x\"},"
                   "{\"name\":\"c\",\"type\":[\"null\",\"long\"],\"default\":null},"
                   "{\"name\":\"d\",\"type\":{\"type\":\"record\",\"name\":\"D\",\"fields\":["
                   "  {\"name\":\"e\",\"type\":\"int\",\"default\":3},"
                   "  {\"name\":\"f\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                   "   \"symbols\":[\"P\",\"Q\"]},\"default\":\"Q\"}]},\"default\":{\"e\":4}},"
                   "{\"name\":\"g\",\"type\":{\"type\":\"array\",\"items\":\"int\"},"
                   " \"default\":[1,2]},"
                   "{\"name\":\"h\",\"type\":{\"type\":\"map\",\"values\":\"long\"},"
                   " \"default\":{\"k\":1}},"
                   "{\"name\":\"i\",\"type\":\"bytes\",\"default\":\"A\\u00ff\"},"
                   "{\"name\":\"j\",\"type\":\"float\",\"default\":1.5},"
                   "{\"name\":\"k\",\"type\":\"boolean\",\"default\":true},"
                   "{\"name\":\"l\",\"type\":[\"string\",\"null\"],\"default\":\"s\"},"
                   "{\"name\":\"m\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":2},"
                   " \"default\":\"ab\"}"),
               "{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":{\"e\":4,\"f\":\"Q\"},\"g\":[1,2],"
               "\"h\":{\"k\":1},\"i\":\"A\\\\xff\",\"j\":1.5,\"k\":true,\"l\":\"s\","
               "\"m\":\"ab\"}");
    /* a reader's field the writer lacks, without a default: named */
    project_bad(REC("{\"name\":\"a\",\"type\":\"int\"}"), "{\"a\":1}",
                REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"q\",\"type\":\"int\"}"),
                "q: not in the writer's schema, and the reader's has no default");
}
END_TEST

/* The reader dropped fields (of every shape, before and after its own) and
 * reordered the rest. */
START_TEST(test_project_writer_fields_dropped)
{
    project_ok(REC("{\"name\":\"z\",\"type\":\"string\"},{\"name\":\"a\",\"type\":\"int\"},"
                   "{\"name\":\"y\",\"type\":{\"type\":\"record\",\"name\":\"Y\",\"fields\":["
                   "  {\"name\":\"q\",\"type\":{\"type\":\"array\",\"items\":\"long\"}}]}},"
                   "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
                   "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
                   "{\"name\":\"d\",\"type\":\"double\"},"
                   "{\"name\":\"u\",\"type\":[\"null\",\"double\"]},"
                   "{\"name\":\"x\",\"type\":[\"null\",\"Y\"]},{\"name\":\"e\",\"type\":\"float\"}"),
               "{\"z\":\"zz\",\"a\":7,\"y\":{\"q\":[1,2,3]},\"m\":{\"k\":\"v\",\"l\":\"w\"},"
               "\"f\":\"abc\",\"d\":0.5,\"u\":2.5,\"x\":{\"q\":[9]},\"e\":1}",
               REC("{\"name\":\"u\",\"type\":[\"null\",\"double\"]},"
                   "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"e\",\"type\":\"float\"}"),
               "{\"u\":2.5,\"a\":7,\"e\":1}");
}
END_TEST

START_TEST(test_project_promotions)
{
    project_ok(REC("{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
                   "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"s\",\"type\":\"string\"},"
                   "{\"name\":\"b\",\"type\":\"bytes\"},{\"name\":\"i2\",\"type\":\"int\"},"
                   "{\"name\":\"l2\",\"type\":\"long\"},{\"name\":\"i3\",\"type\":\"int\"}"),
               "{\"i\":-3,\"l\":1099511627776,\"f\":1.5,\"s\":\"h\\u00e9\",\"b\":\"ok\","
               "\"i2\":4,\"l2\":8,\"i3\":-9}",
               REC("{\"name\":\"i\",\"type\":\"long\"},{\"name\":\"l\",\"type\":\"double\"},"
                   "{\"name\":\"f\",\"type\":\"double\"},{\"name\":\"s\",\"type\":\"bytes\"},"
                   "{\"name\":\"b\",\"type\":\"string\"},{\"name\":\"i2\",\"type\":\"float\"},"
                   "{\"name\":\"l2\",\"type\":\"float\"},{\"name\":\"i3\",\"type\":\"double\"}"),
               "{\"i\":-3,\"l\":1099511627776,\"f\":1.5,\"s\":\"h\\\\xc3\\\\xa9\",\"b\":\"ok\","
               "\"i2\":4,\"l2\":8,\"i3\":-9}");
    /* no demotion */
    project_bad(REC("{\"name\":\"n\",\"type\":\"long\"}"), "{\"n\":1}",
                REC("{\"name\":\"n\",\"type\":\"int\"}"),
                "n: written as long, the reader's schema has int");
    project_bad(REC("{\"name\":\"n\",\"type\":\"double\"}"), "{\"n\":1}",
                REC("{\"name\":\"n\",\"type\":\"float\"}"),
                "n: written as double, the reader's schema has float");
    /* bytes read as a string must be a string here: UTF-8 without NUL */
    project_bad(REC("{\"name\":\"b\",\"type\":\"bytes\"}"), "{\"b\":\"\\\\xff\"}",
                REC("{\"name\":\"b\",\"type\":\"string\"}"),
                "b: bytes written are not valid UTF-8");
}
END_TEST

START_TEST(test_project_enums)
{
#define ENUM_W "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\"," \
               "\"symbols\":[\"A\",\"B\",\"C\"]}}"
    const char *rdef = REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                           "\"symbols\":[\"X\",\"B\",\"A\"],\"default\":\"X\"}}");

    /* by symbol, not by index */
    project_ok(REC(ENUM_W), "{\"e\":\"A\"}", rdef, "{\"e\":\"A\"}");
    project_ok(REC(ENUM_W), "{\"e\":\"B\"}", rdef, "{\"e\":\"B\"}");
    /* a symbol the reader lacks: the reader enum's default */
    project_ok(REC(ENUM_W), "{\"e\":\"C\"}", rdef, "{\"e\":\"X\"}");
    /* no default: an error naming the field and the symbol */
    project_bad(REC(ENUM_W), "{\"e\":\"C\"}",
                REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                    "\"symbols\":[\"A\",\"B\"]}}"),
                "e: symbol C is not in the reader's enum t.E, which has no default");
#undef ENUM_W
}
END_TEST

START_TEST(test_project_unions)
{
    const char *w = REC("{\"name\":\"u\",\"type\":[\"null\",\"int\"]},"
                        "{\"name\":\"v\",\"type\":\"int\"},"
                        "{\"name\":\"w\",\"type\":[\"null\",\"string\"]},"
                        "{\"name\":\"x\",\"type\":[\"int\",\"string\"]}");
    const char *r = REC("{\"name\":\"u\",\"type\":[\"null\",\"string\",\"long\"]},"
                        "{\"name\":\"v\",\"type\":[\"null\",\"double\",\"int\"]},"
                        "{\"name\":\"w\",\"type\":[\"null\",\"string\"]},"
                        "{\"name\":\"x\",\"type\":[\"string\",\"long\"]}");
    char err[512] = "";
    core_err_t rc;
    cJSON *j;

    /* the writer's branch into the reader's union; a plain writer's type
     * into the branch of its own type before a promotion (v: int, not double) */
    project_ok(w, "{\"u\":5,\"v\":6,\"w\":null,\"x\":\"s\"}", r,
               "{\"u\":5,\"v\":6,\"w\":null,\"x\":\"s\"}");
    project_ok(w, "{\"u\":null,\"v\":6,\"w\":\"t\",\"x\":3}", r,
               "{\"u\":null,\"v\":6,\"w\":\"t\",\"x\":3}");
    /* the branch chosen, seen through the value's type: v went to int */
    j = project_rc(w, "{\"u\":5,\"v\":6,\"w\":null,\"x\":\"s\"}", r, &rc, err, sizeof(err));
    ck_assert_int_eq(rc, CORE_OK);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "v")));
    cJSON_Delete(j);
    {
        core_avro_schema_t *ws = core_avro_schema_new(w, strlen(w), 1, err, sizeof(err));
        core_avro_schema_t *rs = core_avro_schema_new(r, strlen(r), 2, err, sizeof(err));
        avro_value_t v, rv, f, b;
        void *buf = NULL;
        size_t len = 0;
        int disc = -1;

        from_json_ok(ws, "{\"u\":5,\"v\":6,\"w\":null,\"x\":\"s\"}", &v);
        encode_ok(ws, &v, &buf, &len);
        avro_value_decref(&v);
        ck_assert_int_eq(core_avro_decode_body_as(ws, rs, (uint8_t *)buf + 5, len - 5, 0, &rv,
                                                  err, sizeof(err)), CORE_OK);
        ck_assert_int_eq(avro_value_get_by_name(&rv, "v", &f, NULL), 0);
        ck_assert_int_eq(avro_value_get_discriminant(&f, &disc), 0);
        ck_assert_int_eq(disc, 2); /* int */
        ck_assert_int_eq(avro_value_get_current_branch(&f, &b), 0);
        ck_assert_int_eq(avro_value_get_type(&b), AVRO_INT32);
        /* u: int written, the reader has [null, string, long]: long */
        ck_assert_int_eq(avro_value_get_by_name(&rv, "u", &f, NULL), 0);
        ck_assert_int_eq(avro_value_get_current_branch(&f, &b), 0);
        ck_assert_int_eq(avro_value_get_type(&b), AVRO_INT64);
        avro_value_decref(&rv);
        free(buf);
        core_avro_schema_free(ws);
        core_avro_schema_free(rs);
    }
    /* a branch written that the reader cannot take */
    project_bad(REC("{\"name\":\"w\",\"type\":[\"null\",\"string\"]}"), "{\"w\":null}",
                REC("{\"name\":\"w\",\"type\":\"string\"}"),
                "w: written as null, the reader's schema has string");
    project_bad(REC("{\"name\":\"w\",\"type\":\"boolean\"}"), "{\"w\":true}",
                REC("{\"name\":\"w\",\"type\":[\"null\",\"string\"]}"),
                "w: written as boolean, which no branch of the reader's union takes");
}
END_TEST

/* Nested records, arrays and maps of records: resolved inside; errors
 * name the whole path (array items and map entries by position). */
START_TEST(test_project_nested)
{
#define NREC(fields) "{\"type\":\"record\",\"name\":\"N\",\"fields\":[" fields "]}"
    project_ok(REC("{\"name\":\"r\",\"type\":" NREC("{\"name\":\"x\",\"type\":\"int\"},"
                                                    "{\"name\":\"y\",\"type\":\"string\"}") "},"
                   "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"N\"}},"
                   "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}},"
                   "{\"name\":\"o\",\"type\":[\"null\",\"N\"]}"),
               "{\"r\":{\"x\":1,\"y\":\"yy\"},\"arr\":[{\"x\":2,\"y\":\"a\"},{\"x\":3,\"y\":\"b\"}],"
               "\"m\":{\"k\":4},\"o\":{\"x\":5,\"y\":\"c\"}}",
               REC("{\"name\":\"r\",\"type\":" NREC("{\"name\":\"x\",\"type\":\"long\"},"
                                                    "{\"name\":\"z\",\"type\":\"int\","
                                                    "\"default\":9}") "},"
                   "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"N\"}},"
                   "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"double\"}},"
                   "{\"name\":\"o\",\"type\":[\"null\",\"N\"]}"),
               "{\"r\":{\"x\":1,\"z\":9},\"arr\":[{\"x\":2,\"z\":9},{\"x\":3,\"z\":9}],"
               "\"m\":{\"k\":4},\"o\":{\"x\":5,\"z\":9}}");
    project_bad(REC("{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":"
                    NREC("{\"name\":\"k\",\"type\":\"string\"}") "}}"),
                "{\"arr\":[{\"k\":\"a\"},{\"k\":\"b\"}]}",
                REC("{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":"
                    NREC("{\"name\":\"k\",\"type\":\"int\"}") "}}"),
                "arr[0].k: written as string, the reader's schema has int");
    project_bad(REC("{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}}"),
                "{\"m\":{\"a\":1,\"b\":2}}",
                REC("{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}"),
                "m[0]: written as long, the reader's schema has string");
#undef NREC
}
END_TEST

/* Logical types: the reader's kept (a timestamp stays a timestamp, a
 * decimal a decimal); a change of unit or scale is refused. */
START_TEST(test_project_logical_and_errors)
{
#define DEC(s) "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":10,\"scale\":" s "}"
    project_ok(REC("{\"name\":\"d\",\"type\":" DEC("2") "},"
                   "{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"),
               "{\"d\":\"12.30\",\"t\":\"2024-03-07T10:00:00.000Z\"}",
               REC("{\"name\":\"t\",\"type\":[\"null\",{\"type\":\"long\","
                   "\"logicalType\":\"timestamp-millis\"}]},{\"name\":\"d\",\"type\":" DEC("2") "}"),
               "{\"t\":\"2024-03-07T10:00:00.000Z\",\"d\":\"12.30\"}");
    project_bad(REC("{\"name\":\"d\",\"type\":" DEC("2") "}"), "{\"d\":\"12.30\"}",
                REC("{\"name\":\"d\",\"type\":" DEC("3") "}"),
                "d: decimal of scale 2 written, the reader's has scale 3");
    project_bad(REC("{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"),
                "{\"t\":0}",
                REC("{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}}"),
                "t: timestamp-millis written, the reader's is timestamp-micros");
    /* a writer's field type the reader cannot take: a clear error naming
     * both schemas and the field, never the value */
    {
        char err[512] = "";
        core_err_t rc;
        cJSON *j = project_rc(REC("{\"name\":\"a\",\"type\":\"string\"}"), "{\"a\":\"secret\"}",
                              REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}"),
                              &rc, err, sizeof(err));

        ck_assert_ptr_null(j);
        ck_assert_int_eq(rc, CORE_ERR_INVALID);
        ck_assert_str_eq(err, "schema read as schema: a: written as string, the reader's schema "
                              "has array");
        ck_assert_ptr_null(strstr(err, "secret"));
    }
#undef DEC
}
END_TEST

/* An enum default that is not one of its symbols is refused at load. */
START_TEST(test_project_enum_default_checked)
{
    char err[512] = "";
    const char *s = REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                        "\"symbols\":[\"A\"],\"default\":\"Z\"}}");

    ck_assert_ptr_null(core_avro_schema_new(s, strlen(s), 1, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "enum t.E: \"default\" must be one of its symbols"));
}
END_TEST

static Suite *avro_suite(void)
{
    Suite *s = suite_create("avro");
    TCase *tc = tcase_create("catalog");

    tcase_add_test(tc, test_catalog_loads);
    tcase_add_test(tc, test_catalog_bad);
    tcase_add_test(tc, test_catalog_versions);
    tcase_add_test(tc, test_schema_new_and_add);
    suite_add_tcase(s, tc);
    tc = tcase_create("wire");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_datasets);
    tcase_add_test(tc, test_meta_set_and_key);
    tcase_add_test(tc, test_encode_wrong_schema);
    tcase_add_test(tc, test_wire_header_errors);
    tcase_add_test(tc, test_wire_truncated_every_length);
    tcase_add_test(tc, test_wire_hostile_lengths);
    tcase_add_test(tc, test_wire_enum_union_trailing);
    tcase_add_test(tc, test_wire_blocks);
    tcase_add_test(tc, test_wire_deep_nesting);
    tcase_add_test(tc, test_wire_too_big);
    tcase_add_test(tc, test_wire_mutations);
    tcase_add_test(tc, test_decoder_reuse_and_paths);
    tcase_add_test(tc, test_decoder_same_as_avro_read);
    tcase_add_test(tc, test_catalog_id_source);
    suite_add_tcase(s, tc);
    tc = tcase_create("project");
    tcase_add_test(tc, test_project_reader_defaults);
    tcase_add_test(tc, test_project_writer_fields_dropped);
    tcase_add_test(tc, test_project_promotions);
    tcase_add_test(tc, test_project_enums);
    tcase_add_test(tc, test_project_unions);
    tcase_add_test(tc, test_project_nested);
    tcase_add_test(tc, test_project_logical_and_errors);
    tcase_add_test(tc, test_project_enum_default_checked);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, test_json_forms);
    tcase_add_test(tc, test_json_all_types);
    tcase_add_test(tc, test_json_bad);
    tcase_add_test(tc, test_json_errors_never_quote_the_value);
    tcase_add_test(tc, test_path_personal);
    tcase_add_test(tc, test_decimal_helpers);
    tcase_add_test(tc, test_time_helpers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { avro_suite() };

    return tu_run(s, 1);
}
