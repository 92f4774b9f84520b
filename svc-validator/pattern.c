/* pattern.c — the rules' simple anchored patterns, matched in one pass
 * without regexec() (pattern.h).
 *
 * Rule patterns are mostly "^<atoms>$" where each atom is one character set
 * (a bracket expression of ASCII characters and ranges, or one literal
 * character) with a bound (none, ?, *, +, {n}, {n,}, {n,m}). Those are
 * matched here in one pass, without regexec(); anything else (and the same
 * patterns, for the error of a bad pattern) goes to regcomp()/regexec().
 * One pass is exact only when no atom of varying length shares a character
 * with a later atom (then each takes the longest run it can: no later atom
 * could have taken any of it); vpattern_compile() accepts nothing else. */

#include "pattern.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VPATTERN_MAX_ATOMS 32

typedef struct vpattern_atom {
    uint8_t set[32]; /* bitmap of the bytes it matches (ASCII only) */
    unsigned min, max;
} vpattern_atom;

struct vpattern {
    vpattern_atom atom[VPATTERN_MAX_ATOMS];
    size_t n;
};

static void vpattern_set_(vpattern_atom *a, unsigned c) { a->set[c >> 3] |= (uint8_t)(1u << (c & 7)); }
static bool vpattern_has_(const vpattern_atom *a, unsigned char c)
{
    return (a->set[c >> 3] >> (c & 7)) & 1;
}

/* Parses a decimal bound at *p; @returns false when there is none. */
static bool vpattern_bound_(const char **p, unsigned *out)
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

/** @returns the pattern compiled for vpattern_match(), or NULL when it is not
 * one of the simple ones (or out of memory): then use regexec(). */
vpattern *vpattern_compile(const char *pat)
{
    vpattern re;
    const char *p = pat;
    vpattern *out;

    memset(&re, 0, sizeof(re));
    if (*p++ != '^')
        return NULL;
    while (*p && !(p[0] == '$' && p[1] == '\0')) {
        vpattern_atom *a;

        if (re.n == VPATTERN_MAX_ATOMS)
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
                    vpattern_set_(a, c);
            }
            if (*p++ != ']')
                return NULL;
        } else if (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == ':' ||
                   *p == '@' || *p == '/' || *p == ' ' || *p == ',' || *p == '=') {
            vpattern_set_(a, (unsigned char)*p++);
        } else if (*p == '\\' && p[1] && strchr(".[](){}*+?|^$\\/-", p[1])) {
            vpattern_set_(a, (unsigned char)p[1]);
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
            if (!vpattern_bound_(&p, &a->min))
                return NULL;
            if (*p == ',') {
                p++;
                a->max = UINT32_MAX;
                if (*p != '}' && !vpattern_bound_(&p, &a->max))
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
bool vpattern_match(const vpattern *re, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < re->n; i++) {
        const vpattern_atom *a = &re->atom[i];
        unsigned k = 0;

        while (k < a->max && *p && vpattern_has_(a, *p)) {
            p++;
            k++;
        }
        if (k < a->min)
            return false;
    }
    return *p == '\0';
}

void vpattern_free(vpattern *re) { free(re); }
