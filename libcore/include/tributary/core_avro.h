/* core_avro.h — the schema catalogue (proto/), the Confluent wire format,
 * and Avro <-> natural JSON.
 *
 * The catalogue (proto/catalog.json) gives every schema a fixed id. A
 * dataset schema is a record whose first field is `meta` (tributary.Meta)
 * and which names its business key with the record attribute "tb.key";
 * fields carrying personal data are marked "tb.personal": true. Each
 * dataset may have a rules file (<dataset>.rules.json) that this module
 * only loads and checks for shape: proto/README.md documents the format.
 *
 * Wire format (Confluent): byte 0x00, the schema id as 4 bytes big-endian,
 * then the Avro binary encoding of one record. Bytes from Kafka are
 * untrusted: core_avro_decode() bound-checks the body against the schema
 * (every length and count within the buffer, union and enum indexes in
 * range, varints at most 10 bytes, nesting at most CORE_AVRO_MAX_DEPTH,
 * total size at most the catalogue's maximum, the body consumed exactly,
 * strings valid UTF-8 without NUL) before avro-c sees a byte of it.
 *
 * Natural JSON (not Avro's JSON encoding): records are objects, unions the
 * plain value of their branch (or null), enums their symbol, decimals a
 * string with exactly `scale` decimals ("1234.50"), timestamp-millis an ISO
 * 8601 UTC string ("2024-03-07T10:00:00.000Z"), timestamp-micros the same
 * with 6 decimals, date "YYYY-MM-DD", bytes and fixed a string in which
 * printable ASCII other than '\' stands for itself, '\' is written "\\" and
 * every other byte "\xHH" (lossless; a cJSON string cannot hold a NUL byte,
 * so Avro's latin-1 convention is not used). Longs beyond +-2^53 become a
 * cJSON raw number (exact when printed). core_avro_from_json() also accepts
 * Avro's {"<branch>": value} form for unions, numbers for decimals, and
 * integers (ms since the epoch) or ISO 8601 with an offset for timestamps.
 *
 * Errors: one line naming the field path and what is wrong ("meta.id:
 * string length 2147483647 exceeds the 1 bytes left (at byte 1 of 6)"). They
 * never quote a field's value (enum symbols and date-time text excepted), so
 * they can go to logs and DLQ headers.
 *
 * Threads: a catalogue is read-only once loaded (and after the last
 * core_avro_catalog_add()); lookups, encode, decode and the JSON functions
 * may then run on any number of threads at once, each with its own values.
 * An avro_value_t must stay within one thread at a time.
 */
#ifndef TRIBUTARY_CORE_AVRO_H
#define TRIBUTARY_CORE_AVRO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <avro.h>

#include "tributary/core_common.h"
#include "tributary/core_digest.h"

struct cJSON;

/** Size of the wire header: magic byte 0x00 + 4-byte big-endian id. */
#define CORE_AVRO_WIRE_HEADER 5
/** Deepest nesting of records, arrays and maps accepted when decoding. */
#define CORE_AVRO_MAX_DEPTH 32
/** Default largest Avro body core_avro_decode() accepts (1 MiB). */
#define CORE_AVRO_DEFAULT_MAX_RECORD (1024u * 1024u)
/** Largest schema, rules or catalogue file read (bytes). */
#define CORE_AVRO_MAX_FILE (1024u * 1024u)
/** Buffer size enough for any text core_avro_time_format() writes. */
#define CORE_AVRO_TIME_SIZE 40
/** Buffer size enough for any text core_avro_decimal_format() writes. */
#define CORE_AVRO_DECIMAL_SIZE 48
/** Most digits a decimal may have (what fits in 128 bits). */
#define CORE_AVRO_DECIMAL_MAX_PRECISION 38

typedef struct core_avro_catalog core_avro_catalog_t;
typedef struct core_avro_schema core_avro_schema_t;

/* ---- catalogue --------------------------------------------------------- */

/**
 * @brief Load proto_dir/catalog.json, every schema and rules file it names.
 *
 * Named schemas (entries with "name", e.g. tributary.Meta) are loaded
 * first, in catalogue order; a schema may use a named schema of the
 * catalogue by its full name: the loader inlines the definition at its
 * first use before avro-c parses it. Several entries of one dataset are
 * versions of it: each keeps its id (records written with it stay
 * readable), the last one is the dataset's current schema, and all must
 * have the same tb.key. Checks: ids unique and in 1..2^31-1, names unique
 * across datasets, every dataset's first field is `meta` of type
 * tributary.Meta, "tb.key" names a top-level field of type string, rules
 * files well-formed and naming existing fields. Files are read up to
 * CORE_AVRO_MAX_FILE bytes.
 *
 * @returns the catalogue (free with core_avro_catalog_free()), or NULL with
 *          errstr naming the file and what is wrong.
 */
core_avro_catalog_t *core_avro_catalog_load(const char *proto_dir,
                                            char *errstr, size_t errstr_size);

/**
 * @brief Checks a dataset's rules file beyond its shape (libcore checks the
 * shape: an object with "dataset" and a "rules" array of objects whose
 * "field" names a path of the schema). The program that applies the rules
 * registers what it checks (svc-validator: vrules_file_check()), so that
 * libcore does not know the rule names.
 * @param file the rules file's name, for the errors ("payee.rules.json").
 * @returns 0, or -1 with errstr naming the file and the rule.
 */
typedef int core_avro_rules_check_fn(const core_avro_schema_t *schema, const char *file,
                                     const struct cJSON *rules, char *errstr,
                                     size_t errstr_size);

/** core_avro_catalog_load(), and every rules file through \p check (NULL:
 * the shape only). */
core_avro_catalog_t *core_avro_catalog_load_checked(const char *proto_dir,
                                                    core_avro_rules_check_fn *check,
                                                    char *errstr, size_t errstr_size);

/** @brief Free a catalogue and every schema it holds. Accepts NULL. */
void core_avro_catalog_free(core_avro_catalog_t *cat);

/**
 * @brief Add a schema that is not in proto/ (e.g. fetched from a Schema
 * Registry) under the given id. Same checks as for catalogue entries when
 * dataset is not NULL. Not thread-safe: call before the catalogue is shared.
 * @returns CORE_OK, CORE_ERR_INVALID (bad schema, duplicate id) or
 *          CORE_ERR_NOMEM.
 */
core_err_t core_avro_catalog_add(core_avro_catalog_t *cat, uint32_t id,
                                 const char *dataset, const char *json,
                                 size_t json_len, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Where the schema of an id the catalogue does not hold comes from
 * (a Schema Registry: core_registry_fetch()). Fills *json with the schema's
 * text (malloc'd; the caller of the callback frees it); the text may name
 * the catalogue's named schemas (tributary.Meta) as types, which are
 * inlined as for catalogue entries.
 * @returns CORE_OK, CORE_ERR_NOTFOUND (the source does not know the id), or
 *          another error (CORE_ERR_TRANSIENT: the source did not answer),
 *          errstr saying why. Called from any thread, one call at a time.
 */
typedef core_err_t core_avro_fetch_fn(void *opaque, uint32_t id, char **json,
                                      char *errstr, size_t errstr_size);

/**
 * @brief Give the catalogue an id source: from now on the ids are the
 * source's. Every fixed id of proto/catalog.json is dropped (a schema of
 * the catalogue answers by id again only once core_avro_catalog_set_id()
 * gave it the source's id), and an id the catalogue does not hold is asked
 * of \p fetch once (a schema it gives is kept until the catalogue is
 * freed; a failure is not kept: the source caches its own answers). A
 * fetched schema whose full name is that of one of the catalogue's datasets
 * is a version of that dataset (core_avro_schema_dataset() names it), so
 * consumers treat it as they treat an older catalogue version.
 * Not thread-safe: call before the catalogue is shared. Lookups by id are
 * thread-safe afterwards.
 * @returns CORE_OK or CORE_ERR_NOMEM.
 */
core_err_t core_avro_catalog_set_fetch(core_avro_catalog_t *cat, core_avro_fetch_fn *fetch,
                                       void *opaque);

/**
 * @brief Give a schema of the catalogue the id a registry gave it (what
 * core_avro_encode() then writes). Not thread-safe: before sharing.
 * @returns CORE_OK, or CORE_ERR_INVALID when another schema holds the id.
 */
core_err_t core_avro_catalog_set_id(core_avro_catalog_t *cat, const core_avro_schema_t *schema,
                                    uint32_t id, char *errstr, size_t errstr_size);

/** @brief Largest Avro body (bytes, without the 5-byte header) decode
 * accepts; default CORE_AVRO_DEFAULT_MAX_RECORD. Set before sharing. */
void core_avro_catalog_set_max_record(core_avro_catalog_t *cat, size_t max);
size_t core_avro_catalog_max_record(const core_avro_catalog_t *cat);

/** @brief Lookups. The schema belongs to the catalogue: never free it.
 * By dataset or name: the dataset's current (last) version. By id: with an
 * id source (core_avro_catalog_set_fetch), an id not held is fetched.
 * @returns the schema or NULL when there is none. */
const core_avro_schema_t *core_avro_catalog_by_id(const core_avro_catalog_t *cat,
                                                  uint32_t id);
const core_avro_schema_t *core_avro_catalog_by_dataset(const core_avro_catalog_t *cat,
                                                       const char *dataset);
/** By full name, e.g. "tributary.AuditEvent". */
const core_avro_schema_t *core_avro_catalog_by_name(const core_avro_catalog_t *cat,
                                                    const char *fullname);
/** Iterate: i in 0..core_avro_catalog_count()-1, in load order. */
size_t core_avro_catalog_count(const core_avro_catalog_t *cat);
const core_avro_schema_t *core_avro_catalog_at(const core_avro_catalog_t *cat,
                                               size_t i);

/* ---- schema handles ---------------------------------------------------- */

/**
 * @brief A schema outside any catalogue, from its JSON text (tests, tools).
 * References to catalogue schemas are not resolved. "tb.key", when present,
 * is checked and recorded; no dataset checks are made.
 * @returns the handle (free with core_avro_schema_free()) or NULL + errstr.
 */
core_avro_schema_t *core_avro_schema_new(const char *json, size_t json_len,
                                         uint32_t id, char *errstr,
                                         size_t errstr_size);
/** @brief Free a handle from core_avro_schema_new(). Accepts NULL. Never
 * call it on a schema owned by a catalogue. */
void core_avro_schema_free(core_avro_schema_t *schema);

uint32_t core_avro_schema_id(const core_avro_schema_t *schema);
/** Full name of the top-level type, e.g. "tributary.dataset.Payee". */
const char *core_avro_schema_name(const core_avro_schema_t *schema);
/** The file the schema was read from (catalogue entries: the path in the
 * proto folder), or a label such as "schema id 7" for the others. */
const char *core_avro_schema_file(const core_avro_schema_t *schema);
/** Dataset name ("payee"), or NULL for a schema that is not a dataset. */
const char *core_avro_schema_dataset(const core_avro_schema_t *schema);
/** Name of the business key field (tb.key), or NULL. */
const char *core_avro_schema_key_field(const core_avro_schema_t *schema);
/** Names of the fields marked "tb.personal" (any record of the schema,
 * each name once). *np receives the count. Owned by the schema. */
const char *const *core_avro_schema_personal(const core_avro_schema_t *schema,
                                             size_t *np);
bool core_avro_schema_is_personal(const core_avro_schema_t *schema,
                                  const char *field);
/** Whether a value at \p path ("name", "address.city", "tags[2]", as the
 * conversion errors name a field) may hold personal data: any field name
 * along the path is marked tb.personal (a record or array inside a personal
 * field is personal too). A NULL or empty path answers true: a value whose
 * field is not known is treated as personal. */
bool core_avro_schema_path_personal(const core_avro_schema_t *schema, const char *path);
/** What the values at a field path are as numbers, so that a bound can be
 * checked against the field's type and compared exactly (svc-validator). */
typedef enum core_avro_num_kind {
    CORE_AVRO_NUM_NONE,    /* not a number type, or a union of several types */
    CORE_AVRO_NUM_INT,     /* int */
    CORE_AVRO_NUM_LONG,    /* long */
    CORE_AVRO_NUM_FLOAT,
    CORE_AVRO_NUM_DOUBLE,
    CORE_AVRO_NUM_DECIMAL, /* precision and scale set */
    CORE_AVRO_NUM_TIME,    /* timestamp-millis/-micros, date: compared as ms (a long) */
    CORE_AVRO_NUM_STRING,  /* a string: its text may be a number */
} core_avro_num_kind;

typedef struct core_avro_num_type {
    core_avro_num_kind kind;
    int precision, scale; /* CORE_AVRO_NUM_DECIMAL */
} core_avro_num_type;

/**
 * @brief The number type of the field at dotted \p path ("meta.version"),
 * through records and unions holding one record; a union of null and one
 * other type is that type.
 * @returns false when the path names no such field (then *out is NONE).
 */
bool core_avro_schema_path_num_type(const core_avro_schema_t *schema, const char *path,
                                    core_avro_num_type *out);
/** The avro-c schema (owned by the handle: incref to keep it longer). */
avro_schema_t core_avro_schema_avro(const core_avro_schema_t *schema);
/** The generic value class, created once at load (owned by the handle). */
avro_value_iface_t *core_avro_schema_iface(const core_avro_schema_t *schema);
/** The schema's JSON, with catalogue references inlined (owned). */
const struct cJSON *core_avro_schema_json(const core_avro_schema_t *schema);
/** The dataset's rules file as loaded, or NULL when it has none (owned). */
const struct cJSON *core_avro_schema_rules(const core_avro_schema_t *schema);

/**
 * @brief A new, empty generic value of the schema.
 * @returns CORE_OK (release *out with avro_value_decref()) or CORE_ERR_NOMEM.
 */
core_err_t core_avro_value_new(const core_avro_schema_t *schema,
                               avro_value_t *out);

/* ---- wire format ------------------------------------------------------- */

/**
 * @brief Serialise one record in the Confluent wire format.
 *
 * Two modes: with bufp == NULL only the size the encoding needs (header
 * included) is stored in *lenp; otherwise *bufp receives a malloc'ed buffer
 * of *lenp bytes that the caller frees with free().
 *
 * @returns CORE_OK, CORE_ERR_INVALID (value not of this schema, or avro-c
 *          refused it; errstr says why) or CORE_ERR_NOMEM.
 */
core_err_t core_avro_encode(const core_avro_schema_t *schema,
                            avro_value_t *value, void **bufp, size_t *lenp,
                            char *errstr, size_t errstr_size);

/**
 * @brief Serialise into the caller's buffer of size bytes. *lenp receives
 * the size needed; when it exceeds size nothing is written and
 * CORE_ERR_TOOBIG is returned.
 */
core_err_t core_avro_encode_into(const core_avro_schema_t *schema,
                                 avro_value_t *value, void *buf, size_t size,
                                 size_t *lenp, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Read the schema id of a wire-format record without decoding.
 * @returns CORE_OK or CORE_ERR_INVALID (shorter than 5 bytes, wrong magic).
 */
core_err_t core_avro_wire_id(const void *buf, size_t len, uint32_t *idp,
                             char *errstr, size_t errstr_size);

/**
 * @brief Decode one wire-format record of any schema of the catalogue.
 *
 * Checks, in order: len >= 5, magic byte 0, schema id known, body size at
 * most the catalogue's maximum, body well-formed for the writer's schema
 * (see the file comment); only then avro-c reads it.
 *
 * Reader's schema: a record written with a schema of a dataset that is not
 * the dataset's current one (an older catalogue entry, a registry id of an
 * earlier version) is read AS the current schema, by Avro's resolution
 * rules (core_avro_project.c: fields matched by name, the reader's defaults
 * for fields the writer lacks, the writer's extra fields dropped,
 * promotions int->long->float->double and string<->bytes, unions by branch,
 * enums by symbol with the reader enum's default). A record the reader's
 * schema cannot take is CORE_ERR_INVALID with errstr naming both schemas
 * and the field path ("schema id 7 read as payee.avsc: tags: ...").
 *
 * @param schemap  receives the schema the value is of: the reader's (the
 *                 dataset's current one), else the writer's (may be NULL).
 * @param out      receives a new generic value the caller releases with
 *                 avro_value_decref(); untouched on failure.
 * @returns CORE_OK; CORE_ERR_INVALID for malformed input; CORE_ERR_NOTFOUND
 *          for an unknown schema id; CORE_ERR_TOOBIG for a body over the
 *          maximum; CORE_ERR_NOMEM. errstr says which and where.
 */
core_err_t core_avro_decode(const core_avro_catalog_t *cat, const void *buf,
                            size_t len, const core_avro_schema_t **schemap,
                            avro_value_t *out, char *errstr,
                            size_t errstr_size);

/**
 * @brief A decoder that reuses one value per schema (up to 16 schemas; then
 * the oldest is dropped) from record to record: what core_avro_decode()
 * does, without building a value per record. It fills the value from the
 * checked bytes itself, not with avro_value_read() (which allocates every
 * string and bytes value): the value's buffers are reused, so a record no
 * larger than one seen before allocates nothing. The value equals what
 * avro_value_read() makes.
 * Not thread-safe: one decoder per thread.
 * @returns the decoder (core_avro_decoder_free()) or NULL + errstr. The
 *          catalogue must outlive it.
 */
typedef struct core_avro_decoder core_avro_decoder_t;
core_avro_decoder_t *core_avro_decoder_new(const core_avro_catalog_t *cat,
                                           char *errstr, size_t errstr_size);
void core_avro_decoder_free(core_avro_decoder_t *d);

/**
 * @brief Decode one wire-format record, with core_avro_decode()'s checks,
 * errors and reader's schema projection (*schemap: the reader's schema).
 * *valuep receives the decoder's value for the record's schema:
 * valid until the next decode or core_avro_decoder_free(); never release
 * it. On failure that value may hold part of the record.
 */
core_err_t core_avro_decoder_decode(core_avro_decoder_t *d, const void *buf,
                                    size_t len,
                                    const core_avro_schema_t **schemap,
                                    avro_value_t **valuep, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Bound-check an Avro body (no wire header) against a schema, the
 * way core_avro_decode() does. max_record 0 means the default.
 * @returns CORE_OK, CORE_ERR_INVALID or CORE_ERR_TOOBIG.
 */
core_err_t core_avro_check_body(const core_avro_schema_t *schema,
                                const void *body, size_t len,
                                size_t max_record, char *errstr,
                                size_t errstr_size);

/** @brief Check then decode an Avro body (no header). Same contract as
 * core_avro_decode(); max_record 0 means the default. */
core_err_t core_avro_decode_body(const core_avro_schema_t *schema,
                                 const void *body, size_t len,
                                 size_t max_record, avro_value_t *out,
                                 char *errstr, size_t errstr_size);

/**
 * @brief Check an Avro body (no header) against the writer's schema, then
 * read it as the reader's schema by Avro's resolution rules (what
 * core_avro_decode() does for an older version of a dataset; the same
 * errors). Same contract as core_avro_decode_body(); *out is a value of
 * \p reader. Either schema may be outside any catalogue.
 */
core_err_t core_avro_decode_body_as(const core_avro_schema_t *writer,
                                    const core_avro_schema_t *reader, const void *body,
                                    size_t len, size_t max_record, avro_value_t *out,
                                    char *errstr, size_t errstr_size);

/* ---- content digest ---------------------------------------------------- */

/**
 * @brief The content digest of a record: SHA-256 of the canonical Avro
 * binary of its fields other than the top-level `meta`, in schema order
 * (docs/ARCHITECTURE.md, Digests). Any stage and any sink can recompute it
 * from the business fields alone: two events of one record that differ
 * only in meta (id, version, batch, times) have the same content digest.
 * Canonical: shortest varints, arrays and maps as one block (map entries
 * sorted by key bytes), decimals in `bytes` as their shortest two's
 * complement; anything else as Avro encodes it. The body (no wire header)
 * is bound-checked first, as core_avro_check_body() does.
 * @returns CORE_OK; CORE_ERR_INVALID (malformed body, not a record schema);
 *          CORE_ERR_NOMEM. Thread-safe.
 */
core_err_t core_avro_content_digest(const core_avro_schema_t *schema,
                                    const void *body, size_t len,
                                    core_digest *out, char *errstr,
                                    size_t errstr_size);

/** Same for a wire-format value (schema looked up by its id in cat; body
 * at most the catalogue's maximum). CORE_ERR_NOTFOUND: unknown id. A record
 * written with an older version of its dataset is digested as the reader's
 * projection makes it (core_avro_decode()): in the dataset's current
 * schema, the fields the writer lacked at their defaults, which is what the
 * sinks store and recon recomputes. */
core_err_t core_avro_content_digest_wire(const core_avro_catalog_t *cat,
                                         const void *value, size_t len,
                                         core_digest *out, char *errstr,
                                         size_t errstr_size);

/** Same for a value of the schema (encoded first). */
core_err_t core_avro_content_digest_value(const core_avro_schema_t *schema,
                                          avro_value_t *value, core_digest *out,
                                          char *errstr, size_t errstr_size);

/* ---- natural JSON ------------------------------------------------------ */

/**
 * @brief The value as natural JSON (see the file comment).
 * @returns a new cJSON tree (cJSON_Delete()) or NULL + errstr (a decimal
 *          wider than 128 bits, out of memory).
 */
struct cJSON *core_avro_to_json(const core_avro_schema_t *schema,
                                avro_value_t *value, char *errstr,
                                size_t errstr_size);

/**
 * @brief Check that core_avro_to_json() would convert \p value, without
 * building anything: @returns CORE_OK, or CORE_ERR_INVALID with the very
 * errstr core_avro_to_json() would give (a decimal wider than 128 bits).
 * Use it with core_avro_path_get() to read a few fields of a record the way
 * its natural JSON shows them, at the cost of no allocation.
 */
core_err_t core_avro_natural_check(const core_avro_schema_t *schema,
                                   avro_value_t *value, char *errstr,
                                   size_t errstr_size);

/* ---- one field, as natural JSON shows it ------------------------------- */

/** What a field's natural JSON is (core_avro_to_json()). */
typedef enum core_avro_nat_kind {
    CORE_AVRO_NAT_ABSENT,  /* no such member (a null union on the way, ...) */
    CORE_AVRO_NAT_NULL,
    CORE_AVRO_NAT_BOOL,
    CORE_AVRO_NAT_NUMBER,  /* a cJSON number: .number */
    CORE_AVRO_NAT_RAW,     /* a long beyond +-2^53, as a raw number: .text */
    CORE_AVRO_NAT_STRING,  /* .text (strings, enums, decimals, times, bytes) */
    CORE_AVRO_NAT_OBJECT,  /* record or map */
    CORE_AVRO_NAT_ARRAY,
} core_avro_nat_kind;

typedef struct core_avro_natural {
    core_avro_nat_kind kind;
    bool boolean;          /* CORE_AVRO_NAT_BOOL */
    double number;         /* CORE_AVRO_NAT_NUMBER */
    const char *text;      /* RAW and STRING: NUL-terminated, into the value
                            * or the caller's buffer */
    bool has_ms;           /* timestamp-millis and date shown as text: */
    int64_t ms;            /* the time that text reads as, ms since the epoch */
    size_t need;           /* on CORE_ERR_TOOBIG: the buffer size needed */
} core_avro_natural;

/** A dotted field path ("meta.id") compiled against one schema. */
typedef struct core_avro_path core_avro_path_t;

/**
 * @brief Compile \p path for records of \p schema. The path is read the
 * way a lookup in the record's natural JSON reads it: one object member per
 * dot-separated part, through records, the branch a union holds, and map
 * entries. Field indexes are resolved once here.
 * @param resolved set to whether every part names a field through records
 *        and unions holding a record (what rules files may name); NULL to
 *        ignore. An unresolved path still works (slower, by name).
 * @returns the path (core_avro_path_free()) or NULL with errstr (out of
 *          memory). The schema must outlive the path.
 */
core_avro_path_t *core_avro_path_new(const core_avro_schema_t *schema, const char *path,
                                     bool *resolved, char *errstr, size_t errstr_size);
void core_avro_path_free(core_avro_path_t *p);

/**
 * @brief Read the field at \p p of \p record (a value of the path's schema)
 * as its natural JSON shows it: the same kind, number and text
 * core_avro_to_json() would give that member. Text that has to be made
 * (decimals, times, bytes, large longs) is written into buf.
 * @returns CORE_OK; CORE_ERR_TOOBIG when buf is short (out->need says how
 *          much is needed); CORE_ERR_INVALID (the value does not match the
 *          schema, a decimal wider than 128 bits) with errstr.
 */
core_err_t core_avro_path_get(const core_avro_path_t *p, avro_value_t *record,
                              core_avro_natural *out, char *buf, size_t size,
                              char *errstr, size_t errstr_size);

/** Flags for core_avro_from_json_opts(). */
#define CORE_AVRO_JSON_IGNORE_UNKNOWN 0x1 /* skip object keys not in the record */

/**
 * @brief Build a value from natural JSON.
 *
 * A missing field takes its default; a missing field whose type is a union
 * with null becomes null; any other missing field is an error. Keys that
 * are not fields of the record are an error (unless
 * CORE_AVRO_JSON_IGNORE_UNKNOWN). Every error names the field path and
 * the fault, never the value (it may be personal, and errors become audit
 * reasons, log fields and DLQ headers): "amount_limit: decimal has 3
 * decimals, scale is 2", "updated_at: bad date-time: day out of range". A
 * map entry is named by its position ("attrs[2]"), not by its key, which is
 * data. A caller that may show the value (svc-ingest's errors file, for
 * fields not marked tb.personal) takes it from its own input.
 *
 * @param out  receives a new value (avro_value_decref()) on success only.
 * @returns CORE_OK, CORE_ERR_INVALID or CORE_ERR_NOMEM.
 */
core_err_t core_avro_from_json(const core_avro_schema_t *schema,
                               const struct cJSON *json, avro_value_t *out,
                               char *errstr, size_t errstr_size);
core_err_t core_avro_from_json_opts(const core_avro_schema_t *schema,
                                    const struct cJSON *json, unsigned flags,
                                    avro_value_t *out, char *errstr,
                                    size_t errstr_size);

/* ---- record helpers ---------------------------------------------------- */

typedef enum core_avro_op {
    CORE_AVRO_OP_ADD = 0,
    CORE_AVRO_OP_UPDATE = 1,
    CORE_AVRO_OP_DELETE = 2,
} core_avro_op_t;

typedef enum core_avro_kind {
    CORE_AVRO_KIND_BULK = 0,
    CORE_AVRO_KIND_CHANGE = 1,
} core_avro_kind_t;

/** "ADD", "UPDATE", "DELETE" / "BULK", "CHANGE"; "?" when out of range. */
const char *core_avro_op_name(core_avro_op_t op);
const char *core_avro_kind_name(core_avro_kind_t kind);

/** The meta record of a dataset record. Strings point into the value and
 * stay valid while it lives and is not modified. */
typedef struct core_avro_meta {
    const char *id;
    core_avro_op_t op;
    core_avro_kind_t kind;
    const char *source;
    const char *batch_id;
    int64_t seq;
    int64_t event_time; /* ms since the epoch */
    int64_t version;
    const char *old_key; /* NULL when null */
} core_avro_meta;

/**
 * @brief The business key (tb.key field) of a dataset record.
 * @param keyp  receives a pointer into the value (valid while it lives).
 * @param lenp  receives its length in bytes, without the NUL (may be NULL).
 * @returns CORE_OK or CORE_ERR_INVALID (schema without key, wrong value).
 */
core_err_t core_avro_get_key(const core_avro_schema_t *schema,
                             avro_value_t *record, const char **keyp,
                             size_t *lenp, char *errstr, size_t errstr_size);

/** @brief Read the meta record of a dataset record into *meta. */
core_err_t core_avro_get_meta(const core_avro_schema_t *schema,
                              avro_value_t *record, core_avro_meta *meta,
                              char *errstr, size_t errstr_size);

/** @brief Write every meta field of a dataset record from *meta (strings
 * are copied; id, source and batch_id must not be NULL). */
core_err_t core_avro_set_meta(const core_avro_schema_t *schema,
                              avro_value_t *record, const core_avro_meta *meta,
                              char *errstr, size_t errstr_size);

/* ---- decimal and time helpers (for mappers) ---------------------------- */

/* The parsers' errors say what is wrong with the text, never the text. */

/**
 * @brief Decimal text ("-1234.5", "1e3", "+0.10") to the two's complement
 * big-endian unscaled bytes of an Avro decimal(precision, scale).
 *
 * Refuses more decimals than scale (trailing zeros excepted: "1.500" is 1.50
 * at scale 2), more digits than precision (at most 38), and anything that is
 * not a number. out must hold 16 bytes; *outlen receives the minimal length.
 * @returns CORE_OK or CORE_ERR_INVALID; errstr says e.g. "decimal has 3
 *          decimals, scale is 2".
 */
core_err_t core_avro_decimal_parse(const char *text, int precision, int scale,
                                   uint8_t out[16], size_t *outlen,
                                   char *errstr, size_t errstr_size);

/**
 * @brief Two's complement big-endian unscaled bytes to text with exactly
 * scale decimals ("-0.05"). Sign-extension beyond 16 bytes is accepted.
 * @returns CORE_OK, or CORE_ERR_INVALID when the value needs more than 128
 *          bits or buf (size >= CORE_AVRO_DECIMAL_SIZE suffices) is short.
 */
core_err_t core_avro_decimal_format(const void *bytes, size_t len, int scale,
                                    char *buf, size_t size, char *errstr,
                                    size_t errstr_size);

/**
 * @brief ISO 8601 date-time with a zone ("2024-03-07T10:00:00Z",
 * "2024-03-07T10:00:00.123+01:00", "...+0100") to ms since the epoch.
 * 'T', 't' or a space may separate date and time; digits of the fraction
 * beyond milliseconds are truncated. Years 0001-9999.
 * @returns CORE_OK or CORE_ERR_INVALID naming what is wrong.
 */
core_err_t core_avro_time_parse(const char *text, int64_t *msp, char *errstr,
                                size_t errstr_size);

/** Same, to microseconds since the epoch. */
core_err_t core_avro_time_parse_us(const char *text, int64_t *usp,
                                   char *errstr, size_t errstr_size);

/**
 * @brief As core_avro_time_parse() (micros false: ms) or _us() (micros
 * true), but a fraction finer than the unit ("...00.1234Z" for ms) is an
 * error instead of being truncated: a value taken into a record is never
 * altered in silence. Trailing zeros are fine. core_avro_from_json() parses
 * timestamp strings this way.
 */
core_err_t core_avro_time_parse_exact(const char *text, bool micros, int64_t *outp,
                                      char *errstr, size_t errstr_size);

/**
 * @brief ms since the epoch to "YYYY-MM-DDTHH:MM:SS.mmmZ".
 * @returns the length written, or -1 when the year falls outside 0001-9999
 *          or size is below 25 (CORE_AVRO_TIME_SIZE suffices).
 */
int core_avro_time_format(int64_t ms, char *buf, size_t size);

/** Same for microseconds: "YYYY-MM-DDTHH:MM:SS.uuuuuuZ". */
int core_avro_time_format_us(int64_t us, char *buf, size_t size);

/* Valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF) with no NUL
 * byte: what an Avro string must be here (core_avro_utf8.c). */
bool core_avro_utf8_valid(const uint8_t *s, size_t len);

#endif
