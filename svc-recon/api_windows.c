/* api_windows.c — the windows and on-demand routes of svc-recon's API
 * (api.h):
 *
 *   GET  /windows?dataset=NAME&from=T&to=T   the windows (winreport.h)
 *   POST /reconcile?batch=ID                 reconcile the batch now; when
 *                                            it is due, close it into a
 *                                            statement (statement.h)
 *   POST /reconcile?from=T&to=T[&dataset=N]  the windows of every dataset
 *                                            (or N) now; close those due
 *
 * T: ms since the epoch or ISO-8601. 400 for a missing or bad parameter or
 * an unknown dataset, 404 for a batch with no event, 503 when PostgreSQL
 * fails. */
#include "api.h"
#include "report.h"
#include "statement.h"
#include "winreport.h"

#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A query parameter: 1 present, 0 absent, -1 too long or malformed. */
static int param(const core_http_request *req, const char *name, char *buf, size_t n)
{
    int rc = core_http_query_param(req, name, buf, n);
    return rc == CORE_OK ? (*buf ? 1 : -1) : rc == CORE_ERR_NOTFOUND ? 0 : -1;
}

/* from and to as ms; 0, or -1 after a 400. */
static int range(const core_http_request *req, core_http_response *resp, int64_t *from,
                 int64_t *to)
{
    char f[64], t[64];
    if (param(req, "from", f, sizeof(f)) != 1 || param(req, "to", t, sizeof(t)) != 1 ||
        recon_parse_time(f, from) != 0 || recon_parse_time(t, to) != 0 || *to <= *from) {
        recon_api_error(resp, 400,
                        "from and to required: ms since the epoch or ISO-8601, from < to");
        return -1;
    }
    return 0;
}

static void h_windows(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    char ds[256], err[512];
    int64_t from, to;
    cJSON *o = NULL;

    if (param(req, "dataset", ds, sizeof(ds)) != 1) {
        recon_api_error(resp, 400, "dataset required");
        return;
    }
    if (api->cat && !core_avro_catalog_by_dataset(api->cat, ds)) {
        recon_api_error(resp, 400, "unknown dataset");
        return;
    }
    if (range(req, resp, &from, &to) != 0)
        return;
    PGconn *c = recon_api_pg_or_503(api, resp);
    if (!c)
        return;
    recon_win_query q = { api->rec.schema, ds, api->window_ms, from, to, api->rec.sinks };
    if (recon_windows_json(c, &q, &o, err, sizeof(err)) != CORE_OK)
        recon_api_error(resp, 503, err);
    else
        recon_api_reply(resp, 200, o);
    PQfinish(c);
}

static void close_opts(const recon_api *api, recon_close_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->schema = api->rec.schema;
    o->rec = api->rec;
    o->window_ms = api->window_ms;
    o->grace_ms = api->grace_ms;
    o->idle_ms = api->idle_ms;
}

static void reconcile_batch(recon_api *api, const char *batch, core_http_response *resp)
{
    char err[512];
    recon_report *rep = NULL;
    recon_close_opts co;
    recon_close_stats cs = { 0 };
    PGconn *c = recon_api_pg_or_503(api, resp);

    if (!c)
        return;
    close_opts(api, &co);
    co.batches = true;
    co.only_batch = batch;
    if (recon_close_due(c, &co, &cs, err, sizeof(err)) != CORE_OK ||
        recon_reconcile_batch(c, &api->rec, batch, &rep, err, sizeof(err)) != CORE_OK) {
        recon_api_error(resp, 503, err);
    } else if (!rep->known) {
        recon_api_error(resp, 404, "no audit event of this batch");
    } else {
        cJSON *o = recon_report_json(rep);
        if (o)
            cJSON_AddBoolToObject(o, "closed_now", cs.batches > 0);
        recon_api_reply(resp, 200, o);
    }
    recon_report_free(rep);
    PQfinish(c);
}

static void reconcile_windows(recon_api *api, const core_http_request *req,
                              core_http_response *resp)
{
    char ds[256], err[512], sql[300];
    int64_t from, to;
    recon_close_opts co;
    recon_close_stats cs = { 0 };
    int has_ds = param(req, "dataset", ds, sizeof(ds));

    if (has_ds < 0 || (has_ds && api->cat && !core_avro_catalog_by_dataset(api->cat, ds))) {
        recon_api_error(resp, 400, "unknown dataset");
        return;
    }
    if (range(req, resp, &from, &to) != 0)
        return;
    PGconn *c = recon_api_pg_or_503(api, resp);
    if (!c)
        return;
    close_opts(api, &co);
    co.windows = true;
    if (recon_close_due(c, &co, &cs, err, sizeof(err)) != CORE_OK) {
        recon_api_error(resp, 503, err);
        PQfinish(c);
        return;
    }
    snprintf(sql, sizeof(sql), "SELECT DISTINCT dataset FROM %s.aggregates ORDER BY 1",
             api->rec.schema);
    PGresult *r = has_ds ? NULL : PQexec(c, sql);
    if (!has_ds && PQresultStatus(r) != PGRES_TUPLES_OK) {
        recon_api_error(resp, 503, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return;
    }
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "datasets");
    bool clean = true;
    int n = has_ds ? 1 : PQntuples(r);
    for (int i = 0; i < n; i++) {
        recon_win_query q = { api->rec.schema, has_ds ? ds : PQgetvalue(r, i, 0), api->window_ms,
                              from, to, api->rec.sinks };
        cJSON *w = NULL;
        if (recon_windows_json(c, &q, &w, err, sizeof(err)) != CORE_OK) {
            cJSON_Delete(o);
            o = NULL;
            break;
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItem(w, "clean")))
            clean = false;
        cJSON_AddItemToArray(arr, w);
    }
    PQclear(r);
    PQfinish(c);
    if (!o) {
        recon_api_error(resp, 503, err);
        return;
    }
    cJSON_AddBoolToObject(o, "clean", clean);
    cJSON_AddNumberToObject(o, "windows_closed_now", cs.windows);
    recon_api_reply(resp, 200, o);
}

static void h_reconcile(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    char batch[512];
    int b = param(req, "batch", batch, sizeof(batch));

    if (b < 0) {
        recon_api_error(resp, 400, "bad batch");
        return;
    }
    if (b)
        reconcile_batch(api, batch, resp);
    else
        reconcile_windows(api, req, resp);
}

int recon_api_register_windows(core_http_t *h, recon_api *api)
{
    int rc;
    if ((rc = core_http_route(h, "GET", "/windows", h_windows, api)) != CORE_OK ||
        (rc = core_http_route(h, "POST", "/reconcile", h_reconcile, api)) != CORE_OK)
        return rc;
    return CORE_OK;
}
