/* svc-recon — compares what each stage published and consumed, and names
 * every record delivered, rejected, missing, altered or duplicated.
 *
 * This stage: configuration, health, readiness and clean shutdown; the
 * reconciliation comes with the svc-recon issue. */
#include "tributary/core_service.h"

extern char **environ;

static const core_service_def def = {
    .name = "svc-recon",
    .summary = "reconciliation of every stage from audit.events",
    .usage = "svc-recon [options]",
    .http_port_default = "8085",
};

int main(int argc, char **argv)
{
    return core_service_main(&def, argc, argv, environ);
}
