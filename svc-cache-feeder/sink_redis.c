/* sink_redis.c — svc-cache-feeder's Redis sink plugin for core_sink.
 *
 * prepare() builds a record's part of the version-guard script
 * (feeder_prepare) into the feeder_record the engine keeps for it
 * (plugin.data_size), so a batch's records lie in one array, as
 * feeder_send / feeder_recv / feeder_exec take them. send() pipelines a
 * batch without waiting and recv() reads its replies later, up to
 * batch.inflight batches in flight while the next one is prepared; flush()
 * runs a batch in one round trip (the engine's re-run after a RETRY).
 *
 * Outcomes: cached, deleted, stale_skipped (reason "duplicate" or "older");
 * a record Redis refused (a wrong-type key) is ERROR, audited "rejected"
 * (the feeder has no dead-letter topic). A lost connection, a timeout, a
 * busy Redis or refused credentials are RETRY: the engine pauses
 * consumption, backs off and writes every batch in flight again, oldest
 * first; the version guard makes the re-run harmless.
 *
 * Threads: every callback but ready() runs on the sink's main thread (no
 * writer thread: the connection is that thread's). ready() reads one
 * atomic flag. */
#include "cache_feeder.h"

#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLY_MAX 66 /* batch.inflight (at most 64) + 2: send times kept */

/* ---- metrics -------------------------------------------------------------- */

static struct {
    core_metric_family_t *ops;    /* {dataset, op, outcome} */
    core_metric_family_t *stale;  /* {dataset, reason} */
    core_metric_family_t *purged; /* {dataset} */
    core_metric_t *batch_size;
    core_metric_t *rtt;
    core_metric_t *outages;
    core_metric_t *paused;
} M;

void feeder_metrics_init(void)
{
    static const char *const l_ops[] = { "dataset", "op", "outcome", NULL };
    static const char *const l_stale[] = { "dataset", "reason", NULL };
    static const char *const l_ds[] = { "dataset", NULL };
    static const double size_buckets[] = { 1,   2,    5,    10,   25,  50,   100,
                                           250, 500, 1000, 2500, 5000, 10000 };
    core_metrics_t *m = core_metrics_global();
    char err[256];

    M.ops = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_operations_total",
                                "Records handled, by operation and outcome", l_ops, NULL, 0, err,
                                sizeof(err));
    M.stale = core_metrics_family(
        m, CORE_METRIC_COUNTER, "tributary_cache_stale_skips_total",
        "Writes skipped because Redis holds an equal (duplicate) or newer (older) version",
        l_stale, NULL, 0, err, sizeof(err));
    M.purged = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_purged_total",
                                   "Records removed by bulk-reload purges", l_ds, NULL, 0, err,
                                   sizeof(err));
    M.batch_size = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_cache_batch_size",
                            "Commands per pipelined round trip", NULL, size_buckets,
                            CORE_ARRAY_SIZE(size_buckets), err, sizeof(err)),
        NULL);
    M.rtt = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_cache_batch_roundtrip_seconds",
                            "Time to run one pipelined batch in Redis", NULL, NULL, 0, err,
                            sizeof(err)),
        NULL);
    M.outages = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_cache_redis_outages_total",
                            "Times consumption was paused because Redis failed", NULL, NULL, 0,
                            err, sizeof(err)),
        NULL);
    M.paused = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_cache_paused",
                            "1 while consumption is paused for Redis", NULL, NULL, 0, err,
                            sizeof(err)),
        NULL);
}

void feeder_metric_purged(const char *dataset, uint64_t n)
{
    core_metric_add(core_metrics_series1(M.purged, dataset), (double)n);
}

/* ---- readiness ------------------------------------------------------------ */

static atomic_bool redis_up;
/* Why the writes paused (went_down), for readiness; "" before any. */
static pthread_mutex_t down_lock = PTHREAD_MUTEX_INITIALIZER;
static char down_reason[256];

bool feeder_redis_ready(void *opaque, char *reason, size_t reason_size)
{
    (void)opaque;
    if (atomic_load(&redis_up))
        return true;
    pthread_mutex_lock(&down_lock);
    if (down_reason[0])
        snprintf(reason, reason_size, "unavailable: %s", down_reason);
    else
        snprintf(reason, reason_size, "not connected");
    pthread_mutex_unlock(&down_lock);
    return false;
}

static void set_down_reason(const char *err)
{
    pthread_mutex_lock(&down_lock);
    snprintf(down_reason, sizeof(down_reason), "%s", err ? err : "");
    pthread_mutex_unlock(&down_lock);
}

void feeder_redis_set_up(bool up)
{
    atomic_store(&redis_up, up);
}

/* ---- the plugin's state ----------------------------------------------------- */

/* Series of one dataset, looked up once: ops[op][outcome] with op add /
 * update / delete / unknown and outcome cached / deleted / stale_skipped /
 * rejected; stale[older, duplicate]. Counts are added once per batch. */
enum { OUT_CACHED, OUT_DELETED, OUT_STALE, OUT_REJECTED, NOUT };
enum { OPI_ADD, OPI_UPDATE, OPI_DELETE, OPI_UNKNOWN, NOPI };
typedef struct ds_metrics {
    core_metric_t *ops[NOPI][NOUT];
    core_metric_t *stale[2];
    uint32_t n_ops[NOPI][NOUT];
    uint32_t n_stale[2];
} ds_metrics;

typedef struct rsink {
    const feeder_sink_conf *c;
    ds_metrics *dm;          /* parallel to c->ds */
    double sent[FLY_MAX];    /* send times of the batches in flight, oldest at head */
    size_t sent_head, sent_n;
    bool down;               /* a write failed and none succeeded since */
} rsink;

static int rs_init(core_sink_t *sink, void *conf, void **ctxp, char *errstr, size_t errstr_size)
{
    static const char *const ops[NOPI] = { "add", "update", "delete", "unknown" };
    static const char *const outs[NOUT] = { "cached", "deleted", "stale_skipped", "rejected" };
    const feeder_sink_conf *c = conf;
    size_t nds = 0;
    rsink *s;

    (void)core_sink_datasets(sink, &nds);
    if (nds != c->nds) {
        core_errstr(errstr, errstr_size, "redis sink: %zu datasets for %zu sink datasets", c->nds,
                    nds);
        return CORE_EX_SOFTWARE;
    }
    s = calloc(1, sizeof(*s));
    if (s)
        s->dm = calloc(c->nds, sizeof(*s->dm));
    if (!s || !s->dm) {
        free(s);
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_EX_SOFTWARE;
    }
    s->c = c;
    for (size_t d = 0; d < c->nds; d++) {
        for (int o = 0; o < NOPI; o++)
            for (int k = 0; k < NOUT; k++)
                s->dm[d].ops[o][k] = core_metrics_series(
                    M.ops, (const char *const[]){ c->ds[d].name, ops[o], outs[k], NULL });
        s->dm[d].stale[0] = core_metrics_series2(M.stale, c->ds[d].name, "older");
        s->dm[d].stale[1] = core_metrics_series2(M.stale, c->ds[d].name, "duplicate");
    }
    *ctxp = s;
    return 0;
}

static void rs_exit(void *ctx)
{
    rsink *s = ctx;

    if (s->down)
        core_metric_set(M.paused, 0);
    free(s->dm);
    free(s);
}

static bool rs_ready(void *ctx, char *reason, size_t reason_size)
{
    return feeder_redis_ready(ctx, reason, reason_size);
}

/* ---- records ---------------------------------------------------------------- */

static core_sink_res_t rs_prepare(void *ctx, core_sink_record *rec, char *errstr,
                                  size_t errstr_size)
{
    rsink *s = ctx;
    feeder_record *x = rec->data;
    int rc = feeder_prepare(s->c->f, &s->c->ds[rec->dataset], s->c->cat, rec->rkm->payload,
                            rec->rkm->len, x, errstr, errstr_size);

    if (rc == CORE_OK) {
        rec->id = x->id;
        rec->key = x->key;
        rec->batch_id = x->batch_id;
        /* an UPDATE whose old_key differs from its key moves the record */
        rec->old_key = x->old_key && strcmp(x->old_key, x->key) != 0 ? x->old_key : NULL;
        rec->version = x->version;
        rec->digest = x->digest;
        rec->has_digest = true;
        return CORE_SINK_OK;
    }
    return rc == CORE_ERR_NOMEM ? CORE_SINK_FATAL : CORE_SINK_ERROR;
}

static void rs_release(void *ctx, core_sink_record *rec)
{
    (void)ctx;
    feeder_record_clear(rec->data);
}

/* The batch's records as one array: the engine lays the plugin's data out
 * contiguously per batch (core_sink_plugin.data_size). */
static feeder_record *batch_array(core_sink_record *const *recs, size_t n)
{
    feeder_record *fr = recs[0]->data;

    assert((feeder_record *)recs[n - 1]->data == fr + (n - 1));
    return fr;
}

/* ---- outcomes ------------------------------------------------------------------ */

static void went_down(rsink *s, int rc, const char *err)
{
    if (rc == CORE_ERR_INVALID)
        core_log_error("redis refused the connection (credentials?): retrying",
                       CLF_S("error", err));
    if (s->down)
        return;
    s->down = true;
    set_down_reason(err);
    feeder_redis_set_up(false);
    core_metric_inc(M.outages);
    core_metric_set(M.paused, 1);
    core_log_warn("redis unavailable: pausing consumption", CLF_S("error", err));
}

static void came_back(rsink *s)
{
    if (!s->down)
        return;
    s->down = false;
    feeder_redis_set_up(true);
    core_metric_set(M.paused, 0);
    core_log_info("redis back: resuming consumption");
}

/* A feeder call's code as the engine's result: trouble with Redis is
 * RETRY (the batch is written again after a backoff). */
static core_sink_res_t res_of(rsink *s, int rc, const char *err)
{
    if (rc == CORE_OK)
        return CORE_SINK_OK;
    if (rc == CORE_ERR_NOMEM)
        return CORE_SINK_FATAL;
    went_down(s, rc, err);
    return CORE_SINK_RETRY;
}

/* Redis answered the batch: each record's outcome for its audit event. */
static void take_results(rsink *s, core_sink_record *const *recs, size_t n, double t_sent)
{
    core_metric_observe(M.rtt, core_mono_s() - t_sent);
    core_metric_observe(M.batch_size, (double)n);
    for (size_t i = 0; i < n; i++) {
        core_sink_record *r = recs[i];
        const feeder_record *x = r->data;
        switch (x->result) {
        case FEEDER_RES_CACHED: r->outcome = "cached"; break;
        case FEEDER_RES_DELETED: r->outcome = "deleted"; break;
        case FEEDER_RES_STALE:
            r->outcome = "stale_skipped";
            snprintf(r->reason, sizeof(r->reason), "%s", x->duplicate ? "duplicate" : "older");
            break;
        default:
            r->res = CORE_SINK_ERROR;
            snprintf(r->reason, sizeof(r->reason), "%s", x->error[0] ? x->error : "redis: no result");
            break;
        }
    }
    came_back(s);
}

static core_sink_res_t rs_flush(void *ctx, core_sink_record *const *recs, size_t n,
                                char *errstr, size_t errstr_size)
{
    rsink *s = ctx;
    double t0 = core_mono_s();
    int rc = feeder_exec(s->c->f, batch_array(recs, n), n, errstr, errstr_size);

    if (rc != CORE_OK)
        return res_of(s, rc, errstr);
    take_results(s, recs, n, t0);
    return CORE_SINK_OK;
}

static core_sink_res_t rs_send(void *ctx, core_sink_record *const *recs, size_t n,
                               char *errstr, size_t errstr_size)
{
    rsink *s = ctx;
    int rc = feeder_send(s->c->f, batch_array(recs, n), n, errstr, errstr_size);

    if (rc == CORE_OK && s->sent_n < FLY_MAX)
        s->sent[(s->sent_head + s->sent_n++) % FLY_MAX] = core_mono_s();
    return res_of(s, rc, errstr);
}

static core_sink_res_t rs_recv(void *ctx, core_sink_record *const *recs, size_t n,
                               char *errstr, size_t errstr_size)
{
    rsink *s = ctx;
    double t_sent = core_mono_s();
    int rc;

    if (s->sent_n > 0) {
        t_sent = s->sent[s->sent_head];
        s->sent_head = (s->sent_head + 1) % FLY_MAX;
        s->sent_n--;
    }
    rc = feeder_recv(s->c->f, batch_array(recs, n), n, errstr, errstr_size);
    if (rc != CORE_OK)
        return res_of(s, rc, errstr);
    take_results(s, recs, n, t_sent);
    return CORE_SINK_OK;
}

/* Every batch in flight is forgotten: their replies go with the connection
 * (replies left on it would be taken for the next batch's). */
static void rs_drop(void *ctx)
{
    rsink *s = ctx;

    if (core_redis_inflight(s->c->r) > 0)
        core_redis_disconnect(s->c->r);
    s->sent_head = s->sent_n = 0;
}

/* A batch is accounted for: the feeder's counters, added once per batch. */
static void rs_accounted(void *ctx, const core_sink_record *recs, size_t n)
{
    rsink *s = ctx;

    for (size_t i = 0; i < n; i++) {
        const core_sink_record *r = &recs[i];
        ds_metrics *dm = &s->dm[r->dataset];
        const feeder_record *x = r->data;
        int opi, outi = OUT_REJECTED;

        if (!x) { /* never prepared: undecodable, empty, of another dataset */
            dm->n_ops[OPI_UNKNOWN][OUT_REJECTED]++;
            continue;
        }
        opi = x->op == CORE_AVRO_OP_DELETE   ? OPI_DELETE
              : x->op == CORE_AVRO_OP_UPDATE ? OPI_UPDATE
                                             : OPI_ADD;
        if (r->res != CORE_SINK_ERROR) {
            if (x->result == FEEDER_RES_CACHED) {
                outi = OUT_CACHED;
            } else if (x->result == FEEDER_RES_DELETED) {
                outi = OUT_DELETED;
            } else if (x->result == FEEDER_RES_STALE) {
                outi = OUT_STALE;
                dm->n_stale[x->duplicate ? 1 : 0]++;
            }
        }
        dm->n_ops[opi][outi]++;
    }
    for (size_t d = 0; d < s->c->nds; d++) {
        ds_metrics *dm = &s->dm[d];
        for (int o = 0; o < NOPI; o++)
            for (int k = 0; k < NOUT; k++)
                if (dm->n_ops[o][k]) {
                    core_metric_add(dm->ops[o][k], dm->n_ops[o][k]);
                    dm->n_ops[o][k] = 0;
                }
        for (int k = 0; k < 2; k++)
            if (dm->n_stale[k]) {
                core_metric_add(dm->stale[k], dm->n_stale[k]);
                dm->n_stale[k] = 0;
            }
    }
}

const core_sink_plugin feeder_sink_plugin = {
    .name = "redis",
    .decode = CORE_SINK_DECODE_NONE, /* feeder_prepare decodes, with its per-schema plans */
    .outcome_ok = "cached",
    .outcome_dead = "rejected",
    .init = rs_init,
    .prepare = rs_prepare,
    .flush = rs_flush,
    .send = rs_send,
    .recv = rs_recv,
    .drop = rs_drop,
    .release = rs_release,
    .ready = rs_ready,
    .exit = rs_exit,
    .data_size = sizeof(feeder_record),
    .accounted = rs_accounted,
};
