/* fixgrid eval: score fixed models against their original on a subject's
 * split, with every metric of the study (ACC, ⇑ACC, RR, NFR, AAOD, ⇑AAOD and,
 * with --asr, ASR and ⇑ASR on the study's pool) plus BC, SPD, EOD, DI and the
 * outcome. With --ensembles it also scores the five post-processing ensembles
 * of the original with each fixed model (temperatures fitted on the
 * validation split). Model files are safetensors; a file without the
 * fixgrid.arch metadata is read with the subject's zoo architecture. */
#include "fixgrid/cli.h"
#include "fixgrid/eval.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/subject.h"
#include "fixgrid/zoo.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIXED 32

typedef struct {
    const char *subject, *original, *fixed[MAX_FIXED], *predictions, *split;
    int n_fixed, csv, ensembles;
    fg_eval_opts o;
    float eps; /* < 0: the subject's */
} eval_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fixgrid eval --subject S --original F0 --fixed F1 [--fixed F2 ...]\n"
            "                    [--split test|valid|repair|train] [--csv] [--predictions FILE]\n"
            "                    [--asr] [--eps E] [--pool 500] [--seed 1] [--ensembles]\n"
            "                    [--batch 256]\n"
            "\n"
            "Scores each fixed model against the original on the subject's split (test).\n"
            "  --csv          one CSV line per model instead of a table\n"
            "  --predictions  write index,label,group and each model's prediction as CSV\n"
            "  --asr          PGD attack success rate on the study's pool: test inputs\n"
            "                 that every model classifies correctly, up to --pool drawn\n"
            "                 with --seed; epsilon from the subject unless --eps\n"
            "  --ensembles    also score the ensembles sv, hv, up, ud, us of the original\n"
            "                 with each fixed model that is not CORRUPTED (temperatures\n"
            "                 fitted on the valid split; ASR by PGD against the soft vote)\n");
}

static int bad(const char *flag, const char *what, const char *val)
{
    fprintf(stderr, "fixgrid eval: %s expects %s, got '%s' (see fixgrid eval --help)\n", flag, what,
            val);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* 0, 2 for bad usage, -1 for --help. */
static int parse_args(int argc, char **argv, eval_args *a)
{
    memset(a, 0, sizeof *a);
    fg_eval_opts_default(&a->o);
    a->split = "test";
    a->eps = -1.0f;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return -1;
        if (!strcmp(f, "--csv")) {
            a->csv = 1;
            continue;
        }
        if (!strcmp(f, "--asr")) {
            a->o.asr = 1;
            continue;
        }
        if (!strcmp(f, "--ensembles")) {
            a->ensembles = 1;
            continue;
        }
        if (strncmp(f, "--", 2)) {
            fprintf(stderr, "fixgrid eval: unexpected argument '%s' (see fixgrid eval --help)\n",
                    f);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fixgrid eval: %s needs a value (see fixgrid eval --help)\n", f);
            return 2;
        }
        const char *v = argv[++i];
        long n;
        if (!strcmp(f, "--subject")) {
            a->subject = v;
        } else if (!strcmp(f, "--original")) {
            a->original = v;
        } else if (!strcmp(f, "--fixed")) {
            if (a->n_fixed == MAX_FIXED) return bad(f, "at most 32 files", v);
            a->fixed[a->n_fixed++] = v;
        } else if (!strcmp(f, "--predictions")) {
            a->predictions = v;
        } else if (!strcmp(f, "--split")) {
            a->split = v;
        } else if (!strcmp(f, "--pool")) {
            if (parse_long(v, 1, INT_MAX, &n)) return bad(f, "a positive integer", v);
            a->o.pool = (int)n;
        } else if (!strcmp(f, "--batch")) {
            if (parse_long(v, 1, 1 << 16, &n)) return bad(f, "a positive integer", v);
            a->o.batch = (int)n;
        } else if (!strcmp(f, "--seed")) {
            if (parse_long(v, 0, LONG_MAX, &n)) return bad(f, "a non-negative integer", v);
            a->o.seed = (uint64_t)n;
        } else if (!strcmp(f, "--eps")) {
            char *end;
            errno = 0;
            a->eps = strtof(v, &end);
            if (errno || end == v || *end || !isfinite(a->eps) || a->eps < 0.0f)
                return bad(f, "a number >= 0", v);
        } else {
            fprintf(stderr, "fixgrid eval: unknown flag '%s' (see fixgrid eval --help)\n", f);
            return 2;
        }
    }
    if (!a->subject || !a->original || a->n_fixed == 0) {
        fprintf(stderr, "fixgrid eval: --subject, --original and at least one --fixed are "
                        "required (see fixgrid eval --help)\n");
        return 2;
    }
    return 0;
}

int fg_cmd_load_model(const char *path, const fg_subject *s, fg_model **m)
{
    char *arch = NULL;
    const char *desc = NULL;
    if (fg_safetensors_meta(path, FG_ST_META_ARCH, &arch) == FG_ERR_NOTFOUND) {
        if (!s)
            return fg_err(FG_ERR_NOTFOUND, "%s: no %s metadata: pass --subject for its "
                                           "architecture (or write the file with fixgrid import)",
                          path, FG_ST_META_ARCH);
        desc = fg_zoo_find(s->arch);
        if (!desc)
            return fg_err(FG_ERR_NOTFOUND, "%s: no %s metadata and subject arch '%s' is unknown",
                          path, FG_ST_META_ARCH, s->arch);
    }
    free(arch);
    return fg_safetensors_load(path, desc, m);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Column and row names of the models: each file's base name, or the path
 * as given where base names repeat (run1/model.safetensors and
 * run2/model.safetensors), with "#N" (the model's position) added where even
 * the paths repeat, so no two columns of --predictions share a name. */
static void unique_names(const char *const *paths, int n, char (*out)[512])
{
    for (int j = 0; j < n; j++) {
        int clash = 0;
        for (int k = 0; k < n && !clash; k++)
            clash = k != j && !strcmp(base_name(paths[k]), base_name(paths[j]));
        snprintf(out[j], sizeof out[j], "%s", clash ? paths[j] : base_name(paths[j]));
    }
    for (int j = 0; j < n; j++) {
        int clash = 0;
        for (int k = 0; k < n && !clash; k++)
            clash = k != j && !strcmp(paths[k], paths[j]);
        if (clash) {
            size_t l = strlen(out[j]);
            if (l > sizeof out[j] - 8) l = sizeof out[j] - 8;
            snprintf(out[j] + l, sizeof out[j] - l, "#%d", j);
        }
    }
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_table_header(void)
{
    printf("%-28s %-11s %7s %8s %7s %6s %7s %7s %8s %7s %8s\n", "model", "outcome", "ACC", "⇑ACC",
           "RR", "NFR", "BC", "AAOD", "⇑AAOD", "ASR", "⇑ASR");
}

static void print_table_row(const char *name, const fg_eval_row *r)
{
    printf("%-28.28s %-11s %7.2f %8.2f %7.2f %6.2f %7.2f", name, fg_outcome_name(r->outcome),
           r->cmp.acc1, r->cmp.up_acc, r->cmp.rr, r->cmp.nfr, r->cmp.bc);
    if (r->has_aaod)
        printf(" %7.4f %8.2f", r->aaod, r->up_aaod);
    else
        printf(" %7s %8s", "-", "-");
    if (r->has_asr)
        printf(" %7.2f %8.2f", r->asr, r->up_asr);
    else
        printf(" %7s %8s", "-", "-");
    if (r->why[0]) printf("  (%s)", r->why);
    putchar('\n');
}

static void emit(const eval_args *a, const char *name, const fg_eval_row *r, int n_pool)
{
    if (a->csv)
        fg_eval_csv_row(stdout, name, r, n_pool);
    else
        print_table_row(name, r);
}

static int write_predictions(const char *path, const fg_dataset *t, int *const *preds, int n_models,
                             const char *const *names)
{
    FILE *f = fopen(path, "w");
    if (!f) return fg_err(FG_ERR_IO, "%s: %s", path, strerror(errno));
    fprintf(f, "index,label,group");
    for (int j = 0; j < n_models; j++) {
        fputc(',', f);
        csv_field(f, names[j]);
    }
    fputc('\n', f);
    for (int i = 0; i < t->n; i++) {
        fprintf(f, "%d,%d,", i, t->y[i]);
        if (t->group) fprintf(f, "%d", t->group[i]);
        for (int j = 0; j < n_models; j++)
            fprintf(f, ",%d", preds[j][i]);
        fputc('\n', f);
    }
    if (fclose(f)) return fg_err(FG_ERR_IO, "%s: %s", path, strerror(errno));
    return FG_OK;
}

/* Rows for the ensembles of f0 with f: ACC/RR/NFR against f0, AAOD, and
 * with --asr the ASR on the pool of fg_eval_models (so ⇑ASR compares with
 * f0's ASR on the same inputs): one PGD run against the soft vote of f0 and
 * f, then each ensemble's rule on its output. */
static int eval_ensembles(const eval_args *a, fg_model *f0, fg_model *f, const char *fname,
                          const fg_dataset *valid, const fg_dataset *t, const int *p0,
                          const fg_eval_row *row0, const int *pool, const fg_eval_robust *rb)
{
    int status = FG_OK, n = t->n, n_pool = row0->has_asr ? rb->n_pool : 0;
    fg_ens_cfg ec;
    fg_ens_defaults(&ec);
    ec.batch = a->o.batch;
    if ((status = fg_ens_fit(f0, f, valid->x, valid->y, valid->n, &ec))) return status;
    size_t d = fg_dataset_dim(t);
    int *pred = fg_xmalloc(((size_t)n + 1) * sizeof *pred);
    int *yp = fg_xmalloc(((size_t)n_pool + 1) * sizeof *yp);
    float *xp = fg_xfloats((size_t)n_pool * d + 1), *adv = fg_xfloats((size_t)n_pool * d + 1);
    fg_rng rng;
    fg_rng_seed_key(&rng, a->o.seed, "ensembles");
    if (n_pool > 0) {
        for (int i = 0; i < n_pool; i++) {
            memcpy(xp + (size_t)i * d, t->x + (size_t)pool[i] * d, d * sizeof *xp);
            yp[i] = t->y[pool[i]];
        }
        fg_pgd_cfg pgd;
        fg_pgd_defaults(&pgd, a->o.eps);
        pgd.batch = a->o.batch;
        pgd.lo = rb->lo;
        pgd.hi = rb->hi;
        fg_model *ms[2] = {f0, f};
        if ((status = fg_pgd_attack(ms, 2, &pgd, xp, yp, n_pool, &rng, adv))) goto cleanup;
    }
    for (int k = 0; k < FG_ENS_COUNT; k++) {
        fg_eval_row r;
        memset(&r, 0, sizeof r);
        if ((status = fg_ens_predict((fg_ens_kind)k, f0, f, &ec, t->x, n, &rng, NULL, pred)))
            goto cleanup;
        fg_eval_compare(p0, pred, t->y, n, &r.cmp);
        r.outcome = FG_OUTCOME_OK;
        if (t->group && t->n_groups == 2) {
            if ((status = fg_eval_aaod(pred, t->y, t->group, n, t->n_classes, 0, 1, &r.aaod)))
                goto cleanup;
            r.has_aaod = 1;
            r.up_aaod = fg_eval_up_aaod(row0->aaod, r.aaod);
        }
        if (n_pool > 0) {
            if ((status =
                     fg_ens_predict((fg_ens_kind)k, f0, f, &ec, adv, n_pool, &rng, NULL, pred)))
                goto cleanup;
            r.has_asr = 1;
            r.asr = fg_eval_success_rate(pred, yp, n_pool);
            r.up_asr = fg_eval_up_asr(row0->asr, r.asr);
        }
        char name[256];
        snprintf(name, sizeof name, "%s+%s", fname, fg_ens_name((fg_ens_kind)k));
        emit(a, name, &r, n_pool);
    }
    if (!a->csv) printf("  (%s temperatures: original %.3f, fixed %.3f)\n", fname, ec.t0, ec.t1);
cleanup:
    free(pred);
    free(yp);
    free(xp);
    free(adv);
    return status;
}

int fg_cmd_eval(int argc, char **argv)
{
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    fg_split_kind split = FG_SPLIT_COUNT;
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        if (!strcmp(a.split, fg_split_name((fg_split_kind)k))) split = (fg_split_kind)k;
    if (split == FG_SPLIT_COUNT) return bad("--split", "test, valid, repair or train", a.split);

    fg_subject s;
    fg_dataset sp[FG_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    fg_model *f0 = NULL, *fixed[MAX_FIXED] = {0};
    fg_eval_row rows[MAX_FIXED + 1];
    int *preds[MAX_FIXED + 1] = {0}, *pool = NULL;
    const char *names[MAX_FIXED + 1];
    char name_buf[MAX_FIXED + 1][512];
    int status;
    rc = 2;
    if ((status = fg_subject_load(a.subject, &s)) || (status = fg_subject_data(&s, sp))) goto fail;
    if ((status = fg_cmd_load_model(a.original, &s, &f0))) goto fail;
    const char *paths[MAX_FIXED + 1];
    paths[0] = a.original;
    for (int i = 0; i < a.n_fixed; i++) {
        if ((status = fg_cmd_load_model(a.fixed[i], &s, &fixed[i]))) goto fail;
        paths[i + 1] = a.fixed[i];
    }
    unique_names(paths, a.n_fixed + 1, name_buf);
    for (int j = 0; j <= a.n_fixed; j++)
        names[j] = name_buf[j];
    const fg_dataset *t = &sp[split];
    /* each model against the subject's data, naming both files (the library
     * check below knows neither) */
    for (int j = 0; j <= a.n_fixed; j++) {
        fg_model *m = j ? fixed[j - 1] : f0;
        fg_shape in = fg_model_input_shape(m);
        int k = fg_model_n_classes(m);
        if (in.c != t->c || in.h != t->h || in.w != t->w || k != t->n_classes) {
            status = fg_err(FG_ERR_SHAPE,
                            "%s: the model takes %dx%dx%d inputs into %d classes, but subject %s "
                            "(%s) gives %dx%dx%d samples in %d classes",
                            paths[j], in.c, in.h, in.w, k, s.name, s.source, t->c, t->h, t->w,
                            t->n_classes);
            goto fail;
        }
    }
    float eps = a.eps >= 0.0f ? a.eps : s.epsilon;
    a.o.eps = eps;
    for (int j = 0; j <= a.n_fixed; j++)
        preds[j] = fg_xmalloc(((size_t)t->n + 1) * sizeof(int));
    fg_eval_robust rb = {0};
    pool = fg_xmalloc(((size_t)(a.o.pool < t->n ? a.o.pool : t->n) + 1) * sizeof *pool);
    if ((status = fg_eval_models(f0, fixed, a.n_fixed, t, &a.o, rows, &rb, preds, pool))) goto fail;

    if (a.csv) {
        fg_eval_csv_header(stdout);
    } else {
        printf("subject %s, %s split (%d samples, %d classes%s)", s.name, a.split, t->n,
               t->n_classes, t->group && t->n_groups == 2 ? ", two groups" : "");
        if (a.o.asr)
            printf("; PGD eps %g: pool %d of %d qualifying, bounds [%g, %g]", (double)eps,
                   rb.n_pool, rb.n_qualified, (double)rb.lo, (double)rb.hi);
        printf("\n");
        print_table_header();
    }
    for (int j = 0; j <= a.n_fixed; j++)
        emit(&a, names[j], &rows[j], rb.n_pool);
    if (a.ensembles)
        for (int i = 0; i < a.n_fixed; i++)
            if (rows[i + 1].outcome == FG_OUTCOME_OK && /* a broken model has no say */
                (status = eval_ensembles(&a, f0, fixed[i], names[i + 1], &sp[FG_SPLIT_VALID], t,
                                         preds[0], &rows[0], pool, &rb)))
                goto fail;
    if (a.predictions &&
        (status = write_predictions(a.predictions, t, preds, a.n_fixed + 1, names)))
        goto fail;
    rc = 0;
    goto cleanup;
fail:
    fprintf(stderr, "fixgrid eval: %s\n", fg_errmsg());
    rc = status == FG_ERR_NOMEM ? 3 : 2; /* the rest are bad inputs: files, shapes, values */
cleanup:
    fg_model_free(f0);
    for (int i = 0; i < a.n_fixed; i++)
        fg_model_free(fixed[i]);
    for (int j = 0; j <= a.n_fixed; j++)
        free(preds[j]);
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        fg_dataset_free(&sp[k]);
    free(pool);
    return rc;
}
