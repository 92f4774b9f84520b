/* sinkcheck.c — the sinks' own state against the pipeline's (sinkcheck.h):
 * what the three checks share (sinkcheck_int.h): findings, the expected
 * records by key, one record's verdict, readers of stored text. The checks
 * themselves: sinkcheck_pg.c (buckets checksummed inside PostgreSQL),
 * sinkcheck_redis.c and sinkcheck_mongo.c (read back and hashed here).
 * Self-contained: no main, nothing of svc-recon's other files. */
#include "sinkcheck_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sinkcheck_verdict_name(sinkcheck_verdict_t v)
{
    switch (v) {
    case SINKCHECK_MISSING: return "missing";
    case SINKCHECK_ALTERED: return "altered";
    case SINKCHECK_STALE: return "stale";
    case SINKCHECK_UNEXPECTED: return "unexpected";
    }
    return "?";
}

void sinkcheck_result_clear(sinkcheck_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->findings[i].key);
        free(r->findings[i].id);
    }
    free(r->findings);
    memset(r, 0, sizeof(*r));
}

core_err_t sinkcheck_add_finding(sinkcheck_result *r, sinkcheck_verdict_t v, const char *sink,
                                 const char *key, const char *id, int64_t stored_version,
                                 const char *fmt, ...)
{
    sinkcheck_finding *f;
    va_list ap;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        sinkcheck_finding *nf = realloc(r->findings, cap * sizeof(*nf));

        if (!nf)
            return CORE_ERR_NOMEM;
        r->findings = nf;
        r->cap = cap;
    }
    f = &r->findings[r->n];
    memset(f, 0, sizeof(*f));
    f->verdict = v;
    f->sink = sink;
    f->stored_version = stored_version;
    f->key = strdup(key);
    f->id = id ? strdup(id) : NULL;
    if (!f->key || (id && !f->id)) {
        free(f->key);
        free(f->id);
        return CORE_ERR_NOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    r->n++;
    return CORE_OK;
}

int sinkcheck_finding_cmp(const void *a, const void *b)
{
    const sinkcheck_finding *x = a, *y = b;
    int c = strcmp(x->sink, y->sink);

    return c ? c : strcmp(x->key, y->key);
}

/* ---- the expected records, sorted by key for lookups -------------------- */

static int exp_cmp(const void *a, const void *b)
{
    const sinkcheck_expect *x = *(const sinkcheck_expect *const *)a;
    const sinkcheck_expect *y = *(const sinkcheck_expect *const *)b;

    return strcmp(x->key, y->key);
}

core_err_t sinkcheck_exp_build(exp_index *ix, const sinkcheck_params *p, char *errstr,
                               size_t errstr_size)
{
    ix->n = p->nexpect;
    ix->by_key = malloc((p->nexpect ? p->nexpect : 1) * sizeof(*ix->by_key));
    if (!ix->by_key) {
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
        return CORE_ERR_NOMEM;
    }
    for (size_t i = 0; i < p->nexpect; i++) {
        if (!p->expect[i].key || !p->expect[i].id) {
            core_errstr(errstr, errstr_size, "sinkcheck: expected record %zu has no %s", i,
                        p->expect[i].key ? "id" : "key");
            free(ix->by_key);
            return CORE_ERR_INVALID;
        }
        ix->by_key[i] = &p->expect[i];
    }
    qsort(ix->by_key, ix->n, sizeof(*ix->by_key), exp_cmp);
    for (size_t i = 1; i < ix->n; i++)
        if (strcmp(ix->by_key[i - 1]->key, ix->by_key[i]->key) == 0) {
            core_errstr(errstr, errstr_size,
                        "sinkcheck: key given twice in the expected records (one newest "
                        "version per key)");
            free(ix->by_key);
            return CORE_ERR_INVALID;
        }
    return CORE_OK;
}

const sinkcheck_expect *sinkcheck_exp_find(const exp_index *ix, const char *key, size_t *pos)
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->by_key[mid]->key, key);

        if (c == 0) {
            if (pos)
                *pos = mid;
            return ix->by_key[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- one record's state against the pipeline's ---------------------------- */

/* The verdict for one expected key, or -1 when it agrees. */
int sinkcheck_judge(const sinkcheck_expect *e, const stored *s, char *detail, size_t size)
{
    if (e->deleted) {
        if (!s->present)
            return -1;
        if (s->version < e->version) {
            snprintf(detail, size, "deleted at version %" PRId64 ", still stored at %" PRId64,
                     e->version, s->version);
            return SINKCHECK_STALE;
        }
        snprintf(detail, size, "deleted at version %" PRId64 ", stored at version %" PRId64
                 " the pipeline never accepted", e->version, s->version);
        return SINKCHECK_UNEXPECTED;
    }
    if (!s->present) {
        snprintf(detail, size, "version %" PRId64 " written by the pipeline is not there",
                 e->version);
        return SINKCHECK_MISSING;
    }
    if (s->version < e->version) {
        snprintf(detail, size, "stored version %" PRId64 ", the pipeline's newest is %" PRId64,
                 s->version, e->version);
        return SINKCHECK_STALE;
    }
    if (s->version > e->version) {
        snprintf(detail, size, "stored version %" PRId64 " is newer than any the pipeline "
                 "accepted (%" PRId64 ")", s->version, e->version);
        return SINKCHECK_UNEXPECTED;
    }
    if (!s->have_digest) {
        snprintf(detail, size, "stored values no longer form a record of the schema");
        return SINKCHECK_ALTERED;
    }
    if (!core_digest_equal(&s->content, &e->content)) {
        snprintf(detail, size, "stored values differ from version %" PRId64
                 " (content digest)", e->version);
        return SINKCHECK_ALTERED;
    }
    if (s->id && strcmp(s->id, e->id) != 0) {
        snprintf(detail, size, "stored id differs from the id of version %" PRId64, e->version);
        return SINKCHECK_ALTERED;
    }
    return -1;
}

/* ---- readers shared by the sinks ---------------------------------------- */

int64_t sinkcheck_parse_i64(const char *s)
{
    return (int64_t)strtoll(s, NULL, 10);
}


/* Whether a field's natural JSON is a string (hash format: such values are
 * stored as they are, others as JSON text). */
bool sinkcheck_natural_is_string(const cJSON *t)
{
    if (cJSON_IsString(t))
        return !strcmp(t->valuestring, "string") || !strcmp(t->valuestring, "bytes");
    if (cJSON_IsObject(t)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(t, "logicalType");

        if (cJSON_IsString(lt) && (!strcmp(lt->valuestring, "decimal") ||
                                   !strncmp(lt->valuestring, "timestamp-", 10) ||
                                   !strcmp(lt->valuestring, "date") ||
                                   !strcmp(lt->valuestring, "uuid")))
            return true;
        if (cJSON_IsString(ty) && (!strcmp(ty->valuestring, "enum") ||
                                   !strcmp(ty->valuestring, "fixed")))
            return true;
        return cJSON_IsString(ty) && sinkcheck_natural_is_string(ty);
    }
    if (cJSON_IsArray(t)) {
        const cJSON *b, *one = NULL;
        int n = 0;

        cJSON_ArrayForEach(b, t)
            if (!(cJSON_IsString(b) && !strcmp(b->valuestring, "null"))) {
                one = b;
                n++;
            }
        return n == 1 && sinkcheck_natural_is_string(one);
    }
    return false;
}


/* JSON text with every integer of 16 digits or more quoted: natural JSON
 * writes longs beyond 2^53 as exact numbers, which cJSON would read as
 * doubles; core_avro_from_json() takes a long as a string too. */
cJSON *sinkcheck_parse_exact(const char *s, size_t len)
{
    core_strbuf b = { 0 };
    bool in_str = false;
    cJSON *j;

    for (size_t i = 0; i < len;) {
        char ch = s[i];

        if (in_str) {
            size_t n = ch == '\\' && i + 1 < len ? 2 : 1;

            core_strbuf_addn(&b, s + i, n);
            if (ch == '"')
                in_str = false;
            i += n;
        } else if (ch == '"') {
            in_str = true;
            core_strbuf_addn(&b, s + i, 1);
            i++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j0 = i + (ch == '-'), e = j0;
            bool plain;

            while (e < len && s[e] >= '0' && s[e] <= '9')
                e++;
            plain = e < len ? !strchr(".eE", s[e]) : true;
            if (plain && e - j0 >= 16) {
                core_strbuf_add(&b, "\"");
                core_strbuf_addn(&b, s + i, e - i);
                core_strbuf_add(&b, "\"");
            } else {
                while (e < len && strchr("0123456789.eE+-", s[e]))
                    e++;
                core_strbuf_addn(&b, s + i, e - i);
            }
            i = e;
        } else {
            core_strbuf_addn(&b, s + i, 1);
            i++;
        }
    }
    if (b.failed || !b.p) {
        core_strbuf_free(&b);
        return NULL;
    }
    j = cJSON_ParseWithLength(b.p, b.len);
    core_strbuf_free(&b);
    return j;
}

