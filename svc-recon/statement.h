/* statement.h — batches and windows that close, their verdicts written as
 * hash-chained statements, and the offline check of the chain.
 *
 * Closing. A batch (its last event time) or a window (its end) closes when
 * every expected stage's watermark (winreport.h: ingest, validator, the
 * expected sinks; a stage's watermark is the oldest of its audit
 * partitions' newest event times) has passed the end plus grace.ms — or,
 * when the pipeline has gone quiet, once the wall clock has passed the end
 * plus grace.ms plus close.idle.ms: a stage that never reports does not
 * keep a window open for ever, it closes it unclean (silence is never
 * health). The verdict (the batch's report, report.h; the window's
 * verdict, winreport.h) is then fixed in a statement; a late event that
 * falls in a closed batch or window reopens it (window.h), and the next
 * close writes an amended statement (version + 1, `amends` naming the
 * statement it replaces), with a warning in the log. A closing that fixes
 * an unclean verdict (the first statement, or an amendment of a clean one)
 * and an amendment that turns an unclean statement clean (after a replay)
 * each send a webhook alert (webhook.h: "<kind>.closed.unclean",
 * "<kind>.closed.clean").
 *
 * Statements (table statements) are numbered 1, 2, ... with no gap; each
 * carries prev_hash, the hash of the one before (32 zero bytes for the
 * first), and hash = SHA-256 of
 *   "tributary-recon statement v1\n" seq "\n" kind "\n" subject "\n"
 *   window_ms "\n" window_start "\n" version "\n" clean(0|1) "\n"
 *   created_ms "\n" hex(prev_hash) "\n" body
 * (numbers in decimal), so an edited, removed or reordered statement breaks
 * the chain at that link. The newest hash (the head) is what an auditor
 * keeps: it also covers the last statement. */
#ifndef SVC_RECON_STATEMENT_H
#define SVC_RECON_STATEMENT_H

#include "reconcile.h"

#include "tributary/core_common.h"

#include <libpq-fe.h>

struct recon_webhook;

typedef struct recon_close_opts {
    const char *schema;
    recon_reconcile_opts rec;   /* also: the expected sinks */
    int64_t window_ms, grace_ms, idle_ms;
    int64_t now_ms;             /* 0: the wall clock */
    bool batches;               /* close due batches */
    const char *only_batch;     /* ... this one only (when due); NULL: all due */
    bool windows;               /* close due windows */
    struct recon_webhook *webhook; /* alerts on a change of verdict (webhook.h); NULL: none */
} recon_close_opts;

typedef struct recon_close_stats {
    int batches, windows;       /* statements written */
    int unclean, amended;
} recon_close_stats;

/**
 * @brief Close every batch and window that is due, one statement each.
 * Holds recon's state lock (state.h) while it reconciles and writes, so no
 * event is applied meanwhile.
 * @returns CORE_OK; CORE_ERR_TRANSIENT with errstr; CORE_ERR_NOMEM.
 */
core_err_t recon_close_due(PGconn *c, const recon_close_opts *o, recon_close_stats *stats,
                           char *errstr, size_t errstr_size);

typedef struct recon_chain_result {
    int64_t statements;         /* read */
    bool ok;
    int64_t broken_seq;         /* the first broken link (when !ok) */
    char broken_subject[200];   /* its kind and subject */
    char reason[200];
    char head[65];              /* hex hash of the last statement (when ok) */
} recon_chain_result;

/**
 * @brief Check the chain from the first statement: numbering, each
 * prev_hash, each hash recomputed.
 * @returns CORE_OK (see res->ok); CORE_ERR_TRANSIENT with errstr.
 */
core_err_t recon_chain_verify(PGconn *c, const char *schema, recon_chain_result *res,
                              char *errstr, size_t errstr_size);

#endif
