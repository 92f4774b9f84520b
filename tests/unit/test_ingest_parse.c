/* test_ingest_parse.c — svc-ingest's reader (CSV RFC 4180, JSON Lines, gzip,
 * physical line numbers, resumable offsets) and mapper (coercion, defaults,
 * meta, ids, size bound) against nasty inputs. */
#include "testutil.h"

#include "../../svc-ingest/mapper.h"
#include "../../svc-ingest/reader.h"

#include "tributary/core_avro.h"
#include "tributary/core_common.h"

#include <avro.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ------------------------------------------------------------ */

static char *write_bytes(const void *data, size_t len)
{
    char tmpl[] = "/tmp/tb_ingest_XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((long)write(fd, data, len), (long)len);
    close(fd);
    return strdup(tmpl);
}

static ingest_reader *open_text(const char *text, ingest_format fmt, size_t max, char **pathp)
{
    char err[512];
    char *path = write_bytes(text, strlen(text));
    ingest_reader *r = ingest_reader_open(path, fmt, ',', max, err, sizeof(err));
    ck_assert_msg(r != NULL, "open: %s", err);
    *pathp = path;
    return r;
}

static void close_text(ingest_reader *r, char *path)
{
    ingest_reader_free(r);
    unlink(path);
    free(path);
}

static void next_ok(ingest_reader *r, ingest_row *row)
{
    char err[512];
    int n = ingest_reader_next(r, row, err, sizeof(err));
    ck_assert_msg(n == 1, "next: %d %s", n, err);
}

/* Found by tests/fuzz/fuzz_reader (corpus: crash-quotes-over-max-record):
 * the record bound is on the record's raw bytes. Before, it counted only
 * the bytes kept: a line of delimiters (nothing kept, a field each) or of
 * doubled quotes ("" keeps one byte of two) went through unbounded, so a
 * 100 MB line of commas became 100 million fields in memory. */
START_TEST(csv_record_bound_counts_delimiters_and_quotes)
{
    char *path, *text = malloc(4096);
    ingest_reader *r;
    ingest_row row;

    ck_assert_ptr_nonnull(text);
    /* line 1: 200 commas (201 empty fields); line 2: a quoted field of 86
     * raw bytes holding 42 quotes; line 3: within the bound */
    memset(text, ',', 200);
    text[200] = '\n';
    memset(text + 201, '"', 86);
    strcpy(text + 287, "\nab,cd\n");
    r = open_text(text, INGEST_FMT_CSV, 64, &path);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 1);
    ck_assert_msg(row.error && strstr(row.error, "longer than 64"), "delimiters: %s",
                  row.error ? row.error : "no error");
    ck_assert_uint_le(row.nfields, 65);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    ck_assert_msg(row.error && strstr(row.error, "longer than 64"), "quotes: %s",
                  row.error ? row.error : "no error");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    ck_assert_ptr_null(row.error);
    ck_assert_uint_eq(row.nfields, 2);
    ck_assert_str_eq(row.fields[1], "cd");
    close_text(r, path);
    free(text);
}
END_TEST

static void at_eof(ingest_reader *r)
{
    char err[512];
    ingest_row row;
    ck_assert_int_eq(ingest_reader_next(r, &row, err, sizeof(err)), 0);
}

/* ---- reader: CSV -------------------------------------------------------- */

START_TEST(csv_rfc4180_corners)
{
    /* BOM, CRLF, quoted commas, doubled quotes, a quoted CRLF and LF, an
     * empty field, a quoted empty field. */
    const char *text = "\xEF\xBB\xBF" "a,b,c\r\n"
                       "1,\"x, y\",\"say \"\"hi\"\"\"\r\n"
                       "2,\"two\r\nlines\",\"and\nthree\"\r\n"
                       "3,,\"\"\r\n";
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_CSV, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    ck_assert_int_eq(row.line, 1);
    ck_assert_int_eq(row.nfields, 3);
    ck_assert_str_eq(row.fields[0], "a"); /* the BOM is not part of the first name */
    ck_assert_ptr_null(row.error);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    ck_assert_str_eq(row.fields[1], "x, y");
    ck_assert_str_eq(row.fields[2], "say \"hi\"");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    ck_assert_int_eq(row.nlines, 3);
    ck_assert_str_eq(row.fields[1], "two\r\nlines");
    ck_assert_str_eq(row.fields[2], "and\nthree");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 6); /* the multi-line record took lines 3-5 */
    ck_assert_int_eq(row.nfields, 3);
    ck_assert_str_eq(row.fields[1], "");
    ck_assert_str_eq(row.fields[2], "");
    ck_assert_int_eq(row.lens[2], 0);
    at_eof(r);
    close_text(r, path);
}
END_TEST

START_TEST(csv_lf_cr_blank_and_truncated_last_line)
{
    const char *text = "a,b\n1,2\n\n\r3,4\r5,6"; /* LF, blank LF, lone CR, no final break */
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_CSV, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 5); /* lines 3 and 4 are blank */
    ck_assert_str_eq(row.fields[0], "3");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 6);
    ck_assert_str_eq(row.fields[1], "6");
    ck_assert_ptr_null(row.error);
    at_eof(r);
    close_text(r, path);
}
END_TEST

START_TEST(csv_broken_quoting_is_a_line_error_and_resyncs)
{
    const char *text = "a,b,c\n"
                       "1,ab\"c,3\n"            /* quote inside an unquoted field */
                       "2,\"ab\"c,3\n"          /* text after a closing quote */
                       "3,ok,3\n"
                       "4,\"never closed,3\n";  /* truncated: unterminated at EOF */
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_CSV, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_int_eq(row.error_col, 2);
    ck_assert_ptr_nonnull(strstr(row.error, "quote"));
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_int_eq(row.error_col, 2);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 4);
    ck_assert_ptr_null(row.error);
    ck_assert_str_eq(row.fields[1], "ok");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 5);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "unterminated"));
    at_eof(r);
    close_text(r, path);
}
END_TEST

START_TEST(csv_one_megabyte_field)
{
    size_t big = 1024 * 1024;
    char *text = malloc(big + 64), *path;
    ingest_reader *r;
    ingest_row row;
    char err[256];

    strcpy(text, "a,b\n1,\"");
    memset(text + 7, 'x', big);
    strcpy(text + 7 + big, "\"\n2,y\n");
    /* Within the bound: kept whole. */
    r = open_text(text, INGEST_FMT_CSV, 4u << 20, &path);
    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    ck_assert_int_eq(row.lens[1], big);
    next_ok(r, &row);
    ck_assert_str_eq(row.fields[1], "y");
    close_text(r, path);
    /* Beyond it: an error, not kept, and the next line is intact. */
    path = write_bytes(text, strlen(text));
    r = ingest_reader_open(path, INGEST_FMT_CSV, ',', 65536, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "longer than"));
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    ck_assert_ptr_null(row.error);
    ck_assert_str_eq(row.fields[1], "y");
    close_text(r, path);
    free(text);
}
END_TEST

START_TEST(csv_invalid_utf8_is_a_line_error)
{
    const char *text = "a,b\n1,ok\n2,bad\xC3\x28here\n3,\xED\xA0\x80\n4,\xF0\x9F\x98\x80\n";
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_CSV, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "UTF-8"));
    ck_assert_int_eq(row.error_col, 2);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error); /* a surrogate */
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);   /* an emoji is fine */
    close_text(r, path);
}
END_TEST

START_TEST(utf8_validator)
{
    size_t bad = 0;
    ck_assert(ingest_utf8_valid("h\xC3\xA9llo", 6, NULL));
    ck_assert(!ingest_utf8_valid("\xC0\x80", 2, &bad)); /* overlong NUL */
    ck_assert_int_eq(bad, 0);
    ck_assert(!ingest_utf8_valid("ab\xE2\x82", 4, &bad)); /* truncated */
    ck_assert_int_eq(bad, 2);
    ck_assert(!ingest_utf8_valid("\xF4\x90\x80\x80", 4, &bad)); /* > U+10FFFF */
    ck_assert(!ingest_utf8_valid("\xFF", 1, &bad));
}
END_TEST

START_TEST(gzip_input_and_resume_offsets)
{
    char tmpl[] = "/tmp/tb_ingest_gz_XXXXXX";
    int fd = mkstemp(tmpl);
    gzFile gz;
    char err[256];
    ingest_reader *r;
    ingest_row row;
    uint64_t off, line;

    ck_assert_int_ge(fd, 0);
    close(fd);
    gz = gzopen(tmpl, "wb");
    ck_assert_ptr_nonnull(gz);
    gzputs(gz, "a,b\n1,\"multi\nline\"\n2,two\n3,three\n");
    gzclose(gz);
    r = ingest_reader_open(tmpl, INGEST_FMT_CSV, ',', 0, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_str_eq(row.fields[1], "multi\nline");
    off = row.end;
    line = row.line + row.nlines;
    ck_assert_int_eq(line, 4);
    next_ok(r, &row);
    ck_assert_str_eq(row.fields[1], "two");
    ingest_reader_free(r);
    /* A new reader resumes exactly after line 2-3's record. */
    r = ingest_reader_open(tmpl, INGEST_FMT_CSV, ',', 0, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(ingest_reader_seek(r, off, line, err, sizeof(err)), 0);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 4);
    ck_assert_str_eq(row.fields[1], "two");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 5);
    at_eof(r);
    ingest_reader_free(r);
    unlink(tmpl);
}
END_TEST

START_TEST(corrupt_gzip_is_a_read_error)
{
    char tmpl[] = "/tmp/tb_ingest_gzc_XXXXXX";
    int fd = mkstemp(tmpl);
    gzFile gz;
    char err[256], *data;
    ingest_reader *r;
    ingest_row row;
    FILE *f;
    long n;
    int rc;

    close(fd);
    gz = gzopen(tmpl, "wb");
    for (int i = 0; i < 20000; i++)
        gzprintf(gz, "%d,row number %d\n", i, i);
    gzclose(gz);
    f = fopen(tmpl, "rb");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n);
    ck_assert_int_eq((long)fread(data, 1, (size_t)n, f), n);
    fclose(f);
    for (long i = n / 2; i < n / 2 + 64; i++)
        data[i] ^= 0x5A;
    f = fopen(tmpl, "wb");
    fwrite(data, 1, (size_t)n, f);
    fclose(f);
    free(data);
    r = ingest_reader_open(tmpl, INGEST_FMT_CSV, ',', 0, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    while ((rc = ingest_reader_next(r, &row, err, sizeof(err))) == 1)
        ;
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(strstr(err, "read error"));
    ingest_reader_free(r);
    unlink(tmpl);
}
END_TEST

START_TEST(jsonl_lines)
{
    const char *text = "{\"a\":1}\r\n\n{\"a\":2}\n{\"a\":\"\xC3\x28\"}\n{\"a\":3}";
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_JSONL, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    ck_assert_int_eq(row.line, 1);
    ck_assert_str_eq(row.fields[0], "{\"a\":1}");
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 4);
    ck_assert_ptr_nonnull(row.error);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 5);
    ck_assert_ptr_null(row.error);
    at_eof(r);
    close_text(r, path);
}
END_TEST

START_TEST(missing_file)
{
    char err[256];
    ck_assert_ptr_null(ingest_reader_open("/nonexistent/x.csv", INGEST_FMT_CSV, ',', 0, err,
                                          sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.csv"));
}
END_TEST


/* field_end() grew its arrays on nfields + 1 > cap and then wrote
 * starts[nfields + 1]: one slot past the end for the 32nd field (the
 * initial capacity) and at every doubling. Under ASan this overflows. */
START_TEST(csv_wide_records_do_not_overflow_field_arrays)
{
    static const size_t widths[] = { 1, 2, 30, 31, 32, 33, 63, 64, 65, 10000 };

    for (size_t w = 0; w < CORE_ARRAY_SIZE(widths); w++) {
        size_t n = widths[w], cap = n * 16 + 16, off = 0;
        char *text = malloc(cap), *path;
        ingest_reader *r;
        ingest_row row;

        for (int rec = 0; rec < 2; rec++) {
            for (size_t i = 0; i < n; i++)
                off += (size_t)snprintf(text + off, cap - off, "%s%zu", i ? "," : "", i + (size_t)rec);
            text[off++] = '\n';
        }
        text[off] = '\0';
        r = open_text(text, INGEST_FMT_CSV, 0, &path);
        for (int rec = 0; rec < 2; rec++) {
            char want[24];
            next_ok(r, &row);
            ck_assert_ptr_null(row.error);
            ck_assert_uint_eq(row.nfields, n);
            for (size_t i = 0; i < n; i++) {
                snprintf(want, sizeof(want), "%zu", i + (size_t)rec);
                ck_assert_str_eq(row.fields[i], want);
                ck_assert_uint_eq(row.lens[i], strlen(want));
            }
        }
        at_eof(r);
        close_text(r, path);
        free(text);
    }
}
END_TEST

/* A NUL byte inside a CSV field was published (the validator then called
 * the record poison, with no line number). */
START_TEST(csv_nul_byte_in_field_is_a_line_error)
{
    static const char text[] = "a,b,c\n1,x\0y,3\n2,ok,3\n3,\"q\0\",3\n";
    char *path = write_bytes(text, sizeof(text) - 1), err[256];
    ingest_reader *r = ingest_reader_open(path, INGEST_FMT_CSV, ',', 0, err, sizeof(err));
    ingest_row row;

    ck_assert_ptr_nonnull(r);
    next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 2);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "NUL"));
    ck_assert_uint_eq(row.error_col, 2);
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 4);
    ck_assert_ptr_nonnull(row.error); /* quoted: the same */
    ck_assert_uint_eq(row.error_col, 2);
    at_eof(r);
    close_text(r, path);
    /* A raw NUL in a JSON line too (the line as a whole) */
    path = write_bytes("{\"a\":\"x\0\"}\n", 11);
    r = ingest_reader_open(path, INGEST_FMT_JSONL, ',', 0, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "NUL"));
    ck_assert_uint_eq(row.error_col, 0);
    close_text(r, path);
}
END_TEST

/* A byte order mark in the middle of a file (two files concatenated) was
 * published inside the key; at the very start it stays allowed. */
START_TEST(bom_in_the_middle_of_a_file_is_a_line_error)
{
    const char *csv = "\xEF\xBB\xBF" "a,b\n1,x\n\xEF\xBB\xBF" "2,y\n3,z\xEF\xBB\xBF\n4,w\n";
    const char *jsonl = "\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n{\"a\":3}\n";
    char *path;
    ingest_reader *r = open_text(csv, INGEST_FMT_CSV, 0, &path);
    ingest_row row;

    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    ck_assert_str_eq(row.fields[0], "a");
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 3);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "byte order mark"));
    ck_assert_uint_eq(row.error_col, 1);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_uint_eq(row.error_col, 2);
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    at_eof(r);
    close_text(r, path);

    r = open_text(jsonl, INGEST_FMT_JSONL, 0, &path);
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    ck_assert_str_eq(row.fields[0], "{\"a\":1}");
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "byte order mark"));
    next_ok(r, &row);
    ck_assert_ptr_null(row.error);
    close_text(r, path);
}
END_TEST

/* Write a gzip file of `rows` CSV lines "i,row number i"; returns its bytes. */
static unsigned char *gzip_rows(int rows, size_t *lenp)
{
    char tmpl[] = "/tmp/tb_ingest_gzr_XXXXXX";
    int fd = mkstemp(tmpl);
    gzFile gz;
    FILE *f;
    long n;
    unsigned char *data;

    ck_assert_int_ge(fd, 0);
    close(fd);
    gz = gzopen(tmpl, "wb");
    ck_assert_ptr_nonnull(gz);
    for (int i = 0; i < rows; i++)
        gzprintf(gz, "%d,row number %d\n", i, i);
    gzclose(gz);
    f = fopen(tmpl, "rb");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 64);
    ck_assert_int_eq((long)fread(data, 1, (size_t)n, f), n);
    fclose(f);
    unlink(tmpl);
    *lenp = (size_t)n;
    return data;
}

/* Read to the end: @returns the reader's last answer, rows counted. */
static int read_all(const char *path, int *rows, char *err, size_t errsize)
{
    ingest_reader *r = ingest_reader_open(path, INGEST_FMT_CSV, ',', 0, err, errsize);
    ingest_row row;
    int rc;

    ck_assert_msg(r != NULL, "%s", err);
    *rows = 0;
    while ((rc = ingest_reader_next(r, &row, err, errsize)) == 1) {
        ck_assert_ptr_null(row.error);
        (*rows)++;
    }
    ingest_reader_free(r);
    return rc;
}

/* A truncated gzip file said only "unexpected end of file": the error now
 * names the line and the byte where the stream broke. */
START_TEST(truncated_gzip_names_line_and_byte)
{
    size_t len;
    unsigned char *data = gzip_rows(20000, &len);
    char *path = write_bytes(data, len / 2), err[512];
    int rows, rc = read_all(path, &rows, err, sizeof(err));
    unsigned long long line = 0, byte = 0;
    const char *at = strstr(err, "at line ");

    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    ck_assert_ptr_nonnull(at);
    ck_assert_int_eq(sscanf(at, "at line %llu, byte %llu", &line, &byte), 2);
    /* the rows read end where the break is: a partial last line is not one */
    ck_assert_int_gt(rows, 0);
    ck_assert_uint_ge(line, (unsigned long long)rows + 1);
    ck_assert_uint_le(line, (unsigned long long)rows + 2);
    ck_assert_uint_gt(byte, 0);
    unlink(path);
    free(path);
    free(data);
}
END_TEST

/* Trailing garbage after the last gzip member was accepted in silence (zlib's
 * gzread ignores it): now one more bad line after the last, and a
 * checkpoint after it resumes past it; two members are one stream. */
START_TEST(gzip_trailing_garbage_is_a_line_error)
{
    size_t len;
    unsigned char *data = gzip_rows(100, &len), *two;
    char *path, err[512];
    int rows;
    ingest_reader *r;
    ingest_row row;
    uint64_t off, end, line;

    memcpy(data + len, "garbage\n", 8);
    path = write_bytes(data, len + 8);
    r = ingest_reader_open(path, INGEST_FMT_CSV, ',', 0, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 100; i++) {
        next_ok(r, &row);
        ck_assert_ptr_null(row.error);
    }
    next_ok(r, &row);
    ck_assert_int_eq(row.line, 101);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_ptr_nonnull(strstr(row.error, "trailing garbage"));
    ck_assert_uint_eq(row.error_col, 0);
    ck_assert_uint_eq(row.end, row.offset + 1);
    off = row.offset;
    end = row.end;
    line = row.line;
    at_eof(r);
    /* resumed after it: not again; resumed before it: again */
    ck_assert_int_eq(ingest_reader_seek(r, end, line + 1, err, sizeof(err)), 0);
    at_eof(r);
    ck_assert_int_eq(ingest_reader_seek(r, off, line, err, sizeof(err)), 0);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(row.error);
    ck_assert_int_eq(row.line, 101);
    at_eof(r);
    ingest_reader_free(r);
    unlink(path);
    free(path);
    /* a single zero byte (padding) too */
    data[len] = 0;
    path = write_bytes(data, len + 1);
    r = ingest_reader_open(path, INGEST_FMT_JSONL, ',', 0, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 100; i++)
        next_ok(r, &row);
    next_ok(r, &row);
    ck_assert_ptr_nonnull(strstr(row.error, "trailing garbage"));
    at_eof(r);
    ingest_reader_free(r);
    unlink(path);
    free(path);
    /* concatenated members: read as one */
    two = malloc(2 * len);
    memcpy(two, data, len);
    memcpy(two + len, data, len);
    path = write_bytes(two, 2 * len);
    ck_assert_msg(read_all(path, &rows, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(rows, 200);
    unlink(path);
    free(path);
    free(two);
    free(data);
}
END_TEST

/* A directory as the input said "Numerical result out of range". */
START_TEST(directory_as_input_says_it_is_a_directory)
{
    char err[256];

    ck_assert_ptr_null(ingest_reader_open("/tmp", INGEST_FMT_CSV, ',', 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "/tmp"));
    ck_assert_ptr_nonnull(strstr(err, "is a directory"));
}
END_TEST

/* ---- mapper ------------------------------------------------------------- */

static const char *test_schema =
    "{\"type\":\"record\",\"name\":\"T\",\"namespace\":\"tributary.dataset\",\"tb.key\":\"k\","
    "\"fields\":["
    "{\"name\":\"meta\",\"type\":\"tributary.Meta\"},"
    "{\"name\":\"k\",\"type\":\"string\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"f\",\"type\":\"float\",\"default\":1.5},"
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"RED\",\"GREEN\"]}},"
    "{\"name\":\"amt\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,\"scale\":2}},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"day\",\"type\":[\"null\",{\"type\":\"int\",\"logicalType\":\"date\"}],\"default\":null},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"label\",\"type\":\"string\",\"default\":\"none\"},"
    "{\"name\":\"sub\",\"type\":{\"type\":\"record\",\"name\":\"Sub\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"string\",\"default\":\"dx\"}]}},"
    "{\"name\":\"big\",\"type\":[\"null\",{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":20,\"scale\":2}],\"default\":null}"
    "]}";

static core_avro_catalog_t *cat;
static const core_avro_schema_t *schema;

/* The real catalogue plus a test dataset holding every type the mapper
 * coerces. */
static void mapper_setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
    ck_assert_msg(core_avro_catalog_add(cat, 199, "ingest_test", test_schema, strlen(test_schema),
                                        err, sizeof(err)) == CORE_OK, "add: %s", err);
    schema = core_avro_catalog_by_dataset(cat, "ingest_test");
    ck_assert_ptr_nonnull(schema);
}

static void mapper_teardown(void)
{
    core_avro_catalog_free(cat);
    cat = NULL;
    schema = NULL;
}

static ingest_mapper *new_mapper(ingest_format fmt, bool refuse, size_t max)
{
    ingest_map_opts o;
    char err[512];
    ingest_mapper *m;

    memset(&o, 0, sizeof(o));
    o.schema = schema;
    o.fmt = fmt;
    o.refuse_extra = refuse;
    o.op_column = "op";
    o.version_column = "version";
    o.event_time_column = "event_time";
    o.old_key_column = "old_key";
    o.kind = -1;
    o.op = CORE_AVRO_OP_ADD;
    o.event_time = 1700000000000LL;
    o.max_record = max ? max : 10240;
    m = ingest_mapper_new(&o, err, sizeof(err));
    ck_assert_msg(m != NULL, "mapper: %s", err);
    return m;
}

/* Map CSV text (header + one row): returns the mapper result, fills e/rec. */
static int map_csv(const char *text, bool refuse, size_t max, ingest_line_error *e,
                   cJSON **json, int *header_rc, char *herr, size_t herr_size)
{
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_CSV, 0, &path);
    ingest_mapper *m = new_mapper(INGEST_FMT_CSV, refuse, max);
    ingest_row row;
    ingest_record rec;
    int rc = -9;

    next_ok(r, &row);
    *header_rc = ingest_mapper_header(m, &row, herr, herr_size);
    if (*header_rc == 0) {
        next_ok(r, &row);
        rc = ingest_mapper_row(m, &row, "batch-1", "test.csv", &rec, e);
        if (rc == 0 && json) {
            avro_value_t v;
            char err[256];
            ck_assert_int_eq(core_avro_decode_body(schema, (const char *)rec.value + 5,
                                                   rec.len - 5, 0, &v, err, sizeof(err)),
                             CORE_OK);
            *json = core_avro_to_json(schema, &v, err, sizeof(err));
            avro_value_decref(&v);
            ck_assert_str_eq(rec.key, "K1");
        }
    }
    ingest_mapper_free(m);
    close_text(r, path);
    return rc;
}

#define HDR "k,i,l,d,b,e,amt,ts\n"

START_TEST(map_csv_types_defaults_meta)
{
    ingest_line_error e;
    cJSON *j = NULL, *meta;
    char herr[256];
    int hrc;
    /* columns in another order, an extra one ignored, optional ones absent */
    int rc = map_csv("extra,ts,amt,e,b,d,l,i,k,day,note,sub.x\n"
                     "zz,2024-03-07T10:00:00.123+01:00,-12.5,GREEN,yes,2.5e3,"
                     "-9223372036854775808,2147483647,K1,2024-02-29,,\n",
                     false, 0, &e, &j, &hrc, herr, sizeof(herr));

    ck_assert_msg(hrc == 0, "header: %s", herr);
    ck_assert_msg(rc == 0, "row: %s: %s", e.column, e.reason);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "i")->valuedouble, 2147483647);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "amt")->valuestring, "-12.50");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "e")->valuestring, "GREEN");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "b")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "ts")->valuestring, "2024-03-07T09:00:00.123Z");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "day")->valuestring, "2024-02-29");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "note"))); /* empty optional: null */
    ck_assert_str_eq(cJSON_GetObjectItem(j, "label")->valuestring, "none"); /* default */
    ck_assert(cJSON_GetObjectItem(j, "f")->valuedouble == 1.5);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sub"), "x")->valuestring, "");
    meta = cJSON_GetObjectItem(j, "meta");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "op")->valuestring, "ADD");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "kind")->valuestring, "BULK");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "batch_id")->valuestring, "batch-1");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "source")->valuestring, "test.csv");
    ck_assert_int_eq(cJSON_GetObjectItem(meta, "seq")->valuedouble, 2);
    {
        char id[37];
        ingest_make_id("batch-1", 2, id);
        ck_assert_str_eq(cJSON_GetObjectItem(meta, "id")->valuestring, id);
    }
    cJSON_Delete(j);
}
END_TEST

START_TEST(map_csv_change_feed_meta_columns)
{
    ingest_line_error e;
    cJSON *j = NULL, *meta;
    char herr[256];
    int hrc;
    int rc = map_csv("op,version,event_time,old_key," HDR
                     "update,42,2026-01-01T00:00:00Z,K0,K1,1,2,3.5,false,RED,1,0\n",
                     false, 0, &e, &j, &hrc, herr, sizeof(herr));

    ck_assert_msg(hrc == 0, "header: %s", herr);
    ck_assert_msg(rc == 0, "row: %s: %s", e.column, e.reason);
    meta = cJSON_GetObjectItem(j, "meta");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "op")->valuestring, "UPDATE");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "kind")->valuestring, "CHANGE");
    ck_assert_int_eq(cJSON_GetObjectItem(meta, "version")->valuedouble, 42);
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "old_key")->valuestring, "K0");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "event_time")->valuestring,
                     "2026-01-01T00:00:00.000Z");
    cJSON_Delete(j);
}
END_TEST

struct bad_case {
    const char *row;
    const char *column;
    const char *category;
};

START_TEST(map_csv_bad_values)
{
    static const struct bad_case cases[] = {
        { "K1,2147483648,1,1,true,RED,1,0", "i", "range" },           /* int overflow */
        { "K1,1,9223372036854775808,1,true,RED,1,0", "l", "range" },  /* long overflow */
        { "K1,1x,1,1,true,RED,1,0", "i", "type" },
        { "K1,1,1,1e999,true,RED,1,0", "d", "range" },
        { "K1,1,1,abc,true,RED,1,0", "d", "type" },
        { "K1,1,1,1,maybe,RED,1,0", "b", "type" },
        { "K1,1,1,1,true,BLUE,1,0", "e", "type" },
        { "K1,1,1,1,true,RED,1.234,0", "amt", "type" },               /* too many decimals */
        { "K1,1,1,1,true,RED,12345678901,0", "amt", "range" },        /* precision 9 */
        { "K1,1,1,1,true,RED,1,2024-13-01T00:00:00Z", "ts", "type" }, /* bad date */
        { "K1,1,1,1,true,RED,1,yesterday", "ts", "type" },
        { "K1,,1,1,true,RED,1,0", "i", "missing" },                   /* empty required */
        { "K1,1,1,1,true,RED,1", "", "field_count" },
        { ",1,1,1,true,RED,1,0", "k", "missing" },                    /* empty key */
    };
    for (size_t c = 0; c < CORE_ARRAY_SIZE(cases); c++) {
        char text[512], herr[256];
        ingest_line_error e;
        int hrc, rc;

        snprintf(text, sizeof(text), HDR "%s\n", cases[c].row);
        rc = map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr));
        ck_assert_int_eq(hrc, 0);
        ck_assert_msg(rc == 1, "case %zu accepted", c);
        ck_assert_msg(strcmp(e.column, cases[c].column) == 0, "case %zu: column %s", c, e.column);
        ck_assert_msg(strcmp(e.category, cases[c].category) == 0, "case %zu: category %s (%s)", c,
                      e.category, e.reason);
        ck_assert(e.reason[0] != '\0');
    }
    /* bad date in a date field */
    {
        char herr[256];
        ingest_line_error e;
        int hrc;
        ck_assert_int_eq(map_csv("k,i,l,d,b,e,amt,ts,day\nK1,1,1,1,1,RED,1,0,2023-02-29\n", false,
                                 0, &e, NULL, &hrc, herr, sizeof(herr)),
                         1);
        ck_assert_str_eq(e.column, "day");
    }
}
END_TEST

/* Issue 15 item 8: the reason never holds the refused value; the value is
 * kept beside it (for the errors file), cut at a UTF-8 boundary. */
START_TEST(map_line_error_value_apart_from_reason)
{
    char text[1024], herr[256], cell[200];
    ingest_line_error e;
    int hrc;
    size_t bad;

    snprintf(text, sizeof(text), HDR "K1,1,1,1,true,RED,1,yesterday\n");
    ck_assert_int_eq(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)), 1);
    ck_assert_msg(!strstr(e.reason, "yesterday"), "reason: %s", e.reason);
    ck_assert(e.has_value);
    ck_assert_str_eq(e.value, "yesterday");
    ck_assert_str_eq(e.value_field, "ts");
    /* 96 bytes: kept whole */
    memset(cell, 'x', 96);
    cell[96] = '\0';
    snprintf(text, sizeof(text), HDR "K1,1,1,1,true,%s,1,0\n", cell);
    ck_assert_int_eq(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)), 1);
    ck_assert_str_eq(e.column, "e");
    ck_assert_str_eq(e.value, cell);
    /* 97 bytes, an é across the cut: cut before it, marked */
    memset(cell, 'x', 95);
    memcpy(cell + 95, "\xc3\xa9y", 4);
    snprintf(text, sizeof(text), HDR "K1,1,1,1,true,%s,1,0\n", cell);
    ck_assert_int_eq(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)), 1);
    ck_assert_uint_eq(strlen(e.value), 95 + 3);
    ck_assert_str_eq(e.value + 95, "...");
    ck_assert(ingest_utf8_valid(e.value, strlen(e.value), &bad));
    /* a meta column: its meta field decides */
    ck_assert_int_eq(map_csv("k,i,l,d,b,e,amt,ts,op\nK1,1,1,1,true,RED,1,0,UPSERT\n", false, 0,
                             &e, NULL, &hrc, herr, sizeof(herr)),
                     1);
    ck_assert_str_eq(e.value, "UPSERT");
    ck_assert_str_eq(e.value_field, "meta.op");
    ck_assert_msg(!strstr(e.reason, "UPSERT"), "reason: %s", e.reason);
    /* nothing to show: an empty required cell, a wrong field count */
    snprintf(text, sizeof(text), HDR "K1,,1,1,true,RED,1,0\n");
    ck_assert_int_eq(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)), 1);
    ck_assert(!e.has_value);
    snprintf(text, sizeof(text), HDR "K1,1,1,1,true,RED,1\n");
    ck_assert_int_eq(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)), 1);
    ck_assert(!e.has_value);
}
END_TEST

START_TEST(map_csv_header_errors)
{
    char herr[256];
    ingest_line_error e;
    int hrc;

    map_csv("k,i,l,d,b,e,amt\nK1,1,1,1,1,RED,1\n", false, 0, &e, NULL, &hrc, herr, sizeof(herr));
    ck_assert_int_eq(hrc, -1);
    ck_assert_ptr_nonnull(strstr(herr, "'ts'"));
    map_csv(HDR "K1,1,1,1,1,RED,1,0\n", false, 0, &e, NULL, &hrc, herr, sizeof(herr));
    ck_assert_int_eq(hrc, 0);
    map_csv("zzz," HDR "0,K1,1,1,1,1,RED,1,0\n", true, 0, &e, NULL, &hrc, herr, sizeof(herr));
    ck_assert_int_eq(hrc, -1);
    ck_assert_ptr_nonnull(strstr(herr, "'zzz'"));
    map_csv("k,k,i,l,d,b,e,amt,ts\nK1,K1,1,1,1,1,RED,1,0\n", false, 0, &e, NULL, &hrc, herr,
            sizeof(herr));
    ck_assert_int_eq(hrc, -1);
    ck_assert_ptr_nonnull(strstr(herr, "twice"));
}
END_TEST

START_TEST(map_record_too_big)
{
    char *text = malloc(20000), herr[256];
    ingest_line_error e;
    int hrc, rc;

    strcpy(text, HDR "K1,1,1,1,1,RED,1,0\n");
    text[strlen(text) - 1] = '\0';
    strcat(text, ",");
    /* note column appended via a header with note */
    snprintf(text, 20000, "k,i,l,d,b,e,amt,ts,note\nK1,1,1,1,1,RED,1,0,");
    memset(text + strlen(text), 'n', 12000);
    text[strlen("k,i,l,d,b,e,amt,ts,note\nK1,1,1,1,1,RED,1,0,") + 12000] = '\0';
    strcat(text, "\n");
    rc = map_csv(text, false, 10240, &e, NULL, &hrc, herr, sizeof(herr));
    ck_assert_int_eq(hrc, 0);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(e.category, "too_big");
    ck_assert_ptr_nonnull(strstr(e.reason, "10240"));
    free(text);
}
END_TEST

START_TEST(map_jsonl)
{
    const char *text =
        "{\"k\":\"K1\",\"i\":5,\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"RED\",\"amt\":\"3.10\","
        "\"ts\":\"2024-01-01T00:00:00Z\",\"sub\":{\"x\":\"y\"},\"op\":\"DELETE\"}\n"
        "{\"k\":\"K1\",\"i\":5\n"
        "[1,2]\n"
        "{\"k\":\"K1\",\"i\":\"five\",\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"RED\",\"amt\":\"3.10\","
        "\"ts\":0,\"sub\":{}}\n";
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_JSONL, 0, &path);
    ingest_mapper *m = new_mapper(INGEST_FMT_JSONL, false, 0);
    ingest_row row;
    ingest_record rec;
    ingest_line_error e;

    next_ok(r, &row);
    ck_assert_msg(ingest_mapper_row(m, &row, "b", "s", &rec, &e) == 0, "%s: %s", e.column, e.reason);
    ck_assert_int_eq(rec.op, CORE_AVRO_OP_DELETE);
    ck_assert_int_eq(rec.kind, CORE_AVRO_KIND_CHANGE);
    ck_assert_str_eq(rec.key, "K1");
    next_ok(r, &row);
    ck_assert_int_eq(ingest_mapper_row(m, &row, "b", "s", &rec, &e), 1);
    ck_assert_str_eq(e.category, "json");
    next_ok(r, &row);
    ck_assert_int_eq(ingest_mapper_row(m, &row, "b", "s", &rec, &e), 1);
    ck_assert_ptr_nonnull(strstr(e.reason, "object"));
    next_ok(r, &row);
    ck_assert_int_eq(ingest_mapper_row(m, &row, "b", "s", &rec, &e), 1);
    ck_assert_str_eq(e.column, "i");
    ingest_mapper_free(m);
    close_text(r, path);
}
END_TEST

/* JSON Lines: the scalar at the error's path is kept beside the reason. */
START_TEST(map_jsonl_value_beside_reason)
{
    const char *text =
        "{\"k\":\"K1\",\"i\":\"five\",\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"RED\","
        "\"amt\":\"3.10\",\"ts\":0,\"sub\":{}}\n"
        "{\"k\":\"K1\",\"i\":5,\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"RED\",\"amt\":\"3.10\","
        "\"ts\":0,\"sub\":{\"x\":7}}\n"
        "{\"k\":\"K1\",\"i\":5,\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"PURPLE\","
        "\"amt\":\"3.10\",\"ts\":0}\n"
        "{\"k\":\"K1\",\"i\":5,\"l\":6,\"d\":1.5,\"b\":true,\"e\":\"RED\",\"amt\":\"3.10\","
        "\"ts\":0,\"sub\":[1]}\n";
    static const struct { const char *column, *value; } want[] = {
        { "i", "five" }, { "sub.x", "7" }, { "e", "PURPLE" }, { "sub", NULL },
    };
    char *path;
    ingest_reader *r = open_text(text, INGEST_FMT_JSONL, 0, &path);
    ingest_mapper *m = new_mapper(INGEST_FMT_JSONL, false, 0);
    ingest_row row;
    ingest_record rec;
    ingest_line_error e;

    for (size_t i = 0; i < CORE_ARRAY_SIZE(want); i++) {
        next_ok(r, &row);
        ck_assert_int_eq(ingest_mapper_row(m, &row, "b", "s", &rec, &e), 1);
        ck_assert_msg(!strcmp(e.column, want[i].column), "line %zu: column %s", i + 1, e.column);
        if (want[i].value) {
            ck_assert_msg(e.has_value, "line %zu: no value", i + 1);
            ck_assert_str_eq(e.value, want[i].value);
            ck_assert_str_eq(e.value_field, want[i].column);
            ck_assert_msg(!strstr(e.reason, want[i].value), "line %zu: reason %s", i + 1,
                          e.reason);
        } else {
            ck_assert_msg(!e.has_value, "line %zu: a container kept as value", i + 1);
        }
    }
    ingest_mapper_free(m);
    close_text(r, path);
}
END_TEST

/* Map one JSON line; on success *json is the record as natural JSON. */
static int map_jsonl_line(const char *line, ingest_record *rec, ingest_line_error *e, cJSON **json)
{
    char *path;
    ingest_reader *r = open_text(line, INGEST_FMT_JSONL, 0, &path);
    ingest_mapper *m = new_mapper(INGEST_FMT_JSONL, false, 0);
    ingest_row row;
    int rc;

    next_ok(r, &row);
    rc = ingest_mapper_row(m, &row, "batch-1", "test.jsonl", rec, e);
    if (rc == 0 && json) {
        avro_value_t v;
        char err[256];
        ck_assert_int_eq(core_avro_decode_body(schema, (const char *)rec->value + 5, rec->len - 5,
                                               0, &v, err, sizeof(err)),
                         CORE_OK);
        *json = core_avro_to_json(schema, &v, err, sizeof(err));
        avro_value_decref(&v);
    }
    ingest_mapper_free(m);
    close_text(r, path);
    return rc;
}

/* A JSON line of the test dataset: i, l, d, amt as given, then more keys. */
#define JLINE(i, l, d, amt, more)                                                              \
    "{\"k\":\"K1\",\"b\":true,\"e\":\"RED\",\"ts\":0,\"sub\":{},\"i\":" i ",\"l\":" l ",\"d\":" d \
    ",\"amt\":" amt more "}\n"

/* JSON Lines numbers went through a double: 1234567890123456.78 reached
 * the record as ...456.80, a meta.version of 9007199254740993 as ...992,
 * 1.5 in a long became 2, -9223372036854775809 was clamped and
 * 9223372036854775807 refused. */
START_TEST(jsonl_numbers_are_taken_exactly_from_their_text)
{
    ingest_record rec;
    ingest_line_error e;
    cJSON *j = NULL, *meta;
    int rc;

    rc = map_jsonl_line(JLINE("5", "9223372036854775807", "0.1", "1234567.89",
                              ",\"big\":1234567890123456.78,\"version\":9007199254740993"),
                        &rec, &e, &j);
    ck_assert_msg(rc == 0, "%s: %s", e.column, e.reason);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "big")->valuestring, "1234567890123456.78");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "amt")->valuestring, "1234567.89");
    ck_assert(cJSON_IsRaw(cJSON_GetObjectItem(j, "l")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "l")->valuestring, "9223372036854775807");
    ck_assert(cJSON_GetObjectItem(j, "d")->valuedouble == 0.1);
    meta = cJSON_GetObjectItem(j, "meta");
    ck_assert(cJSON_IsRaw(cJSON_GetObjectItem(meta, "version")));
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "version")->valuestring, "9007199254740993");
    ck_assert(rec.version == 9007199254740993LL);
    cJSON_Delete(j);

    /* the other edge of long, and integers written with a point or an exponent */
    j = NULL;
    rc = map_jsonl_line(JLINE("1.50e1", "-9223372036854775808", "1", "1", ",\"version\":-0"),
                        &rec, &e, &j);
    ck_assert_msg(rc == 0, "%s: %s", e.column, e.reason);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "l")->valuestring, "-9223372036854775808");
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "i")->valuedouble, 15);
    ck_assert(rec.version == 0);
    cJSON_Delete(j);
    j = NULL;
    rc = map_jsonl_line(JLINE("7.0", "2e3", "1", "1", ""), &rec, &e, &j);
    ck_assert_msg(rc == 0, "%s: %s", e.column, e.reason);
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "l")->valuedouble, 2000);
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "i")->valuedouble, 7);
    cJSON_Delete(j);
}
END_TEST

START_TEST(jsonl_inexact_numbers_are_refused_with_a_reason)
{
    static const struct {
        const char *line, *column, *category, *why;
    } cases[] = {
        { JLINE("5", "1.5", "1", "1", ""), "l", "type", "fraction" },
        { JLINE("5", "-9223372036854775809", "1", "1", ""), "l", "range", "range" },
        { JLINE("5", "9223372036854775808", "1", "1", ""), "l", "range", "range" },
        { JLINE("5", "1e19", "1", "1", ""), "l", "range", "range" },
        { JLINE("2147483648", "1", "1", "1", ""), "i", "range", "range" },
        { JLINE("0.5", "1", "1", "1", ""), "i", "type", "fraction" },
        { JLINE("5", "1", "1", "1.005", ""), "amt", "type", "decimal" },
        { JLINE("5", "1", "1e999", "1", ""), "d", "range", "range" },
        { JLINE("5", "1", "1", "1", ",\"version\":1.5"), "version", "type", "version" },
        { JLINE("5", "1", "1", "1", ",\"version\":-9223372036854775809"), "version", "range", "version" },
        { JLINE("5", "01", "1", "1", ""), "l", "json", "leading zero" },
        { JLINE("5", "\" 42\"", "1", "1", ""), "l", "type", "long" },
        { JLINE("5", "1", "1", "\" 10.50\"", ""), "amt", "type", "decimal" },
        { JLINE("5", "1", "1", "\"10.50 \"", ""), "amt", "type", "decimal" },
    };

    for (size_t c = 0; c < CORE_ARRAY_SIZE(cases); c++) {
        ingest_record rec;
        ingest_line_error e;
        int rc = map_jsonl_line(cases[c].line, &rec, &e, NULL);

        ck_assert_msg(rc == 1, "case %zu accepted", c);
        ck_assert_msg(strcmp(e.column, cases[c].column) == 0, "case %zu: column '%s' (%s)", c,
                      e.column, e.reason);
        ck_assert_msg(strcmp(e.category, cases[c].category) == 0, "case %zu: category %s (%s)", c,
                      e.category, e.reason);
        ck_assert_msg(strstr(e.reason, cases[c].why) != NULL, "case %zu: reason %s", c, e.reason);
    }
}
END_TEST

/* "\u0000nul" was published as an empty name; a name given twice kept the
 * first value in silence. */
START_TEST(jsonl_nul_escape_and_duplicate_keys_are_line_errors)
{
    char big[2048];
    size_t off;
    ingest_record rec;
    ingest_line_error e;

    ck_assert_int_eq(map_jsonl_line(JLINE("5", "1", "1", "1", ",\"note\":\"\\u0000nul\""), &rec, &e, NULL), 1);
    ck_assert_str_eq(e.column, "note");
    ck_assert_str_eq(e.category, "json");
    ck_assert_ptr_nonnull(strstr(e.reason, "u0000"));
    ck_assert_ptr_nonnull(strstr(e.reason, "byte "));

    ck_assert_int_eq(map_jsonl_line(JLINE("5", "1", "1", "1", ",\"k\":\"K2\""), &rec, &e, NULL), 1);
    ck_assert_str_eq(e.column, "k");
    ck_assert_ptr_nonnull(strstr(e.reason, "twice"));

    ck_assert_int_eq(map_jsonl_line("{\"sub\":{\"x\":\"a\",\"x\":\"b\"}}\n", &rec, &e,
                                    NULL), 1);
    ck_assert_str_eq(e.column, "sub.x");

    /* an object of many names (checked by sorting) with one twice */
    off = (size_t)snprintf(big, sizeof(big), "%s", JLINE("5", "1", "1", "1", ""));
    off -= 2; /* before the closing brace */
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, ",\"x%d\":%d", i, i);
    snprintf(big + off, sizeof(big) - off, ",\"x17\":0}\n");
    ck_assert_int_eq(map_jsonl_line(big, &rec, &e, NULL), 1);
    ck_assert_str_eq(e.column, "x17");
    ck_assert_ptr_nonnull(strstr(e.reason, "twice"));
    /* the same without the duplicate is fine (unknown names ignored) */
    big[off] = '}';
    big[off + 1] = '\n';
    big[off + 2] = '\0';
    ck_assert_msg(map_jsonl_line(big, &rec, &e, NULL) == 0, "%s: %s", e.column, e.reason);

    /* an escaped character that is not NUL stays fine */
    ck_assert_msg(map_jsonl_line(JLINE("5", "1", "1", "1", ",\"note\":\"\\u00e9\\ud83d\\ude00\""), &rec, &e,
                                 NULL) == 0, "%s: %s", e.column, e.reason);
    ck_assert_int_eq(map_jsonl_line(JLINE("5", "1", "1", "1", ",\"note\":\"\\ud83d\""), &rec, &e, NULL), 1);
    ck_assert_str_eq(e.column, "note");
}
END_TEST

/* " 10.50" for a decimal was trimmed in silence. */
START_TEST(csv_number_with_a_blank_is_a_line_error)
{
    static const struct bad_case cases[] = {
        { "K1,1,1,1,true,RED, 10.50,0", "amt", "type" },
        { "K1,1,1,1,true,RED,10.50 ,0", "amt", "type" },
        { "K1, 1,1,1,true,RED,1,0", "i", "type" },
        { "K1,1,1\t,1,true,RED,1,0", "l", "type" },
        { "K1,1,1, 1.5,true,RED,1,0", "d", "type" },
        { "K1,1,1,1,true,RED,1, 0", "ts", "type" },
    };
    for (size_t c = 0; c < CORE_ARRAY_SIZE(cases); c++) {
        char text[512], herr[256];
        ingest_line_error e;
        int hrc, rc;

        snprintf(text, sizeof(text), HDR "%s\n", cases[c].row);
        rc = map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr));
        ck_assert_int_eq(hrc, 0);
        ck_assert_msg(rc == 1, "case %zu accepted", c);
        ck_assert_msg(strcmp(e.column, cases[c].column) == 0, "case %zu: column %s", c, e.column);
        ck_assert_msg(strstr(e.reason, "blank") != NULL, "case %zu: %s", c, e.reason);
    }
    /* a string keeps its blanks */
    {
        char herr[256];
        ingest_line_error e;
        cJSON *j = NULL;
        int hrc;
        ck_assert_int_eq(map_csv("k,i,l,d,b,e,amt,ts,note\nK1,1,1,1,1,RED,10.50,0, x \n", false, 0,
                                 &e, &j, &hrc, herr, sizeof(herr)),
                         0);
        ck_assert_str_eq(cJSON_GetObjectItem(j, "note")->valuestring, " x ");
        ck_assert_str_eq(cJSON_GetObjectItem(j, "amt")->valuestring, "10.50");
        cJSON_Delete(j);
    }
}
END_TEST

/* A timestamp with a fraction finer than the field's unit was truncated,
 * and a date with a sign in its year ("-024-01-01") became a garbage day. */
START_TEST(csv_timestamp_finer_than_its_field_and_signed_date_are_line_errors)
{
    static const char *const rows[] = {
        "K1,1,1,1,true,RED,1,2024-03-07T10:00:00.1234Z,",
        "K1,1,1,1,true,RED,1,2024-03-07T10:00:00.123Z,-024-01-01",
        "K1,1,1,1,true,RED,1,2024-03-07T10:00:00.123Z,+024-01-01",
    };
    static const char *const cols[] = { "ts", "day", "day" };
    char text[512], herr[256];
    ingest_line_error e;
    cJSON *j = NULL;
    int hrc;

    for (size_t c = 0; c < CORE_ARRAY_SIZE(rows); c++) {
        snprintf(text, sizeof(text), "k,i,l,d,b,e,amt,ts,day\n%s\n", rows[c]);
        ck_assert_msg(map_csv(text, false, 0, &e, NULL, &hrc, herr, sizeof(herr)) == 1,
                      "case %zu accepted", c);
        ck_assert_str_eq(e.column, cols[c]);
    }
    /* trailing zeros of the fraction are fine */
    ck_assert_int_eq(map_csv("k,i,l,d,b,e,amt,ts\nK1,1,1,1,1,RED,1,2024-03-07T10:00:00.1230000Z\n",
                             false, 0, &e, &j, &hrc, herr, sizeof(herr)),
                     0);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "ts")->valuestring, "2024-03-07T10:00:00.123Z");
    cJSON_Delete(j);
    /* and JSON Lines the same */
    {
        ingest_record rec;
        ck_assert_int_eq(map_jsonl_line("{\"k\":\"K1\",\"b\":true,\"e\":\"RED\",\"sub\":{},\"i\":1,"
                                        "\"l\":1,\"d\":1,\"amt\":1,"
                                        "\"ts\":\"2024-03-07T10:00:00.0001Z\"}\n",
                                        &rec, &e, NULL),
                         1);
        ck_assert_str_eq(e.column, "ts");
    }
}
END_TEST

START_TEST(ids_are_deterministic_uuid_v8)
{
    char a[37], b[37], c[37], d[37];

    ingest_make_id("payee-0123", 2, a);
    ingest_make_id("payee-0123", 2, b);
    ingest_make_id("payee-0123", 3, c);
    ingest_make_id("payee-0124", 2, d);
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert_str_ne(a, d);
    ck_assert_int_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '8');
    ck_assert(strchr("89ab", a[19]) != NULL);
}
END_TEST

int main(void)
{
    Suite *s1 = suite_create("ingest_reader"), *s2 = suite_create("ingest_mapper");
    TCase *tr = tcase_create("reader"), *tm = tcase_create("mapper");
    Suite *suites[2];

    tcase_add_test(tr, csv_rfc4180_corners);
    tcase_add_test(tr, csv_lf_cr_blank_and_truncated_last_line);
    tcase_add_test(tr, csv_broken_quoting_is_a_line_error_and_resyncs);
    tcase_add_test(tr, csv_one_megabyte_field);
    tcase_add_test(tr, csv_record_bound_counts_delimiters_and_quotes);
    tcase_add_test(tr, csv_invalid_utf8_is_a_line_error);
    tcase_add_test(tr, utf8_validator);
    tcase_add_test(tr, gzip_input_and_resume_offsets);
    tcase_add_test(tr, corrupt_gzip_is_a_read_error);
    tcase_add_test(tr, jsonl_lines);
    tcase_add_test(tr, missing_file);
    tcase_add_test(tr, csv_wide_records_do_not_overflow_field_arrays);
    tcase_add_test(tr, csv_nul_byte_in_field_is_a_line_error);
    tcase_add_test(tr, bom_in_the_middle_of_a_file_is_a_line_error);
    tcase_add_test(tr, truncated_gzip_names_line_and_byte);
    tcase_add_test(tr, gzip_trailing_garbage_is_a_line_error);
    tcase_add_test(tr, directory_as_input_says_it_is_a_directory);
    suite_add_tcase(s1, tr);
    tcase_add_checked_fixture(tm, mapper_setup, mapper_teardown);
    tcase_add_test(tm, map_csv_types_defaults_meta);
    tcase_add_test(tm, map_csv_change_feed_meta_columns);
    tcase_add_test(tm, map_csv_bad_values);
    tcase_add_test(tm, map_line_error_value_apart_from_reason);
    tcase_add_test(tm, map_csv_header_errors);
    tcase_add_test(tm, map_record_too_big);
    tcase_add_test(tm, map_jsonl);
    tcase_add_test(tm, map_jsonl_value_beside_reason);
    tcase_add_test(tm, ids_are_deterministic_uuid_v8);
    tcase_add_test(tm, jsonl_numbers_are_taken_exactly_from_their_text);
    tcase_add_test(tm, jsonl_inexact_numbers_are_refused_with_a_reason);
    tcase_add_test(tm, jsonl_nul_escape_and_duplicate_keys_are_line_errors);
    tcase_add_test(tm, csv_number_with_a_blank_is_a_line_error);
    tcase_add_test(tm, csv_timestamp_finer_than_its_field_and_signed_date_are_line_errors);
    suite_add_tcase(s2, tm);
    suites[0] = s1;
    suites[1] = s2;
    return tu_run(suites, 2);
}
