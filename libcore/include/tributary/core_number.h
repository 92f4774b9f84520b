/* core_number.h — exact decimal numbers read from their text, compared
 * without a double.
 *
 * A JSON number read by cJSON is a double: 9007199254740993 is ...992 and
 * 10.5 and 10.50 are the same only by luck of rounding. A core_number keeps
 * the number's significant digits and a power of ten, so that any integer
 * (past 2^53 and the 2^63 edges) and any decimal compares exactly:
 * 10.5 == 10.50 == 1.05e1, -0 == 0, 2^53 < 2^53 + 1.
 *
 * Text accepted (core_number_parse()): JSON's number grammar (RFC 8259 §6)
 * with, in addition, a leading '+' and leading zeros ("+007", how decimal
 * strings are often written); no blanks, no "inf"/"nan", no hex. The first
 * CORE_NUMBER_MAX_DIGITS significant digits are kept (leading and trailing
 * zeros do not count); when a nonzero digit beyond them is dropped the
 * number is marked inexact, which comparisons still order exactly (it lies
 * strictly between its kept digits and the next number up in magnitude).
 * The exponent is kept exactly within +-10^9.
 *
 * Plain values, no allocation, thread-safe. */
#ifndef TRIBUTARY_CORE_NUMBER_H
#define TRIBUTARY_CORE_NUMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "tributary/core_common.h"

/** Most significant digits a core_number holds (beyond any 128-bit decimal). */
#define CORE_NUMBER_MAX_DIGITS 64

typedef struct core_number {
    bool neg;                           /* never set for zero */
    int nd;                             /* significant digits; 0: the number is zero */
    char digits[CORE_NUMBER_MAX_DIGITS]; /* '0'..'9', no leading or trailing '0' */
    int64_t exp;                        /* value = digits (as an integer) * 10^exp */
    bool inexact;                       /* nonzero digits beyond these were dropped */
} core_number;

/**
 * @brief Read the number text s (see the file comment) exactly.
 * @returns CORE_OK (check out->inexact where every digit must be kept);
 *          CORE_ERR_INVALID when s is not such a number; CORE_ERR_TOOBIG
 *          for an exponent beyond +-10^9.
 */
core_err_t core_number_parse(const char *s, core_number *out);

/** @brief The integer v, exactly. */
void core_number_from_int64(int64_t v, core_number *out);

/** @returns <0, 0 or >0 as a is below, equal to or above b (exactly). */
int core_number_cmp(const core_number *a, const core_number *b);

/** @returns whether n is an integer in [lo, hi] (never when inexact), with it
 * in *out (may be NULL). */
bool core_number_int64(const core_number *n, int64_t lo, int64_t hi, int64_t *out);

/** @returns how many decimals an exact n needs (0 for an integer): 10.50 needs 1. */
int64_t core_number_decimals(const core_number *n);

/** @returns how many digits n has left of the decimal point (0 for |n| < 1). */
int64_t core_number_int_digits(const core_number *n);

#endif
