/* fuzz_avro_decode.c — libFuzzer target for the path every Kafka byte takes:
 * core_avro_decode() (wire header, body checker, avro-c), then the value's
 * natural JSON and a re-encoding. Each input is also decoded as a bare Avro
 * body of every catalogue schema, so the checker meets every schema, and of
 * a schema of every Avro type the catalogue lacks (arrays, maps, fixed,
 * nested unions: the block counts, negative ones and their byte sizes
 * included; seeds in tests/fuzz/corpus/fuzz_avro_decode/ reach negative
 * lengths and negative block counts).
 *
 * Invariants (abort on breach): a decoded value re-encodes, and the
 * re-encoding decodes again; nothing crashes, leaks or allocates more than
 * libFuzzer's malloc limit (avro-c 1.11.1 allocates whatever a length field
 * says: the checker must stop that first).
 *
 * Build and run: `make fuzz` / `make fuzz-short` (tests/fuzz/README.md), or by hand
 * with clang (from the repository root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Ilibcore/include -DTB_PROTO_DIR="\"$PWD/proto\"" \
 *     tests/fuzz/fuzz_avro_decode.c libcore/src/core_avro*.c libcore/src/core_common.c \
 *     libcore/src/core_json.c libcore/src/core_number.c libcore/src/core_digest.c \
 *     $(pkg-config --cflags --libs avro-c libcjson) -lcrypto -lm -o fuzz_avro_decode
 *   ./fuzz_avro_decode -malloc_limit_mb=128 -max_len=65536 tests/fuzz/corpus/fuzz_avro_decode
 *
 * Without clang: the same file with -DFUZZ_STANDALONE builds a main that
 * replays the files (or directories of files) given as arguments:
 *
 *   gcc -g -O1 -fsanitize=address,undefined -std=c11 -D_GNU_SOURCE -DFUZZ_STANDALONE \
 *     -Ilibcore/include -DTB_PROTO_DIR="\"$PWD/proto\"" \
 *     tests/fuzz/fuzz_avro_decode.c libcore/src/core_avro*.c libcore/src/core_common.c \
 *     libcore/src/core_json.c libcore/src/core_number.c libcore/src/core_digest.c \
 *     $(pkg-config --cflags --libs avro-c libcjson) -lcrypto -lm -o fuzz_avro_decode
 *   ./fuzz_avro_decode crash-file tests/fuzz/corpus/fuzz_avro_decode
 *
 * The catalogue comes from $TB_PROTO_DIR, else the TB_PROTO_DIR macro. */
#include "fuzz_util.h"

#include "tributary/core_avro.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every type the catalogue's schemas lack: block-counted arrays and maps
 * (of records, of unions), fixed, float, int, a nested record. */
static const char all_types[] =
    "{\"type\":\"record\",\"name\":\"AllTypes\",\"namespace\":\"fuzz\",\"fields\":["
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"long\",\"bytes\"]}},"
    "{\"name\":\"points\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"P\",\"fields\":[{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"y\",\"type\":\"float\"}]}}},"
    "{\"name\":\"digest\",\"type\":{\"type\":\"fixed\",\"name\":\"D4\",\"size\":4}},"
    "{\"name\":\"nested\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"double\"}}},"
    "{\"name\":\"flag\",\"type\":\"boolean\"}]}";

static core_avro_schema_t *all_types_schema(void)
{
    static core_avro_schema_t *s;
    char err[512];

    if (!s && !(s = core_avro_schema_new(all_types, sizeof(all_types) - 1, 9001, err,
                                         sizeof(err)))) {
        fprintf(stderr, "fuzz_avro_decode: all-types schema: %s\n", err);
        abort();
    }
    return s;
}


/* A decoded value: JSON, re-encode, decode again. */
static void exercise(const core_avro_catalog_t *cat, const core_avro_schema_t *s,
                     avro_value_t *v)
{
    char err[512];
    cJSON *j;
    void *buf = NULL;
    size_t len;
    avro_value_t again;

    j = core_avro_to_json(s, v, err, sizeof(err));
    if (j) {
        avro_value_t fj;
        char *text = cJSON_PrintUnformatted(j);

        /* may be refused (e.g. a decimal wider than its precision): no crash */
        if (core_avro_from_json(s, j, &fj, err, sizeof(err)) == CORE_OK)
            avro_value_decref(&fj);
        free(text);
        cJSON_Delete(j);
    }
    if (core_avro_encode(s, v, &buf, &len, err, sizeof(err)) != CORE_OK) {
        fprintf(stderr, "decoded value does not re-encode: %s\n", err);
        abort();
    }
    if (cat) {
        if (core_avro_decode(cat, buf, len, NULL, &again, err, sizeof(err)) != CORE_OK) {
            fprintf(stderr, "re-encoding does not decode: %s\n", err);
            abort();
        }
    } else if (core_avro_decode_body(s, (uint8_t *)buf + CORE_AVRO_WIRE_HEADER,
                                     len - CORE_AVRO_WIRE_HEADER, 0, &again, err,
                                     sizeof(err)) != CORE_OK) {
        fprintf(stderr, "re-encoding does not decode: %s\n", err);
        abort();
    }
    avro_value_decref(&again);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    core_avro_catalog_t *cat = fuzz_catalog();
    const core_avro_schema_t *s = NULL;
    avro_value_t v;
    char err[512];
    size_t i;

    if (core_avro_decode(cat, data, size, &s, &v, err, sizeof(err)) == CORE_OK) {
        exercise(cat, s, &v);
        avro_value_decref(&v);
    }
    for (i = 0; i <= core_avro_catalog_count(cat); i++) {
        s = i < core_avro_catalog_count(cat) ? core_avro_catalog_at(cat, i) : all_types_schema();
        if (core_avro_decode_body(s, data, size, 0, &v, err, sizeof(err)) == CORE_OK) {
            exercise(NULL, s, &v);
            avro_value_decref(&v);
        }
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    char err[256];
    size_t len;
    char *buf = core_read_file(path, 64u << 20, &len, err, sizeof(err));

    if (!buf) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int i, rc = 0, n = 0;

    for (i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;

            while (d && (e = readdir(d))) {
                char p[4096];

                if (e->d_name[0] == '.')
                    continue;
                snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
                rc |= replay_file(p);
                n++;
            }
            if (d)
                closedir(d);
        } else {
            rc |= replay_file(argv[i]);
            n++;
        }
    }
    core_avro_catalog_free(fuzz_catalog());
    core_avro_schema_free(all_types_schema());
    fprintf(stderr, "fuzz_avro_decode: replayed %d input(s)\n", n);
    return rc;
}
#endif
