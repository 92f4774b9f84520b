/* core_metrics.c — counters, gauges and histograms rendered in Prometheus
 * text exposition format 0.0.4.
 *
 * Locking: the registry's mutex guards the family table and every family's
 * series list (declaration, lookup, creation, clearing, rendering). Series
 * values are C11 atomics updated without any lock: a double lives in an
 * atomic uint64_t as its bit pattern; add is a compare-and-swap loop.
 * Histogram buckets are atomic counts (not cumulative); the rendered
 * `_count` is the sum of the buckets read, so `_count` always equals the
 * `+Inf` bucket of the same scrape.
 *
 * Series are never freed before the registry: core_metrics_family_clear()
 * hides them (and resets their values when they are looked up again), so a
 * pointer a caller kept stays valid memory; updates through it after a clear
 * are simply not rendered until the series is looked up again. */
#include "tributary/core_metrics.h"
#include "tributary/core_common.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 8
#define MAX_BUCKETS 64
#define PREFIX "tributary_"

const double core_metrics_default_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t core_metrics_default_nbuckets = CORE_ARRAY_SIZE(core_metrics_default_buckets);

struct core_metric {
    core_metric_family_t *fam;
    char **values;               /* fam->nlabels label values (owned) */
    uint64_t hash;
    _Atomic uint64_t value;      /* counter/gauge: bits of a double */
    _Atomic uint64_t sum;        /* histogram: bits of a double */
    _Atomic uint64_t *buckets;   /* histogram: nbuckets + 1 counts (+Inf last) */
    bool hidden;                 /* cleared; registry mutex */
    struct core_metric *next;    /* creation order; registry mutex */
};

struct core_metric_family {
    core_metrics_t *reg;
    core_metric_kind_t kind;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[MAX_LABELS];
    double *bounds;              /* histogram upper bounds, ascending, finite */
    size_t nbounds;
    core_metric_t *head, *tail;  /* registry mutex */
};

struct core_metrics {
    pthread_mutex_t lock;
    core_metric_family_t **fams; /* sorted by name; lock */
    size_t nfams, capfams;
};

/* ---- doubles in atomics --------------------------------------------------- */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    uint64_t nv;

    do {
        nv = dbits(bitsd(old) + v);
    } while (!atomic_compare_exchange_weak_explicit(a, &old, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ---- registry ------------------------------------------------------------- */

core_metrics_t *core_metrics_new(void)
{
    core_metrics_t *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void series_free(core_metric_t *s)
{
    size_t i;

    if (!s)
        return;
    if (s->values)
        for (i = 0; i < s->fam->nlabels; i++)
            free(s->values[i]);
    free(s->values);
    free((void *)s->buckets);
    free(s);
}

static void family_free(core_metric_family_t *f)
{
    core_metric_t *s, *next;
    size_t i;

    if (!f)
        return;
    for (s = f->head; s; s = next) {
        next = s->next;
        series_free(s);
    }
    for (i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
}

void core_metrics_free(core_metrics_t *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(core_metrics_t *) global_reg;

core_metrics_t *core_metrics_global(void)
{
    core_metrics_t *m = atomic_load_explicit(&global_reg, memory_order_acquire);

    if (m)
        return m;
    pthread_mutex_lock(&global_lock);
    m = atomic_load_explicit(&global_reg, memory_order_acquire);
    if (!m) {
        m = core_metrics_new();
        atomic_store_explicit(&global_reg, m, memory_order_release);
    }
    pthread_mutex_unlock(&global_lock);
    return m;
}

void core_metrics_global_free(void)
{
    core_metrics_t *m;

    pthread_mutex_lock(&global_lock);
    m = atomic_exchange_explicit(&global_reg, NULL, memory_order_acq_rel);
    pthread_mutex_unlock(&global_lock);
    core_metrics_free(m);
}

/* ---- declaration ---------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
            return false;
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s)
        return false;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    if (s[0] == '_' && s[1] == '_')
        return false; /* reserved for Prometheus itself */
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const char *kind_name(core_metric_kind_t k)
{
    switch (k) {
    case CORE_METRIC_COUNTER: return "counter";
    case CORE_METRIC_GAUGE: return "gauge";
    case CORE_METRIC_HISTOGRAM: return "histogram";
    }
    return "unknown";
}

/* Binary search; returns the index where name is or would be inserted. */
static size_t family_pos(const core_metrics_t *m, const char *name, bool *found)
{
    size_t lo = 0, hi = m->nfams;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->fams[mid]->name, name);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Longer than most (about 150 lines) for a reason: every check of a new
 * family (name, labels, buckets, a family already registered under the
 * name) comes before anything is allocated, under the registry's lock. */
core_metric_family_t *core_metrics_family(core_metrics_t *m, core_metric_kind_t kind,
                                          const char *name, const char *help,
                                          const char *const *label_names,
                                          const double *buckets, size_t nbuckets,
                                          char *errstr, size_t errstr_size)
{
    core_metric_family_t *f = NULL;
    size_t nlabels = 0, i, j, pos;
    bool found;

    if (!m) {
        core_errstr(errstr, errstr_size, "metrics: no registry");
        return NULL;
    }
    if (kind != CORE_METRIC_COUNTER && kind != CORE_METRIC_GAUGE &&
        kind != CORE_METRIC_HISTOGRAM) {
        core_errstr(errstr, errstr_size, "metrics: unknown metric kind %d", (int)kind);
        return NULL;
    }
    if (!valid_metric_name(name)) {
        core_errstr(errstr, errstr_size,
                    "metrics: invalid metric name \"%s\" (must match [a-zA-Z_:][a-zA-Z0-9_:]*)",
                    name ? name : "(null)");
        return NULL;
    }
    if (strncmp(name, PREFIX, strlen(PREFIX)) != 0 || strlen(name) == strlen(PREFIX)) {
        core_errstr(errstr, errstr_size, "metrics: metric name \"%s\" must start with \"" PREFIX "\"",
                    name);
        return NULL;
    }
    if (kind == CORE_METRIC_COUNTER && !ends_with(name, "_total")) {
        core_errstr(errstr, errstr_size, "metrics: counter name \"%s\" must end with \"_total\"",
                    name);
        return NULL;
    }
    if (label_names)
        for (; label_names[nlabels]; nlabels++) {
            if (nlabels == MAX_LABELS) {
                core_errstr(errstr, errstr_size, "metrics: %s: more than %d label names",
                            name, MAX_LABELS);
                return NULL;
            }
            if (!valid_label_name(label_names[nlabels])) {
                core_errstr(errstr, errstr_size,
                            "metrics: %s: invalid label name \"%s\" (must match "
                            "[a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\")",
                            name, label_names[nlabels]);
                return NULL;
            }
            if (kind == CORE_METRIC_HISTOGRAM && strcmp(label_names[nlabels], "le") == 0) {
                core_errstr(errstr, errstr_size,
                            "metrics: %s: label name \"le\" is reserved for histogram buckets",
                            name);
                return NULL;
            }
            for (j = 0; j < nlabels; j++)
                if (strcmp(label_names[j], label_names[nlabels]) == 0) {
                    core_errstr(errstr, errstr_size, "metrics: %s: label name \"%s\" repeated",
                                name, label_names[j]);
                    return NULL;
                }
        }
    if (kind == CORE_METRIC_HISTOGRAM) {
        if (!buckets || nbuckets == 0) {
            buckets = core_metrics_default_buckets;
            nbuckets = core_metrics_default_nbuckets;
        }
        /* A trailing +Inf is implicit; accept it when given. */
        if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0)
            nbuckets--;
        if (nbuckets > MAX_BUCKETS) {
            core_errstr(errstr, errstr_size, "metrics: %s: %zu buckets exceed the limit of %d",
                        name, nbuckets, MAX_BUCKETS);
            return NULL;
        }
        for (i = 0; i < nbuckets; i++) {
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                core_errstr(errstr, errstr_size,
                            "metrics: %s: bucket bounds must be finite and strictly ascending "
                            "(bucket %zu)", name, i);
                return NULL;
            }
        }
    } else {
        buckets = NULL;
        nbuckets = 0;
    }

    pthread_mutex_lock(&m->lock);
    pos = family_pos(m, name, &found);
    if (found) {
        f = m->fams[pos];
        bool same = f->kind == kind && f->nlabels == nlabels && f->nbounds == nbuckets;

        for (i = 0; same && i < nlabels; i++)
            same = strcmp(f->labels[i], label_names[i]) == 0;
        for (i = 0; same && i < nbuckets; i++)
            same = f->bounds[i] == buckets[i];
        pthread_mutex_unlock(&m->lock);
        if (!same) {
            core_errstr(errstr, errstr_size,
                        "metrics: %s already declared as a %s with %zu label(s)%s; "
                        "redeclaration as a %s with %zu label(s) refused",
                        name, kind_name(f->kind), f->nlabels,
                        f->kind == CORE_METRIC_HISTOGRAM ? " and its own buckets" : "",
                        kind_name(kind), nlabels);
            return NULL;
        }
        return f;
    }

    f = calloc(1, sizeof(*f));
    if (!f)
        goto nomem;
    f->reg = m;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help)
        goto nomem;
    for (i = 0; i < nlabels; i++) {
        f->labels[i] = strdup(label_names[i]);
        if (!f->labels[i])
            goto nomem;
        f->nlabels = i + 1;
    }
    if (nbuckets > 0) {
        f->bounds = malloc(nbuckets * sizeof(double));
        if (!f->bounds)
            goto nomem;
        memcpy(f->bounds, buckets, nbuckets * sizeof(double));
    }
    f->nbounds = nbuckets;
    if (m->nfams == m->capfams) {
        size_t cap = m->capfams ? m->capfams * 2 : 16;
        core_metric_family_t **nf = realloc(m->fams, cap * sizeof(*nf));

        if (!nf)
            goto nomem;
        m->fams = nf;
        m->capfams = cap;
    }
    memmove(m->fams + pos + 1, m->fams + pos, (m->nfams - pos) * sizeof(*m->fams));
    m->fams[pos] = f;
    m->nfams++;
    pthread_mutex_unlock(&m->lock);
    return f;

nomem:
    pthread_mutex_unlock(&m->lock);
    family_free(f);
    core_errstr(errstr, errstr_size, "metrics: %s: out of memory", name);
    return NULL;
}

/* ---- series --------------------------------------------------------------- */

static uint64_t hash_values(const char *const *vals, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)vals[i];

        for (; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff; /* separator: ("a","bc") differs from ("ab","c") */
        h *= 1099511628211ULL;
    }
    return h;
}

static void series_reset(core_metric_t *s)
{
    size_t i;

    atomic_store(&s->value, dbits(0.0));
    atomic_store(&s->sum, dbits(0.0));
    if (s->buckets)
        for (i = 0; i <= s->fam->nbounds; i++)
            atomic_store(&s->buckets[i], 0);
}

core_metric_t *core_metrics_series(core_metric_family_t *f, const char *const *label_values)
{
    const char *vals[MAX_LABELS];
    core_metrics_t *m;
    core_metric_t *s;
    uint64_t h;
    size_t i;
    bool ended;

    if (!f)
        return NULL;
    m = f->reg;
    /* Missing values (array shorter than the label names, or NULL) are "";
     * values past the family's label count are ignored. */
    ended = label_values == NULL;
    for (i = 0; i < f->nlabels; i++) {
        if (!ended && !label_values[i])
            ended = true;
        vals[i] = ended ? "" : label_values[i];
    }
    h = hash_values(vals, f->nlabels);

    pthread_mutex_lock(&m->lock);
    for (s = f->head; s; s = s->next) {
        if (s->hash != h)
            continue;
        for (i = 0; i < f->nlabels; i++)
            if (strcmp(s->values[i], vals[i]) != 0)
                break;
        if (i == f->nlabels) {
            if (s->hidden) {
                series_reset(s);
                s->hidden = false;
            }
            pthread_mutex_unlock(&m->lock);
            return s;
        }
    }

    s = calloc(1, sizeof(*s));
    if (!s)
        goto nomem;
    s->fam = f;
    s->hash = h;
    if (f->nlabels > 0) {
        s->values = calloc(f->nlabels, sizeof(char *));
        if (!s->values)
            goto nomem;
        for (i = 0; i < f->nlabels; i++) {
            s->values[i] = strdup(vals[i]);
            if (!s->values[i])
                goto nomem;
        }
    }
    if (f->kind == CORE_METRIC_HISTOGRAM) {
        s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
        if (!s->buckets)
            goto nomem;
    }
    series_reset(s);
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    pthread_mutex_unlock(&m->lock);
    return s;

nomem:
    pthread_mutex_unlock(&m->lock);
    series_free(s);
    return NULL;
}

core_metric_t *core_metrics_series1(core_metric_family_t *f, const char *v1)
{
    const char *v[2] = { v1, NULL };

    return core_metrics_series(f, v);
}

core_metric_t *core_metrics_series2(core_metric_family_t *f, const char *v1, const char *v2)
{
    const char *v[3] = { v1, v2, NULL };

    if (!v1)
        v[0] = ""; /* keep v2 reachable */
    return core_metrics_series(f, v);
}

void core_metrics_family_clear(core_metric_family_t *f)
{
    core_metric_t *s;

    if (!f)
        return;
    pthread_mutex_lock(&f->reg->lock);
    for (s = f->head; s; s = s->next)
        s->hidden = true;
    pthread_mutex_unlock(&f->reg->lock);
}

/* ---- updates (lock-free) -------------------------------------------------- */

void core_metric_inc(core_metric_t *s)
{
    core_metric_add(s, 1.0);
}

void core_metric_add(core_metric_t *s, double v)
{
    if (!s || isnan(v))
        return;
    switch (s->fam->kind) {
    case CORE_METRIC_COUNTER:
        if (v < 0)
            return; /* a counter never goes down */
        atomic_add_double(&s->value, v);
        break;
    case CORE_METRIC_GAUGE:
        atomic_add_double(&s->value, v);
        break;
    case CORE_METRIC_HISTOGRAM:
        break;
    }
}

void core_metric_set(core_metric_t *s, double v)
{
    if (!s || s->fam->kind != CORE_METRIC_GAUGE)
        return;
    atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void core_metric_observe(core_metric_t *s, double v)
{
    const core_metric_family_t *f;
    size_t lo, hi;

    if (!s || s->fam->kind != CORE_METRIC_HISTOGRAM || isnan(v))
        return;
    f = s->fam;
    /* first bound >= v; nbounds means +Inf */
    lo = 0;
    hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_add_double(&s->sum, v);
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
}

static uint64_t hist_count(const core_metric_t *s)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i <= s->fam->nbounds; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return n;
}

double core_metric_value(const core_metric_t *s)
{
    if (!s)
        return 0.0;
    if (s->fam->kind == CORE_METRIC_HISTOGRAM)
        return (double)hist_count(s);
    return bitsd(atomic_load_explicit(&s->value, memory_order_relaxed));
}

double core_metric_sum(const core_metric_t *s)
{
    if (!s || s->fam->kind != CORE_METRIC_HISTOGRAM)
        return 0.0;
    return bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed));
}

/* ---- rendering ------------------------------------------------------------ */

/* Escape for label values (quote too) or HELP text (no quote). */
static void buf_escaped(core_strbuf *b, const char *s, bool quote)
{
    const char *start = s;

    for (; *s; s++) {
        const char *rep = NULL;

        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quote)
            rep = "\\\"";
        if (rep) {
            core_strbuf_addn(b, start, (size_t)(s - start));
            core_strbuf_add(b, rep);
            start = s + 1;
        }
    }
    core_strbuf_addn(b, start, (size_t)(s - start));
}

/* Shortest text that reads back as the same double (as the Prometheus
 * clients write), in plain notation for exponents -5..20 so counters read
 * as integers ("1234567", not "1.234567e+06"), scientific otherwise. */
static void fmt_double(char *out, size_t size, double v)
{
    int prec, exp10;
    char *e;

    if (isnan(v)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(out, size, "%.*e", prec - 1, v);
        if (strtod(out, NULL) == v)
            break;
    }
    snprintf(out, size, "%.*e", prec - 1, v);
    e = strchr(out, 'e');
    exp10 = e ? atoi(e + 1) : 0;
    if (exp10 >= -5 && exp10 < 21)
        snprintf(out, size, "%.*f", prec - 1 - exp10 > 0 ? prec - 1 - exp10 : 0, v);
}

static void buf_labels(core_strbuf *b, const core_metric_family_t *f, const core_metric_t *s,
                       const char *le)
{
    size_t i;

    if (f->nlabels == 0 && !le)
        return;
    core_strbuf_add(b, "{");
    for (i = 0; i < f->nlabels; i++) {
        if (i > 0)
            core_strbuf_add(b, ",");
        core_strbuf_add(b, f->labels[i]);
        core_strbuf_add(b, "=\"");
        buf_escaped(b, s->values[i], true);
        core_strbuf_add(b, "\"");
    }
    if (le) {
        if (f->nlabels > 0)
            core_strbuf_add(b, ",");
        core_strbuf_add(b, "le=\"");
        core_strbuf_add(b, le);
        core_strbuf_add(b, "\"");
    }
    core_strbuf_add(b, "}");
}

static void buf_sample(core_strbuf *b, const core_metric_family_t *f, const core_metric_t *s,
                       const char *suffix, const char *le, const char *value)
{
    core_strbuf_add(b, f->name);
    if (suffix)
        core_strbuf_add(b, suffix);
    buf_labels(b, f, s, le);
    core_strbuf_add(b, " ");
    core_strbuf_add(b, value);
    core_strbuf_add(b, "\n");
}

static void render_family(core_strbuf *b, const core_metric_family_t *f)
{
    const core_metric_t *s;
    char num[64], le[64];
    size_t i;

    /* A declared family is shown (HELP and TYPE) even before its first
     * series or after core_metrics_family_clear(): a scrape, a dashboard
     * and tests/integration/metrics_names.sh see every metric the service
     * has, also the error counters that no error has touched yet. */
    core_strbuf_add(b, "# HELP ");
    core_strbuf_add(b, f->name);
    core_strbuf_add(b, " ");
    buf_escaped(b, f->help, false);
    core_strbuf_add(b, "\n# TYPE ");
    core_strbuf_add(b, f->name);
    core_strbuf_add(b, " ");
    core_strbuf_add(b, kind_name(f->kind));
    core_strbuf_add(b, "\n");
    for (s = f->head; s; s = s->next) {
        if (s->hidden)
            continue;
        if (f->kind != CORE_METRIC_HISTOGRAM) {
            fmt_double(num, sizeof(num), bitsd(atomic_load_explicit(&s->value,
                                                                     memory_order_relaxed)));
            buf_sample(b, f, s, NULL, NULL, num);
            continue;
        }
        uint64_t cum = 0;

        for (i = 0; i <= f->nbounds; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            if (i < f->nbounds)
                fmt_double(le, sizeof(le), f->bounds[i]);
            else
                snprintf(le, sizeof(le), "+Inf");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
            buf_sample(b, f, s, "_bucket", le, num);
        }
        fmt_double(num, sizeof(num), bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)));
        buf_sample(b, f, s, "_sum", NULL, num);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
        buf_sample(b, f, s, "_count", NULL, num);
    }
}

char *core_metrics_render(core_metrics_t *m, size_t *lenp)
{
    core_strbuf b = { 0 };
    size_t i;

    if (lenp)
        *lenp = 0;
    if (!m)
        return NULL;
    core_strbuf_addn(&b, "", 0); /* an empty registry renders "" */
    if (b.failed)
        return NULL;
    pthread_mutex_lock(&m->lock);
    for (i = 0; i < m->nfams; i++)
        render_family(&b, m->fams[i]);
    pthread_mutex_unlock(&m->lock);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (lenp)
        *lenp = b.len;
    return b.p;
}
