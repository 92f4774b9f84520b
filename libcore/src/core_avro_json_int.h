/* core_avro_json_int.h — what the natural-JSON converters share
 * (core_avro_json.c, core_avro_from_json.c, core_avro_path.c): the error
 * context that carries the field path, and the bytes-as-text form. */
#ifndef TRIBUTARY_CORE_AVRO_JSON_INT_H
#define TRIBUTARY_CORE_AVRO_JSON_INT_H

#include "core_avro_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest JSON/value nesting the converters follow. */
#define JSON_MAX_DEPTH 64
#define EXACT_DOUBLE_MAX 9007199254740992LL /* 2^53 */

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

/* Writes "<path>: <message>" to c->err. @returns -1. */
int core_avro_jerr_(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One level deeper (a field name, or NULL and an index). @returns 0 or -1. */
int core_avro_jpush_(struct jctx *c, const char *name, size_t index);
/* "a string", "a number", ... for messages. */
const char *core_avro_jtype_(const cJSON *j);
/* The Avro type's name ("long", "decimal", "timestamp-millis"). */
const char *core_avro_type_name_(const struct avn *n);
/* Bytes as natural text (see core_avro.h) into out (core_avro_bytes_text_size_()
 * bytes, NUL included). @returns the text's length. */
size_t core_avro_bytes_text_(const uint8_t *b, size_t len, char *out);
size_t core_avro_bytes_text_size_(const uint8_t *b, size_t len);

#endif
