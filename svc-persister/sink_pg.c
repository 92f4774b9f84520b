/* sink_pg.c — the PostgreSQL sink (libpq): COPY into a staging table, then
 * a version-guarded INSERT … ON CONFLICT … DO UPDATE … WHERE, DELETEs
 * guarded the same way and remembered in a tombstone table; one transaction
 * per batch; a refused row isolated by bisection under savepoints. */
#include "persister.h"

#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <stddef.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct pers_pg_conf, field), help, lo, hi, ch }

const core_config_key pers_pg_keys[] = {
    K("pg.conninfo", CORE_CFG_STR, "host=127.0.0.1 port=5432 dbname=tributary user=tributary", 0,
      conninfo, "libpq connection string or URI (no password here: pg.password)", 0, 0, NULL),
    K("pg.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, password,
      "PostgreSQL password (pg.password_file / TB_PG_PASSWORD_FILE to read it from a file)", 0,
      0, NULL),
    K("pg.sslmode", CORE_CFG_ENUM, "prefer", 0, sslmode,
      "TLS to PostgreSQL (verify-full with pg.sslrootcert in production)", 0, 0,
      "disable|allow|prefer|require|verify-ca|verify-full"),
    K("pg.sslrootcert", CORE_CFG_STR, NULL, 0, sslrootcert,
      "CA certificate file that signed the server's certificate", 0, 0, NULL),
    K("pg.schema", CORE_CFG_STR, "public", 0, schema,
      "PostgreSQL schema holding the dataset tables", 0, 0, NULL),
    K("pg.statement.timeout.ms", CORE_CFG_INT, "60000", 0, statement_timeout_ms,
      "statement_timeout of the persister's session", 0, 3600000, NULL),
    CORE_CFG_END
};

typedef struct pg_sink {
    pers_sink base;
    const struct pers_pg_conf *conf;
    PGconn *conn;
    /* datasets whose staging tables and statements exist on this connection */
    char **prepared;
    size_t nprepared;
    /* rows may sit in the staging tables of this transaction (they empty
     * themselves at commit: ON COMMIT DELETE ROWS) */
    bool staged;
} pg_sink;

/* Class 22 (data exception) and 23 (integrity constraint violation): the
 * conditions PostgreSQL raises for a row's data (Appendix A of its manual). */
static const struct { const char *code, *name; } sqlstates[] = {
    { "22000", "data_exception" },
    { "22001", "string_data_right_truncation" },
    { "22003", "numeric_value_out_of_range" },
    { "22004", "null_value_not_allowed" },
    { "22007", "invalid_datetime_format" },
    { "22008", "datetime_field_overflow" },
    { "22012", "division_by_zero" },
    { "22021", "character_not_in_repertoire" },
    { "22023", "invalid_parameter_value" },
    { "22026", "string_data_length_mismatch" },
    { "22P02", "invalid_text_representation" },
    { "22P05", "untranslatable_character" },
    { "23000", "integrity_constraint_violation" },
    { "23001", "restrict_violation" },
    { "23502", "not_null_violation" },
    { "23503", "foreign_key_violation" },
    { "23505", "unique_violation" },
    { "23514", "check_violation" },
    { "23P01", "exclusion_violation" },
};

const char *pers_sqlstate_name(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return NULL;
    for (size_t i = 0; i < sizeof(sqlstates) / sizeof(sqlstates[0]); i++)
        if (!strcmp(sqlstates[i].code, sqlstate))
            return sqlstates[i].name;
    if (!strncmp(sqlstate, "22", 2))
        return "data_exception";
    if (!strncmp(sqlstate, "23", 2))
        return "integrity_constraint_violation";
    return NULL;
}

/* Is this error the data's fault (isolate the row) or the server's (retry)? */
static pers_res_t classify(PGconn *conn, const PGresult *res, char *errstr, size_t errstr_size)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *col = res ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
    const char *dname = pers_sqlstate_name(state);
    if (!prim) {
        /* strip the trailing newline of libpq's message */
        char m[400];
        snprintf(m, sizeof(m), "%s", PQerrorMessage(conn));
        m[strcspn(m, "\n")] = '\0';
        core_errstr(errstr, errstr_size, "postgres: %s", m[0] ? m : "no answer");
    } else if (dname) {
        /* the row's fault: this goes to the DLQ and the audit event, so
         * never the DETAIL ("Key (name)=(John Smith) already exists") nor
         * the primary text, which quotes values for class 22 ('invalid
         * input syntax for type integer: "x"'): the condition and the
         * constraint or column it names */
        core_errstr(errstr, errstr_size, "postgres %s %s%s%s%s%s%s", state, dname,
                    cons ? " (constraint " : "", cons ? cons : "", cons ? ")" : "",
                    col ? " column " : "", col ? col : "");
    } else {
        /* the server's: its primary text (never the DETAIL) */
        core_errstr(errstr, errstr_size, "postgres %s: %s%s%s%s%s%s", state ? state : "?", prim,
                    cons ? " (constraint " : "", cons ? cons : "", cons ? ")" : "",
                    col ? " column " : "", col ? col : "");
    }
    if (PQstatus(conn) != CONNECTION_OK || !state)
        return PERS_RETRY;
    if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))
        return PERS_ERROR;
    return PERS_RETRY;
}

static pers_res_t exec_ok(pg_sink *s, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    pers_res_t r = PERS_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        r = classify(s->conn, res, errstr, errstr_size);
    PQclear(res);
    return r;
}

static void drop_conn(pg_sink *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    for (size_t i = 0; i < s->nprepared; i++)
        free(s->prepared[i]);
    free(s->prepared);
    s->prepared = NULL;
    s->nprepared = 0;
}

/* Server NOTICEs ("relation already exists, skipping") go to the debug log,
 * not raw to stderr. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    char m[300];
    snprintf(m, sizeof(m), "%s", message);
    m[strcspn(m, "\n")] = '\0';
    core_log_debug("postgres notice", CLF_S("notice", m));
}

/* The SQLSTATE of a connection failure: libpq keeps no result for it, but
 * in verbose mode its message carries the code ("FATAL:  28P01: ..."). */
static bool conn_sqlstate(const char *msg, char state[6])
{
    for (const char *p = strstr(msg, ":  "); p; p = strstr(p + 1, ":  ")) {
        const char *c = p + 3;
        size_t i = 0;
        while (i < 5 && ((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'A' && c[i] <= 'Z')))
            i++;
        if (i == 5 && c[5] == ':') {
            memcpy(state, c, 5);
            state[5] = '\0';
            return true;
        }
    }
    return false;
}

/* Why the connection failed, and whose fault: PERS_ERROR when the server
 * refused the configuration (the key to fix is named), else PERS_RETRY. */
static pers_res_t conn_failed(pg_sink *s, char *errstr, size_t errstr_size)
{
    char m[400], state[6] = "";
    const char *key = NULL;

    snprintf(m, sizeof(m), "%s", s->conn ? PQerrorMessage(s->conn) : "out of memory");
    conn_sqlstate(m, state);
    m[strcspn(m, "\n")] = '\0';
    if (s->conn && PQconnectionNeedsPassword(s->conn)) {
        core_errstr(errstr, errstr_size,
                    "pg.password: postgres at %s asks for a password and none is set "
                    "(pg.password, pg.password_file or TB_PG_PASSWORD_FILE)",
                    s->base.addr);
        return PERS_ERROR;
    }
    if (!strcmp(state, "28P01")) /* invalid_password */
        key = "pg.password";
    else if (!strcmp(state, "28000") || !strcmp(state, "3D000")) /* role, pg_hba; database */
        key = "pg.conninfo";
    if (key) {
        core_errstr(errstr, errstr_size, "%s: postgres at %s refused the connection: %s", key,
                    s->base.addr, m);
        return PERS_ERROR;
    }
    core_errstr(errstr, errstr_size, "postgres connect: %s", m);
    return PERS_RETRY;
}

#define PG_CONNECT_TIMEOUT_MS 5000

static pers_res_t pg_connect(pers_sink *base, char *errstr, size_t errstr_size)
{
    pg_sink *s = (pg_sink *)base;
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return PERS_OK;
    drop_conn(s);
    const char *keys[8], *vals[8];
    int n = 0;
    keys[n] = "dbname", vals[n++] = s->conf->conninfo;
    if (s->conf->password && *s->conf->password)
        keys[n] = "password", vals[n++] = s->conf->password;
    if (s->conf->sslmode && *s->conf->sslmode)
        keys[n] = "sslmode", vals[n++] = s->conf->sslmode;
    if (s->conf->sslrootcert && *s->conf->sslrootcert)
        keys[n] = "sslrootcert", vals[n++] = s->conf->sslrootcert;
    keys[n] = "application_name", vals[n++] = "svc-persister";
    keys[n] = NULL, vals[n] = NULL;
    /* non-blocking, so the message of a refusal can carry its SQLSTATE */
    s->conn = PQconnectStartParams(keys, vals, 1);
    if (s->conn && PQstatus(s->conn) == CONNECTION_BAD) {
        /* refused before any I/O: an option libpq cannot use, or a host
         * name that does not resolve (yet: DNS of a service being created
         * is an unreachable dependency, waited for like a closed port) */
        char m[400];
        snprintf(m, sizeof(m), "%s", PQerrorMessage(s->conn));
        m[strcspn(m, "\n")] = '\0';
        bool dns = strstr(m, "could not translate host name") != NULL;
        core_errstr(errstr, errstr_size, dns ? "postgres connect: %s" : "pg.conninfo: %s", m);
        drop_conn(s);
        return dns ? PERS_RETRY : PERS_ERROR;
    }
    if (s->conn)
        PQsetErrorVerbosity(s->conn, PQERRORS_VERBOSE);
    int64_t deadline = core_mono_ms() + PG_CONNECT_TIMEOUT_MS;
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    while (s->conn && PQstatus(s->conn) != CONNECTION_BAD && ps != PGRES_POLLING_OK &&
           ps != PGRES_POLLING_FAILED) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0) {
            core_errstr(errstr, errstr_size, "postgres connect: no answer from %s within %d ms",
                        s->base.addr, PG_CONNECT_TIMEOUT_MS);
            drop_conn(s);
            return PERS_RETRY;
        }
        struct pollfd pfd = { PQsocket(s->conn), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                              0 };
        if (pfd.fd >= 0 && poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            break;
        ps = PQconnectPoll(s->conn);
    }
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        pers_res_t r = conn_failed(s, errstr, errstr_size);
        drop_conn(s);
        return r;
    }
    PQsetErrorVerbosity(s->conn, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(s->conn, pg_notice, NULL);
    char sql[128];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %lld",
             (long long)s->conf->statement_timeout_ms);
    if (exec_ok(s, sql, errstr, errstr_size) != PERS_OK) {
        drop_conn(s);
        return PERS_RETRY;
    }
    return PERS_OK;
}

static pers_res_t pg_exec(pers_sink *base, const char *sql, char *errstr, size_t errstr_size)
{
    return exec_ok((pg_sink *)base, sql, errstr, errstr_size);
}

static void pg_drop(pers_sink *base)
{
    drop_conn((pg_sink *)base);
}

/* Prepare b's text as the statement <prefix><dataset>; frees b's text.
 * Returns false (errstr says why) when the server refused it. */
static bool prepare_stmt(pg_sink *s, const char *prefix, const char *dataset, core_strbuf *b,
                         char *errstr, size_t errstr_size)
{
    char name[200];
    PGresult *res;
    bool ok;

    snprintf(name, sizeof(name), "%s%s", prefix, dataset);
    res = b->failed ? NULL : PQprepare(s->conn, name, b->p, 0, NULL);
    core_strbuf_free(b);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        classify(s->conn, res, errstr, errstr_size);
    PQclear(res);
    return ok;
}

/* Staging tables and prepared statements for ds, once per connection. */
static pers_res_t prepare_ds(pg_sink *s, pers_dataset *ds, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < s->nprepared; i++)
        if (!strcmp(s->prepared[i], ds->name))
            return PERS_OK;
    const char *sc = s->conf->schema;
    const char *key = ds->cols[ds->key_col].name;
    core_strbuf b = { 0 };
    core_strbuf_addf(&b,
            "CREATE TEMP TABLE IF NOT EXISTS \"tb_stage_%s\" (LIKE \"%s\".\"%s\") ON COMMIT "
            "DELETE ROWS;",
            ds->name, sc, ds->name);
    core_strbuf_addf(&b,
            "CREATE TEMP TABLE IF NOT EXISTS \"tb_stage_del_%s\" (key text NOT NULL, "
            "v bigint NOT NULL) ON COMMIT DELETE ROWS;",
            ds->name);
    if (b.failed) {
        free(b.p);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    pers_res_t r = exec_ok(s, b.p, errstr, errstr_size);
    free(b.p);
    if (r != PERS_OK)
        return PERS_RETRY; /* a missing table is the operator's to fix, never the row's */

    /* merge: rows newer than the stored ones and than any tombstone */
    b = (core_strbuf){ 0 };
    core_strbuf_addf(&b, "INSERT INTO \"%s\".\"%s\" AS t (", sc, ds->name);
    for (size_t i = 0; i < ds->ncols; i++)
        core_strbuf_addf(&b, "\"%s\", ", ds->cols[i].name);
    core_strbuf_add(&b, "tb_version, tb_id, tb_batch) SELECT ");
    for (size_t i = 0; i < ds->ncols; i++)
        core_strbuf_addf(&b, "s.\"%s\", ", ds->cols[i].name);
    core_strbuf_addf(&b,
            "s.tb_version, s.tb_id, s.tb_batch FROM \"tb_stage_%s\" s WHERE NOT EXISTS "
            "(SELECT 1 FROM \"%s\".\"%s_tombstone\" d WHERE d.key = s.\"%s\" AND "
            "d.tb_version >= s.tb_version) ON CONFLICT (\"%s\") DO UPDATE SET ",
            ds->name, sc, ds->name, key, key);
    for (size_t i = 0; i < ds->ncols; i++)
        if (i != ds->key_col)
            core_strbuf_addf(&b, "\"%s\" = EXCLUDED.\"%s\", ", ds->cols[i].name, ds->cols[i].name);
    core_strbuf_addf(&b,
            "tb_version = EXCLUDED.tb_version, tb_id = EXCLUDED.tb_id, tb_batch = "
            "EXCLUDED.tb_batch, tb_persisted_at = now() WHERE t.tb_version <= EXCLUDED.tb_version "
            "RETURNING t.\"%s\"",
            key);
    if (!prepare_stmt(s, "tb_merge_", ds->name, &b, errstr, errstr_size))
        return PERS_RETRY;

    /* deletes: remove older rows, then remember the version deleted
     * (unless a newer row is stored) */
    core_strbuf_addf(&b,
            "DELETE FROM \"%s\".\"%s\" t USING \"tb_stage_del_%s\" d WHERE t.\"%s\" = d.key AND "
            "t.tb_version <= d.v",
            sc, ds->name, ds->name, key);
    if (!prepare_stmt(s, "tb_delete_", ds->name, &b, errstr, errstr_size))
        return PERS_RETRY;
    core_strbuf_addf(&b,
            "INSERT INTO \"%s\".\"%s_tombstone\" AS o (key, tb_version) SELECT d.key, d.v FROM "
            "\"tb_stage_del_%s\" d WHERE NOT EXISTS (SELECT 1 FROM \"%s\".\"%s\" t WHERE "
            "t.\"%s\" = d.key AND t.tb_version >= d.v) ON CONFLICT (key) DO UPDATE SET "
            "tb_version = EXCLUDED.tb_version, tb_deleted_at = now() WHERE o.tb_version <= "
            "EXCLUDED.tb_version RETURNING o.key",
            sc, ds->name, ds->name, sc, ds->name, key);
    if (!prepare_stmt(s, "tb_tomb_", ds->name, &b, errstr, errstr_size))
        return PERS_RETRY;
    char **p = realloc(s->prepared, (s->nprepared + 1) * sizeof(*p));
    if (!p)
        return PERS_RETRY;
    s->prepared = p;
    if (!(p[s->nprepared] = strdup(ds->name)))
        return PERS_RETRY;
    s->nprepared++;
    return PERS_OK;
}

/* Ops are sorted by key (pers_reduce): find one. */
static pers_op *find_op(pers_op *ops, size_t n, const char *key, pers_kind_t kind)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ops[mid].key, key);
        if (c == 0)
            return ops[mid].kind == kind ? &ops[mid] : NULL;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static pers_res_t copy_in(pg_sink *s, const char *sql, const core_strbuf *data, char *errstr,
                          size_t errstr_size)
{
    PGresult *res = PQexec(s->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pers_res_t r = classify(s->conn, res, errstr, errstr_size);
        PQclear(res);
        return r == PERS_OK ? PERS_RETRY : r;
    }
    PQclear(res);
    if (data->len && PQputCopyData(s->conn, data->p, (int)data->len) != 1) {
        PQputCopyEnd(s->conn, "client error");
        while ((res = PQgetResult(s->conn)))
            PQclear(res);
        return classify(s->conn, NULL, errstr, errstr_size);
    }
    if (PQputCopyEnd(s->conn, NULL) != 1)
        return classify(s->conn, NULL, errstr, errstr_size);
    pers_res_t r = PERS_OK;
    while ((res = PQgetResult(s->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && r == PERS_OK)
            r = classify(s->conn, res, errstr, errstr_size);
        PQclear(res);
    }
    return r;
}

/* Run a prepared statement; mark the ops whose keys it returns. */
static pers_res_t run_marking(pg_sink *s, const char *name, pers_op *ops, size_t n,
                              pers_kind_t kind, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexecPrepared(s->conn, name, 0, NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        pers_res_t r = classify(s->conn, res, errstr, errstr_size);
        PQclear(res);
        return r;
    }
    if (st == PGRES_TUPLES_OK) {
        int rows = PQntuples(res);
        for (int i = 0; i < rows; i++) {
            pers_op *op = find_op(ops, n, PQgetvalue(res, i, 0), kind);
            if (op)
                op->fate = PERS_WRITTEN;
        }
    }
    PQclear(res);
    return PERS_OK;
}

/* Write ops[0..n) inside the current transaction (no savepoint here). */
static pers_res_t write_range(pg_sink *s, pers_dataset *ds, pers_op *ops, size_t n,
                              char *errstr, size_t errstr_size)
{
    char sql[512];
    core_strbuf up = { 0 }, del = { 0 };
    size_t nup = 0, ndel = 0;
    pers_res_t r;

    for (size_t i = 0; i < n; i++) {
        pers_op *op = &ops[i];
        op->fate = PERS_PENDING;
        if (op->kind == PERS_DELETE) {
            pers_copy_text(&del, op->key);
            core_strbuf_addf(&del, "\t%lld\n", (long long)op->version);
            ndel++;
            continue;
        }
        if (op->rec->row) {
            core_strbuf_addn(&up, op->rec->row, op->rec->rowlen);
            core_strbuf_add(&up, "\t");
        } else {
            for (size_t c = 0; c < ds->ncols; c++) {
                char *tmp;
                pers_copy_text(&up, pers_column_text(op->rec, &ds->cols[c], &tmp));
                free(tmp);
                core_strbuf_add(&up, "\t");
            }
        }
        core_strbuf_addf(&up, "%lld\t", (long long)op->version);
        pers_copy_text(&up, op->rec->id);
        core_strbuf_add(&up, "\t");
        pers_copy_text(&up, op->rec->batch_id);
        core_strbuf_add(&up, "\tnow\n");
        nup++;
    }
    if (up.failed || del.failed) {
        free(up.p);
        free(del.p);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    r = PERS_OK;
    if (s->staged) { /* an earlier range of this transaction (bisection) */
        snprintf(sql, sizeof(sql), "TRUNCATE \"tb_stage_%s\", \"tb_stage_del_%s\"", ds->name,
                 ds->name);
        r = exec_ok(s, sql, errstr, errstr_size);
    }
    s->staged = true;
    if (r == PERS_OK && nup) {
        snprintf(sql, sizeof(sql), "COPY \"tb_stage_%s\" FROM STDIN", ds->name);
        r = copy_in(s, sql, &up, errstr, errstr_size);
        if (r == PERS_OK) {
            snprintf(sql, sizeof(sql), "tb_merge_%s", ds->name);
            r = run_marking(s, sql, ops, n, PERS_UPSERT, errstr, errstr_size);
        }
    }
    if (r == PERS_OK && ndel) {
        snprintf(sql, sizeof(sql), "COPY \"tb_stage_del_%s\" FROM STDIN", ds->name);
        r = copy_in(s, sql, &del, errstr, errstr_size);
        if (r == PERS_OK) {
            snprintf(sql, sizeof(sql), "tb_delete_%s", ds->name);
            r = run_marking(s, sql, ops, n, PERS_DELETE, errstr, errstr_size);
        }
        if (r == PERS_OK) {
            snprintf(sql, sizeof(sql), "tb_tomb_%s", ds->name);
            r = run_marking(s, sql, ops, n, PERS_DELETE, errstr, errstr_size);
        }
    }
    free(up.p);
    free(del.p);
    if (r == PERS_OK)
        for (size_t i = 0; i < n; i++)
            if (ops[i].fate == PERS_PENDING)
                ops[i].fate = PERS_STALE;
    return r;
}

/* One range of ops under a savepoint, all or nothing (the range function
 * of pers_bisect, which isolates a refused row): PERS_ERROR after a data
 * error, rolled back to the savepoint. */
static pers_res_t write_savepoint(void *ctx, pers_dataset *ds, pers_op *ops, size_t n,
                                  char *err, size_t err_size)
{
    pg_sink *s = ctx;
    pers_res_t r = exec_ok(s, "SAVEPOINT tb_sp", err, err_size);
    if (r != PERS_OK)
        return PERS_RETRY;
    r = write_range(s, ds, ops, n, err, err_size);
    if (r == PERS_OK)
        return exec_ok(s, "RELEASE SAVEPOINT tb_sp", err, err_size) == PERS_OK ? PERS_OK
                                                                               : PERS_RETRY;
    if (r == PERS_RETRY)
        return PERS_RETRY;
    if (exec_ok(s, "ROLLBACK TO SAVEPOINT tb_sp", err, err_size) != PERS_OK ||
        exec_ok(s, "RELEASE SAVEPOINT tb_sp", err, err_size) != PERS_OK)
        return PERS_RETRY;
    return PERS_ERROR;
}

/* Lock every key of the batch until the transaction ends, in one order for
 * every instance (by hash), before any row is read. Without it two
 * instances race on one key across the two tables: the DELETE of one cannot
 * see the other's uncommitted row and writes a tombstone, the other's merge
 * cannot see that uncommitted tombstone and inserts the row; both commit and
 * a deleted (or moved-away) row survives. With the lock the second
 * statement runs after the first transaction commits, on a fresh snapshot
 * (READ COMMITTED), and the version guard sees it. */
static pers_res_t lock_keys(pg_sink *s, pers_dataset *ds, const pers_op *ops, size_t n,
                            char *errstr, size_t errstr_size)
{
    core_strbuf a = { 0 };
    core_strbuf_add(&a, "{");
    for (size_t i = 0; i < n; i++) {
        core_strbuf_add(&a, i ? ",\"" : "\"");
        for (const char *k = ops[i].key; *k; k++) {
            if (*k == '"' || *k == '\\')
                core_strbuf_add(&a, "\\");
            core_strbuf_addn(&a, k, 1);
        }
        core_strbuf_add(&a, "\"");
    }
    core_strbuf_add(&a, "}");
    if (a.failed) {
        free(a.p);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    const char *params[2] = { ds->name, a.p };
    PGresult *res = PQexecParams(s->conn,
            "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT "
            "hashtextextended($1 || chr(31) || k, 0) AS h FROM unnest($2::text[]) AS k "
            "ORDER BY h) AS o",
            2, NULL, params, NULL, NULL, 0);
    free(a.p);
    pers_res_t r = PERS_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = classify(s->conn, res, errstr, errstr_size);
        if (r == PERS_OK)
            r = PERS_RETRY;
    }
    PQclear(res);
    return r == PERS_OK ? PERS_OK : PERS_RETRY;
}

static pers_res_t pg_write(pers_sink *base, pers_dataset *ds, pers_op *ops, size_t n,
                           char *errstr, size_t errstr_size)
{
    pg_sink *s = (pg_sink *)base;
    if (pg_connect(base, errstr, errstr_size) != PERS_OK)
        return PERS_RETRY; /* a refusal too: nothing the rows can change */
    pers_res_t r;
    if (exec_ok(s, "BEGIN", errstr, errstr_size) != PERS_OK)
        goto retry;
    s->staged = false;
    if (prepare_ds(s, ds, errstr, errstr_size) != PERS_OK) {
        char e2[64];
        exec_ok(s, "ROLLBACK", e2, sizeof(e2));
        goto retry;
    }
    r = lock_keys(s, ds, ops, n, errstr, errstr_size);
    if (r == PERS_OK)
        r = pers_bisect(write_savepoint, s, ds, ops, n, errstr, errstr_size);
    if (r != PERS_OK) {
        char e2[64];
        exec_ok(s, "ROLLBACK", e2, sizeof(e2));
        goto retry;
    }
    if (exec_ok(s, "COMMIT", errstr, errstr_size) != PERS_OK)
        goto retry;
    return PERS_OK;
retry:
    for (size_t i = 0; i < n; i++) {
        ops[i].fate = PERS_PENDING;
        free(ops[i].error);
        ops[i].error = NULL;
    }
    if (PQstatus(s->conn) != CONNECTION_OK)
        drop_conn(s);
    return PERS_RETRY;
}

static void pg_free(pers_sink *base)
{
    pg_sink *s = (pg_sink *)base;
    if (!s)
        return;
    drop_conn(s);
    free(s);
}

/* A URI's empty port ("postgresql://h:/db", "postgres://a:5432,b:/db"):
 * libpq drops it before PQconninfoParse() shows it (the host then gets
 * port 5432), so the URI's text is read here. @returns the host spec of
 * the first empty port (its length in *len), or NULL. */
static const char *uri_empty_port(const char *ci, size_t *len)
{
    const char *p = strstr(ci, "://") + 3, *end = p + strcspn(p, "/?");
    const char *at = NULL;

    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at)
        p = at + 1;
    while (p < end) {
        const char *spec = p, *stop = memchr(p, ',', (size_t)(end - p));
        if (!stop)
            stop = end;
        const char *colon = NULL;
        if (*spec == '[') { /* [IPv6]:port */
            const char *rb = memchr(spec, ']', (size_t)(stop - spec));
            colon = rb && rb + 1 < stop && rb[1] == ':' ? rb + 1 : NULL;
        } else {
            colon = memchr(spec, ':', (size_t)(stop - spec));
        }
        if (colon && colon + 1 == stop) {
            *len = (size_t)(stop - spec);
            return spec;
        }
        p = stop < end ? stop + 1 : end;
    }
    return NULL;
}

/* pg.conninfo as libpq reads it (a "key=value ..." string, a URI, or else
 * a database name): refused when libpq cannot parse it or a key has an
 * empty value (libpq would silently use its default: port 5432, the user
 * the process runs as). addr gets host:port. */
static int check_conninfo(const char *ci, char *addr, size_t addr_size, char *errstr,
                          size_t errstr_size)
{
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    PQconninfoOption *opts = NULL;
    char *perr = NULL;
    int rc = 0;

    if (!ci || !*ci) {
        core_errstr(errstr, errstr_size, "pg.conninfo: empty (give at least host and dbname)");
        return -1;
    }
    bool uri = !strncmp(ci, "postgresql://", 13) || !strncmp(ci, "postgres://", 11);
    size_t speclen = 0;
    const char *spec = uri ? uri_empty_port(ci, &speclen) : NULL;
    if (spec) {
        core_errstr(errstr, errstr_size,
                    "pg.conninfo: port has an empty value in '%.*s' (libpq would use 5432; "
                    "leave the ':' out for its default)",
                    (int)(speclen > 200 ? 200 : speclen), spec);
        return -1;
    }
    if (strchr(ci, '=') || uri) {
        opts = PQconninfoParse(ci, &perr);
        if (!opts) {
            char m[300];
            snprintf(m, sizeof(m), "%s", perr ? perr : "out of memory");
            m[strcspn(m, "\n")] = '\0';
            core_errstr(errstr, errstr_size, "pg.conninfo: %s", m);
            PQfreemem(perr);
            return -1;
        }
        for (PQconninfoOption *o = opts; o->keyword && rc == 0; o++) {
            if (o->val && !*o->val) {
                core_errstr(errstr, errstr_size,
                            "pg.conninfo: %s has an empty value (leave it out for libpq's "
                            "default)",
                            o->keyword);
                rc = -1;
                break;
            }
            /* "port= dbname=x": libpq skips the blank and reads dbname=x
             * as the port's value */
            for (PQconninfoOption *k = opts; o->val && k->keyword; k++) {
                size_t kl = strlen(k->keyword);
                if (!strncmp(o->val, k->keyword, kl) && o->val[kl] == '=') {
                    core_errstr(errstr, errstr_size,
                                "pg.conninfo: %s has an empty value (libpq would read "
                                "'%s=...' as its value)",
                                o->keyword, k->keyword);
                    rc = -1;
                    break;
                }
            }
            if (rc)
                break;
            if (!strcmp(o->keyword, "host"))
                host = o->val;
            else if (!strcmp(o->keyword, "hostaddr"))
                hostaddr = o->val;
            else if (!strcmp(o->keyword, "port"))
                port = o->val;
        }
    }
    snprintf(addr, addr_size, "%s:%s", host ? host : hostaddr ? hostaddr : "localhost",
             port ? port : "5432");
    PQconninfoFree(opts);
    return rc;
}

static int create_tables(pg_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                         size_t errstr_size);

/* COPY rows straight from the Avro values; the tables when asked. */
static int pg_setup(pers_sink *base, pers_dataset *ds, size_t nds, bool create, char *errstr,
                    size_t errstr_size)
{
    pg_sink *s = (pg_sink *)base;
    if (pers_pg_rows_init(ds, nds, errstr, errstr_size) != 0)
        return CORE_EX_SOFTWARE;
    if (create && create_tables(s, ds, nds, errstr, errstr_size) != 0)
        return CORE_EX_UNAVAILABLE;
    return 0;
}

pers_sink *pers_pg_new(const struct pers_pg_conf *conf, char *errstr, size_t errstr_size)
{
    pg_sink *s = calloc(1, sizeof(*s));
    if (!s) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (check_conninfo(conf->conninfo, s->base.addr, sizeof(s->base.addr), errstr,
                       errstr_size) != 0) {
        free(s);
        return NULL;
    }
    s->conf = conf;
    s->base.name = "postgres";
    s->base.connect = pg_connect;
    s->base.write = pg_write;
    s->base.exec = pg_exec;
    s->base.drop = pg_drop;
    s->base.setup = pg_setup;
    s->base.free = pg_free;
    return &s->base;
}

static int create_tables(pg_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                         size_t errstr_size)
{
    pers_sink *base = &s->base;
    if (pg_connect(base, errstr, errstr_size) != PERS_OK)
        return -1;
    char sql[300];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS \"%s\"", s->conf->schema);
    if (exec_ok(s, sql, errstr, errstr_size) != PERS_OK)
        return -1;
    for (size_t i = 0; i < nds; i++) {
        char *ddl = pers_schema_sql(&ds[i], s->conf->schema);
        if (!ddl) {
            core_errstr(errstr, errstr_size, "out of memory");
            return -1;
        }
        pers_res_t r = exec_ok(s, ddl, errstr, errstr_size);
        free(ddl);
        if (r != PERS_OK)
            return -1;
    }
    return 0;
}
