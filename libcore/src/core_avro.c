/* core_avro.c — the schema catalogue: loading proto/, compiling schemas,
 * rules files, lookups, and the key/meta helpers of dataset records.
 * Wire format: core_avro_wire.c. Natural JSON: core_avro_json.c. */
#include "core_avro_int.h"
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_FULLNAME "tributary.Meta"
/* Nesting of the schema JSON itself (guards the compiler's recursion). */
#define SCHEMA_MAX_NESTING 64

/* ---- small helpers ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

/* Avro name: [A-Za-z_][A-Za-z0-9_]* */
static bool name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* Full name: dot-separated names. */
static bool fullname_ok(const char *s)
{
    char buf[512];
    char *save = NULL, *tok;
    size_t n = strlen(s);

    if (n == 0 || n >= sizeof(buf) || s[0] == '.' || s[n - 1] == '.' ||
        strstr(s, ".."))
        return false;
    memcpy(buf, s, n + 1);
    for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
        if (!name_ok(tok))
            return false;
    return true;
}

static bool dataset_name_ok(const char *s)
{
    size_t n = 0;

    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++, n++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return n <= 64;
}

static const char *json_type_name(const cJSON *j)
{
    if (!j) return "nothing";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "a raw value";
}

/* Integer value of a JSON number, when it is one within [lo, hi]. */
static bool json_int(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    double d;

    if (cJSON_IsRaw(j)) { /* a number as core_json_parse() keeps it: its text */
        core_number n;

        return core_number_parse(j->valuestring, &n) == CORE_OK &&
               core_number_int64(&n, lo, hi, out);
    }
    if (!cJSON_IsNumber(j))
        return false;
    d = j->valuedouble;
    if (d != d || d < (double)lo || d > (double)hi || d != (double)(int64_t)d)
        return false;
    *out = (int64_t)d;
    return true;
}

/* Parse JSON text, reporting where it broke. */
static cJSON *parse_json(const char *text, size_t len, const char *file,
                         char *errstr, size_t errstr_size)
{
    cJSON *j;
    const char *end = NULL;

    j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= text && at <= text + len) ? (size_t)(at - text) : 0;
        core_errstr(errstr, errstr_size, "%s: JSON syntax error near byte %zu",
                    file, off);
        return NULL;
    }
    return j;
}

/* ---- schema compiler ---------------------------------------------------- */

struct cctx {
    core_avro_schema_t *s;
    const core_avro_catalog_t *resolver; /* inline named schemas from it */
    const char *file;
    char *err;
    size_t errsz;
    char **names;                        /* full names defined so far */
    struct avn **named;
    size_t nnames, capnames;
    int nesting;
};

static struct avn *node_new(struct cctx *c, avn_type t)
{
    struct avn *n = calloc(1, sizeof(*n));

    if (!n) {
        core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
        return NULL;
    }
    n->type = t;
    n->next_alloc = c->s->nodes;
    c->s->nodes = n;
    switch (t) {
    case AVN_NULL: n->min_size = 0; break;
    case AVN_FLOAT: n->min_size = 4; break;
    case AVN_DOUBLE: n->min_size = 8; break;
    default: n->min_size = 1; break;
    }
    return n;
}

static void nodes_free(struct avn *n)
{
    while (n) {
        struct avn *next = n->next_alloc;
        size_t i;

        for (i = 0; i < n->nfields; i++)
            free(n->fields[i].name);
        free(n->fields);
        for (i = 0; i < n->nsymbols; i++)
            free(n->symbols[i]);
        free(n->symbols);
        free(n->branches);
        free(n->fullname);
        free(n);
        n = next;
    }
}

static struct avn *name_lookup(struct cctx *c, const char *fullname)
{
    size_t i;

    for (i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], fullname) == 0)
            return c->named[i];
    return NULL;
}

/* Resolve the full name of a type reference or definition. */
static int make_fullname(const char *name, const char *ns, char *out, size_t size)
{
    int n;

    if (strchr(name, '.') || !ns || !*ns)
        n = snprintf(out, size, "%s", name);
    else
        n = snprintf(out, size, "%s.%s", ns, name);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

static int name_define(struct cctx *c, const char *fullname, struct avn *n)
{
    if (name_lookup(c, fullname)) {
        core_errstr(c->err, c->errsz, "%s: type %s is defined twice", c->file,
                    fullname);
        return -1;
    }
    if (c->nnames == c->capnames) {
        size_t cap = c->capnames ? c->capnames * 2 : 16;
        char **nn = realloc(c->names, cap * sizeof(*nn));
        struct avn **nd;

        if (!nn)
            goto nomem;
        c->names = nn;
        nd = realloc(c->named, cap * sizeof(*nd));
        if (!nd)
            goto nomem;
        c->named = nd;
        c->capnames = cap;
    }
    if (!(n->fullname = xstrdup(fullname)))
        goto nomem;
    c->names[c->nnames] = n->fullname;
    c->named[c->nnames++] = n;
    return 0;
nomem:
    core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
    return -1;
}

static const core_avro_schema_t *catalog_find_name(const core_avro_catalog_t *cat,
                                                   const char *fullname);

static int add_personal(core_avro_schema_t *s, const char *name)
{
    size_t i;
    char **np;

    for (i = 0; i < s->npersonal; i++)
        if (strcmp(s->personal[i], name) == 0)
            return 0;
    np = realloc(s->personal, (s->npersonal + 1) * sizeof(*np));
    if (!np)
        return -1;
    s->personal = np;
    if (!(np[s->npersonal] = xstrdup(name)))
        return -1;
    s->npersonal++;
    return 0;
}

static struct avn *compile(struct cctx *c, cJSON *parent, cJSON *item,
                           const char *ns, const char *where);

static const struct { const char *name; avn_type type; } primitives[] = {
    { "null", AVN_NULL }, { "boolean", AVN_BOOLEAN }, { "int", AVN_INT },
    { "long", AVN_LONG }, { "float", AVN_FLOAT }, { "double", AVN_DOUBLE },
    { "bytes", AVN_BYTES }, { "string", AVN_STRING },
};

static int primitive_type(const char *s, avn_type *t)
{
    size_t i;

    for (i = 0; i < CORE_ARRAY_SIZE(primitives); i++)
        if (strcmp(primitives[i].name, s) == 0) {
            *t = primitives[i].type;
            return 0;
        }
    return -1;
}

/* A type given by name: primitive, defined earlier, or a catalogue schema
 * that is inlined here (its JSON replaces the reference in parent). */
static struct avn *compile_ref(struct cctx *c, cJSON *parent, cJSON *item,
                               const char *ns, const char *where)
{
    const char *ref = item->valuestring;
    char full[512];
    avn_type t;
    struct avn *n;
    const core_avro_schema_t *ext;
    cJSON *dup;

    if (primitive_type(ref, &t) == 0)
        return node_new(c, t);
    if (make_fullname(ref, ns, full, sizeof(full)) != 0) {
        core_errstr(c->err, c->errsz, "%s: %s: type name too long", c->file, where);
        return NULL;
    }
    if ((n = name_lookup(c, full)) || (n = name_lookup(c, ref)))
        return n;
    ext = c->resolver ? catalog_find_name(c->resolver, full) : NULL;
    if (!ext && c->resolver)
        ext = catalog_find_name(c->resolver, ref);
    if (!ext) {
        core_errstr(c->err, c->errsz, "%s: %s: unknown type '%s'", c->file,
                    where, ref);
        return NULL;
    }
    if (!parent) {
        core_errstr(c->err, c->errsz, "%s: the top-level type cannot be a reference",
                    c->file);
        return NULL;
    }
    /* Inline the definition at its first use: avro-c resolves names only
     * within one document. Later uses find the name defined. */
    if (!(dup = cJSON_Duplicate(ext->json, 1))) {
        core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
        return NULL;
    }
    if (item->string) {
        char key[256];

        snprintf(key, sizeof(key), "%s", item->string);
        if (!cJSON_ReplaceItemInObjectCaseSensitive(parent, key, dup)) {
            cJSON_Delete(dup);
            core_errstr(c->err, c->errsz, "%s: cannot inline %s", c->file, ref);
            return NULL;
        }
    } else if (!cJSON_ReplaceItemViaPointer(parent, item, dup)) {
        cJSON_Delete(dup);
        core_errstr(c->err, c->errsz, "%s: cannot inline %s", c->file, ref);
        return NULL;
    }
    return compile(c, parent, dup, ns, where);
}

static int compile_logical(struct cctx *c, cJSON *obj, struct avn *n,
                           const char *where)
{
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(obj, "logicalType");
    const char *s;

    if (!lt)
        return 0;
    if (!cJSON_IsString(lt)) {
        core_errstr(c->err, c->errsz, "%s: %s: logicalType must be a string",
                    c->file, where);
        return -1;
    }
    s = lt->valuestring;
    if (strcmp(s, "decimal") == 0) {
        int64_t p, sc = 0;
        const cJSON *jp = cJSON_GetObjectItemCaseSensitive(obj, "precision");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(obj, "scale");

        if (n->type != AVN_BYTES && n->type != AVN_FIXED) {
            core_errstr(c->err, c->errsz, "%s: %s: decimal needs bytes or fixed",
                        c->file, where);
            return -1;
        }
        if (!json_int(jp, 1, CORE_AVRO_DECIMAL_MAX_PRECISION, &p)) {
            core_errstr(c->err, c->errsz,
                        "%s: %s: decimal precision must be an integer in 1..%d",
                        c->file, where, CORE_AVRO_DECIMAL_MAX_PRECISION);
            return -1;
        }
        if (js && !json_int(js, 0, p, &sc)) {
            core_errstr(c->err, c->errsz,
                        "%s: %s: decimal scale must be an integer in 0..%lld",
                        c->file, where, (long long)p);
            return -1;
        }
        n->logical = AVL_DECIMAL;
        n->precision = (int)p;
        n->scale = (int)sc;
    } else if (strcmp(s, "timestamp-millis") == 0 ||
               strcmp(s, "timestamp-micros") == 0) {
        if (n->type != AVN_LONG) {
            core_errstr(c->err, c->errsz, "%s: %s: %s needs long", c->file,
                        where, s);
            return -1;
        }
        n->logical = strcmp(s, "timestamp-millis") == 0 ? AVL_TS_MILLIS : AVL_TS_MICROS;
    } else if (strcmp(s, "date") == 0) {
        if (n->type != AVN_INT) {
            core_errstr(c->err, c->errsz, "%s: %s: date needs int", c->file, where);
            return -1;
        }
        n->logical = AVL_DATE;
    }
    /* Other logical types (uuid, time-*) read as their underlying type. */
    return 0;
}

static int check_default(struct cctx *c, const struct avn *t, const cJSON *d,
                         const char *where)
{
    bool ok;
    size_t i;

    if (t->type == AVN_UNION)
        return check_default(c, t->branches[0], d, where);
    switch (t->type) {
    case AVN_NULL: ok = cJSON_IsNull(d); break;
    case AVN_BOOLEAN: ok = cJSON_IsBool(d); break;
    case AVN_INT: case AVN_LONG:
        /* an integer, and one a double holds exactly: cJSON read the
         * schema's digits into one (9007199254740993 would be ...992) */
        ok = cJSON_IsNumber(d) && d->valuedouble == floor(d->valuedouble) &&
             fabs(d->valuedouble) < 9007199254740992.0 &&
             (t->type == AVN_LONG || (d->valuedouble >= INT32_MIN && d->valuedouble <= INT32_MAX));
        if (cJSON_IsNumber(d) && !ok) {
            core_errstr(c->err, c->errsz, "%s: %s: default is not an integer of the type, or "
                        "beyond 2^53 where JSON numbers are not exact", c->file, where);
            return -1;
        }
        break;
    case AVN_FLOAT: case AVN_DOUBLE:
        ok = cJSON_IsNumber(d); break;
    case AVN_BYTES: case AVN_STRING: case AVN_FIXED:
        ok = cJSON_IsString(d); break;
    case AVN_ENUM:
        ok = false;
        if (cJSON_IsString(d))
            for (i = 0; i < t->nsymbols && !ok; i++)
                ok = strcmp(t->symbols[i], d->valuestring) == 0;
        break;
    case AVN_ARRAY: ok = cJSON_IsArray(d); break;
    case AVN_MAP: case AVN_RECORD: ok = cJSON_IsObject(d); break;
    default: ok = false; break;
    }
    if (!ok) {
        core_errstr(c->err, c->errsz, "%s: %s: default value does not match the type"
                    " (for a union: its first branch)", c->file, where);
        return -1;
    }
    return 0;
}

static struct avn *compile_record(struct cctx *c, cJSON *obj, const char *ns,
                                  const char *full, const char *where)
{
    struct avn *n = node_new(c, AVN_RECORD);
    cJSON *fields = cJSON_GetObjectItemCaseSensitive(obj, "fields");
    cJSON *f;
    const char *dot = strrchr(full, '.');
    char myns[512];
    size_t i = 0, nf, total = 0;

    (void)ns;
    if (!n || name_define(c, full, n) != 0)
        return NULL;
    n->min_size = 0; /* provisional while the fields are compiled (cycles) */
    snprintf(myns, sizeof(myns), "%.*s", dot ? (int)(dot - full) : 0, full);
    if (!cJSON_IsArray(fields)) {
        core_errstr(c->err, c->errsz, "%s: record %s: \"fields\" must be an array",
                    c->file, full);
        return NULL;
    }
    nf = (size_t)cJSON_GetArraySize(fields);
    n->fields = calloc(nf ? nf : 1, sizeof(*n->fields));
    if (!n->fields) {
        core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
        return NULL;
    }
    (void)where;
    cJSON_ArrayForEach(f, fields) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
        const cJSON *pers = cJSON_GetObjectItemCaseSensitive(f, "tb.personal");
        struct avn_field *fld = &n->fields[i];
        char fwhere[600];
        size_t j;

        if (!cJSON_IsObject(f) || !cJSON_IsString(fn) || !name_ok(fn->valuestring)) {
            core_errstr(c->err, c->errsz,
                        "%s: record %s: field %zu needs a valid \"name\"",
                        c->file, full, i);
            return NULL;
        }
        for (j = 0; j < i; j++)
            if (strcmp(n->fields[j].name, fn->valuestring) == 0) {
                core_errstr(c->err, c->errsz, "%s: record %s: field %s appears twice",
                            c->file, full, fn->valuestring);
                return NULL;
            }
        snprintf(fwhere, sizeof(fwhere), "field %s.%s", full, fn->valuestring);
        if (!ft) {
            core_errstr(c->err, c->errsz, "%s: %s has no type", c->file, fwhere);
            return NULL;
        }
        if (!(fld->name = xstrdup(fn->valuestring))) {
            core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
            return NULL;
        }
        n->nfields = ++i;
        if (!(fld->type = compile(c, f, ft, myns, fwhere)))
            return NULL;
        fld->def = cJSON_GetObjectItemCaseSensitive(f, "default");
        if (fld->def && check_default(c, fld->type, fld->def, fwhere) != 0)
            return NULL;
        if (pers) {
            if (!cJSON_IsBool(pers)) {
                core_errstr(c->err, c->errsz, "%s: %s: tb.personal must be true or false",
                            c->file, fwhere);
                return NULL;
            }
            fld->personal = cJSON_IsTrue(pers);
            if (fld->personal && add_personal(c->s, fld->name) != 0) {
                core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
                return NULL;
            }
        }
        total += fld->type->min_size;
    }
    n->min_size = total;
    return n;
}

static struct avn *compile_named(struct cctx *c, cJSON *obj, const char *tname,
                                 const char *ns, const char *where)
{
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *jns = cJSON_GetObjectItemCaseSensitive(obj, "namespace");
    char full[512];
    const char *usens = ns;
    struct avn *n;

    if (!cJSON_IsString(jn) || !fullname_ok(jn->valuestring)) {
        core_errstr(c->err, c->errsz, "%s: %s: %s needs a valid \"name\"", c->file,
                    where, tname);
        return NULL;
    }
    if (jns && !cJSON_IsNull(jns)) {
        if (!cJSON_IsString(jns) || (*jns->valuestring && !fullname_ok(jns->valuestring))) {
            core_errstr(c->err, c->errsz, "%s: %s: invalid namespace", c->file, where);
            return NULL;
        }
        usens = jns->valuestring;
    }
    if (make_fullname(jn->valuestring, usens, full, sizeof(full)) != 0) {
        core_errstr(c->err, c->errsz, "%s: %s: name too long", c->file, where);
        return NULL;
    }
    if (strcmp(tname, "record") == 0 || strcmp(tname, "error") == 0)
        return compile_record(c, obj, usens, full, where);
    if (strcmp(tname, "enum") == 0) {
        const cJSON *syms = cJSON_GetObjectItemCaseSensitive(obj, "symbols");
        const cJSON *sy;
        size_t i = 0;

        if (!(n = node_new(c, AVN_ENUM)) || name_define(c, full, n) != 0)
            return NULL;
        if (!cJSON_IsArray(syms) || cJSON_GetArraySize(syms) == 0) {
            core_errstr(c->err, c->errsz, "%s: enum %s: \"symbols\" must be a non-empty array",
                        c->file, full);
            return NULL;
        }
        n->symbols = calloc((size_t)cJSON_GetArraySize(syms), sizeof(char *));
        if (!n->symbols) {
            core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
            return NULL;
        }
        cJSON_ArrayForEach(sy, syms) {
            size_t j;

            if (!cJSON_IsString(sy) || !name_ok(sy->valuestring)) {
                core_errstr(c->err, c->errsz, "%s: enum %s: symbol %zu is not a valid name",
                            c->file, full, i);
                return NULL;
            }
            for (j = 0; j < i; j++)
                if (strcmp(n->symbols[j], sy->valuestring) == 0) {
                    core_errstr(c->err, c->errsz, "%s: enum %s: symbol %s appears twice",
                                c->file, full, sy->valuestring);
                    return NULL;
                }
            if (!(n->symbols[i] = xstrdup(sy->valuestring))) {
                core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
                return NULL;
            }
            n->nsymbols = ++i;
        }
        return n;
    }
    /* fixed */
    {
        int64_t sz;

        if (!(n = node_new(c, AVN_FIXED)) || name_define(c, full, n) != 0)
            return NULL;
        if (!json_int(cJSON_GetObjectItemCaseSensitive(obj, "size"), 0, 1 << 20, &sz)) {
            core_errstr(c->err, c->errsz, "%s: fixed %s: \"size\" must be an integer in 0..%d",
                        c->file, full, 1 << 20);
            return NULL;
        }
        n->size = (size_t)sz;
        n->min_size = n->size;
        if (compile_logical(c, obj, n, where) != 0)
            return NULL;
        return n;
    }
}

static struct avn *compile_union(struct cctx *c, cJSON *arr, const char *ns,
                                 const char *where)
{
    struct avn *n = node_new(c, AVN_UNION);
    size_t nb = (size_t)cJSON_GetArraySize(arr), i, j, minb = SIZE_MAX;
    cJSON *b, *next;

    if (!n)
        return NULL;
    if (nb == 0) {
        core_errstr(c->err, c->errsz, "%s: %s: empty union", c->file, where);
        return NULL;
    }
    if (!(n->branches = calloc(nb, sizeof(*n->branches)))) {
        core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
        return NULL;
    }
    i = 0;
    /* compile() may replace b in arr (inlining): take next first. */
    for (b = arr->child; b; b = next, i++) {
        struct avn *bn;

        next = b->next;
        if (!(bn = compile(c, arr, b, ns, where)))
            return NULL;
        if (bn->type == AVN_UNION) {
            core_errstr(c->err, c->errsz, "%s: %s: a union cannot hold a union",
                        c->file, where);
            return NULL;
        }
        for (j = 0; j < i; j++) {
            const struct avn *o = n->branches[j];

            if (o->type == bn->type &&
                (!o->fullname || !bn->fullname || strcmp(o->fullname, bn->fullname) == 0)) {
                core_errstr(c->err, c->errsz, "%s: %s: union holds the same type twice",
                            c->file, where);
                return NULL;
            }
        }
        n->branches[i] = bn;
        n->nbranches = i + 1;
        if (bn->min_size < minb)
            minb = bn->min_size;
    }
    n->min_size = 1 + minb;
    return n;
}

static struct avn *compile(struct cctx *c, cJSON *parent, cJSON *item,
                           const char *ns, const char *where)
{
    struct avn *n = NULL;
    const cJSON *jt;

    if (++c->nesting > SCHEMA_MAX_NESTING) {
        core_errstr(c->err, c->errsz, "%s: %s: schema nested deeper than %d",
                    c->file, where, SCHEMA_MAX_NESTING);
        goto out;
    }
    if (cJSON_IsString(item)) {
        n = compile_ref(c, parent, item, ns, where);
        goto out;
    }
    if (cJSON_IsArray(item)) {
        n = compile_union(c, item, ns, where);
        goto out;
    }
    if (!cJSON_IsObject(item)) {
        core_errstr(c->err, c->errsz, "%s: %s: a type must be a name, an object or"
                    " an array, not %s", c->file, where, json_type_name(item));
        goto out;
    }
    jt = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (cJSON_IsString(jt)) {
        const char *t = jt->valuestring;
        avn_type pt;

        if (primitive_type(t, &pt) == 0) {
            if ((n = node_new(c, pt)) && compile_logical(c, item, n, where) != 0)
                n = NULL;
        } else if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0 ||
                   strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0) {
            n = compile_named(c, item, t, ns, where);
        } else if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
            bool arr = t[0] == 'a';
            cJSON *it = cJSON_GetObjectItemCaseSensitive(item, arr ? "items" : "values");

            if (!it) {
                core_errstr(c->err, c->errsz, "%s: %s: %s needs \"%s\"", c->file,
                            where, t, arr ? "items" : "values");
                goto out;
            }
            if ((n = node_new(c, arr ? AVN_ARRAY : AVN_MAP)) &&
                !(n->items = compile(c, item, it, ns, where)))
                n = NULL;
        } else {
            /* {"type": "some.Name"}: a reference in object form */
            n = compile_ref(c, item, (cJSON *)jt, ns, where);
        }
    } else if (jt) {
        n = compile(c, item, (cJSON *)jt, ns, where);
    } else {
        core_errstr(c->err, c->errsz, "%s: %s: type object without \"type\"",
                    c->file, where);
    }
out:
    c->nesting--;
    return n;
}

/* ---- schema handles ----------------------------------------------------- */

void core_avro_schema_free(core_avro_schema_t *s)
{
    size_t i;

    if (!s)
        return;
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->avro)
        avro_schema_decref(s->avro);
    cJSON_Delete(s->json);
    cJSON_Delete(s->rules);
    nodes_free(s->nodes);
    for (i = 0; i < s->npersonal; i++)
        free(s->personal[i]);
    free(s->personal);
    free(s->name);
    free(s->dataset);
    free(s->file);
    free(s->key_field);
    free(s);
}

static int find_field(const struct avn *rec, const char *name)
{
    size_t i;

    for (i = 0; i < rec->nfields; i++)
        if (strcmp(rec->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The dataset rules: meta first, Meta fields of the expected shape. */
static int check_dataset(core_avro_schema_t *s, char *errstr, size_t errstr_size)
{
    static const struct { const char *name; avn_type type; } want[AVM__COUNT] = {
        [AVM_ID] = { "id", AVN_STRING }, [AVM_OP] = { "op", AVN_ENUM },
        [AVM_KIND] = { "kind", AVN_ENUM }, [AVM_SOURCE] = { "source", AVN_STRING },
        [AVM_BATCH_ID] = { "batch_id", AVN_STRING }, [AVM_SEQ] = { "seq", AVN_LONG },
        [AVM_EVENT_TIME] = { "event_time", AVN_LONG },
        [AVM_VERSION] = { "version", AVN_LONG }, [AVM_OLD_KEY] = { "old_key", AVN_UNION },
    };
    static const char *const ops[] = { "ADD", "UPDATE", "DELETE" };
    static const char *const kinds[] = { "BULK", "CHANGE" };
    const struct avn *r = s->root, *m;
    size_t i;

    if (!dataset_name_ok(s->dataset)) {
        core_errstr(errstr, errstr_size,
                    "%s: dataset name '%s' must match [a-z][a-z0-9_]{0,63}",
                    s->file, s->dataset);
        return -1;
    }
    if (r->type != AVN_RECORD || r->nfields == 0 ||
        strcmp(r->fields[0].name, "meta") != 0) {
        core_errstr(errstr, errstr_size,
                    "%s: a dataset schema must be a record whose first field is meta",
                    s->file);
        return -1;
    }
    m = r->fields[0].type;
    if (m->type != AVN_RECORD || !m->fullname || strcmp(m->fullname, META_FULLNAME) != 0) {
        core_errstr(errstr, errstr_size, "%s: field meta must be of type %s",
                    s->file, META_FULLNAME);
        return -1;
    }
    for (i = 0; i < AVM__COUNT; i++) {
        int fi = find_field(m, want[i].name);

        if (fi < 0 || m->fields[fi].type->type != want[i].type) {
            core_errstr(errstr, errstr_size, "%s: %s.%s missing or of the wrong type",
                        s->file, META_FULLNAME, want[i].name);
            return -1;
        }
        s->meta_fields[i] = fi;
    }
    {
        const struct avn *op = m->fields[s->meta_fields[AVM_OP]].type;
        const struct avn *kd = m->fields[s->meta_fields[AVM_KIND]].type;
        const struct avn *ok = m->fields[s->meta_fields[AVM_OLD_KEY]].type;
        bool good = op->nsymbols == 3 && kd->nsymbols == 2 && ok->nbranches == 2 &&
                    ok->branches[0]->type == AVN_NULL &&
                    ok->branches[1]->type == AVN_STRING;

        for (i = 0; good && i < 3; i++)
            good = strcmp(op->symbols[i], ops[i]) == 0;
        for (i = 0; good && i < 2; i++)
            good = strcmp(kd->symbols[i], kinds[i]) == 0;
        if (!good) {
            core_errstr(errstr, errstr_size,
                        "%s: %s: op must be enum [ADD, UPDATE, DELETE], kind [BULK, CHANGE],"
                        " old_key [\"null\", \"string\"]", s->file, META_FULLNAME);
            return -1;
        }
    }
    s->meta_index = 0;
    if (!s->key_field) {
        core_errstr(errstr, errstr_size, "%s: a dataset schema needs \"tb.key\"", s->file);
        return -1;
    }
    return 0;
}

/* Compile, hand to avro-c, check tb.key; dataset checks when dataset. Takes
 * json in every case. */
static core_avro_schema_t *schema_build(cJSON *json, const char *file, uint32_t id,
                                        const char *dataset,
                                        const core_avro_catalog_t *resolver,
                                        char *errstr, size_t errstr_size)
{
    core_avro_schema_t *s = calloc(1, sizeof(*s));
    struct cctx c = { 0 };
    char *text = NULL;
    const cJSON *jkey;
    size_t i;

    if (!s || !(s->file = xstrdup(file)) ||
        (dataset && !(s->dataset = xstrdup(dataset)))) {
        core_errstr(errstr, errstr_size, "%s: out of memory", file);
        cJSON_Delete(json);
        core_avro_schema_free(s);
        return NULL;
    }
    s->json = json;
    s->id = id;
    s->key_index = -1;
    s->meta_index = -1;
    for (i = 0; i < AVM__COUNT; i++)
        s->meta_fields[i] = -1;
    c.s = s;
    c.resolver = resolver;
    c.file = file;
    c.err = errstr;
    c.errsz = errstr_size;
    if (!cJSON_IsObject(json) && !cJSON_IsArray(json) && !cJSON_IsString(json)) {
        core_errstr(errstr, errstr_size, "%s: a schema must be a JSON object", file);
        goto fail;
    }
    if (!(s->root = compile(&c, NULL, json, "", "schema")))
        goto fail;
    if (!(s->name = xstrdup(s->root->fullname ? s->root->fullname : "")))
        goto nomem;

    jkey = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "tb.key") : NULL;
    if (jkey) {
        int fi;

        if (!cJSON_IsString(jkey) || s->root->type != AVN_RECORD) {
            core_errstr(errstr, errstr_size, "%s: tb.key must be a field name of the record",
                        file);
            goto fail;
        }
        if ((fi = find_field(s->root, jkey->valuestring)) < 0) {
            core_errstr(errstr, errstr_size, "%s: tb.key names '%s', which is not a field of %s",
                        file, jkey->valuestring, s->name);
            goto fail;
        }
        if (s->root->fields[fi].type->type != AVN_STRING) {
            core_errstr(errstr, errstr_size, "%s: tb.key field '%s' must be of type string",
                        file, jkey->valuestring);
            goto fail;
        }
        s->key_index = fi;
        if (!(s->key_field = xstrdup(jkey->valuestring)))
            goto nomem;
    }
    if (dataset && check_dataset(s, errstr, errstr_size) != 0)
        goto fail;

    if (!(text = cJSON_PrintUnformatted(json)))
        goto nomem;
    if (avro_schema_from_json_length(text, strlen(text), &s->avro) != 0) {
        core_errstr(errstr, errstr_size, "%s: avro-c refused the schema: %s", file,
                    avro_strerror());
        s->avro = NULL;
        goto fail;
    }
    if (!(s->iface = avro_generic_class_from_schema(s->avro))) {
        core_errstr(errstr, errstr_size, "%s: avro-c cannot build a value class: %s",
                    file, avro_strerror());
        goto fail;
    }
    free(text);
    free(c.names);
    free(c.named);
    return s;
nomem:
    core_errstr(errstr, errstr_size, "%s: out of memory", file);
fail:
    free(text);
    free(c.names);
    free(c.named);
    core_avro_schema_free(s);
    return NULL;
}

core_avro_schema_t *core_avro_schema_new(const char *json, size_t json_len,
                                         uint32_t id, char *errstr,
                                         size_t errstr_size)
{
    cJSON *j;

    if (!json) {
        core_errstr(errstr, errstr_size, "schema: no JSON given");
        return NULL;
    }
    if (json_len > CORE_AVRO_MAX_FILE) {
        core_errstr(errstr, errstr_size, "schema: %zu bytes exceeds the limit of %u",
                    json_len, CORE_AVRO_MAX_FILE);
        return NULL;
    }
    if (!(j = parse_json(json, json_len, "schema", errstr, errstr_size)))
        return NULL;
    return schema_build(j, "schema", id, NULL, NULL, errstr, errstr_size);
}

uint32_t core_avro_schema_id(const core_avro_schema_t *s) { return s->id; }
const char *core_avro_schema_name(const core_avro_schema_t *s) { return s->name; }
const char *core_avro_schema_dataset(const core_avro_schema_t *s) { return s->dataset; }
const char *core_avro_schema_key_field(const core_avro_schema_t *s) { return s->key_field; }
avro_schema_t core_avro_schema_avro(const core_avro_schema_t *s) { return s->avro; }
avro_value_iface_t *core_avro_schema_iface(const core_avro_schema_t *s) { return s->iface; }
const cJSON *core_avro_schema_json(const core_avro_schema_t *s) { return s->json; }
const cJSON *core_avro_schema_rules(const core_avro_schema_t *s) { return s->rules; }

const char *const *core_avro_schema_personal(const core_avro_schema_t *s, size_t *np)
{
    if (np)
        *np = s->npersonal;
    return (const char *const *)s->personal;
}

bool core_avro_schema_is_personal(const core_avro_schema_t *s, const char *field)
{
    size_t i;

    for (i = 0; field && i < s->npersonal; i++)
        if (strcmp(s->personal[i], field) == 0)
            return true;
    return false;
}

bool core_avro_schema_path_personal(const core_avro_schema_t *s, const char *path)
{
    char part[256];

    if (!path || !*path)
        return true;
    while (*path) {
        size_t n = strcspn(path, ".[");

        if (n >= sizeof(part))
            return true; /* no field name is that long: not a path we know */
        memcpy(part, path, n);
        part[n] = '\0';
        if (n && core_avro_schema_is_personal(s, part))
            return true;
        path += n;
        if (*path == '[') {
            path = strchr(path, ']');
            if (!path)
                return true;
            path++;
        }
        if (*path == '.')
            path++;
    }
    return false;
}

core_err_t core_avro_value_new(const core_avro_schema_t *s, avro_value_t *out)
{
    if (avro_generic_value_new(s->iface, out) != 0)
        return CORE_ERR_NOMEM;
    return CORE_OK;
}

/* ---- rules files -------------------------------------------------------- */

static bool in_list(const char *s, const char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* A dotted field path through records (and unions holding one record). */
static const struct avn *rule_field(const struct avn *rec, const char *path)
{
    char buf[256];
    char *save = NULL, *tok;
    const struct avn *n = rec;

    if (strlen(path) >= sizeof(buf))
        return NULL;
    memcpy(buf, path, strlen(path) + 1);
    for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        int fi;

        if (n->type == AVN_UNION) {
            const struct avn *r = NULL;
            size_t i;

            for (i = 0; i < n->nbranches; i++)
                if (n->branches[i]->type == AVN_RECORD)
                    r = n->branches[i];
            n = r;
        }
        if (!n || n->type != AVN_RECORD || (fi = find_field(n, tok)) < 0)
            return NULL;
        n = n->fields[fi].type;
    }
    return n;
}

bool core_avro_schema_path_num_type(const core_avro_schema_t *s, const char *path,
                                    core_avro_num_type *out)
{
    const struct avn *n = path ? rule_field(s->root, path) : NULL;

    memset(out, 0, sizeof(*out));
    if (!n)
        return false;
    if (n->type == AVN_UNION) {
        const struct avn *only = NULL;
        size_t i, other = 0;

        for (i = 0; i < n->nbranches; i++)
            if (n->branches[i]->type != AVN_NULL) {
                only = n->branches[i];
                other++;
            }
        if (other != 1)
            return true; /* several types: none to check against */
        n = only;
    }
    if (n->logical == AVL_DECIMAL) {
        out->kind = CORE_AVRO_NUM_DECIMAL;
        out->precision = n->precision;
        out->scale = n->scale;
    } else if (n->logical != AVL_NONE) {
        out->kind = CORE_AVRO_NUM_TIME;
    } else {
        switch (n->type) {
        case AVN_INT: out->kind = CORE_AVRO_NUM_INT; break;
        case AVN_LONG: out->kind = CORE_AVRO_NUM_LONG; break;
        case AVN_FLOAT: out->kind = CORE_AVRO_NUM_FLOAT; break;
        case AVN_DOUBLE: out->kind = CORE_AVRO_NUM_DOUBLE; break;
        case AVN_STRING: out->kind = CORE_AVRO_NUM_STRING; break;
        default: break;
        }
    }
    return true;
}

/* One rule's shape: an object whose "field" names a path of the schema.
 * What its other keys say is the business of the program that applies the
 * rules (svc-validator registers its check: core_avro_catalog_load_checked()). */
static int check_rule_shape(const core_avro_schema_t *s, const char *file, const cJSON *r,
                            size_t idx, char *errstr, size_t errstr_size)
{
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(r, "field");

    if (!cJSON_IsObject(r) || !cJSON_IsString(field)) {
        core_errstr(errstr, errstr_size, "%s: rule %zu needs a \"field\"", file, idx);
        return -1;
    }
    if (!rule_field(s->root, field->valuestring)) {
        core_errstr(errstr, errstr_size, "%s: rule %zu: field '%s' is not in schema %s",
                    file, idx, field->valuestring, s->name);
        return -1;
    }
    return 0;
}

static int rules_check(const core_avro_schema_t *s, const char *file, const cJSON *rj,
                       char *errstr, size_t errstr_size)
{
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(rj, "dataset");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(rj, "rules");
    const cJSON *k, *r;
    size_t i = 0;

    if (!cJSON_IsObject(rj)) {
        core_errstr(errstr, errstr_size, "%s: must be a JSON object", file);
        return -1;
    }
    cJSON_ArrayForEach(k, rj)
        if (strcmp(k->string, "dataset") != 0 && strcmp(k->string, "rules") != 0 &&
            strcmp(k->string, "doc") != 0) {
            core_errstr(errstr, errstr_size, "%s: unknown key \"%s\"", file, k->string);
            return -1;
        }
    if (!cJSON_IsString(ds) || strcmp(ds->valuestring, s->dataset) != 0) {
        core_errstr(errstr, errstr_size, "%s: \"dataset\" must be \"%s\"", file, s->dataset);
        return -1;
    }
    if (!cJSON_IsArray(rules)) {
        core_errstr(errstr, errstr_size, "%s: \"rules\" must be an array", file);
        return -1;
    }
    cJSON_ArrayForEach(r, rules)
        if (check_rule_shape(s, file, r, i++, errstr, errstr_size) != 0)
            return -1;
    return 0;
}

/* ---- catalogue ---------------------------------------------------------- */

static const core_avro_schema_t *catalog_find_name(const core_avro_catalog_t *cat,
                                                   const char *fullname)
{
    size_t i;

    for (i = cat->n; i > 0; i--) /* the latest version */
        if (strcmp(cat->schemas[i - 1]->name, fullname) == 0)
            return cat->schemas[i - 1];
    return NULL;
}

void core_avro_catalog_free(core_avro_catalog_t *cat)
{
    size_t i;

    if (!cat)
        return;
    for (i = 0; i < cat->n; i++)
        core_avro_schema_free(cat->schemas[i]);
    free(cat->schemas);
    free(cat);
}

/* Append s (taking it) after the uniqueness checks; frees s on failure. */
static core_err_t catalog_append(core_avro_catalog_t *cat, core_avro_schema_t *s,
                                 char *errstr, size_t errstr_size)
{
    size_t i;

    for (i = 0; i < cat->n; i++) {
        const core_avro_schema_t *o = cat->schemas[i];
        bool same_ds = s->dataset && o->dataset && strcmp(o->dataset, s->dataset) == 0;

        if (o->id == s->id) {
            core_errstr(errstr, errstr_size, "%s: schema id %u is already used by %s",
                        s->file, s->id, o->file);
            goto dup;
        }
        /* Entries of one dataset are versions of it: same name, same key. */
        if (same_ds && strcmp(o->key_field, s->key_field) != 0) {
            core_errstr(errstr, errstr_size,
                        "%s: dataset %s: tb.key '%s' differs from '%s' in %s (versions of a"
                        " dataset must keep their key)", s->file, s->dataset, s->key_field,
                        o->key_field, o->file);
            goto dup;
        }
        /* Entries of one named schema that is not a dataset are versions of
         * it too (tributary.AuditEvent 201, 202): the last one is current. */
        if (!same_ds && *s->name && strcmp(o->name, s->name) == 0 &&
            (s->dataset || o->dataset)) {
            core_errstr(errstr, errstr_size, "%s: schema %s is already defined by %s",
                        s->file, s->name, o->file);
            goto dup;
        }
    }
    if (cat->n == cat->cap) {
        size_t cap = cat->cap ? cat->cap * 2 : 8;
        core_avro_schema_t **ns = realloc(cat->schemas, cap * sizeof(*ns));

        if (!ns) {
            core_errstr(errstr, errstr_size, "%s: out of memory", s->file);
            core_avro_schema_free(s);
            return CORE_ERR_NOMEM;
        }
        cat->schemas = ns;
        cat->cap = cap;
    }
    cat->schemas[cat->n++] = s;
    return CORE_OK;
dup:
    core_avro_schema_free(s);
    return CORE_ERR_INVALID;
}

core_err_t core_avro_catalog_add(core_avro_catalog_t *cat, uint32_t id,
                                 const char *dataset, const char *json,
                                 size_t json_len, char *errstr, size_t errstr_size)
{
    core_avro_schema_t *s;
    cJSON *j;
    char label[64];

    snprintf(label, sizeof(label), "schema id %u", id);
    if (id == 0 || id > INT32_MAX) {
        core_errstr(errstr, errstr_size, "%s: ids must be in 1..2147483647", label);
        return CORE_ERR_INVALID;
    }
    if (!json || json_len > CORE_AVRO_MAX_FILE) {
        core_errstr(errstr, errstr_size, "%s: schema missing or over %u bytes", label,
                    CORE_AVRO_MAX_FILE);
        return CORE_ERR_INVALID;
    }
    if (!(j = parse_json(json, json_len, label, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    if (!(s = schema_build(j, label, id, dataset, cat, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    return catalog_append(cat, s, errstr, errstr_size);
}

/* A file name of the catalogue: relative, inside proto_dir. */
static bool catalog_file_ok(const char *f)
{
    return *f && f[0] != '/' && !strstr(f, "..") && strlen(f) < 256;
}

static core_err_t load_entry(core_avro_catalog_t *cat, const char *dir,
                             const cJSON *e, size_t idx, core_avro_rules_check_fn *check,
                             char *errstr, size_t errstr_size)
{
    static const char *const keys[] = { "id", "name", "dataset", "file", "rules", "doc" };
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(e, "name");
    const cJSON *jds = cJSON_GetObjectItemCaseSensitive(e, "dataset");
    const cJSON *jfile = cJSON_GetObjectItemCaseSensitive(e, "file");
    const cJSON *jrules = cJSON_GetObjectItemCaseSensitive(e, "rules");
    const cJSON *k;
    int64_t id;
    char path[4096];
    char *text;
    size_t len;
    cJSON *j;
    core_avro_schema_t *s;
    core_err_t err;

    cJSON_ArrayForEach(k, e)
        if (!in_list(k->string, keys, CORE_ARRAY_SIZE(keys))) {
            core_errstr(errstr, errstr_size, "catalog.json: schema %zu: unknown key \"%s\"",
                        idx, k->string);
            return CORE_ERR_INVALID;
        }
    if (!json_int(jid, 1, INT32_MAX, &id)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema %zu: \"id\" must be an integer in 1..2147483647", idx);
        return CORE_ERR_INVALID;
    }
    if (!cJSON_IsString(jfile) || !catalog_file_ok(jfile->valuestring)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: \"file\" must be a file name inside %s",
                    (long long)id, dir);
        return CORE_ERR_INVALID;
    }
    if ((jname && !cJSON_IsString(jname)) || (jds && !cJSON_IsString(jds)) ||
        (!jname && !jds)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: needs \"dataset\" or \"name\" (strings)",
                    (long long)id);
        return CORE_ERR_INVALID;
    }
    if (jrules && (!jds || !cJSON_IsString(jrules) || !catalog_file_ok(jrules->valuestring))) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: \"rules\" must be a file name, for a dataset",
                    (long long)id);
        return CORE_ERR_INVALID;
    }
    {
        const core_avro_schema_t *o = core_avro_catalog_by_id(cat, (uint32_t)id);

        if (o) {
            core_errstr(errstr, errstr_size,
                        "catalog.json: schema id %lld (%s) is already used by %s",
                        (long long)id, jfile->valuestring, o->file);
            return CORE_ERR_INVALID;
        }
    }
    snprintf(path, sizeof(path), "%s/%s", dir, jfile->valuestring);
    if (!(text = core_read_file(path, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
        return CORE_ERR_IO;
    j = parse_json(text, len, path, errstr, errstr_size);
    free(text);
    if (!j)
        return CORE_ERR_INVALID;
    s = schema_build(j, path, (uint32_t)id, jds ? jds->valuestring : NULL, cat,
                     errstr, errstr_size);
    if (!s)
        return CORE_ERR_INVALID;
    if (jname && strcmp(jname->valuestring, s->name) != 0) {
        core_errstr(errstr, errstr_size, "%s: defines %s, catalog.json says %s", path,
                    s->name, jname->valuestring);
        core_avro_schema_free(s);
        return CORE_ERR_INVALID;
    }
    /* uniqueness first (clearer when two entries clash), then the rules;
     * on failure the caller frees the whole catalogue, s included */
    if ((err = catalog_append(cat, s, errstr, errstr_size)) != CORE_OK)
        return err;
    if (jrules) {
        char rpath[4096];

        snprintf(rpath, sizeof(rpath), "%s/%s", dir, jrules->valuestring);
        if (!(text = core_read_file(rpath, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
            return CORE_ERR_IO;
        {
            /* core_json keeps each number's text: rule bounds compare exactly */
            core_json_error je;

            s->rules = core_json_parse(text, len, &je);
            if (!s->rules)
                core_errstr(errstr, errstr_size, "%s: JSON: %s at byte %zu%s%s", rpath,
                            je.reason, je.offset, je.path[0] ? " at " : "", je.path);
        }
        free(text);
        if (!s->rules || rules_check(s, rpath, s->rules, errstr, errstr_size) != 0 ||
            (check && check(s, strrchr(rpath, '/') + 1, s->rules, errstr, errstr_size) != 0))
            return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_avro_catalog_t *core_avro_catalog_load(const char *proto_dir, char *errstr,
                                            size_t errstr_size)
{
    return core_avro_catalog_load_checked(proto_dir, NULL, errstr, errstr_size);
}

core_avro_catalog_t *core_avro_catalog_load_checked(const char *proto_dir,
                                                    core_avro_rules_check_fn *check,
                                                    char *errstr, size_t errstr_size)
{
    core_avro_catalog_t *cat;
    char path[4096];
    char *text;
    size_t len, idx;
    cJSON *root, *schemas, *e;
    int pass;

    if (!proto_dir || !*proto_dir) {
        core_errstr(errstr, errstr_size, "catalog: no proto directory given");
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/catalog.json", proto_dir);
    if (!(text = core_read_file(path, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
        return NULL;
    root = parse_json(text, len, path, errstr, errstr_size);
    free(text);
    if (!root)
        return NULL;
    schemas = cJSON_GetObjectItemCaseSensitive(root, "schemas");
    if (!cJSON_IsArray(schemas)) {
        core_errstr(errstr, errstr_size, "%s: needs a \"schemas\" array", path);
        cJSON_Delete(root);
        return NULL;
    }
    if (!(cat = calloc(1, sizeof(*cat)))) {
        core_errstr(errstr, errstr_size, "catalog: out of memory");
        cJSON_Delete(root);
        return NULL;
    }
    cat->max_record = CORE_AVRO_DEFAULT_MAX_RECORD;
    /* Named schemas first (datasets refer to them), then datasets. */
    for (pass = 0; pass < 2; pass++) {
        idx = 0;
        cJSON_ArrayForEach(e, schemas) {
            bool is_ds = cJSON_GetObjectItemCaseSensitive(e, "dataset") != NULL;

            if (!cJSON_IsObject(e)) {
                core_errstr(errstr, errstr_size, "%s: schema %zu is not an object", path, idx);
                goto fail;
            }
            if (is_ds == (pass == 1) &&
                load_entry(cat, proto_dir, e, idx, check, errstr, errstr_size) != CORE_OK)
                goto fail;
            idx++;
        }
    }
    cJSON_Delete(root);
    return cat;
fail:
    cJSON_Delete(root);
    core_avro_catalog_free(cat);
    return NULL;
}

void core_avro_catalog_set_max_record(core_avro_catalog_t *cat, size_t max)
{
    cat->max_record = max ? max : CORE_AVRO_DEFAULT_MAX_RECORD;
}

size_t core_avro_catalog_max_record(const core_avro_catalog_t *cat)
{
    return cat->max_record;
}

const core_avro_schema_t *core_avro_catalog_by_id(const core_avro_catalog_t *cat,
                                                  uint32_t id)
{
    size_t i;

    for (i = 0; i < cat->n; i++)
        if (cat->schemas[i]->id == id)
            return cat->schemas[i];
    return NULL;
}

const core_avro_schema_t *core_avro_catalog_by_dataset(const core_avro_catalog_t *cat,
                                                       const char *dataset)
{
    size_t i;

    for (i = cat->n; dataset && i > 0; i--) /* the latest version */
        if (cat->schemas[i - 1]->dataset && strcmp(cat->schemas[i - 1]->dataset, dataset) == 0)
            return cat->schemas[i - 1];
    return NULL;
}

const core_avro_schema_t *core_avro_catalog_by_name(const core_avro_catalog_t *cat,
                                                    const char *fullname)
{
    return fullname ? catalog_find_name(cat, fullname) : NULL;
}

size_t core_avro_catalog_count(const core_avro_catalog_t *cat)
{
    return cat->n;
}

const core_avro_schema_t *core_avro_catalog_at(const core_avro_catalog_t *cat, size_t i)
{
    return i < cat->n ? cat->schemas[i] : NULL;
}

/* ---- key and meta helpers ----------------------------------------------- */

const char *core_avro_op_name(core_avro_op_t op)
{
    switch (op) {
    case CORE_AVRO_OP_ADD: return "ADD";
    case CORE_AVRO_OP_UPDATE: return "UPDATE";
    case CORE_AVRO_OP_DELETE: return "DELETE";
    }
    return "?";
}

const char *core_avro_kind_name(core_avro_kind_t kind)
{
    switch (kind) {
    case CORE_AVRO_KIND_BULK: return "BULK";
    case CORE_AVRO_KIND_CHANGE: return "CHANGE";
    }
    return "?";
}

static int get_str(avro_value_t *v, const char **s)
{
    size_t sz;

    return avro_value_get_string(v, s, &sz);
}

core_err_t core_avro_get_key(const core_avro_schema_t *s, avro_value_t *rec,
                             const char **keyp, size_t *lenp, char *errstr,
                             size_t errstr_size)
{
    avro_value_t f;
    const char *str;
    size_t sz;

    if (s->key_index < 0) {
        core_errstr(errstr, errstr_size, "%s has no tb.key", s->name);
        return CORE_ERR_INVALID;
    }
    if (avro_value_get_type(rec) != AVRO_RECORD ||
        avro_value_get_by_index(rec, (size_t)s->key_index, &f, NULL) != 0 ||
        avro_value_get_string(&f, &str, &sz) != 0) {
        core_errstr(errstr, errstr_size, "%s: value has no string field %s", s->name,
                    s->key_field);
        return CORE_ERR_INVALID;
    }
    *keyp = str;
    if (lenp)
        *lenp = sz ? sz - 1 : 0;
    return CORE_OK;
}

static int meta_value(const core_avro_schema_t *s, avro_value_t *rec, avro_value_t *m,
                      char *errstr, size_t errstr_size)
{
    if (s->meta_index < 0) {
        core_errstr(errstr, errstr_size, "%s is not a dataset schema", s->name);
        return -1;
    }
    if (avro_value_get_type(rec) != AVRO_RECORD ||
        avro_value_get_by_index(rec, (size_t)s->meta_index, m, NULL) != 0 ||
        avro_value_get_type(m) != AVRO_RECORD) {
        core_errstr(errstr, errstr_size, "%s: value has no meta record", s->name);
        return -1;
    }
    return 0;
}

core_err_t core_avro_get_meta(const core_avro_schema_t *s, avro_value_t *rec,
                              core_avro_meta *meta, char *errstr, size_t errstr_size)
{
    avro_value_t m, f[AVM__COUNT], br;
    int op, kind, disc;
    size_t i;

    if (meta_value(s, rec, &m, errstr, errstr_size) != 0)
        return CORE_ERR_INVALID;
    for (i = 0; i < AVM__COUNT; i++)
        if (avro_value_get_by_index(&m, (size_t)s->meta_fields[i], &f[i], NULL) != 0)
            goto bad;
    memset(meta, 0, sizeof(*meta));
    if (get_str(&f[AVM_ID], &meta->id) || avro_value_get_enum(&f[AVM_OP], &op) ||
        avro_value_get_enum(&f[AVM_KIND], &kind) ||
        get_str(&f[AVM_SOURCE], &meta->source) ||
        get_str(&f[AVM_BATCH_ID], &meta->batch_id) ||
        avro_value_get_long(&f[AVM_SEQ], &meta->seq) ||
        avro_value_get_long(&f[AVM_EVENT_TIME], &meta->event_time) ||
        avro_value_get_long(&f[AVM_VERSION], &meta->version) ||
        avro_value_get_discriminant(&f[AVM_OLD_KEY], &disc) ||
        op < 0 || op > 2 || kind < 0 || kind > 1)
        goto bad;
    meta->op = (core_avro_op_t)op;
    meta->kind = (core_avro_kind_t)kind;
    if (disc == 1) {
        if (avro_value_get_current_branch(&f[AVM_OLD_KEY], &br) || get_str(&br, &meta->old_key))
            goto bad;
    }
    return CORE_OK;
bad:
    core_errstr(errstr, errstr_size, "%s: meta record does not match %s", s->name,
                META_FULLNAME);
    return CORE_ERR_INVALID;
}

core_err_t core_avro_set_meta(const core_avro_schema_t *s, avro_value_t *rec,
                              const core_avro_meta *meta, char *errstr,
                              size_t errstr_size)
{
    avro_value_t m, f[AVM__COUNT], br;
    size_t i;

    if (meta_value(s, rec, &m, errstr, errstr_size) != 0)
        return CORE_ERR_INVALID;
    if (!meta->id || !meta->source || !meta->batch_id ||
        (unsigned)meta->op > 2 || (unsigned)meta->kind > 1) {
        core_errstr(errstr, errstr_size, "meta: id, source and batch_id are required,"
                    " op and kind in range");
        return CORE_ERR_INVALID;
    }
    for (i = 0; i < AVM__COUNT; i++)
        if (avro_value_get_by_index(&m, (size_t)s->meta_fields[i], &f[i], NULL) != 0)
            goto bad;
    if (avro_value_set_string(&f[AVM_ID], meta->id) ||
        avro_value_set_enum(&f[AVM_OP], (int)meta->op) ||
        avro_value_set_enum(&f[AVM_KIND], (int)meta->kind) ||
        avro_value_set_string(&f[AVM_SOURCE], meta->source) ||
        avro_value_set_string(&f[AVM_BATCH_ID], meta->batch_id) ||
        avro_value_set_long(&f[AVM_SEQ], meta->seq) ||
        avro_value_set_long(&f[AVM_EVENT_TIME], meta->event_time) ||
        avro_value_set_long(&f[AVM_VERSION], meta->version))
        goto bad;
    if (meta->old_key) {
        if (avro_value_set_branch(&f[AVM_OLD_KEY], 1, &br) ||
            avro_value_set_string(&br, meta->old_key))
            goto bad;
    } else if (avro_value_set_branch(&f[AVM_OLD_KEY], 0, &br) || avro_value_set_null(&br)) {
        goto bad;
    }
    return CORE_OK;
bad:
    core_errstr(errstr, errstr_size, "%s: cannot set meta: %s", s->name, avro_strerror());
    return CORE_ERR_INVALID;
}
