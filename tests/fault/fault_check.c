/* fault_check — the checker of the fault suite (tests/fault/run.sh drives).
 *
 *   fault_check verify --batch F --change F --pg CONNINFO --pg-schema S
 *                      --redis-port P --cache-prefix X
 *   fault_check verify --batch F --change F --mongo URI --mongo-db D
 *                      --redis-port P --cache-prefix X
 *       computes the expected final state from the two input files alone
 *       (fault_model.c), reads every row of S.payee (or every document of
 *       D.payee, the persister's MongoDB sink) and every key X:payee:* and
 *       compares them field by field. Prints one line of figures
 *       (key=value) and one line per difference (at most 20); exit 0 when
 *       every sink equals the expected state, 1 when not, 2 on an error.
 *   fault_check count --brokers B --topic T --batch ID
 *       committed records of batch ID on T (header tb.batch), read
 *       read_committed from the start to the end: prints "records=N
 *       distinct=N" (distinct tb.id values: records - distinct are duplicates).
 *   fault_check seed-group --brokers B --group G TOPIC...
 *       commits the end offsets of every partition of the topics for group G
 *       (creating missing topics), so a new group starts after what other
 *       tests left there and a kill -9 before its first commit skips nothing.
 */
#include "fault_model.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

typedef struct tally {
    long rows, matching, altered, unexpected;
    int shown;
} tally;

static void differ(tally *t, const char *sink, const char *key, const char *what)
{
    if (t->shown++ < 20)
        printf("DIFF %s key %s: %s\n", sink, key, what);
}

/* Compare one stored record with the model; fields NULL when absent. */
static void judge(fm_model *m, tally *t, const char *sink, const char *key,
                  const char *const got[F_N], long long got_updated_ms, long long got_version)
{
    static const char *const names[F_N] = { "payee_id", "name", "account_number",
                                            "routing_number", "country", "currency", "email",
                                            "amount_limit", "status", "updated_at" };
    fm_entry *e = fm_find(m, key);
    char what[256];

    t->rows++;
    if (!e || e->deleted) {
        t->unexpected++;
        differ(t, sink, key, e ? "deleted in the input, present in the sink" : "not in the input");
        return;
    }
    if (got_version != e->version) {
        t->altered++;
        snprintf(what, sizeof(what), "version %lld, expected %lld", got_version,
                 (long long)e->version);
        differ(t, sink, key, what);
        return;
    }
    for (int i = 0; i < F_N; i++) {
        if (i == F_UPDATED) {
            if (got_updated_ms != fm_iso_ms(e->f[i])) {
                t->altered++;
                snprintf(what, sizeof(what), "updated_at %lld ms, expected %s", got_updated_ms,
                         e->f[i]);
                differ(t, sink, key, what);
                return;
            }
            continue;
        }
        const char *want = e->f[i], *have = got[i] ? got[i] : "";
        if (strcmp(want, have)) {
            t->altered++;
            snprintf(what, sizeof(what), "%s differs (%zu bytes stored, %zu expected)", names[i],
                     strlen(have), strlen(want));
            differ(t, sink, key, what);
            return;
        }
    }
    t->matching++;
}

static int check_pg(fm_model *m, const char *conninfo, const char *schema, tally *t)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "fault_check: postgres: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char *ident = PQescapeIdentifier(c, schema, strlen(schema));
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT payee_id, name, account_number, routing_number, country, currency, "
             "coalesce(email, ''), amount_limit::text, status, "
             "(extract(epoch FROM updated_at) * 1000)::bigint, tb_version FROM %s.payee",
             ident ? ident : "\"?\"");
    PQfreemem(ident);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "fault_check: postgres: %s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *got[F_N];
        for (int k = 0; k < F_N; k++)
            got[k] = PQgetvalue(r, i, k);
        judge(m, t, "postgres", got[F_KEY], got, atoll(PQgetvalue(r, i, F_UPDATED)),
              atoll(PQgetvalue(r, i, F_N)));
    }
    PQclear(r);
    PQfinish(c);
    return 0;
}

/* A string field of a stored document; NULL when absent, null or not a
 * string. */
static const char *bson_text(const bson_t *doc, const char *name)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, name) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

static int check_mongo(fm_model *m, const char *uri, const char *db, tally *t)
{
    static const char *const names[F_N] = { "_id", "name", "account_number",
                                            "routing_number", "country", "currency", "email",
                                            "amount_limit", "status", "updated_at" };
    bson_error_t err;
    mongoc_client_t *c = mongoc_client_new(uri);
    mongoc_collection_t *coll;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_t *all = bson_new();
    int rc = 0;

    if (!c) {
        fprintf(stderr, "fault_check: mongodb: bad URI\n");
        bson_destroy(all);
        return -1;
    }
    coll = mongoc_client_get_collection(c, db, "payee");
    cur = mongoc_collection_find_with_opts(coll, all, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        const char *got[F_N];
        bson_iter_t it;
        long long updated = -1, version = -1;

        for (int k = 0; k < F_N; k++)
            got[k] = k == F_UPDATED ? NULL : bson_text(doc, names[k]);
        if (bson_iter_init_find(&it, doc, "updated_at") && BSON_ITER_HOLDS_DATE_TIME(&it))
            updated = (long long)bson_iter_date_time(&it);
        if (bson_iter_init_find(&it, doc, "tb_version") && BSON_ITER_HOLDS_NUMBER(&it))
            version = (long long)bson_iter_as_int64(&it);
        judge(m, t, "mongodb", got[F_KEY] ? got[F_KEY] : "?", got, updated, version);
    }
    if (mongoc_cursor_error(cur, &err)) {
        fprintf(stderr, "fault_check: mongodb: %s\n", err.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
    bson_destroy(all);
    return rc;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void judge_redis_doc(fm_model *m, tally *t, const char *key, const char *text)
{
    static const char *const names[F_N] = { "payee_id", "name", "account_number",
                                            "routing_number", "country", "currency", "email",
                                            "amount_limit", "status", "updated_at" };
    cJSON *doc = cJSON_Parse(text);
    const char *got[F_N];
    if (!doc) {
        t->rows++;
        t->altered++;
        differ(t, "redis", key, "value is not JSON");
        return;
    }
    for (int k = 0; k < F_N; k++)
        got[k] = jstr(doc, names[k]);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "version");
    long long version = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    if (cJSON_IsString(v))
        version = atoll(v->valuestring);
    long long updated = got[F_UPDATED] ? fm_iso_ms(got[F_UPDATED]) : -1;
    judge(m, t, "redis", key, got, updated, version);
    cJSON_Delete(doc);
}

static int check_redis(fm_model *m, int port, const char *prefix, tally *t)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "fault_check: redis: %s\n", c ? c->errstr : "no memory");
        redisFree(c);
        return -1;
    }
    char pattern[256], cursor[32] = "0";
    snprintf(pattern, sizeof(pattern), "%s:payee:*", prefix);
    size_t skip = strlen(prefix) + strlen(":payee:");
    int rc = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "fault_check: redis SCAN failed\n");
            freeReplyObject(r);
            rc = -1;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            redisAppendCommand(c, "GET %b", keys->element[i]->str, keys->element[i]->len);
        for (size_t i = 0; i < keys->elements && rc == 0; i++) {
            redisReply *g = NULL;
            if (redisGetReply(c, (void **)&g) != REDIS_OK) {
                rc = -1;
                break;
            }
            if (g->type == REDIS_REPLY_STRING)
                judge_redis_doc(m, t, keys->element[i]->str + skip, g->str);
            freeReplyObject(g);
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0"));
    redisFree(c);
    return rc;
}

static int cmd_verify(int argc, char **argv)
{
    const char *batch = arg(argc, argv, "--batch"), *change = arg(argc, argv, "--change");
    const char *pg = arg(argc, argv, "--pg"), *schema = arg(argc, argv, "--pg-schema");
    const char *mongo = arg(argc, argv, "--mongo"), *mdb = arg(argc, argv, "--mongo-db");
    const char *rport = arg(argc, argv, "--redis-port"), *prefix = arg(argc, argv, "--cache-prefix");
    fm_model m = { 0 };
    fm_file_counts cb, cc;
    char err[512];
    tally tp = { 0 }, tr = { 0 };

    if (!batch || !change || !(pg ? schema != NULL : mongo && mdb) || !rport || !prefix) {
        fprintf(stderr, "fault_check verify: missing an option\n");
        return 2;
    }
    if (fm_load(&m, batch, &cb, err, sizeof(err)) != 0 ||
        fm_load(&m, change, &cc, err, sizeof(err)) != 0) {
        fprintf(stderr, "fault_check: %s\n", err);
        fm_free(&m);
        return 2;
    }
    size_t live = fm_live(&m);
    mongoc_init();
    int db_rc = pg ? check_pg(&m, pg, schema, &tp) : check_mongo(&m, mongo, mdb, &tp);
    mongoc_cleanup();
    if (db_rc != 0 || check_redis(&m, atoi(rport), prefix, &tr) != 0) {
        fm_free(&m);
        return 2;
    }
    long lost_pg = (long)live - tp.matching, lost_redis = (long)live - tr.matching;
    printf("store=%s batch_records=%ld batch_format=%ld batch_rules=%ld batch_published=%ld "
           "batch_valid=%ld change_records=%ld change_format=%ld change_rules=%ld "
           "change_published=%ld change_valid=%ld expected_rows=%zu pg_rows=%ld pg_altered=%ld "
           "pg_unexpected=%ld pg_lost=%ld redis_keys=%ld redis_altered=%ld "
           "redis_unexpected=%ld redis_lost=%ld\n",
           pg ? "postgres" : "mongodb", cb.records, cb.format_errors, cb.rule_breaks, cb.published,
           cb.valid, cc.records,
           cc.format_errors, cc.rule_breaks, cc.published, cc.valid, live, tp.rows, tp.altered,
           tp.unexpected, lost_pg, tr.rows, tr.altered, tr.unexpected, lost_redis);
    fm_free(&m);
    return tp.altered || tp.unexpected || lost_pg || tr.altered || tr.unexpected || lost_redis;
}

/* ---- Kafka -------------------------------------------------------------- */

static rd_kafka_t *consumer(const char *brokers, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "allow.auto.create.topics", "true", err, sizeof(err))) {
        fprintf(stderr, "fault_check: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "fault_check: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partitions of topic (created with 6 when missing); -1 on failure. */
static int partitions(rd_kafka_t *rk, const char *topic)
{
    for (int attempt = 0; attempt < 60; attempt++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
        rd_kafka_topic_destroy(t);
        int n = -1;
        if (!e && md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (n > 0)
            return n;
        rd_kafka_poll(rk, 500); /* auto.create.topics: the metadata request creates it */
    }
    return -1;
}

static int cmd_seed(int argc, char **argv)
{
    const char *brokers = arg(argc, argv, "--brokers"), *group = arg(argc, argv, "--group");
    if (!brokers || !group)
        return 2;
    rd_kafka_t *rk = consumer(brokers, group);
    if (!rk)
        return 2;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (!strcmp(argv[i], "--brokers") || !strcmp(argv[i], "--group")) {
            i++;
            continue;
        }
        int n = partitions(rk, argv[i]);
        if (n < 0) {
            fprintf(stderr, "fault_check: topic %s has no metadata\n", argv[i]);
            rc = 2;
        }
        for (int p = 0; p < n && rc == 0; p++) {
            int64_t lo, hi;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, argv[i], p, &lo, &hi, 10000);
            if (e) {
                fprintf(stderr, "fault_check: end offset of %s [%d]: %s\n", argv[i], p,
                        rd_kafka_err2str(e));
                rc = 2;
                break;
            }
            rd_kafka_topic_partition_list_add(l, argv[i], p)->offset = hi;
        }
    }
    rd_kafka_resp_err_t ce = rc == 0 ? rd_kafka_commit(rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ce) {
        fprintf(stderr, "fault_check: commit for %s failed: %s\n", group, rd_kafka_err2str(ce));
        rc = 2;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_count(int argc, char **argv)
{
    const char *brokers = arg(argc, argv, "--brokers"), *topic = arg(argc, argv, "--topic");
    const char *batch = arg(argc, argv, "--batch");
    if (!brokers || !topic || !batch)
        return 2;
    rd_kafka_t *rk = consumer(brokers, "tributary-fault-count");
    if (!rk)
        return 2;
    int n = partitions(rk, topic), eof = 0, rc = 0;
    if (n < 0) {
        rd_kafka_destroy(rk);
        return 2;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t cap = 1024, cnt = 0;
    char **ids = malloc(cap * sizeof(*ids));
    while (eof < n && ids) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 30000);
        if (!msg) {
            fprintf(stderr, "fault_check: %s: no end of partition in 30 s\n", topic);
            rc = 2;
            break;
        }
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (!msg->err) {
            rd_kafka_headers_t *h = NULL;
            const void *v, *idv;
            size_t vlen, idlen;
            if (!rd_kafka_message_headers(msg, &h) &&
                !rd_kafka_header_get_last(h, "tb.batch", &v, &vlen) && vlen == strlen(batch) &&
                !memcmp(v, batch, vlen) && !rd_kafka_header_get_last(h, "tb.id", &idv, &idlen)) {
                if (cnt == cap) {
                    char **grown = realloc(ids, cap * 2 * sizeof(*ids));
                    if (!grown) {
                        fprintf(stderr, "fault_check: out of memory\n");
                        rc = 2;
                        rd_kafka_message_destroy(msg);
                        break;
                    }
                    ids = grown;
                    cap *= 2;
                }
                if ((ids[cnt] = strndup(idv, idlen)))
                    cnt++;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    size_t distinct = 0;
    if (ids) {
        qsort(ids, cnt, sizeof(*ids), cmp_str);
        for (size_t i = 0; i < cnt; i++) /* compare all, then free: [i - 1] is read */
            distinct += i == 0 || strcmp(ids[i], ids[i - 1]);
        for (size_t i = 0; i < cnt; i++)
            free(ids[i]);
        free(ids);
    }
    printf("records=%zu distinct=%zu\n", cnt, distinct);
    rd_kafka_assign(rk, NULL);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "verify"))
        return cmd_verify(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "count"))
        return cmd_count(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "seed-group"))
        return cmd_seed(argc, argv);
    fprintf(stderr, "usage: fault_check verify|count|seed-group ... (see the top of fault_check.c)\n");
    return 2;
}
