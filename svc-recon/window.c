/* window.c — event-time windows, latency histograms, watermarks and the
 * reopening of closed windows and batches, accumulated during one apply
 * and written in its transaction (window.h). */
#include "window.h"

#include "tributary/core_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const recon_hop_names[RH_COUNT] = { "ingest->validator", "validator->cache-feeder",
                                                "validator->persister" };

#define TWO_256 "115792089237316195423570985008687907853269984665640564039457584007913129639936"

/* ---- the latency cache -------------------------------------------------- */

typedef struct lat_slot {
    uint64_t h;          /* 0: empty */
    int64_t ingest_ts;   /* RECON_NONE: not seen */
    int64_t valid_ts;
} lat_slot;

struct recon_lat_cache {
    lat_slot *s;
};

recon_lat_cache *recon_lat_cache_new(void)
{
    recon_lat_cache *c = calloc(1, sizeof(*c));
    if (c && !(c->s = calloc(RECON_LAT_SLOTS, sizeof(*c->s)))) {
        free(c);
        return NULL;
    }
    return c;
}

void recon_lat_cache_free(recon_lat_cache *c)
{
    if (c)
        free(c->s);
    free(c);
}

static uint64_t id_hash(recon_str ds, recon_str id)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < ds.len; i++)
        h = (h ^ (uint8_t)ds.p[i]) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (size_t i = 0; i < id.len; i++)
        h = (h ^ (uint8_t)id.p[i]) * 1099511628211ULL;
    return h | 1;
}

/* ---- numbers ------------------------------------------------------------- */

int64_t recon_window_start(int64_t ts, int64_t window_ms)
{
    int64_t q = ts / window_ms;
    if (ts % window_ms < 0)
        q--;
    return q * window_ms;
}

static const double sub_edges[4] = { 1.0, 1.189207115, 1.414213562, 1.681792831 };

int recon_lat_bucket(int64_t ms)
{
    if (ms < 1)
        return 0;
    int k = 63 - __builtin_clzll((unsigned long long)ms);
    double frac = (double)ms / (double)(1ULL << k);
    int sub = frac >= sub_edges[3] ? 3 : frac >= sub_edges[2] ? 2 : frac >= sub_edges[1] ? 1 : 0;
    return 1 + 4 * k + sub;
}

double recon_lat_bucket_upper(int b)
{
    if (b <= 0)
        return 1.0;
    int k = (b - 1) / 4, sub = (b - 1) % 4;
    return (double)(1ULL << k) * (sub == 3 ? 2.0 : sub_edges[sub + 1]);
}

void recon_u256_decimal(const uint8_t *be, char *buf)
{
    uint32_t w[8];
    char rev[80];
    size_t n = 0;

    for (int i = 0; i < 8; i++)
        w[i] = (uint32_t)be[4 * i] << 24 | (uint32_t)be[4 * i + 1] << 16 |
               (uint32_t)be[4 * i + 2] << 8 | be[4 * i + 3];
    for (;;) {
        bool zero = true;
        uint64_t rem = 0;
        for (int i = 0; i < 8; i++) {
            uint64_t cur = rem << 32 | w[i];
            w[i] = (uint32_t)(cur / 10);
            rem = cur % 10;
            if (w[i])
                zero = false;
        }
        rev[n++] = (char)('0' + rem);
        if (zero)
            break;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = rev[n - 1 - i];
    buf[n] = '\0';
}

/* ---- the accumulator ------------------------------------------------------ */

typedef struct wmark {
    int stage;
    int32_t part;
    int64_t ts;
    bool dirty;
} wmark;

typedef struct wgroup {
    recon_str dataset, stage, outcome;
    int64_t start, n, bytes, late, first, last;
    core_digest_agg agg;
} wgroup;

typedef struct lgroup {
    recon_str dataset;
    int hop, bucket;
    int64_t start, n;
} lgroup;

struct recon_win_acc {
    PGconn *c;
    const char *schema;
    int64_t window_ms, grace_ms;
    recon_lat_cache *cache;
    wmark *wm;
    size_t nwm, capwm;
    wgroup *g;
    size_t ng, capg;
    lgroup *l;
    size_t nl, capl;
    recon_str *batches;
    size_t nb, capb;
};

/* Room for one more element of *v (count n, capacity cap). 0 or -1. */
static int grow(void **v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *nv = realloc(*v, nc * size);
    if (!nv)
        return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

static bool str_eq(recon_str a, recon_str b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static void pg_err(PGconn *c, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres windows: %s", m);
}

recon_win_acc *recon_win_begin(PGconn *c, const char *schema, int64_t window_ms, int64_t grace_ms,
                               recon_lat_cache *cache, char *errstr, size_t errstr_size)
{
    recon_win_acc *a = calloc(1, sizeof(*a));
    char sql[200];
    PGresult *r;

    if (!a) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    a->c = c;
    a->schema = schema;
    a->window_ms = window_ms > 0 ? window_ms : 600000;
    a->grace_ms = grace_ms;
    a->cache = cache;
    snprintf(sql, sizeof(sql), "SELECT stage, partition, ts_ms FROM %s.watermarks", schema);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(c, errstr, errstr_size);
        PQclear(r);
        free(a);
        return NULL;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *st = PQgetvalue(r, i, 0);
        int s = recon_stage_index(st, strlen(st));
        if (s < 0)
            continue;
        if (grow((void **)&a->wm, a->nwm, &a->capwm, sizeof(*a->wm)) != 0) {
            PQclear(r);
            recon_win_free(a);
            core_errstr(errstr, errstr_size, "out of memory");
            return NULL;
        }
        a->wm[a->nwm++] = (wmark){ s, (int32_t)atol(PQgetvalue(r, i, 1)),
                                   strtoll(PQgetvalue(r, i, 2), NULL, 10), false };
    }
    PQclear(r);
    return a;
}

void recon_win_free(recon_win_acc *a)
{
    if (!a)
        return;
    free(a->wm);
    free(a->g);
    free(a->l);
    free(a->batches);
    free(a);
}

static int lat_add(recon_win_acc *a, recon_str ds, int hop, int64_t start, int bucket)
{
    for (size_t i = a->nl; i-- > 0;) {
        lgroup *l = &a->l[i];
        if (l->hop == hop && l->bucket == bucket && l->start == start && str_eq(l->dataset, ds)) {
            l->n++;
            return 0;
        }
    }
    if (grow((void **)&a->l, a->nl, &a->capl, sizeof(*a->l)) != 0)
        return -1;
    a->l[a->nl++] = (lgroup){ ds, hop, bucket, start, 1 };
    return 0;
}

/* The latency sample(s) of one event, from the cache. */
static int latency(recon_win_acc *a, const recon_event *ev, int64_t start)
{
    if (!a->cache)
        return 0;
    uint64_t h = id_hash(ev->dataset, ev->id);
    lat_slot *s = &a->cache->s[h % RECON_LAT_SLOTS];
    bool hit = s->h == h;
    int st = ev->stage_ix;

    if (st == RS_INGEST) {
        if (!recon_str_is(ev->outcome, "published"))
            return 0;
        *s = (lat_slot){ h, ev->ts, RECON_NONE };
        return 0;
    }
    if (st == RS_VALIDATOR) {
        if (recon_str_is(ev->outcome, "retrying"))
            return 0;
        bool known = hit && s->ingest_ts != RECON_NONE;
        if (!hit)
            *s = (lat_slot){ h, RECON_NONE, RECON_NONE };
        s->valid_ts = ev->ts;
        return lat_add(a, ev->dataset, RH_INGEST_VALIDATOR, start,
                       known ? recon_lat_bucket(ev->ts - s->ingest_ts) : -1);
    }
    int hop = st == RS_CACHE ? RH_VALIDATOR_CACHE : RH_VALIDATOR_PERSISTER;
    bool known = hit && s->valid_ts != RECON_NONE;
    return lat_add(a, ev->dataset, hop, start,
                   known ? recon_lat_bucket(ev->ts - s->valid_ts) : -1);
}

int recon_win_add(recon_win_acc *a, const recon_event *ev, int32_t audit_partition, size_t bytes,
                  const core_digest *element)
{
    int64_t start = recon_window_start(ev->ts, a->window_ms);
    wmark *w = NULL;
    bool late = false;
    wgroup *g = NULL;

    for (size_t i = 0; i < a->nwm; i++)
        if (a->wm[i].stage == ev->stage_ix && a->wm[i].part == audit_partition) {
            w = &a->wm[i];
            break;
        }
    if (!w) {
        if (grow((void **)&a->wm, a->nwm, &a->capwm, sizeof(*a->wm)) != 0)
            return -1;
        w = &a->wm[a->nwm++];
        *w = (wmark){ ev->stage_ix, audit_partition, ev->ts, true };
    }
    if (ev->ts < w->ts - a->grace_ms)
        late = true;
    if (ev->ts > w->ts) {
        w->ts = ev->ts;
        w->dirty = true;
    }
    for (size_t i = a->ng; i-- > 0;) {
        wgroup *x = &a->g[i];
        if (x->start == start && str_eq(x->outcome, ev->outcome) && str_eq(x->stage, ev->stage) &&
            str_eq(x->dataset, ev->dataset)) {
            g = x;
            break;
        }
    }
    if (!g) {
        if (grow((void **)&a->g, a->ng, &a->capg, sizeof(*a->g)) != 0)
            return -1;
        g = &a->g[a->ng++];
        memset(g, 0, sizeof(*g));
        g->dataset = ev->dataset;
        g->stage = ev->stage;
        g->outcome = ev->outcome;
        g->start = start;
        g->first = g->last = ev->ts;
        core_digest_agg_init(&g->agg);
    }
    g->n++;
    g->bytes += (int64_t)bytes;
    g->late += late;
    if (ev->ts < g->first)
        g->first = ev->ts;
    if (ev->ts > g->last)
        g->last = ev->ts;
    core_digest_agg_add(&g->agg, element);
    bool seen = false;
    for (size_t i = a->nb; i-- > 0 && !seen;)
        seen = str_eq(a->batches[i], ev->batch_id);
    if (!seen) {
        if (grow((void **)&a->batches, a->nb, &a->capb, sizeof(*a->batches)) != 0)
            return -1;
        a->batches[a->nb++] = ev->batch_id;
    }
    return latency(a, ev, start);
}

static void lit(PGconn *c, core_strbuf *b, recon_str s)
{
    char *q = PQescapeLiteral(c, s.p ? s.p : "", s.p ? s.len : 0);
    if (!q) {
        b->failed = true;
        return;
    }
    core_strbuf_add(b, q);
    PQfreemem(q);
}

static core_err_t run(recon_win_acc *a, core_strbuf *q, char *errstr, size_t errstr_size)
{
    core_err_t e = CORE_OK;
    if (q->failed) {
        core_errstr(errstr, errstr_size, "out of memory");
        e = CORE_ERR_NOMEM;
    } else if (q->len) {
        PGresult *r = PQexec(a->c, q->p);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_err(a->c, errstr, errstr_size);
            e = CORE_ERR_TRANSIENT;
        }
        PQclear(r);
    }
    core_strbuf_free(q);
    return e;
}

core_err_t recon_win_write(recon_win_acc *a, int64_t now_ms, char *errstr, size_t errstr_size)
{
    core_strbuf q = { 0 };
    core_err_t e;
    char dec[80];

    if (a->ng) {
        core_strbuf_addf(&q, "INSERT INTO %s.windows (dataset, window_ms, window_start, stage, "
                             "outcome, n, bytes, late, agg, first_ts_ms, last_ts_ms) VALUES ",
                         a->schema);
        for (size_t i = 0; i < a->ng; i++) {
            wgroup *g = &a->g[i];
            core_strbuf_add(&q, i ? ",(" : "(");
            lit(a->c, &q, g->dataset);
            core_strbuf_addf(&q, ",%" PRId64 ",%" PRId64 ",", a->window_ms, g->start);
            lit(a->c, &q, g->stage);
            core_strbuf_add(&q, ",");
            lit(a->c, &q, g->outcome);
            recon_u256_decimal(g->agg.sum, dec);
            core_strbuf_addf(&q, ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%s,%" PRId64 ",%" PRId64 ")",
                             g->n, g->bytes, g->late, dec, g->first, g->last);
        }
        core_strbuf_add(&q, " ON CONFLICT (dataset, window_ms, window_start, stage, outcome) DO "
                            "UPDATE SET n = windows.n + EXCLUDED.n, bytes = windows.bytes + "
                            "EXCLUDED.bytes, late = windows.late + EXCLUDED.late, agg = "
                            "mod(windows.agg + EXCLUDED.agg, " TWO_256 "), first_ts_ms = "
                            "LEAST(windows.first_ts_ms, EXCLUDED.first_ts_ms), last_ts_ms = "
                            "GREATEST(windows.last_ts_ms, EXCLUDED.last_ts_ms)");
        if ((e = run(a, &q, errstr, errstr_size)) != CORE_OK)
            return e;
    }
    if (a->nl) {
        core_strbuf_addf(&q, "INSERT INTO %s.window_latency (dataset, window_ms, window_start, "
                             "hop, bucket, n) VALUES ", a->schema);
        for (size_t i = 0; i < a->nl; i++) {
            lgroup *l = &a->l[i];
            core_strbuf_add(&q, i ? ",(" : "(");
            lit(a->c, &q, l->dataset);
            core_strbuf_addf(&q, ",%" PRId64 ",%" PRId64 ",'%s',%d,%" PRId64 ")", a->window_ms,
                             l->start, recon_hop_names[l->hop], l->bucket, l->n);
        }
        core_strbuf_add(&q, " ON CONFLICT (dataset, window_ms, window_start, hop, bucket) DO "
                            "UPDATE SET n = window_latency.n + EXCLUDED.n");
        if ((e = run(a, &q, errstr, errstr_size)) != CORE_OK)
            return e;
    }
    bool any = false;
    for (size_t i = 0; i < a->nwm; i++) {
        wmark *w = &a->wm[i];
        if (!w->dirty)
            continue;
        if (!any)
            core_strbuf_addf(&q, "INSERT INTO %s.watermarks (stage, partition, ts_ms) VALUES ",
                             a->schema);
        core_strbuf_addf(&q, "%s('%s',%" PRId32 ",%" PRId64 ")", any ? "," : "",
                         recon_stage_names[w->stage], w->part, w->ts);
        any = true;
    }
    if (any)
        core_strbuf_add(&q, " ON CONFLICT (stage, partition) DO UPDATE SET ts_ms = "
                            "GREATEST(watermarks.ts_ms, EXCLUDED.ts_ms)");
    if ((e = run(a, &q, errstr, errstr_size)) != CORE_OK)
        return e;
    if (!a->ng)
        return CORE_OK;
    /* a closed window or batch an event of this apply falls in is reopened */
    core_strbuf_addf(&q, "UPDATE %s.closings SET state = 'reopened', reopened_ms = %" PRId64
                         " WHERE state = 'closed' AND ((kind = 'window' AND window_ms = %" PRId64
                         " AND (subject, window_start) IN (",
                     a->schema, now_ms, a->window_ms);
    for (size_t i = 0; i < a->ng; i++) {
        core_strbuf_add(&q, i ? ",(" : "(");
        lit(a->c, &q, a->g[i].dataset);
        core_strbuf_addf(&q, ",%" PRId64 ")", a->g[i].start);
    }
    core_strbuf_add(&q, ")) OR (kind = 'batch' AND subject IN (");
    for (size_t i = 0; i < a->nb; i++) {
        if (i)
            core_strbuf_add(&q, ",");
        lit(a->c, &q, a->batches[i]);
    }
    core_strbuf_add(&q, ")))");
    return run(a, &q, errstr, errstr_size);
}
