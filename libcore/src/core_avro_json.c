/* core_avro_json.c — Avro values <-> natural JSON, and the decimal and
 * ISO 8601 helpers mappers use. The forms are described in core_avro.h. */
#include "core_avro_int.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest JSON/value nesting the converters follow. */
#define JSON_MAX_DEPTH 64

/* ---- UTF-8 -------------------------------------------------------------- */

bool core_avro_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- decimals ----------------------------------------------------------- */

typedef unsigned __int128 u128;
typedef __int128 i128;

core_err_t core_avro_decimal_parse(const char *text, int precision, int scale,
                                   uint8_t out[16], size_t *outlen, char *errstr,
                                   size_t errstr_size)
{
    char digits[CORE_AVRO_DECIMAL_MAX_PRECISION + 2];
    int nd = 0;
    int64_t frac = 0, e10, exp = 0, ndigits;
    bool neg = false, dot = false, any = false;
    const char *p = text;
    u128 v = 0;
    i128 sv;
    uint8_t be[16];
    size_t i, start;

    if (precision < 1 || precision > CORE_AVRO_DECIMAL_MAX_PRECISION || scale < 0 ||
        scale > precision) {
        core_errstr(errstr, errstr_size, "decimal(%d, %d) is not supported", precision,
                    scale);
        return CORE_ERR_INVALID;
    }
    if (!p)
        goto notnum;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            any = true;
            if (dot)
                frac++;
            if (nd == 0 && *p == '0')
                continue;
            if (nd >= (int)sizeof(digits) - 1) {
                /* more significant digits than any supported precision; only
                 * trailing zeros could still make it fit, so keep counting */
                if (*p != '0') {
                    core_errstr(errstr, errstr_size,
                                "decimal has more than %d digits", CORE_AVRO_DECIMAL_MAX_PRECISION);
                    return CORE_ERR_INVALID;
                }
                if (!dot)
                    exp++; /* a dropped integer zero scales by 10 */
                else
                    frac--; /* a dropped fractional zero changes nothing */
                continue;
            }
            digits[nd++] = *p;
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (!any)
        goto notnum;
    if (*p == 'e' || *p == 'E') {
        bool eneg = false;
        int ed = 0;
        int64_t ev = 0;

        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        if (!(*p >= '0' && *p <= '9'))
            goto notnum;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++ed > 4)
                goto range;
            ev = ev * 10 + (*p - '0');
        }
        exp += eneg ? -ev : ev;
    }
    if (*p)
        goto notnum;
    e10 = exp - frac; /* value = digits * 10^e10 */
    while (nd > 0 && digits[nd - 1] == '0') {
        nd--;
        e10++;
    }
    if (nd == 0) {
        out[0] = 0;
        *outlen = 1;
        return CORE_OK;
    }
    if (e10 < 0 && -e10 > scale) {
        core_errstr(errstr, errstr_size, "decimal has %lld decimals, scale is %d",
                    (long long)-e10, scale);
        return CORE_ERR_INVALID;
    }
    ndigits = nd + e10 + scale;
    if (ndigits > precision) {
        core_errstr(errstr, errstr_size, "decimal has %lld digits, precision is %d",
                    (long long)ndigits, precision);
        return CORE_ERR_INVALID;
    }
    for (i = 0; i < (size_t)nd; i++)
        v = v * 10 + (u128)(digits[i] - '0');
    for (i = 0; i < (size_t)(e10 + scale); i++)
        v *= 10;
    sv = neg ? -(i128)v : (i128)v;
    for (i = 0; i < 16; i++)
        be[15 - i] = (uint8_t)((u128)sv >> (8 * i));
    /* minimal two's complement: drop redundant sign bytes */
    for (start = 0; start < 15; start++) {
        if (be[start] == 0x00 && !(be[start + 1] & 0x80))
            continue;
        if (be[start] == 0xff && (be[start + 1] & 0x80))
            continue;
        break;
    }
    memcpy(out, be + start, 16 - start);
    *outlen = 16 - start;
    return CORE_OK;
notnum:
    core_errstr(errstr, errstr_size, "not a decimal number");
    return CORE_ERR_INVALID;
range:
    core_errstr(errstr, errstr_size, "decimal exponent out of range");
    return CORE_ERR_INVALID;
}

core_err_t core_avro_decimal_format(const void *bytes, size_t len, int scale,
                                    char *buf, size_t size, char *errstr,
                                    size_t errstr_size)
{
    const uint8_t *b = bytes;
    char tmp[CORE_AVRO_DECIMAL_SIZE];
    size_t skip = 0, i, nd = 0, pos = 0;
    uint8_t sign;
    u128 u = 0, mag;
    bool neg;

    if (scale < 0 || scale > CORE_AVRO_DECIMAL_MAX_PRECISION) {
        core_errstr(errstr, errstr_size, "decimal scale %d is not supported", scale);
        return CORE_ERR_INVALID;
    }
    sign = (len && (b[0] & 0x80)) ? 0xff : 0x00;
    if (len > 16) {
        skip = len - 16;
        for (i = 0; i < skip; i++)
            if (b[i] != sign)
                goto wide;
        if ((b[skip] & 0x80) != (sign & 0x80))
            goto wide;
    }
    u = sign ? ~(u128)0 : 0; /* sign-extend, then shift the bytes in */
    for (i = skip; i < len; i++)
        u = (u << 8) | b[i];
    neg = sign != 0;
    mag = neg ? (u128)0 - u : u;
    do {
        tmp[nd++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    } while (mag);
    while (nd < (size_t)scale + 1)
        tmp[nd++] = '0';
    /* sign, digits, '.', NUL */
    if (size < nd + (neg ? 1 : 0) + (scale ? 1 : 0) + 1) {
        core_errstr(errstr, errstr_size, "decimal text needs more than %zu bytes", size);
        return CORE_ERR_INVALID;
    }
    if (neg)
        buf[pos++] = '-';
    for (i = nd; i > 0; i--) {
        if (scale && i == (size_t)scale)
            buf[pos++] = '.';
        buf[pos++] = tmp[i - 1];
    }
    buf[pos] = '\0';
    return CORE_OK;
wide:
    core_errstr(errstr, errstr_size, "decimal of %zu bytes is wider than 128 bits", len);
    return CORE_ERR_INVALID;
}

/* ---- time --------------------------------------------------------------- */

#define MIN_MS (-62135596800000LL) /* 0001-01-01T00:00:00.000Z */
#define MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999Z */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp, yy;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

static int digits_n(const char **pp, int n, int *out)
{
    const char *p = *pp;
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *pp = p + n;
    *out = v;
    return 0;
}

/* "YYYY-MM-DD" at *pp: days since the epoch. */
static int parse_date(const char **pp, int64_t *days, const char **why)
{
    int y, m, d;

    if (digits_n(pp, 4, &y) || *(*pp)++ != '-' || digits_n(pp, 2, &m) ||
        *(*pp)++ != '-' || digits_n(pp, 2, &d)) {
        *why = "expected YYYY-MM-DD";
        return -1;
    }
    if (y < 1) { *why = "year out of range"; return -1; }
    if (m < 1 || m > 12) { *why = "month out of range"; return -1; }
    if (d < 1 || d > days_in_month(y, m)) { *why = "day out of range"; return -1; }
    *days = days_from_civil(y, m, d);
    return 0;
}

/* units: 1000 (ms) or 1000000 (us) per second. exact: a fraction finer
 * than the unit is an error (else its extra digits are dropped). */
static core_err_t time_parse(const char *text, int64_t units, bool exact, int64_t *outp,
                             char *errstr, size_t errstr_size)
{
    const char *p = text, *why = NULL;
    int64_t days, frac = 0, fscale = units, off = 0;
    int hh, mi, ss = 0, oh = 0, om = 0, fd = 0;

    if (!p) {
        why = "no text";
        goto bad;
    }
    if (parse_date(&p, &days, &why) != 0)
        goto bad;
    if (*p != 'T' && *p != 't' && *p != ' ') {
        why = *p ? "expected 'T' between date and time" : "time and zone missing";
        goto bad;
    }
    p++;
    if (digits_n(&p, 2, &hh) || *p++ != ':' || digits_n(&p, 2, &mi)) {
        why = "expected hh:mm";
        goto bad;
    }
    if (*p == ':') {
        p++;
        if (digits_n(&p, 2, &ss)) {
            why = "expected two digits of seconds";
            goto bad;
        }
    }
    if (hh > 23) { why = "hour out of range"; goto bad; }
    if (mi > 59) { why = "minute out of range"; goto bad; }
    if (ss > 59) { why = "second out of range"; goto bad; }
    if (*p == '.' || *p == ',') {
        p++;
        if (*p < '0' || *p > '9') {
            why = "empty fraction of a second";
            goto bad;
        }
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++fd > 9) {
                why = "more than 9 digits of a fraction";
                goto bad;
            }
            if (fscale >= 10) { /* keep what the unit holds, drop the rest */
                fscale /= 10;
                frac += (*p - '0') * fscale;
            } else if (exact && *p != '0') {
                why = units == 1000 ? "a fraction finer than the millisecond the field holds"
                                    : "a fraction finer than the microsecond the field holds";
                goto bad;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;

        if (digits_n(&p, 2, &oh)) {
            why = "expected a zone offset +hh:mm";
            goto bad;
        }
        if (*p == ':')
            p++;
        if (*p && digits_n(&p, 2, &om)) {
            why = "expected a zone offset +hh:mm";
            goto bad;
        }
        if (oh > 23 || om > 59) {
            why = "zone offset out of range";
            goto bad;
        }
        off = sign * (int64_t)(oh * 60 + om) * 60;
    } else {
        why = *p ? "unexpected text after the time" : "zone missing (add Z or +hh:mm)";
        goto bad;
    }
    if (*p) {
        why = "unexpected text after the zone";
        goto bad;
    }
    {
        int64_t secs = ((days * 24 + hh) * 60 + mi) * 60 + ss - off;
        int64_t ms = secs * 1000 + frac / (units / 1000);

        if (ms < MIN_MS || ms > MAX_MS) {
            why = "out of the range 0001-9999";
            goto bad;
        }
        *outp = secs * units + frac;
    }
    return CORE_OK;
bad:
    core_errstr(errstr, errstr_size, "bad date-time: %s", why); /* never the text */
    return CORE_ERR_INVALID;
}

core_err_t core_avro_time_parse(const char *text, int64_t *msp, char *errstr,
                                size_t errstr_size)
{
    return time_parse(text, 1000, false, msp, errstr, errstr_size);
}

core_err_t core_avro_time_parse_us(const char *text, int64_t *usp, char *errstr,
                                   size_t errstr_size)
{
    return time_parse(text, 1000000, false, usp, errstr, errstr_size);
}

core_err_t core_avro_time_parse_exact(const char *text, bool micros, int64_t *outp,
                                      char *errstr, size_t errstr_size)
{
    return time_parse(text, micros ? 1000000 : 1000, true, outp, errstr, errstr_size);
}

/* x (0 <= x < 10^n) as exactly n decimal digits. */
static void put_digits(char *p, int64_t x, int n)
{
    while (n-- > 0) {
        p[n] = (char)('0' + x % 10);
        x /= 10;
    }
}

static int time_format(int64_t t, int64_t units, int fdigits, char *buf, size_t size)
{
    int64_t secs, sub, days, sod;
    int y, m, d, n;

    if (t < MIN_MS * (units / 1000) || t > MAX_MS * (units / 1000) + (units / 1000 - 1))
        return -1;
    secs = t / units;
    sub = t % units;
    if (sub < 0) {
        sub += units;
        secs--;
    }
    days = secs / 86400;
    sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return -1;
    /* "%04d-%02d-%02dT%02d:%02d:%02d.%0*lldZ", without printf (hot path) */
    n = 21 + fdigits;
    if ((size_t)n >= size)
        return -1;
    put_digits(buf, y, 4);
    buf[4] = '-';
    put_digits(buf + 5, m, 2);
    buf[7] = '-';
    put_digits(buf + 8, d, 2);
    buf[10] = 'T';
    put_digits(buf + 11, sod / 3600, 2);
    buf[13] = ':';
    put_digits(buf + 14, sod / 60 % 60, 2);
    buf[16] = ':';
    put_digits(buf + 17, sod % 60, 2);
    buf[19] = '.';
    put_digits(buf + 20, sub, fdigits);
    buf[20 + fdigits] = 'Z';
    buf[n] = '\0';
    return n;
}

int core_avro_time_format(int64_t ms, char *buf, size_t size)
{
    return time_format(ms, 1000, 3, buf, size);
}

int core_avro_time_format_us(int64_t us, char *buf, size_t size)
{
    return time_format(us, 1000000, 6, buf, size);
}

/* ---- path-carrying context ---------------------------------------------- */

struct jseg {
    const char *name;
    size_t index;
};

struct jctx {
    char *err;
    size_t errsz;
    unsigned flags;
    bool dflt;   /* converting a schema default (Avro JSON form) */
    bool said;   /* an error message was written */
    struct jseg path[JSON_MAX_DEPTH + 2];
    int plen;
};

static int jerr(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int jerr(struct jctx *c, const char *fmt, ...)
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

static int push(struct jctx *c, const char *name, size_t index)
{
    if (c->plen >= JSON_MAX_DEPTH)
        return jerr(c, "nesting deeper than %d", JSON_MAX_DEPTH);
    c->path[c->plen].name = name;
    c->path[c->plen].index = index;
    c->plen++;
    return 0;
}

static const char *jtype(const cJSON *j)
{
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j) || cJSON_IsRaw(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

static const char *type_name(const struct avn *n)
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

#define EXACT_DOUBLE_MAX 9007199254740992LL /* 2^53 */

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
static size_t bytes_text(const uint8_t *b, size_t len, char *out)
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

/* Bytes bytes_text() writes, the NUL included. */
static size_t bytes_text_size(const uint8_t *b, size_t len)
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
    bytes_text(b, len, s);
    j = cJSON_CreateString(s);
    free(s);
    return j;
}

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
                jerr(c, "%s", e);
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
            jerr(c, "enum index %d out of range", e);
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
            jerr(c, "union has no branch set");
            return NULL;
        }
        return to_json(c, n->branches[d], &br);
    }
    case AVN_RECORD: {
        size_t i;

        if (push(c, NULL, 0) != 0)
            return NULL;
        c->plen--;
        if (!(j = cJSON_CreateObject()))
            break;
        for (i = 0; i < n->nfields; i++) {
            avro_value_t f;
            cJSON *fj;

            push(c, n->fields[i].name, 0);
            if (avro_value_get_by_index(v, i, &f, NULL) != 0) {
                jerr(c, "value does not match the schema");
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
        if (push(c, NULL, 0) != 0)
            return NULL;
        c->plen--;
        j = n->type == AVN_ARRAY ? cJSON_CreateArray() : cJSON_CreateObject();
        if (!j)
            break;
        for (i = 0; i < sz; i++) {
            avro_value_t e;
            const char *key = NULL;
            cJSON *ej;

            push(c, NULL, i);
            if (avro_value_get_by_index(v, i, &e, &key) != 0) {
                jerr(c, "value does not match the schema");
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
    jerr(c, "value is not a %s", type_name(n));
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
            return jerr(c, "value is not a %s", type_name(n));
        /* Up to 128 bits with a supported scale always formats (at most 39
         * digits, sign, point: within CORE_AVRO_DECIMAL_SIZE): no need to. */
        if (sz <= 16 && n->scale >= 0 && n->scale <= CORE_AVRO_DECIMAL_MAX_PRECISION)
            return 0;
        if (core_avro_decimal_format(b, sz, n->scale, buf, sizeof(buf), e, sizeof(e)) !=
            CORE_OK)
            return jerr(c, "%s", e);
        return 0;
    }
    case AVN_ENUM: {
        int e;

        if (avro_value_get_enum(v, &e))
            return jerr(c, "value is not a %s", type_name(n));
        if (e < 0 || (size_t)e >= n->nsymbols)
            return jerr(c, "enum index %d out of range", e);
        return 0;
    }
    case AVN_UNION: {
        int d;
        avro_value_t br;

        if (avro_value_get_discriminant(v, &d))
            return jerr(c, "value is not a %s", type_name(n));
        if (d < 0 || (size_t)d >= n->nbranches || avro_value_get_current_branch(v, &br))
            return jerr(c, "union has no branch set");
        return nat_may_fail(n->branches[d]) ? nat_check(c, n->branches[d], &br) : 0;
    }
    case AVN_RECORD: {
        size_t i;

        if (push(c, NULL, 0) != 0)
            return -1;
        c->plen--;
        for (i = 0; i < n->nfields; i++) {
            avro_value_t f;
            int rc;

            if (!nat_may_fail(n->fields[i].type))
                continue;
            push(c, n->fields[i].name, 0);
            if (avro_value_get_by_index(v, i, &f, NULL) != 0)
                return jerr(c, "value does not match the schema");
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
            return jerr(c, "value is not a %s", type_name(n));
        if (push(c, NULL, 0) != 0)
            return -1;
        c->plen--;
        if (!nat_may_fail(n->items))
            return 0;
        for (i = 0; i < sz; i++) {
            avro_value_t e;
            int rc;

            push(c, NULL, i);
            if (avro_value_get_by_index(v, i, &e, NULL) != 0)
                return jerr(c, "value does not match the schema");
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

/* ---- one field, as natural JSON shows it -------------------------------- */

/* The smallest buffer core_avro_path_get() formats into (decimals, times,
 * longs); bytes need what bytes_text_size() says. */
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
            size_t need = bytes_text_size(b, sz);

            if (size < need)
                return nat_short(out, need, errstr, errstr_size);
            bytes_text(b, sz, buf);
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
    core_errstr(errstr, errstr_size, "value is not a %s", type_name(n));
    return CORE_ERR_INVALID;
}

/* ---- JSON -> Avro ------------------------------------------------------- */

static int from_json(struct jctx *c, const struct avn *n, const cJSON *j,
                     avro_value_t *dst);

static int set_failed(struct jctx *c, const char *what)
{
    return jerr(c, "cannot set %s: %s", what, avro_strerror());
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
            return jerr(c, "a number with a fraction is not a %s", what);
        case 2:
            return jerr(c, "out of range for %s", what);
        default:
            return jerr(c, "not a %s", what);
        }
        *out = v;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return jerr(c, "expected a number (%s), got %s", what, jtype(j));
    {
        double d = j->valuedouble;

        if (d != d || d != floor(d))
            return jerr(c, "not an integer");
        /* -2^63 is exact; 2^63 is the first double past INT64_MAX */
        if (d < (double)lo || d >= 9223372036854775808.0 || (hi < INT64_MAX && d > (double)hi))
            return jerr(c, "out of range for %s", what);
        /* A JSON number was parsed into a double: beyond 2^53 its digits are
         * already rounded, so refuse it rather than store another value. */
        if (d >= (double)EXACT_DOUBLE_MAX || d <= -(double)EXACT_DOUBLE_MAX)
            return jerr(c, "at or beyond 2^53, not exact as a JSON number: give it as a "
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
            return jerr(c, "not a number");
        if (!isfinite(*out))
            return jerr(c, "number out of range for %s", single ? "float" : "double");
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return jerr(c, "expected a number, got %s", jtype(j));
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
        return jerr(c, "expected a string (bytes), got %s", jtype(j));
    s = (const uint8_t *)j->valuestring;
    len = strlen((const char *)s);
    if (!(b = malloc(len + 1)))
        return jerr(c, "out of memory");
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
                return jerr(c, "default bytes hold a code point above U+00FF");
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
                return jerr(c, "bytes: a backslash must start \\\\ or \\xHH");
            }
            b[n++] = (uint8_t)(hi << 4 | lo);
            s += 4;
        } else if (*s >= 0x20 && *s < 0x7f) {
            b[n++] = *s++;
        } else {
            size_t at = (size_t)(s - (const uint8_t *)j->valuestring) + 1;

            free(b);
            /* the position, not the byte: the value may be personal */
            return jerr(c, "bytes: byte %zu is outside printable ASCII: write it as \\xHH",
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
            return jerr(c, "decimal is not a finite number");
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
            return jerr(c, "decimal given as a JSON number of more than 15 significant digits "
                        "is not exact as a double: give it as a string");
        t = text;
    } else {
        return jerr(c, "expected a decimal (string or number), got %s", jtype(j));
    }
    if (core_avro_decimal_parse(t, n->precision, n->scale, b, &len, e, sizeof(e)) != CORE_OK)
        return jerr(c, "%s", e);
    if (n->type == AVN_FIXED) {
        if (len > n->size)
            return jerr(c, "decimal does not fit in fixed(%zu)", n->size);
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
        return jerr(c, "expected an object (record %s), got %s", n->fullname, jtype(j));
    if (!(c->flags & CORE_AVRO_JSON_IGNORE_UNKNOWN)) {
        cJSON_ArrayForEach(k, j) {
            for (i = 0; i < n->nfields; i++)
                if (strcmp(n->fields[i].name, k->string) == 0)
                    break;
            if (i == n->nfields)
                return jerr(c, "unknown field '%.64s'", k->string);
        }
    }
    for (i = 0; i < n->nfields; i++) {
        const struct avn_field *f = &n->fields[i];
        const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, f->name);
        avro_value_t fv;
        int rc;

        if (push(c, f->name, 0) != 0)
            return -1;
        if (avro_value_get_by_index(dst, i, &fv, NULL) != 0)
            return jerr(c, "value does not match the schema");
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
                return jerr(c, "required field missing");
            if (avro_value_set_branch(&fv, (int)b, &br) || avro_value_set_null(&br))
                return set_failed(c, "null");
            rc = 0;
        } else {
            return jerr(c, "required field missing");
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
        return jerr(c, "is null but not nullable");
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
    return jerr(c, "no branch of the union takes %s", jtype(j));
}

static int from_json(struct jctx *c, const struct avn *n, const cJSON *j,
                     avro_value_t *dst)
{
    int64_t iv;
    double dv;

    if (!j)
        return jerr(c, "no value");
    switch (n->type) {
    case AVN_NULL:
        if (!cJSON_IsNull(j))
            return jerr(c, "expected null, got %s", jtype(j));
        return avro_value_set_null(dst) ? set_failed(c, "null") : 0;
    case AVN_BOOLEAN:
        if (!cJSON_IsBool(j))
            return jerr(c, "expected a boolean, got %s", jtype(j));
        return avro_value_set_boolean(dst, cJSON_IsTrue(j)) ? set_failed(c, "boolean") : 0;
    case AVN_INT:
        if (n->logical == AVL_DATE && cJSON_IsString(j) && !c->dflt) {
            const char *p = j->valuestring, *why = NULL;
            int64_t days;

            if (parse_date(&p, &days, &why) != 0 || *p)
                return jerr(c, "bad date: %s", why ? why : "unexpected text after the date");
            if (days < INT32_MIN || days > INT32_MAX)
                return jerr(c, "date out of range");
            iv = days;
        } else if (json_integer(c, j, INT32_MIN, INT32_MAX, "int", &iv) != 0) {
            return -1;
        }
        return avro_value_set_int(dst, (int32_t)iv) ? set_failed(c, "int") : 0;
    case AVN_LONG:
        if ((n->logical == AVL_TS_MILLIS || n->logical == AVL_TS_MICROS) &&
            cJSON_IsString(j) && !c->dflt) {
            char e[128];

            if (time_parse(j->valuestring, n->logical == AVL_TS_MILLIS ? 1000 : 1000000, true,
                           &iv, e, sizeof(e)) != CORE_OK)
                return jerr(c, "%s", e);
        } else if (json_integer(c, j, INT64_MIN, INT64_MAX,
                                n->logical == AVL_NONE ? "long" : type_name(n), &iv) != 0) {
            return -1;
        }
        return avro_value_set_long(dst, iv) ? set_failed(c, "long") : 0;
    case AVN_FLOAT:
        if (json_double(c, j, true, &dv) != 0)
            return -1;
        if (isfinite(dv) && fabs(dv) > FLT_MAX)
            return jerr(c, "out of range for float");
        return avro_value_set_float(dst, (float)dv) ? set_failed(c, "float") : 0;
    case AVN_DOUBLE:
        if (json_double(c, j, false, &dv) != 0)
            return -1;
        return avro_value_set_double(dst, dv) ? set_failed(c, "double") : 0;
    case AVN_STRING:
        if (!cJSON_IsString(j))
            return jerr(c, "expected a string, got %s", jtype(j));
        if (!core_avro_utf8_valid((const uint8_t *)j->valuestring, strlen(j->valuestring)))
            return jerr(c, "string is not valid UTF-8");
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
            return jerr(c, "fixed needs %zu bytes, got %zu", n->size, len);
        }
        rc = n->type == AVN_BYTES ? avro_value_set_bytes(dst, b, len)
                                  : avro_value_set_fixed(dst, b, len);
        free(b);
        return rc ? set_failed(c, type_name(n)) : 0;
    }
    case AVN_ENUM: {
        size_t i;

        if (!cJSON_IsString(j))
            return jerr(c, "expected a symbol of enum %s, got %s", n->fullname, jtype(j));
        for (i = 0; i < n->nsymbols; i++)
            if (strcmp(n->symbols[i], j->valuestring) == 0)
                return avro_value_set_enum(dst, (int)i) ? set_failed(c, "enum") : 0;
        return jerr(c, "not a symbol of enum %s", n->fullname);
    }
    case AVN_UNION:
        return set_union(c, n, j, dst);
    case AVN_RECORD:
        return set_record(c, n, j, dst);
    case AVN_ARRAY: {
        const cJSON *e;
        size_t i = 0;

        if (!cJSON_IsArray(j))
            return jerr(c, "expected an array, got %s", jtype(j));
        cJSON_ArrayForEach(e, j) {
            avro_value_t ev;

            if (push(c, NULL, i++) != 0)
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
            return jerr(c, "expected an object (map), got %s", jtype(j));
        cJSON_ArrayForEach(e, j) {
            avro_value_t ev;

            /* A map key is data (it may be personal): the path shows the
             * entry's position, as for an array item. */
            if (push(c, NULL, i++) != 0)
                return -1;
            if (!core_avro_utf8_valid((const uint8_t *)e->string, strlen(e->string)))
                return jerr(c, "map key is not valid UTF-8");
            if (avro_value_add(dst, e->string, &ev, NULL, NULL))
                return set_failed(c, "map entry");
            if (from_json(c, n->items, e, &ev) != 0)
                return -1;
            c->plen--;
        }
        return 0;
    }
    }
    return jerr(c, "unknown schema node");
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
