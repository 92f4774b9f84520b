/* sinkcheck_mongo.c — MongoDB against the pipeline (sinkcheck.h): the
 * persister's documents read back and hashed here. */
#include "sinkcheck_int.h"

#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MongoDB ------------------------------------------------------------- */

/* A stored document back into the record's natural JSON (meta: a
 * placeholder, the content digest leaves it out). NULL when a field cannot
 * be read back. */
static cJSON *mongo_to_json(const core_avro_schema_t *schema, const bson_t *doc)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(schema), "fields");
    const char *key = core_avro_schema_key_field(schema);
    const cJSON *f;
    cJSON *o = cJSON_Parse("{\"meta\":{\"id\":\"\",\"op\":\"ADD\",\"kind\":\"BULK\","
                           "\"source\":\"\",\"batch_id\":\"\",\"seq\":0,\"event_time\":0,"
                           "\"version\":0,\"old_key\":null}}");

    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const char *name = cJSON_IsString(fn) ? fn->valuestring : NULL;
        bson_iter_t it;
        cJSON *v = NULL;
        char buf[BSON_DECIMAL128_STRING > CORE_AVRO_TIME_SIZE ? BSON_DECIMAL128_STRING
                                                              : CORE_AVRO_TIME_SIZE];

        if (!o || !name || !strcmp(name, "meta"))
            continue;
        if (!bson_iter_init_find(&it, doc, !strcmp(name, key) ? "_id" : name)) {
            v = cJSON_CreateNull(); /* a null field is stored as null or left out */
        } else {
            switch (bson_iter_type(&it)) {
            case BSON_TYPE_UTF8:
                v = cJSON_CreateString(bson_iter_utf8(&it, NULL));
                break;
            case BSON_TYPE_NULL:
                v = cJSON_CreateNull();
                break;
            case BSON_TYPE_BOOL:
                v = cJSON_CreateBool(bson_iter_bool(&it));
                break;
            case BSON_TYPE_INT32:
            case BSON_TYPE_INT64:
                snprintf(buf, sizeof(buf), "%" PRId64, bson_iter_as_int64(&it));
                v = cJSON_CreateString(buf); /* a long as a string is exact */
                break;
            case BSON_TYPE_DOUBLE:
                v = cJSON_CreateNumber(bson_iter_double(&it));
                break;
            case BSON_TYPE_DATE_TIME:
                if (core_avro_time_format(bson_iter_date_time(&it), buf, sizeof(buf)) > 0)
                    v = cJSON_CreateString(buf);
                break;
            case BSON_TYPE_DECIMAL128: {
                bson_decimal128_t d;

                if (bson_iter_decimal128(&it, &d)) {
                    bson_decimal128_to_string(&d, buf);
                    v = cJSON_CreateString(buf);
                }
                break;
            }
            case BSON_TYPE_DOCUMENT:
            case BSON_TYPE_ARRAY: {
                const uint8_t *data;
                uint32_t len;
                bson_t sub;
                char *js;

                if (BSON_ITER_HOLDS_DOCUMENT(&it))
                    bson_iter_document(&it, &len, &data);
                else
                    bson_iter_array(&it, &len, &data);
                if (bson_init_static(&sub, data, len) &&
                    (js = BSON_ITER_HOLDS_DOCUMENT(&it) ? bson_as_relaxed_extended_json(&sub, NULL)
                                                        : bson_array_as_json(&sub, NULL))) {
                    v = sinkcheck_parse_exact(js, strlen(js));
                    bson_free(js);
                }
                break;
            }
            default:
                break;
            }
        }
        if (!v || !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

static bool in_list(const char *s, const char *const *v, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, v[i]))
            return true;
    return false;
}

/* Longer than most (about 130 lines) for a reason: one cursor over the
 * collection's documents of the expected keys and the batches, each judged
 * as it comes, with the client's one cleanup path. */
core_err_t sinkcheck_mongo(const sinkcheck_mongo_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *schema = core_avro_catalog_by_dataset(p->cat, p->dataset);
    const char *uristr = conf && conf->uri ? conf->uri : "mongodb://127.0.0.1:27017";
    int timeout = conf && conf->timeout_ms ? conf->timeout_ms : 10000;
    mongoc_uri_t *uri = NULL;
    mongoc_client_t *client = NULL;
    mongoc_collection_t *coll = NULL;
    mongoc_cursor_t *cur = NULL;
    const bson_t *doc;
    bson_t filter = BSON_INITIALIZER;
    bson_error_t berr;
    exp_index ix = { 0 };
    bool *seen = NULL;
    size_t first = out->n;
    char detail[192], idbuf[256];
    core_err_t err;

    if (!schema) {
        core_errstr(errstr, errstr_size, "sinkcheck: dataset %s is not in the schema catalogue",
                    p->dataset ? p->dataset : "(null)");
        return CORE_ERR_INVALID;
    }
    if ((err = sinkcheck_exp_build(&ix, p, errstr, errstr_size)) != CORE_OK)
        return err;
    mongoc_init();
    if (!(uri = mongoc_uri_new_with_error(uristr, &berr))) {
        core_errstr(errstr, errstr_size, "mongodb: the URI is not valid: %s", berr.message);
        err = CORE_ERR_INVALID;
        goto done;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout);
    if (!(client = mongoc_client_new_from_uri(uri))) {
        core_errstr(errstr, errstr_size, "mongodb: cannot create a client");
        err = CORE_ERR_INVALID;
        goto done;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, "svc-recon-sinkcheck");
    coll = mongoc_client_get_collection(client, conf && conf->database ? conf->database
                                                                       : "tributary",
                                        p->dataset);
    seen = calloc(ix.n ? ix.n : 1, sizeof(*seen));
    if (!seen) {
        err = CORE_ERR_NOMEM;
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
        goto done;
    }
    cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    while (err == CORE_OK && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        const char *key = bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)
                              ? bson_iter_utf8(&it, NULL) : NULL;
        const char *batch = bson_iter_init_find(&it, doc, "tb_batch") &&
                                    BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
        stored s = { .present = true, .version = SINKCHECK_NONE };
        const sinkcheck_expect *e;
        size_t pos;
        cJSON *j;
        int v;

        if (!key)
            continue;
        out->rows_fetched++;
        if (bson_iter_init_find(&it, doc, "tb_version") && BSON_ITER_HOLDS_NUMBER(&it))
            s.version = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "tb_id") && BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(idbuf, sizeof(idbuf), "%s", bson_iter_utf8(&it, NULL));
            s.id = idbuf;
        }
        if (!(e = sinkcheck_exp_find(&ix, key, &pos))) {
            if (in_list(batch, p->batches, p->nbatches))
                err = sinkcheck_add_finding(out, SINKCHECK_UNEXPECTED, SINK_MONGO, key, s.id, s.version,
                                            "a document of the batch the pipeline never wrote (version %"
                                            PRId64 ")", s.version);
            continue;
        }
        seen[pos] = true;
        if ((j = mongo_to_json(schema, doc))) {
            avro_value_t val;
            char e2[256];

            if (core_avro_from_json(schema, j, &val, e2, sizeof(e2)) == CORE_OK) {
                s.have_digest = core_avro_content_digest_value(schema, &val, &s.content, e2,
                                                               sizeof(e2)) == CORE_OK;
                avro_value_decref(&val);
            }
            cJSON_Delete(j);
        }
        if ((v = sinkcheck_judge(e, &s, detail, sizeof(detail))) >= 0)
            err = sinkcheck_add_finding(out, (sinkcheck_verdict_t)v, SINK_MONGO, e->key,
                                        v == SINKCHECK_UNEXPECTED && e->deleted ? s.id : e->id, s.version,
                                        "%s", detail);
    }
    if (err == CORE_OK && mongoc_cursor_error(cur, &berr)) {
        bool down = berr.domain == MONGOC_ERROR_SERVER_SELECTION ||
                    berr.domain == MONGOC_ERROR_STREAM;

        core_errstr(errstr, errstr_size, "mongodb: reading %s: %s", p->dataset,
                    down ? "no server answered (check mongodb.uri and that the server is up)"
                         : berr.message);
        err = down ? CORE_ERR_TRANSIENT : CORE_ERR_INVALID;
        goto done;
    }
    for (size_t i = 0; i < ix.n && err == CORE_OK; i++) {
        stored none = { 0 };
        int v;

        if (!seen[i] && (v = sinkcheck_judge(ix.by_key[i], &none, detail, sizeof(detail))) >= 0)
            err = sinkcheck_add_finding(out, (sinkcheck_verdict_t)v, SINK_MONGO, ix.by_key[i]->key,
                                        ix.by_key[i]->id, SINKCHECK_NONE, "%s", detail);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
    out->expected += ix.n;
    if (err == CORE_OK && out->n > first)
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), sinkcheck_finding_cmp);
done:
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    bson_destroy(&filter);
    free(seen);
    free(ix.by_key);
    return err;
}
