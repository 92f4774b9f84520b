/* core_log.h — structured logging: one JSON object per line on stderr.
 *
 * {"ts":"2026-11-22T10:00:00.123Z","level":"info","service":"svc-ingest",
 *  "msg":"published","topic":"payee.raw","count":1000}
 *
 * Fields whose key was declared personal (core_log_set_personal()) are
 * masked wherever they appear, also inside a JSON object logged with
 * CLF_JSON. Thread-safe: one write(2) per line. */
#ifndef TRIBUTARY_CORE_LOG_H
#define TRIBUTARY_CORE_LOG_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

struct cJSON;

typedef enum core_log_level {
    CORE_LOG_DEBUG = 0,
    CORE_LOG_INFO = 1,
    CORE_LOG_WARN = 2,
    CORE_LOG_ERROR = 3,
} core_log_level_t;

typedef enum core_log_type {
    CORE_LOG_T_STR,
    CORE_LOG_T_INT,
    CORE_LOG_T_DBL,
    CORE_LOG_T_BOOL,
    CORE_LOG_T_JSON, /* a cJSON item; serialised, personal keys masked */
} core_log_type_t;

typedef struct core_log_field {
    const char *key;
    core_log_type_t type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
        const struct cJSON *j;
    } v;
} core_log_field;

#define CLF_S(k, val) ((core_log_field){ .key = (k), .type = CORE_LOG_T_STR, .v.s = (val) })
#define CLF_I(k, val) ((core_log_field){ .key = (k), .type = CORE_LOG_T_INT, .v.i = (int64_t)(val) })
#define CLF_D(k, val) ((core_log_field){ .key = (k), .type = CORE_LOG_T_DBL, .v.d = (double)(val) })
#define CLF_B(k, val) ((core_log_field){ .key = (k), .type = CORE_LOG_T_BOOL, .v.b = (val) })
#define CLF_JSON(k, val) ((core_log_field){ .key = (k), .type = CORE_LOG_T_JSON, .v.j = (val) })

/* Set once at start-up, before threads: service name and minimum level. */
void core_log_init(const char *service, core_log_level_t level);
int core_log_level_parse(const char *s, core_log_level_t *out);
core_log_level_t core_log_level(void);

/* Declare field names holding personal data (copied). Adds to the set. */
void core_log_set_personal(const char *const *keys, size_t n);
void core_log_clear_personal(void);
bool core_log_is_personal(const char *key);

/* The text that replaces a personal value: nothing of the value is shown. */
const char *core_log_mask(void);

/* Redirect output (tests): fd defaults to 2. */
void core_log_set_fd(int fd);

void core_log_write(core_log_level_t level, const char *msg,
                    const core_log_field *fields, size_t n);

#define core_log_(level, msg, ...)                                             \
    do {                                                                       \
        if ((level) >= core_log_level()) {                                     \
            const core_log_field core_log_f_[] = { CLF_I(NULL, 0), ##__VA_ARGS__ }; \
            core_log_write((level), (msg), core_log_f_ + 1,                    \
                           sizeof(core_log_f_) / sizeof(core_log_f_[0]) - 1);  \
        }                                                                      \
    } while (0)

#define core_log_debug(msg, ...) core_log_(CORE_LOG_DEBUG, msg, ##__VA_ARGS__)
#define core_log_info(msg, ...)  core_log_(CORE_LOG_INFO, msg, ##__VA_ARGS__)
#define core_log_warn(msg, ...)  core_log_(CORE_LOG_WARN, msg, ##__VA_ARGS__)
#define core_log_error(msg, ...) core_log_(CORE_LOG_ERROR, msg, ##__VA_ARGS__)

#endif
