/* core_avro_digest.c — the content digest of a dataset record: SHA-256 of
 * the canonical Avro binary of its fields other than `meta`, in schema
 * order (docs/ARCHITECTURE.md, Digests).
 *
 * "Canonical" makes the digest a function of the values alone, whoever
 * wrote the bytes: every varint (int, long, enum and union indexes,
 * lengths) in its shortest form; arrays and maps as one block (the item
 * count, the items, then 0; an empty one as 0), a map's entries sorted by
 * the bytes of their keys; a decimal held in `bytes` as the shortest two's
 * complement of its unscaled value (zero as one 0x00 byte); floats and
 * doubles by their IEEE bits as written. Everything else (strings, bytes,
 * fixed, booleans) is the Avro encoding itself. For a record that avro-c or
 * svc-ingest wrote, this is the Avro body with meta's bytes cut out. The
 * body is bound-checked (core_avro_check_body) before it is walked. */
#include "core_avro_int.h"

#include <stdlib.h>
#include <string.h>

/* A growable output buffer that starts on the caller's stack. */
struct cbuf {
    uint8_t *p;
    size_t n, cap;
    bool heap;
    bool oom;
};

static bool cb_reserve(struct cbuf *c, size_t more)
{
    size_t cap;
    uint8_t *np;

    if (c->oom)
        return false;
    if (c->n + more <= c->cap)
        return true;
    cap = c->cap ? c->cap : 256;
    while (cap < c->n + more)
        cap *= 2;
    np = c->heap ? realloc(c->p, cap) : malloc(cap);
    if (!np) {
        c->oom = true;
        return false;
    }
    if (!c->heap && c->n)
        memcpy(np, c->p, c->n);
    c->p = np;
    c->cap = cap;
    c->heap = true;
    return true;
}

static void cb_put(struct cbuf *c, const void *b, size_t len)
{
    if (len && cb_reserve(c, len)) {
        memcpy(c->p + c->n, b, len);
        c->n += len;
    }
}

/* Shortest zig-zag varint of v into out (10 bytes); returns its length. */
static size_t varint_of(int64_t v, uint8_t *out)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t i = 0;

    while (z >= 0x80) {
        out[i++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    out[i++] = (uint8_t)z;
    return i;
}

static void cb_varint(struct cbuf *c, int64_t v)
{
    uint8_t b[10];

    cb_put(c, b, varint_of(v, b));
}

/* Reads a varint the checker accepted. */
static int64_t get_varint(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint64_t u = 0;

    for (int i = 0; i < 10; i++) {
        uint8_t b = *p++;

        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *pp = p;
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A decimal's unscaled two's complement, shortest: drop a leading 0x00
 * before a byte < 0x80 and a leading 0xff before a byte >= 0x80. */
static void put_decimal(struct cbuf *c, const uint8_t *b, size_t len)
{
    static const uint8_t zero = 0;

    if (len == 0) {
        cb_varint(c, 1);
        cb_put(c, &zero, 1);
        return;
    }
    while (len > 1 && ((b[0] == 0x00 && b[1] < 0x80) || (b[0] == 0xff && b[1] >= 0x80))) {
        b++;
        len--;
    }
    cb_varint(c, (int64_t)len);
    cb_put(c, b, len);
}

struct entry {
    size_t off, len;   /* in the output buffer */
    const uint8_t *key;
    size_t klen;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(x->key, y->key, n);

    if (r)
        return r;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static void canon_node(struct cbuf *c, const struct avn *n, const uint8_t **pp, bool top);

static void canon_blocks(struct cbuf *c, const struct avn *n, const uint8_t **pp)
{
    bool is_map = n->type == AVN_MAP;
    size_t start = c->n, count = 0, ecap = 0;
    struct entry *ents = NULL;
    uint8_t vb[10];
    size_t vlen;

    for (;;) {
        int64_t k = get_varint(pp);

        if (k == 0)
            break;
        if (k < 0) {
            k = -k;
            (void)get_varint(pp); /* block size: recomputed below */
        }
        for (int64_t i = 0; i < k; i++, count++) {
            size_t off = c->n;
            const uint8_t *key = NULL;
            size_t klen = 0;

            if (is_map) {
                klen = (size_t)get_varint(pp);
                key = *pp;
                cb_varint(c, (int64_t)klen);
                cb_put(c, key, klen);
                *pp += klen;
                if (count == ecap) {
                    size_t nc = ecap ? ecap * 2 : 16;
                    struct entry *ne = realloc(ents, nc * sizeof(*ne));

                    if (!ne) {
                        c->oom = true;
                        free(ents);
                        return;
                    }
                    ents = ne;
                    ecap = nc;
                }
            }
            canon_node(c, n->items, pp, false);
            if (is_map)
                ents[count] = (struct entry){ off, c->n - off, key, klen };
        }
    }
    if (c->oom) {
        free(ents);
        return;
    }
    if (is_map && count > 1) {
        uint8_t *sorted = malloc(c->n - start);
        size_t w = 0;

        if (!sorted) {
            c->oom = true;
            free(ents);
            return;
        }
        qsort(ents, count, sizeof(*ents), entry_cmp);
        for (size_t i = 0; i < count; i++) {
            memcpy(sorted + w, c->p + ents[i].off, ents[i].len);
            w += ents[i].len;
        }
        memcpy(c->p + start, sorted, w);
        free(sorted);
    }
    free(ents);
    if (count == 0) {
        cb_varint(c, 0);
        return;
    }
    /* the count goes before the items: make room for its varint */
    vlen = varint_of((int64_t)count, vb);
    if (!cb_reserve(c, vlen + 1))
        return;
    memmove(c->p + start + vlen, c->p + start, c->n - start);
    memcpy(c->p + start, vb, vlen);
    c->n += vlen;
    cb_varint(c, 0);
}

static void canon_node(struct cbuf *c, const struct avn *n, const uint8_t **pp, bool top)
{
    size_t len;

    switch (n->type) {
    case AVN_NULL:
        return;
    case AVN_BOOLEAN:
        cb_put(c, *pp, 1);
        *pp += 1;
        return;
    case AVN_INT:
    case AVN_LONG:
    case AVN_ENUM:
        cb_varint(c, get_varint(pp));
        return;
    case AVN_FLOAT:
    case AVN_DOUBLE:
        len = n->type == AVN_FLOAT ? 4 : 8;
        cb_put(c, *pp, len);
        *pp += len;
        return;
    case AVN_BYTES:
    case AVN_STRING:
        len = (size_t)get_varint(pp);
        if (n->type == AVN_BYTES && n->logical == AVL_DECIMAL) {
            put_decimal(c, *pp, len);
        } else {
            cb_varint(c, (int64_t)len);
            cb_put(c, *pp, len);
        }
        *pp += len;
        return;
    case AVN_FIXED:
        cb_put(c, *pp, n->size);
        *pp += n->size;
        return;
    case AVN_UNION: {
        int64_t b = get_varint(pp);

        cb_varint(c, b);
        canon_node(c, n->branches[b], pp, false);
        return;
    }
    case AVN_RECORD:
        for (size_t i = 0; i < n->nfields; i++) {
            if (top && strcmp(n->fields[i].name, "meta") == 0) {
                size_t mark = c->n;

                canon_node(c, n->fields[i].type, pp, false); /* walked, not kept */
                c->n = mark;
                continue;
            }
            canon_node(c, n->fields[i].type, pp, false);
        }
        return;
    case AVN_ARRAY:
    case AVN_MAP:
        canon_blocks(c, n, pp);
        return;
    }
}

core_err_t core_avro_content_digest(const core_avro_schema_t *schema, const void *body,
                                    size_t len, core_digest *out, char *errstr,
                                    size_t errstr_size)
{
    uint8_t stack[1024];
    struct cbuf c = { stack, 0, sizeof(stack), false, false };
    const uint8_t *p = body ? body : (const uint8_t *)"";
    core_err_t err;

    if (schema->root->type != AVN_RECORD) {
        core_errstr(errstr, errstr_size, "%s: a content digest needs a record schema",
                    schema->name);
        return CORE_ERR_INVALID;
    }
    /* no size limit of its own: the walk allocates at most len + a few bytes
     * per empty decimal, never what a length field claims */
    if ((err = core_avro_check_body(schema, body, len, len, errstr, errstr_size)) != CORE_OK)
        return err;
    canon_node(&c, schema->root, &p, true);
    if (c.oom) {
        if (c.heap)
            free(c.p);
        core_errstr(errstr, errstr_size, "%s: content digest: out of memory", schema->name);
        return CORE_ERR_NOMEM;
    }
    core_digest_sha256(c.p, c.n, out);
    if (c.heap)
        free(c.p);
    return CORE_OK;
}

core_err_t core_avro_content_digest_wire(const core_avro_catalog_t *cat, const void *value,
                                         size_t len, core_digest *out, char *errstr,
                                         size_t errstr_size)
{
    const core_avro_schema_t *s;
    uint32_t id;
    core_err_t err;

    if ((err = core_avro_wire_id(value, len, &id, errstr, errstr_size)) != CORE_OK)
        return err;
    if ((err = core_avro_catalog_id_(cat, id, &s, errstr, errstr_size)) != CORE_OK) {
        if (err == CORE_ERR_NOTFOUND && !cat->fetch)
            core_errstr(errstr, errstr_size, "schema id %u is not in the catalogue", id);
        return err;
    }
    if (len - CORE_AVRO_WIRE_HEADER > cat->max_record) {
        core_errstr(errstr, errstr_size, "record of %zu bytes exceeds max %zu bytes",
                    len - CORE_AVRO_WIRE_HEADER, cat->max_record);
        return CORE_ERR_TOOBIG;
    }
    if (!core_avro_same_layout_(s, core_avro_reader_of_(cat, s))) {
        /* an older version of its dataset: the digest of the record as the
         * sinks hold it, in the dataset's current schema (its defaults in) */
        const core_avro_schema_t *r;
        avro_value_t v;

        if ((err = core_avro_decode(cat, value, len, &r, &v, errstr, errstr_size)) != CORE_OK)
            return err;
        err = core_avro_content_digest_value(r, &v, out, errstr, errstr_size);
        avro_value_decref(&v);
        return err;
    }
    return core_avro_content_digest(s, (const uint8_t *)value + CORE_AVRO_WIRE_HEADER,
                                    len - CORE_AVRO_WIRE_HEADER, out, errstr, errstr_size);
}

core_err_t core_avro_content_digest_value(const core_avro_schema_t *schema, avro_value_t *value,
                                          core_digest *out, char *errstr, size_t errstr_size)
{
    void *buf = NULL;
    size_t len = 0;
    core_err_t err = core_avro_encode(schema, value, &buf, &len, errstr, errstr_size);

    if (err != CORE_OK)
        return err;
    err = core_avro_content_digest(schema, (uint8_t *)buf + CORE_AVRO_WIRE_HEADER,
                                   len - CORE_AVRO_WIRE_HEADER, out, errstr, errstr_size);
    free(buf);
    return err;
}
