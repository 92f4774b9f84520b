/* ingest.h — one file into records on <dataset>.raw, exactly once.
 *
 * A run of a file is a batch. Its records, their audit events and a
 * checkpoint record go out in Kafka transactions of at most
 * checkpoint.records lines (or checkpoint.ms): the checkpoint (batch id,
 * file digest, byte offset and line after the last line of the transaction,
 * counters, size of the errors file) lands on the compacted topic
 * checkpoint.topic keyed by the batch id IN THE SAME TRANSACTION as the
 * records. A crash leaves either the whole transaction (records and
 * checkpoint) or none of it, so the next run, which first fences the old
 * producer (same transactional.id, derived from the batch id) and then
 * reads the last committed checkpoint (read_committed), resumes with no gap
 * and no duplicate. A checkpoint marked done makes a re-run publish nothing
 * unless forced.
 *
 * The batch id defaults to "<dataset>-<first 16 hex digits of the SHA-256
 * of the file's bytes>", so a re-run of the same file has the same batch id,
 * the same record ids and finds its checkpoint. */
#ifndef SVC_INGEST_INGEST_H
#define SVC_INGEST_INGEST_H

#include "mapper.h"
#include "reader.h"

#include "tributary/core_service.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The service's configuration (svc-ingest's key table fills it). */
typedef struct ingest_conf {
    core_cfg_list datasets;
    char *format;
    char *batch_id;
    char *errors;
    bool force;
    bool summary_json;
    char *progress;
    char *topic_prefix;
    char *topic;             /* deprecated: the whole .raw name (one dataset) */
    char *audit_topic;
    char *checkpoint_topic;
    int64_t checkpoint_records;
    int64_t checkpoint_ms;
    int64_t max_record_bytes;
    int64_t max_line_bytes;
    char *extra_columns;
    char *delimiter;
    char *kind;
    char *op;
    char *op_column;
    char *version_column;
    char *event_time_column;
    char *old_key_column;
    char *source;
    int64_t broker_timeout_ms;
    char *txn_id_prefix;
    char *spool_dir;
    int64_t spool_poll_ms;
} ingest_conf;

/** The .raw topic of a dataset: {topic.prefix}{dataset}.raw, or the
 * deprecated `topic` when set. @returns 0, or CORE_ERR_INVALID with errstr
 * naming the key. */
int ingest_topic(const ingest_conf *c, const char *dataset, char *buf, size_t size,
                 char *errstr, size_t errstr_size);

/* One file to ingest. */
typedef struct ingest_job {
    const char *path;
    const char *dataset;
    const char *format;    /* "csv", "jsonl", or NULL/"auto": by the name */
    const char *batch_id;  /* NULL: derived from the file's digest */
    const char *errors;    /* NULL: <path>.errors.jsonl */
    bool force;
} ingest_job;

/* Progress and outcome of one file. The runner updates it under lock (the
 * HTTP thread of service mode reads it). */
typedef struct ingest_status {
    pthread_mutex_t *lock;     /* may be NULL (one-shot) */
    char batch_id[INGEST_MAX_BATCH_ID + 1];
    char file_id[65];
    char errors_path[4096];
    uint64_t rows_read;        /* records read (published + rejected), whole file */
    uint64_t published;
    uint64_t rejected;
    uint64_t bytes;            /* uncompressed bytes of the file read */
    uint64_t pos;              /* progress: compressed bytes consumed */
    uint64_t file_size;        /* compressed size */
    uint64_t resumed_line;     /* 0: from the start; else the line resumed at */
    double seconds;
    bool skipped;              /* already ingested: nothing published */
    bool interrupted;          /* stopped by a signal: resume by running again */
    int exit_code;             /* CORE_EX_* (core_exit.h) */
    char error[512];           /* why the file failed, "" when it did not */
} ingest_status;

typedef struct ingest_ctx ingest_ctx;

typedef void ingest_progress_cb(const ingest_status *st, void *user);

/** @returns a context, or NULL with errstr (a configuration error: exit 78). */
ingest_ctx *ingest_ctx_new(core_service_t *svc, const ingest_conf *conf, char *errstr,
                           size_t errstr_size);
void ingest_ctx_free(ingest_ctx *ctx);

/**
 * @brief Ingest one file. Fills *st as it goes (progress) and at the end.
 * @returns the file's exit code (also in st->exit_code), a CORE_EX_*:
 *          OK all published, DATAERR some lines rejected or the header
 *          refused, NOINPUT the file cannot be read, UNAVAILABLE broker
 *          unreachable, SOFTWARE internal error, TEMPFAIL stopped by a signal
 *          (resumable), CONFIG bad configuration.
 */
int ingest_file(ingest_ctx *ctx, const ingest_job *job, ingest_status *st,
                ingest_progress_cb *cb, void *cb_user);

/** The summary as one JSON object (malloc'd) for --summary.json and the API. */
char *ingest_status_json(const ingest_status *st, const char *file, const char *dataset,
                         const char *state);

/** Compute the file's SHA-256 as hex (65 bytes). @returns 0 or -1 + errstr. */
int ingest_file_digest(const char *path, char hex[65], char *errstr, size_t errstr_size);

#endif
