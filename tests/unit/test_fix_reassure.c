/* REASSURE (RA) on the point toy (tests/fixtoy.h) and its patch layer.
 *
 * The toy is an MLP, so RA repairs in input space: each patch node's rows
 * are the polytope of one linear region. The tests recompute everything they
 * judge from the patch nodes' own parameters, in double, and from f0:
 *  - soundness: every misclassified repair input inside a patched polytope
 *    (a claimed point) is right under f1, and so is every input sampled
 *    inside the same polytope where no other patch's support reaches (the
 *    whole region is repaired, not the point); both LP solvers agree on the
 *    minimal sup-norm;
 *  - locality: wherever the support is 0 by the node's parameters (the rows'
 *    violation times gamma sums to 1 or more, for every patch), f1's logits
 *    are bit-identical to f0's, on a sample of which most inputs qualify;
 *  - the patched model round-trips through safetensors with equal outputs;
 *  - the patch layer's gradients by central differences where the support is
 *    strictly between 0 and 1 (the gradcheck.c case draws random parameters);
 *  - negative controls: a tiny gamma changes f1 outside every patched
 *    polytope; a broken LP solution (patch zeroed) loses the claimed points;
 *    a gradient 1% off fails the gradient check. */
#include "fixtoy.h"
#include "gradcheck.h"

#include "fixgrid/fix.h"
#include "fixgrid/eval.h"
#include "fixgrid/modelfile.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#define BATCH 64

typedef struct {
    int node, M, d, C;
    const float *A, *b, *c, *dp;
    float K, gamma;
} tpatch;

static int patches_of(const fg_model *m, tpatch *out, int cap)
{
    int n = 0;
    const float *p = fg_model_params_c(m);
    for (int i = 0; i < fg_model_n_nodes(m) && n < cap; i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->kind != FG_LAYER_PATCH) continue;
        tpatch t = {.node = i, .M = L->rows, .d = (int)fg_shape_size(L->in_shape), .C = L->out.c};
        t.A = p + L->w_off, t.c = t.A + (size_t)t.M * t.d;
        t.b = p + L->b_off, t.dp = t.b + t.M, t.K = t.b[t.M + t.C], t.gamma = L->gamma;
        out[n++] = t;
    }
    return n;
}

/* total row violation sum_r max(0, A_r z - b_r) of z against patch t */
static double violation(const tpatch *t, const float *z)
{
    double v = 0;
    for (int r = 0; r < t->M; r++) {
        double s = -t->b[r];
        for (int q = 0; q < t->d; q++)
            s += (double)t->A[(size_t)r * t->d + q] * z[q];
        if (s > 0) v += s;
    }
    return v;
}

static fg_model *run_ra_patch(const fg_model *f0, const fg_dataset *rep, double gamma, double gamma_max,
                              int patch, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find("RA");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    if (gamma > 0) pv[fg_fix_param_index(a, "gamma")] = gamma;
    if (gamma_max > 0) pv[fg_fix_param_index(a, "gamma_max")] = gamma_max;
    if (patch >= 0) pv[fg_fix_param_index(a, "patch")] = patch;
    fg_dataset val;
    toy_data(20, 99, &val);
    int rc = toy_run_with("reassure", 0, pv, f0, NULL, 0, rep, &val, rep, 5, res);
    fg_dataset_free(&val);
    cr_assert_eq(rc, FG_OK, "%s", fg_errmsg());
    cr_assert_not_null(res->f1);
    return res->f1;
}

static fg_model *run_ra(const fg_model *f0, const fg_dataset *rep, double gamma, double gamma_max,
                        fg_fix_result *res)
{
    return run_ra_patch(f0, rep, gamma, gamma_max, -1, res);
}

/* the mean patch sup-norm the note reports */
static double note_sup_norm(const char *note)
{
    const char *p = strstr(note, "sup-norm ");
    cr_assert_not_null(p, "no sup-norm in '%s'", note);
    return atof(p + 9);
}

static int *predict(fg_model *m, const float *x, int n)
{
    int *p = malloc(sizeof(int) * (size_t)n);
    fg_model_predict(m, x, n, BATCH, p, NULL);
    return p;
}

/* index of the patch whose polytope holds z (violation 0), or -1 */
static int inside(const tpatch *t, int np, const float *z)
{
    for (int i = 0; i < np; i++)
        if (violation(&t[i], z) == 0) return i;
    return -1;
}

static void check_sound(int patch, const char *variant)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra_patch(f0, &rep, 0, 0, patch, &res);
    cr_log_info("RA toy: %s | %s | +%ld params", res.variant, res.note, res.params_added);
    cr_assert_str_eq(res.variant, variant);
    tpatch t[256];
    int np = patches_of(f1, t, 256);
    cr_assert(np > 0, "no patch node");
    cr_assert_eq(res.params_added, (long)(fg_model_n_params(f1) - fg_model_n_params(f0)));
    int *p0 = predict(f0, rep.x, rep.n), *p1 = predict(f1, rep.x, rep.n);
    int wrong0 = 0, claimed = 0, label[256];
    for (int i = 0; i < 256; i++) label[i] = -1;
    for (int i = 0; i < rep.n; i++) {
        if (p0[i] == rep.y[i]) continue;
        wrong0++;
        int r = inside(t, np, rep.x + 2 * i);
        if (r < 0) continue;
        claimed++;
        label[r] = rep.y[i];
        cr_expect_eq(p1[i], rep.y[i], "claimed point %d (label %d) predicted %d", i, rep.y[i], p1[i]);
    }
    cr_assert(wrong0 > 0, "the toy f0 makes no error");
    /* every linear region of this toy can be repaired: all errors claimed */
    cr_expect_eq(claimed, wrong0, "claimed %d of %d errors", claimed, wrong0);
    /* whole regions: inputs sampled inside a patched polytope get its label */
    fg_rng r;
    fg_rng_seed(&r, 11);
    int in = 0;
    float x[2];
    for (int s = 0; s < 20000; s++) {
        x[0] = 3.0f * fg_rng_uniform(&r) - 1.5f, x[1] = 3.0f * fg_rng_uniform(&r) - 1.5f;
        int k = inside(t, np, x), alone = 1;
        if (k < 0 || label[k] < 0) continue;
        /* the guarantee of one region's patch: where no other support reaches */
        for (int o = 0; o < np; o++)
            if (o != k && violation(&t[o], x) * t[o].gamma < 1.0) alone = 0;
        if (!alone) continue;
        in++;
        int y;
        fg_model_predict(f1, x, 1, 1, &y, NULL);
        cr_expect_eq(y, label[k], "(%g, %g) in region %d predicted %d, not %d", (double)x[0],
                     (double)x[1], k, y, label[k]);
    }
    cr_expect(in > 100, "only %d samples inside the patched regions", in);
    free(p0), free(p1);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

Test(reassure, sound_closed_form)
{
    check_sound(0, "published;input-space;patch=closed-form");
}

Test(reassure, sound_lp_cuts)
{
    check_sound(1, "published;input-space;patch=lp-cuts");
}

Test(reassure, sound_lp_dual)
{
    check_sound(2, "published;input-space;patch=lp-dual");
}

/* The LP's optimum is the minimal sup-norm patch: constraint generation and
 * the dual LP reach the same value, and the closed form (a feasible patch of
 * another construction) is no smaller. */
Test(reassure, lp_minimal_and_solvers_agree)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    double t[3];
    for (int k = 0; k < 3; k++) {
        fg_fix_result res;
        fg_model *f1 = run_ra_patch(f0, &rep, 0, 0, k, &res);
        t[k] = note_sup_norm(res.note);
        cr_log_info("patch %d: %s", k, res.note);
        cr_expect(strstr(res.note, " 0 LP fails") != NULL, "%s", res.note);
        fg_model_free(f1);
    }
    cr_expect(fabs(t[1] - t[2]) <= 1e-3 * (1 + t[2]), "cuts %g vs dual %g", t[1], t[2]);
    cr_expect(t[0] >= t[2] - 1e-3, "closed form %g below the LP optimum %g", t[0], t[2]);
    fg_dataset_free(&rep);
    fg_model_free(f0);
}

/* n samples of the box [-1.5, 1.5]^2 plus toy data; counts of those outside
 * every support (the patch nodes' parameters say g = 0) and of those whose
 * logits differ from f0's, and of those differing while outside every
 * polytope (not just outside the supports) */
static void locality(fg_model *f0, fg_model *f1, int *outside, int *differ_out, int *differ_far,
                     int *total)
{
    tpatch t[256];
    int np = patches_of(f1, t, 256);
    fg_rng r;
    fg_rng_seed(&r, 21);
    int n = 4000;
    float *x = fg_xfloats((size_t)2 * n);
    for (int i = 0; i < 2 * n; i++) x[i] = 3.0f * fg_rng_uniform(&r) - 1.5f;
    float *y0 = fg_xfloats((size_t)3 * n);
    memcpy(y0, fg_model_forward(f0, x, n), sizeof(float) * 3 * (size_t)n);
    const float *y1 = fg_model_forward(f1, x, n);
    *outside = *differ_out = *differ_far = 0, *total = n;
    for (int i = 0; i < n; i++) {
        int off = 1, far = 1;
        for (int k = 0; k < np; k++) {
            double v = violation(&t[k], x + 2 * i);
            if (v * t[k].gamma < 1.0) off = 0;
            if (v == 0) far = 0;
        }
        int diff = memcmp(y0 + 3 * i, y1 + 3 * i, 3 * sizeof(float)) != 0;
        *outside += off;
        *differ_out += off && diff;
        *differ_far += far && diff;
    }
    free(x), free(y0);
}

Test(reassure, bit_identical_outside_the_supports)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 0, 0, &res);
    int out, dout, dfar, n;
    locality(f0, f1, &out, &dout, &dfar, &n);
    cr_log_info("locality: %d of %d samples outside every support, %d differ; %d differ outside every polytope",
                out, n, dout, dfar);
    /* gamma 0.5 makes the soft boundary 2 pre-activation units wide, a large
     * part of this small domain; a fifth outside keeps the check meaningful */
    cr_expect(out > n / 5, "only %d of %d samples outside the supports", out, n);
    cr_expect_eq(dout, 0, "%d samples outside every support changed", dout);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

/* gamma 1e-3 (no doubling): the soft boundary is 1000 wide, the patches
 * reach inputs of other linear regions */
Test(reassure, negative_control_tiny_gamma_breaks_locality)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 1e-3, 1e-3, &res);
    int out, dout, dfar, n;
    locality(f0, f1, &out, &dout, &dfar, &n);
    cr_log_info("tiny gamma: %d outside supports, %d differ outside every polytope", out, dfar);
    cr_expect(dfar > n / 10, "tiny gamma changed only %d of %d samples outside the regions", dfar, n);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

/* the LP's patch replaced by zero (what a solver returning nothing gives):
 * the claimed points fall back to f0's errors */
Test(reassure, negative_control_broken_patch_loses_claims)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 0, 0, &res);
    tpatch t[256];
    int np = patches_of(f1, t, 256);
    float *p = fg_model_params(f1);
    for (int k = 0; k < np; k++) {
        const fg_layer *L = fg_model_node(f1, t[k].node);
        memset(p + L->w_off + (size_t)t[k].M * t[k].d, 0, sizeof(float) * (size_t)t[k].C * t[k].d);
        memset(p + L->b_off + t[k].M, 0, sizeof(float) * (size_t)t[k].C);
    }
    int *p0 = predict(f0, rep.x, rep.n), *p1 = predict(f1, rep.x, rep.n);
    int claimed = 0, right = 0;
    patches_of(f1, t, 256);
    for (int i = 0; i < rep.n; i++) {
        if (p0[i] == rep.y[i] || inside(t, np, rep.x + 2 * i) < 0) continue;
        claimed++;
        right += p1[i] == rep.y[i];
    }
    cr_expect(claimed > 0);
    cr_expect_eq(right, 0, "a zero patch still repaired %d of %d claimed points", right, claimed);
    free(p0), free(p1);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

Test(reassure, safetensors_roundtrip)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 0, 0, &res);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fg_ra_%d.safetensors", (int)getpid());
    cr_assert_eq(fg_safetensors_save(path, f1, NULL), FG_OK, "%s", fg_errmsg());
    fg_model *g = NULL;
    cr_assert_eq(fg_safetensors_load(path, NULL, &g), FG_OK, "%s", fg_errmsg());
    unlink(path);
    cr_assert_str_eq(fg_model_desc(g), fg_model_desc(f1));
    cr_assert_eq(fg_model_n_params(g), fg_model_n_params(f1));
    cr_assert_eq(memcmp(fg_model_params_c(g), fg_model_params_c(f1),
                        sizeof(float) * fg_model_n_params(f1)), 0);
    float *y1 = fg_xfloats((size_t)rep.n * 3);
    memcpy(y1, fg_model_forward(f1, rep.x, rep.n), sizeof(float) * (size_t)rep.n * 3);
    const float *yg = fg_model_forward(g, rep.x, rep.n);
    cr_expect_eq(memcmp(y1, yg, sizeof(float) * (size_t)rep.n * 3), 0, "reloaded outputs differ");
    /* the description alone rebuilds the graph (poff= keeps the flat layout) */
    fg_model *h = NULL;
    cr_assert_eq(fg_model_parse(fg_model_desc(f1), "reparse", &h), FG_OK, "%s", fg_errmsg());
    cr_expect_eq(fg_model_n_params(h), fg_model_n_params(f1));
    free(y1);
    fg_model_free(g), fg_model_free(h);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

/* hand-set patch: rows x1 <= 0.2 and x2 <= 0.2, gamma 1, so samples at
 * x in [0.2, 1.2] lie in the soft boundary (0 < g < 1) */
static fg_model *hand_patch(void)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1 name=x; dense out=3 name=y; "
                                "patch rows=2 gamma=1 in=x,y", "hand", &m), FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, 3);
    fg_model_init_params(m, &r);
    const fg_layer *L = fg_model_node(m, 2);
    float *p = fg_model_params(m);
    float A[4] = {1, 0.1f, -0.2f, 1}, c[6] = {0.9f, -0.4f, 0.3f, 0.7f, -0.5f, 0.2f};
    memcpy(p + L->w_off, A, sizeof A);
    memcpy(p + L->w_off + 4, c, sizeof c);
    float b[6] = {0.2f, 0.2f, 0.15f, -0.35f, 0.05f, 1.3f}; /* b (2), dp (3), K */
    memcpy(p + L->b_off, b, sizeof b);
    return m;
}

Test(reassure, patch_layer_gradcheck_in_the_soft_boundary)
{
    fg_model *m = hand_patch();
    /* inputs chosen by hand: inside, soft boundary on one or both rows, outside */
    float x[10] = {-0.5f, -0.3f, 0.63f, -0.41f, 0.47f, 0.52f, 2.5f, 0.1f, 0.3f, 0.93f};
    int n = 5, partial = 0;
    tpatch t;
    patches_of(m, &t, 1);
    for (int i = 0; i < n; i++) {
        double v = violation(&t, x + 2 * i);
        partial += v > 0.05 && v < 0.95;
    }
    cr_assert(partial >= 2, "only %d samples in the soft boundary", partial);
    fg_rng r;
    fg_rng_seed(&r, 8);
    gc_stats ps, xs;
    gc_run(m, -1, n, x, &r, 1.0, &ps, &xs);
    cr_log_info("patch gradcheck: params rel %.2e max %.2e | input rel %.2e max %.2e", ps.rel, ps.maxerr,
                xs.rel, xs.maxerr);
    cr_expect(gc_pass(&ps), "param grad rel %.3e max %.3e", ps.rel, ps.maxerr);
    cr_expect(gc_pass(&xs), "input grad rel %.3e max %.3e", xs.rel, xs.maxerr);
    gc_run(m, -1, n, x, &r, 1.01, &ps, &xs);
    cr_expect(!gc_pass(&ps) && !gc_pass(&xs), "a 1%% error passed (rel %.3e, %.3e)", ps.rel, xs.rel);
    fg_model_free(m);
}

Test(reassure, supports)
{
    const fg_fix_approach *a = fg_fix_find("RA");
    cr_assert_not_null(a);
    fg_fix_subject s = {.name = "x", .n_classes = 3};
    char why[256];
    fg_model *m = toy_model(TOY_FAULT);
    cr_expect(a->supports(m, &s, why, sizeof why), "%s", why);
    fg_model_free(m);
    const char *bad[] = {
        /* residual join */
        "input c=2 h=1 w=1 name=x; dense out=2 name=a; add in=x,a; dense out=4; relu; dense out=3",
        /* no hidden relu: one linear region */
        "input c=2 h=1 w=1; dense out=3",
        /* over the size limit */
        "input c=10000 h=1 w=1; dense out=8; relu; dense out=3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fg_model_parse(bad[i], "bad", &m), FG_OK, "%s", fg_errmsg());
        why[0] = 0;
        cr_expect(!a->supports(m, &s, why, sizeof why), "accepted %s", bad[i]);
        cr_expect(why[0] != 0, "no reason for %s", bad[i]);
        cr_log_info("UNADAPTABLE: %s", why);
        fg_model_free(m);
    }
}

/* The ensembles take a patched model like any other, MC dropout included
 * (its dropout goes on the input of f0's last dense layer, under the patches). */
Test(reassure, ensembles_take_the_patched_model)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 0, 0, &res);
    fg_ens_cfg cfg;
    fg_ens_defaults(&cfg);
    fg_rng r;
    fg_rng_seed(&r, 4);
    int *pred = malloc(sizeof(int) * (size_t)rep.n);
    for (int k = 0; k < FG_ENS_COUNT; k++) {
        int rc = fg_ens_predict((fg_ens_kind)k, f0, f1, &cfg, rep.x, rep.n, &r, NULL, pred);
        cr_expect_eq(rc, FG_OK, "%s: %s", fg_ens_name((fg_ens_kind)k), fg_errmsg());
        int bad = 0;
        for (int i = 0; i < rep.n; i++) bad += pred[i] < 0 || pred[i] > 2;
        cr_expect_eq(bad, 0);
    }
    free(pred);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}

/* K must bound |p| over the domain: with K = 0 the patch leaks everywhere
 * outside the supports (h = p where g = 0). */
Test(reassure, negative_control_small_K_leaks)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    fg_model *f1 = run_ra(f0, &rep, 0, 0, &res);
    tpatch t[256];
    int np = patches_of(f1, t, 256);
    float *p = fg_model_params(f1);
    for (int k = 0; k < np; k++) {
        const fg_layer *L = fg_model_node(f1, t[k].node);
        p[L->b_off + t[k].M + t[k].C] = 0;
    }
    int out, dout, dfar, n;
    locality(f0, f1, &out, &dout, &dfar, &n);
    cr_expect(out > 0 && dout == out, "K = 0: %d of %d samples outside the supports changed", dout, out);
    fg_dataset_free(&rep);
    fg_model_free(f0);
    fg_model_free(f1);
}
