/* core_avro_from_json.c — natural JSON (and Avro's JSON form, for schema
 * defaults) -> Avro values; every number exactly from its text. */
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

/* ---- JSON -> Avro ------------------------------------------------------- */

/* One JSON value into the Avro value of node n. Longer than ~120 lines for a
 * reason: one case per Avro type and logical type, side by side, so that
 * what each accepts reads as one table. */
static int from_json(struct jctx *c, const struct avn *n, const cJSON *j,
                     avro_value_t *dst);

static int set_failed(struct jctx *c, const char *what)
{
    return core_avro_jerr_(c, "cannot set %s: %s", what, avro_strerror());
}

/* The integer number text s stands for, exactly, never through a double:
 * [+-]digits[.digits][(e|E)[+-]digits] (JSON's grammar, also with a sign
 * or leading zeros; no blanks). 1.0 and 1e3 are integers, 1.5 is not.
 * @returns 0 with *out, 1 not an integer (a fraction), 2 outside [lo, hi],
 * 3 not a number. */
static int text_integer(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    const char *a, *b, *fa = NULL, *fb = NULL;
    int64_t x = 0, e;
    size_t ni, nd, first, last, i;
    uint64_t v = 0;
    bool neg = false, xneg = false;

    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    a = s;
    while (*s >= '0' && *s <= '9')
        s++;
    b = s;
    if (b == a)
        return 3;
    if (*s == '.') {
        fa = ++s;
        while (*s >= '0' && *s <= '9')
            s++;
        fb = s;
        if (fb == fa)
            return 3;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            xneg = *s++ == '-';
        if (!(*s >= '0' && *s <= '9'))
            return 3;
        for (; *s >= '0' && *s <= '9'; s++)
            if (x < 1000000000)
                x = x * 10 + (*s - '0');
    }
    if (*s)
        return 3;
    /* digits D = integer part then fraction; value = D * 10^e */
    ni = (size_t)(b - a);
    nd = ni + (fa ? (size_t)(fb - fa) : 0);
#define DIGIT(k) ((k) < ni ? a[(k)] : fa[(k) - ni])
    e = (xneg ? -x : x) - (int64_t)(nd - ni);
    for (first = 0; first < nd && DIGIT(first) == '0'; first++)
        ;
    if (first == nd) {
        *out = 0;
        return lo <= 0 && hi >= 0 ? 0 : 2;
    }
    for (last = nd - 1; DIGIT(last) == '0'; last--)
        e++; /* trailing zeros scale instead */
    if (e < 0)
        return 1; /* a nonzero digit right of the point */
    if ((int64_t)(last - first + 1) + e > 19)
        return 2;
    for (i = first; i <= last; i++)
        v = v * 10 + (uint64_t)(DIGIT(i) - '0');
#undef DIGIT
    for (; e > 0; e--)
        v *= 10; /* at most 19 digits: below 2^64 */
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return 2;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return 2;
        *out = (int64_t)v;
    }
    return *out < lo || *out > hi ? 2 : 0;
}

/* A JSON number, or decimal digits as a string (how 64-bit integers travel
 * exactly in JSON, as in proto3's JSON mapping) or raw number text (as
 * core_json_parse() keeps every number), as an integer in [lo, hi]. */
static int json_integer(struct jctx *c, const cJSON *j, int64_t lo, int64_t hi,
                        const char *what, int64_t *out)
{
    if (cJSON_IsRaw(j) || cJSON_IsString(j)) {
        int64_t v;

        switch (text_integer(j->valuestring, lo, hi, &v)) {
        case 0:
            break;
        case 1:
            return core_avro_jerr_(c, "a number with a fraction is not a %s", what);
        case 2:
            return core_avro_jerr_(c, "out of range for %s", what);
        default:
            return core_avro_jerr_(c, "not a %s", what);
        }
        *out = v;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return core_avro_jerr_(c, "expected a number (%s), got %s", what, core_avro_jtype_(j));
    {
        double d = j->valuedouble;

        if (d != d || d != floor(d))
            return core_avro_jerr_(c, "not an integer");
        /* -2^63 is exact; 2^63 is the first double past INT64_MAX */
        if (d < (double)lo || d >= 9223372036854775808.0 || (hi < INT64_MAX && d > (double)hi))
            return core_avro_jerr_(c, "out of range for %s", what);
        /* A JSON number was parsed into a double: beyond 2^53 its digits are
         * already rounded, so refuse it rather than store another value. */
        if (d >= (double)EXACT_DOUBLE_MAX || d <= -(double)EXACT_DOUBLE_MAX)
            return core_avro_jerr_(c, "at or beyond 2^53, not exact as a JSON number: give it as a "
                        "string");
        *out = (int64_t)d;
    }
    return 0;
}

/* single: a float, rounded once from the text (strtof), not twice. */
static int json_double(struct jctx *c, const cJSON *j, bool single, double *out)
{
    if (cJSON_IsRaw(j)) {
        char *end;

        errno = 0;
        *out = single ? (double)strtof(j->valuestring, &end) : strtod(j->valuestring, &end);
        if (*end || end == j->valuestring)
            return core_avro_jerr_(c, "not a number");
        if (!isfinite(*out))
            return core_avro_jerr_(c, "number out of range for %s", single ? "float" : "double");
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return core_avro_jerr_(c, "expected a number, got %s", core_avro_jtype_(j));
    *out = j->valuedouble;
    return 0;
}

/* Escaped bytes text (natural form) or latin-1 code points (defaults). */
static int json_bytes(struct jctx *c, const cJSON *j, uint8_t **out, size_t *lenp)
{
    const uint8_t *s;
    uint8_t *b;
    size_t n = 0, len;

    if (!cJSON_IsString(j))
        return core_avro_jerr_(c, "expected a string (bytes), got %s", core_avro_jtype_(j));
    s = (const uint8_t *)j->valuestring;
    len = strlen((const char *)s);
    if (!(b = malloc(len + 1)))
        return core_avro_jerr_(c, "out of memory");
    while (*s) {
        if (c->dflt) {
            /* Avro JSON: each char is a code point 0-255, UTF-8 encoded */
            if (*s < 0x80) {
                b[n++] = *s++;
            } else if ((s[0] == 0xc2 || s[0] == 0xc3) && (s[1] & 0xc0) == 0x80) {
                b[n++] = (uint8_t)(((s[0] & 0x1f) << 6) | (s[1] & 0x3f));
                s += 2;
            } else {
                free(b);
                return core_avro_jerr_(c, "default bytes hold a code point above U+00FF");
            }
        } else if (*s == '\\') {
            int hi, lo;

            if (s[1] == '\\') {
                b[n++] = '\\';
                s += 2;
                continue;
            }
            hi = s[1] == 'x' && s[2] ? (s[2] >= '0' && s[2] <= '9' ? s[2] - '0'
                                        : (s[2] | 0x20) >= 'a' && (s[2] | 0x20) <= 'f'
                                              ? (s[2] | 0x20) - 'a' + 10 : -1)
                                     : -1;
            lo = hi >= 0 && s[3] ? (s[3] >= '0' && s[3] <= '9' ? s[3] - '0'
                                    : (s[3] | 0x20) >= 'a' && (s[3] | 0x20) <= 'f'
                                          ? (s[3] | 0x20) - 'a' + 10 : -1)
                                 : -1;
            if (hi < 0 || lo < 0) {
                free(b);
                return core_avro_jerr_(c, "bytes: a backslash must start \\\\ or \\xHH");
            }
            b[n++] = (uint8_t)(hi << 4 | lo);
            s += 4;
        } else if (*s >= 0x20 && *s < 0x7f) {
            b[n++] = *s++;
        } else {
            size_t at = (size_t)(s - (const uint8_t *)j->valuestring) + 1;

            free(b);
            /* the position, not the byte: the value may be personal */
            return core_avro_jerr_(c, "bytes: byte %zu is outside printable ASCII: write it as \\xHH",
                        at);
        }
    }
    *out = b;
    *lenp = n;
    return 0;
}

static int set_decimal(struct jctx *c, const struct avn *n, const cJSON *j,
                       avro_value_t *dst)
{
    char text[64], e[128];
    const char *t;
    uint8_t b[16], fx[16];
    size_t len;

    if (cJSON_IsString(j)) {
        t = j->valuestring;
    } else if (cJSON_IsRaw(j)) {
        t = j->valuestring;
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        int p;

        if (!isfinite(d))
            return core_avro_jerr_(c, "decimal is not a finite number");
        for (p = 1; p <= 17; p++) {
            snprintf(text, sizeof(text), "%.*g", p, d);
            if (strtod(text, NULL) == d)
                break;
        }
        /* Beyond 15 significant digits a double may already be another
         * number than the text it was parsed from (1234567890123456.78
         * reads as ...456.8): refuse rather than store it. Trees from
         * core_json_parse() carry the text instead (Raw, above). */
        if (p > 15)
            return core_avro_jerr_(c, "decimal given as a JSON number of more than 15 significant digits "
                        "is not exact as a double: give it as a string");
        t = text;
    } else {
        return core_avro_jerr_(c, "expected a decimal (string or number), got %s", core_avro_jtype_(j));
    }
    if (core_avro_decimal_parse(t, n->precision, n->scale, b, &len, e, sizeof(e)) != CORE_OK)
        return core_avro_jerr_(c, "%s", e);
    if (n->type == AVN_FIXED) {
        if (len > n->size)
            return core_avro_jerr_(c, "decimal does not fit in fixed(%zu)", n->size);
        memset(fx, (b[0] & 0x80) ? 0xff : 0x00, n->size);
        memcpy(fx + (n->size - len), b, len);
        if (avro_value_set_fixed(dst, fx, n->size))
            return set_failed(c, "decimal");
        return 0;
    }
    if (avro_value_set_bytes(dst, b, len))
        return set_failed(c, "decimal");
    return 0;
}

static int set_record(struct jctx *c, const struct avn *n, const cJSON *j,
                      avro_value_t *dst)
{
    const cJSON *k;
    size_t i;

    if (!cJSON_IsObject(j))
        return core_avro_jerr_(c, "expected an object (record %s), got %s", n->fullname, core_avro_jtype_(j));
    if (!(c->flags & CORE_AVRO_JSON_IGNORE_UNKNOWN)) {
        cJSON_ArrayForEach(k, j) {
            for (i = 0; i < n->nfields; i++)
                if (strcmp(n->fields[i].name, k->string) == 0)
                    break;
            if (i == n->nfields)
                return core_avro_jerr_(c, "unknown field '%.64s'", k->string);
        }
    }
    for (i = 0; i < n->nfields; i++) {
        const struct avn_field *f = &n->fields[i];
        const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, f->name);
        avro_value_t fv;
        int rc;

        if (core_avro_jpush_(c, f->name, 0) != 0)
            return -1;
        if (avro_value_get_by_index(dst, i, &fv, NULL) != 0)
            return core_avro_jerr_(c, "value does not match the schema");
        if (fj) {
            rc = from_json(c, f->type, fj, &fv);
        } else if (f->def) {
            bool was = c->dflt;

            c->dflt = true;
            rc = from_json(c, f->type, f->def, &fv);
            c->dflt = was;
        } else if (f->type->type == AVN_UNION) {
            size_t b;
            avro_value_t br;

            for (b = 0; b < f->type->nbranches; b++)
                if (f->type->branches[b]->type == AVN_NULL)
                    break;
            if (b == f->type->nbranches)
                return core_avro_jerr_(c, "required field missing");
            if (avro_value_set_branch(&fv, (int)b, &br) || avro_value_set_null(&br))
                return set_failed(c, "null");
            rc = 0;
        } else {
            return core_avro_jerr_(c, "required field missing");
        }
        if (rc != 0)
            return -1;
        c->plen--;
    }
    return 0;
}

/* Does a union branch carry this name (Avro's {"<name>": value} form)? */
static bool branch_named(const struct avn *b, const char *name)
{
    const char *dot;

    if (b->fullname) {
        dot = strrchr(b->fullname, '.');
        return strcmp(b->fullname, name) == 0 || (dot && strcmp(dot + 1, name) == 0);
    }
    switch (b->type) {
    case AVN_NULL: return strcmp(name, "null") == 0;
    case AVN_BOOLEAN: return strcmp(name, "boolean") == 0;
    case AVN_INT: return strcmp(name, "int") == 0;
    case AVN_LONG: return strcmp(name, "long") == 0;
    case AVN_FLOAT: return strcmp(name, "float") == 0;
    case AVN_DOUBLE: return strcmp(name, "double") == 0;
    case AVN_BYTES: return strcmp(name, "bytes") == 0;
    case AVN_STRING: return strcmp(name, "string") == 0;
    case AVN_ARRAY: return strcmp(name, "array") == 0;
    case AVN_MAP: return strcmp(name, "map") == 0;
    default: return false;
    }
}

/* Which JSON kinds a branch can take, in order of preference. */
static int branch_rank(const struct avn *b, const cJSON *j)
{
    if (cJSON_IsBool(j))
        return b->type == AVN_BOOLEAN ? 0 : -1;
    if (cJSON_IsNumber(j) || cJSON_IsRaw(j)) {
        switch (b->type) {
        case AVN_INT: return b->logical == AVL_NONE ? 0 : 5;
        case AVN_LONG: return b->logical == AVL_NONE ? 1 : 6;
        case AVN_DOUBLE: return 2;
        case AVN_FLOAT: return 3;
        case AVN_BYTES: case AVN_FIXED: return b->logical == AVL_DECIMAL ? 4 : -1;
        default: return -1;
        }
    }
    if (cJSON_IsString(j)) {
        switch (b->type) {
        case AVN_STRING: return 0;
        case AVN_ENUM: return 1;
        case AVN_LONG: case AVN_INT: return b->logical != AVL_NONE ? 2 : -1;
        case AVN_BYTES: case AVN_FIXED: return b->logical == AVL_DECIMAL ? 3 : 4;
        default: return -1;
        }
    }
    if (cJSON_IsArray(j))
        return b->type == AVN_ARRAY ? 0 : -1;
    if (cJSON_IsObject(j))
        return b->type == AVN_RECORD ? 0 : b->type == AVN_MAP ? 1 : -1;
    return -1;
}

static int set_union(struct jctx *c, const struct avn *n, const cJSON *j,
                     avro_value_t *dst)
{
    avro_value_t br;
    size_t i;
    int rank, tried = 0;
    char first[256] = "";

    if (c->dflt) /* a default belongs to the first branch */
        return avro_value_set_branch(dst, 0, &br) ? set_failed(c, "union")
                                                   : from_json(c, n->branches[0], j, &br);
    if (cJSON_IsNull(j)) {
        for (i = 0; i < n->nbranches; i++)
            if (n->branches[i]->type == AVN_NULL)
                return (avro_value_set_branch(dst, (int)i, &br) || avro_value_set_null(&br))
                           ? set_failed(c, "null") : 0;
        return core_avro_jerr_(c, "is null but not nullable");
    }
    if (cJSON_IsObject(j) && j->child && !j->child->next) {
        for (i = 0; i < n->nbranches; i++)
            if (branch_named(n->branches[i], j->child->string)) {
                if (avro_value_set_branch(dst, (int)i, &br))
                    return set_failed(c, "union");
                return from_json(c, n->branches[i], j->child, &br);
            }
    }
    for (rank = 0; rank <= 6; rank++) {
        for (i = 0; i < n->nbranches; i++) {
            char *saved = c->err;
            size_t savedsz = c->errsz;
            int savedlen = c->plen;
            char tmp[256];
            int rc;

            if (branch_rank(n->branches[i], j) != rank)
                continue;
            if (avro_value_set_branch(dst, (int)i, &br))
                return set_failed(c, "union");
            c->err = tmp;
            c->errsz = sizeof(tmp);
            tmp[0] = '\0';
            rc = from_json(c, n->branches[i], j, &br);
            c->err = saved;
            c->errsz = savedsz;
            c->plen = savedlen;
            if (rc == 0)
                return 0;
            if (!tried++)
                snprintf(first, sizeof(first), "%s", tmp);
        }
    }
    if (tried) {
        core_errstr(c->err, c->errsz, "%s", first);
        return -1;
    }
    return core_avro_jerr_(c, "no branch of the union takes %s", core_avro_jtype_(j));
}

static int from_json(struct jctx *c, const struct avn *n, const cJSON *j,
                     avro_value_t *dst)
{
    int64_t iv;
    double dv;

    if (!j)
        return core_avro_jerr_(c, "no value");
    switch (n->type) {
    case AVN_NULL:
        if (!cJSON_IsNull(j))
            return core_avro_jerr_(c, "expected null, got %s", core_avro_jtype_(j));
        return avro_value_set_null(dst) ? set_failed(c, "null") : 0;
    case AVN_BOOLEAN:
        if (!cJSON_IsBool(j))
            return core_avro_jerr_(c, "expected a boolean, got %s", core_avro_jtype_(j));
        return avro_value_set_boolean(dst, cJSON_IsTrue(j)) ? set_failed(c, "boolean") : 0;
    case AVN_INT:
        if (n->logical == AVL_DATE && cJSON_IsString(j) && !c->dflt) {
            const char *p = j->valuestring, *why = NULL;
            int64_t days;

            if (core_avro_parse_date_(&p, &days, &why) != 0 || *p)
                return core_avro_jerr_(c, "bad date: %s", why ? why : "unexpected text after the date");
            if (days < INT32_MIN || days > INT32_MAX)
                return core_avro_jerr_(c, "date out of range");
            iv = days;
        } else if (json_integer(c, j, INT32_MIN, INT32_MAX, "int", &iv) != 0) {
            return -1;
        }
        return avro_value_set_int(dst, (int32_t)iv) ? set_failed(c, "int") : 0;
    case AVN_LONG:
        if ((n->logical == AVL_TS_MILLIS || n->logical == AVL_TS_MICROS) &&
            cJSON_IsString(j) && !c->dflt) {
            char e[128];

            if (core_avro_time_parse_(j->valuestring, n->logical == AVL_TS_MILLIS ? 1000 : 1000000, true,
                           &iv, e, sizeof(e)) != CORE_OK)
                return core_avro_jerr_(c, "%s", e);
        } else if (json_integer(c, j, INT64_MIN, INT64_MAX,
                                n->logical == AVL_NONE ? "long" : core_avro_type_name_(n), &iv) != 0) {
            return -1;
        }
        return avro_value_set_long(dst, iv) ? set_failed(c, "long") : 0;
    case AVN_FLOAT:
        if (json_double(c, j, true, &dv) != 0)
            return -1;
        if (isfinite(dv) && fabs(dv) > FLT_MAX)
            return core_avro_jerr_(c, "out of range for float");
        return avro_value_set_float(dst, (float)dv) ? set_failed(c, "float") : 0;
    case AVN_DOUBLE:
        if (json_double(c, j, false, &dv) != 0)
            return -1;
        return avro_value_set_double(dst, dv) ? set_failed(c, "double") : 0;
    case AVN_STRING:
        if (!cJSON_IsString(j))
            return core_avro_jerr_(c, "expected a string, got %s", core_avro_jtype_(j));
        if (!core_avro_utf8_valid((const uint8_t *)j->valuestring, strlen(j->valuestring)))
            return core_avro_jerr_(c, "string is not valid UTF-8");
        return avro_value_set_string_len(dst, j->valuestring, strlen(j->valuestring) + 1)
                   ? set_failed(c, "string") : 0;
    case AVN_BYTES:
    case AVN_FIXED: {
        uint8_t *b;
        size_t len;
        int rc;

        if (n->logical == AVL_DECIMAL && !c->dflt)
            return set_decimal(c, n, j, dst);
        if (json_bytes(c, j, &b, &len) != 0)
            return -1;
        if (n->type == AVN_FIXED && len != n->size) {
            free(b);
            return core_avro_jerr_(c, "fixed needs %zu bytes, got %zu", n->size, len);
        }
        rc = n->type == AVN_BYTES ? avro_value_set_bytes(dst, b, len)
                                  : avro_value_set_fixed(dst, b, len);
        free(b);
        return rc ? set_failed(c, core_avro_type_name_(n)) : 0;
    }
    case AVN_ENUM: {
        size_t i;

        if (!cJSON_IsString(j))
            return core_avro_jerr_(c, "expected a symbol of enum %s, got %s", n->fullname, core_avro_jtype_(j));
        for (i = 0; i < n->nsymbols; i++)
            if (strcmp(n->symbols[i], j->valuestring) == 0)
                return avro_value_set_enum(dst, (int)i) ? set_failed(c, "enum") : 0;
        return core_avro_jerr_(c, "not a symbol of enum %s", n->fullname);
    }
    case AVN_UNION:
        return set_union(c, n, j, dst);
    case AVN_RECORD:
        return set_record(c, n, j, dst);
    case AVN_ARRAY: {
        const cJSON *e;
        size_t i = 0;

        if (!cJSON_IsArray(j))
            return core_avro_jerr_(c, "expected an array, got %s", core_avro_jtype_(j));
        cJSON_ArrayForEach(e, j) {
            avro_value_t ev;

            if (core_avro_jpush_(c, NULL, i++) != 0)
                return -1;
            if (avro_value_append(dst, &ev, NULL))
                return set_failed(c, "array item");
            if (from_json(c, n->items, e, &ev) != 0)
                return -1;
            c->plen--;
        }
        return 0;
    }
    case AVN_MAP: {
        const cJSON *e;
        size_t i = 0;

        if (!cJSON_IsObject(j))
            return core_avro_jerr_(c, "expected an object (map), got %s", core_avro_jtype_(j));
        cJSON_ArrayForEach(e, j) {
            avro_value_t ev;

            /* A map key is data (it may be personal): the path shows the
             * entry's position, as for an array item. */
            if (core_avro_jpush_(c, NULL, i++) != 0)
                return -1;
            if (!core_avro_utf8_valid((const uint8_t *)e->string, strlen(e->string)))
                return core_avro_jerr_(c, "map key is not valid UTF-8");
            if (avro_value_add(dst, e->string, &ev, NULL, NULL))
                return set_failed(c, "map entry");
            if (from_json(c, n->items, e, &ev) != 0)
                return -1;
            c->plen--;
        }
        return 0;
    }
    }
    return core_avro_jerr_(c, "unknown schema node");
}

core_err_t core_avro_from_json_opts(const core_avro_schema_t *s, const cJSON *json,
                                    unsigned flags, avro_value_t *out, char *errstr,
                                    size_t errstr_size)
{
    struct jctx c;
    avro_value_t v;

    if (!json) {
        core_errstr(errstr, errstr_size, "record: no JSON given");
        return CORE_ERR_INVALID;
    }
    if (avro_generic_value_new(s->iface, &v) != 0) {
        core_errstr(errstr, errstr_size, "%s: cannot allocate a value", s->name);
        return CORE_ERR_NOMEM;
    }
    memset(&c, 0, sizeof(c));
    c.err = errstr;
    c.errsz = errstr_size;
    c.flags = flags;
    if (from_json(&c, s->root, json, &v) != 0) {
        avro_value_decref(&v);
        return CORE_ERR_INVALID;
    }
    *out = v;
    return CORE_OK;
}

core_err_t core_avro_from_json(const core_avro_schema_t *s, const cJSON *json,
                               avro_value_t *out, char *errstr, size_t errstr_size)
{
    return core_avro_from_json_opts(s, json, 0, out, errstr, errstr_size);
}
