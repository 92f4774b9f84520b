/* bench_produce.c — the libcore idempotent producer against kcat, on the
 * same encoded payee records, to the local broker.
 *
 *   bench_produce run --broker B --topic T --kcat-topic T2 --out DIR
 *                     --key-delim KD --delim D [-n N] [--seed S]
 *                     [--poll-every K] [-X prop=value ...] [--results FILE]
 *       Generates N payee records (natural JSON -> core_avro_from_json ->
 *       core_avro_encode: Confluent wire format; key = the tb.key field),
 *       writes them for kcat to DIR/kcat-input.bin as key KD value D ...
 *       (KD and D in kcat's -K/-D syntax: \xNN, \n, \t, plain characters)
 *       and checks that kcat's splitting of that file gives back exactly
 *       the records (a record containing D fails loudly); writes
 *       DIR/expected.txt (count, bytes, order-independent digest of the
 *       key/value pairs); makes both topics exist (broker auto-create)
 *       before any clock starts; then times, in one window:
 *       core_kafka_producer_new() -> N x core_kafka_produce() -> flush ->
 *       every delivery report served -> core_kafka_producer_free(),
 *       the way kcat's process lifetime covers rd_kafka_new() to
 *       rd_kafka_destroy(). Properties: bootstrap.servers, lz4, linger.ms=5
 *       (defaults; -X overrides), idempotence and acks=all (enforced by
 *       libcore).
 *
 *   bench_produce verify --expected DIR/expected.txt --label L
 *       Reads `kcat -C -e -f '%K %S %k%s'` output on stdin and checks the
 *       topic holds exactly the expected records: count, key and value
 *       bytes, and the digest of every key/value pair (so nothing lost,
 *       duplicated, truncated or split differently).
 *
 *   bench_produce delete --broker B TOPIC...
 *       Delete the bench topics (Admin API).
 *
 * Exit: 0 fine, 1 broken (a count or content mismatch, a failed delivery,
 * a delimiter inside a record), 2 setup (usage, broker unreachable).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "bench_common.h"
#include "tributary/core_avro.h"
#include "tributary/core_digest.h"
#include "tributary/core_kafka.h"
#include "tributary/core_log.h"

#ifndef BENCH_PROTO_DIR
#define BENCH_PROTO_DIR "proto"
#endif

#define MAX_X 32

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "bench_produce: out of memory (%zu bytes)\n", n);
        exit(BENCH_EX_SETUP);
    }
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* The pair digest the verify step recomputes: SHA-256 over
 * keylen (4 bytes big-endian) | key | value. */
static void pair_digest(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                        uint8_t **scratch, size_t *cap, core_digest *out)
{
    size_t need = 4 + klen + vlen;

    if (need > *cap) {
        free(*scratch);
        *cap = need * 2;
        *scratch = xmalloc(*cap);
    }
    (*scratch)[0] = (uint8_t)(klen >> 24);
    (*scratch)[1] = (uint8_t)(klen >> 16);
    (*scratch)[2] = (uint8_t)(klen >> 8);
    (*scratch)[3] = (uint8_t)klen;
    memcpy(*scratch + 4, key, klen);
    memcpy(*scratch + 4 + klen, val, vlen);
    core_digest_sha256(*scratch, need, out);
}

/* ---- records ----------------------------------------------------------- */

typedef struct records {
    uint64_t n;
    uint8_t *keys, *vals;   /* arenas */
    size_t *koff, *voff;    /* n + 1 offsets each */
    uint64_t key_bytes, val_bytes;
    core_digest_agg agg;
} records;

static const uint8_t *rec_key(const records *rs, uint64_t i, size_t *len)
{
    *len = rs->koff[i + 1] - rs->koff[i];
    return rs->keys + rs->koff[i];
}

static const uint8_t *rec_val(const records *rs, uint64_t i, size_t *len)
{
    *len = rs->voff[i + 1] - rs->voff[i];
    return rs->vals + rs->voff[i];
}

static int generate(records *rs, uint64_t n, uint64_t seed, const char *proto)
{
    char errstr[512], text[BENCH_PAYEE_JSON_MAX];
    core_avro_catalog_t *cat = core_avro_catalog_load(proto, errstr, sizeof(errstr));
    const core_avro_schema_t *s;
    size_t kcap = (size_t)n * 16 + 64, vcap = (size_t)n * 256 + 4096;
    uint8_t *scratch = NULL;
    size_t scap = 0;
    int rc = BENCH_EX_OK;

    if (!cat) {
        fprintf(stderr, "bench_produce: %s\n", errstr);
        return BENCH_EX_SETUP;
    }
    if (!(s = core_avro_catalog_by_dataset(cat, "payee"))) {
        fprintf(stderr, "bench_produce: no dataset payee in %s\n", proto);
        core_avro_catalog_free(cat);
        return BENCH_EX_SETUP;
    }
    rs->n = n;
    rs->keys = xmalloc(kcap);
    rs->vals = xmalloc(vcap);
    rs->koff = xmalloc(((size_t)n + 1) * sizeof(size_t));
    rs->voff = xmalloc(((size_t)n + 1) * sizeof(size_t));
    rs->koff[0] = rs->voff[0] = 0;
    core_digest_agg_init(&rs->agg);

    for (uint64_t i = 0; i < n && rc == BENCH_EX_OK; i++) {
        size_t len = bench_payee_json(seed, i, text, sizeof(text)), klen = 0, vlen = 0;
        cJSON *j = len ? cJSON_ParseWithLength(text, len) : NULL;
        avro_value_t v;
        const char *key;
        core_err_t err;
        core_digest d;

        if (!j) {
            fprintf(stderr, "BROKEN: record %" PRIu64 ": generated JSON does not parse\n", i);
            rc = BENCH_EX_BROKEN;
            break;
        }
        err = core_avro_from_json(s, j, &v, errstr, sizeof(errstr));
        cJSON_Delete(j);
        if (err != CORE_OK) {
            fprintf(stderr, "BROKEN: record %" PRIu64 ": from_json: %s\n", i, errstr);
            rc = BENCH_EX_BROKEN;
            break;
        }
        if (core_avro_get_key(s, &v, &key, &klen, errstr, sizeof(errstr)) != CORE_OK ||
            core_avro_encode(s, &v, NULL, &vlen, errstr, sizeof(errstr)) != CORE_OK) {
            fprintf(stderr, "BROKEN: record %" PRIu64 ": %s\n", i, errstr);
            avro_value_decref(&v);
            rc = BENCH_EX_BROKEN;
            break;
        }
        while (rs->koff[i] + klen > kcap) {
            kcap *= 2;
            if (!(rs->keys = realloc(rs->keys, kcap)))
                exit(BENCH_EX_SETUP);
        }
        while (rs->voff[i] + vlen > vcap) {
            vcap *= 2;
            if (!(rs->vals = realloc(rs->vals, vcap)))
                exit(BENCH_EX_SETUP);
        }
        memcpy(rs->keys + rs->koff[i], key, klen);
        err = core_avro_encode_into(s, &v, rs->vals + rs->voff[i], vcap - rs->voff[i], &vlen,
                                    errstr, sizeof(errstr));
        avro_value_decref(&v);
        if (err != CORE_OK) {
            fprintf(stderr, "BROKEN: record %" PRIu64 ": encode: %s\n", i, errstr);
            rc = BENCH_EX_BROKEN;
            break;
        }
        rs->koff[i + 1] = rs->koff[i] + klen;
        rs->voff[i + 1] = rs->voff[i] + vlen;
        pair_digest(rs->keys + rs->koff[i], klen, rs->vals + rs->voff[i], vlen, &scratch, &scap,
                    &d);
        core_digest_agg_add(&rs->agg, &d);
    }
    if (rc == BENCH_EX_OK) {
        rs->key_bytes = rs->koff[n];
        rs->val_bytes = rs->voff[n];
    }
    free(scratch);
    core_avro_catalog_free(cat);
    return rc;
}

/* Write the kcat input file, then read it back and split it the way kcat
 * 1.7.1 does (first D from the start of each message, then the first KD in
 * the message; empty messages skipped) and compare with the records. */
static int write_kcat_file(const records *rs, const char *path, const char *kd, size_t kdlen,
                           const char *d, size_t dlen)
{
    FILE *f = fopen(path, "wb");
    uint8_t *buf;
    size_t size, pos = 0;
    long fsize;

    if (!f) {
        fprintf(stderr, "bench_produce: %s: %s\n", path, strerror(errno));
        return BENCH_EX_SETUP;
    }
    for (uint64_t i = 0; i < rs->n; i++) {
        size_t kl, vl;
        const uint8_t *k = rec_key(rs, i, &kl), *v = rec_val(rs, i, &vl);

        if (fwrite(k, 1, kl, f) != kl || fwrite(kd, 1, kdlen, f) != kdlen ||
            fwrite(v, 1, vl, f) != vl || fwrite(d, 1, dlen, f) != dlen) {
            fprintf(stderr, "bench_produce: %s: %s\n", path, strerror(errno));
            fclose(f);
            return BENCH_EX_SETUP;
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_produce: %s: %s\n", path, strerror(errno));
        return BENCH_EX_SETUP;
    }

    if (!(f = fopen(path, "rb")) || fseek(f, 0, SEEK_END) != 0 || (fsize = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "bench_produce: %s: cannot read back\n", path);
        if (f)
            fclose(f);
        return BENCH_EX_SETUP;
    }
    size = (size_t)fsize;
    buf = xmalloc(size);
    if (fread(buf, 1, size, f) != size) {
        fprintf(stderr, "bench_produce: %s: short read\n", path);
        fclose(f);
        free(buf);
        return BENCH_EX_SETUP;
    }
    fclose(f);

    for (uint64_t i = 0; i < rs->n; i++) {
        const uint8_t *m = buf + pos, *end = memmem(m, size - pos, d, dlen), *kp;
        size_t mlen, kl, vl;
        const uint8_t *k = rec_key(rs, i, &kl), *v = rec_val(rs, i, &vl);

        mlen = end ? (size_t)(end - m) : size - pos;
        kp = memmem(m, mlen, kd, kdlen);
        if (!kp || (size_t)(kp - m) != kl || memcmp(m, k, kl) != 0 ||
            mlen - kl - kdlen != vl || memcmp(kp + kdlen, v, vl) != 0) {
            fprintf(stderr,
                    "BROKEN: record %" PRIu64 " (key %.*s): kcat would not split it back: the "
                    "%s delimiter occurs inside the record; choose other delimiters\n",
                    i, (int)kl, (const char *)k,
                    memmem(v, vl, d, dlen) || mlen != kl + kdlen + vl ? "message" : "key");
            free(buf);
            return BENCH_EX_BROKEN;
        }
        pos += mlen + (end ? dlen : 0);
    }
    if (pos != size) {
        fprintf(stderr, "BROKEN: %s: %zu bytes left after the last record\n", path, size - pos);
        free(buf);
        return BENCH_EX_BROKEN;
    }
    free(buf);
    return BENCH_EX_OK;
}

static int write_expected(const records *rs, const char *path)
{
    char hex[CORE_DIGEST_HEX_LEN + 1];
    FILE *f = fopen(path, "w");

    if (!f) {
        fprintf(stderr, "bench_produce: %s: %s\n", path, strerror(errno));
        return BENCH_EX_SETUP;
    }
    core_digest_agg_to_hex(&rs->agg, hex);
    fprintf(f, "count %" PRIu64 "\nkey_bytes %" PRIu64 "\nvalue_bytes %" PRIu64 "\ndigest %s\n",
            rs->n, rs->key_bytes, rs->val_bytes, hex);
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_produce: %s: %s\n", path, strerror(errno));
        return BENCH_EX_SETUP;
    }
    return BENCH_EX_OK;
}

/* ---- topics ------------------------------------------------------------ */

static rd_kafka_t *plain_client(const char *broker)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", broker, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bench_produce: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "bench_produce: %s\n", errstr);
        return NULL;
    }
    return rk;
}

/* Ask for the topic's metadata (a producer's request lets the broker
 * auto-create it) until every partition has a leader, within 60 s.
 * @returns the partition count, or -1. */
static int ensure_topic(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = core_mono_ms() + 60000;
    const char *why = "no answer";
    int parts = -1;

    if (!rkt)
        return -1;
    while (core_mono_ms() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);

        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
            const rd_kafka_metadata_topic_t *t = &md->topics[0];
            bool ready = t->err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partition_cnt > 0;

            for (int i = 0; ready && i < t->partition_cnt; i++)
                if (t->partitions[i].err || t->partitions[i].leader < 0)
                    ready = false;
            why = t->err ? rd_kafka_err2str(t->err) : "partitions without a leader";
            if (ready)
                parts = t->partition_cnt;
        } else if (err) {
            why = rd_kafka_err2str(err);
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (parts > 0)
            break;
        sleep_ms(200);
    }
    rd_kafka_topic_destroy(rkt);
    if (parts < 0)
        fprintf(stderr, "bench_produce: topic %s not ready within 60 s: %s\n", topic, why);
    return parts;
}

static int cmd_delete(const char *broker, char **topics, int n)
{
    rd_kafka_t *rk = plain_client(broker);
    rd_kafka_DeleteTopic_t **del;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    int rc = BENCH_EX_OK;

    if (!rk)
        return BENCH_EX_SETUP;
    del = xmalloc((size_t)n * sizeof(*del));
    for (int i = 0; i < n; i++)
        del[i] = rd_kafka_DeleteTopic_new(topics[i]);
    q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, del, (size_t)n, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "bench_produce: delete topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "timed out");
        rc = BENCH_EX_SETUP;
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);

        for (size_t i = 0; i < cnt; i++)
            if (rd_kafka_topic_result_error(res[i]))
                fprintf(stderr, "bench_produce: delete %s: %s\n", rd_kafka_topic_result_name(res[i]),
                        rd_kafka_topic_result_error_string(res[i]));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy_array(del, (size_t)n);
    free(del);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- the timed run ----------------------------------------------------- */

typedef struct run_opts {
    const char *broker, *topic, *kcat_topic, *out, *results, *proto;
    const char *kd_arg, *d_arg;
    uint64_t n, seed;
    uint64_t poll_every;
    core_kafka_prop xprops[MAX_X];
    size_t nx;
} run_opts;

static int cmd_run(run_opts *o)
{
    char path[4096], kd[64], d[64], errstr[512], a[32], b[32], c[32], e[32], f[32];
    size_t kdlen = bench_parse_delim(o->kd_arg, kd, sizeof(kd)), dlen = bench_parse_delim(o->d_arg, d, sizeof(d));
    records rs = { 0 };
    bench_clock g0, g1, t0, t_new, t_enq, t_flushed, t1;
    core_kafka_prop defaults[3] = {
        { "bootstrap.servers", o->broker },
        { "compression.codec", "lz4" },
        { "linger.ms", "5" },
    };
    core_kafka_producer_opts popts = {
        .defaults = defaults, .ndefaults = 3,
        .overrides = o->xprops, .noverrides = o->nx,
    };
    core_kafka_producer_t *p;
    rd_kafka_t *rk;
    uint64_t refused = 0, delivered, failed;
    size_t left;
    int parts1, parts2, rc;
    bench_result res = { .section = "produce", .name = "libcore", .limit = "" };

    if (!kdlen || !dlen || (kdlen == dlen && !memcmp(kd, d, dlen))) {
        fprintf(stderr, "bench_produce: delimiters must be non-empty, without NUL, and differ\n");
        return BENCH_EX_SETUP;
    }

    bench_clock_now(&g0);
    if ((rc = generate(&rs, o->n, o->seed, o->proto)) != BENCH_EX_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/kcat-input.bin", o->out);
    if ((rc = write_kcat_file(&rs, path, kd, kdlen, d, dlen)) != BENCH_EX_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/expected.txt", o->out);
    if ((rc = write_expected(&rs, path)) != BENCH_EX_OK)
        return rc;
    bench_clock_now(&g1);
    printf("produce: %" PRIu64 " payee records generated and encoded in %s (key %.1f B, value "
           "%.1f B per record); kcat input %s/kcat-input.bin checked (delimiters %zu and %zu "
           "bytes)\n",
           rs.n, bench_fmt_dur(g1.wall - g0.wall, a, sizeof(a)),
           (double)rs.key_bytes / (double)rs.n, (double)rs.val_bytes / (double)rs.n, o->out,
           kdlen, dlen);

    /* Topics exist and have leaders before any clock starts. */
    if (!(rk = plain_client(o->broker)))
        return BENCH_EX_SETUP;
    parts1 = ensure_topic(rk, o->topic);
    parts2 = ensure_topic(rk, o->kcat_topic);
    rd_kafka_destroy(rk);
    if (parts1 < 0 || parts2 < 0)
        return BENCH_EX_SETUP;
    printf("  topics %s (%d partitions) and %s (%d partitions) ready\n", o->topic, parts1,
           o->kcat_topic, parts2);
    fflush(stdout);

    bench_clock_now(&t0);
    if (!(p = core_kafka_producer_new(&popts, errstr, sizeof(errstr)))) {
        fprintf(stderr, "bench_produce: producer: %s\n", errstr);
        return BENCH_EX_SETUP;
    }
    bench_clock_now(&t_new);
    for (uint64_t i = 0; i < rs.n; i++) {
        size_t kl, vl;
        const uint8_t *k = rec_key(&rs, i, &kl), *v = rec_val(&rs, i, &vl);
        core_err_t err = core_kafka_produce(p, o->topic, k, kl, v, vl, NULL, 0, NULL, errstr,
                                            sizeof(errstr));

        if (err != CORE_OK) {
            if (refused++ == 0)
                fprintf(stderr, "BROKEN: record %" PRIu64 " refused: %s: %s\n", i,
                        core_err2str(err), errstr);
            if (err == CORE_ERR_FATAL)
                break;
        }
        if (o->poll_every && (i + 1) % o->poll_every == 0)
            core_kafka_producer_poll(p, 0);
    }
    bench_clock_now(&t_enq);
    left = core_kafka_producer_flush(p, 120000);
    bench_clock_now(&t_flushed);
    delivered = core_kafka_producer_delivered(p);
    failed = core_kafka_producer_failed(p);
    if (core_kafka_producer_fatal(p, errstr, sizeof(errstr)))
        fprintf(stderr, "BROKEN: producer fatal error: %s\n", errstr);
    core_kafka_producer_free(p);
    bench_clock_now(&t1);

    res.n = rs.n;
    res.bytes = rs.key_bytes + rs.val_bytes;
    bench_result_times(&res, &t0, &t1);
    printf("  libcore  %8s rec/s  %9s  %6.3f CPU-s/Mrec (user %.2f s, sys %.2f s; all "
           "threads)  wall %.2f s\n",
           bench_fmt_rate((double)rs.n / res.wall_s, a, sizeof(a)),
           bench_fmt_bw((double)res.bytes / res.wall_s, b, sizeof(b)),
           res.cpu_s * 1e6 / (double)rs.n, res.user_s, res.sys_s, res.wall_s);
    printf("           producer_new %s, enqueue %s (%s/rec), flush %s, free %s; delivered %" PRIu64
           ", failed %" PRIu64 ", refused %" PRIu64 "\n",
           bench_fmt_dur(t_new.wall - t0.wall, a, sizeof(a)),
           bench_fmt_dur(t_enq.wall - t_new.wall, b, sizeof(b)),
           bench_fmt_dur((t_enq.wall - t_new.wall) / (double)rs.n, c, sizeof(c)),
           bench_fmt_dur(t_flushed.wall - t_enq.wall, e, sizeof(e)),
           bench_fmt_dur(t1.wall - t_flushed.wall, f, sizeof(f)), delivered, failed, refused);
    if (bench_results_append(o->results, &res) != 0) {
        perror(o->results);
        return BENCH_EX_SETUP;
    }

    rc = BENCH_EX_OK;
    if (refused || failed || left || delivered != rs.n) {
        fprintf(stderr, "BROKEN: libcore producer: %" PRIu64 " of %" PRIu64 " delivered (%" PRIu64
                        " failed, %" PRIu64 " refused, %zu outstanding after 120 s)\n",
                delivered, rs.n, failed, refused, left);
        rc = BENCH_EX_BROKEN;
    }
    free(rs.keys);
    free(rs.vals);
    free(rs.koff);
    free(rs.voff);
    return rc;
}

/* ---- verify ------------------------------------------------------------ */

static bool read_num(FILE *f, int64_t *out)
{
    int c, neg = 0, any = 0;
    int64_t v = 0;

    c = getc(f);
    if (c == '-') {
        neg = 1;
        c = getc(f);
    }
    while (c >= '0' && c <= '9') {
        v = v * 10 + (c - '0');
        any = 1;
        c = getc(f);
    }
    if (!any || c != ' ')
        return false;
    *out = neg ? -v : v;
    return true;
}

static int cmd_verify(const char *expected, const char *label)
{
    FILE *f = fopen(expected, "r");
    uint64_t exp_n = 0, exp_kb = 0, exp_vb = 0, n = 0, kb = 0, vb = 0, null_keys = 0;
    char exp_hex[CORE_DIGEST_HEX_LEN + 2] = "", hex[CORE_DIGEST_HEX_LEN + 1];
    uint8_t *buf = NULL, *scratch = NULL;
    size_t cap = 0, scap = 0;
    core_digest_agg agg;
    bool ok;

    if (!f || fscanf(f, "count %" SCNu64 " key_bytes %" SCNu64 " value_bytes %" SCNu64
                        " digest %65s", &exp_n, &exp_kb, &exp_vb, exp_hex) != 4) {
        fprintf(stderr, "bench_produce: %s: cannot read the expected figures\n", expected);
        if (f)
            fclose(f);
        return BENCH_EX_SETUP;
    }
    fclose(f);
    core_digest_agg_init(&agg);
    for (;;) {
        int64_t kl, vl;
        int c = getc(stdin);
        core_digest d;

        if (c == EOF)
            break;
        ungetc(c, stdin);
        if (!read_num(stdin, &kl) || !read_num(stdin, &vl) || vl < 0) {
            fprintf(stderr, "BROKEN: %s: record %" PRIu64 ": kcat output not in the '%%K %%S "
                            "%%k%%s' format\n", label, n);
            free(buf);
            free(scratch);
            return BENCH_EX_BROKEN;
        }
        if (kl < 0) {
            null_keys++;
            kl = 0;
        }
        if ((size_t)(kl + vl) > cap) {
            cap = (size_t)(kl + vl) * 2;
            free(buf);
            buf = xmalloc(cap);
        }
        if (fread(buf, 1, (size_t)(kl + vl), stdin) != (size_t)(kl + vl)) {
            fprintf(stderr, "BROKEN: %s: record %" PRIu64 ": kcat output truncated\n", label, n);
            free(buf);
            free(scratch);
            return BENCH_EX_BROKEN;
        }
        pair_digest(buf, (size_t)kl, buf + kl, (size_t)vl, &scratch, &scap, &d);
        core_digest_agg_add(&agg, &d);
        n++;
        kb += (uint64_t)kl;
        vb += (uint64_t)vl;
    }
    free(buf);
    free(scratch);
    core_digest_agg_to_hex(&agg, hex);
    ok = n == exp_n && kb == exp_kb && vb == exp_vb && !null_keys && !strcmp(hex, exp_hex);
    printf("  verify %-8s %" PRIu64 " records (expected %" PRIu64 "), key bytes %" PRIu64
           ", value bytes %" PRIu64 ", digest of key/value pairs %s: %s\n",
           label, n, exp_n, kb, vb, strcmp(hex, exp_hex) ? "DIFFERS" : "same",
           ok ? "OK" : "MISMATCH");
    if (!ok) {
        fprintf(stderr, "BROKEN: %s: topic holds %" PRIu64 " records (%" PRIu64 " key bytes, %" PRIu64
                        " value bytes, %" PRIu64 " null keys), expected %" PRIu64 " (%" PRIu64
                        ", %" PRIu64 ")%s\n",
                label, n, kb, vb, null_keys, exp_n, exp_kb, exp_vb,
                strcmp(hex, exp_hex) ? "; contents differ" : "");
        return BENCH_EX_BROKEN;
    }
    return BENCH_EX_OK;
}

/* ---- main -------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_produce run --broker B --topic T --kcat-topic T2 --out DIR\n"
            "                         --key-delim KD --delim D [-n N] [--seed S]\n"
            "                         [--poll-every K] [-X prop=value]... [--results FILE]\n"
            "       bench_produce verify --expected FILE --label L   < kcat -f '%%K %%S %%k%%s'\n"
            "       bench_produce delete --broker B TOPIC...\n");
    exit(BENCH_EX_SETUP);
}

int main(int argc, char **argv)
{
    run_opts o = { .n = 500000, .seed = 1, .poll_every = 1 };
    const char *expected = NULL, *label = "topic";
    char *xcopy[MAX_X] = { 0 };
    int rc;

    if (argc < 2)
        usage();
    core_log_init("bench-produce", CORE_LOG_WARN);
    o.broker = getenv("BENCH_BROKER") ? getenv("BENCH_BROKER") : "127.0.0.1:9092";
    o.proto = getenv("TB_PROTO_DIR") ? getenv("TB_PROTO_DIR") : BENCH_PROTO_DIR;

    if (!strcmp(argv[1], "delete")) {
        int i = 2;

        if (i + 1 < argc && !strcmp(argv[i], "--broker")) {
            o.broker = argv[i + 1];
            i += 2;
        }
        if (i >= argc)
            usage();
        return cmd_delete(o.broker, argv + i, argc - i);
    }

    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!val)
            usage();
        i++;
        if (!strcmp(arg, "--broker"))
            o.broker = val;
        else if (!strcmp(arg, "--topic"))
            o.topic = val;
        else if (!strcmp(arg, "--kcat-topic"))
            o.kcat_topic = val;
        else if (!strcmp(arg, "--out"))
            o.out = val;
        else if (!strcmp(arg, "--results"))
            o.results = val;
        else if (!strcmp(arg, "--proto"))
            o.proto = val;
        else if (!strcmp(arg, "--key-delim"))
            o.kd_arg = val;
        else if (!strcmp(arg, "--delim"))
            o.d_arg = val;
        else if (!strcmp(arg, "-n")) {
            if (!(o.n = bench_parse_count(val)))
                usage();
        } else if (!strcmp(arg, "--seed"))
            o.seed = bench_parse_count(val);
        else if (!strcmp(arg, "--poll-every"))
            o.poll_every = strtoull(val, NULL, 10);
        else if (!strcmp(arg, "--expected"))
            expected = val;
        else if (!strcmp(arg, "--label"))
            label = val;
        else if (!strcmp(arg, "-X") && o.nx < MAX_X && strchr(val, '=')) {
            char *eq;

            xcopy[o.nx] = strdup(val);
            eq = strchr(xcopy[o.nx], '=');
            *eq = '\0';
            o.xprops[o.nx].name = xcopy[o.nx];
            o.xprops[o.nx].value = eq + 1;
            o.nx++;
        } else
            usage();
    }

    if (!strcmp(argv[1], "run")) {
        if (!o.topic || !o.kcat_topic || !o.out || !o.kd_arg || !o.d_arg)
            usage();
        rc = cmd_run(&o);
    } else if (!strcmp(argv[1], "verify")) {
        if (!expected)
            usage();
        rc = cmd_verify(expected, label);
    } else {
        usage();
        rc = BENCH_EX_SETUP;
    }
    for (size_t i = 0; i < o.nx; i++)
        free(xcopy[i]);
    return rc;
}
