/* core_redis_script.c — Lua scripts of a core_redis handle (core_redis.h):
 * the SHA1, SCRIPT LOAD on every connect, EVALSHA now or appended to a
 * pipeline, re-load and re-run on NOSCRIPT. */
#include "core_redis_int.h"
#include "tributary/core_log.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            redisReply *rep = redis_roundtrip(r, cmd, (size_t)len, err, sizeof(err));

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
        redis_fail(r, CORE_ERR_INVALID, errstr, errstr_size, "EVALSHA: script missing or bound to "
                   "another handle");
        return NULL;
    }
    len = format_evalsha(s, numkeys, argc, argv, argvlen, &cmd);
    if (len < 0) {
        redis_fail(r, (core_err_t)len, errstr, errstr_size,
                   "EVALSHA: bad arguments (numkeys %d, argc %d) or out of memory", numkeys, argc);
        return NULL;
    }
    if (redis_command_ready(r, errstr, errstr_size) != CORE_OK) {
        redisFreeCommand(cmd);
        return NULL;
    }
    rep = redis_roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
    if (rep && redis_error_word_is(rep, "NOSCRIPT")) {
        char *load = NULL;
        const char *lav[3] = { "SCRIPT", "LOAD", s->lua };
        int llen = redisFormatCommandArgv(&load, 3, lav, NULL);
        redisReply *lrep;

        freeReplyObject(rep);
        rep = NULL;
        if (llen <= 0 || !load) {
            redis_fail(r, CORE_ERR_NOMEM, errstr, errstr_size, "SCRIPT LOAD: out of memory");
        } else {
            lrep = redis_roundtrip(r, load, (size_t)llen, errstr, errstr_size);
            redisFreeCommand(load);
            if (lrep && lrep->type == REDIS_REPLY_ERROR)
                rep = lrep; /* the script itself is refused: give the caller why */
            else if (lrep) {
                freeReplyObject(lrep);
                rep = redis_roundtrip(r, cmd, (size_t)len, errstr, errstr_size);
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
    return redis_pending_push(r, cmd, (size_t)len, s);
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
    return redis_pending_push(r, cmd, (size_t)hl + len, s);
}
