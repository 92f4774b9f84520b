/* rules.h — the dataset's validation rules (proto/<dataset>.rules.json,
 * format in proto/README.md), compiled once and evaluated on a record as
 * its natural JSON shows it (core_avro_to_json()): either on that JSON, or,
 * without building it, on the decoded Avro value through field paths bound
 * once per schema (vrules_bind()). Both give the same failures. Local
 * constraints are evaluated here; `external` constraints are listed for
 * verify.c to run.
 *
 * Threads: a compiled rule set is read-only; evaluation may run on any
 * number of threads at once. */
#ifndef SVC_VALIDATOR_RULES_H
#define SVC_VALIDATOR_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tributary/core_avro.h"

/** One failed constraint. field and rule point into the rule set. */
typedef struct vr_failure {
    const char *field;
    const char *rule;      /* required, type, pattern, min, max, length, enum, aba, luhn, ... */
    char message[192];     /* the rule's "message", or a generic one; never the value */
} vr_failure;

/** An external verification a rule asks for. */
typedef struct vr_external {
    const char *field;
    const char *url;       /* template: {value} and {<field path>} are replaced */
    const char *method;    /* GET or POST */
    int cache_ttl_s;       /* 0: do not cache answers */
    int negative_ttl_s;    /* 0: do not cache refusals */
    int timeout_ms;        /* 0: the verifier's default */
    const char *message;   /* the rule's message or NULL */
} vr_external;

typedef struct vrules vrules_t;

/**
 * @brief Compile a rules file (as core_avro_schema_rules() returns it).
 *
 * Bounds (min, max, the numbers of an enum) are read from the rules file's
 * number text (core_json_parse() keeps it; a cJSON double is taken only
 * when it is an integer below 2^53, the rest of its digits being lost) and
 * compared exactly, never through a double: integers over the whole 64
 * bits and past them, decimals whatever their scale (10.5 == 10.50),
 * -0 == 0. A value that is a float or a double is compared with the bound
 * rounded once to that type.
 * @param schema the dataset's schema, or NULL: each bound must fit the type
 *        of its rule's field (an int, a long, a time in ms, decimal(p, s)
 *        with at most s decimals, a finite float or double).
 * @param clock_skew_ms tolerance of the not_future check.
 * @returns the rule set or NULL with errstr naming the rule (a pattern that
 *          does not compile, an unknown check, a bound the field's type
 *          cannot hold). A NULL \p rules gives an empty set.
 */
vrules_t *vrules_new(const cJSON *rules, const core_avro_schema_t *schema, int64_t clock_skew_ms,
                     char *errstr, size_t errstr_size);
void vrules_free(vrules_t *r);

/** Number of rules (local and external). */
size_t vrules_count(const vrules_t *r);

/**
 * @brief Evaluate every local constraint of every rule on \p rec.
 * Writes up to \p max failures; @returns the total number of failures.
 */
size_t vrules_eval(const vrules_t *r, const cJSON *rec, int64_t now_ms,
                   vr_failure *out, size_t max);

/** The rules bound to one schema: every rule's field path resolved to
 * field indexes once. Read-only; borrows the rule set and the schema. */
typedef struct vrules_bound vrules_bound_t;

/**
 * @brief Bind \p r to records of \p schema.
 * @returns the binding (vrules_unbind()), or NULL with errstr when a rule's
 *          field is not a path through records (and unions holding one) of
 *          the schema, e.g. an older schema version without the field, or
 *          out of memory: evaluate those records with vrules_eval() on
 *          their natural JSON instead.
 */
vrules_bound_t *vrules_bind(const vrules_t *r, const core_avro_schema_t *schema,
                            char *errstr, size_t errstr_size);
void vrules_unbind(vrules_bound_t *b);

/**
 * @brief vrules_eval() on a decoded record of the bound schema, without
 * building its natural JSON; the same failures, in the same order.
 * @param nfp receives the total number of failures (up to \p max written).
 * @returns 0, or -1 with errstr when the record cannot be read as natural
 *          JSON (what core_avro_to_json() would refuse), or out of memory.
 */
int vrules_eval_avro(const vrules_bound_t *b, avro_value_t *rec, int64_t now_ms,
                     vr_failure *out, size_t max, size_t *nfp, char *errstr,
                     size_t errstr_size);

size_t vrules_nexternal(const vrules_t *r);
const vr_external *vrules_external(const vrules_t *r, size_t i);

/**
 * @brief The URL of external check \p i for \p rec, placeholders replaced
 * (URL-encoded). @returns a malloc'd URL; NULL with *skip = true when the
 * field has no value (the check does not apply); NULL with *skip = false on
 * out of memory.
 */
char *vrules_external_url(const vrules_t *r, size_t i, const cJSON *rec, bool *skip);

/** The value at a dotted path ("meta.id") of a natural-JSON record, or NULL. */
const cJSON *vrules_lookup(const cJSON *rec, const char *path);

/** The names a rule's "check" and "type" may take. */
extern const char *const vrules_checks[];
extern const size_t vrules_nchecks;
extern const char *const vrules_types[];
extern const size_t vrules_ntypes;

/**
 * @brief What the validator checks in a rules file at load (a
 * core_avro_rules_check_fn for core_avro_catalog_load_checked()): every key
 * of every rule known and of its form (proto/README.md): a type and a check
 * by name, a pattern that compiles, numbers for min and max, length bounds
 * in order, an enum of strings and numbers, an external with an http(s) URL.
 * @returns 0, or -1 with errstr naming the file, the rule and the key.
 */
int vrules_file_check(const core_avro_schema_t *schema, const char *file, const cJSON *rules,
                      char *errstr, size_t errstr_size);

/** Timestamp text (ISO 8601, or a date YYYY-MM-DD) or ms number → ms. */
bool vrules_time_ms(const cJSON *v, int64_t *msp);

#endif
