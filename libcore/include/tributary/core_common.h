/* core_common.h — error codes and small helpers shared by every libcore module. */
#ifndef TRIBUTARY_CORE_COMMON_H
#define TRIBUTARY_CORE_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/**
 * @brief Result of an operation. OK is 0; core_err2str() names each.
 *
 * Where the caller must choose between retrying and giving up, the module
 * returns CORE_ERR_TRANSIENT (try again later: timeout, server down, 5xx) or
 * CORE_ERR_INVALID (the input itself is wrong: retrying cannot help).
 */
typedef enum core_err {
    CORE_OK = 0,
    CORE_ERR_INVALID = -1,   /* bad input: malformed, out of range, unknown */
    CORE_ERR_TRANSIENT = -2, /* may succeed later: timeout, unreachable, busy */
    CORE_ERR_FATAL = -3,     /* the handle is unusable; rebuild it */
    CORE_ERR_NOMEM = -4,
    CORE_ERR_NOTFOUND = -5,
    CORE_ERR_TOOBIG = -6,    /* input exceeds a configured bound */
    CORE_ERR_IO = -7,
    CORE_ERR_STATE = -8,     /* called in the wrong state (e.g. stopping) */
} core_err_t;

const char *core_err2str(core_err_t err);

/* Monotonic and wall clocks in milliseconds. */
int64_t core_now_ms(void);      /* wall clock, ms since the Unix epoch */
int64_t core_mono_ms(void);     /* monotonic, for timeouts and durations */
double core_mono_s(void);       /* monotonic, seconds with sub-ms precision */

/* snprintf into errstr if it is not NULL; always NUL-terminates. */
void core_errstr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Read a whole file (at most max_size bytes) into a NUL-terminated buffer
 * the caller frees. Returns NULL and fills errstr on failure. */
char *core_read_file(const char *path, size_t max_size, size_t *lenp,
                     char *errstr, size_t errstr_size);

/* A malloc'd formatted string (free()), NULL when out of memory. */
char *core_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *core_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A growing NUL-terminated string. A failed allocation sticks (failed):
 * later appends do nothing, so the builder checks once at the end. Start
 * from { 0 }; p is non-NULL after the first append that succeeded. */
typedef struct core_strbuf {
    char *p;
    size_t len, cap;
    bool failed;
} core_strbuf;

void core_strbuf_addn(core_strbuf *b, const char *s, size_t n);
void core_strbuf_add(core_strbuf *b, const char *s);
void core_strbuf_addf(core_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void core_strbuf_free(core_strbuf *b);

/* Value of one hexadecimal digit (either case), -1 if c is not one. */
int core_hex_value(int c);

#define CORE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
