/* persister.c — svc-persister's sink plugins for core_sink: "postgres",
 * "mongodb" and "mysql", one set of callbacks over the database interface
 * (pers_sink), each plugin with its database's configuration table.
 *
 * The engine consumes <dataset>.valid, batches up to batch.size records or
 * batch.timeout.ms, and runs flush() on its writer thread while the next
 * batch fills (one batch in flight: memory stays bounded to two batches);
 * it commits the offsets only after flush() said OK and the batch's DLQ and
 * audit records were delivered, and pauses, backs off and retries behind
 * its circuit breaker while flush() answers RETRY (a database outage).
 *
 * prepare() (main thread) decodes a record into the pers_record the engine
 * keeps for it (plugin.data_size) and queues its Redis copy (backup.c);
 * flush() (writer thread) reduces the batch to one write per key and
 * writes it (reduce.c), giving each record its fate: persisted,
 * stale_skipped, or refused (ERROR: to the DLQ with the database's reason);
 * accounted() (main thread) counts the persister's metrics and forgets the
 * Redis copies; waiting() (main thread, while the engine waits or before it
 * hands a batch over) sends the queued copies and, when the database has
 * not answered for PING_MS, pings it, so /readyz notices an outage even
 * while records wait for batch.timeout.ms. The connection is shared by
 * flush() and that ping under db_mu; the ping only takes it when free. */
#include "persister.h"

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long the database may go without a word before waiting() pings it. */
#define PING_MS 1000

/* ---- readiness (static: the HTTP thread may ask before and after a run) -- */

static struct {
    pthread_mutex_t mu;
    bool db_ok;
    char reason[320];
} ready = { PTHREAD_MUTEX_INITIALIZER, false, "database: not connected yet" };

bool pers_ready(void *opaque, char *reason, size_t reason_size)
{
    bool ok;

    (void)opaque;
    pthread_mutex_lock(&ready.mu);
    ok = ready.db_ok;
    if (!ok)
        snprintf(reason, reason_size, "%s", ready.reason);
    pthread_mutex_unlock(&ready.mu);
    return ok;
}

void pers_ready_set(bool ok, const char *reason)
{
    pthread_mutex_lock(&ready.mu);
    ready.db_ok = ok;
    snprintf(ready.reason, sizeof(ready.reason), "%s", ok || !reason ? "" : reason);
    pthread_mutex_unlock(&ready.mu);
}

/* ---- metrics -------------------------------------------------------------- */

enum { O_WRITTEN, O_STALE, O_DEAD, NO };

static struct {
    core_metric_family_t *rows, *retries, *batch, *flush, *dlq;
    core_metric_t *depth;
} M;

void pers_metrics_init(void)
{
    static const double batch_buckets[] = { 1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };
    static const char *const ds_sink_outcome[] = { "dataset", "sink", "outcome", NULL };
    static const char *const sink_l[] = { "sink", NULL };
    static const char *const ds_l[] = { "dataset", NULL };
    core_metrics_t *m = core_metrics_global();

    M.rows = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_persister_rows_total",
                                 "Records handled by the sink: written, stale, dead",
                                 ds_sink_outcome, NULL, 0, NULL, 0);
    M.retries = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_persister_retries_total",
                                    "Batch writes retried after a database failure", sink_l,
                                    NULL, 0, NULL, 0);
    M.batch = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                  "tributary_persister_batch_size_records",
                                  "Records per flushed batch", sink_l, batch_buckets,
                                  CORE_ARRAY_SIZE(batch_buckets), NULL, 0);
    M.flush = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_persister_flush_seconds",
                                  "Time to write a batch to the database", sink_l, NULL, 0, NULL,
                                  0);
    M.depth = core_metrics_series(
        core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_persister_buffer_records",
                            "Records buffered, not yet written", NULL, NULL, 0, NULL, 0),
        NULL);
    M.dlq = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_persister_dlq_total",
                                "Records sent to the dead-letter topic", ds_l, NULL, 0, NULL, 0);
    core_metric_set(M.depth, 0);
}

/* ---- the plugin's state ----------------------------------------------------- */

typedef struct pctx {
    const pers_plugin_conf *c;
    pers_sink *db;
    core_avro_decoder_t *dec;   /* main thread: prepare() */
    pthread_mutex_t db_mu;      /* the connection: flush() or the idle ping */
    atomic_llong answered_ms;   /* the database's last answer (core_mono_ms) */
    int64_t held;               /* records prepared and not released (main thread) */
    pers_record **arr;          /* flush()'s records (writer thread) */
    size_t arr_cap;
    core_metric_t *m_retries, *m_batch, *m_flush;
    core_metric_t **m_rows;     /* [dataset * NO + outcome] */
    core_metric_t **m_dlq;      /* [dataset] */
    uint64_t *n_rows;           /* counts of one accounted batch, as m_rows */
} pctx;

static void p_exit(void *vctx)
{
    pctx *x = vctx;

    core_avro_decoder_free(x->dec);
    pthread_mutex_destroy(&x->db_mu);
    free(x->arr);
    free(x->m_rows);
    free(x->m_dlq);
    free(x->n_rows);
    free(x);
}

static int p_init(core_sink_t *sink, void *conf, void **ctxp, char *errstr, size_t errstr_size)
{
    static const char *const outs[NO] = { "written", "stale", "dead" };
    const pers_plugin_conf *c = conf;
    size_t nds = 0;
    pctx *x;

    (void)core_sink_datasets(sink, &nds);
    if (nds != c->nds || !c->db) {
        core_errstr(errstr, errstr_size, "persister sink: %zu datasets for %zu sink datasets",
                    c->nds, nds);
        return CORE_EX_SOFTWARE;
    }
    if (!(x = calloc(1, sizeof(*x)))) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_EX_SOFTWARE;
    }
    pthread_mutex_init(&x->db_mu, NULL);
    x->c = c;
    x->db = c->db;
    x->m_rows = calloc(nds * NO, sizeof(*x->m_rows));
    x->n_rows = calloc(nds * NO, sizeof(*x->n_rows));
    x->m_dlq = calloc(nds, sizeof(*x->m_dlq));
    x->dec = core_avro_decoder_new(c->cat, errstr, errstr_size);
    if (!x->m_rows || !x->n_rows || !x->m_dlq || !x->dec) {
        if (x->dec)
            core_errstr(errstr, errstr_size, "out of memory");
        p_exit(x);
        return CORE_EX_SOFTWARE;
    }
    x->m_retries = core_metrics_series1(M.retries, x->db->name);
    x->m_batch = core_metrics_series1(M.batch, x->db->name);
    x->m_flush = core_metrics_series1(M.flush, x->db->name);
    for (size_t d = 0; d < nds; d++) {
        for (int o = 0; o < NO; o++)
            x->m_rows[d * NO + o] = core_metrics_series(
                M.rows, (const char *const[]){ c->ds[d].name, x->db->name, outs[o], NULL });
        x->m_dlq[d] = core_metrics_series1(M.dlq, c->ds[d].name);
    }
    atomic_store(&x->answered_ms, core_mono_ms()); /* reached at start (main.c) */
    if (c->backup)
        (void)pers_backup_restore(c->backup, x->db, c->ds, c->nds, c->cat, c->batch_size,
                                  &c->backoff); /* stopping meanwhile: the loop ends at once */
    *ctxp = x;
    return 0;
}

static bool p_ready(void *vctx, char *reason, size_t reason_size)
{
    (void)vctx;
    return pers_ready(NULL, reason, reason_size);
}

/* ---- records ------------------------------------------------------------------ */

static core_sink_res_t p_prepare(void *vctx, core_sink_record *rec, char *errstr,
                                 size_t errstr_size)
{
    pctx *x = vctx;
    pers_record *r = rec->data;
    const rd_kafka_message_t *m = rec->rkm;

    if (pers_record_decode(r, &x->c->ds[rec->dataset], x->dec, core_sink_record_topic(rec),
                           m->partition, m->offset, m->key, m->key_len, m->payload,
                           m->len) != 0) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_SINK_FATAL;
    }
    x->held++;
    core_metric_set(M.depth, (double)x->held);
    if (r->fate == PERS_DEAD) { /* undecodable, or not of the topic's dataset */
        core_errstr(errstr, errstr_size, "%s", r->error ? r->error : "cannot be decoded");
        rec->error_class = strcmp(r->error_class, "poison") == 0 ? "poison" : "invalid";
        return CORE_SINK_ERROR;
    }
    rec->id = r->id;
    rec->key = r->key;
    rec->batch_id = r->batch_id;
    rec->old_key = r->old_key; /* set only when the UPDATE moves the record */
    rec->version = r->version;
    rec->digest = r->digest;
    rec->has_digest = true;
    if (x->c->backup)
        pers_backup_add(x->c->backup, r);
    return CORE_SINK_OK;
}

static void p_release(void *vctx, core_sink_record *rec)
{
    pctx *x = vctx;
    pers_record *r = rec->data;

    if (r->topic) {
        x->held--;
        core_metric_set(M.depth, (double)x->held);
    }
    pers_record_clear(r);
}

/* Writer thread: the batch through the database, every record's fate. */
static core_sink_res_t p_flush(void *vctx, core_sink_record *const *recs, size_t n,
                               char *errstr, size_t errstr_size)
{
    pctx *x = vctx;
    double t0 = core_mono_s();
    pers_res_t r;

    if (n > x->arr_cap) {
        pers_record **a = realloc(x->arr, n * sizeof(*a));
        if (!a) {
            core_errstr(errstr, errstr_size, "out of memory");
            return CORE_SINK_RETRY;
        }
        x->arr = a;
        x->arr_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        x->arr[i] = recs[i]->data;
    pthread_mutex_lock(&x->db_mu);
    r = pers_write_all(x->db, x->c->ds, x->c->nds, x->arr, n, errstr, errstr_size);
    pthread_mutex_unlock(&x->db_mu);
    if (r != PERS_OK) {
        if (!core_lifecycle_give_up(NULL, 0)) { /* the stop's, not the database's fault */
            core_metric_inc(x->m_retries);
            pers_ready_set(false, errstr);
        }
        return CORE_SINK_RETRY;
    }
    atomic_store(&x->answered_ms, core_mono_ms());
    pers_ready_set(true, NULL);
    for (size_t i = 0; i < n; i++) {
        pers_record *pr = x->arr[i];
        if (pr->fate == PERS_DEAD) {
            recs[i]->res = CORE_SINK_ERROR;
            recs[i]->error_class = strcmp(pr->error_class, "poison") == 0 ? "poison" : "invalid";
            snprintf(recs[i]->reason, sizeof(recs[i]->reason), "%s",
                     pr->error ? pr->error : "refused");
        } else {
            recs[i]->outcome = pr->fate == PERS_STALE ? "stale_skipped" : "persisted";
        }
    }
    core_metric_observe(x->m_batch, (double)n);
    core_metric_observe(x->m_flush, core_mono_s() - t0);
    core_log_debug("batch written", CLF_I("records", n), CLF_D("seconds", core_mono_s() - t0));
    return CORE_SINK_OK;
}

/* Main thread: a batch is accounted for (its DLQ records and audit events
 * queued): the persister's counters, and its Redis copies go. */
static void p_accounted(void *vctx, const core_sink_record *recs, size_t n)
{
    pctx *x = vctx;

    for (size_t i = 0; i < n; i++) {
        const core_sink_record *r = &recs[i];
        pers_record *pr = r->data;
        int o = r->res == CORE_SINK_ERROR        ? O_DEAD
                : pr && pr->fate == PERS_STALE ? O_STALE
                                               : O_WRITTEN;
        x->n_rows[r->dataset * NO + (size_t)o]++;
        if (pr && x->c->backup)
            pers_backup_forget(x->c->backup, pr);
    }
    for (size_t d = 0; d < x->c->nds; d++) {
        for (int o = 0; o < NO; o++) {
            uint64_t *k = &x->n_rows[d * NO + (size_t)o];
            if (*k)
                core_metric_add(x->m_rows[d * NO + (size_t)o], (double)*k);
            if (*k && o == O_DEAD)
                core_metric_add(x->m_dlq[d], (double)*k);
            *k = 0;
        }
    }
    if (x->c->backup)
        pers_backup_send(x->c->backup);
}

/* Main thread, before the engine waits or hands a batch over: the queued
 * Redis copies go out; a database not heard from for PING_MS is pinged
 * (unless flush() holds the connection: its answer will tell). */
static void p_waiting(void *vctx)
{
    pctx *x = vctx;
    char err[512] = "";
    int64_t now;
    pers_res_t r;

    if (x->c->backup)
        pers_backup_send(x->c->backup);
    now = core_mono_ms();
    if (now - atomic_load(&x->answered_ms) < PING_MS || pthread_mutex_trylock(&x->db_mu) != 0)
        return;
    r = pers_sink_ping(x->db, err, sizeof(err));
    pthread_mutex_unlock(&x->db_mu);
    atomic_store(&x->answered_ms, core_mono_ms());
    pers_ready_set(r == PERS_OK, err);
}

pers_res_t pers_sink_ping(pers_sink *s, char *errstr, size_t errstr_size)
{
    pers_res_t r;

    if (s->ping)
        return s->ping(s, errstr, errstr_size);
    if ((r = s->connect(s, errstr, errstr_size)) != PERS_OK)
        return r;
    if (s->exec(s, "SELECT 1", errstr, errstr_size) != PERS_OK) {
        s->drop(s);
        return PERS_RETRY;
    }
    return PERS_OK;
}

#define PERS_PLUGIN(plugin_name, table)                                                        \
    {                                                                                          \
        .name = plugin_name, .keys = table, .decode = CORE_SINK_DECODE_NONE,                   \
        .outcome_ok = "persisted", .outcome_dead = "dead", .init = p_init,                     \
        .prepare = p_prepare, .flush = p_flush, .release = p_release, .ready = p_ready,        \
        .exit = p_exit, .data_size = sizeof(pers_record), .accounted = p_accounted,            \
        .waiting = p_waiting, .dlq_class_name = "svc-persister",                               \
        .dlq_stage = "SINK_DATABASE_WRITE", .dlq_exc_poison = "tributary.persister.PoisonRecord", \
        .dlq_exc_refused = "tributary.persister.RowRefused",                                   \
    }

const core_sink_plugin pers_pg_plugin = PERS_PLUGIN("postgres", pers_pg_keys);
const core_sink_plugin pers_mongo_plugin = PERS_PLUGIN("mongodb", pers_mongo_keys);
const core_sink_plugin pers_mysql_plugin = PERS_PLUGIN("mysql", pers_mysql_keys);
