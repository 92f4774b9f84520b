/* core_dlq.c — kept headers and dead-letter records (core_dlq.h). */
#include "tributary/core_dlq.h"

#include <stdbool.h>
#include <string.h>

const char *const core_dlq_kept[CORE_DLQ_NKEPT] = { CORE_HDR_ID, CORE_HDR_BATCH,
                                                    CORE_HDR_INGEST_TS, CORE_HDR_REPLAY,
                                                    CORE_HDR_REPLAY_OF };

/* The dead-letter headers core_dlq_headers_add() writes at most. */
#define DLQ_NADD 10

void core_dlq_add_str(rd_kafka_headers_t *h, const char *name, const char *s)
{
    rd_kafka_header_add(h, name, -1, s ? s : "", s ? (ssize_t)strlen(s) : 0);
}

void core_dlq_add_int(rd_kafka_headers_t *h, const char *name, int64_t x)
{
    char b[24], *p = b + sizeof(b);
    uint64_t u = x < 0 ? -(uint64_t)x : (uint64_t)x;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--p = '-';
    rd_kafka_header_add(h, name, -1, p, b + sizeof(b) - p);
}

/* Whether the list holds only kept headers, each at most once, in order. */
static bool only_kept(const rd_kafka_headers_t *in)
{
    const char *name;
    const void *val;
    size_t len, k = 0;

    for (size_t idx = 0;
         rd_kafka_header_get_all(in, idx, &name, &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
         idx++) {
        while (k < CORE_DLQ_NKEPT && strcmp(name, core_dlq_kept[k]) != 0)
            k++;
        if (k == CORE_DLQ_NKEPT)
            return false;
        k++;
    }
    return true;
}

static rd_kafka_headers_t *copy_kept(rd_kafka_headers_t *in, size_t nadd)
{
    rd_kafka_headers_t *out = rd_kafka_headers_new(CORE_DLQ_NKEPT + nadd);

    for (size_t i = 0; out && in && i < CORE_DLQ_NKEPT; i++) {
        const void *val;
        size_t len;

        if (rd_kafka_header_get_last(in, core_dlq_kept[i], &val, &len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_header_add(out, core_dlq_kept[i], -1, val, val ? (ssize_t)len : 0);
    }
    return out;
}

rd_kafka_headers_t *core_dlq_headers_kept(const rd_kafka_message_t *m, size_t nadd)
{
    rd_kafka_headers_t *in = NULL;

    /* librdkafka's getter takes a non-const message; it only reads it */
    if (rd_kafka_message_headers((rd_kafka_message_t *)m, &in) != RD_KAFKA_RESP_ERR_NO_ERROR)
        in = NULL;
    return copy_kept(in, nadd);
}

rd_kafka_headers_t *core_dlq_headers_take(rd_kafka_message_t *m, size_t nadd)
{
    rd_kafka_headers_t *in = NULL, *out;

    if (rd_kafka_message_headers(m, &in) != RD_KAFKA_RESP_ERR_NO_ERROR)
        in = NULL;
    if (in && only_kept(in) &&
        rd_kafka_message_detach_headers(m, &out) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return out;
    if (!in && nadd == 0)
        return NULL;
    out = copy_kept(in, nadd);
    if (out && nadd == 0 && rd_kafka_header_cnt(out) == 0) {
        rd_kafka_headers_destroy(out);
        return NULL;
    }
    return out;
}

void core_dlq_headers_add(rd_kafka_headers_t *h, const rd_kafka_message_t *m,
                          const core_dlq_error *e)
{
    core_dlq_add_str(h, "__connect.errors.topic", rd_kafka_topic_name(m->rkt));
    core_dlq_add_int(h, "__connect.errors.partition", m->partition);
    core_dlq_add_int(h, "__connect.errors.offset", m->offset);
    core_dlq_add_str(h, "__connect.errors.stage", e->stage);
    core_dlq_add_str(h, "__connect.errors.class.name", e->who);
    core_dlq_add_str(h, "__connect.errors.exception.class.name", e->exception);
    core_dlq_add_str(h, "__connect.errors.exception.message",
                     e->message && *e->message ? e->message : "refused");
    core_dlq_add_str(h, CORE_HDR_ERROR_CLASS, e->error_class);
    if (e->field)
        core_dlq_add_str(h, CORE_HDR_ERROR_FIELD, e->field);
    if (e->attempt >= 0)
        core_dlq_add_int(h, CORE_HDR_ATTEMPT, e->attempt);
}

rd_kafka_headers_t *core_dlq_headers(const rd_kafka_message_t *m, const core_dlq_error *e)
{
    rd_kafka_headers_t *h = core_dlq_headers_kept(m, DLQ_NADD);

    if (h)
        core_dlq_headers_add(h, m, e);
    return h;
}
