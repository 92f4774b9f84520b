/* api.c — the JSON routes of svc-recon (api.h). */
#include "api.h"
#include "metrics.h"
#include "replay.h"
#include "webhook.h"
#include "report.h"

#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void recon_api_reply(core_http_response *resp, int status, cJSON *o)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = o ? cJSON_PrintUnformatted(o) : NULL;
    if (!resp->body) {
        resp->status = 500;
        resp->content_type = NULL;
        resp->body = core_http_printf("out of memory\n");
    }
    cJSON_Delete(o);
}

void recon_api_error(core_http_response *resp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    recon_api_reply(resp, status, o);
    if (resp->status == 500 && status != 500)
        resp->status = status;
}

/* ?page=N: 1 when absent; -1 when not a positive number. */
static long page_param(const core_http_request *req)
{
    char buf[32], *end;
    long v;

    int rc = core_http_query_param(req, "page", buf, sizeof(buf));

    if (rc == CORE_ERR_NOTFOUND)
        return 1;
    if (rc != CORE_OK)
        return -1;
    v = strtol(buf, &end, 10);
    return (*buf && !*end && v >= 1 && v <= 1000000) ? v : -1;
}

PGconn *recon_api_pg_or_503(recon_api *api, core_http_response *resp)
{
    char err[512];
    PGconn *c = recon_pg_connect(&api->pg, "svc-recon-api", err, sizeof(err));
    if (!c)
        recon_api_error(resp, 503, err);
    return c;
}

static void h_batches(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    long page = page_param(req);
    char sql[700], lim[32], off[32];
    const char *params[2] = { lim, off };
    PGresult *r;
    PGconn *c;

    if (page < 0) {
        recon_api_error(resp, 400, "page: a number from 1");
        return;
    }
    if (!(c = recon_api_pg_or_503(api, resp)))
        return;
    snprintf(lim, sizeof(lim), "%d", api->page_size);
    snprintf(off, sizeof(off), "%ld", (page - 1) * api->page_size);
    snprintf(sql, sizeof(sql),
             "SELECT batch_id, string_agg(DISTINCT dataset, ','), min(first_ts_ms), "
             "max(last_ts_ms), sum(n), "
             "coalesce(sum(n) FILTER (WHERE stage = 'ingest' AND outcome = 'published'), 0), "
             "coalesce(sum(n) FILTER (WHERE stage = 'ingest' AND outcome = 'format_error'), 0) "
             "FROM %s.aggregates GROUP BY batch_id ORDER BY max(last_ts_ms) DESC, batch_id "
             "LIMIT $1 OFFSET $2",
             api->rec.schema);
    r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[300];
        snprintf(m, sizeof(m), "postgres: %s", PQerrorMessage(c));
        m[strcspn(m, "\n")] = '\0';
        recon_api_error(resp, 503, m);
    } else {
        cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "batches");
        cJSON_AddNumberToObject(o, "page", (double)page);
        cJSON_AddNumberToObject(o, "page_size", api->page_size);
        for (int i = 0; a && i < PQntuples(r); i++) {
            cJSON *b = cJSON_CreateObject();
            if (!b)
                break;
            cJSON_AddStringToObject(b, "batch", PQgetvalue(r, i, 0));
            cJSON *ds = cJSON_AddArrayToObject(b, "datasets");
            char *list = strdup(PQgetvalue(r, i, 1)), *save = NULL;
            for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && ds;
                 t = strtok_r(NULL, ",", &save))
                cJSON_AddItemToArray(ds, cJSON_CreateString(t));
            free(list);
            cJSON_AddNumberToObject(b, "first_event_ms", strtod(PQgetvalue(r, i, 2), NULL));
            cJSON_AddNumberToObject(b, "last_event_ms", strtod(PQgetvalue(r, i, 3), NULL));
            cJSON_AddNumberToObject(b, "events", strtod(PQgetvalue(r, i, 4), NULL));
            cJSON_AddNumberToObject(b, "published", strtod(PQgetvalue(r, i, 5), NULL));
            cJSON_AddNumberToObject(b, "format_errors", strtod(PQgetvalue(r, i, 6), NULL));
            cJSON_AddItemToArray(a, b);
        }
        recon_api_reply(resp, 200, o);
    }
    PQclear(r);
    PQfinish(c);
}

/* Reconcile the batch, or answer the error. */
static recon_report *reconcile_or_reply(recon_api *api, const char *batch,
                                        core_http_response *resp)
{
    char err[512];
    recon_report *rep = NULL;
    PGconn *c = recon_api_pg_or_503(api, resp);

    if (!c)
        return NULL;
    if (recon_reconcile_batch(c, &api->rec, batch, &rep, err, sizeof(err)) != CORE_OK) {
        recon_api_error(resp, 503, err);
        rep = NULL;
    } else {
        int turned = recon_metrics_reconciled(rep);
        if (turned != RECON_TURNED_NONE)
            recon_webhook_batch(api->webhook,
                                turned == RECON_TURNED_CLEAN ? "batch.clean" : "batch.unclean", rep);
    }
    PQfinish(c);
    return rep;
}

static void h_batch(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    const char *id = req->path + strlen("/batches/");
    recon_report *rep;

    if (!*id || strchr(id, '/')) {
        recon_api_error(resp, 404, "no such batch");
        return;
    }
    if (!(rep = reconcile_or_reply(api, id, resp)))
        return;
    if (!rep->known)
        recon_api_error(resp, 404, "no audit event of this batch");
    else
        recon_api_reply(resp, 200, recon_report_json(rep));
    recon_report_free(rep);
}

static void h_discrepancies(const core_http_request *req, core_http_response *resp,
                            void *opaque)
{
    recon_api *api = opaque;
    char batch[512], verdict[32];
    int v = -1;
    long page = page_param(req);
    recon_report *rep;

    if (core_http_query_param(req, "batch", batch, sizeof(batch)) != CORE_OK || !*batch) {
        recon_api_error(resp, 400, "batch: required");
        return;
    }
    if (core_http_query_param(req, "verdict", verdict, sizeof(verdict)) == CORE_OK &&
        ((v = recon_verdict_index(verdict)) < 0 || !recon_verdict_is_discrepancy(v))) {
        recon_api_error(resp, 400, "verdict: one of missing, altered, duplicated, unexpected");
        return;
    }
    if (page < 0) {
        recon_api_error(resp, 400, "page: a number from 1");
        return;
    }
    if (!(rep = reconcile_or_reply(api, batch, resp)))
        return;
    cJSON *o = cJSON_CreateObject(), *a;
    size_t total = 0, from = (size_t)(page - 1) * (size_t)api->page_size;
    cJSON_AddStringToObject(o, "batch", batch);
    if (v >= 0)
        cJSON_AddStringToObject(o, "verdict", recon_verdict_names[v]);
    cJSON_AddNumberToObject(o, "page", (double)page);
    cJSON_AddNumberToObject(o, "page_size", api->page_size);
    a = cJSON_AddArrayToObject(o, "discrepancies");
    for (size_t i = 0; i < rep->ndisc; i++) {
        if (v >= 0 && rep->disc[i].verdict != v)
            continue;
        if (total >= from && total < from + (size_t)api->page_size && a)
            cJSON_AddItemToArray(a, recon_record_json(&rep->disc[i]));
        total++;
    }
    cJSON_AddNumberToObject(o, "total", (double)total);
    recon_api_reply(resp, 200, o);
    recon_report_free(rep);
}

/* POST /replay?batch=ID[&verdict=missing|altered][&dry_run=true] */
static void h_replay(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    char batch[512], verdict[32], dry[8], err[512];
    recon_replay_opts ro = { 0 };
    cJSON *out = NULL;
    PGconn *c;
    int rc;

    if (core_http_query_param(req, "batch", batch, sizeof(batch)) != CORE_OK || !*batch) {
        recon_api_error(resp, 400, "batch: required");
        return;
    }
    rc = core_http_query_param(req, "verdict", verdict, sizeof(verdict));
    ro.verdict = rc == CORE_ERR_NOTFOUND ? RV_MISSING
                 : rc == CORE_OK        ? recon_verdict_index(verdict)
                                        : -1;
    if (ro.verdict != RV_MISSING && ro.verdict != RV_ALTERED) {
        recon_api_error(resp, 400, "verdict: missing or altered");
        return;
    }
    rc = core_http_query_param(req, "dry_run", dry, sizeof(dry));
    if (rc == CORE_ERR_NOTFOUND)
        snprintf(dry, sizeof(dry), "false");
    else if (rc != CORE_OK || (strcmp(dry, "true") != 0 && strcmp(dry, "false") != 0)) {
        recon_api_error(resp, 400, "dry_run: true or false");
        return;
    }
    ro.dry_run = strcmp(dry, "true") == 0;
    ro.cfg = api->cfg;
    ro.topic_prefix = api->topic_prefix;
    if (!(c = recon_api_pg_or_503(api, resp)))
        return;
    rc = recon_replay_batch(c, &api->rec, &ro, batch, &out, err, sizeof(err));
    PQfinish(c);
    if (rc == CORE_ERR_NOTFOUND)
        recon_api_error(resp, 404, err);
    else if (rc != CORE_OK)
        recon_api_error(resp, 503, err);
    else {
        recon_metrics_replayed(cJSON_GetNumberValue(cJSON_GetObjectItem(out, "published")));
        recon_api_reply(resp, 200, out);
    }
}

void recon_api_init(recon_api *api)
{
    pthread_mutex_init(&api->ready_lock, NULL);
}

bool recon_api_ready(void *opaque, char *reason, size_t reason_size)
{
    recon_api *api = opaque;
    bool ok;

    pthread_mutex_lock(&api->ready_lock);
    if (api->closed) {
        snprintf(api->ready_reason, sizeof(api->ready_reason), "stopping");
        api->ready_ok = false;
    } else if (!api->ready_at || core_mono_ms() - api->ready_at >= 2000) {
        PGresult *r = NULL;
        if (!api->ready_conn || PQstatus(api->ready_conn) != CONNECTION_OK) {
            PQfinish(api->ready_conn);
            api->ready_conn = recon_pg_connect(&api->pg, "svc-recon-ready", api->ready_reason,
                                               sizeof(api->ready_reason));
        }
        if (api->ready_conn)
            r = PQexec(api->ready_conn, "SELECT 1");
        api->ready_ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
        if (api->ready_conn && !api->ready_ok) {
            snprintf(api->ready_reason, sizeof(api->ready_reason), "postgres: %s",
                     PQerrorMessage(api->ready_conn));
            api->ready_reason[strcspn(api->ready_reason, "\n")] = '\0';
            PQfinish(api->ready_conn);
            api->ready_conn = NULL;
        }
        PQclear(r);
        api->ready_at = core_mono_ms();
    }
    ok = api->ready_ok;
    if (!ok)
        snprintf(reason, reason_size, "%s", api->ready_reason);
    pthread_mutex_unlock(&api->ready_lock);
    return ok;
}

void recon_api_close(recon_api *api)
{
    pthread_mutex_lock(&api->ready_lock);
    PQfinish(api->ready_conn);
    api->ready_conn = NULL;
    api->ready_ok = false;
    api->closed = true;
    pthread_mutex_unlock(&api->ready_lock);
}

int recon_api_register(core_http_t *h, recon_api *api)
{
    int rc;
    if ((rc = core_http_route(h, "GET", "/batches", h_batches, api)) != CORE_OK ||
        (rc = core_http_route(h, "GET", "/batches/*", h_batch, api)) != CORE_OK ||
        (rc = core_http_route(h, "GET", "/discrepancies", h_discrepancies, api)) != CORE_OK ||
        (rc = recon_api_register_windows(h, api)) != CORE_OK ||
        (rc = recon_api_register_retention(h, api)) != CORE_OK ||
        (rc = core_http_route(h, "POST", "/replay", h_replay, api)) != CORE_OK)
        return rc;
    return CORE_OK;
}
