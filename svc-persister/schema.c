/* schema.c — a dataset's Avro schema turned into table columns and DDL. */
#include "persister.h"

#include "tributary/core_topics.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* PostgreSQL type for one Avro type (no unions). */
static int pg_type_of(const cJSON *t, char *buf, size_t size, bool *is_time_ms)
{
    *is_time_ms = false;
    if (cJSON_IsString(t)) {
        const char *s = t->valuestring;
        if (!strcmp(s, "string"))
            snprintf(buf, size, "text");
        else if (!strcmp(s, "int"))
            snprintf(buf, size, "integer");
        else if (!strcmp(s, "long"))
            snprintf(buf, size, "bigint");
        else if (!strcmp(s, "float"))
            snprintf(buf, size, "real");
        else if (!strcmp(s, "double"))
            snprintf(buf, size, "double precision");
        else if (!strcmp(s, "boolean"))
            snprintf(buf, size, "boolean");
        else if (!strcmp(s, "bytes"))
            snprintf(buf, size, "text"); /* natural JSON escape form */
        else
            snprintf(buf, size, "jsonb"); /* a named type defined elsewhere */
        return 0;
    }
    if (!cJSON_IsObject(t))
        return -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(t, "logicalType");
    const char *ts = cJSON_IsString(type) ? type->valuestring : "";
    if (cJSON_IsString(lt)) {
        const char *l = lt->valuestring;
        if (!strcmp(l, "decimal")) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "precision");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(t, "scale");
            snprintf(buf, size, "numeric(%d,%d)", cJSON_IsNumber(p) ? p->valueint : 38,
                     cJSON_IsNumber(sc) ? sc->valueint : 0);
            return 0;
        }
        if (!strcmp(l, "timestamp-millis")) {
            *is_time_ms = true;
            snprintf(buf, size, "timestamptz");
            return 0;
        }
        if (!strcmp(l, "timestamp-micros")) {
            snprintf(buf, size, "timestamptz");
            return 0;
        }
        if (!strcmp(l, "date")) {
            snprintf(buf, size, "date");
            return 0;
        }
        if (!strcmp(l, "uuid")) {
            snprintf(buf, size, "text");
            return 0;
        }
    }
    if (!strcmp(ts, "enum") || !strcmp(ts, "fixed"))
        snprintf(buf, size, "text");
    else if (!strcmp(ts, "record") || !strcmp(ts, "array") || !strcmp(ts, "map"))
        snprintf(buf, size, "jsonb");
    else
        return pg_type_of(type, buf, size, is_time_ms);
    return 0;
}

/* The topic <prefix><dataset><suffix> of the deprecated suffix keys, held
 * to the same rule as core_topic_name (a Kafka topic name, at most
 * CORE_TOPIC_MAX bytes); the error names key. buf: CORE_TOPIC_MAX + 1. */
static int suffixed(const char *prefix, const char *name, const char *suffix, const char *key,
                    char *buf, char *errstr, size_t errstr_size)
{
    int n = snprintf(buf, CORE_TOPIC_MAX + 1, "%s%s%s", prefix, name, suffix);

    if (n < 0 || n > CORE_TOPIC_MAX || !core_topic_valid(buf)) {
        core_errstr(errstr, errstr_size, "%s: \"%s%s%s\" is not a Kafka topic name", key,
                    prefix, name, suffix);
        return -1;
    }
    return 0;
}

int pers_dataset_init(pers_dataset *ds, const char *name, const core_avro_catalog_t *cat,
                      const char *prefix, const char *valid_suffix, const char *dlq_suffix,
                      char *errstr, size_t errstr_size)
{
    memset(ds, 0, sizeof(*ds));
    ds->name = name;
    ds->schema = core_avro_catalog_by_dataset(cat, name);
    if (!ds->schema) {
        core_errstr(errstr, errstr_size, "dataset: %s is not in the schema catalogue", name);
        return -1;
    }
    ds->key_field = core_avro_schema_key_field(ds->schema);
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(core_avro_schema_json(ds->schema),
                                                           "fields");
    size_t nf = (size_t)cJSON_GetArraySize(fields);
    ds->cols = calloc(nf ? nf : 1, sizeof(*ds->cols));
    if (!ds->cols)
        goto nomem;
    const cJSON *f;
    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
        if (!cJSON_IsString(fn) || !strcmp(fn->valuestring, "meta"))
            continue;
        if (!strncmp(fn->valuestring, "tb_", 3)) {
            core_errstr(errstr, errstr_size,
                        "dataset %s: field %s clashes with the columns svc-persister adds (tb_*)",
                        name, fn->valuestring);
            pers_dataset_clear(ds);
            return -1;
        }
        pers_column *c = &ds->cols[ds->ncols];
        char buf[64];
        bool nullable = false;
        const cJSON *t = ft;
        if (cJSON_IsArray(ft)) {
            /* ["null", T]: nullable T; any other union: jsonb */
            const cJSON *nonnull = NULL;
            int n = 0;
            const cJSON *b;
            cJSON_ArrayForEach(b, ft)
            {
                if (cJSON_IsString(b) && !strcmp(b->valuestring, "null"))
                    nullable = true;
                else {
                    nonnull = b;
                    n++;
                }
            }
            t = n == 1 ? nonnull : NULL;
        }
        if (t) {
            if (pg_type_of(t, buf, sizeof(buf), &c->is_time_ms) < 0) {
                core_errstr(errstr, errstr_size, "dataset %s: field %s has a type I cannot map",
                            name, fn->valuestring);
                pers_dataset_clear(ds);
                return -1;
            }
        } else {
            snprintf(buf, sizeof(buf), "jsonb");
        }
        c->name = xstrdup(fn->valuestring);
        c->pg_type = xstrdup(buf);
        if (!c->name || !c->pg_type) {
            ds->ncols++;
            goto nomem;
        }
        c->nullable = nullable;
        c->is_key = ds->key_field && !strcmp(ds->key_field, c->name);
        if (c->is_key)
            ds->key_col = ds->ncols;
        ds->ncols++;
    }
    char tv[CORE_TOPIC_MAX + 1], td[CORE_TOPIC_MAX + 1];
    if (!prefix)
        prefix = "";
    if (valid_suffix ? suffixed(prefix, name, valid_suffix, "topic.valid.suffix", tv, errstr,
                                errstr_size)
                     : core_topic_name(prefix, name, CORE_TOPIC_VALID, tv, sizeof(tv), errstr,
                                       errstr_size))
        goto bad;
    if (dlq_suffix ? suffixed(prefix, name, dlq_suffix, "topic.dlq.suffix", td, errstr,
                              errstr_size)
                   : core_topic_name(prefix, name, CORE_TOPIC_DLQ, td, sizeof(td), errstr,
                                     errstr_size))
        goto bad;
    ds->topic_valid = strdup(tv);
    ds->topic_dlq = strdup(td);
    if (!ds->topic_valid || !ds->topic_dlq)
        goto nomem;
    return 0;
bad:
    pers_dataset_clear(ds);
    return -1;
nomem:
    pers_dataset_clear(ds);
    core_errstr(errstr, errstr_size, "out of memory");
    return -1;
}

void pers_dataset_clear(pers_dataset *ds)
{
    for (size_t i = 0; i < ds->ncols; i++) {
        free(ds->cols[i].name);
        free(ds->cols[i].pg_type);
    }
    for (size_t i = 0; ds->row_paths && i < ds->ncols; i++)
        core_avro_path_free(ds->row_paths[i]);
    free(ds->row_paths);
    ds->row_paths = NULL;
    free(ds->cols);
    free(ds->topic_valid);
    free(ds->topic_dlq);
    ds->cols = NULL;
    ds->ncols = 0;
    ds->topic_valid = ds->topic_dlq = NULL;
}

char *pers_schema_sql(const pers_dataset *ds, const char *pg_schema)
{
    core_strbuf b = { 0 };
    core_strbuf_addf(&b, "-- dataset %s (%s), generated by svc-persister from its Avro schema\n",
                 ds->name, core_avro_schema_name(ds->schema));
    core_strbuf_addf(&b, "CREATE TABLE IF NOT EXISTS \"%s\".\"%s\" (\n", pg_schema, ds->name);
    for (size_t i = 0; i < ds->ncols; i++) {
        const pers_column *c = &ds->cols[i];
        core_strbuf_addf(&b, "    \"%s\" %s%s,\n", c->name, c->pg_type,
                     c->nullable ? "" : " NOT NULL");
    }
    core_strbuf_addf(&b,
                 "    tb_version bigint NOT NULL,\n"
                 "    tb_id text NOT NULL,\n"
                 "    tb_batch text NOT NULL,\n"
                 "    tb_persisted_at timestamptz NOT NULL DEFAULT now(),\n"
                 "    PRIMARY KEY (\"%s\")\n);\n",
                 ds->cols[ds->key_col].name);
    core_strbuf_addf(&b,
                 "-- versions of deleted keys, so an older event arriving late cannot bring a "
                 "deleted row back\n"
                 "CREATE TABLE IF NOT EXISTS \"%s\".\"%s_tombstone\" (\n"
                 "    key text PRIMARY KEY,\n"
                 "    tb_version bigint NOT NULL,\n"
                 "    tb_deleted_at timestamptz NOT NULL DEFAULT now()\n);\n",
                 pg_schema, ds->name);
    if (b.failed) {
        core_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}
