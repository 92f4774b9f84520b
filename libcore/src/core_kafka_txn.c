/* core_kafka_txn.c — consume-transform-produce transactions: every call
 * answers OK / RETRY / ABORT / FATAL from librdkafka's error object. */
#include "core_kafka_int.h"

#include <stdio.h>
#include <string.h>

#include "tributary/core_log.h"

const char *core_kafka_txn_res2str(core_kafka_txn_res_t r)
{
    switch (r) {
    case CORE_KAFKA_TXN_OK: return "ok";
    case CORE_KAFKA_TXN_RETRY: return "retry";
    case CORE_KAFKA_TXN_ABORT: return "abort";
    case CORE_KAFKA_TXN_FATAL: return "fatal";
    }
    return "unknown";
}

/* Classify and consume \p e. */
static core_kafka_txn_res_t txn_result(core_kafka_producer_t *p, rd_kafka_error_t *e,
                                       const char *what, char *errstr, size_t errstr_size)
{
    core_kafka_txn_res_t r;

    if (!e)
        return CORE_KAFKA_TXN_OK;
    if (rd_kafka_error_is_fatal(e)) {
        r = CORE_KAFKA_TXN_FATAL;
        atomic_store(&p->common.fatal, true);
    } else if (rd_kafka_error_txn_requires_abort(e)) {
        r = CORE_KAFKA_TXN_ABORT;
    } else if (rd_kafka_error_is_retriable(e)) {
        r = CORE_KAFKA_TXN_RETRY;
    } else {
        r = CORE_KAFKA_TXN_FATAL; /* wrong state or not transactional: a bug */
    }
    core_errstr(errstr, errstr_size, "kafka transaction %s: %s (%s; %s)", what,
                rd_kafka_error_string(e), rd_kafka_error_name(e), core_kafka_txn_res2str(r));
    if (r == CORE_KAFKA_TXN_FATAL)
        core_log_error("kafka transaction failed: the producer must be rebuilt",
                       CLF_S("client", rd_kafka_name(p->common.rk)), CLF_S("call", what),
                       CLF_S("error", rd_kafka_error_name(e)),
                       CLF_S("reason", rd_kafka_error_string(e)));
    else
        core_log_(r == CORE_KAFKA_TXN_ABORT ? CORE_LOG_WARN : CORE_LOG_DEBUG,
                  "kafka transaction call failed", CLF_S("client", rd_kafka_name(p->common.rk)),
                  CLF_S("call", what), CLF_S("error", rd_kafka_error_name(e)),
                  CLF_S("outcome", core_kafka_txn_res2str(r)),
                  CLF_S("reason", rd_kafka_error_string(e)));
    rd_kafka_error_destroy(e);
    return r;
}

static void drop_txn_offsets(core_kafka_producer_t *p)
{
    if (p->txn_offsets)
        rd_kafka_topic_partition_list_destroy(p->txn_offsets);
    p->txn_offsets = NULL;
    p->txn_consumer = NULL;
}

static bool check_txn(core_kafka_producer_t *p, const char *what, char *errstr,
                      size_t errstr_size)
{
    if (!p || !p->transactional) {
        core_errstr(errstr, errstr_size, "kafka transaction %s: %s", what,
                    !p ? "no producer" : "producer has no transactional.id");
        return false;
    }
    return true;
}

core_kafka_txn_res_t core_kafka_txn_init(core_kafka_producer_t *p, int timeout_ms,
                                         char *errstr, size_t errstr_size)
{
    if (!check_txn(p, "init", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    return txn_result(p, rd_kafka_init_transactions(p->common.rk, timeout_ms), "init", errstr,
                      errstr_size);
}

core_kafka_txn_res_t core_kafka_txn_begin(core_kafka_producer_t *p,
                                          char *errstr, size_t errstr_size)
{
    core_kafka_txn_res_t r;

    if (!check_txn(p, "begin", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    r = txn_result(p, rd_kafka_begin_transaction(p->common.rk), "begin", errstr, errstr_size);
    if (r == CORE_KAFKA_TXN_OK) {
        p->txn_open = true;
        drop_txn_offsets(p);
    }
    return r;
}

/* Positions (next offset to read) of the assigned partitions that have one. */
static rd_kafka_topic_partition_list_t *positions(core_kafka_consumer_t *c, char *errstr,
                                                  size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *all = NULL, *l;
    rd_kafka_resp_err_t err;

    all = core_kafka_consumer_assignment(c);
    if (!all) {
        core_errstr(errstr, errstr_size, "kafka transaction send_offsets: out of memory");
        return NULL;
    }
    err = rd_kafka_position(c->common.rk, all);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka transaction send_offsets: positions: %s",
                    rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(all);
        return NULL;
    }
    l = rd_kafka_topic_partition_list_new(all->cnt > 0 ? all->cnt : 1);
    for (int i = 0; i < all->cnt; i++)
        if (!all->elems[i].err && all->elems[i].offset >= 0)
            rd_kafka_topic_partition_list_add(l, all->elems[i].topic, all->elems[i].partition)
                ->offset = all->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(all);
    return l;
}

core_kafka_txn_res_t core_kafka_txn_send_offsets(core_kafka_producer_t *p,
                                                 core_kafka_consumer_t *c,
                                                 const rd_kafka_topic_partition_list_t *offsets,
                                                 int timeout_ms,
                                                 char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *own = NULL;
    rd_kafka_consumer_group_metadata_t *gm;
    rd_kafka_error_t *e;

    if (!check_txn(p, "send_offsets", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    if (!c) {
        core_errstr(errstr, errstr_size, "kafka transaction send_offsets: no consumer");
        return CORE_KAFKA_TXN_FATAL;
    }
    if (!offsets) {
        own = positions(c, errstr, errstr_size);
        if (!own)
            return CORE_KAFKA_TXN_RETRY;
        offsets = own;
    }
    /* The consumer's offsets now move with transactions: librdkafka's
     * consumer_lag (from its own commits) would only grow. */
    atomic_store(&c->lag_from_position, true);
    if (offsets->cnt == 0) {
        if (own)
            rd_kafka_topic_partition_list_destroy(own);
        return CORE_KAFKA_TXN_OK;
    }
    gm = rd_kafka_consumer_group_metadata(c->common.rk);
    if (!gm) {
        if (own)
            rd_kafka_topic_partition_list_destroy(own);
        core_errstr(errstr, errstr_size,
                    "kafka transaction send_offsets: the consumer has no group metadata");
        return CORE_KAFKA_TXN_FATAL;
    }
    e = rd_kafka_send_offsets_to_transaction(p->common.rk, offsets, gm, timeout_ms);
    rd_kafka_consumer_group_metadata_destroy(gm);
    if (!e) {
        if (p->txn_consumer && p->txn_consumer != c)
            drop_txn_offsets(p); /* one consumer per transaction */
        if (!p->txn_offsets)
            p->txn_offsets = rd_kafka_topic_partition_list_new(offsets->cnt);
        core_kafka_offsets_merge_max(p->txn_offsets, offsets);
        p->txn_consumer = c;
    }
    if (own)
        rd_kafka_topic_partition_list_destroy(own);
    return txn_result(p, e, "send_offsets", errstr, errstr_size);
}

core_kafka_txn_res_t core_kafka_txn_commit(core_kafka_producer_t *p, int timeout_ms,
                                           char *errstr, size_t errstr_size)
{
    core_kafka_txn_res_t r;
    double t0;

    if (!check_txn(p, "commit", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    t0 = core_mono_s();
    r = txn_result(p, rd_kafka_commit_transaction(p->common.rk, timeout_ms), "commit", errstr,
                   errstr_size);
    if (r == CORE_KAFKA_TXN_OK) {
        core_kafka_consumer_t *c = p->txn_consumer;

        p->txn_open = false;
        core_metric_observe(p->txn_commit_seconds, core_mono_s() - t0);
        if (c && p->txn_offsets) {
            if (!c->txn_committed)
                c->txn_committed = rd_kafka_topic_partition_list_new(p->txn_offsets->cnt);
            core_kafka_offsets_merge_max(c->txn_committed, p->txn_offsets);
        }
        drop_txn_offsets(p);
    } else if (r == CORE_KAFKA_TXN_FATAL) {
        drop_txn_offsets(p);
    }
    return r;
}

core_kafka_txn_res_t core_kafka_txn_abort(core_kafka_producer_t *p, int timeout_ms,
                                          char *errstr, size_t errstr_size)
{
    core_kafka_txn_res_t r;

    if (!check_txn(p, "abort", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    r = txn_result(p, rd_kafka_abort_transaction(p->common.rk, timeout_ms), "abort", errstr,
                   errstr_size);
    if (r == CORE_KAFKA_TXN_OK) {
        p->txn_open = false;
        core_metric_inc(p->txn_aborts);
    }
    if (r != CORE_KAFKA_TXN_RETRY)
        drop_txn_offsets(p);
    return r;
}

core_kafka_txn_res_t core_kafka_txn_abort_rewind(core_kafka_producer_t *p,
                                                 core_kafka_consumer_t *c, int timeout_ms,
                                                 char *errstr, size_t errstr_size)
{
    int64_t deadline = core_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    core_err_t ce;

    if (!check_txn(p, "abort", errstr, errstr_size))
        return CORE_KAFKA_TXN_FATAL;
    if (!c) {
        core_errstr(errstr, errstr_size, "kafka transaction abort: no consumer");
        return CORE_KAFKA_TXN_FATAL;
    }
    while (p->txn_open) {
        int64_t left = deadline - core_mono_ms();
        core_kafka_txn_res_t r;

        if (left <= 0)
            return CORE_KAFKA_TXN_RETRY; /* errstr holds the last reason, if any */
        r = core_kafka_txn_abort(p, (int)left, errstr, errstr_size);
        if (r == CORE_KAFKA_TXN_FATAL)
            return r;
        if (r == CORE_KAFKA_TXN_ABORT)
            return CORE_KAFKA_TXN_FATAL; /* abort cannot require an abort */
    }
    {
        int64_t left = deadline - core_mono_ms();

        ce = core_kafka_consumer_rewind(c, left > 0 ? (int)left : 1, errstr, errstr_size);
    }
    if (ce == CORE_OK)
        return CORE_KAFKA_TXN_OK;
    return ce == CORE_ERR_FATAL ? CORE_KAFKA_TXN_FATAL : CORE_KAFKA_TXN_RETRY;
}
