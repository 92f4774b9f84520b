/* state.c — svc-recon's PostgreSQL state: connection, migrations, and the
 * one-transaction apply of a batch of audit events (state.h). */
#include "state.h"
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

struct recon_state {
    recon_state_opts o;
    char schema[64];
    char *audit_topic;
    PGconn *conn;
    recon_lat_cache *lat; /* window.h: the latency cache */
    recon_audit_ids ids;  /* which schema id is which AuditEvent layout */
};

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

static void conn_error(PGconn *c, const char *what, char *errstr, size_t errstr_size)
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
        conn_error(c, "connect", errstr, errstr_size);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_notice, NULL);
    return c;
}

/* Run sql (several statements allowed); CORE_OK or CORE_ERR_TRANSIENT. */
static core_err_t exec(PGconn *c, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    core_err_t e = CORE_OK;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        conn_error(c, "query", errstr, errstr_size);
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
    e = exec(st->conn, q, errstr, errstr_size);
    free(q);
    return e;
}

/* The lock every writer of this schema takes for its transaction. */
static core_err_t lock_schema(recon_state_t *st, char *errstr, size_t errstr_size)
{
    return exec_s(st, "SELECT pg_advisory_xact_lock(hashtext('tributary_recon:@S'))", errstr,
                  errstr_size);
}

static core_err_t migrate(recon_state_t *st, char *errstr, size_t errstr_size)
{
    PGresult *r;
    int have = 0;
    char *q;

    if (exec(st->conn, "BEGIN", errstr, errstr_size) != CORE_OK)
        return CORE_ERR_TRANSIENT;
    if (lock_schema(st, errstr, errstr_size) != CORE_OK ||
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
        conn_error(st->conn, "query", errstr, errstr_size);
        PQclear(r);
        goto fail;
    }
    have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (have > RECON_SCHEMA_VERSION) {
        core_errstr(errstr, errstr_size,
                    "postgres: schema %s is at version %d, newer than this svc-recon's %d",
                    st->schema, have, RECON_SCHEMA_VERSION);
        exec(st->conn, "ROLLBACK", NULL, 0);
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
    return exec(st->conn, "COMMIT", errstr, errstr_size);
fail:
    exec(st->conn, "ROLLBACK", NULL, 0);
    return CORE_ERR_TRANSIENT;
}

static core_err_t ensure_conn(recon_state_t *st, char *errstr, size_t errstr_size)
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
    if (ensure_conn(st, errstr, errstr_size) != CORE_OK ||
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

/* ---- apply --------------------------------------------------------------- */

/* One partition's offsets in this apply: stored (before) and reached. */
typedef struct part_off {
    int32_t partition;
    int64_t stored;  /* -1: none */
    int64_t next;    /* highest offset seen + 1 */
} part_off;

/* One aggregate row touched by this apply. */
typedef struct group {
    recon_str batch, dataset, stage, outcome;
    int method; /* recon_method of the events added */
    core_digest_agg agg;
    int64_t first_ts, last_ts;
} group;

typedef struct apply_ctx {
    part_off *parts;
    size_t nparts, capparts;
    group *groups;
    size_t ngroups, capgroups;
    core_strbuf events, bad;
} apply_ctx;

static part_off *part_get(apply_ctx *a, int32_t p)
{
    for (size_t i = 0; i < a->nparts; i++)
        if (a->parts[i].partition == p)
            return &a->parts[i];
    if (a->nparts == a->capparts) {
        size_t cap = a->capparts ? a->capparts * 2 : 16;
        part_off *np = realloc(a->parts, cap * sizeof(*np));
        if (!np)
            return NULL;
        a->parts = np;
        a->capparts = cap;
    }
    a->parts[a->nparts] = (part_off){ p, -1, -1 };
    return &a->parts[a->nparts++];
}

static bool slice_eq(recon_str a, recon_str b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static group *group_get(apply_ctx *a, const recon_event *ev)
{
    for (size_t i = a->ngroups; i-- > 0;) {
        group *g = &a->groups[i];
        if (slice_eq(g->outcome, ev->outcome) && slice_eq(g->stage, ev->stage) &&
            slice_eq(g->batch, ev->batch_id) && slice_eq(g->dataset, ev->dataset))
            return g;
    }
    if (a->ngroups == a->capgroups) {
        size_t cap = a->capgroups ? a->capgroups * 2 : 16;
        group *ng = realloc(a->groups, cap * sizeof(*ng));
        if (!ng)
            return NULL;
        a->groups = ng;
        a->capgroups = cap;
    }
    group *g = &a->groups[a->ngroups++];
    g->batch = ev->batch_id;
    g->dataset = ev->dataset;
    g->stage = ev->stage;
    g->outcome = ev->outcome;
    g->method = RM_FULL;
    core_digest_agg_init(&g->agg);
    g->first_ts = g->last_ts = ev->ts;
    return g;
}

/* COPY text format: escape backslash, tab, newline, carriage return. */
static void copy_text(core_strbuf *b, const char *s, size_t n)
{
    size_t start = 0;

    if (!s) {
        core_strbuf_add(b, "\\N");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '\t' ? "\\t"
                          : s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : NULL;
        if (esc) {
            core_strbuf_addn(b, s + start, i - start);
            core_strbuf_add(b, esc);
            start = i + 1;
        }
    }
    core_strbuf_addn(b, s + start, n - start);
}

static void copy_num(core_strbuf *b, int64_t v)
{
    if (v == RECON_NONE)
        core_strbuf_add(b, "\\N");
    else
        core_strbuf_addf(b, "%" PRId64, v);
}

static void copy_event(core_strbuf *b, const recon_input *in, const recon_event *ev,
                       const core_digest *el)
{
    core_strbuf_addf(b, "%" PRId32 "\t%" PRId64 "\t", in->partition, in->offset);
    copy_text(b, ev->batch_id.p, ev->batch_id.len);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->dataset.p, ev->dataset.len);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->stage.p, ev->stage.len);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->outcome.p, ev->outcome.len);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->id.p, ev->id.len);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->key.p, ev->key.len);
    core_strbuf_add(b, "\t");
    if (ev->has_digest) {
        char hex[CORE_DIGEST_HEX_LEN + 1];
        core_digest_to_hex(&ev->digest, hex);
        core_strbuf_add(b, "\\\\x");
        core_strbuf_add(b, hex);
    } else {
        core_strbuf_add(b, "\\N");
    }
    core_strbuf_add(b, "\t");
    copy_num(b, ev->version);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->topic.p, ev->topic.len);
    core_strbuf_add(b, "\t");
    copy_num(b, ev->partition);
    core_strbuf_add(b, "\t");
    copy_num(b, ev->offset);
    core_strbuf_add(b, "\t");
    copy_num(b, ev->line);
    core_strbuf_add(b, "\t");
    copy_text(b, ev->reason.p, ev->reason.len);
    core_strbuf_addf(b, "\t%" PRId64 "\t%d\t%" PRId64 "\t", ev->ts,
                     recon_bucket(ev->id.p, ev->id.len), recon_element_prefix(el));
    if (ev->has_content) {
        char hex[CORE_DIGEST_HEX_LEN + 1];
        core_digest_to_hex(&ev->content, hex);
        core_strbuf_add(b, "\\\\x");
        core_strbuf_add(b, hex);
        core_strbuf_add(b, "\n");
    } else {
        core_strbuf_add(b, "\\N\n");
    }
}

static void copy_bad(core_strbuf *b, const char *topic, const recon_input *in, const char *reason,
                     const char *detail, int64_t now)
{
    copy_text(b, topic, strlen(topic));
    core_strbuf_addf(b, "\t%" PRId32 "\t%" PRId64 "\t%s\t", in->partition, in->offset, reason);
    copy_text(b, detail, detail ? strlen(detail) : 0);
    core_strbuf_addf(b, "\t%" PRId64 "\n", now);
}

static core_err_t copy_in(PGconn *c, const char *sql, const core_strbuf *data, char *errstr,
                          size_t errstr_size)
{
    PGresult *r = PQexec(c, sql);
    core_err_t e = CORE_OK;

    if (PQresultStatus(r) != PGRES_COPY_IN) {
        conn_error(c, "copy", errstr, errstr_size);
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    PQclear(r);
    if (data->len && PQputCopyData(c, data->p, (int)data->len) != 1) {
        PQputCopyEnd(c, "client error");
        e = CORE_ERR_TRANSIENT;
    } else if (PQputCopyEnd(c, NULL) != 1) {
        e = CORE_ERR_TRANSIENT;
    }
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            e = CORE_ERR_TRANSIENT;
        PQclear(r);
    }
    if (e != CORE_OK)
        conn_error(c, "copy", errstr, errstr_size);
    return e;
}

/* A quoted literal of a slice; appended to b. */
static void lit(PGconn *c, core_strbuf *b, const char *s, size_t n)
{
    char *q = PQescapeLiteral(c, s ? s : "", s ? n : 0);
    if (!q) {
        b->failed = true;
        return;
    }
    core_strbuf_add(b, q);
    PQfreemem(q);
}

static void bytea_lit(core_strbuf *b, const uint8_t *p, size_t n)
{
    core_strbuf_add(b, "'\\x");
    for (size_t i = 0; i < n; i++)
        core_strbuf_addf(b, "%02x", p[i]);
    core_strbuf_add(b, "'::bytea");
}

/* Add the stored aggregates of the touched groups, then write them back. */
static core_err_t write_groups(recon_state_t *st, apply_ctx *a, char *errstr, size_t errstr_size)
{
    core_strbuf q = { 0 };
    PGresult *r;
    core_err_t e = CORE_OK;

    if (!a->ngroups)
        return CORE_OK;
    core_strbuf_addf(&q, "SELECT batch_id, dataset, stage, outcome, n, agg, first_ts_ms, "
                         "last_ts_ms FROM %s.aggregates WHERE (batch_id, dataset, stage, outcome) "
                         "IN (", st->schema);
    for (size_t i = 0; i < a->ngroups; i++) {
        group *g = &a->groups[i];
        core_strbuf_add(&q, i ? ",(" : "(");
        lit(st->conn, &q, g->batch.p, g->batch.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->dataset.p, g->dataset.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->stage.p, g->stage.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->outcome.p, g->outcome.len);
        core_strbuf_add(&q, ")");
    }
    core_strbuf_add(&q, ")");
    if (q.failed) {
        core_strbuf_free(&q);
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    r = PQexecParams(st->conn, q.p, 0, NULL, NULL, NULL, NULL, 1); /* binary: agg bytes */
    core_strbuf_free(&q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        conn_error(st->conn, "query", errstr, errstr_size);
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        recon_str k[4];
        for (int f = 0; f < 4; f++)
            k[f] = (recon_str){ PQgetvalue(r, row, f), (size_t)PQgetlength(r, row, f) };
        for (size_t i = 0; i < a->ngroups; i++) {
            group *g = &a->groups[i];
            if (!slice_eq(g->batch, k[0]) || !slice_eq(g->dataset, k[1]) ||
                !slice_eq(g->stage, k[2]) || !slice_eq(g->outcome, k[3]))
                continue;
            core_digest_agg old;
            uint64_t n = 0;
            int64_t f_ts = 0, l_ts = 0;
            const uint8_t *nb = (const uint8_t *)PQgetvalue(r, row, 4);
            const uint8_t *fb = (const uint8_t *)PQgetvalue(r, row, 6);
            const uint8_t *lb = (const uint8_t *)PQgetvalue(r, row, 7);
            for (int j = 0; j < 8; j++) {
                n = n << 8 | nb[j];
                f_ts = (int64_t)((uint64_t)f_ts << 8 | fb[j]);
                l_ts = (int64_t)((uint64_t)l_ts << 8 | lb[j]);
            }
            if (PQgetlength(r, row, 5) == CORE_DIGEST_LEN) {
                memcpy(old.sum, PQgetvalue(r, row, 5), CORE_DIGEST_LEN);
                old.count = n;
                core_digest_agg_merge(&g->agg, &old);
            }
            if (f_ts < g->first_ts)
                g->first_ts = f_ts;
            if (l_ts > g->last_ts)
                g->last_ts = l_ts;
            break;
        }
    }
    PQclear(r);

    core_strbuf_addf(&q, "INSERT INTO %s.aggregates (batch_id, dataset, stage, outcome, n, agg, "
                         "first_ts_ms, last_ts_ms, method) VALUES ", st->schema);
    for (size_t i = 0; i < a->ngroups; i++) {
        group *g = &a->groups[i];
        core_strbuf_add(&q, i ? ",(" : "(");
        lit(st->conn, &q, g->batch.p, g->batch.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->dataset.p, g->dataset.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->stage.p, g->stage.len);
        core_strbuf_add(&q, ",");
        lit(st->conn, &q, g->outcome.p, g->outcome.len);
        core_strbuf_addf(&q, ",%" PRIu64 ",", g->agg.count);
        bytea_lit(&q, g->agg.sum, CORE_DIGEST_LEN);
        core_strbuf_addf(&q, ",%" PRId64 ",%" PRId64 ",'%s')", g->first_ts, g->last_ts,
                         recon_method_names[g->method]);
    }
    /* the weakest method a row was ever applied under (counts < ids < digests) */
    core_strbuf_add(&q, " ON CONFLICT (batch_id, dataset, stage, outcome) DO UPDATE SET "
                        "n = EXCLUDED.n, agg = EXCLUDED.agg, first_ts_ms = EXCLUDED.first_ts_ms, "
                        "last_ts_ms = EXCLUDED.last_ts_ms, method = CASE "
                        "WHEN 'counts' IN (aggregates.method, EXCLUDED.method) THEN 'counts' "
                        "WHEN 'ids' IN (aggregates.method, EXCLUDED.method) THEN 'ids' "
                        "WHEN 'digests' IN (aggregates.method, EXCLUDED.method) THEN 'digests' "
                        "ELSE EXCLUDED.method END");
    if (q.failed) {
        core_errstr(errstr, errstr_size, "out of memory");
        e = CORE_ERR_NOMEM;
    } else {
        e = exec(st->conn, q.p, errstr, errstr_size);
    }
    core_strbuf_free(&q);
    return e;
}

static core_err_t read_offsets(recon_state_t *st, apply_ctx *a, char *errstr, size_t errstr_size)
{
    char sql[200];
    const char *params[1] = { st->audit_topic };
    PGresult *r;

    snprintf(sql, sizeof(sql), "SELECT partition, next_offset FROM %s.offsets WHERE topic = $1",
             st->schema);
    r = PQexecParams(st->conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        conn_error(st->conn, "query", errstr, errstr_size);
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        part_off *po = part_get(a, (int32_t)atol(PQgetvalue(r, i, 0)));
        if (!po) {
            PQclear(r);
            core_errstr(errstr, errstr_size, "out of memory");
            return CORE_ERR_NOMEM;
        }
        po->stored = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    return CORE_OK;
}

static core_err_t write_offsets(recon_state_t *st, apply_ctx *a, int64_t now, char *errstr,
                                size_t errstr_size)
{
    core_strbuf q = { 0 };
    bool any = false;
    core_err_t e;

    core_strbuf_addf(&q, "INSERT INTO %s.offsets (topic, partition, next_offset, updated_ms) "
                         "VALUES ", st->schema);
    for (size_t i = 0; i < a->nparts; i++) {
        part_off *po = &a->parts[i];
        if (po->next <= po->stored)
            continue;
        core_strbuf_add(&q, any ? ",(" : "(");
        lit(st->conn, &q, st->audit_topic, strlen(st->audit_topic));
        core_strbuf_addf(&q, ",%" PRId32 ",%" PRId64 ",%" PRId64 ")", po->partition, po->next,
                         now);
        any = true;
    }
    core_strbuf_add(&q, " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "
                        "GREATEST(EXCLUDED.next_offset, offsets.next_offset), "
                        "updated_ms = EXCLUDED.updated_ms");
    if (q.failed) {
        core_strbuf_free(&q);
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    e = any ? exec(st->conn, q.p, errstr, errstr_size) : CORE_OK;
    core_strbuf_free(&q);
    return e;
}

/* Whether the event's dataset is in the catalogue. */
static bool dataset_known(const recon_state_t *st, recon_str ds)
{
    char name[256];

    if (!st->o.cat)
        return true;
    if (ds.len >= sizeof(name))
        return false;
    memcpy(name, ds.p, ds.len);
    name[ds.len] = '\0';
    return core_avro_catalog_by_dataset(st->o.cat, name) != NULL;
}

static void apply_ctx_free(apply_ctx *a)
{
    free(a->parts);
    free(a->groups);
    core_strbuf_free(&a->events);
    core_strbuf_free(&a->bad);
}

core_err_t recon_state_apply(recon_state_t *st, const recon_input *in, size_t n,
                             recon_apply_stats *stats, char *errstr, size_t errstr_size)
{
    apply_ctx a = { 0 };
    recon_apply_stats s = { 0, 0, 0, RECON_NONE };
    recon_win_acc *win = NULL;
    int64_t now = core_now_ms();
    core_err_t e;
    char sql[300];

    if ((e = ensure_conn(st, errstr, errstr_size)) != CORE_OK)
        return e;
    if ((e = exec(st->conn, "BEGIN", errstr, errstr_size)) != CORE_OK)
        goto out;
    if ((e = lock_schema(st, errstr, errstr_size)) != CORE_OK ||
        (e = read_offsets(st, &a, errstr, errstr_size)) != CORE_OK)
        goto rollback;
    if (!(win = recon_win_begin(st->conn, st->schema, st->o.window_ms, st->o.grace_ms, st->lat,
                                errstr, errstr_size))) {
        e = CORE_ERR_TRANSIENT;
        goto rollback;
    }
    for (size_t i = 0; i < n; i++) {
        part_off *po = part_get(&a, in[i].partition);
        recon_event ev;
        const char *why = NULL;

        if (!po) {
            e = CORE_ERR_NOMEM;
            core_errstr(errstr, errstr_size, "out of memory");
            goto rollback;
        }
        if (po->stored >= 0 && in[i].offset < po->stored) {
            s.skipped++;
            continue;
        }
        if (in[i].offset + 1 > po->next)
            po->next = in[i].offset + 1;
        if (recon_event_decode_ids(&st->ids, in[i].value, in[i].len, &ev, &why) != 0) {
            copy_bad(&a.bad, st->audit_topic, &in[i], "malformed", why, now);
            s.bad++;
        } else if (!dataset_known(st, ev.dataset)) {
            copy_bad(&a.bad, st->audit_topic, &in[i], "unknown_dataset", NULL, now);
            s.bad++;
        } else if (ev.ts > now + st->o.future_ms) {
            copy_bad(&a.bad, st->audit_topic, &in[i], "future_timestamp", NULL, now);
            s.bad++;
        } else {
            group *g = group_get(&a, &ev);
            recon_method m = recon_method_of(st->o.methods, st->o.nmethods, ev.dataset.p,
                                             ev.dataset.len);
            core_digest el;
            if (!g) {
                e = CORE_ERR_NOMEM;
                core_errstr(errstr, errstr_size, "out of memory");
                goto rollback;
            }
            if (m < RM_DIGESTS) /* counts, ids: no digest is kept */
                ev.has_digest = ev.has_content = false;
            if (m == RM_COUNTS) /* counts: the aggregates add no id either */
                memset(&el, 0, sizeof(el));
            else
                recon_event_element(&ev, &el);
            if ((int)m < g->method)
                g->method = (int)m;
            core_digest_agg_add(&g->agg, &el);
            if (ev.ts < g->first_ts)
                g->first_ts = ev.ts;
            if (ev.ts > g->last_ts)
                g->last_ts = ev.ts;
            if (m != RM_COUNTS) /* counts: no per-record row */
                copy_event(&a.events, &in[i], &ev, &el);
            if (recon_win_add(win, &ev, in[i].partition, in[i].len, &el) != 0) {
                e = CORE_ERR_NOMEM;
                core_errstr(errstr, errstr_size, "out of memory");
                goto rollback;
            }
            s.applied++;
            if (s.newest_ts == RECON_NONE || ev.ts > s.newest_ts)
                s.newest_ts = ev.ts;
        }
    }
    if (a.events.failed || a.bad.failed) {
        e = CORE_ERR_NOMEM;
        core_errstr(errstr, errstr_size, "out of memory");
        goto rollback;
    }
    if (a.events.len) {
        snprintf(sql, sizeof(sql),
                 "COPY %s.events (audit_partition, audit_offset, batch_id, dataset, stage, "
                 "outcome, id, key, digest, version, src_topic, src_partition, src_offset, line, "
                 "reason, ts_ms, bucket, eh, content) FROM STDIN",
                 st->schema);
        if ((e = copy_in(st->conn, sql, &a.events, errstr, errstr_size)) != CORE_OK)
            goto rollback;
    }
    if (a.bad.len) {
        snprintf(sql, sizeof(sql),
                 "COPY %s.bad_events (audit_topic, audit_partition, audit_offset, reason, "
                 "detail, seen_ms) FROM STDIN",
                 st->schema);
        if ((e = copy_in(st->conn, sql, &a.bad, errstr, errstr_size)) != CORE_OK)
            goto rollback;
    }
    if ((e = write_groups(st, &a, errstr, errstr_size)) != CORE_OK ||
        (e = recon_win_write(win, now, errstr, errstr_size)) != CORE_OK ||
        (e = write_offsets(st, &a, now, errstr, errstr_size)) != CORE_OK ||
        (e = exec(st->conn, "COMMIT", errstr, errstr_size)) != CORE_OK)
        goto rollback;
    if (stats)
        *stats = s;
    goto out;
rollback:
    exec(st->conn, "ROLLBACK", NULL, 0);
    if (e == CORE_ERR_TRANSIENT && PQstatus(st->conn) != CONNECTION_OK) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    if (e != CORE_ERR_NOMEM)
        e = CORE_ERR_TRANSIENT;
out:
    recon_win_free(win);
    apply_ctx_free(&a);
    return e;
}

core_err_t recon_state_offsets(recon_state_t *st, int64_t *next, size_t npart, char *errstr,
                               size_t errstr_size)
{
    apply_ctx a = { 0 };
    core_err_t e;

    for (size_t i = 0; i < npart; i++)
        next[i] = -1;
    if ((e = ensure_conn(st, errstr, errstr_size)) != CORE_OK)
        return e;
    e = read_offsets(st, &a, errstr, errstr_size);
    for (size_t i = 0; e == CORE_OK && i < a.nparts; i++)
        if (a.parts[i].partition >= 0 && (size_t)a.parts[i].partition < npart)
            next[a.parts[i].partition] = a.parts[i].stored;
    apply_ctx_free(&a);
    return e;
}
