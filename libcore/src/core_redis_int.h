/* core_redis_int.h — what the files of libcore's Redis client share
 * (core_redis.c: helpers, connection, handle; core_redis_pipeline.c:
 * commands and pipelines; core_redis_script.c: Lua scripts). Not a public
 * header: the handle's struct and the internal helpers. Threads: as
 * core_redis.h (a handle belongs to one thread at a time). */
#ifndef TRIBUTARY_CORE_REDIS_INT_H
#define TRIBUTARY_CORE_REDIS_INT_H

#include "tributary/core_redis.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

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

/* Block SIGPIPE in this thread around socket writes: a write to a
 * connection the server closed then fails with EPIPE instead of killing the
 * process. A SIGPIPE raised meanwhile is consumed, unless one was already
 * pending before. */
typedef struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
} sigpipe_guard;

/* Fill errstr with "redis <addr>: <msg>", remember the class, return it. */
int redis_fail(core_redis_t *r, core_err_t err, char *errstr, size_t errstr_size,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void redis_sigpipe_block(sigpipe_guard *g);
void redis_sigpipe_unblock(sigpipe_guard *g);
/* The first word of an error reply equals word (BUSY, not BUSYKEY). */
bool redis_error_word_is(const redisReply *rep, const char *word);
/* Error replies that mean "the server cannot serve now" (*drop: reconnect). */
bool redis_transient_reply(const redisReply *rep, bool *drop);
/* Command name of a RESP-formatted command, for messages. */
void redis_cmd_name(const char *cmd, size_t len, char *out, size_t size);
void redis_group_free(group_t *g);
/* Drop the context and every group in flight. */
void redis_drop_connection(core_redis_t *r);
/* An I/O error or timeout of what: the connection is dropped, TRANSIENT. */
int redis_io_failure(core_redis_t *r, const char *what, char *errstr, size_t errstr_size);
/* Connect, AUTH, SELECT, SCRIPT LOAD within timeout_ms. */
int redis_connect_internal(core_redis_t *r, int timeout_ms, char *errstr, size_t errstr_size);
void redis_pending_clear(core_redis_t *r);
/* One command (RESP text) and its reply; NULL with errstr. */
redisReply *redis_roundtrip(core_redis_t *r, const char *cmd, size_t len, char *errstr,
                            size_t errstr_size);
/* Connected, nothing appended, nothing in flight left unread. */
int redis_command_ready(core_redis_t *r, char *errstr, size_t errstr_size);
/* Append a formatted command (taken) to the pipeline. */
int redis_pending_push(core_redis_t *r, char *cmd, size_t len, core_redis_script_t *s);

#endif
