/* core_registry.c — the Schema Registry client's domain: subjects by
 * strategy, lookup and registration with references, the caches by id and
 * by subject + schema, the answers' errors. The transport:
 * core_registry_http.c. Contract: core_registry.h. */
#include "core_registry_int.h"
#include "tributary/core_httpc.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REF_DEPTH 8
#define MAX_NEGATIVE 1024 /* unknown ids remembered at most */

struct by_id {
    uint32_t id;
    char *text;
};

struct by_subject {
    char *subject;
    char *key; /* the request body: schema text and references */
    uint32_t id;
    int version;
};

struct negative {
    uint32_t id;
    int64_t until_ms;
};

struct core_registry {
    pthread_mutex_t lock;
    reg_http *http;
    char *url;
    core_registry_strategy strategy;
    bool auto_register;
    int negative_ttl_ms;
    struct by_id *ids;
    size_t nids, capids;
    struct by_subject *subs;
    size_t nsubs, capsubs;
    struct negative *neg;
    size_t nneg, capneg;
    core_registry_stats stats;
};

/* ---- strategy and subject ---------------------------------------------- */

int core_registry_strategy_parse(const char *s, core_registry_strategy *out)
{
    static const struct { const char *name; core_registry_strategy s; } names[] = {
        { "TopicNameStrategy", CORE_REGISTRY_TOPIC_NAME },
        { "topic", CORE_REGISTRY_TOPIC_NAME },
        { "io.confluent.kafka.serializers.subject.TopicNameStrategy", CORE_REGISTRY_TOPIC_NAME },
        { "RecordNameStrategy", CORE_REGISTRY_RECORD_NAME },
        { "record", CORE_REGISTRY_RECORD_NAME },
        { "io.confluent.kafka.serializers.subject.RecordNameStrategy", CORE_REGISTRY_RECORD_NAME },
    };

    for (size_t i = 0; s && i < CORE_ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].s;
            return 0;
        }
    return -1;
}

const char *core_registry_strategy_name(core_registry_strategy s)
{
    return s == CORE_REGISTRY_RECORD_NAME ? "RecordNameStrategy" : "TopicNameStrategy";
}

int core_registry_subject(core_registry_strategy s, const char *topic,
                          const char *record_fullname, char *buf, size_t size)
{
    int n;

    if (s == CORE_REGISTRY_RECORD_NAME) {
        if (!record_fullname || !*record_fullname)
            return -1;
        n = snprintf(buf, size, "%s", record_fullname);
    } else {
        if (!topic || !*topic)
            return -1;
        n = snprintf(buf, size, "%s-value", topic);
    }
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* ---- handle ------------------------------------------------------------ */

core_registry_t *core_registry_new(const core_registry_conf *conf, char *errstr,
                                   size_t errstr_size)
{
    core_registry_t *r = calloc(1, sizeof(*r));

    if (!r) {
        core_errstr(errstr, errstr_size, "registry: out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    if (!(r->http = reg_http_new(conf, errstr, errstr_size))) {
        core_registry_free(r);
        return NULL;
    }
    if (!(r->url = strdup(conf->url))) {
        core_errstr(errstr, errstr_size, "registry: out of memory");
        core_registry_free(r);
        return NULL;
    }
    r->strategy = conf->strategy;
    r->auto_register = conf->auto_register;
    r->negative_ttl_ms = conf->negative_ttl_ms > 0 ? conf->negative_ttl_ms : 10000;
    return r;
}

void core_registry_free(core_registry_t *r)
{
    if (!r)
        return;
    reg_http_free(r->http);
    for (size_t i = 0; i < r->nids; i++)
        free(r->ids[i].text);
    free(r->ids);
    for (size_t i = 0; i < r->nsubs; i++) {
        free(r->subs[i].subject);
        free(r->subs[i].key);
    }
    free(r->subs);
    free(r->neg);
    free(r->url);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

const char *core_registry_url(const core_registry_t *r)
{
    return r->url;
}

void core_registry_get_stats(core_registry_t *r, core_registry_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}

/* Grow an array of elements of size sz to hold one more. */
static bool grow(void **v, size_t *cap, size_t n, size_t sz)
{
    void *nv;
    size_t c;

    if (n < *cap)
        return true;
    c = *cap ? *cap * 2 : 8;
    if (!(nv = realloc(*v, c * sz)))
        return false;
    *v = nv;
    *cap = c;
    return true;
}

/* ---- answers ----------------------------------------------------------- */

/* The registry's error of an answer: {"error_code": N, "message": "..."}. */
static void answer_error(const reg_answer *a, int *code, char *msg, size_t size)
{
    cJSON *j = cJSON_ParseWithLength(a->body, a->len);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "error_code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");

    *code = cJSON_IsNumber(c) ? (int)c->valuedouble : a->status;
    if (cJSON_IsString(m))
        snprintf(msg, size, "%s", m->valuestring);
    else
        snprintf(msg, size, "%.200s", a->body ? a->body : "");
    for (char *p = msg; *p; p++) /* one line */
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    cJSON_Delete(j);
}

/* The class of a refusal: NOTFOUND, INVALID, TRANSIENT. */
static core_err_t refusal(const reg_answer *a, const char *what, char *errstr, size_t errstr_size)
{
    char msg[512];
    int code;

    answer_error(a, &code, msg, sizeof(msg));
    if (a->status == 401 || a->status == 403) {
        core_errstr(errstr, errstr_size, "%s: HTTP %d (check schema.registry.basic.auth.user.info "
                                         "or schema.registry.bearer.auth.file): %s",
                    what, a->status, msg);
        return CORE_ERR_INVALID;
    }
    core_errstr(errstr, errstr_size, "%s: HTTP %d, error %d: %s", what, a->status, code, msg);
    if (a->status == 404)
        return CORE_ERR_NOTFOUND;
    if (a->status == 408 || a->status == 429 || a->status >= 500)
        return CORE_ERR_TRANSIENT;
    return CORE_ERR_INVALID;
}

/* The body of a lookup or a registration. */
static char *request_body(const char *schema, const core_registry_ref *refs, size_t nrefs)
{
    cJSON *j = cJSON_CreateObject(), *arr;
    char *out = NULL;

    if (!j || !cJSON_AddStringToObject(j, "schema", schema))
        goto out;
    if (nrefs > 0) {
        if (!(arr = cJSON_AddArrayToObject(j, "references")))
            goto out;
        for (size_t i = 0; i < nrefs; i++) {
            cJSON *o = cJSON_CreateObject();

            if (!o)
                goto out;
            cJSON_AddItemToArray(arr, o);
            if (!cJSON_AddStringToObject(o, "name", refs[i].name) ||
                !cJSON_AddStringToObject(o, "subject", refs[i].subject) ||
                !cJSON_AddNumberToObject(o, "version", refs[i].version))
                goto out;
        }
    }
    out = cJSON_PrintUnformatted(j);
out:
    cJSON_Delete(j);
    return out;
}

static bool json_int(const cJSON *j, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return false;
    *out = (int64_t)v->valuedouble;
    return (double)*out == v->valuedouble;
}

/* ---- lookup and registration ------------------------------------------- */

static struct by_subject *sub_cached(core_registry_t *r, const char *subject, const char *key)
{
    for (size_t i = 0; i < r->nsubs; i++)
        if (strcmp(r->subs[i].subject, subject) == 0 && strcmp(r->subs[i].key, key) == 0)
            return &r->subs[i];
    return NULL;
}

/* Under the lock: POST to path, read "id" (and "version" when present). */
static core_err_t post_id(core_registry_t *r, const char *path, const char *body,
                          const char *what, uint32_t *idp, int *versionp, char *errstr,
                          size_t errstr_size)
{
    reg_answer a;
    core_err_t err;
    cJSON *j;
    int64_t id, version = 0;

    if ((err = reg_http_do(r->http, "POST", path, body, &a, &r->stats.requests, errstr,
                           errstr_size)) != CORE_OK)
        return err;
    if (a.status != 200) {
        err = refusal(&a, what, errstr, errstr_size);
        free(a.body);
        return err;
    }
    j = cJSON_ParseWithLength(a.body, a.len);
    if (!json_int(j, "id", 1, INT32_MAX, &id)) {
        core_errstr(errstr, errstr_size, "%s: the answer has no id in 1..2^31-1: %.200s", what,
                    a.body);
        err = CORE_ERR_INVALID;
    } else {
        *idp = (uint32_t)id;
        if (versionp)
            *versionp = json_int(j, "version", 1, INT32_MAX, &version) ? (int)version : 0;
    }
    cJSON_Delete(j);
    free(a.body);
    return err;
}

core_err_t core_registry_lookup(core_registry_t *r, const char *subject, const char *schema,
                                const core_registry_ref *refs, size_t nrefs, bool do_register,
                                uint32_t *idp, int *versionp, char *errstr, size_t errstr_size)
{
    char *body = request_body(schema, refs, nrefs), *esc = NULL, *path = NULL, what[400];
    struct by_subject *c;
    uint32_t id = 0;
    int version = 0;
    core_err_t err;

    if (!body || !(esc = core_httpc_escape(subject, strlen(subject))) ||
        !(path = malloc(strlen(esc) + 64))) {
        free(body);
        free(esc);
        core_errstr(errstr, errstr_size, "registry: out of memory");
        return CORE_ERR_NOMEM;
    }
    pthread_mutex_lock(&r->lock);
    if ((c = sub_cached(r, subject, body))) {
        r->stats.hits++;
        *idp = c->id;
        if (versionp)
            *versionp = c->version;
        err = CORE_OK;
        goto out;
    }
    /* the lookup first: an existing version is found without a write */
    sprintf(path, "/subjects/%s", esc);
    snprintf(what, sizeof(what), "registry %s: subject %s: lookup", r->url, subject);
    err = post_id(r, path, body, what, &id, &version, errstr, errstr_size);
    if (err == CORE_ERR_NOTFOUND && do_register) {
        sprintf(path, "/subjects/%s/versions", esc);
        snprintf(what, sizeof(what), "registry %s: subject %s: register", r->url, subject);
        if ((err = post_id(r, path, body, what, &id, NULL, errstr, errstr_size)) == CORE_OK) {
            /* the version, for references to it */
            sprintf(path, "/subjects/%s", esc);
            snprintf(what, sizeof(what), "registry %s: subject %s: lookup after registering",
                     r->url, subject);
            err = post_id(r, path, body, what, &id, &version, errstr, errstr_size);
        }
    } else if (err == CORE_ERR_NOTFOUND) {
        char why[512];

        snprintf(why, sizeof(why), "%s", errstr);
        core_errstr(errstr, errstr_size, "subject %s at %s: schema not registered and "
                                         "schema.registry.auto.register.schemas is false (%s)",
                    subject, r->url, why);
    }
    if (err == CORE_OK) {
        *idp = id;
        if (versionp)
            *versionp = version;
        if (grow((void **)&r->subs, &r->capsubs, r->nsubs, sizeof(*r->subs))) {
            struct by_subject *n = &r->subs[r->nsubs];

            if ((n->subject = strdup(subject))) {
                n->key = body;
                body = NULL;
                n->id = id;
                n->version = version;
                r->nsubs++;
            }
        }
    }
out:
    pthread_mutex_unlock(&r->lock);
    free(body);
    free(esc);
    free(path);
    return err;
}

core_err_t core_registry_check_compat(core_registry_t *r, const char *subject,
                                      const char *schema, const core_registry_ref *refs,
                                      size_t nrefs, bool *compatible, char *errstr,
                                      size_t errstr_size)
{
    char *body = request_body(schema, refs, nrefs), *esc = NULL, *path = NULL, what[400];
    reg_answer a;
    core_err_t err;

    if (!body || !(esc = core_httpc_escape(subject, strlen(subject))) ||
        !(path = malloc(strlen(esc) + 80))) {
        free(body);
        free(esc);
        core_errstr(errstr, errstr_size, "registry: out of memory");
        return CORE_ERR_NOMEM;
    }
    sprintf(path, "/compatibility/subjects/%s/versions/latest?verbose=true", esc);
    snprintf(what, sizeof(what), "registry %s: subject %s: compatibility", r->url, subject);
    pthread_mutex_lock(&r->lock);
    err = reg_http_do(r->http, "POST", path, body, &a, &r->stats.requests, errstr, errstr_size);
    pthread_mutex_unlock(&r->lock);
    if (err == CORE_OK) {
        if (a.status != 200) {
            err = refusal(&a, what, errstr, errstr_size);
        } else {
            cJSON *j = cJSON_ParseWithLength(a.body, a.len);
            const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "is_compatible");
            const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *m;
            size_t n = 0;

            if (!cJSON_IsBool(ok)) {
                core_errstr(errstr, errstr_size, "%s: no is_compatible in %.200s", what, a.body);
                err = CORE_ERR_INVALID;
            } else {
                *compatible = cJSON_IsTrue(ok);
                if (errstr_size)
                    errstr[0] = '\0';
                cJSON_ArrayForEach(m, msgs)
                    if (cJSON_IsString(m) && n + 3 < errstr_size)
                        n += (size_t)snprintf(errstr + n, errstr_size - n, "%s%s",
                                              n ? "; " : "", m->valuestring);
            }
            cJSON_Delete(j);
        }
        free(a.body);
    }
    free(body);
    free(esc);
    free(path);
    return err;
}

/* ---- by id ------------------------------------------------------------- */

core_err_t core_registry_get(core_registry_t *r, uint32_t id, char **textp, char *errstr,
                             size_t errstr_size)
{
    char path[64], what[300];
    reg_answer a;
    core_err_t err;
    int64_t now = core_mono_ms();

    *textp = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nids; i++)
        if (r->ids[i].id == id) {
            r->stats.hits++;
            *textp = strdup(r->ids[i].text);
            pthread_mutex_unlock(&r->lock);
            if (!*textp) {
                core_errstr(errstr, errstr_size, "registry: out of memory");
                return CORE_ERR_NOMEM;
            }
            return CORE_OK;
        }
    for (size_t i = 0; i < r->nneg; i++)
        if (r->neg[i].id == id && r->neg[i].until_ms > now) {
            r->stats.hits++;
            pthread_mutex_unlock(&r->lock);
            core_errstr(errstr, errstr_size, "schema id %u is not in the registry at %s", id,
                        r->url);
            return CORE_ERR_NOTFOUND;
        }
    snprintf(path, sizeof(path), "/schemas/ids/%u", id);
    snprintf(what, sizeof(what), "registry %s: schema id %u", r->url, id);
    err = reg_http_do(r->http, "GET", path, NULL, &a, &r->stats.requests, errstr, errstr_size);
    if (err == CORE_OK) {
        if (a.status != 200) {
            err = refusal(&a, what, errstr, errstr_size);
            if (err == CORE_ERR_NOTFOUND) {
                size_t i;

                core_errstr(errstr, errstr_size, "schema id %u is not in the registry at %s",
                            id, r->url);
                /* bounded: ids from untrusted records; expired ones go first */
                for (i = 0; i < r->nneg;)
                    if (r->neg[i].until_ms <= now)
                        r->neg[i] = r->neg[--r->nneg];
                    else
                        i++;
                for (i = 0; i < r->nneg && r->neg[i].id != id; i++)
                    ;
                if (i == r->nneg && r->nneg == MAX_NEGATIVE)
                    i = (size_t)id % MAX_NEGATIVE; /* full: replace one */
                if (i < r->nneg || grow((void **)&r->neg, &r->capneg, r->nneg, sizeof(*r->neg))) {
                    r->neg[i].id = id;
                    r->neg[i].until_ms = now + r->negative_ttl_ms;
                    if (i == r->nneg)
                        r->nneg++;
                }
            }
        } else {
            cJSON *j = cJSON_ParseWithLength(a.body, a.len);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "schema");
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "schemaType");

            if (!cJSON_IsString(s)) {
                core_errstr(errstr, errstr_size, "%s: no schema in the answer", what);
                err = CORE_ERR_INVALID;
            } else if (cJSON_IsString(type) && strcmp(type->valuestring, "AVRO") != 0) {
                core_errstr(errstr, errstr_size, "%s: a %s schema, not Avro", what,
                            type->valuestring);
                err = CORE_ERR_INVALID;
            } else if (!(*textp = strdup(s->valuestring)) ||
                       !grow((void **)&r->ids, &r->capids, r->nids, sizeof(*r->ids)) ||
                       !(r->ids[r->nids].text = strdup(s->valuestring))) {
                free(*textp);
                *textp = NULL;
                core_errstr(errstr, errstr_size, "registry: out of memory");
                err = CORE_ERR_NOMEM;
            } else {
                r->ids[r->nids++].id = id;
            }
            cJSON_Delete(j);
        }
        free(a.body);
    }
    pthread_mutex_unlock(&r->lock);
    return err;
}

core_err_t core_registry_fetch(void *registry, uint32_t id, char **json, char *errstr,
                               size_t errstr_size)
{
    return core_registry_get(registry, id, json, errstr, errstr_size);
}

/* ---- catalogue schemas ------------------------------------------------- */

/* The schema file's JSON, minified: the same text from every service. */
static char *schema_text(const core_avro_schema_t *s, cJSON **jp, char *errstr,
                         size_t errstr_size)
{
    size_t len;
    char *raw = core_read_file(core_avro_schema_file(s), CORE_AVRO_MAX_FILE, &len, errstr,
                               errstr_size), *out;
    cJSON *j;

    if (!raw)
        return NULL;
    j = cJSON_ParseWithLength(raw, len);
    free(raw);
    if (!j || !(out = cJSON_PrintUnformatted(j))) {
        cJSON_Delete(j);
        core_errstr(errstr, errstr_size, "%s: not JSON, or out of memory",
                    core_avro_schema_file(s));
        return NULL;
    }
    *jp = j;
    return out;
}

/* The named schemas of the catalogue (not datasets) used as types in j. */
static void find_refs(const core_avro_catalog_t *cat, const cJSON *j, bool type_pos,
                      const core_avro_schema_t **refs, size_t *n, size_t max)
{
    const cJSON *c;

    if (cJSON_IsString(j) && type_pos) {
        const core_avro_schema_t *s = core_avro_catalog_by_name(cat, j->valuestring);

        if (s && !core_avro_schema_dataset(s)) {
            for (size_t i = 0; i < *n; i++)
                if (refs[i] == s)
                    return;
            if (*n < max)
                refs[(*n)++] = s;
        }
        return;
    }
    if (cJSON_IsArray(j)) {
        cJSON_ArrayForEach(c, j)
            find_refs(cat, c, type_pos, refs, n, max);
        return;
    }
    if (!cJSON_IsObject(j))
        return;
    cJSON_ArrayForEach(c, j) {
        bool t = strcmp(c->string, "type") == 0 || strcmp(c->string, "items") == 0 ||
                 strcmp(c->string, "values") == 0;

        if (t || strcmp(c->string, "fields") == 0)
            find_refs(cat, c, t, refs, n, max);
    }
}

/* Look up (or register) s under subject, its references first; with
 * compatp, ask whether it is compatible instead of the last lookup. */
static core_err_t bind_schema(core_registry_t *r, const core_avro_catalog_t *cat,
                              const core_avro_schema_t *s, const char *subject, int depth,
                              uint32_t *idp, int *versionp, bool *compatp, char *errstr,
                              size_t errstr_size)
{
    const core_avro_schema_t *used[16];
    core_registry_ref refs[16];
    char subjects[16][256];
    size_t nused = 0;
    cJSON *j = NULL;
    char *text;
    core_err_t err = CORE_OK;

    if (depth > MAX_REF_DEPTH) {
        core_errstr(errstr, errstr_size, "%s: references nest deeper than %d",
                    core_avro_schema_file(s), MAX_REF_DEPTH);
        return CORE_ERR_INVALID;
    }
    if (!(text = schema_text(s, &j, errstr, errstr_size)))
        return CORE_ERR_INVALID;
    find_refs(cat, j, false, used, &nused, CORE_ARRAY_SIZE(used));
    cJSON_Delete(j);
    for (size_t i = 0; i < nused && err == CORE_OK; i++) {
        uint32_t rid;

        /* a reference's subject is its full name, whatever the strategy */
        snprintf(subjects[i], sizeof(subjects[i]), "%s", core_avro_schema_name(used[i]));
        refs[i].name = core_avro_schema_name(used[i]);
        refs[i].subject = subjects[i];
        err = bind_schema(r, cat, used[i], subjects[i], depth + 1, &rid, &refs[i].version, NULL,
                          errstr, errstr_size);
    }
    if (err == CORE_OK && compatp)
        err = core_registry_check_compat(r, subject, text, refs, nused, compatp, errstr,
                                         errstr_size);
    else if (err == CORE_OK)
        err = core_registry_lookup(r, subject, text, refs, nused, r->auto_register, idp, versionp,
                                   errstr, errstr_size);
    free(text);
    return err;
}

core_err_t core_registry_bind(core_registry_t *r, core_avro_catalog_t *cat,
                              const core_avro_schema_t *schema, const char *topic,
                              uint32_t *idp, char *errstr, size_t errstr_size)
{
    char subject[256];
    uint32_t id = 0;
    int version = 0;
    core_err_t err;

    if (core_registry_subject(r->strategy, topic, core_avro_schema_name(schema), subject,
                              sizeof(subject)) < 0) {
        core_errstr(errstr, errstr_size, "registry: no subject for schema %s on topic '%s'",
                    core_avro_schema_name(schema), topic ? topic : "");
        return CORE_ERR_INVALID;
    }
    if ((err = bind_schema(r, cat, schema, subject, 0, &id, &version, NULL, errstr,
                           errstr_size)) != CORE_OK)
        return err;
    if ((err = core_avro_catalog_set_id(cat, schema, id, errstr, errstr_size)) != CORE_OK)
        return err;
    if (idp)
        *idp = id;
    return CORE_OK;
}

core_err_t core_registry_bind_subject(core_registry_t *r, const core_avro_catalog_t *cat,
                                      const core_avro_schema_t *schema, const char *subject,
                                      uint32_t *idp, char *errstr, size_t errstr_size)
{
    int version = 0;

    return bind_schema(r, cat, schema, subject, 0, idp, &version, NULL, errstr, errstr_size);
}

core_err_t core_registry_check_schema(core_registry_t *r, const core_avro_catalog_t *cat,
                                      const core_avro_schema_t *schema, const char *subject,
                                      bool *compatible, char *errstr, size_t errstr_size)
{
    uint32_t id = 0;
    int version = 0;

    *compatible = false;
    return bind_schema(r, cat, schema, subject, 0, &id, &version, compatible, errstr,
                       errstr_size);
}

/* Under no lock: one request whose answer must be 200 (or 404 when
 * missing_ok). */
static core_err_t simple(core_registry_t *r, const char *method, const char *path,
                         const char *body, const char *what, bool missing_ok, char *errstr,
                         size_t errstr_size)
{
    reg_answer a;
    core_err_t err;

    pthread_mutex_lock(&r->lock);
    err = reg_http_do(r->http, method, path, body, &a, &r->stats.requests, errstr, errstr_size);
    pthread_mutex_unlock(&r->lock);
    if (err != CORE_OK)
        return err;
    if (a.status != 200 && !(missing_ok && a.status == 404))
        err = refusal(&a, what, errstr, errstr_size);
    free(a.body);
    return err;
}

core_err_t core_registry_set_compat(core_registry_t *r, const char *subject, const char *level,
                                    char *errstr, size_t errstr_size)
{
    char *esc = core_httpc_escape(subject, strlen(subject)), path[600], body[64], what[400];
    core_err_t err;

    if (!esc || strlen(esc) > 500 || strlen(level) > 32) {
        free(esc);
        core_errstr(errstr, errstr_size, "registry: subject or level too long, or out of memory");
        return CORE_ERR_INVALID;
    }
    snprintf(path, sizeof(path), "/config/%s", esc);
    snprintf(body, sizeof(body), "{\"compatibility\":\"%s\"}", level);
    snprintf(what, sizeof(what), "registry %s: subject %s: set compatibility %s", r->url, subject,
             level);
    err = simple(r, "PUT", path, body, what, false, errstr, errstr_size);
    free(esc);
    return err;
}

core_err_t core_registry_delete_subject(core_registry_t *r, const char *subject, char *errstr,
                                        size_t errstr_size)
{
    char *esc = core_httpc_escape(subject, strlen(subject)), path[600], what[400];
    core_err_t err;

    if (!esc || strlen(esc) > 500) {
        free(esc);
        core_errstr(errstr, errstr_size, "registry: subject too long, or out of memory");
        return CORE_ERR_INVALID;
    }
    snprintf(what, sizeof(what), "registry %s: subject %s: delete", r->url, subject);
    snprintf(path, sizeof(path), "/subjects/%s", esc);
    err = simple(r, "DELETE", path, NULL, what, true, errstr, errstr_size);
    snprintf(path, sizeof(path), "/subjects/%s?permanent=true", esc);
    if (err == CORE_OK)
        err = simple(r, "DELETE", path, NULL, what, true, errstr, errstr_size);
    free(esc);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nsubs;) {
        if (strcmp(r->subs[i].subject, subject) == 0) {
            free(r->subs[i].subject);
            free(r->subs[i].key);
            r->subs[i] = r->subs[--r->nsubs];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return err;
}
