/* reduce.c — a batch reduced to one write per key (the highest version
 * wins), the fates of those writes given back to the records (a key whose
 * winner the database refused is written again with its next version),
 * and the bisection that isolates the rows a database refuses. */
#include "persister.h"

#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sort ops by key, then version, then position (the record's order). */
static int op_cmp(const void *a, const void *b)
{
    const pers_op *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    /* equal versions: records later in the partition win; primary (the
     * event's own key) beats the delete of a moved key */
    if (x->rec->offset != y->rec->offset)
        return x->rec->offset < y->rec->offset ? -1 : 1;
    return (int)x->primary - (int)y->primary;
}

pers_op *pers_reduce(pers_record **recs, size_t n, size_t *nops)
{
    size_t cap = 0;
    *nops = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i]->fate == PERS_PENDING)
            cap += recs[i]->old_key ? 2 : 1;
    if (cap == 0)
        return NULL;
    pers_op *all = calloc(cap, sizeof(*all));
    if (!all)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        pers_record *r = recs[i];
        if (r->fate != PERS_PENDING)
            continue;
        all[m++] = (pers_op){ .kind = r->op == CORE_AVRO_OP_DELETE ? PERS_DELETE : PERS_UPSERT,
                              .key = r->key, .version = r->version, .rec = r, .primary = true };
        if (r->old_key)
            all[m++] = (pers_op){ .kind = PERS_DELETE, .key = r->old_key,
                                  .version = r->version, .rec = r, .primary = false };
    }
    qsort(all, m, sizeof(*all), op_cmp);
    /* keep the last op of each key; the others' records are stale (unless
     * the record also has a winning op) */
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
        bool last = i + 1 == m || strcmp(all[i].key, all[i + 1].key) != 0;
        if (last)
            all[w++] = all[i];
        else if (all[i].primary)
            all[i].rec->fate = PERS_STALE;
    }
    /* a record whose primary op lost is stale even when its old-key delete
     * won: the delete still runs (the key moved away at that version) */
    *nops = w;
    return all;
}

/* The record takes its op's refusal: dead, with the database's error. */
static void rec_refused(pers_op *op)
{
    op->rec->fate = PERS_DEAD;
    snprintf(op->rec->error_class, sizeof(op->rec->error_class), "invalid");
    free(op->rec->error);
    op->rec->error = op->error;
    op->error = NULL;
}

/* Give the fates of one sink write to the records. @returns how many of
 * the winning primary ops the database refused (their keys in dead[]). */
static size_t apply_fates(pers_op *ops, size_t nops, const char **dead)
{
    size_t ndead = 0;
    for (size_t i = 0; i < nops; i++) {
        pers_op *op = &ops[i];
        if (op->rec->fate == PERS_DEAD)
            continue;
        if (!op->primary) {
            /* the old key's delete of a moved record: only a refusal counts */
            if (op->fate == PERS_DEAD)
                rec_refused(op);
            continue;
        }
        if (op->fate == PERS_DEAD) {
            rec_refused(op);
            dead[ndead++] = op->key;
        } else {
            op->rec->fate = op->fate;
        }
    }
    return ndead;
}

/* The records of a key whose winner the database refused were only stale
 * because of it: they go again (the next version down wins), so the final
 * state does not depend on which events shared a batch. @returns how many. */
static size_t repend_under_dead(pers_record **sub, size_t m, const char **dead, size_t ndead)
{
    size_t again = 0;
    for (size_t i = 0; i < m; i++) {
        if (sub[i]->fate != PERS_STALE || !sub[i]->key)
            continue;
        for (size_t d = 0; d < ndead; d++) {
            if (strcmp(sub[i]->key, dead[d]) == 0) {
                sub[i]->fate = PERS_PENDING;
                again++;
                break;
            }
        }
    }
    return again;
}

pers_res_t pers_write_all(pers_sink *db, pers_dataset *ds, size_t nds, pers_record **recs,
                          size_t n, char *errstr, size_t errstr_size)
{
    pers_record **sub = malloc((n ? n : 1) * sizeof(*sub));
    const char **dead = malloc((n ? n : 1) * sizeof(*dead)); /* one per primary op at most */
    if (!sub || !dead) {
        free(sub);
        free(dead);
        core_errstr(errstr, errstr_size, "out of memory");
        return PERS_RETRY;
    }
    pers_res_t res = PERS_OK;
    for (size_t d = 0; d < nds && res == PERS_OK; d++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            pers_record *r = recs[i];
            if (r->ds != &ds[d])
                continue;
            if (r->fate != PERS_DEAD || r->id) { /* decoded records start over */
                r->fate = PERS_PENDING;
                free(r->error);
                r->error = NULL;
            }
            sub[m++] = r;
        }
        for (;;) {
            size_t nops = 0, ndead = 0;
            pers_op *ops = pers_reduce(sub, m, &nops);
            if (nops && !ops) {
                res = PERS_RETRY;
                core_errstr(errstr, errstr_size, "out of memory");
                break;
            }
            if (nops)
                res = db->write(db, &ds[d], ops, nops, errstr, errstr_size);
            if (res == PERS_OK) {
                ndead = apply_fates(ops, nops, dead);
                for (size_t i = 0; i < m; i++)
                    if (sub[i]->fate == PERS_PENDING)
                        sub[i]->fate = PERS_WRITTEN; /* its winning op was the moved-key delete */
            }
            for (size_t i = 0; i < nops; i++)
                free(ops[i].error);
            free(ops);
            if (res != PERS_OK || ndead == 0 || repend_under_dead(sub, m, dead, ndead) == 0)
                break;
        }
    }
    free(sub);
    free(dead);
    return res;
}


/* One level of the bisection: ops[0..n) as one range, split on refusal. */
static pers_res_t bisect(pers_range_fn write_range, void *ctx, pers_dataset *ds, pers_op *ops,
                         size_t n, int depth, char *errstr, size_t errstr_size)
{
    char err[512] = "";
    if (n == 0)
        return PERS_OK;
    pers_res_t r = write_range(ctx, ds, ops, n, err, sizeof(err));
    if (r == PERS_OK)
        return PERS_OK;
    if (r == PERS_RETRY) {
        core_errstr(errstr, errstr_size, "%s", err);
        return PERS_RETRY;
    }
    if (n == 1) {
        ops[0].fate = PERS_DEAD;
        free(ops[0].error);
        ops[0].error = strdup(err);
        core_log_warn("row refused by the database", CLF_S("dataset", ds->name),
                      CLF_S("error", err), CLF_I("version", ops[0].version));
        return PERS_OK;
    }
    if (depth == 0)
        core_log_warn("batch refused by the database: isolating the row",
                      CLF_S("dataset", ds->name), CLF_S("error", err), CLF_I("rows", n));
    if (core_lifecycle_give_up(errstr, errstr_size))
        return PERS_RETRY;
    size_t half = n / 2;
    r = bisect(write_range, ctx, ds, ops, half, depth + 1, errstr, errstr_size);
    if (r != PERS_OK)
        return r;
    return bisect(write_range, ctx, ds, ops + half, n - half, depth + 1, errstr, errstr_size);
}

pers_res_t pers_bisect(pers_range_fn write_range, void *ctx, pers_dataset *ds, pers_op *ops,
                       size_t n, char *errstr, size_t errstr_size)
{
    return bisect(write_range, ctx, ds, ops, n, 0, errstr, errstr_size);
}
