/* fuzz_mapper.c — libFuzzer target for svc-ingest's mapper
 * (svc-ingest/mapper.c, cell.c): a file read by the reader, its CSV header
 * bound to a dataset's schema, every record coerced to the schema's fields
 * and encoded in the wire format (what ingest.c does with each line).
 *
 * Input: byte 0 picks the format (bit 0: CSV / JSON Lines), the dataset
 * (bits 1-2: the catalogue's datasets in order), extra columns refused
 * (bit 3) and the kind (bits 4-5: auto, BULK, CHANGE); the rest is the file.
 *
 * Invariants (abort on breach):
 *  - a bound header or a refused one: never both; a refused header names
 *    why (errstr not empty);
 *  - a mapped record (0) decodes with core_avro_decode() as a record of the
 *    dataset, has a NUL-terminated key of keylen bytes, a 36-character id,
 *    and is no bigger than max_record;
 *  - a refused line (1) has a reason and a category, and its value, when
 *    it has one, is NUL-terminated within value[];
 *  - no internal failure (-1) under libFuzzer's malloc limit;
 *  - nothing crashes, leaks or reads out of bounds.
 *
 * Build and run: make build/fuzz/fuzz_mapper && build/fuzz/fuzz_mapper tests/fuzz/corpus/fuzz_mapper */
#include "fuzz_util.h"

#include "../../svc-ingest/mapper.h"

#define MAX_RECORD 65536

static const core_avro_schema_t *dataset_at(core_avro_catalog_t *cat, unsigned k)
{
    const core_avro_schema_t *ds[8];
    size_t n = 0;

    for (size_t i = 0; i < core_avro_catalog_count(cat) && n < 8; i++) {
        const core_avro_schema_t *s = core_avro_catalog_at(cat, i);
        const char *d = core_avro_schema_dataset(s);
        if (d && core_avro_catalog_by_dataset(cat, d) == s)
            ds[n++] = s;
    }
    FUZZ_CHECK(n > 0, "no dataset in the catalogue");
    return ds[k % n];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int kinds[] = { -1, CORE_AVRO_KIND_BULK, CORE_AVRO_KIND_CHANGE, -1 };
    core_avro_catalog_t *cat = fuzz_catalog();
    ingest_map_opts o;
    ingest_mapper *m;
    ingest_reader *r;
    ingest_row row;
    ingest_record rec;
    ingest_line_error e;
    char path[64], err[512];
    bool header = false;
    int fd, rc;

    if (size < 1)
        return 0;
    memset(&o, 0, sizeof(o));
    o.schema = dataset_at(cat, (data[0] >> 1) & 3);
    o.fmt = (data[0] & 1) ? INGEST_FMT_JSONL : INGEST_FMT_CSV;
    o.refuse_extra = (data[0] & 8) != 0;
    o.op_column = "op";
    o.version_column = "version";
    o.event_time_column = "event_time";
    o.old_key_column = "old_key";
    o.kind = kinds[(data[0] >> 4) & 3];
    o.op = CORE_AVRO_OP_ADD;
    o.event_time = 1700000000000;
    o.max_record = MAX_RECORD;
    m = ingest_mapper_new(&o, err, sizeof(err));
    FUZZ_CHECK(m != NULL, "mapper of %s: %s", core_avro_schema_name(o.schema), err);
    fd = fuzz_file(data + 1, size - 1, path);
    if (fd < 0) {
        ingest_mapper_free(m);
        return 0;
    }
    r = ingest_reader_open(path, o.fmt, ',', 16384, err, sizeof(err));
    FUZZ_CHECK(r != NULL, "open: %s", err);
    while ((rc = ingest_reader_next(r, &row, err, sizeof(err))) == 1) {
        if (o.fmt == INGEST_FMT_CSV && !header) {
            err[0] = '\0';
            if (row.error)
                break; /* ingest refuses the file */
            if (ingest_mapper_header(m, &row, err, sizeof(err)) != 0) {
                FUZZ_CHECK(*err, "header refused without a reason");
                break;
            }
            header = true;
            continue;
        }
        rc = ingest_mapper_row(m, &row, "fuzz-batch", "fuzz.input", &rec, &e);
        FUZZ_CHECK(rc == 0 || rc == 1, "line %llu: internal failure %d: %s",
                   (unsigned long long)row.line, rc, e.reason);
        if (rc == 0) {
            const core_avro_schema_t *s = NULL;
            avro_value_t v;

            FUZZ_CHECK(rec.value && rec.len > CORE_AVRO_WIRE_HEADER && rec.len <= MAX_RECORD,
                       "record of %zu bytes", rec.len);
            FUZZ_CHECK(rec.key && strlen(rec.key) == rec.keylen, "key of %zu bytes", rec.keylen);
            FUZZ_CHECK(strlen(rec.id) == 36, "id %s", rec.id);
            FUZZ_CHECK(core_avro_decode(cat, rec.value, rec.len, &s, &v, err, sizeof(err)) ==
                           CORE_OK,
                       "line %llu: mapped record does not decode: %s",
                       (unsigned long long)row.line, err);
            FUZZ_CHECK(strcmp(core_avro_schema_dataset(s), core_avro_schema_dataset(o.schema)) == 0,
                       "decoded as %s", core_avro_schema_name(s));
            avro_value_decref(&v);
        } else {
            FUZZ_CHECK(*e.reason && e.category, "line %llu refused without a reason",
                       (unsigned long long)row.line);
            FUZZ_CHECK(memchr(e.value, 0, sizeof(e.value)) != NULL, "value not terminated");
        }
    }
    ingest_reader_free(r);
    close(fd);
    ingest_mapper_free(m);
    return 0;
}
