/* auth.h — svc-recon's role-based access: bearer tokens with roles, read
 * from a token file that keeps only each token's SHA-256.
 *
 * The token file (auth.tokens.file), one token a line, '#' comments:
 *
 *     <id> <role> <sha256 of the token, 64 hex digits>
 *
 * id: 1..64 of [A-Za-z0-9._-]; role: viewer < operator < admin. The file is
 * read at start and read again whenever it changes (its mtime, size or
 * inode), so `svc-recon token add` takes effect without a restart; a file
 * that turns bad keeps the previous table (logged).
 *
 * Every route the service adds is guarded (core_http_set_guard): GET and
 * HEAD need viewer (GET /retention too), POST /reconcile and POST /replay
 * operator, PUT /retention admin, any other method operator; the dashboard's page and assets are
 * open (they hold no data; the page asks the API with the token).
 * /healthz, /readyz and /metrics are never guarded. No token or an unknown
 * one: 401; a role too low: 403; both logged with the caller's token id
 * ("unknown" when there is none), never the token.
 *
 * Deny by default: without a token file every guarded route answers 401
 * (no token can be valid), unless auth.open=true (development only: then
 * every route is open, and a warning at start names the setting). A token
 * file, when given, always wins over auth.open. */
#ifndef SVC_RECON_AUTH_H
#define SVC_RECON_AUTH_H

#include "tributary/core_http.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum recon_role {
    RECON_ROLE_OPEN = 0, /* no token needed */
    RECON_ROLE_VIEWER = 1,
    RECON_ROLE_OPERATOR = 2,
    RECON_ROLE_ADMIN = 3,
} recon_role;

typedef struct recon_auth recon_auth;

/* "viewer", "operator", "admin" → the role; anything else -1. */
int recon_role_parse(const char *s);
const char *recon_role_name(int role);
/* The role a route needs (the table above). */
recon_role recon_route_role(const char *method, const char *pattern);

/**
 * @brief Load the token file. file NULL or "": no token is valid (every
 * guarded route 401), unless open (auth.open=true): every route open.
 * @returns the table, or NULL with err naming the file and line.
 */
recon_auth *recon_auth_new(const char *file, bool open, char *err, size_t errsize);
void recon_auth_free(recon_auth *a);
/* A token file is in use. */
bool recon_auth_enabled(const recon_auth *a);
/* No token file and auth.open=true: every route open. */
bool recon_auth_open(const recon_auth *a);

/**
 * @brief Who presents this Authorization header value: the role of the
 * token, 0 when there is none or it is unknown; its id into id (or
 * "unknown"). Thread-safe (re-reads the file when it changed).
 */
int recon_auth_check(recon_auth *a, const char *authorization, char *id, size_t idsize);

/* The core_http guard (opaque: the recon_auth). */
bool recon_auth_guard(const core_http_request *req, const char *pattern,
                      core_http_response *resp, void *opaque);

/**
 * @brief `svc-recon token add --id NAME --role ROLE --file F`: a new random
 * token, printed once on stdout; its hash appended to F (created 0600).
 * @returns the exit code (0, 64 usage, 65 a duplicate id, 74-ish I/O as 70).
 */
int recon_token_main(int argc, char **argv);

#endif
