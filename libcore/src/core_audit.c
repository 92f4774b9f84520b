/* core_audit.c — AuditEvent records to audit.events. */
#include "tributary/core_audit.h"
#include "tributary/core_metrics.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

struct core_audit {
    core_kafka_producer_t *producer;
    const core_avro_schema_t *schema;
    avro_value_t value;       /* reused for every event */
    char *topic;
    char *stage;
    core_metric_family_t *m_events;
};

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

static core_err_t fill(core_audit_t *a, const core_audit_event *ev, char *errstr, size_t errstr_size)
{
    avro_value_t *rec = &a->value;
    avro_value_t f;
    char hex[CORE_DIGEST_HEX_LEN + 1];

    if (!ev->id || !ev->dataset || !ev->batch_id || !ev->outcome) {
        core_errstr(errstr, errstr_size, "audit: event without %s",
                    !ev->id ? "id" : !ev->dataset ? "dataset" : !ev->batch_id ? "batch_id" : "outcome");
        return CORE_ERR_INVALID;
    }
    if (ev->digest)
        core_digest_to_hex(ev->digest, hex);
    if (set_str(rec, "id", ev->id) || set_opt_str(rec, "key", ev->key) ||
        set_str(rec, "dataset", ev->dataset) || set_str(rec, "batch_id", ev->batch_id) ||
        set_str(rec, "stage", a->stage) || set_str(rec, "outcome", ev->outcome) ||
        set_opt_str(rec, "digest", ev->digest ? hex : NULL) ||
        avro_value_get_by_name(rec, "ts", &f, NULL) || avro_value_set_long(&f, core_now_ms()) ||
        set_opt_str(rec, "topic", ev->topic) ||
        set_opt_long(rec, "partition", ev->partition, true) ||
        set_opt_long(rec, "offset", ev->offset, false) ||
        set_opt_str(rec, "reason", ev->reason) ||
        set_opt_long(rec, "line", ev->line, false) ||
        set_opt_long(rec, "version", ev->version, false)) {
        core_errstr(errstr, errstr_size, "audit: cannot fill the event: %s", avro_strerror());
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_err_t core_audit_encode(core_audit_t *a, const core_audit_event *ev,
                             void **bufp, size_t *lenp, char *errstr, size_t errstr_size)
{
    core_err_t err = fill(a, ev, errstr, errstr_size);

    if (err != CORE_OK)
        return err;
    return core_avro_encode(a->schema, &a->value, bufp, lenp, errstr, errstr_size);
}

core_err_t core_audit_emit(core_audit_t *a, const core_audit_event *ev,
                           char *errstr, size_t errstr_size)
{
    void *buf = NULL;
    size_t len = 0;
    const char *key = ev->key ? ev->key : ev->id;
    core_err_t err;

    err = core_audit_encode(a, ev, &buf, &len, errstr, errstr_size);
    if (err != CORE_OK)
        return err;
    err = core_kafka_produce(a->producer, a->topic, key, key ? strlen(key) : 0, buf, len,
                             NULL, 0, NULL, errstr, errstr_size);
    free(buf);
    if (err == CORE_OK && a->m_events)
        core_metric_inc(core_metrics_series2(a->m_events, a->stage, ev->outcome));
    return err;
}
