/* kafka.c — svc-ingest's Kafka plumbing around a run: is the broker
 * answering, the compacted checkpoint topic, and the last committed
 * checkpoint of a batch (ingest_int.h). */
#include "ingest.h"
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

/* Is the broker answering? @returns true, or false with errstr. */
bool ingest_kafka_reachable(core_kafka_producer_t *p, int timeout_ms, char *errstr,
                             size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(core_kafka_producer_handle(p), 0, NULL, &md,
                                                timeout_ms);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;

    if (!ok)
        core_errstr(errstr, errstr_size, "kafka: broker unreachable within %d ms: %s", timeout_ms,
                    err ? rd_kafka_err2str(err) : "no broker in metadata");
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

/* Create the compacted checkpoint topic when missing. */
int ingest_kafka_checkpoint_topic(core_kafka_producer_t *p, const char *topic, int timeout_ms,
                                   char *errstr, size_t errstr_size)
{
    rd_kafka_t *rk = core_kafka_producer_handle(p);
    char e[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, -1, e, sizeof(e));
    rd_kafka_queue_t *q;
    rd_kafka_AdminOptions_t *ao;
    rd_kafka_event_t *ev;
    int rc = -1;

    if (!nt) {
        core_errstr(errstr, errstr_size, "checkpoint.topic: %s", e);
        return -1;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    q = rd_kafka_queue_new(rk);
    ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        core_errstr(errstr, errstr_size, "checkpoint.topic %s: no answer from the broker", topic);
    } else if (rd_kafka_event_error(ev)) {
        core_errstr(errstr, errstr_size, "checkpoint.topic %s: %s", topic,
                    rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        rd_kafka_resp_err_t terr = n ? rd_kafka_topic_result_error(tr[0]) : 0;
        if (terr == 0 || terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = 0;
        else
            core_errstr(errstr, errstr_size, "checkpoint.topic %s: %s", topic,
                        rd_kafka_topic_result_error_string(tr[0]));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* A count or an offset of the checkpoint, exactly from its digits. */
static uint64_t jnum(const cJSON *o, const char *k)
{
    int64_t v;

    return core_json_int_get(cJSON_GetObjectItemCaseSensitive(o, k), 0, INT64_MAX, &v)
               ? (uint64_t)v
               : 0;
}

static void parse_ckpt(const char *text, size_t len, struct ckpt *ck)
{
    cJSON *j = core_json_parse(text, len, NULL);
    const cJSON *fid;

    memset(ck, 0, sizeof(*ck));
    if (!j)
        return;
    ck->found = true;
    ck->done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"));
    fid = cJSON_GetObjectItemCaseSensitive(j, "file_id");
    if (cJSON_IsString(fid))
        snprintf(ck->file_id, sizeof(ck->file_id), "%s", fid->valuestring);
    ck->offset = jnum(j, "offset");
    ck->line = jnum(j, "line");
    ck->rows_read = jnum(j, "rows_read");
    ck->published = jnum(j, "published");
    ck->rejected = jnum(j, "rejected");
    ck->errors_bytes = jnum(j, "errors_bytes");
    ck->bytes = jnum(j, "bytes");
    cJSON_Delete(j);
}

/* Read the last committed checkpoint of batch_id (read_committed, to the
 * high watermark of every partition). @returns 0 or -1 + errstr.
 * Longer than most (about 155 lines) for a reason: one short-lived
 * consumer's whole life (watermarks, assign, read to them, keep the batch's
 * last checkpoint) with its one cleanup path at the end. */
int ingest_kafka_load_checkpoint(ingest_ctx *ctx, const char *topic, const char *batch_id,
                           struct ckpt *ck, int timeout_ms, char *errstr, size_t errstr_size)
{
    static const core_kafka_prop overrides[] = {
        { "enable.partition.eof", "true" },
        { "isolation.level", "read_committed" },
        { "statistics.interval.ms", "0" },
    };
    static const core_kafka_prop wm_overrides[] = {
        { "isolation.level", "read_uncommitted" },
        { "statistics.interval.ms", "0" },
    };
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c, *cw = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *hw = NULL;
    size_t nparts = 0, ndone = 0;
    char group[INGEST_MAX_BATCH_ID + 64], e[512];
    int64_t deadline;
    int rc = -1;
    size_t blen = strlen(batch_id);

    memset(ck, 0, sizeof(*ck));
    snprintf(group, sizeof(group), "tributary-ingest-ckpt-%s", batch_id);
    o.cfg = core_service_config(ctx->svc);
    o.overrides = overrides;
    o.noverrides = CORE_ARRAY_SIZE(overrides);
    o.group_id = group;
    c = core_kafka_consumer_new(&o, errstr, errstr_size);
    if (!c)
        return -1;
    /* The high watermarks come from a read_uncommitted client: a
     * read_committed one answers the last stable offset, which an open
     * transaction of another batch holds back (up to the transaction
     * timeout after its producer died); reading only to it could miss a
     * later committed checkpoint of ours. */
    o.overrides = wm_overrides;
    o.noverrides = CORE_ARRAY_SIZE(wm_overrides);
    cw = core_kafka_consumer_new(&o, errstr, errstr_size);
    if (!cw)
        goto out;
    /* the topic may have been created a moment ago: wait for its leaders */
    if (core_kafka_topic_metadata(core_kafka_consumer_handle(c), topic, timeout_ms, &md, e,
                                  sizeof(e)) != CORE_OK) {
        core_errstr(errstr, errstr_size, "checkpoint.%s", e);
        goto out;
    }
    nparts = (size_t)md->topics[0].partition_cnt;
    hw = calloc(nparts ? nparts : 1, sizeof(*hw));
    parts = rd_kafka_topic_partition_list_new((int)nparts);
    if (!hw || !parts) {
        core_errstr(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nparts; i++) {
        int32_t pid = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0, until = core_mono_ms() + timeout_ms;
        rd_kafka_resp_err_t err;

        /* a leader just elected may not answer for its partition yet */
        while ((err = rd_kafka_query_watermark_offsets(core_kafka_consumer_handle(cw), topic, pid,
                                                       &lo, &hi, timeout_ms)) != 0 &&
               core_kafka_err_topic_settling(err) && core_mono_ms() < until &&
               !core_lifecycle_wait(100))
            ;
        if (err) {
            core_errstr(errstr, errstr_size, "checkpoint.topic %s [%d]: %s", topic, (int)pid,
                        rd_kafka_err2str(err));
            goto out;
        }
        hw[i] = hi;
        if (hi <= lo)
            ndone++;
        rd_kafka_topic_partition_list_add(parts, topic, pid)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (ndone == nparts) {
        rc = 0;
        goto out;
    }
    if (core_kafka_consumer_assign(c, parts, errstr, errstr_size) != CORE_OK)
        goto out;
    /* Every partition to its high watermark: an open transaction of another
     * batch holds read_committed back until it ends (at most the
     * transaction timeout), so the deadline covers it. */
    deadline = core_mono_ms() + timeout_ms + TXN_TIMEOUT_MS;
    {
        bool *done = calloc(nparts, sizeof(bool));
        if (!done) {
            core_errstr(errstr, errstr_size, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < nparts; i++)
            done[i] = hw[i] <= 0;
        ndone = 0;
        for (size_t i = 0; i < nparts; i++)
            ndone += done[i];
        while (ndone < nparts) {
            rd_kafka_message_t *m;
            size_t idx = 0;

            if (core_mono_ms() > deadline) {
                core_errstr(errstr, errstr_size,
                            "checkpoint.topic %s: could not read to the end in time", topic);
                free(done);
                goto out;
            }
            m = core_kafka_consumer_poll(c, 500);
            if (!m)
                continue;
            for (size_t i = 0; i < nparts; i++)
                if (md->topics[0].partitions[i].id == m->partition)
                    idx = i;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->offset >= hw[idx] && !done[idx]) {
                    done[idx] = true;
                    ndone++;
                }
            } else if (m->err) {
                if (core_kafka_consumer_fatal(c, NULL, 0)) {
                    core_errstr(errstr, errstr_size, "checkpoint.topic %s: %s", topic,
                                rd_kafka_message_errstr(m));
                    rd_kafka_message_destroy(m);
                    free(done);
                    goto out;
                }
            } else {
                if (m->key_len == blen && memcmp(m->key, batch_id, blen) == 0) {
                    if (m->len > 0)
                        parse_ckpt(m->payload, m->len, ck);
                    else
                        memset(ck, 0, sizeof(*ck)); /* tombstone */
                }
                if (m->offset + 1 >= hw[idx] && !done[idx]) {
                    done[idx] = true;
                    ndone++;
                }
            }
            rd_kafka_message_destroy(m);
        }
        free(done);
    }
    rc = 0;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(hw);
    core_kafka_consumer_free(cw);
    core_kafka_consumer_free(c);
    return rc;
}
