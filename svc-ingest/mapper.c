/* mapper.c — CSV rows and JSON Lines objects to encoded dataset records
 * (see mapper.h for the rules). */
#include "mapper.h"

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

#define MAX_DEPTH 8

enum leaf_kind {
    L_STRING, L_BYTES, L_INT, L_LONG, L_FLOAT, L_DOUBLE, L_BOOL, L_ENUM,
    L_DECIMAL, L_TS_MS, L_TS_US, L_DATE, L_NULL, L_UNSUPPORTED,
};

struct leaf {
    char *name;               /* dotted path */
    size_t path[MAX_DEPTH];
    size_t depth;
    enum leaf_kind kind;
    bool nullable;
    int null_branch, val_branch;
    bool has_default;
    bool default_null;
    char *default_text;       /* default as text (non-null defaults) */
    int precision, scale;
    size_t fixed_size;        /* decimal on fixed: its size; 0 on bytes */
    const cJSON *symbols;
    const char *type_name;    /* for messages */
    long col;                 /* CSV column, -1 when absent */
};

struct ingest_mapper {
    ingest_map_opts o;
    const core_avro_schema_t *schema;
    struct leaf *leaves;
    size_t nleaves, leaves_cap;
    size_t ncols;
    long col_op, col_version, col_event_time, col_old_key;
    avro_value_t value;       /* CSV: reused */
    bool have_value;
    avro_value_t jvalue;      /* JSONL: the last record */
    bool have_jvalue;
    uint8_t *buf;
    size_t buf_size;
    char *key;
    size_t key_cap;
};

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

/* ---- cells ------------------------------------------------------------- */

static void lerr(ingest_line_error *e, const char *column, const char *category,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void lerr(ingest_line_error *e, const char *column, const char *category,
                 const char *fmt, ...)
{
    va_list ap;

    snprintf(e->column, sizeof(e->column), "%s", column ? column : "");
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    e->category = category;
}

/* Keep the refused value beside the reason (never in it): the text of
 * s[0..len), cut at a UTF-8 boundary. field: the path whose tb.personal
 * marking decides whether the errors file may show it. */
static void lval(ingest_line_error *e, const char *field, const char *s, size_t len)
{
    size_t max = sizeof(e->value) - 4, n = len;

    if (!s || !field)
        return;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* do not cut a character in two */
    }
    memcpy(e->value, s, n);
    if (n < len)
        memcpy(e->value + n, "...", 4);
    else
        e->value[n] = '\0';
    snprintf(e->value_field, sizeof(e->value_field), "%s", field);
    e->has_value = true;
}

/* Copy a cell into tmp (NULL when it does not fit), without ASCII blanks
 * around it (set_text() and fill_meta() refuse those before). */
static const char *trimmed(const char *s, size_t len, char *tmp, size_t tmpsize)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= tmpsize)
        return NULL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return tmp;
}

static bool parse_ll(const char *s, long long *out)
{
    char *end;

    if (!*s)
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *end == '\0' && errno == 0;
}

static bool all_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Days since the epoch of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned mo, unsigned d)
{
    y -= mo <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* A blank at either end of a cell: refused for every kind but text, as a
 * cell is taken exactly as written (" 10.50" is not silently 10.50). */
static bool blank_edge(const char *s, size_t len)
{
    return len && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t');
}

/* Set v (already the value branch) from text. @returns 0 or 1 (line error). */
static int set_text(const struct leaf *l, avro_value_t *v, const char *s, size_t len,
                    ingest_line_error *e)
{
    char tmp[128], err[256];
    const char *t;
    long long ll;

    if (l->kind != L_STRING && l->kind != L_BYTES && l->kind != L_ENUM && blank_edge(s, len)) {
        lerr(e, l->name, "type", "a blank before or after the value");
        return 1;
    }
    switch (l->kind) {
    case L_STRING:
        if (avro_value_set_string_len(v, s, len + 1))
            goto avro_fail;
        return 0;
    case L_BYTES:
        if (avro_value_set_bytes(v, (void *)s, len))
            goto avro_fail;
        return 0;
    case L_INT:
    case L_LONG:
        t = trimmed(s, len, tmp, sizeof(tmp));
        if (!t || !all_int(t)) {
            lerr(e, l->name, "type", "not an integer");
            return 1;
        }
        if (!parse_ll(t, &ll) || (l->kind == L_INT && (ll < INT32_MIN || ll > INT32_MAX))) {
            lerr(e, l->name, "range", "integer out of range for %s", l->kind == L_INT ? "int" : "long");
            return 1;
        }
        if (l->kind == L_INT ? avro_value_set_int(v, (int32_t)ll) : avro_value_set_long(v, ll))
            goto avro_fail;
        return 0;
    case L_FLOAT:
    case L_DOUBLE: {
        char *end;
        double d;
        t = trimmed(s, len, tmp, sizeof(tmp));
        if (!t || !*t) {
            lerr(e, l->name, "type", "not a number");
            return 1;
        }
        errno = 0;
        d = strtod(t, &end);
        if (*end != '\0' || end == t) {
            lerr(e, l->name, "type", "not a number");
            return 1;
        }
        if (!isfinite(d) || (errno == ERANGE && fabs(d) > 1.0) ||
            (l->kind == L_FLOAT && fabs(d) > FLT_MAX)) {
            lerr(e, l->name, "range", "number out of range for %s",
                 l->kind == L_FLOAT ? "float" : "double");
            return 1;
        }
        /* a float rounded once from the text, not through a double */
        if (l->kind == L_FLOAT ? avro_value_set_float(v, strtof(t, NULL))
                               : avro_value_set_double(v, d))
            goto avro_fail;
        return 0;
    }
    case L_BOOL: {
        static const char *const yes[] = { "true", "t", "yes", "y", "1" };
        static const char *const no[] = { "false", "f", "no", "n", "0" };
        t = trimmed(s, len, tmp, sizeof(tmp));
        for (size_t i = 0; t && i < CORE_ARRAY_SIZE(yes); i++) {
            if (strcasecmp(t, yes[i]) == 0)
                return avro_value_set_boolean(v, 1) ? (lerr(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
            if (strcasecmp(t, no[i]) == 0)
                return avro_value_set_boolean(v, 0) ? (lerr(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
        }
        lerr(e, l->name, "type", "not a boolean (true/false, yes/no, 1/0)");
        return 1;
    }
    case L_ENUM: {
        int i = 0;
        const cJSON *sym;
        cJSON_ArrayForEach(sym, l->symbols) {
            if (cJSON_IsString(sym) && strlen(sym->valuestring) == len &&
                memcmp(sym->valuestring, s, len) == 0)
                return avro_value_set_enum(v, i) ? (lerr(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
            i++;
        }
        {
            char list[200] = "";
            size_t off = 0;
            cJSON_ArrayForEach(sym, l->symbols) {
                if (cJSON_IsString(sym) && off < sizeof(list))
                    off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? "|" : "",
                                            sym->valuestring);
            }
            lerr(e, l->name, "type", "not a symbol of %s (%s)", l->type_name, list);
        }
        return 1;
    }
    case L_DECIMAL: {
        uint8_t out[16], fx[64];
        size_t outlen;
        t = trimmed(s, len, tmp, sizeof(tmp));
        if (!t) {
            lerr(e, l->name, "type", "not a decimal number");
            return 1;
        }
        if (core_avro_decimal_parse(t, l->precision, l->scale, out, &outlen, err, sizeof(err))) {
            lerr(e, l->name, strstr(err, "digits") ? "range" : "type", "%s", err);
            return 1;
        }
        if (l->fixed_size) {
            if (outlen > l->fixed_size || l->fixed_size > sizeof(fx)) {
                lerr(e, l->name, "range", "decimal does not fit fixed(%zu)", l->fixed_size);
                return 1;
            }
            memset(fx, (out[0] & 0x80) ? 0xFF : 0x00, l->fixed_size);
            memcpy(fx + l->fixed_size - outlen, out, outlen);
            if (avro_value_set_fixed(v, fx, l->fixed_size))
                goto avro_fail;
        } else if (avro_value_set_bytes(v, out, outlen)) {
            goto avro_fail;
        }
        return 0;
    }
    case L_TS_MS:
    case L_TS_US: {
        int64_t x;
        t = trimmed(s, len, tmp, sizeof(tmp));
        if (!t) {
            lerr(e, l->name, "type", "not a timestamp");
            return 1;
        }
        if (all_int(t)) {
            if (!parse_ll(t, &ll)) {
                lerr(e, l->name, "range", "timestamp out of range");
                return 1;
            }
            x = ll;
        } else if (core_avro_time_parse_exact(t, l->kind == L_TS_US, &x, err, sizeof(err)) !=
                   CORE_OK) {
            lerr(e, l->name, "type", "%s", err);
            return 1;
        }
        if (avro_value_set_long(v, x))
            goto avro_fail;
        return 0;
    }
    case L_DATE: {
        int64_t days;
        t = trimmed(s, len, tmp, sizeof(tmp));
        if (t && all_int(t) && parse_ll(t, &ll) && ll >= INT32_MIN && ll <= INT32_MAX) {
            days = ll;
        } else {
            unsigned y, mo, d;
            char extra;
            static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
            /* digits only: sscanf's %u also takes a sign ("-024-01-01" was
             * year 4294967272, then truncated to an int) */
            if (!t || strlen(t) != 10 || strspn(t, "0123456789") != 4 ||
                strspn(t + 5, "0123456789") != 2 || strspn(t + 8, "0123456789") != 2 ||
                sscanf(t, "%4u-%2u-%2u%c", &y, &mo, &d, &extra) != 3 ||
                t[4] != '-' || t[7] != '-' || y < 1 || mo < 1 || mo > 12 || d < 1 ||
                d > mdays[mo - 1] ||
                (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
                lerr(e, l->name, "type", "not a date (YYYY-MM-DD)");
                return 1;
            }
            days = days_from_civil(y, mo, d);
        }
        if (avro_value_set_int(v, (int32_t)days))
            goto avro_fail;
        return 0;
    }
    case L_NULL:
        if (avro_value_set_null(v))
            goto avro_fail;
        return 0;
    case L_UNSUPPORTED:
        break;
    }
    lerr(e, l->name, "type", "type not supported in CSV");
    return 1;
avro_fail:
    lerr(e, l->name, "type", "%s", avro_strerror());
    return 1;
}

static int set_leaf(const struct leaf *l, avro_value_t *root, const char *cell, size_t len,
                    bool present, ingest_line_error *e)
{
    avro_value_t cur = *root, child, br;

    for (size_t i = 0; i < l->depth; i++) {
        if (avro_value_get_by_index(&cur, l->path[i], &child, NULL)) {
            lerr(e, l->name, "type", "%s", avro_strerror());
            return 1;
        }
        cur = child;
    }
    if (l->kind == L_UNSUPPORTED)
        return 0; /* an absent array or map stays empty */
    /* An empty or absent cell: null, "" or the default. */
    if (!present || len == 0) {
        if (l->nullable && (!present || l->kind != L_STRING || len == 0)) {
            if (!present && l->has_default && !l->default_null && l->default_text) {
                /* a union's default is of its first branch */
                if (avro_value_set_branch(&cur, l->null_branch == 0 ? l->val_branch : 0, &br))
                    goto avro_fail;
                return set_text(l, &br, l->default_text, strlen(l->default_text), e);
            }
            if (avro_value_set_branch(&cur, l->null_branch, &br) || avro_value_set_null(&br))
                goto avro_fail;
            return 0;
        }
        if (present && (l->kind == L_STRING || l->kind == L_BYTES))
            return set_text(l, &cur, "", 0, e);
        if (l->has_default && l->default_text)
            return set_text(l, &cur, l->default_text, strlen(l->default_text), e);
        lerr(e, l->name, "missing", "empty value for a required field");
        return 1;
    }
    if (l->nullable) {
        if (avro_value_set_branch(&cur, l->val_branch, &br))
            goto avro_fail;
        return set_text(l, &br, cell, len, e);
    }
    return set_text(l, &cur, cell, len, e);
avro_fail:
    lerr(e, l->name, "type", "%s", avro_strerror());
    return 1;
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
        lerr(e, m->o.op_column, "type", "not an operation (ADD, UPDATE or DELETE)");
        lval(e, "meta.op", mi->op, strlen(mi->op));
        return 1;
    }
    if (m->o.kind >= 0)
        meta.kind = (core_avro_kind_t)m->o.kind;
    else
        meta.kind = has_op || m->col_op >= 0 ? CORE_AVRO_KIND_CHANGE : CORE_AVRO_KIND_BULK;
    meta.source = source;
    meta.batch_id = batch_id;
    meta.seq = (int64_t)row->line;
    if (mi->event_time && blank_edge(mi->event_time, strlen(mi->event_time))) {
        lerr(e, m->o.event_time_column, "type", "a blank before or after the value");
        return 1;
    }
    if (mi->version && blank_edge(mi->version, strlen(mi->version))) {
        lerr(e, m->o.version_column, "type", "a blank before or after the value");
        return 1;
    }
    if (mi->event_time && *mi->event_time) {
        const char *t = trimmed(mi->event_time, strlen(mi->event_time), tmp, sizeof(tmp));
        long long ll;
        if (t && all_int(t)) {
            if (!parse_ll(t, &ll)) {
                lerr(e, m->o.event_time_column, "range", "timestamp out of range");
                lval(e, "meta.event_time", mi->event_time, strlen(mi->event_time));
                return 1;
            }
            et = ll;
        } else if (!t || core_avro_time_parse_exact(t, false, &et, err, sizeof(err)) != CORE_OK) {
            lerr(e, m->o.event_time_column, "type", "%s", t ? err : "not a timestamp");
            lval(e, "meta.event_time", mi->event_time, strlen(mi->event_time));
            return 1;
        }
    }
    meta.event_time = et;
    if (mi->version && *mi->version) {
        const char *t = trimmed(mi->version, strlen(mi->version), tmp, sizeof(tmp));
        long long ll;
        if (!t || !all_int(t) || !parse_ll(t, &ll)) {
            lerr(e, m->o.version_column, t && all_int(t) ? "range" : "type",
                 "version is not a long integer");
            lval(e, "meta.version", mi->version, strlen(mi->version));
            return 1;
        }
        meta.version = ll;
    } else {
        int64_t secs = et >= 0 ? et / 1000 : 0;
        meta.version = secs * ((int64_t)1 << 30) + (int64_t)(row->line & ((1u << 30) - 1));
    }
    meta.old_key = mi->old_key && *mi->old_key ? mi->old_key : NULL;
    if (core_avro_set_meta(m->schema, v, &meta, err, sizeof(err)) != CORE_OK) {
        lerr(e, "meta", "type", "%s", err);
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
        lerr(e, "", "too_big", "record is %zu bytes encoded, above the maximum of %zu (max.record.bytes)",
             len, m->buf_size);
        return 1;
    }
    if (rc != CORE_OK) {
        lerr(e, "", "type", "%s", err);
        return 1;
    }
    if (core_avro_get_key(m->schema, v, &key, &klen, err, sizeof(err)) != CORE_OK) {
        lerr(e, core_avro_schema_key_field(m->schema), "missing", "%s", err);
        return 1;
    }
    if (klen == 0) {
        lerr(e, core_avro_schema_key_field(m->schema), "missing", "the business key is empty");
        return 1;
    }
    if (klen + 1 > m->key_cap) {
        char *p = realloc(m->key, klen + 1);
        if (!p) {
            lerr(e, "", "internal", "out of memory");
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
    return 0;
}

static int row_csv(ingest_mapper *m, const ingest_row *row, const char *batch_id,
                   const char *source, ingest_record *rec, ingest_line_error *e)
{
    struct meta_in mi = { NULL, NULL, NULL, NULL };
    int rc;

    if (row->nfields != m->ncols) {
        lerr(e, "", "field_count", "line has %zu fields, the header has %zu", row->nfields, m->ncols);
        return 1;
    }
    for (size_t i = 0; i < m->nleaves; i++) {
        const struct leaf *l = &m->leaves[i];
        bool present = l->col >= 0;
        rc = set_leaf(l, &m->value, present ? row->fields[l->col] : NULL,
                      present ? row->lens[l->col] : 0, present, e);
        if (rc == 1 && present && row->lens[l->col] > 0)
            lval(e, l->name, row->fields[l->col], row->lens[l->col]);
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
 * entry by its position) of obj, kept beside the reason (lval()). Objects
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
        lval(e, path, it->valuestring, strlen(it->valuestring));
        return;
    }
    txt = cJSON_PrintUnformatted(it);
    if (txt)
        lval(e, path, txt, strlen(txt));
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
                lerr(e, "", "internal", "out of memory");
                return -1;
            }
            lerr(e, je.path, "json", "not valid JSON at byte %zu: %s", je.offset + 1, je.reason);
            return 1;
        }
    }
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        lerr(e, "", "json", "not a JSON object");
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
        lerr(e, "", "internal", "out of memory");
        return -1;
    }
    rc = core_avro_from_json_opts(m->schema, obj, m->o.refuse_extra ? 0 : CORE_AVRO_JSON_IGNORE_UNKNOWN,
                                  &m->jvalue, err, sizeof(err));
    if (rc != CORE_OK) {
        char *colon = strstr(err, ": ");
        free(op); free(ver); free(et); free(ok);
        if (rc == CORE_ERR_NOMEM) {
            cJSON_Delete(obj);
            lerr(e, "", "internal", "out of memory");
            return -1;
        }
        if (colon && (size_t)(colon - err) < sizeof(e->column)) {
            *colon = '\0';
            lerr(e, err, strstr(colon + 2, "unknown") || strstr(colon + 2, "not a field") ? "extra"
                         : strstr(colon + 2, "missing") ? "missing"
                         : strstr(colon + 2, "range") ? "range" : "type", "%s", colon + 2);
            json_value(e, obj, e->column);
        } else {
            lerr(e, "", "type", "%s", err);
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
            lerr(e, num, strstr(row->error, "UTF-8") ? "utf8" : strstr(row->error, "longer") ? "too_big"
                         : "csv_syntax", "%s", row->error);
        } else {
            lerr(e, col, strstr(row->error, "UTF-8") ? "utf8" : strstr(row->error, "longer") ? "too_big"
                         : strstr(row->error, "gzip") ? "gzip" : "csv_syntax", "%s", row->error);
        }
        return 1;
    }
    return m->o.fmt == INGEST_FMT_CSV ? row_csv(m, row, batch_id, source, rec, e)
                                      : row_jsonl(m, row, batch_id, source, rec, e);
}
