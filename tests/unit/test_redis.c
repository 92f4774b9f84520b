/* test_redis.c — core_redis against the real local Redis (TB_REDIS_HOST /
 * TB_REDIS_PORT, default 127.0.0.1:6379; TB_REDIS_USER / TB_REDIS_PASSWORD
 * when the server wants them), plus a scripted fake server for the replies a
 * healthy Redis never gives (BUSY, LOADING, NOAUTH, READONLY).
 *
 * Redis not answering is a failure, not a skip. Keys live under
 * "tbtest:<pid>:"; the tcase teardown deletes them and the ACL user. */
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_metrics.h"
#include "tributary/core_redis.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char g_host[256] = "127.0.0.1";
static int g_port = 6379;
static const char *g_user, *g_password;
static char g_prefix[64];   /* "tbtest:<pid>:" */
static char g_acl_user[64]; /* "tbtest_<pid>" */

static void env_init(void)
{
    const char *h = getenv("TB_REDIS_HOST"), *p = getenv("TB_REDIS_PORT");

    if (h && *h)
        snprintf(g_host, sizeof(g_host), "%s", h);
    if (p && *p)
        g_port = atoi(p);
    g_user = getenv("TB_REDIS_USER");
    g_password = getenv("TB_REDIS_PASSWORD");
    snprintf(g_prefix, sizeof(g_prefix), "tbtest:%d:", (int)getpid());
    snprintf(g_acl_user, sizeof(g_acl_user), "tbtest_%d", (int)getpid());
}

static core_redis_opts base_opts(core_metrics_t *m)
{
    core_redis_opts o;

    memset(&o, 0, sizeof(o));
    o.host = g_host;
    o.port = g_port;
    o.user = g_user;
    o.password = g_password;
    o.connect_timeout_ms = 1000;
    o.command_timeout_ms = 10000;
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 200;
    o.metrics = m;
    return o;
}

static const char *key(const char *name)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "%s%s", g_prefix, name);
    return buf;
}

/* A connected handle to the real server, or a clear failure. */
static core_redis_t *connect_real(core_metrics_t *m)
{
    char err[512] = "";
    core_redis_opts o = base_opts(m);
    core_redis_t *r = core_redis_new(&o, err, sizeof(err));

    ck_assert_msg(r != NULL, "core_redis_new: %s", err);
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK,
                  "Redis not reachable at %s:%d (set TB_REDIS_HOST / TB_REDIS_PORT): %s",
                  g_host, g_port, err);
    return r;
}

static redisReply *cmd_ok(core_redis_t *r, redisReply *rep, const char *what, const char *err)
{
    (void)r;
    ck_assert_msg(rep != NULL, "%s: %s", what, err);
    ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "%s: %s", what, rep->str);
    return rep;
}

/* unchecked fixture: runs in the parent, once for the tcase */
static void real_setup(void)
{
    core_metrics_t *m = core_metrics_new();
    core_redis_t *r = connect_real(m);

    core_redis_free(r);
    core_metrics_free(m);
}

static void real_teardown(void)
{
    char err[512];
    core_metrics_t *m = core_metrics_new();
    core_redis_opts o = base_opts(m);
    core_redis_t *r = core_redis_new(&o, err, sizeof(err));
    char cursor[32] = "0", match[80];
    redisReply *rep;

    snprintf(match, sizeof(match), "%s*", g_prefix);
    do {
        rep = core_redis_command(r, err, sizeof(err), "SCAN %s MATCH %s COUNT 1000", cursor,
                                 match);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep)
                freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            redisReply *d = core_redis_command(r, err, sizeof(err), "DEL %b",
                                               rep->element[1]->element[i]->str,
                                               rep->element[1]->element[i]->len);
            if (d)
                freeReplyObject(d);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    rep = core_redis_command(r, err, sizeof(err), "ACL DELUSER %s", g_acl_user);
    if (rep)
        freeReplyObject(rep);
    core_redis_free(r);
    core_metrics_free(m);
}

/* ---- real server ---------------------------------------------------------- */

START_TEST(test_set_get)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_t *r = connect_real(m);
    const char bin[] = "a\0b\r\nc";
    redisReply *rep;
    const char *argv[3];
    size_t argvlen[3];

    ck_assert(core_redis_connected(r));
    rep = core_redis_command(r, err, sizeof(err), "SET %s %b", key("k1"), bin, sizeof(bin) - 1);
    cmd_ok(r, rep, "SET", err);
    ck_assert_str_eq(rep->str, "OK");
    freeReplyObject(rep);
    rep = core_redis_command(r, err, sizeof(err), "GET %s", key("k1"));
    cmd_ok(r, rep, "GET", err);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(rep->len, sizeof(bin) - 1);
    ck_assert(memcmp(rep->str, bin, rep->len) == 0);
    freeReplyObject(rep);

    argv[0] = "GET";
    argv[1] = key("missing");
    argvlen[0] = 3;
    argvlen[1] = strlen(argv[1]);
    rep = core_redis_command_argv(r, 2, argv, argvlen, err, sizeof(err));
    cmd_ok(r, rep, "GET missing", err);
    ck_assert_int_eq(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);

    /* an ordinary error reply is the caller's to judge: returned, not NULL */
    argv[0] = "LPUSH";
    argv[1] = key("k1");
    argv[2] = "x";
    rep = core_redis_command_argv(r, 3, argv, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ERROR);
    ck_assert_ptr_nonnull(strstr(rep->str, "WRONGTYPE"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_OK);
    ck_assert(core_redis_connected(r));
    freeReplyObject(rep);

    /* round trips were measured */
    core_metric_family_t *f = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                                  "tributary_redis_roundtrip_seconds", "",
                                                  (const char *const[]){ "op", NULL }, NULL, 0,
                                                  NULL, 0);
    ck_assert(core_metric_value(core_metrics_series1(f, "command")) == 4);
    ck_assert(core_metric_value(core_metrics_series1(f, "connect")) == 1);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_pipeline_1000)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_t *r = connect_real(m);
    char counter[256], sk[128], val[32];
    const char *argv[3];
    redisReply **rep = NULL;
    size_t n = 99, i;

    snprintf(counter, sizeof(counter), "%s", key("counter"));
    for (i = 0; i < 1000; i++) {
        argv[0] = "INCR";
        argv[1] = counter;
        ck_assert_int_eq(core_redis_append_argv(r, 2, argv, NULL), CORE_OK);
    }
    ck_assert_uint_eq(core_redis_pending(r), 1000);
    /* a single command now would jump the queue: refused */
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "PING"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(err, "pipeline"));
    ck_assert_uint_eq(core_redis_pending(r), 1000);

    ck_assert_msg(core_redis_pipeline_exec(r, &rep, &n, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(n, 1000);
    ck_assert_uint_eq(core_redis_pending(r), 0);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rep[i]->type, REDIS_REPLY_INTEGER);
        ck_assert_int_eq(rep[i]->integer, (long long)i + 1);
    }
    core_redis_replies_free(rep, n);

    /* mixed commands, replies in order */
    for (i = 0; i < 10; i++) {
        snprintf(sk, sizeof(sk), "%ss%zu", g_prefix, i);
        snprintf(val, sizeof(val), "v%zu", i);
        argv[0] = "SET";
        argv[1] = sk;
        argv[2] = val;
        ck_assert_int_eq(core_redis_append_argv(r, 3, argv, NULL), CORE_OK);
        argv[0] = "GET";
        ck_assert_int_eq(core_redis_append_argv(r, 2, argv, NULL), CORE_OK);
    }
    ck_assert_int_eq(core_redis_pipeline_exec(r, &rep, &n, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(n, 20);
    for (i = 0; i < 10; i++) {
        snprintf(val, sizeof(val), "v%zu", i);
        ck_assert_str_eq(rep[2 * i]->str, "OK");
        ck_assert_str_eq(rep[2 * i + 1]->str, val);
    }
    core_redis_replies_free(rep, n);

    /* nothing appended: nothing to do */
    rep = (redisReply **)1;
    ck_assert_int_eq(core_redis_pipeline_exec(r, &rep, &n, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(rep);
    /* replies discarded */
    argv[0] = "PING";
    ck_assert_int_eq(core_redis_append_argv(r, 1, argv, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_exec(r, NULL, NULL, err, sizeof(err)), CORE_OK);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_acl_auth)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_t *admin = connect_real(m), *r;
    core_redis_opts o = base_opts(m);
    redisReply *rep;
    int64_t t0;

    rep = core_redis_command(admin, err, sizeof(err), "ACL SETUSER %s on >pw ~* +@all",
                             g_acl_user);
    cmd_ok(admin, rep, "ACL SETUSER", err);
    freeReplyObject(rep);

    o.user = g_acl_user;
    o.password = "pw";
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "%s", err);
    rep = core_redis_command(r, err, sizeof(err), "ACL WHOAMI");
    cmd_ok(r, rep, "ACL WHOAMI", err);
    ck_assert_str_eq(rep->str, g_acl_user);
    freeReplyObject(rep);
    core_redis_free(r);

    /* wrong password: a configuration problem, not transient */
    o.password = "wrong";
    r = core_redis_new(&o, err, sizeof(err));
    err[0] = '\0';
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "WRONGPASS") && strstr(err, g_acl_user) &&
                  strstr(err, "password"), "errstr: %s", err);
    ck_assert(!core_redis_connected(r));
    /* ensure does not retry what retrying cannot fix */
    t0 = core_mono_ms();
    ck_assert_int_eq(core_redis_ensure(r, core_mono_ms() + 5000, err, sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_int_lt(core_mono_ms() - t0, 1000);
    /* and a command on it says why */
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "PING"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_INVALID);
    core_redis_free(r);

    rep = core_redis_command(admin, err, sizeof(err), "ACL DELUSER %s", g_acl_user);
    cmd_ok(admin, rep, "ACL DELUSER", err);
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);

    /* the user is gone: the right password no longer works either */
    o.password = "pw";
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_INVALID);
    core_redis_free(r);
    core_redis_free(admin);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_select_db)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_opts o = base_opts(m);
    core_redis_t *r0 = connect_real(m), *r1;
    redisReply *rep;

    o.db = 1;
    r1 = core_redis_new(&o, err, sizeof(err));
    ck_assert_msg(core_redis_connect(r1, err, sizeof(err)) == CORE_OK, "%s", err);
    rep = core_redis_command(r1, err, sizeof(err), "SET %s in-db-1", key("db"));
    cmd_ok(r1, rep, "SET", err);
    freeReplyObject(rep);
    rep = core_redis_command(r0, err, sizeof(err), "GET %s", key("db"));
    cmd_ok(r0, rep, "GET", err);
    ck_assert_int_eq(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    rep = core_redis_command(r1, err, sizeof(err), "DEL %s", key("db"));
    freeReplyObject(rep);
    core_redis_free(r1);

    o.db = 100000;
    r1 = core_redis_new(&o, err, sizeof(err));
    ck_assert_int_eq(core_redis_connect(r1, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "SELECT 100000") != NULL, "errstr: %s", err);
    core_redis_free(r1);
    core_redis_free(r0);
    core_metrics_free(m);
}
END_TEST

static long long client_id(core_redis_t *r)
{
    char err[512] = "";
    redisReply *rep = core_redis_command(r, err, sizeof(err), "CLIENT ID");
    long long id;

    cmd_ok(r, rep, "CLIENT ID", err);
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    id = rep->integer;
    freeReplyObject(rep);
    return id;
}

static void kill_client(core_redis_t *admin, long long id)
{
    char err[512] = "";
    redisReply *rep = core_redis_command(admin, err, sizeof(err), "CLIENT KILL ID %lld", id);

    cmd_ok(admin, rep, "CLIENT KILL", err);
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);
}

START_TEST(test_reconnect_after_kill)
{
    char err[512] = "", addr[300];
    core_metrics_t *m = core_metrics_new();
    core_redis_t *admin = connect_real(m), *r = connect_real(m);
    core_metric_family_t *f;
    redisReply *rep;
    size_t big = 10 * 1024 * 1024;
    char *val;

    snprintf(addr, sizeof(addr), "%s:%d", g_host, g_port);
    kill_client(admin, client_id(r));
    rep = core_redis_command(r, err, sizeof(err), "GET %s", key("x"));
    ck_assert_ptr_null(rep);
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, addr) != NULL, "errstr: %s", err);
    ck_assert(!core_redis_connected(r));

    ck_assert_msg(core_redis_ensure(r, core_mono_ms() + 3000, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert(core_redis_connected(r));
    rep = core_redis_command(r, err, sizeof(err), "SET %s after", key("x"));
    cmd_ok(r, rep, "SET after reconnect", err);
    freeReplyObject(rep);
    f = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_redis_reconnects_total", "", NULL,
                            NULL, 0, NULL, 0);
    ck_assert(core_metric_value(core_metrics_series(f, NULL)) == 1);

    /* a large write into a connection the server closed: an error, not a
     * SIGPIPE that kills the process */
    kill_client(admin, client_id(r));
    val = malloc(big);
    memset(val, 'v', big);
    rep = core_redis_command(r, err, sizeof(err), "SET %s %b", key("big"), val, big);
    ck_assert_ptr_null(rep);
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    /* the next command connects again by itself */
    rep = core_redis_command(r, err, sizeof(err), "PING");
    cmd_ok(r, rep, "PING after lazy reconnect", err);
    freeReplyObject(rep);
    ck_assert(core_metric_value(core_metrics_series(f, NULL)) == 2);

    /* a pipeline on a killed connection: TRANSIENT, nothing left appended */
    kill_client(admin, client_id(r));
    const char *argv[2] = { "GET", key("x") };
    ck_assert_int_eq(core_redis_append_argv(r, 2, argv, NULL), CORE_OK);
    redisReply **reps = NULL;
    size_t n = 5;
    ck_assert_int_eq(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)),
                     CORE_ERR_TRANSIENT);
    ck_assert_ptr_null(reps);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(core_redis_pending(r), 0);
    free(val);
    core_redis_free(r);
    core_redis_free(admin);
    core_metrics_free(m);
}
END_TEST

static int closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd); /* bound, never listened: connections are refused */
    return port;
}

START_TEST(test_unreachable)
{
    char err[512] = "", addr[64];
    core_metrics_t *m = core_metrics_new();
    core_redis_opts o = base_opts(m);
    core_redis_t *r;
    int64_t t0, el;
    const char *argv[1] = { "PING" };
    redisReply **reps = NULL;
    size_t n = 0;

    o.host = "127.0.0.1";
    o.port = closed_port();
    o.user = o.password = NULL;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", o.port);
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert(!core_redis_connected(r)); /* no I/O in new */
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, addr) && strstr(err, "refused"), "errstr: %s", err);

    t0 = core_mono_ms();
    ck_assert_int_eq(core_redis_ensure(r, t0 + 300, err, sizeof(err)), CORE_ERR_TRANSIENT);
    el = core_mono_ms() - t0;
    ck_assert_msg(el >= 250 && el < 1000, "ensure took %lld ms", (long long)el);
    ck_assert_msg(strstr(err, addr) && strstr(err, "attempt"), "errstr: %s", err);
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);

    /* a deadline already past: one attempt, at once */
    t0 = core_mono_ms();
    ck_assert_int_eq(core_redis_ensure(r, t0 - 1000, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_int_lt(core_mono_ms() - t0, 200);
    ck_assert_ptr_nonnull(strstr(err, "1 attempt"));

    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "PING"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_int_eq(core_redis_append_argv(r, 1, argv, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)),
                     CORE_ERR_TRANSIENT);
    ck_assert_uint_eq(core_redis_pending(r), 0);
    core_redis_free(r);

    /* a name that does not resolve */
    o.host = "no-such-host.invalid";
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "no-such-host.invalid") != NULL, "errstr: %s", err);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

/* version-guarded write, as the cache-feeder does it */
static const char *GUARD_LUA =
    "local cur = redis.call('HGET', KEYS[1], 'v')\n"
    "if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])\n"
    "return 1\n";

static long long guarded(core_redis_t *r, core_redis_script_t *s, const char *k, const char *v)
{
    char err[512] = "";
    const char *argv[3] = { k, v, "data" };
    redisReply *rep = core_redis_evalsha(r, s, 1, 3, argv, NULL, err, sizeof(err));
    long long x;

    cmd_ok(r, rep, "EVALSHA", err);
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    x = rep->integer;
    freeReplyObject(rep);
    return x;
}

static void script_flush(core_redis_t *r)
{
    char err[512] = "";
    redisReply *rep = core_redis_command(r, err, sizeof(err), "SCRIPT FLUSH");

    cmd_ok(r, rep, "SCRIPT FLUSH", err);
    freeReplyObject(rep);
}

START_TEST(test_scripts_noscript)
{
    char err[512] = "", k[256], other[256];
    core_metrics_t *m = core_metrics_new();
    core_redis_opts o = base_opts(m);
    core_redis_t *r = core_redis_new(&o, err, sizeof(err));
    core_redis_script_t *s, *one, *bad;
    redisReply *rep, **reps = NULL;
    size_t n = 0, i;

    s = core_redis_script_new(r, GUARD_LUA);
    one = core_redis_script_new(r, "return 1");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(core_redis_script_sha(one), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "%s", err);
    /* loaded by the connect */
    rep = core_redis_command(r, err, sizeof(err), "SCRIPT EXISTS %s %s", core_redis_script_sha(s),
                             core_redis_script_sha(one));
    cmd_ok(r, rep, "SCRIPT EXISTS", err);
    ck_assert_uint_eq(rep->elements, 2);
    ck_assert_int_eq(rep->element[0]->integer, 1);
    ck_assert_int_eq(rep->element[1]->integer, 1);
    freeReplyObject(rep);

    snprintf(k, sizeof(k), "%s", key("guard"));
    ck_assert_int_eq(guarded(r, s, k, "5"), 1);
    ck_assert_int_eq(guarded(r, s, k, "3"), 0); /* older version refused */
    script_flush(r);
    ck_assert_int_eq(guarded(r, s, k, "6"), 1); /* NOSCRIPT handled inside */

    /* a pipeline after a flush: every EVALSHA re-run, other replies intact */
    script_flush(r);
    snprintf(other, sizeof(other), "%s", key("other"));
    rep = core_redis_command(r, err, sizeof(err), "SET %s plain", other);
    freeReplyObject(rep);
    for (i = 0; i < 50; i++) {
        char kk[128], v[16];
        const char *argv[3] = { kk, v, "d" };
        const char *get[2] = { "GET", other };

        snprintf(kk, sizeof(kk), "%sg%zu", g_prefix, i % 5);
        snprintf(v, sizeof(v), "%zu", i);
        ck_assert_int_eq(core_redis_evalsha_append(r, s, 1, 3, argv, NULL), CORE_OK);
        ck_assert_int_eq(core_redis_append_argv(r, 2, get, NULL), CORE_OK);
    }
    ck_assert_msg(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_uint_eq(n, 100);
    for (i = 0; i < 50; i++) {
        ck_assert_msg(reps[2 * i]->type == REDIS_REPLY_INTEGER, "reply %zu: type %d %s", 2 * i,
                      reps[2 * i]->type, reps[2 * i]->str ? reps[2 * i]->str : "");
        ck_assert_int_eq(reps[2 * i]->integer, 1); /* versions only grow per key */
        ck_assert_str_eq(reps[2 * i + 1]->str, "plain");
    }
    core_redis_replies_free(reps, n);
    for (i = 0; i < 5; i++) {
        char kk[128];

        snprintf(kk, sizeof(kk), "%sg%zu", g_prefix, i);
        rep = core_redis_command(r, err, sizeof(err), "HGET %s v", kk);
        cmd_ok(r, rep, "HGET", err);
        ck_assert_int_eq(atoi(rep->str), (int)(45 + i)); /* the newest version won */
        freeReplyObject(rep);
    }

    /* a script Redis refuses: an error reply, no crash */
    bad = core_redis_script_new(r, "return +");
    ck_assert_ptr_nonnull(bad);
    rep = core_redis_evalsha(r, bad, 0, 0, NULL, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    core_redis_script_free(bad);

    /* bad arguments */
    const char *argv1[1] = { "k" };
    ck_assert_int_eq(core_redis_evalsha_append(r, s, 2, 1, argv1, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_evalsha_append(r, s, -1, 1, argv1, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_evalsha_append(r, NULL, 0, 0, NULL, NULL), CORE_ERR_INVALID);
    ck_assert_ptr_null(core_redis_evalsha(r, s, 2, 1, argv1, NULL, err, sizeof(err)));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_INVALID);
    ck_assert_ptr_null(core_redis_script_new(r, NULL));
    ck_assert_ptr_null(core_redis_script_new(NULL, "return 1"));
    core_redis_script_free(NULL);
    core_redis_free(r); /* frees s and one */
    core_metrics_free(m);
}
END_TEST

/* EVALSHA with pre-built RESP arguments (svc-cache-feeder's batches):
 * binary-safe, re-run after NOSCRIPT, bad arguments refused. */
START_TEST(test_evalsha_append_resp)
{
    static const char resp[] = "$1\r\n1\r\n$5\r\nkey-1\r\n$1\r\na\r\n$3\r\nb\0c\r\n";
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_t *r = connect_real(m);
    core_redis_script_t *s = core_redis_script_new(r, "return {KEYS[1], ARGV[1], ARGV[2], #ARGV[2]}");
    redisReply **reps = NULL;
    size_t n = 0;

    ck_assert_ptr_nonnull(s);
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            script_flush(r); /* the second round runs through NOSCRIPT */
        ck_assert_int_eq(core_redis_evalsha_append_resp(r, s, 4, resp, sizeof(resp) - 1), CORE_OK);
        ck_assert_int_eq(core_redis_evalsha_append_resp(r, s, 4, resp, sizeof(resp) - 1), CORE_OK);
        ck_assert_msg(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_uint_eq(n, 2);
        for (size_t i = 0; i < n; i++) {
            ck_assert_msg(reps[i]->type == REDIS_REPLY_ARRAY && reps[i]->elements == 4,
                          "reply %zu: type %d %s", i, reps[i]->type, reps[i]->str ? reps[i]->str : "");
            ck_assert_str_eq(reps[i]->element[0]->str, "key-1");
            ck_assert_str_eq(reps[i]->element[1]->str, "a");
            ck_assert_uint_eq(reps[i]->element[2]->len, 3);
            ck_assert(memcmp(reps[i]->element[2]->str, "b\0c", 3) == 0);
            ck_assert_int_eq(reps[i]->element[3]->integer, 3);
        }
        core_redis_replies_free(reps, n);
    }
    ck_assert_int_eq(core_redis_evalsha_append_resp(r, s, 0, resp, 4), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_evalsha_append_resp(r, s, 1, NULL, 4), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_evalsha_append_resp(r, NULL, 1, resp, 4), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_evalsha_append_resp(NULL, s, 1, resp, 4), CORE_ERR_INVALID);
    ck_assert_uint_eq(core_redis_pending(r), 0);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

/* Several pipelines in flight on one connection: replies in the order sent,
 * a command in between waits for them (they stay for pipeline_recv),
 * NOSCRIPT re-runs across groups, and a dropped connection takes every
 * group with it. */
START_TEST(test_pipelines_in_flight)
{
    char err[512] = "", k[300];
    core_metrics_t *m = core_metrics_new();
    core_redis_t *admin = connect_real(m), *r = connect_real(m);
    core_redis_script_t *s = core_redis_script_new(r, GUARD_LUA);
    redisReply **reps = NULL, *rep;
    size_t n = 0;

    snprintf(k, sizeof(k), "%s", key("ctr"));
    ck_assert_int_eq(core_redis_pipeline_recv(r, &reps, &n, err, sizeof(err)), CORE_ERR_STATE);
    ck_assert_int_eq(core_redis_pipeline_send(r, err, sizeof(err)), CORE_OK); /* nothing */
    ck_assert_uint_eq(core_redis_inflight(r), 0);
    for (int g = 0; g < 3; g++) {
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(core_redis_append_argv(r, 2, (const char *[]){ "INCR", k }, NULL), CORE_OK);
        ck_assert_msg(core_redis_pipeline_send(r, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_uint_eq(core_redis_pending(r), 0);
    }
    ck_assert_uint_eq(core_redis_inflight(r), 3);
    /* a command now: the groups' replies are read first and kept */
    rep = core_redis_command(r, err, sizeof(err), "GET %s", k);
    cmd_ok(r, rep, "GET", err);
    ck_assert_str_eq(rep->str, "300");
    freeReplyObject(rep);
    ck_assert_uint_eq(core_redis_inflight(r), 3);
    for (int g = 0; g < 3; g++) {
        ck_assert_msg(core_redis_pipeline_recv(r, &reps, &n, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_uint_eq(n, 100);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(reps[i]->integer, g * 100 + i + 1);
        core_redis_replies_free(reps, n);
    }
    ck_assert_uint_eq(core_redis_inflight(r), 0);

    /* NOSCRIPT in two groups in flight: both re-run, versions only grow */
    script_flush(r);
    for (int g = 0; g < 2; g++) {
        for (int i = 0; i < 10; i++) {
            char kk[128], v[16];
            snprintf(kk, sizeof(kk), "%sif%d", g_prefix, i % 3);
            snprintf(v, sizeof(v), "%d", g * 10 + i + 1);
            ck_assert_int_eq(core_redis_evalsha_append(r, s, 1, 3, (const char *[]){ kk, v, "d" }, NULL),
                             CORE_OK);
        }
        ck_assert_msg(core_redis_pipeline_send(r, err, sizeof(err)) == CORE_OK, "%s", err);
    }
    for (int g = 0; g < 2; g++) {
        ck_assert_msg(core_redis_pipeline_recv(r, &reps, &n, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_uint_eq(n, 10);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(reps[i]->type == REDIS_REPLY_INTEGER, "group %d reply %zu: type %d %s", g, i,
                          reps[i]->type, reps[i]->str ? reps[i]->str : "");
        core_redis_replies_free(reps, n);
    }
    for (int i = 0; i < 3; i++) {
        char kk[128];
        snprintf(kk, sizeof(kk), "%sif%d", g_prefix, i);
        rep = core_redis_command(r, err, sizeof(err), "HGET %s v", kk);
        cmd_ok(r, rep, "HGET", err);
        static const int want[3] = { 20, 18, 19 }; /* the newest version of each key */
        ck_assert_int_eq(atoi(rep->str), want[i]);
        freeReplyObject(rep);
    }

    /* the connection dies with groups in flight: every group is gone */
    long long id = client_id(r);
    ck_assert_int_eq(core_redis_append_argv(r, 3, (const char *[]){ "BLPOP", key("never"), "5" }, NULL),
                     CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_send(r, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(core_redis_append_argv(r, 2, (const char *[]){ "INCR", k }, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_send(r, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(core_redis_inflight(r), 2);
    kill_client(admin, id);
    ck_assert_int_eq(core_redis_pipeline_recv(r, &reps, &n, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_ptr_null(reps);
    ck_assert_uint_eq(core_redis_inflight(r), 0);
    ck_assert(!core_redis_connected(r));
    ck_assert_int_eq(core_redis_pipeline_recv(r, &reps, &n, err, sizeof(err)), CORE_ERR_STATE);
    rep = core_redis_command(r, err, sizeof(err), "GET %s", k);
    cmd_ok(r, rep, "GET after the drop", err);
    ck_assert_str_eq(rep->str, "300"); /* the INCR behind the blocked BLPOP never ran */
    freeReplyObject(rep);
    core_redis_free(r);
    core_redis_free(admin);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_big_value)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_t *r = connect_real(m);
    size_t big = 10 * 1024 * 1024, i;
    unsigned char *val = malloc(big);
    const char *argv[3];
    size_t argvlen[3];
    redisReply *rep, **reps = NULL;
    size_t n = 0;
    unsigned int seed = 42;

    for (i = 0; i < big; i++)
        val[i] = (unsigned char)(rand_r(&seed) & 0xff);
    val[0] = 0;
    val[big - 1] = 0;
    argv[0] = "SET";
    argv[1] = key("big");
    argv[2] = (const char *)val;
    argvlen[0] = 3;
    argvlen[1] = strlen(argv[1]);
    argvlen[2] = big;
    rep = core_redis_command_argv(r, 3, argv, argvlen, err, sizeof(err));
    cmd_ok(r, rep, "SET 10 MB", err);
    freeReplyObject(rep);
    rep = core_redis_command(r, err, sizeof(err), "GET %s", key("big"));
    cmd_ok(r, rep, "GET 10 MB", err);
    ck_assert_uint_eq(rep->len, big);
    ck_assert(memcmp(rep->str, val, big) == 0);
    freeReplyObject(rep);

    /* the same through a pipeline */
    ck_assert_int_eq(core_redis_append_argv(r, 3, argv, argvlen), CORE_OK);
    argv[0] = "GET";
    ck_assert_int_eq(core_redis_append_argv(r, 2, argv, argvlen), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)), CORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(reps[1]->len, big);
    ck_assert(memcmp(reps[1]->str, val, big) == 0);
    core_redis_replies_free(reps, n);
    free(val);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_command_timeout)
{
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    core_redis_opts o = base_opts(m);
    core_redis_t *r;
    redisReply *rep;
    int64_t t0, el;

    o.command_timeout_ms = 200;
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "%s", err);
    t0 = core_mono_ms();
    rep = core_redis_command(r, err, sizeof(err), "BLPOP %s 5", key("never"));
    el = core_mono_ms() - t0;
    ck_assert_ptr_null(rep);
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "timed out after 200 ms") && strstr(err, "BLPOP"), "errstr: %s",
                  err);
    ck_assert_msg(el >= 150 && el < 2000, "took %lld ms", (long long)el);
    ck_assert(!core_redis_connected(r));
    rep = core_redis_command(r, err, sizeof(err), "PING");
    cmd_ok(r, rep, "PING after timeout", err);
    ck_assert_str_eq(rep->str, "PONG");
    freeReplyObject(rep);
    core_redis_free(r);
    core_metrics_free(m);
}
END_TEST

/* ---- no server needed ----------------------------------------------------- */

START_TEST(test_bad_options)
{
    char err[256];
    core_redis_opts o;
    core_redis_t *r;
    const char *argv[1] = { "PING" };

    memset(&o, 0, sizeof(o));
    ck_assert_ptr_null(core_redis_new(NULL, err, sizeof(err)));
    o.port = -1;
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "port"));
    o.port = 70000;
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    o.port = 0;
    o.db = -1;
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    o.db = 0;
    o.user = "alice";
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "alice"));
    o.user = NULL;
    o.command_timeout_ms = -5;
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    o.command_timeout_ms = 0;
    o.backoff_base_ms = 1000;
    o.backoff_max_ms = 10;
    ck_assert_ptr_null(core_redis_new(&o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "backoff"));
    ck_assert_ptr_null(core_redis_new(&o, NULL, 0));

    memset(&o, 0, sizeof(o)); /* all defaults */
    o.metrics = core_metrics_new();
    r = core_redis_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    ck_assert(!core_redis_connected(r));
    ck_assert_ptr_null(core_redis_command_argv(r, 0, argv, NULL, err, sizeof(err)));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_INVALID);
    ck_assert_ptr_null(core_redis_command_argv(r, 1, NULL, NULL, err, sizeof(err)));
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), NULL));
    ck_assert_int_eq(core_redis_append_argv(r, 0, argv, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_append_argv(r, -3, argv, NULL), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_append_argv(NULL, 1, argv, NULL), CORE_ERR_INVALID);
    ck_assert_uint_eq(core_redis_pending(r), 0);
    core_redis_free(r);
    core_metrics_free(o.metrics);

    ck_assert(!core_redis_connected(NULL));
    ck_assert_int_eq(core_redis_connect(NULL, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_int_eq(core_redis_ensure(NULL, 0, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_ptr_null(core_redis_command(NULL, err, sizeof(err), "PING"));
    ck_assert_int_eq(core_redis_pipeline_exec(NULL, NULL, NULL, err, sizeof(err)),
                     CORE_ERR_INVALID);
    core_redis_replies_free(NULL, 3);
    core_redis_disconnect(NULL);
    core_redis_free(NULL);
}
END_TEST

/* A fake server: answers the k-th read on its one connection with
 * replies[k], then closes. */
typedef struct fake {
    int lfd, port;
    const char *const *replies;
    int n;
    pthread_t th;
} fake_t;

static void *fake_run(void *arg)
{
    fake_t *f = arg;
    struct pollfd p = { f->lfd, POLLIN, 0 };
    char buf[4096];
    int fd, k;

    if (poll(&p, 1, 10000) <= 0)
        return NULL;
    fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (k = 0; k < f->n; k++) {
        struct pollfd q = { fd, POLLIN, 0 };

        if (poll(&q, 1, 10000) <= 0 || read(fd, buf, sizeof(buf)) <= 0)
            break;
        if (write(fd, f->replies[k], strlen(f->replies[k])) < 0)
            break;
    }
    /* wait for the client to hang up, so no reply is cut short */
    struct pollfd q = { fd, POLLIN, 0 };
    while (poll(&q, 1, 10000) > 0 && read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
    return NULL;
}

static void fake_start(fake_t *f, const char *const *replies, int n)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    f->replies = replies;
    f->n = n;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 1), 0);
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void fake_stop(fake_t *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static core_redis_t *fake_client(fake_t *f, core_metrics_t *m)
{
    char err[256];
    core_redis_opts o;

    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = f->port;
    o.command_timeout_ms = 3000;
    o.metrics = m;
    return core_redis_new(&o, err, sizeof(err));
}

START_TEST(test_busy_replies)
{
    static const char *const replies[] = {
        "+PONG\r\n",
        "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
        "NOSAVE.\r\n",
        "-LOADING Redis is loading the dataset in memory\r\n",
        "-BUSYKEY Target key name already exists.\r\n",
        "-READONLY You can't write against a read only replica.\r\n",
    };
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    fake_t f;
    core_redis_t *r;
    redisReply *rep;

    fake_start(&f, replies, 5);
    r = fake_client(&f, m);
    ck_assert_msg(core_redis_connect(r, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "SET a b"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "BUSY"), "errstr: %s", err);
    ck_assert(core_redis_connected(r)); /* BUSY leaves the connection usable */
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "SET a b"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_ptr_nonnull(strstr(err, "LOADING"));
    rep = core_redis_command(r, err, sizeof(err), "RESTORE a 0 x"); /* BUSYKEY is not BUSY */
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ERROR);
    ck_assert_int_eq(core_redis_last_error(r), CORE_OK);
    freeReplyObject(rep);
    ck_assert_ptr_null(core_redis_command(r, err, sizeof(err), "SET a b"));
    ck_assert_int_eq(core_redis_last_error(r), CORE_ERR_TRANSIENT);
    ck_assert_ptr_nonnull(strstr(err, "READONLY"));
    ck_assert(!core_redis_connected(r)); /* a replica: go find the primary again */
    core_redis_free(r);
    fake_stop(&f);
    core_metrics_free(m);
}
END_TEST

START_TEST(test_handshake_replies)
{
    static const char *const loading[] = { "-LOADING Redis is loading the dataset\r\n" };
    static const char *const noauth[] = { "-NOAUTH Authentication required.\r\n" };
    static const char *const pipe_busy[] = { "+PONG\r\n", "+OK\r\n-BUSY running a script\r\n" };
    char err[512] = "";
    core_metrics_t *m = core_metrics_new();
    const char *argv[1] = { "PING" };
    redisReply **reps = NULL;
    size_t n = 0;
    fake_t f;
    core_redis_t *r;

    fake_start(&f, loading, 1);
    r = fake_client(&f, m);
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_TRANSIENT);
    ck_assert_msg(strstr(err, "LOADING"), "errstr: %s", err);
    core_redis_free(r);
    fake_stop(&f);

    fake_start(&f, noauth, 1);
    r = fake_client(&f, m);
    ck_assert_int_eq(core_redis_connect(r, err, sizeof(err)), CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "NOAUTH") && strstr(err, "password"), "errstr: %s", err);
    core_redis_free(r);
    fake_stop(&f);

    fake_start(&f, pipe_busy, 2);
    r = fake_client(&f, m);
    ck_assert_int_eq(core_redis_append_argv(r, 1, argv, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_append_argv(r, 1, argv, NULL), CORE_OK);
    ck_assert_int_eq(core_redis_pipeline_exec(r, &reps, &n, err, sizeof(err)),
                     CORE_ERR_TRANSIENT); /* connects lazily, then the BUSY reply */
    ck_assert_msg(strstr(err, "reply 2 of 2") && strstr(err, "BUSY"), "errstr: %s", err);
    ck_assert_ptr_null(reps);
    core_redis_free(r);
    fake_stop(&f);
    core_metrics_free(m);
}
END_TEST

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *real = tcase_create("real-server");
    TCase *offline = tcase_create("offline");

    tcase_add_unchecked_fixture(real, real_setup, real_teardown);
    tcase_set_timeout(real, 60);
    tcase_add_test(real, test_set_get);
    tcase_add_test(real, test_pipeline_1000);
    tcase_add_test(real, test_acl_auth);
    tcase_add_test(real, test_select_db);
    tcase_add_test(real, test_reconnect_after_kill);
    tcase_add_test(real, test_unreachable);
    tcase_add_test(real, test_scripts_noscript);
    tcase_add_test(real, test_evalsha_append_resp);
    tcase_add_test(real, test_pipelines_in_flight);
    tcase_add_test(real, test_big_value);
    tcase_add_test(real, test_command_timeout);
    suite_add_tcase(s, real);

    tcase_set_timeout(offline, 30);
    tcase_add_test(offline, test_bad_options);
    tcase_add_test(offline, test_busy_replies);
    tcase_add_test(offline, test_handshake_replies);
    suite_add_tcase(s, offline);
    return s;
}

int main(void)
{
    Suite *s[] = { redis_suite() };

    env_init();
    return tu_run(s, 1);
}
