/* sink_mongo.c — the MongoDB sink (libmongoc 1.23): a collection per
 * dataset, _id = key, unordered bulk replaces with upsert guarded by
 * {_id: key, tb_version: {$lt: v}} (a newer stored document makes the
 * upsert's insert collide on _id: E11000 = stale), deletes guarded the same
 * way and remembered in <dataset>_tombstone. Works on MongoDB and on
 * FerretDB (no transactions are used: every write is idempotent). */
#include "persister.h"

#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mongo_sink {
    pers_sink base;
    const struct persister_conf *conf;
    mongoc_client_t *client;
    mongoc_write_concern_t *wc;
} mongo_sink;

static void append_json(bson_t *doc, const char *name, const cJSON *v)
{
    if (!v || cJSON_IsNull(v)) {
        bson_append_null(doc, name, -1);
    } else if (cJSON_IsString(v)) {
        bson_append_utf8(doc, name, -1, v->valuestring, -1);
    } else if (cJSON_IsRaw(v)) {
        bson_append_int64(doc, name, -1, strtoll(v->valuestring, NULL, 10));
    } else if (cJSON_IsBool(v)) {
        bson_append_bool(doc, name, -1, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(int64_t)d && d < 9.2e18 && d > -9.2e18)
            bson_append_int64(doc, name, -1, (int64_t)d);
        else
            bson_append_double(doc, name, -1, d);
    } else if (cJSON_IsObject(v)) {
        bson_t child;
        bson_append_document_begin(doc, name, -1, &child);
        const cJSON *c;
        cJSON_ArrayForEach(c, v) append_json(&child, c->string, c);
        bson_append_document_end(doc, &child);
    } else if (cJSON_IsArray(v)) {
        bson_t child;
        char idx[16];
        int i = 0;
        bson_append_array_begin(doc, name, -1, &child);
        const cJSON *c;
        cJSON_ArrayForEach(c, v)
        {
            snprintf(idx, sizeof(idx), "%d", i++);
            append_json(&child, idx, c);
        }
        bson_append_array_end(doc, &child);
    }
}

/* The stored document: _id = key, the fields (timestamps as dates,
 * decimals as Decimal128), tb_version, tb_id, tb_batch. */
static void build_doc(bson_t *doc, const pers_dataset *ds, const pers_op *op, bool dec128)
{
    BSON_APPEND_UTF8(doc, "_id", op->key);
    for (size_t i = 0; i < ds->ncols; i++) {
        const pers_column *c = &ds->cols[i];
        if (c->is_key)
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(op->rec->json, c->name);
        int64_t ms;
        bson_decimal128_t dec;
        if (c->is_time_ms && cJSON_IsString(v) &&
            core_avro_time_parse(v->valuestring, &ms, NULL, 0) == CORE_OK)
            bson_append_date_time(doc, c->name, -1, ms);
        else if (dec128 && !strncmp(c->pg_type, "numeric", 7) && cJSON_IsString(v) &&
                 bson_decimal128_from_string(v->valuestring, &dec))
            bson_append_decimal128(doc, c->name, -1, &dec);
        else
            append_json(doc, c->name, v);
    }
    BSON_APPEND_INT64(doc, "tb_version", op->version);
    BSON_APPEND_UTF8(doc, "tb_id", op->rec->id ? op->rec->id : "");
    BSON_APPEND_UTF8(doc, "tb_batch", op->rec->batch_id ? op->rec->batch_id : "");
}

/* Ops are sorted by key (pers_reduce): find one. */
static pers_op *find_op(pers_op *ops, size_t n, const char *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ops[mid].key, key);
        if (c == 0)
            return &ops[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static pers_res_t mongo_connect(pers_sink *base, char *errstr, size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    if (s->client)
        return PERS_OK;
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(s->conf->mongo_uri, &err);
    if (!uri) {
        core_errstr(errstr, errstr_size, "mongodb.uri: %s", err.message);
        return PERS_RETRY;
    }
    if (!mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    s->client = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (!s->client) {
        core_errstr(errstr, errstr_size, "mongodb: cannot create a client");
        return PERS_RETRY;
    }
    mongoc_client_set_appname(s->client, "svc-persister");
    mongoc_client_set_error_api(s->client, MONGOC_ERROR_API_VERSION_2);
    return PERS_OK;
}

static bool mongo_ping(pers_sink *base)
{
    mongo_sink *s = (mongo_sink *)base;
    char e[256];
    if (mongo_connect(base, e, sizeof(e)) != PERS_OK)
        return false;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err;
    bool ok = mongoc_client_command_simple(s->client, s->conf->mongo_database, cmd, NULL, NULL,
                                           &err);
    bson_destroy(cmd);
    return ok;
}

/* Add one op to a bulk: the guarded replace (upsert) or remove on the
 * dataset's collection, or the guarded tombstone upsert. */
static bool bulk_add(mongoc_bulk_operation_t *bulk, const pers_dataset *ds, const pers_op *op,
                     bool tomb, bool dec128, bson_error_t *err)
{
    /* a key the database holds is replaced only under the version guard (no
     * upsert: a guard that does not match is a no-op, never an error); a key
     * it does not hold is inserted by an upsert on _id alone */
    bool exists = tomb ? op->tombed : op->stored;
    bson_t *sel = exists ? BCON_NEW("_id", BCON_UTF8(op->key), "tb_version", "{", "$lte",
                                    BCON_INT64(op->version), "}")
                         : BCON_NEW("_id", BCON_UTF8(op->key));
    bson_t *o = BCON_NEW("upsert", BCON_BOOL(!exists));
    bool ok;
    if (tomb) {
        bson_t *doc = BCON_NEW("_id", BCON_UTF8(op->key), "tb_version", BCON_INT64(op->version));
        ok = mongoc_bulk_operation_replace_one_with_opts(bulk, sel, doc, o, err);
        bson_destroy(doc);
    } else if (op->kind == PERS_UPSERT) {
        bson_t doc = BSON_INITIALIZER;
        build_doc(&doc, ds, op, dec128);
        ok = mongoc_bulk_operation_replace_one_with_opts(bulk, sel, &doc, o, err);
        bson_destroy(&doc);
    } else {
        ok = mongoc_bulk_operation_remove_one_with_opts(bulk, sel, NULL, err);
    }
    bson_destroy(o);
    bson_destroy(sel);
    return ok;
}

static int64_t reply_int(const bson_t *reply, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, name) ? bson_iter_as_int64(&it) : 0;
}

static void mark_dead(pers_op *op, const char *prefix, int32_t code, const char *msg)
{
    char buf[700];
    if (code)
        snprintf(buf, sizeof(buf), "%s %d: %s", prefix, (int)code, msg);
    else
        snprintf(buf, sizeof(buf), "%s: %s", prefix, msg);
    op->fate = PERS_DEAD;
    free(op->error);
    op->error = strdup(buf);
}

/*
 * Run list[0..m) as unordered bulks. A write error on one op marks that op
 * (E11000: the guard did not match, a newer version is stored: STALE; any
 * other: DEAD). MongoDB goes on after an error in an unordered bulk;
 * FerretDB 1.24 stops at the first one and reports nothing for the rest, so
 * when the reply does not account for every op, the ops after the first
 * error are sent again (they are idempotent).
 */
static pers_res_t bulk_ops(mongo_sink *s, mongoc_collection_t *coll, const pers_dataset *ds,
                           pers_op **list, size_t m, bool tomb, const bson_t *bopts,
                           char *errstr, size_t errstr_size)
{
    while (m > 0) {
        mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bopts);
        pers_op **map = calloc(m, sizeof(*map));
        size_t k = 0;
        bson_error_t err;
        if (!map) {
            mongoc_bulk_operation_destroy(bulk);
            core_errstr(errstr, errstr_size, "out of memory");
            return PERS_RETRY;
        }
        for (size_t i = 0; i < m; i++) {
            if (bulk_add(bulk, ds, list[i], tomb, s->conf->mongo_decimal128, &err))
                map[k++] = list[i];
            else /* refused before it was sent: the document itself */
                mark_dead(list[i], "mongodb", 0, err.message);
        }
        if (k == 0) {
            free(map);
            mongoc_bulk_operation_destroy(bulk);
            return PERS_OK;
        }
        bson_t reply;
        uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &err);
        mongoc_bulk_operation_destroy(bulk);
        size_t nerr = 0, first_err = k;
        bson_iter_t it, arr;
        if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &arr)) {
            while (bson_iter_next(&arr)) {
                bson_iter_t e;
                if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &e))
                    continue;
                int64_t idx = -1;
                int32_t code = 0;
                const char *msg = "";
                while (bson_iter_next(&e)) {
                    const char *key = bson_iter_key(&e);
                    if (!strcmp(key, "index"))
                        idx = bson_iter_as_int64(&e);
                    else if (!strcmp(key, "code"))
                        code = (int32_t)bson_iter_as_int64(&e);
                    else if (!strcmp(key, "errmsg") && BSON_ITER_HOLDS_UTF8(&e))
                        msg = bson_iter_utf8(&e, NULL);
                }
                if (idx < 0 || (size_t)idx >= k)
                    continue;
                nerr++;
                if ((size_t)idx < first_err)
                    first_err = (size_t)idx;
                if (code == 11000)
                    map[idx]->fate = PERS_STALE;
                else
                    mark_dead(map[idx], "mongodb", code, msg);
            }
        }
        bool wc_error = bson_iter_init_find(&it, &reply, "writeConcernErrors") &&
                        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr) &&
                        bson_iter_next(&arr);
        int64_t done = reply_int(&reply, "nMatched") + reply_int(&reply, "nUpserted") +
                       reply_int(&reply, "nRemoved") + reply_int(&reply, "nInserted") +
                       (int64_t)nerr;
        core_log_debug("mongodb bulk", CLF_S("collection", mongoc_collection_get_name(coll)),
                       CLF_I("ops", k), CLF_I("errors", nerr), CLF_I("accounted", done),
                       CLF_I("first_error", first_err), CLF_B("ok", ok));
        bson_destroy(&reply);
        if ((!ok && nerr == 0) || wc_error) {
            core_errstr(errstr, errstr_size, "mongodb: %s", err.message);
            free(map);
            return PERS_RETRY;
        }
        /* every op accounted for, or no error at all: done */
        if (nerr == 0 || done >= (int64_t)k) {
            free(map);
            return PERS_OK;
        }
        /* again with the ops after the first error that got no answer */
        size_t w = 0;
        for (size_t i = first_err + 1; i < k; i++)
            if (map[i]->fate == PERS_PENDING)
                list[w++] = map[i];
        m = w;
        free(map);
    }
    return PERS_OK;
}

static pers_res_t mongo_write(pers_sink *base, pers_dataset *ds, pers_op *ops, size_t n,
                              char *errstr, size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    pers_res_t r = mongo_connect(base, errstr, errstr_size);
    if (r != PERS_OK)
        return r;
    char tname[300];
    snprintf(tname, sizeof(tname), "%s_tombstone", ds->name);
    mongoc_collection_t *coll =
        mongoc_client_get_collection(s->client, s->conf->mongo_database, ds->name);
    mongoc_collection_t *tomb =
        mongoc_client_get_collection(s->client, s->conf->mongo_database, tname);
    pers_op **map = calloc(n ? n : 1, sizeof(*map));
    bson_t bopts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&bopts, "ordered", false);
    mongoc_write_concern_append(s->wc, &bopts);
    bson_error_t err;

    if (!map) {
        core_errstr(errstr, errstr_size, "out of memory");
        r = PERS_RETRY;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ops[i].fate = PERS_PENDING;

    /* 1. what the database holds for the batch's keys: the stored version
     * and the tombstone (queries of at most 200 keys each) */
    for (size_t i = 0; i < n; i++)
        ops[i].stored = ops[i].tombed = false;
    for (size_t from = 0; from < n; from += 200) {
        bson_t filter = BSON_INITIALIZER, idq, in;
        char idx[16];
        int k = 0;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &idq);
        BSON_APPEND_ARRAY_BEGIN(&idq, "$in", &in);
        for (size_t i = from; i < n && i < from + 200; i++) {
            snprintf(idx, sizeof(idx), "%d", k++);
            bson_append_utf8(&in, idx, -1, ops[i].key, -1);
        }
        bson_append_array_end(&idq, &in);
        bson_append_document_end(&filter, &idq);
        /* the stored versions too: stale upserts are skipped before the bulk
         * (the guard in the bulk still decides; this spares FerretDB, which
         * stops an unordered bulk at its first error, a round per stale op) */
        for (int pass = 0; pass < 2 && k > 0; pass++) {
            bson_t *proj = BCON_NEW("projection", "{", "tb_version", BCON_INT32(1), "}");
            mongoc_cursor_t *cur =
                mongoc_collection_find_with_opts(pass ? coll : tomb, &filter, proj, NULL);
            bson_destroy(proj);
            const bson_t *d;
            while (mongoc_cursor_next(cur, &d)) {
                bson_iter_t it;
                const char *key = NULL;
                int64_t v = INT64_MIN;
                if (bson_iter_init_find(&it, d, "_id") && BSON_ITER_HOLDS_UTF8(&it))
                    key = bson_iter_utf8(&it, NULL);
                if (bson_iter_init_find(&it, d, "tb_version"))
                    v = bson_iter_as_int64(&it);
                pers_op *op = key ? find_op(ops, n, key) : NULL;
                if (op && pass) {
                    op->stored = true;
                    op->stored_version = v;
                } else if (op) {
                    op->tombed = true;
                    op->tomb_version = v;
                }
            }
            bool cerr = mongoc_cursor_error(cur, &err);
            mongoc_cursor_destroy(cur);
            if (cerr) {
                bson_destroy(&filter);
                core_errstr(errstr, errstr_size, "mongodb: %s", err.message);
                r = PERS_RETRY;
                goto out;
            }
        }
        bson_destroy(&filter);
    }
    {
        for (size_t i = 0; i < n; i++) {
            pers_op *op = &ops[i];
            bool newer_row = op->stored && op->stored_version > op->version;
            bool newer_tomb = op->tombed && (op->kind == PERS_UPSERT
                                                 ? op->tomb_version >= op->version
                                                 : op->tomb_version > op->version);
            if (newer_row || newer_tomb)
                op->fate = PERS_STALE;
        }
    }

    /* 2. upserts and deletes, unordered */
    {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (ops[i].fate == PERS_PENDING)
                map[m++] = &ops[i];
        r = bulk_ops(s, coll, ds, map, m, false, &bopts, errstr, errstr_size);
        if (r != PERS_OK)
            goto out;
    }
    /* 3. remember deletes: tombstone with the version, never lowered */
    {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == PERS_DELETE && ops[i].fate == PERS_PENDING)
                map[m++] = &ops[i];
        r = bulk_ops(s, tomb, ds, map, m, true, &bopts, errstr, errstr_size);
        if (r != PERS_OK)
            goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].fate == PERS_PENDING)
            ops[i].fate = PERS_WRITTEN;
out:
    if (r != PERS_OK)
        for (size_t i = 0; i < n; i++) {
            ops[i].fate = PERS_PENDING;
            free(ops[i].error);
            ops[i].error = NULL;
        }
    bson_destroy(&bopts);
    free(map);
    mongoc_collection_destroy(coll);
    mongoc_collection_destroy(tomb);
    return r;
}

static void mongo_free(pers_sink *base)
{
    mongo_sink *s = (mongo_sink *)base;
    if (!s)
        return;
    if (s->client)
        mongoc_client_destroy(s->client);
    mongoc_write_concern_destroy(s->wc);
    free(s);
}

pers_sink *pers_mongo_new(const struct persister_conf *conf, char *errstr, size_t errstr_size)
{
    static bool inited;
    if (!inited) {
        mongoc_init();
        inited = true;
    }
    mongo_sink *s = calloc(1, sizeof(*s));
    if (!s) {
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->conf = conf;
    s->wc = mongoc_write_concern_new();
    const char *w = conf->mongo_write_concern;
    if (!strcmp(w, "majority")) {
        mongoc_write_concern_set_w(s->wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
    } else {
        char *end;
        long v = strtol(w, &end, 10);
        if (*end || v < 0 || v > 50) {
            core_errstr(errstr, errstr_size,
                        "mongodb.write.concern: \"%s\" is neither majority nor a number 0..50", w);
            mongoc_write_concern_destroy(s->wc);
            free(s);
            return NULL;
        }
        mongoc_write_concern_set_w(s->wc, (int32_t)v);
    }
    if (conf->mongo_wtimeout_ms > 0)
        mongoc_write_concern_set_wtimeout_int64(s->wc, conf->mongo_wtimeout_ms);
    s->base.name = "mongodb";
    s->base.connect = mongo_connect;
    s->base.write = mongo_write;
    s->base.ping = mongo_ping;
    s->base.free = mongo_free;
    return &s->base;
}

/* mongodb.indexes entries: "dataset:field[+field...]" (ascending). */
int pers_mongo_create_indexes(pers_sink *base, pers_dataset *ds, size_t nds, char *errstr,
                              size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    if (mongo_connect(base, errstr, errstr_size) != PERS_OK)
        return -1;
    for (size_t i = 0; i < s->conf->mongo_indexes.n; i++) {
        const char *spec = s->conf->mongo_indexes.v[i];
        const char *colon = strchr(spec, ':');
        if (!colon || colon == spec || !colon[1]) {
            core_errstr(errstr, errstr_size,
                        "mongodb.indexes: \"%s\" is not dataset:field[+field...]", spec);
            return -1;
        }
        char dsname[128], fields[256];
        snprintf(dsname, sizeof(dsname), "%.*s", (int)(colon - spec), spec);
        snprintf(fields, sizeof(fields), "%s", colon + 1);
        bool known = false;
        for (size_t d = 0; d < nds; d++)
            known |= !strcmp(ds[d].name, dsname);
        if (!known)
            continue; /* an index of a dataset this instance does not persist */
        bson_t cmd = BSON_INITIALIZER, arr, idx, key;
        char name[300];
        snprintf(name, sizeof(name), "tb_%s", fields);
        for (char *p = name; *p; p++)
            if (*p == '+')
                *p = '_';
        BSON_APPEND_UTF8(&cmd, "createIndexes", dsname);
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
        BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &key);
        char *save = NULL;
        for (char *f = strtok_r(fields, "+", &save); f; f = strtok_r(NULL, "+", &save))
            BSON_APPEND_INT32(&key, f, 1);
        bson_append_document_end(&idx, &key);
        BSON_APPEND_UTF8(&idx, "name", name);
        bson_append_document_end(&arr, &idx);
        bson_append_array_end(&cmd, &arr);
        bson_error_t err;
        bool ok = mongoc_client_command_simple(s->client, s->conf->mongo_database, &cmd, NULL,
                                               NULL, &err);
        bson_destroy(&cmd);
        if (!ok) {
            core_errstr(errstr, errstr_size, "mongodb.indexes: %s: %s", spec, err.message);
            return -1;
        }
        core_log_info("index ready", CLF_S("dataset", dsname), CLF_S("index", name));
    }
    return 0;
}
