/* core_httpc.c — HTTP client over libcurl multi: bounded concurrency,
 * timeouts, connection reuse, error classes. */
#include "tributary/core_httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_CONCURRENCY 8
#define DEF_CONNECT_MS 2000
#define DEF_TIMEOUT_MS 5000
#define DEF_MAX_RESPONSE (1024u * 1024u)

struct core_httpc {
    CURLM *multi;
    CURL **pool;          /* idle easy handles (kept for their state) */
    size_t npool;
    int max_conc;
    long connect_ms;
    long timeout_ms;
    size_t max_response;
    char *user_agent;
    core_metric_family_t *f_lat, *f_req;
};

typedef struct slot {
    core_httpc_req *r;
    CURL *easy;
    struct curl_slist *hdrs;
    size_t cap;
    int toobig;
} slot;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

core_httpc_t *core_httpc_new(const core_httpc_opts *o, char *errstr, size_t errstr_size)
{
    static const char *const lat_labels[] = { "host", NULL };
    static const char *const req_labels[] = { "host", "class", NULL };
    core_httpc_opts d = { 0 };
    core_httpc_t *h;
    core_metrics_t *m;
    char ua[64];

    if (!o)
        o = &d;
    if (o->max_concurrency < 0 || o->connect_timeout_ms < 0 || o->timeout_ms < 0) {
        core_errstr(errstr, errstr_size, "httpc: negative concurrency or timeout");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        core_errstr(errstr, errstr_size, "httpc: curl_global_init: %s",
                    curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        core_errstr(errstr, errstr_size, "httpc: out of memory");
        return NULL;
    }
    h->max_conc = o->max_concurrency ? o->max_concurrency : DEF_CONCURRENCY;
    h->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONNECT_MS;
    h->timeout_ms = o->timeout_ms ? o->timeout_ms : DEF_TIMEOUT_MS;
    h->max_response = o->max_response ? o->max_response : DEF_MAX_RESPONSE;
#ifdef TB_VERSION
    snprintf(ua, sizeof(ua), "tributary/%s", TB_VERSION);
#else
    snprintf(ua, sizeof(ua), "tributary");
#endif
    h->user_agent = strdup(o->user_agent ? o->user_agent : ua);
    h->pool = calloc((size_t)h->max_conc, sizeof(*h->pool));
    h->multi = curl_multi_init();
    if (!h->user_agent || !h->pool || !h->multi) {
        core_errstr(errstr, errstr_size, "httpc: out of memory");
        core_httpc_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)h->max_conc);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->max_conc * 2);
    m = o->metrics ? o->metrics : core_metrics_global();
    h->f_lat = core_metrics_family(m, CORE_METRIC_HISTOGRAM, "tributary_httpc_request_seconds",
                                   "HTTP client request duration", lat_labels, NULL, 0, NULL, 0);
    h->f_req = core_metrics_family(m, CORE_METRIC_COUNTER, "tributary_httpc_requests_total",
                                   "HTTP client requests by answer class", req_labels, NULL, 0,
                                   NULL, 0);
    return h;
}

void core_httpc_free(core_httpc_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->npool; i++)
        curl_easy_cleanup(h->pool[i]);
    free(h->pool);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    free(h->user_agent);
    free(h);
}

void core_httpc_req_clear(core_httpc_req *r)
{
    if (!r)
        return;
    free(r->resp);
    r->resp = NULL;
    r->resp_len = 0;
}

core_err_t core_httpc_status_class(int status)
{
    if (status >= 200 && status < 300)
        return CORE_OK;
    if (status == 408 || status == 429 || (status >= 500 && status < 600))
        return CORE_ERR_TRANSIENT;
    return CORE_ERR_INVALID;
}

char *core_httpc_escape(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1), *p = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    slot *s = user;
    core_httpc_req *r = s->r;
    size_t n = size * nmemb;
    if (r->resp_len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        char *nb;

        while (cap < r->resp_len + n + 1)
            cap *= 2;
        nb = realloc(r->resp, cap);
        if (!nb)
            return 0;
        r->resp = nb;
        s->cap = cap;
    }
    memcpy(r->resp + r->resp_len, data, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

static size_t on_body_bounded(char *data, size_t size, size_t nmemb, void *user);

/* Host part of a URL for the metric label (bounded cardinality: hosts are
 * configured, not user data). */
static void url_host(const char *url, char *buf, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    n = strcspn(p, "/?#");
    if (n >= size)
        n = size - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

static CURL *take_easy(core_httpc_t *h)
{
    if (h->npool > 0)
        return h->pool[--h->npool];
    return curl_easy_init();
}

static void give_easy(core_httpc_t *h, CURL *e)
{
    if ((int)h->npool < h->max_conc) {
        curl_easy_reset(e);
        h->pool[h->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static int start_one(core_httpc_t *h, slot *s, core_httpc_req *r, size_t max_response)
{
    const char *method = r->method ? r->method : "GET";
    char ct[160];

    (void)max_response;
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->easy = take_easy(h);
    if (!s->easy)
        return -1;
    curl_easy_setopt(s->easy, CURLOPT_URL, r->url);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? (long)r->timeout_ms
                                                                     : h->timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body_bounded);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(s->easy, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    if (r->body) {
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 r->content_type ? r->content_type : "application/json");
        s->hdrs = curl_slist_append(s->hdrs, ct);
        s->hdrs = curl_slist_append(s->hdrs, "Expect:");
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    }
    if (curl_multi_add_handle(h->multi, s->easy) != CURLM_OK) {
        curl_slist_free_all(s->hdrs);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
        return -1;
    }
    return 0;
}

/* The bound of the current perform() call (one handle per thread). */
static __thread size_t tl_max_response;

static size_t on_body_bounded(char *data, size_t size, size_t nmemb, void *user)
{
    slot *s = user;

    if (s->r->resp_len + size * nmemb > tl_max_response) {
        s->toobig = 1;
        return 0;
    }
    return on_body(data, size, nmemb, user);
}

static void finish_one(core_httpc_t *h, slot *s, CURLcode cc)
{
    core_httpc_req *r = s->r;
    long code = 0;
    double t = 0;
    char host[128];
    const char *cls;

    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(s->easy, CURLINFO_TOTAL_TIME, &t);
    r->seconds = t;
    if (cc == CURLE_OK) {
        r->err = CORE_OK;
        r->status = (int)code;
        r->errstr[0] = '\0';
    } else {
        r->status = 0;
        if (s->toobig) {
            r->err = CORE_ERR_TOOBIG;
            snprintf(r->errstr, sizeof(r->errstr), "answer larger than %zu bytes",
                     h->max_response);
        } else {
            switch (cc) {
            case CURLE_URL_MALFORMAT:
            case CURLE_UNSUPPORTED_PROTOCOL:
            case CURLE_BAD_FUNCTION_ARGUMENT:
                r->err = CORE_ERR_INVALID;
                break;
            case CURLE_OUT_OF_MEMORY:
                r->err = CORE_ERR_NOMEM;
                break;
            default:
                r->err = CORE_ERR_TRANSIENT;
            }
            snprintf(r->errstr, sizeof(r->errstr), "%s", curl_easy_strerror(cc));
        }
    }
    if (!r->resp && r->err == CORE_OK)
        r->resp = calloc(1, 1);
    url_host(r->url ? r->url : "", host, sizeof(host));
    cls = r->err != CORE_OK ? "error"
        : r->status >= 500  ? "5xx"
        : r->status >= 400  ? "4xx"
        : r->status >= 300  ? "3xx"
                            : "2xx";
    core_metric_observe(core_metrics_series1(h->f_lat, host), t);
    core_metric_inc(core_metrics_series2(h->f_req, host, cls));
    curl_multi_remove_handle(h->multi, s->easy);
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    give_easy(h, s->easy);
    s->easy = NULL;
}

core_err_t core_httpc_perform(core_httpc_t *h, core_httpc_req *reqs, size_t n)
{
    slot *slots;
    size_t next = 0, done = 0;
    int running = 0;
    core_err_t rc = CORE_OK;

    if (!h || (!reqs && n))
        return CORE_ERR_INVALID;
    if (n == 0)
        return CORE_OK;
    slots = calloc(n, sizeof(*slots));
    if (!slots)
        return CORE_ERR_NOMEM;
    tl_max_response = h->max_response;
    for (size_t i = 0; i < n; i++) {
        core_httpc_req_clear(&reqs[i]);
        reqs[i].err = CORE_ERR_TRANSIENT;
        reqs[i].status = 0;
        snprintf(reqs[i].errstr, sizeof(reqs[i].errstr), "not run");
    }
    while (done < n) {
        CURLMsg *msg;
        int left;

        while (next < n && running < h->max_conc) {
            if (!reqs[next].url) {
                reqs[next].err = CORE_ERR_INVALID;
                snprintf(reqs[next].errstr, sizeof(reqs[next].errstr), "no URL");
                next++;
                done++;
                continue;
            }
            if (start_one(h, &slots[next], &reqs[next], h->max_response) != 0) {
                reqs[next].err = CORE_ERR_NOMEM;
                snprintf(reqs[next].errstr, sizeof(reqs[next].errstr), "cannot start request");
                next++;
                done++;
                continue;
            }
            next++;
            running++;
        }
        if (done >= n)
            break;
        {
            int still = 0;
            CURLMcode mc = curl_multi_perform(h->multi, &still);

            if (mc != CURLM_OK) {
                rc = CORE_ERR_FATAL;
                break;
            }
        }
        while ((msg = curl_multi_info_read(h->multi, &left))) {
            slot *s = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            finish_one(h, s, msg->data.result);
            running--;
            done++;
        }
        if (done < n && running > 0)
            curl_multi_poll(h->multi, NULL, 0, 100, NULL);
    }
    /* On a multi failure, take back whatever is still attached. */
    for (size_t i = 0; i < next; i++)
        if (slots[i].easy) {
            curl_multi_remove_handle(h->multi, slots[i].easy);
            curl_slist_free_all(slots[i].hdrs);
            curl_easy_cleanup(slots[i].easy);
            slots[i].easy = NULL;
        }
    free(slots);
    return rc;
}
