/* sink_mysql.c — the MySQL/MariaDB sink (libmariadb). One transaction per
 * batch: the stored versions of the batch's keys read and locked first
 * (SELECT … FOR UPDATE on the table and on its tombstones: a concurrent
 * writer of one of those keys waits, or deadlocks and retries), then a
 * multi-row INSERT … ON DUPLICATE KEY UPDATE guarded by the stored version
 * (tb_version assigned last: MySQL evaluates the assignments in order and a
 * later one sees the new value), DELETEs guarded the same way and
 * remembered in a tombstone table, so an older event arriving late cannot
 * bring a deleted row back; a refused row isolated by bisection under
 * savepoints. Semantics as sink_pg.c's. */
#include "persister.h"

#include "tributary/core_common.h"
#include "tributary/core_log.h"

#include <mysql.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct pers_mysql_conf, field), help, lo, hi, ch }

const core_config_key pers_mysql_keys[] = {
    K("mysql.host", CORE_CFG_STR, "127.0.0.1", 0, host, "MySQL/MariaDB server host", 0, 0, NULL),
    K("mysql.port", CORE_CFG_INT, "3306", 0, port, "MySQL/MariaDB server port", 1, 65535, NULL),
    K("mysql.user", CORE_CFG_STR, "tributary", 0, user, "MySQL user", 0, 0, NULL),
    K("mysql.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, password,
      "MySQL password (mysql.password_file / TB_MYSQL_PASSWORD_FILE to read it from a file)", 0,
      0, NULL),
    K("mysql.database", CORE_CFG_STR, "tributary", 0, database,
      "Database holding the dataset tables", 0, 0, NULL),
    K("mysql.connect.timeout.ms", CORE_CFG_INT, "5000", 0, connect_timeout_ms,
      "Longest a connection attempt waits (whole seconds, rounded up)", 1, 600000, NULL),
    K("mysql.read.timeout.ms", CORE_CFG_INT, "60000", 0, read_timeout_ms,
      "Longest the persister waits for the server's answer to one statement (whole seconds, "
      "rounded up)",
      1, 3600000, NULL),
    K("mysql.ssl.ca", CORE_CFG_STR, NULL, 0, ssl_ca,
      "CA certificate file: TLS to the server, its certificate verified", 0, 0, NULL),
    CORE_CFG_END
};

#define NONE INT64_MIN /* no row, no tombstone */

typedef struct my_sink {
    pers_sink base;
    const struct pers_mysql_conf *conf;
    MYSQL *conn;
    bool broken; /* a client-side error (connection lost, timeout): reconnect */
    /* the batch in hand: its ops and, parallel, the versions stored for
     * their keys when the batch locked them */
    pers_op *ops;
    size_t nops;
    int64_t *rowv, *tombv;
} my_sink;

/* Condition names of the errors that are a row's fault. */
static const char *data_error_name(unsigned e, const char *state)
{
    switch (e) {
    case 1062: case 1586: return "unique_violation";
    case 4025: case 3819: return "check_violation";
    case 1048: case 1263: return "not_null_violation";
    case 1216: case 1217: case 1451: case 1452: return "foreign_key_violation";
    case 1264: case 1690: return "numeric_value_out_of_range";
    case 1406: return "string_data_right_truncation";
    case 1292: return "invalid_datetime_format";
    case 1265: case 1300: case 1366: case 1367: return "invalid_text_representation";
    case 1365: return "division_by_zero";
    default: break;
    }
    return pers_sqlstate_name(state); /* the classes 22 and 23 */
}

/* The constraint, key or column a data error names ("constraint x", "key
 * x", "column x") into buf, never a value: MySQL's messages quote values
 * before these ("Duplicate entry 'John' for key 'name'"), so the last
 * occurrence is taken. */
static const char *error_ident(const char *msg, char *buf, size_t size)
{
    static const struct { const char *pat, *what; } pats[] = {
        { "CONSTRAINT `", "constraint" }, { "for key '", "key" },
        { "for column ", "column" },      { "Column '", "column" },
    };
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        const char *p = NULL;
        for (const char *q = strstr(msg, pats[i].pat); q; q = strstr(q + 1, pats[i].pat))
            p = q + strlen(pats[i].pat);
        if (p && i == 2) /* for column 'c' or `db`.`t`.`c` */
            p = *p == '\'' || *p == '`' ? p + 1 : NULL;
        if (!p)
            continue;
        size_t len = strcspn(p, "'`");
        while (p[len] && p[len + 1] == '.' && (p[len + 2] == '`' || p[len + 2] == '\'')) {
            p += len + 3; /* the last part of a dotted name */
            len = strcspn(p, "'`");
        }
        if (!p[len] || len == 0 || len > 128)
            continue;
        snprintf(buf, size, "%s %.*s", pats[i].what, (int)len, p);
        return buf;
    }
    return NULL;
}

/* Is this error the data's fault (isolate the row) or the server's (retry)?
 * A reason for a refused row never quotes the message (it holds values). */
static pers_res_t classify(my_sink *s, char *errstr, size_t errstr_size)
{
    unsigned e = mysql_errno(s->conn);
    const char *state = mysql_sqlstate(s->conn), *msg = mysql_error(s->conn);
    bool client = e >= 2000 && e < 3000; /* CR_*: lost, timed out, out of sync */
    const char *name = e && !client ? data_error_name(e, state) : NULL;
    char id[160];

    if (name) {
        const char *what = error_ident(msg, id, sizeof(id));
        core_errstr(errstr, errstr_size, "mysql %u %s %s%s%s%s", e, state, name,
                    what ? " (" : "", what ? what : "", what ? ")" : "");
        return PERS_ERROR;
    }
    /* the server's or the connection's: the text before any quoted part */
    core_errstr(errstr, errstr_size, "mysql %u %s: %.*s", e, state, (int)strcspn(msg, "'`\""),
                msg);
    if (client || !e)
        s->broken = true;
    return PERS_RETRY;
}

static pers_res_t run(my_sink *s, const char *sql, size_t len, char *errstr, size_t errstr_size)
{
    if (mysql_real_query(s->conn, sql, (unsigned long)len))
        return classify(s, errstr, errstr_size);
    MYSQL_RES *res = mysql_store_result(s->conn);
    if (res)
        mysql_free_result(res);
    else if (mysql_field_count(s->conn))
        return classify(s, errstr, errstr_size);
    return PERS_OK;
}

static pers_res_t exec_ok(my_sink *s, const char *sql, char *errstr, size_t errstr_size)
{
    return run(s, sql, strlen(sql), errstr, errstr_size);
}

static void drop_conn(my_sink *s)
{
    if (s->conn)
        mysql_close(s->conn);
    s->conn = NULL;
    s->broken = false;
}

static pers_res_t my_connect(pers_sink *base, char *errstr, size_t errstr_size)
{
    my_sink *s = (my_sink *)base;
    const struct pers_mysql_conf *c = s->conf;
    if (s->conn && !s->broken)
        return PERS_OK;
    drop_conn(s);
    if (!(s->conn = mysql_init(NULL))) {
        core_errstr(errstr, errstr_size, "mysql: out of memory");
        return PERS_RETRY;
    }
    unsigned int ct = (unsigned int)((c->connect_timeout_ms + 999) / 1000);
    unsigned int rt = (unsigned int)((c->read_timeout_ms + 999) / 1000);
    my_bool on = 1;
    mysql_options(s->conn, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(s->conn, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(s->conn, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_options(s->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (c->ssl_ca && *c->ssl_ca) {
        mysql_options(s->conn, MYSQL_OPT_SSL_CA, c->ssl_ca);
        mysql_options(s->conn, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_options(s->conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    if (!mysql_real_connect(s->conn, c->host, c->user, c->password ? c->password : "",
                            c->database, (unsigned int)c->port, NULL, 0)) {
        unsigned e = mysql_errno(s->conn);
        const char *key = e == 1045 || e == 1698 ? "mysql.password"
                          : e == 1044 || e == 1049 ? "mysql.database"
                                                   : NULL;
        if (key)
            core_errstr(errstr, errstr_size, "%s: mysql at %s refused the login of user %s: %s",
                        key, s->base.addr, c->user, mysql_error(s->conn));
        else
            core_errstr(errstr, errstr_size, "mysql connect: %s", mysql_error(s->conn));
        drop_conn(s);
        return key ? PERS_ERROR : PERS_RETRY;
    }
    /* strict: a value the column cannot hold is an error, not a warning and
     * a changed value; times in UTC; row locks with gap locks (REPEATABLE
     * READ), so a key absent at the batch's read cannot appear under it */
    if (exec_ok(s, "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
                   "ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE', time_zone = "
                   "'+00:00', autocommit = 1",
                errstr, errstr_size) != PERS_OK ||
        exec_ok(s, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", errstr,
                errstr_size) != PERS_OK) {
        drop_conn(s);
        return PERS_RETRY;
    }
    return PERS_OK;
}

static pers_res_t my_exec(pers_sink *base, const char *sql, char *errstr, size_t errstr_size)
{
    return exec_ok((my_sink *)base, sql, errstr, errstr_size);
}

static void my_drop(pers_sink *base)
{
    drop_conn((my_sink *)base);
}

/* s as a quoted SQL string literal. */
static void add_quoted(my_sink *s, core_strbuf *b, const char *v, size_t len)
{
    char stack[512], *tmp = len * 2 + 1 <= sizeof(stack) ? stack : malloc(len * 2 + 1);
    if (!tmp) {
        b->failed = true;
        return;
    }
    unsigned long n = mysql_real_escape_string(s->conn, tmp, v, (unsigned long)len);
    core_strbuf_add(b, "'");
    core_strbuf_addn(b, tmp, n);
    core_strbuf_add(b, "'");
    if (tmp != stack)
        free(tmp);
}

/* A column's value (natural JSON's text, NULL for SQL NULL) as a literal
 * of its MySQL type: booleans TRUE/FALSE, ISO 8601 times in UTC
 * ("…T…Z") as DATETIME text, the rest quoted (the server converts a
 * number's or a decimal's text exactly, or refuses it). */
static void add_value(my_sink *s, core_strbuf *b, const pers_column *c, const char *v)
{
    char ts[64];
    size_t len;

    if (!v) {
        core_strbuf_add(b, "NULL");
        return;
    }
    len = strlen(v);
    if (!strcmp(c->pg_type, "boolean") && (!strcmp(v, "true") || !strcmp(v, "false"))) {
        core_strbuf_add(b, v[0] == 't' ? "TRUE" : "FALSE");
        return;
    }
    if (!strcmp(c->pg_type, "timestamptz") && len > 19 && len < sizeof(ts) && v[10] == 'T' &&
        v[len - 1] == 'Z') {
        memcpy(ts, v, len - 1);
        ts[10] = ' ';
        ts[len - 1] = '\0';
        v = ts;
        len--;
    }
    add_quoted(s, b, v, len);
}

static void add_ident(core_strbuf *b, const char *name, const char *suffix)
{
    core_strbuf_addf(b, "`%s%s`", name, suffix);
}

/* Ops are sorted by key (pers_reduce): the index of key's op, or -1. */
static long find_op(const my_sink *s, const char *key, size_t len)
{
    size_t lo = 0, hi = s->nops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = s->ops[mid].key;
        int c = strncmp(k, key, len);
        if (c == 0 && k[len])
            c = 1;
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Read and lock the stored versions of the batch's keys in table+suffix
 * into vers (NONE where nothing is stored), LOCK_KEYS keys a statement. */
#define LOCK_KEYS 1000
static pers_res_t lock_read(my_sink *s, pers_dataset *ds, const char *suffix,
                            const char *keycol, int64_t *vers, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < s->nops; i++)
        vers[i] = NONE;
    for (size_t from = 0; from < s->nops; from += LOCK_KEYS) {
        size_t to = s->nops - from > LOCK_KEYS ? from + LOCK_KEYS : s->nops;
        core_strbuf b = { 0 };
        core_strbuf_addf(&b, "SELECT `%s`, tb_version FROM ", keycol);
        add_ident(&b, ds->name, suffix);
        core_strbuf_addf(&b, " WHERE `%s` IN (", keycol);
        for (size_t i = from; i < to; i++) {
            if (i > from)
                core_strbuf_add(&b, ",");
            add_quoted(s, &b, s->ops[i].key, strlen(s->ops[i].key));
        }
        core_strbuf_add(&b, ") FOR UPDATE");
        if (b.failed) {
            free(b.p);
            core_errstr(errstr, errstr_size, "out of memory");
            return PERS_RETRY;
        }
        int rc = mysql_real_query(s->conn, b.p, (unsigned long)b.len);
        free(b.p);
        MYSQL_RES *res = rc ? NULL : mysql_store_result(s->conn);
        if (!res) {
            pers_res_t r = classify(s, errstr, errstr_size);
            return r == PERS_OK ? PERS_RETRY : r;
        }
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res))) {
            unsigned long *lens = mysql_fetch_lengths(res);
            long i = row[0] && row[1] ? find_op(s, row[0], lens[0]) : -1;
            if (i >= 0)
                vers[i] = strtoll(row[1], NULL, 10);
        }
        mysql_free_result(res);
    }
    return PERS_OK;
}

/* Rows, or bytes, per statement: well under the server's max_allowed_packet
 * (16 MiB by default), whatever batch.size is. */
#define CHUNK_ROWS 1000
#define CHUNK_BYTES (4u << 20)

/* Run the statements of one chunk: the guarded upsert of its rows (up),
 * the guarded delete (del) and the tombstones (tomb) of its deletes. */
static pers_res_t run_chunk(my_sink *s, pers_dataset *ds, core_strbuf *up, core_strbuf *del,
                            core_strbuf *tomb, char *errstr, size_t errstr_size)
{
    core_strbuf b = { 0 }, d = { 0 }, t = { 0 };
    pers_res_t r = PERS_OK;

    if (up->len) {
        core_strbuf_add(&b, "INSERT INTO ");
        add_ident(&b, ds->name, "");
        core_strbuf_add(&b, " (");
        for (size_t c = 0; c < ds->ncols; c++)
            core_strbuf_addf(&b, "`%s`,", ds->cols[c].name);
        core_strbuf_add(&b, "tb_version,tb_id,tb_batch,tb_persisted_at) VALUES ");
        core_strbuf_addn(&b, up->p, up->len);
        core_strbuf_add(&b, " ON DUPLICATE KEY UPDATE ");
        /* the guard: every column only when the stored version is not
         * newer; tb_version last, the others still see the stored one */
        for (size_t c = 0; c < ds->ncols; c++)
            if (c != ds->key_col)
                core_strbuf_addf(&b,
                                 "`%s` = IF(tb_version <= VALUES(tb_version), VALUES(`%s`), "
                                 "`%s`), ",
                                 ds->cols[c].name, ds->cols[c].name, ds->cols[c].name);
        static const char *const meta[] = { "tb_id", "tb_batch", "tb_persisted_at",
                                            "tb_version" };
        for (size_t m = 0; m < 4; m++)
            core_strbuf_addf(&b, "%s = IF(tb_version <= VALUES(tb_version), VALUES(%s), %s)%s",
                             meta[m], meta[m], meta[m], m < 3 ? ", " : "");
    }
    if (del->len) {
        core_strbuf_add(&d, "DELETE FROM ");
        add_ident(&d, ds->name, "");
        core_strbuf_add(&d, " WHERE ");
        core_strbuf_addn(&d, del->p, del->len);
        core_strbuf_add(&t, "INSERT INTO ");
        add_ident(&t, ds->name, "_tombstone");
        core_strbuf_add(&t, " (`key`, tb_version, tb_deleted_at) VALUES ");
        core_strbuf_addn(&t, tomb->p, tomb->len);
        core_strbuf_add(&t, " ON DUPLICATE KEY UPDATE tb_deleted_at = IF(tb_version <= "
                            "VALUES(tb_version), VALUES(tb_deleted_at), tb_deleted_at), "
                            "tb_version = GREATEST(tb_version, VALUES(tb_version))");
    }
    if (up->failed || del->failed || tomb->failed || b.failed || d.failed || t.failed) {
        core_errstr(errstr, errstr_size, "out of memory");
        r = PERS_RETRY;
    }
    if (r == PERS_OK && b.len)
        r = run(s, b.p, b.len, errstr, errstr_size);
    if (r == PERS_OK && d.len)
        r = run(s, d.p, d.len, errstr, errstr_size);
    if (r == PERS_OK && t.len)
        r = run(s, t.p, t.len, errstr, errstr_size);
    free(b.p);
    free(d.p);
    free(t.p);
    free(up->p);
    free(del->p);
    free(tomb->p);
    *up = *del = *tomb = (core_strbuf){ 0 };
    return r;
}

/* Write ops[0..n) (a range of the batch) inside the current transaction,
 * CHUNK_ROWS at a time: all or nothing (after a refusal the caller rolls
 * back to its savepoint). */
static pers_res_t write_range(my_sink *s, pers_dataset *ds, pers_op *ops, size_t n,
                              char *errstr, size_t errstr_size)
{
    const char *key = ds->cols[ds->key_col].name;
    core_strbuf up = { 0 }, del = { 0 }, tomb = { 0 };
    size_t rows = 0;
    pers_res_t r = PERS_OK;

    for (size_t i = 0; i < n && r == PERS_OK; i++) {
        pers_op *op = &ops[i];
        size_t j = (size_t)(op - s->ops);
        int64_t rv = s->rowv[j], tv = s->tombv[j], v = op->version;
        if (op->kind == PERS_UPSERT) {
            if (tv != NONE && tv >= v)
                continue; /* deleted at this version or later */
            core_strbuf_add(&up, up.len ? ",(" : "(");
            for (size_t c = 0; c < ds->ncols; c++) {
                char *tmp;
                add_value(s, &up, &ds->cols[c], pers_column_text(op->rec, &ds->cols[c], &tmp));
                free(tmp);
                core_strbuf_add(&up, ",");
            }
            core_strbuf_addf(&up, "%lld,", (long long)v);
            add_quoted(s, &up, op->rec->id, strlen(op->rec->id));
            core_strbuf_add(&up, ",");
            add_quoted(s, &up, op->rec->batch_id, strlen(op->rec->batch_id));
            core_strbuf_add(&up, ",NOW(3))");
        } else if (rv == NONE || rv <= v) { /* no newer row stored */
            core_strbuf_add(&del, del.len ? " OR (`" : "(`");
            core_strbuf_add(&del, key);
            core_strbuf_add(&del, "` = ");
            add_quoted(s, &del, op->key, strlen(op->key));
            core_strbuf_addf(&del, " AND tb_version <= %lld)", (long long)v);
            core_strbuf_add(&tomb, tomb.len ? ",(" : "(");
            add_quoted(s, &tomb, op->key, strlen(op->key));
            core_strbuf_addf(&tomb, ",%lld,NOW(3))", (long long)v);
        }
        if (++rows >= CHUNK_ROWS || up.len + del.len + tomb.len >= CHUNK_BYTES) {
            r = run_chunk(s, ds, &up, &del, &tomb, errstr, errstr_size);
            rows = 0;
        }
    }
    if (r == PERS_OK && (up.len || del.len))
        r = run_chunk(s, ds, &up, &del, &tomb, errstr, errstr_size);
    free(up.p);
    free(del.p);
    free(tomb.p);
    if (r != PERS_OK)
        return r;
    /* what the guarded statements did, from the versions locked */
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)(&ops[i] - s->ops);
        int64_t rv = s->rowv[j], tv = s->tombv[j], v = ops[i].version;
        bool written = ops[i].kind == PERS_UPSERT
                           ? (tv == NONE || tv < v) && (rv == NONE || rv <= v)
                           : (rv == NONE || rv <= v) && (tv == NONE || tv <= v);
        ops[i].fate = written ? PERS_WRITTEN : PERS_STALE;
    }
    return PERS_OK;
}

/* One range under a savepoint, all or nothing (pers_bisect's range
 * function): PERS_ERROR after a data error, rolled back to the savepoint. */
static pers_res_t write_savepoint(void *ctx, pers_dataset *ds, pers_op *ops, size_t n,
                                  char *err, size_t err_size)
{
    my_sink *s = ctx;
    char e2[128];
    if (exec_ok(s, "SAVEPOINT tb_sp", err, err_size) != PERS_OK)
        return PERS_RETRY;
    pers_res_t r = write_range(s, ds, ops, n, err, err_size);
    if (r == PERS_OK)
        return exec_ok(s, "RELEASE SAVEPOINT tb_sp", err, err_size) == PERS_OK ? PERS_OK
                                                                               : PERS_RETRY;
    if (r == PERS_RETRY)
        return PERS_RETRY;
    if (exec_ok(s, "ROLLBACK TO SAVEPOINT tb_sp", e2, sizeof(e2)) != PERS_OK ||
        exec_ok(s, "RELEASE SAVEPOINT tb_sp", e2, sizeof(e2)) != PERS_OK)
        return PERS_RETRY;
    return PERS_ERROR;
}

static pers_res_t my_write(pers_sink *base, pers_dataset *ds, pers_op *ops, size_t n,
                           char *errstr, size_t errstr_size)
{
    my_sink *s = (my_sink *)base;
    char e2[128];
    pers_res_t r = PERS_RETRY;

    if (n == 0)
        return PERS_OK;
    if (my_connect(base, errstr, errstr_size) != PERS_OK)
        return PERS_RETRY; /* a refusal too: nothing the rows can change */
    s->ops = ops;
    s->nops = n;
    s->rowv = malloc(n * sizeof(int64_t));
    s->tombv = malloc(n * sizeof(int64_t));
    if (!s->rowv || !s->tombv) {
        core_errstr(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (exec_ok(s, "START TRANSACTION", errstr, errstr_size) != PERS_OK)
        goto out;
    r = lock_read(s, ds, "", ds->cols[ds->key_col].name, s->rowv, errstr, errstr_size);
    if (r == PERS_OK)
        r = lock_read(s, ds, "_tombstone", "key", s->tombv, errstr, errstr_size);
    if (r == PERS_OK)
        r = pers_bisect(write_savepoint, s, ds, ops, n, errstr, errstr_size);
    if (r == PERS_OK && exec_ok(s, "COMMIT", errstr, errstr_size) != PERS_OK)
        r = PERS_RETRY;
    if (r != PERS_OK) {
        r = PERS_RETRY; /* a refused lock read is no row's: the table's */
        if (!s->broken)
            exec_ok(s, "ROLLBACK", e2, sizeof(e2));
    }
out:
    free(s->rowv);
    free(s->tombv);
    s->rowv = s->tombv = NULL;
    s->ops = NULL;
    s->nops = 0;
    if (r != PERS_OK) {
        for (size_t i = 0; i < n; i++) {
            ops[i].fate = PERS_PENDING;
            free(ops[i].error);
            ops[i].error = NULL;
        }
        if (s->broken)
            drop_conn(s);
    }
    return r;
}

/* The MySQL type of a column from the PostgreSQL type schema.c gives. The
 * key is a VARCHAR (a primary key cannot be TEXT) compared byte for byte
 * and without padding, as Kafka's keys are. */
static void mysql_type(const pers_column *c, bool key, char *buf, size_t size)
{
    static const struct { const char *pg, *my; } map[] = {
        { "text", "TEXT" },         { "integer", "INT" },         { "bigint", "BIGINT" },
        { "real", "FLOAT" },        { "double precision", "DOUBLE" }, { "boolean", "BOOLEAN" },
        { "date", "DATE" },         { "jsonb", "JSON" },
    };
    const char *t = c->pg_type;
    int p, sc;

    if (key) {
        snprintf(buf, size, "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin");
        return;
    }
    if (sscanf(t, "numeric(%d,%d)", &p, &sc) == 2) {
        snprintf(buf, size, "DECIMAL(%d,%d)", p, sc); /* exact */
        return;
    }
    if (!strcmp(t, "timestamptz")) { /* UTC (the session's time_zone) */
        snprintf(buf, size, c->is_time_ms ? "DATETIME(3)" : "DATETIME(6)");
        return;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(t, map[i].pg)) {
            snprintf(buf, size, "%s", map[i].my);
            return;
        }
    snprintf(buf, size, "TEXT");
}

char *pers_mysql_schema_sql(const pers_dataset *ds)
{
    core_strbuf b = { 0 };
    char type[128];
    const char *opts = ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;\n";

    core_strbuf_addf(&b, "-- dataset %s (%s), generated by svc-persister from its Avro schema\n",
                     ds->name, core_avro_schema_name(ds->schema));
    core_strbuf_addf(&b, "CREATE TABLE IF NOT EXISTS `%s` (\n", ds->name);
    for (size_t i = 0; i < ds->ncols; i++) {
        const pers_column *c = &ds->cols[i];
        mysql_type(c, c->is_key, type, sizeof(type));
        core_strbuf_addf(&b, "    `%s` %s%s,\n", c->name, type,
                         c->nullable && !c->is_key ? " NULL" : " NOT NULL");
    }
    core_strbuf_addf(&b,
                     "    tb_version BIGINT NOT NULL,\n    tb_id TEXT NOT NULL,\n"
                     "    tb_batch TEXT NOT NULL,\n"
                     "    tb_persisted_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n"
                     "    PRIMARY KEY (`%s`)\n%s",
                     ds->cols[ds->key_col].name, opts);
    mysql_type(&ds->cols[ds->key_col], true, type, sizeof(type));
    core_strbuf_addf(&b,
                     "-- versions of deleted keys, so an older event arriving late cannot bring "
                     "a deleted row back\n"
                     "CREATE TABLE IF NOT EXISTS `%s_tombstone` (\n    `key` %s NOT NULL,\n"
                     "    tb_version BIGINT NOT NULL,\n"
                     "    tb_deleted_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n"
                     "    PRIMARY KEY (`key`)\n%s",
                     ds->name, type, opts);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* With create, the tables (each statement of pers_mysql_schema_sql). */
static int my_setup(pers_sink *base, pers_dataset *ds, size_t nds, bool create, char *errstr,
                    size_t errstr_size)
{
    my_sink *s = (my_sink *)base;
    if (!create)
        return 0;
    if (my_connect(base, errstr, errstr_size) != PERS_OK)
        return CORE_EX_UNAVAILABLE;
    for (size_t i = 0; i < nds; i++) {
        char *ddl = pers_mysql_schema_sql(&ds[i]), *stmt, *next;
        pers_res_t r = PERS_OK;
        if (!ddl) {
            core_errstr(errstr, errstr_size, "out of memory");
            return CORE_EX_SOFTWARE;
        }
        for (stmt = strstr(ddl, "CREATE"); stmt && r == PERS_OK; stmt = next) {
            char *end = strstr(stmt, ";\n");
            next = end ? strstr(end, "CREATE") : NULL;
            r = run(s, stmt, end ? (size_t)(end - stmt) : strlen(stmt), errstr, errstr_size);
        }
        free(ddl);
        if (r != PERS_OK)
            return CORE_EX_UNAVAILABLE;
    }
    return 0;
}

static void my_free(pers_sink *base)
{
    my_sink *s = (my_sink *)base;
    if (!s)
        return;
    drop_conn(s);
    free(s);
    mysql_library_end(); /* pers_mysql_new's mysql_library_init */
}

pers_sink *pers_mysql_new(const struct pers_mysql_conf *conf, char *errstr, size_t errstr_size)
{
    my_sink *s;
    if (!conf->host || !*conf->host || !conf->user || !*conf->user || !conf->database ||
        !*conf->database) {
        core_errstr(errstr, errstr_size, "%s: empty",
                    !conf->host || !*conf->host   ? "mysql.host"
                    : !conf->user || !*conf->user ? "mysql.user"
                                                  : "mysql.database");
        return NULL;
    }
    /* before any thread: libmariadb's global state */
    if (mysql_library_init(0, NULL, NULL) || !(s = calloc(1, sizeof(*s)))) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(s->base.addr, sizeof(s->base.addr), "%s:%lld", conf->host, (long long)conf->port);
    s->conf = conf;
    s->base.name = "mysql";
    s->base.connect = my_connect;
    s->base.write = my_write;
    s->base.exec = my_exec;
    s->base.drop = my_drop;
    s->base.setup = my_setup;
    s->base.free = my_free;
    return &s->base;
}
