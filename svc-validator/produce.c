/* produce.c — one validated record to its topic (.valid, .retry, .dlq) with
 * the headers kept and the tb.error.* ones added (validator_int.h). */
#include "validator.h"
#include "validator_int.h"

#include "rules.h"
#include "tributary/core_audit.h"
#include "tributary/core_digest.h"
#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- producing ---------------------------------------------------------- */

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

    h = core_dlq_headers_take(rkm, w->out == VO_VALID ? (size_t)w->drop_value : 12);
    switch (w->out) {
    case VO_VALID:
        out_topic = d->valid;
        kind = VALIDATOR_OUT_VALID;
        break;
    case VO_RETRYING:
        out_topic = d->retry;
        kind = VALIDATOR_OUT_RETRY;
        core_dlq_add_int(h, CORE_HDR_ATTEMPT, w->attempt + 1);
        core_dlq_add_int(h, CORE_HDR_NOT_BEFORE, w->not_before);
        core_dlq_add_str(h, CORE_HDR_ERROR_FIELD, w->field);
        core_dlq_add_str(h, CORE_HDR_ERROR_MESSAGE, w->reason);
        break;
    default: {
        const core_dlq_error e = {
            .stage = w->out == VO_POISON ? "VALUE_CONVERTER" : "TRANSFORMATION",
            .who = "svc-validator",
            .exception = exception_class(w->out),
            .message = w->reason,
            .error_class = validator_outcome_names[w->out],
            .field = w->field,
            .attempt = w->attempt,
        };
        out_topic = d->dlq;
        kind = VALIDATOR_OUT_DLQ;
        core_dlq_headers_add(h, rkm, &e);
        break;
    }
    }
    if (w->drop_value)
        core_dlq_add_str(h, "tb.error.value_dropped", "true");
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
