/* mapper.h — one input record (a CSV row under its header, or a JSON Lines
 * object) to a record of the dataset's Avro schema, encoded in the
 * Confluent wire format, with its `meta` filled.
 *
 * CSV: header columns are matched to schema fields by name, in any order;
 * a nested record's fields are columns named with dots (metadata.version).
 * Cells are coerced to the field's type: int, long (range-checked), float,
 * double, boolean (true/false, yes/no, 1/0, t/f, y/n), string, bytes, enum
 * (a symbol), decimal (core_avro_decimal_parse: no more decimals than the
 * scale), timestamp-millis/-micros (ISO 8601 with a zone, or an integer),
 * date (YYYY-MM-DD or days). An empty cell is null for an optional field,
 * "" for a string, and the schema default (else an error) for the rest. A
 * column absent from the header takes the schema default, null for an
 * optional field; a required field without a column refuses the file.
 *
 * Meta columns (not schema fields): `op` (ADD | UPDATE | DELETE: makes the
 * file a change feed), `version` (long), `event_time` (ISO 8601 or ms),
 * `old_key`. Their names are configurable. Without them: op and kind come
 * from the options (a bulk file is ADD/BULK), event_time is the options'
 * default (the file's modification time), version is
 * event_time_seconds * 2^30 + line, so a later file or a later line of one
 * file wins, and a re-run of the same file gives the same version.
 *
 * meta.id is deterministic: UUID version 8 (RFC 9562 "custom", the
 * SHA-256-based example of its appendix) made of the first 16 bytes of
 * SHA-256("tributary.ingest" NUL batch_id NUL decimal line), with the
 * version and variant bits set. seq is the line number.
 *
 * Error reasons never hold a field's value (values may be personal data);
 * the value travels beside the reason (ingest_line_error.value). */
#ifndef SVC_INGEST_MAPPER_H
#define SVC_INGEST_MAPPER_H

#include "reader.h"

#include "tributary/core_avro.h"

#include <stdbool.h>
#include <stdint.h>

/* Longest batch id accepted (bytes). */
#define INGEST_MAX_BATCH_ID 200

typedef struct ingest_mapper ingest_mapper;

typedef struct ingest_map_opts {
    const core_avro_schema_t *schema;
    ingest_format fmt;
    bool refuse_extra;            /* unknown columns / keys refuse (else ignored) */
    const char *op_column;        /* "op" */
    const char *version_column;   /* "version" */
    const char *event_time_column;/* "event_time" */
    const char *old_key_column;   /* "old_key" */
    int kind;                     /* -1 auto (CHANGE when an op column exists), else core_avro_kind_t */
    core_avro_op_t op;            /* op when the record has none */
    int64_t event_time;           /* default event_time (ms) */
    size_t max_record;            /* largest encoded record, header included */
} ingest_map_opts;

/** Why a line was refused: the column (name, or "" when the whole line),
 * the reason, and a short category for metrics labels. The reason names
 * the column and the fault, never the value: it goes to the audit event
 * and the metrics. The refused value itself, when one cell or JSON value is
 * to blame, is kept apart in value; only the errors-file writer may print
 * it, and only when value_field (the field path whose tb.personal marking
 * governs it) is not personal (core_avro_schema_path_personal()). */
typedef struct ingest_line_error {
    char column[128];
    char reason[320];
    const char *category; /* csv_syntax utf8 field_count json type range missing too_big extra gzip */
    bool has_value;
    char value[100];       /* the value's text, cut at a UTF-8 boundary; "..." when cut */
    char value_field[128]; /* field path deciding whether value may be shown */
} ingest_line_error;

/** A mapped record. Pointers are owned by the mapper, valid until the next
 * ingest_mapper_row() call. */
typedef struct ingest_record {
    const void *value;   /* wire bytes */
    size_t len;
    const char *key;     /* business key, NUL-terminated */
    size_t keylen;
    char id[37];
    int64_t version;
    const char *old_key; /* an UPDATE moving the record: the key it leaves
                          * (valid until the next row), else NULL */
    core_avro_op_t op;
    core_avro_kind_t kind;
} ingest_record;

/** @returns the mapper, or NULL with errstr (the schema has a field CSV
 * cannot carry and that has no default, ...). */
ingest_mapper *ingest_mapper_new(const ingest_map_opts *o, char *errstr, size_t errstr_size);
void ingest_mapper_free(ingest_mapper *m);

/**
 * @brief CSV: bind the header row (line 1). @returns 0, or -1 with errstr
 * naming the column (a required field missing, a column twice, an extra
 * column refused by configuration, invalid UTF-8): the file cannot be read.
 */
int ingest_mapper_header(ingest_mapper *m, const ingest_row *hdr, char *errstr, size_t errstr_size);

/**
 * @brief Map and encode one record.
 * @returns 0 with *rec filled; 1 when the line is refused (*err filled);
 *          -1 on an internal failure (out of memory; errstr in err->reason).
 */
int ingest_mapper_row(ingest_mapper *m, const ingest_row *row, const char *batch_id,
                      const char *source, ingest_record *rec, ingest_line_error *err);

/** The deterministic id of a line (see the file comment). out: 37 bytes. */
void ingest_make_id(const char *batch_id, uint64_t line, char out[37]);

#endif
