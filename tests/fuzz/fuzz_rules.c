/* fuzz_rules.c — libFuzzer target for svc-validator's rules files
 * (svc-validator/rules_file.c, rules.c): the load-time check of a rules
 * file, its compilation for every dataset's schema, the binding to the
 * schema, and the evaluation of a record both ways the validator has.
 *
 * Input: a rules file's JSON text; after a NUL byte, optionally, a record
 * as JSON (converted to each dataset's schema with core_avro_from_json()).
 *
 * Invariants (abort on breach):
 *  - a refused rules file (check or compile) names why (errstr not empty);
 *  - a failure names its field and rule and has a message, and no more than
 *    `max` failures are written;
 *  - vrules_eval() on a record's natural JSON and vrules_eval_avro() on the
 *    decoded record give the same failures, in the same order (rules.h);
 *  - every external check gives a URL or a skip for the record;
 *  - nothing crashes, leaks or reads out of bounds (a pattern that regcomp
 *    accepts included).
 *
 * Build and run: make build/fuzz/fuzz_rules && build/fuzz/fuzz_rules tests/fuzz/corpus/fuzz_rules */
#include "fuzz_util.h"

#include "../../svc-validator/rules.h"

#include "tributary/core_json.h"

#define NOW_MS 1767225600000LL /* 2026-01-01 */
#define MAXF 8

static void eval_both(const vrules_t *r, const vrules_bound_t *b, const core_avro_schema_t *s,
                      const cJSON *recj)
{
    vr_failure f1[MAXF], f2[MAXF];
    char err[512];
    avro_value_t v;
    size_t n1, n2 = 0;
    cJSON *nat;

    if (core_avro_from_json(s, recj, &v, err, sizeof(err)) != CORE_OK)
        return;
    nat = core_avro_to_json(s, &v, err, sizeof(err));
    if (nat) {
        n1 = vrules_eval(r, nat, NOW_MS, f1, MAXF);
        FUZZ_CHECK(vrules_eval_avro(b, &v, NOW_MS, f2, MAXF, &n2, err, sizeof(err)) == 0,
                   "eval_avro refused what to_json took: %s", err);
        FUZZ_CHECK(n1 == n2, "%zu failures on JSON, %zu on Avro", n1, n2);
        for (size_t i = 0; i < n1 && i < MAXF; i++) {
            FUZZ_CHECK(f1[i].field && f1[i].rule && *f1[i].message, "failure %zu incomplete", i);
            FUZZ_CHECK(!strcmp(f1[i].field, f2[i].field) && !strcmp(f1[i].rule, f2[i].rule),
                       "failure %zu: %s/%s on JSON, %s/%s on Avro", i, f1[i].field, f1[i].rule,
                       f2[i].field, f2[i].rule);
        }
        for (size_t i = 0; i < vrules_nexternal(r); i++) {
            bool skip = false;
            char *url = vrules_external_url(r, i, nat, &skip);
            FUZZ_CHECK(url || skip, "external %zu: no URL and no skip", i);
            free(url);
        }
        cJSON_Delete(nat);
    }
    avro_value_decref(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    core_avro_catalog_t *cat = fuzz_catalog();
    const char *text = (const char *)data, *nul = memchr(data, 0, size);
    size_t rlen = nul ? (size_t)(nul - text) : size;
    core_json_error je;
    cJSON *rules, *recj = NULL;
    char err[512];

    if (size > 65536)
        return 0;
    rules = core_json_parse(text, rlen, &je);
    if (!rules)
        return 0;
    if (nul && size > rlen + 1)
        recj = core_json_parse(text + rlen + 1, size - rlen - 1, &je);
    for (size_t i = 0; i < core_avro_catalog_count(cat); i++) {
        const core_avro_schema_t *s = core_avro_catalog_at(cat, i);
        vrules_t *r;
        vrules_bound_t *b;

        if (!core_avro_schema_dataset(s))
            continue;
        err[0] = '\0';
        if (vrules_file_check(s, "fuzz.rules.json", rules, err, sizeof(err)) != 0)
            FUZZ_CHECK(*err, "rules file refused without a reason");
        err[0] = '\0';
        r = vrules_new(rules, s, 60000, err, sizeof(err));
        if (!r) {
            FUZZ_CHECK(*err, "rules refused without a reason");
            continue;
        }
        err[0] = '\0';
        b = vrules_bind(r, s, err, sizeof(err));
        if (!b)
            FUZZ_CHECK(*err, "binding refused without a reason");
        else if (recj)
            eval_both(r, b, s, recj);
        if (recj) {
            vr_failure f[MAXF];
            size_t n = vrules_eval(r, recj, NOW_MS, f, MAXF);
            for (size_t k = 0; k < n && k < MAXF; k++)
                FUZZ_CHECK(f[k].field && f[k].rule && *f[k].message, "failure %zu incomplete", k);
        }
        vrules_unbind(b);
        vrules_free(r);
    }
    cJSON_Delete(recj);
    cJSON_Delete(rules);
    return 0;
}
