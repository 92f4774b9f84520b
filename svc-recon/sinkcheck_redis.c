/* sinkcheck_redis.c — Redis against the pipeline (sinkcheck.h): the
 * feeder's layout read in pipelined rounds and hashed here. */
#include "sinkcheck_int.h"

#include "tributary/core_redis.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Redis --------------------------------------------------------------- */

/* svc-cache-feeder's version strings: 20 digits of the int64 with its sign
 * bit flipped. */
static bool parse_flipped(const char *s, size_t len, int64_t *v)
{
    uint64_t u = 0;

    if (len != 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        u = u * 10 + (uint64_t)(s[i] - '0');
    }
    *v = (int64_t)(u ^ (UINT64_C(1) << 63));
    return true;
}

/* A hash's fields back into the natural JSON object. */
static cJSON *hash_to_json(const core_avro_schema_t *schema, const redisReply *rep)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(schema), "fields");
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; o && i + 1 < rep->elements; i += 2) {
        const char *name = rep->element[i]->str, *val = rep->element[i + 1]->str;
        const cJSON *f, *type = NULL;
        cJSON *v = NULL;

        cJSON_ArrayForEach(f, fields)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");

            if (cJSON_IsString(fn) && !strcmp(fn->valuestring, name))
                type = cJSON_GetObjectItemCaseSensitive(f, "type");
        }
        if (!type || !sinkcheck_natural_is_string(type))
            v = sinkcheck_parse_exact(val, strlen(val));
        if (!v)
            v = cJSON_CreateString(val);
        if (!v || !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

/* The stored record from its natural JSON: version, id, content digest. */
static void stored_from_json(const core_avro_schema_t *schema, const cJSON *doc, stored *s,
                             char *idbuf, size_t idsize)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(meta, "id");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(meta, "version");
    avro_value_t v;
    char err[256];

    if (cJSON_IsString(id)) {
        snprintf(idbuf, idsize, "%s", id->valuestring);
        s->id = idbuf;
    }
    if (cJSON_IsRaw(ver) || cJSON_IsString(ver))
        s->version = sinkcheck_parse_i64(ver->valuestring);
    else if (cJSON_IsNumber(ver))
        s->version = (int64_t)ver->valuedouble;
    if (core_avro_from_json(schema, doc, &v, err, sizeof(err)) == CORE_OK) {
        s->have_digest = core_avro_content_digest_value(schema, &v, &s->content, err,
                                                        sizeof(err)) == CORE_OK;
        avro_value_decref(&v);
    }
}

/* One chunk of expected keys: HMGET of their versions, then their records.
 * Longer than most (about 145 lines) for a reason: the two pipelined rounds
 * of a chunk and the verdict of each key read in them share its replies. */
static core_err_t redis_chunk(core_redis_t *r, const sinkcheck_redis_conf *conf,
                              const core_avro_catalog_t *cat, const core_avro_schema_t *schema,
                              const char *prefix, const char *dataset,
                              const sinkcheck_expect *const *ev, size_t n,
                              sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    size_t argc = n + 2, i;
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *argl = calloc(argc, sizeof(*argl));
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    char *meta_key = core_asprintf("%s#meta:%s", prefix, dataset);
    redisReply **reps = NULL;
    size_t nreps = 0;
    core_err_t err = CORE_OK;
    char detail[192], idbuf[256];

    if (!argv || !argl || !keys || !meta_key)
        goto nomem;
    for (i = 0; i < n; i++)
        if (!(keys[i] = core_asprintf("%s:%s:%s", prefix, dataset, ev[i]->key)))
            goto nomem;
    argv[0] = "HMGET";
    argv[1] = meta_key;
    for (i = 0; i < n; i++)
        argv[i + 2] = ev[i]->key;
    for (i = 0; i < argc; i++)
        argl[i] = strlen(argv[i]);
    if ((err = core_redis_append_argv(r, (int)argc, argv, argl)) != CORE_OK)
        goto fail;
    if (conf->format == SINKCHECK_REDIS_HASH) {
        for (i = 0; i < n; i++) {
            const char *a[2] = { "HGETALL", keys[i] };
            size_t al[2] = { 7, strlen(keys[i]) };

            if ((err = core_redis_append_argv(r, 2, a, al)) != CORE_OK)
                goto fail;
        }
    } else {
        argv[0] = "MGET";
        for (i = 0; i < n; i++) {
            argv[i + 1] = keys[i];
            argl[i + 1] = strlen(keys[i]);
        }
        argl[0] = 4;
        if ((err = core_redis_append_argv(r, (int)n + 1, argv, argl)) != CORE_OK)
            goto fail;
    }
    if ((err = core_redis_pipeline_exec(r, &reps, &nreps, errstr, errstr_size)) != CORE_OK)
        goto out;
    for (i = 0; i < nreps; i++)
        if (reps[i]->type == REDIS_REPLY_ERROR) {
            core_errstr(errstr, errstr_size, "redis: %.*s", (int)reps[i]->len, reps[i]->str);
            err = CORE_ERR_INVALID;
            goto out;
        }
    if (nreps < 2 || reps[0]->type != REDIS_REPLY_ARRAY || reps[0]->elements != n ||
        (conf->format != SINKCHECK_REDIS_HASH &&
         (reps[1]->type != REDIS_REPLY_ARRAY || reps[1]->elements != n)) ||
        (conf->format == SINKCHECK_REDIS_HASH && nreps != n + 1)) {
        core_errstr(errstr, errstr_size, "redis: unexpected replies to HMGET/MGET");
        err = CORE_ERR_INVALID;
        goto out;
    }
    out->rows_fetched += n;
    for (i = 0; i < n && err == CORE_OK; i++) {
        const sinkcheck_expect *e = ev[i];
        const redisReply *mv = reps[0]->element[i];
        const redisReply *dv = conf->format == SINKCHECK_REDIS_HASH ? reps[i + 1]
                                                                    : reps[1]->element[i];
        stored s = { 0 };
        int64_t meta_version = SINKCHECK_NONE;
        bool meta_deleted = false;
        int v;

        if (mv->type == REDIS_REPLY_STRING && mv->len >= 22 && mv->str[20] == '|' &&
            parse_flipped(mv->str, 20, &meta_version))
            meta_deleted = mv->str[21] == '1';
        if (dv->type == REDIS_REPLY_STRING && conf->format != SINKCHECK_REDIS_HASH) {
            s.present = true;
            s.version = SINKCHECK_NONE;
            if (conf->format == SINKCHECK_REDIS_AVRO) {
                const core_avro_schema_t *ws = NULL;
                avro_value_t val;
                char e2[256];

                if (core_avro_decode(cat, dv->str, dv->len, &ws, &val, e2, sizeof(e2)) == CORE_OK) {
                    core_avro_meta m;

                    if (core_avro_get_meta(ws, &val, &m, e2, sizeof(e2)) == CORE_OK) {
                        s.version = m.version;
                        snprintf(idbuf, sizeof(idbuf), "%s", m.id);
                        s.id = idbuf;
                    }
                    s.have_digest = core_avro_content_digest_wire(cat, dv->str, dv->len,
                                                                  &s.content, e2,
                                                                  sizeof(e2)) == CORE_OK;
                    avro_value_decref(&val);
                }
            } else {
                cJSON *doc = sinkcheck_parse_exact(dv->str, dv->len);

                if (doc)
                    stored_from_json(schema, doc, &s, idbuf, sizeof(idbuf));
                cJSON_Delete(doc);
            }
        } else if (dv->type == REDIS_REPLY_ARRAY && dv->elements > 0) {
            cJSON *doc = hash_to_json(schema, dv);

            s.present = true;
            s.version = SINKCHECK_NONE;
            if (doc)
                stored_from_json(schema, doc, &s, idbuf, sizeof(idbuf));
            cJSON_Delete(doc);
        }
        if (s.present && s.version == SINKCHECK_NONE)
            s.version = meta_version; /* no meta in the record: the guard's version */
        if (!s.present && !e->deleted && meta_version != SINKCHECK_NONE &&
            meta_version < e->version) {
            err = sinkcheck_add_finding(out, SINKCHECK_STALE, SINK_REDIS, e->key, e->id, meta_version,
                                        "key left at version %" PRId64 "%s, the pipeline's newest is %"
                                        PRId64, meta_version, meta_deleted ? " (deleted)" : "",
                                        e->version);
            continue;
        }
        if ((v = sinkcheck_judge(e, &s, detail, sizeof(detail))) >= 0)
            err = sinkcheck_add_finding(out, (sinkcheck_verdict_t)v, SINK_REDIS, e->key,
                                        v == SINKCHECK_UNEXPECTED && e->deleted ? s.id : e->id,
                                        s.present ? s.version : meta_version, "%s", detail);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
    goto out;
nomem:
    err = CORE_ERR_NOMEM;
fail:
    core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
out:
    core_redis_replies_free(reps, nreps);
    for (i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    free(argl);
    free(meta_key);
    return err;
}

core_err_t sinkcheck_redis(const sinkcheck_redis_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    sinkcheck_redis_conf def = { 0 };
    const core_avro_schema_t *schema = core_avro_catalog_by_dataset(p->cat, p->dataset);
    core_redis_opts o = { 0 };
    core_redis_t *r;
    exp_index ix;
    size_t chunk, first = out->n;
    core_err_t err;

    if (!conf)
        conf = &def;
    if (!schema) {
        core_errstr(errstr, errstr_size, "sinkcheck: dataset %s is not in the schema catalogue",
                    p->dataset ? p->dataset : "(null)");
        return CORE_ERR_INVALID;
    }
    if ((err = sinkcheck_exp_build(&ix, p, errstr, errstr_size)) != CORE_OK)
        return err;
    o.host = conf->host;
    o.port = conf->port;
    o.user = conf->user;
    o.password = conf->password;
    o.db = conf->db;
    if (!(r = core_redis_new(&o, errstr, errstr_size))) {
        free(ix.by_key);
        return CORE_ERR_INVALID;
    }
    if ((err = core_redis_connect(r, errstr, errstr_size)) != CORE_OK)
        goto done;
    chunk = conf->pipeline ? conf->pipeline : 500;
    for (size_t i = 0; i < ix.n && err == CORE_OK; i += chunk)
        err = redis_chunk(r, conf, p->cat, schema, conf->prefix ? conf->prefix : "tb", p->dataset,
                          ix.by_key + i, ix.n - i < chunk ? ix.n - i : chunk, out, errstr,
                          errstr_size);
    out->expected += ix.n;
    if (err == CORE_OK && out->n > first)
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), sinkcheck_finding_cmp);
done:
    core_redis_free(r);
    free(ix.by_key);
    return err;
}

