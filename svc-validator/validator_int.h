/* validator_int.h — the validator's state, shared by validator.c (the loop
 * and its transaction), validate.c (validating a batch) and produce.c
 * (producing its records). Private to svc-validator; one thread (the
 * loop's) touches a validator_t. */
#ifndef SVC_VALIDATOR_VALIDATOR_INT_H
#define SVC_VALIDATOR_VALIDATOR_INT_H

#include "validator.h"

#include "rules.h"
#include "tributary/core_audit.h"
#include "tributary/core_metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_FAILS 16
#define TXN_TIMEOUT_MS 30000
#define MAX_PAUSED 256


/* The rules bound to one schema version of the dataset; bound NULL: its
 * records are checked on their natural JSON (a rule names a field the
 * schema does not have as a record path). */
typedef struct vbinding {
    const core_avro_schema_t *schema;
    vrules_bound_t *bound;
} vbinding;
#define MAX_BINDINGS 16

typedef struct vdataset {
    const char *name;
    const core_avro_schema_t *schema;
    vrules_t *rules;
    vbinding bind[MAX_BINDINGS];
    size_t nbind;
    char raw[256], valid[256], retry[256], dlq[256];
    uint32_t out_id[VALIDATOR_OUT_COUNT]; /* validator_params.out_ids; 0: none */
} vdataset;

typedef struct paused {
    char topic[256];
    int32_t partition;
    int64_t resume_at; /* wall clock ms */
} paused;

/* An input whose output Kafka refused (too large, invalid): redone as
 * poison (level 1), then without its value (level 2), so it can never
 * stall its partition. */
typedef struct refused {
    char topic[256];
    int32_t partition;
    int64_t offset;
    int level;
    char reason[256];
} refused;
#define MAX_REFUSED 64

/* One input record on its way through a batch. */
typedef struct work {
    rd_kafka_message_t *rkm;
    int ds;
    bool from_retry;
    int attempt;          /* of this delivery: 0 from .raw */
    int out;              /* VO_* */
    char reason[512];
    char field[256];
    char id[128];
    char *key;            /* NUL-terminated copy of the Kafka key (keybuf, or
                           * malloc'd when longer), or NULL */
    char keybuf[64];
    char batch[128];
    int64_t version;
    int64_t not_before;   /* retry: when the next attempt is due */
    bool drop_value;      /* DLQ without the value (Kafka refused it twice) */
    size_t ext_first, ext_n;
    cJSON *json;          /* natural JSON while the batch is validated */
} work;

struct validator {
    validator_params p;
    char *group_id, *txn_id, *prefix, *audit_topic;
    vdataset *ds;
    size_t nds;
    core_kafka_consumer_t *c;
    core_kafka_producer_t *prod;
    core_audit_t *audit;
    core_avro_decoder_t *dec; /* reuses one value per schema */
    verifier_t *verifier;
    bool revoked;
    paused paused[MAX_PAUSED];
    size_t npaused;
    refused refused[MAX_REFUSED];
    size_t nrefused;
    validator_stats stats;
    work *batch;
    size_t nbatch;
    core_metric_family_t *f_records, *f_rules, *f_retries;
    core_metric_t *m_batch_seconds;
};

/* validator.c helpers the other files use. */
size_t validator_append_text_(char *buf, size_t size, size_t len, const char *const *part,
                              size_t nparts);
void validator_copy_text_(char *buf, size_t size, const char *s);
bool validator_header_text_(const rd_kafka_message_t *rkm, const char *name, char *buf,
                            size_t size);
refused *validator_refused_find_(validator_t *v, const rd_kafka_message_t *rkm);
void validator_key_take_(work *w);

/* validate.c: every record of the batch gets its outcome (w->out). */
void validator_validate_batch_(validator_t *v);

/* produce.c: w's record to its outcome's topic in the open transaction.
 * @returns CORE_OK, or an error with errstr (the transaction aborts). */
core_err_t validator_produce_one_(validator_t *v, work *w, int64_t now_ms, char *errstr,
                                  size_t errstr_size);

#endif
