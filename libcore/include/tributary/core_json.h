/* core_json.h — strict JSON text to a cJSON tree that keeps every number
 * exactly as written.
 *
 * cJSON keeps a number only as a double: 1234567890123456.78 becomes
 * ...456.8, 9007199254740993 becomes ...992, 1.5 is no longer told from 2
 * once rounded to an integer. core_json_parse() builds the same cJSON tree
 * (objects, arrays, strings, true/false/null) but every number is a cJSON
 * Raw item (cJSON_IsRaw()) whose valuestring is the number's text exactly as
 * it appears in the input, checked against JSON's grammar (RFC 8259 §6).
 * core_avro_from_json() takes such items digit by digit: integers and
 * decimals exactly, doubles rounded once by strtod().
 *
 * Refused, each with the byte and the path of the value concerned, because
 * each would otherwise alter a record in silence:
 *  - a name twice in one object (cJSON's lookup would keep the first);
 *  - "\u0000" in a string or a name (a C string ends there);
 *  - an unpaired surrogate escape, invalid UTF-8, an unescaped control
 *    character in a string;
 *  - anything but white space after the value; nesting deeper than
 *    CORE_JSON_MAX_DEPTH.
 * The tree is freed with cJSON_Delete(). Thread-safe (no global state). */
#ifndef TRIBUTARY_CORE_JSON_H
#define TRIBUTARY_CORE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_JSON_MAX_DEPTH 64

typedef struct core_json_error {
    size_t offset;     /* 0-based byte of the text where the error was found */
    char path[160];    /* names and [index]es to the value concerned ("a.b[2]"); "" for the top */
    char reason[128];  /* never quotes the input's values */
} core_json_error;

/**
 * @brief Parse text[0..len) (NUL bytes inside are an error).
 * @returns the tree, or NULL with *err filled (err may be NULL). Out of
 *          memory is reported as NULL with reason "out of memory".
 */
cJSON *core_json_parse(const char *text, size_t len, core_json_error *err);

/**
 * @brief A JSON number item for the 64-bit integer v, printed with every
 * digit: a cJSON Raw item holding its text (cJSON prints a double with 15
 * significant digits when they read back close enough, so from 10^15 on a
 * cJSON number loses digits). @returns the item, or NULL when out of memory.
 */
cJSON *core_json_int(int64_t v);

/**
 * @brief The integer a number item stands for, exactly: a Raw item
 * (core_json_parse(), core_json_int()) read from its text; a cJSON number
 * only while a double holds it exactly (below 2^53).
 * @returns whether j is such an integer within [lo, hi] (*out set then).
 */
bool core_json_int_get(const cJSON *j, int64_t lo, int64_t hi, int64_t *out);

#endif
