/* bench_ingest.c — helpers of the svc-ingest benchmark (BENCH_ONLY=ingest
 * bench/run.sh BUILD):
 *
 *   bench_ingest gen -n N --out FILE.csv [--seed S]
 *       a payee CSV of N rows (about 1 in 10 names quoted with a comma,
 *       1 in 50 with an embedded newline, some non-ASCII);
 *   bench_ingest kcatfile --csv FILE.csv --batch-id ID --out FILE.bin
 *                         --key-delim KD --delim D [--proto DIR]
 *       the SAME encoded records svc-ingest publishes for that file and
 *       batch id (svc-ingest's own reader and mapper), as kcat -K KD -D D -l
 *       input, so kcat produces exactly what svc-ingest does. Refuses (exit
 *       1) when a delimiter occurs inside a key or value.
 *
 * Prints figures only; run.sh times the processes. */
#include "bench_common.h"

#include "../svc-ingest/mapper.h"
#include "../svc-ingest/reader.h"

#include "tributary/core_avro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef BENCH_PROTO_DIR
#define BENCH_PROTO_DIR "proto"
#endif

static int gen(uint64_t n, const char *out, uint64_t seed)
{
    static const char *const first[] = { "Anna", "Bernd", "Chloé", "Dmitri", "Eva", "Fatima",
                                         "Günter", "Hana", "Ivan", "Jürgen" };
    static const char *const status[] = { "ACTIVE", "ACTIVE", "ACTIVE", "INACTIVE", "BLOCKED" };
    FILE *f = fopen(out, "w");
    uint64_t st = seed;

    if (!f) {
        perror(out);
        return BENCH_EX_SETUP;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fputs("payee_id,name,account_number,routing_number,iban,country,currency,email,"
          "amount_limit,status,updated_at\n", f);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = bench_rand(&st);
        const char *fn = first[r % 10];
        char name[128];

        if (i % 50 == 7)
            snprintf(name, sizeof(name), "\"%s Müller\nc/o Accounts\"", fn);
        else if (i % 10 == 3)
            snprintf(name, sizeof(name), "\"%s, Ltd. \"\"%llu\"\"\"", fn, (unsigned long long)i);
        else
            snprintf(name, sizeof(name), "%s Payee %llu", fn, (unsigned long long)i);
        fprintf(f, "P%08llu,%s,%010llu,021000021,%s,%s,%s,%s,%llu.%02llu,%s,"
                   "2026-11-%02lluT%02llu:30:00Z\n",
                (unsigned long long)i, name, (unsigned long long)(r % 10000000000ULL),
                i % 3 ? "" : "DE89370400440532013000", i % 3 ? "US" : "DE", i % 3 ? "USD" : "EUR",
                i % 4 ? "" : "ap@example.com", (unsigned long long)((r >> 20) % 1000000),
                (unsigned long long)((r >> 8) % 100), status[(r >> 40) % 5],
                (unsigned long long)(1 + i % 28), (unsigned long long)(i % 24));
    }
    if (fclose(f) != 0) {
        perror(out);
        return BENCH_EX_SETUP;
    }
    printf("  generated %llu payee rows into %s\n", (unsigned long long)n, out);
    return BENCH_EX_OK;
}

static int kcatfile(const char *csv, const char *batch, const char *out, const char *kd_arg,
                    const char *d_arg, const char *proto)
{
    char kd[64], d[64], err[512];
    size_t kdlen = bench_parse_delim(kd_arg, kd, sizeof(kd)), dlen = bench_parse_delim(d_arg, d, sizeof(d));
    core_avro_catalog_t *cat;
    ingest_reader *rd;
    ingest_mapper *map;
    ingest_map_opts mo;
    ingest_row row;
    ingest_record rec;
    ingest_line_error le;
    struct stat sb;
    const char *base = strrchr(csv, '/');
    FILE *f;
    uint64_t n = 0, bytes = 0, rejected = 0;
    int rc = BENCH_EX_OK, k;

    if (!kdlen || !dlen) {
        fprintf(stderr, "bench_ingest: bad delimiter\n");
        return BENCH_EX_SETUP;
    }
    cat = core_avro_catalog_load(proto, err, sizeof(err));
    if (!cat || stat(csv, &sb) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", cat ? csv : err);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    memset(&mo, 0, sizeof(mo));
    mo.schema = core_avro_catalog_by_dataset(cat, "payee");
    mo.fmt = INGEST_FMT_CSV;
    mo.op_column = "op";
    mo.version_column = "version";
    mo.event_time_column = "event_time";
    mo.old_key_column = "old_key";
    mo.kind = -1;
    mo.op = CORE_AVRO_OP_ADD;
    mo.event_time = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    mo.max_record = 10240;
    map = ingest_mapper_new(&mo, err, sizeof(err));
    rd = ingest_reader_open(csv, INGEST_FMT_CSV, ',', 4u << 20, err, sizeof(err));
    f = fopen(out, "wb");
    if (!map || !rd || !f || ingest_reader_next(rd, &row, err, sizeof(err)) != 1 ||
        ingest_mapper_header(map, &row, err, sizeof(err))) {
        fprintf(stderr, "bench_ingest: %s\n", f ? err : out);
        rc = BENCH_EX_SETUP;
        goto out;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    while ((k = ingest_reader_next(rd, &row, err, sizeof(err))) == 1) {
        int m = ingest_mapper_row(map, &row, batch, base ? base + 1 : csv, &rec, &le);
        if (m) {
            rejected++;
            continue;
        }
        if (memmem(rec.key, rec.keylen, kd, kdlen) || memmem(rec.value, rec.len, d, dlen) ||
            memmem(rec.key, rec.keylen, d, dlen)) {
            fprintf(stderr, "BROKEN: a delimiter occurs inside record %llu\n",
                    (unsigned long long)n);
            rc = BENCH_EX_BROKEN;
            goto out;
        }
        fwrite(rec.key, 1, rec.keylen, f);
        fwrite(kd, 1, kdlen, f);
        fwrite(rec.value, 1, rec.len, f);
        fwrite(d, 1, dlen, f);
        n++;
        bytes += rec.keylen + rec.len;
    }
    if (k < 0) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        rc = BENCH_EX_SETUP;
    }
    printf("  kcat input: %llu records, %llu key+value bytes (%llu rejected) -> %s\n",
           (unsigned long long)n, (unsigned long long)bytes, (unsigned long long)rejected, out);
    printf("records %llu\nbytes %llu\n", (unsigned long long)n, (unsigned long long)bytes);
out:
    if (f && fclose(f) != 0)
        rc = BENCH_EX_SETUP;
    ingest_reader_free(rd);
    ingest_mapper_free(map);
    core_avro_catalog_free(cat);
    return rc;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *csv = NULL, *batch = NULL, *kd = NULL, *d = NULL;
    const char *proto = BENCH_PROTO_DIR;
    uint64_t n = 100000, seed = 42;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_ingest gen -n N --out FILE | kcatfile --csv FILE "
                        "--batch-id ID --out FILE --key-delim KD --delim D [--proto DIR]\n");
        return BENCH_EX_SETUP;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n = bench_parse_count(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--csv"))
            csv = argv[i + 1];
        else if (!strcmp(argv[i], "--batch-id"))
            batch = argv[i + 1];
        else if (!strcmp(argv[i], "--key-delim"))
            kd = argv[i + 1];
        else if (!strcmp(argv[i], "--delim"))
            d = argv[i + 1];
        else if (!strcmp(argv[i], "--proto"))
            proto = argv[i + 1];
        else {
            fprintf(stderr, "bench_ingest: unknown option %s\n", argv[i]);
            return BENCH_EX_SETUP;
        }
    }
    if (!strcmp(argv[1], "gen") && out && n)
        return gen(n, out, seed);
    if (!strcmp(argv[1], "kcatfile") && csv && batch && out && kd && d)
        return kcatfile(csv, batch, out, kd, d, proto);
    fprintf(stderr, "bench_ingest: missing arguments\n");
    return BENCH_EX_SETUP;
}
