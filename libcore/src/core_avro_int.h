/* core_avro_int.h — private to core_avro*.c: the compiled schema tree.
 *
 * Each schema is compiled from its (inlined) JSON into a graph of nodes
 * that the body checker, the JSON converters and the helpers walk. It
 * carries what avro-c's schema does not expose (logical types, defaults,
 * attributes) and resolves named references to the node they name, so a
 * recursive schema is a cycle in the graph. Nodes are immutable after
 * compilation and shared read-only between threads.
 */
#ifndef TRIBUTARY_CORE_AVRO_INT_H
#define TRIBUTARY_CORE_AVRO_INT_H

#include "tributary/core_avro.h"

#include <cjson/cJSON.h>
#include <pthread.h>

typedef enum avn_type {
    AVN_NULL,
    AVN_BOOLEAN,
    AVN_INT,
    AVN_LONG,
    AVN_FLOAT,
    AVN_DOUBLE,
    AVN_BYTES,
    AVN_STRING,
    AVN_RECORD,
    AVN_ENUM,
    AVN_ARRAY,
    AVN_MAP,
    AVN_UNION,
    AVN_FIXED,
} avn_type;

typedef enum avn_logical {
    AVL_NONE,
    AVL_DECIMAL,      /* bytes or fixed */
    AVL_TS_MILLIS,    /* long */
    AVL_TS_MICROS,    /* long */
    AVL_DATE,         /* int, days since the epoch */
} avn_logical;

struct avn;

struct avn_field {
    char *name;
    struct avn *type;
    const cJSON *def;     /* "default", points into the schema JSON; or NULL */
    bool personal;
};

struct avn {
    avn_type type;
    avn_logical logical;
    int precision, scale;        /* AVL_DECIMAL */
    char *fullname;              /* named types */
    size_t min_size;             /* fewest bytes an encoding takes */
    /* AVN_RECORD */
    size_t nfields;
    struct avn_field *fields;
    /* AVN_ENUM */
    size_t nsymbols;
    char **symbols;
    int enum_default;            /* the enum's "default" symbol index, or -1 */
    /* AVN_ARRAY items, AVN_MAP values */
    struct avn *items;
    /* AVN_UNION */
    size_t nbranches;
    struct avn **branches;
    /* AVN_FIXED */
    size_t size;
    struct avn *next_alloc;      /* every node of a schema, for freeing */
};

/* Indexes of the Meta fields inside the meta record. */
enum avn_meta_field {
    AVM_ID, AVM_OP, AVM_KIND, AVM_SOURCE, AVM_BATCH_ID, AVM_SEQ,
    AVM_EVENT_TIME, AVM_VERSION, AVM_OLD_KEY, AVM__COUNT
};

struct core_avro_schema {
    uint32_t id;
    char *name;                  /* full name of the top-level type */
    char *dataset;               /* NULL unless a dataset */
    char *file;                  /* where it came from, for messages */
    char *key_field;             /* tb.key or NULL */
    int key_index;               /* -1 when no key */
    int meta_index;              /* 0 for datasets, -1 otherwise */
    int meta_fields[AVM__COUNT]; /* indexes in Meta, valid when meta_index>=0 */
    char **personal;
    size_t npersonal;
    avro_schema_t avro;
    avro_value_iface_t *iface;
    cJSON *json;                 /* inlined schema JSON */
    cJSON *rules;                /* or NULL */
    struct avn *root;
    struct avn *nodes;           /* allocation list */
};

struct core_avro_catalog {
    core_avro_schema_t **schemas;
    size_t n, cap;
    size_t max_record;
    /* An id source (core_avro_catalog_set_fetch): the schemas it gave,
     * appended under lock and kept until the catalogue is freed. */
    core_avro_fetch_fn *fetch;
    void *fetch_opaque;
    bool lock_init;
    pthread_mutex_t lock;
    core_avro_schema_t **fetched;
    size_t nfetched, capfetched;
};

/* The schema of an id, from the catalogue or its id source: CORE_OK,
 * CORE_ERR_NOTFOUND, or the source's error (CORE_ERR_TRANSIENT...), errstr
 * saying why. Thread-safe. */
core_err_t core_avro_catalog_id_(const core_avro_catalog_t *cat, uint32_t id,
                                 const core_avro_schema_t **sp, char *errstr,
                                 size_t errstr_size);

/* ---- reading checked bytes into values (core_avro_wire.c) -------------- */

/* A buffer reused from record to record (a string with its NUL). */
typedef struct core_avro_scratch {
    char *buf;
    size_t size;
} core_avro_scratch;

/* The bytes being read: already checked by core_avro_check_body() against
 * the schema they are read with, so nothing here checks a length again. */
typedef struct core_avro_fill {
    const uint8_t *p;
    core_avro_scratch *scratch;
} core_avro_fill;

int64_t core_avro_fill_varint_(core_avro_fill *f);
/* The next len bytes with a NUL after them, in the scratch; NULL: no memory. */
const char *core_avro_fill_cstr_(core_avro_fill *f, size_t len);
/* Fill v (of node n's shape, reset) from the bytes: 0 or an avro-c error. */
int core_avro_fill_node_(core_avro_fill *f, const struct avn *n, avro_value_t *v);

/* ---- reader's schema projection (core_avro_project.c) ------------------- */

/* The schema a record written with w is read as: the current version of w's
 * dataset in cat, or w itself (not a dataset, or already the current one). */
const core_avro_schema_t *core_avro_reader_of_(const core_avro_catalog_t *cat,
                                               const core_avro_schema_t *w);
/* Whether records of w are read as r without projection (the same schema,
 * or one of the same JSON text). */
bool core_avro_same_layout_(const core_avro_schema_t *w, const core_avro_schema_t *r);
/* Read a body checked against w into rv, a reset value of r, by Avro's
 * resolution rules (docs/ARCHITECTURE.md, Reader's schema). @returns CORE_OK,
 * CORE_ERR_INVALID (errstr names the field path) or CORE_ERR_NOMEM. */
core_err_t core_avro_project_(const core_avro_schema_t *w, const core_avro_schema_t *r,
                              const uint8_t *body, avro_value_t *rv,
                              core_avro_scratch *scratch, char *errstr, size_t errstr_size);

/* Full name of the meta record every dataset starts with. */
#define META_FULLNAME "tributary.Meta"

/* core_avro.c helpers the schema compiler uses. */
char *core_avro_xstrdup_(const char *s);
/* Integer value of a JSON number (or its raw text), when it is one within [lo, hi]. */
bool core_avro_json_int_(const cJSON *j, int64_t lo, int64_t hi, int64_t *out);
/* The latest schema of that full name in cat. */
const core_avro_schema_t *core_avro_catalog_find_name_(const core_avro_catalog_t *cat,
                                                      const char *fullname);

/* core_avro_schema.c: compile schema json for s (nodes on s->nodes), named
 * types found in resolver (may be NULL). @returns the root or NULL + errstr. */
struct avn *core_avro_compile_(core_avro_schema_t *s, const core_avro_catalog_t *resolver,
                               const char *file, cJSON *json, char *errstr,
                               size_t errstr_size);
void core_avro_nodes_free_(struct avn *n);

/* core_avro_time.c, for core_avro_json.c. "YYYY-MM-DD" at *pp: days since
 * the epoch (*pp moved past it), or -1 with *why. */
int core_avro_parse_date_(const char **pp, int64_t *days, const char **why);
/* ISO 8601 text in units (1000: ms, 1000000: us) per second since the
 * epoch; exact: a fraction finer than the unit is an error. */
core_err_t core_avro_time_parse_(const char *text, int64_t units, bool exact, int64_t *outp,
                                  char *errstr, size_t errstr_size);


/* core_avro.c, core_avro_rules.c: shared by the catalogue (core_avro_catalog.c) */
cJSON *core_avro_parse_json_(const char *text, size_t len, const char *file,
                             char *errstr, size_t errstr_size);
core_avro_schema_t *core_avro_schema_build_(cJSON *json, const char *file, uint32_t id,
                                            const char *dataset,
                                            const core_avro_catalog_t *resolver,
                                            char *errstr, size_t errstr_size);
int core_avro_find_field_(const struct avn *rec, const char *name);
bool core_avro_in_list_(const char *s, const char *const *list, size_t n);
int core_avro_rules_check_(const core_avro_schema_t *s, const char *file, const cJSON *rj,
                           char *errstr, size_t errstr_size);

#endif
