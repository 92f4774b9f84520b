/* state_apply.c — a batch of audit events applied in one transaction:
 * events and bad input copied in, aggregates grouped and upserted, the
 * consumer offsets written with them (state.h). */
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
    } else {
        core_strbuf_add(b, "\\N");
    }
    core_strbuf_add(b, "\t");
    copy_text(b, ev->old_key.p, ev->old_key.len);
    core_strbuf_add(b, "\n");
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
        recon_state_conn_error_(c, "copy", errstr, errstr_size);
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
        recon_state_conn_error_(c, "copy", errstr, errstr_size);
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

/* A group's key as literals: batch, dataset, stage, outcome. */
static void group_key_lit(PGconn *c, core_strbuf *b, const group *g)
{
    lit(c, b, g->batch.p, g->batch.len);
    core_strbuf_add(b, ",");
    lit(c, b, g->dataset.p, g->dataset.len);
    core_strbuf_add(b, ",");
    lit(c, b, g->stage.p, g->stage.len);
    core_strbuf_add(b, ",");
    lit(c, b, g->outcome.p, g->outcome.len);
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
        group_key_lit(st->conn, &q, g);
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
        recon_state_conn_error_(st->conn, "query", errstr, errstr_size);
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
        group_key_lit(st->conn, &q, g);
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
        e = recon_state_exec_(st->conn, q.p, errstr, errstr_size);
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
        recon_state_conn_error_(st->conn, "query", errstr, errstr_size);
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
    e = any ? recon_state_exec_(st->conn, q.p, errstr, errstr_size) : CORE_OK;
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

    if ((e = recon_state_ensure_conn_(st, errstr, errstr_size)) != CORE_OK)
        return e;
    if ((e = recon_state_exec_(st->conn, "BEGIN", errstr, errstr_size)) != CORE_OK)
        goto out;
    if ((e = recon_state_lock_(st, errstr, errstr_size)) != CORE_OK ||
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
                 "reason, ts_ms, bucket, eh, content, old_key) FROM STDIN",
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
        (e = recon_state_exec_(st->conn, "COMMIT", errstr, errstr_size)) != CORE_OK)
        goto rollback;
    if (stats)
        *stats = s;
    goto out;
rollback:
    recon_state_exec_(st->conn, "ROLLBACK", NULL, 0);
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
    if ((e = recon_state_ensure_conn_(st, errstr, errstr_size)) != CORE_OK)
        return e;
    e = read_offsets(st, &a, errstr, errstr_size);
    for (size_t i = 0; e == CORE_OK && i < a.nparts; i++)
        if (a.parts[i].partition >= 0 && (size_t)a.parts[i].partition < npart)
            next[a.parts[i].partition] = a.parts[i].stored;
    apply_ctx_free(&a);
    return e;
}
