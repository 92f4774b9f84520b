/* backup.c — the Redis copy of the records svc-persister holds and has not
 * written yet (seed 004: a Redis-backed buffer). One hash per record at
 * msg:buffer:<instance.id>:<uuid> (topic, partition, offset, key, value),
 * queued as the record is prepared, sent in one round trip before the
 * engine waits or hands a batch over, deleted once its batch is accounted
 * for. On the next start of the same instance.id the copies are read back
 * and written before anything is consumed. A failing Redis never stops the
 * persister: the buffer is then in memory only (and Kafka still holds every
 * record whose offset is not committed). Main thread only. */
#include "persister.h"

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_redis.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define K(name, type, def, flags, field, help, lo, hi, ch) \
    { name, type, def, flags, offsetof(struct pers_backup_conf, field), help, lo, hi, ch }

const core_config_key pers_backup_keys[] = {
    K("buffer.backup", CORE_CFG_BOOL, "false", 0, enabled,
      "Mirror the buffer in Redis (msg:buffer:<instance>:<uuid>) and restore it on start", 0, 0,
      NULL),
    K("redis.host", CORE_CFG_STR, "127.0.0.1", 0, host, "Redis of the buffer backup", 0, 0,
      NULL),
    K("redis.port", CORE_CFG_INT, "6379", 0, port, "Redis port", 1, 65535, NULL),
    K("redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, password,
      "Redis password (redis.password_file)", 0, 0, NULL),
    K("redis.db", CORE_CFG_INT, "0", 0, db, "Redis database number", 0, 15, NULL),
    CORE_CFG_END
};

struct pers_backup {
    core_redis_t *redis;
    char *inst;
    size_t queued;       /* commands appended, not sent */
    bool ok;             /* the last round trip worked */
    core_metric_t *errors;
};

pers_backup_t *pers_backup_new(const struct pers_backup_conf *conf, const char *instance_id,
                               char *errstr, size_t errstr_size)
{
    pers_backup_t *b = calloc(1, sizeof(*b));
    core_redis_opts ro = { .host = conf->host, .port = (int)conf->port,
                           .password = conf->password, .db = (int)conf->db };

    if (!b || !(b->inst = strdup(instance_id))) {
        free(b);
        core_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    b->errors = core_metrics_series(
        core_metrics_family(core_metrics_global(), CORE_METRIC_COUNTER,
                            "tributary_persister_backup_errors_total",
                            "Redis buffer backup failures (memory only meanwhile)", NULL, NULL, 0,
                            NULL, 0),
        NULL);
    if (!(b->redis = core_redis_new(&ro, errstr, errstr_size))) {
        pers_backup_free(b);
        return NULL;
    }
    b->ok = true;
    return b;
}

void pers_backup_free(pers_backup_t *b)
{
    if (!b)
        return;
    core_redis_free(b->redis);
    free(b->inst);
    free(b);
}

static void backup_error(pers_backup_t *b, const char *what, const char *err)
{
    core_metric_inc(b->errors);
    if (b->ok)
        core_log_warn("redis buffer backup failing: keeping the buffer in memory only",
                      CLF_S("op", what), CLF_S("error", err));
    b->ok = false;
}

void pers_backup_add(pers_backup_t *b, pers_record *r)
{
    uuid_t u;
    char us[40], key[300], part[16], off[24];

    uuid_generate(u);
    uuid_unparse_lower(u, us);
    snprintf(key, sizeof(key), "msg:buffer:%s:%s", b->inst, us);
    free(r->backup_key);
    if (!(r->backup_key = strdup(key)))
        return; /* in memory only: Kafka still has it */
    snprintf(part, sizeof(part), "%d", (int)r->partition);
    snprintf(off, sizeof(off), "%lld", (long long)r->offset);
    const char *argv[] = { "HSET", key, "topic", r->topic, "partition", part, "offset", off,
                           "key", r->kkey, "value", r->value };
    size_t lens[] = { 4, strlen(key), 5, strlen(r->topic), 9, strlen(part), 6, strlen(off),
                      3, r->kkeylen, 5, r->vallen };
    core_redis_append_argv(b->redis, 12, argv, lens);
    b->queued++;
}

void pers_backup_forget(pers_backup_t *b, pers_record *r)
{
    if (!r->backup_key)
        return;
    const char *argv[] = { "DEL", r->backup_key };
    core_redis_append_argv(b->redis, 2, argv, NULL);
    b->queued++;
}

void pers_backup_send(pers_backup_t *b)
{
    char err[256];
    redisReply **rep = NULL;
    size_t nrep = 0;

    if (!b->queued)
        return;
    b->queued = 0;
    if (core_redis_pipeline_exec(b->redis, &rep, &nrep, err, sizeof(err)) != CORE_OK) {
        backup_error(b, "mirror", err);
        return;
    }
    core_redis_replies_free(rep, nrep);
    if (!b->ok)
        core_log_info("redis buffer backup working again");
    b->ok = true;
}

/* ---- restore ---------------------------------------------------------------- */

typedef struct restore {
    pers_backup_t *b;
    pers_sink *db;
    pers_dataset *ds;
    size_t nds;
    core_avro_decoder_t *dec;
    pers_record *recs;
    pers_record **ptrs;
    size_t n, cap;
    const core_backoff *bo;
} restore;

static pers_dataset *ds_by_topic(restore *rs, const char *topic)
{
    for (size_t i = 0; i < rs->nds; i++)
        if (!strcmp(rs->ds[i].topic_valid, topic))
            return &rs->ds[i];
    return NULL;
}

/* Write the restored records held (retrying until the database takes them
 * or the service stops), then forget their copies. @returns false when
 * stopping. */
static bool restore_write(restore *rs)
{
    char err[512];
    if (rs->n == 0)
        return true;
    for (size_t i = 0; i < rs->n; i++)
        rs->ptrs[i] = &rs->recs[i];
    for (int attempt = 1;; attempt++) {
        if (pers_write_all(rs->db, rs->ds, rs->nds, rs->ptrs, rs->n, err, sizeof(err)) ==
            PERS_OK)
            break;
        core_log_warn("writing the restored buffer failed: retrying", CLF_S("error", err),
                      CLF_I("attempt", attempt));
        if (core_lifecycle_wait(core_backoff_delay_ms(rs->bo, attempt)))
            return false;
    }
    for (size_t i = 0; i < rs->n; i++) {
        pers_backup_forget(rs->b, &rs->recs[i]);
        pers_record_clear(&rs->recs[i]);
    }
    pers_backup_send(rs->b);
    rs->n = 0;
    return true;
}

/* Read one copy into the records held. @returns false when the key is not
 * a record of a configured dataset (it stays in Redis). */
static bool restore_one(restore *rs, const char *k, size_t *skipped)
{
    char err[256];
    redisReply *h = core_redis_command(rs->b->redis, err, sizeof(err), "HGETALL %s", k);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        if (h)
            freeReplyObject(h);
        return false;
    }
    const char *topic = NULL, *kk = "", *vv = "";
    size_t kl = 0, vl = 0;
    long long part = 0, off = 0;
    for (size_t j = 0; j + 1 < h->elements; j += 2) {
        const char *f = h->element[j]->str;
        redisReply *v = h->element[j + 1];
        if (!strcmp(f, "topic"))
            topic = v->str;
        else if (!strcmp(f, "partition"))
            part = strtoll(v->str, NULL, 10);
        else if (!strcmp(f, "offset"))
            off = strtoll(v->str, NULL, 10);
        else if (!strcmp(f, "key"))
            kk = v->str, kl = (size_t)v->len;
        else if (!strcmp(f, "value"))
            vv = v->str, vl = (size_t)v->len;
    }
    pers_dataset *ds = topic ? ds_by_topic(rs, topic) : NULL;
    bool ok = false;
    if (!ds) {
        if ((*skipped)++ == 0)
            core_log_warn("backed-up record of a topic this instance does not consume: left "
                          "in redis",
                          CLF_S("key", k), CLF_S("topic", topic ? topic : "(none)"));
    } else {
        pers_record *r = &rs->recs[rs->n];
        if (pers_record_decode(r, ds, rs->dec, topic, (int32_t)part, off, kk, kl, vv, vl) == 0) {
            if ((r->backup_key = strdup(k))) {
                rs->n++;
                ok = true;
            } else {
                pers_record_clear(r);
            }
        }
    }
    freeReplyObject(h);
    return ok;
}

bool pers_backup_restore(pers_backup_t *b, pers_sink *db, pers_dataset *ds, size_t nds,
                         const core_avro_catalog_t *cat, size_t batch_size,
                         const core_backoff *bo)
{
    char pattern[300], err[256], cursor[32] = "0";
    size_t restored = 0, skipped = 0;
    bool go = true;
    restore rs = { b, db, ds, nds, NULL, NULL, NULL, 0, batch_size, bo };

    rs.dec = core_avro_decoder_new(cat, err, sizeof(err));
    rs.recs = calloc(batch_size, sizeof(*rs.recs));
    rs.ptrs = calloc(batch_size, sizeof(*rs.ptrs));
    if (!rs.recs || !rs.ptrs || !rs.dec) {
        backup_error(b, "restore", "out of memory");
        goto out;
    }
    snprintf(pattern, sizeof(pattern), "msg:buffer:%s:*", b->inst);
    do {
        redisReply *rep = core_redis_command(b->redis, err, sizeof(err),
                                             "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            backup_error(b, "restore", rep ? "unexpected SCAN reply" : err);
            if (rep)
                freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; go && i < keys->elements; i++) {
            restored += restore_one(&rs, keys->element[i]->str, &skipped);
            if (rs.n >= rs.cap)
                go = restore_write(&rs);
        }
        freeReplyObject(rep);
    } while (go && strcmp(cursor, "0") != 0);
    if (go && (go = restore_write(&rs)) && (restored || skipped))
        core_log_info("buffer restored from redis and written", CLF_I("records", restored),
                      CLF_I("left_in_redis", skipped));
out:
    for (size_t i = 0; rs.recs && i < rs.n; i++)
        pers_record_clear(&rs.recs[i]);
    free(rs.recs);
    free(rs.ptrs);
    core_avro_decoder_free(rs.dec);
    return go || !core_lifecycle_stopping();
}
