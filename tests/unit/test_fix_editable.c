/* Editable Training (ET) and its editor (fix_edit.h).
 *  - the editor's closed form gives the weights of step-by-step GD and
 *    RMSProp on the last dense layer (computed here with the model's own
 *    backward), the same step count and outcome; so does the batch edit;
 *  - the objective's gradient through the edit steps matches central finite
 *    differences on every parameter; the first-order variant does not (the
 *    negative control shows the check can fail);
 *  - on the image toy, after ET's editable training an edit succeeds within
 *    its step limit more often than on f0; with c_edit = 0 (no editability
 *    loss) the advantage is gone;
 *  - the repair edits fix the failing inputs they target. */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>

#ifndef TOY_STEPS
#define TOY_STEPS 10
#endif
#ifndef TOY_EDIT_LR
#define TOY_EDIT_LR 1e-2f
#endif

static const char *const fd_desc = "input c=5 h=1 w=1\n"
                                   "dense out=8 name=fc1\n"
                                   "relu\n"
                                   "dense out=4 name=fc2\n";

static fg_model *fd_model(uint64_t seed)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse(fd_desc, "fd", &m), FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_model_init_params(m, &r);
    /* larger weights so the features h are O(1) and the edit terms are visible */
    float *p = fg_model_params(m);
    for (size_t i = 0; i < fg_model_n_params(m); i++)
        p[i] *= 3.0f;
    fg_model_reserve(m, 16);
    return m;
}

/* the editor by hand: forward, dl_e/dz = e_j - e_y, backward, one step of
 * GD or RMSProp (per-element mean square, as lib/utils/ingraph_update.py) on
 * the head only */
static void edit_stepwise(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg,
                          fg_edit_out *out)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = fg_model_n_classes(m);
    size_t np = fg_model_n_params(m);
    double *ms = calloc(np, sizeof(double));
    float dz[16];
    fg_model_set_mode(m, FG_MODE_EVAL);
    for (int step = 0;; step++) {
        const float *z = fg_model_forward(m, x, 1);
        int j;
        float l = fg_edit_loss(z, k, y, &j);
        out->steps = step, out->loss = l, out->success = l <= 0;
        if (l <= 0 || step >= cfg->max_steps) break;
        memset(dz, 0, sizeof dz);
        dz[j] = 1, dz[y] = -1;
        fg_model_zero_grad(m);
        fg_model_backward(m, dz);
        float *p = fg_model_params(m), *g = fg_model_grads(m);
        long offs[2] = {L->w_off, L->b_off}, lens[2] = {L->n_w, L->n_b};
        for (int part = 0; part < 2; part++)
            for (long i = offs[part]; i >= 0 && i < offs[part] + lens[part]; i++) {
                double gi = g[i];
                if (cfg->opt == FG_EDIT_GD) {
                    p[i] -= (float)(cfg->lr * gi);
                } else {
                    ms[i] = step == 0 ? gi * gi : cfg->beta * ms[i] + (1 - cfg->beta) * gi * gi;
                    p[i] -= (float)(cfg->lr * gi / sqrt(ms[i] + cfg->eps));
                }
            }
    }
    free(ms);
}

static void closed_form_case(fg_edit_opt opt, float lr)
{
    fg_model *a = fd_model(3), *b = fg_model_clone(a);
    fg_model_reserve(b, 16);
    int head = fg_edit_head(a, NULL, 0);
    cr_assert_eq(head, fg_model_output(a));
    fg_rng r;
    fg_rng_seed(&r, 5);
    int seen_fail = 0, seen_ok = 0;
    for (int t = 0; t < 20; t++) {
        float x[5];
        for (int i = 0; i < 5; i++)
            x[i] = 2 * fg_rng_uniform(&r) - 1;
        int y = (int)fg_rng_below(&r, 4);
        fg_edit_cfg cfg = {
            .opt = opt, .lr = lr, .beta = 0.5f, .eps = 1e-6f, .max_steps = 1 + t % 6};
        fg_edit_out oa, ob;
        fg_edit_input(a, head, x, y, &cfg, &oa);
        edit_stepwise(b, head, x, y, &cfg, &ob);
        cr_assert_eq(oa.steps, ob.steps, "edit %d: %d vs %d steps", t, oa.steps, ob.steps);
        cr_assert_eq(oa.success, ob.success);
        seen_fail += !oa.success, seen_ok += oa.success && oa.steps > 0;
        const float *pa = fg_model_params_c(a), *pb = fg_model_params_c(b);
        for (size_t i = 0; i < fg_model_n_params(a); i++)
            cr_assert_float_eq(pa[i], pb[i], 1e-4f, "edit %d param %zu: %g vs %g", t, i,
                               (double)pa[i], (double)pb[i]);
    }
    cr_assert(seen_fail > 0 && seen_ok > 0, "both outcomes exercised (%d failed, %d succeeded)",
              seen_fail, seen_ok);
    fg_model_free(a), fg_model_free(b);
}

Test(edit, closed_form_equals_stepwise_gd)
{
    closed_form_case(FG_EDIT_GD, 0.05f);
}

Test(edit, closed_form_equals_stepwise_rmsprop)
{
    closed_form_case(FG_EDIT_RMSPROP, 0.05f);
}

/* the batch editor by hand: the mean edit loss over n inputs, backward, one
 * RMSProp or GD step on the head, until every input is right */
static void batch_stepwise(fg_model *m, int head, const float *x, const int *y, int n,
                           const fg_edit_cfg *cfg, fg_edit_out *out)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = fg_model_n_classes(m);
    double *ms = calloc(fg_model_n_params(m), sizeof(double));
    float *dz = calloc((size_t)n * (size_t)k, sizeof(float));
    fg_model_set_mode(m, FG_MODE_EVAL);
    for (int step = 0;; step++) {
        const float *z = fg_model_forward(m, x, n);
        double sum = 0;
        memset(dz, 0, sizeof(float) * (size_t)n * (size_t)k);
        for (int i = 0; i < n; i++) {
            int j;
            float l = fg_edit_loss(z + i * k, k, y[i], &j);
            sum += l;
            if (l > 0) dz[i * k + j] = 1.0f / n, dz[i * k + y[i]] = -1.0f / n;
        }
        out->steps = step, out->loss = (float)(sum / n), out->success = sum <= 0;
        if (sum <= 0 || step >= cfg->max_steps) break;
        fg_model_zero_grad(m);
        fg_model_backward(m, dz);
        float *p = fg_model_params(m), *g = fg_model_grads(m);
        long offs[2] = {L->w_off, L->b_off}, lens[2] = {L->n_w, L->n_b};
        for (int part = 0; part < 2; part++)
            for (long i = offs[part]; i >= 0 && i < offs[part] + lens[part]; i++) {
                double gi = g[i];
                if (cfg->opt == FG_EDIT_GD) {
                    p[i] -= (float)(cfg->lr * gi);
                } else {
                    ms[i] = step == 0 ? gi * gi : cfg->beta * ms[i] + (1 - cfg->beta) * gi * gi;
                    p[i] -= (float)(cfg->lr * gi / sqrt(ms[i] + cfg->eps));
                }
            }
    }
    free(ms), free(dz);
}

Test(edit, batch_edit_equals_stepwise_descent)
{
    fg_rng r;
    fg_rng_seed(&r, 8);
    int outcomes[2] = {0, 0};
    for (int t = 0; t < 8; t++) {
        fg_model *a = fd_model(30 + (uint64_t)t), *b = fg_model_clone(a);
        fg_model_reserve(b, 16);
        float x[7 * 5];
        int y[7];
        for (int i = 0; i < 35; i++)
            x[i] = 2 * fg_rng_uniform(&r) - 1;
        for (int i = 0; i < 7; i++)
            y[i] = (int)fg_rng_below(&r, 4);
        fg_edit_cfg cfg = {.opt = t % 2 ? FG_EDIT_GD : FG_EDIT_RMSPROP,
                           .lr = 0.1f,
                           .beta = 0.5f,
                           .eps = 1e-6f,
                           .max_steps = 2 + 3 * (t / 2)};
        fg_edit_out oa, ob;
        fg_edit_batch(a, fg_model_output(a), x, y, 7, &cfg, &oa);
        batch_stepwise(b, fg_model_output(b), x, y, 7, &cfg, &ob);
        cr_assert_eq(oa.steps, ob.steps, "case %d: %d vs %d steps", t, oa.steps, ob.steps);
        cr_assert_eq(oa.success, ob.success);
        outcomes[oa.success]++;
        const float *pa = fg_model_params_c(a), *pb = fg_model_params_c(b);
        for (size_t i = 0; i < fg_model_n_params(a); i++)
            cr_assert_float_eq(pa[i], pb[i], 1e-4f, "case %d param %zu: %g vs %g", t, i,
                               (double)pa[i], (double)pb[i]);
        fg_model_free(a), fg_model_free(b);
    }
    cr_assert(outcomes[0] > 0 && outcomes[1] > 0,
              "both outcomes exercised (%d failed, %d succeeded)", outcomes[0], outcomes[1]);
}

typedef struct {
    float x[6 * 5], xe[5];
    int y[6], ye;
    fg_edit_cfg cfg;
    float p0[6 * 4]; /* the locality target softmax(z(x)) at the base point: detached */
} fd_case;

static double objective(fg_model *m, const fd_case *c, int exact, fg_edit_terms *t)
{
    fg_edit_terms tt;
    fg_model_zero_grad(m);
    cr_assert_eq(fg_edit_objective(m, fg_model_output(m), c->x, c->y, 6, c->xe, c->ye, &c->cfg,
                                   1.0f, 1.0f, FG_MODE_TRAIN, exact, &tt),
                 FG_OK, "%s", fg_errmsg());
    if (t) *t = tt;
    return tt.loss;
}

/* The locality loss with its target held at p0, recomputed here from plain
 * forwards and the editor's plan (the detached target makes the objective's
 * gradient differ from the derivative of the objective's value). */
static double loc_fixed(fg_model *m, const fd_case *c)
{
    int head = fg_model_output(m), src = fg_model_node(m, head)->in[0];
    float he[8], ze[4], dW[32], db[4], A[32];
    fg_edit_delta dl = {.dW = dW, .db = db, .A = A};
    const float *z = fg_model_forward(m, c->xe, 1);
    memcpy(he, fg_model_act(m, src), sizeof he);
    memcpy(ze, z, sizeof ze);
    fg_edit_out o;
    fg_edit_plan(ze, he, 4, 8, 1, c->ye, &c->cfg, &dl, NULL, &o);
    z = fg_model_forward(m, c->x, 6);
    const float *h = fg_model_act(m, src);
    double L = 0;
    for (int i = 0; i < 6; i++) {
        double q[4], mx = -1e30, se = 0;
        for (int k = 0; k < 4; k++) {
            q[k] = z[i * 4 + k] + db[k];
            for (int j = 0; j < 8; j++)
                q[k] += (double)dW[k * 8 + j] * h[i * 8 + j];
            mx = fmax(mx, q[k]);
        }
        for (int k = 0; k < 4; k++)
            se += exp(q[k] - mx);
        for (int k = 0; k < 4; k++)
            L -= c->p0[i * 4 + k] * (q[k] - mx - log(se));
    }
    return L / 6;
}

/* the value whose derivative the objective's gradient is: main + c_edit l_e
 * from the objective, locality with the fixed target (c_loc = c_edit = 1) */
static double value(fg_model *m, const fd_case *c, fg_edit_terms *t)
{
    objective(m, c, 1, t);
    return t->main + t->edit + loc_fixed(m, c);
}

/* max |analytic - central difference| / (1 + |fd|) over every parameter */
static double fd_error(fg_model *m, const fd_case *c, int exact)
{
    size_t np = fg_model_n_params(m);
    fg_edit_terms t0;
    objective(m, c, exact, &t0);
    float *g = fg_xfloats(np);
    memcpy(g, fg_model_grads(m), sizeof(float) * np);
    float *p = fg_model_params(m);
    const float h = 2e-3f;
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        float v = p[i];
        fg_edit_terms tp, tm;
        p[i] = v + h;
        double lp = value(m, c, &tp);
        p[i] = v - h;
        double lm = value(m, c, &tm);
        p[i] = v;
        /* the editor's path must not change inside the difference */
        cr_assert_eq(tp.e.steps, t0.e.steps);
        cr_assert_eq(tm.e.steps, t0.e.steps);
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[i]) / (1.0 + fabs(fd));
        if (err > worst) worst = err;
    }
    free(g);
    return worst;
}

/* the worst errors of the exact and the first-order gradients */
static void fd_case_run(fg_edit_opt opt, float lr, double *ex, double *fo)
{
    fg_model *m = fd_model(11);
    fg_rng r;
    fg_rng_seed(&r, 12);
    fd_case c;
    for (int i = 0; i < 30; i++)
        c.x[i] = 2 * fg_rng_uniform(&r) - 1;
    for (int i = 0; i < 6; i++)
        c.y[i] = (int)fg_rng_below(&r, 4);
    for (int i = 0; i < 5; i++)
        c.xe[i] = 2 * fg_rng_uniform(&r) - 1;
    /* the edit's target: the weakest class, with too few steps to get there,
     * so both the locality and the editability terms carry a gradient */
    const float *z = fg_model_forward(m, c.xe, 1);
    c.ye = 0;
    for (int j = 1; j < 4; j++)
        c.ye = z[j] < z[c.ye] ? j : c.ye;
    c.cfg = (fg_edit_cfg){.opt = opt, .lr = lr, .beta = 0.5f, .eps = 1e-6f, .max_steps = 3};
    fg_softmax(fg_model_forward(m, c.x, 6), c.p0, 6, 4);
    fg_edit_terms t;
    objective(m, &c, 1, &t);
    cr_assert(!t.e.success && t.e.steps == 3 && t.edit > 0, "the edit must fail (steps %d, l_e %g)",
              t.e.steps, t.edit);
    cr_assert_gt(t.loc, 0);
    *ex = fd_error(m, &c, 1), *fo = fd_error(m, &c, 0);
    fg_model_free(m);
}

Test(edit, objective_gradient_matches_finite_differences_gd)
{
    double ex, fo;
    fd_case_run(FG_EDIT_GD, 0.02f, &ex, &fo);
    cr_assert_lt(ex, 2e-3, "exact gradient vs finite differences: %g", ex);
    /* negative control: dropping the update's dependence on h_e is visible */
    cr_assert_gt(fo, 10 * 2e-3, "first-order gradient should miss the finite differences (%g)", fo);
}

Test(edit, objective_gradient_matches_finite_differences_rmsprop)
{
    double ex, fo;
    fd_case_run(FG_EDIT_RMSPROP, 0.05f, &ex, &fo);
    cr_assert_lt(ex, 2e-3, "exact gradient vs finite differences: %g (first-order %g)", ex, fo);
}

/* fraction (%) of edits to a random wrong label that succeed within cfg's steps */
static double edit_success(fg_model *m, const fg_dataset *d, const fg_edit_cfg *cfg, uint64_t seed)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    int head = fg_edit_head(m, NULL, 0), ok = 0, k = fg_model_n_classes(m);
    size_t D = fg_dataset_dim(d);
    for (int i = 0; i < d->n; i++) {
        int y = (d->y[i] + 1 + (int)fg_rng_below(&r, (uint64_t)(k - 1))) % k;
        ok += fg_edit_try(m, head, d->x + (size_t)i * D, y, cfg, NULL);
    }
    return 100.0 * ok / d->n;
}

typedef toyimg_fx fixture;

static void setup_fx(fixture *f)
{
    toyimg_fx_setup(f, 120, 24, TOYIMG_NORMAL);
}

/* the toy's budget: 20 epochs of 300 images in batches of 32; the editor's
 * step is 1e-2 (1e-3 moves the toy's small head too little to edit at all) */
static int run_et(fixture *f, const char *key, double v, int steps, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find("ET");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "epochs")] = 20;
    pv[fg_fix_param_index(a, "batch")] = 32;
    pv[fg_fix_param_index(a, "max_steps")] = steps;
    pv[fg_fix_param_index(a, "edit_lr")] = TOY_EDIT_LR;
    pv[fg_fix_param_index(a, "edits")] = 0;
    if (key) pv[fg_fix_param_index(a, key)] = v;
    return toyimg_run("ET", 0, pv, f->f0, &f->tr, &f->val, &f->rep, 9, res);
}

/* The key property: editable training makes a two-step edit succeed more
 * often on held-out inputs (random wrong labels) than on f0; without the
 * editability loss (c_edit = 0, the negative control) it does not. */
Test(editable, editable_training_makes_edits_succeed_more_often)
{
    fixture f;
    setup_fx(&f);
    fg_edit_cfg cfg = {.opt = FG_EDIT_RMSPROP,
                       .lr = TOY_EDIT_LR,
                       .beta = 0.5f,
                       .eps = 1e-6f,
                       .max_steps = TOY_STEPS};
    fg_fix_result et, ctl;
    cr_assert_eq(run_et(&f, NULL, 0, TOY_STEPS, &et), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(run_et(&f, "c_edit", 0, TOY_STEPS, &ctl), FG_OK, "%s", fg_errmsg());
    double s0 = edit_success(f.f0, &f.held, &cfg, 3), s1 = edit_success(et.f1, &f.held, &cfg, 3);
    double sc = edit_success(ctl.f1, &f.held, &cfg, 3);
    cr_assert_gt(s1, s0 + 8, "edit success within %d steps: f0 %.1f%%, ET %.1f%% (%s)", TOY_STEPS,
                 s0, s1, et.note);
    cr_assert_lt(sc, s1 - 8, "c_edit = 0 keeps the advantage: %.1f%% vs ET %.1f%%", sc, s1);
    cr_assert_lt(sc, s0 + 5, "c_edit = 0: %.1f%% vs f0 %.1f%%", sc, s0);
    /* editable training keeps the task: held-out accuracy stays high */
    cr_assert_gt(toy_accuracy(et.f1, &f.held), 95.0);
    cr_assert(strstr(et.variant, "editable=last-dense") && strstr(et.variant, "beta=fixed"), "%s",
              et.variant);
    fg_model_free(et.f1), fg_model_free(ctl.f1);
    toyimg_fx_free(&f);
}

/* A successful edit makes its input right; the repair edits of an ET run
 * leave a share of the failing repair inputs right, and the run's note
 * counts them as the model says. */
Test(editable, edits_fix_the_inputs_they_target)
{
    fixture f;
    setup_fx(&f);
    fg_fix_sets sets;
    fg_fix_sets_build(f.f0, &f.rep, 64, &sets);
    cr_assert_gt(sets.n_neg, 10);
    fg_model *m = fg_model_clone(f.f0);
    fg_model_reserve(m, 64);
    int head = fg_edit_head(m, NULL, 0), ok = 0;
    fg_edit_cfg cfg = {
        .opt = FG_EDIT_RMSPROP, .lr = TOY_EDIT_LR, .beta = 0.5f, .eps = 1e-6f, .max_steps = 40};
    for (int i = 0; i < sets.n_neg; i++) {
        int row = sets.neg[i], lab;
        const float *x = f.rep.x + (size_t)row * 64;
        fg_edit_out o;
        fg_edit_input(m, head, x, f.rep.y[row], &cfg, &o);
        fg_model_predict(m, x, 1, 1, &lab, NULL);
        if (o.success)
            cr_assert_eq(lab, f.rep.y[row], "edit %d succeeded but the input is still wrong", i);
        else
            cr_assert_eq(o.steps, cfg.max_steps);
        ok += o.success;
    }
    cr_assert_gt(ok, sets.n_neg / 2, "%d of %d edits succeeded", ok, sets.n_neg);
    fg_model_free(m);

    fg_fix_result res;
    cr_assert_eq(run_et(&f, "edits", 1, 40, &res), FG_OK, "%s", fg_errmsg());
    int right = 0;
    for (int i = 0; i < sets.n_neg; i++) {
        int row = sets.neg[i], lab;
        fg_model_predict(res.f1, f.rep.x + (size_t)row * 64, 1, 1, &lab, NULL);
        right += lab == f.rep.y[row];
    }
    cr_assert_geq(3 * right, sets.n_neg, "%d of f0's %d failing repair inputs right after ET (%s)",
                  right, sets.n_neg, res.note);
    cr_assert_gt(res.weights_changed, 0);
    fg_model_free(res.f1);
    fg_fix_sets_free(&sets);
    toyimg_fx_free(&f);
}
