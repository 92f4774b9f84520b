/* api.h — svc-recon's HTTP API (JSON) on the service's port:
 *
 *   GET /batches                      batches known, newest first (?page=)
 *   GET /batches/{id}                 the batch's reconciliation (report.h)
 *   GET /discrepancies?batch=ID[&verdict=V][&page=N]
 *                                     the batch's discrepant records, paged
 *   GET /windows, POST /reconcile     api_windows.c
 *   GET /retention (viewer), PUT /retention (admin)  api_retention.c
 *   POST /replay?batch=ID[&verdict=missing|altered][&dry_run=true]
 *                                     re-publish them to .raw (replay.h)
 *
 * Handlers run on libmicrohttpd's connection threads: each request opens its
 * own PostgreSQL connection (libpq connections are not shared across
 * threads) and reconciles from the state as it is now. */
#ifndef SVC_RECON_API_H
#define SVC_RECON_API_H

#include "reconcile.h"
#include "state.h"

#include "tributary/core_config.h"
#include "tributary/core_http.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <pthread.h>

typedef struct recon_api {
    recon_pg_opts pg;              /* borrowed: must outlive the server */
    recon_reconcile_opts rec;
    int page_size;
    /* api_windows.c */
    const core_avro_catalog_t *cat;
    int64_t window_ms, grace_ms, idle_ms;
    int64_t retention_days;        /* api_retention.c: retention.days */
    /* replay: the Kafka settings of its consumer and producer */
    const core_config_t *cfg;
    const char *topic_prefix;      /* topic.prefix */
    struct recon_webhook *webhook; /* alerts (webhook.h); NULL: none */
    /* readiness: a connection of its own, asked at most every 2 s */
    pthread_mutex_t ready_lock;
    PGconn *ready_conn;
    int64_t ready_at;
    bool ready_ok, closed;
    char ready_reason[300];
} recon_api;

/* Start ready_lock before use (PTHREAD_MUTEX_INITIALIZER or this). */
void recon_api_init(recon_api *api);
/* Readiness callback (core_http_ready_cb): PostgreSQL answers SELECT 1. */
bool recon_api_ready(void *opaque, char *reason, size_t reason_size);
/* Close the readiness connection (after the server stopped). */
void recon_api_close(recon_api *api);

/* Add the routes; api must outlive the server. @returns CORE_OK or an error. */
int recon_api_register(core_http_t *h, recon_api *api);
/* The JSON replies every route sends (api.c): o (taken, may be NULL: 500) as
 * the body with status; {"error": msg} with status; a PostgreSQL connection
 * of the API's own, or NULL after a 503. */
void recon_api_reply(core_http_response *resp, int status, cJSON *o);
void recon_api_error(core_http_response *resp, int status, const char *msg);
PGconn *recon_api_pg_or_503(recon_api *api, core_http_response *resp);
/* GET /windows and POST /reconcile (api_windows.c); called by recon_api_register. */
int recon_api_register_windows(core_http_t *h, recon_api *api);
/* GET and PUT /retention (api_retention.c); called by recon_api_register. */
int recon_api_register_retention(core_http_t *h, recon_api *api);

#endif
