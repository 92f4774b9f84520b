/* test_recon_api.c — svc-recon's API surface against the real broker and
 * PostgreSQL: role-based access on every route (no token, a wrong token,
 * each role), the token tool, and the log lines of refused requests. */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_audit.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_http.h"
#include "tributary/core_kafka.h"

#include "../../svc-recon/auth.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t n = 0;
    if (!f)
        return strdup("");
    FILE *m = open_memstream(&s, &n);
    int ch;
    while ((ch = fgetc(f)) != EOF)
        fputc(ch, m);
    fclose(m);
    fclose(f);
    return s;
}

/* ---- HTTP ----------------------------------------------------------------------- */

/* ---- the token tool --------------------------------------------------------------- */

/* svc-recon token add; returns the exit code, *tok the printed token. */
static int token_add(const char *file, const char *id, const char *role, char **tok)
{
    char fflag[600], iflag[200], rflag[100], *out = NULL, *err = NULL;
    snprintf(fflag, sizeof(fflag), "--file=%s", file);
    snprintf(iflag, sizeof(iflag), "--id=%s", id);
    snprintf(rflag, sizeof(rflag), "--role=%s", role);
    char *argv[] = { (char *)tu_bin("svc-recon"), "token", "add", iflag, rflag, fflag, NULL };
    int rc = tu_run_cmd(argv, tu_env(true), &out, &err, 20000);
    if (tok) {
        char *nl = out ? strchr(out, '\n') : NULL;
        if (nl)
            *nl = '\0';
        *tok = out ? out : strdup("");
    } else {
        free(out);
    }
    free(err);
    return rc;
}

START_TEST(token_tool_stores_only_the_hash)
{
    char file[256], *tok = NULL, *again = NULL;
    snprintf(file, sizeof(file), "/tmp/recon_tokens_%s", tu_unique());
    unlink(file);
    ck_assert_int_eq(token_add(file, "ops.alice", "operator", &tok), 0);
    ck_assert_int_eq((int)strlen(tok), 4 + 64);
    ck_assert(strncmp(tok, "tbr_", 4) == 0);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0600);
    char *text = slurp(file);
    ck_assert_msg(strstr(text, tok + 4) == NULL, "the token itself is in the file");
    ck_assert_msg(strncmp(text, "ops.alice operator ", 19) == 0, "file: %s", text);
    ck_assert_int_eq((int)strlen(text), 19 + 64 + 1);
    free(text);
    /* the same id twice: refused (65), the file unchanged */
    ck_assert_int_eq(token_add(file, "ops.alice", "viewer", NULL), 65);
    /* a second token differs from the first */
    ck_assert_int_eq(token_add(file, "ops.bob", "viewer", &again), 0);
    ck_assert_str_ne(tok, again);
    /* bad input: usage (64) */
    ck_assert_int_eq(token_add(file, "carol", "root", NULL), 64);
    ck_assert_int_eq(token_add(file, "bad id", "viewer", NULL), 64);
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    ck_assert_int_eq(token_add(file, long_id, "viewer", NULL), 64);
    long_id[64] = '\0'; /* 64: the longest accepted */
    ck_assert_int_eq(token_add(file, long_id, "admin", NULL), 0);
    /* what the service reads back: each token's role, the id named */
    char err[300], id[80], hdr[120];
    recon_auth *a = recon_auth_new(file, false, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    ck_assert_int_eq(recon_auth_check(a, hdr, id, sizeof(id)), RECON_ROLE_OPERATOR);
    ck_assert_str_eq(id, "ops.alice");
    snprintf(hdr, sizeof(hdr), "bearer %s", again);
    ck_assert_int_eq(recon_auth_check(a, hdr, id, sizeof(id)), RECON_ROLE_VIEWER);
    ck_assert_str_eq(id, "ops.bob");
    hdr[strlen(hdr) - 1] ^= 1; /* one character off */
    ck_assert_int_eq(recon_auth_check(a, hdr, id, sizeof(id)), 0);
    ck_assert_str_eq(id, "unknown");
    ck_assert_int_eq(recon_auth_check(a, "Bearer ", id, sizeof(id)), 0);
    ck_assert_int_eq(recon_auth_check(a, tok, id, sizeof(id)), 0); /* no scheme */
    ck_assert_int_eq(recon_auth_check(a, NULL, id, sizeof(id)), 0);
    recon_auth_free(a);
    /* a malformed file is refused with its line */
    FILE *f = fopen(file, "a");
    fputs("mallory admin nothex\n", f);
    fclose(f);
    ck_assert_ptr_null(recon_auth_new(file, true, err, sizeof(err)));
    ck_assert_msg(strstr(err, "line 4") != NULL, "%s", err);
    unlink(file);
    free(tok);
    free(again);
}
END_TEST

START_TEST(route_roles)
{
    ck_assert_int_eq(recon_route_role("GET", "/batches"), RECON_ROLE_VIEWER);
    ck_assert_int_eq(recon_route_role("GET", "/batches/*"), RECON_ROLE_VIEWER);
    ck_assert_int_eq(recon_route_role("GET", "/windows"), RECON_ROLE_VIEWER);
    ck_assert_int_eq(recon_route_role("POST", "/reconcile"), RECON_ROLE_OPERATOR);
    ck_assert_int_eq(recon_route_role("POST", "/replay"), RECON_ROLE_OPERATOR);
    ck_assert_int_eq(recon_route_role("GET", "/retention"), RECON_ROLE_VIEWER);
    ck_assert_int_eq(recon_route_role("PUT", "/retention"), RECON_ROLE_ADMIN);
    ck_assert_int_eq(recon_route_role("GET", "/dashboard"), RECON_ROLE_OPEN);
    ck_assert_int_eq(recon_route_role("DELETE", "/anything"), RECON_ROLE_OPERATOR);
}
END_TEST

/* ---- the daemon ---------------------------------------------------------------------- */

typedef struct daemon_t {
    pid_t pid;
    int port;
    char schema[100], topic[128], tokens[256], log[256];
} daemon_t;

static core_avro_catalog_t *cat;

/* A batch of n records, each published and valid, record 0 never persisted. */
static void emit_batch_at(const char *topic, const char *batch, int n, int64_t ts);

static void emit_batch(const char *topic, const char *batch, int n)
{
    emit_batch_at(topic, batch, n, 0);
}

/* emit_batch() with every event at ts (0: now). */
static void emit_batch_at(const char *topic, const char *batch, int n, int64_t ts)
{
    static const char *const stage[] = { "ingest", "validator", "persister" };
    static const char *const outcome[] = { "published", "valid", "persisted" };
    char err[512], id[128], key[32], text[64];
    core_kafka_producer_t *p = tu_producer("5");

    for (int s = 0; s < 3; s++) {
        core_audit_t *a = core_audit_new(p, cat, topic, stage[s], err, sizeof(err));
        ck_assert_msg(a != NULL, "audit: %s", err);
        for (int i = (s == 2); i < n; i++) {
            core_digest d;
            core_audit_event ev = CORE_AUDIT_EVENT_INIT;
            snprintf(id, sizeof(id), "%s-%04d", batch, i);
            snprintf(key, sizeof(key), "K%04d", i);
            snprintf(text, sizeof(text), "record %d", i);
            core_digest_sha256(text, strlen(text), &d);
            ev.id = id;
            ev.key = key;
            ev.dataset = "payee";
            ev.batch_id = batch;
            ev.ts = ts;
            ev.outcome = outcome[s];
            ev.digest = &d;
            ev.version = 1;
            ev.topic = s ? "payee.valid" : "payee.raw";
            if (s) {
                ev.partition = 0;
                ev.offset = i;
            }
            ck_assert_msg(core_audit_emit(a, &ev, err, sizeof(err)) == CORE_OK, "%s", err);
        }
        ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
        core_audit_free(a);
    }
    core_kafka_producer_free(p);
}

static void daemon_start(daemon_t *d, const char *tag, const char *extra)
{
    char tflag[200], sflag[200], pflag[64], aflag[300];

    snprintf(d->schema, sizeof(d->schema), "recon_api_%s_%s", tag, tu_unique());
    snprintf(d->topic, sizeof(d->topic), "audit.recon_api_%s_%s", tag, tu_unique());
    snprintf(d->log, sizeof(d->log), "/tmp/%s.log", d->schema);
    tu_topic_create(d->topic, 3);
    d->port = tu_free_port();
    ck_assert_int_gt(d->port, 0);
    snprintf(tflag, sizeof(tflag), "--audit.topic=%s", d->topic);
    snprintf(sflag, sizeof(sflag), "--state.schema=%s", d->schema);
    snprintf(pflag, sizeof(pflag), "--http.port=%d", d->port);
    /* d->tokens empty: no token file (deny by default, or extra names auth.open) */
    snprintf(aflag, sizeof(aflag), "--auth.tokens.file=%s", d->tokens);
    d->pid = fork();
    ck_assert_int_ge(d->pid, 0);
    if (d->pid == 0) {
        /* extra: flags separated by spaces */
        char *argv[24] = { (char *)tu_bin("svc-recon"), tflag, sflag, pflag,
                           "--batch.timeout.ms=50", "--log.level=info" };
        int argc = 6;
        if (d->tokens[0])
            argv[argc++] = aflag;
        char *more = extra ? strdup(extra) : NULL, *save = NULL;
        for (char *w = more ? strtok_r(more, " ", &save) : NULL; w && argc < 23;
             w = strtok_r(NULL, " ", &save))
            argv[argc++] = w;
        argv[argc] = NULL;
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execve(argv[0], argv, tu_env(true));
        _exit(127);
    }
    int64_t deadline = core_mono_ms() + 60000;
    while (core_mono_ms() < deadline && tu_http(d->port, "GET", "/readyz", NULL, NULL, NULL) != 200)
        usleep(100 * 1000);
    ck_assert_int_eq(tu_http(d->port, "GET", "/readyz", NULL, NULL, NULL), 200);
    /* ready can come before the routes (the state is opened and migrated in
     * between): wait until /batches is routed (401 without a token) */
    while (core_mono_ms() < deadline && tu_http(d->port, "GET", "/batches", NULL, NULL, NULL) == 404)
        usleep(100 * 1000);
    ck_assert_int_ne(tu_http(d->port, "GET", "/batches", NULL, NULL, NULL), 404);
}

static void daemon_stop(daemon_t *d)
{
    int st;
    kill(d->pid, SIGTERM);
    ck_assert_int_eq(waitpid(d->pid, &st, 0), d->pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "svc-recon exit status %d", st);
    tu_pg_drop_schema(d->schema);
}

/* Every guarded route, the role it needs, and what that role gets. */
typedef struct route_case {
    const char *method, *path, *body;
    int need;   /* recon_role */
    long ok;    /* the status a caller with the role gets */
} route_case;

/* The paths of one batch's routes (route_cases()). */
typedef struct route_paths {
    char batch[200], disc[200], replay[250], windows[200], reconcile[200];
} route_paths;

#define NROUTES 8
/* Every guarded route of the API, for the batch. */
static void route_cases(const char *batch, route_paths *p, route_case out[NROUTES])
{
    snprintf(p->batch, sizeof(p->batch), "/batches/%s", batch);
    snprintf(p->disc, sizeof(p->disc), "/discrepancies?batch=%s", batch);
    /* nothing altered: the replay has nothing to read (the route and its role are tested) */
    snprintf(p->replay, sizeof(p->replay), "/replay?batch=%s&verdict=altered", batch);
    snprintf(p->windows, sizeof(p->windows), "/windows?dataset=payee&from=0&to=600000");
    snprintf(p->reconcile, sizeof(p->reconcile), "/reconcile?batch=%s", batch);
    const route_case cases[NROUTES] = {
        { "GET", "/batches", NULL, RECON_ROLE_VIEWER, 200 },
        { "GET", p->batch, NULL, RECON_ROLE_VIEWER, 200 },
        { "GET", p->disc, NULL, RECON_ROLE_VIEWER, 200 },
        { "GET", p->windows, NULL, RECON_ROLE_VIEWER, 200 },
        { "POST", p->replay, NULL, RECON_ROLE_OPERATOR, 200 },
        { "POST", p->reconcile, NULL, RECON_ROLE_OPERATOR, 200 },
        { "GET", "/retention", NULL, RECON_ROLE_VIEWER, 200 },
        { "PUT", "/retention", "{\"dataset\":\"payee\",\"days\":7}", RECON_ROLE_ADMIN, 200 },
    };
    memcpy(out, cases, sizeof(cases));
}

START_TEST(every_route_no_token_wrong_token_each_role)
{
    daemon_t d = { 0 };
    char batch[64], *tok[4] = { 0 };
    static const char *const ids[4] = { NULL, "view-1", "oper-1", "admin-1" };
    route_paths paths;
    route_case cases[NROUTES];

    snprintf(d.tokens, sizeof(d.tokens), "/tmp/recon_api_tokens_%s", tu_unique());
    unlink(d.tokens);
    for (int r = RECON_ROLE_VIEWER; r <= RECON_ROLE_ADMIN; r++)
        ck_assert_int_eq(token_add(d.tokens, ids[r], recon_role_name(r), &tok[r]), 0);
    daemon_start(&d, "rbac", NULL);
    snprintf(batch, sizeof(batch), "rbac-%s", tu_unique());
    emit_batch(d.topic, batch, 5);
    route_cases(batch, &paths, cases);

    /* wait until the daemon has applied the batch (an admin asks) */
    char auth[4][200], *text = NULL;
    for (int r = RECON_ROLE_VIEWER; r <= RECON_ROLE_ADMIN; r++)
        snprintf(auth[r], sizeof(auth[r]), "Bearer %s", tok[r]);
    int64_t deadline = core_mono_ms() + 60000;
    long code;
    while ((code = tu_http(d.port, "GET", paths.batch, auth[3], NULL, NULL)) != 200 &&
           core_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_int_eq(code, 200);
    char wrong[200];
    snprintf(wrong, sizeof(wrong), "Bearer tbr_%064d", 7);
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        const route_case *c = &cases[i];
        code = tu_http(d.port, c->method, c->path, NULL, c->body, &text);
        ck_assert_msg(code == 401, "%s %s without a token: %ld", c->method, c->path, code);
        cJSON *j = cJSON_Parse(text);
        ck_assert_msg(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "401 body: %s", text);
        cJSON_Delete(j);
        free(text);
        code = tu_http(d.port, c->method, c->path, wrong, c->body, NULL);
        ck_assert_msg(code == 401, "%s %s with a wrong token: %ld", c->method, c->path, code);
        code = tu_http(d.port, c->method, c->path, "Basic dXNlcjpwYXNz", c->body, NULL);
        ck_assert_msg(code == 401, "%s %s with Basic: %ld", c->method, c->path, code);
        for (int r = RECON_ROLE_VIEWER; r <= RECON_ROLE_ADMIN; r++) {
            long want = r >= c->need ? c->ok : 403;
            code = tu_http(d.port, c->method, c->path, auth[r], c->body, &text);
            ck_assert_msg(code == want, "%s %s as %s: %ld, not %ld (%s)", c->method, c->path,
                          recon_role_name(r), code, want, text);
            free(text);
        }
    }
    /* the open routes stay open */
    ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, NULL), 200);
    ck_assert_int_eq(tu_http(d.port, "GET", "/readyz", NULL, NULL, NULL), 200);
    ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, NULL), 200);

    /* a token added while the service runs works at once */
    char *late = NULL, lauth[200];
    ck_assert_int_eq(token_add(d.tokens, "view-late", "viewer", &late), 0);
    snprintf(lauth, sizeof(lauth), "Bearer %s", late);
    ck_assert_int_eq(tu_http(d.port, "GET", "/batches", lauth, NULL, NULL), 200);

    daemon_stop(&d);
    /* refusals logged with the token id ("unknown" without one), never a token */
    char *log = slurp(d.log);
    ck_assert_msg(strstr(log, "\"token_id\":\"unknown\"") != NULL, "no 401 line: %s", log);
    bool any_403 = false;
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++)
        any_403 |= cases[i].need > RECON_ROLE_VIEWER;
    ck_assert_msg(!any_403 || strstr(log, "\"token_id\":\"view-1\"") != NULL,
                  "no 403 line for view-1");
    for (int r = RECON_ROLE_VIEWER; r <= RECON_ROLE_ADMIN; r++)
        ck_assert_msg(strstr(log, tok[r] + 4) == NULL, "a token in the log");
    ck_assert_msg(strstr(log, late + 4) == NULL && strstr(log, wrong + 11) == NULL,
                  "a token in the log");
    free(log);
    unlink(d.log);
    unlink(d.tokens);
    for (int r = 0; r < 4; r++)
        free(tok[r]);
    free(late);
}
END_TEST

/* Deny by default: with no token file every API route is a 401, whatever
 * the caller sends; auth.open=true opens them all, with a warning naming it.
 * /healthz, /readyz, /metrics and the dashboard's page stay open either way. */
START_TEST(no_tokens_file_401_every_route_open_when_asked)
{
    char batch[64], *text = NULL;
    route_paths paths;
    route_case cases[NROUTES];
    long code;

    for (int open = 0; open <= 1; open++) {
        daemon_t d = { 0 }; /* d.tokens empty: no token file */
        daemon_start(&d, open ? "open" : "deny", open ? "--auth.open=true" : NULL);
        snprintf(batch, sizeof(batch), "%s-%s", open ? "open" : "deny", tu_unique());
        emit_batch(d.topic, batch, 5);
        route_cases(batch, &paths, cases);
        if (open) { /* wait until the daemon has applied the batch */
            int64_t deadline = core_mono_ms() + 60000;
            while ((code = tu_http(d.port, "GET", paths.batch, NULL, NULL, NULL)) != 200 &&
                   core_mono_ms() < deadline)
                usleep(200 * 1000);
            ck_assert_int_eq(code, 200);
        } else {
            usleep(1000 * 1000); /* time to apply it: a 401 must not be a 404 in disguise */
        }
        for (size_t i = 0; i < NROUTES; i++) {
            const route_case *c = &cases[i];
            long want = open ? c->ok : 401;
            code = tu_http(d.port, c->method, c->path, NULL, c->body, &text);
            ck_assert_msg(code == want, "%s %s, no token file, auth.open=%d: %ld, not %ld (%s)",
                          c->method, c->path, open, code, want, text);
            free(text);
            /* a token of any shape changes nothing */
            code = tu_http(d.port, c->method, c->path, "Bearer tbr_0123456789abcdef", c->body,
                           NULL);
            ck_assert_msg(code == want, "%s %s with a token, auth.open=%d: %ld", c->method,
                          c->path, open, code);
        }
        ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, NULL), 200);
        ck_assert_int_eq(tu_http(d.port, "GET", "/readyz", NULL, NULL, NULL), 200);
        ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, NULL), 200);
        ck_assert_int_eq(tu_http(d.port, "GET", "/dashboard", NULL, NULL, NULL), 200);
        daemon_stop(&d);
        char *log = slurp(d.log);
        if (open)
            ck_assert_msg(strstr(log, "\"setting\":\"auth.open\"") != NULL &&
                              strstr(log, "development only") != NULL,
                          "no warning naming auth.open: %s", log);
        else
            ck_assert_msg(strstr(log, "every API route answers 401") != NULL &&
                              strstr(log, "\"token_id\":\"unknown\"") != NULL,
                          "no start warning or 401 line: %s", log);
        free(log);
        unlink(d.log);
    }
}
END_TEST

/* The value of an unlabelled series (or the first with the prefix) in a
 * scrape; NAN when absent. */
static double scrape_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && (p[n] == ' ' || p[n] == '{'))
            return strtod(strchr(p + n, ' ') + 1, NULL);
    return NAN;
}

/* The daemon's lag gauges: a batch whose events are two hours old, read to
 * the end: nothing waits (lag_messages 0) and the newest event applied is
 * two hours old (lag_seconds); the windows gauge counts its window. */
START_TEST(audit_lag_and_windows_gauges)
{
    daemon_t d = { 0 };
    char batch[64], *text = NULL;
    int64_t ts = core_now_ms() - 2 * 3600 * 1000;
    double lag_s = NAN, lag_m = NAN, windows = 0;

    daemon_start(&d, "lag", "--close.interval.ms=200");
    snprintf(batch, sizeof(batch), "lag-%s", tu_unique());
    emit_batch_at(d.topic, batch, 20, ts);
    int64_t deadline = core_mono_ms() + 60000;
    while (core_mono_ms() < deadline) {
        ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, &text), 200);
        lag_s = scrape_value(text, "tributary_recon_audit_lag_seconds");
        lag_m = scrape_value(text, "tributary_recon_audit_lag_messages");
        windows = 0;
        static const char *const st[] = { "open", "closed", "reopened" };
        for (int k = 0; k < 3; k++) {
            char series[100];
            snprintf(series, sizeof(series), "tributary_recon_windows{state=\"%s\"}", st[k]);
            double v = scrape_value(text, series);
            windows += isnan(v) ? 0 : v;
        }
        free(text);
        if (lag_s >= 7000 && lag_m == 0 && windows >= 1)
            break;
        usleep(300 * 1000);
    }
    ck_assert_msg(lag_s >= 7190 && lag_s < 7400, "lag_seconds %f (events 2 h old)", lag_s);
    ck_assert_msg(lag_m == 0, "lag_messages %f after everything was applied", lag_m);
    ck_assert_msg(windows >= 1, "windows gauge %f", windows);
    daemon_stop(&d);
    unlink(d.log);
}
END_TEST


/* ---- replay ------------------------------------------------------------------------- */

/* The raw records of a batch on a topic of one partition: offset i is record i. */
static void produce_raw(const char *topic, const char *batch, int n)
{
    char err[512], id[128], key[32], val[64], ts[32];
    core_kafka_producer_t *p = tu_producer("5");
    tu_topic_create(topic, 1);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s-%04d", batch, i);
        snprintf(key, sizeof(key), "K%04d", i);
        snprintf(val, sizeof(val), "record %d", i);
        snprintf(ts, sizeof(ts), "%d", 1700000000 + i);
        core_kafka_header h[3] = { { "tb.id", id, strlen(id) },
                                   { "tb.batch", batch, strlen(batch) },
                                   { "tb.ingest.ts", ts, strlen(ts) } };
        ck_assert_msg(core_kafka_produce(p, topic, key, strlen(key), val, strlen(val), h, 3, NULL,
                                         err, sizeof(err)) == CORE_OK,
                      "%s", err);
        ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0); /* in order */
    }
    ck_assert_int_eq((int)core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);
}

/* One stage's event of record i of the batch (digest of "record i"). */
static void emit1(core_audit_t *a, const char *batch, int i, const char *outcome,
                  const char *topic, int64_t offset)
{
    char err[512], id[128], key[32], text[64];
    core_digest d;
    core_audit_event ev = CORE_AUDIT_EVENT_INIT;
    snprintf(id, sizeof(id), "%s-%04d", batch, i);
    snprintf(key, sizeof(key), "K%04d", i);
    snprintf(text, sizeof(text), "record %d", i);
    core_digest_sha256(text, strlen(text), &d);
    ev.id = id;
    ev.key = key;
    ev.dataset = "payee";
    ev.batch_id = batch;
    ev.outcome = outcome;
    ev.digest = &d;
    ev.version = 1;
    ev.topic = topic;
    if (offset != CORE_AUDIT_NONE) {
        ev.partition = 0;
        ev.offset = offset;
    }
    ck_assert_msg(core_audit_emit(a, &ev, err, sizeof(err)) == CORE_OK, "%s", err);
}

static long high_watermark(const char *topic)
{
    core_kafka_producer_t *p = tu_producer("5");
    int64_t lo, hi;
    ck_assert_int_eq(rd_kafka_query_watermark_offsets(core_kafka_producer_handle(p), topic, 0,
                                                      &lo, &hi, 10000),
                     0);
    core_kafka_producer_free(p);
    return (long)hi;
}

/* A tamperer drops records 1 and 3 between ingest and the validator; the
 * replay finds them on .raw, re-publishes them with their ids, key, value
 * and headers; the test, as validator and persister, handles what arrives;
 * the batch is clean; the webhook and the metrics are checked on the way.
 * Long on purpose: one story, each step needing the state the one before
 * left (a daemon start costs seconds on this machine). */
/* Delete every record of partition 0 of topic below its high watermark
 * (what .raw's retention does); @returns the high watermark. */
static long drop_records(const char *topic)
{
    core_kafka_producer_t *p = tu_producer("5");
    rd_kafka_t *rk = core_kafka_producer_handle(p);
    int64_t lo, hi;
    ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000), 0);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = hi;
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteRecords(rk, &dr, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    ck_assert_msg(ev && rd_kafka_event_error(ev) == 0, "delete records: %s",
                  ev ? rd_kafka_event_error_string(ev) : "no answer");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
    rd_kafka_topic_partition_list_destroy(l);
    ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000), 0);
    ck_assert_int_eq(lo, hi); /* nothing left to read */
    core_kafka_producer_free(p);
    return (long)hi;
}

/* Method full: the daemon keeps the batch's .raw records in its state; after
 * .raw lost them a replay takes the missing ones from the state and the
 * batch becomes clean; GET/PUT /retention; the purge deletes what is older
 * than the dataset's retention and nothing else. */
START_TEST(full_method_replay_from_state_and_retention)
{
    daemon_t d = { 0 };
    char batch[64], prefix[64], raw[128], extra[300], path[300], sql[600], *text = NULL;
    char *op = NULL, *vw = NULL, *ad = NULL, oauth[200], vauth[200], aauth[200], err[512];
    const int n = 6;

    snprintf(d.tokens, sizeof(d.tokens), "/tmp/recon_api_tokens_%s", tu_unique());
    unlink(d.tokens);
    ck_assert_int_eq(token_add(d.tokens, "op", "operator", &op), 0);
    ck_assert_int_eq(token_add(d.tokens, "vw", "viewer", &vw), 0);
    ck_assert_int_eq(token_add(d.tokens, "ad", "admin", &ad), 0);
    snprintf(oauth, sizeof(oauth), "Bearer %s", op);
    snprintf(vauth, sizeof(vauth), "Bearer %s", vw);
    snprintf(aauth, sizeof(aauth), "Bearer %s", ad);
    snprintf(prefix, sizeof(prefix), "f%s_", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    tu_topic_create(raw, 1);
    snprintf(extra, sizeof(extra),
             "--method=payee:full --topic.prefix=%s --retention.purge.interval.ms=300", prefix);
    daemon_start(&d, "full", extra);
    snprintf(batch, sizeof(batch), "full-%s", tu_unique());
    produce_raw(raw, batch, n);

    core_kafka_producer_t *p = tu_producer("5");
    core_audit_t *ing = core_audit_new(p, cat, d.topic, "ingest", err, sizeof(err));
    core_audit_t *val = core_audit_new(p, cat, d.topic, "validator", err, sizeof(err));
    core_audit_t *per = core_audit_new(p, cat, d.topic, "persister", err, sizeof(err));
    ck_assert(ing && val && per);
    for (int i = 0; i < n; i++) {
        emit1(ing, batch, i, "published", raw, CORE_AUDIT_NONE);
        if (i == 2 || i == 4)
            continue;
        emit1(val, batch, i, "valid", raw, i);
        emit1(per, batch, i, "persisted", "payee.valid", i);
    }
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);

    /* every record of the batch kept, with its bytes */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s'",
             d.schema, batch);
    int64_t deadline = core_mono_ms() + 60000;
    while (tu_pg_count(sql) < n && core_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_int_eq((long)tu_pg_count(sql), n);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s' AND value = "
             "convert_to('record 2', 'UTF8') AND key = convert_to('K0002', 'UTF8') AND topic = '%s'",
             d.schema, batch, raw);
    ck_assert_int_eq((long)tu_pg_count(sql), 1);

    /* the daemon names the two missing; then .raw loses every record */
    snprintf(path, sizeof(path), "/discrepancies?batch=%s&verdict=missing", batch);
    cJSON *j = NULL;
    deadline = core_mono_ms() + 60000;
    for (;;) {
        ck_assert_int_eq(tu_http(d.port, "GET", path, vauth, NULL, &text), 200);
        j = cJSON_Parse(text);
        free(text);
        if (cJSON_GetObjectItem(j, "total")->valuedouble == 2 || core_mono_ms() > deadline)
            break;
        cJSON_Delete(j);
        usleep(200 * 1000);
    }
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "total")->valuedouble, 2);
    cJSON_Delete(j);
    long hi0 = drop_records(raw);
    ck_assert_int_eq(hi0, n);

    /* the replay takes both from recon's state */
    snprintf(path, sizeof(path), "/replay?batch=%s", batch);
    ck_assert_int_eq(tu_http(d.port, "POST", path, oauth, NULL, &text), 200);
    j = cJSON_Parse(text);
    ck_assert_msg(cJSON_GetObjectItem(j, "published")->valuedouble == 2, "replay: %s", text);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "not_found")), 0);
    const cJSON *recs = cJSON_GetObjectItem(j, "records");
    for (int k = 0; k < cJSON_GetArraySize(recs); k++)
        ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, k), "source")->valuestring,
                         "state");
    free(text);
    cJSON_Delete(j);
    ck_assert_int_eq(high_watermark(raw), hi0 + 2);

    /* what arrived: records 2 and 4 as they were published */
    core_kafka_consumer_opts co = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    co.defaults = props;
    co.ndefaults = 1;
    co.group_id = "test-full-reader";
    core_kafka_consumer_t *kc = core_kafka_consumer_new(&co, err, sizeof(err));
    ck_assert_msg(kc != NULL, "%s", err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, raw, 0)->offset = hi0;
    ck_assert_int_eq(core_kafka_consumer_assign(kc, l, err, sizeof(err)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    deadline = core_mono_ms() + 30000;
    while (got < 2 && core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(kc, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        char b1[200], b2[200], want_id[128], want_val[32];
        int i = got == 0 ? 2 : 4;
        snprintf(want_id, sizeof(want_id), "%s-%04d", batch, i);
        snprintf(want_val, sizeof(want_val), "record %d", i);
        ck_assert_str_eq(tu_header(m, "tb.id", b1, sizeof(b1)), want_id);
        ck_assert_str_eq(tu_header(m, "tb.batch", b2, sizeof(b2)), batch);
        ck_assert_ptr_nonnull(tu_header(m, "tb.replay", b1, sizeof(b1)));
        ck_assert_int_eq((int)m->len, (int)strlen(want_val));
        ck_assert(memcmp(m->payload, want_val, m->len) == 0);
        emit1(val, batch, i, "valid", raw, m->offset);
        emit1(per, batch, i, "persisted", "payee.valid", 100 + i);
        rd_kafka_message_destroy(m);
        got++;
    }
    ck_assert_int_eq(got, 2);
    core_kafka_consumer_free(kc);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    core_audit_free(ing);
    core_audit_free(val);
    core_audit_free(per);
    core_kafka_producer_free(p);
    snprintf(path, sizeof(path), "/batches/%s", batch);
    deadline = core_mono_ms() + 60000;
    bool clean = false;
    while (!clean && core_mono_ms() < deadline) {
        ck_assert_int_eq(tu_http(d.port, "GET", path, vauth, NULL, &text), 200);
        j = cJSON_Parse(text);
        clean = cJSON_IsTrue(cJSON_GetObjectItem(j, "clean"));
        free(text);
        cJSON_Delete(j);
        if (!clean)
            usleep(200 * 1000);
    }
    ck_assert_msg(clean, "the batch is not clean after the replay from recon's state");

    /* retention: read by a viewer, set by an admin only, checked */
    ck_assert_int_eq(tu_http(d.port, "GET", "/retention", vauth, NULL, &text), 200);
    j = cJSON_Parse(text);
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "default_days")->valuedouble, 7);
    free(text);
    cJSON_Delete(j);
    const char *body = "{\"dataset\":\"payee\",\"days\":1}";
    ck_assert_int_eq(tu_http(d.port, "PUT", "/retention", oauth, body, NULL), 403);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/retention", aauth, "{\"dataset\":\"payee\"}", NULL),
                     400);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/retention", aauth,
                             "{\"dataset\":\"nosuch\",\"days\":1}", NULL), 400);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/retention", aauth,
                             "{\"dataset\":\"payee\",\"days\":0}", NULL), 400);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/retention", aauth, body, &text), 200);
    j = cJSON_Parse(text);
    const cJSON *ds0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "datasets"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ds0, "dataset")->valuestring, "payee");
    ck_assert_int_eq((int)cJSON_GetObjectItem(ds0, "days")->valuedouble, 1);
    free(text);
    cJSON_Delete(j);
    /* the purge: record 0 kept two days ago goes, record 1 kept 12 h ago stays */
    snprintf(sql, sizeof(sql),
             "UPDATE %s.payloads SET kept_ms = (extract(epoch from now()) * 1000)::bigint - "
             "CASE id WHEN '%s-0000' THEN 172800000 ELSE 43200000 END WHERE batch_id = '%s' AND "
             "id IN ('%s-0000', '%s-0001')",
             d.schema, batch, batch, batch, batch);
    PGconn *pg = tu_pg_connect();
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s'",
             d.schema, batch);
    deadline = core_mono_ms() + 20000;
    while (tu_pg_count(sql) != n - 1 && core_mono_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_int_eq((long)tu_pg_count(sql), n - 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE id = '%s-0000'",
             d.schema, batch);
    ck_assert_int_eq((long)tu_pg_count(sql), 0);
    usleep(700 * 1000); /* two more purges: record 1 (12 h, retention 1 day) stays */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE id = '%s-0001'",
             d.schema, batch);
    ck_assert_int_eq((long)tu_pg_count(sql), 1);

    daemon_stop(&d);
    unlink(d.log);
    unlink(d.tokens);
    free(op);
    free(vw);
    free(ad);
}
END_TEST

/* Method full without the daemon: `svc-recon report` standalone keeps the
 * .raw records too (the payload consumer's group, read to the end), so a
 * later replay can take them from the state; a second report keeps nothing
 * twice. A daemon whose payload consumer cannot be created exits 69 naming it. */
START_TEST(full_method_payloads_kept_by_standalone_report)
{
    char batch[64], prefix[64], raw[128], topic[128], schema[100], sql[600], err[512];
    char tflag[200], sflag[200], bflag[200], pflag[200], *out = NULL, *e2 = NULL;
    const int n = 5;

    snprintf(prefix, sizeof(prefix), "g%s_", tu_unique());
    snprintf(raw, sizeof(raw), "%spayee.raw", prefix);
    snprintf(topic, sizeof(topic), "audit.recon_fs_%s", tu_unique());
    snprintf(schema, sizeof(schema), "recon_t_fs_%s", tu_unique());
    snprintf(batch, sizeof(batch), "fs-%s", tu_unique());
    tu_topic_create(raw, 2);
    tu_topic_create(topic, 1);
    produce_raw(raw, batch, n);
    core_kafka_producer_t *p = tu_producer("5");
    core_audit_t *ing = core_audit_new(p, cat, topic, "ingest", err, sizeof(err));
    ck_assert(ing);
    for (int i = 0; i < n; i++)
        emit1(ing, batch, i, "published", raw, CORE_AUDIT_NONE);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    core_audit_free(ing);
    core_kafka_producer_free(p);

    snprintf(tflag, sizeof(tflag), "--audit.topic=%s", topic);
    snprintf(sflag, sizeof(sflag), "--state.schema=%s", schema);
    snprintf(bflag, sizeof(bflag), "--batch=%s", batch);
    snprintf(pflag, sizeof(pflag), "--topic.prefix=%s", prefix);
    char *argv[] = { (char *)tu_bin("svc-recon"), "report", bflag, "--json", tflag, sflag, pflag,
                     "--method=payee:full", "--group.id=fs-report-test", "--log.level=warn",
                     NULL };
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s'", schema,
             batch);
    for (int round = 0; round < 2; round++) {
        int rc = tu_run_cmd(argv, tu_env(true), &out, &e2, 120000);
        ck_assert_msg(rc == 0 || rc == 1, "report exit %d: %s", rc, e2);
        free(out);
        free(e2);
        ck_assert_int_eq((long)tu_pg_count(sql), n); /* all kept, none twice */
    }
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.payloads WHERE batch_id = '%s' AND value = "
             "convert_to('record 3', 'UTF8') AND key = convert_to('K0003', 'UTF8')",
             schema, batch);
    ck_assert_int_eq((long)tu_pg_count(sql), 1);

    /* the daemon: a payload consumer that cannot be created is an exit, named */
    char *dargv[] = { (char *)tu_bin("svc-recon"), tflag, sflag, pflag, "--method=payee:full",
                      "--http.port=0", "--kafka.max.poll.interval.ms=1", NULL };
    int drc = tu_run_cmd(dargv, tu_env(true), &out, &e2, 60000);
    ck_assert_int_eq(drc, 69);
    ck_assert_msg((out && strstr(out, "payload consumer")) || (e2 && strstr(e2, "payload consumer")),
                  "not named: %s / %s", out, e2);
    free(out);
    free(e2);
    tu_pg_drop_schema(schema);
}
END_TEST

START_TEST(replay_missing_records_batch_becomes_clean)
{
    daemon_t d = { 0 };
    char batch[64], raw[128], path[300], *op = NULL, *vw = NULL, auth[200], vauth[200], *text;
    const int n = 8;
    char err[512];

    snprintf(d.tokens, sizeof(d.tokens), "/tmp/recon_api_tokens_%s", tu_unique());
    unlink(d.tokens);
    ck_assert_int_eq(token_add(d.tokens, "op", "operator", &op), 0);
    ck_assert_int_eq(token_add(d.tokens, "vw", "viewer", &vw), 0);
    snprintf(auth, sizeof(auth), "Bearer %s", op);
    snprintf(vauth, sizeof(vauth), "Bearer %s", vw);
    char hook_flag[200];
    /* the webhook receiver: the first POST gets 503, the others 200 */
    snprintf(hook_flag, sizeof(hook_flag), "--alert.webhook.url=http://127.0.0.1:%d/hook",
             tu_hook_start(1));
    daemon_start(&d, "replay", hook_flag);
    snprintf(batch, sizeof(batch), "replay-%s", tu_unique());
    snprintf(raw, sizeof(raw), "payee_%s.raw", tu_unique());
    produce_raw(raw, batch, n);

    core_kafka_producer_t *p = tu_producer("5");
    core_audit_t *ing = core_audit_new(p, cat, d.topic, "ingest", err, sizeof(err));
    core_audit_t *val = core_audit_new(p, cat, d.topic, "validator", err, sizeof(err));
    core_audit_t *per = core_audit_new(p, cat, d.topic, "persister", err, sizeof(err));
    ck_assert(ing && val && per);
    for (int i = 0; i < n; i++) {
        emit1(ing, batch, i, "published", raw, CORE_AUDIT_NONE);
        if (i == 1 || i == 3)
            continue;
        emit1(val, batch, i, "valid", raw, i);
        emit1(per, batch, i, "persisted", "payee.valid", i);
    }
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);

    /* the daemon names the two records missing at the validator */
    snprintf(path, sizeof(path), "/discrepancies?batch=%s&verdict=missing", batch);
    int64_t deadline = core_mono_ms() + 60000;
    cJSON *j = NULL;
    for (;;) {
        ck_assert_int_eq(tu_http(d.port, "GET", path, vauth, NULL, &text), 200);
        j = cJSON_Parse(text);
        free(text);
        if (cJSON_GetObjectItem(j, "total")->valuedouble == 2 || core_mono_ms() > deadline)
            break;
        cJSON_Delete(j);
        usleep(200 * 1000);
    }
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "total")->valuedouble, 2);
    cJSON_Delete(j);
    /* the webhook: told once the batch is unclean (after a 503 and a retry) */
    j = tu_hook_wait(0, 60000);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "event")->valuestring, "batch.unclean");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "batch")->valuestring, batch);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "clean")));
    /* the first unclean reconciliation may come while events still arrive */
    double missing = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "counts"), "missing")->valuedouble;
    ck_assert_msg(missing >= 1 && missing <= 2, "missing %g", missing);
    cJSON_Delete(j);

    long hi0 = high_watermark(raw);
    ck_assert_int_eq(hi0, n);
    /* a viewer may not replay; a bad verdict is refused; an unknown batch is 404 */
    snprintf(path, sizeof(path), "/replay?batch=%s", batch);
    ck_assert_int_eq(tu_http(d.port, "POST", path, vauth, NULL, NULL), 403);
    snprintf(path, sizeof(path), "/replay?batch=%s&verdict=delivered", batch);
    ck_assert_int_eq(tu_http(d.port, "POST", path, auth, NULL, NULL), 400);
    ck_assert_int_eq(tu_http(d.port, "POST", "/replay", auth, NULL, NULL), 400);
    ck_assert_int_eq(tu_http(d.port, "POST", "/replay?batch=no-such", auth, NULL, NULL), 404);
    /* dry run: found, nothing published */
    snprintf(path, sizeof(path), "/replay?batch=%s&dry_run=true", batch);
    ck_assert_int_eq(tu_http(d.port, "POST", path, auth, NULL, &text), 200);
    j = cJSON_Parse(text);
    ck_assert_msg(cJSON_GetObjectItem(j, "found")->valuedouble == 2, "dry run: %s", text);
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "published")->valuedouble, 0);
    free(text);
    cJSON_Delete(j);
    ck_assert_int_eq(high_watermark(raw), hi0);
    /* the CLI's dry run agrees */
    {
        char tflag[200], sflag[200], bflag[200], *out = NULL, *e2 = NULL;
        snprintf(tflag, sizeof(tflag), "--audit.topic=%s", d.topic);
        snprintf(sflag, sizeof(sflag), "--state.schema=%s", d.schema);
        snprintf(bflag, sizeof(bflag), "--batch=%s", batch);
        char *argv[] = { (char *)tu_bin("svc-recon"), "replay", bflag, "--dry.run=true", tflag, sflag,
                         "--group.id=replay-cli-test", "--log.level=warn", NULL };
        ck_assert_int_eq(tu_run_cmd(argv, tu_env(true), &out, &e2, 120000), 0);
        cJSON *cj = cJSON_Parse(out);
        ck_assert_msg(cj && cJSON_GetObjectItem(cj, "found")->valuedouble == 2, "cli: %s / %s",
                      out, e2);
        cJSON_Delete(cj);
        free(out);
        free(e2);
        ck_assert_int_eq(high_watermark(raw), hi0);
    }

    /* the replay */
    snprintf(path, sizeof(path), "/replay?batch=%s", batch);
    ck_assert_int_eq(tu_http(d.port, "POST", path, auth, NULL, &text), 200);
    j = cJSON_Parse(text);
    ck_assert_msg(cJSON_GetObjectItem(j, "published")->valuedouble == 2, "replay: %s", text);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "not_found")), 0);
    char replay_id[64];
    snprintf(replay_id, sizeof(replay_id), "%s", cJSON_GetObjectItem(j, "replay_id")->valuestring);
    free(text);
    cJSON_Delete(j);
    ck_assert_int_eq(high_watermark(raw), hi0 + 2);

    /* what arrived on .raw: records 1 and 3 as they were, with the replay's id */
    core_kafka_consumer_opts co = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", "127.0.0.1:9092" } };
    co.defaults = props;
    co.ndefaults = 1;
    co.group_id = "test-replay-reader";
    core_kafka_consumer_t *kc = core_kafka_consumer_new(&co, err, sizeof(err));
    ck_assert_msg(kc != NULL, "%s", err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, raw, 0)->offset = hi0;
    ck_assert_int_eq(core_kafka_consumer_assign(kc, l, err, sizeof(err)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    deadline = core_mono_ms() + 30000;
    while (got < 2 && core_mono_ms() < deadline) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(kc, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        char b1[200], b2[200], b3[64], want_id[128], want_key[32], want_val[32], want_ts[32];
        int i = got == 0 ? 1 : 3;
        snprintf(want_id, sizeof(want_id), "%s-%04d", batch, i);
        snprintf(want_key, sizeof(want_key), "K%04d", i);
        snprintf(want_val, sizeof(want_val), "record %d", i);
        snprintf(want_ts, sizeof(want_ts), "%d", 1700000000 + i);
        ck_assert_str_eq(tu_header(m, "tb.id", b1, sizeof(b1)), want_id);
        ck_assert_str_eq(tu_header(m, "tb.batch", b2, sizeof(b2)), batch);
        ck_assert_str_eq(tu_header(m, "tb.ingest.ts", b3, sizeof(b3)), want_ts);
        ck_assert_str_eq(tu_header(m, "tb.replay", b1, sizeof(b1)), replay_id);
        ck_assert_int_eq((int)m->key_len, (int)strlen(want_key));
        ck_assert(memcmp(m->key, want_key, m->key_len) == 0);
        ck_assert_int_eq((int)m->len, (int)strlen(want_val));
        ck_assert(memcmp(m->payload, want_val, m->len) == 0);
        /* the test plays the validator and the persister for it */
        emit1(val, batch, i, "valid", raw, m->offset);
        emit1(per, batch, i, "persisted", "payee.valid", 100 + i);
        rd_kafka_message_destroy(m);
        got++;
    }
    ck_assert_int_eq(got, 2);
    core_kafka_consumer_free(kc);
    ck_assert_int_eq((int)core_kafka_producer_flush(p, 30000), 0);
    core_audit_free(ing);
    core_audit_free(val);
    core_audit_free(per);
    core_kafka_producer_free(p);

    /* the batch is clean now */
    snprintf(path, sizeof(path), "/batches/%s", batch);
    deadline = core_mono_ms() + 60000;
    bool clean = false;
    while (!clean && core_mono_ms() < deadline) {
        ck_assert_int_eq(tu_http(d.port, "GET", path, vauth, NULL, &text), 200);
        j = cJSON_Parse(text);
        clean = cJSON_IsTrue(cJSON_GetObjectItem(j, "clean"));
        free(text);
        cJSON_Delete(j);
        if (!clean)
            usleep(200 * 1000);
    }
    ck_assert_msg(clean, "the batch is not clean after the replay");
    /* the webhook: told it is clean again, and nothing more */
    j = tu_hook_wait(1, 60000);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "event")->valuestring, "batch.clean");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "clean")));
    cJSON_Delete(j);
    ck_assert_int_eq(tu_hook_taken(), 2);
    ck_assert_int_eq(tu_hook_calls(), 3);
    /* the metrics: the batch now counted clean, the replayed records, the
     * reconciliations, the webhooks (counted once the receiver answered:
     * after hook_wait saw the body, so waited for) */
    static const struct {
        const char *name, *filter;
        double want;
    } metrics[] = {
        { "tributary_recon_batches", "state=\"clean\"", 1 },
        { "tributary_recon_batches", "state=\"unclean\"", 0 },
        { "tributary_recon_replayed_records_total", "", 2 },
        { "tributary_recon_records", "verdict=\"delivered\"", 8 },
        { "tributary_recon_discrepancies", "verdict=\"missing\",stage=\"validator\"", 0 },
        { "tributary_recon_webhooks_total", "result=\"sent\"", 2 },
        { "tributary_recon_webhook_attempts_total", "result=\"failed\"", 1 },
    };
    for (size_t k = 0; k < sizeof(metrics) / sizeof(metrics[0]); k++) {
        double v = -1;
        size_t samples = 0;

        deadline = core_mono_ms() + 10000;
        while ((!(samples = tu_metric_sum(d.port, metrics[k].name, metrics[k].filter, &v)) ||
                v != metrics[k].want) &&
               core_mono_ms() < deadline)
            usleep(100 * 1000);
        ck_assert_msg(samples == 1 && v == metrics[k].want, "%s{%s}: %zu samples, %g, want %g",
                      metrics[k].name, metrics[k].filter, samples, v, metrics[k].want);
    }
    double count = 0;
    ck_assert_uint_eq(tu_metric_sum(d.port, "tributary_recon_reconcile_seconds_count", "", &count), 1);
    ck_assert(count >= 1);
    daemon_stop(&d);
    tu_hook_stop();
    unlink(d.log);
    unlink(d.tokens);
    free(op);
    free(vw);
}
END_TEST

/* ---- the dashboard in headless Chromium ---------------------------------------------- */

static int chromium(const char *mode, const char *url, char **out)
{
    char home[128], homeenv[160], *err = NULL;
    snprintf(home, sizeof(home), "/tmp/recon_chromium_%s", tu_unique());
    mkdir(home, 0700);
    snprintf(homeenv, sizeof(homeenv), "HOME=%s", home);
    char *envp[] = { homeenv, "PATH=/usr/bin:/bin", NULL };
    char *argv[] = { "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run", "--window-size=1100,900",
                     "--virtual-time-budget=20000", (char *)mode, (char *)url, NULL };
    int rc = tu_run_cmd(argv, envp, out, &err, 180000);
    free(err);
    return rc;
}

START_TEST(dashboard_shows_planted_records)
{
    daemon_t d = { 0 };
    char batch[64], path[200], *tok = NULL, auth[200], *text = NULL, url[600];

    ck_assert_msg(access("/usr/bin/chromium", X_OK) == 0,
                  "chromium missing: apt-get install chromium chromium-driver (deploy/local/deps.sh)");
    snprintf(d.tokens, sizeof(d.tokens), "/tmp/recon_api_tokens_%s", tu_unique());
    unlink(d.tokens);
    ck_assert_int_eq(token_add(d.tokens, "dash-viewer", "viewer", &tok), 0);
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    daemon_start(&d, "dash", NULL);
    snprintf(batch, sizeof(batch), "dash-%s", tu_unique());
    emit_batch(d.topic, batch, 6); /* record 0 never persisted */
    snprintf(path, sizeof(path), "/discrepancies?batch=%s", batch);
    int64_t deadline = core_mono_ms() + 60000;
    bool seen = false;
    while (!seen && core_mono_ms() < deadline) {
        if (tu_http(d.port, "GET", path, auth, NULL, &text) == 200)
            seen = strstr(text, "\"total\":1") != NULL;
        free(text);
        if (!seen)
            usleep(200 * 1000);
    }
    ck_assert(seen);
    /* the page and its script are open and come from the binary: no CDN */
    ck_assert_int_eq(tu_http(d.port, "GET", "/dashboard", NULL, NULL, &text), 200);
    ck_assert_ptr_nonnull(strstr(text, "/dashboard/app.js"));
    ck_assert_ptr_null(strstr(text, "http://"));
    ck_assert_ptr_null(strstr(text, "https://"));
    free(text);
    ck_assert_int_eq(tu_http(d.port, "GET", "/dashboard/app.js", NULL, NULL, &text), 200);
    ck_assert_ptr_null(strstr(text, "https://"));
    free(text);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/dashboard#token=%s&batch=%s", d.port, tok,
             batch);
    char *dom = NULL, rec[128];
    ck_assert_int_eq(chromium("--dump-dom", url, &dom), 0);
    snprintf(rec, sizeof(rec), "<td>%s-0000</td>", batch);
    ck_assert_msg(dom && strstr(dom, rec) != NULL, "record %s not on the page: %s", rec, dom);
    ck_assert_ptr_nonnull(strstr(dom, "<td>missing</td><td>persister</td>"));
    ck_assert_ptr_nonnull(strstr(dom, "class=\"unclean\""));
    snprintf(rec, sizeof(rec), "<a>%s</a>", batch);
    ck_assert_msg(strstr(dom, rec) != NULL, "batch not listed");
    snprintf(rec, sizeof(rec), "<td>%s-0001</td>", batch); /* a delivered record is not listed */
    ck_assert_ptr_null(strstr(dom, rec));
    free(dom);
    /* a screenshot into the build folder */
    char shot[600], flag[700];
    snprintf(shot, sizeof(shot), "%s/recon-dashboard.png", tu_build_dir());
    if (shot[0] != '/') {
        char cwd[400];
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
        snprintf(shot, sizeof(shot), "%s/%s/recon-dashboard.png", cwd, tu_build_dir());
    }
    unlink(shot);
    snprintf(flag, sizeof(flag), "--screenshot=%s", shot);
    ck_assert_int_eq(chromium(flag, url, NULL), 0);
    struct stat st;
    ck_assert_msg(stat(shot, &st) == 0 && st.st_size > 1000, "no screenshot at %s", shot);
    daemon_stop(&d);
    unlink(d.log);
    unlink(d.tokens);
    free(tok);
}
END_TEST

static void setup(void)
{
    char err[512];
    cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue: %s", err);
}

static void teardown(void)
{
    core_avro_catalog_free(cat);
    cat = NULL;
}

static Suite *api_suite(void)
{
    Suite *s = suite_create("recon_api");
    TCase *tc = tcase_create("rbac");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, token_tool_stores_only_the_hash);
    tcase_add_test(tc, route_roles);
    tcase_add_test(tc, every_route_no_token_wrong_token_each_role);
    tcase_add_test(tc, no_tokens_file_401_every_route_open_when_asked);
    tcase_add_test(tc, audit_lag_and_windows_gauges);
    tcase_add_test(tc, full_method_replay_from_state_and_retention);
    tcase_add_test(tc, full_method_payloads_kept_by_standalone_report);
    tcase_add_test(tc, replay_missing_records_batch_becomes_clean);
    tcase_add_test(tc, dashboard_shows_planted_records);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s[] = { api_suite() };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = tu_run(s, 1);
    curl_global_cleanup();
    return rc;
}
