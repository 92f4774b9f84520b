/* core_redis_pipeline.c — commands and pipelines of a core_redis handle
 * (core_redis.h): one round trip per command, appended commands sent as one
 * pipeline, groups in flight (send now, receive later), NOSCRIPT re-runs
 * and busy replies. Threads: a handle belongs to one thread at a time. */
#include "core_redis_int.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- commands ------------------------------------------------------------- */

/* Send one formatted command and read its reply. Caller checked r->c. */
redisReply *redis_roundtrip(core_redis_t *r, const char *cmd, size_t len, char *errstr,
                            size_t errstr_size)
{
    char name[40];
    void *vp = NULL;
    redisReply *rep;
    sigpipe_guard g;
    double t0 = core_mono_s();
    bool drop;

    redis_cmd_name(cmd, len, name, sizeof(name));
    if (redisAppendFormattedCommand(r->c, cmd, len) != REDIS_OK) {
        redis_io_failure(r, name, errstr, errstr_size);
        return NULL;
    }
    redis_sigpipe_block(&g);
    if (redisGetReply(r->c, &vp) != REDIS_OK) {
        redis_io_failure(r, name, errstr, errstr_size);
        redis_sigpipe_unblock(&g);
        return NULL;
    }
    redis_sigpipe_unblock(&g);
    core_metric_observe(r->m_rtt_command, core_mono_s() - t0);
    rep = vp;
    if (redis_transient_reply(rep, &drop)) {
        core_metric_inc(r->m_err_busy);
        redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "%s: server busy: %.200s%s", name,
                   rep->str, drop ? " (connection dropped)" : "");
        freeReplyObject(rep);
        if (drop)
            redis_drop_connection(r);
        return NULL;
    }
    r->last_err = CORE_OK;
    return rep;
}

static int drain(core_redis_t *r, char *errstr, size_t errstr_size);

/* Checks shared by every single-command entry point. Replies of pipelines
 * in flight are read first (kept for core_redis_pipeline_recv), so the
 * command's reply is the next on the connection. */
int redis_command_ready(core_redis_t *r, char *errstr, size_t errstr_size)
{
    if (r->npending > 0)
        return redis_fail(r, CORE_ERR_STATE, errstr, errstr_size,
                          "%zu pipelined command(s) appended and not executed: call "
                          "core_redis_pipeline_exec first", r->npending);
    if (r->ngroups > 0) {
        int rc = drain(r, errstr, errstr_size);
        if (rc != CORE_OK)
            return rc;
    }
    if (!r->c)
        return redis_connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
    return CORE_OK;
}

redisReply *core_redis_command(core_redis_t *r, char *errstr, size_t errstr_size,
                               const char *fmt, ...)
{
    redisReply *rep;
    va_list ap;
    char *cmd = NULL;
    int len;

    if (!r || !fmt) {
        core_errstr(errstr, errstr_size, "redis: no handle or no command");
        if (r)
            r->last_err = CORE_ERR_INVALID;
        return NULL;
    }
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len <= 0 || !cmd) {
        /* hiredis: -1 out of memory, -2 bad format string */
        redis_fail(r, len == -1 ? CORE_ERR_NOMEM : CORE_ERR_INVALID, errstr, errstr_size,
                   "cannot format command \"%.60s\"", fmt);
        return NULL;
    }
    if (redis_command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = redis_roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
    redisFreeCommand(cmd);
    return rep;
}

static bool argv_ok(int argc, const char **argv)
{
    int i;

    if (argc < 1 || !argv)
        return false;
    for (i = 0; i < argc; i++)
        if (!argv[i])
            return false;
    return true;
}

redisReply *core_redis_command_argv(core_redis_t *r, int argc, const char **argv,
                                    const size_t *argvlen, char *errstr, size_t errstr_size)
{
    redisReply *rep;
    char *cmd = NULL;
    int len;

    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return NULL;
    }
    if (!argv_ok(argc, argv)) {
        redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size, "command needs argc >= 1 and non-NULL "
                   "arguments (argc %d)", argc);
        return NULL;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len <= 0 || !cmd) {
        redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "cannot format command: out of memory");
        return NULL;
    }
    if (redis_command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = redis_roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
    redisFreeCommand(cmd);
    return rep;
}

/* ---- pipelining ----------------------------------------------------------- */

int redis_pending_push(core_redis_t *r, char *cmd, size_t len, core_redis_script_t *s)
{
    if (r->npending == r->cappending) {
        size_t cap = r->cappending ? r->cappending * 2 : 64;
        pending_t *np = realloc(r->pending, cap * sizeof(*np));

        if (!np) {
            redisFreeCommand(cmd);
            return CORE_ERR_NOMEM;
        }
        r->pending = np;
        r->cappending = cap;
    }
    r->pending[r->npending].cmd = cmd;
    r->pending[r->npending].len = len;
    r->pending[r->npending].script = s;
    r->npending++;
    return CORE_OK;
}

int core_redis_append_argv(core_redis_t *r, int argc, const char **argv,
                           const size_t *argvlen)
{
    char *cmd = NULL;
    int len;

    if (!r || !argv_ok(argc, argv))
        return CORE_ERR_INVALID;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len <= 0 || !cmd)
        return CORE_ERR_NOMEM;
    return redis_pending_push(r, cmd, (size_t)len, NULL);
}

size_t core_redis_pending(const core_redis_t *r)
{
    return r ? r->npending : 0;
}

void core_redis_replies_free(redisReply **replies, size_t n)
{
    size_t i;

    if (!replies)
        return;
    for (i = 0; i < n; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    free(replies);
}

/* Re-run the EVALSHA commands of cmds[0..n) that got NOSCRIPT, after
 * loading their scripts, in their original order. The connection must have
 * no reply outstanding. Caller holds the SIGPIPE guard. On failure the
 * connection is dropped (and every group with it). */
static int rerun_noscript(core_redis_t *r, const pending_t *cmds, size_t n, redisReply **arr,
                          char *errstr, size_t errstr_size)
{
    core_redis_script_t *s;
    size_t i, nload = 0, nrerun = 0;
    void *vp;

    for (i = 0; i < n; i++) {
        if (!cmds[i].script || !redis_error_word_is(arr[i], "NOSCRIPT"))
            continue;
        s = cmds[i].script;
        if (!s->reload_mark) {
            s->reload_mark = true;
            if (redisAppendCommand(r->c, "SCRIPT LOAD %s", s->lua) != REDIS_OK)
                return redis_io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
            nload++;
        }
        nrerun++;
    }
    if (nrerun == 0)
        return CORE_OK;
    for (i = 0; i < n; i++) {
        if (cmds[i].script && redis_error_word_is(arr[i], "NOSCRIPT") &&
            redisAppendFormattedCommand(r->c, cmds[i].cmd, cmds[i].len) != REDIS_OK)
            return redis_io_failure(r, "EVALSHA", errstr, errstr_size);
    }
    for (s = r->scripts; s; s = s->next)
        s->reload_mark = false;
    for (i = 0; i < nload; i++) {
        redisReply *rep;

        vp = NULL;
        if (redisGetReply(r->c, &vp) != REDIS_OK)
            return redis_io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
        rep = vp;
        if (rep->type == REDIS_REPLY_ERROR)
            core_log_error("redis: SCRIPT LOAD refused", CLF_S("redis", r->addr),
                           CLF_S("error", rep->str));
        freeReplyObject(rep);
    }
    for (i = 0; i < n; i++) {
        if (!cmds[i].script || !redis_error_word_is(arr[i], "NOSCRIPT"))
            continue;
        vp = NULL;
        if (redisGetReply(r->c, &vp) != REDIS_OK)
            return redis_io_failure(r, "EVALSHA", errstr, errstr_size);
        freeReplyObject(arr[i]);
        arr[i] = vp;
    }
    return CORE_OK;
}

/* A "busy" reply among arr[0..n): CORE_ERR_TRANSIENT (the connection is
 * dropped after READONLY, or when other groups are in flight: their
 * replies would be as doubtful). */
static int busy_check(core_redis_t *r, redisReply **arr, size_t n, char *errstr,
                      size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        bool drop;

        if (redis_transient_reply(arr[i], &drop)) {
            core_metric_inc(r->m_err_busy);
            redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                       "pipeline reply %zu of %zu: server busy: %.200s%s", i + 1, n, arr[i]->str,
                       drop ? " (connection dropped)" : "");
            if (drop)
                redis_drop_connection(r);
            return CORE_ERR_TRANSIENT;
        }
    }
    return CORE_OK;
}

/* Read the replies of group g (the oldest unread one) off the socket. On
 * failure the connection and every group are dropped. Caller holds the
 * SIGPIPE guard. */
static int group_read(core_redis_t *r, group_t *g, char *errstr, size_t errstr_size)
{
    if (!(g->arr = calloc(g->n, sizeof(*g->arr)))) {
        redis_drop_connection(r);
        return redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline of %zu: out of memory",
                          g->n);
    }
    for (size_t i = 0; i < g->n; i++) {
        void *vp = NULL;

        if (redisGetReply(r->c, &vp) != REDIS_OK) {
            char what[80];

            snprintf(what, sizeof(what), "pipeline reply %zu of %zu", i + 1, g->n);
            return redis_io_failure(r, what, errstr, errstr_size);
        }
        g->arr[i] = vp;
    }
    return CORE_OK;
}

/* Read every group still on the socket, so the connection has no reply
 * outstanding. The replies are kept for core_redis_pipeline_recv. */
static int drain(core_redis_t *r, char *errstr, size_t errstr_size)
{
    sigpipe_guard g;
    int rc = CORE_OK;

    redis_sigpipe_block(&g);
    for (size_t i = 0; i < r->ngroups && rc == CORE_OK; i++)
        if (!r->groups[i].arr)
            rc = group_read(r, &r->groups[i], errstr, errstr_size);
    redis_sigpipe_unblock(&g);
    return rc;
}

int core_redis_pipeline_send(core_redis_t *r, char *errstr, size_t errstr_size)
{
    sigpipe_guard sg;
    group_t *g;
    int done = 0, rc;

    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return CORE_ERR_INVALID;
    }
    if (r->npending == 0) {
        r->last_err = CORE_OK;
        return CORE_OK;
    }
    if (!r->c && (rc = redis_connect_internal(r, r->connect_timeout_ms,
                                              errstr, errstr_size)) != CORE_OK) {
        redis_pending_clear(r);
        return rc;
    }
    if (r->ngroups == r->capgroups) {
        size_t cap = r->capgroups ? r->capgroups * 2 : 8;
        group_t *ng = realloc(r->groups, cap * sizeof(*ng));

        if (!ng) {
            redis_pending_clear(r);
            return redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline: out of memory");
        }
        r->groups = ng;
        r->capgroups = cap;
    }
    for (size_t i = 0; i < r->npending; i++) {
        if (redisAppendFormattedCommand(r->c, r->pending[i].cmd, r->pending[i].len) != REDIS_OK) {
            redis_pending_clear(r);
            return redis_io_failure(r, "pipeline", errstr, errstr_size);
        }
    }
    /* the commands move to the group (kept for a NOSCRIPT re-run) */
    g = &r->groups[r->ngroups++];
    memset(g, 0, sizeof(*g));
    g->cmds = r->pending;
    g->n = r->npending;
    g->cap = r->cappending;
    g->t_sent = core_mono_s();
    r->pending = NULL;
    r->npending = r->cappending = 0;
    redis_sigpipe_block(&sg);
    while (!done) {
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            rc = redis_io_failure(r, "pipeline send", errstr, errstr_size);
            redis_sigpipe_unblock(&sg);
            return rc;
        }
    }
    redis_sigpipe_unblock(&sg);
    r->last_err = CORE_OK;
    return CORE_OK;
}

size_t core_redis_inflight(const core_redis_t *r)
{
    return r ? r->ngroups : 0;
}

/* The replies of a pipeline call start empty; a NULL handle is refused. */
static int replies_init(core_redis_t *r, redisReply ***replies, size_t *n, char *errstr,
                        size_t errstr_size)
{
    if (replies)
        *replies = NULL;
    if (n)
        *n = 0;
    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

int core_redis_pipeline_recv(core_redis_t *r, redisReply ***replies, size_t *n, char *errstr,
                             size_t errstr_size)
{
    sigpipe_guard sg;
    group_t g;
    bool noscript = false;
    int rc = CORE_OK;

    if (replies_init(r, replies, n, errstr, errstr_size) != CORE_OK)
        return CORE_ERR_INVALID;
    if (r->ngroups == 0)
        return redis_fail(r, CORE_ERR_STATE, errstr, errstr_size, "no pipeline in flight");
    if (!r->groups[0].arr && !r->c) /* cannot happen: a drop clears the groups */
        return redis_fail(r, CORE_ERR_STATE, errstr, errstr_size,
                          "pipeline lost with the connection");
    redis_sigpipe_block(&sg);
    if (!r->groups[0].arr)
        rc = group_read(r, &r->groups[0], errstr, errstr_size);
    for (size_t i = 0; rc == CORE_OK && i < r->groups[0].n && !noscript; i++)
        noscript = r->groups[0].cmds[i].script &&
            redis_error_word_is(r->groups[0].arr[i], "NOSCRIPT");
    if (rc == CORE_OK && noscript) {
        /* the re-run goes after the groups sent since: read theirs first */
        redis_sigpipe_unblock(&sg);
        rc = drain(r, errstr, errstr_size);
        redis_sigpipe_block(&sg);
        if (rc == CORE_OK)
            rc = rerun_noscript(r, r->groups[0].cmds, r->groups[0].n, r->groups[0].arr, errstr,
                                errstr_size);
    }
    redis_sigpipe_unblock(&sg);
    if (rc != CORE_OK)
        return rc; /* the connection and every group are gone */
    g = r->groups[0];
    memmove(&r->groups[0], &r->groups[1], (r->ngroups - 1) * sizeof(*r->groups));
    r->ngroups--;
    core_metric_observe(r->m_rtt_pipeline, core_mono_s() - g.t_sent);
    if ((rc = busy_check(r, g.arr, g.n, errstr, errstr_size)) != CORE_OK) {
        if (r->ngroups > 0)
            redis_drop_connection(r); /* the rest is to be sent again too */
        redis_group_free(&g);
        return rc;
    }
    r->last_err = CORE_OK;
    if (replies && n) {
        *replies = g.arr;
        *n = g.n;
        g.arr = NULL;
    }
    redis_group_free(&g);
    return CORE_OK;
}

int core_redis_pipeline_exec(core_redis_t *r, redisReply ***replies, size_t *n, char *errstr,
                             size_t errstr_size)
{
    redisReply **arr = NULL;
    sigpipe_guard g;
    double t0;
    size_t i, got = 0, count;
    int rc = CORE_OK;

    if (replies_init(r, replies, n, errstr, errstr_size) != CORE_OK)
        return CORE_ERR_INVALID;
    count = r->npending;
    if (count == 0) {
        r->last_err = CORE_OK;
        return CORE_OK;
    }
    if (r->ngroups > 0 && (rc = drain(r, errstr, errstr_size)) != CORE_OK)
        goto out;
    if (!r->c) {
        rc = redis_connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
        if (rc != CORE_OK)
            goto out;
    }
    arr = calloc(count, sizeof(*arr));
    if (!arr) {
        rc = redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline of %zu: out of memory",
                        count);
        goto out;
    }
    t0 = core_mono_s();
    for (i = 0; i < count; i++) {
        if (redisAppendFormattedCommand(r->c, r->pending[i].cmd, r->pending[i].len) != REDIS_OK) {
            rc = redis_io_failure(r, "pipeline", errstr, errstr_size);
            goto out;
        }
    }
    redis_sigpipe_block(&g);
    for (got = 0; got < count; got++) {
        void *vp = NULL;

        if (redisGetReply(r->c, &vp) != REDIS_OK) {
            char what[64];

            snprintf(what, sizeof(what), "pipeline reply %zu of %zu", got + 1, count);
            rc = redis_io_failure(r, what, errstr, errstr_size);
            break;
        }
        arr[got] = vp;
    }
    if (rc == CORE_OK)
        rc = rerun_noscript(r, r->pending, count, arr, errstr, errstr_size);
    redis_sigpipe_unblock(&g);
    if (rc != CORE_OK)
        goto out;
    core_metric_observe(r->m_rtt_pipeline, core_mono_s() - t0);
    if ((rc = busy_check(r, arr, count, errstr, errstr_size)) != CORE_OK)
        goto out;
    r->last_err = CORE_OK;
    if (replies && n) {
        *replies = arr;
        *n = count;
        arr = NULL;
    }

out:
    core_redis_replies_free(arr, count);
    redis_pending_clear(r);
    return rc;
}
