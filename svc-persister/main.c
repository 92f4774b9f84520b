/* svc-persister — batched, idempotent writes to PostgreSQL or MongoDB.
 *
 * This stage: configuration, health, readiness and clean shutdown; the
 * database writes come with the svc-persister issue. */
#include "tributary/core_service.h"

#include <stddef.h>

extern char **environ;

struct persister_conf {
    core_cfg_list datasets;
    char *sink;
};

static struct persister_conf conf;

static const core_config_key persister_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, offsetof(struct persister_conf, datasets),
      "Datasets to persist (repeat the flag or comma-separate)", 0, 0, NULL },
    { "sink", CORE_CFG_ENUM, "postgres", 0, offsetof(struct persister_conf, sink),
      "Database the records are written to", 0, 0, "postgres|mongodb" },
    CORE_CFG_END
};

static const char *const subcommands[] = { "schema-sql", NULL };

static const core_service_def def = {
    .name = "svc-persister",
    .summary = "batched, idempotent writes to PostgreSQL and MongoDB",
    .usage = "svc-persister --dataset NAME [--sink postgres|mongodb] [options]",
    .http_port_default = "8084",
    .keys = persister_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .datasets = &conf.datasets,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
