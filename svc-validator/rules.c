/* rules.c — compile and evaluate a dataset's validation rules (rules.h):
 * bounds, types, patterns (pattern.c), checks (checks.c), externals. */
#include "rules.h"
#include "bounds.h"
#include "checks.h"
#include "pattern.h"

#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_httpc.h"
#include "tributary/core_number.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The checks, in the order of vrules_checks[]. */
enum { VK_ABA, VK_LUHN, VK_IBAN, VK_ISO3166, VK_ISO4217, VK_EMAIL, VK_NOT_FUTURE };
const char *const vrules_checks[] = { "aba", "luhn", "iban", "iso3166_alpha2", "iso4217",
                                     "email", "not_future" };
const size_t vrules_nchecks = CORE_ARRAY_SIZE(vrules_checks);
const char *const vrules_types[] = { "integer", "number", "boolean", "uuid", "json",
                                     "json_object", "timestamp" };
const size_t vrules_ntypes = CORE_ARRAY_SIZE(vrules_types);

/* A rule's constraints, for its failure messages. */
enum { VC_REQUIRED, VC_TYPE, VC_PATTERN, VC_MIN, VC_MAX, VC_LENGTH, VC_ENUM, VC_CHECK,
       VC__COUNT };

typedef struct vrule {
    const char *field;
    const char *message;
    bool required;
    const char *type;
    bool has_re;
    regex_t re;
    vpattern *fast; /* the same pattern, matched without regexec; or NULL */
    core_avro_num_type ntype; /* the field's type; NONE without a schema */
    bool has_min, has_max;
    vbound min, max;
    vbound *enum_num; /* the enum's numbers, in order */
    size_t nenum_num;
    bool has_len;
    int64_t len_min, len_max;
    const cJSON *enumv;
    const char *check;
    int check_id; /* VK_*, resolved once: no name comparisons per record */
    int ext; /* index into externals or -1 */
    /* The failure message of each constraint, made once (vrules_new()):
     * the rule's message, or "<field> <generic text>". */
    char *msg[VC__COUNT];
} vrule;

struct vrules {
    cJSON *json; /* own copy: rule strings point into it */
    vrule *rules;
    size_t n;
    vr_external *ext;
    size_t next;
    int64_t skew_ms;
};

/* A record's value as its natural JSON shows it: from a cJSON tree or from
 * an Avro value (core_avro_path_get()); every check below reads this. */
typedef core_avro_natural vval;

static vval vval_of(const cJSON *j)
{
    vval v = { 0 };

    if (!j)
        v.kind = CORE_AVRO_NAT_ABSENT;
    else if (cJSON_IsNull(j))
        v.kind = CORE_AVRO_NAT_NULL;
    else if (cJSON_IsBool(j)) {
        v.kind = CORE_AVRO_NAT_BOOL;
        v.boolean = cJSON_IsTrue(j);
    } else if (cJSON_IsNumber(j)) {
        v.kind = CORE_AVRO_NAT_NUMBER;
        v.number = j->valuedouble;
    } else if (cJSON_IsRaw(j)) {
        v.kind = CORE_AVRO_NAT_RAW;
        v.text = j->valuestring;
    } else if (cJSON_IsString(j)) {
        v.kind = CORE_AVRO_NAT_STRING;
        v.text = j->valuestring;
    } else if (cJSON_IsArray(j))
        v.kind = CORE_AVRO_NAT_ARRAY;
    else
        v.kind = CORE_AVRO_NAT_OBJECT;
    return v;
}

/* The text of a string value, else NULL. */
static const char *vval_str(const vval *v)
{
    return v->kind == CORE_AVRO_NAT_STRING ? v->text : NULL;
}

void vrules_free(vrules_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->rules[i].has_re)
            regfree(&r->rules[i].re);
        vpattern_free(r->rules[i].fast);
        free(r->rules[i].enum_num);
        for (int c = 0; c < VC__COUNT; c++)
            free(r->rules[i].msg[c]);
    }
    free(r->rules);
    free(r->ext);
    cJSON_Delete(r->json);
    free(r);
}

static const char *str_item(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* An int setting of a rule (core_avro checked its range at load). */
static int int_item(const cJSON *o, const char *k, int def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    core_number n;
    int64_t v;

    if (cJSON_IsRaw(j))
        return core_number_parse(j->valuestring, &n) == CORE_OK &&
                       core_number_int64(&n, INT32_MIN, INT32_MAX, &v)
                   ? (int)v
                   : def;
    return cJSON_IsNumber(j) ? (int)j->valuedouble : def;
}

/* Read bound j (min, max or an enum entry; what) of rule idx into *b, and
 * check that the field's type can hold it. @returns 0, or -1 with errstr
 * naming the rule. */
static int bound_of(const vrule *v, size_t idx, const char *what, const cJSON *j, vbound *b,
                    char *errstr, size_t errstr_size)
{
    char why[160];

    if (vbound_parse(&v->ntype, what, j, b, why, sizeof(why)) == 0)
        return 0;
    core_errstr(errstr, errstr_size, "rules: rule %zu (%s): %s", idx, v->field, why);
    return -1;
}

/* The bounds of rule v (index idx) in rule object it, checked against the
 * field's type. @returns 0, or -1 with errstr. */
static int bounds_of(vrule *v, size_t idx, const cJSON *it, char *errstr, size_t errstr_size)
{
    const cJSON *k, *e;
    size_t n = 0;

    if ((k = cJSON_GetObjectItemCaseSensitive(it, "min"))) {
        if (bound_of(v, idx, "min", k, &v->min, errstr, errstr_size) != 0)
            return -1;
        v->has_min = true;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(it, "max"))) {
        if (bound_of(v, idx, "max", k, &v->max, errstr, errstr_size) != 0)
            return -1;
        v->has_max = true;
    }
    if (!v->enumv)
        return 0;
    cJSON_ArrayForEach(e, v->enumv)
        n += cJSON_IsNumber(e) || cJSON_IsRaw(e);
    if (n == 0)
        return 0;
    if (!(v->enum_num = calloc(n, sizeof(*v->enum_num)))) {
        core_errstr(errstr, errstr_size, "rules: out of memory");
        return -1;
    }
    cJSON_ArrayForEach(e, v->enumv) {
        if (!cJSON_IsNumber(e) && !cJSON_IsRaw(e))
            continue;
        if (bound_of(v, idx, "enum", e, &v->enum_num[v->nenum_num], errstr, errstr_size) != 0)
            return -1;
        v->nenum_num++;
    }
    return 0;
}

/* The failure messages of v's constraints: its own message, or the field
 * and a generic text (as vr_failure.message shows them, truncated). */
static int make_messages(vrule *v)
{
    char generic[VC__COUNT][96];
    char full[sizeof(((vr_failure *)0)->message)];

    snprintf(generic[VC_REQUIRED], sizeof(generic[0]), "is required");
    snprintf(generic[VC_TYPE], sizeof(generic[0]), "is not of type %s",
             v->type ? v->type : "");
    snprintf(generic[VC_PATTERN], sizeof(generic[0]), "does not match the pattern");
    snprintf(generic[VC_MIN], sizeof(generic[0]), "is below the minimum %s", v->min.text);
    snprintf(generic[VC_MAX], sizeof(generic[0]), "is above the maximum %s", v->max.text);
    snprintf(generic[VC_LENGTH], sizeof(generic[0]), "has a length out of bounds");
    snprintf(generic[VC_ENUM], sizeof(generic[0]), "is not one of the allowed values");
    snprintf(generic[VC_CHECK], sizeof(generic[0]), "fails the %s check",
             v->check ? v->check : "");
    for (int c = 0; c < VC__COUNT; c++) {
        if (v->message)
            snprintf(full, sizeof(full), "%s", v->message);
        else
            snprintf(full, sizeof(full), "%s %s", v->field, generic[c]);
        if (!(v->msg[c] = strdup(full)))
            return -1;
    }
    return 0;
}

vrules_t *vrules_new(const cJSON *rules, const core_avro_schema_t *schema, int64_t clock_skew_ms,
                     char *errstr, size_t errstr_size)
{
    vrules_t *r = calloc(1, sizeof(*r));
    const cJSON *arr, *it;
    size_t i = 0;

    if (!r)
        goto nomem;
    r->skew_ms = clock_skew_ms;
    if (!rules)
        return r;
    r->json = cJSON_Duplicate(rules, 1);
    if (!r->json)
        goto nomem;
    arr = cJSON_GetObjectItemCaseSensitive(r->json, "rules");
    if (!cJSON_IsArray(arr)) {
        core_errstr(errstr, errstr_size, "rules: no \"rules\" array");
        vrules_free(r);
        return NULL;
    }
    r->n = (size_t)cJSON_GetArraySize(arr);
    r->rules = calloc(r->n ? r->n : 1, sizeof(*r->rules));
    r->ext = calloc(r->n ? r->n : 1, sizeof(*r->ext));
    if (!r->rules || !r->ext)
        goto nomem;
    cJSON_ArrayForEach(it, arr) {
        vrule *v = &r->rules[i];
        const cJSON *k;

        v->ext = -1;
        v->field = str_item(it, "field");
        v->message = str_item(it, "message");
        if (!v->field) {
            core_errstr(errstr, errstr_size, "rules: rule %zu has no field", i);
            goto fail;
        }
        k = cJSON_GetObjectItemCaseSensitive(it, "required");
        v->required = cJSON_IsTrue(k);
        v->type = str_item(it, "type");
        if ((k = cJSON_GetObjectItemCaseSensitive(it, "pattern"))) {
            int rc = regcomp(&v->re, cJSON_GetStringValue(k) ? k->valuestring : "",
                             REG_EXTENDED | REG_NOSUB);
            if (rc) {
                core_errstr(errstr, errstr_size, "rules: %s: pattern does not compile", v->field);
                goto fail;
            }
            v->has_re = true;
            v->fast = vpattern_compile(cJSON_GetStringValue(k) ? k->valuestring : "");
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(it, "length"))) {
            v->has_len = true;
            v->len_min = int_item(k, "min", 0);
            v->len_max = cJSON_GetObjectItemCaseSensitive(k, "max") ? int_item(k, "max", 0)
                                                                     : INT64_MAX;
        }
        v->enumv = cJSON_GetObjectItemCaseSensitive(it, "enum");
        if (schema)
            (void)core_avro_schema_path_num_type(schema, v->field, &v->ntype);
        if (bounds_of(v, i, it, errstr, errstr_size) != 0)
            goto fail;
        if ((v->check = str_item(it, "check"))) {
            bool known = false;

            for (size_t c = 0; c < vrules_nchecks && !known; c++)
                if (strcmp(vrules_checks[c], v->check) == 0) {
                    known = true;
                    v->check_id = (int)c;
                }
            if (!known) {
                core_errstr(errstr, errstr_size, "rules: %s: unknown check \"%s\"", v->field,
                            v->check);
                goto fail;
            }
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(it, "external"))) {
            vr_external *e = &r->ext[r->next];

            e->field = v->field;
            e->url = str_item(k, "url");
            e->method = str_item(k, "method") ? str_item(k, "method") : "GET";
            e->cache_ttl_s = int_item(k, "cache_ttl_s", 0);
            e->negative_ttl_s = int_item(k, "negative_ttl_s", 0);
            e->timeout_ms = int_item(k, "timeout_ms", 0);
            e->message = v->message;
            if (!e->url) {
                core_errstr(errstr, errstr_size, "rules: %s: external without url", v->field);
                goto fail;
            }
            v->ext = (int)r->next++;
        }
        if (make_messages(v) != 0) {
            core_errstr(errstr, errstr_size, "rules: out of memory");
            goto fail;
        }
        i++;
        continue;
fail:
        r->n = i + 1; /* free what was compiled, this rule included */
        vrules_free(r);
        return NULL;
    }
    return r;
nomem:
    core_errstr(errstr, errstr_size, "rules: out of memory");
    vrules_free(r);
    return NULL;
}

size_t vrules_count(const vrules_t *r) { return r ? r->n : 0; }
size_t vrules_nexternal(const vrules_t *r) { return r ? r->next : 0; }
const vr_external *vrules_external(const vrules_t *r, size_t i)
{
    return r && i < r->next ? &r->ext[i] : NULL;
}

const cJSON *vrules_lookup(const cJSON *rec, const char *path)
{
    const cJSON *cur = rec;
    char part[128];

    while (cur && *path) {
        size_t n = strcspn(path, ".");

        if (n >= sizeof(part) || !cJSON_IsObject(cur))
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        path += n;
        if (*path == '.')
            path++;
    }
    return cur;
}

static bool vval_time_ms(const vval *v, int64_t *msp)
{
    if (v->has_ms) { /* what parsing its text would give */
        *msp = v->ms;
        return true;
    }
    if (v->kind == CORE_AVRO_NAT_NUMBER) {
        *msp = (int64_t)v->number;
        return true;
    }
    if (v->kind == CORE_AVRO_NAT_STRING && v->text) {
        const char *s = v->text;

        if (core_avro_time_parse(s, msp, NULL, 0) == CORE_OK)
            return true;
        if (strlen(s) == 10 && s[4] == '-' && s[7] == '-') {
            char buf[32];

            snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
            return core_avro_time_parse(buf, msp, NULL, 0) == CORE_OK;
        }
    }
    return false;
}

bool vrules_time_ms(const cJSON *v, int64_t *msp)
{
    vval vv = vval_of(v);

    return vval_time_ms(&vv, msp);
}

/* ---- evaluation --------------------------------------------------------- */

static bool type_ok(const char *type, const vval *v)
{
    const char *s = vval_str(v);
    char *end;

    if (strcmp(type, "integer") == 0) {
        if (v->kind == CORE_AVRO_NAT_NUMBER)
            return v->number == floor(v->number);
        if (!s || !*s)
            return false;
        errno = 0;
        (void)strtoll(s, &end, 10);
        return *end == '\0' && errno == 0;
    }
    if (strcmp(type, "number") == 0) {
        core_number n;

        if (v->kind == CORE_AVRO_NAT_NUMBER)
            return true;
        return s && core_number_parse(s, &n) == CORE_OK;
    }
    if (strcmp(type, "boolean") == 0)
        return v->kind == CORE_AVRO_NAT_BOOL ||
               (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0));
    if (strcmp(type, "uuid") == 0)
        return vcheck_uuid(s);
    if (strcmp(type, "json") == 0 || strcmp(type, "json_object") == 0) {
        cJSON *j;
        bool ok;

        if (!s)
            return false;
        j = cJSON_ParseWithOpts(s, NULL, 1);
        ok = j && (strcmp(type, "json") == 0 || cJSON_IsObject(j));
        cJSON_Delete(j);
        return ok;
    }
    if (strcmp(type, "timestamp") == 0) {
        int64_t ms;

        return vval_time_ms(v, &ms);
    }
    return false;
}

/* The value for min and max: a number, or a time as ms. */
static bool value_number(const vrule *r, const vval *v, vnum *x)
{
    int64_t ms;

    if (vbound_value(&r->ntype, v, x))
        return true;
    if (vval_time_ms(v, &ms)) {
        x->dbl = false;
        core_number_from_int64(ms, &x->n);
        return true;
    }
    return false;
}

static bool enum_ok(const vrule *r, const vval *v)
{
    const cJSON *e;
    const char *s = vval_str(v);
    vnum x;

    cJSON_ArrayForEach(e, r->enumv)
        if (cJSON_IsString(e) && s && strcmp(e->valuestring, s) == 0)
            return true;
    if (r->nenum_num && vbound_value(&r->ntype, v, &x))
        for (size_t i = 0; i < r->nenum_num; i++)
            if (vbound_cmp(&x, &r->enum_num[i]) == 0)
                return true;
    return false;
}

static void fail(vr_failure *out, size_t max, size_t *nf, const vrule *v, const char *rule,
                 int c)
{
    if (*nf < max) {
        vr_failure *f = &out[*nf];
        size_t n = strlen(v->msg[c]); /* made to fit */

        f->field = v->field;
        f->rule = rule;
        memcpy(f->message, v->msg[c], n + 1);
    }
    (*nf)++;
}

static bool check_ok(int check_id, const vval *v, int64_t now_ms, int64_t skew_ms)
{
    const char *s = vval_str(v);

    if (check_id == VK_NOT_FUTURE) {
        int64_t ms;

        return vval_time_ms(v, &ms) && ms <= now_ms + skew_ms;
    }
    if (!s)
        return false;
    switch (check_id) {
    case VK_ABA: return vcheck_aba(s);
    case VK_LUHN: return vcheck_luhn(s);
    case VK_IBAN: return vcheck_iban(s);
    case VK_ISO3166: return vcheck_iso3166_alpha2(s);
    case VK_ISO4217: return vcheck_iso4217(s);
    case VK_EMAIL: return vcheck_email(s);
    default: return false;
    }
}

/* Every local constraint of rule v on the value val. */
static void eval_rule(const vrules_t *r, const vrule *v, const vval *val, int64_t now_ms,
                      vr_failure *out, size_t max, size_t *nf)
{
    bool absent = val->kind == CORE_AVRO_NAT_ABSENT || val->kind == CORE_AVRO_NAT_NULL ||
                  (val->kind == CORE_AVRO_NAT_STRING && val->text[0] == '\0');
    const char *s = vval_str(val);
    vnum d;

    if (absent) {
        if (v->required)
            fail(out, max, nf, v, "required", VC_REQUIRED);
        return;
    }
    if (v->type && !type_ok(v->type, val))
        fail(out, max, nf, v, "type", VC_TYPE);
    if (v->has_re && (!s || !(v->fast ? vpattern_match(v->fast, s)
                                      : regexec(&v->re, s, 0, NULL, 0) == 0)))
        fail(out, max, nf, v, "pattern", VC_PATTERN);
    if (v->has_min || v->has_max) {
        bool num = value_number(v, val, &d);

        if (v->has_min && (!num || vbound_cmp(&d, &v->min) < 0))
            fail(out, max, nf, v, "min", VC_MIN);
        if (v->has_max && (!num || vbound_cmp(&d, &v->max) > 0))
            fail(out, max, nf, v, "max", VC_MAX);
    }
    if (v->has_len) {
        int64_t len = s ? (int64_t)strlen(s) : -1;

        if (len < v->len_min || len > v->len_max)
            fail(out, max, nf, v, "length", VC_LENGTH);
    }
    if (v->enumv && !enum_ok(v, val))
        fail(out, max, nf, v, "enum", VC_ENUM);
    if (v->check && !check_ok(v->check_id, val, now_ms, r->skew_ms))
        fail(out, max, nf, v, v->check, VC_CHECK);
}

size_t vrules_eval(const vrules_t *r, const cJSON *rec, int64_t now_ms,
                   vr_failure *out, size_t max)
{
    size_t nf = 0;

    if (!r)
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        const vrule *v = &r->rules[i];
        vval val = vval_of(vrules_lookup(rec, v->field));

        eval_rule(r, v, &val, now_ms, out, max, &nf);
    }
    return nf;
}

/* ---- evaluation on Avro values ------------------------------------------ */

/* A rule field's part longer than this is never found (vrules_lookup()). */
#define PART_MAX 128

static bool parts_short(const char *path)
{
    while (*path) {
        size_t n = strcspn(path, ".");

        if (n >= PART_MAX)
            return false;
        path += n;
        if (*path == '.')
            path++;
    }
    return true;
}

struct vrules_bound {
    const vrules_t *r;
    const core_avro_schema_t *schema;
    core_avro_path_t **paths; /* one per rule */
};

void vrules_unbind(vrules_bound_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->paths && i < b->r->n; i++)
        core_avro_path_free(b->paths[i]);
    free(b->paths);
    free(b);
}

vrules_bound_t *vrules_bind(const vrules_t *r, const core_avro_schema_t *schema,
                            char *errstr, size_t errstr_size)
{
    vrules_bound_t *b;

    if (!r || !schema) {
        core_errstr(errstr, errstr_size, "rules: nothing to bind");
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (!b || !(b->paths = calloc(r->n ? r->n : 1, sizeof(*b->paths)))) {
        free(b);
        core_errstr(errstr, errstr_size, "rules: out of memory");
        return NULL;
    }
    b->r = r;
    b->schema = schema;
    for (size_t i = 0; i < r->n; i++) {
        const char *f = r->rules[i].field;
        bool resolved = false;

        if (!parts_short(f)) {
            core_errstr(errstr, errstr_size, "rules: %.100s: a part of the path is too long", f);
            vrules_unbind(b);
            return NULL;
        }
        b->paths[i] = core_avro_path_new(schema, f, &resolved, errstr, errstr_size);
        if (!b->paths[i]) {
            vrules_unbind(b);
            return NULL;
        }
        if (!resolved) {
            core_errstr(errstr, errstr_size, "rules: field '%.100s' is not in schema %s", f,
                        core_avro_schema_name(schema));
            vrules_unbind(b);
            return NULL;
        }
    }
    return b;
}

int vrules_eval_avro(const vrules_bound_t *b, avro_value_t *rec, int64_t now_ms,
                     vr_failure *out, size_t max, size_t *nfp, char *errstr,
                     size_t errstr_size)
{
    const vrules_t *r = b->r;
    char buf[256];
    size_t nf = 0;
    int rc = 0;

    /* What core_avro_to_json() would refuse makes the record unreadable,
     * whether a rule reads that field or not. */
    if (core_avro_natural_check(b->schema, rec, errstr, errstr_size) != CORE_OK)
        return -1;
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        vval val;
        core_err_t e = core_avro_path_get(b->paths[i], rec, &val, buf, sizeof(buf), errstr,
                                          errstr_size);

        if (e == CORE_ERR_TOOBIG) { /* long bytes: a buffer of their size */
            char *big = malloc(val.need);

            if (!big) {
                core_errstr(errstr, errstr_size, "rules: out of memory");
                return -1;
            }
            e = core_avro_path_get(b->paths[i], rec, &val, big, val.need, errstr,
                                   errstr_size);
            if (e == CORE_OK)
                eval_rule(r, &r->rules[i], &val, now_ms, out, max, &nf);
            free(big);
        } else if (e == CORE_OK) {
            eval_rule(r, &r->rules[i], &val, now_ms, out, max, &nf);
        }
        if (e != CORE_OK)
            rc = -1;
    }
    *nfp = nf;
    return rc;
}

/* Text of a scalar for a URL; NULL when absent. buf for numbers. */
static const char *scalar_text(const cJSON *v, char *buf, size_t size)
{
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (cJSON_IsString(v) || cJSON_IsRaw(v))
        return v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
    if (cJSON_IsNumber(v)) {
        /* an integer as its digits (a long shown as a number is below 2^53);
         * a double as the shortest text that reads back as it */
        if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9007199254740992.0) {
            snprintf(buf, size, "%.0f", v->valuedouble);
        } else {
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, size, "%.*g", prec, v->valuedouble);
                if (strtod(buf, NULL) == v->valuedouble)
                    break;
            }
        }
        return buf;
    }
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    return NULL;
}

char *vrules_external_url(const vrules_t *r, size_t i, const cJSON *rec, bool *skip)
{
    const vr_external *e = vrules_external(r, i);
    char nbuf[64], name[128];
    const char *val, *p;
    size_t cap, len = 0;
    char *out;

    *skip = false;
    if (!e)
        return NULL;
    val = scalar_text(vrules_lookup(rec, e->field), nbuf, sizeof(nbuf));
    if (!val) {
        *skip = true;
        return NULL;
    }
    cap = strlen(e->url) + 64;
    out = malloc(cap);
    if (!out)
        return NULL;
    for (p = e->url; *p;) {
        const char *rep = NULL;
        char *esc = NULL;
        size_t add;

        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t n = close ? (size_t)(close - p - 1) : 0;

            if (close && n > 0 && n < sizeof(name)) {
                char vb[64];

                memcpy(name, p + 1, n);
                name[n] = '\0';
                rep = strcmp(name, "value") == 0
                          ? val
                          : scalar_text(vrules_lookup(rec, name), vb, sizeof(vb));
                esc = core_httpc_escape(rep ? rep : "", rep ? strlen(rep) : 0);
                if (!esc) {
                    free(out);
                    return NULL;
                }
                p = close + 1;
            }
        }
        add = esc ? strlen(esc) : 1;
        if (len + add + 1 > cap) {
            char *nb;

            cap = (len + add + 1) * 2;
            nb = realloc(out, cap);
            if (!nb) {
                free(esc);
                free(out);
                return NULL;
            }
            out = nb;
        }
        if (esc) {
            memcpy(out + len, esc, add);
            free(esc);
        } else {
            out[len] = *p++;
        }
        len += add;
    }
    out[len] = '\0';
    return out;
}
