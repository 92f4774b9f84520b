/* tu_stack.h — the local stack as the integration tests see it: topics on
 * the broker, reading a topic to its end, HTTP to a running service,
 * spawning and stopping the services, PostgreSQL statements. One copy of
 * what each integration test used to write for itself.
 *
 * Every helper asserts (Check) where a failure means the test cannot go on
 * (no broker, a refused statement); helpers named "try" or returning a code
 * leave the verdict to the test. Servers are the stack's defaults
 * (deploy/local/stack.sh): Kafka 127.0.0.1:9092, PostgreSQL 127.0.0.1:5432
 * (database and user "tributary"). */
#ifndef TRIBUTARY_TU_STACK_H
#define TRIBUTARY_TU_STACK_H

#include "tributary/core_avro.h"
#include "tributary/core_kafka.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cJSON;

#define TU_BROKERS "127.0.0.1:9092"
#define TU_PG_CONNINFO "host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary"

void tu_sleep_ms(int ms);

/* The catalogue of proto/ (tu_proto_dir()); asserts it loads. */
core_avro_catalog_t *tu_catalog_load(void);

/* ---- Kafka ------------------------------------------------------------------ */

/* A producer to TU_BROKERS with linger.ms as given ("0", "5"). */
core_kafka_producer_t *tu_producer(const char *linger_ms);

/* Create a topic (replication 1) and wait until its partitions have
 * leaders; an existing topic is taken as it is. */
void tu_topic_create(const char *name, int partitions);

/* Delete topics, best effort (a test's clean-up: never asserts). */
void tu_topics_delete(const char *const *names, size_t n);

/* Called for each record read; m is valid during the call only. */
typedef void tu_record_fn(const rd_kafka_message_t *m, void *user);

/* Read every record of a topic from its beginning up to its high
 * watermarks taken at the call (isolation "read_committed" or
 * "read_uncommitted"); asserts it gets there within 120 s.
 * @returns the records read. */
size_t tu_topic_read(const char *topic, const char *isolation, tu_record_fn *fn, void *user);

/* A record's header value as a NUL-terminated copy in buf ("" for an empty
 * one); NULL when the record has no such header. */
const char *tu_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size);

/* Records of a topic (read_committed) carrying header name, with that
 * value when value is not NULL. */
size_t tu_topic_count_header(const char *topic, const char *name, const char *value);

/* ---- HTTP ------------------------------------------------------------------- */

/* One request to http://127.0.0.1:port path: method "GET", "POST"...;
 * auth: the Authorization header's value ("Bearer <token>") or NULL; body:
 * sent as JSON when not NULL (a POST without one sends an empty body).
 * *resp (may be NULL) receives the malloc'd response body ("" when none).
 * @returns the status, 0 when no answer came (150 s at most). */
long tu_http(int port, const char *method, const char *path, const char *auth, const char *body,
             char **resp);

/* GET path. */
long tu_http_get(int port, const char *path, char **resp);

/* A request whose answer is JSON: *json (may be NULL) receives it parsed
 * (NULL when it is not JSON). */
long tu_http_json(int port, const char *method, const char *path, const char *auth,
                  struct cJSON **json);

/* Scrape GET /metrics: the sum of the samples of metric name (a sample
 * line "name{...} v" or "name v") whose line contains filter (may be "",
 * e.g. "sink=\"redis\""), into *sum. @returns the samples summed (0 when
 * none or no answer). */
size_t tu_metric_sum(int port, const char *name, const char *filter, double *sum);

/* Wait until GET /readyz on port answers 200 (a service answers 503 while
 * it starts). @returns true when it did within timeout_ms. */
bool tu_wait_ready(int port, int timeout_ms);

/* ---- services ----------------------------------------------------------------- */

/* build/bin/<svc> (a static buffer per call site is not needed: the
 * result is valid until the 8th next call). */
const char *tu_bin(const char *svc);

/* The services' environment: TB_PROTO_DIR, PATH, MONGOC_DISABLE_SHM=1, and
 * TB_PG_PASSWORD when
 * pg_password (only svc-recon and the persister take that key). Static. */
char **tu_env(bool pg_password);

/* Start build/bin/<svc> with args (NULL-terminated) and envp (NULL:
 * tu_env(false)); its stdout and stderr go to log (NULL: /dev/null).
 * @returns its pid. */
pid_t tu_spawn(const char *svc, const char *const *args, char *const envp[], const char *log);

/* Send sig and wait up to timeout_ms for the process to end (then
 * SIGKILL). @returns its exit code, 128 + the signal that ended it, or -1
 * when it had to be killed. */
int tu_stop(pid_t pid, int sig, int timeout_ms);

/* A service as the tests run it beside others: --http.port=port,
 * --shutdown.grace.ms=10000, --log.level=warn, then args; asserts that
 * /readyz answers 200 within 60 s. */
pid_t tu_service_start(const char *svc, int port, const char *const *args, char *const envp[]);

/* SIGTERM, and assert it exits 0 within 60 s. */
void tu_service_stop(pid_t pid);

/* Fail the test when pid has already exited (naming its log). */
void tu_assert_alive(pid_t pid, const char *log);

/* Lines of a service's stderr that are not JSON log lines (a plain-text
 * error: the one line a failing start prints). */
int tu_count_plain_lines(const char *s);

/* ---- PostgreSQL ------------------------------------------------------------- */

/* A connection to TU_PG_CONNINFO with notices silenced; asserts it is up. */
PGconn *tu_pg_connect(void);

/* Run one statement (or several, simple protocol); asserts it succeeds. */
void tu_pg_exec(const char *sql);

/* The first column of the first row of a query, as an integer; -1 when
 * the query fails (a table not made yet), returns no row or NULL. */
long long tu_pg_count(const char *sql);

/* DROP SCHEMA IF EXISTS schema CASCADE. */
void tu_pg_drop_schema(const char *schema);

/* ---- a webhook receiver ----------------------------------------------------- */

/* One receiver at a time on 127.0.0.1 (POST /hook): the first fail_first
 * requests get 503 (a sender's retry tested), the others 200 and their
 * bodies kept. @returns its port. */
int tu_hook_start(int fail_first);

/* The n-th body taken (0-based), parsed; waits up to timeout_ms, asserts. */
struct cJSON *tu_hook_wait(int n, int timeout_ms);

/* Bodies taken, and requests answered (503s included), so far. */
int tu_hook_taken(void);
int tu_hook_calls(void);

/* Stop the receiver, free what it kept. */
void tu_hook_stop(void);

#endif
