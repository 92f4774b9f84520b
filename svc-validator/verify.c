/* verify.c — external verification with a Redis cache (see verify.h). */
#include "verify.h"

#include "tributary/core_digest.h"
#include "tributary/core_httpc.h"
#include "tributary/core_log.h"
#include "tributary/core_metrics.h"
#include "tributary/core_redis.h"
#include "tributary/core_retry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256

typedef struct vbreaker {
    const vr_external *ext; /* identity of the rule */
    core_breaker_t *b;
} vbreaker;

struct verifier {
    core_redis_t *redis;
    vbreaker *breakers;
    size_t nbreakers;
    int breaker_failures;
    int breaker_open_ms;
    core_httpc_t *http;
    int timeout_ms;
    int64_t redis_retry_at; /* after a Redis failure, skip the cache until then */
    core_metric_family_t *f_hit, *f_miss, *f_lat, *f_calls;
};

verifier_t *verifier_new(const verifier_opts *o, char *errstr, size_t errstr_size)
{
    static const char *const l_ds[] = { "dataset", NULL };
    static const char *const l_dsf[] = { "dataset", "field", NULL };
    static const char *const l_call[] = { "dataset", "field", "result", NULL };
    core_metrics_t *m = core_metrics_global();
    verifier_t *v = calloc(1, sizeof(*v));
    static const core_redis_config defaults = { 0 };
    core_httpc_opts ho = { 0 };

    if (!v) {
        core_errstr(errstr, errstr_size, "verifier: out of memory");
        return NULL;
    }
    v->redis = core_redis_config_new(o->redis ? o->redis : &defaults, NULL, errstr, errstr_size);
    ho.max_concurrency = o->concurrency > 0 ? o->concurrency : 16;
    ho.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    ho.connect_timeout_ms = ho.timeout_ms < 2000 ? ho.timeout_ms : 2000;
    v->timeout_ms = ho.timeout_ms;
    v->breaker_failures = o->breaker_failures;
    v->breaker_open_ms = o->breaker_open_ms > 0 ? o->breaker_open_ms : 5000;
    if (v->redis)
        v->http = core_httpc_new(&ho, errstr, errstr_size);
    if (!v->redis || !v->http) {
        verifier_free(v);
        return NULL;
    }
    v->f_hit = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_validator_cache_hits_total",
                                   "External checks answered from the Redis cache", l_ds, NULL,
                                   0, NULL, 0);
    v->f_miss = core_metrics_family(m, CORE_METRIC_COUNTER,
                                    "tributary_validator_cache_misses_total",
                                    "External checks not in the cache (verifier called)", l_ds,
                                    NULL, 0, NULL, 0);
    v->f_lat = core_metrics_family(m, CORE_METRIC_HISTOGRAM,
                                   "tributary_validator_external_seconds",
                                   "Duration of external verifier calls", l_dsf, NULL, 0, NULL,
                                   0);
    v->f_calls = core_metrics_family(m, CORE_METRIC_COUNTER,
                                     "tributary_validator_external_calls_total",
                                     "External verifier calls by result (ok, refused, transient)",
                                     l_call, NULL, 0, NULL, 0);
    return v;
}

void verifier_free(verifier_t *v)
{
    if (!v)
        return;
    core_redis_free(v->redis);
    core_httpc_free(v->http);
    for (size_t i = 0; i < v->nbreakers; i++)
        core_breaker_free(v->breakers[i].b);
    free(v->breakers);
    free(v);
}

/* The breaker of an external rule, made on first use; NULL when disabled
 * (or out of memory: then calls are never held back). */
static core_breaker_t *breaker_of(verifier_t *v, const vv_item *it)
{
    char name[256];
    vbreaker *nb;

    if (v->breaker_failures <= 0)
        return NULL;
    for (size_t i = 0; i < v->nbreakers; i++)
        if (v->breakers[i].ext == it->ext)
            return v->breakers[i].b;
    nb = realloc(v->breakers, (v->nbreakers + 1) * sizeof(*nb));
    if (!nb)
        return NULL;
    v->breakers = nb;
    snprintf(name, sizeof(name), "verify:%s.%s", it->dataset, it->ext->field);
    nb[v->nbreakers].ext = it->ext;
    nb[v->nbreakers].b = core_breaker_new(name, v->breaker_failures, v->breaker_open_ms, 1);
    if (!nb[v->nbreakers].b)
        return NULL;
    return nb[v->nbreakers++].b;
}

static void hex16(const char *s, char *out /* 17 */, size_t nhex)
{
    core_digest d;
    char hex[CORE_DIGEST_HEX_LEN + 1];

    core_digest_sha256(s, strlen(s), &d);
    core_digest_to_hex(&d, hex);
    memcpy(out, hex, nhex);
    out[nhex] = '\0';
}

static void cache_key(const vv_item *it, char *key, size_t size)
{
    char hv[65], hu[17];

    hex16(it->value, hv, 64);
    hex16(it->url, hu, 16);
    snprintf(key, size, "tb:verify:%s:%s:%s:%s", it->dataset, it->ext->field, hv, hu);
}

static bool cache_usable(verifier_t *v)
{
    return core_mono_ms() >= v->redis_retry_at;
}

static void cache_failed(verifier_t *v, const char *err)
{
    if (cache_usable(v))
        core_log_warn("verification cache unavailable: calling verifiers directly",
                      CLF_S("reason", err));
    v->redis_retry_at = core_mono_ms() + 5000;
}

/* Longer than most (about 165 lines) for a reason: the three phases of one
 * batch's external checks (pipelined cache GETs, the HTTP calls of the
 * misses through one curl multi, the cache SETs of the answers) share the
 * batch's arrays and one cleanup path. */
void verifier_run(verifier_t *v, vv_item *items, size_t n)
{
    char errstr[256];
    char key[KEY_MAX];
    bool *hit;
    core_httpc_req *reqs = NULL;
    size_t *map = NULL, nreq = 0;

    if (n == 0)
        return;
    hit = calloc(n, sizeof(*hit));
    if (!hit)
        goto nomem;
    /* Fast path: one pipelined GET per item. */
    if (cache_usable(v)) {
        redisReply **rep = NULL;
        size_t nrep = 0;

        for (size_t i = 0; i < n; i++) {
            const char *argv[2] = { "GET", key };

            cache_key(&items[i], key, sizeof(key));
            core_redis_append_argv(v->redis, 2, argv, NULL);
        }
        if (core_redis_pipeline_exec(v->redis, &rep, &nrep, errstr, sizeof(errstr)) == CORE_OK) {
            for (size_t i = 0; i < n && i < nrep; i++) {
                redisReply *r = rep[i];

                if (r && r->type == REDIS_REPLY_STRING && r->len >= 1) {
                    hit[i] = true;
                    items[i].cached = true;
                    if (r->str[0] == '1') {
                        items[i].verdict = VV_OK;
                        items[i].status = 200;
                        items[i].reason[0] = '\0';
                    } else {
                        items[i].verdict = VV_INVALID;
                        items[i].status = atoi(r->str + (r->len > 2 ? 2 : r->len));
                        snprintf(items[i].reason, sizeof(items[i].reason), "%s",
                                 items[i].ext->message ? items[i].ext->message
                                                       : "refused by the verifier (cached)");
                    }
                }
            }
            core_redis_replies_free(rep, nrep);
        } else {
            cache_failed(v, errstr);
        }
    }
    reqs = calloc(n, sizeof(*reqs));
    map = calloc(n, sizeof(*map));
    if (!reqs || !map)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        core_metric_inc(core_metrics_series1(hit[i] ? v->f_hit : v->f_miss, items[i].dataset));
        if (hit[i])
            continue;
        {
            core_breaker_t *b = breaker_of(v, &items[i]);

            if (b && !core_breaker_allow(b, core_mono_ms())) {
                items[i].verdict = VV_TRANSIENT;
                items[i].status = 0;
                snprintf(items[i].reason, sizeof(items[i].reason),
                         "%s: verifier circuit open after repeated failures",
                         items[i].ext->field);
                core_metric_inc(core_metrics_series(v->f_calls, (const char *const[]){
                                                                    items[i].dataset,
                                                                    items[i].ext->field,
                                                                    "circuit_open", NULL }));
                continue;
            }
        }
        reqs[nreq].method = items[i].ext->method;
        reqs[nreq].url = items[i].url;
        reqs[nreq].timeout_ms = items[i].ext->timeout_ms;
        if (strcmp(items[i].ext->method, "POST") == 0) {
            reqs[nreq].body = "";
            reqs[nreq].body_len = 0;
        }
        map[nreq++] = i;
    }
    if (nreq > 0 && core_httpc_perform(v->http, reqs, nreq) != CORE_OK) {
        for (size_t k = 0; k < nreq; k++) {
            items[map[k]].verdict = VV_TRANSIENT;
            snprintf(items[map[k]].reason, sizeof(items[map[k]].reason),
                     "%s: verifier client failed", items[map[k]].ext->field);
        }
        nreq = 0;
    }
    for (size_t k = 0; k < nreq; k++) {
        vv_item *it = &items[map[k]];
        core_httpc_req *r = &reqs[k];
        const char *result;
        int ttl = 0;

        it->status = r->status;
        core_metric_observe(core_metrics_series2(v->f_lat, it->dataset, it->ext->field),
                            r->seconds);
        if (r->err != CORE_OK) {
            it->verdict = VV_TRANSIENT;
            snprintf(it->reason, sizeof(it->reason), "%s: verifier unreachable: %s",
                     it->ext->field, r->errstr);
        } else {
            core_err_t cls = core_httpc_status_class(r->status);

            if (cls == CORE_OK) {
                it->verdict = VV_OK;
                it->reason[0] = '\0';
                ttl = it->ext->cache_ttl_s;
            } else if (cls == CORE_ERR_TRANSIENT) {
                it->verdict = VV_TRANSIENT;
                snprintf(it->reason, sizeof(it->reason), "%s: verifier answered %d",
                         it->ext->field, r->status);
            } else {
                it->verdict = VV_INVALID;
                if (it->ext->message)
                    snprintf(it->reason, sizeof(it->reason), "%s", it->ext->message);
                else
                    snprintf(it->reason, sizeof(it->reason), "%s refused by the verifier (%d)",
                             it->ext->field, r->status);
                ttl = it->ext->negative_ttl_s;
            }
        }
        {
            core_breaker_t *b = breaker_of(v, it);

            if (b && it->verdict == VV_TRANSIENT)
                core_breaker_failure(b, core_mono_ms());
            else if (b)
                core_breaker_success(b, core_mono_ms());
        }
        result = it->verdict == VV_OK ? "ok" : it->verdict == VV_INVALID ? "refused" : "transient";
        core_metric_inc(core_metrics_series(v->f_calls, (const char *const[]){ it->dataset,
                                                        it->ext->field, result, NULL }));
        if (ttl > 0 && cache_usable(v)) {
            char val[16], ttls[16];
            const char *argv[5] = { "SET", key, val, "EX", ttls };

            cache_key(it, key, sizeof(key));
            if (it->verdict == VV_OK)
                snprintf(val, sizeof(val), "1");
            else
                snprintf(val, sizeof(val), "0:%d", r->status);
            snprintf(ttls, sizeof(ttls), "%d", ttl);
            core_redis_append_argv(v->redis, 5, argv, NULL);
        }
        core_httpc_req_clear(r);
    }
    if (core_redis_pending(v->redis) > 0 &&
        core_redis_pipeline_exec(v->redis, NULL, NULL, errstr, sizeof(errstr)) != CORE_OK)
        cache_failed(v, errstr);
    free(reqs);
    free(map);
    free(hit);
    return;
nomem:
    for (size_t i = 0; i < n; i++)
        if (!hit || !hit[i]) {
            items[i].verdict = VV_TRANSIENT;
            snprintf(items[i].reason, sizeof(items[i].reason), "out of memory");
        }
    free(reqs);
    free(map);
    free(hit);
}

core_err_t verifier_invalidate(verifier_t *v, const char *dataset, const char *field,
                               const char *value, size_t *deleted,
                               char *errstr, size_t errstr_size)
{
    char pattern[KEY_MAX], cursor[32] = "0";
    size_t total = 0;

    if (value) {
        char hv[65];

        hex16(value, hv, 64);
        snprintf(pattern, sizeof(pattern), "tb:verify:%s:%s:%s:*", dataset, field, hv);
    } else {
        snprintf(pattern, sizeof(pattern), "tb:verify:%s:%s:*", dataset, field);
    }
    do {
        redisReply *r = core_redis_command(v->redis, errstr, errstr_size,
                                           "SCAN %s MATCH %s COUNT 1000", cursor, pattern);

        if (!r)
            return CORE_ERR_TRANSIENT;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            core_errstr(errstr, errstr_size, "redis: unexpected SCAN reply");
            freeReplyObject(r);
            return CORE_ERR_INVALID;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *k = r->element[1]->element[i];
            redisReply *d = core_redis_command(v->redis, errstr, errstr_size, "DEL %b", k->str,
                                               (size_t)k->len);

            if (!d) {
                freeReplyObject(r);
                return CORE_ERR_TRANSIENT;
            }
            if (d->type == REDIS_REPLY_INTEGER)
                total += (size_t)d->integer;
            freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (deleted)
        *deleted = total;
    return CORE_OK;
}
