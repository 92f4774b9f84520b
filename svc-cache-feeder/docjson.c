/* docjson.c — Avro values straight to natural JSON text (see docjson.h). */
#include "docjson.h"

#include "tributary/core_common.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers and numbers --------------------------------------------------- */

int feeder_buf_grow(feeder_buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 1024;
    char *p;

    if (more > SIZE_MAX / 2 - b->len)
        return CORE_ERR_NOMEM;
    while (cap - b->len < more)
        cap *= 2;
    if (cap == b->cap)
        return CORE_OK;
    p = realloc(b->p, cap);
    if (!p)
        return CORE_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return CORE_OK;
}

void feeder_buf_free(feeder_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

size_t feeder_u64_text(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t feeder_i64_text(int64_t v, char *out)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + feeder_u64_text((uint64_t)0 - (uint64_t)v, out + 1);
    }
    return feeder_u64_text((uint64_t)v, out);
}

#define PUT(b, s, n)                                   \
    do {                                               \
        if (feeder_buf_put((b), (s), (n)) != CORE_OK)  \
            return CORE_ERR_NOMEM;                     \
    } while (0)
#define PUTS(b, lit) PUT(b, lit, sizeof(lit) - 1)

/* ---- the plan ------------------------------------------------------------------ */

typedef enum jk {
    JK_NULL, JK_BOOL, JK_INT, JK_DATE, JK_LONG, JK_TS_MS, JK_TS_US, JK_FLOAT, JK_DOUBLE,
    JK_BYTES, JK_FIXED, JK_DEC_BYTES, JK_DEC_FIXED, JK_STRING, JK_RECORD, JK_ENUM, JK_ARRAY,
    JK_MAP, JK_UNION,
} jk;

typedef struct jn {
    jk k;
    int scale;             /* decimals */
    size_t n;              /* record fields, enum symbols, union branches */
    char **text;           /* record: "\"name\":" ; enum: "\"SYMBOL\"" */
    size_t *tlen;
    struct jn **kid;       /* record fields, union branches; [0]: array items, map values */
    struct jn *next_alloc;
} jn;

typedef struct named {
    char *name;
    jn *node;
} named;

struct feeder_jplan {
    jn *root;
    jn *nodes;
    named *names;
    size_t nnames;
    bool nomem;
};

static jn *node_new(feeder_jplan *p, jk k)
{
    jn *n = calloc(1, sizeof(*n));

    if (!n) {
        p->nomem = true;
        return NULL;
    }
    n->k = k;
    n->next_alloc = p->nodes;
    p->nodes = n;
    return n;
}

void feeder_jplan_free(feeder_jplan *p)
{
    if (!p)
        return;
    while (p->nodes) {
        jn *n = p->nodes;
        p->nodes = n->next_alloc;
        for (size_t i = 0; n->text && i < n->n; i++)
            free(n->text[i]);
        free(n->text);
        free(n->tlen);
        free(n->kid);
        free(n);
    }
    for (size_t i = 0; i < p->nnames; i++)
        free(p->names[i].name);
    free(p->names);
    free(p);
}

/* JSON string text of s as cJSON prints it (quotes included), malloc'd. */
static char *quoted(const char *s, const char *suffix, size_t *lenp)
{
    feeder_buf b = { 0 };
    static const char hex[] = "0123456789abcdef";

    if (feeder_buf_put(&b, "\"", 1))
        goto fail;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        char e[6] = { '\\', 'u', '0', '0', hex[*q >> 4], hex[*q & 15] };
        int rc;
        switch (*q) {
        case '"': rc = feeder_buf_put(&b, "\\\"", 2); break;
        case '\\': rc = feeder_buf_put(&b, "\\\\", 2); break;
        case '\b': rc = feeder_buf_put(&b, "\\b", 2); break;
        case '\f': rc = feeder_buf_put(&b, "\\f", 2); break;
        case '\n': rc = feeder_buf_put(&b, "\\n", 2); break;
        case '\r': rc = feeder_buf_put(&b, "\\r", 2); break;
        case '\t': rc = feeder_buf_put(&b, "\\t", 2); break;
        default: rc = *q < 32 ? feeder_buf_put(&b, e, 6) : feeder_buf_put(&b, q, 1);
        }
        if (rc)
            goto fail;
    }
    if (feeder_buf_put(&b, "\"", 1) || feeder_buf_put(&b, suffix, strlen(suffix) + 1))
        goto fail;
    *lenp = b.len - 1;
    return b.p;
fail:
    feeder_buf_free(&b);
    return NULL;
}

static jn *compile(feeder_jplan *p, const cJSON *j, const char *ns, int depth);

static jn *lookup(feeder_jplan *p, const char *name, const char *ns)
{
    char full[512];

    if (!strchr(name, '.') && ns && *ns) {
        snprintf(full, sizeof(full), "%s.%s", ns, name);
        for (size_t i = 0; i < p->nnames; i++)
            if (strcmp(p->names[i].name, full) == 0)
                return p->names[i].node;
    }
    for (size_t i = 0; i < p->nnames; i++)
        if (strcmp(p->names[i].name, name) == 0)
            return p->names[i].node;
    return NULL;
}

static int define(feeder_jplan *p, const char *full, jn *n)
{
    named *nn = realloc(p->names, (p->nnames + 1) * sizeof(*nn));

    if (!nn)
        return -1;
    p->names = nn;
    if (!(nn[p->nnames].name = strdup(full)))
        return -1;
    nn[p->nnames++].node = n;
    return 0;
}

static jn *primitive(feeder_jplan *p, const char *t)
{
    static const struct { const char *name; jk k; } prims[] = {
        { "null", JK_NULL }, { "boolean", JK_BOOL }, { "int", JK_INT }, { "long", JK_LONG },
        { "float", JK_FLOAT }, { "double", JK_DOUBLE }, { "bytes", JK_BYTES },
        { "string", JK_STRING },
    };

    for (size_t i = 0; i < CORE_ARRAY_SIZE(prims); i++)
        if (strcmp(t, prims[i].name) == 0)
            return node_new(p, prims[i].k);
    return NULL;
}

static bool is_primitive(const char *t)
{
    return !strcmp(t, "null") || !strcmp(t, "boolean") || !strcmp(t, "int") || !strcmp(t, "long") ||
           !strcmp(t, "float") || !strcmp(t, "double") || !strcmp(t, "bytes") || !strcmp(t, "string");
}

/* The logical types core_avro knows; others read as their base type. */
static void logical(jn *n, const cJSON *obj)
{
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(obj, "logicalType");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(obj, "scale");

    if (!cJSON_IsString(lt))
        return;
    if (!strcmp(lt->valuestring, "decimal") && (n->k == JK_BYTES || n->k == JK_FIXED)) {
        n->k = n->k == JK_BYTES ? JK_DEC_BYTES : JK_DEC_FIXED;
        n->scale = cJSON_IsNumber(sc) ? sc->valueint : 0;
    } else if (!strcmp(lt->valuestring, "timestamp-millis") && n->k == JK_LONG) {
        n->k = JK_TS_MS;
    } else if (!strcmp(lt->valuestring, "timestamp-micros") && n->k == JK_LONG) {
        n->k = JK_TS_US;
    } else if (!strcmp(lt->valuestring, "date") && n->k == JK_INT) {
        n->k = JK_DATE;
    }
}

static int full_name(const cJSON *obj, const char *ns, char *full, size_t size, char *myns,
                     size_t nssize)
{
    const cJSON *jn_ = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *jns = cJSON_GetObjectItemCaseSensitive(obj, "namespace");
    const char *use = ns, *dot;

    if (!cJSON_IsString(jn_))
        return -1;
    if (cJSON_IsString(jns))
        use = jns->valuestring;
    if (strchr(jn_->valuestring, '.') || !use || !*use)
        snprintf(full, size, "%s", jn_->valuestring);
    else
        snprintf(full, size, "%s.%s", use, jn_->valuestring);
    dot = strrchr(full, '.');
    snprintf(myns, nssize, "%.*s", dot ? (int)(dot - full) : 0, full);
    return 0;
}

static jn *compile_object(feeder_jplan *p, const cJSON *j, const char *ns, int depth)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    char full[512], myns[512];
    jn *n;

    if (!cJSON_IsString(t))
        return NULL;
    if (is_primitive(t->valuestring)) {
        if ((n = primitive(p, t->valuestring)))
            logical(n, j);
        return n;
    }
    if (!strcmp(t->valuestring, "array") || !strcmp(t->valuestring, "map")) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, t->valuestring[0] == 'a' ? "items" : "values");
        if (!it || !(n = node_new(p, t->valuestring[0] == 'a' ? JK_ARRAY : JK_MAP)) ||
            !(n->kid = calloc(1, sizeof(*n->kid))) || !(n->kid[0] = compile(p, it, ns, depth + 1)))
            return NULL;
        return n;
    }
    if (full_name(j, ns, full, sizeof(full), myns, sizeof(myns)) != 0)
        return NULL;
    if (!strcmp(t->valuestring, "record") || !strcmp(t->valuestring, "error")) {
        const cJSON *fields = cJSON_GetObjectItemCaseSensitive(j, "fields"), *fl;
        size_t i = 0, nf;

        if (!cJSON_IsArray(fields) || !(n = node_new(p, JK_RECORD)) || define(p, full, n))
            return NULL;
        nf = (size_t)cJSON_GetArraySize(fields);
        if (!(n->text = calloc(nf + 1, sizeof(*n->text))) || !(n->tlen = calloc(nf + 1, sizeof(*n->tlen))) ||
            !(n->kid = calloc(nf + 1, sizeof(*n->kid))))
            return NULL;
        cJSON_ArrayForEach(fl, fields) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fl, "name");
            if (!cJSON_IsString(name) || !(n->text[i] = quoted(name->valuestring, ":", &n->tlen[i])))
                return NULL;
            n->n = ++i;
            if (!(n->kid[i - 1] = compile(p, cJSON_GetObjectItemCaseSensitive(fl, "type"), myns, depth + 1)))
                return NULL;
        }
        return n;
    }
    if (!strcmp(t->valuestring, "enum")) {
        const cJSON *syms = cJSON_GetObjectItemCaseSensitive(j, "symbols"), *sy;
        size_t i = 0, ns_ = (size_t)cJSON_GetArraySize(syms);

        if (!cJSON_IsArray(syms) || !(n = node_new(p, JK_ENUM)) || define(p, full, n) ||
            !(n->text = calloc(ns_ + 1, sizeof(*n->text))) || !(n->tlen = calloc(ns_ + 1, sizeof(*n->tlen))))
            return NULL;
        cJSON_ArrayForEach(sy, syms) {
            if (!cJSON_IsString(sy) || !(n->text[i] = quoted(sy->valuestring, "", &n->tlen[i])))
                return NULL;
            n->n = ++i;
        }
        return n;
    }
    if (!strcmp(t->valuestring, "fixed")) {
        if (!(n = node_new(p, JK_FIXED)) || define(p, full, n))
            return NULL;
        logical(n, j);
        return n;
    }
    return NULL;
}

static jn *compile(feeder_jplan *p, const cJSON *j, const char *ns, int depth)
{
    jn *n;

    if (!j || depth > 64)
        return NULL;
    if (cJSON_IsString(j))
        return is_primitive(j->valuestring) ? primitive(p, j->valuestring)
                                            : lookup(p, j->valuestring, ns);
    if (cJSON_IsArray(j)) {
        const cJSON *b;
        size_t i = 0, nb = (size_t)cJSON_GetArraySize(j);

        if (!(n = node_new(p, JK_UNION)) || !(n->kid = calloc(nb + 1, sizeof(*n->kid))))
            return NULL;
        cJSON_ArrayForEach(b, j) {
            if (!(n->kid[i++] = compile(p, b, ns, depth + 1)))
                return NULL;
            n->n = i;
        }
        return n;
    }
    if (cJSON_IsObject(j))
        return compile_object(p, j, ns, depth);
    return NULL;
}

feeder_jplan *feeder_jplan_new(const core_avro_schema_t *schema)
{
    feeder_jplan *p = calloc(1, sizeof(*p));
    const cJSON *j = schema ? core_avro_schema_json(schema) : NULL;

    if (!p)
        return NULL;
    p->root = j ? compile(p, j, "", 0) : NULL;
    if (!p->root || p->root->k != JK_RECORD || p->nomem) {
        feeder_jplan_free(p);
        return NULL;
    }
    return p;
}

size_t feeder_jplan_nfields(const feeder_jplan *p)
{
    return p->root->n;
}

const char *feeder_jplan_field_name(const feeder_jplan *p, size_t i, size_t *lenp)
{
    /* text is "\"name\":": the name without quotes and colon (names are
     * Avro names: nothing to escape) */
    *lenp = p->root->tlen[i] - 3;
    return p->root->text[i] + 1;
}

/* ---- writing ------------------------------------------------------------------ */

#define EXACT_DOUBLE_MAX 9007199254740992LL /* 2^53 */

/* A number exactly as cJSON prints it; integers of fewer than 16 digits
 * print the same in every cJSON (%d or %1.15g), the rest go through cJSON. */
static int put_number(feeder_buf *out, double d)
{
    char num[32], *txt;
    cJSON *j;
    int rc;

    if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && 1 / d < 0)) {
        PUT(out, num, feeder_i64_text((int64_t)d, num));
        return CORE_OK;
    }
    if (!(j = cJSON_CreateNumber(d)))
        return CORE_ERR_NOMEM;
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt)
        return CORE_ERR_NOMEM;
    rc = feeder_buf_put(out, txt, strlen(txt));
    free(txt);
    return rc;
}

static int put_long(feeder_buf *out, int64_t v)
{
    char num[24];

    if (v >= -EXACT_DOUBLE_MAX && v <= EXACT_DOUBLE_MAX)
        return put_number(out, (double)v);
    PUT(out, num, feeder_i64_text(v, num)); /* a raw number */
    return CORE_OK;
}

/* s as a JSON string (raw: as it is). */
static int put_string(feeder_buf *out, const char *s, size_t len, bool raw)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, i;

    if (raw) {
        PUT(out, s, len);
        return CORE_OK;
    }
    PUTS(out, "\"");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t el = 2;

        if (c >= 32 && c != '"' && c != '\\')
            continue;
        PUT(out, s + start, i - start);
        start = i + 1;
        e[0] = '\\';
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15];
            el = 6;
        }
        PUT(out, e, el);
    }
    PUT(out, s + start, len - start);
    PUTS(out, "\"");
    return CORE_OK;
}

/* Bytes and fixed: printable ASCII other than '\' as itself, '\' as "\\",
 * any other byte as "\xHH" (core_avro's text), then JSON-escaped unless raw. */
static int put_bytes(feeder_buf *out, const uint8_t *b, size_t len, bool raw)
{
    static const char hex[] = "0123456789abcdef";

    if (!raw)
        PUTS(out, "\"");
    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\\') {
            if (raw)
                PUTS(out, "\\\\");
            else
                PUTS(out, "\\\\\\\\");
        } else if (b[i] >= 0x20 && b[i] < 0x7f) {
            if (b[i] == '"' && !raw)
                PUTS(out, "\\\"");
            else
                PUT(out, &b[i], 1);
        } else {
            char e[5] = { 'x', hex[b[i] >> 4], hex[b[i] & 15] };
            if (raw)
                PUTS(out, "\\");
            else
                PUTS(out, "\\\\");
            PUT(out, e, 3);
        }
    }
    if (!raw)
        PUTS(out, "\"");
    return CORE_OK;
}

/* Longer than most (about 140 lines) for a reason: one case per Avro type
 * of the natural JSON writer, in one switch. */
static int write_value(const jn *n, avro_value_t *v, feeder_buf *out, bool raw, int depth)
{
    char buf[CORE_AVRO_TIME_SIZE > CORE_AVRO_DECIMAL_SIZE ? CORE_AVRO_TIME_SIZE : CORE_AVRO_DECIMAL_SIZE];
    int rc;

    if (depth > 64)
        return CORE_ERR_INVALID;
    switch (n->k) {
    case JK_NULL:
        PUTS(out, "null");
        return CORE_OK;
    case JK_BOOL: {
        int b;
        if (avro_value_get_boolean(v, &b))
            return CORE_ERR_INVALID;
        if (b)
            PUTS(out, "true");
        else
            PUTS(out, "false");
        return CORE_OK;
    }
    case JK_INT:
    case JK_DATE: {
        int32_t i;
        if (avro_value_get_int(v, &i))
            return CORE_ERR_INVALID;
        if (n->k == JK_DATE && core_avro_time_format((int64_t)i * 86400000, buf, sizeof(buf)) > 0)
            return put_string(out, buf, 10, raw);
        PUT(out, buf, feeder_i64_text(i, buf));
        return CORE_OK;
    }
    case JK_LONG:
    case JK_TS_MS:
    case JK_TS_US: {
        int64_t l;
        int tl;
        if (avro_value_get_long(v, &l))
            return CORE_ERR_INVALID;
        if (n->k == JK_TS_MS && (tl = core_avro_time_format(l, buf, sizeof(buf))) > 0)
            return put_string(out, buf, (size_t)tl, raw);
        if (n->k == JK_TS_US && (tl = core_avro_time_format_us(l, buf, sizeof(buf))) > 0)
            return put_string(out, buf, (size_t)tl, raw);
        return put_long(out, l);
    }
    case JK_FLOAT: {
        float f;
        if (avro_value_get_float(v, &f))
            return CORE_ERR_INVALID;
        return put_number(out, f);
    }
    case JK_DOUBLE: {
        double d;
        if (avro_value_get_double(v, &d))
            return CORE_ERR_INVALID;
        return put_number(out, d);
    }
    case JK_BYTES:
    case JK_FIXED:
    case JK_DEC_BYTES:
    case JK_DEC_FIXED: {
        const void *b;
        size_t sz;
        char e[128];
        if ((n->k == JK_BYTES || n->k == JK_DEC_BYTES) ? avro_value_get_bytes(v, &b, &sz)
                                                       : avro_value_get_fixed(v, &b, &sz))
            return CORE_ERR_INVALID;
        if (n->k == JK_BYTES || n->k == JK_FIXED)
            return put_bytes(out, b, sz, raw);
        if (core_avro_decimal_format(b, sz, n->scale, buf, sizeof(buf), e, sizeof(e)) != CORE_OK)
            return CORE_ERR_INVALID;
        return put_string(out, buf, strlen(buf), raw);
    }
    case JK_STRING: {
        const char *s;
        size_t sz;
        if (avro_value_get_string(v, &s, &sz))
            return CORE_ERR_INVALID;
        s = s ? s : "";
        return put_string(out, s, strlen(s), raw);
    }
    case JK_ENUM: {
        int e;
        if (avro_value_get_enum(v, &e) || e < 0 || (size_t)e >= n->n)
            return CORE_ERR_INVALID;
        if (raw)
            PUT(out, n->text[e] + 1, n->tlen[e] - 2);
        else
            PUT(out, n->text[e], n->tlen[e]);
        return CORE_OK;
    }
    case JK_UNION: {
        int d;
        avro_value_t br;
        if (avro_value_get_discriminant(v, &d) || d < 0 || (size_t)d >= n->n ||
            avro_value_get_current_branch(v, &br))
            return CORE_ERR_INVALID;
        return write_value(n->kid[d], &br, out, raw, depth + 1);
    }
    case JK_RECORD: {
        PUTS(out, "{");
        for (size_t i = 0; i < n->n; i++) {
            avro_value_t fv;
            if (avro_value_get_by_index(v, i, &fv, NULL))
                return CORE_ERR_INVALID;
            if (i)
                PUTS(out, ",");
            PUT(out, n->text[i], n->tlen[i]);
            if ((rc = write_value(n->kid[i], &fv, out, false, depth + 1)))
                return rc;
        }
        PUTS(out, "}");
        return CORE_OK;
    }
    case JK_ARRAY:
    case JK_MAP: {
        size_t sz;
        if (avro_value_get_size(v, &sz))
            return CORE_ERR_INVALID;
        PUT(out, n->k == JK_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < sz; i++) {
            avro_value_t e;
            const char *key = NULL;
            if (avro_value_get_by_index(v, i, &e, &key))
                return CORE_ERR_INVALID;
            if (i)
                PUTS(out, ",");
            if (n->k == JK_MAP) {
                key = key ? key : "";
                if ((rc = put_string(out, key, strlen(key), false)))
                    return rc;
                PUTS(out, ":");
            }
            if ((rc = write_value(n->kid[0], &e, out, false, depth + 1)))
                return rc;
        }
        PUT(out, n->k == JK_ARRAY ? "]" : "}", 1);
        return CORE_OK;
    }
    }
    return CORE_ERR_INVALID;
}

int feeder_json_write(const feeder_jplan *p, avro_value_t *record, feeder_buf *out)
{
    return write_value(p->root, record, out, false, 0);
}

int feeder_json_field(const feeder_jplan *p, size_t i, avro_value_t *record, feeder_buf *out,
                      bool *skip)
{
    const jn *n = p->root->kid[i];
    avro_value_t fv, br;
    bool raw;

    *skip = false;
    if (i >= p->root->n || avro_value_get_by_index(record, i, &fv, NULL))
        return CORE_ERR_INVALID;
    while (n->k == JK_UNION) {
        int d;
        if (avro_value_get_discriminant(&fv, &d) || d < 0 || (size_t)d >= n->n ||
            avro_value_get_current_branch(&fv, &br))
            return CORE_ERR_INVALID;
        n = n->kid[d];
        fv = br;
    }
    if (n->k == JK_NULL) {
        *skip = true;
        return CORE_OK;
    }
    /* string-like values as they are: what is a cJSON string in the tree */
    raw = n->k == JK_STRING || n->k == JK_ENUM || n->k == JK_BYTES || n->k == JK_FIXED ||
          n->k == JK_DEC_BYTES || n->k == JK_DEC_FIXED || n->k == JK_DATE || n->k == JK_TS_MS ||
          n->k == JK_TS_US;
    return write_value(n, &fv, out, raw, 0);
}
