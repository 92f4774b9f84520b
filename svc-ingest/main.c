/* svc-ingest — batch files (CSV, JSON Lines, gzip) into Avro records on Kafka.
 *
 *   svc-ingest --dataset payee [--format csv|jsonl] [--batch.id ID] FILE...
 *   svc-ingest serve        (spool folder + POST /batches, GET /batches/{id})
 *
 * See docs/svc-ingest.md. */
#include "ingest.h"
#include "serve.h"

#include "tributary/core_audit.h"
#include "tributary/core_exit.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_service.h"
#include "tributary/core_topics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ingest_conf conf;

#define K(name, type, def, field, help, mn, mx, ch) \
    { name, type, def, 0, offsetof(ingest_conf, field), help, mn, mx, ch }

static const core_config_key ingest_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, offsetof(ingest_conf, datasets),
      "Dataset of the input (a name in proto/catalog.json); serve: the datasets accepted", 0, 0,
      NULL },
    K("format", CORE_CFG_ENUM, "auto", format,
      "Input format; auto: .jsonl/.ndjson/.json(.gz) are JSON Lines, anything else CSV", 0, 0,
      "auto|csv|jsonl"),
    K("batch.id", CORE_CFG_STR, NULL, batch_id,
      "Batch id (default: <dataset>-<16 hex digits of the file's SHA-256>); with several "
      "files, file n gets <ID>.<n>", 0, 0, NULL),
    K("errors", CORE_CFG_STR, NULL, errors,
      "Errors file (JSON Lines: line, column, reason); default <input>.errors.jsonl", 0, 0, NULL),
    K("force", CORE_CFG_BOOL, "false", force,
      "Publish a file again although its batch is finished (ids repeat: a re-delivery)", 0, 0,
      NULL),
    K("summary.json", CORE_CFG_BOOL, "false", summary_json,
      "Print the summary of each file as one JSON object on stdout", 0, 0, NULL),
    K("progress", CORE_CFG_ENUM, "auto", progress,
      "Progress bar on stderr: auto (when stderr is a terminal), always, never", 0, 0,
      "auto|always|never"),
    CORE_TOPICS_CONFIG_KEYS(ingest_conf, topic_prefix),
    K("topic", CORE_CFG_STR, NULL, topic,
      "Deprecated (use topic.prefix): the whole output topic name, for one dataset", 0, 0, NULL),
    K("audit.topic", CORE_CFG_STR, CORE_AUDIT_TOPIC, audit_topic, "Topic of the audit events", 0,
      0, NULL),
    K("checkpoint.topic", CORE_CFG_STR, "tributary.ingest.checkpoints", checkpoint_topic,
      "Compacted topic of the checkpoints (created when missing)", 0, 0, NULL),
    K("checkpoint.records", CORE_CFG_INT, "10000", checkpoint_records,
      "Lines per transaction (each ends with a checkpoint)", 1, 10000000, NULL),
    K("checkpoint.ms", CORE_CFG_INT, "5000", checkpoint_ms,
      "Longest time a transaction stays open before its checkpoint", 10, 600000, NULL),
    K("max.record.bytes", CORE_CFG_INT, "10240", max_record_bytes,
      "Largest encoded record (wire header included); bigger lines are rejected", 64,
      100000000, NULL),
    K("max.line.bytes", CORE_CFG_INT, "4194304", max_line_bytes,
      "Largest input record in bytes; longer ones are rejected without being kept in memory",
      64, 1073741824, NULL),
    K("csv.extra.columns", CORE_CFG_ENUM, "ignore", extra_columns,
      "CSV columns (JSON keys) that are not fields of the schema: ignore, or refuse the file "
      "(JSON: the line)", 0, 0, "ignore|refuse"),
    K("csv.delimiter", CORE_CFG_STR, ",", delimiter,
      "CSV field delimiter: one byte, or 'tab'", 0, 0, NULL),
    K("kind", CORE_CFG_ENUM, "auto", kind,
      "meta.kind: auto (CHANGE when the input has an op column, else BULK), bulk, change", 0, 0,
      "auto|bulk|change"),
    K("op", CORE_CFG_ENUM, "ADD", op, "meta.op of lines without an op column", 0, 0,
      "ADD|UPDATE|DELETE"),
    K("column.op", CORE_CFG_STR, "op", op_column,
      "Column (JSON key) holding a line's op: ADD, UPDATE, DELETE", 0, 0, NULL),
    K("column.version", CORE_CFG_STR, "version", version_column,
      "Column holding meta.version (default: event_time seconds * 2^30 + line)", 0, 0, NULL),
    K("column.event_time", CORE_CFG_STR, "event_time", event_time_column,
      "Column holding meta.event_time (ISO 8601 or ms; default: the file's mtime)", 0, 0, NULL),
    K("column.old_key", CORE_CFG_STR, "old_key", old_key_column,
      "Column holding meta.old_key (an UPDATE that moves a record)", 0, 0, NULL),
    K("source", CORE_CFG_STR, NULL, source, "meta.source (default: the file's name)", 0, 0, NULL),
    K("broker.timeout.ms", CORE_CFG_INT, "30000", broker_timeout_ms,
      "How long the broker may be unreachable in the middle of a file before giving up (exit "
      "69; resumable); at start startup.timeout.ms applies", 100,
      3600000, NULL),
    K("txn.id.prefix", CORE_CFG_STR, "tributary-ingest-", txn_id_prefix,
      "Prefix of the transactional.id (followed by the batch id)", 0, 0, NULL),
    K("spool.dir", CORE_CFG_STR, NULL, spool_dir,
      "serve: folder watched for files; finished ones move to done/ or failed/", 0, 0, NULL),
    K("spool.poll.ms", CORE_CFG_INT, "1000", spool_poll_ms,
      "serve: how often the spool folder is scanned", 10, 3600000, NULL),
    CORE_CFG_END
};

/* The dashed names of 0.1, accepted one release with a warning. */
/* Keys that still work, to be replaced (a warning names the new one). */
static const core_config_alias ingest_deprecated[] = {
    { "topic", "topic.prefix" },
    CORE_CFG_ALIAS_END
};

static const core_config_alias ingest_aliases[] = {
    { "batch-id", "batch.id" },
    { "summary-json", "summary.json" },
    CORE_CFG_ALIAS_END
};

static const char *const subcommands[] = { "serve", NULL };

/* ---- terminal progress ------------------------------------------------- */

struct bar {
    bool on;
    int shown;
};

static void draw_bar(const ingest_status *st, void *user)
{
    struct bar *b = user;
    double pct, rate, eta;
    char fill[31];
    int k;

    if (!b->on)
        return;
    pct = st->file_size ? 100.0 * (double)st->pos / (double)st->file_size : 0.0;
    if (pct > 100.0)
        pct = 100.0;
    rate = st->seconds > 0 ? (double)st->rows_read / st->seconds : 0.0;
    eta = pct > 0.5 ? st->seconds * (100.0 - pct) / pct : -1.0;
    k = (int)(pct * 30 / 100);
    memset(fill, '#', (size_t)k);
    memset(fill + k, '.', (size_t)(30 - k));
    fill[30] = '\0';
    fprintf(stderr, "\r[%s] %5.1f%%  %llu rows  %.0f rows/s  ETA %s", fill, pct,
            (unsigned long long)st->rows_read, rate, eta < 0 ? "--:--" : "");
    if (eta >= 0)
        fprintf(stderr, "%d:%02d", (int)eta / 60, (int)eta % 60);
    fprintf(stderr, "   ");
    b->shown = 1;
}

/* ---- one-shot ---------------------------------------------------------- */

static int severity(int code)
{
    switch (code) {
    case CORE_EX_OK: return 0;
    case CORE_EX_DATAERR: return 1;
    case CORE_EX_TEMPFAIL: return 2;
    case CORE_EX_NOINPUT: return 3;
    case CORE_EX_UNAVAILABLE: return 4;
    case CORE_EX_SOFTWARE: return 5;
    default: return 6; /* CORE_EX_CONFIG */
    }
}

static int run_files(core_service_t *svc, ingest_ctx *ctx)
{
    size_t n = core_service_nfiles(svc);
    int worst = 0;
    struct bar b = { 0 };

    b.on = strcmp(conf.progress, "always") == 0 ||
           (strcmp(conf.progress, "auto") == 0 && isatty(2));
    for (size_t i = 0; i < n && !core_lifecycle_stopping(); i++) {
        ingest_job job = { 0 };
        ingest_status st;
        char bid[INGEST_MAX_BATCH_ID + 1];
        int rc;

        memset(&st, 0, sizeof(st));
        job.path = core_service_file(svc, i);
        job.dataset = conf.datasets.v[0];
        job.format = conf.format;
        job.force = conf.force;
        job.errors = conf.errors;
        if (conf.batch_id && n > 1) {
            snprintf(bid, sizeof(bid), "%s.%zu", conf.batch_id, i + 1);
            job.batch_id = bid;
        } else {
            job.batch_id = conf.batch_id;
        }
        if (conf.errors && n > 1) {
            fprintf(stderr, "svc-ingest: usage error: --errors names one file; with several "
                            "inputs each gets <input>.errors.jsonl\n");
            return CORE_EX_USAGE;
        }
        rc = ingest_file(ctx, &job, &st, draw_bar, &b);
        if (b.shown) {
            fprintf(stderr, "\r%*s\r", 100, "");
            b.shown = 0;
        }
        if (conf.summary_json) {
            char *j = ingest_status_json(&st, job.path, job.dataset, NULL);
            if (j) {
                printf("%s\n", j);
                free(j);
            }
        } else {
            printf("%s: batch %s%s\n  rows read %llu, published %llu, rejected %llu, bytes %llu, "
                   "seconds %.2f%s\n",
                   job.path, st.batch_id[0] ? st.batch_id : "-",
                   st.skipped ? " (already ingested: nothing published; --force to redo)" : "",
                   (unsigned long long)st.rows_read, (unsigned long long)st.published,
                   (unsigned long long)st.rejected, (unsigned long long)st.bytes, st.seconds,
                   st.resumed_line ? " (resumed)" : "");
            if (st.rejected)
                printf("  bad lines: %s\n", st.errors_path);
            if (st.error[0])
                printf("  error: %s\n", st.error);
        }
        fflush(stdout);
        if (st.error[0])
            core_log_error("file not ingested", CLF_S("file", job.path),
                           CLF_S("error", st.error), CLF_I("exit_code", rc));
        if (severity(rc) > severity(worst))
            worst = rc;
    }
    return worst;
}

/* With a Schema Registry: the registry's id of each dataset's schema on
 * its output topic, and of the audit event on audit.topic, before any
 * record is made (the catalogue is shared with the job threads after). */
static int bind_schemas(core_service_t *svc)
{
    const core_avro_catalog_t *cat = core_service_catalog(svc);
    char topic[512];
    int rc;

    if (!core_service_registry(svc))
        return CORE_SERVICE_CONTINUE;
    for (size_t i = 0; i < conf.datasets.n; i++) {
        ingest_topic(&conf, conf.datasets.v[i], topic, sizeof(topic), NULL, 0); /* checked */
        rc = core_service_schema_bind(svc, topic,
                                      core_avro_catalog_by_dataset(cat, conf.datasets.v[i]));
        if (rc != CORE_SERVICE_CONTINUE)
            return rc;
    }
    return core_service_bind_audit(svc, conf.audit_topic);
}

static int run(core_service_t *svc, void *unused)
{
    char errstr[512];
    ingest_ctx *ctx;
    int rc;

    (void)unused;
    /* serve: the /batches routes first, before anything slow (the
     * catalogue, the producer, the broker wait), as /healthz answers from
     * core_service_start on */
    if (core_service_nfiles(svc) == 0 &&
        (rc = ingest_serve_open(svc, &conf)) != CORE_SERVICE_CONTINUE)
        return rc;
    core_service_open(svc);
    if (strcmp(conf.delimiter, "tab") == 0 || strcmp(conf.delimiter, "\\t") == 0) {
        conf.delimiter[0] = '\t';
        conf.delimiter[1] = '\0';
    }
    if (strlen(conf.delimiter) != 1 || conf.delimiter[0] == '"' || conf.delimiter[0] == '\n' ||
        conf.delimiter[0] == '\r')
        return core_service_config_error(svc, "csv.delimiter: must be one byte other than a quote "
                                              "or a line break (or 'tab')");
    if (conf.batch_id && (strlen(conf.batch_id) == 0 || strlen(conf.batch_id) > INGEST_MAX_BATCH_ID - 12))
        return core_service_config_error(svc, "batch.id: must hold 1 to 188 bytes");
    if (!conf.checkpoint_topic || !*conf.checkpoint_topic || !conf.audit_topic || !*conf.audit_topic)
        return core_service_config_error(svc, "checkpoint.topic / audit.topic: must not be empty");
    for (size_t i = 0; i < conf.datasets.n; i++) {
        char topic[CORE_TOPIC_MAX + 1];

        if (ingest_topic(&conf, conf.datasets.v[i], topic, sizeof(topic), errstr,
                         sizeof(errstr)))
            return core_service_config_error(svc, errstr);
    }
    if ((rc = bind_schemas(svc)) != CORE_SERVICE_CONTINUE)
        return rc;
    ctx = ingest_ctx_new(svc, &conf, errstr, sizeof(errstr));
    if (!ctx)
        return core_service_config_error(svc, errstr);
    if (core_service_subcommand(svc) || core_service_nfiles(svc) == 0) {
        /* No file named: the service (as every tributary service started
         * without arguments, it serves until SIGTERM). */
        if (core_service_subcommand(svc) && core_service_nfiles(svc) > 0) {
            fprintf(stderr, "svc-ingest: usage error: serve takes no file (drop files into "
                            "spool.dir or POST /batches)\n");
            rc = CORE_EX_USAGE;
        } else if ((rc = core_service_await_kafka(svc)) == CORE_SERVICE_CONTINUE) {
            rc = ingest_serve(svc, ctx, &conf);
        }
    } else if (conf.datasets.n != 1) {
        fprintf(stderr, "svc-ingest: usage error: one-shot mode takes exactly one --dataset\n");
        rc = CORE_EX_USAGE;
    } else if ((rc = core_service_await_kafka(svc)) == CORE_SERVICE_CONTINUE) {
        /* the start-up policy first; broker.timeout.ms then bounds an
         * outage in the middle of a file */
        rc = run_files(svc, ctx);
    }
    ingest_ctx_free(ctx);
    return rc;
}

static const core_service_def def = {
    .name = "svc-ingest",
    .summary = "batch files and change feeds into Avro records on Kafka",
    .usage = "svc-ingest --dataset NAME [--format csv|jsonl] [--batch.id ID] [--errors PATH] "
             "[--summary.json] [--force] FILE...  |  svc-ingest serve [options]",
    .http_port_default = "8081",
    .keys = ingest_keys,
    .aliases = ingest_aliases,
    .deprecated = ingest_deprecated,
    .conf = &conf,
    .subcommands = subcommands,
    .takes_files = true,
    .datasets = &conf.datasets,
    .run = run,
};

CORE_SERVICE_MAIN(def)
