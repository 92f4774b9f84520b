/* metrics.c — svc-recon's reconciliation metrics (metrics.h). */
#include "metrics.h"

#include "tributary/core_metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch_fig {
    char *batch;
    bool clean;
    int64_t records[RV_COUNT];
    int64_t disc[RV_COUNT][RS_COUNT];
} batch_fig;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static batch_fig figs[RECON_METRICS_BATCHES];
static size_t nfigs, next_slot; /* a ring once full: the oldest batch goes */

static core_metric_family_t *family(core_metric_kind_t kind, const char *name, const char *help,
                                    const char *const *labels)
{
    return core_metrics_family(core_metrics_global(), kind, name, help, labels, NULL, 0, NULL, 0);
}

/* Under lock: write the gauges from the table. */
static void publish(void)
{
    static const char *const l_v[] = { "verdict", NULL };
    static const char *const l_vs[] = { "verdict", "stage", NULL };
    static const char *const l_s[] = { "state", NULL };
    core_metric_family_t *fr = family(CORE_METRIC_GAUGE, "tributary_recon_records",
                                      "Records per verdict, over the batches reconciled", l_v);
    core_metric_family_t *fd = family(CORE_METRIC_GAUGE, "tributary_recon_discrepancies",
                                      "Discrepant records per verdict and stage", l_vs);
    core_metric_family_t *fb = family(CORE_METRIC_GAUGE, "tributary_recon_batches",
                                      "Batches reconciled, by state", l_s);
    int64_t rec[RV_COUNT] = { 0 }, disc[RV_COUNT][RS_COUNT] = { { 0 } }, clean = 0;

    for (size_t i = 0; i < nfigs; i++) {
        clean += figs[i].clean;
        for (int v = 0; v < RV_COUNT; v++) {
            rec[v] += figs[i].records[v];
            for (int s = 0; s < RS_COUNT; s++)
                disc[v][s] += figs[i].disc[v][s];
        }
    }
    for (int v = 0; fr && fd && v < RV_COUNT; v++) {
        core_metric_set(core_metrics_series1(fr, recon_verdict_names[v]), (double)rec[v]);
        if (!recon_verdict_is_discrepancy(v))
            continue;
        for (int s = 0; s < RS_COUNT; s++)
            core_metric_set(core_metrics_series2(fd, recon_verdict_names[v], recon_stage_names[s]),
                            (double)disc[v][s]);
    }
    if (fb) {
        core_metric_set(core_metrics_series1(fb, "clean"), (double)clean);
        core_metric_set(core_metrics_series1(fb, "unclean"), (double)((int64_t)nfigs - clean));
    }
}

int recon_metrics_reconciled(const recon_report *rep)
{
    int turned = RECON_TURNED_NONE;
    core_metric_family_t *fs = family(CORE_METRIC_HISTOGRAM, "tributary_recon_reconcile_seconds",
                                      "Time to reconcile one batch", NULL);
    if (fs)
        core_metric_observe(core_metrics_series(fs, NULL), rep->seconds);
    if (!rep->known)
        return turned;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < nfigs && strcmp(figs[i].batch, rep->batch) != 0)
        i++;
    if (i == nfigs) {
        char *b = strdup(rep->batch);
        if (!b) {
            pthread_mutex_unlock(&lock);
            return turned;
        }
        if (nfigs < RECON_METRICS_BATCHES) {
            i = nfigs++;
        } else {
            i = next_slot;
            next_slot = (next_slot + 1) % RECON_METRICS_BATCHES;
            free(figs[i].batch);
        }
        memset(&figs[i], 0, sizeof(figs[i]));
        figs[i].batch = b;
        figs[i].clean = true; /* a batch first seen unclean turns unclean */
    }
    if (figs[i].clean && !rep->clean)
        turned = RECON_TURNED_UNCLEAN;
    else if (!figs[i].clean && rep->clean)
        turned = RECON_TURNED_CLEAN;
    figs[i].clean = rep->clean;
    memcpy(figs[i].records, rep->counts, sizeof(figs[i].records));
    memset(figs[i].disc, 0, sizeof(figs[i].disc));
    for (size_t k = 0; k < rep->ndisc; k++) {
        const recon_record *r = &rep->disc[k];
        if (r->verdict >= 0 && r->verdict < RV_COUNT && r->stage >= 0 && r->stage < RS_COUNT)
            figs[i].disc[r->verdict][r->stage]++;
    }
    publish();
    pthread_mutex_unlock(&lock);
    return turned;
}

void recon_metrics_replayed(double records)
{
    core_metric_family_t *f = family(CORE_METRIC_COUNTER, "tributary_recon_replayed_records_total",
                                     "Records re-published to .raw by a replay", NULL);
    if (f)
        core_metric_add(core_metrics_series(f, NULL), records);
}

void recon_metrics_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nfigs; i++)
        free(figs[i].batch);
    nfigs = next_slot = 0;
    pthread_mutex_unlock(&lock);
}

core_err_t recon_metrics_windows(PGconn *c, const char *schema, int64_t window_ms, char *errstr,
                                 size_t errstr_size)
{
    static const char *const l_s[] = { "state", NULL };
    static const char *const states[] = { "open", "closed", "reopened" };
    core_metric_family_t *f = family(CORE_METRIC_GAUGE, "tributary_recon_windows",
                                     "Event-time windows with events, by state", l_s);
    double n[3] = { 0, 0, 0 };
    char sql[700], wms[24];
    const char *params[1] = { wms };

    snprintf(wms, sizeof(wms), "%" PRId64, window_ms);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(k.state, 'open'), count(*) FROM (SELECT DISTINCT dataset, "
             "window_start FROM %s.windows WHERE window_ms = $1) w LEFT JOIN %s.closings k ON "
             "k.kind = 'window' AND k.subject = w.dataset AND k.window_ms = $1::bigint AND "
             "k.window_start = w.window_start GROUP BY 1",
             schema, schema);
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        core_errstr(errstr, errstr_size, "postgres: %s", PQerrorMessage(c));
        errstr[strcspn(errstr, "\n")] = '\0';
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int i = 0; i < PQntuples(r); i++)
        for (int k = 0; k < 3; k++)
            if (strcmp(PQgetvalue(r, i, 0), states[k]) == 0)
                n[k] = strtod(PQgetvalue(r, i, 1), NULL);
    PQclear(r);
    for (int k = 0; f && k < 3; k++)
        core_metric_set(core_metrics_series1(f, states[k]), n[k]);
    return CORE_OK;
}
