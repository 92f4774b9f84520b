/* core_kafka_int.h — private to the core_kafka*.c files: the client structs
 * and the callbacks they share. */
#ifndef TRIBUTARY_CORE_KAFKA_INT_H
#define TRIBUTARY_CORE_KAFKA_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "tributary/core_kafka.h"

#define CORE_KAFKA_LAG_HELP                                                    \
    "Records between the consumer's committed offset and the end of the "     \
    "partition, from librdkafka statistics"

/* Families every client uses; looked up once per client. */
typedef struct core_kafka_fams {
    core_metrics_t *m;
    core_metric_family_t *client_errors;  /* {error} */
    core_metric_family_t *lag;            /* {topic,partition} */
} core_kafka_fams;

/* Which kind of client an rd_kafka_t opaque points to: both structs start
 * with a core_kafka_common. CORE_KAFKA_ANY only builds confs (checks). */
typedef enum { CORE_KAFKA_PRODUCER, CORE_KAFKA_CONSUMER, CORE_KAFKA_ANY } core_kafka_kind;

typedef struct core_kafka_common {
    core_kafka_kind kind;
    rd_kafka_t *rk;
    core_kafka_fams fams;
    atomic_bool fatal;
    /* The last refusal of a connection by a broker (error_cb: authentication,
     * TLS, a connection closed before its first answer), for the start-up
     * probe's message; refusal_lock guards the text. */
    atomic_flag refusal_lock;
    int refusal_err;
    char refusal[400];
} core_kafka_common;

#define CORE_KAFKA_TOPIC_CACHE 16

struct core_kafka_producer {
    core_kafka_common common;          /* first */
    core_kafka_dr_cb *dr_cb;
    void *dr_user;
    int enqueue_timeout_ms;
    bool transactional;
    bool txn_open;                     /* begin succeeded, not committed/aborted yet */
    /* Offsets sent to the open transaction, and the consumer they belong to
     * (it must outlive the transaction): on commit they become that
     * consumer's txn_committed. Transaction thread only. */
    rd_kafka_topic_partition_list_t *txn_offsets;
    core_kafka_consumer_t *txn_consumer;

    atomic_size_t outstanding;
    atomic_uint_fast64_t delivered;
    atomic_uint_fast64_t failed;

    core_metric_family_t *produced_fam;   /* {topic} */
    core_metric_family_t *errors_fam;     /* {topic,error} */
    core_metric_t *latency;
    core_metric_t *txn_commit_seconds;
    core_metric_t *txn_aborts;

    /* Per-topic produced_total series, filled by the delivery callback.
     * Guarded by cache_lock (delivery reports may be served by any thread
     * that polls). */
    pthread_mutex_t cache_lock;
    struct {
        char *topic;
        core_metric_t *produced;
    } cache[CORE_KAFKA_TOPIC_CACHE];
    size_t ncache;
};

struct core_kafka_consumer {
    core_kafka_common common;          /* first */
    core_kafka_rebalance_hook *on_assign;
    core_kafka_rebalance_hook *on_revoke;
    void *hook_user;
    bool hooks_enabled;
    bool closed;
    bool paused_all;                   /* pause partitions assigned later too */
    bool reset_latest;                 /* auto.offset.reset is latest/end */
    atomic_bool lag_from_position;     /* offsets go through transactions */
    atomic_size_t assigned;            /* assignment->cnt, for any thread */
    /* The assignment as the rebalance callback and assign() left it.
     * rd_kafka_assignment() and rd_kafka_rebalance_protocol() are round
     * trips through librdkafka's group thread, which stops answering once
     * rd_kafka_consumer_close() has unassigned the last partition: called
     * from a callback that the close serves (rebalance, statistics), they
     * block forever (librdkafka#4041; seen with 2.0.2 after the revoke's
     * unassign). So callbacks read this copy. Guarded by assignment_lock. */
    pthread_mutex_t assignment_lock;
    rd_kafka_topic_partition_list_t *assignment;
    bool cooperative;                  /* partition.assignment.strategy */
    /* Offsets committed through transactions, for assigned partitions only
     * (dropped on revoke). core_kafka_consumer_rewind() never goes below
     * them: the broker's answer may lag behind the transaction markers (and
     * librdkafka's mock does not store transactional offsets at all).
     * Consumer thread only (the transaction runs there too). */
    rd_kafka_topic_partition_list_t *txn_committed;

    core_metric_family_t *commit_errors_fam;  /* {error} */
    core_metric_family_t *rebalances_fam;     /* {event} */
};

/* A copy of the consumer's assignment (empty when none; NULL only when out
 * of memory), safe from any thread and from librdkafka's callbacks. */
rd_kafka_topic_partition_list_t *core_kafka_consumer_assignment(core_kafka_consumer_t *c);

/* Installs the log, error and stats callbacks and the opaque. */
void core_kafka_conf_set_common_cbs(rd_kafka_conf_t *conf, core_kafka_common *cc);

/* Fill cc->fams from registry m (NULL: global). */
core_err_t core_kafka_fams_init(core_kafka_fams *f, core_metrics_t *m,
                                char *errstr, size_t errstr_size);

/* Look up a family or log why it failed (metrics are never fatal). */
core_metric_family_t *core_kafka_family(core_metrics_t *m, core_metric_kind_t kind,
                                        const char *name, const char *help,
                                        const char *const *labels);

/* The last connection refusal error_cb saw (copied into buf), its code, or
 * RD_KAFKA_RESP_ERR_NO_ERROR when none. */
rd_kafka_resp_err_t core_kafka_common_refusal(core_kafka_common *cc, char *buf, size_t size);

/* rd_kafka_fatal_error() into errstr, or "" when none. */
bool core_kafka_common_fatal(core_kafka_common *cc, char *errstr, size_t errstr_size);

/* Build a conf for a client of \p kind: defaults, cfg, overrides, then
 * enforced. Of cfg's kafka.* keys, a property librdkafka scopes to the other
 * kind of client is left out (kafka.session.timeout.ms reaches consumers
 * only), and kafka.producer.X / kafka.consumer.X reach one kind only, after
 * the unscoped keys (they win). */
rd_kafka_conf_t *core_kafka_conf_build(const core_config_t *cfg, core_kafka_kind kind,
                                       const core_kafka_prop *defaults, size_t ndefaults,
                                       const core_kafka_prop *overrides, size_t noverrides,
                                       const core_kafka_prop *enforced, size_t nenforced,
                                       char *errstr, size_t errstr_size);

/* Raise dst's offsets to src's (adding missing partitions). */
void core_kafka_offsets_merge_max(rd_kafka_topic_partition_list_t *dst,
                                  const rd_kafka_topic_partition_list_t *src);

/* Read a property back from a conf; false when unknown or too long. */
bool core_kafka_conf_get(const rd_kafka_conf_t *conf, const char *name, char *buf, size_t size);

/* core_kafka.c: set one property; errstr names it as the user wrote it
 * (shown_prefix + name + shown_suffix). */
core_err_t core_kafka_conf_set_one(rd_kafka_conf_t *conf, const char *shown_prefix,
                                   const char *shown_suffix, const char *name,
                                   const char *value, char *errstr, size_t errstr_size);
/* core_kafka.c: the value the user set for a property a client of kind
 * receives (a built-in override, else the scoped key, else the unscoped
 * one), or NULL. */
const char *core_kafka_user_value(const core_config_t *cfg, core_kafka_kind kind,
                                  const core_kafka_prop *ov, size_t nov, const char *name);

#endif
