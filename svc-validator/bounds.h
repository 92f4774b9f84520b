/* bounds.h — the bounds of a rule (min, max, the numbers of an enum),
 * never through a double: read once from the rules file's number text
 * (core_json_parse() keeps it) and checked against the field's type; a
 * value's number compared with them exactly (integers over 64 bits and
 * past, decimals whatever their scale, -0 == 0), or, for a value that is
 * a float or a double, in that type. Plain values; any thread. */
#ifndef SVC_VALIDATOR_BOUNDS_H
#define SVC_VALIDATOR_BOUNDS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "tributary/core_avro.h"
#include "tributary/core_number.h"

/* A min, max or numeric enum entry, read once from the rules file's number
 * text (core_json keeps it), never through a double: exact, plus the value
 * nearest to it in the field's floating-point type for values that are
 * floats or doubles (compared in that type: the field's own precision). */
typedef struct vbound {
    core_number n;
    double d;
    char text[40]; /* for the failure message, shortened */
} vbound;

/* A value as a number: exact (integers, decimals, numeric text, times as
 * ms), or, for a value that is a float or a double, that double. */
typedef struct vnum {
    bool dbl;
    double d;
    core_number n;
} vnum;

/**
 * @brief Read bound j (a number, raw number text, or a decimal string) for
 * a field of type t (NONE: any number).
 * @param what "min", "max" or "enum", for the reason.
 * @returns 0, or -1 with why ("max 9223372036854775808 is not a long (a
 *          64-bit integer)"): not a number, digits lost to a double, or
 *          not a value of the field's type.
 */
int vbound_parse(const core_avro_num_type *t, const char *what, const cJSON *j, vbound *b,
                 char *why, size_t why_size);

/**
 * @brief The value v of a field of type t as a number. A number is a double,
 * and compared as one, when the field is a float or a double, or (type NONE)
 * when it is not an integer of 64 bits; an int or a long shown as a number
 * is that integer exactly; text is read exactly.
 * @returns whether v is a number (NaN is none).
 */
bool vbound_value(const core_avro_num_type *t, const core_avro_natural *v, vnum *out);

/** @returns <0, 0 or >0 as x is below, at or above b. */
int vbound_cmp(const vnum *x, const vbound *b);

#endif
