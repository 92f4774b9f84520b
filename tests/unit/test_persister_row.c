/* test_persister_row.c — svc-persister's COPY rows made straight from the
 * Avro value (pers_pg_row) read exactly as the natural-JSON path reads them
 * (pers_column_text): every column, escapes, UTF-8, nulls, decimals, times;
 * and pers_record_decode choosing one or the other. */
#include "testutil.h"
#include "../../svc-persister/persister.h"

#include <cjson/cJSON.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static core_avro_catalog_t *cat;
static core_avro_decoder_t *dec;
static pers_dataset ds;

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "%s", err);
    dec = core_avro_decoder_new(cat, err, sizeof(err));
    ck_assert_msg(dec != NULL, "%s", err);
    ck_assert_msg(pers_dataset_init(&ds, "payee", cat, NULL, ".valid", ".dlq", err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
    pers_dataset_clear(&ds);
    core_avro_decoder_free(dec);
    core_avro_catalog_free(cat);
}

/* Wire bytes of a payee given as natural JSON. */
static void *wire(const char *json, size_t *len)
{
    char err[512];
    avro_value_t v;
    void *buf = NULL;
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(s, j, &v, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_msg(core_avro_encode(s, &v, &buf, len, err, sizeof(err)) == CORE_OK, "%s", err);
    avro_value_decref(&v);
    cJSON_Delete(j);
    return buf;
}

/* COPY text of one column the natural-JSON way (what write_range does
 * without a row). */
static void copy_text(char *out, size_t size, const char *s)
{
    size_t n = 0;
    if (!s) {
        snprintf(out, size, "\\N");
        return;
    }
    for (; *s && n + 3 < size; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n"
                          : *s == '\r' ? "\\r" : NULL;
        if (esc) {
            memcpy(out + n, esc, 2);
            n += 2;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
}

static const char *const samples[] = {
    /* plain, nulls */
    "{\"meta\":{\"id\":\"00000000-0000-4000-8000-000000000001\",\"op\":\"ADD\",\"kind\":"
    "\"BULK\",\"source\":\"t\",\"batch_id\":\"b1\",\"seq\":1,\"event_time\":"
    "\"2026-11-22T10:00:00.000Z\",\"version\":5,\"old_key\":null},\"payee_id\":\"P1\","
    "\"name\":\"Ada Lovelace\",\"account_number\":\"12345678\",\"routing_number\":"
    "\"021000021\",\"iban\":null,\"country\":\"US\",\"currency\":\"USD\",\"email\":null,"
    "\"amount_limit\":\"10.00\",\"status\":\"ACTIVE\",\"updated_at\":"
    "\"2026-11-22T08:30:00.123Z\"}",
    /* what COPY must escape, UTF-8, a negative decimal, an IBAN and e-mail */
    "{\"meta\":{\"id\":\"00000000-0000-4000-8000-000000000002\",\"op\":\"UPDATE\",\"kind\":"
    "\"CHANGE\",\"source\":\"t\",\"batch_id\":\"b\\\\2\",\"seq\":2,\"event_time\":"
    "\"2026-11-22T10:00:00.000Z\",\"version\":6,\"old_key\":null},\"payee_id\":"
    "\"P\\t2\",\"name\":\"Bj\\u00f8rn \\\\ M\\u00fcller\\nline\\r2\",\"account_number\":"
    "\"0000000001\",\"routing_number\":\"011000015\",\"iban\":"
    "\"DE89370400440532013000\",\"country\":\"DE\",\"currency\":\"EUR\",\"email\":"
    "\"b@example.com\",\"amount_limit\":\"-0.50\",\"status\":\"BLOCKED\",\"updated_at\":"
    "\"1970-01-01T00:00:00.000Z\"}",
};

START_TEST(row_reads_as_the_natural_json_path)
{
    char err[512];
    ck_assert_int_eq(pers_pg_rows_init(&ds, 1, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(ds.row_paths);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(samples); i++) {
        size_t len;
        void *buf = wire(samples[i], &len);
        pers_record a, b;
        /* with row paths: a row, no JSON */
        ck_assert_int_eq(pers_record_decode(&a, &ds, dec, "payee.valid", 0, (int64_t)i, "k", 1,
                                            buf, len),
                         0);
        ck_assert_int_ne(a.fate, PERS_DEAD);
        ck_assert_ptr_nonnull(a.row);
        ck_assert_ptr_null(a.json);
        /* without: natural JSON */
        core_avro_path_t **paths = ds.row_paths;
        ds.row_paths = NULL;
        ck_assert_int_eq(pers_record_decode(&b, &ds, dec, "payee.valid", 0, (int64_t)i, "k", 1,
                                            buf, len),
                         0);
        ds.row_paths = paths;
        ck_assert_ptr_null(b.row);
        ck_assert_ptr_nonnull(b.json);
        char want[4096] = "", col[1024];
        for (size_t c = 0; c < ds.ncols; c++) {
            char *tmp;
            copy_text(col, sizeof(col), pers_column_text(&b, &ds.cols[c], &tmp));
            free(tmp);
            if (c)
                strcat(want, "\t");
            strcat(want, col);
        }
        ck_assert_uint_eq(a.rowlen, strlen(a.row));
        ck_assert_str_eq(a.row, want);
        ck_assert_str_eq(a.key, b.key);
        ck_assert_int_eq(a.version, b.version);
        pers_record_clear(&a);
        pers_record_clear(&b);
        free(buf);
    }
}
END_TEST

/* The spec, spelled out for the tricky sample. */
START_TEST(row_escapes_what_copy_must_escape)
{
    char err[512];
    size_t len;
    ck_assert_int_eq(pers_pg_rows_init(&ds, 1, err, sizeof(err)), 0);
    void *buf = wire(samples[1], &len);
    pers_record a;
    ck_assert_int_eq(pers_record_decode(&a, &ds, dec, "payee.valid", 0, 1, "k", 1, buf, len), 0);
    ck_assert_str_eq(a.row, "P\\t2\tBj\xc3\xb8rn \\\\ M\xc3\xbcller\\nline\\r2\t0000000001\t"
                            "011000015\tDE89370400440532013000\tDE\tEUR\tb@example.com\t-0.50\t"
                            "BLOCKED\t1970-01-01T00:00:00.000Z");
    pers_record_clear(&a);
    free(buf);
}
END_TEST

/* Bytes that are not a record of the dataset: dead, never a row. */
START_TEST(undecodable_bytes_are_dead_not_rows)
{
    char err[512];
    ck_assert_int_eq(pers_pg_rows_init(&ds, 1, err, sizeof(err)), 0);
    static const unsigned char junk[] = { 0, 0, 0, 0, 101, 0xff, 0xff, 0xff };
    pers_record a;
    ck_assert_int_eq(pers_record_decode(&a, &ds, dec, "payee.valid", 0, 1, "k", 1, junk,
                                        sizeof(junk)),
                     0);
    ck_assert_int_eq(a.fate, PERS_DEAD);
    ck_assert_str_eq(a.error_class, "poison");
    ck_assert_ptr_null(a.row);
    pers_record_clear(&a);
}
END_TEST

/* libmongoc's own log lines come out as the service's JSON lines. */
static void mongoc_says(void *arg)
{
    (void)arg;
    char err[256] = "";
    struct pers_mongo_conf mc = { .write_concern = "1", .uri = "mongodb://127.0.0.1:1" };
    pers_sink *sink = pers_mongo_new(&mc, err, sizeof(err));
    ck_assert_msg(sink, "%s", err);
    mongoc_log(MONGOC_LOG_LEVEL_WARNING, "client", "Couldn't send \"%s\"", "endSessions");
    sink->free(sink);
}

START_TEST(mongoc_log_lines_are_json)
{
    char *log = tu_capture_log(mongoc_says, NULL);
    ck_assert(log);
    cJSON *j = cJSON_Parse(log);
    ck_assert_msg(j, "not one JSON line: %s", log);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "component")->valuestring, "libmongoc");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "domain")->valuestring, "client");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "Couldn't send \"endSessions\"");
    cJSON_Delete(j);
    free(log);
}
END_TEST

/* Issue 15 item 8: a database's refusal reaches the DLQ headers and the
 * audit event without the record's values: MongoDB's E11000 quotes the
 * duplicate key, FerretDB relays PostgreSQL's text. */
START_TEST(db_refusal_reasons_hold_no_value)
{
    char buf[256];
    static const struct { const char *msg, *want; } cases[] = {
        { "E11000 duplicate key error collection: tb.payee index: name_1 dup key: { name: "
          "\"John Smith\" }",
          "duplicate key (index name_1)" },
        { "E11000 duplicate key error collection: vprobe.p", "duplicate key" },
        { "[msg_update.go:133 handler.(*Handler).updateDocument] ERROR: duplicate key value "
          "violates unique constraint \"p_f50c43ef_name___318aadbe_idx\" (SQLSTATE 23505)",
          "duplicate key: SQLSTATE 23505 unique_violation "
          "(constraint p_f50c43ef_name___318aadbe_idx)" },
        { "ERROR: invalid input syntax for type integer: \"John Smith\" (SQLSTATE 22P02)",
          "SQLSTATE 22P02 invalid_text_representation" },
        { "Document failed validation: { name: \"John Smith\" }", "Document failed validation" },
        { "invalid document for insert: keys cannot contain \".\": \"John.Smith\"",
          "invalid document for insert: keys cannot contain" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pers_mongo_reason(cases[i].msg, buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i].want);
        ck_assert_msg(!strstr(buf, "John"), "a value in: %s", buf);
    }
    pers_mongo_reason("E11000 x index: name_1 dup key: {}", buf, 4); /* bounded */
    ck_assert_uint_le(strlen(buf), 3);
    ck_assert_str_eq(pers_sqlstate_name("23505"), "unique_violation");
    ck_assert_str_eq(pers_sqlstate_name("23514"), "check_violation");
    ck_assert_str_eq(pers_sqlstate_name("22P02"), "invalid_text_representation");
    ck_assert_str_eq(pers_sqlstate_name("22999"), "data_exception");
    ck_assert_str_eq(pers_sqlstate_name("23999"), "integrity_constraint_violation");
    ck_assert_ptr_null(pers_sqlstate_name("08006")); /* the server's, not the row's */
    ck_assert_ptr_null(pers_sqlstate_name("2350"));
    ck_assert_ptr_null(pers_sqlstate_name(NULL));
}
END_TEST

/* Issue 15: FerretDB 1.24 with PLAIN relays its PostgreSQL's refusal of
 * the login as InternalError (code 1): refused configuration (78), while
 * its other InternalErrors, its PostgreSQL away among them, stay outages. */
START_TEST(ferretdb_plain_login_refused_is_config_not_outage)
{
    static const char refused[] =
        "[msg_ping.go:55 handler.(*Handler).MsgPing] [pool.go:129 pool.(*Pool).Get] failed to "
        "connect to `user=tributary database=ferretdb`:\n\t127.0.0.1:5432 (127.0.0.1): failed "
        "SASL auth: FATAL: password authentication failed for user \"tributary\" (SQLSTATE 28P01)";
    static const char no_hba[] =
        "failed to connect to `user=x database=ferretdb`: FATAL: no pg_hba.conf entry for host "
        "(SQLSTATE 28000)";
    static const char pg_down[] =
        "[msg_ping.go:55 handler.(*Handler).MsgPing] failed to connect to `user=tributary "
        "database=ferretdb`: 127.0.0.1:5432 (127.0.0.1): dial error: dial tcp 127.0.0.1:5432: "
        "connect: connection refused";
    static const char pg_starting[] =
        "failed to connect: FATAL: the database system is starting up (SQLSTATE 57P03)";

    ck_assert(pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, refused));
    ck_assert(pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, no_hba));
    ck_assert(pers_mongo_login_refused(MONGOC_ERROR_SERVER, 18, "Authentication failed."));
    ck_assert(pers_mongo_login_refused(MONGOC_ERROR_SERVER, 13, "not authorized"));
    ck_assert(pers_mongo_login_refused(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE,
                                       "Authentication failed"));
    /* outages and other failures */
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, pg_down));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, pg_starting));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, "(SQLSTATE 23505)"));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, "cut (SQLSTATE 28P0"));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, ""));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 1, NULL));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER, 2, refused));
    ck_assert(!pers_mongo_login_refused(MONGOC_ERROR_SERVER_SELECTION,
                                        MONGOC_ERROR_SERVER_SELECTION_FAILURE, refused));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("persister_row");
    TCase *tc = tcase_create("row");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, row_reads_as_the_natural_json_path);
    tcase_add_test(tc, row_escapes_what_copy_must_escape);
    tcase_add_test(tc, undecodable_bytes_are_dead_not_rows);
    tcase_add_test(tc, mongoc_log_lines_are_json);
    tcase_add_test(tc, db_refusal_reasons_hold_no_value);
    tcase_add_test(tc, ferretdb_plain_login_refused_is_config_not_outage);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
