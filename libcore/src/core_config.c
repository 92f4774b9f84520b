/* core_config.c — declarative, layered configuration (defaults < file < env < flags). */
#include "tributary/core_config.h"
#include "tributary/core_common.h"
#include "core_config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_MAX_TABLES 8
#define CFG_MAX_FILE (1024 * 1024)
#define CFG_MAX_SECRET (64 * 1024)



struct kafka_prop {
    char *name;             /* without "kafka." */
    char *value;
};

struct core_config {
    char *program;
    struct {
        const core_config_key *table;
        void *dst;
    } tables[CFG_MAX_TABLES];
    size_t ntables;
    struct cfg_entry *entries;
    size_t nentries;
    struct kafka_prop *kafka;
    size_t nkafka;
    char **args;
    size_t nargs;
    char **warnings;
    size_t nwarnings;
    const core_config_alias *aliases[CFG_MAX_TABLES];
    size_t naliases;
    const core_config_alias *deprecated[CFG_MAX_TABLES];
    size_t ndeprecated;
    bool help, version;
};

core_config_t *core_config_new(const char *program)
{
    core_config_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->program = strdup(program ? program : "tributary");
    if (!c->program) {
        free(c);
        return NULL;
    }
    return c;
}

void core_config_list_clear_(core_cfg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void core_config_free(core_config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nentries; i++) {
        free(c->entries[i].value);
        core_config_list_clear_(&c->entries[i].list);
    }
    free(c->entries);
    for (size_t i = 0; i < c->nkafka; i++) {
        free(c->kafka[i].name);
        free(c->kafka[i].value);
    }
    free(c->kafka);
    for (size_t i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args);
    for (size_t i = 0; i < c->nwarnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->program);
    free(c);
}

int core_config_add_table(core_config_t *c, const core_config_key *table, void *dst)
{
    size_t n = 0;
    struct cfg_entry *grown;

    if (c->ntables == CFG_MAX_TABLES)
        return CORE_ERR_STATE;
    while (table[n].key)
        n++;
    grown = realloc(c->entries, (c->nentries + n) * sizeof(*grown));
    if (!grown && n > 0)
        return CORE_ERR_NOMEM;
    c->entries = grown;
    for (size_t i = 0; i < n; i++) {
        struct cfg_entry *e = &c->entries[c->nentries + i];
        memset(e, 0, sizeof(*e));
        e->decl = &table[i];
        e->dst = dst;
    }
    c->nentries += n;
    c->tables[c->ntables].table = table;
    c->tables[c->ntables].dst = dst;
    c->ntables++;
    return CORE_OK;
}

/* Record the warning once (a key set in the file and again as a flag warns
 * once). Out of memory loses the warning only. */
static void warn_once(core_config_t *c, const char *text)
{
    char **grown;

    for (size_t i = 0; i < c->nwarnings; i++)
        if (strcmp(c->warnings[i], text) == 0)
            return;
    grown = realloc(c->warnings, (c->nwarnings + 1) * sizeof(*grown));
    if (!grown)
        return;
    c->warnings = grown;
    if ((c->warnings[c->nwarnings] = strdup(text)))
        c->nwarnings++;
}

/* The entry of key, or of the key whose former name (alias) it is: then a
 * warning names the new key when warn is set. */
static struct cfg_entry *find_entry_warn(core_config_t *c, const char *key, bool warn)
{
    for (size_t i = 0; i < c->nentries; i++)
        if (strcmp(c->entries[i].decl->key, key) == 0)
            return &c->entries[i];
    for (size_t t = 0; t < c->naliases; t++)
        for (const core_config_alias *a = c->aliases[t]; a->old_key; a++) {
            if (strcmp(a->old_key, key) != 0)
                continue;
            for (size_t i = 0; i < c->nentries; i++) {
                if (strcmp(c->entries[i].decl->key, a->key) != 0)
                    continue;
                if (warn) {
                    char w[512];

                    snprintf(w, sizeof(w), "%s is deprecated: use %s (the old name goes in "
                             "the next release)", a->old_key, a->key);
                    warn_once(c, w);
                }
                return &c->entries[i];
            }
        }
    return NULL;
}

int core_config_add_aliases(core_config_t *c, const core_config_alias *aliases)
{
    if (c->naliases == CFG_MAX_TABLES)
        return CORE_ERR_STATE;
    c->aliases[c->naliases++] = aliases;
    return CORE_OK;
}

int core_config_add_deprecated(core_config_t *c, const core_config_alias *keys)
{
    if (c->ndeprecated == CFG_MAX_TABLES)
        return CORE_ERR_STATE;
    c->deprecated[c->ndeprecated++] = keys;
    return CORE_OK;
}

/* A warning for each deprecated key given a value (not its default). */
static void warn_deprecated(core_config_t *c)
{
    for (size_t t = 0; t < c->ndeprecated; t++)
        for (const core_config_alias *a = c->deprecated[t]; a->old_key; a++) {
            const char *src = core_config_source(c, a->old_key);
            char w[512];

            if (!src || !strcmp(src, "default"))
                continue;
            snprintf(w, sizeof(w), "%s is deprecated: use %s (%s goes in the next release)",
                     a->old_key, a->key, a->old_key);
            warn_once(c, w);
        }
}

static struct cfg_entry *find_entry(core_config_t *c, const char *key)
{
    return find_entry_warn(c, key, false);
}

size_t core_config_nwarnings(const core_config_t *c) { return c ? c->nwarnings : 0; }

const char *core_config_warning(const core_config_t *c, size_t i)
{
    return c && i < c->nwarnings ? c->warnings[i] : NULL;
}

void core_config_env_name(const char *key, char *buf, size_t size)
{
    size_t o = 0;

    if (size == 0)
        return;
    o = (size_t)snprintf(buf, size, "TB_");
    for (const char *p = key; *p && o + 1 < size; p++)
        buf[o++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    buf[o < size ? o : size - 1] = '\0';
}

char *core_config_trim_(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Reads a secret from a file: the whole file, one trailing newline dropped. */
static char *read_secret(const char *key, const char *path, char *errstr, size_t errstr_size)
{
    char err[256];
    size_t len;
    char *buf = core_read_file(path, CFG_MAX_SECRET, &len, err, sizeof(err));

    if (!buf) {
        core_errstr(errstr, errstr_size, "%s: cannot read value from file: %s", key, err);
        return NULL;
    }
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    return buf;
}

static int set_kafka(core_config_t *c, const char *name, const char *value)
{
    char *v;
    struct kafka_prop *grown;

    for (size_t i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].name, name) == 0) {
            v = strdup(value);
            if (!v)
                return CORE_ERR_NOMEM;
            free(c->kafka[i].value);
            c->kafka[i].value = v;
            return CORE_OK;
        }
    }
    grown = realloc(c->kafka, (c->nkafka + 1) * sizeof(*grown));
    if (!grown)
        return CORE_ERR_NOMEM;
    c->kafka = grown;
    c->kafka[c->nkafka].name = strdup(name);
    c->kafka[c->nkafka].value = strdup(value);
    if (!c->kafka[c->nkafka].name || !c->kafka[c->nkafka].value) {
        free(c->kafka[c->nkafka].name);
        free(c->kafka[c->nkafka].value);
        return CORE_ERR_NOMEM;
    }
    c->nkafka++;
    return CORE_OK;
}

/* Append to a list value set in the same layer, else replace. */
static int set_value(struct cfg_entry *e, const char *value, enum cfg_source src, bool append)
{
    char *v;

    if (append && e->decl->type == CORE_CFG_LIST && e->source == src && e->value) {
        size_t a = strlen(e->value), b = strlen(value);
        v = malloc(a + b + 2);
        if (!v)
            return CORE_ERR_NOMEM;
        memcpy(v, e->value, a);
        v[a] = ',';
        memcpy(v + a + 1, value, b + 1);
    } else {
        v = strdup(value);
        if (!v)
            return CORE_ERR_NOMEM;
    }
    free(e->value);
    e->value = v;
    e->source = src;
    return CORE_OK;
}

/**
 * @brief Set `key` (possibly `<key>_file` or `kafka.*`) from a layer.
 * @returns 0, or CORE_EX_CONFIG with errstr "<where>: unknown key 'x'".
 */
static int set_key(core_config_t *c, const char *key, const char *value,
                   enum cfg_source src, bool append, const char *where,
                   char *errstr, size_t errstr_size)
{
    struct cfg_entry *e;
    size_t klen = strlen(key);

    if (strncmp(key, "kafka.", 6) == 0 && key[6] &&
        !(klen > 5 && strcmp(key + klen - 5, "_file") == 0)) {
        if (set_kafka(c, key + 6, value) != CORE_OK) {
            core_errstr(errstr, errstr_size, "%s: out of memory", key);
            return CORE_EX_CONFIG;
        }
        return 0;
    }
    e = find_entry_warn(c, key, true);
    if (!e && klen > 5 && strcmp(key + klen - 5, "_file") == 0) {
        char base[256];
        char *secret;
        int rc;

        snprintf(base, sizeof(base), "%.*s", (int)(klen - 5), key);
        if (strncmp(base, "kafka.", 6) == 0 && base[6]) {
            if (!(secret = read_secret(base, value, errstr, errstr_size)))
                return CORE_EX_CONFIG;
            rc = set_kafka(c, base + 6, secret);
            free(secret);
            return rc == CORE_OK ? 0 : CORE_EX_CONFIG;
        }
        e = find_entry_warn(c, base, true);
        if (e) {
            if (!(secret = read_secret(base, value, errstr, errstr_size)))
                return CORE_EX_CONFIG;
            rc = set_value(e, secret, src, append);
            free(secret);
            return rc == CORE_OK ? 0 : CORE_EX_CONFIG;
        }
    }
    if (!e) {
        core_errstr(errstr, errstr_size, "%s: unknown key '%s'", where, key);
        return CORE_EX_CONFIG;
    }
    if (set_value(e, value, src, append) != CORE_OK) {
        core_errstr(errstr, errstr_size, "%s: out of memory", key);
        return CORE_EX_CONFIG;
    }
    return 0;
}

static int parse_file(core_config_t *c, const char *path, char *errstr, size_t errstr_size)
{
    char err[256], where[512];
    char *buf, *line;
    int lineno = 0;

    buf = core_read_file(path, CFG_MAX_FILE, NULL, err, sizeof(err));
    if (!buf) {
        core_errstr(errstr, errstr_size, "config file: %s", err);
        return CORE_EX_CONFIG;
    }
    /* strtok_r skips empty lines, so count newlines by hand. */
    for (line = buf; line; ) {
        char *nl = strchr(line, '\n');
        char *s, *sep, *key, *value;
        int rc;

        if (nl)
            *nl = '\0';
        lineno++;
        s = core_config_trim_(line);
        line = nl ? nl + 1 : NULL;
        if (*s == '\0' || *s == '#' || *s == '!')
            continue;
        sep = strpbrk(s, "=:");
        if (!sep) {
            /* not the line itself: "pg.password hunter2" is a secret */
            core_errstr(errstr, errstr_size,
                        "config file %s line %d: expected 'key = value' (no '=' or ':' on the line)",
                        path, lineno);
            free(buf);
            return CORE_EX_CONFIG;
        }
        *sep = '\0';
        key = core_config_trim_(s);
        value = core_config_trim_(sep + 1);
        if (*key == '\0') {
            core_errstr(errstr, errstr_size, "config file %s line %d: empty key", path, lineno);
            free(buf);
            return CORE_EX_CONFIG;
        }
        snprintf(where, sizeof(where), "config file %s line %d", path, lineno);
        rc = set_key(c, key, value, SRC_FILE, false, where, errstr, errstr_size);
        if (rc) {
            free(buf);
            return rc;
        }
    }
    free(buf);
    return 0;
}

/* TB_KAFKA_LINGER_MS → kafka.linger.ms; TB_HTTP_PORT → the declared key. */
static int parse_env(core_config_t *c, char **envp, char *errstr, size_t errstr_size)
{
    char envname[256], where[300];

    if (!envp)
        return 0;
    for (char **ep = envp; *ep; ep++) {
        const char *eq = strchr(*ep, '=');
        const char *value;
        size_t nlen;
        bool is_file = false, matched = false;
        int rc;

        if (!eq || strncmp(*ep, "TB_", 3) != 0)
            continue;
        nlen = (size_t)(eq - *ep);
        value = eq + 1;
        if (nlen >= sizeof(envname))
            continue;
        memcpy(envname, *ep, nlen);
        envname[nlen] = '\0';
        if (strcmp(envname, "TB_CONFIG") == 0)
            continue;
        snprintf(where, sizeof(where), "environment %s", envname);
        if (nlen > 5 && strcmp(envname + nlen - 5, "_FILE") == 0) {
            is_file = true;
            envname[nlen - 5] = '\0';
        }
        if (strncmp(envname, "TB_KAFKA_", 9) == 0 && envname[9]) {
            char prop[256];
            size_t o = 0;
            for (const char *p = envname + 9; *p && o + 1 < sizeof(prop); p++)
                prop[o++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
            prop[o] = '\0';
            char key[300];
            snprintf(key, sizeof(key), "kafka.%s%s", prop, is_file ? "_file" : "");
            rc = set_key(c, key, value, SRC_ENV, false, where, errstr, errstr_size);
            if (rc)
                return rc;
            continue;
        }
        for (size_t i = 0; i < c->nentries; i++) {
            char want[256];
            core_config_env_name(c->entries[i].decl->key, want, sizeof(want));
            if (strcmp(want, envname) == 0) {
                char key[300];
                snprintf(key, sizeof(key), "%s%s", c->entries[i].decl->key, is_file ? "_file" : "");
                rc = set_key(c, key, value, SRC_ENV, false, where, errstr, errstr_size);
                if (rc)
                    return rc;
                matched = true;
                break;
            }
        }
        if (!matched) {
            core_errstr(errstr, errstr_size, "%s: unknown key (no configuration key maps to it)", where);
            return CORE_EX_CONFIG;
        }
    }
    return 0;
}

static int add_arg(core_config_t *c, const char *arg)
{
    char **grown = realloc(c->args, (c->nargs + 1) * sizeof(*grown));

    if (!grown)
        return CORE_ERR_NOMEM;
    c->args = grown;
    if (!(c->args[c->nargs] = strdup(arg)))
        return CORE_ERR_NOMEM;
    c->nargs++;
    return CORE_OK;
}

static bool is_bool_key(core_config_t *c, const char *key)
{
    struct cfg_entry *e = find_entry(c, key);
    return e && e->decl->type == CORE_CFG_BOOL;
}

static bool is_known_flag(core_config_t *c, const char *key)
{
    size_t klen = strlen(key);

    if (find_entry(c, key) || (strncmp(key, "kafka.", 6) == 0 && key[6]))
        return true;
    if (klen > 5 && strcmp(key + klen - 5, "_file") == 0) {
        char base[256];
        snprintf(base, sizeof(base), "%.*s", (int)(klen - 5), key);
        return find_entry(c, base) || strncmp(base, "kafka.", 6) == 0;
    }
    return false;
}

/* First pass: --config, --help, --version and positional words. Second pass
 * (apply == true): every other flag, after file and env were applied. */
static int parse_flags(core_config_t *c, int argc, char **argv, bool apply,
                       const char **config_path, char *errstr, size_t errstr_size)
{
    bool done = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char key[256];
        const char *value = NULL, *eq;
        int rc;

        if (done || a[0] != '-' || a[1] == '\0') {
            if (!apply && add_arg(c, a) != CORE_OK) {
                core_errstr(errstr, errstr_size, "out of memory");
                return CORE_EX_CONFIG;
            }
            continue;
        }
        if (strcmp(a, "--") == 0) {
            done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = true;
            continue;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            c->version = true;
            continue;
        }
        if (a[1] != '-') {
            core_errstr(errstr, errstr_size, "unknown option '%s' (options are --key value)", a);
            return CORE_EX_USAGE;
        }
        a += 2;
        eq = strchr(a, '=');
        snprintf(key, sizeof(key), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
        if (eq) {
            value = eq + 1;
        } else if (strcmp(key, "config") != 0 && is_bool_key(c, key)) {
            value = "true";
        } else {
            if (i + 1 >= argc) {
                core_errstr(errstr, errstr_size, "option --%s needs a value", key);
                return CORE_EX_USAGE;
            }
            value = argv[++i];
        }
        if (strcmp(key, "config") == 0) {
            *config_path = value;
            continue;
        }
        if (!is_known_flag(c, key)) {
            core_errstr(errstr, errstr_size, "unknown option '--%s' (see --help)", key);
            return CORE_EX_USAGE;
        }
        if (!apply)
            continue;
        rc = set_key(c, key, value, SRC_FLAG, true, "command line", errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_defaults(core_config_t *c, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < c->nentries; i++) {
        struct cfg_entry *e = &c->entries[i];
        free(e->value);
        e->value = NULL;
        e->source = SRC_UNSET;
        if (e->decl->def && set_value(e, e->decl->def, SRC_DEFAULT, false) != CORE_OK) {
            core_errstr(errstr, errstr_size, "out of memory");
            return CORE_EX_CONFIG;
        }
    }
    return 0;
}

static int fill_all(core_config_t *c, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < c->nentries; i++) {
        int rc = core_config_fill_entry_(&c->entries[i], errstr, errstr_size);
        if (rc)
            return rc;
    }
    warn_deprecated(c);
    return 0;
}

int core_config_load(core_config_t *c, int argc, char **argv, char **envp,
                     char *errstr, size_t errstr_size)
{
    const char *config_path = NULL;
    int rc;

    if ((rc = apply_defaults(c, errstr, errstr_size)))
        return rc;
    /* Pass 1: find --config, --help, positional words; refuse unknown flags. */
    if ((rc = parse_flags(c, argc, argv, false, &config_path, errstr, errstr_size)))
        return rc;
    if (c->help || c->version)
        return 0;
    if (!config_path && envp) {
        for (char **ep = envp; *ep; ep++)
            if (strncmp(*ep, "TB_CONFIG=", 10) == 0)
                config_path = *ep + 10;
    }
    if (config_path && (rc = parse_file(c, config_path, errstr, errstr_size)))
        return rc;
    if ((rc = parse_env(c, envp, errstr, errstr_size)))
        return rc;
    if ((rc = parse_flags(c, argc, argv, true, &config_path, errstr, errstr_size)))
        return rc;
    return fill_all(c, errstr, errstr_size);
}

int core_config_load_file(core_config_t *c, const char *path, char *errstr, size_t errstr_size)
{
    int rc;

    if ((rc = apply_defaults(c, errstr, errstr_size)))
        return rc;
    if ((rc = parse_file(c, path, errstr, errstr_size)))
        return rc;
    return fill_all(c, errstr, errstr_size);
}

bool core_config_help_requested(const core_config_t *c)
{
    return c->help;
}

bool core_config_version_requested(const core_config_t *c)
{
    return c->version;
}

size_t core_config_nargs(const core_config_t *c)
{
    return c->nargs;
}

const char *core_config_arg(const core_config_t *c, size_t i)
{
    return i < c->nargs ? c->args[i] : NULL;
}

const char *core_config_source(const core_config_t *c, const char *key)
{
    for (size_t i = 0; i < c->nentries; i++)
        if (strcmp(c->entries[i].decl->key, key) == 0)
            return core_config_source_name_(c->entries[i].source);
    if (strncmp(key, "kafka.", 6) == 0 && core_config_kafka_lookup(c, key + 6))
        return "set";
    return NULL;
}

size_t core_config_kafka_count(const core_config_t *c)
{
    return c->nkafka;
}

void core_config_kafka_get(const core_config_t *c, size_t i, const char **name, const char **value)
{
    *name = i < c->nkafka ? c->kafka[i].name : NULL;
    *value = i < c->nkafka ? c->kafka[i].value : NULL;
}

const char *core_config_kafka_lookup(const core_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nkafka; i++)
        if (strcmp(c->kafka[i].name, name) == 0)
            return c->kafka[i].value;
    return NULL;
}

static const char *type_name(core_cfg_type_t t)
{
    switch (t) {
    case CORE_CFG_STR: return "STRING";
    case CORE_CFG_INT: return "INT";
    case CORE_CFG_DOUBLE: return "NUMBER";
    case CORE_CFG_BOOL: return "BOOL";
    case CORE_CFG_ENUM: return "ENUM";
    case CORE_CFG_LIST: return "LIST";
    }
    return "?";
}

void core_config_print_help(const core_config_t *c, FILE *out)
{
    fprintf(out, "Configuration (defaults < --config FILE < environment TB_<KEY> < --key value):\n");
    for (size_t t = 0; t < c->ntables; t++) {
        for (const core_config_key *d = c->tables[t].table; d->key; d++) {
            char env[256];
            core_config_env_name(d->key, env, sizeof(env));
            fprintf(out, "  --%-28s %-6s %s\n", d->key, type_name(d->type), d->help ? d->help : "");
            fprintf(out, "  %-30s        ", "");
            if (d->flags & CORE_CFG_REQUIRED)
                fprintf(out, "required; ");
            else if (d->def && !(d->flags & CORE_CFG_SECRET))
                fprintf(out, "default %s; ", d->def[0] ? d->def : "\"\"");
            if (d->type == CORE_CFG_ENUM)
                fprintf(out, "one of %s; ", d->choices);
            if ((d->type == CORE_CFG_INT || d->type == CORE_CFG_DOUBLE) && d->min < d->max)
                fprintf(out, "range [%g, %g]; ", d->min, d->max);
            fprintf(out, "env %s\n", env);
            if (d->flags & CORE_CFG_SECRET)
                fprintf(out, "  %-30s        or %s_FILE / --%s_file PATH\n", "", env, d->key);
        }
    }
    fprintf(out, "  --kafka.<property> VALUE          any librdkafka property, passed as it is "
                 "(env TB_KAFKA_<PROPERTY>)\n");
    fprintf(out, "  --config FILE                     key = value lines, # comments (env TB_CONFIG)\n");
}
