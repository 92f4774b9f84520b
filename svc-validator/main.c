/* svc-validator — rules and cached external checks; routes every record to
 * success, retry or dead-letter topics, exactly once.
 *
 * This stage: configuration, health, readiness and clean shutdown; the
 * validation itself comes with the svc-validator issue. */
#include "tributary/core_service.h"

#include <stddef.h>

extern char **environ;

struct validator_conf {
    core_cfg_list datasets;
};

static struct validator_conf conf;

static const core_config_key validator_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, offsetof(struct validator_conf, datasets),
      "Datasets to validate (repeat the flag or comma-separate)", 0, 0, NULL },
    CORE_CFG_END
};

static const char *const subcommands[] = { "replay", NULL };

static const core_service_def def = {
    .name = "svc-validator",
    .summary = "rules and cached external checks; success, retry and dead-letter routing",
    .usage = "svc-validator --dataset NAME [options]  |  svc-validator replay --dataset NAME",
    .http_port_default = "8082",
    .keys = validator_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .datasets = &conf.datasets,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
