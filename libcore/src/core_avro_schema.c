/* core_avro_schema.c — the schema compiler: Avro schema JSON (named types
 * from the catalogue inlined) to the node tree of core_avro_int.h, checking
 * names, logical types, defaults and the tb.* attributes. */
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

/* Nesting of the schema JSON itself (guards the compiler's recursion). */
#define SCHEMA_MAX_NESTING 64

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

void core_avro_nodes_free_(struct avn *n)
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
    if (!(n->fullname = core_avro_xstrdup_(fullname)))
        goto nomem;
    c->names[c->nnames] = n->fullname;
    c->named[c->nnames++] = n;
    return 0;
nomem:
    core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
    return -1;
}

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
    if (!(np[s->npersonal] = core_avro_xstrdup_(name)))
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
    ext = c->resolver ? core_avro_catalog_find_name_(c->resolver, full) : NULL;
    if (!ext && c->resolver)
        ext = core_avro_catalog_find_name_(c->resolver, ref);
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
        if (!core_avro_json_int_(jp, 1, CORE_AVRO_DECIMAL_MAX_PRECISION, &p)) {
            core_errstr(c->err, c->errsz,
                        "%s: %s: decimal precision must be an integer in 1..%d",
                        c->file, where, CORE_AVRO_DECIMAL_MAX_PRECISION);
            return -1;
        }
        if (js && !core_avro_json_int_(js, 0, p, &sc)) {
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
        if (!(fld->name = core_avro_xstrdup_(fn->valuestring))) {
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
            if (!(n->symbols[i] = core_avro_xstrdup_(sy->valuestring))) {
                core_errstr(c->err, c->errsz, "%s: out of memory", c->file);
                return NULL;
            }
            n->nsymbols = ++i;
        }
        /* the symbol a reader takes for a writer's symbol it lacks */
        n->enum_default = -1;
        if ((sy = cJSON_GetObjectItemCaseSensitive(obj, "default"))) {
            for (i = 0; cJSON_IsString(sy) && i < n->nsymbols; i++)
                if (strcmp(n->symbols[i], sy->valuestring) == 0)
                    n->enum_default = (int)i;
            if (n->enum_default < 0) {
                core_errstr(c->err, c->errsz, "%s: enum %s: \"default\" must be one of its "
                            "symbols", c->file, full);
                return NULL;
            }
        }
        return n;
    }
    /* fixed */
    {
        int64_t sz;

        if (!(n = node_new(c, AVN_FIXED)) || name_define(c, full, n) != 0)
            return NULL;
        if (!core_avro_json_int_(cJSON_GetObjectItemCaseSensitive(obj, "size"), 0, 1 << 20, &sz)) {
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

struct avn *core_avro_compile_(core_avro_schema_t *s, const core_avro_catalog_t *resolver,
                               const char *file, cJSON *json, char *errstr,
                               size_t errstr_size)
{
    struct cctx c = { 0 };
    struct avn *root;

    c.s = s;
    c.resolver = resolver;
    c.file = file;
    c.err = errstr;
    c.errsz = errstr_size;
    root = compile(&c, NULL, json, "", "schema");
    free(c.names);
    free(c.named);
    return root;
}
