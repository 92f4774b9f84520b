/* core_avro_record.c — the key and meta helpers of dataset records
 * (core_avro.h, "record helpers"). */
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

/* ---- key and meta helpers ----------------------------------------------- */

const char *core_avro_op_name(core_avro_op_t op)
{
    switch (op) {
    case CORE_AVRO_OP_ADD: return "ADD";
    case CORE_AVRO_OP_UPDATE: return "UPDATE";
    case CORE_AVRO_OP_DELETE: return "DELETE";
    }
    return "?";
}

const char *core_avro_kind_name(core_avro_kind_t kind)
{
    switch (kind) {
    case CORE_AVRO_KIND_BULK: return "BULK";
    case CORE_AVRO_KIND_CHANGE: return "CHANGE";
    }
    return "?";
}

static int get_str(avro_value_t *v, const char **s)
{
    size_t sz;

    return avro_value_get_string(v, s, &sz);
}

core_err_t core_avro_get_key(const core_avro_schema_t *s, avro_value_t *rec,
                             const char **keyp, size_t *lenp, char *errstr,
                             size_t errstr_size)
{
    avro_value_t f;
    const char *str;
    size_t sz;

    if (s->key_index < 0) {
        core_errstr(errstr, errstr_size, "%s has no tb.key", s->name);
        return CORE_ERR_INVALID;
    }
    if (avro_value_get_type(rec) != AVRO_RECORD ||
        avro_value_get_by_index(rec, (size_t)s->key_index, &f, NULL) != 0 ||
        avro_value_get_string(&f, &str, &sz) != 0) {
        core_errstr(errstr, errstr_size, "%s: value has no string field %s", s->name,
                    s->key_field);
        return CORE_ERR_INVALID;
    }
    *keyp = str;
    if (lenp)
        *lenp = sz ? sz - 1 : 0;
    return CORE_OK;
}

static int meta_value(const core_avro_schema_t *s, avro_value_t *rec, avro_value_t *m,
                      char *errstr, size_t errstr_size)
{
    if (s->meta_index < 0) {
        core_errstr(errstr, errstr_size, "%s is not a dataset schema", s->name);
        return -1;
    }
    if (avro_value_get_type(rec) != AVRO_RECORD ||
        avro_value_get_by_index(rec, (size_t)s->meta_index, m, NULL) != 0 ||
        avro_value_get_type(m) != AVRO_RECORD) {
        core_errstr(errstr, errstr_size, "%s: value has no meta record", s->name);
        return -1;
    }
    return 0;
}

core_err_t core_avro_get_meta(const core_avro_schema_t *s, avro_value_t *rec,
                              core_avro_meta *meta, char *errstr, size_t errstr_size)
{
    avro_value_t m, f[AVM__COUNT], br;
    int op, kind, disc;
    size_t i;

    if (meta_value(s, rec, &m, errstr, errstr_size) != 0)
        return CORE_ERR_INVALID;
    for (i = 0; i < AVM__COUNT; i++)
        if (avro_value_get_by_index(&m, (size_t)s->meta_fields[i], &f[i], NULL) != 0)
            goto bad;
    memset(meta, 0, sizeof(*meta));
    if (get_str(&f[AVM_ID], &meta->id) || avro_value_get_enum(&f[AVM_OP], &op) ||
        avro_value_get_enum(&f[AVM_KIND], &kind) ||
        get_str(&f[AVM_SOURCE], &meta->source) ||
        get_str(&f[AVM_BATCH_ID], &meta->batch_id) ||
        avro_value_get_long(&f[AVM_SEQ], &meta->seq) ||
        avro_value_get_long(&f[AVM_EVENT_TIME], &meta->event_time) ||
        avro_value_get_long(&f[AVM_VERSION], &meta->version) ||
        avro_value_get_discriminant(&f[AVM_OLD_KEY], &disc) ||
        op < 0 || op > 2 || kind < 0 || kind > 1)
        goto bad;
    meta->op = (core_avro_op_t)op;
    meta->kind = (core_avro_kind_t)kind;
    if (disc == 1) {
        if (avro_value_get_current_branch(&f[AVM_OLD_KEY], &br) || get_str(&br, &meta->old_key))
            goto bad;
    }
    return CORE_OK;
bad:
    core_errstr(errstr, errstr_size, "%s: meta record does not match %s", s->name,
                META_FULLNAME);
    return CORE_ERR_INVALID;
}

core_err_t core_avro_set_meta(const core_avro_schema_t *s, avro_value_t *rec,
                              const core_avro_meta *meta, char *errstr,
                              size_t errstr_size)
{
    avro_value_t m, f[AVM__COUNT], br;
    size_t i;

    if (meta_value(s, rec, &m, errstr, errstr_size) != 0)
        return CORE_ERR_INVALID;
    if (!meta->id || !meta->source || !meta->batch_id ||
        (unsigned)meta->op > 2 || (unsigned)meta->kind > 1) {
        core_errstr(errstr, errstr_size, "meta: id, source and batch_id are required,"
                    " op and kind in range");
        return CORE_ERR_INVALID;
    }
    for (i = 0; i < AVM__COUNT; i++)
        if (avro_value_get_by_index(&m, (size_t)s->meta_fields[i], &f[i], NULL) != 0)
            goto bad;
    if (avro_value_set_string(&f[AVM_ID], meta->id) ||
        avro_value_set_enum(&f[AVM_OP], (int)meta->op) ||
        avro_value_set_enum(&f[AVM_KIND], (int)meta->kind) ||
        avro_value_set_string(&f[AVM_SOURCE], meta->source) ||
        avro_value_set_string(&f[AVM_BATCH_ID], meta->batch_id) ||
        avro_value_set_long(&f[AVM_SEQ], meta->seq) ||
        avro_value_set_long(&f[AVM_EVENT_TIME], meta->event_time) ||
        avro_value_set_long(&f[AVM_VERSION], meta->version))
        goto bad;
    if (meta->old_key) {
        if (avro_value_set_branch(&f[AVM_OLD_KEY], 1, &br) ||
            avro_value_set_string(&br, meta->old_key))
            goto bad;
    } else if (avro_value_set_branch(&f[AVM_OLD_KEY], 0, &br) || avro_value_set_null(&br)) {
        goto bad;
    }
    return CORE_OK;
bad:
    core_errstr(errstr, errstr_size, "%s: cannot set meta: %s", s->name, avro_strerror());
    return CORE_ERR_INVALID;
}
