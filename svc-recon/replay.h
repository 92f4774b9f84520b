/* replay.h — re-publish a batch's missing records to their dataset's .raw.
 *
 * The records to replay are the batch's discrepancies of one verdict
 * (missing by default; altered also makes sense: the original bytes again)
 * as reconcile.h names them now. A dataset of method full has them in
 * recon's own state (payload.h): those are taken from there first
 * ("source": "state"), so a replay works after .raw's retention dropped
 * them; the others are found on the topic its ingest
 * event names (the dataset's .raw, else "<dataset>.raw") while the topic
 * still holds it: every partition is read from the batch's first ingest
 * timestamp minus a minute (offsets for times) to its high watermark at the
 * start of the replay, and the records whose tb.id header is wanted and
 * whose tb.batch is the batch are kept (the first copy of each). Each is
 * produced again to the same topic, same key and value and every header it
 * had (tb.id, tb.batch, tb.ingest.ts, ...), plus tb.replay: the replay's
 * id. Same key, same partition: the order of a key holds; the version
 * guards of the sinks make a record applied twice harmless. A record the
 * topic no longer holds is named in not_found (retention took it).
 *
 * Dry run: everything but the produce. */
#ifndef SVC_RECON_REPLAY_H
#define SVC_RECON_REPLAY_H

#include "reconcile.h"

#include "tributary/core_config.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>

typedef struct recon_replay_opts {
    const core_config_t *cfg;             /* kafka.* properties */
    const char *topic_prefix;             /* a dataset's .raw when no ingest event names it */
    int verdict;                          /* RV_MISSING or RV_ALTERED */
    bool dry_run;
    int timeout_ms;                       /* reading and producing; 0: 60 s */
} recon_replay_opts;

/**
 * @brief Replay the batch's records of o->verdict.
 * @returns CORE_OK and *out: {"replay_id", "batch", "verdict", "dry_run",
 *          "wanted", "found", "published", "records": [{id, dataset, topic,
 *          partition, offset}], "not_found": [id...]} (cJSON_Delete);
 *          CORE_ERR_NOTFOUND (no event of the batch); CORE_ERR_TRANSIENT
 *          (PostgreSQL or Kafka failed) with errstr.
 */
int recon_replay_batch(PGconn *c, const recon_reconcile_opts *ro, const recon_replay_opts *o,
                       const char *batch, cJSON **out, char *errstr, size_t errstr_size);

#endif
