/* winreport.h — the windows of one dataset over a time range, as JSON and
 * as text (`svc-recon report --dataset NAME --from T --to T`, GET /windows),
 * and each window's verdict, which a closing statement fixes.
 *
 * Per window: state (open, closed, reopened) and statement version; per
 * stage: count, audit bytes, late events, the additive aggregate, counts by
 * outcome; per hop (ingest->validator, validator->each sink): samples, p50
 * and p99 in ms from the log-bucket histogram (an upper bound within 19%),
 * unknown samples; coverage: every expected stage (ingest, validator, the
 * expected sinks: `sinks`, else those that ever reported on the dataset)
 * must have reported in the window, or the window is unclean with the
 * reason — silence is never health. Counts of different stages are shown
 * (`balance`), not judged: a record's stages may fall in neighbouring
 * windows; per-record verdicts are the batches'. */
#ifndef SVC_RECON_WINREPORT_H
#define SVC_RECON_WINREPORT_H

#include "event.h"

#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct recon_win_query {
    const char *schema;
    const char *dataset;
    int64_t window_ms;
    int64_t from_ms, to_ms;  /* windows whose start is in [floor(from), to) */
    unsigned sinks;          /* expected sink stages (1 << RS_*); 0: observed */
} recon_win_query;

/* Expected stages of a dataset (bits 1 << RS_*): ingest, validator and the
 * sinks (configured, else those that ever reported on the dataset). */
core_err_t recon_expected_stages(PGconn *c, const char *schema, const char *dataset,
                                 unsigned sinks, unsigned *out, char *errstr,
                                 size_t errstr_size);

/**
 * @brief The windows as one JSON object: dataset, from, to, window_ms,
 * clean (every window clean), windows[] (start, end, state, version,
 * clean, reasons, expected, stages, latency, balance).
 * @returns CORE_OK and *out; CORE_ERR_TRANSIENT with errstr.
 */
core_err_t recon_windows_json(PGconn *c, const recon_win_query *q, cJSON **out, char *errstr,
                              size_t errstr_size);

/* The object of recon_windows_json() as text for people (malloc'd). */
char *recon_windows_text(const cJSON *o);

/* "T" as ms since the epoch: digits, or an ISO-8601 UTC time. 0 or -1. */
int recon_parse_time(const char *s, int64_t *ms);

#endif
