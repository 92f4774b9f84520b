/* fuzz_json.c — libFuzzer target for the path every JSON Lines line takes
 * in svc-ingest: core_json_parse() (strict JSON, numbers kept as text), then
 * core_avro_from_json() into every catalogue schema (integers, decimals and
 * timestamps parsed from their text).
 *
 * Invariants (abort on breach): a parsed tree printed by cJSON parses again
 * and prints the same (numbers keep their text through it); nothing
 * crashes or leaks.
 *
 * Build and run: `make fuzz` / `make fuzz-short` (tests/fuzz/README.md), or by hand
 * with clang (from the repository root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Ilibcore/include -DTB_PROTO_DIR="\"$PWD/proto\"" \
 *     tests/fuzz/fuzz_json.c libcore/src/core_json.c libcore/src/core_avro*.c \
 *     libcore/src/core_common.c libcore/src/core_number.c libcore/src/core_digest.c \
 *     $(pkg-config --cflags --libs avro-c libcjson) -lcrypto -lm -o fuzz_json
 *   ./fuzz_json -max_len=4096 tests/fuzz/corpus/fuzz_json
 *
 * The catalogue comes from $TB_PROTO_DIR, else the TB_PROTO_DIR macro. */
#include "fuzz_util.h"

#include "tributary/core_avro.h"
#include "tributary/core_json.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    core_avro_catalog_t *cat = fuzz_catalog();
    core_json_error e;
    cJSON *j = core_json_parse((const char *)data, size, &e), *again;
    char *text, *text2, err[512];

    if (!j) {
        if (e.offset > size) {
            fprintf(stderr, "error offset %zu beyond the input (%zu)\n", e.offset, size);
            abort();
        }
        return 0;
    }
    text = cJSON_PrintUnformatted(j);
    if (!text)
        abort();
    again = core_json_parse(text, strlen(text), &e);
    if (!again) {
        fprintf(stderr, "printed tree does not parse again: %s at %zu\n", e.reason, e.offset);
        abort();
    }
    text2 = cJSON_PrintUnformatted(again);
    if (!text2 || strcmp(text, text2) != 0) {
        fprintf(stderr, "printed tree changes when parsed again\n");
        abort();
    }
    for (size_t i = 0; i < core_avro_catalog_count(cat); i++) {
        const core_avro_schema_t *s = core_avro_catalog_at(cat, i);
        avro_value_t v;

        if (core_avro_from_json_opts(s, j, CORE_AVRO_JSON_IGNORE_UNKNOWN, &v, err,
                                     sizeof(err)) == CORE_OK)
            avro_value_decref(&v);
    }
    free(text);
    free(text2);
    cJSON_Delete(again);
    cJSON_Delete(j);
    return 0;
}
