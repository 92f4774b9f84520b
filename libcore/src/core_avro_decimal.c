/* core_avro_decimal.c — Avro decimals: exact text <-> big-endian two's
 * complement unscaled bytes (core_avro.h, "decimal and time helpers"). */
#include "core_avro_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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
