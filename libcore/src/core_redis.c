/* core_redis.c — a synchronous Redis connection over hiredis 0.14.1:
 * lazy connect, AUTH/SELECT handshake, reconnection with backoff and
 * jitter, pipelines, cached Lua scripts, error classification.
 *
 * Threads: none of its own. A handle is used by one thread at a time; no
 * locks inside. The hiredis context is dropped on the first I/O error or
 * timeout (hiredis contexts are unusable after one). */
#include "tributary/core_redis.h"
#include "tributary/core_log.h"

#include <openssl/evp.h>

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

typedef struct pending {
    char *cmd;                     /* RESP text (redisFormatCommandArgv) */
    size_t len;
    core_redis_script_t *script;   /* EVALSHA of this script, or NULL */
} pending_t;

/* A pipeline sent by core_redis_pipeline_send() and not yet received: its
 * commands (kept for the NOSCRIPT re-run) and, once read off the socket
 * ahead of time (drain), its replies. Groups are kept in the order sent,
 * which is the order of their replies on the connection. */
typedef struct group {
    pending_t *cmds;
    size_t n, cap;
    redisReply **arr;              /* n replies once read; NULL before */
    double t_sent;
} group_t;

struct core_redis_script {
    core_redis_t *r;
    char *lua;
    char sha[41];
    bool reload_mark;              /* pipeline_exec: needs SCRIPT LOAD */
    core_redis_script_t *prev, *next;
};

struct core_redis {
    char *host, *user, *password;
    int port, db;
    int connect_timeout_ms, command_timeout_ms;
    int backoff_base_ms, backoff_max_ms;
    char addr[320];                /* "host:port" or the socket path, for messages */
    redisContext *c;               /* NULL when not connected */
    bool ever_connected;
    core_err_t last_err;
    pending_t *pending;
    size_t npending, cappending;
    group_t *groups;               /* sent, not yet received; oldest first */
    size_t ngroups, capgroups;
    core_redis_script_t *scripts;
    unsigned int seed;             /* jitter */
    core_metric_t *m_rtt_command, *m_rtt_pipeline, *m_rtt_connect;
    core_metric_t *m_reconnects;
    core_metric_t *m_err_connect, *m_err_io, *m_err_timeout, *m_err_busy, *m_err_auth;
};

/* ---- small helpers -------------------------------------------------------- */

/* Fill errstr with "redis <addr>: <msg>", remember the class, return it. */
static int fail(core_redis_t *r, core_err_t err, char *errstr, size_t errstr_size,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(core_redis_t *r, core_err_t err, char *errstr, size_t errstr_size,
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

/* Block SIGPIPE in this thread around socket writes: a write to a
 * connection the server closed then fails with EPIPE instead of killing the
 * process. A SIGPIPE raised meanwhile is consumed, unless one was already
 * pending before. */
typedef struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g)
{
    sigset_t set, pend;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(sigpipe_guard *g)
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
static bool error_word_is(const redisReply *rep, const char *word)
{
    size_t n = strlen(word);

    return rep && rep->type == REDIS_REPLY_ERROR && rep->str && rep->len >= n &&
           strncmp(rep->str, word, n) == 0 && (rep->len == n || rep->str[n] == ' ');
}

/* Error replies that mean "the server cannot serve now": retry later. */
static bool transient_reply(const redisReply *rep, bool *drop)
{
    static const char *const words[] = { "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN",
                                         "OOM", "CLUSTERDOWN", "READONLY" };
    size_t i;

    *drop = false;
    if (!rep || rep->type != REDIS_REPLY_ERROR)
        return false;
    for (i = 0; i < CORE_ARRAY_SIZE(words); i++) {
        if (error_word_is(rep, words[i])) {
            /* READONLY: we talk to a replica (after a failover): reconnect */
            *drop = strcmp(words[i], "READONLY") == 0;
            return true;
        }
    }
    return false;
}

/* Command name of a RESP-formatted command, for messages. */
static void cmd_name(const char *cmd, size_t len, char *out, size_t size)
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

static void group_free(group_t *g)
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
        group_free(&r->groups[i]);
    r->ngroups = 0;
}

/* The connection and, with it, every group sent and not yet received. */
static void drop_connection(core_redis_t *r)
{
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    groups_clear(r);
}

/* After a failed hiredis call: classify, count, drop the context. */
static int io_failure(core_redis_t *r, const char *what, char *errstr, size_t errstr_size)
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
        drop_connection(r);
        return fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "%s: out of memory", what);
    } else {
        snprintf(reason, sizeof(reason), "%s", es);
        core_metric_inc(r->m_err_io);
    }
    drop_connection(r);
    return fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "%s: %s (connection dropped)", what,
                reason);
}

/* Connect and run the handshake in one round trip: AUTH?, SELECT?, PING,
 * SCRIPT LOAD for each script. */
static int connect_internal(core_redis_t *r, int timeout_ms, char *errstr, size_t errstr_size)
{
    enum { STEP_AUTH, STEP_SELECT, STEP_PING, STEP_SCRIPT };
    redisContext *c;
    redisReply *rep;
    core_redis_script_t *s;
    sigpipe_guard g;
    double t0 = core_mono_s();
    char dbstr[16];
    int steps[4], nsteps = 0, i, rc;

    drop_connection(r);
    if (r->host[0] == '/')
        c = redisConnectUnixWithTimeout(r->host, ms_tv(timeout_ms));
    else
        c = redisConnectWithTimeout(r->host, r->port, ms_tv(timeout_ms));
    if (!c)
        return fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "connect: out of memory");
    if (c->err) {
        core_metric_inc(r->m_err_connect);
        rc = fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "connect: %s",
                  c->errstr[0] ? c->errstr : "failed");
        redisFree(c);
        return rc;
    }
    if (r->host[0] != '/')
        redisEnableKeepAlive(c);
    if (redisSetTimeout(c, ms_tv(r->command_timeout_ms)) != REDIS_OK) {
        rc = fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "cannot set the command timeout: %s",
                  c->errstr);
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
    sigpipe_block(&g);
    for (i = 0; i < nsteps && rc == CORE_OK; i++) {
        bool drop;
        void *vp = NULL;

        if (redisGetReply(c, &vp) != REDIS_OK) {
            rc = io_failure(r, "connection handshake", errstr, errstr_size);
            break;
        }
        rep = vp;
        if (transient_reply(rep, &drop)) {
            core_metric_inc(r->m_err_busy);
            rc = fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "server not ready: %.200s",
                      rep->str);
        } else if (rep->type == REDIS_REPLY_ERROR) {
            core_metric_inc(r->m_err_auth);
            if (steps[i] == STEP_AUTH && r->user)
                rc = fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                          "AUTH as user \"%s\" refused: %.200s (check the redis user and "
                          "password)", r->user, rep->str);
            else if (steps[i] == STEP_AUTH)
                rc = fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                          "AUTH refused: %.200s (check the redis password)", rep->str);
            else if (steps[i] == STEP_SELECT)
                rc = fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                          "SELECT %d refused: %.200s (check the redis db)", r->db, rep->str);
            else if (error_word_is(rep, "NOAUTH"))
                rc = fail(r, CORE_ERR_INVALID, errstr, errstr_size,
                          "server requires authentication: %.200s (set the redis password)",
                          rep->str);
            else
                rc = fail(r, CORE_ERR_INVALID, errstr, errstr_size, "server refused PING: %.200s",
                          rep->str);
        }
        freeReplyObject(rep);
    }
    for (s = r->scripts; s && rc == CORE_OK; s = s->next) {
        bool drop;
        void *vp = NULL;

        if (redisGetReply(c, &vp) != REDIS_OK) {
            rc = io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
            break;
        }
        rep = vp;
        if (transient_reply(rep, &drop)) {
            core_metric_inc(r->m_err_busy);
            rc = fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "server not ready: %.200s",
                      rep->str);
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
    sigpipe_unblock(&g);
    if (rc != CORE_OK) {
        drop_connection(r);
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
    return connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
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
        rc = connect_internal(r, timeout, last, sizeof(last));
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
    return fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                "still not connected after %d attempt(s) in %lld ms: %s", attempts,
                (long long)(core_mono_ms() - start), strlen(last) > plen ? last + plen : last);
}

bool core_redis_connected(const core_redis_t *r)
{
    return r && r->c;
}

void core_redis_disconnect(core_redis_t *r)
{
    if (r)
        drop_connection(r);
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

static void pending_clear(core_redis_t *r)
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
    drop_connection(r);
    pending_clear(r);
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

/* ---- commands ------------------------------------------------------------- */

/* Send one formatted command and read its reply. Caller checked r->c. */
static redisReply *roundtrip(core_redis_t *r, const char *cmd, size_t len, char *errstr,
                             size_t errstr_size)
{
    char name[40];
    void *vp = NULL;
    redisReply *rep;
    sigpipe_guard g;
    double t0 = core_mono_s();
    bool drop;

    cmd_name(cmd, len, name, sizeof(name));
    if (redisAppendFormattedCommand(r->c, cmd, len) != REDIS_OK) {
        io_failure(r, name, errstr, errstr_size);
        return NULL;
    }
    sigpipe_block(&g);
    if (redisGetReply(r->c, &vp) != REDIS_OK) {
        io_failure(r, name, errstr, errstr_size);
        sigpipe_unblock(&g);
        return NULL;
    }
    sigpipe_unblock(&g);
    core_metric_observe(r->m_rtt_command, core_mono_s() - t0);
    rep = vp;
    if (transient_reply(rep, &drop)) {
        core_metric_inc(r->m_err_busy);
        fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size, "%s: server busy: %.200s%s", name,
             rep->str, drop ? " (connection dropped)" : "");
        freeReplyObject(rep);
        if (drop)
            drop_connection(r);
        return NULL;
    }
    r->last_err = CORE_OK;
    return rep;
}

static int drain(core_redis_t *r, char *errstr, size_t errstr_size);

/* Checks shared by every single-command entry point. Replies of pipelines
 * in flight are read first (kept for core_redis_pipeline_recv), so the
 * command's reply is the next on the connection. */
static int command_ready(core_redis_t *r, char *errstr, size_t errstr_size)
{
    if (r->npending > 0)
        return fail(r, CORE_ERR_STATE, errstr, errstr_size,
                    "%zu pipelined command(s) appended and not executed: call "
                    "core_redis_pipeline_exec first", r->npending);
    if (r->ngroups > 0) {
        int rc = drain(r, errstr, errstr_size);
        if (rc != CORE_OK)
            return rc;
    }
    if (!r->c)
        return connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
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
        fail(r, len == -1 ? CORE_ERR_NOMEM : CORE_ERR_INVALID, errstr, errstr_size,
             "cannot format command \"%.60s\"", fmt);
        return NULL;
    }
    if (command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
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
        fail(r, CORE_ERR_INVALID, errstr, errstr_size, "command needs argc >= 1 and non-NULL "
             "arguments (argc %d)", argc);
        return NULL;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len <= 0 || !cmd) {
        fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "cannot format command: out of memory");
        return NULL;
    }
    if (command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
    redisFreeCommand(cmd);
    return rep;
}

/* ---- pipelining ----------------------------------------------------------- */

static int pending_push(core_redis_t *r, char *cmd, size_t len, core_redis_script_t *s)
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
    return pending_push(r, cmd, (size_t)len, NULL);
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
        if (!cmds[i].script || !error_word_is(arr[i], "NOSCRIPT"))
            continue;
        s = cmds[i].script;
        if (!s->reload_mark) {
            s->reload_mark = true;
            if (redisAppendCommand(r->c, "SCRIPT LOAD %s", s->lua) != REDIS_OK)
                return io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
            nload++;
        }
        nrerun++;
    }
    if (nrerun == 0)
        return CORE_OK;
    for (i = 0; i < n; i++) {
        if (cmds[i].script && error_word_is(arr[i], "NOSCRIPT") &&
            redisAppendFormattedCommand(r->c, cmds[i].cmd, cmds[i].len) != REDIS_OK)
            return io_failure(r, "EVALSHA", errstr, errstr_size);
    }
    for (s = r->scripts; s; s = s->next)
        s->reload_mark = false;
    for (i = 0; i < nload; i++) {
        redisReply *rep;

        vp = NULL;
        if (redisGetReply(r->c, &vp) != REDIS_OK)
            return io_failure(r, "SCRIPT LOAD", errstr, errstr_size);
        rep = vp;
        if (rep->type == REDIS_REPLY_ERROR)
            core_log_error("redis: SCRIPT LOAD refused", CLF_S("redis", r->addr),
                           CLF_S("error", rep->str));
        freeReplyObject(rep);
    }
    for (i = 0; i < n; i++) {
        if (!cmds[i].script || !error_word_is(arr[i], "NOSCRIPT"))
            continue;
        vp = NULL;
        if (redisGetReply(r->c, &vp) != REDIS_OK)
            return io_failure(r, "EVALSHA", errstr, errstr_size);
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

        if (transient_reply(arr[i], &drop)) {
            core_metric_inc(r->m_err_busy);
            fail(r, CORE_ERR_TRANSIENT, errstr, errstr_size,
                 "pipeline reply %zu of %zu: server busy: %.200s%s", i + 1, n, arr[i]->str,
                 drop ? " (connection dropped)" : "");
            if (drop)
                drop_connection(r);
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
        drop_connection(r);
        return fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline of %zu: out of memory",
                    g->n);
    }
    for (size_t i = 0; i < g->n; i++) {
        void *vp = NULL;

        if (redisGetReply(r->c, &vp) != REDIS_OK) {
            char what[80];

            snprintf(what, sizeof(what), "pipeline reply %zu of %zu", i + 1, g->n);
            return io_failure(r, what, errstr, errstr_size);
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

    sigpipe_block(&g);
    for (size_t i = 0; i < r->ngroups && rc == CORE_OK; i++)
        if (!r->groups[i].arr)
            rc = group_read(r, &r->groups[i], errstr, errstr_size);
    sigpipe_unblock(&g);
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
    if (!r->c && (rc = connect_internal(r, r->connect_timeout_ms, errstr, errstr_size)) != CORE_OK) {
        pending_clear(r);
        return rc;
    }
    if (r->ngroups == r->capgroups) {
        size_t cap = r->capgroups ? r->capgroups * 2 : 8;
        group_t *ng = realloc(r->groups, cap * sizeof(*ng));

        if (!ng) {
            pending_clear(r);
            return fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline: out of memory");
        }
        r->groups = ng;
        r->capgroups = cap;
    }
    for (size_t i = 0; i < r->npending; i++) {
        if (redisAppendFormattedCommand(r->c, r->pending[i].cmd, r->pending[i].len) != REDIS_OK) {
            pending_clear(r);
            return io_failure(r, "pipeline", errstr, errstr_size);
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
    sigpipe_block(&sg);
    while (!done) {
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            rc = io_failure(r, "pipeline send", errstr, errstr_size);
            sigpipe_unblock(&sg);
            return rc;
        }
    }
    sigpipe_unblock(&sg);
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
        return fail(r, CORE_ERR_STATE, errstr, errstr_size, "no pipeline in flight");
    if (!r->groups[0].arr && !r->c) /* cannot happen: a drop clears the groups */
        return fail(r, CORE_ERR_STATE, errstr, errstr_size, "pipeline lost with the connection");
    sigpipe_block(&sg);
    if (!r->groups[0].arr)
        rc = group_read(r, &r->groups[0], errstr, errstr_size);
    for (size_t i = 0; rc == CORE_OK && i < r->groups[0].n && !noscript; i++)
        noscript = r->groups[0].cmds[i].script && error_word_is(r->groups[0].arr[i], "NOSCRIPT");
    if (rc == CORE_OK && noscript) {
        /* the re-run goes after the groups sent since: read theirs first */
        sigpipe_unblock(&sg);
        rc = drain(r, errstr, errstr_size);
        sigpipe_block(&sg);
        if (rc == CORE_OK)
            rc = rerun_noscript(r, r->groups[0].cmds, r->groups[0].n, r->groups[0].arr, errstr,
                                errstr_size);
    }
    sigpipe_unblock(&sg);
    if (rc != CORE_OK)
        return rc; /* the connection and every group are gone */
    g = r->groups[0];
    memmove(&r->groups[0], &r->groups[1], (r->ngroups - 1) * sizeof(*r->groups));
    r->ngroups--;
    core_metric_observe(r->m_rtt_pipeline, core_mono_s() - g.t_sent);
    if ((rc = busy_check(r, g.arr, g.n, errstr, errstr_size)) != CORE_OK) {
        if (r->ngroups > 0)
            drop_connection(r); /* the rest is to be sent again too */
        group_free(&g);
        return rc;
    }
    r->last_err = CORE_OK;
    if (replies && n) {
        *replies = g.arr;
        *n = g.n;
        g.arr = NULL;
    }
    group_free(&g);
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
        rc = connect_internal(r, r->connect_timeout_ms, errstr, errstr_size);
        if (rc != CORE_OK)
            goto out;
    }
    arr = calloc(count, sizeof(*arr));
    if (!arr) {
        rc = fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "pipeline of %zu: out of memory",
                  count);
        goto out;
    }
    t0 = core_mono_s();
    for (i = 0; i < count; i++) {
        if (redisAppendFormattedCommand(r->c, r->pending[i].cmd, r->pending[i].len) != REDIS_OK) {
            rc = io_failure(r, "pipeline", errstr, errstr_size);
            goto out;
        }
    }
    sigpipe_block(&g);
    for (got = 0; got < count; got++) {
        void *vp = NULL;

        if (redisGetReply(r->c, &vp) != REDIS_OK) {
            char what[64];

            snprintf(what, sizeof(what), "pipeline reply %zu of %zu", got + 1, count);
            rc = io_failure(r, what, errstr, errstr_size);
            break;
        }
        arr[got] = vp;
    }
    if (rc == CORE_OK)
        rc = rerun_noscript(r, r->pending, count, arr, errstr, errstr_size);
    sigpipe_unblock(&g);
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
    pending_clear(r);
    return rc;
}

/* ---- scripts -------------------------------------------------------------- */

core_redis_script_t *core_redis_script_new(core_redis_t *r, const char *lua)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    core_redis_script_t *s;

    if (!r || !lua || !*lua)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->lua = strdup(lua);
    if (!s->lua || EVP_Digest(lua, strlen(lua), md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        free(s->lua);
        free(s);
        return NULL;
    }
    for (i = 0; i < 20; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
    s->r = r;
    s->next = r->scripts;
    if (r->scripts)
        r->scripts->prev = s;
    r->scripts = s;

    if (r->c) {
        /* Load now; a failure here is not final: EVALSHA reloads on NOSCRIPT. */
        char err[256];
        char *cmd = NULL;
        const char *argv[3] = { "SCRIPT", "LOAD", s->lua };
        int len = redisFormatCommandArgv(&cmd, 3, argv, NULL);

        if (len > 0 && cmd) {
            redisReply *rep = roundtrip(r, cmd, (size_t)len, err, sizeof(err));

            if (!rep)
                core_log_warn("redis: SCRIPT LOAD failed", CLF_S("sha", s->sha),
                              CLF_S("error", err));
            else if (rep->type == REDIS_REPLY_ERROR)
                core_log_error("redis: SCRIPT LOAD refused", CLF_S("redis", r->addr),
                               CLF_S("sha", s->sha), CLF_S("error", rep->str));
            if (rep)
                freeReplyObject(rep);
            redisFreeCommand(cmd);
        }
    }
    return s;
}

void core_redis_script_free(core_redis_script_t *s)
{
    size_t i;

    if (!s)
        return;
    if (s->r) {
        /* appended EVALSHA of this script lose their NOSCRIPT retry */
        for (i = 0; i < s->r->npending; i++)
            if (s->r->pending[i].script == s)
                s->r->pending[i].script = NULL;
        if (s->prev)
            s->prev->next = s->next;
        else
            s->r->scripts = s->next;
        if (s->next)
            s->next->prev = s->prev;
    }
    free(s->lua);
    free(s);
}

const char *core_redis_script_sha(const core_redis_script_t *s)
{
    return s ? s->sha : NULL;
}

/* Build EVALSHA sha numkeys argv... into a formatted command. */
static int format_evalsha(core_redis_script_t *s, int numkeys, int argc, const char **argv,
                          const size_t *argvlen, char **cmd)
{
    const char **av;
    size_t *al;
    char nk[16];
    int i, len;

    if (argc < 0 || numkeys < 0 || numkeys > argc || (argc > 0 && !argv) || argc > INT_MAX - 3)
        return CORE_ERR_INVALID;
    for (i = 0; i < argc; i++)
        if (!argv[i])
            return CORE_ERR_INVALID;
    av = malloc((size_t)(argc + 3) * sizeof(*av));
    al = malloc((size_t)(argc + 3) * sizeof(*al));
    if (!av || !al) {
        free(av);
        free(al);
        return CORE_ERR_NOMEM;
    }
    snprintf(nk, sizeof(nk), "%d", numkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = s->sha;
    al[1] = 40;
    av[2] = nk;
    al[2] = strlen(nk);
    for (i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    len = redisFormatCommandArgv(cmd, argc + 3, av, al);
    free(av);
    free(al);
    if (len <= 0 || !*cmd)
        return CORE_ERR_NOMEM;
    return len;
}

redisReply *core_redis_evalsha(core_redis_t *r, core_redis_script_t *s, int numkeys, int argc,
                               const char **argv, const size_t *argvlen, char *errstr,
                               size_t errstr_size)
{
    redisReply *rep;
    char *cmd = NULL;
    int len;

    if (!r) {
        core_errstr(errstr, errstr_size, "redis: no handle");
        return NULL;
    }
    if (!s || s->r != r) {
        fail(r, CORE_ERR_INVALID, errstr, errstr_size, "EVALSHA: script missing or bound to "
             "another handle");
        return NULL;
    }
    len = format_evalsha(s, numkeys, argc, argv, argvlen, &cmd);
    if (len < 0) {
        fail(r, (core_err_t)len, errstr, errstr_size,
             "EVALSHA: bad arguments (numkeys %d, argc %d) or out of memory", numkeys, argc);
        return NULL;
    }
    if (command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
    if (rep && error_word_is(rep, "NOSCRIPT")) {
        char *load = NULL;
        const char *lav[3] = { "SCRIPT", "LOAD", s->lua };
        int llen = redisFormatCommandArgv(&load, 3, lav, NULL);
        redisReply *lrep;

        freeReplyObject(rep);
        rep = NULL;
        if (llen <= 0 || !load) {
            fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "SCRIPT LOAD: out of memory");
        } else {
            lrep = roundtrip(r, load, (size_t)llen, errstr, errstr_size);
            redisFreeCommand(load);
            if (lrep && lrep->type == REDIS_REPLY_ERROR)
                rep = lrep; /* the script itself is refused: give the caller why */
            else if (lrep) {
                freeReplyObject(lrep);
                rep = roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
            }
        }
    }
    redisFreeCommand(cmd);
    return rep;
}

int core_redis_evalsha_append(core_redis_t *r, core_redis_script_t *s, int numkeys, int argc,
                              const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len;

    if (!r || !s || s->r != r)
        return CORE_ERR_INVALID;
    len = format_evalsha(s, numkeys, argc, argv, argvlen, &cmd);
    if (len < 0)
        return len;
    return pending_push(r, cmd, (size_t)len, s);
}

int core_redis_evalsha_append_resp(core_redis_t *r, core_redis_script_t *s, int nargs,
                                   const char *resp, size_t len)
{
    char head[96];
    char *cmd;
    int hl;

    if (!r || !s || s->r != r || nargs < 1 || nargs > INT_MAX - 2 || !resp || len == 0)
        return CORE_ERR_INVALID;
    hl = snprintf(head, sizeof(head), "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", nargs + 2,
                  s->sha);
    if (hl <= 0 || (size_t)hl >= sizeof(head) || len > SIZE_MAX - (size_t)hl - 1)
        return CORE_ERR_INVALID;
    /* redisFreeCommand() is free(): a malloc'd buffer is a valid command */
    cmd = malloc((size_t)hl + len + 1);
    if (!cmd)
        return CORE_ERR_NOMEM;
    memcpy(cmd, head, (size_t)hl);
    memcpy(cmd + hl, resp, len);
    cmd[(size_t)hl + len] = '\0';
    return pending_push(r, cmd, (size_t)hl + len, s);
}
