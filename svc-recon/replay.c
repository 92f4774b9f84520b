/* replay.c — re-publish a batch's missing records (replay.h). */
#include "replay.h"
#include "payload.h"

#include "tributary/core_common.h"
#include "tributary/core_dlq.h"
#include "tributary/core_log.h"
#include "tributary/core_topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define SINCE_MARGIN_MS 60000

/* A record found on the topic, copied out of the consumer's message: a
 * message kept past it would hold its consumer's destruction up. */
typedef struct found_rec {
    void *key, *val;
    size_t keylen, vallen;
    rd_kafka_headers_t *hdrs;
    int32_t partition;
    int64_t offset;
    bool from_state;       /* kept by method full (payload.h), not read from the topic */
} found_rec;

typedef struct want {
    const char *id;        /* borrowed from the report */
    found_rec *m;          /* the copy found on the topic */
} want;

static void found_free(found_rec *f)
{
    if (!f)
        return;
    free(f->key);
    free(f->val);
    if (f->hdrs)
        rd_kafka_headers_destroy(f->hdrs);
    free(f);
}

static found_rec *found_copy(const rd_kafka_message_t *m)
{
    found_rec *f = calloc(1, sizeof(*f));
    rd_kafka_headers_t *h = NULL;
    if (!f)
        return NULL;
    f->keylen = m->key ? m->key_len : 0;
    f->vallen = m->payload ? m->len : 0;
    f->key = m->key ? malloc(f->keylen ? f->keylen : 1) : NULL;
    f->val = malloc(f->vallen ? f->vallen : 1);
    f->hdrs = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR
                  ? rd_kafka_headers_copy(h)
                  : rd_kafka_headers_new(1);
    if ((m->key && !f->key) || !f->val || !f->hdrs) {
        found_free(f);
        return NULL;
    }
    if (f->keylen)
        memcpy(f->key, m->key, f->keylen);
    if (f->vallen)
        memcpy(f->val, m->payload, f->vallen);
    f->partition = m->partition;
    f->offset = m->offset;
    return f;
}

/* One topic to read: the datasets replayed from it share it. */
typedef struct source {
    char topic[256];
    int64_t since_ms;
    want *w;               /* sorted by id */
    size_t nw;
} source;

static int cmp_want(const void *a, const void *b)
{
    return strcmp(((const want *)a)->id, ((const want *)b)->id);
}

static int cmp_key(const void *k, const void *b)
{
    return strcmp(k, ((const want *)b)->id);
}

/* The .raw topic and first ingest time of a dataset of the batch. */
static int dataset_source(PGconn *c, const char *schema, const char *prefix, const char *batch,
                          const char *dataset, char *topic, size_t tsize, int64_t *since,
                          char *err, size_t n)
{
    char sql[400];
    const char *params[2] = { batch, dataset };
    snprintf(sql, sizeof(sql),
             "SELECT min(src_topic) FILTER (WHERE stage = 'ingest'), min(ts_ms) FROM %s.events "
             "WHERE batch_id = $1 AND dataset = $2",
             schema);
    PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, n, "postgres: %s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    if (!PQgetisnull(r, 0, 0) && *PQgetvalue(r, 0, 0))
        snprintf(topic, tsize, "%s", PQgetvalue(r, 0, 0));
    else if (core_topic_name(prefix ? prefix : "", dataset, CORE_TOPIC_RAW, topic, tsize, err,
                             n) != 0) {
        PQclear(r);
        return CORE_ERR_INVALID;
    }
    *since = PQgetisnull(r, 0, 1) ? 0 : strtoll(PQgetvalue(r, 0, 1), NULL, 10) - SINCE_MARGIN_MS;
    if (*since < 0)
        *since = 0;
    PQclear(r);
    return CORE_OK;
}


/* Read every partition of s->topic from s->since_ms to its high watermark
 * now, keeping the first copy of each wanted record of the batch. */
static int scan(core_kafka_consumer_t *kc, source *s, const char *batch, int64_t deadline,
                char *err, size_t n)
{
    rd_kafka_t *rk = core_kafka_consumer_handle(kc);
    const struct rd_kafka_metadata *md = NULL;
    int rc = CORE_OK, nparts, left = 0;

    if (core_kafka_topic_metadata(rk, s->topic, 10000, &md, err, n) != CORE_OK)
        return CORE_ERR_TRANSIENT;
    nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    int64_t *hi = calloc((size_t)(nparts > 0 ? nparts : 1), sizeof(*hi));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    if (!hi || !l) {
        free(hi);
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        snprintf(err, n, "out of memory");
        return CORE_ERR_NOMEM;
    }
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = s->since_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, 10000);
    for (int p = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && p < nparts; p++) {
        int64_t lo;
        e = rd_kafka_query_watermark_offsets(rk, s->topic, p, &lo, &hi[p], 10000);
        rd_kafka_topic_partition_t *tp = &l->elems[p];
        if (tp->offset < 0) /* no record that late: nothing to read */
            tp->offset = hi[p];
        if (tp->offset < hi[p])
            left++;
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, n, "kafka: %s: offsets: %s", s->topic, rd_kafka_err2str(e));
        rc = CORE_ERR_TRANSIENT;
    } else if (core_kafka_consumer_assign(kc, l, err, n) != CORE_OK) {
        rc = CORE_ERR_TRANSIENT;
    }
    rd_kafka_topic_partition_list_destroy(l);
    bool *done = calloc((size_t)(nparts > 0 ? nparts : 1), sizeof(*done));
    if (!done && rc == CORE_OK) {
        snprintf(err, n, "out of memory");
        rc = CORE_ERR_NOMEM;
    }
    while (rc == CORE_OK && left > 0) {
        if (core_mono_ms() > deadline) {
            snprintf(err, n, "kafka: %s: not read to its end in time", s->topic);
            rc = CORE_ERR_TRANSIENT;
            break;
        }
        rd_kafka_message_t *m = core_kafka_consumer_poll(kc, 200);
        if (!m)
            continue;
        int p = m->partition;
        if (m->err || p < 0 || p >= nparts || done[p]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->offset + 1 >= hi[p]) {
            done[p] = true;
            left--;
        }
        size_t idlen = 0, blen = 0;
        const char *id = recon_msg_header(m, CORE_HDR_ID, &idlen);
        const char *b = recon_msg_header(m, CORE_HDR_BATCH, &blen);
        char idbuf[1024];
        want *w = NULL;
        if (id && b && blen == strlen(batch) && memcmp(b, batch, blen) == 0 &&
            idlen < sizeof(idbuf)) {
            memcpy(idbuf, id, idlen);
            idbuf[idlen] = '\0';
            w = bsearch(idbuf, s->w, s->nw, sizeof(*s->w), cmp_key);
        }
        if (w && !w->m && !(w->m = found_copy(m))) {
            snprintf(err, n, "out of memory");
            rc = CORE_ERR_NOMEM;
        }
        rd_kafka_message_destroy(m);
    }
    free(done);
    free(hi);
    core_kafka_consumer_assign(kc, NULL, NULL, 0);
    return rc;
}

/* Method full: the wanted records recon kept (payload.h), taken first. */
static int from_state(PGconn *c, const char *schema, const char *batch, source *s, char *err,
                      size_t n)
{
    core_strbuf ids = { 0 };
    char sql[400];

    core_strbuf_add(&ids, "{");
    for (size_t i = 0; i < s->nw; i++) {
        core_strbuf_add(&ids, i ? ",\"" : "\"");
        for (const char *p = s->w[i].id; *p; p++) {
            if (*p == '"' || *p == '\\')
                core_strbuf_add(&ids, "\\");
            core_strbuf_addn(&ids, p, 1);
        }
        core_strbuf_add(&ids, "\"");
    }
    core_strbuf_add(&ids, "}");
    if (ids.failed) {
        core_strbuf_free(&ids);
        snprintf(err, n, "out of memory");
        return CORE_ERR_NOMEM;
    }
    snprintf(sql, sizeof(sql),
             "SELECT id, partition, \"offset\", key, value, headers FROM %s.payloads "
             "WHERE batch_id = $1 AND id = ANY($2::text[])",
             schema);
    const char *params[2] = { batch, ids.p };
    PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 1); /* binary */
    core_strbuf_free(&ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, n, "postgres: %s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return CORE_ERR_TRANSIENT;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        char id[1024];
        int idl = PQgetlength(r, row, 0);
        if (idl >= (int)sizeof(id) || PQgetlength(r, row, 1) != 4 || PQgetlength(r, row, 2) != 8)
            continue;
        memcpy(id, PQgetvalue(r, row, 0), (size_t)idl);
        id[idl] = '\0';
        want *w = bsearch(id, s->w, s->nw, sizeof(*s->w), cmp_key);
        if (!w || w->m)
            continue;
        found_rec *f = calloc(1, sizeof(*f));
        const unsigned char *pp = (const unsigned char *)PQgetvalue(r, row, 1);
        const unsigned char *op = (const unsigned char *)PQgetvalue(r, row, 2);
        if (!f) {
            PQclear(r);
            snprintf(err, n, "out of memory");
            return CORE_ERR_NOMEM;
        }
        f->partition = (int32_t)((uint32_t)pp[0] << 24 | (uint32_t)pp[1] << 16 |
                                 (uint32_t)pp[2] << 8 | pp[3]);
        for (int j = 0; j < 8; j++)
            f->offset = (int64_t)((uint64_t)f->offset << 8 | op[j]);
        f->keylen = (size_t)PQgetlength(r, row, 3);
        f->vallen = (size_t)PQgetlength(r, row, 4);
        f->key = malloc(f->keylen ? f->keylen : 1);
        f->val = malloc(f->vallen ? f->vallen : 1);
        f->hdrs = recon_headers_decode(PQgetvalue(r, row, 5), (size_t)PQgetlength(r, row, 5));
        f->from_state = true;
        if (!f->key || !f->val || !f->hdrs) {
            found_free(f);
            core_log_warn("replay: a kept payload is unusable; the topic is read for it",
                          CLF_S("id", id));
            continue;
        }
        memcpy(f->key, PQgetvalue(r, row, 3), f->keylen);
        memcpy(f->val, PQgetvalue(r, row, 4), f->vallen);
        w->m = f;
    }
    PQclear(r);
    return CORE_OK;
}

static bool any_missing(const source *s)
{
    for (size_t i = 0; i < s->nw; i++)
        if (!s->w[i].m)
            return true;
    return false;
}

/* Produce the copies found, each with its headers and tb.replay. */
static int republish(core_kafka_producer_t *kp, source *s, const char *replay_id, char *err,
                     size_t n)
{
    for (size_t i = 0; i < s->nw; i++) {
        const found_rec *m = s->w[i].m;
        rd_kafka_headers_t *copy;
        if (!m)
            continue;
        if (!(copy = rd_kafka_headers_copy(m->hdrs))) {
            snprintf(err, n, "out of memory");
            return CORE_ERR_NOMEM;
        }
        rd_kafka_header_remove(copy, CORE_HDR_REPLAY);
        rd_kafka_header_add(copy, CORE_HDR_REPLAY, -1, replay_id, -1);
        if (core_kafka_produce_hdrs(kp, s->topic, m->key, m->keylen, m->val, m->vallen, copy,
                                    NULL, err, n) != CORE_OK)
            return CORE_ERR_TRANSIENT;
    }
    return CORE_OK;
}

static void add_records(cJSON *recs, cJSON *nf, const source *s, size_t *found)
{
    for (size_t i = 0; i < s->nw; i++) {
        const found_rec *m = s->w[i].m;
        if (!m) {
            cJSON_AddItemToArray(nf, cJSON_CreateString(s->w[i].id));
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", s->w[i].id);
        cJSON_AddStringToObject(o, "topic", s->topic);
        cJSON_AddNumberToObject(o, "partition", m->partition);
        cJSON_AddNumberToObject(o, "offset", (double)m->offset);
        cJSON_AddStringToObject(o, "source", m->from_state ? "state" : "topic");
        cJSON_AddItemToArray(recs, o);
        (*found)++;
    }
}

static void sources_free(source *src, size_t nsrc)
{
    for (size_t i = 0; i < nsrc; i++) {
        for (size_t j = 0; j < src[i].nw; j++)
            found_free(src[i].w[j].m);
        free(src[i].w);
    }
    free(src);
}

/* Group the report's records of the verdict by source topic. */
static int plan(PGconn *c, const recon_reconcile_opts *ro, const recon_report *rep,
                const recon_replay_opts *o, source **out, size_t *nout, size_t *wanted, char *err,
                size_t n)
{
    int verdict = o->verdict;
    source *src = calloc(rep->nds ? rep->nds : 1, sizeof(*src));
    size_t nsrc = 0;
    if (!src) {
        snprintf(err, n, "out of memory");
        return CORE_ERR_NOMEM;
    }
    *wanted = 0;
    for (size_t d = 0; d < rep->nds; d++) {
        char topic[256];
        int64_t since;
        if (dataset_source(c, ro->schema, o->topic_prefix, rep->batch, rep->ds[d].dataset, topic,
                           sizeof(topic), &since, err, n) != CORE_OK) {
            sources_free(src, nsrc);
            return CORE_ERR_TRANSIENT;
        }
        size_t k = 0;
        while (k < nsrc && strcmp(src[k].topic, topic) != 0)
            k++;
        if (k == nsrc) {
            snprintf(src[nsrc].topic, sizeof(src[nsrc].topic), "%s", topic);
            src[nsrc++].since_ms = since;
        } else if (since < src[k].since_ms) {
            src[k].since_ms = since;
        }
        for (size_t i = 0; i < rep->ndisc; i++) {
            const recon_record *r = &rep->disc[i];
            if (r->verdict != verdict || strcmp(r->dataset, rep->ds[d].dataset) != 0)
                continue;
            want *g = realloc(src[k].w, (src[k].nw + 1) * sizeof(*g));
            if (!g) {
                sources_free(src, nsrc);
                snprintf(err, n, "out of memory");
                return CORE_ERR_NOMEM;
            }
            src[k].w = g;
            src[k].w[src[k].nw++] = (want){ r->id, NULL };
            (*wanted)++;
        }
    }
    for (size_t k = 0; k < nsrc; k++)
        if (src[k].nw > 1) /* qsort(NULL, 0, ...) is undefined */
            qsort(src[k].w, src[k].nw, sizeof(want), cmp_want);
    *out = src;
    *nout = nsrc;
    return CORE_OK;
}

/* Kafka side of a replay: read each source, then produce what was found. */
static int run_kafka(const recon_replay_opts *o, source *src, size_t nsrc, const char *batch,
                     const char *replay_id, char *err, size_t n)
{
    core_kafka_consumer_opts co = { 0 };
    core_kafka_producer_opts po = { 0 };
    core_kafka_consumer_t *kc;
    core_kafka_producer_t *kp = NULL;
    int64_t deadline = core_mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 60000);
    int rc = CORE_OK;

    co.cfg = o->cfg;
    co.group_id = "tributary-recon-replay"; /* assigned, never committed */
    if (!(kc = core_kafka_consumer_new(&co, err, n)))
        return CORE_ERR_TRANSIENT;
    for (size_t k = 0; rc == CORE_OK && k < nsrc; k++)
        if (src[k].nw && any_missing(&src[k])) /* what recon did not keep */
            rc = scan(kc, &src[k], batch, deadline, err, n);
    core_kafka_consumer_free(kc);
    if (rc != CORE_OK || o->dry_run)
        return rc;
    po.cfg = o->cfg;
    if (!(kp = core_kafka_producer_new(&po, err, n)))
        return CORE_ERR_TRANSIENT;
    for (size_t k = 0; rc == CORE_OK && k < nsrc; k++)
        rc = republish(kp, &src[k], replay_id, err, n);
    int64_t left = deadline - core_mono_ms();
    if (rc == CORE_OK &&
        (core_kafka_producer_flush(kp, (int)(left > 5000 ? left : 5000)) != 0 ||
         core_kafka_producer_failed(kp) != 0)) {
        snprintf(err, n, "kafka: replayed records not all delivered");
        rc = CORE_ERR_TRANSIENT;
    }
    core_kafka_producer_free(kp);
    return rc;
}

int recon_replay_batch(PGconn *c, const recon_reconcile_opts *ro, const recon_replay_opts *o,
                       const char *batch, cJSON **out, char *errstr, size_t errstr_size)
{
    recon_report *rep = NULL;
    source *src = NULL;
    size_t nsrc = 0, wanted = 0, found = 0;
    char replay_id[40];
    uuid_t u;
    int rc;

    *out = NULL;
    if ((rc = recon_reconcile_batch(c, ro, batch, &rep, errstr, errstr_size)) != CORE_OK)
        return rc;
    if (!rep->known) {
        recon_report_free(rep);
        snprintf(errstr, errstr_size, "no audit event of batch %s", batch);
        return CORE_ERR_NOTFOUND;
    }
    uuid_generate(u);
    uuid_unparse_lower(u, replay_id);
    rc = plan(c, ro, rep, o, &src, &nsrc, &wanted, errstr, errstr_size);
    for (size_t k = 0; rc == CORE_OK && k < nsrc; k++)
        if (src[k].nw)
            rc = from_state(c, ro->schema, batch, &src[k], errstr, errstr_size);
    if (rc == CORE_OK && wanted)
        rc = run_kafka(o, src, nsrc, batch, replay_id, errstr, errstr_size);
    if (rc == CORE_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "replay_id", replay_id);
        cJSON_AddStringToObject(j, "batch", batch);
        cJSON_AddStringToObject(j, "verdict", recon_verdict_names[o->verdict]);
        cJSON_AddBoolToObject(j, "dry_run", o->dry_run);
        cJSON *recs = cJSON_AddArrayToObject(j, "records");
        cJSON *nf = cJSON_AddArrayToObject(j, "not_found");
        for (size_t k = 0; k < nsrc; k++)
            add_records(recs, nf, &src[k], &found);
        cJSON_AddNumberToObject(j, "wanted", (double)wanted);
        cJSON_AddNumberToObject(j, "found", (double)found);
        cJSON_AddNumberToObject(j, "published", o->dry_run ? 0 : (double)found);
        core_log_info(o->dry_run ? "replay planned (dry run)" : "replayed",
                      CLF_S("replay_id", replay_id), CLF_S("batch", batch),
                      CLF_S("verdict", recon_verdict_names[o->verdict]),
                      CLF_I("wanted", (int64_t)wanted), CLF_I("found", (int64_t)found));
        *out = j;
    }
    sources_free(src, nsrc);
    recon_report_free(rep);
    return rc;
}
