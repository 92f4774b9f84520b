/* feeder.c — dataset records to version-guarded Redis writes (see feeder.h). */
#include "feeder.h"
#include "docjson.h"

#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The write script: a run of records of one dataset, each version-guarded
 * exactly as if it ran alone, in order (a later record of a key sees the
 * version an earlier one left), all atomically.
 *
 * KEYS[1] meta hash, KEYS[2] bulk hash; ARGV[1] data key prefix, ARGV[2]
 * format s|h, ARGV[3] ttl ms; then per record 8 + nv arguments: op A|U|D,
 * version as an order-preserving string (see version_key(): Lua numbers are
 * doubles, exact only to 2^53, and meta.version is a 64-bit long), field
 * (business key), old field ("" = none), event_time, batch, kind B|C, nv,
 * then nv value arguments (s: one value; h: field/value pairs; none for a
 * delete).
 * Returns one digit per record: code + 4 * moved, code 1 written,
 * 2 deleted, 0 older (skipped), 3 equal version (a replay: skipped); moved:
 * an UPDATE removed the record under its old key.
 *
 * Cost: every redis.call costs the server about as much as the command
 * itself again, so the script reads all versions with one HMGET, works out
 * each record's outcome in Lua, and then writes the final state of each
 * touched key (the last write wins anyway) with a few multi-key commands.
 * Every read comes before the first write: a refused read (WRONGTYPE on the
 * meta hash) leaves Redis untouched. Arguments to one call are capped
 * (Lua's unpack has a C stack limit). */
static const char write_lua[] =
    "local meta, bulk, pfx, hash, ttl = KEYS[1], KEYS[2], ARGV[1], ARGV[2] == 'h', tonumber(ARGV[3])\n"
    "local n = #ARGV\n"
    "local C = 500\n"
    "local need, seen, nn = {}, {}, 0\n"
    "local i = 4\n"
    "while i <= n do\n"
    "  local f, of = ARGV[i + 2], ARGV[i + 3]\n"
    "  if not seen[f] then seen[f] = true; nn = nn + 1; need[nn] = f end\n"
    "  if of ~= '' and not seen[of] then seen[of] = true; nn = nn + 1; need[nn] = of end\n"
    "  i = i + 8 + tonumber(ARGV[i + 7])\n"
    "end\n"
    "local cur = {}\n"
    "for c = 1, nn, C do\n"
    "  local e = math.min(c + C - 1, nn)\n"
    "  local got = redis.call('HMGET', meta, unpack(need, c, e))\n"
    "  for j = c, e do\n"
    "    local m = got[j - c + 1]\n"
    "    cur[need[j]] = m and string.match(m, '^[^|]+') or false\n"
    "  end\n"
    "end\n"
    "local out, r = {}, 0\n"
    "local stamps, sorder, ns = {}, {}, 0\n"
    "local final, forder, nf = {}, {}, 0\n"
    "local bmin, border, nb = {}, {}, 0\n"
    "local function touch(f, at, v, del, et, b)\n"
    "  if final[f] == nil then nf = nf + 1; forder[nf] = f end\n"
    "  final[f] = at\n"
    "  if stamps[f] == nil then ns = ns + 1; sorder[ns] = f end\n"
    "  stamps[f] = v .. del .. et .. '|' .. b\n"
    "  cur[f] = v\n"
    "end\n"
    "i = 4\n"
    "while i <= n do\n"
    "  local op, v, f, of, et, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]\n"
    "  if ARGV[i + 6] == 'B' then\n"
    "    local t, m = tonumber(et), bmin[b]\n"
    "    if not m then nb = nb + 1; border[nb] = b; bmin[b] = {t, et}\n"
    "    elseif t < m[1] then m[1] = t; m[2] = et end\n"
    "  end\n"
    "  local code = 0\n"
    "  if of ~= '' and of ~= f then\n"
    "    local ov = cur[of]\n"
    "    if not ov or ov < v then touch(of, 0, v, '|1|', et, b); code = 4 end\n"
    "  end\n"
    "  local c = cur[f]\n"
    "  if c and c > v then\n"
    "  elseif c and c == v then code = code + 3\n"
    "  elseif op == 'D' then touch(f, 0, v, '|1|', et, b); code = code + 2\n"
    "  else touch(f, i, v, '|0|', et, b); code = code + 1 end\n"
    "  r = r + 1\n"
    "  out[r] = code\n"
    "  i = i + 8 + tonumber(ARGV[i + 7])\n"
    "end\n"
    "local bset, nbs = {}, 0\n"
    "for c = 1, nb, C do\n"
    "  local e = math.min(c + C - 1, nb)\n"
    "  local got = redis.call('HMGET', bulk, unpack(border, c, e))\n"
    "  for j = c, e do\n"
    "    local s, m = got[j - c + 1], bmin[border[j]]\n"
    "    if not s or m[1] < tonumber(s) then nbs = nbs + 1; bset[nbs] = border[j]; nbs = nbs + 1; bset[nbs] = m[2] end\n"
    "  end\n"
    "end\n"
    "local dels, nd = {}, 0\n"
    "for k = 1, nf do\n"
    "  local f = forder[k]\n"
    "  if final[f] == 0 or hash then nd = nd + 1; dels[nd] = pfx .. f end\n"
    "end\n"
    "for c = 1, nd, C do redis.call('DEL', unpack(dels, c, math.min(c + C - 1, nd))) end\n"
    "local sets, nss = {}, 0\n"
    "for k = 1, nf do\n"
    "  local f = forder[k]\n"
    "  local at = final[f]\n"
    "  if at ~= 0 then\n"
    "    if hash then\n"
    "      local nv = tonumber(ARGV[at + 7])\n"
    "      if nv > 0 then redis.call('HSET', pfx .. f, unpack(ARGV, at + 8, at + 7 + nv)) end\n"
    "      if ttl > 0 then redis.call('PEXPIRE', pfx .. f, ARGV[3]) end\n"
    "    elseif ttl > 0 then\n"
    "      redis.call('SET', pfx .. f, ARGV[at + 8], 'PX', ARGV[3])\n"
    "    else\n"
    "      nss = nss + 1; sets[nss] = pfx .. f; nss = nss + 1; sets[nss] = ARGV[at + 8]\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for c = 1, nss, C do redis.call('MSET', unpack(sets, c, math.min(c + C - 1, nss))) end\n"
    "local hs, nh = {}, 0\n"
    "for k = 1, ns do local f = sorder[k]; nh = nh + 1; hs[nh] = f; nh = nh + 1; hs[nh] = stamps[f] end\n"
    "for c = 1, nh, C do redis.call('HSET', meta, unpack(hs, c, math.min(c + C - 1, nh))) end\n"
    "for c = 1, nbs, C do redis.call('HSET', bulk, unpack(bset, c, math.min(c + C - 1, nbs))) end\n"
    "return table.concat(out)\n";

/* A 64-bit version as 20 decimal digits of (version with its sign bit
 * flipped): string order is numeric order, negatives included, so the Lua
 * script compares versions exactly with < and ==. */
static void version_key(int64_t version, char out[20])
{
    uint64_t u = (uint64_t)version ^ ((uint64_t)1 << 63);

    for (int i = 19; i >= 0; i--) {
        out[i] = (char)('0' + u % 10);
        u /= 10;
    }
}

/* Records per EVALSHA: bounds how long one script holds the server. */
#define WRITE_CHUNK 500

/* A schema seen by this feeder: its JSON plan, and the record just decoded
 * (the decoder's value, reused from record to record). */
typedef struct schema_slot {
    const core_avro_schema_t *schema;
    avro_value_t *value;
    feeder_jplan *plan;
    bool plan_tried;   /* plan built (or found unusable) */
    bool plan_checked; /* first output compared with the cJSON path */
} schema_slot;

struct feeder {
    core_redis_t *r;
    core_redis_script_t *write;
    core_avro_decoder_t *dec; /* made on the first record (it needs the catalogue) */
    schema_slot *slots;
    size_t nslots;
    feeder_buf args;  /* one record's script arguments (RESP) */
    feeder_buf val;   /* one value's text */
    feeder_buf cmd;   /* one EVALSHA's arguments (RESP) */
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
    free(rec->buf);
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
    if (!f->write) {
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
    for (size_t i = 0; i < f->nslots; i++)
        feeder_jplan_free(f->slots[i].plan);
    free(f->slots);
    core_avro_decoder_free(f->dec);
    feeder_buf_free(&f->args);
    feeder_buf_free(&f->val);
    feeder_buf_free(&f->cmd);
    free(f);
}

core_redis_t *feeder_redis(feeder_t *f)
{
    return f->r;
}

/* ---- building the command ------------------------------------------------ */

/* One RESP bulk string: "$<len>\r\n<bytes>\r\n". */
static int put_bulk(feeder_buf *b, const void *s, size_t len)
{
    char head[32];
    size_t n = 1;

    head[0] = '$';
    n += feeder_u64_text(len, head + 1);
    head[n++] = '\r';
    head[n++] = '\n';
    if (b->cap - b->len < n + len + 2 && feeder_buf_grow(b, n + len + 2) != CORE_OK)
        return CORE_ERR_NOMEM;
    memcpy(b->p + b->len, head, n);
    if (len)
        memcpy(b->p + b->len + n, s, len);
    memcpy(b->p + b->len + n + len, "\r\n", 2);
    b->len += n + len + 2;
    return CORE_OK;
}

static int put_bulk_str(feeder_buf *b, const char *s)
{
    return put_bulk(b, s, strlen(s));
}

static int put_bulk_i64(feeder_buf *b, int64_t v)
{
    char num[24];

    return put_bulk(b, num, feeder_i64_text(v, num));
}

static schema_slot *slot_for(feeder_t *f, const core_avro_schema_t *schema)
{
    schema_slot *s;

    for (size_t i = 0; i < f->nslots; i++)
        if (f->slots[i].schema == schema)
            return &f->slots[i];
    s = realloc(f->slots, (f->nslots + 1) * sizeof(*s));
    if (!s)
        return NULL;
    f->slots = s;
    s = &f->slots[f->nslots++];
    memset(s, 0, sizeof(*s));
    s->schema = schema;
    return s;
}

/* Decode with the feeder's reusable decoder (core_avro_decoder: the
 * checks and messages of core_avro_decode, no new value per record); the
 * slot of the record's schema points at the value until the next record. */
static int decode(feeder_t *f, const core_avro_catalog_t *cat, const void *buf, size_t len,
                  schema_slot **slotp, char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *schema;
    avro_value_t *v;
    schema_slot *s;
    int rc;

    if (!f->dec && !(f->dec = core_avro_decoder_new(cat, errstr, errstr_size)))
        return CORE_ERR_NOMEM;
    if ((rc = core_avro_decoder_decode(f->dec, buf, len, &schema, &v, errstr, errstr_size)) !=
        CORE_OK)
        return rc;
    if (!(s = slot_for(f, schema))) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    s->value = v;
    *slotp = s;
    return CORE_OK;
}

/* The cJSON path (the reference): the whole document, or one hash field per
 * top-level field (strings as they are, other values as JSON text, null
 * fields left out), appended to args as value arguments. */
static int values_cjson(feeder_t *f, const feeder_dataset *ds, const core_avro_schema_t *schema,
                        avro_value_t *v, int *nv, size_t *vlen, char *errstr, size_t errstr_size)
{
    cJSON *doc = core_avro_to_json(schema, v, errstr, errstr_size);
    const cJSON *it;
    char *txt;
    int rc = CORE_OK;

    if (!doc)
        return CORE_ERR_INVALID;
    if (ds->format != FEEDER_FMT_HASH) {
        if (!(txt = cJSON_PrintUnformatted(doc))) {
            rc = CORE_ERR_NOMEM;
        } else {
            *vlen += strlen(txt);
            rc = put_bulk_str(&f->args, txt);
            (*nv)++;
            free(txt);
        }
        cJSON_Delete(doc);
        return rc;
    }
    cJSON_ArrayForEach(it, doc) {
        if (cJSON_IsNull(it))
            continue;
        if ((rc = put_bulk_str(&f->args, it->string)))
            break;
        if (cJSON_IsString(it)) {
            rc = put_bulk_str(&f->args, it->valuestring);
            *vlen += strlen(it->valuestring);
        } else if (!(txt = cJSON_PrintUnformatted(it))) {
            rc = CORE_ERR_NOMEM;
        } else {
            rc = put_bulk_str(&f->args, txt);
            *vlen += strlen(txt);
            free(txt);
        }
        if (rc)
            break;
        *nv += 2;
    }
    cJSON_Delete(doc);
    return rc;
}

/* The same through the plan. CORE_ERR_INVALID: take the cJSON path. */
static int values_plan(feeder_t *f, const feeder_dataset *ds, const feeder_jplan *plan,
                       avro_value_t *v, int *nv, size_t *vlen)
{
    int rc;

    if (ds->format != FEEDER_FMT_HASH) {
        f->val.len = 0;
        if ((rc = feeder_json_write(plan, v, &f->val)))
            return rc;
        *vlen += f->val.len;
        (*nv)++;
        return put_bulk(&f->args, f->val.p, f->val.len);
    }
    for (size_t i = 0; i < feeder_jplan_nfields(plan); i++) {
        size_t nl;
        const char *name = feeder_jplan_field_name(plan, i, &nl);
        bool skip = false;

        f->val.len = 0;
        if ((rc = feeder_json_field(plan, i, v, &f->val, &skip)))
            return rc;
        if (skip)
            continue;
        if ((rc = put_bulk(&f->args, name, nl)) || (rc = put_bulk(&f->args, f->val.p, f->val.len)))
            return rc;
        *vlen += f->val.len;
        *nv += 2;
    }
    return CORE_OK;
}

/* The value arguments of a record: through the schema's plan when it has a
 * usable one (checked against the cJSON path on its first record), else
 * through cJSON. */
static int put_values(feeder_t *f, const feeder_dataset *ds, schema_slot *s, int *nv,
                      size_t *vlen, char *errstr, size_t errstr_size)
{
    size_t mark = f->args.len;
    int rc;

    if (!s->plan_tried) {
        s->plan_tried = true;
        s->plan = feeder_jplan_new(s->schema);
    }
    if (s->plan && !s->plan_checked) {
        /* first record of the schema: both paths must agree to the byte */
        int pnv = 0, cnv = 0;
        size_t plen = 0, clen = 0, pend;

        rc = values_plan(f, ds, s->plan, s->value, &pnv, &plen);
        pend = f->args.len;
        if (rc == CORE_ERR_NOMEM)
            return rc;
        if (rc == CORE_OK)
            rc = values_cjson(f, ds, s->schema, s->value, &cnv, &clen, errstr, errstr_size);
        if (rc == CORE_OK && (pnv != cnv || pend - mark != f->args.len - pend ||
                              memcmp(f->args.p + mark, f->args.p + pend, pend - mark) != 0)) {
            core_log_warn("cache document writer differs from cJSON: using cJSON for this schema",
                          CLF_S("schema", core_avro_schema_name(s->schema)));
            feeder_jplan_free(s->plan);
            s->plan = NULL;
        }
        if (rc == CORE_OK) {
            s->plan_checked = true;
            f->args.len = pend; /* keep the plan's copy: the same bytes */
            *nv += pnv;
            *vlen += plen;
            return CORE_OK;
        }
        f->args.len = mark;
        if (rc != CORE_ERR_INVALID)
            return rc;
    } else if (s->plan) {
        rc = values_plan(f, ds, s->plan, s->value, nv, vlen);
        if (rc != CORE_ERR_INVALID)
            return rc;
        f->args.len = mark; /* the cJSON path names what is wrong */
        *nv = 0;
        *vlen = 0;
    }
    return values_cjson(f, ds, s->schema, s->value, nv, vlen, errstr, errstr_size);
}

int feeder_prepare(feeder_t *f, feeder_dataset *ds, const core_avro_catalog_t *cat,
                   const void *value, size_t len, feeder_record *rec, char *errstr,
                   size_t errstr_size)
{
    const core_avro_schema_t *schema;
    schema_slot *slot = NULL;
    core_avro_meta meta;
    const char *key = NULL, *old_key;
    size_t keylen = 0, idl, bl, okl, nvpos, vlen = 0;
    char ver[20], nvtxt[24];
    int rc, nv = 0;
    char *p;

    memset(rec, 0, sizeof(*rec));
    rec->result = FEEDER_RES_PENDING;
    if ((rc = decode(f, cat, value, len, &slot, errstr, errstr_size)) != CORE_OK)
        return rc;
    schema = slot->schema;
    if (schema != ds->schema && (!core_avro_schema_dataset(schema) ||
                                 strcmp(core_avro_schema_dataset(schema), ds->name) != 0)) {
        core_errstr(errstr, errstr_size, "record of schema %s (id %" PRIu32 ") on the topic of dataset %s",
                    core_avro_schema_name(schema), core_avro_schema_id(schema), ds->name);
        return CORE_ERR_INVALID;
    }
    if ((rc = core_avro_get_meta(schema, slot->value, &meta, errstr, errstr_size)) ||
        (rc = core_avro_get_key(schema, slot->value, &key, &keylen, errstr, errstr_size)))
        return rc;
    if (keylen == 0) {
        core_errstr(errstr, errstr_size, "%s: empty business key", core_avro_schema_key_field(schema));
        return CORE_ERR_INVALID;
    }
    if (meta.op == CORE_AVRO_OP_UPDATE && meta.old_key && meta.old_key[0] == '\0') {
        core_errstr(errstr, errstr_size, "meta.old_key: empty");
        return CORE_ERR_INVALID;
    }
    old_key = meta.op == CORE_AVRO_OP_UPDATE ? meta.old_key : NULL;

    /* op, version, field, old field, event_time, batch, kind, nv, values */
    f->args.len = 0;
    version_key(meta.version, ver);
    if ((rc = put_bulk(&f->args, meta.op == CORE_AVRO_OP_DELETE ? "D" : meta.op == CORE_AVRO_OP_UPDATE ? "U" : "A", 1)) ||
        (rc = put_bulk(&f->args, ver, sizeof(ver))) || (rc = put_bulk(&f->args, key, keylen)) ||
        (rc = put_bulk_str(&f->args, old_key ? old_key : "")) ||
        (rc = put_bulk_i64(&f->args, meta.event_time)) || (rc = put_bulk_str(&f->args, meta.batch_id)) ||
        (rc = put_bulk(&f->args, meta.kind == CORE_AVRO_KIND_BULK ? "B" : "C", 1)))
        goto fail;
    nvpos = f->args.len; /* nv goes here once the values are known */
    if (meta.op != CORE_AVRO_OP_DELETE) {
        if (ds->format == FEEDER_FMT_AVRO) {
            rc = put_bulk(&f->args, value, len);
            nv = 1;
            vlen = len;
        } else {
            rc = put_values(f, ds, slot, &nv, &vlen, errstr, errstr_size);
        }
        if (rc)
            goto fail;
    }

    /* one allocation: the arguments, then id, key, old key and batch */
    idl = strlen(meta.id);
    bl = strlen(meta.batch_id);
    okl = old_key ? strlen(old_key) : 0;
    {
        char head[32];
        size_t nvl = feeder_u64_text((uint64_t)nv, nvtxt), hl = 1;

        head[0] = '$';
        hl += feeder_u64_text(nvl, head + 1);
        memcpy(head + hl, "\r\n", 2);
        hl += 2;
        memcpy(head + hl, nvtxt, nvl);
        hl += nvl;
        memcpy(head + hl, "\r\n", 2);
        hl += 2;
        rec->resp_len = f->args.len + hl;
        rec->buf = malloc(rec->resp_len + idl + keylen + okl + bl + 4);
        if (!rec->buf) {
            rc = CORE_ERR_NOMEM;
            goto fail;
        }
        memcpy(rec->buf, f->args.p, nvpos);
        memcpy(rec->buf + nvpos, head, hl);
        memcpy(rec->buf + nvpos + hl, f->args.p + nvpos, f->args.len - nvpos);
    }
    p = rec->buf + rec->resp_len;
    rec->id = memcpy(p, meta.id, idl + 1);
    p += idl + 1;
    memcpy(p, key, keylen);
    p[keylen] = '\0';
    rec->key = p;
    p += keylen + 1;
    memcpy(p, meta.batch_id, bl + 1);
    rec->batch_id = p;
    p += bl + 1;
    if (old_key)
        rec->old_key = memcpy(p, old_key, okl + 1);
    rec->nargs = 8 + nv;
    rec->value_len = vlen;
    rec->ds = ds;
    rec->op = meta.op;
    rec->kind = meta.kind;
    rec->version = meta.version;
    rec->event_time = meta.event_time;
    core_digest_record(value, len, &rec->digest);
    return CORE_OK;
fail:
    if (rc == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "out of memory");
    feeder_record_clear(rec);
    return rc;
}

/* ---- running a batch ----------------------------------------------------- */

static void set_error(feeder_record *recs, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(feeder_record *recs, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(recs[0].error, sizeof(recs[0].error), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < n; i++) {
        recs[i].result = FEEDER_RES_ERROR;
        if (i)
            memcpy(recs[i].error, recs[0].error, sizeof(recs[i].error));
    }
}

/* One reply of the write script for the n records it carried. */
static void set_results(feeder_record *recs, size_t n, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        set_error(recs, n, "redis: %.*s", (int)rep->len, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_STRING || rep->len != n) {
        set_error(recs, n, "redis: unexpected reply (type %d, %zu bytes) to the write script of %zu records",
                  rep->type, rep->type == REDIS_REPLY_STRING ? rep->len : 0, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int c = rep->str[i] - '0';
        feeder_record *rec = &recs[i];

        if (c < 0 || c > 7) {
            set_error(rec, 1, "redis: unexpected code '%c' from the write script", rep->str[i]);
            continue;
        }
        rec->moved = (c & 4) != 0;
        switch (c & 3) {
        case 1: rec->result = FEEDER_RES_CACHED; break;
        case 2: rec->result = FEEDER_RES_DELETED; break;
        case 3: rec->result = FEEDER_RES_STALE; rec->duplicate = true; break;
        default: rec->result = FEEDER_RES_STALE; break;
        }
    }
}

/* Records [i, end of the run): consecutive records of one dataset, at most
 * chunk of them; with only_pending, records already answered are skipped
 * (runs never span them). */
static size_t run_end(const feeder_record *recs, size_t n, size_t i, size_t chunk)
{
    size_t j = i + 1;

    while (j < n && j - i < chunk && recs[j].ds == recs[i].ds &&
           recs[j].result == recs[i].result)
        j++;
    return j;
}

/* Append the pending records of recs[0..n) to the pipeline as write
 * scripts of up to chunk records each (*nscripts of them). */
static int append_scripts(feeder_t *f, const feeder_record *recs, size_t n, size_t chunk,
                          size_t *nscripts, char *errstr, size_t errstr_size)
{
    size_t ns = 0;
    int rc = CORE_OK;

    for (size_t i = 0, j; i < n; i = j) {
        j = run_end(recs, n, i, chunk);
        if (recs[i].result != FEEDER_RES_PENDING)
            continue;
        const feeder_dataset *ds = recs[i].ds;
        char ttl[24];
        int nargs = 6;

        f->cmd.len = 0;
        if ((rc = put_bulk(&f->cmd, "2", 1)) || (rc = put_bulk_str(&f->cmd, ds->meta_key)) ||
            (rc = put_bulk_str(&f->cmd, ds->bulk_key)) || (rc = put_bulk_str(&f->cmd, ds->key_prefix)) ||
            (rc = put_bulk(&f->cmd, ds->format == FEEDER_FMT_HASH ? "h" : "s", 1)) ||
            (rc = put_bulk(&f->cmd, ttl, feeder_i64_text(ds->ttl_ms, ttl))))
            break;
        for (size_t k = i; k < j && rc == CORE_OK; k++) {
            rc = feeder_buf_put(&f->cmd, recs[k].buf, recs[k].resp_len);
            nargs += recs[k].nargs;
        }
        if (rc == CORE_OK)
            rc = core_redis_evalsha_append_resp(f->r, f->write, nargs, f->cmd.p, f->cmd.len);
        if (rc != CORE_OK)
            break;
        ns++;
    }
    *nscripts = ns;
    if (rc != CORE_OK) {
        core_redis_disconnect(f->r); /* drops what was appended */
        core_errstr(errstr, errstr_size, "cannot append to the pipeline: %s",
                    core_err2str((core_err_t)rc));
        return rc;
    }
    if (f->cmd.cap > ((size_t)4 << 20)) { /* do not keep a huge batch's buffer */
        feeder_buf_free(&f->cmd);
    }
    return CORE_OK;
}

/* The replies to the scripts append_scripts() made of recs[0..n): set the
 * results. A script Redis refuses as a whole (an error reply) leaves its
 * records PENDING when it carried more than one: the caller runs them again
 * one by one, so one bad key never takes its neighbours down with it.
 * Takes the replies. */
static int take_replies(feeder_t *f, feeder_record *recs, size_t n, size_t chunk,
                        redisReply **replies, size_t nrep, size_t nscripts, char *errstr,
                        size_t errstr_size)
{
    if (nrep != nscripts) {
        core_redis_replies_free(replies, nrep);
        core_errstr(errstr, errstr_size, "redis: %zu replies to %zu commands", nrep, nscripts);
        core_redis_disconnect(f->r);
        return CORE_ERR_TRANSIENT;
    }
    /* NOPERM is the user's ACL, not the record: every record would fail the
     * same way. Redis trouble (the batch waits, readiness says why), never
     * the dead-letter topic. */
    for (size_t k = 0; k < nrep; k++) {
        const redisReply *rep = replies[k];

        if (rep->type == REDIS_REPLY_ERROR && rep->len >= 6 && strncmp(rep->str, "NOPERM", 6) == 0) {
            core_errstr(errstr, errstr_size,
                        "redis refused the write script: %.*s (check the ACL of redis.user: its "
                        "commands and the key pattern of cache.prefix)",
                        (int)(rep->len > 200 ? 200 : rep->len), rep->str);
            core_redis_replies_free(replies, nrep);
            return CORE_ERR_TRANSIENT;
        }
    }
    for (size_t i = 0, j, k = 0; i < n; i = j) {
        j = run_end(recs, n, i, chunk);
        if (recs[i].result != FEEDER_RES_PENDING)
            continue;
        const redisReply *rep = replies[k++];
        if (rep->type == REDIS_REPLY_ERROR && j - i > 1)
            continue; /* isolate: again, one record per script */
        set_results(&recs[i], j - i, rep);
    }
    core_redis_replies_free(replies, nrep);
    return CORE_OK;
}

/* Run the pending records of recs[0..n) in one pipeline, now (after the
 * replies of any batch in flight, which core_redis reads and keeps). */
static int run_scripts(feeder_t *f, feeder_record *recs, size_t n, size_t chunk, char *errstr,
                       size_t errstr_size)
{
    redisReply **replies = NULL;
    size_t nrep = 0, nscripts = 0;
    int rc = append_scripts(f, recs, n, chunk, &nscripts, errstr, errstr_size);

    if (rc != CORE_OK || nscripts == 0)
        return rc;
    rc = core_redis_pipeline_exec(f->r, &replies, &nrep, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    return take_replies(f, recs, n, chunk, replies, nrep, nscripts, errstr, errstr_size);
}

static void reset_results(feeder_record *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        recs[i].result = FEEDER_RES_PENDING;
        recs[i].duplicate = recs[i].moved = false;
        recs[i].error[0] = '\0';
    }
}

/* Records a refused script left PENDING: again, one record per script. */
static int run_isolated(feeder_t *f, feeder_record *recs, size_t n, char *errstr,
                        size_t errstr_size)
{
    for (size_t i = 0; i < n; i++)
        if (recs[i].result == FEEDER_RES_PENDING)
            return run_scripts(f, recs, n, 1, errstr, errstr_size);
    return CORE_OK;
}

int feeder_exec(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size)
{
    int rc;

    reset_results(recs, n);
    rc = run_scripts(f, recs, n, WRITE_CHUNK, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    return run_isolated(f, recs, n, errstr, errstr_size);
}

int feeder_send(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size)
{
    size_t nscripts = 0;
    int rc;

    reset_results(recs, n);
    rc = append_scripts(f, recs, n, WRITE_CHUNK, &nscripts, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    if (nscripts == 0) /* cannot happen for n > 0; keep send and recv paired */
        return n ? CORE_ERR_INVALID : CORE_OK;
    return core_redis_pipeline_send(f->r, errstr, errstr_size);
}

int feeder_recv(feeder_t *f, feeder_record *recs, size_t n, char *errstr, size_t errstr_size)
{
    redisReply **replies = NULL;
    size_t nrep = 0, nscripts = 0;
    int rc;

    if (n == 0)
        return CORE_OK;
    for (size_t i = 0, j; i < n; i = j, nscripts++)
        j = run_end(recs, n, i, WRITE_CHUNK);
    rc = core_redis_pipeline_recv(f->r, &replies, &nrep, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    rc = take_replies(f, recs, n, WRITE_CHUNK, replies, nrep, nscripts, errstr, errstr_size);
    if (rc != CORE_OK)
        return rc;
    return run_isolated(f, recs, n, errstr, errstr_size);
}
