/* fuzz_config.c — libFuzzer target for the configuration parser every
 * service starts with (libcore/src/core_config.c): a `key = value` file
 * given by --config, TB_* environment variables and the command line.
 *
 * Input: three parts separated by NUL bytes: the file's text; the command
 * line, one word a line; the environment, one NAME=value a line. The keys
 * are a table of every type (string, int and double with ranges, bool,
 * enum, list, a required key, a secret, a former name and a deprecated key)
 * and any kafka.* property.
 *
 * Invariants (abort on breach):
 *  - the result is 0, CORE_EX_CONFIG or CORE_EX_USAGE; an error has a
 *    message of one line;
 *  - on success the required key is set, every int and double lies in its
 *    range, the enum is one of its words, a list has no NULL entry, every
 *    key has a source (default, file, env or flag; none only for an unset
 *    key without a default), every kafka.* property
 *    has a name and a value;
 *  - loading the same input again gives the same result and values;
 *  - nothing crashes, leaks or reads out of bounds.
 *
 * Build and run: make build/fuzz/fuzz_config && build/fuzz/fuzz_config tests/fuzz/corpus/fuzz_config */
#include "fuzz_util.h"

#include "tributary/core_config.h"

#include <stddef.h>

typedef struct conf {
    char *name, *secret, *mode, *newname, *old;
    int64_t port;
    double ratio;
    bool force;
    core_cfg_list hosts;
} conf;

static const core_config_key keys[] = {
    { "name", CORE_CFG_STR, NULL, CORE_CFG_REQUIRED, offsetof(conf, name), "required", 0, 0, NULL },
    { "secret", CORE_CFG_STR, NULL, CORE_CFG_SECRET, offsetof(conf, secret), "secret", 0, 0, NULL },
    { "http.port", CORE_CFG_INT, "8080", 0, offsetof(conf, port), "port", 0, 65535, NULL },
    { "ratio", CORE_CFG_DOUBLE, "0.5", 0, offsetof(conf, ratio), "ratio", 0, 1, NULL },
    { "force", CORE_CFG_BOOL, "false", 0, offsetof(conf, force), "bool", 0, 0, NULL },
    { "mode", CORE_CFG_ENUM, "csv", 0, offsetof(conf, mode), "enum", 0, 0, "csv|jsonl|auto" },
    { "hosts", CORE_CFG_LIST, "a,b", 0, offsetof(conf, hosts), "list", 0, 0, NULL },
    { "batch.size", CORE_CFG_STR, NULL, 0, offsetof(conf, newname), "new name", 0, 0, NULL },
    { "topic.valid.suffix", CORE_CFG_STR, NULL, 0, offsetof(conf, old), "deprecated", 0, 0, NULL },
    CORE_CFG_END
};
static const core_config_alias aliases[] = { { "batch-size", "batch.size" }, CORE_CFG_ALIAS_END };
static const core_config_alias deprecated[] = { { "topic.valid.suffix", "name" },
                                                CORE_CFG_ALIAS_END };

#define MAX_WORDS 64

/* Split s (NUL-terminated, modified) at '\n' into out; returns the count. */
static int split_lines(char *s, char **out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = s;
        char *nl = strchr(s, '\n');
        if (!nl)
            break;
        *nl = '\0';
        s = nl + 1;
    }
    return n;
}

typedef struct result {
    int rc;
    conf v;
    core_config_t *c;
    char err[512];
} result;

static void load(result *r, const char *file, size_t file_len, char *args, char *env)
{
    char *argv[MAX_WORDS + 4], *envp[MAX_WORDS + 1], path[64], *a = strdup(args),
                                                        *e = strdup(env);
    int argc = 0, fd = -1, ne;

    memset(r, 0, sizeof(*r));
    FUZZ_CHECK(a && e, "out of memory");
    argv[argc++] = "fuzz";
    if (file_len) {
        fd = fuzz_file(file, file_len, path);
        if (fd >= 0) {
            argv[argc++] = "--config";
            argv[argc++] = path;
        }
    }
    argc += split_lines(a, argv + argc, MAX_WORDS);
    argv[argc] = NULL;
    ne = split_lines(e, envp, MAX_WORDS);
    envp[ne] = NULL;
    r->c = core_config_new("fuzz");
    FUZZ_CHECK(r->c, "config_new");
    FUZZ_CHECK(core_config_add_table(r->c, keys, &r->v) == 0, "add_table");
    FUZZ_CHECK(core_config_add_aliases(r->c, aliases) == 0, "aliases");
    FUZZ_CHECK(core_config_add_deprecated(r->c, deprecated) == 0, "deprecated");
    r->rc = core_config_load(r->c, argc, argv, envp, r->err, sizeof(r->err));
    if (fd >= 0)
        close(fd);
    free(a);
    free(e);
}

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *file, *args = "", *env = "";
    size_t file_len;
    result r1, r2;

    if (size > 16384)
        return 0;
    buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    file = buf;
    file_len = strlen(buf);
    if (file_len < size) {
        args = buf + file_len + 1;
        if ((size_t)(args - buf) + strlen(args) < size)
            env = args + strlen(args) + 1;
    }
    load(&r1, file, file_len, args, env);
    FUZZ_CHECK(r1.rc == 0 || r1.rc == CORE_EX_CONFIG || r1.rc == CORE_EX_USAGE, "rc %d", r1.rc);
    if (r1.rc) {
        FUZZ_CHECK(*r1.err && !strchr(r1.err, '\n'), "error \"%s\"", r1.err);
    } else if (!core_config_help_requested(r1.c) && !core_config_version_requested(r1.c)) {
        FUZZ_CHECK(r1.v.name != NULL, "required key unset");
        FUZZ_CHECK(r1.v.port >= 0 && r1.v.port <= 65535, "port %lld", (long long)r1.v.port);
        FUZZ_CHECK(r1.v.ratio >= 0 && r1.v.ratio <= 1, "ratio %g", r1.v.ratio);
        FUZZ_CHECK(r1.v.mode && (!strcmp(r1.v.mode, "csv") || !strcmp(r1.v.mode, "jsonl") ||
                                 !strcmp(r1.v.mode, "auto")),
                   "mode %s", r1.v.mode ? r1.v.mode : "(null)");
        for (size_t i = 0; i < r1.v.hosts.n; i++)
            FUZZ_CHECK(r1.v.hosts.v[i] != NULL, "hosts[%zu] NULL", i);
        for (const core_config_key *k = keys; k->key; k++) {
            const char *src = core_config_source(r1.c, k->key);
            /* NULL: never set, which only a key without a default can be */
            FUZZ_CHECK(src ? (!strcmp(src, "default") || !strcmp(src, "file") ||
                              !strcmp(src, "env") || !strcmp(src, "flag"))
                           : (!k->def && !(k->flags & CORE_CFG_REQUIRED)),
                       "%s from %s", k->key, src ? src : "(null)");
        }
        for (size_t i = 0; i < core_config_kafka_count(r1.c); i++) {
            const char *n, *v;
            core_config_kafka_get(r1.c, i, &n, &v);
            FUZZ_CHECK(n && *n && v, "kafka property %zu", i);
        }
    }
    load(&r2, file, file_len, args, env);
    FUZZ_CHECK(r2.rc == r1.rc && strcmp(r1.err, r2.err) == 0, "second load %d \"%s\", first %d \"%s\"",
               r2.rc, r2.err, r1.rc, r1.err);
    if (r1.rc == 0)
        FUZZ_CHECK(same_str(r1.v.name, r2.v.name) && same_str(r1.v.secret, r2.v.secret) &&
                       same_str(r1.v.mode, r2.v.mode) && r1.v.port == r2.v.port &&
                       r1.v.force == r2.v.force && r1.v.hosts.n == r2.v.hosts.n &&
                       (r1.v.ratio == r2.v.ratio || (r1.v.ratio != r1.v.ratio)),
                   "second load gave other values");
    core_config_free(r1.c);
    core_config_free(r2.c);
    free(buf);
    return 0;
}
