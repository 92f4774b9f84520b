/* reconcile.c — aggregates first, ids where they differ (reconcile.h). */
#include "reconcile.h"
#include "method.h"

#include "tributary/core_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const recon_verdict_names[RV_COUNT] = {
    "delivered", "rejected", "retrying", "missing", "altered", "duplicated", "unexpected",
    "stale",
};
const char *const recon_bad_reasons[3] = { "malformed", "unknown_dataset", "future_timestamp" };

/* Outcome indexes (event.c's table). */
enum { O_PUBLISHED = 0, O_FORMAT_ERROR = 1 };
enum { O_VALID = 0, O_INVALID = 1, O_POISON = 2, O_RETRYING = 3, O_EXHAUSTED = 4 };
#define CACHE_REFUSED 3   /* rejected */
#define PERSIST_REFUSED 2 /* dead */

int recon_verdict_index(const char *s)
{
    for (int i = 0; i < RV_COUNT; i++)
        if (strcmp(recon_verdict_names[i], s) == 0)
            return i;
    return -1;
}

bool recon_verdict_is_discrepancy(int v)
{
    return v == RV_MISSING || v == RV_ALTERED || v == RV_DUPLICATED || v == RV_UNEXPECTED ||
           v == RV_STALE;
}

static bool is_sink(int stage)
{
    return stage == RS_CACHE || stage == RS_PERSISTER;
}

static bool refused(int stage, int outcome)
{
    return (stage == RS_CACHE && outcome == CACHE_REFUSED) ||
           (stage == RS_PERSISTER && outcome == PERSIST_REFUSED);
}

/* ---- the report being built ------------------------------------------------ */

static int push_record(recon_record **v, size_t *n, const recon_record *r)
{
    recon_record *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -1;
    *v = nv;
    nv[(*n)++] = *r;
    return 0;
}

static void record_free(recon_record *r)
{
    free(r->id);
    free(r->key);
    free(r->dataset);
    free(r->detail);
    free(r->went);
}

void recon_report_free(recon_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nds; i++)
        free(r->ds[i].dataset);
    free(r->ds);
    for (size_t i = 0; i < r->ndisc; i++)
        record_free(&r->disc[i]);
    free(r->disc);
    for (size_t i = 0; i < r->nrejected; i++)
        record_free(&r->rejected[i]);
    free(r->rejected);
    for (size_t i = 0; i < r->nchecks; i++) {
        free(r->checks[i].dataset);
        free(r->checks[i].error);
    }
    free(r->checks);
    free(r->batch);
    free(r);
}

static void pg_fail(PGconn *c, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres query: %s", m[0] ? m : "no answer");
}

/* ---- aggregates --------------------------------------------------------- */

typedef struct ds_aggs {
    char *dataset;
    int method; /* the weakest method of its rows (method.h) */
    core_digest_agg a[RS_COUNT][RECON_OUTCOMES_MAX];
    bool sink_seen[RS_COUNT]; /* the sink ever reported on the dataset */
} ds_aggs;

static int parse_bytea32(const char *text, uint8_t *out)
{
    core_digest d;
    if (!text || strncmp(text, "\\x", 2) != 0 || core_digest_from_hex(text + 2, &d) != 0)
        return -1;
    memcpy(out, d.b, CORE_DIGEST_LEN);
    return 0;
}

static ds_aggs *ds_find(ds_aggs **v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].dataset, name) == 0)
            return &(*v)[i];
    ds_aggs *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return NULL;
    *v = nv;
    ds_aggs *d = &nv[(*n)++];
    memset(d, 0, sizeof(*d));
    if (!(d->dataset = strdup(name))) {
        (*n)--;
        return NULL;
    }
    for (int s = 0; s < RS_COUNT; s++)
        for (int o = 0; o < RECON_OUTCOMES_MAX; o++)
            core_digest_agg_init(&d->a[s][o]);
    d->method = RM_FULL; /* lowered to the weakest of its rows */
    return d;
}

static int load_aggs(PGconn *c, const char *schema, const char *batch, ds_aggs **dsv, size_t *nds,
                     char *errstr, size_t errstr_size)
{
    char sql[512];
    const char *params[1] = { batch };
    PGresult *r;

    snprintf(sql, sizeof(sql),
             "SELECT dataset, stage, outcome, n, agg, method FROM %s.aggregates WHERE batch_id = $1 "
             "ORDER BY dataset",
             schema);
    r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *st = PQgetvalue(r, i, 1), *out = PQgetvalue(r, i, 2);
        int s = recon_stage_index(st, strlen(st));
        int o = s < 0 ? -1 : recon_outcome_index(s, out, strlen(out));
        ds_aggs *d;
        if (o < 0)
            continue; /* written by a newer svc-recon: not ours to judge */
        if (!(d = ds_find(dsv, nds, PQgetvalue(r, i, 0)))) {
            PQclear(r);
            core_errstr(errstr, errstr_size, "out of memory");
            return -1;
        }
        d->a[s][o].count = strtoull(PQgetvalue(r, i, 3), NULL, 10);
        int m = recon_method_index(PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5));
        if (m >= 0 && m < d->method)
            d->method = m;
        if (parse_bytea32(PQgetvalue(r, i, 4), d->a[s][o].sum) != 0)
            memset(d->a[s][o].sum, 0, CORE_DIGEST_LEN);
    }
    PQclear(r);
    /* the sinks that ever reported on each dataset */
    snprintf(sql, sizeof(sql),
             "SELECT DISTINCT dataset, stage FROM %s.aggregates WHERE stage IN "
             "('cache-feeder', 'persister')",
             schema);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        for (size_t j = 0; j < *nds; j++)
            if (strcmp((*dsv)[j].dataset, PQgetvalue(r, i, 0)) == 0) {
                const char *st = PQgetvalue(r, i, 1);
                int s = recon_stage_index(st, strlen(st));
                if (s >= 0)
                    (*dsv)[j].sink_seen[s] = true;
            }
    PQclear(r);
    return 0;
}

static core_digest_agg stage_sum(const ds_aggs *d, int s)
{
    core_digest_agg t;
    core_digest_agg_init(&t);
    for (int o = 0; o < RECON_OUTCOMES_MAX; o++)
        core_digest_agg_merge(&t, &d->a[s][o]);
    return t;
}

static void check_totals(recon_totals *t)
{
    t->lines_ok = t->lines == t->format_errors + t->published;
    t->published_ok =
        t->published == t->valid + t->invalid + t->poison + t->exhausted + t->retrying;
    t->sinks_ok = true;
    for (int s = 0; s < RS_COUNT; s++)
        if (t->sink_expected[s] && t->valid != t->sink_handled[s] + t->sink_refused[s])
            t->sinks_ok = false;
}

/* The aggregates alone: totals, and whether they prove the dataset clean. */
static bool fast_path(const ds_aggs *d, recon_totals *t)
{
    const core_digest_agg *pub = &d->a[RS_INGEST][O_PUBLISHED];
    const core_digest_agg *valid = &d->a[RS_VALIDATOR][O_VALID];
    core_digest_agg v = stage_sum(d, RS_VALIDATOR);
    bool clean;

    t->format_errors = (int64_t)d->a[RS_INGEST][O_FORMAT_ERROR].count;
    t->published = (int64_t)pub->count;
    t->lines = t->format_errors + t->published;
    t->valid = (int64_t)valid->count;
    t->invalid = (int64_t)d->a[RS_VALIDATOR][O_INVALID].count;
    t->poison = (int64_t)d->a[RS_VALIDATOR][O_POISON].count;
    t->exhausted = (int64_t)d->a[RS_VALIDATOR][O_EXHAUSTED].count;
    t->retrying = (int64_t)d->a[RS_VALIDATOR][O_RETRYING].count;
    clean = t->retrying == 0 && core_digest_agg_equal(&v, pub);
    for (int s = 0; s < RS_COUNT; s++) {
        if (!t->sink_expected[s])
            continue;
        core_digest_agg k = stage_sum(d, s);
        int ro = s == RS_CACHE ? CACHE_REFUSED : PERSIST_REFUSED;
        t->sink_refused[s] = (int64_t)d->a[s][ro].count;
        t->sink_handled[s] = (int64_t)k.count - t->sink_refused[s];
        if (t->sink_refused[s] != 0 || !core_digest_agg_equal(&k, valid))
            clean = false;
    }
    check_totals(t);
    return clean;
}

/* ---- drill-down --------------------------------------------------------- */

typedef struct dev {
    int stage, outcome;
    const char *key, *topic, *reason;
    bool has_dg;
    core_digest dg;
    int64_t part, off, line;
} dev;

typedef struct judge {
    core_strbuf detail;
    int verdict, stage;   /* the first problem; -1: none */
    int rej_stage;        /* rejected at; -1: not rejected */
    const char *rej_reason;
    const char *went;
} judge;

static void problem(judge *j, int verdict, int stage, const char *fmt, const char *a)
{
    if (j->verdict < 0) {
        j->verdict = verdict;
        j->stage = stage;
    }
    if (j->detail.len)
        core_strbuf_add(&j->detail, "; ");
    core_strbuf_addf(&j->detail, "%s at %s: ", recon_verdict_names[verdict],
                     recon_stage_names[stage]);
    core_strbuf_addf(&j->detail, fmt, a ? a : "");
}

static bool same_src(const dev *a, const dev *b)
{
    return a->part == b->part && a->off == b->off && a->line == b->line &&
           a->has_dg == b->has_dg &&
           (!a->has_dg || core_digest_equal(&a->dg, &b->dg)) &&
           ((!a->topic && !b->topic) || (a->topic && b->topic && !strcmp(a->topic, b->topic)));
}

/* Events of stage s (terminal only when asked) that are not redeliveries of
 * an earlier one; *first gets the first. */
static int distinct_events(const dev *e, size_t n, int s, bool terminal, const dev **first)
{
    int k = 0;
    *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (e[i].stage != s || (terminal && e[i].outcome == O_RETRYING))
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = e[j].stage == s && !(terminal && e[j].outcome == O_RETRYING) &&
                   same_src(&e[j], &e[i]);
        if (!seen) {
            if (!*first)
                *first = &e[i];
            k++;
        }
    }
    return k;
}

static bool digest_differs(const dev *e, size_t n, int s, const core_digest *ref)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].stage == s && e[i].has_dg && ref && !core_digest_equal(&e[i].dg, ref) &&
            !(s == RS_VALIDATOR && e[i].outcome == O_RETRYING))
            return true;
    return false;
}

/* Judge one record from its events; updates the totals. */
static void judge_record(const dev *e, size_t n, const recon_totals *exp, recon_totals *t,
                         judge *j)
{
    const dev *pub = NULL, *fe = NULL, *vt = NULL, *any;
    bool seen[RS_COUNT] = { false };
    int npub = 0, nvt;
    char buf[160];

    j->verdict = j->stage = j->rej_stage = -1;
    for (size_t i = 0; i < n; i++) {
        seen[e[i].stage] = true;
        if (e[i].stage == RS_INGEST && e[i].outcome == O_FORMAT_ERROR && !fe)
            fe = &e[i];
    }
    npub = distinct_events(e, n, RS_INGEST, false, &any);
    for (size_t i = 0; i < n && !pub; i++)
        if (e[i].stage == RS_INGEST && e[i].outcome == O_PUBLISHED)
            pub = &e[i];
    if (seen[RS_INGEST])
        t->lines++;
    if (!pub && !fe) {
        for (int s = 0; s < RS_COUNT; s++)
            if (seen[s]) {
                problem(j, RV_UNEXPECTED, s, "never published by ingest%s", NULL);
                break;
            }
        for (int s = 0; s < RS_COUNT; s++)
            if (exp->sink_expected[s] && seen[s])
                t->sink_handled[s]++;
        return;
    }
    if (!pub) {
        t->format_errors++;
        j->rej_stage = RS_INGEST;
        j->rej_reason = fe->reason;
        j->went = "the errors file";
        for (int s = RS_VALIDATOR; s < RS_COUNT; s++)
            if (seen[s])
                problem(j, RV_UNEXPECTED, s, "a format error at ingest, seen here%s", NULL);
        return;
    }
    t->published++;
    if (npub > 1) {
        snprintf(buf, sizeof(buf), "%d", npub);
        problem(j, RV_DUPLICATED, RS_INGEST, "published %s times", buf);
    }
    const core_digest *ref = pub->has_dg ? &pub->dg : NULL;
    nvt = distinct_events(e, n, RS_VALIDATOR, true, &vt);
    if (nvt == 0) {
        bool retrying = seen[RS_VALIDATOR];
        if (retrying) {
            t->retrying++;
            if (j->verdict < 0)
                j->stage = RS_VALIDATOR;
        } else {
            problem(j, RV_MISSING, RS_VALIDATOR, "published, no outcome from the validator%s",
                    NULL);
        }
        return;
    }
    if (nvt > 1) {
        snprintf(buf, sizeof(buf), "%d", nvt);
        problem(j, RV_DUPLICATED, RS_VALIDATOR, "%s outcomes from different source offsets or "
                                                "digests", buf);
    }
    if (digest_differs(e, n, RS_VALIDATOR, ref))
        problem(j, RV_ALTERED, RS_VALIDATOR, "digest differs from the one ingest published%s",
                NULL);
    switch (vt->outcome) {
    case O_VALID: t->valid++; break;
    case O_INVALID: t->invalid++; break;
    case O_POISON: t->poison++; break;
    default: t->exhausted++; break;
    }
    if (vt->outcome != O_VALID) {
        j->rej_stage = RS_VALIDATOR;
        j->rej_reason = vt->reason;
        j->went = "dlq";
        for (int s = RS_CACHE; s < RS_COUNT; s++)
            if (seen[s]) {
                problem(j, RV_UNEXPECTED, s, "rejected by the validator, still seen here%s",
                        NULL);
                t->sink_handled[s]++;
            }
        return;
    }
    for (int s = RS_CACHE; s < RS_COUNT; s++) {
        const dev *first;
        int k;
        if (!exp->sink_expected[s])
            continue;
        k = distinct_events(e, n, s, false, &first);
        if (k == 0) {
            problem(j, RV_MISSING, s, "valid, never reported by this sink%s", NULL);
            continue;
        }
        bool ref_ok = true;
        for (size_t i = 0; i < n; i++)
            if (e[i].stage == s && refused(s, e[i].outcome)) {
                ref_ok = false;
                if (j->rej_stage < 0) {
                    j->rej_stage = s;
                    j->rej_reason = e[i].reason;
                    j->went = s == RS_PERSISTER ? "dlq" : "not cached (logged)";
                }
            }
        if (ref_ok)
            t->sink_handled[s]++;
        else
            t->sink_refused[s]++;
        if (k > 1) {
            snprintf(buf, sizeof(buf), "%d", k);
            problem(j, RV_DUPLICATED, s, "applied %s times from different source offsets or "
                                         "digests", buf);
        }
        if (digest_differs(e, n, s, ref))
            problem(j, RV_ALTERED, s, "digest differs from the one ingest published%s", NULL);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int drill(PGconn *c, const recon_reconcile_opts *o, recon_report *rep,
                 recon_dataset_result *res, const char *buckets, char *errstr,
                 size_t errstr_size)
{
    char sql[600];
    const char *params[3] = { rep->batch, res->dataset, buckets };
    PGresult *r;
    dev *ev = NULL;
    size_t cap = 0;
    recon_totals exp = res->t, t = res->t;
    int rc = 0, nrows;

    snprintf(sql, sizeof(sql),
             "SELECT id, stage, outcome, key, digest, src_topic, src_partition, src_offset, "
             "line, reason FROM %s.events WHERE batch_id = $1 AND dataset = $2 "
             "AND bucket = ANY ($3::int[]) ORDER BY id COLLATE \"C\", audit_partition, "
             "audit_offset",
             o->schema);
    r = PQexecParams(c, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    nrows = PQntuples(r);
    for (int i = 0; i < nrows && rc == 0;) {
        const char *id = PQgetvalue(r, i, 0);
        size_t n = 0;
        int i0 = i;
        for (; i < nrows && strcmp(PQgetvalue(r, i, 0), id) == 0; i++) {
            const char *st = PQgetvalue(r, i, 1), *out = PQgetvalue(r, i, 2);
            int s = recon_stage_index(st, strlen(st));
            int oi = s < 0 ? -1 : recon_outcome_index(s, out, strlen(out));
            if (oi < 0)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                dev *ne = realloc(ev, nc * sizeof(*ne));
                if (!ne) {
                    rc = -1;
                    break;
                }
                ev = ne;
                cap = nc;
            }
            dev *d = &ev[n++];
            memset(d, 0, sizeof(*d));
            d->stage = s;
            d->outcome = oi;
            d->key = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
            d->has_dg = !PQgetisnull(r, i, 4) && parse_bytea32(PQgetvalue(r, i, 4), d->dg.b) == 0;
            d->topic = PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5);
            d->part = PQgetisnull(r, i, 6) ? RECON_NONE : strtoll(PQgetvalue(r, i, 6), NULL, 10);
            d->off = PQgetisnull(r, i, 7) ? RECON_NONE : strtoll(PQgetvalue(r, i, 7), NULL, 10);
            d->line = PQgetisnull(r, i, 8) ? RECON_NONE : strtoll(PQgetvalue(r, i, 8), NULL, 10);
            d->reason = PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9);
        }
        if (rc != 0 || n == 0)
            continue;
        judge j = { 0 };
        judge_record(ev, n, &exp, &t, &j);
        const char *key = NULL;
        for (size_t k = 0; k < n && !key; k++)
            key = ev[k].key;
        int verdict = j.verdict >= 0 ? j.verdict
                      : j.rej_stage >= 0 ? RV_REJECTED
                      : j.stage == RS_VALIDATOR ? RV_RETRYING : RV_DELIVERED;
        res->counts[verdict]++;
        if (verdict != RV_DELIVERED && verdict != RV_RETRYING &&
            (verdict != RV_REJECTED || rep->nrejected < (o->rejected_max ? o->rejected_max : 1000))) {
            recon_record rec = { 0 };
            rec.id = strdup(PQgetvalue(r, i0, 0));
            rec.key = dup_or_null(key);
            rec.dataset = strdup(res->dataset);
            rec.verdict = verdict;
            rec.stage = verdict == RV_REJECTED ? j.rej_stage : j.stage;
            if (verdict == RV_REJECTED) {
                rec.detail = dup_or_null(j.rej_reason);
                rec.went = dup_or_null(j.went);
            } else {
                rec.detail = j.detail.p ? strdup(j.detail.p) : NULL;
            }
            if (!rec.id || !rec.dataset ||
                push_record(verdict == RV_REJECTED ? &rep->rejected : &rep->disc,
                            verdict == RV_REJECTED ? &rep->nrejected : &rep->ndisc, &rec) != 0) {
                record_free(&rec);
                rc = -1;
            }
        } else if (verdict == RV_REJECTED) {
            rep->rejected_truncated = true;
        }
        core_strbuf_free(&j.detail);
    }
    PQclear(r);
    free(ev);
    if (rc != 0) {
        core_errstr(errstr, errstr_size, "out of memory");
        return -1;
    }
    res->t = t;
    res->drilled = true;
    return 0;
}

/* Per bucket, inside PostgreSQL: the counts and sums of element prefixes
 * the aggregates compare. Buckets that agree are accounted for from their
 * counts; the others are written to *differ as an int[] literal. */
static int compare_buckets(PGconn *c, const recon_reconcile_opts *o, const char *batch,
                           recon_dataset_result *res, core_strbuf *differ, char *errstr,
                           size_t errstr_size)
{
    char sql[2600];
    const char *params[2] = { batch, res->dataset };
    PGresult *r;
    recon_totals *t = &res->t;

#define CNT(w) "count(*) FILTER (WHERE " w ")"
#define SUM(w) "coalesce(sum(eh::numeric) FILTER (WHERE " w "), 0)::text"
    snprintf(sql, sizeof(sql),
             "SELECT bucket, "
             CNT("stage = 'ingest' AND outcome = 'published'") ", "
             SUM("stage = 'ingest' AND outcome = 'published'") ", "
             CNT("stage = 'ingest' AND outcome = 'format_error'") ", "
             CNT("stage = 'validator'") ", " SUM("stage = 'validator'") ", "
             CNT("stage = 'validator' AND outcome = 'valid'") ", "
             SUM("stage = 'validator' AND outcome = 'valid'") ", "
             CNT("stage = 'validator' AND outcome = 'invalid'") ", "
             CNT("stage = 'validator' AND outcome = 'poison'") ", "
             CNT("stage = 'validator' AND outcome = 'exhausted'") ", "
             CNT("stage = 'validator' AND outcome = 'retrying'") ", "
             CNT("stage = 'cache-feeder'") ", " SUM("stage = 'cache-feeder'") ", "
             CNT("stage = 'cache-feeder' AND outcome = 'rejected'") ", "
             CNT("stage = 'persister'") ", " SUM("stage = 'persister'") ", "
             CNT("stage = 'persister' AND outcome = 'dead'")
             " FROM %s.events WHERE batch_id = $1 AND dataset = $2 GROUP BY bucket",
             o->schema);
#undef CNT
#undef SUM
    r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    core_strbuf_add(differ, "{");
    for (int i = 0; i < PQntuples(r); i++) {
#define N(col) strtoll(PQgetvalue(r, i, (col)), NULL, 10)
#define S(col) PQgetvalue(r, i, (col))
        int64_t n_pub = N(1), n_fe = N(3), n_v = N(4), n_valid = N(6);
        int64_t n_inv = N(8), n_poi = N(9), n_exh = N(10), n_retry = N(11);
        static const int sink_col[RS_COUNT] = { 0, 0, 12, 15 };
        bool clean = n_v == n_pub && !strcmp(S(5), S(2)) && n_retry == 0;
        for (int s = RS_CACHE; s < RS_COUNT && clean; s++)
            if (t->sink_expected[s])
                clean = N(sink_col[s]) == n_valid && !strcmp(S(sink_col[s] + 1), S(7)) &&
                        N(sink_col[s] + 2) == 0;
        if (!clean) {
            core_strbuf_addf(differ, "%s%s", res->buckets_drilled ? "," : "", S(0));
            res->buckets_drilled++;
            continue;
        }
        t->lines += n_fe + n_pub;
        t->format_errors += n_fe;
        t->published += n_pub;
        t->valid += n_valid;
        t->invalid += n_inv;
        t->poison += n_poi;
        t->exhausted += n_exh;
        for (int s = RS_CACHE; s < RS_COUNT; s++)
            if (t->sink_expected[s])
                t->sink_handled[s] += N(sink_col[s]);
        res->counts[RV_DELIVERED] += n_valid;
        res->counts[RV_REJECTED] += n_fe + n_inv + n_poi + n_exh;
#undef N
#undef S
    }
    core_strbuf_add(differ, "}");
    PQclear(r);
    if (differ->failed) {
        core_errstr(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

/* The rejected records of a dataset (or of its buckets proved clean by
 * their aggregates: skip_buckets, an int[] literal, are left out). */
static int list_rejected(PGconn *c, const recon_reconcile_opts *o, recon_report *rep,
                         const char *dataset, const char *skip_buckets, char *errstr,
                         size_t errstr_size)
{
    size_t max = o->rejected_max ? o->rejected_max : 1000;
    char sql[700], lim[32];
    const char *params[4] = { rep->batch, dataset, lim, skip_buckets };
    PGresult *r;
    int rc = 0;

    if (rep->nrejected >= max) {
        rep->rejected_truncated = true;
        return 0;
    }
    snprintf(lim, sizeof(lim), "%zu", max - rep->nrejected + 1);
    snprintf(sql, sizeof(sql),
             "SELECT id, key, stage, outcome, reason FROM %s.events WHERE batch_id = $1 AND "
             "dataset = $2 AND outcome IN ('format_error', 'invalid', 'poison', 'exhausted') "
             "AND NOT (bucket = ANY ($4::int[])) ORDER BY id COLLATE \"C\" LIMIT $3",
             o->schema);
    r = PQexecParams(c, sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        recon_record rec = { 0 };
        const char *st = PQgetvalue(r, i, 2);
        if (rep->nrejected >= max) {
            rep->rejected_truncated = true;
            break;
        }
        rec.id = strdup(PQgetvalue(r, i, 0));
        rec.key = PQgetisnull(r, i, 1) ? NULL : strdup(PQgetvalue(r, i, 1));
        rec.dataset = strdup(dataset);
        rec.verdict = RV_REJECTED;
        rec.stage = recon_stage_index(st, strlen(st));
        rec.detail = PQgetisnull(r, i, 4) ? NULL : strdup(PQgetvalue(r, i, 4));
        rec.went = strdup(rec.stage == RS_INGEST ? "the errors file" : "dlq");
        if (!rec.id || !rec.dataset || !rec.went ||
            push_record(&rep->rejected, &rep->nrejected, &rec) != 0) {
            record_free(&rec);
            rc = -1;
        }
    }
    PQclear(r);
    if (rc != 0)
        core_errstr(errstr, errstr_size, "out of memory");
    return rc;
}

static int load_bad(PGconn *c, const char *schema, recon_report *rep, char *errstr,
                    size_t errstr_size)
{
    char sql[200];
    PGresult *r;

    snprintf(sql, sizeof(sql), "SELECT reason, count(*) FROM %s.bad_events GROUP BY reason",
             schema);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        rep->bad_total += n;
        for (int k = 0; k < 3; k++)
            if (strcmp(PQgetvalue(r, i, 0), recon_bad_reasons[k]) == 0)
                rep->bad[k] += n;
    }
    PQclear(r);
    return 0;
}

static int rec_cmp(const void *a, const void *b)
{
    const recon_record *x = a, *y = b;
    int d = strcmp(x->dataset, y->dataset);
    if (d)
        return d;
    if (x->stage != y->stage)
        return x->stage - y->stage;
    return strcmp(x->id, y->id);
}

/* Method counts: which stage's count differs from the count it should
 * equal (totals filled by fast_path()). */
static void count_differences(recon_dataset_result *res)
{
    const recon_totals *t = &res->t;
    int64_t validator = t->valid + t->invalid + t->poison + t->exhausted + t->retrying;

    res->count_expected[RS_VALIDATOR] = t->published;
    res->count_seen[RS_VALIDATOR] = validator;
    for (int s = 0; s < RS_COUNT; s++)
        if (t->sink_expected[s]) {
            res->count_expected[s] = t->valid;
            res->count_seen[s] = t->sink_handled[s] + t->sink_refused[s];
        }
    res->count_differs = t->retrying != 0;
    for (int s = 0; s < RS_COUNT; s++)
        if (res->count_seen[s] != res->count_expected[s])
            res->count_differs = true;
}

int recon_reconcile_batch(PGconn *c, const recon_reconcile_opts *o, const char *batch,
                          recon_report **out, char *errstr, size_t errstr_size)
{
    double t0 = core_mono_s();
    recon_report *rep = calloc(1, sizeof(*rep));
    ds_aggs *dsv = NULL;
    size_t nds = 0;
    int rc = -1;

    *out = NULL;
    if (!rep || !(rep->batch = strdup(batch))) {
        core_errstr(errstr, errstr_size, "out of memory");
        goto done;
    }
    if (load_aggs(c, o->schema, batch, &dsv, &nds, errstr, errstr_size) != 0 ||
        load_bad(c, o->schema, rep, errstr, errstr_size) != 0)
        goto done;
    rep->known = nds > 0;
    if (nds && !(rep->ds = calloc(nds, sizeof(*rep->ds)))) {
        core_errstr(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nds; i++) {
        recon_dataset_result *res = &rep->ds[rep->nds];
        if (!(res->dataset = strdup(dsv[i].dataset))) {
            core_errstr(errstr, errstr_size, "out of memory");
            goto done;
        }
        rep->nds++;
        for (int s = 0; s < RS_COUNT; s++)
            res->t.sink_expected[s] =
                is_sink(s) && (o->sinks ? (o->sinks & (1u << s)) != 0 : dsv[i].sink_seen[s]);
        res->method = dsv[i].method;
        bool agrees = fast_path(&dsv[i], &res->t);
        if (res->method == RM_COUNTS) {
            /* no per-record rows: the counts are the whole verdict */
            count_differences(res);
            res->counts[RV_DELIVERED] = res->count_differs ? 0 : res->t.valid;
            res->counts[RV_REJECTED] =
                res->t.format_errors + res->t.invalid + res->t.poison + res->t.exhausted;
        } else if (agrees) {
            res->counts[RV_DELIVERED] = res->t.valid;
            res->counts[RV_REJECTED] =
                res->t.format_errors + res->t.invalid + res->t.poison + res->t.exhausted;
            if (list_rejected(c, o, rep, res->dataset, "{}", errstr, errstr_size) != 0)
                goto done;
        } else {
            /* start again from zero, bucket by bucket */
            core_strbuf differ = { 0 };
            bool exp[RS_COUNT];
            memcpy(exp, res->t.sink_expected, sizeof(exp));
            memset(&res->t, 0, sizeof(res->t));
            memcpy(res->t.sink_expected, exp, sizeof(exp));
            int e = compare_buckets(c, o, batch, res, &differ, errstr, errstr_size);
            if (e == 0)
                e = list_rejected(c, o, rep, res->dataset, differ.p, errstr, errstr_size);
            if (e == 0 && res->buckets_drilled)
                e = drill(c, o, rep, res, differ.p, errstr, errstr_size);
            core_strbuf_free(&differ);
            if (e != 0)
                goto done;
            check_totals(&res->t);
        }
        for (int v = 0; v < RV_COUNT; v++)
            rep->counts[v] += res->counts[v];
    }
    rep->clean = rep->known; /* a batch nothing reported on is not clean */
    for (size_t i = 0; i < rep->nds; i++)
        if (rep->ds[i].count_differs)
            rep->clean = false;
    for (int v = 0; v < RV_COUNT; v++)
        if (recon_verdict_is_discrepancy(v) && rep->counts[v] > 0)
            rep->clean = false;
    if (rep->ndisc > 1)
        qsort(rep->disc, rep->ndisc, sizeof(*rep->disc), rec_cmp);
    rep->seconds = core_mono_s() - t0;
    rc = 0;
done:
    for (size_t i = 0; i < nds; i++)
        free(dsv[i].dataset);
    free(dsv);
    if (rc == 0)
        *out = rep;
    else
        recon_report_free(rep);
    return rc == 0 ? CORE_OK : CORE_ERR_TRANSIENT;
}
