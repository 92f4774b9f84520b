/* fuzz_reader.c — libFuzzer target for svc-ingest's input reader
 * (svc-ingest/reader.c): every line of a CSV or JSON Lines file, plain or
 * gzip, goes through ingest_reader_next() first.
 *
 * Input: byte 0 picks the format (bit 0: CSV / JSON Lines), the delimiter
 * (bits 1-2: , ; TAB |) and the record limit (bit 3: 64 bytes, else 64 KiB);
 * the rest is the file (gzip when it starts with gzip's magic bytes).
 *
 * Invariants (abort on breach):
 *  - records come in order: line >= the previous record's line + its
 *    lines, offset >= the previous end, offset < end, nlines >= 1;
 *  - a record without error has nfields >= 1 (JSON Lines: exactly 1), each
 *    field NUL-terminated at lens[i] with no NUL inside, valid UTF-8, and
 *    raw_len within max_record; a record with an error has a reason;
 *  - a read error (-1) has a message and ends the file; so does 0;
 *  - seeking to a record's checkpoint (end, line + nlines) gives the record
 *    that followed it in the first pass (same line, offset, fields);
 *  - nothing crashes, leaks or reads out of bounds.
 *
 * Build and run: `make fuzz` (FUZZ_TIME seconds per harness), or one:
 *   make build/fuzz/fuzz_reader && build/fuzz/fuzz_reader tests/fuzz/corpus/fuzz_reader */
#include "fuzz_util.h"

#include "../../svc-ingest/reader.h"

#define MAX_ROWS 4096

typedef struct seen {
    uint64_t line, offset, end, nlines;
    size_t nfields;
    uint64_t fields_hash;
    int has_error;
} seen;

static uint64_t hash_row(const ingest_row *row)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < row->nfields; i++) {
        for (size_t k = 0; k < row->lens[i]; k++)
            h = (h ^ (unsigned char)row->fields[i][k]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

static void take(const ingest_row *row, seen *s)
{
    s->line = row->line;
    s->offset = row->offset;
    s->end = row->end;
    s->nlines = row->nlines;
    s->nfields = row->nfields;
    s->fields_hash = hash_row(row);
    s->has_error = row->error != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = { ',', ';', '\t', '|' };
    static seen rows[MAX_ROWS];
    char path[64], err[512];
    ingest_row row;
    ingest_reader *r;
    ingest_format fmt;
    size_t max_record, n = 0;
    uint64_t next_line = 1, prev_end = 0;
    int fd, rc;

    if (size < 1)
        return 0;
    fmt = (data[0] & 1) ? INGEST_FMT_JSONL : INGEST_FMT_CSV;
    max_record = (data[0] & 8) ? 64 : 65536;
    fd = fuzz_file(data + 1, size - 1, path);
    if (fd < 0)
        return 0;
    r = ingest_reader_open(path, fmt, delims[(data[0] >> 1) & 3], max_record, err, sizeof(err));
    FUZZ_CHECK(r != NULL, "open: %s", err);
    while ((rc = ingest_reader_next(r, &row, err, sizeof(err))) == 1) {
        FUZZ_CHECK(row.nlines >= 1, "line %llu spans no line", (unsigned long long)row.line);
        FUZZ_CHECK(row.line >= next_line, "line %llu after line %llu",
                   (unsigned long long)row.line, (unsigned long long)next_line);
        FUZZ_CHECK(row.offset >= prev_end && row.end > row.offset,
                   "line %llu: offset %llu end %llu previous end %llu",
                   (unsigned long long)row.line, (unsigned long long)row.offset,
                   (unsigned long long)row.end, (unsigned long long)prev_end);
        FUZZ_CHECK(row.end <= ingest_reader_pos(r) + 1, "end %llu past the position %llu",
                   (unsigned long long)row.end, (unsigned long long)ingest_reader_pos(r));
        if (row.error) {
            FUZZ_CHECK(*row.error, "line %llu: empty error", (unsigned long long)row.line);
        } else {
            FUZZ_CHECK(row.nfields >= 1, "no field");
            FUZZ_CHECK(fmt == INGEST_FMT_CSV || row.nfields == 1, "JSONL with %zu fields",
                       row.nfields);
            FUZZ_CHECK(row.raw_len <= max_record, "record of %zu bytes over %zu", row.raw_len,
                       max_record);
            for (size_t i = 0; i < row.nfields; i++) {
                size_t bad;
                FUZZ_CHECK(row.fields[i][row.lens[i]] == '\0', "field %zu not terminated", i);
                FUZZ_CHECK(memchr(row.fields[i], 0, row.lens[i]) == NULL, "NUL in field %zu", i);
                FUZZ_CHECK(ingest_utf8_valid(row.fields[i], row.lens[i], &bad),
                           "field %zu: invalid UTF-8 at byte %zu", i, bad);
            }
        }
        if (n < MAX_ROWS)
            take(&row, &rows[n++]);
        next_line = row.line + row.nlines;
        prev_end = row.end;
    }
    FUZZ_CHECK(rc == 0 || (rc == -1 && *err), "next returned %d", rc);
    if (rc == 0 && n >= 2 && n < MAX_ROWS) {
        /* resume after the first record, as a checkpoint does */
        FUZZ_CHECK(ingest_reader_seek(r, rows[0].end, rows[0].line + rows[0].nlines, err,
                                      sizeof(err)) == 0,
                   "seek: %s", err);
        rc = ingest_reader_next(r, &row, err, sizeof(err));
        FUZZ_CHECK(rc == 1, "nothing after the seek: %d %s", rc, rc < 0 ? err : "");
        seen s;
        take(&row, &s);
        FUZZ_CHECK(s.line == rows[1].line && s.offset == rows[1].offset &&
                       s.end == rows[1].end && s.has_error == rows[1].has_error &&
                       (s.has_error || (s.nfields == rows[1].nfields &&
                                        s.fields_hash == rows[1].fields_hash)),
                   "after the seek: line %llu offset %llu, first pass line %llu offset %llu",
                   (unsigned long long)s.line, (unsigned long long)s.offset,
                   (unsigned long long)rows[1].line, (unsigned long long)rows[1].offset);
    }
    ingest_reader_free(r);
    close(fd);
    return 0;
}
