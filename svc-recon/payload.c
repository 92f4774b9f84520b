/* payload.c — method full: the .raw records kept in recon's state (payload.h). */
#include "payload.h"

#include "tributary/core_dlq.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_retry.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_MAX 500    /* records per transaction */
#define KEEP_MS 200     /* longest a batch collects */

struct recon_payload_keeper {
    recon_payload_opts o;
    core_kafka_consumer_t *kc; /* made and subscribed by recon_payload_start() */
    pthread_t thread;
    atomic_bool stop;
};

void recon_headers_encode(const rd_kafka_headers_t *h, core_strbuf *out)
{
    const char *name;
    const void *val;
    size_t len;

    for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &val, &len) ==
                               RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        size_t nl = strlen(name);
        uint32_t vl = val ? (uint32_t)len : 0xffffffffu;
        char b[6] = { (char)(nl >> 8), (char)nl, (char)(vl >> 24), (char)(vl >> 16),
                      (char)(vl >> 8), (char)vl };
        if (nl > 0xffff) {
            out->failed = true;
            return;
        }
        core_strbuf_addn(out, b, 2);
        core_strbuf_addn(out, name, nl);
        core_strbuf_addn(out, b + 2, 4);
        if (val)
            core_strbuf_addn(out, val, len);
    }
}

rd_kafka_headers_t *recon_headers_decode(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t at = 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char name[65536];

    while (h && at < n) {
        if (n - at < 2)
            goto bad;
        size_t nl = (size_t)s[at] << 8 | s[at + 1];
        at += 2;
        if (n - at < nl + 4)
            goto bad;
        memcpy(name, s + at, nl);
        name[nl] = '\0';
        at += nl;
        uint32_t vl = (uint32_t)s[at] << 24 | (uint32_t)s[at + 1] << 16 |
                      (uint32_t)s[at + 2] << 8 | s[at + 3];
        at += 4;
        if (vl == 0xffffffffu) {
            rd_kafka_header_add(h, name, (ssize_t)nl, NULL, 0);
            continue;
        }
        if (n - at < vl)
            goto bad;
        rd_kafka_header_add(h, name, (ssize_t)nl, s + at, vl);
        at += vl;
    }
    return h;
bad:
    rd_kafka_headers_destroy(h);
    return NULL;
}

const char *recon_msg_header(const rd_kafka_message_t *m, const char *name, size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v;
}

static bool pg_ok(PGconn *c, PGresult *r, ExecStatusType want, const char *what)
{
    bool ok = PQresultStatus(r) == want;
    if (!ok) {
        char m[300];
        snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
        m[strcspn(m, "\n")] = '\0';
        core_log_warn("payloads: postgres failed", CLF_S("what", what), CLF_S("reason", m));
    }
    PQclear(r);
    return ok;
}

/* Keep the batch in one transaction. @returns true when committed. */
static bool keep(recon_payload_keeper *k, PGconn *c, rd_kafka_message_t **msgs, size_t n,
                 size_t *kept)
{
    char sql[600];
    core_strbuf hb = { 0 };
    bool ok;

    *kept = 0;
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.payloads (batch_id, dataset, id, topic, partition, \"offset\", key, "
             "value, headers, ts_ms, kept_ms) VALUES ($1, $2, $3, $4, $5::int, $6::bigint, $7, "
             "$8, $9, $10::bigint, $11::bigint) ON CONFLICT DO NOTHING",
             k->o.pg.schema);
    if (!pg_ok(c, PQexec(c, "BEGIN"), PGRES_COMMAND_OK, "begin"))
        return false;
    ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt), *ds = NULL;
        size_t idl = 0, bl = 0;
        const char *id = recon_msg_header(m, CORE_HDR_ID, &idl);
        const char *b = recon_msg_header(m, CORE_HDR_BATCH, &bl);
        rd_kafka_headers_t *h = NULL;
        for (size_t t = 0; t < k->o.n; t++)
            if (strcmp(k->o.topics[t], topic) == 0)
                ds = k->o.datasets[t];
        if (!ds || !id || !b)
            continue; /* not a record of the pipeline: nothing to replay */
        char *idz = strndup(id, idl), *bz = strndup(b, bl);
        char part[16], off[24], ts[24], now[24];
        rd_kafka_timestamp_type_t tt;
        snprintf(part, sizeof(part), "%" PRId32, m->partition);
        snprintf(off, sizeof(off), "%" PRId64, m->offset);
        snprintf(ts, sizeof(ts), "%" PRId64, rd_kafka_message_timestamp(m, &tt));
        snprintf(now, sizeof(now), "%" PRId64, core_now_ms());
        hb.len = 0;
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            recon_headers_encode(h, &hb);
        const char *vals[11] = { bz, ds, idz, topic, part, off, m->key ? m->key : "",
                                 m->payload ? m->payload : "", hb.p ? hb.p : "", ts, now };
        int lens[11] = { 0, 0, 0, 0, 0, 0, (int)(m->key ? m->key_len : 0),
                         (int)(m->payload ? m->len : 0), (int)hb.len, 0, 0 };
        int fmts[11] = { 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0 };
        if (!idz || !bz || hb.failed) {
            ok = false;
        } else {
            PGresult *r = PQexecParams(c, sql, 11, NULL, vals, lens, fmts, 0);
            ok = pg_ok(c, r, PGRES_COMMAND_OK, "insert");
            if (ok)
                (*kept)++;
        }
        free(idz);
        free(bz);
    }
    core_strbuf_free(&hb);
    if (ok)
        ok = pg_ok(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK, "commit");
    else
        PQclear(PQexec(c, "ROLLBACK"));
    return ok;
}

/* Keep the n records in hand (one transaction, retried with backoff while
 * PostgreSQL fails), then commit their offsets; *c is (re)connected as
 * needed. @returns 0, or -1 when the service stops first. */
static int keep_and_commit(recon_payload_keeper *k, core_kafka_consumer_t *kc, PGconn **c,
                           rd_kafka_message_t **msgs, size_t *n)
{
    core_backoff bo = { 200, 10000, 2.0, 0.5, 0 };
    int attempt = 0;
    char err[512];
    size_t kept;

    for (;;) {
        if (!*c || PQstatus(*c) != CONNECTION_OK) {
            PQfinish(*c);
            if (!(*c = recon_pg_connect(&k->o.pg, "svc-recon-payloads", err, sizeof(err))))
                core_log_warn("payloads: postgres unavailable; retrying", CLF_S("reason", err));
        }
        if (*c && keep(k, *c, msgs, *n, &kept))
            break;
        if (core_lifecycle_wait(core_backoff_delay_ms(&bo, attempt++)) ||
            atomic_load(&k->stop))
            return -1; /* the batch in hand is kept again next time */
    }
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < *n; i++) {
        core_kafka_offsets_add_message(offs, msgs[i]);
        rd_kafka_message_destroy(msgs[i]);
    }
    *n = 0;
    if (core_kafka_consumer_commit_offsets(kc, offs, err, sizeof(err)) != CORE_OK)
        core_log_warn("payloads: kafka commit failed (kept rows are not doubled)",
                      CLF_S("reason", err));
    rd_kafka_topic_partition_list_destroy(offs);
    return 0;
}

static void *run(void *arg)
{
    recon_payload_keeper *k = arg;
    core_kafka_consumer_t *kc = k->kc;
    rd_kafka_message_t *msgs[KEEP_MAX];
    size_t n = 0;
    PGconn *c = NULL;
    char err[512];
    int64_t first = 0;

    core_log_info("payloads: keeping the records of the full datasets",
                  CLF_S("topic", k->o.topics[0]), CLF_I("topics", (int64_t)k->o.n));
    while (!atomic_load(&k->stop) && !core_lifecycle_stopping()) {
        int wait = n ? (int)(first + KEEP_MS - core_mono_ms()) : 100;
        rd_kafka_message_t *m = n < KEEP_MAX ? core_kafka_consumer_poll(kc, wait > 0 ? wait : 0)
                                             : NULL;
        if (m && m->err) {
            rd_kafka_message_destroy(m);
            m = NULL;
        } else if (m) {
            if (!n)
                first = core_mono_ms();
            msgs[n++] = m;
        }
        if (!n || (n < KEEP_MAX && core_mono_ms() < first + KEEP_MS))
            continue;
        if (keep_and_commit(k, kc, &c, msgs, &n) != 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    core_kafka_consumer_close(kc, err, sizeof(err));
    PQfinish(c);
    return NULL;
}

recon_payload_keeper *recon_payload_start(const recon_payload_opts *o, char *err, size_t errsize)
{
    recon_payload_keeper *k;
    core_kafka_consumer_opts co = { 0 };
    char why[400];

    err[0] = '\0';
    if (!o->n)
        return NULL;
    if (!(k = calloc(1, sizeof(*k)))) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    k->o = *o;
    co.cfg = o->cfg;
    co.group_id = o->group_id;
    if (!(k->kc = core_kafka_consumer_new(&co, why, sizeof(why)))) {
        snprintf(err, errsize, "payload consumer (group %s) not created: %s", o->group_id, why);
        free(k);
        return NULL;
    }
    if (core_kafka_consumer_subscribe(k->kc, (const char *const *)o->topics, o->n, why,
                                      sizeof(why)) != CORE_OK) {
        snprintf(err, errsize, "payload consumer: subscribe to %s: %s", o->topics[0], why);
        core_kafka_consumer_free(k->kc);
        free(k);
        return NULL;
    }
    atomic_init(&k->stop, false);
    if (pthread_create(&k->thread, NULL, run, k) != 0) {
        snprintf(err, errsize, "payloads: no thread");
        core_kafka_consumer_free(k->kc);
        free(k);
        return NULL;
    }
    return k;
}

/* Every partition of the .raw topics, at the group's committed offsets
 * (earliest where none). @returns the list (*nparts entries), or NULL with
 * err; an empty list when no topic exists yet. */
static rd_kafka_topic_partition_list_t *all_partitions(rd_kafka_t *rk,
                                                       const recon_payload_opts *o,
                                                       int *nparts, char *err, size_t errsize)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);

    *nparts = 0;
    for (size_t t = 0; t < o->n; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topics[t], NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);

        if (!e && md->topic_cnt == 1 &&
            md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(rkt);
            continue; /* nothing published to it yet: nothing to keep */
        }
        if (!e && md->topic_cnt == 1)
            e = md->topics[0].err;
        if (e) {
            snprintf(err, errsize, "kafka: metadata of %s: %s", o->topics[t], rd_kafka_err2str(e));
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(rkt);
            rd_kafka_topic_partition_list_destroy(l);
            return NULL;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(l, o->topics[t], md->topics[0].partitions[p].id)
                ->offset = RD_KAFKA_OFFSET_STORED;
        *nparts += md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    return l;
}

int recon_payload_catch_up(const recon_payload_opts *o, int timeout_ms, char *err,
                           size_t errsize)
{
    recon_payload_keeper k = { .o = *o };
    core_kafka_consumer_opts co = { 0 };
    core_kafka_prop eof[] = { { "enable.partition.eof", "true" } };
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_message_t *msgs[KEEP_MAX];
    size_t n = 0;
    PGconn *c = NULL;
    int nparts = 0, eofs = 0, rc = 0;
    bool *at_end = NULL;
    int64_t deadline = core_mono_ms() + timeout_ms;
    char why[400];

    err[0] = '\0';
    if (!o->n)
        return 0;
    atomic_init(&k.stop, false);
    co.cfg = o->cfg;
    co.group_id = o->group_id;
    co.overrides = eof;
    co.noverrides = 1;
    if (!(k.kc = core_kafka_consumer_new(&co, why, sizeof(why)))) {
        snprintf(err, errsize, "payload consumer (group %s) not created: %s", o->group_id, why);
        return CORE_EX_CONFIG;
    }
    rd_kafka_t *rk = core_kafka_consumer_handle(k.kc);
    if (!(parts = all_partitions(rk, o, &nparts, err, errsize))) {
        rc = CORE_EX_UNAVAILABLE;
        goto out;
    }
    if (nparts && !(at_end = calloc((size_t)nparts, sizeof(*at_end)))) {
        snprintf(err, errsize, "out of memory");
        rc = CORE_EX_SOFTWARE;
        goto out;
    }
    if (nparts && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errsize, "payload consumer: assign failed");
        rc = CORE_EX_UNAVAILABLE;
        goto out;
    }
    while (eofs < nparts || n) {
        rd_kafka_message_t *m = n < KEEP_MAX ? core_kafka_consumer_poll(k.kc, 100) : NULL;

        if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* each partition counted once: EOF fires again after new records */
            for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == m->partition && !at_end[i] &&
                    strcmp(parts->elems[i].topic, rd_kafka_topic_name(m->rkt)) == 0) {
                    at_end[i] = true;
                    eofs++;
                }
            rd_kafka_message_destroy(m);
        } else if (m && m->err) {
            rd_kafka_message_destroy(m);
        } else if (m) {
            msgs[n++] = m;
        }
        if (n && (n == KEEP_MAX || eofs >= nparts) && keep_and_commit(&k, k.kc, &c, msgs, &n))
            break;
        if (core_mono_ms() > deadline || core_lifecycle_stopping()) {
            snprintf(err, errsize, "payloads: %d of %d .raw partitions read to their end "
                     "within %d ms", eofs, nparts, timeout_ms);
            rc = CORE_EX_UNAVAILABLE;
            break;
        }
    }
    if (!rc && n) {
        snprintf(err, errsize, "payloads: postgres unavailable");
        rc = CORE_EX_UNAVAILABLE;
    }
out:
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(at_end);
    core_kafka_consumer_free(k.kc);
    PQfinish(c);
    return rc;
}

void recon_payload_stop(recon_payload_keeper *k)
{
    if (!k)
        return;
    atomic_store(&k->stop, true);
    pthread_join(k->thread, NULL);
    core_kafka_consumer_free(k->kc);
    free(k);
}

static core_err_t fail(PGconn *c, PGresult *r, char *errstr, size_t errstr_size)
{
    core_errstr(errstr, errstr_size, "postgres: %s", PQerrorMessage(c));
    errstr[strcspn(errstr, "\n")] = '\0';
    PQclear(r);
    return CORE_ERR_TRANSIENT;
}

core_err_t recon_payload_purge(PGconn *c, const char *schema, int64_t default_days, int64_t now_ms,
                               int64_t *deleted, char *errstr, size_t errstr_size)
{
    char sql[600], d[24], now[24];
    const char *params[2] = { d, now };

    snprintf(d, sizeof(d), "%" PRId64, default_days);
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.payloads p WHERE p.kept_ms < $2::bigint - 86400000::bigint * "
             "coalesce((SELECT r.days FROM %s.retention r WHERE r.dataset = p.dataset), "
             "$1::bigint)",
             schema, schema);
    PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return fail(c, r, errstr, errstr_size);
    *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return CORE_OK;
}

core_err_t recon_retention_json(PGconn *c, const char *schema, int64_t default_days, cJSON **out,
                                char *errstr, size_t errstr_size)
{
    char sql[400];
    cJSON *o = cJSON_CreateObject(), *a, *p;

    *out = NULL;
    if (!o) {
        core_errstr(errstr, errstr_size, "out of memory");
        return CORE_ERR_NOMEM;
    }
    cJSON_AddNumberToObject(o, "default_days", (double)default_days);
    snprintf(sql, sizeof(sql),
             "SELECT dataset, days, updated_ms FROM %s.retention ORDER BY dataset", schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        cJSON_Delete(o);
        return fail(c, r, errstr, errstr_size);
    }
    a = cJSON_AddArrayToObject(o, "datasets");
    for (int i = 0; a && i < PQntuples(r); i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "dataset", PQgetvalue(r, i, 0));
        cJSON_AddNumberToObject(x, "days", strtod(PQgetvalue(r, i, 1), NULL));
        cJSON_AddNumberToObject(x, "updated_ms", strtod(PQgetvalue(r, i, 2), NULL));
        cJSON_AddItemToArray(a, x);
    }
    PQclear(r);
    snprintf(sql, sizeof(sql),
             "SELECT dataset, count(*), min(kept_ms) FROM %s.payloads GROUP BY dataset "
             "ORDER BY dataset", schema);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        cJSON_Delete(o);
        return fail(c, r, errstr, errstr_size);
    }
    p = cJSON_AddArrayToObject(o, "payloads");
    for (int i = 0; p && i < PQntuples(r); i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "dataset", PQgetvalue(r, i, 0));
        cJSON_AddNumberToObject(x, "records", strtod(PQgetvalue(r, i, 1), NULL));
        cJSON_AddNumberToObject(x, "oldest_kept_ms", strtod(PQgetvalue(r, i, 2), NULL));
        cJSON_AddItemToArray(p, x);
    }
    PQclear(r);
    *out = o;
    return CORE_OK;
}

core_err_t recon_retention_set(PGconn *c, const char *schema, const char *dataset, int64_t days,
                               int64_t now_ms, char *errstr, size_t errstr_size)
{
    char sql[400], d[24], now[24];
    const char *params[3] = { dataset, d, now };

    snprintf(d, sizeof(d), "%" PRId64, days);
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.retention (dataset, days, updated_ms) VALUES ($1, $2::int, "
             "$3::bigint) ON CONFLICT (dataset) DO UPDATE SET days = EXCLUDED.days, "
             "updated_ms = EXCLUDED.updated_ms",
             schema);
    PGresult *r = PQexecParams(c, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return fail(c, r, errstr, errstr_size);
    PQclear(r);
    return CORE_OK;
}
