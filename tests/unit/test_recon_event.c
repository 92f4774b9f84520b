/* test_recon_event.c — svc-recon's decoder of audit events: what core_audit
 * writes comes back field by field; untrusted bytes (every truncation, a
 * trailing byte, lengths past the end, 2^31-1 and negative lengths, over-long
 * varints, NUL and invalid UTF-8, a partition beyond int32, an unknown stage
 * or outcome, another schema id) are refused, never half-read. */
#include "testutil.h"

#include "../../svc-recon/event.h"

#include "tributary/core_audit.h"
#include "tributary/core_avro.h"

#include <stdlib.h>
#include <string.h>

static core_avro_catalog_t *cat;
static core_audit_t *audit;

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "%s", err);
    audit = core_audit_new(NULL, cat, NULL, "validator", err, sizeof(err));
    ck_assert_msg(audit != NULL, "%s", err);
}

static void teardown(void)
{
    core_audit_free(audit);
    core_avro_catalog_free(cat);
}

static void *encode(const core_audit_event *ev, size_t *len)
{
    void *buf = NULL;
    char err[256];
    ck_assert_int_eq(core_audit_encode(audit, ev, &buf, len, err, sizeof(err)), CORE_OK);
    return buf;
}

static core_audit_event full_event(core_digest *d)
{
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    core_digest_sha256("x", 1, d);
    ev.id = "id-1";
    ev.key = "K\xc3\xa9";   /* é: two-byte UTF-8 */
    ev.dataset = "payee";
    ev.batch_id = "b1";
    ev.outcome = "invalid";
    ev.digest = d;
    ev.topic = "payee.raw";
    ev.partition = INT32_MAX;
    ev.offset = INT64_MAX;
    ev.reason = "tab\there\nnewline\\";
    ev.line = (int64_t)1 << 53;
    ev.version = INT64_MIN + 1;
    ev.ts = 1764633600000;
    return ev;
}

START_TEST(decodes_what_core_audit_writes)
{
    core_digest d;
    core_audit_event in = full_event(&d);
    size_t len;
    void *buf = encode(&in, &len);
    recon_event ev;
    const char *why = NULL;

    ck_assert_int_eq(recon_event_decode(buf, len, &ev, &why), 0);
    ck_assert(recon_str_is(ev.id, "id-1"));
    ck_assert(recon_str_is(ev.key, "K\xc3\xa9"));
    ck_assert(recon_str_is(ev.dataset, "payee"));
    ck_assert(recon_str_is(ev.batch_id, "b1"));
    ck_assert(recon_str_is(ev.stage, "validator"));
    ck_assert_int_eq(ev.stage_ix, RS_VALIDATOR);
    ck_assert(recon_str_is(ev.outcome, "invalid"));
    ck_assert(ev.has_digest && core_digest_equal(&ev.digest, &d));
    ck_assert(recon_str_is(ev.topic, "payee.raw"));
    ck_assert(recon_str_is(ev.reason, "tab\there\nnewline\\"));
    ck_assert_int_eq(ev.partition, INT32_MAX);
    ck_assert_int_eq(ev.offset, INT64_MAX);
    ck_assert_int_eq(ev.line, (int64_t)1 << 53);
    ck_assert_int_eq(ev.version, INT64_MIN + 1);
    ck_assert_int_eq(ev.ts, 1764633600000);
    free(buf);
}
END_TEST

START_TEST(absent_fields_are_null)
{
    core_audit_event in = CORE_AUDIT_EVENT_INIT;
    size_t len;
    void *buf;
    recon_event ev;
    const char *why;

    in.id = "i";
    in.dataset = "payee";
    in.batch_id = ""; /* an empty batch is allowed (undecodable records) */
    in.outcome = "valid";
    buf = encode(&in, &len);
    ck_assert_int_eq(recon_event_decode(buf, len, &ev, &why), 0);
    ck_assert_ptr_null(ev.key.p);
    ck_assert_ptr_null(ev.topic.p);
    ck_assert(!ev.has_digest);
    ck_assert_int_eq(ev.partition, RECON_NONE);
    ck_assert_int_eq(ev.version, RECON_NONE);
    ck_assert_int_eq((int)ev.batch_id.len, 0);
    free(buf);
}
END_TEST

START_TEST(every_truncation_and_a_trailing_byte_are_refused)
{
    core_digest d;
    core_audit_event in = full_event(&d);
    size_t len;
    uint8_t *buf = encode(&in, &len), *big = malloc(len + 1);
    recon_event ev;
    const char *why;

    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, buf, n);
        ck_assert_msg(recon_event_decode(copy, n, &ev, &why) != 0, "truncated at %zu read", n);
        free(copy);
    }
    memcpy(big, buf, len);
    big[len] = 0;
    ck_assert_int_ne(recon_event_decode(big, len + 1, &ev, &why), 0);
    ck_assert_str_eq(why, "trailing bytes after the event");
    free(big);
    free(buf);
}
END_TEST

/* Hand-made bodies for what core_audit never writes. */
typedef struct w {
    uint8_t b[8192];
    size_t n;
} w;

static void put_long(w *x, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        x->b[x->n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    x->b[x->n++] = (uint8_t)z;
}

static void put_str(w *x, const char *s, size_t n)
{
    put_long(x, (int64_t)n);
    memcpy(x->b + x->n, s, n);
    x->n += n;
}

static void head(w *x, uint32_t id)
{
    x->n = 0;
    x->b[x->n++] = 0;
    x->b[x->n++] = (uint8_t)(id >> 24);
    x->b[x->n++] = (uint8_t)(id >> 16);
    x->b[x->n++] = (uint8_t)(id >> 8);
    x->b[x->n++] = (uint8_t)id;
}

/* A whole event with the id given as bytes, the stage and outcome, and the
 * partition given. */
static void body(w *x, const char *id, size_t idlen, const char *stage, const char *outcome,
                 int64_t partition)
{
    head(x, RECON_AUDIT_SCHEMA_ID);
    put_str(x, id, idlen);
    put_long(x, 0);                      /* key null */
    put_str(x, "payee", 5);
    put_str(x, "b", 1);
    put_str(x, stage, strlen(stage));
    put_str(x, outcome, strlen(outcome));
    put_long(x, 0);                      /* digest null */
    put_long(x, 1);                      /* ts */
    put_long(x, 0);                      /* topic */
    if (partition == RECON_NONE) {
        put_long(x, 0);
    } else {
        put_long(x, 1);
        put_long(x, partition);
    }
    for (int i = 0; i < 4; i++)          /* offset, reason, line, version */
        put_long(x, 0);
}

static int decode(const w *x, const char **why)
{
    recon_event ev;
    return recon_event_decode(x->b, x->n, &ev, why);
}

START_TEST(untrusted_bytes_are_refused)
{
    w x;
    const char *why;

    body(&x, "ok", 2, "persister", "dead", 7);
    ck_assert_int_eq(decode(&x, &why), 0);
    /* NUL inside a string: PostgreSQL's text cannot hold it */
    body(&x, "a\0b", 3, "persister", "dead", RECON_NONE);
    ck_assert_int_ne(decode(&x, &why), 0);
    ck_assert_str_eq(why, "id");
    /* invalid UTF-8: a lone continuation byte, an overlong, a surrogate, past U+10FFFF,
     * a sequence cut at the end */
    static const char *bad[] = { "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe2\x82" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body(&x, bad[i], strlen(bad[i]), "persister", "dead", RECON_NONE);
        ck_assert_msg(decode(&x, &why) != 0, "bad UTF-8 %zu accepted", i);
    }
    /* the largest code point and a 4-byte sequence are fine */
    body(&x, "\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80", 8, "persister", "dead", RECON_NONE);
    ck_assert_int_eq(decode(&x, &why), 0);
    /* an empty id */
    body(&x, "", 0, "persister", "dead", RECON_NONE);
    ck_assert_int_ne(decode(&x, &why), 0);
    /* a partition beyond int32, either side */
    body(&x, "i", 1, "persister", "dead", (int64_t)INT32_MAX + 1);
    ck_assert_int_ne(decode(&x, &why), 0);
    ck_assert_str_eq(why, "partition");
    body(&x, "i", 1, "persister", "dead", (int64_t)INT32_MIN - 1);
    ck_assert_int_ne(decode(&x, &why), 0);
    /* an unknown stage, an outcome of another stage */
    body(&x, "i", 1, "recon", "dead", RECON_NONE);
    ck_assert_int_ne(decode(&x, &why), 0);
    ck_assert_str_eq(why, "unknown stage");
    body(&x, "i", 1, "persister", "cached", RECON_NONE);
    ck_assert_int_ne(decode(&x, &why), 0);
    /* another schema id, no magic byte */
    body(&x, "i", 1, "persister", "dead", RECON_NONE);
    x.b[4] = 101;
    ck_assert_int_ne(decode(&x, &why), 0);
    x.b[4] = RECON_AUDIT_SCHEMA_ID;
    x.b[0] = 1;
    ck_assert_int_ne(decode(&x, &why), 0);
    /* a length of 2^31-1 with 3 bytes behind it, a negative one, one past the field cap */
    head(&x, RECON_AUDIT_SCHEMA_ID);
    put_long(&x, INT32_MAX);
    put_str(&x, "abc", 3);
    ck_assert_int_ne(decode(&x, &why), 0);
    head(&x, RECON_AUDIT_SCHEMA_ID);
    put_long(&x, -2);
    ck_assert_int_ne(decode(&x, &why), 0);
    {
        static char big[RECON_FIELD_MAX + 1];
        memset(big, 'a', sizeof(big));
        body(&x, big, RECON_FIELD_MAX, "persister", "dead", RECON_NONE);
        ck_assert_int_eq(decode(&x, &why), 0);
        body(&x, big, RECON_FIELD_MAX + 1, "persister", "dead", RECON_NONE);
        ck_assert_int_ne(decode(&x, &why), 0);
    }
    /* a varint of 11 bytes */
    head(&x, RECON_AUDIT_SCHEMA_ID);
    for (int i = 0; i < 11; i++)
        x.b[x.n++] = 0x81;
    ck_assert_int_ne(decode(&x, &why), 0);
    /* a union branch other than 0 / 1 */
    body(&x, "i", 1, "persister", "dead", RECON_NONE);
    x.b[5 + 2] = 4; /* the key's branch */
    ck_assert_int_ne(decode(&x, &why), 0);
    ck_assert_int_ne(recon_event_decode(NULL, 0, &(recon_event){ 0 }, &why), 0);
}
END_TEST

START_TEST(element_depends_on_id_and_digest_only)
{
    core_digest d1, d2, a, b, c;
    core_digest_sha256("1", 1, &d1);
    core_digest_sha256("2", 1, &d2);
    recon_element("id", 2, &d1, &a);
    recon_element("id", 2, &d1, &b);
    ck_assert(core_digest_equal(&a, &b));
    recon_element("id", 2, &d2, &c);
    ck_assert(!core_digest_equal(&a, &c));
    recon_element("ie", 2, &d1, &c);
    ck_assert(!core_digest_equal(&a, &c));
    /* no digest is not the all-zero digest's... but is stable */
    recon_element("id", 2, NULL, &b);
    recon_element("id", 2, NULL, &c);
    ck_assert(core_digest_equal(&b, &c));
    ck_assert(!core_digest_equal(&a, &b));
}
END_TEST

/* A registry's answers for the test: ids 9001 (v1) and 9002 (v2) of the
 * audit event, 9003 the payee schema, nothing else. */
static core_err_t fetch_ids(void *opaque, uint32_t id, char **json, char *errstr,
                            size_t errstr_size)
{
    const char *file = id == 9001 ? "audit_event.avsc" : id == 9002 ? "audit_event_v3.avsc"
                       : id == 9003 ? "payee.avsc" : NULL;
    char path[1024];

    (void)opaque;
    if (!file) {
        core_errstr(errstr, errstr_size, "schema id %u is not in the registry", id);
        return CORE_ERR_NOTFOUND;
    }
    snprintf(path, sizeof(path), "%s/%s", tu_proto_dir(), file);
    *json = core_read_file(path, 1 << 20, NULL, errstr, errstr_size);
    return *json ? CORE_OK : CORE_ERR_IO;
}

/* With a Schema Registry the ids are the registry's: an id is resolved
 * (the catalogue fetches it) and its layout found by comparing schemas. */
START_TEST(registry_ids_resolved_by_layout)
{
    char err[512];
    core_avro_catalog_t *rcat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    core_audit_t *ra;
    core_audit_event in = CORE_AUDIT_EVENT_INIT;
    recon_audit_ids ids = { 0 };
    recon_event ev;
    const char *why = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    ck_assert_msg(rcat != NULL, "%s", err);
    ck_assert_int_eq(core_avro_catalog_set_fetch(rcat, fetch_ids, NULL), CORE_OK);
    /* what core_registry_bind() does for the writer: the current AuditEvent gets 9002 */
    ck_assert_int_eq(core_avro_catalog_set_id(rcat,
                                              core_avro_catalog_by_name(rcat,
                                                                        "tributary.AuditEvent"),
                                              9002, err, sizeof(err)),
                     CORE_OK);
    ra = core_audit_new(NULL, rcat, NULL, "validator", err, sizeof(err));
    ck_assert_msg(ra != NULL, "%s", err);
    in.id = "i";
    in.dataset = "payee";
    in.batch_id = "b";
    in.outcome = "valid";
    ck_assert_int_eq(core_audit_encode(ra, &in, (void **)&buf, &len, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(buf[4], 9002 & 0xff);
    ids.cat = rcat;
    ck_assert_int_eq(recon_event_decode_ids(&ids, buf, len, &ev, &why), 0);
    ck_assert(recon_str_is(ev.batch_id, "b"));
    /* the fixed ids mean nothing here: 202 is refused */
    ck_assert_int_ne(recon_event_decode(buf, len, &ev, &why), 0);
    /* v1 under another id: v3's bytes less the null content_digest and old_key */
    buf[3] = 9001 >> 8;
    buf[4] = 9001 & 0xff;
    ck_assert_int_eq(buf[len - 1], 0);
    ck_assert_int_eq(buf[len - 2], 0);
    ck_assert_int_eq(recon_event_decode_ids(&ids, buf, len - 2, &ev, &why), 0);
    ck_assert_int_ne(recon_event_decode_ids(&ids, buf, len - 1, &ev, &why), 0); /* trailing byte */
    /* another dataset's schema, an id the registry lacks: refused, named */
    buf[4] = 9003 & 0xff;
    ck_assert_int_ne(recon_event_decode_ids(&ids, buf, len, &ev, &why), 0);
    ck_assert_str_eq(why, "schema id is not tributary.AuditEvent's");
    buf[4] = 9004 & 0xff;
    ck_assert_int_ne(recon_event_decode_ids(&ids, buf, len, &ev, &why), 0);
    ck_assert_int_eq(recon_audit_ids_version(&ids, 9002), 3);
    ck_assert_int_eq(recon_audit_ids_version(&ids, 9001), 1);
    ck_assert_int_eq(recon_audit_ids_version(&ids, 9003), 0);
    free(buf);
    core_audit_free(ra);
    core_avro_catalog_free(rcat);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recon_event");
    TCase *tc = tcase_create("decode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, decodes_what_core_audit_writes);
    tcase_add_test(tc, registry_ids_resolved_by_layout);
    tcase_add_test(tc, absent_fields_are_null);
    tcase_add_test(tc, every_truncation_and_a_trailing_byte_are_refused);
    tcase_add_test(tc, untrusted_bytes_are_refused);
    tcase_add_test(tc, element_depends_on_id_and_digest_only);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
