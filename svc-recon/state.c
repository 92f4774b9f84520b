/* state.c — svc-recon's PostgreSQL state: connection and migrations
 * (state.h). The apply of a batch of audit events: state_apply.c. */
#include "state.h"
#include "state_int.h"
#include "event.h"
#include "method.h"
#include "window.h"

#include "tributary/core_audit.h"
#include "tributary/core_log.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Each migration, in order; "@S" stands for the schema. Never edit one that
 * has shipped: add the next. */
static const char *const migrations[] = {
    /* 1: events, aggregates, offsets, bad input */
    "CREATE TABLE @S.events ("
    " audit_partition int NOT NULL, audit_offset bigint NOT NULL,"
    " batch_id text NOT NULL, dataset text NOT NULL, stage text NOT NULL, outcome text NOT NULL,"
    " id text NOT NULL, key text, digest bytea, version bigint,"
    " src_topic text, src_partition int, src_offset bigint, line bigint, reason text,"
    " ts_ms bigint NOT NULL);"
    "CREATE INDEX events_batch ON @S.events (batch_id, dataset);"
    "CREATE TABLE @S.aggregates ("
    " batch_id text NOT NULL, dataset text NOT NULL, stage text NOT NULL, outcome text NOT NULL,"
    " n bigint NOT NULL, agg bytea NOT NULL, first_ts_ms bigint NOT NULL, last_ts_ms bigint NOT NULL,"
    " PRIMARY KEY (batch_id, dataset, stage, outcome));"
    "CREATE TABLE @S.offsets ("
    " topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,"
    " updated_ms bigint NOT NULL, PRIMARY KEY (topic, partition));"
    "CREATE TABLE @S.bad_events ("
    " audit_topic text NOT NULL, audit_partition int NOT NULL, audit_offset bigint NOT NULL,"
    " reason text NOT NULL, detail text, seen_ms bigint NOT NULL,"
    " PRIMARY KEY (audit_topic, audit_partition, audit_offset));",
    /* 2: each event's drill-down bucket and element prefix (event.h), so
     * PostgreSQL compares the stages bucket by bucket; rows of version 1
     * get them computed in SQL, as recon_bucket() and
     * recon_element_prefix() compute them */
    "ALTER TABLE @S.events ADD COLUMN bucket int, ADD COLUMN eh bigint;"
    "UPDATE @S.events SET"
    " bucket = (get_byte(sha256(convert_to(id, 'UTF8')), 0) << 2)"
    "        | (get_byte(sha256(convert_to(id, 'UTF8')), 1) >> 6),"
    " eh = ('x' || encode(substr(sha256(convert_to(id, 'UTF8') || '\\x00'::bytea"
    "        || coalesce(digest, decode(repeat('00', 32), 'hex'))), 1, 8), 'hex'))::bit(64)::bigint;"
    "ALTER TABLE @S.events ALTER COLUMN bucket SET NOT NULL, ALTER COLUMN eh SET NOT NULL;",
    /* the content digest of AuditEvent v2 (NULL for v1 events and where
     * the stage had no decodable record): what --verify-sinks compares the
     * sinks' stored state with */
    "ALTER TABLE @S.events ADD COLUMN content bytea;",
    /* event-time windows, latency histograms, watermarks (window.h);
     * closings and the hash-chained statements (statement.h) */
    "CREATE TABLE @S.windows ("
    " dataset text NOT NULL, window_ms bigint NOT NULL, window_start bigint NOT NULL,"
    " stage text NOT NULL, outcome text NOT NULL, n bigint NOT NULL, bytes bigint NOT NULL,"
    " late bigint NOT NULL, agg numeric NOT NULL, first_ts_ms bigint NOT NULL,"
    " last_ts_ms bigint NOT NULL,"
    " PRIMARY KEY (dataset, window_ms, window_start, stage, outcome));"
    "CREATE TABLE @S.window_latency ("
    " dataset text NOT NULL, window_ms bigint NOT NULL, window_start bigint NOT NULL,"
    " hop text NOT NULL, bucket int NOT NULL, n bigint NOT NULL,"
    " PRIMARY KEY (dataset, window_ms, window_start, hop, bucket));"
    "CREATE TABLE @S.watermarks ("
    " stage text NOT NULL, partition int NOT NULL, ts_ms bigint NOT NULL,"
    " PRIMARY KEY (stage, partition));"
    "CREATE TABLE @S.closings ("
    " kind text NOT NULL, subject text NOT NULL, window_ms bigint NOT NULL,"
    " window_start bigint NOT NULL, state text NOT NULL, version int NOT NULL,"
    " last_seq bigint, closed_ms bigint, reopened_ms bigint,"
    " PRIMARY KEY (kind, subject, window_ms, window_start));"
    "CREATE TABLE @S.statements ("
    " seq bigint PRIMARY KEY, kind text NOT NULL, subject text NOT NULL,"
    " window_ms bigint NOT NULL, window_start bigint NOT NULL, version int NOT NULL,"
    " clean boolean NOT NULL, created_ms bigint NOT NULL, body text NOT NULL,"
    " prev_hash bytea NOT NULL, hash bytea NOT NULL);",
    /* 5: the method each aggregate row was applied under (method.h);
     * rows before it were digests, the only method then */
    "ALTER TABLE @S.aggregates ADD COLUMN method text NOT NULL DEFAULT 'digests';",
    /* 6: method full: the .raw records kept (payload.h), and the retention
     * of each dataset set by PUT /retention */
    "CREATE TABLE @S.payloads ("
    " batch_id text NOT NULL, dataset text NOT NULL, id text NOT NULL, topic text NOT NULL,"
    " partition int NOT NULL, \"offset\" bigint NOT NULL, key bytea NOT NULL,"
    " value bytea NOT NULL, headers bytea NOT NULL, ts_ms bigint NOT NULL,"
    " kept_ms bigint NOT NULL, PRIMARY KEY (batch_id, dataset, id));"
    "CREATE INDEX payloads_kept ON @S.payloads (kept_ms);"
    "CREATE TABLE @S.retention ("
    " dataset text PRIMARY KEY, days int NOT NULL, updated_ms bigint NOT NULL);",
    /* 7: the key an UPDATE moved its record away from (AuditEvent v3's
     * old_key; NULL before it): --verify-sinks expects it absent */
    ("ALTER TABLE @S.events ADD COLUMN old_key text;"
     "CREATE INDEX events_old_key ON @S.events (old_key, dataset) WHERE old_key IS NOT NULL;"),
};

_Static_assert(CORE_ARRAY_SIZE(migrations) == RECON_SCHEMA_VERSION,
               "one migration per schema version");

bool recon_schema_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 63 || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static void pg_notice(void *arg, const char *message)
{
    char m[300];
    (void)arg;
    snprintf(m, sizeof(m), "%s", message);
    m[strcspn(m, "\n")] = '\0';
    core_log_debug("postgres notice", CLF_S("notice", m));
}

void recon_state_conn_error_(PGconn *c, const char *what, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", c ? PQerrorMessage(c) : "out of memory");
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres %s: %s", what, m[0] ? m : "no answer");
}

PGconn *recon_pg_connect(const recon_pg_opts *o, const char *app, char *errstr,
                         size_t errstr_size)
{
    const char *keys[8], *vals[8];
    int n = 0;
    PGconn *c;

    keys[n] = "dbname", vals[n++] = o->conninfo;
    if (o->password && *o->password)
        keys[n] = "password", vals[n++] = o->password;
    if (o->sslmode && *o->sslmode)
        keys[n] = "sslmode", vals[n++] = o->sslmode;
    if (o->sslrootcert && *o->sslrootcert)
        keys[n] = "sslrootcert", vals[n++] = o->sslrootcert;
    keys[n] = "application_name", vals[n++] = app ? app : "svc-recon";
    keys[n] = "connect_timeout", vals[n++] = "5";
    keys[n] = NULL, vals[n] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        recon_state_conn_error_(c, "connect", errstr, errstr_size);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_notice, NULL);
    return c;
}

/* Run sql (several statements allowed); CORE_OK or CORE_ERR_TRANSIENT. */
core_err_t recon_state_exec_(PGconn *c, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    core_err_t e = CORE_OK;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        recon_state_conn_error_(c, "query", errstr, errstr_size);
        e = CORE_ERR_TRANSIENT;
    }
    PQclear(r);
    return e;
}

/* sql with every "@S" replaced by the schema; malloc'd. */
static char *with_schema(const char *sql, const char *schema)
{
    core_strbuf b = { 0 };
    const char *p;

    while ((p = strstr(sql, "@S"))) {
        core_strbuf_addn(&b, sql, (size_t)(p - sql));
        core_strbuf_add(&b, schema);
        sql = p + 2;
    }
    core_strbuf_add(&b, sql);
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

static core_err_t exec_s(recon_state_t *st, const char *sql, char *errstr, size_t errstr_size)
{
    char *q = with_schema(sql, st->schema);
    core_err_t e;

    if (!q) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    e = recon_state_exec_(st->conn, q, errstr, errstr_size);
    free(q);
    return e;
}

/* The lock every writer of this schema takes for its transaction. */
core_err_t recon_state_lock_(recon_state_t *st, char *errstr, size_t errstr_size)
{
    return exec_s(st, "SELECT pg_advisory_xact_lock(hashtext('tributary_recon:@S'))", errstr,
                  errstr_size);
}

static core_err_t migrate(recon_state_t *st, char *errstr, size_t errstr_size)
{
    PGresult *r;
    int have = 0;
    char *q;

    if (recon_state_exec_(st->conn, "BEGIN", errstr, errstr_size) != CORE_OK)
        return CORE_ERR_TRANSIENT;
    if (recon_state_lock_(st, errstr, errstr_size) != CORE_OK ||
        exec_s(st,
               "CREATE SCHEMA IF NOT EXISTS @S;"
               "CREATE TABLE IF NOT EXISTS @S.schema_version ("
               " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
               errstr, errstr_size) != CORE_OK)
        goto fail;
    q = with_schema("SELECT coalesce(max(version), 0) FROM @S.schema_version", st->schema);
    r = q ? PQexec(st->conn, q) : NULL;
    free(q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        recon_state_conn_error_(st->conn, "query", errstr, errstr_size);
        PQclear(r);
        goto fail;
    }
    have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (have > RECON_SCHEMA_VERSION) {
        core_errstr(errstr, errstr_size,
                    "postgres: schema %s is at version %d, newer than this svc-recon's %d",
                    st->schema, have, RECON_SCHEMA_VERSION);
        recon_state_exec_(st->conn, "ROLLBACK", NULL, 0);
        return CORE_ERR_INVALID;
    }
    for (int v = have + 1; v <= RECON_SCHEMA_VERSION; v++) {
        char ins[160];
        if (exec_s(st, migrations[v - 1], errstr, errstr_size) != CORE_OK)
            goto fail;
        snprintf(ins, sizeof(ins), "INSERT INTO @S.schema_version (version) VALUES (%d)", v);
        if (exec_s(st, ins, errstr, errstr_size) != CORE_OK)
            goto fail;
        core_log_info("state schema migrated", CLF_S("schema", st->schema), CLF_I("version", v));
    }
    return recon_state_exec_(st->conn, "COMMIT", errstr, errstr_size);
fail:
    recon_state_exec_(st->conn, "ROLLBACK", NULL, 0);
    return CORE_ERR_TRANSIENT;
}

core_err_t recon_state_ensure_conn_(recon_state_t *st, char *errstr, size_t errstr_size)
{
    if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
        return CORE_OK;
    PQfinish(st->conn);
    st->conn = recon_pg_connect(&st->o.pg, "svc-recon", errstr, errstr_size);
    return st->conn ? CORE_OK : CORE_ERR_TRANSIENT;
}

recon_state_t *recon_state_open(const recon_state_opts *o, char *errstr, size_t errstr_size)
{
    recon_state_t *st;

    if (!recon_schema_name_ok(o->pg.schema)) {
        core_errstr(errstr, errstr_size, "state schema '%s' is not a plain lower-case name",
                    o->pg.schema ? o->pg.schema : "");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (!st) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    st->o = *o;
    st->ids.cat = o->cat; /* NULL (tests without one): the catalogue's 201 and 202 */
    snprintf(st->schema, sizeof(st->schema), "%s", o->pg.schema);
    st->audit_topic = strdup(o->audit_topic ? o->audit_topic : CORE_AUDIT_TOPIC);
    st->lat = recon_lat_cache_new();
    if (!st->audit_topic || !st->lat) {
        core_errstr(errstr, errstr_size, "out of memory");
        recon_state_free(st);
        return NULL;
    }
    if (recon_state_ensure_conn_(st, errstr, errstr_size) != CORE_OK ||
        migrate(st, errstr, errstr_size) != CORE_OK) {
        recon_state_free(st);
        return NULL;
    }
    return st;
}

void recon_state_free(recon_state_t *st)
{
    if (!st)
        return;
    PQfinish(st->conn);
    free(st->audit_topic);
    recon_lat_cache_free(st->lat);
    free(st);
}

PGconn *recon_state_conn(recon_state_t *st)
{
    return st->conn;
}

const char *recon_state_schema(const recon_state_t *st)
{
    return st->schema;
}
