/* core_sink_int.h — what the files of core_sink share (core_sink.c: the loop;
 * core_sink_account.c: DLQ, audit, metrics and commits; core_sink_setup.c:
 * options, clients, metrics and their release). Not installed. */
#ifndef TRIBUTARY_CORE_SINK_INT_H
#define TRIBUTARY_CORE_SINK_INT_H

#include "tributary/core_audit.h"
#include "tributary/core_sink.h"

#include <pthread.h>
#include <stdbool.h>

#define MAX_OUTCOMES 8 /* distinct audit outcomes counted per dataset */
#define COMMIT_FLUSH_MS 10000

typedef struct batch {
    core_sink_record *items; /* nitems, consumption order */
    core_sink_record **prep; /* the prepared ones (given to the plugin) */
    char *pdata;             /* plugin.data_size bytes per prepared record */
    size_t nitems, nprep;
    double t_sent;
    /* writer thread: guarded by the sink's mu */
    bool queued, done;
    core_sink_res_t res;
    bool sent_failed;        /* pipelined: send() answered RETRY */
    char err[512];
} batch;

typedef struct outcome_count {
    const char *outcome; /* static string, compared by address then text */
    core_metric_t *m;
    uint64_t n;
} outcome_count;

typedef struct ds_state {
    outcome_count oc[MAX_OUTCOMES];
    size_t noc;
    core_metric_t *dlq;
    core_metric_t *e2e; /* tributary_end_to_end_latency_seconds{sink,dataset} */
} ds_state;

struct core_sink {
    const core_sink_opts *o;
    const core_sink_plugin *pl;
    void *ctx;
    bool ctx_on;
    core_kafka_consumer_t *c;
    core_kafka_producer_t *p;
    rd_kafka_topic_t **warm;   /* the audit and DLQ topics, known to the producer from the start */
    size_t nwarm;
    core_audit_t *audit;
    core_avro_decoder_t *dec;
    core_breaker_t *breaker;
    core_backoff bo;
    ds_state *dss;
    batch *bs;
    size_t nb, head, nfly;
    int64_t batch_start;
    rd_kafka_topic_partition_list_t *pending; /* offsets of accounted batches */
    int64_t last_commit, next_commit;
    int commit_attempt;
    uint64_t failed_seen;     /* producer failures already acted upon */
    bool in_outage;           /* the revoke hook must not touch the batches */
    bool batch_lost;          /* partitions went during an outage */
    bool need_rewind;         /* records were dropped: back to committed */
    int rewind_failures;      /* consecutive failed rewinds */
    bool paused;
    int status;
    /* writer thread */
    pthread_t writer;
    bool writer_on, wquit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch **wq;               /* FIFO of queued batches, nb slots */
    size_t wq_head, wq_n;
    /* metrics */
    core_metric_t *m_batch, *m_flush, *m_retries, *m_paused, *m_commit_fail;
    core_metric_family_t *f_records;
};


/* core_sink.c */
void sink_ready_publish(core_sink_t *s);
batch *sink_cur(core_sink_t *s);
void sink_batch_clear(core_sink_t *s, batch *b);
void sink_batches_drop(core_sink_t *s, const char *why);
void sink_on_revoke(core_kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts,
                     bool lost, void *user);

/* core_sink_account.c */
void sink_oldest_done(core_sink_t *s, core_sink_res_t res, const char *err);
core_err_t sink_commit_pending(core_sink_t *s, int flush_ms);
void sink_commit_final(core_sink_t *s);
void sink_rewind_if_needed(core_sink_t *s);

/* core_sink_setup.c */
int sink_check_opts(const core_sink_opts *o, char *errstr, size_t errstr_size);
int sink_setup(core_sink_t *s, char *errstr, size_t errstr_size);
int sink_subscribe(core_sink_t *s, char *errstr, size_t errstr_size);
void sink_free(core_sink_t *s);

#endif
