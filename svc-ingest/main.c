/* svc-ingest — batch files (CSV, JSON Lines) into Avro records on Kafka.
 *
 * This stage: configuration, health, readiness and clean shutdown; parsing
 * and publishing come with the svc-ingest issue. */
#include "tributary/core_service.h"

#include <stddef.h>

extern char **environ;

struct ingest_conf {
    core_cfg_list datasets;
};

static struct ingest_conf conf;

static const core_config_key ingest_keys[] = {
    { "dataset", CORE_CFG_LIST, NULL, CORE_CFG_REQUIRED, offsetof(struct ingest_conf, datasets),
      "Dataset of the input (a name in proto/catalog.json)", 0, 0, NULL },
    CORE_CFG_END
};

static const char *const subcommands[] = { "serve", NULL };

static const core_service_def def = {
    .name = "svc-ingest",
    .summary = "batch files and change feeds into Avro records on Kafka",
    .usage = "svc-ingest --dataset NAME [options] FILE...  |  svc-ingest serve [options]",
    .http_port_default = "8081",
    .keys = ingest_keys,
    .conf = &conf,
    .subcommands = subcommands,
    .takes_files = true,
    .datasets = &conf.datasets,
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
