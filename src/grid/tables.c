/* Tables: raw.csv, rq12.csv, rq3.csv, rq4.csv and discussion.csv, rebuilt
 * from the ledger alone. The column lists are a contract with analysis/
 * (documented in experiments/README.md); change them only together.
 *
 * Determinism: the output depends only on the set of latest records, never
 * on completion order or the number of ranks. Rows sort by approach (order of
 * the experiment header record, then the registry, then name), subject (header
 * order, then name) and seed; floats print as %.4f. For each (approach,
 * subject, seed) the latest fix record wins (stale configurations lose to the
 * newer run); likewise for robustness per (approach, subject).
 *
 * Aggregates: mean and sample standard deviation (n - 1) over the OK runs
 * with a value (std empty below two values). A cell's outcome is OK only if
 * every run is OK, else the most severe: FAILURE > CORRUPTED > UNADAPTABLE. */
#include "grid_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *rec;
    char *approach, *subject, *outcome;
    long seed;
    int arank, srank;
} ent;

typedef struct {
    const char *header; /* latest kind=experiment record, or NULL */
    ent *fix;
    int n_fix;
    ent *rob;
    int n_rob;
} model;

/* ---- helpers ---- */
static int list_index(const char *list, const char *name)
{
    if (!list) return -1;
    size_t nl = strlen(name);
    int i = 0;
    for (const char *p = list; p; i++) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == nl && !strncmp(p, name, len)) return i;
        p = c ? c + 1 : NULL;
    }
    return -1;
}

static int approach_rank(const char *hdr_list, const char *name)
{
    int i = list_index(hdr_list, name);
    if (i >= 0) return i;
    for (int k = 0; k < fg_fix_count(); k++)
        if (!strcmp(fg_fix_get(k)->name, name)) return 100000 + k;
    return 200000;
}

static int subject_rank(const char *hdr_list, const char *name)
{
    int i = list_index(hdr_list, name);
    return i >= 0 ? i : 200000;
}

static int cmp_ent(const void *pa, const void *pb)
{
    const ent *a = pa, *b = pb;
    if (a->arank != b->arank) return a->arank < b->arank ? -1 : 1;
    int c = strcmp(a->approach, b->approach);
    if (c) return c;
    if (a->srank != b->srank) return a->srank < b->srank ? -1 : 1;
    c = strcmp(a->subject, b->subject);
    if (c) return c;
    return (a->seed > b->seed) - (a->seed < b->seed);
}

static char *get_or_empty(const char *rec, const char *field)
{
    char *v = rec ? fg_record_get(rec, field) : NULL;
    return v ? v : fg_xstrdup("");
}

static double get_num(const char *rec, const char *field)
{
    char *v = rec ? fg_record_get(rec, field) : NULL;
    double d = NAN;
    if (v && *v) {
        char *end = NULL;
        d = strtod(v, &end);
        if (*end || !isfinite(d)) d = NAN;
    }
    free(v);
    return d;
}

static void free_model(model *m)
{
    ent *lists[2] = {m->fix, m->rob};
    int ns[2] = {m->n_fix, m->n_rob};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < ns[k]; i++) {
            free(lists[k][i].approach);
            free(lists[k][i].subject);
            free(lists[k][i].outcome);
        }
        free(lists[k]);
    }
}

/* Keep the last record of each identity: scanning backwards, skip identities seen. */
static void build(const char *const *recs, int n, model *m)
{
    memset(m, 0, sizeof *m);
    for (int i = n - 1; i >= 0 && !m->header; i--) {
        char *kind = fg_record_get(recs[i], "kind");
        if (kind && !strcmp(kind, "experiment")) m->header = recs[i];
        free(kind);
    }
    char *alist = m->header ? fg_record_get(m->header, "approaches") : NULL;
    char *slist = m->header ? fg_record_get(m->header, "subjects") : NULL;
    m->fix = fg_xcalloc((size_t)n + 1, sizeof *m->fix);
    m->rob = fg_xcalloc((size_t)n + 1, sizeof *m->rob);
    for (int i = n - 1; i >= 0; i--) {
        char *kind = fg_record_get(recs[i], "kind");
        int is_fix = kind && !strcmp(kind, "fix"), is_rob = kind && !strcmp(kind, "robustness");
        free(kind);
        if (!is_fix && !is_rob) continue;
        ent e = {.rec = recs[i]};
        e.approach = get_or_empty(recs[i], "approach");
        e.subject = get_or_empty(recs[i], "subject");
        e.outcome = get_or_empty(recs[i], "outcome");
        char *seed = fg_record_get(recs[i], "seed");
        e.seed = seed ? strtol(seed, NULL, 10) : -1;
        free(seed);
        e.arank = approach_rank(alist, e.approach);
        e.srank = subject_rank(slist, e.subject);
        ent *list = is_fix ? m->fix : m->rob;
        int *cnt = is_fix ? &m->n_fix : &m->n_rob;
        int dup = 0;
        for (int j = 0; j < *cnt && !dup; j++)
            dup = !strcmp(list[j].approach, e.approach) && !strcmp(list[j].subject, e.subject) &&
                  list[j].seed == e.seed;
        if (dup || !*e.approach || !*e.subject) {
            free(e.approach);
            free(e.subject);
            free(e.outcome);
            continue;
        }
        list[(*cnt)++] = e;
    }
    qsort(m->fix, (size_t)m->n_fix, sizeof *m->fix, cmp_ent);
    qsort(m->rob, (size_t)m->n_rob, sizeof *m->rob, cmp_ent);
    free(alist);
    free(slist);
}

static const ent *find_rob(const model *m, const char *approach, const char *subject)
{
    for (int i = 0; i < m->n_rob; i++)
        if (!strcmp(m->rob[i].approach, approach) && !strcmp(m->rob[i].subject, subject))
            return &m->rob[i];
    return NULL;
}

/* ---- CSV output ---- */
static void csv_str(fg_sbuf *b, const char *s, int first)
{
    if (!first) fg_sbuf_put(b, ",", 1);
    if (!strpbrk(s, ",\"\n\r") && s[0] != '#') {
        fg_sbuf_put(b, s, strlen(s));
        return;
    }
    fg_sbuf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fg_sbuf_put(b, "\"", 1);
        fg_sbuf_put(b, p, 1);
    }
    fg_sbuf_put(b, "\"", 1);
}

static void csv_num(fg_sbuf *b, double v)
{
    if (isfinite(v))
        fg_sbuf_printf(b, ",%.4f", v);
    else
        fg_sbuf_put(b, ",", 1);
}

static void csv_int(fg_sbuf *b, double v)
{
    if (isfinite(v))
        fg_sbuf_printf(b, ",%.0f", v);
    else
        fg_sbuf_put(b, ",", 1);
}

static void provenance(fg_sbuf *b, const model *m)
{
    char blas[160];
    fg_grid_blas_info(blas, sizeof blas);
    static const char *const keys[] = {"fixgrid_version", "commit", "blas", "config_hash",
                                       "experiment"};
    static const char *const fields[] = {"fixgrid_version", "commit", "blas", "config_hash",
                                         "name"};
    const char *fallback[] = {FG_VERSION, FG_GIT_COMMIT, blas, "unknown", "unknown"};
    for (int i = 0; i < 5; i++) {
        char *v = m->header ? fg_record_get(m->header, fields[i]) : NULL;
        fg_sbuf_printf(b, "# %s: %s\n", keys[i], v && *v ? v : fallback[i]);
        free(v);
    }
}

/* ---- raw.csv ---- */
typedef enum { SRC_FIX, SRC_ROB_SEED, SRC_ROB, SRC_KEY } col_src;
typedef enum { C_STR, C_NUM, C_INT } col_type;
typedef struct {
    const char *name;
    col_src src;
    col_type type;
} col;

static const col raw_cols[] = {
    {"approach", SRC_FIX, C_STR}, {"family", SRC_FIX, C_STR},
    {"variant", SRC_FIX, C_STR},  {"subject", SRC_FIX, C_STR},
    {"seed", SRC_FIX, C_INT},     {"outcome", SRC_FIX, C_STR},
    {"reason", SRC_FIX, C_STR},   {"acc0", SRC_FIX, C_NUM},
    {"acc", SRC_FIX, C_NUM},      {"acc_up_rel", SRC_FIX, C_NUM},
    {"rr", SRC_FIX, C_NUM},       {"nfr", SRC_FIX, C_NUM},
    {"bc", SRC_FIX, C_NUM},       {"asr0", SRC_ROB_SEED, C_NUM},
    {"asr", SRC_ROB_SEED, C_NUM}, {"asr_up_rel", SRC_ROB_SEED, C_NUM},
    {"asr_n", SRC_ROB, C_INT},    {"aaod0", SRC_FIX, C_NUM},
    {"aaod", SRC_FIX, C_NUM},     {"aaod_up_rel", SRC_FIX, C_NUM},
    {"spd", SRC_FIX, C_NUM},      {"eod", SRC_FIX, C_NUM},
    {"di", SRC_FIX, C_NUM},       {"time_s", SRC_FIX, C_NUM},
    {"evals", SRC_FIX, C_INT},    {"weights_changed", SRC_FIX, C_INT},
    {"params_added", SRC_FIX, C_INT},
    {"job_key", SRC_KEY, C_STR},
};

static void render_raw(const model *m, fg_sbuf *b)
{
    size_t nc = sizeof raw_cols / sizeof raw_cols[0];
    for (size_t c = 0; c < nc; c++)
        csv_str(b, raw_cols[c].name, c == 0);
    fg_sbuf_put(b, "\n", 1);
    for (int i = 0; i < m->n_fix; i++) {
        const ent *e = &m->fix[i];
        const ent *r = find_rob(m, e->approach, e->subject);
        for (size_t c = 0; c < nc; c++) {
            const col *k = &raw_cols[c];
            const char *rec = k->src == SRC_FIX || k->src == SRC_KEY ? e->rec : r ? r->rec : NULL;
            char field[64];
            if (k->src == SRC_ROB_SEED)
                snprintf(field, sizeof field, "%s.%ld", k->name, e->seed);
            else
                snprintf(field, sizeof field, "%s", k->src == SRC_KEY ? "key" : k->name);
            if (k->type == C_STR) {
                char *v = get_or_empty(rec, field);
                csv_str(b, v, c == 0);
                free(v);
            } else if (k->type == C_NUM) {
                csv_num(b, get_num(rec, field));
            } else {
                csv_int(b, get_num(rec, field));
            }
        }
        fg_sbuf_put(b, "\n", 1);
    }
}

/* ---- aggregates ---- */
static int severity(const char *o)
{
    if (!strcmp(o, "OK")) return 0;
    if (!strcmp(o, "UNADAPTABLE")) return 1;
    if (!strcmp(o, "CORRUPTED")) return 2;
    return 3; /* FAILURE, or anything unrecognised */
}
static const char *const severity_name[] = {"OK", "UNADAPTABLE", "CORRUPTED", "FAILURE"};

/* Sums shifted by the first value, so the variance does not cancel
 * catastrophically when the spread is tiny next to the mean (times, accuracies). */
typedef struct {
    double shift, sum, sumsq;
    int n;
} acc_t;

static void acc_add(acc_t *a, double v)
{
    if (!isfinite(v)) return;
    if (a->n == 0) a->shift = v;
    a->sum += v - a->shift;
    a->sumsq += (v - a->shift) * (v - a->shift);
    a->n++;
}

static void acc_emit(fg_sbuf *b, const acc_t *a, int with_std)
{
    csv_num(b, a->n ? a->shift + a->sum / a->n : NAN);
    if (!with_std) return;
    double var = a->n > 1 ? (a->sumsq - a->sum * a->sum / a->n) / (a->n - 1) : NAN;
    csv_num(b, a->n > 1 ? sqrt(var > 0 ? var : 0) : NAN);
}

/* A group: fix entries [lo, hi) share approach and subject. */
typedef struct {
    int lo, hi, n_ok, worst;
    const ent *rob;
    char *variant;
} group;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *group_variant(const model *m, int lo, int hi, int ok_only)
{
    char **vs = fg_xcalloc((size_t)(hi - lo) + 1, sizeof *vs);
    int n = 0;
    for (int i = lo; i < hi; i++) {
        if (ok_only && strcmp(m->fix[i].outcome, "OK")) continue;
        char *v = get_or_empty(m->fix[i].rec, "variant");
        int dup = 0;
        for (int j = 0; j < n && !dup; j++)
            dup = !strcmp(vs[j], v);
        if (dup || !*v)
            free(v);
        else
            vs[n++] = v;
    }
    qsort(vs, (size_t)n, sizeof *vs, cmp_str);
    fg_sbuf out = {0};
    fg_sbuf_put(&out, "", 0);
    for (int j = 0; j < n; j++) {
        fg_sbuf_printf(&out, "%s%s", j ? "|" : "", vs[j]);
        free(vs[j]);
    }
    free(vs);
    return out.s;
}

static int next_group(const model *m, int lo, group *g)
{
    if (lo >= m->n_fix) return 0;
    int hi = lo;
    g->n_ok = 0;
    g->worst = 0;
    while (hi < m->n_fix && !strcmp(m->fix[hi].approach, m->fix[lo].approach) &&
           !strcmp(m->fix[hi].subject, m->fix[lo].subject)) {
        int s = severity(m->fix[hi].outcome);
        if (s == 0) g->n_ok++;
        if (s > g->worst) g->worst = s;
        hi++;
    }
    g->lo = lo;
    g->hi = hi;
    g->rob = find_rob(m, m->fix[lo].approach, m->fix[lo].subject);
    g->variant = group_variant(m, lo, hi, g->n_ok > 0);
    return 1;
}

static void group_head(fg_sbuf *b, const model *m, const group *g)
{
    const ent *e = &m->fix[g->lo];
    char *family = get_or_empty(e->rec, "family");
    csv_str(b, e->approach, 1);
    csv_str(b, family, 0);
    csv_str(b, e->subject, 0);
    csv_str(b, severity_name[g->worst], 0);
    fg_sbuf_printf(b, ",%d", g->n_ok);
    free(family);
}

/* Mean/std over the OK runs of a group; a per-seed robustness field when rob_field. */
static acc_t group_acc(const model *m, const group *g, const char *field, int rob_field)
{
    acc_t a = {0};
    for (int i = g->lo; i < g->hi; i++) {
        const ent *e = &m->fix[i];
        if (strcmp(e->outcome, "OK")) continue;
        if (rob_field) {
            char f[64];
            snprintf(f, sizeof f, "%s.%ld", field, e->seed);
            acc_add(&a, g->rob ? get_num(g->rob->rec, f) : NAN);
        } else {
            acc_add(&a, get_num(e->rec, field));
        }
    }
    return a;
}

static void header_row(fg_sbuf *b, const char *const *cols, size_t n)
{
    for (size_t c = 0; c < n; c++)
        csv_str(b, cols[c], c == 0);
    fg_sbuf_put(b, "\n", 1);
}

static void render_rq12(const model *m, fg_sbuf *b)
{
    static const char *const cols[] = {
        "approach", "family",          "subject",        "outcome", "n_ok",   "n_runs", "acc_mean",
        "acc_std",  "acc_up_rel_mean", "acc_up_rel_std", "rr_mean", "rr_std", "variant"};
    header_row(b, cols, sizeof cols / sizeof cols[0]);
    group g;
    for (int lo = 0; next_group(m, lo, &g); lo = g.hi) {
        group_head(b, m, &g);
        fg_sbuf_printf(b, ",%d", g.hi - g.lo);
        static const char *const f[] = {"acc", "acc_up_rel", "rr"};
        for (int k = 0; k < 3; k++) {
            acc_t a = group_acc(m, &g, f[k], 0);
            acc_emit(b, &a, 1);
        }
        csv_str(b, g.variant, 0);
        fg_sbuf_put(b, "\n", 1);
        free(g.variant);
    }
}

static void render_rq3(const model *m, fg_sbuf *b)
{
    static const char *const cols[] = {
        "approach",         "family",          "subject",        "outcome", "n_ok",      "asr_mean",
        "asr_std",          "asr_up_rel_mean", "asr_up_rel_std", "asr_n",   "aaod_mean", "aaod_std",
        "aaod_up_rel_mean", "aaod_up_rel_std", "nfr_mean",       "nfr_std", "variant"};
    header_row(b, cols, sizeof cols / sizeof cols[0]);
    group g;
    for (int lo = 0; next_group(m, lo, &g); lo = g.hi) {
        group_head(b, m, &g);
        acc_t a = group_acc(m, &g, "asr", 1);
        acc_emit(b, &a, 1);
        a = group_acc(m, &g, "asr_up_rel", 1);
        acc_emit(b, &a, 1);
        csv_int(b, g.rob ? get_num(g.rob->rec, "asr_n") : NAN);
        static const char *const f[] = {"aaod", "aaod_up_rel", "nfr"};
        for (int k = 0; k < 3; k++) {
            a = group_acc(m, &g, f[k], 0);
            acc_emit(b, &a, 1);
        }
        csv_str(b, g.variant, 0);
        fg_sbuf_put(b, "\n", 1);
        free(g.variant);
    }
}

static void render_rq4(const model *m, fg_sbuf *b)
{
    static const char *const cols[] = {"approach", "family",      "subject",    "outcome",
                                       "n_ok",     "time_s_mean", "time_s_std", "variant"};
    header_row(b, cols, sizeof cols / sizeof cols[0]);
    group g;
    for (int lo = 0; next_group(m, lo, &g); lo = g.hi) {
        group_head(b, m, &g);
        acc_t a = group_acc(m, &g, "time_s", 0);
        acc_emit(b, &a, 1);
        csv_str(b, g.variant, 0);
        fg_sbuf_put(b, "\n", 1);
        free(g.variant);
    }
}

static const char *const ens_methods[] = {"plain",   "soft",      "hard",
                                          "perturb", "mcdropout", "temperature"};

static void render_discussion(const model *m, fg_sbuf *b)
{
    static const char *const cols[] = {"approach", "family",   "subject",   "method",  "n",
                                       "acc_mean", "asr_mean", "aaod_mean", "nfr_mean"};
    static const char *const metrics[] = {"acc", "asr", "aaod", "nfr"};
    header_row(b, cols, sizeof cols / sizeof cols[0]);
    group g;
    for (int lo = 0; next_group(m, lo, &g); lo = g.hi) {
        free(g.variant);
        if (!g.rob) continue;
        const ent *e = &m->fix[g.lo];
        char *family = get_or_empty(e->rec, "family");
        for (size_t k = 0; k < sizeof ens_methods / sizeof ens_methods[0]; k++) {
            acc_t a[4] = {{0}};
            int n = 0;
            for (int i = g.lo; i < g.hi; i++) {
                if (strcmp(m->fix[i].outcome, "OK")) continue;
                int any = 0;
                for (int t = 0; t < 4; t++) {
                    char f[96];
                    snprintf(f, sizeof f, "ens.%s.%ld.%s", ens_methods[k], m->fix[i].seed,
                             metrics[t]);
                    double v = get_num(g.rob->rec, f);
                    any |= isfinite(v);
                    acc_add(&a[t], v);
                }
                n += any;
            }
            if (!n) continue;
            csv_str(b, e->approach, 1);
            csv_str(b, family, 0);
            csv_str(b, e->subject, 0);
            csv_str(b, ens_methods[k], 0);
            fg_sbuf_printf(b, ",%d", n);
            for (int t = 0; t < 4; t++)
                acc_emit(b, &a[t], 0);
            fg_sbuf_put(b, "\n", 1);
        }
        free(family);
    }
}

#define FG_TABLE_LIST(X)                                                                           \
    X(raw, render_raw)                                                                             \
    X(rq12, render_rq12) X(rq3, render_rq3) X(rq4, render_rq4) X(discussion, render_discussion)

static const struct {
    const char *name;
    void (*render)(const model *, fg_sbuf *);
} tables[] = {
#define FG_X(n, fn) {#n, fn},
    FG_TABLE_LIST(FG_X)
#undef FG_X
};

int fg_tables_render(const char *const *records, int n, const char *table, char **csv)
{
    *csv = NULL;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        if (strcmp(tables[t].name, table)) continue;
        model m;
        build(records, n, &m);
        fg_sbuf b = {0};
        provenance(&b, &m);
        tables[t].render(&m, &b);
        free_model(&m);
        *csv = b.s;
        return FG_OK;
    }
    return fg_err(FG_ERR_ARG, "unknown table '%s' (raw, rq12, rq3, rq4, discussion)", table);
}

int fg_tables_write(const char *dir)
{
    fg_ledger *l = NULL;
    int rc = fg_ledger_read(dir, &l);
    if (rc) return rc;
    int n = fg_ledger_count(l);
    const char **recs = fg_xcalloc((size_t)n + 1, sizeof *recs);
    for (int i = 0; i < n; i++)
        recs[i] = fg_ledger_record(l, i);
    for (size_t t = 0; t < sizeof tables / sizeof tables[0] && !rc; t++) {
        char *csv = NULL;
        rc = fg_tables_render(recs, n, tables[t].name, &csv);
        if (rc) break;
        size_t pl = strlen(dir) + 32;
        char *path = fg_xmalloc(pl);
        snprintf(path, pl, "%s/%s.csv", dir, tables[t].name);
        rc = fg_file_write_atomic(path, csv, strlen(csv));
        free(path);
        free(csv);
    }
    free(recs);
    fg_ledger_close(l);
    return rc;
}
