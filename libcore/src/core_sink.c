/* core_sink.c — the consume-batch-write-commit loop (core_sink.h).
 *
 * A ring of batch_inflight + 2 batches: nfly handed to the plugin (oldest
 * at head), then the one being filled. Batches are accounted for (DLQ,
 * audit, offsets) strictly in ring order, so an offset is never committed
 * before every record below it was written. A RETRY makes an "outage":
 * consumption paused, backoff (and the breaker), then every batch in flight
 * written again oldest first, until all are answered or the partitions go
 * or the grace period of a stop ends (then they are dropped, uncommitted:
 * redelivered). Records fetched while paused are dropped and the
 * partitions rewound to their committed offsets afterwards (librdkafka
 * 2.0.2 may not refetch what a pause purged). */
#include "tributary/core_sink.h"

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

#define MAX_OUTCOMES 8 /* distinct audit outcomes counted per dataset */
#define COMMIT_FLUSH_MS 10000

typedef struct batch {
    core_sink_record *items; /* nitems, consumption order */
    core_sink_record **prep; /* the prepared ones (given to the plugin) */
    char *pdata;             /* plugin.data_size bytes per prepared record */
    size_t nitems, nprep;
    double t_sent;
    /* writer thread: guarded by the sink's mu */
    bool queued, done;
    core_sink_res_t res;
    bool sent_failed;        /* pipelined: send() answered RETRY */
    char err[512];
} batch;

typedef struct outcome_count {
    const char *outcome; /* static string, compared by address then text */
    core_metric_t *m;
    uint64_t n;
} outcome_count;

typedef struct ds_state {
    outcome_count oc[MAX_OUTCOMES];
    size_t noc;
    core_metric_t *dlq;
    core_metric_t *e2e; /* tributary_end_to_end_latency_seconds{sink,dataset} */
} ds_state;

struct core_sink {
    const core_sink_opts *o;
    const core_sink_plugin *pl;
    void *ctx;
    bool ctx_on;
    core_kafka_consumer_t *c;
    core_kafka_producer_t *p;
    rd_kafka_topic_t **warm;   /* the audit and DLQ topics, known to the producer from the start */
    size_t nwarm;
    core_audit_t *audit;
    core_avro_decoder_t *dec;
    core_breaker_t *breaker;
    core_backoff bo;
    ds_state *dss;
    batch *bs;
    size_t nb, head, nfly;
    int64_t batch_start;
    rd_kafka_topic_partition_list_t *pending; /* offsets of accounted batches */
    int64_t last_commit, next_commit;
    int commit_attempt;
    uint64_t failed_seen;     /* producer failures already acted upon */
    bool in_outage;           /* the revoke hook must not touch the batches */
    bool batch_lost;          /* partitions went during an outage */
    bool need_rewind;         /* records were dropped: back to committed */
    int rewind_failures;      /* consecutive failed rewinds */
    bool paused;
    int status;
    /* writer thread */
    pthread_t writer;
    bool writer_on, wquit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch **wq;               /* FIFO of queued batches, nb slots */
    size_t wq_head, wq_n;
    /* metrics */
    core_metric_t *m_batch, *m_flush, *m_retries, *m_paused, *m_commit_fail;
    core_metric_family_t *f_records;
};

/* ---- readiness: the process's (the HTTP thread may ask after run) ------ */

/* The probe named after the plugin, beside the others of the HTTP server
 * (the service's "kafka" among them): the plugin's ready(), then whether
 * writes are failing. */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static core_sink_t *ready_sink;
static atomic_bool ready_paused;

static bool sink_ready(void *opaque, char *reason, size_t reason_size)
{
    bool ok = false;

    (void)opaque;
    pthread_mutex_lock(&ready_mu);
    if (!ready_sink)
        snprintf(reason, reason_size, "not running");
    else if (ready_sink->pl->ready && !ready_sink->pl->ready(ready_sink->ctx, reason, reason_size))
        ok = false;
    else if (atomic_load(&ready_paused))
        snprintf(reason, reason_size, "writes failing, consumption paused");
    else
        ok = true;
    pthread_mutex_unlock(&ready_mu);
    return ok;
}

static void ready_publish(core_sink_t *s)
{
    pthread_mutex_lock(&ready_mu);
    ready_sink = s;
    atomic_store(&ready_paused, false);
    pthread_mutex_unlock(&ready_mu);
}

/* ---- small helpers -------------------------------------------------------- */

const char *core_sink_res_name(core_sink_res_t r)
{
    switch (r) {
    case CORE_SINK_OK: return "ok";
    case CORE_SINK_RETRY: return "retry";
    case CORE_SINK_ERROR: return "error";
    case CORE_SINK_FATAL: return "fatal";
    }
    return "unknown";
}

const char *core_sink_record_topic(const core_sink_record *rec)
{
    return rd_kafka_topic_name(rec->rkm->rkt);
}

const core_sink_dataset *core_sink_datasets(const core_sink_t *s, size_t *n)
{
    *n = s->o->ndatasets;
    return s->o->datasets;
}

static batch *cur(core_sink_t *s)
{
    return &s->bs[(s->head + s->nfly) % s->nb];
}

static void fatal(core_sink_t *s, const char *what, const char *err)
{
    core_log_error(what, CLF_S("sink", s->pl->name), CLF_S("error", err));
    s->status = CORE_EX_SOFTWARE;
    core_lifecycle_request_stop();
}

static void rec_free(core_sink_t *s, core_sink_record *r)
{
    if (r->data && s->pl->release)
        s->pl->release(s->ctx, r);
    r->data = NULL;
    rd_kafka_message_destroy((rd_kafka_message_t *)r->rkm);
    r->rkm = NULL;
}

static void batch_clear(core_sink_t *s, batch *b)
{
    for (size_t i = 0; i < b->nitems; i++)
        rec_free(s, &b->items[i]);
    b->nitems = b->nprep = 0;
    b->queued = b->done = b->sent_failed = false;
}

/* ---- the writer thread ------------------------------------------------------ */

static void *writer_main(void *arg)
{
    core_sink_t *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->wq_n == 0 && !s->wquit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->wq_n == 0)
            break;
        batch *b = s->wq[s->wq_head];
        pthread_mutex_unlock(&s->mu);
        char err[512] = "";
        core_sink_res_t r = s->pl->flush(s->ctx, b->prep, b->nprep, err, sizeof(err));
        pthread_mutex_lock(&s->mu);
        s->wq_head = (s->wq_head + 1) % s->nb;
        s->wq_n--;
        b->res = r;
        memcpy(b->err, err, sizeof(b->err));
        b->done = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void wq_push(core_sink_t *s, batch *b)
{
    pthread_mutex_lock(&s->mu);
    b->done = false;
    b->queued = true;
    s->wq[(s->wq_head + s->wq_n) % s->nb] = b;
    s->wq_n++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static core_sink_res_t wq_wait(core_sink_t *s, batch *b, char *err, size_t errsize)
{
    core_sink_res_t r;

    pthread_mutex_lock(&s->mu);
    while (!b->done)
        pthread_cond_wait(&s->cv, &s->mu);
    r = b->res;
    b->queued = false;
    snprintf(err, errsize, "%s", b->err);
    pthread_mutex_unlock(&s->mu);
    return r;
}

static bool wq_done(core_sink_t *s, batch *b)
{
    pthread_mutex_lock(&s->mu);
    bool d = b->done;
    pthread_mutex_unlock(&s->mu);
    return d;
}

/* ---- handing batches to the plugin ------------------------------------------ */

static void prep_reset(batch *b)
{
    for (size_t i = 0; i < b->nprep; i++) {
        b->prep[i]->res = CORE_SINK_OK;
        b->prep[i]->outcome = NULL;
        b->prep[i]->error_class = NULL;
        b->prep[i]->reason[0] = '\0';
        b->prep[i]->field = NULL;
    }
}

/* Start the batch: pipelined send, queued to the writer, or (inline) the
 * whole write now, its answer kept for recv. */
static void batch_send(core_sink_t *s, batch *b)
{
    b->t_sent = core_mono_s();
    b->sent_failed = false;
    if (b->nprep == 0) {
        b->res = CORE_SINK_OK;
        return;
    }
    prep_reset(b);
    if (s->o->writer_thread) {
        wq_push(s, b);
    } else if (s->pl->send) {
        b->res = s->pl->send(s->ctx, b->prep, b->nprep, b->err, sizeof(b->err));
        b->sent_failed = b->res != CORE_SINK_OK;
    } else {
        b->res = s->pl->flush(s->ctx, b->prep, b->nprep, b->err, sizeof(b->err));
    }
}

static core_sink_res_t batch_recv(core_sink_t *s, batch *b, char *err, size_t errsize)
{
    if (b->nprep == 0)
        return CORE_SINK_OK;
    if (s->o->writer_thread)
        return wq_wait(s, b, err, errsize);
    if (s->pl->send && !b->sent_failed) {
        core_sink_res_t r = s->pl->recv(s->ctx, b->prep, b->nprep, err, errsize);
        return r;
    }
    snprintf(err, errsize, "%s", b->err);
    return b->res;
}

/* Write the batch again and wait for the answer (after a RETRY). */
static core_sink_res_t batch_redo(core_sink_t *s, batch *b, char *err, size_t errsize)
{
    if (b->nprep == 0)
        return CORE_SINK_OK;
    prep_reset(b);
    b->t_sent = core_mono_s();
    if (s->o->writer_thread) {
        wq_push(s, b);
        return wq_wait(s, b, err, errsize);
    }
    return s->pl->flush(s->ctx, b->prep, b->nprep, err, errsize);
}

/* Every batch in flight is to be written again: the writer finishes what
 * it holds; a pipelining plugin forgets its replies. */
static void inflight_abandon(core_sink_t *s)
{
    char err[512];

    if (s->o->writer_thread) {
        for (size_t i = 0; i < s->nfly; i++) {
            batch *b = &s->bs[(s->head + i) % s->nb];
            if (b->queued)
                (void)wq_wait(s, b, err, sizeof(err));
        }
    }
    if (s->pl->drop)
        s->pl->drop(s->ctx);
}

/* Drop every batch, in flight and filling: nothing of them is committed,
 * the records come again (from the rewind, or to the next owner). */
static void batches_drop(core_sink_t *s, const char *why)
{
    size_t n = 0;

    inflight_abandon(s);
    for (size_t i = 0; i <= s->nfly; i++) {
        batch *b = &s->bs[(s->head + i) % s->nb];
        n += b->nitems;
        batch_clear(s, b);
    }
    if (n)
        core_log_warn("batches dropped, not committed: their records come again",
                      CLF_S("sink", s->pl->name), CLF_S("why", why), CLF_I("records", n));
    s->head = s->nfly = 0;
    s->need_rewind = true;
}

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
    batch_clear(s, b);
}

/* The oldest batch in flight is answered: account for it, move on. */
static void oldest_done(core_sink_t *s, core_sink_res_t res, const char *err)
{
    batch_account(s, &s->bs[s->head], res, err);
    s->head = (s->head + 1) % s->nb;
    s->nfly--;
}

/* ---- commits ------------------------------------------------------------------ */

/* Commit the pending offsets once the audit and DLQ records are delivered.
 * A failed delivery: nothing is committed and the records since the last
 * commit are read again. @returns CORE_OK or the error (retried later). */
static core_err_t commit_pending(core_sink_t *s, int flush_ms)
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
static void commit_final(core_sink_t *s)
{
    core_err_t rc;

    while ((rc = commit_pending(s, (int)(core_lifecycle_remaining_ms() > 0
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

static void rewind_if_needed(core_sink_t *s)
{
    char err[512];

    if (!s->need_rewind)
        return;
    if (s->nfly > 0 || cur(s)->nitems > 0) /* they would come twice */
        batches_drop(s, "rewinding to the committed offsets");
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

/* ---- outages ------------------------------------------------------------------ */

static void set_paused(core_sink_t *s, bool on, const char *err)
{
    char e[256];

    if (on == s->paused)
        return;
    s->paused = on;
    atomic_store(&ready_paused, on);
    core_metric_set(s->m_paused, on ? 1 : 0);
    if (on) {
        core_log_warn("writes failing: consumption paused", CLF_S("sink", s->pl->name),
                      CLF_S("error", err));
        if (core_kafka_consumer_pause(s->c, NULL, 0, e, sizeof(e)) != CORE_OK)
            core_log_warn("pause failed", CLF_S("error", e));
    } else {
        core_log_info("writes succeed again: consumption resumed", CLF_S("sink", s->pl->name));
        if (core_kafka_consumer_resume(s->c, NULL, 0, e, sizeof(e)) != CORE_OK)
            core_log_warn("resume failed", CLF_S("error", e));
    }
}

static bool give_up(const core_sink_t *s)
{
    return s->batch_lost || core_lifecycle_give_up(NULL, 0);
}

/* A batch in flight answered RETRY: pause, back off, write every batch in
 * flight again oldest first until all are answered; drop them when the
 * partitions go or the stop's grace period ends. */
static void outage(core_sink_t *s, const char *first_err)
{
    char err[512];
    int attempt = 0;

    snprintf(err, sizeof(err), "%s", first_err);
    s->in_outage = true;
    s->batch_lost = false;
    inflight_abandon(s);
    core_breaker_failure(s->breaker, core_mono_ms());
    for (;;) {
        core_metric_inc(s->m_retries);
        set_paused(s, true, err);
        int64_t delay = core_backoff_delay_ms(&s->bo, ++attempt);
        int64_t w = core_breaker_wait_ms(s->breaker, core_mono_ms());
        if (w > delay)
            delay = w;
        core_log_warn("batch write failed: retrying", CLF_S("sink", s->pl->name),
                      CLF_S("error", err), CLF_I("attempt", attempt), CLF_I("retry_in_ms", delay));
        int64_t until = core_mono_ms() + delay;
        while (core_mono_ms() < until || !core_breaker_allow(s->breaker, core_mono_ms())) {
            if (give_up(s))
                goto drop;
            rd_kafka_message_t *m = core_kafka_consumer_poll(s->c, 50);
            if (m) { /* paused: read again after the rewind */
                s->need_rewind = true;
                rd_kafka_message_destroy(m);
            }
            if (s->p)
                core_kafka_producer_poll(s->p, 0);
        }
        if (give_up(s))
            goto drop;
        core_sink_res_t r = CORE_SINK_OK;
        while (s->nfly > 0) {
            batch *b = &s->bs[s->head];
            if (s->o->writer_thread && b->done &&
                (b->res == CORE_SINK_OK || b->res == CORE_SINK_ERROR)) {
                /* the writer wrote it after the one that failed */
                snprintf(err, sizeof(err), "%s", b->err);
                r = b->res;
            } else {
                r = batch_redo(s, b, err, sizeof(err));
            }
            if (r == CORE_SINK_RETRY || r == CORE_SINK_FATAL)
                break;
            oldest_done(s, r, err);
        }
        if (r == CORE_SINK_FATAL) {
            fatal(s, "sink failed", err);
            goto drop;
        }
        if (r == CORE_SINK_RETRY) {
            core_breaker_failure(s->breaker, core_mono_ms());
            continue;
        }
        break;
    }
    core_breaker_success(s->breaker, core_mono_ms());
    core_log_info("batches written after retries", CLF_S("sink", s->pl->name),
                  CLF_I("attempts", attempt));
    s->in_outage = false;
    set_paused(s, false, NULL);
    if (s->need_rewind) {
        commit_pending(s, COMMIT_FLUSH_MS);
        rewind_if_needed(s);
    }
    return;
drop:
    batches_drop(s, s->batch_lost ? "partitions revoked during retries" : "stopping");
    s->in_outage = false;
    if (!core_lifecycle_stopping())
        set_paused(s, false, NULL);
}

/* Hand the filling batch over, then take answers until at most keep
 * batches are in flight (and, without waiting, the writer's finished ones). */
static void pipeline_step(core_sink_t *s, size_t keep)
{
    char err[512];
    batch *b = cur(s);

    if (b->nitems > 0) {
        batch_send(s, b);
        s->nfly++;
    }
    while (s->nfly > 0) {
        batch *o = &s->bs[s->head];
        if (s->nfly <= keep && !(s->o->writer_thread && o->queued && wq_done(s, o)))
            break;
        core_sink_res_t r = batch_recv(s, o, err, sizeof(err));
        if (r == CORE_SINK_OK || r == CORE_SINK_ERROR) {
            oldest_done(s, r, err);
        } else if (r == CORE_SINK_RETRY) {
            outage(s, err);
            return;
        } else {
            fatal(s, "sink failed", err);
            batches_drop(s, "fatal error");
            return;
        }
    }
}

/* ---- rebalances ------------------------------------------------------------------ */

/* Drop the pending offsets of partitions that go: their next owner reads
 * from the last commit. */
static void pending_forget(core_sink_t *s, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        rd_kafka_topic_partition_list_del(s->pending, parts->elems[i].topic,
                                          parts->elems[i].partition);
}

/* Before partitions go: finish what is in flight and in hand (one try: no
 * backoff inside a rebalance) and commit; drop it all when they are lost. */
static void on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    core_sink_t *s = user;
    char err[512];

    (void)c;
    if (s->in_outage || lost) {
        s->batch_lost = true;
        if (lost) {
            if (!s->in_outage)
                batches_drop(s, "partitions lost");
            rd_kafka_topic_partition_list_destroy(s->pending);
            s->pending = rd_kafka_topic_partition_list_new(16);
        } else {
            pending_forget(s, parts); /* never commit for a partition's next owner */
        }
        return;
    }
    batch *b = cur(s);
    if (b->nitems > 0) {
        batch_send(s, b);
        s->nfly++;
    }
    while (s->nfly > 0) {
        core_sink_res_t r = batch_recv(s, &s->bs[s->head], err, sizeof(err));
        if (r != CORE_SINK_OK && r != CORE_SINK_ERROR) {
            core_log_warn("batches not written before a rebalance: the next owner writes them",
                          CLF_S("sink", s->pl->name), CLF_S("error", err));
            if (r == CORE_SINK_FATAL)
                fatal(s, "sink failed", err);
            batches_drop(s, "partitions revoked");
            break;
        }
        oldest_done(s, r, err);
    }
    if (commit_pending(s, COMMIT_FLUSH_MS) != CORE_OK) {
        core_log_warn("offsets not committed before a rebalance: the next owner writes the "
                      "records again",
                      CLF_S("sink", s->pl->name), CLF_I("partitions", parts->cnt));
        pending_forget(s, parts); /* the rest stays ours: committed after the rebalance */
    }
}

/* ---- records ------------------------------------------------------------------ */

static int ds_by_topic(const core_sink_t *s, const char *topic)
{
    for (size_t i = 0; i < s->o->ndatasets; i++)
        if (strcmp(s->o->datasets[i].topic, topic) == 0)
            return (int)i;
    return -1;
}

static void handle_message(core_sink_t *s, rd_kafka_message_t *m)
{
    batch *b = cur(s);
    core_sink_record *r = &b->items[b->nitems];
    int d = ds_by_topic(s, rd_kafka_topic_name(m->rkt));
    core_sink_res_t res;

    if (d < 0) { /* only the datasets' topics are subscribed */
        rd_kafka_message_destroy(m);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->rkm = m;
    r->dataset = (size_t)d;
    r->version = CORE_AUDIT_NONE;
    b->nitems++;
    if (!m->payload || m->len == 0) {
        snprintf(r->reason, sizeof(r->reason),
                 "empty record value (a tombstone is not a tributary record)");
        goto poison;
    }
    if (s->pl->decode == CORE_SINK_DECODE_AVRO) {
        const char *dsname = s->o->datasets[d].name;
        if (core_avro_decoder_decode(s->dec, m->payload, m->len, &r->schema, &r->value,
                                     r->reason, sizeof(r->reason)) != CORE_OK)
            goto poison;
        if (strcmp(core_avro_schema_dataset(r->schema), dsname) != 0) {
            snprintf(r->reason, sizeof(r->reason), "a record of dataset %s on the topic of %s",
                     core_avro_schema_dataset(r->schema), dsname);
            goto poison;
        }
    }
    if (s->pl->data_size) { /* the slot of the next prepared record */
        r->data = b->pdata + b->nprep * s->pl->data_size;
        memset(r->data, 0, s->pl->data_size);
    }
    res = s->pl->prepare(s->ctx, r, r->reason, sizeof(r->reason));
    r->value = NULL;
    if (res == CORE_SINK_OK) {
        b->prep[b->nprep++] = r;
        return;
    }
    if (r->data && s->pl->release)
        s->pl->release(s->ctx, r);
    r->data = NULL;
    r->id = r->key = r->batch_id = NULL;
    r->has_digest = false;
    r->version = CORE_AUDIT_NONE;
    if (res != CORE_SINK_ERROR) {
        fatal(s, "preparing a record failed", r->reason);
        b->nitems--;
        rd_kafka_message_destroy(m);
        return;
    }
poison:
    r->res = CORE_SINK_ERROR;
    r->poison = true;
    core_log_error(s->o->datasets[d].dlq_topic ? "record cannot be written: to the dead-letter topic"
                                               : "record rejected",
                   CLF_S("sink", s->pl->name), CLF_S("dataset", s->o->datasets[d].name),
                   CLF_S("topic", rd_kafka_topic_name(m->rkt)), CLF_I("partition", m->partition),
                   CLF_I("offset", m->offset), CLF_S("reason", r->reason));
}

/* ---- setup and the loop ------------------------------------------------------------ */

static int check_opts(const core_sink_opts *o, char *errstr, size_t errstr_size)
{
    const core_sink_plugin *pl = o->plugin;

    if (!pl || !pl->name || !pl->prepare || !pl->flush || !pl->outcome_ok || !pl->outcome_dead) {
        core_errstr(errstr, errstr_size,
                    "sink plugin: name, prepare, flush, outcome_ok and outcome_dead are required");
        return CORE_EX_SOFTWARE;
    }
    if ((pl->send == NULL) != (pl->recv == NULL) || (pl->send && o->writer_thread)) {
        core_errstr(errstr, errstr_size,
                    "sink plugin %s: send and recv go together, and not with a writer thread",
                    pl->name);
        return CORE_EX_SOFTWARE;
    }
    if (o->ndatasets == 0 || !o->datasets) {
        core_errstr(errstr, errstr_size, "sink %s: no dataset", pl->name);
        return CORE_EX_CONFIG;
    }
    for (size_t i = 0; i < o->ndatasets; i++)
        if (!o->datasets[i].name || !o->datasets[i].topic) {
            core_errstr(errstr, errstr_size, "sink %s: a dataset without name or topic", pl->name);
            return CORE_EX_CONFIG;
        }
    if (o->batch_size < 1 || o->batch_size > 1000000 || o->batch_wait_ms < 0 ||
        o->batch_inflight < 0 || o->batch_inflight > 64 || o->commit_interval_ms < 0) {
        core_errstr(errstr, errstr_size,
                    "sink %s: batch.size 1..1000000, batch.inflight 0..64, times >= 0", pl->name);
        return CORE_EX_CONFIG;
    }
    if ((o->audit || pl->decode == CORE_SINK_DECODE_AVRO) && !o->catalog) {
        core_errstr(errstr, errstr_size, "sink %s: audit events and decoding need the catalogue",
                    pl->name);
        return CORE_EX_SOFTWARE;
    }
    return 0;
}

static int sink_setup(core_sink_t *s, char *errstr, size_t errstr_size)
{
    static const char *const l_sink[] = { "sink", NULL };
    static const char *const l_ds[] = { "sink", "dataset", NULL };
    static const char *const l_rec[] = { "sink", "dataset", "outcome", NULL };
    static const double size_buckets[] = { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                           5000, 10000 };
    static const core_kafka_prop pdefaults[] = { { "linger.ms", "5" },
                                                 { "compression.codec", "lz4" } };
    const core_sink_opts *o = s->o;
    core_metrics_t *m = o->metrics ? o->metrics : core_metrics_global();
    const char *name = s->pl->name;
    char bname[96];

    s->bo = o->backoff.base_ms > 0 ? o->backoff : (core_backoff)CORE_BACKOFF_DEFAULT;
    s->f_records = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_records_total",
                                       "Records a sink handled, by audit outcome", l_rec, NULL,
                                       0, errstr, errstr_size);
    core_metric_family_t *f_dlq =
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_dlq_total",
                            "Records a sink sent to the dead-letter topic", l_ds, NULL, 0, errstr,
                            errstr_size);
    s->m_batch = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_sink_batch_records",
                            "Records per batch written", l_sink, size_buckets,
                            CORE_ARRAY_SIZE(size_buckets), errstr, errstr_size),
        name);
    s->m_flush = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_sink_flush_seconds",
                            "Time from handing a batch to the plugin to its answer", l_sink, NULL,
                            0, errstr, errstr_size),
        name);
    s->m_retries = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_retries_total",
                            "Batch writes answered RETRY", l_sink, NULL, 0, errstr, errstr_size),
        name);
    s->m_paused = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_sink_paused",
                            "1 while consumption is paused for failing writes", l_sink, NULL, 0,
                            errstr, errstr_size),
        name);
    s->m_commit_fail = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_commit_failures_total",
                            "Offset commits that failed and are retried", l_sink, NULL, 0,
                            errstr, errstr_size),
        name);
    core_metric_family_t *f_e2e = core_kafka_latency_family(m, errstr, errstr_size);
    if (!s->f_records || !f_dlq || !f_e2e || !s->m_batch || !s->m_flush || !s->m_retries ||
        !s->m_paused || !s->m_commit_fail)
        return CORE_EX_SOFTWARE;

    s->nb = (size_t)o->batch_inflight + 2;
    s->bs = calloc(s->nb, sizeof(*s->bs));
    s->wq = calloc(s->nb, sizeof(*s->wq));
    s->dss = calloc(o->ndatasets, sizeof(*s->dss));
    s->pending = rd_kafka_topic_partition_list_new(16);
    if (o->breaker_name)
        snprintf(bname, sizeof(bname), "%s", o->breaker_name);
    else
        snprintf(bname, sizeof(bname), "sink_%s", name);
    s->breaker = core_breaker_new(bname, o->breaker_threshold > 0 ? o->breaker_threshold : 5,
                                  o->breaker_open_ms > 0 ? o->breaker_open_ms : 10000, 1);
    if (!s->bs || !s->wq || !s->dss || !s->pending || !s->breaker)
        goto nomem;
    for (size_t i = 0; i < s->nb; i++) {
        s->bs[i].items = calloc((size_t)o->batch_size, sizeof(*s->bs[i].items));
        s->bs[i].prep = calloc((size_t)o->batch_size, sizeof(*s->bs[i].prep));
        if (s->pl->data_size &&
            !(s->bs[i].pdata = calloc((size_t)o->batch_size, s->pl->data_size)))
            goto nomem;
        if (!s->bs[i].items || !s->bs[i].prep)
            goto nomem;
    }
    for (size_t d = 0; d < o->ndatasets; d++) {
        s->dss[d].dlq = core_metrics_series2(f_dlq, name, o->datasets[d].name);
        s->dss[d].e2e = core_metrics_series2(f_e2e, name, o->datasets[d].name);
    }
    if (s->pl->decode == CORE_SINK_DECODE_AVRO &&
        !(s->dec = core_avro_decoder_new(o->catalog, errstr, errstr_size)))
        return CORE_EX_SOFTWARE;

    core_kafka_producer_opts po = { .cfg = o->cfg, .defaults = pdefaults,
                                    .ndefaults = CORE_ARRAY_SIZE(pdefaults),
                                    .overrides = o->kafka_overrides,
                                    .noverrides = o->nkafka_overrides, .metrics = o->metrics };
    if (!(s->p = core_kafka_producer_new(&po, errstr, errstr_size)))
        return CORE_EX_CONFIG;
    /* A topic handle makes the producer ask for the topic's metadata now
     * (and the broker create it, where it creates topics on demand), while
     * the consumer joins its group: else the first batch's audit and DLQ
     * records wait for it, and with them the first commit (about 2 s for a
     * new audit topic). */
    if (!(s->warm = calloc(o->ndatasets + 1, sizeof(*s->warm))))
        goto nomem;
    if (o->audit)
        s->warm[s->nwarm++] = rd_kafka_topic_new(core_kafka_producer_handle(s->p),
                                                 o->audit_topic ? o->audit_topic
                                                                : CORE_AUDIT_TOPIC,
                                                 NULL);
    for (size_t d = 0; d < o->ndatasets; d++)
        if (o->datasets[d].dlq_topic)
            s->warm[s->nwarm++] = rd_kafka_topic_new(core_kafka_producer_handle(s->p),
                                                     o->datasets[d].dlq_topic, NULL);
    if (o->audit && !(s->audit = core_audit_new(s->p, o->catalog, o->audit_topic,
                                                o->stage ? o->stage : name, errstr,
                                                errstr_size)))
        return CORE_EX_CONFIG;
    core_kafka_consumer_opts co = { .cfg = o->cfg, .overrides = o->kafka_overrides,
                                    .noverrides = o->nkafka_overrides,
                                    .on_revoke = on_revoke, .hook_user = s,
                                    .metrics = o->metrics };
    if (!o->cfg || !core_kafka_consumer_config(o->cfg, "group.id"))
        co.group_id = o->group_id;
    const core_kafka_prop cdefaults[] = { { "group.instance.id", o->group_instance_id } };
    if (o->group_instance_id) { /* under kafka.* (defaults) */
        co.defaults = cdefaults;
        co.ndefaults = 1;
    }
    if (!(s->c = core_kafka_consumer_new(&co, errstr, errstr_size)))
        return CORE_EX_CONFIG;
    return 0;
nomem:
    core_errstr(errstr, errstr_size, "out of memory");
    return CORE_EX_SOFTWARE;
}

static int sink_subscribe(core_sink_t *s, char *errstr, size_t errstr_size)
{
    const char **topics = calloc(s->o->ndatasets, sizeof(*topics));
    core_err_t e;

    if (!topics) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_EX_SOFTWARE;
    }
    for (size_t i = 0; i < s->o->ndatasets; i++)
        topics[i] = s->o->datasets[i].topic;
    e = core_kafka_consumer_subscribe(s->c, topics, s->o->ndatasets, errstr, errstr_size);
    free(topics);
    return e == CORE_OK ? 0 : CORE_EX_CONFIG;
}

/* The loop until a stop. The clock (about 50 ns a read) is read when time
 * may have passed: after a poll that waited, when a batch starts, after a
 * write, and every 32 records. */
static void sink_loop(core_sink_t *s)
{
    const core_sink_opts *o = s->o;
    char err[512];
    int64_t now = core_mono_ms();
    unsigned since_clock = 0;

    s->last_commit = now;
    while (!core_lifecycle_stopping()) {
        batch *b = cur(s);
        int timeout = 200;
        bool waited = false;
        rd_kafka_message_t *m;

        if (b->nitems > 0) {
            int64_t left = s->batch_start + o->batch_wait_ms - now;
            timeout = left > 0 ? (int)left : 0;
        } else if (s->nfly > 0) {
            timeout = o->writer_thread ? 5 : 0; /* answers are due */
        }
        if (timeout > 200) /* notice a stop */
            timeout = 200;
        if (s->pending->cnt > 0 && timeout > 50)
            timeout = 50;
        m = core_kafka_consumer_poll(s->c, 0);
        if (!m && timeout > 0) {
            if (s->pl->waiting)
                s->pl->waiting(s->ctx);
            m = core_kafka_consumer_poll(s->c, timeout);
            waited = true;
        }
        if (!m || waited || b->nitems == 0 || ++since_clock >= 32) {
            now = core_mono_ms();
            since_clock = 0;
        }
        if (s->need_rewind) { /* a revoke dropped batches of partitions still ours */
            if (m)
                rd_kafka_message_destroy(m);
            m = NULL;
            commit_pending(s, COMMIT_FLUSH_MS);
            rewind_if_needed(s);
        }
        if (m && m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                core_kafka_consumer_fatal(s->c, err, sizeof(err));
                rd_kafka_message_destroy(m);
                fatal(s, "kafka consumer fatal error", err);
                break;
            }
            rd_kafka_message_destroy(m);
            m = NULL;
        }
        if (m) {
            if (cur(s)->nitems == 0)
                s->batch_start = now;
            handle_message(s, m);
        }
        b = cur(s);
        if (b->nitems > 0 && ((int64_t)b->nitems >= o->batch_size ||
                              now - s->batch_start >= o->batch_wait_ms)) {
            if (s->pl->waiting)
                s->pl->waiting(s->ctx);
            pipeline_step(s, (size_t)o->batch_inflight);
            now = core_mono_ms();
        } else if (!m && s->nfly > 0) {
            pipeline_step(s, o->writer_thread ? (size_t)o->batch_inflight : 0);
            now = core_mono_ms();
        }
        core_kafka_producer_poll(s->p, 0);
        if (s->pending->cnt > 0 && now - s->last_commit >= o->commit_interval_ms &&
            now >= s->next_commit) {
            commit_pending(s, COMMIT_FLUSH_MS);
            now = core_mono_ms();
        }
        if (s->need_rewind) {
            commit_pending(s, COMMIT_FLUSH_MS);
            rewind_if_needed(s);
        }
    }
}

static void sink_free(core_sink_t *s)
{
    if (s->writer_on) {
        pthread_mutex_lock(&s->mu);
        s->wquit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
    }
    for (size_t i = 0; s->bs && i < s->nb; i++) {
        if (s->bs[i].items)
            batch_clear(s, &s->bs[i]);
        free(s->bs[i].items);
        free(s->bs[i].prep);
        free(s->bs[i].pdata);
    }
    ready_publish(NULL);
    if (s->ctx_on && s->pl->exit)
        s->pl->exit(s->ctx);
    core_kafka_consumer_free(s->c);
    core_audit_free(s->audit);
    for (size_t i = 0; i < s->nwarm; i++)
        if (s->warm[i])
            rd_kafka_topic_destroy(s->warm[i]);
    free(s->warm);
    if (s->p) {
        int64_t left = core_lifecycle_remaining_ms();
        size_t n = core_kafka_producer_flush(s->p, (int)(left > 1000 ? left : 1000));
        if (n)
            core_log_warn("audit or dead-letter records not delivered at exit",
                          CLF_S("sink", s->pl->name), CLF_I("count", n));
    }
    core_kafka_producer_free(s->p);
    core_avro_decoder_free(s->dec);
    core_breaker_free(s->breaker);
    if (s->pending)
        rd_kafka_topic_partition_list_destroy(s->pending);
    free(s->bs);
    free(s->wq);
    free(s->dss);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

int core_sink_run(const core_sink_opts *o, char *errstr, size_t errstr_size)
{
    core_sink_t s = { 0 };
    char err[512];
    int rc;

    if ((rc = check_opts(o, errstr, errstr_size)))
        return rc;
    s.o = o;
    s.pl = o->plugin;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    if ((rc = sink_setup(&s, errstr, errstr_size)))
        goto out;
    if (s.pl->init && (rc = s.pl->init(&s, o->plugin_conf, &s.ctx, errstr, errstr_size)))
        goto out;
    s.ctx_on = true;
    if (o->writer_thread) {
        if (pthread_create(&s.writer, NULL, writer_main, &s) != 0) {
            core_errstr(errstr, errstr_size, "cannot start the writer thread");
            rc = CORE_EX_SOFTWARE;
            goto out;
        }
        s.writer_on = true;
    }
    if ((rc = sink_subscribe(&s, errstr, errstr_size)))
        goto out;
    ready_publish(&s);
    if (o->http && core_http_add_ready(o->http, s.pl->name, sink_ready, NULL) != CORE_OK)
        core_log_warn("readiness probe not added", CLF_S("sink", s.pl->name));
    core_log_info("sink started", CLF_S("sink", s.pl->name), CLF_I("datasets", o->ndatasets),
                  CLF_I("batch_size", o->batch_size), CLF_I("batch_inflight", o->batch_inflight),
                  CLF_B("writer_thread", o->writer_thread));

    sink_loop(&s);

    /* drain: what is in hand and in flight, within the grace period left */
    const char *stage = core_lifecycle_stage("writing the batches in hand");
    if (s.status == 0)
        pipeline_step(&s, 0);
    if (s.nfly > 0 || cur(&s)->nitems > 0)
        batches_drop(&s, "stopping");
    core_lifecycle_stage("committing offsets");
    if (s.status == 0)
        commit_final(&s);
    core_lifecycle_stage("leaving the consumer group");
    if (core_kafka_consumer_close(s.c, err, sizeof(err)) != CORE_OK)
        core_log_warn("consumer close", CLF_S("sink", s.pl->name), CLF_S("error", err));
    core_lifecycle_stage(stage);
    rc = s.status;
    core_log_info("sink stopped", CLF_S("sink", s.pl->name), CLF_I("exit", rc));
out:
    sink_free(&s);
    return rc;
}
