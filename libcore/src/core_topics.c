/* core_topics.c — {topic.prefix}{dataset}.{raw|valid|retry|dlq} (core_topics.h). */
#include "tributary/core_topics.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[CORE_TOPIC_NKINDS] = { "raw", "valid", "retry", "dlq" };

const char *core_topic_kind_name(core_topic_kind kind)
{
    return (unsigned)kind < CORE_TOPIC_NKINDS ? kind_names[kind] : NULL;
}

bool core_topic_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > CORE_TOPIC_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

core_err_t core_topic_name(const char *prefix, const char *dataset, core_topic_kind kind,
                           char *buf, size_t size, char *errstr, size_t errstr_size)
{
    const char *k = core_topic_kind_name(kind);
    int n;

    if (!prefix)
        prefix = "";
    if (!k || !dataset || !*dataset) {
        core_errstr(errstr, errstr_size, "topic of dataset \"%s\": no such kind or dataset",
                    dataset ? dataset : "");
        return CORE_ERR_INVALID;
    }
    n = snprintf(buf, size, "%s%s.%s", prefix, dataset, k);
    if (n < 0 || (size_t)n >= size || !core_topic_valid(buf)) {
        if (size)
            buf[0] = '\0';
        core_errstr(errstr, errstr_size,
                    "topic.prefix: \"%s\" makes \"%s%s.%s\", not a Kafka topic name (at most "
                    "%d of letters, digits, '.', '_', '-')",
                    prefix, prefix, dataset, k, CORE_TOPIC_MAX);
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

bool core_topic_parse(const char *prefix, const char *topic, char *dataset, size_t size,
                      core_topic_kind *kind)
{
    size_t pl = prefix ? strlen(prefix) : 0, tl = topic ? strlen(topic) : 0;

    if (!topic || (pl && strncmp(topic, prefix, pl) != 0))
        return false;
    for (int k = 0; k < CORE_TOPIC_NKINDS; k++) {
        size_t sl = strlen(kind_names[k]) + 1; /* ".raw" */
        if (tl > pl + sl && topic[tl - sl] == '.' && !strcmp(topic + tl - sl + 1, kind_names[k])) {
            size_t dl = tl - pl - sl;
            if (dl + 1 > size)
                return false;
            memcpy(dataset, topic + pl, dl);
            dataset[dl] = '\0';
            if (kind)
                *kind = (core_topic_kind)k;
            return true;
        }
    }
    return false;
}
