/* core_avro_json.c — Avro values -> natural JSON (the forms are described
 * in core_avro.h), and checking that a value converts. JSON -> Avro is in
 * core_avro_from_json.c, one field read as natural JSON shows it (the path
 * compiler) in core_avro_path.c; UTF-8, decimals and the ISO 8601 calendar
 * in core_avro_utf8.c, core_avro_decimal.c and core_avro_time.c. */
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

/* ---- path-carrying context ---------------------------------------------- */

int core_avro_jerr_(struct jctx *c, const char *fmt, ...)
{
    char msg[256], path[256];
    size_t pos = 0;
    int i;
    va_list ap;

    c->said = true;
    if (!c->err || !c->errsz)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    path[0] = '\0';
    for (i = 0; i < c->plen && pos < sizeof(path) - 1; i++) {
        int n = c->path[i].name
                    ? snprintf(path + pos, sizeof(path) - pos, "%s%s", pos ? "." : "",
                               c->path[i].name)
                    : snprintf(path + pos, sizeof(path) - pos, "[%zu]", c->path[i].index);
        if (n < 0)
            break;
        pos += (size_t)n;
    }
    core_errstr(c->err, c->errsz, "%s: %s", path[0] ? path : "record", msg);
    return -1;
}

int core_avro_jpush_(struct jctx *c, const char *name, size_t index)
{
    if (c->plen >= JSON_MAX_DEPTH)
        return core_avro_jerr_(c, "nesting deeper than %d", JSON_MAX_DEPTH);
    c->path[c->plen].name = name;
    c->path[c->plen].index = index;
    c->plen++;
    return 0;
}

const char *core_avro_jtype_(const cJSON *j)
{
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j) || cJSON_IsRaw(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

const char *core_avro_type_name_(const struct avn *n)
{
    static const char *const names[] = {
        [AVN_NULL] = "null", [AVN_BOOLEAN] = "boolean", [AVN_INT] = "int",
        [AVN_LONG] = "long", [AVN_FLOAT] = "float", [AVN_DOUBLE] = "double",
        [AVN_BYTES] = "bytes", [AVN_STRING] = "string", [AVN_RECORD] = "record",
        [AVN_ENUM] = "enum", [AVN_ARRAY] = "array", [AVN_MAP] = "map",
        [AVN_UNION] = "union", [AVN_FIXED] = "fixed",
    };

    if (n->logical == AVL_DECIMAL) return "decimal";
    if (n->logical == AVL_TS_MILLIS) return "timestamp-millis";
    if (n->logical == AVL_TS_MICROS) return "timestamp-micros";
    if (n->logical == AVL_DATE) return "date";
    return names[n->type];
}

/* ---- Avro -> JSON ------------------------------------------------------- */


static cJSON *long_json(int64_t v)
{
    char buf[32];

    if (v >= -EXACT_DOUBLE_MAX && v <= EXACT_DOUBLE_MAX)
        return cJSON_CreateNumber((double)v);
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

/* Bytes as natural JSON text: printable ASCII but '\' as is, '\' as "\\",
 * any other byte "\xHH". out holds at least 4 * len + 1 bytes. */
size_t core_avro_bytes_text_(const uint8_t *b, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *q = out;
    size_t i;

    for (i = 0; i < len; i++) {
        if (b[i] == '\\') {
            *q++ = '\\';
            *q++ = '\\';
        } else if (b[i] >= 0x20 && b[i] < 0x7f) {
            *q++ = (char)b[i];
        } else {
            *q++ = '\\';
            *q++ = 'x';
            *q++ = hex[b[i] >> 4];
            *q++ = hex[b[i] & 15];
        }
    }
    *q = '\0';
    return (size_t)(q - out);
}

/* Bytes core_avro_bytes_text_() writes, the NUL included. */
size_t core_avro_bytes_text_size_(const uint8_t *b, size_t len)
{
    size_t n = 1, i;

    for (i = 0; i < len; i++)
        n += b[i] == '\\' ? 2 : b[i] >= 0x20 && b[i] < 0x7f ? 1 : 4;
    return n;
}

static cJSON *bytes_json(const uint8_t *b, size_t len)
{
    char *s;
    cJSON *j;

    if (len > (SIZE_MAX - 1) / 4 || !(s = malloc(len * 4 + 1)))
        return NULL;
    core_avro_bytes_text_(b, len, s);
    j = cJSON_CreateString(s);
    free(s);
    return j;
}

/* The natural JSON of the Avro value v of node n. Longer than ~120 lines
 * for a reason: one case per Avro type and logical type, side by side with
 * from_json's (core_avro_from_json.c). */
static cJSON *to_json(struct jctx *c, const struct avn *n, avro_value_t *v)
{
    cJSON *j = NULL;

    switch (n->type) {
    case AVN_NULL:
        return cJSON_CreateNull();
    case AVN_BOOLEAN: {
        int b;

        if (avro_value_get_boolean(v, &b))
            break;
        return cJSON_CreateBool(b);
    }
    case AVN_INT: {
        int32_t i;

        if (avro_value_get_int(v, &i))
            break;
        if (n->logical == AVL_DATE) {
            char buf[CORE_AVRO_TIME_SIZE];

            if (core_avro_time_format((int64_t)i * 86400000, buf, sizeof(buf)) > 0) {
                buf[10] = '\0';
                return cJSON_CreateString(buf);
            }
        }
        return cJSON_CreateNumber(i);
    }
    case AVN_LONG: {
        int64_t l;
        char buf[CORE_AVRO_TIME_SIZE];

        if (avro_value_get_long(v, &l))
            break;
        if (n->logical == AVL_TS_MILLIS && core_avro_time_format(l, buf, sizeof(buf)) > 0)
            return cJSON_CreateString(buf);
        if (n->logical == AVL_TS_MICROS && core_avro_time_format_us(l, buf, sizeof(buf)) > 0)
            return cJSON_CreateString(buf);
        return long_json(l);
    }
    case AVN_FLOAT: {
        float f;

        if (avro_value_get_float(v, &f))
            break;
        return cJSON_CreateNumber(f);
    }
    case AVN_DOUBLE: {
        double d;

        if (avro_value_get_double(v, &d))
            break;
        return cJSON_CreateNumber(d);
    }
    case AVN_BYTES:
    case AVN_FIXED: {
        const void *b;
        size_t sz;
        int rc = n->type == AVN_BYTES ? avro_value_get_bytes(v, &b, &sz)
                                      : avro_value_get_fixed(v, &b, &sz);
        if (rc)
            break;
        if (n->logical == AVL_DECIMAL) {
            char buf[CORE_AVRO_DECIMAL_SIZE], e[128];

            if (core_avro_decimal_format(b, sz, n->scale, buf, sizeof(buf), e,
                                         sizeof(e)) != CORE_OK) {
                core_avro_jerr_(c, "%s", e);
                return NULL;
            }
            return cJSON_CreateString(buf);
        }
        return bytes_json(b, sz);
    }
    case AVN_STRING: {
        const char *s;
        size_t sz;

        if (avro_value_get_string(v, &s, &sz))
            break;
        return cJSON_CreateString(s ? s : "");
    }
    case AVN_ENUM: {
        int e;

        if (avro_value_get_enum(v, &e))
            break;
        if (e < 0 || (size_t)e >= n->nsymbols) {
            core_avro_jerr_(c, "enum index %d out of range", e);
            return NULL;
        }
        return cJSON_CreateString(n->symbols[e]);
    }
    case AVN_UNION: {
        int d;
        avro_value_t br;

        if (avro_value_get_discriminant(v, &d))
            break;
        if (d < 0 || (size_t)d >= n->nbranches ||
            avro_value_get_current_branch(v, &br)) {
            core_avro_jerr_(c, "union has no branch set");
            return NULL;
        }
        return to_json(c, n->branches[d], &br);
    }
    case AVN_RECORD: {
        size_t i;

        if (core_avro_jpush_(c, NULL, 0) != 0)
            return NULL;
        c->plen--;
        if (!(j = cJSON_CreateObject()))
            break;
        for (i = 0; i < n->nfields; i++) {
            avro_value_t f;
            cJSON *fj;

            core_avro_jpush_(c, n->fields[i].name, 0);
            if (avro_value_get_by_index(v, i, &f, NULL) != 0) {
                core_avro_jerr_(c, "value does not match the schema");
                cJSON_Delete(j);
                return NULL;
            }
            fj = to_json(c, n->fields[i].type, &f);
            c->plen--;
            if (!fj) {
                cJSON_Delete(j);
                return NULL;
            }
            cJSON_AddItemToObject(j, n->fields[i].name, fj);
        }
        return j;
    }
    case AVN_ARRAY:
    case AVN_MAP: {
        size_t i, sz;

        if (avro_value_get_size(v, &sz) != 0)
            break;
        if (core_avro_jpush_(c, NULL, 0) != 0)
            return NULL;
        c->plen--;
        j = n->type == AVN_ARRAY ? cJSON_CreateArray() : cJSON_CreateObject();
        if (!j)
            break;
        for (i = 0; i < sz; i++) {
            avro_value_t e;
            const char *key = NULL;
            cJSON *ej;

            core_avro_jpush_(c, NULL, i);
            if (avro_value_get_by_index(v, i, &e, &key) != 0) {
                core_avro_jerr_(c, "value does not match the schema");
                cJSON_Delete(j);
                return NULL;
            }
            ej = to_json(c, n->items, &e);
            c->plen--;
            if (!ej) {
                cJSON_Delete(j);
                return NULL;
            }
            if (n->type == AVN_ARRAY)
                cJSON_AddItemToArray(j, ej);
            else
                cJSON_AddItemToObject(j, key ? key : "", ej);
        }
        return j;
    }
    }
    core_avro_jerr_(c, "value is not a %s", core_avro_type_name_(n));
    return NULL;
}

cJSON *core_avro_to_json(const core_avro_schema_t *s, avro_value_t *value,
                         char *errstr, size_t errstr_size)
{
    struct jctx c;
    cJSON *j;

    memset(&c, 0, sizeof(c));
    c.err = errstr;
    c.errsz = errstr_size;
    j = to_json(&c, s->root, value);
    if (!j && !c.said)
        core_errstr(errstr, errstr_size, "%s: out of memory", s->name);
    return j;
}

/* ---- checking without converting --------------------------------------- */

/* Whether a value of n may hold something to_json() refuses on a value of
 * its own schema: a decimal (wider than 128 bits), an enum index, a union
 * or an element below. Scalars of other types always convert. */
static bool nat_may_fail(const struct avn *n)
{
    return n->logical == AVL_DECIMAL || n->type == AVN_ENUM || n->type == AVN_UNION ||
           n->type == AVN_RECORD || n->type == AVN_ARRAY || n->type == AVN_MAP;
}

/* to_json()'s walk and errors, building nothing. */
_Static_assert(CORE_AVRO_DECIMAL_SIZE >= 39 + 3 && CORE_AVRO_DECIMAL_MAX_PRECISION < 39,
               "a 128-bit decimal always formats into CORE_AVRO_DECIMAL_SIZE");

static int nat_check(struct jctx *c, const struct avn *n, avro_value_t *v)
{
    switch (n->type) {
    case AVN_BYTES:
    case AVN_FIXED: {
        const void *b;
        size_t sz;
        char buf[CORE_AVRO_DECIMAL_SIZE], e[128];

        if (n->logical != AVL_DECIMAL)
            return 0;
        if ((n->type == AVN_BYTES ? avro_value_get_bytes(v, &b, &sz)
                                  : avro_value_get_fixed(v, &b, &sz)) != 0)
            return core_avro_jerr_(c, "value is not a %s", core_avro_type_name_(n));
        /* Up to 128 bits with a supported scale always formats (at most 39
         * digits, sign, point: within CORE_AVRO_DECIMAL_SIZE): no need to. */
        if (sz <= 16 && n->scale >= 0 && n->scale <= CORE_AVRO_DECIMAL_MAX_PRECISION)
            return 0;
        if (core_avro_decimal_format(b, sz, n->scale, buf, sizeof(buf), e, sizeof(e)) !=
            CORE_OK)
            return core_avro_jerr_(c, "%s", e);
        return 0;
    }
    case AVN_ENUM: {
        int e;

        if (avro_value_get_enum(v, &e))
            return core_avro_jerr_(c, "value is not a %s", core_avro_type_name_(n));
        if (e < 0 || (size_t)e >= n->nsymbols)
            return core_avro_jerr_(c, "enum index %d out of range", e);
        return 0;
    }
    case AVN_UNION: {
        int d;
        avro_value_t br;

        if (avro_value_get_discriminant(v, &d))
            return core_avro_jerr_(c, "value is not a %s", core_avro_type_name_(n));
        if (d < 0 || (size_t)d >= n->nbranches || avro_value_get_current_branch(v, &br))
            return core_avro_jerr_(c, "union has no branch set");
        return nat_may_fail(n->branches[d]) ? nat_check(c, n->branches[d], &br) : 0;
    }
    case AVN_RECORD: {
        size_t i;

        if (core_avro_jpush_(c, NULL, 0) != 0)
            return -1;
        c->plen--;
        for (i = 0; i < n->nfields; i++) {
            avro_value_t f;
            int rc;

            if (!nat_may_fail(n->fields[i].type))
                continue;
            core_avro_jpush_(c, n->fields[i].name, 0);
            if (avro_value_get_by_index(v, i, &f, NULL) != 0)
                return core_avro_jerr_(c, "value does not match the schema");
            rc = nat_check(c, n->fields[i].type, &f);
            c->plen--;
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    case AVN_ARRAY:
    case AVN_MAP: {
        size_t i, sz;

        if (avro_value_get_size(v, &sz) != 0)
            return core_avro_jerr_(c, "value is not a %s", core_avro_type_name_(n));
        if (core_avro_jpush_(c, NULL, 0) != 0)
            return -1;
        c->plen--;
        if (!nat_may_fail(n->items))
            return 0;
        for (i = 0; i < sz; i++) {
            avro_value_t e;
            int rc;

            core_avro_jpush_(c, NULL, i);
            if (avro_value_get_by_index(v, i, &e, NULL) != 0)
                return core_avro_jerr_(c, "value does not match the schema");
            rc = nat_check(c, n->items, &e);
            c->plen--;
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    default:
        return 0;
    }
}

core_err_t core_avro_natural_check(const core_avro_schema_t *s, avro_value_t *value,
                                   char *errstr, size_t errstr_size)
{
    struct jctx c;

    memset(&c, 0, sizeof(c));
    c.err = errstr;
    c.errsz = errstr_size;
    return nat_check(&c, s->root, value) == 0 ? CORE_OK : CORE_ERR_INVALID;
}
