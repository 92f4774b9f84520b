/* report.c — JSON and text renderings of a recon_report. */
#include "report.h"
#include "method.h"

#include "tributary/core_common.h"

#include <inttypes.h>
#include <stdlib.h>

cJSON *recon_record_json(const recon_record *r)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", r->id);
    if (r->key)
        cJSON_AddStringToObject(o, "key", r->key);
    else
        cJSON_AddNullToObject(o, "key");
    cJSON_AddStringToObject(o, "dataset", r->dataset);
    cJSON_AddStringToObject(o, "verdict", recon_verdict_names[r->verdict]);
    if (r->stage >= 0 && r->stage < RS_COUNT)
        cJSON_AddStringToObject(o, "stage", recon_stage_names[r->stage]);
    else
        cJSON_AddNullToObject(o, "stage");
    if (r->sink)
        cJSON_AddStringToObject(o, "sink", r->sink);
    if (r->detail)
        cJSON_AddStringToObject(o, r->verdict == RV_REJECTED ? "reason" : "detail", r->detail);
    if (r->went)
        cJSON_AddStringToObject(o, "went", r->went);
    return o;
}

static cJSON *counts_json(const int64_t *counts)
{
    cJSON *o = cJSON_CreateObject();
    for (int v = 0; o && v < RV_COUNT; v++)
        cJSON_AddNumberToObject(o, recon_verdict_names[v], (double)counts[v]);
    return o;
}

static cJSON *totals_json(const recon_totals *t)
{
    cJSON *o = cJSON_CreateObject(), *sinks, *checks;

    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "lines", (double)t->lines);
    cJSON_AddNumberToObject(o, "format_errors", (double)t->format_errors);
    cJSON_AddNumberToObject(o, "published", (double)t->published);
    cJSON_AddNumberToObject(o, "valid", (double)t->valid);
    cJSON_AddNumberToObject(o, "invalid", (double)t->invalid);
    cJSON_AddNumberToObject(o, "poison", (double)t->poison);
    cJSON_AddNumberToObject(o, "exhausted", (double)t->exhausted);
    cJSON_AddNumberToObject(o, "retrying", (double)t->retrying);
    sinks = cJSON_AddObjectToObject(o, "sinks");
    for (int s = 0; sinks && s < RS_COUNT; s++) {
        if (!t->sink_expected[s])
            continue;
        cJSON *k = cJSON_AddObjectToObject(sinks, recon_stage_names[s]);
        if (k) {
            cJSON_AddNumberToObject(k, "handled", (double)t->sink_handled[s]);
            cJSON_AddNumberToObject(k, "refused", (double)t->sink_refused[s]);
        }
    }
    checks = cJSON_AddObjectToObject(o, "checks");
    if (checks) {
        cJSON_AddBoolToObject(checks, "lines_eq_format_errors_plus_published", t->lines_ok);
        cJSON_AddBoolToObject(checks, "published_eq_validator_outcomes", t->published_ok);
        cJSON_AddBoolToObject(checks, "valid_eq_each_sink", t->sinks_ok);
    }
    return o;
}

/* --verify-sinks: one object per sink checked for a dataset. */
static cJSON *checks_json(const recon_report *r)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; a && i < r->nchecks; i++) {
        const recon_sink_check *k = &r->checks[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "dataset", k->dataset);
        cJSON_AddStringToObject(o, "sink", k->sink);
        cJSON_AddStringToObject(o, "expected_because", k->why);
        cJSON_AddBoolToObject(o, "verified", k->error == NULL);
        cJSON_AddNumberToObject(o, "records", (double)k->expected);
        cJSON_AddNumberToObject(o, "findings", (double)k->findings);
        cJSON_AddNumberToObject(o, "buckets", (double)k->buckets);
        cJSON_AddNumberToObject(o, "buckets_differ", (double)k->buckets_differ);
        cJSON_AddNumberToObject(o, "rows_fetched", (double)k->rows_fetched);
        if (k->error)
            cJSON_AddStringToObject(o, "error", k->error);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* What a dataset's method can and cannot say (method.h). */
static const char *method_limit(int m)
{
    return m == RM_COUNTS ? "counts only: a stage whose count differs is named with the "
                            "difference; the records cannot be named (no ids are kept)"
           : m == RM_IDS  ? "ids only: missing, duplicated and unexpected records are named; "
                            "an altered record is not detectable (no digests are kept)"
                          : NULL;
}

static void method_json(cJSON *d, const recon_dataset_result *ds)
{
    const char *limit = method_limit(ds->method);

    cJSON_AddStringToObject(d, "method",
                            ds->method >= 0 && ds->method < RM_COUNT
                                ? recon_method_names[ds->method] : "?");
    if (limit)
        cJSON_AddStringToObject(d, "method_limit", limit);
    if (ds->method != RM_COUNTS)
        return;
    cJSON_AddBoolToObject(d, "count_differs", ds->count_differs);
    cJSON *a = cJSON_AddArrayToObject(d, "count_differences");
    for (int s = 0; a && s < RS_COUNT; s++) {
        if (ds->count_seen[s] == ds->count_expected[s])
            continue;
        cJSON *x = cJSON_CreateObject();
        if (!x)
            return;
        cJSON_AddStringToObject(x, "stage", recon_stage_names[s]);
        cJSON_AddNumberToObject(x, "expected", (double)ds->count_expected[s]);
        cJSON_AddNumberToObject(x, "counted", (double)ds->count_seen[s]);
        cJSON_AddNumberToObject(x, "difference",
                                (double)(ds->count_seen[s] - ds->count_expected[s]));
        cJSON_AddItemToArray(a, x);
    }
}

cJSON *recon_report_json(const recon_report *r)
{
    cJSON *o = cJSON_CreateObject(), *a, *bad;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "batch", r->batch);
    cJSON_AddBoolToObject(o, "known", r->known);
    cJSON_AddBoolToObject(o, "clean", r->clean);
    cJSON_AddItemToObject(o, "counts", counts_json(r->counts));
    a = cJSON_AddArrayToObject(o, "datasets");
    for (size_t i = 0; a && i < r->nds; i++) {
        cJSON *d = cJSON_CreateObject();
        if (!d)
            break;
        cJSON_AddStringToObject(d, "dataset", r->ds[i].dataset);
        method_json(d, &r->ds[i]);
        cJSON_AddBoolToObject(d, "drilled_down", r->ds[i].drilled);
        cJSON_AddNumberToObject(d, "buckets_drilled", r->ds[i].buckets_drilled);
        cJSON_AddItemToObject(d, "counts", counts_json(r->ds[i].counts));
        cJSON_AddItemToObject(d, "totals", totals_json(&r->ds[i].t));
        cJSON_AddItemToArray(a, d);
    }
    a = cJSON_AddArrayToObject(o, "discrepancies");
    for (size_t i = 0; a && i < r->ndisc; i++)
        cJSON_AddItemToArray(a, recon_record_json(&r->disc[i]));
    a = cJSON_AddArrayToObject(o, "rejected");
    for (size_t i = 0; a && i < r->nrejected; i++)
        cJSON_AddItemToArray(a, recon_record_json(&r->rejected[i]));
    cJSON_AddBoolToObject(o, "rejected_truncated", r->rejected_truncated);
    bad = cJSON_AddObjectToObject(o, "bad_input");
    if (bad) {
        cJSON_AddNumberToObject(bad, "total", (double)r->bad_total);
        for (int k = 0; k < 3; k++)
            cJSON_AddNumberToObject(bad, recon_bad_reasons[k], (double)r->bad[k]);
    }
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    if (r->verified) {
        cJSON_AddItemToObject(o, "sinks_verified", checks_json(r));
        cJSON_AddNumberToObject(o, "verify_seconds", r->verify_seconds);
    }
    return o;
}

static void list_text(core_strbuf *b, const char *title, const recon_record *v, size_t n,
                      size_t max)
{
    if (!n)
        return;
    core_strbuf_addf(b, "%s (%zu):\n", title, n);
    for (size_t i = 0; i < n && i < max; i++) {
        const recon_record *r = &v[i];
        core_strbuf_addf(b, "  %-10s %-12s%s%s %s  id=%s key=%s%s%s%s%s\n",
                         recon_verdict_names[r->verdict],
                         r->stage >= 0 && r->stage < RS_COUNT ? recon_stage_names[r->stage] : "-",
                         r->sink ? " sink=" : "", r->sink ? r->sink : "",
                         r->dataset, r->id, r->key ? r->key : "-", r->detail ? "  " : "",
                         r->detail ? r->detail : "", r->went ? " -> " : "",
                         r->went ? r->went : "");
    }
    if (n > max)
        core_strbuf_addf(b, "  ... %zu more (--json lists them all)\n", n - max);
}

char *recon_report_text(const recon_report *r, size_t max_list)
{
    core_strbuf b = { 0 };

    core_strbuf_addf(&b, "batch %s: %s\n", r->batch,
                     !r->known ? "no audit event of this batch"
                     : r->clean ? "CLEAN" : "NOT CLEAN");
    core_strbuf_add(&b, "verdicts:");
    for (int v = 0; v < RV_COUNT; v++)
        core_strbuf_addf(&b, " %s=%" PRId64, recon_verdict_names[v], r->counts[v]);
    core_strbuf_add(&b, "\n");
    for (size_t i = 0; i < r->nds; i++) {
        const recon_totals *t = &r->ds[i].t;
        core_strbuf_addf(&b,
                         "dataset %s%s: lines %" PRId64 " = format errors %" PRId64
                         " + published %" PRId64 " [%s]; published = valid %" PRId64
                         " + invalid %" PRId64 " + poison %" PRId64 " + exhausted %" PRId64
                         " + retrying %" PRId64 " [%s]",
                         r->ds[i].dataset, r->ds[i].drilled ? " (drilled down to ids)" : "",
                         t->lines, t->format_errors, t->published, t->lines_ok ? "ok" : "MISMATCH",
                         t->valid, t->invalid, t->poison, t->exhausted, t->retrying,
                         t->published_ok ? "ok" : "MISMATCH");
        for (int s = 0; s < RS_COUNT; s++)
            if (t->sink_expected[s])
                core_strbuf_addf(&b, "; %s %" PRId64 " + refused %" PRId64, recon_stage_names[s],
                                 t->sink_handled[s], t->sink_refused[s]);
        core_strbuf_addf(&b, " [%s]\n", t->sinks_ok ? "ok" : "MISMATCH");
        const recon_dataset_result *ds = &r->ds[i];
        if (method_limit(ds->method))
            core_strbuf_addf(&b, "  method %s: %s\n", recon_method_names[ds->method],
                             method_limit(ds->method));
        for (int s = 0; ds->method == RM_COUNTS && s < RS_COUNT; s++)
            if (ds->count_seen[s] != ds->count_expected[s])
                core_strbuf_addf(&b, "  count differs at %s: %" PRId64 " counted, %" PRId64
                                     " expected (%+" PRId64 ")\n",
                                 recon_stage_names[s], ds->count_seen[s],
                                 ds->count_expected[s],
                                 ds->count_seen[s] - ds->count_expected[s]);
    }
    for (size_t i = 0; r->verified && i < r->nchecks; i++) {
        const recon_sink_check *k = &r->checks[i];
        if (k->error)
            core_strbuf_addf(&b, "sink %s for %s (%s): NOT VERIFIED: %s\n", k->sink, k->dataset,
                             k->why, k->error);
        else
            core_strbuf_addf(&b,
                             "sink %s for %s (%s): %" PRIu64 " records checked, %" PRIu64
                             " findings (%" PRIu64 " of %" PRIu64 " buckets differ)\n",
                             k->sink, k->dataset, k->why, k->expected, k->findings,
                             k->buckets_differ, k->buckets);
    }
    list_text(&b, "discrepancies", r->disc, r->ndisc, max_list);
    list_text(&b, "rejected", r->rejected, r->nrejected, max_list);
    if (r->bad_total)
        core_strbuf_addf(&b,
                         "bad audit input (all batches): %" PRId64 " (malformed %" PRId64
                         ", unknown dataset %" PRId64 ", future timestamp %" PRId64 ")\n",
                         r->bad_total, r->bad[0], r->bad[1], r->bad[2]);
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}
