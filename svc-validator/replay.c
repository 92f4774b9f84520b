/* replay.c — re-publish chosen DLQ records to the raw topic. */
#include "replay.h"

#include "tributary/core_avro.h"
#include "tributary/core_dlq.h"
#include "tributary/core_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int replay_parse_since(const char *text, int64_t *msp)
{
    char *end;
    long long x;

    if (!text || !*text)
        return -1;
    x = strtoll(text, &end, 10);
    if (*end == '\0' && x >= 0) {
        *msp = (int64_t)x;
        return 0;
    }
    return core_avro_time_parse(text, msp, NULL, 0) == CORE_OK ? 0 : -1;
}

static bool header_is(const rd_kafka_message_t *rkm, const char *name, const char *want,
                      bool substring)
{
    rd_kafka_headers_t *h = NULL;
    const void *val;
    size_t len;
    char buf[1024];

    if (rd_kafka_message_headers(rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
        return false;
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return substring ? strstr(buf, want) != NULL : strcmp(buf, want) == 0;
}

static void dr(void *opaque, const rd_kafka_message_t *rkm, void *user)
{
    (void)opaque;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        (*(size_t *)user)++;
}

static int partitions_of(rd_kafka_t *rk, const char *topic, int *np, char *errstr,
                         size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    char e[512];

    if (core_kafka_topic_metadata(rk, topic, 10000, &md, e, sizeof(e)) != CORE_OK) {
        core_errstr(errstr, errstr_size, "replay: %s", e);
        return -1;
    }
    *np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* Where a DLQ record stands, and its tb.id ("" when it has none). */
typedef struct dlq_pos {
    int32_t partition;
    int64_t offset;
    char id[64];
} dlq_pos;

/* What the first pass over the DLQ learns: the newest copy of each
 * record id, and the copies a later one names as replayed (tb.replay.of). */
typedef struct dlq_index {
    int64_t *end; /* per partition: past the last offset the first pass read */
    int np;
    dlq_pos *newest;
    size_t n, cap;
    dlq_pos *replayed;
    size_t nr, capr;
} dlq_index;

static int pos_push(dlq_pos **v, size_t *n, size_t *cap, const dlq_pos *x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        dlq_pos *nv = realloc(*v, nc * sizeof(*nv));

        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *x;
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const dlq_pos *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c)
        return c;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int by_pos(const void *a, const void *b)
{
    const dlq_pos *x = a, *y = b;

    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* tb.id of m into id (bounded); "" when it has none or a longer one. */
static void id_of(const rd_kafka_message_t *rkm, char *id, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *val;
    size_t len;

    id[0] = '\0';
    if (rd_kafka_message_headers((rd_kafka_message_t *)rkm, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, CORE_HDR_ID, &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        val && len > 0 && len < size) {
        memcpy(id, val, len);
        id[len] = '\0';
    }
}

/* tb.replay.of of m, when it names a record of topic: its position. */
static bool replay_of(const rd_kafka_message_t *rkm, const char *topic, dlq_pos *out)
{
    rd_kafka_headers_t *h = NULL;
    const void *val;
    size_t len, tl = strlen(topic);
    char buf[320], *end;
    long long part, off;

    if (rd_kafka_message_headers((rd_kafka_message_t *)rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, CORE_HDR_REPLAY_OF, &val, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || len >= sizeof(buf) || len <= tl + 1)
        return false;
    memcpy(buf, val, len);
    buf[len] = '\0';
    if (strncmp(buf, topic, tl) != 0 || buf[tl] != '/')
        return false;
    part = strtoll(buf + tl + 1, &end, 10);
    if (*end != '/' || part < 0 || part > INT32_MAX)
        return false;
    off = strtoll(end + 1, &end, 10);
    if (*end != '\0' || off < 0)
        return false;
    memset(out, 0, sizeof(*out));
    out->partition = (int32_t)part;
    out->offset = off;
    return true;
}

/* Reads the DLQ from its beginning to its end now, calling fn for every
 * record; fn returns 0 to go on, -1 to stop (errstr set). */
typedef int (*dlq_fn)(const rd_kafka_message_t *rkm, void *user, char *errstr,
                      size_t errstr_size);

static int dlq_read(core_kafka_consumer_t *c, const char *topic, int np, int64_t deadline,
                    dlq_fn fn, void *user, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    int eofs = 0, rc = -1;

    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (core_kafka_consumer_assign(c, parts, errstr, errstr_size) != CORE_OK)
        goto out;
    while (eofs < np) {
        rd_kafka_message_t *rkm;
        int r = 0;

        if (core_mono_ms() > deadline) {
            core_errstr(errstr, errstr_size, "replay: %s not read to its end in time", topic);
            goto out;
        }
        rkm = core_kafka_consumer_poll(c, 200);
        if (!rkm)
            continue;
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eofs++;
        else if (!rkm->err)
            r = fn(rkm, user, errstr, errstr_size);
        rd_kafka_message_destroy(rkm);
        if (r || core_kafka_consumer_fatal(c, errstr, errstr_size))
            goto out;
    }
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

typedef struct replay_pass {
    const replay_params *p;
    replay_result *res;
    dlq_index ix;
    core_kafka_producer_t *prod;
} replay_pass;

static int index_one(const rd_kafka_message_t *rkm, void *user, char *errstr,
                     size_t errstr_size)
{
    replay_pass *rp = user;
    dlq_pos x = { .partition = rkm->partition, .offset = rkm->offset }, of;

    if (rkm->partition >= 0 && rkm->partition < rp->ix.np &&
        rkm->offset + 1 > rp->ix.end[rkm->partition])
        rp->ix.end[rkm->partition] = rkm->offset + 1;
    id_of(rkm, x.id, sizeof(x.id));
    if ((x.id[0] && pos_push(&rp->ix.newest, &rp->ix.n, &rp->ix.cap, &x)) ||
        (replay_of(rkm, rp->p->dlq_topic, &of) &&
         pos_push(&rp->ix.replayed, &rp->ix.nr, &rp->ix.capr, &of))) {
        core_errstr(errstr, errstr_size, "replay: out of memory");
        return -1;
    }
    return 0;
}

/* After the first pass: newest[] holds one entry per id, its newest
 * copy; replayed[] is sorted by position. */
static void index_settle(dlq_index *ix)
{
    size_t w = 0;

    qsort(ix->newest, ix->n, sizeof(*ix->newest), by_id);
    for (size_t i = 0; i < ix->n; i++) {
        if (w > 0 && !strcmp(ix->newest[w - 1].id, ix->newest[i].id))
            w--; /* a later copy of the same id takes its place */
        ix->newest[w++] = ix->newest[i];
    }
    ix->n = w;
    qsort(ix->replayed, ix->nr, sizeof(*ix->replayed), by_pos);
}

/* A copy an operator already replayed, or not the newest of its id: its
 * record's fate is told by a later DLQ record (or it left the DLQ). */
static bool superseded(const dlq_index *ix, const rd_kafka_message_t *rkm)
{
    dlq_pos x = { .partition = rkm->partition, .offset = rkm->offset };
    const dlq_pos *hit;

    if (bsearch(&x, ix->replayed, ix->nr, sizeof(x), by_pos))
        return true;
    id_of(rkm, x.id, sizeof(x.id));
    if (!x.id[0])
        return false;
    hit = NULL;
    for (size_t lo = 0, hi = ix->n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->newest[mid].id, x.id);

        if (c == 0) {
            hit = &ix->newest[mid];
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return hit && hit->partition == rkm->partition && hit->offset > rkm->offset;
}

static int replay_one(const rd_kafka_message_t *rkm, void *user, char *errstr,
                      size_t errstr_size)
{
    replay_pass *rp = user;
    const replay_params *p = rp->p;
    rd_kafka_headers_t *hs;
    char of[300];

    /* came in after the first pass: the next replay judges it */
    if (rkm->partition < 0 || rkm->partition >= rp->ix.np ||
        rkm->offset >= rp->ix.end[rkm->partition])
        return 0;
    rp->res->scanned++;
    if (superseded(&rp->ix, rkm)) {
        rp->res->superseded++;
        return 0;
    }
    if ((p->error_class && !header_is(rkm, CORE_HDR_ERROR_CLASS, p->error_class, false)) ||
        (p->reason && !header_is(rkm, "__connect.errors.exception.message", p->reason, true)) ||
        (p->since_ms > 0 && rd_kafka_message_timestamp(rkm, NULL) < p->since_ms))
        return 0;
    rp->res->matched++;
    if (!rp->prod)
        return 0;
    /* the kept headers as they were; the error headers go */
    if (!(hs = core_dlq_headers_kept(rkm, 1))) {
        core_errstr(errstr, errstr_size, "replay: out of memory");
        return -1;
    }
    snprintf(of, sizeof(of), "%s/%" PRId32 "/%" PRId64, p->dlq_topic, rkm->partition,
             rkm->offset);
    rd_kafka_header_remove(hs, CORE_HDR_REPLAY_OF);
    core_dlq_add_str(hs, CORE_HDR_REPLAY_OF, of);
    return core_kafka_produce_hdrs(rp->prod, p->raw_topic, rkm->key, rkm->key_len, rkm->payload,
                                   rkm->len, hs, NULL, errstr, errstr_size) == CORE_OK
               ? 0
               : -1;
}

int replay_run(const replay_params *p, replay_result *res, char *errstr, size_t errstr_size)
{
    static const core_kafka_prop consumer_over[] = {
        { "enable.partition.eof", "true" },
        { "isolation.level", "read_committed" },
    };
    core_kafka_consumer_opts co = { 0 };
    core_kafka_producer_opts po = { 0 };
    core_kafka_consumer_t *c = NULL;
    replay_pass rp = { .p = p, .res = res };
    size_t delivered = 0;
    int np = 0, rc = -1;
    int64_t deadline = core_mono_ms() + (p->timeout_ms > 0 ? p->timeout_ms : 120000);
    char group[128];

    memset(res, 0, sizeof(*res));
    snprintf(group, sizeof(group), "tributary-validator-replay-%d", (int)getpid());
    co.cfg = p->cfg;
    co.defaults = p->kafka_defaults;
    co.ndefaults = p->nkafka_defaults;
    co.overrides = consumer_over;
    co.noverrides = CORE_ARRAY_SIZE(consumer_over);
    co.group_id = group;
    c = core_kafka_consumer_new(&co, errstr, errstr_size);
    if (!c)
        goto out;
    if (!p->dry_run) {
        po.cfg = p->cfg;
        po.defaults = p->kafka_defaults;
        po.ndefaults = p->nkafka_defaults;
        po.dr_cb = dr;
        po.dr_user = &delivered;
        rp.prod = core_kafka_producer_new(&po, errstr, errstr_size);
        if (!rp.prod)
            goto out;
    }
    if (partitions_of(core_kafka_consumer_handle(c), p->dlq_topic, &np, errstr, errstr_size))
        goto out;
    if (!(rp.ix.end = calloc(np > 0 ? (size_t)np : 1, sizeof(*rp.ix.end)))) {
        core_errstr(errstr, errstr_size, "replay: out of memory");
        goto out;
    }
    rp.ix.np = np;
    /* two passes: which copies are superseded, then the replay of what the
     * first pass read (records that came in between wait for the next) */
    if (dlq_read(c, p->dlq_topic, np, deadline, index_one, &rp, errstr, errstr_size))
        goto out;
    index_settle(&rp.ix);
    if (dlq_read(c, p->dlq_topic, np, deadline, replay_one, &rp, errstr, errstr_size))
        goto out;
    if (rp.prod) {
        int64_t left = deadline - core_mono_ms();

        if (core_kafka_producer_flush(rp.prod, (int)(left > 1000 ? left : 1000)) > 0 ||
            delivered != res->matched) {
            res->published = delivered;
            core_errstr(errstr, errstr_size, "replay: %zu of %zu records delivered to %s",
                        delivered, res->matched, p->raw_topic);
            goto out;
        }
    }
    res->published = delivered;
    rc = 0;
out:
    if (rp.prod) {
        core_kafka_producer_flush(rp.prod, 10000);
        res->published = delivered;
    }
    free(rp.ix.end);
    free(rp.ix.newest);
    free(rp.ix.replayed);
    core_kafka_producer_free(rp.prod);
    core_kafka_consumer_free(c);
    return rc;
}
