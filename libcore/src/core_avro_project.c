/* core_avro_project.c — reader's schema projection: a record written with
 * an older schema of its dataset (a catalogue version, a registry id) read
 * as the dataset's current schema, by Avro's schema resolution rules.
 *
 * avro-c 1.11.1's resolved writer refuses a reader field with a default
 * that the writer lacks, the very case BACKWARD compatibility allows, so
 * this is our own. It reads the writer's bytes (already checked against the
 * writer's schema by core_avro_check_body(): no length is checked again)
 * guided by both node trees at once, and fills a value of the reader's
 * schema:
 *  - record fields matched by name; a writer's field the reader lacks is
 *    skipped; a reader's field the writer lacks takes the reader's default
 *    (an error when it has none);
 *  - promotions int -> long -> float -> double, string <-> bytes (bytes as a
 *    string must be valid UTF-8 without NUL, as every string here);
 *  - a writer's union: the branch written is resolved on its own; a
 *    reader's union: the first branch of the same named type, else the
 *    first branch of the same type, else the first it can be promoted to;
 *  - enums by symbol; a symbol the reader lacks takes the reader enum's
 *    default, else it is an error naming the field;
 *  - arrays and maps item by item; fixed of the same size;
 *  - logical types: the reader's is kept; a decimal of another scale or a
 *    timestamp of another unit is refused (the number would change meaning).
 * Errors name the field path ("address.city: ...", map entries by position
 * "attrs[2]"), never a value.
 */
#include "core_avro_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct proj {
    core_avro_fill f;
    char path[512];
    size_t plen;
    char *err;
    size_t errsz;
    core_err_t code; /* what a failure returns */
};

static const char *type_name(const struct avn *n)
{
    static const char *const names[] = {
        [AVN_NULL] = "null", [AVN_BOOLEAN] = "boolean", [AVN_INT] = "int",
        [AVN_LONG] = "long", [AVN_FLOAT] = "float", [AVN_DOUBLE] = "double",
        [AVN_BYTES] = "bytes", [AVN_STRING] = "string", [AVN_RECORD] = "record",
        [AVN_ENUM] = "enum", [AVN_ARRAY] = "array", [AVN_MAP] = "map",
        [AVN_UNION] = "union", [AVN_FIXED] = "fixed",
    };

    return names[n->type];
}

/* ---- the field path, for errors ---------------------------------------- */

static size_t path_push(struct proj *p, const char *fmt, const char *name, size_t idx)
{
    size_t old = p->plen;
    int k;

    if (name)
        k = snprintf(p->path + p->plen, sizeof(p->path) - p->plen, "%s%s",
                     p->plen ? "." : "", name);
    else
        k = snprintf(p->path + p->plen, sizeof(p->path) - p->plen, fmt, idx);
    if (k > 0)
        p->plen = p->plen + (size_t)k < sizeof(p->path) ? p->plen + (size_t)k
                                                         : sizeof(p->path) - 1;
    return old;
}

static void path_pop(struct proj *p, size_t old)
{
    p->plen = old;
    p->path[old] = '\0';
}

#define PROJ_FAIL(p, ...) proj_fail((p), CORE_ERR_INVALID, __VA_ARGS__)

__attribute__((format(printf, 3, 4)))
static int proj_fail(struct proj *p, core_err_t code, const char *fmt, ...)
{
    char msg[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    core_errstr(p->err, p->errsz, "%s: %s", p->plen ? p->path : "(record)", msg);
    p->code = code;
    return -1;
}

static int avro_fail(struct proj *p, int rc)
{
    return proj_fail(p, rc == ENOMEM ? CORE_ERR_NOMEM : CORE_ERR_INVALID, "avro-c: %s",
                     avro_strerror());
}

/* ---- skipping what the reader does not take ----------------------------- */

static void skip(core_avro_fill *f, const struct avn *n)
{
    switch (n->type) {
    case AVN_NULL: return;
    case AVN_BOOLEAN: f->p++; return;
    case AVN_INT: case AVN_LONG: case AVN_ENUM: (void)core_avro_fill_varint_(f); return;
    case AVN_FLOAT: f->p += 4; return;
    case AVN_DOUBLE: f->p += 8; return;
    case AVN_BYTES: case AVN_STRING: f->p += (size_t)core_avro_fill_varint_(f); return;
    case AVN_FIXED: f->p += n->size; return;
    case AVN_UNION: skip(f, n->branches[core_avro_fill_varint_(f)]); return;
    case AVN_RECORD:
        for (size_t i = 0; i < n->nfields; i++)
            skip(f, n->fields[i].type);
        return;
    case AVN_ARRAY: case AVN_MAP:
        for (;;) {
            int64_t count = core_avro_fill_varint_(f);

            if (count == 0)
                return;
            if (count < 0) {
                f->p += (size_t)core_avro_fill_varint_(f); /* the block's size */
                continue;
            }
            for (int64_t i = 0; i < count; i++) {
                if (n->type == AVN_MAP)
                    f->p += (size_t)core_avro_fill_varint_(f);
                skip(f, n->items);
            }
        }
    }
}

/* ---- defaults ------------------------------------------------------------ */

/* A bytes or fixed default: a JSON string whose code points 0..255 are the
 * bytes (the Avro specification's convention). Decoded into buf. */
static int default_bytes(struct proj *p, const cJSON *d, uint8_t **out, size_t *lenp)
{
    const uint8_t *s = (const uint8_t *)d->valuestring;
    size_t n = strlen(d->valuestring), k = 0;
    uint8_t *b = malloc(n ? n : 1);

    if (!b)
        return proj_fail(p, CORE_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            b[k++] = s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n && (s[i + 1] & 0xc0) == 0x80) {
            b[k++] = (uint8_t)((s[i] & 0x03) << 6 | (s[i + 1] & 0x3f));
            i++;
        } else {
            free(b);
            return PROJ_FAIL(p, "the reader's default has a character beyond \\u00ff, "
                             "not a byte");
        }
    }
    *out = b;
    *lenp = k;
    return 0;
}

static int set_default(struct proj *p, const struct avn *n, const cJSON *d, avro_value_t *v);

static int default_record(struct proj *p, const struct avn *n, const cJSON *d, avro_value_t *v)
{
    if (!cJSON_IsObject(d))
        return PROJ_FAIL(p, "the reader's default is not an object");
    for (size_t i = 0; i < n->nfields; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(d, n->fields[i].name);
        size_t old = path_push(p, NULL, n->fields[i].name, 0);
        avro_value_t fv;
        int rc;

        if (!m)
            m = n->fields[i].def;
        if (!m)
            return PROJ_FAIL(p, "not in the reader's default and without a default of its own");
        if ((rc = avro_value_get_by_index(v, i, &fv, NULL)) != 0)
            return avro_fail(p, rc);
        if (set_default(p, n->fields[i].type, m, &fv) != 0)
            return -1;
        path_pop(p, old);
    }
    return 0;
}

/* Fill v (of node n) from a default as the schema's JSON writes it. A
 * union's default is of its first branch. */
static int set_default(struct proj *p, const struct avn *n, const cJSON *d, avro_value_t *v)
{
    int64_t x;
    int rc = 0;

    switch (n->type) {
    case AVN_UNION: {
        avro_value_t b;

        if ((rc = avro_value_set_branch(v, 0, &b)) != 0)
            return avro_fail(p, rc);
        return set_default(p, n->branches[0], d, &b);
    }
    case AVN_NULL:
        if (!cJSON_IsNull(d))
            return PROJ_FAIL(p, "the reader's default is not null");
        rc = avro_value_set_null(v);
        break;
    case AVN_BOOLEAN:
        if (!cJSON_IsBool(d))
            return PROJ_FAIL(p, "the reader's default is not a boolean");
        rc = avro_value_set_boolean(v, cJSON_IsTrue(d));
        break;
    case AVN_INT:
        if (!core_avro_json_int_(d, INT32_MIN, INT32_MAX, &x))
            return PROJ_FAIL(p, "the reader's default is not an int");
        rc = avro_value_set_int(v, (int32_t)x);
        break;
    case AVN_LONG:
        if (!core_avro_json_int_(d, INT64_MIN, INT64_MAX, &x))
            return PROJ_FAIL(p, "the reader's default is not a long");
        rc = avro_value_set_long(v, x);
        break;
    case AVN_FLOAT: case AVN_DOUBLE:
        if (!cJSON_IsNumber(d))
            return PROJ_FAIL(p, "the reader's default is not a number");
        rc = n->type == AVN_FLOAT ? avro_value_set_float(v, (float)d->valuedouble)
                                  : avro_value_set_double(v, d->valuedouble);
        break;
    case AVN_STRING:
        if (!cJSON_IsString(d))
            return PROJ_FAIL(p, "the reader's default is not a string");
        rc = avro_value_set_string(v, d->valuestring);
        break;
    case AVN_BYTES: case AVN_FIXED: {
        uint8_t *b = NULL;
        size_t len = 0;

        if (!cJSON_IsString(d))
            return PROJ_FAIL(p, "the reader's default is not a string of bytes");
        if (default_bytes(p, d, &b, &len) != 0)
            return -1;
        if (n->type == AVN_FIXED && len != n->size) {
            free(b);
            return PROJ_FAIL(p, "the reader's default has %zu bytes, the fixed %zu", len,
                             n->size);
        }
        rc = n->type == AVN_FIXED ? avro_value_set_fixed(v, b, len)
                                  : avro_value_set_bytes(v, b, len);
        free(b);
        break;
    }
    case AVN_ENUM: {
        size_t i = 0;

        while (cJSON_IsString(d) && i < n->nsymbols && strcmp(n->symbols[i], d->valuestring))
            i++;
        if (!cJSON_IsString(d) || i == n->nsymbols)
            return PROJ_FAIL(p, "the reader's default is not a symbol of the enum");
        rc = avro_value_set_enum(v, (int)i);
        break;
    }
    case AVN_ARRAY: {
        const cJSON *it;
        size_t i = 0;

        if (!cJSON_IsArray(d))
            return PROJ_FAIL(p, "the reader's default is not an array");
        cJSON_ArrayForEach(it, d) {
            size_t old = path_push(p, "[%zu]", NULL, i++);
            avro_value_t item;

            if ((rc = avro_value_append(v, &item, NULL)) != 0)
                return avro_fail(p, rc);
            if (set_default(p, n->items, it, &item) != 0)
                return -1;
            path_pop(p, old);
        }
        return 0;
    }
    case AVN_MAP: {
        const cJSON *it;
        size_t i = 0;

        if (!cJSON_IsObject(d))
            return PROJ_FAIL(p, "the reader's default is not an object");
        cJSON_ArrayForEach(it, d) {
            size_t old = path_push(p, "[%zu]", NULL, i++);
            avro_value_t item;

            if ((rc = avro_value_add(v, it->string, &item, NULL, NULL)) != 0)
                return avro_fail(p, rc);
            if (set_default(p, n->items, it, &item) != 0)
                return -1;
            path_pop(p, old);
        }
        return 0;
    }
    case AVN_RECORD:
        return default_record(p, n, d, v);
    }
    return rc ? avro_fail(p, rc) : 0;
}

/* ---- matching types ------------------------------------------------------ */

static const char *short_name(const struct avn *n)
{
    const char *dot = n->fullname ? strrchr(n->fullname, '.') : NULL;

    return dot ? dot + 1 : n->fullname ? n->fullname : "";
}

/* Whether a writer's w (not a union) is read as a reader's r (not a union):
 * 2 the same type (named types: also the same name), 1 readable (a
 * promotion, a named type of another name), 0 not. */
static int match(const struct avn *w, const struct avn *r)
{
    if (w->type == r->type) {
        if (w->type == AVN_FIXED && w->size != r->size)
            return 0;
        if (w->type == AVN_RECORD || w->type == AVN_ENUM || w->type == AVN_FIXED)
            return strcmp(short_name(w), short_name(r)) == 0 ? 2 : 1;
        return 2;
    }
    switch (w->type) {
    case AVN_INT: return r->type == AVN_LONG || r->type == AVN_FLOAT || r->type == AVN_DOUBLE;
    case AVN_LONG: return r->type == AVN_FLOAT || r->type == AVN_DOUBLE;
    case AVN_FLOAT: return r->type == AVN_DOUBLE;
    case AVN_STRING: return r->type == AVN_BYTES;
    case AVN_BYTES: return r->type == AVN_STRING;
    default: return 0;
    }
}

/* The reader's union branch a writer's w goes to: -1 when none takes it. */
static int pick_branch(const struct avn *w, const struct avn *ru)
{
    int best = -1, best_m = 0;

    for (size_t i = 0; i < ru->nbranches; i++) {
        int m = match(w, ru->branches[i]);

        if (m > best_m) {
            best = (int)i;
            best_m = m;
        }
    }
    return best;
}

static int logical_ok(struct proj *p, const struct avn *w, const struct avn *r)
{
    if (w->logical == AVL_DECIMAL && r->logical == AVL_DECIMAL && w->scale != r->scale)
        return PROJ_FAIL(p, "decimal of scale %d written, the reader's has scale %d", w->scale,
                         r->scale);
    if ((w->logical == AVL_TS_MILLIS || w->logical == AVL_TS_MICROS) &&
        (r->logical == AVL_TS_MILLIS || r->logical == AVL_TS_MICROS) && w->logical != r->logical)
        return PROJ_FAIL(p, "timestamp-%s written, the reader's is timestamp-%s",
                         w->logical == AVL_TS_MILLIS ? "millis" : "micros",
                         r->logical == AVL_TS_MILLIS ? "millis" : "micros");
    return 0;
}

/* ---- reading into the reader's value ------------------------------------- */

static int project(struct proj *p, const struct avn *w, const struct avn *r, avro_value_t *v);

static int project_record(struct proj *p, const struct avn *w, const struct avn *r,
                          avro_value_t *v)
{
    size_t i, j;
    int rc;

    /* writer's fields in the writer's order (that is how the bytes come) */
    for (i = 0; i < w->nfields; i++) {
        const char *name = w->fields[i].name;

        /* look from the same position first: versions mostly append fields */
        for (j = 0; j < r->nfields && strcmp(r->fields[(i + j) % r->nfields].name, name); j++)
            ;
        if (j == r->nfields) {
            skip(&p->f, w->fields[i].type); /* the reader dropped the field */
        } else {
            size_t ri = (i + j) % r->nfields, old = path_push(p, NULL, name, 0);
            avro_value_t fv;

            if ((rc = avro_value_get_by_index(v, ri, &fv, NULL)) != 0)
                return avro_fail(p, rc);
            if (project(p, w->fields[i].type, r->fields[ri].type, &fv) != 0)
                return -1;
            path_pop(p, old);
        }
    }
    /* reader's fields the writer lacks: their defaults */
    for (i = 0; i < r->nfields; i++) {
        const char *name = r->fields[i].name;
        size_t old;
        avro_value_t fv;

        for (j = 0; j < w->nfields && strcmp(w->fields[(i + j) % w->nfields].name, name); j++)
            ;
        if (j < w->nfields)
            continue;
        old = path_push(p, NULL, name, 0);
        if (!r->fields[i].def)
            return PROJ_FAIL(p, "not in the writer's schema, and the reader's has no default");
        if ((rc = avro_value_get_by_index(v, i, &fv, NULL)) != 0)
            return avro_fail(p, rc);
        if (set_default(p, r->fields[i].type, r->fields[i].def, &fv) != 0)
            return -1;
        path_pop(p, old);
    }
    return 0;
}

static int project_items(struct proj *p, const struct avn *w, const struct avn *r,
                         avro_value_t *v)
{
    size_t idx = 0;
    int rc;

    for (;;) {
        int64_t count = core_avro_fill_varint_(&p->f);

        if (count == 0)
            return 0;
        if (count < 0) {
            count = -count;
            (void)core_avro_fill_varint_(&p->f); /* the block's size */
        }
        for (int64_t i = 0; i < count; i++) {
            size_t old = path_push(p, "[%zu]", NULL, idx++);
            avro_value_t item;

            if (w->type == AVN_MAP) {
                size_t klen = (size_t)core_avro_fill_varint_(&p->f);
                const char *key = core_avro_fill_cstr_(&p->f, klen);

                if (!key)
                    return proj_fail(p, CORE_ERR_NOMEM, "out of memory");
                rc = avro_value_add(v, key, &item, NULL, NULL);
            } else {
                rc = avro_value_append(v, &item, NULL);
            }
            if (rc != 0)
                return avro_fail(p, rc);
            if (project(p, w->items, r->items, &item) != 0)
                return -1;
            path_pop(p, old);
        }
    }
}

static int project(struct proj *p, const struct avn *w, const struct avn *r, avro_value_t *v)
{
    int rc;

    if (w->type == AVN_UNION) /* the branch written, on its own */
        return project(p, w->branches[core_avro_fill_varint_(&p->f)], r, v);
    if (r->type == AVN_UNION) {
        int b = pick_branch(w, r);
        avro_value_t bv;

        if (b < 0)
            return PROJ_FAIL(p, "written as %s, which no branch of the reader's union takes",
                             type_name(w));
        if ((rc = avro_value_set_branch(v, b, &bv)) != 0)
            return avro_fail(p, rc);
        return project(p, w, r->branches[b], &bv);
    }
    if (!match(w, r))
        return PROJ_FAIL(p, "written as %s, the reader's schema has %s", type_name(w),
                         type_name(r));
    if (logical_ok(p, w, r) != 0)
        return -1;
    switch (w->type) {
    case AVN_INT: case AVN_LONG: {
        int64_t x = core_avro_fill_varint_(&p->f);

        rc = r->type == AVN_INT ? avro_value_set_int(v, (int32_t)x)
           : r->type == AVN_LONG ? avro_value_set_long(v, x)
           : r->type == AVN_FLOAT ? avro_value_set_float(v, (float)x)
           : avro_value_set_double(v, (double)x);
        break;
    }
    case AVN_FLOAT: {
        uint32_t u = (uint32_t)p->f.p[0] | (uint32_t)p->f.p[1] << 8 |
                     (uint32_t)p->f.p[2] << 16 | (uint32_t)p->f.p[3] << 24;
        float fl;

        memcpy(&fl, &u, sizeof(fl));
        p->f.p += 4;
        rc = r->type == AVN_FLOAT ? avro_value_set_float(v, fl)
                                  : avro_value_set_double(v, (double)fl);
        break;
    }
    case AVN_BYTES: case AVN_STRING: {
        size_t len = (size_t)core_avro_fill_varint_(&p->f);
        const uint8_t *b = p->f.p;

        if (r->type == AVN_BYTES) {
            p->f.p += len;
            rc = avro_value_set_bytes(v, (void *)b, len);
        } else {
            const char *s;

            if (w->type == AVN_BYTES && !core_avro_utf8_valid(b, len))
                return PROJ_FAIL(p, "bytes written are not valid UTF-8 without NUL, as the "
                                 "reader's string must be");
            if (!(s = core_avro_fill_cstr_(&p->f, len)))
                return proj_fail(p, CORE_ERR_NOMEM, "out of memory");
            rc = avro_value_set_string_len(v, s, len + 1);
        }
        break;
    }
    case AVN_ENUM: {
        const char *sym = w->symbols[core_avro_fill_varint_(&p->f)];
        size_t i = 0;

        while (i < r->nsymbols && strcmp(r->symbols[i], sym))
            i++;
        if (i == r->nsymbols) {
            if (r->enum_default < 0)
                return PROJ_FAIL(p, "symbol %s is not in the reader's enum %s, which has no "
                                 "default", sym, r->fullname);
            i = (size_t)r->enum_default;
        }
        rc = avro_value_set_enum(v, (int)i);
        break;
    }
    case AVN_RECORD:
        return project_record(p, w, r, v);
    case AVN_ARRAY: case AVN_MAP:
        return project_items(p, w, r, v);
    default: /* null, boolean, double, fixed: the same type, as written */
        rc = core_avro_fill_node_(&p->f, w, v);
        break;
    }
    return rc ? avro_fail(p, rc) : 0;
}

/* ---- entry points ---------------------------------------------------------- */

const core_avro_schema_t *core_avro_reader_of_(const core_avro_catalog_t *cat,
                                               const core_avro_schema_t *w)
{
    const core_avro_schema_t *r = w->dataset ? core_avro_catalog_by_dataset(cat, w->dataset)
                                             : NULL;

    return r ? r : w;
}

bool core_avro_same_layout_(const core_avro_schema_t *w, const core_avro_schema_t *r)
{
    /* the same text (avro-c's avro_schema_equal() ignores logical types and
     * defaults: a decimal of another scale would pass) */
    return w == r || cJSON_Compare(w->json, r->json, true);
}

core_err_t core_avro_project_(const core_avro_schema_t *w, const core_avro_schema_t *r,
                              const uint8_t *body, avro_value_t *rv,
                              core_avro_scratch *scratch, char *errstr, size_t errstr_size)
{
    struct proj p = { .f = { body, scratch }, .err = errstr, .errsz = errstr_size,
                      .code = CORE_OK };

    if (project(&p, w->root, r->root, rv) != 0) {
        if (p.code == CORE_OK) /* never: every failure sets it */
            p.code = CORE_ERR_INVALID;
        /* say which schemas: the field path alone does not */
        if (errstr && errstr_size) {
            char msg[512];

            snprintf(msg, sizeof(msg), "%s", errstr);
            core_errstr(errstr, errstr_size, "%s read as %s: %s", w->file, r->file, msg);
        }
        return p.code;
    }
    return CORE_OK;
}
