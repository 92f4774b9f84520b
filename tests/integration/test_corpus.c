/* test_corpus.c — the malformed-input corpus (tests/corpus/README.md): one
 * list of bad inputs across files, configuration, HTTP requests and Kafka
 * records, each with the outcome it must get, checked against the real
 * services on the local stack, printed as one table (case, input,
 * expected, got, ok).
 *
 * Every case checks two things: the error is clear (the exit code or HTTP
 * status it must have, and a substring naming what is wrong, found in the
 * summary, the log, the errors file, the answer or the DLQ record's
 * headers), and the rest of the work is unharmed (the good lines beside a
 * bad one are published and committed on the topic; the service still
 * serves after a bad request; the good record beside bad ones reaches
 * .valid). A case fails when either breaks.
 *
 * Files: svc-ingest one-shot runs, several at a time (each its own topics);
 * the 100 MB line is generated here, never committed. Bounded: about a
 * minute on 2 cores. */
#include "testutil.h"
#include "tu_stack.h"

#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_digest.h"
#include "tributary/core_kafka.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

extern char **environ;

/* ---- the table -------------------------------------------------------------- */

typedef struct row {
    char name[48], input[72], expected[96], got[160];
    bool ok;
} row;

static row rows[160];
static size_t nrows;

static void add_row(const char *name, const char *input, const char *expected, bool ok,
                    const char *gotfmt, ...) __attribute__((format(printf, 5, 6)));
static void add_row(const char *name, const char *input, const char *expected, bool ok,
                    const char *gotfmt, ...)
{
    va_list ap;
    row *r;

    ck_assert_uint_lt(nrows, sizeof(rows) / sizeof(rows[0]));
    r = &rows[nrows++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->input, sizeof(r->input), "%s", input);
    snprintf(r->expected, sizeof(r->expected), "%s", expected);
    va_start(ap, gotfmt);
    vsnprintf(r->got, sizeof(r->got), gotfmt, ap);
    va_end(ap);
    for (char *p = r->got; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    r->ok = ok;
}

static void print_table(void)
{
    size_t bad = 0;

    printf("\n%-4s %-30s %-46s %-44s %-60s %s\n", "#", "case", "input", "expected", "got", "ok");
    for (size_t i = 0; i < nrows; i++) {
        printf("%-4zu %-30s %-46.46s %-44.44s %-60.60s %s\n", i + 1, rows[i].name, rows[i].input,
               rows[i].expected, rows[i].got, rows[i].ok ? "ok" : "FAIL");
        bad += !rows[i].ok;
    }
    printf("corpus: %zu cases, %zu ok, %zu failed\n\n", nrows, nrows - bad, bad);
    fflush(stdout);
}

/* ---- helpers ------------------------------------------------------------------ */

static char workdir[256];

static char *slurp(const char *path)
{
    char err[256];
    char *s = core_read_file(path, 64u << 20, NULL, err, sizeof(err));
    return s ? s : strdup("");
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gzip(const char *path, const char *text)
{
    gzFile gz = gzopen(path, "wb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, text, (unsigned)strlen(text)), (int)strlen(text));
    ck_assert_int_eq(gzclose(gz), Z_OK);
}

#define HDR "payee_id,name,account_number,routing_number,iban,country,currency,email,amount_limit,status,updated_at\n"
#define GOOD1 "P1,Name One,0000000001,021000021,,US,USD,,1.50,ACTIVE,2026-11-22T08:30:00Z\n"
#define GOOD2 "P2,Name Two,0000000002,021000021,,US,USD,,2.50,ACTIVE,2026-11-22T08:30:00Z\n"
#define JGOOD1 "{\"payee_id\":\"P1\",\"name\":\"A\",\"account_number\":\"0000000001\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.50\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"}\n"
#define JGOOD2 "{\"payee_id\":\"P2\",\"name\":\"B\",\"account_number\":\"0000000002\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"2.50\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"}\n"
#define JBAD(x) "{\"payee_id\":\"P9\",\"name\":\"C\",\"account_number\":\"0000000009\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"" x "}\n"

/* ---- files through svc-ingest ------------------------------------------------------ */

typedef enum { F_TEXT, F_GZIP, F_GZIP_TRUNC, F_GZIP_CORRUPT, F_GZIP_GARBAGE, F_LONG_LINE,
               F_MISSING, F_DIR } file_kind;

typedef struct fcase {
    const char *name, *input;
    file_kind kind;
    const char *ext;         /* ".csv", ".jsonl", ".csv.gz" */
    const char *text;        /* the file (F_TEXT, the gzip kinds: the uncompressed text) */
    size_t len;              /* bytes of text (0: strlen) */
    const char *arg1, *arg2; /* one extra flag and its value, or NULL */
    int rc;                  /* exit code */
    const char *sub;         /* in the summary, the log or the errors file */
    int published, rejected; /* -1: not checked (nothing read) */
} fcase;

/* A case's run: its files, topics and process. */
typedef struct frun {
    char path[400], out[400], err[400], topic[160], audit[160], ckpt[160];
    const char *text;
    pid_t pid;
} frun;

static void fcase_prepare(const fcase *c, frun *r, size_t idx)
{
    const char *u = tu_unique();
    size_t len = c->len ? c->len : (r->text ? strlen(r->text) : 0);

    snprintf(r->path, sizeof(r->path), "%s/f%02zu-%s%s", workdir, idx, c->name, c->ext);
    snprintf(r->out, sizeof(r->out), "%s/f%02zu.out", workdir, idx);
    snprintf(r->err, sizeof(r->err), "%s/f%02zu.err", workdir, idx);
    snprintf(r->topic, sizeof(r->topic), "it.corpus.payee.%s", u);
    snprintf(r->audit, sizeof(r->audit), "it.corpus.audit.%s", u);
    snprintf(r->ckpt, sizeof(r->ckpt), "it.corpus.ckpt.%s", u);
    if (c->published > 0)
        tu_topic_create(r->topic, 1); /* read after the run even if it published nothing */
    switch (c->kind) {
    case F_TEXT:
        write_bytes(r->path, r->text, len);
        break;
    case F_GZIP:
        write_gzip(r->path, r->text);
        break;
    case F_GZIP_TRUNC:
    case F_GZIP_CORRUPT: {
        struct stat sb;
        write_gzip(r->path, r->text);
        ck_assert_int_eq(stat(r->path, &sb), 0);
        if (c->kind == F_GZIP_TRUNC) {
            ck_assert_int_eq(truncate(r->path, sb.st_size * 2 / 3), 0);
        } else {
            /* flip bytes in the middle of the deflate stream */
            int fd = open(r->path, O_RDWR);
            unsigned char junk[16];
            memset(junk, 0xA5, sizeof(junk));
            ck_assert_int_ge(fd, 0);
            ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), sb.st_size / 2), (ssize_t)sizeof(junk));
            close(fd);
        }
        break;
    }
    case F_GZIP_GARBAGE: {
        FILE *f;
        write_gzip(r->path, r->text);
        f = fopen(r->path, "ab");
        ck_assert_ptr_nonnull(f);
        fputs("this is not gzip", f);
        fclose(f);
        break;
    }
    case F_LONG_LINE: {
        /* GOOD1, a 100 MB line, GOOD2: made here, never committed */
        FILE *f = fopen(r->path, "wb");
        static char chunk[1 << 20];
        ck_assert_ptr_nonnull(f);
        memset(chunk, 'x', sizeof(chunk));
        fputs(HDR GOOD1 "P3,", f);
        for (int i = 0; i < 100; i++)
            ck_assert_uint_eq(fwrite(chunk, 1, sizeof(chunk), f), sizeof(chunk));
        fputs(",0000000003,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2, f);
        ck_assert_int_eq(fclose(f), 0);
        break;
    }
    case F_MISSING:
        break;
    case F_DIR:
        ck_assert_int_eq(mkdir(r->path, 0755), 0);
        break;
    }
}

static void fcase_start(const fcase *c, frun *r)
{
    char bin[512];
    const char *argv[32];
    int n = 0;

    snprintf(bin, sizeof(bin), "%s", tu_bin("svc-ingest"));
    argv[n++] = bin;
    argv[n++] = "--dataset";
    argv[n++] = "payee";
    argv[n++] = "--topic";
    argv[n++] = r->topic;
    argv[n++] = "--audit.topic";
    argv[n++] = r->audit;
    argv[n++] = "--checkpoint.topic";
    argv[n++] = r->ckpt;
    argv[n++] = "--http.port";
    argv[n++] = "0";
    argv[n++] = "--summary.json";
    argv[n++] = "--log.level";
    argv[n++] = "warn";
    if (c->arg1) {
        argv[n++] = c->arg1;
        if (c->arg2)
            argv[n++] = c->arg2;
    }
    argv[n++] = r->path;
    argv[n] = NULL;
    r->pid = fork();
    ck_assert_int_ge(r->pid, 0);
    if (r->pid == 0) {
        int o = open(r->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        execve(bin, (char *const *)argv, environ);
        _exit(127);
    }
}

static size_t committed(const char *topic)
{
    return tu_topic_read(topic, "read_committed", NULL, NULL);
}

static void fcase_finish(const fcase *c, frun *r)
{
    int st = 0, rc;
    char errors[500], *out, *err, *ef, expected[96];
    int64_t deadline = core_mono_ms() + 150000;
    cJSON *sum;
    int pub = -1, rej = -1;
    size_t ontopic = 0;
    bool found, ok;

    while (waitpid(r->pid, &st, WNOHANG) == 0) {
        if (core_mono_ms() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
            break;
        }
        tu_sleep_ms(50);
    }
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    snprintf(errors, sizeof(errors), "%s.errors.jsonl", r->path);
    out = slurp(r->out);
    err = slurp(r->err);
    ef = slurp(errors);
    sum = cJSON_Parse(out);
    if (sum) {
        const cJSON *p = cJSON_GetObjectItem(sum, "published"), *rj = cJSON_GetObjectItem(sum, "rejected");
        pub = cJSON_IsNumber(p) ? (int)p->valuedouble : -1;
        rej = cJSON_IsNumber(rj) ? (int)rj->valuedouble : -1;
    }
    found = strstr(out, c->sub) || strstr(err, c->sub) || strstr(ef, c->sub);
    if (c->published > 0)
        ontopic = committed(r->topic);
    ok = rc == c->rc && found && (c->published < 0 || (pub == c->published &&
                                                        ontopic == (size_t)c->published)) &&
         (c->rejected < 0 || rej == c->rejected);
    snprintf(expected, sizeof(expected), "exit %d, \"%s\"%s", c->rc, c->sub,
             c->published >= 0 ? "" : "");
    if (c->published >= 0) {
        size_t l = strlen(expected);
        snprintf(expected + l, sizeof(expected) - l, ", %d published, %d rejected", c->published,
                 c->rejected);
    }
    {
        /* the reason shown: the errors file's first reason, else the summary's error */
        const char *why = strstr(ef, "\"reason\":");
        char reason[90] = "";
        if (why)
            snprintf(reason, sizeof(reason), "%.80s", why + 9);
        else if (sum && cJSON_IsString(cJSON_GetObjectItem(sum, "error")))
            snprintf(reason, sizeof(reason), "%.80s", cJSON_GetObjectItem(sum, "error")->valuestring);
        else
            snprintf(reason, sizeof(reason), "%.80s", err);
        add_row(c->name, c->input, expected, ok, "exit %d, %s, %d pub (%zu on topic), %d rej: %s",
                rc, found ? "found" : "NOT found", pub, ontopic, rej, reason);
    }
    cJSON_Delete(sum);
    free(out);
    free(err);
    free(ef);
    unlink(errors);
    {
        const char *t[3] = { r->topic, r->audit, r->ckpt };
        tu_topics_delete(t, 3);
    }
}

static const fcase files[] = {
    { "nul_byte", "CSV: a NUL byte inside a field", F_TEXT, ".csv",
      HDR GOOD1 "P9,Na\0me,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      sizeof(HDR GOOD1 "P9,Na\0me,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2) - 1,
      NULL, NULL, 65, "NUL byte", 2, 1 },
    { "bom_in_middle", "CSV: a UTF-8 BOM starting line 3", F_TEXT, ".csv",
      HDR GOOD1 "\xEF\xBB\xBFP9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "byte order mark", 2, 1 },
    { "bom_at_start_ok", "CSV: a BOM at the very start (allowed)", F_TEXT, ".csv",
      "\xEF\xBB\xBF" HDR GOOD1 GOOD2, 0, NULL, NULL, 0, "\"rejected\":0", 2, 0 },
    { "invalid_utf8", "CSV: byte 0xFF in a name", F_TEXT, ".csv",
      HDR GOOD1 "P9,Na\xFFme,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "UTF-8", 2, 1 },
    { "overlong_utf8", "CSV: overlong encoding C0 AF", F_TEXT, ".csv",
      HDR GOOD1 "P9,Na\xC0\xAFme,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "UTF-8", 2, 1 },
    { "quote_in_unquoted", "CSV: a quote inside an unquoted field", F_TEXT, ".csv",
      HDR GOOD1 "P9,Na\"me,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "quote", 2, 1 },
    { "text_after_quote", "CSV: text after a closing quote", F_TEXT, ".csv",
      HDR GOOD1 "P9,\"Name\"x,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "quote", 2, 1 },
    { "unterminated_quote_eof", "CSV: a quoted field open at end of file", F_TEXT, ".csv",
      HDR GOOD1 GOOD2 "P9,\"Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n",
      0, NULL, NULL, 65, "unterminated", 2, 1 },
    { "too_few_fields", "CSV: a row of 2 fields under 11 columns", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name\n" GOOD2, 0, NULL, NULL, 65, "field", 2, 1 },
    { "too_many_fields", "CSV: a row of 12 fields under 11 columns", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z,extra\n" GOOD2,
      0, NULL, NULL, 65, "field", 2, 1 },
    { "bad_enum", "CSV: status WHAT", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,1.00,WHAT,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "PayeeStatus", 2, 1 },
    { "decimal_too_precise", "CSV: amount 1.234 (scale 2)", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,1.234,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "amount_limit", 2, 1 },
    { "decimal_not_number", "CSV: amount 'lots'", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,lots,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "amount_limit", 2, 1 },
    { "bad_timestamp", "CSV: updated_at 'yesterday'", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,yesterday\n" GOOD2,
      0, NULL, NULL, 65, "updated_at", 2, 1 },
    { "timestamp_no_zone", "CSV: ISO 8601 without a zone", F_TEXT, ".csv",
      HDR GOOD1 "P9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00\n" GOOD2,
      0, NULL, NULL, 65, "updated_at", 2, 1 },
    { "duplicate_column", "CSV: header with payee_id twice", F_TEXT, ".csv",
      "payee_id,payee_id,name,account_number,routing_number,iban,country,currency,email,amount_limit,status,updated_at\n"
      "P1,P1,Name,0000000001,021000021,,US,USD,,1.50,ACTIVE,2026-11-22T08:30:00Z\n",
      0, NULL, NULL, 65, "payee_id", 0, -1 },
    { "missing_required_column", "CSV: header without name", F_TEXT, ".csv",
      "payee_id,account_number,routing_number,iban,country,currency,email,amount_limit,status,updated_at\n"
      "P1,0000000001,021000021,,US,USD,,1.50,ACTIVE,2026-11-22T08:30:00Z\n",
      0, NULL, NULL, 65, "required column", 0, -1 },
    { "extra_column_refused", "CSV: unknown column, csv.extra.columns=refuse", F_TEXT, ".csv",
      "payee_id,nickname,name,account_number,routing_number,iban,country,currency,email,amount_limit,status,updated_at\n"
      "P1,x,Name,0000000001,021000021,,US,USD,,1.50,ACTIVE,2026-11-22T08:30:00Z\n",
      0, "--csv.extra.columns", "refuse", 65, "nickname", 0, -1 },
    { "bad_op", "CSV change feed: op UPSERT", F_TEXT, ".csv",
      "op," HDR "ADD," GOOD1 "UPSERT,P9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\nADD," GOOD2,
      0, NULL, NULL, 65, "op", 2, 1 },
    { "version_not_number", "CSV: version 'v2'", F_TEXT, ".csv",
      "version," HDR "1," GOOD1 "v2,P9,Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n2," GOOD2,
      0, NULL, NULL, 65, "version", 2, 1 },
    { "empty_required_key", "CSV: empty payee_id", F_TEXT, ".csv",
      HDR GOOD1 ",Name,0000000009,021000021,,US,USD,,1.00,ACTIVE,2026-11-22T08:30:00Z\n" GOOD2,
      0, NULL, NULL, 65, "payee_id", 2, 1 },
    { "line_100mb", "CSV: a 100 MB line (made at run time)", F_LONG_LINE, ".csv", NULL, 0,
      NULL, NULL, 65, "longer", 2, 1 },
    { "truncated_gzip", "gzip cut at 2/3 of its bytes", F_GZIP_TRUNC, ".csv.gz", NULL, 0,
      NULL, NULL, 66, "truncated", -1, -1 },
    { "corrupt_gzip", "gzip with 16 bytes overwritten mid-stream", F_GZIP_CORRUPT, ".csv.gz",
      NULL, 0, NULL, NULL, 66, "gzip", -1, -1 },
    { "gzip_trailing_garbage", "gzip then 16 bytes that are not gzip", F_GZIP_GARBAGE, ".csv.gz",
      HDR GOOD1 GOOD2, 0, NULL, NULL, 65, "garbage", 2, 1 },
    { "jsonl_not_json", "JSONL: a line cut in the middle", F_TEXT, ".jsonl",
      JGOOD1 "{\"payee_id\":\"P9\",\"na\n" JGOOD2, 0, NULL, NULL, 65, "JSON", 2, 1 },
    { "jsonl_array", "JSONL: an array, not an object", F_TEXT, ".jsonl",
      JGOOD1 "[1,2,3]\n" JGOOD2, 0, NULL, NULL, 65, "object", 2, 1 },
    { "jsonl_duplicate_key", "JSONL: payee_id twice in one object", F_TEXT, ".jsonl",
      JGOOD1 JBAD(",\"payee_id\":\"P8\"") JGOOD2, 0, NULL, NULL, 65, "payee_id", 2, 1 },
    { "jsonl_wrong_type", "JSONL: name is a number", F_TEXT, ".jsonl",
      JGOOD1 "{\"payee_id\":\"P9\",\"name\":5,\"account_number\":\"0000000009\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"}\n" JGOOD2,
      0, NULL, NULL, 65, "name", 2, 1 },
    { "jsonl_escaped_nul", "JSONL: \\u0000 in a string", F_TEXT, ".jsonl",
      JGOOD1 "{\"payee_id\":\"P9\",\"name\":\"a\\u0000b\",\"account_number\":\"0000000009\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"}\n" JGOOD2,
      0, NULL, NULL, 65, "NUL", 2, 1 },
    { "jsonl_long_out_of_range", "JSONL: updated_at 1e30", F_TEXT, ".jsonl",
      JGOOD1 "{\"payee_id\":\"P9\",\"name\":\"C\",\"account_number\":\"0000000009\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":1e30}\n" JGOOD2,
      0, NULL, NULL, 65, "updated_at", 2, 1 },
    { "jsonl_lone_surrogate", "JSONL: \\ud800 alone", F_TEXT, ".jsonl",
      JGOOD1 "{\"payee_id\":\"P9\",\"name\":\"\\ud800\",\"account_number\":\"0000000009\",\"routing_number\":\"021000021\",\"country\":\"US\",\"currency\":\"USD\",\"amount_limit\":\"1.00\",\"status\":\"ACTIVE\",\"updated_at\":\"2026-11-22T08:30:00Z\"}\n" JGOOD2,
      0, NULL, NULL, 65, "JSON", 2, 1 },
    { "missing_file", "a path that does not exist", F_MISSING, ".csv", NULL, 0, NULL, NULL, 66,
      "No such file", -1, -1 },
    { "directory_as_file", "a directory given as the file", F_DIR, ".csv", NULL, 0, NULL, NULL,
      66, "directory", -1, -1 },
};

static void run_files(void)
{
    const size_t n = sizeof(files) / sizeof(files[0]), lane = 6;
    static char gz[8192];

    snprintf(gz, sizeof(gz), HDR);
    for (int i = 0; i < 300; i++) {
        size_t l = strlen(gz);
        snprintf(gz + l, sizeof(gz) - l, "P%d,N%d,%010d,021000021,,US,USD,,1.00,ACTIVE,0\n", i, i, i);
        if (strlen(gz) > sizeof(gz) - 200)
            break;
    }
    static frun fr[sizeof(files) / sizeof(files[0])];

    for (size_t i = 0; i < n; i++) {
        memset(&fr[i], 0, sizeof(fr[i]));
        fr[i].text = files[i].text ? files[i].text : gz;
        fcase_prepare(&files[i], &fr[i], i);
    }
    for (size_t i = 0; i < n; i += lane) {
        for (size_t k = i; k < n && k < i + lane; k++)
            fcase_start(&files[k], &fr[k]);
        for (size_t k = i; k < n && k < i + lane; k++)
            fcase_finish(&files[k], &fr[k]);
    }
    for (size_t i = 0; i < n; i++) {
        if (files[i].kind == F_DIR)
            rmdir(fr[i].path);
        else
            unlink(fr[i].path);
        unlink(fr[i].out);
        unlink(fr[i].err);
    }
}

/* ---- configuration ------------------------------------------------------------------ */

typedef struct ccase {
    const char *name, *input, *svc;
    const char *args[8];   /* after the program name */
    const char *env;       /* one NAME=value or NULL */
    const char *file;      /* a --config file's text, or NULL */
    int rc;
    const char *sub;       /* in stdout or stderr */
} ccase;

static const ccase configs[] = {
    { "unknown_flag", "svc-ingest --no.such.key 1", "svc-ingest", { "--no.such.key", "1", "x.csv" }, NULL, NULL, 64, "unknown option '--no.such.key'" },
    { "int_not_a_number", "--checkpoint.records abc", "svc-ingest", { "--dataset", "payee", "--checkpoint.records", "abc", "x.csv" }, NULL, NULL, 78, "checkpoint.records" },
    { "int_out_of_range", "--checkpoint.records 0", "svc-ingest", { "--dataset", "payee", "--checkpoint.records", "0", "x.csv" }, NULL, NULL, 78, "checkpoint.records" },
    { "enum_unknown_word", "--format xml", "svc-ingest", { "--dataset", "payee", "--format", "xml", "x.csv" }, NULL, NULL, 78, "format" },
    { "bool_not_bool", "--force maybe", "svc-ingest", { "--dataset", "payee", "--force=maybe", "x.csv" }, NULL, NULL, 78, "force" },
    { "flag_missing_value", "--dataset at the end", "svc-ingest", { "x.csv", "--dataset" }, NULL, NULL, 64, "dataset" },
    { "file_unknown_key", "--config: 'no.such = 1'", "svc-ingest", { "--dataset", "payee", "x.csv" }, NULL, "no.such = 1\n", 78, "no.such" },
    { "file_line_without_equals", "--config: a line 'justtext'", "svc-ingest", { "--dataset", "payee", "x.csv" }, NULL, "justtext\n", 78, "line 1: expected 'key = value'" },
    { "file_missing", "--config /nonexistent/tb.conf", "svc-ingest", { "--config", "/nonexistent/tb.conf", "--dataset", "payee", "x.csv" }, NULL, NULL, 78, "/nonexistent/tb.conf" },
    { "env_bad_int", "TB_HTTP_PORT=abc", "svc-ingest", { "--dataset", "payee", "x.csv" }, "TB_HTTP_PORT=abc", NULL, 78, "http.port" },
    { "unknown_dataset", "--dataset nope", "svc-ingest", { "--dataset", "nope", "x.csv" }, NULL, NULL, 78, "nope" },
    { "secret_file_missing", "kafka.sasl.password_file=/nonexistent", "svc-ingest", { "--dataset", "payee", "--kafka.sasl.password_file", "/nonexistent/pw", "x.csv" }, NULL, NULL, 78, "/nonexistent/pw" },
    { "validator_unknown_flag", "svc-validator --no.such 1", "svc-validator", { "--dataset", "payee", "--no.such", "1" }, NULL, NULL, 64, "unknown option '--no.such'" },
    { "validator_file_unknown_key", "svc-validator --config: 'no.such.thing = x'", "svc-validator", { "--dataset", "payee" }, NULL, "no.such.thing = x\n", 78, "no.such.thing" },
    { "persister_bad_prefix", "svc-persister --topic.prefix 'a b'", "svc-persister", { "--dataset", "payee", "--topic.prefix", "a b" }, NULL, NULL, 78, "topic.prefix" },
    { "recon_bad_port", "svc-recon --http.port 70000", "svc-recon", { "--http.port", "70000" }, NULL, NULL, 78, "http.port" },
    { "feeder_file_unknown_key", "svc-cache-feeder --config: 'no.such.key = 1'", "svc-cache-feeder", { "--dataset", "payee" }, NULL, "no.such.key = 1\n", 78, "no.such.key" },
};

static void run_configs(void)
{
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        const ccase *c = &configs[i];
        char bin[512], cpath[400], expected[96], *out = NULL, *err = NULL;
        char *argv[16], **envp = tu_env(false), *env[64];
        int n = 0, ne = 0, rc;
        bool found;

        snprintf(bin, sizeof(bin), "%s", tu_bin(c->svc));
        argv[n++] = bin;
        if (c->file) {
            snprintf(cpath, sizeof(cpath), "%s/c%02zu.conf", workdir, i);
            write_bytes(cpath, c->file, strlen(c->file));
            argv[n++] = "--config";
            argv[n++] = cpath;
        }
        for (size_t k = 0; k < 8 && c->args[k]; k++)
            argv[n++] = (char *)c->args[k];
        argv[n] = NULL;
        for (char **e = envp; e && *e && ne < 62; e++)
            env[ne++] = *e;
        if (c->env)
            env[ne++] = (char *)c->env;
        env[ne] = NULL;
        rc = tu_run_cmd(argv, env, &out, &err, 30000);
        found = (out && strstr(out, c->sub)) || (err && strstr(err, c->sub));
        snprintf(expected, sizeof(expected), "exit %d, \"%s\"", c->rc, c->sub);
        {
            const char *line = err && *err ? err : out ? out : "";
            const char *m = strstr(line, "\"msg\":");
            add_row(c->name, c->input, expected, rc == c->rc && found, "exit %d, %s: %.100s", rc,
                    found ? "found" : "NOT found", m ? m + 6 : line);
        }
        if (c->file)
            unlink(cpath);
        free(out);
        free(err);
    }
}

/* ---- HTTP requests: svc-ingest's bulk-load API --------------------------------------------- */

static void http_case(int port, const char *name, const char *input, const char *method,
                      const char *path, const char *body, long want, const char *sub)
{
    char *resp = NULL, expected[96];
    long st = tu_http(port, method, path, NULL, body, &resp);
    bool found = !sub || (resp && strstr(resp, sub));

    snprintf(expected, sizeof(expected), "%ld%s%s%s", want, sub ? ", \"" : "", sub ? sub : "",
             sub ? "\"" : "");
    add_row(name, input, expected, st == want && found, "%ld, %s: %.100s", st,
            found ? "found" : "NOT found", resp ? resp : "");
    free(resp);
}

static void run_http(void)
{
    char port[16], spool[300], good[400], big_path[64], *big, body[700], log[400];
    const char *u = tu_unique();
    char topic[160], audit[160], ckpt[160];
    int p = tu_free_port();
    pid_t pid;

    ck_assert_int_gt(p, 0);
    snprintf(port, sizeof(port), "%d", p);
    snprintf(spool, sizeof(spool), "%s/spool", workdir);
    ck_assert_int_eq(mkdir(spool, 0755), 0);
    snprintf(topic, sizeof(topic), "it.corpus.serve.%s", u);
    snprintf(audit, sizeof(audit), "it.corpus.serve-audit.%s", u);
    snprintf(ckpt, sizeof(ckpt), "it.corpus.serve-ckpt.%s", u);
    snprintf(log, sizeof(log), "%s/serve.log", workdir);
    tu_topic_create(topic, 1);
    {
        const char *args[] = { "serve", "--dataset", "payee", "--topic", topic, "--audit.topic",
                               audit, "--checkpoint.topic", ckpt, "--http.bind", "127.0.0.1",
                               "--http.port", port, "--spool.dir", spool, "--spool.poll.ms",
                               "200", "--log.level", "warn", NULL };
        pid = tu_spawn("svc-ingest", args, NULL, log);
    }
    ck_assert_int_gt(pid, 0);
    ck_assert_msg(tu_wait_ready(p, 60000), "svc-ingest serve not ready (log %s)", log);

    http_case(p, "body_not_json", "POST /batches: 'hello'", "POST", "/batches", "hello", 400,
              "JSON object");
    http_case(p, "body_json_array", "POST /batches: [1,2]", "POST", "/batches", "[1,2]", 400,
              "JSON object");
    http_case(p, "body_empty", "POST /batches with no body", "POST", "/batches", NULL, 400,
              "JSON object");
    http_case(p, "body_no_file", "POST {\"dataset\":\"payee\"}", "POST", "/batches",
              "{\"dataset\":\"payee\"}", 400, "file");
    http_case(p, "body_unknown_dataset", "POST {file, dataset: nope}", "POST", "/batches",
              "{\"file\":\"/tmp/x.csv\",\"dataset\":\"nope\"}", 400, "dataset");
    http_case(p, "body_bad_format", "POST {.., format: xml}", "POST", "/batches",
              "{\"file\":\"/tmp/x.csv\",\"dataset\":\"payee\",\"format\":\"xml\"}", 400, "format");
    memset(body, 0, sizeof(body));
    snprintf(body, sizeof(body), "{\"file\":\"/tmp/x.csv\",\"dataset\":\"payee\",\"batch_id\":\"");
    memset(body + strlen(body), 'b', 300);
    strcat(body, "\"}");
    http_case(p, "body_batch_id_too_long", "POST {.., batch_id: 300 bytes}", "POST", "/batches",
              body, 400, "batch_id");
    http_case(p, "body_duplicate_key", "POST {file twice}", "POST", "/batches",
              "{\"file\":\"/tmp/a.csv\",\"file\":\"/tmp/b.csv\",\"dataset\":\"payee\"}", 400,
              "JSON object");
    http_case(p, "body_file_missing", "POST {file: /nonexistent/x.csv}", "POST", "/batches",
              "{\"file\":\"/nonexistent/x.csv\",\"dataset\":\"payee\"}", 422, "No such file");
    snprintf(body, sizeof(body), "{\"file\":\"%s\",\"dataset\":\"payee\"}", spool);
    http_case(p, "body_file_is_dir", "POST {file: a directory}", "POST", "/batches", body, 422,
              "directory");
    /* a 10 MB body (valid JSON: one long string) */
    big = malloc(10u << 20);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', 10u << 20);
    memcpy(big, "{\"file\":\"", 9);
    memcpy(big + (10u << 20) - 3, "\"}", 3);
    snprintf(big_path, sizeof(big_path), "POST /batches: 10 MB body");
    http_case(p, "body_10mb", big_path, "POST", "/batches", big, 413, NULL);
    free(big);
    http_case(p, "unknown_batch", "GET /batches/nope", "GET", "/batches/nope", NULL, 404,
              "no such batch");
    http_case(p, "wrong_method", "DELETE /batches", "DELETE", "/batches", NULL, 405, NULL);
    http_case(p, "unknown_path", "GET /nope", "GET", "/nope", NULL, 404, NULL);
    http_case(p, "bad_percent_path", "GET /batches/%zz", "GET", "/batches/%zz", NULL, 404, NULL);
    /* the rest unharmed: still serving, and a good batch is taken and ingested */
    snprintf(good, sizeof(good), "%s/good.csv", workdir);
    write_bytes(good, HDR GOOD1 GOOD2, strlen(HDR GOOD1 GOOD2));
    snprintf(body, sizeof(body), "{\"file\":\"%s\",\"dataset\":\"payee\"}", good);
    http_case(p, "still_serving_healthz", "GET /healthz after the bad requests", "GET",
              "/healthz", NULL, 200, "ok");
    {
        char *resp = NULL;
        long st = tu_http(p, "POST", "/batches", NULL, body, &resp);
        int64_t deadline = core_mono_ms() + 60000;
        size_t n = 0;

        while (st == 202 && core_mono_ms() < deadline && (n = committed(topic)) < 2)
            tu_sleep_ms(300);
        add_row("good_batch_after_bad", "POST a good file after the bad requests",
                "202, 2 records committed", st == 202 && n == 2, "%ld, %zu committed", st, n);
        free(resp);
    }
    tu_service_stop(pid);
    unlink(log);
    unlink(good);
    {
        char ef[500];
        snprintf(ef, sizeof(ef), "%s.errors.jsonl", good);
        unlink(ef);
    }
    rmdir(spool);
    {
        const char *t[3] = { topic, audit, ckpt };
        tu_topics_delete(t, 3);
    }
}


/* ---- Kafka records: svc-validator on a .raw topic ------------------------------------ */

#define PAYEE_JSON                                                                              \
    "{\"meta\":{\"id\":\"00000000-0000-4000-8000-000000000001\",\"op\":\"ADD\","              \
    "\"kind\":\"BULK\",\"source\":\"corpus\",\"batch_id\":\"b-corpus\",\"seq\":1,"             \
    "\"event_time\":1700000000000,\"version\":1,\"old_key\":null},"                              \
    "\"payee_id\":\"P1\",\"name\":\"Name One\",\"account_number\":\"A0000001\","                \
    "\"routing_number\":\"021000021\",\"iban\":null,\"country\":\"US\",\"currency\":\"USD\","    \
    "\"email\":null,\"amount_limit\":\"1000.00\",\"status\":\"ACTIVE\",\"updated_at\":1700000000000}"

#define DELIVERY_JSON                                                                           \
    "{\"meta\":{\"id\":\"00000000-0000-4000-8000-000000000002\",\"op\":\"ADD\","              \
    "\"kind\":\"BULK\",\"source\":\"corpus\",\"batch_id\":\"b-corpus\",\"seq\":2,"             \
    "\"event_time\":1700000000000,\"version\":1,\"old_key\":null},"                              \
    "\"event_id\":\"K5\",\"shipment_id\":\"S1\",\"tracking_number\":\"T1\","                    \
    "\"status\":\"DELIVERED\",\"location\":null,\"carrier\":\"c\",\"occurred_at\":1700000000000," \
    "\"recipient_name\":null,\"notes\":null}"

typedef struct kcase {
    const char *name, *input, *key; /* key NULL: a null Kafka key */
    const char *sub;                /* in the DLQ record's headers */
    uint8_t value[64];
    size_t len;                     /* 0 with build != 0: built below */
    int build;                      /* 1: the good record's bytes, edited per case */
} kcase;

typedef struct dlq_seen {
    char key[64];
    char headers[2048];
} dlq_seen;

typedef struct dlq_state {
    dlq_seen s[32];
    size_t n;
} dlq_state;

static void on_dlq(const rd_kafka_message_t *m, void *user)
{
    dlq_state *st = user;
    rd_kafka_headers_t *h = NULL;
    dlq_seen *d;
    const char *name;
    const void *val;
    size_t len, off = 0;

    if (st->n >= 32)
        return;
    d = &st->s[st->n++];
    snprintf(d->key, sizeof(d->key), "%.*s", m->key ? (int)m->key_len : 6,
             m->key ? (const char *)m->key : "(null)");
    d->headers[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == 0)
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++)
            if (off < sizeof(d->headers))
                off += (size_t)snprintf(d->headers + off, sizeof(d->headers) - off, "%s=%.*s; ",
                                        name, (int)len, val ? (const char *)val : "");
}


/* .valid records of key P5: their values and tb.replay.of headers. */
typedef struct replayed {
    size_t n;
    uint8_t *val[4];
    size_t len[4];
    char of[4][128];
} replayed;

static void on_valid(const rd_kafka_message_t *m, void *user)
{
    replayed *r = user;

    if (!m->key || m->key_len != 2 || memcmp(m->key, "P5", 2) || r->n >= 4)
        return;
    r->val[r->n] = malloc(m->len ? m->len : 1);
    ck_assert_ptr_nonnull(r->val[r->n]);
    memcpy(r->val[r->n], m->payload, m->len);
    r->len[r->n] = m->len;
    tu_header(m, "tb.replay.of", r->of[r->n], sizeof(r->of[r->n]));
    r->n++;
}

/* A record of the DLQ (class exhausted: its check could not be made) that
 * an operator replays twice: each replay re-publishes it (exit 0, "1
 * published"), each copy on .raw names the DLQ record it came from
 * (tb.replay.of), and both reach .valid byte for byte the same (same
 * meta.id and version: the sinks keep one). */
static void replay_twice(const char *prefix, const char *dlq, const char *raw,
                         const char *valid, const core_avro_schema_t *s)
{
    char errstr[512], *out[2] = { NULL, NULL }, *err[2] = { NULL, NULL };
    cJSON *j = cJSON_Parse(PAYEE_JSON);
    core_kafka_producer_t *p = tu_producer("0");
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    avro_value_t v;
    void *buf = NULL;
    size_t len = 0;
    int rc[2];
    replayed r, rr;
    bool same, msgs, marked;

    ck_assert_ptr_nonnull(j);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "payee_id", cJSON_CreateString("P5"));
    ck_assert_msg(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s", errstr);
    ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, errstr, sizeof(errstr)), CORE_OK);
    avro_value_decref(&v);
    cJSON_Delete(j);
    rd_kafka_header_add(h, "tb.error.class", -1, "exhausted", -1);
    rd_kafka_header_add(h, "__connect.errors.exception.message", -1,
                        "verification unavailable", -1);
    ck_assert_int_eq(core_kafka_produce_hdrs(p, dlq, "P5", 2, buf, len, h, NULL, errstr,
                                             sizeof(errstr)), CORE_OK);
    ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    core_kafka_producer_free(p);
    free(buf);
    for (int k = 0; k < 2; k++) {
        char *argv[] = { (char *)tu_bin("svc-validator"), "replay", "--dataset", "payee",
                         "--topic.prefix", (char *)prefix, "--class", "exhausted",
                         "--log.level", "warn", NULL };
        rc[k] = tu_run_cmd(argv, tu_env(false), &out[k], &err[k], 60000);
    }
    {
        int64_t deadline = core_mono_ms() + 60000;
        do {
            memset(&r, 0, sizeof(r));
            tu_topic_read(valid, "read_committed", on_valid, &r);
            if (r.n >= 2)
                break;
            for (size_t i = 0; i < r.n; i++)
                free(r.val[i]);
            tu_sleep_ms(300);
        } while (core_mono_ms() < deadline);
    }
    memset(&rr, 0, sizeof(rr));
    tu_topic_read(raw, "read_committed", on_valid, &rr);
    /* tb.replay.of on .raw, and carried on to .valid by the validator */
    marked = rr.n == 2 && rr.of[0][0] && !strcmp(rr.of[0], rr.of[1]) &&
             !strncmp(rr.of[0], dlq, strlen(dlq)) && r.n == 2 && !strcmp(r.of[0], rr.of[0]) &&
             !strcmp(r.of[1], rr.of[0]);
    msgs = rc[0] == 0 && rc[1] == 0 && out[0] && out[1] && strstr(out[0], "1 published") &&
           strstr(out[1], "1 published");
    same = r.n == 2 && r.len[0] == r.len[1] && !memcmp(r.val[0], r.val[1], r.len[0]);
    add_row("dlq_record_replayed_twice", "a DLQ record (exhausted) replayed twice",
            "exit 0 \"1 published\" x2; .raw and .valid x2 tb.replay.of; .valid x2 same bytes",
            msgs && marked && same,
            "exit %d/%d, %s; %zu on .raw (tb.replay.of %s); %zu on .valid (tb.replay.of %s)%s",
            rc[0], rc[1], msgs ? "1 published x2" : "NOT 1 published x2", rr.n,
            rr.n ? rr.of[0] : "-", r.n, r.n ? r.of[0] : "-",
            same ? " identical" : r.n == 2 ? " DIFFERENT" : "");
    for (size_t i = 0; i < r.n; i++)
        free(r.val[i]);
    for (size_t i = 0; i < rr.n; i++)
        free(rr.val[i]);
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        free(err[k]);
    }
}

/* Records of one key on a topic. */
typedef struct key_count {
    const char *key;
    size_t n;
} key_count;

static void on_key(const rd_kafka_message_t *m, void *user)
{
    key_count *k = user;

    if (m->key && m->key_len == strlen(k->key) && !memcmp(m->key, k->key, m->key_len))
        k->n++;
}

static size_t count_key(const char *topic, const char *key)
{
    key_count k = { key, 0 };

    tu_topic_read(topic, "read_committed", on_key, &k);
    return k.n;
}

/* Waits up to 60 s for topic to hold want records of key; the count. */
static size_t wait_key(const char *topic, const char *key, size_t want)
{
    int64_t deadline = core_mono_ms() + 60000;
    size_t n;

    while ((n = count_key(topic, key)) < want && core_mono_ms() < deadline)
        tu_sleep_ms(300);
    return n;
}

/* A DLQ record (class invalid: a bad routing number) that fails again each
 * time it is replayed: the first replay puts it back on .raw, the validator
 * dead-letters it again (a second copy, same tb.id, tb.replay.of naming the
 * first); the second replay re-publishes the newest copy only (it says it
 * passed older copies over), so .raw holds 2 replayed copies and the DLQ 3, not 3
 * and 4 (each replay doubling the copies of a record that keeps failing). */
static void replay_failing_twice(const char *prefix, const char *dlq, const char *raw,
                                 const core_avro_schema_t *s)
{
    static const char id[] = "00000000-0000-4000-8000-000000000006";
    char errstr[512], *out[2] = { NULL, NULL }, *err[2] = { NULL, NULL };
    cJSON *j = cJSON_Parse(PAYEE_JSON);
    core_kafka_producer_t *p = tu_producer("0");
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    avro_value_t v;
    void *buf = NULL;
    size_t len = 0, ndlq[2], nraw;
    int rc[2];
    bool ok;

    ck_assert_ptr_nonnull(j);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "payee_id", cJSON_CreateString("P6"));
    cJSON_ReplaceItemInObjectCaseSensitive(j, "routing_number", cJSON_CreateString("123456789"));
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(j, "meta"), "id",
                                           cJSON_CreateString(id));
    ck_assert_msg(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s", errstr);
    ck_assert_int_eq(core_avro_encode(s, &v, &buf, &len, errstr, sizeof(errstr)), CORE_OK);
    avro_value_decref(&v);
    cJSON_Delete(j);
    rd_kafka_header_add(h, "tb.id", -1, id, -1);
    rd_kafka_header_add(h, "tb.error.class", -1, "invalid", -1);
    rd_kafka_header_add(h, "__connect.errors.exception.message", -1, "routing_number", -1);
    ck_assert_int_eq(core_kafka_produce_hdrs(p, dlq, "P6", 2, buf, len, h, NULL, errstr,
                                             sizeof(errstr)), CORE_OK);
    ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    core_kafka_producer_free(p);
    free(buf);
    for (int k = 0; k < 2; k++) {
        char *argv[] = { (char *)tu_bin("svc-validator"), "replay", "--dataset", "payee",
                         "--topic.prefix", (char *)prefix, "--class", "invalid",
                         "--log.level", "warn", NULL };
        rc[k] = tu_run_cmd(argv, tu_env(false), &out[k], &err[k], 60000);
        /* the validator's new dead-letter copy before the next replay */
        ndlq[k] = wait_key(dlq, "P6", (size_t)k + 2);
    }
    tu_sleep_ms(2000); /* a doubled copy would have reached both topics by now */
    nraw = count_key(raw, "P6");
    ndlq[1] = count_key(dlq, "P6");
    ok = rc[0] == 0 && rc[1] == 0 && out[1] && strstr(out[1], "older copies superseded") &&
         !strstr(out[1], "(0 older") &&
         nraw == 2 && ndlq[0] == 2 && ndlq[1] == 3;
    add_row("dlq_record_failing_replayed_twice",
            "a DLQ record (invalid) that fails again, replayed twice",
            "2nd replay: older copies superseded; .raw x2, DLQ x3", ok,
            "exit %d/%d; %zu on .raw, DLQ %zu then %zu; 2nd said: %.120s", rc[0], rc[1], nraw,
            ndlq[0], ndlq[1], out[1] ? out[1] : "-");
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        free(err[k]);
    }
}

static void run_kafka(void)
{
    char errstr[512], prefix[128], group[128], inst[128], log[400];
    char raw[192], valid[192], retry[192], dlq[192], audit[192], port[16];
    const char *topics[5] = { raw, valid, retry, dlq, audit };
    core_avro_catalog_t *cat = tu_catalog_load();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    core_kafka_producer_t *p = tu_producer("0");
    static const core_kafka_prop none[1];
    cJSON *j = cJSON_Parse(PAYEE_JSON);
    avro_value_t v;
    uint8_t *good = NULL, *other = NULL;
    size_t glen = 0, other_len = 0, nvalid = 0;
    dlq_state st;
    pid_t pid;
    int hp = tu_free_port();
    kcase cases[] = {
        { "kafka_bad_magic", "value starting 0x01, not 0x00", "K1", "magic", { 0 }, 0, 2 },
        { "kafka_short_value", "a value of 3 bytes", "K2", "shorter than the 5-byte wire header", { 0, 0, 0 }, 3, 0 },
        { "kafka_empty_value", "an empty value (a tombstone)", "K3", "empty value (tombstone)", { 0 }, 0, 0 },
        { "kafka_unknown_schema_id", "schema id 999 (not in the catalogue)", "K4", "999", { 0 }, 0, 3 },
        { "kafka_other_dataset_id", "a delivery_event record (id 102) on payee.raw", "K5", "on a topic of dataset payee", { 0 }, 0, 4 },
        { "kafka_truncated_body", "the good record cut after 40 bytes", "K6", "bytes left", { 0 }, 0, 5 },
        { "kafka_trailing_bytes", "the good record + 2 extra bytes", "K7", "trailing", { 0 }, 0, 6 },
        { "kafka_null_key", "the good record with a null Kafka key", NULL, "Kafka key is null", { 0 }, 0, 1 },
        { "kafka_key_not_business_key", "the good record keyed K9, not P1", "K9", "key", { 0 }, 0, 1 },
    };
    const size_t nc = sizeof(cases) / sizeof(cases[0]);

    (void)none;
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s", errstr);
    ck_assert_int_eq(core_avro_encode(s, &v, (void **)&good, &glen, errstr, sizeof(errstr)), CORE_OK);
    avro_value_decref(&v);
    cJSON_Delete(j);
    /* a genuine record of another dataset, well-formed under its own id */
    j = cJSON_Parse(DELIVERY_JSON);
    ck_assert_ptr_nonnull(j);
    {
        const core_avro_schema_t *ds = core_avro_catalog_by_dataset(cat, "delivery_event");
        ck_assert_msg(core_avro_from_json(ds, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s",
                      errstr);
        ck_assert_int_eq(core_avro_encode(ds, &v, (void **)&other, &other_len, errstr,
                                          sizeof(errstr)), CORE_OK);
        avro_value_decref(&v);
    }
    cJSON_Delete(j);
    snprintf(prefix, sizeof(prefix), "itc%s.", tu_unique());
    snprintf(group, sizeof(group), "itc-group-%s", tu_unique());
    snprintf(inst, sizeof(inst), "itc-%s", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    snprintf(valid, sizeof(valid), "%spayee.valid", prefix);
    snprintf(retry, sizeof(retry), "%spayee.retry", prefix);
    snprintf(dlq, sizeof(dlq), "%spayee.dlq", prefix);
    snprintf(audit, sizeof(audit), "%saudit.events", prefix);
    for (size_t i = 0; i < 5; i++)
        tu_topic_create(topics[i], 1);
    /* the good record, then each bad one */
    ck_assert_int_eq(core_kafka_produce(p, raw, "P1", 2, good, glen, NULL, 0, NULL, errstr,
                                        sizeof(errstr)), CORE_OK);
    for (size_t i = 0; i < nc; i++) {
        kcase *c = &cases[i];
        uint8_t buf[1024];
        size_t len = c->len;
        const void *val = c->value;

        ck_assert_uint_lt(glen + 2, sizeof(buf));
        memcpy(buf, good, glen);
        switch (c->build) {
        case 1: len = glen; val = buf; break;
        case 2: buf[0] = 1; len = glen; val = buf; break;
        case 3: buf[1] = 0; buf[2] = 0; buf[3] = 0x03; buf[4] = 0xE7; len = glen; val = buf; break;
        case 4: len = other_len; val = other; break;
        case 5: len = 40; val = buf; break;
        case 6: buf[glen] = 0; buf[glen + 1] = 0; len = glen + 2; val = buf; break;
        default: break;
        }
        ck_assert_int_eq(core_kafka_produce(p, raw, c->key, c->key ? strlen(c->key) : 0,
                                            len ? val : NULL, len, NULL, 0, NULL, errstr,
                                            sizeof(errstr)), CORE_OK);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    core_kafka_producer_free(p);
    free(good);
    free(other);

    snprintf(port, sizeof(port), "%d", hp);
    snprintf(log, sizeof(log), "%s/validator.log", workdir);
    {
        const char *args[] = { "--dataset", "payee", "--topic.prefix", prefix, "--group.id", group,
                               "--instance.id", inst, "--http.port", port, "--audit.topic", audit,
                               "--commit.interval.ms", "100", "--log.level", "warn", NULL };
        pid = tu_spawn("svc-validator", args, NULL, log);
    }
    {
        int64_t deadline = core_mono_ms() + 90000;
        do {
            tu_sleep_ms(500);
            memset(&st, 0, sizeof(st));
            tu_topic_read(dlq, "read_committed", on_dlq, &st);
            nvalid = tu_topic_read(valid, "read_committed", NULL, NULL);
        } while ((st.n < nc || nvalid < 1) && core_mono_ms() < deadline);
    }
    for (size_t i = 0; i < nc; i++) {
        const kcase *c = &cases[i];
        const char *want = c->key ? c->key : "(null)";
        const dlq_seen *d = NULL;
        char expected[96];

        for (size_t k = 0; k < st.n; k++)
            if (!strcmp(st.s[k].key, want))
                d = &st.s[k];
        snprintf(expected, sizeof(expected), "to the DLQ, \"%s\"", c->sub);
        {
            const char *msg = d ? strstr(d->headers, "__connect.errors.exception.message=") : NULL;
            bool found = d && strstr(d->headers, c->sub);
            add_row(c->name, c->input, expected, found, "%s: %.110s",
                    !d ? "not in the DLQ" : found ? "DLQ, found" : "DLQ, NOT found",
                    msg ? msg + 35 : d ? d->headers : "");
        }
    }
    add_row("kafka_good_beside_bad", "the good record before the bad ones", "1 record on .valid",
            nvalid == 1, "%zu on .valid, %zu in the DLQ", nvalid, st.n);
    replay_twice(prefix, dlq, raw, valid, s);
    replay_failing_twice(prefix, dlq, raw, s);
    {
        char *resp = NULL;
        long hs = tu_http(hp, "GET", "/healthz", NULL, NULL, &resp);
        add_row("kafka_validator_still_up", "GET /healthz after the bad records", "200", hs == 200,
                "%ld", hs);
        free(resp);
    }
    tu_service_stop(pid);
    unlink(log);
    tu_topics_delete(topics, 5);
    core_avro_catalog_free(cat);
}

/* ---- audit events: svc-recon's report over an audit topic ------------------------------------ */

static void audit_emit(core_audit_t *a, const char *batch, const char *dataset, int i,
                       const char *outcome, int64_t ts, const char *topic, int64_t offset)
{
    char id[128], key[32], err[512], text[64];
    core_digest d;
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;

    snprintf(id, sizeof(id), "%s-%06d", batch, i);
    snprintf(key, sizeof(key), "K%06d", i);
    snprintf(text, sizeof(text), "record %d", i);
    core_digest_sha256(text, strlen(text), &d);
    ev.id = id;
    ev.key = key;
    ev.dataset = dataset;
    ev.batch_id = batch;
    ev.outcome = outcome;
    ev.digest = &d;
    ev.ts = ts;
    ev.version = 1;
    ev.topic = topic;
    if (offset >= 0) {
        ev.partition = 0;
        ev.offset = offset;
    } else {
        ev.line = i + 2;
    }
    ck_assert_msg(core_audit_emit(a, &ev, err, sizeof(err)) == CORE_OK, "emit: %s", err);
}

static double jpath(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

static void run_recon(void)
{
    static const char *const stages[4] = { "ingest", "validator", "cache-feeder", "persister" };
    static const char *const outcomes[4] = { "published", "valid", "cached", "persisted" };
    char err[512], topic[160], schema[100], batch[64], tflag[200], sflag[200], bflag[200];
    char *out = NULL, *errout = NULL;
    core_avro_catalog_t *cat = tu_catalog_load();
    core_kafka_producer_t *p = tu_producer("5");
    core_audit_t *a[4];
    cJSON *j;
    int rc;

    snprintf(topic, sizeof(topic), "it.corpus.audit.%s", tu_unique());
    snprintf(schema, sizeof(schema), "recon_corpus_%s", tu_unique());
    snprintf(batch, sizeof(batch), "corpus-%s", tu_unique());
    tu_topic_create(topic, 1);
    for (int i = 0; i < 4; i++) {
        a[i] = core_audit_new(p, cat, topic, stages[i], err, sizeof(err));
        ck_assert_msg(a[i] != NULL, "audit: %s", err);
    }
    /* record 1: its whole life, as it should be */
    for (int i = 0; i < 4; i++)
        audit_emit(a[i], batch, "payee", 1, outcomes[i], 0, i ? "payee.valid" : "payee.raw",
                   i ? 1 : -1);
    /* bad input beside it */
    audit_emit(a[0], batch, "payee", 2, "published", core_now_ms() + 400LL * 86400000,
               "payee.raw", -1);
    audit_emit(a[0], batch, "no_such_dataset", 3, "published", 0, "payee.raw", -1);
    ck_assert_int_eq(core_kafka_produce(p, topic, "k", 1, "\0\0\0\0\xc9garbage", 12, NULL, 0,
                                        NULL, err, sizeof(err)), CORE_OK);
    ck_assert_int_eq(core_kafka_produce(p, topic, "k", 1, "not avro", 8, NULL, 0, NULL, err,
                                        sizeof(err)), CORE_OK);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    for (int i = 0; i < 4; i++)
        core_audit_free(a[i]);
    core_kafka_producer_free(p);

    snprintf(tflag, sizeof(tflag), "--audit.topic=%s", topic);
    snprintf(sflag, sizeof(sflag), "--state.schema=%s", schema);
    snprintf(bflag, sizeof(bflag), "--batch=%s", batch);
    {
        char *argv[] = { (char *)tu_bin("svc-recon"), "report", bflag, "--json", tflag, sflag,
                         "--log.level=warn", NULL };
        rc = tu_run_cmd(argv, tu_env(true), &out, &errout, 120000);
    }
    j = cJSON_Parse(out);
    add_row("audit_event_from_future", "an audit event 400 days ahead", "bad_input.future_timestamp 1",
            jpath(j, "bad_input", "future_timestamp") == 1, "exit %d, future_timestamp %.0f", rc,
            jpath(j, "bad_input", "future_timestamp"));
    add_row("audit_unknown_dataset", "an audit event of dataset no_such_dataset",
            "bad_input.unknown_dataset 1", jpath(j, "bad_input", "unknown_dataset") == 1,
            "unknown_dataset %.0f", jpath(j, "bad_input", "unknown_dataset"));
    add_row("audit_malformed_bytes", "2 audit records: garbage body, not Avro",
            "bad_input.malformed 2", jpath(j, "bad_input", "malformed") == 2, "malformed %.0f",
            jpath(j, "bad_input", "malformed"));
    add_row("audit_good_beside_bad", "record 1's four events beside the bad ones",
            "counts.delivered 1", jpath(j, "counts", "delivered") == 1, "delivered %.0f",
            jpath(j, "counts", "delivered"));
    cJSON_Delete(j);
    free(out);
    free(errout);
    tu_pg_drop_schema(schema);
    {
        const char *t[1] = { topic };
        tu_topics_delete(t, 1);
    }
    core_avro_catalog_free(cat);
}

START_TEST(malformed_input_corpus)
{
    double t0 = core_mono_s();

    snprintf(workdir, sizeof(workdir), "/tmp/tb-corpus-%s", tu_unique());
    ck_assert_int_eq(mkdir(workdir, 0755), 0);
    run_configs();
    run_http();
    run_kafka();
    run_recon();
    run_files();
    print_table();
    fprintf(stderr, "test_corpus: %zu cases in %.1f s\n", nrows, core_mono_s() - t0);
    for (size_t i = 0; i < nrows; i++)
        ck_assert_msg(rows[i].ok, "case %s: expected %s, got %s", rows[i].name, rows[i].expected,
                      rows[i].got);
    ck_assert_uint_ge(nrows, 50);
    rmdir(workdir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("corpus");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, malformed_input_corpus);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s = suite();
    return tu_run(&s, 1);
}
