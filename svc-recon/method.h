/* method.h — the reconciliation method of each dataset (seed 001's
 * methods), config `method`: entries "DATASET:METHOD" (DATASET "*" for
 * every dataset; an exact name wins over "*"), default digests:
 *
 *   counts   only counts by stage and outcome, per batch and per window, are
 *            kept: no per-record row, and the aggregates add no id or digest
 *            (their element is zero), so two stages agree when their counts
 *            do. A report says which stage's count differs and by how much;
 *            it cannot name a record.
 *   ids      each record's id with its timestamps per stage, without the
 *            digests (they are dropped on apply): missing, duplicated and
 *            unexpected records are named; an altered record is not
 *            detectable (nor can --verify-sinks check content).
 *   digests  ids and digests (the default): every verdict of reconcile.h.
 *   full     digests, and the record's bytes as published on .raw kept in
 *            recon's state with a retention (payload.h), so a replay works
 *            after .raw's retention dropped the record. Needs the dataset
 *            named (not "*": its .raw topic is {topic.prefix}{dataset}.raw).
 *
 * The method is fixed per (batch, dataset) by the events as they are
 * applied (aggregates.method); a batch applied under several methods (the
 * setting changed meanwhile) is judged by the weakest of them. */
#ifndef SVC_RECON_METHOD_H
#define SVC_RECON_METHOD_H

#include "tributary/core_avro.h"

#include <stddef.h>

typedef enum recon_method { RM_COUNTS, RM_IDS, RM_DIGESTS, RM_FULL, RM_COUNT } recon_method;
extern const char *const recon_method_names[RM_COUNT];

/* The method named by s (len bytes), or -1. */
int recon_method_index(const char *s, size_t len);

/* Whether entry is "DATASET:METHOD" with a known method (and a dataset of
 * the catalogue, or "*" for a method other than full). 0, or -1 with errstr. */
int recon_method_check(const char *entry, const core_avro_catalog_t *cat, char *errstr,
                       size_t errstr_size);

/* The method of the dataset (len bytes) under the entries (checked). */
recon_method recon_method_of(const char *const *entries, size_t n, const char *ds, size_t len);

#endif
