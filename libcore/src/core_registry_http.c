/* core_registry_http.c — the Schema Registry client's transport: REST over
 * libcurl (one easy handle, kept alive between requests), basic auth or a
 * bearer token read from a file at each request (a rotated token is
 * picked up), TLS settings, timeouts, retries with backoff and jitter. */
#include "core_registry_int.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_retry.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_MAX_ANSWER (4u * 1024u * 1024u)
#define REG_MAX_TOKEN 16384u

struct reg_http {
    CURL *curl;
    char *url; /* base, without a trailing '/' */
    char *basic_auth;
    char *token_file;
    char *ca_file, *cert_file, *key_file;
    bool insecure;
    int connect_timeout_ms, timeout_ms, retries;
    core_backoff backoff;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_OK;

static void curl_init(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src || !*src)
        return true;
    return (*dst = strdup(src)) != NULL;
}

void reg_http_free(reg_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h->url);
    free(h->basic_auth);
    free(h->token_file);
    free(h->ca_file);
    free(h->cert_file);
    free(h->key_file);
    free(h);
}

reg_http *reg_http_new(const core_registry_conf *c, char *errstr, size_t errstr_size)
{
    reg_http *h;
    size_t n;

    if (!c->url || (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)) {
        core_errstr(errstr, errstr_size, "schema.registry.url: must start with http:// or "
                                         "https:// (got '%s')", c->url ? c->url : "");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_rc != CURLE_OK) {
        core_errstr(errstr, errstr_size, "registry: curl_global_init: %s",
                    curl_easy_strerror(curl_rc));
        return NULL;
    }
    if (!(h = calloc(1, sizeof(*h))) || !(h->curl = curl_easy_init()) ||
        !dup_opt(&h->url, c->url) || !dup_opt(&h->basic_auth, c->basic_auth) ||
        !dup_opt(&h->token_file, c->bearer_token_file) || !dup_opt(&h->ca_file, c->ca_file) ||
        !dup_opt(&h->cert_file, c->cert_file) || !dup_opt(&h->key_file, c->key_file)) {
        core_errstr(errstr, errstr_size, "registry: out of memory");
        reg_http_free(h);
        return NULL;
    }
    for (n = strlen(h->url); n > 0 && h->url[n - 1] == '/'; n--)
        h->url[n - 1] = '\0';
    h->insecure = c->insecure;
    h->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 2000;
    h->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 5000;
    h->retries = c->retries > 0 ? c->retries : 0;
    h->backoff.base_ms = c->retry_backoff_ms > 0 ? c->retry_backoff_ms : 100;
    h->backoff.max_ms = c->retry_backoff_max_ms > 0 ? c->retry_backoff_max_ms : 2000;
    h->backoff.multiplier = 2.0;
    h->backoff.jitter = 0.5;
    if (h->token_file) { /* readable now, or a clear error at start */
        char *t = core_read_file(h->token_file, REG_MAX_TOKEN, &n, errstr, errstr_size);

        if (!t) {
            char why[256];

            snprintf(why, sizeof(why), "%s", errstr);
            core_errstr(errstr, errstr_size, "schema.registry.bearer.auth.file: %s", why);
            reg_http_free(h);
            return NULL;
        }
        free(t);
    }
    return h;
}

struct sink {
    char *buf;
    size_t len, cap;
    bool over;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *opaque)
{
    struct sink *s = opaque;
    size_t n = size * nmemb;

    if (s->len + n + 1 > REG_MAX_ANSWER) {
        s->over = true;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        char *b;

        while (cap < s->len + n + 1)
            cap *= 2;
        if (!(b = realloc(s->buf, cap)))
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

/* The bearer token: the file's first line, trimmed. */
static char *read_token(const char *file, char *errstr, size_t errstr_size)
{
    size_t n;
    char *t = core_read_file(file, REG_MAX_TOKEN, &n, errstr, errstr_size), *e;

    if (!t)
        return NULL;
    if ((e = strpbrk(t, "\r\n")))
        *e = '\0';
    for (n = strlen(t); n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'); n--)
        t[n - 1] = '\0';
    return t;
}

/* One attempt. CORE_OK: an answer in *a. */
static core_err_t attempt(reg_http *h, const char *method, const char *url, const char *body,
                          reg_answer *a, char *errstr, size_t errstr_size)
{
    struct curl_slist *hdrs = NULL, *nh;
    struct sink s = { 0 };
    char *token = NULL, *auth = NULL;
    char cerr[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    long status = 0;
    core_err_t err = CORE_ERR_NOMEM;
    CURL *c = h->curl;

    curl_easy_reset(c);
    if (h->token_file) {
        if (!(token = read_token(h->token_file, errstr, errstr_size)))
            return CORE_ERR_INVALID;
        if (!(auth = malloc(strlen(token) + 32)))
            goto out;
        sprintf(auth, "Authorization: Bearer %s", token);
        if (!(nh = curl_slist_append(hdrs, auth)))
            goto out;
        hdrs = nh;
    }
    if (!(nh = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
                                       "application/json")))
        goto out;
    hdrs = nh;
    if (body) {
        if (!(nh = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json")))
            goto out;
        hdrs = nh;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tributary-registry/" TB_VERSION);
    if (h->basic_auth) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, h->basic_auth);
    }
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    if (h->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file);
    if (h->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file);
    if (h->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        a->status = (int)status;
        a->body = s.buf ? s.buf : strdup("");
        a->len = s.len;
        s.buf = NULL;
        err = a->body ? CORE_OK : CORE_ERR_NOMEM;
    } else if (s.over) {
        core_errstr(errstr, errstr_size, "%s %s: answer over %u bytes", method, url,
                    REG_MAX_ANSWER);
        err = CORE_ERR_INVALID;
    } else {
        core_errstr(errstr, errstr_size, "%s %s: %s", method, url,
                    cerr[0] ? cerr : curl_easy_strerror(rc));
        err = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ? CORE_ERR_INVALID
              : rc == CURLE_OUT_OF_MEMORY                                   ? CORE_ERR_NOMEM
                                                                            : CORE_ERR_TRANSIENT;
    }
out:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(s.buf);
    if (auth) { /* the token does not stay in freed memory */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (err == CORE_ERR_NOMEM)
        core_errstr(errstr, errstr_size, "registry: out of memory");
    return err;
}

core_err_t reg_http_do(reg_http *h, const char *method, const char *path, const char *body,
                       reg_answer *a, uint64_t *nreq, char *errstr, size_t errstr_size)
{
    char *url = malloc(strlen(h->url) + strlen(path) + 1);
    core_err_t err = CORE_ERR_TRANSIENT;

    memset(a, 0, sizeof(*a));
    if (!url) {
        core_errstr(errstr, errstr_size, "registry: out of memory");
        return CORE_ERR_NOMEM;
    }
    sprintf(url, "%s%s", h->url, path);
    for (int n = 0; n <= h->retries; n++) {
        if (n > 0 && core_lifecycle_wait(core_backoff_delay_ms(&h->backoff, n)))
            break; /* stopping: no more attempts */
        (*nreq)++;
        err = attempt(h, method, url, body, a, errstr, errstr_size);
        if (err == CORE_OK && (a->status == 429 || a->status >= 500)) {
            core_errstr(errstr, errstr_size, "%s %s: HTTP %d: %.200s", method, url, a->status,
                        a->body);
            if (n < h->retries) {
                free(a->body);
                memset(a, 0, sizeof(*a));
            }
            err = CORE_ERR_TRANSIENT;
            continue;
        }
        if (err != CORE_ERR_TRANSIENT)
            break;
    }
    if (err != CORE_OK) {
        free(a->body);
        memset(a, 0, sizeof(*a));
    }
    free(url);
    return err;
}
