/* metrics.h — svc-recon's reconciliation metrics on /metrics:
 *
 *   tributary_recon_reconcile_seconds            histogram, one reconciliation
 *   tributary_recon_records{verdict}             gauge: records per verdict
 *   tributary_recon_discrepancies{verdict,stage} gauge: discrepant records
 *   tributary_recon_batches{state}               gauge: clean / unclean batches
 *   tributary_recon_replayed_records_total       counter: records re-published
 *   tributary_recon_windows{state}               gauge: windows with events, open /
 *                                                closed / reopened (set by the daemon's
 *                                                closing tick)
 *   (consume.h: tributary_recon_audit_lag_seconds, _audit_lag_messages)
 *
 * The gauges sum, over the batches this process has reconciled (the most
 * recent RECON_METRICS_BATCHES of them), each batch's latest figures: a
 * batch reconciled again replaces its previous figures, so a batch made
 * clean by a replay moves from unclean to clean. Thread-safe. */
#ifndef SVC_RECON_METRICS_H
#define SVC_RECON_METRICS_H

#include "reconcile.h"

#include "tributary/core_common.h"

#include <libpq-fe.h>

#define RECON_METRICS_BATCHES 1000

/* What a reconciliation changed about its batch's state. */
enum { RECON_TURNED_NONE, RECON_TURNED_UNCLEAN, RECON_TURNED_CLEAN };
/* Record the batch's figures. @returns RECON_TURNED_UNCLEAN when the batch
 * is unclean and was clean or not seen before, RECON_TURNED_CLEAN when it
 * was unclean and is clean now, else RECON_TURNED_NONE. */
int recon_metrics_reconciled(const recon_report *rep);
void recon_metrics_replayed(double records);
/* Set tributary_recon_windows{state} from the state's windows and
 * closings. @returns CORE_OK, or CORE_ERR_TRANSIENT with errstr. */
core_err_t recon_metrics_windows(PGconn *c, const char *schema, int64_t window_ms, char *errstr,
                                 size_t errstr_size);
/* Free the batch table (at exit). */
void recon_metrics_free(void);

#endif
