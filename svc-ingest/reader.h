/* reader.h — svc-ingest's input: CSV (RFC 4180) and JSON Lines records from
 * plain or gzip-compressed files, numbered by PHYSICAL line.
 *
 * A record's line is the 1-based physical line it starts on (the CSV header
 * is line 1); a CSV record whose quoted fields hold newlines spans several
 * lines and keeps the number of its first. Line breaks are LF, CRLF or a
 * lone CR. A UTF-8 byte order mark at the start of the file is skipped.
 *
 * Offsets are positions in the UNCOMPRESSED stream: `offset` is where a
 * record starts, `end` where the next one starts, so a checkpoint
 * (end, next line) lets a later run resume exactly after a record with
 * ingest_reader_seek().
 *
 * A record that cannot be parsed (a quote inside an unquoted field, text
 * after a closing quote, an unterminated quoted field at the end of the
 * file, a record longer than max_record bytes, invalid UTF-8) is still
 * returned, with row->error set and the column it concerns: the caller
 * reports it and goes on; the parser has already resynchronised on the next
 * record boundary. A NUL byte, or a byte order mark anywhere but at the very
 * start of the file, is such an error too.
 *
 * gzip: concatenated members are one stream. A truncated or corrupt stream
 * is a read error naming the line and the byte where it broke. Bytes after
 * the last member that start no other member (trailing garbage) come back
 * as one last record with row->error (no fields, its line the one after the
 * last, one virtual byte long so that a checkpoint after it resumes past
 * it). */
#ifndef SVC_INGEST_READER_H
#define SVC_INGEST_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ingest_format {
    INGEST_FMT_CSV = 0,
    INGEST_FMT_JSONL = 1,
} ingest_format;

typedef struct ingest_reader ingest_reader;

/** One record. Every pointer is owned by the reader and valid until the
 * next ingest_reader_next() or ingest_reader_seek(). */
typedef struct ingest_row {
    uint64_t line;        /* first physical line, 1-based */
    uint64_t nlines;      /* physical lines it spans */
    uint64_t offset;      /* uncompressed byte offset of its first byte */
    uint64_t end;         /* offset of the byte after its line break */
    size_t nfields;       /* CSV: fields; JSONL: 1 */
    char **fields;        /* CSV: NUL-terminated fields; JSONL: fields[0] is the line */
    size_t *lens;         /* length of each field in bytes */
    size_t raw_len;       /* bytes of the record, line break excluded */
    const char *error;    /* NULL, or why the record cannot be used */
    size_t error_col;     /* 1-based field the error concerns, 0 if none */
} ingest_row;

/**
 * @brief Open a file (gzip or plain: detected by its magic bytes).
 * @param max_record largest record accepted, in raw bytes of the file
 *        (delimiters and quotes counted; the line break not): longer ones
 *        are returned with an error, and neither their bytes nor their
 *        fields past the bound are kept in memory.
 * @returns the reader or NULL with errstr ("<path>: No such file ...").
 */
ingest_reader *ingest_reader_open(const char *path, ingest_format fmt, char delimiter,
                                  size_t max_record, char *errstr, size_t errstr_size);
void ingest_reader_free(ingest_reader *r);

/**
 * @brief Next record.
 * @returns 1 with *row filled; 0 at the end of the file; -1 on a read error
 *          (errstr says which: a corrupt gzip stream, an I/O error).
 * Blank lines (nothing but a line break) are skipped: they hold no record.
 */
int ingest_reader_next(ingest_reader *r, ingest_row *row, char *errstr, size_t errstr_size);

/**
 * @brief Continue reading at uncompressed offset \p offset, whose line
 * number is \p line (from a checkpoint). A gzip file is re-inflated up to
 * the offset. @returns 0 or -1 with errstr.
 */
int ingest_reader_seek(ingest_reader *r, uint64_t offset, uint64_t line,
                       char *errstr, size_t errstr_size);

/** Uncompressed bytes consumed so far, and the compressed file size. */
uint64_t ingest_reader_pos(const ingest_reader *r);
uint64_t ingest_reader_file_size(const ingest_reader *r);
/** Compressed bytes consumed so far (for progress on gzip input). */
uint64_t ingest_reader_raw_pos(const ingest_reader *r);

/** @returns true when s[0..len) is valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF); *bad gets the byte offset of the
 * first invalid byte. */
bool ingest_utf8_valid(const char *s, size_t len, size_t *bad);

#endif
