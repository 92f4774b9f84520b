/* bench_codec.c — records/s of the libcore codec on payee records, each
 * beside the physical limit measured in the same run:
 *
 *   from_json    core_avro_from_json()   natural JSON (cJSON tree) -> value
 *   encode       core_avro_encode()      value -> Confluent wire bytes (malloc'ed)
 *   encode_into  core_avro_encode_into() value -> caller's buffer
 *   decode       core_avro_decode()      wire bytes -> bound-checked value
 *   to_json      core_avro_to_json()     value -> natural JSON (cJSON tree)
 *   digest       core_digest_record()    SHA-256 of the Avro body
 *   cjson_parse  cJSON_ParseWithLength() reference only: not libcore
 *
 * Limits: memcpy of the same bytes, record by record (the JSON text for the
 * JSON stages, the wire bytes for the others), and OpenSSL SHA-256 over the
 * same bodies (per record with one reused context, and in bulk over the
 * same total bytes). The ratio is stage time / limit time: how many times
 * the stage costs more than touching its bytes once.
 *
 * A pool of P distinct records (default 4096) is built first and cycled
 * through N operations per stage, so the working set is realistic without
 * holding N trees in memory. Each stage runs P warm-up operations first.
 *
 * Before timing, every pool record is checked: decode(encode(x)) re-encodes
 * to the same bytes, to_json -> from_json re-encodes to the same bytes, and
 * core_digest_record() equals OpenSSL's SHA-256 of the body. A failure (or
 * any error during a timed stage) exits 1: broken, not slow.
 *
 * Each stage is timed --repeat times (default 3) over N operations; the
 * fastest repetition is reported (the one least disturbed by other work on
 * the machine). Its CPU time is from CLOCK_PROCESS_CPUTIME_ID.
 *
 * usage: bench_codec [-n N] [--repeat R] [--pool P] [--seed S] [--proto DIR]
 *                    [--results FILE]
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "tributary/core_avro.h"
#include "tributary/core_digest.h"
#include "tributary/core_log.h"

#ifndef BENCH_PROTO_DIR
#define BENCH_PROTO_DIR "proto"
#endif

#define BARRIER(p) __asm__ volatile("" : : "r"(p) : "memory")

typedef struct pool {
    size_t n;
    const core_avro_schema_t *schema;
    const core_avro_catalog_t *cat;
    char **json_text;       /* natural JSON text as generated */
    size_t *json_len;
    char *json_arena;       /* the same texts, contiguous (memcpy source) */
    size_t *json_off;
    size_t json_total;
    cJSON **tree;           /* parsed text: from_json input */
    avro_value_t *value;    /* from_json output: encode / to_json input */
    uint8_t *wire_arena;    /* encoded records, contiguous */
    size_t *wire_off;
    size_t *wire_len;
    size_t wire_total;
    uint8_t *body_arena;    /* the Avro bodies (no header), contiguous */
    size_t body_total;
    size_t *tojson_len;     /* length of the printed to_json output */
    char **tojson_text;     /* cJSON_PrintUnformatted(to_json(value)) */
    char *tojson_arena;     /* the same, contiguous (memcpy source) */
    size_t *tojson_off;
    size_t tojson_total;
} pool;

static uint64_t errors;     /* failures during timed stages */
static char first_error[512];

static void note_error(const char *stage, size_t r, core_err_t err, const char *errstr)
{
    if (errors++ == 0)
        snprintf(first_error, sizeof(first_error), "%s: record %zu: %s: %s", stage, r,
                 core_err2str(err), errstr);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p) {
        fprintf(stderr, "bench_codec: out of memory (%zu x %zu bytes)\n", n, size);
        exit(BENCH_EX_SETUP);
    }
    return p;
}

/* ---- OpenSSL reference SHA-256 ----------------------------------------- */

static EVP_MD_CTX *sha_ctx;
static EVP_MD *sha_md;

static void sha_raw(const void *p, size_t len, uint8_t out[32])
{
    unsigned int n = 0;

    if (EVP_DigestInit_ex(sha_ctx, sha_md, NULL) != 1 || EVP_DigestUpdate(sha_ctx, p, len) != 1 ||
        EVP_DigestFinal_ex(sha_ctx, out, &n) != 1 || n != 32) {
        fprintf(stderr, "bench_codec: OpenSSL SHA-256 failed\n");
        exit(BENCH_EX_SETUP);
    }
}

/* ---- pool construction and checks -------------------------------------- */

static int build_pool(pool *pl, size_t n, uint64_t seed)
{
    char errstr[512], text[BENCH_PAYEE_JSON_MAX];
    size_t json_cap = 0, wire_cap = 0;
    uint8_t **wire = xcalloc(n, sizeof(*wire));
    int rc = 0;

    pl->n = n;
    pl->json_text = xcalloc(n, sizeof(*pl->json_text));
    pl->json_len = xcalloc(n, sizeof(*pl->json_len));
    pl->json_off = xcalloc(n, sizeof(*pl->json_off));
    pl->tree = xcalloc(n, sizeof(*pl->tree));
    pl->value = xcalloc(n, sizeof(*pl->value));
    pl->wire_off = xcalloc(n, sizeof(*pl->wire_off));
    pl->wire_len = xcalloc(n, sizeof(*pl->wire_len));
    pl->tojson_len = xcalloc(n, sizeof(*pl->tojson_len));
    pl->tojson_text = xcalloc(n, sizeof(*pl->tojson_text));
    pl->tojson_off = xcalloc(n, sizeof(*pl->tojson_off));

    for (size_t r = 0; r < n; r++) {
        size_t len = bench_payee_json(seed, r, text, sizeof(text));
        core_err_t err;
        void *buf = NULL;

        if (!len) {
            fprintf(stderr, "bench_codec: record %zu: generator overflow\n", r);
            return -1;
        }
        pl->json_text[r] = strdup(text);
        pl->json_len[r] = len;
        pl->json_off[r] = json_cap;
        json_cap += len;
        if (!(pl->tree[r] = cJSON_ParseWithLength(text, len))) {
            fprintf(stderr, "bench_codec: record %zu: generated JSON does not parse\n", r);
            return -1;
        }
        err = core_avro_from_json(pl->schema, pl->tree[r], &pl->value[r], errstr, sizeof(errstr));
        if (err != CORE_OK) {
            fprintf(stderr, "bench_codec: record %zu: from_json: %s\n  %s\n", r, errstr, text);
            return -1;
        }
        err = core_avro_encode(pl->schema, &pl->value[r], &buf, &pl->wire_len[r], errstr,
                               sizeof(errstr));
        if (err != CORE_OK) {
            fprintf(stderr, "bench_codec: record %zu: encode: %s\n", r, errstr);
            return -1;
        }
        wire[r] = buf;
        pl->wire_off[r] = wire_cap;
        wire_cap += pl->wire_len[r];
    }
    pl->json_total = json_cap;
    pl->wire_total = wire_cap;
    pl->json_arena = xcalloc(json_cap, 1);
    pl->wire_arena = xcalloc(wire_cap, 1);
    pl->body_arena = xcalloc(wire_cap, 1);
    for (size_t r = 0; r < n; r++) {
        memcpy(pl->json_arena + pl->json_off[r], pl->json_text[r], pl->json_len[r]);
        memcpy(pl->wire_arena + pl->wire_off[r], wire[r], pl->wire_len[r]);
        memcpy(pl->body_arena + pl->body_total, wire[r] + CORE_AVRO_WIRE_HEADER,
               pl->wire_len[r] - CORE_AVRO_WIRE_HEADER);
        pl->body_total += pl->wire_len[r] - CORE_AVRO_WIRE_HEADER;
        free(wire[r]);
    }
    free(wire);
    return rc;
}

/* Re-encode v and compare with the pool's wire bytes of record r. */
static bool same_wire(const pool *pl, size_t r, avro_value_t *v, const char *what)
{
    char errstr[512];
    void *buf = NULL;
    size_t len = 0;
    bool same;

    if (core_avro_encode(pl->schema, v, &buf, &len, errstr, sizeof(errstr)) != CORE_OK) {
        fprintf(stderr, "BROKEN: record %zu: %s: re-encode failed: %s\n", r, what, errstr);
        return false;
    }
    same = len == pl->wire_len[r] && memcmp(buf, pl->wire_arena + pl->wire_off[r], len) == 0;
    if (!same)
        fprintf(stderr, "BROKEN: record %zu: %s does not give back the same bytes (%zu vs %zu)\n",
                r, what, len, pl->wire_len[r]);
    free(buf);
    return same;
}

static bool check_pool(pool *pl)
{
    char errstr[512];

    for (size_t r = 0; r < pl->n; r++) {
        const uint8_t *w = pl->wire_arena + pl->wire_off[r];
        const core_avro_schema_t *s = NULL;
        avro_value_t v, v2;
        core_digest d;
        uint8_t ref[32];
        cJSON *j;
        char *printed;
        core_err_t err;

        err = core_avro_decode(pl->cat, w, pl->wire_len[r], &s, &v, errstr, sizeof(errstr));
        if (err != CORE_OK || s != pl->schema) {
            fprintf(stderr, "BROKEN: record %zu: decode: %s\n", r,
                    err != CORE_OK ? errstr : "wrong schema");
            return false;
        }
        if (!same_wire(pl, r, &v, "decode + encode")) {
            avro_value_decref(&v);
            return false;
        }
        avro_value_decref(&v);

        if (!(j = core_avro_to_json(pl->schema, &pl->value[r], errstr, sizeof(errstr)))) {
            fprintf(stderr, "BROKEN: record %zu: to_json: %s\n", r, errstr);
            return false;
        }
        if (!(printed = cJSON_PrintUnformatted(j))) {
            fprintf(stderr, "BROKEN: record %zu: to_json output does not print\n", r);
            cJSON_Delete(j);
            return false;
        }
        pl->tojson_text[r] = printed;
        pl->tojson_len[r] = strlen(printed);
        pl->tojson_off[r] = pl->tojson_total;
        pl->tojson_total += pl->tojson_len[r];
        err = core_avro_from_json(pl->schema, j, &v2, errstr, sizeof(errstr));
        cJSON_Delete(j);
        if (err != CORE_OK) {
            fprintf(stderr, "BROKEN: record %zu: from_json(to_json(x)): %s\n", r, errstr);
            return false;
        }
        if (!same_wire(pl, r, &v2, "to_json + from_json + encode")) {
            avro_value_decref(&v2);
            return false;
        }
        avro_value_decref(&v2);

        core_digest_record(w, pl->wire_len[r], &d);
        sha_raw(w + CORE_AVRO_WIRE_HEADER, pl->wire_len[r] - CORE_AVRO_WIRE_HEADER, ref);
        if (memcmp(d.b, ref, 32) != 0) {
            fprintf(stderr, "BROKEN: record %zu: core_digest_record differs from SHA-256 of the "
                            "body\n", r);
            return false;
        }
    }
    pl->tojson_arena = xcalloc(pl->tojson_total, 1);
    for (size_t r = 0; r < pl->n; r++)
        memcpy(pl->tojson_arena + pl->tojson_off[r], pl->tojson_text[r], pl->tojson_len[r]);
    return true;
}

/* ---- stages ------------------------------------------------------------ */

enum stage_id {
    ST_CJSON_PARSE,
    ST_FROM_JSON,
    ST_ENCODE,
    ST_ENCODE_INTO,
    ST_DECODE,
    ST_TO_JSON,
    ST_DIGEST,
    LIM_MEMCPY_JSON,
    LIM_MEMCPY_TOJSON,
    LIM_MEMCPY_WIRE,
    LIM_SHA_PER_RECORD,
    ST_COUNT
};

static const char *const stage_names[ST_COUNT] = {
    "cjson_parse", "from_json", "encode", "encode_into", "decode", "to_json", "digest",
    "memcpy_json", "memcpy_tojson", "memcpy_wire", "sha256_record",
};

static uint8_t scratch[1 << 16];
static uint8_t *copy_dst;
static volatile uint64_t sink;

/* One operation of stage st on pool record r; returns the bytes it covers. */
static size_t run_one(pool *pl, enum stage_id st, size_t r)
{
    char errstr[256];
    core_err_t err = CORE_OK;
    avro_value_t v;

    switch (st) {
    case ST_CJSON_PARSE: {
        cJSON *j = cJSON_ParseWithLength(pl->json_text[r], pl->json_len[r]);

        if (!j)
            note_error("cjson_parse", r, CORE_ERR_INVALID, "parse failed");
        cJSON_Delete(j);
        return pl->json_len[r];
    }
    case ST_FROM_JSON:
        err = core_avro_from_json(pl->schema, pl->tree[r], &v, errstr, sizeof(errstr));
        if (err == CORE_OK)
            avro_value_decref(&v);
        else
            note_error("from_json", r, err, errstr);
        return pl->json_len[r];
    case ST_ENCODE: {
        void *buf = NULL;
        size_t len = 0;

        err = core_avro_encode(pl->schema, &pl->value[r], &buf, &len, errstr, sizeof(errstr));
        if (err != CORE_OK)
            note_error("encode", r, err, errstr);
        BARRIER(buf);
        free(buf);
        return pl->wire_len[r];
    }
    case ST_ENCODE_INTO: {
        size_t len = 0;

        err = core_avro_encode_into(pl->schema, &pl->value[r], scratch, sizeof(scratch), &len,
                                    errstr, sizeof(errstr));
        if (err != CORE_OK)
            note_error("encode_into", r, err, errstr);
        BARRIER(scratch);
        return pl->wire_len[r];
    }
    case ST_DECODE:
        err = core_avro_decode(pl->cat, pl->wire_arena + pl->wire_off[r], pl->wire_len[r], NULL,
                               &v, errstr, sizeof(errstr));
        if (err == CORE_OK)
            avro_value_decref(&v);
        else
            note_error("decode", r, err, errstr);
        return pl->wire_len[r];
    case ST_TO_JSON: {
        cJSON *j = core_avro_to_json(pl->schema, &pl->value[r], errstr, sizeof(errstr));

        if (!j)
            note_error("to_json", r, CORE_ERR_INVALID, errstr);
        cJSON_Delete(j);
        return pl->tojson_len[r];
    }
    case ST_DIGEST: {
        core_digest d;

        core_digest_record(pl->wire_arena + pl->wire_off[r], pl->wire_len[r], &d);
        sink += d.b[0];
        return pl->wire_len[r];
    }
    case LIM_MEMCPY_JSON:
        memcpy(copy_dst + pl->json_off[r], pl->json_arena + pl->json_off[r], pl->json_len[r]);
        BARRIER(copy_dst);
        return pl->json_len[r];
    case LIM_MEMCPY_TOJSON:
        memcpy(copy_dst + pl->tojson_off[r], pl->tojson_arena + pl->tojson_off[r],
               pl->tojson_len[r]);
        BARRIER(copy_dst);
        return pl->tojson_len[r];
    case LIM_MEMCPY_WIRE:
        memcpy(copy_dst + pl->wire_off[r], pl->wire_arena + pl->wire_off[r], pl->wire_len[r]);
        BARRIER(copy_dst);
        return pl->wire_len[r];
    case LIM_SHA_PER_RECORD: {
        uint8_t out[32];

        sha_raw(pl->wire_arena + pl->wire_off[r] + CORE_AVRO_WIRE_HEADER,
                pl->wire_len[r] - CORE_AVRO_WIRE_HEADER, out);
        sink += out[0];
        return pl->wire_len[r];
    }
    default:
        return 0;
    }
}

/* Warm up (P operations), then time N operations, repeat times: the
 * fastest repetition is kept (the least disturbed by other work). */
static bench_result run_stage(pool *pl, enum stage_id st, uint64_t n, unsigned repeat)
{
    bench_result best = { 0 };

    for (size_t w = 0; w < pl->n; w++)
        (void)run_one(pl, st, w);
    for (unsigned k = 0; k < repeat; k++) {
        bench_result res = { .section = "codec", .name = stage_names[st], .n = n, .limit = "" };
        bench_clock t0, t1;
        uint64_t bytes = 0;
        size_t r = 0;

        bench_clock_now(&t0);
        for (uint64_t i = 0; i < n; i++) {
            bytes += run_one(pl, st, r);
            if (++r == pl->n)
                r = 0;
        }
        bench_clock_now(&t1);
        bench_result_times(&res, &t0, &t1);
        res.bytes = bytes;
        if (k == 0 || res.wall_s < best.wall_s)
            best = res;
    }
    return best;
}

/* Bulk SHA-256 over total bytes (the body arena, cycled): seconds. */
static double sha_bulk1(const pool *pl, uint64_t total, double *cpu_s)
{
    bench_clock t0, t1;
    uint8_t out[32];
    unsigned int olen = 0;
    uint64_t left = total;

    bench_clock_now(&t0);
    if (EVP_DigestInit_ex(sha_ctx, sha_md, NULL) != 1)
        exit(BENCH_EX_SETUP);
    while (left > 0) {
        size_t chunk = left < pl->body_total ? (size_t)left : pl->body_total;

        EVP_DigestUpdate(sha_ctx, pl->body_arena, chunk);
        left -= chunk;
    }
    EVP_DigestFinal_ex(sha_ctx, out, &olen);
    bench_clock_now(&t1);
    sink += out[0];
    *cpu_s = t1.cpu - t0.cpu;
    return t1.wall - t0.wall;
}

static double sha_bulk(const pool *pl, uint64_t total, unsigned repeat, double *cpu_s)
{
    double best = 0;

    for (unsigned k = 0; k < repeat; k++) {
        double cpu, wall = sha_bulk1(pl, total, &cpu);

        if (k == 0 || wall < best) {
            best = wall;
            *cpu_s = cpu;
        }
    }
    return best;
}

static void print_stage(const bench_result *r, const char *bytes_what, const bench_result *lim,
                        const char *lim_what)
{
    char a[32], b[32], c[32], d[32];
    double rate = r->wall_s > 0 ? (double)r->n / r->wall_s : 0;

    printf("  %-12s %8s rec/s  %9s/rec  %6.3f CPU-s/Mrec  %4.0f B/rec %s\n", r->name,
           bench_fmt_rate(rate, a, sizeof(a)), bench_fmt_dur(r->wall_s / (double)r->n, b, sizeof(b)),
           r->cpu_s * 1e6 / (double)r->n, (double)r->bytes / (double)r->n, bytes_what);
    if (lim)
        printf("  %-12s   %s of the same bytes: %s, %s/rec -> stage/limit %.1fx\n", "",
               lim_what, bench_fmt_bw((double)lim->bytes / lim->wall_s, c, sizeof(c)),
               bench_fmt_dur(lim->wall_s / (double)lim->n, d, sizeof(d)), r->wall_s / lim->wall_s);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_codec [-n N] [--repeat R] [--pool P] [--seed S] "
                    "[--proto DIR] [--results FILE]\n");
    exit(BENCH_EX_SETUP);
}

int main(int argc, char **argv)
{
    uint64_t n = 200000, seed = 1;
    size_t pool_n = 4096;
    unsigned repeat = 3;
    const char *proto = getenv("TB_PROTO_DIR") ? getenv("TB_PROTO_DIR") : BENCH_PROTO_DIR;
    const char *results = NULL;
    char errstr[512];
    core_avro_catalog_t *cat;
    pool pl = { 0 };
    bench_result res[ST_COUNT];
    double bulk_wall, bulk_cpu = 0;
    char a[32], b[32], c[32], d[32];

    if (getenv("BENCH_N_CODEC"))
        n = bench_parse_count(getenv("BENCH_N_CODEC"));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(arg, "-n") && val) {
            n = bench_parse_count(val);
            i++;
        } else if (!strcmp(arg, "--pool") && val) {
            pool_n = (size_t)bench_parse_count(val);
            i++;
        } else if (!strcmp(arg, "--repeat") && val) {
            repeat = (unsigned)bench_parse_count(val);
            i++;
        } else if (!strcmp(arg, "--seed") && val) {
            seed = bench_parse_count(val);
            i++;
        } else if (!strcmp(arg, "--proto") && val) {
            proto = val;
            i++;
        } else if (!strcmp(arg, "--results") && val) {
            results = val;
            i++;
        } else {
            usage();
        }
    }
    if (n == 0 || pool_n == 0 || repeat == 0)
        usage();
    if (pool_n > n)
        pool_n = (size_t)n;

    core_log_init("bench-codec", CORE_LOG_WARN);
    if (!(cat = core_avro_catalog_load(proto, errstr, sizeof(errstr)))) {
        fprintf(stderr, "bench_codec: %s\n", errstr);
        return BENCH_EX_SETUP;
    }
    pl.cat = cat;
    if (!(pl.schema = core_avro_catalog_by_dataset(cat, "payee"))) {
        fprintf(stderr, "bench_codec: no dataset payee in %s/catalog.json\n", proto);
        return BENCH_EX_SETUP;
    }
    sha_ctx = EVP_MD_CTX_new();
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha_ctx || !sha_md) {
        fprintf(stderr, "bench_codec: OpenSSL SHA-256 unavailable\n");
        return BENCH_EX_SETUP;
    }

    if (build_pool(&pl, pool_n, seed) != 0)
        return BENCH_EX_BROKEN;
    if (!check_pool(&pl))
        return BENCH_EX_BROKEN;
    {
        size_t cap = pl.json_total > pl.wire_total ? pl.json_total : pl.wire_total;

        copy_dst = xcalloc(cap > pl.tojson_total ? cap : pl.tojson_total, 1);
    }

    printf("codec: %" PRIu64 " operations per stage (best of %u) over %zu distinct payee "
           "records (wire %.0f B/rec, JSON %.0f B/rec), schema id %u, 1 thread\n",
           n, repeat, pl.n, (double)pl.wire_total / (double)pl.n, (double)pl.json_total / (double)pl.n,
           core_avro_schema_id(pl.schema));

    for (int st = 0; st < ST_COUNT; st++)
        res[st] = run_stage(&pl, (enum stage_id)st, n, repeat);
    {
        uint64_t body_bytes = res[ST_DIGEST].bytes - n * CORE_AVRO_WIRE_HEADER;

        bulk_wall = sha_bulk(&pl, body_bytes, repeat, &bulk_cpu);
        printf("  limits: memcpy %s (wire, per record), %s (JSON); SHA-256 %s bulk over the "
               "same %.1f MB, %s/rec per record\n",
               bench_fmt_bw((double)res[LIM_MEMCPY_WIRE].bytes / res[LIM_MEMCPY_WIRE].wall_s, a,
                            sizeof(a)),
               bench_fmt_bw((double)res[LIM_MEMCPY_JSON].bytes / res[LIM_MEMCPY_JSON].wall_s, b,
                            sizeof(b)),
               bench_fmt_bw((double)body_bytes / bulk_wall, c, sizeof(c)),
               (double)body_bytes / 1e6,
               bench_fmt_dur(res[LIM_SHA_PER_RECORD].wall_s / (double)n, d, sizeof(d)));

        print_stage(&res[ST_CJSON_PARSE], "JSON in (reference: cJSON, not libcore)",
                    &res[LIM_MEMCPY_JSON], "memcpy");
        res[ST_CJSON_PARSE].limit = "memcpy_json";
        res[ST_CJSON_PARSE].limit_wall_s = res[LIM_MEMCPY_JSON].wall_s;
        print_stage(&res[ST_FROM_JSON], "JSON in", &res[LIM_MEMCPY_JSON], "memcpy");
        res[ST_FROM_JSON].limit = "memcpy_json";
        res[ST_FROM_JSON].limit_wall_s = res[LIM_MEMCPY_JSON].wall_s;
        for (int st = ST_ENCODE; st <= ST_DECODE; st++) {
            print_stage(&res[st], st == ST_DECODE ? "wire in" : "wire out",
                        &res[LIM_MEMCPY_WIRE], "memcpy");
            res[st].limit = "memcpy_wire";
            res[st].limit_wall_s = res[LIM_MEMCPY_WIRE].wall_s;
        }
        print_stage(&res[ST_TO_JSON], "JSON out (printed size)", &res[LIM_MEMCPY_TOJSON],
                    "memcpy");
        res[ST_TO_JSON].limit = "memcpy_tojson";
        res[ST_TO_JSON].limit_wall_s = res[LIM_MEMCPY_TOJSON].wall_s;
        print_stage(&res[ST_DIGEST], "wire in", &res[LIM_SHA_PER_RECORD],
                    "OpenSSL SHA-256 per record");
        printf("  %-12s   OpenSSL SHA-256 in bulk over the same body bytes: %s -> stage/limit "
               "%.1fx; memcpy -> %.1fx\n", "",
               bench_fmt_bw((double)body_bytes / bulk_wall, a, sizeof(a)),
               res[ST_DIGEST].wall_s / bulk_wall,
               res[ST_DIGEST].wall_s / res[LIM_MEMCPY_WIRE].wall_s);
        res[ST_DIGEST].limit = "sha256_record";
        res[ST_DIGEST].limit_wall_s = res[LIM_SHA_PER_RECORD].wall_s;

        for (int st = 0; st < ST_COUNT; st++) {
            if (st >= LIM_MEMCPY_JSON)
                res[st].section = "codec-limit";
            if (bench_results_append(results, &res[st]) != 0) {
                perror(results);
                return BENCH_EX_SETUP;
            }
        }
        {
            bench_result bulk = { .section = "codec-limit", .name = "sha256_bulk", .n = n,
                                  .bytes = body_bytes, .wall_s = bulk_wall, .cpu_s = bulk_cpu,
                                  .limit = "" };

            if (bench_results_append(results, &bulk) != 0) {
                perror(results);
                return BENCH_EX_SETUP;
            }
        }
    }

    if (errors) {
        fprintf(stderr, "BROKEN: %" PRIu64 " operations failed; first: %s\n", errors, first_error);
        return BENCH_EX_BROKEN;
    }

    for (size_t r = 0; r < pl.n; r++) {
        free(pl.json_text[r]);
        free(pl.tojson_text[r]);
        cJSON_Delete(pl.tree[r]);
        avro_value_decref(&pl.value[r]);
    }
    free(pl.json_text);
    free(pl.json_len);
    free(pl.json_off);
    free(pl.json_arena);
    free(pl.tree);
    free(pl.value);
    free(pl.wire_arena);
    free(pl.wire_off);
    free(pl.wire_len);
    free(pl.body_arena);
    free(pl.tojson_len);
    free(pl.tojson_text);
    free(pl.tojson_arena);
    free(pl.tojson_off);
    free(copy_dst);
    EVP_MD_free(sha_md);
    EVP_MD_CTX_free(sha_ctx);
    core_avro_catalog_free(cat);
    return BENCH_EX_OK;
}
