/* core_sink_account.c — a written batch accounted for: outcomes counted, DLQ
 * and audit records produced, offsets kept and committed once they are
 * delivered (core_sink_int.h). */
#include "core_sink_int.h"

#include "tributary/core_audit.h"
#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- accounting: DLQ, audit, metrics, offsets ------------------------------- */

static void count_outcome(core_sink_t *s, size_t d, const char *outcome)
{
    ds_state *ds = &s->dss[d];

    for (size_t i = 0; i < ds->noc; i++)
        if (ds->oc[i].outcome == outcome || strcmp(ds->oc[i].outcome, outcome) == 0) {
            ds->oc[i].n++;
            return;
        }
    if (ds->noc < MAX_OUTCOMES) {
        outcome_count *oc = &ds->oc[ds->noc++];
        const char *lv[] = { s->pl->name, s->o->datasets[d].name, outcome, NULL };
        oc->outcome = outcome;
        oc->m = core_metrics_series(s->f_records, lv);
        oc->n = 1;
        return;
    }
    const char *lv[] = { s->pl->name, s->o->datasets[d].name, outcome, NULL };
    core_metric_inc(core_metrics_series(s->f_records, lv));
}

static void counts_flush(core_sink_t *s)
{
    for (size_t d = 0; d < s->o->ndatasets; d++)
        for (size_t i = 0; i < s->dss[d].noc; i++)
            if (s->dss[d].oc[i].n) {
                core_metric_add(s->dss[d].oc[i].m, (double)s->dss[d].oc[i].n);
                s->dss[d].oc[i].n = 0;
            }
}

static void emit_dlq(core_sink_t *s, const core_sink_record *r, bool poison)
{
    const core_sink_dataset *ds = &s->o->datasets[r->dataset];
    const rd_kafka_message_t *m = r->rkm;
    const core_sink_plugin *pl = s->pl;
    const char *cls = r->error_class ? r->error_class : poison ? "poison" : "invalid";
    bool cls_poison = strcmp(cls, "poison") == 0;
    const core_dlq_error e = {
        .stage = pl->dlq_stage ? pl->dlq_stage : poison ? "SINK_PREPARE" : "SINK_WRITE",
        .who = pl->dlq_class_name ? pl->dlq_class_name : pl->name,
        .exception = cls_poison ? (pl->dlq_exc_poison ? pl->dlq_exc_poison
                                                      : "tributary.sink.PoisonRecord")
                                : (pl->dlq_exc_refused ? pl->dlq_exc_refused
                                                       : "tributary.sink.RecordRefused"),
        .message = r->reason,
        .error_class = cls,
        .field = r->field,
        .attempt = -1,
    };
    char err[256];

    if (!ds->dlq_topic)
        return;
    /* the record's tb.id, tb.batch and tb.ingest.ts go with it: a replay
     * of the DLQ keeps its id */
    if (core_kafka_produce_hdrs(s->p, ds->dlq_topic, m->key, m->key_len, m->payload, m->len,
                                core_dlq_headers(m, &e), NULL, err, sizeof(err)) != CORE_OK) {
        /* not delivered: the batches since the last commit are redone */
        s->failed_seen = UINT64_MAX;
        core_log_error("dead-letter record not produced", CLF_S("topic", ds->dlq_topic),
                       CLF_S("error", err));
    }
    core_metric_inc(s->dss[r->dataset].dlq);
}

static void emit_audit(core_sink_t *s, const core_sink_record *r, const char *outcome,
                       const char *reason, int64_t ts)
{
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    const rd_kafka_message_t *m = r->rkm;
    char idbuf[300], err[512];
    core_digest d;

    if (!s->audit)
        return;
    if (r->id) {
        ev.id = r->id;
        ev.key = r->key;
        ev.batch_id = r->batch_id ? r->batch_id : "";
        ev.version = r->version;
        ev.old_key = r->old_key;
    } else {
        /* no id of its own: named by where it sits */
        snprintf(idbuf, sizeof(idbuf), "%s:%" PRId32 ":%" PRId64, rd_kafka_topic_name(m->rkt),
                 m->partition, m->offset);
        ev.id = idbuf;
        ev.batch_id = "";
    }
    if (r->has_digest) {
        ev.digest = &r->digest;
    } else {
        core_digest_record(m->payload, m->len, &d);
        ev.digest = &d;
    }
    ev.dataset = s->o->datasets[r->dataset].name;
    ev.value = m->payload; /* for the content digest */
    ev.value_len = m->len;
    ev.outcome = outcome;
    ev.topic = rd_kafka_topic_name(m->rkt);
    ev.partition = m->partition;
    ev.offset = m->offset;
    ev.reason = reason && *reason ? reason : NULL;
    ev.ts = ts;
    if (core_audit_emit(s->audit, &ev, err, sizeof(err)) != CORE_OK) {
        s->failed_seen = UINT64_MAX;
        core_log_error("audit event not produced", CLF_S("id", ev.id), CLF_S("error", err));
    }
}

/* A batch is answered (res OK or ERROR, batch error err): every record's
 * fate, then its offsets join the pending commit. */
static void batch_account(core_sink_t *s, batch *b, core_sink_res_t res, const char *err)
{
    bool any_marked = false;
    int64_t ts = core_now_ms();

    if (b->nprep) {
        core_metric_observe(s->m_flush, core_mono_s() - b->t_sent);
        core_metric_observe(s->m_batch, (double)b->nprep);
    }
    for (size_t i = 0; i < b->nprep; i++)
        any_marked |= b->prep[i]->res == CORE_SINK_ERROR;
    for (size_t i = 0; i < b->nitems; i++) {
        core_sink_record *r = &b->items[i];
        bool poison = r->poison;
        if (!poison && res == CORE_SINK_ERROR && !any_marked) {
            r->res = CORE_SINK_ERROR;
            snprintf(r->reason, sizeof(r->reason), "%s", err && *err ? err : "refused");
        }
        if (r->res == CORE_SINK_ERROR) {
            if (!poison)
                core_log_error(s->o->datasets[r->dataset].dlq_topic
                                   ? "record refused: to the dead-letter topic"
                                   : "record refused",
                               CLF_S("sink", s->pl->name),
                               CLF_S("dataset", s->o->datasets[r->dataset].name),
                               CLF_S("topic", rd_kafka_topic_name(r->rkm->rkt)),
                               CLF_I("partition", r->rkm->partition),
                               CLF_I("offset", r->rkm->offset), CLF_S("reason", r->reason));
            emit_dlq(s, r, poison);
            emit_audit(s, r, s->pl->outcome_dead, r->reason, ts);
            count_outcome(s, r->dataset, s->pl->outcome_dead);
        } else {
            const char *oc = r->outcome ? r->outcome : s->pl->outcome_ok;
            int64_t its = core_kafka_ingest_ts(r->rkm);
            if (its >= 0 && ts >= its)
                core_metric_observe(s->dss[r->dataset].e2e, (double)(ts - its) / 1000.0);
            emit_audit(s, r, oc, r->reason, ts);
            count_outcome(s, r->dataset, oc);
        }
        core_kafka_offsets_add_message(s->pending, r->rkm);
    }
    counts_flush(s);
    if (s->pl->accounted)
        s->pl->accounted(s->ctx, b->items, b->nitems);
    sink_batch_clear(s, b);
}

/* The oldest batch in flight is answered: account for it, move on. */
void sink_oldest_done(core_sink_t *s, core_sink_res_t res, const char *err)
{
    batch_account(s, &s->bs[s->head], res, err);
    s->head = (s->head + 1) % s->nb;
    s->nfly--;
}

/* ---- commits ------------------------------------------------------------------ */

/* Commit the pending offsets once the audit and DLQ records are delivered.
 * A failed delivery: nothing is committed and the records since the last
 * commit are read again. @returns CORE_OK or the error (retried later). */
core_err_t sink_commit_pending(core_sink_t *s, int flush_ms)
{
    char err[512];
    core_err_t rc;

    if (s->pending->cnt == 0)
        return CORE_OK;
    if (s->p) {
        if (core_kafka_producer_flush(s->p, flush_ms) > 0) {
            core_log_warn("audit or dead-letter records still in flight: commit postponed",
                          CLF_S("sink", s->pl->name));
            return CORE_ERR_TRANSIENT;
        }
        uint64_t failed = core_kafka_producer_failed(s->p);
        if (failed != s->failed_seen) {
            core_log_error("audit or dead-letter records not delivered: the records since the "
                           "last commit are read and written again",
                           CLF_S("sink", s->pl->name));
            s->failed_seen = failed;
            rd_kafka_topic_partition_list_destroy(s->pending);
            s->pending = rd_kafka_topic_partition_list_new(16);
            s->need_rewind = true;
            return CORE_ERR_TRANSIENT;
        }
    }
    rc = core_kafka_consumer_commit_offsets(s->c, s->pending, err, sizeof(err));
    if (rc == CORE_OK) {
        rd_kafka_topic_partition_list_destroy(s->pending);
        s->pending = rd_kafka_topic_partition_list_new(16);
        s->last_commit = core_mono_ms();
        s->commit_attempt = 0;
        s->next_commit = 0;
        return CORE_OK;
    }
    /* The offsets stay pending and are retried with backoff. CORE_ERR_STATE:
     * a rebalance is under way (or this member's generation is gone); those
     * of partitions that stay ours are committed once it is over, the revoke
     * drops those that move (their next owner writes the records again,
     * idempotent), a loss drops all. */
    core_metric_inc(s->m_commit_fail);
    s->commit_attempt++;
    s->next_commit = core_mono_ms() + core_backoff_delay_ms(&s->bo, s->commit_attempt);
    core_log_warn(rc == CORE_ERR_STATE
                      ? "commit refused during a rebalance: retried once it is over"
                      : "offset commit failed: retried with backoff",
                  CLF_S("sink", s->pl->name), CLF_S("error", err),
                  CLF_I("attempt", s->commit_attempt));
    return rc;
}

/* At the end: commit, retrying with backoff while the grace period lasts. */
void sink_commit_final(core_sink_t *s)
{
    core_err_t rc;

    while ((rc = sink_commit_pending(s, (int)(core_lifecycle_remaining_ms() > 0
                                                  ? core_lifecycle_remaining_ms()
                                                  : 1000))) != CORE_OK &&
           s->pending->cnt > 0 && !core_lifecycle_forced()) {
        int64_t left = core_lifecycle_remaining_ms();
        if (rc == CORE_ERR_STATE) { /* the close's revoke tries once more */
            core_log_warn("offsets not committed at the end (a rebalance): the records come "
                          "again",
                          CLF_S("sink", s->pl->name));
            return;
        }
        int64_t d = s->next_commit - core_mono_ms();
        if (!core_lifecycle_stopping())
            left = 1000;
        if (left <= 0 || d >= left) {
            core_log_warn("offsets not committed before the end of the grace period: the "
                          "records come again",
                          CLF_S("sink", s->pl->name));
            return;
        }
        if (d > 0) {
            struct timespec ts = { d / 1000, (d % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
}

void sink_rewind_if_needed(core_sink_t *s)
{
    char err[512];

    if (!s->need_rewind)
        return;
    if (s->nfly > 0 || sink_cur(s)->nitems > 0) /* they would come twice */
        sink_batches_drop(s, "rewinding to the committed offsets");
    s->need_rewind = false;
    if (core_kafka_consumer_assigned(s->c) == 0)
        return;
    if (core_kafka_consumer_rewind(s->c, 10000, err, sizeof(err)) != CORE_OK) {
        /* the position is past records that were dropped: nothing more is
         * taken (what comes is dropped) until a rewind succeeds, or the
         * records after them would be committed over the gap */
        s->need_rewind = true;
        s->rewind_failures++;
        core_log_warn("rewind to the committed offsets failed: retried, records meanwhile "
                      "dropped",
                      CLF_S("sink", s->pl->name), CLF_S("error", err),
                      CLF_I("attempt", s->rewind_failures));
        int64_t d = core_backoff_delay_ms(&s->bo, s->rewind_failures);
        (void)core_lifecycle_wait(d < 1000 ? d : 1000);
        return;
    }
    s->rewind_failures = 0;
}

