/* persister.h — svc-persister's own types around core_sink: a dataset as
 * the databases see it, a decoded record, one write per key (pers_op), the
 * database interface (pers_sink: PostgreSQL in sink_pg.c, MongoDB in
 * sink_mongo.c, MySQL/MariaDB in sink_mysql.c, each with its own
 * configuration table), the three sink plugins built on it (persister.c),
 * the per-key reduction and bisection (reduce.c) and the Redis buffer backup (backup.c). main.c chooses the
 * plugin. Nothing here is shared with another service.
 *
 * Who calls whom (no circle): main.c → persister.c, backup.c, schema.c,
 * sink_pg.c, sink_mongo.c, sink_mysql.c; persister.c → backup.c, reduce.c,
 * record.c; backup.c → reduce.c, record.c; reduce.c → the database only through
 * pers_sink's function pointers; sink_pg.c → reduce.c (bisection),
 * pg_row.c, record.c, schema.c; sink_mongo.c → sink_pg.c (SQLSTATE names);
 * sink_mysql.c → reduce.c (bisection), record.c, sink_pg.c (SQLSTATE names);
 * record.c → the dataset's row function (pg_row.c's, set by sink_pg.c). */
#ifndef SVC_PERSISTER_H
#define SVC_PERSISTER_H

#include "tributary/core_avro.h"
#include "tributary/core_config.h"
#include "tributary/core_digest.h"
#include "tributary/core_retry.h"
#include "tributary/core_sink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
typedef struct pers_dataset pers_dataset;

/** One column of a dataset's table: a top-level field other than meta. */
typedef struct pers_column {
    char *name;
    char *pg_type;   /* "text", "numeric(18,2)", "timestamptz", ... */
    bool nullable;
    bool is_key;
    bool is_time_ms; /* timestamp-millis: stored as a date in MongoDB */
} pers_column;

/** The COPY row of a record of ds->schema from its Avro value (malloc'd,
 * no trailing separator): sink_pg.c's, set on the dataset by its setup. */
typedef core_err_t (*pers_row_fn)(const pers_dataset *ds, avro_value_t *value, char **row,
                                  size_t *len, char *errstr, size_t errstr_size);

/** A dataset as the sinks see it. */
struct pers_dataset {
    const char *name;                 /* borrowed from the config */
    const core_avro_schema_t *schema; /* borrowed from the catalogue */
    const char *key_field;
    pers_column *cols;
    size_t ncols;
    size_t key_col;
    char *topic_valid;
    char *topic_dlq;
    /* PostgreSQL: per column, its field compiled against schema, so a
     * record of that schema becomes its COPY row straight from the Avro
     * value (pers_pg_rows_init). NULL: records keep their natural JSON. */
    core_avro_path_t **row_paths;
    pers_row_fn row;
};

typedef enum pers_kind {
    PERS_UPSERT = 0, /* ADD or UPDATE: write the row if newer */
    PERS_DELETE = 1, /* DELETE, or the old key of a moved record */
} pers_kind_t;

typedef enum pers_fate {
    PERS_PENDING = 0,
    PERS_WRITTEN,  /* the database took it */
    PERS_STALE,    /* a newer version was stored or in the same batch */
    PERS_DEAD,     /* refused: goes to the DLQ */
} pers_fate_t;

/** One record from Kafka, decoded. Owns every pointer. */
typedef struct pers_record {
    pers_dataset *ds;
    char *topic;
    int32_t partition;
    int64_t offset;
    void *kkey;           /* Kafka key bytes, as received */
    size_t kkeylen;
    void *value;          /* Kafka value bytes, as received */
    size_t vallen;
    /* decoded (NULL/0 when the record could not be decoded) */
    char *id;
    char *batch_id;
    char *key;
    char *old_key;
    int64_t version;
    core_avro_op_t op;
    struct cJSON *json;   /* natural JSON of the record (NULL when row is set) */
    char *row;            /* COPY text of the columns, tab-separated (PostgreSQL) */
    size_t rowlen;
    core_digest digest;
    pers_fate_t fate;
    int64_t ingest_ts;    /* tb.ingest.ts (ms since the epoch); 0: not known */
    char *error;          /* why it is dead */
    char error_class[16]; /* invalid | poison */
    char *backup_key;     /* its copy in Redis (backup.c), or NULL */
} pers_record;

/** One write to the database: the winning event of a key in a batch. */
typedef struct pers_op {
    pers_kind_t kind;
    const char *key;
    int64_t version;
    pers_record *rec; /* the event it comes from */
    bool primary;     /* false for the old-key delete of a moved record */
    pers_fate_t fate;
    char *error;
} pers_op;

/** Result class of one sink call (Fluent Bit style). */
typedef enum pers_res {
    PERS_OK = 0,
    PERS_RETRY = 1, /* the database is unreachable or busy: back off */
    PERS_ERROR = 2, /* the database refused the data: isolate the row */
} pers_res_t;

typedef struct pers_sink pers_sink;
struct pers_sink {
    const char *name; /* "postgres" | "mongodb" | "mysql" */
    char addr[256];   /* where it connects (host:port, never a credential) */
    /* (Re)connect when not connected. PERS_RETRY: unreachable (errstr says
     * why); PERS_ERROR: the server refused the configuration (a password,
     * a database name): errstr names the key. */
    pers_res_t (*connect)(pers_sink *s, char *errstr, size_t errstr_size);
    /* Write the ops of one dataset (unique keys): sets each op's fate to
     * WRITTEN, STALE or DEAD (with error); PERS_RETRY leaves fates PENDING
     * and nothing written. Whole batch in one transaction. Gives up (RETRY)
     * between two statements once core_lifecycle_give_up(). */
    pers_res_t (*write)(pers_sink *s, pers_dataset *ds, pers_op *ops, size_t n,
                        char *errstr, size_t errstr_size);
    /* Connect when needed and check the database answers: results as
     * connect's. NULL for a SQL sink: connect, then exec "SELECT 1", the
     * connection dropped when that fails (pers_sink_ping). */
    pers_res_t (*ping)(pers_sink *s, char *errstr, size_t errstr_size);
    /* SQL sinks: run one statement (PERS_OK, else what write would say of
     * its failure), and drop the connection (the next call reconnects). */
    pers_res_t (*exec)(pers_sink *s, const char *sql, char *errstr, size_t errstr_size);
    void (*drop)(pers_sink *s);
    /* Once, after the database answered and before any write: what the
     * datasets need (PostgreSQL: their COPY rows; with create, the tables
     * or indexes). @returns 0, or an exit code with errstr. */
    int (*setup)(pers_sink *s, pers_dataset *ds, size_t nds, bool create, char *errstr,
                 size_t errstr_size);
    void (*free)(pers_sink *s);
};

/** The sink's ping, or for a SQL sink connect + "SELECT 1" (persister.c). */
pers_res_t pers_sink_ping(pers_sink *s, char *errstr, size_t errstr_size);

/* schema.c */
/** A dataset's columns and topics: {prefix}{name}.valid and .dlq
 * (core_topics), or, with the deprecated suffix keys, {prefix}{name}{suffix}.
 * @returns 0, or -1 with errstr (a bad prefix names topic.prefix). */
int pers_dataset_init(pers_dataset *ds, const char *name, const core_avro_catalog_t *cat,
                      const char *prefix, const char *valid_suffix, const char *dlq_suffix,
                      char *errstr, size_t errstr_size);
void pers_dataset_clear(pers_dataset *ds);
/** CREATE TABLE ... for the dataset (malloc'd). */
char *pers_schema_sql(const pers_dataset *ds, const char *pg_schema);

/* record.c */
/** Fill rec from a Kafka message's bytes. A record that cannot be decoded
 * is returned with fate PERS_DEAD and error set (not an error return).
 * @returns 0 or -1 on out of memory. */
int pers_record_decode(pers_record *rec, pers_dataset *ds, core_avro_decoder_t *dec,
                       const char *topic, int32_t partition, int64_t offset,
                       const void *key, size_t keylen, const void *value, size_t vallen);
void pers_record_clear(pers_record *rec);
/** Column value as text for COPY: NULL for SQL NULL. *tmp receives a
 * malloc'd buffer to free when one was needed. */
const char *pers_column_text(const pers_record *rec, const pers_column *col, char **tmp);

/* reduce.c */
/** Reduce records to one op per key (highest version wins; equal versions:
 * the later record). Records that lose are marked PERS_STALE.
 * @returns a malloc'd array of *nops ops (NULL when n == 0 or no memory). */
pers_op *pers_reduce(pers_record **recs, size_t n, size_t *nops);
/** Write every dataset's part of recs[0..n) (ds[0..nds)) through db, one
 * write per key; the records of a key whose winner the database refused go
 * again (the next version down wins). Sets every record's fate.
 * PERS_RETRY: nothing may be committed (what was written is idempotent and
 * will be redone). The thread that owns db. */
pers_res_t pers_write_all(pers_sink *db, pers_dataset *ds, size_t nds, pers_record **recs,
                          size_t n, char *errstr, size_t errstr_size);
/** Write one range of ops (all or nothing): PERS_OK, PERS_ERROR (the
 * database refused the data, nothing of the range written; err says why)
 * or PERS_RETRY. */
typedef pers_res_t (*pers_range_fn)(void *ctx, pers_dataset *ds, pers_op *ops, size_t n,
                                    char *err, size_t err_size);
/** Write ops by ranges: a refused range is split in two until each refused
 * op is alone (its fate PERS_DEAD with the database's reason); the others
 * are written. Gives up (RETRY) between two tries once
 * core_lifecycle_give_up(). */
pers_res_t pers_bisect(pers_range_fn write_range, void *ctx, pers_dataset *ds, pers_op *ops,
                       size_t n, char *errstr, size_t errstr_size);

/* backup.c: the Redis copy of the records in hand (seed 004), one hash per
 * record at msg:buffer:<instance.id>:<uuid>, restored and written on the
 * next start of the same instance.id. Main thread only. */
struct pers_backup_conf {
    bool enabled;
    char *host;
    int64_t port;
    char *password;
    int64_t db;
};
extern const core_config_key pers_backup_keys[];
typedef struct pers_backup pers_backup_t;
/** NULL with errstr (a configuration error), or the backup (not connected
 * yet). */
pers_backup_t *pers_backup_new(const struct pers_backup_conf *conf, const char *instance_id,
                               char *errstr, size_t errstr_size);
void pers_backup_free(pers_backup_t *b);
/** Queue rec's copy (rec->backup_key set); sent by pers_backup_send(). */
void pers_backup_add(pers_backup_t *b, pers_record *rec);
/** Send the queued copies and deletes (one round trip). */
void pers_backup_send(pers_backup_t *b);
/** Queue the delete of rec's copy (written: no longer needed). */
void pers_backup_forget(pers_backup_t *b, pers_record *rec);
/** Before consuming: write back through db what an earlier run of this
 * instance left in Redis, batch_size records at a time, retrying with
 * backoff until the database takes them; then delete the copies. Their
 * offsets were never committed, so Kafka redelivers them too (writing
 * twice is idempotent). @returns false when stopping meanwhile. */
bool pers_backup_restore(pers_backup_t *b, pers_sink *db, pers_dataset *ds, size_t nds,
                         const core_avro_catalog_t *cat, size_t batch_size,
                         const core_backoff *bo);

/* persister.c: the sink plugins, name "postgres", "mongodb" and "mysql",
 * each with its database's configuration table. plugin_conf: a pers_plugin_conf. */
typedef struct pers_plugin_conf {
    pers_sink *db;           /* connected by main's start-up probe; the writer thread's */
    pers_dataset *ds;        /* parallel to the sink's datasets */
    size_t nds;
    core_avro_catalog_t const *cat;
    pers_backup_t *backup;   /* NULL: no backup */
    size_t batch_size;       /* restore in batches of this size */
    core_backoff backoff;    /* between restore attempts */
} pers_plugin_conf;
extern const core_sink_plugin pers_pg_plugin;
extern const core_sink_plugin pers_mongo_plugin;
extern const core_sink_plugin pers_mysql_plugin;
/** /readyz "<sink>": false with the reason while the database is not known
 * to answer (at start until it does, after a failed write or ping). Any
 * thread; a core_http probe (opaque unused). */
bool pers_ready(void *opaque, char *reason, size_t reason_size);
void pers_ready_set(bool ok, const char *reason);
/** Register the persister's own metrics (tributary_persister_*) once. */
void pers_metrics_init(void);

/* A database's reason for refusing a record reaches the DLQ headers, the
 * audit event and the logs, so it never carries the record's values:
 * PostgreSQL's DETAIL ("Key (name)=(John Smith) already exists", "Failing
 * row contains (...)") and the primary text of a data error ('invalid input
 * syntax for type integer: "x"') are left out, as is MongoDB's E11000
 * "dup key: { name: \"John Smith\" }". What stays: the SQLSTATE or code,
 * its condition name, and the constraint, index or column it names. */

/* sink_pg.c */
struct pers_pg_conf {
    char *conninfo;
    char *password;
    char *sslmode;
    char *sslrootcert;
    char *schema;
    int64_t statement_timeout_ms;
};
extern const core_config_key pers_pg_keys[];
/** The condition name of a SQLSTATE of class 22 or 23 ("unique_violation",
 * "data_exception" for a code of those classes not listed), else NULL. */
const char *pers_sqlstate_name(const char *sqlstate);
/** conf must outlive the sink. NULL with errstr naming the key. */
pers_sink *pers_pg_new(const struct pers_pg_conf *conf, char *errstr, size_t errstr_size);
/* pg_row.c */
/** s in COPY's text format (backslash, tab, newline, carriage return
 * escaped; NULL: \N). */
void pers_copy_text(core_strbuf *b, const char *s);
/** Compile the datasets' row paths (a dataset with a jsonb column keeps
 * natural JSON). @returns 0, or -1 with errstr (out of memory). */
int pers_pg_rows_init(pers_dataset *ds, size_t nds, char *errstr, size_t errstr_size);
/** The COPY row of a record of ds->schema, from its Avro value (malloc'd,
 * no trailing separator). Thread-safe (no state). @returns CORE_OK,
 * CORE_ERR_INVALID with errstr (a value natural JSON cannot show), or
 * CORE_ERR_NOMEM. */
core_err_t pers_pg_row(const pers_dataset *ds, avro_value_t *value, char **row, size_t *len,
                       char *errstr, size_t errstr_size);

/* sink_mongo.c */
struct pers_mongo_conf {
    char *uri;
    char *database;
    char *write_concern;
    int64_t wtimeout_ms;
    core_cfg_list indexes;
    bool decimal128;
};
extern const core_config_key pers_mongo_keys[];
/** A MongoDB or FerretDB refusal message without values, into buf:
 * "duplicate key (index name_1)", "SQLSTATE 23505 unique_violation
 * (constraint payee_name_idx)", or the message's text before the first
 * quote or brace. */
void pers_mongo_reason(const char *msg, char *buf, size_t size);
/** Is a failed command's error (bson_error_t domain, code, message) a
 * refused login (the configuration's), not an outage? */
bool pers_mongo_login_refused(uint32_t domain, uint32_t code, const char *msg);
/** conf must outlive the sink. NULL with errstr naming the key. */
pers_sink *pers_mongo_new(const struct pers_mongo_conf *conf, char *errstr, size_t errstr_size);

/* sink_mysql.c */
struct pers_mysql_conf {
    char *host;
    int64_t port;
    char *user;
    char *password;
    char *database;
    int64_t connect_timeout_ms;
    int64_t read_timeout_ms;
    char *ssl_ca;
};
extern const core_config_key pers_mysql_keys[];
/** CREATE TABLE ... for the dataset and its tombstones, MySQL's dialect
 * (malloc'd; NULL: out of memory). */
char *pers_mysql_schema_sql(const pers_dataset *ds);
/** conf must outlive the sink. NULL with errstr naming the key. */
pers_sink *pers_mysql_new(const struct pers_mysql_conf *conf, char *errstr, size_t errstr_size);

#endif
