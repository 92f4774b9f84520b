/* core_kafka_producer.c — the idempotent producer (core_kafka.h): delivery
 * reports counted per topic, a full queue waited out, headers passed on,
 * flush on shutdown; transactions are core_kafka_txn.c's. */
#include "core_kafka_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

static core_metric_t *produced_series(core_kafka_producer_t *p, const char *topic)
{
    core_metric_t *s = NULL;

    pthread_mutex_lock(&p->cache_lock);
    for (size_t i = 0; i < p->ncache; i++) {
        if (strcmp(p->cache[i].topic, topic) == 0) {
            s = p->cache[i].produced;
            break;
        }
    }
    if (!s) {
        s = core_metrics_series1(p->produced_fam, topic);
        if (s && p->ncache < CORE_KAFKA_TOPIC_CACHE) {
            char *t = strdup(topic);

            if (t) {
                p->cache[p->ncache].topic = t;
                p->cache[p->ncache].produced = s;
                p->ncache++;
            }
        }
    }
    pthread_mutex_unlock(&p->cache_lock);
    return s;
}

/* Served by the thread polling or flushing the producer. */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    core_kafka_producer_t *p = opaque;
    const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "";

    (void)rk;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t us = rd_kafka_message_latency(rkm);

        atomic_fetch_add(&p->delivered, 1);
        core_metric_inc(produced_series(p, topic));
        if (us >= 0)
            core_metric_observe(p->latency, (double)us / 1e6);
    } else {
        atomic_fetch_add(&p->failed, 1);
        core_metric_inc(core_metrics_series2(p->errors_fam, topic, rd_kafka_err2name(rkm->err)));
        if (rkm->err == RD_KAFKA_RESP_ERR__FATAL)
            atomic_store(&p->common.fatal, true);
        core_log_debug("kafka delivery failed", CLF_S("topic", topic),
                       CLF_I("partition", rkm->partition),
                       CLF_S("error", rd_kafka_err2name(rkm->err)),
                       CLF_S("reason", rd_kafka_err2str(rkm->err)));
    }
    atomic_fetch_sub(&p->outstanding, 1);
    if (p->dr_cb)
        p->dr_cb(rkm->_private, rkm, p->dr_user);
}

static bool prop_named(const core_kafka_prop *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].name && strcmp(v[i].name, name) == 0)
            return true;
    return false;
}

/* message.timeout.ms must stay below transaction.timeout.ms (PITFALLS). */
static core_err_t txn_timeouts(rd_kafka_conf_t *conf, const core_kafka_producer_opts *o,
                               char *errstr, size_t errstr_size)
{
    static const char *const names[] = { "message.timeout.ms", "delivery.timeout.ms" };
    char buf[64];
    long long txn_ms, msg_ms;
    bool explicit = false;

    if (!core_kafka_conf_get(conf, "transaction.timeout.ms", buf, sizeof(buf)))
        return CORE_OK;
    txn_ms = atoll(buf);
    if (!core_kafka_conf_get(conf, "message.timeout.ms", buf, sizeof(buf)))
        return CORE_OK;
    msg_ms = atoll(buf);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(names); i++)
        if (prop_named(o->defaults, o->ndefaults, names[i]) ||
            prop_named(o->overrides, o->noverrides, names[i]) ||
            core_kafka_user_value(o->cfg, CORE_KAFKA_PRODUCER, NULL, 0, names[i]))
            explicit = true;
    if (msg_ms < txn_ms && msg_ms > 0)
        return CORE_OK;
    if (explicit) {
        core_errstr(errstr, errstr_size,
                    "kafka.message.timeout.ms: %lld must be lower than "
                    "kafka.transaction.timeout.ms (%lld) for a transactional producer",
                    msg_ms, txn_ms);
        return CORE_ERR_INVALID;
    }
    msg_ms = txn_ms - (txn_ms / 10 > 1 ? txn_ms / 10 : 1);
    if (msg_ms < 1)
        msg_ms = 1;
    snprintf(buf, sizeof(buf), "%lld", msg_ms);
    return core_kafka_conf_set_one(conf, "", " (built-in)", "message.timeout.ms", buf, errstr,
                                   errstr_size);
}

core_kafka_producer_t *core_kafka_producer_new(const core_kafka_producer_opts *opts,
                                               char *errstr, size_t errstr_size)
{
    static const char *const topic_labels[] = { "topic", NULL };
    static const char *const topic_err_labels[] = { "topic", "error", NULL };
    core_kafka_prop defaults[32];
    core_kafka_prop enforced[3] = {
        { "enable.idempotence", "true" },
        { "acks", "all" },
        { "transactional.id", NULL },
    };
    size_t ndefaults = 0, nenforced = 2;
    core_kafka_producer_opts o = { 0 };
    core_kafka_producer_t *p;
    rd_kafka_conf_t *conf;
    char rderr[512];

    if (opts)
        o = *opts;
    if (o.ndefaults + 1 > CORE_ARRAY_SIZE(defaults)) {
        core_errstr(errstr, errstr_size, "kafka producer: too many default properties (%zu)",
                    o.ndefaults);
        return NULL;
    }
    defaults[ndefaults++] = (core_kafka_prop){ "statistics.interval.ms",
                                               CORE_KAFKA_STATS_INTERVAL_MS };
    for (size_t i = 0; i < o.ndefaults; i++)
        defaults[ndefaults++] = o.defaults[i];
    if (o.transactional_id) {
        if (!*o.transactional_id) {
            core_errstr(errstr, errstr_size, "kafka producer: empty transactional.id");
            return NULL;
        }
        enforced[nenforced++].value = o.transactional_id;
    }

    conf = core_kafka_conf_build(o.cfg, CORE_KAFKA_PRODUCER, defaults, ndefaults, o.overrides,
                                 o.noverrides, enforced, nenforced, errstr, errstr_size);
    if (!conf)
        return NULL;
    if (o.transactional_id && txn_timeouts(conf, &o, errstr, errstr_size) != CORE_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }

    p = calloc(1, sizeof(*p));
    if (!p) {
        rd_kafka_conf_destroy(conf);
        core_errstr(errstr, errstr_size, "kafka producer: out of memory");
        return NULL;
    }
    p->common.kind = CORE_KAFKA_PRODUCER;
    p->dr_cb = o.dr_cb;
    p->dr_user = o.dr_user;
    p->enqueue_timeout_ms = o.enqueue_timeout_ms > 0 ? o.enqueue_timeout_ms
                                                     : CORE_KAFKA_ENQUEUE_TIMEOUT_MS;
    p->transactional = o.transactional_id != NULL;
    pthread_mutex_init(&p->cache_lock, NULL);
    if (core_kafka_fams_init(&p->common.fams, o.metrics, errstr, errstr_size) != CORE_OK) {
        rd_kafka_conf_destroy(conf);
        pthread_mutex_destroy(&p->cache_lock);
        free(p);
        return NULL;
    }
    p->produced_fam = core_kafka_family(p->common.fams.m, CORE_METRIC_COUNTER,
                                        "tributary_kafka_produced_total",
                                        "Records delivered to Kafka (acknowledged)",
                                        topic_labels);
    p->errors_fam = core_kafka_family(p->common.fams.m, CORE_METRIC_COUNTER,
                                      "tributary_kafka_produce_errors_total",
                                      "Records Kafka did not take: refused at produce() or "
                                      "failed delivery", topic_err_labels);
    p->latency = core_metrics_series(
        core_kafka_family(p->common.fams.m, CORE_METRIC_HISTOGRAM,
                          "tributary_kafka_produce_latency_seconds",
                          "Time from produce() to the delivery report", NULL),
        NULL);
    if (p->transactional) {
        p->txn_commit_seconds = core_metrics_series(
            core_kafka_family(p->common.fams.m, CORE_METRIC_HISTOGRAM,
                              "tributary_kafka_txn_commit_seconds",
                              "Duration of Kafka transaction commits", NULL),
            NULL);
        p->txn_aborts = core_metrics_series(
            core_kafka_family(p->common.fams.m, CORE_METRIC_COUNTER,
                              "tributary_kafka_txn_aborts_total", "Kafka transactions aborted",
                              NULL),
            NULL);
    }

    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    core_kafka_conf_set_common_cbs(conf, &p->common);
    p->common.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!p->common.rk) {
        /* rd_kafka_new() takes the conf only on success. */
        rd_kafka_conf_destroy(conf);
        core_errstr(errstr, errstr_size, "kafka producer: %s", rderr);
        pthread_mutex_destroy(&p->cache_lock);
        free(p);
        return NULL;
    }
    return p;
}

void core_kafka_producer_free(core_kafka_producer_t *p)
{
    size_t left;

    if (!p)
        return;
    left = atomic_load(&p->outstanding);
    if (left > 0)
        core_log_warn("kafka producer destroyed with messages not reported",
                      CLF_S("client", rd_kafka_name(p->common.rk)), CLF_I("outstanding", left));
    rd_kafka_destroy(p->common.rk);
    if (p->txn_offsets)
        rd_kafka_topic_partition_list_destroy(p->txn_offsets);
    for (size_t i = 0; i < p->ncache; i++)
        free(p->cache[i].topic);
    pthread_mutex_destroy(&p->cache_lock);
    free(p);
}

static core_err_t produce_failed(core_kafka_producer_t *p, const char *topic,
                                 rd_kafka_resp_err_t err, size_t keylen, size_t vallen,
                                 char *errstr, size_t errstr_size)
{
    core_err_t ce = core_kafka_err_class(err);

    core_metric_inc(core_metrics_series2(p->errors_fam, topic, rd_kafka_err2name(err)));
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: {
        char max[32] = "?";

        core_kafka_conf_get(rd_kafka_conf(p->common.rk), "message.max.bytes", max, sizeof(max));
        core_errstr(errstr, errstr_size,
                    "kafka produce to %s: message too large: key %zu + value %zu bytes "
                    "exceeds message.max.bytes (%s)", topic, keylen, vallen, max);
        return CORE_ERR_TOOBIG;
    }
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        core_errstr(errstr, errstr_size,
                    "kafka produce to %s: local queue still full after %d ms "
                    "(queue.buffering.max.messages/kbytes)", topic, p->enqueue_timeout_ms);
        return CORE_ERR_TRANSIENT;
    case RD_KAFKA_RESP_ERR__FATAL: {
        char reason[512] = "";

        core_kafka_common_fatal(&p->common, reason, sizeof(reason));
        core_errstr(errstr, errstr_size, "kafka produce to %s: producer has a fatal error: %s",
                    topic, reason);
        return CORE_ERR_FATAL;
    }
    case RD_KAFKA_RESP_ERR__STATE:
        core_errstr(errstr, errstr_size,
                    "kafka produce to %s: %s (transactional producer outside a transaction, "
                    "or in one that must be aborted)", topic, rd_kafka_err2str(err));
        return CORE_ERR_STATE;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        core_errstr(errstr, errstr_size, "kafka produce to %s: %s", topic, rd_kafka_err2str(err));
        return CORE_ERR_INVALID;
    default:
        core_errstr(errstr, errstr_size, "kafka produce to %s: %s (%s)", topic,
                    rd_kafka_err2str(err), rd_kafka_err2name(err));
        return ce == CORE_OK ? CORE_ERR_INVALID : ce;
    }
}

core_err_t core_kafka_produce(core_kafka_producer_t *p, const char *topic,
                              const void *key, size_t keylen,
                              const void *value, size_t vallen,
                              const core_kafka_header *headers, size_t nheaders,
                              void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *hdrs = NULL;

    if (!p || !topic || !*topic) {
        core_errstr(errstr, errstr_size, "kafka produce: %s", !p ? "no producer" : "no topic");
        return CORE_ERR_INVALID;
    }
    if ((!key && keylen) || (!value && vallen) || (!headers && nheaders)) {
        core_errstr(errstr, errstr_size, "kafka produce to %s: NULL %s with a length", topic,
                    !key && keylen ? "key" : !value && vallen ? "value" : "headers");
        return CORE_ERR_INVALID;
    }
    if (atomic_load(&p->common.fatal) || rd_kafka_fatal_error(p->common.rk, NULL, 0))
        return produce_failed(p, topic, RD_KAFKA_RESP_ERR__FATAL, keylen, vallen, errstr,
                              errstr_size);
    if (nheaders) {
        hdrs = rd_kafka_headers_new(nheaders);
        for (size_t i = 0; i < nheaders; i++) {
            const core_kafka_header *h = &headers[i];

            if (!h->name || !*h->name || (!h->value && h->len) ||
                rd_kafka_header_add(hdrs, h->name, -1, h->value,
                                    h->value ? (ssize_t)h->len : 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_headers_destroy(hdrs);
                core_errstr(errstr, errstr_size, "kafka produce to %s: header %zu is invalid "
                            "(no name, or NULL value with a length)", topic, i);
                return CORE_ERR_INVALID;
            }
        }
    }
    return core_kafka_produce_hdrs(p, topic, key, keylen, value, vallen, hdrs, opaque, errstr,
                                   errstr_size);
}

core_err_t core_kafka_produce_hdrs(core_kafka_producer_t *p, const char *topic,
                                   const void *key, size_t keylen,
                                   const void *value, size_t vallen,
                                   rd_kafka_headers_t *hdrs,
                                   void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;
    int64_t deadline;

    if (!p || !topic || !*topic || (!key && keylen) || (!value && vallen)) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        core_errstr(errstr, errstr_size, "kafka produce: %s",
                    !p ? "no producer" : !topic || !*topic ? "no topic"
                                                          : "NULL key or value with a length");
        return CORE_ERR_INVALID;
    }
    if (atomic_load(&p->common.fatal) || rd_kafka_fatal_error(p->common.rk, NULL, 0)) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        return produce_failed(p, topic, RD_KAFKA_RESP_ERR__FATAL, keylen, vallen, errstr,
                              errstr_size);
    }
    /* Count first: the delivery report may be served by another thread
     * before producev() returns here. */
    atomic_fetch_add(&p->outstanding, 1);
    deadline = 0; /* read the clock only when the queue is full */
    for (;;) {
        int64_t left;

        err = rd_kafka_producev(p->common.rk, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vallen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                                RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        if (!deadline)
            deadline = core_mono_ms() + p->enqueue_timeout_ms;
        left = deadline - core_mono_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(p->common.rk, left < 100 ? (int)left : 100);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return CORE_OK; /* the headers now belong to the message */

    atomic_fetch_sub(&p->outstanding, 1);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    return produce_failed(p, topic, err, keylen, vallen, errstr, errstr_size);
}

int core_kafka_producer_poll(core_kafka_producer_t *p, int timeout_ms)
{
    return p ? rd_kafka_poll(p->common.rk, timeout_ms) : 0;
}

size_t core_kafka_producer_flush(core_kafka_producer_t *p, int timeout_ms)
{
    int64_t deadline;

    if (!p)
        return 0;
    deadline = core_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - core_mono_ms();

        rd_kafka_flush(p->common.rk, left > 0 ? (int)left : 0);
        /* rd_kafka_flush() returns once librdkafka's queues are empty; the
         * last reports may still sit in the reply queue: serve them. */
        rd_kafka_poll(p->common.rk, 0);
        if (atomic_load(&p->outstanding) == 0)
            break;
        left = deadline - core_mono_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(p->common.rk, left < 10 ? (int)left : 10);
    }
    return atomic_load(&p->outstanding);
}

size_t core_kafka_producer_outstanding(const core_kafka_producer_t *p)
{
    return p ? atomic_load(&((core_kafka_producer_t *)p)->outstanding) : 0;
}

uint64_t core_kafka_producer_delivered(const core_kafka_producer_t *p)
{
    return p ? atomic_load(&((core_kafka_producer_t *)p)->delivered) : 0;
}

uint64_t core_kafka_producer_failed(const core_kafka_producer_t *p)
{
    return p ? atomic_load(&((core_kafka_producer_t *)p)->failed) : 0;
}

bool core_kafka_producer_fatal(core_kafka_producer_t *p, char *errstr, size_t errstr_size)
{
    return p ? core_kafka_common_fatal(&p->common, errstr, errstr_size) : false;
}

rd_kafka_t *core_kafka_producer_handle(core_kafka_producer_t *p)
{
    return p ? p->common.rk : NULL;
}

core_err_t core_kafka_producer_refusal(core_kafka_producer_t *p, const core_config_t *cfg,
                                       const char *address, char *errstr, size_t errstr_size)
{
    char reason[400];
    rd_kafka_resp_err_t err;
    const char *user, *mech;

    if (!p)
        return CORE_OK;
    rd_kafka_poll(p->common.rk, 0); /* error_cb records refusals */
    err = core_kafka_common_refusal(&p->common, reason, sizeof(reason));
    user = core_kafka_producer_config(cfg, "sasl.username");
    mech = core_kafka_producer_config(cfg, "sasl.mechanisms");
    if (!mech)
        mech = core_kafka_producer_config(cfg, "sasl.mechanism");
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return CORE_OK;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        core_errstr(errstr, errstr_size,
                    "kafka.sasl.password: kafka at %s refused the SASL authentication of user "
                    "\"%s\" (%s): %.250s (check kafka.sasl.username, kafka.sasl.password or "
                    "kafka.sasl.password_file, kafka.sasl.mechanisms)",
                    address, user ? user : "", mech ? mech : "GSSAPI", reason);
        break;
    case RD_KAFKA_RESP_ERR__SSL:
        if (strstr(reason, "verify failed") || strstr(reason, "could not be verified"))
            core_errstr(errstr, errstr_size,
                        "kafka.ssl.ca.location: the TLS certificate of kafka at %s could not be "
                        "verified: %.250s (check kafka.ssl.ca.location: the CA that signed the "
                        "broker's certificate)", address, reason);
        else
            core_errstr(errstr, errstr_size,
                        "kafka.security.protocol: the TLS handshake with kafka at %s failed: "
                        "%.250s (check kafka.security.protocol and the kafka.ssl.* settings)",
                        address, reason);
        break;
    default:
        core_errstr(errstr, errstr_size,
                    "kafka.security.protocol: kafka at %s closed the connection before its first "
                    "answer: %.250s (check kafka.security.protocol: plaintext to a TLS or SASL "
                    "listener?)", address, reason);
        break;
    }
    return CORE_ERR_INVALID;
}

