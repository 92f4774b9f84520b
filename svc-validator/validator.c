/* validator.c — consume, validate, route and commit in one transaction
 * (see validator.h). */
#include "validator.h"
#include "validator_int.h"

#include "rules.h"
#include "tributary/core_audit.h"
#include "tributary/core_digest.h"
#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_topics.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const validator_outcome_names[VO_COUNT] = {
    "valid", "invalid", "poison", "retrying", "exhausted",
};

const char *const validator_out_names[VALIDATOR_OUT_COUNT] = { "valid", "retry", "dlq" };

const validator_stats *validator_get_stats(const validator_t *v) { return &v->stats; }
core_kafka_consumer_t *validator_consumer(validator_t *v) { return v->c; }
core_kafka_producer_t *validator_producer(validator_t *v) { return v->prod; }

/* ---- rebalance ---------------------------------------------------------- */

static void on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    validator_t *v = user;

    (void)c;
    (void)lost;
    v->revoked = true;
    v->stats.revokes++;
    for (int i = 0; i < parts->cnt; i++)
        for (size_t k = 0; k < v->npaused;) {
            if (v->paused[k].partition == parts->elems[i].partition &&
                strcmp(v->paused[k].topic, parts->elems[i].topic) == 0)
                v->paused[k] = v->paused[--v->npaused];
            else
                k++;
        }
}

/* ---- producer ----------------------------------------------------------- */

static void producer_drop(validator_t *v)
{
    core_audit_free(v->audit);
    v->audit = NULL;
    core_kafka_producer_free(v->prod);
    v->prod = NULL;
}

static int producer_make(validator_t *v, char *errstr, size_t errstr_size)
{
    core_kafka_producer_opts o = { 0 };
    int64_t deadline = core_mono_ms() + 60000;
    core_kafka_txn_res_t r;

    o.cfg = v->p.cfg;
    o.defaults = v->p.kafka_defaults;
    o.ndefaults = v->p.nkafka_defaults;
    o.transactional_id = v->txn_id;
    v->prod = core_kafka_producer_new(&o, errstr, errstr_size);
    if (!v->prod)
        return -1;
    do {
        r = core_kafka_txn_init(v->prod, 10000, errstr, errstr_size);
    } while (r == CORE_KAFKA_TXN_RETRY && core_mono_ms() < deadline &&
             !core_lifecycle_forced());
    if (r != CORE_KAFKA_TXN_OK) {
        producer_drop(v);
        return -1;
    }
    v->audit = core_audit_new(v->prod, v->p.cat, v->audit_topic, "validator", errstr,
                              errstr_size);
    if (!v->audit) {
        producer_drop(v);
        return -1;
    }
    return 0;
}

/* ---- construction ------------------------------------------------------- */

/* w->key = a NUL-terminated copy of the record's Kafka key (as strndup():
 * up to its first NUL), in w->keybuf when it fits (no malloc per record). */
void validator_key_take_(work *w)
{
    const rd_kafka_message_t *rkm = w->rkm;
    size_t n;

    if (!rkm->key || rkm->key_len == 0)
        return;
    n = strnlen(rkm->key, rkm->key_len);
    if (n < sizeof(w->keybuf)) {
        memcpy(w->keybuf, rkm->key, n);
        w->keybuf[n] = '\0';
        w->key = w->keybuf;
    } else {
        w->key = strndup(rkm->key, n);
    }
}

static void key_drop(work *w)
{
    if (w->key != w->keybuf)
        free(w->key);
    w->key = NULL;
}

void validator_free(validator_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nbatch; i++) {
        rd_kafka_message_destroy(v->batch[i].rkm);
        key_drop(&v->batch[i]);
        cJSON_Delete(v->batch[i].json);
    }
    free(v->batch);
    producer_drop(v);
    core_kafka_consumer_free(v->c);
    verifier_free(v->verifier);
    core_avro_decoder_free(v->dec);
    for (size_t i = 0; i < v->nds; i++) {
        for (size_t k = 0; k < v->ds[i].nbind; k++)
            vrules_unbind(v->ds[i].bind[k].bound);
        vrules_free(v->ds[i].rules);
    }
    free(v->ds);
    free(v->group_id);
    free(v->txn_id);
    free(v->prefix);
    free(v->audit_topic);
    free(v);
}

validator_t *validator_new(const validator_params *p, char *errstr, size_t errstr_size)
{
    static const char *const l_out[] = { "dataset", "outcome", NULL };
    static const char *const l_rule[] = { "dataset", "field", "rule", NULL };
    static const char *const l_att[] = { "dataset", "attempt", NULL };
    static const double batch_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1, 2.5, 5, 10 };
    core_metrics_t *m = core_metrics_global();
    validator_t *v = calloc(1, sizeof(*v));
    core_kafka_consumer_opts co = { 0 };
    const char **topics = NULL;
    core_kafka_prop *cdefaults = NULL;

    if (!v) {
        core_errstr(errstr, errstr_size, "validator: out of memory");
        return NULL;
    }
    v->p = *p;
    if (v->p.batch_max <= 0)
        v->p.batch_max = 1000;
    if (v->p.commit_interval_ms <= 0)
        v->p.commit_interval_ms = 100;
    v->group_id = strdup(p->group_id ? p->group_id : "tributary-validator");
    v->txn_id = strdup(p->transactional_id ? p->transactional_id : "svc-validator");
    v->prefix = strdup(p->topic_prefix ? p->topic_prefix : "");
    v->audit_topic = strdup(p->audit_topic ? p->audit_topic : CORE_AUDIT_TOPIC);
    v->ds = calloc(p->ndatasets ? p->ndatasets : 1, sizeof(*v->ds));
    v->batch = calloc((size_t)v->p.batch_max, sizeof(*v->batch));
    topics = calloc(p->ndatasets * 2 + 1, sizeof(*topics));
    if (!v->group_id || !v->txn_id || !v->prefix || !v->audit_topic || !v->ds || !v->batch ||
        !topics) {
        core_errstr(errstr, errstr_size, "validator: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < p->ndatasets; i++) {
        vdataset *d = &v->ds[i];

        d->name = p->datasets[i];
        d->schema = core_avro_catalog_by_dataset(p->cat, d->name);
        if (!d->schema) {
            core_errstr(errstr, errstr_size, "dataset: unknown dataset '%s'", d->name);
            goto fail;
        }
        v->nds++;
        d->rules = vrules_new(core_avro_schema_rules(d->schema), d->schema, p->clock_skew_ms, errstr,
                              errstr_size);
        if (!d->rules)
            goto fail;
        if (core_topic_name(v->prefix, d->name, CORE_TOPIC_RAW, d->raw, sizeof(d->raw), errstr,
                            errstr_size) ||
            core_topic_name(v->prefix, d->name, CORE_TOPIC_VALID, d->valid, sizeof(d->valid),
                            errstr, errstr_size) ||
            core_topic_name(v->prefix, d->name, CORE_TOPIC_RETRY, d->retry, sizeof(d->retry),
                            errstr, errstr_size) ||
            core_topic_name(v->prefix, d->name, CORE_TOPIC_DLQ, d->dlq, sizeof(d->dlq), errstr,
                            errstr_size))
            goto fail;
        topics[2 * i] = d->raw;
        topics[2 * i + 1] = d->retry;
        for (size_t k = 0; p->out_ids && k < VALIDATOR_OUT_COUNT; k++)
            d->out_id[k] = p->out_ids[i * VALIDATOR_OUT_COUNT + k];
    }
    v->verifier = verifier_new(&p->verify, errstr, errstr_size);
    if (!v->verifier)
        goto fail;
    v->dec = core_avro_decoder_new(p->cat, errstr, errstr_size);
    if (!v->dec)
        goto fail;
    v->f_records = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_validator_records_total",
                                       "Records routed, by outcome (committed transactions)",
                                       l_out, NULL, 0, NULL, 0);
    v->f_rules = core_metrics_family(m, CORE_METRIC_COUNTER,
                                     "tributary_validator_rule_failures_total",
                                     "Failed rules, by field and rule", l_rule, NULL, 0, NULL, 0);
    v->f_retries = core_metrics_family(m, CORE_METRIC_COUNTER,
                                       "tributary_validator_retries_total",
                                       "Records sent to the retry topic, by next attempt", l_att,
                                       NULL, 0, NULL, 0);
    v->m_batch_seconds = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_validator_batch_seconds",
                            "Validation and commit of one batch", NULL, batch_buckets,
                            CORE_ARRAY_SIZE(batch_buckets), NULL, 0),
        NULL);
    if (producer_make(v, errstr, errstr_size) != 0)
        goto fail;
    cdefaults = calloc(p->nkafka_defaults + 1, sizeof(*cdefaults));
    if (!cdefaults) {
        core_errstr(errstr, errstr_size, "validator: out of memory");
        goto fail;
    }
    if (p->nkafka_defaults) /* tests point it at a mock cluster */
        memcpy(cdefaults, p->kafka_defaults, p->nkafka_defaults * sizeof(*cdefaults));
    co.ndefaults = p->nkafka_defaults;
    if (p->group_instance_id)
        cdefaults[co.ndefaults++] = (core_kafka_prop){ "group.instance.id",
                                                       p->group_instance_id };
    co.cfg = p->cfg;
    co.defaults = cdefaults;
    co.group_id = v->group_id;
    co.on_revoke = on_revoke;
    co.hook_user = v;
    v->c = core_kafka_consumer_new(&co, errstr, errstr_size);
    if (!v->c ||
        core_kafka_consumer_subscribe(v->c, topics, p->ndatasets * 2, errstr, errstr_size) !=
            CORE_OK)
        goto fail;
    free(topics);
    free(cdefaults);
    return v;
fail:
    free(topics);
    free(cdefaults);
    validator_free(v);
    return NULL;
}

/* ---- helpers ------------------------------------------------------------ */

/* snprintf(buf + len, size - len, "%s%s...", parts...) with len < size,
 * without printf's cost: @returns len plus the length of every part, as
 * len += snprintf(...) would. */
size_t validator_append_text_(char *buf, size_t size, size_t len, const char *const *part,
                          size_t nparts)
{
    size_t at = len;

    for (size_t i = 0; i < nparts; i++) {
        size_t n = strlen(part[i]);

        if (at < size - 1) {
            size_t k = n < size - 1 - at ? n : size - 1 - at;

            memcpy(buf + at, part[i], k);
            buf[at + k] = '\0';
        }
        at += n;
    }
    if (nparts == 0 || at == len)
        buf[len] = '\0';
    return at;
}

/* snprintf(buf, size, "%s", s), without printf's cost (hot path). */
void validator_copy_text_(char *buf, size_t size, const char *s)
{
    size_t n = strnlen(s, size - 1);

    memcpy(buf, s, n);
    buf[n] = '\0';
}

bool validator_header_text_(const rd_kafka_message_t *rkm, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t len = 0;

    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
        return false;
    if (len >= size)
        len = size - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return true;
}

static int64_t header_int(const rd_kafka_message_t *rkm, const char *name, int64_t def)
{
    char buf[32], *end;
    long long x;

    if (!validator_header_text_(rkm, name, buf, sizeof(buf)))
        return def;
    x = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' ? (int64_t)x : def;
}

static int dataset_of(validator_t *v, const char *topic, bool *from_retry)
{
    for (size_t i = 0; i < v->nds; i++) {
        if (strcmp(topic, v->ds[i].raw) == 0) {
            *from_retry = false;
            return (int)i;
        }
        if (strcmp(topic, v->ds[i].retry) == 0) {
            *from_retry = true;
            return (int)i;
        }
    }
    return -1;
}

static paused *paused_find(validator_t *v, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < v->npaused; i++)
        if (v->paused[i].partition == partition && strcmp(v->paused[i].topic, topic) == 0)
            return &v->paused[i];
    return NULL;
}

refused *validator_refused_find_(validator_t *v, const rd_kafka_message_t *rkm)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);

    for (size_t i = 0; i < v->nrefused; i++)
        if (v->refused[i].offset == rkm->offset && v->refused[i].partition == rkm->partition &&
            strcmp(v->refused[i].topic, topic) == 0)
            return &v->refused[i];
    return NULL;
}

static void refused_note(validator_t *v, const rd_kafka_message_t *rkm, const char *reason)
{
    refused *r = validator_refused_find_(v, rkm);

    if (!r) {
        if (v->nrefused >= MAX_REFUSED)
            return;
        r = &v->refused[v->nrefused++];
        snprintf(r->topic, sizeof(r->topic), "%s", rd_kafka_topic_name(rkm->rkt));
        r->partition = rkm->partition;
        r->offset = rkm->offset;
        r->level = 0;
    }
    r->level++;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    core_log_error("kafka refused an output record: redoing it as poison",
                   CLF_S("topic", r->topic), CLF_I("partition", r->partition),
                   CLF_I("offset", r->offset), CLF_I("level", r->level), CLF_S("reason", reason));
}

static void resume_due(validator_t *v)
{
    int64_t now = core_now_ms();
    char errstr[256];

    for (size_t i = 0; i < v->npaused;) {
        if (v->paused[i].resume_at <= now) {
            if (core_kafka_consumer_resume(v->c, v->paused[i].topic, v->paused[i].partition,
                                           errstr, sizeof(errstr)) != CORE_OK)
                core_log_warn("resume failed", CLF_S("topic", v->paused[i].topic),
                              CLF_I("partition", v->paused[i].partition),
                              CLF_S("reason", errstr));
            v->paused[i] = v->paused[--v->npaused];
        } else {
            i++;
        }
    }
}

/* A retry record not yet due: hold its partition at this offset, paused,
 * while every other partition goes on. @returns false when it cannot be
 * held (then the caller processes it now: early, never lost). */
static bool hold(validator_t *v, const rd_kafka_message_t *rkm, int64_t not_before)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    char errstr[256];
    paused *p;

    if (v->npaused >= MAX_PAUSED)
        return false;
    /* Pause first, then seek back (dropping what was fetched after it); on a
     * failure undo the pause and let the caller go on in order. */
    if (core_kafka_consumer_pause(v->c, topic, rkm->partition, errstr, sizeof(errstr)) !=
        CORE_OK) {
        core_log_warn("cannot hold retry partition: retrying early", CLF_S("topic", topic),
                      CLF_I("partition", rkm->partition), CLF_S("reason", errstr));
        return false;
    }
    if (core_kafka_consumer_seek(v->c, topic, rkm->partition, rkm->offset, 5000, errstr,
                                 sizeof(errstr)) != CORE_OK) {
        char e2[128];

        core_log_warn("cannot hold retry partition: retrying early", CLF_S("topic", topic),
                      CLF_I("partition", rkm->partition), CLF_S("reason", errstr));
        core_kafka_consumer_resume(v->c, topic, rkm->partition, e2, sizeof(e2));
        return false;
    }
    p = &v->paused[v->npaused++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = rkm->partition;
    p->resume_at = not_before;
    return true;
}

static void batch_clear(validator_t *v)
{
    for (size_t i = 0; i < v->nbatch; i++) {
        rd_kafka_message_destroy(v->batch[i].rkm);
        key_drop(&v->batch[i]);
        cJSON_Delete(v->batch[i].json);
        memset(&v->batch[i], 0, sizeof(v->batch[i]));
    }
    v->nbatch = 0;
}

/* ---- collecting --------------------------------------------------------- */

/* Records taken from the consumer's queue between two clock readings
 * (while records are queued, polls do not wait). */
#define COLLECT_CLOCK_EVERY 64

static int collect(validator_t *v, char *errstr, size_t errstr_size)
{
    int64_t start = core_mono_ms(), left = v->p.commit_interval_ms;
    unsigned since_clock = 0;

    while (v->nbatch < (size_t)v->p.batch_max && !core_lifecycle_stopping()) {
        rd_kafka_message_t *rkm;
        const char *topic;
        bool from_retry = false;
        int ds;
        work *w;

        /* A queued record without waiting (librdkafka reads no clock for a
         * zero timeout); the clock only every COLLECT_CLOCK_EVERY records
         * and before waiting. */
        if (++since_clock >= COLLECT_CLOCK_EVERY) {
            since_clock = 0;
            left = v->p.commit_interval_ms - (core_mono_ms() - start);
        }
        if (left <= 0)
            break;
        rkm = core_kafka_consumer_poll(v->c, 0);
        if (!rkm && !v->revoked) {
            left = v->p.commit_interval_ms - (core_mono_ms() - start);
            since_clock = 0;
            if (left <= 0)
                break;
            rkm = core_kafka_consumer_poll(v->c, (int)(left < 100 ? left : 100));
        }
        if (v->revoked) {
            /* Partitions changed hands mid-batch: redo from committed offsets. */
            if (rkm)
                rd_kafka_message_destroy(rkm);
            batch_clear(v);
            v->revoked = false;
            core_kafka_consumer_rewind(v->c, 10000, errstr, errstr_size);
            return 0;
        }
        if (!rkm) {
            if (v->nbatch == 0 && v->npaused > 0)
                resume_due(v);
            continue;
        }
        if (rkm->err) {
            rd_kafka_message_destroy(rkm);
            if (core_kafka_consumer_fatal(v->c, errstr, errstr_size))
                return -1;
            continue;
        }
        topic = rd_kafka_topic_name(rkm->rkt);
        ds = dataset_of(v, topic, &from_retry);
        if (ds < 0 || paused_find(v, topic, rkm->partition)) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (from_retry) {
            int64_t nb = header_int(rkm, CORE_HDR_NOT_BEFORE, 0);

            if (nb > core_now_ms() && hold(v, rkm, nb)) {
                rd_kafka_message_destroy(rkm);
                continue;
            }
        }
        w = &v->batch[v->nbatch++];
        memset(w, 0, sizeof(*w));
        w->rkm = rkm;
        w->ds = ds;
        w->from_retry = from_retry;
        w->attempt = from_retry ? (int)header_int(rkm, CORE_HDR_ATTEMPT, 1) : 0;
        w->version = CORE_AUDIT_NONE;
    }
    return 0;
}

/* ---- the transaction ---------------------------------------------------- */

/* After a fatal producer error: a new producer (fences nothing of ours:
 * same transactional.id, the broker aborts what the old one left open),
 * and the consumer back at its committed offsets. */
static int rebuild(validator_t *v, char *errstr, size_t errstr_size)
{
    char err2[256];

    core_log_warn("rebuilding the transactional producer", CLF_S("reason", errstr));
    producer_drop(v);
    v->stats.rebuilds++;
    batch_clear(v);
    if (core_kafka_consumer_rewind(v->c, 10000, err2, sizeof(err2)) != CORE_OK)
        core_log_warn("rewind failed", CLF_S("reason", err2));
    while (producer_make(v, errstr, errstr_size) != 0) {
        core_log_error("cannot rebuild the producer", CLF_S("reason", errstr));
        if (core_lifecycle_wait(1000))
            return -1;
    }
    return 0;
}

static int abort_batch(validator_t *v, char *errstr, size_t errstr_size)
{
    core_kafka_txn_res_t r;

    v->stats.aborts++;
    batch_clear(v);
    do {
        r = core_kafka_txn_abort_rewind(v->prod, v->c, 10000, errstr, errstr_size);
    } while (r == CORE_KAFKA_TXN_RETRY && !core_lifecycle_forced());
    if (r != CORE_KAFKA_TXN_OK)
        return rebuild(v, errstr, errstr_size);
    return 0;
}

#define TXN_CALL(call)                                                                     \
    do {                                                                                   \
        int tries_ = 0;                                                                    \
        do {                                                                               \
            r = (call);                                                                    \
        } while (r == CORE_KAFKA_TXN_RETRY && ++tries_ < 20 && !core_lifecycle_forced());  \
    } while (0)

static int commit_batch(validator_t *v, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *offs;
    core_kafka_txn_res_t r;
    core_err_t rc = CORE_OK;
    uint64_t counts[VO_COUNT] = { 0 };
    int64_t now_ms = core_now_ms(); /* the audit events' time */

    TXN_CALL(core_kafka_txn_begin(v->prod, errstr, errstr_size));
    if (r != CORE_KAFKA_TXN_OK)
        return rebuild(v, errstr, errstr_size);
    offs = rd_kafka_topic_partition_list_new(8); /* grows: one entry per partition */
    for (size_t i = 0; i < v->nbatch && rc == CORE_OK; i++) {
        rc = validator_produce_one_(v, &v->batch[i], now_ms, errstr, errstr_size);
        if (rc == CORE_ERR_TOOBIG || rc == CORE_ERR_INVALID)
            refused_note(v, v->batch[i].rkm, errstr);
        core_kafka_offsets_add_message(offs, v->batch[i].rkm);
        counts[v->batch[i].out]++;
    }
    if (rc != CORE_OK) {
        rd_kafka_topic_partition_list_destroy(offs);
        if (rc == CORE_ERR_FATAL || core_kafka_producer_fatal(v->prod, NULL, 0))
            return rebuild(v, errstr, errstr_size);
        core_log_warn("produce failed: aborting the transaction", CLF_S("reason", errstr));
        return abort_batch(v, errstr, errstr_size);
    }
    TXN_CALL(core_kafka_txn_send_offsets(v->prod, v->c, offs, TXN_TIMEOUT_MS, errstr,
                                         errstr_size));
    rd_kafka_topic_partition_list_destroy(offs);
    if (r == CORE_KAFKA_TXN_OK)
        TXN_CALL(core_kafka_txn_commit(v->prod, TXN_TIMEOUT_MS, errstr, errstr_size));
    if (r == CORE_KAFKA_TXN_FATAL)
        return rebuild(v, errstr, errstr_size);
    if (r != CORE_KAFKA_TXN_OK)
        return abort_batch(v, errstr, errstr_size);
    v->stats.transactions++;
    for (size_t i = 0; i < v->nbatch && v->nrefused > 0; i++) {
        refused *rf = validator_refused_find_(v, v->batch[i].rkm);

        if (rf)
            *rf = v->refused[--v->nrefused];
    }
    for (int o = 0; o < VO_COUNT; o++) {
        v->stats.committed[o] += counts[o];
    }
    /* Per-record metrics as one increment per (dataset, outcome) a batch. */
    for (size_t k = 0; k < v->nds; k++) {
        uint64_t n[VO_COUNT] = { 0 };

        for (size_t i = 0; i < v->nbatch; i++)
            if (v->batch[i].ds == (int)k)
                n[v->batch[i].out]++;
        for (int o = 0; o < VO_COUNT; o++)
            if (n[o])
                core_metric_add(core_metrics_series2(v->f_records, v->ds[k].name,
                                                     validator_outcome_names[o]),
                                (double)n[o]);
    }
    for (size_t i = 0; i < v->nbatch; i++) {
        work *w = &v->batch[i];

        if (w->out == VO_RETRYING) {
            char att[16];

            snprintf(att, sizeof(att), "%d", w->attempt + 1);
            core_metric_inc(core_metrics_series2(v->f_retries, v->ds[w->ds].name, att));
        }
    }
    batch_clear(v);
    return 0;
}

int validator_step(validator_t *v, char *errstr, size_t errstr_size)
{
    double t0;

    resume_due(v);
    if (collect(v, errstr, errstr_size) != 0)
        return -1;
    if (v->nbatch == 0)
        return 0;
    t0 = core_mono_s();
    validator_validate_batch_(v);
    if (commit_batch(v, errstr, errstr_size) != 0)
        return -1;
    core_metric_observe(v->m_batch_seconds, core_mono_s() - t0);
    return 0;
}

int validator_run(validator_t *v)
{
    char errstr[512];
    int rc = 0;

    while (!core_lifecycle_stopping()) {
        if (validator_step(v, errstr, sizeof(errstr)) != 0) {
            core_log_error("validator stopped", CLF_S("reason", errstr));
            rc = CORE_EX_SOFTWARE;
            break;
        }
    }
    /* In-flight work was committed by the last step; leave the group. */
    if (core_kafka_consumer_close(v->c, errstr, sizeof(errstr)) != CORE_OK)
        core_log_warn("consumer close", CLF_S("reason", errstr));
    return rc;
}
