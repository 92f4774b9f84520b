/* statement.c — closing batches and windows into hash-chained statements,
 * and checking the chain (statement.h). */
#include "statement.h"
#include "report.h"
#include "webhook.h"
#include "winreport.h"

#include "tributary/core_digest.h"
#include "tributary/core_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pg_err(PGconn *c, char *errstr, size_t errstr_size)
{
    char m[400];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    core_errstr(errstr, errstr_size, "postgres statements: %s", m);
}

/* sql with nparams text parameters; the result, or NULL with errstr set
 * when it returned no rows to read. */
static PGresult *query(PGconn *c, const char *sql, int nparams, const char *const *params,
                       char *errstr, size_t errstr_size)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    pg_err(c, errstr, errstr_size);
    PQclear(r);
    return NULL;
}

static core_err_t exec(PGconn *c, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        return CORE_OK;
    pg_err(c, errstr, errstr_size);
    return CORE_ERR_TRANSIENT;
}

/* The text a statement's hash covers (statement.h), malloc'd. */
static char *hashed_text(int64_t seq, const char *kind, const char *subject, int64_t window_ms,
                         int64_t window_start, int version, bool clean, int64_t created_ms,
                         const uint8_t *prev, const char *body)
{
    core_strbuf b = { 0 };
    core_strbuf_addf(&b,
                     "tributary-recon statement v1\n%" PRId64 "\n%s\n%s\n%" PRId64 "\n%" PRId64
                     "\n%d\n%d\n%" PRId64 "\n",
                     seq, kind, subject, window_ms, window_start, version, clean ? 1 : 0,
                     created_ms);
    for (int i = 0; i < CORE_DIGEST_LEN; i++)
        core_strbuf_addf(&b, "%02x", prev[i]);
    core_strbuf_add(&b, "\n");
    core_strbuf_add(&b, body);
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

static void hex(const uint8_t *p, char *out)
{
    for (int i = 0; i < CORE_DIGEST_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int unhex_bytea(const char *t, uint8_t *out)
{
    core_digest d;
    if (!t || strncmp(t, "\\x", 2) != 0 || core_digest_from_hex(t + 2, &d) != 0)
        return -1;
    memcpy(out, d.b, CORE_DIGEST_LEN);
    return 0;
}

/* Append one statement after the head, and mark its subject closed. In the
 * caller's transaction (which holds the state lock). */
static core_err_t write_statement(PGconn *c, const char *schema, const char *kind,
                                  const char *subject, int64_t window_ms, int64_t window_start,
                                  bool clean, cJSON *verdict, int64_t now, int *version_out,
                                  bool *was_clean, char *errstr, size_t errstr_size)
{
    char sql[700], seqs[24], wms[24], wst[24], vers[12], now_s[24], ph[2 * CORE_DIGEST_LEN + 3],
        hh[2 * CORE_DIGEST_LEN + 3];
    uint8_t prev[CORE_DIGEST_LEN] = { 0 };
    int64_t seq = 1, amends = -1;
    int version = 1;
    PGresult *r;
    core_err_t e = CORE_ERR_TRANSIENT;

    snprintf(sql, sizeof(sql), "SELECT seq, hash FROM %s.statements ORDER BY seq DESC LIMIT 1",
             schema);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto pgfail;
    if (PQntuples(r) == 1) {
        seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10) + 1;
        if (unhex_bytea(PQgetvalue(r, 0, 1), prev) != 0) {
            PQclear(r);
            core_errstr(errstr, errstr_size, "statements: the head's hash is not 32 bytes");
            return CORE_ERR_INVALID;
        }
    }
    PQclear(r);
    snprintf(wms, sizeof(wms), "%" PRId64, window_ms);
    snprintf(wst, sizeof(wst), "%" PRId64, window_start);
    const char *cp[4] = { kind, subject, wms, wst };
    snprintf(sql, sizeof(sql),
             "SELECT k.version, k.last_seq, s.clean FROM %s.closings k LEFT JOIN %s.statements s "
             "ON s.seq = k.last_seq WHERE k.kind = $1 AND k.subject = $2 AND k.window_ms = $3 "
             "AND k.window_start = $4", schema, schema);
    r = PQexecParams(c, sql, 4, NULL, cp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto pgfail;
    *was_clean = true; /* a first statement: as if clean before */
    if (PQntuples(r) == 1) {
        version = atoi(PQgetvalue(r, 0, 0)) + 1;
        if (!PQgetisnull(r, 0, 1))
            amends = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        if (!PQgetisnull(r, 0, 2))
            *was_clean = PQgetvalue(r, 0, 2)[0] == 't';
    }
    PQclear(r);

    cJSON *body_o = cJSON_CreateObject();
    cJSON_AddStringToObject(body_o, "kind", kind);
    cJSON_AddStringToObject(body_o, "subject", subject);
    cJSON_AddNumberToObject(body_o, "version", version);
    if (amends > 0)
        cJSON_AddNumberToObject(body_o, "amends", (double)amends);
    else
        cJSON_AddNullToObject(body_o, "amends");
    cJSON_AddBoolToObject(body_o, "clean", clean);
    cJSON_AddItemReferenceToObject(body_o, "verdict", verdict);
    char *body = cJSON_PrintUnformatted(body_o);
    cJSON_Delete(body_o);
    char *text = body ? hashed_text(seq, kind, subject, window_ms, window_start, version, clean,
                                    now, prev, body) : NULL;
    if (!text) {
        free(body);
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    core_digest h;
    core_digest_sha256(text, strlen(text), &h);
    free(text);
    snprintf(seqs, sizeof(seqs), "%" PRId64, seq);
    snprintf(vers, sizeof(vers), "%d", version);
    snprintf(now_s, sizeof(now_s), "%" PRId64, now);
    memcpy(ph, "\\x", 2);
    hex(prev, ph + 2);
    memcpy(hh, "\\x", 2);
    hex(h.b, hh + 2);
    const char *ip[11] = { seqs, kind, subject, wms, wst, vers, clean ? "t" : "f", now_s, body,
                           ph, hh };
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.statements (seq, kind, subject, window_ms, window_start, version, "
             "clean, created_ms, body, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
             "$9, $10::bytea, $11::bytea)", schema);
    r = PQexecParams(c, sql, 11, NULL, ip, NULL, NULL, 0);
    free(body);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto pgfail;
    PQclear(r);
    const char *up[7] = { kind, subject, wms, wst, vers, seqs, now_s };
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.closings (kind, subject, window_ms, window_start, state, version, "
             "last_seq, closed_ms) VALUES ($1, $2, $3, $4, 'closed', $5, $6, $7) ON CONFLICT "
             "(kind, subject, window_ms, window_start) DO UPDATE SET state = 'closed', version = "
             "EXCLUDED.version, last_seq = EXCLUDED.last_seq, closed_ms = EXCLUDED.closed_ms",
             schema);
    r = PQexecParams(c, sql, 7, NULL, up, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto pgfail;
    PQclear(r);
    *version_out = version;
    return CORE_OK;
pgfail:
    pg_err(c, errstr, errstr_size);
    PQclear(r);
    return e;
}

/* Each stage's watermark: the oldest newest-time of its partitions. */
static core_err_t load_watermarks(PGconn *c, const char *schema, int64_t *wm, char *errstr,
                                  size_t errstr_size)
{
    char sql[200];
    for (int s = 0; s < RS_COUNT; s++)
        wm[s] = INT64_MIN;
    snprintf(sql, sizeof(sql), "SELECT stage, min(ts_ms) FROM %s.watermarks GROUP BY stage",
             schema);
    PGresult *r = query(c, sql, 0, NULL, errstr, errstr_size);
    if (!r)
        return CORE_ERR_TRANSIENT;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *st = PQgetvalue(r, i, 0);
        int s = recon_stage_index(st, strlen(st));
        if (s >= 0)
            wm[s] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    return CORE_OK;
}

/* Whether every expected stage's watermark passed end + grace, or the
 * pipeline went quiet long enough. */
static bool due(const int64_t *wm, unsigned expected, int64_t end, const recon_close_opts *o,
                int64_t now)
{
    bool all = true;
    for (int s = 0; s < RS_COUNT; s++)
        if ((expected & (1u << s)) && (wm[s] == INT64_MIN || wm[s] <= end + o->grace_ms))
            all = false;
    return all || now > end + o->grace_ms + o->idle_ms;
}

/* The webhook alerts of one recon_close_due(), held until its transaction
 * commits: a rollback sends none. */
typedef struct pending_alert {
    const char *kind;   /* static */
    char *subject;
    int version;
    bool clean;
    cJSON *verdict;
} pending_alert;

typedef struct pending_alerts {
    pending_alert *a;
    size_t n, cap;
} pending_alerts;

static void pending_free(pending_alerts *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->a[i].subject);
        cJSON_Delete(p->a[i].verdict);
    }
    free(p->a);
    memset(p, 0, sizeof(*p));
}

/* The webhook on a change of verdict (a statement unclean where there was
 * none or a clean one, clean where the last was unclean), held in *p. */
static core_err_t alert(const recon_close_opts *o, pending_alerts *p, const char *kind,
                        const char *subject, int version, bool clean, bool was_clean,
                        const cJSON *verdict, char *errstr, size_t errstr_size)
{
    pending_alert *x;

    if (clean == was_clean || !o->webhook)
        return CORE_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        pending_alert *na = realloc(p->a, cap * sizeof(*na));

        if (!na)
            goto nomem;
        p->a = na;
        p->cap = cap;
    }
    x = &p->a[p->n];
    x->kind = kind;
    x->version = version;
    x->clean = clean;
    x->subject = strdup(subject);
    x->verdict = cJSON_Duplicate(verdict, 1);
    if (!x->subject || !x->verdict) {
        free(x->subject);
        cJSON_Delete(x->verdict);
        goto nomem;
    }
    p->n++;
    return CORE_OK;
nomem:
    core_errstr(errstr, errstr_size, "out of memory");
    return CORE_ERR_NOMEM;
}

static void note(const char *kind, const char *subject, int version, bool clean,
                 recon_close_stats *st)
{
    if (!clean)
        st->unclean++;
    if (version > 1)
        st->amended++;
    if (version > 1 || !clean)
        core_log_warn(version > 1 ? "statement amended after a late event"
                                  : "closed unclean",
                      CLF_S("kind", kind), CLF_S("subject", subject),
                      CLF_I("version", version), CLF_B("clean", clean));
    else
        core_log_info("closed", CLF_S("kind", kind), CLF_S("subject", subject));
}

static core_err_t close_batches(PGconn *c, const recon_close_opts *o, const int64_t *wm,
                                int64_t now, recon_close_stats *st, pending_alerts *pa,
                                char *errstr, size_t errstr_size)
{
    char sql[700];
    const char *params[1] = { o->only_batch };
    snprintf(sql, sizeof(sql),
             "SELECT a.batch_id, max(a.last_ts_ms), string_agg(DISTINCT a.dataset, ',') FROM "
             "%s.aggregates a LEFT JOIN %s.closings k ON k.kind = 'batch' AND k.subject = "
             "a.batch_id AND k.window_ms = 0 AND k.window_start = 0 WHERE (k.state IS NULL OR "
             "k.state = 'reopened') AND ($1::text IS NULL OR a.batch_id = $1) GROUP BY a.batch_id "
             "ORDER BY max(a.last_ts_ms), a.batch_id", o->schema, o->schema);
    PGresult *r = query(c, sql, 1, params, errstr, errstr_size);
    if (!r)
        return CORE_ERR_TRANSIENT;
    core_err_t e = CORE_OK;
    for (int i = 0; i < PQntuples(r) && e == CORE_OK; i++) {
        const char *batch = PQgetvalue(r, i, 0);
        int64_t end = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        char dss[1024];
        unsigned expected = 0;
        snprintf(dss, sizeof(dss), "%s", PQgetvalue(r, i, 2));
        for (char *save = NULL, *d = strtok_r(dss, ",", &save); d && e == CORE_OK;
             d = strtok_r(NULL, ",", &save)) {
            unsigned x = 0;
            e = recon_expected_stages(c, o->schema, d, o->rec.sinks, &x, errstr, errstr_size);
            expected |= x;
        }
        if (e != CORE_OK || !due(wm, expected, end, o, now))
            continue;
        recon_report *rep = NULL;
        if ((e = recon_reconcile_batch(c, &o->rec, batch, &rep, errstr, errstr_size)) != CORE_OK)
            break;
        cJSON *v = recon_report_json(rep);
        int version = 0;
        bool clean = rep->clean, was_clean = true;
        recon_report_free(rep);
        if (!v) {
            e = CORE_ERR_NOMEM;
            break;
        }
        cJSON_DeleteItemFromObject(v, "seconds"); /* the verdict, not how long it took */
        e = write_statement(c, o->schema, "batch", batch, 0, 0, clean, v, now, &version,
                            &was_clean, errstr, errstr_size);
        if (e == CORE_OK) {
            st->batches++;
            note("batch", batch, version, clean, st);
            e = alert(o, pa, "batch", batch, version, clean, was_clean, v, errstr,
                      errstr_size);
        }
        cJSON_Delete(v);
    }
    PQclear(r);
    return e;
}

static core_err_t close_windows(PGconn *c, const recon_close_opts *o, const int64_t *wm,
                                int64_t now, recon_close_stats *st, pending_alerts *pa,
                                char *errstr, size_t errstr_size)
{
    char sql[700], wms[24];
    snprintf(wms, sizeof(wms), "%" PRId64, o->window_ms);
    const char *params[1] = { wms };
    snprintf(sql, sizeof(sql),
             "SELECT DISTINCT w.dataset, w.window_start FROM %s.windows w LEFT JOIN %s.closings k "
             "ON k.kind = 'window' AND k.subject = w.dataset AND k.window_ms = w.window_ms AND "
             "k.window_start = w.window_start WHERE w.window_ms = $1 AND (k.state IS NULL OR "
             "k.state = 'reopened') ORDER BY w.window_start, w.dataset", o->schema, o->schema);
    PGresult *r = query(c, sql, 1, params, errstr, errstr_size);
    if (!r)
        return CORE_ERR_TRANSIENT;
    core_err_t e = CORE_OK;
    for (int i = 0; i < PQntuples(r) && e == CORE_OK; i++) {
        const char *ds = PQgetvalue(r, i, 0);
        int64_t start = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        unsigned expected = 0;
        if ((e = recon_expected_stages(c, o->schema, ds, o->rec.sinks, &expected, errstr,
                                       errstr_size)) != CORE_OK)
            break;
        if (!due(wm, expected, start + o->window_ms, o, now))
            continue;
        recon_win_query q = { o->schema, ds, o->window_ms, start, start + 1, o->rec.sinks };
        cJSON *all = NULL;
        if ((e = recon_windows_json(c, &q, &all, errstr, errstr_size)) != CORE_OK)
            break;
        cJSON *w = cJSON_DetachItemFromArray(cJSON_GetObjectItem(all, "windows"), 0);
        cJSON_Delete(all);
        if (!w)
            continue;
        /* the statement fixes the verdict; its state is the closing's */
        cJSON_DeleteItemFromObject(w, "state");
        cJSON_DeleteItemFromObject(w, "version");
        cJSON_AddStringToObject(w, "dataset", ds);
        bool clean = cJSON_IsTrue(cJSON_GetObjectItem(w, "clean"));
        int version = 0;
        bool was_clean = true;
        e = write_statement(c, o->schema, "window", ds, o->window_ms, start, clean, w, now,
                            &version, &was_clean, errstr, errstr_size);
        if (e == CORE_OK) {
            char subj[300];
            snprintf(subj, sizeof(subj), "%s@%" PRId64, ds, start);
            st->windows++;
            note("window", subj, version, clean, st);
            e = alert(o, pa, "window", subj, version, clean, was_clean, w, errstr,
                      errstr_size);
        }
        cJSON_Delete(w);
    }
    PQclear(r);
    return e;
}

core_err_t recon_close_due(PGconn *c, const recon_close_opts *o, recon_close_stats *stats,
                           char *errstr, size_t errstr_size)
{
    int64_t wm[RS_COUNT], now = o->now_ms ? o->now_ms : core_now_ms();
    char sql[200];
    core_err_t e;
    recon_close_stats st = { 0 };
    pending_alerts pa = { 0 };

    if ((e = exec(c, "BEGIN", errstr, errstr_size)) != CORE_OK)
        return e;
    /* the state lock of state.c's apply: no event is applied meanwhile */
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(hashtext('tributary_recon:%s'))",
             o->schema);
    if ((e = exec(c, sql, errstr, errstr_size)) != CORE_OK ||
        (e = load_watermarks(c, o->schema, wm, errstr, errstr_size)) != CORE_OK ||
        (o->batches &&
         (e = close_batches(c, o, wm, now, &st, &pa, errstr, errstr_size)) != CORE_OK) ||
        (o->windows &&
         (e = close_windows(c, o, wm, now, &st, &pa, errstr, errstr_size)) != CORE_OK) ||
        (e = exec(c, "COMMIT", errstr, errstr_size)) != CORE_OK) {
        exec(c, "ROLLBACK", NULL, 0);
        pending_free(&pa); /* the statements are not written: no alert */
        return e;
    }
    /* committed: the statements exist, their alerts may go */
    for (size_t i = 0; i < pa.n; i++)
        recon_webhook_closed(o->webhook, pa.a[i].kind, pa.a[i].subject, pa.a[i].version,
                             pa.a[i].clean, pa.a[i].verdict);
    pending_free(&pa);
    if (stats)
        *stats = st;
    return CORE_OK;
}

core_err_t recon_chain_verify(PGconn *c, const char *schema, recon_chain_result *res,
                              char *errstr, size_t errstr_size)
{
    char sql[300];
    uint8_t prev[CORE_DIGEST_LEN] = { 0 };

    memset(res, 0, sizeof(*res));
    res->ok = true;
    snprintf(sql, sizeof(sql),
             "SELECT seq, kind, subject, window_ms, window_start, version, clean, created_ms, "
             "body, prev_hash, hash FROM %s.statements ORDER BY seq", schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(c, errstr, errstr_size);
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        const char *kind = PQgetvalue(r, i, 1), *subject = PQgetvalue(r, i, 2);
        uint8_t ph[CORE_DIGEST_LEN], hh[CORE_DIGEST_LEN];
        const char *why = NULL;

        res->statements++;
        if (seq != (int64_t)i + 1)
            why = i == 0 ? "the chain does not start at statement 1"
                         : "a statement before this one is missing (numbering gap)";
        else if (unhex_bytea(PQgetvalue(r, i, 9), ph) != 0 ||
                 memcmp(ph, prev, CORE_DIGEST_LEN) != 0)
            why = "prev_hash is not the hash of the statement before";
        else if (unhex_bytea(PQgetvalue(r, i, 10), hh) != 0)
            why = "hash is not 32 bytes";
        if (!why) {
            char *text = hashed_text(seq, kind, subject, strtoll(PQgetvalue(r, i, 3), NULL, 10),
                                     strtoll(PQgetvalue(r, i, 4), NULL, 10),
                                     atoi(PQgetvalue(r, i, 5)), PQgetvalue(r, i, 6)[0] == 't',
                                     strtoll(PQgetvalue(r, i, 7), NULL, 10), ph,
                                     PQgetvalue(r, i, 8));
            core_digest h;
            if (!text) {
                PQclear(r);
                core_errstr(errstr, errstr_size, "out of memory");
                return CORE_ERR_NOMEM;
            }
            core_digest_sha256(text, strlen(text), &h);
            free(text);
            if (memcmp(h.b, hh, CORE_DIGEST_LEN) != 0)
                why = "its content does not match its hash (edited after it was written)";
        }
        if (why) {
            res->ok = false;
            res->broken_seq = seq;
            snprintf(res->broken_subject, sizeof(res->broken_subject), "%s %s", kind, subject);
            snprintf(res->reason, sizeof(res->reason), "%s", why);
            break;
        }
        memcpy(prev, hh, CORE_DIGEST_LEN);
    }
    if (res->ok && res->statements)
        hex(prev, res->head);
    PQclear(r);
    return CORE_OK;
}
