/* core_avro_time.c — the ISO 8601 calendar of timestamp-millis/-micros and
 * date values: parsing (with an offset) and formatting (UTC). */
#include "core_avro_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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
int core_avro_parse_date_(const char **pp, int64_t *days, const char **why)
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
core_err_t core_avro_time_parse_(const char *text, int64_t units, bool exact, int64_t *outp,
                                  char *errstr, size_t errstr_size)
{
    const char *p = text, *why = NULL;
    int64_t days, frac = 0, fscale = units, off = 0;
    int hh, mi, ss = 0, oh = 0, om = 0, fd = 0;

    if (!p) {
        why = "no text";
        goto bad;
    }
    if (core_avro_parse_date_(&p, &days, &why) != 0)
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
    return core_avro_time_parse_(text, 1000, false, msp, errstr, errstr_size);
}

core_err_t core_avro_time_parse_us(const char *text, int64_t *usp, char *errstr,
                                   size_t errstr_size)
{
    return core_avro_time_parse_(text, 1000000, false, usp, errstr, errstr_size);
}

core_err_t core_avro_time_parse_exact(const char *text, bool micros, int64_t *outp,
                                      char *errstr, size_t errstr_size)
{
    return core_avro_time_parse_(text, micros ? 1000000 : 1000, true, outp, errstr, errstr_size);
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
