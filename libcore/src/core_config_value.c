/* core_config_value.c — one key's text parsed into its destination: bools,
 * enums, lists, integers and numbers in their range, sizes and durations;
 * the error names the key (core_config.h). */
#include "core_config_int.h"
#include "tributary/core_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *core_config_source_name_(enum cfg_source src)
{
    static const char *const names[] = { NULL, "default", "file", "env", "flag" };

    return names[src];
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "true", "yes", "on", "1" };
    static const char *no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool enum_has(const char *choices, const char *v)
{
    size_t vlen = strlen(v);

    for (const char *p = choices; p && *p; ) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, v, len) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int parse_list(const char *v, core_cfg_list *out)
{
    char *copy = strdup(v), *save = NULL, *tok;

    if (!copy)
        return CORE_ERR_NOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = core_config_trim_(tok), **grown;
        if (!*t)
            continue;
        grown = realloc(out->v, (out->n + 1) * sizeof(*grown));
        if (!grown || !(grown[out->n] = strdup(t))) {
            if (grown)
                out->v = grown;
            free(copy);
            return CORE_ERR_NOMEM;
        }
        out->v = grown;
        out->n++;
    }
    free(copy);
    return CORE_OK;
}

/* Convert an entry's text into its typed field. */

/* Whether n lies in [lo, hi] (the table's bounds, doubles), compared as
 * integers: (double)n would round n past 2^53 and let 2^53 + 1 through a
 * maximum of 2^53. */
static bool int_in_range(long long n, double lo, double hi)
{
    if (lo > -9223372036854775808.0) {
        if (lo >= 9223372036854775808.0 || n < (long long)ceil(lo))
            return false;
    }
    if (hi < 9223372036854775808.0) {
        if (hi < -9223372036854775808.0 || n > (long long)floor(hi))
            return false;
    }
    return true;
}

int core_config_fill_entry_(struct cfg_entry *e, char *errstr, size_t errstr_size)
{
    const core_config_key *d = e->decl;
    char *field = (char *)e->dst + d->offset;
    const char *v = e->value;
    const char *from = core_config_source_name_(e->source) ? core_config_source_name_(e->source) : "unset";

    if (!v) {
        if (d->flags & CORE_CFG_REQUIRED) {
            char env[256];
            core_config_env_name(d->key, env, sizeof(env));
            core_errstr(errstr, errstr_size,
                        "%s: required key is not set (flag --%s, environment %s or config file)",
                        d->key, d->key, env);
            return CORE_EX_CONFIG;
        }
    }
    switch (d->type) {
    case CORE_CFG_STR:
        *(char **)field = e->value;
        break;
    case CORE_CFG_ENUM:
        if (v && !enum_has(d->choices, v)) {
            core_errstr(errstr, errstr_size, "%s: invalid value '%s' (from %s): expected one of %s",
                        d->key, v, from, d->choices);
            return CORE_EX_CONFIG;
        }
        *(char **)field = e->value;
        break;
    case CORE_CFG_INT: {
        char *end;
        long long n = 0;
        if (v) {
            errno = 0;
            n = strtoll(v, &end, 10);
            if (errno || end == v || *core_config_trim_(end) != '\0') {
                core_errstr(errstr, errstr_size, "%s: invalid value '%s' (from %s): expected an integer",
                            d->key, v, from);
                return CORE_EX_CONFIG;
            }
            if (d->min < d->max && !int_in_range(n, d->min, d->max)) {
                core_errstr(errstr, errstr_size, "%s: value %lld (from %s) out of range [%.0f, %.0f]",
                            d->key, n, from, d->min, d->max);
                return CORE_EX_CONFIG;
            }
        }
        *(int64_t *)field = n;
        break;
    }
    case CORE_CFG_DOUBLE: {
        char *end;
        double x = 0;
        if (v) {
            errno = 0;
            x = strtod(v, &end);
            if (errno || end == v || *core_config_trim_(end) != '\0' || !isfinite(x)) {
                core_errstr(errstr, errstr_size, "%s: invalid value '%s' (from %s): expected a number",
                            d->key, v, from);
                return CORE_EX_CONFIG;
            }
            if (d->min < d->max && (x < d->min || x > d->max)) {
                core_errstr(errstr, errstr_size, "%s: value %g (from %s) out of range [%g, %g]",
                            d->key, x, from, d->min, d->max);
                return CORE_EX_CONFIG;
            }
        }
        *(double *)field = x;
        break;
    }
    case CORE_CFG_BOOL: {
        bool b = false;
        if (v && !parse_bool(v, &b)) {
            core_errstr(errstr, errstr_size, "%s: invalid value '%s' (from %s): expected true or false",
                        d->key, v, from);
            return CORE_EX_CONFIG;
        }
        *(bool *)field = b;
        break;
    }
    case CORE_CFG_LIST:
        core_config_list_clear_(&e->list);
        if (v && parse_list(v, &e->list) != CORE_OK) {
            core_errstr(errstr, errstr_size, "%s: out of memory", d->key);
            return CORE_EX_CONFIG;
        }
        *(core_cfg_list *)field = e->list;
        break;
    }
    return 0;
}
