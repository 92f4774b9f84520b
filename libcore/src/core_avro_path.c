/* core_avro_path.c — one field of a record read as its natural JSON shows
 * it, through a dotted path compiled once per schema (core_avro.h). */
#include "core_avro_int.h"
#include "core_avro_json_int.h"


#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one field, as natural JSON shows it -------------------------------- */

/* The smallest buffer core_avro_path_get() formats into (decimals, times,
 * longs); bytes need what core_avro_bytes_text_size_() says. */
#define NAT_TEXT_MIN 64

struct path_seg {
    char *name;
    const struct avn *rec; /* the record the schema leads to here, or NULL */
    int index;             /* the field's index in rec */
};

struct core_avro_path {
    const core_avro_schema_t *schema;
    size_t nseg;
    struct path_seg *seg;
    char *names;
};

static int field_index(const struct avn *rec, const char *name)
{
    size_t i;

    for (i = 0; i < rec->nfields; i++)
        if (strcmp(rec->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

void core_avro_path_free(core_avro_path_t *p)
{
    if (!p)
        return;
    free(p->seg);
    free(p->names);
    free(p);
}

core_avro_path_t *core_avro_path_new(const core_avro_schema_t *s, const char *path,
                                     bool *resolved, char *errstr, size_t errstr_size)
{
    core_avro_path_t *p = calloc(1, sizeof(*p));
    const struct avn *n = s ? s->root : NULL;
    size_t len = path ? strlen(path) : 0, nseg = 0, i;
    const char *q;
    char *w;
    bool ok = n != NULL;

    if (!p || !s || !path) {
        core_errstr(errstr, errstr_size, "avro path: %s",
                    !p ? "out of memory" : !s ? "no schema" : "no path");
        free(p);
        return NULL;
    }
    /* Parts as a natural-JSON lookup reads them: "a.b" is a, b; "a..b" has
     * an empty part; a trailing dot ends the path. */
    for (q = path; *q;) {
        q += strcspn(q, ".");
        if (*q == '.')
            q++;
        nseg++;
    }
    if (!(p->names = malloc(len + 1)) || !(p->seg = calloc(nseg ? nseg : 1, sizeof(*p->seg)))) {
        core_avro_path_free(p);
        core_errstr(errstr, errstr_size, "avro path: out of memory");
        return NULL;
    }
    p->schema = s;
    p->nseg = nseg;
    w = p->names;
    for (q = path, i = 0; *q; i++) {
        size_t k = strcspn(q, ".");
        struct path_seg *g = &p->seg[i];

        memcpy(w, q, k);
        w[k] = '\0';
        g->name = w;
        g->index = -1;
        w += k + 1;
        q += k;
        if (*q == '.')
            q++;
        /* Statically: a union leads to its (last) record branch. */
        if (ok && n->type == AVN_UNION) {
            const struct avn *r = NULL;
            size_t b;

            for (b = 0; b < n->nbranches; b++)
                if (n->branches[b]->type == AVN_RECORD)
                    r = n->branches[b];
            n = r;
        }
        if (ok && (!n || n->type != AVN_RECORD || (g->index = field_index(n, g->name)) < 0))
            ok = false;
        if (ok) {
            g->rec = n;
            n = n->fields[g->index].type;
        }
    }
    if (resolved)
        *resolved = ok;
    return p;
}

/* Follow unions to the value they hold, as to_json() does. */
static int nat_unwrap(const struct avn **np, avro_value_t *v, char *errstr, size_t errstr_size)
{
    while ((*np)->type == AVN_UNION) {
        int d;
        avro_value_t br;

        if (avro_value_get_discriminant(v, &d) || d < 0 || (size_t)d >= (*np)->nbranches ||
            avro_value_get_current_branch(v, &br)) {
            core_errstr(errstr, errstr_size, "union has no branch set");
            return -1;
        }
        *np = (*np)->branches[d];
        *v = br;
    }
    return 0;
}

static core_err_t nat_short(core_avro_natural *out, size_t need, char *errstr,
                            size_t errstr_size)
{
    out->need = need;
    core_errstr(errstr, errstr_size, "avro path: text needs %zu bytes", need);
    return CORE_ERR_TOOBIG;
}

/* Longer than ~120 lines for a reason: the walk of the path's segments and
 * the natural form of the leaf, one case per Avro type, in one pass with one
 * error path (the hot read of every rule). */
core_err_t core_avro_path_get(const core_avro_path_t *p, avro_value_t *record,
                              core_avro_natural *out, char *buf, size_t size,
                              char *errstr, size_t errstr_size)
{
    const struct avn *n = p->schema->root;
    avro_value_t v = *record;
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < p->nseg; i++) {
        const struct path_seg *g = &p->seg[i];
        avro_value_t child;

        if (nat_unwrap(&n, &v, errstr, errstr_size) != 0)
            return CORE_ERR_INVALID;
        if (n->type == AVN_RECORD) {
            int fi = n == g->rec ? g->index : field_index(n, g->name);

            if (fi < 0) {
                out->kind = CORE_AVRO_NAT_ABSENT;
                return CORE_OK;
            }
            if (avro_value_get_by_index(&v, (size_t)fi, &child, NULL) != 0)
                goto mismatch;
            n = n->fields[fi].type;
        } else if (n->type == AVN_MAP) {
            child.iface = NULL;
            if (avro_value_get_by_name(&v, g->name, &child, NULL) != 0 || !child.iface) {
                out->kind = CORE_AVRO_NAT_ABSENT;
                return CORE_OK;
            }
            n = n->items;
        } else {
            out->kind = CORE_AVRO_NAT_ABSENT; /* not an object: no member */
            return CORE_OK;
        }
        v = child;
    }
    if (nat_unwrap(&n, &v, errstr, errstr_size) != 0)
        return CORE_ERR_INVALID;
    switch (n->type) {
    case AVN_NULL:
        out->kind = CORE_AVRO_NAT_NULL;
        return CORE_OK;
    case AVN_BOOLEAN: {
        int b;

        if (avro_value_get_boolean(&v, &b))
            goto mismatch;
        out->kind = CORE_AVRO_NAT_BOOL;
        out->boolean = b != 0;
        return CORE_OK;
    }
    case AVN_INT: {
        int32_t x;

        if (avro_value_get_int(&v, &x))
            goto mismatch;
        if (n->logical == AVL_DATE) {
            char tb[CORE_AVRO_TIME_SIZE];

            if (size < NAT_TEXT_MIN)
                return nat_short(out, NAT_TEXT_MIN, errstr, errstr_size);
            if (core_avro_time_format((int64_t)x * 86400000, tb, sizeof(tb)) > 0) {
                memcpy(buf, tb, 10);
                buf[10] = '\0';
                out->kind = CORE_AVRO_NAT_STRING;
                out->text = buf;
                out->has_ms = true;
                out->ms = (int64_t)x * 86400000;
                return CORE_OK;
            }
        }
        out->kind = CORE_AVRO_NAT_NUMBER;
        out->number = x;
        return CORE_OK;
    }
    case AVN_LONG: {
        int64_t l;

        if (avro_value_get_long(&v, &l))
            goto mismatch;
        if (n->logical == AVL_TS_MILLIS || n->logical == AVL_TS_MICROS ||
            l < -EXACT_DOUBLE_MAX || l > EXACT_DOUBLE_MAX) {
            if (size < NAT_TEXT_MIN)
                return nat_short(out, NAT_TEXT_MIN, errstr, errstr_size);
            out->kind = CORE_AVRO_NAT_STRING;
            out->text = buf;
            if (n->logical == AVL_TS_MILLIS && core_avro_time_format(l, buf, size) > 0) {
                out->has_ms = true;
                out->ms = l;
                return CORE_OK;
            }
            if (n->logical == AVL_TS_MICROS && core_avro_time_format_us(l, buf, size) > 0)
                return CORE_OK;
        }
        if (l >= -EXACT_DOUBLE_MAX && l <= EXACT_DOUBLE_MAX) {
            out->kind = CORE_AVRO_NAT_NUMBER;
            out->number = (double)l;
            out->text = NULL;
        } else {
            snprintf(buf, size, "%lld", (long long)l);
            out->kind = CORE_AVRO_NAT_RAW;
            out->text = buf;
        }
        return CORE_OK;
    }
    case AVN_FLOAT: {
        float f;

        if (avro_value_get_float(&v, &f))
            goto mismatch;
        out->kind = CORE_AVRO_NAT_NUMBER;
        out->number = f;
        return CORE_OK;
    }
    case AVN_DOUBLE: {
        double d;

        if (avro_value_get_double(&v, &d))
            goto mismatch;
        out->kind = CORE_AVRO_NAT_NUMBER;
        out->number = d;
        return CORE_OK;
    }
    case AVN_BYTES:
    case AVN_FIXED: {
        const void *b;
        size_t sz;

        if ((n->type == AVN_BYTES ? avro_value_get_bytes(&v, &b, &sz)
                                  : avro_value_get_fixed(&v, &b, &sz)) != 0)
            goto mismatch;
        if (n->logical == AVL_DECIMAL) {
            if (size < NAT_TEXT_MIN)
                return nat_short(out, NAT_TEXT_MIN, errstr, errstr_size);
            if (core_avro_decimal_format(b, sz, n->scale, buf, size, errstr, errstr_size) !=
                CORE_OK)
                return CORE_ERR_INVALID;
        } else {
            size_t need = core_avro_bytes_text_size_(b, sz);

            if (size < need)
                return nat_short(out, need, errstr, errstr_size);
            core_avro_bytes_text_(b, sz, buf);
        }
        out->kind = CORE_AVRO_NAT_STRING;
        out->text = buf;
        return CORE_OK;
    }
    case AVN_STRING: {
        const char *str;
        size_t sz;

        if (avro_value_get_string(&v, &str, &sz))
            goto mismatch;
        out->kind = CORE_AVRO_NAT_STRING;
        out->text = str ? str : "";
        return CORE_OK;
    }
    case AVN_ENUM: {
        int e;

        if (avro_value_get_enum(&v, &e))
            goto mismatch;
        if (e < 0 || (size_t)e >= n->nsymbols) {
            core_errstr(errstr, errstr_size, "enum index %d out of range", e);
            return CORE_ERR_INVALID;
        }
        out->kind = CORE_AVRO_NAT_STRING;
        out->text = n->symbols[e];
        return CORE_OK;
    }
    case AVN_RECORD:
    case AVN_MAP:
        out->kind = CORE_AVRO_NAT_OBJECT;
        return CORE_OK;
    case AVN_ARRAY:
        out->kind = CORE_AVRO_NAT_ARRAY;
        return CORE_OK;
    case AVN_UNION:
        break;
    }
mismatch:
    core_errstr(errstr, errstr_size, "value is not a %s", core_avro_type_name_(n));
    return CORE_ERR_INVALID;
}
