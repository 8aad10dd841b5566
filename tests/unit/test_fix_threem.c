/* 3M: the LP's modification fixes the points it was given and is minimal in
 * L-inf: no point of a fine brute-force grid over the four weights of a tiny
 * output layer fixes them with a smaller change. */
#include "../fixtoy.h"
#include "fixgrid/fix.h"

#include <criterion/criterion.h>
#include <math.h>

static const float X[2][2] = {{1.0f, 0.2f}, {0.5f, 1.0f}};
static const int Y[2] = {0, 1};
static const float W0[4] = {0, 1, 1, 0}; /* [out][in]: both points misclassified */

static int fixes(const float *w, float margin)
{
    for (int p = 0; p < 2; p++) {
        float z0 = w[0] * X[p][0] + w[1] * X[p][1], z1 = w[2] * X[p][0] + w[3] * X[p][1];
        if ((Y[p] == 0 ? z0 - z1 : z1 - z0) < margin) return 0;
    }
    return 1;
}

Test(fix_threem, minimal_against_brute_force)
{
    fg_model *f0;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=2 bias=0 name=fc\n", "tiny", &f0), FG_OK);
    memcpy(fg_model_params(f0), W0, sizeof W0);
    fg_model_reserve(f0, 8);
    fg_dataset rep = {.n = 2, .c = 2, .h = 1, .w = 1, .n_classes = 2};
    rep.x = fg_xfloats(4), rep.y = fg_xmalloc(sizeof(int) * 2);
    memcpy(rep.x, X, sizeof X);
    memcpy(rep.y, Y, sizeof Y);
    cr_assert_eq(toy_accuracy(f0, &rep), 0.0);
    const fg_fix_approach *a = fg_fix_find("3M");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    float margin = (float)pv[fg_fix_param_index(a, "margin")];
    fg_fix_result res;
    cr_assert_eq(toy_run_with("3M", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 1, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(toy_accuracy(res.f1, &rep), 100.0);
    const float *w1 = fg_model_params_c(res.f1);
    double eps = 0;
    for (int i = 0; i < 4; i++) eps = fmax(eps, fabs(w1[i] - W0[i]));
    /* brute force: the smallest max|delta| on a grid of step h that fixes both points */
    const double h = 0.02;
    double best = INFINITY;
    float w[4];
    for (int a0 = -50; a0 <= 50; a0++)
        for (int a1 = -50; a1 <= 50; a1++)
            for (int a2 = -50; a2 <= 50; a2++)
                for (int a3 = -50; a3 <= 50; a3++) {
                    double e = fmax(fmax(abs(a0), abs(a1)), fmax(abs(a2), abs(a3))) * h;
                    if (e >= best) continue;
                    w[0] = W0[0] + (float)(a0 * h), w[1] = W0[1] + (float)(a1 * h);
                    w[2] = W0[2] + (float)(a2 * h), w[3] = W0[3] + (float)(a3 * h);
                    if (fixes(w, margin)) best = e;
                }
    cr_assert(isfinite(best), "the grid holds a fix");
    /* the LP is no worse than any grid fix, and the grid comes within a few steps of it */
    cr_assert_leq(eps, best + 1e-5, "LP change %g, brute force %g", eps, best);
    cr_assert_geq(eps, best - 2 * h, "LP change %g far below the grid's %g: not a real fix?", eps, best);
    cr_assert(fixes(w1, margin * 0.99f));
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* The LP's budget is simplex iterations, not seconds: the parameter reaches
 * the solver (one iteration cannot solve the toy LP: the run fails with the
 * solver's iteration-limit message), and the cpu value still solves it. */
Test(fix_threem, iteration_limit_reaches_the_lp)
{
    fg_model *f0;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=2 bias=0 name=fc\n", "tiny", &f0), FG_OK);
    memcpy(fg_model_params(f0), W0, sizeof W0);
    fg_model_reserve(f0, 8);
    fg_dataset rep = {.n = 2, .c = 2, .h = 1, .w = 1, .n_classes = 2};
    rep.x = fg_xfloats(4), rep.y = fg_xmalloc(sizeof(int) * 2);
    memcpy(rep.x, X, sizeof X);
    memcpy(rep.y, Y, sizeof Y);
    const fg_fix_approach *a = fg_fix_find("3M");
    cr_assert_lt(fg_fix_param_index(a, "time_limit"), 0, "a limit in seconds would make results machine-dependent");
    int it = fg_fix_param_index(a, "iterations");
    cr_assert_geq(it, 0);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    cr_assert_eq(pv[it], 1e5);
    fg_fix_result res;
    cr_assert_eq(toy_run_with("3M", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 1, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(toy_accuracy(res.f1, &rep), 100.0);
    fg_model_free(res.f1);
    pv[it] = 1;
    cr_assert_eq(toy_run_with("3M", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 1, &res), FG_ERR_CANCELLED);
    cr_assert(strstr(fg_errmsg(), "iteration"), "%s", fg_errmsg());
    cr_assert_null(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* tiebreak=l1 keeps the least L-inf change and takes, among the changes of
 * that size, the one of least L1 norm. Hand-computed: W = [[0,0,0,0],
 * [1,0.1,0,0]], x1 = e1 and x2 = e2, both of class 0 (both misclassified).
 * x1 needs d00 - d10 >= 1 + m, so eps = (1 + m) / 2; x2 needs d01 - d11 >=
 * 0.1 + m, which costs 0.1 + m in L1; nothing else has to move. So the L1
 * change is exactly 1.1 + 2m, never above the solver's vertex (none). */
Test(fix_threem, l1_tiebreak_keeps_linf)
{
    fg_model *f0;
    cr_assert_eq(fg_model_parse("input c=4 h=1 w=1\ndense out=2 bias=0 name=fc\n", "tiny", &f0), FG_OK);
    static const float W[8] = {0, 0, 0, 0, 1, 0.1f, 0, 0};
    static const float xs[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    memcpy(fg_model_params(f0), W, sizeof W);
    fg_model_reserve(f0, 8);
    fg_dataset rep = {.n = 2, .c = 4, .h = 1, .w = 1, .n_classes = 2};
    rep.x = fg_xfloats(8), rep.y = fg_xmalloc(sizeof(int) * 2);
    memcpy(rep.x, xs, sizeof xs);
    rep.y[0] = rep.y[1] = 0;
    const fg_fix_approach *a = fg_fix_find("3M");
    int tie = fg_fix_param_index(a, "tiebreak");
    cr_assert_geq(tie, 0);
    double pv[FG_FIX_MAX_PARAMS], linf[2], l1[2];
    fg_fix_param_defaults(a, 1, pv);
    cr_assert_eq(pv[tie], 0, "l1 is the default");
    double m = pv[fg_fix_param_index(a, "margin")];
    for (int k = 0; k < 2; k++) {
        pv[tie] = k; /* 0 = l1, 1 = none */
        fg_fix_result res;
        cr_assert_eq(toy_run_with("3M", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 1, &res), FG_OK, "%s", fg_errmsg());
        cr_assert_eq(toy_accuracy(res.f1, &rep), 100.0);
        const float *w1 = fg_model_params_c(res.f1);
        linf[k] = 0, l1[k] = 0;
        for (int i = 0; i < 8; i++) {
            double d = fabs((double)w1[i] - W[i]);
            linf[k] = fmax(linf[k], d), l1[k] += d;
        }
        fg_model_free(res.f1);
    }
    cr_assert_float_eq(linf[0], (1 + m) / 2, 1e-5, "eps %g", linf[0]);
    cr_assert_float_eq(linf[1], (1 + m) / 2, 1e-5, "eps %g (none)", linf[1]);
    cr_assert_float_eq(l1[0], 1.1 + 2 * m, 1e-5, "L1 %g, hand-computed %g", l1[0], 1.1 + 2 * m);
    cr_assert_leq(l1[0], l1[1] + 1e-6, "L1 %g above the vertex's %g", l1[0], l1[1]);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}
