/* consume.c — poll audit.events, apply in batches, commit (consume.h). */
#include "consume.h"
#include "event.h"

#include "tributary/core_config.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"

#include <stdlib.h>
#include <string.h>

typedef struct loop {
    recon_state_t *st;
    const recon_consume_opts *o;
    core_kafka_consumer_t *c;
    rd_kafka_message_t **msgs;
    recon_input *in;
    size_t n;
    recon_consume_stats stats;
    core_metric_t *m_applied, *m_bad, *m_skipped, *m_apply_s, *m_errors;
    /* audit lag (daemon) */
    core_metric_t *m_lag_s, *m_lag_msgs;
    int64_t newest_ts;          /* the newest event time applied; RECON_NONE: none yet */
    int64_t *applied_next;      /* per partition: the next offset to apply, -1: none yet */
    int32_t napplied;
    int64_t lag_at;             /* when the lag gauges were set last (monotonic ms) */
} loop;

static void metrics_init(loop *L)
{
    static const char *const labels[] = { "result", NULL };
    core_metrics_t *m = core_metrics_global();
    core_metric_family_t *f =
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_recon_audit_events_total",
                            "Audit events read by svc-recon, by result", labels, NULL, 0, NULL, 0);
    L->m_applied = core_metrics_series1(f, "applied");
    L->m_bad = core_metrics_series1(f, "bad");
    L->m_skipped = core_metrics_series1(f, "skipped");
    f = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_recon_apply_seconds",
                            "One PostgreSQL transaction applying a batch of audit events", NULL,
                            core_metrics_default_buckets, core_metrics_default_nbuckets, NULL, 0);
    L->m_apply_s = core_metrics_series(f, NULL);
    f = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_recon_apply_errors_total",
                            "Failed state transactions (applied again)", NULL, NULL, 0, NULL, 0);
    L->m_errors = core_metrics_series(f, NULL);
    f = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_recon_audit_lag_seconds",
                            "Now minus the event time of the newest audit event applied", NULL,
                            NULL, 0, NULL, 0);
    L->m_lag_s = core_metrics_series(f, NULL);
    f = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_recon_audit_lag_messages",
                            "Audit events not applied yet: high watermark minus the next offset "
                            "to apply, summed over the assigned partitions",
                            NULL, NULL, 0, NULL, 0);
    L->m_lag_msgs = core_metrics_series(f, NULL);
}

/* Remember the next offset to apply of a partition (after a commit). */
static void applied_note(loop *L, int32_t p, int64_t next)
{
    if (p < 0)
        return;
    if (p >= L->napplied) {
        int32_t n = p + 1;
        int64_t *v = realloc(L->applied_next, (size_t)n * sizeof(*v));
        if (!v)
            return; /* the gauge falls back to the fetch position */
        for (int32_t i = L->napplied; i < n; i++)
            v[i] = -1;
        L->applied_next = v;
        L->napplied = n;
    }
    if (next > L->applied_next[p])
        L->applied_next[p] = next;
}

/* The lag gauges (daemon), at most once a second: the newest event time
 * applied against the clock, and per assigned partition its high watermark
 * (librdkafka's cached one: no request) minus the next offset to apply
 * (the state's, else the fetch position). */
static void lag_update(loop *L)
{
    rd_kafka_t *rk = core_kafka_consumer_handle(L->c);
    rd_kafka_topic_partition_list_t *as = NULL;
    int64_t now = core_mono_ms();
    double msgs = 0;

    if (now - L->lag_at < 1000)
        return;
    L->lag_at = now;
    if (L->newest_ts != RECON_NONE) {
        double lag = (double)(core_now_ms() - L->newest_ts) / 1000.0;
        core_metric_set(L->m_lag_s, lag > 0 ? lag : 0);
    }
    if (rd_kafka_assignment(rk, &as) != RD_KAFKA_RESP_ERR_NO_ERROR || !as)
        return;
    rd_kafka_position(rk, as);
    for (int i = 0; i < as->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &as->elems[i];
        int64_t lo = 0, hi = 0, pos = tp->offset;
        if (rd_kafka_get_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
            continue;
        if (tp->partition < L->napplied && L->applied_next[tp->partition] >= 0)
            pos = L->applied_next[tp->partition];
        if (pos < 0)
            pos = lo; /* nothing fetched yet: all of it is behind */
        if (hi > pos)
            msgs += (double)(hi - pos);
    }
    rd_kafka_topic_partition_list_destroy(as);
    core_metric_set(L->m_lag_msgs, msgs);
}

/* Daemon: seek every partition assigned to its stored offset. */
static void on_assign(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    loop *L = user;
    int32_t maxp = -1;
    int64_t *next;
    char err[512];

    (void)lost;
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition > maxp)
            maxp = parts->elems[i].partition;
    if (maxp < 0 || !(next = calloc((size_t)maxp + 1, sizeof(*next))))
        return;
    if (recon_state_offsets(L->st, next, (size_t)maxp + 1, err, sizeof(err)) != CORE_OK) {
        /* the Kafka committed offsets are at most the stored ones: the
         * state skips what it has already */
        core_log_warn("stored audit offsets unreadable; starting from the committed ones",
                      CLF_S("reason", err));
        free(next);
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (next[p->partition] < 0)
            continue;
        if (core_kafka_consumer_seek(c, p->topic, p->partition, next[p->partition], 10000, err,
                                     sizeof(err)) != CORE_OK)
            core_log_warn("seek to the stored audit offset failed", CLF_S("topic", p->topic),
                          CLF_I("partition", p->partition),
                          CLF_I("offset", next[p->partition]), CLF_S("reason", err));
        else
            core_log_info("audit partition resumes at its stored offset",
                          CLF_I("partition", p->partition), CLF_I("offset", next[p->partition]));
    }
    free(next);
}

static void drop_batch(loop *L)
{
    for (size_t i = 0; i < L->n; i++)
        rd_kafka_message_destroy(L->msgs[i]);
    L->n = 0;
}

/* Apply the batch in hand, retrying while PostgreSQL fails; then commit
 * the Kafka offsets (daemon). @returns 0, or -1 when stopped meanwhile
 * (the batch is dropped: the stored offsets say where to resume). */
static int flush(loop *L, char *errstr, size_t errstr_size)
{
    core_backoff bo = { 200, 10000, 2.0, 0.5, 0 };
    recon_apply_stats s;
    int attempt = 0;

    if (!L->n)
        return 0;
    for (;;) {
        double t0 = core_mono_s();
        core_err_t e = recon_state_apply(L->st, L->in, L->n, &s, errstr, errstr_size);
        if (e == CORE_OK) {
            core_metric_observe(L->m_apply_s, core_mono_s() - t0);
            break;
        }
        core_metric_inc(L->m_errors);
        core_log_warn("audit events not applied; retrying", CLF_S("reason", errstr),
                      CLF_I("events", (int64_t)L->n), CLF_I("attempt", attempt));
        if (core_lifecycle_stopping() || (L->o->catch_up && attempt >= 8)) {
            drop_batch(L);
            return -1;
        }
        core_lifecycle_wait(core_backoff_delay_ms(&bo, attempt++));
    }
    L->stats.applied += s.applied;
    L->stats.bad += s.bad;
    L->stats.skipped += s.skipped;
    L->stats.transactions++;
    if (s.newest_ts != RECON_NONE && (L->newest_ts == RECON_NONE || s.newest_ts > L->newest_ts))
        L->newest_ts = s.newest_ts;
    for (size_t i = 0; i < L->n; i++)
        applied_note(L, L->msgs[i]->partition, L->msgs[i]->offset + 1);
    core_metric_add(L->m_applied, (double)s.applied);
    core_metric_add(L->m_bad, (double)s.bad);
    core_metric_add(L->m_skipped, (double)s.skipped);
    if (s.bad)
        core_log_warn("bad audit events counted", CLF_I("count", (int64_t)s.bad));
    if (!L->o->catch_up) {
        rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
        char err[256];
        for (size_t i = 0; i < L->n; i++)
            core_kafka_offsets_add_message(offs, L->msgs[i]);
        if (core_kafka_consumer_commit_offsets(L->c, offs, err, sizeof(err)) != CORE_OK)
            core_log_warn("kafka commit failed (the stored offsets stay authoritative)",
                          CLF_S("reason", err));
        rd_kafka_topic_partition_list_destroy(offs);
    }
    drop_batch(L);
    return 0;
}

/* Catch-up: assign every partition of the topic from its stored offset.
 * *nparts is 0 when the topic does not exist yet (nothing to read). */
static int assign_all(loop *L, int *nparts, char *errstr, size_t errstr_size)
{
    rd_kafka_t *rk = core_kafka_consumer_handle(L->c);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, L->o->topic, NULL);
    rd_kafka_resp_err_t err;
    int64_t deadline = core_mono_ms() + L->o->catch_up_timeout_ms;
    int rc = -1;

    *nparts = 0;
    for (;;) {
        err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1) {
            rd_kafka_resp_err_t te = md->topics[0].err;
            if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                rc = 0;
                break;
            }
            if (!te) {
                *nparts = md->topics[0].partition_cnt;
                rc = 0;
                break;
            }
            err = te;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (core_mono_ms() > deadline || core_lifecycle_stopping()) {
            core_errstr(errstr, errstr_size, "kafka: metadata of %s: %s", L->o->topic,
                        rd_kafka_err2str(err));
            break;
        }
        core_lifecycle_wait(200);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (rc != 0 || *nparts == 0)
        return rc;

    int64_t *next = calloc((size_t)*nparts, sizeof(*next));
    if (!next) {
        core_errstr(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (recon_state_offsets(L->st, next, (size_t)*nparts, errstr, errstr_size) != CORE_OK) {
        free(next);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(*nparts);
    for (int p = 0; p < *nparts; p++)
        rd_kafka_topic_partition_list_add(l, L->o->topic, p)->offset =
            next[p] >= 0 ? next[p] : RD_KAFKA_OFFSET_BEGINNING;
    free(next);
    rc = core_kafka_consumer_assign(L->c, l, errstr, errstr_size) == CORE_OK ? 0 : -1;
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int recon_consume_run(recon_state_t *st, const recon_consume_opts *o, recon_consume_stats *stats,
                      char *errstr, size_t errstr_size)
{
    loop L = { 0 };
    core_kafka_consumer_opts co = { 0 };
    core_kafka_prop eof[] = { { "enable.partition.eof", "true" } };
    const char *topics[1] = { o->topic };
    int rc = 0, nparts = 0, eofs = 0;
    bool *at_end = NULL;
    int64_t first_ms = 0, deadline = core_mono_ms() + o->catch_up_timeout_ms;

    L.st = st;
    L.o = o;
    L.newest_ts = RECON_NONE;
    metrics_init(&L);
    L.msgs = calloc((size_t)o->batch_max, sizeof(*L.msgs));
    L.in = calloc((size_t)o->batch_max, sizeof(*L.in));
    if (!L.msgs || !L.in) {
        core_errstr(errstr, errstr_size, "out of memory");
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    co.cfg = o->cfg;
    co.group_id = o->group_id;
    if (o->catch_up) {
        co.overrides = eof;
        co.noverrides = 1;
    } else {
        co.on_assign = on_assign;
        co.hook_user = &L;
    }
    if (!(L.c = core_kafka_consumer_new(&co, errstr, errstr_size))) {
        rc = CORE_EX_CONFIG;
        goto out;
    }
    if (o->catch_up) {
        if (assign_all(&L, &nparts, errstr, errstr_size) != 0) {
            rc = CORE_EX_UNAVAILABLE;
            goto out;
        }
        if (nparts == 0)
            goto out;
        if (!(at_end = calloc((size_t)nparts, sizeof(*at_end)))) {
            rc = CORE_EX_SOFTWARE;
            goto out;
        }
    } else if (core_kafka_consumer_subscribe(L.c, topics, 1, errstr, errstr_size) != CORE_OK) {
        rc = CORE_EX_UNAVAILABLE;
        goto out;
    }

    int64_t next_tick = core_mono_ms() + o->tick_ms;
    while (!core_lifecycle_stopping()) {
        int wait = 100;
        if (o->tick && !o->catch_up && !L.n && core_mono_ms() >= next_tick) {
            o->tick(st, o->tick_arg);
            next_tick = core_mono_ms() + o->tick_ms;
        }
        if (L.n)
            wait = (int)(first_ms + o->batch_ms - core_mono_ms());
        rd_kafka_message_t *m = core_kafka_consumer_poll(L.c, wait > 0 ? wait : 0);
        if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (o->catch_up && m->partition >= 0 && m->partition < nparts &&
                !at_end[m->partition]) {
                at_end[m->partition] = true;
                eofs++;
            }
            rd_kafka_message_destroy(m);
            m = NULL;
        } else if (m && m->err) {
            if (core_kafka_consumer_fatal(L.c, errstr, errstr_size)) {
                rd_kafka_message_destroy(m);
                rc = CORE_EX_UNAVAILABLE;
                break;
            }
            rd_kafka_message_destroy(m);
            m = NULL;
        } else if (m) {
            if (!L.n)
                first_ms = core_mono_ms();
            L.msgs[L.n] = m;
            L.in[L.n] = (recon_input){ m->partition, m->offset, m->payload, m->len };
            L.n++;
        }
        if (L.n && (L.n == (size_t)o->batch_max || core_mono_ms() >= first_ms + o->batch_ms ||
                    (o->catch_up && eofs == nparts))) {
            if (flush(&L, errstr, errstr_size) != 0) {
                rc = CORE_EX_UNAVAILABLE;
                break;
            }
        }
        if (o->catch_up && eofs == nparts && !L.n)
            break;
        if (!o->catch_up)
            lag_update(&L);
        if (o->catch_up && core_mono_ms() > deadline) {
            core_errstr(errstr, errstr_size,
                        "catch-up: %d of %d audit partitions read to their end within %d ms",
                        eofs, nparts, o->catch_up_timeout_ms);
            rc = CORE_EX_UNAVAILABLE;
            break;
        }
    }
    if (rc == 0 && L.n && flush(&L, errstr, errstr_size) != 0)
        rc = CORE_EX_UNAVAILABLE;
    drop_batch(&L);
    if (L.c && !o->catch_up) {
        char err[256];
        core_kafka_consumer_close(L.c, err, sizeof(err));
    }
out:
    if (stats)
        *stats = L.stats;
    drop_batch(&L);
    core_kafka_consumer_free(L.c);
    free(L.msgs);
    free(L.in);
    free(L.applied_next);
    free(at_end);
    return rc;
}
