/* core_redis.h — one synchronous Redis connection (hiredis 0.14.1) with
 * reconnection, backoff, pipelining and cached Lua scripts.
 *
 * Connection model: core_redis_new() only checks and copies the options; no
 * I/O. The connection is made by core_redis_connect(), core_redis_ensure(),
 * or lazily by the first command or pipeline_exec on a handle that is not
 * connected (one attempt, no backoff). After an I/O error or a timeout the
 * hiredis context is unusable, so it is dropped at once: the call returns
 * CORE_ERR_TRANSIENT and the handle is not connected until the next
 * connect / ensure / command. A connection the server closed is noticed by
 * the next command only.
 *
 * Error classes: unreachable, I/O errors, timeouts and the server's "busy"
 * replies (BUSY, LOADING, MASTERDOWN, TRYAGAIN, OOM, READONLY) are
 * CORE_ERR_TRANSIENT: back off and retry. A refused AUTH (WRONGPASS,
 * NOAUTH), a refused SELECT or any other error reply during the connection
 * handshake is CORE_ERR_INVALID: a configuration problem that retrying
 * cannot fix. Other error replies to commands (WRONGTYPE, ERR ...) are
 * returned as REDIS_REPLY_ERROR replies for the caller to judge.
 *
 * SIGPIPE: writes run with SIGPIPE blocked in the calling thread, so a
 * connection the server closed gives an error, never kills the process.
 *
 * TLS: hiredis 0.14.1 has none. For TLS to Redis put a TLS proxy (stunnel,
 * a sidecar) in front and point host/port at it. No Redis Cluster support.
 *
 * Threads: a handle and its scripts are used by one thread at a time (hiredis
 * contexts are not thread-safe); give each thread its own handle.
 *
 * Metrics (opts.metrics or core_metrics_global()):
 *   tributary_redis_roundtrip_seconds{op="command"|"pipeline"|"connect"}
 *   tributary_redis_reconnects_total        connections made after the first
 *   tributary_redis_errors_total{kind="connect"|"io"|"timeout"|"busy"|"auth"}
 */
#ifndef TRIBUTARY_CORE_REDIS_H
#define TRIBUTARY_CORE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "tributary/core_common.h"
#include "tributary/core_config.h"
#include "tributary/core_metrics.h"

typedef struct core_redis core_redis_t;
typedef struct core_redis_script core_redis_script_t;

typedef struct core_redis_opts {
    const char *host;          /* name or address; "/path" = unix socket; NULL = 127.0.0.1 */
    int port;                  /* 0 = 6379 */
    const char *user;          /* ACL user or NULL (needs password) */
    const char *password;      /* NULL = no AUTH */
    int db;                    /* SELECT db when not 0 */
    int connect_timeout_ms;    /* 0 = 2000 */
    int command_timeout_ms;    /* 0 = 5000; covers each write and read */
    int backoff_base_ms;       /* 0 = 100: first reconnect delay (before jitter) */
    int backoff_max_ms;        /* 0 = 5000: cap of the doubling delay */
    core_metrics_t *metrics;   /* NULL = core_metrics_global(); must outlive the handle */
} core_redis_opts;

/**
 * @brief Check and copy the options (strings included). No I/O.
 * @returns the handle, or NULL with errstr for bad options (negative port,
 * user without password, base > max ...) or out of memory.
 */
core_redis_t *core_redis_new(const core_redis_opts *o, char *errstr, size_t errstr_size);

/* Drops the connection and frees the handle and every script still bound to
 * it. NULL ok. */
void core_redis_free(core_redis_t *r);

/**
 * @brief Connect now (dropping any current connection and anything appended
 * to the pipeline): TCP/unix connect, AUTH (user+password: AUTH user pass;
 * password only: AUTH pass), SELECT db, then SCRIPT LOAD of every script.
 * Without AUTH or SELECT a PING checks the server answers.
 * @returns CORE_OK; CORE_ERR_TRANSIENT (unreachable, timeout, server
 * loading/busy), CORE_ERR_INVALID (credentials refused, NOAUTH, bad db),
 * CORE_ERR_NOMEM; errstr names host:port and the reason.
 */
int core_redis_connect(core_redis_t *r, char *errstr, size_t errstr_size);

/**
 * @brief Make sure the handle is connected: returns at once when it is;
 * otherwise connects, retrying after exponential backoff with jitter
 * (backoff_base_ms doubling to backoff_max_ms, each delay drawn from
 * [d/2, d]) until it succeeds or deadline_ms (core_mono_ms() clock) passes.
 * Each attempt's connect timeout is cut to the time left. Always tries at
 * least once. Stops early on CORE_ERR_INVALID (retrying cannot help).
 * @returns CORE_OK, CORE_ERR_TRANSIENT with the last error and the number of
 * attempts in errstr, CORE_ERR_INVALID, CORE_ERR_NOMEM.
 */
int core_redis_ensure(core_redis_t *r, int64_t deadline_ms, char *errstr, size_t errstr_size);

/* True when a context is open (no I/O: a connection the server closed is
 * noticed only by the next command). */
bool core_redis_connected(const core_redis_t *r);

/* Drop the connection (and anything appended) without freeing the handle. */
void core_redis_disconnect(core_redis_t *r);

/**
 * @brief Run one command (hiredis format: %s, %b with pointer + length,
 * %d, %lld ...). Connects first when not connected.
 * @returns the reply (free with freeReplyObject()), which may be a
 * REDIS_REPLY_ERROR; or NULL with errstr, the class in
 * core_redis_last_error(): CORE_ERR_TRANSIENT (I/O error, timeout, busy
 * reply, unreachable), CORE_ERR_INVALID (bad arguments, refused
 * credentials), CORE_ERR_STATE (commands appended and not yet executed),
 * CORE_ERR_NOMEM.
 */
redisReply *core_redis_command(core_redis_t *r, char *errstr, size_t errstr_size,
                               const char *fmt, ...);

/* Same with an argument vector (binary-safe; argvlen may be NULL for
 * NUL-terminated arguments). */
redisReply *core_redis_command_argv(core_redis_t *r, int argc, const char **argv,
                                    const size_t *argvlen, char *errstr, size_t errstr_size);

/* Class of the last failure of a command, exec, connect or ensure on this
 * handle (CORE_OK after a success). */
core_err_t core_redis_last_error(const core_redis_t *r);

/* ---- pipelining ------------------------------------------------------------
 * Append commands (formatted and kept by the handle: no I/O, works while
 * disconnected), then execute them in one round trip. Whatever
 * pipeline_exec returns, the appended commands are gone afterwards: on an
 * error, append the batch again to retry it. */

/* @returns CORE_OK; CORE_ERR_INVALID (argc < 1, NULL argv); CORE_ERR_NOMEM. */
int core_redis_append_argv(core_redis_t *r, int argc, const char **argv,
                           const size_t *argvlen);

/* Number of commands appended and not yet executed. */
size_t core_redis_pending(const core_redis_t *r);

/**
 * @brief Send every appended command and read exactly as many replies, in
 * order, into a malloc'd array (*replies, *n; free with
 * core_redis_replies_free). replies may be NULL to discard them (then an
 * error reply goes unnoticed: only for fire-and-forget). Connects first when
 * not connected. EVALSHA commands that got NOSCRIPT are re-run after SCRIPT
 * LOAD (see core_redis_evalsha_append). Nothing appended: CORE_OK, *n = 0.
 * @returns CORE_OK; CORE_ERR_TRANSIENT on an I/O error, timeout, or a busy
 * reply to any command (the replies read so far are freed; *replies = NULL,
 * *n = 0); CORE_ERR_INVALID / CORE_ERR_NOMEM as core_redis_connect.
 */
int core_redis_pipeline_exec(core_redis_t *r, redisReply ***replies, size_t *n,
                             char *errstr, size_t errstr_size);

/* ---- pipelines in flight ---------------------------------------------------
 * For overlapping the caller's work with the server's: send a pipeline now,
 * read its replies later; several may be in flight on one connection, their
 * replies come back in the order sent.
 *
 *   append ... ; core_redis_pipeline_send()   (group 1 in flight)
 *   append ... ; core_redis_pipeline_send()   (group 2 in flight)
 *   core_redis_pipeline_recv()                (the replies of group 1)
 *
 * A command, core_redis_pipeline_exec() or a NOSCRIPT re-run while groups
 * are in flight first reads their replies off the socket and keeps them for
 * core_redis_pipeline_recv(); so mixing is allowed, but it waits for them.
 * When the connection is dropped (an I/O error or timeout on any call, a
 * READONLY reply, a busy reply in a group received while others are in
 * flight, core_redis_disconnect, a (re)connect), every group not yet
 * received is gone with it (core_redis_inflight() is 0): send them again
 * after reconnecting. Whether any of their commands ran is unknown. */

/**
 * @brief Send every appended command to the server now as one group,
 * without reading a reply. Connects first when not connected (a connect
 * drops nothing in flight: there is nothing when not connected).
 * @returns CORE_OK (the group is in flight; nothing appended any more);
 * CORE_ERR_TRANSIENT (connect or write failed: the connection and every
 * group are dropped, and so is what was appended); CORE_ERR_INVALID /
 * CORE_ERR_NOMEM. Nothing appended: CORE_OK and no group.
 */
int core_redis_pipeline_send(core_redis_t *r, char *errstr, size_t errstr_size);

/* Number of groups sent and not yet received. */
size_t core_redis_inflight(const core_redis_t *r);

/**
 * @brief Read the replies of the oldest group in flight, as
 * core_redis_pipeline_exec does (NOSCRIPT re-run included: after the groups
 * sent since, which are read first).
 * @returns CORE_OK with *replies / *n (replies may be NULL to discard);
 * CORE_ERR_TRANSIENT (I/O error, timeout: the connection and every group are
 * gone; a busy reply: this group is gone, and so is every other one when
 * others were in flight); CORE_ERR_STATE (no group in flight);
 * CORE_ERR_NOMEM.
 */
int core_redis_pipeline_recv(core_redis_t *r, redisReply ***replies, size_t *n,
                             char *errstr, size_t errstr_size);

/* Free n replies and the array; NULL ok. */
void core_redis_replies_free(redisReply **replies, size_t n);

/* ---- Lua scripts (EVALSHA with a cached SHA1) ----------------------------- */

/**
 * @brief Register a Lua script with the handle: its SHA1 is computed here,
 * it is loaded (SCRIPT LOAD) on every connect and reconnect, and at once when
 * the handle is connected now. The script belongs to the handle: free it with
 * core_redis_script_free() or let core_redis_free() do it.
 * @returns NULL on NULL arguments or out of memory.
 */
core_redis_script_t *core_redis_script_new(core_redis_t *r, const char *lua);

/* Unbind and free; NULL ok. Must not be called after core_redis_free(). */
void core_redis_script_free(core_redis_script_t *s);

/* The script's SHA1, 40 lower-case hex digits. */
const char *core_redis_script_sha(const core_redis_script_t *s);

/**
 * @brief EVALSHA sha numkeys argv... : argv holds the numkeys keys, then the
 * other arguments (argc in all; argvlen may be NULL). On NOSCRIPT (a SCRIPT
 * FLUSH, a failed-over server) the script is loaded again and the command
 * re-run, once; a script Redis refuses to load (a Lua syntax error) comes
 * back as the SCRIPT LOAD error reply.
 * @returns as core_redis_command_argv.
 */
redisReply *core_redis_evalsha(core_redis_t *r, core_redis_script_t *s, int numkeys, int argc,
                               const char **argv, const size_t *argvlen, char *errstr,
                               size_t errstr_size);

/**
 * @brief Append EVALSHA to the pipeline. When pipeline_exec finds NOSCRIPT
 * replies, it loads the scripts and re-runs those commands in their original
 * order, after the rest of the pipeline: among themselves they keep their
 * order, but not relative to other commands of the same pipeline that came
 * after them. Safe for version-guarded writes; do not mix other writes to the
 * same keys into such a pipeline.
 * @returns as core_redis_append_argv (CORE_ERR_INVALID when numkeys is
 * negative or greater than argc).
 */
int core_redis_evalsha_append(core_redis_t *r, core_redis_script_t *s, int numkeys, int argc,
                              const char **argv, const size_t *argvlen);

/**
 * @brief Append EVALSHA with arguments already in RESP form: resp holds
 * nargs bulk strings ("$3\r\nfoo\r\n" each): numkeys, the keys, then the
 * other arguments. For callers that build large argument lists in a reused
 * buffer: no argv arrays, one copy. resp is copied (the caller keeps it).
 * The bytes are not parsed: a malformed resp makes the server refuse the
 * command or the connection (a protocol error), so build it carefully.
 * NOSCRIPT handling as core_redis_evalsha_append.
 * @returns CORE_OK; CORE_ERR_INVALID (no handle, script bound elsewhere,
 * nargs < 1, resp NULL); CORE_ERR_NOMEM.
 */
int core_redis_evalsha_append_resp(core_redis_t *r, core_redis_script_t *s, int nargs,
                                   const char *resp, size_t len);

/* ---- the Redis settings of a service -----------------------------------------
 * Declared once here, taken by every service that talks to Redis: its key
 * table includes CORE_REDIS_CONFIG_KEYS(its conf struct, its
 * core_redis_config member), so the keys, defaults, ranges and help are the
 * same everywhere:
 *
 *   redis.host                "127.0.0.1"  name, address or /path of a unix socket
 *   redis.port                6379         1..65535
 *   redis.user                none         ACL user (needs redis.password)
 *   redis.password            none         secret; redis.password_file /
 *                                          TB_REDIS_PASSWORD_FILE read it from a file
 *   redis.db                  0            0..65535 (SELECT)
 *   redis.connect.timeout.ms  2000         1..600000
 *   redis.command.timeout.ms  5000         1..600000, each write and read
 *   redis.backoff.base.ms     100          1..600000, first reconnect delay
 *   redis.backoff.max.ms      5000         1..600000, its cap (>= base)
 */
typedef struct core_redis_config {
    char *host;
    int64_t port;
    char *user;
    char *password;
    int64_t db;
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
} core_redis_config;

#define CORE_REDIS_CFG_KEY_(key, type, def, flags, type_, member, f, help, lo, hi)            \
    { key, type, def, flags, offsetof(type_, member.f), help, lo, hi, NULL }
#define CORE_REDIS_CONFIG_KEYS(type_, member)                                                 \
    CORE_REDIS_CFG_KEY_("redis.host", CORE_CFG_STR, "127.0.0.1", 0, type_, member, host,      \
                        "Redis host name or address, or /path of a unix socket (no TLS: put " \
                        "a TLS proxy in front)", 0, 0),                                        \
    CORE_REDIS_CFG_KEY_("redis.port", CORE_CFG_INT, "6379", 0, type_, member, port,           \
                        "Redis port", 1, 65535),                                               \
    CORE_REDIS_CFG_KEY_("redis.user", CORE_CFG_STR, NULL, 0, type_, member, user,             \
                        "Redis ACL user (needs redis.password)", 0, 0),                        \
    CORE_REDIS_CFG_KEY_("redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, type_, member, \
                        password, "Redis AUTH password (or redis.password_file / "             \
                        "TB_REDIS_PASSWORD_FILE)", 0, 0),                                      \
    CORE_REDIS_CFG_KEY_("redis.db", CORE_CFG_INT, "0", 0, type_, member, db,                  \
                        "Redis database number (SELECT)", 0, 65535),                           \
    CORE_REDIS_CFG_KEY_("redis.connect.timeout.ms", CORE_CFG_INT, "2000", 0, type_, member,   \
                        connect_timeout_ms, "Timeout of one Redis connection attempt", 1,      \
                        600000),                                                               \
    CORE_REDIS_CFG_KEY_("redis.command.timeout.ms", CORE_CFG_INT, "5000", 0, type_, member,   \
                        command_timeout_ms, "Timeout of each write and read on the Redis "     \
                        "connection", 1, 600000),                                              \
    CORE_REDIS_CFG_KEY_("redis.backoff.base.ms", CORE_CFG_INT, "100", 0, type_, member,       \
                        backoff_base_ms, "First delay before reconnecting to Redis (doubles, " \
                        "with jitter)", 1, 600000),                                            \
    CORE_REDIS_CFG_KEY_("redis.backoff.max.ms", CORE_CFG_INT, "5000", 0, type_, member,       \
                        backoff_max_ms, "Cap of the Redis reconnect delay", 1, 600000)

/**
 * @brief The handle of a service's redis.* settings (no I/O): the checks
 * between keys name them (redis.user without redis.password,
 * redis.backoff.base.ms above redis.backoff.max.ms). metrics: as
 * core_redis_opts.metrics.
 * @returns the handle, or NULL with errstr.
 */
core_redis_t *core_redis_config_new(const core_redis_config *c, core_metrics_t *metrics,
                                    char *errstr, size_t errstr_size);

/* The settings as core_redis_opts (strings borrowed from c). */
void core_redis_config_opts(const core_redis_config *c, core_redis_opts *o);

/* "host:port" or the socket's path, for messages. */
void core_redis_config_address(const core_redis_config *c, char *buf, size_t size);

/* The key to name when the server refused the connection's handshake
 * (core_redis_connect's CORE_ERR_INVALID, its errstr err): "redis.db" for
 * a refused SELECT, else "redis.user / redis.password" or "redis.password". */
const char *core_redis_config_refused_key(const core_redis_config *c, const char *err);

#endif
