/* api.h — svc-recon's HTTP API (JSON) on the service's port:
 *
 *   GET /batches                      batches known, newest first (?page=)
 *   GET /batches/{id}                 the batch's reconciliation (report.h)
 *   GET /discrepancies?batch=ID[&verdict=V][&page=N]
 *                                     the batch's discrepant records, paged
 *
 * Handlers run on libmicrohttpd's connection threads: each request opens its
 * own PostgreSQL connection (libpq connections are not shared across
 * threads) and reconciles from the state as it is now. */
#ifndef SVC_RECON_API_H
#define SVC_RECON_API_H

#include "reconcile.h"
#include "state.h"

#include "tributary/core_http.h"

typedef struct recon_api {
    recon_pg_opts pg;              /* borrowed: must outlive the server */
    recon_reconcile_opts rec;
    int page_size;
} recon_api;

/* Add the routes; api must outlive the server. @returns CORE_OK or an error. */
int recon_api_register(core_http_t *h, recon_api *api);

#endif
