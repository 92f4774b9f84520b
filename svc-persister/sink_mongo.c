/* sink_mongo.c — the MongoDB sink (libmongoc 1.23): a collection per
 * dataset, _id = key; replaces and removes guarded by {_id: key,
 * tb_version: {$lte: v}}, new keys inserted in unordered bulks (an insert
 * never overwrites: E11000 = a newer document), deletes remembered in
 * <dataset>_tombstone. Works on MongoDB and on FerretDB (no transactions
 * are used: every write is idempotent; see mongo_write). */
#include "persister.h"
#include "sink_mongo_int.h"

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct pers_mongo_conf, field), help, lo, hi, ch }

const core_config_key pers_mongo_keys[] = {
    K("mongodb.uri", CORE_CFG_STR, "mongodb://127.0.0.1:27017", CORE_CFG_SECRET, uri,
      "MongoDB connection string (mongodb.uri_file to read it from a file)", 0, 0, NULL),
    K("mongodb.database", CORE_CFG_STR, "tributary", 0, database,
      "Database of the dataset collections", 0, 0, NULL),
    K("mongodb.write.concern", CORE_CFG_STR, "majority", 0, write_concern,
      "Write concern w: majority or a number of members", 0, 0, NULL),
    K("mongodb.wtimeout.ms", CORE_CFG_INT, "10000", 0, wtimeout_ms,
      "Write concern timeout (0: none)", 0, 3600000, NULL),
    K("mongodb.indexes", CORE_CFG_LIST, NULL, 0, indexes,
      "Secondary indexes, dataset:field[+field...][:unique], created with --create.tables", 0, 0,
      NULL),
    K("mongodb.decimal128", CORE_CFG_BOOL, "true", 0, decimal128,
      "Store Avro decimals as Decimal128 (false: as their exact text; FerretDB 1.x has no "
      "Decimal128)", 0, 0, NULL),
    CORE_CFG_END
};

typedef struct mongo_sink {
    pers_sink base;
    const struct pers_mongo_conf *conf;
    mongoc_client_t *client;
    mongoc_write_concern_t *wc;
} mongo_sink;

static pers_res_t mongo_connect(pers_sink *base, char *errstr, size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    if (s->client)
        return PERS_OK;
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(s->conf->uri, &err);
    if (!uri) {
        core_errstr(errstr, errstr_size, "mongodb.uri: %s", err.message);
        return PERS_ERROR;
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

static pers_res_t mongo_ping(pers_sink *base, char *errstr, size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    pers_res_t r = mongo_connect(base, errstr, errstr_size);
    if (r != PERS_OK)
        return r;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_t reply;
    bson_error_t err;
    bool ok = mongoc_client_command_simple(s->client, s->conf->database, cmd, NULL, &reply,
                                           &err);
    bson_destroy(cmd);
    if (ok) {
        bson_destroy(&reply);
        return PERS_OK;
    }
    /* err.message is cut at 504 bytes, before the SQLSTATE at the end of
     * FerretDB's long messages: the reply's errmsg is whole */
    bson_iter_t it;
    const char *msg = bson_iter_init_find(&it, &reply, "errmsg") && BSON_ITER_HOLDS_UTF8(&it)
                          ? bson_iter_utf8(&it, NULL)
                          : err.message;
    /* a refused login is the configuration's (the credentials are in the
     * URI), not an outage */
    if (pers_mongo_login_refused(err.domain, err.code, msg)) {
        if (err.domain == MONGOC_ERROR_SERVER && err.code == 1) /* FerretDB: not its Go trace */
            core_errstr(errstr, errstr_size,
                        "mongodb.uri: mongodb at %s refused the login: its PostgreSQL refused "
                        "the user or password (SQLSTATE %.5s)",
                        s->base.addr, strstr(msg, "(SQLSTATE 28") + 10);
        else
            core_errstr(errstr, errstr_size, "mongodb.uri: mongodb at %s refused the login: %s",
                        s->base.addr, msg);
        bson_destroy(&reply);
        return PERS_ERROR;
    }
    core_errstr(errstr, errstr_size, "mongodb at %s: %s", s->base.addr, err.message);
    bson_destroy(&reply);
    return PERS_RETRY;
}

static int64_t reply_int(const bson_t *reply, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, name) ? bson_iter_as_int64(&it) : 0;
}

/* The kinds of write (see mongo_write). */
typedef enum step {
    STEP_INSERT,  /* insert (never overwrites) */
    STEP_REPLACE, /* replace under {_id, tb_version $lte v} */
    STEP_REMOVE,  /* remove under the same guard */
} step_t;

/* One chunk of one kind of write, and what became of each op of it. */
typedef struct chunk {
    pers_op **ops;
    size_t n;
    step_t step;
} chunk;

/* Per-op result of a chunk: 0 done, 1 not done (an insert met an existing
 * _id, a guarded replace or remove matched nothing), -1 dead (marked). */
#define R_DONE 0
#define R_AGAIN 1
#define R_DEAD (-1)

/*
 * FerretDB 1.24 limits (found in its source, v1.24.0), why replaces and
 * removes go one per command (run_one) and only inserts in bulk:
 *  - `update` runs its statements one by one and stops at the first error,
 *    reporting it as writeErrors[{index: 0}] whatever the statement (and no
 *    counts): only a single op's answer is exact;
 *  - `update` keeps every statement's query open until the command ends: on
 *    the PostgreSQL backend, commands holding more statements than its
 *    connection pool (about 50) in all wait forever (two commands of 25 do:
 *    a killed client's command still running and its successor's); one
 *    statement per command measured no slower on FerretDB;
 *  - `insert` and `delete` report per-op errors with the right index.
 */
#define INSERT_CHUNK 1000

/* Run one chunk as one command (unordered); res[i] gets R_DONE / R_AGAIN /
 * R_DEAD. @returns PERS_RETRY when the command itself failed (connection,
 * timeout, write concern): nothing is known about the ops. Longer than
 * ~120 lines for a reason: the bulk built op by op (insert, guarded
 * replace, guarded delete) and its reply mapped back to the ops, with one
 * cleanup path. */
static pers_res_t run_chunk(mongo_sink *s, mongoc_collection_t *coll, const pers_dataset *ds,
                            chunk *c, int *res, const bson_t *bopts, char *errstr,
                            size_t errstr_size)
{
    bson_error_t err;
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bopts);
    size_t *map = calloc(c->n ? c->n : 1, sizeof(*map));
    size_t k = 0;
    if (!map) {
        mongoc_bulk_operation_destroy(bulk);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    for (size_t i = 0; i < c->n; i++) {
        pers_op *op = c->ops[i];
        bool ok;
        bson_t *sel = NULL;
        res[i] = R_DONE;
        if (c->step != STEP_INSERT)
            sel = BCON_NEW("_id", BCON_UTF8(op->key), "tb_version", "{", "$lte",
                           BCON_INT64(op->version), "}");
        if (c->step == STEP_REMOVE) {
            ok = mongoc_bulk_operation_remove_one_with_opts(bulk, sel, NULL, &err);
        } else {
            bson_t doc = BSON_INITIALIZER;
            pers_mongo_doc_build(&doc, ds, op, s->conf->decimal128);
            ok = c->step == STEP_INSERT
                     ? mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &err)
                     : mongoc_bulk_operation_replace_one_with_opts(bulk, sel, &doc, NULL, &err);
            bson_destroy(&doc);
        }
        if (sel)
            bson_destroy(sel);
        if (ok) {
            map[k++] = i;
        } else { /* refused before it was sent: the document itself */
            pers_mongo_mark_dead(op, "mongodb", 0, err.message);
            res[i] = R_DEAD;
        }
    }
    if (k == 0) {
        free(map);
        mongoc_bulk_operation_destroy(bulk);
        return PERS_OK;
    }
    bson_t reply;
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &err);
    mongoc_bulk_operation_destroy(bulk);
    size_t nerr = 0;
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
            size_t i = map[idx];
            if (code == 11000 && c->step == STEP_INSERT) {
                /* the _id exists (a newer document), or a unique index of
                 * the operator's refused the document: the caller reads
                 * the key to tell */
                res[i] = R_AGAIN;
            } else {
                /* a guarded replace or remove cannot meet an existing _id:
                 * any error (E11000 of a unique index, validation) is the
                 * document's */
                pers_mongo_mark_dead(c->ops[i], "mongodb", code, msg);
                res[i] = R_DEAD;
            }
        }
    }
    bool wc_error = bson_iter_init_find(&it, &reply, "writeConcernErrors") &&
                    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr) &&
                    bson_iter_next(&arr);
    int64_t matched = reply_int(&reply, "nMatched"), removed = reply_int(&reply, "nRemoved");
    bson_destroy(&reply);
    size_t only = map[0];
    free(map);
    if (!ok && nerr == 0 && !wc_error && k == 1 && pers_mongo_refused_data(&err)) {
        /* one op, refused for its document by FerretDB's whole-command
         * error (see pers_mongo_refused_data): that op is dead */
        const char *why = strstr(err.message, "ERROR: ");
        why = why ? why + strlen("ERROR: ") : err.message;
        if (strstr(err.message, "(SQLSTATE 23505)"))
            pers_mongo_mark_dead(c->ops[only], "mongodb", 11000, why); /* as MongoDB says it */
        else
            pers_mongo_mark_dead(c->ops[only], "mongodb", (int32_t)err.code, why);
        res[only] = R_DEAD;
        return PERS_OK;
    }
    if ((!ok && nerr == 0) || wc_error) {
        char why[400];
        if (pers_mongo_refused_data(&err)) /* a document's fault, retried one op at a time: no values */
            pers_mongo_reason(err.message, why, sizeof(why));
        core_errstr(errstr, errstr_size, "mongodb: %s",
                    pers_mongo_refused_data(&err) ? why : err.message);
        return PERS_RETRY;
    }
    /* a guarded replace or remove that matched less than it was given:
     * absent or newer (run_one sends one op, so the count says which) */
    int64_t want = (int64_t)(k - nerr);
    int64_t got = c->step == STEP_REPLACE ? matched : c->step == STEP_REMOVE ? removed : want;
    if (got < want)
        for (size_t i = 0; i < c->n; i++)
            if (res[i] == R_DONE)
                res[i] = R_AGAIN;
    return PERS_OK;
}

/* What the database holds for one key: one point read by _id (FerretDB 1.x
 * pushes an _id equality down to its index; it does not push $in down, so
 * a read of many keys would scan the whole collection). */
static pers_res_t read_one(mongoc_collection_t *coll, const char *key, bool *exists,
                           int64_t *version, char *errstr, size_t errstr_size)
{
    bson_error_t err;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(key));
    bson_t *opts = BCON_NEW("projection", "{", "tb_version", BCON_INT32(1), "}", "limit",
                            BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *d;
    *exists = false;
    *version = INT64_MIN;
    if (mongoc_cursor_next(cur, &d)) {
        bson_iter_t it;
        *exists = true;
        if (bson_iter_init_find(&it, d, "tb_version"))
            *version = bson_iter_as_int64(&it);
    }
    bool failed = mongoc_cursor_error(cur, &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    if (failed) {
        core_errstr(errstr, errstr_size, "mongodb: %s", err.message);
        return PERS_RETRY;
    }
    return PERS_OK;
}

/* Whether the dataset has any tombstone (one read, whatever the size of
 * the collection: it stops at the first document). */
static pers_res_t tombstones_any(mongoc_collection_t *tomb, bool *any, char *errstr,
                                 size_t errstr_size)
{
    bson_error_t err;
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit",
                            BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(tomb, &filter, opts, NULL);
    const bson_t *d;
    *any = mongoc_cursor_next(cur, &d);
    bool failed = mongoc_cursor_error(cur, &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    if (failed) {
        core_errstr(errstr, errstr_size, "mongodb: %s", err.message);
        return PERS_RETRY;
    }
    return PERS_OK;
}

/* One op as one command (FerretDB runs an update's statements one by one
 * anyway, and a command of many holds as many connections: see above). */
static pers_res_t run_one(mongo_sink *s, mongoc_collection_t *coll, const pers_dataset *ds,
                          pers_op *op, step_t step, const bson_t *bopts, int *res,
                          char *errstr, size_t errstr_size)
{
    chunk one = { &op, 1, step };
    return run_chunk(s, coll, ds, &one, res, bopts, errstr, errstr_size);
}

/* Remember a delete: the tombstone at the op's version, never lowered (an
 * upsert guarded by {_id, tb_version $lte v}; a newer tombstone makes it
 * collide on _id, which is fine). */
static pers_res_t remember_delete(mongo_sink *s, mongoc_collection_t *tomb, pers_op *op,
                                  char *errstr, size_t errstr_size)
{
    bson_error_t err;
    bson_t reply;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(op->key), "tb_version", "{", "$lte",
                           BCON_INT64(op->version), "}");
    bson_t *upd = BCON_NEW("$set", "{", "tb_version", BCON_INT64(op->version), "}");
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "upsert", true);
    mongoc_write_concern_append(s->wc, &opts);
    bool ok = mongoc_collection_update_one(tomb, sel, upd, &opts, &reply, &err);
    bson_destroy(&reply);
    bson_destroy(&opts);
    bson_destroy(upd);
    bson_destroy(sel);
    if (ok || err.code == 11000)
        return PERS_OK;
    core_errstr(errstr, errstr_size, "mongodb: %s", err.message);
    return PERS_RETRY;
}

/*
 * The batch, without reading first (FerretDB 1.x cannot read many keys
 * without a full scan). Every write is guarded, so the order of the steps
 * below never lets an older version win, and a crash anywhere is repaired
 * by the replay:
 *  1. an upsert replaces the stored document under {_id, tb_version $lte v}
 *     (no upsert flag): a match is written; no match means absent or newer;
 *  2. a delete removes under the same guard; no match means absent or
 *     newer: one read tells (newer: stale, nothing remembered);
 *  3. an upsert that matched nothing: its tombstone is read (a key deleted
 *     at a newer version stays deleted), then the document is inserted, in
 *     bulk: an insert never overwrites, so E11000 means a newer document
 *     (stale) — or, when the _id is not there, a unique index of the
 *     operator's refusing the document (dead);
 *  4. deletes that removed a document, or found none, leave a tombstone.
 * A stored document makes its key's tombstones irrelevant: a delete only
 * removes a document at least as old as itself.
 * While the dataset has no tombstone at all (a bulk load, a feed without
 * deletes) no key can have been deleted at a newer version: upserts skip 1
 * and the tombstone reads of 3 and are inserted first; an insert that meets
 * the _id falls back to the guarded replace. A new key then costs its share
 * of a bulk insert instead of a replace that matches nothing and a read.
 * Longer than ~120 lines for a reason: the four steps above in order, on
 * one set of chunks, with one cleanup path.
 */
static pers_res_t mongo_write(pers_sink *base, pers_dataset *ds, pers_op *ops, size_t n,
                              char *errstr, size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    pers_res_t r = mongo_connect(base, errstr, errstr_size);
    if (r != PERS_OK)
        return PERS_RETRY; /* a refusal too: nothing the rows can change */
    char tname[300];
    snprintf(tname, sizeof(tname), "%s_tombstone", ds->name);
    mongoc_collection_t *coll =
        mongoc_client_get_collection(s->client, s->conf->database, ds->name);
    mongoc_collection_t *tomb =
        mongoc_client_get_collection(s->client, s->conf->database, tname);
    pers_op **ins = calloc(n ? n : 1, sizeof(*ins));
    int *res = calloc(n ? n : 1, sizeof(*res));
    bson_t bopts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&bopts, "ordered", false);
    mongoc_write_concern_append(s->wc, &bopts);
    size_t nins = 0;

    if (!ins || !res) {
        core_errstr(errstr, errstr_size, "out of memory");
        r = PERS_RETRY;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ops[i].fate = PERS_PENDING;
    bool tombs = true;
    r = tombstones_any(tomb, &tombs, errstr, errstr_size);
    /* 1 and 2: guarded replaces and removes (one command each: a batch can
     * outlast the grace period of a stop, so it is given up between two) */
    for (size_t i = 0; i < n && r == PERS_OK; i++) {
        pers_op *op = &ops[i];
        if (core_lifecycle_give_up(errstr, errstr_size)) {
            r = PERS_RETRY;
            break;
        }
        bool del = op->kind == PERS_DELETE;
        if (!del && !tombs) {
            ins[nins++] = op; /* inserted first (see above) */
            continue;
        }
        int rr = R_DONE;
        r = run_one(s, coll, ds, op, del ? STEP_REMOVE : STEP_REPLACE, &bopts, &rr, errstr,
                    errstr_size);
        if (r != PERS_OK || rr == R_DEAD)
            continue;
        if (rr == R_DONE) {
            op->fate = del ? PERS_PENDING : PERS_WRITTEN; /* deletes: tombstone below */
            continue;
        }
        if (!del) {
            ins[nins++] = op;
            continue;
        }
        bool exists;
        int64_t v;
        r = read_one(coll, op->key, &exists, &v, errstr, errstr_size);
        if (r == PERS_OK && exists && v > op->version)
            op->fate = PERS_STALE; /* a newer document is stored */
    }
    /* 3: inserts of keys not stored, unless deleted at a newer version */
    size_t m = 0;
    for (size_t i = 0; i < nins && r == PERS_OK; i++) {
        bool exists = false;
        int64_t v = INT64_MIN;
        if (core_lifecycle_give_up(errstr, errstr_size)) {
            r = PERS_RETRY;
            break;
        }
        if (tombs)
            r = read_one(tomb, ins[i]->key, &exists, &v, errstr, errstr_size);
        if (r == PERS_OK && exists && v >= ins[i]->version)
            ins[i]->fate = PERS_STALE;
        else if (r == PERS_OK)
            ins[m++] = ins[i];
    }
    for (size_t from = 0; from < m && r == PERS_OK; from += INSERT_CHUNK) {
        if (core_lifecycle_give_up(errstr, errstr_size)) {
            r = PERS_RETRY;
            break;
        }
        chunk c = { ins + from, m - from < INSERT_CHUNK ? m - from : INSERT_CHUNK, STEP_INSERT };
        r = run_chunk(s, coll, ds, &c, res, &bopts, errstr, errstr_size);
        for (size_t i = 0; r == PERS_OK && i < c.n; i++) {
            pers_op *op = c.ops[i];
            if (res[i] == R_DONE) {
                op->fate = PERS_WRITTEN;
            } else if (res[i] == R_AGAIN) { /* E11000 */
                /* the _id is stored (inserted first, or stored meanwhile by
                 * another writer): the guarded replace settles it; when it
                 * matches nothing, one read tells a newer document from a
                 * unique index of the operator's refusing this one */
                int rr = R_DONE;
                bool exists;
                int64_t v;
                r = run_one(s, coll, ds, op, STEP_REPLACE, &bopts, &rr, errstr, errstr_size);
                if (r != PERS_OK)
                    break;
                if (rr == R_DONE) {
                    op->fate = PERS_WRITTEN;
                    continue;
                }
                if (rr == R_DEAD)
                    continue;
                r = read_one(coll, op->key, &exists, &v, errstr, errstr_size);
                if (r != PERS_OK)
                    break;
                if (!exists) {
                    pers_mongo_mark_dead(op, "mongodb", 11000, "duplicate key (unique index)");
                } else if (v > op->version) {
                    op->fate = PERS_STALE;
                } else {
                    core_errstr(errstr, errstr_size,
                                "mongodb: %s changes under this writer: another writer?",
                                op->key);
                    r = PERS_RETRY;
                }
            }
        }
    }
    /* 4: tombstones */
    for (size_t i = 0; i < n && r == PERS_OK; i++) {
        pers_op *op = &ops[i];
        if (op->kind != PERS_DELETE || op->fate != PERS_PENDING)
            continue;
        if (core_lifecycle_give_up(errstr, errstr_size)) {
            r = PERS_RETRY;
            break;
        }
        r = remember_delete(s, tomb, op, errstr, errstr_size);
        if (r == PERS_OK)
            op->fate = PERS_WRITTEN;
    }
out:
    if (r != PERS_OK) {
        for (size_t i = 0; i < n; i++) {
            ops[i].fate = PERS_PENDING;
            free(ops[i].error);
            ops[i].error = NULL;
        }
        char e2[300];
        if (s->client && mongo_ping(base, e2, sizeof(e2)) != PERS_OK) {
            mongoc_client_destroy(s->client); /* reconnect on the next try */
            s->client = NULL;
        }
    }
    bson_destroy(&bopts);
    free(ins);
    free(res);
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

/* libmongoc's own log lines (its default handler writes plain text to
 * stderr) into the service's JSON log. Runs on any thread. */
static void mongoc_log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                          void *user)
{
    (void)user;
    core_log_level_t lvl = level <= MONGOC_LOG_LEVEL_CRITICAL ? CORE_LOG_ERROR
                           : level == MONGOC_LOG_LEVEL_WARNING ? CORE_LOG_WARN
                           : level <= MONGOC_LOG_LEVEL_INFO   ? CORE_LOG_INFO
                                                                : CORE_LOG_DEBUG;
    if (level == MONGOC_LOG_LEVEL_TRACE || lvl < core_log_level())
        return;
    core_log_(lvl, message, CLF_S("component", "libmongoc"),
              CLF_S("domain", domain ? domain : ""));
}

static int create_indexes(mongo_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                          size_t errstr_size);

/* The indexes when asked (collections need no set-up). */
static int mongo_setup(pers_sink *base, pers_dataset *ds, size_t nds, bool create, char *errstr,
                       size_t errstr_size)
{
    mongo_sink *s = (mongo_sink *)base;
    if (create && create_indexes(s, ds, nds, errstr, errstr_size) != 0)
        return CORE_EX_UNAVAILABLE;
    return 0;
}

pers_sink *pers_mongo_new(const struct pers_mongo_conf *conf, char *errstr, size_t errstr_size)
{
    static bool inited;
    if (!inited) {
        mongoc_log_set_handler(mongoc_log_cb, NULL);
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
    const char *w = conf->write_concern;
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
    if (conf->wtimeout_ms > 0)
        mongoc_write_concern_set_wtimeout_int64(s->wc, conf->wtimeout_ms);
    bson_error_t uerr;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(conf->uri, &uerr);
    if (!uri) {
        core_errstr(errstr, errstr_size, "mongodb.uri: %s", uerr.message);
        mongoc_write_concern_destroy(s->wc);
        free(s);
        return NULL;
    }
    size_t at = 0; /* the hosts only: the URI may hold a password */
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
         h && at < sizeof(s->base.addr) - 1; h = h->next)
        at += (size_t)snprintf(s->base.addr + at, sizeof(s->base.addr) - at, "%s%s",
                               at ? "," : "", h->host_and_port);
    if (!at)
        snprintf(s->base.addr, sizeof(s->base.addr), "(mongodb+srv)");
    mongoc_uri_destroy(uri);
    s->base.name = "mongodb";
    s->base.connect = mongo_connect;
    s->base.write = mongo_write;
    s->base.ping = mongo_ping;
    s->base.setup = mongo_setup;
    s->base.free = mongo_free;
    return &s->base;
}

/* mongodb.indexes entries: "dataset:field[+field...][:unique]" (ascending).
 * A document a unique index refuses goes to the DLQ. */
static int create_indexes(mongo_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                          size_t errstr_size)
{
    pers_sink *base = &s->base;
    if (mongo_connect(base, errstr, errstr_size) != PERS_OK)
        return -1;
    for (size_t i = 0; i < s->conf->indexes.n; i++) {
        const char *spec = s->conf->indexes.v[i];
        const char *colon = strchr(spec, ':');
        if (!colon || colon == spec || !colon[1]) {
            core_errstr(errstr, errstr_size,
                        "mongodb.indexes: \"%s\" is not dataset:field[+field...][:unique]",
                        spec);
            return -1;
        }
        char dsname[128], fields[256];
        snprintf(dsname, sizeof(dsname), "%.*s", (int)(colon - spec), spec);
        snprintf(fields, sizeof(fields), "%s", colon + 1);
        bool unique = false;
        char *opt = strchr(fields, ':');
        if (opt) {
            if (strcmp(opt, ":unique") != 0 || opt == fields) {
                core_errstr(errstr, errstr_size,
                            "mongodb.indexes: \"%s\" is not dataset:field[+field...][:unique]",
                            spec);
                return -1;
            }
            *opt = '\0';
            unique = true;
        }
        bool known = false;
        for (size_t d = 0; d < nds; d++)
            known |= !strcmp(ds[d].name, dsname);
        if (!known)
            continue; /* an index of a dataset this instance does not persist */
        bson_t cmd = BSON_INITIALIZER, arr, idx, key;
        char name[300];
        snprintf(name, sizeof(name), "tb_%s%s", fields, unique ? "_unique" : "");
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
        if (unique)
            BSON_APPEND_BOOL(&idx, "unique", true);
        bson_append_document_end(&arr, &idx);
        bson_append_array_end(&cmd, &arr);
        bson_error_t err;
        bool ok = mongoc_client_command_simple(s->client, s->conf->database, &cmd, NULL,
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
