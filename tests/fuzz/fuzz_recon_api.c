/* fuzz_recon_api.c — libFuzzer target for the request parsing of
 * svc-recon's HTTP API (svc-recon/api.c, api_windows.c, auth.c): query
 * strings (core_http_query_param(): percent-decoding, '+', repeated and
 * valueless parameters), the batch id path parameter of /batches/{id}, the
 * times of /windows and /reconcile (recon_parse_time()), and the bearer
 * token of the Authorization header. No network: the handlers are called
 * directly (api.c and api_windows.c are compiled into this file for their
 * static handlers), and the PostgreSQL they would open is a socket folder
 * that does not exist, so a request that parses gets 503 and nothing else.
 *
 * Input: byte 0 picks the route (GET /batches, GET /batches/{id},
 * GET /discrepancies, POST /replay, GET /windows, POST /reconcile); then,
 * one a line: the path after "/batches/", the query string, the
 * Authorization header; the rest is the body.
 *
 * Invariants (abort on breach):
 *  - every answer is 400, 404 or 503 (nothing can succeed without the
 *    database) with a JSON body {"error": "..."} that cJSON parses;
 *  - a parameter read twice gives the same answer; a decoded value never
 *    holds more bytes than its buffer;
 *  - a token is accepted only when it is the one in the token file, with
 *    that entry's id and role;
 *  - recon_parse_time() accepts a value exactly when it gives ms;
 *  - nothing crashes, leaks or reads out of bounds.
 *
 * Build and run: make build/fuzz/fuzz_recon_api && build/fuzz/fuzz_recon_api tests/fuzz/corpus/fuzz_recon_api */
#include "fuzz_util.h"

#include "../../svc-recon/api.c"
#include "../../svc-recon/api_windows.c"
#include "../../svc-recon/auth.h"

#include "tributary/core_digest.h"

#define TOKEN "fuzz-operator-token-0123456789"

static recon_api *api(void)
{
    static recon_api a;
    static int done;

    if (!done) {
        memset(&a, 0, sizeof(a));
        recon_api_init(&a);
        a.pg.conninfo = "host=/nonexistent/tributary-fuzz dbname=recon";
        a.pg.schema = "recon";
        a.rec.schema = "recon";
        a.page_size = 50;
        a.cat = fuzz_catalog();
        a.window_ms = 60000;
        done = 1;
    }
    return &a;
}

static recon_auth *auth(void)
{
    static recon_auth *a;
    static char path[64];
    char line[200], hex[CORE_DIGEST_HEX_LEN + 1], err[512];
    core_digest d;
    int fd;

    if (a)
        return a;
    core_digest_sha256(TOKEN, strlen(TOKEN), &d);
    core_digest_to_hex(&d, hex);
    snprintf(line, sizeof(line), "# fuzz\nfuzz-op operator %s\n", hex);
    fd = fuzz_file(line, strlen(line), path); /* kept open: the file stays */
    FUZZ_CHECK(fd >= 0, "token file");
    a = recon_auth_new(path, false, err, sizeof(err));
    FUZZ_CHECK(a != NULL, "token file: %s", err);
    return a;
}

/* The next line of *p (up to end), NUL-terminated in a malloc'd copy. */
static char *next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl ? nl : end) - *p);
    char *s = malloc(n + 1);

    FUZZ_CHECK(s, "out of memory");
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

static void check_params(const core_http_request *req)
{
    static const char *const names[] = { "batch", "page", "verdict", "dry_run",
                                         "dataset", "from", "to" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char a[64], b[64];
        int ra = core_http_query_param(req, names[i], a, sizeof(a));
        int rb = core_http_query_param(req, names[i], b, sizeof(b));
        FUZZ_CHECK(ra == rb && strcmp(a, b) == 0, "%s read twice: %d, %d", names[i], ra, rb);
        FUZZ_CHECK(memchr(a, 0, sizeof(a)) != NULL, "%s not terminated", names[i]);
        if (ra == CORE_OK && (!strcmp(names[i], "from") || !strcmp(names[i], "to"))) {
            int64_t ms = -1;
            int rt = recon_parse_time(a, &ms);
            FUZZ_CHECK(rt == 0 || rt == -1, "parse_time %d", rt);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        const char *method, *path;
        core_http_handler fn;
    } routes[] = {
        { "GET", "/batches", h_batches },   { "GET", "/batches/", h_batch },
        { "GET", "/discrepancies", h_discrepancies }, { "POST", "/replay", h_replay },
        { "GET", "/windows", h_windows },   { "POST", "/reconcile", h_reconcile },
    };
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *suffix, *query, *authz, *path, *body, id[80];
    core_http_request req;
    core_http_response resp;
    unsigned k;
    int role;

    if (size < 1 || size > 65536)
        return 0;
    k = data[0] % (sizeof(routes) / sizeof(routes[0]));
    suffix = next_line(&p, end);
    query = next_line(&p, end);
    authz = next_line(&p, end);
    body = malloc((size_t)(end - p) + 1);
    FUZZ_CHECK(body, "out of memory");
    memcpy(body, p, (size_t)(end - p));
    body[end - p] = '\0';
    path = malloc(strlen(routes[k].path) + strlen(suffix) + 1);
    FUZZ_CHECK(path, "out of memory");
    strcpy(path, routes[k].path);
    if (routes[k].fn == h_batch)
        strcat(path, suffix);

    memset(&req, 0, sizeof(req));
    req.method = routes[k].method;
    req.path = path;
    req.query = data[0] & 0x80 ? NULL : query;
    req.body = end > p ? body : NULL;
    req.body_len = (size_t)(end - p);
    check_params(&req);

    role = recon_auth_check(auth(), authz, id, sizeof(id));
    FUZZ_CHECK(role == 0 || role == RECON_ROLE_OPERATOR, "role %d", role);
    if (role) {
        FUZZ_CHECK(strstr(authz, TOKEN) && !strcmp(id, "fuzz-op"), "token accepted: id %s", id);
        FUZZ_CHECK(recon_route_role(req.method, routes[k].path) <= RECON_ROLE_OPERATOR,
                   "operator short of %s", routes[k].path);
    }

    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    routes[k].fn(&req, &resp, api());
    FUZZ_CHECK(resp.status == 400 || resp.status == 404 || resp.status == 503,
               "%s %s?%s answered %d", req.method, path, query, resp.status);
    FUZZ_CHECK(resp.body && resp.content_type && !strcmp(resp.content_type, "application/json"),
               "answer without a JSON body");
    cJSON *j = cJSON_Parse(resp.body);
    FUZZ_CHECK(j && cJSON_IsString(cJSON_GetObjectItem(j, "error")), "body %s", resp.body);
    cJSON_Delete(j);
    free(resp.body);
    free(path);
    free(body);
    free(authz);
    free(query);
    free(suffix);
    return 0;
}
