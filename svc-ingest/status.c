/* status.c — what a run shows and is named by: its topic, the input file's
 * digest (the checkpoint's file id), its status as JSON (the summary and
 * /status), the context the runs of a process share (metrics). */
#include "ingest.h"
#include "ingest_int.h"

#include "tributary/core_common.h"
#include "tributary/core_json.h"
#include "tributary/core_topics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ingest_topic(const ingest_conf *c, const char *dataset, char *buf, size_t size,
                 char *errstr, size_t errstr_size)
{
    if (c->topic && *c->topic) {
        if (!core_topic_valid(c->topic)) {
            core_errstr(errstr, errstr_size, "topic: \"%s\" is not a Kafka topic name", c->topic);
            return CORE_ERR_INVALID;
        }
        snprintf(buf, size, "%s", c->topic);
        return 0;
    }
    return core_topic_name(c->topic_prefix, dataset, CORE_TOPIC_RAW, buf, size, errstr,
                           errstr_size);
}

void ingest_status_lock(ingest_status *st)
{
    if (st->lock)
        pthread_mutex_lock(st->lock);
}

void ingest_status_unlock(ingest_status *st)
{
    if (st->lock)
        pthread_mutex_unlock(st->lock);
}

int ingest_file_digest(const char *path, char hex[65], char *errstr, size_t errstr_size)
{
    unsigned char buf[1 << 16], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *md_ctx;
    FILE *f;
    size_t n;
    int rc = 0;

    f = fopen(path, "rb");
    if (!f) {
        core_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    md_ctx = EVP_MD_CTX_new();
    if (!md_ctx || EVP_DigestInit_ex(md_ctx, EVP_sha256(), NULL) != 1) {
        core_errstr(errstr, errstr_size, "sha256: cannot initialise");
        rc = -1;
        goto out;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md_ctx, buf, n);
    if (ferror(f)) {
        core_errstr(errstr, errstr_size, "%s: read error: %s", path, strerror(errno));
        rc = -1;
        goto out;
    }
    EVP_DigestFinal_ex(md_ctx, md, &mdlen);
    for (unsigned i = 0; i < 32 && i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
    EVP_MD_CTX_free(md_ctx);
    fclose(f);
    return rc;
}

char *ingest_status_json(const ingest_status *st, const char *file, const char *dataset,
                         const char *state)
{
    cJSON *j = cJSON_CreateObject();
    char *out;

    if (!j)
        return NULL;
    if (state)
        cJSON_AddStringToObject(j, "state", state);
    cJSON_AddStringToObject(j, "batch_id", st->batch_id);
    if (file)
        cJSON_AddStringToObject(j, "file", file);
    if (dataset)
        cJSON_AddStringToObject(j, "dataset", dataset);
    cJSON_AddItemToObject(j, "rows_read", core_json_int((int64_t)st->rows_read));
    cJSON_AddItemToObject(j, "published", core_json_int((int64_t)st->published));
    cJSON_AddItemToObject(j, "rejected", core_json_int((int64_t)st->rejected));
    cJSON_AddItemToObject(j, "bytes", core_json_int((int64_t)st->bytes));
    cJSON_AddNumberToObject(j, "seconds", st->seconds);
    cJSON_AddNumberToObject(j, "percent",
                            st->file_size ? 100.0 * (double)st->pos / (double)st->file_size : 0.0);
    cJSON_AddItemToObject(j, "resumed_from_line", core_json_int((int64_t)st->resumed_line));
    cJSON_AddBoolToObject(j, "skipped", st->skipped);
    cJSON_AddBoolToObject(j, "interrupted", st->interrupted);
    if (st->errors_path[0])
        cJSON_AddStringToObject(j, "errors_file", st->errors_path);
    cJSON_AddNumberToObject(j, "exit_code", st->exit_code);
    if (st->error[0])
        cJSON_AddStringToObject(j, "error", st->error);
    else
        cJSON_AddNullToObject(j, "error");
    out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

ingest_ctx *ingest_ctx_new(core_service_t *svc, const ingest_conf *conf, char *errstr,
                           size_t errstr_size)
{
    static const char *const l_ds[] = { "dataset", NULL };
    static const char *const l_ds_reason[] = { "dataset", "reason", NULL };
    static const char *const l_ds_outcome[] = { "dataset", "outcome", NULL };
    core_metrics_t *m = core_metrics_global();
    ingest_ctx *ctx = calloc(1, sizeof(*ctx));

    if (!ctx) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ctx->svc = svc;
    ctx->conf = conf;
    ctx->cat = core_service_catalog(svc);
    ctx->f_read = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_ingest_lines_read_total",
                                      "Input records read (published or rejected)", l_ds, NULL, 0,
                                      errstr, errstr_size);
    ctx->f_pub = core_metrics_family(m, CORE_METRIC_COUNTER,
                                     "tributary_ingest_records_published_total",
                                     "Records published to <dataset>.raw (committed)", l_ds, NULL,
                                     0, errstr, errstr_size);
    ctx->f_rej = core_metrics_family(m, CORE_METRIC_COUNTER,
                                     "tributary_ingest_lines_rejected_total",
                                     "Input records rejected, by reason", l_ds_reason, NULL, 0,
                                     errstr, errstr_size);
    ctx->f_bytes = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_ingest_bytes_read_total",
                                       "Uncompressed input bytes read", l_ds, NULL, 0, errstr,
                                       errstr_size);
    ctx->f_depth = core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_ingest_queue_depth",
                                       "Records handed to the producer and not yet acknowledged",
                                       NULL, NULL, 0, errstr, errstr_size);
    ctx->f_commit = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                        "tributary_ingest_checkpoint_seconds",
                                        "Time to commit one transaction (records + checkpoint), "
                                        "i.e. until the broker acknowledged everything",
                                        NULL, NULL, 0, errstr, errstr_size);
    ctx->f_files = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_ingest_files_total",
                                       "Files ingested, by outcome", l_ds_outcome, NULL, 0,
                                       errstr, errstr_size);
    if (!ctx->f_read || !ctx->f_pub || !ctx->f_rej || !ctx->f_bytes || !ctx->f_depth ||
        !ctx->f_commit || !ctx->f_files) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

void ingest_ctx_free(ingest_ctx *ctx)
{
    free(ctx);
}
