/* report.h — a batch's reconciliation as JSON (the CLI's --json and the
 * HTTP API) and as text for people. */
#ifndef SVC_RECON_REPORT_H
#define SVC_RECON_REPORT_H

#include "reconcile.h"

#include <cjson/cJSON.h>

/* One record: id, key, dataset, verdict, stage, detail (and went). */
cJSON *recon_record_json(const recon_record *r);

/* The whole report: batch, known, clean, counts, datasets (totals and
 * checks), discrepancies, rejected, bad_input, seconds. NULL on ENOMEM. */
cJSON *recon_report_json(const recon_report *r);

/* The report as text (malloc'd), at most max_list records of each list. */
char *recon_report_text(const recon_report *r, size_t max_list);

#endif
