/* reader.c — CSV (RFC 4180) and JSON Lines records from plain or gzip
 * files, with physical line numbers and resumable offsets (see reader.h). */
#include "reader.h"

#include "tributary/core_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IN_SIZE (256 * 1024)
#define RAW_SIZE (128 * 1024)

enum csv_state { S_START, S_UNQ, S_QUOTED, S_QQ };

struct ingest_reader {
    int fd;
    bool gzip;          /* the file starts with gzip's magic bytes */
    z_stream zs;
    bool zs_init;
    bool member_end;    /* inflate ended a gzip member: another one, or the end */
    unsigned char *raw; /* compressed input; zs.next_in points into it */
    uint64_t raw_read;  /* file bytes read so far */
    bool raw_eof;
    bool garbage;          /* bytes after the last gzip member that start none */
    bool garbage_reported; /* returned as a row (see ingest_reader_next()) */
    uint64_t garbage_at;   /* compressed offset of its first byte */
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

static int rewind_input(ingest_reader *r, char *errstr, size_t errstr_size);

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
        core_errstr(errstr, errstr_size, "%s: %s", path,
                    S_ISDIR(st.st_mode) ? "is a directory, not a file" : "not a regular file");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->fd = -1;
    r->fmt = fmt;
    r->delim = delimiter ? delimiter : ',';
    r->max_record = max_record ? max_record : 4u << 20;
    r->file_size = (uint64_t)st.st_size;
    r->line = 1;
    r->path = strdup(path);
    r->in = malloc(IN_SIZE);
    r->raw = malloc(RAW_SIZE);
    r->rec_cap = 4096;
    r->rec = malloc(r->rec_cap);
    r->fields_cap = 32;
    r->starts = malloc(r->fields_cap * sizeof(*r->starts));
    r->fields = malloc(r->fields_cap * sizeof(*r->fields));
    r->lens = malloc(r->fields_cap * sizeof(*r->lens));
    if (!r->path || !r->in || !r->raw || !r->rec || !r->starts || !r->fields || !r->lens) {
        core_errstr(errstr, errstr_size, "out of memory");
        ingest_reader_free(r);
        return NULL;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        core_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        ingest_reader_free(r);
        return NULL;
    }
    if (inflateInit2(&r->zs, 15 + 16) != Z_OK) {
        core_errstr(errstr, errstr_size, "out of memory");
        ingest_reader_free(r);
        return NULL;
    }
    r->zs_init = true;
    if (rewind_input(r, errstr, errstr_size)) {
        ingest_reader_free(r);
        return NULL;
    }
    return r;
}

void ingest_reader_free(ingest_reader *r)
{
    if (!r)
        return;
    if (r->zs_init)
        inflateEnd(&r->zs);
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r->in);
    free(r->raw);
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
    if (!r->gzip)
        return r->pos;
    return r->raw_read - r->zs.avail_in;
}

/* A read error: where the stream broke (line and uncompressed byte; for
 * gzip also the compressed byte), then why. */
static int read_error(ingest_reader *r, char *errstr, size_t errstr_size, const char *why)
{
    if (r->gzip)
        core_errstr(errstr, errstr_size,
                    "%s: read error at line %llu, byte %llu (compressed byte %llu): %s", r->path,
                    (unsigned long long)r->line, (unsigned long long)r->pos + 1,
                    (unsigned long long)ingest_reader_raw_pos(r) + 1, why);
    else
        core_errstr(errstr, errstr_size, "%s: read error at line %llu, byte %llu: %s", r->path,
                    (unsigned long long)r->line, (unsigned long long)r->pos + 1, why);
    return -1;
}

/* More compressed input after what zs has not consumed yet.
 * @returns bytes added (0 at the end of the file) or -1 on an I/O error. */
static ssize_t raw_more(ingest_reader *r)
{
    ssize_t n;

    if (r->raw_eof)
        return 0;
    if (r->zs.avail_in > 0 && r->zs.next_in != r->raw)
        memmove(r->raw, r->zs.next_in, r->zs.avail_in);
    r->zs.next_in = r->raw;
    do {
        n = read(r->fd, r->raw + r->zs.avail_in, RAW_SIZE - r->zs.avail_in);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0)
        r->raw_eof = true;
    r->zs.avail_in += (uInt)n;
    r->raw_read += (uint64_t)n;
    return n;
}

/* Back to the first byte of the file (gzip detected again by its magic). */
static int rewind_input(ingest_reader *r, char *errstr, size_t errstr_size)
{
    if (lseek(r->fd, 0, SEEK_SET) != 0) {
        core_errstr(errstr, errstr_size, "%s: %s", r->path, strerror(errno));
        return -1;
    }
    r->raw_read = 0;
    r->raw_eof = false;
    r->garbage = r->garbage_reported = false;
    r->zs.next_in = r->raw;
    r->zs.avail_in = 0;
    r->member_end = false;
    inflateReset(&r->zs);
    r->in_pos = r->in_len = 0;
    r->eof = false;
    r->pos = 0;
    r->line = 1;
    r->prev_cr = false;
    r->bom_done = false;
    while (r->zs.avail_in < 2) {
        ssize_t n = raw_more(r);
        if (n < 0) {
            core_errstr(errstr, errstr_size, "%s: %s", r->path, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
    }
    r->gzip = r->zs.avail_in >= 2 && r->raw[0] == 0x1f && r->raw[1] == 0x8b;
    return 0;
}

/* Uncompressed bytes into r->in. @returns bytes (0 at the end), -1 error. */
static ssize_t read_some(ingest_reader *r, char *errstr, size_t errstr_size)
{
    if (!r->gzip) {
        /* plain: what rewind_input() looked at first, then the file */
        if (r->zs.avail_in > 0) {
            size_t n = r->zs.avail_in;
            memcpy(r->in, r->zs.next_in, n);
            r->zs.avail_in = 0;
            return (ssize_t)n;
        }
        for (;;) {
            ssize_t n = read(r->fd, r->in, IN_SIZE);
            if (n >= 0)
                return n;
            if (errno != EINTR)
                return read_error(r, errstr, errstr_size, strerror(errno));
        }
    }
    for (;;) {
        int zrc;

        if (r->member_end) {
            /* After a member: the end of the file, or the next member. */
            if (r->zs.avail_in < 2) {
                ssize_t n = raw_more(r);
                if (n < 0)
                    return read_error(r, errstr, errstr_size, strerror(errno));
                if (n == 0 && r->zs.avail_in == 0)
                    return 0;
                if (n > 0)
                    continue;
            }
            if (r->zs.avail_in < 2 || r->zs.next_in[0] != 0x1f || r->zs.next_in[1] != 0x8b) {
                /* The stream before it is whole (its CRC and length
                 * checked): the end, reported as one more bad line. */
                r->garbage = true;
                r->garbage_at = ingest_reader_raw_pos(r);
                r->zs.avail_in = 0;
                r->raw_eof = true;
                return 0;
            }
            inflateReset(&r->zs);
            r->member_end = false;
        }
        if (r->zs.avail_in == 0) {
            ssize_t n = raw_more(r);
            if (n < 0)
                return read_error(r, errstr, errstr_size, strerror(errno));
            if (n == 0)
                return read_error(r, errstr, errstr_size,
                                  "unexpected end of file: the gzip stream is truncated");
        }
        r->zs.next_out = r->in;
        r->zs.avail_out = IN_SIZE;
        zrc = inflate(&r->zs, Z_NO_FLUSH);
        if (zrc == Z_STREAM_END)
            r->member_end = true;
        else if (zrc == Z_NEED_DICT || zrc == Z_DATA_ERROR || zrc == Z_MEM_ERROR ||
                 (zrc == Z_BUF_ERROR && r->zs.avail_in > 0 && r->zs.avail_out == IN_SIZE))
            return read_error(r, errstr, errstr_size,
                              r->zs.msg ? r->zs.msg : "corrupt gzip data");
        if (r->zs.avail_out < IN_SIZE)
            return (ssize_t)(IN_SIZE - r->zs.avail_out);
    }
}

/* Refill the input buffer. @returns 1 data, 0 end, -1 error. */
static int fill(ingest_reader *r, char *errstr, size_t errstr_size)
{
    ssize_t n;

    if (r->in_pos < r->in_len)
        return 1;
    if (r->eof)
        return 0;
    n = read_some(r, errstr, errstr_size);
    if (n < 0)
        return -1;
    if (n == 0) {
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

static void set_error(ingest_reader *r, const char *msg, size_t col);

/* The bound is on the record's raw bytes (raw_len: delimiters and quotes
 * included, counted before each byte is stored), not on what is kept: a
 * line of delimiters keeps no byte but a field each, and "" keeps one byte
 * of two. Past it, bytes and fields are counted, not kept. @returns true
 * when the record is over the bound. */
static bool over_bound(ingest_reader *r)
{
    if (r->overflow)
        return true;
    if (r->raw_len <= r->max_record)
        return false;
    r->overflow = true;
    if (!r->error) {
        snprintf(r->errbuf, sizeof(r->errbuf), "record longer than %zu bytes", r->max_record);
        r->error = r->errbuf;
        r->error_col = r->nfields + 1;
    }
    return true;
}

static int rec_put(ingest_reader *r, char c)
{
    if (c == '\0')
        set_error(r, r->fmt == INGEST_FMT_CSV ? "NUL byte in the field" : "NUL byte in the line",
                  r->fmt == INGEST_FMT_CSV ? r->nfields + 1 : 0);
    if (over_bound(r))
        return 0;
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
    if (over_bound(r))
        return 0; /* an overlong record keeps no more fields */
    /* Writes starts[nfields + 1] below: that index must exist. */
    if (r->nfields + 2 > r->fields_cap) {
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
        bool csv = r->fmt == INGEST_FMT_CSV;

        for (size_t i = 0; i < r->nfields; i++) {
            size_t bad;
            const char *bom;
            if (!ingest_utf8_valid(r->fields[i], r->lens[i], &bad)) {
                snprintf(r->errbuf, sizeof(r->errbuf), "invalid UTF-8 at byte %zu of the %s",
                         bad + 1, csv ? "field" : "line");
                r->error = r->errbuf;
                r->error_col = csv ? i + 1 : 0;
                break;
            }
            /* U+FEFF is a byte order mark only at the very start of the
             * file (skipped there); anywhere else it is a file pasted into
             * another, and would end up inside a value. */
            bom = memmem(r->fields[i], r->lens[i], "\xEF\xBB\xBF", 3);
            if (bom) {
                snprintf(r->errbuf, sizeof(r->errbuf),
                         "byte order mark (U+FEFF) at byte %zu of the %s: only the start of "
                         "the file may hold one", (size_t)(bom - r->fields[i]) + 1,
                         csv ? "field" : "line");
                r->error = r->errbuf;
                r->error_col = csv ? i + 1 : 0;
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
    int rc;

    memset(row, 0, sizeof(*row));
    rc = r->fmt == INGEST_FMT_CSV ? next_csv(r, row, errstr, errstr_size)
                                  : next_jsonl(r, row, errstr, errstr_size);
    if (rc == 0 && r->garbage && !r->garbage_reported) {
        /* Trailing garbage: a bad line after the last one, one virtual byte
         * long, so a checkpoint after it resumes past it (see seek). */
        r->garbage_reported = true;
        reset_rec(r);
        snprintf(r->errbuf, sizeof(r->errbuf),
                 "trailing garbage after the last gzip member, at compressed byte %llu",
                 (unsigned long long)r->garbage_at + 1);
        row->line = r->line;
        row->nlines = 1;
        row->offset = r->pos;
        row->end = ++r->pos;
        row->fields = r->fields;
        row->lens = r->lens;
        row->error = r->errbuf;
        return 1;
    }
    return rc;
}

int ingest_reader_seek(ingest_reader *r, uint64_t offset, uint64_t line,
                       char *errstr, size_t errstr_size)
{
    if (rewind_input(r, errstr, errstr_size))
        return -1;
    if (!r->gzip && offset > 0) {
        if (lseek(r->fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
            core_errstr(errstr, errstr_size, "%s: cannot seek to byte %llu: %s", r->path,
                        (unsigned long long)offset, strerror(errno));
            return -1;
        }
        r->zs.avail_in = 0; /* what rewind_input() read first is behind us */
        r->pos = offset;
        r->bom_done = true;
    }
    /* gzip: inflate again from the start up to the offset */
    while (r->pos < offset) {
        size_t n;
        int f = fill(r, errstr, errstr_size);

        if (f < 0)
            return -1;
        if (f == 0 && r->garbage && offset == r->pos + 1) {
            r->garbage_reported = true; /* the checkpoint is after it */
            r->pos = offset;
            break;
        }
        if (f == 0) {
            core_errstr(errstr, errstr_size, "%s: cannot seek to byte %llu: the file is shorter",
                        r->path, (unsigned long long)offset);
            return -1;
        }
        n = r->in_len - r->in_pos;
        if (n > offset - r->pos)
            n = (size_t)(offset - r->pos);
        r->in_pos += n;
        r->pos += n;
    }
    r->line = line;
    r->prev_cr = false;
    return 0;
}
