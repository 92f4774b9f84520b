/* core_log.c — JSON-lines logger on stderr with masking of personal fields. */
#include "tributary/core_log.h"
#include "tributary/core_common.h"
#include "tributary/core_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_PERSONAL 64
#define LOG_MASK "***"

static struct {
    char service[64];
    volatile int level;
    int fd;
    pthread_mutex_t lock;            /* guards personal[] */
    char *personal[LOG_MAX_PERSONAL];
    size_t npersonal;
} g_log = { "tributary", CORE_LOG_INFO, 2, PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 };

static const char *level_names[] = { "debug", "info", "warn", "error" };

void core_log_init(const char *service, core_log_level_t level)
{
    snprintf(g_log.service, sizeof(g_log.service), "%s", service ? service : "tributary");
    g_log.level = (int)level;
}

int core_log_level_parse(const char *s, core_log_level_t *out)
{
    for (size_t i = 0; i < CORE_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (core_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = CORE_LOG_WARN;
        return 0;
    }
    return -1;
}

core_log_level_t core_log_level(void)
{
    return (core_log_level_t)g_log.level;
}

void core_log_set_fd(int fd)
{
    g_log.fd = fd;
}

void core_log_set_personal(const char *const *keys, size_t n)
{
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t j = 0; j < g_log.npersonal; j++)
            if (strcmp(g_log.personal[j], keys[i]) == 0)
                known = true;
        if (!known && g_log.npersonal < LOG_MAX_PERSONAL) {
            char *copy = strdup(keys[i]);
            if (copy)
                g_log.personal[g_log.npersonal++] = copy;
        }
    }
    pthread_mutex_unlock(&g_log.lock);
}

void core_log_clear_personal(void)
{
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < g_log.npersonal; i++)
        free(g_log.personal[i]);
    g_log.npersonal = 0;
    pthread_mutex_unlock(&g_log.lock);
}

bool core_log_is_personal(const char *key)
{
    bool found = false;

    if (!key)
        return false;
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < g_log.npersonal && !found; i++)
        found = strcmp(g_log.personal[i], key) == 0;
    pthread_mutex_unlock(&g_log.lock);
    return found;
}

const char *core_log_mask(void)
{
    return LOG_MASK;
}

/* Replace the value of every personal key, at any depth, by the mask. */
static void mask_json(cJSON *item)
{
    cJSON *child;

    cJSON_ArrayForEach(child, item) {
        if (child->string && core_log_is_personal(child->string) && !cJSON_IsNull(child)) {
            cJSON *masked = cJSON_CreateString(LOG_MASK);
            if (masked)
                cJSON_ReplaceItemViaPointer(item, child, masked);
            child = masked;
            if (!child)
                return;
            continue;
        }
        if (cJSON_IsObject(child) || cJSON_IsArray(child))
            mask_json(child);
    }
}

static void add_field(cJSON *root, const core_log_field *f)
{
    cJSON *v = NULL;

    if (!f->key)
        return;
    if (core_log_is_personal(f->key)) {
        cJSON_AddStringToObject(root, f->key, LOG_MASK);
        return;
    }
    switch (f->type) {
    case CORE_LOG_T_STR:
        v = f->v.s ? cJSON_CreateString(f->v.s) : cJSON_CreateNull();
        break;
    case CORE_LOG_T_INT:
        v = core_json_int(f->v.i); /* every digit, past 2^53 too */
        break;
    case CORE_LOG_T_DBL:
        v = cJSON_CreateNumber(f->v.d);
        break;
    case CORE_LOG_T_BOOL:
        v = cJSON_CreateBool(f->v.b);
        break;
    case CORE_LOG_T_JSON:
        v = f->v.j ? cJSON_Duplicate(f->v.j, 1) : cJSON_CreateNull();
        if (v && (cJSON_IsObject(v) || cJSON_IsArray(v)))
            mask_json(v);
        break;
    }
    if (v)
        cJSON_AddItemToObject(root, f->key, v);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void core_log_write(core_log_level_t level, const char *msg,
                    const core_log_field *fields, size_t n)
{
    char ts[96];
    struct timespec now;
    struct tm tm;
    cJSON *root;
    char *line;

    if ((int)level < g_log.level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

    root = cJSON_CreateObject();
    if (!root)
        return;
    cJSON_AddStringToObject(root, "ts", ts);
    cJSON_AddStringToObject(root, "level",
                            level_names[(unsigned)level < 4 ? level : CORE_LOG_ERROR]);
    cJSON_AddStringToObject(root, "service", g_log.service);
    cJSON_AddStringToObject(root, "msg", msg ? msg : "");
    for (size_t i = 0; i < n; i++)
        add_field(root, &fields[i]);

    line = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!line)
        return;
    /* One write per line keeps lines whole when threads log at once. */
    {
        size_t len = strlen(line);
        char *buf = malloc(len + 1);
        if (buf) {
            memcpy(buf, line, len);
            buf[len] = '\n';
            write_all(g_log.fd, buf, len + 1);
            free(buf);
        }
    }
    cJSON_free(line);
}
