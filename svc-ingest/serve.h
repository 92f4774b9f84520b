/* serve.h — svc-ingest's service mode: a spool folder watched for files
 * and the bulk-load API (POST /batches, GET /batches/{id}, GET /batches). */
#ifndef SVC_INGEST_SERVE_H
#define SVC_INGEST_SERVE_H

#include "ingest.h"

#include "tributary/core_service.h"

/**
 * @brief Add the /batches routes and check spool.dir, before the broker is
 * awaited: from the first /healthz on, a posted batch is queued (and runs
 * once the broker answers), never a 404.
 * @returns CORE_SERVICE_CONTINUE, or the exit code of a refused setting.
 */
int ingest_serve_open(core_service_t *svc, ingest_ctx *ctx, const ingest_conf *conf);

/**
 * @brief After ingest_serve_open(), run until SIGTERM/SIGINT: files dropped into spool.dir and
 * batches posted to the API are ingested one at a time, in arrival order.
 * A spool file moves to done/ (ingested; lines may have been rejected) or
 * failed/ (the file could not be ingested) with <name>.summary.json and its
 * errors file; a file left by a stop or a broker outage stays where it is
 * and resumes from its checkpoint.
 * @returns the exit code (0 after a clean stop).
 */
int ingest_serve(core_service_t *svc, ingest_ctx *ctx, const ingest_conf *conf);

#endif
