/* core_redis_config.c — the redis.* settings every service that talks to
 * Redis takes (core_redis.h: CORE_REDIS_CONFIG_KEYS), turned into a handle
 * with the checks between keys named after the keys. */
#include "tributary/core_redis.h"

#include <stdio.h>
#include <string.h>

void core_redis_config_opts(const core_redis_config *c, core_redis_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = c->host;
    o->port = (int)c->port;
    o->user = c->user && *c->user ? c->user : NULL;
    o->password = c->password && *c->password ? c->password : NULL;
    o->db = (int)c->db;
    o->connect_timeout_ms = (int)c->connect_timeout_ms;
    o->command_timeout_ms = (int)c->command_timeout_ms;
    o->backoff_base_ms = (int)c->backoff_base_ms;
    o->backoff_max_ms = (int)c->backoff_max_ms;
}

core_redis_t *core_redis_config_new(const core_redis_config *c, core_metrics_t *metrics,
                                    char *errstr, size_t errstr_size)
{
    core_redis_opts o;

    core_redis_config_opts(c, &o);
    o.metrics = metrics;
    if (o.user && !o.password) {
        core_errstr(errstr, errstr_size, "redis.user: \"%s\" needs redis.password", o.user);
        return NULL;
    }
    if (c->backoff_base_ms > c->backoff_max_ms) {
        core_errstr(errstr, errstr_size,
                    "redis.backoff.base.ms: %lld exceeds redis.backoff.max.ms (%lld)",
                    (long long)c->backoff_base_ms, (long long)c->backoff_max_ms);
        return NULL;
    }
    return core_redis_new(&o, errstr, errstr_size);
}

void core_redis_config_address(const core_redis_config *c, char *buf, size_t size)
{
    const char *host = c->host && *c->host ? c->host : "127.0.0.1";

    if (host[0] == '/')
        snprintf(buf, size, "%s", host);
    else if (strchr(host, ':'))
        snprintf(buf, size, "[%s]:%lld", host, (long long)c->port);
    else
        snprintf(buf, size, "%s:%lld", host, (long long)c->port);
}

const char *core_redis_config_refused_key(const core_redis_config *c, const char *err)
{
    if (err && strstr(err, "SELECT"))
        return "redis.db";
    return c->user && *c->user ? "redis.user / redis.password" : "redis.password";
}
