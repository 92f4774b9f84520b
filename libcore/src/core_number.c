/* core_number.c — exact decimal numbers from their text (core_number.h). */
#include "tributary/core_number.h"

#include <string.h>

#define EXP_LIMIT 1000000000LL

core_err_t core_number_parse(const char *s, core_number *out)
{
    const char *p = s;
    int64_t frac = 0, x = 0;
    bool dot = false, any = false, xneg = false, toobig = false, dropped = false;

    memset(out, 0, sizeof(*out));
    if (!p)
        return CORE_ERR_INVALID;
    if (*p == '+' || *p == '-')
        out->neg = *p++ == '-';
    if (!(*p >= '0' && *p <= '9'))
        return CORE_ERR_INVALID; /* ".5", "-", "" */
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            any = true;
            if (dot)
                frac++;
            if (out->nd == 0 && *p == '0')
                continue; /* a leading zero */
            if (out->nd == CORE_NUMBER_MAX_DIGITS) {
                /* a dropped integer digit scales by 10; a dropped
                 * fractional one changes only whether the number is exact */
                if (*p != '0')
                    dropped = true;
                if (!dot)
                    out->exp++;
                else
                    frac--;
                continue;
            }
            out->digits[out->nd++] = *p;
        } else if (*p == '.' && !dot) {
            if (!(p[1] >= '0' && p[1] <= '9'))
                return CORE_ERR_INVALID; /* "1." */
            dot = true;
        } else {
            break;
        }
    }
    if (!any)
        return CORE_ERR_INVALID;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            xneg = *p++ == '-';
        if (!(*p >= '0' && *p <= '9'))
            return CORE_ERR_INVALID;
        for (; *p >= '0' && *p <= '9'; p++) {
            x = x * 10 + (*p - '0');
            if (x > EXP_LIMIT)
                toobig = true, x = EXP_LIMIT;
        }
    }
    if (*p)
        return CORE_ERR_INVALID;
    if (toobig)
        return CORE_ERR_TOOBIG;
    out->exp += (xneg ? -x : x) - frac;
    out->inexact = dropped;
    while (!dropped && out->nd > 0 && out->digits[out->nd - 1] == '0') {
        out->nd--;
        out->exp++;
    }
    if (out->nd == 0) { /* zero, whatever its sign and exponent */
        out->neg = false;
        out->exp = 0;
    }
    return CORE_OK;
}

void core_number_from_int64(int64_t v, core_number *out)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char tmp[20];
    int n = 0;

    memset(out, 0, sizeof(*out));
    out->neg = v < 0;
    while (u) {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    }
    for (int i = 0; i < n; i++)
        out->digits[i] = tmp[n - 1 - i];
    out->nd = n;
    while (out->nd > 0 && out->digits[out->nd - 1] == '0') {
        out->nd--;
        out->exp++;
    }
}

/* Magnitudes: |a| against |b|, both nonzero. */
static int mag_cmp(const core_number *a, const core_number *b)
{
    /* the leading digit's power of ten: nd + exp - 1 */
    int64_t la = a->nd + a->exp, lb = b->nd + b->exp;
    int n = a->nd > b->nd ? a->nd : b->nd;

    if (la != lb)
        return la < lb ? -1 : 1;
    for (int i = 0; i < n; i++) {
        char ca = i < a->nd ? a->digits[i] : '0';
        char cb = i < b->nd ? b->digits[i] : '0';

        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    if (a->inexact != b->inexact) /* the one with dropped digits is above */
        return a->inexact ? 1 : -1;
    return 0;
}

int core_number_cmp(const core_number *a, const core_number *b)
{
    if (a->nd == 0 || b->nd == 0) {
        if (a->nd == 0 && b->nd == 0)
            return 0;
        if (a->nd == 0)
            return b->neg ? 1 : -1;
        return a->neg ? -1 : 1;
    }
    if (a->neg != b->neg)
        return a->neg ? -1 : 1;
    return a->neg ? -mag_cmp(a, b) : mag_cmp(a, b);
}

bool core_number_int64(const core_number *n, int64_t lo, int64_t hi, int64_t *out)
{
    uint64_t u = 0;
    int64_t v;

    if (n->inexact)
        return false;
    if (n->nd == 0) {
        v = 0;
        goto range;
    }
    if (n->exp < 0 || n->nd + n->exp > 19)
        return false; /* a fraction, or 20 digits and more: beyond 2^64 */
    for (int i = 0; i < n->nd; i++)
        u = u * 10 + (uint64_t)(n->digits[i] - '0');
    for (int64_t e = 0; e < n->exp; e++)
        u *= 10; /* at most 19 digits: below 2^64 */
    if (n->neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return false;
        v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return false;
        v = (int64_t)u;
    }
range:
    if (v < lo || v > hi)
        return false;
    if (out)
        *out = v;
    return true;
}

int64_t core_number_decimals(const core_number *n)
{
    return n->nd && n->exp < 0 ? -n->exp : 0;
}

int64_t core_number_int_digits(const core_number *n)
{
    return n->nd && n->nd + n->exp > 0 ? n->nd + n->exp : 0;
}
