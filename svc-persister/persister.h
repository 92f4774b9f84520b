/* persister.h — svc-persister's own types: the configuration, a decoded
 * record ready for a sink, a batch, and the sink interface (PostgreSQL,
 * MongoDB). Nothing here is shared with another service. */
#ifndef SVC_PERSISTER_H
#define SVC_PERSISTER_H

#include "tributary/core_avro.h"
#include "tributary/core_config.h"
#include "tributary/core_digest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

struct persister_conf {
    core_cfg_list datasets;
    char *sink;
    int64_t batch_size;
    int64_t batch_timeout_ms;
    char *group_id;
    char *group_instance_id;
    char *topic_valid_suffix;
    char *topic_dlq_suffix;
    char *audit_topic;
    bool create_tables;
    /* PostgreSQL */
    char *pg_conninfo;
    char *pg_password;
    char *pg_sslmode;
    char *pg_sslrootcert;
    char *pg_schema;
    int64_t pg_statement_timeout_ms;
    /* MongoDB */
    char *mongo_uri;
    char *mongo_database;
    char *mongo_write_concern;
    int64_t mongo_wtimeout_ms;
    core_cfg_list mongo_indexes;
    bool mongo_decimal128;
    /* outages */
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    int64_t breaker_threshold;
    int64_t breaker_open_ms;
    /* Redis buffer backup (seed 004) */
    bool backup_enabled;
    char *redis_host;
    int64_t redis_port;
    char *redis_password;
    int64_t redis_db;
};

/** One column of a dataset's table: a top-level field other than meta. */
typedef struct pers_column {
    char *name;
    char *pg_type;   /* "text", "numeric(18,2)", "timestamptz", ... */
    bool nullable;
    bool is_key;
    bool is_time_ms; /* timestamp-millis: stored as a date in MongoDB */
} pers_column;

/** A dataset as the sinks see it. */
typedef struct pers_dataset {
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
} pers_dataset;

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
    const char *name; /* "postgres" | "mongodb" */
    char addr[256];   /* where it connects (host:port, never a credential) */
    /* (Re)connect when not connected. PERS_RETRY: unreachable (errstr says
     * why); PERS_ERROR: the server refused the configuration (a password,
     * a database name): errstr names the key. */
    pers_res_t (*connect)(pers_sink *s, char *errstr, size_t errstr_size);
    /* Write the ops of one dataset (unique keys): sets each op's fate to
     * WRITTEN, STALE or DEAD (with error); PERS_RETRY leaves fates PENDING
     * and nothing written. Whole batch in one transaction. */
    pers_res_t (*write)(pers_sink *s, pers_dataset *ds, pers_op *ops, size_t n,
                        char *errstr, size_t errstr_size);
    /* Connect when needed and check the database answers: results as
     * connect's. */
    pers_res_t (*ping)(pers_sink *s, char *errstr, size_t errstr_size);
    void (*free)(pers_sink *s);
};

/* schema.c */
int pers_dataset_init(pers_dataset *ds, const char *name, const core_avro_catalog_t *cat,
                      const struct persister_conf *conf, char *errstr, size_t errstr_size);
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
/** Reduce records to one op per key (highest version wins; equal versions:
 * the later record). Records that lose are marked PERS_STALE.
 * @returns a malloc'd array of *nops ops (NULL when n == 0 or no memory). */
pers_op *pers_reduce(pers_record **recs, size_t n, size_t *nops);
/** Column value as text for COPY: NULL for SQL NULL. *tmp receives a
 * malloc'd buffer to free when one was needed. */
const char *pers_column_text(const pers_record *rec, const pers_column *col, char **tmp);

/* persister.c: true once the service is stopping and its grace period
 * (shutdown.grace.ms) is over: a sink abandons the batch it is writing
 * between two statements (PERS_RETRY; every write is idempotent and the
 * offsets are not committed, so the records are redelivered). */
bool pers_give_up(char *errstr, size_t errstr_size);

/* persister.c: readiness. /readyz answers 503 with the reason while the
 * database is not known to answer (at start until it does, after a failed
 * write or ping, while the circuit is open), else as Kafka's readiness.
 * pers_ready_set(): any thread. */
struct core_service;
void pers_ready_install(struct core_service *svc);
void pers_ready_set(bool ok, const char *reason);

/* persister.c: the work loop until stopped; returns the exit code. */
struct core_service;
int persister_loop(struct core_service *svc, const struct persister_conf *conf, pers_dataset *ds,
                   size_t nds, pers_sink *sink);

/* A database's reason for refusing a record reaches the DLQ headers, the
 * audit event and the logs, so it never carries the record's values:
 * PostgreSQL's DETAIL ("Key (name)=(John Smith) already exists", "Failing
 * row contains (...)") and the primary text of a data error ('invalid input
 * syntax for type integer: "x"') are left out, as is MongoDB's E11000
 * "dup key: { name: \"John Smith\" }". What stays: the SQLSTATE or code,
 * its condition name, and the constraint, index or column it names. */

/* sink_pg.c */
/** The condition name of a SQLSTATE of class 22 or 23 ("unique_violation",
 * "data_exception" for a code of those classes not listed), else NULL. */
const char *pers_sqlstate_name(const char *sqlstate);
pers_sink *pers_pg_new(const struct persister_conf *conf, char *errstr, size_t errstr_size);
/** Compile the datasets' row paths (a dataset with a jsonb column keeps
 * natural JSON). @returns 0, or -1 with errstr (out of memory). */
int pers_pg_rows_init(pers_dataset *ds, size_t nds, char *errstr, size_t errstr_size);
/** The COPY row of a record of ds->schema, from its Avro value (malloc'd,
 * no trailing separator). Thread-safe (no state). @returns CORE_OK,
 * CORE_ERR_INVALID with errstr (a value natural JSON cannot show), or
 * CORE_ERR_NOMEM. */
core_err_t pers_pg_row(const pers_dataset *ds, avro_value_t *value, char **row, size_t *len,
                       char *errstr, size_t errstr_size);
int pers_pg_create_tables(pers_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                          size_t errstr_size);
/* sink_mongo.c */
/** A MongoDB or FerretDB refusal message without values, into buf:
 * "duplicate key (index name_1)", "SQLSTATE 23505 unique_violation
 * (constraint payee_name_idx)", or the message's text before the first
 * quote or brace. */
void pers_mongo_reason(const char *msg, char *buf, size_t size);
/** Is a failed command's error (bson_error_t domain, code, message) a
 * refused login (the configuration's), not an outage? */
bool pers_mongo_login_refused(uint32_t domain, uint32_t code, const char *msg);
pers_sink *pers_mongo_new(const struct persister_conf *conf, char *errstr, size_t errstr_size);
int pers_mongo_create_indexes(pers_sink *s, pers_dataset *ds, size_t nds, char *errstr,
                              size_t errstr_size);

#endif
