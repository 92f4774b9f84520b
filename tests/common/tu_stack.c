/* tu_stack.c — the local stack as the integration tests see it (tu_stack.h). */
#include "tu_stack.h"
#include "testutil.h"
#include "tributary/core_common.h"
#include "tributary/core_http.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_DEADLINE_MS 120000
#define ADMIN_TIMEOUT_MS 20000

void tu_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

core_avro_catalog_t *tu_catalog_load(void)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));
    ck_assert_msg(cat != NULL, "catalogue %s: %s", tu_proto_dir(), err);
    return cat;
}

/* ---- Kafka ------------------------------------------------------------------ */

core_kafka_producer_t *tu_producer(const char *linger_ms)
{
    char err[512];
    core_kafka_producer_opts po = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", TU_BROKERS },
                                { "linger.ms", linger_ms ? linger_ms : "5" } };

    po.defaults = props;
    po.ndefaults = 2;
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    return p;
}

void tu_topic_create(const char *name, int partitions)
{
    char err[512];
    core_kafka_producer_t *p = tu_producer("0");
    rd_kafka_t *rk = core_kafka_producer_handle(p);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof(err));
    ck_assert_msg(nt != NULL, "topic %s: %s", name, err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS);
    ck_assert_msg(ev != NULL, "CreateTopics %s timed out", name);
    size_t n;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    ck_assert_int_eq((int)n, 1);
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[0]);
    ck_assert_msg(e == 0 || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, "create %s: %s", name,
                  rd_kafka_err2str(e));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    /* the topic is usable once its partitions have leaders */
    const struct rd_kafka_metadata *md = NULL;
    ck_assert_msg(core_kafka_topic_metadata(rk, name, ADMIN_TIMEOUT_MS, &md, err, sizeof(err)) ==
                      CORE_OK,
                  "topic %s has no leaders: %s", name, err);
    rd_kafka_metadata_destroy(md);
    core_kafka_producer_free(p);
}

void tu_topics_delete(const char *const *names, size_t n)
{
    char err[512];
    core_kafka_producer_opts po = { 0 };
    core_kafka_prop props[] = { { "bootstrap.servers", TU_BROKERS } };
    rd_kafka_DeleteTopic_t **dt;

    if (n == 0)
        return;
    po.defaults = props;
    po.ndefaults = 1;
    core_kafka_producer_t *p = core_kafka_producer_new(&po, err, sizeof(err));
    if (!p)
        return;
    dt = calloc(n, sizeof(*dt));
    if (dt) {
        rd_kafka_t *rk = core_kafka_producer_handle(p);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        for (size_t i = 0; i < n; i++)
            dt[i] = rd_kafka_DeleteTopic_new(names[i]);
        rd_kafka_DeleteTopics(rk, dt, n, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS);
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteTopic_destroy_array(dt, n);
        free(dt);
    }
    core_kafka_producer_free(p);
}

size_t tu_topic_read(const char *topic, const char *isolation, tu_record_fn *fn, void *user)
{
    static const core_kafka_prop defaults[] = { { "bootstrap.servers", TU_BROKERS } };
    const core_kafka_prop overrides[] = { { "enable.partition.eof", "true" },
                                          { "isolation.level", isolation } };
    static const core_kafka_prop wm_overrides[] = { { "enable.partition.eof", "true" },
                                                    { "isolation.level", "read_uncommitted" } };
    core_kafka_consumer_opts o = { 0 };
    const struct rd_kafka_metadata *md = NULL;
    char err[512], group[160];
    int np, ndone = 0;
    int64_t *hw;
    bool *done;
    size_t count = 0;
    int64_t deadline = core_mono_ms() + READ_DEADLINE_MS;

    snprintf(group, sizeof(group), "tu-read-%s", tu_unique());
    o.defaults = defaults;
    o.ndefaults = 1;
    o.overrides = overrides;
    o.noverrides = 2;
    o.group_id = group;
    core_kafka_consumer_t *c = core_kafka_consumer_new(&o, err, sizeof(err));
    ck_assert_msg(c != NULL, "consumer: %s", err);
    /* The real high watermarks: a read_committed client would answer the
     * last stable offset, which trails a commit until the coordinator has
     * written the markers. Read on until every partition reaches them. */
    o.overrides = wm_overrides;
    core_kafka_consumer_t *cw = core_kafka_consumer_new(&o, err, sizeof(err));
    ck_assert_msg(cw != NULL, "consumer: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(core_kafka_consumer_handle(c), topic, NULL);
    ck_assert_int_eq(rd_kafka_metadata(core_kafka_consumer_handle(c), 0, rkt, &md, 10000), 0);
    rd_kafka_topic_destroy(rkt);
    ck_assert_msg(md->topics[0].err == 0, "%s: %s", topic, rd_kafka_err2str(md->topics[0].err));
    np = md->topics[0].partition_cnt;
    hw = calloc((size_t)np + 1, sizeof(*hw));
    done = calloc((size_t)np + 1, sizeof(*done));
    ck_assert(hw && done);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int64_t lo, hi;
        int32_t pid = md->topics[0].partitions[i].id;
        ck_assert_int_lt(pid, np);
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(core_kafka_consumer_handle(cw), topic,
                                                          pid, &lo, &hi, 10000),
                         0);
        hw[pid] = hi;
        if (hi <= lo) {
            done[pid] = true;
            ndone++;
        }
        rd_kafka_topic_partition_list_add(parts, topic, pid)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
    ck_assert_int_eq(core_kafka_consumer_assign(c, parts, err, sizeof(err)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(parts);
    while (ndone < np) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 500);
        ck_assert_msg(core_mono_ms() < deadline, "reading %s: deadline passed", topic);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->offset >= hw[m->partition] && !done[m->partition]) {
                done[m->partition] = true;
                ndone++;
            }
        } else if (!m->err) {
            count++;
            if (fn)
                fn(m, user);
            if (m->offset + 1 >= hw[m->partition] && !done[m->partition]) {
                done[m->partition] = true;
                ndone++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(hw);
    free(done);
    core_kafka_consumer_free(cw);
    core_kafka_consumer_free(c);
    return count;
}

const char *tu_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;

    if (size == 0 || rd_kafka_message_headers(m, &h) != 0 ||
        rd_kafka_header_get_last(h, name, &v, &len) != 0)
        return NULL;
    if (len >= size)
        len = size - 1;
    if (len)
        memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

struct count_header {
    const char *name, *value;
    size_t n;
};

static void count_one(const rd_kafka_message_t *m, void *user)
{
    struct count_header *ch = user;
    char buf[1024];
    const char *v = tu_header(m, ch->name, buf, sizeof(buf));

    if (v && (!ch->value || !strcmp(v, ch->value)))
        ch->n++;
}

size_t tu_topic_count_header(const char *topic, const char *name, const char *value)
{
    struct count_header ch = { name, value, 0 };

    tu_topic_read(topic, "read_committed", count_one, &ch);
    return ch.n;
}

/* ---- HTTP ------------------------------------------------------------------- */

struct body {
    char *p;
    size_t n;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct body *b = user;
    size_t add = size * nmemb;
    char *np = realloc(b->p, b->n + add + 1);

    if (!np)
        return 0;
    memcpy(np + b->n, data, add);
    b->p = np;
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

static long http_do(int port, const char *method, const char *path, const char *auth,
                    const char *body, char **resp, long timeout_ms)
{
    char url[1024];
    CURL *c = curl_easy_init();
    struct body b = { NULL, 0 };
    struct curl_slist *h = NULL;
    char hdr[1200];
    long code = 0;

    ck_assert_ptr_nonnull(c);
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (auth) {
        snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
        h = curl_slist_append(h, hdr);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (h)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body || !strcmp(method, "POST"))
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (resp)
        *resp = b.p ? b.p : strdup("");
    else
        free(b.p);
    return code;
}

long tu_http(int port, const char *method, const char *path, const char *auth, const char *body,
             char **resp)
{
    return http_do(port, method, path, auth, body, resp, 150000); /* a reconcile may take long */
}

long tu_http_get(int port, const char *path, char **resp)
{
    return tu_http(port, "GET", path, NULL, NULL, resp);
}

long tu_http_json(int port, const char *method, const char *path, const char *auth, cJSON **json)
{
    char *resp = NULL;
    long code = tu_http(port, method, path, auth, NULL, &resp);

    if (json)
        *json = cJSON_Parse(resp);
    free(resp);
    return code;
}

size_t tu_metric_sum(int port, const char *name, const char *filter, double *sum)
{
    char *text = NULL, *save = NULL;
    size_t nl = strlen(name), n = 0;

    *sum = 0;
    if (http_do(port, "GET", "/metrics", NULL, NULL, &text, 5000) != 200) {
        free(text);
        return 0;
    }
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, name, nl) == 0 && (line[nl] == '{' || line[nl] == ' ') &&
            strstr(line, filter)) {
            const char *sp = strrchr(line, ' ');
            *sum += sp ? strtod(sp + 1, NULL) : 0;
            n++;
        }
    }
    free(text);
    return n;
}

bool tu_wait_ready(int port, int timeout_ms)
{
    int64_t deadline = core_mono_ms() + timeout_ms;

    do {
        if (http_do(port, "GET", "/readyz", NULL, NULL, NULL, 5000) == 200)
            return true;
        tu_sleep_ms(100);
    } while (core_mono_ms() < deadline);
    return false;
}

/* ---- services ----------------------------------------------------------------- */

const char *tu_bin(const char *svc)
{
    static char paths[8][1024];
    static unsigned next;
    char *p = paths[next++ % 8];

    snprintf(p, sizeof(paths[0]), "%s/bin/%s", tu_build_dir(), svc);
    return p;
}

char **tu_env(bool pg_password)
{
    static char proto[1100];
    static char *e[5];

    snprintf(proto, sizeof(proto), "TB_PROTO_DIR=%s", tu_proto_dir());
    e[0] = proto;
    e[1] = "PATH=/usr/bin:/bin";
    /* as the images run them: no /dev/shm counters file from libmongoc,
     * whose "Falling back to malloc" warning a stale file of a killed
     * process with the same pid would add to stderr */
    e[2] = "MONGOC_DISABLE_SHM=1";
    e[3] = pg_password ? "TB_PG_PASSWORD=tributary" : NULL;
    e[4] = NULL;
    return e;
}

pid_t tu_spawn(const char *svc, const char *const *args, char *const envp[], const char *log)
{
    size_t n = 0;
    const char **argv;
    pid_t pid;

    while (args && args[n])
        n++;
    argv = calloc(n + 2, sizeof(*argv));
    ck_assert_ptr_nonnull(argv);
    argv[0] = tu_bin(svc);
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    if (!envp)
        envp = tu_env(false);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    free(argv);
    return pid;
}

int tu_stop(pid_t pid, int sig, int timeout_ms)
{
    int st = 0;
    int64_t deadline = core_mono_ms() + timeout_ms;

    kill(pid, sig);
    while (core_mono_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        tu_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

pid_t tu_service_start(const char *svc, int port, const char *const *args, char *const envp[])
{
    const char *argv[64];
    char pflag[64];
    size_t n = 0;

    snprintf(pflag, sizeof(pflag), "--http.port=%d", port);
    argv[n++] = pflag;
    argv[n++] = "--shutdown.grace.ms=10000";
    argv[n++] = "--log.level=warn";
    for (size_t i = 0; args && args[i]; i++) {
        ck_assert_uint_lt(n, 63);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = tu_spawn(svc, argv, envp, NULL);
    ck_assert_msg(tu_wait_ready(port, 60000), "%s never ready on port %d", svc, port);
    return pid;
}

void tu_service_stop(pid_t pid)
{
    int rc = tu_stop(pid, SIGTERM, 60000);
    ck_assert_msg(rc == 0, "the service ended with %d after SIGTERM", rc);
}

void tu_assert_alive(pid_t pid, const char *log)
{
    int st;

    if (waitpid(pid, &st, WNOHANG) == pid)
        ck_abort_msg("the service exited early (status %d); see %s", st, log ? log : "its log");
}

int tu_count_plain_lines(const char *s)
{
    int n = 0;

    for (const char *l = s; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        n += *l != '{' && *l != '\n';
    return n;
}

/* ---- PostgreSQL ------------------------------------------------------------- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *tu_pg_connect(void)
{
    PGconn *c = PQconnectdb(TU_PG_CONNINFO);

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

void tu_pg_exec(const char *sql)
{
    PGconn *c = tu_pg_connect();
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);

    ck_assert_msg(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

long long tu_pg_count(const char *sql)
{
    PGconn *c = tu_pg_connect();
    PGresult *r = PQexec(c, sql);
    long long n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0))
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

void tu_pg_drop_schema(const char *schema)
{
    char sql[300];

    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    tu_pg_exec(sql);
}

/* ---- a webhook receiver ----------------------------------------------------- */

#define HOOK_MAX 64

static struct {
    pthread_mutex_t lock;
    core_metrics_t *metrics;
    core_http_t *http;
    int fail_first, calls, n;
    char *bodies[HOOK_MAX];
} hook = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void on_hook(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&hook.lock);
    if (hook.calls++ < hook.fail_first) {
        resp->status = 503;
    } else {
        if (hook.n < HOOK_MAX)
            hook.bodies[hook.n++] = strdup(req->body ? req->body : "");
        resp->status = 200;
    }
    pthread_mutex_unlock(&hook.lock);
    resp->body = core_http_printf("ok\n");
}

int tu_hook_start(int fail_first)
{
    char err[256];

    ck_assert_msg(hook.http == NULL, "a webhook receiver runs already");
    hook.fail_first = fail_first;
    hook.calls = hook.n = 0;
    hook.metrics = core_metrics_new();
    hook.http = core_http_new("127.0.0.1", 0, hook.metrics, err, sizeof(err));
    ck_assert_msg(hook.http != NULL, "webhook receiver: %s", err);
    ck_assert_int_eq(core_http_route(hook.http, "POST", "/hook", on_hook, NULL), CORE_OK);
    return core_http_port(hook.http);
}

cJSON *tu_hook_wait(int n, int timeout_ms)
{
    int64_t deadline = core_mono_ms() + timeout_ms;
    cJSON *j = NULL;

    while (!j && core_mono_ms() < deadline) {
        pthread_mutex_lock(&hook.lock);
        if (hook.n > n)
            j = cJSON_Parse(hook.bodies[n]);
        pthread_mutex_unlock(&hook.lock);
        if (!j)
            tu_sleep_ms(100);
    }
    ck_assert_msg(j != NULL, "webhook body %d not received in %d ms", n, timeout_ms);
    return j;
}

int tu_hook_taken(void)
{
    pthread_mutex_lock(&hook.lock);
    int n = hook.n;
    pthread_mutex_unlock(&hook.lock);
    return n;
}

int tu_hook_calls(void)
{
    pthread_mutex_lock(&hook.lock);
    int n = hook.calls;
    pthread_mutex_unlock(&hook.lock);
    return n;
}

void tu_hook_stop(void)
{
    core_http_free(hook.http);
    core_metrics_free(hook.metrics);
    hook.http = NULL;
    hook.metrics = NULL;
    for (int i = 0; i < hook.n; i++)
        free(hook.bodies[i]);
    hook.n = hook.calls = 0;
}
