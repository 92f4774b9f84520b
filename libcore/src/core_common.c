/* core_common.c — error names, clocks, errstr formatting, whole-file reads. */
#include "tributary/core_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *core_err2str(core_err_t err)
{
    switch (err) {
    case CORE_OK: return "success";
    case CORE_ERR_INVALID: return "invalid input";
    case CORE_ERR_TRANSIENT: return "transient failure";
    case CORE_ERR_FATAL: return "fatal error";
    case CORE_ERR_NOMEM: return "out of memory";
    case CORE_ERR_NOTFOUND: return "not found";
    case CORE_ERR_TOOBIG: return "too big";
    case CORE_ERR_IO: return "I/O error";
    case CORE_ERR_STATE: return "wrong state";
    }
    return "unknown error";
}

int64_t core_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t core_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double core_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *core_vasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;

    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

char *core_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = core_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

static bool strbuf_reserve(core_strbuf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (b->failed)
        return false;
    if (b->p && extra < b->cap - b->len)
        return true;
    if (extra > SIZE_MAX / 4 - b->len) {
        b->failed = true;
        return false;
    }
    cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra)
        cap *= 2;
    if (!(p = realloc(b->p, cap))) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void core_strbuf_addn(core_strbuf *b, const char *s, size_t n)
{
    if (!strbuf_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void core_strbuf_add(core_strbuf *b, const char *s)
{
    core_strbuf_addn(b, s, strlen(s));
}

void core_strbuf_addf(core_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!strbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void core_strbuf_free(core_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int core_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void core_errstr(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (!errstr || errstr_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

char *core_read_file(const char *path, size_t max_size, size_t *lenp,
                     char *errstr, size_t errstr_size)
{
    FILE *fp;
    struct stat st;
    char *buf;
    size_t n;

    fp = fopen(path, "rb");
    if (!fp) {
        core_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        core_errstr(errstr, errstr_size, "%s: not a regular file", path);
        fclose(fp);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_size) {
        core_errstr(errstr, errstr_size, "%s: %lld bytes exceeds the limit of %zu",
                    path, (long long)st.st_size, max_size);
        fclose(fp);
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        core_errstr(errstr, errstr_size, "%s: out of memory", path);
        fclose(fp);
        return NULL;
    }
    n = fread(buf, 1, (size_t)st.st_size, fp);
    if (ferror(fp)) {
        core_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    buf[n] = '\0';
    if (lenp)
        *lenp = n;
    return buf;
}
