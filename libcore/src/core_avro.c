/* core_avro.c — the schema catalogue: loading proto/, schema handles, the
 * shape of rules files, lookups. The key/meta helpers of dataset records:
 * core_avro_record.c. The schema compiler: core_avro_schema.c. Wire format:
 * core_avro_wire.c. Natural JSON: core_avro_json.c. */
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


/* ---- small helpers ------------------------------------------------------ */

char *core_avro_xstrdup_(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

static bool dataset_name_ok(const char *s)
{
    size_t n = 0;

    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++, n++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return n <= 64;
}

/* Integer value of a JSON number, when it is one within [lo, hi]. */
bool core_avro_json_int_(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    double d;

    if (cJSON_IsRaw(j)) { /* a number as core_json_parse() keeps it: its text */
        core_number n;

        return core_number_parse(j->valuestring, &n) == CORE_OK &&
               core_number_int64(&n, lo, hi, out);
    }
    if (!cJSON_IsNumber(j))
        return false;
    d = j->valuedouble;
    if (d != d || d < (double)lo || d > (double)hi || d != (double)(int64_t)d)
        return false;
    *out = (int64_t)d;
    return true;
}

/* Parse JSON text, reporting where it broke. */
static cJSON *parse_json(const char *text, size_t len, const char *file,
                         char *errstr, size_t errstr_size)
{
    cJSON *j;
    const char *end = NULL;

    j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= text && at <= text + len) ? (size_t)(at - text) : 0;
        core_errstr(errstr, errstr_size, "%s: JSON syntax error near byte %zu",
                    file, off);
        return NULL;
    }
    return j;
}

/* ---- schema handles ----------------------------------------------------- */

void core_avro_schema_free(core_avro_schema_t *s)
{
    size_t i;

    if (!s)
        return;
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->avro)
        avro_schema_decref(s->avro);
    cJSON_Delete(s->json);
    cJSON_Delete(s->rules);
    core_avro_nodes_free_(s->nodes);
    for (i = 0; i < s->npersonal; i++)
        free(s->personal[i]);
    free(s->personal);
    free(s->name);
    free(s->dataset);
    free(s->file);
    free(s->key_field);
    free(s);
}

static int find_field(const struct avn *rec, const char *name)
{
    size_t i;

    for (i = 0; i < rec->nfields; i++)
        if (strcmp(rec->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The dataset rules: meta first, Meta fields of the expected shape. */
static int check_dataset(core_avro_schema_t *s, char *errstr, size_t errstr_size)
{
    static const struct { const char *name; avn_type type; } want[AVM__COUNT] = {
        [AVM_ID] = { "id", AVN_STRING }, [AVM_OP] = { "op", AVN_ENUM },
        [AVM_KIND] = { "kind", AVN_ENUM }, [AVM_SOURCE] = { "source", AVN_STRING },
        [AVM_BATCH_ID] = { "batch_id", AVN_STRING }, [AVM_SEQ] = { "seq", AVN_LONG },
        [AVM_EVENT_TIME] = { "event_time", AVN_LONG },
        [AVM_VERSION] = { "version", AVN_LONG }, [AVM_OLD_KEY] = { "old_key", AVN_UNION },
    };
    static const char *const ops[] = { "ADD", "UPDATE", "DELETE" };
    static const char *const kinds[] = { "BULK", "CHANGE" };
    const struct avn *r = s->root, *m;
    size_t i;

    if (!dataset_name_ok(s->dataset)) {
        core_errstr(errstr, errstr_size,
                    "%s: dataset name '%s' must match [a-z][a-z0-9_]{0,63}",
                    s->file, s->dataset);
        return -1;
    }
    if (r->type != AVN_RECORD || r->nfields == 0 ||
        strcmp(r->fields[0].name, "meta") != 0) {
        core_errstr(errstr, errstr_size,
                    "%s: a dataset schema must be a record whose first field is meta",
                    s->file);
        return -1;
    }
    m = r->fields[0].type;
    if (m->type != AVN_RECORD || !m->fullname || strcmp(m->fullname, META_FULLNAME) != 0) {
        core_errstr(errstr, errstr_size, "%s: field meta must be of type %s",
                    s->file, META_FULLNAME);
        return -1;
    }
    for (i = 0; i < AVM__COUNT; i++) {
        int fi = find_field(m, want[i].name);

        if (fi < 0 || m->fields[fi].type->type != want[i].type) {
            core_errstr(errstr, errstr_size, "%s: %s.%s missing or of the wrong type",
                        s->file, META_FULLNAME, want[i].name);
            return -1;
        }
        s->meta_fields[i] = fi;
    }
    {
        const struct avn *op = m->fields[s->meta_fields[AVM_OP]].type;
        const struct avn *kd = m->fields[s->meta_fields[AVM_KIND]].type;
        const struct avn *ok = m->fields[s->meta_fields[AVM_OLD_KEY]].type;
        bool good = op->nsymbols == 3 && kd->nsymbols == 2 && ok->nbranches == 2 &&
                    ok->branches[0]->type == AVN_NULL &&
                    ok->branches[1]->type == AVN_STRING;

        for (i = 0; good && i < 3; i++)
            good = strcmp(op->symbols[i], ops[i]) == 0;
        for (i = 0; good && i < 2; i++)
            good = strcmp(kd->symbols[i], kinds[i]) == 0;
        if (!good) {
            core_errstr(errstr, errstr_size,
                        "%s: %s: op must be enum [ADD, UPDATE, DELETE], kind [BULK, CHANGE],"
                        " old_key [\"null\", \"string\"]", s->file, META_FULLNAME);
            return -1;
        }
    }
    s->meta_index = 0;
    if (!s->key_field) {
        core_errstr(errstr, errstr_size, "%s: a dataset schema needs \"tb.key\"", s->file);
        return -1;
    }
    return 0;
}

/* Compile, hand to avro-c, check tb.key; dataset checks when dataset. Takes
 * json in every case. */
static core_avro_schema_t *schema_build(cJSON *json, const char *file, uint32_t id,
                                        const char *dataset,
                                        const core_avro_catalog_t *resolver,
                                        char *errstr, size_t errstr_size)
{
    core_avro_schema_t *s = calloc(1, sizeof(*s));
    char *text = NULL;
    const cJSON *jkey;
    size_t i;

    if (!s || !(s->file = core_avro_xstrdup_(file)) ||
        (dataset && !(s->dataset = core_avro_xstrdup_(dataset)))) {
        core_errstr(errstr, errstr_size, "%s: out of memory", file);
        cJSON_Delete(json);
        core_avro_schema_free(s);
        return NULL;
    }
    s->json = json;
    s->id = id;
    s->key_index = -1;
    s->meta_index = -1;
    for (i = 0; i < AVM__COUNT; i++)
        s->meta_fields[i] = -1;
    if (!cJSON_IsObject(json) && !cJSON_IsArray(json) && !cJSON_IsString(json)) {
        core_errstr(errstr, errstr_size, "%s: a schema must be a JSON object", file);
        goto fail;
    }
    if (!(s->root = core_avro_compile_(s, resolver, file, json, errstr, errstr_size)))
        goto fail;
    if (!(s->name = core_avro_xstrdup_(s->root->fullname ? s->root->fullname : "")))
        goto nomem;

    jkey = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "tb.key") : NULL;
    if (jkey) {
        int fi;

        if (!cJSON_IsString(jkey) || s->root->type != AVN_RECORD) {
            core_errstr(errstr, errstr_size, "%s: tb.key must be a field name of the record",
                        file);
            goto fail;
        }
        if ((fi = find_field(s->root, jkey->valuestring)) < 0) {
            core_errstr(errstr, errstr_size, "%s: tb.key names '%s', which is not a field of %s",
                        file, jkey->valuestring, s->name);
            goto fail;
        }
        if (s->root->fields[fi].type->type != AVN_STRING) {
            core_errstr(errstr, errstr_size, "%s: tb.key field '%s' must be of type string",
                        file, jkey->valuestring);
            goto fail;
        }
        s->key_index = fi;
        if (!(s->key_field = core_avro_xstrdup_(jkey->valuestring)))
            goto nomem;
    }
    if (dataset && check_dataset(s, errstr, errstr_size) != 0)
        goto fail;

    if (!(text = cJSON_PrintUnformatted(json)))
        goto nomem;
    if (avro_schema_from_json_length(text, strlen(text), &s->avro) != 0) {
        core_errstr(errstr, errstr_size, "%s: avro-c refused the schema: %s", file,
                    avro_strerror());
        s->avro = NULL;
        goto fail;
    }
    if (!(s->iface = avro_generic_class_from_schema(s->avro))) {
        core_errstr(errstr, errstr_size, "%s: avro-c cannot build a value class: %s",
                    file, avro_strerror());
        goto fail;
    }
    free(text);
    return s;
nomem:
    core_errstr(errstr, errstr_size, "%s: out of memory", file);
fail:
    free(text);
    core_avro_schema_free(s);
    return NULL;
}

core_avro_schema_t *core_avro_schema_new(const char *json, size_t json_len,
                                         uint32_t id, char *errstr,
                                         size_t errstr_size)
{
    cJSON *j;

    if (!json) {
        core_errstr(errstr, errstr_size, "schema: no JSON given");
        return NULL;
    }
    if (json_len > CORE_AVRO_MAX_FILE) {
        core_errstr(errstr, errstr_size, "schema: %zu bytes exceeds the limit of %u",
                    json_len, CORE_AVRO_MAX_FILE);
        return NULL;
    }
    if (!(j = parse_json(json, json_len, "schema", errstr, errstr_size)))
        return NULL;
    return schema_build(j, "schema", id, NULL, NULL, errstr, errstr_size);
}

uint32_t core_avro_schema_id(const core_avro_schema_t *s) { return s->id; }
const char *core_avro_schema_name(const core_avro_schema_t *s) { return s->name; }
const char *core_avro_schema_dataset(const core_avro_schema_t *s) { return s->dataset; }
const char *core_avro_schema_file(const core_avro_schema_t *s) { return s->file; }
const char *core_avro_schema_key_field(const core_avro_schema_t *s) { return s->key_field; }
avro_schema_t core_avro_schema_avro(const core_avro_schema_t *s) { return s->avro; }
avro_value_iface_t *core_avro_schema_iface(const core_avro_schema_t *s) { return s->iface; }
const cJSON *core_avro_schema_json(const core_avro_schema_t *s) { return s->json; }
const cJSON *core_avro_schema_rules(const core_avro_schema_t *s) { return s->rules; }

const char *const *core_avro_schema_personal(const core_avro_schema_t *s, size_t *np)
{
    if (np)
        *np = s->npersonal;
    return (const char *const *)s->personal;
}

bool core_avro_schema_is_personal(const core_avro_schema_t *s, const char *field)
{
    size_t i;

    for (i = 0; field && i < s->npersonal; i++)
        if (strcmp(s->personal[i], field) == 0)
            return true;
    return false;
}

bool core_avro_schema_path_personal(const core_avro_schema_t *s, const char *path)
{
    char part[256];

    if (!path || !*path)
        return true;
    while (*path) {
        size_t n = strcspn(path, ".[");

        if (n >= sizeof(part))
            return true; /* no field name is that long: not a path we know */
        memcpy(part, path, n);
        part[n] = '\0';
        if (n && core_avro_schema_is_personal(s, part))
            return true;
        path += n;
        if (*path == '[') {
            path = strchr(path, ']');
            if (!path)
                return true;
            path++;
        }
        if (*path == '.')
            path++;
    }
    return false;
}

core_err_t core_avro_value_new(const core_avro_schema_t *s, avro_value_t *out)
{
    if (avro_generic_value_new(s->iface, out) != 0)
        return CORE_ERR_NOMEM;
    return CORE_OK;
}

/* ---- rules files -------------------------------------------------------- */

static bool in_list(const char *s, const char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

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
        if (!n || n->type != AVN_RECORD || (fi = find_field(n, tok)) < 0)
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

static int rules_check(const core_avro_schema_t *s, const char *file, const cJSON *rj,
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
    if (!(j = parse_json(json, json_len, label, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    if (!(s = schema_build(j, label, id, dataset, cat, errstr, errstr_size)))
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
        if (!in_list(k->string, keys, CORE_ARRAY_SIZE(keys))) {
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
    j = parse_json(text, len, path, errstr, errstr_size);
    free(text);
    if (!j)
        return CORE_ERR_INVALID;
    s = schema_build(j, path, (uint32_t)id, jds ? jds->valuestring : NULL, cat,
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
        if (!s->rules || rules_check(s, rpath, s->rules, errstr, errstr_size) != 0 ||
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
    root = parse_json(text, len, path, errstr, errstr_size);
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
    j = parse_json(text, strlen(text), label, errstr, errstr_size);
    free(text);
    if (!j)
        return CORE_ERR_INVALID;
    if (!(s = schema_build(j, label, id, dataset_of_text(cat, j), cat, errstr, errstr_size)))
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
