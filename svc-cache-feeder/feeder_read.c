/* feeder_read.c — svc-cache-feeder's client side of the cache (feeder.h):
 * the read path (feeder_get) and the bulk-reload purge (feeder_purge). */
#include "feeder.h"

#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] meta hash; ARGV[1] data key prefix, ARGV[2] batch, ARGV[3]
 * snapshot time, ARGV[4..] fields. Returns how many records were removed. */
static const char purge_lua[] =
    "local n = 0\n"
    "for i = 4, #ARGV do\n"
    "  local m = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  if m then\n"
    "    local ver, del, et, b = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')\n"
    "    if del == '0' and b ~= ARGV[2] and tonumber(et) < tonumber(ARGV[3]) then\n"
    "      redis.call('DEL', ARGV[1] .. ARGV[i])\n"
    "      redis.call('HSET', KEYS[1], ARGV[i], ver .. '|1|' .. et .. '|' .. b)\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n\n";

/* ---- read path ----------------------------------------------------------- */

int feeder_get(feeder_t *f, const feeder_dataset *ds, const core_avro_catalog_t *cat,
               const char *key, char **out, char *errstr, size_t errstr_size)
{
    char *dkey = core_asprintf("%s%s", ds->key_prefix, key);
    redisReply *rep;
    int rc = CORE_OK;

    *out = NULL;
    if (!dkey)
        return CORE_ERR_NOMEM;
    if (ds->format == FEEDER_FMT_HASH)
        rep = core_redis_command(feeder_redis(f), errstr, errstr_size, "HGETALL %s", dkey);
    else
        rep = core_redis_command(feeder_redis(f), errstr, errstr_size, "GET %s", dkey);
    if (!rep) {
        free(dkey);
        return core_redis_last_error(feeder_redis(f));
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        core_errstr(errstr, errstr_size, "%s: %.*s", dkey, (int)rep->len, rep->str);
        rc = CORE_ERR_INVALID;
    } else if (rep->type == REDIS_REPLY_NIL ||
               (rep->type == REDIS_REPLY_ARRAY && rep->elements == 0)) {
        core_errstr(errstr, errstr_size, "%s: not in the cache", dkey);
        rc = CORE_ERR_NOTFOUND;
    } else if (ds->format == FEEDER_FMT_HASH) {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; o && i + 1 < rep->elements; i += 2) {
            cJSON *s = cJSON_CreateString(rep->element[i + 1]->str);
            if (!s || !cJSON_AddItemToObject(o, rep->element[i]->str, s)) {
                cJSON_Delete(s);
                cJSON_Delete(o);
                o = NULL;
            }
        }
        *out = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!*out)
            rc = CORE_ERR_NOMEM;
    } else if (ds->format == FEEDER_FMT_AVRO) {
        const core_avro_schema_t *schema = NULL;
        avro_value_t v;
        rc = core_avro_decode(cat, rep->str, rep->len, &schema, &v, errstr, errstr_size);
        if (rc == CORE_OK) {
            cJSON *doc = core_avro_to_json(schema, &v, errstr, errstr_size);
            *out = doc ? cJSON_PrintUnformatted(doc) : NULL;
            if (!*out)
                rc = CORE_ERR_INVALID;
            cJSON_Delete(doc);
            avro_value_decref(&v);
        }
    } else if (rep->type == REDIS_REPLY_STRING) {
        *out = strndup(rep->str, rep->len);
        if (!*out)
            rc = CORE_ERR_NOMEM;
    } else {
        core_errstr(errstr, errstr_size, "%s: unexpected reply type %d", dkey, rep->type);
        rc = CORE_ERR_INVALID;
    }
    freeReplyObject(rep);
    free(dkey);
    return rc;
}

/* ---- bulk-reload purge ---------------------------------------------------- */

#define PURGE_CHUNK 200

static int purge_chunk(feeder_t *f, core_redis_script_t *script, const feeder_dataset *ds,
                       const char *batch_id, const char *snap, char **fields, size_t nf, uint64_t *purged, char *errstr,
                       size_t errstr_size)
{
    const char **argv = calloc(nf + 4, sizeof(*argv));
    redisReply *rep;
    int rc = CORE_OK;

    if (!argv)
        return CORE_ERR_NOMEM;
    argv[0] = ds->meta_key;
    argv[1] = ds->key_prefix;
    argv[2] = batch_id;
    argv[3] = snap;
    for (size_t i = 0; i < nf; i++)
        argv[4 + i] = fields[i];
    rep = core_redis_evalsha(feeder_redis(f), script, 1, (int)nf + 4, argv, NULL, errstr, errstr_size);
    free(argv);
    if (!rep)
        return core_redis_last_error(feeder_redis(f));
    if (rep->type == REDIS_REPLY_INTEGER) {
        *purged += (uint64_t)rep->integer;
    } else {
        core_errstr(errstr, errstr_size, "purge script: %s",
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        rc = CORE_ERR_INVALID;
    }
    freeReplyObject(rep);
    return rc;
}

static int purge_all(feeder_t *f, core_redis_script_t *script, const feeder_dataset *ds,
                     const char *batch_id, uint64_t *purged, char *errstr, size_t errstr_size)
{
    redisReply *rep;
    char cursor[32] = "0";
    char snap[32];
    char *fields[PURGE_CHUNK];
    size_t nf = 0;
    int rc = CORE_OK;

    *purged = 0;
    rep = core_redis_command(feeder_redis(f), errstr, errstr_size, "HGET %s %s", ds->bulk_key, batch_id);
    if (!rep)
        return core_redis_last_error(feeder_redis(f));
    if (rep->type != REDIS_REPLY_STRING) {
        core_errstr(errstr, errstr_size, "bulk batch '%s' of dataset %s never reached this cache",
                    batch_id, ds->name);
        freeReplyObject(rep);
        return CORE_ERR_NOTFOUND;
    }
    snprintf(snap, sizeof(snap), "%.*s", (int)rep->len, rep->str);
    freeReplyObject(rep);

    do {
        rep = core_redis_command(feeder_redis(f), errstr, errstr_size, "HSCAN %s %s COUNT 500", ds->meta_key,
                                 cursor);
        if (!rep)
            return core_redis_last_error(feeder_redis(f));
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING) {
            core_errstr(errstr, errstr_size, "HSCAN %s: unexpected reply", ds->meta_key);
            freeReplyObject(rep);
            return CORE_ERR_INVALID;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; rc == CORE_OK && i + 1 < rep->element[1]->elements; i += 2) {
            const redisReply *fld = rep->element[1]->element[i];
            const redisReply *val = rep->element[1]->element[i + 1];
            const char *p = memchr(val->str, '|', val->len);
            /* candidates only: live records; the script re-checks the rest */
            if (!p || p + 1 >= val->str + val->len || p[1] != '0')
                continue;
            fields[nf] = strndup(fld->str, fld->len);
            if (!fields[nf]) {
                rc = CORE_ERR_NOMEM;
                break;
            }
            if (++nf == PURGE_CHUNK) {
                rc = purge_chunk(f, script, ds, batch_id, snap, fields, nf, purged, errstr, errstr_size);
                for (size_t k = 0; k < nf; k++)
                    free(fields[k]);
                nf = 0;
            }
        }
        freeReplyObject(rep);
    } while (rc == CORE_OK && strcmp(cursor, "0") != 0);
    if (rc == CORE_OK && nf > 0)
        rc = purge_chunk(f, script, ds, batch_id, snap, fields, nf, purged, errstr, errstr_size);
    for (size_t k = 0; k < nf; k++)
        free(fields[k]);
    return rc;
}

int feeder_purge(feeder_t *f, const feeder_dataset *ds, const char *batch_id, uint64_t *purged,
                 char *errstr, size_t errstr_size)
{
    /* a one-shot subcommand: its script is loaded for the call */
    core_redis_script_t *script = core_redis_script_new(feeder_redis(f), purge_lua);
    int rc;

    *purged = 0;
    if (!script) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    rc = purge_all(f, script, ds, batch_id, purged, errstr, errstr_size);
    core_redis_script_free(script);
    return rc;
}
