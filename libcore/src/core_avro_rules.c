/* core_avro_rules.c — the shape of a dataset's rules file checked against its
 * schema at load: every rule's keys, its field path and the field's type. */
#include "core_avro_int.h"
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rules files -------------------------------------------------------- */

/* A dotted field path through records (and unions holding one record). */
static const struct avn *rule_field(const struct avn *rec, const char *path)
{
    char buf[256];
    char *save = NULL, *tok;
    const struct avn *n = rec;

    if (strlen(path) >= sizeof(buf))
        return NULL;
    memcpy(buf, path, strlen(path) + 1);
    for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        int fi;

        if (n->type == AVN_UNION) {
            const struct avn *r = NULL;
            size_t i;

            for (i = 0; i < n->nbranches; i++)
                if (n->branches[i]->type == AVN_RECORD)
                    r = n->branches[i];
            n = r;
        }
        if (!n || n->type != AVN_RECORD || (fi = core_avro_find_field_(n, tok)) < 0)
            return NULL;
        n = n->fields[fi].type;
    }
    return n;
}

bool core_avro_schema_path_num_type(const core_avro_schema_t *s, const char *path,
                                    core_avro_num_type *out)
{
    const struct avn *n = path ? rule_field(s->root, path) : NULL;

    memset(out, 0, sizeof(*out));
    if (!n)
        return false;
    if (n->type == AVN_UNION) {
        const struct avn *only = NULL;
        size_t i, other = 0;

        for (i = 0; i < n->nbranches; i++)
            if (n->branches[i]->type != AVN_NULL) {
                only = n->branches[i];
                other++;
            }
        if (other != 1)
            return true; /* several types: none to check against */
        n = only;
    }
    if (n->logical == AVL_DECIMAL) {
        out->kind = CORE_AVRO_NUM_DECIMAL;
        out->precision = n->precision;
        out->scale = n->scale;
    } else if (n->logical != AVL_NONE) {
        out->kind = CORE_AVRO_NUM_TIME;
    } else {
        switch (n->type) {
        case AVN_INT: out->kind = CORE_AVRO_NUM_INT; break;
        case AVN_LONG: out->kind = CORE_AVRO_NUM_LONG; break;
        case AVN_FLOAT: out->kind = CORE_AVRO_NUM_FLOAT; break;
        case AVN_DOUBLE: out->kind = CORE_AVRO_NUM_DOUBLE; break;
        case AVN_STRING: out->kind = CORE_AVRO_NUM_STRING; break;
        default: break;
        }
    }
    return true;
}

/* One rule's shape: an object whose "field" names a path of the schema.
 * What its other keys say is the business of the program that applies the
 * rules (svc-validator registers its check: core_avro_catalog_load_checked()). */
static int check_rule_shape(const core_avro_schema_t *s, const char *file, const cJSON *r,
                            size_t idx, char *errstr, size_t errstr_size)
{
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(r, "field");

    if (!cJSON_IsObject(r) || !cJSON_IsString(field)) {
        core_errstr(errstr, errstr_size, "%s: rule %zu needs a \"field\"", file, idx);
        return -1;
    }
    if (!rule_field(s->root, field->valuestring)) {
        core_errstr(errstr, errstr_size, "%s: rule %zu: field '%s' is not in schema %s",
                    file, idx, field->valuestring, s->name);
        return -1;
    }
    return 0;
}

int core_avro_rules_check_(const core_avro_schema_t *s, const char *file, const cJSON *rj,
                                  char *errstr, size_t errstr_size)
{
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(rj, "dataset");
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(rj, "rules");
    const cJSON *k, *r;
    size_t i = 0;

    if (!cJSON_IsObject(rj)) {
        core_errstr(errstr, errstr_size, "%s: must be a JSON object", file);
        return -1;
    }
    cJSON_ArrayForEach(k, rj)
        if (strcmp(k->string, "dataset") != 0 && strcmp(k->string, "rules") != 0 &&
            strcmp(k->string, "doc") != 0) {
            core_errstr(errstr, errstr_size, "%s: unknown key \"%s\"", file, k->string);
            return -1;
        }
    if (!cJSON_IsString(ds) || strcmp(ds->valuestring, s->dataset) != 0) {
        core_errstr(errstr, errstr_size, "%s: \"dataset\" must be \"%s\"", file, s->dataset);
        return -1;
    }
    if (!cJSON_IsArray(rules)) {
        core_errstr(errstr, errstr_size, "%s: \"rules\" must be an array", file);
        return -1;
    }
    cJSON_ArrayForEach(r, rules)
        if (check_rule_shape(s, file, r, i++, errstr, errstr_size) != 0)
            return -1;
    return 0;
}
