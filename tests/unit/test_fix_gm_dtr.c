/* GenMuNN (GM) on the point toy and DTR (BN-channel tuning, identity inferred)
 * on the image toy (tests/fixtoy.h).
 *  GM: the genes are the most influential weight of each layer (recomputed here
 *      from the gradient of the failing inputs' loss), only they change, the
 *      fitness rises above f0's and the held-out accuracy with it; the
 *      negative control draws the genes at random (rank = random) and, where
 *      that misses the fault weight, repairs less.
 *  DTR: refuses a model without batch normalisation; changes only BN gamma and
 *      beta (never the running statistics, never another parameter), the most
 *      blamed channels (recomputed here), and lifts accuracy on held-out
 *      shifted images; the negative control tunes a single channel and does
 *      not lift it. */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

#include <stdio.h>
#include <string.h>

static int gm_run_pv(const char *key, double v, const fg_model *f0, const fg_dataset *rep, uint64_t seed,
                     fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find("GM");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    if (key) pv[fg_fix_param_index(a, key)] = v;
    fg_dataset val;
    toy_data(50, 77, &val);
    int rc = toy_run_with("GM", 0, pv, f0, NULL, 0, rep, &val, rep, seed, res);
    fg_dataset_free(&val);
    return rc;
}

/* the genes listed at the end of GM's note ("... genes 4 12") */
static int note_genes(const char *note, long *g, int max)
{
    const char *p = strstr(note, "genes ");
    const char *last = p;
    while (p) last = p, p = strstr(p + 1, "genes ");
    cr_assert_not_null(last, "%s", note);
    last += 6;
    int n = 0;
    char *end;
    for (long v = strtol(last, &end, 10); end != last && n < max; v = strtol(last, &end, 10)) g[n++] = v, last = end;
    return n;
}

static void note_fitness(const char *note, double *before, double *after)
{
    cr_assert_eq(sscanf(note, "fitness %lf -> %lf", before, after), 2, "%s", note);
}

Test(genmunn, mutates_the_most_influential_weights_and_repairs)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep, test;
    toy_data(100, 3, &rep);
    toy_data(200, 4, &test);
    fg_fix_result res;
    cr_assert_eq(gm_run_pv(NULL, 0, f0, &rep, 5, &res), FG_OK, "%s", fg_errmsg());
    /* the genes, recomputed: per layer the argmax of |sum over I_neg dCE/dw| (1% of 8 or 12
     * weights rounds down to 0, so one per layer) */
    fg_model *m = fg_model_clone(f0);
    fg_fix_sets sets;
    fg_fix_sets_build(m, &rep, 64, &sets);
    float *gl = fg_xfloats(fg_model_n_params(m));
    fg_loc_grad_loss(m, &rep, sets.neg, sets.n_neg, 64, gl);
    long want[2];
    const char *names[2] = {"fc1", "fc2"};
    for (int l = 0; l < 2; l++) {
        const fg_layer *L = fg_model_node(m, fg_model_find(m, names[l]));
        want[l] = L->w_off;
        for (long i = 1; i < L->n_w; i++)
            if (gl[L->w_off + i] > gl[want[l]]) want[l] = L->w_off + i;
    }
    cr_assert_eq(want[1], toy_fault_index(f0), "the fault weight is the most influential of fc2");
    long got[8];
    cr_assert_eq(note_genes(res.note, got, 8), 2, "%s", res.note);
    cr_assert_eq(got[0], want[0], "%s", res.note);
    cr_assert_eq(got[1], want[1], "%s", res.note);
    /* only the genes change */
    const float *p0 = fg_model_params_c(f0), *p1 = fg_model_params_c(res.f1);
    long changed = 0;
    for (size_t i = 0; i < fg_model_n_params(f0); i++)
        if (p0[i] != p1[i]) {
            changed++;
            cr_assert((long)i == want[0] || (long)i == want[1], "parameter %zu changed outside the genes", i);
        }
    cr_assert_eq(changed, res.weights_changed);
    cr_assert_gt(p1[toy_fault_index(f0)], TOY_FAULT, "the fault weight is raised");
    double before, after;
    note_fitness(res.note, &before, &after);
    cr_assert_gt(after, before + 5, "%s", res.note);
    double a0 = toy_accuracy(f0, &test), a1 = toy_accuracy(res.f1, &test);
    cr_assert_gt(a1, a0 + 10, "held-out accuracy %.1f -> %.1f (%s)", a0, a1, res.note);
    /* the work: the initial population plus (pop - elites) per generation, and f0's own score */
    cr_assert_leq(res.evals, 1 + 20 + 50 * 18);
    free(gl);
    fg_fix_sets_free(&sets);
    fg_model_free(m);
    fg_model_free(res.f1);

    /* negative control: genes drawn at random; the first seed whose draw misses the
     * fault weight repairs less */
    int found = 0;
    for (uint64_t s = 1; s <= 20 && !found; s++) {
        fg_fix_result rnd;
        cr_assert_eq(gm_run_pv("rank", 1, f0, &rep, s, &rnd), FG_OK, "%s", fg_errmsg());
        cr_assert(strstr(rnd.variant, "rank=random"));
        long rg[8];
        int n = note_genes(rnd.note, rg, 8);
        int hit = 0;
        for (int i = 0; i < n; i++) hit |= rg[i] == toy_fault_index(f0);
        if (!hit) {
            found = 1;
            double ar = toy_accuracy(rnd.f1, &test);
            cr_assert_lt(ar, a1 - 5, "random genes (seed %lu) %.1f vs ranked %.1f (%s)", (unsigned long)s, ar, a1,
                         rnd.note);
        }
        fg_model_free(rnd.f1);
    }
    cr_assert(found, "some random draw misses the fault weight");
    fg_model_free(f0);
    fg_dataset_free(&rep), fg_dataset_free(&test);
}

Test(genmunn, deterministic_for_a_seed_and_never_below_f0)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 8, &rep);
    fg_fix_result a, b, c;
    cr_assert_eq(gm_run_pv("generations", 3, f0, &rep, 11, &a), FG_OK);
    cr_assert_eq(gm_run_pv("generations", 3, f0, &rep, 11, &b), FG_OK);
    cr_assert(!memcmp(fg_model_params_c(a.f1), fg_model_params_c(b.f1), sizeof(float) * fg_model_n_params(f0)));
    cr_assert_str_eq(a.note, b.note);
    cr_assert_eq(a.evals, b.evals);
    /* with no generation the best of f0 and its mutants is kept: never below f0 */
    cr_assert_eq(gm_run_pv("generations", 0, f0, &rep, 11, &c), FG_OK);
    double before, after;
    note_fitness(c.note, &before, &after);
    cr_assert_geq(after, before, "%s", c.note);
    cr_assert_eq(c.evals, 1 + 20);
    fg_model_free(a.f1), fg_model_free(b.f1), fg_model_free(c.f1);
    /* f0 without errors: f1 = f0 */
    fg_model *good = toy_model(TOY_GOOD);
    fg_fix_result g;
    cr_assert_eq(gm_run_pv(NULL, 0, good, &rep, 1, &g), FG_OK);
    cr_assert(!memcmp(fg_model_params_c(g.f1), fg_model_params_c(good), sizeof(float) * fg_model_n_params(good)),
              "%s", g.note);
    fg_model_free(g.f1);
    fg_model_free(good);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* ---- DTR ---- */

Test(dtr, refuses_a_model_without_batch_norm)
{
    const fg_fix_approach *a = fg_fix_find("DTR");
    cr_assert_not_null(a);
    fg_model *pt = toy_model(TOY_FAULT);
    fg_fix_subject s = {.name = "toy", .n_classes = 3};
    char reason[256] = "";
    cr_assert_eq(a->supports(pt, &s, reason, sizeof reason), 0);
    cr_assert(strstr(reason, "batch normalisation"), "%s", reason);
    fg_model_free(pt);
    fg_model *img;
    cr_assert_eq(fg_model_parse(toyimg_desc, "toyimg", &img), FG_OK);
    fg_fix_subject si = toyimg_subject();
    cr_assert_eq(a->supports(img, &si, reason, sizeof reason), 1, "the image toy has BN");
    fg_model_free(img);
}

typedef struct {
    fg_dataset tr, val, rep, test;
    fg_model *f0;
} dtr_fx;

static void dtr_setup(dtr_fx *f)
{
    static const int modes[2] = {TOYIMG_NORMAL, TOYIMG_SHIFTED};
    toyimg_data(300, 1, TOYIMG_NORMAL, &f->tr);
    toyimg_data_modes(90, 21, modes, 2, &f->val);
    toyimg_data_modes(240, 22, modes, 2, &f->rep);
    toyimg_data(150, 23, TOYIMG_SHIFTED, &f->test);
    f->f0 = toyimg_f0(&f->tr);
}

static void dtr_teardown(dtr_fx *f)
{
    fg_model_free(f->f0);
    fg_dataset_free(&f->tr), fg_dataset_free(&f->val), fg_dataset_free(&f->rep), fg_dataset_free(&f->test);
}

static int dtr_run_with(dtr_fx *f, double frac, double lr, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find("DTR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "frac")] = frac; /* the toy has 6 BN channels */
    pv[fg_fix_param_index(a, "lr")] = lr;
    return toyimg_run("DTR", 0, pv, f->f0, &f->tr, &f->val, &f->rep, 9, res);
}

/* 1 if parameter i is a gamma or beta of a BN node of m; *ch = its channel's rank
 * among all BN channels */
static int bn_param(const fg_model *m, long i, int *ch)
{
    int base = 0;
    for (int l = 0; l < fg_model_n_nodes(m); l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind != FG_LAYER_BN) continue;
        if (i >= L->w_off && i < L->w_off + L->n_w) return *ch = base + (int)(i - L->w_off), 1;
        if (i >= L->b_off && i < L->b_off + L->n_b) return *ch = base + (int)(i - L->b_off), 1;
        base += (int)L->n_w;
    }
    return 0;
}

Test(dtr, tunes_only_bn_affine_parameters_and_lifts_shifted_accuracy)
{
    dtr_fx f;
    dtr_setup(&f);
    fg_fix_result res, one;
    cr_assert_eq(dtr_run_with(&f, 1.0, 0.05, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.variant, "identity=inferred;candidate=bn-channel-tuning"), "%s", res.variant);
    const float *p0 = fg_model_params_c(f.f0), *p1 = fg_model_params_c(res.f1);
    long changed = 0;
    int ch;
    for (size_t i = 0; i < fg_model_n_params(f.f0); i++)
        if (p0[i] != p1[i]) {
            changed++;
            cr_assert(bn_param(f.f0, (long)i, &ch), "parameter %zu is not a BN gamma/beta", i);
        }
    cr_assert_gt(changed, 0);
    cr_assert_eq(changed, res.weights_changed);
    cr_assert(!memcmp(fg_model_state_c(res.f1), fg_model_state_c(f.f0), sizeof(float) * fg_model_n_state(f.f0)),
              "BN running statistics must stay f0's");
    double a0 = fg_model_accuracy(f.f0, f.test.x, f.test.y, f.test.n, 64);
    double a1 = fg_model_accuracy(res.f1, f.test.x, f.test.y, f.test.n, 64);
    cr_assert_gt(a1, a0 + 5, "held-out shifted accuracy %.1f -> %.1f (%s)", a0, a1, res.note);
    /* negative control: one channel tuned (frac 0.1 of 6) does not lift it */
    cr_assert_eq(dtr_run_with(&f, 0.1, 0.05, &one), FG_OK, "%s", fg_errmsg());
    double a2 = fg_model_accuracy(one.f1, f.test.x, f.test.y, f.test.n, 64);
    cr_assert_lt(a2, a0 + 5, "one channel: %.1f -> %.1f (%s)", a0, a2, one.note);
    cr_assert_leq(one.weights_changed, 2);
    fg_model_free(res.f1), fg_model_free(one.f1);
    dtr_teardown(&f);
}

Test(dtr, tunes_the_most_blamed_channels)
{
    dtr_fx f;
    dtr_setup(&f);
    fg_fix_result res;
    cr_assert_eq(dtr_run_with(&f, 0.5, 0.05, &res), FG_OK, "%s", fg_errmsg());
    /* recompute the blame: the run's first draw is the I_pos sample (seed 9) */
    fg_model *m = fg_model_clone(f.f0);
    fg_fix_sets sets;
    fg_fix_sets_build(m, &f.rep, 256, &sets);
    cr_assert_lt(sets.n_neg, sets.n_pos);
    fg_rng r;
    fg_rng_seed(&r, 9);
    int *ps = fg_xmalloc(sizeof(int) * (size_t)sets.n_pos);
    int n_ps = fg_fix_sample_stratified(&f.rep, sets.pos, sets.n_pos, sets.n_neg, &r, ps);
    size_t np = fg_model_n_params(m);
    float *gn = fg_xfloats(np), *gp = fg_xfloats(np);
    fg_loc_grad_loss(m, &f.rep, sets.neg, sets.n_neg, 64, gn);
    fg_loc_grad_loss(m, &f.rep, ps, n_ps, 64, gp);
    const fg_layer *bn = fg_model_node(m, fg_model_find(m, "bn1"));
    float s[6];
    for (int c = 0; c < 6; c++) {
        long g = bn->w_off + c, b = bn->b_off + c;
        s[c] = (gn[g] + gn[b]) / (1.0f + gp[g] + gp[b]);
    }
    int top[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (s[top[j]] > s[top[i]]) {
                int t = top[i];
                top[i] = top[j], top[j] = t;
            }
    const float *p0 = fg_model_params_c(f.f0), *p1 = fg_model_params_c(res.f1);
    for (int c = 0; c < 6; c++) {
        int in_top = c == top[0] || c == top[1] || c == top[2];
        int moved = p0[bn->w_off + c] != p1[bn->w_off + c] || p0[bn->b_off + c] != p1[bn->b_off + c];
        cr_assert_eq(moved, in_top, "channel %d (blame %.4g, top %d %d %d): moved %d", c, (double)s[c], top[0],
                     top[1], top[2], moved);
    }
    free(ps), free(gn), free(gp);
    fg_fix_sets_free(&sets);
    fg_model_free(m);
    fg_model_free(res.f1);
    dtr_teardown(&f);
}
