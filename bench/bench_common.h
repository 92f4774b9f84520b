/* bench_common.h — what the benchmarks share: a deterministic generator of
 * payee records (natural JSON, as svc-ingest would build them), clocks
 * (wall and process CPU), human-readable figures and the results file.
 *
 * Benchmarks print figures; they never assert a time. They exit non-zero
 * only when something is broken (a record lost, altered or refused). */
#ifndef TRIBUTARY_BENCH_COMMON_H
#define TRIBUTARY_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of the bench binaries. */
#define BENCH_EX_OK 0
#define BENCH_EX_BROKEN 1 /* a count or content mismatch, a refused record */
#define BENCH_EX_SETUP 2  /* bad usage, catalogue not loadable, broker unreachable */

/**
 * @brief kcat's parse_delim(): "\n", "\t" and "\xNN" (hex digits as many as
 * strtoul takes, & 0xff) anywhere, everything else as is, into out (NUL-terminated).
 * @returns the length, or 0 when out is too small or the result would hold
 * a NUL (kcat takes strlen() of it).
 */
size_t bench_parse_delim(const char *in, char *out, size_t size);

/** @brief splitmix64: the next value of a deterministic PRNG state. */
uint64_t bench_rand(uint64_t *state);

/**
 * @brief Write the natural JSON of payee record number i (0-based) of a run
 * seeded with seed into buf. Same (seed, i): same text. Roughly 10% of the
 * names carry non-ASCII UTF-8; iban and email are null for some records.
 * @returns the text length (without NUL), or 0 when size is too small.
 */
size_t bench_payee_json(uint64_t seed, uint64_t i, char *buf, size_t size);

/** Buffer size enough for any bench_payee_json() text. */
#define BENCH_PAYEE_JSON_MAX 2048

/** A point in time: monotonic wall clock and the process CPU clock (all
 * threads, including those that have exited), both in seconds. */
typedef struct bench_clock {
    double wall;
    double cpu;
    double user; /* getrusage(RUSAGE_SELF) */
    double sys;
} bench_clock;

void bench_clock_now(bench_clock *c);

/** One measured stage. */
typedef struct bench_result {
    const char *section;  /* "codec", "produce" */
    const char *name;     /* "decode", "libcore", "kcat" */
    uint64_t n;           /* records */
    uint64_t bytes;       /* bytes the stage reads or writes (see the bench) */
    double wall_s, cpu_s, user_s, sys_s;
    const char *limit;    /* what the ratio is against, e.g. "memcpy" (or "") */
    double limit_wall_s;  /* the limit's time for the same records and bytes */
} bench_result;

/** Fill wall/cpu/user/sys from two clock readings. */
void bench_result_times(bench_result *r, const bench_clock *t0, const bench_clock *t1);

/** "812k", "1.23M", "950": a count per second in 3-4 significant digits. */
const char *bench_fmt_rate(double per_s, char *buf, size_t size);
/** "9.1 GB/s", "310 MB/s". */
const char *bench_fmt_bw(double bytes_per_s, char *buf, size_t size);
/** "1.23 us", "812 ns", "2.1 ms". */
const char *bench_fmt_dur(double seconds, char *buf, size_t size);

/**
 * @brief Append one row to the results file (tab-separated; the header is
 * written when the file is empty). Columns: section name n bytes wall_s
 * cpu_s user_s sys_s rec_per_s ns_per_rec mb_per_s cpu_s_per_mrec limit
 * limit_wall_s ratio. NULL path: nothing written.
 * @returns 0, or -1 (errno set) when the file cannot be written.
 */
int bench_results_append(const char *path, const bench_result *r);

/** Parse a record count: "500000", "500k", "2M". Returns 0 on error. */
uint64_t bench_parse_count(const char *s);

#endif
