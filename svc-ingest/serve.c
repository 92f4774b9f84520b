/* serve.c — spool folder and bulk-load API of svc-ingest (see serve.h).
 *
 * Threads: the main thread scans the spool and runs jobs one at a time; the
 * HTTP connection threads add jobs and read their status. Everything in
 * struct server is guarded by its lock (ingest_file updates a job's status
 * under the same lock). */
#include "serve.h"

#include "tributary/core_common.h"
#include "tributary/core_exit.h"
#include "tributary/core_http.h"
#include "tributary/core_json.h"
#include "tributary/core_lifecycle.h"
#include "tributary/core_log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JOBS_KEPT 1000

enum job_state { J_QUEUED, J_RUNNING, J_DONE, J_FAILED, J_WAITING };

static const char *state_name(enum job_state s)
{
    switch (s) {
    case J_QUEUED: return "queued";
    case J_RUNNING: return "running";
    case J_DONE: return "done";
    case J_FAILED: return "failed";
    case J_WAITING: return "waiting";
    }
    return "?";
}

struct job {
    struct job *next;
    char *path;
    char *name;        /* spool: the file's name in spool.dir; NULL for API jobs */
    char *dataset;
    char *format;
    char *batch_id;    /* as asked (API), or NULL */
    bool force;
    enum job_state state;
    int64_t not_before; /* waiting: retry after (monotonic ms) */
    ingest_status st;
};

struct server {
    pthread_mutex_t lock;
    struct job *head, *tail;
    size_t njobs;
    core_service_t *svc;
    ingest_ctx *ctx;
    const ingest_conf *conf;
    bool closed;        /* stopping: the routes answer 503 */
};

/* Static: the HTTP server (freed after ingest_serve returns) keeps a
 * pointer to it in its routes. */
static struct server server = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->path);
    free(j->name);
    free(j->dataset);
    free(j->format);
    free(j->batch_id);
    free(j);
}

/* Append; drop the oldest finished jobs beyond MAX_JOBS_KEPT. Lock held. */
static void add_job(struct server *s, struct job *j)
{
    j->st.lock = &s->lock;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->njobs++;
    while (s->njobs > MAX_JOBS_KEPT && s->head &&
           (s->head->state == J_DONE || s->head->state == J_FAILED)) {
        struct job *old = s->head;
        s->head = old->next;
        if (!s->head)
            s->tail = NULL;
        s->njobs--;
        job_free(old);
    }
}

static bool dataset_allowed(const ingest_conf *conf, const char *ds)
{
    for (size_t i = 0; i < conf->datasets.n; i++)
        if (strcmp(conf->datasets.v[i], ds) == 0)
            return true;
    return false;
}

/* ---- HTTP -------------------------------------------------------------- */

static void reply_json(core_http_response *resp, int status, char *body)
{
    resp->status = body ? status : 500;
    resp->content_type = "application/json";
    resp->body = body ? body : core_http_printf("{\"error\":\"out of memory\"}");
}

static void reply_error(core_http_response *resp, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    char *s = NULL;

    if (j) {
        cJSON_AddStringToObject(j, "error", msg);
        s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    reply_json(resp, status, s);
}

static char *job_json(const struct job *j)
{
    return ingest_status_json(&j->st, j->path, j->dataset, state_name(j->state));
}

static void h_post(const core_http_request *req, core_http_response *resp, void *opaque)
{
    struct server *s = opaque;
    /* strict: a key given twice ("file" twice) is refused, not the first kept */
    cJSON *body = req->body ? core_json_parse(req->body, req->body_len, NULL) : NULL;
    const cJSON *file, *ds, *fmt, *bid, *force;
    char path[PATH_MAX], hex[65], err[PATH_MAX + 600], id[INGEST_MAX_BATCH_ID + 1];
    struct job *j = NULL;
    struct stat sb;

    if (!cJSON_IsObject(body)) {
        reply_error(resp, 400, "body must be a JSON object: {\"file\": PATH, \"dataset\": NAME}");
        goto out;
    }
    file = cJSON_GetObjectItemCaseSensitive(body, "file");
    ds = cJSON_GetObjectItemCaseSensitive(body, "dataset");
    fmt = cJSON_GetObjectItemCaseSensitive(body, "format");
    bid = cJSON_GetObjectItemCaseSensitive(body, "batch_id");
    force = cJSON_GetObjectItemCaseSensitive(body, "force");
    if (!cJSON_IsString(file) || !*file->valuestring) {
        reply_error(resp, 400, "file: a path is required");
        goto out;
    }
    if (!cJSON_IsString(ds) || !dataset_allowed(s->conf, ds->valuestring)) {
        reply_error(resp, 400, "dataset: missing, or not one of this instance's datasets");
        goto out;
    }
    if (fmt && !(cJSON_IsString(fmt) && (strcmp(fmt->valuestring, "csv") == 0 ||
                                         strcmp(fmt->valuestring, "jsonl") == 0 ||
                                         strcmp(fmt->valuestring, "auto") == 0))) {
        reply_error(resp, 400, "format: csv, jsonl or auto");
        goto out;
    }
    if (bid && !(cJSON_IsString(bid) && *bid->valuestring &&
                 strlen(bid->valuestring) <= INGEST_MAX_BATCH_ID - 12)) {
        reply_error(resp, 400, "batch_id: a string of 1 to 188 bytes");
        goto out;
    }
    if (file->valuestring[0] != '/' && s->conf->spool_dir)
        snprintf(path, sizeof(path), "%s/%s", s->conf->spool_dir, file->valuestring);
    else
        snprintf(path, sizeof(path), "%s", file->valuestring);
    {
        /* errno only where a call failed: a stale one said "Numerical
         * result out of range" for a directory */
        const char *why = stat(path, &sb) != 0      ? strerror(errno)
                          : S_ISDIR(sb.st_mode)     ? "is a directory, not a file"
                          : !S_ISREG(sb.st_mode)    ? "not a regular file"
                          : access(path, R_OK) != 0 ? strerror(errno)
                                                    : NULL;
        if (why) {
            snprintf(err, sizeof(err), "file: %s: %s", path, why);
            reply_error(resp, 422, err);
            goto out;
        }
    }
    if (bid) {
        snprintf(id, sizeof(id), "%s", bid->valuestring);
    } else {
        if (ingest_file_digest(path, hex, err, sizeof(err))) {
            reply_error(resp, 422, err);
            goto out;
        }
        snprintf(id, sizeof(id), "%s-%.16s", ds->valuestring, hex);
    }
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        reply_error(resp, 503, "stopping");
        goto out;
    }
    for (struct job *k = s->head; k; k = k->next) {
        if ((k->state == J_QUEUED || k->state == J_RUNNING || k->state == J_WAITING) &&
            strcmp(k->st.batch_id, id) == 0) {
            char *js = job_json(k);
            pthread_mutex_unlock(&s->lock);
            reply_json(resp, 409, js);
            goto out;
        }
    }
    j = calloc(1, sizeof(*j));
    if (j) {
        j->path = strdup(path);
        j->dataset = strdup(ds->valuestring);
        j->format = strdup(fmt ? fmt->valuestring : s->conf->format);
        j->batch_id = strdup(id);
        j->force = cJSON_IsTrue(force);
        snprintf(j->st.batch_id, sizeof(j->st.batch_id), "%s", id);
        j->st.file_size = (uint64_t)sb.st_size;
    }
    if (!j || !j->path || !j->dataset || !j->format || !j->batch_id) {
        pthread_mutex_unlock(&s->lock);
        job_free(j);
        reply_error(resp, 500, "out of memory");
        goto out;
    }
    add_job(s, j);
    {
        char *js = job_json(j);
        pthread_mutex_unlock(&s->lock);
        reply_json(resp, 202, js);
    }
    core_log_info("batch queued", CLF_S("batch", id), CLF_S("file", path),
                  CLF_S("dataset", ds->valuestring));
out:
    cJSON_Delete(body);
}

static void h_get(const core_http_request *req, core_http_response *resp, void *opaque)
{
    struct server *s = opaque;
    const char *id = req->path + strlen("/batches/");
    struct job *found = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        reply_error(resp, 503, "stopping");
        return;
    }
    for (struct job *k = s->head; k; k = k->next)
        if (strcmp(k->st.batch_id, id) == 0)
            found = k; /* the latest run of the batch */
    if (found) {
        char *js = job_json(found);
        pthread_mutex_unlock(&s->lock);
        reply_json(resp, 200, js);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    reply_error(resp, 404, "no such batch");
}

static void h_list(const core_http_request *req, core_http_response *resp, void *opaque)
{
    struct server *s = opaque;
    char *out;
    cJSON *arr = cJSON_CreateArray();

    (void)req;
    pthread_mutex_lock(&s->lock);
    for (struct job *k = s->head; k && arr; k = k->next) {
        char *js = job_json(k);
        cJSON *item = js ? cJSON_Parse(js) : NULL;
        free(js);
        if (item)
            cJSON_AddItemToArray(arr, item);
    }
    pthread_mutex_unlock(&s->lock);
    out = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    reply_json(resp, 200, out);
}

/* ---- spool ------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The dataset of a spool file: the longest configured dataset its name
 * starts with (followed by '.', '-' or '_'), else the only one configured. */
static const char *spool_dataset(const ingest_conf *conf, const char *name)
{
    const char *best = NULL;

    for (size_t i = 0; i < conf->datasets.n; i++) {
        size_t n = strlen(conf->datasets.v[i]);
        if (strncmp(name, conf->datasets.v[i], n) == 0 &&
            (name[n] == '.' || name[n] == '-' || name[n] == '_') &&
            (!best || n > strlen(best)))
            best = conf->datasets.v[i];
    }
    if (!best && conf->datasets.n == 1)
        best = conf->datasets.v[0];
    return best;
}

static void scan_spool(struct server *s)
{
    DIR *d = opendir(s->conf->spool_dir);
    struct dirent *de;

    if (!d) {
        core_log_warn("spool.dir unreadable", CLF_S("dir", s->conf->spool_dir),
                      CLF_S("error", strerror(errno)));
        return;
    }
    while ((de = readdir(d))) {
        char path[PATH_MAX];
        struct stat sb;
        bool known = false;
        struct job *j;

        if (de->d_name[0] == '.' || ends_with(de->d_name, ".tmp") ||
            ends_with(de->d_name, ".part") || ends_with(de->d_name, ".errors.jsonl") ||
            ends_with(de->d_name, ".summary.json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->conf->spool_dir, de->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        pthread_mutex_lock(&s->lock);
        for (struct job *k = s->head; k; k = k->next)
            if (k->name && strcmp(k->name, de->d_name) == 0 && k->state != J_DONE &&
                k->state != J_FAILED)
                known = true;
        if (!known && (j = calloc(1, sizeof(*j)))) {
            const char *ds = spool_dataset(s->conf, de->d_name);
            j->path = strdup(path);
            j->name = strdup(de->d_name);
            j->dataset = strdup(ds ? ds : "");
            j->format = strdup(s->conf->format);
            j->st.file_size = (uint64_t)sb.st_size;
            if (!j->path || !j->name || !j->dataset || !j->format)
                job_free(j);
            else
                add_job(s, j);
        }
        pthread_mutex_unlock(&s->lock);
    }
    closedir(d);
}

/* Move a finished spool file (and its errors file) to done/ or failed/ and
 * write its summary beside it. */
static void settle_spool_file(struct server *s, struct job *j, bool ok)
{
    char dir[PATH_MAX], dst[PATH_MAX + 64], errdst[PATH_MAX + 64], sum[PATH_MAX + 64];
    char *js;
    FILE *f;

    snprintf(dir, sizeof(dir), "%s/%s", s->conf->spool_dir, ok ? "done" : "failed");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        core_log_error("cannot create spool folder", CLF_S("dir", dir),
                       CLF_S("error", strerror(errno)));
        return;
    }
    snprintf(dst, sizeof(dst), "%s/%s", dir, j->name);
    if (rename(j->path, dst) != 0)
        core_log_error("cannot move spool file", CLF_S("file", j->path),
                       CLF_S("error", strerror(errno)));
    if (access(j->st.errors_path, F_OK) == 0) {
        snprintf(errdst, sizeof(errdst), "%s/%s.errors.jsonl", dir, j->name);
        if (rename(j->st.errors_path, errdst) == 0) {
            pthread_mutex_lock(&s->lock);
            size_t n = strnlen(errdst, sizeof(j->st.errors_path) - 1);
            memcpy(j->st.errors_path, errdst, n);
            j->st.errors_path[n] = '\0';
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_lock(&s->lock);
    js = ingest_status_json(&j->st, dst, j->dataset, ok ? "done" : "failed");
    pthread_mutex_unlock(&s->lock);
    snprintf(sum, sizeof(sum), "%s/%s.summary.json", dir, j->name);
    f = fopen(sum, "w");
    if (f && js) {
        fprintf(f, "%s\n", js);
    }
    if (f)
        fclose(f);
    free(js);
}

static struct job *next_job(struct server *s)
{
    struct job *pick = NULL;
    int64_t now = core_mono_ms();

    pthread_mutex_lock(&s->lock);
    for (struct job *k = s->head; k && !pick; k = k->next)
        if (k->state == J_QUEUED || (k->state == J_WAITING && now >= k->not_before))
            pick = k;
    if (pick)
        pick->state = J_RUNNING;
    pthread_mutex_unlock(&s->lock);
    return pick;
}

static void run_job(struct server *s, struct job *j)
{
    ingest_job job = { 0 };
    int rc;
    enum job_state end;

    if (!*j->dataset) {
        pthread_mutex_lock(&s->lock);
        snprintf(j->st.error, sizeof(j->st.error),
                 "no dataset: the file's name must start with one of the datasets configured "
                 "(e.g. payee-2026-11-22.csv)");
        j->st.exit_code = CORE_EX_USAGE;
        j->state = J_FAILED;
        pthread_mutex_unlock(&s->lock);
        settle_spool_file(s, j, false);
        return;
    }
    job.path = j->path;
    job.dataset = j->dataset;
    job.format = j->format;
    job.batch_id = j->batch_id;
    job.force = j->force;
    rc = ingest_file(s->ctx, &job, &j->st, NULL, NULL);
    if (rc == CORE_EX_TEMPFAIL || rc == CORE_EX_UNAVAILABLE) {
        /* stopped or broker away: the file stays; it resumes from its checkpoint */
        end = J_WAITING;
    } else if (rc == 0 || (rc == CORE_EX_DATAERR && !j->st.error[0])) {
        end = J_DONE;
    } else {
        end = J_FAILED;
    }
    pthread_mutex_lock(&s->lock);
    j->state = end;
    j->not_before = core_mono_ms() + 5000;
    pthread_mutex_unlock(&s->lock);
    core_log_info("batch finished", CLF_S("batch", j->st.batch_id), CLF_S("file", j->path),
                  CLF_S("state", state_name(end)), CLF_I("published", (int64_t)j->st.published),
                  CLF_I("rejected", (int64_t)j->st.rejected), CLF_I("exit_code", rc));
    if (j->name && end != J_WAITING)
        settle_spool_file(s, j, end == J_DONE);
}

int ingest_serve_open(core_service_t *svc, ingest_ctx *ctx, const ingest_conf *conf)
{
    struct server *s = &server;
    core_http_t *h = core_service_http(svc);

    s->svc = svc;
    s->ctx = ctx;
    s->conf = conf;
    s->closed = false;
    if (conf->spool_dir) {
        struct stat sb;
        if (stat(conf->spool_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return core_service_config_error(svc, "spool.dir: not an existing folder");
    }
    if (core_http_route(h, "POST", "/batches", h_post, s) ||
        core_http_route(h, "GET", "/batches", h_list, s) ||
        core_http_route(h, "GET", "/batches/*", h_get, s))
        return core_service_config_error(svc, "http: cannot add the /batches routes");
    return CORE_SERVICE_CONTINUE;
}

int ingest_serve(core_service_t *svc, ingest_ctx *ctx, const ingest_conf *conf)
{
    struct server *s = &server;
    core_http_t *h = core_service_http(svc);
    int64_t next_scan = 0;

    (void)ctx;
    core_log_info("serving", CLF_I("http_port", core_http_port(h)),
                  CLF_S("spool", conf->spool_dir ? conf->spool_dir : "(none)"));
    while (!core_lifecycle_stopping()) {
        struct job *j;

        if (conf->spool_dir && core_mono_ms() >= next_scan) {
            scan_spool(s);
            next_scan = core_mono_ms() + conf->spool_poll_ms;
        }
        j = next_job(s);
        if (j) {
            run_job(s, j);
            continue;
        }
        core_lifecycle_wait(conf->spool_poll_ms < 200 ? conf->spool_poll_ms : 200);
    }
    core_log_info("stopping", CLF_I("signal", core_lifecycle_signal()));
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    while (s->head) {
        struct job *n = s->head->next;
        job_free(s->head);
        s->head = n;
    }
    s->tail = NULL;
    s->njobs = 0;
    pthread_mutex_unlock(&s->lock);
    return 0;
}
