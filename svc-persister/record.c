/* record.c — a Kafka record decoded for the sinks (its COPY row through
 * the dataset's row function, else its natural JSON), and a column's value
 * as COPY text. */
#include "persister.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_dead(pers_record *rec, const char *cls, const char *msg)
{
    rec->fate = PERS_DEAD;
    snprintf(rec->error_class, sizeof(rec->error_class), "%s", cls);
    free(rec->error);
    rec->error = strdup(msg);
}

int pers_record_decode(pers_record *rec, pers_dataset *ds, core_avro_decoder_t *dec,
                       const char *topic, int32_t partition, int64_t offset,
                       const void *key, size_t keylen, const void *value, size_t vallen)
{
    char err[512];
    const core_avro_schema_t *schema = NULL;
    avro_value_t *vp = NULL;

    memset(rec, 0, sizeof(*rec));
    rec->ds = ds;
    rec->partition = partition;
    rec->offset = offset;
    rec->version = 0;
    rec->topic = strdup(topic);
    rec->kkey = malloc(keylen ? keylen : 1);
    rec->value = malloc(vallen ? vallen : 1);
    if (!rec->topic || !rec->kkey || !rec->value)
        goto nomem;
    if (keylen)
        memcpy(rec->kkey, key, keylen);
    if (vallen)
        memcpy(rec->value, value, vallen);
    rec->kkeylen = keylen;
    rec->vallen = vallen;
    core_digest_record(value, vallen, &rec->digest);

    if (!value || vallen == 0) {
        set_dead(rec, "poison", "empty record value");
        return rec->error ? 0 : -1;
    }
    /* the decoder's value: valid until the next decode, never released */
    core_err_t e = core_avro_decoder_decode(dec, value, vallen, &schema, &vp, err, sizeof(err));
    if (e == CORE_ERR_NOMEM)
        goto nomem;
    if (e != CORE_OK) {
        set_dead(rec, "poison", err);
        return rec->error ? 0 : -1;
    }
    avro_value_t *v = vp;
    if (schema != ds->schema && (!core_avro_schema_dataset(schema) ||
                                 strcmp(core_avro_schema_dataset(schema), ds->name))) {
        snprintf(err, sizeof(err), "schema id %u is not a schema of dataset %s",
                 core_avro_schema_id(schema), ds->name);
        set_dead(rec, "invalid", err);
        return rec->error ? 0 : -1;
    }
    core_avro_meta meta;
    const char *k = NULL;
    if (core_avro_get_meta(schema, v, &meta, err, sizeof(err)) != CORE_OK ||
        core_avro_get_key(schema, v, &k, NULL, err, sizeof(err)) != CORE_OK) {
        set_dead(rec, "invalid", err);
        return rec->error ? 0 : -1;
    }
    rec->id = strdup(meta.id);
    rec->batch_id = strdup(meta.batch_id);
    rec->key = strdup(k);
    /* an UPDATE whose old_key differs from its key moves the record */
    bool moved = meta.old_key && meta.op == CORE_AVRO_OP_UPDATE && strcmp(meta.old_key, k);
    rec->old_key = moved ? strdup(meta.old_key) : NULL;
    rec->version = meta.version;
    rec->op = meta.op;
    if (meta.op != CORE_AVRO_OP_DELETE) {
        if (ds->row && ds->row_paths && schema == ds->schema) {
            e = ds->row(ds, v, &rec->row, &rec->rowlen, err, sizeof(err));
            if (e == CORE_ERR_NOMEM)
                goto nomem;
        } else {
            rec->json = core_avro_to_json(schema, v, err, sizeof(err));
            e = rec->json ? CORE_OK : CORE_ERR_INVALID;
        }
        if (e != CORE_OK) {
            set_dead(rec, "invalid", err);
            return rec->error ? 0 : -1;
        }
    }
    if (!rec->id || !rec->batch_id || !rec->key || (moved && !rec->old_key))
        goto nomem;
    return 0;
nomem:
    pers_record_clear(rec);
    return -1;
}

void pers_record_clear(pers_record *rec)
{
    if (!rec)
        return;
    free(rec->topic);
    free(rec->kkey);
    free(rec->value);
    free(rec->id);
    free(rec->batch_id);
    free(rec->key);
    free(rec->old_key);
    free(rec->error);
    free(rec->row);
    free(rec->backup_key);
    cJSON_Delete(rec->json);
    memset(rec, 0, sizeof(*rec));
}

/* The record's field as text, the way COPY's text format reads it. */
const char *pers_column_text(const pers_record *rec, const pers_column *col, char **tmp)
{
    *tmp = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec->json, col->name);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsRaw(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    *tmp = cJSON_PrintUnformatted(v);
    return *tmp;
}
