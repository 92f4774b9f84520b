/* core_sink_setup.c — a sink's options checked, its clients, decoder,
 * breaker, metrics and ring made, and all of it released (core_sink_int.h). */
#include "core_sink_int.h"

#include "tributary/core_audit.h"
#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- setup and the loop ------------------------------------------------------------ */

int sink_check_opts(const core_sink_opts *o, char *errstr, size_t errstr_size)
{
    const core_sink_plugin *pl = o->plugin;

    if (!pl || !pl->name || !pl->prepare || !pl->flush || !pl->outcome_ok || !pl->outcome_dead) {
        core_errstr(errstr, errstr_size,
                    "sink plugin: name, prepare, flush, outcome_ok and outcome_dead are required");
        return CORE_EX_SOFTWARE;
    }
    if ((pl->send == NULL) != (pl->recv == NULL) || (pl->send && o->writer_thread)) {
        core_errstr(errstr, errstr_size,
                    "sink plugin %s: send and recv go together, and not with a writer thread",
                    pl->name);
        return CORE_EX_SOFTWARE;
    }
    if (o->ndatasets == 0 || !o->datasets) {
        core_errstr(errstr, errstr_size, "sink %s: no dataset", pl->name);
        return CORE_EX_CONFIG;
    }
    for (size_t i = 0; i < o->ndatasets; i++)
        if (!o->datasets[i].name || !o->datasets[i].topic) {
            core_errstr(errstr, errstr_size, "sink %s: a dataset without name or topic", pl->name);
            return CORE_EX_CONFIG;
        }
    if (o->batch_size < 1 || o->batch_size > 1000000 || o->batch_wait_ms < 0 ||
        o->batch_inflight < 0 || o->batch_inflight > 64 || o->commit_interval_ms < 0) {
        core_errstr(errstr, errstr_size,
                    "sink %s: batch.size 1..1000000, batch.inflight 0..64, times >= 0", pl->name);
        return CORE_EX_CONFIG;
    }
    if ((o->audit || pl->decode == CORE_SINK_DECODE_AVRO) && !o->catalog) {
        core_errstr(errstr, errstr_size, "sink %s: audit events and decoding need the catalogue",
                    pl->name);
        return CORE_EX_SOFTWARE;
    }
    return 0;
}

/* Everything a run needs, made in order (producer, audit, decoder, breaker,
 * metrics, ring, consumer). Longer than ~120 lines for a reason: a list of
 * steps, each failing to one exit code, released by sink_free(). */
int sink_setup(core_sink_t *s, char *errstr, size_t errstr_size)
{
    static const char *const l_sink[] = { "sink", NULL };
    static const char *const l_ds[] = { "sink", "dataset", NULL };
    static const char *const l_rec[] = { "sink", "dataset", "outcome", NULL };
    static const double size_buckets[] = { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                           5000, 10000 };
    static const core_kafka_prop pdefaults[] = { { "linger.ms", "5" },
                                                 { "compression.codec", "lz4" } };
    const core_sink_opts *o = s->o;
    core_metrics_t *m = o->metrics ? o->metrics : core_metrics_global();
    const char *name = s->pl->name;
    char bname[96];

    s->bo = o->backoff.base_ms > 0 ? o->backoff : (core_backoff)CORE_BACKOFF_DEFAULT;
    s->f_records = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_records_total",
                                       "Records a sink handled, by audit outcome", l_rec, NULL,
                                       0, errstr, errstr_size);
    core_metric_family_t *f_dlq =
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_dlq_total",
                            "Records a sink sent to the dead-letter topic", l_ds, NULL, 0, errstr,
                            errstr_size);
    s->m_batch = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_sink_batch_records",
                            "Records per batch written", l_sink, size_buckets,
                            CORE_ARRAY_SIZE(size_buckets), errstr, errstr_size),
        name);
    s->m_flush = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_sink_flush_seconds",
                            "Time from handing a batch to the plugin to its answer", l_sink, NULL,
                            0, errstr, errstr_size),
        name);
    s->m_retries = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_retries_total",
                            "Batch writes answered RETRY", l_sink, NULL, 0, errstr, errstr_size),
        name);
    s->m_paused = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_GAUGE, "tributary_sink_paused",
                            "1 while consumption is paused for failing writes", l_sink, NULL, 0,
                            errstr, errstr_size),
        name);
    s->m_commit_fail = core_metrics_series1(
        core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_sink_commit_failures_total",
                            "Offset commits that failed and are retried", l_sink, NULL, 0,
                            errstr, errstr_size),
        name);
    core_metric_family_t *f_e2e = core_kafka_latency_family(m, errstr, errstr_size);
    if (!s->f_records || !f_dlq || !f_e2e || !s->m_batch || !s->m_flush || !s->m_retries ||
        !s->m_paused || !s->m_commit_fail)
        return CORE_EX_SOFTWARE;

    s->nb = (size_t)o->batch_inflight + 2;
    s->bs = calloc(s->nb, sizeof(*s->bs));
    s->wq = calloc(s->nb, sizeof(*s->wq));
    s->dss = calloc(o->ndatasets, sizeof(*s->dss));
    s->pending = rd_kafka_topic_partition_list_new(16);
    if (o->breaker_name)
        snprintf(bname, sizeof(bname), "%s", o->breaker_name);
    else
        snprintf(bname, sizeof(bname), "sink_%s", name);
    s->breaker = core_breaker_new(bname, o->breaker_threshold > 0 ? o->breaker_threshold : 5,
                                  o->breaker_open_ms > 0 ? o->breaker_open_ms : 10000, 1);
    if (!s->bs || !s->wq || !s->dss || !s->pending || !s->breaker)
        goto nomem;
    for (size_t i = 0; i < s->nb; i++) {
        s->bs[i].items = calloc((size_t)o->batch_size, sizeof(*s->bs[i].items));
        s->bs[i].prep = calloc((size_t)o->batch_size, sizeof(*s->bs[i].prep));
        if (s->pl->data_size &&
            !(s->bs[i].pdata = calloc((size_t)o->batch_size, s->pl->data_size)))
            goto nomem;
        if (!s->bs[i].items || !s->bs[i].prep)
            goto nomem;
    }
    for (size_t d = 0; d < o->ndatasets; d++) {
        s->dss[d].dlq = core_metrics_series2(f_dlq, name, o->datasets[d].name);
        s->dss[d].e2e = core_metrics_series2(f_e2e, name, o->datasets[d].name);
    }
    if (s->pl->decode == CORE_SINK_DECODE_AVRO &&
        !(s->dec = core_avro_decoder_new(o->catalog, errstr, errstr_size)))
        return CORE_EX_SOFTWARE;

    core_kafka_producer_opts po = { .cfg = o->cfg, .defaults = pdefaults,
                                    .ndefaults = CORE_ARRAY_SIZE(pdefaults),
                                    .overrides = o->kafka_overrides,
                                    .noverrides = o->nkafka_overrides, .metrics = o->metrics };
    if (!(s->p = core_kafka_producer_new(&po, errstr, errstr_size)))
        return CORE_EX_CONFIG;
    /* A topic handle makes the producer ask for the topic's metadata now
     * (and the broker create it, where it creates topics on demand), while
     * the consumer joins its group: else the first batch's audit and DLQ
     * records wait for it, and with them the first commit (about 2 s for a
     * new audit topic). */
    if (!(s->warm = calloc(o->ndatasets + 1, sizeof(*s->warm))))
        goto nomem;
    if (o->audit)
        s->warm[s->nwarm++] = rd_kafka_topic_new(core_kafka_producer_handle(s->p),
                                                 o->audit_topic ? o->audit_topic
                                                                : CORE_AUDIT_TOPIC,
                                                 NULL);
    for (size_t d = 0; d < o->ndatasets; d++)
        if (o->datasets[d].dlq_topic)
            s->warm[s->nwarm++] = rd_kafka_topic_new(core_kafka_producer_handle(s->p),
                                                     o->datasets[d].dlq_topic, NULL);
    if (o->audit && !(s->audit = core_audit_new(s->p, o->catalog, o->audit_topic,
                                                o->stage ? o->stage : name, errstr,
                                                errstr_size)))
        return CORE_EX_CONFIG;
    core_kafka_consumer_opts co = { .cfg = o->cfg, .overrides = o->kafka_overrides,
                                    .noverrides = o->nkafka_overrides,
                                    .on_revoke = sink_on_revoke, .hook_user = s,
                                    .metrics = o->metrics };
    if (!o->cfg || !core_kafka_consumer_config(o->cfg, "group.id"))
        co.group_id = o->group_id;
    const core_kafka_prop cdefaults[] = { { "group.instance.id", o->group_instance_id } };
    if (o->group_instance_id) { /* under kafka.* (defaults) */
        co.defaults = cdefaults;
        co.ndefaults = 1;
    }
    if (!(s->c = core_kafka_consumer_new(&co, errstr, errstr_size)))
        return CORE_EX_CONFIG;
    return 0;
nomem:
    core_errstr(errstr, errstr_size, "out of memory");
    return CORE_EX_SOFTWARE;
}

int sink_subscribe(core_sink_t *s, char *errstr, size_t errstr_size)
{
    const char **topics = calloc(s->o->ndatasets, sizeof(*topics));
    core_err_t e;

    if (!topics) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_EX_SOFTWARE;
    }
    for (size_t i = 0; i < s->o->ndatasets; i++)
        topics[i] = s->o->datasets[i].topic;
    e = core_kafka_consumer_subscribe(s->c, topics, s->o->ndatasets, errstr, errstr_size);
    free(topics);
    return e == CORE_OK ? 0 : CORE_EX_CONFIG;
}

void sink_free(core_sink_t *s)
{
    if (s->writer_on) {
        pthread_mutex_lock(&s->mu);
        s->wquit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
    }
    for (size_t i = 0; s->bs && i < s->nb; i++) {
        if (s->bs[i].items)
            sink_batch_clear(s, &s->bs[i]);
        free(s->bs[i].items);
        free(s->bs[i].prep);
        free(s->bs[i].pdata);
    }
    sink_ready_publish(NULL);
    if (s->ctx_on && s->pl->exit)
        s->pl->exit(s->ctx);
    core_kafka_consumer_free(s->c);
    core_audit_free(s->audit);
    for (size_t i = 0; i < s->nwarm; i++)
        if (s->warm[i])
            rd_kafka_topic_destroy(s->warm[i]);
    free(s->warm);
    if (s->p) {
        int64_t left = core_lifecycle_remaining_ms();
        size_t n = core_kafka_producer_flush(s->p, (int)(left > 1000 ? left : 1000));
        if (n)
            core_log_warn("audit or dead-letter records not delivered at exit",
                          CLF_S("sink", s->pl->name), CLF_I("count", n));
    }
    core_kafka_producer_free(s->p);
    core_avro_decoder_free(s->dec);
    core_breaker_free(s->breaker);
    if (s->pending)
        rd_kafka_topic_partition_list_destroy(s->pending);
    free(s->bs);
    free(s->wq);
    free(s->dss);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

