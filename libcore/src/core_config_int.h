/* core_config_int.h — what core_config.c (the layers: tables, file,
 * environment, flags) and core_config_value.c (a value parsed into its
 * destination) share. Not installed. */
#ifndef TRIBUTARY_CORE_CONFIG_INT_H
#define TRIBUTARY_CORE_CONFIG_INT_H

#include "tributary/core_config.h"

#include <stddef.h>

enum cfg_source { SRC_UNSET = 0, SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };

/* One declared key and its current textual value. */
struct cfg_entry {
    const core_config_key *decl;
    void *dst;
    char *value;            /* NULL = unset */
    enum cfg_source source;
    core_cfg_list list;     /* LIST: parsed value, owned */
};

int core_config_fill_entry_(struct cfg_entry *e, char *errstr, size_t errstr_size);
void core_config_list_clear_(core_cfg_list *l);
char *core_config_trim_(char *s);
/* "default", "file", "env", "flag"; NULL when unset. */
const char *core_config_source_name_(enum cfg_source src);

#endif
