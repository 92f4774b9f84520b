/* state_int.h — what state.c (connection, migrations) and state_apply.c
 * (a batch of audit events in one transaction) share. Private to svc-recon. */
#ifndef SVC_RECON_STATE_INT_H
#define SVC_RECON_STATE_INT_H

#include "state.h"
#include "event.h"
#include "window.h"

#include "tributary/core_common.h"

#include <libpq-fe.h>

struct recon_state {
    recon_state_opts o;
    char schema[64];
    char *audit_topic;
    PGconn *conn;
    recon_lat_cache *lat; /* window.h: the latency cache */
    recon_audit_ids ids;  /* which schema id is which AuditEvent layout */
};

/* errstr: "postgres <what>: <the connection's message>", one line. */
void recon_state_conn_error_(PGconn *c, const char *what, char *errstr, size_t errstr_size);
/* Run sql (several statements allowed); CORE_OK or CORE_ERR_TRANSIENT. */
core_err_t recon_state_exec_(PGconn *c, const char *sql, char *errstr, size_t errstr_size);
/* The lock every writer of this schema takes for its transaction. */
core_err_t recon_state_lock_(recon_state_t *st, char *errstr, size_t errstr_size);
/* The state's connection, made again when it is not OK. */
core_err_t recon_state_ensure_conn_(recon_state_t *st, char *errstr, size_t errstr_size);

#endif
