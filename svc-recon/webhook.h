/* webhook.h — svc-recon's alerts: a JSON POST to alert.webhook.url when a
 * batch's reconciliation turns unclean (first seen unclean, or clean before)
 * and when it turns clean again (after a replay):
 *
 *   {"event":"batch.unclean"|"batch.clean","service":"svc-recon","batch":ID,
 *    "clean":bool,"counts":{verdict:n},"discrepancies":n,"ts_ms":ms}
 *
 * and when a batch or a window closes on a changed verdict (statement.h):
 *
 *   {"event":"<kind>.closed.unclean"|"<kind>.closed.clean","service":"svc-recon",
 *    "kind":"batch"|"window","subject":ID or DATASET@START,"version":n,
 *    "clean":bool,"counts":{verdict:n} (the statement's, when it has them),"ts_ms":ms}
 *
 * Sent from a thread of its own (a slow receiver never holds up the API),
 * through core_httpc; a 5xx, a timeout or a refused connection is retried
 * with backoff (200 ms doubling, at most alert.webhook.attempts attempts),
 * a 4xx is not. Each failed attempt is logged (warn) and counted in
 * tributary_recon_webhook_attempts_total{result="failed"}; an alert given up
 * is logged (error) and counted in tributary_recon_webhooks_total{result=
 * "failed"} (sent ones under "sent"). At most 1,000 alerts wait; more are
 * dropped, counted as "dropped". */
#ifndef SVC_RECON_WEBHOOK_H
#define SVC_RECON_WEBHOOK_H

#include "reconcile.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct recon_webhook recon_webhook;

/* url NULL or "": no webhook (NULL returned, err empty). */
recon_webhook *recon_webhook_new(const char *url, int attempts, int timeout_ms, char *err,
                                 size_t errsize);
/* Queue an alert for the batch (event "batch.unclean" or "batch.clean"). NULL w: nothing. */
void recon_webhook_batch(recon_webhook *w, const char *event, const recon_report *rep);
/* Queue an alert for a statement (statement.h) of kind "batch" or "window"
 * whose verdict changed; verdict: the statement's verdict object (its
 * "counts" go along). NULL w: nothing. */
void recon_webhook_closed(recon_webhook *w, const char *kind, const char *subject, int version,
                          bool clean, const cJSON *verdict);
/* Send what is queued (bounded by the attempts), stop, free. */
void recon_webhook_free(recon_webhook *w);

#endif
