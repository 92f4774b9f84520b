/* core_avro.c — schema handles: a schema parsed, checked as a dataset's
 * (key, meta, personal fields) and compiled. The catalogue: core_avro_catalog.c.
 * The shape of rules files: core_avro_rules.c. The key/meta helpers of dataset records:
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
cJSON *core_avro_parse_json_(const char *text, size_t len, const char *file,
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

bool core_avro_in_list_(const char *s, const char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
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

int core_avro_find_field_(const struct avn *rec, const char *name)
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
        int fi = core_avro_find_field_(m, want[i].name);

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
core_avro_schema_t *core_avro_schema_build_(cJSON *json, const char *file, uint32_t id,
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
        if ((fi = core_avro_find_field_(s->root, jkey->valuestring)) < 0) {
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
    if (!(j = core_avro_parse_json_(json, json_len, "schema", errstr, errstr_size)))
        return NULL;
    return core_avro_schema_build_(j, "schema", id, NULL, NULL, errstr, errstr_size);
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
