/* auth.c — bearer tokens with roles (auth.h). */
#include "auth.h"

#include "tributary/core_common.h"
#include "tributary/core_config.h"
#include "tributary/core_digest.h"
#include "tributary/core_log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_MAX 64
#define TOKEN_PREFIX "tbr_"

typedef struct token {
    char id[ID_MAX + 1];
    int role;
    core_digest hash;
} token;

struct recon_auth {
    char *file;
    bool open;            /* auth.open=true and no file: every route open */
    pthread_mutex_t lock; /* toks, ntoks, the file's identity */
    token *toks;
    size_t ntoks;
    struct stat seen;
};

static const char *const role_names[] = { "open", "viewer", "operator", "admin" };

int recon_role_parse(const char *s)
{
    for (int i = RECON_ROLE_VIEWER; s && i <= RECON_ROLE_ADMIN; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

const char *recon_role_name(int role)
{
    return role >= 0 && role <= RECON_ROLE_ADMIN ? role_names[role] : "?";
}

recon_role recon_route_role(const char *method, const char *pattern)
{
    if (strcmp(pattern, "/dashboard") == 0 || strncmp(pattern, "/dashboard/", 11) == 0)
        return RECON_ROLE_OPEN;
    if (strncmp(pattern, "/retention", 10) == 0) /* reading it is a viewer's */
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? RECON_ROLE_VIEWER
                                                                          : RECON_ROLE_ADMIN;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return RECON_ROLE_VIEWER;
    return RECON_ROLE_OPERATOR; /* POST /reconcile, POST /replay, anything else */
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parse the file into *out; CORE_OK or an error with err naming the line. */
static int load_file(const char *file, token **out, size_t *nout, struct stat *st, char *err,
                     size_t errsize)
{
    FILE *f = fopen(file, "r");
    char line[512];
    token *v = NULL;
    size_t n = 0, cap = 0;
    int lineno = 0;

    if (!f) {
        snprintf(err, errsize, "auth.tokens.file: %s: %s", file, strerror(errno));
        return CORE_ERR_IO;
    }
    if (fstat(fileno(f), st) != 0)
        memset(st, 0, sizeof(*st));
    while (fgets(line, sizeof(line), f)) {
        char id[ID_MAX + 2], role[16], hex[80], extra[2];
        int k;

        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        k = sscanf(p, "%65s %15s %79s %1s", id, role, hex, extra);
        token t = { 0 };
        if (k != 3 || !id_ok(id) || (t.role = recon_role_parse(role)) < 0 || strlen(hex) != 64 ||
            core_digest_from_hex(hex, &t.hash) != CORE_OK) {
            snprintf(err, errsize,
                     "auth.tokens.file: %s line %d: not '<id> <viewer|operator|admin> "
                     "<sha256 hex>'",
                     file, lineno);
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].id, id) == 0) {
                snprintf(err, errsize, "auth.tokens.file: %s line %d: token id '%s' twice",
                         file, lineno, id);
                goto fail;
            }
        memcpy(t.id, id, strlen(id) + 1); /* id_ok: at most ID_MAX */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            token *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                snprintf(err, errsize, "auth.tokens.file: out of memory");
                goto fail;
            }
            v = nv;
            cap = nc;
        }
        v[n++] = t;
    }
    fclose(f);
    *out = v;
    *nout = n;
    return CORE_OK;
fail:
    fclose(f);
    free(v);
    return CORE_ERR_INVALID;
}

recon_auth *recon_auth_new(const char *file, bool open, char *err, size_t errsize)
{
    recon_auth *a = calloc(1, sizeof(*a));

    if (!a) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    if (!file || !*file) {
        a->open = open;
        return a;
    }
    if (!(a->file = strdup(file))) {
        snprintf(err, errsize, "out of memory");
        recon_auth_free(a);
        return NULL;
    }
    if (load_file(file, &a->toks, &a->ntoks, &a->seen, err, errsize) != CORE_OK) {
        recon_auth_free(a);
        return NULL;
    }
    return a;
}

void recon_auth_free(recon_auth *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a->toks);
    free(a->file);
    free(a);
}

bool recon_auth_enabled(const recon_auth *a)
{
    return a && a->file;
}

bool recon_auth_open(const recon_auth *a)
{
    return a && a->open;
}

/* Under lock: read the file again when it is not the one read last. */
static void reload_if_changed(recon_auth *a)
{
    struct stat st;
    token *v;
    size_t n;
    char err[400];

    if (stat(a->file, &st) != 0 ||
        (st.st_ino == a->seen.st_ino && st.st_size == a->seen.st_size &&
         st.st_mtim.tv_sec == a->seen.st_mtim.tv_sec &&
         st.st_mtim.tv_nsec == a->seen.st_mtim.tv_nsec))
        return;
    if (load_file(a->file, &v, &n, &st, err, sizeof(err)) != CORE_OK) {
        core_log_error("token file unusable; the previous tokens stay", CLF_S("reason", err));
        a->seen = st; /* once per change, not once per request */
        return;
    }
    free(a->toks);
    a->toks = v;
    a->ntoks = n;
    a->seen = st;
    core_log_info("token file read again", CLF_S("file", a->file), CLF_I("tokens", (int64_t)n));
}

int recon_auth_check(recon_auth *a, const char *authorization, char *id, size_t idsize)
{
    core_digest h;
    int role = 0;

    snprintf(id, idsize, "unknown");
    if (!a || !a->file || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *tok = authorization + 7;
    tok += strspn(tok, " ");
    size_t len = strcspn(tok, " \t");
    if (len == 0 || tok[len])
        return 0;
    core_digest_sha256(tok, len, &h);
    pthread_mutex_lock(&a->lock);
    reload_if_changed(a);
    /* every entry compared in constant time: the answer's time says nothing */
    for (size_t i = 0; i < a->ntoks; i++)
        if (CRYPTO_memcmp(a->toks[i].hash.b, h.b, sizeof(h.b)) == 0 && !role) {
            role = a->toks[i].role;
            snprintf(id, idsize, "%s", a->toks[i].id);
        }
    pthread_mutex_unlock(&a->lock);
    return role;
}

static void deny(core_http_response *resp, int status, const char *msg)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = core_http_printf("{\"error\":\"%s\"}", msg);
}

bool recon_auth_guard(const core_http_request *req, const char *pattern,
                      core_http_response *resp, void *opaque)
{
    recon_auth *a = opaque;
    recon_role need = recon_route_role(req->method, pattern);
    char id[ID_MAX + 1];
    int role;

    if (need == RECON_ROLE_OPEN || recon_auth_open(a))
        return true;
    /* no token file: role 0 for everyone, so every guarded route is a 401 */
    role = recon_auth_check(a, core_http_header(req, "Authorization"), id, sizeof(id));
    if (role >= (int)need)
        return true;
    if (role == 0) {
        core_log_warn("api: unauthenticated request refused", CLF_S("token_id", id),
                      CLF_S("method", req->method), CLF_S("path", req->path),
                      CLF_I("status", 401));
        deny(resp, 401, "a valid bearer token is required (Authorization: Bearer <token>)");
    } else {
        core_log_warn("api: request refused: role too low", CLF_S("token_id", id),
                      CLF_S("role", recon_role_name(role)),
                      CLF_S("needs", recon_role_name((int)need)), CLF_S("method", req->method),
                      CLF_S("path", req->path), CLF_I("status", 403));
        char msg[128];
        snprintf(msg, sizeof(msg), "role %s needed (token has %s)", recon_role_name((int)need),
                 recon_role_name(role));
        deny(resp, 403, msg);
    }
    return false;
}

/* ---- svc-recon token add ---------------------------------------------------- */

static int token_usage(const char *why)
{
    fprintf(stderr,
            "svc-recon: token: %s\n"
            "usage: svc-recon token add --id NAME --role viewer|operator|admin --file FILE\n",
            why);
    return CORE_EX_USAGE;
}

/* --name VALUE or --name=VALUE at argv[*i]; NULL when not this option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int token_append(const char *file, const char *id, int role, const char *hex)
{
    token *v = NULL;
    size_t n = 0;
    struct stat st;
    char err[400], line[256];
    int fd, rc = 0;

    if (access(file, F_OK) == 0) {
        if (load_file(file, &v, &n, &st, err, sizeof(err)) != CORE_OK) {
            fprintf(stderr, "svc-recon: token: %s\n", err);
            return CORE_EX_DATAERR;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].id, id) == 0) {
                fprintf(stderr, "svc-recon: token: id '%s' already in %s\n", id, file);
                free(v);
                return CORE_EX_DATAERR;
            }
        free(v);
    }
    fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "svc-recon: token: %s: %s\n", file, strerror(errno));
        return CORE_EX_SOFTWARE;
    }
    int len = snprintf(line, sizeof(line), "%s %s %s\n", id, recon_role_name(role), hex);
    if (write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
        fprintf(stderr, "svc-recon: token: %s: %s\n", file, strerror(errno));
        rc = CORE_EX_SOFTWARE;
    }
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "svc-recon: token: %s: %s\n", file, strerror(errno));
        rc = CORE_EX_SOFTWARE;
    }
    return rc;
}

int recon_token_main(int argc, char **argv)
{
    const char *id = NULL, *role_s = NULL, *file = NULL, *v;
    unsigned char raw[32];
    char tok[sizeof(TOKEN_PREFIX) + 64], hex[CORE_DIGEST_LEN * 2 + 1];
    core_digest h;
    int role, rc;

    if (argc < 3 || strcmp(argv[2], "add") != 0)
        return token_usage("the only action is 'add'");
    for (int i = 3; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--id")))
            id = v;
        else if ((v = opt_value(argc, argv, &i, "--role")))
            role_s = v;
        else if ((v = opt_value(argc, argv, &i, "--file")))
            file = v;
        else
            return token_usage("unknown argument");
    }
    if (!id || !role_s || !file || !*file)
        return token_usage("--id, --role and --file are required");
    if (!id_ok(id))
        return token_usage("--id: 1 to 64 of A-Z a-z 0-9 . _ -");
    if ((role = recon_role_parse(role_s)) < 0)
        return token_usage("--role: viewer, operator or admin");
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        fprintf(stderr, "svc-recon: token: no random bytes from OpenSSL\n");
        return CORE_EX_SOFTWARE;
    }
    memcpy(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(tok + strlen(TOKEN_PREFIX) + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    core_digest_sha256(tok, strlen(tok), &h);
    core_digest_to_hex(&h, hex);
    if ((rc = token_append(file, id, role, hex)) == 0) {
        printf("%s\n", tok);
        fflush(stdout);
    }
    OPENSSL_cleanse(tok, sizeof(tok));
    return rc;
}
