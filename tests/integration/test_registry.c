/* test_registry.c — the Schema Registry client (core_registry) and the
 * services in registry mode, against the real Apicurio Registry of the
 * local stack (stack.sh: 127.0.0.1:18081, Confluent API under
 * /apis/ccompat/v7, BACKWARD) and the real broker:
 *
 *   - register, look up, fetch by id; what the caches and the negative
 *     cache save (request counts);
 *   - RecordNameStrategy: the subject is the record's full name;
 *   - an incompatible schema refused with 409 and the registry's message;
 *   - svc-ingest with a subject the registry lacks (auto.register off), or
 *     with a schema that breaks BACKWARD (auto.register on, the 409):
 *     exit 78 naming the subject; the registry down at start: exit 69
 *     naming it after startup.timeout.ms, no hang;
 *   - svc-ingest → svc-validator in registry mode: the records carry the
 *     registry's id (not the catalogue's 101), the validator resolves it
 *     and passes every record to .valid; a record with an id the registry
 *     does not know goes to .dlq as poison with that reason, the others
 *     still flow; svc-cache-feeder in registry mode then caches every
 *     .valid record in Redis, and svc-recon reads every audit event of the
 *     run (the registry's id of AuditEvent) as good input; svc-persister
 *     in registry mode writes records
 *     of the current id and of a later version's id (one more optional
 *     field) to PostgreSQL;
 *   - the registry down while the validator meets a new id: .retry, not
 *     poison, then .valid once it is back;
 *   - the registry restarted (stack.sh registry-stop / registry-start): its
 *     ids and schemas are still there (SQL storage on PostgreSQL), and a
 *     client started after the restart resolves them.
 *
 * TB_TEST_REGISTRY_URL overrides the registry (default the stack's). */
#include "testutil.h"
#include "tu_stack.h"
#include "tributary/core_avro.h"
#include "tributary/core_common.h"
#include "tributary/core_kafka.h"
#include "tributary/core_registry.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOOTSTRAP "127.0.0.1:9092"

static const core_kafka_prop kdefaults[] = { { "bootstrap.servers", BOOTSTRAP } };

static const char *registry_url(void)
{
    const char *u = getenv("TB_TEST_REGISTRY_URL");

    return u && *u ? u : "http://127.0.0.1:18081/apis/ccompat/v7";
}

static core_registry_t *registry(bool auto_register)
{
    core_registry_conf c = { 0 };
    core_registry_t *r;
    char err[512];

    c.url = registry_url();
    c.auto_register = auto_register;
    c.retries = 2;
    r = core_registry_new(&c, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static core_avro_catalog_t *catalog(void)
{
    char err[512];
    core_avro_catalog_t *cat = core_avro_catalog_load(tu_proto_dir(), err, sizeof(err));

    ck_assert_msg(cat != NULL, "%s", err);
    return cat;
}

/* ---- the client ---------------------------------------------------------- */

START_TEST(client_registers_looks_up_fetches_and_caches)
{
    core_avro_catalog_t *cat = catalog();
    const core_avro_schema_t *payee = core_avro_catalog_by_dataset(cat, "payee");
    core_registry_t *r = registry(true), *r2;
    core_registry_stats st0, st1;
    char subject[256], err[1024], *text = NULL, *again = NULL;
    uint32_t id = 0, id2 = 0;

    snprintf(subject, sizeof(subject), "it-registry-%s-value", tu_unique());
    ck_assert_msg(core_registry_bind_subject(r, cat, payee, subject, &id, err, sizeof(err)) ==
                      CORE_OK,
                  "%s", err);
    ck_assert_uint_gt(id, 0);
    /* the same schema again: from the cache, no request */
    core_registry_get_stats(r, &st0);
    ck_assert_int_eq(core_registry_bind_subject(r, cat, payee, subject, &id2, err, sizeof(err)),
                     CORE_OK);
    core_registry_get_stats(r, &st1);
    ck_assert_uint_eq(id2, id);
    ck_assert_uint_eq(st1.requests, st0.requests);
    ck_assert_uint_gt(st1.hits, st0.hits);

    /* another client, registration off: a lookup finds the same id */
    r2 = registry(false);
    ck_assert_msg(core_registry_bind_subject(r2, cat, payee, subject, &id2, err, sizeof(err)) ==
                      CORE_OK,
                  "%s", err);
    ck_assert_uint_eq(id2, id);

    /* by id: the text as registered, Meta as a reference by name */
    ck_assert_msg(core_registry_get(r2, id, &text, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_ptr_nonnull(strstr(text, "\"tributary.Meta\""));
    ck_assert_ptr_nonnull(strstr(text, "\"Payee\""));
    core_registry_get_stats(r2, &st0);
    ck_assert_int_eq(core_registry_get(r2, id, &again, err, sizeof(err)), CORE_OK);
    core_registry_get_stats(r2, &st1);
    ck_assert_str_eq(again, text);
    ck_assert_uint_eq(st1.requests, st0.requests);

    /* an id it does not know: NOTFOUND, then from the negative cache */
    free(text);
    text = NULL;
    ck_assert_int_eq(core_registry_get(r2, 2147483000u, &text, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "2147483000"));
    core_registry_get_stats(r2, &st0);
    ck_assert_int_eq(core_registry_get(r2, 2147483000u, &text, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    core_registry_get_stats(r2, &st1);
    ck_assert_uint_eq(st1.requests, st0.requests);
    free(text);
    free(again);

    /* the catalogue with the registry as id source resolves the id */
    ck_assert_int_eq(core_avro_catalog_set_fetch(cat, core_registry_fetch, r2), CORE_OK);
    ck_assert_ptr_null(core_avro_catalog_by_id(cat, 101)); /* fixed ids dropped */
    {
        const core_avro_schema_t *w = core_avro_catalog_by_id(cat, id);

        ck_assert_ptr_nonnull(w);
        ck_assert_str_eq(core_avro_schema_dataset(w), "payee");
        ck_assert_str_eq(core_avro_schema_name(w), "tributary.dataset.Payee");
    }
    /* a subject without the schema, registration off: NOTFOUND naming it */
    snprintf(subject, sizeof(subject), "it-registry-missing-%s-value", tu_unique());
    ck_assert_int_eq(core_registry_bind_subject(r2, cat, payee, subject, &id2, err, sizeof(err)),
                     CORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, subject));
    ck_assert_ptr_nonnull(strstr(err, "auto.register.schemas"));
    core_registry_delete_subject(r, subject, err, sizeof(err));
    core_registry_free(r2);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* RecordNameStrategy: the subject is the record's full name, Meta's its own;
 * core_registry_bind() gives the catalogue schema the registry's id. */
START_TEST(record_name_strategy_binds_under_the_full_name)
{
    core_avro_catalog_t *cat = catalog();
    const core_avro_schema_t *ev = core_avro_catalog_by_dataset(cat, "event");
    core_registry_conf c = { 0 };
    core_registry_t *r, *r2 = registry(false);
    char err[1024];
    uint32_t id = 0, id2 = 0;

    c.url = registry_url();
    c.strategy = CORE_REGISTRY_RECORD_NAME;
    c.auto_register = true;
    r = core_registry_new(&c, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(core_avro_catalog_set_fetch(cat, core_registry_fetch, r), CORE_OK);
    ck_assert_msg(core_registry_bind(r, cat, ev, "any.topic", &id, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_uint_eq(core_avro_schema_id(ev), id);
    ck_assert_ptr_eq(core_avro_catalog_by_id(cat, id), ev); /* the local schema, rules and all */
    ck_assert_msg(core_registry_bind_subject(r2, cat, ev, "tributary.dataset.Event", &id2, err,
                                             sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_uint_eq(id2, id);
    core_registry_free(r2);
    core_avro_catalog_free(cat); /* before its id source */
    core_registry_free(r);
}
END_TEST

START_TEST(incompatible_schema_refused_with_409_and_the_registry_message)
{
    core_registry_t *r = registry(true);
    char subject[256], err[1024];
    const char *v1 = "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"it\",\"fields\":"
                     "[{\"name\":\"a\",\"type\":\"string\"}]}";
    /* a new field without a default: old records cannot be read with it */
    const char *v2 = "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"it\",\"fields\":"
                     "[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"long\"}]}";
    /* with a default: fine under BACKWARD */
    const char *v3 = "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"it\",\"fields\":"
                     "[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"c\",\"type\":\"long\","
                     "\"default\":0}]}";
    uint32_t id1 = 0, id = 0;
    bool ok = true;

    snprintf(subject, sizeof(subject), "it-registry-compat-%s-value", tu_unique());
    ck_assert_msg(core_registry_lookup(r, subject, v1, NULL, 0, true, &id1, NULL, err,
                                       sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_msg(core_registry_set_compat(r, subject, "BACKWARD", err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_int_eq(core_registry_check_compat(r, subject, v2, NULL, 0, &ok, err, sizeof(err)),
                     CORE_OK);
    ck_assert(!ok);
    ck_assert_int_eq(core_registry_lookup(r, subject, v2, NULL, 0, true, &id, NULL, err,
                                          sizeof(err)),
                     CORE_ERR_INVALID);
    ck_assert_msg(strstr(err, "HTTP 409") && strstr(err, subject) && strstr(err, "ncompatible"),
                  "%s", err);
    ck_assert_int_eq(core_registry_check_compat(r, subject, v3, NULL, 0, &ok, err, sizeof(err)),
                     CORE_OK);
    ck_assert(ok);
    ck_assert_msg(core_registry_lookup(r, subject, v3, NULL, 0, true, &id, NULL, err,
                                       sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_uint_ne(id, id1);
    ck_assert_int_eq(core_registry_delete_subject(r, subject, err, sizeof(err)), CORE_OK);
    core_registry_free(r);
}
END_TEST

/* ---- the services -------------------------------------------------------- */

struct run_names {
    char prefix[96], raw[160], valid[160], retry[160], dlq[160], audit[160], ckpt[160];
};

static void names_new(struct run_names *n)
{
    snprintf(n->prefix, sizeof(n->prefix), "itreg%s.", tu_unique());
    snprintf(n->raw, sizeof(n->raw), "%spayee.raw", n->prefix);
    snprintf(n->valid, sizeof(n->valid), "%spayee.valid", n->prefix);
    snprintf(n->retry, sizeof(n->retry), "%spayee.retry", n->prefix);
    snprintf(n->dlq, sizeof(n->dlq), "%spayee.dlq", n->prefix);
    snprintf(n->audit, sizeof(n->audit), "%saudit.events", n->prefix);
    snprintf(n->ckpt, sizeof(n->ckpt), "%singest.ckpt", n->prefix);
}

/* Bind payee's current schema of cat under the subjects of the
 * validator's outputs (<valid|retry|dlq topic>-value); each id into ids
 * (may be NULL). */
static void bind_outputs(core_registry_t *r, const core_avro_catalog_t *cat,
                         const struct run_names *n, uint32_t ids[3])
{
    const char *topics[] = { n->valid, n->retry, n->dlq };
    char subject[256], err[1024];

    for (size_t k = 0; k < 3; k++) {
        uint32_t id = 0;

        snprintf(subject, sizeof(subject), "%s-value", topics[k]);
        ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                                 subject, &id, err, sizeof(err)) == CORE_OK,
                      "%s", err);
        if (ids)
            ids[k] = id;
    }
}

static char *payee_csv(size_t rows)
{
    char *path = strdup("/tmp/tb-it-registry-XXXXXX.csv");
    int fd = mkstemps(path, 4);
    FILE *f;

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("payee_id,name,account_number,routing_number,iban,country,currency,email,"
          "amount_limit,status,updated_at\n", f);
    for (size_t i = 0; i < rows; i++)
        fprintf(f, "P%zu,Name %zu,%010zu,021000021,,US,USD,,10.00,ACTIVE,2026-11-22T08:30:00Z\n",
                i, i, i);
    fclose(f);
    return path;
}

static int run_ingest(const struct run_names *n, const char *url, const char *file,
                      const char *const *extra, char **out, char **err)
{
    char bin[512];
    const char *argv[40];
    int k = 0;

    snprintf(bin, sizeof(bin), "%s/bin/svc-ingest", tu_build_dir());
    argv[k++] = bin;
    argv[k++] = "--dataset";
    argv[k++] = "payee";
    argv[k++] = "--topic";
    argv[k++] = n->raw;
    argv[k++] = "--audit.topic";
    argv[k++] = n->audit;
    argv[k++] = "--checkpoint.topic";
    argv[k++] = n->ckpt;
    argv[k++] = "--http.port";
    argv[k++] = "0";
    argv[k++] = "--schema.registry.url";
    argv[k++] = url;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[k++] = extra[i];
    argv[k++] = file;
    argv[k] = NULL;
    return tu_run_cmd((char *const *)argv, environ, out, err, 120000);
}

START_TEST(ingest_subject_not_registered_exits_78_naming_it)
{
    struct run_names n;
    char *file = payee_csv(3), *out = NULL, *err = NULL, subject[256];
    const char *const extra[] = { "--startup.timeout.ms", "10000", NULL };
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(true);
    char e[512];
    uint32_t id;
    int rc;

    names_new(&n);
    /* the audit event is there; the dataset's subject is not */
    ck_assert_msg(core_registry_bind_subject(r, cat,
                                             core_avro_catalog_by_name(cat, "tributary.AuditEvent"),
                                             "audit.events-value", &id, e, sizeof(e)) == CORE_OK,
                  "%s", e);
    rc = run_ingest(&n, registry_url(), file, extra, &out, &err);
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    ck_assert_msg(rc == 78, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, subject) != NULL, "stderr does not name %s: %s", subject, err);
    ck_assert_msg(tu_count_plain_lines(err) == 1, "one plain line expected: %s", err);
    unlink(file);
    free(file);
    free(out);
    free(err);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

static size_t read_topic(const char *topic, size_t want, int ms, uint32_t want_id,
                         core_strbuf *messages);

/* svc-ingest with registration on and a payee schema that breaks BACKWARD
 * against what the subject holds: the registry's 409, exit 78 naming the
 * subject, nothing produced. */
START_TEST(ingest_incompatible_schema_exits_78_with_the_registry_message)
{
    struct run_names n;
    char dir[] = "/tmp/tb-it-registry-proto-XXXXXX", path[1200], *file = payee_csv(3);
    char *out = NULL, *err = NULL, subject[256], e[1024], *text, *broken;
    const char *const extra[] = { "--schema.registry.auto.register.schemas", "--proto.dir", dir,
                                  NULL };
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(true);
    char *cp[] = { "/bin/cp", "-r", NULL, NULL, NULL };
    char src[1100];
    uint32_t id;
    cJSON *j;
    FILE *f;
    int rc;

    names_new(&n);
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                             subject, &id, e, sizeof(e)) == CORE_OK,
                  "%s", e);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/.", tu_proto_dir());
    cp[2] = src;
    cp[3] = dir;
    ck_assert_int_eq(tu_run_cmd(cp, environ, NULL, NULL, 10000), 0);
    /* a new field without a default: old records cannot be read with it */
    snprintf(path, sizeof(path), "%s/payee.avsc", dir);
    text = core_read_file(path, 1 << 20, NULL, e, sizeof(e));
    ck_assert_ptr_nonnull(text);
    j = cJSON_Parse(text);
    free(text);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "fields"),
                         cJSON_Parse("{\"name\":\"must_have\",\"type\":\"string\"}"));
    broken = cJSON_Print(j);
    cJSON_Delete(j);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(broken, f);
    fclose(f);
    free(broken);

    rc = run_ingest(&n, registry_url(), file, extra, &out, &err);
    ck_assert_msg(rc == 78, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, subject) && strstr(err, "HTTP 409") && strstr(err, "must_have"),
                  "stderr: %s", err);
    ck_assert_msg(tu_count_plain_lines(err) == 1, "one plain line expected: %s", err);
    ck_assert_uint_eq(read_topic(n.raw, 1, 3000, 0, NULL), 0);
    {
        char *rm[] = { "/bin/rm", "-rf", dir, NULL };

        tu_run_cmd(rm, environ, NULL, NULL, 10000);
    }
    unlink(file);
    free(file);
    free(out);
    free(err);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

START_TEST(registry_down_at_start_exits_69_naming_it)
{
    struct run_names n;
    char *file = payee_csv(3), *out = NULL, *err = NULL, url[128];
    const char *const extra[] = { "--startup.timeout.ms", "2000", "--schema.registry.retries",
                                  "0", NULL };
    int64_t t0 = core_mono_ms();
    int rc;

    names_new(&n);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/apis/ccompat/v7", tu_free_port());
    rc = run_ingest(&n, url, file, extra, &out, &err);
    ck_assert_msg(rc == 69, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "schema registry") && strstr(err, url), "%s", err);
    ck_assert_msg(core_mono_ms() - t0 < 20000, "took %lld ms", (long long)(core_mono_ms() - t0));
    unlink(file);
    free(file);
    free(out);
    free(err);
}
END_TEST

/* Read a topic from the beginning until want records came or ms passed;
 * checks every value's schema id against want_id (0: any) and collects
 * the tb.error exception messages (DLQ). */
static size_t read_topic(const char *topic, size_t want, int ms, uint32_t want_id,
                         core_strbuf *messages)
{
    static const core_kafka_prop over[] = { { "isolation.level", "read_committed" } };
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(6);
    char errstr[512], group[128];
    int64_t end = core_mono_ms() + ms;
    size_t n = 0;

    snprintf(group, sizeof(group), "itreg-read-%s", tu_unique());
    o.defaults = kdefaults;
    o.ndefaults = 1;
    o.overrides = over;
    o.noverrides = 1;
    o.group_id = group;
    c = core_kafka_consumer_new(&o, errstr, sizeof(errstr));
    ck_assert_msg(c != NULL, "%s", errstr);
    for (int i = 0; i < 6; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(core_kafka_consumer_assign(c, parts, errstr, sizeof(errstr)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(parts);
    while (n < want && core_mono_ms() < end) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 100);
        uint32_t id = 0;

        if (!m)
            continue;
        if (!m->err) {
            n++;
            if (want_id) {
                ck_assert_int_eq(core_avro_wire_id(m->payload, m->len, &id, errstr,
                                                   sizeof(errstr)),
                                 CORE_OK);
                ck_assert_uint_eq(id, want_id);
            }
            if (messages) {
                rd_kafka_headers_t *h = NULL;
                const void *v;
                size_t len;

                if (rd_kafka_message_headers(m, &h) == 0 &&
                    rd_kafka_header_get_last(h, "__connect.errors.exception.message", &v,
                                             &len) == 0)
                    core_strbuf_addf(messages, "%.*s\n", (int)len, (const char *)v);
            }
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_free(c);
    return n;
}

/* Start argv[0] with argv, its stderr into log; @returns its pid. */
static pid_t spawn_logged(const char *const *argv, const char *log)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);

        (void)f;
        execve(argv[0], (char *const *)argv, environ);
        _exit(127);
    }
    return pid;
}

/* How many of P0..P(rows-1) are cached under cprefix:payee:. */
static size_t cached(const char *cprefix, size_t rows)
{
    redisContext *c = redisConnect("127.0.0.1", 6379);
    size_t n = 0;

    ck_assert_msg(c && !c->err, "redis: %s", c ? c->errstr : "no context");
    for (size_t i = 0; i < rows; i++) {
        char key[160];
        redisReply *r;

        snprintf(key, sizeof(key), "%s:payee:P%zu", cprefix, i);
        r = redisCommand(c, "EXISTS %s", key);

        ck_assert_ptr_nonnull(r);
        n += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    redisFree(c);
    return n;
}

/* svc-cache-feeder caches the rows of .valid (its catalogue from proto_dir,
 * NULL: the default), under a new prefix (into cprefix). */
static void feeder_caches_valid_in(const struct run_names *n, size_t rows, const char *proto_dir,
                                   char *cprefix, size_t cprefix_size)
{
    char bin[512], group[128], inst[128], tmpl[256], log[256];
    const char *argv[] = { bin, "--dataset", "payee", "--topic.template", tmpl,
                           "--cache.prefix", cprefix, "--audit.topic", n->audit,
                           "--group.id", group, "--instance.id", inst, "--http.port", "0",
                           "--schema.registry.url", registry_url(),
                           proto_dir ? "--proto.dir" : NULL, proto_dir, NULL };
    int64_t deadline = core_mono_ms() + 90000;
    size_t got = 0;
    pid_t pid;
    int st = 0;

    snprintf(bin, sizeof(bin), "%s/bin/svc-cache-feeder", tu_build_dir());
    snprintf(tmpl, sizeof(tmpl), "%s{dataset}.valid", n->prefix);
    snprintf(cprefix, cprefix_size, "itreg%s", tu_unique());
    snprintf(group, sizeof(group), "itreg-f-%s", tu_unique());
    snprintf(inst, sizeof(inst), "itreg-f-%s", tu_unique());
    snprintf(log, sizeof(log), "/tmp/tb-it-registry-feeder-%s.log", tu_unique());
    pid = spawn_logged(argv, log);
    while ((got = cached(cprefix, rows)) < rows && core_mono_ms() < deadline)
        usleep(200 * 1000); /* polling Redis for the rows, with a deadline */
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(got == rows, "%zu of %zu cached (log %s)", got, rows, log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "feeder exit %d (log %s)", st, log);
    unlink(log);
}

static void feeder_caches_valid(const struct run_names *n, size_t rows)
{
    char cprefix[96];

    feeder_caches_valid_in(n, rows, NULL, cprefix, sizeof(cprefix));
}

/* svc-recon in registry mode reads every audit event of the run (written
 * under the registry's id of tributary.AuditEvent): none is bad input. */
static void recon_reads_audit(const struct run_names *n)
{
    char bin[512], topic[256], schema[96], sflag[160], group[160], log[256], q[256];
    const char *argv[] = { bin, topic, sflag, group, "--http.port=0", "--batch.timeout.ms=50",
                           "--pg.password=tributary", "--schema.registry.url", registry_url(),
                           NULL };
    size_t total = read_topic(n->audit, 1000000, 5000, 0, NULL);
    int64_t deadline = core_mono_ms() + 60000;
    long applied = -1, bad = -1;
    pid_t pid;
    int st = 0;

    ck_assert_uint_gt(total, 0);
    snprintf(bin, sizeof(bin), "%s/bin/svc-recon", tu_build_dir());
    snprintf(topic, sizeof(topic), "--audit.topic=%s", n->audit);
    snprintf(schema, sizeof(schema), "itreg_recon_%s", tu_unique());
    snprintf(sflag, sizeof(sflag), "--state.schema=%s", schema);
    snprintf(group, sizeof(group), "--group.id=itreg-recon-%s", tu_unique());
    snprintf(log, sizeof(log), "/tmp/tb-it-registry-recon-%s.log", tu_unique());
    pid = spawn_logged(argv, log);
    /* every event is applied or counted bad (the offsets also count the
     * transactions' markers, so the rows are compared, not the offsets) */
    while (core_mono_ms() < deadline) {
        snprintf(q, sizeof(q), "SELECT count(*) FROM %s.events", schema);
        applied = (long)tu_pg_count(q);
        snprintf(q, sizeof(q), "SELECT count(*) FROM %s.bad_events", schema);
        bad = (long)tu_pg_count(q);
        if (applied >= 0 && bad >= 0 && applied + bad >= (long)total)
            break;
        usleep(200 * 1000); /* polling recon's state, with a deadline */
    }
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    tu_pg_drop_schema(schema);
    ck_assert_msg(applied == (long)total, "recon applied %ld of %zu events (log %s)", applied,
                  total, log);
    ck_assert_msg(bad == 0, "recon counted %ld bad events (log %s)", bad, log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recon exit %d (log %s)", st, log);
    unlink(log);
}

START_TEST(ingest_to_validator_with_registry_ids_and_unknown_id_to_dlq)
{
    enum { ROWS = 200 };
    struct run_names n;
    char *file = payee_csv(ROWS), *out = NULL, *err = NULL, subject[256], errstr[1024];
    const char *const auto_reg[] = { "--schema.registry.auto.register.schemas", NULL };
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(false);
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *p;
    core_strbuf msgs = { 0 };

    core_strbuf_add(&msgs, "");
    uint32_t id = 0;
    int rc;

    names_new(&n);
    rc = run_ingest(&n, registry_url(), file, auto_reg, &out, &err);
    ck_assert_msg(rc == 0, "ingest exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "\"source\":\"registry\""), "no schemas line: %s", err);
    /* the id the registry gave the payee schema under <raw topic>-value */
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                             subject, &id, errstr, sizeof(errstr)) == CORE_OK,
                  "%s", errstr);
    ck_assert_uint_ne(id, 101);
    ck_assert_uint_eq(read_topic(n.raw, ROWS, 30000, id, NULL), ROWS);
    /* the validator's outputs, registered by someone else (it does not
     * register: it looks them up at start) */
    {
        core_registry_t *reg = registry(true);
        uint32_t outs[3];

        bind_outputs(reg, cat, &n, outs);
        ck_assert_uint_eq(outs[0], id); /* the same schema text: the same id */
        core_registry_free(reg);
    }

    /* a record whose id the registry does not know, then more good ones */
    po.defaults = kdefaults;
    po.ndefaults = 1;
    p = core_kafka_producer_new(&po, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    {
        /* id 2147483000 (0x7ffffd78), then a few body bytes */
        static const char unknown[] = "\x00\x7f\xff\xfd\x78\x02\x00";

        ck_assert_int_eq(core_kafka_produce(p, n.raw, "X1", 2, unknown, sizeof(unknown) - 1, NULL,
                                            0, NULL, errstr, sizeof(errstr)),
                         CORE_OK);
        ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    }
    core_kafka_producer_free(p);

    /* the validator, registration off: it resolves what it meets */
    {
        char bin[512], group[128], inst[128];
        const char *argv[] = { bin, "--dataset", "payee", "--topic.prefix", n.prefix,
                               "--audit.topic", n.audit, "--group.id", group, "--instance.id",
                               inst, "--http.port", "0", "--commit.interval.ms", "100",
                               "--schema.registry.url", registry_url(), NULL };
        char log[256];
        pid_t pid;
        int st = 0;
        size_t nvalid, ndlq;

        snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
        snprintf(group, sizeof(group), "itreg-v-%s", tu_unique());
        snprintf(inst, sizeof(inst), "itreg-%s", tu_unique());
        snprintf(log, sizeof(log), "/tmp/tb-it-registry-validator-%s.log", tu_unique());
        pid = spawn_logged(argv, log);
        nvalid = read_topic(n.valid, ROWS, 90000, id, NULL);
        ndlq = read_topic(n.dlq, 1, 30000, 0, &msgs);
        kill(pid, SIGTERM);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(nvalid == ROWS, "%zu of %d on .valid (log %s)", nvalid, ROWS, log);
        ck_assert_msg(ndlq == 1, "%zu on .dlq (log %s)", ndlq, log);
        ck_assert_msg(strstr(msgs.p, "2147483000") && strstr(msgs.p, "not in the registry"),
                      "DLQ reason: %s", msgs.p);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validator exit %d (log %s)", st,
                      log);
        unlink(log);
    }
    feeder_caches_valid(&n, ROWS);
    recon_reads_audit(&n);
    core_strbuf_free(&msgs);
    unlink(file);
    free(file);
    free(out);
    free(err);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* stack.sh of this checkout, on the stack the tests run against (STACK_DIR). */
static void stack(const char *cmd)
{
    char script[1024], *out = NULL, *err = NULL;
    char *argv[] = { script, (char *)cmd, NULL };
    int rc;

    snprintf(script, sizeof(script), "%s/../deploy/local/stack.sh", tu_proto_dir());
    rc = tu_run_cmd(argv, environ, &out, &err, 120000);
    ck_assert_msg(rc == 0, "stack.sh %s: exit %d: %s %s", cmd, rc, out, err);
    free(out);
    free(err);
}

START_TEST(registry_restart_keeps_ids_and_schemas)
{
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(true);
    char subject[256], err[1024], *before = NULL, *after = NULL;
    uint32_t id = 0, id2 = 0;

    snprintf(subject, sizeof(subject), "it-registry-restart-%s-value", tu_unique());
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "event"),
                                             subject, &id, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_int_eq(core_registry_get(r, id, &before, err, sizeof(err)), CORE_OK);
    core_registry_free(r);

    stack("registry-stop");
    stack("registry-start");

    r = registry(false); /* a consumer started after the restart */
    ck_assert_msg(core_registry_get(r, id, &after, err, sizeof(err)) == CORE_OK, "%s", err);
    ck_assert_str_eq(after, before);
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "event"),
                                             subject, &id2, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_uint_eq(id2, id);
    ck_assert_int_eq(core_avro_catalog_set_fetch(cat, core_registry_fetch, r), CORE_OK);
    ck_assert_ptr_nonnull(core_avro_catalog_by_id(cat, id));
    ck_assert_str_eq(core_avro_schema_dataset(core_avro_catalog_by_id(cat, id)), "event");
    core_registry_delete_subject(r, subject, err, sizeof(err));
    free(before);
    free(after);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* Produce payee records first..first+count-1 (payee_csv's rows as natural
 * JSON) with the given schema id in their header: the body is the local
 * payee schema's, with a null union appended when extra_null (a schema
 * with one more optional field). */
static void produce_payees(const char *topic, size_t first, size_t count, uint32_t id,
                           bool extra_null)
{
    core_avro_catalog_t *cat = catalog();
    const core_avro_schema_t *s = core_avro_catalog_by_dataset(cat, "payee");
    core_kafka_producer_opts po = { 0 };
    core_kafka_producer_t *p;
    char js[1024], key[32], errstr[512], run[64];

    snprintf(run, sizeof(run), "%s", tu_unique());
    po.defaults = kdefaults;
    po.ndefaults = 1;
    p = core_kafka_producer_new(&po, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    for (size_t i = first; i < first + count; i++) {
        cJSON *j;
        avro_value_t v;
        uint8_t *buf = NULL;
        size_t len = 0;

        snprintf(key, sizeof(key), "P%zu", i);
        snprintf(js, sizeof(js),
                 "{\"meta\":{\"id\":\"00000000-0000-4000-8000-%012zu\",\"op\":\"ADD\","
                 "\"kind\":\"BULK\",\"source\":\"test\",\"batch_id\":\"b-%s\",\"seq\":%zu,"
                 "\"event_time\":1700000000000,\"version\":1,\"old_key\":null},"
                 "\"payee_id\":\"%s\",\"name\":\"Name %zu\",\"account_number\":\"%010zu\","
                 "\"routing_number\":\"021000021\",\"iban\":null,\"country\":\"US\","
                 "\"currency\":\"USD\",\"email\":null,\"amount_limit\":\"10.00\","
                 "\"status\":\"ACTIVE\",\"updated_at\":1700000000000}",
                 i, run, i, key, i, i);
        j = cJSON_Parse(js);
        ck_assert_ptr_nonnull(j);
        ck_assert_msg(core_avro_from_json(s, j, &v, errstr, sizeof(errstr)) == CORE_OK, "%s",
                      errstr);
        ck_assert_int_eq(core_avro_encode(s, &v, (void **)&buf, &len, errstr, sizeof(errstr)),
                         CORE_OK);
        if (extra_null) {
            buf = realloc(buf, len + 1);
            ck_assert_ptr_nonnull(buf);
            buf[len++] = 0; /* branch 0: null */
        }
        buf[1] = (uint8_t)(id >> 24);
        buf[2] = (uint8_t)(id >> 16);
        buf[3] = (uint8_t)(id >> 8);
        buf[4] = (uint8_t)id;
        ck_assert_int_eq(core_kafka_produce(p, topic, key, strlen(key), buf, len, NULL, 0, NULL,
                                            errstr, sizeof(errstr)),
                         CORE_OK);
        avro_value_decref(&v);
        cJSON_Delete(j);
        free(buf);
    }
    ck_assert_int_eq(core_kafka_producer_flush(p, 30000), 0);
    ck_assert_int_eq(core_kafka_producer_failed(p), 0);
    core_kafka_producer_free(p);
    core_avro_catalog_free(cat);
}

/* Register under subject a later payee version: payee.avsc with one more
 * optional field (tb_test_extra), tributary.Meta referenced. @returns its id. */
static uint32_t register_payee_variant(core_registry_t *r, const core_avro_catalog_t *cat,
                                       const char *subject)
{
    core_registry_ref ref = { "tributary.Meta", "tributary.Meta", 0 };
    char err[1024], *text, *variant, *mtext;
    uint32_t id = 0, mid = 0;
    cJSON *j;

    text = core_read_file(core_avro_schema_file(core_avro_catalog_by_dataset(cat, "payee")),
                          1 << 20, NULL, err, sizeof(err));
    ck_assert_msg(text != NULL, "%s", err);
    j = cJSON_Parse(text);
    free(text);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "fields"),
                         cJSON_Parse("{\"name\":\"tb_test_extra\",\"type\":[\"null\","
                                     "\"string\"],\"default\":null}"));
    variant = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    /* Meta's version under its subject, for the reference (the text the
     * services send: the file minified) */
    text = core_read_file(core_avro_schema_file(core_avro_catalog_by_name(cat, "tributary.Meta")),
                          1 << 20, NULL, err, sizeof(err));
    ck_assert_msg(text != NULL, "%s", err);
    j = cJSON_Parse(text);
    free(text);
    mtext = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    ck_assert_msg(core_registry_lookup(r, "tributary.Meta", mtext, NULL, 0, true, &mid,
                                       &ref.version, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_msg(core_registry_lookup(r, subject, variant, &ref, 1, true, &id, NULL, err,
                                       sizeof(err)) == CORE_OK,
                  "%s", err);
    free(variant);
    free(mtext);
    return id;
}

/* The registry down while the validator meets an id it has not seen yet:
 * the record goes to .retry (not poison), and through to .valid once the
 * registry is back. */
START_TEST(registry_down_at_run_time_retries_not_poison)
{
    struct run_names n;
    core_avro_catalog_t *cat = catalog();
    const core_avro_schema_t *payee = core_avro_catalog_by_dataset(cat, "payee");
    const core_avro_schema_t *audit = core_avro_catalog_by_name(cat, "tributary.AuditEvent");
    core_registry_t *r = registry(true);
    char subject[256], asub[256], err[1024], bin[512], group[128], inst[128], log[256];
    uint32_t id_cur = 0, id_new = 0, mid = 0;
    pid_t pid;
    int st = 0;

    names_new(&n);
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    snprintf(asub, sizeof(asub), "%s-value", n.audit);
    ck_assert_msg(core_registry_bind_subject(r, cat, payee, subject, &id_cur, err, sizeof(err)) ==
                      CORE_OK,
                  "%s", err);
    ck_assert_msg(core_registry_bind_subject(r, cat, audit, asub, &mid, err, sizeof(err)) ==
                      CORE_OK &&
                      core_registry_bind_subject(r, cat, audit, "audit.events-value", &mid, err,
                                                 sizeof(err)) == CORE_OK,
                  "%s", err);
    id_new = register_payee_variant(r, cat, subject);
    ck_assert_uint_ne(id_new, id_cur);
    bind_outputs(r, cat, &n, NULL);

    {
        const char *argv[] = { bin, "--dataset", "payee", "--topic.prefix", n.prefix,
                               "--audit.topic", n.audit, "--group.id", group, "--instance.id",
                               inst, "--http.port", "0", "--commit.interval.ms", "100",
                               "--retry.base.ms", "300", "--retry.max.ms", "1000",
                               "--retry.max.attempts", "1000", "--schema.registry.retries", "0",
                               "--schema.registry.url", registry_url(), NULL };

        snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
        snprintf(group, sizeof(group), "itreg-vd-%s", tu_unique());
        snprintf(inst, sizeof(inst), "itreg-vd-%s", tu_unique());
        snprintf(log, sizeof(log), "/tmp/tb-it-registry-down-%s.log", tu_unique());
        pid = spawn_logged(argv, log);
    }
    produce_payees(n.raw, 0, 1, id_cur, false); /* through at once: the validator runs */
    ck_assert_msg(read_topic(n.valid, 1, 60000, 0, NULL) == 1, "first record (log %s)", log);

    stack("registry-stop");
    produce_payees(n.raw, 1, 1, id_new, true);
    ck_assert_msg(read_topic(n.retry, 1, 30000, id_new, NULL) == 1, "no retry (log %s)", log);
    stack("registry-start");
    ck_assert_msg(read_topic(n.valid, 2, 60000, 0, NULL) == 2, "not through after the registry "
                                                               "came back (log %s)", log);
    ck_assert_msg(read_topic(n.dlq, 1, 3000, 0, NULL) == 0, "a record on .dlq (log %s)", log);
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validator exit %d (log %s)", st, log);
    unlink(log);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* svc-persister in registry mode: records with the registry's ids, the
 * current one and a later version's (one more optional field), all in the
 * table. */
START_TEST(persister_writes_records_with_registry_ids)
{
    enum { ROWS = 100 };
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(true);
    char u[64], topic[128], vs[96], ds[96], audit[96], asub[128], store[96], subject[160],
        group[128], log[256], bin[512], err[1024];
    uint32_t id_cur = 0, id_new = 0, mid = 0;
    int64_t deadline;
    long rows = -1;
    pid_t pid;
    int st = 0;

    snprintf(u, sizeof(u), "r%s", tu_unique());
    snprintf(topic, sizeof(topic), "payee.valid_%s", u);
    snprintf(vs, sizeof(vs), ".valid_%s", u);
    snprintf(ds, sizeof(ds), ".dlq_%s", u);
    snprintf(audit, sizeof(audit), "audit_%s", u);
    snprintf(asub, sizeof(asub), "%s-value", audit);
    snprintf(store, sizeof(store), "itreg_%s", u);
    snprintf(group, sizeof(group), "itreg-p-%s", u);
    snprintf(subject, sizeof(subject), "%s-value", topic);
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                             subject, &id_cur, err, sizeof(err)) == CORE_OK &&
                      core_registry_bind_subject(r, cat,
                                                 core_avro_catalog_by_name(cat,
                                                                           "tributary.AuditEvent"),
                                                 asub, &mid, err, sizeof(err)) == CORE_OK &&
                      core_registry_bind_subject(r, cat,
                                                 core_avro_catalog_by_name(cat,
                                                                           "tributary.AuditEvent"),
                                                 "audit.events-value", &mid, err,
                                                 sizeof(err)) == CORE_OK,
                  "%s", err);
    id_new = register_payee_variant(r, cat, subject);
    ck_assert_uint_ne(id_new, id_cur);
    produce_payees(topic, 0, ROWS / 2, id_cur, false);
    produce_payees(topic, ROWS / 2, ROWS / 2, id_new, true);

    {
        const char *argv[] = { bin, "--dataset", "payee", "--sink", "postgres", "--create.tables",
                               "--topic.valid.suffix", vs, "--topic.dlq.suffix", ds,
                               "--group.id", group, "--audit.topic", audit, "--http.port", "0",
                               "--pg.schema", store, "--pg.password", "tributary",
                               "--batch.timeout.ms", "200",
                               "--schema.registry.url", registry_url(), NULL };

        snprintf(bin, sizeof(bin), "%s/bin/svc-persister", tu_build_dir());
        snprintf(log, sizeof(log), "/tmp/tb-it-registry-persister-%s.log", u);
        pid = spawn_logged(argv, log);
    }
    deadline = core_mono_ms() + 90000;
    {
        PGconn *c = PQconnectdb("host=127.0.0.1 port=5432 dbname=tributary user=tributary "
                                "password=tributary");
        char q[256];

        ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
        snprintf(q, sizeof(q), "SELECT count(*) FROM \"%s\".payee", store);
        while (rows < ROWS && core_mono_ms() < deadline) {
            PGresult *res = PQexec(c, q);

            if (PQresultStatus(res) == PGRES_TUPLES_OK)
                rows = atol(PQgetvalue(res, 0, 0));
            PQclear(res);
            if (rows < ROWS)
                usleep(200 * 1000); /* polling the table for the rows, with a deadline */
        }
        kill(pid, SIGTERM);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        PQclear(PQexec(c, "SET client_min_messages = warning"));
        snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", store);
        PQclear(PQexec(c, q));
        PQfinish(c);
    }
    ck_assert_msg(rows == ROWS, "%ld of %d rows (log %s)", rows, ROWS, log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "persister exit %d (log %s)", st, log);
    unlink(log);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

/* ---- reader's schema projection (issue 13, part a) ----------------------- */

/* A copy of proto/ in dir (a mkdtemp template) whose payee has a second
 * version: payee.avsc plus an optional field "tier" with the default
 * "standard" (BACKWARD-compatible), the dataset's current schema. */
static void proto_with_payee_v2(char *dir)
{
    char path[1200], src[1100], e[512], *text, *v2;
    char *cp[] = { "/bin/cp", "-r", src, dir, NULL };
    cJSON *j;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/.", tu_proto_dir());
    ck_assert_int_eq(tu_run_cmd(cp, environ, NULL, NULL, 10000), 0);
    snprintf(path, sizeof(path), "%s/payee.avsc", dir);
    text = core_read_file(path, 1 << 20, NULL, e, sizeof(e));
    ck_assert_msg(text != NULL, "%s", e);
    j = cJSON_Parse(text);
    free(text);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "fields"),
                         cJSON_Parse("{\"name\":\"tier\",\"type\":[\"string\",\"null\"],"
                                     "\"default\":\"standard\"}"));
    v2 = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "%s/payee_v2.avsc", dir);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs(v2, f);
    fclose(f);
    free(v2);
    snprintf(path, sizeof(path), "%s/catalog.json", dir);
    text = core_read_file(path, 1 << 20, NULL, e, sizeof(e));
    ck_assert_msg(text != NULL, "%s", e);
    j = cJSON_Parse(text);
    free(text);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(j, "schemas"),
                         cJSON_Parse("{\"id\":105,\"dataset\":\"payee\",\"file\":"
                                     "\"payee_v2.avsc\",\"rules\":\"payee.rules.json\"}"));
    text = cJSON_Print(j);
    cJSON_Delete(j);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
    free(text);
}

static void rm_tree(const char *dir)
{
    char *rm[] = { "/bin/rm", "-rf", (char *)dir, NULL };

    tu_run_cmd(rm, environ, NULL, NULL, 10000);
}

/* The content digest the validator's audit event "valid" gives key (hex,
 * into hex), read from the audit topic with cat (the registry its id source). */
static bool audit_valid_digest(const char *audit, const core_avro_catalog_t *cat, size_t total,
                               const char *key, char *hex, size_t hexsize)
{
    core_kafka_consumer_opts o = { 0 };
    core_kafka_consumer_t *c;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(6);
    char errstr[512], group[128];
    int64_t end = core_mono_ms() + 30000;
    bool found = false;
    size_t n = 0;

    snprintf(group, sizeof(group), "itreg-audit-%s", tu_unique());
    o.defaults = kdefaults;
    o.ndefaults = 1;
    o.group_id = group;
    c = core_kafka_consumer_new(&o, errstr, sizeof(errstr));
    ck_assert_msg(c != NULL, "%s", errstr);
    for (int i = 0; i < 6; i++)
        rd_kafka_topic_partition_list_add(parts, audit, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(core_kafka_consumer_assign(c, parts, errstr, sizeof(errstr)), CORE_OK);
    rd_kafka_topic_partition_list_destroy(parts);
    while (!found && n < total && core_mono_ms() < end) {
        rd_kafka_message_t *m = core_kafka_consumer_poll(c, 100);
        const core_avro_schema_t *s;
        avro_value_t v;

        if (!m)
            continue;
        if (!m->err && ++n &&
            core_avro_decode(cat, m->payload, m->len, &s, &v, errstr, sizeof(errstr)) ==
                CORE_OK) {
            cJSON *j = core_avro_to_json(s, &v, errstr, sizeof(errstr));
            const cJSON *k = cJSON_GetObjectItem(j, "key"), *o2 = cJSON_GetObjectItem(j, "outcome"),
                        *d = cJSON_GetObjectItem(j, "content_digest");

            if (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0 && cJSON_IsString(o2) &&
                strcmp(o2->valuestring, "valid") == 0 && cJSON_IsString(d)) {
                snprintf(hex, hexsize, "%s", d->valuestring);
                found = true;
            }
            cJSON_Delete(j);
            avro_value_decref(&v);
        }
        rd_kafka_message_destroy(m);
    }
    core_kafka_consumer_free(c);
    return found;
}

/* A new BACKWARD-compatible version of payee (an added optional field with
 * a default) registered; records written with the OLD id: the validator
 * (whose catalogue has the new version as current) validates them as the
 * new version, and svc-cache-feeder stores them in the new shape, the new
 * field at its default. The validator's audit content digest is that of the
 * stored record, so recon sees nothing altered. */
START_TEST(old_id_records_read_as_the_new_version_by_validator_and_feeder)
{
    enum { ROWS = 20 };
    struct run_names n;
    char dir[] = "/tmp/tb-it-registry-v2-XXXXXX", subject[256], err[1024], cprefix[96];
    core_avro_catalog_t *cat = catalog(), *cat2;
    core_registry_t *r = registry(true);
    uint32_t id_old = 0, id_new = 0;

    names_new(&n);
    proto_with_payee_v2(dir);
    cat2 = core_avro_catalog_load(dir, err, sizeof(err));
    ck_assert_msg(cat2 != NULL, "%s", err);
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                             subject, &id_old, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    /* the new version, under the subject's BACKWARD check */
    ck_assert_msg(core_registry_bind_subject(r, cat2, core_avro_catalog_by_dataset(cat2, "payee"),
                                             subject, &id_new, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    ck_assert_msg(id_new != id_old, "%s registered as the old id %u",
                  core_avro_schema_file(core_avro_catalog_by_dataset(cat2, "payee")), id_old);
    produce_payees(n.raw, 0, ROWS, id_old, false);

    {
        char bin[512], group[128], inst[128], log[256];
        const char *argv[] = { bin, "--dataset", "payee", "--topic.prefix", n.prefix,
                               "--audit.topic", n.audit, "--group.id", group, "--instance.id",
                               inst, "--http.port", "0", "--commit.interval.ms", "100",
                               "--proto.dir", dir, "--schema.registry.auto.register.schemas",
                               "--schema.registry.url", registry_url(), NULL };
        pid_t pid;
        int st = 0;
        size_t nvalid;

        snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
        snprintf(group, sizeof(group), "itreg-v2-%s", tu_unique());
        snprintf(inst, sizeof(inst), "itreg-v2-%s", tu_unique());
        snprintf(log, sizeof(log), "/tmp/tb-it-registry-v2-validator-%s.log", tu_unique());
        pid = spawn_logged(argv, log);
        /* the old version's records keep its id: their bytes are its */
        nvalid = read_topic(n.valid, ROWS, 90000, id_old, NULL);
        kill(pid, SIGTERM);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(nvalid == ROWS, "%zu of %d on .valid (log %s)", nvalid, ROWS, log);
        ck_assert_msg(read_topic(n.dlq, 1, 2000, 0, NULL) == 0, "a record on .dlq (log %s)", log);
        {
            /* it registered the current version under its outputs' subjects */
            core_registry_t *look = registry(false);
            uint32_t out[3];

            bind_outputs(look, cat2, &n, out);
            for (int k = 0; k < 3; k++)
                ck_assert_uint_eq(out[k], id_new);
            core_registry_free(look);
        }
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validator exit %d (log %s)", st,
                      log);
        unlink(log);
    }
    feeder_caches_valid_in(&n, ROWS, dir, cprefix, sizeof(cprefix));
    {
        /* the stored record: the new shape, tier at its default */
        redisContext *c = redisConnect("127.0.0.1", 6379);
        const core_avro_schema_t *v2 = core_avro_catalog_by_dataset(cat2, "payee");
        redisReply *rep;
        cJSON *doc;
        avro_value_t v;
        core_digest d;
        char hex[CORE_DIGEST_HEX_LEN + 1], want[CORE_DIGEST_HEX_LEN + 1];

        ck_assert_msg(c && !c->err, "redis");
        rep = redisCommand(c, "GET %s:payee:P3", cprefix);
        ck_assert_msg(rep && rep->type == REDIS_REPLY_STRING, "no P3 in redis");
        doc = cJSON_Parse(rep->str);
        freeReplyObject(rep);
        redisFree(c);
        ck_assert_ptr_nonnull(doc);
        ck_assert_msg(cJSON_IsString(cJSON_GetObjectItem(doc, "tier")),
                      "the stored record has no tier: not read as the new version");
        ck_assert_str_eq(cJSON_GetObjectItem(doc, "tier")->valuestring, "standard");
        ck_assert_str_eq(cJSON_GetObjectItem(doc, "payee_id")->valuestring, "P3");
        /* what recon recomputes from it equals the validator's audit digest */
        ck_assert_msg(core_avro_from_json(v2, doc, &v, err, sizeof(err)) == CORE_OK, "%s", err);
        ck_assert_int_eq(core_avro_content_digest_value(v2, &v, &d, err, sizeof(err)), CORE_OK);
        avro_value_decref(&v);
        cJSON_Delete(doc);
        core_digest_to_hex(&d, want);
        ck_assert_int_eq(core_avro_catalog_set_fetch(cat2, core_registry_fetch, r), CORE_OK);
        ck_assert_msg(audit_valid_digest(n.audit, cat2, 1000, "P3", hex, sizeof(hex)),
                      "no valid audit event of P3");
        ck_assert_str_eq(hex, want);
    }
    rm_tree(dir);
    core_avro_catalog_free(cat2);
    core_avro_catalog_free(cat);
    core_registry_free(r);
}
END_TEST

/* svc-validator in registry mode binds the dataset's schema under the
 * subject of each output at start: registration off and <valid>-value
 * missing is exit 78 naming it; registration on, it registers all three,
 * and a record of the current schema leaves on .valid with the id of
 * <valid>-value (the registry's id of that text: the writer's, so the
 * header needs no rewrite, and the payload digest covers the body alone). */
START_TEST(validator_binds_its_output_subjects)
{
    enum { ROWS = 5 };
    struct run_names n;
    core_avro_catalog_t *cat = catalog();
    core_registry_t *r = registry(true);
    char subject[256], vsub[256], asub[256], err[1024], bin[512], group[128], inst[128],
        log[256];
    const char *argv[] = { bin, "--dataset", "payee", "--topic.prefix", n.prefix,
                           "--audit.topic", n.audit, "--group.id", group, "--instance.id",
                           inst, "--http.port", "0", "--commit.interval.ms", "100",
                           "--startup.timeout.ms", "10000",
                           "--schema.registry.url", registry_url(), NULL, NULL };
    const core_avro_schema_t *audit = core_avro_catalog_by_name(cat, "tributary.AuditEvent");
    uint32_t id_raw = 0, mid = 0, out[3];
    char *out_txt = NULL, *err_txt = NULL;
    int rc, st = 0;
    pid_t pid;

    names_new(&n);
    snprintf(subject, sizeof(subject), "%s-value", n.raw);
    snprintf(vsub, sizeof(vsub), "%s-value", n.valid);
    snprintf(bin, sizeof(bin), "%s/bin/svc-validator", tu_build_dir());
    snprintf(group, sizeof(group), "itreg-vo-%s", tu_unique());
    snprintf(inst, sizeof(inst), "itreg-vo-%s", tu_unique());
    ck_assert_msg(core_registry_bind_subject(r, cat, core_avro_catalog_by_dataset(cat, "payee"),
                                             subject, &id_raw, err, sizeof(err)) == CORE_OK,
                  "%s", err);
    snprintf(asub, sizeof(asub), "%s-value", n.audit);
    ck_assert_msg(core_registry_bind_subject(r, cat, audit, asub, &mid, err, sizeof(err)) ==
                      CORE_OK &&
                      core_registry_bind_subject(r, cat, audit, "audit.events-value", &mid, err,
                                                 sizeof(err)) == CORE_OK,
                  "%s", err);

    /* registration off, the outputs' subjects missing */
    rc = tu_run_cmd((char *const *)argv, environ, &out_txt, &err_txt, 60000);
    ck_assert_msg(rc == 78, "exit %d: %s", rc, err_txt);
    ck_assert_msg(strstr(err_txt, vsub) && strstr(err_txt, "auto.register.schemas"),
                  "stderr does not name %s: %s", vsub, err_txt);
    free(out_txt);
    free(err_txt);

    /* registration on: all three registered, records through with that id */
    argv[CORE_ARRAY_SIZE(argv) - 2] = "--schema.registry.auto.register.schemas";
    snprintf(log, sizeof(log), "/tmp/tb-it-registry-vo-%s.log", tu_unique());
    produce_payees(n.raw, 0, ROWS, id_raw, false);
    pid = spawn_logged(argv, log);
    {
        size_t nvalid = read_topic(n.valid, ROWS, 90000, id_raw, NULL);

        kill(pid, SIGTERM);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(nvalid == ROWS, "%zu of %d on .valid (log %s)", nvalid, ROWS, log);
    }
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validator exit %d (log %s)", st, log);
    {
        core_registry_t *look = registry(false);

        bind_outputs(look, cat, &n, out);
        core_registry_free(look);
    }
    for (int k = 0; k < 3; k++)
        ck_assert_uint_eq(out[k], id_raw);
    unlink(log);
    core_registry_free(r);
    core_avro_catalog_free(cat);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *c = tcase_create("client");
    TCase *v = tcase_create("services");

    tcase_set_timeout(c, 60);
    tcase_add_test(c, client_registers_looks_up_fetches_and_caches);
    tcase_add_test(c, record_name_strategy_binds_under_the_full_name);
    tcase_add_test(c, incompatible_schema_refused_with_409_and_the_registry_message);
    suite_add_tcase(s, c);
    tcase_set_timeout(v, 180);
    tcase_add_test(v, ingest_subject_not_registered_exits_78_naming_it);
    tcase_add_test(v, ingest_incompatible_schema_exits_78_with_the_registry_message);
    tcase_add_test(v, registry_down_at_start_exits_69_naming_it);
    tcase_add_test(v, ingest_to_validator_with_registry_ids_and_unknown_id_to_dlq);
    tcase_add_test(v, registry_restart_keeps_ids_and_schemas);
    tcase_add_test(v, registry_down_at_run_time_retries_not_poison);
    tcase_add_test(v, persister_writes_records_with_registry_ids);
    tcase_add_test(v, old_id_records_read_as_the_new_version_by_validator_and_feeder);
    tcase_add_test(v, validator_binds_its_output_subjects);
    suite_add_tcase(s, v);
    return s;
}

int main(void)
{
    Suite *s[] = { registry_suite() };

    return tu_run(s, 1);
}
