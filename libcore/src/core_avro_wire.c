/* core_avro_wire.c — the Confluent wire format: encoding, and decoding that
 * bound-checks every byte against the schema before avro-c reads it (or,
 * in the reusing decoder, before fill_node() sets a value from it).
 *
 * avro-c 1.11.1 trusts lengths and counts (it allocates what a length field
 * says before it notices the buffer is short; negative lengths and block
 * counts reach malloc). The checker below walks the body with the compiled
 * schema and refuses anything avro-c could misread: it is the only thing
 * standing between Kafka bytes and avro-c, so it is fuzzed
 * (tests/fuzz/fuzz_avro_decode.c). */
#include "core_avro_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the body checker --------------------------------------------------- */

struct walk_seg {
    const char *name;  /* field name, or NULL */
    int64_t index;     /* array item or map entry index when name is NULL */
};

struct walk {
    const uint8_t *base, *p, *end;
    uint64_t budget;   /* array items + map entries still allowed */
    char *err;
    size_t errsz;
    struct walk_seg path[CORE_AVRO_MAX_DEPTH * 2 + 4];
    int plen;
};

static int werr(struct walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int werr(struct walk *w, const char *fmt, ...)
{
    char msg[256], path[256];
    size_t pos = 0;
    int i;
    va_list ap;

    if (!w->err || !w->errsz)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    path[0] = '\0';
    for (i = 0; i < w->plen && pos < sizeof(path) - 1; i++) {
        int n;

        if (w->path[i].name)
            n = snprintf(path + pos, sizeof(path) - pos, "%s%s", pos ? "." : "",
                         w->path[i].name);
        else
            n = snprintf(path + pos, sizeof(path) - pos, "[%lld]",
                         (long long)w->path[i].index);
        if (n < 0)
            break;
        pos += (size_t)n;
    }
    if (pos >= sizeof(path))
        pos = sizeof(path) - 1;
    path[pos] = '\0';
    core_errstr(w->err, w->errsz, "%s: %s (at byte %zu of %zu)", pos ? path : "record",
                msg, (size_t)(w->p - w->base), (size_t)(w->end - w->base));
    return -1;
}

static size_t left(const struct walk *w)
{
    return (size_t)(w->end - w->p);
}

/* Zig-zag varint of at most maxbytes (10 for long, 5 for int). */
static int read_varint(struct walk *w, int maxbytes, const char *what, int64_t *out)
{
    uint64_t u = 0;
    int i;

    for (i = 0; i < maxbytes; i++) {
        uint8_t b;

        if (w->p >= w->end)
            return werr(w, "truncated: %s ends past the buffer", what);
        b = *w->p++;
        if (i == maxbytes - 1 && (b & 0x80) == 0 &&
            b > (maxbytes == 10 ? 0x01 : 0x0f))
            return werr(w, "%s: varint overflows %d bits", what,
                        maxbytes == 10 ? 64 : 32);
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return werr(w, "%s: varint longer than %d bytes", what, maxbytes);
}

static int walk_node(struct walk *w, const struct avn *n, int depth);

static int walk_string(struct walk *w, bool is_string, const char *what)
{
    int64_t len;

    if (read_varint(w, 10, what, &len) != 0)
        return -1;
    if (len < 0)
        return werr(w, "negative %s length %lld", what, (long long)len);
    if ((uint64_t)len > left(w))
        return werr(w, "%s length %lld exceeds the %zu bytes left", what,
                    (long long)len, left(w));
    if (is_string && !core_avro_utf8_valid(w->p, (size_t)len))
        return werr(w, "string is not valid UTF-8 or holds a NUL byte");
    w->p += len;
    return 0;
}

static int walk_blocks(struct walk *w, const struct avn *n, int depth)
{
    bool is_map = n->type == AVN_MAP;
    const char *what = is_map ? "map" : "array";
    size_t item_min = n->items->min_size + (is_map ? 1 : 0);
    int64_t idx = 0;
    int seg = w->plen;

    if (depth + 1 > CORE_AVRO_MAX_DEPTH)
        return werr(w, "nesting deeper than %d", CORE_AVRO_MAX_DEPTH);
    for (;;) {
        int64_t count, bsize = -1, i;
        const uint8_t *start;

        if (read_varint(w, 10, "block count", &count) != 0)
            return -1;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN)
                return werr(w, "%s block count out of range", what);
            count = -count;
            if (read_varint(w, 10, "block size", &bsize) != 0)
                return -1;
            if (bsize < 0 || (uint64_t)bsize > left(w))
                return werr(w, "%s block size %lld outside the %zu bytes left", what,
                            (long long)bsize, left(w));
        }
        if ((uint64_t)count > w->budget)
            return werr(w, "%s block of %lld items exceeds the %llu items a record"
                        " of this size may hold", what, (long long)count,
                        (unsigned long long)w->budget);
        if (item_min > 0 && (uint64_t)count > left(w) / item_min)
            return werr(w, "%s block of %lld items cannot fit in the %zu bytes left",
                        what, (long long)count, left(w));
        w->budget -= (uint64_t)count;
        start = w->p;
        w->plen = seg + 1;
        for (i = 0; i < count; i++, idx++) {
            w->path[seg].name = NULL;
            w->path[seg].index = idx;
            if (is_map && walk_string(w, true, "map key") != 0)
                return -1;
            if (walk_node(w, n->items, depth + 1) != 0)
                return -1;
        }
        w->plen = seg;
        if (bsize >= 0 && w->p - start != bsize)
            return werr(w, "%s block size says %lld bytes, its items take %zu", what,
                        (long long)bsize, (size_t)(w->p - start));
    }
    return 0;
}

static int walk_node(struct walk *w, const struct avn *n, int depth)
{
    int64_t v;
    size_t i;

    switch (n->type) {
    case AVN_NULL:
        return 0;
    case AVN_BOOLEAN:
        if (left(w) < 1)
            return werr(w, "truncated: boolean ends past the buffer");
        if (*w->p > 1)
            return werr(w, "boolean byte 0x%02x is neither 0 nor 1", *w->p);
        w->p++;
        return 0;
    case AVN_INT:
        return read_varint(w, 5, "int", &v);
    case AVN_LONG:
        return read_varint(w, 10, "long", &v);
    case AVN_FLOAT:
    case AVN_DOUBLE: {
        size_t sz = n->type == AVN_FLOAT ? 4 : 8;

        if (left(w) < sz)
            return werr(w, "truncated: %s ends past the buffer",
                        n->type == AVN_FLOAT ? "float" : "double");
        w->p += sz;
        return 0;
    }
    case AVN_BYTES:
        return walk_string(w, false, "bytes");
    case AVN_STRING:
        return walk_string(w, true, "string");
    case AVN_FIXED:
        if (left(w) < n->size)
            return werr(w, "truncated: fixed of %zu bytes ends past the buffer", n->size);
        w->p += n->size;
        return 0;
    case AVN_ENUM:
        if (read_varint(w, 5, "enum index", &v) != 0)
            return -1;
        if (v < 0 || (uint64_t)v >= n->nsymbols)
            return werr(w, "enum index %lld out of range (%zu symbols)", (long long)v,
                        n->nsymbols);
        return 0;
    case AVN_UNION:
        if (read_varint(w, 10, "union index", &v) != 0)
            return -1;
        if (v < 0 || (uint64_t)v >= n->nbranches)
            return werr(w, "union index %lld out of range (%zu branches)", (long long)v,
                        n->nbranches);
        return walk_node(w, n->branches[v], depth);
    case AVN_RECORD: {
        int seg = w->plen;

        if (depth + 1 > CORE_AVRO_MAX_DEPTH)
            return werr(w, "nesting deeper than %d", CORE_AVRO_MAX_DEPTH);
        w->plen = seg + 1;
        for (i = 0; i < n->nfields; i++) {
            w->path[seg].name = n->fields[i].name;
            if (walk_node(w, n->fields[i].type, depth + 1) != 0)
                return -1;
        }
        w->plen = seg;
        return 0;
    }
    case AVN_ARRAY:
    case AVN_MAP:
        return walk_blocks(w, n, depth);
    }
    return werr(w, "unknown schema node");
}

core_err_t core_avro_check_body(const core_avro_schema_t *s, const void *body,
                                size_t len, size_t max_record, char *errstr,
                                size_t errstr_size)
{
    struct walk w;

    if (!max_record)
        max_record = CORE_AVRO_DEFAULT_MAX_RECORD;
    if (len > max_record) {
        core_errstr(errstr, errstr_size, "record of %zu bytes exceeds max %zu bytes",
                    len, max_record);
        return CORE_ERR_TOOBIG;
    }
    if (!body && len) {
        core_errstr(errstr, errstr_size, "no buffer given");
        return CORE_ERR_INVALID;
    }
    memset(&w, 0, sizeof(w));
    w.base = w.p = body ? body : (const void *)"";
    w.end = w.p + len;
    /* Zero-width items (null, empty records) would let a tiny body announce
     * billions of elements: every element counts against this budget. */
    w.budget = (uint64_t)len + 4096;
    w.err = errstr;
    w.errsz = errstr_size;
    if (walk_node(&w, s->root, 0) != 0)
        return CORE_ERR_INVALID;
    if (w.p != w.end) {
        core_errstr(errstr, errstr_size, "%zu trailing bytes after the record (at byte %zu of %zu)",
                    (size_t)(w.end - w.p), (size_t)(w.p - w.base), len);
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

/* ---- decoding ----------------------------------------------------------- */

static core_err_t read_checked(const core_avro_schema_t *s, const void *body,
                               size_t len, avro_value_t *out, char *errstr,
                               size_t errstr_size)
{
    avro_value_t v;
    avro_reader_t r;

    if (avro_generic_value_new(s->iface, &v) != 0) {
        core_errstr(errstr, errstr_size, "%s: cannot allocate a value", s->name);
        return CORE_ERR_NOMEM;
    }
    r = avro_reader_memory(len ? body : "", (int64_t)len);
    if (!r) {
        avro_value_decref(&v);
        core_errstr(errstr, errstr_size, "%s: cannot allocate a reader", s->name);
        return CORE_ERR_NOMEM;
    }
    if (avro_value_read(r, &v) != 0) {
        /* copy the message out at once: it is not thread-safe */
        core_errstr(errstr, errstr_size, "%s: avro-c: %s", s->name, avro_strerror());
        avro_reader_free(r);
        avro_value_decref(&v);
        return CORE_ERR_INVALID;
    }
    avro_reader_free(r);
    *out = v;
    return CORE_OK;
}

core_err_t core_avro_decode_body(const core_avro_schema_t *s, const void *body,
                                 size_t len, size_t max_record, avro_value_t *out,
                                 char *errstr, size_t errstr_size)
{
    core_err_t err = core_avro_check_body(s, body, len, max_record, errstr, errstr_size);

    if (err != CORE_OK)
        return err;
    return read_checked(s, body, len, out, errstr, errstr_size);
}

core_err_t core_avro_decode_body_as(const core_avro_schema_t *writer,
                                    const core_avro_schema_t *reader, const void *body,
                                    size_t len, size_t max_record, avro_value_t *out,
                                    char *errstr, size_t errstr_size)
{
    core_avro_scratch sc = { NULL, 0 };
    avro_value_t v;
    core_err_t err;

    if (core_avro_same_layout_(writer, reader))
        return core_avro_decode_body(writer, body, len, max_record, out, errstr, errstr_size);
    if ((err = core_avro_check_body(writer, body, len, max_record, errstr, errstr_size)) !=
        CORE_OK)
        return err;
    if (avro_generic_value_new(reader->iface, &v) != 0) {
        core_errstr(errstr, errstr_size, "%s: cannot allocate a value", reader->name);
        return CORE_ERR_NOMEM;
    }
    err = core_avro_project_(writer, reader, body, &v, &sc, errstr, errstr_size);
    free(sc.buf);
    if (err != CORE_OK)
        avro_value_decref(&v);
    else
        *out = v;
    return err;
}

/* ---- a decoder reusing its values --------------------------------------- */

#define DECODER_MAX_SCHEMAS 16

struct core_avro_decoder {
    const core_avro_catalog_t *cat;
    core_avro_scratch scratch; /* a string with its NUL, for avro_value_set_string_len() */
    size_t n;
    struct {
        const core_avro_schema_t *schema; /* the writer's */
        const core_avro_schema_t *reader; /* what it is read as */
        bool same;                        /* core_avro_same_layout_() */
        avro_value_t value;               /* a value of the reader's */
    } v[DECODER_MAX_SCHEMAS];
};

core_avro_decoder_t *core_avro_decoder_new(const core_avro_catalog_t *cat, char *errstr,
                                           size_t errstr_size)
{
    core_avro_decoder_t *d = calloc(1, sizeof(*d));

    if (!d) {
        core_errstr(errstr, errstr_size, "avro decoder: out of memory");
        return NULL;
    }
    d->cat = cat;
    return d;
}

void core_avro_decoder_free(core_avro_decoder_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        avro_value_decref(&d->v[i].value);
    free(d->scratch.buf);
    free(d);
}

/* ---- filling a reused value from checked bytes ---------------------------

 * avro_value_read() allocates every string and bytes value it reads and
 * gives the buffer to the value, which frees it on the next reset: two
 * malloc/free pairs per string per record. fill_node() reads the same
 * bytes (already checked by core_avro_check_body(): every length and index
 * is in range, so it does not check again) and sets each value with
 * avro_value_set_*(), which copies into the value's own buffer and keeps it
 * across resets: no allocation once the value has seen a record as large.
 * The result is the value avro_value_read() makes (same kinds, same sizes:
 * a string's size counts its NUL), which tests/unit/test_avro.c checks with
 * avro_value_equal(). */


int64_t core_avro_fill_varint_(core_avro_fill *f)
{
    uint64_t u = 0;

    for (int i = 0; i < 10; i++) {
        uint8_t b = *f->p++;

        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A copy of the next len bytes with a NUL after them (the scratch buffer). */
const char *core_avro_fill_cstr_(core_avro_fill *f, size_t len)
{
    core_avro_scratch *sc = f->scratch;

    if (len + 1 > sc->size) {
        size_t ns = sc->size ? sc->size : 256;
        char *nb;

        while (ns < len + 1)
            ns *= 2;
        if (!(nb = realloc(sc->buf, ns)))
            return NULL;
        sc->buf = nb;
        sc->size = ns;
    }
    memcpy(sc->buf, f->p, len);
    sc->buf[len] = '\0';
    f->p += len;
    return sc->buf;
}

int core_avro_fill_node_(core_avro_fill *f, const struct avn *n, avro_value_t *v)
{
    int64_t x;

    switch (n->type) {
    case AVN_NULL:
        return avro_value_set_null(v);
    case AVN_BOOLEAN:
        return avro_value_set_boolean(v, *f->p++);
    case AVN_INT:
        return avro_value_set_int(v, (int32_t)core_avro_fill_varint_(f));
    case AVN_LONG:
        return avro_value_set_long(v, core_avro_fill_varint_(f));
    case AVN_FLOAT: {
        uint32_t u = (uint32_t)f->p[0] | (uint32_t)f->p[1] << 8 | (uint32_t)f->p[2] << 16 |
                     (uint32_t)f->p[3] << 24;
        float fl;

        memcpy(&fl, &u, sizeof(fl));
        f->p += 4;
        return avro_value_set_float(v, fl);
    }
    case AVN_DOUBLE: {
        uint64_t u = 0;
        double db;

        for (int i = 7; i >= 0; i--)
            u = u << 8 | f->p[i];
        memcpy(&db, &u, sizeof(db));
        f->p += 8;
        return avro_value_set_double(v, db);
    }
    case AVN_BYTES: {
        size_t len = (size_t)core_avro_fill_varint_(f);
        int rc = avro_value_set_bytes(v, (void *)f->p, len);

        f->p += len;
        return rc;
    }
    case AVN_STRING: {
        size_t len = (size_t)core_avro_fill_varint_(f);
        const char *str = core_avro_fill_cstr_(f, len);

        if (!str) {
            avro_set_error("out of memory");
            return ENOMEM;
        }
        return avro_value_set_string_len(v, str, len + 1);
    }
    case AVN_FIXED: {
        int rc = avro_value_set_fixed(v, (void *)f->p, n->size);

        f->p += n->size;
        return rc;
    }
    case AVN_ENUM:
        return avro_value_set_enum(v, (int)core_avro_fill_varint_(f));
    case AVN_UNION: {
        avro_value_t b;
        int rc;

        x = core_avro_fill_varint_(f);
        if ((rc = avro_value_set_branch(v, (int)x, &b)) != 0)
            return rc;
        return core_avro_fill_node_(f, n->branches[x], &b);
    }
    case AVN_RECORD:
        for (size_t i = 0; i < n->nfields; i++) {
            avro_value_t fv;
            int rc;

            if ((rc = avro_value_get_by_index(v, i, &fv, NULL)) != 0 ||
                (rc = core_avro_fill_node_(f, n->fields[i].type, &fv)) != 0)
                return rc;
        }
        return 0;
    case AVN_ARRAY:
    case AVN_MAP:
        for (;;) {
            int64_t count = core_avro_fill_varint_(f);

            if (count == 0)
                return 0;
            if (count < 0) {
                count = -count;
                (void)core_avro_fill_varint_(f); /* block size */
            }
            for (int64_t i = 0; i < count; i++) {
                avro_value_t item;
                int rc;

                if (n->type == AVN_MAP) {
                    size_t klen = (size_t)core_avro_fill_varint_(f);
                    const char *key = core_avro_fill_cstr_(f, klen);

                    if (!key) {
                        avro_set_error("out of memory");
                        return ENOMEM;
                    }
                    rc = avro_value_add(v, key, &item, NULL, NULL);
                } else {
                    rc = avro_value_append(v, &item, NULL);
                }
                if (rc != 0 || (rc = core_avro_fill_node_(f, n->items, &item)) != 0)
                    return rc;
            }
        }
    }
    avro_set_error("unknown schema node");
    return EINVAL;
}

core_err_t core_avro_decoder_decode(core_avro_decoder_t *d, const void *buf, size_t len,
                                    const core_avro_schema_t **schemap, avro_value_t **valuep,
                                    char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *s;
    const uint8_t *body = (const uint8_t *)buf + CORE_AVRO_WIRE_HEADER;
    size_t i, slot = DECODER_MAX_SCHEMAS;
    avro_value_t *v;
    uint32_t id;
    core_err_t err;

    if ((err = core_avro_wire_id(buf, len, &id, errstr, errstr_size)) != CORE_OK)
        return err;
    if ((err = core_avro_catalog_id_(d->cat, id, &s, errstr, errstr_size)) != CORE_OK)
        return err;
    len -= CORE_AVRO_WIRE_HEADER;
    if ((err = core_avro_check_body(s, body, len, d->cat->max_record, errstr, errstr_size)) !=
        CORE_OK)
        return err;
    for (i = 0; i < d->n && slot == DECODER_MAX_SCHEMAS; i++)
        if (d->v[i].schema == s)
            slot = i;
    if (slot == DECODER_MAX_SCHEMAS) {
        const core_avro_schema_t *r = core_avro_reader_of_(d->cat, s);

        if (d->n == DECODER_MAX_SCHEMAS) { /* every slot taken: drop the oldest */
            avro_value_decref(&d->v[0].value);
            memmove(&d->v[0], &d->v[1], (d->n - 1) * sizeof(d->v[0]));
            d->n--;
        }
        if (avro_generic_value_new(r->iface, &d->v[d->n].value) != 0) {
            core_errstr(errstr, errstr_size, "%s: cannot allocate a value", r->name);
            return CORE_ERR_NOMEM;
        }
        d->v[d->n].schema = s;
        d->v[d->n].reader = r;
        d->v[d->n].same = core_avro_same_layout_(s, r);
        slot = d->n++;
    }
    v = &d->v[slot].value;
    /* Arrays and maps would append to what the last record left. */
    if (avro_value_reset(v) != 0) {
        core_errstr(errstr, errstr_size, "%s: avro-c: %s", s->name, avro_strerror());
        return CORE_ERR_INVALID;
    }
    if (d->v[slot].same) {
        core_avro_fill f = { body, &d->scratch };

        if (core_avro_fill_node_(&f, s->root, v) != 0) {
            core_errstr(errstr, errstr_size, "%s: avro-c: %s", s->name, avro_strerror());
            return CORE_ERR_INVALID;
        }
    } else if ((err = core_avro_project_(s, d->v[slot].reader, body, v, &d->scratch, errstr,
                                         errstr_size)) != CORE_OK) {
        return err;
    }
    if (schemap)
        *schemap = d->v[slot].reader;
    *valuep = v;
    return CORE_OK;
}

core_err_t core_avro_wire_id(const void *buf, size_t len, uint32_t *idp,
                             char *errstr, size_t errstr_size)
{
    const uint8_t *b = buf;

    if (!b || len < CORE_AVRO_WIRE_HEADER) {
        core_errstr(errstr, errstr_size,
                    "record of %zu bytes is shorter than the %d-byte wire header",
                    b ? len : 0, CORE_AVRO_WIRE_HEADER);
        return CORE_ERR_INVALID;
    }
    if (b[0] != 0) {
        core_errstr(errstr, errstr_size, "wrong magic byte 0x%02x", b[0]);
        return CORE_ERR_INVALID;
    }
    *idp = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    return CORE_OK;
}

core_err_t core_avro_decode(const core_avro_catalog_t *cat, const void *buf,
                            size_t len, const core_avro_schema_t **schemap,
                            avro_value_t *out, char *errstr, size_t errstr_size)
{
    const core_avro_schema_t *s, *r;
    const uint8_t *body = (const uint8_t *)buf + CORE_AVRO_WIRE_HEADER;
    uint32_t id;
    core_err_t err;

    if ((err = core_avro_wire_id(buf, len, &id, errstr, errstr_size)) != CORE_OK)
        return err;
    if ((err = core_avro_catalog_id_(cat, id, &s, errstr, errstr_size)) != CORE_OK)
        return err;
    /* an older version of its dataset is read as the dataset's current schema */
    r = core_avro_reader_of_(cat, s);
    err = core_avro_decode_body_as(s, r, body, len - CORE_AVRO_WIRE_HEADER, cat->max_record, out,
                                   errstr, errstr_size);
    if (err == CORE_OK && schemap)
        *schemap = r;
    return err;
}

/* ---- encoding ----------------------------------------------------------- */

static core_err_t body_size(const core_avro_schema_t *s, avro_value_t *value,
                            size_t *sizep, char *errstr, size_t errstr_size)
{
    avro_schema_t vs = avro_value_get_schema(value);

    if (!vs || (vs != s->avro && !avro_schema_equal(vs, s->avro))) {
        core_errstr(errstr, errstr_size, "value is not of schema %s (id %u)", s->name,
                    s->id);
        return CORE_ERR_INVALID;
    }
    if (avro_value_sizeof(value, sizep) != 0) {
        core_errstr(errstr, errstr_size, "%s: avro-c cannot size the value: %s", s->name,
                    avro_strerror());
        return CORE_ERR_INVALID;
    }
    return CORE_OK;
}

core_err_t core_avro_encode_into(const core_avro_schema_t *s, avro_value_t *value,
                                 void *buf, size_t size, size_t *lenp,
                                 char *errstr, size_t errstr_size)
{
    size_t body, total;
    uint8_t *b = buf;
    avro_writer_t w;
    core_err_t err;
    int rc;

    if ((err = body_size(s, value, &body, errstr, errstr_size)) != CORE_OK)
        return err;
    total = body + CORE_AVRO_WIRE_HEADER;
    if (lenp)
        *lenp = total;
    if (!b || size < total) {
        core_errstr(errstr, errstr_size, "%s: encoding needs %zu bytes, buffer has %zu",
                    s->name, total, b ? size : 0);
        return CORE_ERR_TOOBIG;
    }
    b[0] = 0;
    b[1] = (uint8_t)(s->id >> 24);
    b[2] = (uint8_t)(s->id >> 16);
    b[3] = (uint8_t)(s->id >> 8);
    b[4] = (uint8_t)s->id;
    if (body == 0)
        return CORE_OK;
    if (!(w = avro_writer_memory((const char *)b + CORE_AVRO_WIRE_HEADER, (int64_t)body))) {
        core_errstr(errstr, errstr_size, "%s: cannot allocate a writer", s->name);
        return CORE_ERR_NOMEM;
    }
    rc = avro_value_write(w, value);
    if (rc != 0 || avro_writer_tell(w) != (int64_t)body) {
        core_errstr(errstr, errstr_size, "%s: avro-c cannot write the value: %s", s->name,
                    rc ? avro_strerror() : "size mismatch");
        avro_writer_free(w);
        return CORE_ERR_INVALID;
    }
    avro_writer_free(w);
    return CORE_OK;
}

core_err_t core_avro_encode(const core_avro_schema_t *s, avro_value_t *value,
                            void **bufp, size_t *lenp, char *errstr,
                            size_t errstr_size)
{
    size_t body, total;
    void *buf;
    core_err_t err;

    if ((err = body_size(s, value, &body, errstr, errstr_size)) != CORE_OK)
        return err;
    total = body + CORE_AVRO_WIRE_HEADER;
    if (lenp)
        *lenp = total;
    if (!bufp)
        return CORE_OK;
    if (!(buf = malloc(total))) {
        core_errstr(errstr, errstr_size, "%s: out of memory (%zu bytes)", s->name, total);
        return CORE_ERR_NOMEM;
    }
    err = core_avro_encode_into(s, value, buf, total, NULL, errstr, errstr_size);
    if (err != CORE_OK) {
        free(buf);
        return err;
    }
    *bufp = buf;
    return CORE_OK;
}
