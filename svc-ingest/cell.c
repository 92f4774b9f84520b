/* cell.c — one cell of text (a CSV field, a JSON scalar's text) into one
 * Avro leaf of the dataset's record, exactly as written: integers and
 * decimals from their text, timestamps and dates in ISO 8601, enums by
 * symbol, null / "" / the default for an empty or absent cell (mapper.h
 * has the rules). */
#include "mapper_int.h"

#include "tributary/core_common.h"
#include "tributary/core_json.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- cells ------------------------------------------------------------- */

void cell_err(ingest_line_error *e, const char *column, const char *category,
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
void cell_val(ingest_line_error *e, const char *field, const char *s, size_t len)
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
const char *cell_trimmed(const char *s, size_t len, char *tmp, size_t tmpsize)
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

bool cell_parse_ll(const char *s, long long *out)
{
    char *end;

    if (!*s)
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *end == '\0' && errno == 0;
}

bool cell_all_int(const char *s)
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
bool cell_blank_edge(const char *s, size_t len)
{
    return len && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t');
}

/* Set v (already the value branch) from text. @returns 0 or 1 (line error).
 * Longer than most (about 180 lines) for a reason: one case per Avro leaf
 * kind, each the exact reading of its text, side by side so the rules of
 * mapper.h can be checked against them in one place. */
static int set_text(const struct leaf *l, avro_value_t *v, const char *s, size_t len,
                    ingest_line_error *e)
{
    char tmp[128], err[256];
    const char *t;
    long long ll;

    if (l->kind != L_STRING && l->kind != L_BYTES && l->kind != L_ENUM && cell_blank_edge(s, len)) {
        cell_err(e, l->name, "type", "a blank before or after the value");
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
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        if (!t || !cell_all_int(t)) {
            cell_err(e, l->name, "type", "not an integer");
            return 1;
        }
        if (!cell_parse_ll(t, &ll) || (l->kind == L_INT && (ll < INT32_MIN || ll > INT32_MAX))) {
            cell_err(e, l->name, "range", "integer out of range for %s", l->kind == L_INT ? "int" : "long");
            return 1;
        }
        if (l->kind == L_INT ? avro_value_set_int(v, (int32_t)ll) : avro_value_set_long(v, ll))
            goto avro_fail;
        return 0;
    case L_FLOAT:
    case L_DOUBLE: {
        char *end;
        double d;
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        if (!t || !*t) {
            cell_err(e, l->name, "type", "not a number");
            return 1;
        }
        errno = 0;
        d = strtod(t, &end);
        if (*end != '\0' || end == t) {
            cell_err(e, l->name, "type", "not a number");
            return 1;
        }
        if (!isfinite(d) || (errno == ERANGE && fabs(d) > 1.0) ||
            (l->kind == L_FLOAT && fabs(d) > FLT_MAX)) {
            cell_err(e, l->name, "range", "number out of range for %s",
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
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        for (size_t i = 0; t && i < CORE_ARRAY_SIZE(yes); i++) {
            if (strcasecmp(t, yes[i]) == 0)
                return avro_value_set_boolean(v, 1) ? (cell_err(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
            if (strcasecmp(t, no[i]) == 0)
                return avro_value_set_boolean(v, 0) ? (cell_err(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
        }
        cell_err(e, l->name, "type", "not a boolean (true/false, yes/no, 1/0)");
        return 1;
    }
    case L_ENUM: {
        int i = 0;
        const cJSON *sym;
        cJSON_ArrayForEach(sym, l->symbols) {
            if (cJSON_IsString(sym) && strlen(sym->valuestring) == len &&
                memcmp(sym->valuestring, s, len) == 0)
                return avro_value_set_enum(v, i) ? (cell_err(e, l->name, "type", "%s", avro_strerror()), 1) : 0;
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
            cell_err(e, l->name, "type", "not a symbol of %s (%s)", l->type_name, list);
        }
        return 1;
    }
    case L_DECIMAL: {
        uint8_t out[16], fx[64];
        size_t outlen;
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        if (!t) {
            cell_err(e, l->name, "type", "not a decimal number");
            return 1;
        }
        if (core_avro_decimal_parse(t, l->precision, l->scale, out, &outlen, err, sizeof(err))) {
            cell_err(e, l->name, strstr(err, "digits") ? "range" : "type", "%s", err);
            return 1;
        }
        if (l->fixed_size) {
            if (outlen > l->fixed_size || l->fixed_size > sizeof(fx)) {
                cell_err(e, l->name, "range", "decimal does not fit fixed(%zu)", l->fixed_size);
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
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        if (!t) {
            cell_err(e, l->name, "type", "not a timestamp");
            return 1;
        }
        if (cell_all_int(t)) {
            if (!cell_parse_ll(t, &ll)) {
                cell_err(e, l->name, "range", "timestamp out of range");
                return 1;
            }
            x = ll;
        } else if (core_avro_time_parse_exact(t, l->kind == L_TS_US, &x, err, sizeof(err)) !=
                   CORE_OK) {
            cell_err(e, l->name, "type", "%s", err);
            return 1;
        }
        if (avro_value_set_long(v, x))
            goto avro_fail;
        return 0;
    }
    case L_DATE: {
        int64_t days;
        t = cell_trimmed(s, len, tmp, sizeof(tmp));
        if (t && cell_all_int(t) && cell_parse_ll(t, &ll) && ll >= INT32_MIN && ll <= INT32_MAX) {
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
                cell_err(e, l->name, "type", "not a date (YYYY-MM-DD)");
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
    cell_err(e, l->name, "type", "type not supported in CSV");
    return 1;
avro_fail:
    cell_err(e, l->name, "type", "%s", avro_strerror());
    return 1;
}

int cell_set_leaf(const struct leaf *l, avro_value_t *root, const char *cell, size_t len,
                  bool present, ingest_line_error *e)
{
    avro_value_t cur = *root, child, br;

    for (size_t i = 0; i < l->depth; i++) {
        if (avro_value_get_by_index(&cur, l->path[i], &child, NULL)) {
            cell_err(e, l->name, "type", "%s", avro_strerror());
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
        cell_err(e, l->name, "missing", "empty value for a required field");
        return 1;
    }
    if (l->nullable) {
        if (avro_value_set_branch(&cur, l->val_branch, &br))
            goto avro_fail;
        return set_text(l, &br, cell, len, e);
    }
    return set_text(l, &cur, cell, len, e);
avro_fail:
    cell_err(e, l->name, "type", "%s", avro_strerror());
    return 1;
}

