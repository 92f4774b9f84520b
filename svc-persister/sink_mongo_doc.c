/* sink_mongo_doc.c — what the MongoDB sink sends and how it reads what the
 * server answers: a record as a BSON document (decimals as Decimal128 or
 * exact text, nested JSON as documents and arrays), a refused login, a
 * server error as a reason without values, a refusal that is the data's
 * fault (sink_mongo_int.h). */
#include "persister.h"
#include "sink_mongo_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void append_json(bson_t *doc, const char *name, const cJSON *v)
{
    if (!v || cJSON_IsNull(v)) {
        bson_append_null(doc, name, -1);
    } else if (cJSON_IsString(v)) {
        bson_append_utf8(doc, name, -1, v->valuestring, -1);
    } else if (cJSON_IsRaw(v)) {
        bson_append_int64(doc, name, -1, strtoll(v->valuestring, NULL, 10));
    } else if (cJSON_IsBool(v)) {
        bson_append_bool(doc, name, -1, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(int64_t)d && d < 9.2e18 && d > -9.2e18)
            bson_append_int64(doc, name, -1, (int64_t)d);
        else
            bson_append_double(doc, name, -1, d);
    } else if (cJSON_IsObject(v)) {
        bson_t child;
        bson_append_document_begin(doc, name, -1, &child);
        const cJSON *c;
        cJSON_ArrayForEach(c, v) append_json(&child, c->string, c);
        bson_append_document_end(doc, &child);
    } else if (cJSON_IsArray(v)) {
        bson_t child;
        char idx[16];
        int i = 0;
        bson_append_array_begin(doc, name, -1, &child);
        const cJSON *c;
        cJSON_ArrayForEach(c, v)
        {
            snprintf(idx, sizeof(idx), "%d", i++);
            append_json(&child, idx, c);
        }
        bson_append_array_end(doc, &child);
    }
}

/* The stored document: _id = key, the fields (timestamps as dates,
 * decimals as Decimal128), tb_version, tb_id, tb_batch. */
void pers_mongo_doc_build(bson_t *doc, const pers_dataset *ds, const pers_op *op, bool dec128)
{
    BSON_APPEND_UTF8(doc, "_id", op->key);
    for (size_t i = 0; i < ds->ncols; i++) {
        const pers_column *c = &ds->cols[i];
        if (c->is_key)
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(op->rec->json, c->name);
        int64_t ms;
        bson_decimal128_t dec;
        if (c->is_time_ms && cJSON_IsString(v) &&
            core_avro_time_parse(v->valuestring, &ms, NULL, 0) == CORE_OK)
            bson_append_date_time(doc, c->name, -1, ms);
        else if (dec128 && !strncmp(c->pg_type, "numeric", 7) && cJSON_IsString(v) &&
                 bson_decimal128_from_string(v->valuestring, &dec))
            bson_append_decimal128(doc, c->name, -1, &dec);
        else
            append_json(doc, c->name, v);
    }
    BSON_APPEND_INT64(doc, "tb_version", op->version);
    BSON_APPEND_UTF8(doc, "tb_id", op->rec->id ? op->rec->id : "");
    BSON_APPEND_UTF8(doc, "tb_batch", op->rec->batch_id ? op->rec->batch_id : "");
}

/* MongoDB: 18 AuthenticationFailed, 13 Unauthorized, or the client's own
 * authentication error. FerretDB 1.24 with PLAIN hands the credentials to
 * its PostgreSQL, and a refusal comes back as InternalError (code 1) with
 * PostgreSQL's text: "... failed SASL auth: FATAL: password authentication
 * failed for user \"u\" (SQLSTATE 28P01)" — class 28 (invalid
 * authorization) only; FerretDB's other InternalErrors (its PostgreSQL
 * unreachable, 08xxx) are outages. */
bool pers_mongo_login_refused(uint32_t domain, uint32_t code, const char *msg)
{
    if (domain == MONGOC_ERROR_CLIENT && code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
        return true;
    if (domain != MONGOC_ERROR_SERVER)
        return false;
    if (code == 18 || code == 13)
        return true;
    const char *st = code == 1 && msg ? strstr(msg, "(SQLSTATE 28") : NULL;
    return st && isalnum((unsigned char)st[12]) && isalnum((unsigned char)st[13]) &&
           isalnum((unsigned char)st[14]) && st[15] == ')';
}

/* Copy the name that follows \p after in msg (up to a quote, a blank or a
 * comma) into out; @returns whether there was one. */
static bool name_after(const char *msg, const char *after, char *out, size_t size)
{
    const char *p = strstr(msg, after);
    size_t n;
    if (!p || size == 0)
        return false;
    p += strlen(after);
    n = strcspn(p, "\" ,{}()");
    if (n == 0 || n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

void pers_mongo_reason(const char *msg, char *buf, size_t size)
{
    char name[128];
    const char *st = msg ? strstr(msg, "(SQLSTATE ") : NULL;
    if (!msg || size == 0) {
        if (size)
            buf[0] = '\0';
        return;
    }
    if (st) {
        /* FerretDB relays PostgreSQL: the SQLSTATE and the constraint */
        char code[6] = "";
        const char *dname;
        if (strlen(st) >= 15)
            memcpy(code, st + 10, 5);
        /* a unique violation says "duplicate key" as MongoDB's E11000
         * does: one refusal, one text, whichever write path hit it */
        const char *dup = strcmp(code, "23505") == 0 ? "duplicate key: " : "";
        dname = pers_sqlstate_name(code);
        if (name_after(msg, "constraint \"", name, sizeof(name)))
            snprintf(buf, size, "%sSQLSTATE %s %s (constraint %s)", dup, code,
                     dname ? dname : "error", name);
        else
            snprintf(buf, size, "%sSQLSTATE %s %s", dup, code, dname ? dname : "error");
        return;
    }
    if (strstr(msg, "E11000") || strstr(msg, "duplicate key")) {
        /* MongoDB: "E11000 duplicate key error collection: db.c index:
         * name_1 dup key: { name: \"John Smith\" }": the index, not the key */
        if (name_after(msg, "index: ", name, sizeof(name)))
            snprintf(buf, size, "duplicate key (index %s)", name);
        else
            snprintf(buf, size, "duplicate key");
        return;
    }
    /* anything else: its text up to the first quote or brace, where a
     * value or a document would begin */
    size_t n = strcspn(msg, "\"'{}");
    while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == ':'))
        n--;
    snprintf(buf, size, "%.*s", (int)n, msg);
}

void pers_mongo_mark_dead(pers_op *op, const char *prefix, int32_t code, const char *msg)
{
    char buf[700], why[400];
    pers_mongo_reason(msg, why, sizeof(why));
    msg = why;
    if (code)
        snprintf(buf, sizeof(buf), "%s %d: %s", prefix, (int)code, msg);
    else
        snprintf(buf, sizeof(buf), "%s: %s", prefix, msg);
    op->fate = PERS_DEAD;
    free(op->error);
    op->error = strdup(buf);
}

/* Whether a failed command was refused for the data it carries. MongoDB
 * says so per op (writeErrors); FerretDB 1.24 fails a whole `update` whose
 * replacement breaks a unique index with InternalError (code 1) and the
 * PostgreSQL error in the message: SQLSTATE class 23 (integrity
 * constraint) or 22 (data exception) is the document's fault, as in the
 * PostgreSQL sink. Probed on the stack: a replace onto another document's
 * unique name. */
bool pers_mongo_refused_data(const bson_error_t *err)
{
    if (err->domain != MONGOC_ERROR_SERVER)
        return false;
    return err->code == 11000 || strstr(err->message, "(SQLSTATE 23") != NULL ||
           strstr(err->message, "(SQLSTATE 22") != NULL;
}
