/* fault_model.c — the fault suite's own reading of the input files.
 *
 * The rules here are written from the dataset's contract (proto/payee.avsc,
 * proto/payee.rules.json, docs/svc-ingest.md), not taken from the services'
 * code: a line is a format error when its key is empty, its amount is no
 * decimal of scale 2, its status no symbol, its updated_at no ISO 8601 time
 * or its op no op; a rule break when its routing number fails the ABA
 * checksum or its amount is negative. The generator (deploy/local/gen_payees.py)
 * plants only such faults. An accepted record then changes the key's state
 * when its version is above the key's stored one: ADD/UPDATE write the row,
 * an UPDATE whose old_key differs moves it (the old key is deleted at that
 * version), DELETE removes it; a deleted key keeps its version, so an older
 * event cannot bring it back. */
#include "fault_model.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const field_names[F_N] = { "payee_id", "name", "account_number",
                                              "routing_number", "country", "currency",
                                              "email", "amount_limit", "status",
                                              "updated_at" };

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int grow(fm_model *m)
{
    size_t cap = m->cap ? m->cap * 2 : 4096;
    fm_entry *s = calloc(cap, sizeof(*s));
    if (!s)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = hash(m->slots[i].key) & (cap - 1);
        while (s[j].key)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

fm_entry *fm_find(fm_model *m, const char *key)
{
    if (!m->cap)
        return NULL;
    for (size_t j = hash(key) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1))
        if (!strcmp(m->slots[j].key, key))
            return &m->slots[j];
    return NULL;
}

static fm_entry *get_or_add(fm_model *m, const char *key)
{
    fm_entry *e = fm_find(m, key);
    if (e)
        return e;
    if ((m->used + 1) * 2 > m->cap && grow(m) != 0)
        return NULL;
    size_t j = hash(key) & (m->cap - 1);
    while (m->slots[j].key)
        j = (j + 1) & (m->cap - 1);
    m->slots[j].key = strdup(key);
    if (!m->slots[j].key)
        return NULL;
    m->slots[j].version = INT64_MIN;
    m->used++;
    return &m->slots[j];
}

/* Apply one event; @returns 0 or -1 (out of memory). */
static int apply(fm_model *m, const char *key, int64_t version, bool deleted, char *const *f)
{
    fm_entry *e = get_or_add(m, key);
    if (!e)
        return -1;
    if (version <= e->version)
        return 0; /* stale: a newer event of the key is already applied */
    e->version = version;
    e->deleted = deleted;
    for (int i = 0; i < F_N; i++) {
        free(e->f[i]);
        e->f[i] = NULL;
        if (!deleted && !(e->f[i] = strdup(f[i])))
            return -1;
    }
    return 0;
}

size_t fm_live(const fm_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        n += m->slots[i].key && !m->slots[i].deleted;
    return n;
}

void fm_free(fm_model *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        for (int k = 0; k < F_N; k++)
            free(m->slots[i].f[k]);
    }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

int64_t fm_iso_ms(const char *s)
{
    struct tm tm = { 0 };
    int ms = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(p, "Z") && strcmp(p, "+00:00"))
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static bool is_decimal2(const char *s)
{
    if (*s == '-')
        s++;
    const char *d = s;
    while (*s >= '0' && *s <= '9')
        s++;
    if (s == d)
        return false;
    if (*s == '.') {
        const char *f = ++s;
        while (*s >= '0' && *s <= '9')
            s++;
        if (s == f || s - f > 2)
            return false;
    }
    return *s == '\0';
}

static bool aba_ok(const char *r)
{
    if (strlen(r) != 9)
        return false;
    int d[9];
    for (int i = 0; i < 9; i++) {
        if (r[i] < '0' || r[i] > '9')
            return false;
        d[i] = r[i] - '0';
    }
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0;
}

static bool is_negative(const char *amount)
{
    if (*amount != '-')
        return false;
    for (const char *p = amount + 1; *p; p++)
        if (*p >= '1' && *p <= '9')
            return true;
    return false;
}

/* ---- reading the CSV ---------------------------------------------------- */

enum { C_OP = F_N, C_OLD_KEY, C_VERSION, C_N };

typedef struct reader {
    fm_model *m;
    fm_file_counts *c;
    int col[C_N];          /* column index of each field, -1 absent */
    char *cells[64];
    size_t ncells;
    bool header_done, failed;
    char *err;
    size_t errlen;
} reader;

static void on_cell(void *s, size_t len, void *data)
{
    reader *r = data;
    if (r->ncells >= 64)
        return;
    char *c = malloc(len + 1);
    if (!c) {
        r->failed = true;
        return;
    }
    memcpy(c, s, len);
    c[len] = '\0';
    r->cells[r->ncells++] = c;
}

static const char *cell(const reader *r, int which)
{
    int i = r->col[which];
    return i >= 0 && (size_t)i < r->ncells ? r->cells[i] : "";
}

static void header(reader *r)
{
    static const char *const extra[] = { "op", "old_key", "version" };
    for (int k = 0; k < C_N; k++) {
        const char *want = k < F_N ? field_names[k] : extra[k - F_N];
        r->col[k] = -1;
        for (size_t i = 0; i < r->ncells; i++)
            if (!strcmp(r->cells[i], want))
                r->col[k] = (int)i;
    }
    if (r->col[F_KEY] < 0 || r->col[C_VERSION] < 0) {
        snprintf(r->err, r->errlen, "the header names no payee_id or no version column");
        r->failed = true;
    }
}

static void record(reader *r)
{
    const char *op = r->col[C_OP] >= 0 ? cell(r, C_OP) : "ADD";
    const char *key = cell(r, F_KEY), *amount = cell(r, F_AMOUNT), *status = cell(r, F_STATUS);
    const char *old_key = cell(r, C_OLD_KEY);
    char *f[F_N];

    r->c->records++;
    bool format = !*key || !is_decimal2(amount) || fm_iso_ms(cell(r, F_UPDATED)) < 0 ||
                  (strcmp(status, "ACTIVE") && strcmp(status, "INACTIVE") &&
                   strcmp(status, "BLOCKED")) ||
                  (strcmp(op, "ADD") && strcmp(op, "UPDATE") && strcmp(op, "DELETE"));
    if (format) {
        r->c->format_errors++;
        return;
    }
    r->c->published++;
    if (!aba_ok(cell(r, F_ROUTING)) || is_negative(amount)) {
        r->c->rule_breaks++;
        return;
    }
    r->c->valid++;
    int64_t version = strtoll(cell(r, C_VERSION), NULL, 10);
    for (int i = 0; i < F_N; i++)
        f[i] = (char *)cell(r, i);
    int rc;
    if (!strcmp(op, "DELETE")) {
        rc = apply(r->m, key, version, true, f);
    } else {
        rc = apply(r->m, key, version, false, f);
        if (rc == 0 && !strcmp(op, "UPDATE") && *old_key && strcmp(old_key, key))
            rc = apply(r->m, old_key, version, true, f);
    }
    if (rc != 0) {
        snprintf(r->err, r->errlen, "out of memory");
        r->failed = true;
    }
}

static void on_row(int term, void *data)
{
    reader *r = data;
    (void)term;
    if (!r->failed) {
        if (!r->header_done) {
            header(r);
            r->header_done = true;
        } else {
            record(r);
        }
    }
    for (size_t i = 0; i < r->ncells; i++)
        free(r->cells[i]);
    r->ncells = 0;
}

int fm_load(fm_model *m, const char *path, fm_file_counts *c, char *err, size_t errlen)
{
    struct csv_parser p;
    reader r = { .m = m, .c = c, .err = err, .errlen = errlen };
    char buf[65536];
    size_t n;
    int rc = 0;

    memset(c, 0, sizeof(*c));
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fclose(fp);
        snprintf(err, errlen, "csv_init failed");
        return -1;
    }
    while (!r.failed && (n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        if (csv_parse(&p, buf, n, on_cell, on_row, &r) != n) {
            snprintf(err, errlen, "%s: %s", path, csv_strerror(csv_error(&p)));
            rc = -1;
            break;
        }
    }
    if (rc == 0 && csv_fini(&p, on_cell, on_row, &r) != 0) {
        snprintf(err, errlen, "%s: %s", path, csv_strerror(csv_error(&p)));
        rc = -1;
    }
    for (size_t i = 0; i < r.ncells; i++)
        free(r.cells[i]);
    csv_free(&p);
    fclose(fp);
    return r.failed ? -1 : rc;
}
