/* fault_model.h — the expected final state of a payee run, computed from the
 * input files alone (never from what the pipeline wrote). */
#ifndef TRIBUTARY_FAULT_MODEL_H
#define TRIBUTARY_FAULT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { F_KEY, F_NAME, F_ACCOUNT, F_ROUTING, F_COUNTRY, F_CURRENCY, F_EMAIL, F_AMOUNT,
       F_STATUS, F_UPDATED, F_N };

typedef struct fm_entry {
    char *key;              /* NULL: free slot */
    int64_t version;
    bool deleted;
    char *f[F_N];           /* the business fields as the input file wrote them */
} fm_entry;

/* What one input file holds, by the model's own reading. */
typedef struct fm_file_counts {
    long records;           /* CSV records (a quoted line break does not split one) */
    long format_errors;     /* ingest must refuse these */
    long rule_breaks;       /* the validator must send these to the DLQ */
    long published;         /* records - format_errors */
    long valid;             /* published - rule_breaks */
} fm_file_counts;

typedef struct fm_model {
    fm_entry *slots;
    size_t cap, used;
} fm_model;

/* Read a batch or change file (CSV with a header naming the columns) and
 * apply its accepted records to the model. @returns 0, or -1 with err set. */
int fm_load(fm_model *m, const char *path, fm_file_counts *c, char *err, size_t errlen);

/* The entry of key, or NULL. */
fm_entry *fm_find(fm_model *m, const char *key);

/* Keys whose final state is a live row. */
size_t fm_live(const fm_model *m);

void fm_free(fm_model *m);

/* "2026-11-02T01:01:00Z" or with a fraction: ms since the epoch; -1 when malformed. */
int64_t fm_iso_ms(const char *s);

#endif
