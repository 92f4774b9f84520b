/* core_kafka_consumer.c — consumer-group consumer with manual offsets:
 * rebalancing (EAGER and COOPERATIVE), commit/store, pause/resume, seek and
 * rewind to the committed offsets. */
#include "core_kafka_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

enum assignment_change { ASSIGNMENT_SET, ASSIGNMENT_ADD, ASSIGNMENT_REMOVE };

/* Track what librdkafka was told: SET replaces the assignment (EAGER, or a
 * manual assign; NULL clears it), ADD and REMOVE apply an incremental
 * (COOPERATIVE) change. */
static void assignment_change(core_kafka_consumer_t *c, enum assignment_change how,
                              const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *a;

    pthread_mutex_lock(&c->assignment_lock);
    a = c->assignment;
    if (how == ASSIGNMENT_SET) {
        rd_kafka_topic_partition_list_destroy(a);
        a = parts ? rd_kafka_topic_partition_list_copy(parts)
                  : rd_kafka_topic_partition_list_new(0);
    } else {
        for (int i = 0; parts && i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &parts->elems[i];
            bool have = rd_kafka_topic_partition_list_find(a, tp->topic, tp->partition) != NULL;

            if (how == ASSIGNMENT_ADD && !have)
                rd_kafka_topic_partition_list_add(a, tp->topic, tp->partition);
            else if (how == ASSIGNMENT_REMOVE && have)
                rd_kafka_topic_partition_list_del(a, tp->topic, tp->partition);
        }
    }
    c->assignment = a;
    atomic_store(&c->assigned, (size_t)a->cnt);
    pthread_mutex_unlock(&c->assignment_lock);
}

rd_kafka_topic_partition_list_t *core_kafka_consumer_assignment(core_kafka_consumer_t *c)
{
    rd_kafka_topic_partition_list_t *l;

    pthread_mutex_lock(&c->assignment_lock);
    l = rd_kafka_topic_partition_list_copy(c->assignment);
    pthread_mutex_unlock(&c->assignment_lock);
    return l;
}

void core_kafka_offsets_merge_max(rd_kafka_topic_partition_list_t *dst,
                                  const rd_kafka_topic_partition_list_t *src)
{
    for (int i = 0; src && i < src->cnt; i++) {
        const rd_kafka_topic_partition_t *s = &src->elems[i];
        rd_kafka_topic_partition_t *d;

        if (s->offset < 0)
            continue;
        d = rd_kafka_topic_partition_list_find(dst, s->topic, s->partition);
        if (!d)
            d = rd_kafka_topic_partition_list_add(dst, s->topic, s->partition);
        else if (d->offset >= s->offset)
            continue;
        d->offset = s->offset;
    }
}

static void forget_txn_committed(core_kafka_consumer_t *c,
                                 const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; c->txn_committed && i < parts->cnt; i++)
        rd_kafka_topic_partition_list_del(c->txn_committed, parts->elems[i].topic,
                                          parts->elems[i].partition);
}

static void count_rebalance(core_kafka_consumer_t *c, const char *event)
{
    core_metric_inc(core_metrics_series1(c->rebalances_fam, event));
}

/* Served from core_kafka_consumer_poll() / _close() (the consumer's thread). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    core_kafka_consumer_t *c = opaque;
    /* never rd_kafka_rebalance_protocol() here: see assignment_lock */
    bool coop = c->cooperative;
    const char *proto = coop ? "COOPERATIVE" : "EAGER";
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *what;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        what = "assign";
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            re = rd_kafka_assign(rk, parts);
        if (!e && !re) {
            if (c->paused_all && parts->cnt > 0)
                rd_kafka_pause_partitions(rk, parts);
            assignment_change(c, coop ? ASSIGNMENT_ADD : ASSIGNMENT_SET, parts);
            count_rebalance(c, "assign");
            core_log_info("kafka partitions assigned", CLF_S("client", rd_kafka_name(rk)),
                          CLF_S("protocol", proto), CLF_I("count", parts->cnt),
                          CLF_I("assigned", atomic_load(&c->assigned)));
            if (c->hooks_enabled && c->on_assign && parts->cnt > 0)
                c->on_assign(c, parts, false, c->hook_user);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(rk) != 0;

        what = "revoke";
        if (c->hooks_enabled && c->on_revoke && parts->cnt > 0)
            c->on_revoke(c, parts, lost, c->hook_user);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            re = rd_kafka_assign(rk, NULL);
        forget_txn_committed(c, parts);
        assignment_change(c, coop ? ASSIGNMENT_REMOVE : ASSIGNMENT_SET, coop ? parts : NULL);
        /* The registry cannot drop one series: clear the family, the next
         * statistics callback sets the partitions still assigned again. */
        core_metrics_family_clear(c->common.fams.lag);
        count_rebalance(c, lost ? "lost" : "revoke");
        core_log_(lost ? CORE_LOG_WARN : CORE_LOG_INFO,
                  lost ? "kafka partitions lost" : "kafka partitions revoked",
                  CLF_S("client", rd_kafka_name(rk)), CLF_S("protocol", proto),
                  CLF_I("count", parts->cnt), CLF_I("assigned", atomic_load(&c->assigned)));
    } else {
        what = "error";
        core_log_error("kafka rebalance error", CLF_S("client", rd_kafka_name(rk)),
                       CLF_S("error", rd_kafka_err2name(err)));
        re = rd_kafka_assign(rk, NULL);
        assignment_change(c, ASSIGNMENT_SET, NULL);
    }
    if (e || re) {
        core_log_error("kafka rebalance: assignment change failed",
                       CLF_S("client", rd_kafka_name(rk)), CLF_S("event", what),
                       CLF_S("error", e ? rd_kafka_error_name(e) : rd_kafka_err2name(re)),
                       CLF_S("reason", e ? rd_kafka_error_string(e) : rd_kafka_err2str(re)));
        if (e)
            rd_kafka_error_destroy(e);
    }
}

static void consumer_struct_free(core_kafka_consumer_t *c)
{
    if (c->txn_committed)
        rd_kafka_topic_partition_list_destroy(c->txn_committed);
    rd_kafka_topic_partition_list_destroy(c->assignment);
    pthread_mutex_destroy(&c->assignment_lock);
    free(c);
}

core_kafka_consumer_t *core_kafka_consumer_new(const core_kafka_consumer_opts *opts,
                                               char *errstr, size_t errstr_size)
{
    static const char *const err_labels[] = { "error", NULL };
    static const char *const event_labels[] = { "event", NULL };
    core_kafka_prop defaults[32];
    core_kafka_prop enforced[3] = {
        { "enable.auto.commit", "false" },
        { "enable.auto.offset.store", "false" },
        { "group.id", NULL },
    };
    size_t ndefaults = 0, nenforced = 2;
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c;
    rd_kafka_conf_t *conf;
    char buf[512];

    if (opts)
        o = *opts;
    if (o.ndefaults + 5 > CORE_ARRAY_SIZE(defaults)) {
        core_errstr(errstr, errstr_size, "kafka consumer: too many default properties (%zu)",
                    o.ndefaults);
        return NULL;
    }
    defaults[ndefaults++] = (core_kafka_prop){ "auto.offset.reset", "earliest" };
    defaults[ndefaults++] = (core_kafka_prop){ "isolation.level", "read_committed" };
    defaults[ndefaults++] = (core_kafka_prop){ "statistics.interval.ms",
                                               CORE_KAFKA_STATS_INTERVAL_MS };
    /* A subscribed topic that does not exist yet (the stage before has not
     * produced to it) is looked for again at every metadata refresh:
     * librdkafka's 5 min default would leave the consumer idle that long. */
    defaults[ndefaults++] = (core_kafka_prop){ "topic.metadata.refresh.interval.ms", "10000" };
    /* The prefetch queue: librdkafka's 64 MB default lets a consumer that is
     * behind grow by that much (svc-validator at 50k/s offered: 46-113 MB
     * resident, bench_latency.sh). 16 MB is still over a second of records
     * at the highest rates measured here; librdkafka lowers fetch.max.bytes
     * to it unless that is set. */
    defaults[ndefaults++] = (core_kafka_prop){ "queued.max.messages.kbytes", "16384" };
    for (size_t i = 0; i < o.ndefaults; i++)
        defaults[ndefaults++] = o.defaults[i];
    if (o.group_id) {
        if (!*o.group_id) {
            core_errstr(errstr, errstr_size, "kafka consumer: empty group id");
            return NULL;
        }
        enforced[nenforced++].value = o.group_id;
    }

    conf = core_kafka_conf_build(o.cfg, CORE_KAFKA_CONSUMER, defaults, ndefaults, o.overrides,
                                 o.noverrides, enforced, nenforced, errstr, errstr_size);
    if (!conf)
        return NULL;
    if (!core_kafka_conf_get(conf, "group.id", buf, sizeof(buf)) || !buf[0]) {
        rd_kafka_conf_destroy(conf);
        core_errstr(errstr, errstr_size, "kafka.group.id: required for a consumer");
        return NULL;
    }

    c = calloc(1, sizeof(*c));
    if (!c) {
        rd_kafka_conf_destroy(conf);
        core_errstr(errstr, errstr_size, "kafka consumer: out of memory");
        return NULL;
    }
    c->common.kind = CORE_KAFKA_CONSUMER;
    c->on_assign = o.on_assign;
    c->on_revoke = o.on_revoke;
    c->hook_user = o.hook_user;
    c->hooks_enabled = true;
    if (core_kafka_conf_get(conf, "auto.offset.reset", buf, sizeof(buf)))
        c->reset_latest = strcmp(buf, "latest") == 0 || strcmp(buf, "largest") == 0 ||
                          strcmp(buf, "end") == 0;
    /* librdkafka refuses a list that mixes the protocols */
    if (core_kafka_conf_get(conf, "partition.assignment.strategy", buf, sizeof(buf)))
        c->cooperative = strstr(buf, "cooperative") != NULL;
    c->assignment = rd_kafka_topic_partition_list_new(0);
    pthread_mutex_init(&c->assignment_lock, NULL);
    if (core_kafka_fams_init(&c->common.fams, o.metrics, errstr, errstr_size) != CORE_OK) {
        rd_kafka_conf_destroy(conf);
        consumer_struct_free(c);
        return NULL;
    }
    c->commit_errors_fam = core_kafka_family(c->common.fams.m, CORE_METRIC_COUNTER,
                                             "tributary_kafka_commit_errors_total",
                                             "Kafka offset commits that failed", err_labels);
    c->rebalances_fam = core_kafka_family(c->common.fams.m, CORE_METRIC_COUNTER,
                                          "tributary_kafka_rebalances_total",
                                          "Consumer group rebalance events", event_labels);

    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    core_kafka_conf_set_common_cbs(conf, &c->common);
    c->common.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof(buf));
    if (!c->common.rk) {
        rd_kafka_conf_destroy(conf);
        core_errstr(errstr, errstr_size, "kafka consumer: %s", buf);
        consumer_struct_free(c);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->common.rk);
    return c;
}

void core_kafka_consumer_free(core_kafka_consumer_t *c)
{
    if (!c)
        return;
    if (!c->closed) {
        c->hooks_enabled = false;
        core_kafka_consumer_close(c, NULL, 0);
    }
    rd_kafka_destroy(c->common.rk);
    consumer_struct_free(c);
}

core_err_t core_kafka_consumer_subscribe(core_kafka_consumer_t *c,
                                         const char *const *topics, size_t n,
                                         char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;

    if (!c || (!topics && n) || n == 0 || n > 100000) {
        core_errstr(errstr, errstr_size, "kafka subscribe: %s",
                    !c ? "no consumer" : "no topics");
        return CORE_ERR_INVALID;
    }
    l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        if (!topics[i] || !*topics[i]) {
            rd_kafka_topic_partition_list_destroy(l);
            core_errstr(errstr, errstr_size, "kafka subscribe: topic %zu is empty", i);
            return CORE_ERR_INVALID;
        }
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    }
    err = rd_kafka_subscribe(c->common.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka subscribe: %s", rd_kafka_err2str(err));
        return core_kafka_err_class(err) == CORE_ERR_TRANSIENT ? CORE_ERR_TRANSIENT
                                                                : CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_err_t core_kafka_consumer_assign(core_kafka_consumer_t *c,
                                      const rd_kafka_topic_partition_list_t *parts,
                                      char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;

    if (!c) {
        core_errstr(errstr, errstr_size, "kafka assign: no consumer");
        return CORE_ERR_INVALID;
    }
    for (int i = 0; parts && i < parts->cnt; i++) {
        if (!parts->elems[i].topic || !*parts->elems[i].topic || parts->elems[i].partition < 0) {
            core_errstr(errstr, errstr_size, "kafka assign: entry %d has no topic or partition",
                        i);
            return CORE_ERR_INVALID;
        }
    }
    err = rd_kafka_assign(c->common.rk, parts && parts->cnt > 0 ? parts : NULL);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka assign: %s", rd_kafka_err2str(err));
        return core_kafka_err_class(err) == CORE_ERR_FATAL ? CORE_ERR_FATAL : CORE_ERR_STATE;
    }
    assignment_change(c, ASSIGNMENT_SET, parts && parts->cnt > 0 ? parts : NULL);
    if (c->paused_all && parts && parts->cnt > 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);

        rd_kafka_pause_partitions(c->common.rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    return CORE_OK;
}

rd_kafka_message_t *core_kafka_consumer_poll(core_kafka_consumer_t *c, int timeout_ms)
{
    rd_kafka_message_t *rkm;

    if (!c || c->closed)
        return NULL;
    rkm = rd_kafka_consumer_poll(c->common.rk, timeout_ms);
    if (rkm && rkm->err && rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "";

        if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
            char reason[512] = "";

            core_kafka_common_fatal(&c->common, reason, sizeof(reason));
            core_log_error("kafka consumer fatal error: the consumer must be rebuilt",
                           CLF_S("client", rd_kafka_name(c->common.rk)),
                           CLF_S("reason", reason));
        } else {
            core_log_warn("kafka consumer error", CLF_S("client", rd_kafka_name(c->common.rk)),
                          CLF_S("topic", topic), CLF_I("partition", rkm->partition),
                          CLF_S("error", rd_kafka_err2name(rkm->err)),
                          CLF_S("reason", rd_kafka_message_errstr(rkm)));
        }
        core_metric_inc(core_metrics_series1(c->common.fams.client_errors,
                                             rd_kafka_err2name(rkm->err)));
    }
    return rkm;
}

/* True while this consumer is a member of its group (has a member id).
 * A round trip to the group thread: never from a callback of the close. */
static bool group_member(rd_kafka_t *rk)
{
    char *mid = rd_kafka_memberid(rk);
    bool in = mid && *mid;

    if (mid)
        rd_kafka_mem_free(rk, mid);
    return in;
}

/* KIP-345: librdkafka (2.0.2) sends no LeaveGroup when a static member
 * (group.instance.id) closes, so the group would leave its partitions with
 * it until its session times out (session.timeout.ms, 45 s by default): a
 * scale-down would stall them that long. A member that stops on purpose
 * leaves all the same: unsubscribe (its revoke runs here, served by the
 * poll; librdkafka leaves the group once the unassign is done, which
 * clears the member id), then close. A member killed with -9 sends
 * nothing: the same instance restarted takes its partitions back at once. */
static void leave_static_group(core_kafka_consumer_t *c, int64_t timeout_ms)
{
    rd_kafka_t *rk = c->common.rk;
    char iid[256];
    size_t n = sizeof(iid);
    int64_t deadline = core_mono_ms() + timeout_ms;

    if (rd_kafka_conf_get(rd_kafka_conf(rk), "group.instance.id", iid, &n) != RD_KAFKA_CONF_OK ||
        !*iid || !group_member(rk) || rd_kafka_unsubscribe(rk) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    while (core_mono_ms() < deadline && !core_lifecycle_forced()) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);

        if (m) /* not handed out, not committed: the next owner reads it */
            rd_kafka_message_destroy(m);
        if (atomic_load(&c->assigned) == 0 && !group_member(rk)) {
            core_log_info("kafka group left (static member)", CLF_S("client", rd_kafka_name(rk)),
                          CLF_S("group_instance_id", iid));
            return;
        }
    }
    core_log_warn("kafka group not left in time: the group waits for this member's session",
                  CLF_S("client", rd_kafka_name(rk)), CLF_S("group_instance_id", iid));
}

core_err_t core_kafka_consumer_close(core_kafka_consumer_t *c, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;
    const char *stage;

    if (!c) {
        core_errstr(errstr, errstr_size, "kafka close: no consumer");
        return CORE_ERR_INVALID;
    }
    if (c->closed)
        return CORE_OK;
    stage = core_lifecycle_stage("closing the Kafka consumer (last revoke, commits, leaving)");
    if (!core_lifecycle_forced()) {
        int64_t left = core_lifecycle_stopping() ? core_lifecycle_remaining_ms() : 5000;

        leave_static_group(c, left > 5000 ? 5000 : left < 500 ? 500 : left);
    }
    err = rd_kafka_consumer_close(c->common.rk);
    core_lifecycle_stage(stage);
    c->closed = true;
    if (c->txn_committed) {
        rd_kafka_topic_partition_list_destroy(c->txn_committed);
        c->txn_committed = NULL;
    }
    assignment_change(c, ASSIGNMENT_SET, NULL);
    core_metrics_family_clear(c->common.fams.lag);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka close: %s", rd_kafka_err2str(err));
        return core_kafka_err_class(err) == CORE_ERR_FATAL ? CORE_ERR_FATAL
                                                            : CORE_ERR_TRANSIENT;
    }
    return CORE_OK;
}

/* ---- offsets ------------------------------------------------------------ */

struct commit_result {
    rd_kafka_resp_err_t err;       /* request-level */
    rd_kafka_resp_err_t part_err;  /* first partition error */
    char part[300];                /* which partition */
};

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct commit_result *r = opaque;

    (void)rk;
    r->err = err;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offsets->elems[i];

        if (tp->err && !r->part_err) {
            r->part_err = tp->err;
            snprintf(r->part, sizeof(r->part), "%s[%d]@%lld", tp->topic, (int)tp->partition,
                     (long long)tp->offset);
        }
    }
}

static core_err_t commit_sync(core_kafka_consumer_t *c,
                              const rd_kafka_topic_partition_list_t *offsets,
                              char *errstr, size_t errstr_size)
{
    struct commit_result r = { RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NO_ERROR, "" };
    rd_kafka_resp_err_t err, e;
    core_err_t ce;

    /* NULL queue: the callback is served by this call, with the result of
     * every partition. */
    err = rd_kafka_commit_queue(c->common.rk, offsets, NULL, commit_cb, &r);
    e = r.part_err ? r.part_err : r.err ? r.err : err;
    if (!e)
        return CORE_OK;
    if (e == RD_KAFKA_RESP_ERR__NO_OFFSET && !offsets)
        return CORE_OK; /* nothing stored: nothing to commit */
    ce = core_kafka_err_class(e);
    if (ce == CORE_OK || ce == CORE_ERR_TOOBIG)
        ce = CORE_ERR_INVALID;
    core_metric_inc(core_metrics_series1(c->commit_errors_fam, rd_kafka_err2name(e)));
    core_errstr(errstr, errstr_size, "kafka commit%s%s: %s (%s)", r.part[0] ? " " : "", r.part,
                rd_kafka_err2str(e), rd_kafka_err2name(e));
    if (ce == CORE_ERR_FATAL)
        atomic_store(&c->common.fatal, true);
    return ce;
}

core_err_t core_kafka_consumer_commit_offsets(core_kafka_consumer_t *c,
                                              const rd_kafka_topic_partition_list_t *offsets,
                                              char *errstr, size_t errstr_size)
{
    if (!c) {
        core_errstr(errstr, errstr_size, "kafka commit: no consumer");
        return CORE_ERR_INVALID;
    }
    if (!offsets || offsets->cnt == 0)
        return CORE_OK;
    for (int i = 0; i < offsets->cnt; i++) {
        if (offsets->elems[i].offset < 0) {
            core_errstr(errstr, errstr_size, "kafka commit: %s[%d]: offset %lld is not a "
                        "position (last processed + 1 expected)", offsets->elems[i].topic,
                        (int)offsets->elems[i].partition, (long long)offsets->elems[i].offset);
            return CORE_ERR_INVALID;
        }
    }
    return commit_sync(c, offsets, errstr, errstr_size);
}

static rd_kafka_topic_partition_list_t *one_offset(const rd_kafka_message_t *rkm)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(rkm->rkt), rkm->partition)
        ->offset = rkm->offset + 1;
    return l;
}

static bool message_ok(const rd_kafka_message_t *rkm)
{
    return rkm && !rkm->err && rkm->rkt && rkm->offset >= 0;
}

core_err_t core_kafka_consumer_commit_message(core_kafka_consumer_t *c,
                                              const rd_kafka_message_t *rkm,
                                              char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    core_err_t ce;

    if (!c || !message_ok(rkm)) {
        core_errstr(errstr, errstr_size, "kafka commit: %s",
                    !c ? "no consumer" : "not a consumed record");
        return CORE_ERR_INVALID;
    }
    l = one_offset(rkm);
    ce = commit_sync(c, l, errstr, errstr_size);
    rd_kafka_topic_partition_list_destroy(l);
    return ce;
}

core_err_t core_kafka_consumer_store(core_kafka_consumer_t *c, const rd_kafka_message_t *rkm,
                                     char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;

    if (!c || !message_ok(rkm)) {
        core_errstr(errstr, errstr_size, "kafka store: %s",
                    !c ? "no consumer" : "not a consumed record");
        return CORE_ERR_INVALID;
    }
    l = one_offset(rkm);
    err = rd_kafka_offsets_store(c->common.rk, l);
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka store %s[%d]@%lld: %s",
                    rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                    (long long)rkm->offset + 1, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR__STATE ? CORE_ERR_STATE : CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_err_t core_kafka_consumer_commit_stored(core_kafka_consumer_t *c,
                                             char *errstr, size_t errstr_size)
{
    if (!c) {
        core_errstr(errstr, errstr_size, "kafka commit: no consumer");
        return CORE_ERR_INVALID;
    }
    return commit_sync(c, NULL, errstr, errstr_size);
}

void core_kafka_offsets_add_message(rd_kafka_topic_partition_list_t *offsets,
                                    const rd_kafka_message_t *rkm)
{
    rd_kafka_topic_partition_t *tp;
    const char *topic;

    if (!offsets || !message_ok(rkm))
        return;
    topic = rd_kafka_topic_name(rkm->rkt);
    tp = rd_kafka_topic_partition_list_find(offsets, topic, rkm->partition);
    if (!tp)
        tp = rd_kafka_topic_partition_list_add(offsets, topic, rkm->partition);
    else if (tp->offset > rkm->offset)
        return;
    tp->offset = rkm->offset + 1;
}

/* ---- pause / resume / seek ---------------------------------------------- */

static rd_kafka_topic_partition_list_t *target(core_kafka_consumer_t *c, const char *topic,
                                               int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = NULL;

    if (topic) {
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition);
    } else {
        l = core_kafka_consumer_assignment(c);
    }
    return l;
}

static core_err_t part_errors(const rd_kafka_topic_partition_list_t *l, const char *what,
                              char *errstr, size_t errstr_size)
{
    for (int i = 0; i < l->cnt; i++) {
        if (l->elems[i].err) {
            core_errstr(errstr, errstr_size, "kafka %s %s[%d]: %s", what, l->elems[i].topic,
                        (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
            return l->elems[i].err == RD_KAFKA_RESP_ERR__TIMED_OUT ? CORE_ERR_TRANSIENT
                                                                    : CORE_ERR_STATE;
        }
    }
    return CORE_OK;
}

static core_err_t pause_resume(core_kafka_consumer_t *c, const char *topic, int32_t partition,
                               bool pause, char *errstr, size_t errstr_size)
{
    const char *what = pause ? "pause" : "resume";
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;
    core_err_t ce;

    if (!c || (topic && !*topic)) {
        core_errstr(errstr, errstr_size, "kafka %s: %s", what, !c ? "no consumer" : "empty topic");
        return CORE_ERR_INVALID;
    }
    if (!topic)
        c->paused_all = pause;
    l = target(c, topic, partition);
    if (!l) {
        core_errstr(errstr, errstr_size, "kafka %s: cannot read the assignment", what);
        return CORE_ERR_TRANSIENT;
    }
    err = pause ? rd_kafka_pause_partitions(c->common.rk, l)
                : rd_kafka_resume_partitions(c->common.rk, l);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka %s: %s", what, rd_kafka_err2str(err));
        ce = CORE_ERR_STATE;
    } else {
        ce = part_errors(l, what, errstr, errstr_size);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return ce;
}

core_err_t core_kafka_consumer_pause(core_kafka_consumer_t *c, const char *topic,
                                     int32_t partition, char *errstr, size_t errstr_size)
{
    return pause_resume(c, topic, partition, true, errstr, errstr_size);
}

core_err_t core_kafka_consumer_resume(core_kafka_consumer_t *c, const char *topic,
                                      int32_t partition, char *errstr, size_t errstr_size)
{
    return pause_resume(c, topic, partition, false, errstr, errstr_size);
}

static core_err_t seek_list(core_kafka_consumer_t *c, rd_kafka_topic_partition_list_t *l,
                            int timeout_ms, char *errstr, size_t errstr_size)
{
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->common.rk, l, timeout_ms);

    if (e) {
        core_err_t ce = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT
                            ? CORE_ERR_TRANSIENT : CORE_ERR_STATE;

        core_errstr(errstr, errstr_size, "kafka seek: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return ce;
    }
    return part_errors(l, "seek", errstr, errstr_size);
}

core_err_t core_kafka_consumer_seek(core_kafka_consumer_t *c, const char *topic,
                                    int32_t partition, int64_t offset, int timeout_ms,
                                    char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    core_err_t ce;

    if (!c || !topic || !*topic || partition < 0) {
        core_errstr(errstr, errstr_size, "kafka seek: %s",
                    !c ? "no consumer" : "no topic or partition");
        return CORE_ERR_INVALID;
    }
    l = target(c, topic, partition);
    l->elems[0].offset = offset;
    ce = seek_list(c, l, timeout_ms, errstr, errstr_size);
    rd_kafka_topic_partition_list_destroy(l);
    return ce;
}

core_err_t core_kafka_consumer_rewind(core_kafka_consumer_t *c, int timeout_ms,
                                      char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;
    core_err_t ce;

    if (!c) {
        core_errstr(errstr, errstr_size, "kafka rewind: no consumer");
        return CORE_ERR_INVALID;
    }
    l = target(c, NULL, 0);
    if (!l) {
        core_errstr(errstr, errstr_size, "kafka rewind: cannot read the assignment");
        return CORE_ERR_TRANSIENT;
    }
    if (l->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return CORE_OK;
    }
    err = rd_kafka_committed(c->common.rk, l, timeout_ms);
    if (err) {
        core_errstr(errstr, errstr_size, "kafka rewind: committed offsets: %s",
                    rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
        return core_kafka_err_class(err) == CORE_ERR_FATAL ? CORE_ERR_FATAL : CORE_ERR_TRANSIENT;
    }
    ce = part_errors(l, "rewind: committed offset of", errstr, errstr_size);
    if (ce != CORE_OK) {
        rd_kafka_topic_partition_list_destroy(l);
        return ce;
    }
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        const rd_kafka_topic_partition_t *tx =
            c->txn_committed ? rd_kafka_topic_partition_list_find(c->txn_committed, tp->topic,
                                                                  tp->partition)
                             : NULL;

        if (tx && tx->offset > tp->offset)
            tp->offset = tx->offset;
        if (tp->offset < 0)
            tp->offset = c->reset_latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    }
    ce = seek_list(c, l, timeout_ms, errstr, errstr_size);
    rd_kafka_topic_partition_list_destroy(l);
    return ce;
}

size_t core_kafka_consumer_assigned(const core_kafka_consumer_t *c)
{
    return c ? atomic_load(&((core_kafka_consumer_t *)c)->assigned) : 0;
}

bool core_kafka_consumer_fatal(core_kafka_consumer_t *c, char *errstr, size_t errstr_size)
{
    return c ? core_kafka_common_fatal(&c->common, errstr, errstr_size) : false;
}

rd_kafka_t *core_kafka_consumer_handle(core_kafka_consumer_t *c)
{
    return c ? c->common.rk : NULL;
}
