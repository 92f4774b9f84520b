/* method.c — the reconciliation method of each dataset (method.h). */
#include "method.h"

#include "tributary/core_common.h"

#include <string.h>

const char *const recon_method_names[RM_COUNT] = { "counts", "ids", "digests", "full" };

int recon_method_index(const char *s, size_t len)
{
    for (int i = 0; s && i < RM_COUNT; i++)
        if (strlen(recon_method_names[i]) == len && memcmp(recon_method_names[i], s, len) == 0)
            return i;
    return -1;
}

int recon_method_check(const char *entry, const core_avro_catalog_t *cat, char *errstr,
                       size_t errstr_size)
{
    const char *colon = strchr(entry, ':');
    char ds[256];

    if (!colon || colon == entry || (size_t)(colon - entry) >= sizeof(ds) ||
        recon_method_index(colon + 1, strlen(colon + 1)) < 0) {
        core_errstr(errstr, errstr_size,
                    "method: '%s' is not DATASET:METHOD (METHOD counts, ids, digests or full)",
                    entry);
        return -1;
    }
    memcpy(ds, entry, (size_t)(colon - entry));
    ds[colon - entry] = '\0';
    if (strcmp(ds, "*") == 0 && strcmp(colon + 1, "full") == 0) {
        core_errstr(errstr, errstr_size,
                    "method: '%s': full needs a dataset named (its .raw topic is read)", entry);
        return -1;
    }
    if (strcmp(ds, "*") != 0 && cat && !core_avro_catalog_by_dataset(cat, ds)) {
        core_errstr(errstr, errstr_size, "method: '%s': no dataset %s in the catalogue", entry,
                    ds);
        return -1;
    }
    return 0;
}

recon_method recon_method_of(const char *const *entries, size_t n, const char *ds, size_t len)
{
    int any = -1;

    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(entries[i], ':');
        size_t dl;
        if (!colon)
            continue;
        dl = (size_t)(colon - entries[i]);
        int m = recon_method_index(colon + 1, strlen(colon + 1));
        if (m < 0)
            continue;
        if (dl == len && memcmp(entries[i], ds, len) == 0)
            return (recon_method)m;
        if (dl == 1 && entries[i][0] == '*')
            any = m;
    }
    return any >= 0 ? (recon_method)any : RM_DIGESTS;
}
