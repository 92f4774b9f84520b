/* reader.c — CSV (RFC 4180) and JSON Lines records from plain or gzip
 * files, with physical line numbers and resumable offsets (see reader.h). */
#include "reader.h"

#include "tributary/core_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IN_SIZE (256 * 1024)

enum csv_state { S_START, S_UNQ, S_QUOTED, S_QQ };

struct ingest_reader {
    gzFile gz;
    char *path;
    ingest_format fmt;
    char delim;
    size_t max_record;
    uint64_t file_size;

    unsigned char *in;
    size_t in_pos, in_len;
    bool eof;

    uint64_t pos;   /* uncompressed bytes consumed */
    uint64_t line;  /* physical line of the next byte */
    bool prev_cr;   /* last byte consumed was a CR (a following LF is no new line) */
    bool bom_done;

    /* The record being built: fields NUL-separated in rec. */
    char *rec;
    size_t rec_len, rec_cap;
    size_t *starts;
    size_t nfields, fields_cap;
    char **fields;
    size_t *lens;
    size_t raw_len;
    bool overflow;
    const char *error;
    size_t error_col;
    char errbuf[160];
};

bool ingest_utf8_valid(const char *str, size_t len, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            goto fail;
        }
        if (i + n >= len)
            goto fail;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto fail;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += n + 1;
    }
    return true;
fail:
    if (bad)
        *bad = i;
    return false;
}

ingest_reader *ingest_reader_open(const char *path, ingest_format fmt, char delimiter,
                                  size_t max_record, char *errstr, size_t errstr_size)
{
    ingest_reader *r;
    struct stat st;

    if (stat(path, &st) != 0) {
        core_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        core_errstr(errstr, errstr_size, "%s: not a regular file", path);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->fmt = fmt;
    r->delim = delimiter ? delimiter : ',';
    r->max_record = max_record ? max_record : 4u << 20;
    r->file_size = (uint64_t)st.st_size;
    r->line = 1;
    r->path = strdup(path);
    r->in = malloc(IN_SIZE);
    r->rec_cap = 4096;
    r->rec = malloc(r->rec_cap);
    r->fields_cap = 32;
    r->starts = malloc(r->fields_cap * sizeof(*r->starts));
    r->fields = malloc(r->fields_cap * sizeof(*r->fields));
    r->lens = malloc(r->fields_cap * sizeof(*r->lens));
    if (!r->path || !r->in || !r->rec || !r->starts || !r->fields || !r->lens) {
        core_errstr(errstr, errstr_size, "out of memory");
        ingest_reader_free(r);
        return NULL;
    }
    r->gz = gzopen(path, "rb");
    if (!r->gz) {
        core_errstr(errstr, errstr_size, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        ingest_reader_free(r);
        return NULL;
    }
    gzbuffer(r->gz, 128 * 1024);
    return r;
}

void ingest_reader_free(ingest_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose(r->gz);
    free(r->path);
    free(r->in);
    free(r->rec);
    free(r->starts);
    free(r->fields);
    free(r->lens);
    free(r);
}

uint64_t ingest_reader_pos(const ingest_reader *r)
{
    return r->pos;
}

uint64_t ingest_reader_file_size(const ingest_reader *r)
{
    return r->file_size;
}

uint64_t ingest_reader_raw_pos(const ingest_reader *r)
{
    z_off_t o = gzoffset(r->gz);
    return o < 0 ? 0 : (uint64_t)o;
}

/* Refill the input buffer. @returns 1 data, 0 end, -1 error. */
static int fill(ingest_reader *r, char *errstr, size_t errstr_size)
{
    int n;

    if (r->in_pos < r->in_len)
        return 1;
    if (r->eof)
        return 0;
    n = gzread(r->gz, r->in, IN_SIZE);
    if (n < 0) {
        int zerr;
        const char *msg = gzerror(r->gz, &zerr);
        core_errstr(errstr, errstr_size, "%s: read error: %s", r->path,
                    zerr == Z_ERRNO ? strerror(errno) : msg);
        return -1;
    }
    if (n == 0) {
        int zerr;
        const char *msg = gzerror(r->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            core_errstr(errstr, errstr_size, "%s: read error: %s", r->path, msg);
            return -1;
        }
        r->eof = true;
        return 0;
    }
    r->in_pos = 0;
    r->in_len = (size_t)n;
    if (!r->bom_done) {
        r->bom_done = true;
        if (r->pos == 0 && r->in_len >= 3 && r->in[0] == 0xEF && r->in[1] == 0xBB &&
            r->in[2] == 0xBF) {
            r->in_pos = 3;
            r->pos = 3;
        }
    }
    return r->in_pos < r->in_len ? 1 : fill(r, errstr, errstr_size);
}

static int rec_put(ingest_reader *r, char c)
{
    if (r->overflow)
        return 0;
    if (r->rec_len - r->nfields >= r->max_record) {
        /* Bytes beyond the bound are counted, not kept. */
        r->overflow = true;
        if (!r->error) {
            snprintf(r->errbuf, sizeof(r->errbuf), "record longer than %zu bytes", r->max_record);
            r->error = r->errbuf;
            r->error_col = r->nfields + 1;
        }
        return 0;
    }
    if (r->rec_len + 2 > r->rec_cap) {
        size_t cap = r->rec_cap * 2;
        char *p = realloc(r->rec, cap);
        if (!p)
            return -1;
        r->rec = p;
        r->rec_cap = cap;
    }
    r->rec[r->rec_len++] = c;
    return 0;
}

static int field_end(ingest_reader *r)
{
    if (r->nfields + 1 > r->fields_cap) {
        size_t cap = r->fields_cap * 2;
        size_t *s = realloc(r->starts, cap * sizeof(*s));
        if (!s)
            return -1;
        r->starts = s;
        char **f = realloc(r->fields, cap * sizeof(*f));
        if (!f)
            return -1;
        r->fields = f;
        size_t *l = realloc(r->lens, cap * sizeof(*l));
        if (!l)
            return -1;
        r->lens = l;
        r->fields_cap = cap;
    }
    /* starts[] holds where the NEXT field begins; the NUL ends this one. */
    if (r->rec_len + 1 > r->rec_cap) {
        char *p = realloc(r->rec, r->rec_cap * 2);
        if (!p)
            return -1;
        r->rec = p;
        r->rec_cap *= 2;
    }
    r->rec[r->rec_len++] = '\0';
    r->nfields++;
    r->starts[r->nfields] = r->rec_len;
    return 0;
}

static void set_error(ingest_reader *r, const char *msg, size_t col)
{
    if (!r->error) {
        r->error = msg;
        r->error_col = col;
    }
}

/* Consume one byte: position and physical line accounting. */
static inline unsigned char take(ingest_reader *r)
{
    unsigned char c = r->in[r->in_pos++];

    r->pos++;
    if (c == '\r')
        r->line++;
    else if (c == '\n' && !r->prev_cr)
        r->line++;
    r->prev_cr = c == '\r';
    return c;
}

/* After a CR that ends a record: swallow the LF of a CRLF. */
static int eat_lf(ingest_reader *r, char *errstr, size_t errstr_size)
{
    int f = fill(r, errstr, errstr_size);
    if (f < 0)
        return -1;
    if (f > 0 && r->in[r->in_pos] == '\n')
        take(r);
    return 0;
}

static void finish_row(ingest_reader *r, ingest_row *row)
{
    for (size_t i = 0; i < r->nfields; i++) {
        r->fields[i] = r->rec + r->starts[i];
        r->lens[i] = r->starts[i + 1] - r->starts[i] - 1;
    }
    if (!r->error && !r->overflow) {
        for (size_t i = 0; i < r->nfields; i++) {
            size_t bad;
            if (!ingest_utf8_valid(r->fields[i], r->lens[i], &bad)) {
                snprintf(r->errbuf, sizeof(r->errbuf), "invalid UTF-8 at byte %zu of the field",
                         bad + 1);
                r->error = r->errbuf;
                r->error_col = r->fmt == INGEST_FMT_CSV ? i + 1 : 0;
                if (r->fmt == INGEST_FMT_JSONL)
                    snprintf(r->errbuf, sizeof(r->errbuf),
                             "invalid UTF-8 at byte %zu of the line", bad + 1);
                break;
            }
        }
    }
    row->nfields = r->nfields;
    row->fields = r->fields;
    row->lens = r->lens;
    row->end = r->pos;
    row->nlines = r->line - row->line;
    if (row->nlines == 0)
        row->nlines = 1;
    row->raw_len = r->raw_len;
    row->error = r->error;
    row->error_col = r->error_col;
}

static void reset_rec(ingest_reader *r)
{
    r->rec_len = 0;
    r->nfields = 0;
    r->starts[0] = 0;
    r->overflow = false;
    r->error = NULL;
    r->error_col = 0;
    r->raw_len = 0;
}

static int next_jsonl(ingest_reader *r, ingest_row *row, char *errstr, size_t errstr_size)
{
    for (;;) {
        bool started = false;
        int f;

        reset_rec(r);
        for (;;) {
            unsigned char c;

            f = fill(r, errstr, errstr_size);
            if (f < 0)
                return -1;
            if (f == 0)
                break;
            if (!started) {
                started = true;
                row->offset = r->pos;
                row->line = r->line;
            }
            c = take(r);
            if (c == '\n')
                break;
            if (c == '\r') {
                if (eat_lf(r, errstr, errstr_size))
                    return -1;
                break;
            }
            r->raw_len++;
            if (rec_put(r, (char)c))
                goto nomem;
        }
        if (!started)
            return 0;
        if (r->raw_len == 0)
            continue; /* blank line */
        if (r->overflow)
            r->error_col = 0;
        if (field_end(r))
            goto nomem;
        finish_row(r, row);
        return 1;
    }
nomem:
    core_errstr(errstr, errstr_size, "out of memory");
    return -1;
}

static int next_csv(ingest_reader *r, ingest_row *row, char *errstr, size_t errstr_size)
{
    for (;;) {
        enum csv_state st = S_START;
        bool started = false, ended = false;
        int f;

        reset_rec(r);
        while (!ended) {
            unsigned char c;

            f = fill(r, errstr, errstr_size);
            if (f < 0)
                return -1;
            if (f == 0)
                break;
            if (!started) {
                started = true;
                row->offset = r->pos;
                row->line = r->line;
            }
            c = take(r);
            switch (st) {
            case S_START:
            case S_UNQ:
                if (c == (unsigned char)r->delim) {
                    r->raw_len++;
                    if (field_end(r))
                        goto nomem;
                    st = S_START;
                } else if (c == '\n' || c == '\r') {
                    if (c == '\r' && eat_lf(r, errstr, errstr_size))
                        return -1;
                    ended = true;
                } else if (c == '"' && st == S_START) {
                    r->raw_len++;
                    st = S_QUOTED;
                } else {
                    r->raw_len++;
                    if (c == '"')
                        set_error(r, "quote inside an unquoted field", r->nfields + 1);
                    if (rec_put(r, (char)c))
                        goto nomem;
                    st = S_UNQ;
                }
                break;
            case S_QUOTED:
                r->raw_len++;
                if (c == '"') {
                    st = S_QQ;
                } else if (rec_put(r, (char)c)) {
                    goto nomem;
                }
                break;
            case S_QQ:
                if (c == '"') {
                    r->raw_len++;
                    if (rec_put(r, '"'))
                        goto nomem;
                    st = S_QUOTED;
                } else if (c == (unsigned char)r->delim) {
                    r->raw_len++;
                    if (field_end(r))
                        goto nomem;
                    st = S_START;
                } else if (c == '\n' || c == '\r') {
                    if (c == '\r' && eat_lf(r, errstr, errstr_size))
                        return -1;
                    ended = true;
                } else {
                    r->raw_len++;
                    set_error(r, "text after the closing quote of a field", r->nfields + 1);
                    if (rec_put(r, (char)c))
                        goto nomem;
                    st = S_UNQ;
                }
                break;
            }
        }
        if (!started)
            return 0;
        if (r->raw_len == 0 && r->nfields == 0 && st == S_START)
            continue; /* blank line */
        if (!ended && st == S_QUOTED)
            set_error(r, "unterminated quoted field at the end of the file", r->nfields + 1);
        if (field_end(r))
            goto nomem;
        finish_row(r, row);
        return 1;
    }
nomem:
    core_errstr(errstr, errstr_size, "out of memory");
    return -1;
}

int ingest_reader_next(ingest_reader *r, ingest_row *row, char *errstr, size_t errstr_size)
{
    memset(row, 0, sizeof(*row));
    return r->fmt == INGEST_FMT_CSV ? next_csv(r, row, errstr, errstr_size)
                                    : next_jsonl(r, row, errstr, errstr_size);
}

int ingest_reader_seek(ingest_reader *r, uint64_t offset, uint64_t line,
                       char *errstr, size_t errstr_size)
{
    z_off_t o = gzseek(r->gz, (z_off_t)offset, SEEK_SET);

    if (o < 0 || (uint64_t)o != offset) {
        int zerr;
        core_errstr(errstr, errstr_size, "%s: cannot seek to byte %llu: %s", r->path,
                    (unsigned long long)offset, gzerror(r->gz, &zerr));
        return -1;
    }
    r->in_pos = r->in_len = 0;
    r->eof = false;
    r->pos = offset;
    r->line = line;
    r->prev_cr = false;
    r->bom_done = offset > 0;
    return 0;
}
