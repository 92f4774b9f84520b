/* rules.c — compile and evaluate a dataset's validation rules; the
 * checksums and code lists the seeds' datasets need. */
#include "rules.h"

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

/* ---- simple anchored patterns --------------------------------------------

 * Rule patterns are mostly "^<atoms>$" where each atom is one character set
 * (a bracket expression of ASCII characters and ranges, or one literal
 * character) with a bound (none, ?, *, +, {n}, {n,}, {n,m}). Those are
 * matched here in one pass, without regexec(); anything else (and the same
 * patterns, for the error of a bad pattern) goes to regcomp()/regexec().
 * One pass is exact only when no atom of varying length shares a character
 * with a later atom (then each takes the longest run it can: no later atom
 * could have taken any of it); vsimple_compile() accepts nothing else. */

#define VSIMPLE_MAX_ATOMS 32

typedef struct vsimple_re vsimple_re;

typedef struct vsimple_atom {
    uint8_t set[32]; /* bitmap of the bytes it matches (ASCII only) */
    unsigned min, max;
} vsimple_atom;

struct vsimple_re {
    vsimple_atom atom[VSIMPLE_MAX_ATOMS];
    size_t n;
};

static void vs_set(vsimple_atom *a, unsigned c) { a->set[c >> 3] |= (uint8_t)(1u << (c & 7)); }
static bool vs_has(const vsimple_atom *a, unsigned char c)
{
    return (a->set[c >> 3] >> (c & 7)) & 1;
}

/* Parses a decimal bound at *p; @returns false when there is none. */
static bool vs_number(const char **p, unsigned *out)
{
    unsigned x = 0;

    if (!isdigit((unsigned char)**p))
        return false;
    while (isdigit((unsigned char)**p)) {
        x = x * 10 + (unsigned)(**p - '0');
        if (x > 255) /* RE_DUP_MAX is 255 with glibc; regcomp decides beyond */
            return false;
        (*p)++;
    }
    *out = x;
    return true;
}

/** @returns the pattern compiled for vsimple_match(), or NULL when it is not
 * one of the simple ones (or out of memory): then use regexec(). */
static vsimple_re *vsimple_compile(const char *pat)
{
    vsimple_re re;
    const char *p = pat;
    vsimple_re *out;

    memset(&re, 0, sizeof(re));
    if (*p++ != '^')
        return NULL;
    while (*p && !(p[0] == '$' && p[1] == '\0')) {
        vsimple_atom *a;

        if (re.n == VSIMPLE_MAX_ATOMS)
            return NULL;
        a = &re.atom[re.n++];
        if (*p == '[') {
            p++;
            if (*p == '^' || *p == ']')
                return NULL; /* negated sets and a leading ']': regexec */
            while (*p && *p != ']') {
                unsigned lo = (unsigned char)*p, hi = lo;

                if (lo == '[' || lo == '\\' || lo < 0x20 || lo >= 0x7f)
                    return NULL; /* classes, collating elements, non-ASCII */
                if (p[1] == '-' && p[2] && p[2] != ']') {
                    hi = (unsigned char)p[2];
                    if (hi == '[' || hi == '\\' || hi < 0x20 || hi >= 0x7f || hi < lo)
                        return NULL;
                    p += 3;
                    if (*p == '-' && p[1] != ']')
                        return NULL; /* a-c-e: left to regcomp */
                } else {
                    p++;
                }
                for (unsigned c = lo; c <= hi; c++)
                    vs_set(a, c);
            }
            if (*p++ != ']')
                return NULL;
        } else if (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == ':' ||
                   *p == '@' || *p == '/' || *p == ' ' || *p == ',' || *p == '=') {
            vs_set(a, (unsigned char)*p++);
        } else if (*p == '\\' && p[1] && strchr(".[](){}*+?|^$\\/-", p[1])) {
            vs_set(a, (unsigned char)p[1]);
            p += 2;
        } else {
            return NULL;
        }
        a->min = a->max = 1;
        switch (*p) {
        case '?': a->min = 0; p++; break;
        case '*': a->min = 0; a->max = UINT32_MAX; p++; break;
        case '+': a->max = UINT32_MAX; p++; break;
        case '{':
            p++;
            if (!vs_number(&p, &a->min))
                return NULL;
            if (*p == ',') {
                p++;
                a->max = UINT32_MAX;
                if (*p != '}' && !vs_number(&p, &a->max))
                    return NULL;
            } else {
                a->max = a->min;
            }
            if (*p++ != '}' || a->max < a->min)
                return NULL;
            break;
        default: break;
        }
        if (*p == '?' || *p == '*' || *p == '+' || *p == '{')
            return NULL; /* a bound on a bound */
    }
    if (*p != '$')
        return NULL;
    for (size_t i = 0; i < re.n; i++) {
        if (re.atom[i].min == re.atom[i].max)
            continue;
        for (size_t k = i + 1; k < re.n; k++)
            for (size_t b = 0; b < sizeof(re.atom[i].set); b++)
                if (re.atom[i].set[b] & re.atom[k].set[b])
                    return NULL; /* would need backtracking */
    }
    out = malloc(sizeof(*out));
    if (out)
        *out = re;
    return out;
}

/** @returns whether s matches (as regexec() would with the same pattern). */
static bool vsimple_match(const vsimple_re *re, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < re->n; i++) {
        const vsimple_atom *a = &re->atom[i];
        unsigned k = 0;

        while (k < a->max && *p && vs_has(a, *p)) {
            p++;
            k++;
        }
        if (k < a->min)
            return false;
    }
    return *p == '\0';
}

/* The checks, in the order of rule_checks[]. */
enum { VK_ABA, VK_LUHN, VK_IBAN, VK_ISO3166, VK_ISO4217, VK_EMAIL, VK_NOT_FUTURE };
static const char *const rule_checks[] = { "aba", "luhn", "iban", "iso3166_alpha2", "iso4217",
                                           "email", "not_future" };

/* A rule's constraints, for its failure messages. */
enum { VC_REQUIRED, VC_TYPE, VC_PATTERN, VC_MIN, VC_MAX, VC_LENGTH, VC_ENUM, VC_CHECK,
       VC__COUNT };

/* A min, max or numeric enum entry, read once from the rules file's number
 * text (core_json keeps it), never through a double: exact, plus the value
 * nearest to it in the field's floating-point type for values that are
 * floats or doubles (compared in that type: the field's own precision). */
typedef struct vbound {
    core_number n;
    double d;
    char text[40]; /* for the failure message, shortened */
} vbound;

typedef struct vrule {
    const char *field;
    const char *message;
    bool required;
    const char *type;
    bool has_re;
    regex_t re;
    vsimple_re *fast; /* the same pattern, matched without regexec; or NULL */
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

/* A value as a number for min, max and a numeric enum: exact (integers,
 * decimals, numeric text, times as ms), or, for a value that is a float or
 * a double, that double. */
typedef struct vnum {
    bool dbl;
    double d;
    core_number n;
} vnum;

/* 2^53: a cJSON double beyond it may stand for several integers' texts. */
#define EXACT_DOUBLE_INT 9007199254740992.0

/* @returns whether v is a number (a number, or number text): *out set. A
 * number is a double, and compared as one, when the field is a float or a
 * double, or (no schema known) when it is not an integer of 64 bits; an
 * int or a long shown as a number is that integer exactly. */
static bool vval_number(const vrule *r, const vval *v, vnum *out)
{
    out->dbl = false;
    if (v->kind == CORE_AVRO_NAT_NUMBER) {
        double d = v->number;

        if (d != d)
            return false; /* NaN is within no bounds */
        if (r->ntype.kind == CORE_AVRO_NUM_FLOAT || r->ntype.kind == CORE_AVRO_NUM_DOUBLE ||
            d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
            out->dbl = true;
            out->d = d;
        } else {
            core_number_from_int64((int64_t)d, &out->n);
        }
        return true;
    }
    if (v->kind == CORE_AVRO_NAT_RAW || v->kind == CORE_AVRO_NAT_STRING)
        return v->text && core_number_parse(v->text, &out->n) == CORE_OK;
    return false;
}

static int vnum_cmp(const vnum *x, const vbound *b)
{
    if (x->dbl)
        return x->d < b->d ? -1 : x->d > b->d ? 1 : 0;
    return core_number_cmp(&x->n, &b->n);
}

void vrules_free(vrules_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->rules[i].has_re)
            regfree(&r->rules[i].re);
        free(r->rules[i].fast);
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
    const core_avro_num_type *t = &v->ntype;
    char buf[32];
    const char *text, *why = NULL;
    char *end;

    if (cJSON_IsRaw(j) || cJSON_IsString(j)) {
        text = j->valuestring ? j->valuestring : "";
    } else if (cJSON_IsNumber(j)) {
        /* cJSON's double: exact only for an integer below 2^53 */
        if (j->valuedouble != floor(j->valuedouble) || fabs(j->valuedouble) >= EXACT_DOUBLE_INT) {
            core_errstr(errstr, errstr_size, "rules: rule %zu (%s): %s was read into a double "
                        "and its digits are lost (read rules files with core_json_parse())",
                        idx, v->field, what);
            return -1;
        }
        snprintf(buf, sizeof(buf), "%.0f", j->valuedouble);
        text = buf;
    } else {
        core_errstr(errstr, errstr_size, "rules: rule %zu (%s): %s is not a number", idx,
                    v->field, what);
        return -1;
    }
    if (core_number_parse(text, &b->n) != CORE_OK || b->n.inexact) {
        core_errstr(errstr, errstr_size, "rules: rule %zu (%s): %s '%.40s' is not a number of "
                    "at most %d digits", idx, v->field, what, text, CORE_NUMBER_MAX_DIGITS);
        return -1;
    }
    snprintf(b->text, sizeof(b->text), "%s", text);
    errno = 0;
    if (t->kind == CORE_AVRO_NUM_FLOAT)
        b->d = strtof(text, &end);
    else
        b->d = strtod(text, &end);
    switch (t->kind) {
    case CORE_AVRO_NUM_INT:
        if (!core_number_int64(&b->n, INT32_MIN, INT32_MAX, NULL))
            why = "is not an int (a 32-bit integer)";
        break;
    case CORE_AVRO_NUM_LONG:
    case CORE_AVRO_NUM_TIME:
        if (!core_number_int64(&b->n, INT64_MIN, INT64_MAX, NULL))
            why = t->kind == CORE_AVRO_NUM_TIME ? "is not a time in ms (a 64-bit integer)"
                                                : "is not a long (a 64-bit integer)";
        break;
    case CORE_AVRO_NUM_FLOAT:
    case CORE_AVRO_NUM_DOUBLE:
        if (isinf(b->d) || (b->d == 0 && b->n.nd != 0))
            why = t->kind == CORE_AVRO_NUM_FLOAT ? "is out of range for a float"
                                                 : "is out of range for a double";
        break;
    case CORE_AVRO_NUM_DECIMAL:
        if (core_number_decimals(&b->n) > t->scale ||
            core_number_int_digits(&b->n) > t->precision - t->scale) {
            snprintf(buf, sizeof(buf), "decimal(%d, %d)", t->precision, t->scale);
            why = buf;
        }
        break;
    default:
        break;
    }
    if (why) {
        core_errstr(errstr, errstr_size, "rules: rule %zu (%s): %s %.40s %s%s", idx, v->field,
                    what, text, t->kind == CORE_AVRO_NUM_DECIMAL ? "does not fit the field's " : "",
                    why);
        return -1;
    }
    return 0;
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
            v->fast = vsimple_compile(cJSON_GetStringValue(k) ? k->valuestring : "");
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

            for (size_t c = 0; c < CORE_ARRAY_SIZE(rule_checks) && !known; c++)
                if (strcmp(rule_checks[c], v->check) == 0) {
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

/* ---- checks ------------------------------------------------------------- */

bool vcheck_aba(const char *s)
{
    static const int w[9] = { 3, 7, 1, 3, 7, 1, 3, 7, 1 };
    int sum = 0;

    if (!s || strlen(s) != 9)
        return false;
    for (int i = 0; i < 9; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        sum += (s[i] - '0') * w[i];
    }
    return sum % 10 == 0 && strcmp(s, "000000000") != 0;
}

bool vcheck_luhn(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int sum = 0;

    if (n < 2)
        return false;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[n - 1 - i];

        if (!isdigit((unsigned char)c))
            return false;
        d = c - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static const char iban_len[] =
    "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28"
    "EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27"
    "JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18"
    "NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28"
    "TL23TN24TR26UA29VA22VG24XK20YE30";

bool vcheck_iban(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int want = 0;
    unsigned rem = 0;

    if (n < 15 || n > 34 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[2]) || !isdigit((unsigned char)s[3]))
        return false;
    for (size_t i = 0; i + 4 <= sizeof(iban_len) - 1; i += 4)
        if (iban_len[i] == s[0] && iban_len[i + 1] == s[1]) {
            want = (iban_len[i + 2] - '0') * 10 + (iban_len[i + 3] - '0');
            break;
        }
    if (want == 0 || (size_t)want != n)
        return false;
    /* Move the first four characters to the end; letters are 10..35. */
    for (size_t k = 0; k < n; k++) {
        char c = s[(k + 4) % n];

        if (isdigit((unsigned char)c))
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else if (isupper((unsigned char)c))
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return false;
    }
    return rem == 1;
}

/* Whether s is one of codes: codes of len upper-case letters, sorted, each
 * followed by one space (the last by the NUL). Binary search. */
static bool in_codes(const char *codes, size_t ncodes_bytes, const char *s, size_t len)
{
    size_t lo = 0, hi = (ncodes_bytes + 1) / (len + 1);

    if (!s || strnlen(s, len + 1) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isupper((unsigned char)s[i]))
            return false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(codes + mid * (len + 1), s, len);

        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char iso3166[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/* ISO 4217 active codes (list one, 2024), without XTS and XXX (testing, none). */
static const char iso4217[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP "
    "DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR "
    "IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB "
    "PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS "
    "VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF XPD XPF XPT XSU XUA YER ZAR "
    "ZMW ZWL";

bool vcheck_iso3166_alpha2(const char *s)
{
    return in_codes(iso3166, sizeof(iso3166) - 1, s, 2);
}

bool vcheck_iso4217(const char *s) { return in_codes(iso4217, sizeof(iso4217) - 1, s, 3); }

bool vcheck_email(const char *s)
{
    const char *at, *dom, *dot, *p;
    size_t n = s ? strlen(s) : 0;

    if (n < 6 || n > 254)
        return false;
    at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || (size_t)(at - s) > 64)
        return false;
    for (p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' ||
            *p == ';' || *p == '"' || *p == '(' || *p == ')' || *p == '[' || *p == ']' ||
            *p == '\\')
            return false;
    if (s[0] == '.' || at[-1] == '.' || strstr(s, ".."))
        return false;
    dom = at + 1;
    dot = strrchr(dom, '.');
    if (!dot || dot == dom || dom[0] == '.' || dom[0] == '-')
        return false;
    for (p = dom; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    /* The top-level label: two letters or more. */
    if (strlen(dot + 1) < 2)
        return false;
    for (p = dot + 1; *p; p++)
        if (!isalpha((unsigned char)*p))
            return false;
    return true;
}

bool vcheck_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
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

bool vcheck_time_ms(const cJSON *v, int64_t *msp)
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

    if (vval_number(r, v, x))
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
    if (r->nenum_num && vval_number(r, v, &x))
        for (size_t i = 0; i < r->nenum_num; i++)
            if (vnum_cmp(&x, &r->enum_num[i]) == 0)
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
    if (v->has_re && (!s || !(v->fast ? vsimple_match(v->fast, s)
                                      : regexec(&v->re, s, 0, NULL, 0) == 0)))
        fail(out, max, nf, v, "pattern", VC_PATTERN);
    if (v->has_min || v->has_max) {
        bool num = value_number(v, val, &d);

        if (v->has_min && (!num || vnum_cmp(&d, &v->min) < 0))
            fail(out, max, nf, v, "min", VC_MIN);
        if (v->has_max && (!num || vnum_cmp(&d, &v->max) > 0))
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
