/* produce.c — one validated record to its topic (.valid, .retry, .dlq) with
 * the headers kept and the tb.error.* ones added (validator_int.h). */
#include "validator.h"
#include "validator_int.h"

#include "rules.h"
#include "tributary/core_audit.h"
#include "tributary/core_digest.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- producing ---------------------------------------------------------- */

/* Headers every output keeps from its input, in this order. */
static const char *const hdr_keep_names[] = { "tb.id", "tb.batch", "tb.ingest.ts" };

/* Whether the list holds only kept headers, each at most once, in order. */
static bool hdr_only_kept(const rd_kafka_headers_t *in)
{
    const char *name;
    const void *val;
    size_t len, k = 0;

    for (size_t idx = 0; rd_kafka_header_get_all(in, idx, &name, &val, &len) ==
                         RD_KAFKA_RESP_ERR_NO_ERROR; idx++) {
        while (k < CORE_ARRAY_SIZE(hdr_keep_names) && strcmp(name, hdr_keep_names[k]) != 0)
            k++;
        if (k == CORE_ARRAY_SIZE(hdr_keep_names))
            return false;
        k++;
    }
    return true;
}

/* The output's header list, starting with the input's tb.id, tb.batch and
 * tb.ingest.ts as they are (the last of each), nothing else of the input.
 * When the input holds just those (what svc-ingest writes), its own list is
 * taken over (rd_kafka_message_detach_headers(): nothing copied); else a
 * new list of them. @returns the list, or NULL when it would be empty and
 * nothing is to be added. */
static rd_kafka_headers_t *hdr_start(rd_kafka_message_t *rkm, size_t nadd)
{
    rd_kafka_headers_t *in = NULL, *out;

    if (rd_kafka_message_headers(rkm, &in) != RD_KAFKA_RESP_ERR_NO_ERROR)
        in = NULL;
    if (in && hdr_only_kept(in) &&
        rd_kafka_message_detach_headers(rkm, &out) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return out;
    if (!in && nadd == 0)
        return NULL;
    out = rd_kafka_headers_new(CORE_ARRAY_SIZE(hdr_keep_names) + nadd);
    for (size_t i = 0; in && i < CORE_ARRAY_SIZE(hdr_keep_names); i++) {
        const void *val;
        size_t len;

        if (rd_kafka_header_get_last(in, hdr_keep_names[i], &val, &len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_header_add(out, hdr_keep_names[i], -1, val, val ? (ssize_t)len : 0);
    }
    if (nadd == 0 && rd_kafka_header_cnt(out) == 0) {
        rd_kafka_headers_destroy(out);
        return NULL;
    }
    return out;
}

static void hdr_str(rd_kafka_headers_t *h, const char *name, const char *s)
{
    rd_kafka_header_add(h, name, -1, s, (ssize_t)strlen(s));
}

static void hdr_int(rd_kafka_headers_t *h, const char *name, int64_t x)
{
    char b[24], *p = b + sizeof(b);
    uint64_t u = x < 0 ? -(uint64_t)x : (uint64_t)x;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--p = '-';
    rd_kafka_header_add(h, name, -1, p, b + sizeof(b) - p);
}

static const char *exception_class(int out)
{
    switch (out) {
    case VO_POISON: return "tributary.validator.PoisonRecord";
    case VO_EXHAUSTED: return "tributary.validator.RetriesExhausted";
    default: return "tributary.validator.InvalidRecord";
    }
}

/* The value to pass on to output kind k: the record's own bytes, or, when
 * its writer's schema is the dataset's current one under another id than
 * the output subject's, a copy with that id in the header (*copyp, freed
 * by the caller). The body is never touched: the payload digest covers the
 * body alone, and the content digest reads the same schema text by either
 * id, so recon sees the same record. */
static const void *output_value(validator_t *v, const vdataset *d, validator_out_kind k,
                                const rd_kafka_message_t *rkm, uint8_t **copyp)
{
    const core_avro_schema_t *ws;
    uint32_t id = 0, out = d->out_id[k];
    char err[64];

    *copyp = NULL;
    if (!out || !rkm->payload ||
        core_avro_wire_id(rkm->payload, rkm->len, &id, err, sizeof(err)) != CORE_OK || id == out)
        return rkm->payload;
    /* decoded already, so held by the catalogue: no request here */
    ws = core_avro_catalog_by_id(v->p.cat, id);
    if (!ws || (ws != d->schema && !cJSON_Compare(core_avro_schema_json(ws),
                                                  core_avro_schema_json(d->schema), true)))
        return rkm->payload; /* another version: its own id, resolvable anywhere */
    if (!(*copyp = malloc(rkm->len)))
        return rkm->payload;
    memcpy(*copyp, rkm->payload, rkm->len);
    (*copyp)[1] = (uint8_t)(out >> 24);
    (*copyp)[2] = (uint8_t)(out >> 16);
    (*copyp)[3] = (uint8_t)(out >> 8);
    (*copyp)[4] = (uint8_t)out;
    return *copyp;
}

core_err_t validator_produce_one_(validator_t *v, work *w, int64_t now_ms, char *errstr,
                              size_t errstr_size)
{
    validator_out_kind kind;
    uint8_t *copy = NULL;
    const void *value;
    const vdataset *d = &v->ds[w->ds];
    rd_kafka_message_t *rkm = w->rkm;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    core_digest dg;
    rd_kafka_headers_t *h;
    const char *out_topic;
    core_err_t rc;

    h = hdr_start(rkm, w->out == VO_VALID ? (size_t)w->drop_value : 12);
    switch (w->out) {
    case VO_VALID:
        out_topic = d->valid;
        kind = VALIDATOR_OUT_VALID;
        break;
    case VO_RETRYING:
        out_topic = d->retry;
        kind = VALIDATOR_OUT_RETRY;
        hdr_int(h, "tb.attempt", w->attempt + 1);
        hdr_int(h, "tb.not_before", w->not_before);
        hdr_str(h, "tb.error.field", w->field);
        hdr_str(h, "tb.error.message", w->reason);
        break;
    default:
        out_topic = d->dlq;
        kind = VALIDATOR_OUT_DLQ;
        hdr_str(h, "__connect.errors.topic", topic);
        hdr_int(h, "__connect.errors.partition", rkm->partition);
        hdr_int(h, "__connect.errors.offset", rkm->offset);
        hdr_str(h, "__connect.errors.stage",
                w->out == VO_POISON ? "VALUE_CONVERTER" : "TRANSFORMATION");
        hdr_str(h, "__connect.errors.class.name", "svc-validator");
        hdr_str(h, "__connect.errors.exception.class.name", exception_class(w->out));
        hdr_str(h, "__connect.errors.exception.message", w->reason);
        hdr_str(h, "tb.error.class", validator_outcome_names[w->out]);
        hdr_str(h, "tb.error.field", w->field);
        hdr_int(h, "tb.attempt", w->attempt);
        break;
    }
    if (w->drop_value)
        hdr_str(h, "tb.error.value_dropped", "true");
    /* h is the output's now, whatever the outcome */
    value = w->drop_value ? NULL : output_value(v, d, kind, rkm, &copy);
    rc = core_kafka_produce_hdrs(v->prod, out_topic, rkm->key, rkm->key_len, value,
                                 w->drop_value ? 0 : rkm->len, h, NULL, errstr, errstr_size);
    free(copy); /* librdkafka copied it */
    if (rc != CORE_OK)
        return rc;
    if (rkm->payload)
        core_digest_record(rkm->payload, rkm->len, &dg);
    ev.id = w->id;
    ev.key = w->key;
    ev.dataset = d->name;
    ev.batch_id = w->batch;
    ev.outcome = validator_outcome_names[w->out];
    ev.digest = rkm->payload ? &dg : NULL;
    ev.value = rkm->payload; /* for the content digest */
    ev.value_len = rkm->len;
    ev.topic = topic;
    ev.partition = rkm->partition;
    ev.offset = rkm->offset;
    ev.reason = w->out == VO_VALID ? NULL : w->reason;
    ev.version = w->version;
    ev.ts = now_ms;
    return core_audit_emit(v->audit, &ev, errstr, errstr_size);
}
