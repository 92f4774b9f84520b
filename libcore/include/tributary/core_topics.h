/* core_topics.h — one naming rule for the topics of every dataset, the same
 * in every service:
 *
 *   {topic.prefix}{dataset}.{raw|valid|retry|dlq}
 *
 * topic.prefix (default empty) is the one key: a validator run with
 * --topic.prefix=test. reads test.payee.raw and writes test.payee.valid,
 * and an ingest, a cache-feeder and a persister given the same prefix
 * follow it. The audit topic is apart (audit.topic, CORE_AUDIT_TOPIC).
 *
 * A service declares the key by putting CORE_TOPICS_CONFIG_KEYS(its conf
 * struct, its char *prefix member) in its config table. The keys each
 * service had before (svc-ingest `topic`, svc-cache-feeder
 * `topic.template`, svc-persister `topic.valid.suffix`/`topic.dlq.suffix`)
 * keep working for one release, with a warning naming topic.prefix
 * (core_config_add_deprecated). */
#ifndef TRIBUTARY_CORE_TOPICS_H
#define TRIBUTARY_CORE_TOPICS_H

#include "tributary/core_common.h"
#include "tributary/core_config.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum core_topic_kind {
    CORE_TOPIC_RAW = 0,  /* svc-ingest → svc-validator */
    CORE_TOPIC_VALID,    /* svc-validator → the sinks */
    CORE_TOPIC_RETRY,    /* svc-validator → svc-validator, when due */
    CORE_TOPIC_DLQ,      /* refused records of any stage */
    CORE_TOPIC_NKINDS
} core_topic_kind;

/* Longest topic name Kafka takes. */
#define CORE_TOPIC_MAX 249

#define CORE_TOPICS_CONFIG_KEYS(type_, member)                                                \
    { "topic.prefix", CORE_CFG_STR, "", 0, offsetof(type_, member),                           \
      "Prefix of every dataset topic: <prefix><dataset>.raw|valid|retry|dlq (the same in "     \
      "every service)", 0, 0, NULL }

/** "raw", "valid", "retry", "dlq" (NULL for a bad kind). */
const char *core_topic_kind_name(core_topic_kind kind);

/**
 * @brief The name of a dataset's topic of one kind into buf.
 * prefix NULL is "". @returns CORE_OK, or CORE_ERR_INVALID with errstr
 * naming topic.prefix when the name would not be a Kafka topic name
 * (longer than CORE_TOPIC_MAX, or a character other than ASCII letters,
 * digits, '.', '_' and '-').
 */
core_err_t core_topic_name(const char *prefix, const char *dataset, core_topic_kind kind,
                           char *buf, size_t size, char *errstr, size_t errstr_size);

/**
 * @brief Which dataset and kind a topic name is, under prefix: dataset
 * (the text between prefix and the kind's suffix) into buf. @returns true
 * when topic follows the rule.
 */
bool core_topic_parse(const char *prefix, const char *topic, char *dataset, size_t size,
                      core_topic_kind *kind);

/** Is name a valid Kafka topic name (1..249 of [A-Za-z0-9._-], not "." or "..")? */
bool core_topic_valid(const char *name);

#endif
