/* core_json.c — strict JSON parser into cJSON trees whose numbers keep
 * their text (see core_json.h). */
#include "tributary/core_json.h"
#include "tributary/core_number.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects with more names than this are checked for duplicates by sorting
 * at the end instead of a scan per name (a 4 MB line can hold 500k names). */
#define SCAN_NAMES 16

struct seg {
    const char *name; /* NULL: an array index */
    size_t index;
};

struct jp {
    const char *s;
    size_t len, pos;
    core_json_error *err;
    char *buf; /* decoded string: sbuf, or malloc'd when longer */
    size_t bufcap;
    struct seg path[CORE_JSON_MAX_DEPTH + 2];
    int plen;
    char sbuf[512]; /* last: core_json_parse() zeroes what comes before */
};

static cJSON *fail(struct jp *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cJSON *fail(struct jp *p, size_t at, const char *fmt, ...)
{
    core_json_error *e = p->err;
    size_t off = 0;
    va_list ap;

    if (!e)
        return NULL;
    e->offset = at;
    e->path[0] = '\0';
    for (int i = 0; i < p->plen && off < sizeof(e->path) - 1; i++) {
        int n = p->path[i].name
                    ? snprintf(e->path + off, sizeof(e->path) - off, "%s%s", off ? "." : "",
                               p->path[i].name)
                    : snprintf(e->path + off, sizeof(e->path) - off, "[%zu]", p->path[i].index);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    return NULL;
}

static void ws(struct jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t k;
    uint32_t cp;

    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        k = 1;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        k = 2;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        k = 3;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n <= k)
        return 0;
    for (size_t i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k + 1;
}

static int buf_reserve(struct jp *p, size_t need)
{
    char *b;
    size_t cap;

    if (need <= p->bufcap)
        return 0;
    cap = p->bufcap ? p->bufcap : 256;
    while (cap < need)
        cap *= 2;
    if (p->buf == p->sbuf) {
        if (!(b = malloc(cap)))
            return -1;
        memcpy(b, p->sbuf, sizeof(p->sbuf));
    } else if (!(b = realloc(p->buf, cap))) {
        return -1;
    }
    p->buf = b;
    p->bufcap = cap;
    return 0;
}

/* A string at p->pos (the opening quote) decoded into p->buf, NUL-ended.
 * @returns 0, or -1 (error set). */
static int parse_string(struct jp *p, size_t *lenp)
{
    size_t start = p->pos, n = 0;

    p->pos++; /* the quote */
    /* the decoded text is never longer than what is left of the input */
    if (buf_reserve(p, p->len - p->pos + 1)) {
        fail(p, start, "out of memory");
        return -1;
    }
    for (;;) {
        unsigned char c;

        /* plain ASCII runs straight through */
        while (p->pos < p->len) {
            c = (unsigned char)p->s[p->pos];
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
                break;
            p->buf[n++] = (char)c;
            p->pos++;
        }
        if (p->pos >= p->len) {
            fail(p, start, "unterminated string");
            return -1;
        }
        c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\\') {
            uint32_t cp;
            size_t at = p->pos;

            if (p->pos + 1 >= p->len) {
                fail(p, start, "unterminated string");
                return -1;
            }
            c = (unsigned char)p->s[p->pos + 1];
            p->pos += 2;
            switch (c) {
            case '"': p->buf[n++] = '"'; continue;
            case '\\': p->buf[n++] = '\\'; continue;
            case '/': p->buf[n++] = '/'; continue;
            case 'b': p->buf[n++] = '\b'; continue;
            case 'f': p->buf[n++] = '\f'; continue;
            case 'n': p->buf[n++] = '\n'; continue;
            case 'r': p->buf[n++] = '\r'; continue;
            case 't': p->buf[n++] = '\t'; continue;
            case 'u': break;
            default:
                fail(p, at, "invalid escape in a string");
                return -1;
            }
            if (p->pos + 4 > p->len || hex4(p->s + p->pos, &cp)) {
                fail(p, at, "invalid \\u escape in a string");
                return -1;
            }
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, at, "unpaired surrogate in a \\u escape");
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, at, "unpaired surrogate in a \\u escape");
                    return -1;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                fail(p, at, "\\u0000 (NUL) in a string");
                return -1;
            }
            if (cp < 0x80) {
                p->buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                p->buf[n++] = (char)(0xC0 | (cp >> 6));
                p->buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                p->buf[n++] = (char)(0xE0 | (cp >> 12));
                p->buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                p->buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                p->buf[n++] = (char)(0xF0 | (cp >> 18));
                p->buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                p->buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                p->buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        }
        if (c < 0x20) {
            fail(p, p->pos, c ? "control character in a string: escape it" : "NUL byte in a string");
            return -1;
        }
        if (c < 0x80) {
            p->buf[n++] = (char)c;
            p->pos++;
        } else {
            size_t k = utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!k) {
                fail(p, p->pos, "invalid UTF-8 in a string");
                return -1;
            }
            memcpy(p->buf + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
        }
    }
    p->buf[n] = '\0';
    *lenp = n;
    return 0;
}

static bool digit(const struct jp *p, size_t i)
{
    return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? as a Raw item of its text. */
static cJSON *parse_number(struct jp *p)
{
    size_t start = p->pos, i = p->pos;
    cJSON *item;

    if (i < p->len && p->s[i] == '-')
        i++;
    if (!digit(p, i))
        return fail(p, start, "not a JSON number");
    if (p->s[i] == '0') {
        i++;
        if (digit(p, i))
            return fail(p, start, "not a JSON number (a leading zero)");
    } else {
        while (digit(p, i))
            i++;
    }
    if (i < p->len && p->s[i] == '.') {
        i++;
        if (!digit(p, i))
            return fail(p, start, "not a JSON number (no digit after the point)");
        while (digit(p, i))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (!digit(p, i))
            return fail(p, start, "not a JSON number (no digit in the exponent)");
        while (digit(p, i))
            i++;
    }
    if (buf_reserve(p, i - start + 1))
        return fail(p, start, "out of memory");
    memcpy(p->buf, p->s + start, i - start);
    p->buf[i - start] = '\0';
    p->pos = i;
    if (!(item = cJSON_CreateRaw(p->buf)))
        return fail(p, start, "out of memory");
    return item;
}

static cJSON *parse_value(struct jp *p);

struct name_at {
    const char *name;
    size_t len, at;
};

static int name_cmp(const void *a, const void *b)
{
    const struct name_at *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return x->at < y->at ? -1 : x->at > y->at;
}

static cJSON *parse_object(struct jp *p)
{
    cJSON *obj = cJSON_CreateObject();
    struct name_at small[SCAN_NAMES], *names = small;
    size_t n = 0, cap = SCAN_NAMES;

    if (!obj)
        return fail(p, p->pos, "out of memory");
    p->pos++; /* { */
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return obj;
    }
    for (;;) {
        size_t at, klen;
        char *key;
        cJSON *item;

        ws(p);
        at = p->pos;
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            fail(p, p->pos, p->pos >= p->len ? "unexpected end of the text"
                                             : "expected a name (a string)");
            goto bad;
        }
        if (parse_string(p, &klen))
            goto bad;
        if (!(key = malloc(klen + 1))) {
            fail(p, at, "out of memory");
            goto bad;
        }
        memcpy(key, p->buf, klen + 1);
        ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
            free(key);
            fail(p, p->pos, "expected ':' after a name");
            goto bad;
        }
        p->pos++;
        p->path[p->plen].name = key;
        p->path[p->plen].index = 0;
        p->plen++;
        if (n < SCAN_NAMES) {
            for (size_t i = 0; i < n; i++)
                if (names[i].len == klen && memcmp(names[i].name, key, klen) == 0) {
                    fail(p, at, "the same name twice in an object");
                    p->plen--;
                    free(key);
                    goto bad;
                }
        }
        item = parse_value(p);
        p->plen--;
        if (!item) {
            free(key);
            goto bad;
        }
        item->string = key; /* freed by cJSON_Delete() */
        cJSON_AddItemToArray(obj, item);
        if (n == cap) {
            struct name_at *nn = malloc(2 * cap * sizeof(*nn));
            if (!nn) {
                fail(p, at, "out of memory");
                goto bad;
            }
            memcpy(nn, names, n * sizeof(*nn));
            if (names != small)
                free(names);
            names = nn;
            cap *= 2;
        }
        names[n].name = key;
        names[n].len = klen;
        names[n].at = at;
        n++;
        ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        fail(p, p->pos, p->pos >= p->len ? "unexpected end of the text" : "expected ',' or '}'");
        goto bad;
    }
    if (n > SCAN_NAMES) {
        qsort(names, n, sizeof(*names), name_cmp);
        for (size_t i = 1; i < n; i++)
            if (strcmp(names[i - 1].name, names[i].name) == 0) {
                p->path[p->plen].name = names[i].name;
                p->plen++;
                fail(p, names[i].at, "the same name twice in an object");
                p->plen--;
                goto bad;
            }
    }
    if (names != small)
        free(names);
    return obj;
bad:
    if (names != small)
        free(names);
    cJSON_Delete(obj);
    return NULL;
}

static cJSON *parse_array(struct jp *p)
{
    cJSON *arr = cJSON_CreateArray();
    size_t idx = 0;

    if (!arr)
        return fail(p, p->pos, "out of memory");
    p->pos++; /* [ */
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return arr;
    }
    for (;;) {
        cJSON *item;

        p->path[p->plen].name = NULL;
        p->path[p->plen].index = idx++;
        p->plen++;
        item = parse_value(p);
        p->plen--;
        if (!item)
            goto bad;
        cJSON_AddItemToArray(arr, item);
        ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return arr;
        }
        fail(p, p->pos, p->pos >= p->len ? "unexpected end of the text" : "expected ',' or ']'");
        goto bad;
    }
bad:
    cJSON_Delete(arr);
    return NULL;
}

static bool literal(struct jp *p, const char *word)
{
    size_t n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static cJSON *parse_value(struct jp *p)
{
    cJSON *item;
    char c;

    ws(p);
    if (p->pos >= p->len)
        return fail(p, p->pos, "unexpected end of the text");
    c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (p->plen >= CORE_JSON_MAX_DEPTH)
            return fail(p, p->pos, "nesting deeper than %d", CORE_JSON_MAX_DEPTH);
        return c == '{' ? parse_object(p) : parse_array(p);
    }
    if (c == '"') {
        size_t at = p->pos, n;
        if (parse_string(p, &n))
            return NULL;
        if (!(item = cJSON_CreateString(p->buf)))
            return fail(p, at, "out of memory");
        return item;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    if (literal(p, "true"))
        item = cJSON_CreateTrue();
    else if (literal(p, "false"))
        item = cJSON_CreateFalse();
    else if (literal(p, "null"))
        item = cJSON_CreateNull();
    else
        return fail(p, p->pos, c == '\0' ? "NUL byte" : "expected a value");
    if (!item)
        return fail(p, p->pos, "out of memory");
    return item;
}

cJSON *core_json_parse(const char *text, size_t len, core_json_error *err)
{
    struct jp p;
    cJSON *root;

    memset(&p, 0, offsetof(struct jp, sbuf));
    p.buf = p.sbuf;
    p.bufcap = sizeof(p.sbuf);
    p.s = text;
    p.len = text ? len : 0;
    p.err = err;
    if (err)
        memset(err, 0, sizeof(*err));
    root = parse_value(&p);
    if (root) {
        ws(&p);
        if (p.pos < p.len) {
            fail(&p, p.pos, p.s[p.pos] == '\0' ? "NUL byte after the value"
                                               : "text after the value");
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (p.buf != p.sbuf)
        free(p.buf);
    return root;
}

cJSON *core_json_int(int64_t v)
{
    char buf[24];

    /* always as text: cJSON prints a double with 15 digits when that reads
     * back "close enough" (9007199254740991 as 9.00719925474099e+15) */
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

bool core_json_int_get(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    core_number n;

    if (cJSON_IsRaw(j))
        return j->valuestring && core_number_parse(j->valuestring, &n) == CORE_OK &&
               core_number_int64(&n, lo, hi, out);
    if (!cJSON_IsNumber(j) || j->valuedouble != j->valuedouble ||
        j->valuedouble <= -9007199254740992.0 || j->valuedouble >= 9007199254740992.0 ||
        j->valuedouble != (double)(int64_t)j->valuedouble)
        return false;
    core_number_from_int64((int64_t)j->valuedouble, &n);
    return core_number_int64(&n, lo, hi, out);
}
