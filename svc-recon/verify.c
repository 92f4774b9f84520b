/* verify.c — `report --verify-sinks` (verify.h): which sinks a dataset
 * must reach, what the pipeline accepted last for each key of the batch,
 * and the sinks' findings merged into the report. */
#include "verify.h"
#include "winreport.h"

#include "tributary/core_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const recon_store_names[RECON_STORE_COUNT] = { "postgres", "redis", "mongodb" };

int recon_store_index(const char *s)
{
    for (int i = 0; i < RECON_STORE_COUNT; i++)
        if (strcmp(recon_store_names[i], s) == 0)
            return i;
    return -1;
}

int recon_coverage_check(const char *entry, const core_avro_catalog_t *cat, char *errstr,
                         size_t errstr_size)
{
    const char *colon = strchr(entry, ':');
    char ds[256];

    if (!colon || colon == entry || (size_t)(colon - entry) >= sizeof(ds) ||
        recon_store_index(colon + 1) < 0) {
        core_errstr(errstr, errstr_size,
                    "coverage: '%s' is not DATASET:STORE (STORE postgres, redis or mongodb)",
                    entry);
        return -1;
    }
    memcpy(ds, entry, (size_t)(colon - entry));
    ds[colon - entry] = '\0';
    if (strcmp(ds, "*") != 0 && cat && !core_avro_catalog_by_dataset(cat, ds)) {
        core_errstr(errstr, errstr_size, "coverage: '%s': no dataset %s in the catalogue", entry,
                    ds);
        return -1;
    }
    return 0;
}

static void pg_err(PGconn *c, const char *what, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres %s: %s", what, m);
}

/* The stores expected for a dataset (bits 1 << RECON_STORE_*) and why. */
static core_err_t expected_stores(PGconn *c, const recon_verify_opts *o, const char *dataset,
                                  unsigned *stores, const char **why, char *errstr,
                                  size_t errstr_size)
{
    unsigned stages = o->sinks;

    *stores = 0;
    for (size_t i = 0; i < o->ncoverage; i++) {
        const char *e = o->coverage[i], *colon = strchr(e, ':');
        size_t n = colon ? (size_t)(colon - e) : 0;
        if (!colon || !((n == 1 && e[0] == '*') || (strlen(dataset) == n &&
                                                     memcmp(e, dataset, n) == 0)))
            continue;
        int s = recon_store_index(colon + 1);
        if (s >= 0)
            *stores |= 1u << s;
    }
    if (*stores) {
        *why = "coverage";
        return CORE_OK;
    }
    *why = "sinks";
    if (!stages) {
        core_err_t e = recon_expected_stages(c, o->schema, dataset, 0, &stages, errstr,
                                             errstr_size);
        if (e != CORE_OK)
            return e;
        *why = "observed";
    }
    if (stages & (1u << RS_CACHE))
        *stores |= 1u << RECON_STORE_REDIS;
    if (stages & (1u << RS_PERSISTER))
        *stores |= 1u << o->persister_store;
    return CORE_OK;
}

/* What the pipeline accepted last for each key of the batch's valid records
 * of the dataset, and for each key a record of the batch moved away from
 * (AuditEvent v3's old_key): the newest valid event of the key in any
 * batch, where an UPDATE that moved a record away from the key counts as
 * deleting it at that UPDATE's version (the sinks delete the old key). */
typedef struct expect_set {
    PGresult *res;          /* the strings of e[] point into it */
    sinkcheck_expect *e;
    size_t n;
    size_t no_content;      /* accepted, not deleted, without a content digest */
} expect_set;

static core_err_t load_expect(PGconn *c, const char *schema, const char *batch,
                              const char *dataset, expect_set *x, char *errstr,
                              size_t errstr_size)
{
    char sql[2600];
    const char *params[2] = { batch, dataset };

    memset(x, 0, sizeof(*x));
    /* mv: the moves away from a key of bk, each with the version its
     * record was accepted at (the validator's valid event of its id) */
    snprintf(sql, sizeof(sql),
             "WITH bk AS (SELECT key FROM %s.events WHERE batch_id = $1 AND dataset = $2"
             "  AND stage = 'validator' AND outcome = 'valid' AND key IS NOT NULL"
             "  UNION SELECT old_key FROM %s.events WHERE batch_id = $1 AND dataset = $2"
             "  AND old_key IS NOT NULL),"
             " mo AS (SELECT DISTINCT m.old_key, m.id, m.batch_id FROM %s.events m"
             "  JOIN bk ON bk.key = m.old_key WHERE m.dataset = $2 AND m.old_key IS NOT NULL),"
             " mv AS (SELECT mo.old_key AS key, v.id, v.version, NULL::bytea AS content, v.ts_ms,"
             "  'moved'::text AS outcome FROM mo JOIN %s.events v ON v.batch_id = mo.batch_id"
             "  AND v.dataset = $2 AND v.id = mo.id AND v.stage = 'validator'"
             "  AND v.outcome = 'valid'),"
             " ev AS (SELECT e.key, e.id, e.version, e.content, e.ts_ms, e.outcome"
             "  FROM %s.events e JOIN bk ON bk.key = e.key WHERE e.dataset = $2"
             "  AND ((e.stage = 'validator' AND e.outcome = 'valid')"
             "   OR (e.stage = 'cache-feeder' AND e.outcome = 'deleted'))"
             "  UNION ALL SELECT * FROM mv),"
             " per AS (SELECT key, id, max(version) AS version,"
             "  (array_agg(content) FILTER (WHERE outcome = 'valid' AND content IS NOT NULL))[1]"
             "   AS content, bool_or(outcome IN ('deleted', 'moved')) AS del,"
             "  bool_or(outcome IN ('valid', 'moved')) AS acc,"
             "  max(ts_ms) AS ts FROM ev GROUP BY key, id)"
             " SELECT DISTINCT ON (key) key, id, coalesce(version, 0), encode(content, 'hex'), del"
             " FROM per WHERE acc ORDER BY key, version DESC NULLS LAST, ts DESC, id",
             schema, schema, schema, schema, schema);
    x->res = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(x->res) != PGRES_TUPLES_OK) {
        pg_err(c, "query", errstr, errstr_size);
        PQclear(x->res);
        x->res = NULL;
        return CORE_ERR_TRANSIENT;
    }
    int n = PQntuples(x->res);
    if (n > 0 && !(x->e = calloc((size_t)n, sizeof(*x->e)))) {
        PQclear(x->res);
        x->res = NULL;
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        sinkcheck_expect *e = &x->e[x->n++];
        e->key = PQgetvalue(x->res, i, 0);
        e->id = PQgetvalue(x->res, i, 1);
        e->version = strtoll(PQgetvalue(x->res, i, 2), NULL, 10);
        e->deleted = PQgetvalue(x->res, i, 4)[0] == 't';
        if (!e->deleted &&
            (PQgetisnull(x->res, i, 3) || core_digest_from_hex(PQgetvalue(x->res, i, 3),
                                                               &e->content) != 0))
            x->no_content++;
    }
    return CORE_OK;
}

static void expect_free(expect_set *x)
{
    free(x->e);
    PQclear(x->res);
    memset(x, 0, sizeof(*x));
}

static int push_check(recon_report *rep, const recon_sink_check *k)
{
    recon_sink_check *nv = realloc(rep->checks, (rep->nchecks + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    rep->checks = nv;
    nv[rep->nchecks++] = *k;
    return 0;
}

static const int finding_verdict[] = {
    [SINKCHECK_MISSING] = RV_MISSING,
    [SINKCHECK_ALTERED] = RV_ALTERED,
    [SINKCHECK_STALE] = RV_STALE,
    [SINKCHECK_UNEXPECTED] = RV_UNEXPECTED,
};

/* The findings of one check as discrepancies of the report. */
static int merge_findings(recon_report *rep, recon_dataset_result *d, int stage,
                          const sinkcheck_result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        const sinkcheck_finding *f = &res->findings[i];
        recon_record r = { 0 };
        char detail[320];
        recon_record *nv = realloc(rep->disc, (rep->ndisc + 1) * sizeof(*nv));

        if (!nv)
            return -1;
        rep->disc = nv;
        if (f->stored_version != SINKCHECK_NONE)
            snprintf(detail, sizeof(detail), "%s at sink %s (stored version %" PRId64 "): %s",
                     sinkcheck_verdict_name(f->verdict), f->sink, f->stored_version, f->detail);
        else
            snprintf(detail, sizeof(detail), "%s at sink %s: %s",
                     sinkcheck_verdict_name(f->verdict), f->sink, f->detail);
        r.id = strdup(f->id ? f->id : "");
        r.key = f->key ? strdup(f->key) : NULL;
        r.dataset = strdup(d->dataset);
        r.detail = strdup(detail);
        r.verdict = finding_verdict[f->verdict];
        r.stage = stage;
        r.sink = f->sink;
        if (!r.id || (f->key && !r.key) || !r.dataset || !r.detail) {
            free(r.id);
            free(r.key);
            free(r.dataset);
            free(r.detail);
            return -1;
        }
        rep->disc[rep->ndisc++] = r;
        rep->counts[r.verdict]++;
        d->counts[r.verdict]++;
        rep->clean = false;
    }
    return 0;
}

/* Check one store for one dataset: CORE_OK (findings merged, or the reason
 * it could not be verified in k->error), CORE_ERR_TRANSIENT, CORE_ERR_NOMEM. */
static core_err_t check_store(const recon_verify_opts *o, recon_report *rep,
                              recon_dataset_result *d, int store, const expect_set *x,
                              recon_sink_check *k, char *errstr, size_t errstr_size)
{
    const char *batches[1] = { rep->batch };
    sinkcheck_params p = { o->cat, d->dataset, x->e, x->n, batches, 1 };
    sinkcheck_result res = { 0 };
    char err[512] = "";
    core_err_t e;

    if (x->no_content) {
        snprintf(err, sizeof(err),
                 "%zu accepted records carry no content digest (AuditEvent v1): not verifiable",
                 x->no_content);
        return (k->error = strdup(err)) ? CORE_OK : CORE_ERR_NOMEM;
    }
    e = store == RECON_STORE_POSTGRES ? sinkcheck_pg(&o->pg, &p, &res, err, sizeof(err))
        : store == RECON_STORE_REDIS  ? sinkcheck_redis(&o->redis, &p, &res, err, sizeof(err))
                                      : sinkcheck_mongo(&o->mongo, &p, &res, err, sizeof(err));
    if (e == CORE_ERR_TRANSIENT || e == CORE_ERR_NOMEM) {
        core_errstr(errstr, errstr_size, "verify %s for %s: %s", recon_store_names[store],
                    d->dataset, err);
        sinkcheck_result_clear(&res);
        return e;
    }
    if (e != CORE_OK) {
        sinkcheck_result_clear(&res);
        return (k->error = strdup(err)) ? CORE_OK : CORE_ERR_NOMEM;
    }
    k->buckets = res.buckets;
    k->buckets_differ = res.buckets_differ;
    k->rows_fetched = res.rows_fetched;
    k->findings = res.n;
    e = merge_findings(rep, d, store == RECON_STORE_REDIS ? RS_CACHE : RS_PERSISTER, &res) == 0
            ? CORE_OK : CORE_ERR_NOMEM;
    sinkcheck_result_clear(&res);
    if (e != CORE_OK)
        core_errstr(errstr, errstr_size, "out of memory");
    return e;
}

core_err_t recon_verify_sinks(PGconn *state, const recon_verify_opts *o, recon_report *rep,
                              char *errstr, size_t errstr_size)
{
    double t0 = core_mono_s();
    core_err_t e = CORE_OK;

    rep->verified = true;
    for (size_t i = 0; i < rep->nds && e == CORE_OK; i++) {
        recon_dataset_result *d = &rep->ds[i];
        unsigned stores = 0;
        const char *why = NULL;
        expect_set x;

        if ((e = expected_stores(state, o, d->dataset, &stores, &why, errstr, errstr_size)) !=
            CORE_OK)
            break;
        if (!stores) {
            recon_sink_check k = { .dataset = strdup(d->dataset), .sink = "none", .why = why,
                                   .error = strdup("no sink expected or ever seen for the "
                                                   "dataset: nothing verified") };
            if (!k.dataset || !k.error || push_check(rep, &k) != 0) {
                free(k.dataset);
                free(k.error);
                e = CORE_ERR_NOMEM;
            }
            rep->clean = false;
            continue;
        }
        if ((e = load_expect(state, o->schema, rep->batch, d->dataset, &x, errstr,
                             errstr_size)) != CORE_OK)
            break;
        for (int s = 0; s < RECON_STORE_COUNT && e == CORE_OK; s++) {
            if (!(stores & (1u << s)))
                continue;
            recon_sink_check k = { .dataset = strdup(d->dataset), .sink = recon_store_names[s],
                                   .why = why, .expected = x.n };
            if (!k.dataset)
                e = CORE_ERR_NOMEM;
            else
                e = check_store(o, rep, d, s, &x, &k, errstr, errstr_size);
            if (e == CORE_OK && k.error)
                rep->clean = false;
            if (e != CORE_OK || push_check(rep, &k) != 0) {
                free(k.dataset);
                free(k.error);
                if (e == CORE_OK)
                    e = CORE_ERR_NOMEM;
            }
        }
        expect_free(&x);
    }
    if (e == CORE_ERR_NOMEM && errstr && !*errstr)
        core_errstr(errstr, errstr_size, "out of memory");
    rep->verify_seconds = core_mono_s() - t0;
    return e;
}
