/* core_avro_catalog.c — the schema catalogue: proto/ loaded and checked,
 * schemas by name, dataset and id, registry ids fetched and held. */
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

/* ---- catalogue ---------------------------------------------------------- */

const core_avro_schema_t *core_avro_catalog_find_name_(const core_avro_catalog_t *cat,
                                                   const char *fullname)
{
    size_t i;

    for (i = cat->n; i > 0; i--) /* the latest version */
        if (strcmp(cat->schemas[i - 1]->name, fullname) == 0)
            return cat->schemas[i - 1];
    return NULL;
}

void core_avro_catalog_free(core_avro_catalog_t *cat)
{
    size_t i;

    if (!cat)
        return;
    for (i = 0; i < cat->n; i++)
        core_avro_schema_free(cat->schemas[i]);
    free(cat->schemas);
    for (i = 0; i < cat->nfetched; i++)
        core_avro_schema_free(cat->fetched[i]);
    free(cat->fetched);
    if (cat->lock_init)
        pthread_mutex_destroy(&cat->lock);
    free(cat);
}

/* Append s (taking it) after the uniqueness checks; frees s on failure. */
static core_err_t catalog_append(core_avro_catalog_t *cat, core_avro_schema_t *s,
                                 char *errstr, size_t errstr_size)
{
    size_t i;

    for (i = 0; i < cat->n; i++) {
        const core_avro_schema_t *o = cat->schemas[i];
        bool same_ds = s->dataset && o->dataset && strcmp(o->dataset, s->dataset) == 0;

        if (o->id == s->id) {
            core_errstr(errstr, errstr_size, "%s: schema id %u is already used by %s",
                        s->file, s->id, o->file);
            goto dup;
        }
        /* Entries of one dataset are versions of it: same name, same key. */
        if (same_ds && strcmp(o->key_field, s->key_field) != 0) {
            core_errstr(errstr, errstr_size,
                        "%s: dataset %s: tb.key '%s' differs from '%s' in %s (versions of a"
                        " dataset must keep their key)", s->file, s->dataset, s->key_field,
                        o->key_field, o->file);
            goto dup;
        }
        /* Entries of one named schema that is not a dataset are versions of
         * it too (tributary.AuditEvent 201, 202): the last one is current. */
        if (!same_ds && *s->name && strcmp(o->name, s->name) == 0 &&
            (s->dataset || o->dataset)) {
            core_errstr(errstr, errstr_size, "%s: schema %s is already defined by %s",
                        s->file, s->name, o->file);
            goto dup;
        }
    }
    if (cat->n == cat->cap) {
        size_t cap = cat->cap ? cat->cap * 2 : 8;
        core_avro_schema_t **ns = realloc(cat->schemas, cap * sizeof(*ns));

        if (!ns) {
            core_errstr(errstr, errstr_size, "%s: out of memory", s->file);
            core_avro_schema_free(s);
            return CORE_ERR_NOMEM;
        }
        cat->schemas = ns;
        cat->cap = cap;
    }
    cat->schemas[cat->n++] = s;
    return CORE_OK;
dup:
    core_avro_schema_free(s);
    return CORE_ERR_INVALID;
}

core_err_t core_avro_catalog_add(core_avro_catalog_t *cat, uint32_t id,
                                 const char *dataset, const char *json,
                                 size_t json_len, char *errstr, size_t errstr_size)
{
    core_avro_schema_t *s;
    cJSON *j;
    char label[64];

    snprintf(label, sizeof(label), "schema id %u", id);
    if (id == 0 || id > INT32_MAX) {
        core_errstr(errstr, errstr_size, "%s: ids must be in 1..2147483647", label);
        return CORE_ERR_INVALID;
    }
    if (!json || json_len > CORE_AVRO_MAX_FILE) {
        core_errstr(errstr, errstr_size, "%s: schema missing or over %u bytes", label,
                    CORE_AVRO_MAX_FILE);
        return CORE_ERR_INVALID;
    }
    if (!(j = core_avro_parse_json_(json, json_len, label, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    if (!(s = core_avro_schema_build_(j, label, id, dataset, cat, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    return catalog_append(cat, s, errstr, errstr_size);
}

/* A file name of the catalogue: relative, inside proto_dir. */
static bool catalog_file_ok(const char *f)
{
    return *f && f[0] != '/' && !strstr(f, "..") && strlen(f) < 256;
}

static core_err_t load_entry(core_avro_catalog_t *cat, const char *dir,
                             const cJSON *e, size_t idx, core_avro_rules_check_fn *check,
                             char *errstr, size_t errstr_size)
{
    static const char *const keys[] = { "id", "name", "dataset", "file", "rules", "doc" };
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(e, "name");
    const cJSON *jds = cJSON_GetObjectItemCaseSensitive(e, "dataset");
    const cJSON *jfile = cJSON_GetObjectItemCaseSensitive(e, "file");
    const cJSON *jrules = cJSON_GetObjectItemCaseSensitive(e, "rules");
    const cJSON *k;
    int64_t id;
    char path[4096];
    char *text;
    size_t len;
    cJSON *j;
    core_avro_schema_t *s;
    core_err_t err;

    cJSON_ArrayForEach(k, e)
        if (!core_avro_in_list_(k->string, keys, CORE_ARRAY_SIZE(keys))) {
            core_errstr(errstr, errstr_size, "catalog.json: schema %zu: unknown key \"%s\"",
                        idx, k->string);
            return CORE_ERR_INVALID;
        }
    if (!core_avro_json_int_(jid, 1, INT32_MAX, &id)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema %zu: \"id\" must be an integer in 1..2147483647", idx);
        return CORE_ERR_INVALID;
    }
    if (!cJSON_IsString(jfile) || !catalog_file_ok(jfile->valuestring)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: \"file\" must be a file name inside %s",
                    (long long)id, dir);
        return CORE_ERR_INVALID;
    }
    if ((jname && !cJSON_IsString(jname)) || (jds && !cJSON_IsString(jds)) ||
        (!jname && !jds)) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: needs \"dataset\" or \"name\" (strings)",
                    (long long)id);
        return CORE_ERR_INVALID;
    }
    if (jrules && (!jds || !cJSON_IsString(jrules) || !catalog_file_ok(jrules->valuestring))) {
        core_errstr(errstr, errstr_size,
                    "catalog.json: schema id %lld: \"rules\" must be a file name, for a dataset",
                    (long long)id);
        return CORE_ERR_INVALID;
    }
    {
        const core_avro_schema_t *o = core_avro_catalog_by_id(cat, (uint32_t)id);

        if (o) {
            core_errstr(errstr, errstr_size,
                        "catalog.json: schema id %lld (%s) is already used by %s",
                        (long long)id, jfile->valuestring, o->file);
            return CORE_ERR_INVALID;
        }
    }
    snprintf(path, sizeof(path), "%s/%s", dir, jfile->valuestring);
    if (!(text = core_read_file(path, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
        return CORE_ERR_IO;
    j = core_avro_parse_json_(text, len, path, errstr, errstr_size);
    free(text);
    if (!j)
        return CORE_ERR_INVALID;
    s = core_avro_schema_build_(j, path, (uint32_t)id, jds ? jds->valuestring : NULL, cat,
                                errstr, errstr_size);
    if (!s)
        return CORE_ERR_INVALID;
    if (jname && strcmp(jname->valuestring, s->name) != 0) {
        core_errstr(errstr, errstr_size, "%s: defines %s, catalog.json says %s", path,
                    s->name, jname->valuestring);
        core_avro_schema_free(s);
        return CORE_ERR_INVALID;
    }
    /* uniqueness first (clearer when two entries clash), then the rules;
     * on failure the caller frees the whole catalogue, s included */
    if ((err = catalog_append(cat, s, errstr, errstr_size)) != CORE_OK)
        return err;
    if (jrules) {
        char rpath[4096];

        snprintf(rpath, sizeof(rpath), "%s/%s", dir, jrules->valuestring);
        if (!(text = core_read_file(rpath, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
            return CORE_ERR_IO;
        {
            /* core_json keeps each number's text: rule bounds compare exactly */
            core_json_error je;

            s->rules = core_json_parse(text, len, &je);
            if (!s->rules)
                core_errstr(errstr, errstr_size, "%s: JSON: %s at byte %zu%s%s", rpath,
                            je.reason, je.offset, je.path[0] ? " at " : "", je.path);
        }
        free(text);
        if (!s->rules || core_avro_rules_check_(s, rpath, s->rules, errstr, errstr_size) != 0 ||
            (check && check(s, strrchr(rpath, '/') + 1, s->rules, errstr, errstr_size) != 0))
            return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_avro_catalog_t *core_avro_catalog_load(const char *proto_dir, char *errstr,
                                            size_t errstr_size)
{
    return core_avro_catalog_load_checked(proto_dir, NULL, errstr, errstr_size);
}

core_avro_catalog_t *core_avro_catalog_load_checked(const char *proto_dir,
                                                    core_avro_rules_check_fn *check,
                                                    char *errstr, size_t errstr_size)
{
    core_avro_catalog_t *cat;
    char path[4096];
    char *text;
    size_t len, idx;
    cJSON *root, *schemas, *e;
    int pass;

    if (!proto_dir || !*proto_dir) {
        core_errstr(errstr, errstr_size, "catalog: no proto directory given");
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/catalog.json", proto_dir);
    if (!(text = core_read_file(path, CORE_AVRO_MAX_FILE, &len, errstr, errstr_size)))
        return NULL;
    root = core_avro_parse_json_(text, len, path, errstr, errstr_size);
    free(text);
    if (!root)
        return NULL;
    schemas = cJSON_GetObjectItemCaseSensitive(root, "schemas");
    if (!cJSON_IsArray(schemas)) {
        core_errstr(errstr, errstr_size, "%s: needs a \"schemas\" array", path);
        cJSON_Delete(root);
        return NULL;
    }
    if (!(cat = calloc(1, sizeof(*cat)))) {
        core_errstr(errstr, errstr_size, "catalog: out of memory");
        cJSON_Delete(root);
        return NULL;
    }
    cat->max_record = CORE_AVRO_DEFAULT_MAX_RECORD;
    /* Named schemas first (datasets refer to them), then datasets. */
    for (pass = 0; pass < 2; pass++) {
        idx = 0;
        cJSON_ArrayForEach(e, schemas) {
            bool is_ds = cJSON_GetObjectItemCaseSensitive(e, "dataset") != NULL;

            if (!cJSON_IsObject(e)) {
                core_errstr(errstr, errstr_size, "%s: schema %zu is not an object", path, idx);
                goto fail;
            }
            if (is_ds == (pass == 1) &&
                load_entry(cat, proto_dir, e, idx, check, errstr, errstr_size) != CORE_OK)
                goto fail;
            idx++;
        }
    }
    cJSON_Delete(root);
    return cat;
fail:
    cJSON_Delete(root);
    core_avro_catalog_free(cat);
    return NULL;
}

void core_avro_catalog_set_max_record(core_avro_catalog_t *cat, size_t max)
{
    cat->max_record = max ? max : CORE_AVRO_DEFAULT_MAX_RECORD;
}

size_t core_avro_catalog_max_record(const core_avro_catalog_t *cat)
{
    return cat->max_record;
}

static const core_avro_schema_t *held_id(const core_avro_catalog_t *cat, uint32_t id)
{
    size_t i;

    for (i = 0; id && i < cat->n; i++) /* id 0: dropped by set_fetch, never a match */
        if (cat->schemas[i]->id == id)
            return cat->schemas[i];
    return NULL;
}

/* The dataset whose current schema has the full name of the schema text
 * (a record's "name", with "namespace" unless the name has a dot). */
static const char *dataset_of_text(const core_avro_catalog_t *cat, const cJSON *j)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "namespace");
    char full[512];

    if (!cJSON_IsString(name))
        return NULL;
    if (strchr(name->valuestring, '.') || !cJSON_IsString(ns) || !*ns->valuestring)
        snprintf(full, sizeof(full), "%s", name->valuestring);
    else
        snprintf(full, sizeof(full), "%s.%s", ns->valuestring, name->valuestring);
    for (size_t i = cat->n; i > 0; i--)
        if (cat->schemas[i - 1]->dataset && strcmp(cat->schemas[i - 1]->name, full) == 0)
            return cat->schemas[i - 1]->dataset;
    return NULL;
}

/* Under cat->lock: a fetched schema, or fetch it. */
static core_err_t fetched_id(core_avro_catalog_t *cat, uint32_t id,
                             const core_avro_schema_t **sp, char *errstr, size_t errstr_size)
{
    core_avro_schema_t *s;
    char *text = NULL, label[64];
    cJSON *j;
    core_err_t err;

    for (size_t i = 0; i < cat->nfetched; i++)
        if (cat->fetched[i]->id == id) {
            *sp = cat->fetched[i];
            return CORE_OK;
        }
    if ((err = cat->fetch(cat->fetch_opaque, id, &text, errstr, errstr_size)) != CORE_OK)
        return err;
    snprintf(label, sizeof(label), "schema id %u", id);
    j = core_avro_parse_json_(text, strlen(text), label, errstr, errstr_size);
    free(text);
    if (!j)
        return CORE_ERR_INVALID;
    if (!(s = core_avro_schema_build_(j, label, id, dataset_of_text(cat, j), cat, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    if (cat->nfetched == cat->capfetched) {
        size_t cap = cat->capfetched ? cat->capfetched * 2 : 8;
        core_avro_schema_t **n = realloc(cat->fetched, cap * sizeof(*n));

        if (!n) {
            core_avro_schema_free(s);
            core_errstr(errstr, errstr_size, "%s: out of memory", label);
            return CORE_ERR_NOMEM;
        }
        cat->fetched = n;
        cat->capfetched = cap;
    }
    cat->fetched[cat->nfetched++] = s;
    *sp = s;
    return CORE_OK;
}

core_err_t core_avro_catalog_id_(const core_avro_catalog_t *ccat, uint32_t id,
                                 const core_avro_schema_t **sp, char *errstr,
                                 size_t errstr_size)
{
    /* the lock and the fetched list are the catalogue's cache: a lookup
     * stays logically const */
    core_avro_catalog_t *cat = (core_avro_catalog_t *)ccat;
    core_err_t err;

    if ((*sp = held_id(cat, id)))
        return CORE_OK;
    if (!cat->fetch) {
        core_errstr(errstr, errstr_size, "unknown schema id %u", id);
        return CORE_ERR_NOTFOUND;
    }
    pthread_mutex_lock(&cat->lock);
    err = fetched_id(cat, id, sp, errstr, errstr_size);
    pthread_mutex_unlock(&cat->lock);
    return err;
}

const core_avro_schema_t *core_avro_catalog_by_id(const core_avro_catalog_t *cat,
                                                  uint32_t id)
{
    const core_avro_schema_t *s = NULL;
    char err[256];

    return core_avro_catalog_id_(cat, id, &s, err, sizeof(err)) == CORE_OK ? s : NULL;
}

core_err_t core_avro_catalog_set_fetch(core_avro_catalog_t *cat, core_avro_fetch_fn *fetch,
                                       void *opaque)
{
    if (!cat->lock_init) {
        if (pthread_mutex_init(&cat->lock, NULL) != 0)
            return CORE_ERR_NOMEM;
        cat->lock_init = true;
    }
    cat->fetch = fetch;
    cat->fetch_opaque = opaque;
    for (size_t i = 0; i < cat->n; i++)
        cat->schemas[i]->id = 0;
    return CORE_OK;
}

core_err_t core_avro_catalog_set_id(core_avro_catalog_t *cat, const core_avro_schema_t *schema,
                                    uint32_t id, char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *o = held_id(cat, id);

    if (id == 0 || id > INT32_MAX) {
        core_errstr(errstr, errstr_size, "%s: ids must be in 1..2147483647", schema->file);
        return CORE_ERR_INVALID;
    }
    if (o && o != schema) {
        core_errstr(errstr, errstr_size, "%s: schema id %u is already held by %s",
                    schema->file, id, o->file);
        return CORE_ERR_INVALID;
    }
    for (size_t i = 0; i < cat->n; i++)
        if (cat->schemas[i] == schema) {
            cat->schemas[i]->id = id;
            return CORE_OK;
        }
    core_errstr(errstr, errstr_size, "%s: not a schema of this catalogue", schema->file);
    return CORE_ERR_INVALID;
}

const core_avro_schema_t *core_avro_catalog_by_dataset(const core_avro_catalog_t *cat,
                                                       const char *dataset)
{
    size_t i;

    for (i = cat->n; dataset && i > 0; i--) /* the latest version */
        if (cat->schemas[i - 1]->dataset && strcmp(cat->schemas[i - 1]->dataset, dataset) == 0)
            return cat->schemas[i - 1];
    return NULL;
}

const core_avro_schema_t *core_avro_catalog_by_name(const core_avro_catalog_t *cat,
                                                    const char *fullname)
{
    return fullname ? core_avro_catalog_find_name_(cat, fullname) : NULL;
}

size_t core_avro_catalog_count(const core_avro_catalog_t *cat)
{
    return cat->n;
}

const core_avro_schema_t *core_avro_catalog_at(const core_avro_catalog_t *cat, size_t i)
{
    return i < cat->n ? cat->schemas[i] : NULL;
}
