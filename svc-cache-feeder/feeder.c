/* feeder.c — dataset records to version-guarded Redis writes (see feeder.h). */
#include "feeder.h"

#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] data key, KEYS[2] meta hash, KEYS[3] bulk hash, KEYS[4] old data key
 * ARGV[1] op A|U|D, ARGV[2] version as an order-preserving string (see
 * version_key(): Lua numbers are doubles, exact only to 2^53, and
 * meta.version is a 64-bit long), ARGV[3] field (business key),
 * ARGV[4] old field ("" = none), ARGV[5] event_time, ARGV[6] batch,
 * ARGV[7] kind B|C, ARGV[8] ttl ms, ARGV[9] format s|h, ARGV[10..] value
 * (s: one value; h: field/value pairs).
 * Returns {code, moved}: code 1 written, 2 deleted, 0 older (skipped),
 * 3 equal version (a replay: skipped). */
static const char write_lua[] =
    "local v = ARGV[2]\n"
    "local function ver_of(f)\n"
    "  local m = redis.call('HGET', KEYS[2], f)\n"
    "  if not m then return nil end\n"
    "  return string.match(m, '^[^|]+')\n"
    "end\n"
    "local function stamp(f, deleted)\n"
    "  redis.call('HSET', KEYS[2], f, ARGV[2] .. '|' .. deleted .. '|' .. ARGV[5] .. '|' .. ARGV[6])\n"
    "end\n"
    "if ARGV[7] == 'B' then\n"
    "  local s = redis.call('HGET', KEYS[3], ARGV[6])\n"
    "  if not s or tonumber(ARGV[5]) < tonumber(s) then redis.call('HSET', KEYS[3], ARGV[6], ARGV[5]) end\n"
    "end\n"
    "local moved = 0\n"
    "if ARGV[4] ~= '' and ARGV[4] ~= ARGV[3] then\n"
    "  local ov = ver_of(ARGV[4])\n"
    "  if not ov or ov < v then\n"
    "    redis.call('DEL', KEYS[4])\n"
    "    stamp(ARGV[4], 1)\n"
    "    moved = 1\n"
    "  end\n"
    "end\n"
    "local cur = ver_of(ARGV[3])\n"
    "if cur and cur > v then return {0, moved} end\n"
    "if cur and cur == v then return {3, moved} end\n"
    "if ARGV[1] == 'D' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  stamp(ARGV[3], 1)\n"
    "  return {2, moved}\n"
    "end\n"
    "if ARGV[9] == 'h' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('HSET', KEYS[1], unpack(ARGV, 10))\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[10])\n"
    "end\n"
    "if tonumber(ARGV[8]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[8]) end\n"
    "stamp(ARGV[3], 0)\n"
    "return {1, moved}\n";

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

/* A 64-bit version as 20 decimal digits of (version with its sign bit
 * flipped): string order is numeric order, negatives included, so the Lua
 * script compares versions exactly with < and ==. */
static void version_key(int64_t version, char *buf, size_t size)
{
    snprintf(buf, size, "%020" PRIu64, (uint64_t)version ^ ((uint64_t)1 << 63));
}

struct feeder {
    core_redis_t *r;
    core_redis_script_t *write;
    core_redis_script_t *purge;
};

int feeder_format_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "json") == 0)
        return FEEDER_FMT_JSON;
    if (strcmp(s, "hash") == 0)
        return FEEDER_FMT_HASH;
    if (strcmp(s, "avro") == 0)
        return FEEDER_FMT_AVRO;
    return -1;
}

const char *feeder_format_name(feeder_format_t f)
{
    switch (f) {
    case FEEDER_FMT_JSON: return "json";
    case FEEDER_FMT_HASH: return "hash";
    case FEEDER_FMT_AVRO: return "avro";
    }
    return "?";
}

int feeder_dataset_init(feeder_dataset *ds, const char *name, const core_avro_schema_t *schema,
                        const char *prefix, const char *topic_template, char *errstr,
                        size_t errstr_size)
{
    const char *at = strstr(topic_template, "{dataset}");

    memset(ds, 0, sizeof(*ds));
    if (!at) {
        core_errstr(errstr, errstr_size, "topic.template: '%s' lacks {dataset}", topic_template);
        return CORE_ERR_INVALID;
    }
    ds->schema = schema;
    ds->name = strdup(name);
    ds->topic = core_asprintf("%.*s%s%s", (int)(at - topic_template), topic_template, name,
                          at + strlen("{dataset}"));
    ds->key_prefix = core_asprintf("%s:%s:", prefix, name);
    ds->meta_key = core_asprintf("%s#meta:%s", prefix, name);
    ds->bulk_key = core_asprintf("%s#bulk:%s", prefix, name);
    if (!ds->name || !ds->topic || !ds->key_prefix || !ds->meta_key || !ds->bulk_key) {
        feeder_dataset_clear(ds);
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    return CORE_OK;
}

void feeder_dataset_clear(feeder_dataset *ds)
{
    if (!ds)
        return;
    free(ds->name);
    free(ds->topic);
    free(ds->key_prefix);
    free(ds->meta_key);
    free(ds->bulk_key);
    memset(ds, 0, sizeof(*ds));
}

void feeder_record_clear(feeder_record *rec)
{
    if (!rec)
        return;
    free(rec->id);
    free(rec->key);
    free(rec->old_key);
    free(rec->batch_id);
    for (int i = 0; rec->argv && i < rec->argc; i++)
        free(rec->argv[i]);
    free(rec->argv);
    free(rec->argvlen);
    memset(rec, 0, sizeof(*rec));
    rec->result = FEEDER_RES_PENDING;
}

feeder_t *feeder_new(core_redis_t *r, char *errstr, size_t errstr_size)
{
    feeder_t *f = calloc(1, sizeof(*f));

    if (!f || !r) {
        free(f);
        core_errstr(errstr, errstr_size, r ? "out of memory" : "no Redis handle");
        return NULL;
    }
    f->r = r;
    f->write = core_redis_script_new(r, write_lua);
    f->purge = core_redis_script_new(r, purge_lua);
    if (!f->write || !f->purge) {
        feeder_free(f);
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    return f;
}

void feeder_free(feeder_t *f)
{
    if (!f)
        return;
    core_redis_script_free(f->write);
    core_redis_script_free(f->purge);
    free(f);
}

core_redis_t *feeder_redis(feeder_t *f)
{
    return f->r;
}

/* ---- building the command ------------------------------------------------ */

typedef struct argbuf {
    int n, cap;
    char **v;
    size_t *len;
} argbuf;

static int arg_push(argbuf *a, const char *s, size_t len)
{
    char *copy;

    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        char **v = realloc(a->v, (size_t)cap * sizeof(*v));
        size_t *l;
        if (!v)
            return CORE_ERR_NOMEM;
        a->v = v;
        l = realloc(a->len, (size_t)cap * sizeof(*l));
        if (!l)
            return CORE_ERR_NOMEM;
        a->len = l;
        a->cap = cap;
    }
    copy = malloc(len + 1);
    if (!copy)
        return CORE_ERR_NOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    a->v[a->n] = copy;
    a->len[a->n] = len;
    a->n++;
    return CORE_OK;
}

static int arg_str(argbuf *a, const char *s)
{
    return arg_push(a, s, strlen(s));
}

/* Take ownership of a malloc'd string (freed on failure too). */
static int arg_take(argbuf *a, char *s)
{
    int rc;

    if (!s)
        return CORE_ERR_NOMEM;
    rc = arg_str(a, s);
    free(s);
    return rc;
}

static void arg_free(argbuf *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof(*a));
}

/* Hash format: one field per top-level field of the record; strings as they
 * are, other values as JSON text; null fields left out. */
static int push_hash_fields(argbuf *a, const cJSON *doc)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, doc) {
        int rc;
        if (cJSON_IsNull(it))
            continue;
        if ((rc = arg_str(a, it->string)))
            return rc;
        if (cJSON_IsString(it))
            rc = arg_str(a, it->valuestring);
        else
            rc = arg_take(a, cJSON_PrintUnformatted(it));
        if (rc)
            return rc;
    }
    return CORE_OK;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int feeder_prepare(feeder_t *f, feeder_dataset *ds, const core_avro_catalog_t *cat,
                   const void *value, size_t len, feeder_record *rec, char *errstr,
                   size_t errstr_size)
{
    const core_avro_schema_t *schema = NULL;
    avro_value_t v;
    core_avro_meta meta;
    const char *key = NULL;
    size_t keylen = 0;
    cJSON *doc = NULL;
    argbuf a = { 0 };
    char num[32];
    int rc;

    (void)f;
    memset(rec, 0, sizeof(*rec));
    rec->result = FEEDER_RES_PENDING;
    rc = core_avro_decode(cat, value, len, &schema, &v, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    if (schema != ds->schema && (!core_avro_schema_dataset(schema) ||
                                 strcmp(core_avro_schema_dataset(schema), ds->name) != 0)) {
        core_errstr(errstr, errstr_size, "record of schema %s (id %" PRIu32 ") on the topic of dataset %s",
                    core_avro_schema_name(schema), core_avro_schema_id(schema), ds->name);
        rc = CORE_ERR_INVALID;
        goto out;
    }
    if ((rc = core_avro_get_meta(schema, &v, &meta, errstr, errstr_size)) ||
        (rc = core_avro_get_key(schema, &v, &key, &keylen, errstr, errstr_size)))
        goto out;
    if (keylen == 0) {
        core_errstr(errstr, errstr_size, "%s: empty business key", core_avro_schema_key_field(schema));
        rc = CORE_ERR_INVALID;
        goto out;
    }
    if (meta.op == CORE_AVRO_OP_UPDATE && meta.old_key && meta.old_key[0] == '\0') {
        core_errstr(errstr, errstr_size, "meta.old_key: empty");
        rc = CORE_ERR_INVALID;
        goto out;
    }
    rec->ds = ds;
    rec->op = meta.op;
    rec->kind = meta.kind;
    rec->version = meta.version;
    rec->event_time = meta.event_time;
    rec->id = strdup(meta.id);
    rec->key = strndup(key, keylen);
    rec->batch_id = strdup(meta.batch_id);
    rec->old_key = meta.op == CORE_AVRO_OP_UPDATE ? dup_or_null(meta.old_key) : NULL;
    core_digest_record(value, len, &rec->digest);
    if (!rec->id || !rec->key || !rec->batch_id ||
        (meta.op == CORE_AVRO_OP_UPDATE && meta.old_key && !rec->old_key)) {
        rc = CORE_ERR_NOMEM;
        goto out;
    }

    /* keys */
    if ((rc = arg_take(&a, core_asprintf("%s%s", ds->key_prefix, rec->key))) ||
        (rc = arg_str(&a, ds->meta_key)) || (rc = arg_str(&a, ds->bulk_key)) ||
        (rc = arg_take(&a, core_asprintf("%s%s", ds->key_prefix, rec->old_key ? rec->old_key : ""))))
        goto out;
    /* arguments */
    version_key(rec->version, num, sizeof(num));
    if ((rc = arg_str(&a, rec->op == CORE_AVRO_OP_DELETE ? "D" : rec->op == CORE_AVRO_OP_UPDATE ? "U" : "A")) ||
        (rc = arg_str(&a, num)) || (rc = arg_str(&a, rec->key)) ||
        (rc = arg_str(&a, rec->old_key ? rec->old_key : "")))
        goto out;
    snprintf(num, sizeof(num), "%" PRId64, rec->event_time);
    if ((rc = arg_str(&a, num)) || (rc = arg_str(&a, rec->batch_id)) ||
        (rc = arg_str(&a, rec->kind == CORE_AVRO_KIND_BULK ? "B" : "C")))
        goto out;
    snprintf(num, sizeof(num), "%" PRId64, ds->ttl_ms);
    if ((rc = arg_str(&a, num)) || (rc = arg_str(&a, ds->format == FEEDER_FMT_HASH ? "h" : "s")))
        goto out;
    if (rec->op != CORE_AVRO_OP_DELETE) {
        if (ds->format == FEEDER_FMT_AVRO) {
            rc = arg_push(&a, value, len);
        } else {
            doc = core_avro_to_json(schema, &v, errstr, errstr_size);
            if (!doc) {
                rc = CORE_ERR_INVALID;
                goto out;
            }
            if (ds->format == FEEDER_FMT_HASH)
                rc = push_hash_fields(&a, doc);
            else
                rc = arg_take(&a, cJSON_PrintUnformatted(doc));
        }
        if (rc)
            goto out;
    }
    rec->argc = a.n;
    rec->argv = a.v;
    rec->argvlen = a.len;
    memset(&a, 0, sizeof(a));
    rc = CORE_OK;
out:
    if (rc == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "out of memory");
    if (rc != CORE_OK)
        feeder_record_clear(rec);
    arg_free(&a);
    cJSON_Delete(doc);
    avro_value_decref(&v);
    return rc;
}

/* ---- running a batch ----------------------------------------------------- */

static void set_result(feeder_record *rec, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        rec->result = FEEDER_RES_ERROR;
        snprintf(rec->error, sizeof(rec->error), "redis: %.*s", (int)rep->len, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER || rep->element[1]->type != REDIS_REPLY_INTEGER) {
        rec->result = FEEDER_RES_ERROR;
        snprintf(rec->error, sizeof(rec->error), "redis: unexpected reply type %d to the write script",
                 rep->type);
        return;
    }
    rec->moved = rep->element[1]->integer == 1;
    switch (rep->element[0]->integer) {
    case 1: rec->result = FEEDER_RES_CACHED; break;
    case 2: rec->result = FEEDER_RES_DELETED; break;
    case 3: rec->result = FEEDER_RES_STALE; rec->duplicate = true; break;
    case 0: rec->result = FEEDER_RES_STALE; break;
    default:
        rec->result = FEEDER_RES_ERROR;
        snprintf(rec->error, sizeof(rec->error), "redis: unexpected code %lld from the write script",
                 rep->element[0]->integer);
    }
}

int feeder_exec(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size)
{
    redisReply **replies = NULL;
    size_t nrep = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        recs[i].result = FEEDER_RES_PENDING;
        recs[i].duplicate = recs[i].moved = false;
        recs[i].error[0] = '\0';
        rc = core_redis_evalsha_append(f->r, f->write, 4, recs[i].argc, (const char **)recs[i].argv,
                                       recs[i].argvlen);
        if (rc != CORE_OK) {
            core_redis_disconnect(f->r); /* drops what was appended */
            core_errstr(errstr, errstr_size, "cannot append to the pipeline: %s",
                        core_err2str((core_err_t)rc));
            return rc;
        }
    }
    rc = core_redis_pipeline_exec(f->r, &replies, &nrep, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    if (nrep != n) {
        core_redis_replies_free(replies, nrep);
        core_errstr(errstr, errstr_size, "redis: %zu replies to %zu commands", nrep, n);
        core_redis_disconnect(f->r);
        return CORE_ERR_TRANSIENT;
    }
    for (size_t i = 0; i < n; i++)
        set_result(&recs[i], replies[i]);
    core_redis_replies_free(replies, nrep);
    return CORE_OK;
}

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
        rep = core_redis_command(f->r, errstr, errstr_size, "HGETALL %s", dkey);
    else
        rep = core_redis_command(f->r, errstr, errstr_size, "GET %s", dkey);
    if (!rep) {
        free(dkey);
        return core_redis_last_error(f->r);
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

static int purge_chunk(feeder_t *f, const feeder_dataset *ds, const char *batch_id,
                       const char *snap, char **fields, size_t nf, uint64_t *purged, char *errstr,
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
    rep = core_redis_evalsha(f->r, f->purge, 1, (int)nf + 4, argv, NULL, errstr, errstr_size);
    free(argv);
    if (!rep)
        return core_redis_last_error(f->r);
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

int feeder_purge(feeder_t *f, const feeder_dataset *ds, const char *batch_id, uint64_t *purged,
                 char *errstr, size_t errstr_size)
{
    redisReply *rep;
    char cursor[32] = "0";
    char snap[32];
    char *fields[PURGE_CHUNK];
    size_t nf = 0;
    int rc = CORE_OK;

    *purged = 0;
    rep = core_redis_command(f->r, errstr, errstr_size, "HGET %s %s", ds->bulk_key, batch_id);
    if (!rep)
        return core_redis_last_error(f->r);
    if (rep->type != REDIS_REPLY_STRING) {
        core_errstr(errstr, errstr_size, "bulk batch '%s' of dataset %s never reached this cache",
                    batch_id, ds->name);
        freeReplyObject(rep);
        return CORE_ERR_NOTFOUND;
    }
    snprintf(snap, sizeof(snap), "%.*s", (int)rep->len, rep->str);
    freeReplyObject(rep);

    do {
        rep = core_redis_command(f->r, errstr, errstr_size, "HSCAN %s %s COUNT 500", ds->meta_key,
                                 cursor);
        if (!rep)
            return core_redis_last_error(f->r);
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
                rc = purge_chunk(f, ds, batch_id, snap, fields, nf, purged, errstr, errstr_size);
                for (size_t k = 0; k < nf; k++)
                    free(fields[k]);
                nf = 0;
            }
        }
        freeReplyObject(rep);
    } while (rc == CORE_OK && strcmp(cursor, "0") != 0);
    if (rc == CORE_OK && nf > 0)
        rc = purge_chunk(f, ds, batch_id, snap, fields, nf, purged, errstr, errstr_size);
    for (size_t k = 0; k < nf; k++)
        free(fields[k]);
    return rc;
}
