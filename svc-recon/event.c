/* event.c — the bound-checked direct decoder of AuditEvent wire bytes. */
#include "event.h"

#include "tributary/core_avro.h"

#include <string.h>

const char *const recon_stage_names[RS_COUNT] = { "ingest", "validator", "cache-feeder",
                                                  "persister" };

/* Outcomes each stage writes (core_audit callers). */
static const char *const outcomes[RS_COUNT][RECON_OUTCOMES_MAX] = {
    [RS_INGEST] = { "published", "format_error", NULL },
    [RS_VALIDATOR] = { "valid", "invalid", "poison", "retrying", "exhausted", NULL },
    [RS_CACHE] = { "cached", "deleted", "stale_skipped", "rejected", NULL },
    [RS_PERSISTER] = { "persisted", "stale_skipped", "dead", NULL },
};

bool recon_str_is(recon_str s, const char *t)
{
    size_t n = strlen(t);
    return s.p && s.len == n && memcmp(s.p, t, n) == 0;
}

int recon_stage_index(const char *s, size_t len)
{
    for (int i = 0; i < RS_COUNT; i++)
        if (strlen(recon_stage_names[i]) == len && memcmp(recon_stage_names[i], s, len) == 0)
            return i;
    return -1;
}

int recon_outcome_index(int stage, const char *s, size_t len)
{
    if (stage < 0 || stage >= RS_COUNT)
        return -1;
    for (int i = 0; outcomes[stage][i]; i++)
        if (strlen(outcomes[stage][i]) == len && memcmp(outcomes[stage][i], s, len) == 0)
            return i;
    return -1;
}

const char *recon_outcome_name(int stage, int i)
{
    if (stage < 0 || stage >= RS_COUNT || i < 0 || i >= RECON_OUTCOMES_MAX)
        return NULL;
    return outcomes[stage][i];
}

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int get_long(rd *r, int64_t *v)
{
    uint64_t z = 0;
    int shift = 0;

    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static int get_str(rd *r, recon_str *s)
{
    int64_t n;

    if (get_long(r, &n) || n < 0 || n > RECON_FIELD_MAX || n > r->end - r->p)
        return -1;
    if (!core_avro_utf8_valid(r->p, (size_t)n))
        return -1;
    s->p = (const char *)r->p;
    s->len = (size_t)n;
    r->p += n;
    return 0;
}

/* A ["null", T] union's branch: 0 null, 1 value; -1 anything else. */
static int get_branch(rd *r)
{
    int64_t b;
    if (get_long(r, &b) || (b != 0 && b != 1))
        return -1;
    return (int)b;
}

static int get_opt_str(rd *r, recon_str *s)
{
    int b = get_branch(r);
    if (b < 0)
        return -1;
    s->p = NULL;
    s->len = 0;
    return b ? get_str(r, s) : 0;
}

static int get_opt_long(rd *r, int64_t *v)
{
    int b = get_branch(r);
    if (b < 0)
        return -1;
    *v = RECON_NONE;
    return b ? get_long(r, v) : 0;
}

/* The catalogue's AuditEvent of that version (its entries in order). */
static const core_avro_schema_t *local_audit(const core_avro_catalog_t *cat, int version)
{
    int seen = 0;

    for (size_t i = 0; i < core_avro_catalog_count(cat); i++) {
        const core_avro_schema_t *s = core_avro_catalog_at(cat, i);

        if (strcmp(core_avro_schema_name(s), "tributary.AuditEvent") == 0 && ++seen == version)
            return s;
    }
    return NULL;
}

int recon_audit_ids_version(recon_audit_ids *a, uint32_t id)
{
    const core_avro_schema_t *s;
    int v = 0;

    if (!a || !a->cat)
        return id == RECON_AUDIT_SCHEMA_ID      ? 1
               : id == RECON_AUDIT_SCHEMA_ID_V2 ? 2
               : id == RECON_AUDIT_SCHEMA_ID_V3 ? 3
                                                : 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->id[i] == id)
            return a->version[i];
    if (!(s = core_avro_catalog_by_id(a->cat, id)))
        return 0; /* unknown, or the registry did not answer: asked again next time */
    for (int k = 1; k <= 3 && !v; k++) {
        const core_avro_schema_t *l = local_audit(a->cat, k);

        if (l && (l == s || avro_schema_equal(core_avro_schema_avro(l), core_avro_schema_avro(s))))
            v = k;
    }
    if (a->n < RECON_AUDIT_IDS_MAX) {
        a->id[a->n] = id;
        a->version[a->n++] = v;
    }
    return v;
}

int recon_event_decode(const void *buf, size_t len, recon_event *ev, const char **why)
{
    return recon_event_decode_ids(NULL, buf, len, ev, why);
}

int recon_event_decode_ids(recon_audit_ids *a, const void *buf, size_t len, recon_event *ev,
                           const char **why)
{
    const uint8_t *b = buf;
    rd r;
    recon_str dg, cdg = { 0 };
    uint32_t id;
    int version;

    memset(ev, 0, sizeof(*ev));
    if (!buf || len < 5 || b[0] != 0) {
        *why = "not the Confluent wire format";
        return -1;
    }
    id = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (!(version = recon_audit_ids_version(a, id))) {
        *why = "schema id is not tributary.AuditEvent's";
        return -1;
    }
    r.p = b + 5;
    r.end = b + len;
#define NEED(expr, what)       \
    do {                       \
        if (expr) {            \
            *why = what;       \
            return -1;         \
        }                      \
    } while (0)
    NEED(get_str(&r, &ev->id) || ev->id.len == 0, "id");
    NEED(get_opt_str(&r, &ev->key), "key");
    NEED(get_str(&r, &ev->dataset) || ev->dataset.len == 0, "dataset");
    NEED(get_str(&r, &ev->batch_id), "batch_id");
    NEED(get_str(&r, &ev->stage), "stage");
    NEED(get_str(&r, &ev->outcome), "outcome");
    NEED(get_opt_str(&r, &dg), "digest");
    NEED(get_long(&r, &ev->ts), "ts");
    NEED(get_opt_str(&r, &ev->topic), "topic");
    NEED(get_opt_long(&r, &ev->partition), "partition");
    NEED(ev->partition != RECON_NONE && (ev->partition < INT32_MIN || ev->partition > INT32_MAX),
         "partition");
    NEED(get_opt_long(&r, &ev->offset), "offset");
    NEED(get_opt_str(&r, &ev->reason), "reason");
    NEED(get_opt_long(&r, &ev->line), "line");
    NEED(get_opt_long(&r, &ev->version), "version");
    if (version >= 2)
        NEED(get_opt_str(&r, &cdg), "content_digest");
    if (version >= 3)
        NEED(get_opt_str(&r, &ev->old_key) || (ev->old_key.p && ev->old_key.len == 0),
             "old_key");
    NEED(r.p != r.end, "trailing bytes after the event");
    ev->stage_ix = recon_stage_index(ev->stage.p, ev->stage.len);
    NEED(ev->stage_ix < 0, "unknown stage");
    NEED(recon_outcome_index(ev->stage_ix, ev->outcome.p, ev->outcome.len) < 0,
         "unknown outcome for the stage");
    if (dg.p) {
        char hex[CORE_DIGEST_HEX_LEN + 1];
        NEED(dg.len != CORE_DIGEST_HEX_LEN, "digest");
        memcpy(hex, dg.p, CORE_DIGEST_HEX_LEN);
        hex[CORE_DIGEST_HEX_LEN] = '\0';
        NEED(core_digest_from_hex(hex, &ev->digest) != 0, "digest");
        ev->has_digest = true;
    }
    if (cdg.p) {
        char hex[CORE_DIGEST_HEX_LEN + 1];
        NEED(cdg.len != CORE_DIGEST_HEX_LEN, "content_digest");
        memcpy(hex, cdg.p, CORE_DIGEST_HEX_LEN);
        hex[CORE_DIGEST_HEX_LEN] = '\0';
        NEED(core_digest_from_hex(hex, &ev->content) != 0, "content_digest");
        ev->has_content = true;
    }
#undef NEED
    return 0;
}

void recon_element(const char *id, size_t idlen, const core_digest *dg, core_digest *out)
{
    uint8_t buf[RECON_FIELD_MAX + 1 + CORE_DIGEST_LEN];

    if (idlen > RECON_FIELD_MAX)
        idlen = RECON_FIELD_MAX;
    memcpy(buf, id, idlen);
    buf[idlen] = 0;
    if (dg)
        memcpy(buf + idlen + 1, dg->b, CORE_DIGEST_LEN);
    else
        memset(buf + idlen + 1, 0, CORE_DIGEST_LEN);
    core_digest_sha256(buf, idlen + 1 + CORE_DIGEST_LEN, out);
}

void recon_event_element(const recon_event *ev, core_digest *out)
{
    recon_element(ev->id.p, ev->id.len, ev->has_digest ? &ev->digest : NULL, out);
}

int recon_bucket(const char *id, size_t idlen)
{
    core_digest h;
    core_digest_sha256(id, idlen, &h);
    return (h.b[0] << 2) | (h.b[1] >> 6);
}

int64_t recon_element_prefix(const core_digest *el)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | el->b[i];
    return (int64_t)v;
}
