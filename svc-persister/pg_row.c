/* pg_row.c — PostgreSQL's COPY text: a value escaped, and a record's whole
 * row made straight from its Avro value (the columns compiled once per
 * dataset into paths), the text the natural-JSON path gives too. */
#include "persister.h"

#include "tributary/core_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* COPY text format: backslash, tab, newline and carriage return escaped. */
void pers_copy_text(core_strbuf *b, const char *s)
{
    if (!s) {
        core_strbuf_add(b, "\\N");
        return;
    }
    const char *start = s;
    for (; *s; s++) {
        const char *esc = NULL;
        switch (*s) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: break;
        }
        if (esc) {
            core_strbuf_addn(b, start, (size_t)(s - start));
            core_strbuf_add(b, esc);
            start = s + 1;
        }
    }
    core_strbuf_addn(b, start, (size_t)(s - start));
}

/* ---- COPY rows straight from the Avro value -------------------------------- */

int pers_pg_rows_init(pers_dataset *ds, size_t nds, char *errstr, size_t errstr_size)
{
    for (size_t d = 0; d < nds; d++) {
        bool plain = true;
        for (size_t c = 0; c < ds[d].ncols; c++)
            if (!strcmp(ds[d].cols[c].pg_type, "jsonb"))
                plain = false; /* a nested value: its JSON text comes from cJSON */
        if (!plain)
            continue;
        ds[d].row_paths = calloc(ds[d].ncols ? ds[d].ncols : 1, sizeof(*ds[d].row_paths));
        if (!ds[d].row_paths) {
            core_errstr(errstr, errstr_size, "out of memory");
            return -1;
        }
        for (size_t c = 0; c < ds[d].ncols; c++) {
            ds[d].row_paths[c] = core_avro_path_new(ds[d].schema, ds[d].cols[c].name, NULL,
                                                    errstr, errstr_size);
            if (!ds[d].row_paths[c])
                return -1; /* pers_dataset_clear frees the rest */
        }
        ds[d].row = pers_pg_row;
    }
    return 0;
}

/* One field's COPY text, the text pers_column_text gives for its natural
 * JSON: strings, enums, decimals and times as shown, true/false, numbers
 * as JSON prints them, \N for null. */
static void sb_natural(core_strbuf *b, const core_avro_natural *n)
{
    char num[40];
    switch (n->kind) {
    case CORE_AVRO_NAT_BOOL:
        core_strbuf_add(b, n->boolean ? "true" : "false");
        break;
    case CORE_AVRO_NAT_NUMBER:
        if (n->number == (double)(long long)n->number && n->number > -9007199254740992.0 &&
            n->number < 9007199254740992.0)
            snprintf(num, sizeof(num), "%lld", (long long)n->number);
        else
            snprintf(num, sizeof(num), "%.17g", n->number);
        core_strbuf_add(b, num);
        break;
    case CORE_AVRO_NAT_RAW:
    case CORE_AVRO_NAT_STRING:
        pers_copy_text(b, n->text);
        break;
    default: /* absent, null (objects and arrays never: see pers_pg_rows_init) */
        pers_copy_text(b, NULL);
        break;
    }
}

core_err_t pers_pg_row(const pers_dataset *ds, avro_value_t *value, char **row, size_t *len,
                       char *errstr, size_t errstr_size)
{
    core_strbuf b = { 0 };
    char small[512];
    char *buf = small;
    size_t size = sizeof(small);
    core_err_t e = CORE_OK;

    for (size_t c = 0; c < ds->ncols && e == CORE_OK; c++) {
        core_avro_natural n;
        if (c)
            core_strbuf_addn(&b, "\t", 1);
        e = core_avro_path_get(ds->row_paths[c], value, &n, buf, size, errstr, errstr_size);
        if (e == CORE_ERR_TOOBIG) { /* a long text: a buffer of its size */
            char *big = malloc(n.need);
            if (!big) {
                e = CORE_ERR_NOMEM;
                break;
            }
            if (buf != small)
                free(buf);
            buf = big;
            size = n.need;
            e = core_avro_path_get(ds->row_paths[c], value, &n, buf, size, errstr, errstr_size);
        }
        if (e == CORE_OK)
            sb_natural(&b, &n);
    }
    if (buf != small)
        free(buf);
    if (e == CORE_OK && b.failed)
        e = CORE_ERR_NOMEM;
    if (e != CORE_OK) {
        free(b.p);
        if (e == CORE_ERR_NOMEM)
            core_errstr(errstr, errstr_size, "out of memory");
        return e;
    }
    *row = b.p;
    *len = b.len;
    return CORE_OK;
}

