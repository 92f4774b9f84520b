/* fuzz_wire.c — libFuzzer target for the Confluent wire-format framing of
 * every Kafka value (libcore/src/core_avro_wire.c): the magic byte, the
 * 4-byte big-endian schema id, then the body; read by core_avro_wire_id()
 * (routing, the DLQ), core_avro_decode(), the reusing decoder
 * (core_avro_decoder_decode(), what the consumers use) and
 * core_avro_content_digest_wire() (svc-recon).
 *
 * Input: the value as it comes off a topic. Each input is also tried with a
 * header of every catalogue id put in front, so the bodies reach every
 * schema's checker, and twice through one decoder (its reused buffers).
 *
 * Invariants (abort on breach):
 *  - core_avro_wire_id() succeeds exactly when len >= 5 and byte 0 is 0,
 *    and then gives the big-endian id of bytes 1..4;
 *  - core_avro_decode() never succeeds where wire_id fails, and an unknown
 *    id is CORE_ERR_NOTFOUND;
 *  - the reusing decoder gives the same answer as core_avro_decode() (same
 *    code, same schema, an equal value), the second time too;
 *  - the content digest succeeds on what decodes, with the same schema id;
 *  - every error has a message; nothing crashes, leaks or allocates past
 *    the malloc limit.
 *
 * Build and run: make build/fuzz/fuzz_wire && build/fuzz/fuzz_wire tests/fuzz/corpus/fuzz_wire */
#include "fuzz_util.h"

#include "tributary/core_digest.h"

static core_avro_decoder_t *dec;

static void decoder_free(void)
{
    core_avro_decoder_free(dec);
    dec = NULL;
}

static core_avro_decoder_t *decoder(core_avro_catalog_t *cat)
{
    char err[256];

    if (!dec) {
        dec = core_avro_decoder_new(cat, err, sizeof(err));
        FUZZ_CHECK(dec != NULL, "decoder: %s", err);
        atexit(decoder_free);
    }
    return dec;
}

static void one(core_avro_catalog_t *cat, const uint8_t *buf, size_t len)
{
    char err[512], err2[512];
    uint32_t id = 0;
    const core_avro_schema_t *s = NULL, *s2 = NULL;
    avro_value_t v, *dv = NULL;
    core_err_t rw, rd, rd2;
    core_digest dg;

    err[0] = '\0';
    rw = core_avro_wire_id(buf, len, &id, err, sizeof(err));
    FUZZ_CHECK((rw == CORE_OK) == (len >= CORE_AVRO_WIRE_HEADER && buf[0] == 0),
               "wire_id %d on %zu bytes, magic %d", rw, len, len ? buf[0] : -1);
    if (rw == CORE_OK)
        FUZZ_CHECK(id == ((uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
                          (uint32_t)buf[3] << 8 | buf[4]),
                   "id %u", id);
    else
        FUZZ_CHECK(*err, "wire_id refused without a reason");

    err[0] = '\0';
    rd = core_avro_decode(cat, buf, len, &s, &v, err, sizeof(err));
    FUZZ_CHECK(rd != CORE_OK || rw == CORE_OK, "decoded a value without a header");
    FUZZ_CHECK(rd == CORE_OK || *err, "decode %d without a reason", rd);
    if (rw == CORE_OK && !core_avro_catalog_by_id(cat, id))
        FUZZ_CHECK(rd == CORE_ERR_NOTFOUND, "unknown id %u gave %d", id, rd);

    for (int pass = 0; pass < 2; pass++) {
        err2[0] = '\0';
        rd2 = core_avro_decoder_decode(decoder(cat), buf, len, &s2, &dv, err2, sizeof(err2));
        FUZZ_CHECK(rd2 == rd, "decoder %d (%s), decode %d (%s)", rd2, err2, rd, err);
        if (rd == CORE_OK) {
            FUZZ_CHECK(s2 == s, "decoder schema %s, decode %s", core_avro_schema_name(s2),
                       core_avro_schema_name(s));
            FUZZ_CHECK(avro_value_equal(&v, dv), "decoder value differs from decode's");
        }
    }
    if (rd == CORE_OK) {
        FUZZ_CHECK(core_avro_content_digest_wire(cat, buf, len, &dg, err, sizeof(err)) ==
                       CORE_OK,
                   "decodes but has no digest: %s", err);
        avro_value_decref(&v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    core_avro_catalog_t *cat = fuzz_catalog();
    uint8_t *buf;

    one(cat, data, size);
    if (size > 65536)
        return 0;
    buf = malloc(size + CORE_AVRO_WIRE_HEADER);
    if (!buf)
        return 0;
    memcpy(buf + CORE_AVRO_WIRE_HEADER, data, size);
    for (size_t i = 0; i < core_avro_catalog_count(cat); i++) {
        uint32_t id = core_avro_schema_id(core_avro_catalog_at(cat, i));
        buf[0] = 0;
        buf[1] = (uint8_t)(id >> 24);
        buf[2] = (uint8_t)(id >> 16);
        buf[3] = (uint8_t)(id >> 8);
        buf[4] = (uint8_t)id;
        one(cat, buf, size + CORE_AVRO_WIRE_HEADER);
    }
    free(buf);
    return 0;
}
