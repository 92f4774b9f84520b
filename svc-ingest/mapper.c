/* mapper.c — CSV rows and JSON Lines objects to encoded dataset records
 * (see mapper.h for the rules). */
#include "mapper_int.h"

#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_json.h"

#include <avro.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <strings.h>

/* ---- ids --------------------------------------------------------------- */

void ingest_make_id(const char *batch_id, uint64_t line, char out[37])
{
    static const char prefix[] = "tributary.ingest";
    uint8_t in[sizeof(prefix) + INGEST_MAX_BATCH_ID + 1 + 24];
    size_t blen = strnlen(batch_id, INGEST_MAX_BATCH_ID), len;
    core_digest d;
    uint8_t *b = d.b;

    /* prefix NUL batch_id NUL line (batch ids are at most INGEST_MAX_BATCH_ID bytes) */
    memcpy(in, prefix, sizeof(prefix));
    memcpy(in + sizeof(prefix), batch_id, blen);
    in[sizeof(prefix) + blen] = '\0';
    len = sizeof(prefix) + blen + 1;
    len += (size_t)snprintf((char *)in + len, sizeof(in) - len, "%llu", (unsigned long long)line);
    core_digest_sha256(in, len, &d);
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x80); /* version 8 */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* variant 10 */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* ---- plan -------------------------------------------------------------- */

static enum leaf_kind prim_kind(const char *t)
{
    static const struct { const char *n; enum leaf_kind k; } map[] = {
        { "string", L_STRING }, { "bytes", L_BYTES }, { "int", L_INT }, { "long", L_LONG },
        { "float", L_FLOAT }, { "double", L_DOUBLE }, { "boolean", L_BOOL }, { "null", L_NULL },
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(map); i++)
        if (strcmp(map[i].n, t) == 0)
            return map[i].k;
    return L_UNSUPPORTED;
}

static int add_leaf(ingest_mapper *m, struct leaf *l)
{
    if (m->nleaves == m->leaves_cap) {
        size_t cap = m->leaves_cap ? m->leaves_cap * 2 : 16;
        struct leaf *p = realloc(m->leaves, cap * sizeof(*p));
        if (!p)
            return -1;
        m->leaves = p;
        m->leaves_cap = cap;
    }
    m->leaves[m->nleaves++] = *l;
    return 0;
}

static char *default_text(const cJSON *d)
{
    char buf[64];

    if (cJSON_IsString(d))
        return strdup(d->valuestring);
    if (cJSON_IsBool(d))
        return strdup(cJSON_IsTrue(d) ? "true" : "false");
    if (cJSON_IsNumber(d)) {
        /* integers as digits up to 2^53 (the schema compiler refuses a
         * long default beyond: cJSON would have rounded it) */
        if (d->valuedouble == floor(d->valuedouble) && fabs(d->valuedouble) < 9007199254740992.0)
            snprintf(buf, sizeof(buf), "%.0f", d->valuedouble);
        else
            snprintf(buf, sizeof(buf), "%.17g", d->valuedouble);
        return strdup(buf);
    }
    return NULL;
}

/* Describe one type into l (kind, logical type); unions of null and one
 * type become nullable. Records recurse through plan_record(). */
static int plan_record(ingest_mapper *m, const cJSON *rec, const char *prefix, size_t *path,
                       size_t depth, bool top, char *errstr, size_t errstr_size);

static int plan_type(ingest_mapper *m, struct leaf *l, const cJSON *t, char *errstr,
                     size_t errstr_size)
{
    if (cJSON_IsString(t)) {
        l->kind = prim_kind(t->valuestring);
        l->type_name = t->valuestring;
        return 0;
    }
    if (cJSON_IsArray(t)) {
        int n = cJSON_GetArraySize(t), nulls = -1, other = -1;
        for (int i = 0; i < n; i++) {
            const cJSON *b = cJSON_GetArrayItem(t, i);
            if (cJSON_IsString(b) && strcmp(b->valuestring, "null") == 0)
                nulls = i;
            else
                other = i;
        }
        if (n != 2 || nulls < 0) {
            l->kind = L_UNSUPPORTED;
            l->type_name = "union";
            return 0;
        }
        l->nullable = true;
        l->null_branch = nulls;
        l->val_branch = other;
        if (plan_type(m, l, cJSON_GetArrayItem(t, other), errstr, errstr_size))
            return -1;
        if (l->kind == L_UNSUPPORTED)
            return 0;
        return 0;
    }
    if (cJSON_IsObject(t)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(t, "logicalType");
        const char *tys = cJSON_IsString(ty) ? ty->valuestring : "";
        const char *lts = cJSON_IsString(lt) ? lt->valuestring : "";

        l->type_name = tys;
        if (strcmp(tys, "enum") == 0) {
            l->kind = L_ENUM;
            l->symbols = cJSON_GetObjectItemCaseSensitive(t, "symbols");
            l->type_name = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(t, "name"))
                               ? cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring
                               : "enum";
        } else if (strcmp(lts, "decimal") == 0 &&
                   (strcmp(tys, "bytes") == 0 || strcmp(tys, "fixed") == 0)) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "precision");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "scale");
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(t, "size");
            l->kind = L_DECIMAL;
            l->precision = cJSON_IsNumber(p) ? p->valueint : 38;
            l->scale = cJSON_IsNumber(s) ? s->valueint : 0;
            l->fixed_size = strcmp(tys, "fixed") == 0 && cJSON_IsNumber(sz) ? (size_t)sz->valueint : 0;
            l->type_name = "decimal";
        } else if (strcmp(lts, "timestamp-millis") == 0 && strcmp(tys, "long") == 0) {
            l->kind = L_TS_MS;
            l->type_name = "timestamp-millis";
        } else if (strcmp(lts, "timestamp-micros") == 0 && strcmp(tys, "long") == 0) {
            l->kind = L_TS_US;
            l->type_name = "timestamp-micros";
        } else if (strcmp(lts, "date") == 0 && strcmp(tys, "int") == 0) {
            l->kind = L_DATE;
            l->type_name = "date";
        } else if (strcmp(tys, "record") == 0) {
            l->kind = L_UNSUPPORTED; /* handled by the caller */
            l->type_name = "record";
        } else {
            l->kind = prim_kind(tys);
        }
        return 0;
    }
    core_errstr(errstr, errstr_size, "field %s: unreadable type in the schema", l->name);
    return -1;
}

static int plan_record(ingest_mapper *m, const cJSON *rec, const char *prefix, size_t *path,
                       size_t depth, bool top, char *errstr, size_t errstr_size)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(rec, "fields");
    size_t idx = 0;
    const cJSON *f;

    if (depth >= MAX_DEPTH) {
        core_errstr(errstr, errstr_size, "%s: records nested too deep for CSV", prefix);
        return -1;
    }
    cJSON_ArrayForEach(f, fields) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(f, "default");
        struct leaf l;
        char full[256];

        path[depth] = idx++;
        if (!cJSON_IsString(name))
            continue;
        if (top && strcmp(name->valuestring, "meta") == 0)
            continue;
        snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", name->valuestring);
        if (cJSON_IsObject(type) &&
            cJSON_IsString(cJSON_GetObjectItemCaseSensitive(type, "type")) &&
            strcmp(cJSON_GetObjectItemCaseSensitive(type, "type")->valuestring, "record") == 0) {
            if (plan_record(m, type, full, path, depth + 1, false, errstr, errstr_size))
                return -1;
            continue;
        }
        memset(&l, 0, sizeof(l));
        l.col = -1;
        l.null_branch = l.val_branch = -1;
        memcpy(l.path, path, (depth + 1) * sizeof(size_t));
        l.depth = depth + 1;
        l.name = strdup(full);
        if (!l.name) {
            core_errstr(errstr, errstr_size, "out of memory");
            return -1;
        }
        if (plan_type(m, &l, type, errstr, errstr_size)) {
            free(l.name);
            return -1;
        }
        if (def) {
            l.has_default = true;
            l.default_null = cJSON_IsNull(def);
            if (!l.default_null) {
                l.default_text = default_text(def);
                if (!l.default_text && l.kind != L_UNSUPPORTED)
                    l.has_default = false;
            }
        }
        if (add_leaf(m, &l)) {
            free(l.name);
            free(l.default_text);
            core_errstr(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

ingest_mapper *ingest_mapper_new(const ingest_map_opts *o, char *errstr, size_t errstr_size)
{
    ingest_mapper *m = calloc(1, sizeof(*m));
    size_t path[MAX_DEPTH];

    if (!m) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    m->o = *o;
    m->schema = o->schema;
    m->col_op = m->col_version = m->col_event_time = m->col_old_key = -1;
    m->buf_size = o->max_record ? o->max_record : 10240;
    m->buf = malloc(m->buf_size);
    m->key_cap = 256;
    m->key = malloc(m->key_cap);
    if (!m->buf || !m->key) {
        core_errstr(errstr, errstr_size, "out of memory");
        ingest_mapper_free(m);
        return NULL;
    }
    if (plan_record(m, core_avro_schema_json(o->schema), "", path, 0, true, errstr, errstr_size)) {
        ingest_mapper_free(m);
        return NULL;
    }
    if (o->fmt == INGEST_FMT_CSV) {
        if (core_avro_value_new(o->schema, &m->value) != CORE_OK) {
            core_errstr(errstr, errstr_size, "out of memory");
            ingest_mapper_free(m);
            return NULL;
        }
        m->have_value = true;
    }
    return m;
}

void ingest_mapper_free(ingest_mapper *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nleaves; i++) {
        free(m->leaves[i].name);
        free(m->leaves[i].default_text);
    }
    free(m->leaves);
    if (m->have_value)
        avro_value_decref(&m->value);
    if (m->have_jvalue)
        avro_value_decref(&m->jvalue);
    free(m->buf);
    free(m->key);
    free(m->old_key);
    free(m);
}

/* ---- header ------------------------------------------------------------ */

static bool col_is(const char *name, const char *want)
{
    return want && *want && strcmp(name, want) == 0;
}

int ingest_mapper_header(ingest_mapper *m, const ingest_row *hdr, char *errstr, size_t errstr_size)
{
    if (hdr->error) {
        core_errstr(errstr, errstr_size, "header (line %llu) column %zu: %s",
                    (unsigned long long)hdr->line, hdr->error_col, hdr->error);
        return -1;
    }
    for (size_t i = 0; i < m->nleaves; i++)
        m->leaves[i].col = -1;
    m->col_op = m->col_version = m->col_event_time = m->col_old_key = -1;
    m->ncols = hdr->nfields;
    for (size_t c = 0; c < hdr->nfields; c++) {
        const char *name = hdr->fields[c];
        struct leaf *hit = NULL;

        for (size_t i = 0; i < m->nleaves && !hit; i++)
            if (strcmp(m->leaves[i].name, name) == 0)
                hit = &m->leaves[i];
        for (size_t i = 0; i < m->nleaves && !hit; i++)
            if (strcasecmp(m->leaves[i].name, name) == 0)
                hit = &m->leaves[i];
        if (hit) {
            if (hit->col >= 0) {
                core_errstr(errstr, errstr_size, "header: column '%s' appears twice (columns %ld and %zu)",
                            name, hit->col + 1, c + 1);
                return -1;
            }
            if (hit->kind == L_UNSUPPORTED) {
                core_errstr(errstr, errstr_size,
                            "header: column '%s' has a type (%s) CSV cannot carry; use JSON Lines",
                            name, hit->type_name ? hit->type_name : "?");
                return -1;
            }
            hit->col = (long)c;
            continue;
        }
        if (col_is(name, m->o.op_column) && m->col_op < 0)
            m->col_op = (long)c;
        else if (col_is(name, m->o.version_column) && m->col_version < 0)
            m->col_version = (long)c;
        else if (col_is(name, m->o.event_time_column) && m->col_event_time < 0)
            m->col_event_time = (long)c;
        else if (col_is(name, m->o.old_key_column) && m->col_old_key < 0)
            m->col_old_key = (long)c;
        else if (m->o.refuse_extra) {
            core_errstr(errstr, errstr_size,
                        "header: column '%s' (column %zu) is not a field of %s "
                        "(csv.extra.columns=refuse)", name, c + 1,
                        core_avro_schema_dataset(m->schema));
            return -1;
        }
    }
    for (size_t i = 0; i < m->nleaves; i++) {
        struct leaf *l = &m->leaves[i];
        if (l->col < 0 && !l->has_default && !l->nullable && l->kind != L_UNSUPPORTED) {
            core_errstr(errstr, errstr_size, "header: required column '%s' is missing", l->name);
            return -1;
        }
        if (l->col < 0 && l->kind == L_UNSUPPORTED && !l->has_default) {
            core_errstr(errstr, errstr_size,
                        "header: field '%s' (%s) has no default and CSV cannot carry it; "
                        "use JSON Lines", l->name, l->type_name ? l->type_name : "?");
            return -1;
        }
    }
    return 0;
}

/* ---- meta -------------------------------------------------------------- */

static int parse_op(const char *s, core_avro_op_t *op)
{
    if (strcasecmp(s, "ADD") == 0 || strcasecmp(s, "INSERT") == 0 || strcasecmp(s, "I") == 0 ||
        strcasecmp(s, "A") == 0)
        *op = CORE_AVRO_OP_ADD;
    else if (strcasecmp(s, "UPDATE") == 0 || strcasecmp(s, "U") == 0)
        *op = CORE_AVRO_OP_UPDATE;
    else if (strcasecmp(s, "DELETE") == 0 || strcasecmp(s, "D") == 0)
        *op = CORE_AVRO_OP_DELETE;
    else
        return -1;
    return 0;
}

/* Keep a copy of the row's old_key (NULL: none) for encode(). 0, or -1
 * when out of memory. */
static int keep_old_key(ingest_mapper *m, const char *old_key)
{
    size_t n = old_key ? strlen(old_key) + 1 : 0;

    if (!old_key) {
        if (m->old_key)
            m->old_key[0] = '\0';
        return 0;
    }
    if (n > m->old_key_cap) {
        char *p = realloc(m->old_key, n);
        if (!p)
            return -1;
        m->old_key = p;
        m->old_key_cap = n;
    }
    memcpy(m->old_key, old_key, n);
    return 0;
}

struct meta_in {
    const char *op, *version, *event_time, *old_key; /* NULL when absent */
};

static int fill_meta(ingest_mapper *m, avro_value_t *v, const struct meta_in *mi,
                     const ingest_row *row, const char *batch_id, const char *source,
                     ingest_record *rec, ingest_line_error *e)
{
    core_avro_meta meta;
    char err[256], tmp[64];
    int64_t et = m->o.event_time;
    bool has_op = mi->op != NULL;

    memset(&meta, 0, sizeof(meta));
    ingest_make_id(batch_id, row->line, rec->id);
    meta.id = rec->id;
    meta.op = m->o.op;
    if (has_op && parse_op(mi->op, &meta.op)) {
        cell_err(e, m->o.op_column, "type", "not an operation (ADD, UPDATE or DELETE)");
        cell_val(e, "meta.op", mi->op, strlen(mi->op));
        return 1;
    }
    if (m->o.kind >= 0)
        meta.kind = (core_avro_kind_t)m->o.kind;
    else
        meta.kind = has_op || m->col_op >= 0 ? CORE_AVRO_KIND_CHANGE : CORE_AVRO_KIND_BULK;
    meta.source = source;
    meta.batch_id = batch_id;
    meta.seq = (int64_t)row->line;
    if (mi->event_time && cell_blank_edge(mi->event_time, strlen(mi->event_time))) {
        cell_err(e, m->o.event_time_column, "type", "a blank before or after the value");
        return 1;
    }
    if (mi->version && cell_blank_edge(mi->version, strlen(mi->version))) {
        cell_err(e, m->o.version_column, "type", "a blank before or after the value");
        return 1;
    }
    if (mi->event_time && *mi->event_time) {
        const char *t = cell_trimmed(mi->event_time, strlen(mi->event_time), tmp, sizeof(tmp));
        long long ll;
        if (t && cell_all_int(t)) {
            if (!cell_parse_ll(t, &ll)) {
                cell_err(e, m->o.event_time_column, "range", "timestamp out of range");
                cell_val(e, "meta.event_time", mi->event_time, strlen(mi->event_time));
                return 1;
            }
            et = ll;
        } else if (!t || core_avro_time_parse_exact(t, false, &et, err, sizeof(err)) != CORE_OK) {
            cell_err(e, m->o.event_time_column, "type", "%s", t ? err : "not a timestamp");
            cell_val(e, "meta.event_time", mi->event_time, strlen(mi->event_time));
            return 1;
        }
    }
    meta.event_time = et;
    if (mi->version && *mi->version) {
        const char *t = cell_trimmed(mi->version, strlen(mi->version), tmp, sizeof(tmp));
        long long ll;
        if (!t || !cell_all_int(t) || !cell_parse_ll(t, &ll)) {
            cell_err(e, m->o.version_column, t && cell_all_int(t) ? "range" : "type",
                     "version is not a long integer");
            cell_val(e, "meta.version", mi->version, strlen(mi->version));
            return 1;
        }
        meta.version = ll;
    } else {
        int64_t secs = et >= 0 ? et / 1000 : 0;
        meta.version = secs * ((int64_t)1 << 30) + (int64_t)(row->line & ((1u << 30) - 1));
    }
    meta.old_key = mi->old_key && *mi->old_key ? mi->old_key : NULL;
    if (keep_old_key(m, meta.op == CORE_AVRO_OP_UPDATE ? meta.old_key : NULL) != 0) {
        cell_err(e, "", "internal", "out of memory");
        return -1;
    }
    if (core_avro_set_meta(m->schema, v, &meta, err, sizeof(err)) != CORE_OK) {
        cell_err(e, "meta", "type", "%s", err);
        return 1;
    }
    rec->version = meta.version;
    rec->op = meta.op;
    rec->kind = meta.kind;
    return 0;
}

/* ---- rows -------------------------------------------------------------- */

static int encode(ingest_mapper *m, avro_value_t *v, ingest_record *rec, ingest_line_error *e)
{
    char err[256];
    size_t len = 0;
    const char *key;
    size_t klen;
    core_err_t rc;

    rc = core_avro_encode_into(m->schema, v, m->buf, m->buf_size, &len, err, sizeof(err));
    if (rc == CORE_ERR_TOOBIG) {
        cell_err(e, "", "too_big", "record is %zu bytes encoded, above the maximum of %zu (max.record.bytes)",
                 len, m->buf_size);
        return 1;
    }
    if (rc != CORE_OK) {
        cell_err(e, "", "type", "%s", err);
        return 1;
    }
    if (core_avro_get_key(m->schema, v, &key, &klen, err, sizeof(err)) != CORE_OK) {
        cell_err(e, core_avro_schema_key_field(m->schema), "missing", "%s", err);
        return 1;
    }
    if (klen == 0) {
        cell_err(e, core_avro_schema_key_field(m->schema), "missing", "the business key is empty");
        return 1;
    }
    if (klen + 1 > m->key_cap) {
        char *p = realloc(m->key, klen + 1);
        if (!p) {
            cell_err(e, "", "internal", "out of memory");
            return -1;
        }
        m->key = p;
        m->key_cap = klen + 1;
    }
    memcpy(m->key, key, klen);
    m->key[klen] = '\0';
    rec->value = m->buf;
    rec->len = len;
    rec->key = m->key;
    rec->keylen = klen;
    /* an UPDATE whose old_key differs from its key moves the record */
    rec->old_key = m->old_key && m->old_key[0] && strcmp(m->old_key, m->key) != 0
                       ? m->old_key : NULL;
    return 0;
}

static int row_csv(ingest_mapper *m, const ingest_row *row, const char *batch_id,
                   const char *source, ingest_record *rec, ingest_line_error *e)
{
    struct meta_in mi = { NULL, NULL, NULL, NULL };
    int rc;

    if (row->nfields != m->ncols) {
        cell_err(e, "", "field_count", "line has %zu fields, the header has %zu", row->nfields, m->ncols);
        return 1;
    }
    for (size_t i = 0; i < m->nleaves; i++) {
        const struct leaf *l = &m->leaves[i];
        bool present = l->col >= 0;
        rc = cell_set_leaf(l, &m->value, present ? row->fields[l->col] : NULL,
                           present ? row->lens[l->col] : 0, present, e);
        if (rc == 1 && present && row->lens[l->col] > 0)
            cell_val(e, l->name, row->fields[l->col], row->lens[l->col]);
        if (rc)
            return rc;
    }
    if (m->col_op >= 0)
        mi.op = row->fields[m->col_op];
    if (m->col_version >= 0)
        mi.version = row->fields[m->col_version];
    if (m->col_event_time >= 0)
        mi.event_time = row->fields[m->col_event_time];
    if (m->col_old_key >= 0)
        mi.old_key = row->fields[m->col_old_key];
    if ((rc = fill_meta(m, &m->value, &mi, row, batch_id, source, rec, e)))
        return rc;
    return encode(m, &m->value, rec, e);
}

/* Take a meta column out of a JSON object as text (numbers printed). */
static char *take_meta(cJSON *obj, const char *name, bool is_field)
{
    cJSON *it;
    char *out = NULL;

    if (!name || !*name || is_field)
        return NULL;
    it = cJSON_DetachItemFromObjectCaseSensitive(obj, name);
    if (!it)
        return NULL;
    /* a number's own text (core_json_parse() keeps it): the parsers below
     * take it exactly or refuse it; printing a double rounded 1.5 to 2 */
    if (cJSON_IsString(it) || cJSON_IsRaw(it))
        out = strdup(it->valuestring);
    else if (cJSON_IsNull(it))
        out = strdup("");
    else
        out = strdup("\x01"); /* refused by every parser below */
    cJSON_Delete(it);
    return out;
}

static bool is_top_field(const ingest_mapper *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->nleaves; i++)
        if (strncmp(m->leaves[i].name, name, n) == 0 &&
            (m->leaves[i].name[n] == '\0' || m->leaves[i].name[n] == '.'))
            return true;
    return false;
}

/* The scalar at a conversion error's path ("a.b", "tags[2]", "m[1]": a map
 * entry by its position) of obj, kept beside the reason (cell_val()). Objects
 * and arrays are not kept. */
static void json_value(ingest_line_error *e, const cJSON *obj, const char *path)
{
    const cJSON *it = obj;
    const char *p = path;
    char name[128], *txt;

    if (!strcmp(path, "record"))
        return; /* the whole line */
    while (*p && it) {
        size_t n = strcspn(p, ".[");

        if (n) {
            if (n >= sizeof(name))
                return;
            memcpy(name, p, n);
            name[n] = '\0';
            it = cJSON_GetObjectItemCaseSensitive(it, name);
            p += n;
        } else if (*p == '[') {
            char *end;
            unsigned long idx = strtoul(p + 1, &end, 10);

            if (*end != ']' || idx > INT_MAX)
                return;
            it = cJSON_GetArrayItem(it, (int)idx); /* arrays and objects alike */
            p = end + 1;
        }
        if (*p == '.')
            p++;
    }
    if (!it || cJSON_IsObject(it) || cJSON_IsArray(it))
        return;
    if (cJSON_IsString(it)) {
        cell_val(e, path, it->valuestring, strlen(it->valuestring));
        return;
    }
    txt = cJSON_PrintUnformatted(it);
    if (txt)
        cell_val(e, path, txt, strlen(txt));
    free(txt);
}

static int row_jsonl(ingest_mapper *m, const ingest_row *row, const char *batch_id,
                     const char *source, ingest_record *rec, ingest_line_error *e)
{
    cJSON *obj, *meta;
    struct meta_in mi;
    char *op, *ver, *et, *ok;
    char err[384];
    int rc;

    if (m->have_jvalue) {
        avro_value_decref(&m->jvalue);
        m->have_jvalue = false;
    }
    /* Numbers keep their text (never a double); duplicate names, \u0000
     * and the like are refused, with the byte and the key. */
    {
        core_json_error je;

        obj = core_json_parse(row->fields[0], row->lens[0], &je);
        if (!obj) {
            if (strcmp(je.reason, "out of memory") == 0) {
                cell_err(e, "", "internal", "out of memory");
                return -1;
            }
            cell_err(e, je.path, "json", "not valid JSON at byte %zu: %s", je.offset + 1, je.reason);
            return 1;
        }
    }
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        cell_err(e, "", "json", "not a JSON object");
        return 1;
    }
    op = take_meta(obj, m->o.op_column, is_top_field(m, m->o.op_column ? m->o.op_column : ""));
    ver = take_meta(obj, m->o.version_column, is_top_field(m, m->o.version_column ? m->o.version_column : ""));
    et = take_meta(obj, m->o.event_time_column,
                   is_top_field(m, m->o.event_time_column ? m->o.event_time_column : ""));
    ok = take_meta(obj, m->o.old_key_column, is_top_field(m, m->o.old_key_column ? m->o.old_key_column : ""));
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "meta");
    meta = cJSON_Parse("{\"id\":\"\",\"op\":\"ADD\",\"kind\":\"BULK\",\"source\":\"\",\"batch_id\":\"\","
                       "\"seq\":0,\"event_time\":0,\"version\":0,\"old_key\":null}");
    if (!meta || !cJSON_AddItemToObject(obj, "meta", meta)) {
        cJSON_Delete(meta);
        cJSON_Delete(obj);
        free(op); free(ver); free(et); free(ok);
        cell_err(e, "", "internal", "out of memory");
        return -1;
    }
    rc = core_avro_from_json_opts(m->schema, obj, m->o.refuse_extra ? 0 : CORE_AVRO_JSON_IGNORE_UNKNOWN,
                                  &m->jvalue, err, sizeof(err));
    if (rc != CORE_OK) {
        char *colon = strstr(err, ": ");
        free(op); free(ver); free(et); free(ok);
        if (rc == CORE_ERR_NOMEM) {
            cJSON_Delete(obj);
            cell_err(e, "", "internal", "out of memory");
            return -1;
        }
        if (colon && (size_t)(colon - err) < sizeof(e->column)) {
            *colon = '\0';
            cell_err(e, err, strstr(colon + 2, "unknown") || strstr(colon + 2, "not a field") ? "extra"
                             : strstr(colon + 2, "missing") ? "missing"
                             : strstr(colon + 2, "range") ? "range" : "type", "%s", colon + 2);
            json_value(e, obj, e->column);
        } else {
            cell_err(e, "", "type", "%s", err);
        }
        cJSON_Delete(obj);
        return 1;
    }
    cJSON_Delete(obj);
    m->have_jvalue = true;
    mi.op = op;
    mi.version = ver;
    mi.event_time = et;
    mi.old_key = ok;
    rc = fill_meta(m, &m->jvalue, &mi, row, batch_id, source, rec, e);
    free(op); free(ver); free(et); free(ok);
    if (rc)
        return rc;
    return encode(m, &m->jvalue, rec, e);
}

int ingest_mapper_row(ingest_mapper *m, const ingest_row *row, const char *batch_id,
                      const char *source, ingest_record *rec, ingest_line_error *e)
{
    memset(rec, 0, sizeof(*rec));
    e->column[0] = '\0';
    e->reason[0] = '\0';
    e->category = NULL;
    e->has_value = false;
    e->value[0] = '\0';
    e->value_field[0] = '\0';
    if (row->error) {
        const char *col = "";
        if (m->o.fmt == INGEST_FMT_CSV && row->error_col > 0) {
            /* name the column by the header when it has one */
            for (size_t i = 0; i < m->nleaves; i++)
                if (m->leaves[i].col == (long)row->error_col - 1)
                    col = m->leaves[i].name;
        }
        if (!*col && row->error_col > 0) {
            char num[32];
            snprintf(num, sizeof(num), "%zu", row->error_col);
            cell_err(e, num, strstr(row->error, "UTF-8") ? "utf8" : strstr(row->error, "longer") ? "too_big"
                             : "csv_syntax", "%s", row->error);
        } else {
            cell_err(e, col, strstr(row->error, "UTF-8") ? "utf8" : strstr(row->error, "longer") ? "too_big"
                             : strstr(row->error, "gzip") ? "gzip" : "csv_syntax", "%s", row->error);
        }
        return 1;
    }
    return m->o.fmt == INGEST_FMT_CSV ? row_csv(m, row, batch_id, source, rec, e)
                                      : row_jsonl(m, row, batch_id, source, rec, e);
}
