/* bench_common.c — see bench_common.h. */
#include "bench_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *const first_names[] = {
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Anna", "Lukas", "Sophie", "Pierre",
};
/* Names a bank file really carries: some with UTF-8 (ë, ü, é, ñ, ø). */
static const char *const first_names_utf8[] = { "Zo\xc3\xab", "Ren\xc3\xa9", "Jos\xc3\xa9",
                                                 "Bj\xc3\xb8rn", "In\xc3\xa9s" };
static const char *const last_names[] = {
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Moore",
    "Schmidt", "Dubois", "Rossi", "de Vries", "Jackson", "Martin", "Lee", "Thompson",
};
static const char *const last_names_utf8[] = { "M\xc3\xbcller", "Pe\xc3\xb1" "a",
                                               "Fran\xc3\xa7ois", "S\xc3\xb8rensen" };
static const char *const companies[] = {
    "Acme Supplies Inc.", "Northwind Traders LLC", "Globex Corporation",
    "Initech Payroll Services", "Umbrella Logistics GmbH", "Stark Industrial Parts",
    "Wayne Facilities Management", "Blue Harbor Consulting SARL",
};
static const struct {
    const char *country, *currency, *iban_prefix;
    int iban_len;
} places[] = {
    { "US", "USD", NULL, 0 },  { "US", "USD", NULL, 0 },  { "US", "USD", NULL, 0 },
    { "DE", "EUR", "DE", 22 }, { "FR", "EUR", "FR", 27 }, { "GB", "GBP", "GB", 22 },
    { "NL", "EUR", "NL", 18 }, { "CA", "CAD", NULL, 0 },  { "ES", "EUR", "ES", 24 },
};

/* The ABA check digit of 8 routing digits (weights 3, 7, 1). */
static char aba_check(const char *d)
{
    static const int w[8] = { 3, 7, 1, 3, 7, 1, 3, 7 };
    int sum = 0;

    for (int i = 0; i < 8; i++)
        sum += (d[i] - '0') * w[i];
    return (char)('0' + (10 - sum % 10) % 10);
}

/* IBAN check digits for a digits-only BBAN: 98 - (BBAN CC 00 mod 97). */
static unsigned iban_check(const char *cc, const char *bban)
{
    unsigned m = 0;

    for (const char *p = bban; *p; p++)
        m = (m * 10 + (unsigned)(*p - '0')) % 97;
    for (int i = 0; i < 2; i++)
        m = (m * 100 + (unsigned)(cc[i] - 'A' + 10)) % 97;
    m = (m * 100) % 97;
    return 98 - m;
}
static const char *const email_domains[] = { "example.com", "example.org", "mail.example.net" };

#define PICK(arr, r) ((arr)[(r) % (sizeof(arr) / sizeof((arr)[0]))])

/* Lower-case ASCII letters of s into out (UTF-8 bytes and spaces dropped). */
static void email_part(const char *s, char *out, size_t size)
{
    size_t n = 0;

    for (; *s && n + 1 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if (c >= 'A' && c <= 'Z')
            out[n++] = (char)(c - 'A' + 'a');
        else if (c >= 'a' && c <= 'z')
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

static void iso_ms(int64_t ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char base[32];

    gmtime_r(&secs, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)(ms % 1000));
}

static void digits(uint64_t *st, char *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = (char)('0' + bench_rand(st) % 10);
    out[n] = '\0';
}

size_t bench_payee_json(uint64_t seed, uint64_t i, char *buf, size_t size)
{
    uint64_t st = seed * 0x2545F4914F6CDD1Dull + i;
    uint64_t r = bench_rand(&st);
    char name[128], first_l[48], last_l[48], email[160], iban[64], acct[24], routing[16];
    char event_time[40], updated_at[40], uuid[40];
    const char *first, *last, *op, *status;
    int64_t base_ms = INT64_C(1704067200000); /* 2024-01-01T00:00:00Z */
    int64_t ev_ms, up_ms;
    unsigned kind_place = (unsigned)(bench_rand(&st) % (sizeof(places) / sizeof(places[0])));
    uint64_t limit_units;
    int n;

    /* Name: a person (90%) or a company (10%); 10% of people UTF-8. */
    if (r % 10 == 0) {
        snprintf(name, sizeof(name), "%s", PICK(companies, r >> 8));
        first = "accounts";
        last = "";
    } else {
        bool utf8 = (r >> 4) % 10 == 0;

        first = utf8 ? PICK(first_names_utf8, r >> 8) : PICK(first_names, r >> 8);
        last = utf8 ? PICK(last_names_utf8, r >> 16) : PICK(last_names, r >> 16);
        snprintf(name, sizeof(name), "%s %s", first, last);
    }
    email_part(first, first_l, sizeof(first_l));
    email_part(last, last_l, sizeof(last_l));
    if ((r >> 24) % 10 < 7)
        snprintf(email, sizeof(email), "\"%s%s%s.%" PRIu64 "@%s\"", first_l, last_l[0] ? "." : "",
                 last_l, i % 1000, PICK(email_domains, r >> 28));
    else
        snprintf(email, sizeof(email), "null");

    digits(&st, acct, 8 + (int)(bench_rand(&st) % 10));
    /* Valid as real payees mostly are: an ABA check digit, IBAN mod-97
     * check digits and the country's IBAN length (the validator's rules
     * pass them; svc-validator's bench measures the common case). */
    digits(&st, routing, 8);
    routing[8] = aba_check(routing);
    routing[9] = '\0';
    if (places[kind_place].iban_prefix) {
        char bban[32];

        digits(&st, bban, places[kind_place].iban_len - 4);
        snprintf(iban, sizeof(iban), "\"%s%02u%s\"", places[kind_place].iban_prefix,
                 iban_check(places[kind_place].iban_prefix, bban), bban);
    } else {
        snprintf(iban, sizeof(iban), "null");
    }

    {
        /* one call per statement: argument evaluation order is unspecified */
        uint64_t u1 = bench_rand(&st), u2 = bench_rand(&st), u3 = bench_rand(&st);

        snprintf(uuid, sizeof(uuid), "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-a%03" PRIx64
                 "-%012" PRIx64, u1 >> 32, u1 & 0xffffu, (u1 >> 16) & 0xfffu, u2 & 0xfffu,
                 u3 & UINT64_C(0xffffffffffff));
    }

    ev_ms = base_ms + (int64_t)(bench_rand(&st) % (INT64_C(365) * 86400 * 1000));
    up_ms = ev_ms - (int64_t)(bench_rand(&st) % (INT64_C(30) * 86400 * 1000));
    iso_ms(ev_ms, event_time, sizeof(event_time));
    iso_ms(up_ms, updated_at, sizeof(updated_at));

    op = (r >> 32) % 10 < 8 ? "ADD" : "UPDATE";
    switch ((r >> 36) % 20) {
    case 0: status = "BLOCKED"; break;
    case 1: case 2: status = "INACTIVE"; break;
    default: status = "ACTIVE"; break;
    }
    limit_units = 100 + bench_rand(&st) % 2000000; /* 100 .. 2,000,100 */

    n = snprintf(buf, size,
                 "{\"meta\":{\"id\":\"%s\",\"op\":\"%s\",\"kind\":\"BULK\",\"source\":\"bench\","
                 "\"batch_id\":\"bench-%016" PRIx64 "\",\"seq\":%" PRIu64 ",\"event_time\":\"%s\","
                 "\"version\":%" PRIu64 ",\"old_key\":null},"
                 "\"payee_id\":\"PAY-%010" PRIu64 "\",\"name\":\"%s\",\"account_number\":\"%s\","
                 "\"routing_number\":\"%s\",\"iban\":%s,\"country\":\"%s\",\"currency\":\"%s\","
                 "\"email\":%s,\"amount_limit\":\"%" PRIu64 ".%02u\",\"status\":\"%s\","
                 "\"updated_at\":\"%s\"}",
                 uuid, op, seed, i + 1, event_time, 1 + (r >> 40) % 5, i, name, acct, routing,
                 iban, places[kind_place].country, places[kind_place].currency, email,
                 limit_units, (unsigned)((r >> 48) % 100), status, updated_at);
    if (n < 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

void bench_clock_now(bench_clock *c)
{
    struct timespec ts;
    struct rusage ru;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->wall = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    c->cpu = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    getrusage(RUSAGE_SELF, &ru);
    c->user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    c->sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

void bench_result_times(bench_result *r, const bench_clock *t0, const bench_clock *t1)
{
    r->wall_s = t1->wall - t0->wall;
    r->cpu_s = t1->cpu - t0->cpu;
    r->user_s = t1->user - t0->user;
    r->sys_s = t1->sys - t0->sys;
}

const char *bench_fmt_rate(double v, char *buf, size_t size)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.3gG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.3gM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, size, "%.0fk", v / 1e3);
    else if (v >= 1e3)
        snprintf(buf, size, "%.3gk", v / 1e3);
    else
        snprintf(buf, size, "%.3g", v);
    return buf;
}

const char *bench_fmt_bw(double v, char *buf, size_t size)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.3g GB/s", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.3g MB/s", v / 1e6);
    else
        snprintf(buf, size, "%.3g kB/s", v / 1e3);
    return buf;
}

const char *bench_fmt_dur(double s, char *buf, size_t size)
{
    if (s >= 1.0)
        snprintf(buf, size, "%.3g s", s);
    else if (s >= 1e-3)
        snprintf(buf, size, "%.3g ms", s * 1e3);
    else if (s >= 1e-6)
        snprintf(buf, size, "%.3g us", s * 1e6);
    else
        snprintf(buf, size, "%.3g ns", s * 1e9);
    return buf;
}

int bench_results_append(const char *path, const bench_result *r)
{
    struct stat st;
    bool header;
    FILE *f;
    double rate, ns, mbs, cpum, ratio;

    if (!path)
        return 0;
    header = stat(path, &st) != 0 || st.st_size == 0;
    if (!(f = fopen(path, "a")))
        return -1;
    if (header)
        fprintf(f, "section\tname\tn\tbytes\twall_s\tcpu_s\tuser_s\tsys_s\trec_per_s\tns_per_rec"
                   "\tmb_per_s\tcpu_s_per_mrec\tlimit\tlimit_wall_s\tratio\n");
    rate = r->wall_s > 0 ? (double)r->n / r->wall_s : 0;
    ns = r->n ? r->wall_s * 1e9 / (double)r->n : 0;
    mbs = r->wall_s > 0 ? (double)r->bytes / r->wall_s / 1e6 : 0;
    cpum = r->n ? r->cpu_s * 1e6 / (double)r->n : 0;
    ratio = r->limit_wall_s > 0 ? r->wall_s / r->limit_wall_s : 0;
    fprintf(f, "%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%.6f\t%.6f\t%.6f\t%.6f\t%.1f\t%.1f\t%.2f\t%.4f"
               "\t%s\t%.6f\t%.2f\n",
            r->section, r->name, r->n, r->bytes, r->wall_s, r->cpu_s, r->user_s, r->sys_s, rate,
            ns, mbs, cpum, r->limit && *r->limit ? r->limit : "-", r->limit_wall_s, ratio);
    if (fclose(f) != 0)
        return -1;
    return 0;
}

uint64_t bench_parse_count(const char *s)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-')
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    if (*end == 'k' || *end == 'K') {
        v *= 1000;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v *= 1000000;
        end++;
    }
    if (*end)
        return 0;
    return (uint64_t)v;
}

size_t bench_parse_delim(const char *in, char *out, size_t size)
{
    size_t n = 0;

    while (*in && n + 1 < size) {
        if (in[0] == '\\' && in[1] == 'n') {
            out[n++] = '\n';
            in += 2;
        } else if (in[0] == '\\' && in[1] == 't') {
            out[n++] = '\t';
            in += 2;
        } else if (in[0] == '\\' && in[1] == 'x') {
            char *end;
            unsigned long x = strtoul(in + 2, &end, 16) & 0xff;

            if (end == in + 2 || x == 0)
                return 0;
            out[n++] = (char)x;
            in = end;
        } else {
            out[n++] = *in++;
        }
    }
    if (*in)
        return 0;
    out[n] = '\0';
    return n;
}
