/* winreport.c — windows of a dataset as JSON and text (winreport.h). */
#include "winreport.h"
#include "window.h"

#include "tributary/core_avro.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pg_err(PGconn *c, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres query: %s", m);
}

int recon_parse_time(const char *s, int64_t *ms)
{
    char err[128];
    size_t n = s ? strlen(s) : 0;
    bool digits = n > 0 && n < 19;

    for (size_t i = s && s[0] == '-' ? 1 : 0; digits && i < n; i++)
        digits = isdigit((unsigned char)s[i]);
    if (digits) {
        *ms = strtoll(s, NULL, 10);
        return 0;
    }
    return n && core_avro_time_parse(s, ms, err, sizeof(err)) == CORE_OK ? 0 : -1;
}

core_err_t recon_expected_stages(PGconn *c, const char *schema, const char *dataset,
                                 unsigned sinks, unsigned *out, char *errstr, size_t errstr_size)
{
    *out = 1u << RS_INGEST | 1u << RS_VALIDATOR | sinks;
    if (sinks)
        return CORE_OK;
    char sql[300];
    const char *params[1] = { dataset };
    snprintf(sql, sizeof(sql),
             "SELECT DISTINCT stage FROM %s.aggregates WHERE dataset = $1 "
             "AND stage IN ('cache-feeder', 'persister')", schema);
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(c, errstr, errstr_size);
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *st = PQgetvalue(r, i, 0);
        int s = recon_stage_index(st, strlen(st));
        if (s >= 0)
            *out |= 1u << s;
    }
    PQclear(r);
    return CORE_OK;
}

static PGresult *query(PGconn *c, const char *sql, const recon_win_query *q, int64_t from,
                       char *errstr, size_t errstr_size)
{
    char wms[24], f[24], t[24];
    const char *params[4] = { q->dataset, wms, f, t };
    snprintf(wms, sizeof(wms), "%" PRId64, q->window_ms);
    snprintf(f, sizeof(f), "%" PRId64, from);
    snprintf(t, sizeof(t), "%" PRId64, q->to_ms);
    PGresult *r = PQexecParams(c, sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(c, errstr, errstr_size);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The window object of start in arr (created in order). */
static cJSON *window_of(cJSON *arr, int64_t start, int64_t window_ms)
{
    cJSON *w;
    cJSON_ArrayForEach(w, arr)
    {
        if ((int64_t)cJSON_GetObjectItem(w, "start")->valuedouble == start)
            return w;
    }
    char ts[32];
    w = cJSON_CreateObject();
    cJSON_AddNumberToObject(w, "start", (double)start);
    cJSON_AddNumberToObject(w, "end", (double)(start + window_ms));
    if (core_avro_time_format(start, ts, sizeof(ts)) > 0)
        cJSON_AddStringToObject(w, "start_time", ts);
    cJSON_AddStringToObject(w, "state", "open");
    cJSON_AddNumberToObject(w, "version", 0);
    cJSON_AddObjectToObject(w, "stages");
    cJSON_AddObjectToObject(w, "latency");
    cJSON_AddItemToArray(arr, w);
    return w;
}

static void add_stages(cJSON *arr, PGresult *r, int64_t window_ms)
{
    for (int i = 0; i < PQntuples(r); i++) {
        cJSON *w = window_of(arr, strtoll(PQgetvalue(r, i, 0), NULL, 10), window_ms);
        cJSON *stages = cJSON_GetObjectItem(w, "stages");
        const char *stage = PQgetvalue(r, i, 1);
        cJSON *s = cJSON_GetObjectItem(stages, stage);
        if (!s) {
            s = cJSON_AddObjectToObject(stages, stage);
            cJSON_AddNumberToObject(s, "n", 0);
            cJSON_AddNumberToObject(s, "bytes", 0);
            cJSON_AddNumberToObject(s, "late", 0);
            cJSON_AddObjectToObject(s, "outcomes");
        }
        double n = strtod(PQgetvalue(r, i, 3), NULL);
        cJSON_SetNumberValue(cJSON_GetObjectItem(s, "n"),
                             cJSON_GetObjectItem(s, "n")->valuedouble + n);
        cJSON_SetNumberValue(cJSON_GetObjectItem(s, "bytes"),
                             cJSON_GetObjectItem(s, "bytes")->valuedouble +
                                 strtod(PQgetvalue(r, i, 4), NULL));
        cJSON_SetNumberValue(cJSON_GetObjectItem(s, "late"),
                             cJSON_GetObjectItem(s, "late")->valuedouble +
                                 strtod(PQgetvalue(r, i, 5), NULL));
        cJSON_AddNumberToObject(cJSON_GetObjectItem(s, "outcomes"), PQgetvalue(r, i, 2), n);
        cJSON *aggs = cJSON_GetObjectItem(s, "agg");
        if (!aggs)
            aggs = cJSON_AddObjectToObject(s, "agg");
        cJSON_AddStringToObject(aggs, PQgetvalue(r, i, 2), PQgetvalue(r, i, 6));
    }
}

/* p of the histogram (bucket, n) pairs, sorted by bucket; -1: none. */
static double pct(const int *b, const int64_t *n, int k, int64_t total, double p)
{
    int64_t need = (int64_t)(p * (double)total + 0.999999), cum = 0;
    if (need < 1)
        need = 1;
    for (int i = 0; i < k; i++) {
        cum += n[i];
        if (cum >= need)
            return recon_lat_bucket_upper(b[i]);
    }
    return -1;
}

static void add_latency(cJSON *arr, PGresult *r, int64_t window_ms)
{
    int rows = PQntuples(r);
    for (int i = 0; i < rows;) {
        int64_t start = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        const char *hop = PQgetvalue(r, i, 1);
        int b[160], k = 0;
        int64_t n[160], total = 0, unknown = 0;
        int j = i;
        for (; j < rows && strtoll(PQgetvalue(r, j, 0), NULL, 10) == start &&
               strcmp(PQgetvalue(r, j, 1), hop) == 0;
             j++) {
            int bk = atoi(PQgetvalue(r, j, 2));
            int64_t c = strtoll(PQgetvalue(r, j, 3), NULL, 10);
            if (bk < 0) {
                unknown += c;
            } else if (k < 160) {
                b[k] = bk;
                n[k++] = c;
                total += c;
            }
        }
        cJSON *w = window_of(arr, start, window_ms);
        cJSON *h = cJSON_AddObjectToObject(cJSON_GetObjectItem(w, "latency"), hop);
        cJSON_AddNumberToObject(h, "samples", (double)total);
        cJSON_AddNumberToObject(h, "unknown", (double)unknown);
        if (total) {
            cJSON_AddNumberToObject(h, "p50_ms", pct(b, n, k, total, 0.50));
            cJSON_AddNumberToObject(h, "p99_ms", pct(b, n, k, total, 0.99));
        }
        i = j;
    }
}

static double outcome_n(const cJSON *stages, const char *stage, const char *outcome)
{
    const cJSON *o = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(stages, stage), "outcomes"), outcome);
    return cJSON_IsNumber(o) ? o->valuedouble : 0;
}

/* Coverage and balance of one window: clean, reasons. */
static bool judge(cJSON *w, unsigned expected)
{
    cJSON *stages = cJSON_GetObjectItem(w, "stages");
    cJSON *reasons = cJSON_AddArrayToObject(w, "reasons");
    cJSON *exp = cJSON_AddArrayToObject(w, "expected");
    bool clean = true;
    char m[160];

    for (int s = 0; s < RS_COUNT; s++) {
        if (!(expected & (1u << s)))
            continue;
        cJSON_AddItemToArray(exp, cJSON_CreateString(recon_stage_names[s]));
        const cJSON *st = cJSON_GetObjectItem(stages, recon_stage_names[s]);
        if (!st || cJSON_GetObjectItem(st, "n")->valuedouble <= 0) {
            snprintf(m, sizeof(m), "no events from %s in the window (silence is not health)",
                     recon_stage_names[s]);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(m));
            clean = false;
        }
    }
    cJSON *bal = cJSON_AddObjectToObject(w, "balance");
    double vo = 0;
    static const char *const vouts[] = { "valid", "invalid", "poison", "exhausted", "retrying" };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(vouts); i++)
        vo += outcome_n(stages, "validator", vouts[i]);
    cJSON_AddNumberToObject(bal, "published_minus_validator",
                            outcome_n(stages, "ingest", "published") - vo);
    double valid = outcome_n(stages, "validator", "valid");
    cJSON_AddNumberToObject(bal, "valid_minus_cache-feeder",
                            valid - outcome_n(stages, "cache-feeder", "cached") -
                                outcome_n(stages, "cache-feeder", "deleted") -
                                outcome_n(stages, "cache-feeder", "stale_skipped") -
                                outcome_n(stages, "cache-feeder", "rejected"));
    cJSON_AddNumberToObject(bal, "valid_minus_persister",
                            valid - outcome_n(stages, "persister", "persisted") -
                                outcome_n(stages, "persister", "stale_skipped") -
                                outcome_n(stages, "persister", "dead"));
    cJSON_AddBoolToObject(w, "clean", clean);
    return clean;
}

core_err_t recon_windows_json(PGconn *c, const recon_win_query *q, cJSON **out, char *errstr,
                              size_t errstr_size)
{
    char sql[600];
    unsigned expected = 0;
    int64_t from = recon_window_start(q->from_ms, q->window_ms);
    PGresult *r;
    core_err_t e;

    *out = NULL;
    if ((e = recon_expected_stages(c, q->schema, q->dataset, q->sinks, &expected, errstr,
                                   errstr_size)) != CORE_OK)
        return e;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dataset", q->dataset);
    cJSON_AddNumberToObject(o, "from", (double)q->from_ms);
    cJSON_AddNumberToObject(o, "to", (double)q->to_ms);
    cJSON_AddNumberToObject(o, "window_ms", (double)q->window_ms);
    cJSON *arr = cJSON_AddArrayToObject(o, "windows");

    snprintf(sql, sizeof(sql),
             "SELECT window_start, stage, outcome, n, bytes, late, agg::text FROM %s.windows "
             "WHERE dataset = $1 AND window_ms = $2 AND window_start >= $3 AND window_start < $4 "
             "ORDER BY window_start, stage, outcome", q->schema);
    if (!(r = query(c, sql, q, from, errstr, errstr_size)))
        goto fail;
    add_stages(arr, r, q->window_ms);
    PQclear(r);
    snprintf(sql, sizeof(sql),
             "SELECT window_start, hop, bucket, n FROM %s.window_latency WHERE dataset = $1 AND "
             "window_ms = $2 AND window_start >= $3 AND window_start < $4 "
             "ORDER BY window_start, hop, bucket", q->schema);
    if (!(r = query(c, sql, q, from, errstr, errstr_size)))
        goto fail;
    add_latency(arr, r, q->window_ms);
    PQclear(r);
    snprintf(sql, sizeof(sql),
             "SELECT window_start, state, version FROM %s.closings WHERE kind = 'window' AND "
             "subject = $1 AND window_ms = $2 AND window_start >= $3 AND window_start < $4",
             q->schema);
    if (!(r = query(c, sql, q, from, errstr, errstr_size)))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t start = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        cJSON *w;
        cJSON_ArrayForEach(w, arr)
        {
            if ((int64_t)cJSON_GetObjectItem(w, "start")->valuedouble != start)
                continue;
            cJSON_ReplaceItemInObject(w, "state", cJSON_CreateString(PQgetvalue(r, i, 1)));
            cJSON_SetNumberValue(cJSON_GetObjectItem(w, "version"), atoi(PQgetvalue(r, i, 2)));
        }
    }
    PQclear(r);
    bool all = true;
    cJSON *w;
    cJSON_ArrayForEach(w, arr)
    {
        if (!judge(w, expected))
            all = false;
    }
    cJSON_AddBoolToObject(o, "clean", all);
    *out = o;
    return CORE_OK;
fail:
    cJSON_Delete(o);
    return CORE_ERR_TRANSIENT;
}

char *recon_windows_text(const cJSON *o)
{
    core_strbuf b = { 0 };
    const cJSON *w;

    core_strbuf_addf(&b, "dataset %s, windows of %.0f ms: %s\n",
                     cJSON_GetObjectItem(o, "dataset")->valuestring,
                     cJSON_GetObjectItem(o, "window_ms")->valuedouble,
                     cJSON_IsTrue(cJSON_GetObjectItem(o, "clean")) ? "CLEAN" : "NOT CLEAN");
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "windows"))
    {
        const cJSON *st, *h, *r;
        const cJSON *stt = cJSON_GetObjectItem(w, "start_time");
        core_strbuf_addf(&b, "window %s (%s, v%.0f): %s\n",
                         cJSON_IsString(stt) ? stt->valuestring : "?",
                         cJSON_GetObjectItem(w, "state")->valuestring,
                         cJSON_GetObjectItem(w, "version")->valuedouble,
                         cJSON_IsTrue(cJSON_GetObjectItem(w, "clean")) ? "clean" : "NOT CLEAN");
        cJSON_ArrayForEach(st, cJSON_GetObjectItem(w, "stages"))
        {
            core_strbuf_addf(&b, "  %-12s n=%.0f bytes=%.0f late=%.0f\n", st->string,
                             cJSON_GetObjectItem(st, "n")->valuedouble,
                             cJSON_GetObjectItem(st, "bytes")->valuedouble,
                             cJSON_GetObjectItem(st, "late")->valuedouble);
        }
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(w, "latency"))
        {
            const cJSON *p50 = cJSON_GetObjectItem(h, "p50_ms"),
                        *p99 = cJSON_GetObjectItem(h, "p99_ms");
            core_strbuf_addf(&b, "  %-24s samples=%.0f p50<=%.1fms p99<=%.1fms unknown=%.0f\n",
                             h->string, cJSON_GetObjectItem(h, "samples")->valuedouble,
                             p50 ? p50->valuedouble : 0, p99 ? p99->valuedouble : 0,
                             cJSON_GetObjectItem(h, "unknown")->valuedouble);
        }
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(w, "reasons"))
            core_strbuf_addf(&b, "  UNCLEAN: %s\n", r->valuestring);
    }
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}
