/* validate.c — the validator's batch, validated: decode, key check, rules
 * (local and external), and the outcome of each record (validator_int.h). */
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

/* ---- validating --------------------------------------------------------- */

static void set_reason(work *w, int out, const char *field, const char *fmt, const char *s)
{
    w->out = out;
    snprintf(w->field, sizeof(w->field), "%s", field ? field : "");
    snprintf(w->reason, sizeof(w->reason), fmt, s);
}

/* w->id and w->batch from the headers tb.id and tb.batch; an id made of
 * topic/partition/offset when there is no tb.id. */
static void ids_from_headers(work *w)
{
    const rd_kafka_message_t *rkm = w->rkm;

    if (!validator_header_text_(rkm, CORE_HDR_ID, w->id, sizeof(w->id)))
        snprintf(w->id, sizeof(w->id), "%.100s/%" PRId32 "/%" PRId64,
                 rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset);
    if (!validator_header_text_(rkm, CORE_HDR_BATCH, w->batch, sizeof(w->batch)))
        w->batch[0] = '\0';
}

/* The dataset's rules bound to schema (one of its versions), bound on first
 * use; NULL: evaluate records of this schema on their natural JSON. */
static const vrules_bound_t *rules_for(validator_t *v, int ds, const core_avro_schema_t *schema)
{
    vdataset *d = &v->ds[ds];
    vbinding *b;
    char err[256];

    for (size_t i = 0; i < d->nbind; i++)
        if (d->bind[i].schema == schema)
            return d->bind[i].bound;
    if (d->nbind == MAX_BINDINGS)
        return NULL;
    b = &d->bind[d->nbind++];
    b->schema = schema;
    b->bound = vrules_bind(d->rules, schema, err, sizeof(err));
    if (!b->bound)
        core_log_info("rules checked on natural JSON for this schema",
                      CLF_S("dataset", d->name), CLF_S("schema", core_avro_schema_name(schema)),
                      CLF_I("schema_id", core_avro_schema_id(schema)), CLF_S("reason", err));
    return b->bound;
}

/* The sinks key a record by its business key, while Kafka keeps order per
 * Kafka key: a record whose Kafka key is null or differs from its business
 * key (byte for byte) would be written out of order with the other events
 * of its key, so it is invalid. The reason names the key field, never
 * either key's value. @returns true when w is refused. */
static bool key_refused(work *w, const core_avro_schema_t *schema, avro_value_t *val)
{
    const rd_kafka_message_t *rkm = w->rkm;
    const char *field = core_avro_schema_key_field(schema), *bk = NULL;
    size_t bklen = 0;
    char err[256];

    if (!field)
        return false; /* a schema without tb.key: nothing to compare */
    if (core_avro_get_key(schema, val, &bk, &bklen, err, sizeof(err)) != CORE_OK) {
        set_reason(w, VO_POISON, field, "cannot read the business key: %s", err);
        return true;
    }
    if (!rkm->key) {
        w->out = VO_INVALID;
        snprintf(w->field, sizeof(w->field), "%s", field);
        snprintf(w->reason, sizeof(w->reason),
                 "Kafka key is null; it must be the business key (%s)", field);
        return true;
    }
    if (rkm->key_len != bklen || memcmp(rkm->key, bk, bklen) != 0) {
        w->out = VO_INVALID;
        snprintf(w->field, sizeof(w->field), "%s", field);
        snprintf(w->reason, sizeof(w->reason),
                 "Kafka key differs from the business key (%s)", field);
        return true;
    }
    return false;
}

/* Decode and check the local rules; list external checks in *items.
 * Longer than most (about 130 lines) for a reason: the steps of one record
 * (header ids, decode, key check, bound rules or natural JSON, externals)
 * each end its outcome early, and reading them in order is the contract. */
static void validate_local(validator_t *v, work *w, int64_t now_ms, vv_item **items,
                           size_t *nitems, size_t *cap)
{
    const vdataset *d = &v->ds[w->ds];
    const rd_kafka_message_t *rkm = w->rkm;
    const core_avro_schema_t *schema = NULL;
    avro_value_t *val;
    core_avro_meta meta;
    char err[384];
    vr_failure fails[MAX_FAILS];
    size_t nf = 0;
    const vrules_bound_t *bound;
    int rc;

    validator_key_take_(w);
    if (!rkm->payload) {
        ids_from_headers(w);
        set_reason(w, VO_POISON, NULL, "%s", "empty value (tombstone)");
        return;
    }
    if ((rc = core_avro_decoder_decode(v->dec, rkm->payload, rkm->len, &schema, &val, err,
                                       sizeof(err))) != CORE_OK) {
        ids_from_headers(w);
        /* the Schema Registry did not answer for the record's id: not the
         * record's fault, so .retry (then exhausted), never poison */
        if (rc == CORE_ERR_TRANSIENT)
            set_reason(w, VO_RETRYING, NULL, "schema registry: %s", err);
        else
            set_reason(w, VO_POISON, NULL, "cannot decode: %s", err);
        return;
    }
    if (core_avro_schema_dataset(schema) == NULL ||
        strcmp(core_avro_schema_dataset(schema), d->name) != 0) {
        ids_from_headers(w);
        w->out = VO_POISON;
        snprintf(w->reason, sizeof(w->reason), "record of schema %s on a topic of dataset %s",
                 core_avro_schema_name(schema), d->name);
        return;
    }
    /* The record's own id and batch win over the headers: read the headers
     * only when its meta cannot be read. */
    if (core_avro_get_meta(schema, val, &meta, err, sizeof(err)) == CORE_OK) {
        validator_copy_text_(w->id, sizeof(w->id), meta.id);
        validator_copy_text_(w->batch, sizeof(w->batch), meta.batch_id);
        w->version = meta.version;
    } else {
        ids_from_headers(w);
    }
    if (key_refused(w, schema, val)) {
        if (w->out == VO_INVALID)
            core_metric_inc(core_metrics_series(v->f_rules, (const char *const[]){
                                                                d->name, w->field, "key",
                                                                NULL }));
        return;
    }
    bound = rules_for(v, w->ds, schema);
    if (bound) {
        /* The rules on the Avro value itself: no JSON tree per record. */
        rc = vrules_eval_avro(bound, val, now_ms, fails, MAX_FAILS, &nf, err,
                              sizeof(err));
        /* External checks build their URLs from the natural JSON. */
        if (rc == 0 && nf == 0 && vrules_nexternal(d->rules) > 0) {
            w->json = core_avro_to_json(schema, val, err, sizeof(err));
            rc = w->json ? 0 : -1;
        }
    } else {
        w->json = core_avro_to_json(schema, val, err, sizeof(err));
        rc = w->json ? 0 : -1;
        if (w->json)
            nf = vrules_eval(d->rules, w->json, now_ms, fails, MAX_FAILS);
    }
    if (rc != 0) {
        set_reason(w, VO_POISON, NULL, "cannot read: %s", err);
        return;
    }
    if (nf > 0) {
        size_t rl = 0, fl = 0;

        w->out = VO_INVALID;
        for (size_t i = 0; i < nf && i < MAX_FAILS; i++) {
            core_metric_inc(core_metrics_series(v->f_rules, (const char *const[]){
                                                                d->name, fails[i].field,
                                                                fails[i].rule, NULL }));
            if (rl < sizeof(w->reason)) { /* "%s%s (%s)" */
                const char *part[] = { i ? "; " : "", fails[i].message, " (", fails[i].rule,
                                       ")" };

                rl = validator_append_text_(w->reason, sizeof(w->reason), rl, part, 5);
            }
            if (fl < sizeof(w->field) && !strstr(w->field, fails[i].field)) { /* "%s%s" */
                const char *part[] = { fl ? "," : "", fails[i].field };

                fl = validator_append_text_(w->field, sizeof(w->field), fl, part, 2);
            }
        }
        return;
    }
    w->out = VO_VALID;
    w->ext_first = *nitems;
    for (size_t e = 0; e < vrules_nexternal(d->rules); e++) {
        bool skip = false;
        char *url = vrules_external_url(d->rules, e, w->json, &skip);
        const vr_external *ext = vrules_external(d->rules, e);
        const cJSON *fv;
        vv_item *it;

        if (!url) {
            if (!skip) {
                w->out = VO_RETRYING;
                snprintf(w->reason, sizeof(w->reason), "out of memory");
            }
            continue;
        }
        if (*nitems == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            vv_item *ni = realloc(*items, nc * sizeof(**items));

            if (!ni) {
                free(url);
                w->out = VO_RETRYING;
                snprintf(w->reason, sizeof(w->reason), "out of memory");
                continue;
            }
            *items = ni;
            *cap = nc;
        }
        it = &(*items)[(*nitems)++];
        memset(it, 0, sizeof(*it));
        it->dataset = d->name;
        it->ext = ext;
        fv = vrules_lookup(w->json, ext->field);
        it->value = cJSON_IsString(fv) ? fv->valuestring : url;
        it->url = url;
        w->ext_n++;
    }
}

static void route_outcome(validator_t *v, work *w)
{
    const core_backoff *b = &v->p.retry;

    if (w->out != VO_RETRYING)
        return;
    /* retry.max_attempts is the number of retries (0: none). */
    if (w->attempt + 1 > b->max_attempts) {
        w->out = VO_EXHAUSTED;
        return;
    }
    w->not_before = core_now_ms() + core_backoff_delay_ms(b, w->attempt + 1);
}

void validator_validate_batch_(validator_t *v)
{
    vv_item *items = NULL;
    size_t nitems = 0, cap = 0;
    int64_t now_ms = core_now_ms(); /* one clock reading for the batch's rules */

    for (size_t i = 0; i < v->nbatch; i++) {
        work *w = &v->batch[i];
        refused *r = v->nrefused ? validator_refused_find_(v, w->rkm) : NULL;

        if (r) { /* its output was refused before: to the DLQ, no checks */
            w->id[0] = '\0';
            validator_header_text_(w->rkm, CORE_HDR_ID, w->id, sizeof(w->id));
            if (!w->id[0])
                snprintf(w->id, sizeof(w->id), "%.100s/%" PRId32 "/%" PRId64, r->topic,
                         r->partition, r->offset);
            validator_header_text_(w->rkm, CORE_HDR_BATCH, w->batch, sizeof(w->batch));
            validator_key_take_(w);
            w->out = VO_POISON;
            w->drop_value = r->level >= 2;
            snprintf(w->reason, sizeof(w->reason), "output refused by Kafka: %s", r->reason);
            continue;
        }
        validate_local(v, w, now_ms, &items, &nitems, &cap);
    }
    if (nitems > 0)
        verifier_run(v->verifier, items, nitems);
    for (size_t i = 0; i < v->nbatch; i++) {
        work *w = &v->batch[i];

        for (size_t k = w->ext_first; k < w->ext_first + w->ext_n; k++) {
            vv_item *it = &items[k];

            if (w->out == VO_VALID && it->verdict == VV_INVALID) {
                w->out = VO_INVALID;
                snprintf(w->field, sizeof(w->field), "%s", it->ext->field);
                snprintf(w->reason, sizeof(w->reason), "%s (external)", it->reason);
            } else if (w->out == VO_VALID && it->verdict == VV_TRANSIENT) {
                w->out = VO_RETRYING;
                snprintf(w->field, sizeof(w->field), "%s", it->ext->field);
                snprintf(w->reason, sizeof(w->reason), "%s", it->reason);
            }
        }
        route_outcome(v, w);
        cJSON_Delete(w->json);
        w->json = NULL;
    }
    for (size_t k = 0; k < nitems; k++)
        free((char *)items[k].url);
    free(items);
}
