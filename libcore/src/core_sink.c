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
 * 2.0.2 may not refetch what a pause purged).
 *
 * Accounting and commits: core_sink_account.c; options, clients and their
 * release: core_sink_setup.c; what the three share: core_sink_int.h. */
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

void sink_ready_publish(core_sink_t *s)
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

batch *sink_cur(core_sink_t *s)
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

void sink_batch_clear(core_sink_t *s, batch *b)
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
void sink_batches_drop(core_sink_t *s, const char *why)
{
    size_t n = 0;

    inflight_abandon(s);
    for (size_t i = 0; i <= s->nfly; i++) {
        batch *b = &s->bs[(s->head + i) % s->nb];
        n += b->nitems;
        sink_batch_clear(s, b);
    }
    if (n)
        core_log_warn("batches dropped, not committed: their records come again",
                      CLF_S("sink", s->pl->name), CLF_S("why", why), CLF_I("records", n));
    s->head = s->nfly = 0;
    s->need_rewind = true;
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
            sink_oldest_done(s, r, err);
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
        sink_commit_pending(s, COMMIT_FLUSH_MS);
        sink_rewind_if_needed(s);
    }
    return;
drop:
    sink_batches_drop(s, s->batch_lost ? "partitions revoked during retries" : "stopping");
    s->in_outage = false;
    if (!core_lifecycle_stopping())
        set_paused(s, false, NULL);
}

/* Hand the filling batch over, then take answers until at most keep
 * batches are in flight (and, without waiting, the writer's finished ones). */
static void pipeline_step(core_sink_t *s, size_t keep)
{
    char err[512];
    batch *b = sink_cur(s);

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
            sink_oldest_done(s, r, err);
        } else if (r == CORE_SINK_RETRY) {
            outage(s, err);
            return;
        } else {
            fatal(s, "sink failed", err);
            sink_batches_drop(s, "fatal error");
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
void sink_on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                           bool lost, void *user)
{
    core_sink_t *s = user;
    char err[512];

    (void)c;
    if (s->in_outage || lost) {
        s->batch_lost = true;
        if (lost) {
            if (!s->in_outage)
                sink_batches_drop(s, "partitions lost");
            rd_kafka_topic_partition_list_destroy(s->pending);
            s->pending = rd_kafka_topic_partition_list_new(16);
        } else {
            pending_forget(s, parts); /* never commit for a partition's next owner */
        }
        return;
    }
    batch *b = sink_cur(s);
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
            sink_batches_drop(s, "partitions revoked");
            break;
        }
        sink_oldest_done(s, r, err);
    }
    if (sink_commit_pending(s, COMMIT_FLUSH_MS) != CORE_OK) {
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
    batch *b = sink_cur(s);
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
    r->id = r->key = r->batch_id = r->old_key = NULL;
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

/* ---- the loop ----------------------------------------------------------------- */

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
        batch *b = sink_cur(s);
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
            sink_commit_pending(s, COMMIT_FLUSH_MS);
            sink_rewind_if_needed(s);
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
            if (sink_cur(s)->nitems == 0)
                s->batch_start = now;
            handle_message(s, m);
        }
        b = sink_cur(s);
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
            sink_commit_pending(s, COMMIT_FLUSH_MS);
            now = core_mono_ms();
        }
        if (s->need_rewind) {
            sink_commit_pending(s, COMMIT_FLUSH_MS);
            sink_rewind_if_needed(s);
        }
    }
}

int core_sink_run(const core_sink_opts *o, char *errstr, size_t errstr_size)
{
    core_sink_t s = { 0 };
    char err[512];
    int rc;

    if ((rc = sink_check_opts(o, errstr, errstr_size)))
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
    sink_ready_publish(&s);
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
    if (s.nfly > 0 || sink_cur(&s)->nitems > 0)
        sink_batches_drop(&s, "stopping");
    core_lifecycle_stage("committing offsets");
    if (s.status == 0)
        sink_commit_final(&s);
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

