/* core_redis.c — a synchronous Redis connection over hiredis 0.14.1:
 * lazy connect, AUTH/SELECT handshake, reconnection with backoff and
 * jitter, error classification, the handle. Commands and pipelines are in
 * core_redis_pipeline.c, Lua scripts in core_redis_script.c; what they
 * share in core_redis_int.h.
 *
 * Threads: none of its own. A handle is used by one thread at a time; no
 * locks inside. The hiredis context is dropped on the first I/O error or
 * timeout (hiredis contexts are unusable after one). */
#include "core_redis_int.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DEF_HOST "127.0.0.1"
#define DEF_PORT 6379
#define DEF_CONNECT_MS 2000
#define DEF_COMMAND_MS 5000
#define DEF_BACKOFF_BASE_MS 100
#define DEF_BACKOFF_MAX_MS 5000

/* ---- small helpers -------------------------------------------------------- */

/* Fill errstr with "redis <addr>: <msg>", remember the class, return it. */
int redis_fail(core_redis_t *r, core_err_t err, char *errstr, size_t errstr_size,
               const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    core_errstr(errstr, errstr_size, "redis %s: %s", r->addr, msg);
    r->last_err = err;
    return err;
}

void redis_sigpipe_block(sigpipe_guard *g)
{
    sigset_t set, pend;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void redis_sigpipe_unblock(sigpipe_guard *g)
{
    sigset_t set, pend;

    if (!g->was_pending) {
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        sigpending(&pend);
        if (sigismember(&pend, SIGPIPE) == 1) {
            const struct timespec zero = { 0, 0 };
            while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts, rem;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
        ts = rem;
}

/* The first word of an error reply equals word (BUSY, not BUSYKEY). */
bool redis_error_word_is(const redisReply *rep, const char *word)
{
    size_t n = strlen(word);

    return rep && rep->type == REDIS_REPLY_ERROR && rep->str && rep->len >= n &&
           strncmp(rep->str, word, n) == 0 && (rep->len == n || rep->str[n] == ' ');
}

/* Error replies that mean "the server cannot serve now": retry later. */
bool redis_transient_reply(const redisReply *rep, bool *drop)
{
    static const char *const words[] = { "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN",
                                         "OOM", "CLUSTERDOWN", "READONLY" };
    size_t i;

    *drop = false;
    if (!rep || rep->type != REDIS_REPLY_ERROR)
        return false;
    for (i = 0; i < CORE_ARRAY_SIZE(words); i++) {
        if (redis_error_word_is(rep, words[i])) {
            /* READONLY: we talk to a replica (after a failover): reconnect */
            *drop = strcmp(words[i], "READONLY") == 0;
            return true;
        }
    }
    return false;
}

/* Command name of a RESP-formatted command, for messages. */
void redis_cmd_name(const char *cmd, size_t len, char *out, size_t size)
{
    const char *p = cmd, *end = cmd + len, *nl;
    size_t n;

    snprintf(out, size, "command");
    nl = memchr(p, '\n', (size_t)(end - p)); /* after *N\r\n */
    if (!nl)
        return;
    p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p)); /* after $len\r\n */
    if (!nl)
        return;
    p = nl + 1;
    nl = memchr(p, '\r', (size_t)(end - p));
    if (!nl)
        return;
    n = (size_t)(nl - p);
    if (n > 32)
        n = 32;
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] < 0x20 || out[i] > 0x7e)
            out[i] = '?';
}

/* ---- connection ----------------------------------------------------------- */

void redis_group_free(group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        redisFreeCommand(g->cmds[i].cmd);
    free(g->cmds);
    core_redis_replies_free(g->arr, g->n);
    memset(g, 0, sizeof(*g));
}

static void groups_clear(core_redis_t *r)
{
    for (size_t i = 0; i < r->ngroups; i++)
        redis_group_free(&r->groups[i]);
    r->ngroups = 0;
}

/* The connection and, with it, every group sent and not yet received. */
void redis_drop_connection(core_redis_t *r)
{
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    groups_clear(r);
}

/* After a failed hiredis call: classify, count, drop the context. */
int redis_io_failure(core_redis_t *r, const char *what, char *errstr, size_t errstr_size)
{
    redisContext *c = r->c;
    int err = c ? c->err : REDIS_ERR_OTHER;
    const char *es = c && c->errstr[0] ? c->errstr : "unknown error";
    char reason[256];

    if (err == REDIS_ERR_IO && (strstr(es, "temporarily unavailable") ||
                                strstr(es, "timed out") || strstr(es, "would block"))) {
        snprintf(reason, sizeof(reason), "timed out after %d ms", r->command_timeout_ms);
        core_metric_inc(r->m_err_timeout);
    } else if (err == REDIS_ERR_EOF) {
        snprintf(reason, sizeof(reason), "server closed the connection");
        core_metric_inc(r->m_err_io);
    } else if (err == REDIS_ERR_OOM) {
        redis_drop_connection(r);
        return redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "%s: out of memory", what);
    } else {
        snprintf(reason, sizeof(reason), "%s", es);
        core_metric_inc(r->m_err_io);
    }
    redis_drop_connection(r);
    return redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                      "%s: %s (connection dropped)", what, reason);
}

/* Connect and run the handshake in one round trip: AUTH?, SELECT?, PING,
 * SCRIPT LOAD for each script. Longer than most (about 130 lines) for a
 * reason: each reply of the pipelined handshake is read in the order its
 * command was sent, and a refusal names the step that failed. */
int redis_connect_internal(core_redis_t *r, int timeout_ms, char *errstr, size_t errstr_size)
{
    enum { STEP_AUTH, STEP_SELECT, STEP_PING, STEP_SCRIPT };
    redisContext *c;
    redisReply *rep;
    core_redis_script_t *s;
    sigpipe_guard g;
    double t0 = core_mono_s();
    char dbstr[16];
    int steps[4], nsteps = 0, i, rc;

    redis_drop_connection(r);
    if (r->host[0] == '/')
        c = redisConnectUnixWithTimeout(r->host, ms_tv(timeout_ms));
    else
        c = redisConnectWithTimeout(r->host, r->port, ms_tv(timeout_ms));
    if (!c)
        return redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "connect: out of memory");
    if (c->err) {
        core_metric_inc(r->m_err_connect);
        rc = redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "connect: %s",
                        c->errstr[0] ? c->errstr : "failed");
        redisFree(c);
        return rc;
    }
    if (r->host[0] != '/')
        redisEnableKeepAlive(c);
    if (redisSetTimeout(c, ms_tv(r->command_timeout_ms)) != REDIS_OK) {
        rc = redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                        "cannot set the command timeout: %s", c->errstr);
        redisFree(c);
        return rc;
    }

    if (r->password) {
        if (r->user)
            redisAppendCommand(c, "AUTH %s %s", r->user, r->password);
        else
            redisAppendCommand(c, "AUTH %s", r->password);
        steps[nsteps++] = STEP_AUTH;
    }
    if (r->db != 0) {
        snprintf(dbstr, sizeof(dbstr), "%d", r->db);
        redisAppendCommand(c, "SELECT %s", dbstr);
        steps[nsteps++] = STEP_SELECT;
    }
    redisAppendCommand(c, "PING");
    steps[nsteps++] = STEP_PING;
    for (s = r->scripts; s; s = s->next)
        redisAppendCommand(c, "SCRIPT LOAD %s", s->lua);

    r->c = c; /* so io_failure can read and drop it */
    rc = CORE_OK;
    redis_sigpipe_block(&g);
    for (i = 0; i < nsteps && rc == CORE_OK; i++) {
        bool drop;
        void *vp = NULL;

        if (redisGetReply(c, &vp) != REDIS_OK) {
            rc = redis_io_failure(r, "connection handshake", errstr, errstr_size);
            break;
        }
        rep = vp;
        if (redis_transient_reply(rep, &drop)) {
            core_metric_inc(r->m_err_busy);
            rc = redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "server not ready: %.200s",
                            rep->str);
        } else if (rep->type == REDIS_REPLY_ERROR) {
            core_metric_inc(r->m_err_auth);
            if (steps[i] == STEP_AUTH && r->user)
                rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                                "AUTH as user \"%s\" refused: %.200s (check the redis user and "
                                "password)", r->user, rep->str);
            else if (steps[i] == STEP_AUTH)
                rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                                "AUTH refused: %.200s (check the redis password)", rep->str);
            else if (steps[i] == STEP_SELECT)
                rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                                "SELECT %d refused: %.200s (check the redis db)", r->db, rep->str);
            else if (redis_error_word_is(rep, "NOAUTH"))
                rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                                "server requires authentication: %.200s (set the redis password)",
                                rep->str);
            else
                rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                                "server refused PING: %.200s",
                                rep->str);
        }
        freeReplyObject(rep);
    }
    for (s = r->scripts; s && rc == CORE_OK; s = s->next) {
        bool drop;
        void *vp = NULL;

        if (redisGetReply(c, &vp) != REDIS_OK) {
            rc = redis_io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
            break;
        }
        rep = vp;
        if (redis_transient_reply(rep, &drop)) {
            core_metric_inc(r->m_err_busy);
            rc = redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "server not ready: %.200s",
                            rep->str);
        } else if (rep->type == REDIS_REPLY_ERROR && redis_error_word_is(rep, "NOPERM")) {
            /* The ACL of the user forbids the scripts: nothing would work. */
            core_metric_inc(r->m_err_auth);
            rc = redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                            "SCRIPT LOAD as user \"%s\" refused: %.200s (check the "
                            "ACL of the redis user: it needs script|load, evalsha and its keys)",
                            r->user ? r->user : "default", rep->str);
        } else if (rep->type == REDIS_REPLY_ERROR) {
            /* A script Redis refuses is a bug in the script: say so, keep the
             * connection; EVALSHA of it returns this error to the caller. */
            core_log_error("redis: SCRIPT LOAD refused", CLF_S("redis", r->addr),
                           CLF_S("sha", s->sha), CLF_S("error", rep->str));
        } else if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, s->sha) != 0) {
            core_log_warn("redis: SCRIPT LOAD returned an unexpected SHA1",
                          CLF_S("redis", r->addr), CLF_S("sha", s->sha),
                          CLF_S("got", rep->type == REDIS_REPLY_STRING ? rep->str : "?"));
        }
        freeReplyObject(rep);
    }
    redis_sigpipe_unblock(&g);
    if (rc != CORE_OK) {
        redis_drop_connection(r);
        return rc;
    }
    core_metric_observe(r->m_rtt_connect, core_mono_s() - t0);
    if (r->ever_connected) {
        core_metric_inc(r->m_reconnects);
        core_log_info("redis: reconnected", CLF_S("redis", r->addr));
    }
    r->ever_connected = true;
    r->last_err = CORE_OK;
    return CORE_OK;
}

int core_redis_connect(core_redis_t *r, char *errstr, size_t errstr_size)
{
    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return CORE_ERR_INVALID;
    }
    return redis_connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
}

static int64_t backoff_ms(core_redis_t *r, int attempt)
{
    int64_t d = r->backoff_base_ms;
    int i;

    for (i = 1; i < attempt && d < r->backoff_max_ms; i++)
        d *= 2;
    if (d > r->backoff_max_ms)
        d = r->backoff_max_ms;
    /* jitter: uniform in [d/2, d] */
    return d / 2 + (int64_t)(rand_r(&r->seed) % (unsigned int)(d - d / 2 + 1));
}

int core_redis_ensure(core_redis_t *r, int64_t deadline_ms, char *errstr, size_t errstr_size)
{
    char last[1024] = "";
    int64_t start = core_mono_ms();
    int attempts = 0, rc;
    size_t plen;

    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return CORE_ERR_INVALID;
    }
    if (r->c)
        return CORE_OK;
    for (;;) {
        int64_t left = deadline_ms - core_mono_ms();
        int timeout = r->connect_timeout_ms;

        if (left < timeout)
            timeout = left > 10 ? (int)left : 10;
        rc = redis_connect_internal(r, timeout, last, sizeof(last));
        attempts++;
        if (rc == CORE_OK)
            return CORE_OK;
        if (rc != CORE_ERR_TRANSIENT) {
            core_errstr(errstr, errstr_size, "%s", last);
            return rc;
        }
        left = deadline_ms - core_mono_ms();
        if (left <= 0)
            break;
        int64_t d = backoff_ms(r, attempts);
        sleep_ms(d < left ? d : left);
        if (core_mono_ms() >= deadline_ms)
            break;
    }
    /* last is "redis <addr>: reason": keep the reason */
    plen = strlen("redis ") + strlen(r->addr) + 2;
    return redis_fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                      "still not connected after %d attempt(s) in %lld ms: %s", attempts,
                      (long long)(core_mono_ms() - start),
                      strlen(last) > plen ? last + plen : last);
}

bool core_redis_connected(const core_redis_t *r)
{
    return r && r->c;
}

void core_redis_disconnect(core_redis_t *r)
{
    if (r)
        redis_drop_connection(r);
}

core_err_t core_redis_last_error(const core_redis_t *r)
{
    return r ? r->last_err : CORE_ERR_INVALID;
}

/* ---- handle --------------------------------------------------------------- */

static char *dup_opt(const char *s)
{
    return (s && *s) ? strdup(s) : NULL;
}

core_redis_t *core_redis_new(const core_redis_opts *o, char *errstr, size_t errstr_size)
{
    static const char *const l_op[] = { "op", NULL };
    static const char *const l_kind[] = { "kind", NULL };
    core_metric_family_t *f;
    core_metrics_t *m;
    core_redis_t *r;

    if (!o) {
        core_errstr(errstr, errstr_size, "redis: no options");
        return NULL;
    }
    if (o->port < 0 || o->port > 65535) {
        core_errstr(errstr, errstr_size, "redis: port %d out of range 1..65535", o->port);
        return NULL;
    }
    if (o->db < 0) {
        core_errstr(errstr, errstr_size, "redis: db %d is negative", o->db);
        return NULL;
    }
    if (o->connect_timeout_ms < 0 || o->command_timeout_ms < 0 || o->backoff_base_ms < 0 ||
        o->backoff_max_ms < 0) {
        core_errstr(errstr, errstr_size, "redis: timeouts and backoff must not be negative");
        return NULL;
    }
    if (o->user && *o->user && !(o->password && *o->password)) {
        core_errstr(errstr, errstr_size, "redis: user \"%s\" given without a password", o->user);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        core_errstr(errstr, errstr_size, "redis: out of memory");
        return NULL;
    }
    r->host = strdup(o->host && *o->host ? o->host : DEF_HOST);
    r->user = dup_opt(o->user);
    r->password = dup_opt(o->password);
    if (!r->host || (o->user && *o->user && !r->user) ||
        (o->password && *o->password && !r->password)) {
        core_redis_free(r);
        core_errstr(errstr, errstr_size, "redis: out of memory");
        return NULL;
    }
    r->port = o->port ? o->port : DEF_PORT;
    r->db = o->db;
    r->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONNECT_MS;
    r->command_timeout_ms = o->command_timeout_ms ? o->command_timeout_ms : DEF_COMMAND_MS;
    r->backoff_base_ms = o->backoff_base_ms ? o->backoff_base_ms : DEF_BACKOFF_BASE_MS;
    r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : DEF_BACKOFF_MAX_MS;
    if (r->backoff_base_ms > r->backoff_max_ms) {
        core_errstr(errstr, errstr_size, "redis: backoff base %d ms exceeds the maximum %d ms",
                    r->backoff_base_ms, r->backoff_max_ms);
        core_redis_free(r);
        return NULL;
    }
    if (r->host[0] == '/')
        snprintf(r->addr, sizeof(r->addr), "%.300s", r->host);
    else if (strchr(r->host, ':'))
        snprintf(r->addr, sizeof(r->addr), "[%.300s]:%d", r->host, r->port);
    else
        snprintf(r->addr, sizeof(r->addr), "%.300s:%d", r->host, r->port);
    r->seed = (unsigned int)core_mono_ms() ^ (unsigned int)getpid() ^
              (unsigned int)(uintptr_t)r;

    m = o->metrics ? o->metrics : core_metrics_global();
    f = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_redis_roundtrip_seconds",
                            "Redis round trips: one command, one pipeline, one connect with "
                            "its handshake.", l_op, NULL, 0, NULL, 0);
    r->m_rtt_command = core_metrics_series1(f, "command");
    r->m_rtt_pipeline = core_metrics_series1(f, "pipeline");
    r->m_rtt_connect = core_metrics_series1(f, "connect");
    f = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_redis_reconnects_total",
                            "Redis connections made after the first one.", NULL, NULL, 0,
                            NULL, 0);
    r->m_reconnects = core_metrics_series(f, NULL);
    f = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_redis_errors_total",
                            "Redis failures by kind: connect, io, timeout, busy, auth.", l_kind,
                            NULL, 0, NULL, 0);
    r->m_err_connect = core_metrics_series1(f, "connect");
    r->m_err_io = core_metrics_series1(f, "io");
    r->m_err_timeout = core_metrics_series1(f, "timeout");
    r->m_err_busy = core_metrics_series1(f, "busy");
    r->m_err_auth = core_metrics_series1(f, "auth");
    return r;
}

void redis_pending_clear(core_redis_t *r)
{
    size_t i;

    for (i = 0; i < r->npending; i++)
        redisFreeCommand(r->pending[i].cmd);
    r->npending = 0;
}

void core_redis_free(core_redis_t *r)
{
    if (!r)
        return;
    redis_drop_connection(r);
    redis_pending_clear(r);
    free(r->pending);
    free(r->groups);
    while (r->scripts)
        core_redis_script_free(r->scripts);
    free(r->host);
    free(r->user);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r);
}
