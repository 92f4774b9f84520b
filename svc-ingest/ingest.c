/* ingest.c — one file into records on <dataset>.raw in Kafka transactions
 * that carry their own checkpoint (see ingest.h). */
#include "ingest.h"

#include "tributary/core_dlq.h"
#include "tributary/core_topics.h"
#include "ingest_int.h"

#include "tributary/core_audit.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_exit.h"
#include "tributary/core_json.h"
#include "tributary/core_kafka.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static const core_kafka_prop producer_defaults[] = {
    { "compression.codec", "lz4" },
    { "linger.ms", "20" },
    { "batch.num.messages", "10000" },
    { "batch.size", "1000000" },
    { "queue.buffering.max.messages", "500000" },
    { "queue.buffering.max.kbytes", "1048576" },
};

/* ---- the run ----------------------------------------------------------- */

struct run {
    ingest_ctx *ctx;
    const ingest_conf *conf;
    const ingest_job *job;
    ingest_status *st;
    const core_avro_schema_t *schema;
    const char *dataset;
    const char *path;
    char topic[512];
    char txn_id[INGEST_MAX_BATCH_ID + 128];
    char source[512];
    ingest_format fmt;

    core_kafka_producer_t *prod;
    core_audit_t *audit;
    ingest_reader *rd;
    ingest_mapper *map;
    FILE *errf;
    int errfd;

    struct ckpt committed;  /* what the last committed transaction holds */
    struct ckpt cur;        /* counters as of the last line handled */
    uint64_t in_txn;        /* lines handled in the open transaction */
    int64_t txn_started;
    bool txn_open;

    core_metric_t *m_read, *m_pub, *m_bytes, *m_depth, *m_commit;

    struct stat sb;             /* the input file's */
    double t0, last_cb;         /* start; last progress report */
    ingest_progress_cb *cb;
    void *cb_user;
    bool reading;               /* the loop began: committed is this file's */
};

/* One line of the errors file: a refused line, or a refused header (the
 * file cannot be used at all). The only place a refused value is printed
 * (reasons, audit events and logs never hold one): le->value, and only
 * when its field is not marked tb.personal in the dataset's schema. */
static void write_error_line(struct run *r, uint64_t line, const char *column, const char *reason,
                             const ingest_line_error *le)
{
    cJSON *j = cJSON_CreateObject();
    char *s;

    if (!j)
        return;
    cJSON_AddItemToObject(j, "line", core_json_int((int64_t)line));
    if (column && *column)
        cJSON_AddStringToObject(j, "column", column);
    else
        cJSON_AddNullToObject(j, "column");
    cJSON_AddStringToObject(j, "reason", reason);
    if (le && le->has_value && !core_avro_schema_path_personal(r->schema, le->value_field))
        cJSON_AddStringToObject(j, "value", le->value);
    s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (s) {
        fputs(s, r->errf);
        fputc('\n', r->errf);
        free(s);
    }
}

static core_kafka_producer_t *make_producer(struct run *r, char *errstr, size_t errstr_size)
{
    core_kafka_producer_opts o = { 0 };

    o.cfg = core_service_config(r->ctx->svc);
    o.defaults = producer_defaults;
    o.ndefaults = CORE_ARRAY_SIZE(producer_defaults);
    o.transactional_id = r->txn_id;
    return core_kafka_producer_new(&o, errstr, errstr_size);
}

/* Producer + transactions initialised (fences an older run of the batch). */
static int open_producer(struct run *r, char *errstr, size_t errstr_size)
{
    int64_t deadline = core_mono_ms() + r->conf->broker_timeout_ms;
    core_kafka_txn_res_t tr;

    r->prod = make_producer(r, errstr, errstr_size);
    if (!r->prod)
        return CORE_EX_CONFIG;
    if (!ingest_kafka_reachable(r->prod, (int)r->conf->broker_timeout_ms, errstr, errstr_size))
        return CORE_EX_UNAVAILABLE;
    do {
        tr = core_kafka_txn_init(r->prod, (int)r->conf->broker_timeout_ms, errstr, errstr_size);
    } while (tr == CORE_KAFKA_TXN_RETRY && core_mono_ms() < deadline &&
             !core_lifecycle_forced());
    if (tr != CORE_KAFKA_TXN_OK)
        return CORE_EX_UNAVAILABLE;
    r->audit = core_audit_new(r->prod, r->ctx->cat, r->conf->audit_topic, "ingest", errstr,
                              errstr_size);
    if (!r->audit)
        return CORE_EX_CONFIG;
    return 0;
}

static void close_producer(struct run *r)
{
    core_audit_free(r->audit);
    r->audit = NULL;
    core_kafka_producer_free(r->prod);
    r->prod = NULL;
    r->txn_open = false;
}

static void publish_status(struct run *r)
{
    ingest_status *st = r->st;

    ingest_status_lock(st);
    st->rows_read = r->cur.rows_read;
    st->published = r->cur.published;
    st->rejected = r->cur.rejected;
    st->bytes = r->cur.bytes;
    st->pos = r->rd ? ingest_reader_raw_pos(r->rd) : st->pos;
    ingest_status_unlock(st);
}

/* Produce the checkpoint for r->cur and commit the transaction.
 * @returns the transaction result. */
static core_kafka_txn_res_t commit_txn(struct run *r, bool done, char *errstr,
                                       size_t errstr_size)
{
    cJSON *j = cJSON_CreateObject();
    char *val;
    core_err_t perr;
    core_kafka_txn_res_t tr;
    double t0;
    long errsz;

    fflush(r->errf);
    if (fdatasync(fileno(r->errf)) != 0 && errno != EINVAL && errno != EROFS) {
        core_errstr(errstr, errstr_size, "errors file: %s", strerror(errno));
        cJSON_Delete(j);
        return CORE_KAFKA_TXN_ABORT;
    }
    errsz = ftell(r->errf);
    r->cur.errors_bytes = errsz > 0 ? (uint64_t)errsz : 0;
    if (!j) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_KAFKA_TXN_ABORT;
    }
    cJSON_AddStringToObject(j, "batch_id", r->st->batch_id);
    cJSON_AddStringToObject(j, "dataset", r->dataset);
    cJSON_AddStringToObject(j, "file", r->path);
    cJSON_AddStringToObject(j, "file_id", r->st->file_id);
    cJSON_AddItemToObject(j, "offset", core_json_int((int64_t)r->cur.offset));
    cJSON_AddItemToObject(j, "line", core_json_int((int64_t)r->cur.line));
    cJSON_AddItemToObject(j, "rows_read", core_json_int((int64_t)r->cur.rows_read));
    cJSON_AddItemToObject(j, "published", core_json_int((int64_t)r->cur.published));
    cJSON_AddItemToObject(j, "rejected", core_json_int((int64_t)r->cur.rejected));
    cJSON_AddItemToObject(j, "bytes", core_json_int((int64_t)r->cur.bytes));
    cJSON_AddItemToObject(j, "errors_bytes", core_json_int((int64_t)r->cur.errors_bytes));
    cJSON_AddBoolToObject(j, "done", done);
    cJSON_AddNumberToObject(j, "ts", (double)core_now_ms());
    val = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!val) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_KAFKA_TXN_ABORT;
    }
    perr = core_kafka_produce(r->prod, r->conf->checkpoint_topic, r->st->batch_id,
                              strlen(r->st->batch_id), val, strlen(val), NULL, 0, NULL, errstr,
                              errstr_size);
    free(val);
    if (perr == CORE_ERR_FATAL)
        return CORE_KAFKA_TXN_FATAL;
    if (perr != CORE_OK)
        return CORE_KAFKA_TXN_ABORT;
    core_metric_set(r->m_depth, (double)core_kafka_producer_outstanding(r->prod));
    t0 = core_mono_s();
    /* a retriable commit is asked again, within broker.timeout.ms in all:
     * past it the transaction is aborted (librdkafka allows an abort after
     * a retriable commit error) and the run goes back to its checkpoint,
     * where the outage bound of the caller applies (a commit left retrying
     * against a lost coordinator stalled a file for 95 s) */
    do {
        tr = core_kafka_txn_commit(r->prod, (int)r->conf->broker_timeout_ms, errstr, errstr_size);
    } while (tr == CORE_KAFKA_TXN_RETRY && !core_lifecycle_forced() &&
             (core_mono_s() - t0) * 1000.0 < (double)r->conf->broker_timeout_ms);
    if (tr == CORE_KAFKA_TXN_RETRY)
        tr = CORE_KAFKA_TXN_ABORT;
    if (tr == CORE_KAFKA_TXN_OK) {
        uint64_t newly = r->cur.published - r->committed.published;
        core_metric_observe(r->m_commit, core_mono_s() - t0);
        core_metric_add(r->m_pub, (double)newly);
        r->committed = r->cur;
        r->committed.done = done;
        r->txn_open = false;
        r->in_txn = 0;
        core_metric_set(r->m_depth, 0);
        publish_status(r);
    }
    return tr;
}

/* Back to the last committed checkpoint after a failed transaction. */
static int rewind_to_committed(struct run *r, char *errstr, size_t errstr_size)
{
    r->cur = r->committed;
    r->in_txn = 0;
    fflush(r->errf);
    if (ftruncate(fileno(r->errf), (off_t)r->committed.errors_bytes) != 0 ||
        fseek(r->errf, (long)r->committed.errors_bytes, SEEK_SET) != 0) {
        core_errstr(errstr, errstr_size, "errors file: %s", strerror(errno));
        return -1;
    }
    if (ingest_reader_seek(r->rd, r->committed.offset, r->committed.line, errstr, errstr_size))
        return -1;
    publish_status(r);
    return 0;
}

/* Abort the open transaction when the input fails (not the broker).
 * Delivered first: an abort right after the produce calls raced the
 * transaction's AddPartitionsToTxn and got INVALID_TXN_STATE (librdkafka
 * 2.0.2, 3 runs out of 3; confluentinc/librdkafka#4849), fatal, leaving the
 * transaction open on the broker and every read_committed consumer of the
 * topic held back until it timed out. */
static void abort_open_txn(struct run *r)
{
    if (!r->txn_open)
        return;
    core_kafka_producer_flush(r->prod, (int)r->conf->broker_timeout_ms);
    core_kafka_txn_abort(r->prod, 10000, NULL, 0);
    r->txn_open = false;
}

static int begin_txn(struct run *r, char *errstr, size_t errstr_size)
{
    if (core_kafka_txn_begin(r->prod, errstr, errstr_size) != CORE_KAFKA_TXN_OK)
        return -1;
    r->txn_open = true;
    r->txn_started = core_mono_ms();
    return 0;
}

/* What became of one line (handle_row()) or of a transaction. */
enum row_res {
    ROW_OK = 0,
    ROW_ABORT = -1,  /* the transaction must be aborted (errstr) */
    ROW_FATAL = -2,  /* the producer is unusable: rebuild it */
    ROW_BROKEN = -3, /* the mapper failed, not the line: internal error */
};

/* One line: record + audit, or error line + audit. @returns an enum row_res. */
static int handle_row(struct run *r, const ingest_row *row, char *errstr, size_t errstr_size)
{
    ingest_record rec;
    ingest_line_error le;
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    core_digest dg;
    core_err_t perr;
    int mr;

    mr = ingest_mapper_row(r->map, row, r->st->batch_id, r->source, &rec, &le);
    if (mr < 0) {
        core_errstr(errstr, errstr_size, "%s", le.reason);
        return ROW_BROKEN;
    }
    r->cur.rows_read++;
    r->cur.bytes += row->end - row->offset;
    core_metric_inc(r->m_read);
    core_metric_add(r->m_bytes, (double)(row->end - row->offset));
    if (mr == 1) {
        char id[37];
        ingest_make_id(r->st->batch_id, row->line, id);
        write_error_line(r, row->line, le.column, le.reason, &le);
        r->cur.rejected++;
        core_metric_inc(core_metrics_series2(r->ctx->f_rej, r->dataset,
                                             le.category ? le.category : "other"));
        ev.id = id;
        ev.dataset = r->dataset;
        ev.batch_id = r->st->batch_id;
        ev.outcome = "format_error";
        ev.reason = le.reason;
        ev.line = (int64_t)row->line;
        perr = core_audit_emit(r->audit, &ev, errstr, errstr_size);
    } else {
        char ts[24];
        core_kafka_header h[3];
        int tslen = snprintf(ts, sizeof(ts), "%lld", (long long)core_now_ms());

        h[0] = (core_kafka_header){ CORE_HDR_ID, rec.id, strlen(rec.id) };
        h[1] = (core_kafka_header){ CORE_HDR_BATCH, r->st->batch_id, strlen(r->st->batch_id) };
        h[2] = (core_kafka_header){ CORE_HDR_INGEST_TS, ts, (size_t)tslen };
        perr = core_kafka_produce(r->prod, r->topic, rec.key, rec.keylen, rec.value, rec.len, h,
                                  3, NULL, errstr, errstr_size);
        if (perr == CORE_OK) {
            r->cur.published++;
            core_digest_record(rec.value, rec.len, &dg);
            ev.id = rec.id;
            ev.key = rec.key;
            ev.dataset = r->dataset;
            ev.batch_id = r->st->batch_id;
            ev.outcome = "published";
            ev.digest = &dg;
            ev.value = rec.value; /* for the content digest */
            ev.value_len = rec.len;
            ev.topic = r->topic;
            ev.line = (int64_t)row->line;
            ev.version = rec.version;
            ev.old_key = rec.old_key;
            perr = core_audit_emit(r->audit, &ev, errstr, errstr_size);
        }
    }
    r->cur.offset = row->end;
    r->cur.line = row->line + row->nlines;
    r->in_txn++;
    if (perr == CORE_ERR_FATAL)
        return ROW_FATAL;
    return perr == CORE_OK ? ROW_OK : ROW_ABORT;
}

/* Abort (or rebuild) after a failure and go back to the checkpoint.
 * @returns 0 to go on, or an exit code. */
static int recover(struct run *r, bool fatal, int attempt, char *errstr, size_t errstr_size)
{
    core_backoff bo = { 200, 5000, 2.0, 0.5, 0 };
    char e2[512];

    core_log_warn("transaction failed: back to the last checkpoint",
                  CLF_S("batch", r->st->batch_id), CLF_S("error", errstr),
                  CLF_I("line", (int64_t)r->committed.line), CLF_I("attempt", attempt),
                  CLF_B("fatal", fatal));
    if (!fatal && r->txn_open) {
        core_kafka_txn_res_t tr = core_kafka_txn_abort(r->prod, (int)r->conf->broker_timeout_ms,
                                                       e2, sizeof(e2));
        if (tr != CORE_KAFKA_TXN_OK)
            fatal = true;
        r->txn_open = false;
    }
    if (fatal || core_kafka_producer_fatal(r->prod, NULL, 0)) {
        int rc;
        close_producer(r);
        if (core_lifecycle_wait(core_backoff_delay_ms(&bo, attempt)))
            return 0; /* stopping: the caller sees it */
        rc = open_producer(r, errstr, errstr_size);
        if (rc)
            return rc;
    } else if (core_lifecycle_wait(core_backoff_delay_ms(&bo, attempt))) {
        return 0;
    }
    if (rewind_to_committed(r, errstr, errstr_size))
        return CORE_EX_SOFTWARE;
    return 0;
}

static ingest_format pick_format(const char *fmt, const char *path)
{
    size_t n = strlen(path);
    const char *p = path;
    char base[4096];

    if (fmt && strcmp(fmt, "csv") == 0)
        return INGEST_FMT_CSV;
    if (fmt && strcmp(fmt, "jsonl") == 0)
        return INGEST_FMT_JSONL;
    snprintf(base, sizeof(base), "%s", p);
    if (n > 3 && strcmp(base + n - 3, ".gz") == 0)
        base[n - 3] = '\0';
    n = strlen(base);
    if ((n > 6 && strcmp(base + n - 6, ".jsonl") == 0) ||
        (n > 7 && strcmp(base + n - 7, ".ndjson") == 0) ||
        (n > 5 && strcmp(base + n - 5, ".json") == 0))
        return INGEST_FMT_JSONL;
    return INGEST_FMT_CSV;
}

static int finish(struct run *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int finish(struct run *r, int code, const char *fmt, ...)
{
    ingest_status *st = r->st;

    ingest_status_lock(st);
    st->exit_code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->error, sizeof(st->error), fmt, ap);
        va_end(ap);
    }
    ingest_status_unlock(st);
    return code;
}

/* The file and its batch: the schema, the metrics, the format, the topic,
 * the file's digest (its identity), the batch id and the errors file's
 * path. @returns 0, or the exit code (finish() said why). */
static int run_identify(struct run *r)
{
    char err[1024];
    const char *base;

    r->schema = core_avro_catalog_by_dataset(r->ctx->cat, r->job->dataset);
    if (!r->schema)
        return finish(r, CORE_EX_CONFIG, "dataset: unknown dataset '%s'", r->job->dataset);
    r->m_read = core_metrics_series1(r->ctx->f_read, r->dataset);
    r->m_pub = core_metrics_series1(r->ctx->f_pub, r->dataset);
    r->m_bytes = core_metrics_series1(r->ctx->f_bytes, r->dataset);
    r->m_depth = core_metrics_series(r->ctx->f_depth, NULL);
    r->m_commit = core_metrics_series(r->ctx->f_commit, NULL);
    r->fmt = pick_format(r->job->format, r->job->path);
    ingest_topic(r->conf, r->dataset, r->topic, sizeof(r->topic), NULL, 0); /* checked at start */
    base = strrchr(r->job->path, '/');
    snprintf(r->source, sizeof(r->source), "%s",
             r->conf->source && *r->conf->source ? r->conf->source : base ? base + 1 : r->job->path);

    /* Identity of the file and of the batch. */
    {
        int serr = stat(r->job->path, &r->sb) != 0 ? errno : 0;

        if (serr || !S_ISREG(r->sb.st_mode)) {
            /* errno only when stat() failed: a stale one said "Numerical
             * result out of range" for a directory */
            return finish(r, CORE_EX_NOINPUT, "%s: %s", r->job->path,
                          serr                     ? strerror(serr)
                          : S_ISDIR(r->sb.st_mode) ? "is a directory, not a file"
                                                   : "not a regular file");
        }
    }
    {
        char fid[65];
        if (ingest_file_digest(r->job->path, fid, err, sizeof(err)))
            return finish(r, CORE_EX_NOINPUT, "%s", err);
        ingest_status_lock(r->st);
        memcpy(r->st->file_id, fid, sizeof(fid));
        ingest_status_unlock(r->st);
    }
    ingest_status_lock(r->st);
    if (r->job->batch_id && *r->job->batch_id)
        snprintf(r->st->batch_id, sizeof(r->st->batch_id), "%s", r->job->batch_id);
    else
        snprintf(r->st->batch_id, sizeof(r->st->batch_id), "%s-%.16s", r->dataset, r->st->file_id);
    if (r->job->errors && *r->job->errors)
        snprintf(r->st->errors_path, sizeof(r->st->errors_path), "%s", r->job->errors);
    else
        snprintf(r->st->errors_path, sizeof(r->st->errors_path), "%s.errors.jsonl", r->job->path);
    r->st->file_size = (uint64_t)r->sb.st_size;
    ingest_status_unlock(r->st);
    snprintf(r->txn_id, sizeof(r->txn_id), "%s%s", r->conf->txn_id_prefix, r->st->batch_id);

    return 0;
}

/* Kafka: reachability, fencing of an older run, the checkpoint. *done:
 * the file is finished already (nothing to publish; the exit code is
 * returned). @returns 0 to go on, or the exit code. */
static int run_checkpoint(struct run *r, bool *done)
{
    char err[1024];
    int rc = open_producer(r, err, sizeof(err));

    if (rc)
        return finish(r, rc, "%s", err);
    if (ingest_kafka_checkpoint_topic(r->prod, r->conf->checkpoint_topic, (int)r->conf->broker_timeout_ms,
                                err, sizeof(err)) ||
        ingest_kafka_load_checkpoint(r->ctx, r->conf->checkpoint_topic, r->st->batch_id, &r->committed,
                        (int)r->conf->broker_timeout_ms, err, sizeof(err)))
        return finish(r, CORE_EX_UNAVAILABLE, "%s", err);
    if (r->committed.found && strcmp(r->committed.file_id, r->st->file_id) != 0 && !r->job->force)
        return finish(r, CORE_EX_DATAERR,
                      "batch %s was used for another file (digest %.16s, this file %.16s): "
                      "choose another --batch.id, or --force", r->st->batch_id, r->committed.file_id,
                      r->st->file_id);
    if (r->committed.found && r->job->force)
        memset(&r->committed, 0, sizeof(r->committed));
    if (r->committed.found && r->committed.done) {
        ingest_status_lock(r->st);
        r->st->skipped = true;
        r->st->rows_read = r->committed.rows_read;
        r->st->published = r->committed.published;
        r->st->rejected = r->committed.rejected;
        r->st->bytes = r->committed.bytes;
        r->st->pos = r->st->file_size;
        r->st->seconds = core_mono_s() - r->t0;
        ingest_status_unlock(r->st);
        core_log_info("file already ingested: nothing published (use --force to publish it again)",
                      CLF_S("file", r->job->path), CLF_S("batch", r->st->batch_id));
        *done = true;
        return finish(r, r->committed.rejected ? CORE_EX_DATAERR : 0, NULL);
    }

    return 0;
}

/* The input, the mapper, the errors file; the CSV header; where to start
 * (the checkpoint's line or the first). @returns 0, or the exit code. */
static int run_open_input(struct run *r)
{
    char err[1024];
    ingest_map_opts mo;
    ingest_row row;

    r->rd = ingest_reader_open(r->job->path, r->fmt, r->conf->delimiter[0],
                              (size_t)r->conf->max_line_bytes, err, sizeof(err));
    if (!r->rd)
        return finish(r, CORE_EX_NOINPUT, "%s", err);
    memset(&mo, 0, sizeof(mo));
    mo.schema = r->schema;
    mo.fmt = r->fmt;
    mo.refuse_extra = strcmp(r->conf->extra_columns, "refuse") == 0;
    mo.op_column = r->conf->op_column;
    mo.version_column = r->conf->version_column;
    mo.event_time_column = r->conf->event_time_column;
    mo.old_key_column = r->conf->old_key_column;
    mo.kind = strcmp(r->conf->kind, "bulk") == 0     ? CORE_AVRO_KIND_BULK
              : strcmp(r->conf->kind, "change") == 0 ? CORE_AVRO_KIND_CHANGE
                                                    : -1;
    mo.op = strcmp(r->conf->op, "UPDATE") == 0   ? CORE_AVRO_OP_UPDATE
            : strcmp(r->conf->op, "DELETE") == 0 ? CORE_AVRO_OP_DELETE
                                                : CORE_AVRO_OP_ADD;
    mo.event_time = (int64_t)r->sb.st_mtim.tv_sec * 1000 + r->sb.st_mtim.tv_nsec / 1000000;
    mo.max_record = (size_t)r->conf->max_record_bytes;
    r->map = ingest_mapper_new(&mo, err, sizeof(err));
    if (!r->map)
        return finish(r, CORE_EX_CONFIG, "dataset %s: %s", r->dataset, err);
    r->errfd = open(r->st->errors_path, O_RDWR | O_CREAT, 0644);
    if (r->errfd < 0 || !(r->errf = fdopen(r->errfd, "r+"))) {
        int rc = finish(r, CORE_EX_NOINPUT, "errors file %s: %s", r->st->errors_path,
                        strerror(errno));

        if (r->errfd >= 0)
            close(r->errfd);
        return rc;
    }
    r->errfd = -1; /* owned by errf */

    if (r->fmt == INGEST_FMT_CSV) {
        int n = ingest_reader_next(r->rd, &row, err, sizeof(err));
        if (n < 0)
            return finish(r, CORE_EX_NOINPUT, "%s", err);
        if (n == 0)
            return finish(r, CORE_EX_DATAERR, "%s: empty file (no header row)", r->job->path);
        if (ingest_mapper_header(r->map, &row, err, sizeof(err))) {
            if (ftruncate(fileno(r->errf), 0) == 0)
                write_error_line(r, row.line, NULL, err, NULL);
            fflush(r->errf);
            return finish(r, CORE_EX_DATAERR, "%s: %s", r->job->path, err);
        }
        if (!r->committed.found) {
            r->committed.offset = row.end;
            r->committed.line = row.line + row.nlines;
        }
    }
    if (r->committed.found) {
        ingest_status_lock(r->st);
        r->st->resumed_line = r->committed.line;
        ingest_status_unlock(r->st);
        core_log_info("resuming from checkpoint", CLF_S("file", r->job->path),
                      CLF_S("batch", r->st->batch_id), CLF_I("line", (int64_t)r->committed.line),
                      CLF_I("offset", (int64_t)r->committed.offset));
    } else if (r->fmt == INGEST_FMT_JSONL) {
        r->committed.offset = 0;
        r->committed.line = 1;
    }
    r->committed.found = true;
    r->reading = true;
    if (rewind_to_committed(r, err, sizeof(err)))
        return finish(r, CORE_EX_NOINPUT, "%s", err);
    core_log_info("ingesting", CLF_S("file", r->job->path), CLF_S("dataset", r->dataset),
                  CLF_S("batch", r->st->batch_id), CLF_S("topic", r->topic),
                  CLF_S("format", r->fmt == INGEST_FMT_CSV ? "csv" : "jsonl"));

    return 0;
}

/* Lines into transactions, each closed by its checkpoint, until the end
 * of the file, a stop, or a failure that outlasts broker.timeout.ms.
 * @returns the exit code. */
static int run_loop(struct run *r)
{
    char err[1024];
    ingest_row row;
    int rc = 0, attempt = 0;
    int64_t fail_since = 0;

    for (;;) {
        int n, hr = 0;
        bool eof = false;

        if (core_lifecycle_stopping() && !r->txn_open) {
            ingest_status_lock(r->st);
            r->st->interrupted = true;
            ingest_status_unlock(r->st);
            return finish(r, CORE_EX_TEMPFAIL, "stopped by a signal at line %llu: run again to resume",
                          (unsigned long long)r->committed.line);
        }
        if (!r->txn_open && begin_txn(r, err, sizeof(err))) {
            hr = ROW_FATAL;
            goto failed;
        }
        /* The clock and the stop flag are looked at every 64 lines. */
        while (r->in_txn < (uint64_t)r->conf->checkpoint_records &&
               ((r->in_txn & 63) != 0 || (core_mono_ms() - r->txn_started < r->conf->checkpoint_ms &&
                                         !core_lifecycle_stopping()))) {
            n = ingest_reader_next(r->rd, &row, err, sizeof(err));
            if (n < 0) {
                /* The stream broke (err names the line and byte): the open
                 * transaction is aborted, so what was read since the last
                 * checkpoint is not published, and the summary says so. */
                uint64_t lost = r->cur.rows_read - r->committed.rows_read;
                abort_open_txn(r);
                rc = finish(r, CORE_EX_NOINPUT,
                            "%s; %llu record(s) read after the last checkpoint (line %llu) were "
                            "not published", err, (unsigned long long)lost,
                            (unsigned long long)r->committed.line);
                return rc;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            hr = handle_row(r, &row, err, sizeof(err));
            if (hr == ROW_BROKEN) {
                rc = finish(r, CORE_EX_SOFTWARE, "%s", err);
                abort_open_txn(r);
                return rc;
            }
            if (hr)
                break;
            if (r->cb && (r->in_txn & 255) == 0 && core_mono_s() - r->last_cb >= 0.25) {
                r->last_cb = core_mono_s();
                publish_status(r);
                ingest_status_lock(r->st);
                r->st->seconds = r->last_cb - r->t0;
                ingest_status_unlock(r->st);
                r->cb(r->st, r->cb_user);
            }
        }
        if (hr == 0) {
            core_kafka_txn_res_t tr = commit_txn(r, eof, err, sizeof(err));
            if (tr == CORE_KAFKA_TXN_OK) {
                attempt = 0;
                fail_since = 0;
                if (eof)
                    break;
                continue;
            }
            hr = tr == CORE_KAFKA_TXN_FATAL ? ROW_FATAL : ROW_ABORT;
        }
failed:
        if (!fail_since)
            fail_since = core_mono_ms();
        if (strstr(err, "AUTHORIZATION_FAILED")) {
            /* An ACL refusal does not pass with retries: abort, say so once. */
            if (r->txn_open && r->prod)
                core_kafka_txn_abort(r->prod, 5000, NULL, 0);
            r->txn_open = false;
            return finish(r, CORE_EX_UNAVAILABLE,
                          "kafka refused the write at line %llu (resumable; an ACL: check the "
                          "ACLs of kafka.sasl.username on the topic, and topic.prefix): %s",
                          (unsigned long long)r->committed.line, err);
        }
        if (core_mono_ms() - fail_since > r->conf->broker_timeout_ms) {
            if (r->txn_open && r->prod)
                core_kafka_txn_abort(r->prod, 5000, NULL, 0);
            r->txn_open = false;
            return finish(r, CORE_EX_UNAVAILABLE,
                          "kafka: giving up after %lld ms of failures at line %llu (resumable): %s",
                          (long long)r->conf->broker_timeout_ms,
                          (unsigned long long)r->committed.line, err);
        }
        rc = recover(r, hr == ROW_FATAL, ++attempt, err, sizeof(err));
        if (rc)
            return finish(r, rc, "%s", err);
    }
    publish_status(r);
    return finish(r, r->committed.rejected ? CORE_EX_DATAERR : 0, NULL);
}

/* The summary as committed transactions hold it, the metrics, the errors
 * file (gone when no line was refused), the clients. */
static void run_close(struct run *r, int rc)
{
    if (r->reading) {
        /* The summary counts only what committed transactions hold: the
         * progress reports counted lines of a transaction still open. */
        ingest_status_lock(r->st);
        r->st->rows_read = r->committed.rows_read;
        r->st->published = r->committed.published;
        r->st->rejected = r->committed.rejected;
        r->st->bytes = r->committed.bytes;
        ingest_status_unlock(r->st);
    }
    ingest_status_lock(r->st);
    r->st->seconds = core_mono_s() - r->t0;
    if (rc == 0 || rc == CORE_EX_DATAERR)
        r->st->pos = r->st->file_size;
    ingest_status_unlock(r->st);
    if (r->ctx->f_files && r->dataset)
        core_metric_inc(core_metrics_series2(r->ctx->f_files, r->dataset,
                                             rc == 0 ? "ok" : rc == CORE_EX_DATAERR ? "rejected_lines"
                                             : rc == CORE_EX_TEMPFAIL ? "interrupted" : "failed"));
    if (r->errf) {
        fclose(r->errf);
        /* No bad line: no errors file left behind. */
        if (rc == 0 && r->st->rejected == 0 && !r->st->skipped)
            unlink(r->st->errors_path);
    }
    ingest_mapper_free(r->map);
    ingest_reader_free(r->rd);
    if (r->prod) {
        if (r->txn_open)
            core_kafka_txn_abort(r->prod, 5000, NULL, 0);
        core_kafka_producer_flush(r->prod, 5000);
    }
    close_producer(r);
}

int ingest_file(ingest_ctx *ctx, const ingest_job *job, ingest_status *st,
                ingest_progress_cb *cb, void *cb_user)
{
    struct run r;
    bool done = false;
    int rc;

    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.conf = ctx->conf;
    r.job = job;
    r.st = st;
    r.path = job->path;
    r.dataset = job->dataset;
    r.errfd = -1;
    r.t0 = core_mono_s();
    r.cb = cb;
    r.cb_user = cb_user;
    ingest_status_lock(st);
    st->exit_code = 0;
    st->error[0] = '\0';
    ingest_status_unlock(st);

    rc = run_identify(&r);
    if (rc == 0)
        rc = run_checkpoint(&r, &done);
    if (rc == 0 && !done)
        rc = run_open_input(&r);
    if (rc == 0 && !done)
        rc = run_loop(&r);
    run_close(&r, rc);
    if (cb)
        cb(st, cb_user);
    return rc;
}
