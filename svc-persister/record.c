/* record.c — a Kafka record decoded for the sinks, and a batch reduced to
 * one write per key (the highest version wins). */
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
        if (ds->row_paths && schema == ds->schema) {
            e = pers_pg_row(ds, v, &rec->row, &rec->rowlen, err, sizeof(err));
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
    cJSON_Delete(rec->json);
    memset(rec, 0, sizeof(*rec));
}

/* Sort ops by key, then version, then position (the record's order). */
static int op_cmp(const void *a, const void *b)
{
    const pers_op *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    /* equal versions: records later in the partition win; primary (the
     * event's own key) beats the delete of a moved key */
    if (x->rec->offset != y->rec->offset)
        return x->rec->offset < y->rec->offset ? -1 : 1;
    return (int)x->primary - (int)y->primary;
}

pers_op *pers_reduce(pers_record **recs, size_t n, size_t *nops)
{
    size_t cap = 0;
    *nops = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i]->fate == PERS_PENDING)
            cap += recs[i]->old_key ? 2 : 1;
    if (cap == 0)
        return NULL;
    pers_op *all = calloc(cap, sizeof(*all));
    if (!all)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        pers_record *r = recs[i];
        if (r->fate != PERS_PENDING)
            continue;
        all[m++] = (pers_op){ .kind = r->op == CORE_AVRO_OP_DELETE ? PERS_DELETE : PERS_UPSERT,
                              .key = r->key, .version = r->version, .rec = r, .primary = true };
        if (r->old_key)
            all[m++] = (pers_op){ .kind = PERS_DELETE, .key = r->old_key,
                                  .version = r->version, .rec = r, .primary = false };
    }
    qsort(all, m, sizeof(*all), op_cmp);
    /* keep the last op of each key; the others' records are stale (unless
     * the record also has a winning op) */
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
        bool last = i + 1 == m || strcmp(all[i].key, all[i + 1].key) != 0;
        if (last)
            all[w++] = all[i];
        else if (all[i].primary)
            all[i].rec->fate = PERS_STALE;
    }
    /* a record whose primary op lost is stale even when its old-key delete
     * won: the delete still runs (the key moved away at that version) */
    *nops = w;
    return all;
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
