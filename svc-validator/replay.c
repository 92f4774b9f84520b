/* replay.c — re-publish chosen DLQ records to the raw topic. */
#include "replay.h"

#include "tributary/core_avro.h"
#include "tributary/core_dlq.h"
#include "tributary/core_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int replay_parse_since(const char *text, int64_t *msp)
{
    char *end;
    long long x;

    if (!text || !*text)
        return -1;
    x = strtoll(text, &end, 10);
    if (*end == '\0' && x >= 0) {
        *msp = (int64_t)x;
        return 0;
    }
    return core_avro_time_parse(text, msp, NULL, 0) == CORE_OK ? 0 : -1;
}

static bool header_is(const rd_kafka_message_t *rkm, const char *name, const char *want,
                      bool substring)
{
    rd_kafka_headers_t *h = NULL;
    const void *val;
    size_t len;
    char buf[1024];

    if (rd_kafka_message_headers(rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
        return false;
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return substring ? strstr(buf, want) != NULL : strcmp(buf, want) == 0;
}

static void dr(void *opaque, const rd_kafka_message_t *rkm, void *user)
{
    (void)opaque;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        (*(size_t *)user)++;
}

static int partitions_of(rd_kafka_t *rk, const char *topic, int *np, char *errstr,
                         size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    char e[512];

    if (core_kafka_topic_metadata(rk, topic, 10000, &md, e, sizeof(e)) != CORE_OK) {
        core_errstr(errstr, errstr_size, "replay: %s", e);
        return -1;
    }
    *np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

int replay_run(const replay_params *p, replay_result *res, char *errstr, size_t errstr_size)
{
    static const core_kafka_prop consumer_over[] = {
        { "enable.partition.eof", "true" },
        { "isolation.level", "read_committed" },
    };
    core_kafka_consumer_opts co = { 0 };
    core_kafka_producer_opts po = { 0 };
    core_kafka_consumer_t *c = NULL;
    core_kafka_producer_t *prod = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    size_t delivered = 0;
    int np = 0, eofs = 0, rc = -1;
    int64_t deadline = core_mono_ms() + (p->timeout_ms > 0 ? p->timeout_ms : 120000);
    char group[128];

    memset(res, 0, sizeof(*res));
    snprintf(group, sizeof(group), "tributary-validator-replay-%d", (int)getpid());
    co.cfg = p->cfg;
    co.defaults = p->kafka_defaults;
    co.ndefaults = p->nkafka_defaults;
    co.overrides = consumer_over;
    co.noverrides = CORE_ARRAY_SIZE(consumer_over);
    co.group_id = group;
    c = core_kafka_consumer_new(&co, errstr, errstr_size);
    if (!c)
        goto out;
    if (!p->dry_run) {
        po.cfg = p->cfg;
        po.defaults = p->kafka_defaults;
        po.ndefaults = p->nkafka_defaults;
        po.dr_cb = dr;
        po.dr_user = &delivered;
        prod = core_kafka_producer_new(&po, errstr, errstr_size);
        if (!prod)
            goto out;
    }
    if (partitions_of(core_kafka_consumer_handle(c), p->dlq_topic, &np, errstr, errstr_size))
        goto out;
    parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, p->dlq_topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    if (core_kafka_consumer_assign(c, parts, errstr, errstr_size) != CORE_OK)
        goto out;
    while (eofs < np) {
        rd_kafka_message_t *rkm;

        if (core_mono_ms() > deadline) {
            core_errstr(errstr, errstr_size, "replay: %s not read to its end in time",
                        p->dlq_topic);
            goto out;
        }
        rkm = core_kafka_consumer_poll(c, 200);
        if (!rkm)
            continue;
        if (rkm->err) {
            if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                eofs++;
            rd_kafka_message_destroy(rkm);
            if (core_kafka_consumer_fatal(c, errstr, errstr_size))
                goto out;
            continue;
        }
        res->scanned++;
        if ((!p->error_class || header_is(rkm, CORE_HDR_ERROR_CLASS, p->error_class, false)) &&
            (!p->reason ||
             header_is(rkm, "__connect.errors.exception.message", p->reason, true)) &&
            (p->since_ms <= 0 || rd_kafka_message_timestamp(rkm, NULL) >= p->since_ms)) {
            res->matched++;
            if (prod) {
                /* the kept headers as they were; the error headers go */
                rd_kafka_headers_t *hs = core_dlq_headers_kept(rkm, 1);
                char of[300];
                core_err_t e;

                if (!hs) {
                    core_errstr(errstr, errstr_size, "replay: out of memory");
                    rd_kafka_message_destroy(rkm);
                    goto out;
                }
                snprintf(of, sizeof(of), "%s/%" PRId32 "/%" PRId64, p->dlq_topic,
                         rkm->partition, rkm->offset);
                core_dlq_add_str(hs, "tb.replay.of", of);
                e = core_kafka_produce_hdrs(prod, p->raw_topic, rkm->key, rkm->key_len,
                                            rkm->payload, rkm->len, hs, NULL, errstr,
                                            errstr_size);
                if (e != CORE_OK) {
                    rd_kafka_message_destroy(rkm);
                    goto out;
                }
            }
        }
        rd_kafka_message_destroy(rkm);
    }
    if (prod) {
        int64_t left = deadline - core_mono_ms();

        if (core_kafka_producer_flush(prod, (int)(left > 1000 ? left : 1000)) > 0 ||
            delivered != res->matched) {
            res->published = delivered;
            core_errstr(errstr, errstr_size, "replay: %zu of %zu records delivered to %s",
                        delivered, res->matched, p->raw_topic);
            goto out;
        }
    }
    res->published = delivered;
    rc = 0;
out:
    if (prod) {
        core_kafka_producer_flush(prod, 10000);
        res->published = delivered;
    }
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    core_kafka_producer_free(prod);
    core_kafka_consumer_free(c);
    return rc;
}
