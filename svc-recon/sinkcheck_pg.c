/* sinkcheck_pg.c — PostgreSQL against the pipeline (sinkcheck.h): buckets of
 * keys checksummed inside the database, drilled down only where they differ. */
#include "sinkcheck_int.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        stored s = { .present = true, .version = sinkcheck_parse_i64(PQgetvalue(res, r, 1)),
                     .id = PQgetvalue(res, r, 2) };
        size_t pos;
        const sinkcheck_expect *e = sinkcheck_exp_find(ix, key, &pos);
        const char *cdv = PQgetvalue(res, r, 4);
        int v;

        /* bytea in hex output: \x then 64 digits */
        s.have_digest = !PQgetisnull(res, r, 4) && strlen(cdv) == 2 + CORE_DIGEST_HEX_LEN &&
                        core_digest_from_hex(cdv + 2, &s.content) == 0;
        if (!e) {
            err = sinkcheck_add_finding(out, SINKCHECK_UNEXPECTED, SINK_PG, key, s.id, s.version,
                                        "a row of the batch the pipeline never wrote (version %" PRId64 ")",
                                        s.version);
            continue;
        }
        seen[pos] = true;
        if ((v = sinkcheck_judge(e, &s, detail, sizeof(detail))) >= 0)
            err = sinkcheck_add_finding(out, (sinkcheck_verdict_t)v, SINK_PG, e->key,
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
        if ((v = sinkcheck_judge(e, &none, detail, sizeof(detail))) >= 0)
            err = sinkcheck_add_finding(out, (sinkcheck_verdict_t)v, SINK_PG, e->key, e->id, SINKCHECK_NONE,
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

/* Longer than most (about 150 lines) for a reason: one READ ONLY snapshot
 * from the bucket sums to the drill-down of the buckets that differ; its
 * statements, arrays and result share one cleanup path. */
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
    if ((err = sinkcheck_exp_build(&ix, p, errstr, errstr_size)) != CORE_OK) {
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
                got[bk].count = sinkcheck_parse_i64(PQgetvalue(res, r, 1));
                got[bk].x = sinkcheck_parse_i64(PQgetvalue(res, r, 2));
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
        qsort(out->findings + first, out->n - first, sizeof(*out->findings), sinkcheck_finding_cmp);
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

