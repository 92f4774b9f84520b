/* svc-cache-feeder — bulk, change and delete events into Redis.
 *
 * This stage: configuration, health, readiness and clean shutdown; the
 * Redis writes come with the svc-cache-feeder issue. */
#include "tributary/core_service.h"

#include <stddef.h>

extern char **environ;

struct feeder_conf {
    core_cfg_list datasets;
};

static struct feeder_conf conf;

static const core_config_key feeder_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, offsetof(struct feeder_conf, datasets),
      "Datasets to cache (repeat the flag or comma-separate)", 0, 0, NULL },
    CORE_CFG_END
};

static const char *const subcommands[] = { "get", NULL };

static const core_service_def def = {
    .name = "svc-cache-feeder",
    .summary = "bulk, change and delete events into Redis, never stale",
    .usage = "svc-cache-feeder --dataset NAME [options]  |  svc-cache-feeder get --dataset NAME KEY",
    .http_port_default = "8083",
    .keys = feeder_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .takes_files = true,
    .datasets = &conf.datasets,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
