/* core_config.h — declarative configuration.
 *
 * Every key is declared once in a table (type, default, flags, help, where
 * it lands in the caller's struct). Values are layered:
 *
 *   built-in defaults < --config FILE < environment TB_<KEY> < flags
 *
 * FILE holds `key = value` lines, `#` or `!` comments (Java properties, as
 * Kafka users write them). The environment name of a key is TB_ followed by
 * the key upper-cased with '.' and '-' turned into '_' (http.port →
 * TB_HTTP_PORT). A flag is `--key value` or `--key=value`; a bool flag alone
 * (`--force`) means true. `<key>_file` in the file or as a flag, or
 * TB_<KEY>_FILE in the environment, reads the value from a file (secrets).
 *
 * Keys starting with "kafka." are not declared: they are collected in order
 * and handed to librdkafka as they are (kafka.linger.ms → linger.ms); the
 * environment form TB_KAFKA_LINGER_MS maps to kafka.linger.ms. core_kafka
 * gives each client the properties of its kind (kafka.producer.X and
 * kafka.consumer.X reach one kind only).
 *
 * A key's former name (core_config_add_aliases()) still works, in the file and as
 * a flag, for one release: the value lands on the new key and a warning
 * names the new key (core_config_warning()). Its environment name is the
 * same whenever the names differ only by '.' against '-'.
 *
 * An unknown key, a value that does not parse or lies outside its range, or
 * a missing required key is refused with one line naming the key; services
 * exit 78 (EX_CONFIG) on it before touching anything.
 */
#ifndef TRIBUTARY_CORE_CONFIG_H
#define TRIBUTARY_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#include "tributary/core_exit.h" /* CORE_EX_CONFIG, CORE_EX_USAGE */

typedef enum core_cfg_type {
    CORE_CFG_STR,    /* char * (owned by the config; valid until core_config_free) */
    CORE_CFG_INT,    /* int64_t, within [min, max] when min < max */
    CORE_CFG_DOUBLE, /* double, within [min, max] when min < max */
    CORE_CFG_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    CORE_CFG_ENUM,   /* char *: one of the '|'-separated words in .choices */
    CORE_CFG_LIST,   /* core_cfg_list: comma-separated; a repeated flag appends */
} core_cfg_type_t;

enum {
    CORE_CFG_REQUIRED = 1 << 0, /* must be set somewhere; no default */
    CORE_CFG_SECRET = 1 << 1,   /* never printed, not even by --help's defaults */
};

typedef struct core_cfg_list {
    size_t n;
    char **v;
} core_cfg_list;

typedef struct core_config_key {
    const char *key;       /* "http.port" */
    core_cfg_type_t type;
    const char *def;       /* default as text; NULL = unset (NULL / 0 / false) */
    int flags;
    size_t offset;         /* offsetof(the caller's struct, field) */
    const char *help;
    double min, max;       /* range for INT/DOUBLE when min < max */
    const char *choices;   /* ENUM: "csv|jsonl" */
} core_config_key;

#define CORE_CFG_END { NULL, 0, NULL, 0, 0, NULL, 0, 0, NULL }

/* A key's former name ("batch-size" for "batch.size"), still accepted as a
 * file key or a flag for one release, with a warning naming the new key. */
typedef struct core_config_alias {
    const char *old_key;
    const char *key;       /* a key of a registered table */
} core_config_alias;

#define CORE_CFG_ALIAS_END { NULL, NULL }

typedef struct core_config core_config_t;

/**
 * @brief A config over one or more key tables, each filling its own struct.
 * Tables are kept by pointer (static storage expected).
 */
core_config_t *core_config_new(const char *program);
void core_config_free(core_config_t *c);

/* Add a table whose keys land in dst (offsets relative to dst). */
int core_config_add_table(core_config_t *c, const core_config_key *table, void *dst);

/* Add former key names (a CORE_CFG_ALIAS_END-terminated list, kept by
 * pointer). @returns 0, or CORE_ERR_STATE when too many lists are added. */
int core_config_add_aliases(core_config_t *c, const core_config_alias *aliases);

/* Keys that still work with their own meaning but are to be replaced
 * (old_key: a declared key; key: what to use instead): a value given to one
 * (file, environment or flag) adds a warning naming the other. A
 * CORE_CFG_ALIAS_END-terminated list, kept by pointer. @returns 0, or
 * CORE_ERR_STATE when too many lists are added. */
int core_config_add_deprecated(core_config_t *c, const core_config_alias *keys);

/**
 * @brief Parse the layers and fill every registered struct.
 *
 * argv is the whole command line; flags may appear anywhere. Words that are
 * not flags (a subcommand, input files) are kept in order: see
 * core_config_args(). "--" ends flag parsing. "--help" and "--version" set
 * the matching result without failing.
 *
 * @returns 0 on success; CORE_EX_CONFIG with errstr naming the key (one
 *          line, no newline) for a bad key or value; CORE_EX_USAGE for a
 *          malformed command line (a flag missing its value).
 */
int core_config_load(core_config_t *c, int argc, char **argv, char **envp,
                     char *errstr, size_t errstr_size);

/* Same, from an explicit file path only (tests, tools). */
int core_config_load_file(core_config_t *c, const char *path, char *errstr, size_t errstr_size);

bool core_config_help_requested(const core_config_t *c);
bool core_config_version_requested(const core_config_t *c);

/* Non-flag words of the command line, in order. */
size_t core_config_nargs(const core_config_t *c);
const char *core_config_arg(const core_config_t *c, size_t i);

/* Warnings of the last load, one line each: a former key name that was used
 * ("batch-size is deprecated: use batch.size (the old name goes in the next
 * release)"), each name once. core_service logs them once logging is set. */
size_t core_config_nwarnings(const core_config_t *c);
const char *core_config_warning(const core_config_t *c, size_t i);

/* Where a key's value came from: "default", "file", "env", "flag" or NULL. */
const char *core_config_source(const core_config_t *c, const char *key);

/* kafka.* properties in the order they were set, prefix stripped; later
 * layers override earlier ones. */
size_t core_config_kafka_count(const core_config_t *c);
void core_config_kafka_get(const core_config_t *c, size_t i, const char **name, const char **value);
/* Value of one kafka property or NULL. */
const char *core_config_kafka_lookup(const core_config_t *c, const char *name);

/* Print every key of every table: name, type, default, help (for --help). */
void core_config_print_help(const core_config_t *c, FILE *out);

/* Environment name for a key: TB_HTTP_PORT for http.port. */
void core_config_env_name(const char *key, char *buf, size_t size);

#endif
