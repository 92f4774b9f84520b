/* rules_file.c — what svc-validator checks in a rules file when the
 * catalogue loads it (registered with core_avro_catalog_load_checked()):
 * every key of every rule known, and of the form proto/README.md gives.
 * libcore checks only the shape (dataset, rules, each rule's field). */
#include "rules.h"

#include "tributary/core_common.h"
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <regex.h>
#include <stdint.h>
#include <string.h>

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* An integer in [lo, hi], exactly from its text (or a cJSON double below 2^53). */
static bool int_in(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    return core_json_int_get(j, lo, hi, out);
}

/* A number, or its text (a raw number, a decimal string), read exactly. */
static bool json_number_like(const cJSON *j)
{
    core_number n;

    if (cJSON_IsNumber(j))
        return true;
    return (cJSON_IsRaw(j) || cJSON_IsString(j)) &&
           core_number_parse(j->valuestring, &n) == CORE_OK;
}

/* Rule r (index idx) of file: known keys, each of the form proto/README.md
 * gives. Longer than most (about 130 lines) for a reason: one branch per
 * key of the format, in the order the README lists them. */
static int check_rule(const core_avro_schema_t *s, const char *file, const cJSON *r,
                      size_t idx, char *errstr, size_t errstr_size)
{
    static const char *const keys[] = {
        "field", "required", "type", "pattern", "min", "max", "length", "enum",
        "check", "external", "doc", "message",
    };
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(r, "field");
    const cJSON *k;
    int constraints = 0;
    const char *fname;
    core_avro_num_type t;

    /* libcore checked the shape: an object whose field is in the schema */
    if (!cJSON_IsObject(r) || !cJSON_IsString(field) ||
        !core_avro_schema_path_num_type(s, field->valuestring, &t)) {
        core_errstr(errstr, errstr_size, "%s: rule %zu needs a \"field\" of the schema", file,
                    idx);
        return -1;
    }
    fname = field->valuestring;
    cJSON_ArrayForEach(k, r) {
        const char *key = k->string;

        if (!in_list(key, keys, CORE_ARRAY_SIZE(keys))) {
            core_errstr(errstr, errstr_size, "%s: rule %zu (%s): unknown key \"%s\"",
                        file, idx, fname, key);
            return -1;
        }
        if (strcmp(key, "field") == 0)
            continue;
        if (strcmp(key, "doc") == 0 || strcmp(key, "message") == 0) {
            if (!cJSON_IsString(k))
                goto bad;
            continue;
        }
        constraints++;
        if (strcmp(key, "required") == 0) {
            if (!cJSON_IsBool(k))
                goto bad;
        } else if (strcmp(key, "type") == 0) {
            if (!cJSON_IsString(k) || !in_list(k->valuestring, vrules_types, vrules_ntypes))
                goto bad;
        } else if (strcmp(key, "check") == 0) {
            if (!cJSON_IsString(k) || !in_list(k->valuestring, vrules_checks, vrules_nchecks))
                goto bad;
        } else if (strcmp(key, "pattern") == 0) {
            regex_t re;
            int rc;

            if (!cJSON_IsString(k))
                goto bad;
            rc = regcomp(&re, k->valuestring, REG_EXTENDED | REG_NOSUB);
            if (rc != 0) {
                char msg[128];

                regerror(rc, &re, msg, sizeof(msg));
                core_errstr(errstr, errstr_size, "%s: rule %zu (%s): pattern: %s",
                            file, idx, fname, msg);
                return -1;
            }
            regfree(&re);
        } else if (strcmp(key, "min") == 0 || strcmp(key, "max") == 0) {
            if (!json_number_like(k))
                goto bad;
        } else if (strcmp(key, "length") == 0) {
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(k, "min");
            const cJSON *mx = cJSON_GetObjectItemCaseSensitive(k, "max");
            int64_t a = 0, b = INT64_MAX;

            if (!cJSON_IsObject(k) || (!mn && !mx) ||
                (mn && !int_in(mn, 0, INT32_MAX, &a)) ||
                (mx && !int_in(mx, 0, INT32_MAX, &b)) || a > b ||
                cJSON_GetArraySize(k) != (mn != NULL) + (mx != NULL))
                goto bad;
        } else if (strcmp(key, "enum") == 0) {
            const cJSON *e;

            if (!cJSON_IsArray(k) || cJSON_GetArraySize(k) == 0)
                goto bad;
            cJSON_ArrayForEach(e, k)
                if (!cJSON_IsString(e) && !(cJSON_IsRaw(e) && json_number_like(e)) &&
                    !cJSON_IsNumber(e))
                    goto bad;
        } else if (strcmp(key, "external") == 0) {
            const cJSON *e;
            const cJSON *url = cJSON_GetObjectItemCaseSensitive(k, "url");

            if (!cJSON_IsObject(k) || !cJSON_IsString(url) ||
                (strncmp(url->valuestring, "http://", 7) != 0 &&
                 strncmp(url->valuestring, "https://", 8) != 0))
                goto bad;
            cJSON_ArrayForEach(e, k) {
                int64_t v;

                if (strcmp(e->string, "url") == 0)
                    continue;
                if (strcmp(e->string, "cache_ttl_s") == 0 ||
                    strcmp(e->string, "negative_ttl_s") == 0) {
                    if (!int_in(e, 0, INT32_MAX, &v))
                        goto bad;
                } else if (strcmp(e->string, "timeout_ms") == 0) {
                    if (!int_in(e, 1, INT32_MAX, &v))
                        goto bad;
                } else if (strcmp(e->string, "method") == 0) {
                    if (!cJSON_IsString(e) || (strcmp(e->valuestring, "GET") != 0 &&
                                               strcmp(e->valuestring, "POST") != 0))
                        goto bad;
                } else {
                    goto bad;
                }
            }
        }
        continue;
bad:
        core_errstr(errstr, errstr_size, "%s: rule %zu (%s): invalid \"%s\" (see proto/README.md)",
                    file, idx, fname, key);
        return -1;
    }
    if (constraints == 0) {
        core_errstr(errstr, errstr_size, "%s: rule %zu (%s) has no constraint", file,
                    idx, fname);
        return -1;
    }
    return 0;
}

int vrules_file_check(const core_avro_schema_t *schema, const char *file, const cJSON *rules,
                      char *errstr, size_t errstr_size)
{
    const cJSON *r;
    size_t i = 0;

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(rules, "rules"))
        if (check_rule(schema, file, r, i++, errstr, errstr_size) != 0)
            return -1;
    return 0;
}
