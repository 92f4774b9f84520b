/* persister.c — the work loop: consume <dataset>.valid, buffer up to
 * batch.size records or batch.timeout.ms, write the batch to the sink, send
 * refused rows to <dataset>.dlq and audit events, then commit the offsets.
 *
 * Two threads. The main thread consumes, decodes and buffers; the writer
 * thread takes a full buffer (a "job"): the database transaction, then the
 * DLQ and audit records and the producer flush. The main thread commits the
 * job's offsets when it is done (the consumer is the main thread's alone).
 * While batch k is being written, batch k+1 fills. Jobs run one at a time
 * and in order, so offsets are still committed batch after batch and only
 * after the database commit. A failed job is held and retried before
 * anything newer is written: a database outage pauses consumption and
 * retries with backoff behind a circuit breaker; memory stays bounded to
 * two batches (the held job and a full buffer). */
#include "persister.h"

#include "tributary/core_audit.h"
#include "tributary/core_http.h"
#include "tributary/core_kafka.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_redis.h"
#include "tributary/core_retry.h"
#include "tributary/core_service.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

typedef struct pstate {
    const struct persister_conf *conf;
    core_service_t *svc;
    const core_avro_catalog_t *cat;
    core_avro_decoder_t *dec; /* main thread: every decode happens there */
    pers_dataset *ds;
    size_t nds;
    pers_sink *sink;
    core_kafka_consumer_t *consumer;
    core_kafka_producer_t *producer;
    core_audit_t *audit;
    core_breaker_t *breaker;
    core_backoff backoff;
    /* the buffer being filled: main thread only */
    pers_record **recs;
    char **backup_keys; /* parallel to recs when the backup is on */
    size_t n;
    int64_t first_ms;
    /* the job: the writer thread alone calls the sink and the audit
     * publisher once it runs. jstate is guarded by mu; jrecs, jkeys and jn
     * are set by the main thread while no job is pending, read by the
     * writer while it is (J_PENDING), and by the main thread again after. */
    pthread_t writer;
    bool writer_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum { J_IDLE, J_PENDING, J_DONE, J_HELD } jstate;
    bool jquit;                      /* mu */
    pers_record **jrecs;
    char **jkeys;
    size_t jn;                       /* 0: a ping, to probe the database */
    pers_res_t jres;                 /* mu, J_DONE */
    char jerr[512];                  /* mu, J_DONE */
    bool paused;
    int attempt;
    int64_t next_try_ms;
    int64_t db_seen_ms; /* the last job done: an idle database is pinged after READY_PING_MS */
    core_redis_t *redis;
    bool redis_ok;
    /* metrics */
    core_metric_family_t *m_rows, *m_retries, *m_batch, *m_flush, *m_depth, *m_backup_err,
        *m_dead, *m_e2e;
} pstate;

static const double batch_buckets[] = { 1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };

/* ---- readiness (static: the HTTP thread may ask after the loop returned) - */

/* How long an idle persister goes without a word from the database before
 * it pings it (the readiness of Kafka is checked as often). */
#define READY_PING_MS 2000

static struct {
    pthread_mutex_t mu;
    bool db_ok;
    char reason[320];
} ready = { PTHREAD_MUTEX_INITIALIZER, false, "database: not connected yet" };

static bool ready_cb(void *opaque, char *reason, size_t reason_size)
{
    bool ok;

    pthread_mutex_lock(&ready.mu);
    ok = ready.db_ok;
    if (!ok)
        snprintf(reason, reason_size, "%s", ready.reason);
    pthread_mutex_unlock(&ready.mu);
    return ok && core_service_kafka_ready(opaque, reason, reason_size);
}

void pers_ready_install(core_service_t *svc)
{
    core_http_set_ready(core_service_http(svc), ready_cb, svc);
}

void pers_ready_set(bool ok, const char *reason)
{
    pthread_mutex_lock(&ready.mu);
    ready.db_ok = ok;
    snprintf(ready.reason, sizeof(ready.reason), "%s", ok || !reason ? "" : reason);
    pthread_mutex_unlock(&ready.mu);
}

static void metrics_init(pstate *st)
{
    core_metrics_t *m = core_metrics_global();
    static const char *const ds_sink_outcome[] = { "dataset", "sink", "outcome", NULL };
    static const char *const sink_l[] = { "sink", NULL };
    static const char *const ds_l[] = { "dataset", NULL };
    st->m_rows = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_persister_rows_total",
                                     "Records handled by the sink: written, stale, dead",
                                     ds_sink_outcome, NULL, 0, NULL, 0);
    st->m_retries = core_metrics_family(m, CORE_METRIC_COUNTER,
                                        "tributary_persister_retries_total",
                                        "Batch writes retried after a database failure", sink_l,
                                        NULL, 0, NULL, 0);
    st->m_batch = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                      "tributary_persister_batch_size_records",
                                      "Records per flushed batch", sink_l, batch_buckets,
                                      CORE_ARRAY_SIZE(batch_buckets), NULL, 0);
    st->m_flush = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                      "tributary_persister_flush_seconds",
                                      "Time to write a batch and publish its DLQ and audit records",
                                      sink_l, NULL, 0, NULL, 0);
    st->m_depth = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_persister_buffer_records",
                                      "Records buffered, not yet written", NULL, NULL, 0, NULL,
                                      0);
    st->m_backup_err = core_metrics_family(m, CORE_METRIC_COUNTER,
                                           "tributary_persister_backup_errors_total",
                                           "Redis buffer backup failures (memory only meanwhile)",
                                           NULL, NULL, 0, NULL, 0);
    st->m_dead = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_persister_dlq_total",
                                     "Records sent to the dead-letter topic", ds_l, NULL, 0,
                                     NULL, 0);
    st->m_e2e = core_kafka_latency_family(m, NULL, 0);
}

/* ---- Redis backup of the buffer (seed 004) ------------------------------ */

static void backup_error(pstate *st, const char *what, const char *err)
{
    core_metric_inc(core_metrics_series(st->m_backup_err, NULL));
    if (st->redis_ok)
        core_log_warn("redis buffer backup failing: keeping the buffer in memory only",
                      CLF_S("op", what), CLF_S("error", err));
    st->redis_ok = false;
}

/* Mirror records [from, n) in Redis, one hash per record, pipelined. */
static void backup_add(pstate *st, size_t from)
{
    if (!st->redis || from >= st->n)
        return;
    const char *inst = core_service_common(st->svc)->instance_id;
    for (size_t i = from; i < st->n; i++) {
        pers_record *r = st->recs[i];
        uuid_t u;
        char us[40], key[300], part[16], off[24];
        uuid_generate(u);
        uuid_unparse_lower(u, us);
        snprintf(key, sizeof(key), "msg:buffer:%s:%s", inst, us);
        free(st->backup_keys[i]);
        st->backup_keys[i] = strdup(key);
        snprintf(part, sizeof(part), "%d", (int)r->partition);
        snprintf(off, sizeof(off), "%lld", (long long)r->offset);
        const char *argv[] = { "HSET", key, "topic", r->topic, "partition", part, "offset", off,
                               "key", r->kkey, "value", r->value };
        size_t lens[] = { 4, strlen(key), 5, strlen(r->topic), 9, strlen(part), 6, strlen(off),
                          3, r->kkeylen, 5, r->vallen };
        core_redis_append_argv(st->redis, 12, argv, lens);
    }
    char err[256];
    redisReply **rep = NULL;
    size_t nrep = 0;
    if (core_redis_pipeline_exec(st->redis, &rep, &nrep, err, sizeof(err)) != CORE_OK) {
        backup_error(st, "mirror", err);
        return;
    }
    core_redis_replies_free(rep, nrep);
    if (!st->redis_ok)
        core_log_info("redis buffer backup working again");
    st->redis_ok = true;
}

static void backup_del_keys(pstate *st, char **keys, size_t n)
{
    if (!st->redis)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keys[i])
            continue;
        const char *argv[] = { "DEL", keys[i] };
        core_redis_append_argv(st->redis, 2, argv, NULL);
        k++;
    }
    if (!k)
        return;
    char err[256];
    redisReply **rep = NULL;
    size_t nrep = 0;
    if (core_redis_pipeline_exec(st->redis, &rep, &nrep, err, sizeof(err)) != CORE_OK)
        backup_error(st, "delete", err);
    else
        core_redis_replies_free(rep, nrep);
}

static pers_dataset *ds_by_topic(pstate *st, const char *topic)
{
    for (size_t i = 0; i < st->nds; i++)
        if (!strcmp(st->ds[i].topic_valid, topic))
            return &st->ds[i];
    return NULL;
}

/* ---- the batch ---------------------------------------------------------- */

static void set_depth(pstate *st)
{
    core_metric_set(core_metrics_series(st->m_depth, NULL), (double)(st->n + st->jn));
}

static void free_records(pers_record **recs, char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pers_record_clear(recs[i]);
        free(recs[i]);
        recs[i] = NULL;
        if (keys) {
            free(keys[i]);
            keys[i] = NULL;
        }
    }
}

/* Main thread, no job pending. The Redis copies stay: they are read back on
 * the next start. */
static void drop_buffer(pstate *st, const char *why)
{
    size_t n = st->n + (st->jstate == J_HELD || st->jstate == J_DONE ? st->jn : 0);
    if (n)
        core_log_warn("dropping the buffer: its records will be redelivered", CLF_S("why", why),
                      CLF_I("records", n));
    free_records(st->recs, st->backup_keys, st->n);
    st->n = 0;
    if (st->jstate == J_HELD || st->jstate == J_DONE) {
        free_records(st->jrecs, st->jkeys, st->jn);
        st->jn = 0;
        pthread_mutex_lock(&st->mu);
        st->jstate = J_IDLE;
        pthread_mutex_unlock(&st->mu);
    }
    set_depth(st);
}

static void emit_dlq(pstate *st, pers_record *r)
{
    char part[16], off[24], err[256];
    snprintf(part, sizeof(part), "%d", (int)r->partition);
    snprintf(off, sizeof(off), "%lld", (long long)r->offset);
    const char *msg = r->error ? r->error : "refused";
    const char *exc = !strcmp(r->error_class, "poison") ? "tributary.persister.PoisonRecord"
                                                        : "tributary.persister.RowRefused";
    core_kafka_header h[] = {
        { "__connect.errors.topic", r->topic, strlen(r->topic) },
        { "__connect.errors.partition", part, strlen(part) },
        { "__connect.errors.offset", off, strlen(off) },
        { "__connect.errors.stage", "SINK_DATABASE_WRITE", 19 },
        { "__connect.errors.class.name", "svc-persister", 13 },
        { "__connect.errors.exception.class.name", exc, strlen(exc) },
        { "__connect.errors.exception.message", msg, strlen(msg) },
        { "tb.error.class", r->error_class, strlen(r->error_class) },
    };
    core_err_t e = core_kafka_produce(st->producer, r->ds->topic_dlq, r->kkey, r->kkeylen,
                                      r->value, r->vallen, h, CORE_ARRAY_SIZE(h), NULL, err,
                                      sizeof(err));
    if (e != CORE_OK)
        core_log_error("dead-letter produce failed", CLF_S("topic", r->ds->topic_dlq),
                       CLF_S("error", err));
    core_metric_inc(core_metrics_series1(st->m_dead, r->ds->name));
}

static void emit_audit(pstate *st, pers_record *r)
{
    char id[200], err[256];
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    if (r->id) {
        ev.id = r->id;
    } else {
        snprintf(id, sizeof(id), "%s/%d/%lld", r->topic, (int)r->partition, (long long)r->offset);
        ev.id = id;
    }
    ev.key = r->key;
    ev.dataset = r->ds->name;
    ev.batch_id = r->batch_id ? r->batch_id : "";
    ev.outcome = r->fate == PERS_WRITTEN ? "persisted"
                 : r->fate == PERS_STALE ? "stale_skipped"
                                         : "dead";
    ev.digest = &r->digest;
    ev.value = r->value; /* for the content digest */
    ev.value_len = r->vallen;
    ev.topic = r->topic;
    ev.partition = r->partition;
    ev.offset = r->offset;
    ev.reason = r->fate == PERS_DEAD ? r->error : NULL;
    ev.version = r->id ? r->version : CORE_AUDIT_NONE;
    if (core_audit_emit(st->audit, &ev, err, sizeof(err)) != CORE_OK)
        core_log_error("audit produce failed", CLF_S("error", err));
}

bool pers_give_up(char *errstr, size_t errstr_size)
{
    if (!core_lifecycle_stopping() || core_lifecycle_remaining_ms() > 0)
        return false;
    core_errstr(errstr, errstr_size,
                "stopping: shutdown.grace.ms is over, the batch is abandoned");
    return true;
}

/* The record takes its op's refusal: dead, with the database's error. */
static void rec_refused(pers_op *op)
{
    op->rec->fate = PERS_DEAD;
    snprintf(op->rec->error_class, sizeof(op->rec->error_class), "invalid");
    free(op->rec->error);
    op->rec->error = op->error;
    op->error = NULL;
}

/* Give the fates of one sink write to the records. @returns how many of
 * the winning primary ops the database refused (their keys in dead[]). */
static size_t apply_fates(pers_op *ops, size_t nops, const char **dead)
{
    size_t ndead = 0;
    for (size_t i = 0; i < nops; i++) {
        pers_op *op = &ops[i];
        if (op->rec->fate == PERS_DEAD)
            continue;
        if (!op->primary) {
            /* the old key's delete of a moved record: only a refusal counts */
            if (op->fate == PERS_DEAD)
                rec_refused(op);
            continue;
        }
        if (op->fate == PERS_DEAD) {
            rec_refused(op);
            dead[ndead++] = op->key;
        } else {
            op->rec->fate = op->fate;
        }
    }
    return ndead;
}

/* The records of a key whose winner the database refused were only stale
 * because of it: they go again (the next version down wins), so the final
 * state does not depend on which events shared a batch. @returns how many. */
static size_t repend_under_dead(pers_record **sub, size_t m, const char **dead, size_t ndead)
{
    size_t again = 0;
    for (size_t i = 0; i < m; i++) {
        if (sub[i]->fate != PERS_STALE || !sub[i]->key)
            continue;
        for (size_t d = 0; d < ndead; d++) {
            if (strcmp(sub[i]->key, dead[d]) == 0) {
                sub[i]->fate = PERS_PENDING;
                again++;
                break;
            }
        }
    }
    return again;
}

/* Write every dataset's part of recs[0..n). PERS_RETRY: nothing may be
 * committed (the database writes done are idempotent and will be redone).
 * The thread that owns the sink. */
static pers_res_t write_all(pstate *st, pers_record **recs, size_t n, char *errstr,
                            size_t errstr_size)
{
    pers_record **sub = malloc((n ? n : 1) * sizeof(*sub));
    const char **dead = malloc((n ? n : 1) * sizeof(*dead)); /* one per primary op at most */
    if (!sub || !dead) {
        free(sub);
        free(dead);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    pers_res_t res = PERS_OK;
    for (size_t d = 0; d < st->nds && res == PERS_OK; d++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            pers_record *r = recs[i];
            if (r->ds != &st->ds[d])
                continue;
            if (r->fate != PERS_DEAD || r->id) { /* decoded records start over */
                r->fate = PERS_PENDING;
                free(r->error);
                r->error = NULL;
            }
            sub[m++] = r;
        }
        for (;;) {
            size_t nops = 0, ndead = 0;
            pers_op *ops = pers_reduce(sub, m, &nops);
            if (nops && !ops) {
                res = PERS_RETRY;
                core_errstr(errstr, errstr_size, "out of memory");
                break;
            }
            if (nops)
                res = st->sink->write(st->sink, &st->ds[d], ops, nops, errstr, errstr_size);
            if (res == PERS_OK) {
                ndead = apply_fates(ops, nops, dead);
                for (size_t i = 0; i < m; i++)
                    if (sub[i]->fate == PERS_PENDING)
                        sub[i]->fate = PERS_WRITTEN; /* its winning op was the moved-key delete */
            }
            for (size_t i = 0; i < nops; i++)
                free(ops[i].error);
            free(ops);
            if (res != PERS_OK || ndead == 0 || repend_under_dead(sub, m, dead, ndead) == 0)
                break;
        }
    }
    free(sub);
    free(dead);
    return res;
}

/* One job, on the writer thread: database, DLQ and audit records. The
 * main thread commits the offsets and frees the records afterwards. */
static pers_res_t flush_batch(pstate *st, pers_record **recs, size_t n, char *errstr,
                              size_t errstr_size)
{
    double t0 = core_mono_s();
    pers_res_t r = write_all(st, recs, n, errstr, errstr_size);
    if (r != PERS_OK)
        return r;

    uint64_t failed0 = core_kafka_producer_failed(st->producer);
    for (size_t i = 0; i < n; i++) {
        pers_record *rec = recs[i];
        if (rec->fate == PERS_DEAD)
            emit_dlq(st, rec);
        emit_audit(st, rec);
        const char *o = rec->fate == PERS_WRITTEN ? "written"
                        : rec->fate == PERS_STALE ? "stale"
                                                  : "dead";
        const char *lv[] = { rec->ds->name, st->sink->name, o, NULL };
        core_metric_inc(core_metrics_series(st->m_rows, lv));
        if (rec->fate == PERS_WRITTEN && rec->ingest_ts > 0) {
            int64_t now = core_now_ms();
            if (now >= rec->ingest_ts)
                core_metric_observe(core_metrics_series2(st->m_e2e, st->sink->name,
                                                         rec->ds->name),
                                    (double)(now - rec->ingest_ts) / 1000.0);
        }
    }
    size_t left = core_kafka_producer_flush(st->producer, 30000);
    if (left > 0 || core_kafka_producer_failed(st->producer) != failed0) {
        core_errstr(errstr, errstr_size,
                    "dead-letter or audit records not delivered (%zu outstanding): the batch "
                    "will be written again",
                    left);
        return PERS_RETRY;
    }

    core_metric_observe(core_metrics_series1(st->m_batch, st->sink->name), (double)n);
    core_metric_observe(core_metrics_series1(st->m_flush, st->sink->name), core_mono_s() - t0);
    core_log_debug("batch written", CLF_I("records", n), CLF_D("seconds", core_mono_s() - t0));
    return PERS_OK;
}

/* Main thread, after a job's database commit: commit its offsets. Never on
 * the writer: a commit there could wait on a rebalance whose callback (on
 * the main thread) waits on the writer. */
static void commit_batch(pstate *st, pers_record **recs, size_t n)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, recs[i]->topic, recs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, recs[i]->topic, recs[i]->partition),
            p->offset = -1;
        if (recs[i]->offset + 1 > p->offset)
            p->offset = recs[i]->offset + 1;
    }
    core_err_t ce = CORE_OK;
    char cerr[256] = "";
    for (int attempt = 0; attempt < 3; attempt++) {
        ce = core_kafka_consumer_commit_offsets(st->consumer, offs, cerr, sizeof(cerr));
        if (ce != CORE_ERR_TRANSIENT)
            break;
    }
    rd_kafka_topic_partition_list_destroy(offs);
    if (ce != CORE_OK) {
        /* the next owner of the partitions re-reads them: idempotent writes */
        core_log_warn("offset commit failed after the database commit: records will be "
                      "redelivered and written again (idempotent)",
                      CLF_S("error", cerr));
    }
}

/* The writer thread: one job at a time, until told to quit. */
static void *writer_main(void *arg)
{
    pstate *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (st->jstate != J_PENDING && !st->jquit)
            pthread_cond_wait(&st->cv, &st->mu);
        if (st->jstate != J_PENDING)
            break;
        pthread_mutex_unlock(&st->mu);
        char err[512] = "";
        pers_res_t r;
        if (st->jn == 0) {
            r = st->sink->ping(st->sink, err, sizeof(err)) == PERS_OK ? PERS_OK : PERS_RETRY;
        } else {
            r = flush_batch(st, st->jrecs, st->jn, err, sizeof(err));
        }
        pthread_mutex_lock(&st->mu);
        st->jres = r;
        memcpy(st->jerr, err, sizeof(st->jerr));
        st->jstate = J_DONE;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static int job_state(pstate *st)
{
    pthread_mutex_lock(&st->mu);
    int js = st->jstate;
    pthread_mutex_unlock(&st->mu);
    return js;
}

/* Hand the buffer to the writer (from J_IDLE; an empty buffer makes a
 * ping), or hand it the held job again (from J_HELD). */
static void job_submit(pstate *st)
{
    pthread_mutex_lock(&st->mu);
    if (st->jstate == J_IDLE) {
        pers_record **r = st->jrecs;
        char **k = st->jkeys;
        st->jrecs = st->recs;
        st->jkeys = st->backup_keys;
        st->jn = st->n;
        st->recs = r;
        st->backup_keys = k;
        st->n = 0;
    }
    st->jstate = J_PENDING;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* Wait until the pending job is done, up to ms (-1: as long as it takes). */
static void job_wait(pstate *st, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (ms >= 0) {
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->mu);
    while (st->jstate == J_PENDING) {
        if (ms < 0)
            pthread_cond_wait(&st->cv, &st->mu);
        else if (pthread_cond_timedwait(&st->cv, &st->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&st->mu);
}

/* A failed write: pause, schedule the next try. */
static void flush_failed(pstate *st, const char *err)
{
    char e2[256];
    st->attempt++;
    int64_t d = core_backoff_delay_ms(&st->backoff, st->attempt);
    int64_t w = core_breaker_wait_ms(st->breaker, core_mono_ms());
    if (w > d)
        d = w;
    st->next_try_ms = core_mono_ms() + d;
    size_t nl = strlen(st->sink->name);
    if (strncmp(err, st->sink->name, nl) == 0 && (err[nl] == ' ' || err[nl] == ':'))
        pers_ready_set(false, err);
    else {
        char why[320];
        snprintf(why, sizeof(why), "%s: %s", st->sink->name, err);
        pers_ready_set(false, why);
    }
    core_metric_inc(core_metrics_series1(st->m_retries, st->sink->name));
    core_log_warn("database write failed: consumption paused, retrying", CLF_S("sink", st->sink->name),
                  CLF_S("error", err), CLF_I("attempt", st->attempt), CLF_I("retry_in_ms", d));
    if (!st->paused) {
        if (core_kafka_consumer_pause(st->consumer, NULL, 0, e2, sizeof(e2)) == CORE_OK)
            st->paused = true;
    }
}

static void flush_ok(pstate *st)
{
    char e2[256];
    if (st->attempt)
        core_log_info("database writes succeed again: consumption resumed",
                      CLF_S("sink", st->sink->name), CLF_I("attempts", st->attempt));
    st->attempt = 0;
    st->next_try_ms = 0;
    if (st->paused &&
        core_kafka_consumer_resume(st->consumer, NULL, 0, e2, sizeof(e2)) == CORE_OK)
        st->paused = false;
}

/* Main thread, job J_DONE: free a written job, or hold a failed one for
 * the next try. resume: whether a success may resume consumption (not
 * inside a rebalance callback). */
static void job_done(pstate *st, bool resume)
{
    pthread_mutex_lock(&st->mu);
    pers_res_t r = st->jres;
    char err[512];
    memcpy(err, st->jerr, sizeof(err));
    st->jstate = r == PERS_OK ? J_IDLE : J_HELD;
    pthread_mutex_unlock(&st->mu);
    st->db_seen_ms = core_mono_ms();
    if (r != PERS_OK && pers_give_up(NULL, 0)) {
        /* given up at the end of the grace period: not the database's fault */
        core_log_warn("batch not written before the stop: it will be redelivered",
                      CLF_S("sink", st->sink->name), CLF_S("error", err));
        return;
    }
    if (r != PERS_OK) {
        core_breaker_failure(st->breaker, core_mono_ms());
        flush_failed(st, err);
        return;
    }
    core_breaker_success(st->breaker, core_mono_ms());
    pers_ready_set(true, NULL);
    commit_batch(st, st->jrecs, st->jn);
    if (st->jkeys)
        backup_del_keys(st, st->jkeys, st->jn);
    free_records(st->jrecs, st->jkeys, st->jn);
    st->jn = 0;
    set_depth(st);
    if (resume)
        flush_ok(st);
    else
        st->attempt = 0;
}

/* Main thread: the pending job done, if any (waits for it). */
static void job_finish(pstate *st, bool resume)
{
    job_wait(st, -1);
    if (job_state(st) == J_DONE)
        job_done(st, resume);
}

static void on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                      bool lost, void *user)
{
    (void)c;
    (void)parts;
    pstate *st = user;
    /* what the writer has is written (or failed) before the partitions go */
    job_finish(st, false);
    if (!lost && !st->paused && job_state(st) == J_IDLE && st->n > 0 && !pers_give_up(NULL, 0)) {
        job_submit(st);
        job_finish(st, false);
    }
    if (st->n > 0 || job_state(st) == J_HELD)
        drop_buffer(st, lost ? "partitions lost"
                             : "partitions revoked before the batch was written");
}

/* ---- restore from the Redis backup -------------------------------------- */

/* Write the restored records buffered so far (retrying until the database
 * takes them or the service stops), then forget their Redis copies. No
 * offsets to commit: Kafka redelivers them too, and writing twice is
 * idempotent. @returns false when stopping. */
static bool restore_write(pstate *st)
{
    char err[512];
    if (st->n == 0)
        return true;
    for (int attempt = 1;; attempt++) {
        if (write_all(st, st->recs, st->n, err, sizeof(err)) == PERS_OK)
            break;
        core_log_warn("writing the restored buffer failed: retrying", CLF_S("error", err),
                      CLF_I("attempt", attempt));
        if (core_lifecycle_wait(core_backoff_delay_ms(&st->backoff, attempt)))
            return false;
    }
    backup_del_keys(st, st->backup_keys, st->n);
    free_records(st->recs, st->backup_keys, st->n);
    st->n = 0;
    return true;
}

/* Read one backed-up record into the buffer. @returns false when the key
 * is not a record of a configured dataset (it stays in Redis). */
static bool restore_one(pstate *st, const char *k, size_t *skipped)
{
    char err[256];
    redisReply *h = core_redis_command(st->redis, err, sizeof(err), "HGETALL %s", k);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        if (h)
            freeReplyObject(h);
        return false;
    }
    const char *topic = NULL, *kk = "", *vv = "";
    size_t kl = 0, vl = 0;
    long long part = 0, off = 0;
    for (size_t j = 0; j + 1 < h->elements; j += 2) {
        const char *f = h->element[j]->str;
        redisReply *v = h->element[j + 1];
        if (!strcmp(f, "topic"))
            topic = v->str;
        else if (!strcmp(f, "partition"))
            part = strtoll(v->str, NULL, 10);
        else if (!strcmp(f, "offset"))
            off = strtoll(v->str, NULL, 10);
        else if (!strcmp(f, "key"))
            kk = v->str, kl = (size_t)v->len;
        else if (!strcmp(f, "value"))
            vv = v->str, vl = (size_t)v->len;
    }
    pers_dataset *ds = topic ? ds_by_topic(st, topic) : NULL;
    bool ok = false;
    if (!ds) {
        if ((*skipped)++ == 0)
            core_log_warn("backed-up record of a topic this instance does not consume: left "
                          "in redis",
                          CLF_S("key", k), CLF_S("topic", topic ? topic : "(none)"));
    } else {
        pers_record *r = calloc(1, sizeof(*r));
        char *bk = strdup(k);
        if (r && bk &&
            pers_record_decode(r, ds, st->dec, topic, (int32_t)part, off, kk, kl, vv, vl) == 0) {
            st->recs[st->n] = r;
            st->backup_keys[st->n] = bk;
            st->n++;
            ok = true;
        } else {
            free(r);
            free(bk);
        }
    }
    freeReplyObject(h);
    return ok;
}

/* Before consuming: write back what an earlier run of this instance.id
 * left in Redis, batch.size records at a time. */
static void restore_backup(pstate *st)
{
    const char *inst = core_service_common(st->svc)->instance_id;
    char pattern[300], err[256], cursor[32] = "0";
    size_t restored = 0, skipped = 0;
    snprintf(pattern, sizeof(pattern), "msg:buffer:%s:*", inst);
    do {
        redisReply *rep = core_redis_command(st->redis, err, sizeof(err),
                                             "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            backup_error(st, "restore", rep ? "unexpected SCAN reply" : err);
            if (rep)
                freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        bool go = true;
        for (size_t i = 0; go && i < keys->elements; i++) {
            restored += restore_one(st, keys->element[i]->str, &skipped);
            if (st->n >= (size_t)st->conf->batch_size)
                go = restore_write(st);
        }
        freeReplyObject(rep);
        if (!go)
            return;
    } while (strcmp(cursor, "0") != 0);
    if (!restore_write(st))
        return;
    if (restored || skipped)
        core_log_info("buffer restored from redis and written", CLF_I("records", restored),
                      CLF_I("left_in_redis", skipped));
}

/* ---- the loop ------------------------------------------------------------ */

static void handle_message(pstate *st, rd_kafka_message_t *m)
{
    char err[256];
    const char *topic = rd_kafka_topic_name(m->rkt);
    pers_dataset *ds = ds_by_topic(st, topic);
    if (!ds)
        return;
    if (st->n >= (size_t)st->conf->batch_size || st->paused) {
        /* fetched before the pause took effect: read it again later */
        core_kafka_consumer_seek(st->consumer, topic, m->partition, m->offset, 5000, err,
                                 sizeof(err));
        return;
    }
    pers_record *r = calloc(1, sizeof(*r));
    if (!r || pers_record_decode(r, ds, st->dec, topic, m->partition, m->offset, m->key,
                                 m->key_len, m->payload, m->len) != 0) {
        free(r);
        core_kafka_consumer_seek(st->consumer, topic, m->partition, m->offset, 5000, err,
                                 sizeof(err));
        return;
    }
    r->ingest_ts = core_kafka_ingest_ts(m);
    if (r->ingest_ts < 0)
        r->ingest_ts = 0;
    if (r->fate == PERS_DEAD)
        core_log_warn("record cannot be decoded: to the dead-letter topic", CLF_S("topic", topic),
                      CLF_I("partition", m->partition), CLF_I("offset", m->offset),
                      CLF_S("error", r->error));
    if (st->n == 0)
        st->first_ms = core_mono_ms();
    st->recs[st->n++] = r;
}

int persister_loop(core_service_t *svc, const struct persister_conf *conf, pers_dataset *ds,
                   size_t nds, pers_sink *sink)
{
    pstate st = { 0 };
    char err[512];
    int rc = 0;
    const core_config_t *cfg = core_service_config(svc);

    st.conf = conf;
    st.svc = svc;
    st.cat = core_service_catalog(svc);
    st.dec = core_avro_decoder_new(st.cat, err, sizeof(err));
    st.ds = ds;
    st.nds = nds;
    st.sink = sink;
    st.backoff = (core_backoff){ conf->retry_base_ms, conf->retry_max_ms, 2.0, 0.5, 0 };
    metrics_init(&st);
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);
    st.recs = calloc((size_t)conf->batch_size, sizeof(*st.recs));
    st.jrecs = calloc((size_t)conf->batch_size, sizeof(*st.jrecs));
    if (conf->backup_enabled) {
        st.backup_keys = calloc((size_t)conf->batch_size, sizeof(*st.backup_keys));
        st.jkeys = calloc((size_t)conf->batch_size, sizeof(*st.jkeys));
    }
    char bname[64];
    snprintf(bname, sizeof(bname), "persister_%s", sink->name);
    st.breaker = core_breaker_new(bname, (int)conf->breaker_threshold, conf->breaker_open_ms, 1);
    if (!st.dec || !st.recs || !st.jrecs || !st.breaker ||
        (conf->backup_enabled && (!st.backup_keys || !st.jkeys))) {
        core_log_error("out of memory");
        rc = CORE_EX_SOFTWARE;
        goto out;
    }

    /* the same default as the readiness check (ARCHITECTURE.md) */
    static const core_kafka_prop kdefaults[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    /* static membership: a restarted instance takes its partitions back at
     * once instead of after the dead member's session (docs/svc-persister.md) */
    char member[256];
    core_kafka_prop cdefaults[] = {
        kdefaults[0],
        { "group.instance.id", core_service_group_instance_id(svc, conf->group_instance_id,
                                                              &conf->datasets, member,
                                                              sizeof(member)) },
    };
    core_kafka_producer_opts po = { .cfg = cfg, .defaults = kdefaults, .ndefaults = 1 };
    st.producer = core_kafka_producer_new(&po, err, sizeof(err));
    if (!st.producer) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    st.audit = core_audit_new(st.producer, st.cat, conf->audit_topic, "persister", err,
                              sizeof(err));
    if (!st.audit) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    if (conf->backup_enabled) {
        core_redis_opts ro = { .host = conf->redis_host, .port = (int)conf->redis_port,
                               .password = conf->redis_password, .db = (int)conf->redis_db };
        st.redis = core_redis_new(&ro, err, sizeof(err));
        if (!st.redis) {
            rc = core_service_config_error(svc, err);
            goto out;
        }
        st.redis_ok = true;
        restore_backup(&st);
    }

    char group[256];
    if (conf->group_id && *conf->group_id)
        snprintf(group, sizeof(group), "%s", conf->group_id);
    else
        snprintf(group, sizeof(group), "svc-persister-%s", sink->name);
    core_kafka_consumer_opts co = { .cfg = cfg, .defaults = cdefaults,
                                    .ndefaults = cdefaults[1].value ? 2 : 1,
                                    .on_revoke = on_revoke, .hook_user = &st };
    if (!core_kafka_consumer_config(cfg, "group.id"))
        co.group_id = group;
    st.consumer = core_kafka_consumer_new(&co, err, sizeof(err));
    if (!st.consumer) {
        rc = core_service_config_error(svc, err);
        goto out;
    }
    const char **topics = calloc(nds, sizeof(*topics));
    if (!topics) {
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    for (size_t i = 0; i < nds; i++)
        topics[i] = ds[i].topic_valid;
    core_err_t e = core_kafka_consumer_subscribe(st.consumer, topics, nds, err, sizeof(err));
    free(topics);
    if (e != CORE_OK) {
        core_log_error("subscribe failed", CLF_S("error", err));
        rc = CORE_EX_UNAVAILABLE;
        goto out;
    }
    core_log_info("started", CLF_S("sink", sink->name), CLF_I("datasets", nds),
                  CLF_I("batch_size", conf->batch_size),
                  CLF_I("batch_timeout_ms", conf->batch_timeout_ms),
                  CLF_B("buffer_backup", conf->backup_enabled));

    if (pthread_create(&st.writer, NULL, writer_main, &st) != 0) {
        core_log_error("cannot start the writer thread");
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    st.writer_on = true;
    st.db_seen_ms = core_mono_ms(); /* reached at start (main.c) */

    while (!core_lifecycle_stopping()) {
        int64_t now = core_mono_ms();
        int js = job_state(&st);
        if (js == J_DONE) {
            job_done(&st, true);
            continue;
        }
        if ((js == J_HELD || (js == J_IDLE && st.paused)) && now >= st.next_try_ms) {
            /* retry the held job; paused with none (revoked meanwhile):
             * the buffer, or a ping to probe the database */
            if (!core_breaker_allow(st.breaker, now)) {
                char why[160];
                snprintf(why, sizeof(why), "circuit open: %s database calls refused for %lld ms",
                         sink->name, (long long)core_breaker_wait_ms(st.breaker, now));
                flush_failed(&st, why);
            } else {
                job_submit(&st);
                set_depth(&st);
            }
            continue;
        }
        bool full = st.n >= (size_t)conf->batch_size;
        bool due = st.n > 0 && (full || now - st.first_ms >= conf->batch_timeout_ms);
        if (js == J_IDLE && due && !st.paused) {
            job_submit(&st);
            continue;
        }
        if (js == J_IDLE && st.n == 0 && !st.paused && now - st.db_seen_ms >= READY_PING_MS) {
            job_submit(&st); /* idle: a ping, so readiness notices an outage */
            continue;
        }
        if (full && js == J_PENDING) {
            /* nothing more to take until the writer is done */
            job_wait(&st, 100);
            continue;
        }
        int64_t wait = 100;
        if (st.n > 0 && !st.paused) {
            int64_t left = conf->batch_timeout_ms - (now - st.first_ms);
            if (left < wait)
                wait = left < 0 ? 0 : left;
        }
        if (st.paused && st.next_try_ms - now < wait)
            wait = st.next_try_ms - now < 0 ? 0 : st.next_try_ms - now;
        if (js == J_PENDING && wait > 5)
            wait = 5; /* notice the writer's result soon */
        size_t before = st.n;
        rd_kafka_message_t *m = core_kafka_consumer_poll(st.consumer, (int)wait);
        if (m) {
            if (!m->err)
                handle_message(&st, m);
            else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_message_destroy(m);
                core_log_error("consumer fatal error: stopping");
                rc = CORE_EX_SOFTWARE;
                break;
            }
            rd_kafka_message_destroy(m);
            /* drain what is already fetched without waiting */
            while (st.n < (size_t)conf->batch_size && !st.paused &&
                   (m = core_kafka_consumer_poll(st.consumer, 0))) {
                if (!m->err)
                    handle_message(&st, m);
                rd_kafka_message_destroy(m);
            }
        }
        if (st.n > before) {
            if (st.backup_keys)
                backup_add(&st, before);
            set_depth(&st);
        }
        core_kafka_producer_poll(st.producer, 0);
    }

    /* drain: write what is buffered within the grace period */
    core_lifecycle_stage("writing the buffered records to the database");
    while (core_lifecycle_remaining_ms() > 0) {
        int js = job_state(&st);
        if (js == J_PENDING) {
            job_wait(&st, core_lifecycle_remaining_ms());
        } else if (js == J_DONE) {
            job_done(&st, false);
        } else if (st.n > 0 || (js == J_HELD && st.jn > 0)) {
            /* (a held ping with nothing buffered has nothing to drain) */
            if (js == J_HELD) {
                if (core_lifecycle_forced())
                    break;
                int64_t d = st.next_try_ms - core_mono_ms();
                int64_t left = core_lifecycle_remaining_ms();
                if (d > left)
                    d = left;
                if (d > 0) {
                    struct timespec ts = { d / 1000, (d % 1000) * 1000000 };
                    nanosleep(&ts, NULL);
                }
            }
            job_submit(&st);
        } else {
            break;
        }
    }
    /* a job still inside the database finishes, so nothing it uses is
     * freed under it (a statement is bounded by pg.statement.timeout.ms) */
    core_lifecycle_stage("waiting for the batch inside the database");
    job_finish(&st, false);
    core_lifecycle_stage(NULL);
    if (st.n > 0 || (job_state(&st) == J_HELD && st.jn > 0))
        core_log_warn("stopping with records not written: they will be redelivered",
                      CLF_I("records", st.n + st.jn));
    core_kafka_consumer_close(st.consumer, err, sizeof(err));
    core_log_info("stopping", CLF_I("signal", core_lifecycle_signal()));
out:
    if (st.writer_on) {
        pthread_mutex_lock(&st.mu);
        st.jquit = true;
        pthread_cond_broadcast(&st.cv);
        pthread_mutex_unlock(&st.mu);
        pthread_join(st.writer, NULL);
    }
    drop_buffer(&st, "stopping");
    core_kafka_consumer_free(st.consumer);
    core_audit_free(st.audit);
    if (st.producer)
        core_kafka_producer_flush(st.producer, 5000);
    core_kafka_producer_free(st.producer);
    core_redis_free(st.redis);
    core_breaker_free(st.breaker);
    free(st.recs);
    free(st.backup_keys);
    free(st.jrecs);
    free(st.jkeys);
    core_avro_decoder_free(st.dec);
    pthread_cond_destroy(&st.cv);
    pthread_mutex_destroy(&st.mu);
    return rc;
}
