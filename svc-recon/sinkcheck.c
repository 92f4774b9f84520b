/* sinkcheck.c — the sinks' own state against the pipeline's (sinkcheck.h):
 * PostgreSQL by buckets checksummed inside the database, Redis by
 * pipelined reads hashed here. Self-contained: no main, nothing of
 * svc-recon's other files. */
#include "sinkcheck.h"

#include "tributary/core_redis.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SINK_PG "postgres"
#define SINK_REDIS "redis"
#define SINK_MONGO "mongodb"

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

static core_err_t add_finding(sinkcheck_result *r, sinkcheck_verdict_t v, const char *sink,
                              const char *key, const char *id, int64_t stored_version,
                              const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static core_err_t add_finding(sinkcheck_result *r, sinkcheck_verdict_t v, const char *sink,
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

static int finding_cmp(const void *a, const void *b)
{
    const sinkcheck_finding *x = a, *y = b;
    int c = strcmp(x->sink, y->sink);

    return c ? c : strcmp(x->key, y->key);
}

/* ---- the expected records, sorted by key for lookups -------------------- */

typedef struct exp_index {
    const sinkcheck_expect **by_key; /* sorted */
    size_t n;
} exp_index;

static int exp_cmp(const void *a, const void *b)
{
    const sinkcheck_expect *x = *(const sinkcheck_expect *const *)a;
    const sinkcheck_expect *y = *(const sinkcheck_expect *const *)b;

    return strcmp(x->key, y->key);
}

static core_err_t exp_index_build(exp_index *ix, const sinkcheck_params *p, char *errstr,
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

static const sinkcheck_expect *exp_find(const exp_index *ix, const char *key, size_t *pos)
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

/* What a sink holds for a key. */
typedef struct stored {
    bool present;
    int64_t version;
    const char *id;          /* may be NULL when the sink keeps none */
    bool have_digest;
    core_digest content;
} stored;

/* The verdict for one expected key, or -1 when it agrees. */
static int judge(const sinkcheck_expect *e, const stored *s, char *detail, size_t size)
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

/* ---- PostgreSQL ---------------------------------------------------------- */

/*
 * The canonical Avro binary of a row is rebuilt in SQL in two steps, each a
 * subquery kept apart by OFFSET 0 so the planner does not merge them: the
 * inner one reads each column once into the scalar its Avro encoding needs
 * (zig-zag value of a long, ms of a timestamp, unscaled decimal, enum index,
 * UTF-8 bytes of a string); the outer one turns those scalars into bytes
 * with small SQL functions in pg_temp (inlined by the planner: they take
 * plain columns) and hashes their concatenation with sha256().
 */
static const char PG_FUNCS[] =
    /* shortest unsigned varint of z, z taken as 64 unsigned bits */
    "CREATE OR REPLACE FUNCTION pg_temp.tb_uv(z bigint) RETURNS bytea LANGUAGE sql "
    "IMMUTABLE PARALLEL SAFE AS $f$ SELECT CASE "
    " WHEN z >= 0 AND z < 128 THEN substring(int2send(z::int2) from 2) "
    " WHEN z >= 0 AND z < 16384 THEN "
    "  substring(int4send(((((z & 127) | 128) << 8) | (z >> 7))::int4) from 3) "
    " ELSE "
    "  substring(int8send(((((z >> 0) & 127) | (CASE WHEN (z >> 7) <> 0 THEN 128 ELSE 0 END)) "
    "  << 56) | ((((z >> 7) & 127) | (CASE WHEN (z >> 14) <> 0 THEN 128 ELSE 0 END)) << 48) | "
    "  ((((z >> 14) & 127) | (CASE WHEN (z >> 21) <> 0 THEN 128 ELSE 0 END)) << 40) | ((((z "
    "  >> 21) & 127) | (CASE WHEN (z >> 28) <> 0 THEN 128 ELSE 0 END)) << 32) | ((((z >> 28) "
    "  & 127) | (CASE WHEN (z >> 35) <> 0 THEN 128 ELSE 0 END)) << 24) | ((((z >> 35) & 127) "
    "  | (CASE WHEN (z >> 42) <> 0 THEN 128 ELSE 0 END)) << 16) | ((((z >> 42) & 127) | (CASE "
    "  WHEN (z >> 49) <> 0 THEN 128 ELSE 0 END)) << 8) | ((((z >> 49) & 127) | (CASE WHEN (z "
    "  >> 56) <> 0 THEN 128 ELSE 0 END)) << 0)) || substring(int4send((((((z >> 56) & 127) | "
    "  (CASE WHEN (z >> 63) <> 0 THEN 128 ELSE 0 END)) << 8) | ((z >> 63) & 1))::int4) from "
    "  3) from 1 for (CASE WHEN z < 0 THEN 10 WHEN z < 2097152 THEN 3 WHEN z < 268435456 THEN "
    "  4 WHEN z < 34359738368 THEN 5 WHEN z < 4398046511104 THEN 6 WHEN z < 562949953421312 "
    "  THEN 7 WHEN z < 72057594037927936 THEN 8 ELSE 9 END)) "
    " END $f$;"
    /* an Avro string or bytes: length, then the bytes */
    "CREATE OR REPLACE FUNCTION pg_temp.tb_bytes(b bytea) RETURNS bytea LANGUAGE sql "
    "IMMUTABLE PARALLEL SAFE AS $f$ SELECT pg_temp.tb_uv(octet_length(b)::bigint * 2) || b $f$;"
    /* a decimal's unscaled value u: shortest two's complement, big-endian */
    "CREATE OR REPLACE FUNCTION pg_temp.tb_dec(u bigint) RETURNS bytea LANGUAGE sql "
    "IMMUTABLE PARALLEL SAFE AS $f$ SELECT CASE "
    " WHEN u BETWEEN -128 AND 127 THEN '\\x02'::bytea || substring(int8send(u) from 8) "
    " WHEN u BETWEEN -32768 AND 32767 THEN '\\x04'::bytea || substring(int8send(u) from 7) "
    " WHEN u BETWEEN -8388608 AND 8388607 THEN '\\x06'::bytea || substring(int8send(u) from 6) "
    " WHEN u BETWEEN -2147483648 AND 2147483647 THEN '\\x08'::bytea || substring(int8send(u) from 5) "
    " WHEN u BETWEEN -549755813888 AND 549755813887 THEN '\\x0a'::bytea || substring(int8send(u) from 4) "
    " WHEN u BETWEEN -140737488355328 AND 140737488355327 THEN '\\x0c'::bytea || substring(int8send(u) from 3) "
    " WHEN u BETWEEN -36028797018963968 AND 36028797018963967 THEN '\\x0e'::bytea || substring(int8send(u) from 2) "
    " ELSE '\\x10'::bytea || int8send(u) END $f$;";

/* How one column is rebuilt: the inner scalar (with %s for the column) and
 * the outer encoding of it (with %s for the scalar). */
typedef struct pg_col {
    char *name;
    char *inner;      /* SQL, the column quoted in it */
    char *outer;      /* SQL over the inner alias */
} pg_col;

typedef struct pg_plan {
    pg_col *cols;
    size_t n;
    char *key_col;
} pg_plan;

static void pg_plan_free(pg_plan *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        free(pl->cols[i].name);
        free(pl->cols[i].inner);
        free(pl->cols[i].outer);
    }
    free(pl->cols);
    free(pl->key_col);
    memset(pl, 0, sizeof(*pl));
}

/* A SQL identifier in double quotes. */
static void sb_ident(core_strbuf *b, const char *s)
{
    core_strbuf_add(b, "\"");
    for (; *s; s++) {
        core_strbuf_addn(b, s, 1);
        if (*s == '"')
            core_strbuf_add(b, "\"");
    }
    core_strbuf_add(b, "\"");
}

/* A SQL string literal. */
static void sb_literal(core_strbuf *b, const char *s)
{
    core_strbuf_add(b, "'");
    for (; *s; s++) {
        core_strbuf_addn(b, s, 1);
        if (*s == '\'')
            core_strbuf_add(b, "'");
    }
    core_strbuf_add(b, "'");
}

/* The inner scalar and outer encoding of one non-union Avro type t for the
 * column c (quoted identifier text) with the alias a. 0, or -1 when SQL
 * cannot rebuild it (*why set). */
static int pg_encode_type(const cJSON *t, const char *c, const char *a, core_strbuf *in,
                          core_strbuf *out, const char **why)
{
    const char *ts = NULL, *lt = NULL;
    const cJSON *o = NULL;

    if (cJSON_IsString(t)) {
        ts = t->valuestring;
    } else if (cJSON_IsObject(t)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "logicalType");

        o = t;
        ts = cJSON_IsString(ty) ? ty->valuestring : NULL;
        lt = cJSON_IsString(l) ? l->valuestring : NULL;
        if (!ts) {
            *why = "a nested type";
            return -1;
        }
    } else {
        *why = "a union of several types";
        return -1;
    }
    if (lt && !strcmp(lt, "decimal") && !strcmp(ts, "bytes")) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "precision");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scale");
        int prec = cJSON_IsNumber(pr) ? pr->valueint : 38, scale = cJSON_IsNumber(sc) ? sc->valueint : 0;

        if (prec > 18 || scale < 0 || scale > 18) {
            *why = "a decimal of more than 18 digits";
            return -1;
        }
        core_strbuf_addf(in, "(%s * 1e%d)::bigint AS %s", c, scale, a);
        core_strbuf_addf(out, "pg_temp.tb_dec(%s)", a);
        return 0;
    }
    if (lt && (!strcmp(lt, "timestamp-millis") || !strcmp(lt, "timestamp-micros")) &&
        !strcmp(ts, "long")) {
        core_strbuf_addf(in, "(SELECT (x << 1) # (x >> 63) FROM (SELECT (extract(epoch FROM %s) "
                         "* %s)::bigint AS x) q) AS %s", c,
                         !strcmp(lt, "timestamp-millis") ? "1000" : "1000000", a);
        core_strbuf_addf(out, "pg_temp.tb_uv(%s)", a);
        return 0;
    }
    if (lt && !strcmp(lt, "date") && !strcmp(ts, "int")) {
        core_strbuf_addf(in, "(SELECT (x << 1) # (x >> 63) FROM (SELECT (%s - date '1970-01-01')"
                         "::bigint AS x) q) AS %s", c, a);
        core_strbuf_addf(out, "pg_temp.tb_uv(%s)", a);
        return 0;
    }
    if (!strcmp(ts, "string")) {
        core_strbuf_addf(in, "convert_to(%s, 'UTF8') AS %s", c, a);
        core_strbuf_addf(out, "pg_temp.tb_bytes(%s)", a);
        return 0;
    }
    if (!strcmp(ts, "long") || !strcmp(ts, "int")) {
        core_strbuf_addf(in, "((%s::bigint << 1) # (%s::bigint >> 63)) AS %s", c, c, a);
        core_strbuf_addf(out, "pg_temp.tb_uv(%s)", a);
        return 0;
    }
    if (!strcmp(ts, "boolean")) {
        core_strbuf_addf(in, "%s AS %s", c, a);
        core_strbuf_addf(out, "(CASE WHEN %s THEN '\\x01'::bytea ELSE '\\x00'::bytea END)", a);
        return 0;
    }
    if (!strcmp(ts, "enum")) {
        const cJSON *syms = cJSON_GetObjectItemCaseSensitive(o, "symbols"), *s;
        int i = 0;

        core_strbuf_addf(in, "(array_position(ARRAY[");
        cJSON_ArrayForEach(s, syms)
        {
            if (!cJSON_IsString(s)) {
                *why = "an enum without symbols";
                return -1;
            }
            if (i++)
                core_strbuf_add(in, ",");
            sb_literal(in, s->valuestring);
        }
        core_strbuf_addf(in, "]::text[], %s::text) - 1)::bigint * 2 AS %s", c, a);
        core_strbuf_addf(out, "pg_temp.tb_uv(%s)", a);
        return 0;
    }
    *why = !strcmp(ts, "record") || !strcmp(ts, "array") || !strcmp(ts, "map")
               ? "stored as jsonb"
           : !strcmp(ts, "bytes") || !strcmp(ts, "fixed") ? "bytes stored as escaped text"
           : !strcmp(ts, "float") || !strcmp(ts, "double") ? "a floating-point number"
                                                           : "a type defined by name elsewhere";
    return -1;
}

static int pg_plan_build(pg_plan *pl, const core_avro_schema_t *schema, char *errstr,
                         size_t errstr_size)
{
    const cJSON *fields =
        cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(schema), "fields"), *f;
    size_t nf = (size_t)cJSON_GetArraySize(fields), i = 0;
    const char *key = core_avro_schema_key_field(schema);

    memset(pl, 0, sizeof(*pl));
    if (!key) {
        core_errstr(errstr, errstr_size, "sinkcheck: %s is not a dataset schema",
                    core_avro_schema_name(schema));
        return CORE_ERR_INVALID;
    }
    pl->cols = calloc(nf ? nf : 1, sizeof(*pl->cols));
    if (!pl->cols)
        goto nomem;
    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
        core_strbuf in = { 0 }, out = { 0 }, qc = { 0 };
        const char *why = NULL;
        char alias[32];
        int rc;

        if (!cJSON_IsString(fn) || !strcmp(fn->valuestring, "meta"))
            continue;
        snprintf(alias, sizeof(alias), "c%zu", i);
        core_strbuf_add(&qc, "t.");
        sb_ident(&qc, fn->valuestring);
        if (cJSON_IsArray(ft)) {
            /* ["null", T] or [T, "null"]: branch index, then T */
            const cJSON *b, *nonnull = NULL;
            int idx = 0, nidx = -1, vidx = -1, n = 0;

            cJSON_ArrayForEach(b, ft)
            {
                if (cJSON_IsString(b) && !strcmp(b->valuestring, "null"))
                    nidx = idx;
                else {
                    nonnull = b;
                    vidx = idx;
                    n++;
                }
                idx++;
            }
            if (nidx < 0 || n != 1) {
                why = "a union of several types";
                rc = -1;
            } else {
                core_strbuf body = { 0 };

                rc = pg_encode_type(nonnull, qc.p, alias, &in, &body, &why);
                if (rc == 0)
                    core_strbuf_addf(&out, "(CASE WHEN %s IS NULL THEN '\\x%02x'::bytea ELSE "
                                     "'\\x%02x'::bytea || %s END)", alias, nidx * 2, vidx * 2,
                                     body.p);
                core_strbuf_free(&body);
            }
        } else {
            rc = pg_encode_type(ft, qc.p, alias, &in, &out, &why);
        }
        core_strbuf_free(&qc);
        if (rc != 0) {
            core_strbuf_free(&in);
            core_strbuf_free(&out);
            core_errstr(errstr, errstr_size,
                        "sinkcheck: dataset %s: field %s is %s: its content digest cannot be "
                        "rebuilt in SQL (not supported)", core_avro_schema_dataset(schema),
                        fn->valuestring, why);
            pg_plan_free(pl);
            return CORE_ERR_INVALID;
        }
        if (in.failed || out.failed || !(pl->cols[i].name = strdup(fn->valuestring))) {
            core_strbuf_free(&in);
            core_strbuf_free(&out);
            goto nomem;
        }
        pl->cols[i].inner = in.p;
        pl->cols[i].outer = out.p;
        pl->n = ++i;
    }
    if (!(pl->key_col = strdup(key)))
        goto nomem;
    return CORE_OK;
nomem:
    pg_plan_free(pl);
    core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
    return CORE_ERR_NOMEM;
}

/* Bucket of a key: the first two bytes of SHA-256(key), big-endian, modulo
 * nb; the SQL below computes the same. */
static uint32_t key_bucket(const char *key, uint32_t nb)
{
    core_digest d;

    core_digest_sha256(key, strlen(key), &d);
    return ((uint32_t)d.b[0] << 8 | d.b[1]) % nb;
}

/* A row's token: the first 8 bytes of SHA-256(content digest ‖ version as 8
 * bytes big-endian ‖ id), as a signed 64-bit integer. */
static int64_t row_token(const core_digest *cd, int64_t version, const char *id)
{
    size_t idl = strlen(id);
    uint8_t stackbuf[256], *buf = stackbuf;
    uint64_t u = 0, v = (uint64_t)version;
    core_digest h;

    if (CORE_DIGEST_LEN + 8 + idl > sizeof(stackbuf) &&
        !(buf = malloc(CORE_DIGEST_LEN + 8 + idl)))
        return 0; /* the bucket then differs and is fetched row by row */
    memcpy(buf, cd->b, CORE_DIGEST_LEN);
    for (int i = 0; i < 8; i++)
        buf[CORE_DIGEST_LEN + i] = (uint8_t)(v >> (56 - 8 * i));
    memcpy(buf + CORE_DIGEST_LEN + 8, id, idl);
    core_digest_sha256(buf, CORE_DIGEST_LEN + 8 + idl, &h);
    if (buf != stackbuf)
        free(buf);
    for (int i = 0; i < 8; i++)
        u = u << 8 | h.b[i];
    return (int64_t)u;
}

/* The scoped rows with their content digest (hex) and bucket, as a query
 * over the parameters $1 (expected keys, text[]), $2 (batches, text[]) and,
 * when with_filter, $3 (buckets, int[]). */
static char *pg_rows_sql(const pg_plan *pl, const char *pg_schema, const char *table,
                         uint32_t nb, bool with_filter)
{
    core_strbuf b = { 0 }, bucket = { 0 };

    core_strbuf_add(&bucket, "(('x' || substr(encode(sha256(convert_to(t.");
    sb_ident(&bucket, pl->key_col);
    core_strbuf_addf(&bucket, ", 'UTF8')), 'hex'), 1, 4))::bit(16)::int %% %u)", nb);
    core_strbuf_add(&b, "SELECT k, v, id, bk, sha256(");
    for (size_t i = 0; i < pl->n; i++)
        core_strbuf_addf(&b, "%s%s", i ? " || " : "", pl->cols[i].outer);
    if (pl->n == 0)
        core_strbuf_add(&b, "''::bytea");
    core_strbuf_add(&b, ") AS cd FROM (SELECT t.");
    sb_ident(&b, pl->key_col);
    core_strbuf_addf(&b, " AS k, t.tb_version AS v, t.tb_id AS id, %s AS bk", bucket.p);
    for (size_t i = 0; i < pl->n; i++)
        core_strbuf_addf(&b, ", %s", pl->cols[i].inner);
    /* the scope: rows of the expected keys, and rows of the batches whose
     * key is not expected, in one scan of the table: a hash left join on
     * the expected keys (unique: checked above), kept when the key matched
     * or the batch is one of $2. (`IN (...) OR ...` would be a subplan
     * scanned once per row; a UNION ALL of a semi-join and an anti-join
     * scanned the table twice and expanded $1 twice, which EXPLAIN ANALYZE
     * showed to be most of the time.) */
    core_strbuf_add(&b, " FROM (SELECT t.* FROM ");
    sb_ident(&b, pg_schema);
    core_strbuf_add(&b, ".");
    sb_ident(&b, table);
    core_strbuf_add(&b, " t LEFT JOIN unnest($1::text[]) e(k) ON e.k = t.");
    sb_ident(&b, pl->key_col);
    core_strbuf_add(&b, " WHERE e.k IS NOT NULL OR t.tb_batch = ANY($2::text[])) t");
    if (with_filter)
        core_strbuf_addf(&b, " WHERE %s = ANY($3::int[])", bucket.p);
    core_strbuf_add(&b, " OFFSET 0) s");
    core_strbuf_free(&bucket);
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

/* A text[] literal: {"a","b"} with " and \ escaped. */
static char *pg_array(const char *const *v, size_t n, const sinkcheck_expect *const *ev)
{
    core_strbuf b = { 0 };

    core_strbuf_add(&b, "{");
    for (size_t i = 0; i < n; i++) {
        const char *s = ev ? ev[i]->key : v[i];

        core_strbuf_add(&b, i ? ",\"" : "\"");
        for (const char *c = s; *c; c++) {
            if (*c == '"' || *c == '\\')
                core_strbuf_add(&b, "\\");
            core_strbuf_addn(&b, c, 1);
        }
        core_strbuf_add(&b, "\"");
    }
    core_strbuf_add(&b, "}");
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

/* Error class of a failed query. */
static core_err_t pg_fail(PGconn *c, PGresult *res, const char *what, char *errstr,
                          size_t errstr_size)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    core_err_t err = CORE_ERR_INVALID;

    if (PQstatus(c) != CONNECTION_OK || (state && (!strncmp(state, "08", 2) ||
                                                  !strcmp(state, "57014") ||
                                                  !strncmp(state, "53", 2) ||
                                                  !strcmp(state, "57P01"))))
        err = CORE_ERR_TRANSIENT;
    core_errstr(errstr, errstr_size, "postgres %s:%s: %s: %s%s%s", PQhost(c) ? PQhost(c) : "?",
                PQport(c) ? PQport(c) : "?", what,
                msg ? msg : PQerrorMessage(c), state ? " (SQLSTATE " : "", state ? state : "");
    if (state) {
        size_t l = strlen(errstr);

        if (l + 2 < errstr_size) {
            errstr[l] = ')';
            errstr[l + 1] = '\0';
        }
    }
    /* libpq's messages end in a newline */
    for (size_t l = strlen(errstr); l && errstr[l - 1] == '\n'; l--)
        errstr[l - 1] = '\0';
    return err;
}

static bool pg_ok(PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static core_err_t pg_exec(PGconn *c, const char *sql, const char *what, char *errstr,
                          size_t errstr_size)
{
    PGresult *res = PQexec(c, sql);
    core_err_t err = pg_ok(res) ? CORE_OK : pg_fail(c, res, what, errstr, errstr_size);

    PQclear(res);
    return err;
}

static int64_t parse_i64(const char *s)
{
    return (int64_t)strtoll(s, NULL, 10);
}

/* The per-bucket expected aggregates. */
typedef struct bucket_agg {
    int64_t count;
    int64_t x;
} bucket_agg;

/* Fetch the rows of the given buckets and judge them against the expected
 * records of those buckets. */
static core_err_t pg_drill(PGconn *c, const char *sql, const char *keys_arr,
                           const char *batch_arr, const uint32_t *bks, size_t nbks, uint32_t nb,
                           const exp_index *ix, sinkcheck_result *out, char *errstr,
                           size_t errstr_size)
{
    core_strbuf arr = { 0 };
    const char *params[3];
    PGresult *res;
    core_err_t err = CORE_OK;
    bool *seen = NULL;
    uint8_t *inb = NULL;
    char detail[192];

    core_strbuf_add(&arr, "{");
    for (size_t i = 0; i < nbks; i++)
        core_strbuf_addf(&arr, "%s%u", i ? "," : "", bks[i]);
    core_strbuf_add(&arr, "}");
    if (arr.failed) {
        core_strbuf_free(&arr);
        return CORE_ERR_NOMEM;
    }
    params[0] = keys_arr;
    params[1] = batch_arr;
    params[2] = arr.p;
    res = PQexecParams(c, sql, 3, NULL, params, NULL, NULL, 0);
    core_strbuf_free(&arr);
    if (!pg_ok(res)) {
        err = pg_fail(c, res, "reading the differing buckets", errstr, errstr_size);
        PQclear(res);
        return err;
    }
    seen = calloc(ix->n ? ix->n : 1, sizeof(*seen));
    inb = calloc(nb, 1);
    if (!seen || !inb) {
        err = CORE_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < nbks; i++)
        inb[bks[i]] = 1;
    out->rows_fetched += (uint64_t)PQntuples(res);
    for (int r = 0; r < PQntuples(res) && err == CORE_OK; r++) {
        const char *key = PQgetvalue(res, r, 0);
        stored s = { .present = true, .version = parse_i64(PQgetvalue(res, r, 1)),
                     .id = PQgetvalue(res, r, 2) };
        size_t pos;
        const sinkcheck_expect *e = exp_find(ix, key, &pos);
        const char *cdv = PQgetvalue(res, r, 4);
        int v;

        /* bytea in hex output: \x then 64 digits */
        s.have_digest = !PQgetisnull(res, r, 4) && strlen(cdv) == 2 + CORE_DIGEST_HEX_LEN &&
                        core_digest_from_hex(cdv + 2, &s.content) == 0;
        if (!e) {
            err = add_finding(out, SINKCHECK_UNEXPECTED, SINK_PG, key, s.id, s.version,
                              "a row of the batch the pipeline never wrote (version %" PRId64 ")",
                              s.version);
            continue;
        }
        seen[pos] = true;
        if ((v = judge(e, &s, detail, sizeof(detail))) >= 0)
            err = add_finding(out, (sinkcheck_verdict_t)v, SINK_PG, e->key,
                              v == SINKCHECK_UNEXPECTED && e->deleted ? s.id : e->id, s.version,
                              "%s", detail);
    }
    /* expected rows of these buckets that the table does not hold */
    for (size_t i = 0; i < ix->n && err == CORE_OK; i++) {
        const sinkcheck_expect *e = ix->by_key[i];
        stored none = { 0 };
        int v;

        if (seen[i] || !inb[key_bucket(e->key, nb)])
            continue;
        if ((v = judge(e, &none, detail, sizeof(detail))) >= 0)
            err = add_finding(out, (sinkcheck_verdict_t)v, SINK_PG, e->key, e->id, SINKCHECK_NONE,
                              "%s", detail);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
done:
    free(seen);
    free(inb);
    PQclear(res);
    return err;
}

core_err_t sinkcheck_pg(const sinkcheck_pg_conf *conf, const sinkcheck_params *p,
                        sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    static const char def_conninfo[] = "host=127.0.0.1 port=5432 dbname=tributary user=tributary";
    const char *schema_name = conf && conf->schema ? conf->schema : "public";
    size_t per = conf && conf->bucket_rows ? conf->bucket_rows : 256;
    const core_avro_schema_t *schema = core_avro_catalog_by_dataset(p->cat, p->dataset);
    const char *kw[4] = { "dbname", "password", "connect_timeout", NULL };
    const char *vals[4];
    exp_index ix = { 0 };
    pg_plan pl;
    PGconn *c = NULL;
    PGresult *res = NULL;
    char *rows_sql = NULL, *drill_sql = NULL, *agg_sql = NULL, *keys_arr = NULL, *batch_arr = NULL;
    bucket_agg *want = NULL;
    uint32_t *diff = NULL, nb;
    size_t ndiff = 0, first = out->n;
    char sql[256];
    core_err_t err;

    if (!schema) {
        core_errstr(errstr, errstr_size, "sinkcheck: dataset %s is not in the schema catalogue",
                    p->dataset ? p->dataset : "(null)");
        return CORE_ERR_INVALID;
    }
    if ((err = pg_plan_build(&pl, schema, errstr, errstr_size)) != CORE_OK)
        return err;
    if ((err = exp_index_build(&ix, p, errstr, errstr_size)) != CORE_OK) {
        pg_plan_free(&pl);
        return err;
    }
    /* about `per` expected rows a bucket, at most 65,536 buckets */
    nb = (uint32_t)(p->nexpect / per + 1);
    if (nb > 65536)
        nb = 65536;
    vals[0] = conf && conf->conninfo ? conf->conninfo : def_conninfo;
    vals[1] = conf && conf->password ? conf->password : NULL;
    vals[2] = "10";
    if (!vals[1]) {
        kw[1] = "connect_timeout";
        vals[1] = "10";
        kw[2] = NULL;
    }
    c = PQconnectdbParams(kw, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        const char *m = c ? PQerrorMessage(c) : "out of memory";

        core_errstr(errstr, errstr_size, "postgres %s:%s: cannot connect: %s",
                    c && PQhost(c) ? PQhost(c) : "?", c && PQport(c) ? PQport(c) : "?", m);
        for (size_t l = strlen(errstr); l && errstr[l - 1] == '\n'; l--)
            errstr[l - 1] = '\0';
        err = c && strstr(m, "authentication") ? CORE_ERR_INVALID : CORE_ERR_TRANSIENT;
        goto done;
    }
    /* work_mem: the hash of the expected keys (about 80 MB for 1M) stays in
     * memory instead of spilling in batches to disk */
    snprintf(sql, sizeof(sql), "SET statement_timeout = %lld; SET work_mem = '128MB'",
             (long long)(conf && conf->statement_timeout_ms ? conf->statement_timeout_ms : 60000));
    if ((err = pg_exec(c, sql, "setting the statement timeout", errstr, errstr_size)) ||
        (err = pg_exec(c, PG_FUNCS, "creating the digest functions (pg_temp)", errstr,
                       errstr_size)) ||
        (err = pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                       "opening the snapshot", errstr, errstr_size)))
        goto done;
    rows_sql = pg_rows_sql(&pl, schema_name, p->dataset, nb, false);
    drill_sql = pg_rows_sql(&pl, schema_name, p->dataset, nb, true);
    keys_arr = pg_array(NULL, ix.n, ix.by_key);
    batch_arr = pg_array(p->batches, p->nbatches, NULL);
    want = calloc(nb, sizeof(*want));
    diff = malloc(nb * sizeof(*diff));
    agg_sql = rows_sql ? core_asprintf(
        "SELECT bk, count(*), bit_xor(('x' || encode(substring(sha256(cd || int8send(v) || "
        "convert_to(id, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint) FROM (%s) r GROUP BY bk",
        rows_sql) : NULL;
    if (!rows_sql || !drill_sql || !keys_arr || !batch_arr || !want || !diff || !agg_sql) {
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
        err = CORE_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < ix.n; i++) {
        const sinkcheck_expect *e = ix.by_key[i];
        bucket_agg *a = &want[key_bucket(e->key, nb)];

        if (e->deleted)
            continue;
        a->count++;
        a->x ^= row_token(&e->content, e->version, e->id);
    }
    {
        const char *params[2] = { keys_arr, batch_arr };

        res = PQexecParams(c, agg_sql, 2, NULL, params, NULL, NULL, 0);
    }
    if (!pg_ok(res)) {
        char m[512];

        err = pg_fail(c, res, "checksumming the buckets", m, sizeof(m));
        if (strstr(m, "42P01"))
            core_errstr(errstr, errstr_size, "postgres: table %s.%s does not exist (%s)",
                        schema_name, p->dataset, m);
        else
            core_errstr(errstr, errstr_size, "%s", m);
        goto done;
    }
    {
        bucket_agg *got = calloc(nb, sizeof(*got));

        if (!got) {
            err = CORE_ERR_NOMEM;
            core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
            goto done;
        }
        for (int r = 0; r < PQntuples(res); r++) {
            uint32_t bk = (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);

            if (bk < nb) {
                got[bk].count = parse_i64(PQgetvalue(res, r, 1));
                got[bk].x = parse_i64(PQgetvalue(res, r, 2));
            }
        }
        for (uint32_t b = 0; b < nb; b++)
            if (got[b].count != want[b].count || got[b].x != want[b].x)
                diff[ndiff++] = b;
        free(got);
    }
    PQclear(res);
    res = NULL;
    out->buckets += nb;
    out->buckets_differ += ndiff;
    out->expected += ix.n;
    if (ndiff)
        err = pg_drill(c, drill_sql, keys_arr, batch_arr, diff, ndiff, nb, &ix, out, errstr,
                       errstr_size);
    if (err == CORE_OK)
        err = pg_exec(c, "COMMIT", "closing the snapshot", errstr, errstr_size);
    if (err == CORE_OK && out->n > first)
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), finding_cmp);
done:
    PQclear(res);
    PQfinish(c);
    free(rows_sql);
    free(drill_sql);
    free(agg_sql);
    free(keys_arr);
    free(batch_arr);
    free(want);
    free(diff);
    free(ix.by_key);
    pg_plan_free(&pl);
    return err;
}

/* ---- Redis --------------------------------------------------------------- */

/* svc-cache-feeder's version strings: 20 digits of the int64 with its sign
 * bit flipped. */
static bool parse_flipped(const char *s, size_t len, int64_t *v)
{
    uint64_t u = 0;

    if (len != 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        u = u * 10 + (uint64_t)(s[i] - '0');
    }
    *v = (int64_t)(u ^ (UINT64_C(1) << 63));
    return true;
}

/* Whether a field's natural JSON is a string (hash format: such values are
 * stored as they are, others as JSON text). */
static bool natural_is_string(const cJSON *t)
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
        return cJSON_IsString(ty) && natural_is_string(ty);
    }
    if (cJSON_IsArray(t)) {
        const cJSON *b, *one = NULL;
        int n = 0;

        cJSON_ArrayForEach(b, t)
            if (!(cJSON_IsString(b) && !strcmp(b->valuestring, "null"))) {
                one = b;
                n++;
            }
        return n == 1 && natural_is_string(one);
    }
    return false;
}

/* JSON text with every integer of 16 digits or more quoted: natural JSON
 * writes longs beyond 2^53 as exact numbers, which cJSON would read as
 * doubles; core_avro_from_json() takes a long as a string too. */
static cJSON *parse_exact(const char *s, size_t len)
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

/* A hash's fields back into the natural JSON object. */
static cJSON *hash_to_json(const core_avro_schema_t *schema, const redisReply *rep)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(schema), "fields");
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; o && i + 1 < rep->elements; i += 2) {
        const char *name = rep->element[i]->str, *val = rep->element[i + 1]->str;
        const cJSON *f, *type = NULL;
        cJSON *v = NULL;

        cJSON_ArrayForEach(f, fields)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");

            if (cJSON_IsString(fn) && !strcmp(fn->valuestring, name))
                type = cJSON_GetObjectItemCaseSensitive(f, "type");
        }
        if (!type || !natural_is_string(type))
            v = parse_exact(val, strlen(val));
        if (!v)
            v = cJSON_CreateString(val);
        if (!v || !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

/* The stored record from its natural JSON: version, id, content digest. */
static void stored_from_json(const core_avro_schema_t *schema, const cJSON *doc, stored *s,
                             char *idbuf, size_t idsize)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(meta, "id");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(meta, "version");
    avro_value_t v;
    char err[256];

    if (cJSON_IsString(id)) {
        snprintf(idbuf, idsize, "%s", id->valuestring);
        s->id = idbuf;
    }
    if (cJSON_IsRaw(ver) || cJSON_IsString(ver))
        s->version = parse_i64(ver->valuestring);
    else if (cJSON_IsNumber(ver))
        s->version = (int64_t)ver->valuedouble;
    if (core_avro_from_json(schema, doc, &v, err, sizeof(err)) == CORE_OK) {
        s->have_digest = core_avro_content_digest_value(schema, &v, &s->content, err,
                                                        sizeof(err)) == CORE_OK;
        avro_value_decref(&v);
    }
}

/* One chunk of expected keys: HMGET of their versions, then their records. */
static core_err_t redis_chunk(core_redis_t *r, const sinkcheck_redis_conf *conf,
                              const core_avro_catalog_t *cat, const core_avro_schema_t *schema,
                              const char *prefix, const char *dataset,
                              const sinkcheck_expect *const *ev, size_t n,
                              sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    size_t argc = n + 2, i;
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *argl = calloc(argc, sizeof(*argl));
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    char *meta_key = core_asprintf("%s#meta:%s", prefix, dataset);
    redisReply **reps = NULL;
    size_t nreps = 0;
    core_err_t err = CORE_OK;
    char detail[192], idbuf[256];

    if (!argv || !argl || !keys || !meta_key)
        goto nomem;
    for (i = 0; i < n; i++)
        if (!(keys[i] = core_asprintf("%s:%s:%s", prefix, dataset, ev[i]->key)))
            goto nomem;
    argv[0] = "HMGET";
    argv[1] = meta_key;
    for (i = 0; i < n; i++)
        argv[i + 2] = ev[i]->key;
    for (i = 0; i < argc; i++)
        argl[i] = strlen(argv[i]);
    if ((err = core_redis_append_argv(r, (int)argc, argv, argl)) != CORE_OK)
        goto fail;
    if (conf->format == SINKCHECK_REDIS_HASH) {
        for (i = 0; i < n; i++) {
            const char *a[2] = { "HGETALL", keys[i] };
            size_t al[2] = { 7, strlen(keys[i]) };

            if ((err = core_redis_append_argv(r, 2, a, al)) != CORE_OK)
                goto fail;
        }
    } else {
        argv[0] = "MGET";
        for (i = 0; i < n; i++) {
            argv[i + 1] = keys[i];
            argl[i + 1] = strlen(keys[i]);
        }
        argl[0] = 4;
        if ((err = core_redis_append_argv(r, (int)n + 1, argv, argl)) != CORE_OK)
            goto fail;
    }
    if ((err = core_redis_pipeline_exec(r, &reps, &nreps, errstr, errstr_size)) != CORE_OK)
        goto out;
    for (i = 0; i < nreps; i++)
        if (reps[i]->type == REDIS_REPLY_ERROR) {
            core_errstr(errstr, errstr_size, "redis: %.*s", (int)reps[i]->len, reps[i]->str);
            err = CORE_ERR_INVALID;
            goto out;
        }
    if (nreps < 2 || reps[0]->type != REDIS_REPLY_ARRAY || reps[0]->elements != n ||
        (conf->format != SINKCHECK_REDIS_HASH &&
         (reps[1]->type != REDIS_REPLY_ARRAY || reps[1]->elements != n)) ||
        (conf->format == SINKCHECK_REDIS_HASH && nreps != n + 1)) {
        core_errstr(errstr, errstr_size, "redis: unexpected replies to HMGET/MGET");
        err = CORE_ERR_INVALID;
        goto out;
    }
    out->rows_fetched += n;
    for (i = 0; i < n && err == CORE_OK; i++) {
        const sinkcheck_expect *e = ev[i];
        const redisReply *mv = reps[0]->element[i];
        const redisReply *dv = conf->format == SINKCHECK_REDIS_HASH ? reps[i + 1]
                                                                    : reps[1]->element[i];
        stored s = { 0 };
        int64_t meta_version = SINKCHECK_NONE;
        bool meta_deleted = false;
        int v;

        if (mv->type == REDIS_REPLY_STRING && mv->len >= 22 && mv->str[20] == '|' &&
            parse_flipped(mv->str, 20, &meta_version))
            meta_deleted = mv->str[21] == '1';
        if (dv->type == REDIS_REPLY_STRING && conf->format != SINKCHECK_REDIS_HASH) {
            s.present = true;
            s.version = SINKCHECK_NONE;
            if (conf->format == SINKCHECK_REDIS_AVRO) {
                const core_avro_schema_t *ws = NULL;
                avro_value_t val;
                char e2[256];

                if (core_avro_decode(cat, dv->str, dv->len, &ws, &val, e2, sizeof(e2)) == CORE_OK) {
                    core_avro_meta m;

                    if (core_avro_get_meta(ws, &val, &m, e2, sizeof(e2)) == CORE_OK) {
                        s.version = m.version;
                        snprintf(idbuf, sizeof(idbuf), "%s", m.id);
                        s.id = idbuf;
                    }
                    s.have_digest = core_avro_content_digest_wire(cat, dv->str, dv->len,
                                                                  &s.content, e2,
                                                                  sizeof(e2)) == CORE_OK;
                    avro_value_decref(&val);
                }
            } else {
                cJSON *doc = parse_exact(dv->str, dv->len);

                if (doc)
                    stored_from_json(schema, doc, &s, idbuf, sizeof(idbuf));
                cJSON_Delete(doc);
            }
        } else if (dv->type == REDIS_REPLY_ARRAY && dv->elements > 0) {
            cJSON *doc = hash_to_json(schema, dv);

            s.present = true;
            s.version = SINKCHECK_NONE;
            if (doc)
                stored_from_json(schema, doc, &s, idbuf, sizeof(idbuf));
            cJSON_Delete(doc);
        }
        if (s.present && s.version == SINKCHECK_NONE)
            s.version = meta_version; /* no meta in the record: the guard's version */
        if (!s.present && !e->deleted && meta_version != SINKCHECK_NONE &&
            meta_version < e->version) {
            err = add_finding(out, SINKCHECK_STALE, SINK_REDIS, e->key, e->id, meta_version,
                              "key left at version %" PRId64 "%s, the pipeline's newest is %"
                              PRId64, meta_version, meta_deleted ? " (deleted)" : "",
                              e->version);
            continue;
        }
        if ((v = judge(e, &s, detail, sizeof(detail))) >= 0)
            err = add_finding(out, (sinkcheck_verdict_t)v, SINK_REDIS, e->key,
                              v == SINKCHECK_UNEXPECTED && e->deleted ? s.id : e->id,
                              s.present ? s.version : meta_version, "%s", detail);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
    goto out;
nomem:
    err = CORE_ERR_NOMEM;
fail:
    core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
out:
    core_redis_replies_free(reps, nreps);
    for (i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    free(argl);
    free(meta_key);
    return err;
}

core_err_t sinkcheck_redis(const sinkcheck_redis_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    sinkcheck_redis_conf def = { 0 };
    const core_avro_schema_t *schema = core_avro_catalog_by_dataset(p->cat, p->dataset);
    core_redis_opts o = { 0 };
    core_redis_t *r;
    exp_index ix;
    size_t chunk, first = out->n;
    core_err_t err;

    if (!conf)
        conf = &def;
    if (!schema) {
        core_errstr(errstr, errstr_size, "sinkcheck: dataset %s is not in the schema catalogue",
                    p->dataset ? p->dataset : "(null)");
        return CORE_ERR_INVALID;
    }
    if ((err = exp_index_build(&ix, p, errstr, errstr_size)) != CORE_OK)
        return err;
    o.host = conf->host;
    o.port = conf->port;
    o.user = conf->user;
    o.password = conf->password;
    o.db = conf->db;
    if (!(r = core_redis_new(&o, errstr, errstr_size))) {
        free(ix.by_key);
        return CORE_ERR_INVALID;
    }
    if ((err = core_redis_connect(r, errstr, errstr_size)) != CORE_OK)
        goto done;
    chunk = conf->pipeline ? conf->pipeline : 500;
    for (size_t i = 0; i < ix.n && err == CORE_OK; i += chunk)
        err = redis_chunk(r, conf, p->cat, schema, conf->prefix ? conf->prefix : "tb", p->dataset,
                          ix.by_key + i, ix.n - i < chunk ? ix.n - i : chunk, out, errstr,
                          errstr_size);
    out->expected += ix.n;
    if (err == CORE_OK && out->n > first)
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), finding_cmp);
done:
    core_redis_free(r);
    free(ix.by_key);
    return err;
}

/* ---- MongoDB ------------------------------------------------------------- */

/* A stored document back into the record's natural JSON (meta: a
 * placeholder, the content digest leaves it out). NULL when a field cannot
 * be read back. */
static cJSON *mongo_to_json(const core_avro_schema_t *schema, const bson_t *doc)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(schema), "fields");
    const char *key = core_avro_schema_key_field(schema);
    const cJSON *f;
    cJSON *o = cJSON_Parse("{\"meta\":{\"id\":\"\",\"op\":\"ADD\",\"kind\":\"BULK\","
                           "\"source\":\"\",\"batch_id\":\"\",\"seq\":0,\"event_time\":0,"
                           "\"version\":0,\"old_key\":null}}");

    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const char *name = cJSON_IsString(fn) ? fn->valuestring : NULL;
        bson_iter_t it;
        cJSON *v = NULL;
        char buf[BSON_DECIMAL128_STRING > CORE_AVRO_TIME_SIZE ? BSON_DECIMAL128_STRING
                                                              : CORE_AVRO_TIME_SIZE];

        if (!o || !name || !strcmp(name, "meta"))
            continue;
        if (!bson_iter_init_find(&it, doc, !strcmp(name, key) ? "_id" : name)) {
            v = cJSON_CreateNull(); /* a null field is stored as null or left out */
        } else {
            switch (bson_iter_type(&it)) {
            case BSON_TYPE_UTF8:
                v = cJSON_CreateString(bson_iter_utf8(&it, NULL));
                break;
            case BSON_TYPE_NULL:
                v = cJSON_CreateNull();
                break;
            case BSON_TYPE_BOOL:
                v = cJSON_CreateBool(bson_iter_bool(&it));
                break;
            case BSON_TYPE_INT32:
            case BSON_TYPE_INT64:
                snprintf(buf, sizeof(buf), "%" PRId64, bson_iter_as_int64(&it));
                v = cJSON_CreateString(buf); /* a long as a string is exact */
                break;
            case BSON_TYPE_DOUBLE:
                v = cJSON_CreateNumber(bson_iter_double(&it));
                break;
            case BSON_TYPE_DATE_TIME:
                if (core_avro_time_format(bson_iter_date_time(&it), buf, sizeof(buf)) > 0)
                    v = cJSON_CreateString(buf);
                break;
            case BSON_TYPE_DECIMAL128: {
                bson_decimal128_t d;

                if (bson_iter_decimal128(&it, &d)) {
                    bson_decimal128_to_string(&d, buf);
                    v = cJSON_CreateString(buf);
                }
                break;
            }
            case BSON_TYPE_DOCUMENT:
            case BSON_TYPE_ARRAY: {
                const uint8_t *data;
                uint32_t len;
                bson_t sub;
                char *js;

                if (BSON_ITER_HOLDS_DOCUMENT(&it))
                    bson_iter_document(&it, &len, &data);
                else
                    bson_iter_array(&it, &len, &data);
                if (bson_init_static(&sub, data, len) &&
                    (js = BSON_ITER_HOLDS_DOCUMENT(&it) ? bson_as_relaxed_extended_json(&sub, NULL)
                                                        : bson_array_as_json(&sub, NULL))) {
                    v = parse_exact(js, strlen(js));
                    bson_free(js);
                }
                break;
            }
            default:
                break;
            }
        }
        if (!v || !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

static bool in_list(const char *s, const char *const *v, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, v[i]))
            return true;
    return false;
}

core_err_t sinkcheck_mongo(const sinkcheck_mongo_conf *conf, const sinkcheck_params *p,
                           sinkcheck_result *out, char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *schema = core_avro_catalog_by_dataset(p->cat, p->dataset);
    const char *uristr = conf && conf->uri ? conf->uri : "mongodb://127.0.0.1:27017";
    int timeout = conf && conf->timeout_ms ? conf->timeout_ms : 10000;
    mongoc_uri_t *uri = NULL;
    mongoc_client_t *client = NULL;
    mongoc_collection_t *coll = NULL;
    mongoc_cursor_t *cur = NULL;
    const bson_t *doc;
    bson_t filter = BSON_INITIALIZER;
    bson_error_t berr;
    exp_index ix = { 0 };
    bool *seen = NULL;
    size_t first = out->n;
    char detail[192], idbuf[256];
    core_err_t err;

    if (!schema) {
        core_errstr(errstr, errstr_size, "sinkcheck: dataset %s is not in the schema catalogue",
                    p->dataset ? p->dataset : "(null)");
        return CORE_ERR_INVALID;
    }
    if ((err = exp_index_build(&ix, p, errstr, errstr_size)) != CORE_OK)
        return err;
    mongoc_init();
    if (!(uri = mongoc_uri_new_with_error(uristr, &berr))) {
        core_errstr(errstr, errstr_size, "mongodb: the URI is not valid: %s", berr.message);
        err = CORE_ERR_INVALID;
        goto done;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout);
    if (!(client = mongoc_client_new_from_uri(uri))) {
        core_errstr(errstr, errstr_size, "mongodb: cannot create a client");
        err = CORE_ERR_INVALID;
        goto done;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, "svc-recon-sinkcheck");
    coll = mongoc_client_get_collection(client, conf && conf->database ? conf->database
                                                                       : "tributary",
                                        p->dataset);
    seen = calloc(ix.n ? ix.n : 1, sizeof(*seen));
    if (!seen) {
        err = CORE_ERR_NOMEM;
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
        goto done;
    }
    cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    while (err == CORE_OK && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        const char *key = bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)
                              ? bson_iter_utf8(&it, NULL) : NULL;
        const char *batch = bson_iter_init_find(&it, doc, "tb_batch") &&
                                    BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
        stored s = { .present = true, .version = SINKCHECK_NONE };
        const sinkcheck_expect *e;
        size_t pos;
        cJSON *j;
        int v;

        if (!key)
            continue;
        out->rows_fetched++;
        if (bson_iter_init_find(&it, doc, "tb_version") && BSON_ITER_HOLDS_NUMBER(&it))
            s.version = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "tb_id") && BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(idbuf, sizeof(idbuf), "%s", bson_iter_utf8(&it, NULL));
            s.id = idbuf;
        }
        if (!(e = exp_find(&ix, key, &pos))) {
            if (in_list(batch, p->batches, p->nbatches))
                err = add_finding(out, SINKCHECK_UNEXPECTED, SINK_MONGO, key, s.id, s.version,
                                  "a document of the batch the pipeline never wrote (version %"
                                  PRId64 ")", s.version);
            continue;
        }
        seen[pos] = true;
        if ((j = mongo_to_json(schema, doc))) {
            avro_value_t val;
            char e2[256];

            if (core_avro_from_json(schema, j, &val, e2, sizeof(e2)) == CORE_OK) {
                s.have_digest = core_avro_content_digest_value(schema, &val, &s.content, e2,
                                                               sizeof(e2)) == CORE_OK;
                avro_value_decref(&val);
            }
            cJSON_Delete(j);
        }
        if ((v = judge(e, &s, detail, sizeof(detail))) >= 0)
            err = add_finding(out, (sinkcheck_verdict_t)v, SINK_MONGO, e->key,
                              v == SINKCHECK_UNEXPECTED && e->deleted ? s.id : e->id, s.version,
                              "%s", detail);
    }
    if (err == CORE_OK && mongoc_cursor_error(cur, &berr)) {
        bool down = berr.domain == MONGOC_ERROR_SERVER_SELECTION ||
                    berr.domain == MONGOC_ERROR_STREAM;

        core_errstr(errstr, errstr_size, "mongodb: reading %s: %s", p->dataset,
                    down ? "no server answered (check mongodb.uri and that the server is up)"
                         : berr.message);
        err = down ? CORE_ERR_TRANSIENT : CORE_ERR_INVALID;
        goto done;
    }
    for (size_t i = 0; i < ix.n && err == CORE_OK; i++) {
        stored none = { 0 };
        int v;

        if (!seen[i] && (v = judge(ix.by_key[i], &none, detail, sizeof(detail))) >= 0)
            err = add_finding(out, (sinkcheck_verdict_t)v, SINK_MONGO, ix.by_key[i]->key,
                              ix.by_key[i]->id, SINKCHECK_NONE, "%s", detail);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "sinkcheck: out of memory");
    out->expected += ix.n;
    if (err == CORE_OK && out->n > first)
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), finding_cmp);
done:
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    bson_destroy(&filter);
    free(seen);
    free(ix.by_key);
    return err;
}
