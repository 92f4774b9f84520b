/* core_audit.c — AuditEvent records to audit.events.
 *
 * Two encoders giving the same bytes: a direct one for the AuditEvent
 * layouts this file knows (proto/audit_event.avsc, id 201, and
 * audit_event_v2.avsc, id 202, which appends content_digest, and
 * audit_event_v3.avsc, id 203, which appends old_key: checked field
 * by field against the catalogue's schema when the publisher is made),
 * writing into a buffer reused for every event; and avro-c's generic one
 * for any other layout. */
#include "tributary/core_audit.h"
#include "tributary/core_metrics.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

/* The direct encoder's layout: field name and Avro type, in order. "?"
 * marks a ["null", T] union. */
static const struct {
    const char *name;
    const char *type;
} audit_layout[] = {
    { "id", "string" },        { "key", "?string" },    { "dataset", "string" },
    { "batch_id", "string" },  { "stage", "string" },   { "outcome", "string" },
    { "digest", "?string" },   { "ts", "long" },        { "topic", "?string" },
    { "partition", "?int" },   { "offset", "?long" },   { "reason", "?string" },
    { "line", "?long" },       { "version", "?long" },    { "content_digest", "?string" },
    { "old_key", "?string" },
};
/* Version 1 (id 201) ends before content_digest, version 2 (id 202)
 * before old_key. */
#define AUDIT_V1_FIELDS 14
#define AUDIT_V2_FIELDS 15

struct core_audit {
    core_kafka_producer_t *producer;
    const core_avro_catalog_t *cat;
    const core_avro_schema_t *schema;
    avro_value_t value;       /* reused for every event (generic encoder) */
    bool direct;              /* the schema has audit_layout: encode directly */
    size_t nfields;           /* of audit_layout the schema has (14, 15 or 16) */
    uint8_t *buf;             /* the direct encoder's buffer, reused */
    size_t cap;
    char *topic;
    char *stage;
    core_metric_family_t *m_events;
};

static bool type_is(avro_schema_t t, const char *name)
{
    switch (avro_typeof(t)) {
    case AVRO_STRING: return strcmp(name, "string") == 0;
    case AVRO_INT64: return strcmp(name, "long") == 0;
    case AVRO_INT32: return strcmp(name, "int") == 0;
    default: return false;
    }
}

/* How many leading fields of audit_layout the schema is exactly (version 1,
 * 2 or 3), or 0. */
static size_t layout_known(avro_schema_t s)
{
    size_t i, n;

    if (!s || avro_typeof(s) != AVRO_RECORD)
        return 0;
    n = avro_schema_record_size(s);
    if (n != AUDIT_V1_FIELDS && n != AUDIT_V2_FIELDS && n != CORE_ARRAY_SIZE(audit_layout))
        return 0;
    for (i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(s, (int)i);
        const char *type = audit_layout[i].type;
        avro_schema_t t = avro_schema_record_field_get_by_index(s, (int)i);

        if (!name || strcmp(name, audit_layout[i].name) != 0 || !t)
            return 0;
        if (type[0] == '?') {
            if (avro_typeof(t) != AVRO_UNION || avro_schema_union_size(t) != 2 ||
                avro_typeof(avro_schema_union_branch(t, 0)) != AVRO_NULL ||
                !type_is(avro_schema_union_branch(t, 1), type + 1))
                return 0;
        } else if (!type_is(t, type)) {
            return 0;
        }
    }
    return n;
}

core_audit_t *core_audit_new(core_kafka_producer_t *producer, const core_avro_catalog_t *cat,
                             const char *topic, const char *stage,
                             char *errstr, size_t errstr_size)
{
    static const char *const labels[] = { "stage", "outcome", NULL };
    core_audit_t *a;

    a = calloc(1, sizeof(*a));
    if (!a) {
        core_errstr(errstr, errstr_size, "audit: out of memory");
        return NULL;
    }
    a->producer = producer;
    a->cat = cat;
    a->schema = core_avro_catalog_by_name(cat, "tributary.AuditEvent");
    if (!a->schema) {
        core_errstr(errstr, errstr_size, "audit: the catalogue has no schema tributary.AuditEvent");
        free(a);
        return NULL;
    }
    if (core_avro_value_new(a->schema, &a->value) != CORE_OK) {
        core_errstr(errstr, errstr_size, "audit: out of memory");
        free(a);
        return NULL;
    }
    a->nfields = layout_known(core_avro_schema_avro(a->schema));
    a->direct = a->nfields > 0;
    a->topic = strdup(topic ? topic : CORE_AUDIT_TOPIC);
    a->stage = strdup(stage ? stage : "unknown");
    if (!a->topic || !a->stage) {
        core_errstr(errstr, errstr_size, "audit: out of memory");
        core_audit_free(a);
        return NULL;
    }
    a->m_events = core_metrics_family(core_metrics_global(), CORE_METRIC_COUNTER,
                                      "tributary_audit_events_total",
                                      "Audit events published, by stage and outcome", labels,
                                      NULL, 0, NULL, 0);
    return a;
}

void core_audit_free(core_audit_t *a)
{
    if (!a)
        return;
    if (a->schema)
        avro_value_decref(&a->value);
    free(a->buf);
    free(a->topic);
    free(a->stage);
    free(a);
}

static int set_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_string(&f, s);
}

/* A ["null", T] union: branch 0 for null, 1 for the value. */
static int set_opt_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f, b;

    if (avro_value_get_by_name(rec, name, &f, NULL))
        return -1;
    if (!s)
        return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
    return avro_value_set_branch(&f, 1, &b) || avro_value_set_string(&b, s);
}

static int set_opt_long(avro_value_t *rec, const char *name, int64_t v, bool as_int)
{
    avro_value_t f, b;

    if (avro_value_get_by_name(rec, name, &f, NULL))
        return -1;
    if (v == CORE_AUDIT_NONE)
        return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
    if (avro_value_set_branch(&f, 1, &b))
        return -1;
    return as_int ? avro_value_set_int(&b, (int32_t)v) : avro_value_set_long(&b, v);
}

static core_err_t check_event(const core_audit_event *ev, char *errstr, size_t errstr_size)
{
    if (!ev->id || !ev->dataset || !ev->batch_id || !ev->outcome) {
        core_errstr(errstr, errstr_size, "audit: event without %s",
                    !ev->id ? "id" : !ev->dataset ? "dataset" : !ev->batch_id ? "batch_id" : "outcome");
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

/* The event's content digest into *d: given, or computed from the
 * record's value. NULL when there is none (no value, undecodable bytes). */
static const core_digest *content_digest(const core_audit_t *a, const core_audit_event *ev,
                                         core_digest *d)
{
    char err[128];

    if (ev->content_digest)
        return ev->content_digest;
    if (!ev->value || !a->cat ||
        core_avro_content_digest_wire(a->cat, ev->value, ev->value_len, d, err, sizeof(err)) !=
            CORE_OK)
        return NULL;
    return d;
}

static core_err_t fill(core_audit_t *a, const core_audit_event *ev, char *errstr, size_t errstr_size)
{
    avro_value_t *rec = &a->value;
    avro_value_t f;
    char hex[CORE_DIGEST_HEX_LEN + 1];

    if (check_event(ev, errstr, errstr_size) != CORE_OK)
        return CORE_ERR_INVALID;
    if (ev->digest)
        core_digest_to_hex(ev->digest, hex);
    if (set_str(rec, "id", ev->id) || set_opt_str(rec, "key", ev->key) ||
        set_str(rec, "dataset", ev->dataset) || set_str(rec, "batch_id", ev->batch_id) ||
        set_str(rec, "stage", a->stage) || set_str(rec, "outcome", ev->outcome) ||
        set_opt_str(rec, "digest", ev->digest ? hex : NULL) ||
        avro_value_get_by_name(rec, "ts", &f, NULL) || avro_value_set_long(&f, ev->ts ? ev->ts : core_now_ms()) ||
        set_opt_str(rec, "topic", ev->topic) ||
        set_opt_long(rec, "partition", ev->partition, true) ||
        set_opt_long(rec, "offset", ev->offset, false) ||
        set_opt_str(rec, "reason", ev->reason) ||
        set_opt_long(rec, "line", ev->line, false) ||
        set_opt_long(rec, "version", ev->version, false)) {
        core_errstr(errstr, errstr_size, "audit: cannot fill the event: %s", avro_strerror());
        return CORE_ERR_INVALID;
    }
    if (avro_value_get_by_name(rec, "content_digest", &f, NULL) == 0) {
        core_digest cd;
        const core_digest *cdp = content_digest(a, ev, &cd);

        if (cdp)
            core_digest_to_hex(cdp, hex);
        if (set_opt_str(rec, "content_digest", cdp ? hex : NULL)) {
            core_errstr(errstr, errstr_size, "audit: cannot fill the event: %s",
                        avro_strerror());
            return CORE_ERR_INVALID;
        }
    }
    if (avro_value_get_by_name(rec, "old_key", &f, NULL) == 0 &&
        set_opt_str(rec, "old_key", ev->old_key)) {
        core_errstr(errstr, errstr_size, "audit: cannot fill the event: %s", avro_strerror());
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

/* ---- the direct encoder -------------------------------------------------- */

/* Most bytes a zig-zag varint of a long takes. */
#define VARINT_MAX 10

static uint8_t *put_long(uint8_t *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

    while (z >= 0x80) {
        *p++ = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    *p++ = (uint8_t)z;
    return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
    p = put_long(p, (int64_t)len);
    memcpy(p, s, len);
    return p + len;
}

/* A ["null", T] union: branch 0 for null, 1 for the value. */
static uint8_t *put_opt_str(uint8_t *p, const char *s, size_t len)
{
    if (!s)
        return put_long(p, 0);
    return put_str(put_long(p, 1), s, len);
}

static uint8_t *put_opt_long(uint8_t *p, int64_t v, bool as_int)
{
    if (v == CORE_AUDIT_NONE)
        return put_long(p, 0);
    return put_long(put_long(p, 1), as_int ? (int32_t)v : v);
}

/* Encode ev (checked) into a->buf; *lenp receives the wire size. */
static core_err_t encode_direct(core_audit_t *a, const core_audit_event *ev, size_t *lenp,
                                char *errstr, size_t errstr_size)
{
    char hex[CORE_DIGEST_HEX_LEN + 1], chex[CORE_DIGEST_HEX_LEN + 1];
    const char *dg = NULL, *cdg = NULL;
    core_digest cd;
    size_t l_id = strlen(ev->id), l_key = ev->key ? strlen(ev->key) : 0;
    size_t l_ds = strlen(ev->dataset), l_batch = strlen(ev->batch_id);
    size_t l_stage = strlen(a->stage), l_out = strlen(ev->outcome);
    size_t l_topic = ev->topic ? strlen(ev->topic) : 0;
    size_t l_reason = ev->reason ? strlen(ev->reason) : 0;
    size_t l_old = ev->old_key && a->nfields > AUDIT_V2_FIELDS ? strlen(ev->old_key) : 0;
    size_t need;
    uint32_t id = core_avro_schema_id(a->schema);
    uint8_t *p;

    if (ev->digest) {
        core_digest_to_hex(ev->digest, hex);
        dg = hex;
    }
    if (a->nfields > AUDIT_V1_FIELDS) {
        const core_digest *cdp = content_digest(a, ev, &cd);

        if (cdp) {
            core_digest_to_hex(cdp, chex);
            cdg = chex;
        }
    }
    /* Every field: its text plus at most two varints (branch, length). */
    need = CORE_AVRO_WIRE_HEADER + CORE_ARRAY_SIZE(audit_layout) * 2 * VARINT_MAX + l_id +
           l_key + l_ds + l_batch + l_stage + l_out + (dg ? CORE_DIGEST_HEX_LEN : 0) +
           (cdg ? CORE_DIGEST_HEX_LEN : 0) +
           l_topic + l_reason + l_old;
    if (need > a->cap) {
        uint8_t *nb = realloc(a->buf, need);

        if (!nb) {
            core_errstr(errstr, errstr_size, "audit: out of memory");
            return CORE_ERR_NOMEM;
        }
        a->buf = nb;
        a->cap = need;
    }
    p = a->buf;
    *p++ = 0;
    *p++ = (uint8_t)(id >> 24);
    *p++ = (uint8_t)(id >> 16);
    *p++ = (uint8_t)(id >> 8);
    *p++ = (uint8_t)id;
    p = put_str(p, ev->id, l_id);
    p = put_opt_str(p, ev->key, l_key);
    p = put_str(p, ev->dataset, l_ds);
    p = put_str(p, ev->batch_id, l_batch);
    p = put_str(p, a->stage, l_stage);
    p = put_str(p, ev->outcome, l_out);
    p = put_opt_str(p, dg, dg ? CORE_DIGEST_HEX_LEN : 0);
    p = put_long(p, ev->ts ? ev->ts : core_now_ms());
    p = put_opt_str(p, ev->topic, l_topic);
    p = put_opt_long(p, ev->partition, true);
    p = put_opt_long(p, ev->offset, false);
    p = put_opt_str(p, ev->reason, l_reason);
    p = put_opt_long(p, ev->line, false);
    p = put_opt_long(p, ev->version, false);
    if (a->nfields > AUDIT_V1_FIELDS)
        p = put_opt_str(p, cdg, cdg ? CORE_DIGEST_HEX_LEN : 0);
    if (a->nfields > AUDIT_V2_FIELDS)
        p = put_opt_str(p, ev->old_key, l_old);
    *lenp = (size_t)(p - a->buf);
    return CORE_OK;
}

core_err_t core_audit_encode(core_audit_t *a, const core_audit_event *ev,
                             void **bufp, size_t *lenp, char *errstr, size_t errstr_size)
{
    core_err_t err;
    size_t len;

    if (!a->direct) {
        err = fill(a, ev, errstr, errstr_size);
        if (err != CORE_OK)
            return err;
        return core_avro_encode(a->schema, &a->value, bufp, lenp, errstr, errstr_size);
    }
    if ((err = check_event(ev, errstr, errstr_size)) != CORE_OK ||
        (err = encode_direct(a, ev, &len, errstr, errstr_size)) != CORE_OK)
        return err;
    if (lenp)
        *lenp = len;
    if (!bufp)
        return CORE_OK;
    if (!(*bufp = malloc(len))) {
        core_errstr(errstr, errstr_size, "audit: out of memory");
        return CORE_ERR_NOMEM;
    }
    memcpy(*bufp, a->buf, len);
    return CORE_OK;
}

core_err_t core_audit_emit(core_audit_t *a, const core_audit_event *ev,
                           char *errstr, size_t errstr_size)
{
    void *buf = NULL;
    size_t len = 0;
    const char *key = ev->key ? ev->key : ev->id;
    core_err_t err;

    if (a->direct) { /* into a->buf, reused; the producer copies it */
        if ((err = check_event(ev, errstr, errstr_size)) != CORE_OK ||
            (err = encode_direct(a, ev, &len, errstr, errstr_size)) != CORE_OK)
            return err;
        err = core_kafka_produce(a->producer, a->topic, key, key ? strlen(key) : 0, a->buf,
                                 len, NULL, 0, NULL, errstr, errstr_size);
    } else {
        err = core_audit_encode(a, ev, &buf, &len, errstr, errstr_size);
        if (err != CORE_OK)
            return err;
        err = core_kafka_produce(a->producer, a->topic, key, key ? strlen(key) : 0, buf, len,
                                 NULL, 0, NULL, errstr, errstr_size);
        free(buf);
    }
    if (err == CORE_OK && a->m_events)
        core_metric_inc(core_metrics_series2(a->m_events, a->stage, ev->outcome));
    return err;
}
