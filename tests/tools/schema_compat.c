/* schema_compat.c — `make schema-compat`: asks a real Schema Registry
 * whether every schema of proto/ is BACKWARD-compatible with its previous
 * entry in catalog.json (the previous version of the same dataset, or of
 * the same named schema).
 *
 * Each lineage (a dataset, or a named schema such as tributary.AuditEvent)
 * is registered, version after version in catalogue order, under a scratch
 * subject of its own (tb-ci-compat-<pid>-<time>-<lineage>) set to BACKWARD;
 * before each later version the registry is asked (POST
 * /compatibility/subjects/S/versions/latest) and its reasons are printed
 * when it says no. References (tributary.Meta) go as they go from the
 * services: under the subject of their full name. The scratch subjects are
 * deleted at the end.
 *
 * Usage: schema_compat REGISTRY_URL PROTO_DIR
 * Exit: 0 all compatible, 1 a schema is not, 2 the registry did not answer
 * or refused a request, 64 usage, 78 the catalogue did not load. */
#include "tributary/core_avro.h"
#include "tributary/core_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINEAGES 256

int main(int argc, char **argv)
{
    core_registry_conf rc = { 0 };
    core_avro_catalog_t *cat;
    core_registry_t *reg;
    char errstr[1024], prefix[128];
    char *subjects[MAX_LINEAGES];
    size_t nsub = 0;
    int rcode = 0, checked = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s REGISTRY_URL PROTO_DIR\n", argv[0]);
        return 64;
    }
    if (!(cat = core_avro_catalog_load(argv[2], errstr, sizeof(errstr)))) {
        fprintf(stderr, "schema-compat: %s\n", errstr);
        return 78;
    }
    rc.url = argv[1];
    rc.auto_register = true;
    rc.retries = 3;
    if (!(reg = core_registry_new(&rc, errstr, sizeof(errstr)))) {
        fprintf(stderr, "schema-compat: %s\n", errstr);
        core_avro_catalog_free(cat);
        return 78;
    }
    snprintf(prefix, sizeof(prefix), "tb-ci-compat-%d-%lld", (int)getpid(),
             (long long)time(NULL));
    for (size_t i = 0; i < core_avro_catalog_count(cat) && rcode != 2; i++) {
        const core_avro_schema_t *s = core_avro_catalog_at(cat, i);
        const char *lineage = core_avro_schema_dataset(s) ? core_avro_schema_dataset(s)
                                                          : core_avro_schema_name(s);
        const char *file = strrchr(core_avro_schema_file(s), '/');
        char subject[512];
        bool first = true, ok = false;
        uint32_t id = 0;

        file = file ? file + 1 : core_avro_schema_file(s);
        snprintf(subject, sizeof(subject), "%s-%s", prefix, lineage);
        for (size_t k = 0; k < nsub; k++)
            if (strcmp(subjects[k], subject) == 0)
                first = false;
        if (first) {
            if (nsub == MAX_LINEAGES || !(subjects[nsub] = strdup(subject))) {
                fprintf(stderr, "schema-compat: too many lineages or out of memory\n");
                rcode = 2;
                break;
            }
            nsub++;
        } else {
            core_err_t e = core_registry_check_schema(reg, cat, s, subject, &ok, errstr,
                                                      sizeof(errstr));

            checked++;
            if (e != CORE_OK) {
                fprintf(stderr, "schema-compat: %s (%s): %s\n", lineage, file, errstr);
                rcode = 2;
                break;
            }
            if (!ok) {
                /* Apicurio gives no reasons there: its 409 on registering names the diffs
                 * (the registry refuses it, so nothing is written) */
                if (!errstr[0] &&
                    core_registry_bind_subject(reg, cat, s, subject, &id, errstr,
                                               sizeof(errstr)) == CORE_OK)
                    snprintf(errstr, sizeof(errstr), "the check said no, yet registering worked");
                printf("schema-compat: FAIL %s: %s is not BACKWARD-compatible with its previous "
                       "entry: %s\n", lineage, file, errstr[0] ? errstr : "(no reason given)");
                rcode = 1;
                continue; /* the next versions are checked against the last good one */
            }
        }
        if (core_registry_bind_subject(reg, cat, s, subject, &id, errstr, sizeof(errstr)) !=
                CORE_OK ||
            (first &&
             core_registry_set_compat(reg, subject, "BACKWARD", errstr, sizeof(errstr)) !=
                 CORE_OK)) {
            fprintf(stderr, "schema-compat: %s (%s): %s\n", lineage, file, errstr);
            rcode = 2;
            break;
        }
        printf("schema-compat: %s %s: %s\n", first ? "first" : "ok   ", lineage, file);
    }
    for (size_t k = 0; k < nsub; k++) {
        if (core_registry_delete_subject(reg, subjects[k], errstr, sizeof(errstr)) != CORE_OK)
            fprintf(stderr, "schema-compat: cleaning up: %s\n", errstr);
        free(subjects[k]);
    }
    if (rcode == 0)
        printf("schema-compat: %d later version(s) BACKWARD-compatible with their previous "
               "entry, %zu lineage(s), registry %s\n", checked, nsub, argv[1]);
    core_registry_free(reg);
    core_avro_catalog_free(cat);
    return rcode;
}
