/* webhook.c — alerts to a webhook (webhook.h). */
#include "webhook.h"

#include "tributary/core_common.h"
#include "tributary/core_httpc.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_retry.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 1000

struct recon_webhook {
    char *url;
    int attempts, timeout_ms;
    core_httpc_t *http;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *q[QUEUE_MAX];
    size_t head, n;
    bool stop;
    core_metric_t *m_sent, *m_failed, *m_dropped, *m_attempt_failed;
};

/* One alert: its attempts with backoff; true when the receiver took it. */
static bool deliver(recon_webhook *w, const char *body)
{
    core_backoff bo = { 200, 5000, 2.0, 0.2, w->attempts };

    for (int attempt = 1;; attempt++) {
        core_httpc_req r = { 0 };
        r.method = "POST";
        r.url = w->url;
        r.body = body;
        r.body_len = strlen(body);
        core_httpc_perform(w->http, &r, 1);
        bool ok = r.err == CORE_OK && r.status >= 200 && r.status < 300;
        bool again = !ok && (r.err != CORE_OK || r.status >= 500 || r.status == 429);
        if (!ok) {
            core_metric_inc(w->m_attempt_failed);
            core_log_warn("webhook: attempt failed", CLF_I("attempt", attempt),
                          CLF_I("status", r.status),
                          CLF_S("reason", r.err != CORE_OK ? r.errstr : "HTTP status"));
        }
        core_httpc_req_clear(&r);
        if (ok)
            return true;
        if (!again || core_backoff_exhausted(&bo, attempt + 1))
            return false;
        int64_t ms = core_backoff_delay_ms(&bo, attempt);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static void *run(void *arg)
{
    recon_webhook *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->n && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        if (!w->n)
            break;
        char *body = w->q[w->head];
        w->head = (w->head + 1) % QUEUE_MAX;
        w->n--;
        pthread_mutex_unlock(&w->lock);
        if (deliver(w, body)) {
            core_metric_inc(w->m_sent);
        } else {
            core_metric_inc(w->m_failed);
            core_log_error("webhook: alert given up", CLF_I("attempts", w->attempts),
                           CLF_S("alert", body));
        }
        free(body);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

recon_webhook *recon_webhook_new(const char *url, int attempts, int timeout_ms, char *err,
                                 size_t errsize)
{
    static const char *const l[] = { "result", NULL };
    core_httpc_opts ho = { 0 };
    recon_webhook *w;

    *err = '\0';
    if (!url || !*url)
        return NULL;
    if (!(w = calloc(1, sizeof(*w))) || !(w->url = strdup(url))) {
        free(w);
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    w->attempts = attempts > 0 ? attempts : 1;
    w->timeout_ms = timeout_ms;
    ho.max_concurrency = 1;
    ho.timeout_ms = timeout_ms;
    if (!(w->http = core_httpc_new(&ho, err, errsize))) {
        free(w->url);
        free(w);
        return NULL;
    }
    core_metric_family_t *f = core_metrics_family(
        core_metrics_global(), CORE_METRIC_COUNTER, "tributary_recon_webhooks_total",
        "Alerts to the webhook, by result (sent, failed, dropped)", l, NULL, 0, NULL, 0);
    core_metric_family_t *fa = core_metrics_family(
        core_metrics_global(), CORE_METRIC_COUNTER, "tributary_recon_webhook_attempts_total",
        "Webhook attempts that failed (each retry counts)", l, NULL, 0, NULL, 0);
    w->m_sent = f ? core_metrics_series1(f, "sent") : NULL;
    w->m_failed = f ? core_metrics_series1(f, "failed") : NULL;
    w->m_dropped = f ? core_metrics_series1(f, "dropped") : NULL;
    w->m_attempt_failed = fa ? core_metrics_series1(fa, "failed") : NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        snprintf(err, errsize, "webhook: cannot start its thread");
        core_httpc_free(w->http);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->url);
        free(w);
        return NULL;
    }
    return w;
}

/* Queue the alert o (deleted here); what: its batch or subject, for the log. */
static void enqueue(recon_webhook *w, cJSON *o, const char *what)
{
    char *body = cJSON_PrintUnformatted(o);

    cJSON_Delete(o);
    if (!body) {
        core_metric_inc(w->m_dropped);
        return;
    }
    pthread_mutex_lock(&w->lock);
    if (w->n == QUEUE_MAX || w->stop) {
        pthread_mutex_unlock(&w->lock);
        core_metric_inc(w->m_dropped);
        core_log_error("webhook: queue full, alert dropped", CLF_S("subject", what));
        free(body);
        return;
    }
    w->q[(w->head + w->n) % QUEUE_MAX] = body;
    w->n++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void recon_webhook_batch(recon_webhook *w, const char *event, const recon_report *rep)
{
    if (!w)
        return;
    cJSON *o = cJSON_CreateObject(), *c;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "service", "svc-recon");
    cJSON_AddStringToObject(o, "batch", rep->batch);
    cJSON_AddBoolToObject(o, "clean", rep->clean);
    c = cJSON_AddObjectToObject(o, "counts");
    for (int v = 0; c && v < RV_COUNT; v++)
        cJSON_AddNumberToObject(c, recon_verdict_names[v], (double)rep->counts[v]);
    cJSON_AddNumberToObject(o, "discrepancies", (double)rep->ndisc);
    cJSON_AddNumberToObject(o, "ts_ms", (double)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    enqueue(w, o, rep->batch);
}

void recon_webhook_closed(recon_webhook *w, const char *kind, const char *subject, int version,
                          bool clean, const cJSON *verdict)
{
    char event[64];
    struct timespec now;

    if (!w)
        return;
    cJSON *o = cJSON_CreateObject();
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(verdict, "counts");
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(event, sizeof(event), "%s.closed.%s", kind, clean ? "clean" : "unclean");
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "service", "svc-recon");
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "subject", subject);
    cJSON_AddNumberToObject(o, "version", version);
    cJSON_AddBoolToObject(o, "clean", clean);
    if (cJSON_IsObject(counts))
        cJSON_AddItemToObject(o, "counts", cJSON_Duplicate(counts, true));
    cJSON_AddNumberToObject(o, "ts_ms", (double)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    enqueue(w, o, subject);
}

void recon_webhook_free(recon_webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    core_httpc_free(w->http);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->url);
    free(w);
}
