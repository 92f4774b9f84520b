/* bounds.c — rule bounds (min, max, numeric enums) read from the rules
 * file's number text and values compared with them exactly (bounds.h). */
#include "bounds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53: a cJSON double beyond it may stand for several integers' texts. */
#define EXACT_DOUBLE_INT 9007199254740992.0

int vbound_parse(const core_avro_num_type *t, const char *what, const cJSON *j, vbound *b,
                 char *why_out, size_t why_size)
{
    char buf[32];
    const char *text, *why = NULL;

    if (cJSON_IsRaw(j) || cJSON_IsString(j)) {
        text = j->valuestring ? j->valuestring : "";
    } else if (cJSON_IsNumber(j)) {
        /* cJSON's double: exact only for an integer below 2^53 */
        if (j->valuedouble != floor(j->valuedouble) || fabs(j->valuedouble) >= EXACT_DOUBLE_INT) {
            snprintf(why_out, why_size, "%s was read into a double and its digits are lost "
                     "(read rules files with core_json_parse())", what);
            return -1;
        }
        snprintf(buf, sizeof(buf), "%.0f", j->valuedouble);
        text = buf;
    } else {
        snprintf(why_out, why_size, "%s is not a number", what);
        return -1;
    }
    if (core_number_parse(text, &b->n) != CORE_OK || b->n.inexact) {
        snprintf(why_out, why_size, "%s '%.40s' is not a number of at most %d digits", what,
                 text, CORE_NUMBER_MAX_DIGITS);
        return -1;
    }
    snprintf(b->text, sizeof(b->text), "%s", text);
    /* the nearest value of the field's floating-point type, rounded once */
    b->d = t->kind == CORE_AVRO_NUM_FLOAT ? strtof(text, NULL) : strtod(text, NULL);
    switch (t->kind) {
    case CORE_AVRO_NUM_INT:
        if (!core_number_int64(&b->n, INT32_MIN, INT32_MAX, NULL))
            why = "is not an int (a 32-bit integer)";
        break;
    case CORE_AVRO_NUM_LONG:
    case CORE_AVRO_NUM_TIME:
        if (!core_number_int64(&b->n, INT64_MIN, INT64_MAX, NULL))
            why = t->kind == CORE_AVRO_NUM_TIME ? "is not a time in ms (a 64-bit integer)"
                                                : "is not a long (a 64-bit integer)";
        break;
    case CORE_AVRO_NUM_FLOAT:
    case CORE_AVRO_NUM_DOUBLE:
        if (isinf(b->d) || (b->d == 0 && b->n.nd != 0))
            why = t->kind == CORE_AVRO_NUM_FLOAT ? "is out of range for a float"
                                                 : "is out of range for a double";
        break;
    case CORE_AVRO_NUM_DECIMAL:
        if (core_number_decimals(&b->n) > t->scale ||
            core_number_int_digits(&b->n) > t->precision - t->scale) {
            snprintf(buf, sizeof(buf), "decimal(%d, %d)", t->precision, t->scale);
            why = buf;
        }
        break;
    default:
        break;
    }
    if (why) {
        snprintf(why_out, why_size, "%s %.40s %s%s", what, text,
                 t->kind == CORE_AVRO_NUM_DECIMAL ? "does not fit the field's " : "", why);
        return -1;
    }
    return 0;
}

bool vbound_value(const core_avro_num_type *t, const core_avro_natural *v, vnum *out)
{
    out->dbl = false;
    if (v->kind == CORE_AVRO_NAT_NUMBER) {
        double d = v->number;

        if (d != d)
            return false; /* NaN is within no bounds */
        if (t->kind == CORE_AVRO_NUM_FLOAT || t->kind == CORE_AVRO_NUM_DOUBLE ||
            d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
            out->dbl = true;
            out->d = d;
        } else {
            core_number_from_int64((int64_t)d, &out->n);
        }
        return true;
    }
    if (v->kind == CORE_AVRO_NAT_RAW || v->kind == CORE_AVRO_NAT_STRING)
        return v->text && core_number_parse(v->text, &out->n) == CORE_OK;
    return false;
}

int vbound_cmp(const vnum *x, const vbound *b)
{
    if (x->dbl)
        return x->d < b->d ? -1 : x->d > b->d ? 1 : 0;
    return core_number_cmp(&x->n, &b->n);
}
