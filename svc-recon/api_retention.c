/* api_retention.c — GET /retention (viewer) and PUT /retention (admin):
 * the payload retention of method full (payload.h). */
#include "api.h"
#include "payload.h"

#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void h_get(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    char err[512];
    cJSON *o = NULL;
    PGconn *c;

    (void)req;
    if (!(c = recon_api_pg_or_503(api, resp)))
        return;
    if (recon_retention_json(c, api->rec.schema, api->retention_days, &o, err, sizeof(err)) !=
        CORE_OK)
        recon_api_error(resp, 503, err);
    else
        recon_api_reply(resp, 200, o);
    PQfinish(c);
}

/* PUT /retention {"dataset": NAME, "days": N} */
static void h_put(const core_http_request *req, core_http_response *resp, void *opaque)
{
    recon_api *api = opaque;
    cJSON *b = req->body ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(b, "dataset");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(b, "days");
    char err[512];
    PGconn *c;

    if (!cJSON_IsObject(b) || !cJSON_IsString(ds) || !cJSON_IsNumber(days)) {
        recon_api_error(resp, 400, "body: {\"dataset\": NAME, \"days\": N} required");
        goto out;
    }
    if (api->cat && !core_avro_catalog_by_dataset(api->cat, ds->valuestring)) {
        recon_api_error(resp, 400, "dataset: not in the catalogue");
        goto out;
    }
    if (days->valuedouble != floor(days->valuedouble) || days->valuedouble < 1 ||
        days->valuedouble > 36500) {
        recon_api_error(resp, 400, "days: a whole number from 1 to 36500");
        goto out;
    }
    if (!(c = recon_api_pg_or_503(api, resp)))
        goto out;
    if (recon_retention_set(c, api->rec.schema, ds->valuestring, (int64_t)days->valuedouble,
                            core_now_ms(), err, sizeof(err)) != CORE_OK) {
        recon_api_error(resp, 503, err);
    } else {
        cJSON *o = NULL;
        core_log_info("retention set", CLF_S("dataset", ds->valuestring),
                      CLF_I("days", (int64_t)days->valuedouble));
        if (recon_retention_json(c, api->rec.schema, api->retention_days, &o, err,
                                 sizeof(err)) != CORE_OK)
            recon_api_error(resp, 503, err);
        else
            recon_api_reply(resp, 200, o);
    }
    PQfinish(c);
out:
    cJSON_Delete(b);
}

int recon_api_register_retention(core_http_t *h, recon_api *api)
{
    int rc;
    if ((rc = core_http_route(h, "GET", "/retention", h_get, api)) != CORE_OK ||
        (rc = core_http_route(h, "PUT", "/retention", h_put, api)) != CORE_OK)
        return rc;
    return CORE_OK;
}
