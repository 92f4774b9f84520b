/* mapper_int.h — what mapper.c (plan, header, meta, rows) and cell.c (one
 * cell of text into one Avro leaf) share: the plan of a dataset's leaves
 * and the line-error helpers. Not for the rest of svc-ingest (mapper.h). */
#ifndef SVC_INGEST_MAPPER_INT_H
#define SVC_INGEST_MAPPER_INT_H

#include "mapper.h"

#include <avro.h>
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define MAX_DEPTH 8

enum leaf_kind {
    L_STRING, L_BYTES, L_INT, L_LONG, L_FLOAT, L_DOUBLE, L_BOOL, L_ENUM,
    L_DECIMAL, L_TS_MS, L_TS_US, L_DATE, L_NULL, L_UNSUPPORTED,
};

struct leaf {
    char *name;               /* dotted path */
    size_t path[MAX_DEPTH];
    size_t depth;
    enum leaf_kind kind;
    bool nullable;
    int null_branch, val_branch;
    bool has_default;
    bool default_null;
    char *default_text;       /* default as text (non-null defaults) */
    int precision, scale;
    size_t fixed_size;        /* decimal on fixed: its size; 0 on bytes */
    const cJSON *symbols;
    const char *type_name;    /* for messages */
    long col;                 /* CSV column, -1 when absent */
};

struct ingest_mapper {
    ingest_map_opts o;
    const core_avro_schema_t *schema;
    struct leaf *leaves;
    size_t nleaves, leaves_cap;
    size_t ncols;
    long col_op, col_version, col_event_time, col_old_key;
    avro_value_t value;       /* CSV: reused */
    bool have_value;
    avro_value_t jvalue;      /* JSONL: the last record */
    bool have_jvalue;
    uint8_t *buf;
    size_t buf_size;
    char *key;
    size_t key_cap;
    char *old_key;      /* meta.old_key of the row being mapped (copied), or NULL */
    size_t old_key_cap;
};

/* A line error on column (a field path, or a column of the input):
 * category (format, type, range, missing...) and the reason, printf-style;
 * never the value (cell_val keeps that apart). */
void cell_err(ingest_line_error *e, const char *column, const char *category, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));
/* Keep the refused value beside the reason (never in it). */
void cell_val(ingest_line_error *e, const char *field, const char *s, size_t len);
/* A cell copied into tmp without ASCII blanks around it; NULL when too long. */
const char *cell_trimmed(const char *s, size_t len, char *tmp, size_t tmpsize);
bool cell_parse_ll(const char *s, long long *out);
bool cell_all_int(const char *s);
/* A blank at either end of a cell (refused for every kind but text). */
bool cell_blank_edge(const char *s, size_t len);
/* Set leaf l of root from a cell (present: the column or key was there).
 * @returns 0, or 1 with e set (a line error). */
int cell_set_leaf(const struct leaf *l, avro_value_t *root, const char *cell, size_t len,
                  bool present, ingest_line_error *e);

#endif
