/* Localisation and the tail evaluator: gradient loss against finite
 * differences, forward impact against a hand-computed case, the Pareto front,
 * and cached-tail scoring against full forwards (including the incremental
 * output-layer update). */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

static double total_ce(fg_model *m, const fg_dataset *d)
{
    int k = fg_model_n_classes(m);
    const float *z = fg_model_forward(m, d->x, d->n);
    return (double)fg_loss_ce(z, d->y, d->n, k, NULL) * d->n;
}

Test(localise, grad_loss_matches_finite_differences)
{
    fg_dataset d;
    toy_data(10, 21, &d);
    fg_model *m = toy_model(TOY_FAULT);
    fg_model_reserve(m, d.n);
    /* perturb every weight a little so no ReLU sits at a kink and gradients differ */
    fg_rng r;
    fg_rng_seed(&r, 3);
    float *p = fg_model_params(m);
    for (size_t i = 0; i < fg_model_n_params(m); i++) p[i] += 0.05f * fg_rng_normal(&r);
    int *all = fg_xmalloc(sizeof(int) * (size_t)d.n);
    for (int i = 0; i < d.n; i++) all[i] = i;
    size_t np = fg_model_n_params(m);
    float *gl = fg_xfloats(np);
    fg_loc_grad_loss(m, &d, all, d.n, 7, gl); /* batch 7: sums across uneven batches */
    for (size_t i = 0; i < np; i++) {
        float keep = p[i];
        double h = 1e-3;
        p[i] = keep + (float)h;
        double up = total_ce(m, &d);
        p[i] = keep - (float)h;
        double dn = total_ce(m, &d);
        p[i] = keep;
        double fd = fabs((up - dn) / (2 * h));
        cr_assert(fabs(fd - gl[i]) <= 2e-2 * (1 + fd), "param %zu: fd %g vs %g", i, fd, gl[i]);
    }
    free(gl), free(all);
    fg_model_free(m);
    fg_dataset_free(&d);
}

Test(localise, forward_impact_hand_computed)
{
    /* one dense layer 2 -> 2 as the whole network: logits z = W o.
     * back(j) = |d(z0 + z1)/dz_j| normalised = 1/2 for both units.
     * input o = (1, 2), W = [[1, -3], [2, 0.5]]:
     *   front(w00) = |1*1| / (|1*1| + |2*-3|) = 1/7,   front(w01) = 6/7,
     *   front(w10) = |1*2| / (2 + 1) = 2/3,            front(w11) = 1/3.
     * FI = front * 1/2. */
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=2 bias=0\n", "fi", &m), FG_OK, "%s", fg_errmsg());
    fg_model_reserve(m, 4);
    float *p = fg_model_params(m);
    p[0] = 1, p[1] = -3, p[2] = 2, p[3] = 0.5f;
    float x[2] = {1, 2};
    int y = 0, idx = 0;
    fg_dataset d = {.n = 1, .c = 2, .h = 1, .w = 1, .n_classes = 2, .x = x, .y = &y};
    float fi[4];
    fg_loc_forward_impact(m, &d, &idx, 1, 4, FG_LOC_CONV_BATCH, fi);
    cr_assert_float_eq(fi[0], 0.5f / 7, 1e-6);
    cr_assert_float_eq(fi[1], 3.0f / 7, 1e-6);
    cr_assert_float_eq(fi[2], 1.0f / 3, 1e-6);
    cr_assert_float_eq(fi[3], 1.0f / 6, 1e-6);
    fg_model_free(m);
}

Test(localise, conv_forward_impact_sums_positions)
{
    /* conv 1->1, k=2 on a 2x3 input gives 1x2 outputs; gap; dense 1->1 (w=1) is the
     * logit. back(co=0, p) = |d logit / d y_p| normalised over the 2 positions = 1/2.
     * input [[1,2,3],[4,5,6]], kernel [[1,0],[0,1]]:
     *  p0 patch (1,2,4,5): |taps| = (1,0,0,5), sum 6; p1 patch (2,3,5,6): (2,0,0,6), sum 8
     *  FI(k00) = 1/6*1/2 + 2/8*1/2, FI(k01) = 0, FI(k10) = 0, FI(k11) = 5/6*1/2 + 6/8*1/2 */
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=2 w=3\nconv out=1 k=2 bias=0\ngap\ndense out=1 bias=0\n", "fic", &m),
                 FG_OK, "%s", fg_errmsg());
    fg_model_reserve(m, 2);
    float *p = fg_model_params(m);
    p[0] = 1, p[1] = 0, p[2] = 0, p[3] = 1, p[4] = 1;
    float x[6] = {1, 2, 3, 4, 5, 6};
    int y = 0, idx = 0;
    fg_dataset d = {.n = 1, .c = 1, .h = 2, .w = 3, .n_classes = 1, .x = x, .y = &y};
    float fi[5];
    fg_loc_forward_impact(m, &d, &idx, 1, 2, FG_LOC_CONV_INPUT, fi);
    cr_assert_float_eq(fi[0], 1.0f / 12 + 1.0f / 8, 1e-6);
    cr_assert_float_eq(fi[1], 0.0f, 1e-9);
    cr_assert_float_eq(fi[2], 0.0f, 1e-9);
    cr_assert_float_eq(fi[3], 5.0f / 12 + 3.0f / 8, 1e-6);
    fg_model_free(m);
}

/* The released form (coinse/arachne run_localise.py): one sum S(p) over the
 * whole input set, signed products, front = sum_x o w / (N S), times the mean
 * of back, summed over positions. Same net as above, kernel [[1,0],[0,-1]],
 * two inputs x1 = [[1,2,3],[4,5,6]], x2 = all ones; back = 1/2 everywhere.
 *  products x1: p0 (1,0,0,-5) |.| 6, p1 (2,0,0,-6) |.| 8;  x2: (1,0,0,-1) |.| 2 at both
 *  S(p0) = 8, S(p1) = 10;  numerators p0 (2,0,0,-6), p1 (3,0,0,-7);  N = 2
 *  FI(k00) = 1/2 (2/16 + 3/20) = 0.1375,  FI(k11) = 1/2 (-6/16 - 7/20) = -0.3625
 * The per-input form gives mean(1/12 + 1/8, 1/4 + 1/4) = 0.354167 and
 * mean(5/12 + 3/8, 1/2) = 0.645833 (a negative control for the batch sum). */
Test(localise, conv_forward_impact_batch_form_as_released)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=2 w=3\nconv out=1 k=2 bias=0\ngap\ndense out=1 bias=0\n", "fib", &m),
                 FG_OK, "%s", fg_errmsg());
    fg_model_reserve(m, 2);
    float *p = fg_model_params(m);
    p[0] = 1, p[1] = 0, p[2] = 0, p[3] = -1, p[4] = 1;
    float x[12] = {1, 2, 3, 4, 5, 6, 1, 1, 1, 1, 1, 1};
    int y[2] = {0, 0}, idx[2] = {0, 1};
    fg_dataset d = {.n = 2, .c = 1, .h = 2, .w = 3, .n_classes = 1, .x = x, .y = y};
    float fi[5];
    for (int batch = 1; batch <= 2; batch++) { /* the sums span minibatches */
        fg_loc_forward_impact(m, &d, idx, 2, batch, FG_LOC_CONV_BATCH, fi);
        cr_assert_float_eq(fi[0], 0.1375f, 1e-6, "batch %d: %g", batch, fi[0]);
        cr_assert_float_eq(fi[1], 0.0f, 1e-9);
        cr_assert_float_eq(fi[2], 0.0f, 1e-9);
        cr_assert_float_eq(fi[3], -0.3625f, 1e-6, "batch %d: %g", batch, fi[3]);
    }
    fg_loc_forward_impact(m, &d, idx, 2, 2, FG_LOC_CONV_INPUT, fi);
    cr_assert_float_eq(fi[0], (1.0f / 12 + 1.0f / 8 + 0.5f) / 2, 1e-6);
    cr_assert_float_eq(fi[3], (5.0f / 12 + 3.0f / 8 + 0.5f) / 2, 1e-6);
    fg_model_free(m);
}

Test(localise, pareto_front_hand_case)
{
    /* points (a, b): 0 (3,1) 1 (2,2) 2 (1,3) 3 (1,1) 4 (2,2) 5 (0,3) 6 (3,0)
     * non-dominated: 0, 1, 2, 4 (1 and 4 tie); 5 is dominated by 2, 3 by 1, 6 by 0 */
    float a[7] = {3, 2, 1, 1, 2, 0, 3}, b[7] = {1, 2, 3, 1, 2, 3, 0};
    long cand[7] = {0, 1, 2, 3, 4, 5, 6}, out[7];
    int n = fg_pareto_front(a, b, cand, 7, out);
    cr_assert_eq(n, 4);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(out[1], 1);
    cr_assert_eq(out[2], 2);
    cr_assert_eq(out[3], 4);
    /* a subset of candidates only */
    long sub[3] = {3, 5, 6};
    n = fg_pareto_front(a, b, sub, 3, out);
    cr_assert_eq(n, 3); /* (1,1), (0,3), (3,0): none dominates another */
}

Test(localise, tail_matches_full_forward_and_incremental_update)
{
    fg_dataset d;
    toy_data(20, 9, &d);
    fg_model *m = toy_model(TOY_FAULT);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)d.n);
    for (int i = 0; i < d.n; i++) idx[d.n - 1 - i] = i; /* reversed order */
    fg_tail t;
    int relu = fg_model_find(m, "fc1") + 1;
    cr_assert_eq(fg_tail_init(&t, m, relu, &d, idx, d.n, 16), FG_OK, "%s", fg_errmsg());
    long g[2] = {toy_fault_index(m), toy_fault_index(m) + 5};
    float *p = fg_model_params(m);
    float old[2] = {p[g[0]], p[g[1]]}, val[2] = {0.7f, -0.3f};
    cr_assert_eq(fg_tail_eval_delta(&t, g, old, val, 2), 1);
    float *inc = fg_xfloats((size_t)d.n * 3);
    memcpy(inc, t.logits, sizeof(float) * (size_t)d.n * 3);
    p[g[0]] = val[0], p[g[1]] = val[1];
    fg_tail_eval(&t);
    fg_model_set_mode(m, FG_MODE_EVAL);
    for (int i = 0; i < d.n; i++) {
        const float *z = fg_model_forward(m, d.x + 2 * (size_t)idx[i], 1);
        for (int j = 0; j < 3; j++) {
            cr_assert_float_eq(t.logits[i * 3 + j], z[j], 1e-6);
            cr_assert_float_eq(inc[i * 3 + j], z[j], 1e-6);
        }
    }
    /* a hidden-layer index cannot be updated incrementally */
    long h = fg_model_node(m, fg_model_find(m, "fc1"))->w_off;
    cr_assert_eq(fg_tail_eval_delta(&t, &h, old, val, 1), 0);
    fg_tail_free(&t);
    free(idx), free(inc);
    fg_model_free(m);
    fg_dataset_free(&d);
}

/* Quotas max(1, round(k n_c / n)) can add up to more than k: with 5 classes of
 * 20, 1, 1, 1, 1 positives and k = 4 they ask 3 + 1 + 1 + 1 + 1 = 7. The sample
 * must still hold at most k distinct members of pos (a caller allocates k). */
Test(localise, stratified_sample_never_exceeds_k)
{
    fg_dataset d = {.n = 24, .c = 1, .h = 1, .w = 1, .n_classes = 5};
    int y[24], pos[24];
    for (int i = 0; i < 24; i++) y[i] = i < 20 ? 0 : i - 19, pos[i] = i;
    d.y = y;
    fg_rng r;
    fg_rng_seed(&r, 1);
    for (int k = 1; k <= 12; k++) {
        int out[12 + 1];
        out[k] = -7; /* canary just past k */
        int n = fg_fix_sample_stratified(&d, pos, 24, k, &r, out);
        cr_assert_eq(n, k, "k=%d: %d indices", k, n);
        cr_assert_eq(out[k], -7, "k=%d: wrote past k", k);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) cr_assert_neq(out[i], out[j]);
        if (k >= 5) /* every class still present once the quota allows it */
            for (int c = 1; c < 5; c++) {
                int seen = 0;
                for (int i = 0; i < n; i++) seen |= y[out[i]] == c;
                cr_assert(seen, "k=%d: class %d missing", k, c);
            }
    }
}

Test(localise, kernel_stats_of_a_bias_target_is_empty)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=3 name=fc\n", "t", &m), FG_OK);
    fg_rng r;
    fg_rng_seed(&r, 3);
    fg_model_init_params(m, &r);
    const fg_layer *L = fg_model_node(m, fg_model_find(m, "fc"));
    long targets[2] = {L->b_off, L->w_off + 1};
    int node[2];
    fg_kernel_stats st[2];
    fg_fix_kernel_stats(m, targets, 2, node, st);
    cr_assert_eq(node[0], -1);
    cr_assert(st[0].mean == 0 && st[0].std == 0);
    cr_assert_eq(node[1], fg_model_find(m, "fc"));
    const float *w = fg_model_params_c(m) + L->w_off;
    float mx = w[0];
    for (int i = 1; i < 6; i++) mx = fmaxf(mx, w[i]);
    cr_assert_float_eq(st[1].max, mx, 0);
    fg_model_free(m);
}
